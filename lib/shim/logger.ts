// A `binary://` logger, as containerd's runc shim runs one (pkg/process/io.go NewBinaryIO, io_util.go
// NewBinaryCmd): the program at the URI's path, with the query as arguments, an environment of CONTAINER_ID and
// CONTAINER_NAMESPACE only, fd 3 the read end of the process's stdout pipe, fd 4 that of its stderr pipe, fd 5 the
// write end of a pipe it writes a byte to or closes once it is ready. The process starts only after that.
//
// It is a host program the shim starts (never a container process), a child of the shim reaped by Node's
// child_process (no SIGCHLD handler of ours, no wait for any child). Stricter than containerd, which waits without
// bound and takes EOF from a crashed logger for readiness: a logger that cannot be started, exits before it is
// ready, or is not ready in time fails the Create, and is killed and reaped first.
// When the process's output ends (every holder of the pipes' write ends closed them), the logger sees EOF on fd 3
// and 4 and is expected to exit; the shim waits for that, then SIGTERMs it (SIGKILL after a grace), as runc's shim
// does when the process's IO is closed.
import type { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import { addon } from '../native/addon';
import { procStat } from '../runtime/proc';
import { Code, RpcError } from './ttrpc';

/** How long a logger has to exit by itself once the output ended, and again after SIGTERM. */
const DRAIN_MS = 2000;
const TERM_MS = 2000;

export interface LoggerContext {
  /** CONTAINER_ID: the container's id, or the exec id for an exec'd process (as the runc shim passes it). */
  id: string;
  namespace: string;
  readyTimeoutMs: number;
}

function closeQuiet(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}

function makePipe(): [number, number] {
  const pipe = addon().pipe;
  if (!pipe) throw new RpcError(Code.Unimplemented, 'binary:// loggers need an addon with pipe() (rebuild hako)');
  return pipe();
}

/** The logger has exited or is exiting (PF_EXITING is set before its fds are closed, so EOF on fd 5 is explained). */
function exiting(pid: number): boolean {
  const st = procStat(pid);
  const PF_EXITING = 0x4;
  return !st || st.state === 'Z' || st.state === 'X' || (st.flags & PF_EXITING) !== 0;
}

export class BinaryLogger {
  private readonly exit: Promise<void>;
  private exited = false;

  private constructor(
    readonly uri: string,
    private readonly child: ChildProcess,
    /** The write ends of the stdout and stderr pipes, for the process: lib/shim/stdio.ts owns and closes them. */
    readonly stdoutW: number,
    readonly stderrW: number,
  ) {
    this.exit = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    }).then(() => {
      this.exited = true;
    });
  }

  /** Start the logger and wait until it is ready; on failure nothing of it remains (process, fds). */
  static async start(uri: string, path: string, args: string[], ctx: LoggerContext): Promise<BinaryLogger> {
    const fds: number[] = [];
    let child: ChildProcess | undefined;
    try {
      const [outR, outW] = makePipe();
      fds.push(outR, outW);
      const [errR, errW] = makePipe();
      fds.push(errR, errW);
      const [readyR, readyW] = makePipe();
      fds.push(readyR, readyW);
      const { spawn } = require('child_process') as typeof import('child_process');
      child = spawn(path, args, {
        env: { CONTAINER_ID: ctx.id, CONTAINER_NAMESPACE: ctx.namespace },
        stdio: ['ignore', 'ignore', 'ignore', outR, errR, readyW],
      });
      const spawned = child;
      // The logger has its copies: ours of its ends go, so EOF on the ready pipe means it closed fd 5 (or died).
      for (const fd of [outR, errR, readyW]) closeQuiet(fd);
      fds.splice(0, fds.length, outW, errW, readyR);
      // A later error (a failed kill) must not become an uncaught exception in the shim.
      spawned.on('error', () => {});
      const logger = new BinaryLogger(uri, spawned, outW, errW);
      fds.splice(fds.indexOf(readyR), 1); // waitReady's stream owns it from here, and closes it
      await waitReady(uri, spawned, readyR, ctx.readyTimeoutMs);
      return logger;
    } catch (e) {
      for (const fd of fds) closeQuiet(fd);
      if (child) await killAndReap(child);
      throw e;
    }
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Wait (bounded) for the logger to finish on its own after the output ended. */
  async drained(): Promise<void> {
    if (this.exited) return;
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
  }

  /** Stop and reap the logger: let it drain (unless `now`), then SIGTERM, then SIGKILL. */
  async stop(now = false): Promise<void> {
    if (!now) await this.drained();
    if (this.exited) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, TERM_MS).unref())]);
    if (!this.exited) await killAndReap(this.child);
  }
}

async function killAndReap(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await gone;
}

function waitReady(uri: string, child: ChildProcess, readyR: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const ready = new net.Socket({ fd: readyR, readable: true, writable: false });
    let settled = false;
    const finish = (err?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ready.destroy();
      if (err) reject(new RpcError(Code.FailedPrecondition, `stdout ${uri}: logger ${err}`));
      else resolve();
    };
    const timer = setTimeout(() => finish(`did not signal ready (fd 5) within ${timeoutMs} ms`), timeoutMs);
    child.once('error', (e) => finish(`could not be started: ${e.message}`));
    child.once('exit', (code, signal) =>
      finish(`exited before it was ready (${signal ? `signal ${signal}` : `status ${code}`})`),
    );
    ready.once('data', () => finish());
    ready.once('error', (e) => finish(`ready pipe: ${e.message}`));
    ready.once('end', () => {
      // fd 5 closed: readiness, as containerd's binary:// takes it, unless the logger closed it by exiting.
      if (child.pid === undefined || exiting(child.pid)) finish('exited before it was ready');
      else finish();
    });
  });
}
