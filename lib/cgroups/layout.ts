// Which cgroup hierarchies this host has, read from /proc/self/mountinfo.
//
// v1:     only "cgroup" mounts (one per controller set, e.g. /sys/fs/cgroup/memory, /sys/fs/cgroup/cpu,cpuacct).
// hybrid: v1 mounts plus a "cgroup2" mount beside them (systemd's /sys/fs/cgroup/unified), which usually holds
//         no controller or only the ones not bound to v1 (hugetlb on some hosts).
// v2:     a "cgroup2" mount at the cgroup root (/sys/fs/cgroup). A stray v1 named hierarchy (name=systemd,
//         mounted for old containers) does not make such a host hybrid: runc decides by what is mounted at
//         /sys/fs/cgroup, and so do we.

import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';

export type CgroupMode = 'v1' | 'hybrid' | 'v2';

export interface V1Hierarchy {
  mountpoint: string;
  /** The mount's root inside the hierarchy (mountinfo field 4); not "/" inside a container without cgroupns. */
  root: string;
  /** Controllers of this hierarchy, named hierarchies as "name=systemd". */
  controllers: string[];
}

export interface CgroupLayout {
  mode: CgroupMode;
  /** controller → mountpoint; co-mounted controllers (cpu,cpuacct) share a mountpoint. */
  v1Mounts: Map<string, string>;
  v1Hierarchies: V1Hierarchy[];
  /** The cgroup2 mountpoint (v2, or the unified hierarchy of a hybrid host). */
  v2Mount?: string;
  /** The cgroup2 mount's root inside the hierarchy. */
  v2MountRoot?: string;
  /** The cgroup root that decides v2 vs hybrid (default /sys/fs/cgroup). */
  root: string;
}

/** The v1 controllers the kernel knows; other words in the super options (rw, xattr, ...) are mount flags. */
export const V1_CONTROLLERS = [
  'cpuset',
  'cpu',
  'cpuacct',
  'blkio',
  'memory',
  'devices',
  'freezer',
  'net_cls',
  'perf_event',
  'net_prio',
  'hugetlb',
  'pids',
  'rdma',
  'misc',
  'debug',
] as const;

export interface MountinfoEntry {
  root: string;
  mountpoint: string;
  fstype: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses proc(5) mountinfo lines: "id parent maj:min root mountpoint opts [optional...] - fstype source superopts". */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      root: unescapeMountinfo(fields[3]),
      mountpoint: unescapeMountinfo(fields[4]),
      fstype: fields[sep + 1],
      superOptions: (fields[sep + 3] ?? '').split(','),
    });
  }
  return out;
}

export function detectCgroupLayout(opts: { mountinfo?: string; root?: string } = {}): CgroupLayout {
  const root = path.resolve(opts.root ?? '/sys/fs/cgroup');
  const text = opts.mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const mounts = parseMountinfo(text);

  const v1Mounts = new Map<string, string>();
  const v1Hierarchies: V1Hierarchy[] = [];
  const known = new Set<string>(V1_CONTROLLERS);
  let v2: MountinfoEntry | undefined;

  for (const m of mounts) {
    if (m.fstype === 'cgroup2') {
      // Prefer the mount at the root, then systemd's "unified", then the first one seen (bind mounts repeat).
      const rank = (e: MountinfoEntry): number =>
        e.mountpoint === root ? 0 : e.mountpoint === path.join(root, 'unified') ? 1 : 2;
      if (!v2 || rank(m) < rank(v2)) v2 = m;
      continue;
    }
    if (m.fstype !== 'cgroup') continue;
    const controllers = m.superOptions.filter((o) => known.has(o) || o.startsWith('name='));
    if (controllers.length === 0) continue;
    // The same hierarchy may be mounted twice (bind mounts); the first mount wins, as in runc.
    if (controllers.some((c) => v1Mounts.has(c))) continue;
    for (const c of controllers) v1Mounts.set(c, m.mountpoint);
    v1Hierarchies.push({ mountpoint: m.mountpoint, root: m.root, controllers });
  }

  let mode: CgroupMode;
  if (v2 && v2.mountpoint === root) mode = 'v2';
  else if (v1Hierarchies.length > 0) mode = v2 ? 'hybrid' : 'v1';
  else if (v2) mode = 'v2';
  else {
    throw new HakoError('no cgroup filesystem is mounted (neither cgroup nor cgroup2 in /proc/self/mountinfo)', {
      step: 'detect cgroups',
      code: 'ENOCGROUP',
    });
  }

  if (mode === 'v2') {
    // Named v1 hierarchies on a v2 host are not ours to manage.
    v1Mounts.clear();
    v1Hierarchies.length = 0;
  }
  return {
    mode,
    v1Mounts,
    v1Hierarchies,
    v2Mount: v2?.mountpoint,
    v2MountRoot: v2?.root,
    root,
  };
}

export interface ProcCgroup {
  /** controller (or "name=systemd") → path inside its hierarchy. */
  v1: Map<string, string>;
  /** The "0::" line: the path in the cgroup2 hierarchy. */
  unified?: string;
}

/** Parses /proc/<pid>/cgroup ("hierarchy-id:controller,list:/path"). */
export function parseProcCgroup(text: string): ProcCgroup {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const ctrls = line.slice(first + 1, second);
    const p = line.slice(second + 1);
    if (id === '0' && ctrls === '') {
      unified = p;
      continue;
    }
    for (const c of ctrls.split(',')) if (c) v1.set(c, p);
  }
  return { v1, unified };
}
