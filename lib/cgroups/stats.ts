// Over 400 lines because runc's stats record is one format: its v1 and v2 readers share the fields and the encoder.
// `events --stats`: the runc JSON record {"type":"stats","id":...,"data":{...}} (runc types/events.go).
//
// Field names, nesting and omission follow runc's Go encoding: fields tagged omitempty/omitzero are left out
// when zero, map keys are sorted, "intel_rdt" is always {} and "network_interfaces" null. Counters are u64 in
// the kernel and in runc; several are routinely above 2^53 (v1 "unlimited" is 2^63-4096, v2 "max" is
// 2^64-1), so they are bigint here and `encodeEvent` prints them as exact JSON integers.

import * as fs from 'fs';
import { type CgroupIo, isErrno, parseKeyValues, parseU64, U64_MAX } from './files';
import type {
  PSIData,
  PSIStats,
  CpusetStats,
  MemoryEntry,
  PidsStats,
  BlkioEntry,
  BlkioStats,
  HugetlbStats,
  RuncStats,
  StatsEvent,
  OomEvent,
} from './stats-types';

export type {
  PSIData,
  PSIStats,
  CpuUsage,
  Throttling,
  CpuStats,
  CpusetStats,
  MemoryEntry,
  MemoryStats,
  PidsStats,
  BlkioEntry,
  BlkioStats,
  HugetlbStats,
  RuncStats,
  StatsEvent,
  OomEvent,
} from './stats-types';

export function statsEvent(id: string, data: RuncStats): StatsEvent {
  return { type: 'stats', id, data };
}

/** One JSON line as runc prints it (without the newline); bigint counters are printed exactly. */
export function encodeEvent(ev: StatsEvent | OomEvent | { type: string; id: string; data?: unknown }): string {
  return encodeJson(ev);
}

