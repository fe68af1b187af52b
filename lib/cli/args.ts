// Over 400 lines because it is the whole argument surface as data: the parser and the flag table of every verb, read together.
// The command line's arguments: a small runc-style parser (`--flag value`, `--flag=value`, `-f value`, boolean
// flags, positional arguments; flags may follow positionals, as urfave/cli (runc) allows), the flag tables of
// the global options and of every verb, and the helpers the verbs share to read them. The parser takes its
// flags from these same tables (parseVerb), and the help (output.ts) prints them, so the help cannot list a
// flag the verb does not take, nor miss one it does.
import * as fs from 'fs';
import { HakoError } from '../errors';

export interface FlagSpec {
  name: string;
  alias?: string;
  type: 'string' | 'boolean' | 'number';
  multiple?: boolean;
  /** For the help text (output.ts): what the flag does, and the name of its value. */
  usage?: string;
  value?: string;
}

export interface Parsed {
  flags: Record<string, string | boolean | number | string[] | undefined>;
  positional: string[];
}

/** `command` prefixes the errors ("create: flag provided but not defined: -x"); '' for the global flags, whose errors the CLI prefixes with "hako: " itself. */
export function parseArgs(
  argv: string[],
  specs: FlagSpec[],
  command: string,
  opts: { stopAtPositional?: boolean } = {},
): Parsed {
  const pre = command ? `${command}: ` : '';
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    if (s.alias) byName.set(s.alias, s);
  }
  const out: Parsed = { flags: {}, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (opts.stopAtPositional) {
        out.positional.push(...argv.slice(i));
        break;
      }
      out.positional.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const key = eq >= 0 ? body.slice(0, eq) : body;
    const spec = byName.get(key);
    if (!spec) throw new HakoError(`${pre}flag provided but not defined: -${key}`, { field: a });
    let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (spec.type === 'boolean') {
      out.flags[spec.name] = value === undefined ? true : value !== 'false';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new HakoError(`${pre}flag needs an argument: -${key}`, { field: a });
      value = argv[++i];
    }
    if (spec.type === 'number') {
      if (!/^\d+$/.test(value))
        throw new HakoError(`${pre}invalid value "${value}" for flag -${key}`, { field: `--${spec.name}` });
      out.flags[spec.name] = Number(value);
    } else if (spec.multiple) {
      ((out.flags[spec.name] as string[] | undefined) ?? (out.flags[spec.name] = [])).push(value);
    } else out.flags[spec.name] = value;
  }
  return out;
}

export interface VerbSpec {
  /** One line for the command list of `hako --help`. */
  summary: string;
  /** What follows `hako VERB` in the usage line. */
  args: string;
  /** A few lines more, when the summary is not enough. */
  description?: string;
  flags: FlagSpec[];
  /** Everything after the first positional belongs to the container's command (exec, ps), not to hako. */
  stopAtPositional?: boolean;
}

export const GLOBAL_FLAGS: FlagSpec[] = [
  {
    name: 'root',
    type: 'string',
    value: 'DIR',
    usage: 'state directory (default /run/hako; $XDG_RUNTIME_DIR/hako when not root)',
  },
  { name: 'log', type: 'string', value: 'FILE', usage: 'log file (default: stderr)' },
  { name: 'log-format', type: 'string', value: 'text|json', usage: 'format of the log (default text)' },
  { name: 'debug', type: 'boolean', usage: 'log every setup step' },
  {
    name: 'systemd-cgroup',
    type: 'boolean',
    usage:
      'use the systemd cgroup driver: a transient scope per container, cgroupsPath "slice:prefix:name" (needs systemd as PID 1 and root)',
  },
  {
    name: 'rootless',
    type: 'string',
    value: 'true|false|auto',
    usage: 'treat cgroup permission errors as warnings (default auto)',
  },
  {
    name: 'cgroup-manager',
    type: 'string',
    value: 'cgroupfs|systemd',
    usage: 'cgroupfs (the default) or systemd (as --systemd-cgroup), as crun takes it',
  },
  { name: 'version', alias: 'v', type: 'boolean', usage: 'print the version' },
  { name: 'help', alias: 'h', type: 'boolean', usage: 'show help' },
];

