// The policy server without a kernel: the policy file (JSON and YAML, errors with line and field), the
// decisions on synthetic notifications, and the seccomp section the server needs (run in a BPF interpreter).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NotifyEventNotif } from '../lib/native/addon';
import {
  decide,
  normalizePath,
  parsePolicy,
  policySeccompSection,
  PolicyError,
  selectProfile,
  type Policy,
} from '../lib/policy';
import { checkCaller, type CallerScope } from '../lib/policy/decide';
import { MOUNT_ATTR, OP, RF_JOIN_USERNS } from '../lib/policy/constants';
import { parseYaml } from '../lib/policy/document';
import { memparse } from '../lib/policy/schema';
import { KINDS, nativeLayouts, type SyscallName } from '../lib/policy/syscalls';
import { compileSeccomp } from '../lib/seccomp';
import {
  AUDIT_ARCH_AARCH64,
  AUDIT_ARCH_ARM,
  AUDIT_ARCH_I386,
  AUDIT_ARCH_X86_64,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_USER_NOTIF,
} from '../lib/seccomp/constants';
import { ARCHES, nativeScmpArch } from '../lib/seccomp/arch';
import { defaultSeccompProfile } from '../lib/seccomp/default-profile';
import { decide as bpf } from './helpers/bpf-interpreter';

const YAML = `
# the reference policy, in YAML
version: 1
defaultErrno: EPERM
audit: true
profiles:
  - name: a
    match:
      ids: ["a-*"]
      annotations: {org.example/tier: "edge*"}
    mount:
      - types: [tmpfs]
        targets:
          - /foo
          - /mnt/**
        flags: [ro, nosuid, nodev, noexec]
        options: {mode: "0?[0-7]{3}", uid: null, nr_blocks: null}
        limits: {size: 16m, nr_inodes: 1000}
      - bind: true
        sources: [/data]
        targets: [/bar]
        flags: [ro, rec]
    umount:
      - targets: [/foo]
        flags: [detach]
    mknod:
      - paths: ["/dev/**"]
        devices:
          - {type: c, major: 1, minor: [3, 9]}
    sethostname: {names: ['web-[0-9]+']}
    setxattr:
      - paths: [/data/**]
        names: ["user.*"]
        maxSize: 128
    chown:
      - paths: [/data/**]
        uids: [[0, 999]]
        gids: [0, 100]
    errno: EACCES
`;

