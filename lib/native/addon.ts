// Typed view of the Node-API addon and the location of the init helper built beside it.
import * as fs from 'fs';
import * as path from 'path';

export interface SpawnOptions {
  helperFd?: number;
  argv: string[];
  /** Environment of the executed program (the init helper gets none). */
  envp?: string[];
  cloneFlags: number;
  planFd?: number;
  ctlFd?: number;
  preserveFds?: number;
  /** Directory to run in, after joining the namespaces (a hook's bundle). */
  cwd?: string;
  /** Held by the runtime: never passed on, even inside 3..3+preserveFds-1. */
  runtimeFds?: number[];
  /** A hook: no plan or control socket, only stdio. */
  plain?: boolean;
  /** execve this path after entering the namespaces (resolved in the container) instead of helperFd. */
  execPath?: string;
  join?: [fd: number, nstype: number][];
  waitForMaps: boolean;
  forkMode?: boolean;
  /** exec: enter the namespaces of the process behind this pidfd (setns by pidfd), then fork into them. */
  nsPidfd?: number;
  nsFlags?: number;
  /** cgroup tasks/cgroup.procs files the child joins (writes "0") before entering the namespaces. */
  cgroupFiles?: string[];
  /** fds handed to the init at 3+N+2, 3+N+3, ... */
  extraFds?: number[];
  /** fds that become the container's stdin, stdout, stderr (default: inherited). */
  stdio?: (number | null)[];
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
  /** From /proc/<tid>/status, host view, for calls whose layout asks to prepare an emulation. */
  creds?: { uid: number; euid: number; fsuid: number; gid: number; egid: number; fsgid: number; capEff: bigint };
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

export type NotifyEvent = NotifyEventNotif | NotifyEventClosed | NotifyEventDone;

/** [auditArch, nr, kind, argTypes(0 int, 1 C string, 2 buffer) x6, maxLen x6, lenArgIndex x6, prepare] */
export type NotifyLayout = [number, number, number, number[], number[], number[], boolean];

export interface NativeAddon {
  spawn(opts: SpawnOptions): SpawnResult;
  spawnContinue(syncFd: number, errFd: number): void;
  idmapTree(uidMap: string, gidMap: string, source: string, recursive: boolean): number;
  seqpacketPair(): [number, number];
  listenUnix(path: string, mode: number): number;
  sendMessage(fd: number, data: Buffer, fds?: number[]): void;
  sendToPath(path: string, data: Buffer, fds?: number[]): void;
  recvMessage(fd: number, cb: (errno: number, data: Buffer | null, fds: number[]) => void): void;
  controlExchange(path: string, message: Buffer, cb: (errno: number, reply: Buffer) => void): void;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  waitSync(pidfd: number, block: boolean): ExitResult | null;
  watchExit(pidfd: number, ref: boolean, cb: (result: ExitResult | null) => void): number;
  unwatchExit(id: number): void;
  refWatch(id: number, ref: boolean): void;
  flock(fd: number, exclusive: boolean, nonblock: boolean): boolean;
  attachDeviceFilter?(cgroupDir: string, insns: Buffer, license: string): number;

  // Policy server (lib/policy): seccomp notify supervision, src-native/addon/notify.cc.
  notifyServerCreate(onEvent: (ev: NotifyEvent) => void, helperSock: number | null): number;
  notifyServerSetHelper(sid: number, helperSock: number): void;
  notifyServerSetLayouts(sid: number, layouts: NotifyLayout[]): void;
  notifyServerClose(sid: number): void;
  /** Takes ownership of fd; one native thread per listener. */
  notifyAdd(sid: number, fd: number, window: number, syncWakeUp: boolean): number;
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
  policyAccept(fd: number): { fd: number; pid: number; uid: number; gid: number } | null;
  policyRecv(fd: number, maxBytes: number): { data?: Buffer | null; fds: number[]; eof?: boolean; again?: boolean; ctrunc?: boolean };
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
      // eslint-disable-next-line @typescript-eslint/no-var-requires
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
    // eslint-disable-next-line @typescript-eslint/no-var-requires
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
  const found = process.env.HAKO_INIT && fs.existsSync(process.env.HAKO_INIT) ? process.env.HAKO_INIT : nativeExecutable('hako-init', root);
  if (found) return found;
  throw new Error(`hako-init helper not found (looked in build/Release and ${prebuildDir(root)}); run npm install`);
}

export function probePath(root = packageRoot()): string {
  const found = nativeExecutable('hako-probe', root);
  if (found) return found;
  throw new Error('hako-probe not found; run npm install');
}
