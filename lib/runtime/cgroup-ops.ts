// The operations on a container's cgroup: freeze and thaw, its processes, resource updates, the manager.
import { HakoError } from '../errors';
import { validateResources } from '../oci/validate-resources';
import type { LinuxResources } from '../oci/types';
import { validateId } from '../state/store';
import type { RuntimeContext } from './context';

/** Freeze every process of the container (cgroup freezer). */
export async function pause(rt: RuntimeContext, id: string): Promise<void> {
  validateId(id);
  await rt.store.withLock(id, () => {
    const s = rt.loadLive(id);
    if (s.status !== 'running')
      throw new HakoError(s.status === 'paused' ? 'container already paused' : 'container not running');
    rt.cgroups.manager(s).freeze();
    s.paused = true;
    rt.store.save(s);
  });
}

export async function resume(rt: RuntimeContext, id: string): Promise<void> {
  validateId(id);
  await rt.store.withLock(id, () => {
    const s = rt.loadLive(id);
    if (s.status !== 'paused') throw new HakoError('container not paused');
    rt.cgroups.manager(s).thaw();
    s.paused = false;
    rt.store.save(s);
  });
}

/** Host pids of every process in the container's cgroup. */
export async function ps(rt: RuntimeContext, id: string): Promise<number[]> {
  validateId(id);
  const s = rt.loadLive(id);
  return rt.cgroups.manager(s).pids();
}

/** Change the container's resources (linux.resources shape; unset fields stay as they are). */
export async function update(rt: RuntimeContext, id: string, resources: LinuxResources): Promise<void> {
  validateId(id);
  validateResources(resources);
  await rt.store.withLock(id, async () => {
    const s = rt.loadLive(id);
    if (s.status === 'stopped') throw new HakoError('container not running');
    await rt.cgroups.apply(s, resources);
    const linux = (s.config.linux ??= {});
    linux.resources = mergeResources(linux.resources ?? {}, resources);
    rt.store.save(s);
  });
}

/** The cgroup manager of a container (stats, OOM counters) for `events`. */
export function cgroupManager(rt: RuntimeContext, id: string) {
  return rt.cgroups.manager(rt.store.load(id));
}

function mergeResources(base: LinuxResources, change: LinuxResources): LinuxResources {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(change)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object'
        ? { ...(prev as object), ...v }
        : v;
  }
  return out as LinuxResources;
}
