// The container's rootfs set-up against hostile images and configs, most of them attacks that worked on an
// earlier hako (and, for most, on runc before its fixes): what the container can reach through masked paths,
// the console, devices bound from the host, an rbind of /sys, a /proc that is a link, and the old root left by
// --no-pivot. Every test makes a real container and checks what the container and the host observe.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Spec } from '../lib/oci/types';
import {
  BUSYBOX,
  HAKO_BIN,
  ROOT_DIR,
  disposeRoot,
  hako,
  leftovers,
  makeBundle,
  mounts,
  testRoot,
  tmpDir,
  uniqueId,
  type ProbeReport,
} from './helpers/env';

const root = testRoot('rootfs-hardening');
const work = tmpDir('rootfs-hardening');
after(async () => {
  await disposeRoot(root);
  fs.rmSync(work, { recursive: true, force: true });
});

const noBusybox = !BUSYBOX && 'busybox-static is not installed';

// A global sysctl that is harmless to change and that every kernel built with printk has. Tests that could
// write it (on a runtime with the bug) restore it.
const SYSCTL = '/proc/sys/kernel/printk_ratelimit_burst';
const readSysctl = () => fs.readFileSync(SYSCTL, 'utf8');

// The kernel paths older kernels take: hako (and its init) run with mount_setattr failing with ENOSYS.
let withoutSetattr: string | undefined;
function withoutMountSetattr(): string {
  if (withoutSetattr) return withoutSetattr;
  withoutSetattr = path.join(work, 'without-mount-setattr');
  execFileSync('gcc', [
    '-O2',
    '-o',
    withoutSetattr,
    path.join(ROOT_DIR, 'test', 'fixtures', 'without-mount-setattr.c'),
  ]);
  return withoutSetattr;
}

type Run = (b: { dir: string }, id: string) => { status: number | null; stdout: string; stderr: string };
const runners: [string, Run][] = [
  ['', (b, id) => hako(root, ['run', '-b', b.dir, id])],
  [
    ' (a kernel without mount_setattr)',
    (b, id) =>
      spawnSync(withoutMountSetattr(), [process.execPath, HAKO_BIN, '--root', root, 'run', '-b', b.dir, id], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 30_000,
      }),
  ],
];

function sh(script: string, mutate?: (s: Spec) => void) {
  return makeBundle(['/bin/sh', '-c', script], mutate, { busybox: true });
}

