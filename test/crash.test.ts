// The runtime SIGKILLed at every step of create, start, exec and delete, then `delete --force`: nothing may be
// left (state dir, process, mount, cgroup, fd). HAKO_TEST_KILL_AT=<trace label> makes the CLI kill itself at
// exactly that step (lib/log.ts), so each step is hit every time instead of by timing. Each step runs
// CRASH_REPEAT times (default 2): some leftovers depend on how far the init got when its parent died.
import assert from 'node:assert/strict';
import { describe, test, after } from 'node:test';
import { BUSYBOX, disposeRoot, hako, makeBundle, testRoot, uniqueId, type Bundle } from './helpers/env';
import { envCount, killHolders, removeStrayCgroups, residue } from './helpers/residue';
import type { Spec } from '../lib/oci/types';

const root = testRoot('crash');
after(async () => {
  // Leftover processes are failures of their step's test; the host must not keep them (one waited 55 minutes).
  killHolders(root);
  await disposeRoot(root);
  // Leftover cgroups are a failure reported by the step's test; do not leave them on the host as well.
  for (const p of ['crc', 'crs', 'cre', 'crd', 'crr']) removeStrayCgroups(`${p}-${process.pid}-`);
});

const REPEAT = envCount('CRASH_REPEAT', 2);

/** The trace points (lib/log.ts trace()) in the order the CLI passes them; a rename there fails the step's test. */
const CREATE_STEPS = [
  'cli start',
  'config read',
  'seccomp compiled',
  'state dir reserved',
  'cgroups prepared',
  'plan built',
  'init spawned',
  'init in cgroup',
  'state creating saved',
  'plan applied (READY)',
  'state saved',
];
const START_STEPS = ['start: locked', 'process executed'];
const EXEC_STEPS = ['exec: spawned', 'exec: plan sent', 'exec: running'];
const DELETE_STEPS = ['delete: locked', 'delete: killed', 'delete: cgroups destroyed', 'delete: state removed'];
/** A foreground `run`: killed while it waits for the container, and after its delete. */
const RUN_STEPS = ['container exited', 'deleted'];

function killedAt(step: string, args: string[]): void {
  const r = hako(root, args, { env: { ...process.env, HAKO_TEST_KILL_AT: step } });
  // The kill itself is the evidence that the step was reached: an exit means the trace point is gone or moved.
  assert.equal(
    r.signal,
    'SIGKILL',
    `hako ${args.join(' ')} with HAKO_TEST_KILL_AT="${step}" was not killed there: status ${r.status}, stderr: ${r.stderr}`,
  );
}

function ok(args: string[]): void {
  const r = hako(root, args);
  assert.equal(r.status, 0, `hako ${args.join(' ')}: status ${r.status}, signal ${r.signal}, stderr: ${r.stderr}`);
}

async function assertNothingLeft(id: string, b: Bundle, step: string): Promise<void> {
  const left = await residue(root, id, b.dir);
  assert.deepEqual(left, [], `killed at "${step}", then delete --force: left behind`);
}

function variants(): { name: string; mutate?: (s: Spec) => void; skip?: string | false }[] {
  return [
    { name: 'plain' },
    {
      // A user namespace takes the other spawn path (the id maps are written between clone and continue).
      name: 'user namespace',
      mutate: (s) => {
        s.linux!.namespaces!.push({ type: 'user' });
        s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      },
    },
  ];
}

for (const v of variants()) {
  describe(`SIGKILL during create (${v.name}), then delete --force`, () => {
    const b = makeBundle(['/bin/probe', 'sleep', 'inf'], v.mutate);
    for (const step of CREATE_STEPS)
      test(`killed at "${step}"`, async () => {
        for (let i = 0; i < REPEAT; i++) {
          const id = uniqueId('crc');
          killedAt(step, ['create', '--bundle', b.dir, id]);
          ok(['delete', '--force', id]);
          await assertNothingLeft(id, b, step);
        }
      });
  });
}

describe('SIGKILL during start, then delete --force', () => {
  const b = makeBundle(['/bin/probe', 'sleep', 'inf']);
  for (const step of START_STEPS)
    test(`killed at "${step}"`, async () => {
      for (let i = 0; i < REPEAT; i++) {
        const id = uniqueId('crs');
        ok(['create', '--bundle', b.dir, id]);
        killedAt(step, ['start', id]);
        ok(['delete', '--force', id]);
        await assertNothingLeft(id, b, step);
      }
    });
});

