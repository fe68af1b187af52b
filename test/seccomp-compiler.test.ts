import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HakoError } from '../lib/errors';
import type { LinuxSeccomp, SeccompAction, SeccompArg, SeccompOperator, SeccompSyscall } from '../lib/oci/types';
import { ARCHES, type ScmpArch, syscallNumber } from '../lib/seccomp/arch';
import { compileSeccomp, type CompiledSeccomp, type CompileOptions } from '../lib/seccomp/compile';
import { disassemble } from '../lib/seccomp/disasm';
import { decide, run, validate } from './helpers/bpf-interpreter';

const AUDIT = {
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
  ARM: 0x40000028,
} as const;
const X32_BIT = 0x40000000;

const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  NOTIFY: 0x7fc00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
  errno: (e: number): number => (0x00050000 | e) >>> 0,
  trace: (m: number): number => (0x7ff00000 | m) >>> 0,
};
const ENOSYS = RET.errno(38);
const EPERM = RET.errno(1);

const U32 = 0xffffffffn;
const U64 = (1n << 64n) - 1n;
/** The OCI types say number; the compiler also takes bigint for values JSON cannot carry exactly. */
const big = (v: bigint): number => v as unknown as number;

function compile(spec: LinuxSeccomp, opts: CompileOptions = {}): CompiledSeccomp {
  const c = compileSeccomp(spec, { nativeArch: 'x64', ...opts });
  validate(c.filter);
  assert.equal(c.instructions, c.filter.length / 8);
  return c;
}

function auditOf(arch: ScmpArch): number {
  return ARCHES[arch].audit;
}

/** Run the filter for syscall `name` of `arch`. */
function call(c: CompiledSeccomp, arch: ScmpArch, name: string, args: (bigint | number)[] = []): number {
  const nr = syscallNumber(arch, name);
  assert.notEqual(nr, undefined, `${name} on ${arch}`);
  return decide(c.filter, { arch: auditOf(arch), nr: nr as number, args });
}

function expectField(fn: () => unknown, field: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HakoError, `expected HakoError, got ${String(err)}`);
    assert.equal(err.field, field, err.message);
    assert.ok(err.message.startsWith(field), err.message);
    return true;
  });
}

function rule(names: string[], action: SeccompAction, extra: Partial<SeccompSyscall> = {}): SeccompSyscall {
  return { names, action, ...extra };
}

// ---------------------------------------------------------------------------------------------------------------

