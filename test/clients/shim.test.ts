// containerd (1.6 or 1.7) drives hako through hako's own shim, containerd-shim-hako-v2 (runtime
// io.containerd.hako.v2): a containerd of this file's own, with the shim on its PATH, and ctr as the client. Both
// are the first on PATH (CI: Debian's 1.6.20; `PATH=/path/to/containerd-1.7/bin:$PATH` tests another), and the
// suite's title names them. Also the shim's ttrpc socket spoken to directly (Update, bad input), containerd
// restarting mid-run, and one shim serving a group of 20 containers SIGKILLed and cleaned up by containerd, its
// socket and record included. Needs
// `bash scripts/ci-clients.sh` first (the image).
import { after, before, describe, test } from 'node:test';
import * as assert from 'assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  clientsEnv,
  containerdTool,
  explain,
  ok,
  run,
  TTY_SIZE,
  uniq,
  waitFor,
  withTty,
  type RunResult,
} from './helpers';
import { Client, Code, type RpcError } from '../../lib/shim/ttrpc';
import { pidsByArgv } from '../../lib/runtime/proc';
import { NOT_EXITED_MS, TASK_SERVICE } from '../../lib/shim/messages';
import { Fields, Writer, anyWriter, decodeTimestamp } from '../../lib/shim/proto';
import { recordPath } from '../../lib/shim/dead-shim';

const REPO = path.join(__dirname, '..', '..', '..');
const SHIM = path.join(REPO, 'bin', 'containerd-shim-hako-v2');
const NS = 'hako-shim-e2e';
const RUNTIME = 'io.containerd.hako.v2';
const HAKO_ROOT = `/run/containerd/hako/${NS}`;
const IMAGE = 'localhost/busybox:latest';
const CONTAINERD = containerdTool('containerd');
const CTR = containerdTool('ctr');

let dir: string;
let sock: string;
let containerd: ChildProcess | undefined;
const created = new Set<string>();

function ctr(args: string[], timeout = 60_000): RunResult {
  return run('ctr', ['-a', sock, '-n', NS, ...args], { timeout });
}

function ctrLog(): string {
  try {
    return `\n--- containerd log (tail)\n${fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8').split('\n').slice(-25).join('\n')}`;
  } catch {
    return '';
  }
}

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

function runDetached(id: string, args: string[], extra: string[] = []): number {
  created.add(id);
  ok(ctr(['run', '-d', '--runtime', RUNTIME, ...extra, IMAGE, id, ...args]), ctrLog());
  const t = tasks().get(id);
  assert.equal(t?.status, 'RUNNING');
  return t.pid;
}

function remove(id: string): void {
  ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], 15_000);
  ctr(['task', 'delete', '-f', id], 15_000);
  ctr(['container', 'delete', id], 15_000);
}

/** The shim serving a container: its ttrpc address from the bundle, as containerd reads it on restart. */
function shimSocket(id: string): string {
  const address = fs.readFileSync(path.join(dir, 'state', 'io.containerd.runtime.v2.task', NS, id, 'address'), 'utf8');
  assert.match(address, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/, 'runc’s address convention, no newline');
  return address.slice('unix://'.length);
}

function shimPids(): number[] {
  return pidsByArgv(
    (argv) =>
      argv.some((a) => a.endsWith('shim/main.js') || a.endsWith('bin/hako-shim.js')) &&
      argv.includes(NS) &&
      !argv.includes('start') &&
      !argv.includes('delete'),
  );
}

