// Restart survival (issue 15): the policy server deposits every notify fd in hako-fd-keeper, so a running
// container is served again by the next server after a kill -9; calls the dead server held are answered
// EAGAIN by the keeper; the keeper goes away when nothing needs it. Real containers, real notified mounts.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT_DIR, disposeRoot, testRoot, tmpDir, uniqueId } from './helpers/env';
import { FdKeeper, MAX_EXTRA_FDS } from '../lib/policy/keeper';
import {
  HAVE_GCC,
  attackProgram,
  hakoAsync,
  hostMounts,
  lines,
  op,
  policyBundle,
  sleep,
  startServer as startInProcess,
  MOUNT_TMPFS_FOO,
} from './policy-env';

const root = testRoot('policy-restart');
after(() => disposeRoot(root));
const skip = !HAVE_GCC ? 'gcc is needed to build the test program' : process.getuid?.() !== 0 ? 'needs root' : false;

const POLICY =
  'audit: true\nprofiles:\n  - match: {ids: ["r-*"]}\n    mount:\n      - types: [tmpfs]\n        targets: [/foo]\n        limits: {size: 16m}\n';

interface Srv {
  p: ChildProcess;
  err: () => string;
}

/** A policy server in its own process: the CLI, or (hold) the library with a hook that never decides a mount. */
function startServer(
  sock: string,
  policyFile: string,
  o: { args?: string[]; hold?: boolean; hostCallers?: boolean; auditLog?: string } = {},
): Promise<Srv> {
  const code = o.hold
    ? `const {PolicyServer}=require(${JSON.stringify(path.join(ROOT_DIR, 'dist/lib/policy/index.js'))});` +
      `const s=new PolicyServer({socket:process.argv[1],policyFile:process.argv[2],audit(){},hostCallers:${!!o.hostCallers},` +
      `log:{debug(){},info(m){process.stderr.write(m+'\\n')},warn(m){process.stderr.write(m+'\\n')},error(m){process.stderr.write(m+'\\n')}},` +
      `hooks:{beforeDecision(n){if(n.syscall==='mount'){process.stderr.write('held '+n.container+'\\n');return new Promise(()=>{})}}}});` +
      `s.start().then(()=>process.stderr.write('listening on '+s.socketPath+'\\n'))`
    : `const {policyServerCommand}=require(${JSON.stringify(path.join(ROOT_DIR, 'dist/lib/cli/verbs/policy.js'))});` +
      `const {createLogger}=require(${JSON.stringify(path.join(ROOT_DIR, 'dist/lib/log.js'))});` +
      `policyServerCommand(process.argv.slice(1), createLogger({stderr:true})).then((c)=>process.exit(c),(e)=>{console.error(e.message);process.exit(1)})`;
  const args = o.hold
    ? [sock, policyFile]
    : ['--socket', sock, '--policy', policyFile, ...(o.auditLog ? ['--audit-log', o.auditLog] : []), ...(o.args ?? [])];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', code, '--', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => {
      err += d;
      if (/listening on/.test(err)) resolve({ p, err: () => err });
    });
    p.on('exit', () => reject(new Error(`policy server exited: ${err}`)));
    // A server that never listens fails the test instead of hanging the suite.
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`policy server did not listen within 30 s: ${err}`));
    }, 30_000);
    p.once('exit', () => clearTimeout(t));
    p.stderr!.on('data', () => /listening on/.test(err) && clearTimeout(t));
  });
}

