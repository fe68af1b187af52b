// The plan wire format: TypeScript encodes, the init helper's C++ decoder reads it back (round trip),
// and malformed messages are refused without a crash, also under AddressSanitizer and UBSan.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initHelperPath } from '../lib/native/addon';
import { buildPlan } from '../lib/plan/build';
import { encodeProcess } from '../lib/plan/process';
import { Encoder, HEADER_SIZE, Msg, Tag } from '../lib/plan/wire';
import { Runtime } from '../lib/runtime/runtime';
import { leftovers, makeBundle, ROOT_DIR, testRoot, tmpDir, uniqueId } from './helpers/env';

function decodeWith(
  helper: string,
  msg: Buffer,
): { status: number | null; signal: NodeJS.Signals | null; json?: Record<string, unknown>; stderr: string } {
  const r = spawnSync(helper, ['--decode'], {
    input: msg,
    encoding: 'utf8',
    env: { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=99', UBSAN_OPTIONS: 'halt_on_error=1:exitcode=98' },
  });
  let json: Record<string, unknown> | undefined;
  if (r.status === 0) json = JSON.parse(r.stdout);
  return { status: r.status, signal: r.signal, json, stderr: r.stderr };
}

const bundle = makeBundle(['/bin/probe', 'json', 'with "quotes"'], (s) => {
  s.process!.env = ['A=1', 'B=two words'];
  s.process!.user = { uid: 5, gid: 6, additionalGids: [7, 8], umask: 0o27 };
  s.process!.rlimits = [
    { type: 'RLIMIT_NOFILE', soft: 100, hard: 200 },
    { type: 'RLIMIT_CORE', soft: 2 ** 64, hard: 2 ** 64 },
  ];
  s.process!.scheduler = { policy: 'SCHED_FIFO', priority: 10 };
  s.process!.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 4 };
  s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600, uid: 1, gid: 2 }];
  s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
  s.domainname = 'example.org';
  s.mounts!.push({ destination: 'data/../cache', type: 'bind', source: '/tmp', options: ['rbind', 'ro', 'rprivate'] });
});
const plan = buildPlan(bundle.spec, { bundle: bundle.dir, process: { preserveFds: 2, cpuAffinity: '0,1' } });

function roundTrip(helper: string) {
  const r = decodeWith(helper, plan.message);
  assert.equal(r.status, 0, r.stderr);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- hako-init --decode's JSON; the assertions check its shape
  const j = r.json as Record<string, any>;
  assert.equal(j.rootfs, bundle.rootfs);
  assert.equal(j.readonly, true);
  assert.equal(j.hostname, 'probe-host');
  assert.equal(j.domainname, 'example.org');
  const cache = j.mounts.find((m: { destination: string }) => m.destination === '/cache');
  assert.ok(cache, 'relative destinations are normalised inside /');
  assert.equal(cache.source, '/tmp');
  assert.equal(cache.bind, 2);
  assert.equal(BigInt('0x' + cache.flags) & 1n, 1n, 'ro');
  assert.ok(
    j.devices.some(
      (d: { path: string; major: number; minor: number; mode: number; uid: number }) =>
        d.path === '/dev/fuse' && d.major === 10 && d.minor === 229 && d.mode === 0o600 && d.uid === 1,
    ),
  );
  assert.ok(
    j.devices.some((d: { path: string }) => d.path === '/dev/null'),
    'default devices',
  );
  assert.deepEqual(j.sysctl, { 'net.ipv4.ip_forward': '1' });
  assert.deepEqual(j.masked, bundle.spec.linux!.maskedPaths);
  const p = j.process;
  assert.deepEqual(p.args, ['/bin/probe', 'json', 'with "quotes"']);
  assert.deepEqual(p.env, ['A=1', 'B=two words']);
  assert.equal(p.uid, 5);
  assert.equal(p.gid, 6);
  assert.deepEqual(p.gids, [7, 8]);
  assert.equal(p.umask, 0o27);
  assert.deepEqual(p.rlimits[0], { type: 7, soft: '100', hard: '200' });
  assert.equal(p.rlimits[1].soft, '18446744073709551615', 'values past 2^63 are RLIM_INFINITY');
  assert.equal(p.sched.policy, 1);
  assert.equal(p.sched.priority, 10);
  assert.equal(p.ioprio, (2 << 13) | 4);
  assert.deepEqual(p.affinity, [3, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(p.nnp, true);
  assert.equal(p.preserveFds, 2);
}

/** Mutations of a valid message: truncations, flipped bytes, lying lengths, wrong magic. */
function* malformed(msg: Buffer): Generator<[string, Buffer]> {
  for (const n of [0, 4, 11, 12, 13, 20, msg.length - 1]) yield [`truncated to ${n}`, msg.subarray(0, n)];
  const lie = Buffer.from(msg);
  lie.writeUInt32LE(msg.length * 4, 8);
  yield ['header length larger than the message', lie];
  const magic = Buffer.from(msg);
  magic[0] ^= 0xff;
  yield ['wrong magic', magic];
  // A first record claiming more bytes than remain.
  const rec = Buffer.from(msg);
  rec.writeUInt32LE(0xfffffff0, HEADER_SIZE + 4);
  yield ['record length past the end', rec];
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 150; i++) {
    const m = Buffer.from(msg);
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++)
      m[HEADER_SIZE + Math.floor(rand() * (m.length - HEADER_SIZE))] = Math.floor(rand() * 256);
    yield [`random flip ${i}`, m];
  }
  yield ['nested record with a NUL in a string', new Encoder().str(Tag.ROOTFS, '/a\0b').message(Msg.PLAN)];
  yield [
    'process without args',
    new Encoder().str(Tag.ROOTFS, '/r').nested(Tag.PROCESS, new Encoder().str(Tag.P_CWD, '/')).message(Msg.PLAN),
  ];
  yield [
    'seccomp filter of a partial instruction',
    new Encoder()
      .str(Tag.ROOTFS, '/r')
      .nested(Tag.PROCESS, new Encoder().str(Tag.P_ARG, 'x').str(Tag.P_CWD, '/').bytes(Tag.P_SECCOMP, Buffer.alloc(13)))
      .message(Msg.PLAN),
  ];
  yield [
    'uid of the wrong size',
    new Encoder()
      .str(Tag.ROOTFS, '/r')
      .nested(Tag.PROCESS, new Encoder().str(Tag.P_ARG, 'x').str(Tag.P_CWD, '/').bytes(Tag.P_UID, Buffer.alloc(3)))
      .message(Msg.PLAN),
  ];
  yield [
    'setup message with two processes',
    new Encoder()
      .nested(Tag.PROCESS, new Encoder().str(Tag.P_ARG, 'x').str(Tag.P_CWD, '/'))
      .nested(Tag.PROCESS, new Encoder().str(Tag.P_ARG, 'y').str(Tag.P_CWD, '/'))
      .message(Msg.SETUP),
  ];
}

