// Seccomp in real containers: the compiled filter is loaded by the init helper right before exec.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { LinuxSeccomp } from '../lib/oci/types';
import { defaultSeccompProfile } from '../lib/seccomp';
import { BUSYBOX, hako, leftovers, makeBundle, testRoot, tmpDir, uniqueId, disposeRoot } from './helpers/env';

const root = testRoot('seccomp');
const work = tmpDir('seccomp');
after(async () => {
  await disposeRoot(root);
  fs.rmSync(work, { recursive: true, force: true });
});

const arch =
  process.arch === 'x64' ? 'SCMP_ARCH_X86_64' : process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_ARM';

function runWith(
  seccomp: LinuxSeccomp,
  args: string[],
): { status: number | null; out: { ret: number; errno: number } | null; stderr: string } {
  const b = makeBundle(['/bin/probe', ...args], (s) => (s.linux!.seccomp = seccomp));
  const r = hako(root, ['run', '-b', b.dir, uniqueId('sc')]);
  let out = null;
  try {
    out = JSON.parse(r.stdout);
  } catch {
    /* killed before printing */
  }
  return { status: r.status, out, stderr: r.stderr };
}

describe('seccomp actions in a container', () => {
  test('SCMP_ACT_ERRNO returns the configured errno', () => {
    const r = runWith(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: [arch],
        syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 33 }],
      },
      ['syscall', 'getppid'],
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([r.out!.ret, r.out!.errno], [-1, 33]);
  });

  test('defaultErrnoRet applies to the default action', () => {
    const names = [
      'read',
      'write',
      'exit',
      'exit_group',
      'brk',
      'mmap',
      'munmap',
      'arch_prctl',
      'set_tid_address',
      'set_robust_list',
      'rseq',
      'prlimit64',
      'mprotect',
      'getrandom',
      'newfstatat',
      'fstat',
      'uname',
      'readlinkat',
      'ioctl',
      'execve',
      'close',
      'rt_sigaction',
      'rt_sigprocmask',
      'rt_sigreturn',
      'futex',
      'access',
      'openat',
      'lseek',
      'getcwd',
      'writev',
      'readv',
    ];
    const r = runWith(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 22,
        architectures: [arch],
        syscalls: [{ names, action: 'SCMP_ACT_ALLOW' }],
      },
      ['syscall', 'getppid'],
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([r.out!.ret, r.out!.errno], [-1, 22]);
  });

  test('an argument filter allows one value and denies another', () => {
    const sc: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: [arch],
      syscalls: [
        {
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 1,
          args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }],
        },
      ],
    };
    const denied = runWith(sc, ['syscall', 'personality', '8']);
    assert.deepEqual([denied.out!.ret, denied.out!.errno], [-1, 1]);
    const allowed = runWith(sc, ['syscall', 'personality', '0xffffffff']);
    assert.equal(allowed.out!.errno, 0);
    assert.ok(allowed.out!.ret >= 0);
  });

  test('SCMP_ACT_KILL_PROCESS kills the process with SIGSYS', () => {
    const r = runWith(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: [arch],
        syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_KILL_PROCESS' }],
      },
      ['syscall', 'getppid'],
    );
    assert.equal(r.status, 128 + 31);
    assert.equal(r.out, null);
  });

  test('SCMP_ACT_LOG allows the call and logs it to the kernel log', () => {
    const r = runWith(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: [arch],
        syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_LOG' }],
      },
      ['syscall', 'getppid'],
    );
    assert.equal(r.out!.errno, 0, 'the call succeeds');
    const nr = process.arch === 'x64' ? 110 : process.arch === 'arm64' ? 173 : 64;
    const log = execFileSync('dmesg', { encoding: 'utf8' });
    assert.match(log, new RegExp(`type=1326 .*comm="probe".* syscall=${nr} `), 'an audit SECCOMP record for getppid');
  });

  test('an unknown architecture is a clear error', () => {
    const r = runWith({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }, ['hello']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /linux\.seccomp\.architectures\[0\]/);
  });
});

