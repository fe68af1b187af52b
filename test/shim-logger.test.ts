// The shim's `binary://` loggers and `file://` logs (lib/shim/logger.ts, stdio.ts, stdio-uri.ts), driven as
// containerd drives them: the shim started with `start` from a bundle, then Create/Start/Wait/Delete over its ttrpc
// socket, with real containers. The logger is a shell script this file writes: it gets the container's stdout on
// fd 3 and stderr on fd 4, only CONTAINER_ID and CONTAINER_NAMESPACE in its environment, the URI's query as
// arguments, and closes fd 5 when ready. Failing loggers (missing, exiting, never ready) and bad URIs fail Create
// with the URI in the message, and leave no container, state, mount, process or fd behind.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Writer } from '../lib/shim/proto';
import type { Spec } from '../lib/oci/types';
import type { RpcError } from '../lib/shim/ttrpc';
import { isMountPoint } from '../lib/shim/rootfs';
import { BUSYBOX, tmpDir } from './helpers/env';
import { childrenOf, ShimEnv, TaskClient, waitGone } from './helpers/shim';

const NS = `hako-logger-${process.pid}`;
const root = process.getuid?.() === 0;

let env: ShimEnv;
let base: string;
let client: TaskClient;
let shimPid = 0;
let n = 0;

function call(method: string, payload: Writer): Promise<Buffer> {
  return client.call(method, payload);
}

function runToExit(id: string, stdout: string, args: string[]): Promise<number> {
  env.bundle(id, args);
  return client.runToExit(id, env.createRequest(id, stdout));
}

function shimFds(): string[] {
  return fs
    .readdirSync(`/proc/${shimPid}/fd`)
    .map((fd) => {
      try {
        return `${fd} -> ${fs.readlinkSync(`/proc/${shimPid}/fd/${fd}`)}`;
      } catch {
        return '';
      }
    })
    .filter((l) => l && !l.includes('socket:')) // the test's own ttrpc connection comes and goes
    .sort();
}

