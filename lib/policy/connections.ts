// The policy server's socket (linux.seccomp.listenerPath): accept (SO_PEERCRED: root, --user uids, --group),
// read each connection to EOF without blocking, validate the runtime-spec state message and its fds, and hand
// the seccomp notify fd to registration.ts. A bad connection is dropped with every fd it sent closed.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { addon } from '../native/addon';
import type { Listeners } from './listeners';
import { containerScope, register } from './registration';
import type { ServerState } from './server-state';

interface Conn {
  fd: number;
  pid: number;
  uid: number;
  watch: number;
  timer: NodeJS.Timeout;
  chunks: Buffer[];
  size: number;
  fds: number[];
  gotData: boolean;
  done: boolean;
}

function groupId(g: string | number): number {
  if (typeof g === 'number') return g;
  if (/^\d+$/.test(g)) return Number(g);
  for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === g) return Number(f[2]);
  }
  throw new HakoError(`--group: unknown group ${g}`, { field: '--group' });
}

export class Connections {
  private listenFd = -1;
  private listenWatch = 0;
  private conns = new Set<Conn>();
  private allowedGid?: number;

  constructor(
    private readonly s: ServerState,
    private readonly l: Listeners,
  ) {
    if (s.opts.group !== undefined) this.allowedGid = groupId(s.opts.group);
  }

