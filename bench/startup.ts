// Sections 1 and 2: start-to-exit of a container running `true` (CLI and library, runc, crun, bare node) and
// fast setup of a pre-created container (library and CLI), for each bundle variant.
import * as fs from 'fs';
import * as path from 'path';
import type { BenchBundle } from './bundle';
import type { BenchContext, Variant } from './context';
import { sweepAsync } from './cleanup';
import { formatSummary, summarise, type ProfileSummary } from './cpuprof';
import { busyPercent, cpuTimes, hyperfine, Interrupted, log, nowNs, run, stats, type Stats } from './util';

export interface TimingRow {
  key: string;
  /** The bundle variant (see BenchContext.variants); '' for rows without a container. */
  variant: string;
  label: string;
  /** How it was measured: hyperfine command or library loop. */
  method: string;
  stats: Stats;
  /** Every measured run (ms, rounded to µs). */
  samples?: number[];
  /** Extra per-phase figures (ms) for library loops. */
  phases?: Record<string, Stats>;
  /** Host CPU busy (all CPUs, %, this bench included) while the row ran: high values mean other load. */
  hostBusy?: number;
  error?: string;
}

const round = (xs: number[]) => xs.map((x) => Math.round(x * 1000) / 1000);

function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `sh -c 'exec …'` as the reference measured it; `$$` (the shell's pid, the runtime's after exec) makes ids unique. */
function shExec(cmd: string): string {
  return `sh -c ${sq(`exec ${cmd}`)}`;
}

function hf(
  ctx: BenchContext,
  variant: string,
  key: string,
  label: string,
  command: string,
  prepare?: string,
): TimingRow {
  log(`hyperfine: ${label}${variant ? ` [${variant}]` : ''}`);
  try {
    const c0 = cpuTimes();
    const r = hyperfine({
      name: `${key}${variant ? `-${variant}` : ''}`,
      command,
      prepare,
      runs: ctx.runs,
      warmup: ctx.warmup,
      workDir: ctx.work,
    });
    return {
      hostBusy: busyPercent(c0, cpuTimes()),
      key,
      variant,
      label,
      method: `hyperfine -N --warmup ${ctx.warmup} --runs ${ctx.runs}${prepare ? ` --prepare ${JSON.stringify(prepare)}` : ''}: ${command}`,
      stats: r.stats,
      samples: round(r.times),
    };
  } catch (e) {
    if (e instanceof Interrupted) throw e;
    log(`  failed: ${(e as Error).message}`);
    return {
      key,
      variant,
      label,
      method: command,
      stats: stats([]),
      error: (e as Error).message.split('\n').slice(0, 4).join(' | '),
    };
  }
}

/** Reference rows without a container: the fork/exec floor, a bare Node start, the CLI's own start. */
export function benchReferences(ctx: BenchContext): TimingRow[] {
  const rows: TimingRow[] = [];
  rows.push(hf(ctx, '', 'sh-true', 'sh -c exec true (fork/exec floor)', shExec('true')));
  rows.push(hf(ctx, '', 'node-e0', 'node -e 0 (bare Node start)', shExec(`${ctx.node} -e 0`)));
  const hostEnv = Object.entries(ctx.strippedEnv).map(([k, v]) => `${k}=${v}`);
  if (hostEnv.length)
    rows.push(
      hf(
        ctx,
        '',
        'node-e0-hostenv',
        `node -e 0 with this host's ${Object.keys(ctx.strippedEnv).join(', ')} (reference)`,
        shExec(`env ${hostEnv.join(' ')} ${ctx.node} -e 0`),
      ),
    );
  rows.push(
    hf(
      ctx,
      '',
      'hako-version',
      'hako --version (CLI start, no container)',
      shExec(`${ctx.node} ${ctx.hakoBin} --version`),
    ),
  );
  return rows;
}

/** Section 1 for one bundle variant: start-to-exit of `true`. */
export async function benchStartup(ctx: BenchContext, v: Variant): Promise<TimingRow[]> {
  const rows: TimingRow[] = [];
  const B = v.bundle.dir;
  const t = `${ctx.tag}${v.short}`;
  rows.push(
    hf(
      ctx,
      v.name,
      'hako-cli-run',
      'hako run (CLI)',
      shExec(`${ctx.node} ${ctx.hakoBin} --root ${ctx.roots.hako} run -b ${B} ${t}-hk-$$`),
    ),
  );
  await sweepAsync(ctx, ctx.rt);
  if (ctx.have.runc)
    rows.push(hf(ctx, v.name, 'runc-run', 'runc run', shExec(`runc --root ${ctx.roots.runc} run -b ${B} ${t}-rc-$$`)));
  if (ctx.have.crun)
    rows.push(hf(ctx, v.name, 'crun-run', 'crun run', shExec(`crun --root ${ctx.roots.crun} run -b ${B} ${t}-cr-$$`)));
  await sweepAsync(ctx, ctx.rt);
  rows.push(await libRun(ctx, v));
  rows.push(await libSteps(ctx, v));
  return rows;
}

