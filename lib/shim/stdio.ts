// A process's stdio from the paths containerd passes (the scheme of stdout decides, as in containerd's runc shim,
// lib/shim/stdio-uri.ts): FIFOs the client made and opened before Create (no scheme), a `file://` log that gets
// stdout and stderr (appended to, created 0644 with its directories 0755), a `binary://` logger program
// (lib/shim/logger.ts: the process writes to pipes the logger reads; stdin is /dev/null, as containerd's binary IO
// has none), or nothing (/dev/null).
//
// Without a terminal, no byte passes through Node. stdout and stderr: the FIFO opened O_RDWR (never blocks,
// fifo(7)) goes to the process as is, so it holds a reader of its own and gets no SIGPIPE when the client's reader
// goes; the client sees EOF once the process (and whatever inherited the fd) has exited. stdin: the process gets
// a blocking O_RDONLY fd (opened while the shim holds an O_RDWR one, so the open cannot wait for a writer), and
// the shim drops its O_RDWR fd as soon as the process has its own: the process sees EOF when the client closes its
// end. The client's end is already counted as a writer (it opened it, blocking, before Create), and holding ours
// until CloseIO would hang `echo x | ctr run`: ctr reads the EOF before it has set up its CloseIO, and never sends it.
// With a terminal, the shim relays: the pty master (read through a libuv TTY handle, never a blocking read on the
// event loop) to the stdout FIFO (or the log file, or the logger's stdout pipe), the stdin FIFO to the master;
// ResizePty sets the master's window size.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import type { Writable } from 'stream';
import type * as tty from 'tty';
import { addon } from '../native/addon';
import { BinaryLogger, type LoggerContext } from './logger';
import { hasScheme, parseOutput, type OutputTarget } from './stdio-uri';
import { Code, RpcError } from './ttrpc';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

function openFifoOrFile(p: string): number {
  const st = statOrThrow(p);
  return st.isFIFO()
    ? fs.openSync(p, fs.constants.O_RDWR)
    : fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_APPEND);
}

/** containerd's file://: the directory made (0755), the file created 0644 and appended to. */
function openLogFile(file: string): number {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
  } catch (e) {
    throw new RpcError(Code.InvalidArgument, `stdout file://${file}: ${(e as Error).message}`);
  }
}

function statOrThrow(p: string): fs.Stats {
  try {
    return fs.statSync(p);
  } catch (e) {
    throw new RpcError(Code.InvalidArgument, `stdio ${p}: ${(e as Error).message}`);
  }
}

export class ProcessIO {
  /** The fds the process gets as 0, 1, 2 (closed here once it has them: closeChildEnds). */
  readonly childFds: number[] = [];
  private stdinHold = -1;
  private master = -1;
  private masterStream?: tty.ReadStream;
  private stdinStream?: net.Socket;
  private outStream?: Writable;
  /** Resolves when the terminal's output has all been copied (EIO from the master). */
  private outputDone: Promise<void> = Promise.resolve();
  private logger?: BinaryLogger;

  /**
   * The process's stdio; with a `binary://` stdout, once its logger is ready. On failure nothing is left open
   * or running.
   */
  static async open(paths: StdioPaths, ctx: LoggerContext): Promise<ProcessIO> {
    const target = ProcessIO.target(paths);
    const logger =
      target.kind === 'binary' ? await BinaryLogger.start(target.uri, target.path, target.args, ctx) : undefined;
    try {
      return new ProcessIO(paths, target, logger);
    } catch (e) {
      await logger?.stop(true); // its write ends were closed with the rest
      throw e;
    }
  }

  private static target(paths: StdioPaths): OutputTarget {
    const target = parseOutput(paths.stdout);
    // containerd decides by stdout alone: a URI as stderr only would be opened as a FIFO path, and fail.
    if (target.kind === 'path' && hasScheme(paths.stderr))
      throw new RpcError(
        Code.InvalidArgument,
        `stderr ${paths.stderr}: a file:// or binary:// destination is given as stdout (it takes stderr too)`,
      );
    if (target.kind === 'path' && paths.stdin && hasScheme(paths.stdin))
      throw new RpcError(Code.InvalidArgument, `stdin ${paths.stdin}: stdin is a FIFO path, not a URI`);
    return target;
  }

