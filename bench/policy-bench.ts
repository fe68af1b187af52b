// Policy server numbers: round-trip latency of a notified syscall answered by the server (p50, p99), next
// to the same syscall unfiltered; throughput in notifications per second (unpinned, and with the server, its
// helper and the container all on one CPU); and the cost of an emulated mount + umount (helper fork,
// namespace joins, new mount API). The server runs as `hako policy-server` would, in its own process.
//
// Run alone: node dist/bench/policy-bench.js   (root, gcc; BENCH_POLICY_N, BENCH_POLICY_FLOOD, BENCH_POLICY_MOUNTS)
// From the bench runner: `await benchPolicy()` returns the rows.
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../lib/native/addon';
import { ARCHES, nativeScmpArch } from '../lib/seccomp/arch';
import { HAKO_BIN } from '../test/helpers/env';
import { attackProgram, policyBundle } from '../test/policy-env';

export interface PolicyBenchRow {
  name: string;
  n: number;
  /** microseconds */
  p50?: number;
  p99?: number;
  mean?: number;
  /** notifications per second */
  perSecond?: number;
  note?: string;
}

export interface PolicyBenchResults {
  kernel: string;
  cpus: number;
  rows: PolicyBenchRow[];
  /**
   * Where a denied call's round trip goes (a separate run with HAKO_NOTIFY_TRACE=1, timestamps in notify_listener.cc, notify_events.cc):
   * the caller's round trip, the server's stages (p50/p90/mean µs), and the rest (kernel: waking the server's
   * thread and, after NOTIF_SEND, the caller; scheduling).
   */
  breakdown?: {
    n: number;
    roundTripP50: number;
    stages: [string, number, number, number][];
    serverP50Sum: number;
    kernelAndSchedulingP50: number;
  };
  /** The load average when the policy bench started (the host is shared). */
  loadavg?: number[];
}

export interface PolicyBenchOptions {
  /** Calls per latency measurement (default 20000). */
  n?: number;
  /** Notifications per throughput measurement (default 100000). */
  floodN?: number;
  /** Emulated mount + umount pairs (default 200). */
  mounts?: number;
  log?: (msg: string) => void;
}

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : dflt;
}

const haveTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;

function wrap(cmd: string[], cpu: number | undefined): string[] {
  return cpu !== undefined && haveTaskset ? ['taskset', '-c', String(cpu), ...cmd] : cmd;
}

function startServer(
  socket: string,
  policy: string,
  opts: { cpu?: number; sync?: boolean; trace?: boolean },
): Promise<ChildProcess> {
  const root = packageRoot();
  const code =
    `const {policyServerCommand}=require(${JSON.stringify(path.join(root, 'dist/lib/cli/verbs/policy.js'))});` +
    `const {createLogger}=require(${JSON.stringify(path.join(root, 'dist/lib/log.js'))});` +
    `policyServerCommand(process.argv.slice(1), createLogger({stderr:true})).then((c)=>process.exit(c),(e)=>{console.error(e.message);process.exit(1)})`;
  const args = ['-e', code, '--', '--socket', socket, '--policy', policy, ...(opts.sync ? ['--sync-wakeup'] : [])];
  const [cmd, ...rest] = wrap([process.execPath, ...args], opts.cpu);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, rest, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: opts.trace ? { ...process.env, HAKO_NOTIFY_TRACE: '1' } : process.env,
    });
    let err = '';
    p.stderr!.on('data', (d) => {
      err += d;
      if (/listening on/.test(err)) resolve(p);
    });
    p.on('exit', () => reject(new Error(`policy server exited: ${err}`)));
  });
}

/** Stop the server; its stderr after the stop (the trace line, with HAKO_NOTIFY_TRACE). */
async function stopServer(p: ChildProcess): Promise<string> {
  p.removeAllListeners('exit');
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
  return err;
}

function runContainer(root: string, bundle: string, id: string, cpu?: number): Promise<Record<string, number>> {
  const [cmd, ...rest] = wrap([process.execPath, HAKO_BIN, '--root', root, 'run', '--bundle', bundle, id], cpu);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    p.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) return reject(new Error(`container ${id}: exit ${code}: ${out}${err}`));
      resolve(JSON.parse(line) as Record<string, number>);
    });
  });
}

const us = (ns: number) => Math.round(ns / 10) / 100;
const r2 = (x: number) => Math.round(x * 100) / 100;