/**
 * The same runs with `gapMs` of idle time before each one. On cgroup v1 the first write to a cgroup.procs file
 * after an idle spell waits for an RCU grace period (cgroup_threadgroup_rwsem), several ms; back-to-back runs
 * of a fast runtime never see it, sporadic starts on a device always do.
 */
export async function benchSporadic(ctx: BenchContext, v: Variant): Promise<TimingRow[]> {
  if (!ctx.gapMs) return [];
  const rows: TimingRow[] = [];
  const B = v.bundle.dir;
  const t = `${ctx.tag}${v.short}`;
  const sleep = `sleep ${(ctx.gapMs / 1000).toFixed(3)}`;
  const g = `${ctx.gapMs} ms idle before each run`;
  rows.push(
    hf(
      ctx,
      v.name,
      'hako-cli-run-gap',
      `hako run (CLI), ${g}`,
      shExec(`${ctx.node} ${ctx.hakoBin} --root ${ctx.roots.hako} run -b ${B} ${t}-hkg-$$`),
      sleep,
    ),
  );
  if (ctx.have.runc)
    rows.push(
      hf(
        ctx,
        v.name,
        'runc-run-gap',
        `runc run, ${g}`,
        shExec(`runc --root ${ctx.roots.runc} run -b ${B} ${t}-rcg-$$`),
        sleep,
      ),
    );
  if (ctx.have.crun)
    rows.push(
      hf(
        ctx,
        v.name,
        'crun-run-gap',
        `crun run, ${g}`,
        shExec(`crun --root ${ctx.roots.crun} run -b ${B} ${t}-crg-$$`),
        sleep,
      ),
    );
  await sweepAsync(ctx, ctx.rt);
  rows.push(await libRun(ctx, v, ctx.gapMs));
  return rows;
}

export interface CliProfile {
  variant: string;
  command: string;
  summary: ProfileSummary;
  text: string;
}

/** `node --cpu-prof` of `hako run` (a few runs after one warm-up): where the CLI's time goes. */
export function profileCli(ctx: BenchContext, v: Variant, runs = 5): CliProfile | null {
  const dir = fs.mkdtempSync(path.join(ctx.work, 'cpuprof-'));
  const argv = (i: number) => [
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
    '--cpu-prof-interval',
    '100',
    ctx.hakoBin,
    '--root',
    ctx.roots.hako,
    'run',
    '-b',
    v.bundle.dir,
    `${ctx.tag}${v.short}-prof-${i}`,
  ];
  log(`profile: node --cpu-prof hako run x ${runs} [${v.name}]`);
  for (let i = 0; i <= runs; i++) {
    const r = run(ctx.node, argv(i));
    if (r.status !== 0) {
      log(`  profile run failed: ${r.stderr.trim().slice(0, 300)}`);
      return null;
    }
    if (i === 0) for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
  }
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f));
  const summary = summarise(files);
  return {
    variant: v.name,
    command: `node --cpu-prof --cpu-prof-interval 100 bin/hako --root R run -b B ID (${files.length} runs)`,
    summary,
    text: formatSummary(summary),
  };
}

function stdio(ctx: BenchContext): number[] {
  return [ctx.devNull, ctx.devNull, ctx.devNull];
}

