// Stats for containerd: a container's cgroup counters as containerd's metric types, in an Any, as runc's shim
// answers Stats: `io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts, `io.containerd.cgroups.v2.Metrics`
// on pure cgroup2. CRI decodes this Any by its type URL, so only these two may be sent.
//
// Field numbers and units: containerd/cgroups stats/v1/metrics.proto and v2/stats/metrics.proto (Apache-2.0) as
// containerd 1.6.20 (cgroups v1.0.4) and 1.7.13 (cgroups v3.0.2, the same messages) vendor them; the values are
// what runc's shim fills there, from the same files (lib/cgroups/metrics-extra.ts says which). Fields that only
// the v2 proto of containerd 2.x has (cgroups v3.0.3+: PSI, burst counters, peaks, oom_group_kill, hugetlb
// failcnt) are marked "2.x" below: they are sent too, as containerd 2.x's shim sends them, and are harmless to
// 1.6 and 1.7, whose decoders skip unknown fields. Neither message gets `network` (v1 7, v2 9) nor v1's
// `cgroup_stats` (8): containerd's cgroups library leaves them empty for runc's shim too.
import type { MetricsExtraV1, MetricsExtraV2, RdmaStats } from '../cgroups/metrics-extra';
import type { RuncStats } from '../cgroups/stats';
import type { PSIData, PSIStats } from '../cgroups/stats-types';
import type { CgroupManager } from '../cgroups/types';
import type { AnyMsg } from './proto';
import { Writer } from './proto';

const raw = (s: RuncStats, k: string): bigint => s.memory.raw?.[k] ?? 0n;

/** containerd's metrics of a container's cgroup, in the message its host's cgroup mode calls for. */
export function containerdMetrics(m: Pick<CgroupManager, 'stats' | 'metricsExtra'>): AnyMsg {
  const extra = m.metricsExtra();
  return extra.mode === 'v2' ? metricsV2(m.stats(), extra) : metricsV1(m.stats(), extra);
}

/** RdmaStat {current = 1, limit = 2} of RdmaEntry {device = 1, hca_handles = 2, hca_objects = 3}: same in v1, v2. */
function rdmaMessage(r: RdmaStats): Writer {
  const w = new Writer();
  const entry = (e: RdmaStats['current'][number]): Writer =>
    new Writer().string(1, e.device).uint(2, e.hcaHandles).uint(3, e.hcaObjects);
  for (const e of r.current) w.message(1, entry(e));
  for (const e of r.limit) w.message(2, entry(e));
  return w;
}

/** v1 MemoryEntry; containerd always sends the four (usage, swap, kernel, kernel_tcp), zero when absent. */
function memEntry(e: { limit: bigint; usage?: bigint; max?: bigint; failcnt: bigint } | undefined): Writer {
  return new Writer().uint(1, e?.limit).uint(2, e?.usage).uint(3, e?.max).uint(4, e?.failcnt);
}

export function metricsV1(s: RuncStats, x: MetricsExtraV1): AnyMsg {
  const w = new Writer();
  for (const h of x.hugetlb)
    w.message(1, new Writer().uint(1, h.usage).uint(2, h.max).uint(3, h.failcnt).string(4, h.pagesize));
  w.message(2, new Writer().uint(1, s.pids.current).uint(2, s.pids.limit));
  const u = s.cpu.usage;
  const usage = new Writer().uint(1, u?.total).uint(2, u?.kernel).uint(3, u?.user);
  for (const c of u?.percpu ?? []) usage.uint(4, c);
  const t = s.cpu.throttling;
  w.message(
    3,
    new Writer()
      .message(1, usage)
      .message(2, new Writer().uint(1, t?.periods).uint(2, t?.throttledPeriods).uint(3, t?.throttledTime)),
  );
  const keys = [
    'cache',
    'rss',
    'rss_huge',
    'mapped_file',
    'dirty',
    'writeback',
    'pgpgin',
    'pgpgout',
    'pgfault',
    'pgmajfault',
    'inactive_anon',
    'active_anon',
    'inactive_file',
    'active_file',
    'unevictable',
    'hierarchical_memory_limit',
    'hierarchical_memsw_limit',
  ];
  if (s.memory.raw || s.memory.usage) {
    const m = new Writer();
    keys.forEach((k, i) => m.uint(i + 1, raw(s, k)));
    keys.slice(0, 15).forEach((k, i) => m.uint(i + 18, raw(s, `total_${k}`)));
    m.message(33, memEntry(s.memory.usage))
      .message(34, memEntry(s.memory.swap))
      .message(35, memEntry(s.memory.kernel))
      .message(36, memEntry(s.memory.kernelTCP));
    w.message(4, m);
  }
  const blk = new Writer();
  const lists = [
    s.blkio.ioServiceBytesRecursive,
    s.blkio.ioServicedRecursive,
    s.blkio.ioQueueRecursive,
    s.blkio.ioServiceTimeRecursive,
    s.blkio.ioWaitTimeRecursive,
    s.blkio.ioMergedRecursive,
    s.blkio.ioTimeRecursive,
    s.blkio.sectorsRecursive,
  ];
  // The tables runc reads (BFQ, then CFQ, then the recursive throttle files). containerd 1.6's library reads CFQ,
  // then the throttle files of the cgroup alone: the same counts for a container without sub-cgroups.
  lists.forEach((l, i) => {
    for (const e of l ?? []) {
      // BlkIOEntry {op = 1, device = 2, major = 3, minor = 4, value = 5}; device as /proc/partitions names it.
      const device = x.blockDevices.get(`${e.major ?? 0n}:${e.minor ?? 0n}`);
      blk.message(
        i + 1,
        new Writer().string(1, e.op).string(2, device).uint(3, e.major).uint(4, e.minor).uint(5, e.value),
      );
    }
  });
  w.message(5, blk);
  if (x.rdma) w.message(6, rdmaMessage(x.rdma));
  const oc = x.oomControl;
  if (oc) w.message(9, new Writer().uint(1, oc.oomKillDisable).uint(2, oc.underOom).uint(3, oc.oomKill));
  return { typeUrl: 'io.containerd.cgroups.v1.Metrics', value: w.finish() };
}

