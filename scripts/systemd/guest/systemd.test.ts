// The systemd cgroup driver against a real systemd (scripts/systemd/lane.sh): run by a oneshot unit of an
// emulated x86_64 guest whose PID 1 is Debian's systemd, booted on pure cgroup v2, systemd's hybrid layout or
// pure legacy v1. hako is this checkout's build (/opt/hako), driven through its CLI as containerd's shim and
// podman drive runc: `hako --systemd-cgroup ...`; by containerd's runc shim (ctr, and the CRI plugin with
// SystemdCgroup = true over the CRI gRPC API); and by an unprivileged user whose own systemd makes the scope.
// Every check reads what systemd (systemctl show) or the kernel (the scope's cgroup files) says.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { test } from 'node:test';
import type * as Hako from '../../../lib/index';

const hako = require(process.env.HAKO_PKG ?? '/opt/hako') as typeof Hako;
const HAKO_BIN = process.env.HAKO_BIN ?? '/opt/hako/bin/hako';
const ROOTFS = '/opt/rootfs';
const STATE = '/run/hako-systemd';
const WORK = '/tmp/sd';
const CG = '/sys/fs/cgroup';
const T = { timeout: 300_000 };
/** Booted with systemd.unified_cgroup_hierarchy=0: systemd's hybrid layout, the controllers on cgroup v1. */
const V1 = fs.existsSync(`${CG}/memory/cgroup.procs`);
/** A control file of a cgroup (its path below the root) in the hierarchy of ctrl (v1) or the cgroup2 one. */
const cgFile = (cgroup: string, ctrl: string, name: string): string =>
  V1 ? `${CG}/${ctrl}${cgroup}/${name}` : `${CG}${cgroup}/${name}`;
/** Whether any hierarchy still has the cgroup. */
const cgExists = (cgroup: string): boolean =>
  V1
    ? ['memory', 'cpu', 'pids', 'cpuset', 'freezer', 'devices', 'systemd', 'unified'].some((c) =>
        fs.existsSync(`${CG}/${c}${cgroup}`),
      )
    : fs.existsSync(`${CG}${cgroup}`);
/** The process's cgroup as /proc/PID/cgroup says it: the memory line on v1, the 0:: line on v2. */
const procCgroup = (text: string): string | undefined => (V1 ? /^\d+:memory:(.*)$/m : /^0::(.*)$/m).exec(text)?.[1];

fs.mkdirSync(STATE, { recursive: true });
fs.mkdirSync(WORK, { recursive: true });

interface Run {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

let runs = 0;
/**
 * stdout and stderr through files, not pipes: a container that create starts inherits them, and would hold
 * a pipe open (and spawnSync waiting) long after the command has returned.
 */
function run(cmd: string, args: string[]): Run {
  const base = path.join(WORK, `run-${++runs}`);
  const o = fs.openSync(`${base}.out`, 'w');
  const e = fs.openSync(`${base}.err`, 'w');
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', o, e], timeout: 240_000 });
  const ms = Date.now() - t0;
  fs.closeSync(o);
  fs.closeSync(e);
  return {
    code: r.status,
    out: fs.readFileSync(`${base}.out`, 'utf8'),
    err: fs.readFileSync(`${base}.err`, 'utf8'),
    ms,
  };
}

/** The CLI with the runc-style global flag first, as containerd's shim passes it. */
const cli = (args: string[], driver: string[] = ['--systemd-cgroup']): Run =>
  run(process.execPath, [HAKO_BIN, '--root', STATE, ...driver, ...args]);

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}${r.out}`);
  return r;
}

/** systemctl show -p ... as a map; a property it prints once per entry (DeviceAllow) joined with "; ". */
function show(unit: string, props: string[]): Record<string, string> {
  const r = ok(run('systemctl', ['show', unit, ...props.flatMap((p) => ['-p', p])]), `systemctl show ${unit}`);
  const out: Record<string, string> = {};
  for (const l of r.out.split('\n').filter(Boolean)) {
    const k = l.slice(0, l.indexOf('='));
    const v = l.slice(l.indexOf('=') + 1);
    out[k] = out[k] === undefined ? v : `${out[k]}; ${v}`;
  }
  return out;
}

const read = (file: string): string => fs.readFileSync(file, 'utf8').trim();

function bundle(args: string[], cgroupsPath: string | undefined, mutate?: (s: Hako.Spec) => void): string {
  const dir = fs.mkdtempSync(path.join(WORK, 'b-'));
  const spec = hako.defaultSpec({ args, terminal: false });
  spec.root = { path: ROOTFS, readonly: true };
  spec.process!.env = ['PATH=/bin'];
  if (cgroupsPath !== undefined) spec.linux!.cgroupsPath = cgroupsPath;
  mutate?.(spec);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return dir;
}

/** hako-* units systemd knows about, in any state. */
function hakoUnits(): string[] {
  const r = ok(
    run('systemctl', ['list-units', '--all', '--plain', '--no-legend', 'hako*', '*-sd*']),
    'systemctl list-units',
  );
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/)[0]);
}

const MB = 1024 * 1024;

test('systemd is PID 1 and the driver is reachable', () => {
  assert.equal(read('/proc/1/comm'), 'systemd');
  assert.ok(fs.existsSync('/run/systemd/system'));
  const v = ok(run('systemctl', ['--version']), 'systemctl --version').out.split('\n')[0];
  const mounts = read('/proc/self/mounts');
  const layout = !V1
    ? `cgroup2 controllers: ${read(`${CG}/cgroup.controllers`)}`
    : / cgroup2 /.test(mounts)
      ? "cgroup v1 controllers (hybrid: systemd's tree on cgroup2)"
      : 'pure cgroup v1 (legacy: no cgroup2 mount)';
  console.log(`# ${v}; ${layout}`);
  if (process.env.HAKO_SYSTEMD_LAYOUT === 'legacy')
    assert.doesNotMatch(mounts, / cgroup2 /, 'legacy: no cgroup2 mount at all');
});

