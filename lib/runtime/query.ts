// The queries: one container's OCI state, and every container's in the state root, each checked live.
import type { State } from '../oci/types';
import { validateId } from '../state/store';
import type { RuntimeContext } from './context';
import { publicState } from './status';

export async function state(rt: RuntimeContext, id: string): Promise<State> {
  validateId(id);
  const s = rt.loadLive(id);
  return publicState(s);
}

export async function list(rt: RuntimeContext): Promise<State[]> {
  const out: State[] = [];
  for (const id of rt.store.ids()) {
    try {
      out.push(publicState(rt.loadLive(id)));
    } catch (e) {
      // Another runtime's container in a shared root, or one being created or deleted right now.
      rt.log.debug(`list: skipping ${id}: ${(e as Error).message}`);
    }
  }
  return out;
}