/** `create` and `run` take the same flags (runc's run adds --detach, --keep, --no-subreaper; create ignores them). */
const CREATE_FLAGS: FlagSpec[] = [
  {
    name: 'bundle',
    alias: 'b',
    type: 'string',
    value: 'DIR',
    usage: 'the bundle directory, holding config.json (default: the current directory)',
  },
  {
    name: 'config',
    alias: 'f',
    type: 'string',
    value: 'FILE',
    usage: 'a config file other than BUNDLE/config.json (relative to the current directory)',
  },
  { name: 'pid-file', type: 'string', value: 'FILE', usage: "write the pid of the container's init there" },
  {
    name: 'console-socket',
    type: 'string',
    value: 'SOCKET',
    usage: 'AF_UNIX socket that receives the pty master of a terminal container',
  },
  {
    name: 'pidfd-socket',
    type: 'string',
    value: 'SOCKET',
    usage: "AF_UNIX socket that receives a pidfd of the container's init",
  },
  { name: 'no-pivot', type: 'boolean', usage: 'do not use pivot_root (for a rootfs on a ramdisk)' },
  { name: 'no-new-keyring', type: 'boolean', usage: 'do not create a new session keyring' },
  { name: 'preserve-fds', type: 'number', value: 'N', usage: 'pass N more inherited fds (3..3+N-1) to the process' },
  {
    name: 'detach',
    alias: 'd',
    type: 'boolean',
    usage: 'run: return once the process started, leaving the container running',
  },
  { name: 'keep', type: 'boolean', usage: 'run: do not delete the container when its process exits' },
  { name: 'no-subreaper', type: 'boolean', usage: "accepted for runc compatibility; hako's init is the reaper" },
];

const FORCE = {
  name: 'force',
  alias: 'f',
  type: 'boolean',
  usage: 'kill the container first if it is still running',
} as const;
const sizeFlag = (name: string, usage: string): FlagSpec => ({ name, type: 'string', value: 'VALUE', usage });

