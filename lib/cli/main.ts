// The runc-compatible command line. Each verb parses its flags and calls the library; nothing else.
// Modules are required lazily per verb so `hako --version` or `hako state` load only what they use.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { trace, type Logger } from '../log';
import type { Runtime } from '../runtime/runtime';
import { defaultStateRoot } from '../runtime/privilege';
import { parseArgs, type Parsed } from './args';
import { preserveArgs, recordInheritedFds } from './inherited-fds';
import { writeStderr, writeStdout } from './output';
import { GLOBAL_FLAGS, HAKO_VERSION, VERBS, globalHelp, parseVerb, verbHelp, wantsHelp } from './verbs';

const SPEC_VERSION = '1.2.1';

interface Globals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
  rootless?: boolean;
}

/** crun's `--cgroup-manager`: cgroupfs (hako's own) or systemd (as --systemd-cgroup). True for systemd. */
function cgroupManager(value: unknown): boolean {
  if (value === undefined || value === 'cgroupfs') return false;
  if (value === 'systemd') return true;
  if (value === 'disabled')
    throw new HakoError('--cgroup-manager: "disabled" is not supported: hako always places a container in cgroups (a rootless caller without a delegated cgroup gets a warning instead)', { field: '--cgroup-manager' });
  throw new HakoError(`--cgroup-manager: unknown cgroup manager "${String(value)}" (cgroupfs or systemd)`, { field: '--cgroup-manager' });
}


/** runc's --rootless true|false|auto: whether cgroup permission errors are only warnings. */
function rootlessFlag(value: unknown): boolean | undefined {
  if (value === undefined || value === 'auto') return undefined;
  if (value === 'true' || value === true) return true;
  if (value === 'false') return false;
  throw new HakoError(`--rootless: invalid value "${String(value)}" (true, false or auto)`, { field: '--rootless' });
}

function splitGlobals(argv: string[]): { globals: Parsed; command?: string; rest: string[] } {
  // Global flags come before the command (go-runc's order); find the first non-flag word.
  const valueFlags = new Set(GLOBAL_FLAGS.filter((f) => f.type !== 'boolean').flatMap((f) => [`--${f.name}`, `-${f.name}`, ...(f.alias ? [`-${f.alias}`] : [])]));
  let i = 0;
  while (i < argv.length && argv[i].startsWith('-')) {
    if (valueFlags.has(argv[i])) i++;
    i++;
  }
  // No command prefix: main() prefixes every error with "hako: " already.
  return { globals: parseArgs(argv.slice(0, i), GLOBAL_FLAGS, ''), command: argv[i], rest: argv.slice(i + 1) };
}

/**
 * Library options whose errors the CLI reports under its flag: the library names its own option
 * ("bundle: bundle /srv/web does not exist", field "bundle"), the command line the flag the user typed.
 */
const OPTION_FLAGS: Record<string, string> = {
  bundle: '--bundle',
  config: '--config',
  consoleSocket: '--console-socket',
  pidfdSocket: '--pidfd-socket',
  cpuAffinity: '--cpu-affinity',
  sched: '--sched',
  systemdCgroup: '--systemd-cgroup',
};

/** An error's message as the CLI prints it: with the flag in place of the library option it names. */
export function cliMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const field = e instanceof HakoError ? e.field : undefined;
  if (field && Object.hasOwn(OPTION_FLAGS, field) && msg.startsWith(`${field}: `)) return `${OPTION_FLAGS[field]}: ${msg.slice(field.length + 2)}`;
  return msg;
}

function requireId(p: Parsed, command: string): string {
  const id = p.positional[0];
  if (!id) throw new HakoError(`${command}: a container id is required`, { field: 'container id' });
  return id;
}

/** uid → user name from the host's /etc/passwd (empty when it cannot be read). */
function userNames(): Map<string, string> {
  const names = new Map<string, string>();
  let text = '';
  try {
    text = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {}
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid && /^\d+$/.test(uid) && !names.has(uid)) names.set(uid, name);
  }
  return names;
}

function str(p: Parsed, name: string): string | undefined {
  return p.flags[name] as string | undefined;
}

class Cli {
  private runtimeCache?: Runtime;
  logger!: Logger;

  constructor(readonly g: Globals) {}

  runtime(): Runtime {
    if (!this.runtimeCache) {
      const { Runtime } = require('../runtime/runtime') as typeof import('../runtime/runtime');
      this.runtimeCache = new Runtime({ root: this.g.root, logger: this.logger, debug: this.g.debug, systemdCgroup: this.g.systemdCgroup, rootless: this.g.rootless });
    }
    return this.runtimeCache;
  }

