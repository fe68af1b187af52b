// Section 6: soak. BENCH_SOAK_RUNS (default 10000) complete library runs (run, wait, delete) of `true` in this one
// process, with RSS, V8 heap and the fd count recorded at the start (after a warm-up), every tenth of the way,
// in the middle and at the end. A runtime embedded in a long-lived device agent must not grow with each
// container: the fd count must end where it started, and memory must stop growing once warm. Each sample is
// taken after a full GC, so a heap that is merely not yet collected does not pass for a leak.
//
// The RSS step seen once, 61.6 -> ~92 MB (between runs 3000 and 4000 of the 10,000 on 2026-12-07, fds flat), is
// V8 sizing its young generation, not a leak. Measured on 2026-12-07 (same host, 5000 runs, a sample after a
// full GC every 500): V8's new space went 4 -> 16 -> 32 MB (its two semi-spaces doubling up to the 16 MB
// maximum under the steady allocation of runs), heapTotal 8.7 -> 43.2 MB, and anonymous RSS grew by the same
// ~40 MB, in two steps, then stayed flat to the end (93.6 MB at 5000); heapUsed stayed at 6.6 MB, malloc's
// [heap] 2.7 -> 4.2 MB, threads 7, fds flat. With --max-semi-space-size=1 the same runs stay at 61-70 MB RSS and
// a 10 MB heapTotal. So the growth is bounded by V8's semi-space maximum; an embedder short of memory can cap
// it with that flag. The verdict below compares the second half, after the young generation has grown.
import * as fs from 'fs';
import * as v8 from 'v8';
import * as vm from 'vm';
import { heldFds } from '../lib/state/held-fds';
import type { BenchContext, Variant } from './context';
import { log } from './util';

export interface SoakSample {
  /** Runs completed when the sample was taken. */
  runs: number;
  elapsedS: number;
  rssKb: number;
  heapUsedKb: number;
  externalKb: number;
  fds: number;
  heldFds: number;
}

export interface SoakResults {
  variant: string;
  runs: number;
  warmup: number;
  failures: number;
  firstError?: string;
  /** Mean time of one run (run + wait + delete), ms. */
  meanMs: number;
  samples: SoakSample[];
  /** RSS and fd growth from the middle sample to the end (the first half includes warming up). */
  rssGrowthSecondHalfKb: number;
  heapGrowthSecondHalfKb: number;
  fdGrowth: number;
  /** Flat: no fd growth, and RSS grew less than max(2 MB, 5 %) over the second half. */
  flat: boolean;
  verdict: string;
}

/** A full GC without starting Node with --expose-gc. */
function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function sample(runs: number, t0: number, gc: () => void): SoakSample {
  gc();
  const m = process.memoryUsage();
  const vmRss = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return {
    runs,
    elapsedS: Math.round((Date.now() - t0) / 100) / 10,
    rssKb: vmRss ? Number(vmRss[1]) : Math.round(m.rss / 1024),
    heapUsedKb: Math.round(m.heapUsed / 1024),
    externalKb: Math.round(m.external / 1024),
    fds: fs.readdirSync('/proc/self/fd').length,
    heldFds: heldFds().length,
  };
}

export async function benchSoak(ctx: BenchContext, runs: number, variant: Variant): Promise<SoakResults> {
  const gc = gcFunction();
  const warmup = Math.min(50, runs);
  const io = [ctx.devNull, ctx.devNull, ctx.devNull];
  let failures = 0;
  let firstError: string | undefined;
  let seq = 0;
  const one = async () => {
    const id = `${ctx.tag}${variant.short}-soak-${seq++}`;
    try {
      const c = await ctx.rt.run(id, { bundle: variant.bundle.dir, stdio: io });
      await c.wait();
      await ctx.rt.delete(id);
    } catch (e) {
      failures++;
      firstError ??= (e as Error).message;
      await ctx.rt.delete(id, { force: true }).catch(() => undefined);
    }
  };
  log(`soak: ${runs} library runs [${variant.name}] (after ${warmup} warm-up runs)`);
  for (let i = 0; i < warmup; i++) await one();
  const t0 = Date.now();
  const marks = new Set<number>([0, runs]);
  for (let k = 1; k < 10; k++) marks.add(Math.round((runs * k) / 10));
  const samples: SoakSample[] = [sample(0, t0, gc)];
  for (let i = 1; i <= runs; i++) {
    await one();
    if (marks.has(i)) {
      samples.push(sample(i, t0, gc));
      const s = samples[samples.length - 1];
      log(
        `  soak ${i}/${runs}: RSS ${(s.rssKb / 1024).toFixed(1)} MB, heap ${(s.heapUsedKb / 1024).toFixed(1)} MB, ${s.fds} fds, ${failures} failures`,
      );
    }
  }
  const elapsedMs = Date.now() - t0;
  const first = samples[0];
  const mid = samples.find((s) => s.runs === Math.round((runs * 5) / 10)) ?? samples[Math.floor(samples.length / 2)];
  const last = samples[samples.length - 1];
  const rssGrowth = last.rssKb - mid.rssKb;
  const fdGrowth = last.fds - first.fds;
  const rssLimit = Math.max(2048, mid.rssKb * 0.05);
  const flat = fdGrowth <= 0 && rssGrowth < rssLimit && failures === 0;
  // The whole course is in the verdict: a rise while warming up (malloc arenas, V8 code) is not hidden by "flat".
  const course = `RSS ${fmtMb(first.rssKb)} MB at the start, ${fmtMb(mid.rssKb)} MB after ${mid.runs} runs, ${fmtMb(last.rssKb)} MB at the end; V8 heap ${fmtMb(first.heapUsedKb)} → ${fmtMb(last.heapUsedKb)} MB; fds ${first.fds} → ${last.fds}`;
  const verdict = flat
    ? `flat over the second half (${course})`
    : `NOT flat (${course}; the second half may add at most ${fmtMb(rssLimit)} MB and no fd)${failures ? `, ${failures} failed runs (${firstError})` : ''}`;
  log(`  soak: ${verdict}`);
  return {
    variant: variant.name,
    runs,
    warmup,
    failures,
    firstError,
    meanMs: runs ? elapsedMs / runs : NaN,
    samples,
    rssGrowthSecondHalfKb: rssGrowth,
    heapGrowthSecondHalfKb: last.heapUsedKb - mid.heapUsedKb,
    fdGrowth,
    flat,
    verdict,
  };
}

const fmtMb = (kb: number) => (kb / 1024).toFixed(1);

/** The markdown section (appended to latest.md, as the policy section is). */
export function soakMarkdown(s: SoakResults): string {
  const rows = s.samples.map(
    (x) =>
      `| ${x.runs} | ${x.elapsedS} | ${fmtMb(x.rssKb)} | ${fmtMb(x.heapUsedKb)} | ${fmtMb(x.externalKb)} | ${x.fds} | ${x.heldFds} |`,
  );
  return [
    '',
    `## 6. Soak: ${s.runs} library runs in one process [${s.variant}]`,
    '',
    `run() + wait() + delete() of \`true\`, ${s.warmup} warm-up runs first; each sample after a full GC. Mean ${s.meanMs.toFixed(1)} ms a run, ${s.failures} failed. **${s.verdict}**.`,
    '',
    '| runs | s | RSS (MB) | V8 heap used (MB) | external (MB) | open fds | fds held by the runtime |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n');
}