describe('actions', () => {
  const cases: [SeccompAction, Partial<SeccompSyscall>, number][] = [
    ['SCMP_ACT_KILL', {}, RET.KILL_THREAD],
    ['SCMP_ACT_KILL_THREAD', {}, RET.KILL_THREAD],
    ['SCMP_ACT_KILL_PROCESS', {}, RET.KILL_PROCESS],
    ['SCMP_ACT_TRAP', {}, RET.TRAP],
    ['SCMP_ACT_ERRNO', {}, EPERM],
    ['SCMP_ACT_ERRNO', { errnoRet: 13 }, RET.errno(13)],
    ['SCMP_ACT_ERRNO', { errnoRet: 0 }, RET.errno(0)],
    ['SCMP_ACT_TRACE', {}, RET.trace(1)],
    ['SCMP_ACT_TRACE', { errnoRet: 0x1234 }, RET.trace(0x1234)],
    ['SCMP_ACT_LOG', {}, RET.LOG],
  ];
  for (const [action, extra, expected] of cases) {
    test(`${action} ${JSON.stringify(extra)} returns 0x${expected.toString(16)}`, () => {
      const c = compile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [rule(['getpid'], action, extra)] });
      assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), expected);
      assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getppid'), RET.ALLOW);
      assert.equal(c.usesNotify, false);
      assert.equal(c.flags, 0);
    });
  }

  test('SCMP_ACT_ALLOW under a denying default', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_KILL_PROCESS', syscalls: [rule(['getpid'], 'SCMP_ACT_ALLOW')] });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), RET.ALLOW);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'read'), RET.KILL_PROCESS);
  });

  test('SCMP_ACT_NOTIFY returns USER_NOTIF and asks for a listener', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      listenerPath: '/run/agent.sock',
      syscalls: [rule(['mkdir'], 'SCMP_ACT_NOTIFY')],
    });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'mkdir'), RET.NOTIFY);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'rmdir'), RET.ALLOW);
    assert.equal(c.usesNotify, true);
    assert.equal(c.flags, 8);
  });

  test('default actions and defaultErrnoRet', () => {
    const cases: [LinuxSeccomp, number][] = [
      [{ defaultAction: 'SCMP_ACT_ERRNO' }, EPERM],
      [{ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 13 }, RET.errno(13)],
      [{ defaultAction: 'SCMP_ACT_TRACE', defaultErrnoRet: 9 }, RET.trace(9)],
      [{ defaultAction: 'SCMP_ACT_KILL' }, RET.KILL_THREAD],
      [{ defaultAction: 'SCMP_ACT_KILL_PROCESS' }, RET.KILL_PROCESS],
      [{ defaultAction: 'SCMP_ACT_TRAP' }, RET.TRAP],
      [{ defaultAction: 'SCMP_ACT_LOG' }, RET.LOG],
      [{ defaultAction: 'SCMP_ACT_NOTIFY', listenerPath: '/s' }, RET.NOTIFY],
    ];
    for (const [spec, expected] of cases) {
      // getpid (39) is below the highest syscall named, so the ENOSYS stub does not apply.
      const c = compile({
        ...spec,
        syscalls: [rule(['write', 'rt_sigreturn', 'exit_group', 'gettid'], 'SCMP_ACT_ALLOW')],
      });
      assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), expected, JSON.stringify(spec));
      assert.equal(call(c, 'SCMP_ARCH_X86_64', 'write'), RET.ALLOW);
    }
  });

  test('errnoRet is refused where the action carries no errno', () => {
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [rule(['read'], 'SCMP_ACT_ALLOW', { errnoRet: 1 })] }),
      'linux.seccomp.syscalls[0].errnoRet',
    );
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 1 }),
      'linux.seccomp.defaultErrnoRet',
    );
    expectField(
      () =>
        compile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [rule(['read'], 'SCMP_ACT_ERRNO', { errnoRet: 65536 })] }),
      'linux.seccomp.syscalls[0].errnoRet',
    );
    expectField(
      () =>
        compile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [rule(['read'], 'SCMP_ACT_ERRNO', { errnoRet: -1 })] }),
      'linux.seccomp.syscalls[0].errnoRet',
    );
  });

  test('unknown actions name their field', () => {
    expectField(() => compile({ defaultAction: 'SCMP_ACT_NOPE' as SeccompAction }), 'linux.seccomp.defaultAction');
    expectField(
      () =>
        compile({
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [rule(['read'], 'SCMP_ACT_ERRNO'), rule(['write'], 'allow' as SeccompAction)],
        }),
      'linux.seccomp.syscalls[1].action',
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

function refCompare(op: SeccompOperator, x: bigint, v: bigint, v2: bigint): boolean {
  switch (op) {
    case 'SCMP_CMP_EQ':
      return x === v;
    case 'SCMP_CMP_NE':
      return x !== v;
    case 'SCMP_CMP_LT':
      return x < v;
    case 'SCMP_CMP_LE':
      return x <= v;
    case 'SCMP_CMP_GT':
      return x > v;
    case 'SCMP_CMP_GE':
      return x >= v;
    case 'SCMP_CMP_MASKED_EQ':
      return (x & v) === (v2 & v); // libseccomp masks the expected value too
  }
}

/** Reference semantics of one condition: 64-bit on 64-bit ABIs, low words only on 32-bit ABIs (libseccomp). */
function refCondition(arch: ScmpArch, a: { op: SeccompOperator; value: bigint; valueTwo: bigint }, x: bigint): boolean {
  if (ARCHES[arch].argBits === 32) return refCompare(a.op, x & U32, a.value & U32, a.valueTwo & U32);
  return refCompare(a.op, x, a.value, a.valueTwo);
}

const BOUNDARY_VALUES: bigint[] = [
  0n,
  1n,
  5n,
  0x7fffffffn,
  0x80000000n,
  U32 - 1n,
  U32,
  U32 + 1n,
  1n << 32n,
  (1n << 32n) + 5n,
  5n << 32n,
  (5n << 32n) + 5n,
  0x123456789abcdefn,
  1n << 63n,
  U64 - 1n,
  U64,
];

function probesFor(v: bigint): bigint[] {
  const set = new Set<bigint>([0n, U32, 1n << 32n, U64, v, v ^ (1n << 32n), (v & U32) | (7n << 32n), v & U32]);
  for (const d of [-1n, 1n, -(1n << 32n), 1n << 32n]) {
    const x = v + d;
    if (x >= 0n && x <= U64) set.add(x);
  }
  return [...set];
}

describe('operators', () => {
  const ops: SeccompOperator[] = [
    'SCMP_CMP_EQ',
    'SCMP_CMP_NE',
    'SCMP_CMP_LT',
    'SCMP_CMP_LE',
    'SCMP_CMP_GT',
    'SCMP_CMP_GE',
  ];
  const arches: ScmpArch[] = [
    'SCMP_ARCH_X86_64',
    'SCMP_ARCH_AARCH64',
    'SCMP_ARCH_X86',
    'SCMP_ARCH_ARM',
    'SCMP_ARCH_X32',
  ];
  for (const arch of arches) {
    for (const op of ops) {
      test(`${op} on ${arch} at boundary values`, () => {
        let checked = 0;
        for (const value of BOUNDARY_VALUES) {
          for (const index of [0, 3, 5]) {
            const c = compile({
              defaultAction: 'SCMP_ACT_ALLOW',
              architectures: [arch],
              syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO', { errnoRet: 5, args: [{ index, op, value: big(value) }] })],
            });
            for (const x of probesFor(value)) {
              const args = [0n, 0n, 0n, 0n, 0n, 0n];
              args[index] = x;
              const expected = refCondition(arch, { op, value, valueTwo: 0n }, x) ? RET.errno(5) : RET.ALLOW;
              assert.equal(
                call(c, arch, 'getpid', args),
                expected,
                `${arch} args[${index}]=0x${x.toString(16)} ${op} 0x${value.toString(16)}`,
              );
              checked++;
            }
          }
        }
        assert.ok(checked > 300);
      });
    }

    test(`SCMP_CMP_MASKED_EQ on ${arch}`, () => {
      const masks = [0n, 0xffn, U32, U32 << 32n, U64, 0x7e020000n, (1n << 32n) | 0xffn, 0x8000000000000001n];
      for (const mask of masks) {
        const datums = new Set<bigint>([
          0n,
          mask,
          mask & 0x0f0f0f0f0f0f0f0fn,
          mask | 0x100n,
          (1n << 40n) & ~mask & U64,
        ]);
        for (const datum of datums) {
          const c = compile({
            defaultAction: 'SCMP_ACT_ALLOW',
            architectures: [arch],
            syscalls: [
              rule(['getpid'], 'SCMP_ACT_ERRNO', {
                errnoRet: 7,
                args: [{ index: 1, op: 'SCMP_CMP_MASKED_EQ', value: big(mask), valueTwo: big(datum) }],
              }),
            ],
          });
          const xs = [0n, datum, datum | (~mask & U64), datum ^ 1n, datum ^ (1n << 32n), U64, mask, datum | 0x100n];
          for (const x of xs) {
            const expected = refCondition(arch, { op: 'SCMP_CMP_MASKED_EQ', value: mask, valueTwo: datum }, x);
            assert.equal(
              call(c, arch, 'getpid', [0n, x]),
              expected ? RET.errno(7) : RET.ALLOW,
              `${arch} (0x${x.toString(16)} & 0x${mask.toString(16)}) == 0x${datum.toString(16)}`,
            );
          }
        }
      }
    });
  }

  test('64-bit comparisons look at the high word on x86_64 and not on arm', () => {
    const spec: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'],
      syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO', { args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 5 }] })],
    };
    const c = compile(spec);
    const hiSet = (1n << 32n) | 5n;
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [5n]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [hiSet]), RET.ALLOW);
    // x32 is 32-bit for argument comparisons, as in libseccomp
    assert.equal(call(c, 'SCMP_ARCH_X32', 'getpid', [hiSet]), EPERM);
    const arm = compile(spec, { nativeArch: 'arm' });
    assert.equal(call(arm, 'SCMP_ARCH_ARM', 'getpid', [hiSet]), EPERM);
  });

  test('operands above 32 bits are truncated on 32-bit ABIs, with a debug message', () => {
    const messages: string[] = [];
    const c = compile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO', { args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 2 ** 32 + 3 }] })],
      },
      { nativeArch: 'arm', debug: (m) => messages.push(m) },
    );
    assert.equal(call(c, 'SCMP_ARCH_ARM', 'getpid', [3n]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_ARM', 'getpid', [2n ** 32n + 3n]), EPERM);
    assert.ok(
      messages.some((m) => m.includes('truncated')),
      messages.join('\n'),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('rules', () => {
  const eq = (index: number, value: number): SeccompArg => ({ index, op: 'SCMP_CMP_EQ', value });

  test('conditions of one rule are ANDed', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO', { args: [eq(0, 1), eq(1, 2)] })],
    });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [1, 2]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [1, 3]), RET.ALLOW);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [0, 2]), RET.ALLOW);
  });

  test('two conditions on the same argument: each is a rule of its own, ORed, as runc and crun do', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        rule(['getpid'], 'SCMP_ACT_ERRNO', {
          args: [
            { index: 0, op: 'SCMP_CMP_GE', value: 10 },
            { index: 0, op: 'SCMP_CMP_LE', value: 20 },
          ],
        }),
      ],
    });
    // x >= 10 OR x <= 20: every value.
    assert.deepEqual(
      [9, 10, 15, 20, 21].map((x) => call(c, 'SCMP_ARCH_X86_64', 'getpid', [x])),
      [EPERM, EPERM, EPERM, EPERM, EPERM],
    );
  });

  test('a repeated index ORs all the conditions of the rule, those on other arguments too (runc matchCall)', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO', { args: [eq(0, 1), eq(0, 2), eq(1, 7)] })],
    });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [1, 0]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [2, 0]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [3, 7]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [3, 0]), RET.ALLOW);
  });

  test('rules are tried in order and the first full match wins', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        rule(['getpid'], 'SCMP_ACT_ERRNO', { errnoRet: 1, args: [eq(0, 1)] }),
        rule(['getpid', 'getppid'], 'SCMP_ACT_ERRNO', { errnoRet: 2, args: [eq(1, 2)] }),
        rule(['getpid'], 'SCMP_ACT_ERRNO', { errnoRet: 3 }),
        rule(['getpid'], 'SCMP_ACT_ERRNO', { errnoRet: 4, args: [eq(2, 3)] }),
      ],
    });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [1, 2, 3]), RET.errno(1));
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [0, 2, 3]), RET.errno(2));
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [0, 0, 3]), RET.errno(3));
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getppid', [0, 2]), RET.errno(2));
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getppid', [1, 0]), RET.ALLOW);
  });

  test('an unconditional rule shadows later rules for the same syscall, with a debug message', () => {
    const messages: string[] = [];
    const c = compile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        syscalls: [rule(['getpid'], 'SCMP_ACT_ALLOW'), rule(['getpid'], 'SCMP_ACT_KILL', { args: [eq(0, 1)] })],
      },
      { debug: (m) => messages.push(m) },
    );
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [1]), RET.ALLOW);
    assert.ok(
      messages.some((m) => m.includes('never reached')),
      messages.join('\n'),
    );
  });

  test('a rule with the default action still takes precedence over later rules', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO', { args: [eq(0, 1)] }), rule(['getpid'], 'SCMP_ACT_ALLOW')],
    });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [1]), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid', [2]), RET.ALLOW);
  });

  test('unknown syscall names are skipped per architecture with a debug message', () => {
    const messages: string[] = [];
    const c = compile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
        syscalls: [rule(['no_such_syscall', 'arch_prctl', 'getpid'], 'SCMP_ACT_ERRNO')],
      },
      { debug: (m) => messages.push(m) },
    );
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'arch_prctl'), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_AARCH64', 'getpid'), EPERM);
    assert.equal(messages.filter((m) => m.includes('"no_such_syscall"')).length, 2, messages.join('\n'));
    assert.ok(messages.some((m) => m.includes('"arch_prctl"') && m.includes('SCMP_ARCH_AARCH64')));
    assert.ok(!messages.some((m) => m.includes('"arch_prctl"') && m.includes('SCMP_ARCH_X86_64')));
  });

  test('an empty profile compiles to the default action', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ERRNO' });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'read'), EPERM);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 0xffffffff }), EPERM);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('architectures', () => {
  const ALL: ScmpArch[] = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];

  test("mount has each ABI's own number", () => {
    assert.deepEqual(
      ALL.map((a) => syscallNumber(a, 'mount')),
      [165, 21, (X32_BIT | 165) >>> 0, 40, 21],
    );
    assert.equal(syscallNumber('SCMP_ARCH_AARCH64', 'open'), undefined);
    assert.equal(syscallNumber('SCMP_ARCH_ARM', 'cacheflush'), 0x0f0002);
    assert.equal(syscallNumber('SCMP_ARCH_X86_64', 'toString'), undefined);
  });

  test('one filter covers every listed ABI', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ALL,
      syscalls: [rule(['mount'], 'SCMP_ACT_ERRNO', { errnoRet: 9 })],
    });
    for (const arch of ALL) {
      assert.equal(call(c, arch, 'mount'), RET.errno(9), arch);
      assert.equal(call(c, arch, 'getpid'), RET.ALLOW, arch);
    }
    // mount is 21 on arm and i386 but 40 on aarch64, where 21 is epoll_ctl
    assert.equal(decide(c.filter, { arch: AUDIT.AARCH64, nr: 21 }), RET.ALLOW);
  });

  test('a syscall from an ABI not in the filter is killed (libseccomp bad-arch action)', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ALLOW' });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), RET.ALLOW);
    assert.equal(decide(c.filter, { arch: AUDIT.I386, nr: 20 }), RET.KILL_THREAD);
    assert.equal(decide(c.filter, { arch: AUDIT.ARM, nr: 20 }), RET.KILL_THREAD);
    assert.equal(decide(c.filter, { arch: 0xdeadbeef, nr: 20 }), RET.KILL_THREAD);
    const a64 = compile({ defaultAction: 'SCMP_ACT_ALLOW' }, { nativeArch: 'arm64' });
    assert.equal(decide(a64.filter, { arch: AUDIT.AARCH64, nr: 172 }), RET.ALLOW);
    assert.equal(decide(a64.filter, { arch: AUDIT.ARM, nr: 20 }), RET.KILL_THREAD);
    const armOnly = compile(
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_ARM'] },
      { nativeArch: 'arm64' },
    );
    assert.equal(decide(armOnly.filter, { arch: AUDIT.ARM, nr: 20 }), RET.ALLOW);
  });

  test('the native ABI is always covered, even when not listed', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86'],
      syscalls: [rule(['getpid'], 'SCMP_ACT_ERRNO')],
    });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), EPERM);
    assert.equal(call(c, 'SCMP_ARCH_X86', 'getpid'), EPERM);
  });

  test('unknown architecture names are errors naming the entry', () => {
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_Z80'] }),
      'linux.seccomp.architectures[1]',
    );
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['x86_64'] }),
      'linux.seccomp.architectures[0]',
    );
    assert.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, { nativeArch: 'riscv64' }), HakoError);
  });

  test('architectures of other hosts are accepted and change nothing', () => {
    const messages: string[] = [];
    const base: LinuxSeccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [rule(['read'], 'SCMP_ACT_ALLOW')] };
    const plain = compile(base);
    const multi = compile(
      { ...base, architectures: ['SCMP_ARCH_S390X', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_NATIVE', 'SCMP_ARCH_RISCV64'] },
      { debug: (m) => messages.push(m) },
    );
    assert.deepEqual(multi.filter, plain.filter);
    assert.equal(messages.filter((m) => m.includes('cannot run on this host')).length, 3);
  });

  test('x32 numbers never reach x86_64 rules; without SCMP_ARCH_X32 they are killed', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [rule(['getpid', 'read'], 'SCMP_ACT_ALLOW')] });
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'getpid'), RET.ALLOW);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: (X32_BIT | 39) >>> 0 }), RET.KILL_THREAD);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: X32_BIT }), RET.KILL_THREAD);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 0xfffffffe }), RET.KILL_THREAD);
    // -1 is how a tracer skips a syscall: libseccomp lets it reach the default action
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 0xffffffff }), EPERM);
  });

  test('with SCMP_ARCH_X32 each ABI matches only its own numbers', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'],
      syscalls: [rule(['rt_sigaction'], 'SCMP_ACT_ERRNO', { errnoRet: 7 })],
    });
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 13 }), RET.errno(7)); // x86_64 rt_sigaction
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: (X32_BIT | 512) >>> 0 }), RET.errno(7)); // x32's
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: (X32_BIT | 13) >>> 0 }), RET.ALLOW); // not an x32 call
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 512 }), RET.ALLOW); // not an x86_64 call
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('ENOSYS above the highest named syscall (runc)', () => {
  const spec: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [rule(['read', 'write', 'getpid'], 'SCMP_ACT_ALLOW')],
  };

  test('numbers above the highest one named get ENOSYS, below it the default', () => {
    const c = compile(spec);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 20 }), EPERM);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 40 }), ENOSYS);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: X32_BIT - 1 }), ENOSYS);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: X32_BIT + 40 }), RET.KILL_THREAD);
  });

  test('per ABI, x32 included', () => {
    const c = compile({ ...spec, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_X86'] });
    assert.equal(decide(c.filter, { arch: AUDIT.I386, nr: 21 }), ENOSYS); // i386 getpid is 20, the highest named
    assert.equal(decide(c.filter, { arch: AUDIT.I386, nr: 19 }), EPERM);
    assert.equal(decide(c.filter, { arch: AUDIT.I386, nr: 20 }), RET.ALLOW);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: (X32_BIT | 39) >>> 0 }), RET.ALLOW);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: (X32_BIT | 38) >>> 0 }), EPERM);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: (X32_BIT | 40) >>> 0 }), ENOSYS);
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 0xffffffff }), ENOSYS);
  });

  test('not generated for permissive defaults, an ENOSYS default, or when disabled', () => {
    assert.equal(decide(compile(spec, { enosysStub: false }).filter, { arch: AUDIT.X86_64, nr: 40 }), EPERM);
    for (const defaultAction of ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'] as SeccompAction[]) {
      const c = compile({ defaultAction, syscalls: [rule(['read'], 'SCMP_ACT_KILL')] });
      assert.notEqual(decide(c.filter, { arch: AUDIT.X86_64, nr: 40 }), ENOSYS, defaultAction);
    }
    const c = compile({ ...spec, defaultErrnoRet: 38 });
    assert.equal(decide(c.filter, { arch: AUDIT.X86_64, nr: 20 }), ENOSYS);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('flags and the notify listener', () => {
  const notify: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    listenerPath: '/run/agent.sock',
    syscalls: [rule(['mount'], 'SCMP_ACT_NOTIFY')],
  };

  test('flag names map to SECCOMP_FILTER_FLAG_* bits', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC'],
    });
    assert.equal(c.flags, 1 | 2 | 4);
  });

  test('unknown flags are errors naming the entry', () => {
    expectField(
      () =>
        compile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_FAST'] }),
      'linux.seccomp.flags[1]',
    );
  });

  test('NOTIFY implies NEW_LISTENER; WAIT_KILLABLE_RECV is kept with it (runc reports 40)', () => {
    assert.equal(compile(notify).flags, 8);
    assert.equal(compile({ ...notify, flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] }).flags, 40);
    const byDefault = compile({
      defaultAction: 'SCMP_ACT_NOTIFY',
      listenerPath: '/s',
      syscalls: [rule(['write'], 'SCMP_ACT_ALLOW')],
    });
    assert.equal(byDefault.flags, 8);
    assert.equal(byDefault.usesNotify, true);
  });

  test('TSYNC with a listener adds TSYNC_ESRCH, which the kernel requires', () => {
    assert.equal(compile({ ...notify, flags: ['SECCOMP_FILTER_FLAG_TSYNC'] }).flags, 1 | 8 | 16);
  });

  test('WAIT_KILLABLE_RECV without NOTIFY is dropped; NEW_LISTENER without NOTIFY is refused', () => {
    const messages: string[] = [];
    const c = compile(
      { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] },
      { debug: (m) => messages.push(m) },
    );
    assert.equal(c.flags, 0);
    assert.ok(messages.some((m) => m.includes('WAIT_KILLABLE_RECV')));
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_NEW_LISTENER'] }),
      'linux.seccomp.flags',
    );
  });

  test('listenerPath is required with NOTIFY, ignored without; listenerMetadata needs listenerPath', () => {
    expectField(() => compile({ ...notify, listenerPath: undefined }), 'linux.seccomp.listenerPath');
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_NOTIFY', syscalls: [rule(['write'], 'SCMP_ACT_ALLOW')] }),
      'linux.seccomp.listenerPath',
    );
    expectField(
      () => compile({ defaultAction: 'SCMP_ACT_ALLOW', listenerMetadata: 'x' }),
      'linux.seccomp.listenerMetadata',
    );
    const ignored = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      listenerPath: '/run/agent.sock',
      listenerMetadata: 'm',
    });
    assert.equal(ignored.flags, 0);
    assert.equal(ignored.usesNotify, false);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('validation', () => {
  const withRules = (syscalls: unknown[]): LinuxSeccomp =>
    ({ defaultAction: 'SCMP_ACT_ALLOW', syscalls }) as unknown as LinuxSeccomp;
  const ok = rule(['read'], 'SCMP_ACT_ERRNO');

  test('field paths of bad rules', () => {
    expectField(
      () => compile(withRules([ok, { names: [], action: 'SCMP_ACT_ERRNO' }])),
      'linux.seccomp.syscalls[1].names',
    );
    expectField(
      () => compile(withRules([{ names: ['read', ''], action: 'SCMP_ACT_ERRNO' }])),
      'linux.seccomp.syscalls[0].names[1]',
    );
    expectField(
      () =>
        compile(
          withRules([{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, op: 'SCMP_CMP_EQ', value: 0 }] }]),
        ),
      'linux.seccomp.syscalls[0].args[0].index',
    );
    expectField(
      () =>
        compile(
          withRules([
            ok,
            ok,
            ok,
            { names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_ABOUT', value: 0 }] },
          ]),
        ),
      'linux.seccomp.syscalls[3].args[0].op',
    );
    expectField(
      () =>
        compile(
          withRules([
            {
              names: ['read'],
              action: 'SCMP_ACT_ERRNO',
              args: [
                { index: 0, op: 'SCMP_CMP_EQ', value: 0 },
                { index: 1, op: 'SCMP_CMP_EQ', value: -1 },
              ],
            },
          ]),
        ),
      'linux.seccomp.syscalls[0].args[1].value',
    );
    expectField(() => compile(withRules(['read'])), 'linux.seccomp.syscalls[0]');
  });

  test('values beyond 2^53 must be bigints; bigints up to 2^64-1 work', () => {
    expectField(
      () =>
        compile(
          withRules([
            { names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 2 ** 64 }] },
          ]),
        ),
      'linux.seccomp.syscalls[0].args[0].value',
    );
    expectField(
      () =>
        compile(
          withRules([
            { names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 1n << 64n }] },
          ]),
        ),
      'linux.seccomp.syscalls[0].args[0].value',
    );
    const c = compile(
      withRules([
        { names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: U64 - 99n }] },
      ]),
    );
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'read', [U64 - 99n]), EPERM); // AT_FDCWD as unsigned
    assert.equal(call(c, 'SCMP_ARCH_X86_64', 'read', [U32 - 99n]), RET.ALLOW);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('program size', () => {
  test('the kernel limit is enforced with a clear error', () => {
    const rules = Array.from({ length: 1100 }, (_, i) =>
      rule(['getpid'], 'SCMP_ACT_ERRNO', { args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 2 ** 40 + i }] }),
    );
    assert.throws(
      () => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: rules }, { nativeArch: 'x64' }),
      (err: unknown) => err instanceof HakoError && err.code === 'E2BIG' && /4096/.test(err.message),
    );
  });

  test('jumps longer than 255 are bridged and decisions stay right', () => {
    // Many rules on high syscall numbers make the low branches of the search tree jump far.
    const names = Object.keys(ARCHES.SCMP_ARCH_X86_64.table).filter((n) => n !== 'getpid');
    const rules = names.map((name, i) =>
      rule([name], 'SCMP_ACT_ERRNO', {
        errnoRet: (i % 200) + 1,
        args: [{ index: i % 6, op: 'SCMP_CMP_EQ', value: i }],
      }),
    );
    const c = compile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: rules });
    assert.ok(c.instructions > 1500, `${c.instructions}`);
    const far = disassemble(c.filter).filter((l) => / ja /.test(l)).length;
    assert.ok(far > 0, 'expected long jumps in a program this size');
    names.forEach((name, i) => {
      const args = [0, 0, 0, 0, 0, 0];
      args[i % 6] = i;
      assert.equal(call(c, 'SCMP_ARCH_X86_64', name, args), RET.errno((i % 200) + 1), name);
      args[i % 6] = i + 1;
      assert.equal(call(c, 'SCMP_ARCH_X86_64', name, args), RET.ALLOW, name);
    });
  });

  test('a dense allow-list costs about one test per interval', () => {
    const names = Object.keys(ARCHES.SCMP_ARCH_X86_64.table);
    const c = compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [rule(names, 'SCMP_ACT_ALLOW')] });
    assert.ok(c.instructions < 40, `${c.instructions} instructions`);
    const steps = run(c.filter, { arch: AUDIT.X86_64, nr: 0 }).steps;
    assert.ok(steps < 12, `${steps} steps`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Random profiles checked against an independent model of the semantics.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ACTIONS: SeccompAction[] = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
];
const ACTION_BASE: Record<SeccompAction, number> = {
  SCMP_ACT_KILL: 0,
  SCMP_ACT_KILL_THREAD: 0,
  SCMP_ACT_KILL_PROCESS: 0x80000000,
  SCMP_ACT_TRAP: 0x30000,
  SCMP_ACT_ERRNO: 0x50000,
  SCMP_ACT_TRACE: 0x7ff00000,
  SCMP_ACT_ALLOW: 0x7fff0000,
  SCMP_ACT_LOG: 0x7ffc0000,
  SCMP_ACT_NOTIFY: 0x7fc00000,
};
const refRet = (action: SeccompAction, errnoRet?: number): number =>
  action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE'
    ? (ACTION_BASE[action] | (errnoRet ?? 1)) >>> 0
    : ACTION_BASE[action];