  async main(command: string, argv: string[]): Promise<number> {
    switch (command) {
      case 'create':
      case 'run':
        return this.createOrRun(command, argv);
      case 'start': {
        const p = parseVerb(command, argv);
        await this.runtime().start(requireId(p, command));
        return 0;
      }
      case 'setup':
        return this.setup(argv);
      case 'state': {
        const p = parseVerb(command, argv);
        const st = await this.runtime().state(requireId(p, command));
        writeStdout(JSON.stringify(st, null, 2) + '\n');
        return 0;
      }
      case 'kill': {
        const p = parseVerb(command, argv);
        const id = requireId(p, command);
        this.logger.debug(`kill: signal ${p.positional[1] ?? 'TERM'} to container ${id}${p.flags.all ? ' (all processes)' : ''}`);
        await this.runtime().kill(id, p.positional[1] ?? 'TERM', { all: !!p.flags.all });
        return 0;
      }
      case 'delete': {
        const p = parseVerb(command, argv);
        await this.runtime().delete(requireId(p, command), { force: !!p.flags.force });
        return 0;
      }
      case 'list':
        return this.list(argv);
      case 'exec':
        return (require('./extra') as typeof import('./extra')).execCommand(this.runtime(), argv);
      case 'ps':
        return (require('./extra') as typeof import('./extra')).psCommand(this.runtime(), argv);
      case 'update':
        return (require('./extra') as typeof import('./extra')).updateCommand(this.runtime(), argv);
      case 'events':
        return (require('./extra') as typeof import('./extra')).eventsCommand(this.runtime(), argv);
      case 'policy-server':
        return (require('./policy-server') as typeof import('./policy-server')).policyServerCommand(argv, this.logger);
      case 'policy':
        return (require('./policy-server') as typeof import('./policy-server')).policyCommand(argv);
      case 'pause':
      case 'resume': {
        const p = parseVerb(command, argv);
        await this.runtime()[command](requireId(p, command));
        return 0;
      }
      case 'spec':
        return this.spec(argv);
      case 'features': {
        parseVerb(command, argv);
        const { features } = require('../oci/features') as typeof import('../oci/features');
        writeStdout(JSON.stringify(features(), null, 2) + '\n');
        return 0;
      }
      case 'example-bundle': {
        const p = parseVerb(command, argv);
        const dir = p.positional[0];
        if (!dir || p.positional.length > 1) throw new HakoError('example-bundle: exactly one argument, the directory to make, is required', { field: 'dir' });
        const { makeExampleBundle } = require('../example') as typeof import('../example');
        const bundle = makeExampleBundle(dir);
        writeStdout(`${bundle}: run it with hako run --bundle ${bundle} ID\n`);
        return 0;
      }
      case 'checkpoint':
      case 'restore':
        // containerd's shim calls these for `ctr task checkpoint`: say plainly that they do not exist here.
        throw new HakoError(`${command} is not supported by hako (no CRIU); the container is left as it is`, { field: 'command' });
      default:
        throw new HakoError(`unknown command "${command}" (see hako --help)`, { field: 'command' });
    }
  }

  private async createOrRun(command: 'create' | 'run', argv: string[]): Promise<number> {
    const p = parseVerb(command, argv);
    const id = requireId(p, command);
    const opts = {
      bundle: str(p, 'bundle') ?? process.cwd(),
      // crun's --config: a config file other than <bundle>/config.json, relative to the caller's directory
      config: str(p, 'config') === undefined ? undefined : path.resolve(str(p, 'config')!),
      pidFile: str(p, 'pid-file'),
      consoleSocket: str(p, 'console-socket'),
      pidfdSocket: str(p, 'pidfd-socket'),
      noPivot: !!p.flags['no-pivot'],
      noNewKeyring: !!p.flags['no-new-keyring'],
      ...preserveArgs(p.flags['preserve-fds'] as number | undefined),
    };
    const rt = this.runtime();
    if (command === 'create') {
      await rt.create(id, opts);
      return 0;
    }
    if (p.flags.detach) {
      await rt.run(id, opts);
      return 0;
    }
    // A terminal without --console-socket: hako holds the pty and relays it to its own stdio, as runc does.
    const relay = opts.consoleSocket ? undefined : (require('./terminal') as typeof import('./terminal')).consoleRelay();
    const c = await rt.run(id, { ...opts, callerTerminal: true, onConsole: relay && ((fd: number) => relay.attach(fd)) });
    // Foreground: forward signals to the container, return its status, clean up.
    const forward = (sig: NodeJS.Signals) => {
      try {
        c.signal(require('os').constants.signals[sig]);
      } catch {
        /* already gone */
      }
    };
    const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
    for (const s of sigs) process.on(s, forward);
    const st = await c.wait();
    await relay?.finish();
    trace('container exited');
    for (const s of sigs) process.removeListener(s, forward);
    if (!p.flags.keep) await rt.delete(id, { force: true });
    trace('deleted');
    return st.status;
  }

