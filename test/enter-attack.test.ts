// CVE-2019-5736 in the shape it took against hako: root in a container overwrites a host binary through
// /proc/PID/exe of a process that enters the container (hako exec), directly or by reopening an O_PATH fd
// of it once the process has moved on. The attacker is hako-probe's exe-attack (pid 1 of the container):
// it spins on the next pids of its pid namespace while the test runs execs through the CLI and the library.
// Its writes put back the byte already there, so a runtime that loses keeps its files intact; the test then
// fails on the attacker's own report.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { initHelperPath } from '../lib/native/addon';
import { CAPABILITIES } from '../lib/oci/constants';
import { Runtime } from '../lib/runtime/runtime';
import { disposeRoot, hako, leftovers, makeBundle, testRoot, uniqueId } from './helpers/env';

const root = testRoot('enter-attack');
after(() => disposeRoot(root));

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const fileId = (file: string) => {
  const st = fs.statSync(file);
  return `${st.dev}:${st.ino}`;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CVE-2019-5736: a container cannot reach a host binary through /proc/PID/exe of an entering process', () => {
  for (const privileged of [false, true]) {
    test(privileged ? 'privileged container (every capability)' : 'root with the default capabilities', async (t) => {
      const node = fs.realpathSync(process.execPath);
      const init = fs.realpathSync(initHelperPath());
      const before = { node: sha256(node), init: sha256(init) };
      const b = makeBundle(['/bin/probe', 'exe-attack', '120'], (s) => {
        s.process!.user = { uid: 0, gid: 0 };
        if (privileged) {
          const all = [...CAPABILITIES];
          s.process!.capabilities = { bounding: all, effective: all, permitted: all, inheritable: [], ambient: [] };
        }
      });
      const out = path.join(b.dir, 'attack.out');
      const outFd = fs.openSync(out, 'w');
      const rt = new Runtime({ root });
      const id = uniqueId(privileged ? 'atkp' : 'atk');
      const attacker = await rt.run(id, { bundle: b.dir, stdio: [null, outFd, outFd] });
      fs.closeSync(outFd);
      try {
        await sleep(300); // the attacker is spinning
        // Each exec'd process lives a little, so the attacker's /proc scan sees its pid and watches the next.
        for (let i = 0; i < 15; i++) {
          const r = hako(root, ['exec', id, '/bin/probe', 'sleep', '0.15']);
          assert.equal(r.status, 0, r.stderr);
        }
        for (let i = 0; i < 5; i++) {
          const p = await rt.exec(
            id,
            { ...b.spec.process!, args: ['/bin/probe', 'sleep', '0.15'] },
            { stdio: [null, null, null] },
          );
          assert.equal((await p.wait()).status, 0);
        }
      } finally {
        fs.writeFileSync(path.join(b.rootfs, 'attack-stop'), '');
      }
      const exit = await attacker.wait();
      const report = fs.readFileSync(out, 'utf8');
      assert.equal(exit.status, 0, report);
      t.diagnostic(report.trim().replace(/\n/g, '; '));
      const lines = report.trim().split('\n');
      const summary = lines.find((l) => l.startsWith('summary '));
      assert.ok(summary, report);
      const [attempts, denied] = summary!.split(' ').slice(1).map(Number);
      assert.ok(attempts + denied > 0, `the attacker never reached an entering process: ${report}`);
      assert.deepEqual(
        lines.filter((l) => l.startsWith('wrote ')),
        [],
        `the container wrote an entering process's executable:\n${report}`,
      );
      // /proc/PID/exe of an entering process, before its execve, is neither node (no fork of Node enters)
      // nor hako-init on disk (the init runs from a sealed memfd).
      const seen = lines.filter((l) => l.startsWith('seen ')).map((l) => l.split(' ')[1]);
      assert.ok(!seen.includes(fileId(node)), `the node binary was reachable from the container:\n${report}`);
      assert.ok(!seen.includes(fileId(init)), `hako-init on disk was reachable from the container:\n${report}`);
      assert.equal(sha256(node), before.node, 'node binary unchanged');
      assert.equal(sha256(init), before.init, 'hako-init unchanged');
      await rt.delete(id);
      assert.deepEqual(leftovers(root, id), []);
    });
  }

  test("an init that joins another container's pid namespace by path is forked into it from the sealed memfd", async (t) => {
    const node = fs.realpathSync(process.execPath);
    const init = fs.realpathSync(initHelperPath());
    const before = { node: sha256(node), init: sha256(init) };
    const all = [...CAPABILITIES];
    const a = makeBundle(['/bin/probe', 'exe-attack', '120'], (s) => {
      s.process!.user = { uid: 0, gid: 0 };
      s.process!.capabilities = { bounding: all, effective: all, permitted: all, inheritable: [], ambient: [] };
    });
    const out = path.join(a.dir, 'attack.out');
    const outFd = fs.openSync(out, 'w');
    const rt = new Runtime({ root });
    const idA = uniqueId('atkj');
    const attacker = await rt.run(idA, { bundle: a.dir, stdio: [null, outFd, outFd] });
    fs.closeSync(outFd);
    const idB = uniqueId('join');
    try {
      await sleep(300);
      const b = makeBundle(['/bin/probe', 'json'], (s) => {
        s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
          n.type === 'pid' ? { type: 'pid', path: `/proc/${attacker.pid}/ns/pid` } : n,
        );
      });
      // The same probe file as the attacker's, which then knows B's process, once started, for its own.
      fs.rmSync(path.join(b.rootfs, 'bin', 'probe'));
      fs.linkSync(path.join(a.rootfs, 'bin', 'probe'), path.join(b.rootfs, 'bin', 'probe'));
      const bOut = path.join(b.dir, 'out.json');
      const bFd = fs.openSync(bOut, 'w');
      const joined = await rt.create(idB, { bundle: b.dir, stdio: [null, bFd, null] });
      fs.closeSync(bFd);
      // The waiting init, seen from the host: a memfd, not hako-init on disk and not node.
      assert.match(fs.readlinkSync(`/proc/${joined.pid}/exe`), /^\/memfd:hako-init/);
      await sleep(300); // the attacker has had the waiting init in its pid namespace
      await rt.start(idB);
      assert.equal((await joined.wait()).status, 0);
      const json = JSON.parse(fs.readFileSync(bOut, 'utf8')) as { pid: number; namespaces: Record<string, string> };
      assert.notEqual(json.pid, 1, "inside the other container's pid namespace");
      assert.equal(`pid:[${json.namespaces.pid}]`, fs.readlinkSync(`/proc/${attacker.pid}/ns/pid`));
    } finally {
      fs.writeFileSync(path.join(a.rootfs, 'attack-stop'), '');
    }
    assert.equal((await attacker.wait()).status, 0);
    const report = fs.readFileSync(out, 'utf8');
    t.diagnostic(report.trim().replace(/\n/g, '; '));
    assert.deepEqual(
      report.split('\n').filter((l) => l.startsWith('wrote ')),
      [],
      report,
    );
    const seen = report
      .split('\n')
      .filter((l) => l.startsWith('seen '))
      .map((l) => l.split(' ')[1]);
    assert.ok(!seen.includes(fileId(node)) && !seen.includes(fileId(init)), report);
    assert.equal(sha256(node), before.node);
    assert.equal(sha256(init), before.init);
    await rt.delete(idB);
    await rt.delete(idA);
    assert.deepEqual([...leftovers(root, idA), ...leftovers(root, idB)], []);
  });
});

