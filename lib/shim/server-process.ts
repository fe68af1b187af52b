// Starting a shim server process (a group's server from Node's `start`, or a spare, lib/shim/spare.ts) with the
// listening socket as its fd 3: its own session, not waited for (Node reaps it by its pid if it exits while this
// process runs; no SIGCHLD handler or wait of ours).
import type { StdioOptions } from 'child_process';

const childProcessModule = (): typeof import('child_process') => require('child_process');

/**
 * Node flags of the resident server (bin/containerd-shim-hako-v2 starts it with the same). V8's young generation
 * grows to 16 MB semi-spaces under a long-lived process's churn; capped at 1 MB, a shim serving 20 `sleep`
 * containers measured 20.8 and 22.1 MB PSS against 25.2 and 23.8 (bench/containerd-bench.ts' memory case, two
 * runs each way), for more frequent, shorter scavenges of a heap that is mostly idle.
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=1'];

export interface ServerProcess {
  /** The shim's script (process.argv[1] of this shim: bin/hako-shim.js or dist/lib/shim/main.js). */
  script: string;
  args: string[];
  cwd: string;
  /** Its stderr: an fd, or nothing. stdin and stdout are /dev/null. */
  stderr: number | 'ignore';
  listenFd: number;
  env: NodeJS.ProcessEnv;
}

/** Spawns it detached; the caller closes listenFd (and stderr) afterwards. Returns its pid. */
export function spawnServer(p: ServerProcess): number | undefined {
  const { spawn } = childProcessModule();
  const stdio: StdioOptions = ['ignore', 'ignore', p.stderr, p.listenFd];
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, p.script, ...p.args], {
    cwd: p.cwd,
    detached: true, // its own session and process group, as containerd's shims (Setpgid)
    stdio,
    env: p.env,
  });
  child.on('error', () => {}); // a failed spawn: the socket's fd closes with it, and a claimer falls back
  child.unref();
  return child.pid;
}
