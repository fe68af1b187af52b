// Shared by the client tests (podman, containerd/ctr, dockerd): the environment scripts/ci-clients.sh
// set up, a command runner, the wrapper's argv log, and the leftover checks (state dirs, cgroups, mounts,
// processes) for the ids a test created.
import { spawnSync } from 'child_process';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface ClientsEnv {
  work: string;
  repo: string;
  /** The logging wrapper registered with every client (basename `hako`). */
  hako: string;
  realHako: string;
  argvLog: string;
  image: string;
  containerdSocket: string;
  containerdLog: string;
  dockerHost: string;
  dockerExecRoot: string;
  dockerLog: string;
  containersConf: string;
  storageConf: string;
  /** docker-archives of localhost/busybox:latest and localhost/pause:hako (the CRI sandbox image). */
  busyboxArchive: string;
  pauseArchive: string;
  /** node_modules with @grpc/grpc-js and @grpc/proto-loader (the CRI client of kubernetes.test.ts). */
  criClientModules: string;
  /** Rootless podman: its user and the wrapper it runs (absent from an env.json of an older script). */
  rootless?: RootlessEnv;
}

/** The unprivileged user scripts/ci-clients.sh set up for rootless podman, and its own logging wrapper. */
export interface RootlessEnv {
  user: string;
  uid: number;
  gid: number;
  home: string;
  xdgRuntimeDir: string;
  /** Its wrapper (basename `hako`, in the user's containers.conf) and that wrapper's log. */
  hako: string;
  argvLog: string;
  /** bin/hako of this checkout, or a copy of it when the user cannot read the checkout. */
  realHako: string;
}

export const WORK = process.env.HAKO_CLIENTS_WORK ?? '/tmp/hako-clients';

let cached: ClientsEnv | undefined;
export function clientsEnv(): ClientsEnv {
  if (cached) return cached;
  const file = path.join(WORK, 'env.json');
  if (!fs.existsSync(file))
    throw new Error(
      `${file} is missing: run \`bash scripts/ci-clients.sh\` first (it installs and starts the clients)`,
    );
  cached = JSON.parse(fs.readFileSync(file, 'utf8')) as ClientsEnv;
  return cached;
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout + stderr, for messages. */
  all: string;
  ms: number;
  cmd: string;
}

/**
 * Run a command. stdout/stderr go through files, not pipes: daemons and detached containers may inherit
 * them, and a pipe would keep the caller waiting for them.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeout?: number; cwd?: string } = {},
): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-clients-run-'));
  const out = fs.openSync(path.join(dir, 'out'), 'w+');
  const err = fs.openSync(path.join(dir, 'err'), 'w+');
  const t0 = Date.now();
  try {
    const r = spawnSync(cmd, args, {
      encoding: 'utf8',
      input: opts.input,
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? os.tmpdir(),
      timeout: opts.timeout ?? 60_000,
      killSignal: 'SIGKILL',
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', out, err],
    });
    const stdout = fs.readFileSync(path.join(dir, 'out'), 'utf8');
    const stderr = fs.readFileSync(path.join(dir, 'err'), 'utf8');
    const line = [cmd, ...args]
      .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
      .join(' ');
    return {
      status: r.status,
      signal: r.signal,
      stdout,
      stderr,
      all: `${stdout}${stderr}${r.error ? `\n(${r.error.message})` : ''}`,
      ms: Date.now() - t0,
      cmd: line,
    };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A containerd tool (`containerd`, `ctr`) as the tests find it: the first on PATH, which is how they are pointed at
 * another containerd (`PATH=/opt/containerd-1.7/bin:$PATH`). `version` is the third word of `--version`
 * ("containerd github.com/containerd/containerd 1.7.13 <revision>"); `found` false when it is not there.
 */
export function containerdTool(name: 'containerd' | 'ctr'): { path: string; version: string; found: boolean } {
  const where = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const file = where.status === 0 ? where.stdout.trim() : '';
  if (!file) return { path: `${name} not on PATH`, version: '?', found: false };
  const v = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const version = v.status === 0 ? v.stdout.trim().split(/\s+/)[2] : undefined;
  return { path: file, version: version ?? '?', found: version !== undefined };
}

