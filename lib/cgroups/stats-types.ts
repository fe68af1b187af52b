// The shapes of runc's `events --stats` record (runc types/events.go), and of what containerd's Metrics carry
// beyond it (read by metrics-extra.ts): data only, so the manager interface (types.ts) can name them without
// importing the readers.

export interface PSIData {
  avg10: number;
  avg60: number;
  avg300: number;
  total: bigint;
}
export interface PSIStats {
  some?: PSIData;
  full?: PSIData;
}
export interface CpuUsage {
  total?: bigint;
  percpu?: bigint[];
  percpu_kernel?: bigint[];
  percpu_user?: bigint[];
  kernel: bigint;
  user: bigint;
}
export interface Throttling {
  periods?: bigint;
  throttledPeriods?: bigint;
  throttledTime?: bigint;
}
export interface CpuStats {
  usage?: CpuUsage;
  throttling?: Throttling;
  psi?: PSIStats;
}
export interface CpusetStats {
  cpus?: number[];
  cpu_exclusive: bigint;
  mems?: number[];
  mem_hardwall: bigint;
  mem_exclusive: bigint;
  memory_migrate: bigint;
  memory_spread_page: bigint;
  memory_spread_slab: bigint;
  memory_pressure: bigint;
  sched_load_balance: bigint;
  sched_relax_domain_level: bigint;
}
export interface MemoryEntry {
  limit: bigint;
  usage?: bigint;
  max?: bigint;
  failcnt: bigint;
}
export interface MemoryStats {
  cache?: bigint;
  usage?: MemoryEntry;
  swap?: MemoryEntry;
  kernel?: MemoryEntry;
  kernelTCP?: MemoryEntry;
  raw?: Record<string, bigint>;
  psi?: PSIStats;
}
export interface PidsStats {
  current?: bigint;
  limit?: bigint;
}
export interface BlkioEntry {
  major?: bigint;
  minor?: bigint;
  op?: string;
  value?: bigint;
}
export interface BlkioStats {
  ioServiceBytesRecursive?: BlkioEntry[];
  ioServicedRecursive?: BlkioEntry[];
  ioQueueRecursive?: BlkioEntry[];
  ioServiceTimeRecursive?: BlkioEntry[];
  ioWaitTimeRecursive?: BlkioEntry[];
  ioMergedRecursive?: BlkioEntry[];
  ioTimeRecursive?: BlkioEntry[];
  sectorsRecursive?: BlkioEntry[];
  psi?: PSIStats;
}
export interface HugetlbStats {
  usage?: bigint;
  max?: bigint;
  failcnt: bigint;
}
export interface RuncStats {
  cpu: CpuStats;
  cpuset: CpusetStats;
  memory: MemoryStats;
  pids: PidsStats;
  blkio: BlkioStats;
  hugetlb: Record<string, HugetlbStats>;
  intel_rdt: Record<string, never>;
  network_interfaces: null;
}

export interface StatsEvent {
  type: 'stats';
  id: string;
  data: RuncStats;
}
export interface OomEvent {
  type: 'oom';
  id: string;
}

// ---- containerd's extras (metrics-extra.ts) ----------------------------------------------------------

/** One line of rdma.current or rdma.max; "max" is 2^32-1 (the fields are uint32 in the proto). */
export interface RdmaEntry {
  device: string;
  hcaHandles: number;
  hcaObjects: number;
}
export interface RdmaStats {
  current: RdmaEntry[];
  limit: RdmaEntry[];
}

/** One line of cgroup2's io.stat. */
export interface IoEntry {
  major: bigint;
  minor: bigint;
  rbytes: bigint;
  wbytes: bigint;
  rios: bigint;
  wios: bigint;
}

/**
 * One huge page size. v1: usage, max usage and failcnt of hugetlb.<size>.*_in_bytes/failcnt. cgroup2: current,
 * the limit (hugetlb.<size>.max) as `max`, and the "max" count of hugetlb.<size>.events as `failcnt`.
 */
export interface HugetlbEntry {
  pagesize: string;
  usage: bigint;
  max: bigint;
  failcnt: bigint;
}

/** memory.events (cgroup2): counts of times each boundary was hit. */
export interface MemoryEvents {
  low: bigint;
  high: bigint;
  max: bigint;
  oom: bigint;
  oomKill: bigint;
  oomGroupKill: bigint;
}

export interface MetricsExtraV2 {
  mode: 'v2';
  /** pids.max; "max" is 2^64-1 (containerd), 0 without the pids controller. */
  pidsLimit: bigint;
  /** cpu.stat's nr_bursts and burst_usec (cpu.max.burst, kernel 5.14+). */
  nrBursts: bigint;
  burstUsec: bigint;
  /** memory.swap.current, memory.swap.max, memory.swap.peak as they are (0 when absent). */
  swapUsage: bigint;
  swapLimit: bigint;
  swapPeak: bigint;
  /** undefined without the memory controller (no memory.events). */
  memoryEvents?: MemoryEvents;
  io: IoEntry[];
  rdma: RdmaStats;
  hugetlb: HugetlbEntry[];
  /** The *.pressure files as they are (undefined when absent: no PSI in the kernel or psi=0). */
  psi: { cpu?: PSIStats; memory?: PSIStats; io?: PSIStats };
}

export interface MetricsExtraV1 {
  mode: 'v1';
  /** memory.oom_control's oom_kill_disable, under_oom, oom_kill; undefined without the memory hierarchy. */
  oomControl?: { oomKillDisable: bigint; underOom: bigint; oomKill: bigint };
  /** undefined without an rdma hierarchy. */
  rdma?: RdmaStats;
  hugetlb: HugetlbEntry[];
  /** "major:minor" → /dev/<name> for the blkio entries, from /proc/partitions as containerd names them. */
  blockDevices: Map<string, string>;
}

export type MetricsExtra = MetricsExtraV1 | MetricsExtraV2;
