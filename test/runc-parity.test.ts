// Behaviours a caller of runc notices, checked side by side: the same bundle run by hako and by runc (when
// installed), and the observable results compared (issue 18).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUSYBOX, disposeRoot, hako, makeBundle, testRoot, tmpDir, uniqueId } from './helpers/env';

const RUNC = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].find((p) => fs.existsSync(p));
const root = testRoot('parity');
const runcRoot = path.join('/run', `runc-test-parity-${process.pid}`);
const work = tmpDir('parity');

/** runc with its state under runcRoot; stdio through files, as hako() does. */
function runc(args: string[], opts: { timeout?: number } = {}): SpawnSyncReturns<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runc-cli-'));
  const out = fs.openSync(path.join(dir, 'out'), 'w+');
  const err = fs.openSync(path.join(dir, 'err'), 'w+');
  try {
    const r = spawnSync(RUNC!, ['--root', runcRoot, ...args], {
      encoding: 'utf8',
      timeout: opts.timeout ?? 30_000,
      stdio: ['ignore', out, err],
    });
    r.stdout = fs.readFileSync(path.join(dir, 'out'), 'utf8');
    r.stderr = fs.readFileSync(path.join(dir, 'err'), 'utf8');
    return r;
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type Cli = (args: string[]) => SpawnSyncReturns<string>;
interface Side {
  name: 'hako' | 'runc';
  cli: Cli;
}
const sides = (): Side[] => [
  { name: 'hako', cli: (a) => hako(root, a) },
  ...(RUNC ? [{ name: 'runc' as const, cli: runc }] : []),
];

after(async () => {
  if (RUNC) {
    for (const c of (JSON.parse(runc(['list', '--format', 'json']).stdout || 'null') ?? []) as { id: string }[])
      runc(['delete', '--force', c.id]);
    fs.rmSync(runcRoot, { recursive: true, force: true });
  }
  await disposeRoot(root);
  fs.rmSync(work, { recursive: true, force: true });
});

describe('seccomp: two conditions on one argument', () => {
  test("process_vm_readv matching either condition returns the profile's errno, as under runc", () => {
    const b = makeBundle(['/bin/probe', 'syscall', 'raw', '310', '2', '0', '0', '0', '0', '0'], (s) => {
      s.linux!.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          {
            names: ['process_vm_readv'],
            action: 'SCMP_ACT_ERRNO',
            errnoRet: 99,
            args: [
              { index: 0, op: 'SCMP_CMP_EQ', value: 1 },
              { index: 0, op: 'SCMP_CMP_EQ', value: 2 },
            ],
          },
        ],
      };
    });
    for (const { name, cli } of sides()) {
      const r = cli(['run', '--bundle', b.dir, uniqueId(name)]);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).errno, 99, `${name}: ${r.stdout}`);
    }
  });
});

