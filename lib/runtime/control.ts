// The conversation with the container's init, in one place: the control socket's client (START or SETUP, and
// whether the process was executed: the helper's end closes at exec, EOF with no reply; or refused: an ERROR
// message), the create and exec conversations on the plan socket, and fds sent on to other sockets.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import type { Logger } from '../log';
import { addon } from '../native/addon';
import { continueMessage } from '../plan/messages';
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

export function sendControl(
  socketPath: string,
  message: Buffer,
  context: string,
  timeoutMs = controlTimeoutMs(),
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let wait: number | undefined;
    const timedOut = (what: string) =>
      new HakoError(
        `${context}: container init did not answer within ${timeoutMs} ms (${what}); is it stopped or frozen?`,
        { errno: 110, code: 'ETIMEDOUT' },
      );
    const attempt = () => {
      try {
        wait = addon().controlExchange(socketPath, message, (errno, reply) => {
          clearTimeout(timer);
          if (reply.length) reject(errorFromMessage(reply, context));
          else if (errno === EPIPE || errno === ECONNRESET)
            // No answer and the request not taken whole: the init went away before it could act on it.
            reject(
              new HakoError(
                `${context}: container init closed the control connection before it had the whole request (errno ${errno})`,
                { errno },
              ),
            );
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
        return reject(
          new HakoError(
            gone ? `${context}: container is not waiting to be started` : `${context}: ${(e as Error).message}`,
            { errno },
          ),
        );
      }
      // The deadline cancels the exchange (its poll stops and its socket closes): the init, when it gets
      // to the request, finds the caller gone and does not act on it.
      timer = setTimeout(
        () => {
          addon().cancelWait(wait!);
          reject(timedOut('waiting for it to execute the process or refuse it'));
        },
        Math.max(deadline - Date.now(), 1),
      );
    };
    attempt();
  });
}

/**
 * One message from the init's seqpacket socket, within `timeoutMs`. The timeout cancels the native wait
 * before the caller gets to close the fd, so nothing keeps polling a number the next socket may reuse.
 */
export function recvOne(
  fd: number,
  timeoutMs: number,
  context: string,
): Promise<{ errno: number; data: Buffer | null; fds: number[] }> {
  return new Promise((resolve, reject) => {
    const wait = addon().recvMessage(fd, (errno, data, fds) => {
      clearTimeout(timer);
      if (!data) {
        // No message (EOF or an error): fds without data are of no use to anyone.
        for (const f of fds) fs.closeSync(f);
        if (errno === EMSGSIZE)
          return reject(
            new HakoError(
              `${context}: a message from container init carried more fds than expected (control data truncated)`,
              { errno },
            ),
          );
        return resolve({ errno, data, fds: [] });
      }
      resolve({ errno, data, fds });
    });
    const timer = setTimeout(
      () => {
        addon().cancelWait(wait);
        reject(new HakoError(`${context}: container init did not answer in time`, { errno: 110, code: 'ETIMEDOUT' }));
      },
      Math.max(timeoutMs, 1),
    );
  });
}

/**
 * One message with fds to a unix socket of someone else's (console socket, seccomp agent), within
 * `timeoutMs`: a peer whose backlog is full is retried, never waited on with the event loop blocked.
 */
export function sendToPathWithin(
  socketPath: string,
  data: Buffer,
  fds: number[],
  timeoutMs = controlTimeoutMs(),
): Promise<void> {
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
          return reject(
            new HakoError(
              `connect: ${socketPath}: nobody accepted the connection within ${timeoutMs} ms (its backlog stayed full)`,
              { errno: 110, code: 'ETIMEDOUT' },
            ),
          );
        setTimeout(attempt, 20);
      }
    };
    attempt();
  });
}

/**
 * The plan (and the fds it refers to) to an init on its plan socket. With `pidfd` (create), a socket whose
 * other end is already closed (EPIPE, ECONNRESET) is reported as the init's exit.
 */
export async function sendPlan(sock: number, message: Buffer, fds?: number[], pidfd?: number): Promise<void> {
  try {
    addon().sendMessage(sock, message, fds);
  } catch (e) {
    // EPIPE/ECONNRESET: the init is already gone (the socket's other end closed with it).
    const errno = (e as { errno?: number }).errno; // the addon's: positive
    if (pidfd !== undefined && (errno === 32 || errno === 104)) throw await initExited(pidfd);
    throw e;
  }
}

