// The policy server with real containers: the reference scenario (a rootless container may mount a tmpfs
// with size= on /foo, another may not, /bar is refused), audit lines, exec, release, reload.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import { defaultSpec } from '../lib/default-spec';
import { Runtime } from '../lib/runtime/runtime';
import { policySeccompSection } from '../lib/policy';
import { defaultSeccompProfile } from '../lib/seccomp';
import { BUSYBOX, HAKO_BIN, disposeRoot, testRoot, tmpDir, uniqueId } from './helpers/env';
import {
  HAVE_GCC,
  REFERENCE_POLICY,
  attackProgram,
  hakoAsync,
  lines,
  op,
  policyBundle,
  sleep,
  startServer,
  waitFor,
  type TestServer,
  MOUNT_TMPFS_FOO,
} from './policy-env';

const root = testRoot('policy');
after(() => disposeRoot(root));
const skip = !HAVE_GCC ? 'gcc is needed to build the test program' : process.getuid?.() !== 0 ? 'needs root' : false;

describe('policy server: reference scenario', { skip }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer(REFERENCE_POLICY, { hostCallers: true }); // (the exec test's container has no user namespace)
  });
  after(async () => {
    await s?.close();
  });

  const runAttack = async (idPrefix: string, args: string[], userns: number | false = 200000) => {
    const b = policyBundle(['/bin/attack', ...args], { socket: s.socket, userns });
    const id = uniqueId(idPrefix);
    const r = await hakoAsync(root, ['run', '--bundle', b.dir, id]);
    assert.equal(r.code, 0, `${id}: ${r.err}`);
    return { ...r, id };
  };

  test('rootless A mounts a tmpfs with size= on /foo; nosuid,nodev forced; owned by the container root', async () => {
    const r = await runAttack('a', [
      'mount',
      'tmpfs',
      '/foo',
      'tmpfs',
      '0',
      'size=1m,mode=0750',
      ';',
      'mountinfo',
      '/foo',
    ]);
    assert.deepEqual([op(r.out, 'mount').ret, op(r.out, 'mount').errno], [0, 0], r.out);
    const m = (op(r.out, 'mountinfo').mounts as { fstype: string; opts: string; super: string }[]).filter(
      (x) => x.fstype === 'tmpfs',
    );
    assert.equal(m.length, 1, r.out);
    assert.match(m[0].super, /size=1024k/);
    assert.match(m[0].super, /mode=750/);
    assert.match(m[0].opts, /nosuid/);
    assert.match(m[0].opts, /nodev/);
    // The mount is in the container's mount namespace only.
    assert.doesNotMatch(fs.readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(`${r.id}.*/foo `));
    await waitFor(() => s.audits.some((x) => x.container === r.id));
    const rec = s.audits.find((x) => x.container === r.id)!;
    assert.equal(rec.syscall, 'mount');
    assert.equal(rec.decision, 'allow');
    assert.equal(rec.args.target, '/foo');
    assert.equal(rec.result?.stage, 'ok');
    assert.ok(rec.latencyUs > 0 && rec.latencyUs < 5_000_000);
  });

  test('container B may not (EPERM), A may not on /bar, nor without size= or above the limit', async () => {
    const b = await runAttack('b', [...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo']);
    assert.equal(op(b.out, 'mount').errno, 1);
    assert.equal((op(b.out, 'mountinfo').mounts as unknown[]).length, 0);
    const bar = await runAttack('a', ['mount', 'tmpfs', '/bar', 'tmpfs', '0', 'size=1m', ';', 'mountinfo', '/bar']);
    assert.equal(op(bar.out, 'mount').errno, 1);
    assert.equal((op(bar.out, 'mountinfo').mounts as unknown[]).length, 0);
    const nosize = await runAttack('a', [
      'mount',
      'tmpfs',
      '/foo',
      'tmpfs',
      '0',
      '-',
      ';',
      'mount',
      'tmpfs',
      '/foo',
      'tmpfs',
      '0',
      'size=1g',
      ';',
      'mount',
      'tmpfs',
      '/foo',
      'tmpfs',
      '0',
      'size=0',
      ';',
      'mount',
      'tmpfs',
      '/foo',
      'tmpfs',
      '0',
      'size=50%',
      ';',
      'mountinfo',
      '/foo',
    ]);
    assert.deepEqual(
      lines(nosize.out)
        .filter((l) => l.op === 'mount')
        .map((l) => l.errno),
      [1, 1, 1, 1],
    );
    assert.equal((op(nosize.out, 'mountinfo').mounts as unknown[]).length, 0);
    const reasons = s.audits.filter((x) => x.container === nosize.id).map((x) => x.reason);
    assert.match(reasons[0], /size= is required/);
    assert.match(reasons[1], /above the limit/);
    assert.match(reasons[2], /0 means unlimited/);
    const bRec = s.audits.find((x) => x.container === b.id)!;
    assert.equal(bRec.decision, 'deny');
    assert.equal(bRec.errnoName, 'EPERM');
  });

  test("hako's default seccomp profile extended with the policy rules", async () => {
    const b = policyBundle(
      ['/bin/attack', ...MOUNT_TMPFS_FOO, ';', 'mount', 'tmpfs', '/bar', 'tmpfs', '0', 'size=1m'],
      {
        socket: s.socket,
        mutate: (sp) =>
          (sp.linux!.seccomp = policySeccompSection(s.socket, {
            base: defaultSeccompProfile(sp.process!.capabilities!.bounding!),
          })),
      },
    );
    const r = await hakoAsync(root, ['run', '--bundle', b.dir, uniqueId('a')]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      lines(r.out).map((l) => l.errno),
      [0, 1],
    );
  });

  test('a root container without a user namespace is served the same way', async () => {
    const a = await runAttack(
      'a',
      ['mount', 'tmpfs', '/foo', 'tmpfs', '0', 'size=2m', ';', 'mountinfo', '/foo'],
      false,
    );
    assert.equal(op(a.out, 'mount').errno, 0, a.out);
    assert.match((op(a.out, 'mountinfo').mounts as { super: string }[])[0].super, /size=2048k/);
  });

  test(
    'programs understand the answers: busybox mount succeeds in A and reports a permission error in B',
    { skip: !BUSYBOX && 'busybox-static is not installed' },
    async () => {
      const mk = (prefix: string) => {
        const b = policyBundle(
          [
            '/bin/sh',
            '-c',
            'mount -t tmpfs -o size=1m tmpfs /foo; echo "rc=$?"; grep " /foo " /proc/self/mountinfo | wc -l',
          ],
          { socket: s.socket, busybox: true },
        );
        fs.symlinkSync('busybox', path.join(b.rootfs, 'bin', 'wc'));
        return hakoAsync(root, ['run', '--bundle', b.dir, uniqueId(prefix)]);
      };
      const [a, b] = await Promise.all([mk('a'), mk('b')]);
      assert.match(a.out, /rc=0\s+1/, a.out + a.err);
      assert.match(b.out, /rc=[1-9]\d*\s+0/, b.out);
      assert.match(b.out + b.err, /ermission denied|not permitted/i);
    },
  );

  test('an exec gets its own notify fd; the server releases the container when it is gone', async () => {
    // No user namespace here: `hako exec` into a user-namespaced container cannot load a listener filter
    // yet (the exec'd init has lost CAP_SYS_ADMIN and has no no_new_privs at the early load; see docs/policy.md).
    const b = policyBundle(['/bin/attack', 'sleep', '30'], { socket: s.socket, userns: false });
    const id = uniqueId('a');
    const run = await hakoAsync(root, ['run', '--detach', '--bundle', b.dir, id]);
    assert.equal(run.code, 0, run.err);
    try {
      for (let i = 0; i < 50 && !s.server.containers().some((c) => c.id === id); i++) await sleep(20);
      assert.equal(s.server.containers().find((c) => c.id === id)?.listeners, 1);
      const ex = await hakoAsync(root, ['exec', id, '/bin/attack', ...MOUNT_TMPFS_FOO, ';', 'mountinfo', '/foo']);
      assert.equal(ex.code, 0, ex.err);
      assert.equal(op(ex.out, 'mount').errno, 0, ex.out);
      await waitFor(() => s.audits.some((x) => x.container === id));
      const recs = s.audits.filter((x) => x.container === id);
      assert.equal(recs.length, 1);
      assert.notEqual(recs[0].pid, 0);
    } finally {
      await hakoAsync(root, ['delete', '--force', id]);
    }
    for (let i = 0; i < 100 && s.server.containers().some((c) => c.id === id); i++) await sleep(20);
    assert.equal(
      s.server.containers().some((c) => c.id === id),
      false,
      'released after the container died',
    );
  });
});

