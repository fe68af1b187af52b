// podman 4.3 + conmon drive hako (registered in containers.conf as runtime `hako`, listed in
// runtime_supports_json). Needs `bash scripts/ci-clients.sh` first; run with `npm run test:clients`.
import { after, before, describe, test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import { assertNoLeftovers, assertPrivileged, PRIVILEGED_PROBE, callsFor, clientsEnv, explain, globalFlag, hakoList, hostCgroupFile, lastCall, ok, run, TTY_SIZE, uniq, verbOf, waitFor, withTty, type RunResult } from './helpers';

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
    const r = ok(podman(['info', '--format', '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}} {{.Host.CgroupManager}}']));
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
    assert.equal(r.stdout.trim(), `hello from ${id.slice(0, 12)}`, 'podman’s hostname (the short id) in a new UTS namespace');
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
    assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\x00300/);
    // The container's own view: sleep is pid 1 of a new pid namespace.
    const ex = ok(podman(['exec', name, 'sh', '-c', 'echo exec-ok; cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$']));
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
    const kills = callsFor(id).filter((c) => verbOf(c)[0] === 'kill').map((c) => verbOf(c).slice(1).join(' '));
    assert.deepEqual(kills.slice(0, 2), [`${id} 15`, `${id} 9`]);
    ok(podman(['rm', name]));
    assert.equal(podman(['container', 'exists', name]).status, 1);
    await assertNoLeftovers([id], [HAKO_ROOT]);
  });

  test('run -t with a terminal; exec -t', async () => {
    const name = uniq('p-tty');
    const r = withTty('podman', ['--runtime', 'hako', 'run', '--rm', '-t', '--name', name, image, 'sh', '-c', 'tty; stty size; test -t 0 && echo stdin-is-tty'], { env });
    assert.equal(r.status, 0, explain(r));
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(r.stdout, new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), 'the terminal size reached the container');
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
    const execCall = callsFor(id).filter((c) => verbOf(c)[0] === 'exec').at(-1)!;
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
    await waitFor(() => ok(podman(['exec', name, 'cat', '/tmp/tick'])).stdout.trim() !== a, 5000, 'the thawed loop to tick');
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
    const inside = ok(podman(['exec', name2, 'sh', '-c', 'cat /proc/self/cgroup | grep memory; cat /sys/fs/cgroup/memory/memory.limit_in_bytes']));
    assert.match(inside.stdout, new RegExp(`libpod-${id2}`));
    assert.equal(inside.stdout.trim().split('\n').at(-1), limit, `memory.limit_in_bytes inside the container:\n${inside.stdout}`);
    // run --rm reads it as its own limit too
    const rr = ok(podman(['run', '--rm', '--memory', '32m', image, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']));
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
