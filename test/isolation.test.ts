// The Linux fields of the runtime spec, each observed from inside a real container, plus the errors for
// invalid values and the symlink-escape attempts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Spec } from '../lib/oci/types';
import {
  hako,
  hostNs,
  leftovers,
  makeBundle,
  mounts,
  runProbe,
  testRoot,
  tmpDir,
  uniqueId,
  type Bundle,
  disposeRoot,
} from './helpers/env';

const root = testRoot('isolation');
const work = tmpDir('isolation');
after(async () => {
  await disposeRoot(root);
  fs.rmSync(work, { recursive: true, force: true });
});

const probe = (mutate: (s: Spec) => void, args = ['/bin/probe', 'json']) => {
  const r = runProbe(root, makeBundle(args, mutate));
  assert.equal(r.status, 0, r.stderr);
  return r.json;
};

function refused(mutate: (s: Spec) => void, expected: RegExp, b?: Bundle): void {
  const bundle = b ?? makeBundle(['/bin/probe', 'json'], mutate);
  const id = uniqueId('bad');
  const r = hako(root, ['create', '-b', bundle.dir, id]);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, expected);
  assert.deepEqual(leftovers(root, id), []);
}

describe('namespaces', () => {
  test('time namespace with timeOffsets', () => {
    const b = makeBundle(['/bin/probe', 'cat', '/proc/uptime'], (s) => {
      s.linux!.namespaces!.push({ type: 'time' });
      s.linux!.timeOffsets = { boottime: { secs: 86400 * 365, nanosecs: 0 }, monotonic: { secs: 7200 } };
    });
    const r = hako(root, ['run', '-b', b.dir, uniqueId('time')]);
    assert.equal(r.status, 0, r.stderr);
    const inside = Number(r.stdout.split(' ')[0]);
    const host = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    assert.ok(inside - host > 86400 * 365 - 60, `uptime inside ${inside} is a year ahead of ${host}`);
  });

  test('timeOffsets without a time namespace is refused', () =>
    refused(
      (s) => (s.linux!.timeOffsets = { boottime: { secs: 1 } }),
      /linux\.timeOffsets: needs a new time namespace/,
    ));

  test('joining a network namespace by path', () => {
    const name = `hako-test-${process.pid}`;
    execFileSync('ip', ['netns', 'add', name]);
    try {
      const j = probe(
        (s) =>
          (s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
            n.type === 'network' ? { type: 'network', path: `/run/netns/${name}` } : n,
          )),
      );
      assert.equal(j.namespaces.net, String(fs.statSync(`/run/netns/${name}`).ino));
      assert.notEqual(j.namespaces.net, hostNs('net'));
    } finally {
      execFileSync('ip', ['netns', 'delete', name]);
    }
  });

  test('a new network namespace has its loopback up; a joined one is left as its owner set it', () => {
    const flags = (mutate: (s: Spec) => void) => {
      const r = hako(root, [
        'run',
        '-b',
        makeBundle(['/bin/probe', 'cat', '/sys/class/net/lo/flags'], mutate).dir,
        uniqueId('lo'),
      ]);
      assert.equal(r.status, 0, r.stderr);
      return Number(r.stdout.trim());
    };
    const IFF_UP = 1;
    assert.equal(flags(() => {}) & IFF_UP, IFF_UP, 'lo is up in a new network namespace, as runc and crun do');
    const name = `hako-lo-${process.pid}`;
    execFileSync('ip', ['netns', 'add', name]);
    try {
      const joined = (s: Spec) =>
        (s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
          n.type === 'network' ? { type: 'network', path: `/run/netns/${name}` } : n,
        ));
      assert.equal(flags(joined) & IFF_UP, 0, "a joined namespace is the caller's to configure");
    } finally {
      execFileSync('ip', ['netns', 'delete', name]);
    }
  });

  test('a namespace path of the wrong type is an error', () => {
    refused(
      (s) =>
        (s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
          n.type === 'ipc' ? { type: 'ipc', path: '/proc/self/ns/net' } : n,
        )),
      /setns|namespace/,
    );
  });

  test('user namespace with uid/gid mappings', () => {
    const j = probe((s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      s.process!.user = { uid: 1000, gid: 1000 };
    });
    assert.match(j.uidMap, /^\s*0\s+200000\s+65536\s*$/);
    assert.equal(j.uid, 1000);
    assert.notEqual(j.namespaces.user, hostNs('user'));
    // mknod is refused there: the default devices are binds of the host's nodes, nosuid and noexec.
    for (const dev of ['/dev/null', '/dev/zero', '/dev/tty']) {
      const m = mounts(j).get(dev);
      assert.ok(m, `${dev} is a bind mount`);
      assert.match(m.opts, /(^|,)nosuid(,|$)/, dev);
      assert.match(m.opts, /(^|,)noexec(,|$)/, dev);
    }
  });
});

