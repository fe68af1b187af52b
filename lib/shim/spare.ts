// A spare (HAKO_SHIM_SPARE=1 in containerd's environment, which its shims inherit): a started, idle shim server
// process that the next new group of its containerd claims (lib/shim/spare-protocol.ts), so that group's first
// container does not wait for Node to start and load the shim. lib/shim/spare-starter.ts starts it; this is the
// spare process. It loads the server's modules, then waits. A valid claim makes it remove its socket and stop
// listening (under the records lock), adopt the claim's directory, environment and flags, take the bundle's log
// FIFO as stderr, and do what HAKO_SHIM_BOOT does: bind the group's socket, serve, write the record and
// <bundle>/address, answer. Any failure from there: no answer, the group's socket and record removed, exit; the
// claimer starts a server the normal way. It leaves, removing its socket, when containerd's -address socket is
// gone or replaced (a restarted containerd), and on SIGTERM.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { addon } from '../native/addon';
import { trace } from '../log';
import { liveShim, recordPath, withRecordsLock } from './dead-shim';
import { FlagError, parseFlags, type ShimFlags } from './flags';
import { bindGroupSocket, startThreadPool, writeAddress } from './group-socket';
import { refusePeer } from './peer';
import {
  CLAIM_HEADER_BYTES,
  ClaimError,
  claimLength,
  decodeClaim,
  spareSocketPath,
  type Claim,
} from './spare-protocol';
import { SERVER_ONLY_ENV } from './spare-starter';

/** How long a connection has to deliver its whole claim. */
const CLAIM_READ_MS = 2000;
/** Connections being read at once; more are closed at once (a claimer then falls back). */
const MAX_PENDING = 8;
/** How often an idle spare checks that its containerd's socket is still there. */
const CONTAINERD_CHECK_MS = 5000;

/** The inode of the socket at `p`, or undefined: a containerd that restarted listens on a new one. */
function socketInode(p: string): number | undefined {
  try {
    const st = fs.statSync(p);
    return st.isSocket() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

/** Reads one claim from `conn`: the claim, or null (closed early, timed out, or more than the claim was sent). */
function readClaim(conn: net.Socket): Promise<Claim | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let want = -1;
    const timer = setTimeout(() => done(null), CLAIM_READ_MS);
    function done(c: Claim | null): void {
      clearTimeout(timer);
      conn.removeListener('data', onData);
      conn.removeListener('end', onEnd);
      conn.removeListener('close', onEnd);
      resolve(c);
    }
    function onEnd(): void {
      done(null);
    }
    function onData(d: Buffer): void {
      chunks.push(d);
      have += d.length;
      try {
        if (want < 0 && have >= CLAIM_HEADER_BYTES) want = CLAIM_HEADER_BYTES + claimLength(Buffer.concat(chunks));
        if (want < 0 || have < want) return;
        if (have > want) throw new ClaimError('claim: bytes after the claim');
        done(decodeClaim(Buffer.concat(chunks).subarray(CLAIM_HEADER_BYTES)));
      } catch (e) {
        if (!(e instanceof ClaimError)) throw e;
        done(null);
      }
    }
    conn.on('data', onData);
    conn.once('end', onEnd);
    conn.once('close', onEnd);
  });
}

/** The shim flags of a claim, if it is one this spare may serve: `start` for its own containerd, a bundle dir. */
function claimFlags(c: Claim, address: string): ShimFlags | null {
  let f: ShimFlags;
  try {
    f = parseFlags(c.args);
  } catch (e) {
    if (e instanceof FlagError) return null;
    throw e;
  }
  if (f.command !== 'start' || !f.namespace || !f.id || f.address !== address) return null;
  try {
    if (!fs.statSync(c.cwd).isDirectory()) return null;
  } catch {
    return null;
  }
  return f;
}

/** stderr becomes the bundle's `log` FIFO (containerd reads the shim's log there), else stays /dev/null. */
function takeLogAsStderr(bundle: string): void {
  const log = path.join(bundle, 'log');
  let fd: number;
  try {
    if (!fs.lstatSync(log).isFIFO()) return;
    fd = fs.openSync(log, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK); // libuv adds O_CLOEXEC
  } catch {
    return; // no reader, or no FIFO: nothing to log to
  }
  try {
    addon().dup2!(fd, 2);
  } finally {
    fs.closeSync(fd);
  }
}

