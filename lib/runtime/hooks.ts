// OCI hooks: each gets the container state JSON on stdin, its args and env, and a timeout.
import type { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HakoError } from '../errors';
import { addon } from '../native/addon';
import { namespacesToJoin } from './proc';
import type { Hook, State } from '../oci/types';

export type HookKind = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';

// As runc: a hook runs in the bundle directory and, when it names no env, with the runtime's own environment.
function envObject(env: string[] | undefined): NodeJS.ProcessEnv {
  if (!env) return process.env;
  const out: NodeJS.ProcessEnv = {};
  for (const kv of env) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function envList(env: string[] | undefined): string[] {
  return env ?? Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
}

export function runHook(hook: Hook, state: State, kind: HookKind, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = hook.args ?? [hook.path];
    // child_process is loaded only when a hook runs: its module costs milliseconds at every CLI start.
    const { spawn } = require('child_process') as typeof import('child_process');
    const child: ChildProcess = spawn(hook.path, args.slice(1), {
      argv0: args[0] ?? hook.path,
      env: envObject(hook.env),
      cwd: state.bundle && fs.existsSync(state.bundle) ? state.bundle : '/', // a poststop may outlive its bundle
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const where = `hooks.${kind}[${index}]`;
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.stdin!.on('error', () => {}); // a hook that ignores stdin may close it early
    child.stdin!.end(JSON.stringify(state));
    if (hook.timeout) {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new HakoError(`${where}: hook ${hook.path} timed out after ${hook.timeout}s`, { field: where }));
      }, hook.timeout * 1000);
    }
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new HakoError(`${where}: run hook ${hook.path}: ${e.message}`, { field: where }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new HakoError(
            `${where}: hook ${hook.path} failed (${signal ? `signal ${signal}` : `exit status ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`,
            { field: where },
          ),
        );
    });
  });
}

export async function runHooks(hooks: Hook[] | undefined, state: State, kind: HookKind): Promise<void> {
  for (const [i, h] of (hooks ?? []).entries()) await runHook(h, state, kind, i);
}

/**
 * A hook that runs in the container's namespaces (createContainer, startContainer): a native child
 * enters them by the init's pidfd and executes the hook. `resolveInContainer` decides where `path` is
 * looked up: the runtime's mount namespace (createContainer: opened before entering) or the container's
 * (startContainer).
 */
export interface InContainerHookOptions {
  /** Where the hook starts (createContainer: the rootfs, as runc chdirs there before running them). */
  cwd?: string;
  /**
   * The container's seccomp filter, loaded before the hook executes: runc runs startContainer hooks from its
   * init after the filter is in place, so they are under it as the process will be.
   */
  seccomp?: { filter: Buffer; flags: number };
}

/** Filter flags that make sense for a hook: no listener (nobody would serve it: notified calls get ENOSYS). */
const HOOK_SECCOMP_FLAGS = 0x1 | 0x2 | 0x4; // TSYNC, LOG, SPEC_ALLOW

export async function runHookInContainer(
  hook: Hook,
  state: State,
  kind: HookKind,
  index: number,
  initPid: number,
  resolveInContainer: boolean,
  opts: InContainerHookOptions = {},
): Promise<void> {
  const where = `hooks.${kind}[${index}]`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-hook-'));
  const fds: number[] = [];
  try {
    fs.writeFileSync(path.join(dir, 'stdin'), JSON.stringify(state));
    const stdin = fs.openSync(path.join(dir, 'stdin'), 'r');
    const errFile = path.join(dir, 'stderr');
    const stderr = fs.openSync(errFile, 'w+');
    const devnull = fs.openSync('/dev/null', 'w');
    const target = addon().pidfdOpen(initPid);
    fds.push(stdin, stderr, devnull, target);
    let seccompFd: number | undefined;
    if (opts.seccomp) {
      fs.writeFileSync(path.join(dir, 'filter'), opts.seccomp.filter);
      seccompFd = fs.openSync(path.join(dir, 'filter'), 'r');
      fds.push(seccompFd);
    }
    let execFd: number | undefined;
    if (!resolveInContainer) {
      try {
        execFd = fs.openSync(hook.path, 'r');
      } catch (e) {
        throw new HakoError(`${where}: run hook ${hook.path}: ${(e as Error).message}`, { field: where });
      }
      fds.push(execFd);
    }
    let spawned;
    try {
      // hako-init enters (from its sealed memfd, not a fork of Node) and then executes the hook.
      spawned = (require('./enter') as typeof import('./enter')).spawnInit({
        run: {
          kind: 'hook',
          fd: execFd,
          path: resolveInContainer ? hook.path : undefined,
          argv: hook.args?.length ? hook.args : [hook.path],
          seccomp:
            seccompFd === undefined ? undefined : { fd: seccompFd, flags: opts.seccomp!.flags & HOOK_SECCOMP_FLAGS },
        },
        envp: envList(hook.env),
        // createContainer: in the container's mount namespace before pivot_root, where the rootfs is still
        // visible by its host path (runc starts them in the rootfs); startContainer runs inside the container,
        // from its root.
        cwd: opts.cwd,
        target: { pidfd: target, flags: namespacesToJoin(initPid) },
        refork: true,
        stdio: [stdin, devnull, stderr],
      });
    } catch (e) {
      throw new HakoError(`${where}: run hook ${hook.path}: ${(e as Error).message}`, { field: where });
    }
    const result = await new Promise<{ code: number | null; signal: number | null; timedOut: boolean }>((resolve) => {
      let timedOut = false;
      const timer = hook.timeout
        ? setTimeout(() => {
            timedOut = true;
            try {
              addon().pidfdSendSignal(spawned.pidfd, 9);
            } catch {
              /* exited meanwhile */
            }
          }, hook.timeout * 1000)
        : undefined;
      addon().watchExit(spawned.pidfd, true, (r) => {
        if (timer) clearTimeout(timer);
        fs.closeSync(spawned.pidfd);
        resolve({ code: r?.code ?? null, signal: r?.signal ?? null, timedOut });
      });
    });
    if (result.timedOut)
      throw new HakoError(`${where}: hook ${hook.path} timed out after ${hook.timeout}s`, { field: where });
    if (result.code !== 0) {
      const err = fs.readFileSync(errFile, 'utf8').slice(0, 4096).trim();
      throw new HakoError(
        `${where}: hook ${hook.path} failed (${result.signal ? `signal ${result.signal}` : `exit status ${result.code}`})${err ? `: ${err}` : ''}`,
        { field: where },
      );
    }
  } finally {
    for (const fd of fds) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