const NATIVE: Record<string, ScmpArch> = { x64: 'SCMP_ARCH_X86_64', arm64: 'SCMP_ARCH_AARCH64', arm: 'SCMP_ARCH_ARM' };

/** What the filter must decide, computed from the profile without BPF. */
function reference(spec: LinuxSeccomp, nativeArch: string, d: { arch: number; nr: number; args: bigint[] }): number {
  const arches = new Set<ScmpArch>([NATIVE[nativeArch]]);
  for (const a of spec.architectures ?? []) if (a in ARCHES) arches.add(a as ScmpArch);
  const defaultRet = refRet(spec.defaultAction, spec.defaultErrnoRet);
  const candidates = [...arches].filter((a) => ARCHES[a].audit === d.arch);
  if (candidates.length === 0) return RET.KILL_THREAD;
  let abi: ScmpArch;
  if (d.arch === AUDIT.X86_64) {
    const isX32 = d.nr >= X32_BIT; // libseccomp's split: everything from the x32 bit up
    if (isX32 && arches.has('SCMP_ARCH_X32')) abi = 'SCMP_ARCH_X32';
    else if (isX32) return d.nr === 0xffffffff ? defaultRet : RET.KILL_THREAD;
    else if (arches.has('SCMP_ARCH_X86_64')) abi = 'SCMP_ARCH_X86_64';
    else return RET.KILL_THREAD;
  } else {
    abi = candidates[0];
  }
  let highest = -1;
  for (const r of spec.syscalls ?? []) {
    for (const n of r.names) {
      const nr = syscallNumber(abi, n);
      if (nr !== undefined) highest = Math.max(highest, nr);
      if (nr === d.nr) {
        const args = r.args ?? [];
        const holds = (a: SeccompArg): boolean =>
          refCondition(
            abi,
            { op: a.op, value: BigInt(a.value), valueTwo: BigInt(a.valueTwo ?? 0) },
            d.args[a.index] ?? 0n,
          );
        // A repeated argument index makes every condition a rule of its own (runc), so they are ORed.
        const repeated = new Set(args.map((a) => a.index)).size < args.length;
        const all = repeated ? args.some(holds) : args.every(holds);
        if (all) return refRet(r.action, r.errnoRet);
        break;
      }
    }
  }
  const permissive = ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'].includes(spec.defaultAction);
  const limit = abi === 'SCMP_ARCH_X86_64' ? X32_BIT : 2 ** 32;
  if (!permissive && defaultRet !== ENOSYS && highest >= 0 && d.nr > highest && d.nr < limit) return ENOSYS;
  return defaultRet;
}

