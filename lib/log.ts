// Runtime log: text or the one-JSON-object-a-line format containerd and podman parse
// ({"level","msg","time"}, level in lower case).
import * as fs from 'fs';

export type Level = 'debug' | 'info' | 'warning' | 'error';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface LogOptions {
  file?: string;
  format?: 'text' | 'json';
  debug?: boolean;
  /** Print warnings (and debug lines) to stderr when there is no log file (the CLI). */
  stderr?: boolean;
}

export function createLogger(opts: LogOptions = {}): Logger {
  // Opened at once, as runc does: the file exists after any command given --log, even one that logs nothing.
  let fd: number | undefined = opts.file ? fs.openSync(opts.file, 'a', 0o600) : undefined;
  const write = (level: Level, msg: string) => {
    if (level === 'debug' && !opts.debug) return;
    if (opts.file) {
      fd ??= fs.openSync(opts.file, 'a', 0o600);
      const time = new Date().toISOString();
      const line =
        opts.format === 'json'
          ? JSON.stringify({ level, msg, time })
          : `time="${time}" level=${level} msg="${msg.replace(/"/g, '\\"')}"`;
      fs.writeSync(fd, line + '\n');
    }
    // With --log, as runc: the log file only. Under a shim, stderr is the container's own output stream, and
    // a warning there would end up in `docker logs`. (Errors are printed by the CLI itself, also to stderr.)
    if (opts.stderr && !opts.file && level !== 'info' && level !== 'error')
      process.stderr.write(`hako: ${level}: ${msg}\n`);
  };
  return {
    debug: (m) => write('debug', m),
    info: (m) => write('info', m),
    warn: (m) => write('warning', m),
    error: (m) => write('error', m),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

const tracing = !!process.env.HAKO_TRACE;
/**
 * HAKO_TEST_KILL_AT=<label>: the process SIGKILLs itself at that trace point (test/crash.test.ts). A crash
 * test needs the runtime to die at an exact step of create/start/exec/delete, which no outside timing can
 * hit reliably; the trace points already name those steps. SIGKILL (not an exception): no finally block,
 * no cleanup handler runs, exactly as when the OOM killer or a shim's timeout kills the runtime.
 */
const killAt = process.env.HAKO_TEST_KILL_AT;
/** HAKO_TRACE=1: time stamps of the lifecycle phases on stderr (ms since process start). A plain write(2): the
 * first use of process.stderr builds a stream (about 2 ms) that would distort the very times it prints. */
export function trace(label: string): void {
  if (tracing) fs.writeSync(2, `[hako ${performance.now().toFixed(2)} ms] ${label}\n`);
  if (killAt !== undefined && killAt === label) process.kill(process.pid, 'SIGKILL');
}