describe('SIGKILL during exec, then delete --force', { skip: !BUSYBOX && 'busybox-static is not installed' }, () => {
  const b = makeBundle(['/bin/probe', 'sleep', 'inf'], undefined, { busybox: true });
  for (const step of EXEC_STEPS)
    test(`killed at "${step}"`, async () => {
      for (let i = 0; i < REPEAT; i++) {
        const id = uniqueId('cre');
        ok(['run', '--detach', '--bundle', b.dir, id]);
        killedAt(step, ['exec', id, '/bin/sleep', '1000']);
        ok(['delete', '--force', id]);
        await assertNothingLeft(id, b, step);
      }
    });

  test('an exec killed while it runs leaves the container running, and its process is still there', async () => {
    const id = uniqueId('cre');
    ok(['run', '--detach', '--bundle', b.dir, id]);
    try {
      killedAt('exec: running', ['exec', id, '/bin/sleep', '1000']);
      const ps = hako(root, ['ps', '--format', 'json', id]);
      assert.equal(ps.status, 0, ps.stderr);
      assert.equal((JSON.parse(ps.stdout) as number[]).length, 2, `the init and the exec'd sleep: ${ps.stdout}`);
      const st = hako(root, ['state', id]);
      assert.equal(JSON.parse(st.stdout).status, 'running');
    } finally {
      ok(['delete', '--force', id]);
    }
    await assertNothingLeft(id, b, 'exec: running');
  });
});

describe('SIGKILL during delete --force, then delete --force again', () => {
  const b = makeBundle(['/bin/probe', 'sleep', 'inf']);
  for (const step of DELETE_STEPS)
    for (const started of [false, true])
      test(`killed at "${step}" (${started ? 'running' : 'created'} container)`, async () => {
        for (let i = 0; i < REPEAT; i++) {
          const id = uniqueId('crd');
          ok(['create', '--bundle', b.dir, id]);
          if (started) ok(['start', id]);
          killedAt(step, ['delete', '--force', id]);
          ok(['delete', '--force', id]);
          await assertNothingLeft(id, b, step);
        }
      });
});

describe('SIGKILL of a foreground run, then delete --force', () => {
  const b = makeBundle(['/bin/probe', 'exit', '3']);
  for (const step of RUN_STEPS)
    test(`killed at "${step}"`, async () => {
      for (let i = 0; i < REPEAT; i++) {
        const id = uniqueId('crr');
        killedAt(step, ['run', '--bundle', b.dir, id]);
        ok(['delete', '--force', id]);
        await assertNothingLeft(id, b, step);
      }
    });
});

describe('an init that dies before it reads its plan', () => {
  const b = makeBundle(['/bin/probe', 'exit', '0']);
  test('create fails at once with a clear error, not after its 120 s receive timeout, and leaves nothing', async () => {
    const id = uniqueId('crc');
    // HAKO_INIT=/bin/false: an init that exits as soon as it starts (as a crashing or OOM-killed init would).
    const t0 = Date.now();
    const r = hako(root, ['create', '--bundle', b.dir, id], {
      env: { ...process.env, HAKO_INIT: '/bin/false' },
      timeout: 20_000,
    });
    const ms = Date.now() - t0;
    try {
      assert.notEqual(r.signal, 'SIGTERM', `create was still waiting after 20 s (stderr: ${r.stderr})`);
      assert.equal(r.status, 1, r.stderr);
      assert.ok(ms < 10_000, `create took ${ms} ms to notice the init was gone`);
      assert.match(r.stderr, /^hako: .*exited/m, 'the error says the init exited');
    } finally {
      ok(['delete', '--force', id]);
    }
    await assertNothingLeft(id, b, 'init exited at once');
  });
});