  private async setup(argv: string[]): Promise<number> {
    const p = parseVerb('setup', argv);
    const id = requireId(p, 'setup');
    const file = str(p, 'process');
    if (!file) throw new HakoError('setup: --process FILE is required (a runtime-spec process object)', { field: '--process' });
    let proc: unknown;
    try {
      proc = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (e) {
      if (e instanceof RangeError) throw new HakoError('--process: nested too deeply', { field: '--process' });
      throw new HakoError(`--process: ${(e as Error).message.slice(0, 200)}`, { field: '--process' });
    }
    await this.runtime().setup(id, proc as never, { cpuAffinity: str(p, 'cpu-affinity'), sched: str(p, 'sched') });
    return 0;
  }

  private async list(argv: string[]): Promise<number> {
    const p = parseVerb('list', argv);
    // runc lists the owner by user name (root), or "#UID" when /etc/passwd does not name it.
    const names = userNames();
    const states = (await this.runtime().list()).map((s) => (s.owner && /^\d+$/.test(s.owner) ? { ...s, owner: names.get(s.owner) ?? `#${s.owner}` } : s));
    const format = str(p, 'format') ?? 'table';
    if (p.flags.quiet) {
      for (const s of states) writeStdout(`${s.id}\n`);
    } else if (format === 'json') {
      // runc's key order (its containerState struct): pid before status, annotations only when there are some.
      const rows = states.map((s) => ({
        ociVersion: s.ociVersion,
        id: s.id,
        pid: s.pid ?? 0,
        status: s.status,
        bundle: s.bundle,
        rootfs: s.rootfs,
        created: s.created,
        ...(s.annotations && Object.keys(s.annotations).length ? { annotations: s.annotations } : {}),
        owner: s.owner,
      }));
      writeStdout(JSON.stringify(rows) + '\n');
    } else if (format === 'table') {
      const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
      for (const s of states) rows.push([s.id, String(s.pid ?? 0), s.status, s.bundle, s.created ?? '', s.owner ?? '']);
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      for (const r of rows) writeStdout(r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i] + 2) : c)).join('') + '\n');
    } else throw new HakoError(`list: invalid format "${format}" (table or json)`, { field: '--format' });
    return 0;
  }

  private spec(argv: string[]): number {
    const p = parseVerb('spec', argv);
    const { defaultSpec } = require('../oci/default-spec') as typeof import('../oci/default-spec');
    const bundle = str(p, 'bundle') ?? '.';
    const file = path.join(bundle, 'config.json');
    if (fs.existsSync(file)) throw new HakoError(`spec: File ${file} exists. Remove it first`, { field: '--bundle' });
    fs.writeFileSync(file, JSON.stringify(defaultSpec({ rootless: !!p.flags.rootless }), null, 2) + '\n');
    return 0;
  }
}

export async function main(argv: string[]): Promise<number> {
  // Before this process opens anything of its own (see inherited-fds.ts).
  recordInheritedFds();
  trace('cli start');
  let logger: Logger | undefined;
  let verb: string | undefined;
  try {
    const { globals, command, rest } = splitGlobals(argv);
    verb = command;
    if (globals.flags.version) {
      writeStdout(`hako version ${HAKO_VERSION}\nspec: ${SPEC_VERSION}\n`);
      return 0;
    }
    const g: Globals = {
      root: (globals.flags.root as string | undefined) ?? defaultStateRoot(),
      log: globals.flags.log as string | undefined,
      logFormat: globals.flags['log-format'] === 'json' ? 'json' : 'text',
      debug: !!globals.flags.debug,
      systemdCgroup: !!globals.flags['systemd-cgroup'] || cgroupManager(globals.flags['cgroup-manager']),
      rootless: rootlessFlag(globals.flags.rootless),
    };
    const lf = globals.flags['log-format'];
    if (lf !== undefined && lf !== 'json' && lf !== 'text')
      throw new HakoError(`--log-format: invalid value "${String(lf)}" (text or json)`, { field: '--log-format' });
    const { createLogger } = require('../log') as typeof import('../log');
    logger = createLogger({ file: g.log, format: g.logFormat, debug: g.debug, stderr: true });
    if (globals.flags.help || !command) {
      writeStdout(globalHelp());
      return command || globals.flags.help ? 0 : 1;
    }
    // runc's `help VERB` and `VERB --help`/`-h`: the verb's flags, from the table its parser uses.
    if (command === 'help') {
      const verb = rest.find((a) => !a.startsWith('-'));
      if (verb === undefined) writeStdout(globalHelp());
      else if (Object.hasOwn(VERBS, verb)) writeStdout(verbHelp(verb));
      else throw new HakoError(`help: unknown command "${verb}" (see hako --help)`, { field: 'command' });
      return 0;
    }
    if (Object.hasOwn(VERBS, command) && wantsHelp(command, rest)) {
      writeStdout(verbHelp(command));
      return 0;
    }
    const cli = new Cli(g);
    cli.logger = logger;
    return await cli.main(command, rest);
  } catch (e) {
    const msg = cliMessage(e);
    logger?.error(msg);
    writeStderr(`hako: ${msg}\n`);
    // runc exits 255 when exec fails (so a caller tells it from the exec'd process's own status 1).
    return verb === 'exec' ? 255 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      writeStderr(`hako: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