describe('exec, kill and the log file on a running container', () => {
  const b = makeBundle(['/bin/probe', 'sleep', 'inf']);
  const running: { side: Side; id: string }[] = [];
  before(() => {
    for (const side of sides()) {
      const id = uniqueId(side.name);
      const r = side.cli(['run', '--detach', '--bundle', b.dir, id]);
      assert.equal(r.status, 0, `${side.name}: ${r.stderr}`);
      running.push({ side, id });
    }
  });
  after(() => {
    for (const { side, id } of running) side.cli(['delete', '--force', id]);
  });

  test('a failing exec exits 255: bad --pid-file directory, missing binary, unknown or paused container', () => {
    for (const { side, id } of running) {
      const pidFile = path.join(work, 'no-such-dir', `${side.name}.pid`);
      let r = side.cli(['exec', '--detach', '--pid-file', pidFile, id, '/bin/probe', 'sleep', 'inf']);
      assert.equal(r.status, 255, `${side.name} pid-file: ${r.stderr}`);
      if (side.name === 'hako') {
        assert.match(r.stderr, /--pid-file: cannot write .*no-such-dir.*: no such file or directory/);
        assert.doesNotMatch(r.stderr, /ENOENT|\.tmp/, 'not a raw Node error');
      }
      r = side.cli(['exec', id, '/bin/no-such-binary']);
      assert.equal(r.status, 255, `${side.name} missing binary: ${r.stderr}`);
      r = side.cli(['exec', `${id}-unknown`, '/bin/probe', 'exit', '0']);
      assert.equal(r.status, 255, `${side.name} unknown container: ${r.stderr}`);
      assert.equal(side.cli(['pause', id]).status, 0);
      r = side.cli(['exec', id, '/bin/probe', 'exit', '0']);
      assert.equal(side.cli(['resume', id]).status, 0);
      assert.equal(r.status, 255, `${side.name} paused: ${r.stderr}`);
      // The exec'd process's own status is still passed through.
      assert.equal(side.cli(['exec', id, '/bin/probe', 'exit', '3']).status, 3, side.name);
    }
    // Nothing was left running by the refused pid file (runc kills what it started; hako starts nothing).
    const hakoSide = running.find((x) => x.side.name === 'hako')!;
    const ps = JSON.parse(hako(root, ['ps', '--format', 'json', hakoSide.id]).stdout) as number[];
    assert.equal(ps.length, 1, `only the init: ${ps.join(',')}`);
  });

  test('exec -p with a process that has no user runs it as 0:0, as runc defaults it', () => {
    const file = path.join(work, 'nouser.json');
    fs.writeFileSync(file, JSON.stringify({ args: ['/bin/probe', 'json'], cwd: '/' }));
    for (const { side, id } of running) {
      const r = side.cli(['exec', '-p', file, id]);
      assert.equal(r.status, 0, `${side.name}: ${r.stderr}`);
      const j = JSON.parse(r.stdout);
      assert.deepEqual([j.uid, j.gid], [0, 0], side.name);
    }
  });

  test(
    'exec --cgroup joins an existing sub-cgroup (runc 1.1); a missing or escaping one fails with 255',
    { skip: !fs.existsSync('/sys/fs/cgroup/memory') && 'no v1 memory hierarchy' },
    () => {
      for (const { side, id } of running) {
        const pid = JSON.parse(side.cli(['state', id]).stdout).pid as number;
        const line = fs
          .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
          .split('\n')
          .find((l) => /^\d+:memory:/.test(l))!;
        const sub = path.join('/sys/fs/cgroup/memory', line.split(':')[2], 'sub');
        fs.mkdirSync(sub, { recursive: true });
        try {
          const r = side.cli(['exec', '--cgroup', 'memory:sub', id, '/bin/probe', 'cat', '/proc/self/cgroup']);
          assert.equal(r.status, 0, `${side.name}: ${r.stderr}`);
          const mem = r.stdout.split('\n').find((l) => /^\d+:memory:/.test(l));
          assert.equal(mem?.split(':')[2], '/sub', `${side.name}: ${r.stdout}`);
          const pids = r.stdout.split('\n').find((l) => /^\d+:pids:/.test(l));
          if (pids) assert.equal(pids.split(':')[2], '/', `${side.name}: other controllers stay`);
          assert.equal(
            side.cli(['exec', '--cgroup', 'memory:missing', id, '/bin/probe', 'exit', '0']).status,
            255,
            side.name,
          );
          assert.equal(side.cli(['exec', '--cgroup', '../up', id, '/bin/probe', 'exit', '0']).status, 255, side.name);
          assert.equal(side.cli(['exec', '--cgroup', 'a:b:c', id, '/bin/probe', 'exit', '0']).status, 255, side.name);
        } finally {
          for (let i = 0; i < 50 && fs.existsSync(sub); i++) {
            try {
              fs.rmdirSync(sub);
            } catch {
              spawnSync('sleep', ['0.1']);
            }
          }
        }
      }
    },
  );

  test('kill ID 0 succeeds on a running container (liveness probe) and fails on a stopped one', () => {
    for (const { side, id } of running) assert.equal(side.cli(['kill', id, '0']).status, 0, side.name);
    const stopped = makeBundle(['/bin/probe', 'exit', '0']);
    for (const { name, cli } of sides()) {
      const id = uniqueId(`${name}-stopped`);
      assert.equal(cli(['create', '--bundle', stopped.dir, id]).status, 0);
      assert.equal(cli(['start', id]).status, 0);
      for (let i = 0; i < 50 && JSON.parse(cli(['state', id]).stdout).status !== 'stopped'; i++)
        spawnSync('sleep', ['0.1']);
      const r = cli(['kill', id, '0']);
      assert.notEqual(r.status, 0, name);
      assert.match(r.stderr, /container not running/, name);
      cli(['delete', '--force', id]);
    }
  });

  test('--log FILE exists after any command; with --debug, exec and kill write to it', () => {
    for (const { side, id } of running) {
      const plain = path.join(work, `${side.name}-plain.log`);
      assert.equal(side.cli(['--log', plain, 'kill', id, '0']).status, 0);
      assert.ok(fs.existsSync(plain), `${side.name}: the log file is made even with nothing to log`);
      const execLog = path.join(work, `${side.name}-exec.log`);
      assert.equal(side.cli(['--debug', '--log', execLog, 'exec', id, '/bin/probe', 'exit', '0']).status, 0);
      assert.ok(fs.statSync(execLog).size > 0, `${side.name}: exec --debug logs`);
      const killLog = path.join(work, `${side.name}-kill.log`);
      assert.equal(side.cli(['--debug', '--log', killLog, 'kill', id, '0']).status, 0);
      if (side.name === 'hako') assert.match(fs.readFileSync(killLog, 'utf8'), /level=debug msg="kill: signal 0/);
    }
  });
});

describe('hooks', { skip: !BUSYBOX && 'busybox-static is not installed' }, () => {
  test('createContainer hooks start in the rootfs; a startContainer hook making a call the filter kills is killed', () => {
    const b = makeBundle(
      ['/bin/probe', 'exit', '0'],
      (s) => {
        s.linux!.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_KILL_PROCESS' }],
        };
        s.hooks = {
          // The state on stdin names the container: one output file per runtime.
          createContainer: [
            { path: '/bin/sh', args: ['sh', '-c', `pwd > ${work}/cc-$(sed -e 's/.*"id":"\\([^"]*\\)".*/\\1/')`] },
          ],
          startContainer: [{ path: '/bin/busybox', args: ['busybox', 'mkdir', '/tmp/made-by-hook'] }],
        };
      },
      { busybox: true },
    );
    for (const { name, cli } of sides()) {
      const id = uniqueId(`${name}-hooks`);
      const r = cli(['run', '--bundle', b.dir, id]);
      cli(['delete', '--force', id]);
      assert.notEqual(r.status, 0, `${name}: the start must fail`);
      assert.match(
        r.stderr,
        name === 'hako' ? /startContainer\[0\].*signal 31/ : /bad system call/,
        `${name}: ${r.stderr}`,
      );
      assert.ok(!fs.existsSync(path.join(b.rootfs, 'tmp', 'made-by-hook')), name);
      assert.equal(fs.readFileSync(path.join(work, `cc-${id}`), 'utf8').trim(), b.rootfs, name);
    }
  });
});

