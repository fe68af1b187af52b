// The v2 manager on a real cgroup2 hierarchy. On a v2 host that is /sys/fs/cgroup; on a hybrid host (like
// the project's VM) it is the cgroup2 mount beside the v1 controllers, which has the core files (cgroup.procs,
// cgroup.freeze, cgroup.kill, cgroup.events, cpu.stat) and accepts BPF device programs: enough to check the
// freezer, kill, pids, stats, hugetlb (when that controller lives there) and the eBPF device filter for real.
// Needs root; the device filter part needs the built addon.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type AttachDeviceFilter,
  type CgroupLayout,
  createCgroupManager,
  detectCgroupLayout,
  type CgroupManager,
} from '../lib/cgroups';

const host = (() => {
  try {
    return detectCgroupLayout();
  } catch {
    return undefined;
  }
})();
const v2Mount = host?.v2Mount;
/** The host's cgroup2 hierarchy seen as a pure v2 layout. */
const layout: CgroupLayout | undefined = v2Mount
  ? { mode: 'v2', v1Mounts: new Map(), v1Hierarchies: [], v2Mount, v2MountRoot: host?.v2MountRoot, root: v2Mount }
  : undefined;
const skip = process.getuid?.() !== 0 ? 'needs root' : !layout ? 'no cgroup2 hierarchy on this host' : false;

function loadAttach(): AttachDeviceFilter | undefined {
  try {
    const { addon } = require('../lib/native/addon') as { addon: () => { attachDeviceFilter?: AttachDeviceFilter } };
    return addon().attachDeviceFilter;
  } catch {
    return undefined;
  }
}

