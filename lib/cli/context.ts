// What every verb is given: the global options, the logger, and the Runtime, made on first use (a verb that
// does not need it, such as spec or policy-server, never loads it).
import type { Logger } from '../log';
import type { Runtime } from '../runtime/runtime';

export interface Globals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
  rootless?: boolean;
}

export class CliContext {
  private runtimeCache?: Runtime;

  constructor(
    readonly g: Globals,
    readonly logger: Logger,
  ) {}

  runtime(): Runtime {
    if (!this.runtimeCache) {
      const { Runtime } = require('../runtime/runtime') as typeof import('../runtime/runtime');
      this.runtimeCache = new Runtime({
        root: this.g.root,
        logger: this.logger,
        debug: this.g.debug,
        systemdCgroup: this.g.systemdCgroup,
        rootless: this.g.rootless,
      });
    }
    return this.runtimeCache;
  }
}

/** A verb: its arguments after the verb's name; the CLI's exit status. */
export type Verb = (cli: CliContext, argv: string[], command: string) => Promise<number> | number;
