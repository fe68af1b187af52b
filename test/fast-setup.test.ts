// Fast setup: pre-created containers run a process supplied later, on the requested cores, with the
// requested scheduling; refused processes leave the container waiting.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Pool } from '../lib/runtime/pool';
import { Runtime } from '../lib/runtime/runtime';
import type { Process } from '../lib/oci/types';
import {
  hako,
  initProcesses,
  leftovers,
  makeBundle,
  testRoot,
  tmpDir,
  uniqueId,
  type ProbeReport,
  disposeRoot,
} from './helpers/env';

const root = testRoot('fast');
const rt = new Runtime({ root });
const out = tmpDir('fast-out');
after(async () => {
  await disposeRoot(root);
  fs.rmSync(out, { recursive: true, force: true });
});

// The template: a real-time budget in its cpu cgroup, so SCHED_FIFO is allowed (CONFIG_RT_GROUP_SCHED).
const template = makeBundle(['/bin/probe', 'hello'], (s) => {
  s.linux!.resources = { ...s.linux!.resources, cpu: { realtimeRuntime: 50000, realtimePeriod: 1000000 } };
});

const probeProcess = (args: string[] = ['/bin/probe', 'json']): Process => ({
  args,
  cwd: '/tmp',
  env: ['PATH=/bin', 'JOB=fast'],
  user: { uid: 0, gid: 0 },
  capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
  noNewPrivileges: true,
});

/** Create a waiting container whose stdout/stderr go to a file we can read afterwards. */
async function precreate(): Promise<{ id: string; file: string; container: Awaited<ReturnType<Runtime['create']>> }> {
  const id = uniqueId('fast');
  const file = path.join(out, id);
  const fd = fs.openSync(file, 'w');
  const container = await rt.create(id, { bundle: template.dir, stdio: [null, fd, fd] });
  fs.closeSync(fd);
  return { id, file, container };
}

