// hako's seccomp compiler against libseccomp, as runc and crun drive it: the same generated profiles are built by
// both (libseccomp through test/fixtures/libseccomp-ref.c, which adds rules the way runc's matchCall and crun
// do), and both programs are run in the project's BPF interpreter over generated calls; every decision must be
// the same. A sample of the profiles is then loaded into a real child process on this kernel and real calls are
// checked against the interpreter's decision.
//
// Needs libseccomp's header and a C compiler (`apt-get install libseccomp-dev`, done by .ci/run); skipped,
// saying why, without them.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { LinuxSeccomp, SeccompAction, SeccompArg, SeccompOperator, SeccompSyscall } from '../lib/oci/types';
import { compileSeccomp } from '../lib/seccomp/compile';
import { disassemble } from '../lib/seccomp/disasm';
import { decide, validate } from './helpers/bpf-interpreter';

const ROOT_DIR = path.resolve(__dirname, '..', '..');
const REF_SRC = path.join(ROOT_DIR, 'test', 'fixtures', 'libseccomp-ref.c');
const AUDIT_X86_64 = 0xc000003e;
const U64 = (1n << 64n) - 1n;
const big = (v: bigint): number => v as unknown as number;

function whyNoLibseccomp(): string | undefined {
  if (process.arch !== 'x64') return `the syscall numbers below are x86_64's (host is ${process.arch})`;
  if (!fs.existsSync('/usr/include/seccomp.h')) return 'libseccomp-dev is not installed (no /usr/include/seccomp.h)';
  if (spawnSync('cc', ['--version']).status !== 0) return 'no C compiler (cc)';
  return undefined;
}
const skip = whyNoLibseccomp();

let refBin: string | undefined;
function reference(): string {
  if (refBin) return refBin;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-lsref-'));
  refBin = path.join(dir, 'libseccomp-ref');
  execFileSync('cc', ['-O1', '-o', refBin, REF_SRC, '-lseccomp']);
  return refBin;
}

/** libseccomp's enum scmp_compare. */
const OP_NUM: Record<SeccompOperator, number> = {
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
};
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
const retOf = (action: SeccompAction, errnoRet?: number): number =>
  action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE'
    ? (ACTION_BASE[action] | (errnoRet ?? 1)) >>> 0
    : ACTION_BASE[action];

/** x86_64 numbers of the syscalls the generated rules name. */
const SYSCALLS: Record<string, number> = {
  read: 0,
  write: 1,
  ioctl: 16,
  getpid: 39,
  personality: 135,
  process_vm_readv: 310,
};

/** The profile in libseccomp-ref.c's input format. */
function encode(spec: LinuxSeccomp): string {
  const words: (number | bigint)[] = [retOf(spec.defaultAction, spec.defaultErrnoRet), 0];
  let n = 0;
  for (const r of spec.syscalls ?? []) {
    for (const name of r.names) {
      n++;
      const args = r.args ?? [];
      words.push(retOf(r.action, r.errnoRet), SYSCALLS[name], args.length);
      for (const a of args) words.push(a.index, OP_NUM[a.op], BigInt(a.value), BigInt(a.valueTwo ?? 0));
    }
  }
  words[1] = n;
  return words.join(' ');
}

/** libseccomp's meaning of one rule as runc adds it: a filter holding only that rule. */
interface OneRule {
  action: number;
  nr: number;
  bpf: Buffer;
}

interface Libseccomp {
  /** The program libseccomp generates for the whole profile (what runc loads). */
  bpf: Buffer;
  rules: OneRule[];
}

/** The default action of the one-rule filters (ERRNO(4000)); generated profiles never use it. */
const SENTINEL = 0x50000 | 4000;

/** libseccomp's output for the profiles, or the errno it refused one with. */
function libseccompFilters(specs: LinuxSeccomp[]): (Libseccomp | number)[] {
  const out = execFileSync(reference(), { input: specs.map(encode).join('\n') + '\n', maxBuffer: 1 << 28 }).toString();
  const lines = out.split('\n');
  const results: (Libseccomp | number)[] = [];
  let i = 0;
  while (results.length < specs.length) {
    const l = lines[i++];
    assert.ok(l !== undefined, 'libseccomp-ref output ended early');
    if (l.startsWith('ERR ')) {
      results.push(Number(l.slice(4)));
      continue;
    }
    const rules: OneRule[] = [];
    for (; lines[i] !== 'END'; i++) {
      const [tag, action, nr, hex] = lines[i].split(' ');
      assert.equal(tag, 'R', lines[i]);
      assert.ok(hex !== 'ERR', `libseccomp refused a rule alone but not the profile: ${lines[i]}`);
      rules.push({ action: Number(action), nr: Number(nr), bpf: Buffer.from(hex, 'hex') });
    }
    i++;
    results.push({ bpf: Buffer.from(l, 'hex'), rules });
  }
  return results;
}

