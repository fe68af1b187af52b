// The systemd driver's pure parts: cgroupsPath parsing and slice expansion (systemd.slice(5), runc's
// ExpandSlice), resources as unit properties (runc's set), and the refusals that come before any systemd is
// asked. The driver against a real systemd runs in scripts/systemd (npm run test:systemd).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { expandSlice, parseSystemdPath } from '../lib/cgroups/systemd/unit';
import { INFINITY, cpusetMask, resourceProperties } from '../lib/cgroups/systemd/properties';
import { type HakoError } from '../lib/errors';
import type { Variant } from '../lib/dbus/marshal';

const field = (fn: () => unknown, name: string, re?: RegExp) =>
  assert.throws(fn, (e: HakoError) => {
    assert.equal(e.field, name, e.message);
    assert.ok(e.message.startsWith(`${name}: `), e.message);
    if (re) assert.match(e.message, re);
    return true;
  });

test('nested slice names expand to their cgroup path, as systemd lays them out', () => {
  assert.equal(expandSlice('system.slice'), '/system.slice');
  assert.equal(expandSlice('a-b.slice'), '/a.slice/a-b.slice');
  assert.equal(
    expandSlice('kubepods-besteffort-pod1.slice'),
    '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice',
  );
  assert.equal(expandSlice('-.slice'), '');
  for (const bad of ['system', '.slice', 'a--b.slice', '-a.slice', 'a-.slice', 'a/b.slice', 'a b.slice'])
    field(() => expandSlice(bad), 'linux.cgroupsPath', /slice/);
});

test('slice:prefix:name gives the scope, its cgroup and the normalized path; the defaults fill in', () => {
  assert.deepEqual(parseSystemdPath('kubepods-besteffort.slice:cri-containerd:abc', 'x'), {
    slice: 'kubepods-besteffort.slice',
    unit: 'cri-containerd-abc.scope',
    cgroup: '/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope',
    normalized: 'kubepods-besteffort.slice:cri-containerd:abc',
  });
  assert.deepEqual(parseSystemdPath('', 'c1'), {
    slice: 'system.slice',
    unit: 'hako-c1.scope',
    cgroup: '/system.slice/hako-c1.scope',
    normalized: 'system.slice:hako:c1',
  });
  assert.equal(parseSystemdPath(undefined, 'c1').unit, 'hako-c1.scope');
  assert.equal(parseSystemdPath(':p:n', 'c1', true).slice, 'user.slice');
  assert.equal(parseSystemdPath('machine.slice::n', 'c1').unit, 'n.scope');
  assert.equal(parseSystemdPath('-.slice:p:n', 'c1').cgroup, '/p-n.scope');
});

test('malformed cgroupsPath values are errors naming linux.cgroupsPath', () => {
  field(() => parseSystemdPath('/hako/c1', 'c1'), 'linux.cgroupsPath', /slice:prefix:name/);
  field(() => parseSystemdPath('a:b', 'c1'), 'linux.cgroupsPath', /slice:prefix:name/);
  field(() => parseSystemdPath('a.slice:b:c:d', 'c1'), 'linux.cgroupsPath', /slice:prefix:name/);
  field(() => parseSystemdPath('system.slice:p:', 'c1'), 'linux.cgroupsPath', /slice:prefix:name/);
  field(() => parseSystemdPath('system:p:n', 'c1'), 'linux.cgroupsPath', /must end in ".slice"/);
  field(() => parseSystemdPath('system.slice:p:n.slice', 'c1'), 'linux.cgroupsPath', /is a slice/);
  field(() => parseSystemdPath('system.slice:p q:n', 'c1'), 'linux.cgroupsPath', /not a valid systemd unit name/);
  field(() => parseSystemdPath(`system.slice:p:${'n'.repeat(260)}`, 'c1'), 'linux.cgroupsPath', /at most 255/);
});

const props = (r: Parameters<typeof resourceProperties>[0], v2 = true, procDevices?: string) =>
  Object.fromEntries(resourceProperties(r, { v2, procDevices }).map(([k, v]: [string, Variant]) => [k, v.value]));

test("memory, swap, pids: runc's properties and values (-1 is infinity)", () => {
  assert.deepEqual(props({ memory: { limit: 64 << 20, swap: 96 << 20, reservation: 32 << 20 } }), {
    MemoryMax: 64n << 20n,
    MemoryLow: 32n << 20n,
    MemorySwapMax: 32n << 20n,
  });
  assert.deepEqual(props({ memory: { limit: -1 } }), { MemoryMax: INFINITY, MemorySwapMax: INFINITY });
  assert.deepEqual(props({ memory: { limit: 1 << 20, swap: 1 << 20 } }), { MemoryMax: 1n << 20n, MemorySwapMax: 0n });
  assert.deepEqual(props({ memory: { limit: 64 << 20 } }, false), { MemoryLimit: 64n << 20n });
  field(() => props({ memory: { limit: 64 << 20, swap: 32 << 20 } }), 'linux.resources.memory.swap', />= memory limit/);
  assert.deepEqual(props({ pids: { limit: 42 } }), { TasksMax: 42n });
  assert.deepEqual(props({ pids: { limit: -1 } }), { TasksMax: INFINITY });
  assert.deepEqual(props({ pids: { limit: 0 } }), { TasksMax: 1n });
});

