// The shim's `binary://` loggers and `file://` logs (lib/shim/logger.ts, stdio.ts, stdio-uri.ts), driven as
// containerd drives them: the shim started with `start` from a bundle, then Create/Start/Wait/Delete over its ttrpc
// socket, with real containers. The logger is a shell script this file writes: it gets the container's stdout on
// fd 3 and stderr on fd 4, only CONTAINER_ID and CONTAINER_NAMESPACE in its environment, the URI's query as
// arguments, and closes fd 5 when ready. Failing loggers (missing, exiting, never ready) and bad URIs fail Create
// with the URI in the message, and leave no container, state, mount, process or fd behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultSpec } from '../lib/default-spec';
import { Fields, Writer } from '../lib/shim/proto';
import { Client, type RpcError } from '../lib/shim/ttrpc';
import { TASK_SERVICE } from '../lib/shim/messages';
import { isMountPoint } from '../lib/shim/rootfs';
import { BUSYBOX, tmpDir } from './helpers/env';

const REPO = path.join(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'lib', 'shim', 'main.js');
const NS = `hako-logger-${process.pid}`;
const HAKO_ROOT = `/run/containerd/hako/${NS}`;
const root = process.getuid?.() === 0;

let base: string;
let lower: string;
let client: Client;
let shimPid = 0;
let n = 0;

function call(method: string, payload: Writer): Promise<Buffer> {
  return client.call(TASK_SERVICE, method, payload.finish());
}

/** containerd's bundle layout: <state>/<namespace>/<id>/config.json, the rootfs a read-only bind of `lower`. */
function bundle(id: string, args: string[]): string {
  const dir = path.join(base, NS, id);
  fs.mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
  const spec = defaultSpec({ args, terminal: false });
  spec.linux!.cgroupsPath = `/${NS}/${id}`;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

function createRequest(id: string, dir: string, stdout: string, stderr = stdout): Writer {
  return new Writer()
    .string(1, id)
    .string(2, dir)
    .message(3, new Writer().string(1, 'bind').string(2, lower).string(4, 'rbind').string(4, 'ro'))
    .string(6, stdout)
    .string(7, stderr);
}

async function runToExit(id: string, stdout: string, args: string[]): Promise<number> {
  const dir = bundle(id, args);
  await call('Create', createRequest(id, dir, stdout));
  await call('Start', new Writer().string(1, id));
  const status = new Fields(await call('Wait', new Writer().string(1, id))).uint(1);
  await call('Delete', new Writer().string(1, id));
  return status;
}

function shimChildren(): string[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === String(shimPid);
      } catch {
        return false;
      }
    })
    .map((p) => `${p} ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
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
async function createFails(stdout: string, expect: RegExp): Promise<void> {
  const id = `bad-${++n}`;
  const dir = bundle(id, ['sh', '-c', 'echo never']);
  const fdsBefore = shimFds();
  const err = await call('Create', createRequest(id, dir, stdout)).then(
    () => assert.fail(`Create with ${stdout} succeeded`),
    (e: RpcError) => e,
  );
  assert.match(err.message, expect);
  assert.ok(err.message.includes(stdout), `the message names the URI: ${err.message}`);
  assert.ok(!fs.existsSync(path.join(HAKO_ROOT, id)), 'no state dir');
  assert.ok(!isMountPoint(path.join(dir, 'rootfs')), 'no rootfs mount');
  assert.deepEqual(shimChildren(), [], 'no process of the shim left (a logger killed and reaped)');
  assert.deepEqual(shimFds(), fdsBefore, 'no fd of the shim left');
  await assert.rejects(call('State', new Writer().string(1, id)), /not found/, 'no container');
}

describe(
  'shim binary:// loggers and file:// logs',
  { skip: (!root && 'needs root') || (!BUSYBOX && 'needs busybox') },
  () => {
    let umask = 0;
    before(async () => {
      umask = process.umask(0o022); // the shim's, which it inherits: file:// modes are 0644 and 0755 under it
      base = tmpDir('shim-logger');
      fs.chmodSync(base, 0o755);
      lower = path.join(base, 'lower');
      fs.mkdirSync(path.join(lower, 'bin'), { recursive: true });
      for (const d of ['proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(lower, d));
      fs.copyFileSync(BUSYBOX!, path.join(lower, 'bin', 'busybox'));
      for (const t of ['sh', 'echo', 'cat', 'sleep']) fs.symlinkSync('busybox', path.join(lower, 'bin', t));
      // The shim, as containerd starts it: `start` in the first bundle prints the socket of a server it spawned.
      const first = bundle('first', ['true']);
      fs.writeFileSync(path.join(first, 'log'), ''); // the server's stderr (a FIFO under containerd)
      const env: NodeJS.ProcessEnv = { ...process.env, HAKO_SHIM_LOGGER_READY_TIMEOUT_MS: '1500' };
      delete env.TTRPC_ADDRESS; // no containerd to publish events to
      const r = spawnSync(
        process.execPath,
        [MAIN, '-namespace', NS, '-address', path.join(base, 'containerd.sock'), '-id', 'first', 'start'],
        { cwd: first, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
      );
      assert.equal(r.status, 0, `shim start: ${r.stderr}`);
      assert.match(r.stdout, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
      client = await Client.connect(r.stdout.slice('unix://'.length));
      shimPid = new Fields(await call('Connect', new Writer().string(1, 'first'))).uint(1);
      assert.ok(shimPid > 0);
    });

    after(async () => {
      if (client) {
        await call('Shutdown', new Writer().bool(2, true)).catch(() => {});
        client.close();
      }
      const deadline = Date.now() + 10_000;
      while (shimPid && fs.existsSync(`/proc/${shimPid}`) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      try {
        process.stderr.write(fs.readFileSync(path.join(base, NS, 'first', 'log'), 'utf8'));
      } catch {
        /* none */
      }
      fs.rmSync(HAKO_ROOT, { recursive: true, force: true });
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
      assert.equal(
        fs.readFileSync(`${out}.done`, 'utf8'),
        'done\n',
        'the logger ran to its end before Delete returned',
      );
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
      assert.deepEqual(shimChildren(), [], 'the logger was reaped');
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
      const dir = bundle(id, ['echo', 'hello']);
      await call('Create', createRequest(id, dir, `binary://${script}?out=${out}`));
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
      const id = `bad-${++n}`;
      const dir = bundle(id, ['true']);
      await assert.rejects(
        call('Create', createRequest(id, dir, '', `binary://${path.join(base, 'logger.sh')}`)),
        /stderr binary:\/\/.*given as stdout/,
      );
      assert.ok(!fs.existsSync(path.join(HAKO_ROOT, id)));
      assert.ok(!isMountPoint(path.join(dir, 'rootfs')));
    });

    test('file://: stdout and stderr appended to the file, made 0644 in new 0755 directories', async () => {
      {
        const file = path.join(base, 'logs', 'sub dir', 'c.log');
        const uri = `file://${path.join(base, 'logs', 'sub%20dir', 'c.log')}`;
        assert.equal(await runToExit('filelog', uri, ['sh', '-c', 'echo out1; echo err1 >&2']), 0);
        assert.equal(await runToExit('filelog2', uri, ['sh', '-c', 'echo out2']), 0);
        assert.deepEqual(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).sort(), ['err1', 'out1', 'out2']);
        assert.equal(fs.statSync(file).mode & 0o777, 0o644);
        assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o755);
      }
    });
  },
);
