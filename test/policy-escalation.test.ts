// The policy server must never act with more power than the caller (issue 15): attacks that worked before,
// each run as an attacker would, with real processes and real mounts, the host's mount table compared
// before and after.
//   - a plain host process of a --user uid passing off its own notify fd as a container's;
//   - a caller without the capability the kernel requires (uid 1000 with no capabilities; root without
//     CAP_SYS_ADMIN);
//   - the mount target renamed between the decision and the mount (repeated);
//   - a chrooted caller;
//   - pivot_root;
//   - callers in nested user namespaces;
//   - the helper asked directly to act for a host process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addon } from '../lib/native/addon';
import { policyHelperPath } from '../lib/policy';
import { disposeRoot, testRoot, tmpDir, uniqueId } from './helpers/env';
import {
  HAVE_GCC,
  attackProgram,
  hakoAsync,
  hostMounts,
  lines,
  op,
  policyBundle,
  sleep,
  startServer,
  waitFor,
  type PolicyBundleOptions,
  type TestServer,
  MOUNT_TMPFS_FOO,
} from './policy-env';

const root = testRoot('policy-esc');
after(() => disposeRoot(root));
const skip = !HAVE_GCC ? 'gcc is needed to build the test program' : process.getuid?.() !== 0 ? 'needs root' : false;

type Mount = { target: string; fstype: string; opts: string; super: string };
const mountsAt = (out: string, target?: string): Mount[] =>
  (
    lines(out)
      .filter((l) => l.op === 'mountinfo')
      .pop()!.mounts as Mount[]
  ).filter((m) => !target || m.target === target);

/** The attack program where any uid can run it. */
function sharedAttack(): string {
  const dir = tmpDir('policy-esc-bin');
  fs.chmodSync(dir, 0o755);
  const bin = path.join(dir, 'attack');
  fs.copyFileSync(attackProgram(), bin);
  fs.chmodSync(bin, 0o755);
  return bin;
}

