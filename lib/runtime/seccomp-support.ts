// Seccomp in the lifecycle: compile the config's policy for the init helper to load, and hand the
// notify listener fd to `listenerPath` the way runtime-spec config-linux.md describes.
import { HakoError } from '../errors';
import type { Logger } from '../log';
import { addon } from '../native/addon';
import { OCI_VERSION, type Spec } from '../oci/types';
import { compileSeccomp } from '../seccomp/compile';
import type { StoredState } from '../state/store';

export interface ProcessSeccomp {
  filter: Buffer;
  flags: number;
  listenerPath?: string;
}

export function compileProcessSeccomp(spec: Spec, log: Logger): ProcessSeccomp | null {
  const sc = spec.linux?.seccomp;
  if (!sc) return null;
  const compiled = compileSeccomp(sc, { debug: (m) => log.debug(m) });
  return { filter: compiled.filter, flags: compiled.flags, listenerPath: compiled.usesNotify ? sc.listenerPath : undefined };
}

/** Send the container process state and the listener fd (SCM_RIGHTS) to the seccomp agent. */
export function sendSeccompListener(spec: Spec, s: StoredState, fd: number, status: 'creating' | 'running' = 'creating', pid = s.pid): void {
  const sc = spec.linux?.seccomp;
  if (!sc?.listenerPath) throw new HakoError('seccomp listener fd received but linux.seccomp.listenerPath is not set');
  const message = {
    ociVersion: OCI_VERSION,
    fds: ['seccompFd'],
    pid,
    metadata: sc.listenerMetadata ?? '',
    state: { ociVersion: OCI_VERSION, id: s.id, status, pid: s.pid, bundle: s.bundle, annotations: s.annotations ?? {} },
  };
  try {
    addon().sendToPath(sc.listenerPath, Buffer.from(JSON.stringify(message)), [fd]);
  } catch (e) {
    throw new HakoError(`linux.seccomp.listenerPath: send the seccomp listener to ${sc.listenerPath}: ${(e as Error).message}`, {
      field: 'linux.seccomp.listenerPath',
    });
  }
}
