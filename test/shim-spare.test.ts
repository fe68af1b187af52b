// The spare shim server (lib/shim/spare.ts, the claim of lib/shim/spare-protocol.ts): a server with HAKO_SHIM_SPARE=1
// starts one after its group's first container started; a claim makes it the new group's server, which runs real
// containers; one claim only wins; bad claims are refused while it keeps waiting; a spare killed mid-claim leaves
// nothing a normal start does not take over; it leaves with its containerd. Real processes and containers, driven
// as containerd drives the shim (test/helpers/shim.ts); a listening socket of this process plays containerd's.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { socketPath } from '../lib/shim/address';
import { liveShim, recordPath } from '../lib/shim/dead-shim';
import { ensureSpare } from '../lib/shim/spare-starter';
import { claimSpare } from '../lib/shim/spare-client';
import {
  ClaimError,
  claimLength,
  decodeClaim,
  encodeClaim,
  MAX_CLAIM_BYTES,
  spareSocketPath,
  type Claim,
} from '../lib/shim/spare-protocol';
import { addon } from '../lib/native/addon';
import { pidsByArgv } from '../lib/runtime/proc';
import { BUSYBOX, tmpDir } from './helpers/env';
import { SHIM_LAUNCHER, SHIM_MAIN, ShimEnv, TaskClient, waitGone } from './helpers/shim';

const NS = `hako-spare-${process.pid}`;
const root = process.getuid?.() === 0;
const skip = (!root && 'needs root') || (!BUSYBOX && 'needs busybox') || (!addon().dup2 && 'the addon has no dup2');

/** bin/containerd-shim-hako-v2 is the native launcher (install.js puts it there when it runs here), which claims. */
const nativeLauncher =
  spawnSync(SHIM_LAUNCHER, ['--hako-launcher'], { encoding: 'utf8', timeout: 10_000 }).stdout ===
  'hako-shim-launcher\n';

let env: ShimEnv;
/** Listening sockets that play containerd (a spare leaves when its containerd's socket is gone). */
const containerds = new Map<string, net.Server>();
const servers = new Set<number>();

async function playContainerd(address: string): Promise<void> {
  const s = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(address, r));
  containerds.set(address, s);
}

async function stopContainerd(address: string): Promise<void> {
  const s = containerds.get(address);
  containerds.delete(address);
  if (s) await new Promise((r) => s.close(r));
}

/** Pids of spare processes (`... -address ADDRESS spare`) of containerd `address`, claimed or not. */
function sparePids(address: string): number[] {
  return pidsByArgv((argv) => {
    const i = argv.indexOf('-address');
    return i > 0 && argv[i + 1] === address && argv[i + 2] === 'spare';
  }).filter((p) => !fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.startsWith('Z'));
}

/**
 * The spare waiting for containerd `address`: its pid, once it runs its own code (a claim that is not one is
 * answered by closing; before that, the socket its starter bound holds connections in its backlog).
 */
