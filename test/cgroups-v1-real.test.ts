// The v1 (hybrid) manager on this machine's real cgroup hierarchies: processes are moved into a
// test-unique cgroup and the limits are checked by their effect (forks refused, OOM kill, frozen tasks).
// Needs root and a v1 or hybrid host; skipped otherwise.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { HakoError } from '../lib/errors';
import {
  createCgroupManager,
  DEFAULT_ALLOWED_DEVICES,
  detectCgroupLayout,
  encodeEvent,
  parseProcCgroup,
  statsEvent,
  watchOom,
  type CgroupManager,
} from '../lib/cgroups';

const layout = (() => {
  try {
    return detectCgroupLayout();
  } catch {
    return undefined;
  }
})();
const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : !layout || layout.mode === 'v2'
      ? 'needs a cgroup v1 or hybrid host'
      : false;

const unique = (tag: string): string => `hako-test-${tag}-${process.pid}-${Date.now().toString(36)}`;
const MiB = 1 << 20;

interface Child {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  out: () => string;
  err: () => string;
}

function start(cmd: string, args: string[]): Child {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (res) => proc.once('close', (code, signal) => res({ code, signal })), // 'close': stdout fully read, unlike 'exit'
  );
  return { proc, exited, out: () => out, err: () => err };
}

const procState = (pid: number): string =>
  /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Polls until cond() holds or 5 s pass: a loaded CI machine may be slow to schedule the children. */
async function eventually(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !cond(); i++) await sleep(20);
}
const rd = (dir: string, f: string): string => fs.readFileSync(path.join(dir, f), 'utf8').trim();

async function cleanup(m: CgroupManager, ...children: Child[]): Promise<void> {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      c.proc.kill('SIGKILL');
      try {
        m.thaw();
      } catch {
        // not frozen or already gone
      }
      await c.exited;
    }
  }
  m.destroy();
}

