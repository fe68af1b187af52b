// `exec`: another process in a running container, from --process or from the container's own process with
// the command line's arguments and overrides.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HakoError } from '../../errors';
import { CAPABILITIES } from '../../oci/constants';
import type { Process } from '../../oci/types';
import { pidFileError } from '../../state/store';
import { parseVerb, readJsonArg, requireId } from '../args';
import type { CliContext } from '../context';
import { preserveArgs } from '../inherited-fds';

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
      if (args.length !== 1)
        throw new HakoError(`--cgroup: invalid argument: ${a} (missing <controller>: prefix)`, { field: '--cgroup' });
      out[''] = a;
    } else {
      for (const c of parts[0].split(',')) out[c] = parts[1];
    }
  }
  return out;
}

/** `exec`: a process from --process, or from the container's own process with args and flag overrides. */
export async function exec(cli: CliContext, argv: string[]): Promise<number> {
  const rt = cli.runtime();
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
    if (p.flags['additional-gids'])
      proc.user = { ...proc.user, additionalGids: (p.flags['additional-gids'] as string[]).map(Number) };
    const caps = p.flags.cap as string[] | undefined;
    // A name on the command line is the caller's own typo to fix, unlike one in a config (plan/capabilities.ts).
    for (const c of caps ?? [])
      if (!(CAPABILITIES as readonly string[]).includes(c))
        throw new HakoError(`--cap: unknown capability "${c}"`, { field: '--cap' });
    if (caps?.length) {
      const c = { ...(proc.capabilities ?? {}) };
      for (const set of ['bounding', 'effective', 'permitted', 'ambient'] as const)
        c[set] = [...new Set([...(c[set] ?? []), ...caps])];
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
    proc.terminal && !p.flags['console-socket'] && !p.flags.detach
      ? (require('../terminal') as typeof import('../terminal')).consoleRelay()
      : undefined;
  // The exec'd process may ask for its size before the relay sets it: the pty is made with the caller's size.
  if (relay && process.stdout.isTTY && !proc.consoleSize)
    proc.consoleSize = { height: process.stdout.rows, width: process.stdout.columns };
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