describe('masked paths', { skip: noBusybox }, () => {
  test('with /dev bound from a shared directory whose null is a link to a sysctl, masks are still the null device (CVE-2025-31133 shape)', () => {
    const devdir = path.join(work, 'shared-dev');
    fs.rmSync(devdir, { recursive: true, force: true });
    fs.mkdirSync(devdir);
    fs.symlinkSync(SYSCTL, path.join(devdir, 'null'));
    const before = readSysctl();
    const b = sh(
      // Each write goes through a masked path; stat shows what the mask is.
      'for p in /proc/keys /proc/timer_list; do echo 77 > $p; echo "$p $?"; /bin/busybox stat -c "%F %t:%T" $p; done',
      (s) => {
        s.mounts = s.mounts!.filter((m) => !m.destination.startsWith('/dev'));
        s.mounts.push({ destination: '/dev', type: 'bind', source: devdir, options: ['rbind', 'nosuid'] });
        s.linux!.maskedPaths = ['/proc/keys', '/proc/timer_list'];
      },
    );
    try {
      const r = hako(root, ['run', '-b', b.dir, uniqueId('mask')]);
      assert.equal(readSysctl(), before, `the host's ${SYSCTL} is unchanged`);
      // hako masks with the host's /dev/null (crun refuses such a /dev instead): every mask is the null device.
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      for (const p of ['/proc/keys', '/proc/timer_list']) {
        const i = lines.indexOf(`${p} 0`);
        assert.ok(i >= 0, `write to ${p}: ${r.stdout}`);
        assert.equal(lines[i + 1], 'character special file 1:3', `${p} is masked by the null device`);
      }
      assert.equal(fs.readlinkSync(path.join(devdir, 'null')), SYSCTL, 'the shared directory is left as it was');
    } finally {
      if (readSysctl() !== before) fs.writeFileSync(SYSCTL, before);
    }
  });

  test('while another process keeps swapping the shared /dev/null between the device and a link to a sysctl, no mask is ever the sysctl (race, 8 runs)', async () => {
    const devdir = path.join(work, 'racing-dev');
    fs.rmSync(devdir, { recursive: true, force: true });
    fs.mkdirSync(devdir);
    const before = readSysctl();
    // The other side of a shared volume: renames make each swap atomic, so every look finds one or the other.
    const racer = spawn(
      'sh',
      [
        '-c',
        `cd ${devdir} && while :; do mknod n.tmp c 1 3 2>/dev/null; mv -fT n.tmp null; ln -sfn ${SYSCTL} l.tmp; mv -fT l.tmp null; done`,
      ],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 8; i++) {
        const b = sh(
          'for p in /proc/keys /proc/timer_list; do echo 77 > $p; /bin/busybox stat -c "%F %t:%T" $p; done',
          (s) => {
            s.mounts = s.mounts!.filter((m) => !m.destination.startsWith('/dev'));
            s.mounts.push({ destination: '/dev', type: 'bind', source: devdir, options: ['rbind', 'nosuid'] });
            s.linux!.maskedPaths = ['/proc/keys', '/proc/timer_list'];
          },
        );
        const r = hako(root, ['run', '-b', b.dir, uniqueId('race')]);
        assert.equal(readSysctl(), before, `run ${i}: the host's ${SYSCTL} is unchanged`);
        if (r.status === 0)
          assert.deepEqual(
            r.stdout.trim().split('\n'),
            ['character special file 1:3', 'character special file 1:3'],
            `run ${i}`,
          );
      }
    } finally {
      racer.kill();
      await new Promise((resolve) => racer.once('exit', resolve));
      if (readSysctl() !== before) fs.writeFileSync(SYSCTL, before);
    }
  });

  test('a masked file cannot be chmod-ed or chown-ed through the mask (the null device it shows is not writable)', () => {
    const hostNull = fs.statSync('/dev/null');
    const b = sh(
      '/bin/busybox chmod 600 /proc/kcore; echo "chmod $?"; /bin/busybox chown 1:1 /proc/kcore; echo "chown $?"',
      (s) => {
        s.process!.capabilities = Object.fromEntries(
          (['bounding', 'effective', 'permitted'] as const).map((k) => [
            k,
            ['CAP_CHOWN', 'CAP_FOWNER', 'CAP_DAC_OVERRIDE'],
          ]),
        );
        s.linux!.maskedPaths = ['/proc/kcore'];
      },
    );
    const r = hako(root, ['run', '-b', b.dir, uniqueId('mask')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /chmod 1/);
    assert.match(r.stdout, /chown 1/);
    const now = fs.statSync('/dev/null');
    assert.deepEqual(
      [now.mode, now.uid, now.gid],
      [hostNull.mode, hostNull.uid, hostNull.gid],
      "the host's /dev/null is unchanged",
    );
  });

  test('a masked path that is a link is covered itself, never followed; a read-only path that is a link is followed inside the root', () => {
    const b = sh('cat /etc/secret; echo "[$(cat /data/link)]"; echo x > /etc/ro-target; echo "write $?"', (s) => {
      s.root!.readonly = false;
      s.linux!.maskedPaths = ['/data/link'];
      s.linux!.readonlyPaths = ['/data/ro-link'];
    });
    fs.writeFileSync(path.join(b.rootfs, 'etc', 'secret'), 'visible\n');
    fs.writeFileSync(path.join(b.rootfs, 'etc', 'ro-target'), 'kept\n');
    fs.symlinkSync('/etc/secret', path.join(b.rootfs, 'data', 'link'));
    fs.symlinkSync('/etc/ro-target', path.join(b.rootfs, 'data', 'ro-link'));
    const r = hako(root, ['run', '-b', b.dir, uniqueId('mask')]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['visible', '[]', 'write 1']);
    assert.equal(fs.readFileSync(path.join(b.rootfs, 'etc', 'ro-target'), 'utf8'), 'kept\n');
  });

  for (const [how, run] of runners)
    test(`read-only paths are read-only on every mount below them${how}`, () => {
      const data = path.join(work, 'ro-sub');
      fs.mkdirSync(data, { recursive: true });
      const b = makeBundle(['/bin/probe', 'json'], (s) => {
        s.mounts!.push({ destination: '/srv/a', type: 'tmpfs', source: 'tmpfs' });
        s.mounts!.push({ destination: '/srv/a/b', type: 'bind', source: data, options: ['rbind'] });
        s.linux!.readonlyPaths = ['/srv'];
      });
      const r = run(b, uniqueId('ro'));
      assert.equal(r.status, 0, r.stderr);
      const m = mounts(JSON.parse(r.stdout) as ProbeReport);
      for (const p of ['/srv', '/srv/a', '/srv/a/b']) assert.match(m.get(p)?.opts ?? `no mount at ${p}`, /^ro(,|$)/, p);
    });
});

