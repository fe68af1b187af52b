// The runc-compatible command line. Each verb parses its flags and calls the library; nothing else.
// Modules are required lazily per verb so `hako --version` or `hako state` load only what they use.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { trace, type Logger } from '../log';
import type { Runtime } from '../runtime/runtime';
import { defaultStateRoot } from '../runtime/privilege';
import { parseArgs, type FlagSpec, type Parsed } from './args';
import { preserveArgs, recordInheritedFds } from './inherited-fds';
import { writeStderr, writeStdout } from './output';

const HAKO_VERSION = '0.1.0';
const SPEC_VERSION = '1.2.1';

interface Globals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
  rootless?: boolean;
}

const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'root', type: 'string' },
  { name: 'log', type: 'string' },
  { name: 'log-format', type: 'string' },
  { name: 'debug', type: 'boolean' },
  { name: 'systemd-cgroup', type: 'boolean' },
  { name: 'rootless', type: 'string' },
  { name: 'cgroup-manager', type: 'string' },
  { name: 'version', alias: 'v', type: 'boolean' },
  { name: 'help', alias: 'h', type: 'boolean' },
];

const CREATE_FLAGS: FlagSpec[] = [
  { name: 'bundle', alias: 'b', type: 'string' },
  { name: 'config', alias: 'f', type: 'string' },
  { name: 'pid-file', type: 'string' },
  { name: 'console-socket', type: 'string' },
  { name: 'pidfd-socket', type: 'string' },
  { name: 'no-pivot', type: 'boolean' },
  { name: 'no-new-keyring', type: 'boolean' },
  { name: 'preserve-fds', type: 'number' },
  { name: 'detach', alias: 'd', type: 'boolean' },
  { name: 'keep', type: 'boolean' },
  { name: 'no-subreaper', type: 'boolean' },
];

const USAGE = `hako ${HAKO_VERSION}: a lightweight OCI container runtime

usage: hako [global options] command [options] [arguments]

commands:
  create    create a container from a bundle (it waits for start)
  start     run the configured process of a created container
  setup     run a given process (--process FILE) in a created container at once
  run       create and start a container (foreground unless --detach)
  state     print the state of a container as JSON
  exec      run another process in a running container
  ps        list the container's processes (--format table|json)
  pause     freeze every process of a container
  resume    thaw a paused container
  update    change a container's resources (--resources FILE|-, --memory, ...)
  events    print resource statistics (--stats, --interval) and OOM events
  kill      send a signal to a container's init (--all: every process)
  delete    delete a container (--force: kill it first)
  list      list containers (--format table|json)
  spec      write a default config.json (--bundle, --rootless)
  features  print the runtime-spec features document
  policy-server  serve seccomp notifications of containers by policy (--socket PATH --policy FILE)
  policy seccomp-section  print (or --bundle: write) the config.json seccomp section for a policy server

global options:
  --root DIR          state directory (default /run/hako; $XDG_RUNTIME_DIR/hako when not root)
  --log FILE          log file; --log-format text|json
  --debug             log every setup step
  --systemd-cgroup    use the systemd cgroup driver (not available: hako has cgroupfs only)
  --cgroup-manager M  cgroupfs (the default) or systemd (as --systemd-cgroup), as crun takes it
  --version           print the version`;

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
  const valueFlags = new Set(['--root', '--log', '--log-format', '--rootless', '--cgroup-manager']);
  let i = 0;
  while (i < argv.length && argv[i].startsWith('-')) {
    if (valueFlags.has(argv[i])) i++;
    i++;
  }
  return { globals: parseArgs(argv.slice(0, i), GLOBAL_FLAGS, 'hako'), command: argv[i], rest: argv.slice(i + 1) };
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
        const p = parseArgs(argv, [], command);
        await this.runtime().start(requireId(p, command));
        return 0;
      }
      case 'setup':
        return this.setup(argv);
      case 'state': {
        const p = parseArgs(argv, [], command);
        const st = await this.runtime().state(requireId(p, command));
        writeStdout(JSON.stringify(st, null, 2) + '\n');
        return 0;
      }
      case 'kill': {
        const p = parseArgs(argv, [{ name: 'all', alias: 'a', type: 'boolean' }], command);
        const id = requireId(p, command);
        this.logger.debug(`kill: signal ${p.positional[1] ?? 'TERM'} to container ${id}${p.flags.all ? ' (all processes)' : ''}`);
        await this.runtime().kill(id, p.positional[1] ?? 'TERM', { all: !!p.flags.all });
        return 0;
      }
      case 'delete': {
        const p = parseArgs(argv, [{ name: 'force', alias: 'f', type: 'boolean' }], command);
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
        const p = parseArgs(argv, [], command);
        await this.runtime()[command](requireId(p, command));
        return 0;
      }
      case 'spec':
        return this.spec(argv);
      case 'features': {
        const { features } = require('../oci/features') as typeof import('../oci/features');
        writeStdout(JSON.stringify(features(), null, 2) + '\n');
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
    const p = parseArgs(argv, CREATE_FLAGS, command);
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
    const p = parseArgs(
      argv,
      [
        { name: 'process', alias: 'p', type: 'string' },
        { name: 'cpu-affinity', type: 'string' },
        { name: 'sched', type: 'string' },
      ],
      'setup',
    );
    const id = requireId(p, 'setup');
    const file = str(p, 'process');
    if (!file) throw new HakoError('setup: --process FILE is required (a runtime-spec process object)', { field: '--process' });
    let proc: unknown;
    try {
      proc = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (e) {
      throw new HakoError(`--process: ${(e as Error).message}`, { field: '--process' });
    }
    await this.runtime().setup(id, proc as never, { cpuAffinity: str(p, 'cpu-affinity'), sched: str(p, 'sched') });
    return 0;
  }

  private async list(argv: string[]): Promise<number> {
    const p = parseArgs(
      argv,
      [
        { name: 'format', alias: 'f', type: 'string' },
        { name: 'quiet', alias: 'q', type: 'boolean' },
      ],
      'list',
    );
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
    const p = parseArgs(
      argv,
      [
        { name: 'bundle', alias: 'b', type: 'string' },
        { name: 'rootless', type: 'boolean' },
      ],
      'spec',
    );
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
    if (globals.flags.help || !command || command === 'help') {
      writeStdout(USAGE + '\n');
      return command || globals.flags.help ? 0 : 1;
    }
    const cli = new Cli(g);
    cli.logger = logger;
    return await cli.main(command, rest);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
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
