// Section 4: seccomp. Compile time of hako's default profile (cold, in a fresh Node process, and warm), the
// figures of bench/seccomp-bench.ts, and the per-syscall cost of the compiled filter: `hako-probe getpid-loop N`
// in a container without a filter and with the default profile, under hako (its own BPF compiler) and under
// runc and crun (libseccomp compiling the very same profile from the same config.json).
import * as fs from 'fs';
import * as path from 'path';
import { compileSeccomp } from '../lib/seccomp/compile';
import { defaultSeccompProfile } from '../lib/seccomp/default-profile';
import { probePath } from '../lib/native/addon';
import type { LinuxSeccomp } from '../lib/oci/types';
import { makeGetpidBundle } from './bundle';
import type { BenchContext } from './context';
import { sweepAsync, type RuntimeName } from './cleanup';
import { log, run, stats, type Stats } from './util';

export interface CompileFigures {
  instructions: number;
  rules: number;
  /** Fresh Node process: require of lib/seccomp, building the profile, first compile (ms). */
  cold: { requireMs: number; profileMs: number; firstCompileMs: number } | null;
  /** In this process, mean of `rounds` compiles after warm-up (ms). */
  warmMs: number;
  rounds: number;
}

export interface GetpidRow {
  runtime: 'host' | RuntimeName;
  filter: 'none' | 'default profile';
  /** ns per getpid, over the repetitions. */
  nsPerCall: Stats;
  error?: string;
}

export interface SeccompResults {
  /** /proc/self/status Seccomp of the container process (hako-probe json), per runtime: 2 = filter loaded. */
  modes: { runtime: RuntimeName; filter: 'none' | 'default profile'; seccomp: number | null; error?: string }[];
  compile: CompileFigures;
  seccompBenchOutput: string;
  getpid: { n: number; reps: number; rows: GetpidRow[] };
}

/** The profile of the `hako spec` bundle (hako's default profile for its capabilities). */
function profileFor(ctx: BenchContext): LinuxSeccomp {
  const fromSpec = ctx.variants.map((v) => v.bundle.spec.linux?.seccomp).find(Boolean);
  return fromSpec ?? defaultSeccompProfile(ctx.bundle.spec.process!.capabilities!.bounding ?? []);
}

function compileFigures(ctx: BenchContext): CompileFigures {
  const libDir = path.resolve(__dirname, '..', 'lib', 'seccomp');
  const caps = JSON.stringify(ctx.bundle.spec.process!.capabilities!.bounding ?? []);
  const script = `
    const t0 = process.hrtime.bigint();
    const s = require(${JSON.stringify(libDir)});
    const t1 = process.hrtime.bigint();
    const p = s.defaultSeccompProfile(${caps});
    const t2 = process.hrtime.bigint();
    s.compileSeccomp(p);
    const t3 = process.hrtime.bigint();
    const ms = (a, b) => Number(b - a) / 1e6;
    console.log(JSON.stringify({ requireMs: ms(t0, t1), profileMs: ms(t1, t2), firstCompileMs: ms(t2, t3) }));`;
  const coldRuns: { requireMs: number; profileMs: number; firstCompileMs: number }[] = [];
  for (let i = 0; i < 5; i++) {
    const r = run(ctx.node, ['-e', script]);
    if (r.status === 0) coldRuns.push(JSON.parse(r.stdout));
  }
  const med = (f: (x: (typeof coldRuns)[0]) => number) => stats(coldRuns.map(f)).median;
  const profile = profileFor(ctx);
  const compiled = compileSeccomp(profile);
  for (let i = 0; i < 20; i++) compileSeccomp(profile);
  const rounds = 200;
  const t = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) compileSeccomp(profile);
  const warmMs = Number(process.hrtime.bigint() - t) / 1e6 / rounds;
  return {
    instructions: compiled.instructions,
    rules: profile.syscalls?.length ?? 0,
    cold: coldRuns.length
      ? {
          requireMs: med((x) => x.requireMs),
          profileMs: med((x) => x.profileMs),
          firstCompileMs: med((x) => x.firstCompileMs),
        }
      : null,
    warmMs,
    rounds,
  };
}

