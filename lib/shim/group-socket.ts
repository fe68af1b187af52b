// A new group's server takes its socket and tells containerd where it is: both ways a server comes to serve a new
// group (HAKO_SHIM_BOOT from the launcher, lib/shim/main.ts; a claimed spare, lib/shim/spare.ts) and Node's
// `start` do this.
import * as fs from 'fs';
import * as path from 'path';
import { SHIM_RECORDS, SOCKET_DIR } from './address';

const addonModule = (): typeof import('../native/addon') => require('../native/addon');
const deadShimModule = (): typeof import('./dead-shim') => require('./dead-shim');

export function writeAddress(bundle: string, address: string): void {
  // containerd reads it verbatim on restart: no newline (runtime/v2/shim/util.go WriteAddress).
  const tmp = path.join(bundle, '.address');
  fs.writeFileSync(tmp, address, { mode: 0o644 });
  fs.renameSync(tmp, path.join(bundle, 'address'));
}

/**
 * Listen on the group's socket, or learn that the group's shim runs ('joined'): on EADDRINUSE, a socket that
 * accepts is a live shim's; one nobody accepts on is a dead shim's, and is replaced, under the records lock that
 * `delete` holds when it removes a dead shim's socket (lib/shim/dead-shim.ts). Throws when it can do neither.
 */
export async function bindGroupSocket(sock: string): Promise<number | 'joined'> {
  fs.mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o711 });
  const { addon } = addonModule();
  const listen = (): number | 'busy' => {
    try {
      return addon().listenUnix(sock, 0o600);
    } catch (e) {
      if (/EADDRINUSE|address already in use/i.test((e as Error).message)) return 'busy';
      throw new Error(`listen on ${sock}: ${(e as Error).message}`);
    }
  };
  const first = listen();
  if (first !== 'busy') return first;
  const { canConnect, withRecordsLock } = deadShimModule();
  const bound = await withRecordsLock(async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await canConnect(sock)) return 'joined' as const;
      fs.rmSync(sock, { force: true });
      const fd = listen();
      if (fd !== 'busy') return fd;
    }
    throw new Error(`listen on ${sock}: address already in use`);
  });
  if (bound === undefined) throw new Error(`listen on ${sock}: the records lock in ${SHIM_RECORDS} is held too long`);
  return bound;
}

/**
 * Start libuv's thread pool now, while containerd dials and sends its first Create: that Create's first
 * asynchronous file call (the cgroup2 join of lib/runtime/create.ts) would otherwise start it, ~1.3 ms measured.
 */
export function startThreadPool(): void {
  fs.access('/', () => {});
}
