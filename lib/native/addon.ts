// Typed view of the Node-API addon and the location of the init helper built beside it.
import * as fs from 'fs';
import * as path from 'path';

export interface SpawnOptions {
  /** The sealed memfd of hako-init (lib/runtime/enter.ts), executed by the spawn child. */
  initFd: number;
  argv: string[];
  /** Environment of the init (a hook's environment, which the hook gets from it); none by default. */
  envp?: string[];
  cloneFlags: number;
  /**
   * The child's fds 0..n-1: the fd to place there, null for nothing (fds 0-2: the caller's own, as
   * inherited), -2 for the spawn's error pipe. Every other fd is close-on-exec.
   */
  layout: (number | null)[];
  waitForMaps: boolean;
  /** The init forks into a joined pid namespace: the result names that process. */
  refork?: boolean;
}

export interface SpawnResult {
  pid: number;
  pidfd: number;
  errFd?: number;
  syncFd?: number;
}

export interface ExitResult {
  code: number | null;
  signal: number | null;
}

/** A seccomp notification as the policy server's native thread hands it over (lib/policy). */
/** A process's namespaces as the policy server sees them (inode numbers; owners as host uids). */
export interface NsInfo {
  /** User namespaces from the process's own outwards: [inode, owner uid]; the last is the initial one. */
  user: [number, number][];
  /** Pid namespaces from the process's own outwards (inodes). */
  pid: number[];
  /** The user namespaces owning its mount namespace and its UTS namespace, each with its ancestors (like `user`). */
  mntOwner: [number, number][];
  utsOwner: [number, number][];
  mnt: number;
}

export interface NotifyEventNotif {
  type: 'notif';
  listener: number;
  token: number;
  id: bigint;
  /** The calling thread (tid) in the server's pid namespace; 0 if it is not visible there. */
  pid: number;
  arch: number;
  nr: number;
  /** Index into the layout table given to notifyServerSetLayouts, -1 if (arch, nr) has none. */
  kind: number;
  args: bigint[];
  /** Pointer arguments copied out of the caller once: latin1 strings (C strings) or Buffers; null otherwise. */
  strs: (string | Buffer | null)[];
  /** Per argument: 0 not a pointer, 1 copied, 2 NULL, 3 unreadable (EFAULT), 4 longer than allowed. */
  states: number[];
  /**
   * The caller's credentials (calls that may be emulated): read on first access, through the /proc/<tid> fd
   * validated at receipt (lib/policy/lazy-creds.ts), while the call is unanswered; undefined if unreadable.
   */
  creds?: { uid: number; euid: number; fsuid: number; gid: number; egid: number; fsgid: number; capEff: bigint };
  /** /proc/<tid> was opened and validated at receipt (the call may be emulated). */
  prepared?: boolean;
  /** CLOCK_MONOTONIC microseconds when the notification was received. */
  t0: number;
}

export interface NotifyEventClosed {
  type: 'closed';
  /** 0: the helper's channel closed. */
  listener: number;
  reason: 'hup' | 'error' | 'helper' | string;
  errno: number;
}

export interface NotifyEventDone {
  type: 'done';
  listener: number;
  token: number;
  ret: number;
  errno: number;
  /** hako_policy::Stage: where the emulation stopped (0 = it ran). */
  stage: number;
  /** errno of NOTIF_SEND (ENOENT: the caller was gone). */
  sendErrno: number;
}

/**
 * Calls answered on the native thread with a fixed errno (notifySetFixed): one event per batch. `count` calls
 * since the previous event (0: this call was counted there); the arguments are this call's.
 */
export interface NotifyEventFast extends Omit<NotifyEventNotif, 'type' | 'token' | 'creds' | 'prepared'> {
  type: 'fastdeny';
  errno: number;
  sendErrno: number;
  count: number;
}

export type NotifyEvent = NotifyEventNotif | NotifyEventClosed | NotifyEventDone | NotifyEventFast;

/** [auditArch, nr, kind, argTypes(0 int, 1 C string, 2 buffer) x6, maxLen x6, lenArgIndex x6, prepare] */
export type NotifyLayout = [number, number, number, number[], number[], number[], boolean];

