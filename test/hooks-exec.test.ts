// Hooks (each kind, at its point, in its namespace, with the state on stdin), and the runc surface
// around a running container: exec, ps, pause/resume, update, events, kill --all.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { BUSYBOX, hako, leftovers, makeBundle, testRoot, tmpDir, uniqueId, disposeRoot } from './helpers/env';

const root = testRoot('hooks');
const work = tmpDir('hooks');
after(async () => {
  await disposeRoot(root);
  fs.rmSync(work, { recursive: true, force: true });
});

/** A host hook script recording its hostname, its mount namespace and its stdin. */
function recorder(name: string): string {
  const script = path.join(work, `${name}.sh`);
  fs.writeFileSync(
    script,
    `#!/bin/sh\nhostname > ${work}/${name}.host\nreadlink /proc/self/ns/mnt > ${work}/${name}.mnt\ncat > ${work}/${name}.stdin\n`,
    { mode: 0o755 },
  );
  return script;
}

const read = (f: string) => fs.readFileSync(path.join(work, f), 'utf8').trim();
const hostMnt = fs.readlinkSync('/proc/self/ns/mnt');

describe('hooks', { skip: !BUSYBOX && 'busybox-static is not installed' }, () => {
  test('every kind runs at its point, in its namespace, with the state on stdin', () => {
    const b = makeBundle(
      ['/bin/probe', 'exit', '0'],
      (s) => {
        s.annotations = { 'org.example/key': 'value' };
        s.root!.readonly = false;
        s.hooks = {
          prestart: [{ path: recorder('prestart') }],
          createRuntime: [{ path: recorder('createRuntime') }],
          createContainer: [{ path: recorder('createContainer') }],
          startContainer: [
            {
              path: '/bin/sh',
              args: ['sh', '-c', 'hostname > /tmp/startContainer.host; cat > /tmp/startContainer.stdin'],
            },
          ],
          poststart: [{ path: recorder('poststart') }],
          poststop: [{ path: recorder('poststop') }],
        };
      },
      { busybox: true },
    );
    const id = uniqueId('hooks');
    let r = hako(root, ['create', '-b', b.dir, id]);
    assert.equal(r.status, 0, r.stderr);
    for (const k of ['prestart', 'createRuntime', 'createContainer'])
      assert.ok(fs.existsSync(path.join(work, `${k}.stdin`)), `${k} ran during create`);
    assert.ok(!fs.existsSync(path.join(work, 'poststart.stdin')), 'poststart waits for start');
    assert.equal(
      read('prestart.host'),
      fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim(),
      'prestart: runtime namespace',
    );
    assert.equal(read('prestart.mnt'), hostMnt);
    assert.equal(read('createContainer.host'), 'probe-host', 'createContainer: container namespaces');
    assert.notEqual(read('createContainer.mnt'), hostMnt);
    const created = JSON.parse(read('createRuntime.stdin'));
    assert.equal(created.id, id);
    assert.equal(created.bundle, b.dir);
    assert.ok(created.pid > 0);
    assert.deepEqual(created.annotations, { 'org.example/key': 'value' });
    assert.equal(JSON.parse(read('prestart.stdin')).status, 'created');
    r = hako(root, ['start', id]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      fs.readFileSync(path.join(b.rootfs, 'tmp', 'startContainer.host'), 'utf8').trim(),
      'probe-host',
      'startContainer: container namespaces, path resolved in the container',
    );
    assert.equal(JSON.parse(fs.readFileSync(path.join(b.rootfs, 'tmp', 'startContainer.stdin'), 'utf8')).id, id);
    assert.equal(JSON.parse(read('poststart.stdin')).status, 'running');
    assert.ok(!fs.existsSync(path.join(work, 'poststop.stdin')));
    for (let i = 0; i < 100 && JSON.parse(hako(root, ['state', id]).stdout).status !== 'stopped'; i++)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    r = hako(root, ['delete', id]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(read('poststop.stdin')).status, 'stopped');
    assert.deepEqual(leftovers(root, id), []);
  });

  test('a failing createRuntime hook aborts create and cleans up', () => {
    const b = makeBundle(['/bin/probe', 'exit', '0'], (s) => (s.hooks = { createRuntime: [{ path: '/bin/false' }] }));
    const id = uniqueId('hookfail');
    const r = hako(root, ['create', '-b', b.dir, id]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /hooks\.createRuntime\[0\]: hook \/bin\/false failed/);
    assert.deepEqual(leftovers(root, id), []);
  });

  test('a hook that outlives its timeout fails create', () => {
    const b = makeBundle(
      ['/bin/probe', 'exit', '0'],
      (s) => (s.hooks = { prestart: [{ path: '/bin/sleep', args: ['sleep', '10'], timeout: 1 }] }),
    );
    const id = uniqueId('hooktimeout');
    const t = Date.now();
    const r = hako(root, ['create', '-b', b.dir, id]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /timed out after 1s/);
    assert.ok(Date.now() - t < 8000);
    assert.deepEqual(leftovers(root, id), []);
  });

  test('a failing poststop hook only warns, and the hooks after it still run', () => {
    const out = path.join(work, 'poststop-after');
    const b = makeBundle(
      ['/bin/probe', 'exit', '0'],
      (s) =>
        (s.hooks = {
          poststop: [{ path: '/bin/false' }, { path: '/bin/sh', args: ['sh', '-c', `echo ran > ${out}`] }],
        }),
    );
    const id = uniqueId('poststop');
    assert.equal(hako(root, ['run', '--keep', '-b', b.dir, id]).status, 0);
    const r = hako(root, ['delete', id]);
    assert.equal(r.status, 0);
    assert.match(r.stderr, /poststop hook failed/);
    assert.equal(fs.readFileSync(out, 'utf8').trim(), 'ran', 'runtime-spec: the remaining poststop hooks run');
    assert.deepEqual(leftovers(root, id), []);
  });

  test('a failing poststart hook fails start with its own error, also when the process has already exited', () => {
    const b = makeBundle(
      ['/bin/probe', 'exit', '0'],
      (s) => (s.hooks = { poststart: [{ path: '/bin/sh', args: ['sh', '-c', 'sleep 0.3; exit 3'] }] }),
    );
    const id = uniqueId('poststart');
    assert.equal(hako(root, ['create', '-b', b.dir, id]).status, 0);
    const r = hako(root, ['start', id]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /hooks\.poststart\[0\]: hook \/bin\/sh failed/);
    assert.doesNotMatch(r.stderr, /not running/);
    assert.equal(hako(root, ['delete', '--force', id]).status, 0);
    assert.deepEqual(leftovers(root, id), []);
  });

  test('hook env and args are passed', () => {
    const out = path.join(work, 'envargs');
    const b = makeBundle(
      ['/bin/probe', 'exit', '0'],
      (s) =>
        (s.hooks = {
          createRuntime: [
            { path: '/bin/sh', args: ['sh', '-c', `echo "$0 $1 $FOO" > ${out}`, 'first', 'second'], env: ['FOO=bar'] },
          ],
        }),
    );
    const id = uniqueId('envargs');
    assert.equal(hako(root, ['run', '-b', b.dir, id]).status, 0);
    assert.equal(fs.readFileSync(out, 'utf8').trim(), 'first second bar');
  });

  test("hooks run in the bundle directory, createContainer ones in the rootfs (runc); one without env gets the runtime's; createContainer sees the mounts", () => {
    const out = path.join(work, 'cwdenv');
    const b = makeBundle(['/bin/probe', 'exit', '0'], (s) => {
      s.hooks = {
        prestart: [{ path: '/bin/sh', args: ['sh', '-c', `echo "$PWD $HAKO_TEST_MARK" > ${out}.prestart`] }],
        // Before pivot_root, in the container's mount namespace: rootfs/proc is the container's proc.
        createContainer: [
          { path: '/bin/sh', args: ['sh', '-c', `test -e proc/self && echo "$PWD $HAKO_TEST_MARK" > ../cwdenv.cc`] },
        ],
      };
    });
    const r = hako(root, ['run', '-b', b.dir, uniqueId('cwd')], {
      env: { ...process.env, HAKO_TEST_MARK: 'inherited' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(`${out}.prestart`, 'utf8').trim(), `${b.dir} inherited`);
    assert.equal(fs.readFileSync(path.join(b.dir, 'cwdenv.cc'), 'utf8').trim(), `${b.rootfs} inherited`);
  });
});

describe('a running container', { skip: !BUSYBOX && 'busybox-static is not installed' }, () => {
  const b = makeBundle(['/bin/sleep', '1000'], (s) => (s.process!.env = ['PATH=/bin', 'BASE=1']), { busybox: true });
  const id = uniqueId('surface');
  after(() => hako(root, ['delete', '--force', id]));

  test('exec joins its namespaces and cgroup and returns the exit status', () => {
    assert.equal(hako(root, ['run', '-d', '-b', b.dir, id]).status, 0);
    const init = JSON.parse(hako(root, ['state', id]).stdout).pid;
    const r = hako(root, [
      'exec',
      id,
      'sh',
      '-c',
      'echo $$ $(hostname) $BASE; readlink /proc/self/ns/net; grep :memory: /proc/self/cgroup; grep :memory: /proc/1/cgroup',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const [first, netns, cg, initCg] = r.stdout.trim().split('\n');
    assert.equal(first, '2 probe-host 1', 'pid 2 in the container pid namespace, container hostname, config env');
    assert.equal(netns, fs.readlinkSync(`/proc/${init}/ns/net`));
    assert.equal(cg, initCg, "the exec process is in the container init's cgroup");
    assert.match(cg, /:memory:\/$/, 'the cgroup namespace is rooted at the container cgroup');
    assert.match(fs.readFileSync(`/proc/${init}/cgroup`, 'utf8'), new RegExp(`:memory:.*/${id}\n`));
    assert.equal(hako(root, ['exec', id, 'sh', '-c', 'exit 9']).status, 9);
    const missing = hako(root, ['exec', id, 'no-such-command']);
    assert.equal(missing.status, 255, 'a failing exec exits 255, as runc');
    assert.match(missing.stderr, /executable file not found/);
  });

  test('exec --process, --env, --cwd, --user and --detach with a pid file', () => {
    const pf = path.join(work, 'exec.json');
    fs.writeFileSync(
      pf,
      JSON.stringify({
        args: ['sh', '-c', 'echo $(id -u):$(id -g) $PWD $X'],
        cwd: '/tmp',
        env: ['PATH=/bin', 'X=from-file'],
        user: { uid: 7, gid: 8 },
      }),
    );
    const r = hako(root, ['exec', '--process', pf, id]);
    assert.equal(r.stdout.trim(), '7:8 /tmp from-file', r.stderr);
    const r2 = hako(root, [
      'exec',
      '--env',
      'X=flag',
      '--cwd',
      '/dev',
      '--user',
      '5:6',
      id,
      'sh',
      '-c',
      'echo $(id -u):$(id -g) $PWD $X',
    ]);
    assert.equal(r2.stdout.trim(), '5:6 /dev flag', r2.stderr);
    const pidFile = path.join(work, 'exec.pid');
    assert.equal(hako(root, ['exec', '--detach', '--pid-file', pidFile, id, 'sleep', '1000']).status, 0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep/);
    const ps = JSON.parse(hako(root, ['ps', '--format', 'json', id]).stdout);
    assert.ok(ps.includes(pid), 'ps lists the exec process');
    assert.match(hako(root, ['ps', id]).stdout, /sleep 1000/);
    // runc's form: ps options after the id
    const custom = hako(root, ['ps', id, '-e', '-o', 'pid,args']);
    assert.equal(custom.status, 0, custom.stderr);
    assert.match(custom.stdout, /^\s*PID COMMAND\n/);
    assert.match(custom.stdout, new RegExp(`^\\s*${pid} sleep 1000$`, 'm'));
  });

  test('exec --env replaces a key the config sets (one PATH, the new one); --cap with an unknown name is refused', () => {
    const r = hako(root, ['exec', '-e', 'PATH=/bin:/usr/bin', '-e', 'NEW=1', id, 'env']);
    assert.equal(r.status, 0, r.stderr);
    const env = r.stdout.trim().split('\n');
    assert.deepEqual(
      env.filter((e) => e.startsWith('PATH=')),
      ['PATH=/bin:/usr/bin'],
    );
    assert.ok(env.includes('BASE=1') && env.includes('NEW=1'), r.stdout);
    const bad = hako(root, ['exec', '--cap', 'CAP_NOPE', id, 'true']);
    assert.equal(bad.status, 255);
    assert.match(bad.stderr, /--cap: unknown capability "CAP_NOPE"/);
  });

  test('the init and an exec process each lead a session of their own, inside the container', () => {
    // /proc/PID/stat fields 1, 5, 6: pid, process group, session (0 would mean a leader outside the pid namespace).
    const init = hako(root, ['exec', id, 'sh', '-c', 'cut -d " " -f 1,5,6 /proc/1/stat']);
    assert.equal(init.stdout.trim(), '1 1 1', init.stderr);
    const own = hako(root, ['exec', id, 'sh', '-c', 'cut -d " " -f 5,6 /proc/$$/stat; echo $$']);
    const [groups, pid] = own.stdout.trim().split('\n');
    assert.equal(groups, `${pid} ${pid}`, own.stderr);
  });

  test('pause and resume freeze and thaw every process', () => {
    const init = JSON.parse(hako(root, ['state', id]).stdout).pid;
    assert.equal(hako(root, ['pause', id]).status, 0);
    assert.equal(JSON.parse(hako(root, ['state', id]).stdout).status, 'paused');
    const frozen = fs.readFileSync(`/proc/${init}/status`, 'utf8');
    assert.ok(/State:\s+(D|S)/.test(frozen));
    assert.match(
      fs.readFileSync(
        path.join(
          '/sys/fs/cgroup/freezer',
          fs
            .readFileSync(`/proc/${init}/cgroup`, 'utf8')
            .split('\n')
            .find((l) => l.includes(':freezer:'))!
            .split(':')[2],
          'freezer.state',
        ),
        'utf8',
      ),
      /FROZEN/,
    );
    const ex = hako(root, ['exec', id, 'true']);
    assert.notEqual(ex.status, 0);
    assert.match(ex.stderr, /paused/);
    assert.equal(hako(root, ['resume', id]).status, 0);
    assert.equal(JSON.parse(hako(root, ['state', id]).stdout).status, 'running');
    assert.equal(hako(root, ['resume', id]).status, 1);
  });

  test('SIGKILL to a paused container stops it (thawed, as runc), and delete needs no --force', async () => {
    const other = uniqueId('pk');
    assert.equal(
      hako(root, ['run', '-d', '--bundle', makeBundle(['/bin/probe', 'sleep', 'inf']).dir, other]).status,
      0,
    );
    assert.equal(hako(root, ['pause', other]).status, 0);
    assert.equal(hako(root, ['kill', other, 'KILL']).status, 0);
    for (let i = 0; i < 100 && JSON.parse(hako(root, ['state', other]).stdout).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(JSON.parse(hako(root, ['state', other]).stdout).status, 'stopped');
    const d = hako(root, ['delete', other]);
    assert.equal(d.status, 0, d.stderr);
  });

  test('update changes the cgroup, from flags and from --resources -', () => {
    const init = JSON.parse(hako(root, ['state', id]).stdout).pid;
    const memDir = path.join(
      '/sys/fs/cgroup/memory',
      fs
        .readFileSync(`/proc/${init}/cgroup`, 'utf8')
        .split('\n')
        .find((l) => l.includes(':memory:'))!
        .split(':')[2],
    );
    assert.equal(hako(root, ['update', '--memory', '64m', id]).status, 0);
    assert.equal(fs.readFileSync(path.join(memDir, 'memory.limit_in_bytes'), 'utf8').trim(), String(64 * 1024 * 1024));
    const r = hako(root, ['update', '--resources', '-', id], {
      input: JSON.stringify({ memory: { limit: 33554432 }, pids: { limit: 50 } }),
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(memDir, 'memory.limit_in_bytes'), 'utf8').trim(), '33554432');
    const pidsDir = path.join(
      '/sys/fs/cgroup/pids',
      fs
        .readFileSync(`/proc/${init}/cgroup`, 'utf8')
        .split('\n')
        .find((l) => l.includes(':pids:'))!
        .split(':')[2],
    );
    assert.equal(fs.readFileSync(path.join(pidsDir, 'pids.max'), 'utf8').trim(), '50');
    // runc's spelling, --cpu-share, as well as --cpu-shares
    const cpuLine = fs
      .readFileSync(`/proc/${init}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => /:cpu[,:]/.test(l) || /,cpu[,:]/.test(l))!;
    const cpuDir = path.join('/sys/fs/cgroup/cpu', cpuLine.split(':')[2]);
    assert.equal(hako(root, ['update', '--cpu-share', '512', id]).status, 0);
    assert.equal(fs.readFileSync(path.join(cpuDir, 'cpu.shares'), 'utf8').trim(), '512');
    assert.equal(hako(root, ['update', '--cpu-shares', '256', id]).status, 0);
    assert.equal(fs.readFileSync(path.join(cpuDir, 'cpu.shares'), 'utf8').trim(), '256');
  });

  test('events --stats prints one stats record', () => {
    const ev = JSON.parse(hako(root, ['events', '--stats', id]).stdout);
    assert.equal(ev.type, 'stats');
    assert.equal(ev.id, id);
    assert.ok(ev.data.memory.usage.usage > 0);
    assert.ok(ev.data.pids.current >= 2);
    assert.ok(ev.data.cpu.usage.total > 0);
  });

  test('kill --all signals every process, delete removes everything', () => {
    const pids: number[] = JSON.parse(hako(root, ['ps', '--format', 'json', id]).stdout);
    assert.ok(pids.length >= 2);
    assert.equal(hako(root, ['kill', '--all', id, 'KILL']).status, 0);
    for (
      let i = 0;
      i < 100 &&
      pids.some((p) => fs.existsSync(`/proc/${p}/stat`) && !/\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8')));
      i++
    )
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    for (const p of pids)
      assert.ok(
        !fs.existsSync(`/proc/${p}/stat`) || /\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8')),
        `pid ${p} is gone`,
      );
    assert.equal(hako(root, ['delete', id]).status, 0);
    assert.deepEqual(leftovers(root, id), []);
  });
});

describe('terminal', () => {
  test('a pty is created in the container and its master sent to the console socket', async () => {
    const { spawn } = await import('node:child_process');
    const sock = path.join(work, 'console.sock');
    const out = path.join(work, 'console.out');
    // The receiver takes exactly one SCM_RIGHTS fd, as go-runc's recvFd does, then reads the container output.
    const py = `
import socket, array, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
fds = array.array("i")
msg, anc, flags, addr = c.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
assert len(anc) == 1 and anc[0][1] == socket.SCM_RIGHTS
fds.frombytes(anc[0][2])
data = b""
while True:
    try:
        d = os.read(fds[0], 65536)
    except OSError:
        break
    if not d: break
    data += d
open(sys.argv[2], "wb").write(msg + b"\\n" + data)
`;
    const rx = spawn('python3', ['-c', py, sock, out], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => rx.stdout!.once('data', () => resolve()));
    const b = makeBundle(['/bin/probe', 'json'], (s) => {
      s.process!.terminal = true;
      s.process!.consoleSize = { height: 33, width: 101 };
    });
    const id = uniqueId('tty');
    const r = hako(root, ['run', '-d', '--console-socket', sock, '-b', b.dir, id]);
    assert.equal(r.status, 0, r.stderr);
    await new Promise((resolve) => rx.once('exit', resolve));
    const text = fs.readFileSync(out, 'utf8');
    const [name, ...rest] = text.split('\n');
    assert.match(name, /^\/dev\/pts\/\d+$/);
    const report = JSON.parse(rest.join('\n').replace(/\r\n/g, '\n'));
    assert.equal(report.stdinIsTty, true);
    assert.equal(report.stdoutIsTty, true);
    assert.deepEqual(report.winsize, { rows: 33, cols: 101 });
    const console = (report.mountinfo as string[]).find((l) => l.split(' ')[4] === '/dev/console');
    assert.match(console ?? 'no /dev/console mount', / - devpts /, '/dev/console is the terminal, as with runc');
    assert.equal(hako(root, ['delete', '--force', id]).status, 0);
  });

  test('terminal without a console socket is refused for create', () => {
    const b = makeBundle(['/bin/probe', 'json'], (s) => (s.process!.terminal = true));
    const id = uniqueId('tty');
    const r = hako(root, ['create', '-b', b.dir, id]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--console-socket/);
    assert.deepEqual(leftovers(root, id), []);
  });
});
