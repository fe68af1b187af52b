// The shapes of runc's `events --stats` record (runc types/events.go): data only, so the manager interface
// (types.ts) can name them without importing the readers in stats.ts.

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
