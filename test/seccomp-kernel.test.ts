// The compiled filters loaded into the running kernel. A short Python (ctypes) program stands in for the native
// init helper: it loads the filter with seccomp(2), makes the requested syscalls and reports what the kernel
// returned. Skipped without python3, on hosts without tables, or where seccomp filters cannot be installed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import type { LinuxSeccomp, SeccompOperator, SeccompSyscall } from '../lib/oci/types';
import { nativeScmpArch, type ScmpArch, syscallNumber } from '../lib/seccomp/arch';
import { compileSeccomp, type CompiledSeccomp } from '../lib/seccomp/compile';
import { defaultSeccompProfile } from '../lib/seccomp/default-profile';

const HARNESS = String.raw`
import ctypes, json, sys
req = json.loads(sys.stdin.read())
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] + [ctypes.c_ulong] * 6
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]
prog = bytes.fromhex(req["filter"])
n = len(prog) // 8
insns = (SockFilter * n).from_buffer_copy(prog)
fprog = SockFprog(n, insns)
out = sys.stdout
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    out.write(json.dumps({"load_errno": ctypes.get_errno()})); out.flush(); sys.exit(0)
fd = libc.syscall(req["seccomp_nr"], 1, req["flags"], ctypes.cast(ctypes.pointer(fprog), ctypes.c_void_p).value, 0, 0, 0)
if fd < 0:
    out.write(json.dumps({"load_errno": ctypes.get_errno()})); out.flush(); sys.exit(0)
results = []
for c in req["calls"]:
    args = [int(a) for a in c[1:]] + [0] * (7 - len(c))
    ctypes.set_errno(0)
    r = libc.syscall(int(c[0]), *args[:6])
    results.append([r, ctypes.get_errno() if r == -1 else 0])
out.write(json.dumps({"fd": fd, "results": results})); out.flush()
`;

interface Outcome {
  signal: NodeJS.Signals | null;
  loadErrno?: number;
  fd?: number;
  results?: [number, number][];
}

const native = ((): ScmpArch | undefined => {
  try {
    return nativeScmpArch();
  } catch {
    return undefined;
  }
})();

