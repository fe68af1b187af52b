// Unit tests of lib/cgroups on fake cgroup trees (plain files): detection, paths, conversions, the files
// written for every resource on v1, hybrid and v2, stats, freezer, destroy, rootless.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { HakoError } from '../lib/errors';
import type { LinuxResources } from '../lib/oci/types';
import {
  blkioWeightToIoWeight,
  cleanCgroupPath,
  cpuSharesToWeight,
  cpuSharesToWeightLinear,
  createCgroupManager,
  DEFAULT_ALLOWED_DEVICES,
  detectCgroupLayout,
  encodeEvent,
  memorySwapToV2,
  parseProcCgroup,
  pidsMax,
  resolveCgroupPaths,
  statsEvent,
  watchOom,
} from '../lib/cgroups';
import type { CgroupManagerOptions, CgroupLog } from '../lib/cgroups';
import { CgroupV1Manager } from '../lib/cgroups/v1';
import { CgroupV2Manager } from '../lib/cgroups/v2';
import { FakeCgroupfs } from './helpers/fake-cgroupfs';

// ---- sample texts --------------------------------------------------------------------------------------

const MI_V1 = `25 1 0:23 / /sys rw - sysfs sysfs rw
31 25 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
`;
// This VM's own mountinfo (Debian 12 hybrid): hugetlb lives on the cgroup2 side.
const MI_HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const MI_V2 = `25 1 0:23 / /sys rw - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

function collect(): { log: CgroupLog; warnings: string[] } {
  const warnings: string[] = [];
  return { log: { warn: (m) => warnings.push(m) }, warnings };
}

function expectHako(fn: () => unknown, field: string | RegExp, extra?: (e: HakoError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HakoError, `expected HakoError, got ${String(e)}`);
    if (typeof field === 'string') assert.equal(e.field, field, e.message);
    else assert.match(e.field ?? '', field, e.message);
    assert.ok(e.message.includes(e.field ?? '###'), `message names the field: ${e.message}`);
    extra?.(e);
    return true;
  });
}

interface Rig {
  fake: FakeCgroupfs;
  writes: { file: string; value: string }[];
  opts: CgroupManagerOptions;
  warnings: string[];
}

function rig(kind: 'v1' | 'hybrid' | 'v2', extra: Partial<CgroupManagerOptions> = {}, fakeOpts = {}): Rig {
  const fake = new FakeCgroupfs(kind, fakeOpts);
  const writes: { file: string; value: string }[] = [];
  const { log, warnings } = collect();
  const opts: CgroupManagerOptions = {
    layout: fake.layout(),
    path: '/hako/c1',
    procSelfCgroup: fake.procSelfCgroup,
    log,
    onWrite: (file, value) => writes.push({ file, value }),
    hugePageSizes: ['2MB'],
    ...extra,
  };
  return { fake, writes, opts, warnings };
}

const rd = (...p: string[]): string => fs.readFileSync(path.join(...p), 'utf8').trim();
const writesOf = (r: Rig, name: string): string[] =>
  r.writes.filter((w) => path.basename(w.file) === name).map((w) => w.value);

// ---- detection -----------------------------------------------------------------------------------------

describe('detectCgroupLayout', () => {
  test('v1: controllers, co-mounts, named hierarchy, mount flags ignored', () => {
    const l = detectCgroupLayout({ mountinfo: MI_V1 });
    assert.equal(l.mode, 'v1');
    assert.equal(l.v2Mount, undefined);
    assert.equal(l.v1Mounts.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(l.v1Mounts.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(l.v1Mounts.get('cpuset'), '/sys/fs/cgroup/cpuset');
    assert.equal(l.v1Mounts.get('name=systemd'), '/sys/fs/cgroup/systemd');
    assert.equal(l.v1Mounts.has('clone_children'), false);
    assert.equal(l.v1Mounts.has('xattr'), false);
    assert.equal(l.v1Hierarchies.length, 7);
  });
  test('hybrid: v1 controllers plus the cgroup2 "unified" mount', () => {
    const l = detectCgroupLayout({ mountinfo: MI_HYBRID });
    assert.equal(l.mode, 'hybrid');
    assert.equal(l.v2Mount, '/sys/fs/cgroup/unified');
    assert.equal(l.v1Mounts.get('memory'), '/sys/fs/cgroup/memory');
    assert.equal(l.v1Mounts.has('hugetlb'), false);
  });
  test('v2: cgroup2 at the root; a stray named v1 hierarchy does not make it hybrid', () => {
    const l = detectCgroupLayout({ mountinfo: MI_V2 });
    assert.equal(l.mode, 'v2');
    assert.equal(l.v2Mount, '/sys/fs/cgroup');
    assert.equal(l.v1Mounts.size, 0);
    const withNamed = MI_V2 + '50 30 0:50 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n';
    assert.equal(detectCgroupLayout({ mountinfo: withNamed }).mode, 'v2');
  });
  test('mount roots and escaped mountpoints are kept; no cgroup at all is an error', () => {
    const mi = '40 31 0:37 /docker/abc /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory\n';
    const l = detectCgroupLayout({ mountinfo: mi });
    assert.equal(l.v1Hierarchies[0].root, '/docker/abc');
    assert.equal(l.v1Mounts.get('memory'), '/sys/fs/cgroup/my memory');
    assert.throws(() => detectCgroupLayout({ mountinfo: '25 1 0:23 / /sys rw - sysfs sysfs rw\n' }), HakoError);
  });
  test('the fake trees are detected as their kind', () => {
    for (const kind of ['v1', 'hybrid', 'v2'] as const) {
      const fake = new FakeCgroupfs(kind);
      try {
        assert.equal(fake.layout().mode, kind);
      } finally {
        fake.cleanup();
      }
    }
  });
  test('parseProcCgroup', () => {
    const pc = parseProcCgroup('4:memory:/process_api/x\n1:cpu,cpuacct:/a\n9:name=systemd:/\n0::/u\n');
    assert.equal(pc.v1.get('memory'), '/process_api/x');
    assert.equal(pc.v1.get('cpuacct'), '/a');
    assert.equal(pc.v1.get('name=systemd'), '/');
    assert.equal(pc.unified, '/u');
  });
});

// ---- paths ---------------------------------------------------------------------------------------------

describe('resolveCgroupPaths', () => {
  const v1 = detectCgroupLayout({ mountinfo: MI_V1 });
  const self =
    '9:name=systemd:/init.scope\n5:memory:/process_api/me\n3:cpu,cpuacct:/\n2:cpuset:/\n1:devices:/\n4:freezer:/\n6:pids:/\n0::/init.scope\n';
  test('cleanCgroupPath matches runc CleanPath', () => {
    assert.equal(cleanCgroupPath('/a/../../b/'), '/b');
    assert.equal(cleanCgroupPath('../../x/y'), 'x/y');
    assert.equal(cleanCgroupPath('a//b/./c'), 'a/b/c');
    assert.equal(cleanCgroupPath(''), '');
  });
  test('absolute: below every mountpoint, whatever our own cgroup', () => {
    const p = resolveCgroupPaths({ layout: v1, cgroupsPath: '/docker/../libpod/c1', procSelfCgroup: self });
    assert.equal(p.inner, '/libpod/c1');
    assert.equal(p.v1.get('memory'), '/sys/fs/cgroup/memory/libpod/c1');
    assert.equal(p.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct/libpod/c1');
    assert.equal(p.v1.get('name=systemd'), '/sys/fs/cgroup/systemd/libpod/c1');
    assert.equal(p.unified, undefined);
  });
  test('relative: below our own cgroup per controller; unset: the container id (runc default)', () => {
    const p = resolveCgroupPaths({ layout: v1, cgroupsPath: 'box', procSelfCgroup: self });
    assert.equal(p.v1.get('memory'), '/sys/fs/cgroup/memory/process_api/me/box');
    assert.equal(p.v1.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct/box');
    assert.equal(p.v1.get('name=systemd'), '/sys/fs/cgroup/systemd/init.scope/box');
    const d = resolveCgroupPaths({ layout: v1, id: 'ctr-1', procSelfCgroup: self });
    assert.equal(d.inner, 'ctr-1');
    assert.equal(d.v1.get('memory'), '/sys/fs/cgroup/memory/process_api/me/ctr-1');
  });
  test('relative inside a container: the mount root is stripped from /proc/self/cgroup paths', () => {
    const l = detectCgroupLayout({
      mountinfo: '40 31 0:37 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n',
    });
    const p = resolveCgroupPaths({ layout: l, cgroupsPath: 'x', procSelfCgroup: '4:memory:/docker/abc/sub\n0::/\n' });
    assert.equal(p.v1.get('memory'), '/sys/fs/cgroup/memory/sub/x');
  });
  test('v2 relative: below the parent of our own cgroup; hybrid: unified dir too', () => {
    const v2 = detectCgroupLayout({ mountinfo: MI_V2 });
    const p = resolveCgroupPaths({ layout: v2, cgroupsPath: 'c', procSelfCgroup: '0::/user.slice/session-1.scope\n' });
    assert.equal(p.unified, '/sys/fs/cgroup/user.slice/c');
    const a = resolveCgroupPaths({ layout: v2, cgroupsPath: '/hako/c', procSelfCgroup: '' });
    assert.equal(a.unified, '/sys/fs/cgroup/hako/c');
    const h = resolveCgroupPaths({ layout: detectCgroupLayout({ mountinfo: MI_HYBRID }), cgroupsPath: '/hako/c' });
    assert.equal(h.unified, '/sys/fs/cgroup/unified/hako/c');
    assert.equal(h.v1.get('cpuacct'), '/sys/fs/cgroup/cpuacct/hako/c');
  });
  test('systemd syntax and --systemd-cgroup are errors naming linux.cgroupsPath', () => {
    expectHako(
      () => resolveCgroupPaths({ layout: v1, cgroupsPath: 'system.slice:docker:abc' }),
      'linux.cgroupsPath',
      (e) => assert.match(e.message, /systemd/),
    );
    expectHako(() => resolveCgroupPaths({ layout: v1, cgroupsPath: '/x', systemdCgroup: true }), 'linux.cgroupsPath');
    expectHako(() => resolveCgroupPaths({ layout: v1, id: 'a/b' }), 'linux.cgroupsPath');
    expectHako(() => resolveCgroupPaths({ layout: v1, cgroupsPath: '/../..' }), 'linux.cgroupsPath');
  });
});

// ---- conversions ---------------------------------------------------------------------------------------

describe('conversions', () => {
  test('cpu shares → weight (runc ≥ 1.3.2 quadratic; anchors min/default/max)', () => {
    assert.equal(cpuSharesToWeight(0), 0);
    assert.equal(cpuSharesToWeight(2), 1);
    assert.equal(cpuSharesToWeight(1024), 100);
    assert.equal(cpuSharesToWeight(262144), 10000);
    assert.equal(cpuSharesToWeight(300000), 10000);
    // l = log2(512) = 9: 10^((81 + 1125)/612 - 7/34) = 10^1.7647... = 58.2 → 59
    assert.equal(cpuSharesToWeight(512), 59);
    assert.equal(cpuSharesToWeight(2048), Math.ceil(10 ** ((121 + 1375) / 612 - 7 / 34)));
    for (let s = 3; s < 262144; s = Math.ceil(s * 1.7)) {
      assert.ok(cpuSharesToWeight(s) <= cpuSharesToWeight(Math.ceil(s * 1.7)), 'monotonic');
    }
  });
  test('cpu shares → weight, legacy linear formula', () => {
    assert.equal(cpuSharesToWeightLinear(2), 1);
    assert.equal(cpuSharesToWeightLinear(1024), 39);
    assert.equal(cpuSharesToWeightLinear(262144), 10000);
  });
  test('blkio weight → io.weight', () => {
    assert.equal(blkioWeightToIoWeight(0), 0);
    assert.equal(blkioWeightToIoWeight(10), 1);
    assert.equal(blkioWeightToIoWeight(500), 4950);
    assert.equal(blkioWeightToIoWeight(1000), 10000);
  });
  test('memory swap (memory+swap) → memory.swap.max', () => {
    assert.equal(memorySwapToV2(0, 0), 0);
    assert.equal(memorySwapToV2(0, -1), -1);
    assert.equal(memorySwapToV2(-1, 100), -1);
    assert.equal(memorySwapToV2(300, 100), 200);
    assert.equal(memorySwapToV2(100, 100), 0);
    assert.equal(memorySwapToV2(300, -1), 300);
    assert.throws(() => memorySwapToV2(50, 100), /should be >= memory/);
    assert.throws(() => memorySwapToV2(50, 0), /without memory limit/);
  });
  test('pids limit', () => {
    assert.equal(pidsMax(16), '16');
    assert.equal(pidsMax(0), '1');
    assert.equal(pidsMax(-1), 'max');
  });
});

// ---- v1 ------------------------------------------------------------------------------------------------

const FULL: LinuxResources = {
  devices: [
    { allow: false, access: 'rwm' },
    ...DEFAULT_ALLOWED_DEVICES,
    { allow: true, type: 'b', major: 8, minor: 0, access: 'r' },
  ],
  memory: {
    limit: 64 << 20,
    reservation: 32 << 20,
    swap: 128 << 20,
    kernel: 16 << 20,
    kernelTCP: 8 << 20,
    swappiness: 10,
    disableOOMKiller: true,
    useHierarchy: true,
  },
  cpu: {
    shares: 512,
    quota: 50000,
    period: 100000,
    burst: 1000,
    realtimeRuntime: 950,
    realtimePeriod: 1000,
    cpus: '0-1',
    mems: '0',
    idle: 0,
  },
  pids: { limit: 32 },
  blockIO: {
    weight: 500,
    leafWeight: 300,
    weightDevice: [{ major: 8, minor: 0, weight: 600, leafWeight: 200 }],
    throttleReadBpsDevice: [
      { major: 8, minor: 0, rate: 1048576 },
      { major: 8, minor: 16, rate: 2097152 },
    ],
    throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 524288 }],
    throttleReadIOPSDevice: [{ major: 8, minor: 0, rate: 100 }],
    throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 50 }],
  },
  hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
  network: {
    classID: 0x100001,
    priorities: [
      { name: 'eth0', priority: 5 },
      { name: 'lo', priority: 1 },
    ],
  },
  rdma: { mlx5_0: { hcaHandles: 3, hcaObjects: 100 } },
};

describe('v1 manager (fake tree)', () => {
  test('create: mkdir -p in every hierarchy, co-mounted controllers share a dir, cpuset inherits cpus/mems', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      assert.ok(m instanceof CgroupV1Manager);
      assert.equal(m.mode, 'v1');
      const created = m.create();
      const p = m.paths();
      assert.equal(p.cpu, p.cpuacct);
      assert.equal(p.cpu, path.join(r.fake.root, 'cpu,cpuacct/hako/c1'));
      assert.equal(p['name=systemd'], path.join(r.fake.root, 'systemd/hako/c1'));
      for (const d of new Set(Object.values(p))) assert.ok(fs.statSync(d).isDirectory(), d);
      // 11 hierarchies x (hako, hako/c1)
      assert.equal(created.length, 22);
      assert.ok(created.includes(path.join(r.fake.root, 'memory/hako')));
      // the fake has no kernel: cpuset files appear only after populate(); the real test covers inheritance
      r.fake.populate();
      createCgroupManager(r.opts).create();
      assert.equal(rd(p.cpuset, 'cpuset.cpus'), '0-3');
      assert.equal(rd(p.cpuset, 'cpuset.mems'), '0');
      assert.equal(rd(r.fake.root, 'cpuset/hako/cpuset.cpus'), '0-3');
    } finally {
      r.fake.cleanup();
    }
  });

  test('apply: every resource lands in its v1 file', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      r.writes.length = 0;
      m.apply(FULL);
      const p = m.paths();
      // memory: from unlimited, the limit goes first so that memsw >= limit holds at every step
      assert.deepEqual(
        r.writes
          .filter((w) => w.file.startsWith(p.memory))
          .map((w) => `${path.basename(w.file)}=${w.value}`)
          .slice(0, 2),
        [`memory.limit_in_bytes=${64 << 20}`, `memory.memsw.limit_in_bytes=${128 << 20}`],
      );
      assert.equal(rd(p.memory, 'memory.limit_in_bytes'), String(64 << 20));
      assert.equal(rd(p.memory, 'memory.memsw.limit_in_bytes'), String(128 << 20));
      assert.equal(rd(p.memory, 'memory.soft_limit_in_bytes'), String(32 << 20));
      assert.equal(rd(p.memory, 'memory.kmem.limit_in_bytes'), String(16 << 20));
      assert.equal(rd(p.memory, 'memory.kmem.tcp.limit_in_bytes'), String(8 << 20));
      assert.equal(rd(p.memory, 'memory.swappiness'), '10');
      assert.equal(rd(p.memory, 'memory.oom_control'), '1');
      assert.deepEqual(writesOf(r, 'memory.use_hierarchy'), [], 'already 1: not rewritten');
      // cpu
      assert.equal(rd(p.cpu, 'cpu.shares'), '512');
      assert.equal(rd(p.cpu, 'cpu.cfs_quota_us'), '50000');
      assert.equal(rd(p.cpu, 'cpu.cfs_period_us'), '100000');
      assert.equal(rd(p.cpu, 'cpu.cfs_burst_us'), '1000');
      assert.equal(rd(p.cpu, 'cpu.idle'), '0');
      assert.equal(rd(p.cpu, 'cpu.rt_period_us'), '1000');
      assert.equal(rd(p.cpu, 'cpu.rt_runtime_us'), '950');
      assert.equal(rd(p.cpuset, 'cpuset.cpus'), '0-1');
      assert.equal(rd(p.cpuset, 'cpuset.mems'), '0');
      // pids
      assert.equal(rd(p.pids, 'pids.max'), '32');
      // blkio (BFQ names, as the fake has no blkio.weight)
      assert.equal(rd(p.blkio, 'blkio.bfq.weight'), '500');
      assert.equal(rd(p.blkio, 'blkio.leaf_weight'), '300');
      assert.deepEqual(writesOf(r, 'blkio.bfq.weight_device'), ['8:0 600']);
      assert.deepEqual(writesOf(r, 'blkio.leaf_weight_device'), ['8:0 200']);
      assert.deepEqual(writesOf(r, 'blkio.throttle.read_bps_device'), ['8:0 1048576', '8:16 2097152']);
      assert.deepEqual(writesOf(r, 'blkio.throttle.write_bps_device'), ['8:0 524288']);
      assert.deepEqual(writesOf(r, 'blkio.throttle.read_iops_device'), ['8:0 100']);
      assert.deepEqual(writesOf(r, 'blkio.throttle.write_iops_device'), ['8:0 50']);
      // hugetlb, with the reservation limit
      assert.equal(rd(p.hugetlb, 'hugetlb.2MB.limit_in_bytes'), '4194304');
      assert.equal(rd(p.hugetlb, 'hugetlb.2MB.rsvd.limit_in_bytes'), '4194304');
      // network
      assert.equal(rd(p.net_cls, 'net_cls.classid'), String(0x100001));
      assert.deepEqual(writesOf(r, 'net_prio.ifpriomap'), ['eth0 5', 'lo 1']);
      // rdma
      assert.deepEqual(writesOf(r, 'rdma.max'), ['mlx5_0 hca_handle=3 hca_object=100']);
      // devices: deny all first, then each allow (runc's transition from an allow-all cgroup)
      const dev = r.writes
        .filter((w) => w.file.startsWith(p.devices + '/devices.'))
        .map((w) => `${path.basename(w.file)} ${w.value}`);
      assert.equal(dev[0], 'devices.deny a *:* rwm');
      assert.ok(dev.slice(1).every((l) => l.startsWith('devices.allow ')));
      assert.ok(dev.includes('devices.allow c 1:3 rwm'));
      assert.ok(dev.includes('devices.allow c *:* m'));
      assert.ok(dev.includes('devices.allow c 136:* rwm'));
      assert.ok(dev.includes('devices.allow b 8:0 r'));
      assert.equal(dev.length, 1 + 12);
      // order of controllers as runc: cpuset first, rdma last
      const firstFile = (n: string): number => r.writes.findIndex((w) => path.basename(w.file) === n);
      assert.ok(firstFile('cpuset.cpus') < firstFile('devices.deny'));
      assert.ok(firstFile('devices.deny') < firstFile('memory.limit_in_bytes'));
      assert.ok(firstFile('memory.limit_in_bytes') < firstFile('cpu.shares'));
      assert.ok(firstFile('net_prio.ifpriomap') < firstFile('rdma.max'));
      assert.deepEqual(r.warnings, []);
    } finally {
      r.fake.cleanup();
    }
  });

  test('apply: zero values are "unset", memory -1 lifts memsw, useHierarchy false is written', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      r.writes.length = 0;
      // what docker update sends
      m.apply({
        memory: { limit: 0, reservation: 0, swap: 0, kernel: 0 },
        cpu: { shares: 0, quota: 0, period: 0 },
        blockIO: { weight: 0 },
      });
      assert.equal(r.writes.length, 0);
      m.apply({ memory: { limit: -1, useHierarchy: false } });
      assert.deepEqual(writesOf(r, 'memory.limit_in_bytes'), ['-1']);
      assert.deepEqual(writesOf(r, 'memory.memsw.limit_in_bytes'), ['-1']);
      assert.deepEqual(writesOf(r, 'memory.use_hierarchy'), ['0']);
      // lowering: limit first, then memsw (the current limit is not below the new swap)
      fs.writeFileSync(path.join(m.paths().memory, 'memory.limit_in_bytes'), String(512 << 20));
      r.writes.length = 0;
      m.apply({ memory: { limit: 100 << 20, swap: 200 << 20 } });
      assert.deepEqual(
        r.writes.map((w) => path.basename(w.file)),
        ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'],
      );
      // raising above the current limit: memsw first (runc: current limit < new swap)
      r.writes.length = 0;
      m.apply({ memory: { limit: 256 << 20, swap: 1024 << 20 } });
      assert.deepEqual(
        r.writes.map((w) => path.basename(w.file)),
        ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes'],
      );
      // re-enable the OOM killer only when it was disabled
      fs.writeFileSync(
        path.join(m.paths().memory, 'memory.oom_control'),
        'oom_kill_disable 1\nunder_oom 0\noom_kill 0\n',
      );
      r.writes.length = 0;
      m.apply({ memory: { disableOOMKiller: false } });
      assert.deepEqual(writesOf(r, 'memory.oom_control'), ['0']);
    } finally {
      r.fake.cleanup();
    }
  });

  test('apply: kernel refusals and config errors name the field, the file and the errno', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      const p = m.paths();
      // a directory in place of the file: open(O_WRONLY) fails with EISDIR, like any kernel refusal
      const f = path.join(p.memory, 'memory.limit_in_bytes');
      fs.rmSync(f);
      fs.mkdirSync(f);
      expectHako(
        () => m.apply({ memory: { limit: 1 << 20 } }),
        'linux.resources.memory.limit',
        (e) => {
          assert.equal(e.errno, 21);
          assert.equal(e.code, 'EISDIR');
          assert.ok(e.message.includes(f), e.message);
        },
      );
      // a missing control file: ENOENT, explained
      fs.rmSync(path.join(p.pids, 'pids.max'));
      expectHako(
        () => m.apply({ pids: { limit: 5 } }),
        'linux.resources.pids.limit',
        (e) => {
          assert.equal(e.errno, 2);
          assert.match(e.message, /does not exist/);
        },
      );
      expectHako(() => m.apply({ memory: { swappiness: 101 } }), 'linux.resources.memory.swappiness');
      expectHako(() => m.apply({ cpu: { shares: 1.5 } }), 'linux.resources.cpu.shares');
      expectHako(
        () => m.apply({ hugepageLimits: [{ pageSize: '../x', limit: 1 }] }),
        'linux.resources.hugepageLimits[0].pageSize',
      );
      expectHako(
        () => m.apply({ devices: [{ allow: true, type: 'c', major: 1, minor: 3 }] }),
        'linux.resources.devices[0]',
      );
      expectHako(
        () =>
          m.apply({
            devices: [
              { allow: false, access: 'rwm' },
              { allow: true, type: 'c', access: 'rwm' },
              { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
            ],
          }),
        'linux.resources.devices[2]',
        (e) => assert.match(e.message, /punch a hole/),
      );
      expectHako(
        () => m.apply({ unified: { 'memory.high': '1' } }),
        'linux.resources.unified["memory.high"]',
        (e) => assert.match(e.message, /cgroup v1/),
      );
      expectHako(
        () => m.apply({ blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1.5 }] } }),
        'linux.resources.blockIO.throttleReadBpsDevice[0]',
      );
    } finally {
      r.fake.cleanup();
    }
  });

  test('apply: a controller that is not mounted is an error for a set value, ignored when unset', () => {
    const r = rig('v1', {}, { v1: [['cpu', 'cpuacct'], ['memory'], ['devices'], ['freezer'], ['pids']] });
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      m.apply({ network: { classID: 0 }, blockIO: { weight: 0 } });
      expectHako(
        () => m.apply({ network: { classID: 7 } }),
        'linux.resources.network.classID',
        (e) => assert.match(e.message, /net_cls/),
      );
      expectHako(
        () => m.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 1 }] }),
        'linux.resources.hugepageLimits',
        (e) => assert.match(e.message, /hugetlb/),
      );
    } finally {
      r.fake.cleanup();
    }
  });

  test('addProcess writes cgroup.procs in every hierarchy; pids() reads them recursively', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      m.addProcess(4242);
      const dirs = new Set(Object.values(m.paths()));
      assert.equal(writesOf(r, 'cgroup.procs').length, dirs.size);
      for (const d of dirs) assert.equal(rd(d, 'cgroup.procs'), '4242');
      const sub = path.join(m.paths().devices, 'sub');
      fs.mkdirSync(sub);
      fs.writeFileSync(path.join(sub, 'cgroup.procs'), '17\n4242\n');
      assert.deepEqual(m.pids(), [17, 4242]);
    } finally {
      r.fake.cleanup();
    }
  });

  test('freeze/thaw/isFrozen via freezer.state; killAll freezes around the signals', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      assert.equal(m.isFrozen(), false);
      m.freeze();
      assert.equal(rd(m.paths().freezer, 'freezer.state'), 'FROZEN');
      assert.equal(m.isFrozen(), true);
      m.thaw();
      assert.equal(m.isFrozen(), false);
      r.writes.length = 0;
      m.killAll('SIGTERM'); // no processes in the fake: only the freezer dance is visible
      assert.deepEqual(writesOf(r, 'freezer.state'), ['FROZEN', 'THAWED']);
      // a paused container stays paused for a non-fatal signal
      m.freeze();
      r.writes.length = 0;
      m.killAll('SIGUSR1');
      assert.deepEqual(writesOf(r, 'freezer.state'), []);
      m.killAll('SIGKILL');
      assert.deepEqual(writesOf(r, 'freezer.state'), ['THAWED']);
    } finally {
      r.fake.cleanup();
    }
  });

  test('stats: runc events --stats shape and values; exact u64 in JSON', () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      const s = m.stats();
      assert.deepEqual(s.cpu.usage, {
        total: 123456789n,
        percpu: [100n, 200n],
        percpu_kernel: [40n, 80n],
        percpu_user: [60n, 120n],
        kernel: 70000000n, // 7 ticks of USER_HZ 100
        user: 50000000n,
      });
      assert.deepEqual(s.cpu.throttling, { periods: 10n, throttledPeriods: 2n, throttledTime: 3000n });
      assert.deepEqual(s.memory.usage, { limit: 9223372036854771712n, usage: 4096n, max: 8192n, failcnt: 0n });
      assert.equal(s.memory.cache, 100n);
      assert.deepEqual(Object.keys(s.memory.raw ?? {}), ['cache', 'rss', 'swap'], 'raw keys sorted like Go maps');
      assert.deepEqual(s.memory.kernelTCP, {
        limit: 9223372036854771712n,
        usage: undefined,
        max: undefined,
        failcnt: 0n,
      });
      assert.deepEqual(s.pids, { current: 3n, limit: undefined });
      assert.deepEqual(s.blkio.ioServiceBytesRecursive, [
        { major: 8n, minor: undefined, op: 'Read', value: 4096n },
        { major: 8n, minor: undefined, op: 'Write', value: 8192n },
      ]);
      assert.deepEqual(s.hugetlb, { '2MB': { usage: 2097152n, max: 4194304n, failcnt: 1n } });
      assert.deepEqual(s.cpuset.cpus, undefined);
      const json = encodeEvent(statsEvent('c1', s));
      const parsed = JSON.parse(json);
      assert.equal(parsed.type, 'stats');
      assert.equal(parsed.id, 'c1');
      assert.deepEqual(Object.keys(parsed.data), [
        'cpu',
        'cpuset',
        'memory',
        'pids',
        'blkio',
        'hugetlb',
        'intel_rdt',
        'network_interfaces',
      ]);
      assert.ok(json.includes('"usage":{"limit":9223372036854771712,"usage":4096,"max":8192,"failcnt":0}'), json);
      assert.ok(json.includes('"pids":{"current":3}'));
      assert.ok(json.includes('"intel_rdt":{},"network_interfaces":null'));
      assert.ok(json.includes('{"major":8,"op":"Read","value":4096}'), 'omitempty on zero minor');
      assert.equal(encodeEvent({ type: 'oom', id: 'c1' }), '{"type":"oom","id":"c1"}');
      // containerd's extras, from the container's own v1 directories: hugetlb without .rsvd (unlike runc).
      const x = m.metricsExtra();
      assert.equal(x.mode, 'v1');
      if (x.mode !== 'v1') return;
      assert.deepEqual(x.hugetlb, [{ pagesize: '2MB', usage: 0n, max: 0n, failcnt: 0n }]);
      assert.deepEqual(x.oomControl, { oomKillDisable: 0n, underOom: 0n, oomKill: 0n });
      assert.deepEqual(x.rdma, { current: [], limit: [] }, 'the rdma hierarchy read, empty');
    } finally {
      r.fake.cleanup();
    }
  });

  test('oomEvents and watchOom (v1 memory.oom_control)', async () => {
    const r = rig('v1');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      assert.deepEqual(m.oomEvents(), { oomKill: 0, oom: 0, underOom: false });
      let events = 0;
      const stop = watchOom(m, () => events++, 10);
      fs.writeFileSync(
        path.join(m.paths().memory, 'memory.oom_control'),
        'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
      );
      await new Promise((res) => setTimeout(res, 60));
      stop();
      assert.equal(events, 2);
      assert.deepEqual(m.oomEvents(), { oomKill: 2, oom: 0, underOom: false });
    } finally {
      r.fake.cleanup();
    }
  });

  test('destroy: leaves, sub-cgroups and created parents go; pre-existing parents stay; idempotent', () => {
    const r = rig('v1', { path: '/a/b/c' });
    try {
      fs.mkdirSync(path.join(r.fake.root, 'memory/a'));
      const m = createCgroupManager(r.opts);
      const created = m.create();
      r.fake.populate();
      assert.ok(!created.includes(path.join(r.fake.root, 'memory/a')));
      fs.mkdirSync(path.join(m.paths().memory, 'nested'));
      // destroy from "another process": a new manager given the created list from the state
      const again = createCgroupManager({ ...r.opts, created });
      again.destroy();
      for (const d of new Set(Object.values(m.paths()))) assert.equal(fs.existsSync(d), false, d);
      assert.equal(fs.existsSync(path.join(r.fake.root, 'cpuset/a')), false, 'created parent removed');
      assert.equal(fs.existsSync(path.join(r.fake.root, 'memory/a')), true, 'pre-existing parent kept');
      assert.equal(fs.existsSync(path.join(r.fake.root, 'memory/a/b')), false);
      assert.equal(again.exists(), false);
      again.destroy();
      createCgroupManager(r.opts).destroy();
    } finally {
      r.fake.cleanup();
    }
  });
});

// ---- hybrid --------------------------------------------------------------------------------------------

describe('hybrid manager (fake tree)', () => {
  const v1NoHugetlb = [
    ['cpu', 'cpuacct'],
    ['cpuset'],
    ['memory'],
    ['devices'],
    ['freezer'],
    ['blkio'],
    ['pids'],
    ['name=systemd'],
  ];

  test('joins the cgroup2 hierarchy too; hugetlb falls back to it when not bound to v1', () => {
    const r = rig('hybrid', {}, { v1: v1NoHugetlb, v2Controllers: ['hugetlb'] });
    try {
      const m = createCgroupManager(r.opts);
      assert.equal(m.mode, 'hybrid');
      const created = m.create();
      const uni = path.join(r.fake.root, 'unified/hako/c1');
      assert.equal(m.paths()[''], uni);
      assert.ok(created.includes(uni));
      r.fake.populate();
      m.addProcess(99);
      assert.equal(rd(uni, 'cgroup.procs'), '99');
      r.writes.length = 0;
      m.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 2097152 }] });
      assert.deepEqual(writesOf(r, 'cgroup.subtree_control'), ['+hugetlb', '+hugetlb']);
      assert.equal(rd(uni, 'hugetlb.2MB.max'), '2097152');
      assert.equal(rd(uni, 'hugetlb.2MB.rsvd.max'), '2097152');
      assert.deepEqual(Object.keys(m.stats().hugetlb), ['2MB']);
      fs.writeFileSync(path.join(uni, 'hugetlb.2MB.current'), '2097152\n');
      fs.writeFileSync(path.join(uni, 'hugetlb.2MB.events'), 'max 4\n');
      const x = m.metricsExtra();
      assert.deepEqual(
        x.mode === 'v1' && x.hugetlb,
        [{ pagesize: '2MB', usage: 2097152n, max: 0n, failcnt: 4n }],
        'hybrid: hugetlb from the cgroup2 side, no peak there',
      );
    } finally {
      r.fake.cleanup();
    }
  });

  test('unified keys: allowed for cgroup2-side controllers, errors for v1-bound ones', () => {
    const r = rig('hybrid', {}, { v1: v1NoHugetlb, v2Controllers: ['hugetlb'] });
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      m.apply({ unified: { 'hugetlb.2MB.max': '4194304' } });
      assert.equal(rd(m.paths()[''], 'hugetlb.2MB.max'), '4194304');
      expectHako(
        () => m.apply({ unified: { 'memory.high': '1M' } }),
        'linux.resources.unified["memory.high"]',
        (e) => assert.match(e.message, /bound to a cgroup v1 hierarchy/),
      );
      expectHako(
        () => m.apply({ unified: { 'io.max': '8:0 rbps=1' } }),
        'linux.resources.unified["io.max"]',
        (e) => assert.match(e.message, /not available/),
      );
      expectHako(() => m.apply({ unified: { '../x': '1' } }), 'linux.resources.unified["../x"]');
    } finally {
      r.fake.cleanup();
    }
  });
});

// ---- v2 ------------------------------------------------------------------------------------------------

describe('v2 manager (fake tree)', () => {
  test('create enables the available controllers in every parent, not in the leaf', () => {
    const r = rig('v2', { path: '/hako/c1' });
    try {
      const m = createCgroupManager(r.opts);
      assert.ok(m instanceof CgroupV2Manager);
      const created = m.create();
      assert.deepEqual(created, [path.join(r.fake.root, 'hako'), path.join(r.fake.root, 'hako/c1')]);
      const sc = r.writes.filter((w) => path.basename(w.file) === 'cgroup.subtree_control');
      assert.deepEqual(
        sc.map((w) => path.dirname(w.file)),
        [r.fake.root],
        'only the root exists with files before populate',
      );
      assert.equal(sc[0].value, '+cpuset +cpu +io +memory +hugetlb +pids +rdma');
      r.fake.populate();
      r.writes.length = 0;
      createCgroupManager(r.opts).create();
      const dirs = r.writes
        .filter((w) => path.basename(w.file) === 'cgroup.subtree_control')
        .map((w) => path.dirname(w.file));
      assert.deepEqual(dirs, [path.join(r.fake.root, 'hako')], 'root already enabled (+ in the fake file), parent now');
    } finally {
      r.fake.cleanup();
    }
  });

  test('apply: every resource converted into its v2 file', () => {
    const attached: { dir: string; insns: Buffer; license: string }[] = [];
    const r = rig('v2', {
      attachDeviceFilter: (dir, insns, license) => {
        attached.push({ dir, insns, license });
        return -1;
      },
    });
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      const d = m.paths()[''];
      r.writes.length = 0;
      m.apply({ ...FULL, cpu: { ...FULL.cpu, realtimePeriod: undefined, realtimeRuntime: undefined, idle: 1 } });
      assert.equal(rd(d, 'pids.max'), '32');
      assert.equal(rd(d, 'memory.max'), String(64 << 20));
      assert.equal(rd(d, 'memory.low'), String(32 << 20));
      assert.equal(rd(d, 'memory.swap.max'), String(64 << 20), 'swap = memory+swap - memory');
      assert.equal(rd(d, 'cpu.weight'), String(cpuSharesToWeight(512)));
      assert.equal(rd(d, 'cpu.max'), '50000 100000');
      assert.equal(rd(d, 'cpu.max.burst'), '1000');
      assert.equal(rd(d, 'cpu.idle'), '1');
      assert.equal(rd(d, 'cpuset.cpus'), '0-1');
      assert.equal(rd(d, 'cpuset.mems'), '0');
      assert.deepEqual(
        writesOf(r, 'io.weight'),
        ['4950', `8:0 ${blkioWeightToIoWeight(600)}`],
        'no BFQ: io.weight, converted',
      );
      assert.equal(blkioWeightToIoWeight(600), 5960);
      assert.deepEqual(writesOf(r, 'io.max'), [
        '8:0 rbps=1048576',
        '8:16 rbps=2097152',
        '8:0 wbps=524288',
        '8:0 riops=100',
        '8:0 wiops=50',
      ]);
      assert.equal(rd(d, 'hugetlb.2MB.max'), '4194304');
      assert.equal(rd(d, 'hugetlb.2MB.rsvd.max'), '4194304');
      assert.deepEqual(writesOf(r, 'rdma.max'), ['mlx5_0 hca_handle=3 hca_object=100']);
      assert.equal(attached.length, 1);
      assert.equal(attached[0].dir, d);
      assert.equal(attached[0].license, 'Apache-2.0');
      assert.equal(attached[0].insns.length % 8, 0);
      for (const w of [
        'kernel',
        'kernelTCP',
        'swappiness',
        'disableOOMKiller',
        'leafWeight',
        'classID',
        'priorities',
      ]) {
        assert.ok(
          r.warnings.some((x) => x.includes(w)),
          `warning for ${w}: ${r.warnings.join('; ')}`,
        );
      }
    } finally {
      r.fake.cleanup();
    }
  });

  test('apply: -1 is "max", swap == limit disables swap, quota/period halves, BFQ weights, unified lines', () => {
    const r = rig('v2', { attachDeviceFilter: () => -1 }, { bfq: true });
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      const d = m.paths()[''];
      m.apply({ memory: { limit: -1 } });
      assert.equal(rd(d, 'memory.max'), 'max');
      assert.equal(rd(d, 'memory.swap.max'), 'max');
      m.apply({ memory: { limit: 1 << 20, swap: 1 << 20 } });
      assert.equal(rd(d, 'memory.swap.max'), '0');
      m.apply({ cpu: { period: 20000 } });
      assert.equal(rd(d, 'cpu.max'), 'max 20000');
      m.apply({ cpu: { quota: 3000 } });
      assert.equal(rd(d, 'cpu.max'), '3000 100000');
      m.apply({ cpu: { quota: -1, period: 50000 } });
      assert.equal(rd(d, 'cpu.max'), 'max 50000');
      r.writes.length = 0;
      m.apply({
        blockIO: {
          weight: 500,
          weightDevice: [{ major: 8, minor: 0, weight: 700 }],
          throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 0 }],
        },
      });
      assert.deepEqual(writesOf(r, 'io.bfq.weight'), ['500', '8:0 700'], 'BFQ keeps the v1 range');
      assert.deepEqual(writesOf(r, 'io.max'), ['8:0 rbps=max']);
      r.writes.length = 0;
      m.apply({
        unified: { 'io.max': '8:0 rbps=1\n8:16 wiops=2\n', 'memory.high': '1048576', 'cgroup.max.descendants': '10' },
      });
      assert.deepEqual(writesOf(r, 'io.max'), ['8:0 rbps=1', '8:16 wiops=2']);
      assert.equal(rd(d, 'memory.high'), '1048576');
      expectHako(
        () => m.apply({ unified: { 'misc.max': 'x 1' } }),
        'linux.resources.unified["misc.max"]',
        (e) => assert.match(e.message, /controller misc is not available/),
      );
      expectHako(() => m.apply({ unified: { 'a/b': '1' } }), 'linux.resources.unified["a/b"]');
      expectHako(() => m.apply({ unified: { nodot: '1' } }), 'linux.resources.unified["nodot"]');
      expectHako(() => m.apply({ cpu: { realtimeRuntime: 1000 } }), 'linux.resources.cpu.realtimeRuntime');
      expectHako(() => m.apply({ memory: { limit: 100, swap: 50 } }), 'linux.resources.memory.swap');
      expectHako(() => m.apply({ memory: { swap: 50 } }), 'linux.resources.memory.swap');
      fs.writeFileSync(path.join(d, 'memory.current'), String(10 << 20));
      expectHako(
        () => m.apply({ memory: { limit: 5 << 20, checkBeforeUpdate: true } }),
        'linux.resources.memory.limit',
      );
    } finally {
      r.fake.cleanup();
    }
  });

  test('devices on v2 without the addon is an error; rootless turns it into a warning', () => {
    const r = rig('v2');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      expectHako(() => m.apply({ devices: DEFAULT_ALLOWED_DEVICES }), 'linux.resources.devices');
      const failing = createCgroupManager({
        ...r.opts,
        rootless: true,
        attachDeviceFilter: () => {
          throw Object.assign(new Error('BPF_PROG_LOAD: Operation not permitted'), { errno: 1, step: 'BPF_PROG_LOAD' });
        },
      });
      failing.apply({ devices: DEFAULT_ALLOWED_DEVICES });
      assert.ok(r.warnings.some((w) => w.includes('linux.resources.devices')));
      const rootful = createCgroupManager({
        ...r.opts,
        attachDeviceFilter: () => {
          throw Object.assign(new Error('BPF_PROG_ATTACH: Operation not permitted'), {
            errno: 1,
            step: 'BPF_PROG_ATTACH',
          });
        },
      });
      expectHako(
        () => rootful.apply({ devices: DEFAULT_ALLOWED_DEVICES }),
        'linux.resources.devices',
        (e) => {
          assert.equal(e.errno, 1);
          assert.equal(e.step, 'BPF_PROG_ATTACH');
        },
      );
    } finally {
      r.fake.cleanup();
    }
  });

  test('freeze waits for cgroup.events "frozen 1"; killAll SIGKILL uses cgroup.kill', () => {
    const r = rig('v2');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      const d = m.paths()[''];
      fs.writeFileSync(path.join(d, 'cgroup.events'), 'populated 1\nfrozen 1\n');
      m.freeze();
      assert.equal(rd(d, 'cgroup.freeze'), '1');
      assert.equal(m.isFrozen(), true);
      m.thaw();
      assert.equal(m.isFrozen(), false);
      r.writes.length = 0;
      m.killAll('SIGKILL');
      assert.deepEqual(
        r.writes.map((w) => `${path.basename(w.file)}=${w.value}`),
        ['cgroup.kill=1'],
      );
      r.writes.length = 0;
      m.killAll(15);
      assert.deepEqual(writesOf(r, 'cgroup.freeze'), ['1', '0']);
    } finally {
      r.fake.cleanup();
    }
  });

  test('stats and oomEvents from the v2 files', () => {
    const r = rig('v2');
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      const s = m.stats();
      assert.deepEqual(s.cpu.usage, { total: 5000000n, kernel: 2000000n, user: 3000000n });
      assert.deepEqual(s.cpu.throttling, { periods: 4n, throttledPeriods: 1n, throttledTime: 7000n });
      assert.deepEqual(s.cpu.psi?.some, { avg10: 0.5, avg60: 0, avg300: 0, total: 1234n });
      assert.equal(s.cpu.psi?.full, undefined, 'omitzero');
      assert.deepEqual(s.memory.usage, { limit: 18446744073709551615n, usage: 8192n, max: 16384n, failcnt: 0n });
      assert.deepEqual(s.memory.swap, { limit: 18446744073709551615n, usage: 8192n, max: undefined, failcnt: 0n });
      assert.equal(s.memory.cache, 1024n);
      assert.deepEqual(s.pids, { current: 2n, limit: undefined });
      assert.deepEqual(s.blkio.ioServiceBytesRecursive, [
        { major: 8n, minor: undefined, op: 'Read', value: 4096n },
        { major: 8n, minor: undefined, op: 'Write', value: undefined },
      ]);
      assert.deepEqual(s.cpuset.cpus, [0, 1, 2, 3]);
      assert.deepEqual(s.hugetlb, { '2MB': { usage: undefined, failcnt: 0n } });
      const json = encodeEvent(statsEvent('x', s));
      assert.ok(json.includes('"limit":18446744073709551615'));
      assert.deepEqual(
        Object.keys(JSON.parse(json).data.cpuset).slice(0, 3),
        ['cpus', 'cpu_exclusive', 'mems'],
        'Go field order',
      );
      assert.deepEqual(m.oomEvents(), { oomKill: 1, oom: 1, underOom: false });
      // containerd's extras from the same directory: swap raw (runc's record adds memory), pids.max as 2^64-1.
      const x = m.metricsExtra();
      assert.equal(x.mode, 'v2');
      if (x.mode !== 'v2') return;
      assert.deepEqual([x.swapUsage, x.swapLimit, x.pidsLimit], [0n, 18446744073709551615n, 18446744073709551615n]);
      assert.deepEqual(x.memoryEvents, { low: 0n, high: 0n, max: 2n, oom: 1n, oomKill: 1n, oomGroupKill: 0n });
      assert.deepEqual(x.io, [{ major: 8n, minor: 0n, rbytes: 4096n, wbytes: 0n, rios: 1n, wios: 0n }]);
      assert.deepEqual(x.hugetlb, [{ pagesize: '2MB', usage: 0n, max: 18446744073709551615n, failcnt: 0n }]);
      assert.deepEqual(x.psi.memory?.full, { avg10: 0, avg60: 0, avg300: 0, total: 0n }, 'an all-zero line kept');
    } finally {
      r.fake.cleanup();
    }
  });
});

// ---- rootless ------------------------------------------------------------------------------------------

describe('rootless', () => {
  test('v2: a writable (delegated) subtree is used normally in rootless mode', () => {
    const r = rig('v2', { rootless: true, path: '/hako/c1' });
    try {
      const m = createCgroupManager(r.opts);
      m.create();
      r.fake.populate();
      m.apply({ pids: { limit: 3 } });
      assert.equal(rd(m.paths()[''], 'pids.max'), '3');
    } finally {
      r.fake.cleanup();
    }
  });

  // Needs root to switch to nobody: skipped (and said so) otherwise, never passed without running.
  test(
    'v1 and v2 as an unprivileged user: rootless skips with warnings, rootful fails naming the path',
    { skip: process.getuid?.() !== 0 ? 'needs root (to run the child as nobody)' : false },
    () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-rootless-'));
      fs.chmodSync(tmp, 0o755);
      const script = path.join(tmp, 'child.js');
      fs.writeFileSync(
        script,
        `const { createCgroupManager } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'cgroups'))});