  private constructor(
    readonly paths: StdioPaths,
    target: OutputTarget,
    logger: BinaryLogger | undefined,
  ) {
    this.logger = logger;
    try {
      if (paths.terminal) {
        this.openTerminalEnds(target, logger);
        return;
      }
      if (logger) {
        // Taken over first thing, so that whatever fails next, close() closes them.
        this.childFds.push(-1, logger.stdoutW, logger.stderrW);
        this.childFds[0] = fs.openSync('/dev/null', 'r'); // no stdin with a logger, as containerd's binary IO
        return;
      }
      const { stdin, stdout, stderr } = paths;
      if (stdin) {
        statOrThrow(stdin);
        // O_RDWR first: then the blocking O_RDONLY open cannot wait for a writer.
        this.stdinHold = fs.openSync(stdin, fs.constants.O_RDWR);
        this.childFds.push(fs.openSync(stdin, fs.constants.O_RDONLY));
      } else this.childFds.push(fs.openSync('/dev/null', 'r'));
      if (target.kind === 'file') {
        this.childFds.push(openLogFile(target.path), openLogFile(target.path));
      } else {
        this.childFds.push(stdout ? openFifoOrFile(stdout) : fs.openSync('/dev/null', 'w'));
        this.childFds.push(stderr ? openFifoOrFile(stderr) : fs.openSync('/dev/null', 'w'));
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openTerminalEnds(target: OutputTarget, logger: BinaryLogger | undefined): void {
    // The process's stdio is the pty slave, set up by the runtime; these are for the relay.
    const { stdin, stdout } = this.paths;
    if (logger) {
      // The terminal's output goes to the logger's stdout pipe, and its stderr pipe gets nothing (EOF at once), as
      // in runc's shim. Taken over first thing, so that whatever fails next, close() closes them.
      closeQuiet(logger.stderrW);
      try {
        this.outStream = new net.Socket({ fd: logger.stdoutW, readable: false, writable: true });
      } catch (e) {
        closeQuiet(logger.stdoutW);
        throw e;
      }
    } else if (target.kind === 'file') {
      this.outStream = fs.createWriteStream('', { fd: openLogFile(target.path) });
    } else if (stdout) {
      statOrThrow(stdout);
      const fd = fs.openSync(stdout, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      this.outStream = new net.Socket({ fd, readable: false, writable: true });
    }
    // A write error (the FIFO or the logger gone) loses output, never the shim.
    this.outStream?.on('error', () => {});
    if (stdin) {
      statOrThrow(stdin);
      const fd = fs.openSync(stdin, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      this.stdinStream = new net.Socket({ fd, readable: true, writable: false });
      this.stdinStream.pause();
    }
  }

  /** The runtime's onConsole: the shim owns the master from now on. */
  attachConsole = (master: number): void => {
    this.master = master;
    // tty is loaded for a terminal only: most containers have none, and every module loaded delays a new shim.
    const rs = new (require('tty') as typeof import('tty')).ReadStream(master);
    this.masterStream = rs;
    this.outputDone = new Promise((resolve) => {
      // EIO once every holder of the slave has closed it: the end of the output.
      rs.on('error', () => resolve());
      rs.on('end', () => resolve());
      rs.on('close', () => resolve());
    });
    rs.on('data', (d: Buffer) => {
      if (this.outStream && !this.outStream.write(d)) {
        rs.pause();
        this.outStream.once('drain', () => rs.resume());
      }
    });
    if (this.stdinStream) {
      this.stdinStream.on('data', (d: Buffer) => this.toMaster(d));
      this.stdinStream.on('error', () => {});
      this.stdinStream.resume();
    }
  };

  private toMaster(d: Buffer): void {
    // The master is non-blocking under libuv: a full pty buffer gives EAGAIN, retried (the process reads it).
    for (let off = 0; off < d.length && this.master >= 0;) {
      try {
        off += fs.writeSync(this.master, d, off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  resize(width: number, height: number): void {
    if (this.master < 0) return; // no console: a no-op, as runc's shim
    addon().setWinsize(this.master, height, width);
  }

  /** The process has its copies: ours go, so EOF follows the process's exit. */
  closeChildEnds(): void {
    // A logger's write ends are among childFds (without a terminal): closed here once.
    for (const fd of this.childFds.splice(0)) if (fd >= 0) closeQuiet(fd);
    if (this.stdinHold >= 0) closeQuiet(this.stdinHold);
    this.stdinHold = -1;
  }

  closeStdin(): void {
    if (this.stdinHold >= 0) closeQuiet(this.stdinHold);
    this.stdinHold = -1;
    this.stdinStream?.destroy();
    this.stdinStream = undefined;
  }

  /**
   * After the process exited: copy what is left of a terminal's output (2 s at most), close everything, and give
   * a logger 2 s to finish writing what it read (it sees EOF now).
   */
  async finish(): Promise<void> {
    if (this.masterStream) await Promise.race([this.outputDone, new Promise((r) => setTimeout(r, 2000))]);
    this.close();
    await this.logger?.drained();
  }

  close(): void {
    this.closeChildEnds();
    this.closeStdin();
    this.masterStream?.destroy();
    this.masterStream = undefined;
    this.master = -1;
    if (this.outStream) this.outStream.end();
    this.outStream = undefined;
  }

  /** Close everything and stop the logger (reaped before this resolves); `now` skips its grace to drain. */
  async stop(now = false): Promise<void> {
    this.close();
    await this.logger?.stop(now);
  }
}

function closeQuiet(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}