/**
 * libseccomp's decision from its one-rule filters: the action of the syscall's rules when one of them matches
 * (the generated profiles give each syscall one action, so the rules are ORed whatever their order), else the
 * default action.
 */
function oracle(lib: Libseccomp, defaultRet: number, d: { arch: number; nr: number; args: bigint[] }): number {
  for (const r of lib.rules) {
    if (r.nr !== d.nr) continue;
    const ret = decide(r.bpf, d);
    if (ret !== SENTINEL) {
      assert.equal(ret, r.action);
      return ret;
    }
  }
  return defaultRet;
}

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

const BOUNDARY: bigint[] = [
  0n,
  1n,
  2n,
  3n,
  7n,
  0xffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  0x100000001n,
  0x1_7fffffffn,
  0x1_80000000n,
  0x7fffffff_ffffffffn,
  0x80000000_00000000n,
  0xffffffff_00000000n,
  U64 - 1n,
  U64,
];
const OPS = Object.keys(OP_NUM) as SeccompOperator[];
const ACTIONS: SeccompAction[] = [
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_LOG',
];

/**
 * A profile whose rules give each syscall a single action: how libseccomp orders overlapping rules with
 * different actions is its tree's business (and differs from hako's first match, see README), conditions are
 * what is compared here.
 */
function generate(rnd: () => number): LinuxSeccomp {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const value = (): bigint => {
    const v = pick(BOUNDARY);
    return rnd() < 0.3 ? (v + BigInt(Math.floor(rnd() * 3)) - 1n) & U64 : v;
  };
  const defaultAction = pick(ACTIONS);
  const defaultErrnoRet = defaultAction === 'SCMP_ACT_ERRNO' ? 1 + Math.floor(rnd() * 3) : undefined;
  const perSyscall = new Map<string, { action: SeccompAction; errnoRet?: number }>();
  const names = Object.keys(SYSCALLS);
  const syscalls: SeccompSyscall[] = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => {
    const name = pick(names);
    let act = perSyscall.get(name);
    if (!act) {
      const action = pick(ACTIONS);
      act = { action, errnoRet: action === 'SCMP_ACT_ERRNO' ? 1 + Math.floor(rnd() * 3) : undefined };
      perSyscall.set(name, act);
    }
    // Indices 0..2 only, so that repeated indices are common.
    const args: SeccompArg[] = Array.from({ length: Math.floor(rnd() * 4) }, () => ({
      index: Math.floor(rnd() * 3),
      op: pick(OPS),
      value: big(value()),
      valueTwo: big(value()),
    }));
    const r: SeccompSyscall = { names: [name], action: act.action, args };
    if (act.errnoRet !== undefined) r.errnoRet = act.errnoRet;
    return r;
  });
  const spec: LinuxSeccomp = { defaultAction, syscalls };
  if (defaultErrnoRet !== undefined) spec.defaultErrnoRet = defaultErrnoRet;
  return spec;
}

function inputs(rnd: () => number, spec: LinuxSeccomp, count: number): { nr: number; args: bigint[] }[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const operands = (spec.syscalls ?? []).flatMap((r) => (r.args ?? []).map((a) => BigInt(a.value)));
  return Array.from({ length: count }, () => {
    const nr = rnd() < 0.9 ? SYSCALLS[pick(Object.keys(SYSCALLS))] : Math.floor(rnd() * 400);
    const args = Array.from({ length: 6 }, () => {
      const roll = rnd();
      if (roll < 0.4 && operands.length) return (pick(operands) + BigInt(Math.floor(rnd() * 3)) - 1n) & U64;
      if (roll < 0.8) return pick(BOUNDARY);
      return BigInt(Math.floor(rnd() * 16));
    });
    return { nr, args };
  });
}

const show = (spec: LinuxSeccomp): string => JSON.stringify(spec, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));

interface Tally {
  refused: number;
  calls: number;
  /** Calls where libseccomp's whole-profile BPF decided otherwise than its own rules taken one by one. */
  mergeDefects: number;
}

/**
 * Compare hako with libseccomp on `count` profiles, for every call: hako must decide as libseccomp's rules do
 * (taken one by one, see oracle). Where libseccomp's whole-profile program departs from its own rules (libseccomp
 * 2.5 drops or mis-merges some overlapping rules of one syscall, and can test a stale accumulator), that is
 * counted, not followed.
 */
