// Shared test fixtures: bundles whose rootfs holds hako-probe (and busybox when installed), a private
// state root per test file, and helpers to run the CLI and read what a container printed.
import { spawnSync, type SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot, probePath } from '../../lib/native/addon';
import { defaultSpec } from '../../lib/default-spec';
import type { Spec } from '../../lib/oci/types';

export const ROOT_DIR = packageRoot();
export const HAKO_BIN = path.join(ROOT_DIR, 'bin', 'hako');
/**
 * Tools the tests treat as absent (comma list, e.g. HAKO_TEST_WITHOUT=busybox): to check, on a machine that has
 * them, that the tests skip with the reason on one that has only README's set-up packages.
 */
export const WITHOUT = new Set((process.env.HAKO_TEST_WITHOUT ?? '').split(',').filter(Boolean));
export const BUSYBOX = WITHOUT.has('busybox')
  ? undefined
  : ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));

export interface Bundle {
  dir: string;
  rootfs: string;
  spec: Spec;
  /** Rewrite config.json after changing `spec`. */
  save(): void;
}

let counter = 0;

/** Directories tmpDir made in this process: removed when it exits, so a test run leaves nothing in /tmp. */
const made = new Set<string>();
function removeMade(): void {
  for (const d of made) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch (e) {
      // Still in use (a mount a failed test left behind): say so rather than hide it.
      process.stderr.write(`test helper: could not remove ${d}: ${(e as Error).message}\n`);
    }
  }
  made.clear();
}

/**
 * A fresh directory under the temp dir, removed at process exit (each test file is its own process under
 * `node --test`), or earlier by the test itself.
 */
export function tmpDir(prefix: string): string {
  if (made.size === 0) process.once('exit', removeMade);
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `hako-${prefix}-`));
  made.add(d);
  return d;
}

/** A bundle running hako-probe as /bin/probe; `mutate` edits the spec before it is written. */
export function makeBundle(
  args: string[] = ['/bin/probe', 'json'],
  mutate?: (s: Spec) => void,
  opts: { busybox?: boolean } = {},
): Bundle {
  const dir = tmpDir('bundle');
  fs.chmodSync(dir, 0o755); // reachable by the mapped root of a user namespace
  const rootfs = path.join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp', 'etc', 'data'])
    fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(probePath(), path.join(rootfs, 'bin', 'probe'));
  fs.chmodSync(path.join(rootfs, 'bin', 'probe'), 0o755);
  if (opts.busybox && BUSYBOX) {
    fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
    fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    for (const t of [
      'sh',
      'ls',
      'cat',
      'echo',
      'true',
      'false',
      'sleep',
      'mount',
      'id',
      'ps',
      'touch',
      'mkdir',
      'grep',
      'hostname',
      'ulimit',
      'env',
    ])
      fs.symlinkSync('busybox', path.join(rootfs, 'bin', t));
  }
  sanitizerLibs(rootfs);
  const spec = defaultSpec({ args, terminal: false });
  spec.hostname = 'probe-host';
  mutate?.(spec);
  const b: Bundle = {
    dir,
    rootfs,
    spec,
    save: () => fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(b.spec, null, 2)),
  };
  b.save();
  return b;
}

/**
 * scripts/sanitize.sh: the ASan+UBSan hako-init is dynamically linked (ASan cannot be static), and `exec` or a
 * hook in the container runs it after entering the container's mount namespace, where the loader looks for
 * its libraries. HAKO_SANITIZE_ROOTFS_LIBS lists them (host paths); each rootfs gets them at the same paths.
 */
function sanitizerLibs(rootfs: string): void {
  for (const lib of (process.env.HAKO_SANITIZE_ROOTFS_LIBS ?? '').split(':').filter(Boolean)) {
    const dest = path.join(rootfs, lib);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    // A copy, never a hard link: root in a container with a writable rootfs would otherwise write the host's libc.
    fs.copyFileSync(lib, dest);
  }
}

export function uniqueId(prefix = 't'): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** Force-delete every container left under a test root (a failed test must not leave processes), then the root. */
export async function disposeRoot(root: string): Promise<void> {
  const { Runtime } = require('../../lib/runtime/runtime') as typeof import('../../lib/runtime/runtime');
  const rt = new Runtime({ root });
  for (const st of await rt.list().catch(() => [])) await rt.delete(st.id, { force: true }).catch(() => {});
  fs.rmSync(root, { recursive: true, force: true });
}

export function testRoot(name: string): string {
  const r = path.join('/run', `hako-test-${name}-${process.pid}`);
  fs.mkdirSync(r, { recursive: true });
  return r;
}

/**
 * Run the CLI. stdout/stderr go through files, not pipes: a detached container inherits them, and a pipe
 * would keep spawnSync waiting until the container exits.
 */
