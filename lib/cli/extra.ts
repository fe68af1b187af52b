// The rest of the runc surface: exec, ps, pause/resume, update, events.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HakoError } from '../errors';
import { CAPABILITIES } from '../oci/constants';
import type { LinuxResources, Process } from '../oci/types';
import type { Runtime } from '../runtime/runtime';
import { pidFileError } from '../state/store';
import type { Parsed } from './args';
import { parseVerb } from './verbs';
import { preserveArgs } from './inherited-fds';

function requireId(p: Parsed, command: string): string {
  const id = p.positional[0];
  if (!id) throw new HakoError(`${command}: a container id is required`, { field: 'container id' });
  return id;
}

function readJsonArg(value: string, flag: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(value === '-' ? 0 : value, 'utf8'));
  } catch (e) {
    if (e instanceof RangeError) throw new HakoError(`${flag}: nested too deeply`, { field: flag });
    throw new HakoError(`${flag}: ${(e as Error).message.slice(0, 200)}`, { field: flag });
  }
}

/** The container's env with `--env K=V` applied: a key already there takes the new value in its place. */
export function mergeEnv(base: string[], extra: string[]): string[] {
  const out = [...base];
  for (const kv of extra) {
    const key = kv.includes('=') ? kv.slice(0, kv.indexOf('=') + 1) : `${kv}=`;
    const i = out.findIndex((e) => e.startsWith(key));
    if (i >= 0) out[i] = kv;
    else out.push(kv);
  }
  return out;
}

/**
 * runc 1.1's `exec --cgroup [CONTROLLER[,CONTROLLER]:]PATH` (repeatable): controller -> sub-cgroup path, ""
 * for one path in every hierarchy, which must then be the only --cgroup.
 */
export function subCgroupArgs(args: string[]): Record<string, string> | undefined {
  if (!args.length) return undefined;
  const out: Record<string, string> = {};
  for (const a of args) {
    const parts = a.split(':');
    if (parts.length > 2) throw new HakoError(`--cgroup: invalid argument: ${a}`, { field: '--cgroup' });
    if (parts.length === 1) {
      if (args.length !== 1) throw new HakoError(`--cgroup: invalid argument: ${a} (missing <controller>: prefix)`, { field: '--cgroup' });
      out[''] = a;
    } else {
      for (const c of parts[0].split(',')) out[c] = parts[1];
    }
  }
  return out;
}

