// dockerd 20.10 (docker.io) drives hako, registered in daemon.json `runtimes`, through containerd's runc
// shim: `docker run --runtime hako`. Needs `bash scripts/ci-clients.sh` first.
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
  ok,
  run,
  TTY_SIZE,
  verbOf,
  withTty,
  type RunResult,
} from './helpers';

const DOCKER = '/usr/bin/docker'; // docker.io's client, matching the daemon (another may come first in PATH)
const created = new Set<string>();
let root: string; // the shim's --root for dockerd: <exec-root>/runtime-runc/moby
let env: NodeJS.ProcessEnv;
let image: string;

function docker(args: string[], timeout = 60_000): RunResult {
  return run(DOCKER, args, { env, timeout });
}

function runDetached(opts: string[], args: string[] = ['sleep', '300']): string {
  const r = ok(docker(['run', '-d', '--runtime', 'hako', ...opts, image, ...args]));
  const id = r.stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/, explain(r));
  created.add(id);
  return id;
}

function inspect(id: string, format: string): string {
  return ok(docker(['inspect', '--format', format, id])).stdout.trim();
}

/** The id of the last container docker created (for `run --rm`, which prints none). */
function lastId(): string {
  const call = lastCall('create', 'containerd-shim', root);
  assert.ok(call, 'the shim ran hako create');
  const id = verbOf(call).at(-1)!;
  created.add(id);
  return id;
}

