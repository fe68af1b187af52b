// Client of a waiting container's control socket: sends START or SETUP and learns whether the process
// was executed (the helper's end closes at exec: EOF with no reply) or refused (an ERROR message).
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

export function sendControl(socketPath: string, message: Buffer, context: string): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      addon().controlExchange(socketPath, message, (errno, reply) => {
        if (reply.length) reject(errorFromMessage(reply, context));
        else if (errno) reject(new HakoError(`${context}: control socket: errno ${errno}`, { errno }));
        else resolve();
      });
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      const gone = notWaiting(errno);
      reject(new HakoError(gone ? `${context}: container is not waiting to be started` : `${context}: ${(e as Error).message}`, { errno }));
    }
  });
}
