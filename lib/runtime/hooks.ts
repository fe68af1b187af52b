// OCI hooks: each gets the container state JSON on stdin, its args and env, and a timeout.
import { spawn } from 'child_process';
import { HakoError } from '../errors';
import type { Hook, State } from '../oci/types';

export type HookKind = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';

function envObject(env: string[] | undefined): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const kv of env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

export function runHook(hook: Hook, state: State, kind: HookKind, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = hook.args ?? [hook.path];
    const child = spawn(hook.path, args.slice(1), {
      argv0: args[0] ?? hook.path,
      env: envObject(hook.env),
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