async function waitSpare(address: string, except: number[] = [], ms = 15_000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const pids = sparePids(address).filter((p) => !except.includes(p) && !servers.has(p));
    if (pids.length === 1 && fs.existsSync(spareSocketPath(address))) {
      assert.equal(await rawClaim(address, Buffer.from('not a claim')), '');
      if (sparePids(address).includes(pids[0])) return pids[0];
    }
    assert.ok(pids.length <= 1, `one spare for ${address}, found ${pids.join(', ')}`);
    assert.ok(Date.now() < deadline, `no spare for ${address} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function claimFor(id: string, address = env.address, extra: string[] = []): Claim {
  const e: NodeJS.ProcessEnv = { ...process.env, HAKO_SHIM_SPARE: '1' };
  delete e.TTRPC_ADDRESS; // no containerd to publish events to
  return {
    cwd: path.join(env.base, NS, id),
    socket: socketPath(address, NS, id),
    args: ['-namespace', NS, '-address', address, '-publish-binary', '/bin/false', ...extra, '-id', id, 'start'],
    env: Object.entries(e).map(([k, v]) => `${k}=${v}`),
  };
}

/** Sends raw bytes to the spare of `address`; resolves with what came back before EOF. */
function rawClaim(address: string, bytes: Buffer, opts: { gid?: number } = {}): Promise<string> {
  if (opts.gid !== undefined) {
    // A peer that is not the spare's user: a root child with another gid (the spare requires both its uid and gid).
    const code = `const c=require('net').createConnection(${JSON.stringify(spareSocketPath(address))});let o='';
      c.on('connect',()=>c.write(Buffer.from(${JSON.stringify(bytes.toString('base64'))},'base64')));
      c.on('data',(d)=>o+=d);c.on('close',()=>process.stdout.write(JSON.stringify(o)));c.on('error',()=>{});`;
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', code], { gid: opts.gid, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', () => resolve(JSON.parse(out || '""') as string));
    });
  }
  return new Promise((resolve) => {
    let out = '';
    const c = net.createConnection(spareSocketPath(address));
    c.on('connect', () => c.write(bytes));
    c.on('data', (d) => (out += d));
    c.on('close', () => resolve(out));
    c.on('error', () => {});
  });
}

/** Runs `true` in container `id` through the server at `sock`: the exit status; the server's pid is noted. */
async function runThrough(sock: string, id: string): Promise<{ status: number; pid: number }> {
  const client = await TaskClient.connect(sock);
  try {
    const pid = await client.shimPid();
    servers.add(pid);
    return { status: await client.runToExit(id, env.createRequest(id)), pid };
  } finally {
    client.close();
  }
}

async function shutdown(sock: string, pid: number): Promise<void> {
  const client = await TaskClient.connect(sock);
  await client.shutdown();
  assert.ok(await waitGone(pid), `server ${pid} left after Shutdown`);
  servers.delete(pid);
  assert.ok(!fs.existsSync(sock), `${sock} removed by the server that left`);
  assert.ok(!fs.existsSync(recordPath(sock)), 'and its record');
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

describe('spare claim bytes, as lib/shim/spare-protocol.ts specifies them (the native launcher sends the same)', () => {
  const sock = `/run/containerd/s/${'ab'.repeat(32)}`;
  const claim: Claim = { cwd: '/b', socket: sock, args: ['-id', 'x', 'start'], env: ['A=1', 'B='] };
  const body = Buffer.from(`/b\0${sock}\x003\0-id\0x\0start\x002\0A=1\0B=\0`);

  test('"HSPR", the body length as u32 little-endian, NUL-terminated strings; decoded back', () => {
    const bytes = encodeClaim(claim);
    assert.equal(bytes.toString('latin1', 0, 4), 'HSPR');
    assert.equal(bytes.readUInt32LE(4), body.length);
    assert.deepEqual(bytes.subarray(8), body);
    assert.equal(claimLength(bytes.subarray(0, 8)), body.length);
    assert.deepEqual(decodeClaim(body), claim);
    assert.equal(
      spareSocketPath('/run/containerd/containerd.sock').length,
      '/run/containerd/hako-shims/spare-'.length + 37,
    );
  });

  test('each broken rule is a ClaimError naming the field', () => {
    const bad = (b: Buffer, field: RegExp) =>
      assert.throws(
        () => decodeClaim(b),
        (e: Error) => e instanceof ClaimError && field.test(e.message),
      );
    bad(body.subarray(0, body.length - 1), /NUL/);
    bad(Buffer.from(body.toString().replace('\x003\0', '\x004\0')), /arguments announced|envc/);
    bad(Buffer.from(body.toString().replace('\x003\0', '\x0003\0')), /argc/);
    bad(Buffer.from(body.toString().replace('\x002\0', '\x003\0')), /environment strings announced/);
    bad(Buffer.from(body.toString() + 'extra\0'), /after the environment/);
    bad(Buffer.from(body.toString().replace('A=1', '=1')), /environment string 0/);
    bad(Buffer.from(body.toString().replace('/b\0', '/b/../c\0')), /cwd/);
    bad(Buffer.from(body.toString().replace(sock, '/run/containerd/s/x')), /socket/);
    assert.throws(() => claimLength(Buffer.from('HSPX\0\0\0\0')), /magic/);
    const long = Buffer.from('HSPR\0\0\0\0');
    long.writeUInt32LE(MAX_CLAIM_BYTES + 1, 4);
    assert.throws(() => claimLength(long), /length/);
  });
});

describe('shim spare: a started server that the next new group claims', { skip }, () => {
  let address2: string;

  before(async () => {
    const base = tmpDir('shim-spare');
    fs.chmodSync(base, 0o755);
    env = new ShimEnv(base, NS);
    address2 = path.join(base, 'containerd2.sock');
    await playContainerd(env.address);
    await playContainerd(address2);
  });

  after(async () => {
    for (const a of [env.address, address2]) for (const p of sparePids(a)) kill(p);
    for (const p of servers) kill(p);
    for (const id of fs.existsSync(env.hakoRoot) ? fs.readdirSync(env.hakoRoot) : []) env.delete(id);
    for (const a of [env.address, address2]) {
      for (const p of sparePids(a)) assert.ok(await waitGone(p), `spare ${p} of ${a} gone`);
      await stopContainerd(a);
      fs.rmSync(spareSocketPath(a), { force: true });
    }
    fs.rmSync(env.hakoRoot, { recursive: true, force: true });
    env.removeCgroups();
  });

  test('HAKO_SHIM_SPARE unset starts no spare; HAKO_SHIM_SPARE=1 starts one after the first container', async () => {
    const saved = process.env.HAKO_SHIM_SPARE;
    delete process.env.HAKO_SHIM_SPARE;
    try {
      env.bundle('plain', ['true']);
      const sock = env.start('plain');
      const { status, pid } = await runThrough(sock, 'plain');
      assert.equal(status, 0);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(sparePids(env.address), [], 'no spare process');
      assert.ok(!fs.existsSync(spareSocketPath(env.address)), 'no spare socket');
      await shutdown(sock, pid);

      env.bundle('first', ['true']);
      const sock1 = env.start('first', { HAKO_SHIM_SPARE: '1' });
      assert.deepEqual(sparePids(env.address), [], 'no spare before a container started');
      const first = await runThrough(sock1, 'first');
      assert.equal(first.status, 0);
      const spare = await waitSpare(env.address);
      assert.notEqual(spare, first.pid);
      assert.equal(fs.statSync(spareSocketPath(env.address)).mode & 0o777, 0o600, 'the spare socket is 0600');
      await shutdown(sock1, first.pid);
      assert.deepEqual(sparePids(env.address), [spare], 'the spare outlives the server that started it');
    } finally {
      if (saved !== undefined) process.env.HAKO_SHIM_SPARE = saved;
    }
  });

  test('a claimed spare serves its group: container, record, address, log FIFO; then starts the next spare', async () => {
    const spare = await waitSpare(env.address);
    const id = 'claimed';
    const bundle = env.bundle(id, ['true']);
    const log = path.join(bundle, 'log');
    fs.rmSync(log, { force: true });
    assert.equal(spawnSync('mkfifo', [log]).status, 0, 'mkfifo');
    const reader = fs.openSync(log, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // containerd's end
    try {
      const claim = claimFor(id, env.address, ['-debug']);
      const answer = await claimSpare(env.address, claim);
      assert.equal(answer, `unix://${claim.socket}`);
      assert.equal(fs.readFileSync(path.join(bundle, 'address'), 'utf8'), answer, '<bundle>/address');
      assert.equal(liveShim(claim.socket), spare, 'the record names the spare');
      const { status, pid } = await runThrough(claim.socket, id);
      assert.equal(status, 0, 'the container ran in the claimed spare');
      assert.equal(pid, spare, 'served by the spare process');
      const next = await waitSpare(env.address, [spare]);
      assert.notEqual(next, spare, 'the claimed spare started the next one');
      const buf = Buffer.alloc(65536);
      const n = fs.readSync(reader, buf, 0, buf.length, null);
      assert.match(buf.toString('utf8', 0, n), new RegExp(`hako-shim\\[${spare}\\] serving ${claim.socket}`));
      await shutdown(claim.socket, pid);
    } finally {
      fs.closeSync(reader);
    }
  });

  test('two claims at once: one wins, the other falls back to a normal start', async () => {
    const spare = await waitSpare(env.address);
    for (const id of ['race-a', 'race-b']) env.bundle(id, ['true']);
    const claims = [claimFor('race-a'), claimFor('race-b')];
    const answers = await Promise.all(claims.map((c) => claimSpare(env.address, c)));
    assert.equal(answers.filter((a) => a !== undefined).length, 1, `one winner: ${answers.join(', ')}`);
    const w = answers[0] ? 0 : 1;
    const winner = claims[w];
    const loser = claims[1 - w];
    assert.ok(!fs.existsSync(loser.socket), 'no socket for the loser');
    const fallback = env.start(['race-a', 'race-b'][1 - w]);
    assert.equal(fallback, loser.socket);
    const won = await runThrough(winner.socket, ['race-a', 'race-b'][w]);
    const lost = await runThrough(loser.socket, ['race-a', 'race-b'][1 - w]);
    assert.equal(won.status, 0);
    assert.equal(lost.status, 0);
    assert.equal(won.pid, spare, 'the winner is served by the spare');
    assert.notEqual(lost.pid, spare, 'the loser by a server of its own');
    await waitSpare(env.address, [spare]);
    await shutdown(winner.socket, won.pid);
    await shutdown(loser.socket, lost.pid);
  });

  test('hostile claims are refused and the spare keeps waiting', async () => {
    const spare = await waitSpare(env.address);
    const id = 'hostile';
    env.bundle(id, ['true']);
    const good = claimFor(id);
    const bytes = encodeClaim(good);
    const magic = Buffer.from(bytes);
    magic.write('XSPR', 0, 'latin1');
    const oversized = Buffer.from(bytes);
    oversized.writeUInt32LE(MAX_CLAIM_BYTES + 1, 4);
    const cases: [string, Buffer, { gid?: number }?][] = [
      ['wrong magic', magic],
      ['oversized length', oversized],
      ['truncated body', bytes.subarray(0, bytes.length - 3)],
      ['bytes after the claim', Buffer.concat([bytes, Buffer.from('x')])],
      [
        'a length that is not the body’s',
        Buffer.concat([bytes.subarray(0, 4), Buffer.from([5, 0, 0, 0]), bytes.subarray(8, 13)]),
      ],
      ['socket outside /run/containerd/s', encodeClaim({ ...good, socket: '/tmp/hako-spare-evil' })],
      ['socket named not as a group', encodeClaim({ ...good, socket: '/run/containerd/s/../hako-shims/x' })],
      ['relative cwd', encodeClaim({ ...good, cwd: 'bundle' })],
      ['cwd that is no directory', encodeClaim({ ...good, cwd: '/nonexistent-hako-bundle' })],
      ['another containerd', encodeClaim(claimFor(id, address2))],
      ['not start', encodeClaim({ ...good, args: good.args.map((a) => (a === 'start' ? 'delete' : a)) })],
      ['an unknown flag', encodeClaim({ ...good, args: ['-evil', ...good.args] })],
      ['environment string without =', encodeClaim({ ...good, env: ['NOEQUALS'] })],
      ['another peer (gid 65534)', bytes, { gid: 65534 }],
    ];
    for (const [name, b, opts] of cases) {
      assert.equal(await rawClaim(env.address, b, opts), '', `${name}: no answer`);
      assert.ok(!fs.existsSync(good.socket), `${name}: no group socket`);
      assert.deepEqual(sparePids(env.address), [spare], `${name}: the spare still waits`);
      assert.ok(fs.existsSync(spareSocketPath(env.address)), `${name}: its socket is still there`);
    }
    // A claimer that connects and sends nothing is dropped after a while, and holds nobody up meanwhile.
    const idle = net.createConnection(spareSocketPath(env.address));
    idle.on('error', () => {});
    const answer = await claimSpare(env.address, good);
    idle.destroy();
    assert.equal(answer, `unix://${good.socket}`, 'a good claim after the bad ones is served');
    const { status, pid } = await runThrough(good.socket, id);
    assert.equal(status, 0);
    assert.equal(pid, spare);
    await waitSpare(env.address, [spare]);
    await shutdown(good.socket, pid);
  });

  for (const point of ['spare: claimed', 'spare: serving'])
    test(`a spare killed mid-claim (${point}): the claimer falls back, and nothing of the spare is left`, async () => {
      // A spare of the second containerd, started from here with the kill point in its environment.
      const script = SHIM_MAIN;
      const pid = await ensureSpare(address2, script, { ...process.env, HAKO_TEST_KILL_AT: point });
      assert.ok(pid, 'a spare started');
      assert.equal(await waitSpare(address2), pid);
      const id = `killed-${point.split(' ')[1]}`;
      env.bundle(id, ['true']);
      const claim = claimFor(id, address2);
      assert.equal(await claimSpare(address2, claim), undefined, 'no answer from a spare that died');
      assert.ok(await waitGone(pid));
      assert.equal(liveShim(claim.socket), undefined, 'no live server recorded for the group');
      // The claimer's fallback: a normal start, which takes over whatever the dead spare left.
      const sock = env.start(id, {}, address2);
      assert.equal(sock, claim.socket);
      const ran = await runThrough(sock, id);
      assert.equal(ran.status, 0);
      assert.notEqual(ran.pid, pid);
      assert.equal(liveShim(sock), ran.pid, 'the record is the new server’s');
      await shutdown(sock, ran.pid);
      // The dead spare's own socket, if it left one, is taken over by the next spare.
      const next = await ensureSpare(address2, script);
      assert.ok(next, 'a new spare replaces the dead one');
      assert.equal(await waitSpare(address2), next);
      process.kill(next, 'SIGTERM');
      assert.ok(await waitGone(next));
      assert.ok(!fs.existsSync(spareSocketPath(address2)), 'a spare that leaves removes its socket');
    });

  test('the native launcher hands a new group to the spare; without HAKO_SHIM_SPARE it starts Node', async (t) => {
    if (!nativeLauncher) return t.skip('bin/containerd-shim-hako-v2 is not the native launcher here');
    const launch = (id: string, spare: boolean) => {
      const e: NodeJS.ProcessEnv = { ...process.env, HAKO_SHIM_SPARE: spare ? '1' : undefined };
      delete e.TTRPC_ADDRESS;
      if (!spare) delete e.HAKO_SHIM_SPARE;
      const r = spawnSync(
        SHIM_LAUNCHER,
        ['-namespace', NS, '-address', env.address, '-publish-binary', '/bin/false', '-id', id, 'start'],
        {
          cwd: path.join(env.base, NS, id),
          env: e,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: 30_000,
        },
      );
      assert.equal(r.status, 0, `launcher start: ${r.stderr}`);
      const sock = socketPath(env.address, NS, id);
      assert.equal(r.stdout, `unix://${sock}`);
      return sock;
    };
    const spare = await waitSpare(env.address);
    env.bundle('via-launcher', ['true']);
    const sock = launch('via-launcher', true);
    assert.equal(liveShim(sock), spare, 'the launcher’s new group is served by the spare');
    const ran = await runThrough(sock, 'via-launcher');
    assert.equal(ran.status, 0);
    assert.equal(ran.pid, spare);
    await shutdown(sock, ran.pid);
    const next = await waitSpare(env.address, [spare]);
    env.bundle('no-claim', ['true']);
    const sock2 = launch('no-claim', false);
    const booted = await runThrough(sock2, 'no-claim');
    assert.equal(booted.status, 0);
    assert.notEqual(booted.pid, next, 'without HAKO_SHIM_SPARE the launcher claims nothing');
    assert.deepEqual(sparePids(env.address), [next], 'and the spare keeps waiting');
    await shutdown(sock2, booted.pid);
  });

  test('a spare leaves when its containerd’s socket is gone', async () => {
    const pid = await ensureSpare(address2, SHIM_MAIN);
    assert.ok(pid);
    assert.equal(await waitSpare(address2), pid);
    assert.equal(await ensureSpare(address2, SHIM_MAIN), undefined, 'one spare per containerd');
    await stopContainerd(address2);
    assert.ok(!fs.existsSync(address2));
    assert.ok(await waitGone(pid, 10_000), 'the spare left');
    assert.ok(!fs.existsSync(spareSocketPath(address2)), 'and removed its socket');
    await playContainerd(address2);
  });
});