describe('policy file', () => {
  test('YAML and JSON give the same policy', () => {
    const y = parsePolicy(YAML, 'p.yaml');
    const doc = parseYaml(YAML, 'p.yaml').value;
    const j = parsePolicy(JSON.stringify(doc, null, 2), 'p.json');
    const strip = (p: Policy) =>
      JSON.parse(
        JSON.stringify(p, (k, v) =>
          k === 'file'
            ? undefined
            : v instanceof RegExp
              ? v.source
              : v instanceof Map
                ? [...v]
                : v instanceof Set
                  ? [...v]
                  : typeof v === 'bigint'
                    ? String(v)
                    : v,
        ),
      );
    assert.deepEqual(strip(y), strip(j));
    const p = y.profiles[0];
    assert.equal(p.errno, 13);
    assert.equal(p.mount[0].limits.get('size'), 16n << 20n);
    assert.equal(p.mount[0].forceAttrs, MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV, 'nosuid,nodev forced by default');
    assert.ok(p.mount[0].targets[1].re.test('/mnt/a/b'));
    assert.ok(!p.mount[0].targets[1].re.test('/mnt'));
    assert.ok(!p.mount[0].targets[0].re.test('/foo/x'));
    assert.deepEqual(p.chown[0].gids, [
      [0, 0],
      [100, 100],
    ]);
  });

  const bad = (text: string, re: RegExp, file = 'p.yaml') =>
    assert.throws(
      () => parsePolicy(text, file),
      (e: unknown) => e instanceof PolicyError && re.test(e.message),
    );

  test('errors name the file, the line and the field', () => {
    bad(
      'profiles:\n  - name: a\n    mount:\n      - types: [tmpfs]\n        targets: [foo]\n',
      /^p\.yaml:5: profiles\[0\]\.mount\[0\]\.targets\[0\]: "foo": paths must be absolute/,
    );
    bad(
      'profiles:\n  - mount:\n      - types: [tmpfs]\n        targets: [/foo]\n        limits: {size: 64q}\n',
      /^p\.yaml:5: profiles\[0\]\.mount\[0\]\.limits\.size: invalid limit "64q"/,
    );
    bad(
      'profiles:\n  - mount:\n      - types: [tmpfs]\n        targets: [/foo]\n        flags: [suid]\n',
      /^p\.yaml:5: profiles\[0\]\.mount\[0\]\.flags\[0\]: unknown flag "suid"/,
    );
    bad('profiles:\n  - errno: EWHAT\n', /^p\.yaml:2: profiles\[0\]\.errno: unknown errno name "EWHAT"/);
    bad(
      'profiles:\n  - umount:\n      - targets: [/foo]\n        flags: [force]\n',
      /p\.yaml:4: profiles\[0\]\.umount\[0\]\.flags\[0\]: unknown or unsupported umount flag "force"/,
    );
    bad(
      'profiles:\n  - mount:\n      - bind: true\n        types: [tmpfs]\n        targets: [/a]\n        sources: [/b]\n',
      /p\.yaml:4: profiles\[0\]\.mount\[0\]\.types: a bind rule has no types/,
    );
    bad(
      'profiles:\n  - mount:\n      - types: [tmpfs]\n        targets: ["/a/**/b"]\n',
      /only allowed as the last component/,
    );
    bad('profiles:\n  - mount:\n      - types: [tmpfs]\n        targets: ["/a/../b"]\n', /write the path normalized/);
    bad('profiles:\n  - name: a\n    colour: red\n', /^p\.yaml:3: profiles\[0\]\.colour: unknown field/);
    bad(
      '{\n  "profiles": [\n    {"mount": [{"types": ["tmpfs"], "targets": ["/x"], "limits": {"size": -1}}]}\n  ]\n}',
      /^p\.json:3: profiles\[0\]\.mount\[0\]\.limits\.size: invalid limit -1/,
      'p.json',
    );
    bad('{"profiles": [}', /^p\.json:1: .*end with a \] \(opened at column 14\)/, 'p.json');
    bad('profiles: [\n\n', /^p\.yaml:1: .*end with a \] \(opened at column 11\)/);
    bad('{"profiles": [], # note\n}', /^p\.json:1: comments are not allowed in JSON/, 'p.json');
    bad('{"profiles": [\n  {"name": a}]}', /^p\.json:2: not JSON: "a" \(strings are double-quoted\)/, 'p.json');
    bad('a: 1\na: 2\n', /^p\.yaml:2: duplicate key "a"/);
    bad('{"a": 1,\n "a": 2}', /^p\.json:2: duplicate key "a"/, 'p.json');
    bad('profiles:\n\t- name: a\n', /^p\.yaml:2: tabs are not allowed as indentation/);
    bad('profiles: &x []\n', /^p\.yaml:1: anchors and aliases .* are not allowed/);
    bad('profiles:\n  - *x\n', /^p\.yaml:2: anchors and aliases .* are not allowed/);
    bad('profiles: !!binary aGVsbG8=\n', /^p\.yaml:1: explicit tags \(!!binary\) are not allowed/);
    bad('profiles:\n  - name: "a\n', /^p\.yaml:2: missing closing "quote \(opened at column 11\)/);
    bad('profiles: []\n---\nprofiles: []\n', /^p\.yaml:2: only one YAML document/);
    bad('profiles:\n  - name: a\n - name: b\n', /^p\.yaml:3: /);
  });

  test('YAML block scalars are read (the yaml package parses all of YAML 1.2 but anchors, aliases and tags)', () => {
    assert.equal(
      parsePolicy('profiles:\n  - name: >-\n      edge\n      devices\n', 'p.yaml').profiles[0].name,
      'edge devices',
    );
  });

  test('profiles are selected by id, annotations and listener metadata (all given criteria, first match)', () => {
    const p = parsePolicy(
      JSON.stringify({
        profiles: [
          { name: 'edge', match: { ids: ['a-*'], annotations: { tier: 'edge*' } } },
          { name: 'meta', match: { metadata: ['policy=m*'] } },
          { name: 'any' },
        ],
      }),
    );
    const sel = (id: string, annotations: Record<string, string>, metadata: string) =>
      selectProfile(p, { id, annotations, metadata })?.name;
    assert.equal(sel('a-1', { tier: 'edge-eu' }, ''), 'edge');
    assert.equal(sel('a-1', { tier: 'core' }, 'policy=m1'), 'meta');
    assert.equal(sel('b-1', {}, ''), 'any');
    assert.equal(
      selectProfile(parsePolicy('{"profiles":[{"match":{"ids":["x"]}}]}'), { id: 'y', annotations: {}, metadata: '' }),
      null,
    );
  });

  test('memparse and lexical normalization', () => {
    assert.equal(memparse('16m'), 16n << 20n);
    assert.equal(memparse('0x10k'), 16n << 10n);
    assert.equal(memparse('010'), 8n, 'octal, as the kernel reads it');
    assert.equal(memparse('1.5g'), null);
    assert.equal(normalizePath('//foo/./bar/../baz/'), '/foo/baz');
    assert.equal(normalizePath('/../../x'), '/x');
    assert.equal(normalizePath('/'), '/');
  });
});

