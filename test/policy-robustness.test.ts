// The policy server keeps serving everyone: a flood from one container, a slow decision, malformed or
// unauthorized listener connections, and a server restart (the restarted server's old containers get ENOSYS).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { BUSYBOX, ROOT_DIR, disposeRoot, testRoot, tmpDir, uniqueId } from './helpers/env';
import { HAVE_GCC, hakoAsync, lines, op, policyBundle, sleep, startServer, MOUNT_TMPFS_FOO } from './policy-env';

const root = testRoot('policy-rob');
const skip = !HAVE_GCC ? 'gcc is needed to build the test program' : process.getuid?.() !== 0 ? 'needs root' : false;
after(() => disposeRoot(root));

const POLICY = {
  profiles: [{ match: { ids: ['r-*'] }, mount: [{ types: ['tmpfs'], targets: ['/foo'], limits: { size: '16m' } }] }],
};

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('fairness', { skip }, () => {
  test("100,000 notifications from one container while another container's mount is served promptly", async () => {
    const s = await startServer({ ...POLICY, audit: false });
    try {
      const flooder = policyBundle(['/bin/attack', 'flood', '100000', '4'], { socket: s.socket });
      const fl = hakoAsync(root, ['run', '--bundle', flooder.dir, uniqueId('r')], { timeoutMs: 120_000 });
      while (s.server.stats.notifications < 2000) await sleep(5);
      const victim = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO], {
        socket: s.socket,
      });
      const v = await hakoAsync(root, ['run', '--bundle', victim.dir, uniqueId('r')]);
      const during = s.server.stats.notifications;
      const res = await fl;
      assert.equal(res.code, 0, res.err);
      const f = op(res.out, 'flood') as unknown as { n: number; eperm: number; ns: number };
      assert.equal(f.n, 100000);
      assert.equal(f.eperm, 100000, res.out);
      assert.ok(during < 100000, 'the victim ran while the flood was going on');
      const m = op(v.out, 'mount');
      assert.equal(m.errno, 0, v.out + v.err);
      const ms = (m.ns as number) / 1e6;
      process.stderr.write(
        `# flood: ${Math.round(f.n / (f.ns / 1e9))} notifications/s; the other container's mount took ${ms.toFixed(2)} ms\n`,
      );
      assert.ok(ms < 250, `the mount took ${ms} ms`);
    } finally {
      await s.close();
    }
  });

  test('a slow decision for one container does not delay another', async () => {
    const s = await startServer(POLICY, {
      hooks: { beforeDecision: (n) => (n.container.startsWith('r-slow') ? sleep(2000) : undefined) },
    });
    try {
      const slowB = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO], {
        socket: s.socket,
      });
      const slow = hakoAsync(root, ['run', '--bundle', slowB.dir, uniqueId('r-slow')]);
      while (s.server.stats.notifications < 1) await sleep(5);
      const fastB = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO], {
        socket: s.socket,
      });
      const fast = await hakoAsync(root, ['run', '--bundle', fastB.dir, uniqueId('r')]);
      assert.equal(op(fast.out, 'mount').errno, 0);
      assert.ok((op(fast.out, 'mount').ns as number) < 500e6, fast.out);
      const sl = await slow;
      assert.equal(op(sl.out, 'mount').errno, 0);
      assert.ok((op(sl.out, 'mount').ns as number) >= 1900e6);
    } finally {
      await s.close();
    }
  });
});

