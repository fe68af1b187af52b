// `npm run bench`: hako (CLI and library), runc and crun side by side on one bundle, in one run.
//
//   1. start to exit of a container running `true` (hyperfine for the CLIs, an in-process loop for the library)
//   2. fast setup of a pre-created container (library and CLI)
//   3. memory of containers waiting between create and start (1, then BENCH_MEM_COUNT at once)
//   4. seccomp: compile time of the default profile, per-syscall cost of the filter vs runc/crun (libseccomp)
//   5. policy server; 6. soak: BENCH_SOAK_RUNS library runs in one process, RSS and fd count along the way
//
// The bench re-executes itself in a private mount namespace where /sys/fs/cgroup/unified is unmounted: crun
// refuses a hybrid cgroup host otherwise, and every runtime must run under the same conditions.
// Writes bench/results/latest.{json,md,svg}. Knobs (environment): BENCH_RUNS (hyperfine runs, default 100),
// BENCH_LIB_RUNS (library loop iterations, default BENCH_RUNS), BENCH_WARMUP (5), BENCH_MEM_COUNT (100),
// BENCH_MEM_ALONE (5), BENCH_GETPID_N (2000000), BENCH_GETPID_REPS (5), BENCH_GAP_MS (100: idle time before each run
// in the "sporadic" rows; 0 leaves them out), BENCH_PROFILE (1: --cpu-prof of the CLI; 0 skips),
// BENCH_SECTIONS (startup,setup,memory,seccomp,policy,soak,containerd: bench/containerd-bench.ts, its knobs there), BENCH_SOAK_RUNS (10000), BENCH_KEEP_ENV (1: keep NODE_EXTRA_CA_CERTS/NODE_OPTIONS),
// BENCH_STATE_TMPFS (1: the state roots of all three runtimes on a tmpfs, as /run is on a device; 0: host /run).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../lib/native/addon';
import { Runtime } from '../lib/runtime/runtime';
import { BENCH_OCI_VERSION, BUSYBOX_CANDIDATES, makeTrueBundle } from './bundle';
import { removeStrayCgroups, sweep, sweepAsync } from './cleanup';
import type { BenchContext, Variant } from './context';
import { benchMemory, type MemRow } from './memory';
import { evaluate, evaluateCli, markdown, svg, type BenchResults, type Ratio, type Target } from './report';
import { benchSeccomp, type SeccompResults } from './seccomp';
import { benchSoak, soakMarkdown, type SoakResults } from './soak';
import {
  benchCliStartup,
  benchReferences,
  benchSetup,
  benchSporadic,
  benchStartup,
  profileCli,
  type CliProfile,
  type CliRssRow,
  type TimingRow,
} from './startup';
import { envInt, fmt, log, run, STRIPPED_ENV, which } from './util';

const INNER = 'HAKO_BENCH_INNER';
const STRIPPED = 'HAKO_BENCH_STRIPPED_ENV';

/** A static ELF has no PT_INTERP program header (ELF32 or ELF64, either byte order). */
function isStaticElf(file: string): boolean {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = b[4] === 2;
  const le = b[5] === 1;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const phoff = is64 ? Number(le ? b.readBigUInt64LE(0x20) : b.readBigUInt64BE(0x20)) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  for (let i = 0; i < phnum; i++) if (u32(phoff + i * phentsize) === 3) return false;
  return true;
}

function staticBusybox(): string | undefined {
  return BUSYBOX_CANDIDATES.find((p) => {
    try {
      return fs.existsSync(p) && isStaticElf(p);
    } catch {
      return false;
    }
  });
}

/** Install what is missing (busybox-static, runc, crun, hyperfine) with apt-get. */
function ensureTools(): void {
  const missing: string[] = [];
  if (!staticBusybox()) missing.push('busybox-static');
  for (const [cmd, pkg] of [
    ['runc', 'runc'],
    ['crun', 'crun'],
    ['hyperfine', 'hyperfine'],
    ['unshare', 'util-linux'],
  ])
    if (!which(cmd)) missing.push(pkg);
  if (!missing.length) return;
  if (!which('apt-get')) {
    log(`missing ${missing.join(', ')} and no apt-get; continuing with what is installed`);
    return;
  }
  log(`apt-get install -y ${missing.join(' ')}`);
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.status !== 0) log(`apt-get install failed (exit ${r.status}); continuing with what is installed`);
}