// ---- decisions on synthetic notifications ----

const policy = parsePolicy(YAML, 'p.yaml');
const profile = policy.profiles[0];
const X64 = process.arch === 'arm64' ? AUDIT_ARCH_AARCH64 : AUDIT_ARCH_X86_64;

function notif(name: SyscallName, args: (bigint | number | string | Buffer | null)[]): NotifyEventNotif {
  const strs: (string | Buffer | null)[] = [];
  const states: number[] = [];
  const a: bigint[] = [];
  for (let i = 0; i < 6; i++) {
    const v = i < args.length ? args[i] : 0;
    if (typeof v === 'string' || v instanceof Buffer) {
      strs.push(v);
      states.push(1);
      a.push(0x7f0000001000n + BigInt(i));
    } else if (v === null) {
      strs.push(null);
      states.push(2);
      a.push(0n);
    } else {
      strs.push(null);
      states.push(0);
      a.push(BigInt(v as number | bigint));
    }
  }
  if (name === 'sethostname' && args[0] instanceof Buffer) a[1] = BigInt(args[0].length);
  if (name === 'setxattr' && args[2] instanceof Buffer) a[3] = BigInt(args[2].length);
  return {
    type: 'notif',
    listener: 1,
    token: 1,
    id: 1n,
    pid: 1234,
    arch: X64,
    nr: 0,
    kind: KINDS.indexOf(name),
    args: a,
    strs,
    states,
    t0: 0,
  };
}

const ctx = {
  policy,
  profile,
  callerDir: (_pid: number, dirfd: number) => (dirfd === -100 ? '/mnt' : dirfd === 5 ? '/data/x' : null),
};

