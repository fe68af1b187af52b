// Client of a waiting container's control socket: sends START or SETUP and learns whether the process
// was executed (the helper's end closes at exec: EOF with no reply) or refused (an ERROR message).
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { HakoError } from '../errors';
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

export function sendControl(socketPath: string, message: Buffer, context: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let dirFd: number | undefined;
    let target = socketPath;
    if (Buffer.byteLength(socketPath) >= 108) {
      dirFd = fs.openSync(path.dirname(socketPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      target = `/proc/self/fd/${dirFd}/${path.basename(socketPath)}`;
    }
    const chunks: Buffer[] = [];
    const sock = net.createConnection(target);
    const done = (err?: Error) => {
      if (dirFd !== undefined) {
        fs.closeSync(dirFd);
        dirFd = undefined;
      }
      if (err) reject(err);
      else if (chunks.length) reject(errorFromMessage(Buffer.concat(chunks), context));
      else resolve();
    };
    sock.on('connect', () => sock.write(message));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const gone = e.code === 'ENOENT' || e.code === 'ECONNREFUSED';
      done(new HakoError(gone ? `${context}: container is not waiting to be started` : `${context}: ${e.message}`, { code: e.code }));
    });
    sock.on('end', () => sock.end());
    sock.on('close', () => done());
  });
}
