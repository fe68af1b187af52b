// The shim's POSIX sh launcher (bin/containerd-shim-hako-v2) in its routine calls, which answer without Node:
// `delete` after the server's Delete (its <bundle>/.hako-deleted, or no rootfs mount and no state), and `start`
// for a group whose server runs (its record: pid and start time, checked in /proc). Every other case must reach
// Node. Here `node` on the launcher's PATH is a stand-in that notes its call and fails, so each case shows which
// way the launcher took. No containerd: a listening socket of this process plays the group's server. Needs root
// (the launcher's fixed paths under /run/containerd, and a bind mount).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runtimeRoot, SHIM_RECORDS, socketPath } from '../lib/shim/address';
import { Fields } from '../lib/shim/proto';
import { procStat } from '../lib/runtime/proc';

const root = process.getuid?.() === 0;
const LAUNCHER = path.join(__dirname, '..', '..', 'bin', 'containerd-shim-hako-v2');

describe('shim launcher: the routine start and delete without Node', { skip: !root && 'needs root' }, () => {
  let dir: string;
  let bundle: string;
  let nodeCalls: string;
  let server: net.Server;
  const ns = `launcher-test-${process.pid}`;
  const group = 'g1';
  let address: string;
  let sock: string;
  let record: string;

  const launch = (args: string[]) => {
    fs.rmSync(nodeCalls, { force: true });
    const r = spawnSync(LAUNCHER, ['-namespace', ns, '-address', address, '-publish-binary', '/bin/false', ...args], {
      cwd: bundle,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: path.join(dir, 'bin') },
      timeout: 10_000,
    });
    return {
      status: r.status,
      stdout: r.stdout.toString(),
      raw: r.stdout,
      stderr: r.stderr.toString(),
      node: fs.existsSync(nodeCalls),
    };
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-shim-launcher-'));
    address = path.join(dir, 'containerd.sock');
    bundle = path.join(dir, 'bundle');
    nodeCalls = path.join(dir, 'node-called');
    fs.mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
    fs.writeFileSync(
      path.join(bundle, 'config.json'),
      JSON.stringify({ ociVersion: '1.0.2', annotations: { 'io.containerd.runc.v2.group': group } }),
    );
    fs.mkdirSync(path.join(dir, 'bin'));
    for (const tool of ['sed', 'sha256sum', 'readlink', 'awk', 'setsid'])
      fs.symlinkSync(
        ['/usr/bin', '/bin'].map((d) => path.join(d, tool)).find((p) => fs.existsSync(p))!,
        path.join(dir, 'bin', tool),
      );
    fs.writeFileSync(path.join(dir, 'bin', 'node'), `#!/bin/sh\necho "$@" >>'${nodeCalls}'\nexit 99\n`, {
      mode: 0o755,
    });
    sock = socketPath(address, ns, group);
    record = path.join(SHIM_RECORDS, `${path.basename(sock)}.pid`);
    fs.mkdirSync(path.dirname(sock), { recursive: true, mode: 0o711 });
    fs.mkdirSync(SHIM_RECORDS, { recursive: true, mode: 0o700 });
    server = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(sock, r));
  });

  after(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(sock, { force: true });
    fs.rmSync(record, { force: true });
    fs.rmSync(runtimeRoot(ns), { recursive: true, force: true });
    spawnSync('umount', [path.join(bundle, 'rootfs')]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('start: a live server of the group (pid and start time) is answered by the launcher alone', () => {
    fs.writeFileSync(record, `${process.pid} ${procStat(process.pid)!.startTime}\n`);
    const r = launch(['-id', 'c1', 'start']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `unix://${sock}`);
    assert.equal(fs.readFileSync(path.join(bundle, 'address'), 'utf8'), `unix://${sock}`, 'address, no newline');
    assert.equal(r.node, false, 'Node was not started');
  });

  test('start: a record whose start time is not the pid’s (a reused pid) goes to Node', () => {
    fs.writeFileSync(record, `${process.pid} ${Number(procStat(process.pid)!.startTime) + 1}\n`);
    const r = launch(['-id', 'c2', 'start']);
    assert.notEqual(r.status, 0);
    assert.equal(r.node, true);
    assert.doesNotMatch(r.stdout, /unix:/);
  });

  test('start: a record of a dead pid, or one without a start time, goes to Node', () => {
    const dead = spawnSync('/bin/true').pid!;
    for (const content of [`${dead} 1\n`, `${process.pid}\n`]) {
      fs.writeFileSync(record, content);
      const r = launch(['-id', 'c3', 'start']);
      assert.equal(r.node, true, content);
      assert.notEqual(r.status, 0);
    }
  });

  test('delete: after the server’s Delete (.hako-deleted), or with no state and no rootfs mount, no Node', () => {
    // The answer is runc's shim's: DeleteResponse {exit_status 137, exited_at now} (decoded in shim-ttrpc.test.ts).
    const answered = (r: ReturnType<typeof launch>) => new Fields(r.raw).uint(2) === 137;
    fs.writeFileSync(path.join(bundle, '.hako-deleted'), '');
    let r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
    assert.deepEqual([r.status, answered(r), r.node], [0, true, false], r.stderr);
    fs.rmSync(path.join(bundle, '.hako-deleted'));
    r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
    assert.deepEqual([r.status, answered(r), r.node], [0, true, false], r.stderr);
  });

  test('delete: a mounted rootfs, or hako state of the container, goes to Node', () => {
    const rootfs = path.join(bundle, 'rootfs');
    assert.equal(spawnSync('mount', ['--bind', dir, rootfs]).status, 0);
    try {
      const r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
      assert.deepEqual([r.status, r.node], [99, true], 'a rootfs left mounted');
    } finally {
      assert.equal(spawnSync('umount', [rootfs]).status, 0);
    }
    fs.mkdirSync(path.join(runtimeRoot(ns), 'c1'), { recursive: true });
    fs.writeFileSync(path.join(bundle, '.hako-deleted'), '');
    const r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
    assert.deepEqual([r.status, r.node], [99, true], 'hako state left, whatever the mark says');
  });
});