function assertRefusesSafely(helper: string) {
  for (const [name, m] of malformed(plan.message)) {
    const r = decodeWith(helper, m);
    assert.equal(r.signal, null, `${name}: decoder crashed with ${r.signal}`);
    assert.ok(r.status === 0 || r.status === 2, `${name}: exit ${r.status}: ${r.stderr.slice(0, 2000)}`);
    if (r.status === 2) assert.match(r.stderr, /decode error/, name);
  }
}

describe('wire format with the shipped helper', () => {
  test('a plan round-trips through the C++ decoder', () => roundTrip(initHelperPath()));
  test('a setup message round-trips', () => {
    const msg = new Encoder()
      .nested(
        Tag.PROCESS,
        encodeProcess(
          { args: ['/bin/true'], cwd: '/', user: { uid: 0, gid: 0 }, execCPUAffinity: { final: '1' } },
          'process',
        ),
      )
      .message(Msg.SETUP);
    const r = decodeWith(initHelperPath(), msg);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((r.json as { args: string[] }).args, ['/bin/true']);
    assert.deepEqual((r.json as { affinity: number[] }).affinity, [2, 0, 0, 0, 0, 0, 0, 0]);
  });
  test('malformed messages are refused, never crash', () => assertRefusesSafely(initHelperPath()));
});

describe('init helper under AddressSanitizer and UBSan', () => {
  const dir = tmpDir('asan');
  const asan = path.join(dir, 'hako-init-asan');
  const root = testRoot('asan');
  before(() => {
    const src = path.join(ROOT_DIR, 'src-native', 'init');
    const sources = fs
      .readdirSync(src)
      .filter((f) => f.endsWith('.cc'))
      .map((f) => path.join(src, f));
    execFileSync('g++', [
      '-std=c++17',
      '-g',
      '-O1',
      '-fsanitize=address,undefined',
      '-fno-sanitize-recover=undefined',
      '-fno-omit-frame-pointer',
      ...sources,
      '-o',
      asan,
    ]);
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
  });
  test('round trip', () => roundTrip(asan));
  test('malformed messages', () => assertRefusesSafely(asan));
  test('a whole container lifecycle runs under the sanitized helper', async () => {
    process.env.HAKO_INIT = asan;
    try {
      const rt = new Runtime({ root });
      const id = uniqueId('asan');
      const out = path.join(dir, 'out');
      const fd = fs.openSync(out, 'w');
      const c = await rt.run(id, { bundle: makeBundle(['/bin/probe', 'hello']).dir, stdio: [null, fd, fd] });
      const st = await c.wait();
      fs.closeSync(fd);
      assert.equal(st.status, 0, fs.readFileSync(out, 'utf8'));
      assert.match(fs.readFileSync(out, 'utf8'), /Hello from a hako container/);
      assert.doesNotMatch(fs.readFileSync(out, 'utf8'), /Sanitizer/);
      await rt.delete(id);
      assert.deepEqual(leftovers(root, id), []);
    } finally {
      delete process.env.HAKO_INIT;
    }
  });
});