/** Run a host process without blocking the event loop (the server runs on it). */
function runHost(
  args: string[],
  o: { uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(args[0], args.slice(1), { uid: o.uid, gid: o.gid, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 20_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

function umountAll(target: string): void {
  for (let i = 0; i < 10 && hostMounts().includes(` ${target} `); i++) {
    try {
      require('node:child_process').execFileSync('umount', ['-l', target], { stdio: 'ignore' });
    } catch {
      break;
    }
  }
}

describe("host escalation: a host process passing off its own notify fd as a container's", { skip }, () => {
  for (const who of [
    { name: "uid 1000, the server's --user", uid: 1000 },
    { name: 'root, server not configured for host callers', uid: 0 },
  ]) {
    test(`${who.name}: its mount is never made on the host`, async () => {
      const hostDir = `/run/hako-policy-esc-${process.pid}-${who.uid}`;
      fs.mkdirSync(hostDir, { recursive: true });
      const s = await startServer(
        {
          profiles: [
            {
              name: 'a',
              match: { ids: ['a-*'] },
              mount: [{ types: ['tmpfs'], targets: [hostDir], limits: { size: '16m' } }],
            },
          ],
        },
        { users: [1000] },
      );
      try {
        fs.chmodSync(path.dirname(s.socket), 0o755);
        const bin = sharedAttack();
        const before = hostMounts();
        const r = await runHost(
          [bin, 'selfnotify', s.socket, 'a-1', hostDir],
          who.uid ? { uid: who.uid, gid: who.uid } : {},
        );
        const after = hostMounts();
        assert.equal(op(r.out, 'selfnotify-send').errno, 0, r.out);
        assert.notEqual(op(r.out, 'mount').errno, 0, `the mount must fail: ${r.out}`);
        assert.ok(!after.includes(` ${hostDir} `), 'nothing mounted on the host');
        assert.equal(after.split('\n').length, before.split('\n').length, 'the host mount table is unchanged');
        assert.equal(s.audits.filter((a) => a.decision === 'allow').length, 0);
        assert.ok(
          s.warnings.some((w) => /initial user namespace/.test(w)),
          s.warnings.join('\n'),
        );
      } finally {
        umountAll(hostDir);
        await s.close();
        fs.rmSync(hostDir, { recursive: true, force: true });
      }
    });
  }
});

const POLICY = {
  profiles: [
    {
      name: 'esc',
      match: { ids: ['esc-*'] },
      mount: [
        { types: ['tmpfs'], targets: ['/foo', '/sub/bar', '/data/foo'], options: ['mode'], limits: { size: '16m' } },
      ],
      umount: [{ targets: ['/foo', '/data/foo'] }],
    },
  ],
};

describe('containers: only what the caller could have done', { skip }, () => {
  let s: TestServer;
  before(async () => {
    // Every decision must have its record (the rename race counts them): no audit rate limit.
    s = await startServer({ ...POLICY, auditLimit: false });
  });
  after(async () => {
    await s?.close();
  });
  const attack = async (
    args: string[],
    o: Partial<PolicyBundleOptions> & { prepare?: (rootfs: string) => void } = {},
  ) => {
    const b = policyBundle(['/bin/attack', ...args], { socket: s.socket, ...o });
    o.prepare?.(b.rootfs);
    const id = uniqueId('esc');
    const before = hostMounts();
    const r = await hakoAsync(root, ['run', '--bundle', b.dir, id]);
    // Nothing a container does may show on the host.
    assert.equal(
      hostMounts()
        .split('\n')
        .filter((l) => / tmpfs /.test(l)).length,
      before.split('\n').filter((l) => / tmpfs /.test(l)).length,
      'host tmpfs mounts unchanged',
    );
    return { ...r, id };
  };
  const auditsOf = async (id: string, n: number) => {
    await waitFor(() => s.audits.filter((a) => a.container === id).length >= n);
    return s.audits.filter((a) => a.container === id);
  };

  test('uid 1000 with no capabilities and no_new_privs: EPERM, as the kernel would answer', async () => {
    const r = await attack([...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo'], {
      mutate: (sp) => {
        sp.process!.user = { uid: 1000, gid: 1000 };
        sp.process!.noNewPrivileges = true;
        sp.process!.capabilities = { bounding: [], effective: [], permitted: [], ambient: [], inheritable: [] };
      },
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(op(r.out, 'mount').errno, 1, r.out);
    assert.equal(mountsAt(r.out, '/foo').length, 0);
    const [a] = await auditsOf(r.id, 1);
    assert.equal(a.decision, 'deny');
    assert.match(a.reason, /lacks CAP_SYS_ADMIN/);
  });

  test('root without CAP_SYS_ADMIN: EPERM; with it: allowed', async () => {
    const no = await attack([...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo'], {
      caps: [],
    });
    assert.equal(op(no.out, 'mount').errno, 1, no.out);
    assert.equal(mountsAt(no.out, '/foo').length, 0);
    assert.match((await auditsOf(no.id, 1))[0].reason, /lacks CAP_SYS_ADMIN/);
    const yes = await attack([...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo']);
    assert.equal(op(yes.out, 'mount').errno, 0, yes.out);
    assert.equal(mountsAt(yes.out, '/foo').length, 1);
    const [a] = await auditsOf(yes.id, 1);
    assert.equal(a.where, '/foo');
  });

  test('the target renamed while the call is made: a mount lands only where the audit says (repeated)', async (t) => {
    const r = await attack(['renamerace', '300', '/data'], {
      mutate: (sp) => (sp.root!.readonly = false),
      prepare: (rootfs) => {
        for (const d of ['data', 'data/foo', 'data/zz']) {
          fs.mkdirSync(path.join(rootfs, d), { recursive: true });
          fs.chownSync(path.join(rootfs, d), 200000, 200000);
        }
      },
    });
    assert.equal(r.code, 0, r.err);
    const res = op(r.out, 'renamerace') as unknown as {
      ok: number;
      eperm: number;
      other: number;
      atFoo: number;
      escaped: number;
    };
    assert.equal(res.escaped, 0, `a tmpfs landed on /data/zz/foo: ${JSON.stringify(res)}`);
    assert.equal(res.atFoo, res.ok, `every success is a mount on /data/foo: ${JSON.stringify(res)}`);
    assert.ok(res.ok > 0, `some mounts succeed: ${JSON.stringify(res)}`);
    const allowed = (await auditsOf(r.id, res.ok)).filter(
      (a) => a.syscall === 'mount' && a.decision === 'allow' && a.result?.stage === 'ok',
    );
    assert.equal(allowed.length, res.ok);
    for (const a of allowed) assert.equal(a.where, '/data/foo');
    const stages = s.audits
      .filter((a) => a.container === r.id && a.syscall === 'mount')
      .map((a) => a.result?.stage ?? a.decision);
    t.diagnostic(
      `${JSON.stringify(res)}; helper stages: ${JSON.stringify(Object.fromEntries([...new Set(stages)].map((k) => [k, stages.filter((x) => x === k).length])))}`,
    );
  });

  test("a chrooted caller: paths are the container's (from its root), not the chroot's", async () => {
    const r = await attack(
      [
        'chroot',
        '/sub',
        ';',
        ...MOUNT_TMPFS_FOO,
        ';',
        'mount',
        'tmpfs',
        '/bar',
        'tmpfs',
        '0',
        'size=1m',
        ';',
        'mountinfo',
      ],
      {
        caps: ['CAP_SYS_ADMIN', 'CAP_SYS_CHROOT'],
        prepare: (rootfs) => {
          for (const d of ['sub/foo', 'sub/bar']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
        },
      },
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(op(r.out, 'chroot').errno, 0, r.out);
    // /foo of the chrooted caller is the container's /sub/foo, which the policy does not list; /sub/bar it does.
    assert.deepEqual(
      lines(r.out)
        .filter((l) => l.op === 'mount')
        .map((l) => l.errno),
      [1, 0],
      r.out,
    );
    const tm = mountsAt(r.out).filter((m) => m.fstype === 'tmpfs');
    assert.ok(
      tm.some((m) => m.target === '/bar'),
      JSON.stringify(tm),
    );
    assert.ok(!tm.some((m) => m.target === '/foo'), JSON.stringify(tm));
    const recs = await auditsOf(r.id, 2);
    assert.match(recs[0].reason, /\/sub\/foo/);
    assert.equal(recs[1].where, '/sub/bar');
  });

  test('pivot_root is refused (notified, audited), even with CAP_SYS_ADMIN', async () => {
    const r = await attack([
      ...MOUNT_TMPFS_FOO,
      ';',
      'mkdir',
      '/foo/old',
      ';',
      'pivot_root',
      '/foo',
      '/foo/old',
      ';',
      'mountinfo',
    ]);
    assert.equal(op(r.out, 'mount').errno, 0, r.out);
    assert.equal(op(r.out, 'pivot_root').errno, 1, r.out);
    const recs = await auditsOf(r.id, 2);
    const p = recs.find((a) => a.syscall === 'pivot_root');
    assert.ok(p, JSON.stringify(recs));
    assert.equal(p.decision, 'deny');
    assert.equal(p.args.new_root, '/foo');
  });

  test('nested user namespaces: a caller owning its mount namespace is served; one that does not is refused with a reason', async () => {
    // (Mapping root in a new user namespace needs CAP_SETFCAP in the parent one since Linux 5.12.)
    const caps = ['CAP_SYS_ADMIN', 'CAP_SETFCAP'];
    const own = await attack(['userns', 'mnt', ';', ...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo'], { caps });
    assert.equal(op(own.out, 'userns').errno, 0, own.out);
    assert.equal(
      op(own.out, 'mount').errno,
      0,
      own.out + JSON.stringify(s.audits.filter((a) => a.container === own.id)),
    );
    assert.equal(mountsAt(own.out, '/foo').length, 1);
    const notOwn = await attack(['userns', ';', ...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo'], { caps });
    assert.equal(op(notOwn.out, 'userns').errno, 0, notOwn.out);
    assert.equal(op(notOwn.out, 'mount').errno, 1, notOwn.out);
    assert.equal(mountsAt(notOwn.out, '/foo').length, 0);
    assert.match((await auditsOf(notOwn.id, 1))[0].reason, /no power over its mount namespace/);
  });
});

describe('registration examined while the init changes its user namespace', { skip }, () => {
  test('an init that unshares a user namespace while the server pins its namespaces is still served', async () => {
    // CI saw it once: registrations are examined asynchronously, and an init whose first act is
    // unshare(CLONE_NEWUSER) changed between the server's opening /proc/PID/ns/user and its reading of the
    // chain. The registration was dropped, the notify fd closed, and the container's mount failed with
    // ENOSYS. Here the server is held in that window (400 ms) while the container starts and unshares.
    let held = 0;
    const s = await startServer(POLICY, {
      hooks: {
        afterPinning: () => {
          if (held++ === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
        },
      },
    });
    try {
      const b = policyBundle(['/bin/attack', 'userns', 'mnt', ';', ...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo'], {
        socket: s.socket,
        caps: ['CAP_SYS_ADMIN', 'CAP_SETFCAP'],
      });
      const id = uniqueId('esc');
      const r = await hakoAsync(root, ['run', '--bundle', b.dir, id]);
      assert.ok(held >= 1, 'the registration was examined');
      assert.equal(op(r.out, 'userns').errno, 0, r.out);
      assert.equal(op(r.out, 'mount').errno, 0, r.out + s.warnings.join('\n'));
      assert.equal(mountsAt(r.out, '/foo').length, 1);
      assert.ok(!s.warnings.some((w) => /dropped a connection/.test(w)), s.warnings.join('\n'));
    } finally {
      await s.close();
    }
  });
});

describe('container ids are bound to the registered container', { skip }, () => {
  test("a --user peer cannot register a notify fd under a root-owned container's init", async () => {
    const s = await startServer(POLICY, { users: [1000] });
    try {
      fs.chmodSync(path.dirname(s.socket), 0o755);
      // A root-owned container of the runtime, running.
      const b = policyBundle(['/bin/attack', 'sleep', '4'], { socket: s.socket });
      const id = uniqueId('esc');
      const run = hakoAsync(root, ['run', '--bundle', b.dir, id]);
      for (let i = 0; i < 200 && !s.server.containers().some((c) => c.id === id); i++) await sleep(20);
      const victim = s.server.containers().find((c) => c.id === id);
      assert.ok(victim, 'the container registered');
      // uid 1000 sends its own fd under that id, naming the victim's init as the container's process: the
      // init's user namespace is not uid 1000's, so the registration is refused and the fd closed.
      const bin = sharedAttack();
      const r = await runHost([bin, 'selfnotify', s.socket, id, '/tmp', String(victim.pid)], { uid: 1000, gid: 1000 });
      assert.equal(op(r.out, 'selfnotify-send').errno, 0, r.out);
      assert.notEqual(op(r.out, 'mount').errno, 0, r.out);
      await sleep(200);
      assert.equal(s.audits.filter((a) => a.container === id).length, 0, 'nothing was decided as that container');
      assert.ok(
        s.warnings.some((w) => /not by the peer \(uid 1000\)/.test(w)),
        s.warnings.join('\n'),
      );
      await run;
    } finally {
      await s.close();
    }
  });
});

describe(
  'the helper on its own: never acts for a caller in the initial user namespace unless told to',
  { skip },
  () => {
    /** A real notify fd of a host process (blocked in mount), received the way the server receives one. */
    async function hostNotifyFd(): Promise<{ fd: number; pid: number; done: Promise<unknown>; dir: string }> {
      const a = addon();
      const dir = tmpDir('policy-helper');
      const sock = path.join(dir, 's');
      const lfd = a.listenUnix(sock, 0o700);
      const bin = sharedAttack();
      const child = spawn(bin, ['selfnotify', sock, 'x', path.join(dir, 'target')], { stdio: 'ignore' });
      const done = new Promise((r) => child.on('close', r));
      try {
        for (let i = 0; i < 500; i++) {
          const c = a.policyAccept(lfd);
          if (!c) {
            await sleep(10);
            continue;
          }
          for (let k = 0; k < 500; k++) {
            const r = a.policyRecv(c.fd, 65536);
            if (r.fds.length) {
              fs.closeSync(c.fd);
              return { fd: r.fds[0], pid: child.pid!, done, dir };
            }
            await sleep(10);
          }
        }
        throw new Error('no notify fd received');
      } finally {
        fs.closeSync(lfd);
      }
    }

    /** One request to a fresh helper: OP_MOUNT of a tmpfs on `target`; the reply's stage and errno. */
    async function ask(
      notifyFd: number,
      pid: number,
      target: string,
      flags: number,
    ): Promise<{ stage: number; err: number }> {
      const a = addon();
      const [mine, theirs] = a.seqpacketPair();
      const helper = spawn(policyHelperPath(), ['3'], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
      fs.closeSync(theirs);
      const procdir = fs.openSync(`/proc/${pid}`, 'r');
      try {
        const strs = ['tmpfs', 'tmpfs', target, 'size=1m', target, ''].map((x) => Buffer.from(x));
        const h = Buffer.alloc(112);
        h.writeUInt32LE(0x6861706f, 0); // magic
        h.writeUInt32LE(1, 4); // OP_MOUNT
        h.writeUInt32LE(flags, 8);
        h.writeUInt32LE(5000, 12);
        h.writeBigUInt64LE(7n, 16); // token
        h.writeBigUInt64LE(12345n, 24); // a notification id that is not pending
        for (let i = 0; i < 6; i++) h.writeUInt32LE(strs[i].length, 80 + 4 * i);
        h.writeUInt32LE(0b11111, 104); // s0..s4 present
        a.sendMessage(mine, Buffer.concat([h, ...strs]), [notifyFd, procdir]);
        const reply = await new Promise<Buffer>((resolve, reject) =>
          a.recvMessage(mine, (e, d) => (d ? resolve(d) : reject(new Error(`helper reply: errno ${e}`)))),
        );
        return { err: reply.readInt32LE(16), stage: reply.readInt32LE(20) };
      } finally {
        fs.closeSync(procdir);
        fs.closeSync(mine);
        helper.kill('SIGKILL');
      }
    }

    test('a host process as the caller: refused (stage userns, EPERM) without RF_HOST_OK; with it, it gets as far as the notification check', async () => {
      const { fd, pid, done, dir } = await hostNotifyFd();
      const target = path.join(dir, 'target');
      fs.mkdirSync(target);
      const before = hostMounts();
      try {
        const RF_JOIN_USERNS = 1;
        const RF_HOST_OK = 2;
        assert.deepEqual(await ask(fd, pid, target, RF_JOIN_USERNS), { stage: 3, err: 1 });
        // Served for host callers: everything up to NOTIF_ID_VALID (the id is not pending: stage validate).
        assert.deepEqual(await ask(fd, pid, target, RF_JOIN_USERNS | RF_HOST_OK), { stage: 8, err: 2 });
        assert.equal(hostMounts(), before, 'nothing mounted on the host');
      } finally {
        fs.closeSync(fd); // the blocked mount now fails with ENOSYS
        await done;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
