// How a process is started into a container: the fd layout and the command line of hako-init, which the
// addon's spawn child executes from a sealed memfd (src-native/addon/spawn.cc, src-native/init/enter.cc).
import * as fs from 'fs';
import { HakoError } from '../errors';
import { addon, initHelperPath, type SpawnResult } from '../native/addon';
import { heldFds, holdFd, releaseFd } from '../state/held-fds';

/** Largest number of fds passed to a container (runc has no limit; 1024 is the usual RLIMIT_NOFILE soft limit). */
export const MAX_PASS_FDS = 1024;

let sealed: { fd: number; id: string; path: string } | undefined;

/**
 * The sealed memfd copy of hako-init (no write, no resize, no further seals), made on first use and held for
 * the life of this process: every process that enters a container is executed from it, so /proc/PID/exe
 * of such a process never leads to a file of the host that the container could overwrite
 * (CVE-2019-5736). `id` is its dev:ino, which /proc/PID/exe of a waiting init shows.
 */
export function sealedInit(): { fd: number; id: string } {
  // Made again only if the helper's path changes (HAKO_INIT set meanwhile, as the memory bench does);
  // processes already started keep the copy they run from.
  const file = initHelperPath();
  if (sealed?.path !== file) {
    const fd = holdFd(addon().sealInit(file));
    const st = fs.fstatSync(fd);
    if (sealed) {
      releaseFd(sealed.fd);
      fs.closeSync(sealed.fd);
    }
    sealed = { fd, id: `${st.dev}:${st.ino}`, path: file };
  }
  return sealed;
}

/**
 * Check a caller's list of fds to pass: integers, open, none twice, none of those the runtime itself
 * holds (state locks, container pidfds, held namespaces). `null` leaves a hole (the CLI's --preserve-fds
 * keeps every fd at its own number, and skips those it did not inherit).
 */
export function checkPassFds(passFds: readonly (number | null)[] | undefined, field: string): (number | null)[] {
  const list = [...(passFds ?? [])];
  if (list.length > MAX_PASS_FDS) throw new HakoError(`${field}: at most ${MAX_PASS_FDS} fds`, { field });
  const held = new Set(heldFds());
  for (const fd of list) {
    if (fd === null) continue;
    if (!Number.isInteger(fd) || fd < 0) throw new HakoError(`${field}: invalid fd ${fd}`, { field });
    if (held.has(fd)) throw new HakoError(`${field}: fd ${fd} is one the runtime holds itself`, { field });
    try {
      fs.fstatSync(fd);
    } catch {
      throw new HakoError(`${field}: fd ${fd} is not open`, { field });
    }
  }
  return list;
}

export interface EnterOptions {
  /** The container's fds 0, 1, 2; null or missing: the caller's own. */
  stdio?: readonly (number | null)[];
  /** Placed at 3, 4, ... in order (null: nothing there). */
  passFds?: readonly (number | null)[];
  /** An init of create or exec: the plan socket (and, at create, the control socket) right after the passed fds. */
  plan?: number;
  ctl?: number;
  /** After the control socket (idmapped trees for the init). */
  extraFds?: readonly number[];
  /** cgroup.procs / tasks files to join (write "0") before entering any namespace. */
  cgroupFiles?: readonly string[];
  /** Namespace fds (opened from paths) and their types, joined in order. */
  joins?: readonly [fd: number, nstype: number][];
  /** Join the namespaces `flags` of the process behind this pidfd. */
  target?: { pidfd: number; flags: number };
  /**
   * New namespaces to make after joining (a container that joins a user namespace: those it makes must
   * belong to that namespace). CLONE_NEWPID implies `refork`.
   */
  unshare?: number;
  /** Fork once more into the joined pid namespace (the result then names that process). */
  refork?: boolean;
  /** Directory to change to once inside (a hook's bundle). */
  cwd?: string;
  /** What runs: the init (create or exec), or a hook program by fd (opened on the host) or path (in the container). */
  run:
    | { kind: 'create' }
    | { kind: 'exec' }
    /** `seccomp`: a file holding a filter (sock_filter[]) loaded before the hook executes. */
    | { kind: 'hook'; fd?: number; path?: string; argv: string[]; seccomp?: { fd: number; flags: number } };
  envp?: string[];
  cloneFlags?: number;
  waitForMaps?: boolean;
}

/** Start hako-init laid out as `o` says. fds not named here never reach it (they are close-on-exec). */
export function spawnInit(o: EnterOptions): SpawnResult {
  const ERR_PIPE = -2; // the addon's marker for its own error pipe
  const layout: (number | null)[] = [0, 1, 2].map((i) => o.stdio?.[i] ?? null);
  layout.push(...(o.passFds ?? []));
  const plan = o.plan === undefined ? -1 : layout.push(o.plan) - 1;
  const ctl = o.ctl === undefined ? -1 : layout.push(o.ctl) - 1;
  for (const fd of o.extraFds ?? []) layout.push(fd);
  // The enter fds come last, above everything the init keeps: it closes them (or marks them
  // close-on-exec) before anything of the container runs.
  const err = layout.push(ERR_PIPE) - 1;
  const enter = ['--enter', String(err)];
  for (const f of o.cgroupFiles ?? []) enter.push('--cgroup', f);
  for (const [fd, type] of o.joins ?? []) enter.push('--join', String(layout.push(fd) - 1), String(type));
  if (o.target) enter.push('--setns', String(layout.push(o.target.pidfd) - 1), String(o.target.flags));
  if (o.unshare) enter.push('--unshare', String(o.unshare));
  const refork = !!o.refork || ((o.unshare ?? 0) & 0x20000000) !== 0; // CLONE_NEWPID
  if (refork) enter.push('--refork');
  if (o.cwd) enter.push('--cwd', o.cwd);
  let rest: string[];
  if (o.run.kind === 'create') rest = [String(plan), String(ctl)];
  else if (o.run.kind === 'exec') rest = ['--exec', String(plan)];
  else {
    const sc = o.run.seccomp
      ? ['--hook-seccomp', String(layout.push(o.run.seccomp.fd) - 1), String(o.run.seccomp.flags)]
      : [];
    if (o.run.fd !== undefined) rest = [...sc, '--hook-fd', String(layout.push(o.run.fd) - 1), ...o.run.argv];
    else rest = [...sc, '--hook-path', o.run.path!, ...o.run.argv];
  }
  return addon().spawn({
    initFd: sealedInit().fd,
    argv: ['hako-init', ...enter, '--', ...rest],
    envp: o.envp,
    cloneFlags: o.cloneFlags ?? 0,
    layout,
    waitForMaps: !!o.waitForMaps,
    refork,
  });
}