test(
  'create in a nested slice: the scope carries the limits as properties and in its cgroup files; start, ps, pause, resume, update, delete',
  T,
  () => {
    const b = bundle(['sleep', '600'], 'hako-sd.slice:hako:c1', (s) => {
      s.linux!.resources = {
        memory: { limit: 64 * MB, swap: 96 * MB, reservation: 16 * MB },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
        pids: { limit: 50 },
      };
    });
    const created = ok(cli(['create', '--bundle', b, 'c1']), 'create');
    console.log(`# create took ${created.ms} ms`);
    const unit = 'hako-c1.scope';
    const cg = `/hako.slice/hako-sd.slice/${unit}`;
    const f = (ctrl: string, name: string) => read(cgFile(cg, ctrl, name));
    const p = show(unit, [
      'ActiveState',
      'Slice',
      'ControlGroup',
      'Delegate',
      'MemoryMax',
      'MemoryLimit',
      'MemoryLow',
      'MemorySwapMax',
      'CPUWeight',
      'CPUShares',
      'CPUQuotaPerSecUSec',
      'CPUQuotaPeriodUSec',
      'AllowedCPUs',
      'AllowedMemoryNodes',
      'TasksMax',
      'DevicePolicy',
      'DeviceAllow',
    ]);
    console.log(`# systemctl show ${unit}: ${JSON.stringify(p)}`);
    assert.equal(p.ActiveState, 'active');
    assert.equal(p.Slice, 'hako-sd.slice');
    assert.equal(p.ControlGroup, `/hako.slice/hako-sd.slice/${unit}`);
    assert.equal(p.Delegate, 'yes');
    if (V1) {
      // runc's v1 properties: MemoryLimit and CPUShares (swap and memory.low have none there: files only).
      assert.equal(p.MemoryLimit, String(64 * MB));
      assert.equal(p.CPUShares, '512');
    } else {
      assert.equal(p.MemoryMax, String(64 * MB));
      assert.equal(p.MemoryLow, String(16 * MB));
      assert.equal(p.MemorySwapMax, String(32 * MB));
      assert.equal(p.CPUWeight, '59'); // 512 shares, runc >= 1.3.2's conversion
    }
    assert.equal(p.CPUQuotaPerSecUSec, '500ms');
    assert.equal(p.CPUQuotaPeriodUSec, '100ms');
    assert.equal(p.AllowedCPUs, '0');
    assert.equal(p.AllowedMemoryNodes, '0');
    assert.equal(p.TasksMax, '50');
    assert.equal(p.DevicePolicy, 'strict');
    assert.match(p.DeviceAllow, /\/dev\/char\/1:3 rwm/);
    // The kernel's side: the files under the scope.
    if (V1) {
      assert.equal(f('memory', 'memory.limit_in_bytes'), String(64 * MB));
      assert.equal(f('memory', 'memory.soft_limit_in_bytes'), String(16 * MB));
      if (fs.existsSync(cgFile(cg, 'memory', 'memory.memsw.limit_in_bytes')))
        assert.equal(f('memory', 'memory.memsw.limit_in_bytes'), String(96 * MB));
      assert.equal(f('cpu', 'cpu.shares'), '512');
      assert.equal(f('cpu', 'cpu.cfs_quota_us'), '50000');
      assert.equal(f('cpu', 'cpu.cfs_period_us'), '100000');
    } else {
      assert.equal(f('', 'memory.max'), String(64 * MB));
      assert.equal(f('', 'memory.low'), String(16 * MB));
      assert.equal(f('', 'memory.swap.max'), String(32 * MB));
      assert.equal(f('', 'cpu.weight'), '59');
      assert.equal(f('', 'cpu.max'), '50000 100000');
    }
    assert.equal(f('cpuset', 'cpuset.cpus'), '0');
    assert.equal(f('pids', 'pids.max'), '50');
    const state = JSON.parse(ok(cli(['state', 'c1']), 'state').out) as { pid: number; status: string };
    assert.equal(state.status, 'created');
    for (const ctrl of V1 ? ['memory', 'pids', 'cpuset', 'freezer', 'devices'] : [''])
      assert.deepEqual(
        read(cgFile(cg, ctrl, 'cgroup.procs'))
          .split('\n')
          .map(Number),
        [state.pid],
        `${ctrl} cgroup.procs`,
      );
    assert.equal(procCgroup(read(`/proc/${state.pid}/cgroup`)), cg);

    ok(cli(['start', 'c1']), 'start');
    assert.deepEqual(JSON.parse(ok(cli(['ps', '--format', 'json', 'c1']), 'ps').out), [state.pid]);
    // exec joins the scope; events --stats reads its files.
    const ex = ok(cli(['exec', 'c1', 'cat', '/proc/self/cgroup']), 'exec');
    assert.equal(procCgroup(ex.out), '/', "in the container's cgroup namespace, the scope is its root");
    const stats = JSON.parse(ok(cli(['events', '--stats', 'c1']), 'events --stats').out) as {
      type: string;
      data: { memory: { usage: { limit: number } }; pids: { current: number; limit: number } };
    };
    assert.equal(stats.type, 'stats');
    assert.equal(stats.data.memory.usage.limit, 64 * MB);
    assert.equal(stats.data.pids.limit, 50);
    assert.ok(stats.data.pids.current >= 1);
    ok(cli(['pause', 'c1']), 'pause');
    if (V1) assert.equal(f('freezer', 'freezer.state'), 'FROZEN');
    else assert.match(f('', 'cgroup.events'), /^frozen 1$/m);
    assert.equal(JSON.parse(ok(cli(['state', 'c1']), 'state').out).status, 'paused');
    ok(cli(['resume', 'c1']), 'resume');
    if (V1) assert.equal(f('freezer', 'freezer.state'), 'THAWED');
    else assert.match(f('', 'cgroup.events'), /^frozen 0$/m);

    ok(
      cli(['update', '--memory', '128m', '--memory-swap', '160m', '--pids-limit', '70', '--cpu-quota', '25000', 'c1']),
      'update',
    );
    if (V1) {
      assert.deepEqual(show(unit, ['MemoryLimit', 'TasksMax', 'CPUQuotaPerSecUSec']), {
        MemoryLimit: String(128 * MB),
        TasksMax: '70',
        CPUQuotaPerSecUSec: '250ms',
      });
      assert.equal(f('memory', 'memory.limit_in_bytes'), String(128 * MB));
      assert.equal(f('cpu', 'cpu.cfs_quota_us'), '25000');
    } else {
      const u = show(unit, ['MemoryMax', 'MemorySwapMax', 'TasksMax', 'CPUQuotaPerSecUSec']);
      assert.deepEqual(u, {
        MemoryMax: String(128 * MB),
        MemorySwapMax: String(32 * MB),
        TasksMax: '70',
        CPUQuotaPerSecUSec: '250ms',
      });
      assert.equal(f('', 'memory.max'), String(128 * MB));
      assert.equal(f('', 'cpu.max'), '25000 100000');
    }
    assert.equal(f('pids', 'pids.max'), '70');

    ok(cli(['kill', 'c1', 'KILL']), 'kill');
    for (let i = 0; i < 100 && JSON.parse(ok(cli(['state', 'c1']), 'state').out).status !== 'stopped'; i++)
      spawnSync('sleep', ['0.1']);
    const del = ok(cli(['delete', 'c1']), 'delete');
    console.log(`# delete took ${del.ms} ms`);
    assert.equal(show(unit, ['LoadState']).LoadState, 'not-found');
    assert.ok(!cgExists(cg), `${cg} is gone from every hierarchy`);
    assert.ok(!fs.existsSync(path.join(STATE, 'c1')));
  },
);

