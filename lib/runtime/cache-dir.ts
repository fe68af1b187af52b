// Where hako keeps derived data (compiled seccomp programs; the CLI's V8 code cache, see bin/hako): a directory
// of its own, never inside a state root. Docker passes one --root to every runtime it has, and runc lists
// every directory of its root as a container ("load container .cache: container does not exist").
//
// Host root: /run/hako-cache (tmpfs, like the state: nothing is written to flash, a reboot empties it).
// Otherwise $XDG_RUNTIME_DIR/hako-cache, decided as the default state root is (privilege.ts). Without
// $XDG_RUNTIME_DIR there is no cache: a shared /tmp lets another user plant the directory first.
import * as fs from 'fs';
import { runningInUserNamespace } from './privilege';

export function defaultCacheDir(): string | undefined {
  const uid = process.geteuid?.() ?? 0;
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (uid === 0 && (!xdg || process.env.USER === 'root' || !runningInUserNamespace())) return '/run/hako-cache';
  return xdg ? `${xdg}/hako-cache` : undefined;
}

/**
 * Make the cache directory if needed and say whether it can be trusted: a directory (not a symlink) owned by
 * this user that no one else can write. A cache entry is only a compiled program, but one planted by someone
 * else would become a container's seccomp filter.
 */
export function ensureCacheDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === (process.geteuid?.() ?? 0) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}
