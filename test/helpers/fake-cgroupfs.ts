// Fake cgroup filesystems made of plain files in a temp directory, for the cgroup manager's unit tests.
//
// A fake tree has the mount layout of a real host (v1 with cpu,cpuacct co-mounted, hybrid with a cgroup2
// "unified" mount, or pure v2), the matching mountinfo and /proc/self/cgroup texts, and default control
// files. The kernel fills a new cgroup directory with control files by itself; here `populate()` does that
// for directories the manager created, so tests call it after create().

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type CgroupLayout, detectCgroupLayout } from '../../lib/cgroups/layout';

export type FakeKind = 'v1' | 'hybrid' | 'v2';

export interface FakeOptions {
  /** v1/hybrid: which v1 hierarchies to mount (default: all of DEFAULT_V1). Each entry is one mount. */
  v1?: string[][];
  /** hybrid/v2: cgroup.controllers of the cgroup2 root. */
  v2Controllers?: string[];
  /** The process's own cgroup path in every hierarchy (for relative paths), default "/". */
  own?: string;
  /** v2: give the root io.bfq.weight (the BFQ scheduler) instead of io.weight only. */
  bfq?: boolean;
}

export const DEFAULT_V1: string[][] = [
  ['cpu', 'cpuacct'],
  ['cpuset'],
  ['memory'],
  ['devices'],
  ['freezer'],
  ['blkio'],
  ['pids'],
  ['hugetlb'],
  ['net_cls', 'net_prio'],
  ['rdma'],
  ['name=systemd'],
];

const MAX63 = '9223372036854771712';

/** Default files of a fresh v1 cgroup directory, per controller. */
function v1Files(controller: string, isRoot: boolean): Record<string, string> {
  switch (controller) {
    case 'cpu':
      return {
        'cpu.shares': '1024\n',
        'cpu.cfs_period_us': '100000\n',
        'cpu.cfs_quota_us': '-1\n',
        'cpu.cfs_burst_us': '0\n',
        'cpu.rt_period_us': '1000000\n',
        'cpu.rt_runtime_us': '0\n',
        'cpu.idle': '0\n',
        'cpu.stat': 'nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n',
      };
    case 'cpuacct':
      return {
        'cpuacct.usage': '123456789\n',
        'cpuacct.usage_percpu': '100 200 \n',
        'cpuacct.usage_all': 'cpu user system\n0 60 40\n1 120 80\n',
        'cpuacct.stat': 'user 5\nsystem 7\n',
      };
    case 'cpuset':
      return {
        'cpuset.cpus': isRoot ? '0-3\n' : '\n',
        'cpuset.mems': isRoot ? '0\n' : '\n',
        'cpuset.cpu_exclusive': '0\n',
        'cpuset.mem_exclusive': '0\n',
        'cpuset.mem_hardwall': '0\n',
        'cpuset.memory_migrate': '0\n',
        'cpuset.memory_pressure': '0\n',
        'cpuset.memory_spread_page': '0\n',
        'cpuset.memory_spread_slab': '0\n',
        'cpuset.sched_load_balance': '1\n',
        'cpuset.sched_relax_domain_level': '-1\n',
      };
    case 'memory':
      return {
        'memory.limit_in_bytes': `${MAX63}\n`,
        'memory.soft_limit_in_bytes': `${MAX63}\n`,
        'memory.usage_in_bytes': '4096\n',
        'memory.max_usage_in_bytes': '8192\n',
        'memory.failcnt': '0\n',
        'memory.memsw.limit_in_bytes': `${MAX63}\n`,
        'memory.memsw.usage_in_bytes': '4096\n',
        'memory.memsw.max_usage_in_bytes': '8192\n',
        'memory.memsw.failcnt': '0\n',
        'memory.kmem.limit_in_bytes': `${MAX63}\n`,
        'memory.kmem.usage_in_bytes': '1024\n',
        'memory.kmem.max_usage_in_bytes': '2048\n',
        'memory.kmem.failcnt': '0\n',
        'memory.kmem.tcp.limit_in_bytes': `${MAX63}\n`,
        'memory.kmem.tcp.usage_in_bytes': '0\n',
        'memory.kmem.tcp.max_usage_in_bytes': '0\n',
        'memory.kmem.tcp.failcnt': '0\n',
        'memory.swappiness': '60\n',
        'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
        'memory.use_hierarchy': '1\n',
        'memory.stat': 'rss 200\ncache 100\nswap 0\n',
      };
    case 'devices':
      // No devices.list: a plain file cannot follow the writes, so the manager skips its re-read check.
      return { 'devices.allow': '', 'devices.deny': '' };
    case 'freezer':
      return isRoot ? {} : { 'freezer.state': 'THAWED\n' };
    case 'blkio':
      return {
        'blkio.bfq.weight': '100\n',
        'blkio.bfq.weight_device': '',
        'blkio.leaf_weight': '100\n',
        'blkio.leaf_weight_device': '',
        'blkio.throttle.read_bps_device': '',
        'blkio.throttle.write_bps_device': '',
        'blkio.throttle.read_iops_device': '',
        'blkio.throttle.write_iops_device': '',
        'blkio.throttle.io_serviced_recursive': '8:0 Read 3\n8:0 Write 4\nTotal 7\n',
        'blkio.throttle.io_service_bytes_recursive': '8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n',
      };
    case 'pids':
      return isRoot ? { 'pids.current': '100\n' } : { 'pids.max': 'max\n', 'pids.current': '3\n' };
    case 'hugetlb':
      return {
        'hugetlb.2MB.limit_in_bytes': `${MAX63}\n`,
        'hugetlb.2MB.rsvd.limit_in_bytes': `${MAX63}\n`,
        'hugetlb.2MB.usage_in_bytes': '0\n',
        'hugetlb.2MB.rsvd.usage_in_bytes': '2097152\n',
        'hugetlb.2MB.rsvd.max_usage_in_bytes': '4194304\n',
        'hugetlb.2MB.rsvd.failcnt': '1\n',
      };
    case 'net_cls':
      return { 'net_cls.classid': '0\n' };
    case 'net_prio':
      return { 'net_prio.ifpriomap': 'lo 0\n', 'net_prio.prioidx': '1\n' };
    case 'rdma':
      return isRoot ? {} : { 'rdma.max': '', 'rdma.current': '' };
    default:
      return {};
  }
}