export const VERBS: Record<string, VerbSpec> = {
  create: {
    summary: 'create a container from a bundle (it waits for start)',
    args: '[command options] <container-id>',
    flags: CREATE_FLAGS,
  },
  start: { summary: 'run the configured process of a created container', args: '<container-id>', flags: [] },
  setup: {
    summary: 'run a given process (--process FILE) in a created container at once',
    args: '[command options] <container-id>',
    description:
      'A process the kernel refuses (an affinity outside the cpuset, a real-time policy without budget,\na missing executable) is reported and the container keeps waiting, untouched.',
    flags: [
      {
        name: 'process',
        alias: 'p',
        type: 'string',
        value: 'FILE',
        usage: 'a runtime-spec process object (JSON; - for stdin); required',
      },
      { name: 'cpu-affinity', type: 'string', value: 'LIST', usage: 'CPUs the process may run on (0-1,3)' },
      {
        name: 'sched',
        type: 'string',
        value: 'POLICY[:PRIO]',
        usage: 'FIFO, RR, OTHER, BATCH, IDLE or DEADLINE:runtime:deadline:period',
      },
    ],
  },
  run: {
    summary: 'create and start a container (foreground unless --detach)',
    args: '[command options] <container-id>',
    flags: CREATE_FLAGS,
  },
  state: { summary: 'print the state of a container as JSON', args: '<container-id>', flags: [] },
  exec: {
    summary: 'run another process in a running container',
    args: '[command options] <container-id> <command> [command arguments...]',
    stopAtPositional: true,
    flags: [
      {
        name: 'process',
        alias: 'p',
        type: 'string',
        value: 'FILE',
        usage: 'a runtime-spec process object (JSON) instead of a command',
      },
      { name: 'tty', alias: 't', type: 'boolean', usage: 'allocate a pseudo-TTY' },
      { name: 'console-socket', type: 'string', value: 'SOCKET', usage: 'AF_UNIX socket that receives the pty master' },
      {
        name: 'pidfd-socket',
        type: 'string',
        value: 'SOCKET',
        usage: 'AF_UNIX socket that receives a pidfd of the process',
      },
      { name: 'cwd', type: 'string', value: 'DIR', usage: 'working directory in the container' },
      {
        name: 'env',
        alias: 'e',
        type: 'string',
        multiple: true,
        value: 'KEY=VALUE',
        usage: 'set an environment variable (repeatable)',
      },
      { name: 'user', alias: 'u', type: 'string', value: 'UID[:GID]', usage: 'user (and group) id of the process' },
      {
        name: 'additional-gids',
        alias: 'g',
        type: 'string',
        multiple: true,
        value: 'GID',
        usage: 'an additional group (repeatable)',
      },
      { name: 'cap', alias: 'c', type: 'string', multiple: true, value: 'CAP', usage: 'add a capability (repeatable)' },
      { name: 'no-new-privs', type: 'boolean', usage: 'set no_new_privs' },
      { name: 'apparmor', type: 'string', value: 'PROFILE', usage: 'apparmor profile of the process' },
      { name: 'process-label', type: 'string', value: 'LABEL', usage: 'SELinux label of the process' },
      {
        name: 'preserve-fds',
        type: 'number',
        value: 'N',
        usage: 'pass N more inherited fds (3..3+N-1) to the process',
      },
      { name: 'detach', alias: 'd', type: 'boolean', usage: 'return once the process started' },
      { name: 'pid-file', type: 'string', value: 'FILE', usage: 'write the pid of the process there' },
      { name: 'ignore-paused', type: 'boolean', usage: 'exec even when the container is paused' },
      {
        name: 'cgroup',
        type: 'string',
        multiple: true,
        value: '[CTRL[,CTRL]:]PATH',
        usage: 'run in this sub-cgroup of the container (runc 1.1; repeatable, one per controller list)',
      },
    ],
  },
  ps: {
    summary: "list the container's processes",
    args: '[command options] <container-id> [ps options]',
    stopAtPositional: true,
    flags: [
      { name: 'format', alias: 'f', type: 'string', value: 'table|json', usage: 'output format (default table)' },
    ],
  },
  pause: { summary: 'freeze every process of a container', args: '<container-id>', flags: [] },
  resume: { summary: 'thaw a paused container', args: '<container-id>', flags: [] },
  update: {
    summary: "change a container's resources",
    args: '[command options] <container-id>',
    flags: [
      { name: 'resources', alias: 'r', type: 'string', value: 'FILE', usage: 'LinuxResources JSON (- for stdin)' },
      sizeFlag('memory', 'memory limit (bytes, or with k, m, g, t)'),
      sizeFlag('memory-swap', 'memory + swap limit'),
      sizeFlag('memory-reservation', 'memory soft limit'),
      sizeFlag('kernel-memory', 'kernel memory limit (cgroup v1)'),
      sizeFlag('kernel-memory-tcp', 'kernel TCP buffer limit (cgroup v1)'),
      sizeFlag('cpu-share', 'CPU shares (relative weight)'),
      sizeFlag('cpu-shares', "as --cpu-share (Docker's spelling)"),
      sizeFlag('cpu-idle', '1: the cgroup runs at SCHED_IDLE'),
      sizeFlag('cpu-quota', 'CPU time per period (µs)'),
      sizeFlag('cpu-period', 'CPU period (µs)'),
      sizeFlag('cpu-rt-period', 'real-time period (µs)'),
      sizeFlag('cpu-rt-runtime', 'real-time runtime per period (µs)'),
      sizeFlag('cpu-burst', 'CPU burst (µs)'),
      sizeFlag('cpuset-cpus', 'CPUs allowed (0-3,5)'),
      sizeFlag('cpuset-mems', 'memory nodes allowed'),
      sizeFlag('pids-limit', 'maximum number of processes'),
      sizeFlag('blkio-weight', 'block IO weight'),
      sizeFlag('l3-cache-schema', 'Intel RDT (not supported)'),
      sizeFlag('mem-bw-schema', 'Intel RDT (not supported)'),
    ],
  },
  events: {
    summary: 'print resource statistics and OOM events',
    args: '[command options] <container-id>',
    flags: [
      { name: 'stats', type: 'boolean', usage: 'print one statistics record and exit' },
      { name: 'interval', type: 'string', value: 'DURATION', usage: 'time between statistics records (default 5s)' },
    ],
  },
  kill: {
    summary: "send a signal to a container's init",
    args: '[command options] <container-id> [signal]',
    description: 'The signal is a name (TERM, SIGKILL) or a number; the default is TERM.',
    flags: [{ name: 'all', alias: 'a', type: 'boolean', usage: 'send it to every process of the container' }],
  },
  delete: { summary: 'delete a container', args: '[command options] <container-id>', flags: [FORCE] },
  list: {
    summary: 'list containers',
    args: '[command options]',
    flags: [
      { name: 'format', alias: 'f', type: 'string', value: 'table|json', usage: 'output format (default table)' },
      { name: 'quiet', alias: 'q', type: 'boolean', usage: 'print the ids only' },
    ],
  },
  spec: {
    summary: 'write a default config.json',
    args: '[command options]',
    flags: [
      {
        name: 'bundle',
        alias: 'b',
        type: 'string',
        value: 'DIR',
        usage: 'where to write config.json (default: the current directory)',
      },
      { name: 'rootless', type: 'boolean', usage: 'a config for an unprivileged user (with a user namespace)' },
    ],
  },
  features: { summary: 'print the runtime-spec features document', args: '', flags: [] },
  'example-bundle': {
    summary: 'make a small demo bundle (a rootfs holding only hako-probe) in DIR',
    args: '<dir>',
    description: 'Runs with: hako run --bundle DIR ID (prints "Hello from a hako container!").',
    flags: [],
  },
  'policy-server': {
    summary: 'serve seccomp notifications of containers by policy',
    args: '--socket PATH --policy FILE [command options]',
    description:
      'Serves the seccomp notifications of containers whose linux.seccomp.listenerPath is PATH,\ndeciding each call with the policy in FILE (JSON or YAML, see docs/policy.md).',
    flags: [
      {
        name: 'socket',
        alias: 's',
        type: 'string',
        value: 'PATH',
        usage: 'the unix socket to listen on (created 0700, or 0770 with --group)',
      },
      { name: 'policy', alias: 'p', type: 'string', value: 'FILE', usage: 'the policy; SIGHUP reloads it' },
      { name: 'group', type: 'string', value: 'GROUP', usage: 'members of GROUP may connect (besides root)' },
      { name: 'user', type: 'string', multiple: true, value: 'UID', usage: 'this uid may connect (repeatable)' },
      {
        name: 'audit-log',
        type: 'string',
        value: 'FILE',
        usage: 'append audit lines there instead of stdout (when the policy has audit: true)',
      },
      {
        name: 'window',
        type: 'number',
        value: 'N',
        usage: 'notifications of one container in flight at once (default 64)',
      },
      { name: 'sync-wakeup', type: 'boolean', usage: 'SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux >= 6.6)' },
      {
        name: 'host-callers',
        type: 'boolean',
        usage: 'also serve callers in the initial user namespace (refused by default)',
      },
      { name: 'check', type: 'boolean', usage: 'only validate the policy file and exit' },
      {
        name: 'no-keeper',
        type: 'boolean',
        usage:
          'do not deposit the notify fds in hako-fd-keeper: running containers are not served again after a restart (ENOSYS)',
      },
      {
        name: 'release-on-exit',
        type: 'boolean',
        usage: 'on SIGINT/SIGTERM, have hako-fd-keeper drop the fds too (stop for good)',
      },
    ],
  },
  policy: {
    summary: 'policy seccomp-section: print (or --bundle: write) the config.json seccomp section for a policy server',
    args: 'seccomp-section --socket PATH [command options]',
    description:
      "Prints the linux.seccomp section of config.json that sends a container's privileged calls\n(mount, umount2, device mknod, sethostname, ...) to the policy server listening on PATH.",
    flags: [
      {
        name: 'socket',
        alias: 's',
        type: 'string',
        value: 'PATH',
        usage: "the policy server's socket (linux.seccomp.listenerPath; made absolute)",
      },
      {
        name: 'metadata',
        type: 'string',
        value: 'STR',
        usage: "linux.seccomp.listenerMetadata (matched by profiles' match.metadata)",
      },
      {
        name: 'include',
        type: 'string',
        multiple: true,
        value: 'FAMILY',
        usage: 'also notify setxattr or chown (repeatable, or comma-separated)',
      },
      {
        name: 'base',
        type: 'string',
        value: 'default',
        usage: "extend hako's default seccomp profile instead of allowing everything else",
      },
      {
        name: 'bundle',
        alias: 'b',
        type: 'string',
        value: 'DIR',
        usage: 'write the section into DIR/config.json instead of printing it',
      },
    ],
  },
};