describe('decisions', () => {
  test('mount: allowed calls become an emulation built from the copy', () => {
    const d = decide(
      notif('mount', ['tmpfs', '/foo', 'tmpfs', (0xc0ed0000 | 1 | 8) >>> 0, 'size=1m,mode=0750,nr_inodes=100']),
      ctx,
    );
    assert.equal(d.action, 'emulate');
    if (d.action !== 'emulate') return;
    assert.equal(d.op, OP.MOUNT);
    assert.equal(d.flags, RF_JOIN_USERNS);
    assert.equal(
      d.ints[0],
      MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV,
      'MS_MGC_VAL stripped, flags -> attrs, forced ones added',
    );
    assert.deepEqual(d.strs.slice(0, 4), ['tmpfs', 'tmpfs', '/foo', 'size=1m\0mode=0750\0nr_inodes=100']);
    const rel = decide(notif('mount', ['tmpfs', 'a/../b', 'tmpfs', 0, 'size=1m,nr_inodes=1']), ctx);
    assert.equal(rel.action === 'emulate' && rel.strs[2], '/mnt/b', "relative to the caller's cwd");
  });

  test('mount: each refusal has a reason', () => {
    const reason = (args: (bigint | number | string | null)[]) => {
      const d = decide(notif('mount', args), ctx);
      assert.equal(d.action, 'deny', JSON.stringify(args));
      return d.action === 'deny' ? `${d.errno} ${d.reason}` : '';
    };
    assert.match(reason(['tmpfs', '/bar', 'tmpfs', 0, 'size=1m']), /^13 no mount rule allows tmpfs on \/bar/);
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 0, 'mode=0750']), /size= is required/);
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 0, 'size=17m,nr_inodes=10']), /above the limit/);
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 0, 'size=1m']), /nr_inodes= is required/);
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 0, 'size=1m,nr_inodes=0']), /0 means unlimited/);
    assert.match(
      reason(['tmpfs', '/foo', 'tmpfs', 0, 'size=1m,nr_inodes=9,size=100g']),
      /size=100g: above the limit/,
      'every occurrence counts (the last one wins in the kernel)',
    );
    assert.match(
      reason(['tmpfs', '/foo', 'tmpfs', 0, 'nr_blocks=100000,nr_inodes=9']),
      /nr_blocks=100000: above the limit/,
    );
    assert.match(
      reason(['tmpfs', '/foo', 'tmpfs', 0, 'size=1m,nr_inodes=9,mode=4777']),
      /option mode=4777 not allowed/,
    );
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 0, 'size=1m,nr_inodes=9,huge=always']), /option "huge" not allowed/);
    assert.match(
      reason(['tmpfs', '/foo', 'tmpfs', 2048 /* nodiratime */, 'size=1m,nr_inodes=9']),
      /flags not allowed: nodiratime/,
    );
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 32, 'size=1m']), /remount of \/foo is not allowed/);
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 8192, null]), /move mount/);
    assert.match(reason([null, '/foo', null, 1 << 20, null]), /propagation change/);
    assert.match(reason(['/', '/bar', null, 4096 | 16384, null]), /bind source \/ not allowed/);
    assert.match(reason(['proc', '/foo', 'proc', 0, null]), /no mount rule allows proc on \/foo/);
    assert.match(reason(['tmpfs', '/foo', 'tmpfs', 0x100000000, 'size=1m']), /unknown mount flags/);
    assert.match(reason(['tmpfs', null, 'tmpfs', 0, 'size=1m']), /^14 target: NULL/);
  });

  test('unreadable or overlong arguments get the errno the kernel would give', () => {
    const n = notif('mount', ['tmpfs', '/foo', 'tmpfs', 0, 'size=1m']);
    n.states[1] = 3;
    assert.deepEqual(decide(n, ctx), { action: 'deny', errno: 14, reason: 'target: unreadable pointer' });
    n.states[1] = 4;
    assert.equal((decide(n, ctx) as { errno: number }).errno, 36);
  });

  test('bind rule, umount, mknod, sethostname, setxattr, chown', () => {
    const b = decide(notif('mount', ['/data', '/bar', null, 4096 | 16384 | 1, null]), ctx);
    assert.ok(b.action === 'emulate' && b.op === OP.BIND && b.ints[1] === 1 && b.strs[1] === '/data');
    const u = decide(notif('umount2', ['/foo', 2]), ctx);
    assert.ok(u.action === 'emulate' && u.op === OP.UMOUNT && u.ints[0] === 2);
    assert.equal(decide(notif('umount2', ['/foo', 1]), ctx).action, 'deny', 'MNT_FORCE');
    const dev = (maj: number, min: number) => ((min & 0xff) | (maj << 8) | ((min & ~0xff) << 12)) >>> 0;
    const m = decide(notif('mknod', ['/dev/null', 0o20666, dev(1, 3)]), ctx);
    assert.ok(m.action === 'emulate' && m.op === OP.MKNOD && m.ints[1] === 1 && m.ints[2] === 3 && m.flags === 0);
    assert.equal(decide(notif('mknod', ['/dev/sda', 0o60600, dev(8, 0)]), ctx).action, 'deny');
    assert.equal(decide(notif('mknod', ['/dev/mem', 0o20600, dev(1, 1)]), ctx).action, 'deny');
    assert.equal(
      decide(notif('mknodat', [5, 'null', 0o20666, dev(1, 3)]), ctx).action,
      'deny',
      '/data/x/null is not under /dev',
    );
    assert.equal(decide(notif('sethostname', [Buffer.from('web-1')]), ctx).action, 'emulate');
    assert.equal(decide(notif('sethostname', [Buffer.from('web-1x')]), ctx).action, 'deny');
    assert.equal(decide(notif('setxattr', ['/data/f', 'user.x', Buffer.from('v'), 1, 0]), ctx).action, 'emulate');
    assert.equal(decide(notif('setxattr', ['/data/f', 'trusted.x', Buffer.from('v'), 1, 0]), ctx).action, 'deny');
    assert.equal(decide(notif('setxattr', ['/data/f', 'user.x', Buffer.alloc(129), 129, 0]), ctx).action, 'deny');
    const c = decide(notif('chown', ['/data/f', 5, 0xffffffff]), ctx);
    assert.ok(c.action === 'emulate' && c.ints[0] === 5 && c.ints[1] === -1);
    assert.equal(decide(notif('chown', ['/data/f', 1000, 0]), ctx).action, 'deny');
    assert.equal(
      decide(notif('fchownat', [5, '', 0, 0, 0x1000]), ctx).action,
      'emulate',
      "AT_EMPTY_PATH: the fd's own path",
    );
  });

  test('no profile, unknown syscall, invisible caller: the default errno', () => {
    const n = notif('mount', ['tmpfs', '/foo', 'tmpfs', 0, 'size=1m']);
    assert.deepEqual(decide(n, { policy, profile: null }), {
      action: 'deny',
      errno: 1,
      reason: 'no profile matches this container',
    });
    assert.equal(
      (decide({ ...n, kind: -1 }, ctx) as { reason: string }).reason,
      'syscall 0 is not handled by the policy server',
    );
    assert.match((decide({ ...n, pid: 0 }, ctx) as { reason: string }).reason, /not visible/);
  });
});