  /** Create the socket (a stale one from a previous server replaced); returns its mode. */
  listen(): number {
    const a = addon();
    // A stale socket from a previous server is replaced; anything else at the path is an error.
    try {
      const st = fs.lstatSync(this.s.socketPath);
      if (!st.isSocket())
        throw new HakoError(`--socket: ${this.s.socketPath} exists and is not a socket`, { field: '--socket' });
      fs.unlinkSync(this.s.socketPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    fs.mkdirSync(path.dirname(this.s.socketPath), { recursive: true, mode: 0o755 });
    const mode = this.allowedGid !== undefined ? 0o770 : 0o700;
    this.listenFd = a.listenUnix(this.s.socketPath, mode);
    if (this.allowedGid !== undefined) fs.chownSync(this.s.socketPath, 0, this.allowedGid);
    else if (this.s.opts.users?.length === 1)
      fs.chownSync(this.s.socketPath, this.s.opts.users[0], 0); // one rootless runtime user
    else if (this.s.opts.users?.length)
      this.s.log.warn('policy server: several --user uids and no --group: only root can open the 0700 socket');
    return mode;
  }

  /** Accept connections (once the server is ready to serve what they bring). */
  watch(): void {
    this.listenWatch = addon().policyFdWatch(this.listenFd, () => this.onAcceptable());
  }

  /** Close the socket and drop the connections still open. */
  close(): void {
    if (this.listenWatch) addon().policyFdUnwatch(this.listenWatch);
    if (this.listenFd >= 0) fs.closeSync(this.listenFd);
    try {
      fs.unlinkSync(this.s.socketPath);
    } catch {
      /* gone */
    }
    for (const c of [...this.conns]) this.dropConn(c, null);
  }

  private peerAllowed(uid: number, gid: number): boolean {
    if (uid === 0) return true;
    if (this.s.opts.users?.includes(uid)) return true;
    return this.allowedGid !== undefined && gid === this.allowedGid;
  }

  private onAcceptable(): void {
    const a = addon();
    for (;;) {
      let conn: { fd: number; pid: number; uid: number; gid: number } | null;
      try {
        conn = a.policyAccept(this.listenFd);
      } catch (e) {
        this.s.log.warn(`policy server: accept: ${(e as Error).message}`);
        return;
      }
      if (!conn) return;
      this.s.stats.connections++;
      if (!this.peerAllowed(conn.uid, conn.gid)) {
        this.s.stats.rejected++;
        this.s.log.warn(
          `policy server: refused a connection from uid ${conn.uid} gid ${conn.gid} pid ${conn.pid} (not root or an allowed user)`,
        );
        fs.closeSync(conn.fd);
        continue;
      }
      const c: Conn = {
        fd: conn.fd,
        pid: conn.pid,
        uid: conn.uid,
        watch: 0,
        timer: setTimeout(
          () => this.dropConn(c, `no complete message within ${this.s.opts.connectTimeoutMs ?? 5000} ms`),
          this.s.opts.connectTimeoutMs ?? 5000,
        ),
        chunks: [],
        size: 0,
        fds: [],
        gotData: false,
        done: false,
      };
      this.conns.add(c);
      c.watch = a.policyFdWatch(c.fd, () => this.onConnReadable(c));
    }
  }

  /** Drop a connection: every fd it sent is closed, the others containers are not affected. */
  private dropConn(c: Conn, why: string | null): void {
    if (c.done) return;
    c.done = true;
    this.conns.delete(c);
    clearTimeout(c.timer);
    if (c.watch) addon().policyFdUnwatch(c.watch);
    for (const fd of c.fds) fs.closeSync(fd);
    c.fds = [];
    fs.closeSync(c.fd);
    if (why) {
      this.s.stats.rejected++;
      this.s.log.warn(`policy server: dropped a connection from pid ${c.pid} uid ${c.uid}: ${why}`);
      this.s.emit('rejected', why);
    }
  }

  private onConnReadable(c: Conn): void {
    const max = this.s.opts.maxMessageBytes ?? 1 << 20;
    for (;;) {
      if (c.done) return;
      let r: ReturnType<ReturnType<typeof addon>['policyRecv']>;
      try {
        r = addon().policyRecv(c.fd, 65536);
      } catch (e) {
        this.dropConn(c, `recvmsg: ${(e as Error).message}`);
        return;
      }
      if (r.again) return;
      if (r.fds.length) {
        c.fds.push(...r.fds);
        // runtime-spec: fds travel with the first sendmsg only.
        if (c.gotData) return this.dropConn(c, 'file descriptors after the first chunk of the message');
      }
      if (r.ctrunc) return this.dropConn(c, 'too many file descriptors (MSG_CTRUNC)');
      if (r.eof) return this.finishConn(c);
      const data = r.data!;
      c.gotData = true;
      c.size += data.length;
      if (c.size > max) return this.dropConn(c, `message larger than ${max} bytes`);
      c.chunks.push(data);
    }
  }

  private finishConn(c: Conn): void {
    let msg: unknown;
    try {
      msg = JSON.parse(Buffer.concat(c.chunks).toString('utf8'));
    } catch (e) {
      return this.dropConn(c, `invalid JSON: ${(e as Error).message}`);
    }
    const m = msg as {
      fds?: unknown;
      pid?: unknown;
      metadata?: unknown;
      state?: { id?: unknown; pid?: unknown; status?: unknown; bundle?: unknown; annotations?: unknown };
    };
    if (!m || typeof m !== 'object' || Array.isArray(m)) return this.dropConn(c, 'the message is not a JSON object');
    if (!Array.isArray(m.fds) || !m.fds.every((x) => typeof x === 'string'))
      return this.dropConn(c, '"fds" must be an array of names');
    const names = m.fds as string[];
    if (names.length !== c.fds.length)
      return this.dropConn(c, `"fds" names ${names.length} fds but ${c.fds.length} were received`);
    const idx = names.indexOf('seccompFd');
    if (idx < 0 || names.lastIndexOf('seccompFd') !== idx)
      return this.dropConn(c, `exactly one "seccompFd" is required (got ${JSON.stringify(names)})`);
    const st = m.state;
    if (!st || typeof st !== 'object' || typeof st.id !== 'string' || !st.id)
      return this.dropConn(c, '"state.id" is required');
    const pid = typeof m.pid === 'number' ? m.pid : typeof st.pid === 'number' ? st.pid : 0;
    const annotations: Record<string, string> = {};
    if (st.annotations && typeof st.annotations === 'object')
      for (const [k, v] of Object.entries(st.annotations as Record<string, unknown>))
        if (typeof v === 'string') annotations[k] = v;
    const fd = c.fds[idx];
    const bad = addon().notifyCheckFd(fd);
    if (bad) return this.dropConn(c, `"seccompFd" is ${bad}`);
    // The container is what the runtime registered: its init (state.pid) must be a live process in a user
    // namespace owned by the peer (root may register any), and callers on this fd are later served only if
    // they are in that init's user and pid namespaces. The id the peer gives is bound to that container.
    const initPid = typeof st.pid === 'number' && st.pid > 0 ? st.pid : pid;
    const scope = containerScope(this.s, initPid, c.uid);
    if (typeof scope === 'string') return this.dropConn(c, scope);
    const existing = this.s.containersById.get(st.id);
    if (existing && (existing.owner !== c.uid || existing.userns !== scope.userns || existing.pidns !== scope.pidns)) {
      for (const f of scope.fds) fs.closeSync(f);
      return this.dropConn(
        c,
        `container id ${JSON.stringify(st.id)} is already registered for another container (owner uid ${existing.owner}, init pid ${existing.pid})`,
      );
    }
    if (existing) for (const f of scope.fds) fs.closeSync(f);
    // Keep the notify fd, close everything else the peer sent.
    c.fds.splice(idx, 1);
    this.dropConnQuietly(c);
    register(this.s, this.l, {
      st: { id: st.id, status: st.status, bundle: st.bundle },
      m,
      c,
      pid,
      annotations,
      fd,
      scope,
      existing: !!existing,
    });
  }

  private dropConnQuietly(c: Conn): void {
    this.dropConn(c, null);
  }
}
