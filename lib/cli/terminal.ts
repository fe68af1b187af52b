// A container's terminal without a console socket (foreground `run`, `exec -t`): as runc does, hako holds the
// pty master and relays between it and its own stdio. Its own terminal (when stdin is one) goes to raw mode
// (cfmakeraw, as runc), so keys reach the container's line discipline untouched (^C becomes the container's
// SIGINT) and output is not processed twice, and the pty's window size follows its own (at start and on
// SIGWINCH). The mode is restored when the process has exited.
import * as fs from 'fs';
import { addon } from '../native/addon';

export interface ConsoleRelay {
  /** The runtime's onConsole callback: takes ownership of the master. */
  attach(master: number): void;
  /** After the process exited: copy what is left of its output, restore the terminal, close the master. */
  finish(): Promise<void>;
}

export function consoleRelay(): ConsoleRelay {
  let master = -1;
  let outputDone: Promise<void> = Promise.resolve();
  // process.stdin is built on first use only (it costs a few ms): when there is a terminal to relay.
  let stdin: NodeJS.ReadStream | undefined;
  let saved: Buffer | undefined;

  const resize = (): void => {
    if (master < 0 || !process.stdout.isTTY) return;
    try {
      addon().setWinsize(master, process.stdout.rows, process.stdout.columns);
    } catch {
      /* the pty is gone */
    }
  };
  const toPty = (data: Buffer): void => {
    // A blocking write, short at most under a full pty buffer: finish it.
    for (let off = 0; off < data.length && master >= 0;) {
      try {
        off += fs.writeSync(master, data, off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return; // the process is gone
      }
    }
  };

  return {
    attach(fd: number): void {
      master = fd;
      resize();
      process.on('SIGWINCH', resize);
      stdin = process.stdin;
      if (stdin.isTTY) {
        try {
          saved = addon().makeRaw(0);
        } catch {
          /* not a terminal after all: relay as is */
        }
      }
      stdin.on('data', toPty);
      stdin.resume();
      // Reads of the master run on the thread pool (a blocking read per chunk): it returns EIO once every
      // holder of the other side has closed it, which is the end of the output.
      outputDone = new Promise((resolve) => {
        const buf = Buffer.alloc(65536);
        const next = (): void => {
          fs.read(fd, buf, 0, buf.length, null, (err, n) => {
            if (err || n === 0) return resolve();
            process.stdout.write(Buffer.from(buf.subarray(0, n)), () => next());
          });
        };
        next();
      });
    },
    async finish(): Promise<void> {
      if (master < 0) return;
      // The output ends at EIO; a process of the container that kept the pty open would hold it forever.
      await Promise.race([outputDone, new Promise((r) => setTimeout(r, 2000).unref())]);
      process.removeListener('SIGWINCH', resize);
      if (stdin) {
        stdin.removeListener('data', toPty);
        if (saved) addon().restoreTerminal(0, saved);
        stdin.pause();
        (stdin as unknown as { unref?: () => void }).unref?.();
      }
      const fd = master;
      master = -1;
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    },
  };
}
