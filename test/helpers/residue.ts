// What a container can leave behind once it is gone, looked for everywhere on the host: the crash, parallel and
// fuzz tests all end with "nothing is left", and a check that looks in too few places would pass silently.
import * as fs from 'fs';
import * as path from 'path';
import { leftovers } from './env';
import { sealedInit } from '../../lib/runtime/enter';
import { heldFds } from '../../lib/state/held-fds';

function pids(): string[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d) && d !== String(process.pid));
}

function read(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return ''; // the process is gone meanwhile
  }
}

/**
 * Processes that belong to the bundle at `bundleDir`: its rootfs is in their mount table (every process of the
 * container after pivot_root, the init before it has the bundle as cwd), whatever they are called.
 */
export function processesOf(bundleDir: string): string[] {
  const out: string[] = [];
  for (const pid of pids()) {
    let cwd = '';
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      /* gone, or a kernel thread */
    }
    if (
      cwd === bundleDir ||
      cwd.startsWith(`${bundleDir}/`) ||
      read(`/proc/${pid}/mountinfo`).includes(` ${bundleDir}/`)
    )
      out.push(`process ${pid} (${read(`/proc/${pid}/comm`).trim()})`);
  }
  return out;
}

/** Open fds of any process (other than this one) into one of `prefixes` (a state dir, its control socket, a bundle). */
export function fdsInto(prefixes: string[]): string[] {
  const out: string[] = [];
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (prefixes.some((p) => target === p || target.startsWith(`${p}/`)))
        out.push(`fd ${pid}/${fd} -> ${target} (${read(`/proc/${pid}/comm`).trim()})`);
    }
  }
  return out;
}

/** cgroup directories named `rel` (an absolute cgroupsPath) in every hierarchy. */
export function cgroupDirs(rel: string): string[] {
  const out: string[] = [];
  for (const ctrl of fs.readdirSync('/sys/fs/cgroup')) {
    const p = path.join('/sys/fs/cgroup', ctrl, rel);
    if (fs.existsSync(p)) out.push(`cgroup ${p}`);
  }
  return out;
}

/**
 * Everything left of container `id` (state root `root`, bundle `bundleDir`): state dir, cgroups, mounts (env.ts
 * leftovers()), processes and fds. Processes die asynchronously after a SIGKILL (and a parentless init only sees
 * its socket close once its parent is gone), so this polls until `graceMs` has passed before calling anything left.
 */
export async function residue(
  root: string,
  id: string,
  bundleDir: string,
  opts: { graceMs?: number; cgroupsPath?: string } = {},
): Promise<string[]> {
  const deadline = Date.now() + (opts.graceMs ?? 3000);
  for (;;) {
    const found = [
      ...new Set(leftovers(root, id)), // env.ts looks in <hierarchy>/<own cgroup>/id too, which is <hierarchy>/id at the root
      ...(opts.cgroupsPath ? cgroupDirs(opts.cgroupsPath) : []),
      ...processesOf(bundleDir),
      ...fdsInto([path.join(root, id), bundleDir]),
    ];
    if (!found.length || Date.now() >= deadline) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The fds the runtime holds (lib/state/held-fds) apart from the sealed memfd copy of hako-init, which it makes
 * once per process on first use and keeps on purpose (lib/runtime/enter.ts sealedInit, CVE-2019-5736): that one
 * is not a leftover of any container. Made here through the same function if not yet made, so that it is the
 * same fd whatever the test did before.
 */
export function containerHeldFds(): number[] {
  const sealed = sealedInit().fd;
  return heldFds().filter((fd) => fd !== sealed);
}

/** This process's open fds, as "fd -> target", for a before/after comparison. */
export function ownFds(): Map<string, string> {
  const m = new Map<string, string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      m.set(fd, fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      /* the fd readdir itself used */
    }
  }
  return m;
}

/** fds open now that were not in `before` (the same number pointing elsewhere counts too). */
export function newFds(before: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [fd, target] of ownFds()) if (before.get(fd) !== target) out.push(`${fd} -> ${target}`);
  return out;
}

/** An integer knob from the environment (tests keep modest defaults; CI or a developer turns them up). */
export function envCount(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a non-negative integer, got "${v}"`);
  return n;
}

/**
 * After a test that found leftovers: remove empty cgroup directories whose name starts with `prefix` (this test
 * file's ids), at most 4 levels below each hierarchy, so one failure does not litter the host for the next run.
 */
export function removeStrayCgroups(prefix: string): string[] {
  const removed: string[] = [];
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
      if (e.name.startsWith(prefix)) {
        try {
          fs.rmdirSync(p);
          removed.push(p);
        } catch {
          /* busy: a live process, reported by the test */
        }
      } else if (depth < 4) walk(p, depth + 1);
    }
  };
  for (const h of fs.readdirSync('/sys/fs/cgroup')) walk(path.join('/sys/fs/cgroup', h), 1);
  return removed;
}

/**
 * After a test that found leftover processes: SIGKILL every process (other than this one) holding an fd into
 * `prefix` (a test's state root), so a process a defect stranded does not outlive the test run.
 */
export function killHolders(prefix: string): number[] {
  const killed = new Set<number>();
  for (const line of fdsInto([prefix])) {
    const pid = Number(/^fd (\d+)\//.exec(line)?.[1]);
    if (!pid || killed.has(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.add(pid);
    } catch {
      /* gone */
    }
  }
  return [...killed];
}