export interface NativeAddon {
  spawn(opts: SpawnOptions): SpawnResult;
  /** A pid: the init forked into a joined pid namespace (its intermediate is the caller's to reap). */
  spawnContinue(syncFd: number, errFd: number): number | undefined;
  /** A sealed memfd copy of the file (the init helper), close-on-exec. */
  sealInit(path: string): number;
  idmapTree(uidMap: string, gidMap: string, source: string, recursive: boolean): number;
  seqpacketPair(): [number, number];
  listenUnix(path: string, mode: number): number;
  /** SO_PEERCRED of a connected unix socket. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  sendMessage(fd: number, data: Buffer, fds?: number[]): void;
  sendToPath(path: string, data: Buffer, fds?: number[]): void;
  /** Returns a wait id for cancelWait. errno EMSGSIZE with null data: more fds than allowed (closed). */
  recvMessage(fd: number, cb: (errno: number, data: Buffer | null, fds: number[]) => void): number;
  /** Returns a wait id for cancelWait; throws when the socket cannot be reached (EAGAIN: backlog full). */
  controlExchange(path: string, message: Buffer, cb: (errno: number, reply: Buffer) => void): number;
  /** Stop a recvMessage or controlExchange (before closing its fd); its callback is never called. */
  cancelWait(id: number): void;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  waitSync(pidfd: number, block: boolean): ExitResult | null;
  /** reap false: learn of the exit (and the status, WNOWAIT) without reaping; the process's one reaper does that. */
  watchExit(pidfd: number, ref: boolean, cb: (result: ExitResult | null) => void, reap?: boolean): number;
  unwatchExit(id: number): void;
  refWatch(id: number, ref: boolean): void;
  /** mount(2) (src-native/addon/mount.cc): empty source, fstype or data pass NULL. Absent from addons built before it. */
  mount?(source: string, target: string, fstype: string, flags: number, data: string): void;
  /** umount2(2). */
  umount?(target: string, flags: number): void;
  flock(fd: number, exclusive: boolean, nonblock: boolean): boolean;
  /** pipe2(O_CLOEXEC): [read end, write end]. Absent from addons built before it. */
  pipe?(): [number, number];
  /** dup2(2) (newFd without close-on-exec). Absent from addons built before it. */
  dup2?(oldFd: number, newFd: number): void;
  /** ioctl(TIOCSWINSZ) on a pty. */
  setWinsize(fd: number, rows: number, cols: number): void;
  /** cfmakeraw on a terminal; returns the previous termios for restoreTerminal. */
  makeRaw(fd: number): Buffer;
  restoreTerminal(fd: number, saved: Buffer): void;
  attachDeviceFilter?(cgroupDir: string, insns: Buffer, license: string): number;

  // Policy server (lib/policy): seccomp notify supervision, src-native/addon/notify*.cc.
  notifyServerCreate(onEvent: (ev: NotifyEvent) => void, helperSock: number | null): number;
  notifyServerSetHelper(sid: number, helperSock: number): void;
  notifyServerSetLayouts(sid: number, layouts: NotifyLayout[]): void;
  notifyServerClose(sid: number): void;
  /** Takes ownership of fd; one native thread per listener. */
  /** ringFd: a notifyRingCreate memfd shared with hako-fd-keeper (mapped; stays the caller's to close). */
  notifyAdd(
    sid: number,
    fd: number,
    window: number,
    syncWakeUp: boolean,
    ringFd?: number,
    fixed?: Array<[number, number, number]>,
  ): number;
  notifyRingCreate(): number;
  notifySetFixed(sid: number, listener: number, fixed: [number, number, number][]): void;
  notifyCreds(sid: number, listener: number, token: number): NonNullable<NotifyEventNotif['creds']> | null;
  /** HAKO_NOTIFY_TRACE=1: the latency breakdown of answered calls, [stage, p50, p90, mean] in µs; else null. */
  notifyTrace(reset?: boolean): { n: number; stages: [string, number, number, number][] } | null;
  /** A close-on-exec dup of the listener's notify fd; maps ringFd as its id ring if it has none yet. */
  notifyKeep(sid: number, listener: number, ringFd: number): number;
  /** A connected, non-blocking SOCK_SEQPACKET to hako-fd-keeper with its SO_PEERCRED, or the connect errno. */
  keeperConnect(path: string): { fd: number; uid: number; pid: number } | number;
  notifyRemove(sid: number, listener: number): void;
  /** Answer with -errno (errno > 0) or the value; returns the errno of NOTIF_SEND (0, ENOENT, EALREADY). */
  notifyRespond(sid: number, listener: number, token: number, errno: number, val: number): number;
  /** Hand the call to hako-policy-helper; 0, or the errno the caller was answered with at once. */
  notifyEmulate(
    sid: number,
    listener: number,
    token: number,
    op: number,
    flags: number,
    ints: number[],
    strs: (string | Buffer | null)[],
    timeoutMs: number,
  ): number;
  /** null when fd is a seccomp notify fd, else why not. */
  notifyCheckFd(fd: number): string | null;
  /** CLOCK_MONOTONIC in microseconds (the clock of NotifyEventNotif.t0). */
  notifyNow(): number;
  /** Namespaces of a pending notification's caller (through its validated /proc/<tid>); null: no such request. */
  notifyCallerNs(sid: number, listener: number, token: number): NsInfo | null;
  /** Namespaces of /proc/<pid>. */
  policyNsInfo(pid: number): NsInfo;
  policyAccept(fd: number): { fd: number; pid: number; uid: number; gid: number } | null;
  policyRecv(
    fd: number,
    maxBytes: number,
  ): { data?: Buffer | null; fds: number[]; eof?: boolean; again?: boolean; ctrunc?: boolean };
  policyFdWatch(fd: number, cb: (status: number, events: number) => void, ref?: boolean): number;
  policyFdUnwatch(id: number): void;
}

