// The runtime's waits on its children and on the init's sockets: one reaper per process, every wait
// cancellable and bounded, no fd left behind by a failed create.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, describe, test } from 'node:test';
import { addon } from '../lib/native/addon';
import { recvOne, sendControl } from '../lib/runtime/control';
import { Runtime } from '../lib/runtime/runtime';
import { disposeRoot, leftovers, makeBundle, testRoot, uniqueId } from './helpers/env';

const root = testRoot('ipc');
const rt = new Runtime({ root });
after(() => disposeRoot(root));

const openFds = () => fs.readdirSync('/proc/self/fd').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('one reaper', () => {
  test('delete --force during a pending wait(): wait() reports the SIGKILL, every time (20 runs)', async () => {
    const b = makeBundle(['/bin/probe', 'sleep', '1000']);
    for (let i = 0; i < 20; i++) {
      const id = uniqueId('reap');
      const c = await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
      await rt.start(id);
      const exit = c.wait();
      await rt.delete(id, { force: true });
      assert.deepEqual(await exit, { code: null, signal: 9, status: 137 }, `run ${i}`);
      assert.deepEqual(leftovers(root, id), []);
    }
  });

  test("a container nobody asked about stays unreaped (a CLI leaves it to the caller's subreaper); wait() then reaps it with its status", async () => {
    const b = makeBundle(['/bin/probe', 'exit', '3']);
    const id = uniqueId('late');
    const c = await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
    await rt.start(id);
    // No wait() yet: the exit is not taken. `hako exec -d` and `hako create` leave exactly like this, and the
    // containerd shim (their subreaper) must then get the real status; a reap here would take it (docker exec
    // of a quick `exit 6` hung for that).
    const state = () => fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
    for (let t = 0; t < 100 && state() !== 'Z'; t++) await sleep(20);
    assert.equal(state(), 'Z', 'exited and left for whoever asks');
    assert.deepEqual(await c.wait(), { code: 3, signal: null, status: 3 });
    assert.equal(fs.existsSync(`/proc/${c.pid}`), false, 'reaped by wait()');
    await rt.delete(id);
  });

  test('delete reaps an exited container of this process nobody waited for: no zombie, no pidfd kept', async () => {
    const b = makeBundle(['/bin/probe', 'exit', '4']);
    const id = uniqueId('del');
    const c = await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
    await rt.start(id);
    for (let t = 0; t < 100 && (await rt.state(id)).status !== 'stopped'; t++) await sleep(20);
    await rt.delete(id);
    assert.equal(fs.existsSync(`/proc/${c.pid}`), false, 'reaped by delete');
    assert.deepEqual(await c.wait(), { code: 4, signal: null, status: 4 });
  });
});

describe('receives', () => {
  test('a timed-out receive is cancelled: the fd number, closed and reused, delivers to the new receive', async () => {
    const [a, b] = addon().seqpacketPair();
    await assert.rejects(recvOne(a, 50, 'test'), /test: container init did not answer in time/);
    fs.closeSync(a);
    fs.closeSync(b);
    const [a2, b2] = addon().seqpacketPair();
    try {
      assert.equal(a2, a, 'the kernel reused the fd number (the case this test is about)');
      addon().sendMessage(b2, Buffer.from('for the new receive'));
      const got = await recvOne(a2, 2000, 'test');
      assert.equal(got.data?.toString(), 'for the new receive');
    } finally {
      fs.closeSync(a2);
      fs.closeSync(b2);
    }
  });

  test('a cancelled native receive never calls its callback, even when its fd number gets a message again', async () => {
    const [a, b] = addon().seqpacketPair();
    let oldCalls = 0;
    addon().cancelWait(addon().recvMessage(a, () => oldCalls++));
    fs.closeSync(a);
    fs.closeSync(b);
    const [a2, b2] = addon().seqpacketPair();
    try {
      assert.equal(a2, a, 'the fd number was reused');
      const got = new Promise<string>((resolve) => addon().recvMessage(a2, (_e, data) => resolve(String(data))));
      addon().sendMessage(b2, Buffer.from('new'));
      assert.equal(await got, 'new');
      await sleep(50);
      assert.equal(oldCalls, 0);
    } finally {
      fs.closeSync(a2);
      fs.closeSync(b2);
    }
  });

  test('a message with more fds than a receive takes is an error, and the fds that came are closed', async () => {
    const [a, b] = addon().seqpacketPair();
    const extra = Array.from({ length: 12 }, () => fs.openSync('/dev/null', 'r'));
    try {
      const before = openFds();
      addon().sendMessage(b, Buffer.from('many'), extra);
      await assert.rejects(recvOne(a, 2000, 'test'), /more fds than expected \(control data truncated\)/);
      assert.equal(openFds(), before, 'no received fd left open');
    } finally {
      for (const fd of [a, b, ...extra]) fs.closeSync(fd);
    }
  });

  test("the policy socket's receive follows the same rule (src-native/common/scm.h): too many fds, none handed out, none left open", () => {
    const [a, b] = addon().seqpacketPair();
    const extra = Array.from({ length: 20 }, () => fs.openSync('/dev/null', 'r'));
    try {
      const before = openFds();
      addon().sendMessage(b, Buffer.from('many'), extra);
      const r = addon().policyRecv(a, 65536);
      assert.equal(r.ctrunc, true);
      assert.deepEqual(r.fds, []);
      assert.equal(openFds(), before, 'no received fd left open');
      addon().sendMessage(b, Buffer.from('few'), extra.slice(0, 2));
      const ok = addon().policyRecv(a, 65536);
      assert.equal(ok.ctrunc, undefined);
      assert.equal(ok.fds.length, 2);
      assert.equal(ok.data?.toString(), 'few');
      for (const fd of ok.fds) fs.closeSync(fd);
    } finally {
      for (const fd of [a, b, ...extra]) fs.closeSync(fd);
    }
  });
});