/** Runtime.run() + wait() + delete() from this (resident) Node process. */
async function libRun(ctx: BenchContext, v: Variant, gapMs = 0): Promise<TimingRow> {
  log(
    `library: run()+wait()+delete() x ${ctx.libRuns} (+${ctx.warmup} warm-up)${gapMs ? `, ${gapMs} ms idle before each` : ''} [${v.name}]`,
  );
  const total: number[] = [];
  const runT: number[] = [];
  const waitT: number[] = [];
  const delT: number[] = [];
  const startToExit: number[] = [];
  const c0 = cpuTimes();
  for (let i = 0; i < ctx.warmup + ctx.libRuns; i++) {
    const id = `${ctx.tag}${v.short}-lr${gapMs ? 'g' : ''}-${i}`;
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
    const t0 = nowNs();
    const c = await ctx.rt.run(id, { bundle: v.bundle.dir, stdio: stdio(ctx) });
    const t1 = nowNs();
    const st = await c.wait();
    const t2 = nowNs();
    await ctx.rt.delete(id, { force: true });
    const t3 = nowNs();
    if (st.status !== 0) throw new Error(`library run ${id}: container exited with status ${st.status}`);
    if (i < ctx.warmup) continue;
    total.push(Number(t3 - t0) / 1e6);
    runT.push(Number(t1 - t0) / 1e6);
    waitT.push(Number(t2 - t1) / 1e6);
    delT.push(Number(t3 - t2) / 1e6);
    startToExit.push(Number(t2 - t0) / 1e6);
  }
  return {
    hostBusy: busyPercent(c0, cpuTimes()),
    key: gapMs ? 'hako-lib-run-gap' : 'hako-lib-run',
    variant: v.name,
    label: `hako Runtime.run()+wait()+delete() (library)${gapMs ? `, ${gapMs} ms idle before each run` : ''}`,
    method: `in-process loop, process.hrtime, ${ctx.libRuns} runs after ${ctx.warmup} warm-ups${gapMs ? `, setTimeout(${gapMs}) before each` : ''}`,
    stats: stats(total),
    samples: round(total),
    phases: {
      'run()': stats(runT),
      'wait()': stats(waitT),
      'delete()': stats(delT),
      'run()+wait()': stats(startToExit),
    },
  };
}

/** The same cycle with create and start separate: where the library's time goes. */
async function libSteps(ctx: BenchContext, v: Variant): Promise<TimingRow> {
  log(`library: create/start/wait/delete steps x ${ctx.libRuns} [${v.name}]`);
  const t = {
    create: [] as number[],
    start: [] as number[],
    wait: [] as number[],
    delete: [] as number[],
    total: [] as number[],
  };
  const c0 = cpuTimes();
  for (let i = 0; i < ctx.warmup + ctx.libRuns; i++) {
    const id = `${ctx.tag}${v.short}-ls-${i}`;
    const t0 = nowNs();
    const c = await ctx.rt.create(id, { bundle: v.bundle.dir, stdio: stdio(ctx) });
    const t1 = nowNs();
    await ctx.rt.start(id);
    const t2 = nowNs();
    const st = await c.wait();
    const t3 = nowNs();
    await ctx.rt.delete(id, { force: true });
    const t4 = nowNs();
    if (st.status !== 0) throw new Error(`library steps ${id}: container exited with status ${st.status}`);
    if (i < ctx.warmup) continue;
    t.create.push(Number(t1 - t0) / 1e6);
    t.start.push(Number(t2 - t1) / 1e6);
    t.wait.push(Number(t3 - t2) / 1e6);
    t.delete.push(Number(t4 - t3) / 1e6);
    t.total.push(Number(t4 - t0) / 1e6);
  }
  return {
    hostBusy: busyPercent(c0, cpuTimes()),
    key: 'hako-lib-steps',
    variant: v.name,
    label: 'hako create()+start()+wait()+delete() (library, per step)',
    method: `in-process loop, ${ctx.libRuns} runs after ${ctx.warmup} warm-ups`,
    stats: stats(t.total),
    samples: round(t.total),
    phases: {
      'create()': stats(t.create),
      'start()': stats(t.start),
      'wait()': stats(t.wait),
      'delete()': stats(t.delete),
    },
  };
}

/** The process `setup` runs: the bundle's own process (args /bin/true), so it matches what `start` would run. */
function setupProcess(b: BenchBundle) {
  return { ...b.spec.process!, args: ['/bin/true'] };
}

