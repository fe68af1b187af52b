// The state root shared with other runtimes (Docker passes one --root to all), a create killed before its
// state.json, and a target cgroup that is frozen: each leaves the root, the cgroups and the process table as
// they should be.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  BUSYBOX,
  HAKO_BIN,
  disposeRoot,
  hako,
  initProcessesOf,
  leftovers,
  makeBundle,
  testRoot,
  tmpDir,
  uniqueId,
} from './helpers/env';

const root = testRoot('shared');
const haveRunc = spawnSync('runc', ['--version']).status === 0;
after(async () => {
  if (haveRunc) for (const id of fs.readdirSync(root)) spawnSync('runc', ['--root', root, 'delete', '--force', id]);
  await disposeRoot(root);
});

/** Every cgroup directory named `rel` in any hierarchy. */
function cgroupDirs(rel: string): string[] {
  return fs
    .readdirSync('/sys/fs/cgroup')
    .map((c) => path.join('/sys/fs/cgroup', c, rel))
    .filter((d) => fs.existsSync(d));
}

describe('a state root shared with runc', () => {
  test('hako skips and refuses runc containers, and leaves nothing runc would list', async (t) => {
    if (!haveRunc) return t.skip('runc is not installed');
    if (!BUSYBOX) return t.skip('busybox is not installed (the runc container runs sleep)');
    // A cache an older hako left in the root (runc listed it as a broken container): removed at the next create.
    fs.mkdirSync(path.join(root, '.cache'));
    fs.writeFileSync(path.join(root, '.cache', 'seccomp-0123abcd.bpf'), 'old');
    const rb = makeBundle(['/bin/sleep', '60'], undefined, { busybox: true });
    const runcId = uniqueId('runc');
    // stderr to a file: the detached container inherits it, and a pipe would hold spawnSync until it exits.
    const rErr = path.join(rb.dir, 'runc.err');
    const rErrFd = fs.openSync(rErr, 'w');
    const rr = spawnSync('runc', ['--root', root, 'run', '-d', '--bundle', rb.dir, runcId], {
      stdio: ['ignore', 'ignore', rErrFd],
      timeout: 30_000,
    });
    fs.closeSync(rErrFd);
    assert.equal(rr.status, 0, `runc run: ${fs.readFileSync(rErr, 'utf8')}`);

    // A hako container with the default seccomp profile (its compiled program is what hako used to cache in the root).
    const hb = makeBundle(['/bin/probe', 'sleep', '60']);
    assert.ok(hb.spec.linux?.seccomp, 'the default spec has a seccomp profile');
    const hakoId = uniqueId('hako');
    const c = hako(root, ['create', '--bundle', hb.dir, hakoId]);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(hako(root, ['run', '-d', '--bundle', hb.dir, `${hakoId}-b`]).status, 0);

    assert.deepEqual(
      fs.readdirSync(root).sort(),
      [hakoId, `${hakoId}-b`, runcId].sort(),
      'no .cache (nor anything else) in the root',
    );
    const rl = spawnSync('runc', ['--root', root, 'list'], { encoding: 'utf8' });
    assert.equal(rl.status, 0);
    // runc reads every directory of its root; hako's containers it cannot load (nor could it crun's), but
    // hako's cache is no longer one of them.
    assert.doesNotMatch(rl.stderr, /\.cache/);
    for (const line of rl.stderr.trim().split('\n')) assert.match(line, new RegExp(`^load container ${hakoId}(-b)?: `));
    assert.match(rl.stdout, new RegExp(`^${runcId}\\s+\\d+\\s+running`, 'm'));

    const l = hako(root, ['--debug', 'list', '--format', 'json']);
    assert.equal(l.status, 0, l.stderr);
    assert.deepEqual(
      (JSON.parse(l.stdout) as { id: string }[]).map((s) => s.id).sort(),
      [hakoId, `${hakoId}-b`].sort(),
    );
    assert.match(l.stderr, new RegExp(`list: skipping ${runcId}: container "${runcId}" was not created by hako`));
    assert.equal(hako(root, ['list']).status, 0, 'the table too');

    for (const args of [
      ['state', runcId],
      ['kill', runcId, 'KILL'],
      ['delete', runcId],
      ['delete', '--force', runcId],
      ['pause', runcId],
      ['exec', runcId, '/bin/true'],
    ]) {
      const r = hako(root, args);
      assert.notEqual(r.status, 0, `hako ${args.join(' ')} succeeded`);
      assert.match(r.stderr, new RegExp(`^hako: container "${runcId}" was not created by hako`), args.join(' '));
    }
    assert.deepEqual(
      fs.readdirSync(path.join(root, runcId)),
      ['state.json'],
      "hako wrote nothing (no lock file) into runc's directory",
    );
    const rs = spawnSync('runc', ['--root', root, 'state', runcId], { encoding: 'utf8' });
    assert.match(rs.stdout, /"status": "running"/, "runc's container is untouched");

    for (const id of [hakoId, `${hakoId}-b`]) assert.equal(hako(root, ['delete', '--force', id]).status, 0);
    // hako has run (create, run, list, state, ...) and its containers are gone: runc lists cleanly.
    const after = spawnSync('runc', ['--root', root, 'list'], { encoding: 'utf8' });
    assert.equal(after.status, 0);
    assert.equal(after.stderr, '', 'runc list after hako ran: nothing to complain about');
    assert.match(after.stdout, new RegExp(`^${runcId}\\s+\\d+\\s+running`, 'm'));
    assert.equal(spawnSync('runc', ['--root', root, 'delete', '--force', runcId]).status, 0);
    assert.deepEqual(fs.readdirSync(root), [], 'nothing survives the containers');
  });
});