describe('random profiles against a reference model', () => {
  const NAMES = [
    'getpid',
    'read',
    'write',
    'mount',
    'clone',
    'socket',
    'personality',
    'rt_sigaction',
    'arch_prctl',
    'cacheflush',
    'open',
    'openat',
    'no_such_call',
    'set_tls',
    'uretprobe',
    'clock_gettime64',
    'file_setattr',
    'mmap2',
    'ioctl',
  ];
  const OPS: SeccompOperator[] = [
    'SCMP_CMP_NE',
    'SCMP_CMP_LT',
    'SCMP_CMP_LE',
    'SCMP_CMP_EQ',
    'SCMP_CMP_GE',
    'SCMP_CMP_GT',
    'SCMP_CMP_MASKED_EQ',
  ];
  const ALL_ARCHES = Object.keys(ARCHES) as ScmpArch[];

  test('3000 profiles x 60 calls', () => {
    const rnd = mulberry32(0x5eccc0);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const value = (): bigint => {
      const v = pick(BOUNDARY_VALUES);
      return rnd() < 0.3 ? (v + BigInt(Math.floor(rnd() * 3)) - 1n) & U64 : v;
    };
    let calls = 0;
    for (let s = 0; s < 3000; s++) {
      const nativeArch = pick(['x64', 'arm64', 'arm']);
      const defaultAction = pick(ACTIONS);
      const spec: LinuxSeccomp = {
        defaultAction,
        architectures: ALL_ARCHES.filter(() => rnd() < 0.5),
        listenerPath: '/run/notify.sock',
        syscalls: Array.from({ length: Math.floor(rnd() * 8) }, (): SeccompSyscall => {
          const action = pick(ACTIONS);
          const r: SeccompSyscall = {
            names: Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => pick(NAMES)),
            action,
          };
          if ((action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE') && rnd() < 0.7)
            r.errnoRet = Math.floor(rnd() * 4096);
          const nargs = Math.floor(rnd() * 3.5);
          if (nargs) {
            r.args = Array.from({ length: nargs }, () => ({
              index: Math.floor(rnd() * 6),
              op: pick(OPS),
              value: big(value()),
              valueTwo: big(value()),
            }));
          }
          return r;
        }),
      };
      if ((defaultAction === 'SCMP_ACT_ERRNO' || defaultAction === 'SCMP_ACT_TRACE') && rnd() < 0.5) {
        spec.defaultErrnoRet = Math.floor(rnd() * 100);
      }
      const c = compileSeccomp(spec, { nativeArch });
      validate(c.filter);
      const abis = [...new Set([NATIVE[nativeArch], ...(spec.architectures as ScmpArch[])])];
      for (let k = 0; k < 60; k++) {
        const abi = pick(ALL_ARCHES);
        const audit = rnd() < 0.05 ? 0x12345678 : ARCHES[rnd() < 0.8 ? pick(abis) : abi].audit;
        let nr: number;
        const roll = rnd();
        if (roll < 0.6) nr = syscallNumber(abi, pick(NAMES)) ?? 0;
        else if (roll < 0.8) nr = Math.floor(rnd() * 600);
        else
          nr = pick([
            0,
            0xffffffff,
            0xfffffffe,
            X32_BIT,
            X32_BIT - 1,
            (X32_BIT | 600) >>> 0,
            0xf0005,
            0xf0007,
            2 ** 31,
          ]);
        const args = Array.from({ length: 6 }, () => (rnd() < 0.5 ? value() : BigInt(Math.floor(rnd() * 16))));
        // Bias arguments towards the rule operands so that matches happen.
        for (const r of spec.syscalls ?? [])
          for (const a of r.args ?? []) if (rnd() < 0.3) args[a.index] = BigInt(a.value);
        const d = { arch: audit, nr, args };
        const expected = reference(spec, nativeArch, d);
        const got = decide(c.filter, d, { validated: true });
        if (got !== expected) {
          assert.fail(
            `seed profile ${s}: expected 0x${expected.toString(16)} got 0x${got.toString(16)} for ` +
              `${JSON.stringify({ ...d, args: d.args.map((x) => '0x' + x.toString(16)) })}\n` +
              `${JSON.stringify(spec, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}\n${disassemble(c.filter).join('\n')}`,
          );
        }
        calls++;
      }
    }
    assert.equal(calls, 3000 * 60);
  });
});
