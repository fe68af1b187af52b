// hako-policy-helper, the process that makes the emulated calls (src-native/helper/main.cc): found, started
// with one end of a seqpacket pair, started again when it dies (at most 10 times a minute), killed on close.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { addon, addonDir, packageRoot, prebuildDir } from '../native/addon';
import type { ServerState } from './server-state';

/** hako-policy-helper beside the loaded addon, in build/Release, or in prebuilds; HAKO_POLICY_HELPER overrides. */
export function policyHelperPath(): string {
  const env = process.env.HAKO_POLICY_HELPER;
  if (env && fs.existsSync(env)) return env;
  const root = packageRoot();
  const dir = addonDir(root);
  const candidates = [
    dir && path.join(dir, 'hako-policy-helper'),
    path.join(root, 'build', 'Release', 'hako-policy-helper'),
    path.join(prebuildDir(root), 'hako-policy-helper'),
  ];
  const found = candidates.find((c): c is string => !!c && fs.existsSync(c));
  if (!found) throw new HakoError('hako-policy-helper not found (build/Release, prebuilds); run npm install');
  return found;
}

export class HelperProcess {
  private helper?: ChildProcess;
  private helperRestarts: number[] = [];

  constructor(private readonly s: ServerState) {}

  /** Start the helper; returns this server's end of its socket. */
  start(): number {
    const a = addon();
    const [mine, theirs] = a.seqpacketPair();
    let child: ChildProcess;
    try {
      child = spawn(policyHelperPath(), ['3'], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
    } finally {
      fs.closeSync(theirs);
    }
    child.unref();
    child.on('error', (e) => this.s.log.error(`policy server: helper: ${e.message}`));
    child.on('exit', (code, sig) => {
      if (!this.s.closed) this.s.log.warn(`policy server: helper exited (${sig ?? code})`);
    });
    this.helper = child;
    return mine;
  }

  restart(): void {
    if (this.s.closed) return;
    const now = Date.now();
    this.helperRestarts = this.helperRestarts.filter((t) => now - t < 60_000);
    if (this.helperRestarts.length >= 10) {
      this.s.log.error(
        'policy server: the helper keeps dying; emulated calls fail with EAGAIN until it can be restarted',
      );
      setTimeout(() => this.restart(), 5_000).unref();
      return;
    }
    this.helperRestarts.push(now);
    try {
      addon().notifyServerSetHelper(this.s.sid, this.start());
    } catch (e) {
      this.s.log.error(`policy server: restart the helper: ${(e as Error).message}`);
    }
  }

  /** Kill the helper and wait for its exit. */
  async stop(): Promise<void> {
    const h = this.helper;
    if (h && h.exitCode === null && h.signalCode === null) {
      h.ref(); // keep the loop alive until the exit is seen
      h.kill('SIGKILL');
      await new Promise<void>((resolve) => h.once('exit', () => resolve()));
    }
  }
}
