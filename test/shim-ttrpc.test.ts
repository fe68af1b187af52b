// The shim's ttrpc framing and protobuf codec (lib/shim/ttrpc.ts, proto.ts), over real unix sockets: frames split
// and merged at every byte, oversized frames skipped without losing sync, concurrent calls answered out of order,
// and bad input (malformed payloads, even stream ids, unknown services and methods) answered with a gRPC status
// while the connection keeps serving.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { decode, Fields, ProtoError, timestampWriter, decodeTimestamp, Writer } from '../lib/shim/proto';
import {
  Client,
  Code,
  decodeRequest,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  FrameReader,
  HEADER,
  MAX_PAYLOAD,
  RpcError,
  serveConnection,
  TYPE_REQUEST,
  TYPE_RESPONSE,
  type Frame,
  type Handler,
  type Services,
} from '../lib/shim/ttrpc';
import { parseFlags, FlagError } from '../lib/shim/flags';
import { socketPath } from '../lib/shim/address';

describe('protobuf codec', () => {
  test('varints up to 64 bits, strings, bools, nested messages round-trip', () => {
    const big = (1n << 64n) - 1n;
    const b = new Writer()
      .uint(1, 300)
      .uint(2, big)
      .string(3, 'héllo')
      .bool(4, true)
      .message(5, new Writer().uint(1, 7))
      .finish();
    const f = new Fields(b);
    assert.equal(f.uint(1), 300);
    assert.equal(f.bigint(2), big);
    assert.equal(f.string(3), 'héllo');
    assert.equal(f.bool(4), true);
    assert.equal(new Fields(f.bytes(5)!).uint(1), 7);
    assert.equal(f.string(9), '', 'an absent field is its default');
  });
  test('zero values are not written (proto3), an empty nested message is', () => {
    assert.equal(new Writer().uint(1, 0).string(2, '').bool(3, false).finish().length, 0);
    assert.deepEqual([...new Writer().message(1, new Writer()).finish()], [0x0a, 0x00]);
  });
  test('the known encoding of a Timestamp', () => {
    const b = timestampWriter(1_500_000_000_250).finish();
    assert.deepEqual([...b], [0x08, 0x80, 0xde, 0xa0, 0xcb, 0x05, 0x10, 0x80, 0xe5, 0x9a, 0x77]);
    assert.equal(decodeTimestamp(b), 1_500_000_000_250);
  });
  test('malformed input is a ProtoError, never a crash', () => {
    for (const bad of [
      [0x08],
      [0x0a, 0x05, 0x01],
      [0x00],
      [0x0b],
      [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      [0x09, 1, 2],
    ])
      assert.throws(() => decode(Buffer.from(bad)), ProtoError, JSON.stringify(bad));
    assert.throws(() => new Fields(Buffer.from([0x08, 0x01])).string(1), ProtoError, 'a wire type mismatch');
  });
});

describe('ttrpc framing', () => {
  test('a frame has the 10-byte big-endian header', () => {
    const b = encodeFrame({ streamId: 3, type: TYPE_REQUEST, flags: 0, payload: Buffer.from('abc') });
    assert.deepEqual([...b.subarray(0, HEADER)], [0, 0, 0, 3, 0, 0, 0, 3, 1, 0]);
  });
  test('frames split at every byte and merged are read back in order', () => {
    const frames: Frame[] = [1, 3, 5].map((id) => ({
      streamId: id,
      type: TYPE_REQUEST,
      flags: 0,
      payload: Buffer.alloc(id * 7, id),
    }));
    const all = Buffer.concat(frames.map(encodeFrame));
    for (let cut = 0; cut <= all.length; cut++) {
      const got: Frame[] = [];
      const r = new FrameReader((f) => got.push(f));
      r.push(all.subarray(0, cut));
      r.push(all.subarray(cut));
      assert.deepEqual(got, frames, `cut at ${cut}`);
    }
  });
  test('an oversized frame is skipped, reported, and the next frame still read', () => {
    const got: Frame[] = [];
    const over: number[] = [];
    const r = new FrameReader(
      (f) => got.push(f),
      (id) => over.push(id),
    );
    const h = Buffer.alloc(HEADER);
    h.writeUInt32BE(MAX_PAYLOAD + 1, 0);
    h.writeUInt32BE(7, 4);
    h.writeUInt8(TYPE_REQUEST, 8);
    r.push(h);
    r.push(Buffer.alloc(MAX_PAYLOAD + 1));
    r.push(encodeFrame({ streamId: 9, type: TYPE_REQUEST, flags: 0, payload: Buffer.from('x') }));
    assert.deepEqual(over, [7]);
    assert.equal(got.length, 1);
    assert.equal(got[0].streamId, 9);
  });
  test('Request and Response round-trip', () => {
    const req = {
      service: 's.S',
      method: 'M',
      payload: Buffer.from([1, 2]),
      timeoutNano: 5n,
      metadata: { 'containerd-namespace-ttrpc': 'ns' },
    };
    assert.deepEqual(decodeRequest(encodeRequest(req)), req);
    const resp = decodeResponse(new Writer().message(1, new Writer().uint(1, 5).string(2, 'nope')).finish());
    assert.deepEqual(resp, { code: 5, message: 'nope', payload: Buffer.alloc(0) });
  });
});

describe('ttrpc server and client over a unix socket', () => {
  let dir: string;
  let sock: string;
  let server: net.Server;
  let client: Client;
  let release: () => void = () => {};

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-ttrpc-'));
    sock = path.join(dir, 's');
    const held = new Promise<void>((r) => (release = r));
    const services: Services = new Map([
      [
        'test.Echo',
        new Map<string, Handler>([
          ['Echo', (p: Buffer) => p],
          ['Slow', async (p: Buffer) => (await held, p)],
          ['Missing', () => Promise.reject(new RpcError(Code.NotFound, 'no such thing'))],
          ['MissingClassed', () => Promise.reject(new RpcError(Code.NotFound, 'container c: not found'))],
          ['Exists', () => Promise.reject(new RpcError(Code.AlreadyExists, 'exec e'))],
          ['Decode', (p: Buffer) => Buffer.from(new Fields(p).string(1))],
          [
            'Throws',
            () => {
              throw new Error('plain failure');
            },
          ],
        ]),
      ],
    ]);
    server = net.createServer((c) => serveConnection(c, services));
    await new Promise<void>((r) => server.listen(sock, r));
    client = await Client.connect(sock);
  });
  after(() => {
    client?.close();
    server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('calls finish out of order on one connection', async () => {
    const slow = client.call('test.Echo', 'Slow', Buffer.from('slow'));
    const fast = await client.call('test.Echo', 'Echo', Buffer.from('fast'));
    assert.equal(fast.toString(), 'fast');
    release();
    assert.equal((await slow).toString(), 'slow');
  });
  test('statuses: NotFound, Unknown, InvalidArgument for a malformed payload, Unimplemented', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => -1,
        (e: RpcError) => e.code,
      );
    assert.equal(await code(client.call('test.Echo', 'Missing', Buffer.alloc(0))), Code.NotFound);
    assert.equal(await code(client.call('test.Echo', 'Throws', Buffer.alloc(0))), Code.Unknown);
    assert.equal(await code(client.call('test.Echo', 'Decode', Buffer.from([0x0a, 0x09]))), Code.InvalidArgument);
    assert.equal(await code(client.call('test.Echo', 'Nope', Buffer.alloc(0))), Code.Unimplemented);
    assert.equal(await code(client.call('test.Nope', 'Echo', Buffer.alloc(0))), Code.Unimplemented);
    assert.equal((await client.call('test.Echo', 'Echo', Buffer.from('still here'))).toString(), 'still here');
  });
  test("messages end with containerd's errdefs class, as its Go shims' do (containerd 2.x shows them as sent)", async () => {
    const message = (p: Promise<unknown>) =>
      p.then(
        () => '',
        (e: RpcError) => e.message,
      );
    assert.equal(await message(client.call('test.Echo', 'Missing', Buffer.alloc(0))), 'no such thing: not found');
    assert.equal(await message(client.call('test.Echo', 'MissingClassed', Buffer.alloc(0))), 'container c: not found');
    assert.equal(await message(client.call('test.Echo', 'Exists', Buffer.alloc(0))), 'exec e: already exists');
    assert.equal(await message(client.call('test.Echo', 'Throws', Buffer.alloc(0))), 'plain failure', 'Unknown: as is');
  });
  test('raw bad frames: garbage request, even stream id, oversized frame; the connection keeps serving', async () => {
    const s = net.createConnection(sock);
    await new Promise((r) => s.once('connect', r));
    const answers: Frame[] = [];
    const reader = new FrameReader((f) => answers.push(f));
    s.on('data', (d: Buffer) => reader.push(d));
    s.write(encodeFrame({ streamId: 1, type: TYPE_REQUEST, flags: 0, payload: Buffer.from([0xff, 0xff]) }));
    s.write(
      encodeFrame({
        streamId: 2,
        type: TYPE_REQUEST,
        flags: 0,
        payload: encodeRequest({ service: 'test.Echo', method: 'Echo', payload: Buffer.from('x') }),
      }),
    );
    const h = Buffer.alloc(HEADER);
    h.writeUInt32BE(MAX_PAYLOAD + 10, 0);
    h.writeUInt32BE(3, 4);
    h.writeUInt8(TYPE_REQUEST, 8);
    s.write(Buffer.concat([h, Buffer.alloc(MAX_PAYLOAD + 10)]));
    s.write(
      encodeFrame({
        streamId: 5,
        type: TYPE_REQUEST,
        flags: 0,
        payload: encodeRequest({ service: 'test.Echo', method: 'Echo', payload: Buffer.from('ok') }),
      }),
    );
    const end = Date.now() + 10_000;
    while (answers.length < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    s.destroy();
    const byId = new Map(answers.map((f) => [f.streamId, decodeResponse(f.payload)]));
    assert.ok(answers.every((f) => f.type === TYPE_RESPONSE));
    assert.equal(byId.get(1)?.code, Code.InvalidArgument);
    assert.equal(byId.get(2)?.code, Code.InvalidArgument);
    assert.equal(byId.get(3)?.code, 8 /* ResourceExhausted */);
    assert.equal(byId.get(5)?.code, 0);
    assert.equal(byId.get(5)?.payload.toString(), 'ok');
  });
});