describe('setup', () => {
  test('runs the supplied process, not the config one, on the requested CPU and policy', async () => {
    const { id, file, container } = await precreate();
    assert.equal((await rt.state(id)).status, 'created');
    await rt.setup(id, probeProcess(), { cpuAffinity: '1', sched: 'FIFO:10' });
    assert.equal((await container.wait()).status, 0);
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as ProbeReport;
    assert.equal(report.pid, 1);
    assert.deepEqual(
      report.env,
      ['PATH=/bin', 'JOB=fast', 'HOME=/'],
      'the given env; HOME added as it had none (no /etc/passwd here)',
    );
    assert.equal(report.cwd, '/tmp');
    assert.equal(report.cpusAllowedList, '1');
    assert.equal(report.sched.policy, 1, 'SCHED_FIFO');
    assert.equal(report.sched.priority, 10);
    assert.equal(BigInt('0x' + report.caps.eff), 1n << 5n, 'only CAP_KILL');
    assert.equal(report.hostname, 'probe-host', 'the template configuration still applies');
    await rt.delete(id);
    assert.deepEqual(leftovers(root, id), []);
  });

  test('process.scheduler and execCPUAffinity from the process object', async () => {
    const { id, file, container } = await precreate();
    await rt.setup(id, {
      ...probeProcess(),
      scheduler: { policy: 'SCHED_RR', priority: 3 },
      execCPUAffinity: { final: '0' },
    });
    assert.equal((await container.wait()).status, 0);
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as ProbeReport;
    assert.equal(report.sched.policy, 2, 'SCHED_RR');
    assert.equal(report.sched.priority, 3);
    assert.equal(report.cpusAllowedList, '0');
    await rt.delete(id);
  });

  test('a refused process leaves the container waiting, untouched, then a good one runs', async () => {
    const { id, file, container } = await precreate();
    const pid = container.pid;
    await assert.rejects(rt.setup(id, probeProcess(['/bin/missing'])), /executable file not found|no such file/i);
    await assert.rejects(rt.setup(id, { ...probeProcess(), cwd: '/nope' }), /chdir to cwd/);
    await assert.rejects(rt.setup(id, probeProcess(), { cpuAffinity: '7' }), /sched_setaffinity|cpu affinity/i);
    await assert.rejects(
      rt.setup(id, { ...probeProcess(), cwd: 'relative' }),
      /process\.cwd: must be an absolute path/,
    );
    await assert.rejects(rt.setup(id, { args: [] } as unknown as Process), /process\.user|process\.args/);
    await assert.rejects(rt.setup(id, probeProcess(), { sched: 'FIFO:500' }), /priority: must be 1\.\.99/);
    const st = await rt.state(id);
    assert.equal(st.status, 'created');
    assert.equal(st.pid, pid);
    assert.equal(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'hako-init');
    await rt.setup(id, probeProcess(['/bin/probe', 'exit', '4']));
    assert.equal((await container.wait()).code, 4);
    assert.equal(fs.readFileSync(file, 'utf8'), '');
    await rt.delete(id);
  });

  test('a process refused after its CPU affinity was applied leaves the waiting init on its old CPUs and policy', async () => {
    const { id, container } = await precreate();
    const status = () =>
      fs.readFileSync(`/proc/${container.pid}/status`, 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)![1];
    const policy = () => fs.readFileSync(`/proc/${container.pid}/sched`, 'utf8').match(/^policy\s+:\s+(\d+)/m)![1];
    const cpus = status();
    assert.notEqual(cpus, '1', 'the init may run on more than CPU 1 (the change would not show otherwise)');
    // SCHED_DEADLINE needs an affinity spanning the whole root domain: refused (EPERM) once the affinity is 1.
    await assert.rejects(
      rt.setup(id, probeProcess(), { cpuAffinity: '1', sched: 'DEADLINE:1000000:10000000:10000000' }),
      /sched_setattr/,
    );
    assert.equal(status(), cpus, 'affinity restored');
    assert.equal(policy(), '0', 'still SCHED_OTHER');
    assert.equal((await rt.state(id)).status, 'created');
    await rt.setup(id, probeProcess(['/bin/probe', 'exit', '0']));
    assert.equal((await container.wait()).status, 0);
    await rt.delete(id);
  });

  test('a process refused at its I/O priority (user namespace: no CAP_SYS_ADMIN for the RT class) is refused with affinity and policy undone', async () => {
    const id = uniqueId('fastns');
    const b = makeBundle(['/bin/probe', 'hello'], (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
    });
    const container = await rt.create(id, { bundle: b.dir, stdio: [null, null, null] });
    const status = () =>
      fs.readFileSync(`/proc/${container.pid}/status`, 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)![1];
    const policy = () => fs.readFileSync(`/proc/${container.pid}/sched`, 'utf8').match(/^policy\s+:\s+(\d+)/m)![1];
    const cpus = status();
    const proc = { ...probeProcess(), ioPriority: { class: 'IOPRIO_CLASS_RT' as const, priority: 0 } };
    await assert.rejects(rt.setup(id, proc, { cpuAffinity: '1', sched: 'BATCH' }), /ioprio_set/);
    assert.equal(status(), cpus, 'affinity restored');
    assert.equal(policy(), '0', 'SCHED_BATCH undone');
    assert.equal((await rt.state(id)).status, 'created');
    await rt.delete(id, { force: true });
  });

  test('a hostile setup message on the control socket is refused and the container keeps waiting', async () => {
    const { id, container } = await precreate();
    const net = await import('node:net');
    const sock = path.join(root, id, 'ctl.sock');
    const reply = await new Promise<string>((resolve) => {
      const c = net.createConnection(sock, () => {
        // A valid header announcing a SETUP whose single record lies about its length.
        const buf = Buffer.alloc(12 + 8);
        buf.writeUInt32LE(0x314f4b48, 0);
        buf.writeUInt32LE(4, 4);
        buf.writeUInt32LE(8, 8);
        buf.writeUInt32LE(19, 12);
        buf.writeUInt32LE(0xffffff, 16);
        c.write(buf);
      });
      let data = '';
      c.on('data', (d) => (data += d.toString('latin1')));
      c.on('close', () => resolve(data));
    });
    assert.match(reply, /invalid process/);
    assert.equal((await rt.state(id)).status, 'created');
    assert.ok(fs.statSync(sock).mode % 0o1000 === 0o600, 'the control socket is private to root');
    await rt.setup(id, probeProcess(['/bin/probe', 'exit', '0']));
    assert.equal((await container.wait()).status, 0);
    await rt.delete(id);
  });

  test('start on a pre-created container runs the config process', async () => {
    const { id, file, container } = await precreate();
    await rt.start(id);
    assert.equal((await container.wait()).status, 0);
    assert.match(fs.readFileSync(file, 'utf8'), /Hello from a hako container/);
    await rt.delete(id);
  });

  test('the CLI verb with --process, --cpu-affinity and --sched', async () => {
    const id = uniqueId('fastcli');
    const b = makeBundle(
      ['/bin/probe', 'hello'],
      (s) => (s.linux!.resources = { ...s.linux!.resources, cpu: { realtimeRuntime: 50000 } }),
    );
    assert.equal(hako(root, ['create', '-b', b.dir, id]).status, 0);
    const procFile = path.join(b.dir, 'process.json');
    fs.writeFileSync(procFile, JSON.stringify({ ...probeProcess(['/bin/probe', 'sleep', 'inf']) }));
    const r = hako(root, ['setup', id, '--process', procFile, '--cpu-affinity', '1', '--sched', 'RR:7']);
    assert.equal(r.status, 0, r.stderr);
    const st = JSON.parse(hako(root, ['state', id]).stdout);
    assert.equal(st.status, 'running');
    const status = fs.readFileSync(`/proc/${st.pid}/status`, 'utf8');
    assert.match(status, /Cpus_allowed_list:\s+1\n/);
    const sched = fs.readFileSync(`/proc/${st.pid}/sched`, 'utf8');
    assert.match(sched, /policy\s+:\s+2/);
    assert.match(sched, /prio\s+:\s+92/, 'RR priority 7 is kernel prio 99-7');
    const bad = hako(root, ['setup', id, '--process', procFile]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /already running/);
    assert.equal(hako(root, ['delete', '-f', id]).status, 0);
    assert.deepEqual(leftovers(root, id), []);
  });
});

