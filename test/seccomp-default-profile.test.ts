import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LinuxSeccomp } from '../lib/oci/types';
import { ARCHES, type ScmpArch, syscallNumber } from '../lib/seccomp/arch';
import { compileSeccomp, type CompiledSeccomp } from '../lib/seccomp/compile';
import { defaultSeccompProfile } from '../lib/seccomp/default-profile';
import { decide, run, validate } from './helpers/bpf-interpreter';

const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;
const ENOSYS = 0x00050026;
const KILL_THREAD = 0;

const CLONE_VM = 0x100;
const CLONE_FS = 0x200;
const CLONE_FILES = 0x400;
const CLONE_SIGHAND = 0x800;
const CLONE_THREAD = 0x10000;
const CLONE_SYSVSEM = 0x40000;
const CLONE_SETTLS = 0x80000;
const CLONE_PARENT_SETTID = 0x100000;
const CLONE_CHILD_CLEARTID = 0x200000;
const CLONE_NEWNS = 0x20000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWTIME = 0x80;
const SIGCHLD = 17;
const PTHREAD_CREATE_FLAGS =
  CLONE_VM |
  CLONE_FS |
  CLONE_FILES |
  CLONE_SIGHAND |
  CLONE_THREAD |
  CLONE_SYSVSEM |
  CLONE_SETTLS |
  CLONE_PARENT_SETTID |
  CLONE_CHILD_CLEARTID;

const ALL_CAPS = [
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_CHROOT',
  'CAP_SYS_MODULE',
  'CAP_SYS_PACCT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_SYSLOG',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_BPF',
  'CAP_PERFMON',
  'CAP_DAC_READ_SEARCH',
];
/** Docker's default capability set. */
const DOCKER_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

function build(caps: string[], nativeArch = 'x64', kernelRelease = '6.18.0'): CompiledSeccomp {
  const profile = defaultSeccompProfile(caps, undefined, { nativeArch, kernelRelease });
  const c = compileSeccomp(profile, { nativeArch });
  validate(c.filter);
  return c;
}

function sys(c: CompiledSeccomp, arch: ScmpArch, name: string, args: (number | bigint)[] = []): number {
  const nr = syscallNumber(arch, name);
  assert.notEqual(nr, undefined, `${name} on ${arch}`);
  return decide(c.filter, { arch: ARCHES[arch].audit, nr: nr as number, args });
}

describe('default profile: shape', () => {
  test("Docker's defaults: EPERM for everything unlisted, the host ABIs", () => {
    const p = defaultSeccompProfile([], undefined, { nativeArch: 'x64' });
    assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(p.defaultErrnoRet, 1);
    assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.deepEqual(defaultSeccompProfile([], undefined, { nativeArch: 'arm64' }).architectures, [
      'SCMP_ARCH_AARCH64',
      'SCMP_ARCH_ARM',
    ]);
    assert.deepEqual(defaultSeccompProfile([], undefined, { nativeArch: 'arm' }).architectures, ['SCMP_ARCH_ARM']);
  });

  test('every name is a syscall of at least one ABI (no typos)', () => {
    const p = defaultSeccompProfile(ALL_CAPS, Object.keys(ARCHES) as ScmpArch[]);
    const names = new Set(p.syscalls?.flatMap((r) => r.names));
    assert.ok(names.size > 370, `${names.size}`);
    const unknown = [...names].filter(
      (n) => !(Object.keys(ARCHES) as ScmpArch[]).some((a) => syscallNumber(a, n) !== undefined),
    );
    assert.deepEqual(unknown, []);
  });

  test('no rule has two conditions on one argument (runc would OR them)', () => {
    const p = defaultSeccompProfile([], Object.keys(ARCHES) as ScmpArch[]);
    for (const r of p.syscalls ?? []) {
      const idx = (r.args ?? []).map((a) => a.index);
      assert.equal(new Set(idx).size, idx.length, JSON.stringify(r));
    }
  });

  test('the result is plain JSON', () => {
    const p = defaultSeccompProfile(DOCKER_CAPS);
    assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
  });

  test('size stays far below the kernel limit on every host and capability set', (t) => {
    const sets: [string, string[]][] = [
      ['no caps', []],
      ['docker caps', DOCKER_CAPS],
      ['all caps', ALL_CAPS],
    ];
    for (const nativeArch of ['x64', 'arm64', 'arm']) {
      for (const [label, caps] of sets) {
        const c = build(caps, nativeArch);
        t.diagnostic(`${nativeArch} ${label}: ${c.instructions} instructions`);
        assert.ok(c.instructions < 1200, `${nativeArch} ${label}: ${c.instructions}`);
      }
    }
    const every = compileSeccomp(defaultSeccompProfile([], Object.keys(ARCHES) as ScmpArch[]), { nativeArch: 'x64' });
    t.diagnostic(`all five ABIs: ${every.instructions} instructions`);
    assert.ok(every.instructions < 4096);
    validate(every.filter);
  });

  test('a syscall costs few instructions at run time', () => {
    const c = build(DOCKER_CAPS);
    const steps = ['read', 'write', 'futex', 'epoll_wait', 'getpid', 'mmap'].map(
      (n) =>
        run(c.filter, { arch: ARCHES.SCMP_ARCH_X86_64.audit, nr: syscallNumber('SCMP_ARCH_X86_64', n) as number })
          .steps,
    );
    assert.ok(Math.max(...steps) <= 14, `${steps.join(',')}`);
  });
});