describe('process and kernel settings', () => {
  test('sysctl, hostname, domainname, oomScoreAdj, umask, personality, ioPriority', () => {
    const j = probe((s) => {
      s.linux!.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmni': '1000' };
      s.domainname = 'example.org';
      s.process!.oomScoreAdj = 345;
      s.process!.user.umask = 0o27;
      s.linux!.personality = { domain: 'LINUX32' };
      s.process!.ioPriority = { class: 'IOPRIO_CLASS_IDLE', priority: 0 };
    });
    assert.equal(j.domainname, 'example.org');
    assert.equal(j.oomScoreAdj, 345);
    assert.equal(j.umask, '0027');
    assert.equal(j.personality & 0xff, 8, 'PER_LINUX32');
    assert.equal(j.ioprio >> 13, 3, 'IOPRIO_CLASS_IDLE');
  });

  test('sysctls read back inside', () => {
    const b = makeBundle(
      ['/bin/probe', 'cat', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/kernel/shmmni'],
      (s) => (s.linux!.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmni': '1000' }),
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('sysctl')]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['1', '1000']);
    assert.equal(
      fs.readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim() === '1000',
      false,
      'the host value is untouched',
    );
  });

  test('kernel.hostname as a sysctl is refused (the hostname field sets it)', () =>
    refused(
      (s) => (s.linux!.sysctl = { 'kernel.hostname': 'other' }),
      /linux\.sysctl\.kernel\.hostname: conflicts with the "hostname" field/,
    ));
  test('kernel.domainname as a sysctl must agree with the domainname field', () =>
    refused((s) => {
      s.domainname = 'one';
      s.linux!.sysctl = { 'kernel.domainname': 'other' };
    }, /linux\.sysctl\.kernel\.domainname: "other" conflicts with the "domainname" field \("one"\)/));
  test('a sysctl outside any namespace is refused', () =>
    refused(
      (s) => (s.linux!.sysctl = { 'vm.swappiness': '10' }),
      /linux\.sysctl\.vm\.swappiness: is not in a separate kernel namespace/,
    ));
  test('a net sysctl without a network namespace is refused', () =>
    refused((s) => {
      s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
      s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'network');
    }, /needs a network namespace/));

  test('raising a hard rlimit is reported clearly', () => {
    const hard = Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());
    const b = makeBundle(
      ['/bin/probe', 'json'],
      (s) => (s.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: hard + 1000 }]),
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('rlimit')]);
    if (
      fs
        .readFileSync('/proc/self/status', 'utf8')
        .match(/CapEff:\s+([0-9a-f]+)/)![1]
        .endsWith('ffffff')
    ) {
      // With CAP_SYS_RESOURCE the raise is allowed; both outcomes are real kernel decisions.
      assert.ok(r.status === 0 || /error setting rlimit type 7/.test(r.stderr));
    } else {
      assert.notEqual(r.status, 0);
      assert.match(
        r.stderr,
        /error setting rlimit type 7: operation not permitted \(raising a hard limit needs CAP_SYS_RESOURCE\)/,
      );
    }
  });

  test('an AppArmor profile on a host without AppArmor is a clear error', () =>
    refused(
      (s) => (s.process!.apparmorProfile = 'docker-default'),
      /process\.apparmorProfile: AppArmor is not enabled/,
    ));

  test('an unknown personality domain is refused', () =>
    refused((s) => (s.linux!.personality = { domain: 'PDP11' }), /linux\.personality\.domain/));
});

