// Output of the one-shot verbs. process.stdout/stderr are created on first use and, for files and
// pipes, load Node's stream stack (~1.8 ms of a `hako state`); a write(2) on the fd does the same job.
import * as fs from 'fs';

function writeFd(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      // A non-blocking fd (a caller's pipe set O_NONBLOCK) is full: let the stream queue the rest.
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        (fd === 1 ? process.stdout : process.stderr).write(buf.subarray(off));
        return;
      }
      // EPIPE, EBADF: nobody is reading; there is no one left to tell.
      return;
    }
  }
}

export const writeStdout = (text: string): void => writeFd(1, text);
export const writeStderr = (text: string): void => writeFd(2, text);