/** Default files of a cgroup v2 directory, for the controllers available to it. */
function v2Files(controllers: string[], isRoot: boolean, bfq: boolean): Record<string, string> {
  const f: Record<string, string> = {
    'cgroup.controllers': `${controllers.join(' ')}\n`,
    'cgroup.subtree_control': '\n',
    'cgroup.procs': '',
    'cgroup.threads': '',
    'cgroup.type': 'domain\n',
    'cgroup.max.descendants': 'max\n',
    'cpu.stat': 'usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n',
    'cpu.pressure':
      'some avg10=0.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
  };
  if (!isRoot) {
    Object.assign(f, { 'cgroup.freeze': '0\n', 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.kill': '' });
  }
  const has = (c: string): boolean => controllers.includes(c);
  if (has('cpu') && !isRoot)
    Object.assign(f, { 'cpu.weight': '100\n', 'cpu.max': 'max 100000\n', 'cpu.max.burst': '0\n', 'cpu.idle': '0\n' });
  if (has('cpuset'))
    Object.assign(f, {
      'cpuset.cpus': '\n',
      'cpuset.mems': '\n',
      'cpuset.cpus.effective': '0-3\n',
      'cpuset.mems.effective': '0\n',
    });
  if (has('memory') && !isRoot) {
    Object.assign(f, {
      'memory.max': 'max\n',
      'memory.low': '0\n',
      'memory.high': 'max\n',
      'memory.swap.max': 'max\n',
      'memory.current': '8192\n',
      'memory.peak': '16384\n',
      'memory.swap.current': '0\n',
      'memory.stat': 'anon 4096\nfile 1024\n',
      'memory.events': 'low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n',
      'memory.pressure':
        'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
    });
  }
  if (has('io') && !isRoot) {
    Object.assign(f, {
      'io.weight': 'default 100\n',
      'io.max': '',
      'io.stat': '8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
    });
    if (bfq) f['io.bfq.weight'] = 'default 100\n';
  }
  if (has('pids') && !isRoot) Object.assign(f, { 'pids.max': 'max\n', 'pids.current': '2\n' });
  if (has('hugetlb') && !isRoot) {
    Object.assign(f, {
      'hugetlb.2MB.max': 'max\n',
      'hugetlb.2MB.rsvd.max': 'max\n',
      'hugetlb.2MB.current': '0\n',
      'hugetlb.2MB.rsvd.current': '0\n',
      'hugetlb.2MB.events': 'max 0\n',
    });
  }
  if (has('rdma') && !isRoot) Object.assign(f, { 'rdma.max': '', 'rdma.current': '' });
  return f;
}

export class FakeCgroupfs {
  readonly base: string;
  /** The fake /sys/fs/cgroup. */
  readonly root: string;
  readonly mountinfo: string;
  readonly procSelfCgroup: string;
  readonly hierarchies: { mountpoint: string; controllers: string[] }[] = [];
  readonly v2Mount?: string;
  private readonly v2Controllers: string[];

  constructor(
    readonly kind: FakeKind,
    private readonly opts: FakeOptions = {},
  ) {
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), `hako-fakecg-${kind}-`));
    this.root = path.join(this.base, 'sys/fs/cgroup');
    fs.mkdirSync(this.root, { recursive: true });
    const own = opts.own ?? '/';
    this.v2Controllers =
      opts.v2Controllers ?? (kind === 'v2' ? ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma'] : []);
    const mi: string[] = [
      `23 1 0:21 / ${this.base} rw,relatime - tmpfs tmpfs rw`,
      `31 23 0:28 / ${this.root} rw - tmpfs tmpfs rw,mode=755`,
    ];
    const pc: string[] = [];
    let id = 40;
    if (kind !== 'v2') {
      (opts.v1 ?? DEFAULT_V1).forEach((ctrls, i) => {
        const name = ctrls.map((c) => c.replace(/^name=/, '')).join(',');
        const mp = path.join(this.root, name);
        fs.mkdirSync(mp, { recursive: true });
        this.hierarchies.push({ mountpoint: mp, controllers: ctrls });
        mi.push(`${id++} 31 0:${30 + i} / ${mp} rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,${ctrls.join(',')}`);
        pc.push(`${i + 1}:${ctrls.join(',')}:${own}`);
        this.fillDir(mp, true);
        if (own !== '/') {
          fs.mkdirSync(path.join(mp, own), { recursive: true });
          this.fillDir(path.join(mp, own), false);
        }
      });
    }
    if (kind === 'hybrid' || kind === 'v2') {
      this.v2Mount = kind === 'v2' ? this.root : path.join(this.root, 'unified');
      fs.mkdirSync(this.v2Mount, { recursive: true });
      mi.push(`${id++} 31 0:60 / ${this.v2Mount} rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate`);
      this.fillDir(this.v2Mount, true);
      if (own !== '/') {
        fs.mkdirSync(path.join(this.v2Mount, own), { recursive: true });
        this.fillDir(path.join(this.v2Mount, own), false);
      }
    }
    pc.push(`0::${own}`);
    this.mountinfo = mi.join('\n') + '\n';
    this.procSelfCgroup = pc.reverse().join('\n') + '\n';
  }

  layout(): CgroupLayout {
    return detectCgroupLayout({ mountinfo: this.mountinfo, root: this.root });
  }

  /** Which hierarchy (v1 controllers, or null for cgroup2) holds dir. */
  private ownerOf(dir: string): { controllers: string[] | null; mount: string } | undefined {
    if (this.v2Mount && (dir === this.v2Mount || dir.startsWith(this.v2Mount + '/'))) {
      // a hybrid unified mount sits inside root: check it before the v1 mounts
      return { controllers: null, mount: this.v2Mount };
    }
    for (const h of this.hierarchies) {
      if (dir === h.mountpoint || dir.startsWith(h.mountpoint + '/'))
        return { controllers: h.controllers, mount: h.mountpoint };
    }
    return undefined;
  }

  /** Writes the default control files into dir (what the kernel does at mkdir). */
  fillDir(dir: string, isRoot: boolean): void {
    const owner = this.ownerOf(dir);
    if (!owner) throw new Error(`${dir} is in no fake hierarchy`);
    let files: Record<string, string>;
    if (owner.controllers === null) {
      // Available controllers of a child = what its parent enabled; the fake makes every root controller
      // available below so tests can check both the subtree_control writes and the files.
      files = v2Files(this.v2Controllers, isRoot, !!this.opts.bfq);
    } else {
      files = { 'cgroup.procs': '', tasks: '', 'cgroup.clone_children': '0\n', notify_on_release: '0\n' };
      for (const c of owner.controllers) Object.assign(files, v1Files(c, isRoot));
    }
    for (const [name, content] of Object.entries(files)) {
      const p = path.join(dir, name);
      if (!fs.existsSync(p)) fs.writeFileSync(p, content);
    }
  }

  /** Fills every directory below the mounts that has no cgroup.procs yet (cgroups the manager created). */
  populate(): void {
    const walk = (d: string, isRoot: boolean): void => {
      if (!isRoot && !fs.existsSync(path.join(d, 'cgroup.procs'))) this.fillDir(d, false);
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const sub = path.join(d, e.name);
        if (!e.isDirectory()) continue;
        if (this.v2Mount && sub === this.v2Mount && d !== this.v2Mount) continue; // walked separately
        walk(sub, false);
      }
    };
    for (const h of this.hierarchies) walk(h.mountpoint, true);
    if (this.v2Mount) walk(this.v2Mount, true);
  }

  read(p: string): string {
    return fs.readFileSync(p, 'utf8');
  }

  cleanup(): void {
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}
