// What a dead shim leaves (lib/shim/dead-shim.ts): containerd runs `containerd-shim-hako-v2 delete` for each
// container of a shim that died; the delete that finds the group empty removes the shim's socket in
// /run/containerd/s and its record in /run/containerd/hako-shims. A live shim's socket and record are never removed:
// not while it serves, and not when a new shim has taken the dead one's socket over. Driven through the launcher
// and the shim's ttrpc socket as containerd drives them, with real containers (test/helpers/shim.ts).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Fields, Writer } from '../lib/shim/proto';
import { isMountPoint } from '../lib/shim/rootfs';
import { recordPath, sweepDeadShims } from '../lib/shim/dead-shim';
import { SHIM_RECORDS, SOCKET_DIR } from '../lib/shim/address';
import { addon } from '../lib/native/addon';
import { BUSYBOX, tmpDir } from './helpers/env';
import { ShimEnv, TaskClient, waitGone } from './helpers/shim';

const NS = `hako-dead-${process.pid}`;
const root = process.getuid?.() === 0;
const skip = (!root && 'needs root') || (!BUSYBOX && 'needs busybox');

let env: ShimEnv;
const shims = new Set<number>();

/** A shim for `ids` (one group when `group` is set), each running `sleep 300`; its socket, pid and the inits' pids. */
async function groupOf(ids: string[], group?: string): Promise<{ sock: string; pid: number; inits: number[] }> {
  const annotations = group ? { 'io.containerd.runc.v2.group': group } : undefined;
  for (const id of ids) env.bundle(id, ['sleep', '300'], annotations);
  const socks = ids.map((id) => env.start(id));
  assert.equal(new Set(socks).size, 1, 'one socket for the group');
  const client = await TaskClient.connect(socks[0]);
  const inits: number[] = [];
  for (const id of ids) {
    await client.call('Create', env.createRequest(id));
    await client.call('Start', new Writer().string(1, id));
    inits.push(new Fields(await client.call('State', new Writer().string(1, id))).uint(3));
  }
  const pid = await client.shimPid();
  client.close();
  shims.add(pid);
  return { sock: socks[0], pid, inits };
}

function deleteOk(id: string): void {
  const r = env.delete(id);
  assert.equal(r.status, 0, `delete ${id}: ${r.stderr}`);
  assert.ok(!fs.existsSync(path.join(env.hakoRoot, id)), `hako state of ${id} removed`);
  assert.ok(!isMountPoint(path.join(env.base, NS, id, 'rootfs')), `rootfs of ${id} unmounted`);
}