/** -h/--help of every verb; a verb's own table never defines it (`hako VERB --help` is answered before the verb runs). */
export const HELP_FLAG: FlagSpec = { name: 'help', alias: 'h', type: 'boolean', usage: 'show help' };

/** Parse a verb's arguments with its table. */
export function parseVerb(verb: string, argv: string[]): Parsed {
  const v = VERBS[verb];
  if (!v) throw new Error(`parseVerb: no flag table for ${verb}`);
  return parseArgs(argv, v.flags, verb, { stopAtPositional: v.stopAtPositional });
}

/**
 * Whether `argv` of `verb` asks for help (-h/--help among the verb's own flags; not after the container id of
 * exec or ps, where it is the command's). Arguments that do not parse are left for the verb to report.
 */
export function wantsHelp(verb: string, argv: string[]): boolean {
  const v = VERBS[verb];
  if (!v) return false;
  try {
    return !!parseArgs(argv, [...v.flags, HELP_FLAG], verb, { stopAtPositional: v.stopAtPositional }).flags.help;
  } catch {
    return false;
  }
}

export function requireId(p: Parsed, command: string): string {
  const id = p.positional[0];
  if (!id) throw new HakoError(`${command}: a container id is required`, { field: 'container id' });
  return id;
}

export function str(p: Parsed, name: string): string | undefined {
  return p.flags[name] as string | undefined;
}

/** A JSON file argument (- for stdin), its errors under the flag's name. */
export function readJsonArg(value: string, flag: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(value === '-' ? 0 : value, 'utf8'));
  } catch (e) {
    if (e instanceof RangeError) throw new HakoError(`${flag}: nested too deeply`, { field: flag });
    throw new HakoError(`${flag}: ${(e as Error).message.slice(0, 200)}`, { field: flag });
  }
}