// A python client that speaks (or mis-speaks) the listenerPath protocol.
const CLIENT = `
import socket, os, sys, json, array, time
path, mode = sys.argv[1], sys.argv[2]
if mode == "unauth":
    os.setgroups([int(sys.argv[3])]); os.setgid(4321); os.setuid(4321)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(path)
except OSError as e:
    print("connect-error", e.errno); sys.exit(0)
def pipes(n):
    out = []
    for _ in range(n):
        r, w = os.pipe(); out.append(r)
    return out
def state(names):
    return json.dumps({"ociVersion": "1.0.2", "fds": names, "pid": os.getpid(), "metadata": "", "state": {"ociVersion": "1.0.2", "id": "r-evil", "status": "creating", "pid": os.getpid(), "bundle": "/x"}}).encode()
def send(data, fds):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    s.sendmsg([data], anc)
if mode == "nofd": send(state(["seccompFd"]), [])
elif mode == "pipe": send(state(["seccompFd"]), pipes(1))
elif mode == "twofds": send(state(["seccompFd", "seccompFd"]), pipes(2))
elif mode == "countmismatch": send(state(["seccompFd"]), pipes(2))
elif mode == "truncated": send(state(["seccompFd"])[:40], pipes(1))
elif mode == "notjson": send(b"hello", pipes(1))
elif mode == "nostate": send(json.dumps({"fds": ["seccompFd"]}).encode(), pipes(1))
elif mode == "big": send(b'{"pad":"' + b"x" * (200 * 1024) + b'"}', pipes(1))
elif mode == "latefd":
    send(state(["seccompFd"])[:10], [])
    time.sleep(0.1)
    send(state(["seccompFd"])[10:], pipes(1))
elif mode == "many": send(state(["seccompFd"] + ["x"] * 19), pipes(20))
elif mode == "idle": time.sleep(2)
elif mode == "unauth": send(state(["seccompFd"]), pipes(1))
s.shutdown(socket.SHUT_WR)
try:
    s.recv(1)
except OSError:
    pass
print("sent")
`;

function client(sock: string, mode: string, extra: string[] = []): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('python3', ['-c', CLIENT, sock, mode, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    p.on('close', () => resolve(out.trim()));
  });
}

describe('the listener socket', { skip }, () => {
  test('malformed, truncated, oversized, slow or forged connections are dropped with a log line, nobody else is affected', async () => {
    const s = await startServer(POLICY, { maxMessageBytes: 64 * 1024, connectTimeoutMs: 500 });
    try {
      const fds0 = openFds();
      const cases: [string, RegExp][] = [
        ['nofd', /names 1 fds but 0 were received/],
        ['pipe', /"seccompFd" is not a seccomp notify fd \(pipe:/],
        ['twofds', /exactly one "seccompFd"/],
        ['countmismatch', /names 1 fds but 2 were received/],
        ['truncated', /invalid JSON/],
        ['notjson', /invalid JSON/],
        ['nostate', /"state.id" is required/],
        ['big', /larger than 65536 bytes/],
        ['latefd', /file descriptors after the first chunk/],
        ['many', /MSG_CTRUNC/],
        ['idle', /no complete message within 500 ms/],
      ];
      await Promise.all(cases.map(([mode]) => client(s.socket, mode)));
      // the idle one times out; a loaded machine may log a little later
      for (let i = 0; i < 250 && !cases.every(([, re]) => s.warnings.some((w) => re.test(w))); i++) await sleep(20);
      for (const [mode, re] of cases)
        assert.ok(
          s.warnings.some((w) => re.test(w)),
          `${mode}: ${re} in\n${s.warnings.join('\n')}`,
        );
      assert.equal(s.server.containers().length, 0);
      assert.equal(openFds(), fds0, 'every fd a peer sent was closed');
      // Still serving a real container.
      const b = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO], { socket: s.socket });
      const r = await hakoAsync(root, ['run', '--bundle', b.dir, uniqueId('r')]);
      assert.equal(op(r.out, 'mount').errno, 0, r.out + r.err);
    } finally {
      await s.close();
    }
  });

  test('the socket is 0700 (or 0770 with a group) and peers are checked with SO_PEERCRED', async () => {
    const s = await startServer(POLICY);
    fs.chmodSync(path.dirname(s.socket), 0o755); // only the socket's own mode stands in the way
    try {
      assert.equal(fs.statSync(s.socket).mode & 0o777, 0o700);
      assert.equal(await client(s.socket, 'unauth', ['0']), 'connect-error 13'); // EACCES: not even a connection
    } finally {
      await s.close();
    }
    const g = await startServer(POLICY, { group: 65534 });
    fs.chmodSync(path.dirname(g.socket), 0o755);
    try {
      const st = fs.statSync(g.socket);
      assert.equal(st.mode & 0o777, 0o770);
      assert.equal(st.gid, 65534);
      // A member of the group through a supplementary group only: the socket lets it connect, the peer check
      // (uid 4321, primary gid 4321) refuses it.
      const out = await client(g.socket, 'unauth', ['65534']);
      assert.doesNotMatch(out, /connect-error/, 'connected (then dropped: "sent" or a broken pipe)');
      const refused = (): boolean => g.warnings.some((w) => /refused a connection from uid 4321 gid 4321/.test(w));
      for (let i = 0; i < 250 && !refused(); i++) await sleep(20);
      assert.ok(refused(), g.warnings.join('\n'));
    } finally {
      await g.close();
    }
  });
});