/** `exec`: a process from --process, or from the container's own process with args and flag overrides. */
export async function execCommand(rt: Runtime, argv: string[]): Promise<number> {
  const p = parseVerb('exec', argv);
  const id = requireId(p, 'exec');
  let proc: Process;
  const file = p.flags.process as string | undefined;
  if (file) {
    proc = readJsonArg(file, '--process') as Process;
    if (p.flags.tty) proc.terminal = true;
    // runc decodes the file into a Go struct, so a missing user is uid 0, gid 0 (ctr and conmon always send one).
    if (proc && typeof proc === 'object' && proc.user === undefined) proc.user = { uid: 0, gid: 0 };
  } else {
    const args = p.positional.slice(1);
    if (!args.length) throw new HakoError('exec: a command is required (or --process FILE)', { field: 'command' });
    const base = rt.store.load(id).config.process;
    proc = {
      ...(base ?? { user: { uid: 0, gid: 0 }, cwd: '/' }),
      args,
      terminal: !!p.flags.tty,
      env: mergeEnv(base?.env ?? [], (p.flags.env as string[] | undefined) ?? []),
    };
    if (p.flags.cwd) proc.cwd = p.flags.cwd as string;
    if (p.flags.user) {
      const [uid, gid] = (p.flags.user as string).split(':');
      if (!/^\d+$/.test(uid) || (gid !== undefined && !/^\d+$/.test(gid)))
        throw new HakoError(`--user: expected UID[:GID], got "${String(p.flags.user)}"`, { field: '--user' });
      proc.user = { ...proc.user, uid: Number(uid), gid: gid === undefined ? proc.user.gid : Number(gid) };
    }
    if (p.flags['additional-gids']) proc.user = { ...proc.user, additionalGids: (p.flags['additional-gids'] as string[]).map(Number) };
    const caps = p.flags.cap as string[] | undefined;
    // A name on the command line is the caller's own typo to fix, unlike one in a config (plan/capabilities.ts).
    for (const c of caps ?? []) if (!(CAPABILITIES as readonly string[]).includes(c)) throw new HakoError(`--cap: unknown capability "${c}"`, { field: '--cap' });
    if (caps?.length) {
      const c = { ...(proc.capabilities ?? {}) };
      for (const set of ['bounding', 'effective', 'permitted', 'ambient'] as const) c[set] = [...new Set([...(c[set] ?? []), ...caps])];
      proc.capabilities = c;
    }
    if (p.flags['no-new-privs']) proc.noNewPrivileges = true;
    if (p.flags.apparmor) proc.apparmorProfile = p.flags.apparmor as string;
    if (p.flags['process-label']) proc.selinuxLabel = p.flags['process-label'] as string;
  }
  const pidFile = p.flags['pid-file'] as string | undefined;
  if (pidFile) {
    // Checked before anything starts: runc would start the process, fail to write the file and kill it.
    try {
      fs.statSync(path.dirname(path.resolve(pidFile)));
    } catch (e) {
      throw pidFileError(pidFile, e);
    }
  }
  rt.log.debug(`exec: ${JSON.stringify(proc.args)} in container ${id}`);
  // `exec -t` in the foreground without --console-socket: hako relays the pty to its own stdio, as runc does.
  const relay =
    proc.terminal && !p.flags['console-socket'] && !p.flags.detach ? (require('./terminal') as typeof import('./terminal')).consoleRelay() : undefined;
  // The exec'd process may ask for its size before the relay sets it: the pty is made with the caller's size.
  if (relay && process.stdout.isTTY && !proc.consoleSize) proc.consoleSize = { height: process.stdout.rows, width: process.stdout.columns };
  const c = await rt.exec(id, proc, {
    onConsole: relay && ((fd: number) => relay.attach(fd)),
    consoleSocket: p.flags['console-socket'] as string | undefined,
    pidfdSocket: p.flags['pidfd-socket'] as string | undefined,
    pidFile: p.flags['pid-file'] as string | undefined,
    // runc exec has no socket activation: only --preserve-fds.
    passFds: preserveArgs(p.flags['preserve-fds'] as number | undefined, false).passFds,
    ignorePaused: !!p.flags['ignore-paused'],
    subCgroups: subCgroupArgs((p.flags.cgroup as string[] | undefined) ?? []),
  });
  rt.log.debug(`exec: process ${c.pid} started in container ${id}`);
  if (p.flags.detach) return 0;
  const forward = (sig: NodeJS.Signals) => {
    try {
      c.signal(os.constants.signals[sig]);
    } catch {
      /* gone */
    }
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
  for (const s of sigs) process.on(s, forward);
  const st = await c.wait();
  await relay?.finish();
  for (const s of sigs) process.removeListener(s, forward);
  return st.status;
}

/** `ps`: the container's processes, as JSON pids or as `ps` rows (extra args go to ps). */
export async function psCommand(rt: Runtime, argv: string[]): Promise<number> {
  // As runc: everything after the id goes to ps (`hako ps ID -e -o pid,comm`).
  const p = parseVerb('ps', argv);
  const id = requireId(p, 'ps');
  const pids = await rt.ps(id);
  const format = (p.flags.format as string | undefined) ?? 'table';
  if (format === 'json') {
    process.stdout.write(JSON.stringify(pids) + '\n');
    return 0;
  }
  if (format !== 'table') throw new HakoError(`ps: invalid format "${format}" (table or json)`, { field: '--format' });
  const psArgs = p.positional.slice(1);
  const r = spawnSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8' });
  if (r.status !== 0) throw new HakoError(`ps: ${r.stderr || r.error?.message}`);
  const lines = r.stdout.split('\n').filter(Boolean);
  const header = lines[0];
  const col = header.trim().split(/\s+/).indexOf('PID');
  if (col < 0) throw new HakoError('ps: the ps output has no PID column');
  const set = new Set(pids);
  process.stdout.write(header + '\n');
  for (const l of lines.slice(1)) if (set.has(Number(l.trim().split(/\s+/)[col]))) process.stdout.write(l + '\n');
  return 0;
}

function sizeArg(v: string, flag: string): number {
  const m = /^(-?\d+)([kmgt]?)b?$/i.exec(v.trim());
  if (!m) throw new HakoError(`${flag}: invalid size "${v}"`, { field: flag });
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}

/** `update`: --resources FILE|- (LinuxResources JSON) and/or runc's individual flags. */
export async function updateCommand(rt: Runtime, argv: string[]): Promise<number> {
  const p = parseVerb('update', argv);
  const id = requireId(p, 'update');
  const r: LinuxResources = p.flags.resources ? (readJsonArg(p.flags.resources as string, '--resources') as LinuxResources) : {};
  const f = (n: string) => p.flags[n] as string | undefined;
  const int = (n: string) => {
    const v = f(n)!;
    if (!/^-?\d+$/.test(v)) throw new HakoError(`--${n}: invalid number "${v}"`, { field: `--${n}` });
    return Number(v);
  };
  if (f('memory')) (r.memory ??= {}).limit = sizeArg(f('memory')!, '--memory');
  if (f('memory-swap')) (r.memory ??= {}).swap = sizeArg(f('memory-swap')!, '--memory-swap');
  if (f('memory-reservation')) (r.memory ??= {}).reservation = sizeArg(f('memory-reservation')!, '--memory-reservation');
  if (f('kernel-memory')) (r.memory ??= {}).kernel = sizeArg(f('kernel-memory')!, '--kernel-memory');
  if (f('kernel-memory-tcp')) (r.memory ??= {}).kernelTCP = sizeArg(f('kernel-memory-tcp')!, '--kernel-memory-tcp');
  // runc spells it --cpu-share; --cpu-shares (docker's spelling) is accepted too.
  if (f('cpu-share')) (r.cpu ??= {}).shares = int('cpu-share');
  if (f('cpu-shares')) (r.cpu ??= {}).shares = int('cpu-shares');
  if (f('cpu-idle')) (r.cpu ??= {}).idle = int('cpu-idle');
  if (f('cpu-quota')) (r.cpu ??= {}).quota = int('cpu-quota');
  if (f('cpu-period')) (r.cpu ??= {}).period = int('cpu-period');
  if (f('cpu-burst')) (r.cpu ??= {}).burst = int('cpu-burst');
  if (f('cpu-rt-period')) (r.cpu ??= {}).realtimePeriod = int('cpu-rt-period');
  if (f('cpu-rt-runtime')) (r.cpu ??= {}).realtimeRuntime = int('cpu-rt-runtime');
  if (f('cpuset-cpus')) (r.cpu ??= {}).cpus = f('cpuset-cpus');
  if (f('cpuset-mems')) (r.cpu ??= {}).mems = f('cpuset-mems');
  if (f('pids-limit')) r.pids = { limit: int('pids-limit') };
  if (f('blkio-weight')) r.blockIO = { weight: int('blkio-weight') };
  if (f('l3-cache-schema') || f('mem-bw-schema')) throw new HakoError('update: Intel RDT is not supported by hako', { field: '--l3-cache-schema' });
  await rt.update(id, r);
  return 0;
}

function parseInterval(v: string | undefined): number {
  if (!v) return 5000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new HakoError(`--interval: invalid duration "${v}"`, { field: '--interval' });
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60000 }[(m[2] ?? 's') as 'ms' | 's' | 'm']);
}

/** `events`: `--stats` prints one stats record; otherwise stats every interval plus OOM events. */
export async function eventsCommand(rt: Runtime, argv: string[]): Promise<number> {
  const p = parseVerb('events', argv);
  const id = requireId(p, 'events');
  const { statsEvent, encodeEvent, watchOom } = require('../cgroups') as typeof import('../cgroups');
  const mgr = rt.cgroupManager(id);
  const emit = () => process.stdout.write(encodeEvent(statsEvent(id, mgr.stats())) + '\n');
  if ((await rt.state(id)).status === 'stopped') throw new HakoError('container not running');
  if (p.flags.stats) {
    emit();
    return 0;
  }
  const interval = parseInterval(p.flags.interval as string | undefined);
  return new Promise<number>((resolve) => {
    const stopOom = watchOom(mgr, () => process.stdout.write(JSON.stringify({ type: 'oom', id }) + '\n'));
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the body catches everything: it never rejects
    const timer = setInterval(async () => {
      try {
        if ((await rt.state(id)).status === 'stopped') throw new Error('stopped');
        emit();
      } catch {
        clearInterval(timer);
        stopOom();
        resolve(0);
      }
    }, interval);
  });
}