describe('shim command line and address', () => {
  test('Go flag syntax: -f v, --f v, -f=v, booleans, the subcommand last', () => {
    const f = parseFlags([
      '-namespace',
      'ns',
      '--address=/a.sock',
      '-publish-binary',
      '/bin/x',
      '-id',
      'c1',
      '-debug',
      'start',
    ]);
    assert.deepEqual(f, {
      namespace: 'ns',
      address: '/a.sock',
      publishBinary: '/bin/x',
      id: 'c1',
      bundle: '',
      debug: true,
      version: false,
      command: 'start',
    });
    assert.equal(parseFlags(['-namespace', 'n', '-id', 'x']).command, '');
    assert.throws(() => parseFlags(['-nope', 'x']), FlagError);
    assert.throws(() => parseFlags(['-id']), FlagError);
    assert.throws(() => parseFlags(['-id', 'x', 'frobnicate']), FlagError);
  });
  test("routine delete (nothing left): the launchers and Node all answer runc's DeleteResponse, 137 at now", () => {
    const repo = path.join(__dirname, '..', '..');
    const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-shim-delete-'));
    const ns = `hako-test-${process.pid}`;
    try {
      for (const argv of [
        [path.join(repo, 'bin', 'containerd-shim-hako-v2')], // the native launcher in a built checkout
        [path.join(repo, 'bin', 'containerd-shim-hako-v2.sh')],
        [process.execPath, path.join(repo, 'bin', 'hako-shim.js')],
      ]) {
        // The sh launcher takes now as boot time + uptime, whole seconds: up to a second or two behind.
        const before = Math.floor(Date.now() / 1000);
        const r = spawnSync(argv[0], [...argv.slice(1), '-namespace', ns, '-id', 'gone', '-bundle', bundle, 'delete'], {
          cwd: bundle,
          timeout: 30_000,
        });
        assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
        const f = new Fields(r.stdout);
        assert.equal(f.uint(1), 0, 'pid: none');
        assert.equal(f.uint(2), 137, 'exit_status: 128 + SIGKILL');
        const atMs = decodeTimestamp(f.bytes(3)) ?? 0;
        assert.ok(atMs / 1000 >= before - 2 && atMs <= Date.now(), `exited_at ${new Date(atMs).toISOString()}`);
        assert.ok(!fs.existsSync(path.join('/run/containerd/hako', ns)), 'no state made');
      }
    } finally {
      fs.rmSync(bundle, { recursive: true, force: true });
    }
  });
  test("the socket address is runc's: sha256 of address/namespace/group under /run/containerd/s", () => {
    // echo -n /run/containerd/containerd.sock/default/c1 | sha256sum
    assert.equal(
      socketPath('/run/containerd/containerd.sock', 'default', 'c1'),
      '/run/containerd/s/d25aa4ef11a84e954e74a5bcff06557d0b6ea8d0c00243896f29826694bbd888',
    );
  });
});
