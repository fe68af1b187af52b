// Shared fixtures of the policy server tests (test/policy-*.test.ts): the static attack program, bundles
// whose seccomp section sends calls to a server, an in-process PolicyServer, and an async `hako` runner
// (the server runs on this process's event loop, so the CLI must not be run with spawnSync).
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { Spec } from '../lib/oci/types';
import {
  PolicyServer,
  parsePolicy,
  policySeccompSection,
  type AuditRecord,
  type PolicyServerOptions,
  type PolicySeccompOptions,
} from '../lib/policy';
import { HAKO_BIN, ROOT_DIR, makeBundle, tmpDir, type Bundle } from './helpers/env';

export const ATTACK_SRC = path.join(ROOT_DIR, 'test', 'fixtures', 'policy-attack.c');
export const HAVE_GCC = (() => {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let attackBin: string | undefined;

/** Compile test/fixtures/policy-attack.c statically, once per process. */
export function attackProgram(): string {
  if (attackBin) return attackBin;
  const dir = tmpDir('attack');
  const out = path.join(dir, 'policy-attack');
  execFileSync('gcc', ['-static', '-O2', '-pthread', '-o', out, ATTACK_SRC], { stdio: 'inherit' });
  attackBin = out;
  return out;
}

export interface PolicyBundleOptions {
  /** User namespace mapping container 0..65535 to this host range (a "rootless" container). */
  userns?: number | false;
  socket: string;
  seccomp?: PolicySeccompOptions;
  annotations?: Record<string, string>;
  mutate?: (s: Spec) => void;
  /** Also install busybox. */
  busybox?: boolean;
  /**
   * Capabilities the container's process gets besides hako's defaults (default: CAP_SYS_ADMIN, which the
   * kernel requires for mount, umount and sethostname: the server never does more than the caller could).
   */
  caps?: string[];
}

/** A bundle with /bin/attack (and /bin/probe), directories /foo /bar /data, served by the policy server. */
export function policyBundle(args: string[], o: PolicyBundleOptions): Bundle {
  const b = makeBundle(
    args,
    (s) => {
      if (o.userns !== false) {
        const host = o.userns ?? 200000;
        s.linux!.namespaces!.push({ type: 'user' });
        s.linux!.uidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
        s.linux!.gidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
      }
      s.linux!.seccomp = policySeccompSection(o.socket, o.seccomp);
      const caps = s.process!.capabilities!;
      for (const k of ['bounding', 'effective', 'permitted'] as const)
        caps[k] = [...new Set([...(caps[k] ?? []), ...(o.caps ?? ['CAP_SYS_ADMIN'])])];
      if (o.annotations) s.annotations = o.annotations;
      o.mutate?.(s);
    },
    { busybox: o.busybox },
  );
  for (const d of ['foo', 'bar', 'data', 'dev2']) fs.mkdirSync(path.join(b.rootfs, d), { recursive: true });
  fs.copyFileSync(attackProgram(), path.join(b.rootfs, 'bin', 'attack'));
  fs.chmodSync(path.join(b.rootfs, 'bin', 'attack'), 0o755);
  return b;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  ms: number;
}

/** `hako --root ROOT args...` without blocking the event loop. */
export function hakoAsync(
  root: string,
  args: string[],
  opts: { timeoutMs?: number; onLine?: (line: string) => void } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [HAKO_BIN, '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let partial = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d;
      if (opts.onLine) {
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const l of lines) opts.onLine(l);
      }
    });
    p.stderr!.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    // 'exit' can come before the pipes are drained, and a detached container keeps them open for good:
    // after the exit, wait for both ends of stream, or 200 ms at most.
    let open = 2;
    let finish: (() => void) | undefined;
    const ended = (): void => {
      if (--open === 0) finish?.();
    };
    p.stdout!.once('end', ended);
    p.stderr!.once('end', ended);
    p.once('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - t0;
      const grace = setTimeout(() => finish?.(), 200);
      finish = () => {
        clearTimeout(grace);
        finish = undefined;
        resolve({ code, signal, out, err, ms });
      };
      if (open === 0) finish();
    });
  });
}

/** The JSON lines a container printed. */
export function lines(out: string): Record<string, unknown>[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function op(out: string, name: string): Record<string, unknown> & { ret: number; errno: number } {
  const l = lines(out).find((x) => x.op === name);
  if (!l) throw new Error(`no "${name}" line in: ${out}`);
  return l as Record<string, unknown> & { ret: number; errno: number };
}

export interface TestServer {
  server: PolicyServer;
  socket: string;
  audits: AuditRecord[];
  warnings: string[];
  close(): Promise<void>;
}

/** An in-process server with an inline policy (object), audit records collected. */
export async function startServer(policy: object, extra: Partial<PolicyServerOptions> = {}): Promise<TestServer> {
  const dir = tmpDir('policy');
  const socket = path.join(dir, 'policy.sock');
  const audits: AuditRecord[] = [];
  const warnings: string[] = [];
  const server = new PolicyServer({
    socket,
    policy: parsePolicy(JSON.stringify({ audit: true, ...policy }), 'test-policy.json'),
    audit: (r) => audits.push(r),
    log: { debug() {}, info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    ...extra,
  });
  await server.start();
  return {
    server,
    socket,
    audits,
    warnings,
    close: async () => {
      // Tests stop for good: hako-fd-keeper drops the fds too (a restart is tested in policy-restart.test.ts).
      await server.close({ release: true });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The policy of the reference scenario: containers "a-*" may mount a tmpfs (size <= 16m) on /foo. */
export const REFERENCE_POLICY = {
  profiles: [
    {
      name: 'a',
      match: { ids: ['a-*'] },
      mount: [
        {
          types: ['tmpfs'],
          targets: ['/foo'],
          flags: ['nosuid', 'nodev', 'noexec', 'ro'],
          options: ['mode'],
          limits: { size: '16m' },
        },
      ],
    },
    { name: 'b', match: { ids: ['b-*'] } },
  ],
};

export function hostMounts(): string {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The attack program's arguments for the policy tests' usual call: mount a 1 MB tmpfs on /foo. */
export const MOUNT_TMPFS_FOO = ['mount', 'tmpfs', '/foo', 'tmpfs', '0', 'size=1m'] as const;

/** Audit lines of emulated calls follow the caller's answer: wait (briefly) until `cond` holds. */
export async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end;) await sleep(10);
}