const unique = (tag: string): string => `/hako-test-v2${tag}-${process.pid}-${Date.now().toString(36)}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Polls until cond() holds or 5 s pass: a loaded CI machine may be slow to schedule the children. */
async function eventually(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !cond(); i++) await sleep(20);
}

interface Child {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  out: () => string;
}

/** `sh -c script`, or a command run directly (argv) so that no forked child escapes the cgroup join. */
function start(script: string | string[]): Child {
  const [cmd, args] = typeof script === 'string' ? ['sh', ['-c', script]] : [script[0], script.slice(1)];
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (res) => proc.once('close', (code, signal) => res({ code, signal })), // 'close': stdout fully read, unlike 'exit'
  );
  return { proc, exited, out: () => out };
}

async function cleanup(m: CgroupManager, ...children: Child[]): Promise<void> {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      c.proc.kill('SIGKILL');
      await c.exited;
    }
  }
  m.destroy();
}

describe('v2 manager on the real cgroup2 hierarchy', { skip }, () => {
  // create() enables every available controller in the parents, the mount root included (as runc does);
  // put the host's root back as we found it.
  let rootControllers: string[] = [];
  const subtreeFile = (): string => path.join(v2Mount!, 'cgroup.subtree_control');
  before(() => {
    rootControllers = fs.readFileSync(subtreeFile(), 'utf8').trim().split(/\s+/).filter(Boolean);
  });
  after(() => {
    const now = fs.readFileSync(subtreeFile(), 'utf8').trim().split(/\s+/).filter(Boolean);
    for (const c of now.filter((x) => !rootControllers.includes(x))) {
      try {
        fs.writeFileSync(subtreeFile(), `-${c}`);
      } catch {
        // another cgroup started using it meanwhile
      }
    }
  });

  test('join, freeze stops progress, pids, stats, killAll (freezer path and cgroup.kill), destroy', async () => {
    const m = createCgroupManager({ layout: layout!, path: unique('life'), hugePageSizes: [] });
    const a = start('while :; do echo t; sleep 0.02; done');
    const b = start(['sleep', '60']);
    try {
      const created = m.create();
      const dir = m.paths()[''];
      assert.deepEqual(created, [dir]);
      m.addProcess(a.proc.pid!);
      m.addProcess(b.proc.pid!);
      assert.equal(
        fs.readFileSync(`/proc/${b.proc.pid}/cgroup`, 'utf8').includes(`0::${dir.slice(v2Mount!.length)}\n`),
        true,
      );
      const pids = m.pids();
      assert.ok(pids.includes(a.proc.pid!) && pids.includes(b.proc.pid!), String(pids));

      await sleep(100);
      m.freeze();
      assert.equal(m.isFrozen(), true);
      assert.match(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'), /^frozen 1$/m);
      await sleep(50);
      const before = a.out().length;
      await sleep(300);
      assert.equal(a.out().length, before, 'no progress while frozen');
      m.thaw();
      assert.equal(m.isFrozen(), false);
      await eventually(() => a.out().length > before);
      assert.ok(a.out().length > before, 'progress after thaw');

      const s = m.stats();
      assert.ok((s.cpu.usage?.total ?? 0n) > 0n, 'cpu.stat usage_usec accounted');
      assert.ok((s.pids.current ?? 0n) >= 2n, 'pids counted from cgroup.procs when the pids controller is off');

      // SIGTERM: freeze, signal, thaw (both die: neither traps it)
      m.killAll('SIGTERM');
      assert.equal((await a.exited).signal, 'SIGTERM');
      assert.equal((await b.exited).signal, 'SIGTERM');
      assert.equal(m.isFrozen(), false);

      const c = start(['sleep', '60']);
      m.addProcess(c.proc.pid!);
      m.killAll('SIGKILL'); // cgroup.kill
      assert.equal((await c.exited).signal, 'SIGKILL');
      m.destroy();
      assert.equal(fs.existsSync(dir), false);
      m.destroy();
    } finally {
      await cleanup(m, a, b);
    }
  });

  test('hugetlb limit written to the cgroup2 side when the controller is available there', (t) => {
    if (!fs.existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB')) return t.skip('no 2MB huge pages on this host');
    const root = (fs.readFileSync(path.join(v2Mount!, 'cgroup.controllers'), 'utf8') ?? '').split(/\s+/);
    if (!root.includes('hugetlb')) return t.skip(`hugetlb is not a controller of the cgroup2 hierarchy at ${v2Mount}`);
    const m = createCgroupManager({ layout: layout!, path: unique('huge') });
    try {
      m.create();
      m.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] });
      const dir = m.paths()[''];
      assert.equal(fs.readFileSync(path.join(dir, 'hugetlb.2MB.max'), 'utf8').trim(), String(4 << 20));
      assert.ok('2MB' in m.stats().hugetlb);
    } finally {
      m.destroy();
    }
  });

  const attach = loadAttach();
  test(
    'eBPF device filter: denied devices cannot be opened, an update replaces the program',
    { skip: attach ? false : 'addon without attachDeviceFilter' },
    async () => {
      const m = createCgroupManager({ layout: layout!, path: unique('dev'), attachDeviceFilter: attach });
      const probe = (): Child =>
        start(
          'read x; cat /dev/null && echo null-ok; head -c 1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied',
        );
      const first = probe();
      const second = probe();
      try {
        m.create();
        m.apply({
          devices: [
            { allow: false, access: 'rwm' },
            { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
          ],
        });
        m.addProcess(first.proc.pid!);
        first.proc.stdin!.write('go\n');
        await first.exited;
        assert.equal(first.out().trim(), 'null-ok\nzero-denied');

        m.apply({
          devices: [
            { allow: false, access: 'rwm' },
            { allow: true, type: 'c', major: 1, access: 'rw' },
          ],
        });
        m.addProcess(second.proc.pid!);
        second.proc.stdin!.write('go\n');
        await second.exited;
        assert.equal(second.out().trim(), 'null-ok\nzero-ok', 'the old, stricter program was detached');
      } finally {
        await cleanup(m, first, second);
      }
    },
  );
});