test('run in the foreground with --cgroup-manager systemd and the default path: the process sees its scope', T, () => {
  const b = bundle(['cat', '/proc/self/cgroup'], undefined, (s) => {
    s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
  });
  const r = ok(cli(['run', '--bundle', b, 'c2'], ['--cgroup-manager', 'systemd']), 'run');
  assert.equal(procCgroup(r.out), '/system.slice/hako-c2.scope');
  // run deletes the container when its process has exited (as runc run): the scope goes with it.
  assert.ok(!fs.existsSync(path.join(STATE, 'c2')));
  assert.equal(show('hako-c2.scope', ['LoadState']).LoadState, 'not-found');
});

test('a container with a user namespace gets its scope too', T, () => {
  const b = bundle(['sleep', '600'], 'system.slice:hako:c3', (s) => {
    s.linux!.namespaces!.push({ type: 'user' });
    s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.resources = { pids: { limit: 20 } };
  });
  ok(cli(['create', '--bundle', b, 'c3']), 'create');
  const pid = JSON.parse(ok(cli(['state', 'c3']), 'state').out).pid as number;
  assert.equal(procCgroup(read(`/proc/${pid}/cgroup`)), '/system.slice/hako-c3.scope');
  assert.equal(read(`/proc/${pid}/uid_map`).split(/\s+/).join(' '), '0 100000 65536');
  assert.equal(show('hako-c3.scope', ['TasksMax']).TasksMax, '20');
  assert.equal(read(cgFile('/system.slice/hako-c3.scope', 'pids', 'pids.max')), '20');
  ok(cli(['delete', '--force', 'c3']), 'delete --force');
  assert.equal(show('hako-c3.scope', ['LoadState']).LoadState, 'not-found');
});

