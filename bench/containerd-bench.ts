// The containerd section of `npm run bench` (also alone: `node dist/bench/containerd-bench.js`): one containerd of
// its own, one image and snapshotter, three ways to run a container, measured side by side, interleaved:
//   (1) hako's shim      ctr run --rm --runtime io.containerd.hako.v2 IMAGE id true
//   (2) runc's shim+runc ctr run --rm IMAGE id true
//   (3) runc's shim+hako ctr run --rm --runc-binary bin/hako IMAGE id true
// each with a new shim per container, (4) and (5) as (1) and (2) with the group's shim already running (a pod),
//   (6) the floor       ctr run --rm --runtime io.containerd.hakonull.v2 IMAGE id true
//   (7) as (1), through a second containerd with HAKO_SHIM_SPARE=1 in its environment: each new shim is the spare
//       the previous one started (lib/shim/spare.ts), when the launcher claims spares (src-native/launcher)
// with the null shim (bench/null-shim.ts: a measuring instrument that answers the Task API at once and runs no
// container, one resident server for all): what containerd and ctr cost with a shim that does nothing. runc's time
// over the floor's is the best ratio any shim could reach against runc's.
// plus the RPC times inside hako's shim (Create, Start, Wait, Delete, from its -debug log), and the memory (RSS, PSS)
// of all shim processes with BENCH_CTR_MEM `sleep` containers running, in one group (as a pod's containers are)
// and, for runc's shim, one shim per container (its default outside a pod).
// and the idle spare's. Writes bench/results/containerd.{json,md}. Knobs: BENCH_CTR_RUNS (20), BENCH_CTR_MEM (20),
// BENCH_CTR_IMAGE_TAR (default $HAKO_CLIENTS_WORK/busybox-docker.tar, made by scripts/ci-clients.sh),
// BENCH_SHIM_LAUNCHER (the containerd-shim-hako-v2 both containerds run; default bin/containerd-shim-hako-v2).
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { installNullShim, NULL_RUNTIME } from './null-shim';
import { benchEnv, envInt, fmt, log, procMem, stats, type Stats } from './util';
import { pidsByArgv } from '../lib/runtime/proc';

const NS = 'hako-bench';
const IMAGE = 'localhost/busybox:latest';
const SHIM_RUNTIME = 'io.containerd.hako.v2';

export interface ContainerdBenchResults {
  date: string;
  containerd: string;
  runs: number;
  loadavg: string;
  /** Variables left out of containerd's environment, so of every shim's and runtime's (bench/util.ts benchEnv). */
  strippedEnv: string[];
  wall: { name: string; ms: Stats }[];
  ratios: { name: string; value: number }[];
  rpc: { method: string; ms: Stats }[];
  memory: { name: string; containers: number; shims: number; rssMb: number; pssMb: number }[];
  targets: { name: string; pass: boolean; detail: string }[];
  skipped?: string;
}

function sh(cmd: string, args: string[], timeoutMs = 60_000): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
    killSignal: 'SIGKILL',
  });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function shimPids(kind: 'hako' | 'runc'): number[] {
  return pidsByArgv((argv) => {
    if (!argv.includes(NS) || argv.includes('start') || argv.includes('delete')) return false;
    return kind === 'hako'
      ? argv.some((a) => a.endsWith('shim/main.js') || a.endsWith('bin/hako-shim.js'))
      : argv[0].endsWith('containerd-shim-runc-v2');
  });
}

interface Containerd {
  sock: string;
  log: string;
  proc: ChildProcess;
}

