// What the v1 and v2 managers share: directory creation and removal, rootless tolerance, signalling.

import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import {
  CgroupIo,
  errnoOf,
  isErrno,
  isPermissionError,
  removeCgroupDir,
  removeEmptyCgroup,
  sleepMs,
  writeError,
} from './files';
import { type CgroupPaths, resolveCgroupPaths } from './paths';
import { readHugePageSizes } from './stats';
import type { CgroupLog, CgroupManagerOptions } from './types';

export abstract class BaseManager {
  protected readonly io: CgroupIo;
  protected readonly log?: CgroupLog;
  protected readonly rootless: boolean;
  protected readonly resolved: CgroupPaths;
  /** Directories that could not be created or joined (rootless): later operations skip them. */
  protected readonly skipped = new Set<string>();
  protected created: string[];
  /** Rootless: directories the kernel refused to make, reported in one warning by warnRefusedMkdirs(). */
  private readonly refusedMkdirs: string[] = [];
  private hugeSizes?: string[];

  constructor(protected readonly opts: CgroupManagerOptions) {
    this.io = new CgroupIo(opts.log, opts.onWrite);
    this.log = opts.log;
    this.rootless = !!opts.rootless;
    this.resolved =
      opts.paths ??
      resolveCgroupPaths({
        layout: opts.layout,
        cgroupsPath: opts.path,
        id: opts.id,
        systemdCgroup: opts.systemdCgroup,
        procSelfCgroup: opts.procSelfCgroup,
      });
    this.created = [...(opts.created ?? [])];
  }

  /** Every directory this manager owns, one per hierarchy (the cgroup2 one included). */
  protected abstract leafDirs(): string[];

  protected hugePageSizes(): string[] {
    this.hugeSizes ??= this.opts.hugePageSizes ?? readHugePageSizes();
    return this.hugeSizes;
  }

  protected warn(message: string): void {
    this.log?.warn(message);
  }

  /** A rootless hierarchy skipped: a warning only when the container asked for limits (see limitsRequested). */
  protected noteSkipped(message: string): void {
    if (this.opts.limitsRequested === false) this.log?.debug?.(message);
    else this.warn(message);
  }