describe('console', () => {
  // Receive the pty master on a console socket (one SCM_RIGHTS fd, as go-runc's recvFd takes it) and save what
  // the container writes to it.
  async function consoleReceiver(): Promise<{ sock: string; done: Promise<string>; stop: () => void }> {
    const sock = path.join(work, `console-${uniqueId()}.sock`);
    const out = `${sock}.out`;
    const py = `
import socket, array, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
fds = array.array("i")
msg, anc, flags, addr = c.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
fds.frombytes(anc[0][2])
data = b""
while True:
    try:
        d = os.read(fds[0], 65536)
    except OSError:
        break
    if not d: break
    data += d
open(sys.argv[2], "wb").write(msg + b"\\n" + data)
`;
    const rx = spawn('python3', ['-c', py, sock, out], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => rx.stdout!.once('data', () => resolve()));
    const done = new Promise<string>((resolve) =>
      rx.once('exit', () => resolve(fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '')),
    );
    // A create that fails never connects: the receiver would wait for ever.
    return { sock, done, stop: () => rx.exitCode === null && rx.kill() };
  }

  test('links the image put at /dev/console and /dev/ptmx are never followed (CVE-2025-52565 shape)', async () => {
    const before = readSysctl();
    const b = makeBundle(['/bin/probe', 'json'], (s) => {
      s.process!.terminal = true;
      // /dev is the image's own directory, holding the links.
      s.mounts = s.mounts!.filter((m) => m.destination !== '/dev');
    });
    fs.symlinkSync(SYSCTL, path.join(b.rootfs, 'dev', 'console'));
    fs.symlinkSync(SYSCTL, path.join(b.rootfs, 'dev', 'ptmx'));
    const rx = await consoleReceiver();
    const id = uniqueId('tty');
    try {
      const r = hako(root, ['run', '-d', '--console-socket', rx.sock, '-b', b.dir, id]);
      assert.equal(r.status, 0, r.stderr);
      const text = await rx.done;
      const report = JSON.parse(text.split('\n').slice(1).join('\n').replace(/\r\n/g, '\n')) as ProbeReport & {
        stdoutIsTty: boolean;
      };
      assert.equal(report.stdoutIsTty, true);
      const m = mounts(report);
      assert.equal(m.get('/dev/console')?.fstype, 'devpts', '/dev/console is the terminal');
      assert.equal(m.get(SYSCTL), undefined, 'nothing is mounted over the sysctl the link named');
      assert.ok(
        fs.lstatSync(path.join(b.rootfs, 'dev', 'console')).isFile(),
        'the link at /dev/console was replaced by a file',
      );
      assert.equal(fs.readlinkSync(path.join(b.rootfs, 'dev', 'ptmx')), 'pts/ptmx', "/dev/ptmx is the runtime's link");
      assert.equal(readSysctl(), before);
    } finally {
      rx.stop();
      hako(root, ['delete', '--force', id]);
      if (readSysctl() !== before) fs.writeFileSync(SYSCTL, before);
    }
  });

  test(
    'exec with a terminal never opens what the running container put at /dev/ptmx',
    { skip: noBusybox },
    async () => {
      const before = readSysctl();
      const b = sh(`rm /dev/ptmx && ln -s ${SYSCTL} /dev/ptmx; exec sleep 100`);
      const id = uniqueId('tty');
      const rx = await consoleReceiver();
      try {
        assert.equal(hako(root, ['run', '-d', '-b', b.dir, id]).status, 0);
        const { pid } = JSON.parse(hako(root, ['state', id]).stdout) as { pid: number };
        const link = `/proc/${pid}/root/dev/ptmx`;
        for (
          let i = 0;
          i < 200 &&
          !(fs.existsSync(`/proc/${pid}`) && fs.lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink());
          i++
        )
          await new Promise((r) => setTimeout(r, 10));
        assert.equal(fs.readlinkSync(link), SYSCTL, 'the container replaced its /dev/ptmx');
        const r = hako(root, ['exec', '-d', '-t', '--console-socket', rx.sock, id, '/bin/probe', 'json']);
        assert.equal(r.status, 0, r.stderr);
        const report = JSON.parse(
          (await rx.done).split('\n').slice(1).join('\n').replace(/\r\n/g, '\n'),
        ) as ProbeReport & { stdoutIsTty: boolean };
        assert.equal(report.stdoutIsTty, true);
        assert.equal(readSysctl(), before);
      } finally {
        rx.stop();
        hako(root, ['delete', '--force', id]);
        if (readSysctl() !== before) fs.writeFileSync(SYSCTL, before);
      }
    },
  );

  test('a /dev/pts that is not devpts is refused for a terminal, naming it', async () => {
    const b = makeBundle(['/bin/probe', 'json'], (s) => {
      s.process!.terminal = true;
      s.mounts = s.mounts!.filter((m) => m.destination !== '/dev' && m.destination !== '/dev/pts');
    });
    fs.mkdirSync(path.join(b.rootfs, 'dev', 'pts'));
    fs.symlinkSync(SYSCTL, path.join(b.rootfs, 'dev', 'pts', 'ptmx'));
    const rx = await consoleReceiver();
    const id = uniqueId('tty');
    const r = hako(root, ['create', '--console-socket', rx.sock, '-b', b.dir, id]);
    rx.stop();
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /\/dev\/pts is not a devpts mount/);
    assert.deepEqual(leftovers(root, id), []);
  });
});