/** 2.x: PSIStats {some = 1, full = 2} of PSIData {avg10 = 1, avg60 = 2, avg300 = 3 (doubles), total = 4 (µs)}. */
function psiMessage(p: PSIStats | undefined): Writer | undefined {
  if (!p) return undefined;
  const data = (d: PSIData | undefined): Writer | undefined =>
    d && new Writer().double(1, d.avg10).double(2, d.avg60).double(3, d.avg300).uint(4, d.total);
  return new Writer().message(1, data(p.some)).message(2, data(p.full));
}

export function metricsV2(s: RuncStats, x: MetricsExtraV2): AnyMsg {
  const w = new Writer();
  w.message(1, new Writer().uint(1, s.pids.current).uint(2, x.pidsLimit));
  const u = s.cpu.usage;
  const t = s.cpu.throttling;
  const us = (ns: bigint | undefined) => (ns === undefined ? undefined : ns / 1000n);
  w.message(
    2,
    new Writer()
      .uint(1, us(u?.total))
      .uint(2, us(u?.user))
      .uint(3, us(u?.kernel))
      .uint(4, t?.periods)
      .uint(5, t?.throttledPeriods)
      .uint(6, us(t?.throttledTime))
      .message(7, psiMessage(x.psi.cpu)) // 2.x
      .uint(8, x.nrBursts) // 2.x
      .uint(9, x.burstUsec), // 2.x
  );
  const keys = [
    'anon',
    'file',
    'kernel_stack',
    'slab',
    'sock',
    'shmem',
    'file_mapped',
    'file_dirty',
    'file_writeback',
    'anon_thp',
    'inactive_anon',
    'active_anon',
    'inactive_file',
    'active_file',
    'unevictable',
    'slab_reclaimable',
    'slab_unreclaimable',
    'pgfault',
    'pgmajfault',
    'workingset_refault',
    'workingset_activate',
    'workingset_nodereclaim',
    'pgrefill',
    'pgscan',
    'pgsteal',
    'pgactivate',
    'pgdeactivate',
    'pglazyfree',
    'pglazyfreed',
    'thp_fault_alloc',
    'thp_collapse_alloc',
  ];
  const m = new Writer();
  keys.forEach((k, i) => m.uint(i + 1, raw(s, k)));
  // usage_limit and swap_limit: "max" is 2^64-1; swap as memory.swap.* says (runc's record adds memory to it).
  m.uint(32, s.memory.usage?.usage)
    .uint(33, s.memory.usage?.limit)
    .uint(34, x.swapUsage)
    .uint(35, x.swapLimit)
    .uint(36, s.memory.usage?.max) // 2.x: memory.peak
    .uint(37, x.swapPeak) // 2.x: memory.swap.peak
    .message(38, psiMessage(x.psi.memory)); // 2.x
  w.message(4, m);
  w.message(5, rdmaMessage(x.rdma));
  // IOStat {usage = 1, psi = 2 (2.x)}, IOEntry {major = 1, minor = 2, rbytes = 3, wbytes = 4, rios = 5, wios = 6}
  const io = new Writer();
  for (const e of x.io)
    io.message(
      1,
      new Writer()
        .uint(1, e.major)
        .uint(2, e.minor)
        .uint(3, e.rbytes)
        .uint(4, e.wbytes)
        .uint(5, e.rios)
        .uint(6, e.wios),
    );
  w.message(6, io.message(2, psiMessage(x.psi.io)));
  for (const h of x.hugetlb)
    w.message(7, new Writer().uint(1, h.usage).uint(2, h.max).string(3, h.pagesize).uint(4, h.failcnt)); // 4: 2.x
  const ev = x.memoryEvents;
  if (ev)
    w.message(
      8,
      new Writer()
        .uint(1, ev.low)
        .uint(2, ev.high)
        .uint(3, ev.max)
        .uint(4, ev.oom)
        .uint(5, ev.oomKill)
        .uint(6, ev.oomGroupKill), // 2.x
    );
  return { typeUrl: 'io.containerd.cgroups.v2.Metrics', value: w.finish() };
}