export async function benchPolicy(o: PolicyBenchOptions = {}): Promise<PolicyBenchResults> {
  const log = o.log ?? ((m: string) => process.stderr.write(`[policy-bench] ${m}\n`));
  const n = o.n ?? envInt('BENCH_POLICY_N', 20000);
  const floodN = o.floodN ?? envInt('BENCH_POLICY_FLOOD', 100000);
  const mounts = o.mounts ?? envInt('BENCH_POLICY_MOUNTS', 200);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-policy-bench-'));
  fs.chmodSync(work, 0o755);
  const root = path.join('/run', `hako-policy-bench-${process.pid}`);
  const socket = path.join(work, 'policy.sock');
  const policy = path.join(work, 'policy.yaml');
  fs.writeFileSync(
    policy,
    'profiles:\n  - match: {ids: ["pb-*"]}\n    mount:\n      - types: [tmpfs]\n        targets: [/foo]\n        limits: {size: 16m}\n    umount:\n      - targets: [/foo]\n',
  );
  attackProgram();
  const umount2 = ARCHES[nativeScmpArch()].table.umount2;
  const rows: PolicyBenchRow[] = [];
  let breakdown: PolicyBenchResults['breakdown'];
  const loadavg = os.loadavg().map((x) => Math.round(x * 100) / 100);
  let seq = 0;
  const id = () => `pb-${process.pid}-${++seq}`;
  const served = (args: string[]) => policyBundle(['/bin/attack', ...args], { socket }).dir;
  try {
    // Unfiltered: the same call in a container without the notify filter (the kernel answers ENOENT).
    const plain = policyBundle(['/bin/attack', 'bench', String(n), String(umount2)], {
      socket,
      mutate: (s) => delete s.linux!.seccomp,
    }).dir;
    let r = await runContainer(root, plain, id());
    rows.push({ name: 'umount2, unfiltered', n, p50: us(r.p50), p99: us(r.p99), mean: us(r.mean) });
    log(`unfiltered: p50 ${us(r.p50)} us`);

    for (const v of [
      { name: 'umount2, notified, denied by the server', sync: false, cpu: undefined as number | undefined },
      { name: 'umount2, notified, denied (SYNC_WAKE_UP)', sync: true, cpu: undefined },
      { name: 'umount2, notified, denied (server + container on 1 CPU)', sync: false, cpu: 0 },
    ]) {
      const srv = await startServer(socket, policy, { cpu: v.cpu, sync: v.sync });
      try {
        r = await runContainer(root, served(['bench', String(n), String(umount2)]), id(), v.cpu);
        rows.push({ name: v.name, n, p50: us(r.p50), p99: us(r.p99), mean: us(r.mean) });
        log(`${v.name}: p50 ${us(r.p50)} us, p99 ${us(r.p99)} us`);
        for (const threads of [1, 4]) {
          const f = await runContainer(root, served(['flood', String(floodN), String(threads)]), id(), v.cpu);
          const perSecond = Math.round(f.n / (f.ns / 1e9));
          rows.push({
            name: `throughput, ${threads} thread${threads > 1 ? 's' : ''}${v.cpu !== undefined ? ', 1 CPU' : v.sync ? ', SYNC_WAKE_UP' : ''}`,
            n: f.n,
            perSecond,
            mean: Math.round(f.ns / f.n / 10) / 100,
          });
          log(`flood ${threads} thread(s)${v.cpu !== undefined ? ' on 1 CPU' : ''}: ${perSecond}/s`);
        }
        if (!v.sync && v.cpu === undefined) {
          // A container no profile matches: every call is denied on the server's native thread (fast-deny.ts).
          const nid = `pn-${process.pid}-${++seq}`;
          const nat = await runContainer(root, served(['bench', String(n), String(umount2)]), nid);
          rows.push({
            name: 'umount2, notified, denied on the native thread (no profile matches)',
            n,
            p50: us(nat.p50),
            p99: us(nat.p99),
            mean: us(nat.mean),
          });
          const natf = await runContainer(root, served(['flood', String(floodN), '1']), `pn-${process.pid}-${++seq}`);
          rows.push({
            name: 'throughput, 1 thread, denied on the native thread',
            n: natf.n,
            perSecond: Math.round(natf.n / (natf.ns / 1e9)),
            mean: Math.round(natf.ns / natf.n / 10) / 100,
          });
          log(`denied natively: p50 ${us(nat.p50)} us, ${Math.round(natf.n / (natf.ns / 1e9))}/s`);
          const m = await runContainer(root, served(['benchmount', String(mounts), '/foo']), id());
          rows.push({
            name: 'mount tmpfs, emulated (helper fork + setns + fsmount)',
            n: mounts,
            p50: us(m.mountP50),
            p99: us(m.mountP99),
            note: m.fails ? `${m.fails} failures` : undefined,
          });
          rows.push({ name: 'umount2, emulated', n: mounts, p50: us(m.umountP50), p99: us(m.umountP99) });
          log(`emulated mount: p50 ${us(m.mountP50)} us; umount p50 ${us(m.umountP50)} us`);
        }
      } finally {
        await stopServer(srv);
      }
    }

    // The breakdown: the same denied calls, with timestamps at each stage of the server (HAKO_NOTIFY_TRACE).
    const srv = await startServer(socket, policy, { trace: true });
    let traced: Record<string, number> | undefined;
    try {
      traced = await runContainer(root, served(['bench', String(n), String(umount2)]), id());
    } finally {
      const err = await stopServer(srv);
      const line = /hako policy-server: trace (\{.*\})/.exec(err)?.[1];
      if (line && traced) {
        const t = JSON.parse(line) as { n: number; stages: [string, number, number, number][] };
        const sum = t.stages.reduce((a, s) => a + s[1], 0);
        breakdown = {
          n: t.n,
          roundTripP50: us(traced.p50),
          stages: t.stages.map(([k, a, b, c]) => [k, r2(a), r2(b), r2(c)]),
          serverP50Sum: r2(sum),
          kernelAndSchedulingP50: r2(us(traced.p50) - sum),
        };
        log(
          `breakdown: round trip p50 ${us(traced.p50)} us = server ${r2(sum)} us (${t.stages.map((s) => `${s[0]} ${r2(s[1])}`).join(', ')}) + kernel/scheduling ${r2(us(traced.p50) - sum)} us`,
        );
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { kernel: os.release(), cpus: os.cpus().length, rows, breakdown, loadavg };
}

if (require.main === module) {
  benchPolicy().then(
    (res) => {
      console.table(
        res.rows.map((r) => ({
          ...r,
          p50: r.p50 ?? '',
          p99: r.p99 ?? '',
          mean: r.mean ?? '',
          perSecond: r.perSecond ?? '',
          note: r.note ?? '',
        })),
      );
      console.log(JSON.stringify(res));
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
