// Small helpers for the benchmark: statistics, child processes, hyperfine, environment knobs.
import { spawnSync, type SpawnSyncOptions } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface Stats {
  /** All figures in milliseconds. */
  n: number;
  mean: number;
  stddev: number;
  median: number;
  p95: number;
  min: number;
  max: number;
}

export function stats(samplesMs: number[]): Stats {
  const s = [...samplesMs].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return { n: 0, mean: NaN, stddev: NaN, median: NaN, p95: NaN, min: NaN, max: NaN };
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? s.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  const q = (p: number) => {
    const i = (n - 1) * p;
    const lo = Math.floor(i);
    const hi = Math.ceil(i);
    return s[lo] + (s[hi] - s[lo]) * (i - lo);
  };
  return { n, mean, stddev: Math.sqrt(variance), median: q(0.5), p95: q(0.95), min: s[0], max: s[n - 1] };
}

export function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a non-negative integer, got "${v}"`);
  return n;
}

/**
 * Variables that change what every Node start costs: NODE_EXTRA_CA_CERTS makes Node parse a CA bundle at start-up
 * (tens of ms that neither a device nor runc/crun would pay), NODE_OPTIONS anything. Benchmarks run their programs
 * without them (BENCH_KEEP_ENV=1 keeps them) and record which were left out.
 */
export const STRIPPED_ENV = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'];

/** process.env without STRIPPED_ENV (unless BENCH_KEEP_ENV), and the names left out. */
export function benchEnv(): { env: NodeJS.ProcessEnv; stripped: string[] } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const stripped: string[] = [];
  if (!process.env.BENCH_KEEP_ENV)
    for (const k of STRIPPED_ENV)
      if (env[k] !== undefined) {
        stripped.push(k);
        delete env[k];
      }
  return { env, stripped };
}

export function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function msSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/**
 * Run a command to completion. Output goes through files, not pipes: a container that outlives the
 * command (create) inherits them, and a pipe would keep the caller waiting until the container exits.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-bench-io-'));
  const out = fs.openSync(path.join(dir, 'out'), 'w+');
  const err = fs.openSync(path.join(dir, 'err'), 'w+');
  try {
    const o: SpawnSyncOptions = {
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', out, err],
      input: opts.input,
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs ?? 60_000,
    };
    const r = spawnSync(cmd, args, o);
    // Ctrl-C reaches the whole process group: a child killed by it means the bench was interrupted. The
    // listener of the bench process would only run after the remaining synchronous work, so stop here.
    if (r.signal === 'SIGINT' || r.signal === 'SIGTERM' || r.signal === 'SIGHUP')
      throw new Interrupted(`${cmd}: ${r.signal}`);
    return {
      status: r.status,
      signal: r.signal,
      stdout: fs.readFileSync(path.join(dir, 'out'), 'utf8'),
      stderr: fs.readFileSync(path.join(dir, 'err'), 'utf8'),
      error: r.error,
    };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function mustRun(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): RunResult {
  const r = run(cmd, args, opts);
  if (r.error || r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}\n${r.stderr.trim()}`,
    );
  return r;
}

export class Interrupted extends Error {}

export interface HyperfineResult {
  name: string;
  command: string;
  stats: Stats;
  /** The per-run wall times (ms). */
  times: number[];
  /** hyperfine's own figures (ms). */
  user: number;
  system: number;
}

export interface HyperfineOptions {
  name: string;
  command: string;
  runs: number;
  warmup: number;
  prepare?: string;
  workDir: string;
}

/** One hyperfine invocation (-N: no intermediate shell) for one command. */
export function hyperfine(o: HyperfineOptions): HyperfineResult {
  const json = path.join(o.workDir, `hf-${o.name.replace(/[^\w.-]+/g, '_')}.json`);
  const args = [
    '-N',
    '--style',
    'none',
    '--warmup',
    String(o.warmup),
    '--runs',
    String(o.runs),
    '--export-json',
    json,
    '-n',
    o.name,
  ];
  if (o.prepare) args.push('--prepare', o.prepare);
  args.push(o.command);
  const r = run('hyperfine', args, { timeoutMs: 30 * 60_000 });
  if (r.error || r.status !== 0)
    throw new Error(
      `hyperfine ${o.name}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}\n${(r.stderr + r.stdout).trim().slice(-2000)}`,
    );
  const res = (
    JSON.parse(fs.readFileSync(json, 'utf8')) as {
      results: { times: number[]; user: number; system: number; exit_codes?: number[] }[];
    }
  ).results[0];
  const times = res.times.map((t) => t * 1000);
  return {
    name: o.name,
    command: o.command,
    stats: stats(times),
    times,
    user: res.user * 1000,
    system: res.system * 1000,
  };
}

/** /proc/PID/smaps_rollup in kB, plus the thread count and comm. */
export interface ProcMem {
  pid: number;
  comm: string;
  threads: number;
  rssKb: number;
  pssKb: number;
  pssAnonKb: number;
  pssFileKb: number;
  privateKb: number;
}

export function procMem(pid: number): ProcMem {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  return {
    pid,
    comm: fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(),
    threads,
    rssKb: field('Rss'),
    pssKb: field('Pss'),
    pssAnonKb: field('Pss_Anon'),
    pssFileKb: field('Pss_File'),
    privateKb: field('Private_Clean') + field('Private_Dirty'),
  };
}

export function fmt(n: number | undefined, digits = 2): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  return n.toFixed(digits);
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Host-wide CPU counters (all CPUs, jiffies) from /proc/stat. */
export function cpuTimes(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Share of all CPUs that was busy (this bench included) between two cpuTimes() readings, in %. */
export function busyPercent(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const dt = b.total - a.total;
  return dt > 0 ? Math.round((100 * (b.busy - a.busy)) / dt) : NaN;
}
