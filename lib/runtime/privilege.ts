// Who the runtime is: root of the host, or root only of a user namespace it was started in (rootless podman
// runs the runtime as uid 0 of its own namespace). The second can neither create host cgroups nor mknod.
import * as fs from 'fs';

let inUserNamespace: boolean | undefined;

/** This process runs in a user namespace other than the initial one (its uid_map is not the identity). */
export function runningInUserNamespace(): boolean {
  if (inUserNamespace === undefined) {
    let map = '';
    try {
      map = fs.readFileSync('/proc/self/uid_map', 'latin1');
    } catch {
      // No /proc/self/uid_map: a kernel without user namespaces, so the initial one.
    }
    inUserNamespace = map !== '' && map.trim().split(/\s+/).join(' ') !== '0 0 4294967295';
  }
  return inUserNamespace;
}

/** Effective uid 0 in the initial user namespace: host cgroups and device nodes are ours to make. */
export function isHostRoot(): boolean {
  return (process.geteuid?.() ?? 0) === 0 && !runningInUserNamespace();
}

/**
 * The default state root. Host root: /run/hako. Otherwise $XDG_RUNTIME_DIR/hako, as runc decides: root of a
 * user namespace uses it too unless $USER says root (sudo keeps XDG_RUNTIME_DIR of the calling user).
 */
export function defaultStateRoot(): string {
  const uid = process.geteuid?.() ?? 0;
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (uid === 0 && (!xdg || process.env.USER === 'root' || !runningInUserNamespace())) return '/run/hako';
  return xdg ? `${xdg}/hako` : `/tmp/hako-${uid}`;
}