test('cpu: weight from shares, quota per second rounded up to 10 ms, period, cpuset masks', () => {
  assert.deepEqual(props({ cpu: { shares: 1024 } }), { CPUWeight: 100n });
  assert.deepEqual(props({ cpu: { shares: 512 } }, false), { CPUShares: 512n });
  assert.deepEqual(props({ cpu: { quota: 50000, period: 100000 } }), {
    CPUQuotaPeriodUSec: 100000n,
    CPUQuotaPerSecUSec: 500000n,
  });
  // 33333/100000 = 333330 us per second, which systemd could not say: rounded up to 340000.
  assert.deepEqual(props({ cpu: { quota: 33333 } }), { CPUQuotaPerSecUSec: 340000n });
  assert.deepEqual(props({ cpu: { quota: -1, period: 50000 } }), {
    CPUQuotaPeriodUSec: 50000n,
    CPUQuotaPerSecUSec: INFINITY,
  });
  assert.deepEqual([...cpusetMask('0-3,8', 'f')], [0x0f, 0x01]);
  assert.deepEqual([...cpusetMask('1', 'f')], [0x02]);
  assert.deepEqual(props({ cpu: { cpus: '0', mems: '0' } }), {
    AllowedCPUs: Buffer.from([1]),
    AllowedMemoryNodes: Buffer.from([1]),
  });
  field(() => props({ cpu: { cpus: '0-x' } }), 'linux.resources.cpu.cpus', /list of numbers/);
  field(() => props({ cpu: { cpus: '3-1' } }), 'linux.resources.cpu.cpus', /bad range/);
});

test('devices: an allow-list is DevicePolicy=strict with one DeviceAllow per device or named major; allow-all is auto', () => {
  const procDevices = 'Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n';
  const p = props(
    {
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
        { allow: true, type: 'c', major: 136, access: 'rw' },
        { allow: true, type: 'b', major: 8, minor: 0, access: 'r' },
        { allow: true, type: 'c', access: 'm' },
      ],
    },
    true,
    procDevices,
  );
  assert.equal(p.DevicePolicy, 'strict');
  assert.deepEqual(new Set(p.DeviceAllow as [string, string][]).size, 4);
  assert.deepEqual((p.DeviceAllow as [string, string][]).map((e) => e.join(' ')).sort(), [
    '/dev/block/8:0 r',
    '/dev/char/1:3 rwm',
    'char-* m',
    'char-pts rw',
  ]);
  assert.deepEqual(props({ devices: [{ allow: true, access: 'rwm' }] }), { DevicePolicy: 'auto', DeviceAllow: [] });
});

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { disposeRoot, hako, makeBundle, testRoot } from './helpers/env';

test('the cgroupfs path does not load the D-Bus client nor the systemd driver', () => {
  const lib = path.join(__dirname, '..', 'lib', 'index.js');
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `const h = require(${JSON.stringify(lib)}); new h.Runtime({ root: '/tmp/hako-sd-lazy' }); console.log(JSON.stringify(Object.keys(require.cache)))`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  // Paths relative to dist/lib: the checkout's own directory may be called "systemd".
  const loaded = (JSON.parse(r.stdout) as string[]).map((f) => path.relative(path.dirname(lib), f));
  assert.ok(loaded.includes(path.join('runtime', 'runtime.js')), 'the runtime itself was loaded');
  assert.deepEqual(
    loaded.filter((f) => /^(dbus|cgroups\/systemd)\/|systemd-cgroup/.test(f)),
    [],
  );
});

test(
  'on a host without systemd, --systemd-cgroup is a clear error and leaves no state',
  { skip: fs.existsSync('/run/systemd/system') && 'systemd runs here (scripts/systemd tests the driver)' },
  () => {
    const root = testRoot('systemd-unit');
    try {
      const b = makeBundle(['/bin/true'], (s) => (s.linux!.cgroupsPath = 'system.slice:hako:nosd'));
      for (const driver of [['--systemd-cgroup'], ['--cgroup-manager', 'systemd']]) {
        const r = hako(root, [...driver, 'create', '--bundle', b.dir, 'nosd']);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /systemd is not running on this host/);
        assert.ok(!fs.existsSync(path.join(root, 'nosd')));
      }
      // Without the flag, a systemd path says which flag it needs.
      const r = hako(root, ['create', '--bundle', b.dir, 'nosd']);
      assert.match(
        r.stderr,
        /linux\.cgroupsPath: "system\.slice:hako:nosd" is a systemd "slice:prefix:name" path.*pass --systemd-cgroup/,
      );
      assert.ok(!fs.existsSync(path.join(root, 'nosd')));
    } finally {
      disposeRoot(root);
    }
  },
);
