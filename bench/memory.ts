// Section 3: memory of containers waiting between create and start: the hako-init process, runc's
// `runc:[2:INIT]` and crun's forked waiting process, read from /proc/PID/smaps_rollup.
import * as fs from 'fs';
import * as path from 'path';
import { initHelperPath } from '../lib/native/addon';
import type { BenchContext, Variant } from './context';
import { sweepAsync, type RuntimeName } from './cleanup';
import { Interrupted, log, mustRun, procMem, type ProcMem } from './util';

export interface MemRow {
  runtime: RuntimeName;
  variant: string;
  process: string;
  threads: number;
  /** Other processes on the host running the same executable while measuring (max): they share file pages. */
  otherSharers: number;
  /** One container at a time, mean over `aloneReps` creates (kB). */
  alone: { reps: number; rssKb: number; pssKb: number; pssAnonKb: number; pssFileKb: number; privateKb: number };
  /** `count` containers waiting at once (kB). */
  many: {
    count: number;
    pssTotalKb: number;
    rssTotalKb: number;
    pssEachKb: number;
    rssEachKb: number;
    privateEachKb: number;
  };
  error?: string;
}

interface Created {
  id: string;
  pid: number;
}

async function createOne(ctx: BenchContext, v: Variant, rt: RuntimeName, id: string): Promise<Created> {
  if (rt === 'hako') {
    const c = await ctx.rt.create(id, { bundle: v.bundle.dir, stdio: [ctx.devNull, ctx.devNull, ctx.devNull] });
    c.unref();
    return { id, pid: c.pid };
  }
  const pidFile = path.join(ctx.work, `${id}.pid`);
  mustRun(rt, ['--root', ctx.roots[rt], 'create', '-b', v.bundle.dir, '--pid-file', pidFile, id]);
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  fs.rmSync(pidFile, { force: true });
  return { id, pid };
}

async function deleteOne(ctx: BenchContext, rt: RuntimeName, id: string): Promise<void> {
  if (rt === 'hako') await ctx.rt.delete(id, { force: true });
  else mustRun(rt, ['--root', ctx.roots[rt], 'delete', '--force', id]);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

function exeKey(pid: number | string): string | undefined {
  try {
    const st = fs.statSync(`/proc/${pid}/exe`);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Processes outside this measurement running the same executable: they share its file pages, so lower PSS. */
function otherSharers(pids: number[]): number {
  const keys = new Set(pids.map(exeKey).filter((k): k is string => !!k));
  const ours = new Set(pids.map(String));
  let n = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || ours.has(d)) continue;
    const k = exeKey(d);
    if (k && keys.has(k)) n++;
  }
  return n;
}

async function measure(ctx: BenchContext, v: Variant, rt: RuntimeName): Promise<MemRow> {
  let seq = 0;
  const nextId = () => `${ctx.tag}${v.short}-m${rt[0]}-${seq++}`;
  const alone: ProcMem[] = [];
  let sharers = 0;
  for (let i = 0; i < ctx.memAlone; i++) {
    const c = await createOne(ctx, v, rt, nextId());
    try {
      alone.push(procMem(c.pid));
      sharers = Math.max(sharers, otherSharers([c.pid]));
    } finally {
      await deleteOne(ctx, rt, c.id);
    }
  }
  const many: Created[] = [];
  let mems: ProcMem[] = [];
  try {
    for (let i = 0; i < ctx.memCount; i++) many.push(await createOne(ctx, v, rt, nextId()));
    mems = many.map((c) => procMem(c.pid));
    sharers = Math.max(sharers, otherSharers(many.map((c) => c.pid)));
  } finally {
    for (const c of many)
      await deleteOne(ctx, rt, c.id).catch((e) => log(`delete ${rt} ${c.id}: ${(e as Error).message}`));
  }
  const sum = (f: (m: ProcMem) => number) => mems.reduce((a, m) => a + f(m), 0);
  const n = Math.max(mems.length, 1);
  return {
    runtime: rt,
    variant: v.name,
    process: alone[0]?.comm ?? '?',
    threads: alone[0]?.threads ?? 0,
    otherSharers: sharers,
    alone: {
      reps: alone.length,
      rssKb: mean(alone.map((m) => m.rssKb)),
      pssKb: mean(alone.map((m) => m.pssKb)),
      pssAnonKb: mean(alone.map((m) => m.pssAnonKb)),
      pssFileKb: mean(alone.map((m) => m.pssFileKb)),
      privateKb: mean(alone.map((m) => m.privateKb)),
    },
    many: {
      count: mems.length,
      pssTotalKb: sum((m) => m.pssKb),
      rssTotalKb: sum((m) => m.rssKb),
      pssEachKb: sum((m) => m.pssKb) / n,
      rssEachKb: sum((m) => m.rssKb) / n,
      privateEachKb: sum((m) => m.privateKb) / n,
    },
  };
}

export async function benchMemory(ctx: BenchContext): Promise<MemRow[]> {
  const rows: MemRow[] = [];
  // A private copy of the init helper (HAKO_INIT): its file pages are then shared with no hako-init that other
  // users of this host happen to run, so "alone" is alone (crun's and runc's binaries are not shared either).
  const helperCopy = path.join(ctx.work, 'hako-init');
  fs.copyFileSync(initHelperPath(), helperCopy);
  fs.chmodSync(helperCopy, 0o755);
  const savedHelper = process.env.HAKO_INIT;
  process.env.HAKO_INIT = helperCopy;
  try {
    return await measureAll(ctx, rows);
  } finally {
    if (savedHelper === undefined) delete process.env.HAKO_INIT;
    else process.env.HAKO_INIT = savedHelper;
  }
}

async function measureAll(ctx: BenchContext, rows: MemRow[]): Promise<MemRow[]> {
  const runtimes: RuntimeName[] = ['hako', ...(['runc', 'crun'] as const).filter((r) => ctx.have[r])];
  for (const [v, rt] of ctx.variants.flatMap((v) => runtimes.map((rt) => [v, rt] as const))) {
    log(`memory: ${rt}, alone x ${ctx.memAlone}, then ${ctx.memCount} at once [${v.name}]`);
    try {
      rows.push(await measure(ctx, v, rt));
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      log(`  failed: ${(e as Error).message}`);
      rows.push({
        runtime: rt,
        variant: v.name,
        process: '?',
        threads: 0,
        otherSharers: 0,
        alone: { reps: 0, rssKb: NaN, pssKb: NaN, pssAnonKb: NaN, pssFileKb: NaN, privateKb: NaN },
        many: { count: 0, pssTotalKb: NaN, rssTotalKb: NaN, pssEachKb: NaN, rssEachKb: NaN, privateEachKb: NaN },
        error: (e as Error).message.split('\n').slice(0, 3).join(' | '),
      });
    } finally {
      const s = await sweepAsync(ctx, ctx.rt);
      if (s.deleted || s.failed.length)
        log(`  swept ${s.deleted} leftover containers${s.failed.length ? `; failed: ${s.failed.join('; ')}` : ''}`);
    }
  }
  return rows;
}