describe('the default profile', { skip: !BUSYBOX && 'busybox-static is not installed' }, () => {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const profile = defaultSeccompProfile(caps);
  test('hako spec writes it', () => {
    const b = makeBundle();
    fs.rmSync(path.join(b.dir, 'config.json'));
    assert.equal(hako(root, ['spec', '-b', b.dir]).status, 0);
    const spec = JSON.parse(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8'));
    assert.equal(spec.linux.seccomp.defaultAction, 'SCMP_ACT_ERRNO');
    assert.ok(spec.linux.seccomp.syscalls.length > 10);
  });
  test('blocks keyctl, mount and user namespaces while busybox keeps working', () => {
    const b = makeBundle(
      [
        '/bin/sh',
        '-c',
        'ls / >/dev/null && echo tools-ok; /bin/probe syscall keyctl 0; /bin/probe syscall mount none /tmp tmpfs 0 -; /bin/probe syscall unshare 0x10000000',
      ],
      (s) => {
        s.linux!.seccomp = profile;
      },
      { busybox: true },
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('default')]);
    assert.equal(r.status, 0, r.stderr);
    const [ok, keyctl, mount, unshare] = r.stdout.trim().split('\n');
    assert.equal(ok, 'tools-ok');
    assert.equal(JSON.parse(keyctl).errno, 1, 'keyctl: EPERM');
    assert.equal(JSON.parse(mount).errno, 1, 'mount: EPERM');
    assert.equal(JSON.parse(unshare).errno, 1, 'unshare(CLONE_NEWUSER): EPERM');
  });
});

describe('listener handoff', () => {
  test('the listener receives the state JSON and a working notify fd; create fails cleanly without one', async () => {
    const sock = path.join(work, 'listener.sock');
    const report = path.join(work, 'listener.json');
    // A small listener: accept one connection, read the JSON and one SCM_RIGHTS fd, check it is a seccomp
    // notify fd, record, then close it (the notified call then fails with ENOSYS).
    const py = `
import socket, array, json, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
fds = array.array("i"); data = b""
msg, anc, flags, addr = c.recvmsg(65536, socket.CMSG_LEN(16 * fds.itemsize))
data += msg
for level, typ, d in anc:
    fds.frombytes(d[:len(d) - (len(d) % fds.itemsize)])
while True:
    more = c.recv(65536)
    if not more: break
    data += more
state = json.loads(data)
state["_fdCount"] = len(fds)
state["_fdKind"] = os.readlink("/proc/self/fd/%d" % fds[0])
json.dump(state, open(sys.argv[2], "w"))
for f in fds: os.close(f)
`;
    const listener = spawn('python3', ['-c', py, sock, report], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => listener.stdout!.once('data', () => resolve()));
    const seccomp: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: [arch],
      listenerPath: sock,
      listenerMetadata: 'meta=1',
      syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_NOTIFY' }],
    };
    const b = makeBundle(['/bin/probe', 'syscall', 'getppid'], (s) => (s.linux!.seccomp = seccomp));
    const id = uniqueId('notify');
    const r = hako(root, ['run', '-b', b.dir, id]);
    await new Promise((resolve) => listener.once('exit', resolve));
    assert.equal(r.status, 0, r.stderr);
    const st = JSON.parse(fs.readFileSync(report, 'utf8'));
    assert.deepEqual(st.fds, ['seccompFd']);
    assert.equal(st._fdCount, 1);
    assert.equal(st._fdKind, 'anon_inode:seccomp notify');
    assert.equal(st.metadata, 'meta=1');
    assert.equal(st.state.id, id);
    assert.equal(st.state.status, 'creating');
    assert.ok(st.pid > 0 && st.state.pid === st.pid);
    assert.equal(JSON.parse(r.stdout).errno, 38, 'the notified call fails with ENOSYS once the listener is gone');
    // No listener at the path: create fails and leaves nothing behind.
    const id2 = uniqueId('nolistener');
    const r2 = hako(root, ['create', '-b', b.dir, id2]);
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /linux\.seccomp\.listenerPath: send the seccomp listener/);
    assert.deepEqual(leftovers(root, id2), []);
  });
});