describe('rbind', { skip: noBusybox }, () => {
  for (const [how, run] of runners)
    test(`ro on an rbind of /sys reaches every mount under it: a cgroup delegated to the container user stays unchanged (CVE-2023-25809 shape)${how}`, () => {
      // As with a rootless container: the container's root is a host user that owns a cgroup in every hierarchy.
      const HOST_UID = 210000;
      const deleg = `hako-deleg-${process.pid}`;
      const hierarchies = fs
        .readdirSync('/sys/fs/cgroup')
        .filter((d) => fs.statSync(path.join('/sys/fs/cgroup', d)).isDirectory());
      for (const h of hierarchies) {
        fs.mkdirSync(path.join('/sys/fs/cgroup', h, deleg));
        fs.chownSync(path.join('/sys/fs/cgroup', h, deleg), HOST_UID, HOST_UID);
      }
      const dirs = hierarchies.map((h) => `/sys/fs/cgroup/${h}/${deleg}`).join(' ');
      const b = sh(
        `for d in ${dirs}; do mkdir $d/child 2>/dev/null && echo "made $d"; done; cat /proc/self/mountinfo`,
        (s) => {
          s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
          s.linux!.namespaces.push({ type: 'user' });
          s.linux!.uidMappings = [{ containerID: 0, hostID: HOST_UID, size: 65536 }];
          s.linux!.gidMappings = [{ containerID: 0, hostID: HOST_UID, size: 65536 }];
          s.mounts = s.mounts!.filter((m) => !m.destination.startsWith('/sys'));
          s.mounts.push({
            destination: '/sys',
            type: 'none',
            source: '/sys',
            options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
          });
        },
      );
      try {
        const r = run(b, uniqueId('rbind'));
        assert.equal(r.status, 0, r.stderr);
        for (const h of hierarchies)
          assert.ok(
            !fs.existsSync(path.join('/sys/fs/cgroup', h, deleg, 'child')),
            `host cgroup tree unchanged in ${h}`,
          );
        assert.doesNotMatch(r.stdout, /^made /m, 'no cgroup was made');
        const sysMounts = r.stdout.split('\n').filter((l) => / - /.test(l) && /^\/sys(\/|$)/.test(l.split(' ')[4]));
        assert.ok(sysMounts.length > hierarchies.length, `the rbind brought the submounts: ${sysMounts.length}`);
        for (const l of sysMounts) {
          const opts = l.split(' ')[5].split(',');
          for (const o of ['ro', 'nosuid', 'nodev', 'noexec']) assert.ok(opts.includes(o), `${o} on ${l}`);
        }
      } finally {
        for (const h of hierarchies) {
          const d = path.join('/sys/fs/cgroup', h, deleg);
          if (fs.existsSync(path.join(d, 'child'))) fs.rmdirSync(path.join(d, 'child'));
          fs.rmdirSync(d);
        }
      }
    });
});

