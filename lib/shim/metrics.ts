// Stats for containerd: the library's cgroup stats (runc's shape) as containerd's metric types, in an Any, as
// runc's shim answers Stats: `io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts, `io.containerd.cgroups.v2.Metrics`
// on pure cgroup2 (field numbers: containerd/cgroups stats/v1/metrics.proto and cgroup2/stats/metrics.proto,
// Apache-2.0). CRI decodes this Any by its type URL, so only these two may be sent.
import type { RuncStats } from '../cgroups/stats';
import type { AnyMsg } from './proto';
import { Writer } from './proto';

const raw = (s: RuncStats, k: string): bigint => s.memory.raw?.[k] ?? 0n;

function memEntry(e: { limit: bigint; usage?: bigint; max?: bigint; failcnt: bigint } | undefined): Writer | undefined {
  if (!e) return undefined;
  return new Writer().uint(1, e.limit).uint(2, e.usage).uint(3, e.max).uint(4, e.failcnt);
}

export function metricsV1(s: RuncStats): AnyMsg {
  const w = new Writer();
  for (const [pagesize, h] of Object.entries(s.hugetlb ?? {}))
    w.message(1, new Writer().uint(1, h.usage).uint(2, h.max).uint(3, h.failcnt).string(4, pagesize));
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
  const m = new Writer();
  keys.forEach((k, i) => m.uint(i + 1, raw(s, k)));
  keys.slice(0, 15).forEach((k, i) => m.uint(i + 18, raw(s, `total_${k}`)));
  m.message(33, memEntry(s.memory.usage))
    .message(34, memEntry(s.memory.swap))
    .message(35, memEntry(s.memory.kernel))
    .message(36, memEntry(s.memory.kernelTCP));
  w.message(4, m);
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
  lists.forEach((l, i) => {
    for (const e of l ?? [])
      blk.message(i + 1, new Writer().string(1, e.op).uint(3, e.major).uint(4, e.minor).uint(5, e.value));
  });
  w.message(5, blk);
  return { typeUrl: 'io.containerd.cgroups.v1.Metrics', value: w.finish() };
}

export function metricsV2(s: RuncStats): AnyMsg {
  const w = new Writer();
  w.message(1, new Writer().uint(1, s.pids.current).uint(2, s.pids.limit));
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
      .uint(6, us(t?.throttledTime)),
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
  m.uint(32, s.memory.usage?.usage)
    .uint(33, s.memory.usage?.limit)
    .uint(34, s.memory.swap?.usage)
    .uint(35, s.memory.swap?.limit)
    .uint(36, s.memory.usage?.max)
    .uint(37, s.memory.swap?.max);
  w.message(4, m);
  for (const [pagesize, h] of Object.entries(s.hugetlb ?? {}))
    w.message(7, new Writer().uint(1, h.usage).uint(2, h.max).string(3, pagesize));
  return { typeUrl: 'io.containerd.cgroups.v2.Metrics', value: w.finish() };
}