export function hako(
  root: string,
  args: string[],
  opts: { input?: string; stdio?: unknown[]; env?: NodeJS.ProcessEnv; timeout?: number; cwd?: string } = {},
): SpawnSyncReturns<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-cli-'));
  const out = fs.openSync(path.join(dir, 'out'), 'w+');
  const err = fs.openSync(path.join(dir, 'err'), 'w+');
  try {
    const r = spawnSync(process.execPath, [HAKO_BIN, '--root', root, ...args], {
      encoding: 'utf8',
      input: opts.input,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      timeout: opts.timeout ?? 30_000,
      stdio: (opts.stdio as never) ?? [opts.input !== undefined ? 'pipe' : 'ignore', out, err],
    });
    if (!opts.stdio) {
      r.stdout = fs.readFileSync(path.join(dir, 'out'), 'utf8');
      r.stderr = fs.readFileSync(path.join(dir, 'err'), 'utf8');
    }
    return r;
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Run the bundle with `hako run` and parse the probe's JSON from stdout. */
export function runProbe(
  root: string,
  b: Bundle,
  id = uniqueId(),
): { status: number | null; json: ProbeReport; stderr: string } {
  const r = hako(root, ['run', '--bundle', b.dir, id]);
  let json: ProbeReport;
  try {
    json = JSON.parse(r.stdout) as ProbeReport;
  } catch {
    throw new Error(`probe output is not JSON (status ${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, json, stderr: r.stderr };
}

export interface ProbeReport {
  pid: number;
  ppid: number;
  uid: number;
  gid: number;
  euid: number;
  groups: number[];
  hostname: string;
  domainname: string;
  cwd: string;
  umask: string;
  env: string[];
  namespaces: Record<string, string | null>;
  caps: { inh: string; prm: string; eff: string; bnd: string; amb: string };
  noNewPrivs: boolean;
  seccomp: number;
  cpusAllowedList: string;
  sched: { policy: number; policyName: string; priority: number; nice: number };
  ioprio: number;
  oomScoreAdj: number;
  personality: number;
  rlimits: Record<string, { soft: number; hard: number }>;
  openFds: number[];
  /** fd -> what /proc/self/fd/N links to. */
  fdTargets: Record<string, string>;
  mountinfo: string[];
  uidMap: string;
  gidMap: string;
  cgroup: string;
}

/** Mount points from mountinfo lines: target -> {fstype, options}. */
export function mounts(report: ProbeReport): Map<string, { fstype: string; opts: string; superOpts: string }> {
  const m = new Map<string, { fstype: string; opts: string; superOpts: string }>();
  for (const line of report.mountinfo) {
    const [pre, post] = line.split(' - ');
    const f = pre.split(' ');
    const p = post.split(' ');
    m.set(f[4], { fstype: p[0], opts: f[5], superOpts: p[2] ?? '' });
  }
  return m;
}

export function hostNs(type: string): string {
  return String(fs.statSync(`/proc/self/ns/${type}`).ino);
}

/** Everything hako could have left behind for `id` under `root`. */
export function leftovers(root: string, id: string): string[] {
  const out: string[] = [];
  if (fs.existsSync(path.join(root, id))) out.push(`state dir ${path.join(root, id)}`);
  // Unset and relative cgroupsPath resolve under the caller's own cgroup (as runc does): look there too.
  const own = new Map<string, string>();
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, ctrls, p] = line.split(':');
    for (const c of (ctrls || 'unified').split(',')) own.set(c.replace(/^name=/, ''), p);
  }
  for (const ctrl of fs.readdirSync('/sys/fs/cgroup')) {
    const base = path.join('/sys/fs/cgroup', ctrl);
    const mine = own.get(ctrl.split(',')[0]) ?? '/';
    for (const candidate of [path.join(base, id), path.join(base, 'hako', id), path.join(base, mine, id)])
      if (fs.existsSync(candidate)) out.push(`cgroup ${candidate}`);
  }
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
    if (line.includes(`/${id}/`)) out.push(`mount ${line}`);
  return out;
}

/**
 * The init helpers that belong to the bundle at `dir` (other test files create containers at the same
 * time, so a global count is not evidence): before pivot_root an init's cwd is the CLI's, run in `dir`;
 * after it, its mount table's root is the bundle's rootfs.
 */
export function initProcessesOf(dir: string): number[] {
  return initProcesses().filter((pid) => {
    try {
      if (fs.readlinkSync(`/proc/${pid}/cwd`).startsWith(dir)) return true;
      return fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(` ${dir}/`);
    } catch {
      return false; // gone meanwhile
    }
  });
}

export function initProcesses(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'hako-init';
      } catch {
        return false;
      }
    })
    .map(Number);
}

export function capMask(names: string[]): bigint {
  const { CAPABILITIES } = require('../../lib/oci/constants') as typeof import('../../lib/oci/constants');
  return names.reduce((m, n) => m | (1n << BigInt((CAPABILITIES as readonly string[]).indexOf(n))), 0n);
}