describe('mounts and devices', () => {
  test('mount options, propagation, rro and a created destination', () => {
    const src = path.join(work, 'bindsrc');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    const j = probe((s) => {
      s.mounts!.push({
        destination: '/data/t',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'noexec', 'nodev', 'size=1m', 'mode=700'],
      });
      s.mounts!.push({ destination: '/new/dir/b', type: 'bind', source: src, options: ['rbind', 'rro', 'rprivate'] });
    });
    const m = mounts(j);
    const t = m.get('/data/t')!;
    assert.equal(t.fstype, 'tmpfs');
    for (const o of ['nosuid', 'nodev', 'noexec']) assert.match(t.opts, new RegExp(`(^|,)${o}(,|$)`));
    assert.match(t.superOpts, /size=1024k/);
    assert.match(m.get('/new/dir/b')!.opts, /(^|,)ro(,|$)/, 'rro made the bind read-only');
  });

  test('linux.devices are created with their type, numbers, mode and owner', () => {
    const b = makeBundle(
      ['/bin/probe', 'stat', '/dev/fuse'],
      (s) =>
        (s.linux!.devices = [
          { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o640, uid: 12, gid: 34 },
        ]),
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('dev')]);
    assert.equal(r.status, 0, r.stderr);
    const st = JSON.parse(r.stdout);
    assert.deepEqual([st.type, st.rdevMajor, st.rdevMinor, st.mode, st.uid, st.gid], ['char', 10, 229, '0640', 12, 34]);
  });

  test('a device path with a trailing slash names the node (/dev/fuse/ is /dev/fuse)', () => {
    const b = makeBundle(
      ['/bin/probe', 'stat', '/dev/fuse'],
      (s) => (s.linux!.devices = [{ path: '/dev/fuse/', type: 'c', major: 10, minor: 229 }]),
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('dev')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).type, 'char');
  });

  test('a device fileMode with st_mode type bits (as podman --privileged sends) is accepted if they match', () => {
    const b = makeBundle(
      ['/bin/probe', 'stat', '/dev/fuse'],
      (s) => (s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o20620 }]),
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('dev')]);
    assert.equal(r.status, 0, r.stderr);
    const st = JSON.parse(r.stdout);
    assert.deepEqual([st.type, st.mode], ['char', '0620']);
    refused(
      (s) => (s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o60620 }]),
      /linux\.devices\[0\]\.fileMode: file type bits 0o60000 do not match type "c"/,
    );
    refused(
      (s) => (s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o1000000 }]),
      /linux\.devices\[0\]\.fileMode/,
    );
  });

  test('a read-only tmpfs is made read-only after the mounts, the cwd and the devices below it (as runc)', () => {
    const data = path.join(work, 'ro-tmpfs-data');
    fs.mkdirSync(data, { recursive: true });
    const j = probe((s) => {
      s.mounts!.push({
        destination: '/x',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['ro', 'nosuid', 'nodev', 'mode=755'],
      });
      s.mounts!.push({ destination: '/x/y', type: 'bind', source: data, options: ['rbind'] });
      s.process!.cwd = '/x/sub';
      s.linux!.devices = [{ path: '/x/dev/null2', type: 'c', major: 1, minor: 3 }];
    });
    const m = mounts(j);
    const x = m.get('/x')!;
    assert.match(x.opts, /(^|,)ro(,|$)/, `read-only where it is mounted: ${x.opts}`);
    assert.match(x.opts, /nosuid/);
    assert.match(x.opts, /nodev/, 'the other flags stay');
    assert.equal(m.get('/x/y')?.opts.split(',')[0], 'rw', 'the bind below keeps its own flags');
    assert.equal(j.cwd, '/x/sub');
  });

  test('read-only paths keep the nosuid, nodev and noexec of what they cover (as runc)', () => {
    const j = probe((s) => {
      s.mounts!.find((m) => m.destination === '/proc')!.options = ['nosuid', 'noexec', 'nodev']; // as containerd's spec has it
      s.linux!.readonlyPaths = ['/proc/sys', '/proc/bus'];
    });
    for (const p of ['/proc/sys', '/proc/bus']) {
      const opts = mounts(j).get(p)!.opts.split(',');
      for (const o of ['ro', 'nosuid', 'nodev', 'noexec']) assert.ok(opts.includes(o), `${p}: ${o} in ${opts}`);
    }
  });

  test('rootfsPropagation and readonlyPaths', () => {
    const j = probe((s) => {
      s.linux!.rootfsPropagation = 'rslave';
      s.linux!.readonlyPaths = ['/data'];
    });
    assert.match(mounts(j).get('/data')!.opts, /(^|,)ro(,|$)/);
  });
});