/** A containerd of the bench's own in <dir>/<name> (its state, socket and log), with <dir>/bin on its PATH. */
function startContainerd(dir: string, name: string, env: NodeJS.ProcessEnv): Containerd {
  const home = path.join(dir, name);
  fs.mkdirSync(home);
  const sock = path.join(home, 'containerd.sock');
  fs.writeFileSync(
    path.join(home, 'config.toml'),
    // debug: the hako shim then logs each RPC's duration (the RPC times below)
    `version = 2\nroot = "${home}/root"\nstate = "${home}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n[timeouts]\n  "io.containerd.timeout.shim.cleanup" = "60s"\n[debug]\n  level = "debug"\n`,
  );
  const log = path.join(home, 'containerd.log');
  const logFd = fs.openSync(log, 'a');
  const proc = spawn('containerd', ['--config', path.join(home, 'config.toml')], {
    stdio: ['ignore', logFd, logFd],
    detached: true,
    env: { ...env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` },
  });
  fs.closeSync(logFd);
  return { sock, log, proc };
}

/** Spare shim processes (`... -address SOCK spare`, lib/shim/spare.ts) of containerd `sock`, claimed or waiting. */
function sparePids(sock: string): number[] {
  return pidsByArgv((argv) => {
    const i = argv.indexOf('-address');
    return i > 0 && argv[i + 1] === sock && argv[i + 2] === 'spare';
  });
}

const RPC_METHODS = ['Create', 'Start', 'Wait', 'Delete', 'State', 'Shutdown'];

/** Each method's time and its steps as hako's shims logged them with -debug (containerd at debug level). */
function rpcTimes(text: string, methods: string[], prefix: string): { method: string; ms: Stats }[] {
  const rows: { method: string; ms: Stats }[] = [];
  for (const method of methods) {
    const v = [...text.matchAll(new RegExp(`hako-shim\\[\\d+\\] ${method} ([\\d.]+) ms`, 'g'))].map((m) =>
      Number(m[1]),
    );
    if (v.length) rows.push({ method: `${prefix}${method}`, ms: stats(v) });
    // The shim's steps of that call (lib/shim/step-timer.ts): "Create <id>: rootfs 0.52, io 0.11, ... ms".
    const steps = new Map<string, number[]>();
    for (const m of text.matchAll(new RegExp(`hako-shim\\[\\d+\\] ${method} [^:\\s]+: (.*) ms\\n`, 'g')))
      for (const step of m[1].split(', ')) {
        const at = step.lastIndexOf(' ');
        const name = `${prefix}${method}: ${step.slice(0, at)}`;
        steps.set(name, [...(steps.get(name) ?? []), Number(step.slice(at + 1))]);
      }
    for (const [name, ms] of steps) rows.push({ method: name, ms: stats(ms) });
  }
  return rows;
}

export async function benchContainerd(pkg: string): Promise<ContainerdBenchResults> {
  const runs = envInt('BENCH_CTR_RUNS', 20);
  const memCount = envInt('BENCH_CTR_MEM', 20);
  const tar =
    process.env.BENCH_CTR_IMAGE_TAR ??
    path.join(process.env.HAKO_CLIENTS_WORK ?? '/tmp/hako-clients', 'busybox-docker.tar');
  const res: ContainerdBenchResults = {
    date: new Date().toISOString(),
    containerd: '',
    runs,
    loadavg: '',
    strippedEnv: [],
    wall: [],
    ratios: [],
    rpc: [],
    memory: [],
    targets: [],
  };
  if (!sh('containerd', ['--version']).out || !fs.existsSync(tar)) {
    res.skipped = `needs containerd and ${tar} (bash scripts/ci-clients.sh)`;
    return res;
  }
  res.containerd = sh('containerd', ['--version']).out.trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-bench-ctr-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  const launcher = process.env.BENCH_SHIM_LAUNCHER || path.join(pkg, 'bin', 'containerd-shim-hako-v2');
  fs.symlinkSync(launcher, path.join(dir, 'bin', 'containerd-shim-hako-v2'));
  // containerd passes its environment to every shim it starts (and runc's shim to the runtime it runs): without
  // NODE_EXTRA_CA_CERTS and the like here, as bench/run.ts runs the other sections, when this runs on its own too.
  const { env: cdEnv, stripped } = benchEnv();
  res.strippedEnv = stripped;
  const main = startContainerd(dir, 'main', cdEnv);
  // The spare case's own containerd: HAKO_SHIM_SPARE=1 in its environment, so in every hako shim's it starts.
  const spared = startContainerd(dir, 'spare', { ...cdEnv, HAKO_SHIM_SPARE: '1' });
  const cds = [main, spared];
  const logFile = main.log;
  const sock = main.sock;
  const ctr = (args: string[], t = 60_000, a = sock) => sh('ctr', ['-a', a, '-n', NS, ...args], t);
  let nullServer: ChildProcess | undefined;
  try {
    nullServer = await installNullShim(path.join(dir, 'bin'), path.join(dir, 'null-shim.sock'));
    for (const c of cds) {
      for (let i = 0; i < 300 && ctr(['version'], 2000, c.sock).status !== 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      if (ctr(['image', 'import', tar], 60_000, c.sock).status !== 0) throw new Error('ctr image import failed');
    }
    const hako = path.join(pkg, 'bin', 'hako');
    // A new id is a new group, so (1)-(3) each start a shim per container (ctr's default). In a pod the group's shim
    // is already running (the sandbox holds it): (4) and (5) run in a group whose anchor container keeps it alive.
    const inGroup = (g: string) => ['--annotation', `io.containerd.runc.v2.group=${g}`];
    const ways: { name: string; args: string[]; address?: string }[] = [
      { name: 'hako shim (io.containerd.hako.v2), new shim per container', args: ['--runtime', SHIM_RUNTIME] },
      { name: 'runc shim + runc, new shim per container', args: [] },
      { name: 'runc shim + hako CLI, new shim per container', args: ['--runc-binary', hako] },
      {
        name: 'hako shim, resident (a pod: group with a running sandbox)',
        args: ['--runtime', SHIM_RUNTIME, ...inGroup('wall-h')],
      },
      { name: 'runc shim + runc, resident (same)', args: inGroup('wall-r') },
      {
        name: 'floor: null shim (bench/null-shim.ts, answers at once, runs nothing), resident',
        args: ['--runtime', NULL_RUNTIME],
      },
      {
        name: 'hako shim, new shim per container, with a spare (HAKO_SHIM_SPARE=1)',
        args: ['--runtime', SHIM_RUNTIME],
        address: spared.sock,
      },
    ];
    for (const [id, args] of [
      ['anchor-h', ways[3].args],
      ['anchor-r', ways[4].args],
    ] as const)
      if (ctr(['run', '-d', ...args, IMAGE, id, 'sleep', '3600']).status !== 0)
        throw new Error(`${id}: ctr run -d failed`);
    const samples = ways.map(() => [] as number[]);
    const logStart = fs.statSync(logFile).size;
    for (let i = -2; i < runs; i++) {
      for (const [w, way] of ways.entries()) {
        const id = `b${w}-${i + 2}`;
        const t0 = process.hrtime.bigint();
        const r = ctr(['run', '--rm', ...way.args, IMAGE, id, 'true'], 60_000, way.address);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (r.status !== 0) throw new Error(`${way.name}: ctr run failed: ${r.out}`);
        if (i >= 0) samples[w].push(ms); // two warm-up rounds
      }
    }
    res.wall = ways.map((w, i) => ({ name: w.name, ms: stats(samples[i]) }));
    res.ratios = [
      {
        name: '(2) runc shim + runc / (1) hako shim, new shims (median wall)',
        value: res.wall[1].ms.median / res.wall[0].ms.median,
      },
      {
        name: '(3) runc shim + hako CLI / (1) hako shim, new shims (median wall)',
        value: res.wall[2].ms.median / res.wall[0].ms.median,
      },
      {
        name: '(5) runc shim + runc / (4) hako shim, resident shims (median wall)',
        value: res.wall[4].ms.median / res.wall[3].ms.median,
      },
      {
        name: '(2) runc shim + runc / (7) hako shim with a spare, new shims (median wall)',
        value: res.wall[1].ms.median / res.wall[6].ms.median,
      },
      {
        name: 'best any shim could reach, new shims: (2) runc shim + runc / (6) floor (median wall)',
        value: res.wall[1].ms.median / res.wall[5].ms.median,
      },
      {
        name: 'best any shim could reach, resident shims: (5) runc shim + runc / (6) floor (median wall)',
        value: res.wall[4].ms.median / res.wall[5].ms.median,
      },
    ];
    for (const id of ['anchor-h', 'anchor-r']) {
      ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      ctr(['task', 'delete', '-f', id]);
      ctr(['container', 'delete', id]);
    }
    res.targets.push({
      name: '(1) hako shim at least 2x faster than (2) runc shim + runc, new shims (ctr run --rm true)',
      pass: res.ratios[0].value >= 2,
      detail: `${fmt(res.ratios[0].value)}x (with a spare, (7): ${fmt(res.ratios[3].value)}x); the floor (6), ${fmt(res.wall[5].ms.median, 1)} ms, allows at most ${fmt(res.ratios[4].value)}x`,
    });
    res.targets.push({
      name: '(4) hako shim at least 2x faster than (5) runc shim + runc, resident shims',
      pass: res.ratios[2].value >= 2,
      detail: `${fmt(res.ratios[2].value)}x; the floor (6) allows at most ${fmt(res.ratios[5].value)}x`,
    });
    res.rpc.push(...rpcTimes(fs.readFileSync(logFile, 'utf8').slice(logStart), RPC_METHODS, ''));
    // The claim (read to answered) and the claimed spares' first (and only) Create, from the spare case's
    // containerd's log.
    res.rpc.push(...rpcTimes(fs.readFileSync(spared.log, 'utf8'), ['Claim', 'Create'], '(7) with a spare: '));

    // The spare waiting for the next new group of the spare case's containerd (the one its last shim started).
    const waiting = async (): Promise<number[]> => {
      for (let i = 0; i < 100; i++) {
        // A claimed one works in its bundle; a waiting one in /.
        const pids = sparePids(spared.sock).filter((p) => {
          try {
            return fs.readlinkSync(`/proc/${p}/cwd`) === '/';
          } catch {
            return false;
          }
        });
        if (pids.length) return pids;
        await new Promise((r) => setTimeout(r, 100));
      }
      return [];
    };
    await new Promise((r) => setTimeout(r, 6000)); // past its code cache write (bin/hako-shim.js, 5 s)
    const spareMems = (await waiting()).map(procMem);
    res.memory.push({
      name: 'hako shim spare, idle (HAKO_SHIM_SPARE=1: one per containerd)',
      containers: 0,
      shims: spareMems.length,
      rssMb: spareMems.reduce((a, m) => a + m.rssKb, 0) / 1024,
      pssMb: spareMems.reduce((a, m) => a + m.pssKb, 0) / 1024,
    });

    // Memory: memCount sleeping containers, then the shims' RSS and PSS.
    const memCase = async (name: string, kind: 'hako' | 'runc', args: (i: number) => string[]) => {
      const ids: string[] = [];
      try {
        for (let i = 0; i < memCount; i++) {
          const id = `m-${kind}-${name.length}-${i}`;
          ids.push(id);
          const r = ctr(['run', '-d', ...args(i), IMAGE, id, 'sleep', '3600']);
          if (r.status !== 0) throw new Error(`${name}: ${r.out}`);
        }
        await new Promise((r) => setTimeout(r, 1000));
        const mems = shimPids(kind).map(procMem);
        res.memory.push({
          name,
          containers: memCount,
          shims: mems.length,
          rssMb: mems.reduce((a, m) => a + m.rssKb, 0) / 1024,
          pssMb: mems.reduce((a, m) => a + m.pssKb, 0) / 1024,
        });
      } finally {
        for (const id of ids) ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        for (const id of ids) {
          ctr(['task', 'delete', '-f', id]);
          ctr(['container', 'delete', id]);
        }
      }
    };
    const group = (g: string) => () => ['--annotation', `io.containerd.runc.v2.group=${g}`];
    await memCase('hako shim, one group (a pod)', 'hako', () => ['--runtime', SHIM_RUNTIME, ...group('hg')()]);
    await memCase('runc shim + runc, one group (a pod)', 'runc', group('rg'));
    await memCase('runc shim + runc, a shim per container', 'runc', () => []);
    const [, h, rg, r1] = res.memory;
    res.targets.push({
      name: `shim memory, ${memCount} sleep containers: hako (one group) below runc (a shim per container), RSS and PSS`,
      pass: h.pssMb < r1.pssMb && h.rssMb < r1.rssMb,
      detail: `PSS ${fmt(h.pssMb, 1)} vs ${fmt(r1.pssMb, 1)} MB, RSS ${fmt(h.rssMb, 1)} vs ${fmt(r1.rssMb, 1)} MB`,
    });
    res.targets.push({
      name: `shim memory, ${memCount} sleep containers, both in one group: hako below runc (PSS)`,
      pass: h.pssMb < rg.pssMb,
      detail: `${fmt(h.pssMb, 1)} vs ${fmt(rg.pssMb, 1)} MB`,
    });
  } finally {
    res.loadavg = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    // Every container of the namespace goes before containerd does (a shim told to leave leaves its containers).
    for (const id of ctr(['container', 'ls', '-q'])
      .out.trim()
      .split('\n')
      .filter((l) => /^[\w.-]+$/.test(l))) {
      ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id]);
      ctr(['task', 'delete', '-f', id]);
      ctr(['container', 'delete', id]);
    }
    nullServer?.kill('SIGTERM');
    for (const c of cds) {
      if (c.sock !== sock)
        for (const id of ctr(['container', 'ls', '-q'], 60_000, c.sock)
          .out.trim()
          .split('\n')
          .filter((l) => /^[\w.-]+$/.test(l))) {
          ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], 60_000, c.sock);
          ctr(['task', 'delete', '-f', id], 60_000, c.sock);
          ctr(['container', 'delete', id], 60_000, c.sock);
        }
      if (c.proc.pid) {
        try {
          process.kill(c.proc.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        await new Promise((r) => (c.proc.exitCode !== null ? r(null) : c.proc.once('exit', r)));
      }
      for (const p of sparePids(c.sock)) process.kill(p, 'SIGTERM');
    }
    for (const p of [...shimPids('hako'), ...shimPids('runc')]) process.kill(p, 'SIGTERM');
    for (const m of fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m?.startsWith(dir + '/'))
      .reverse())
      sh('umount', ['-l', m]);
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      log(`containerd bench: ${dir} left: ${(e as Error).message}`);
    }
  }
  return res;
}

export function containerdMarkdown(r: ContainerdBenchResults): string {
  if (r.skipped) return `\n## containerd\n\nSkipped: ${r.skipped}\n`;
  const row = (s: Stats) => `${fmt(s.median, 1)} | ${fmt(s.mean, 1)} | ${fmt(s.min, 1)} | ${fmt(s.max, 1)}`;
  return [
    '',
    `## containerd (${r.containerd}; ${r.runs} runs each, interleaved; load ${r.loadavg})`,
    '',
    r.strippedEnv?.length
      ? `containerd, its shims and runtimes ran without ${r.strippedEnv.join(', ')} (set here; BENCH_KEEP_ENV=1 keeps them).`
      : 'containerd, its shims and runtimes ran with the environment as found (no NODE_EXTRA_CA_CERTS or NODE_OPTIONS was set, or BENCH_KEEP_ENV=1).',
    '',
    '`ctr run --rm IMAGE id true`, wall time (ms):',
    '',
    '| way | median | mean | min | max |',
    '|---|---:|---:|---:|---:|',
    ...r.wall.map((w, i) => `| (${i + 1}) ${w.name} | ${row(w.ms)} |`),
    '',
    ...r.ratios.map((x) => `- ${x.name}: **${fmt(x.value)}x**`),
    '',
    "RPCs as hako's shim sees them, and their steps (ms):",
    '',
    '| method | median | mean | min | max |',
    '|---|---:|---:|---:|---:|',
    ...r.rpc.map((x) => `| ${x.method} | ${row(x.ms)} |`),
    '',
    'Shim processes with running `sleep` containers:',
    '',
    '| case | containers | shim processes | RSS (MB) | PSS (MB) |',
    '|---|---:|---:|---:|---:|',
    ...r.memory.map((m) => `| ${m.name} | ${m.containers} | ${m.shims} | ${fmt(m.rssMb, 1)} | ${fmt(m.pssMb, 1)} |`),
    '',
    ...r.targets.map((t) => `- [${t.pass ? 'pass' : 'FAIL'}] ${t.name}: ${t.detail}`),
    '',
  ].join('\n');
}

export function writeContainerdResults(pkg: string, r: ContainerdBenchResults): void {
  const out = path.join(pkg, 'bench', 'results');
  fs.writeFileSync(path.join(out, 'containerd.json'), JSON.stringify(r, null, 2) + '\n');
  fs.writeFileSync(path.join(out, 'containerd.md'), `# hako containerd bench — ${r.date}\n${containerdMarkdown(r)}`);
}

if (require.main === module) {
  const pkg = path.join(__dirname, '..', '..');
  benchContainerd(pkg).then(
    (r) => {
      writeContainerdResults(pkg, r);
      process.stdout.write(containerdMarkdown(r) + '\n');
    },
    (e: Error) => {
      log(`containerd bench failed: ${e.stack}`);
      process.exit(1);
    },
  );
}
