// A container's status as the OCI state reports it: the recorded one, checked against the live process.
import type { State } from '../oci/types';
import type { StoredState } from '../state/store';
import { exeId, isAlive } from './proc';

export function publicState(s: StoredState, status = s.status): State {
  return {
    ociVersion: s.ociVersion,
    id: s.id,
    status,
    pid: status === 'stopped' ? 0 : s.pid,
    bundle: s.bundle,
    rootfs: s.rootfs,
    created: s.created,
    owner: s.owner,
    annotations: s.annotations,
  };
}

/** The live status: the recorded one as long as the process is alive and still ours. */
export function liveStatus(s: StoredState): State['status'] {
  if (!isAlive(s.pid, s.pidStartTime)) return 'stopped';
  const status = s.recorded === 'created' && s.helperId && exeId(s.pid!) !== s.helperId ? 'running' : s.recorded;
  if (status === 'running' && s.paused) return 'paused';
  return status;
}
