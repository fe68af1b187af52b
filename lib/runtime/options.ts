// The options and results of the Runtime's verbs: the library's public shapes (lib/index.ts exports them).
import { HakoError } from '../errors';
import type { Logger } from '../log';

export interface RuntimeOptions {
  root?: string;
  logger?: Logger;
  debug?: boolean;
  systemdCgroup?: boolean;
  /**
   * Treat cgroup permission errors as warnings (runc's --rootless true|false). Default: unless the runtime is
   * root of the host (a root that only owns a user namespace, as under rootless podman, counts as rootless).
   */
  rootless?: boolean;
}

export interface CreateOptions {
  bundle: string;
  /** The config file, when it is not the bundle's config.json (crun's --config). */
  config?: string;
  pidFile?: string;
  consoleSocket?: string;
  /** Send a pidfd of the container's init to this AF_UNIX socket (runc's --pidfd-socket). */
  pidfdSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  /**
   * fds of this process the container gets at 3, 4, ... in this order (null: nothing at that number). Only
   * these: an fd number range would hand over whatever Node opened there (its epoll, eventfd, signal pipes).
   */
  passFds?: (number | null)[];
  /** Socket activation: the first N passed fds are listeners; the process gets LISTEN_FDS=N, LISTEN_PID=1. */
  listenFds?: number;
  /** fds for the container's stdin, stdout and stderr (library use); the caller's own by default. */
  stdio?: (number | null)[];
  /** A terminal process without a console socket uses the caller's terminal (foreground `run`). */
  callerTerminal?: boolean;
  /**
   * A terminal process without a console socket: the pty master is handed to this callback, which owns it
   * from then on (the CLI relays it to its own stdio, as runc does without --console-socket).
   */
  onConsole?: (master: number) => void;
}

export interface ExecOptions {
  consoleSocket?: string;
  /** Send a pidfd of the exec'd process to this AF_UNIX socket (runc's --pidfd-socket). */
  pidfdSocket?: string;
  pidFile?: string;
  /** As CreateOptions.passFds. */
  passFds?: (number | null)[];
  stdio?: (number | null)[];
  /** Exec even when the container is paused (the process starts frozen). */
  ignorePaused?: boolean;
  /** As CreateOptions.onConsole. */
  onConsole?: (master: number) => void;
  /**
   * runc 1.1's `exec --cgroup`: existing sub-cgroups to run the process in, controller -> path below the
   * container's cgroup ("" = the same path in every hierarchy).
   */
  subCgroups?: Record<string, string>;
}

export interface SetupOptions {
  /** CPU list ("0-1,3") the process runs on; overrides process.execCPUAffinity.final. */
  cpuAffinity?: string;
  /** "FIFO:50", "RR:10", "OTHER", "BATCH", "IDLE", "DEADLINE:runtime:deadline:period" (ns). */
  sched?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: number | null;
  /** The shell convention: the exit code, or 128 + the signal number. */
  status: number;
}

/** `preserveFds: N` (fds 3..3+N-1 of this process) is gone: in a Node process that range holds Node's own fds. */
export function noPreserveFds(opts: object): [] {
  if ((opts as { preserveFds?: unknown }).preserveFds !== undefined)
    throw new HakoError(
      'preserveFds: replaced by passFds, the list of fds to pass (fds 3..3+N-1 of a Node process are its own epoll, eventfd and pipes)',
      { field: 'preserveFds' },
    );
  return [];
}
