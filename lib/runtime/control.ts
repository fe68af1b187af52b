// Client of a waiting container's control socket: sends START or SETUP and learns whether the process
// was executed (the helper's end closes at exec: EOF with no reply) or refused (an ERROR message).
import * as fs from 'fs';
import { HakoError } from '../errors';
import { addon } from '../native/addon';
import { decodeMessage, Msg, Tag } from '../plan/wire';

export function errorFromMessage(buf: Buffer, context: string): HakoError {
  try {
    const { type, records } = decodeMessage(buf);
    if (type !== Msg.ERROR) return new HakoError(`${context}: unexpected reply ${type} from container init`);
    let errno = 0;
    let step = '';
    let message = '';
    for (const r of records) {
      if (r.tag === Tag.E_ERRNO) errno = r.payload.readUInt32LE(0);
      else if (r.tag === Tag.E_STEP) step = r.payload.toString();
      else if (r.tag === Tag.E_MESSAGE) message = r.payload.toString();
    }
    return new HakoError(`${context}: ${message}`, { errno, step });
  } catch {
    return new HakoError(`${context}: malformed reply from container init`);
  }
}

/** connect() errnos that mean no init is waiting on the socket: ENOENT, ECONNREFUSED. */
export const notWaiting = (errno: number | undefined): boolean => errno === 2 || errno === 111;

/**
 * How long start/setup wait for the init to execute (or refuse) the process, and create/exec for a console
 * socket or seccomp agent to accept. A stalled init (stopped, frozen, starved) must not hold the container's
 * lock forever. HAKO_CONTROL_TIMEOUT_MS overrides it (slow boards; tests).
 */
export function controlTimeoutMs(): number {
  const v = Number(process.env.HAKO_CONTROL_TIMEOUT_MS);
  return Number.isInteger(v) && v > 0 ? v : 60_000;
}

const EAGAIN = 11;
const EPIPE = 32;
const ECONNRESET = 104;
const EMSGSIZE = 90;

export function sendControl(socketPath: string, message: Buffer, context: string, timeoutMs = controlTimeoutMs()): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let wait: number | undefined;
    const timedOut = (what: string) =>
      new HakoError(`${context}: container init did not answer within ${timeoutMs} ms (${what}); is it stopped or frozen?`, { errno: 110, code: 'ETIMEDOUT' });
    const attempt = () => {
      try {
        wait = addon().controlExchange(socketPath, message, (errno, reply) => {
          clearTimeout(timer);
          if (reply.length) reject(errorFromMessage(reply, context));
          else if (errno === EPIPE || errno === ECONNRESET)
            // No answer and the request not taken whole: the init went away before it could act on it.
            reject(new HakoError(`${context}: container init closed the control connection before it had the whole request (errno ${errno})`, { errno }));
          else if (errno) reject(new HakoError(`${context}: control socket: errno ${errno}`, { errno }));
          else resolve();
        });
      } catch (e) {
        const errno = (e as { errno?: number }).errno;
        // A full backlog: the init is not accepting (yet). Retry until the deadline rather than block.
        if (errno === EAGAIN) {
          if (Date.now() >= deadline) return reject(timedOut('connect: its control socket backlog stayed full'));
          timer = setTimeout(attempt, 20);
          return;
        }
        clearTimeout(timer);
        const gone = notWaiting(errno);
        return reject(new HakoError(gone ? `${context}: container is not waiting to be started` : `${context}: ${(e as Error).message}`, { errno }));
      }
      // The deadline cancels the exchange (its poll stops and its socket closes): the init, when it gets
      // to the request, finds the caller gone and does not act on it.
      timer = setTimeout(() => {
        addon().cancelWait(wait!);
        reject(timedOut('waiting for it to execute the process or refuse it'));
      }, Math.max(deadline - Date.now(), 1));
    };
    attempt();
  });
}

/**
 * One message from the init's seqpacket socket, within `timeoutMs`. The timeout cancels the native wait
 * before the caller gets to close the fd, so nothing keeps polling a number the next socket may reuse.
 */
export function recvOne(fd: number, timeoutMs: number, context: string): Promise<{ errno: number; data: Buffer | null; fds: number[] }> {
  return new Promise((resolve, reject) => {
    const wait = addon().recvMessage(fd, (errno, data, fds) => {
      clearTimeout(timer);
      if (!data) {
        // No message (EOF or an error): fds without data are of no use to anyone.
        for (const f of fds) fs.closeSync(f);
        if (errno === EMSGSIZE) return reject(new HakoError(`${context}: a message from container init carried more fds than expected (control data truncated)`, { errno }));
        return resolve({ errno, data, fds: [] });
      }
      resolve({ errno, data, fds });
    });
    const timer = setTimeout(() => {
      addon().cancelWait(wait);
      reject(new HakoError(`${context}: container init did not answer in time`, { errno: 110, code: 'ETIMEDOUT' }));
    }, Math.max(timeoutMs, 1));
  });
}

/**
 * One message with fds to a unix socket of someone else's (console socket, seccomp agent), within
 * `timeoutMs`: a peer whose backlog is full is retried, never waited on with the event loop blocked.
 */
export function sendToPathWithin(socketPath: string, data: Buffer, fds: number[], timeoutMs = controlTimeoutMs()): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      try {
        addon().sendToPath(socketPath, data, fds);
        resolve();
      } catch (e) {
        const { errno, step } = e as { errno?: number; step?: string };
        if (errno !== EAGAIN || step !== 'connect') return reject(e);
        if (Date.now() >= deadline)
          return reject(new HakoError(`connect: ${socketPath}: nobody accepted the connection within ${timeoutMs} ms (its backlog stayed full)`, { errno: 110, code: 'ETIMEDOUT' }));
        setTimeout(attempt, 20);
      }
    };
    attempt();
  });
}
