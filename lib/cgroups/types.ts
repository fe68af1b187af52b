// The cgroup manager interface shared by the v1 (also hybrid) and v2 implementations.

import type { LinuxResources } from '../oci/types';
import type { CgroupLayout } from './layout';
import type { CgroupPaths } from './paths';
import type { MetricsExtra, RuncStats } from './stats-types';

/** Where warnings go (rootless skips, ignored deprecated settings). The CLI passes its logger. */
export interface CgroupLog {
  warn(message: string): void;
  debug?(message: string): void;
}

/**
 * Loads and attaches a BPF_PROG_TYPE_CGROUP_DEVICE program to a cgroup v2 directory and returns the program
 * fd. The native addon's `attachDeviceFilter` has this signature; it is injected so unit tests run without it.
 */
export type AttachDeviceFilter = (cgroupDir: string, insns: Buffer, license: string) => number;

export interface CgroupManagerOptions {
  layout: CgroupLayout;
  /** `linux.cgroupsPath` as written in config.json; unset or '' means "derive from id" (see paths.ts). */
  path?: string;
  /** The container id, used for the default path. */
  id?: string;
  /** Already-resolved directories (overrides path/id); mostly for tests. */
  paths?: CgroupPaths;
  /** Text of /proc/self/cgroup, for relative paths (defaults to reading the real file). */
  procSelfCgroup?: string;
  /** Set only by mistake: the systemd driver (lib/runtime/systemd-cgroup.ts) resolves its scope's absolute path. */
  systemdCgroup?: boolean;
  /** Rootless: hierarchies that are not writable are skipped with a warning instead of failing. */
  rootless?: boolean;
  /**
   * Rootless: whether the container asks for limits. Without any, a hierarchy that cannot be made or joined
   * is only a debug line: runc's rootless manager says nothing, and rootless podman reads the whole log file
   * as one JSON error object, so a warning there garbles the error it reports.
   */
  limitsRequested?: boolean;
  log?: CgroupLog;
  /** The addon's attachDeviceFilter; needed only for device rules on cgroup v2. */
  attachDeviceFilter?: AttachDeviceFilter;
  /** Directories that an earlier create() reported (persisted in the container state); destroy() removes them. */
  created?: string[];
  /** Observer of every control-file write (tests). */
  onWrite?: (file: string, value: string) => void;
  /** Huge page sizes as used in file names ("2MB", "1GB"); default: read /sys/kernel/mm/hugepages. */
  hugePageSizes?: string[];
}

/** Counters the CLI compares between polls to emit `{"type":"oom","id":...}` events. */
export interface OomCounters {
  /** Processes killed by the OOM killer in this cgroup (v1 memory.oom_control oom_kill, v2 memory.events oom_kill). */
  oomKill: number;
  /** Times the cgroup hit its limit and the OOM path ran (v2 memory.events oom; v1: under_oom now, 0/1). */
  oom: number;
  /** v1 only: the cgroup is currently stuck at its limit (OOM killer disabled). */
  underOom: boolean;
}

export interface CgroupManager {
  readonly mode: 'v1' | 'hybrid' | 'v2';
  /** Controller (or "name=systemd", "" for the cgroup2 directory) → directory, like runc's state `cgroup_paths`. */
  paths(): Record<string, string>;
  /** mkdir -p in every hierarchy; returns the directories it created (persist them for destroy()). */
  create(): string[];
  /** Moves pid into the cgroup in every hierarchy (writes cgroup.procs). */
  addProcess(pid: number): void;
  /** Applies every resource that is set; zero values mean "unset" as in runc. */
  apply(resources: LinuxResources): void;
  freeze(): void;
  thaw(): void;
  isFrozen(): boolean;
  /** Every pid in the cgroup and its sub-cgroups, sorted. */
  pids(): number[];
  /** Sends signal to every process of the cgroup without racing forks (freezer or cgroup.kill). */
  killAll(signal: NodeJS.Signals | number): void;
  /** The `data` of runc's `events --stats` record. */
  stats(): RuncStats;
  /** What containerd's Metrics carry beyond that record (the shim's Stats: lib/shim/metrics.ts). */
  metricsExtra(): MetricsExtra;
  oomEvents(): OomCounters;
  /** Removes the leaf directories (and sub-cgroups) and the parents recorded as created; missing is fine. */
  destroy(): void;
  exists(): boolean;
}