function encodeJson(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(v) : 'null';
    case 'string':
    case 'boolean':
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) return `[${v.map((x) => encodeJson(x)).join(',')}]`;
      const parts: string[] = [];
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined) continue;
        parts.push(`${JSON.stringify(k)}:${encodeJson(x)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      return 'null';
  }
}

// ---- helpers reproducing Go's omitempty / omitzero --------------------------------------------------------

const nz = (v: bigint | undefined): bigint | undefined => (v ? v : undefined);
const nonEmpty = <T>(a: T[] | undefined): T[] | undefined => (a && a.length > 0 ? a : undefined);
function allZero(o: object): boolean {
  return Object.values(o).every((x) => x === undefined || x === 0n || x === 0 || (Array.isArray(x) && x.length === 0));
}
function omitZero<T extends object>(o: T): T | undefined {
  return allZero(o) ? undefined : o;
}
function memoryEntry(e: { limit?: bigint; usage?: bigint; max?: bigint; failcnt?: bigint }): MemoryEntry | undefined {
  return omitZero({ limit: e.limit ?? 0n, usage: nz(e.usage), max: nz(e.max), failcnt: e.failcnt ?? 0n });
}
function sortedRecord<V>(m: Map<string, V>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const k of [...m.keys()].sort()) out[k] = m.get(k) as V;
  return out;
}

export function emptyStats(): RuncStats {
  return {
    cpu: {},
    cpuset: {
      cpu_exclusive: 0n,
      mem_hardwall: 0n,
      mem_exclusive: 0n,
      memory_migrate: 0n,
      memory_spread_page: 0n,
      memory_spread_slab: 0n,
      memory_pressure: 0n,
      sched_load_balance: 0n,
      sched_relax_domain_level: 0n,
    },
    memory: {},
    pids: {},
    blkio: {},
    hugetlb: {},
    intel_rdt: {},
    network_interfaces: null,
  };
}

// ---- huge page sizes -----------------------------------------------------------------------------------

/** "hugepages-2048kB" → "2MB", as runc's HugePageSizes formats them for the hugetlb.<size>.* files. */
export function hugePageSizeName(dirName: string): string | undefined {
  const m = /^hugepages-(\d+)kB$/.exec(dirName);
  if (!m) return undefined;
  let size = Number(m[1]) * 1024;
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let u = 0;
  while (size >= 1024 && u < units.length - 1) {
    size /= 1024;
    u++;
  }
  return `${size}${units[u]}`;
}

export function readHugePageSizes(dir = '/sys/kernel/mm/hugepages'): string[] {
  try {
    return fs
      .readdirSync(dir)
      .map(hugePageSizeName)
      .filter((s): s is string => !!s);
  } catch {
    return [];
  }
}

// ---- PSI ----------------------------------------------------------------------------------------------

/**
 * A *.pressure file's text. Kernels before 6.1 that boot with psi=0 still show the files but fail their read with
 * EOPNOTSUPP: no PSI then, as runc and containerd take it.
 */
export function readPressure(io: CgroupIo, dir: string, name: string): string | undefined {
  try {
    return io.read(dir, name);
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return undefined;
    throw err;
  }
}

/** A *.pressure file as it is: a line present with all zeros stays (containerd's metrics keep it). */
export function parsePsiLines(text: string | undefined): PSIStats | undefined {
  if (text === undefined) return undefined;
  const out: PSIStats = {};
  for (const line of text.split('\n')) {
    const [kind, ...kv] = line.trim().split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const d: PSIData = { avg10: 0, avg60: 0, avg300: 0, total: 0n };
    for (const f of kv) {
      const [k, v] = f.split('=');
      if (k === 'total' && /^\d+$/.test(v ?? '')) d.total = BigInt(v);
      else if (k === 'avg10' || k === 'avg60' || k === 'avg300') d[k] = Number(v);
    }
    out[kind] = d;
  }
  return out;
}

/** runc's shape: an all-zero line is left out (omitzero). */
export function parsePsi(text: string | undefined): PSIStats | undefined {
  const out = parsePsiLines(text);
  if (!out) return undefined;
  return { some: out.some && omitZero(out.some), full: out.full && omitZero(out.full) };
}

// ---- v1 -----------------------------------------------------------------------------------------------

export interface V1StatDirs {
  cpu?: string;
  cpuacct?: string;
  cpuset?: string;
  memory?: string;
  pids?: string;
  blkio?: string;
  hugetlb?: string;
  /** hugetlb on the cgroup2 side of a hybrid host. */
  unifiedHugetlb?: string;
}

/** Clock ticks per second of cpuacct.stat (USER_HZ, 100 on every Linux ABI). */
const USER_HZ = 100n;

function parseCpuList(text: string | undefined): number[] | undefined {
  const t = text?.trim();
  if (!t) return undefined;
  const out: number[] = [];
  for (const part of t.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (b === undefined) out.push(a);
    else for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

function parseU64List(text: string | undefined): bigint[] {
  return (text ?? '')
    .trim()
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map((s) => BigInt(s));
}

function cpusetStats(io: CgroupIo, dir: string): CpusetStats {
  const u = (name: string): bigint => parseU64(io.read(dir, `cpuset.${name}`)) ?? 0n;
  const relax = io.read(dir, 'cpuset.sched_relax_domain_level')?.trim();
  return {
    cpus: parseCpuList(io.read(dir, 'cpuset.cpus')),
    cpu_exclusive: u('cpu_exclusive'),
    mems: parseCpuList(io.read(dir, 'cpuset.mems')),
    mem_hardwall: u('mem_hardwall'),
    mem_exclusive: u('mem_exclusive'),
    memory_migrate: u('memory_migrate'),
    memory_spread_page: u('memory_spread_page'),
    memory_spread_slab: u('memory_spread_slab'),
    memory_pressure: u('memory_pressure'),
    sched_load_balance: u('sched_load_balance'),
    sched_relax_domain_level: relax && /^-?\d+$/.test(relax) ? BigInt(relax) : 0n,
  };
}

/** blkio files: "8:0 Read 1282048" lines (or "8:0 6792"); "Total N" summary lines are skipped. */
function parseBlkio(text: string | undefined): BlkioEntry[] | undefined {
  if (text === undefined) return undefined;
  const out: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/[\s:]+/);
    if (f.length < 3) continue;
    const [maj, min] = f;
    if (!/^\d+$/.test(maj) || !/^\d+$/.test(min)) continue;
    const op = f.length === 4 ? f[2] : '';
    const value = BigInt(f[f.length - 1]);
    out.push({ major: nz(BigInt(maj)), minor: nz(BigInt(min)), op: op || undefined, value: nz(value) });
  }
  return out;
}

function blkioV1(io: CgroupIo, dir: string): BlkioStats {
  // runc tries these groups in order and uses the first whose first file exists: BFQ with debug stats, BFQ,
  // CFQ, throttle (recursive), throttle (this cgroup only).
  type Key = Exclude<keyof BlkioStats, 'psi'>;
  const groups: [string, Key][][] = [
    [
      ['blkio.bfq.sectors_recursive', 'sectorsRecursive'],
      ['blkio.bfq.io_service_time_recursive', 'ioServiceTimeRecursive'],
      ['blkio.bfq.io_wait_time_recursive', 'ioWaitTimeRecursive'],
      ['blkio.bfq.io_merged_recursive', 'ioMergedRecursive'],
      ['blkio.bfq.io_queued_recursive', 'ioQueueRecursive'],
      ['blkio.bfq.time_recursive', 'ioTimeRecursive'],
      ['blkio.bfq.io_serviced_recursive', 'ioServicedRecursive'],
      ['blkio.bfq.io_service_bytes_recursive', 'ioServiceBytesRecursive'],
    ],
    [
      ['blkio.bfq.io_serviced_recursive', 'ioServicedRecursive'],
      ['blkio.bfq.io_service_bytes_recursive', 'ioServiceBytesRecursive'],
    ],
    [
      ['blkio.sectors_recursive', 'sectorsRecursive'],
      ['blkio.io_service_time_recursive', 'ioServiceTimeRecursive'],
      ['blkio.io_wait_time_recursive', 'ioWaitTimeRecursive'],
      ['blkio.io_merged_recursive', 'ioMergedRecursive'],
      ['blkio.io_queued_recursive', 'ioQueueRecursive'],
      ['blkio.time_recursive', 'ioTimeRecursive'],
      ['blkio.io_serviced_recursive', 'ioServicedRecursive'],
      ['blkio.io_service_bytes_recursive', 'ioServiceBytesRecursive'],
    ],
    [
      ['blkio.throttle.io_serviced_recursive', 'ioServicedRecursive'],
      ['blkio.throttle.io_service_bytes_recursive', 'ioServiceBytesRecursive'],
    ],
    [
      ['blkio.throttle.io_serviced', 'ioServicedRecursive'],
      ['blkio.throttle.io_service_bytes', 'ioServiceBytesRecursive'],
    ],
  ];
  for (const group of groups) {
    const first = parseBlkio(io.read(dir, group[0][0]));
    if (!first) continue;
    const out: BlkioStats = {};
    for (const [file, key] of group) out[key] = nonEmpty(parseBlkio(io.read(dir, file)));
    return out;
  }
  return {};
}

function hugetlbV1(io: CgroupIo, dir: string, sizes: string[]): Record<string, HugetlbStats> {
  const m = new Map<string, HugetlbStats>();
  for (const size of sizes) {
    // The reservation counters (.rsvd, kernel 5.7+) are what limits faults; runc prefers them.
    const rsvd = io.exists(dir, `hugetlb.${size}.rsvd.usage_in_bytes`) ? '.rsvd' : '';
    const p = `hugetlb.${size}${rsvd}`;
    const usage = parseU64(io.read(dir, `${p}.usage_in_bytes`));
    if (usage === undefined) continue;
    m.set(size, {
      usage: nz(usage),
      max: nz(parseU64(io.read(dir, `${p}.max_usage_in_bytes`))),
      failcnt: parseU64(io.read(dir, `${p}.failcnt`)) ?? 0n,
    });
  }
  return sortedRecord(m);
}

function hugetlbV2(io: CgroupIo, dir: string, sizes: string[]): Record<string, HugetlbStats> {
  const m = new Map<string, HugetlbStats>();
  for (const size of sizes) {
    const rsvd = io.exists(dir, `hugetlb.${size}.rsvd.current`) ? '.rsvd' : '';
    const usage = parseU64(io.read(dir, `hugetlb.${size}${rsvd}.current`));
    if (usage === undefined) continue;
    const events = parseKeyValues(io.read(dir, `hugetlb.${size}.events`));
    m.set(size, { usage: nz(usage), failcnt: events.get('max') ?? 0n });
  }
  return sortedRecord(m);
}

function memoryV1Entry(io: CgroupIo, dir: string, prefix: string): MemoryEntry | undefined {
  const usage = parseU64(io.read(dir, `${prefix}.usage_in_bytes`));
  if (usage === undefined) return undefined;
  return memoryEntry({
    usage,
    max: parseU64(io.read(dir, `${prefix}.max_usage_in_bytes`)),
    failcnt: parseU64(io.read(dir, `${prefix}.failcnt`)),
    limit: parseU64(io.read(dir, `${prefix}.limit_in_bytes`)),
  });
}

export function statsV1(io: CgroupIo, dirs: V1StatDirs, hugePageSizes: string[]): RuncStats {
  const s = emptyStats();
  if (dirs.cpuacct && io.exists(dirs.cpuacct, 'cpuacct.usage')) {
    const d = dirs.cpuacct;
    const st = parseKeyValues(io.read(d, 'cpuacct.stat'));
    const ns = (ticks: bigint | undefined): bigint => ((ticks ?? 0n) * 1000000000n) / USER_HZ;
    // cpuacct.usage_all: header "cpu user system", then "N user system" per cpu (nanoseconds).
    const kernel: bigint[] = [];
    const user: bigint[] = [];
    const all = io.read(d, 'cpuacct.usage_all');
    for (const line of (all ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 3 && f.every((x) => /^\d+$/.test(x))) {
        user.push(BigInt(f[1]));
        kernel.push(BigInt(f[2]));
      }
    }
    s.cpu.usage = omitZero({
      total: nz(parseU64(io.read(d, 'cpuacct.usage'))),
      percpu: nonEmpty(parseU64List(io.read(d, 'cpuacct.usage_percpu'))),
      percpu_kernel: nonEmpty(kernel),
      percpu_user: nonEmpty(user),
      kernel: ns(st.get('system')),
      user: ns(st.get('user')),
    });
  }
  if (dirs.cpu) {
    const st = parseKeyValues(io.read(dirs.cpu, 'cpu.stat'));
    s.cpu.throttling = omitZero({
      periods: nz(st.get('nr_periods')),
      throttledPeriods: nz(st.get('nr_throttled')),
      throttledTime: nz(st.get('throttled_time')),
    });
  }
  if (dirs.cpuset) s.cpuset = cpusetStats(io, dirs.cpuset);
  if (dirs.memory && io.exists(dirs.memory, 'memory.usage_in_bytes')) {
    const d = dirs.memory;
    const raw = parseKeyValues(io.read(d, 'memory.stat'));
    s.memory = {
      cache: nz(raw.get('cache')),
      usage: memoryV1Entry(io, d, 'memory'),
      swap: memoryV1Entry(io, d, 'memory.memsw'),
      kernel: memoryV1Entry(io, d, 'memory.kmem'),
      kernelTCP: memoryV1Entry(io, d, 'memory.kmem.tcp'),
      raw: raw.size ? sortedRecord(raw) : undefined,
    };
  }
  if (dirs.pids) s.pids = pidsStats(io, dirs.pids);
  if (dirs.blkio) s.blkio = blkioV1(io, dirs.blkio);
  if (dirs.hugetlb) s.hugetlb = hugetlbV1(io, dirs.hugetlb, hugePageSizes);
  else if (dirs.unifiedHugetlb) s.hugetlb = hugetlbV2(io, dirs.unifiedHugetlb, hugePageSizes);
  return s;
}

function pidsStats(io: CgroupIo, dir: string): PidsStats {
  const current = parseU64(io.read(dir, 'pids.current'));
  const max = parseU64(io.read(dir, 'pids.max'));
  return { current: nz(current), limit: max === U64_MAX ? undefined : nz(max) };
}

// ---- v2 -----------------------------------------------------------------------------------------------

function memoryV2Entry(io: CgroupIo, dir: string, prefix: string): { usage?: bigint; limit?: bigint; max?: bigint } {
  return {
    usage: parseU64(io.read(dir, `${prefix}.current`)),
    limit: parseU64(io.read(dir, `${prefix}.max`)),
    max: parseU64(io.read(dir, `${prefix}.peak`)),
  };
}

function ioStatV2(text: string | undefined): BlkioStats {
  // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0": runc maps bytes/ios onto the v1 tables.
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    for (const item of kv) {
      const [k, v] = item.split('=');
      if (!/^\d+$/.test(v ?? '')) continue;
      const entry = (op: string): BlkioEntry => ({
        major: nz(BigInt(m[1])),
        minor: nz(BigInt(m[2])),
        op,
        value: nz(BigInt(v)),
      });
      if (k === 'rbytes') bytes.push(entry('Read'));
      else if (k === 'wbytes') bytes.push(entry('Write'));
      else if (k === 'rios') ios.push(entry('Read'));
      else if (k === 'wios') ios.push(entry('Write'));
    }
  }
  return { ioServiceBytesRecursive: nonEmpty(bytes), ioServicedRecursive: nonEmpty(ios) };
}

export function statsV2(io: CgroupIo, dir: string, hugePageSizes: string[]): RuncStats {
  const s = emptyStats();
  const cpu = parseKeyValues(io.read(dir, 'cpu.stat'));
  const us = (k: string): bigint | undefined => {
    const v = cpu.get(k);
    return v === undefined ? undefined : v * 1000n;
  };
  s.cpu.usage = omitZero({ total: nz(us('usage_usec')), kernel: us('system_usec') ?? 0n, user: us('user_usec') ?? 0n });
  s.cpu.throttling = omitZero({
    periods: nz(cpu.get('nr_periods')),
    throttledPeriods: nz(cpu.get('nr_throttled')),
    throttledTime: nz(us('throttled_usec')),
  });
  s.cpu.psi = parsePsi(readPressure(io, dir, 'cpu.pressure'));
  if (io.exists(dir, 'cpuset.cpus.effective')) {
    // rebuilt rather than assigned so the keys keep runc's order (cpus first, mems third)
    const { cpu_exclusive, ...rest } = s.cpuset;
    s.cpuset = {
      cpus: parseCpuList(io.read(dir, 'cpuset.cpus.effective')),
      cpu_exclusive,
      mems: parseCpuList(io.read(dir, 'cpuset.mems.effective')),
      ...rest,
    };
  }
  if (io.exists(dir, 'memory.current')) {
    const raw = parseKeyValues(io.read(dir, 'memory.stat'));
    const mem = memoryV2Entry(io, dir, 'memory');
    const swap = memoryV2Entry(io, dir, 'memory.swap');
    // runc reports v1-compatible mem+swap in "swap": usage is added, limit too unless unlimited; max is 0.
    let swapLimit = swap.limit;
    if (swapLimit !== undefined && swapLimit !== U64_MAX && mem.limit !== undefined) {
      swapLimit = mem.limit === U64_MAX ? U64_MAX : swapLimit + mem.limit;
    }
    s.memory = {
      cache: nz(raw.get('file')),
      usage: memoryEntry({ usage: mem.usage, limit: mem.limit, max: mem.max, failcnt: 0n }),
      swap:
        swap.usage === undefined
          ? undefined
          : memoryEntry({ usage: swap.usage + (mem.usage ?? 0n), limit: swapLimit, failcnt: 0n }),
      raw: raw.size ? sortedRecord(raw) : undefined,
      psi: parsePsi(readPressure(io, dir, 'memory.pressure')),
    };
  }
  s.pids = pidsStats(io, dir);
  if (s.pids.current === undefined && !io.exists(dir, 'pids.current')) {
    // pids controller not enabled: count cgroup.procs like runc does
    const n = (io.read(dir, 'cgroup.procs') ?? '').split('\n').filter((l) => l.trim()).length;
    s.pids = { current: nz(BigInt(n)) };
  }
  s.blkio = ioStatV2(io.read(dir, 'io.stat'));
  s.blkio.psi = parsePsi(readPressure(io, dir, 'io.pressure'));
  s.hugetlb = hugetlbV2(io, dir, hugePageSizes);
  return s;
}