function runInKernel(c: CompiledSeccomp, calls: (string | number | bigint)[][]): Outcome {
  const input = JSON.stringify({
    filter: c.filter.toString('hex'),
    flags: c.flags,
    seccomp_nr: syscallNumber(native as ScmpArch, 'seccomp'),
    calls: calls.map((call) => call.map(String)),
  });
  const r = spawnSync('python3', ['-c', HARNESS], { input, encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw r.error;
  if (r.signal) return { signal: r.signal };
  assert.equal(r.status, 0, r.stderr);
  const parsed = JSON.parse(r.stdout) as { load_errno?: number; fd?: number; results?: [number, number][] };
  return { signal: null, loadErrno: parsed.load_errno, fd: parsed.fd, results: parsed.results };
}

const usable = ((): string | undefined => {
  if (process.platform !== 'linux') return 'not Linux';
  if (native !== 'SCMP_ARCH_X86_64' && native !== 'SCMP_ARCH_AARCH64') return `no harness for ${process.arch}`;
  const probe = spawnSync('python3', ['-c', 'import ctypes'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return 'python3 with ctypes is not available';
  const c = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' });
  const o = runInKernel(c, []);
  if (o.loadErrno !== undefined) return `seccomp filters cannot be loaded here (errno ${o.loadErrno})`;
  return undefined;
})();

const nr = (name: string): number => {
  const n = syscallNumber(native as ScmpArch, name);
  assert.notEqual(n, undefined, name);
  return n as number;
};

describe('filters in the running kernel', { skip: usable }, () => {
  test('the default profile loads and decides as the interpreter says', () => {
    const c = compileSeccomp(defaultSeccompProfile([]));
    const o = runInKernel(c, [
      [nr('getppid')],
      [nr('keyctl'), 0],
      [nr('clone3'), 0, 0],
      [nr('personality'), 0xffffffff],
      [nr('personality'), 0x0400000],
      [nr('unshare'), 0x10000000],
      [nr('mount'), 0, 0, 0, 0, 0],
      [nr('socket'), 40, 1, 0],
      [470],
    ]);
    assert.equal(o.signal, null);
    assert.equal(o.loadErrno, undefined);
    const [ppid, keyctl, clone3, persona, badPersona, unshare, mount, vsock, unknown] = o.results ?? [];
    assert.ok(ppid[0] > 0, 'getppid allowed');
    assert.deepEqual(keyctl, [-1, 1]);
    assert.deepEqual(clone3, [-1, 38]);
    assert.ok(persona[0] >= 0, 'personality query allowed');
    assert.deepEqual(badPersona, [-1, 1]);
    assert.deepEqual(unshare, [-1, 1]);
    assert.deepEqual(mount, [-1, 1]);
    assert.deepEqual(vsock, [-1, 1]);
    assert.deepEqual(unknown, [-1, 38]);
  });

  test('64-bit argument comparisons on the real seccomp_data', () => {
    // Calls that ignore their arguments, one per operator.
    const ops: [string, SeccompOperator][] = [
      ['getppid', 'SCMP_CMP_EQ'],
      ['getuid', 'SCMP_CMP_NE'],
      ['getgid', 'SCMP_CMP_LT'],
      ['geteuid', 'SCMP_CMP_LE'],
      ['getegid', 'SCMP_CMP_GT'],
      ['gettid', 'SCMP_CMP_GE'],
      ['getpgrp', 'SCMP_CMP_MASKED_EQ'],
    ].filter(([name]) => syscallNumber(native as ScmpArch, name) !== undefined) as [string, SeccompOperator][];
    const v = 0x1_0000_0005n;
    const syscalls: SeccompSyscall[] = ops.map(([name, op], i) => ({
      names: [name],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 100 + i,
      args: [
        {
          index: 2,
          op,
          value: (op === 'SCMP_CMP_MASKED_EQ' ? 0xffff_0000_000fn : v) as unknown as number,
          valueTwo: 0x1_0000_0005n as unknown as number,
        },
      ],
    }));
    const c = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls });
    const probes = [v - 1n, v, v + 1n, 5n, 0x2_0000_0005n, (1n << 64n) - 1n];
    const calls = ops.flatMap(([name]) => probes.map((x) => [nr(name), 0, 0, x]));
    const o = runInKernel(c, calls);
    assert.equal(o.signal, null);
    const results = o.results ?? [];
    ops.forEach(([name, op], i) => {
      probes.forEach((x, j) => {
        const match =
          op === 'SCMP_CMP_EQ'
            ? x === v
            : op === 'SCMP_CMP_NE'
              ? x !== v
              : op === 'SCMP_CMP_LT'
                ? x < v
                : op === 'SCMP_CMP_LE'
                  ? x <= v
                  : op === 'SCMP_CMP_GT'
                    ? x > v
                    : op === 'SCMP_CMP_GE'
                      ? x >= v
                      : (x & 0xffff_0000_000fn) === 0x1_0000_0005n;
        const [ret, errno] = results[i * probes.length + j];
        if (match) assert.deepEqual([ret, errno], [-1, 100 + i], `${name} ${op} 0x${x.toString(16)}`);
        else assert.ok(ret >= 0, `${name} ${op} 0x${x.toString(16)} should be allowed, got errno ${errno}`);
      });
    });
  });

  test('KILL_PROCESS ends the process with SIGSYS', () => {
    const c = compileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_KILL_PROCESS' }],
    });
    assert.equal(runInKernel(c, [[nr('getpid')], [nr('getppid')]]).signal, 'SIGSYS');
  });

  test('x32 syscall numbers are killed by an x86_64-only filter', { skip: native !== 'SCMP_ARCH_X86_64' }, () => {
    const spec: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['getpid'], action: 'SCMP_ACT_ERRNO' }],
    };
    const x32getppid = (0x40000000 | nr('getppid')) >>> 0;
    assert.equal(runInKernel(compileSeccomp(spec), [[x32getppid]]).signal, 'SIGSYS');
    const withX32 = compileSeccomp({
      ...spec,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'],
      syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 77 }],
    });
    const o = runInKernel(withX32, [[x32getppid], [nr('getppid')]]);
    assert.equal(o.signal, null);
    assert.deepEqual(o.results?.[0], [-1, 77]);
    assert.deepEqual(o.results?.[1], [-1, 77]);
  });

  test('flags are accepted by the kernel; NOTIFY returns a listener fd', () => {
    const flagged = compileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC'],
    });
    assert.equal(runInKernel(flagged, [[nr('getpid')]]).loadErrno, undefined);
    const notify = compileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      listenerPath: '/nonexistent',
      flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
      syscalls: [{ names: ['mknodat'], action: 'SCMP_ACT_NOTIFY' }],
    });
    const o = runInKernel(notify, [[nr('getpid')]]);
    assert.equal(o.loadErrno, undefined, `flags ${notify.flags}`);
    assert.ok((o.fd ?? -1) > 2, `listener fd ${o.fd}`);
  });

  test('a large filter with long jumps is accepted and right', () => {
    const names = ['getppid', 'getuid', 'getgid', 'geteuid', 'getegid', 'gettid'];
    const filler = Array.from({ length: 150 }, (_, i): SeccompSyscall => ({
      names: ['getpgrp', 'getppid', 'getuid'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 200,
      args: [{ index: i % 6, op: 'SCMP_CMP_EQ', value: 1000 + i }],
    }));
    const c = compileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        ...filler,
        ...names.map((n, i): SeccompSyscall => ({
          names: [n],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 10 + i,
          args: [{ index: 1, op: 'SCMP_CMP_EQ', value: 7 }],
        })),
      ],
    });
    assert.ok(c.instructions > 1000, `${c.instructions}`);
    const o = runInKernel(c, [...names.map((n) => [nr(n), 0, 7]), [nr('getppid'), 1000], [nr('getppid'), 0, 8]]);
    assert.equal(o.loadErrno, undefined);
    const results = o.results ?? [];
    names.forEach((n, i) => assert.deepEqual(results[i], [-1, 10 + i], n));
    assert.deepEqual(results[names.length], [-1, 200]);
    assert.ok(results[names.length + 1][0] > 0);
  });
});
