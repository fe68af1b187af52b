// Where a shim listens, as runc's v2 shim computes it (runtime/v2/shim/util_unix.go SocketAddress): a
// filesystem socket /run/containerd/s/<hex sha256 of filepath.Join(containerd address, namespace, group)>, so
// every container of a group finds the same shim and `ctr shim --id` finds it too. /run/containerd/s is fixed,
// whatever containerd's state dir.
import * as path from 'path';

// Loaded by `start` only: node:crypto costs ~5 ms to load, and the server, which every new shim is, never hashes.
const cryptoModule = (): typeof import('crypto') => require('crypto');

export const SOCKET_DIR = '/run/containerd/s';

/** The group: runc's annotation, else the CRI sandbox (a pod's containers share its shim), else the container. */
export function groupOf(id: string, annotations: Record<string, string> | undefined, byNamespace: boolean): string {
  if (byNamespace) return '';
  return annotations?.['io.containerd.runc.v2.group'] || annotations?.['io.kubernetes.cri.sandbox-id'] || id;
}

export function socketPath(containerdAddress: string, namespace: string, group: string): string {
  const key = path.join(containerdAddress, namespace, group);
  return path.join(SOCKET_DIR, cryptoModule().createHash('sha256').update(key).digest('hex'));
}

/** containerd's runtime state of the shim's containers (as runc's /run/containerd/runc/<namespace>). */
export function runtimeRoot(namespace: string): string {
  return path.join('/run/containerd/hako', namespace);
}

/** Each serving shim's pid, by socket name (outside every runtime root, where it could pass for a container). */
export const SHIM_RECORDS = '/run/containerd/hako-shims';