describe('control exchanges', () => {
  test('a request cut short is answered with an error, never the bare close that means "executed"', async () => {
    const b = makeBundle(['/bin/probe', 'exit', '0']);
    const id = uniqueId('short');
    const c = await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
    const reply = await new Promise<string>((resolve) => {
      const s = net.createConnection(`${root}/${id}/ctl.sock`, () =>
        s.end(Buffer.from([0x48, 0x4b, 0x4f, 0x31, 3, 0])),
      ); // half a header, then EOF
      let data = '';
      s.on('data', (d) => (data += d.toString('latin1')));
      s.on('close', () => resolve(data));
    });
    assert.match(reply, /read the request: protocol error/);
    assert.equal((await rt.state(id)).status, 'created');
    await rt.start(id);
    assert.equal((await c.wait()).status, 0);
    await rt.delete(id);
  });

  test('a peer that closes without reading or answering is an error, never "executed"', async () => {
    const dir = fs.mkdtempSync('/tmp/hako-ipc-rude-');
    const sock = `${dir}/ctl.sock`;
    const server = net.createServer((c) => c.destroy()); // accepts and hangs up at once
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      // Larger than the socket buffer: the hang-up comes while the request is still being sent.
      await assert.rejects(
        sendControl(sock, Buffer.alloc(1 << 20), 'start', 5000),
        /start: container init closed the control connection before it had the whole request/,
      );
    } finally {
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a stalled init gives a timeout naming the step, releases the lock, and the failed start stops the container (10 runs)', async () => {
    const b = makeBundle(['/bin/probe', 'exit', '5']);
    for (let i = 0; i < 10; i++) {
      const id = uniqueId('stall');
      const c = await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
      process.kill(c.pid, 'SIGSTOP');
      const saved = process.env.HAKO_CONTROL_TIMEOUT_MS;
      process.env.HAKO_CONTROL_TIMEOUT_MS = '300';
      try {
        const t0 = Date.now();
        await assert.rejects(
          rt.start(id),
          /start: container init did not answer within 300 ms \(waiting for it to execute the process or refuse it\)/,
        );
        assert.ok(Date.now() - t0 < 5000, 'bounded by the timeout');
      } finally {
        if (saved === undefined) delete process.env.HAKO_CONTROL_TIMEOUT_MS;
        else process.env.HAKO_CONTROL_TIMEOUT_MS = saved;
        process.kill(c.pid, 'SIGCONT');
      }
      // A start that failed stops the container, as a start the init refuses does (a blocked init may be stuck
      // where nothing but SIGKILL reaches it): the abandoned request is never acted on, the process never ran.
      await sleep(200);
      assert.equal((await rt.state(id)).status, 'stopped', `run ${i}`);
      const exit = await c.wait();
      assert.equal(exit.signal, 9, `run ${i}: killed before it ran its process (${JSON.stringify(exit)})`);
      // The lock was released: delete goes through.
      await rt.delete(id);
    }
  });
});

