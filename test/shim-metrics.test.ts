// The shim's Stats answer (lib/shim/metrics.ts) from a real container: its cgroup stats encoded as containerd's
// io.containerd.cgroups.v1.Metrics (cgroup v1 and hybrid hosts) or v2.Metrics (pure cgroup v2), decoded here by
// the field numbers of containerd's cgroup1/cgroup2 stats/metrics.proto with a decoder of this file's own, and
// checked against what the container did and was given: a memory limit, a pids limit, a busy loop. The board lane
// (scripts/board/guest/board.test.ts) runs the same check in pure cgroup v2 and v1 guests.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Runtime } from '../lib/runtime/runtime';
import { metricsV1, metricsV2 } from '../lib/shim/metrics';
import { BUSYBOX, disposeRoot, makeBundle, testRoot, uniqueId } from './helpers/env';

type Msg = Map<number, (bigint | Buffer)[]>;

/** A protobuf message as its fields: varints as bigint, length-delimited as Buffer, every occurrence kept. */
function fields(buf: Buffer): Msg {
  const out: Msg = new Map();
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      assert.ok(i < buf.length, 'a truncated varint');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    let v: bigint | Buffer;
    if ((key & 7) === 0) v = varint();
    else {
      assert.equal(key & 7, 2, `field ${no}: wire type ${key & 7}`);
      const len = Number(varint());
      assert.ok(i + len <= buf.length, `field ${no}: truncated`);
      v = buf.subarray(i, i + len);
      i += len;
    }
    out.set(no, [...(out.get(no) ?? []), v]);
  }
  return out;
}

function uint(m: Msg, no: number): bigint {
  const v = m.get(no)?.[0] ?? 0n;
  assert.equal(typeof v, 'bigint', `field ${no} is a varint`);
  return v as bigint;
}

function msg(m: Msg, no: number): Msg {
  const v = m.get(no)?.[0] ?? Buffer.alloc(0);
  assert.ok(Buffer.isBuffer(v), `field ${no} is a message`);
  return fields(v);
}

const root = process.getuid?.() === 0;
const skip = (!root && 'needs root (cgroups)') || (!BUSYBOX && 'needs busybox');

describe('shim metrics from a real container', { skip }, () => {
  const stateRoot = root ? testRoot('shim-metrics') : '';
  after(() => disposeRoot(stateRoot));

  test('memory usage and limit, pids current and limit, cpu usage, in containerd’s Metrics', async () => {
    const rt = new Runtime({ root: stateRoot });
    const limit = 64 << 20;
    const b = makeBundle(
      ['/bin/sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; touch /data/done; exec sleep 600'],
      (s) => {
        s.root = { path: 'rootfs', readonly: false };
        s.linux!.resources = { ...s.linux!.resources, memory: { limit }, pids: { limit: 32 } };
      },
      { busybox: true },
    );
    const id = uniqueId('metrics');
    const nul = fs.openSync('/dev/null', 'w');
    const c = await rt.run(id, { bundle: b.dir, stdio: [null, nul, nul] });
    fs.closeSync(nul);
    try {
      // The loop done, and the shell replaced by sleep: one process left in the cgroup.
      const comm = (): string => fs.readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim();
      for (let t = 0; !fs.existsSync(path.join(b.rootfs, 'data', 'done')) || comm() !== 'sleep'; t++) {
        assert.ok(t < 600, 'the container finished its loop');
        await new Promise((r) => setTimeout(r, 50));
      }
      const m = rt.cgroupManager(id);
      const procs = (await rt.ps(id)).length;
      assert.equal(procs, 1, 'one process in the container');
      const any = m.mode === 'v2' ? metricsV2(m.stats()) : metricsV1(m.stats());
      const f = fields(any.value);
      if (m.mode !== 'v2') {
        assert.equal(any.typeUrl, 'io.containerd.cgroups.v1.Metrics');
        const pids = msg(f, 2);
        assert.equal(uint(pids, 1), BigInt(procs), 'pids.current: the container’s one process (sleep)');
        assert.equal(uint(pids, 2), 32n, 'pids.limit');
        const usage = msg(msg(f, 3), 1);
        const total = uint(usage, 1);
        assert.ok(total > 0n, 'cpu usage total (ns)');
        const perCpu = (usage.get(4) ?? []) as bigint[];
        assert.ok(perCpu.length >= 1, 'per-cpu usage');
        assert.ok(perCpu.reduce((a, v) => a + v, 0n) > 0n, 'per-cpu usage adds up to more than 0');
        const mem = msg(msg(f, 4), 33);
        assert.equal(uint(mem, 1), BigInt(limit), 'memory.usage.limit');
        assert.ok(uint(mem, 2) > 0n && uint(mem, 2) <= BigInt(limit), `memory.usage.usage ${uint(mem, 2)}`);
        assert.ok(uint(mem, 3) >= uint(mem, 2), 'memory.usage.max >= usage');
      } else {
        assert.equal(any.typeUrl, 'io.containerd.cgroups.v2.Metrics');
        const pids = msg(f, 1);
        assert.equal(uint(pids, 1), BigInt(procs), 'pids.current: the container’s one process (sleep)');
        assert.equal(uint(pids, 2), 32n, 'pids.limit');
        const cpu = msg(f, 2);
        assert.ok(uint(cpu, 1) > 0n, 'cpu usage_usec');
        assert.ok(uint(cpu, 2) + uint(cpu, 3) > 0n, 'cpu user_usec + system_usec');
        const mem = msg(f, 4);
        assert.ok(uint(mem, 32) > 0n && uint(mem, 32) <= BigInt(limit), `memory usage ${uint(mem, 32)}`);
        assert.equal(uint(mem, 33), BigInt(limit), 'memory usage_limit');
        assert.ok(uint(mem, 1) + uint(mem, 2) > 0n, 'anon + file');
      }
    } finally {
      await rt.kill(id, 'KILL').catch(() => undefined);
      await c.wait();
      await rt.delete(id, { force: true });
    }
  });
});
