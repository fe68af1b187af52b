// The shim's Stats answer (lib/shim/metrics.ts) from a real container: its cgroup counters encoded as containerd's
// io.containerd.cgroups.v1.Metrics (cgroup v1 and hybrid hosts) or v2.Metrics (pure cgroup v2), decoded here by
// the field numbers of containerd's cgroup1/cgroup2 stats/metrics.proto with a decoder of this file's own, and
// checked against what the container did and was given (a memory limit, a pids limit, a busy loop, 256 KiB
// written with O_DIRECT) and against its own cgroup files read here. The board lane
// (scripts/board/guest/board.test.ts) runs the check in pure cgroup v2 and v1 guests. What needs hardware, events
// or a cgroup mode this host lacks (the v2 message here, rdma devices, memory events, hugetlb, bursts) is checked
// from cgroup directories made of plain files at the end.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { CgroupIo, parseKeyValues } from '../lib/cgroups/files';
import { metricsExtraV1, metricsExtraV2 } from '../lib/cgroups/metrics-extra';
import { statsV1, statsV2 } from '../lib/cgroups/stats';
import { Runtime } from '../lib/runtime/runtime';
import { containerdMetrics, metricsV1, metricsV2 } from '../lib/shim/metrics';
import { BUSYBOX, disposeRoot, makeBundle, testRoot, tmpDir, uniqueId } from './helpers/env';

type Value = bigint | Buffer | number;
type Msg = Map<number, Value[]>;