function logger(name: string, body: string): string {
  const p = path.join(base, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

/** Create fails naming the URI; the shim is left as it was: no state, mount, child process or new fd. */
async function createFails(stdout: string, expect: RegExp, stderr = stdout): Promise<void> {
  const id = `bad-${++n}`;
  const dir = env.bundle(id, ['sh', '-c', 'echo never']);
  const fdsBefore = shimFds();
  const err = await call('Create', env.createRequest(id, stdout, stderr)).then(
    () => assert.fail(`Create with ${stdout} succeeded`),
    (e: RpcError) => e,
  );
  assert.match(err.message, expect);
  assert.ok(err.message.includes(stdout || stderr), `the message names the URI: ${err.message}`);
  assert.ok(!fs.existsSync(path.join(env.hakoRoot, id)), 'no state dir');
  assert.ok(!isMountPoint(path.join(dir, 'rootfs')), 'no rootfs mount');
  assert.deepEqual(childrenOf(shimPid), [], 'no process of the shim left (a logger killed and reaped)');
  assert.deepEqual(shimFds(), fdsBefore, 'no fd of the shim left');
  await assert.rejects(call('State', new Writer().string(1, id)), /not found/, 'no container');
}

const skip = (!root && 'needs root') || (!BUSYBOX && 'needs busybox');

describe('shim binary:// loggers and file:// logs', { skip }, () => {
  let umask = 0;
  before(async () => {
    umask = process.umask(0o022); // the shim's, which it inherits: file:// modes are 0644 and 0755 under it
    base = tmpDir('shim-logger');
    fs.chmodSync(base, 0o755);
    env = new ShimEnv(base, NS);
    env.bundle('first', ['true']);
    client = await TaskClient.connect(env.start('first', { HAKO_SHIM_LOGGER_READY_TIMEOUT_MS: '1500' }));
    shimPid = await client.shimPid();
    assert.ok(shimPid > 0);
  });

  after(async () => {
    await client?.shutdown();
    if (shimPid) assert.ok(await waitGone(shimPid), 'the shim left on Shutdown');
    fs.rmSync(env.hakoRoot, { recursive: true, force: true });
    env.removeCgroups();
    process.umask(umask);
  });

  test('a logger gets stdout on fd 3 and stderr on fd 4, its query as arguments, only CONTAINER_ID/NAMESPACE', async () => {
    const out = path.join(base, 'logger-out');
    const script = logger(
      'logger.sh',
      [
        // args: out FILE mode MODE (the query, in order)
        'file=$2',
        'echo "args=$* id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE home=${HOME-unset}" > "$file.env"',
        // The readers must not keep fd 5: the shim takes its EOF for "ready".
        '/bin/busybox sed "s/^/stdout: /" <&3 5>&- >> "$file" &',
        '/bin/busybox sed "s/^/stderr: /" <&4 5>&- >> "$file" &',
        // Ready a little later: the container must not have started before.
        '/bin/busybox sleep 0.3',
        'echo ready > "$file.ready"',
        'exec 5>&-',
        'wait',
        'echo done > "$file.done"',
      ].join('\n'),
    );
    const t0 = Date.now();
    const status = await runToExit('logged', `binary://${script}?out=${out}&mode=a+b&out=ignored`, [
      'sh',
      '-c',
      'echo one; echo two >&2; echo three; test -e /proc/self/fd/1 && echo stdout-reopenable > /dev/stdout',
    ]);
    assert.equal(status, 0);
    // Delete returned: the logger has exited (reaped by the shim) and written everything.
    assert.equal(fs.readFileSync(`${out}.done`, 'utf8'), 'done\n', 'the logger ran to its end before Delete returned');
    assert.deepEqual(
      fs.readFileSync(out, 'utf8').trim().split('\n').sort(),
      ['stderr: two', 'stdout: one', 'stdout: stdout-reopenable', 'stdout: three'],
      'stdout through fd 3, stderr through fd 4 (a pipe: /dev/stdout can be reopened)',
    );
    assert.equal(
      fs.readFileSync(`${out}.env`, 'utf8'),
      `args=out ${out} mode a b id=logged ns=${NS} home=unset\n`,
      "containerd's NewBinaryCmd: each query key with its first value; no environment but the two",
    );
    assert.ok(Date.now() - t0 >= 300);
    assert.deepEqual(childrenOf(shimPid), [], 'the logger was reaped');
  });

  test('an exec with a logger (CONTAINER_ID is the exec id); a terminal’s output through a logger, to a file', async () => {
    const out = path.join(base, 'exec-out');
    const script = logger(
      'tagged.sh',
      [
        'echo "id=$CONTAINER_ID" > "$2.env"',
        '/bin/busybox sed "s/^/1 /" <&3 5>&- >> "$2" &',
        '/bin/busybox sed "s/^/2 /" <&4 5>&- >> "$2" &',
        'exec 5>&-',
        'wait',
      ].join('\n'),
    );
    env.bundle('box', ['sleep', '300']);
    await call('Create', env.createRequest('box'));
    await call('Start', new Writer().string(1, 'box'));
    const spec = {
      args: ['sh', '-c', 'echo from-exec; echo exec-err >&2'],
      cwd: '/',
      env: ['PATH=/bin'],
      user: { uid: 0, gid: 0 },
    };
    await call(
      'Exec',
      new Writer()
        .string(1, 'box')
        .string(2, 'e1')
        .string(5, `binary://${script}?out=${out}`)
        .string(6, `binary://${script}?out=${out}`)
        .message(
          7,
          new Writer()
            .string(1, 'types.containerd.io/opencontainers/runtime-spec/1/Process')
            .bytes(2, Buffer.from(JSON.stringify(spec))),
        ),
    );
    await call('Start', new Writer().string(1, 'box').string(2, 'e1'));
    await call('Wait', new Writer().string(1, 'box').string(2, 'e1'));
    await call('Delete', new Writer().string(1, 'box').string(2, 'e1'));
    assert.equal(fs.readFileSync(`${out}.env`, 'utf8'), 'id=e1\n', 'the exec id, as the runc shim passes it');
    assert.deepEqual(fs.readFileSync(out, 'utf8').trim().split('\n').sort(), ['1 from-exec', '2 exec-err']);
    await call('Kill', new Writer().string(1, 'box').uint(3, 9));
    await call('Wait', new Writer().string(1, 'box'));
    await call('Delete', new Writer().string(1, 'box'));

    const tty = path.join(base, 'tty-out');
    const ttyDir = env.bundle('tty', ['sh', '-c', 'test -t 1 && echo on-a-tty; echo to-stderr >&2']);
    const ttySpec = JSON.parse(fs.readFileSync(path.join(ttyDir, 'config.json'), 'utf8')) as Spec;
    ttySpec.process!.terminal = true; // as containerd's client sets it with terminal = true
    fs.writeFileSync(path.join(ttyDir, 'config.json'), JSON.stringify(ttySpec));
    await client.runToExit('tty', env.createRequest('tty', `binary://${script}?out=${tty}`).bool(4, true));
    // Both streams of a terminal are its one output: all of it reaches fd 3, and fd 4 is at EOF at once.
    assert.deepEqual(fs.readFileSync(tty, 'utf8').split('\n').filter(Boolean).sort(), [
      '1 on-a-tty\r',
      '1 to-stderr\r',
    ]);
    assert.deepEqual(childrenOf(shimPid), [], 'the loggers were reaped');
    // A terminal's output to a file:// log.
    const ttyLog = path.join(base, 'tty.log');
    fs.renameSync(ttyDir, path.join(base, NS, 'tty2'));
    await client.runToExit('tty2', env.createRequest('tty2', `file://${ttyLog}`).bool(4, true));
    assert.deepEqual(fs.readFileSync(ttyLog, 'utf8').split('\n').filter(Boolean).sort(), ['on-a-tty\r', 'to-stderr\r']);
  });

  test('Create waits for the logger to be ready (fd 5 closed)', async () => {
    const out = path.join(base, 'slow-ready');
    const script = logger(
      'slow.sh',
      [
        '/bin/busybox cat <&3 5>&- > "$2" &',
        '/bin/busybox sleep 0.5',
        '/bin/busybox date +%s%N > "$2.ready"',
        'exec 5>&- 4<&-',
        'wait',
      ].join('\n'),
    );
    const id = 'slow';
    env.bundle(id, ['echo', 'hello']);
    await call('Create', env.createRequest(id, `binary://${script}?out=${out}`));
    assert.ok(fs.existsSync(`${out}.ready`), 'Create returned after the logger said it was ready');
    await call('Start', new Writer().string(1, id));
    await call('Wait', new Writer().string(1, id));
    await call('Delete', new Writer().string(1, id));
    assert.equal(fs.readFileSync(out, 'utf8'), 'hello\n');
  });

  test('a logger that never signals ready fails Create after the timeout; it is killed and reaped', async () => {
    const script = logger('never.sh', 'exec /bin/busybox sleep 60');
    await createFails(`binary://${script}`, /logger did not signal ready \(fd 5\) within 1500 ms/);
  });

  test('a logger that does not exist, or exits before it is ready, fails Create', async () => {
    await createFails(`binary://${path.join(base, 'missing-logger')}`, /logger could not be started: .*ENOENT/);
    const failing = logger('fail.sh', 'echo nope >&2; exit 3');
    await createFails(`binary://${failing}`, /logger exited before it was ready/);
    const quits = logger('quits.sh', 'exit 0');
    await createFails(`binary://${quits}`, /logger exited before it was ready/);
  });

  test('bad URIs: a relative path, a host, an unknown scheme, a URI as stderr only', async () => {
    await createFails('binary://logger.sh', /binary:\/\/ needs an absolute path and no host/);
    await createFails('binary:logger.sh', /binary:\/\/ needs an absolute path and no host/);
    await createFails('file://relative/log', /file:\/\/ needs an absolute path and no host/);
    await createFails('syslog:///dev/log', /unknown stdio scheme "syslog"/);
    await createFails('', /stderr binary:\/\/.*given as stdout/, `binary://${path.join(base, 'logger.sh')}`);
  });

  test('a terminal that config.json does not ask for (or the reverse) is refused, leaving nothing', async () => {
    const id = `bad-${++n}`;
    const dir = env.bundle(id, ['true']);
    await assert.rejects(
      call('Create', env.createRequest(id).bool(4, true)),
      /create: terminal is true but process.terminal in .*config.json is false/,
    );
    assert.ok(!fs.existsSync(path.join(env.hakoRoot, id)) && !isMountPoint(path.join(dir, 'rootfs')));
    const spec = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Spec;
    spec.process!.terminal = true;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
    await assert.rejects(call('Create', env.createRequest(id)), /terminal is false but process.terminal .* is true/);
    await assert.rejects(call('State', new Writer().string(1, id)), /not found/);
  });

  test('file://: stdout and stderr appended to the file, made 0644 in new 0755 directories', async () => {
    const file = path.join(base, 'logs', 'sub dir', 'c.log');
    const uri = `file://${path.join(base, 'logs', 'sub%20dir', 'c.log')}`;
    assert.equal(await runToExit('filelog', uri, ['sh', '-c', 'echo out1; echo err1 >&2']), 0);
    assert.equal(await runToExit('filelog2', uri, ['sh', '-c', 'echo out2']), 0);
    assert.deepEqual(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).sort(), ['err1', 'out1', 'out2']);
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o755);
  });
});
