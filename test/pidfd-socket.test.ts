// --pidfd-socket (runc 1.2): create/run send a pidfd of the container's init, exec one of its process, over
// the AF_UNIX socket at the path; a socket that cannot be reached fails the command and leaves nothing.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { disposeRoot, hako, initProcessesOf, leftovers, makeBundle, testRoot, tmpDir, uniqueId } from './helpers/env';

const root = testRoot('pidfd');
const work = tmpDir('pidfd');
after(async () => {
  await disposeRoot(root);
  fs.rmSync(work, { recursive: true, force: true });
});
const havePython = spawnSync('python3', ['-c', 'import signal; signal.pidfd_send_signal']).status === 0;

interface Received {
  msg: string;
  count: number;
  link: string;
  pid: number;
  signalled: boolean;
}

/**
 * A receiver as containerd's shim is one: listen, accept one connection, take the message and its fds.
 * It checks the fd is a pidfd (its link, its fdinfo's Pid, pidfd_send_signal(fd, 0)) and reports.
 */
function receiver(sock: string, report: string): { proc: ChildProcess; ready: Promise<void>; done: Promise<Received> } {
  const py = `
import socket, array, json, os, sys, signal
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
fds = array.array("i")
msg, anc, flags, addr = c.recvmsg(4096, socket.CMSG_LEN(8 * fds.itemsize))
for level, typ, d in anc:
    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
        fds.frombytes(d[:len(d) - (len(d) % fds.itemsize)])
out = {"msg": msg.decode(), "count": len(fds), "link": "", "pid": 0, "signalled": False}
if fds:
    out["link"] = os.readlink("/proc/self/fd/%d" % fds[0])
    for line in open("/proc/self/fdinfo/%d" % fds[0]):
        if line.startswith("Pid:"): out["pid"] = int(line.split()[1])
    try:
        signal.pidfd_send_signal(fds[0], 0); out["signalled"] = True
    except OSError:
        pass
json.dump(out, open(sys.argv[2], "w"))
`;
  const proc = spawn('python3', ['-c', py, sock, report], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve) => proc.stdout!.once('data', () => resolve()));
  // Bounded: a runtime that never connects (one that ignores the flag) fails the test instead of hanging it.
  const done = new Promise<Received>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`nothing was received on ${sock} within 20 s`));
    }, 20_000);
    proc.once('exit', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(fs.readFileSync(report, 'utf8')) as Received);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
  return { proc, ready, done };
}

describe('--pidfd-socket', () => {
  test('create sends a pidfd of the init ("standard"), exec one of its process ("setns")', async (t) => {
    if (!havePython) return t.skip('python3 with signal.pidfd_send_signal is needed for the receiving end');
    const b = makeBundle(['/bin/probe', 'sleep', '30']);
    const id = uniqueId('pidfd');

    const c = receiver(path.join(work, 'create.sock'), path.join(work, 'create.json'));
    await c.ready;
    const r = hako(root, ['create', '--pidfd-socket', path.join(work, 'create.sock'), '--bundle', b.dir, id]);
    assert.equal(r.status, 0, r.stderr);
    t.after(() => void hako(root, ['delete', '--force', id]));
    const got = await c.done;
    const initPid = (JSON.parse(hako(root, ['state', id]).stdout) as { pid: number }).pid;
    assert.deepEqual(got, { msg: 'standard', count: 1, link: 'anon_inode:[pidfd]', pid: initPid, signalled: true });

    assert.equal(hako(root, ['start', id]).status, 0);
    const e = receiver(path.join(work, 'exec.sock'), path.join(work, 'exec.json'));
    await e.ready;
    const pidFile = path.join(work, 'exec.pid');
    const x = hako(root, [
      'exec',
      '--detach',
      '--pid-file',
      pidFile,
      '--pidfd-socket',
      path.join(work, 'exec.sock'),
      id,
      '/bin/probe',
      'sleep',
      '30',
    ]);
    assert.equal(x.status, 0, x.stderr);
    const gotExec = await e.done;
    const execPid = Number(fs.readFileSync(pidFile, 'utf8'));
    assert.notEqual(execPid, initPid);
    assert.deepEqual(gotExec, { msg: 'setns', count: 1, link: 'anon_inode:[pidfd]', pid: execPid, signalled: true });

    assert.equal(hako(root, ['delete', '--force', id]).status, 0);
    assert.deepEqual(leftovers(root, id), []);
  });

  test('a socket nobody listens on fails create and run, naming the flag, leaving nothing', () => {
    const b = makeBundle(['/bin/probe', 'hello']);
    for (const verb of ['create', 'run']) {
      const id = uniqueId('nopidfd');
      const r = hako(root, [verb, '--pidfd-socket', path.join(work, 'nobody.sock'), '--bundle', b.dir, id]);
      assert.equal(r.status, 1, `${verb} succeeded: ${r.stdout}`);
      assert.match(
        r.stderr,
        /^hako: --pidfd-socket: send the container's pidfd to .*nobody\.sock: .*(No such file|ENOENT)/,
      );
      assert.deepEqual(leftovers(root, id), []);
      assert.deepEqual(initProcessesOf(b.dir), []);
    }
  });
});