describe('sockets of others', () => {
  test('a console socket that never accepts (backlog full) fails create at the deadline, with the event loop turning', async () => {
    const dir = fs.mkdtempSync('/tmp/hako-ipc-console-');
    const sock = `${dir}/console.sock`;
    const listener = addon().listenUnix(sock, 0o600); // listening, never accepting
    const pending: net.Socket[] = [];
    const saved = process.env.HAKO_CONTROL_TIMEOUT_MS;
    let ticks = 0;
    const tick = setInterval(() => ticks++, 20);
    try {
      // Fill the backlog (Node connects without blocking): the first connection that does not fit fails with EAGAIN.
      for (let i = 0; i < 100; i++) {
        const c = net.createConnection(sock);
        const r = await new Promise<string>((res) => {
          c.once('connect', () => res('ok'));
          c.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? e.message));
        });
        if (r !== 'ok') {
          assert.equal(r, 'EAGAIN');
          break;
        }
        pending.push(c);
      }
      assert.ok(pending.length > 0 && pending.length < 100, `the backlog filled up (${pending.length})`);
      const b = makeBundle(['/bin/probe', 'exit', '0'], (s) => (s.process!.terminal = true));
      const id = uniqueId('console');
      process.env.HAKO_CONTROL_TIMEOUT_MS = '300';
      const t0 = Date.now();
      await assert.rejects(
        rt.create(id, { bundle: b.dir, consoleSocket: sock }),
        /nobody accepted the connection within 300 ms \(its backlog stayed full\)/,
      );
      const took = Date.now() - t0;
      assert.ok(took < 10_000, `bounded (${took} ms)`);
      assert.ok(ticks >= 5, `the event loop kept turning (${ticks} ticks in ${took} ms)`);
      assert.deepEqual(leftovers(root, id), []);
    } finally {
      clearInterval(tick);
      if (saved === undefined) delete process.env.HAKO_CONTROL_TIMEOUT_MS;
      else process.env.HAKO_CONTROL_TIMEOUT_MS = saved;
      for (const c of pending) c.destroy();
      fs.closeSync(listener);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('failed creates', () => {
  test('a user-namespace create whose id maps cannot be written leaves no fd behind (5 failures)', async () => {
    const b = makeBundle(['/bin/probe', 'exit', '0'], (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      // Host id 4294967295 is not mapped even in the initial namespace: the kernel refuses the write.
      s.linux!.uidMappings = [{ containerID: 0, hostID: 4294967295, size: 1 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 4294967295, size: 1 }];
    });
    const fail = async () => {
      const id = uniqueId('maps');
      await assert.rejects(
        rt.create(id, { bundle: b.dir, stdio: [null, null, null] }),
        /linux\.uidMappings: write uid\/gid maps/,
      );
      assert.deepEqual(leftovers(root, id), []);
    };
    await fail(); // warms up whatever Node opens once
    const before = openFds();
    for (let i = 0; i < 5; i++) await fail();
    assert.equal(openFds(), before, `fds: ${fs.readdirSync('/proc/self/fd').join(' ')}`);
  });

  const freezerV1 = (() => {
    try {
      fs.accessSync('/sys/fs/cgroup/freezer/tasks', fs.constants.W_OK);
      return true;
    } catch {
      return false;
    }
  })();
  test(
    'a failed create whose init cannot die yet (frozen) fails without blocking the event loop, and the init is reaped once thawed',
    { skip: !freezerV1 && 'no writable cgroup v1 freezer', timeout: 60_000 },
    async () => {
      const foreign = `/sys/fs/cgroup/freezer/hako-test-ipc-frozen-${process.pid}`;
      fs.mkdirSync(foreign);
      // A prestart hook (on the host, at the init's pause) freezes the init in a freezer cgroup of its own, then fails.
      const script =
        String.raw`pid=$(sed 's/.*"pid":\([0-9]*\).*/\1/'); echo $pid > FOREIGN/tasks && echo FROZEN > FOREIGN/freezer.state; exit 1`.replaceAll(
          'FOREIGN',
          foreign,
        );
      const b = makeBundle(
        ['/bin/probe', 'exit', '0'],
        (s) => (s.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', script] }] }),
      );
      const id = uniqueId('frozen');
      let ticks = 0;
      const tick = setInterval(() => ticks++, 50);
      let pid = 0;
      try {
        const t0 = Date.now();
        await assert.rejects(
          rt.create(id, { bundle: b.dir, stdio: [null, null, null] }),
          /prestart\[0\]: hook \/bin\/sh failed/,
        );
        const took = Date.now() - t0;
        pid = Number(fs.readFileSync(`${foreign}/tasks`, 'utf8').trim());
        assert.ok(pid > 0, 'the init is still there, frozen');
        assert.ok(took >= 4000 && took < 20_000, `create gave up on the kill after its deadline (${took} ms)`);
        assert.ok(ticks >= took / 50 / 4, `the event loop kept turning meanwhile (${ticks} ticks in ${took} ms)`);
      } finally {
        clearInterval(tick);
        fs.writeFileSync(`${foreign}/freezer.state`, 'THAWED');
      }
      // Thawed, the pending SIGKILL ends it and the watch left behind reaps it: no zombie.
      for (let i = 0; i < 250 && fs.existsSync(`/proc/${pid}`); i++) await sleep(20);
      assert.equal(fs.existsSync(`/proc/${pid}`), false, 'reaped once thawed');
      fs.rmdirSync(foreign);
      // The container's cgroups it kept busy are empty now: not hako's to find any more, the test's to remove.
      for (const l of new Set(
        leftovers(root, id)
          .filter((x) => x.startsWith('cgroup '))
          .map((x) => fs.realpathSync(x.slice('cgroup '.length))),
      ))
        fs.rmdirSync(l);
      assert.deepEqual(leftovers(root, id), []);
    },
  );
});