describe('Pool', () => {
  test('keeps containers waiting, runs processes in them, refills, and cleans up', async () => {
    const pool = new Pool(rt, { bundle: template.dir, size: 2 });
    await pool.start();
    assert.equal(pool.available, 2);
    const runs = await Promise.all([
      pool.run(probeProcess(['/bin/probe', 'exit', '3'])),
      pool.run(probeProcess(['/bin/probe', 'exit', '5'])),
    ]);
    const codes = await Promise.all(runs.map((r) => r.exit));
    assert.deepEqual(
      codes.map((c) => c.code),
      [3, 5],
    );
    for (const r of runs) assert.deepEqual(leftovers(root, r.id), [], 'a finished pooled container is deleted');
    for (let i = 0; i < 100 && pool.available < 2; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(pool.available, 2, 'the pool refilled');
    const waiting = (await rt.list())
      .filter((st) => st.id.startsWith('hako-pool') && st.status === 'created')
      .map((st) => st.pid!);
    assert.equal(waiting.length, 2);
    await pool.close();
    for (const pid of waiting)
      assert.ok(!initProcesses().includes(pid), `close() removes the waiting container ${pid}`);
    assert.deepEqual(
      fs.readdirSync(root).filter((n) => n.startsWith('hako-pool')),
      [],
    );
  });
});

describe('the mount namespace held across the exit', () => {
  /** fds of this process that refer to the mount namespace `ns` (a /proc/PID/ns/mnt link text). */
  const fdsOn = (ns: string) =>
    fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`) === ns;
      } catch {
        return false;
      }
    });
  const immediate = () => new Promise((r) => setImmediate(r));

  test('wait() resolves with the namespace still held; it is released right after', async () => {
    const { id, container } = await precreate();
    const ns = fs.readlinkSync(`/proc/${container.pid}/ns/mnt`);
    assert.notEqual(ns, fs.readlinkSync('/proc/self/ns/mnt'));
    assert.equal(fdsOn(ns).length, 1, 'the runtime holds the container mount namespace');
    await rt.setup(id, probeProcess(['/bin/probe', 'hello']));
    assert.equal((await container.wait()).status, 0);
    assert.equal(fdsOn(ns).length, 1, 'still held when the exit is reported');
    await immediate();
    await immediate();
    assert.deepEqual(fdsOn(ns), [], 'released once the exit was reported');
    await rt.delete(id);
  });

  test('a container nobody waited for: delete() releases it', async () => {
    const { id, container } = await precreate();
    const ns = fs.readlinkSync(`/proc/${container.pid}/ns/mnt`);
    await rt.delete(id, { force: true });
    assert.deepEqual(fdsOn(ns), []);
    assert.deepEqual(leftovers(root, id), []);
  });
});