function compareMany(seed: number, count: number): Tally {
  const rnd = mulberry32(seed);
  const specs = Array.from({ length: count }, () => generate(rnd));
  const refs = libseccompFilters(specs);
  const tally: Tally = { refused: 0, calls: 0, mergeDefects: 0 };
  specs.forEach((spec, s) => {
    const ref = refs[s];
    if (typeof ref === 'number') {
      tally.refused++;
      return;
    }
    // runc adds its ENOSYS stub on top of libseccomp's program; compare the rule semantics alone.
    const hako = compileSeccomp(spec, { nativeArch: 'x64', enosysStub: false }).filter;
    validate(hako);
    const defaultRet = retOf(spec.defaultAction, spec.defaultErrnoRet);
    for (const d of inputs(rnd, spec, 200)) {
      const data = { arch: AUDIT_X86_64, ...d };
      const want = oracle(ref, defaultRet, data);
      const whole = decide(ref.bpf, data);
      const got = decide(hako, data, { validated: true });
      tally.calls++;
      if (whole !== want) tally.mergeDefects++;
      if (want !== got) {
        assert.fail(
          `profile ${s}: libseccomp 0x${want.toString(16)} (its whole program: 0x${whole.toString(16)}), ` +
            `hako 0x${got.toString(16)} for nr ${d.nr} args ${d.args.map((x) => '0x' + x.toString(16)).join(',')}\n` +
            `${show(spec)}\n${disassemble(hako).join('\n')}`,
        );
      }
    }
  });
  return tally;
}

// Real calls: a Python (ctypes) child loads hako's program with seccomp(2) and makes the calls; its stdout/stdin
// pipes and Python's own calls must keep working under the filter, see kernelProfile.
const KERNEL_HARNESS = String.raw`
import ctypes, json, sys
req = json.loads(sys.stdin.read())
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] + [ctypes.c_ulong] * 6
class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]
prog = bytes.fromhex(req["filter"])
insns = (SockFilter * (len(prog) // 8)).from_buffer_copy(prog)
fprog = SockFprog(len(prog) // 8, insns)
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.syscall(317, 1, 0, ctypes.cast(ctypes.pointer(fprog), ctypes.c_void_p).value, 0, 0, 0) < 0:
    sys.stdout.write(json.dumps({"load_errno": ctypes.get_errno()})); sys.exit(0)
results = []
for c in req["calls"]:
    ctypes.set_errno(0)
    r = libc.syscall(int(c[0]), *[int(a) for a in c[1:7]])
    results.append([r, ctypes.get_errno() if r == -1 else 0])
sys.stdout.write(json.dumps({"results": results}))
`;

/** Calls that ignore their arguments, standing in for the generated profiles' syscalls in the kernel sample. */
const STAND_INS: Record<string, [string, number]> = {
  read: ['getppid', 110],
  write: ['getuid', 102],
  ioctl: ['getgid', 104],
  getpid: ['geteuid', 107],
  personality: ['getegid', 108],
  process_vm_readv: ['getpgrp', 111],
};

/**
 * The profile made safe to load into a live Python: its syscalls renamed to argument-ignoring stand-ins, actions
 * that would stop the process turned into distinctive errnos (ERRNO n -> 1000+n, TRAP -> 2001, KILL_PROCESS
 * -> 2002), and its default action applied to the stand-ins by a last unconditional rule each, under an ALLOW
 * default so that Python itself runs. The conditions, which are what is checked, are unchanged.
 */
function kernelProfile(spec: LinuxSeccomp): LinuxSeccomp {
  const map = (action: SeccompAction, errnoRet?: number): Pick<SeccompSyscall, 'action' | 'errnoRet'> => {
    if (action === 'SCMP_ACT_ERRNO') return { action, errnoRet: 1000 + (errnoRet ?? 1) };
    if (action === 'SCMP_ACT_TRAP') return { action: 'SCMP_ACT_ERRNO', errnoRet: 2001 };
    if (action === 'SCMP_ACT_KILL_PROCESS') return { action: 'SCMP_ACT_ERRNO', errnoRet: 2002 };
    return { action };
  };
  const rules = (spec.syscalls ?? []).map((r) => ({
    ...r,
    names: r.names.map((n) => STAND_INS[n][0]),
    ...map(r.action, r.errnoRet),
  }));
  const fallbacks = Object.values(STAND_INS).map(([n]) => ({
    names: [n],
    ...map(spec.defaultAction, spec.defaultErrnoRet),
  }));
  return { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [...rules, ...fallbacks] };
}