/** Describe a result for an assertion message, with the tail of the argv log (`log`: another wrapper's). */
export function explain(r: RunResult, extra = '', log?: string): string {
  return `$ ${r.cmd}\n-> status ${r.status}${r.signal ? ` signal ${r.signal}` : ''} (${r.ms} ms)\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}${extra}\n--- last hako calls\n${argvLogTail(12, log)}`;
}

export function ok(r: RunResult, extra = ''): RunResult {
  assert.equal(r.status, 0, explain(r, extra));
  return r;
}

/** The size `withTty` gives its terminal (the clients copy it to the container's pty). */
export const TTY_SIZE = { rows: 30, cols: 100 };

/**
 * Run `cmd` under `script` so that it gets a terminal (ctr -t panics without one), sized TTY_SIZE: a pty
 * that script makes without a terminal of its own is 0x0, and the clients pass that size on.
 */
export function withTty(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {},
): RunResult {
  const line = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return run('script', ['-qec', `stty rows ${TTY_SIZE.rows} cols ${TTY_SIZE.cols}; exec ${line}`, '/dev/null'], opts);
}

/** Poll `fn` until it returns a truthy value or `ms` passes. */
export async function waitFor<T>(fn: () => T | undefined | null | false, ms = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ------------------------------------------------------------------ argv log

export interface HakoCall {
  parent: string;
  cwd: string;
  argv: string[];
  fds: string;
  rc?: number;
  ms?: number;
}

/** Split a bash `printf %q` line back into words (handles '…', $'…' and backslash escapes). */
function unquoteWords(s: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === ' ') i++;
    if (i >= s.length) break;
    let w = '';
    while (i < s.length && s[i] !== ' ') {
      const c = s[i];
      if (c === '\\') {
        w += s[i + 1] ?? '';
        i += 2;
      } else if (c === "'") {
        const j = s.indexOf("'", i + 1);
        w += s.slice(i + 1, j);
        i = j + 1;
      } else if (c === '$' && s[i + 1] === "'") {
        let j = i + 2;
        while (j < s.length && s[j] !== "'") {
          if (s[j] === '\\') {
            const e = s[j + 1];
            w += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e === 'e' ? '\x1b' : e;
            j += 2;
          } else w += s[j++];
        }
        i = j + 1;
      } else {
        w += c;
        i++;
      }
    }
    words.push(w);
  }
  return words;
}

/** The calls a wrapper logged: the one registered with every client unless `file` names another log. */
export function argvLog(file?: string): HakoCall[] {
  let text: string;
  try {
    text = fs.readFileSync(file ?? clientsEnv().argvLog, 'utf8');
  } catch {
    return [];
  }
  const calls = new Map<string, HakoCall>();
  const order: HakoCall[] = [];
  let cur: HakoCall | undefined;
  for (const line of text.split('\n')) {
    let m = /^\S+ pid=(\d+) parent=(.*?) cwd=(.*)$/.exec(line);
    if (m) {
      cur = { parent: m[2], cwd: m[3], argv: [], fds: '' };
      calls.set(m[1], cur);
      order.push(cur);
      continue;
    }
    if (line.startsWith('  argv:') && cur) cur.argv = unquoteWords(line.slice('  argv:'.length));
    else if (line.startsWith('  fds:') && cur) cur.fds = line.slice('  fds:'.length);
    else if ((m = /^ {2}(\d+) -> rc=(\d+) \((\d+) ms\)$/.exec(line))) {
      const c = calls.get(m[1]);
      if (c) {
        c.rc = Number(m[2]);
        c.ms = Number(m[3]);
      }
    }
  }
  return order;
}

/** The calls whose argv mentions `id`, as "verb args…" without the global flags. */
export function callsFor(id: string, log?: string): HakoCall[] {
  return argvLog(log).filter((c) => c.argv.includes(id));
}

/** The subcommand and its arguments: argv after the global flags. */
export function verbOf(c: HakoCall): string[] {
  const valueFlags = new Set(['--root', '--log', '--log-format', '--rootless', '--cgroup-manager']);
  let i = 0;
  while (i < c.argv.length && c.argv[i].startsWith('-')) {
    if (valueFlags.has(c.argv[i])) i++;
    i++;
  }
  return c.argv.slice(i);
}