describe('policy server: user namespaces and exec', { skip }, () => {
  // The exec path of the runtime does not become its user namespace's root before exec'ing hako-init
  // (src-native/addon/spawn.cc), so the listener filter cannot be loaded (EACCES). Passes once that is fixed.
  test('an exec into a user-namespaced container gets its own served fd', async () => {
    const s = await startServer(REFERENCE_POLICY);
    const b = policyBundle(['/bin/attack', 'sleep', '30'], { socket: s.socket });
    const id = uniqueId('a');
    try {
      assert.equal((await hakoAsync(root, ['run', '--detach', '--bundle', b.dir, id])).code, 0);
      const ex = await hakoAsync(root, ['exec', id, '/bin/attack', ...MOUNT_TMPFS_FOO]);
      assert.equal(ex.code, 0, ex.err);
      assert.equal(op(ex.out, 'mount').errno, 0);
    } finally {
      await hakoAsync(root, ['delete', '--force', id]);
      await s.close();
    }
  });

  test('the library: a Runtime and a PolicyServer in one process', async () => {
    const s = await startServer(REFERENCE_POLICY);
    const rt = new Runtime({ root });
    const b = policyBundle(['/bin/attack', ...MOUNT_TMPFS_FOO], { socket: s.socket });
    const outFile = path.join(b.dir, 'out');
    const out = fs.openSync(outFile, 'w');
    const id = uniqueId('a');
    try {
      const c = await rt.run(id, { bundle: b.dir, stdio: [null, out, out] });
      assert.equal((await c.wait()).status, 0);
      await rt.delete(id);
      assert.equal(op(fs.readFileSync(outFile, 'utf8'), 'mount').errno, 0);
      // The caller is answered first; the audit line follows from the helper's reply event.
      await waitFor(() => s.audits.some((a) => a.container === id));
      assert.equal(s.audits.find((a) => a.container === id)?.decision, 'allow');
    } finally {
      fs.closeSync(out);
      await s.close();
    }
  });
});