test(
  'bad input: malformed paths and a unit that exists are errors naming linux.cgroupsPath, leaving nothing',
  T,
  () => {
    for (const [p, re] of [
      ['/hako/c4', /slice:prefix:name/],
      ['nodot:hako:c4', /must end in "\.slice"/],
      ['a--b.slice:hako:c4', /empty component/],
      ['system.slice:hako:c4.slice', /is a slice/],
    ] as [string, RegExp][]) {
      const r = cli(['create', '--bundle', bundle(['true'], p), 'c4']);
      assert.notEqual(r.code, 0, p);
      assert.match(r.err, /linux\.cgroupsPath/, r.err);
      assert.match(r.err, re, r.err);
      assert.ok(!fs.existsSync(path.join(STATE, 'c4')), `no state for ${p}`);
    }
    // A scope of that name that exists already (someone else's): refused, and left alone.
    // systemd-run --scope runs its command in the foreground: in a background shell, its output to /dev/null.
    const ready = () => show('hako-taken.scope', ['ActiveState']).ActiveState === 'active';
    spawnSync('sh', ['-c', 'systemd-run --quiet --scope --unit hako-taken -- sleep 600 >/dev/null 2>&1 </dev/null &']);
    for (let i = 0; i < 200 && !ready(); i++) spawnSync('sleep', ['0.1']);
    assert.ok(ready(), 'hako-taken.scope is running');
    const r = cli(['create', '--bundle', bundle(['true'], 'system.slice:hako:taken'), 'c5']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /linux\.cgroupsPath: the systemd unit hako-taken\.scope already exists/, r.err);
    assert.ok(!fs.existsSync(path.join(STATE, 'c5')));
    assert.equal(show('hako-taken.scope', ['ActiveState']).ActiveState, 'active', 'the other unit is untouched');
    run('systemctl', ['stop', 'hako-taken.scope']);
  },
);

