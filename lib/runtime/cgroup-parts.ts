// The parts of cgroup handling that both drivers share (cgroupfs in cgroup-support.ts, systemd in
// systemd-cgroup.ts): a leaf below both, so the lazily loaded systemd driver imports no module that loads it.
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_ALLOWED_DEVICES } from '../cgroups/devices';
import type { CgroupLayout } from '../cgroups/layout';
import type { CgroupManager } from '../cgroups/types';
import type { Logger } from '../log';
import type { LinuxResources, Spec } from '../oci/types';
import type { CgroupMountSource } from '../plan/build';
import type { StoredState } from '../state/store';

/** What a driver needs of the lifecycle's cgroup support (CgroupSupport implements it). */
export interface CgroupHost {
  readonly log: Logger;
  layout(): CgroupLayout;
  manager(
    s: Pick<StoredState, 'id' | 'cgroupPath' | 'cgroupCreated' | 'cgroupDirs'> & { config?: Spec },
  ): CgroupManager;
}

export interface PreparedCgroup {
  path: string;
  /** The cgroup.procs files of every hierarchy (for the init to join by itself). */
  procsFiles(): string[];
  /**
   * A hybrid host's cgroup2 cgroup.procs of the container: membership only (no controller on that side), which
   * the runtime may join for the init while the init works (create.ts). Undefined elsewhere.
   */
  hybridV2Procs?(): string | undefined;
  created: string[];
  manager: CgroupManager;
  /** The systemd driver: the init cannot join by itself (systemd puts it in the scope), addProcess is async. */
  systemd?: boolean;
  addProcess(pid: number): void | Promise<void>;
  destroy(): void | Promise<void>;
  mountSource(): CgroupMountSource;
}

/**
 * runc's device rules: the config's, then the defaults every container gets, then one per linux.devices
 * node. A fifo ('p') is no device to the devices cgroup and gets no rule (runc skips it too): mapped to 'c'
 * without numbers, as it once was, it became "c *:* rwm" and opened every character device (/dev/kmsg, /dev/mem)
 * to a container whose config denied them all. 'u' (unbuffered) is a character device.
 */
export function deviceRules(spec: Spec): LinuxResources['devices'] {
  const own = spec.linux?.resources?.devices ?? [];
  const devs = (spec.linux?.devices ?? [])
    .filter((d) => d.type !== 'p')
    .map((d) => ({ allow: true, type: d.type === 'u' ? 'c' : d.type, major: d.major, minor: d.minor, access: 'rwm' }));
  return [...own, ...DEFAULT_ALLOWED_DEVICES, ...devs];
}

/** What the container's /sys/fs/cgroup shows: the cgroup2 mount, or binds of its v1 directories. */
export function mountSourceOf(layout: CgroupLayout, manager: CgroupManager): CgroupMountSource {
  if (layout.mode === 'v2') return { mode: 'v2', binds: [] };
  const mounts = [...new Set([...layout.v1Mounts.values(), ...(layout.v2Mount ? [layout.v2Mount] : [])])];
  const binds = new Map<string, string>();
  for (const dir of new Set(Object.values(manager.paths()))) {
    const m = mounts.filter((mp) => dir === mp || dir.startsWith(mp + '/')).sort((a, b) => b.length - a.length)[0];
    if (m) binds.set(path.basename(m), dir);
  }
  return { mode: 'v1', binds: [...binds].map(([name, source]) => ({ name, source })) };
}

/** The directories on the way to each of `dirs` that do not exist yet (what mkdir -p would make), top-down. */
export function missingDirs(dirs: string[]): string[] {
  const out = new Set<string>();
  for (const dir of new Set(dirs)) {
    const chain: string[] = [];
    for (let d = dir; d !== '/' && !fs.existsSync(d); d = path.dirname(d)) chain.unshift(d);
    for (const d of chain) out.add(d);
  }
  return [...out];
}