async function startContainerd(): Promise<void> {
  const log = fs.openSync(path.join(dir, 'containerd.log'), 'a');
  containerd = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {
    stdio: ['ignore', log, log],
    detached: true,
    // containerd finds containerd-shim-hako-v2 on its PATH (runtime/v2/shim/util.go BinaryName)
    env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` },
  });
  fs.closeSync(log);
  containerd.unref();
  await waitFor(
    () => fs.existsSync(sock) && run('ctr', ['--connect-timeout', '1s', '-a', sock, 'version']).status === 0,
    30_000,
    'containerd (shim) to answer',
  );
}

async function stopContainerd(): Promise<void> {
  const pid = containerd?.pid;
  containerd = undefined;
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  await waitFor(
    () => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z',
    15_000,
    'containerd (shim) to exit',
  );
}

/** `ctr events` in the background, for the topics the shim published. */
function watchEvents(): { stop: () => Promise<string> } {
  const out = path.join(dir, `events-${Date.now()}.log`);
  const fd = fs.openSync(out, 'w');
  const p = spawn('ctr', ['-a', sock, '-n', NS, 'events'], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  return {
    stop: async () => {
      await new Promise((r) => setTimeout(r, 500));
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
      return fs.readFileSync(out, 'utf8');
    },
  };
}

describe(`containerd ${CONTAINERD.version} (${CONTAINERD.path}) + ctr ${CTR.version} through the hako shim (${RUNTIME})`, () => {
  before(async () => {
    const e = clientsEnv();
    dir = path.join(e.work, 'shim');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
    fs.symlinkSync(SHIM, path.join(dir, 'bin', 'containerd-shim-hako-v2'));
    sock = path.join(dir, 'containerd.sock');
    fs.writeFileSync(
      path.join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${sock}"`,
        '[ttrpc]',
        `  address = "${sock}.ttrpc"`,
        // 20 `delete`s at once after a shim's death each start Node: 5 s (the default) is too short on a loaded
        // machine (seen: 2 cores at load 10), as on a slow board. docs/shim.md says so.
        '[timeouts]',
        '  "io.containerd.timeout.shim.cleanup" = "60s"',
        '[debug]',
        '  level = "debug"',
      ].join('\n') + '\n',
    );
    assert.ok(CONTAINERD.found && CTR.found, `containerd and ctr on PATH: ${CONTAINERD.path}, ${CTR.path}`);
    await startContainerd();
    // The daemon answering is the binary the title names (not, say, the system's on another socket)
    const v = ok(run('ctr', ['-a', sock, 'version'])).stdout;
    assert.equal(/^Server:\s+Version:\s+(\S+)/m.exec(v)?.[1], CONTAINERD.version, v);
    ok(ctr(['image', 'import', e.busyboxArchive]));
  });

  after(async () => {
    try {
      if (containerd) {
        const ids = ok(ctr(['container', 'ls', '-q']))
          .stdout.trim()
          .split('\n')
          .filter(Boolean);
        for (const id of ids) remove(id);
      }
      // Each shim leaves once its last container is deleted (Shutdown).
      await waitFor(() => shimPids().length === 0, 15_000, 'the shims to leave').catch(() => {
        for (const p of shimPids()) process.kill(p, 'SIGKILL');
        assert.fail(`shims left running: ${shimPids().join(' ')}`);
      });
      const left = fs.existsSync(HAKO_ROOT) ? fs.readdirSync(HAKO_ROOT) : [];
      assert.deepEqual(left, [], `state left in ${HAKO_ROOT}`);
      const mounts = fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(`${dir}/`));
      assert.deepEqual(mounts, [], 'rootfs mounts left');
      for (const id of created)
        for (const c of ['memory', 'pids', 'freezer'])
          assert.ok(!fs.existsSync(`/sys/fs/cgroup/${c}/${NS}/${id}`), `cgroup ${c}/${NS}/${id} left`);
    } finally {
      await stopContainerd();
      for (const c of fs.readdirSync('/sys/fs/cgroup'))
        try {
          fs.rmdirSync(`/sys/fs/cgroup/${c}/${NS}`);
        } catch {
          /* not there */
        }
    }
  });

  test('run --rm: stdout, exit codes, events in order', async () => {
    const ev = watchEvents();
    const id = uniq('s-rm');
    created.add(id);
    const r = ok(
      ctr([
        'run',
        '--rm',
        '--runtime',
        RUNTIME,
        IMAGE,
        id,
        'sh',
        '-c',
        'echo hello; echo err >&2; readlink /proc/self/ns/pid',
      ]),
      ctrLog(),
    );
    const [hello, pidns] = r.stdout.trim().split('\n');
    assert.equal(hello, 'hello');
    assert.match(r.stderr, /^err$/m);
    assert.notEqual(pidns, fs.readlinkSync('/proc/self/ns/pid'), 'a new pid namespace');
    const id3 = uniq('s-rc');
    created.add(id3);
    const r3 = ctr(['run', '--rm', '--runtime', RUNTIME, IMAGE, id3, 'sh', '-c', 'exit 3']);
    assert.equal(r3.status, 3, explain(r3, ctrLog()));
    const log = await ev.stop();
    const topics = log
      .split('\n')
      .filter((l) => l.includes(id + ' ') || l.includes(`"${id}"`) || l.includes(id))
      .map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0])
      .filter(Boolean);
    assert.deepEqual(topics, ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete'], log);
  });

  test('run --rm --log-uri: a binary:// logger and a file:// log get the container’s stdout and stderr', () => {
    const out = path.join(dir, 'logger.out');
    const script = path.join(dir, 'logger.sh');
    fs.writeFileSync(
      script,
      [
        '#!/bin/sh',
        'echo "$CONTAINER_NAMESPACE/$CONTAINER_ID" > "$2.id"',
        '/bin/busybox sed "s/^/1 /" <&3 5>&- >> "$2" &',
        '/bin/busybox sed "s/^/2 /" <&4 5>&- >> "$2" &',
        'exec 5>&-',
        'wait',
      ].join('\n') + '\n',
      { mode: 0o755 },
    );
    const id = uniq('s-log');
    created.add(id);
    const args = ['sh', '-c', 'echo hello; echo oops >&2'];
    const r = ctr([
      'run',
      '--rm',
      '--runtime',
      RUNTIME,
      '--log-uri',
      `binary://${script}?out=${out}`,
      IMAGE,
      id,
      ...args,
    ]);
    assert.equal(r.status, 0, explain(r, ctrLog()));
    assert.deepEqual(fs.readFileSync(out, 'utf8').trim().split('\n').sort(), ['1 hello', '2 oops']);
    assert.equal(fs.readFileSync(`${out}.id`, 'utf8'), `${NS}/${id}\n`);
    const log = path.join(dir, 'file-log', 'c.log');
    const id2 = uniq('s-log');
    created.add(id2);
    const r2 = ctr(['run', '--rm', '--runtime', RUNTIME, '--log-uri', `file://${log}`, IMAGE, id2, ...args]);
    assert.equal(r2.status, 0, explain(r2, ctrLog()));
    assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n').sort(), ['hello', 'oops']);
  });

  test('run --rm -t: a terminal of the client’s size, stdin a tty', () => {
    const id = uniq('s-tty');
    created.add(id);
    const r = withTty('ctr', [
      '-a',
      sock,
      '-n',
      NS,
      'run',
      '--rm',
      '-t',
      '--runtime',
      RUNTIME,
      IMAGE,
      id,
      'sh',
      '-c',
      'test -t 0 && echo stdin-is-tty; sleep 0.5; stty size',
    ]);
    assert.equal(r.status, 0, explain(r, ctrLog()));
    assert.match(r.stdout, /stdin-is-tty/);
    assert.match(r.stdout, new RegExp(`^${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), explain(r));
  });

  test('stdin reaches the process, and the client closing it ends it', () => {
    const id = uniq('s-stdin');
    created.add(id);
    const r = run(
      'ctr',
      ['-a', sock, '-n', NS, 'run', '--rm', '--runtime', RUNTIME, IMAGE, id, 'sh', '-c', 'cat; echo done'],
      { input: 'line one\nline two\n', timeout: 30_000 },
    );
    assert.equal(r.status, 0, explain(r, ctrLog()));
    assert.equal(r.stdout, 'line one\nline two\ndone\n');
  });

  test('exec (exit code, stdout, -t), ps, kill, pause/resume, metrics', async () => {
    const ev = watchEvents();
    const id = uniq('s-ops');
    const pid = runDetached(id, ['sleep', '300']);
    const ex = ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo from-exec; exit 5']);
    assert.equal(ex.status, 5, explain(ex, ctrLog()));
    assert.equal(ex.stdout, 'from-exec\n');
    const ext = withTty('ctr', [
      '-a',
      sock,
      '-n',
      NS,
      'task',
      'exec',
      '-t',
      '--exec-id',
      'e2',
      id,
      'sh',
      '-c',
      'sleep 0.5; stty size',
    ]);
    assert.equal(ext.status, 0, explain(ext, ctrLog()));
    // (ctr -t sends a NUL first, which the pty echoes as ^@: runc's shim shows the same)
    assert.match(ext.stdout, new RegExp(`^(\\^@)?${TTY_SIZE.rows} ${TTY_SIZE.cols}\\r?$`, 'm'), explain(ext));

    // ps: the init, and an exec running beside it (labelled with its exec id)
    const bg = spawn('ctr', ['-a', sock, '-n', NS, 'task', 'exec', '--exec-id', 'e3', id, 'sleep', '30'], {
      stdio: 'ignore',
    });
    // listened for now: the waits below block the event loop, and the exit may come during one of them
    const bgExited = new Promise<number | null>((r) => bg.once('exit', (c) => r(c)));
    const ps = await waitFor(
      () => {
        const r = ctr(['task', 'ps', id]);
        return r.status === 0 && r.stdout.includes('e3') ? r.stdout : undefined;
      },
      15_000,
      'the exec in ctr task ps',
    );
    assert.match(ps, new RegExp(`^${pid}\\s+-`, 'm'), ps);
    // ctr prints the exec's ProcessDetails as Go's struct (1.6: `&ProcessDetails{ExecID:e3,}`) or as protobuf
    // text (1.7: `exec_id:"e3"`)
    const execPid = Number(/^(\d+)\s+.*(?:ExecID:e3\b|exec_id:"e3")/m.exec(ps)?.[1]);
    assert.ok(execPid > 0 && fs.readFileSync(`/proc/${execPid}/cmdline`, 'utf8').startsWith('sleep'), ps);

    ok(ctr(['task', 'pause', id]));
    assert.equal(tasks().get(id)?.status, 'PAUSED');
    assert.equal(fs.readFileSync(`/sys/fs/cgroup/freezer/${NS}/${id}/freezer.state`, 'utf8').trim(), 'FROZEN');
    ok(ctr(['task', 'resume', id]));
    assert.equal(tasks().get(id)?.status, 'RUNNING');
    assert.equal(fs.readFileSync(`/sys/fs/cgroup/freezer/${NS}/${id}/freezer.state`, 'utf8').trim(), 'THAWED');

    const m = ok(ctr(['task', 'metrics', id])).stdout;
    assert.match(m, /pids\.current\s+2\b/, m);
    const usage = Number(/memory\.usage_in_bytes\s+(\d+)/.exec(m)?.[1]);
    assert.ok(usage > 0, m);
    assert.equal(String(usage), '' + usage);
    // containerd's own decoding of the v1 message (its Go types, as JSON): a field only the full message carries.
    const j = JSON.parse(ok(ctr(['task', 'metrics', '--format', 'json', id])).stdout) as {
      memory_oom_control?: object;
      pids?: { current?: number };
    };
    assert.equal(j.pids?.current, 2, 'pids.current in containerd’s JSON');
    assert.equal(typeof j.memory_oom_control, 'object', 'memory_oom_control decoded by containerd');

    // The init's exit kills its execs (as runc's shim): the exec's ctr returns.
    ok(ctr(['task', 'kill', '-s', 'SIGKILL', id]));
    await waitFor(() => tasks().get(id)?.status === 'STOPPED', 10_000, 'STOPPED after SIGKILL');
    const bgExit = await bgExited;
    assert.equal(bgExit, 137, 'the exec was SIGKILLed with its init');
    assert.ok(
      !fs.existsSync(`/proc/${execPid}`) || fs.readFileSync(`/proc/${execPid}/stat`, 'utf8').split(' ')[2] === 'Z',
    );
    // A second kill of the stopped task is NotFound, which ctr reports
    const again = ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /not found/, explain(again));
    remove(id);
    const log = await ev.stop();
    for (const t of [
      '/tasks/exec-added',
      '/tasks/exec-started',
      '/tasks/paused',
      '/tasks/resumed',
      '/tasks/exit',
      '/tasks/delete',
    ])
      assert.ok(log.includes(t), `${t} in\n${log}`);
  });

  test('a container over its memory limit: TaskOOM, and the exit of the killed process', async () => {
    const ev = watchEvents();
    const id = uniq('s-oom');
    created.add(id);
    // A shell variable of 64 MB under a 16 MB limit (this host has no swap to escape into).
    const r = ctr([
      'run',
      '--rm',
      '--memory-limit',
      String(16 << 20),
      '--runtime',
      RUNTIME,
      IMAGE,
      id,
      'sh',
      '-c',
      'x=$(busybox head -c 67108864 /dev/zero | busybox tr "\\0" a); echo survived',
    ]);
    assert.equal(r.status, 137, explain(r, ctrLog()));
    assert.doesNotMatch(r.stdout, /survived/);
    const log = await ev.stop();
    assert.match(log, new RegExp(`/tasks/oom.*${id}`), log);
  });

  test('the shim’s socket directly: Update, Connect, bad input gets gRPC statuses and the shim survives', async () => {
    const id = uniq('s-rpc');
    const pid = runDetached(id, ['sleep', '300']);
    const client = await Client.connect(shimSocket(id));
    const md = { metadata: { 'containerd-namespace-ttrpc': NS } };
    const call = (method: string, payload: Buffer) => client.call(TASK_SERVICE, method, payload, md);
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 0,
        (e: RpcError) => e.code,
      );
    try {
      // Update: resources as runtime-spec JSON in an Any, as containerd sends them
      const res = anyWriter({
        typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
        value: Buffer.from(JSON.stringify({ memory: { limit: 67108864 } })),
      });
      await call('Update', new Writer().string(1, id).message(2, res).finish());
      assert.equal(
        fs.readFileSync(`/sys/fs/cgroup/memory/${NS}/${id}/memory.limit_in_bytes`, 'utf8').trim(),
        '67108864',
      );
      const conn = new Fields(await call('Connect', new Writer().string(1, id).finish()));
      assert.equal(conn.uint(2), pid, 'Connect: the task pid');
      assert.ok(shimPids().includes(conn.uint(1)), 'Connect: the shim pid');

      assert.equal(await code(call('State', new Writer().string(1, 'no-such-container').finish())), Code.NotFound);
      assert.equal(
        await code(call('Kill', new Writer().string(1, 'no-such-container').uint(3, 9).finish())),
        Code.NotFound,
      );
      assert.equal(await code(call('Frobnicate', Buffer.alloc(0))), Code.Unimplemented);
      assert.equal(await code(client.call('containerd.task.v3.Nope', 'State', Buffer.alloc(0))), Code.Unimplemented);
      assert.equal(await code(call('Checkpoint', new Writer().string(1, id).finish())), Code.Unimplemented);
      assert.equal(
        await code(call('State', Buffer.from([0x0a, 0x7f, 0x01]))),
        Code.InvalidArgument,
        'a truncated message',
      );
      assert.equal(
        await code(
          call(
            'Update',
            new Writer()
              .string(1, id)
              .message(2, anyWriter({ typeUrl: 'x', value: Buffer.from('{not json') }))
              .finish(),
          ),
        ),
        Code.InvalidArgument,
      );
      assert.equal(
        await code(
          call(
            'Update',
            new Writer()
              .string(1, id)
              .message(2, anyWriter({ typeUrl: 'x', value: Buffer.from('{"memory":{"limit":"lots"}}') }))
              .finish(),
          ),
        ),
        Code.InvalidArgument,
      );
      // A bundle containerd cannot have made, and an id containerd would not send: refused, nothing left behind
      const bogus = path.join(dir, 'not-a-bundle');
      fs.mkdirSync(bogus, { recursive: true });
      assert.equal(
        await code(call('Create', new Writer().string(1, 'bogus').string(2, bogus).finish())),
        Code.InvalidArgument,
      );
      assert.equal(
        await code(call('Create', new Writer().string(1, '../x').string(2, `/x/${NS}/../x`).finish())),
        Code.InvalidArgument,
      );
      assert.equal(
        await code(
          call(
            'Create',
            new Writer()
              .string(1, id)
              .string(2, path.join(dir, 'state', 'io.containerd.runtime.v2.task', NS, id))
              .finish(),
          ),
        ),
        Code.AlreadyExists,
      );
      assert.ok(!fs.existsSync(path.join(HAKO_ROOT, 'bogus')));
      // Another user reaching the socket is not served: the shim closes the connection unanswered, as
      // containerd's shims do for a peer whose uid/gid is not their own. The socket's directories are root's
      // alone, so the stranger gets a hard link to it (same inode, same tmpfs) in an open directory, mode 0666.
      const shimSock = shimSocket(id);
      const open = fs.mkdtempSync('/run/hako-shim-peer-');
      const link = path.join(open, 'sock');
      fs.chmodSync(open, 0o755);
      fs.linkSync(shimSock, link);
      fs.chmodSync(link, 0o666);
      try {
        const stranger = spawnSync(
          process.execPath,
          [
            '-e',
            `const net = require('net'); const { encodeFrame, encodeRequest } = require(${JSON.stringify(
              path.join(REPO, 'dist', 'lib', 'shim', 'ttrpc.js'),
            )});
            const c = net.createConnection(${JSON.stringify(link)});
            let got = 0;
            c.on('connect', () => c.write(encodeFrame({ streamId: 1, type: 1, flags: 0,
              payload: encodeRequest({ service: ${JSON.stringify(TASK_SERVICE)}, method: 'State',
                payload: Buffer.from([0x0a, 1, 0x78]), timeoutNano: 0n, metadata: {} }) })));
            c.on('data', (d) => (got += d.length));
            c.on('error', (e) => { console.log('error ' + got); process.exit(0); });
            c.on('close', () => { console.log('closed ' + got); process.exit(0); });
            setTimeout(() => { console.log('open ' + got); process.exit(0); }, 5000);`,
          ],
          { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 20_000 },
        );
        // Closed with nothing read back (EPIPE or ECONNRESET when the close beats the request's write).
        assert.match(
          stranger.stdout.trim(),
          /^(closed|error) 0$/,
          `uid 65534 on the shim's socket: ${stranger.stderr}`,
        );
      } finally {
        fs.chmodSync(link, 0o600);
        fs.rmSync(open, { recursive: true, force: true });
      }
      // The shim still serves, and the container is untouched
      const st = new Fields(await call('State', new Writer().string(1, id).finish()));
      assert.equal(st.uint(3), pid);
      assert.equal(st.uint(4), 2 /* RUNNING */);
      // exited_at of a running process is Go's zero time, as runc's shim sends it (absent reads as 1970 on 1.7)
      assert.equal(decodeTimestamp(st.bytes(10)), NOT_EXITED_MS);
      assert.equal(new Date(NOT_EXITED_MS).toISOString(), '0001-01-01T00:00:00.000Z');
      assert.equal(tasks().get(id)?.status, 'RUNNING');
    } finally {
      client.close();
      remove(id);
    }
  });

  test('runtime options: ConfigPath naming group = "namespace" puts unrelated containers in one shim', () => {
    const conf = path.join(dir, 'shim-ns.toml');
    fs.writeFileSync(conf, 'group = "namespace"\n');
    const before = new Set(shimPids());
    // ctr sends runtimeoptions.v1.Options {ConfigPath} on start's stdin, as the CRI plugin does with an options table
    const ids = [uniq('s-nsg'), uniq('s-nsg')];
    for (const id of ids) runDetached(id, ['sleep', '300'], ['--runtime-config-path', conf]);
    assert.equal(new Set(ids.map(shimSocket)).size, 1, 'one socket for the namespace');
    assert.equal(shimPids().filter((p) => !before.has(p)).length, 1, 'one new shim process');
    const bad = path.join(dir, 'shim-bad.toml');
    fs.writeFileSync(bad, 'group = "galaxy"\n');
    const id3 = uniq('s-nsg-bad');
    created.add(id3);
    const r = ctr(['run', '-d', '--runtime', RUNTIME, '--runtime-config-path', bad, IMAGE, id3, 'sleep', '300']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /group = "galaxy": expected "pod" or "namespace"/, explain(r));
    for (const id of [...ids, id3]) remove(id);
  });

  test('containerd restarts while containers run: it finds them through the shim again', async () => {
    const id = uniq('s-restart');
    const pid = runDetached(id, ['sleep', '300']);
    await stopContainerd();
    assert.ok(fs.existsSync(`/proc/${pid}`), 'the container outlives containerd');
    await startContainerd();
    const t = await waitFor(() => tasks().get(id), 15_000, 'the task after the restart');
    assert.deepEqual(t, { pid, status: 'RUNNING' });
    const ex = ctr(['task', 'exec', '--exec-id', 'after', id, 'echo', 'after-restart']);
    assert.equal(ex.status, 0, explain(ex, ctrLog()));
    assert.equal(ex.stdout, 'after-restart\n');
    remove(id);
    assert.equal(tasks().get(id), undefined);
  });

  test('one shim serves a group of 20 containers; SIGKILLed, containerd cleans every one up', async () => {
    const group = uniq('grp');
    const ids = Array.from({ length: 20 }, (_, i) => `${group}-${i}`);
    const before = new Set(shimPids());
    const t0 = Date.now();
    for (const id of ids) runDetached(id, ['sleep', '300'], ['--annotation', `io.containerd.runc.v2.group=${group}`]);
    const perContainer = (Date.now() - t0) / ids.length;
    const sockets = new Set(ids.map(shimSocket));
    assert.equal(sockets.size, 1, 'one socket for the group');
    const shims = shimPids().filter((p) => !before.has(p));
    assert.equal(shims.length, 1, `one shim process: ${shims.join(' ')}`);
    const pids = ids.map((id) => tasks().get(id)!.pid);
    process.kill(shims[0], 'SIGKILL');
    // containerd sees the connection close and runs `containerd-shim-hako-v2 delete` per container.
    await waitFor(() => ids.every((id) => !tasks().has(id)), 60_000, 'containerd to clean the tasks up');
    await waitFor(() => pids.every((p) => !fs.existsSync(`/proc/${p}`)), 15_000, 'the containers to be gone');
    for (const id of ids) {
      assert.ok(!fs.existsSync(path.join(HAKO_ROOT, id)), `hako state of ${id}`);
      ctr(['container', 'delete', id]);
    }
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(`${dir}/`));
    assert.deepEqual(mounts, []);
    // The delete of the group's last container removed the dead shim's socket and record (lib/shim/dead-shim.ts).
    const [sock] = sockets;
    await waitFor(
      () => !fs.existsSync(sock) && !fs.existsSync(recordPath(sock)),
      10_000,
      `the dead shim's socket ${sock} and record ${recordPath(sock)} to be removed`,
    );
    // A new container of the group gets a new shim on the dead one's address.
    const id = `${group}-new`;
    runDetached(id, ['sleep', '300'], ['--annotation', `io.containerd.runc.v2.group=${group}`]);
    assert.deepEqual(new Set([shimSocket(id)]), sockets);
    remove(id);
    void perContainer;
  });
});