describe('the seccomp section', () => {
  const sc = policySeccompSection('/run/policy.sock', { metadata: 'm' });
  const compiled = compileSeccomp(sc, { nativeArch: 'x64' });
  const ret = (arch: number, nr: number, args: (number | bigint)[] = []) =>
    bpf(compiled.filter, { nr, arch, args }) >>> 0;
  const X = ARCHES.SCMP_ARCH_X86_64.table;
  const I = ARCHES.SCMP_ARCH_X86.table;

  test('notifies the policed calls, refuses the bypasses, allows the rest (x86_64 filter)', () => {
    assert.equal(sc.listenerPath, '/run/policy.sock');
    assert.equal(sc.listenerMetadata, 'm');
    assert.ok(compiled.usesNotify);
    for (const n of ['mount', 'umount2', 'sethostname'])
      assert.equal(ret(AUDIT_ARCH_X86_64, X[n]), SECCOMP_RET_USER_NOTIF, n);
    for (const n of ['fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr'])
      assert.equal(ret(AUDIT_ARCH_X86_64, X[n]), (SECCOMP_RET_ERRNO | 38) >>> 0, n);
    for (const n of ['io_uring_setup', 'io_uring_enter', 'io_uring_register'])
      assert.equal(ret(AUDIT_ARCH_X86_64, X[n]), (SECCOMP_RET_ERRNO | 1) >>> 0, n);
    assert.equal(ret(AUDIT_ARCH_X86_64, X.getpid), SECCOMP_RET_ALLOW);
    assert.equal(ret(AUDIT_ARCH_X86_64, X.mknod, [0, 0o20666]), SECCOMP_RET_USER_NOTIF, 'char device');
    assert.equal(ret(AUDIT_ARCH_X86_64, X.mknod, [0, 0o60600]), SECCOMP_RET_USER_NOTIF, 'block device');
    assert.equal(ret(AUDIT_ARCH_X86_64, X.mknod, [0, 0o10644]), SECCOMP_RET_ALLOW, 'a fifo needs no privilege');
    assert.equal(ret(AUDIT_ARCH_X86_64, X.mknodat, [0, 0, 0o20666]), SECCOMP_RET_USER_NOTIF);
    assert.equal(ret(AUDIT_ARCH_X86_64, X.chown), SECCOMP_RET_ALLOW, 'chown is only notified on request');
  });

  test('x32 numbers are killed; i386 calls are notified with i386 numbers', () => {
    assert.equal(ret(AUDIT_ARCH_X86_64, 0x40000000 | X.mount), SECCOMP_RET_KILL_THREAD);
    assert.equal(ret(AUDIT_ARCH_X86_64, 0x40000000 | X.getpid), SECCOMP_RET_KILL_THREAD);
    assert.equal(ret(AUDIT_ARCH_I386, I.mount), SECCOMP_RET_USER_NOTIF);
    assert.equal(ret(AUDIT_ARCH_I386, I.umount), SECCOMP_RET_USER_NOTIF);
    assert.equal(ret(AUDIT_ARCH_I386, I.fsopen), (SECCOMP_RET_ERRNO | 38) >>> 0);
  });

  test('aarch64 filter: 32-bit ARM calls are decided with ARM numbers', () => {
    const arm = compileSeccomp(policySeccompSection('/s', { architectures: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'] }), {
      nativeArch: 'arm64',
    });
    const A = ARCHES.SCMP_ARCH_ARM.table;
    assert.equal(bpf(arm.filter, { nr: A.mount, arch: AUDIT_ARCH_ARM }) >>> 0, SECCOMP_RET_USER_NOTIF);
    assert.equal(
      bpf(arm.filter, { nr: ARCHES.SCMP_ARCH_AARCH64.table.mount, arch: AUDIT_ARCH_AARCH64 }) >>> 0,
      SECCOMP_RET_USER_NOTIF,
    );
    assert.equal(bpf(arm.filter, { nr: A.getpid, arch: AUDIT_ARCH_ARM }) >>> 0, SECCOMP_RET_ALLOW);
  });

  test("extending hako's default profile: the policy rules come first, the rest of the profile stays", () => {
    const base = defaultSeccompProfile(['CAP_CHOWN'], undefined, { nativeArch: 'x64' });
    const ext = compileSeccomp(policySeccompSection('/s', { base }), { nativeArch: 'x64' });
    const r = (nr: number, args: number[] = []) => bpf(ext.filter, { nr, arch: AUDIT_ARCH_X86_64, args }) >>> 0;
    assert.equal(r(X.mount), SECCOMP_RET_USER_NOTIF, 'the default profile alone refuses mount');
    assert.equal(r(X.fsopen), (SECCOMP_RET_ERRNO | 38) >>> 0);
    assert.equal(r(X.getpid), SECCOMP_RET_ALLOW);
    assert.equal(r(X.reboot), (SECCOMP_RET_ERRNO | 1) >>> 0, 'still refused by the default profile');
  });

  test('the server decodes every ABI the host runs', () => {
    const l = nativeLayouts();
    const native = ARCHES[nativeScmpArch()];
    const mount = KINDS.indexOf('mount');
    assert.ok(l.some(([arch, nr, kind]) => arch === native.audit >>> 0 && nr === native.table.mount && kind === mount));
    if (process.arch === 'x64')
      assert.ok(l.some(([arch, nr, kind]) => arch === AUDIT_ARCH_I386 && nr === I.mount && kind === mount));
  });
});

describe("the caller check: never more than the caller could do, only for the container's processes", () => {
  const CAP_SYS_ADMIN = 1n << 21n;
  const mountNotif = (capEff: bigint): NotifyEventNotif => ({
    ...notif('mount', ['tmpfs', '/foo', 'tmpfs', 0, 'size=1m,nr_inodes=9']),
    creds: { uid: 200000, euid: 200000, fsuid: 200000, gid: 200000, egid: 200000, fsgid: 200000, capEff },
  });
  const emulate = (n: NotifyEventNotif) => {
    const d = decide(n, ctx);
    assert.equal(d.action, 'emulate');
    return d as Extract<typeof d, { action: 'emulate' }>;
  };
  // Container: user namespace 10 (child of the initial one, 1), pid namespace 20, registered by root.
  const ns = (user: [number, number][], mntOwner: [number, number][] = user, pid = [20, 2]) => ({
    user,
    pid,
    mntOwner,
    utsOwner: mntOwner,
    mnt: 99,
  });
  const scope = (o: Partial<CallerScope> = {}): CallerScope => ({
    ns: ns([
      [10, 0],
      [1, 0],
    ]),
    containerUserns: 10,
    containerPidns: 20,
    owner: 0,
    hostCallers: false,
    ...o,
  });

  test("CAP_SYS_ADMIN over the caller's own mount namespace is required for a mount", () => {
    const n = mountNotif(CAP_SYS_ADMIN);
    assert.equal(checkCaller(n, emulate(n), scope()), null);
    const bare = mountNotif(0n);
    assert.match(checkCaller(bare, emulate(bare), scope())!, /lacks CAP_SYS_ADMIN/);
    assert.match(checkCaller({ ...n, creds: undefined }, emulate(n), scope())!, /credentials/);
  });

  test("a caller outside the container's namespaces is refused", () => {
    const n = mountNotif(CAP_SYS_ADMIN);
    const d = emulate(n);
    assert.match(
      checkCaller(
        n,
        d,
        scope({
          ns: ns([
            [11, 0],
            [1, 0],
          ]),
        }),
      )!,
      /not in the container's user namespace/,
    );
    assert.match(
      checkCaller(
        n,
        d,
        scope({
          ns: ns(
            [
              [10, 0],
              [1, 0],
            ],
            undefined,
            [21, 2],
          ),
        }),
      )!,
      /not in the container's pid namespace/,
    );
    assert.match(checkCaller(n, d, scope({ ns: null }))!, /could not be read/);
  });

  test('the initial user namespace: only with hostCallers, only for a root-registered container', () => {
    const n = mountNotif(CAP_SYS_ADMIN);
    const d = emulate(n);
    const host = scope({ ns: ns([[1, 0]]), containerUserns: 1 });
    assert.match(checkCaller(n, d, host)!, /initial user namespace/);
    assert.equal(checkCaller(n, d, { ...host, hostCallers: true }), null);
    assert.match(checkCaller(n, d, { ...host, hostCallers: true, owner: 1000 })!, /not root/);
  });

  test("nested user namespaces: served when the caller's own user namespace owns its mount namespace", () => {
    const n = mountNotif(CAP_SYS_ADMIN);
    const d = emulate(n);
    const nested: [number, number][] = [
      [12, 200000],
      [10, 0],
      [1, 0],
    ];
    assert.equal(checkCaller(n, d, scope({ ns: ns(nested) })), null);
    assert.match(checkCaller(n, d, scope({ ns: ns(nested, nested.slice(1)) }))!, /no power over its mount namespace/);
    // The kernel's other case: the caller (euid 200000, in 10) owns the user namespace 12 that owns the
    // mount namespace: capable there without CAP_SYS_ADMIN in its own effective set.
    const outer = mountNotif(0n);
    assert.equal(
      checkCaller(
        outer,
        emulate(outer),
        scope({
          ns: ns(
            [
              [10, 0],
              [1, 0],
            ],
            nested,
          ),
        }),
      ),
      null,
    );
    assert.match(
      checkCaller(
        outer,
        emulate(outer),
        scope({
          ns: ns(
            [
              [10, 0],
              [1, 0],
            ],
            [
              [12, 5],
              [10, 0],
              [1, 0],
            ],
          ),
        }),
      )!,
      /lacks CAP_SYS_ADMIN/,
    );
  });

  test('a non-root owner: its user namespaces only, and nothing that needs host privilege', () => {
    const n = mountNotif(CAP_SYS_ADMIN);
    const d = emulate(n);
    assert.equal(
      checkCaller(
        n,
        d,
        scope({
          ns: ns([
            [10, 1000],
            [1, 0],
          ]),
          owner: 1000,
        }),
      ),
      null,
    );
    assert.match(
      checkCaller(
        n,
        d,
        scope({
          ns: ns([
            [10, 1001],
            [1, 0],
          ]),
          owner: 1000,
        }),
      )!,
      /not owned by the container's owner/,
    );
    const dev = (maj: number, min: number) => ((min & 0xff) | (maj << 8) | ((min & ~0xff) << 12)) >>> 0;
    const m = {
      ...notif('mknod', ['/dev/null', 0o20666, dev(1, 3)]),
      creds: { ...mountNotif(0n).creds!, capEff: 1n << 27n },
    };
    const md = emulate(m);
    assert.equal(checkCaller(m, md, scope()), null);
    assert.match(
      checkCaller(
        m,
        md,
        scope({
          ns: ns([
            [10, 1000],
            [1, 0],
          ]),
          owner: 1000,
        }),
      )!,
      /host privilege/,
    );
    assert.match(checkCaller({ ...m, creds: { ...m.creds, capEff: 0n } }, md, scope())!, /lacks CAP_MKNOD/);
  });

  test("a chrooted caller: the policy matches the path from the container's root; the helper gets both", () => {
    const chrooted = { ...ctx, callerRoot: () => '/sub' };
    const d = decide(notif('mount', ['tmpfs', '/foo', 'tmpfs', 0, 'size=1m,nr_inodes=9']), chrooted);
    assert.equal(d.action, 'deny');
    assert.match((d as { reason: string }).reason, /on \/sub\/foo/);
    const ok = decide(notif('mount', ['tmpfs', '/x/../foo', 'tmpfs', 0, 'size=1m,nr_inodes=9']), ctx);
    assert.ok(ok.action === 'emulate' && ok.strs[2] === '/foo' && ok.strs[4] === '/foo' && ok.where === '/foo');
    const rel = decide(notif('mount', ['tmpfs', 'foo', 'tmpfs', 0, 'size=1m,nr_inodes=9']), {
      ...ctx,
      callerDir: () => '/',
      callerRoot: () => '/',
    });
    assert.ok(rel.action === 'emulate' && rel.strs[4] === '/foo');
  });
});
