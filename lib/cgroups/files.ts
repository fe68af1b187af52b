// Reading and writing cgroupfs control files.
//
// Every write goes through `CgroupIo.write` so that (1) a kernel refusal becomes a HakoError that names the
// config field, the file and the errno, and (2) tests can observe the exact sequence of writes (a fake
// cgroupfs made of plain files only keeps the last value of files such as devices.allow or io.max).

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HakoError } from '../errors';
import type { CgroupLog } from './types';

/** The largest u64; cgroup v2 prints "max" for it and runc reports it as this number. */
export const U64_MAX = 18446744073709551615n;

export function errnoOf(err: unknown): { code: string; errno: number } {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'EIO';
  const fromTable = (os.constants.errno as Record<string, number>)[code];
  const errno = typeof fromTable === 'number' ? fromTable : Math.abs(typeof e?.errno === 'number' ? e.errno : 5);
  return { code, errno };
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException)?.code ?? '');
}

/** Permission-like failures that rootless mode turns into warnings (EROFS counts: a read-only cgroupfs). */
export function isPermissionError(err: unknown): boolean {
  return isErrno(err, 'EACCES', 'EPERM', 'EROFS');
}

/** Synchronous sleep for the short bounded waits of the freezer and rmdir retries (no event loop needed). */
export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Formats an integer config value exactly (no exponent form) and rejects fractions. */
export function intString(value: number, field: string): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || !Number.isInteger(value)) {
    throw new HakoError(`${field}: expected an integer, got ${String(value)}`, { field, code: 'EINVAL_CONFIG' });
  }
  return BigInt(value).toString();
}

export interface WriteRecord {
  file: string;
  value: string;
}

export class CgroupIo {
  constructor(
    readonly log?: CgroupLog,
    private readonly onWrite?: (file: string, value: string) => void,
  ) {}

  /**
   * Writes one value with O_WRONLY|O_TRUNC and no O_CREAT: a missing control file means the controller is
   * absent, and creating a plain file in its place (which a fake tree would allow) would hide that.
   */
  write(dir: string, name: string, value: string, field: string): void {
    const err = this.tryWrite(dir, name, value);
    if (err) throw writeError(dir, name, value, field, err);
  }

  /** Like write() but returns the error instead of throwing, for callers that retry or tolerate it. */
  tryWrite(dir: string, name: string, value: string): NodeJS.ErrnoException | undefined {
    const file = path.join(dir, name);
    this.onWrite?.(file, value);
    let fd = -1;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
      fs.writeSync(fd, value);
      return undefined;
    } catch (err) {
      return err as NodeJS.ErrnoException;
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }

  /** Returns the file's text, or undefined when it does not exist (controller absent or cgroup gone). */
  read(dir: string, name: string): string | undefined {
    try {
      return fs.readFileSync(path.join(dir, name), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENODEV')) return undefined;
      throw err;
    }
  }

  exists(dir: string, name: string): boolean {
    return fs.existsSync(path.join(dir, name));
  }
}

export function writeError(dir: string, name: string, value: string, field: string, err: unknown): HakoError {
  const { code, errno } = errnoOf(err);
  const file = path.join(dir, name);
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  const why =
    code === 'ENOENT'
      ? 'the control file does not exist (controller not available in this cgroup)'
      : code === 'EINVAL' || code === 'ERANGE'
        ? 'the kernel rejected the value'
        : code === 'EBUSY'
          ? 'the kernel refused while the cgroup is in use'
          : 'write failed';
  return new HakoError(`${field}: cannot write ${JSON.stringify(shown)} to ${file}: ${why} (${code})`, {
    field,
    errno,
    step: `write ${name}`,
    code,
  });
}

/** Parses a u64 cgroup value; "max" (v2) maps to U64_MAX like runc. */
export function parseU64(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === 'max') return U64_MAX;
  if (!/^\d+$/.test(t)) return undefined;
  return BigInt(t);
}

/** Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...). */
export function parseKeyValues(text: string | undefined): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (!text) return out;
  for (const line of text.split('\n')) {
    const [k, v, extra] = line.trim().split(/\s+/);
    if (!k || v === undefined || extra !== undefined) continue;
    const n = parseU64(v);
    if (n !== undefined) out.set(k, n);
  }
  return out;
}

/** Reads cgroup.procs (one pid a line). */
export function parsePids(text: string | undefined): number[] {
  if (!text) return [];
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+$/.test(l))
    .map((l) => Number(l));
}

/** All pids in dir and its descendants (sub-cgroups a container may create), ignoring cgroups removed meanwhile. */
export function allPids(dir: string): number[] {
  const out = new Set<number>();
  const walk = (d: string, top: boolean): void => {
    let text: string;
    try {
      text = fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8');
    } catch (err) {
      if (!top && isErrno(err, 'ENOENT', 'ENODEV')) return;
      if (top && isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const p of parsePids(text)) out.add(p);
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENODEV')) return;
      throw err;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name), false);
  };
  walk(dir, true);
  return [...out].sort((a, b) => a - b);
}

/**
 * rmdir a cgroup and its sub-cgroups, deepest first. ENOENT is success (already gone), and so is ENOTDIR (a
 * component of the path is a file, as in a cgroupsPath through "cgroup.procs": no such cgroup can exist). EBUSY
 * (tasks still exiting) is retried with a doubling delay, as runc does, ~1 s in total.
 */
export function removeCgroupDir(dir: string): void {
  const rmdirRetry = (d: string): void => {
    let delay = 1;
    for (let tries = 0; ; tries++) {
      try {
        fs.rmdirSync(d);
        return;
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return;
        if (isErrno(err, 'EBUSY') && tries < 10) {
          sleepMs(delay);
          delay *= 2;
          continue;
        }
        throw err;
      }
    }
  };
  try {
    fs.rmdirSync(dir);
    return;
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return;
  }
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupDir(path.join(dir, e.name));
  // A fake cgroupfs (tests) holds plain files that the kernel would not have; real cgroupfs ignores this.
  if (!isCgroupFs(dir)) {
    for (const e of entries) if (!e.isDirectory()) fs.rmSync(path.join(dir, e.name), { force: true });
  }
  rmdirRetry(dir);
}

/**
 * rmdir a cgroup only if it has no sub-cgroup (a parent another container may still use). On a fake tree
 * (plain directory) its control files are plain files, removed first when there is no sub-directory.
 */
export function removeEmptyCgroup(dir: string): void {
  try {
    fs.rmdirSync(dir);
    return;
  } catch (err) {
    if (!isErrno(err, 'ENOTEMPTY', 'EEXIST') || isCgroupFs(dir)) throw err;
    const entries = fs.readdirSync(dir, { withFileTypes: true });
    if (entries.some((e) => e.isDirectory())) throw err;
    for (const e of entries) fs.rmSync(path.join(dir, e.name), { force: true });
    fs.rmdirSync(dir);
  }
}

const CGROUP_SUPER_MAGIC = 0x27e0eb;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** True when dir is on a real cgroup filesystem (v1 or v2), false for plain directories (fake trees). */
export function isCgroupFs(dir: string): boolean {
  try {
    const st = fs.statfsSync(dir);
    return st.type === CGROUP_SUPER_MAGIC || st.type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}