test('a create that fails after systemd made the scope leaves no unit, no cgroup and no state', T, () => {
  // CPU 7 on a 2-CPU guest: systemd takes AllowedCPUs=7, the kernel refuses cpuset.cpus "7" when the files
  // are written, and create fails after the scope exists.
  const r = cli([
    'create',
    '--bundle',
    bundle(['true'], 'system.slice:hako:c6', (s) => (s.linux!.resources = { cpu: { cpus: '7' } })),
    'c6',
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /linux\.resources\.cpu\.cpus/, r.err);
  assert.equal(show('hako-c6.scope', ['LoadState']).LoadState, 'not-found');
  assert.ok(!cgExists('/system.slice/hako-c6.scope'));
  assert.ok(!fs.existsSync(path.join(STATE, 'c6')));
});

test(
  'a create killed after systemd made the scope: delete --force removes the scope, its cgroups and the state',
  T,
  async () => {
    const b = bundle(['true'], 'system.slice:hako:c10', (s) => (s.linux!.resources = { pids: { limit: 10 } }));
    const err = path.join(WORK, 'c10.err');
    const fd = fs.openSync(err, 'w');
    const p = spawn(process.execPath, [HAKO_BIN, '--root', STATE, '--systemd-cgroup', 'create', '--bundle', b, 'c10'], {
      stdio: ['ignore', 'ignore', fd],
      env: { ...process.env, HAKO_TEST_PAUSE_AT: 'joined' },
    });
    fs.closeSync(fd);
    const exited = new Promise((r) => p.once('exit', r));
    for (let i = 0; i < 600 && !read(err).includes('paused at joined'); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(read(err), /paused at joined/);
    assert.equal(show('hako-c10.scope', ['ActiveState']).ActiveState, 'active');
    p.kill('SIGKILL');
    await exited;
    assert.ok(!fs.existsSync(path.join(STATE, 'c10', 'state.json')));
    ok(cli(['delete', '--force', 'c10']), 'delete --force');
    assert.equal(show('hako-c10.scope', ['LoadState']).LoadState, 'not-found');
    assert.ok(!cgExists('/system.slice/hako-c10.scope'));
    assert.ok(!fs.existsSync(path.join(STATE, 'c10')));
  },
);

test('a slice nobody made yet: systemd makes it (slices need no unit file), as for runc', T, () => {
  // Asking systemd about any well-formed slice name loads it without a file (LoadState=loaded): there is no
  // "missing slice" to refuse. Not yet active, and no cgroup.
  assert.equal(show('fresh-new.slice', ['ActiveState']).ActiveState, 'inactive');
  assert.ok(!cgExists('/fresh.slice'));
  const r = ok(
    cli([
      'run',
      '--bundle',
      bundle(
        ['cat', '/proc/self/cgroup'],
        'fresh-new.slice:hako:c7',
        (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'cgroup')),
      ),
      'c7',
    ]),
    'run',
  );
  assert.equal(procCgroup(r.out), '/fresh.slice/fresh-new.slice/hako-c7.scope');
  assert.equal(show('hako-c7.scope', ['LoadState']).LoadState, 'not-found');
});

test(
  "containerd's runc shim drives hako --systemd-cgroup (ctr run --runc-binary hako --runc-systemd-cgroup)",
  { ...T, skip: !fs.existsSync('/usr/bin/ctr') && 'containerd is not in this root file system' },
  () => {
    // containerd starts at boot (the package enables it); wait for its socket. ctr stops reading flags at the
    // first argument: --rootfs is a switch, the rootfs directory comes after the flags, in the image's place.
    for (let i = 0; i < 300 && !fs.existsSync('/run/containerd/containerd.sock'); i++) spawnSync('sleep', ['0.1']);
    const r = run('ctr', [
      'run',
      '--rm',
      '--rootfs',
      '--runc-binary',
      HAKO_BIN,
      '--runc-systemd-cgroup',
      '--cgroup',
      'system.slice:ctr:c8',
      ROOTFS,
      'c8',
      'cat',
      '/proc/self/cgroup',
    ]);
    console.log(`# ctr run took ${r.ms} ms; it printed ${JSON.stringify(r.out)} ${JSON.stringify(r.err)}`);
    assert.equal(r.code, 0, `ctr run: ${r.err}${r.out}`);
    assert.equal(procCgroup(r.out), '/system.slice/ctr-c8.scope');
    assert.equal(show('ctr-c8.scope', ['LoadState']).LoadState, 'not-found', 'the scope is gone with the container');
    // Detached, with a limit: systemd's property and the scope's file, read while it runs; then kill and remove.
    ok(
      run('ctr', [
        'run',
        '-d',
        '--rootfs',
        '--runc-binary',
        HAKO_BIN,
        '--runc-systemd-cgroup',
        '--cgroup',
        'system.slice:ctr:c9',
        '--memory-limit',
        String(48 * MB),
        ROOTFS,
        'c9',
        'sleep',
        '600',
      ]),
      'ctr run -d',
    );
    const cg = '/system.slice/ctr-c9.scope';
    assert.equal(
      show('ctr-c9.scope', [V1 ? 'MemoryLimit' : 'MemoryMax'])[V1 ? 'MemoryLimit' : 'MemoryMax'],
      String(48 * MB),
    );
    assert.equal(read(cgFile(cg, 'memory', V1 ? 'memory.limit_in_bytes' : 'memory.max')), String(48 * MB));
    ok(run('ctr', ['task', 'kill', '-s', 'SIGKILL', 'c9']), 'ctr task kill');
    let del = run('ctr', ['task', 'delete', 'c9']);
    for (let i = 0; i < 100 && del.code !== 0; i++) {
      spawnSync('sleep', ['0.1']);
      del = run('ctr', ['task', 'delete', 'c9']);
    }
    ok(del, 'ctr task delete');
    ok(run('ctr', ['container', 'delete', 'c9']), 'ctr container delete');
    assert.equal(show('ctr-c9.scope', ['LoadState']).LoadState, 'not-found');
    assert.ok(!cgExists(cg));
  },
);

const CRI_DIR = '/run/hako-cri';
const CRI_SOCK = `${CRI_DIR}/containerd.sock`;
const criClient = '/opt/cri-client/node_modules';
test(
  "the CRI test's pod on a systemd host: containerd (SystemdCgroup = true, BinaryName = hako) runs a pod and a container through the CRI API; their scopes sit in the kubelet-style slice with the limits",
  {
    ...T,
    skip:
      (!fs.existsSync('/usr/bin/containerd') || !fs.existsSync(criClient)) &&
      'containerd or the CRI client is not in this root file system',
  },
  async () => {
    // A containerd of its own, as the host CRI test starts one: the CRI plugin with a runtime handler whose runc
    // shim runs hako with SystemdCgroup = true (the shim then passes --systemd-cgroup). The native snapshotter:
    // the guest kernel has no overlay module. Host network: no CNI plugin is needed.
    fs.mkdirSync(`${CRI_DIR}/cni/conf`, { recursive: true });
    fs.mkdirSync(`${CRI_DIR}/cni/bin`, { recursive: true });
    const h = '[plugins."io.containerd.grpc.v1.cri".containerd';
    fs.writeFileSync(
      `${CRI_DIR}/config.toml`,
      [
        'version = 2',
        `root = "/var/lib/hako-cri"`,
        `state = "${CRI_DIR}/state"`,
        '[grpc]',
        `  address = "${CRI_SOCK}"`,
        '[ttrpc]',
        `  address = "${CRI_SOCK}.ttrpc"`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        '  sandbox_image = "localhost/pause:hako"',
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        `    bin_dir = "${CRI_DIR}/cni/bin"`,
        `    conf_dir = "${CRI_DIR}/cni/conf"`,
        `  ${h}]`,
        '    snapshotter = "native"',
        '    default_runtime_name = "hako"',
        `    ${h}.runtimes.hako]`,
        '      runtime_type = "io.containerd.runc.v2"',
        `      ${h}.runtimes.hako.options]`,
        `        BinaryName = "${HAKO_BIN}"`,
        '        SystemdCgroup = true',
      ].join('\n') + '\n',
    );
    const log = fs.openSync(`${CRI_DIR}/containerd.log`, 'a');
    const containerd = spawn('containerd', ['--config', `${CRI_DIR}/config.toml`], {
      stdio: ['ignore', log, log],
      detached: true,
    });
    fs.closeSync(log);
    containerd.unref();
    const req = createRequire(`${criClient}/x.js`);
    const grpc = req('@grpc/grpc-js');
    const loader = req('@grpc/proto-loader');
    const def = loader.loadSync('/opt/hako-test/cri-api.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const client = new (grpc.loadPackageDefinition(def).runtime.v1.RuntimeService)(
      `unix://${CRI_SOCK}`,
      grpc.credentials.createInsecure(),
    );
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- grpc-js builds the client from the .proto at run time
    const cri = <R = any>(method: string, request: object): Promise<R> =>
      new Promise((resolve, reject) =>
        client[method](request, { deadline: Date.now() + 120_000 }, (e: Error | null, r: R) =>
          e ? reject(e) : resolve(r),
        ),
      );
    const uid = 'c0ffee00-1234-4abc-8def-000000000020';
    // The kubelet's systemd names: kubepods.slice / kubepods-burstable.slice / kubepods-burstable-pod<uid, _ for ->.slice.
    const podSlice = `kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice`;
    const sliceCg = `/kubepods.slice/kubepods-burstable.slice/${podSlice}`;
    try {
      for (let i = 0; i < 300 && !(fs.existsSync(CRI_SOCK) && run('ctr', ['-a', CRI_SOCK, 'version']).code === 0); i++)
        await new Promise((r) => setTimeout(r, 100));
      ok(
        run('ctr', [
          '-a',
          CRI_SOCK,
          '-n',
          'k8s.io',
          'image',
          'import',
          '--snapshotter',
          'native',
          '/opt/images/images.tar',
        ]),
        'ctr image import',
      );
      const v = await cri<{ runtime_name: string; runtime_version: string }>('Version', { version: 'v1' });
      console.log(`# CRI: ${v.runtime_name} ${v.runtime_version}`);
      // The kubelet makes the pod's slice with the pod's limits before it asks for the sandbox; here systemctl
      // gives the (not yet started) slice its limit as the kubelet's transient unit would.
      ok(
        run('systemctl', [
          'set-property',
          '--runtime',
          podSlice,
          `${V1 ? 'MemoryLimit' : 'MemoryMax'}=${256 * MB}`,
          'TasksMax=200',
        ]),
        'systemctl set-property (the pod slice)',
      );
      const podConfig = {
        metadata: { name: 'sd-pod', uid, namespace: 'hako-sd', attempt: 0 },
        log_directory: `${CRI_DIR}/pods/${uid}`,
        linux: {
          cgroup_parent: podSlice,
          security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
        },
      };
      fs.mkdirSync(podConfig.log_directory, { recursive: true });
      const t0 = Date.now();
      const { pod_sandbox_id: pod } = await cri<{ pod_sandbox_id: string }>('RunPodSandbox', {
        config: podConfig,
        runtime_handler: 'hako',
      });
      console.log(`# RunPodSandbox took ${Date.now() - t0} ms`);
      const podUnit = `cri-containerd-${pod}.scope`;
      const ps = show(podUnit, ['ActiveState', 'Slice', 'ControlGroup', 'Delegate']);
      console.log(`# the pod sandbox's scope: ${JSON.stringify(ps)}`);
      assert.equal(ps.ActiveState, 'active');
      assert.equal(ps.Slice, podSlice);
      assert.equal(ps.ControlGroup, `${sliceCg}/${podUnit}`);
      assert.equal(ps.Delegate, 'yes');
      const sl = show(podSlice, ['ActiveState', 'MemoryMax', 'MemoryLimit', 'TasksMax']);
      assert.equal(sl.ActiveState, 'active');
      assert.equal(V1 ? sl.MemoryLimit : sl.MemoryMax, String(256 * MB));
      assert.equal(read(cgFile(sliceCg, 'memory', V1 ? 'memory.limit_in_bytes' : 'memory.max')), String(256 * MB));
      assert.equal(read(cgFile(sliceCg, 'pids', 'pids.max')), '200');
      const sandboxPids = read(cgFile(`${sliceCg}/${podUnit}`, 'pids', 'cgroup.procs'))
        .split('\n')
        .map(Number);
      assert.equal(sandboxPids.length, 1);
      assert.equal(
        read(`/proc/${sandboxPids[0]}/cmdline`).split('\0').filter(Boolean).join(' '),
        '/bin/sleep 2147483647',
        "the pause process is in the pod's scope",
      );

      const { container_id: cid } = await cri<{ container_id: string }>('CreateContainer', {
        pod_sandbox_id: pod,
        config: {
          metadata: { name: 'main', attempt: 0 },
          image: { image: 'localhost/busybox:latest' },
          command: ['sh', '-c', 'echo started; exec sleep 600'],
          log_path: 'main.log',
          linux: {
            resources: {
              memory_limit_in_bytes: String(64 * MB),
              cpu_shares: '512',
              cpu_quota: '50000',
              cpu_period: '100000',
            },
            security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
          },
        },
        sandbox_config: podConfig,
      });
      await cri('StartContainer', { container_id: cid });
      assert.equal(
        (await cri<{ status: { state: string } }>('ContainerStatus', { container_id: cid })).status.state,
        'CONTAINER_RUNNING',
      );
      const unit = `cri-containerd-${cid}.scope`;
      const cg = `${sliceCg}/${unit}`;
      const p = show(unit, [
        'ActiveState',
        'Slice',
        'ControlGroup',
        'Delegate',
        'MemoryMax',
        'MemoryLimit',
        'CPUWeight',
        'CPUShares',
        'CPUQuotaPerSecUSec',
        'CPUQuotaPeriodUSec',
      ]);
      console.log(`# the container's scope: ${JSON.stringify(p)}`);
      assert.equal(p.ActiveState, 'active');
      assert.equal(p.Slice, podSlice);
      assert.equal(p.ControlGroup, cg);
      assert.equal(p.Delegate, 'yes');
      assert.equal(V1 ? p.MemoryLimit : p.MemoryMax, String(64 * MB));
      if (V1) assert.equal(p.CPUShares, '512');
      else assert.equal(p.CPUWeight, '59');
      assert.equal(p.CPUQuotaPerSecUSec, '500ms');
      assert.equal(p.CPUQuotaPeriodUSec, '100ms');
      assert.equal(read(cgFile(cg, 'memory', V1 ? 'memory.limit_in_bytes' : 'memory.max')), String(64 * MB));
      if (V1) assert.equal(read(cgFile(cg, 'cpu', 'cpu.cfs_quota_us')), '50000');
      else assert.equal(read(cgFile(cg, '', 'cpu.max')), '50000 100000');
      // ExecSync runs hako exec: inside, the container's cgroup namespace shows the scope's limit.
      const ex = await cri<{ stdout: Buffer; stderr: Buffer; exit_code: number }>('ExecSync', {
        container_id: cid,
        cmd: ['cat', V1 ? '/sys/fs/cgroup/memory/memory.limit_in_bytes' : '/sys/fs/cgroup/memory.max'],
        timeout: 60,
      });
      assert.equal(ex.exit_code, 0, ex.stderr.toString());
      assert.equal(ex.stdout.toString().trim(), String(64 * MB));
      // An in-place resize: SetUnitProperties and the file.
      await cri('UpdateContainerResources', {
        container_id: cid,
        linux: { memory_limit_in_bytes: String(128 * MB), cpu_shares: '512', cpu_quota: '25000', cpu_period: '100000' },
      });
      const u = show(unit, [V1 ? 'MemoryLimit' : 'MemoryMax', 'CPUQuotaPerSecUSec']);
      assert.deepEqual(u, { [V1 ? 'MemoryLimit' : 'MemoryMax']: String(128 * MB), CPUQuotaPerSecUSec: '250ms' });
      assert.equal(read(cgFile(cg, 'memory', V1 ? 'memory.limit_in_bytes' : 'memory.max')), String(128 * MB));
      assert.match(read(`${podConfig.log_directory}/main.log`), /stdout F started/);

      await cri('StopContainer', { container_id: cid, timeout: 1 });
      assert.equal(
        (await cri<{ status: { state: string } }>('ContainerStatus', { container_id: cid })).status.state,
        'CONTAINER_EXITED',
      );
      await cri('RemoveContainer', { container_id: cid });
      await cri('StopPodSandbox', { pod_sandbox_id: pod });
      await cri('RemovePodSandbox', { pod_sandbox_id: pod });
      for (const x of [unit, podUnit]) assert.equal(show(x, ['LoadState']).LoadState, 'not-found', `${x} is gone`);
      assert.ok(!cgExists(cg) && !cgExists(`${sliceCg}/${podUnit}`));
      assert.deepEqual(
        JSON.parse(
          ok(
            run(process.execPath, [HAKO_BIN, '--root', '/run/containerd/runc/k8s.io', 'list', '--format', 'json']),
            'hako list',
          ).out || '[]',
        ),
        [],
      );
    } finally {
      client.close();
      run('systemctl', ['stop', podSlice]);
      run('systemctl', ['revert', podSlice]);
      if (containerd.pid) process.kill(containerd.pid, 'SIGTERM');
    }
  },
);

const RL_USER = 'hakouser';
const RL_UID = 1000;
test(
  "rootless: a user's own systemd (loginctl enable-linger, systemd --user, the session bus) gives an unprivileged user's container its scope, with the limits",
  { ...T, skip: !fs.existsSync('/usr/lib/systemd/user/dbus.socket') && 'no dbus-user-session' },
  async () => {
    ok(run('useradd', ['-m', '-u', String(RL_UID), RL_USER]), 'useradd');
    ok(run('loginctl', ['enable-linger', RL_USER]), 'loginctl enable-linger');
    const xdg = `/run/user/${RL_UID}`;
    const rlEnv = {
      PATH: '/opt/node/bin:/usr/bin:/bin',
      HOME: `/home/${RL_USER}`,
      USER: RL_USER,
      XDG_RUNTIME_DIR: xdg,
      DBUS_SESSION_BUS_ADDRESS: `unix:path=${xdg}/bus`,
    };
    const asUser = (args: string[]): Run => {
      const base = path.join(WORK, `rl-${++runs}`);
      const o = fs.openSync(`${base}.out`, 'w');
      const e = fs.openSync(`${base}.err`, 'w');
      const t0 = Date.now();
      const r = spawnSync(process.execPath, [HAKO_BIN, '--root', `${xdg}/hako-sd`, '--systemd-cgroup', ...args], {
        stdio: ['ignore', o, e],
        uid: RL_UID,
        gid: RL_UID,
        env: rlEnv,
        timeout: 240_000,
      });
      fs.closeSync(o);
      fs.closeSync(e);
      return {
        code: r.status,
        out: fs.readFileSync(`${base}.out`, 'utf8'),
        err: fs.readFileSync(`${base}.err`, 'utf8'),
        ms: Date.now() - t0,
      };
    };
    const userShow = (unit: string, props: string[]): Record<string, string> => {
      const r = spawnSync('systemctl', ['--user', 'show', unit, ...props.flatMap((p) => ['-p', p])], {
        uid: RL_UID,
        gid: RL_UID,
        env: rlEnv,
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `systemctl --user show ${unit}: ${r.stderr}`);
      return Object.fromEntries(
        r.stdout
          .split('\n')
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
    };
    try {
      // logind starts user@1000.service (systemd --user), which starts dbus.socket: the session bus.
      for (let i = 0; i < 300 && !fs.existsSync(`${xdg}/bus`); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(fs.existsSync(`${xdg}/bus`), `${xdg}/bus (the user's session bus) exists`);
      const mgr = `/user.slice/user-${RL_UID}.slice/user@${RL_UID}.service`;
      if (!V1) console.log(`# the user's manager: ${read(`${CG}${mgr}/cgroup.subtree_control`)} delegated`);
      const dir = path.join('/tmp', 'rl-bundle');
      fs.mkdirSync(dir, { recursive: true });
      if (V1) {
        // A user's systemd delegates nothing on v1 (runc refuses rootless --systemd-cgroup there too).
        const spec0 = hako.defaultSpec({ args: ['true'], terminal: false, rootless: true, uid: RL_UID, gid: RL_UID });
        spec0.root = { path: ROOTFS, readonly: true };
        fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec0));
        fs.chownSync(dir, RL_UID, RL_UID);
        const r = asUser(['create', '--bundle', dir, 'rl0']);
        assert.notEqual(r.code, 0);
        assert.match(
          r.err,
          /--systemd-cgroup \(rootless\): a user's systemd delegates cgroups only on cgroup v2/,
          r.err,
        );
        assert.ok(!fs.existsSync(`${xdg}/hako-sd/rl0`));
        return;
      }
      const spec = hako.defaultSpec({
        args: ['sleep', '600'],
        terminal: false,
        rootless: true,
        uid: RL_UID,
        gid: RL_UID,
      });
      spec.root = { path: ROOTFS, readonly: true };
      spec.process!.env = ['PATH=/bin'];
      spec.linux!.cgroupsPath = ':hako:rl1'; // the default slice: user.slice of the user's manager
      spec.linux!.resources = {
        memory: { limit: 32 * MB },
        pids: { limit: 30 },
        cpu: { quota: 20000, period: 100000 },
      };
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
      fs.chownSync(dir, RL_UID, RL_UID);
      const created = asUser(['create', '--bundle', dir, 'rl1']);
      console.log(`# rootless create took ${created.ms} ms; stderr ${JSON.stringify(created.err)}`);
      ok(created, 'rootless create');
      const unit = 'hako-rl1.scope';
      const cg = `${mgr}/user.slice/${unit}`;
      const p = userShow(unit, [
        'ActiveState',
        'Slice',
        'ControlGroup',
        'Delegate',
        'MemoryMax',
        'TasksMax',
        'CPUQuotaPerSecUSec',
      ]);
      console.log(`# systemctl --user show ${unit}: ${JSON.stringify(p)}`);
      assert.deepEqual(p, {
        ActiveState: 'active',
        Slice: 'user.slice',
        ControlGroup: cg,
        Delegate: 'yes',
        MemoryMax: String(32 * MB),
        TasksMax: '30',
        CPUQuotaPerSecUSec: '200ms',
      });
      assert.equal(show(unit, ['LoadState']).LoadState, 'not-found', 'not a unit of the system instance');
      assert.equal(read(`${CG}${cg}/memory.max`), String(32 * MB));
      assert.equal(read(`${CG}${cg}/pids.max`), '30');
      assert.equal(read(`${CG}${cg}/cpu.max`), '20000 100000');
      const st = JSON.parse(ok(asUser(['state', 'rl1']), 'rootless state').out) as { pid: number };
      assert.equal(procCgroup(read(`/proc/${st.pid}/cgroup`)), cg);
      assert.equal(fs.statSync(`/proc/${st.pid}`).uid, RL_UID, 'the container runs as the user on the host');
      ok(asUser(['start', 'rl1']), 'rootless start');
      ok(asUser(['update', '--memory', '48m', 'rl1']), 'rootless update');
      assert.equal(userShow(unit, ['MemoryMax']).MemoryMax, String(48 * MB));
      assert.equal(read(`${CG}${cg}/memory.max`), String(48 * MB));
      ok(asUser(['delete', '--force', 'rl1']), 'rootless delete --force');
      assert.equal(userShow(unit, ['LoadState']).LoadState, 'not-found');
      assert.ok(!fs.existsSync(`${CG}${cg}`));
    } finally {
      run('loginctl', ['disable-linger', RL_USER]);
    }
  },
);

test('nothing of ours is left behind', () => {
  assert.deepEqual(
    hakoUnits().filter((u) => u.endsWith('.scope')),
    [],
  );
  for (const c of [
    '/system.slice/hako-c2.scope',
    '/system.slice/hako-c3.scope',
    '/system.slice/hako-c7.scope',
    '/system.slice/hako-c10.scope',
  ])
    assert.ok(!cgExists(c), c);
  assert.deepEqual(
    fs.readdirSync(STATE).filter((f) => !f.startsWith('.')),
    [],
  );
  // The CRI test's pod slice (stopped by the test, as the kubelet removes a pod's slice) and its scopes.
  assert.deepEqual(
    run('systemctl', [
      'list-units',
      '--all',
      '--plain',
      '--no-legend',
      'cri-containerd-*',
      'kubepods-burstable-pod*',
    ]).out.trim(),
    '',
  );
  assert.ok(
    !cgExists(
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podc0ffee00_1234_4abc_8def_000000000020.slice',
    ),
  );
});