describe('symlinks in the rootfs never lead outside it', () => {
  const outside = path.join(work, 'outside');

  function hostile(): Bundle {
    fs.rmSync(outside, { recursive: true, force: true });
    fs.mkdirSync(outside, { recursive: true });
    fs.writeFileSync(path.join(outside, 'keep'), 'untouched');
    const b = makeBundle(['/bin/probe', 'json'], (s) => {
      s.mounts!.push({ destination: '/escape-abs/m', type: 'tmpfs', source: 'tmpfs' });
      s.mounts!.push({ destination: '/escape-rel/m', type: 'tmpfs', source: 'tmpfs' });
      s.linux!.devices = [{ path: '/escape-dev/null2', type: 'c', major: 1, minor: 3 }];
      s.linux!.maskedPaths = [...s.linux!.maskedPaths!, '/escape-mask'];
    });
    // Absolute and relative links that point at a host directory, for a mount, a device and a mask.
    fs.symlinkSync(outside, path.join(b.rootfs, 'escape-abs'));
    fs.symlinkSync(path.relative(b.rootfs, outside), path.join(b.rootfs, 'escape-rel'));
    fs.symlinkSync('../../../../../../..' + outside, path.join(b.rootfs, 'escape-dev'));
    fs.symlinkSync(path.join(outside, 'keep'), path.join(b.rootfs, 'escape-mask'));
    return b;
  }

  test('mount targets, device paths and masked paths resolve inside the rootfs', () => {
    const b = hostile();
    const hostMounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const r = hako(root, ['run', '-b', b.dir, uniqueId('escape')]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(fs.readdirSync(outside), ['keep'], 'nothing was created outside the rootfs');
    assert.equal(fs.readFileSync(path.join(outside, 'keep'), 'utf8'), 'untouched');
    assert.equal(
      fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(outside),
      hostMounts.includes(outside),
      'no host mount on the outside dir',
    );
    // Inside, the links resolved within the root: the mounts landed under <rootfs><outside>.
    assert.ok(mounts(j).has(path.join(outside, 'm')), 'the absolute link resolved inside the container root');
    assert.ok(
      fs.existsSync(path.join(b.rootfs, outside, 'null2')) || fs.existsSync(path.join(b.rootfs, outside)),
      'the device went inside the rootfs',
    );
  });

  test('a missing process.cwd is created inside the rootfs, through a link aimed at the host, on a read-only root', () => {
    const b = hostile();
    const spec = JSON.parse(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8')) as Spec;
    spec.process!.cwd = '/escape-abs/work/dir';
    spec.root!.readonly = true;
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(spec));
    const r = hako(root, ['run', '-b', b.dir, uniqueId('cwd')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).cwd, path.join(outside, 'work', 'dir'), 'the process runs in it');
    assert.deepEqual(fs.readdirSync(outside), ['keep'], 'nothing was created outside the rootfs');
    assert.ok(fs.statSync(path.join(b.rootfs, outside, 'work', 'dir')).isDirectory(), 'created under the rootfs');
  });
});

describe('HOME', () => {
  const home = (mutate: (s: Spec) => void, passwd?: (etc: string) => void): string | undefined => {
    const b = makeBundle(['/bin/probe', 'json'], mutate);
    fs.mkdirSync(path.join(b.rootfs, 'etc'), { recursive: true });
    passwd?.(path.join(b.rootfs, 'etc'));
    const r = runProbe(root, b);
    assert.equal(r.status, 0, r.stderr);
    return (r.json.env as string[]).find((e) => e.startsWith('HOME='));
  };
  const passwd = (etc: string) =>
    fs.writeFileSync(
      path.join(etc, 'passwd'),
      'root:x:0:0:root:/root:/bin/sh\n::::\nno colons at all\nu:x:1000:1000:a user:/home/u:/bin/sh\n',
    );

  test("without HOME in the env, the user's home from the container's /etc/passwd, else /", () => {
    assert.equal(
      home((s) => (s.process!.user = { uid: 1000, gid: 1000 }), passwd),
      'HOME=/home/u',
    );
    assert.equal(
      home((s) => (s.process!.user = { uid: 0, gid: 0 }), passwd),
      'HOME=/root',
    );
    assert.equal(
      home((s) => (s.process!.user = { uid: 4242, gid: 4242 }), passwd),
      'HOME=/',
      'a uid without an entry',
    );
    assert.equal(
      home((s) => (s.process!.user = { uid: 1000, gid: 1000 })),
      'HOME=/',
      'no /etc/passwd',
    );
  });

  test('a HOME in the env is kept; a FIFO or a directory as /etc/passwd neither blocks nor breaks the init', () => {
    assert.equal(
      home((s) => (s.process!.env = [...s.process!.env!, 'HOME=/mine']), passwd),
      'HOME=/mine',
    );
    assert.equal(
      home(
        () => {},
        (etc) => execFileSync('mkfifo', [path.join(etc, 'passwd')]),
      ),
      'HOME=/',
    );
    assert.equal(
      home(
        () => {},
        (etc) => fs.mkdirSync(path.join(etc, 'passwd')),
      ),
      'HOME=/',
    );
  });
});

describe(
  'exec into a user namespace',
  { skip: !require('./helpers/env').BUSYBOX && 'busybox-static is not installed' },
  () => {
    test('the exec process is root of the container user namespace with the configured capabilities', () => {
      const b = makeBundle(
        ['/bin/sleep', '1000'],
        (s) => {
          s.linux!.namespaces!.push({ type: 'user' });
          s.linux!.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
          s.linux!.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
        },
        { busybox: true },
      );
      const id = uniqueId('userexec');
      assert.equal(hako(root, ['run', '-d', '-b', b.dir, id]).status, 0);
      const r = hako(root, ['exec', id, 'sh', '-c', 'id -u; grep CapEff /proc/self/status; cat /proc/self/uid_map']);
      assert.equal(r.status, 0, r.stderr);
      const [uid, capEff, map] = r.stdout.trim().split('\n');
      assert.equal(uid, '0');
      assert.equal(
        BigInt('0x' + capEff.split(/\s+/)[1]),
        BigInt('0x20000420'),
        'CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE',
      );
      assert.match(map, /^\s*0\s+200000\s+65536$/);
      assert.equal(hako(root, ['delete', '-f', id]).status, 0);
    });
  },
);

describe('idmapped mounts', { skip: !require('./helpers/env').BUSYBOX && 'busybox-static is not installed' }, () => {
  const src = path.join(work, 'idmap-src');
  const prepare = () => {
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'f'), 'x');
    fs.chownSync(path.join(src, 'f'), 0, 0);
    fs.writeFileSync(path.join(src, 'sub', 'g'), 'y');
    fs.chownSync(path.join(src, 'sub', 'g'), 0, 0);
  };

  test("idmap with the mount's own mappings shows host root files as the mapped ids", () => {
    prepare();
    const b = makeBundle(
      ['/bin/sh', '-c', 'stat -c "%u %g" /data/idm/f'],
      (s) => {
        s.mounts!.push({
          destination: '/data/idm',
          type: 'bind',
          source: src,
          options: ['bind', 'idmap'],
          uidMappings: [{ containerID: 0, hostID: 1234, size: 1 }],
          gidMappings: [{ containerID: 0, hostID: 4321, size: 1 }],
        });
      },
      { busybox: true },
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('idmap')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1234 4321');
    assert.equal(fs.statSync(path.join(src, 'f')).uid, 0, 'the host file is unchanged');
  });

  test('ridmap in a user-namespaced container uses its mappings: host root files are its root', () => {
    prepare();
    const b = makeBundle(
      ['/bin/sh', '-c', 'stat -c "%u" /data/f /data/sub/g; touch /data/new && stat -c "%u" /data/new'],
      (s) => {
        s.linux!.namespaces!.push({ type: 'user' });
        s.linux!.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
        s.linux!.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
        s.mounts!.push({ destination: '/data', type: 'bind', source: src, options: ['rbind', 'ridmap'] });
      },
      { busybox: true },
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('ridmap')]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['0', '0', '0']);
    assert.equal(fs.statSync(path.join(src, 'new')).uid, 0, 'a file the container root creates is host root on disk');
  });

  test('idmap on a mount that is not a bind mount is refused', () =>
    refused(
      (s) =>
        s.mounts!.push({
          destination: '/x',
          type: 'tmpfs',
          source: 'tmpfs',
          options: ['idmap'],
          uidMappings: [{ containerID: 0, hostID: 1, size: 1 }],
          gidMappings: [{ containerID: 0, hostID: 1, size: 1 }],
        }),
      /idmap and ridmap apply to bind mounts only/,
    ));

  test('idmap without any mapping is refused', () =>
    refused(
      (s) => s.mounts!.push({ destination: '/x', type: 'bind', source: src, options: ['bind', 'idmap'] }),
      /an idmapped mount needs uidMappings/,
    ));
});

