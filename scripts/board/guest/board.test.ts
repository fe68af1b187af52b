// The board lane's guest tests (scripts/board/lane.sh): run by /init of an emulated x86_64, arm64 or armv7
// guest on Debian's own kernel, with hako loaded from the npm-installed tarball (HAKO_PKG), so what runs is the
// prebuilt addon and helpers of the package. Every result is read from what a container printed or wrote.
//
// Environment (set by scripts/board/init.sh): HAKO_PKG, HAKO_BIN, HAKO_BOARD_GUEST (x86_64, arm64 or armv7, with
// -v1 for a cgroup v1 guest), HAKO_BOARD_CGROUP (v1|v2). Container payloads: /opt/rootfs holds the guest's
// busybox-static and the prebuilt hako-probe of its arch; on arm64, /opt/rootfs-armhf holds the 32-bit armhf ones.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as Hako from '../../../lib/index';
import type * as ShimMetrics from '../../../lib/shim/metrics';

// Type-only import above: at run time hako comes from the installed package, never from this checkout.
const PKG = process.env.HAKO_PKG ?? '/opt/hako/node_modules/hako';
const hako = require(PKG) as typeof Hako;
const HAKO_BIN = process.env.HAKO_BIN ?? '/opt/hako/node_modules/hako/bin/hako';
const GUEST = process.env.HAKO_BOARD_GUEST ?? 'unknown';
const V1 = process.env.HAKO_BOARD_CGROUP === 'v1';
const ROOTFS = '/opt/rootfs';
const ROOTFS_ARMHF = '/opt/rootfs-armhf';
const STATE = '/run/hako-board';
const WORK = '/tmp/board';
/** uname -m expected in a container on each guest. */
const MACHINE: Record<string, string> = { x86_64: 'x86_64', arm64: 'aarch64', armv7: 'armv7l' };
const ARCH = GUEST.replace(/-v1$/, '');
// TCG on a shared 2-core machine: generous per test; the lane has the overall limit.
const T = { timeout: 300_000 };

fs.mkdirSync(STATE, { recursive: true });
fs.mkdirSync(WORK, { recursive: true });
const rt = new hako.Runtime({ root: STATE });
let seq = 0;

interface Bundle {
  dir: string;
  spec: Hako.Spec;
  out: string;
}

/**
 * A bundle over a shared read-only rootfs, with a tmpfs on /tmp and a host directory bound on /out that the
 * container can write to (as root of a user namespace too). `mutate` edits the spec before it is written.
 */
function bundle(args: string[], mutate?: (s: Hako.Spec) => void, rootfs = ROOTFS): Bundle {
  const dir = fs.mkdtempSync(path.join(WORK, 'b-'));
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(out, 0o777);
  const spec = hako.defaultSpec({ args, terminal: false });
  spec.root = { path: rootfs, readonly: true };
  spec.process!.env = ['PATH=/bin'];
  spec.mounts!.push(
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=8m'] },
    { destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] },
  );
  mutate?.(spec);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return { dir, spec, out };
}

const id = (prefix: string): string => `${prefix}-${++seq}`;

interface Ran {
  status: Hako.ExitStatus;
  out: string;
}

/** Run a container through the library; its stdout and stderr go to one file, returned with the exit status. */
async function runLib(cid: string, b: Bundle): Promise<Ran> {
  const file = path.join(b.dir, 'stdout');
  const fd = fs.openSync(file, 'w');
  try {
    const c = await rt.run(cid, { bundle: b.dir, stdio: [null, fd, fd] });
    fs.closeSync(fd);
    const status = await c.wait();
    await rt.delete(cid, { force: true });
    return { status, out: fs.readFileSync(file, 'utf8') };
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* closed above */
    }
    throw e;
  }
}

interface Cli {
  code: number | null;
  out: string;
  err: string;
}

/**
 * The CLI, as a separate Node process. stdout/stderr through files, not pipes: a container started by the
 * command inherits them and would keep a pipe open after the command has returned.
 */