  /**
   * mkdir -p of dir below mount, returning the directories created, top-down. Rootless and not permitted:
   * warn, remember the hierarchy as skipped, return what was made so far.
   */
  protected mkdirUnder(mount: string, dir: string): string[] {
    const rel = path.relative(mount, dir);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new HakoError(`linux.cgroupsPath: ${dir} is outside the cgroup mount ${mount}`, {
        field: 'linux.cgroupsPath',
      });
    }
    const made: string[] = [];
    let cur = mount;
    for (const part of rel.split(path.sep).filter(Boolean)) {
      cur = path.join(cur, part);
      try {
        fs.mkdirSync(cur, 0o755);
        made.push(cur);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) continue;
        if (this.rootless && isPermissionError(err)) {
          this.refusedMkdirs.push(`${cur} (${errnoOf(err).code})`);
          this.skipped.add(dir);
          break;
        }
        const { code, errno } = errnoOf(err);
        throw new HakoError(`linux.cgroupsPath: cannot create cgroup directory ${cur} (${code})`, {
          field: 'linux.cgroupsPath',
          errno,
          step: 'mkdir',
          code,
        });
      }
    }
    for (const d of made) if (!this.created.includes(d)) this.created.push(d);
    return made;
  }

  /** One line for all the hierarchies a rootless create() had to skip (one each would be a dozen on v1). */
  protected warnRefusedMkdirs(): void {
    if (this.refusedMkdirs.length)
      this.noteSkipped(
        `rootless: cannot create cgroup ${this.refusedMkdirs.join(', ')}; skipping ${this.refusedMkdirs.length === 1 ? 'this hierarchy' : 'these hierarchies'}`,
      );
    this.refusedMkdirs.length = 0;
  }

  /** Writes a value; rootless permission failures become warnings (returns false). */
  protected write(dir: string, name: string, value: string, field: string): boolean {
    const err = this.io.tryWrite(dir, name, value);
    if (!err) return true;
    if (this.rootless && isPermissionError(err)) {
      this.warn(`rootless: ${field} not applied: cannot write ${path.join(dir, name)} (${errnoOf(err).code})`);
      return false;
    }
    throw writeError(dir, name, value, field, err);
  }

  /** Writes pid to dir/cgroup.procs; EINVAL is retried because a task still in TASK_NEW refuses to move. */
  protected joinDir(dir: string, pid: number): void {
    if (this.skipped.has(dir)) return;
    for (let tries = 0; ; tries++) {
      const err = this.io.tryWrite(dir, 'cgroup.procs', String(pid));
      if (!err) return;
      if (isErrno(err, 'EINVAL') && tries < 5) {
        sleepMs(30);
        continue;
      }
      // ENOENT: a hierarchy create() could not make (rootless, not delegated) has nothing to join (exec).
      if (this.rootless && (isPermissionError(err) || isErrno(err, 'ENOENT'))) {
        this.noteSkipped(
          `rootless: cannot move pid ${pid} into ${dir} (${errnoOf(err).code}); skipping this hierarchy`,
        );
        this.skipped.add(dir);
        return;
      }
      const { code, errno } = errnoOf(err);
      throw new HakoError(
        `linux.cgroupsPath: cannot move pid ${pid} into ${dir} (${code}${code === 'ESRCH' ? ': no such process' : ''})`,
        { field: 'linux.cgroupsPath', errno, step: 'write cgroup.procs', code },
      );
    }
  }

  /** Leaves (with their sub-cgroups) first, then the parents that create() made, deepest first, if empty. */
  destroy(): void {
    const leaves = this.leafDirs();
    for (const dir of leaves) {
      try {
        removeCgroupDir(dir);
      } catch (err) {
        if (this.rootless && isPermissionError(err)) {
          this.warn(`rootless: cannot remove cgroup ${dir} (${errnoOf(err).code})`);
          continue;
        }
        const { code, errno } = errnoOf(err);
        throw new HakoError(`cannot remove cgroup ${dir} (${code})`, { errno, step: 'rmdir', code });
      }
    }
    const parents = this.created
      .filter((d) => !leaves.includes(d))
      .sort((a, b) => b.split('/').length - a.split('/').length);
    for (const dir of parents) {
      try {
        removeEmptyCgroup(dir);
      } catch (err) {
        // Another container may live there (ENOTEMPTY/EBUSY), or it is gone: both fine.
        if (!isErrno(err, 'ENOENT', 'ENOTEMPTY', 'EBUSY', 'EEXIST')) this.log?.debug?.(`rmdir ${dir}: ${String(err)}`);
      }
    }
    this.created = [];
  }

  exists(): boolean {
    return this.leafDirs().some((d) => fs.existsSync(d));
  }

  /** Sends signal to each pid, ignoring processes that are already gone. */
  abstract pids(): number[];
  abstract freeze(): void;
  abstract thaw(): void;
  abstract isFrozen(): boolean;

  /** Freeze, signal everyone, thaw: no process can fork a child that escapes the signal in between. */
  protected signalFrozen(signal: NodeJS.Signals | number): void {
    // A paused container stays paused: only thaw what we froze ourselves.
    const wasFrozen = this.isFrozen();
    if (!wasFrozen) this.freeze();
    try {
      this.signalAll(this.pids(), signal);
    } finally {
      // SIGKILL must reach processes that are paused (a v1-frozen task never wakes): thaw then too.
      if (!wasFrozen || isSigkill(signal)) this.thaw();
    }
  }

  protected signalAll(pids: number[], signal: NodeJS.Signals | number): void {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch (err) {
        if (!isErrno(err, 'ESRCH')) throw err;
      }
    }
  }
}

export function isSigkill(signal: NodeJS.Signals | number): boolean {
  return signal === 9 || signal === 'SIGKILL';
}

/**
 * Enables controllers for dir's subtree on cgroup2: each ancestor from the mount down to dir's parent gets
 * "+ctrl" in cgroup.subtree_control for the controllers it has available. `wanted` 'all' enables everything
 * available (what runc does at create time, so a later `update` finds the files); a list enables only those.
 * Failures are tolerated (an ancestor outside a rootless delegation, or with processes of its own, refuses);
 * the missing control file then produces the precise error when a value is written.
 */
export function enableControllers(
  io: CgroupIo,
  mount: string,
  dir: string,
  wanted: 'all' | string[],
  log?: CgroupLog,
): void {
  const rel = path.relative(mount, dir);
  const parts = rel.split(path.sep).filter(Boolean);
  let cur = mount;
  for (let i = 0; i < parts.length; i++) {
    const available = (io.read(cur, 'cgroup.controllers') ?? '').split(/\s+/).filter(Boolean);
    // (A fake tree's plain file keeps the "+ctrl" we wrote; the kernel lists names without "+".)
    const enabled = new Set(
      (io.read(cur, 'cgroup.subtree_control') ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((c) => c.replace(/^\+/, '')),
    );
    const todo = available.filter((c) => !enabled.has(c) && (wanted === 'all' || wanted.includes(c)));
    if (todo.length > 0 && io.tryWrite(cur, 'cgroup.subtree_control', todo.map((c) => `+${c}`).join(' '))) {
      for (const c of todo) {
        const err = io.tryWrite(cur, 'cgroup.subtree_control', `+${c}`);
        if (err) log?.debug?.(`cannot enable ${c} in ${cur}/cgroup.subtree_control: ${err.code}`);
      }
    }
    cur = path.join(cur, parts[i]);
  }
}