describe('policy server: a genuinely non-root caller', { skip }, () => {
  test('rootless hako run by an unprivileged user (its uid owns the 0700 socket, SO_PEERCRED accepts it)', async () => {
    const uid = 65534;
    const s = await startServer(
      {
        profiles: [
          { match: { ids: ['nr-*'] }, mount: [{ types: ['tmpfs'], targets: ['/foo'], limits: { size: '16m' } }] },
        ],
      },
      { users: [uid] },
    );
    const dir = tmpDir('policy-nonroot');
    try {
      fs.chmodSync(path.dirname(s.socket), 0o755);
      assert.equal(fs.statSync(s.socket).uid, uid);
      const spec = defaultSpec({
        args: [
          '/bin/attack',
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
          '/foo',
        ],
        terminal: false,
        rootless: true,
        uid,
        gid: uid,
      });
      spec.linux!.seccomp = policySeccompSection(s.socket);
      // mount needs CAP_SYS_ADMIN in the container's user namespace: the server never does more than the caller could.
      const caps = spec.process!.capabilities!;
      for (const k of ['bounding', 'effective', 'permitted'] as const) caps[k] = [...(caps[k] ?? []), 'CAP_SYS_ADMIN'];
      for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'foo', 'bar'])
        fs.mkdirSync(path.join(dir, 'rootfs', d), { recursive: true });
      fs.copyFileSync(attackProgram(), path.join(dir, 'rootfs', 'bin', 'attack'));
      fs.chmodSync(path.join(dir, 'rootfs', 'bin', 'attack'), 0o755);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
      fs.chmodSync(dir, 0o755);
      fs.mkdirSync(path.join(dir, 'state'), { mode: 0o700 });
      fs.chownSync(path.join(dir, 'state'), uid, uid);
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(
          process.execPath,
          [HAKO_BIN, '--root', path.join(dir, 'state'), 'run', '--bundle', dir, uniqueId('nr')],
          { uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' },
        );
        let out = '';
        p.stdout!.on('data', (d) => (out += d));
        p.stderr!.on('data', (d) => (out += d));
        p.on('close', (code) => resolve({ code, out }));
      });
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 1],
        r.out,
      );
      const m = (op(r.out, 'mountinfo').mounts as { super: string }[])[0];
      assert.match(
        m.super,
        new RegExp(`uid=${uid},gid=${uid}`),
        'the tmpfs belongs to the caller (its user namespace root)',
      );
    } finally {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('policy server: reload', { skip }, () => {
  test('reload() swaps the policy atomically; a policy that does not parse keeps the old one', async () => {
    const dir = tmpDir('policy-reload');
    const file = path.join(dir, 'policy.yaml');
    const write = (target: string) =>
      fs.writeFileSync(
        file,
        `audit: true\nprofiles:\n  - name: a\n    match: {ids: ["a-*"]}\n    mount:\n      - types: [tmpfs]\n        targets: ["${target}"]\n        limits: {size: 16m}\n`,
      );
    write('/foo');
    const s = await startServer({}, { policy: undefined, policyFile: file });
    try {
      const attempt = async () => {
        const b = policyBundle(['/bin/attack', 'mount', 'tmpfs', '/bar', 'tmpfs', '0', 'size=1m'], {
          socket: s.socket,
        });
        const r = await hakoAsync(root, ['run', '--bundle', b.dir, uniqueId('a')]);
        return op(r.out, 'mount').errno;
      };
      assert.equal(await attempt(), 1);
      write('/bar');
      assert.equal(s.server.reload(), true);
      assert.equal(await attempt(), 0);
      fs.writeFileSync(
        file,
        'profiles:\n  - name: a\n    mount:\n      - types: [tmpfs]\n        targets: [relative]\n',
      );
      assert.equal(s.server.reload(), false);
      assert.ok(
        s.warnings.some((w) =>
          /reload failed.*policy\.yaml:5: profiles\[0\]\.mount\[0\]\.targets\[0\]: "relative": paths must be absolute/.test(
            w,
          ),
        ),
        s.warnings.join('\n'),
      );
      assert.equal(await attempt(), 0, 'the previous policy is still in force');
    } finally {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