describe('smaller points', () => {
  test('list --format json orders the keys as runc does (pid before status)', () => {
    const b = makeBundle(['/bin/probe', 'sleep', 'inf']);
    const keys: Record<string, string[]> = {};
    for (const { name, cli } of sides()) {
      const id = uniqueId(`${name}-list`);
      assert.equal(cli(['run', '--detach', '--bundle', b.dir, id]).status, 0);
      try {
        const rows = JSON.parse(cli(['list', '--format', 'json']).stdout) as Record<string, unknown>[];
        keys[name] = Object.keys(rows.find((r) => r.id === id)!);
      } finally {
        cli(['delete', '--force', id]);
      }
    }
    assert.deepEqual(keys.hako, ['ociVersion', 'id', 'pid', 'status', 'bundle', 'rootfs', 'created', 'owner']);
    if (keys.runc) assert.deepEqual(keys.hako, keys.runc);
  });

  test('joining a cgroup that already has processes warns', () => {
    const cg = `/hako-parity-busy-${process.pid}`;
    const b = makeBundle(['/bin/probe', 'sleep', 'inf'], (s) => (s.linux!.cgroupsPath = cg));
    const first = uniqueId('busy');
    const second = uniqueId('busy');
    try {
      assert.equal(hako(root, ['run', '--detach', '--bundle', b.dir, first]).status, 0);
      const r = hako(root, ['run', '--detach', '--bundle', b.dir, second]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /warning: container's cgroup is not empty: 1 process\(es\) found/);
    } finally {
      hako(root, ['delete', '--force', second]);
      hako(root, ['delete', '--force', first]);
    }
  });

  test('a config listing the cgroup namespace twice is refused at create by both; delete --force then exits 0', () => {
    const b = makeBundle(['/bin/probe', 'exit', '0'], (s) =>
      s.linux!.namespaces!.push({ type: 'cgroup' }, { type: 'cgroup' }),
    );
    for (const { name, cli } of sides()) {
      const id = uniqueId(`${name}-dupns`);
      const r = cli(['create', '--bundle', b.dir, id]);
      assert.notEqual(r.status, 0, name);
      assert.match(r.stderr, /dup/, `${name}: ${r.stderr}`);
      assert.equal(cli(['delete', '--force', id]).status, 0, name);
    }
  });
});

// A real terminal for the CLI: Python's pty.fork gives it a pty as its controlling terminal (size set before
// the CLI starts); the driver answers "ready" lines by resizing the pty and then typing "go".
const PTY_DRIVER = String.raw`
import fcntl, json, os, pty, struct, sys, termios, time
req = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 91, 0, 0))
    os.execvp('sh', ['sh', '-c', req['cmd']])
out = b''
answered = False
deadline = time.time() + 30
while time.time() < deadline:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if not answered and b'ready' in out:
        answered = True
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 44, 101, 0, 0))
        time.sleep(0.5)
        os.write(fd, b'go\r')
_, status = os.waitpid(pid, 0)
sys.stdout.write(json.dumps({'out': out.decode('utf8', 'replace'), 'status': status}))
`;

function underPty(cmd: string): string {
  const r = spawnSync('python3', ['-c', PTY_DRIVER, JSON.stringify({ cmd })], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { out: string }).out;
}

const noPty = ((): string | false => {
  if (!BUSYBOX) return 'busybox-static is not installed';
  const r = spawnSync('python3', ['-c', 'import pty, termios']);
  return r.status === 0 ? false : 'python3 with pty is not available';
})();

describe('a terminal without --console-socket: hako relays the pty to its own terminal', { skip: noPty }, () => {
  const hakoCmd = `${process.execPath} ${path.join(__dirname, '..', '..', 'bin', 'hako')} --root ${root}`;
  const runcCmd = RUNC ? `${RUNC} --root ${runcRoot}` : undefined;
  const cmds = (): [string, string][] => [
    ['hako', hakoCmd],
    ...(runcCmd ? [['runc', runcCmd] as [string, string]] : []),
  ];
  // What the container prints: its tty, its size, then (after "ready" and a resize) the new size; status 7.
  const script = 'tty; stty size; echo ready; read x; echo "got $x"; stty size; exit 7';

  test("run: a pty of the container's own, sized from the caller's terminal, resized on SIGWINCH, raw mode restored, status kept", () => {
    const b = makeBundle(['/bin/sh', '-c', script], (s) => (s.process!.terminal = true), { busybox: true });
    const outs: Record<string, string> = {};
    for (const [name, cli] of cmds()) {
      const id = uniqueId(`${name}-tty`);
      const out = underPty(
        `${cli} run --bundle ${b.dir} ${id}; echo STATUS=$?; stty -a | grep -o -- '-\\?opost'; ${cli} delete --force ${id} 2>/dev/null`,
      );
      outs[name] = out;
      const lines = out.split(/\r?\n/).map((l) => l.replace(/[\r\0]/g, ''));
      assert.match(lines[0], /^\/dev\/pts\/\d+$/, `${name}: ${out}`);
      assert.equal(lines[1], '33 91', `${name}: initial size`);
      assert.ok(lines.includes('got go'), `${name}: input reaches the container: ${out}`);
      assert.ok(lines.includes('44 101'), `${name}: resized: ${out}`);
      assert.ok(lines.includes('STATUS=7'), `${name}: status: ${out}`);
      assert.ok(lines.includes('opost'), `${name}: the caller's terminal is restored: ${out}`);
      assert.ok(!out.includes('\r\r\n'), `${name}: output not processed twice: ${JSON.stringify(out)}`);
    }
  });

  test('exec -t: the same, for a process in a running container', () => {
    const b = makeBundle(['/bin/sleep', '1000'], undefined, { busybox: true });
    const id = uniqueId('tty-exec');
    assert.equal(hako(root, ['run', '--detach', '--bundle', b.dir, id]).status, 0);
    try {
      const out = underPty(`${hakoCmd} exec -t ${id} sh -c '${script}'; echo STATUS=$?`);
      const lines = out.split(/\r?\n/).map((l) => l.replace(/[\r\0]/g, ''));
      assert.match(lines[0], /^\/dev\/pts\/\d+$/, out);
      assert.equal(lines[1], '33 91', out);
      assert.ok(lines.includes('got go') && lines.includes('44 101') && lines.includes('STATUS=7'), out);
    } finally {
      hako(root, ['delete', '--force', id]);
    }
  });

  test('exec -t from pipes (no terminal of its own) still gets a pty and its status', () => {
    const b = makeBundle(['/bin/sleep', '1000'], undefined, { busybox: true });
    const id = uniqueId('tty-pipe');
    assert.equal(hako(root, ['run', '--detach', '--bundle', b.dir, id]).status, 0);
    try {
      const r = hako(root, ['exec', '-t', id, 'sh', '-c', 'tty; exit 4']);
      assert.equal(r.status, 4, r.stderr);
      assert.match(r.stdout, /^\/dev\/pts\/\d+\r?\n/);
    } finally {
      hako(root, ['delete', '--force', id]);
    }
  });
});

describe('user namespaces', () => {
  test('a bind source the mapped root cannot reach works: the runtime opens it before the user namespace', () => {
    const secret = fs.mkdtempSync(path.join(work, 'secret-'));
    fs.chmodSync(work, 0o755);
    fs.chmodSync(secret, 0o700); // host root only: uid 100000 cannot search it
    fs.mkdirSync(path.join(secret, 'data'));
    fs.writeFileSync(path.join(secret, 'data', 'f'), 'through the fd');
    const b = makeBundle(['/bin/probe', 'cat', '/mnt/f'], (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.mounts!.push({
        destination: '/mnt',
        type: 'bind',
        source: path.join(secret, 'data'),
        options: ['rbind', 'ro'],
      });
    });
    fs.mkdirSync(path.join(b.rootfs, 'mnt')); // the mapped root may not create it in a rootfs of host root's
    for (const { name, cli } of sides()) {
      const r = cli(['run', '--bundle', b.dir, uniqueId(`${name}-userns`)]);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stdout, 'through the fd', name);
    }
  });
});
