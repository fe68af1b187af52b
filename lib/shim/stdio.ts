// A process's stdio from the paths containerd passes: FIFOs the client made and opened before Create (no scheme),
// `file://` paths (appended to), or nothing (/dev/null). `binary://` loggers are not supported.
//
// Without a terminal, no byte passes through Node. stdout and stderr: the FIFO opened O_RDWR (never blocks,
// fifo(7)) goes to the process as is, so it holds a reader of its own and gets no SIGPIPE when the client's reader
// goes; the client sees EOF once the process (and whatever inherited the fd) has exited. stdin: the process gets
// a blocking O_RDONLY fd (opened while the shim holds an O_RDWR one, so the open cannot wait for a writer), and
// the shim drops its O_RDWR fd as soon as the process has its own: the process sees EOF when the client closes its
// end. The client's end is already counted as a writer (it opened it, blocking, before Create), and holding ours
// until CloseIO would hang `echo x | ctr run`: ctr reads the EOF before it has set up its CloseIO, and never sends it.
// With a terminal, the shim relays: the pty master (read through a libuv TTY handle, never a blocking read on the
// event loop) to the stdout FIFO, the stdin FIFO to the master; ResizePty sets the master's window size.
import * as fs from 'fs';
import * as net from 'net';
import type * as tty from 'tty';
import { addon } from '../native/addon';
import { Code, RpcError } from './ttrpc';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

function openOutput(p: string): number {
  if (p.startsWith('binary://'))
    throw new RpcError(Code.Unimplemented, `${p}: binary:// loggers are not supported by the hako shim`);
  if (p.startsWith('file://'))
    return fs.openSync(
      p.slice('file://'.length),
      fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT,
      0o644,
    );
  const st = statOrThrow(p);
  return st.isFIFO()
    ? fs.openSync(p, fs.constants.O_RDWR)
    : fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_APPEND);
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
  private outStream?: net.Socket;
  /** Resolves when the terminal's output has all been copied (EIO from the master). */
  private outputDone: Promise<void> = Promise.resolve();

  constructor(readonly paths: StdioPaths) {
    try {
      if (paths.terminal) {
        this.openTerminalEnds();
        return;
      }
      const { stdin, stdout, stderr } = paths;
      if (stdin) {
        statOrThrow(stdin);
        // O_RDWR first: then the blocking O_RDONLY open cannot wait for a writer.
        this.stdinHold = fs.openSync(stdin, fs.constants.O_RDWR);
        this.childFds.push(fs.openSync(stdin, fs.constants.O_RDONLY));
      } else this.childFds.push(fs.openSync('/dev/null', 'r'));
      this.childFds.push(stdout ? openOutput(stdout) : fs.openSync('/dev/null', 'w'));
      this.childFds.push(stderr ? openOutput(stderr) : fs.openSync('/dev/null', 'w'));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openTerminalEnds(): void {
    // The process's stdio is the pty slave, set up by the runtime; these are for the relay.
    const { stdin, stdout } = this.paths;
    if (stdout) {
      statOrThrow(stdout);
      const fd = fs.openSync(stdout, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      this.outStream = new net.Socket({ fd, readable: false, writable: true });
      // A write error (the FIFO gone) loses output, never the shim.
      this.outStream.on('error', () => {});
    }
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
    for (const fd of this.childFds.splice(0)) closeQuiet(fd);
    if (this.stdinHold >= 0) closeQuiet(this.stdinHold);
    this.stdinHold = -1;
  }

  closeStdin(): void {
    if (this.stdinHold >= 0) closeQuiet(this.stdinHold);
    this.stdinHold = -1;
    this.stdinStream?.destroy();
    this.stdinStream = undefined;
  }

  /** After the process exited: copy what is left of a terminal's output (2 s at most), then close everything. */
  async finish(): Promise<void> {
    if (this.masterStream) await Promise.race([this.outputDone, new Promise((r) => setTimeout(r, 2000))]);
    this.close();
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
}

function closeQuiet(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}