describe('server restart', { skip: skip || (!BUSYBOX ? 'busybox is needed' : false) }, () => {
  test('the restarted server serves new processes and (through hako-fd-keeper) the old fds; SIGHUP with a bad file keeps the policy', async () => {
    const dir = tmpDir('policy-restart');
    const sock = path.join(dir, 'policy.sock');
    const file = path.join(dir, 'policy.yaml');
    const good =
      'profiles:\n  - match: {ids: ["r-*"]}\n    mount:\n      - types: [tmpfs]\n        targets: [/foo]\n        limits: {size: 16m}\n';
    fs.writeFileSync(file, good);
    const cli = (): Promise<{ p: ChildProcess; err: () => string }> =>
      new Promise((resolve, reject) => {
        const code =
          `const {policyServerCommand}=require(${JSON.stringify(path.join(ROOT_DIR, 'dist/lib/cli/verbs/policy.js'))});` +
          `const {createLogger}=require(${JSON.stringify(path.join(ROOT_DIR, 'dist/lib/log.js'))});` +
          `policyServerCommand(process.argv.slice(1), createLogger({stderr:true})).then((c)=>process.exit(c),(e)=>{console.error(e.message);process.exit(1)})`;
        const p = spawn(process.execPath, ['-e', code, '--', '--socket', sock, '--policy', file, '--host-callers'], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        p.stderr!.on('data', (d) => {
          err += d;
          if (/listening on/.test(err)) resolve({ p, err: () => err });
        });
        p.on('exit', () => reject(new Error(`policy-server exited: ${err}`)));
      });
    let server = await cli();
    const b = policyBundle(
      [
        '/bin/sh',
        '-c',
        '/bin/attack mount tmpfs /foo tmpfs 0 size=1m; while [ ! -e /data/go ]; do sleep 0.05; done; /bin/attack mount tmpfs /foo tmpfs 0 size=1m',
      ],
      { socket: sock, userns: false, busybox: true },
    );
    const id = uniqueId('r');
    let first!: () => void;
    const firstSeen = new Promise<void>((r) => (first = r));
    const run = hakoAsync(root, ['run', '--bundle', b.dir, id], {
      onLine: (l) => l.startsWith('{"op":"mount"') && first(),
    });
    try {
      await firstSeen;
      // SIGHUP with a file that does not parse: logged, the server keeps its policy and keeps running.
      fs.writeFileSync(file, 'profiles: [\n');
      server.p.kill('SIGHUP');
      for (let i = 0; i < 100 && !/reload failed/.test(server.err()); i++) await sleep(20);
      assert.match(server.err(), /reload failed, keeping the previous policy: .*policy\.yaml:1:/);
      fs.writeFileSync(file, good);
      // Restart.
      server.p.removeAllListeners('exit');
      const gone = new Promise((r) => server.p.once('exit', r));
      server.p.kill('SIGTERM');
      await gone;
      server = await cli();
      const ex = await hakoAsync(root, ['exec', id, '/bin/attack', 'mount', 'tmpfs', '/foo', 'tmpfs', '0', 'size=2m']);
      assert.equal(op(ex.out, 'mount').errno, 0, `an exec after the restart is served: ${ex.out}${ex.err}`);
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      const r = await run;
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(
        lines(r.out).map((l) => l.errno),
        [0, 0],
        "the init's fd was kept by hako-fd-keeper and is served by the new server",
      );
    } finally {
      server.p.removeAllListeners('exit');
      server.p.kill('SIGTERM');
      fs.writeFileSync(path.join(b.rootfs, 'data', 'go'), '');
      await run;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