/** Re-run this script inside `unshare -m` with a private propagation and no cgroup2 `unified` mount. */
function reexec(): number {
  const inner = [
    'mount --make-rprivate / || exit 1',
    'if grep -q " /sys/fs/cgroup/unified " /proc/self/mountinfo; then umount /sys/fs/cgroup/unified || exit 1; fi',
    'exec "$@"',
  ].join('; ');
  process.on('SIGINT', () => undefined); // the inner bench handles it and cleans up
  process.on('SIGTERM', () => undefined);
  // Variables that change what every Node start costs are left out (and recorded): NODE_EXTRA_CA_CERTS makes
  // Node parse a CA bundle at start-up, tens of ms that neither a device nor runc/crun would pay.
  const env: NodeJS.ProcessEnv = { ...process.env, [INNER]: '1' };
  const stripped: Record<string, string> = {};
  for (const k of STRIPPED_ENV)
    if (env[k] !== undefined && !process.env.BENCH_KEEP_ENV) {
      stripped[k] = env[k]!;
      delete env[k];
    }
  env[STRIPPED] = JSON.stringify(stripped);
  const r = spawnSync(
    'unshare',
    ['-m', 'sh', '-c', inner, 'sh', process.execPath, __filename, ...process.argv.slice(2)],
    { stdio: 'inherit', env },
  );
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function firstLine(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  return r.status === 0 ? r.stdout.split('\n')[0].trim() : 'unavailable';
}

/** One `run` of `true` so a runtime that cannot work here is reported instead of failing every section. */
function probeRuntime(ctx: BenchContext, rt: 'runc' | 'crun'): string | undefined {
  if (!which(rt)) return 'not installed';
  const id = `${ctx.tag}-probe-${rt}`;
  const r = run(rt, ['--root', ctx.roots[rt], 'run', '-b', ctx.bundle.dir, id], { timeoutMs: 30_000 });
  run(rt, ['--root', ctx.roots[rt], 'delete', '--force', id]);
  return r.status === 0 ? undefined : `${rt} run failed (exit ${r.status}): ${r.stderr.trim().slice(0, 300)}`;
}

function writeResults(dir: string, results: BenchResults): void {
  fs.mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [
    ['latest.json', JSON.stringify(results, null, 2) + '\n'],
    ['latest.md', markdown(results)],
    ['latest.svg', svg(results)],
  ];
  for (const [name, text] of files) {
    const tmp = path.join(dir, `${name}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(dir, name));
  }
}

async function inner(): Promise<number> {
  if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(' /sys/fs/cgroup/unified '))
    throw new Error('/sys/fs/cgroup/unified is still mounted in the bench namespace');
  if (!which('hyperfine')) throw new Error('hyperfine is required (apt-get install hyperfine)');
  const pkg = packageRoot();
  const base = path.join('/run', `hako-bench-${process.pid}`);
  const busybox = staticBusybox();
  if (!busybox) throw new Error('a static busybox is required (apt-get install busybox-static)');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-bench-'));
  const roots = { hako: path.join(base, 'hako'), runc: path.join(base, 'runc'), crun: path.join(base, 'crun') };
  // State roots on a tmpfs (as /run is on a device; this namespace's mount, gone with it), unless BENCH_STATE_TMPFS=0.
  fs.mkdirSync(base, { recursive: true, mode: 0o711 });
  const stateTmpfs =
    process.env.BENCH_STATE_TMPFS !== '0' &&
    run('mount', ['-t', 'tmpfs', '-o', 'mode=0711,size=64m', 'hako-bench', base]).status === 0;
  for (const r of Object.values(roots)) fs.mkdirSync(r, { recursive: true });
  const runs = envInt('BENCH_RUNS', 100);
  const VARIANTS: Record<string, Omit<Variant, 'bundle'> & { seccomp: boolean }> = {
    seccomp: {
      name: 'seccomp',
      short: 's',
      seccomp: true,
      description:
        '`hako spec` defaults: the Docker-equivalent seccomp profile (runc and crun compile it with libseccomp at every start)',
    },
    plain: {
      name: 'plain',
      short: 'p',
      seccomp: false,
      description: "no seccomp profile, as `runc spec` writes it (the reference baseline's configuration)",
    },
  };
  const variants: Variant[] = (process.env.BENCH_VARIANTS ?? 'seccomp,plain')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => {
      if (!VARIANTS[n]) throw new Error(`BENCH_VARIANTS: unknown variant "${n}" (seccomp, plain)`);
      return true;
    })
    .map((n) => {
      const { seccomp, ...rest } = VARIANTS[n];
      return { ...rest, bundle: makeTrueBundle(path.join(work, `bundle-${n}`), busybox, seccomp) };
    });
  if (!variants.length) throw new Error('BENCH_VARIANTS: no variant');
  const sections = new Set(
    (process.env.BENCH_SECTIONS ?? 'startup,setup,memory,seccomp,policy,soak,containerd')
      .split(',')
      .map((s) => s.trim()),
  );
  const ctx: BenchContext = {
    roots,
    node: process.execPath,
    hakoBin: path.join(pkg, 'bin', 'hako'),
    have: { runc: false, crun: false },
    work,
    bundle: variants[0].bundle,
    variants,
    rt: new Runtime({ root: roots.hako }),
    runs,
    warmup: envInt('BENCH_WARMUP', 5),
    libRuns: envInt('BENCH_LIB_RUNS', runs),
    memCount: envInt('BENCH_MEM_COUNT', 100),
    memAlone: envInt('BENCH_MEM_ALONE', 5),
    getpidN: envInt('BENCH_GETPID_N', 2_000_000),
    getpidReps: envInt('BENCH_GETPID_REPS', 5),
    tag: `hb${process.pid}`,
    devNull: fs.openSync('/dev/null', 'r+'),
    gapMs: envInt('BENCH_GAP_MS', 100),
    strippedEnv: JSON.parse(process.env[STRIPPED] ?? '{}') as Record<string, string>,
    profile: process.env.BENCH_PROFILE !== '0',
  };
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    const s = sweep(ctx);
    if (s.deleted || s.failed.length)
      log(`cleanup: deleted ${s.deleted}${s.failed.length ? `, failed: ${s.failed.join('; ')}` : ''}`);
    const cg = removeStrayCgroups(ctx.tag);
    if (cg.removed || cg.failed.length)
      log(
        `cleanup: removed ${cg.removed} stray cgroup directories${cg.failed.length ? `; failed: ${cg.failed.join('; ')}` : ''}`,
      );
    if (stateTmpfs) run('umount', [base]);
    fs.rmSync(base, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(sig, () => {
      log(`${sig}: cleaning up`);
      cleanupSync();
      process.exit(130);
    });

  const t0 = Date.now();
  try {
    const unavailable: Record<string, string> = {};
    for (const rt of ['runc', 'crun'] as const) {
      const why = probeRuntime(ctx, rt);
      ctx.have[rt] = !why;
      if (why) {
        unavailable[rt] = why;
        log(`${rt}: ${why}; left out`);
      }
    }
    const env: Record<string, string | number> = {
      kernel: os.release(),
      cpu: os.cpus()[0]?.model ?? '?',
      cpus: os.cpus().length,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      hako: (JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { version: string }).version,
      runc: ctx.have.runc ? firstLine('runc', ['--version']) : unavailable.runc,
      crun: ctx.have.crun ? firstLine('crun', ['--version']) : unavailable.crun,
      hyperfine: firstLine('hyperfine', ['--version']),
      busybox,
      cgroups: 'v1 hierarchies only (private mount namespace, /sys/fs/cgroup/unified unmounted)',
      stateRoots: `${base} (${
        stateTmpfs
          ? 'tmpfs'
          : (fs
              .readFileSync('/proc/self/mounts', 'utf8')
              .split('\n')
              .map((l) => l.split(' '))
              .filter((f) => base.startsWith(f[1] ?? '\0'))
              .sort((a, b) => b[1].length - a[1].length)[0]?.[2] ?? '?')
      })`,
      bundleOciVersion: BENCH_OCI_VERSION,
      strippedEnv: Object.keys(ctx.strippedEnv).join(' ') || 'none',
      loadavgAtStart: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    };
    log(
      `runs=${ctx.runs} lib=${ctx.libRuns} warmup=${ctx.warmup} mem=${ctx.memCount} getpid=${ctx.getpidN}x${ctx.getpidReps}; sections: ${[...sections].join(',')}`,
    );

    const startup: TimingRow[] = [];
    const cliRss: CliRssRow[] = [];
    const sporadic: TimingRow[] = [];
    const cliProfiles: CliProfile[] = [];
    const setup: TimingRow[] = [];
    if (sections.has('startup')) {
      startup.push(...benchReferences(ctx));
      const cli = await benchCliStartup(ctx, variants[0]);
      startup.push(...cli.rows);
      cliRss.push(...cli.rss);
      for (const v of variants) startup.push(...(await benchStartup(ctx, v)));
      // Idle-spaced runs for one variant: the one without seccomp, where the cgroup effect stands alone.
      sporadic.push(...(await benchSporadic(ctx, variants.find((v) => v.name === 'plain') ?? variants[0])));
      if (ctx.profile)
        for (const v of variants) {
          const p = profileCli(ctx, v);
          if (p) cliProfiles.push(p);
        }
    }
    if (sections.has('setup')) for (const v of variants) setup.push(...(await benchSetup(ctx, v)));
    const memory: MemRow[] = sections.has('memory') ? await benchMemory(ctx) : [];
    const seccomp: SeccompResults | null = sections.has('seccomp') ? await benchSeccomp(ctx) : null;
    // The soak: the plain variant (no seccomp compile per run), so the runs measure the runtime itself.
    const soakRuns = envInt('BENCH_SOAK_RUNS', 10_000);
    const soak: SoakResults | null =
      sections.has('soak') && soakRuns > 0
        ? await benchSoak(ctx, soakRuns, variants.find((v) => v.name === 'plain') ?? variants[0])
        : null;
    env.loadavgAtEnd = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const final = await sweepAsync(ctx, ctx.rt);
    const stray = removeStrayCgroups(ctx.tag);
    const ratios: Ratio[] = [];
    const targets: Target[] = [];
    targets.push(...evaluateCli(startup, cliRss));
    for (const v of variants) {
      const e = evaluate(v.name, startup, setup, memory, sporadic);
      ratios.push(...e.ratios);
      targets.push(...e.targets);
    }
    const results: BenchResults = {
      date: new Date().toISOString(),
      env,
      config: {
        BENCH_RUNS: ctx.runs,
        BENCH_LIB_RUNS: ctx.libRuns,
        BENCH_WARMUP: ctx.warmup,
        BENCH_MEM_COUNT: ctx.memCount,
        BENCH_MEM_ALONE: ctx.memAlone,
        BENCH_GETPID_N: ctx.getpidN,
        BENCH_GETPID_REPS: ctx.getpidReps,
        BENCH_GAP_MS: ctx.gapMs,
        BENCH_SOAK_RUNS: soak ? soakRuns : 0,
        durationS: Math.round((Date.now() - t0) / 1000),
      },
      variants: variants.map((v) => ({
        name: v.name,
        description: v.description,
        seccompRules: v.bundle.spec.linux?.seccomp?.syscalls?.length ?? 0,
      })),
      startup,
      cliRss,
      sporadic,
      cliProfiles,
      setup,
      memory,
      seccomp,
      ratios,
      targets,
      cleanup: {
        leftoverDeleted: final.deleted,
        strayCgroups: stray.removed,
        failed: [...final.failed, ...stray.failed],
      },
    };
    const outDir = path.join(pkg, 'bench', 'results');
    writeResults(outDir, results);
    if (soak) {
      // Its own files as well: a soak-only run (BENCH_SECTIONS=soak) rewrites latest.* with little else in them.
      fs.writeFileSync(path.join(outDir, 'soak.json'), JSON.stringify(soak, null, 2) + '\n');
      fs.writeFileSync(
        path.join(outDir, 'soak.md'),
        `# hako soak — ${results.date}\n\n${Object.entries(env)
          .map(([k, v]) => `${k}: ${v}`)
          .join(' · ')}\n${soakMarkdown(soak)}`,
      );
      fs.appendFileSync(path.join(outDir, 'latest.md'), soakMarkdown(soak));
    }
    if (sections.has('policy')) {
      // The access-control server: a notified syscall's round trip and throughput (bench/policy-bench.ts).
      const { benchPolicy } = require('./policy-bench') as typeof import('./policy-bench');
      const policy = await benchPolicy({}).catch((e: Error): import('./policy-bench').PolicyBenchResults => ({
        kernel: '',
        cpus: 0,
        rows: [{ name: `failed: ${e.message}`, n: 0 }],
      }));
      fs.writeFileSync(path.join(outDir, 'policy.json'), JSON.stringify(policy, null, 2) + '\n');
      const rows = policy.rows.map(
        (r) =>
          `| ${r.name} | ${r.n} | ${r.p50?.toFixed(1) ?? ''} | ${r.p99?.toFixed(1) ?? ''} | ${r.perSecond ? Math.round(r.perSecond) : ''} | ${r.note ?? ''} |`,
      );
      fs.appendFileSync(
        path.join(outDir, 'latest.md'),
        [
          '',
          '## 5. Policy server (seccomp notify)',
          '',
          '| case | n | p50 (µs) | p99 (µs) | per second | note |',
          '|---|---:|---:|---:|---:|---|',
          ...rows,
          '',
        ].join('\n'),
      );
      log(`policy: ${rows.length} rows written to bench/results/policy.json`);
    }

    if (sections.has('containerd')) {
      // containerd driving hako's shim, runc's shim with runc, and runc's shim with hako's CLI (bench/containerd-bench.ts).
      const { benchContainerd, containerdMarkdown, writeContainerdResults } =
        require('./containerd-bench') as typeof import('./containerd-bench');
      const cr = await benchContainerd(pkg).catch(
        (e: Error) => ({ skipped: `failed: ${e.message}` }) as import('./containerd-bench').ContainerdBenchResults,
      );
      writeContainerdResults(pkg, cr);
      fs.appendFileSync(path.join(outDir, 'latest.md'), containerdMarkdown(cr));
      log(`containerd: written to bench/results/containerd.{json,md}`);
    }

    process.stdout.write(markdown(results) + '\n');
    process.stdout.write('Ratios:\n');
    for (const r of ratios)
      process.stdout.write(`  [${r.variant}] ${r.name}: ${fmt(r.value, 2)}${r.detail ? ` (${r.detail})` : ''}\n`);
    process.stdout.write('Targets:\n');
    for (const t of targets)
      process.stdout.write(
        `  [${t.pass === null ? 'n/a ' : t.pass ? 'pass' : 'FAIL'}] [${t.variant}] ${t.name}: ${t.detail}\n`,
      );
    if (soak)
      process.stdout.write(
        `  [${soak.flat ? 'pass' : 'FAIL'}] [${soak.variant}] soak, ${soak.runs} library runs in one process: ${soak.verdict}\n`,
      );
    process.stdout.write(`\nWrote ${path.join(outDir, 'latest.{json,md,svg}')} in ${results.config.durationS} s\n`);
    return 0;
  } finally {
    cleanupSync();
  }
}

async function main(): Promise<number> {
  if ((process.getuid?.() ?? 0) !== 0) throw new Error('the bench creates containers: run it as root');
  if (!process.env[INNER]) {
    ensureTools();
    if (!which('unshare')) throw new Error('unshare (util-linux) is required');
    return reexec();
  }
  return inner();
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(`bench: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  },
);