describe('a seccomp filter that refuses everything, execve and exit included', () => {
  // linux.seccomp {defaultAction: SCMP_ACT_ERRNO, syscalls: []}: the init could neither exec the process nor
  // report it nor exit (it spun at 100% CPU on a refused exit(127)) and start waited for ever.
  const b = makeBundle(['/bin/probe', 'exit', '0'], (s) => {
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] };
  });
  test('start fails at once with an error naming linux.seccomp, the container is stopped, delete leaves nothing', async () => {
    const id = uniqueId('crs');
    ok(['create', '--bundle', b.dir, id]);
    try {
      const t0 = Date.now();
      const r = hako(root, ['start', id], {
        env: { ...process.env, HAKO_CONTROL_TIMEOUT_MS: '5000' },
        timeout: 20_000,
      });
      const ms = Date.now() - t0;
      assert.notEqual(r.signal, 'SIGTERM', `start was still waiting after 20 s (stderr: ${r.stderr})`);
      assert.equal(r.status, 1, r.stderr);
      assert.ok(ms < 10_000, `start took ${ms} ms`);
      assert.match(r.stderr, /linux\.seccomp/, 'the error names linux.seccomp');
      const st = hako(root, ['state', id]);
      assert.equal(st.status, 0, st.stderr);
      assert.equal(JSON.parse(st.stdout).status, 'stopped', 'the container is stopped');
    } finally {
      ok(['delete', '--force', id]);
    }
    await assertNothingLeft(id, b, 'seccomp refused exec');
  });

  // execve allowed only under a condition it never meets (the path pointer is never 0), so the refusal is the
  // kernel's, not known from the config: the init, refused its report and its exit, blocks in rt_sigsuspend
  // (the one syscall allowed) and start's control timeout stops it.
  const cond = makeBundle(['/bin/probe', 'exit', '0'], (s) => {
    s.linux!.seccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['execve'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
        { names: ['rt_sigsuspend'], action: 'SCMP_ACT_ALLOW' },
      ],
    };
  });
  test('a refusal only the kernel knows: start fails at its control timeout, the container is stopped, delete leaves nothing', async () => {
    const id = uniqueId('crs');
    ok(['create', '--bundle', cond.dir, id]);
    try {
      const t0 = Date.now();
      const r = hako(root, ['start', id], {
        env: { ...process.env, HAKO_CONTROL_TIMEOUT_MS: '2000' },
        timeout: 20_000,
      });
      const ms = Date.now() - t0;
      assert.notEqual(r.signal, 'SIGTERM', `start was still waiting after 20 s (stderr: ${r.stderr})`);
      assert.equal(r.status, 1, r.stderr);
      assert.ok(ms < 10_000, `start took ${ms} ms`);
      assert.match(r.stderr, /linux\.seccomp/, 'the error names linux.seccomp');
      const st = hako(root, ['state', id]);
      assert.equal(st.status, 0, st.stderr);
      assert.equal(JSON.parse(st.stdout).status, 'stopped', 'the container is stopped');
    } finally {
      ok(['delete', '--force', id]);
    }
    await assertNothingLeft(id, cond, 'seccomp refused exec (conditional)');
  });
});

// Issue 14: an init that dies (or gives up) on its way to execve closes the control connection just as a
// successful exec does, and start reported success for a container whose process never ran.
describe('an init that ends before the exec: start reports it (library)', () => {
  const cases: [string, NonNullable<Spec['linux']>['seccomp']][] = [
    // Killed at execve under a condition only the kernel evaluates (argv is never NULL): SIGSYS before the exec.
    [
      'killed by SIGSYS at execve',
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['execve'], action: 'SCMP_ACT_KILL_PROCESS', args: [{ index: 1, value: 0, op: 'SCMP_CMP_NE' }] },
        ],
      } as never,
    ],
    [
      'trapped at execve',
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['execve'], action: 'SCMP_ACT_TRAP', args: [{ index: 1, value: 0, op: 'SCMP_CMP_NE' }] }],
      } as never,
    ],
    // execve refused under a condition, then the report, exit and the self-kill refused: the init blocks in
    // rt_sigsuspend after closing its fds (it used to hold the connection until start's control timeout).
    [
      'refused its execve, report and exit',
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        syscalls: [
          { names: ['execve'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
          { names: ['rt_sigsuspend', 'close_range', 'close'], action: 'SCMP_ACT_ALLOW' },
        ],
      } as never,
    ],
  ];
  for (const [what, seccomp] of cases)
    test(`${what}: start fails naming linux.seccomp within 5 s, the container is stopped (5 runs)`, async () => {
      const { Runtime } = await import('../lib/runtime/runtime');
      const rt = new Runtime({ root });
      const b = makeBundle(['/bin/probe', 'exit', '0'], (s) => (s.linux!.seccomp = seccomp));
      for (let i = 0; i < 5; i++) {
        const id = uniqueId('crs');
        const c = await rt.create(id, { bundle: b.dir });
        try {
          const t0 = Date.now();
          await assert.rejects(
            rt.start(id),
            (e: Error & { field?: string }) =>
              /before it executed the process/.test(e.message) && e.field === 'linux.seccomp',
            `run ${i}`,
          );
          assert.ok(Date.now() - t0 < 5000, `run ${i}: start took ${Date.now() - t0} ms`);
          assert.equal((await rt.state(id)).status, 'stopped');
          assert.notEqual((await c.wait()).code, 0, `run ${i}: the process never ran`);
        } finally {
          await rt.delete(id, { force: true });
        }
        await assertNothingLeft(id, b, what);
      }
    });
});
