// The policy server's side of hako-fd-keeper (src-native/keeper/main.cc): running containers survive a
// restart or a crash of the server.
//
// A seccomp notify fd cannot be recovered once its last holder closes it (every notified call of that
// container then fails with ENOSYS for good). So the server deposits a dup of each notify fd it serves, with
// the container's registration, in a small static process that outlives it; a new server takes them back at
// start and serves them. While no server runs, notified calls wait in the kernel. Calls the dead server had
// received and not answered are answered EAGAIN by the keeper (the id ring, keeper_proto.h).
//
// The socket is `<policy socket>.keeper`, 0600; the keeper accepts only its own uid, and the server only a
// keeper of its own uid (a squatter at that path is refused, and the server runs without one).
import { spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { nativeExecutable, addon } from '../native/addon';
import type { Logger } from '../log';

const MAGIC = 0x524b5048;
const T = { HELLO: 1, ENTRY: 2, END: 3, PUT: 4, DEL: 5, RELEASE: 6, BUSY: 7 } as const;
const HEADER = 24;
const MAX_PAYLOAD = 60 * 1024;
/** Besides the notify fd and its ring (keeper_proto.h kMaxFds = 8). */
export const MAX_EXTRA_FDS = 6;

/** What a registration records: the container's fields as the server registered them, plain JSON. */
export type Registration = Record<string, unknown>;

export interface KeptEntry {
  key: bigint;
  registration: Registration;
  /** The notify fd (close-on-exec, ours). */
  fd: number;
  /** Its id ring memfd (ours to close once mapped). */
  ring: number;
  /** The other fds deposited with it (deposit's extraFds), in order; ours. */
  extra: number[];
}

function header(type: number, key: bigint, len: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt32LE(type, 4);
  h.writeBigUInt64LE(key, 8);
  h.writeUInt32LE(len, 16);
  return h;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) fs.closeSync(fd);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function keeperPath(socketPath: string): string {
  return `${socketPath}.keeper`;
}

export class FdKeeper {
  private nextKey: bigint;
  private watch = 0;
  private closed = false;

  private constructor(
    private fd: number,
    private readonly log: Logger,
    readonly pid: number,
  ) {
    // Keys only need to be unique among what one keeper holds: a random high half per server, a counter below.
    this.nextKey = BigInt(crypto.randomBytes(4).readUInt32LE(0)) << 32n;
  }

  /**
   * Connect to the keeper of `socketPath` (starting one if none answers), say HELLO and take back what it
   * holds. null (logged) when no keeper can be used: the server then runs without restart survival.
   */
  static async open(
    socketPath: string,
    log: Logger,
    onLost: () => void,
  ): Promise<{ keeper: FdKeeper; entries: KeptEntry[]; abandoned: number } | null> {
    const a = addon();
    const path = keeperPath(socketPath);
    let c = a.keeperConnect(path);
    if (typeof c === 'number') {
      const bin = nativeExecutable('hako-fd-keeper');
      if (!bin) {
        log.warn(
          'policy server: hako-fd-keeper not found: running containers will not be served after a restart of the server',
        );
        return null;
      }
      // detached: a session of its own, so a signal to the server's process group does not reach it.
      const child = spawn(bin, [path], { detached: true, stdio: 'ignore' });
      child.on('error', (e) => log.error(`policy server: hako-fd-keeper: ${e.message}`));
      child.unref();
      for (let i = 0; i < 200 && typeof c === 'number'; i++) {
        await sleep(10);
        c = a.keeperConnect(path);
      }
      if (typeof c === 'number') {
        log.error(
          `policy server: hako-fd-keeper did not start at ${path} (errno ${c}): running containers will not be served after a restart`,
        );
        return null;
      }
    }
    const me = process.geteuid?.() ?? 0;
    // BUSY: another server is connected, or one that just closed its connection, which the keeper has not
    // seen yet (a server stopped and another started at once): asked again for up to 1 s.
    for (let busy = 0; ; busy++) {
      if (typeof c === 'number') {
        log.error(
          `policy server: hako-fd-keeper at ${path} went away (errno ${c}): running containers will not be served after a restart`,
        );
        return null;
      }
      if (c.uid !== me) {
        fs.closeSync(c.fd);
        log.error(
          `policy server: ${path} is held by uid ${c.uid} (pid ${c.pid}), not by this server's uid ${me}: not used`,
        );
        return null;
      }
      const k = new FdKeeper(c.fd, log, c.pid);
      let got: Awaited<ReturnType<FdKeeper['takeBack']>>;
      try {
        a.sendMessage(k.fd, header(T.HELLO, 0n, 0));
        got = await k.takeBack(busy < 20);
      } catch (e) {
        log.error(`policy server: hako-fd-keeper: ${(e as Error).message}`);
        k.close();
        return null;
      }
      if (got === 'busy') {
        k.close();
        await sleep(50);
        c = a.keeperConnect(path);
        continue;
      }
      if (!got) {
        k.close();
        return null;
      }
      return k.adoptConnection(got, onLost);
    }
  }

  private adoptConnection(
    got: { entries: KeptEntry[]; abandoned: number },
    onLost: () => void,
  ): { keeper: FdKeeper; entries: KeptEntry[]; abandoned: number } | null {
    const a = addon();
    const log = this.log;
    try {
      for (const e of got.entries) if (e.key >= this.nextKey) this.nextKey = e.key + 1n;
      this.watch = a.policyFdWatch(
        this.fd,
        () => {
          // The keeper never writes on its own: readable means it went away.
          if (this.closed) return;
          log.error(
            'policy server: hako-fd-keeper went away: running containers will not be served after a restart of the server',
          );
          this.close();
          onLost();
        },
        false,
      );
      return { keeper: this, ...got };
    } catch (e) {
      log.error(`policy server: hako-fd-keeper: ${(e as Error).message}`);
      this.close();
      return null;
    }
  }

  /** The entries; null (logged) on failure; 'busy' when the keeper serves another server and `retryBusy`. */
  private takeBack(retryBusy = false): Promise<{ entries: KeptEntry[]; abandoned: number } | null | 'busy'> {
    const a = addon();
    const entries: KeptEntry[] = [];
    return new Promise((resolve) => {
      let wait = -1;
      const timer = setTimeout(() => {
        // The pending receive is cancelled, so no later message on this fd reaches a callback that gave up.
        if (wait >= 0) a.cancelWait(wait);
        this.log.error('policy server: hako-fd-keeper did not answer within 5 s');
        for (const e of entries) closeAll([e.fd, e.ring, ...e.extra]);
        resolve(null);
      }, 5000);
      const fail = (why: string) => {
        clearTimeout(timer);
        this.log.error(`policy server: hako-fd-keeper: ${why}`);
        for (const e of entries) closeAll([e.fd, e.ring, ...e.extra]);
        resolve(null);
      };
      const next = (): void => {
        wait = a.recvMessage(this.fd, (err, data, fds) => {
          wait = -1;
          if (err || !data || data.length < HEADER || data.readUInt32LE(0) !== MAGIC) {
            closeAll(fds);
            return fail(err ? `receive: errno ${err}` : 'the connection closed');
          }
          const type = data.readUInt32LE(4);
          const key = data.readBigUInt64LE(8);
          const body = data.subarray(HEADER);
          if (type === T.BUSY && retryBusy) {
            clearTimeout(timer);
            closeAll(fds);
            for (const e of entries) closeAll([e.fd, e.ring, ...e.extra]);
            return resolve('busy');
          }
          if (type === T.BUSY) return fail('another policy server is connected to it; this one runs without it');
          if (type === T.END) {
            clearTimeout(timer);
            let abandoned = 0;
            try {
              abandoned = Number((JSON.parse(body.toString('utf8')) as { abandoned?: number }).abandoned ?? 0);
            } catch {
              /* an older keeper: no count */
            }
            return resolve({ entries, abandoned });
          }
          if (type !== T.ENTRY || fds.length < 2 || fds.length > 2 + MAX_EXTRA_FDS) {
            closeAll(fds);
            return fail(`unexpected message type ${type} with ${fds.length} fds`);
          }
          let registration: Registration;
          try {
            registration = JSON.parse(body.toString('utf8')) as Registration;
          } catch {
            // Not ours to interpret otherwise: drop it (its fd closes here; the keeper still holds one).
            closeAll(fds);
            return next();
          }
          entries.push({ key, registration, fd: fds[0], ring: fds[1], extra: fds.slice(2) });
          next();
        });
      };
      next();
    });
  }

  /**
   * Deposit a dup of a listener's notify fd with its registration, and dups of `extraFds` (fds the registration
   * needs kept, e.g. namespace pins; they come back in KeptEntry.extra); its key, or null (logged) when the
   * keeper cannot take it (that container then does not survive a restart; it is served all the same).
   * `ring`: the listener's own id ring (the memfd given to notifyAdd, stays the caller's): a listener keeps one
   * ring for good, so a deposit again (a new keeper) carries the ring its thread really writes; without it a
   * new ring is made and mapped (only if the listener has none yet).
   */
  deposit(
    sid: number,
    listener: number,
    registration: Registration,
    extraFds: number[] = [],
    ring?: number,
  ): bigint | null {
    if (this.closed) return null;
    if (extraFds.length > MAX_EXTRA_FDS) {
      this.log.warn(
        `policy server: listener ${listener}: ${extraFds.length} fds to keep, more than the keeper takes (${MAX_EXTRA_FDS})`,
      );
      return null;
    }
    const a = addon();
    const body = Buffer.from(JSON.stringify(registration), 'utf8');
    if (body.length > MAX_PAYLOAD) {
      this.log.warn(
        `policy server: registration of listener ${listener} is ${body.length} bytes, more than the keeper takes`,
      );
      return null;
    }
    let ownRing = -1;
    let dup = -1;
    try {
      if (ring === undefined) ring = ownRing = a.notifyRingCreate();
      dup = a.notifyKeep(sid, listener, ring);
      const key = this.nextKey++;
      a.sendMessage(this.fd, Buffer.concat([header(T.PUT, key, body.length), body]), [dup, ring, ...extraFds]);
      return key;
    } catch (e) {
      this.log.warn(`policy server: hako-fd-keeper: deposit of listener ${listener}: ${(e as Error).message}`);
      return null;
    } finally {
      if (dup >= 0) fs.closeSync(dup);
      if (ownRing >= 0) fs.closeSync(ownRing);
    }
  }

  /** The keeper closes its dup of `key` (the container is gone, or its fd failed). */
  forget(key: bigint): void {
    this.send(T.DEL, key);
  }

  /** The keeper closes everything and exits: pending and future notified calls fail with ENOSYS. */
  release(): void {
    this.send(T.RELEASE, 0n);
    this.close();
  }

  /** Leave: the keeper holds the fds until a server comes back (or their containers are gone). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watch) addon().policyFdUnwatch(this.watch);
    fs.closeSync(this.fd);
  }

  private send(type: number, key: bigint): void {
    if (this.closed) return;
    try {
      addon().sendMessage(this.fd, header(type, key, 0));
    } catch (e) {
      this.log.warn(`policy server: hako-fd-keeper: ${(e as Error).message}`);
    }
  }
}