/** The package root: two levels above dist/lib/native, or the bundle's own folder's parent. */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..', '..');
}

/** prebuilds/<platform>-<arch> as node-gyp-build names it. */
export function prebuildDir(root = packageRoot()): string {
  return path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
}

let cached: NativeAddon | undefined;
const resolved = new Map<string, string | null>();

/**
 * The addon file node-gyp-build picks for this process: build/Release (unless PREBUILDS_ONLY is set), else
 * the prebuild matching platform, arch and tags (armv7 is never picked on armv6, glibc not on musl). null
 * when nothing matches. A local build is found without loading node-gyp-build (a CLI start saves ~1 ms).
 * HAKO_ADDON names the file outright.
 */
function addonFile(root: string): string | null {
  let file = resolved.get(root);
  if (file !== undefined) return file;
  const local = path.join(root, 'build', 'Release', 'hako.node');
  // HAKO_ADDON: another build of the addon (scripts/sanitize.sh's ASan+UBSan one); the helpers beside it win too.
  if (process.env.HAKO_ADDON) {
    if (!fs.existsSync(process.env.HAKO_ADDON)) throw new Error(`HAKO_ADDON: ${process.env.HAKO_ADDON} does not exist`);
    file = path.resolve(process.env.HAKO_ADDON);
  } else if (!process.env.PREBUILDS_ONLY && fs.existsSync(local)) file = local;
  else {
    try {
      file = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(root);
    } catch {
      file = null;
    }
  }
  resolved.set(root, file);
  return file;
}

export function addon(): NativeAddon {
  if (!cached) {
    const root = packageRoot();
    const file = addonFile(root);
    cached = (file ? require(file) : (require('node-gyp-build') as (dir: string) => NativeAddon)(root)) as NativeAddon;
  }
  return cached;
}

/** The folder of the addon this process loads (see addonFile); undefined when nothing matches. */
export function addonDir(root = packageRoot()): string | undefined {
  const file = addonFile(root);
  return file ? path.dirname(file) : undefined;
}

/**
 * A native executable built with the addon (hako-init, hako-policy-helper, hako-probe): the one beside the
 * loaded addon, then in build/Release, then in prebuilds/<platform>-<arch>.
 */
export function nativeExecutable(name: string, root = packageRoot()): string | undefined {
  const dir = addonDir(root);
  const candidates = [
    dir && path.join(dir, name),
    process.env.PREBUILDS_ONLY ? undefined : path.join(root, 'build', 'Release', name),
    path.join(prebuildDir(root), name),
  ];
  return candidates.find((c): c is string => !!c && fs.existsSync(c));
}

/**
 * The init helper matching the loaded addon: the one beside it (a local build wins, as node-gyp-build
 * prefers build/Release; otherwise prebuilds/<platform>-<arch>/hako-init). HAKO_INIT overrides both.
 */
export function initHelperPath(root = packageRoot()): string {
  const found =
    process.env.HAKO_INIT && fs.existsSync(process.env.HAKO_INIT)
      ? process.env.HAKO_INIT
      : nativeExecutable('hako-init', root);
  if (found) return found;
  throw new Error(`hako-init helper not found (looked in build/Release and ${prebuildDir(root)}); run npm install`);
}

export function probePath(root = packageRoot()): string {
  const found = nativeExecutable('hako-probe', root);
  if (found) return found;
  throw new Error('hako-probe not found; run npm install');
}