describe('default profile: decisions on x86_64', () => {
  const none = build([]);
  const admin = build(['CAP_SYS_ADMIN']);
  const X = 'SCMP_ARCH_X86_64';

  test('ordinary calls are allowed', () => {
    for (const name of [
      'read',
      'write',
      'openat',
      'execve',
      'exit_group',
      'futex',
      'rt_sigaction',
      'getdents64',
      'statx',
      'wait4',
      'pipe2',
      'fchmodat2',
      'uretprobe',
    ]) {
      assert.equal(sys(none, X, name), ALLOW, name);
    }
  });

  test('key management, mounts and module loading are denied with EPERM', () => {
    for (const name of [
      'keyctl',
      'add_key',
      'request_key',
      'mount',
      'umount2',
      'pivot_root',
      'init_module',
      'kexec_load',
      'bpf',
      'swapon',
      'reboot',
      'open_by_handle_at',
    ]) {
      assert.equal(sys(none, X, name), EPERM, name);
    }
    assert.equal(sys(admin, X, 'mount'), ALLOW);
    assert.equal(sys(admin, X, 'keyctl'), EPERM);
  });

  test('clone: threads and forks yes, namespaces only with CAP_SYS_ADMIN', () => {
    assert.equal(sys(none, X, 'clone', [PTHREAD_CREATE_FLAGS]), ALLOW);
    assert.equal(sys(none, X, 'clone', [CLONE_CHILD_CLEARTID | SIGCHLD]), ALLOW);
    assert.equal(sys(none, X, 'clone', [CLONE_NEWUSER | SIGCHLD]), EPERM);
    assert.equal(sys(none, X, 'clone', [CLONE_NEWNS | SIGCHLD]), EPERM);
    assert.equal(sys(none, X, 'clone', [CLONE_NEWNET]), EPERM);
    assert.equal(sys(admin, X, 'clone', [CLONE_NEWUSER | SIGCHLD]), ALLOW);
  });

  test('clone3 answers ENOSYS without CAP_SYS_ADMIN so libc falls back to clone', () => {
    assert.equal(sys(none, X, 'clone3'), ENOSYS);
    assert.equal(sys(admin, X, 'clone3'), ALLOW);
  });

  test('unshare: no namespace flags without CAP_SYS_ADMIN', () => {
    assert.equal(sys(none, X, 'unshare', [CLONE_FILES | CLONE_FS]), ALLOW);
    assert.equal(sys(none, X, 'unshare', [CLONE_NEWUSER]), EPERM);
    assert.equal(sys(none, X, 'unshare', [CLONE_NEWTIME]), EPERM);
    assert.equal(sys(none, X, 'unshare', [CLONE_NEWNS | CLONE_FS]), EPERM);
    assert.equal(sys(admin, X, 'unshare', [CLONE_NEWUSER]), ALLOW);
  });

  test('personality: only the harmless values', () => {
    for (const v of [0, 8, 0x20000, 0x20008, 0xffffffff])
      assert.equal(sys(none, X, 'personality', [v]), ALLOW, `0x${v.toString(16)}`);
    for (const v of [0x0040000 /* ADDR_NO_RANDOMIZE */, 0x0400000 /* READ_IMPLIES_EXEC */, 1, 0xfffffffe]) {
      assert.equal(sys(none, X, 'personality', [v]), EPERM, `0x${v.toString(16)}`);
    }
    assert.equal(sys(none, X, 'personality', [0x1_0000_0000n]), EPERM);
  });

  test('socket: common families yes, AF_VSOCK, AF_ALG and unknown families no', () => {
    for (const family of [1 /* UNIX */, 2 /* INET */, 10 /* INET6 */, 16 /* NETLINK */, 17 /* PACKET */, 45]) {
      assert.equal(sys(none, X, 'socket', [family, 1, 0]), ALLOW, `family ${family}`);
    }
    for (const family of [12, 19, 38 /* ALG */, 40 /* VSOCK */, 46, 1000]) {
      assert.equal(sys(none, X, 'socket', [family, 1, 0]), EPERM, `family ${family}`);
    }
    assert.equal(sys(none, X, 'socketpair', [1, 1, 0]), ALLOW);
  });

  test('ptrace follows the kernel version and CAP_SYS_PTRACE', () => {
    assert.equal(sys(none, X, 'ptrace'), ALLOW);
    assert.equal(sys(none, X, 'kcmp'), EPERM);
    const old = build([], 'x64', '4.4.0-210-generic');
    assert.equal(sys(old, X, 'ptrace'), EPERM);
    assert.equal(sys(build(['CAP_SYS_PTRACE'], 'x64', '4.4.0'), X, 'ptrace'), ALLOW);
    assert.equal(sys(build(['CAP_SYS_PTRACE']), X, 'kcmp'), ALLOW);
  });

  test('capability blocks: each capability unlocks its calls only', () => {
    const cases: [string, string][] = [
      ['CAP_SYS_BOOT', 'reboot'],
      ['CAP_SYS_CHROOT', 'chroot'],
      ['CAP_SYS_MODULE', 'finit_module'],
      ['CAP_SYS_PACCT', 'acct'],
      ['CAP_SYS_RAWIO', 'iopl'],
      ['CAP_SYS_TIME', 'settimeofday'],
      ['CAP_SYS_TTY_CONFIG', 'vhangup'],
      ['CAP_SYSLOG', 'syslog'],
      ['CAP_SYS_NICE', 'mbind'],
      ['CAP_BPF', 'bpf'],
      ['CAP_PERFMON', 'perf_event_open'],
      ['CAP_DAC_READ_SEARCH', 'open_by_handle_at'],
    ];
    for (const [cap, name] of cases) {
      assert.equal(sys(none, X, name), EPERM, `${name} without ${cap}`);
      assert.equal(sys(build([cap]), X, name), ALLOW, `${name} with ${cap}`);
      assert.equal(sys(build([cap]), X, 'mount'), EPERM, `mount with ${cap}`);
    }
    assert.equal(sys(build(['sys_boot']), X, 'reboot'), ALLOW, 'capability names without CAP_, any case');
  });

  test('x86-only calls', () => {
    assert.equal(sys(none, X, 'arch_prctl'), ALLOW);
    assert.equal(sys(none, X, 'modify_ldt'), ALLOW);
    assert.equal(sys(none, 'SCMP_ARCH_X86', 'modify_ldt'), ALLOW);
  });

  test('i386 and x32 processes get the same policy under their own numbers', () => {
    assert.equal(sys(none, 'SCMP_ARCH_X86', 'read'), ALLOW);
    assert.equal(sys(none, 'SCMP_ARCH_X86', 'mount'), EPERM);
    assert.equal(sys(none, 'SCMP_ARCH_X86', 'clone', [CLONE_NEWUSER]), EPERM);
    assert.equal(sys(none, 'SCMP_ARCH_X86', 'socketcall'), ALLOW);
    assert.equal(sys(none, 'SCMP_ARCH_X32', 'read'), ALLOW);
    assert.equal(sys(none, 'SCMP_ARCH_X32', 'keyctl'), EPERM);
    assert.equal(sys(none, 'SCMP_ARCH_X32', 'rt_sigaction'), ALLOW);
    // i386's clone takes 32-bit flags: high garbage in the register does not matter
    assert.equal(sys(none, 'SCMP_ARCH_X86', 'clone', [0x1_0000_0000n | BigInt(SIGCHLD)]), ALLOW);
  });

  test('syscalls newer than the profile get ENOSYS, unknown ABIs are killed', () => {
    const audit = ARCHES.SCMP_ARCH_X86_64.audit;
    assert.equal(decide(none.filter, { arch: audit, nr: 470 }), ENOSYS);
    assert.equal(decide(none.filter, { arch: audit, nr: 200 }), ALLOW); // tkill
    assert.equal(decide(none.filter, { arch: ARCHES.SCMP_ARCH_AARCH64.audit, nr: 63 }), KILL_THREAD);
  });
});