export function globalFlag(c: HakoCall, name: string): string | undefined {
  for (let i = 0; i < c.argv.length; i++) {
    if (c.argv[i] === name) return c.argv[i + 1];
    if (c.argv[i].startsWith(`${name}=`)) return c.argv[i].slice(name.length + 1);
  }
  return undefined;
}

function argvLogTail(n: number, log?: string): string {
  try {
    const calls = argvLog(log).slice(-n);
    return calls.map((c) => `  [${c.parent}] ${c.argv.join(' ')} -> rc=${c.rc ?? '?'} (${c.ms ?? '?'} ms)`).join('\n');
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------ hako state and leftovers

/** `hako --root R list --format json` through the real CLI. */
export function hakoList(root: string): { id: string; status: string; pid?: number }[] {
  if (!fs.existsSync(root)) return [];
  const r = run(clientsEnv().realHako, ['--root', root, 'list', '--format', 'json']);
  assert.equal(r.status, 0, explain(r));
  return JSON.parse(r.stdout || '[]');
}

function cgroupDirsNamed(id: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.includes(id)) out.push(p);
      else if (depth > 0) walk(p, depth - 1);
    }
  };
  let hierarchies: string[];
  try {
    hierarchies = fs.readdirSync('/sys/fs/cgroup');
  } catch {
    return out;
  }
  for (const h of hierarchies) walk(path.join('/sys/fs/cgroup', h), 3);
  return out;
}

/** Processes whose cgroup or command line mentions `id`. */
function processesOf(id: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cg = fs.readFileSync(`/proc/${d}/cgroup`, 'utf8');
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const comm = fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      let root = '';
      try {
        root = fs.readlinkSync(`/proc/${d}/root`);
      } catch {
        /* kernel thread or gone */
      }
      // Processes in the container's cgroups or inside its rootfs; and the client's own monitor for the
      // id (containerd-shim `-id ID`, conmon `-c ID`), which outlives the container only when a runtime
      // call never returned.
      const argv = cmd.split(' ');
      const monitor =
        (/containerd-shim/.test(argv[0]) && argv[argv.indexOf('-id') + 1] === id) ||
        (comm === 'conmon' && argv[argv.indexOf('-c') + 1] === id);
      if (cg.includes(id) || root.includes(id) || monitor)
        out.push(`pid ${d} (${comm}) root=${root} ${cmd.slice(0, 160)}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * Everything of container `id` that could remain after its client removed it: the state dir in `root`,
 * cgroup directories named after it, mounts naming it, processes in its cgroups.
 */
export function leftovers(id: string, roots: string[]): string[] {
  const out: string[] = [];
  for (const r of roots) if (fs.existsSync(path.join(r, id))) out.push(`state dir ${path.join(r, id)}`);
  for (const c of cgroupDirsNamed(id)) out.push(`cgroup ${c}`);
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
    if (line.includes(id)) out.push(`mount ${line}`);
  for (const p of processesOf(id)) out.push(`process ${p}`);
  return out;
}

// ------------------------------------------------------------------ rootless clients

/**
 * Run a command as the rootless user, with the environment a login would give (and nothing of ours): its
 * $HOME holds its containers.conf and podman storage, $XDG_RUNTIME_DIR podman's run dir and hako's state.
 */
export function runAs(u: RootlessEnv, cmd: string, args: string[], opts: { timeout?: number } = {}): RunResult {
  const env = [
    `HOME=${u.home}`,
    `USER=${u.user}`,
    `LOGNAME=${u.user}`,
    `XDG_RUNTIME_DIR=${u.xdgRuntimeDir}`,
    'PATH=/usr/bin:/bin',
  ];
  return run(
    'setpriv',
    [
      '--reuid',
      String(u.uid),
      '--regid',
      String(u.gid),
      '--init-groups',
      'env',
      '-i',
      '-C',
      u.home,
      ...env,
      cmd,
      ...args,
    ],
    { timeout: opts.timeout, env: { PATH: '/usr/bin:/bin' } },
  );
}

/** The subordinate id range /etc/subuid (or /etc/subgid) gives `user`. */
export function subordinateIds(user: string, uid: number, file = '/etc/subuid'): { start: number; count: number } {
  const line = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`) || l.startsWith(`${uid}:`));
  assert.ok(line, `${file} has no range for ${user}`);
  const [, start, count] = line.split(':').map(Number);
  return { start, count };
}

