// Rootless: a non-root user runs a busybox container from `hako spec --rootless`, with its own state
// root, no cgroups (warned about, not failed), and wider id ranges through newuidmap/newgidmap.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUSYBOX, HAKO_BIN, WITHOUT, makeBundle, uniqueId } from './helpers/env';

const USER = 'hako-rootless';
let uid = 0;
let work = '';
let subStart = 0;

function asUser(cmd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('su', [USER, '-s', '/bin/sh', '-c', cmd], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: '/usr/bin:/bin' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe(
  'rootless',
  {
    skip:
      (!BUSYBOX && 'busybox-static is not installed') ||
      ((!fs.existsSync('/usr/bin/newuidmap') || WITHOUT.has('uidmap')) && 'uidmap is not installed'),
  },
  () => {
    before(() => {
      try {
        execFileSync('id', [USER], { stdio: 'ignore' });
      } catch {
        execFileSync('useradd', ['-M', '-s', '/bin/sh', USER]);
      }
      uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
      for (const f of ['/etc/subuid', '/etc/subgid']) {
        const text = fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
        if (!text.split('\n').some((l) => l.startsWith(`${USER}:`))) fs.appendFileSync(f, `${USER}:400000:65536\n`);
      }
      subStart = Number(
        fs
          .readFileSync('/etc/subuid', 'utf8')
          .split('\n')
          .find((l) => l.startsWith(`${USER}:`))!
          .split(':')[1],
      );
      const b = makeBundle(['sh'], undefined, { busybox: true });
      work = b.dir;
      fs.rmSync(path.join(work, 'config.json'));
      execFileSync('chown', ['-R', `${uid}:${uid}`, work]);
    });
    after(() => {
      asUser(
        `XDG_RUNTIME_DIR=${work}/run node ${HAKO_BIN} list -q | while read id; do node ${HAKO_BIN} delete -f "$id"; done`,
      );
      fs.rmSync(work, { recursive: true, force: true });
    });

    test('a non-root user runs a busybox container from hako spec --rootless', () => {
      let r = asUser(`cd ${work} && node ${HAKO_BIN} spec --rootless`);
      assert.equal(r.status, 0, r.stderr);
      const spec = JSON.parse(fs.readFileSync(path.join(work, 'config.json'), 'utf8'));
      assert.deepEqual(spec.linux.uidMappings, [{ containerID: 0, hostID: uid, size: 1 }]);
      spec.process.terminal = false;
      spec.process.args = ['sh', '-c', 'id -u; cat /proc/self/uid_map; hostname; echo ok > /tmp/x && cat /tmp/x'];
      spec.root.readonly = false;
      fs.writeFileSync(path.join(work, 'config.json'), JSON.stringify(spec));
      const id = uniqueId('rl');
      r = asUser(`cd ${work} && XDG_RUNTIME_DIR=${work}/run node ${HAKO_BIN} run ${id}`);
      assert.equal(r.status, 0, r.stderr);
      const [inUid, map, host, ok] = r.stdout.trim().split('\n');
      assert.equal(inUid, '0');
      assert.match(map, new RegExp(`^\\s*0\\s+${uid}\\s+1$`));
      assert.equal(host, 'hako');
      assert.equal(ok, 'ok');
      // No limits asked: the skipped cgroups are not worth a warning (runc says nothing; rootless podman reads the
      // log file as one JSON error object, so a warning there garbles the error it reports).
      assert.doesNotMatch(r.stderr, /rootless: cannot create cgroup/);
      assert.ok(!fs.existsSync(path.join(work, 'run', 'hako', id)), 'deleted after run');
      // A limit that cannot be applied is worth one.
      fs.writeFileSync(
        path.join(work, 'config.json'),
        JSON.stringify({ ...spec, linux: { ...spec.linux, resources: { pids: { limit: 64 } } } }),
      );
      r = asUser(`cd ${work} && XDG_RUNTIME_DIR=${work}/run node ${HAKO_BIN} run ${uniqueId('rl')}`);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /rootless: cannot create cgroup/, 'cgroups are skipped with a warning');
      fs.writeFileSync(path.join(work, 'config.json'), JSON.stringify(spec));
    });

    test('subordinate id ranges go through newuidmap/newgidmap', () => {
      const spec = JSON.parse(fs.readFileSync(path.join(work, 'config.json'), 'utf8'));
      const gidStart = Number(
        fs
          .readFileSync('/etc/subgid', 'utf8')
          .split('\n')
          .find((l) => l.startsWith(`${USER}:`))!
          .split(':')[1],
      );
      spec.linux.uidMappings = [
        { containerID: 0, hostID: uid, size: 1 },
        { containerID: 1, hostID: subStart, size: 65536 },
      ];
      spec.linux.gidMappings = [
        { containerID: 0, hostID: uid, size: 1 },
        { containerID: 1, hostID: gidStart, size: 65536 },
      ];
      spec.process.args = ['sh', '-c', 'cat /proc/self/uid_map'];
      fs.writeFileSync(path.join(work, 'config.json'), JSON.stringify(spec));
      let r = asUser(`cd ${work} && XDG_RUNTIME_DIR=${work}/run node ${HAKO_BIN} run ${uniqueId('rl')}`);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^\\s*1\\s+${subStart}\\s+65536$`, 'm'));
      // A range the user was not given is refused by newuidmap, with a clear error.
      spec.linux.uidMappings[1].hostID = subStart + 1_000_000;
      fs.writeFileSync(path.join(work, 'config.json'), JSON.stringify(spec));
      r = asUser(`cd ${work} && XDG_RUNTIME_DIR=${work}/run node ${HAKO_BIN} run ${uniqueId('rl')}`);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /linux\.uidMappings: newuidmap .* failed/);
    });
    test("root of a user namespace of its own (rootless podman's way): XDG state root, host devices bound, no cgroups, exec", () => {
      // podman runs the runtime as uid 0 of a user namespace it made, with a root-style config: no user namespace
      // in it, no uid maps. Host cgroups are out of reach and mknod is refused there.
      const b = makeBundle(
        ['sh', '-c', 'id -u; ls -ln /dev/null'],
        (s) => {
          for (const m of s.mounts ?? [])
            if (m.type === 'devpts') m.options = (m.options ?? []).filter((o) => !o.startsWith('gid='));
        },
        { busybox: true },
      );
      execFileSync('chown', ['-R', `${uid}:${uid}`, b.dir]);
      const xdg = path.join(b.dir, 'xdg');
      fs.mkdirSync(xdg);
      fs.chownSync(xdg, uid, uid);
      const inUserns = (cmd: string) =>
        asUser(
          `cd ${b.dir} && unshare --user --map-root-user --mount env XDG_RUNTIME_DIR=${xdg} USER=${USER} sh -c '${cmd}'`,
        );
      let r = inUserns(`node ${HAKO_BIN} run ${uniqueId('ns')}`);
      assert.equal(r.status, 0, r.stderr);
      const [id0, devNull] = r.stdout.trim().split('\n');
      assert.equal(id0, '0');
      assert.match(
        devNull,
        /^c\S+\s+\d+\s+65534\s+65534\s+1,\s+3\s/,
        '/dev/null is the host node, bound (its owner is unmapped)',
      );
      assert.doesNotMatch(
        r.stderr,
        /rootless: cannot create cgroup|warning/,
        'cgroups are skipped silently: no limits were asked',
      );

      b.spec.process!.args = ['sleep', '100'];
      b.save();
      const id = uniqueId('nsexec');
      r = inUserns(
        `node ${HAKO_BIN} run -d ${id} && node ${HAKO_BIN} exec ${id} id -u && ls ${xdg}/hako; node ${HAKO_BIN} delete -f ${id}`,
      );
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(
        r.stdout.trim().split('\n'),
        ['0', id],
        'exec works without cgroups; the state is under $XDG_RUNTIME_DIR/hako',
      );
      assert.ok(!fs.existsSync(`/run/hako/${id}`));
      fs.rmSync(b.dir, { recursive: true, force: true });
    });
  },
);