describe(
  'tmpfs over a directory of the image',
  { skip: !require('./helpers/env').BUSYBOX && 'busybox-static is not installed' },
  () => {
    test('takes its mode unless options set one, and with tmpcopyup a copy of its contents (links never followed)', () => {
      const outside = path.join(work, 'copyup-outside');
      fs.mkdirSync(outside, { recursive: true });
      fs.writeFileSync(path.join(outside, 'secret'), 'host');
      const b = makeBundle(
        [
          '/bin/sh',
          '-c',
          'stat -c "%n %a %u:%g" /etc /etc/sub /etc/sub/f /etc/setuid /run /tmp; cat /etc/sub/f; readlink /etc/link; readlink /etc/out; ls /etc/out/ 2>&1; test -p /etc/fifo && echo fifo; echo w > /etc/new && echo writable',
        ],
        (s) => {
          s.root!.readonly = true;
          s.mounts!.push({ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'tmpcopyup'] });
          s.mounts!.push({ destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
          s.mounts!.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=1777'] });
        },
        { busybox: true },
      );
      const etc = path.join(b.rootfs, 'etc');
      fs.chmodSync(etc, 0o751);
      fs.mkdirSync(path.join(etc, 'sub'), { mode: 0o700 });
      fs.chmodSync(path.join(etc, 'sub'), 0o710);
      fs.writeFileSync(path.join(etc, 'sub', 'f'), 'from the image\n');
      fs.chownSync(path.join(etc, 'sub', 'f'), 123, 456);
      fs.writeFileSync(path.join(etc, 'setuid'), '');
      fs.chownSync(path.join(etc, 'setuid'), 7, 7);
      fs.chmodSync(path.join(etc, 'setuid'), 0o4755);
      fs.symlinkSync('sub/f', path.join(etc, 'link'));
      fs.symlinkSync(outside, path.join(etc, 'out')); // copied as a link: inside, it points at nothing
      execFileSync('mkfifo', [path.join(etc, 'fifo')]);
      fs.mkdirSync(path.join(b.rootfs, 'run'), { mode: 0o755 });
      fs.chmodSync(path.join(b.rootfs, 'run'), 0o755);
      fs.chmodSync(path.join(b.rootfs, 'tmp'), 0o700);
      const r = hako(root, ['run', '-b', b.dir, uniqueId('copyup')]);
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.deepEqual(lines.slice(0, 6), [
        '/etc 751 0:0',
        '/etc/sub 710 0:0',
        '/etc/sub/f 644 123:456',
        '/etc/setuid 4755 7:7',
        '/run 755 0:0',
        '/tmp 1777 0:0',
      ]);
      assert.equal(lines[6], 'from the image');
      assert.deepEqual(lines.slice(7, 9), ['sub/f', outside]);
      assert.match(
        lines[9],
        /No such file or directory/,
        'the absolute link resolves in the container, not on the host',
      );
      assert.deepEqual(
        lines.slice(10),
        ['fifo', 'writable'],
        'a fifo is recreated, not opened; the copy is a writable tmpfs on a read-only root',
      );
      assert.deepEqual(
        fs.readdirSync(etc).sort(),
        ['fifo', 'link', 'out', 'setuid', 'sub'],
        'the image itself is untouched',
      );
    });

    test('tmpcopyup on a mount that is not a tmpfs is refused, naming the field', () => {
      refused(
        (s) => s.mounts!.push({ destination: '/data', type: 'bind', source: '/tmp', options: ['rbind', 'tmpcopyup'] }),
        /mounts\[\d+\]\.options: tmpcopyup applies to tmpfs mounts only/,
      );
    });
  },
);
