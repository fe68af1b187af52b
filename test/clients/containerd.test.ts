// containerd 1.6 + ctr drive hako through the runc shim (io.containerd.runc.v2, option BinaryName =
// hako, which is what `ctr run --runc-binary` sets). Needs `bash scripts/ci-clients.sh` first.
import { after, before, describe, test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import {
  assertNoLeftovers,
  assertPrivileged,
  callsFor,
  PRIVILEGED_PROBE,
  clientsEnv,
  explain,
  globalFlag,
  hakoList,
  hostCgroupFile,
  ok,
  run,
  TTY_SIZE,
  uniq,
  verbOf,
  waitFor,
  withTty,
  type RunResult,
} from './helpers';

const NS = 'hako-e2e';
const ROOT = `/run/containerd/runc/${NS}`; // the shim's --root: <options.Root or /run/containerd/runc>/<namespace>
const created = new Set<string>();
let sock: string;
let hako: string;
let image: string;

function ctr(args: string[], timeout = 60_000): RunResult {
  return run('ctr', ['-a', sock, '-n', NS, ...args], { timeout });
}

function ctrTty(args: string[]): RunResult {
  return withTty('ctr', ['-a', sock, '-n', NS, ...args], { timeout: 20_000 });
}

/** `ctr task ls` as id -> {pid, status}. */
function tasks(): Map<string, { pid: number; status: string }> {
  const m = new Map<string, { pid: number; status: string }>();
  for (const line of ok(ctr(['task', 'ls']))
    .stdout.trim()
    .split('\n')
    .slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id) m.set(id, { pid: Number(pid), status });
  }
  return m;
}

function runDetached(id: string, args: string[]): number {
  created.add(id);
  ok(ctr(['run', '-d', '--runc-binary', hako, image, id, ...args]));
  const t = tasks().get(id);
  assert.equal(t?.status, 'RUNNING');
  return t.pid;
}

function remove(id: string): void {
  ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], 15_000);
  ctr(['task', 'delete', '-f', id], 15_000);
  ctr(['container', 'delete', id], 15_000);
}