/** A protobuf message as its fields: varints as bigint, doubles as number, length-delimited as Buffer. */
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
    let v: Value;
    if ((key & 7) === 0) v = varint();
    else if ((key & 7) === 1) {
      assert.ok(i + 8 <= buf.length, `field ${no}: truncated double`);
      v = buf.readDoubleLE(i);
      i += 8;
    } else {
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

function dbl(m: Msg, no: number): number {
  const v = m.get(no)?.[0] ?? 0;
  assert.equal(typeof v, 'number', `field ${no} is a double`);
  return v as number;
}

function str(m: Msg, no: number): string {
  const v = m.get(no)?.[0] ?? Buffer.alloc(0);
  assert.ok(Buffer.isBuffer(v), `field ${no} is a string`);
  return v.toString('utf8');
}

function msg(m: Msg, no: number): Msg {
  const v = m.get(no)?.[0] ?? Buffer.alloc(0);
  assert.ok(Buffer.isBuffer(v), `field ${no} is a message`);
  return fields(v);
}

function msgs(m: Msg, no: number): Msg[] {
  return (m.get(no) ?? []).map((v) => {
    assert.ok(Buffer.isBuffer(v), `field ${no} is a message`);
    return fields(v);
  });
}

const U64_MAX = 2n ** 64n - 1n;
const read = (dir: string, name: string): string | undefined => {
  try {
    return fs.readFileSync(path.join(dir, name), 'utf8');
  } catch {
    return undefined;
  }
};
/** A cgroup file's number as containerd reads it: "max" is 2^64-1, absent is 0. */
const num = (dir: string, name: string): bigint => {
  const t = read(dir, name)?.trim();
  return t === undefined ? 0n : t === 'max' ? U64_MAX : BigInt(t);
};

/** "mlx4_0 hca_handle=2 hca_object=max" lines as [device, handles, objects], "max" as 2^32-1. */
function rdmaLines(text: string | undefined): [string, bigint, bigint][] {
  const v = (s: string): bigint => (s === 'max' ? 0xffffffffn : BigInt(s));
  return (text ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3)
    .map(([dev, h, o]) => [dev, v(h.split('=')[1]), v(o.split('=')[1])]);
}
const rdmaDecoded = (entries: Msg[]): [string, bigint, bigint][] =>
  entries.map((e) => [str(e, 1), uint(e, 2), uint(e, 3)]);

/** The PSI message (2.x) against the pressure file read before and after: the averages in range, total between. */
function checkPsi(p: Msg, before: string | undefined, afterText: string | undefined, what: string): void {
  const totals = (t: string | undefined, kind: string): bigint =>
    BigInt(/total=(\d+)/.exec((t ?? '').split('\n').find((l) => l.startsWith(kind)) ?? '')?.[1] ?? '0');
  for (const [no, kind] of [
    [1, 'some'],
    [2, 'full'],
  ] as const) {
    if (!(before ?? '').includes(kind)) continue;
    const d = msg(p, no);
    for (const a of [1, 2, 3]) assert.ok(dbl(d, a) >= 0 && dbl(d, a) <= 100, `${what} ${kind} avg field ${a}`);
    const total = uint(d, 4);
    assert.ok(
      totals(before, kind) <= total && total <= totals(afterText, kind),
      `${what} ${kind} total ${total} within the file's ${totals(before, kind)}..${totals(afterText, kind)}`,
    );
  }
}

/** The (major, minor) of the device under a path, as st_dev encodes it (glibc's gnu_dev_major/minor). */
function devOf(file: string): [bigint, bigint] {
  const dev = BigInt(fs.statSync(file, { bigint: true }).dev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return [major, minor];
}

const root = process.getuid?.() === 0;
const skip = (!root && 'needs root (cgroups)') || (!BUSYBOX && 'needs busybox');
const WRITTEN = 64 * 4096;

describe('shim metrics from a real container', { skip }, () => {
  const stateRoot = root ? testRoot('shim-metrics') : '';
  after(() => disposeRoot(stateRoot));

  test('pids, cpu, memory, io, rdma, hugetlb, OOM counters in containerd’s Metrics, as the cgroup files say', async () => {
    const rt = new Runtime({ root: stateRoot });
    const limit = 64 << 20;
    // The device the container writes to (its rootfs under the temp dir). A throttle limit far above what it
    // writes: on this host's kernel (6.18) the v1 blkio.throttle.* counters stay at 0 until the device has one
    // (seen with a plain blkio cgroup and dd oflag=direct, with and without), and containerd reads those files.
    const [major, minor] = devOf(os.tmpdir());
    const onBlockDevice = fs.existsSync(`/sys/dev/block/${major}:${minor}`);
    const b = makeBundle(
      [
        '/bin/sh',
        '-c',
        'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ' +
          `/bin/busybox dd if=/dev/zero of=/data/io bs=4096 count=${WRITTEN / 4096} oflag=direct 2>/dev/null; ` +
          'touch /data/done; exec sleep 600',
      ],
      (s) => {
        s.root = { path: 'rootfs', readonly: false };
        s.linux!.resources = {
          ...s.linux!.resources,
          memory: { limit },
          pids: { limit: 32 },
          blockIO: onBlockDevice
            ? { throttleWriteBpsDevice: [{ major: Number(major), minor: Number(minor), rate: 10 ** 10 }] }
            : undefined,
        };
      },
      { busybox: true },
    );
    const id = uniqueId('metrics');
    const nul = fs.openSync('/dev/null', 'w');
    const c = await rt.run(id, { bundle: b.dir, stdio: [null, nul, nul] });
    fs.closeSync(nul);
    try {
      // The loop and the write done, and the shell replaced by sleep: one process left in the cgroup.
      const comm = (): string => fs.readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim();
      for (let t = 0; !fs.existsSync(path.join(b.rootfs, 'data', 'done')) || comm() !== 'sleep'; t++) {
        assert.ok(t < 600, 'the container finished its loop');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(fs.statSync(path.join(b.rootfs, 'data', 'io')).size, WRITTEN, 'the container wrote its file');
      const m = rt.cgroupManager(id);
      const procs = (await rt.ps(id)).length;
      assert.equal(procs, 1, 'one process in the container');
      const dirs = m.paths();
      assert.deepEqual(devOf(path.join(b.rootfs, 'data', 'io')), [major, minor], 'the rootfs is under the temp dir');
      const v2 = dirs[''];
      const pressure = (name: string): string | undefined => (m.mode === 'v2' ? read(v2, name) : undefined);
      const psiBefore = ['cpu', 'memory', 'io'].map((k) => pressure(`${k}.pressure`));
      const any = containerdMetrics(m);
      const psiAfter = ['cpu', 'memory', 'io'].map((k) => pressure(`${k}.pressure`));
      const f = fields(any.value);
      const hugeSizes = fs
        .readdirSync('/sys/kernel/mm/hugepages')
        .map((d) => /^hugepages-(\d+)kB$/.exec(d)?.[1])
        .filter((k): k is string => !!k)
        .map((k) => Number(k))
        .map((kb) => (kb >= 1 << 20 ? `${kb >> 20}GB` : kb >= 1024 ? `${kb >> 10}MB` : `${kb}KB`));
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
        const memory = msg(f, 4);
        const mem = msg(memory, 33);
        assert.equal(uint(mem, 1), BigInt(limit), 'memory.usage.limit');
        assert.ok(uint(mem, 2) > 0n && uint(mem, 2) <= BigInt(limit), `memory.usage.usage ${uint(mem, 2)}`);
        assert.ok(uint(mem, 3) >= uint(mem, 2), 'memory.usage.max >= usage');
        for (const no of [34, 35, 36]) assert.ok(memory.has(no), `memory entry ${no} sent, as containerd does`);
        // memory_oom_control (9) as memory.oom_control says.
        const oc = parseKeyValues(read(dirs.memory, 'memory.oom_control'));
        const oom = msg(f, 9);
        assert.ok(f.has(9), 'memory_oom_control sent');
        assert.deepEqual(
          [uint(oom, 1), uint(oom, 2), uint(oom, 3)],
          [oc.get('oom_kill_disable') ?? 0n, oc.get('under_oom') ?? 0n, oc.get('oom_kill') ?? 0n],
          'memory_oom_control: oom_kill_disable, under_oom, oom_kill',
        );
        // blkio: io_service_bytes_recursive (1) as the blkio file containerd and runc fall back to says, each
        // entry named as /proc/partitions names its device; the container's 256 KiB write on its rootfs' device.
        const blkDir = dirs.blkio;
        const file = ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_service_bytes'].find(
          (n) => read(blkDir, n) !== undefined,
        );
        assert.ok(file, 'a blkio.throttle file');
        const lines = read(blkDir, 'blkio.bfq.io_service_bytes_recursive') ?? read(blkDir, file)!;
        const expected = lines
          .split('\n')
          .map((l) => l.trim().split(/\s+/))
          .filter((w) => w.length === 3 && /^\d+:\d+$/.test(w[0]))
          .map(([dev, op, v]) => `${dev} ${op} ${v}`);
        const blkio = msg(f, 5);
        const got = msgs(blkio, 1).map((e) => `${uint(e, 3)}:${uint(e, 4)} ${str(e, 1)} ${uint(e, 5)}`);
        assert.deepEqual(got, expected, 'io_service_bytes_recursive, entry by entry');
        const names = new Map(
          fs
            .readFileSync('/proc/partitions', 'utf8')
            .split('\n')
            .slice(2)
            .map((l) => l.trim().split(/\s+/))
            .filter((w) => w.length === 4)
            .map((w) => [`${w[0]}:${w[1]}`, `/dev/${w[3]}`]),
        );
        for (const e of msgs(blkio, 1))
          assert.equal(str(e, 2), names.get(`${uint(e, 3)}:${uint(e, 4)}`) ?? '', 'BlkIOEntry.device');
        if (onBlockDevice) {
          const isWrite = (e: Msg): boolean => uint(e, 3) === major && uint(e, 4) === minor && str(e, 1) === 'Write';
          const write = msgs(blkio, 1).find(isWrite);
          assert.ok(write, `a Write entry for the rootfs device ${major}:${minor}`);
          assert.ok(uint(write, 5) >= BigInt(WRITTEN), `bytes written ${uint(write, 5)} >= ${WRITTEN}`);
          assert.ok(str(write, 2).startsWith('/dev/'), `the device named: ${str(write, 2)}`);
          const ios = msgs(blkio, 2).find(isWrite);
          assert.ok(ios && uint(ios, 5) >= 1n, 'io_serviced_recursive counts the writes');
        }
        // rdma (6) only with an rdma hierarchy, as rdma.current and rdma.max say.
        if (dirs.rdma) {
          const rdma = msg(f, 6);
          assert.deepEqual(rdmaDecoded(msgs(rdma, 1)), rdmaLines(read(dirs.rdma, 'rdma.current')), 'rdma current');
          assert.deepEqual(rdmaDecoded(msgs(rdma, 2)), rdmaLines(read(dirs.rdma, 'rdma.max')), 'rdma limit');
        } else assert.equal(f.has(6), false, 'no rdma without an rdma hierarchy');
        // hugetlb (1): v1 files, or the cgroup2 side's on a hybrid host (current, no peak, events' max).
        const hugetlb = msgs(f, 1);
        const want: string[] = [];
        for (const size of hugeSizes) {
          if (dirs.hugetlb && read(dirs.hugetlb, `hugetlb.${size}.usage_in_bytes`) !== undefined) {
            const d = dirs.hugetlb;
            const n = (x: string): bigint => num(d, `hugetlb.${size}.${x}`);
            want.push(`${size} ${n('usage_in_bytes')} ${n('max_usage_in_bytes')} ${n('failcnt')}`);
          } else if (!dirs.hugetlb && v2 && read(v2, `hugetlb.${size}.current`) !== undefined) {
            const events = parseKeyValues(read(v2, `hugetlb.${size}.events`));
            want.push(`${size} ${num(v2, `hugetlb.${size}.current`)} 0 ${events.get('max') ?? 0n}`);
          }
        }
        const gotHuge = hugetlb.map((h) => `${str(h, 4)} ${uint(h, 1)} ${uint(h, 2)} ${uint(h, 3)}`);
        assert.deepEqual(gotHuge, want, 'hugetlb: pagesize usage max failcnt');
      } else {
        assert.equal(any.typeUrl, 'io.containerd.cgroups.v2.Metrics');
        const pids = msg(f, 1);
        assert.equal(uint(pids, 1), BigInt(procs), 'pids.current: the container’s one process (sleep)');
        assert.equal(uint(pids, 2), 32n, 'pids.limit');
        const cpu = msg(f, 2);
        assert.ok(uint(cpu, 1) > 0n, 'cpu usage_usec');
        assert.ok(uint(cpu, 2) + uint(cpu, 3) > 0n, 'cpu user_usec + system_usec');
        const cpuStat = parseKeyValues(read(v2, 'cpu.stat'));
        assert.equal(uint(cpu, 8), cpuStat.get('nr_bursts') ?? 0n, 'nr_bursts');
        assert.equal(uint(cpu, 9), cpuStat.get('burst_usec') ?? 0n, 'burst_usec');
        if (psiBefore[0] !== undefined) checkPsi(msg(cpu, 7), psiBefore[0], psiAfter[0], 'cpu.pressure');
        const mem = msg(f, 4);
        assert.ok(uint(mem, 32) > 0n && uint(mem, 32) <= BigInt(limit), `memory usage ${uint(mem, 32)}`);
        assert.equal(uint(mem, 33), BigInt(limit), 'memory usage_limit');
        assert.ok(uint(mem, 1) + uint(mem, 2) > 0n, 'anon + file');
        assert.equal(uint(mem, 34), num(v2, 'memory.swap.current'), 'swap_usage: memory.swap.current');
        assert.equal(uint(mem, 35), num(v2, 'memory.swap.max'), 'swap_limit: memory.swap.max');
        assert.equal(uint(mem, 37), num(v2, 'memory.swap.peak'), 'swap_max_usage: memory.swap.peak');
        if (psiBefore[1] !== undefined) checkPsi(msg(mem, 38), psiBefore[1], psiAfter[1], 'memory.pressure');
        // memory_events (8) as memory.events says.
        const ev = parseKeyValues(read(v2, 'memory.events'));
        const events = msg(f, 8);
        assert.deepEqual(
          [1, 2, 3, 4, 5, 6].map((no) => uint(events, no)),
          ['low', 'high', 'max', 'oom', 'oom_kill', 'oom_group_kill'].map((k) => ev.get(k) ?? 0n),
          'memory_events',
        );
        // io (6): one entry per io.stat line; the container's write on its rootfs' device.
        const io = msg(f, 6);
        const stat = (read(v2, 'io.stat') ?? '')
          .split('\n')
          .filter((l) => /^\d+:\d+ /.test(l))
          .map((l) => {
            const kv = new Map(l.split(' ').map((p) => p.split('=') as [string, string]));
            return ['rbytes', 'wbytes', 'rios', 'wios'].reduce((s, k) => `${s} ${kv.get(k) ?? 0}`, l.split(' ')[0]);
          });
        const usage = msgs(io, 1);
        assert.deepEqual(
          usage.map((e) => `${uint(e, 1)}:${uint(e, 2)} ${[3, 4, 5, 6].map((no) => uint(e, no)).join(' ')}`),
          stat,
          'io usage: major:minor rbytes wbytes rios wios',
        );
        const dev = usage.find((e) => uint(e, 1) === major && uint(e, 2) === minor);
        if (onBlockDevice) {
          assert.ok(dev, `an io entry for the rootfs device ${major}:${minor}`);
          assert.ok(uint(dev, 4) >= BigInt(WRITTEN), `wbytes ${uint(dev, 4)} >= ${WRITTEN}`);
        }
        if (psiBefore[2] !== undefined) checkPsi(msg(io, 2), psiBefore[2], psiAfter[2], 'io.pressure');
        const rdma = msg(f, 5);
        assert.deepEqual(rdmaDecoded(msgs(rdma, 1)), rdmaLines(read(v2, 'rdma.current')), 'rdma current');
        assert.deepEqual(
          rdmaDecoded(msgs(rdma, 2)),
          read(v2, 'rdma.current') === undefined ? [] : rdmaLines(read(v2, 'rdma.max')),
          'rdma limit',
        );
        const hugetlb = msgs(f, 7).map((h) => `${str(h, 3)} ${uint(h, 1)} ${uint(h, 2)} ${uint(h, 4)}`);
        const want = hugeSizes
          .filter((s) => read(v2, `hugetlb.${s}.current`) !== undefined)
          .map((s) => {
            const events = parseKeyValues(read(v2, `hugetlb.${s}.events`));
            return `${s} ${num(v2, `hugetlb.${s}.current`)} ${num(v2, `hugetlb.${s}.max`)} ${events.get('max') ?? 0n}`;
          });
        assert.deepEqual(hugetlb, want, 'hugetlb: pagesize current max failcnt');
      }
    } finally {
      await rt.kill(id, 'KILL').catch(() => undefined);
      await c.wait();
      await rt.delete(id, { force: true });
    }
  });
});

describe('shim metrics from cgroup files this host cannot produce', () => {
  // Cgroup directories of plain files with what an RDMA device, memory and hugetlb limits being hit and a CPU
  // burst would leave there, read by the same readers as a real cgroup.
  test('v2: rdma, io, memory events, hugetlb, swap, bursts and PSI reach their fields', () => {
    const dir = tmpDir('metrics-v2');
    const files: Record<string, string> = {
      'cgroup.procs': '1\n2\n',
      'pids.current': '2\n',
      'pids.max': 'max\n',
      'cpu.stat':
        'usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\nnr_bursts 3\nburst_usec 900\n',
      'cpu.pressure':
        'some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
      'memory.current': '8192\n',
      'memory.max': '65536\n',
      'memory.peak': '16384\n',
      'memory.swap.current': '4096\n',
      'memory.swap.max': 'max\n',
      'memory.swap.peak': '12288\n',
      'memory.stat': 'anon 4096\nfile 1024\npgfault 77\n',
      'memory.events': 'low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 6\n',
      'memory.pressure': 'some avg10=0.00 avg60=0.00 avg300=0.00 total=10\n',
      'io.stat': '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=0 wbytes=512 rios=0 wios=1\n',
      'io.pressure':
        'some avg10=0.00 avg60=0.00 avg300=0.00 total=99\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=98\n',
      'rdma.current': 'mlx4_0 hca_handle=2 hca_object=2000\nocrdma1 hca_handle=3 hca_object=0\n',
      'rdma.max': 'mlx4_0 hca_handle=2 hca_object=max\nocrdma1 hca_handle=max hca_object=max\n',
      'hugetlb.2MB.current': '4194304\n',
      'hugetlb.2MB.max': '8388608\n',
      'hugetlb.2MB.rsvd.current': '6291456\n',
      'hugetlb.2MB.events': 'max 7\n',
      'hugetlb.1GB.current': '0\n',
      'hugetlb.1GB.max': 'max\n',
      'hugetlb.1GB.events': 'max 0\n',
    };
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const io = new CgroupIo();
    const sizes = ['2MB', '1GB', '64KB'];
    const any = metricsV2(statsV2(io, dir, sizes), metricsExtraV2(io, dir, sizes));
    assert.equal(any.typeUrl, 'io.containerd.cgroups.v2.Metrics');
    const f = fields(any.value);
    const pids = msg(f, 1);
    assert.deepEqual([uint(pids, 1), uint(pids, 2)], [2n, U64_MAX], 'pids: current, "max" as 2^64-1');
    const cpu = msg(f, 2);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 8, 9].map((no) => uint(cpu, no)),
      [5000n, 3000n, 2000n, 4n, 1n, 7n, 3n, 900n],
      'cpu: usage, user, system (µs), periods, throttled, throttled_usec, nr_bursts, burst_usec',
    );
    const cpuSome = msg(msg(cpu, 7), 1);
    assert.deepEqual([dbl(cpuSome, 1), dbl(cpuSome, 2), dbl(cpuSome, 3), uint(cpuSome, 4)], [1.5, 0.25, 0, 1234n]);
    assert.ok(msg(cpu, 7).has(2), 'an all-zero "full" line is still sent, as containerd does');
    const mem = msg(f, 4);
    assert.deepEqual(
      [1, 2, 18, 32, 33, 34, 35, 36, 37].map((no) => uint(mem, no)),
      [4096n, 1024n, 77n, 8192n, 65536n, 4096n, U64_MAX, 16384n, 12288n],
      'memory: anon, file, pgfault, usage, usage_limit, swap_usage (memory.swap.current, not memory+swap), ' +
        'swap_limit, max_usage, swap_max_usage',
    );
    assert.equal(uint(msg(msg(mem, 38), 1), 4), 10n, 'memory PSI some total');
    assert.equal(msg(mem, 38).has(2), false, 'no "full" line, no full');
    const rdma = msg(f, 5);
    assert.deepEqual(rdmaDecoded(msgs(rdma, 1)), [
      ['mlx4_0', 2n, 2000n],
      ['ocrdma1', 3n, 0n],
    ]);
    assert.deepEqual(rdmaDecoded(msgs(rdma, 2)), [
      ['mlx4_0', 2n, 0xffffffffn],
      ['ocrdma1', 0xffffffffn, 0xffffffffn],
    ]);
    const ioMsg = msg(f, 6);
    assert.deepEqual(
      msgs(ioMsg, 1).map((e) => [1, 2, 3, 4, 5, 6].map((no) => uint(e, no))),
      [
        [8n, 0n, 4096n, 8192n, 1n, 2n],
        [253n, 1n, 0n, 512n, 0n, 1n],
      ],
    );
    assert.deepEqual([uint(msg(msg(ioMsg, 2), 1), 4), uint(msg(msg(ioMsg, 2), 2), 4)], [99n, 98n], 'io PSI totals');
    assert.deepEqual(
      msgs(f, 7).map((h) => [str(h, 3), uint(h, 1), uint(h, 2), uint(h, 4)]),
      [
        ['2MB', 4194304n, 8388608n, 7n],
        ['1GB', 0n, U64_MAX, 0n],
      ],
      'hugetlb: current (not .rsvd), max, events max; no entry for a size without files',
    );
    const ev = msg(f, 8);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((no) => uint(ev, no)),
      [1n, 2n, 3n, 4n, 5n, 6n],
    );
    fs.rmSync(path.join(dir, 'memory.events'));
    const without = fields(metricsV2(statsV2(io, dir, sizes), metricsExtraV2(io, dir, sizes)).value);
    assert.equal(without.has(8), false, 'no memory.events, no memory_events');
    // A kernel before 6.1 booted with psi=0 shows the *.pressure files but fails their read with EOPNOTSUPP.
    class NoPsi extends CgroupIo {
      override read(d: string, name: string): string | undefined {
        if (name.endsWith('.pressure')) throw Object.assign(new Error(`read ${name}`), { code: 'ENOTSUP', errno: -95 });
        return super.read(d, name);
      }
    }
    const noPsi = new NoPsi();
    const psiLess = fields(metricsV2(statsV2(noPsi, dir, sizes), metricsExtraV2(noPsi, dir, sizes)).value);
    assert.equal(msg(psiLess, 2).has(7), false, 'no cpu PSI');
    assert.equal(msg(psiLess, 4).has(38), false, 'no memory PSI');
    assert.equal(msg(psiLess, 6).has(2), false, 'no io PSI');
    assert.equal(uint(msg(psiLess, 2), 1), 5000n, 'the rest still read');
  });
  test('v1: hugetlb without the .rsvd counters, rdma, memory_oom_control, blkio device names', () => {
    const dir = tmpDir('metrics-v1');
    const files: Record<string, string> = {
      'memory.usage_in_bytes': '8192\n',
      'memory.limit_in_bytes': '65536\n',
      'memory.stat': 'cache 1024\nrss 4096\n',
      'memory.oom_control': 'oom_kill_disable 1\nunder_oom 1\noom_kill 3\n',
      'rdma.current': 'mlx4_0 hca_handle=1 hca_object=20\n',
      'rdma.max': 'mlx4_0 hca_handle=max hca_object=100\n',
      'hugetlb.2MB.usage_in_bytes': '2097152\n',
      'hugetlb.2MB.max_usage_in_bytes': '4194304\n',
      'hugetlb.2MB.failcnt': '2\n',
      'hugetlb.2MB.rsvd.usage_in_bytes': '6291456\n',
      'hugetlb.2MB.rsvd.max_usage_in_bytes': '6291456\n',
      'hugetlb.2MB.rsvd.failcnt': '0\n',
      'blkio.throttle.io_service_bytes_recursive': '8:0 Read 4096\n8:0 Write 8192\n7:3 Write 512\nTotal 12800\n',
      'blkio.throttle.io_serviced_recursive': '8:0 Read 1\n8:0 Write 2\n7:3 Write 1\nTotal 4\n',
    };
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const partitions = path.join(dir, 'partitions');
    fs.writeFileSync(partitions, 'major minor  #blocks  name\n\n   8        0   1000 sda\n   8        1    900 sda1\n');
    const io = new CgroupIo();
    const dirs = { memory: dir, rdma: dir, hugetlb: dir, blkio: dir };
    const any = metricsV1(statsV1(io, dirs, ['2MB']), metricsExtraV1(io, dirs, ['2MB'], partitions));
    assert.equal(any.typeUrl, 'io.containerd.cgroups.v1.Metrics');
    const f = fields(any.value);
    assert.deepEqual(
      msgs(f, 1).map((h) => [uint(h, 1), uint(h, 2), uint(h, 3), str(h, 4)]),
      [[2097152n, 4194304n, 2n, '2MB']],
      'hugetlb: usage, max usage, failcnt of hugetlb.2MB.* (containerd reads no .rsvd file)',
    );
    const rdma = msg(f, 6);
    assert.deepEqual(rdmaDecoded(msgs(rdma, 1)), [['mlx4_0', 1n, 20n]]);
    assert.deepEqual(rdmaDecoded(msgs(rdma, 2)), [['mlx4_0', 0xffffffffn, 100n]]);
    const oom = msg(f, 9);
    assert.deepEqual([uint(oom, 1), uint(oom, 2), uint(oom, 3)], [1n, 1n, 3n], 'memory_oom_control');
    const memory = msg(f, 4);
    assert.deepEqual([uint(memory, 1), uint(memory, 2)], [1024n, 4096n], 'cache, rss');
    assert.equal(uint(msg(memory, 33), 2), 8192n, 'usage');
    assert.ok(memory.has(34) && memory.has(35) && memory.has(36), 'swap, kernel, kernel_tcp sent though absent');
    assert.deepEqual(
      msgs(msg(f, 5), 1).map((e) => `${str(e, 2)} ${uint(e, 3)}:${uint(e, 4)} ${str(e, 1)} ${uint(e, 5)}`),
      ['/dev/sda 8:0 Read 4096', '/dev/sda 8:0 Write 8192', ' 7:3 Write 512'],
      'blkio io_service_bytes_recursive: /proc/partitions names the device, an unlisted one stays unnamed',
    );
  });
});
