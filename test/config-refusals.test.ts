// Configs hako used to accept without complaint (issue 14): each is refused at create with an error naming
// the field, a non-zero exit and nothing left behind; and the device rules a deny-all config really gets.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Spec } from '../lib/oci/types';
import { Runtime } from '../lib/runtime/runtime';
import { disposeRoot, hako, leftovers, makeBundle, testRoot, uniqueId } from './helpers/env';

const root = testRoot('refuse');
after(() => disposeRoot(root));

/** `hako create` of a config edited by `mutate` fails, names `field`, and leaves nothing. */
function refused(mutate: (s: Spec) => void, field: RegExp, raw?: (text: string) => string): void {
  const b = makeBundle(['/bin/probe', 'hello'], mutate);
  if (raw)
    fs.writeFileSync(path.join(b.dir, 'config.json'), raw(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8')));
  const id = uniqueId('refuse');
  const r = hako(root, ['create', '--bundle', b.dir, id]);
  assert.notEqual(r.status, 0, `create was accepted: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, field);
  assert.doesNotMatch(r.stderr, /Maximum call stack|Cannot read properties|TypeError/);
  assert.deepEqual(leftovers(root, id), []);
  assert.equal(fs.existsSync(path.join(root, id)), false);
  fs.rmSync(b.dir, { recursive: true, force: true });
}

describe('refused at create, naming the field', () => {
  test('a config without a process (runtime-spec: start must fail; runc refuses at create)', () => {
    refused((s) => delete s.process, /hako: process: config\.json has no process/);
  });

  test('start of a container whose state has no process (an older hako accepted such configs) fails, naming process', () => {
    const b = makeBundle(['/bin/probe', 'hello']);
    const id = uniqueId('noproc');
    assert.equal(hako(root, ['create', '--bundle', b.dir, id]).status, 0);
    try {
      const file = path.join(root, id, 'state.json');
      const st = JSON.parse(fs.readFileSync(file, 'utf8')) as { config: Spec };
      delete st.config.process;
      fs.writeFileSync(file, JSON.stringify(st));
      const r = hako(root, ['start', id]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^hako: process: the container has no process to start/);
      assert.equal(
        (JSON.parse(hako(root, ['state', id]).stdout) as { status: string }).status,
        'created',
        'still waiting',
      );
    } finally {
      hako(root, ['delete', '--force', id]);
    }
    assert.deepEqual(leftovers(root, id), []);
  });

  test('linux.resources that is an array', () => {
    refused(
      (s) => ((s.linux as Record<string, unknown>).resources = []),
      /linux\.resources: must be an object, got an array/,
    );
  });

  test('memory.limit of 2^63 (beyond int64), and a negative other than -1', () => {
    refused(
      (s) => (s.linux!.resources = { memory: { limit: 2 ** 63 } }),
      /linux\.resources\.memory\.limit: 9223372036854775808 is outside the int64 range/,
    );
    refused(
      (s) => (s.linux!.resources = { memory: { limit: -2 } }),
      /linux\.resources\.memory\.limit: must be -1 \(unlimited\)/,
    );
  });

  test('cpu.period outside 1 ms to 1 s (0 is unset, as in runc and as Docker sends it)', () => {
    refused(
      (s) => (s.linux!.resources = { cpu: { period: 500 } }),
      /linux\.resources\.cpu\.period: must be between 1000 and 1000000/,
    );
    refused(
      (s) => (s.linux!.resources = { cpu: { period: 2_000_000 } }),
      /linux\.resources\.cpu\.period: must be between 1000 and 1000000/,
    );
  });

  test('pids.limit -2 (-1 is unlimited, 0 and positive are limits)', () => {
    refused(
      (s) => (s.linux!.resources = { pids: { limit: -2 } }),
      /linux\.resources\.pids\.limit: must be -1 \(unlimited\), 0 or a positive number/,
    );
  });

  test('uid/gid mappings without a user namespace', () => {
    refused((s) => {
      s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 1000 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 1000 }];
    }, /linux\.uidMappings: given, but linux\.namespaces has no user namespace/);
  });

  test('a config nested deeper than 64 levels names where, instead of overflowing the stack', () => {
    const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    refused(
      () => {},
      /hako: annotationsX\[0\]\[0\]\[0\]\[0\]\[0\]…: nested deeper than 64 levels/,
      (text) => text.replace(/^\{/, `{"annotationsX": ${deep(100_000)},`),
    );
  });

  test('update and exec get the same checks: deep nesting and bad values name the field, the container is untouched', () => {
    const b = makeBundle(['/bin/probe', 'sleep', '30']);
    const id = uniqueId('upd');
    assert.equal(hako(root, ['run', '-d', '--bundle', b.dir, id]).status, 0);
    try {
      const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
      const file = path.join(b.dir, 'resources.json');
      fs.writeFileSync(file, `{"unified": {"x": ${deep(100_000)}}}`);
      const u = hako(root, ['update', '--resources', file, id]);
      assert.equal(u.status, 1);
      assert.match(u.stderr, /^hako: linux\.resources\.unified\.x\[0\]\[0\]…: nested deeper than 64 levels/);
      fs.writeFileSync(file, JSON.stringify({ pids: { limit: -5 } }));
      assert.match(
        hako(root, ['update', '--resources', file, id]).stderr,
        /^hako: linux\.resources\.pids\.limit: must be -1 \(unlimited\)/,
      );
      const proc = path.join(b.dir, 'process.json');
      fs.writeFileSync(
        proc,
        `{"args": ["/bin/probe", "hello"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "x": ${deep(100_000)}}`,
      );
      const x = hako(root, ['exec', '--process', proc, id]);
      assert.equal(x.status, 255, 'a failing exec exits 255, as runc');
      assert.match(x.stderr, /^hako: process\.x\[0\]\[0\]\[0\]\[0\]…: nested deeper than 64 levels/);
      assert.equal((JSON.parse(hako(root, ['state', id]).stdout) as { status: string }).status, 'running');
    } finally {
      hako(root, ['delete', '--force', id]);
    }
    assert.deepEqual(leftovers(root, id), []);
  });

  test('linux.resources fields of the wrong type name the field (no TypeError, no Node write error, no huge echo)', () => {
    const res = (r: unknown) => (s: Spec) => ((s.linux as Record<string, unknown>).resources = r);
    refused(
      res({ hugepageLimits: '/tmp/../../..' }),
      /^hako: linux\.resources\.hugepageLimits: must be an array, got "\/tmp\/\.\.\/\.\.\/\.\."$/m,
    );
    refused(
      res({ hugepageLimits: ['x'] }),
      /^hako: linux\.resources\.hugepageLimits\[0\]: must be an object, got "x"$/m,
    );
    refused(
      res({ devices: 9007199254740994 }),
      /^hako: linux\.resources\.devices: must be an array, got 9007199254740994$/m,
    );
    refused(res({ devices: [{ allow: 'yes' }] }), /^hako: linux\.resources\.devices\[0\]\.allow: must be a boolean/m);
    for (const cpus of [-1, -0.5, 1.5])
      refused(res({ cpu: { cpus } }), /^hako: linux\.resources\.cpu\.cpus: must be a string, got -?[\d.]+$/m);
    refused(
      res({ memory: { swap: { a: 1 } } }),
      /^hako: linux\.resources\.memory\.swap: must be an integer, got an object$/m,
    );
    refused(
      res({ memory: { limit: Array(5000).fill('x'.repeat(100)) } }),
      /^hako: linux\.resources\.memory\.limit: must be an integer, got an array of 5000$/m,
    );
    refused(
      res({ blockIO: { weightDevice: [{ major: 8, minor: 0, weight: 'x' }] } }),
      /^hako: linux\.resources\.blockIO\.weightDevice\[0\]\.weight: must be an integer/m,
    );
    refused(
      res({ memory: { limit: 1 } }),
      /^hako: linux\.resources\.memory\.limit: 1 bytes is too little for any process; at least 6291456/m,
    );
    refused(
      res({ unified: { 'memory.max': 5 } }),
      /^hako: linux\.resources\.unified\.memory\.max: must be a string, got 5$/m,
    );
  });

  test('seccomp fields of the wrong type name the field, and long values are cut short', () => {
    const sc = (extra: Record<string, unknown>) => (s: Spec) =>
      ((s.linux as Record<string, unknown>).seccomp = { defaultAction: 'SCMP_ACT_ALLOW', ...extra });
    refused(sc({ architectures: '/' }), /^hako: linux\.seccomp\.architectures: must be an array, got "\/"$/m);
    let deepObj: unknown = 1;
    for (let i = 0; i < 40; i++) deepObj = { a: deepObj, b: 'z'.repeat(300) };
    refused(
      sc({ syscalls: [{ names: ['getpid'], action: deepObj }] }),
      /^hako: linux\.seccomp\.syscalls\[0\]\.action: unknown action an object;/m,
    );
    const b = makeBundle(
      ['/bin/probe', 'hello'],
      sc({ syscalls: [{ names: ['getpid'], action: 'A'.repeat(100_000) }] }),
    );
    const r = hako(root, ['create', '--bundle', b.dir, uniqueId('sc')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /linux\.seccomp\.syscalls\[0\]\.action: unknown action "A+… \(100002 characters\)/);
    assert.ok(r.stderr.length < 600, `a short message: ${r.stderr.length} characters`);
    refused(
      (s) => (s.linux!.rootfsPropagation = 'y'.repeat(1 << 20)),
      /^hako: linux\.rootfsPropagation: unknown propagation "y{63}… \(1048578 characters\)$/m,
    );
  });

  test('a plan too large for one message to init is refused naming the field, before anything is made', () => {
    refused(
      (s) => (s.process!.env = Array.from({ length: 20_000 }, (_, i) => `VARIABLE_${i}=value`)),
      /^hako: process\.env: too large: the container's plan would need at least \d+ bytes/m,
    );
    refused(
      (s) => (s.process!.user.additionalGids = Array.from({ length: 70_000 }, (_, i) => i)),
      /^hako: process\.user\.additionalGids: has 70000 groups; the kernel takes at most 65536/m,
    );
    refused(
      (s) => (s.process!.user.additionalGids = Array.from({ length: 60_000 }, (_, i) => i)),
      /^hako: process\.user\.additionalGids: too large/m,
    );
    refused(
      (s) =>
        s.mounts!.push({
          destination: '/mnt',
          type: 'tmpfs',
          source: 'tmpfs',
          options: ['size=1m,' + 'x'.repeat(1 << 20)],
        }),
      /^hako: mounts\[\d+\]\.options\[0\]: is 1048584 bytes long; a mount option .* at most 4096/m,
    );
    refused(
      (s) => (s.domainname = 'd'.repeat(1 << 20)),
      /^hako: domainname: is 1048576 bytes long; a domain name .* at most 64$/m,
    );
    refused((s) => (s.hostname = 'h'.repeat(65)), /^hako: hostname: is 65 bytes long/m);
  });

  test('exec --process gets the plan limits too', () => {
    const b = makeBundle(['/bin/probe', 'sleep', '30']);
    const id = uniqueId('xl');
    assert.equal(hako(root, ['run', '-d', '--bundle', b.dir, id]).status, 0);
    try {
      const proc = path.join(b.dir, 'process.json');
      fs.writeFileSync(
        proc,
        JSON.stringify({
          args: ['/bin/probe', 'hello'],
          cwd: '/',
          user: { uid: 0, gid: 0 },
          env: Array.from({ length: 20_000 }, (_, i) => `V_${i}=value`),
        }),
      );
      const x = hako(root, ['exec', '--process', proc, id]);
      assert.equal(x.status, 255);
      assert.match(x.stderr, /^hako: process\.env: too large/);
      assert.equal((JSON.parse(hako(root, ['state', id]).stdout) as { status: string }).status, 'running');
    } finally {
      hako(root, ['delete', '--force', id]);
    }
    assert.deepEqual(leftovers(root, id), []);
  });

  test('a cgroupsPath whose mkdir -p fails half-way leaves none of the directories it made', () => {
    const top = `hako-test-halfway-${process.pid}`;
    // "cgroup.procs" is a file in every cgroup: the first hierarchy makes `top`, then mkdir fails (ENOTDIR).
    refused(
      (s) => (s.linux!.cgroupsPath = `/${top}/cgroup.procs/inner`),
      /^hako: linux\.cgroupsPath: cannot create cgroup directory .*\(ENOTDIR\)/m,
    );
    const left = fs.readdirSync('/sys/fs/cgroup').filter((c) => fs.existsSync(path.join('/sys/fs/cgroup', c, top)));
    for (const c of left) fs.rmdirSync(path.join('/sys/fs/cgroup', c, top));
    assert.deepEqual(left, [], 'no cgroup directory left');
  });

  test('values the spec allows still pass: -1 unlimited memory and pids, 0 pids, a real period', async () => {
    const rt = new Runtime({ root });
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.resources = { memory: { limit: -1 }, pids: { limit: -1 }, cpu: { period: 100000, quota: 50000 } };
      // (cpu.period 0, what Docker sends for "unchanged", is tested through update in test/clients/docker.test.ts.)
    });
    const id = uniqueId('ok');
    await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
    await rt.delete(id, { force: true });
    assert.deepEqual(leftovers(root, id), []);
  });
});

describe('device rules', () => {
  test('deny-all resources with linux.devices entries allow exactly those devices (a fifo opened every char device)', async (t) => {
    if (!fs.existsSync('/sys/fs/cgroup/devices/devices.list'))
      return t.skip('no cgroup v1 devices hierarchy on this host');
    const rt = new Runtime({ root });
    const cg = `hako-test-devrules-${process.pid}`;
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.resources = { devices: [{ allow: false, access: 'rwm' }] };
      s.linux!.devices = [
        { path: '/dev/myfifo', type: 'p', fileMode: 0o600, uid: 0, gid: 0 },
        { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
      ];
      s.linux!.cgroupsPath = `/${cg}`;
    });
    const id = uniqueId('dev');
    await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
    try {
      const list = fs.readFileSync(`/sys/fs/cgroup/devices/${cg}/devices.list`, 'utf8').trim().split('\n');
      // runc's defaults (mknod of any node; null, zero, full, random, urandom, tty, console, ptmx, pts, tun) + fuse.
      assert.deepEqual(list, [
        'c *:* m',
        'b *:* m',
        'c 1:3 rwm',
        'c 1:8 rwm',
        'c 1:7 rwm',
        'c 5:0 rwm',
        'c 1:5 rwm',
        'c 1:9 rwm',
        'c 136:* rwm',
        'c 5:2 rwm',
        'c 10:200 rwm',
        'c 10:229 rwm',
      ]);
      assert.ok(!list.includes('c *:* rwm'), 'no wildcard read/write of character devices (/dev/kmsg is c 1:11)');
    } finally {
      await rt.delete(id, { force: true });
    }
    assert.deepEqual(leftovers(root, id), []);
    assert.equal(fs.existsSync(`/sys/fs/cgroup/devices/${cg}`), false);
  });
});