/** Processes whose real or effective uid `owned` accepts (pids in `except` aside), described for messages. */
export function processesOwnedBy(owned: (uid: number) => boolean, except: Set<number> = new Set()): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || except.has(Number(d))) continue;
    try {
      const status = fs.readFileSync(`/proc/${d}/status`, 'utf8');
      const [real, eff] = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1).map(Number);
      if (!owned(real) && !owned(eff)) continue;
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.push(`pid ${d} uid ${real} (${/^Name:\s+(.*)$/m.exec(status)?.[1]}) ${cmd.slice(0, 160)}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * Assert that nothing of `ids` remains, polling a little: clients finish some cleanup asynchronously.
 * With `cleanup` (the end of a test file), whatever remains is reported and then removed, so that one
 * failure does not spill into the next file: the client's shim for the id is killed (a shim stuck in a
 * runtime call never exits) and `hako delete --force` runs in each root.
 */
export async function assertNoLeftovers(
  ids: Iterable<string>,
  roots: string[],
  ms = 10_000,
  cleanup = false,
): Promise<void> {
  const list = [...ids];
  let left: string[] = [];
  const end = Date.now() + ms;
  for (;;) {
    left = list.flatMap((id) => leftovers(id, roots));
    if (!left.length || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (left.length && cleanup) forceCleanup(list, roots);
  assert.deepEqual(left, [], `hako left these behind:\n${left.join('\n')}`);
}

function forceCleanup(ids: string[], roots: string[]): void {
  const stuck = new Set(ids);
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('-id');
      if (/containerd-shim/.test(argv[0]) && i > 0 && stuck.has(argv[i + 1])) process.kill(Number(d), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const root of roots)
    for (const id of ids)
      if (fs.existsSync(path.join(root, id))) run(clientsEnv().realHako, ['--root', root, 'delete', '--force', id]);
}

/** A short unique suffix for names and ids. */
export function uniq(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Read a host cgroup v1 file of a container whose cgroup path is `cgPath` (`/docker/<id>` style). */
export function hostCgroupFile(controller: string, cgPath: string, file: string): string | undefined {
  try {
    return fs.readFileSync(path.join('/sys/fs/cgroup', controller, cgPath, file), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The most recent call of `verb` made by a process named `parent` (conmon, containerd-shim, …) and, when
 * given, with `--root root`; in the log of the wrapper registered with every client unless `log` names another.
 */
export function lastCall(verb: string, parent?: string, root?: string, log?: string): HakoCall | undefined {
  return argvLog(log)
    .filter(
      (c) =>
        verbOf(c)[0] === verb &&
        (parent === undefined || c.parent.startsWith(parent)) &&
        (root === undefined || globalFlag(c, '--root') === root),
    )
    .at(-1);
}

/** The script a `--privileged` container runs for assertPrivileged. */
export const PRIVILEGED_PROBE = 'grep CapEff /proc/self/status; test -c /dev/kmsg && echo host-devices';

/**
 * What a `--privileged` container printed running PRIVILEGED_PROBE: the capabilities it holds are the runtime's own at most (a host whose bounding set lacks
 * one still runs it), CAP_SYS_ADMIN among them; host devices are there; no warning reached its output.
 */
export function assertPrivileged(r: RunResult): void {
  const eff = BigInt('0x' + /CapEff:\s*([0-9a-f]+)/.exec(r.stdout)![1]);
  const mine = BigInt('0x' + /CapPrm:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);
  assert.equal(eff & ~mine, 0n, 'nothing beyond what the runtime holds');
  assert.ok(eff & (1n << 21n), 'CAP_SYS_ADMIN');
  assert.match(r.stdout, /host-devices/);
  // A capability the host cannot give is a warning in hako's log, never in the container's output.
  assert.doesNotMatch(r.stdout + r.stderr, /warning/);
}