const whyNoKernel = ((): string | undefined => {
  if (skip) return skip;
  const probe = spawnSync('python3', ['-c', 'import ctypes'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return 'python3 with ctypes is not available';
  return undefined;
})();

describe("seccomp decisions equal libseccomp's (as runc and crun use it)", { skip }, () => {
  test('process_vm_readv with two conditions on one argument: either one returns the errno (issue 18)', () => {
    const spec: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        {
          names: ['process_vm_readv'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 22,
          args: [
            { index: 0, op: 'SCMP_CMP_EQ', value: 1 },
            { index: 0, op: 'SCMP_CMP_EQ', value: 2 },
          ],
        },
      ],
    };
    const [ref] = libseccompFilters([spec]);
    assert.ok(typeof ref !== 'number', `libseccomp refused it: ${String(ref)}`);
    const hako = compileSeccomp(spec, { nativeArch: 'x64', enosysStub: false }).filter;
    const EINVAL = 0x50016;
    const ALLOW = 0x7fff0000;
    for (const [pid, expected] of [
      [0n, ALLOW],
      [1n, EINVAL],
      [2n, EINVAL],
      [3n, ALLOW],
    ] as const) {
      const data = { arch: AUDIT_X86_64, nr: SYSCALLS.process_vm_readv, args: [pid] };
      assert.equal(decide(ref.bpf, data), expected, `libseccomp, pid ${pid}`);
      assert.equal(decide(hako, data), expected, `hako, pid ${pid}`);
    }
  });

  test('MASKED_EQ ignores bits of valueTwo outside the mask, as libseccomp does', () => {
    const spec: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        {
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO',
          args: [{ index: 0, op: 'SCMP_CMP_MASKED_EQ', value: 0xff, valueTwo: 0x1ff }],
        },
      ],
    };
    const [ref] = libseccompFilters([spec]);
    assert.ok(typeof ref !== 'number');
    const hako = compileSeccomp(spec, { nativeArch: 'x64', enosysStub: false }).filter;
    for (const x of [0xffn, 0x1ffn, 0xfen, 0x100n]) {
      const data = { arch: AUDIT_X86_64, nr: SYSCALLS.personality, args: [x] };
      assert.equal(decide(hako, data), decide(ref.bpf, data), `arg 0x${x.toString(16)}`);
    }
    assert.equal(decide(hako, { arch: AUDIT_X86_64, nr: SYSCALLS.personality, args: [0x1ffn] }), 0x50001);
  });

  test('3000 generated profiles x 200 calls', (t) => {
    const r = compareMany(0x11b5ec, 3000);
    t.diagnostic(
      `${r.calls} calls compared; libseccomp refused ${r.refused} profiles; its whole-profile program departed ` +
        `from its own rules in ${r.mergeDefects} calls (libseccomp 2.5 defects, not followed)`,
    );
    assert.ok(r.calls > 500000, `${r.calls} calls`);
    assert.equal(r.refused, 0);
  });

  test('a sample of 40 profiles on this kernel: real calls decide as the interpreter', { skip: whyNoKernel }, () => {
    const rnd = mulberry32(0x6b65726e);
    let checked = 0;
    for (let s = 0; s < 40; s++) {
      const spec = generate(rnd);
      const safe = compileSeccomp(kernelProfile(spec), { nativeArch: 'x64', enosysStub: false }).filter;
      const calls = inputs(rnd, spec, 60).map((d) => {
        const name = Object.keys(SYSCALLS).find((n) => SYSCALLS[n] === d.nr) ?? 'getpid';
        return { nr: STAND_INS[name][1], args: d.args };
      });
      const input = JSON.stringify({
        filter: safe.toString('hex'),
        calls: calls.map((c) => [c.nr, ...c.args.map(String)]),
      });
      const r = spawnSync('python3', ['-c', KERNEL_HARNESS], { input, encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `${r.stderr} ${String(r.signal)}`);
      const out = JSON.parse(r.stdout) as { load_errno?: number; results: [number, number][] };
      assert.equal(out.load_errno, undefined, 'the kernel refused the filter');
      calls.forEach((c, k) => {
        const ret = decide(safe, { arch: AUDIT_X86_64, ...c });
        const [res, errno] = out.results[k];
        const want = ret >>> 16 === 0x5 ? [-1, ret & 0xffff] : undefined;
        if (want) assert.deepEqual([res, errno], want, `profile ${s} call ${k}: ${show(spec)}`);
        else assert.ok(errno < 1000, `profile ${s} call ${k}: allowed by the filter, got errno ${errno}`);
        checked++;
      });
    }
    assert.equal(checked, 40 * 60);
  });
});
