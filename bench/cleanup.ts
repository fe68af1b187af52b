// Every container the bench makes lives in a state root of its own (one per runtime, under /run). The sweep
// force-deletes whatever is left in those roots: at the end of each section, at the end of the run, and on
// error or signal, so no process, cgroup or state directory outlives the bench.
import * as fs from 'fs';
import * as path from 'path';
import type { Runtime } from '../lib/runtime/runtime';
import { run } from './util';

export type RuntimeName = 'hako' | 'runc' | 'crun';

export interface Roots {
  hako: string;
  runc: string;
  crun: string;
}

export interface SweepContext {
  roots: Roots;
  node: string;
  hakoBin: string;
  have: { runc: boolean; crun: boolean };
}

/** Ids present in a runtime's state root. */
export function listIds(ctx: SweepContext, rt: RuntimeName): string[] {
  const root = ctx.roots[rt];
  if (!fs.existsSync(root)) return [];
  // Dot entries are not containers (an older hako kept its caches in <root>/.cache; now /run/hako-cache).
  if (rt === 'hako')
    return fs.readdirSync(root).filter((d) => !d.startsWith('.') && fs.statSync(path.join(root, d)).isDirectory());
  if (!ctx.have[rt]) return [];
  const r = run(rt, ['--root', root, 'list', '-q'], { timeoutMs: 30_000 });
  if (r.status !== 0) return fs.readdirSync(root).filter((d) => fs.statSync(path.join(root, d)).isDirectory());
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Synchronous force-delete of everything in the roots (CLI calls, so it also works from an exit handler). */
export function sweep(ctx: SweepContext): { deleted: number; failed: string[] } {
  let deleted = 0;
  const failed: string[] = [];
  for (const rt of ['hako', 'runc', 'crun'] as RuntimeName[]) {
    for (const id of listIds(ctx, rt)) {
      const r =
        rt === 'hako'
          ? run(ctx.node, [ctx.hakoBin, '--root', ctx.roots.hako, 'delete', '--force', id], { timeoutMs: 30_000 })
          : run(rt, ['--root', ctx.roots[rt], 'delete', '--force', id], { timeoutMs: 30_000 });
      if (r.status === 0) deleted++;
      else failed.push(`${rt} ${id}: ${r.stderr.trim() || r.error?.message || `exit ${r.status}`}`);
    }
  }
  return { deleted, failed };
}

/** The normal-path sweep: hako's containers through the library (no Node start per id), the others by CLI. */
export async function sweepAsync(ctx: SweepContext, rt: Runtime): Promise<{ deleted: number; failed: string[] }> {
  let deleted = 0;
  const failed: string[] = [];
  for (const id of listIds(ctx, 'hako')) {
    try {
      await rt.delete(id, { force: true });
      deleted++;
    } catch (e) {
      failed.push(`hako ${id}: ${(e as Error).message}`);
    }
  }
  const rest = sweep({ ...ctx, roots: { ...ctx.roots, hako: '/nonexistent-hako-bench-root' } });
  return { deleted: deleted + rest.deleted, failed: [...failed, ...rest.failed] };
}

/** cgroup v1 hierarchies (and a v2 mount), from this mount namespace's mountinfo. */
function cgroupMounts(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - cgroup2? /.test(l))
    .map((l) => l.split(' ')[4]);
}

/**
 * Safety net after an interrupted run: empty cgroup directories named after this bench's ids (`tag-…`), at any
 * depth up to 4 below a hierarchy's root (hako nests under the caller's own cgroup in some hierarchies).
 */
export function removeStrayCgroups(tag: string): { removed: number; failed: string[] } {
  let removed = 0;
  const failed: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.startsWith(`${tag}-`)) {
        try {
          fs.rmdirSync(p);
          removed++;
        } catch (err) {
          failed.push(`${p}: ${(err as NodeJS.ErrnoException).code}`);
        }
      } else if (depth < 4) walk(p, depth + 1);
    }
  };
  for (const m of cgroupMounts()) walk(m, 1);
  return { removed, failed };
}
