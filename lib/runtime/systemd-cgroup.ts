// The systemd cgroup driver in the container lifecycle (--systemd-cgroup, as runc and crun). systemd owns the
// cgroup tree on its hosts, so a container gets a transient scope from it: made when the init exists (a
// scope starts with its processes), its resources given to systemd as properties and then written to the
// scope's files by the cgroupfs managers (what systemd has no property for as well), removed with StopUnit.
// pause, ps, kill --all, exec, events and stats use the scope's directory like any cgroupfs directory
// (runc does the same: its systemd managers freeze and read stats through the files).
//
// Loaded only when a container uses the driver: cgroup-support requires it lazily, and it loads lib/dbus.

import { HakoError } from '../errors';
import { createCgroupManager } from '../cgroups/create';
import { parseSystemdPath } from '../cgroups/systemd/unit';
import { resourceProperties } from '../cgroups/systemd/properties';
import {
  connectSystemd,
  connectUserSystemd,
  requireSystemd,
  setScopeProperties,
  startScope,
  stopScope,
} from '../cgroups/systemd/scope';
import type { Bus } from '../dbus/bus';
import * as fs from 'fs';
import type { LinuxResources, Spec } from '../oci/types';
import type { CreateIntent, StoredState } from '../state/store';
import type { CgroupManager } from '../cgroups/types';
import { type CgroupHost, type PreparedCgroup, deviceRules, missingDirs, mountSourceOf } from './cgroup-parts';
import { isHostRoot } from './privilege';

/**
 * Which systemd: the system instance for root of the host; a user's own (`systemd --user`, on the session
 * bus) otherwise, as runc does rootless. A user's systemd delegates only on cgroup v2 (runc refuses v1 too),
 * and its units live below user@UID.service, the cgroup logind gives each user's manager
 * (/user.slice/user-UID.slice/user@UID.service): the scope's directory is that prefix plus the slice path.
 * runc asks the manager for its ControlGroup property; the name is fixed by logind, and addProcess checks
 * that the init landed where the prefix says.
 */
interface Instance {
  user: boolean;
  prefix: string;
  connect: () => Promise<Bus>;
}
function instance(cg: CgroupHost): Instance {
  if (isHostRoot()) return { user: false, prefix: '', connect: connectSystemd };
  requireSystemd();
  if (cg.layout().mode !== 'v2')
    throw new HakoError(
      "--systemd-cgroup (rootless): a user's systemd delegates cgroups only on cgroup v2; this host has v1 controllers (use the cgroupfs driver: omit the flag)",
      {
        field: '--systemd-cgroup',
        code: 'ENOTSUP',
      },
    );
  const uid = process.geteuid?.() ?? 0;
  return { user: true, prefix: `/user.slice/user-${uid}.slice/user@${uid}.service`, connect: connectUserSystemd };
}

/**
 * Everything that can be checked without systemd is checked here, before the init exists: the path, the
 * resources as properties. The scope itself is made by addProcess(initPid).
 */
export function prepareScope(
  cg: CgroupHost,
  id: string,
  spec: Spec,
  record?: (intent: Omit<CreateIntent, 'runtime'>) => void,
): PreparedCgroup {
  const sd = instance(cg);
  const sp = parseSystemdPath(spec.linux?.cgroupsPath, id, sd.user);
  const layout = cg.layout();
  const resources: LinuxResources = { ...(spec.linux?.resources ?? {}), devices: deviceRules(spec) };
  const properties = resourceProperties(resources, { v2: layout.mode === 'v2', warn: (m) => cg.log.warn(m) });
  // The scope's directories: systemd makes them below the slice's, which is the expanded slice path.
  const cgroupDirs = createCgroupManager({ layout, path: sd.prefix + sp.cgroup, id }).paths();
  const manager = cg.manager({ id, cgroupPath: sp.normalized, cgroupDirs, cgroupCreated: [], config: spec });
  record?.({ id, cgroupPath: sp.normalized, cgroupDirs, cgroupCreated: [] });
  let started = false;
  const prepared: PreparedCgroup = {
    path: sp.normalized,
    created: [],
    manager,
    systemd: true,
    procsFiles: () => [],
    addProcess: async (pid: number) => {
      const bus = await sd.connect();
      try {
        await startScope(bus, { unit: sp.unit, slice: sp.slice, description: `hako container ${id}`, pid, properties });
        started = true;
      } finally {
        bus.close();
      }
      if (sd.user) {
        const at = /^0::(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
        if (at !== sd.prefix + sp.cgroup)
          throw new HakoError(
            `--systemd-cgroup (rootless): the user's systemd put the container in ${at}, not in ${sd.prefix + sp.cgroup}`,
            { field: '--systemd-cgroup', code: 'EINVAL' },
          );
      }
      // cgroup v1: systemd makes the scope only in the hierarchies it manages (not cpuset, freezer, net_cls,
      // perf_event, hugetlb...); those are made and joined as the cgroupfs driver would (runc does this too).
      if (layout.mode !== 'v2') {
        // Recorded first, as the cgroupfs path does: a create killed now leaves what delete --force removes.
        record?.({ id, cgroupPath: sp.normalized, cgroupDirs, cgroupCreated: missingDirs(Object.values(cgroupDirs)) });
        prepared.created = manager.create();
        manager.addProcess(pid);
      }
      manager.apply(resources);
    },
    destroy: async () => {
      if (started) await stopAndRemove(sd, sp.unit, manager);
    },
    mountSource: () => mountSourceOf(layout, manager),
  };
  return prepared;
}

async function stopAndRemove(sd: Instance, unit: string, manager: CgroupManager): Promise<void> {
  const bus = await sd.connect();
  try {
    await stopScope(bus, unit);
  } finally {
    bus.close();
  }
  // What systemd does not remove: v1 hierarchies it does not manage (made by manager.create()).
  manager.destroy();
}

/** update: SetUnitProperties with what systemd covers, then every value through the files. */
export async function updateScope(cg: CgroupHost, s: StoredState, resources: LinuxResources): Promise<void> {
  const sd = instance(cg);
  const sp = parseSystemdPath(s.cgroupPath, s.id, sd.user);
  const manager = cg.manager(s);
  const properties = resourceProperties(resources, { v2: cg.layout().mode === 'v2', warn: (m) => cg.log.warn(m) });
  const bus = await sd.connect();
  try {
    await setScopeProperties(bus, sp.unit, properties);
  } finally {
    bus.close();
  }
  manager.apply(resources);
}

/** delete (and delete --force after a create that died before its state was saved). */
export async function destroyScope(
  cg: CgroupHost,
  s: Pick<StoredState, 'id' | 'cgroupPath' | 'cgroupDirs' | 'cgroupCreated'>,
  killFirst = false,
): Promise<void> {
  const sd = instance(cg);
  const sp = parseSystemdPath(s.cgroupPath, s.id, sd.user);
  // The intent's directories (v1, made beside systemd's) are removed by the cgroupfs manager after the stop.
  const manager = cg.manager(s);
  if (killFirst && manager.exists()) {
    try {
      manager.killAll(9);
    } catch (e) {
      cg.log.debug(`delete --force: kill the processes of ${s.id}'s scope: ${(e as Error).message}`);
    }
  }
  await stopAndRemove(sd, sp.unit, manager);
}
