// The cgroup counters containerd's Metrics messages carry and runc's `events --stats` record (stats.ts) does not,
// read from the files containerd's cgroups library reads when runc's shim answers Stats (containerd/cgroups
// v1.0.4 in containerd 1.6.20, v3.0.2 in 1.7.13, v3.1.x in 2.x). lib/shim/metrics.ts encodes both.
//
// Kept apart from stats.ts because runc's record must not grow (`hako events --stats` prints it as runc does),
// and because containerd reads some files differently from runc: the v2 swap figures raw rather than as
// memory+swap, pids.max "max" as 2^64-1 rather than left out, hugetlb without the .rsvd counters.

import * as fs from 'fs';
import { type CgroupIo, parseKeyValues, parseU64 } from './files';
import { parsePsiLines, readPressure } from './stats';
import type { HugetlbEntry, IoEntry, MetricsExtraV1, MetricsExtraV2, RdmaEntry, RdmaStats } from './stats-types';

export type {
  HugetlbEntry,
  IoEntry,
  MemoryEvents,
  MetricsExtra,
  MetricsExtraV1,
  MetricsExtraV2,
  RdmaEntry,
  RdmaStats,
} from './stats-types';

const u64 = (text: string | undefined): bigint => parseU64(text) ?? 0n;

/** rdma.current / rdma.max: "mlx4_0 hca_handle=2 hca_object=max" lines; other shapes are skipped (containerd). */
export function parseRdma(text: string | undefined): RdmaEntry[] {
  const out: RdmaEntry[] = [];
  const value = (kv: string, key: string): number | undefined => {
    const [k, v] = kv.split('=');
    if (k !== key || v === undefined) return undefined;
    if (v === 'max') return 0xffffffff;
    return /^\d+$/.test(v) && Number(v) <= 0xffffffff ? Number(v) : undefined;
  };
  for (const line of (text ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const [device, a, b] = f;
    out.push({
      device,
      hcaHandles: value(a, 'hca_handle') ?? value(b, 'hca_handle') ?? 0,
      hcaObjects: value(a, 'hca_object') ?? value(b, 'hca_object') ?? 0,
    });
  }
  return out;
}

/** io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0", one entry per device line. */
export function parseIoStat(text: string | undefined): IoEntry[] {
  const out: IoEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m || kv.length === 0) continue;
    const e: IoEntry = { major: BigInt(m[1]), minor: BigInt(m[2]), rbytes: 0n, wbytes: 0n, rios: 0n, wios: 0n };
    for (const item of kv) {
      const [k, v] = item.split('=');
      if (!/^\d+$/.test(v ?? '')) continue;
      if (k === 'rbytes' || k === 'wbytes' || k === 'rios' || k === 'wios') e[k] = BigInt(v);
    }
    out.push(e);
  }
  return out;
}

/** /proc/partitions: two header lines, then "major minor #blocks name"; the first name of a number wins. */
export function parsePartitionNames(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (text ?? '').split('\n').slice(2)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+$/.test(f[0]) || !/^\d+$/.test(f[1])) continue;
    const key = `${f[0]}:${f[1]}`;
    if (!out.has(key)) out.set(key, `/dev/${f[3]}`);
  }
  return out;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** cgroup2 hugetlb: the sizes whose hugetlb.<size>.current exists (the controller is on for this cgroup). */
function hugetlbV2(io: CgroupIo, dir: string, sizes: string[]): HugetlbEntry[] {
  const out: HugetlbEntry[] = [];
  for (const pagesize of sizes) {
    const current = parseU64(io.read(dir, `hugetlb.${pagesize}.current`));
    if (current === undefined) continue;
    out.push({
      pagesize,
      usage: current,
      max: u64(io.read(dir, `hugetlb.${pagesize}.max`)),
      failcnt: parseKeyValues(io.read(dir, `hugetlb.${pagesize}.events`)).get('max') ?? 0n,
    });
  }
  return out;
}