describe('v1 manager on the real hierarchy', { skip }, () => {
  test('lifecycle: default path from the id, limits, join, freeze/thaw, stats, killAll, destroy', async () => {
    const id = unique('life');
    const warnings: string[] = [];
    const m = createCgroupManager({ layout: layout!, id, log: { warn: (w) => warnings.push(w) } });
    const child = start('sleep', ['60']);
    try {
      const created = m.create();
      const paths = m.paths();
      // unset cgroupsPath = runc's default: <own cgroup>/<id> in every hierarchy
      const own = parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8'));
      assert.equal(paths.memory, path.join(layout!.v1Mounts.get('memory')!, own.v1.get('memory')!, id));
      assert.ok(created.includes(paths.memory));
      for (const d of new Set(Object.values(paths))) assert.ok(fs.statSync(d).isDirectory(), d);
      // cpuset.cpus/mems inherited, or the join below would fail with ENOSPC
      if (paths.cpuset) {
        assert.equal(rd(paths.cpuset, 'cpuset.cpus'), rd(path.dirname(paths.cpuset), 'cpuset.cpus'));
        assert.notEqual(rd(paths.cpuset, 'cpuset.mems'), '');
      }

      m.apply({
        memory: { limit: 256 * MiB, swap: 256 * MiB },
        pids: { limit: 16 },
        cpu: { shares: 512, quota: 50000, period: 100000 },
        devices: [{ allow: false, access: 'rwm' }, ...DEFAULT_ALLOWED_DEVICES],
      });
      assert.equal(rd(paths.memory, 'memory.limit_in_bytes'), String(256 * MiB));
      assert.equal(rd(paths.pids, 'pids.max'), '16');
      assert.equal(rd(paths.cpu, 'cpu.shares'), '512');
      assert.equal(rd(paths.cpu, 'cpu.cfs_quota_us'), '50000');
      const list = rd(paths.devices, 'devices.list').split('\n');
      assert.ok(
        list.includes('c 1:3 rwm') && list.includes('c 136:* rwm') && !list.includes('a *:* rwm'),
        list.join(','),
      );

      const pid = child.proc.pid!;
      m.addProcess(pid);
      // the kernel agrees: /proc/PID/cgroup names our directory in every hierarchy (and 0:: on hybrid)
      const theirs = parseProcCgroup(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
      for (const h of layout!.v1Hierarchies) {
        const c = h.controllers[0];
        const dir = paths[c];
        if (!dir) continue;
        assert.equal(path.join(h.mountpoint, theirs.v1.get(c)!), dir, c);
      }
      if (layout!.mode === 'hybrid') assert.equal(path.join(layout!.v2Mount!, theirs.unified!), paths['']);
      assert.deepEqual(m.pids(), [pid]);

      m.freeze();
      assert.equal(m.isFrozen(), true);
      assert.equal(rd(paths.freezer, 'freezer.state'), 'FROZEN');
      assert.equal(procState(pid), 'D', 'a v1-frozen task is reported in uninterruptible sleep');
      m.thaw();
      assert.equal(m.isFrozen(), false);
      await eventually(() => procState(pid) === 'S');
      assert.equal(procState(pid), 'S');

      const s = m.stats();
      assert.equal(s.pids.current, 1n);
      assert.equal(s.pids.limit, 16n);
      assert.equal(s.memory.usage?.limit, BigInt(256 * MiB));
      assert.equal(s.memory.swap?.limit, BigInt(256 * MiB));
      assert.ok(s.memory.raw && 'total_rss' in s.memory.raw, 'memory.stat raw keys');
      assert.ok((s.cpuset.cpus ?? []).length >= 1);
      const ev = JSON.parse(encodeEvent(statsEvent(id, s)));
      assert.equal(ev.type, 'stats');
      assert.equal(ev.data.pids.limit, 16);

      m.killAll('SIGKILL');
      assert.deepEqual(await child.exited, { code: null, signal: 'SIGKILL' });
      assert.equal(m.isFrozen(), false, 'killAll thawed after signalling');
      m.destroy();
      for (const d of new Set(Object.values(paths))) assert.equal(fs.existsSync(d), false, `${d} removed`);
      assert.equal(m.exists(), false);
      m.destroy(); // already gone: no error
      assert.deepEqual(warnings, []);
    } finally {
      await cleanup(m, child);
    }
  });

  test('freeze stops progress: a ticking process writes nothing while frozen', async () => {
    const m = createCgroupManager({ layout: layout!, path: `/${unique('tick')}` });
    const child = start('sh', ['-c', 'while :; do echo t; sleep 0.02; done']);
    try {
      m.create();
      m.addProcess(child.proc.pid!);
      await sleep(150);
      m.freeze();
      await sleep(50); // let a line already in the pipe arrive
      const before = child.out().length;
      await sleep(300);
      assert.equal(child.out().length, before, 'no output while frozen');
      m.thaw();
      await eventually(() => child.out().length > before);
      assert.ok(child.out().length > before, 'output resumes after thaw');
      m.killAll('SIGTERM');
      assert.equal((await child.exited).signal, 'SIGTERM');
    } finally {
      await cleanup(m, child);
    }
  });

  test('pids.max refuses forks beyond the limit', async () => {
    const m = createCgroupManager({ layout: layout!, path: `/${unique('pids')}` });
    const child = start('sh', ['-c', 'read x; for i in 1 2 3 4 5 6; do sleep 10 & done; echo spawned; wait']);
    try {
      m.create();
      m.apply({ pids: { limit: 3 } });
      m.addProcess(child.proc.pid!);
      child.proc.stdin!.write('go\n');
      await eventually(() => /spawned/.test(child.out()));
      const n = m.pids().length;
      assert.ok(n <= 3 && n >= 2, `pids in cgroup: ${n}`);
      assert.match(child.err(), /fork|resource temporarily unavailable/i);
      const s = m.stats();
      assert.ok(s.pids.current !== undefined && s.pids.current <= 3n);
      m.killAll('SIGKILL');
      await child.exited;
    } finally {
      await cleanup(m, child);
    }
  });

  test('memory limit: an allocation beyond it is OOM-killed and reported', async () => {
    const m = createCgroupManager({ layout: layout!, path: `/${unique('oom')}` });
    const hog = start(process.execPath, [
      '-e',
      "process.stdin.once('data', () => { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); })",
    ]);
    let ooms = 0;
    let stop = (): void => {};
    try {
      m.create();
      m.apply({ memory: { limit: 48 * MiB, swap: 48 * MiB } });
      m.addProcess(hog.proc.pid!);
      assert.deepEqual(m.oomEvents(), { oomKill: 0, oom: 0, underOom: false });
      stop = watchOom(m, () => ooms++, 20);
      hog.proc.stdin!.write('go\n');
      const res = await hog.exited;
      assert.equal(res.signal, 'SIGKILL', 'killed by the OOM killer');
      await sleep(100);
      assert.ok(m.oomEvents().oomKill >= 1);
      assert.ok(ooms >= 1, 'watchOom reported it');
      const s = m.stats();
      // the peak reached the limit and never passed it (failcnt is not reliable: 6.x kernels leave it at 0)
      const peak = s.memory.usage?.max ?? 0n;
      assert.ok(peak >= BigInt(40 * MiB) && peak <= BigInt(48 * MiB), `peak ${peak}`);
      assert.equal(s.memory.usage?.limit, BigInt(48 * MiB));
      assert.ok((s.cpu.usage?.total ?? 0n) > 0n, 'CPU time was accounted to the cgroup');
    } finally {
      stop();
      await cleanup(m, hog);
    }
  });

  test('kernel refusals become HakoErrors naming the field, the file and the errno', () => {
    const m = createCgroupManager({ layout: layout!, path: `/${unique('err')}` });
    try {
      m.create();
      const cpuset = m.paths().cpuset;
      if (cpuset) {
        assert.throws(
          () => m.apply({ cpu: { cpus: '1023' } }),
          (e: unknown) =>
            e instanceof HakoError &&
            e.field === 'linux.resources.cpu.cpus' &&
            (e.errno === 22 || e.errno === 34) && // EINVAL, or ERANGE for a CPU number past nr_cpu_ids
            e.message.includes(path.join(cpuset, 'cpuset.cpus')),
        );
      }
      assert.throws(
        () => m.apply({ cpu: { shares: 1 } }),
        (e: unknown) =>
          e instanceof HakoError &&
          e.field === 'linux.resources.cpu.shares' &&
          /minimum allowed cpu-shares is 2/.test(e.message),
      );
      assert.throws(
        () => m.apply({ unified: { 'memory.high': '1M' } }),
        (e: unknown) => e instanceof HakoError && e.field === 'linux.resources.unified["memory.high"]',
      );
    } finally {
      m.destroy();
    }
  });

  test('nested absolute path: destroy (from another manager) removes the parents it created', () => {
    const top = unique('nest');
    const m = createCgroupManager({ layout: layout!, path: `/${top}/inner` });
    const created = m.create();
    for (const h of layout!.v1Hierarchies.filter((x) => m.paths()[x.controllers[0]])) {
      assert.ok(created.includes(path.join(h.mountpoint, top)), h.mountpoint);
    }
    createCgroupManager({ layout: layout!, path: `/${top}/inner`, created }).destroy();
    for (const h of layout!.v1Hierarchies)
      assert.equal(fs.existsSync(path.join(h.mountpoint, top)), false, h.mountpoint);
    if (layout!.v2Mount) assert.equal(fs.existsSync(path.join(layout!.v2Mount, top)), false);
  });
});
