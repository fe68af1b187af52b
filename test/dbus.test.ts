// The hand-written D-Bus client (lib/dbus) against a real bus: a private `dbus-daemon --session` started for
// the test. Marshalling round trips are checked locally; the daemon checks that what we send is what the
// specification says (it parses and validates every message, and disconnects a client that sends a bad one).
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Bus, type DBusError, Variant, parseAddress } from '../lib/dbus/bus';
import {
  Reader,
  Writer,
  decodeMessage,
  encodeMessage,
  messageLength,
  MessageType,
  splitSignature,
} from '../lib/dbus/marshal';

const haveDaemon = spawnSync('dbus-daemon', ['--version']).status === 0;
let daemon: ChildProcess | undefined;
let address = '';
let dir = '';

before(async () => {
  if (!haveDaemon) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-dbus-'));
  const sock = path.join(dir, 'bus');
  daemon = spawn(
    'dbus-daemon',
    ['--session', '--nofork', '--nopidfile', `--address=unix:path=${sock}`, '--print-address=1'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  address = await new Promise<string>((resolve, reject) => {
    let out = '';
    daemon!.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
    daemon!.once('exit', (c) => reject(new Error(`dbus-daemon exited ${c}`)));
  });
});

after(() => {
  daemon?.kill();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const DBUS = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' };

test('signatures split into complete types', () => {
  assert.deepEqual(splitSignature('sa(sv)a(sa(sv))obtasay'), ['s', 'a(sv)', 'a(sa(sv))', 'o', 'b', 't', 'as', 'ay']);
  assert.deepEqual(splitSignature('a{sv}(ii)'), ['a{sv}', '(ii)']);
  assert.throws(() => splitSignature('a('), /unclosed/);
  assert.throws(() => splitSignature('{ss}'), /dict entry outside an array/);
  assert.throws(() => splitSignature('z'), /unknown type code/);
});

test('every type the driver sends reads back as written, with the padding the specification asks', () => {
  const sig = 'ysa(sv)a(sa(sv))obtasayxnqid';
  const values = [
    7,
    'hako-x.scope',
    [
      ['Delegate', new Variant('b', true)],
      ['PIDs', new Variant('au', [1, 4294967295])],
      ['MemoryMax', new Variant('t', 0xffffffffffffffffn)],
    ],
    [['x', [['y', new Variant('s', 'z')]]]],
    '/org/freedesktop/systemd1',
    false,
    12n,
    ['a', ''],
    Buffer.from([1, 0, 255]),
    -5n,
    -2,
    65535,
    -2147483648,
    1.5,
  ];
  const w = new Writer();
  w.write(sig, values);
  const buf = w.result();
  const got = new Reader(buf, true).read(sig);
  assert.equal(got[0], 7);
  assert.equal(got[1], 'hako-x.scope');
  const props = got[2] as [string, Variant][];
  assert.deepEqual(
    props.map(([k, v]) => [k, v.signature, v.value]),
    [
      ['Delegate', 'b', true],
      ['PIDs', 'au', [1, 4294967295]],
      ['MemoryMax', 't', 0xffffffffffffffffn],
    ],
  );
  assert.deepEqual((got[3] as unknown[][])[0][0], 'x');
  assert.deepEqual(got.slice(4), [
    '/org/freedesktop/systemd1',
    false,
    12n,
    ['a', ''],
    Buffer.from([1, 0, 255]),
    -5n,
    -2,
    65535,
    -2147483648,
    1.5,
  ]);
  // Spot checks of the layout itself: 'y' at 0, the string's length at 4, its bytes at 8.
  assert.equal(buf[0], 7);
  assert.equal(buf.readUInt32LE(4), 'hako-x.scope'.length);
  assert.equal(buf.toString('utf8', 8, 8 + 12), 'hako-x.scope');
  // An empty array of structs: length 0, then padding to 8 that the length does not count.
  const e = new Writer();
  e.write('ya(sv)u', [1, [], 9]);
  assert.deepEqual([...e.result()], [1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]);
});

test('values that do not fit their type are refused, naming the type', () => {
  const w = new Writer();
  assert.throws(() => w.write('u', [-1]), /does not fit type "u"/);
  assert.throws(() => w.write('t', [-1n]), /does not fit type "t"/);
  assert.throws(() => w.write('b', [1]), /does not fit type "b"/);
  assert.throws(() => w.write('o', ['not/a/path']), /not an object path/);
  assert.throws(() => w.write('s', ['a\0b']), /NUL/);
  assert.throws(() => w.write('ss', ['a']), /2 types, but 1 values/);
});

test('a message encodes and decodes with its header fields, and framing waits for the whole message', () => {
  const buf = encodeMessage({
    type: MessageType.MethodCall,
    serial: 3,
    path: '/a/b',
    interface: 'x.y',
    member: 'Z',
    destination: 'x.y',
    signature: 'as',
    body: [['p', 'q']],
  });
  assert.equal(messageLength(buf.subarray(0, buf.length - 1)), 0);
  assert.equal(messageLength(buf), buf.length);
  const m = decodeMessage(buf);
  assert.deepEqual(
    [m.type, m.serial, m.path, m.interface, m.member, m.destination, m.signature, m.body],
    [1, 3, '/a/b', 'x.y', 'Z', 'x.y', 'as', [['p', 'q']]],
  );
});

test('bus addresses: path, abstract, escapes, the first unix entry', () => {
  assert.equal(parseAddress('unix:path=/run/dbus/system_bus_socket'), '/run/dbus/system_bus_socket');
  assert.equal(parseAddress('tcp:host=x;unix:path=/a%20b,guid=00'), '/a b');
  assert.equal(parseAddress('unix:abstract=/tmp/dbus-x'), '\0/tmp/dbus-x');
  assert.throws(() => parseAddress('tcp:host=x,port=1'), /no unix:path=/);
});

test(
  'a real dbus-daemon: Hello, then calls with strings, arrays, booleans and errors',
  { skip: !haveDaemon && 'dbus-daemon is not installed (apt-get install dbus)' },
  async () => {
    const bus = await Bus.connect(address);
    try {
      assert.match(bus.uniqueName, /^:1\.\d+$/);
      const [id] = await bus.call({ ...DBUS, member: 'GetId' });
      assert.match(id as string, /^[0-9a-f]{32}$/);
      const [names] = await bus.call({ ...DBUS, member: 'ListNames' });
      assert.ok((names as string[]).includes('org.freedesktop.DBus'));
      assert.ok((names as string[]).includes(bus.uniqueName));
      const [has] = await bus.call({ ...DBUS, member: 'NameHasOwner', signature: 's', body: ['org.example.Nobody'] });
      assert.equal(has, false);
      // RequestName: 'su' in, 'u' out (1 = primary owner); the name then shows up as ours.
      const [r] = await bus.call({ ...DBUS, member: 'RequestName', signature: 'su', body: ['org.hako.Test', 4] });
      assert.equal(r, 1);
      const [owner] = await bus.call({ ...DBUS, member: 'GetNameOwner', signature: 's', body: ['org.hako.Test'] });
      assert.equal(owner, bus.uniqueName);
      // The daemon's credentials answer: an a{sv} whose UnixUserID is our uid.
      const [creds] = await bus.call({
        ...DBUS,
        member: 'GetConnectionCredentials',
        signature: 's',
        body: [bus.uniqueName],
      });
      const uid = (creds as [string, Variant][]).find(([k]) => k === 'UnixUserID')?.[1];
      assert.equal(uid?.value, process.getuid!());
      // Properties.Get answers in a variant.
      const [feat] = await bus.call({
        ...DBUS,
        interface: 'org.freedesktop.DBus.Properties',
        member: 'Get',
        signature: 'ss',
        body: ['org.freedesktop.DBus', 'Features'],
      });
      assert.ok(feat instanceof Variant && feat.signature === 'as');
      await assert.rejects(
        bus.call({ ...DBUS, member: 'GetNameOwner', signature: 's', body: ['org.example.Nobody'] }),
        (e: DBusError) => {
          assert.equal(e.type, 'org.freedesktop.DBus.Error.NameHasNoOwner');
          return true;
        },
      );
      await assert.rejects(
        bus.call({ ...DBUS, member: 'NoSuchMethod' }),
        (e: DBusError) => e.type === 'org.freedesktop.DBus.Error.UnknownMethod',
      );
    } finally {
      bus.close();
    }
  },
);

test(
  'a real dbus-daemon: a signal we match arrives, with its body',
  { skip: !haveDaemon && 'dbus-daemon is not installed (apt-get install dbus)' },
  async () => {
    const a = await Bus.connect(address);
    const b = await Bus.connect(address);
    try {
      await a.call({
        ...DBUS,
        member: 'AddMatch',
        signature: 's',
        body: ["type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.hako.Sig'"],
      });
      const got = new Promise<unknown[]>((resolve) =>
        a.onSignal((m) => m.member === 'NameOwnerChanged' && resolve(m.body)),
      );
      await b.call({ ...DBUS, member: 'RequestName', signature: 'su', body: ['org.hako.Sig', 4] });
      assert.deepEqual(await got, ['org.hako.Sig', '', b.uniqueName]);
    } finally {
      a.close();
      b.close();
    }
  },
);

test('connecting to a socket nobody listens on fails naming the socket', async () => {
  await assert.rejects(
    Bus.connect('unix:path=/nonexistent/hako-bus'),
    /cannot connect to \/nonexistent\/hako-bus: ENOENT/,
  );
});