describe('dockerd (runtimes.hako in daemon.json)', () => {
  before(() => {
    const e = clientsEnv();
    root = path.join(e.dockerExecRoot, 'runtime-runc', 'moby');
    env = { ...process.env, DOCKER_HOST: e.dockerHost };
    image = e.image;
    const info = ok(docker(['info', '--format', '{{json .Runtimes}}']));
    assert.equal((JSON.parse(info.stdout) as Record<string, { path: string }>).hako?.path, e.hako);
  });

  after(async () => {
    const mine = () =>
      ok(docker(['ps', '-a', '-q', '--no-trunc']))
        .stdout.trim()
        .split('\n')
        .filter((id) => created.has(id));
    for (const id of mine()) docker(['rm', '-f', id], 15_000);
    try {
      await assertNoLeftovers(created, [root], 10_000, true);
    } finally {
      for (const id of mine()) docker(['rm', '-f', id], 15_000);
    }
    assert.deepEqual(hakoList(root), [], `hako --root ${root} list is not empty`);
  });

  test('run --rm on the default bridge: eth0 configured by the prestart hook', async () => {
    const r = ok(
      docker(['run', '--rm', '--runtime', 'hako', image, 'sh', '-c', 'ip -4 -o addr show eth0; echo rc-ok']),
    );
    assert.match(r.stdout, /eth0\s+inet 172\.\d+\.\d+\.\d+\/\d+/, 'the bridge network reached the container');
    assert.match(r.stdout, /rc-ok/);
    const id = lastId();
    const calls = callsFor(id);
    assert.deepEqual(
      calls.map((c) => verbOf(c)[0]),
      ['create', 'start', 'delete', 'delete'],
      calls.map((c) => verbOf(c).join(' ')).join('\n'),
    );
    for (const c of calls) assert.equal(globalFlag(c, '--root'), root);
    await assertNoLeftovers([id], [root]);

    const st = docker(['run', '--rm', '--runtime', 'hako', image, 'sh', '-c', 'exit 9']);
    assert.equal(st.status, 9, explain(st));
    lastId();
  });

  test('--network none: only lo', async () => {
    const r = ok(
      docker(['run', '--rm', '--runtime', 'hako', '--network', 'none', image, 'sh', '-c', 'ls /sys/class/net']),
    );
    assert.deepEqual(r.stdout.trim().split(/\s+/), ['lo']);
    const id = lastId();
    await assertNoLeftovers([id], [root]);
  });

  test('--privileged: the capabilities this host can give, the host devices, a clean output stream', async () => {
    const r = ok(
      docker([
        'run',
        '--rm',
        '--runtime',
        'hako',
        '--privileged',
        '--network',
        'none',
        image,
        'sh',
        '-c',
        PRIVILEGED_PROBE,
      ]),
    );
    const id = lastId();
    assertPrivileged(r);
    await assertNoLeftovers([id], [root]);
  });

  test('run -d, exec, update --memory, stop', async () => {
    const id = runDetached([]);
    // the bundle hako ran holds docker's prestart hook (libnetwork-setkey), and the hook did its work
    const bundle = verbOf(callsFor(id).find((c) => verbOf(c)[0] === 'create')!)[2];
    const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
    assert.ok(
      config.hooks?.prestart?.some((h: { args?: string[] }) => h.args?.includes('libnetwork-setkey')),
      JSON.stringify(config.hooks),
    );
    const ip = inspect(id, '{{.NetworkSettings.IPAddress}}');
    assert.match(ip, /^172\./);
    const ex = ok(docker(['exec', id, 'sh', '-c', 'ip -4 -o addr show eth0; cat /proc/1/cmdline | tr "\\0" " "']));
    assert.ok(ex.stdout.includes(`inet ${ip}/`), ex.stdout);
    assert.match(ex.stdout, /sleep 300/);
    assert.equal(docker(['exec', id, 'sh', '-c', 'exit 6']).status, 6);
    assert.ok(callsFor(id).some((c) => verbOf(c)[0] === 'exec'));

    // update: JSON on stdin (`update --resources - ID`), applied to /docker/<id>
    ok(docker(['update', '--memory', '64m', '--memory-swap', '128m', id]));
    const upd = callsFor(id).filter((c) => verbOf(c)[0] === 'update');
    assert.deepEqual(
      upd.map((c) => verbOf(c).join(' ')),
      [`update --resources - ${id}`],
    );
    assert.equal(upd[0].rc, 0);
    assert.equal(hostCgroupFile('memory', `/docker/${id}`, 'memory.limit_in_bytes'), String(64 << 20));
    const memsw = hostCgroupFile('memory', `/docker/${id}`, 'memory.memsw.limit_in_bytes');
    if (memsw !== undefined) assert.equal(memsw, String(128 << 20));
    const inside = ok(docker(['exec', id, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']));
    assert.equal(inside.stdout.trim(), String(64 << 20));
    assert.equal(inspect(id, '{{.HostConfig.Memory}}'), String(64 << 20));

    // stop: sleep as pid 1 ignores SIGTERM, so docker escalates to SIGKILL after -t
    ok(docker(['stop', '-t', '1', id]));
    assert.equal(inspect(id, '{{.State.Status}}'), 'exited');
    assert.equal(inspect(id, '{{.State.ExitCode}}'), '137');
    const kills = callsFor(id)
      .filter((c) => verbOf(c)[0] === 'kill')
      .map((c) => verbOf(c).slice(1).join(' '));
    assert.deepEqual(kills, [`${id} 15`, `${id} 9`]);
    ok(docker(['rm', id]));
    await assertNoLeftovers([id], [root]);

    // a process that handles SIGTERM stops at once with its own status
    const id2 = runDetached(['--network', 'none'], ['sh', '-c', 'trap "exit 3" TERM; while :; do sleep 0.1; done']);
    const t0 = Date.now();
    ok(docker(['stop', '-t', '10', id2]));
    assert.ok(Date.now() - t0 < 8000, 'TERM reached the container process');
    assert.equal(inspect(id2, '{{.State.ExitCode}}'), '3');
    ok(docker(['rm', id2]));
    await assertNoLeftovers([id2], [root]);
  });

  test('run -t and exec -t get a terminal', async () => {
    const r = withTty(
      DOCKER,
      [
        'run',
        '--rm',
        '-t',
        '--runtime',
        'hako',
        '--network',
        'none',
        image,
        'sh',
        '-c',
        'sleep 0.5; tty; stty size; sleep 0.2',
      ],
      { env, timeout: 20_000 },
    );
    const id = lastId();
    assert.equal(r.status, 0, explain(r));
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(r.stdout, new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), explain(r));
    await assertNoLeftovers([id], [root]);

    const id2 = runDetached(['--network', 'none']);
    const ex = withTty(DOCKER, ['exec', '-t', id2, 'sh', '-c', 'sleep 0.5; tty; stty size; sleep 0.2'], {
      env,
      timeout: 20_000,
    });
    assert.equal(ex.status, 0, explain(ex));
    assert.match(ex.stdout, /\/dev\/pts\/\d+/);
    assert.match(ex.stdout, new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), explain(ex));
    ok(docker(['rm', '-f', id2]));
    await assertNoLeftovers([id2], [root]);
  });

  test("a missing executable: docker shows hako's own message", async () => {
    const r = docker(['run', '--rm', '--runtime', 'hako', '--network', 'none', image, 'no-such-command']);
    assert.equal(r.status, 127, explain(r)); // docker maps "executable file not found" to 127
    assert.match(r.stderr, /OCI runtime create failed: .*executable file not found in \$PATH/, explain(r));
    assert.match(r.stderr, /no-such-command/);
    const id = lastId();
    assert.equal(callsFor(id).find((c) => verbOf(c)[0] === 'create')?.rc, 1);
    await assertNoLeftovers([id], [root]);
  });
});