describe('devices bound from the host (user namespace)', { skip: noBusybox }, () => {
  const HOST_UID = 220000;
  const userns = (s: Spec) => {
    s.linux!.namespaces!.push({ type: 'user' });
    s.linux!.uidMappings = [{ containerID: 0, hostID: HOST_UID, size: 65536 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: HOST_UID, size: 65536 }];
    // /dev is the image's own directory (the container's root owns it, as in a rootless image).
    s.mounts = s.mounts!.filter((m) => m.destination !== '/dev');
  };

  test("a link the image has at a device's path is replaced, never followed to bind the device over its target", () => {
    const b = sh('/bin/busybox stat -c "%F %t:%T" /dev/null; cat /etc/target', userns);
    fs.writeFileSync(path.join(b.rootfs, 'etc', 'target'), 'kept\n');
    fs.symlinkSync('/etc/target', path.join(b.rootfs, 'dev', 'null'));
    fs.lchownSync(path.join(b.rootfs, 'dev', 'null'), HOST_UID, HOST_UID);
    fs.chownSync(path.join(b.rootfs, 'dev'), HOST_UID, HOST_UID);
    const r = hako(root, ['run', '-b', b.dir, uniqueId('devlink')]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['character special file 1:3', 'kept']);
  });

  test("a configured device that the host's node at that path does not match is refused, naming both", () => {
    const b = sh('true', (s) => {
      userns(s);
      s.linux!.devices = [{ path: '/dev/null', type: 'c', major: 1, minor: 5 }];
    });
    fs.chownSync(path.join(b.rootfs, 'dev'), HOST_UID, HOST_UID);
    const id = uniqueId('devbad');
    const r = hako(root, ['create', '-b', b.dir, id]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /the host's \/dev\/null is not the configured device \(c 1:5\)/);
    assert.deepEqual(leftovers(root, id), []);
  });
});

describe('proc and sysfs destinations', () => {
  for (const [dir, type] of [
    ['proc', 'proc'],
    ['sys', 'sysfs'],
  ] as const) {
    test(`${type} is refused on a /${dir} that is a link in the image, as runc refuses it`, () => {
      const b = makeBundle(['/bin/probe', 'json']);
      fs.rmdirSync(path.join(b.rootfs, dir));
      fs.mkdirSync(path.join(b.rootfs, 'elsewhere'));
      fs.symlinkSync('/elsewhere', path.join(b.rootfs, dir));
      const id = uniqueId('link');
      const r = hako(root, ['create', '-b', b.dir, id]);
      assert.equal(r.status, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`${type} must be mounted on ordinary directory: /${dir} is a symlink`));
      assert.deepEqual(leftovers(root, id), []);
      assert.deepEqual(
        fs.readdirSync(path.join(b.rootfs, 'elsewhere')),
        [],
        'nothing was mounted or made at the target',
      );
    });
  }
});

describe('--no-pivot', { skip: noBusybox }, () => {
  // A process in a nested user namespace may mount a new proc only while a fully visible one is in its mount
  // namespace (the kernel's mount_too_revealing): the container's own /proc is not (masks cover parts of it).
  const nested = '/bin/busybox unshare -mrpf /bin/sh -c "mount -t proc proc /tmp && echo MOUNTED || echo REFUSED"';
  const bundle = (userns: boolean) =>
    sh(nested, (s) => {
      delete s.linux!.seccomp; // the default profile refuses unshare of namespaces outright
      // Mapping uid 0 in a new user namespace needs CAP_SETFCAP (Linux 5.12), which Docker's default set has.
      const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETFCAP'];
      s.process!.capabilities = { bounding: caps, effective: caps, permitted: caps };
      if (userns) {
        // The host's mounts are locked in the container's user namespace: /proc cannot be detached, only covered.
        s.linux!.namespaces!.push({ type: 'user' });
        s.linux!.uidMappings = [{ containerID: 0, hostID: 230000, size: 65536 }];
        s.linux!.gidMappings = [{ containerID: 0, hostID: 230000, size: 65536 }];
      }
    });

  for (const userns of [false, true])
    test(`a nested user namespace cannot mount proc, with or without pivot_root${userns ? ' (container in a user namespace)' : ''}`, () => {
      for (const args of [['--no-pivot'], []]) {
        const r = hako(root, ['run', ...args, '-b', bundle(userns).dir, uniqueId('nopivot')]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), 'REFUSED', `${args.join(' ') || 'pivot_root'}: ${r.stdout} ${r.stderr}`);
      }
    });
});