describe('a dead shim leaves no socket and no record', { skip }, () => {
  before(() => {
    const base = tmpDir('shim-dead');
    fs.chmodSync(base, 0o755);
    env = new ShimEnv(base, NS);
  });

  after(async () => {
    for (const pid of shims)
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    for (const id of fs.existsSync(env.hakoRoot) ? fs.readdirSync(env.hakoRoot) : []) env.delete(id);
    fs.rmSync(env.hakoRoot, { recursive: true, force: true });
    env.removeCgroups();
  });

  test('delete while the shim lives: its socket and record stay', async () => {
    const { sock, pid } = await groupOf(['solo']);
    assert.equal(fs.readFileSync(recordPath(sock), 'utf8').split(' ')[0], String(pid));
    deleteOk('solo');
    assert.ok(fs.existsSync(sock), 'the live shim keeps its socket');
    assert.ok(fs.existsSync(recordPath(sock)), 'and its record');
    const client = await TaskClient.connect(sock);
    assert.equal(await client.shimPid(), pid, 'and still serves');
    await client.shutdown();
    assert.ok(await waitGone(pid));
    assert.ok(!fs.existsSync(sock) && !fs.existsSync(recordPath(sock)), 'a shim that leaves removes both itself');
  });

  test('a SIGKILLed shim: the delete of its group’s last container removes its socket and record', async () => {
    const { sock, pid, inits } = await groupOf(['g-a', 'g-b'], 'g');
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitGone(pid));
    assert.ok(fs.existsSync(sock) && fs.existsSync(recordPath(sock)), 'the dead shim left both');
    deleteOk('g-a');
    assert.ok(fs.existsSync(sock), 'the group still has g-b: the socket stays until its delete');
    deleteOk('g-b');
    assert.ok(!fs.existsSync(sock), `the dead shim's socket ${sock} is removed`);
    assert.ok(!fs.existsSync(recordPath(sock)), 'and its record');
    for (const p of inits) assert.ok(await waitGone(p, 5000), `container process ${p} killed`);
  });

  test('a new shim that took over a dead one’s socket keeps it through the dead one’s deletes', async () => {
    const dead = await groupOf(['h-a'], 'h');
    process.kill(dead.pid, 'SIGKILL');
    assert.ok(await waitGone(dead.pid));
    // A new container of the group before containerd cleaned up: its shim replaces the socket nobody accepts on.
    env.bundle('h-new', ['true'], { 'io.containerd.runc.v2.group': 'h' });
    assert.equal(env.start('h-new'), dead.sock);
    const client = await TaskClient.connect(dead.sock);
    const live = await client.shimPid();
    shims.add(live);
    assert.notEqual(live, dead.pid);
    deleteOk('h-a');
    assert.ok(fs.existsSync(dead.sock), 'the new shim keeps the socket');
    assert.equal(fs.readFileSync(recordPath(dead.sock), 'utf8').split(' ')[0], String(live), 'and its record');
    assert.equal(await client.shimPid(), live, 'and still serves');
    await client.shutdown();
    assert.ok(await waitGone(live));
  });

  test('a shim killed with no container left: the next shim sweeps its socket and record', async () => {
    const dead = await groupOf(['k-a'], 'k');
    deleteOk('k-a'); // through the shim: containerd then has no task of this group, and runs no delete for it
    process.kill(dead.pid, 'SIGKILL');
    assert.ok(await waitGone(dead.pid));
    assert.ok(fs.existsSync(dead.sock) && fs.existsSync(recordPath(dead.sock)), 'the dead shim left both');
    const next = await groupOf(['k-next']); // another group's new shim sweeps a second after it serves
    const deadline = Date.now() + 10_000;
    while (fs.existsSync(recordPath(dead.sock)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!fs.existsSync(recordPath(dead.sock)), `the dead shim's record is removed`);
    assert.ok(!fs.existsSync(dead.sock), `and its socket ${dead.sock}`);
    assert.ok(fs.existsSync(next.sock) && fs.existsSync(recordPath(next.sock)), 'the sweeping shim keeps its own');
    deleteOk('k-next');
  });

  test('the sweep leaves a socket newer than the dead record (a new shim not listening or recorded yet)', async () => {
    const name = 'f'.repeat(56) + process.pid.toString(16).padStart(8, '0');
    const sock = path.join(SOCKET_DIR, name);
    const record = path.join(SHIM_RECORDS, `${name}.pid`);
    fs.mkdirSync(SHIM_RECORDS, { recursive: true, mode: 0o700 });
    // A record of a pid that is not a shim (the kernel's pid 2, with another start time) from a minute ago...
    fs.writeFileSync(record, '2 1\n');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(record, old, old);
    // ...and a socket bound after it, nobody accepting on it (its fd closed): the sweep must not take it.
    fs.rmSync(sock, { force: true });
    fs.closeSync(addon().listenUnix(sock, 0o600));
    try {
      const gone = await sweepDeadShims();
      assert.ok(!gone.includes(sock) && fs.existsSync(sock), 'the newer socket stays');
      assert.ok(fs.existsSync(record), 'and so does the record that goes with it, for the new shim to replace');
      // The same socket older than the record is the dead shim's: both go.
      fs.utimesSync(record, new Date(), new Date());
      const later = await sweepDeadShims();
      assert.ok(later.includes(sock) && later.includes(record), `swept: ${later.join(', ')}`);
      assert.ok(!fs.existsSync(sock) && !fs.existsSync(record));
    } finally {
      fs.rmSync(sock, { force: true });
      fs.rmSync(record, { force: true });
    }
  });
});