describe('create killed after making its cgroups, before its state.json', () => {
  test('delete --force removes the cgroups (and the parents create made), the state dir and the init', async () => {
    const top = `hako-test-killed-${process.pid}`;
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.cgroupsPath = `/${top}/inner`;
    });
    const id = uniqueId('killed');
    const errDir = tmpDir('killed');
    const errFile = path.join(errDir, 'err');
    const errFd = fs.openSync(errFile, 'w');
    const child = spawn(process.execPath, [HAKO_BIN, '--root', root, 'create', '--bundle', b.dir, id], {
      env: { ...process.env, HAKO_TEST_PAUSE_AT: 'cgroups' },
      stdio: ['ignore', 'ignore', errFd],
    });
    fs.closeSync(errFd);
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      const deadline = Date.now() + 20_000;
      while (!fs.readFileSync(errFile, 'utf8').includes('paused at cgroups')) {
        assert.ok(Date.now() < deadline, `create did not reach the pause point: ${fs.readFileSync(errFile, 'utf8')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(cgroupDirs(`${top}/inner`).length > 0, 'the cgroups exist at the pause point');
      assert.equal(fs.existsSync(path.join(root, id, 'state.json')), false, 'no state.json yet');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const d = hako(root, ['delete', '--force', id]);
    assert.equal(d.status, 0, d.stderr);
    assert.deepEqual(cgroupDirs(`${top}/inner`), [], 'no cgroup left');
    assert.deepEqual(cgroupDirs(top), [], 'nor the parent create made');
    assert.deepEqual(leftovers(root, id), []);
    assert.deepEqual(initProcessesOf(b.dir), [], 'no init left');
    fs.rmSync(errDir, { recursive: true, force: true });
  });
});

describe('create killed at random points, repeated', () => {
  test('delete --force after each leaves no cgroup, state dir or init', async () => {
    const top = `hako-test-randkill-${process.pid}`;
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.cgroupsPath = `/${top}/inner`;
    });
    for (let i = 0; i < 12; i++) {
      const id = uniqueId('randkill');
      // Spread over a create's whole duration on this host (about 40 to 150 ms for the CLI).
      const delay = 15 + Math.floor(Math.random() * 150);
      const child = spawn(process.execPath, [HAKO_BIN, '--root', root, 'create', '--bundle', b.dir, id], {
        stdio: 'ignore',
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
      const d = hako(root, ['delete', '--force', id]);
      assert.equal(d.status, 0, `run ${i} (killed after ${delay} ms): ${d.stderr}`);
      assert.deepEqual(leftovers(root, id), [], `run ${i} (killed after ${delay} ms)`);
      assert.deepEqual(cgroupDirs(top), [], `run ${i} (killed after ${delay} ms): no cgroup left`);
      assert.deepEqual(initProcessesOf(b.dir), [], `run ${i} (killed after ${delay} ms): no init left`);
    }
  });
});

describe('a frozen target cgroup', () => {
  test('run into a frozen v1 freezer cgroup is refused at once, leaving nothing', async (t) => {
    const freezer = '/sys/fs/cgroup/freezer';
    if (!fs.existsSync(path.join(freezer, 'cgroup.procs')))
      return t.skip('no cgroup v1 freezer hierarchy on this host');
    const name = `hako-test-frozen-${process.pid}`;
    const dir = path.join(freezer, name);
    fs.mkdirSync(dir);
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.cgroupsPath = `/${name}`;
    });
    const id = uniqueId('frozen');
    try {
      fs.writeFileSync(path.join(dir, 'freezer.state'), 'FROZEN');
      assert.equal(fs.readFileSync(path.join(dir, 'freezer.state'), 'utf8').trim(), 'FROZEN');
      const r = hako(root, ['run', '--bundle', b.dir, id], { timeout: 20_000 });
      assert.equal(r.error, undefined, 'hako returned (it used to hang with its init in state D)');
      assert.equal(r.status, 1);
      assert.match(
        r.stderr,
        new RegExp(`^hako: linux\\.cgroupsPath: the cgroup ${dir} is frozen \\(freezer\\.state FROZEN\\)`),
      );
      assert.deepEqual(initProcessesOf(b.dir), [], 'no init left');
      assert.equal(fs.existsSync(path.join(root, id)), false, 'no state dir');
      assert.deepEqual(
        cgroupDirs(name).filter((d) => d !== dir),
        [],
        'no cgroup made in the other hierarchies',
      );
      assert.equal(fs.existsSync(dir), true, "the frozen cgroup is not hako's: left as it was");
    } finally {
      fs.writeFileSync(path.join(dir, 'freezer.state'), 'THAWED');
      hako(root, ['delete', '--force', id]);
      for (const d of cgroupDirs(name)) fs.rmdirSync(d);
    }
  });

  test('run under a frozen cgroup2 parent (cgroup.freeze) is refused too, leaving nothing', async (t) => {
    const unified = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((m) =>
      fs.existsSync(path.join(m, 'cgroup.subtree_control')),
    );
    if (!unified) return t.skip('no cgroup2 hierarchy on this host');
    const name = `hako-test-frozen2-${process.pid}`;
    const dir = path.join(unified, name);
    fs.mkdirSync(dir);
    if (!fs.existsSync(path.join(dir, 'cgroup.freeze'))) {
      fs.rmdirSync(dir);
      return t.skip('cgroup2 without cgroup.freeze (kernel older than 5.2)');
    }
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.cgroupsPath = `/${name}/inner`;
    });
    const id = uniqueId('frozen2');
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '1');
      const r = hako(root, ['run', '--bundle', b.dir, id], { timeout: 20_000 });
      assert.equal(r.error, undefined, 'hako returned');
      assert.equal(r.status, 1);
      assert.match(
        r.stderr,
        new RegExp(`^hako: linux\\.cgroupsPath: the cgroup ${dir} is frozen \\(cgroup\\.freeze 1\\)`),
      );
      assert.deepEqual(initProcessesOf(b.dir), [], 'no init left');
      assert.equal(fs.existsSync(path.join(root, id)), false, 'no state dir');
      assert.deepEqual(cgroupDirs(`${name}/inner`), [], 'no cgroup made');
    } finally {
      fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '0');
      hako(root, ['delete', '--force', id]);
      for (const d of cgroupDirs(`${name}/inner`)) fs.rmdirSync(d);
      for (const d of cgroupDirs(name)) fs.rmdirSync(d);
    }
  });
});