/** Section 2 for one bundle variant: fast setup in a container created beforehand. */
export async function benchSetup(ctx: BenchContext, v: Variant): Promise<TimingRow[]> {
  const rows: TimingRow[] = [];
  const proc = setupProcess(v.bundle);

  log(`library: setup()+wait() x ${ctx.libRuns} (+${ctx.warmup} warm-up), container created beforehand [${v.name}]`);
  const setupOnly: number[] = [];
  const setupWait: number[] = [];
  const c0 = cpuTimes();
  for (let i = 0; i < ctx.warmup + ctx.libRuns; i++) {
    const id = `${ctx.tag}${v.short}-su-${i}`;
    const c = await ctx.rt.create(id, { bundle: v.bundle.dir, stdio: stdio(ctx) });
    try {
      const t0 = nowNs();
      await ctx.rt.setup(id, proc);
      const t1 = nowNs();
      const st = await c.wait();
      const t2 = nowNs();
      if (st.status !== 0) throw new Error(`library setup ${id}: process exited with status ${st.status}`);
      if (i >= ctx.warmup) {
        setupOnly.push(Number(t1 - t0) / 1e6);
        setupWait.push(Number(t2 - t0) / 1e6);
      }
    } finally {
      await ctx.rt.delete(id, { force: true });
    }
  }
  rows.push({
    hostBusy: busyPercent(c0, cpuTimes()),
    key: 'hako-lib-setup',
    variant: v.name,
    label: 'hako Runtime.setup()+wait() (library, pre-created)',
    method: `in-process loop: rt.create() untimed, then setup() + Container.wait() timed; ${ctx.libRuns} runs after ${ctx.warmup} warm-ups`,
    stats: stats(setupWait),
    samples: round(setupWait),
    phases: { 'setup()': stats(setupOnly), 'setup()+wait()': stats(setupWait) },
  });

  // CLI: `hako setup` duration, the container created by --prepare (a counter file gives each run its id).
  const procFile = path.join(ctx.work, `process-${v.name}.json`);
  fs.writeFileSync(procFile, JSON.stringify(proc));
  const counter = path.join(ctx.work, `setup-counter-${v.name}`);
  fs.writeFileSync(counter, '0\n');
  const hako = `${ctx.node} ${ctx.hakoBin} --root ${ctx.roots.hako}`;
  const id = `${ctx.tag}${v.short}-cs-$n`;
  const prepare = `sh -c ${sq(`read n < ${counter}; n=$((n+1)); echo $n > ${counter}; exec ${hako} create -b ${v.bundle.dir} ${id}`)}`;
  const command = `sh -c ${sq(`read n < ${counter}; exec ${hako} setup ${id} --process ${procFile}`)}`;
  rows.push(hf(ctx, v.name, 'hako-cli-setup', 'hako setup (CLI, pre-created by --prepare)', command, prepare));
  const swept = await sweepAsync(ctx, ctx.rt);
  if (swept.failed.length) log(`cleanup after CLI setup: ${swept.failed.join('; ')}`);
  return rows;
}

/** Peak resident memory (ru_maxrss, kB) of one command, as its parent sees it: the median of `n` runs. */
function maxRssKb(argv: string[], n: number): number | null {
  // python3's getrusage(RUSAGE_CHILDREN) after waiting for the one child: no GNU time needed.
  const py =
    'import resource,subprocess,sys\nsubprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nprint(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)';
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = run('python3', ['-c', py, ...argv]);
    const kb = Number(r.stdout.trim());
    if (r.status !== 0 || !Number.isFinite(kb) || kb <= 0) return null;
    xs.push(kb);
  }
  return stats(xs).median;
}

export interface CliRssRow {
  key: string;
  label: string;
  rssKb: number | null;
}

/**
 * CLI start-up (issue 8's budget): `hako state ID` and `hako list` with one created container, beside
 * `hako --version` and `node -e 0` (rows of benchReferences), and the peak RSS of each process.
 */
export async function benchCliStartup(ctx: BenchContext, v: Variant): Promise<{ rows: TimingRow[]; rss: CliRssRow[] }> {
  const id = `${ctx.tag}cli`;
  const hako = [ctx.node, ctx.hakoBin, '--root', ctx.roots.hako];
  const rows: TimingRow[] = [];
  const rss: CliRssRow[] = [];
  const created = run(hako[0], [...hako.slice(1), 'create', '-b', v.bundle.dir, id]);
  if (created.status !== 0) {
    log(`  hako create for the CLI start-up rows failed: ${created.stderr.trim()}`);
    return { rows, rss };
  }
  try {
    rows.push(
      hf(
        ctx,
        '',
        'hako-state',
        'hako state ID (CLI start, one created container)',
        shExec(`${hako.join(' ')} state ${id}`),
      ),
    );
    rows.push(
      hf(ctx, '', 'hako-list', 'hako list (CLI start, one created container)', shExec(`${hako.join(' ')} list`)),
    );
    const n = Math.max(5, Math.min(ctx.runs, 20));
    const measured: [string, string, string[]][] = [
      ['node-e0', 'node -e 0', [ctx.node, '-e', '0']],
      ['hako-version', 'hako --version', [...hako, '--version']],
      ['hako-state', 'hako state ID', [...hako, 'state', id]],
      ['hako-list', 'hako list', [...hako, 'list']],
    ];
    for (const [key, label, argv] of measured) rss.push({ key, label, rssKb: maxRssKb(argv, n) });
  } finally {
    run(hako[0], [...hako.slice(1), 'delete', '--force', id]);
    await sweepAsync(ctx, ctx.rt);
  }
  return { rows, rss };
}