const fake = JSON.parse(process.argv[2]);
const { detectCgroupLayout } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'cgroups', 'layout'))});
const warnings = [];
const out = {};
for (const rootless of [true, false]) {
  const m = createCgroupManager({ layout: detectCgroupLayout({ mountinfo: fake.mountinfo, root: fake.root }),
    path: '/hako/nobody', rootless, log: { warn: (w) => warnings.push(w) }, hugePageSizes: [] });
  try {
    const created = m.create();
    m.addProcess(process.pid);
    m.apply({ pids: { limit: 3 }, memory: { limit: 1048576 }, devices: [{ allow: false, access: 'rwm' }] });
    m.destroy();
    out[rootless] = { ok: true, created };
  } catch (e) { out[rootless] = { ok: false, name: e.name, field: e.field, code: e.code, message: e.message }; }
}
out.warnings = warnings;
process.stdout.write(JSON.stringify(out));
`,
      );
      fs.chmodSync(script, 0o644);
      try {
        for (const kind of ['v1', 'v2'] as const) {
          const fake = new FakeCgroupfs(kind);
          try {
            fs.chmodSync(fake.base, 0o755);
            const res = spawnSync(
              process.execPath,
              [script, JSON.stringify({ mountinfo: fake.mountinfo, root: fake.root })],
              {
                uid: 65534,
                gid: 65534,
                encoding: 'utf8',
              },
            );
            assert.equal(res.status, 0, res.stderr);
            const out = JSON.parse(res.stdout);
            assert.deepEqual(out.true, { ok: true, created: [] }, `${kind} rootless: ${res.stdout}`);
            assert.ok(
              out.warnings.length >= 1 && out.warnings.every((w: string) => w.startsWith('rootless:')),
              out.warnings.join('\n'),
            );
            assert.equal(out.false.ok, false);
            assert.equal(out.false.name, 'HakoError');
            assert.equal(out.false.field, 'linux.cgroupsPath');
            assert.equal(out.false.code, 'EACCES');
            assert.equal(fs.existsSync(path.join(fake.root, kind === 'v2' ? 'hako' : 'memory/hako')), false);
          } finally {
            fake.cleanup();
          }
        }
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    },
  );
});