describe('default profile: decisions on ARM hosts', () => {
  const a64 = build([], 'arm64');
  const arm = build([], 'arm');

  test('aarch64 and 32-bit ARM tasks on an arm64 host', () => {
    assert.equal(sys(a64, 'SCMP_ARCH_AARCH64', 'read'), ALLOW);
    assert.equal(sys(a64, 'SCMP_ARCH_AARCH64', 'mount'), EPERM);
    assert.equal(sys(a64, 'SCMP_ARCH_AARCH64', 'keyctl'), EPERM);
    assert.equal(sys(a64, 'SCMP_ARCH_AARCH64', 'clone', [CLONE_NEWUSER]), EPERM);
    assert.equal(sys(a64, 'SCMP_ARCH_AARCH64', 'clone', [PTHREAD_CREATE_FLAGS]), ALLOW);
    assert.equal(sys(a64, 'SCMP_ARCH_ARM', 'mount'), EPERM); // 21 on arm, epoll_ctl on aarch64
    assert.equal(sys(a64, 'SCMP_ARCH_AARCH64', 'epoll_ctl'), ALLOW);
    assert.equal(sys(a64, 'SCMP_ARCH_ARM', 'cacheflush'), ALLOW);
    assert.equal(sys(a64, 'SCMP_ARCH_ARM', 'set_tls'), ALLOW);
    assert.equal(sys(a64, 'SCMP_ARCH_ARM', 'arm_fadvise64_64'), ALLOW);
    assert.equal(sys(a64, 'SCMP_ARCH_ARM', 'usr26'), EPERM);
    assert.equal(decide(a64.filter, { arch: ARCHES.SCMP_ARCH_X86_64.audit, nr: 0 }), KILL_THREAD);
  });

  test('armv7 host', () => {
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'read'), ALLOW);
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'clock_gettime64'), ALLOW);
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'keyctl'), EPERM);
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'clone', [CLONE_NEWUSER | SIGCHLD]), EPERM);
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'personality', [0xffffffff]), ALLOW);
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'personality', [0x0400000]), EPERM);
    assert.equal(sys(arm, 'SCMP_ARCH_ARM', 'breakpoint'), ALLOW);
    assert.equal(syscallNumber('SCMP_ARCH_ARM', 'arch_prctl'), undefined);
    assert.equal(decide(arm.filter, { arch: ARCHES.SCMP_ARCH_ARM.audit, nr: 0xf0007 }), ENOSYS);
  });

  test("an explicit ABI list overrides the host's", () => {
    const p: LinuxSeccomp = defaultSeccompProfile([], ['SCMP_ARCH_AARCH64'], { nativeArch: 'arm64' });
    assert.deepEqual(p.architectures, ['SCMP_ARCH_AARCH64']);
    assert.ok(!p.syscalls?.some((r) => r.names.includes('arch_prctl')));
    const c = compileSeccomp(p, { nativeArch: 'arm64' });
    assert.equal(decide(c.filter, { arch: ARCHES.SCMP_ARCH_ARM.audit, nr: 3 }), KILL_THREAD);
  });
});