/** The attack program run as a host process (root), without blocking the event loop. */
function runAttack(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(attackProgram(), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

async function kill9(s: Srv): Promise<void> {
  s.p.removeAllListeners('exit');
  if (s.p.exitCode !== null || s.p.signalCode !== null) return;
  const gone = new Promise((r) => s.p.once('exit', r));
  s.p.kill('SIGKILL');
  await gone;
}

async function stop(s: Srv): Promise<void> {
  s.p.removeAllListeners('exit');
  if (s.p.exitCode !== null || s.p.signalCode !== null) return;
  const gone = new Promise((r) => s.p.once('exit', r));
  s.p.kill('SIGTERM');
  // A server that does not end on SIGTERM is killed, so a failing test cannot leave it behind.
  const t = setTimeout(() => s.p.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/**
 * Resolves when the container printed a line matching `re`; rejects after `ms` naming what it did print, so a
 * call nobody answers fails the test with a diagnosis instead of holding it until the suite's deadline (the
 * held-call case under ASan, issue 14).
 */
function lineSeen(ms = 60_000): { onLine: (l: string) => void; wait: (re: RegExp) => Promise<void> } {
  const seen: string[] = [];
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  return {
    onLine: (l) => {
      seen.push(l);
      for (const w of waiters.filter((x) => x.re.test(l))) w.resolve();
    },
    wait: (re) =>
      seen.some((l) => re.test(l))
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const t = setTimeout(
              () =>
                reject(
                  new Error(
                    `the container printed no line matching ${re} within ${ms} ms; it printed: ${seen.join(' | ').slice(0, 2000)}`,
                  ),
                ),
              ms,
            );
            waiters.push({ re, resolve: () => (clearTimeout(t), resolve()) });
          }),
  };
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (cond()) return true;
  return cond();
}

function keeperPids(sockKeeper: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd[0].endsWith('hako-fd-keeper') && cmd[1] === sockKeeper) pids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return pids;
}

describe('policy server restart', { skip, timeout: 300_000 }, () => {
  test("kill -9, start again: the same running (rootless) container's next mounts are served, allowed and denied per policy", async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    const audit2 = path.join(dir, 'audit2.log');
    let server = await startServer(sock, file, { auditLog: path.join(dir, 'audit1.log') });
    const b = policyBundle(
      [
        '/bin/attack',
        ...MOUNT_TMPFS_FOO,
        ';',
        'waitfile',
        '/data/go',
        ';',
        'mount',
        'tmpfs',
        '/foo',
        'tmpfs',
        '0',
        'size=2m',
        ';',
        'mount',
        'tmpfs',
        '/bar',
        'tmpfs',
        '0',
        'size=1m',
        ';',
        'mountinfo',
        '/foo',
      ],
      { socket: sock },
    );
    const id = uniqueId('r');
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], { onLine: seen.onLine, timeoutMs: 60_000 });
    try {
      await seen.wait(/"op":"mount"/);
      await kill9(server);
      assert.equal(keeperPids(`${sock}.keeper`).length, 1, 'hako-fd-keeper outlives the killed server');
      server = await startServer(sock, file, { auditLog: audit2 });
      assert.match(server.err(), new RegExp(`container ${id} .*served again`), server.err());
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.equal(r.code, 0, r.err);
      const mounts = lines(r.out).filter((l) => l.op === 'mount');
      assert.deepEqual(
        mounts.map((l) => l.errno),
        [0, 0, 1],
        `served by the second server, not ENOSYS (38): ${r.out}`,
      );
      const m = (lines(r.out).find((l) => l.op === 'mountinfo')!.mounts as { fstype: string; super: string }[]).filter(
        (x) => x.fstype === 'tmpfs',
      );
      assert.deepEqual(
        m.map((x) => /size=(\d+k)/.exec(x.super)?.[1]),
        ['1024k', '2048k'],
        r.out,
      );
      // The second server decided (and audited) both calls after the restart.
      const recs = fs
        .readFileSync(audit2, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { container: string; decision: string; args: { target: string } });
      // (An emulated call's record follows its result, so the refusal's may come first.)
      assert.deepEqual(
        recs
          .filter((x) => x.container === id)
          .map((x) => [x.decision, x.args.target])
          .sort(),
        [
          ['allow', '/foo'],
          ['deny', '/bar'],
        ],
      );
      // Nothing holds the container any more and the server is stopping: the keeper goes away.
      await stop(server);
      assert.ok(
        await waitUntil(() => keeperPids(`${sock}.keeper`).length === 0 && !fs.existsSync(`${sock}.keeper`), 3000),
        'the keeper exits once it holds nothing and no server is connected',
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('without the keeper (--no-keeper) the same sequence gets ENOSYS: the test above can tell', async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    let server = await startServer(sock, file, { args: ['--no-keeper'] });
    const b = policyBundle(
      [
        '/bin/attack',
        ...MOUNT_TMPFS_FOO,
        ';',
        'waitfile',
        '/data/go',
        ';',
        'mount',
        'tmpfs',
        '/foo',
        'tmpfs',
        '0',
        'size=2m',
      ],
      { socket: sock },
    );
    const id = uniqueId('r');
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], { onLine: seen.onLine, timeoutMs: 60_000 });
    try {
      await seen.wait(/"op":"mount"/);
      await kill9(server);
      assert.equal(keeperPids(`${sock}.keeper`).length, 0);
      server = await startServer(sock, file, { args: ['--no-keeper'] });
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 38],
        r.out,
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a call the killed server had received and not answered is answered EAGAIN by the keeper; the retry is served', async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    // A container without a user namespace: both servers are started for host callers (--host-callers).
    let server = await startServer(sock, file, { hold: true, hostCallers: true });
    const b = policyBundle(
      [
        '/bin/attack',
        ...MOUNT_TMPFS_FOO,
        ';',
        'waitfile',
        '/data/go',
        ';',
        ...MOUNT_TMPFS_FOO,
        ';',
        'mountinfo',
        '/foo',
      ],
      { socket: sock, userns: false },
    );
    const id = uniqueId('r');
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], { onLine: seen.onLine, timeoutMs: 60_000 });
    try {
      assert.ok(
        await waitUntil(() => server.err().includes(`held ${id}`), 20_000),
        `the mount reached the server: ${server.err()}`,
      );
      await kill9(server);
      // The keeper answered the held call as soon as the server's connection closed.
      await seen.wait(/"op":"mount"/);
      server = await startServer(sock, file, { args: ['--host-callers'] });
      assert.match(server.err(), /1 call\(s\) the previous server had received and not answered were answered EAGAIN/);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [11, 0],
        r.out,
      );
      assert.equal(
        (lines(r.out).find((l) => l.op === 'mountinfo')!.mounts as unknown[]).length,
        1,
        'the held call was not performed',
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the keeper killed while the server runs: another is started and every fd deposited again, so a crash of the server is still survived', async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    let server = await startServer(sock, file);
    const b = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO, ';', 'waitfile', '/data/go', ';', ...MOUNT_TMPFS_FOO], {
      socket: sock,
    });
    const id = uniqueId('r');
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], { onLine: seen.onLine, timeoutMs: 60_000 });
    try {
      await seen.wait(/"op":"mount"/);
      const [first] = keeperPids(`${sock}.keeper`);
      assert.ok(first, 'a keeper runs');
      process.kill(first, 'SIGKILL');
      assert.ok(
        await waitUntil(() => /hako-fd-keeper started again; 1 notify fd\(s\) deposited/.test(server.err()), 10_000),
        server.err(),
      );
      const again = keeperPids(`${sock}.keeper`);
      assert.equal(again.length, 1);
      assert.notEqual(again[0], first);
      await kill9(server);
      server = await startServer(sock, file);
      assert.match(server.err(), new RegExp(`container ${id} .*served again`));
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 0],
        r.out,
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--release-on-exit: the keeper drops the fds and exits; the container's next call fails with ENOSYS", async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    const server = await startServer(sock, file, { args: ['--release-on-exit', '--host-callers'] }); // (no user namespace)
    const b = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO, ';', 'waitfile', '/data/go', ';', ...MOUNT_TMPFS_FOO], {
      socket: sock,
      userns: false,
    });
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, uniqueId('r')], { onLine: seen.onLine, timeoutMs: 60_000 });
    try {
      await seen.wait(/"op":"mount"/);
      await stop(server);
      assert.ok(await waitUntil(() => keeperPids(`${sock}.keeper`).length === 0, 3000), 'the keeper exits');
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 38],
        r.out,
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the keeper gives back every fd deposited with a registration, in order (the protocol carries up to 8)', async () => {
    const s = await startInProcess({ profiles: [{ name: 'r', match: { ids: ['r-*'] } }] });
    const b = policyBundle(['/bin/attack', 'sleep', '20'], { socket: s.socket });
    const id = uniqueId('r');
    const run = await hakoAsync(root, ['run', '--detach', '--bundle', b.dir, id]);
    assert.equal(run.code, 0, run.err);
    // As many as the protocol carries besides the notify fd and its ring (8 in all), of different kinds.
    const extra = Array.from({ length: MAX_EXTRA_FDS }, (_, i) => fs.openSync(i % 2 ? ROOT_DIR : '/dev/null', 'r'));
    extra[MAX_EXTRA_FDS - 1] = fs.openSync(path.join(ROOT_DIR, 'package.json'), 'r');
    const said: string[] = [];
    const quiet = { debug() {}, info() {}, warn: (m: string) => said.push(m), error: (m: string) => said.push(m) };
    try {
      assert.ok(await waitUntil(() => s.server.containers().some((c) => c.id === id), 5000));
      const inner = s.server as unknown as {
        listenerTable: { keeper: FdKeeper };
        state: { sid: number; byListener: Map<number, { id: string }> };
      };
      const lid = [...inner.state.byListener].find(([, c]) => c.id === id)![0];
      const key = inner.listenerTable.keeper.deposit(inner.state.sid, lid, { v: 1, container: { id: 'probe' } }, extra);
      assert.notEqual(key, null);
      assert.equal(
        inner.listenerTable.keeper.deposit(inner.state.sid, lid, { v: 1, container: { id: 'probe2' } }, [
          ...extra,
          extra[0],
        ]),
        null,
        'one more than the protocol carries is refused',
      );
      const init = s.server.containers().find((c) => c.id === id)!.pid;
      const pins = ['user', 'pid'].map((t) => fs.statSync(`/proc/${init}/ns/${t}`).ino);
      await s.server.close(); // not released: the keeper keeps everything for the next server
      const got = await FdKeeper.open(s.socket, quiet, () => {});
      assert.ok(got, `connected to the keeper: ${said.join('; ')}`);
      try {
        const e = got.entries.find((x) => x.key === key)!;
        assert.ok(e, 'the probe entry is there');
        assert.deepEqual(e.registration, { v: 1, container: { id: 'probe' } });
        const ino = (fd: number) => fs.fstatSync(fd).ino;
        assert.deepEqual(e.extra.map(ino), extra.map(ino));
        assert.equal(fs.readlinkSync(`/proc/self/fd/${e.fd}`), 'anon_inode:seccomp notify');
        // The server's own deposit of the container: its init's user and pid namespaces, pinned, in that order.
        const reg = got.entries.find((x) => (x.registration as { container?: { id?: string } }).container?.id === id);
        assert.ok(reg, "the container's registration is there");
        assert.deepEqual(reg.extra.map(ino), pins);
        assert.equal(JSON.stringify(reg.registration).includes('nsFds'), false, 'no fd numbers in the registration');
        for (const x of got.entries) for (const f of [x.fd, x.ring, ...x.extra]) fs.closeSync(f);
      } finally {
        got.keeper.release();
      }
      assert.ok(
        await waitUntil(() => keeperPids(`${s.socket}.keeper`).length === 0, 3000),
        'released: the keeper exits',
      );
    } finally {
      for (const f of extra) fs.closeSync(f);
      await hakoAsync(root, ['delete', '--force', id]);
      await s.close();
    }
  });

  test('an adopted container is served with the same caller checks: its pinned namespaces bind its id and its callers', async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    const hostDir = `/run/hako-policy-restart-${process.pid}`;
    fs.mkdirSync(hostDir, { recursive: true });
    // The policy would allow the mount on the host path too: only the caller check stands in the way.
    fs.writeFileSync(file, POLICY.replace('targets: [/foo]', `targets: [/foo, ${hostDir}]`));
    const audit2 = path.join(dir, 'audit2.log');
    let server = await startServer(sock, file);
    const b = policyBundle(
      [
        '/bin/attack',
        ...MOUNT_TMPFS_FOO,
        ';',
        'waitfile',
        '/data/go',
        ';',
        'mount',
        'tmpfs',
        '/foo',
        'tmpfs',
        '0',
        'size=2m',
      ],
      { socket: sock },
    );
    const id = uniqueId('r');
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], { onLine: seen.onLine, timeoutMs: 60_000 });
    const before = hostMounts();
    try {
      await seen.wait(/"op":"mount"/);
      const init = (JSON.parse((await hakoAsync(root, ['state', id])).out) as { pid: number }).pid;
      assert.ok(init > 0);
      await kill9(server);
      // The next server even serves host callers: that must not extend to an adopted rootless container.
      server = await startServer(sock, file, { auditLog: audit2, args: ['--host-callers'] });
      assert.match(server.err(), new RegExp(`container ${id} .*served again`), server.err());
      // Root on the host sends its own notify fd under the adopted container's id, as its own init: the id is
      // bound to the container's pinned namespaces, so the registration is refused.
      const own = await runAttack(['selfnotify', sock, id, hostDir]);
      assert.equal(op(own.out, 'selfnotify-send').errno, 0, own.out);
      assert.notEqual(op(own.out, 'mount').errno, 0, own.out);
      assert.ok(
        await waitUntil(() => /is already registered for another container/.test(server.err()), 3000),
        server.err(),
      );
      // Naming the container's init instead, the registration is accepted (root may register any container),
      // but its caller, a host process, is outside the container's pinned user namespace: EPERM, nothing mounted.
      const claim = await runAttack(['selfnotify', sock, id, hostDir, String(init)]);
      assert.equal(op(claim.out, 'selfnotify-send').errno, 0, claim.out);
      assert.equal(op(claim.out, 'mount').errno, 1, claim.out);
      assert.equal(hostMounts().includes(` ${hostDir} `), false, 'nothing mounted on the host');
      type Rec = { container: string; decision: string; reason: string; args: { target: string } };
      const denied = (): Rec[] =>
        (fs.existsSync(audit2)
          ? fs
              .readFileSync(audit2, 'utf8')
              .trim()
              .split('\n')
              .filter(Boolean)
              .map((l) => JSON.parse(l) as Rec)
          : []
        ).filter((x) => x.container === id && x.args.target === hostDir);
      assert.ok(
        await waitUntil(() => denied().length === 1, 3000),
        fs.existsSync(audit2) ? fs.readFileSync(audit2, 'utf8') : 'no audit',
      );
      assert.equal(denied()[0].decision, 'deny');
      assert.match(denied()[0].reason, /not in the container's user namespace/);
      // The container itself is still served as before.
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 0],
        r.out,
      );
      assert.equal(
        hostMounts()
          .split('\n')
          .filter((l) => / tmpfs /.test(l)).length,
        before.split('\n').filter((l) => / tmpfs /.test(l)).length,
        'host tmpfs mounts unchanged',
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      for (let i = 0; i < 5 && hostMounts().includes(` ${hostDir} `); i++) spawnSync('umount', ['-l', hostDir]);
      fs.rmSync(hostDir, { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a container without a user namespace is not adopted by a server without --host-callers (as it would not be registered)', async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    let server = await startServer(sock, file, { args: ['--host-callers'] });
    const b = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO, ';', 'waitfile', '/data/go', ';', ...MOUNT_TMPFS_FOO], {
      socket: sock,
      userns: false,
    });
    const id = uniqueId('r');
    const seen = lineSeen();
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], { onLine: seen.onLine, timeoutMs: 60_000 });
    try {
      await seen.wait(/"op":"mount"/);
      await kill9(server);
      server = await startServer(sock, file);
      assert.match(
        server.err(),
        /hako-fd-keeper entry \d+: its init \(pid \d+\) is in the initial user namespace: the server serves containers without a user namespace only with --host-callers; dropped/,
        server.err(),
      );
      assert.doesNotMatch(server.err(), /served again/);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 38],
        r.out,
      );
    } finally {
      await kill9(server);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a server refuses a keeper socket held by another uid (and sends it nothing)', async () => {
    const dir = tmpDir('policy-restart');
    fs.chmodSync(dir, 0o755);
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, POLICY);
    fs.chownSync(dir, 65534, 65534);
    // A squatter (uid 65534) listening at the keeper's path: the server must not hand it anything.
    const squat = spawn(
      'setpriv',
      [
        '--reuid',
        '65534',
        '--regid',
        '65534',
        '--clear-groups',
        '/usr/bin/python3',
        '-c',
        `import socket,sys,time\ns=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\ns.bind(sys.argv[1])\ns.listen(4)\nprint("up",flush=True)\nc,_=s.accept()\nc.settimeout(3)\ntry:\n  d=c.recvmsg(100,1000)\n  print("got" if d[0] or d[1] else "nothing",flush=True)\nexcept Exception as e:\n  print("nothing",flush=True)\n`,
        `${sock}.keeper`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    squat.stdout!.on('data', (d) => (out += d));
    // Listen for the squatter's exit now: it may end (after the server hangs up) before startServer resolves.
    const squatGone = new Promise<void>((r) => squat.once('exit', () => r()));
    try {
      assert.ok(await waitUntil(() => out.includes('up'), 5000), 'squatter up');
      const server = await startServer(sock, file);
      try {
        assert.match(server.err(), /is held by uid 65534 .* not used/);
        assert.ok(
          await Promise.race([squatGone.then(() => true), sleep(10_000).then(() => false)]),
          'the squatter ended',
        );
        assert.match(out, /nothing/, 'the squatter received no message');
      } finally {
        await stop(server);
      }
    } finally {
      squat.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
