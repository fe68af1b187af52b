// The runc-compatible command line: the dispatcher. It parses the global options, answers --version and the
// help, and hands the rest to the verb's module (verbs/), each a thin layer over the library. Modules are
// required lazily per verb so `hako --version` or `hako state` load only what they use.
import { HakoError } from '../errors';
import { trace, type Logger } from '../log';
import { defaultStateRoot } from '../runtime/privilege';
import { HAKO_VERSION } from '../version';
import { GLOBAL_FLAGS, VERBS, parseArgs, wantsHelp, type Parsed } from './args';
import { CliContext, type Globals, type Verb } from './context';
import { recordInheritedFds } from './inherited-fds';
import { globalHelp, verbHelp, writeStderr, writeStdout } from './output';

const SPEC_VERSION = '1.2.1';

/** crun's `--cgroup-manager`: cgroupfs (hako's own) or systemd (as --systemd-cgroup). True for systemd. */
function cgroupManager(value: unknown): boolean {
  if (value === undefined || value === 'cgroupfs') return false;
  if (value === 'systemd') return true;
  if (value === 'disabled')
    throw new HakoError(
      '--cgroup-manager: "disabled" is not supported: hako always places a container in cgroups (a rootless caller without a delegated cgroup gets a warning instead)',
      { field: '--cgroup-manager' },
    );
  throw new HakoError(`--cgroup-manager: unknown cgroup manager "${String(value)}" (cgroupfs or systemd)`, {
    field: '--cgroup-manager',
  });
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
  const valueFlags = new Set(
    GLOBAL_FLAGS.filter((f) => f.type !== 'boolean').flatMap((f) => [
      `--${f.name}`,
      `-${f.name}`,
      ...(f.alias ? [`-${f.alias}`] : []),
    ]),
  );
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
  if (field && Object.hasOwn(OPTION_FLAGS, field) && msg.startsWith(`${field}: `))
    return `${OPTION_FLAGS[field]}: ${msg.slice(field.length + 2)}`;
  return msg;
}

/** Each verb's module, loaded when that verb runs. */
const VERB_MODULES: Record<string, () => Verb> = {
  create: () => (require('./verbs/create-run') as typeof import('./verbs/create-run')).createOrRun,
  run: () => (require('./verbs/create-run') as typeof import('./verbs/create-run')).createOrRun,
  start: () => (require('./verbs/start') as typeof import('./verbs/start')).start,
  setup: () => (require('./verbs/setup') as typeof import('./verbs/setup')).setup,
  state: () => (require('./verbs/state') as typeof import('./verbs/state')).state,
  kill: () => (require('./verbs/kill') as typeof import('./verbs/kill')).kill,
  delete: () => (require('./verbs/delete') as typeof import('./verbs/delete')).deleteVerb,
  list: () => (require('./verbs/list') as typeof import('./verbs/list')).list,
  exec: () => (require('./verbs/exec') as typeof import('./verbs/exec')).exec,
  ps: () => (require('./verbs/ps') as typeof import('./verbs/ps')).ps,
  update: () => (require('./verbs/update') as typeof import('./verbs/update')).update,
  events: () => (require('./verbs/events') as typeof import('./verbs/events')).events,
  'policy-server': () => (cli, argv) =>
    (require('./verbs/policy') as typeof import('./verbs/policy')).policyServerCommand(argv, cli.logger),
  policy: () => (_cli, argv) => (require('./verbs/policy') as typeof import('./verbs/policy')).policyCommand(argv),
  pause: () => (require('./verbs/pause-resume') as typeof import('./verbs/pause-resume')).pauseResume,
  resume: () => (require('./verbs/pause-resume') as typeof import('./verbs/pause-resume')).pauseResume,
  spec: () => (require('./verbs/spec') as typeof import('./verbs/spec')).spec,
  features: () => (require('./verbs/features') as typeof import('./verbs/features')).features,
  'example-bundle': () => (require('./verbs/example-bundle') as typeof import('./verbs/example-bundle')).exampleBundle,
};

async function dispatch(cli: CliContext, command: string, argv: string[]): Promise<number> {
  if (Object.hasOwn(VERB_MODULES, command)) return VERB_MODULES[command]()(cli, argv, command);
  if (command === 'checkpoint' || command === 'restore')
    // containerd's shim calls these for `ctr task checkpoint`: say plainly that they do not exist here.
    throw new HakoError(`${command} is not supported by hako (no CRIU); the container is left as it is`, {
      field: 'command',
    });
  throw new HakoError(`unknown command "${command}" (see hako --help)`, { field: 'command' });
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
    return await dispatch(new CliContext(g, logger), command, rest);
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
