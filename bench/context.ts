// What every bench section gets: paths, counts, which runtimes are installed, the library Runtime.
import type { Runtime } from '../lib/runtime/runtime';
import type { BenchBundle } from './bundle';
import type { SweepContext } from './cleanup';

/** One bundle configuration; every runtime runs the same one. */
export interface Variant {
  /** 'seccomp': `hako spec` defaults (with the Docker-equivalent seccomp profile); 'plain': no seccomp, as `runc spec`. */
  name: string;
  /** A short id component (keeps ids of the variants apart). */
  short: string;
  description: string;
  bundle: BenchBundle;
}

export interface BenchContext extends SweepContext {
  /** Scratch directory (bundles, hyperfine exports, process files). */
  work: string;
  /** The `hako spec` default bundle (variants[0].bundle). */
  bundle: BenchBundle;
  variants: Variant[];
  rt: Runtime;
  /** hyperfine --runs and the library loops' iterations. */
  runs: number;
  warmup: number;
  libRuns: number;
  memCount: number;
  memAlone: number;
  getpidN: number;
  getpidReps: number;
  /** A prefix that makes container ids (and so runc/crun cgroup names) unique to this bench run. */
  tag: string;
  /** /dev/null, the library containers' stdio (hyperfine gives the CLI commands /dev/null too). */
  devNull: number;
  /** Idle time before each run in the "sporadic" rows (0: left out). */
  gapMs: number;
  /** Environment variables removed for every measured command (name -> host value). */
  strippedEnv: Record<string, string>;
  /** Profile the CLI with --cpu-prof. */
  profile: boolean;
}
