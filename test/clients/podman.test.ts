// podman 4.3 + conmon drive hako (registered in containers.conf as runtime `hako`, listed in
// runtime_supports_json). Needs `bash scripts/ci-clients.sh` first; run with `npm run test:clients`.
import { after, before, describe, test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import {
  assertNoLeftovers,
  assertPrivileged,
  PRIVILEGED_PROBE,
  callsFor,
  clientsEnv,
  explain,
  globalFlag,
  hakoList,
  hostCgroupFile,
  lastCall,
  leftovers,
  ok,
  processesOwnedBy,
  run,
  runAs,
  subordinateIds,
  TTY_SIZE,
  uniq,
  verbOf,
  waitFor,
  withTty,
  type RootlessEnv,
  type RunResult,
} from './helpers';

const HAKO_ROOT = '/run/hako'; // podman passes no --root: hako's default state root
const created = new Set<string>();
let env: NodeJS.ProcessEnv;
let image: string;

function podman(args: string[], timeout = 60_000): RunResult {
  return run('podman', ['--runtime', 'hako', ...args], { env, timeout });
}

/** `podman run -d`: returns the full container id. */
function runDetached(name: string, args: string[] = ['sleep', '300']): string {
  const r = ok(podman(['run', '-d', '--name', name, image, ...args]));
  const id = r.stdout.trim().split('\n').pop()!;
  assert.match(id, /^[0-9a-f]{64}$/, explain(r));
  created.add(id);
  return id;
}

function inspect(name: string, format: string): string {
  return ok(podman(['inspect', '--format', format, name])).stdout.trim();
}

function rmf(name: string): void {
  podman(['rm', '-f', '-t', '0', name]);
}

describe('podman + conmon', () => {
  before(() => {
    const e = clientsEnv();
    image = e.image;
    env = { ...process.env, CONTAINERS_CONF: e.containersConf, CONTAINERS_STORAGE_CONF: e.storageConf };
    const r = ok(
      podman(['info', '--format', '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}} {{.Host.CgroupManager}}']),
    );
    assert.equal(r.stdout.trim(), `hako ${e.hako} cgroupfs`);
  });

  after(async () => {
    await assertNoLeftovers(created, [HAKO_ROOT], 10_000, true);
    // /run/hako is hako's default root, which others may use too: podman's entries are its 64-hex ids
    const podmans = hakoList(HAKO_ROOT).filter((s) => created.has(s.id) || /^[0-9a-f]{64}$/.test(s.id));
    assert.deepEqual(podmans, [], `hako --root ${HAKO_ROOT} list still shows podman containers`);
  });

  test('run --rm: output, exit status, JSON log flags, nothing left', async () => {
    const name = uniq('p-rm');
    const r = ok(podman(['run', '--rm', '--name', name, image, 'sh', '-c', 'echo hello from $(hostname); exit 0']));
    const call = lastCall('create', 'conmon');
    assert.ok(call, 'conmon called hako create');
    const id = verbOf(call).at(-1)!;
    created.add(id);
    assert.equal(
      r.stdout.trim(),
      `hello from ${id.slice(0, 12)}`,
      'podman’s hostname (the short id) in a new UTS namespace',
    );
    assert.equal(globalFlag(call, '--log-format'), 'json', 'runtime_supports_json makes conmon pass --log-format=json');
    assert.match(globalFlag(call, '--log') ?? '', /oci-log$/);
    const verbs = callsFor(id).map((c) => verbOf(c)[0]);
    assert.deepEqual(verbs, ['create', 'start', 'delete'], `hako calls for ${id}`);
    assert.equal(podman(['container', 'exists', name]).status, 1, '--rm removed the container');
    await assertNoLeftovers([id], [HAKO_ROOT]);

    const st = podman(['run', '--rm', image, 'sh', '-c', 'exit 7']);
    assert.equal(st.status, 7, explain(st));
    created.add(verbOf(lastCall('create', 'conmon')!).at(-1)!);
  });

  test('--privileged: the capabilities this host can give, device modes with type bits, a clean output stream', async () => {
    // podman sends each host device's whole st_mode as fileMode (type bits included).
    const r = ok(podman(['run', '--rm', '--privileged', '--network', 'none', image, 'sh', '-c', PRIVILEGED_PROBE]));
    created.add(verbOf(lastCall('create', 'conmon')!).at(-1)!);
    assertPrivileged(r);
  });

  test('run -d, exec, stop, rm', async () => {
    const name = uniq('p-d');
    const id = runDetached(name);
    assert.equal(inspect(name, '{{.State.Status}}'), 'running');
    const pid = Number(inspect(name, '{{.State.Pid}}'));
    assert.ok(pid > 0);
    // eslint-disable-next-line no-control-regex -- /proc/PID/cmdline separates the arguments with NUL
    assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\x00300/);
    // The container's own view: sleep is pid 1 of a new pid namespace.
    const ex = ok(
      podman(['exec', name, 'sh', '-c', 'echo exec-ok; cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$']),
    );
    const lines = ex.stdout.trim().split('\n');
    assert.equal(lines[0], 'exec-ok');
    assert.equal(lines[1].trim(), 'sleep 300');
    assert.ok(Number(lines[2]) > 1, 'the exec process has its own pid in the container');
    const execCall = callsFor(id).find((c) => verbOf(c)[0] === 'exec');
    assert.ok(execCall, 'conmon ran hako exec');
    assert.equal(execCall.parent, 'conmon');
    // exit status of an exec
    assert.equal(podman(['exec', name, 'sh', '-c', 'exit 3']).status, 3);
    // the exec'd process is in the container's cgroup
    const cg = ok(podman(['exec', name, 'cat', '/proc/self/cgroup'])).stdout;
    assert.match(cg, new RegExp(`memory:.*libpod-${id}`));

    // sleep as pid 1 ignores SIGTERM: podman stop -t 1 escalates to SIGKILL
    const t0 = Date.now();
    ok(podman(['stop', '-t', '1', name]));
    assert.ok(Date.now() - t0 < 15_000);
    assert.equal(inspect(name, '{{.State.Status}}'), 'exited');
    assert.equal(inspect(name, '{{.State.ExitCode}}'), '137');
    const kills = callsFor(id)
      .filter((c) => verbOf(c)[0] === 'kill')
      .map((c) => verbOf(c).slice(1).join(' '));
    assert.deepEqual(kills.slice(0, 2), [`${id} 15`, `${id} 9`]);
    ok(podman(['rm', name]));
    assert.equal(podman(['container', 'exists', name]).status, 1);
    await assertNoLeftovers([id], [HAKO_ROOT]);
  });

  test('run -t with a terminal; exec -t', async () => {
    const name = uniq('p-tty');
    const r = withTty(
      'podman',
      [
        '--runtime',
        'hako',
        'run',
        '--rm',
        '-t',
        '--name',
        name,
        image,
        'sh',
        '-c',
        'tty; stty size; test -t 0 && echo stdin-is-tty',
      ],
      { env },
    );
    assert.equal(r.status, 0, explain(r));
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(
      r.stdout,
      new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'),
      'the terminal size reached the container',
    );
    assert.match(r.stdout, /stdin-is-tty/);
    const ttyCreate = lastCall('create', 'conmon')!;
    created.add(verbOf(ttyCreate).at(-1)!);
    assert.ok(verbOf(ttyCreate).includes('--console-socket'), 'conmon passed a console socket for run -t');

    const name2 = uniq('p-tty2');
    const id = runDetached(name2);
    const create = callsFor(id).find((c) => verbOf(c)[0] === 'create')!;
    assert.ok(!verbOf(create).includes('--console-socket'), 'no terminal requested for run -d');
    const ex = withTty('podman', ['--runtime', 'hako', 'exec', '-t', name2, 'sh', '-c', 'tty'], { env });
    assert.equal(ex.status, 0, explain(ex));
    assert.match(ex.stdout, /\/dev\/pts\/\d+/);
    const execCall = callsFor(id)
      .filter((c) => verbOf(c)[0] === 'exec')
      .at(-1)!;
    assert.ok(verbOf(execCall).includes('--console-socket'), 'conmon passed a console socket');
    rmf(name2);
    await assertNoLeftovers([id], [HAKO_ROOT]);
  });

  test('pause and unpause freeze the container', async () => {
    const name = uniq('p-pause');
    const id = runDetached(name, ['sh', '-c', 'while :; do date +%s%N > /tmp/tick; sleep 0.1; done']);
    ok(podman(['pause', name]));
    assert.equal(inspect(name, '{{.State.Status}}'), 'paused');
    assert.equal(hostCgroupFile('freezer', `/libpod_parent/libpod-${id}`, 'freezer.state'), 'FROZEN');
    const pid = Number(inspect(name, '{{.State.Pid}}'));
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /State:\s+[SD]/);
    ok(podman(['unpause', name]));
    assert.equal(inspect(name, '{{.State.Status}}'), 'running');
    assert.equal(hostCgroupFile('freezer', `/libpod_parent/libpod-${id}`, 'freezer.state'), 'THAWED');
    const verbs = callsFor(id).map((c) => verbOf(c)[0]);
    assert.ok(verbs.includes('pause') && verbs.includes('resume'), verbs.join(' '));
    // the loop runs again
    const a = ok(podman(['exec', name, 'cat', '/tmp/tick'])).stdout.trim();
    await waitFor(
      () => ok(podman(['exec', name, 'cat', '/tmp/tick'])).stdout.trim() !== a,
      5000,
      'the thawed loop to tick',
    );
    rmf(name);
    await assertNoLeftovers([id], [HAKO_ROOT]);
  });

  test('top lists the container processes', async () => {
    const name = uniq('p-top');
    const id = runDetached(name, ['sh', '-c', 'sleep 301 & exec sleep 300']);
    await waitFor(() => /sleep 301/.test(podman(['top', name, 'pid', 'args']).stdout), 5000, 'sleep 301 in podman top');
    const r = ok(podman(['top', name, 'pid', 'args']));
    assert.match(r.stdout, /^\s*1\s+sleep 300\s*$/m, r.stdout);
    assert.match(r.stdout, /sleep 301/);
    rmf(name);
    await assertNoLeftovers([id], [HAKO_ROOT]);
  });

  test('--memory is the limit of the container cgroup, seen from inside and on the host', async () => {
    const limit = String(64 * 1024 * 1024);
    const name2 = uniq('p-mem2');
    const id2 = runDetachedWith(name2, ['--memory', '64m'], ['sleep', '300']);
    assert.equal(hostCgroupFile('memory', `/libpod_parent/libpod-${id2}`, 'memory.limit_in_bytes'), limit);
    const inside = ok(
      podman([
        'exec',
        name2,
        'sh',
        '-c',
        'cat /proc/self/cgroup | grep memory; cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
      ]),
    );
    assert.match(inside.stdout, new RegExp(`libpod-${id2}`));
    assert.equal(
      inside.stdout.trim().split('\n').at(-1),
      limit,
      `memory.limit_in_bytes inside the container:\n${inside.stdout}`,
    );
    // run --rm reads it as its own limit too
    const rr = ok(
      podman(['run', '--rm', '--memory', '32m', image, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']),
    );
    assert.equal(rr.stdout.trim(), String(32 * 1024 * 1024));
    rmf(name2);
    await assertNoLeftovers([id2], [HAKO_ROOT]);
  });

  test("a missing executable: podman shows hako's own message", async () => {
    const name = uniq('p-enoent');
    const r = podman(['run', '--rm', '--name', name, image, 'no-such-command']);
    assert.equal(r.status, 127, explain(r)); // podman: "executable file not found in" -> not found (127)
    assert.match(r.stderr, /executable file not found in \$PATH/, explain(r));
    assert.match(r.stderr, /no-such-command/);
    const call = lastCall('create', 'conmon')!;
    const id = verbOf(call).at(-1)!;
    created.add(id);
    assert.equal(call.rc, 1, 'hako create failed');
    const abs = podman(['run', '--rm', image, '/no/such/file']);
    assert.equal(abs.status, 127, explain(abs));
    assert.match(abs.stderr, /\/no\/such\/file/);
    await assertNoLeftovers([id], [HAKO_ROOT]);
  });

  function runDetachedWith(name: string, opts: string[], args: string[]): string {
    const r = ok(podman(['run', '-d', '--name', name, ...opts, image, ...args]));
    const id = r.stdout.trim().split('\n').pop()!;
    created.add(id);
    return id;
  }
});

// Rootless: an unprivileged user (scripts/ci-clients.sh makes it, with subordinate ids, an XDG_RUNTIME_DIR
// and a containers.conf naming its own wrapper) runs podman, which runs conmon and hako as uid 0 of the user
// namespace it made. hako then keeps its state in $XDG_RUNTIME_DIR/hako, skips the cgroups it may not make
// (warnings in its log) and binds the host's device nodes. `--network none`: no slirp4netns, no /dev/net/tun.
describe('rootless podman: hako as root of an unprivileged user namespace', () => {
  let rl: RootlessEnv;
  let stateRoot: string; // hako's: $XDG_RUNTIME_DIR/hako of the user
  let subuid: { start: number; count: number };
  const rlCreated = new Set<string>();

  function rlPodman(args: string[], timeout = 30_000): RunResult {
    return runAs(rl, 'podman', ['--runtime', 'hako', ...args], { timeout });
  }

  function rlOk(r: RunResult): RunResult {
    assert.equal(r.status, 0, explain(r, '', rl.argvLog));
    return r;
  }

  /** The id of the container conmon last asked hako to create. */
  function lastCreated(): string {
    const call = lastCall('create', 'conmon', undefined, rl.argvLog);
    assert.ok(call, 'conmon called hako create');
    const id = verbOf(call).at(-1)!;
    assert.match(id, /^[0-9a-f]{64}$/);
    rlCreated.add(id);
    return id;
  }

  /** Rootless podman's pause process: it holds the user and mount namespaces between podman commands. */
  function pausePid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(rl.xdgRuntimeDir, 'libpod/tmp/pause.pid'), 'utf8'));
      return fs.existsSync(`/proc/${pid}`) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  const ownedByUser = (uid: number) => uid === rl.uid || (uid >= subuid.start && uid < subuid.start + subuid.count);

  /**
   * What could remain of `ids`: what leftovers() finds (state dir in the user's root, cgroups, host mounts,
   * conmon), mounts in podman's own mount namespace, podman's record; and any process of the user or its
   * subordinate ids other than the pause process (the user runs nothing else).
   */
  function rootlessLeftovers(ids: string[]): string[] {
    const out = ids.flatMap((id) => leftovers(id, [stateRoot]));
    const pause = pausePid();
    if (pause) {
      let mounts: string[] = [];
      try {
        mounts = fs.readFileSync(`/proc/${pause}/mountinfo`, 'utf8').split('\n');
      } catch {
        /* it just exited */
      }
      for (const id of ids)
        for (const line of mounts) if (line.includes(id)) out.push(`mount in podman's namespace ${line}`);
    }
    const ps = rlPodman(['ps', '-a', '-q', '--no-trunc']);
    for (const id of ps.stdout.split('\n').filter(Boolean))
      out.push(`podman ps -a: ${id}${ids.includes(id) ? '' : ' (not one of this file)'}`);
    for (const p of processesOwnedBy(ownedByUser, new Set(pause ? [pause] : []))) out.push(`process ${p}`);
    return out;
  }

  /** rootlessLeftovers, polled for `ms`: podman cleans up after a container asynchronously (conmon exits last). */
  async function settledLeftovers(ids: Iterable<string>, ms = 10_000): Promise<string[]> {
    const list = [...ids];
    const end = Date.now() + ms;
    for (;;) {
      const left = rootlessLeftovers(list);
      if (!left.length || Date.now() > end) return left;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function assertNothingLeft(ids: Iterable<string>): Promise<void> {
    const left = await settledLeftovers(ids);
    assert.deepEqual(left, [], `rootless podman + hako left these behind:\n${left.join('\n')}`);
  }

  before(() => {
    const e = clientsEnv();
    if (!e.rootless) throw new Error(`${e.work}/env.json has no rootless user: re-run \`bash scripts/ci-clients.sh\``);
    rl = e.rootless;
    image = e.image;
    stateRoot = path.join(rl.xdgRuntimeDir, 'hako');
    subuid = subordinateIds(rl.user, rl.uid);
    if (rl.realHako !== e.realHako) {
      // The user cannot read this checkout and runs a copy (scripts/ci-clients.sh): it must be this build.
      const copy = path.join(path.dirname(rl.realHako), '..', 'dist', 'cli.js');
      assert.ok(
        fs.readFileSync(copy).equals(fs.readFileSync(path.join(e.repo, 'dist', 'cli.js'))),
        `${copy} is an older build: re-run \`bash scripts/ci-clients.sh\``,
      );
    }
    const r = rlOk(
      rlPodman([
        'info',
        '--format',
        '{{.Host.Security.Rootless}} {{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}} {{.Host.CgroupManager}}',
      ]),
    );
    assert.equal(r.stdout.trim(), `true hako ${rl.hako} cgroupfs`);
    rlOk(rlPodman(['image', 'exists', image]));
  });

  after(async () => {
    const left = await settledLeftovers(rlCreated);
    if (left.length) {
      // Report, then remove, so that the next file starts clean: podman first, then hako's state as the user.
      const ids = rlPodman(['ps', '-a', '-q', '--no-trunc']).stdout.split('\n').filter(Boolean);
      if (ids.length) rlPodman(['rm', '-f', '-t', '0', ...ids]);
      for (const id of rlCreated)
        if (fs.existsSync(path.join(stateRoot, id))) runAs(rl, rl.realHako, ['delete', '--force', id]);
      const pause = pausePid();
      for (const p of processesOwnedBy(ownedByUser, new Set(pause ? [pause] : []))) {
        try {
          process.kill(Number(/^pid (\d+)/.exec(p)![1]), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    assert.deepEqual(left, [], `rootless podman + hako left these behind:\n${left.join('\n')}`);
  });

  test(
    'run --rm --network none: uid 0 of a mapped user namespace, host device nodes, hako state under $XDG_RUNTIME_DIR',
    { timeout: 60_000 },
    async () => {
      const r = rlPodman([
        'run',
        '--rm',
        '--network',
        'none',
        image,
        'sh',
        '-c',
        'id -u; cat /proc/self/uid_map; ls -ln /dev/null',
      ]);
      const id = lastCreated();
      rlOk(r);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], '0', `root in the container:\n${r.stdout}`);
      const map = lines.filter((l) => /^\s*\d+\s+\d+\s+\d+\s*$/.test(l)).map((l) => l.trim().split(/\s+/).map(Number));
      assert.notDeepEqual(map, [[0, 0, 4294967295]], 'not the initial user namespace');
      assert.deepEqual(
        map,
        [
          [0, rl.uid, 1],
          [1, subuid.start, subuid.count],
        ],
        `container root is ${rl.user} on the host, the rest its subordinate ids:\n${r.stdout}`,
      );
      // The host's /dev/null bound in (a node made in the namespace would belong to its root): host root
      // is unmapped there, so its owner shows as the overflow id.
      const overflow = fs.readFileSync('/proc/sys/kernel/overflowuid', 'utf8').trim();
      assert.match(
        r.stdout,
        new RegExp(`^crw-rw-rw-\\s+\\d+\\s+${overflow}\\s+${overflow}\\s+1,\\s+3\\s.*/dev/null$`, 'm'),
        r.stdout,
      );
      // cgroups hako could not make are warnings in its log, never in the container's output
      assert.doesNotMatch(r.stdout, /warn|cgroup/i);
      const calls = callsFor(id, rl.argvLog);
      assert.deepEqual(
        calls.map((c) => verbOf(c)[0]),
        ['create', 'start', 'delete'],
        `hako calls for ${id}`,
      );
      for (const c of calls) {
        const root = globalFlag(c, '--root');
        assert.ok(
          root === undefined || root === stateRoot,
          `--root ${root}: the user's ${stateRoot} or none (hako's default there)`,
        );
      }
      await assertNothingLeft([id]);
    },
  );

  test('the exit status passes through', { timeout: 60_000 }, () => {
    const r = rlPodman(['run', '--rm', '--network', 'none', image, 'sh', '-c', 'echo before-exit; exit 7']);
    lastCreated();
    assert.equal(r.status, 7, explain(r, '', rl.argvLog));
    assert.equal(r.stdout.trim(), 'before-exit');
  });

  test('run -d, exec, stop, rm', { timeout: 60_000 }, async () => {
    const name = uniq('rl-d');
    const r = rlPodman(['run', '-d', '--network', 'none', '--name', name, image, 'sleep', '300']);
    const id = lastCreated();
    rlOk(r);
    assert.equal(r.stdout.trim().split('\n').pop(), id, 'podman printed the id it created');
    const inspect = (format: string) => rlOk(rlPodman(['inspect', '--format', format, name])).stdout.trim();
    assert.equal(inspect('{{.State.Status}}'), 'running');
    // rootless podman shares the host's pid namespace: the pid is the host's
    const pid = Number(inspect('{{.State.Pid}}'));
    assert.ok(pid > 0);
    // eslint-disable-next-line no-control-regex -- /proc/PID/cmdline separates the arguments with NUL
    assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\x00300/);
    assert.match(
      fs.readFileSync(`/proc/${pid}/status`, 'utf8'),
      new RegExp(`^Uid:\\s+${rl.uid}\\s+${rl.uid}\\s`, 'm'),
      `container root is ${rl.user} on the host`,
    );
    // hako's state is the user's: in its $XDG_RUNTIME_DIR, listed by the user's own `hako list`
    assert.ok(fs.existsSync(path.join(stateRoot, id, 'state.json')), `hako's state in ${stateRoot}`);
    assert.equal(fs.statSync(path.join(stateRoot, id, 'state.json')).uid, rl.uid);
    assert.ok(!fs.existsSync(path.join(HAKO_ROOT, id)), `nothing in ${HAKO_ROOT}`);
    const list = rlOk(runAs(rl, rl.realHako, ['list', '--format', 'json']));
    const mine = (JSON.parse(list.stdout || '[]') as { id: string; status: string; pid?: number }[]).find(
      (c) => c.id === id,
    );
    assert.deepEqual(mine && { status: mine.status, pid: mine.pid }, { status: 'running', pid }, list.stdout);

    const ex = rlOk(
      rlPodman(['exec', name, 'sh', '-c', 'echo exec-ok; id -u; cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$']),
    );
    const lines = ex.stdout.trim().split('\n');
    assert.equal(lines[0], 'exec-ok');
    assert.equal(lines[1], '0');
    assert.equal(lines[2].trim(), 'sleep 300', 'the exec joined the container’s pid namespace');
    assert.ok(Number(lines[3]) > 1);
    const execCall = callsFor(id, rl.argvLog).find((c) => verbOf(c)[0] === 'exec');
    assert.ok(execCall, 'conmon ran hako exec');
    assert.equal(execCall.parent, 'conmon');
    assert.equal(rlPodman(['exec', name, 'sh', '-c', 'exit 3']).status, 3, 'the exec’s exit status');

    // sleep as pid 1 ignores SIGTERM: podman stop -t 1 escalates to SIGKILL
    const t0 = Date.now();
    rlOk(rlPodman(['stop', '-t', '1', name]));
    assert.ok(Date.now() - t0 < 15_000);
    assert.equal(inspect('{{.State.Status}}'), 'exited');
    assert.equal(inspect('{{.State.ExitCode}}'), '137');
    let state = 'gone';
    try {
      state = /^State:\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
    } catch {
      /* reaped */
    }
    assert.ok(state === 'gone' || state === 'Z', `sleep (pid ${pid}) is gone: ${state}`);
    rlOk(rlPodman(['rm', name]));
    assert.equal(rlPodman(['container', 'exists', name]).status, 1);
    await assertNothingLeft([id]);
  });

  test(
    'nothing is left: no container for the user, no state in its $XDG_RUNTIME_DIR/hako, no process',
    { timeout: 60_000 },
    async () => {
      assert.ok(rlCreated.size > 0, 'the tests above created containers');
      await assertNothingLeft(rlCreated);
      const states = fs.existsSync(stateRoot) ? fs.readdirSync(stateRoot).filter((f) => /^[0-9a-f]{64}$/.test(f)) : [];
      assert.deepEqual(states, [], `container state dirs in ${stateRoot}`);
    },
  );
});