describe('an init that joins namespaces by path', () => {
  test("joining another container's user namespace: its new namespaces are made inside it, and it is root there", async () => {
    const map = [{ containerID: 0, hostID: 200000, size: 65536 }];
    const a = makeBundle(['/bin/probe', 'sleep', 'inf'], (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = map;
      s.linux!.gidMappings = map;
    });
    const rt = new Runtime({ root });
    const idA = uniqueId('usra');
    const ca = await rt.run(idA, { bundle: a.dir });
    const idB = uniqueId('usrb');
    try {
      const b = makeBundle(['/bin/probe', 'json'], (s) => {
        s.linux!.namespaces!.push({ type: 'user', path: `/proc/${ca.pid}/ns/user` });
      });
      const out = path.join(b.dir, 'out.json');
      const outFd = fs.openSync(out, 'w');
      const cb = await rt.run(idB, { bundle: b.dir, stdio: [null, outFd, null] });
      fs.closeSync(outFd);
      assert.equal((await cb.wait()).status, 0);
      const json = JSON.parse(fs.readFileSync(out, 'utf8')) as {
        pid: number;
        uid: number;
        uidMap: string;
        namespaces: Record<string, string>;
      };
      assert.equal(
        `user:[${json.namespaces.user}]`,
        fs.readlinkSync(`/proc/${ca.pid}/ns/user`),
        "in A's user namespace",
      );
      assert.deepEqual(json.uidMap.trim().split(/\s+/), ['0', '200000', '65536']);
      assert.equal(json.uid, 0, 'root of the joined user namespace');
      assert.equal(json.pid, 1, 'pid 1 of a new pid namespace, made after joining');
      for (const ns of ['pid', 'net', 'mnt'])
        assert.notEqual(`${ns}:[${json.namespaces[ns]}]`, fs.readlinkSync(`/proc/${ca.pid}/ns/${ns}`), ns);
    } finally {
      await rt.delete(idB, { force: true }).catch(() => undefined);
      await rt.delete(idA, { force: true });
    }
    assert.deepEqual([...leftovers(root, idA), ...leftovers(root, idB)], []);
  });
});