describe('containerd + ctr (runc shim, BinaryName = hako)', () => {
  before(() => {
    const e = clientsEnv();
    sock = e.containerdSocket;
    hako = e.hako;
    image = e.image;
    ok(ctr(['version']));
  });

  after(async () => {
    const containers = () =>
      new Set(
        ok(ctr(['container', 'ls', '-q']))
          .stdout.trim()
          .split('\n'),
      );
    for (const id of containers()) if (created.has(id)) remove(id);
    try {
      await assertNoLeftovers(created, [ROOT], 10_000, true);
    } finally {
      for (const id of containers()) if (created.has(id)) remove(id);
    }
    assert.deepEqual(hakoList(ROOT), [], `hako --root ${ROOT} list is not empty`);
  });

  test('run --rm: output, exit status, the shim’s argv', async () => {
    const id = uniq('c-rm');
    created.add(id);
    const r = ok(
      ctr(['run', '--rm', '--runc-binary', hako, image, id, 'sh', '-c', 'echo hello; readlink /proc/self/ns/pid']),
    );
    const [hello, pidns] = r.stdout.trim().split('\n');
    assert.equal(hello, 'hello');
    assert.match(pidns, /^pid:\[\d+\]$/);
    assert.notEqual(pidns, fs.readlinkSync('/proc/self/ns/pid'), 'a new pid namespace');
    const calls = callsFor(id);
    assert.deepEqual(
      calls.map((c) => verbOf(c)[0] + (verbOf(c)[1] === '--force' ? ' --force' : '')),
      ['create', 'start', 'delete', 'delete --force'],
    );
    const bundle = path.join(path.dirname(sock), 'state', 'io.containerd.runtime.v2.task', NS, id);
    for (const c of calls) {
      assert.equal(globalFlag(c, '--root'), ROOT);
      assert.equal(globalFlag(c, '--log'), path.join(bundle, 'log.json'));
      assert.equal(globalFlag(c, '--log-format'), 'json');
      assert.equal(c.parent, 'containerd-shim');
    }
    assert.deepEqual(verbOf(calls[0]), ['create', '--bundle', bundle, '--pid-file', path.join(bundle, 'init.pid'), id]);

    const id2 = uniq('c-rc');
    created.add(id2);
    const st = ctr(['run', '--rm', '--runc-binary', hako, image, id2, 'sh', '-c', 'exit 5']);
    assert.equal(st.status, 5, explain(st));
    await assertNoLeftovers([id, id2], [ROOT]);
  });

  test('run --privileged: the capabilities this host can give, the host devices, a clean output stream', async () => {
    const id = uniq('c-priv');
    created.add(id);
    assertPrivileged(
      ok(ctr(['run', '--rm', '--privileged', '--runc-binary', hako, image, id, 'sh', '-c', PRIVILEGED_PROBE])),
    );
    await assertNoLeftovers([id], [ROOT]);
  });

  test('task exec, ps, pause/resume, kill', async () => {
    const id = uniq('c-d');
    const script = 'trap "echo usr1 > /tmp/got-usr1" USR1; while :; do date +%s%N > /tmp/tick; sleep 0.1; done';
    const pid = runDetached(id, ['sh', '-c', script]);
    assert.equal(
      fs.readlinkSync(`/proc/${pid}/ns/pid`) !== fs.readlinkSync('/proc/self/ns/pid'),
      true,
      'own pid namespace',
    );

    // exec: output, exit status, the container's namespaces
    const ex = ok(
      ctr([
        'task',
        'exec',
        '--exec-id',
        'e1',
        id,
        'sh',
        '-c',
        'echo exec-ok; readlink /proc/self/ns/pid; cat /proc/1/cmdline | tr "\\0" " "',
      ]),
    );
    const [l0, l1, l2] = ex.stdout.trim().split('\n');
    assert.equal(l0, 'exec-ok');
    assert.equal(l1, fs.readlinkSync(`/proc/${pid}/ns/pid`), 'the exec joined the container’s pid namespace');
    assert.match(l2, /^sh -c trap/);
    assert.equal(ctr(['task', 'exec', '--exec-id', 'e2', id, 'sh', '-c', 'exit 4']).status, 4);
    const execCall = callsFor(id).find((c) => verbOf(c)[0] === 'exec')!;
    assert.deepEqual(
      verbOf(execCall).filter((a) => a.startsWith('--')),
      ['--process', '--detach', '--pid-file'],
    );

    // a detached exec shows up in task ps
    ok(ctr(['task', 'exec', '-d', '--exec-id', 'e3', id, 'sleep', '300']));
    const ps = await waitFor(
      () => {
        const r = ok(ctr(['task', 'ps', id]));
        const pids = r.stdout
          .trim()
          .split('\n')
          .slice(1)
          .map((l) => Number(l.trim().split(/\s+/)[0]));
        return pids.length >= 3 && pids;
      },
      5000,
      'three processes in ctr task ps',
    );
    assert.ok(ps.includes(pid), `init ${pid} in ${ps}`);
    const sleeper = ps.find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep\x00300'));
    assert.ok(sleeper, 'the exec’d sleep is listed');
    assert.ok(callsFor(id).some((c) => verbOf(c).join(' ') === `ps --format json ${id}`));

    // pause / resume: the cgroup freezer of /<namespace>/<id>
    ok(ctr(['task', 'pause', id]));
    assert.equal(tasks().get(id)?.status, 'PAUSED');
    assert.equal(hostCgroupFile('freezer', `/${NS}/${id}`, 'freezer.state'), 'FROZEN');
    ok(ctr(['task', 'resume', id]));
    assert.equal(tasks().get(id)?.status, 'RUNNING');
    assert.equal(hostCgroupFile('freezer', `/${NS}/${id}`, 'freezer.state'), 'THAWED');
    const tick = ok(ctr(['task', 'exec', '--exec-id', 'e4', id, 'cat', '/tmp/tick'])).stdout;
    await waitFor(
      () => ok(ctr(['task', 'exec', '--exec-id', `e5-${Date.now()}`, id, 'cat', '/tmp/tick'])).stdout !== tick,
      5000,
      'the loop to run again',
    );

    // kill: a signal the init handles, then SIGKILL of everything
    ok(ctr(['task', 'kill', '-s', 'SIGUSR1', id]));
    await waitFor(
      () => ctr(['task', 'exec', '--exec-id', `e6-${Date.now()}`, id, 'cat', '/tmp/got-usr1']).stdout.includes('usr1'),
      5000,
      'the trap to run',
    );
    assert.ok(
      callsFor(id).some((c) => verbOf(c).join(' ') === `kill ${id} 10`),
      'signal passed as a number',
    );
    ok(ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id]));
    await waitFor(() => tasks().get(id)?.status === 'STOPPED', 10_000, 'the task to stop');
    assert.ok(callsFor(id).some((c) => verbOf(c).join(' ') === `kill --all ${id} 9`));
    assert.ok(
      !fs.existsSync(`/proc/${sleeper}`) || !fs.readFileSync(`/proc/${sleeper}/cmdline`, 'utf8').startsWith('sleep'),
      'kill --all reached the exec’d process',
    );
    // killing a stopped task: the shim maps hako's error to "process already finished"
    const again = ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /process already finished|not found/, explain(again));
    const del = ctr(['task', 'delete', id]);
    assert.equal(del.status, 0, explain(del));
    assert.match(del.stdout + del.stderr, /137/, 'the exit status of the killed task');
    ok(ctr(['container', 'delete', id]));
    await assertNoLeftovers([id], [ROOT]);
  });

  test('a container with a tty; exec -t', async () => {
    const id = uniq('c-tty');
    created.add(id);
    // ctr sizes the pty after start: wait a little before asking; and ctr may drop the last output of a
    // tty process that exits at once (the exit event can overtake the shim's pty copy; runc alike)
    const r = ctrTty([
      'run',
      '--rm',
      '-t',
      '--runc-binary',
      hako,
      image,
      id,
      'sh',
      '-c',
      'sleep 0.5; test -t 0 && echo stdin-is-tty; tty; stty size; sleep 0.2',
    ]);
    assert.equal(r.status, 0, explain(r));
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(r.stdout, new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), explain(r));
    assert.match(r.stdout, /stdin-is-tty/);
    const create = callsFor(id).find((c) => verbOf(c)[0] === 'create')!;
    assert.ok(verbOf(create).includes('--console-socket'), 'the shim passed a console socket');

    const id2 = uniq('c-tty2');
    runDetached(id2, ['sleep', '300']);
    const ex = ctrTty([
      'task',
      'exec',
      '-t',
      '--exec-id',
      't1',
      id2,
      'sh',
      '-c',
      'sleep 0.5; tty; stty size; sleep 0.2',
    ]);
    assert.equal(ex.status, 0, explain(ex));
    assert.match(ex.stdout, /\/dev\/pts\/\d+/);
    assert.match(ex.stdout, new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), explain(ex));
    remove(id2);
    await assertNoLeftovers([id, id2], [ROOT]);
  });

  test("a missing executable: ctr shows hako's own message", async () => {
    const id = uniq('c-enoent');
    created.add(id);
    const r = ctr(['run', '--rm', '--runc-binary', hako, image, id, 'no-such-command']);
    assert.notEqual(r.status, 0);
    // containerd reads the last {"level":"error"} object of --log and shows it
    assert.match(r.stderr, /OCI runtime create failed: .*executable file not found in \$PATH/, explain(r));
    assert.match(r.stderr, /no-such-command/);
    ctr(['container', 'delete', id]);
    await assertNoLeftovers([id], [ROOT]);
  });
});