function cli(args: string[]): Promise<Cli> {
  const dir = fs.mkdtempSync(path.join(WORK, 'cli-'));
  const o = fs.openSync(path.join(dir, 'out'), 'w');
  const e = fs.openSync(path.join(dir, 'err'), 'w');
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [HAKO_BIN, '--root', STATE, ...args], { stdio: ['ignore', o, e] });
    p.once('error', reject);
    p.once('exit', (code) => {
      fs.closeSync(o);
      fs.closeSync(e);
      resolve({
        code,
        out: fs.readFileSync(path.join(dir, 'out'), 'utf8'),
        err: fs.readFileSync(path.join(dir, 'err'), 'utf8'),
      });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The JSON lines hako-probe printed. */
function probeLines(out: string): Record<string, unknown>[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The cgroup file a container sees for `file` (v2: one hierarchy; v1: the controller's own). */
function cgFile(controller: string, file: string): string {
  return V1 ? `/sys/fs/cgroup/${controller}/${file}` : `/sys/fs/cgroup/${file}`;
}

after(async () => {
  for (const s of await rt.list().catch(() => [])) await rt.delete(s.id, { force: true }).catch(() => undefined);
});

describe(`board ${GUEST}: lifecycle`, () => {
  test('library: run, stdout, exit status; create/start/state/kill/delete', T, async () => {
    const b = bundle(['/bin/sh', '-c', 'echo "hello from $(uname -m) pid $$"; exit 3']);
    const r = await runLib(id('lib'), b);
    assert.equal(r.status.status, 3, r.out);
    assert.match(r.out, new RegExp(`^hello from ${MACHINE[ARCH]} pid 1$`, 'm'));

    const cid = id('lib');
    const fd = fs.openSync(path.join(b.dir, 'sleep.out'), 'w');
    const b2 = bundle(['/bin/sleep', '600']);
    const c = await rt.create(cid, { bundle: b2.dir, stdio: [null, fd, fd] });
    fs.closeSync(fd);
    assert.equal((await rt.state(cid)).status, 'created');
    await rt.start(cid);
    assert.equal((await rt.state(cid)).status, 'running');
    await rt.kill(cid, 'KILL');
    const st = await c.wait();
    assert.equal(st.signal, 9);
    assert.equal(st.status, 137);
    assert.equal((await rt.state(cid)).status, 'stopped');
    await rt.delete(cid);
    assert.equal(
      (await rt.list()).some((s) => s.id === cid),
      false,
    );
  });

  test('CLI: run (exit status, stdout), create/state/start/delete', T, async () => {
    const b = bundle(['/bin/sh', '-c', 'echo "cli says $(uname -m)"; exit 7']);
    const r = await cli(['run', '--bundle', b.dir, id('cli')]);
    assert.equal(r.code, 7, r.err);
    assert.match(r.out, new RegExp(`^cli says ${MACHINE[ARCH]}$`, 'm'));

    const cid = id('cli');
    const b2 = bundle(['/bin/sh', '-c', 'echo started > /out/started']);
    const c = await cli(['create', '--bundle', b2.dir, cid]);
    assert.equal(c.code, 0, c.err);
    const s1 = await cli(['state', cid]);
    assert.equal(JSON.parse(s1.out).status, 'created', s1.out + s1.err);
    assert.equal(fs.existsSync(path.join(b2.out, 'started')), false, 'nothing ran before start');
    const s = await cli(['start', cid]);
    assert.equal(s.code, 0, s.err);
    for (let i = 0; i < 100 && (await rt.state(cid)).status !== 'stopped'; i++) await sleep(100);
    assert.equal(fs.readFileSync(path.join(b2.out, 'started'), 'utf8'), 'started\n');
    const d = await cli(['delete', cid]);
    assert.equal(d.code, 0, d.err);
    const gone = await cli(['state', cid]);
    assert.notEqual(gone.code, 0, 'state of a deleted container fails');
    assert.match(gone.err, /does not exist|not found/i);
  });
});

describe(`board ${GUEST}: CLI exec and kill`, () => {
  test('CLI: run --detach, exec (exit status, stdout), kill, delete', T, async () => {
    const cid = id('cli');
    const b = bundle(['/bin/sleep', '600']);
    const r = await cli(['run', '--detach', '--bundle', b.dir, cid]);
    assert.equal(r.code, 0, r.err);
    try {
      const ex = await cli([
        'exec',
        cid,
        '/bin/sh',
        '-c',
        'echo "exec in $(cat /proc/1/cmdline | tr \\\\0 " ")"; exit 5',
      ]);
      assert.equal(ex.code, 5, ex.err);
      assert.match(ex.out, /^exec in \/bin\/sleep 600 $/m);
      const k = await cli(['kill', cid, 'KILL']);
      assert.equal(k.code, 0, k.err);
      for (let i = 0; i < 100 && (await rt.state(cid)).status !== 'stopped'; i++) await sleep(100);
      assert.equal((await rt.state(cid)).status, 'stopped');
    } finally {
      const d = await cli(['delete', '--force', cid]);
      assert.equal(d.code, 0, d.err);
    }
  });
});

describe(`board ${GUEST}: seccomp`, () => {
  // getppid never fails, so an errno from it can only come from the filter; keyctl is outside Docker's
  // allow-list, so the default profile answers EPERM; personality is allowed for a few exact argument values
  // only (0xffffffff, the query, is one; ADDR_NO_RANDOMIZE is not), which exercises argument comparisons
  // (the low word only on 32-bit ABIs).
  const calls =
    '/bin/probe syscall getppid; /bin/probe syscall keyctl 0; /bin/probe syscall personality 0xffffffff; ' +
    '/bin/probe syscall personality 0x0040000; grep -E "^Seccomp(_filters)?:" /proc/self/status';
  const errnoRule = (s: Hako.Spec): void => {
    s.linux!.seccomp!.syscalls = [
      { names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 33 /* EDOM */ },
      ...s.linux!.seccomp!.syscalls!,
    ];
  };

  test('the default profile denies keyctl (EPERM); an errno rule answers getppid with EDOM', T, async () => {
    const r = await runLib(id('sec'), bundle(['/bin/sh', '-c', calls], errnoRule));
    assert.equal(r.status.status, 0, r.out);
    const [ppid, keyctl, query, norandom] = probeLines(r.out);
    assert.deepEqual([ppid.syscall, ppid.ret, ppid.errno], ['getppid', -1, 33], r.out);
    assert.deepEqual([keyctl.syscall, keyctl.ret, keyctl.errno], ['keyctl', -1, 1], r.out);
    assert.deepEqual([query.syscall, query.errno], ['personality', 0], r.out);
    assert.deepEqual([norandom.syscall, norandom.ret, norandom.errno], ['personality', -1, 1], r.out);
    assert.match(r.out, /^Seccomp:\s+2$/m);
  });

  test('control: without a profile the same calls are not denied', T, async () => {
    const r = await runLib(
      id('sec'),
      bundle(['/bin/sh', '-c', calls], (s) => delete s.linux!.seccomp),
    );
    const [ppid, keyctl, query, norandom] = probeLines(r.out);
    assert.deepEqual([ppid.ret, ppid.errno], [1, 0], 'the parent is the shell, pid 1 of the container');
    assert.notEqual(keyctl.errno, 1, r.out);
    assert.equal(query.errno, 0, r.out);
    assert.equal(norandom.errno, 0, r.out);
    assert.match(r.out, /^Seccomp:\s+0$/m);
  });

  test(
    '32-bit armhf program on the arm64 kernel (compat ABI)',
    { ...T, skip: ARCH !== 'arm64' && 'only the arm64 guests run AArch32 programs' },
    async (t) => {
      // With the default profile (SCMP_ARCH_AARCH64 and its sub-architecture SCMP_ARCH_ARM), the ARM syscall
      // table is in the filter: the same rules apply to the 32-bit program.
      const r = await runLib(id('compat'), bundle(['/bin/sh', '-c', `uname -m; ${calls}`], errnoRule, ROOTFS_ARMHF));
      t.diagnostic(`armhf busybox/hako-probe under the default profile: ${JSON.stringify(r.out)}`);
      assert.equal(r.status.status, 0, r.out);
      // uname -m stays aarch64 for a 32-bit process unless it sets PER_LINUX32; the syscall numbers show the ABI.
      assert.match(r.out, /^aarch64$/m);
      const [ppid, keyctl, query, norandom] = probeLines(r.out);
      assert.deepEqual(
        [ppid.syscall, ppid.nr, ppid.ret, ppid.errno],
        ['getppid', 64 /* ARM EABI; AArch64's is 173 */, -1, 33],
        r.out,
      );
      assert.deepEqual(
        [keyctl.syscall, keyctl.nr, keyctl.ret, keyctl.errno],
        ['keyctl', 311 /* AArch64's is 219 */, -1, 1],
        r.out,
      );
      assert.deepEqual([query.nr, query.errno], [136 /* AArch64's is 92 */, 0], r.out);
      assert.deepEqual([norandom.ret, norandom.errno], [-1, 1], r.out);
      // A profile listing only SCMP_ARCH_AARCH64 has no ARM table: the first 32-bit call hits the bad-arch
      // action (KILL_THREAD, as libseccomp and runc), so the program dies of SIGSYS before printing anything.
      const k = await runLib(
        id('compat'),
        bundle(
          ['/bin/probe', 'echo', 'reached'],
          (s) =>
            (s.linux!.seccomp = {
              defaultAction: 'SCMP_ACT_ALLOW',
              architectures: ['SCMP_ARCH_AARCH64'],
              syscalls: [],
            }),
          ROOTFS_ARMHF,
        ),
      );
      t.diagnostic(
        `armhf hako-probe under an AArch64-only filter: status ${JSON.stringify(k.status)} output ${JSON.stringify(k.out)}`,
      );
      assert.equal(k.status.signal, 31, 'SIGSYS');
      assert.doesNotMatch(k.out, /reached/);
      // Control: the same program with no filter runs.
      const ok = await runLib(
        id('compat'),
        bundle(['/bin/probe', 'echo', 'reached'], (s) => delete s.linux!.seccomp, ROOTFS_ARMHF),
      );
      assert.equal(ok.status.status, 0, ok.out);
      assert.match(ok.out, /^reached$/m);
    },
  );
});

describe(`board ${GUEST}: user namespace`, () => {
  test('container root is uid 100000 outside', T, async () => {
    const b = bundle(
      ['/bin/sh', '-c', 'cat /proc/self/uid_map; echo "uid=$(id -u)"; echo x > /out/from-userns'],
      (s) => {
        s.linux!.namespaces!.push({ type: 'user' });
        s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      },
    );
    const r = await runLib(id('userns'), b);
    assert.equal(r.status.status, 0, r.out);
    assert.match(r.out, /^\s*0\s+100000\s+65536$/m);
    assert.match(r.out, /^uid=0$/m);
    const st = fs.statSync(path.join(b.out, 'from-userns'));
    assert.deepEqual([st.uid, st.gid], [100000, 100000]);
  });
});

describe(`board ${GUEST}: rootless`, () => {
  test('an unprivileged user (uid 1000) runs a container through the CLI, mapped to root inside', T, async () => {
    const uid = 1000;
    const xdg = path.join(WORK, `xdg-${uid}`);
    fs.mkdirSync(xdg, { recursive: true, mode: 0o700 });
    fs.chownSync(xdg, uid, uid);
    const dir = fs.mkdtempSync(path.join(WORK, 'rootless-'));
    fs.chmodSync(dir, 0o755);
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    fs.chownSync(out, uid, uid);
    // What `hako spec --rootless` writes for this user, over the shared rootfs.
    const spec = hako.defaultSpec({
      args: ['/bin/sh', '-c', 'cat /proc/self/uid_map; echo "uid=$(id -u)"; echo x > /out/f'],
      terminal: false,
      rootless: true,
      uid,
      gid: uid,
    });
    spec.root = { path: ROOTFS, readonly: true };
    spec.process!.env = ['PATH=/bin'];
    spec.mounts!.push({ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
    const o = path.join(dir, 'stdout');
    const e = path.join(dir, 'stderr');
    const [ofd, efd] = [fs.openSync(o, 'w'), fs.openSync(e, 'w')];
    const code = await new Promise<number | null>((resolve, reject) => {
      const p = spawn(process.execPath, [HAKO_BIN, 'run', '--bundle', dir, id('rootless')], {
        stdio: ['ignore', ofd, efd],
        uid,
        gid: uid,
        env: { PATH: '/bin:/opt/node/bin', XDG_RUNTIME_DIR: xdg, HOME: xdg, USER: 'user' },
      });
      p.once('error', reject);
      p.once('exit', resolve);
    });
    fs.closeSync(ofd);
    fs.closeSync(efd);
    const stdout = fs.readFileSync(o, 'utf8');
    assert.equal(code, 0, fs.readFileSync(e, 'utf8') + stdout);
    assert.match(stdout, /^\s*0\s+1000\s+1$/m);
    assert.match(stdout, /^uid=0$/m);
    assert.equal(fs.statSync(path.join(out, 'f')).uid, uid);
    assert.ok(fs.readdirSync(xdg).includes('hako'), 'state under $XDG_RUNTIME_DIR/hako');
  });
});

describe(`board ${GUEST}: cgroups (${V1 ? 'v1' : 'v2'})`, () => {
  test('memory limit: the allocating process is OOM-killed, the limit and the kill are seen inside', T, async () => {
    const mem = V1
      ? `cat ${cgFile('memory', 'memory.limit_in_bytes')}; grep oom_kill ${cgFile('memory', 'memory.oom_control')}`
      : `cat ${cgFile('memory', 'memory.max')}; grep oom_kill ${cgFile('memory', 'memory.events')}`;
    const b = bundle(
      ['/bin/sh', '-c', `dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null; echo "dd=$?"; ${mem}`],
      (s) => {
        s.linux!.resources = { ...s.linux!.resources, memory: { limit: 32 << 20, swap: 32 << 20 } };
      },
    );
    const r = await runLib(id('mem'), b);
    assert.equal(r.status.status, 0, r.out);
    assert.match(r.out, /^dd=137$/m, 'dd killed by SIGKILL');
    assert.match(r.out, new RegExp(`^${32 << 20}$`, 'm'));
    const kills = /oom_kill (\d+)/.exec(r.out);
    assert.ok(kills && Number(kills[1]) >= 1, r.out);
  });

  test('pids limit: forks beyond it fail, pids.current stays at the limit', T, async () => {
    // Only shell builtins after the inner shell: with every pid in use, the outer shell cannot fork a cat.
    const pids = cgFile('pids', '');
    const script =
      'sh -c \'i=0; while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); done\' 2>/dev/null; echo "inner=$?"; ' +
      `read max < ${pids}pids.max; read cur < ${pids}pids.current; echo "max=$max cur=$cur"; ` +
      `while read k v; do echo "event $k $v"; done < ${pids}pids.events`;
    const r = await runLib(
      id('pids'),
      bundle(['/bin/sh', '-c', script], (s) => (s.linux!.resources = { ...s.linux!.resources, pids: { limit: 8 } })),
    );
    assert.match(r.out, /^inner=[1-9]\d*$/m, 'the inner shell failed to fork');
    // At the limit while the inner shell lived (outer + inner + 6 sleeps); the inner shell's pid is free again.
    assert.match(r.out, /^max=8 cur=7$/m);
    const ev = /^event max (\d+)$/m.exec(r.out);
    assert.ok(ev && Number(ev[1]) >= 1, r.out);
  });

  test('cpu weight from cpu.shares', T, async () => {
    const file = V1 ? cgFile('cpu,cpuacct', 'cpu.shares') : cgFile('cpu', 'cpu.weight');
    const r = await runLib(
      id('cpu'),
      bundle(
        ['/bin/sh', '-c', `cat ${file}`],
        (s) => (s.linux!.resources = { ...s.linux!.resources, cpu: { shares: 512 } }),
      ),
    );
    assert.equal(r.status.status, 0, r.out);
    // v2: runc >= 1.3.2's mapping (lib/cgroups/convert.ts): ceil(10^((l^2 + 125 l)/612 - 7/34)), l = log2(512) = 9.
    assert.equal(r.out.trim(), V1 ? '512' : '59');
  });

  test(
    'device rules: a device bound in without a rule is refused (eBPF on v2), allowed once a rule names it',
    T,
    async () => {
      const script =
        'echo x > /dev/kmsg && echo kmsg=ok || echo kmsg=denied; echo x > /dev/null && echo null=ok || echo null=denied';
      const kmsg = (s: Hako.Spec): void => {
        s.mounts!.push({ destination: '/dev/kmsg', type: 'bind', source: '/dev/kmsg', options: ['bind'] });
      };
      const denied = await runLib(id('dev'), bundle(['/bin/sh', '-c', script], kmsg));
      assert.match(denied.out, /^kmsg=denied$/m, denied.out);
      assert.match(denied.out, /Operation not permitted/);
      assert.match(denied.out, /^null=ok$/m, denied.out);
      const allowed = await runLib(
        id('dev'),
        bundle(['/bin/sh', '-c', script], (s) => {
          kmsg(s);
          s.linux!.resources!.devices!.push({ allow: true, type: 'c', major: 1, minor: 11, access: 'w' });
        }),
      );
      assert.match(allowed.out, /^kmsg=ok$/m, allowed.out);
    },
  );

  test('pause and resume (freezer): a counter written from inside stops, then goes on', T, async () => {
    const cid = id('freeze');
    const b = bundle([
      '/bin/sh',
      '-c',
      'i=0; while :; do i=$((i+1)); echo $i > /out/n.tmp; mv /out/n.tmp /out/n; usleep 100000; done',
    ]);
    const devnull = fs.openSync('/dev/null', 'r+');
    const c = await rt.run(cid, { bundle: b.dir, stdio: [devnull, devnull, devnull] });
    fs.closeSync(devnull);
    const count = (): number => {
      try {
        return Number(fs.readFileSync(path.join(b.out, 'n'), 'utf8'));
      } catch {
        return 0;
      }
    };
    try {
      for (let i = 0; i < 300 && count() < 3; i++) await sleep(100);
      assert.ok(count() >= 3, 'the counter runs');
      await rt.pause(cid);
      assert.equal((await rt.state(cid)).status, 'paused');
      const frozen = count();
      await sleep(2000);
      assert.equal(count(), frozen, 'no progress while paused');
      await rt.resume(cid);
      assert.equal((await rt.state(cid)).status, 'running');
      for (let i = 0; i < 300 && count() <= frozen + 2; i++) await sleep(100);
      assert.ok(count() > frozen + 2, 'progress after resume');
      // exec into the running container: same pid namespace (the counter shell is pid 1), own exit status.
      const file = path.join(b.dir, 'exec.out');
      const fd = fs.openSync(file, 'w');
      const ex = await rt.exec(
        cid,
        {
          args: ['/bin/sh', '-c', 'echo "exec sees $(cat /proc/1/cmdline | tr \\\\0 " ")"; exit 4'],
          cwd: '/',
          env: ['PATH=/bin'],
          user: { uid: 0, gid: 0 },
        },
        { stdio: [null, fd, fd] },
      );
      fs.closeSync(fd);
      assert.equal((await ex.wait()).status, 4);
      assert.match(fs.readFileSync(file, 'utf8'), /^exec sees \/bin\/sh -c i=0;/m);
    } finally {
      await rt.kill(cid, 'KILL').catch(() => undefined);
      await c.wait();
      await rt.delete(cid, { force: true });
    }
  });
});

/** A protobuf message as its fields: varints as bigint, doubles as number, length-delimited as Buffer. */
type PbMsg = Map<number, (bigint | Buffer | number)[]>;
function protoFields(buf: Buffer): PbMsg {
  const out: PbMsg = new Map();
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      assert.ok(i < buf.length, 'a truncated varint');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    let v: bigint | Buffer | number;
    if ((key & 7) === 0) v = varint();
    else if ((key & 7) === 1) {
      v = buf.readDoubleLE(i);
      i += 8;
    } else {
      assert.equal(key & 7, 2, `field ${no}: wire type ${key & 7}`);
      const len = Number(varint());
      v = buf.subarray(i, i + len);
      i += len;
    }
    out.set(no, [...(out.get(no) ?? []), v]);
  }
  return out;
}
const pbUint = (m: PbMsg, no: number): bigint => (m.get(no)?.[0] as bigint) ?? 0n;
const pbMsg = (m: PbMsg, no: number): PbMsg => protoFields((m.get(no)?.[0] as Buffer) ?? Buffer.alloc(0));
const pbMsgs = (m: PbMsg, no: number): PbMsg[] => (m.get(no) ?? []).map((b) => protoFields(b as Buffer));
const pbStr = (m: PbMsg, no: number): string => ((m.get(no)?.[0] as Buffer) ?? Buffer.alloc(0)).toString();
/** A cgroup file as containerd reads a number: "max" is 2^64-1, absent is 0. */
function cgNum(dir: string, name: string): bigint {
  const f = path.join(dir, name);
  if (!fs.existsSync(f)) return 0n;
  const t = fs.readFileSync(f, 'utf8').trim();
  return t === 'max' ? 2n ** 64n - 1n : BigInt(t);
}
function cgKeyValues(dir: string, name: string): Map<string, bigint> {
  const f = path.join(dir, name);
  const text = fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
  return new Map(
    text
      .split('\n')
      .map((l) => l.trim().split(' '))
      .filter((w) => w.length === 2 && /^\d+$/.test(w[1]))
      .map(([k, v]) => [k, BigInt(v)]),
  );
}

describe(`board ${GUEST}: shim metrics (${V1 ? 'v1' : 'v2'})`, () => {
  // The containerd shim's Stats (lib/shim/metrics.ts), from the package: a running container's cgroup counters as
  // io.containerd.cgroups.v1.Metrics (cgroup v1) or v2.Metrics (pure cgroup v2), decoded here by the field numbers
  // of containerd's cgroup1/cgroup2 stats/metrics.proto and checked against the container's cgroup files. The
  // container writes 256 KiB with O_DIRECT to the guest's ram disk (/dev/ram0, brd, loaded by init.sh), given to
  // it as a device, with a write throttle far above that (kernels count v1 blkio.throttle.* only for a device
  // with a limit, as seen on 6.18).
  test(
    'a busy container: pids, cpu, memory, io, rdma, hugetlb, memory events, as its cgroup files say',
    T,
    async () => {
      // Not in the package (the shim runs from its bundle): lane.sh puts the checkout's dist/lib/shim beside it.
      const { containerdMetrics } = require(path.join(PKG, 'dist', 'lib', 'shim', 'metrics.js')) as typeof ShimMetrics;
      const limit = 64 << 20;
      const WRITTEN = 64 * 4096;
      const ram = fs.existsSync('/dev/ram0') ? fs.statSync('/dev/ram0') : undefined;
      assert.ok(ram && ram.isBlockDevice(), 'the guest has its ram disk /dev/ram0 (init.sh loads brd.ko)');
      const major = Math.floor(ram.rdev / 256) & 0xfff;
      const minor = (ram.rdev & 0xff) | ((ram.rdev >> 12) & 0xfff00);
      const b = bundle(
        [
          '/bin/sh',
          '-c',
          'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ' +
            `dd if=/dev/zero of=/dev/ram0 bs=4096 count=${WRITTEN / 4096} oflag=direct 2>/out/dd; ` +
            'echo busy > /out/done; exec sleep 600',
        ],
        (s) => {
          s.linux!.devices = [
            ...(s.linux!.devices ?? []),
            { path: '/dev/ram0', type: 'b', major, minor, fileMode: 0o600, uid: 0, gid: 0 },
          ];
          s.linux!.resources = {
            ...s.linux!.resources,
            memory: { limit },
            pids: { limit: 32 },
            devices: [...(s.linux!.resources?.devices ?? []), { allow: true, type: 'b', major, minor, access: 'rw' }],
            blockIO: { throttleWriteBpsDevice: [{ major, minor, rate: 10 ** 10 }] },
          };
        },
      );
      const cid = id('metrics');
      const nul = fs.openSync('/dev/null', 'w');
      const c = await rt.run(cid, { bundle: b.dir, stdio: [null, nul, nul] });
      fs.closeSync(nul);
      try {
        for (let t = 0; !fs.existsSync(path.join(b.out, 'done')); t++) {
          assert.ok(t < 2400, 'the container finished its loop');
          await sleep(50);
        }
        assert.match(fs.readFileSync(path.join(b.out, 'dd'), 'utf8'), /64\+0 records out/, 'the container wrote');
        const m = rt.cgroupManager(cid);
        assert.equal(m.mode === 'v2', !V1, `cgroup mode ${m.mode}`);
        const any = containerdMetrics(m);
        const f = protoFields(any.value);
        const dirs = m.paths();
        if (V1) {
          assert.equal(any.typeUrl, 'io.containerd.cgroups.v1.Metrics');
          const pids = pbMsg(f, 2);
          assert.ok(pbUint(pids, 1) >= 1n, `pids.current ${pbUint(pids, 1)}`);
          assert.equal(pbUint(pids, 2), 32n);
          const usage = pbMsg(pbMsg(f, 3), 1);
          assert.ok(pbUint(usage, 1) > 0n, 'cpu usage total (ns)');
          assert.ok((usage.get(4) ?? []).length >= 1, 'per-cpu usage');
          const mem = pbMsg(pbMsg(f, 4), 33);
          assert.equal(pbUint(mem, 1), BigInt(limit), 'memory limit');
          assert.ok(pbUint(mem, 2) > 0n && pbUint(mem, 2) <= BigInt(limit), `memory usage ${pbUint(mem, 2)}`);
          const oc = cgKeyValues(dirs.memory, 'memory.oom_control');
          const oom = pbMsg(f, 9);
          assert.deepEqual(
            [pbUint(oom, 1), pbUint(oom, 2), pbUint(oom, 3)],
            [oc.get('oom_kill_disable') ?? 0n, oc.get('under_oom') ?? 0n, oc.get('oom_kill') ?? 0n],
            'memory_oom_control',
          );
          // blkio io_service_bytes_recursive (1): the write on the ram disk, named as /proc/partitions names it.
          const write = pbMsgs(pbMsg(f, 5), 1).find(
            (e) => pbUint(e, 3) === BigInt(major) && pbUint(e, 4) === BigInt(minor) && pbStr(e, 1) === 'Write',
          );
          assert.ok(write, `a Write entry for ${major}:${minor}`);
          assert.ok(pbUint(write, 5) >= BigInt(WRITTEN), `bytes written ${pbUint(write, 5)}`);
          assert.equal(pbStr(write, 2), '/dev/ram0', 'BlkIOEntry.device');
        } else {
          const d = dirs[''];
          assert.equal(any.typeUrl, 'io.containerd.cgroups.v2.Metrics');
          const pids = pbMsg(f, 1);
          assert.ok(pbUint(pids, 1) >= 1n, `pids.current ${pbUint(pids, 1)}`);
          assert.equal(pbUint(pids, 2), 32n);
          const cpu = pbMsg(f, 2);
          assert.ok(pbUint(cpu, 1) > 0n, 'cpu usage_usec');
          assert.ok(pbUint(cpu, 2) + pbUint(cpu, 3) > 0n, 'cpu user_usec + system_usec');
          const mem = pbMsg(f, 4);
          assert.ok(pbUint(mem, 32) > 0n && pbUint(mem, 32) <= BigInt(limit), `memory usage ${pbUint(mem, 32)}`);
          assert.equal(pbUint(mem, 33), BigInt(limit), 'memory usage_limit');
          assert.ok(pbUint(mem, 1) + pbUint(mem, 2) > 0n, 'anon + file');
          assert.equal(pbUint(mem, 34), cgNum(d, 'memory.swap.current'), 'swap_usage');
          assert.equal(pbUint(mem, 35), cgNum(d, 'memory.swap.max'), 'swap_limit');
          const ev = cgKeyValues(d, 'memory.events');
          assert.ok(ev.size > 0, 'memory.events read');
          const events = pbMsg(f, 8);
          assert.deepEqual(
            [1, 2, 3, 4, 5, 6].map((no) => pbUint(events, no)),
            ['low', 'high', 'max', 'oom', 'oom_kill', 'oom_group_kill'].map((k) => ev.get(k) ?? 0n),
            'memory_events',
          );
          const ioStat = fs.existsSync(path.join(d, 'io.stat')) ? fs.readFileSync(path.join(d, 'io.stat'), 'utf8') : '';
          const ioLines = ioStat.split('\n').filter((l) => /^\d+:\d+ /.test(l));
          const io = pbMsg(f, 6);
          assert.deepEqual(
            pbMsgs(io, 1).map((e) => `${pbUint(e, 1)}:${pbUint(e, 2)} wbytes=${pbUint(e, 4)}`),
            ioLines.map((l) => `${l.split(' ')[0]} wbytes=${/wbytes=(\d+)/.exec(l)?.[1] ?? 0}`),
            'io usage, one entry per io.stat line',
          );
          const ramIo = pbMsgs(io, 1).find((e) => pbUint(e, 1) === BigInt(major) && pbUint(e, 2) === BigInt(minor));
          assert.ok(ramIo, `an io entry for the ram disk ${major}:${minor}`);
          assert.ok(pbUint(ramIo, 4) >= BigInt(WRITTEN), `wbytes ${pbUint(ramIo, 4)}`);
          assert.ok(pbUint(ramIo, 6) >= 1n, `wios ${pbUint(ramIo, 6)}`);
          const rdma = pbMsg(f, 5);
          const rdmaCurrent = fs.existsSync(path.join(d, 'rdma.current'))
            ? fs.readFileSync(path.join(d, 'rdma.current'), 'utf8')
            : '';
          assert.deepEqual(
            pbMsgs(rdma, 1).map((e) => pbStr(e, 1)),
            rdmaCurrent
              .split('\n')
              .filter((l) => l.trim().split(/\s+/).length === 3)
              .map((l) => l.trim().split(/\s+/)[0]),
            'rdma current devices',
          );
          const sizes = fs.readdirSync(d).flatMap((n) => /^hugetlb\.([^.]+)\.current$/.exec(n)?.[1] ?? []);
          const huge = pbMsgs(f, 7);
          assert.deepEqual(
            huge.map((h) => `${pbStr(h, 3)} ${pbUint(h, 1)} ${pbUint(h, 2)}`).sort(),
            sizes.map((s) => `${s} ${cgNum(d, `hugetlb.${s}.current`)} ${cgNum(d, `hugetlb.${s}.max`)}`).sort(),
            'hugetlb: pagesize current max',
          );
          if (fs.existsSync(path.join(d, 'cpu.pressure')))
            assert.ok(pbMsg(cpu, 7).has(1), 'cpu PSI "some" sent (containerd 2.x field)');
        }
      } finally {
        await rt.kill(cid, 'KILL').catch(() => undefined);
        await c.wait();
        await rt.delete(cid, { force: true });
      }
    },
  );
});

describe(`board ${GUEST}: fast setup`, () => {
  test('a pre-created container runs the given process on CPU 1 with SCHED_FIFO, read back inside', T, async () => {
    const cid = id('fast');
    const b = bundle(['/bin/probe', 'hello']);
    const file = path.join(b.dir, 'setup.out');
    const fd = fs.openSync(file, 'w');
    const c = await rt.create(cid, { bundle: b.dir, stdio: [null, fd, fd] });
    fs.closeSync(fd);
    await rt.setup(
      cid,
      { args: ['/bin/probe', 'json'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } },
      { cpuAffinity: '1', sched: 'FIFO:10' },
    );
    assert.equal((await c.wait()).status, 0);
    await rt.delete(cid);
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      pid: number;
      cpusAllowedList: string;
      sched: { policy: number; priority: number };
    };
    assert.equal(report.pid, 1);
    assert.equal(report.cpusAllowedList, '1');
    assert.deepEqual([report.sched.policy, report.sched.priority], [1 /* SCHED_FIFO */, 10]);
  });
});

describe(`board ${GUEST}: pool`, () => {
  test('Pool: pre-created containers run jobs on the requested CPU', T, async () => {
    const b = bundle(['/bin/probe', 'hello']);
    const pool = new hako.Pool(rt, { bundle: b.dir, size: 2, prefix: `pool${seq++}` });
    await pool.start();
    try {
      const jobs = await Promise.all(
        ['0', '1'].map((cpu) =>
          pool.run(
            {
              args: ['/bin/sh', '-c', `grep Cpus_allowed_list /proc/self/status > /out/cpu${cpu}`],
              cwd: '/',
              env: ['PATH=/bin'],
              user: { uid: 0, gid: 0 },
            },
            { cpuAffinity: cpu },
          ),
        ),
      );
      for (const j of jobs) assert.equal((await j.exit).status, 0);
      for (const cpu of ['0', '1'])
        assert.match(
          fs.readFileSync(path.join(b.out, `cpu${cpu}`), 'utf8'),
          new RegExp(`^Cpus_allowed_list:\\s+${cpu}$`, 'm'),
        );
    } finally {
      await pool.close();
    }
  });
});

describe(`board ${GUEST}: policy server`, () => {
  let server: Hako.PolicyServer;
  const socket = path.join(WORK, 'policy.sock');
  before(async () => {
    // The reference scenario: containers a-* may mount a tmpfs (size <= 16m) on /foo; b-* may not.
    server = new hako.PolicyServer({
      socket,
      policy: hako.parsePolicy(
        JSON.stringify({
          profiles: [
            {
              name: 'a',
              match: { ids: ['a-*'] },
              mount: [
                {
                  types: ['tmpfs'],
                  targets: ['/foo'],
                  flags: ['nosuid', 'nodev', 'noexec', 'ro'],
                  options: ['mode'],
                  limits: { size: '16m' },
                },
              ],
            },
            { name: 'b', match: { ids: ['b-*'] } },
          ],
        }),
        'board-policy.json',
      ),
      log: {
        debug() {},
        info() {},
        warn: (m: string) => console.error(`policy server: ${m}`),
        error: (m: string) => console.error(`policy server: ${m}`),
      },
    });
    await server.start();
  });
  after(async () => {
    await server?.close();
  });

  test('rootless container A may mount a tmpfs on /foo, container B is refused', T, async () => {
    const mk = (): Bundle =>
      bundle(
        ['/bin/sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /foo; echo "rc=$?"; grep -c " /foo " /proc/self/mountinfo'],
        (s) => {
          s.linux!.namespaces!.push({ type: 'user' });
          s.linux!.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
          s.linux!.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
          s.linux!.seccomp = hako.policySeccompSection(socket);
          // The server acts only as the caller could have: a mount needs CAP_SYS_ADMIN in the container's own
          // user namespace (the policy then restricts what it may mount; it never grants the capability).
          const caps = s.process!.capabilities!;
          for (const set of [caps.bounding, caps.effective, caps.permitted]) set?.push('CAP_SYS_ADMIN');
        },
      );
    const a = await runLib(id('a'), mk());
    assert.match(a.out, /^rc=0\s+1$/m, a.out);
    const b = await runLib(id('b'), mk());
    assert.match(b.out, /^rc=[1-9]\d*\s+0$/m, b.out);
    assert.match(b.out, /ermission denied|not permitted/i);
  });
});