/** Where an fd the init sends goes: the seccomp listener to its agent, a console's master to the socket or callback. */
export interface FdDestinations {
  seccomp: (fd: number) => Promise<void>;
  consoleSocket?: string;
  /** Takes the console's master: it owns it from then on. */
  onConsole?: (master: number) => void;
}

/** Sends on an fd the init sent (named by the message); the fds left in `fds` are the caller's to close. */
export async function forwardInitFd(name: string | undefined, fds: number[], to: FdDestinations): Promise<void> {
  if (name === 'seccompFd') await to.seccomp(fds[0]);
  else if (to.consoleSocket) await sendToPathWithin(path.resolve(to.consoleSocket), Buffer.from(name ?? ''), [fds[0]]);
  else if (to.onConsole) to.onConsole(fds.shift()!); // the callback owns it now
}

/** What the runtime does with the fds the init sends during create or exec (`name` says what they are). */
export type FdHandler = (name: string | undefined, fds: number[]) => Promise<void>;

/**
 * Talk to the init during create: `onPause` runs the hooks at its pause point, `onFd` forwards fds, until
 * READY. The fds a handler leaves in the array are closed (one that takes an fd shifts it out).
 */
export async function createConversation(
  sock: number,
  pidfd: number,
  log: Logger,
  handlers: { onFd: FdHandler; onPause: () => Promise<void> },
): Promise<void> {
  const timeoutMs = 120_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = await recvOne(sock, deadline - Date.now(), 'create');
    if (!msg.data) throw await initExited(pidfd, msg.errno);
    const { type, records } = decodeMessage(msg.data);
    const name = records.find((r) => r.tag === Tag.R_NAME)?.payload.toString();
    switch (type) {
      case Msg.READY:
        return;
      case Msg.ERROR:
        throw errorFromMessage(msg.data, 'create');
      case Msg.STEP:
        log.debug(`init: ${name} done`);
        break;
      case Msg.FD:
        try {
          await handlers.onFd(name, msg.fds);
        } finally {
          for (const fd of msg.fds) fs.closeSync(fd);
        }
        break;
      case Msg.PAUSE: {
        await handlers.onPause();
        addon().sendMessage(sock, continueMessage());
        break;
      }
      default:
        throw new HakoError(`create: unexpected message ${type} from container init`);
    }
  }
}

/** Talk to the exec helper until its end closes at exec: `onFd` forwards the fds it sends (closed as above). */
export async function execConversation(sock: number, onFd: FdHandler): Promise<void> {
  for (;;) {
    const msg = await recvOne(sock, 60_000, 'exec');
    if (!msg.data) break; // the helper's end closed at exec
    const { type, records } = decodeMessage(msg.data);
    if (type === Msg.ERROR) throw errorFromMessage(msg.data, 'exec');
    if (type === Msg.FD) {
      const name = records.find((r) => r.tag === Tag.R_NAME)?.payload.toString();
      try {
        await onFd(name, msg.fds);
      } finally {
        for (const fd of msg.fds) fs.closeSync(fd);
      }
    }
  }
}

/**
 * The error for an init whose plan socket closed during create: it exited (or was killed). Its status, when it
 * is known within a moment (the socket closes as the process exits, slightly before it becomes a zombie), is
 * only looked at (WNOWAIT): create's cleanup reaps it.
 */
export function initExited(pidfd: number, errno?: number): Promise<HakoError> {
  return new Promise((resolve) => {
    const done = (r: { code: number | null; signal: number | null } | null) => {
      const status = r
        ? r.signal !== null
          ? `killed by signal ${r.signal}`
          : `exit status ${r.code}`
        : errno
          ? `errno ${errno}`
          : '';
      resolve(new HakoError(`container init exited during setup${status ? ` (${status})` : ''}`, { step: 'create' }));
    };
    let watch = 0;
    const timer = setTimeout(() => {
      addon().unwatchExit(watch);
      done(null);
    }, 1000);
    watch = addon().watchExit(
      pidfd,
      true,
      (r) => {
        clearTimeout(timer);
        done(r);
      },
      false,
    );
  });
}
