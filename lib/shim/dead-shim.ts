// What a dead shim leaves: its socket in /run/containerd/s and its record in /run/containerd/hako-shims (a
// SIGKILLed or OOM-killed server removes neither). containerd runs `containerd-shim-hako-v2 delete` for each
// container of the dead shim; the one that finds the group empty removes both, unless the group has a live shim
// again. A live shim's socket is never removed: the decision and the removal happen under the records lock, which
// bindGroupSocket (lib/shim/group-socket.ts) also holds when it replaces a socket nobody accepts on, so a new shim cannot
// bind the group's socket between the check and the unlink. (A new shim that binds a fresh path needs no lock:
// the path is free only once the dead socket is gone, and then there is nothing left here to remove.)
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { addon } from '../native/addon';
import { isAlive } from '../runtime/proc';
import { SHIM_RECORDS, SOCKET_DIR } from './address';

const LOCK_WAIT_MS = 3000;

export function recordPath(sock: string): string {
  return path.join(SHIM_RECORDS, `${path.basename(sock)}.pid`);
}

/**
 * The pid in the group's record, if that process is the hako shim serving `sock`. A record is "<pid> <start
 * time>" (lib/shim/server.ts; the launcher checks it the same way): alive while /proc/<pid>/stat shows that start
 * time, which no later process of that pid has. A record of an older shim holds the pid alone: then its
 * environment must name the socket.
 */
export function liveShim(sock: string): number | undefined {
  let fields: string[];
  try {
    fields = fs.readFileSync(recordPath(sock), 'utf8').trim().split(/\s+/);
  } catch {
    return undefined;
  }
  const pid = Number(fields[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (fields[1]) return isAlive(pid, fields[1]) ? pid : undefined;
  try {
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return env.includes(`HAKO_SHIM_SOCKET=${sock}`) ? pid : undefined;
  } catch {
    return undefined; // gone
  }
}

export function canConnect(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.createConnection(sock);
    const timer = setTimeout(() => done(false), 2000);
    timer.unref();
    function done(ok: boolean): void {
      clearTimeout(timer);
      c.destroy();
      resolve(ok);
    }
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}

/**
 * Run `fn` holding an exclusive flock on the records directory (taken without blocking the event loop: polled).
 * Gives up after `waitMs` and runs nothing: returns undefined.
 */
export async function withRecordsLock<T>(fn: () => Promise<T>, waitMs = LOCK_WAIT_MS): Promise<T | undefined> {
  fs.mkdirSync(SHIM_RECORDS, { recursive: true, mode: 0o700 });
  const fd = fs.openSync(SHIM_RECORDS, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    const deadline = Date.now() + waitMs;
    while (!addon().flock(fd, true, true)) {
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, 10));
    }
    return await fn();
  } finally {
    fs.closeSync(fd); // releases the lock
  }
}

/** The socket named by a bundle's `address` file, if it is a shim socket. */
function bundleSocket(bundle: string): string | undefined {
  let address: string;
  try {
    address = fs.readFileSync(path.join(bundle, 'address'), 'utf8');
  } catch {
    return undefined;
  }
  if (!address.startsWith(`unix://${SOCKET_DIR}/`)) return undefined;
  const sock = address.slice('unix://'.length);
  return path.dirname(sock) === SOCKET_DIR ? sock : undefined;
}

/**
 * After `delete` cleaned container `id` up: if its group (the containers whose bundles name the same shim socket)
 * has no container left in hako's state root and no live shim, remove the socket and the record. Returns what was
 * removed. `bundles` is containerd's directory of the namespace's bundles, `stateRoot` hako's of the namespace.
 */
export async function removeDeadShimLeftovers(bundle: string, id: string, stateRoot: string): Promise<string[]> {
  const sock = bundleSocket(bundle);
  if (!sock) return [];
  const bundles = path.dirname(bundle);
  let ids: string[] = [];
  try {
    ids = fs.readdirSync(stateRoot);
  } catch {
    /* no state root: no container left */
  }
  const groupLeft = ids.some((other) => other !== id && bundleSocket(path.join(bundles, other)) === sock);
  if (groupLeft) return [];
  const removed = await withRecordsLock(async () => {
    if (liveShim(sock) !== undefined || (await canConnect(sock))) return [];
    const gone: string[] = [];
    for (const p of [sock, recordPath(sock)]) {
      try {
        fs.unlinkSync(p);
        gone.push(p);
      } catch {
        /* not there */
      }
    }
    return gone;
  });
  return removed ?? [];
}

/**
 * A shim killed after its group's last container was deleted leaves its socket and record for good: containerd
 * runs no `delete` for a group it has no task of. Every new server sweeps them, off its first container's path:
 * a record whose shim is dead goes, and so does its socket when no one accepts on it and it is no newer than the
 * record. The dead shim bound its socket before it wrote its record; a new shim that bound the same path again
 * (not listening yet, or not yet recorded) made a newer socket, which stays. Under the records lock, as
 * removeDeadShimLeftovers. Returns what was removed.
 */
export async function sweepDeadShims(): Promise<string[]> {
  let records: string[];
  try {
    records = fs.readdirSync(SHIM_RECORDS).filter((f) => /^[0-9a-f]{64}\.pid$/.test(f));
  } catch {
    return [];
  }
  const removed = await withRecordsLock(async () => {
    const gone: string[] = [];
    for (const name of records) {
      const sock = path.join(SOCKET_DIR, name.slice(0, -'.pid'.length));
      const record = path.join(SHIM_RECORDS, name);
      let recordTime: number;
      try {
        recordTime = fs.statSync(record).mtimeMs;
      } catch {
        continue; // removed meanwhile
      }
      if (liveShim(sock) !== undefined) continue;
      let sockTime: number | undefined;
      try {
        const st = fs.lstatSync(sock);
        sockTime = st.isSocket() ? st.ctimeMs : undefined;
      } catch {
        /* no socket left */
      }
      if (sockTime !== undefined) {
        if (sockTime > recordTime || (await canConnect(sock))) {
          continue; // a newer shim's socket, or one that answers: not the dead shim's
        }
        fs.rmSync(sock, { force: true });
        gone.push(sock);
      }
      fs.rmSync(record, { force: true });
      gone.push(record);
    }
    return gone;
  });
  return removed ?? [];
}