function parseLoop(out: string): { n: number; ns: number } {
  const line = out.split('\n').find((l) => l.startsWith('{"n":'));
  if (!line) throw new Error(`no getpid-loop output in: ${out.slice(0, 300)}`);
  return JSON.parse(line);
}

export async function benchSeccomp(ctx: BenchContext): Promise<SeccompResults> {
  log('seccomp: compile time of the default profile');
  const compile = compileFigures(ctx);

  log('seccomp: bench/seccomp-bench.js');
  const sb = run(ctx.node, [path.join(__dirname, 'seccomp-bench.js')], { timeoutMs: 120_000 });
  const seccompBenchOutput =
    sb.status === 0 ? sb.stdout.trimEnd() : `failed (exit ${sb.status}): ${sb.stderr.trim().slice(0, 500)}`;

  const n = ctx.getpidN;
  const reps = ctx.getpidReps;
  log(`seccomp: getpid-loop ${n} x ${reps} per runtime, without and with the default profile`);
  const plain = makeGetpidBundle(fs.mkdtempSync(path.join(ctx.work, 'getpid-none-')), n);
  const filtered = makeGetpidBundle(fs.mkdtempSync(path.join(ctx.work, 'getpid-default-')), n, profileFor(ctx));
  const rows: GetpidRow[] = [];
  const runtimes: RuntimeName[] = ['hako', ...(['runc', 'crun'] as const).filter((r) => ctx.have[r])];
  let seq = 0;
  const runIn = (rt: RuntimeName, dir: string) => {
    const id = `${ctx.tag}-sc${rt[0]}-${seq++}`;
    return rt === 'hako'
      ? run(ctx.node, [ctx.hakoBin, '--root', ctx.roots.hako, 'run', '-b', dir, id], { timeoutMs: 120_000 })
      : run(rt, ['--root', ctx.roots[rt], 'run', '-b', dir, id], { timeoutMs: 120_000 });
  };

  // Is the filter really there? The same bundles, running `hako-probe json` instead.
  const modes: SeccompResults['modes'] = [];
  for (const [filter, sc] of [
    ['none', undefined],
    ['default profile', profileFor(ctx)],
  ] as const) {
    const b = makeGetpidBundle(fs.mkdtempSync(path.join(ctx.work, 'seccomp-mode-')), 0, sc);
    b.spec.process!.args = ['/bin/probe', 'json'];
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.spec, null, 2));
    for (const rt of runtimes) {
      const r = runIn(rt, b.dir);
      try {
        if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr.trim().slice(0, 200)}`);
        modes.push({ runtime: rt, filter, seccomp: (JSON.parse(r.stdout) as { seccomp: number }).seccomp });
      } catch (e) {
        modes.push({ runtime: rt, filter, seccomp: null, error: (e as Error).message });
      }
    }
  }

  const host: number[] = [];
  for (let i = 0; i < reps; i++) {
    const r = run(probePath(), ['getpid-loop', String(n)]);
    const o = parseLoop(r.stdout);
    host.push(o.ns / o.n);
  }
  rows.push({ runtime: 'host', filter: 'none', nsPerCall: stats(host) });

  for (const rt of runtimes) {
    for (const [filter, bundle] of [
      ['none', plain],
      ['default profile', filtered],
    ] as const) {
      const samples: number[] = [];
      let error: string | undefined;
      for (let i = 0; i < reps && !error; i++) {
        const r = runIn(rt, bundle.dir);
        try {
          if (r.status !== 0) throw new Error(`exit ${r.status ?? r.signal}: ${r.stderr.trim().slice(0, 300)}`);
          const o = parseLoop(r.stdout);
          samples.push(o.ns / o.n);
        } catch (e) {
          error = (e as Error).message;
          log(`  ${rt} (${filter}) failed: ${error}`);
        }
      }
      rows.push({ runtime: rt, filter, nsPerCall: stats(samples), error });
    }
  }
  await sweepAsync(ctx, ctx.rt);
  return { modes, compile, seccompBenchOutput, getpid: { n, reps, rows } };
}