export function metricsExtraV2(io: CgroupIo, dir: string, hugePageSizes: string[]): MetricsExtraV2 {
  const cpu = parseKeyValues(io.read(dir, 'cpu.stat'));
  const events = io.read(dir, 'memory.events');
  const ev = parseKeyValues(events);
  const rdmaCurrent = io.read(dir, 'rdma.current');
  return {
    mode: 'v2',
    pidsLimit: u64(io.read(dir, 'pids.max')),
    nrBursts: cpu.get('nr_bursts') ?? 0n,
    burstUsec: cpu.get('burst_usec') ?? 0n,
    swapUsage: u64(io.read(dir, 'memory.swap.current')),
    swapLimit: u64(io.read(dir, 'memory.swap.max')),
    swapPeak: u64(io.read(dir, 'memory.swap.peak')),
    memoryEvents:
      events === undefined || ev.size === 0
        ? undefined
        : {
            low: ev.get('low') ?? 0n,
            high: ev.get('high') ?? 0n,
            max: ev.get('max') ?? 0n,
            oom: ev.get('oom') ?? 0n,
            oomKill: ev.get('oom_kill') ?? 0n,
            oomGroupKill: ev.get('oom_group_kill') ?? 0n,
          },
    io: parseIoStat(io.read(dir, 'io.stat')),
    rdma: {
      current: parseRdma(rdmaCurrent),
      limit: rdmaCurrent === undefined ? [] : parseRdma(io.read(dir, 'rdma.max')),
    },
    hugetlb: hugetlbV2(io, dir, hugePageSizes),
    psi: {
      cpu: parsePsiLines(readPressure(io, dir, 'cpu.pressure')),
      memory: parsePsiLines(readPressure(io, dir, 'memory.pressure')),
      io: parsePsiLines(readPressure(io, dir, 'io.pressure')),
    },
  };
}

export interface V1ExtraDirs {
  memory?: string;
  rdma?: string;
  hugetlb?: string;
  /** hugetlb on the cgroup2 side of a hybrid host (hako reports it; containerd's v1 library does not see it). */
  unifiedHugetlb?: string;
}

export function metricsExtraV1(
  io: CgroupIo,
  dirs: V1ExtraDirs,
  hugePageSizes: string[],
  partitions = '/proc/partitions',
): MetricsExtraV1 {
  let oomControl: MetricsExtraV1['oomControl'];
  const oc = dirs.memory === undefined ? undefined : io.read(dirs.memory, 'memory.oom_control');
  if (oc !== undefined) {
    const kv = parseKeyValues(oc);
    oomControl = {
      oomKillDisable: kv.get('oom_kill_disable') ?? 0n,
      underOom: kv.get('under_oom') ?? 0n,
      oomKill: kv.get('oom_kill') ?? 0n,
    };
  }
  let rdma: RdmaStats | undefined;
  const rdmaCurrent = dirs.rdma === undefined ? undefined : io.read(dirs.rdma, 'rdma.current');
  if (dirs.rdma !== undefined && rdmaCurrent !== undefined)
    rdma = { current: parseRdma(rdmaCurrent), limit: parseRdma(io.read(dirs.rdma, 'rdma.max')) };
  const hugetlb: HugetlbEntry[] = [];
  if (dirs.hugetlb !== undefined) {
    const d = dirs.hugetlb;
    for (const pagesize of hugePageSizes) {
      const usage = parseU64(io.read(d, `hugetlb.${pagesize}.usage_in_bytes`));
      if (usage === undefined) continue;
      hugetlb.push({
        pagesize,
        usage,
        max: u64(io.read(d, `hugetlb.${pagesize}.max_usage_in_bytes`)),
        failcnt: u64(io.read(d, `hugetlb.${pagesize}.failcnt`)),
      });
    }
  } else if (dirs.unifiedHugetlb !== undefined) {
    // No peak file on cgroup2: the v1 message's max (largest usage) stays 0.
    for (const e of hugetlbV2(io, dirs.unifiedHugetlb, hugePageSizes)) hugetlb.push({ ...e, max: 0n });
  }
  return { mode: 'v1', oomControl, rdma, hugetlb, blockDevices: parsePartitionNames(readText(partitions)) };
}
