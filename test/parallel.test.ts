// Bounded concurrency: PARALLEL_N (default 100) complete lifecycles (create, start, wait, delete) through the
// library in one process, PARALLEL_CONCURRENCY (default 10) at a time, and PARALLEL_CLI_N (default 20) through
// the CLI. Each container exits with a status of its own, so a reply or exit status delivered to the wrong
// container (a stolen message, a crossed reaper) shows as a wrong status. Afterwards nothing may be left: state
// dirs, processes, mounts, cgroups, and no new fd in this process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Runtime } from '../lib/runtime/runtime';
import { disposeRoot, HAKO_BIN, makeBundle, testRoot, tmpDir, uniqueId } from './helpers/env';
import { containerHeldFds, envCount, newFds, ownFds, residue } from './helpers/residue';

const root = testRoot('parallel');
after(() => disposeRoot(root));

const N = envCount('PARALLEL_N', 100);
const CONCURRENCY = Math.max(1, envCount('PARALLEL_CONCURRENCY', 10));
const CLI_N = envCount('PARALLEL_CLI_N', 20);

/** Run `jobs` with at most `limit` in flight; every job runs, and every failure is collected (none is lost). */
async function bounded<T>(
  count: number,
  limit: number,
  job: (i: number) => Promise<T>,
): Promise<{ results: (T | undefined)[]; errors: string[] }> {
  const results: (T | undefined)[] = new Array(count);
  const errors: string[] = [];
  let next = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        results[i] = await job(i);
      } catch (e) {
        errors.push(`#${i}: ${(e as Error).message}`);
      } finally {
        inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  assert.ok(maxInFlight <= limit, `at most ${limit} in flight, saw ${maxInFlight}`);
  return { results, errors };
}

/** One config file per exit code in a shared bundle (crun's --config / CreateOptions.config). */
function configs(b: { dir: string; spec: object }, codes: number): string[] {
  const dir = tmpDir('parallel-configs');
  return Array.from({ length: codes }, (_, code) => {
    const file = path.join(dir, `config-${code}.json`);
    const spec = JSON.parse(JSON.stringify(b.spec)) as { process: { args: string[] } };
    spec.process.args = ['/bin/probe', 'exit', String(code)];
    fs.writeFileSync(file, JSON.stringify(spec));
    return file;
  });
}

describe('parallel lifecycles', () => {
  const b = makeBundle(['/bin/probe', 'exit', '0']);
  const files = configs(b, 50);

  test(`${N} library lifecycles, ${CONCURRENCY} at a time: all succeed with their own exit status, nothing left`, async () => {
    const rt = new Runtime({ root });
    const devNull = fs.openSync('/dev/null', 'r+');
    try {
      // One lifecycle first: lazily loaded modules and lazily opened fds of Node are then already in `before`.
      const warm = await rt.run(uniqueId('pw'), {
        bundle: b.dir,
        config: files[7],
        stdio: [devNull, devNull, devNull],
      });
      assert.equal((await warm.wait()).status, 7);
      await rt.delete(warm.id);
      const before = ownFds();
      const ids: string[] = [];
      const { results, errors } = await bounded(N, CONCURRENCY, async (i) => {
        const id = uniqueId('pl');
        ids.push(id);
        const code = i % files.length;
        const c = await rt.create(id, { bundle: b.dir, config: files[code], stdio: [devNull, devNull, devNull] });
        await rt.start(id);
        const st = await c.wait();
        await rt.delete(id);
        return { code, status: st.status, signal: st.signal };
      });
      assert.deepEqual(errors, [], 'every lifecycle succeeds');
      const wrong = results.map((r, i) => ({ i, ...r! })).filter((r) => r.status !== r.code || r.signal !== null);
      assert.deepEqual(wrong, [], 'each container exits with its own status');
      // Let the deferred namespace releases (setImmediate after wait) run.
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(newFds(before), [], 'no fd of this process is left open');
      assert.deepEqual(containerHeldFds(), [], 'the runtime holds no fd for a deleted container');
      const left = (await Promise.all(ids.map((id) => residue(root, id, b.dir, { graceMs: 2000 })))).flat();
      assert.deepEqual([...new Set(left)], [], 'nothing is left of any container');
      assert.deepEqual(
        fs.readdirSync(root).filter((d) => !d.startsWith('.')),
        [],
        'the state root holds no container',
      );
    } finally {
      fs.closeSync(devNull);
    }
  });

  test(`${CLI_N} CLI lifecycles (create, start, delete) at once: all succeed, nothing left`, async () => {
    // stderr through a file and 'exit', not a pipe and 'close': the container inherits the CLI's stdio, and a
    // pipe would stay open until the container exits (after start, which waits for create's promise).
    const io = tmpDir('parallel-io');
    let seq = 0;
    const cli = (args: string[]) =>
      new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const file = path.join(io, `err-${seq++}`);
        const fd = fs.openSync(file, 'w+');
        const p = spawn(process.execPath, [HAKO_BIN, '--root', root, ...args], { stdio: ['ignore', 'ignore', fd] });
        fs.closeSync(fd);
        p.on('exit', (status) => resolve({ status, stderr: fs.readFileSync(file, 'utf8') }));
      });
    const ids: string[] = [];
    const { errors } = await bounded(CLI_N, CLI_N, async (i) => {
      const id = uniqueId('pc');
      ids.push(id);
      // The container's stdio is /dev/null (spawn's 'ignore'): a pipe would be held open by the container.
      const code = i % files.length;
      for (const args of [
        ['create', '--bundle', b.dir, '--config', files[code], id],
        ['start', id],
      ]) {
        const r = await cli(args);
        if (r.status !== 0) throw new Error(`hako ${args.join(' ')}: status ${r.status}: ${r.stderr}`);
      }
      // The process exits on its own; wait for the state to say so, then delete without --force.
      for (let t = 0; ; t++) {
        const st = await new Promise<string>((resolve) => {
          const p = spawn(process.execPath, [HAKO_BIN, '--root', root, 'state', id], {
            stdio: ['ignore', 'pipe', 'ignore'],
          });
          let out = '';
          p.stdout.on('data', (d) => (out += d));
          p.on('close', () => resolve(out)); // `state` starts no container: its pipe closes when it exits
        });
        if (st.includes('"stopped"')) break;
        if (t > 200) throw new Error(`${id} did not stop: ${st}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const r = await cli(['delete', id]);
      if (r.status !== 0) throw new Error(`hako delete ${id}: status ${r.status}: ${r.stderr}`);
    });
    assert.deepEqual(errors, [], 'every CLI lifecycle succeeds');
    const left = (await Promise.all(ids.map((id) => residue(root, id, b.dir, { graceMs: 2000 })))).flat();
    assert.deepEqual([...new Set(left)], [], 'nothing is left of any container');
  });
});