/** The spare process (`containerd-shim-hako-v2 -address A spare`, fd 3 its listening socket). */
export async function runSpare(f: ShimFlags): Promise<void> {
  const address = f.address;
  if (!address) throw new Error('spare: -address is required');
  const own = spareSocketPath(address);
  // What the claimed server runs, loaded and compiled now rather than on the new group's path: the server, the
  // runtime's modules that its first Create loads, and the sealed copy of hako-init every container starts from.
  const { serveShim } = require('./server') as typeof import('./server');
  const runtime = require('../runtime/context') as typeof import('../runtime/context');
  runtime.cgroupModule();
  runtime.planModule();
  try {
    runtime.enterModule().sealedInit();
  } catch {
    /* no hako-init here: the first Create says so */
  }
  const pending = new Set<net.Socket>();
  let claimed = false;

  // Removes the spare's socket and stops listening, under the records lock: while it listens, ensureSpare cannot
  // take the path over (its check connects), so the path removed is this spare's.
  const stopListening = async (): Promise<boolean> =>
    (await withRecordsLock(async () => {
      fs.rmSync(own, { force: true });
      server.close();
      return true;
    })) ?? false;
  const retire = async (): Promise<void> => {
    if (claimed) return;
    claimed = true;
    await stopListening();
    process.exit(0);
  };
  // Started for this containerd: gone or restarted (perhaps without HAKO_SHIM_SPARE), it needs this spare no more.
  const containerd = socketInode(address);
  const watch = setInterval(() => {
    if (containerd === undefined || socketInode(address) !== containerd) void retire();
  }, CONTAINERD_CHECK_MS);
  process.on('SIGTERM', () => void retire());
  process.on('SIGINT', () => void retire());

  const server = net.createServer((conn) => {
    if (claimed || pending.size >= MAX_PENDING || refusePeer(conn)) {
      conn.destroy();
      return;
    }
    pending.add(conn);
    conn.on('error', () => {});
    void readClaim(conn).then((c) => {
      pending.delete(conn);
      const flags = c && !claimed ? claimFlags(c, address) : null;
      if (!c || !flags) {
        conn.destroy();
        return;
      }
      claimed = true;
      clearInterval(watch);
      for (const other of pending) other.destroy();
      void serveClaim(conn, c, flags, process.hrtime.bigint());
    });
  });
  server.on('error', () => {});

  const serveClaim = async (conn: net.Socket, c: Claim, flags: ShimFlags, t0: bigint): Promise<void> => {
    trace('spare: claimed');
    if (!(await stopListening())) process.exit(1);
    trace('spare: stopped listening');
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
    const answer = `unix://${c.socket}`;
    let bound: number | 'joined' | undefined;
    try {
      process.chdir(c.cwd);
      for (const k of Object.keys(process.env)) delete process.env[k];
      for (const e of c.env) process.env[e.slice(0, e.indexOf('='))] = e.slice(e.indexOf('=') + 1);
      for (const k of SERVER_ONLY_ENV) delete process.env[k];
      process.env.HAKO_SHIM_SOCKET = c.socket;
      takeLogAsStderr(c.cwd);
      trace('spare: adopted');
      bound = await bindGroupSocket(c.socket);
      trace('spare: bound');
      if (bound !== 'joined') await serveShim(flags, bound);
      trace('spare: serving');
      writeAddress(c.cwd, answer);
      trace('spare: address written');
    } catch (e) {
      conn.destroy();
      // This process's own socket and record only: a 'joined' group's belong to its live server.
      if (typeof bound === 'number') {
        if (liveShim(c.socket) === process.pid) fs.rmSync(recordPath(c.socket), { force: true });
        fs.rmSync(c.socket, { force: true });
      }
      process.stderr.write(`containerd-shim-hako-v2: spare: ${(e as Error).message}\n`);
      process.exit(1);
    }
    // The thread pool's start (a few ms of thread creation) after the claimer has its answer and EOF.
    conn.end(answer, () => {
      conn.destroy();
      if (bound === 'joined') process.exit(0);
      startThreadPool();
    });
    trace('spare: answered');
    // As a server's RPC times (lib/shim/server.ts): the claim read, to the answer sent.
    if (flags.debug)
      process.stderr.write(
        `${new Date().toISOString()} hako-shim[${process.pid}] Claim ${Number(process.hrtime.bigint() - t0) / 1e6} ms\n`,
      );
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd: 3 }, () => resolve());
  });
}
