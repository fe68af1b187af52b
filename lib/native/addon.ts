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

export interface NativeAddon {
  spawn(opts: SpawnOptions): SpawnResult;
  spawnContinue(syncFd: number, errFd: number): void;
  seqpacketPair(): [number, number];
  listenUnix(path: string, mode: number): number;
  sendMessage(fd: number, data: Buffer, fds?: number[]): void;
  sendToPath(path: string, data: Buffer, fds?: number[]): void;
  recvMessage(fd: number, cb: (errno: number, data: Buffer | null, fds: number[]) => void): void;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  waitSync(pidfd: number, block: boolean): ExitResult | null;
  watchExit(pidfd: number, ref: boolean, cb: (result: ExitResult | null) => void): number;
  unwatchExit(id: number): void;
  refWatch(id: number, ref: boolean): void;
  flock(fd: number, exclusive: boolean, nonblock: boolean): boolean;
  attachDeviceFilter?(cgroupDir: string, insns: Buffer, license: string): number;
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

export function addon(): NativeAddon {
  if (!cached) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    cached = load(packageRoot());
  }
  return cached;
}

/**
 * The folder of the addon node-gyp-build picks for this process: build/Release (unless PREBUILDS_ONLY is
 * set), else the prebuild matching platform, arch and tags (armv7 is never picked on armv6, glibc not on
 * musl). undefined when nothing matches.
 */
export function addonDir(root = packageRoot()): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require('node-gyp-build') as { resolve(dir: string): string };
    return path.dirname(load.resolve(root));
  } catch {
    return undefined;
  }
}

/** A native executable beside the loaded addon, then in build/Release, then in prebuilds/<platform>-<arch>. */
function nativeExecutable(name: string, root: string): string | undefined {
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
