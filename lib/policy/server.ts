// Over 400 lines because one class owns the connection, keeper and notification state; splitting it is open (issue 17).
// The policy server: receives containers' seccomp notify fds on `linux.seccomp.listenerPath` (runtime-spec
// protocol), decides every notified call in TypeScript, and has the native side answer it or emulate it.
//
//   runtime --(unix socket: state JSON + SCM_RIGHTS "seccompFd")--> accept (SO_PEERCRED) -> read to EOF
//   -> validate -> notifyAdd: a native thread per fd: RECV, copy arguments, ID_VALID -> ThreadSafeFunction
//   -> decide() -> notifyRespond (errno) | notifyEmulate (hako-policy-helper) -> NOTIF_SEND -> audit line
//
// The event loop never blocks: the socket is read by a uv_poll, the notify fds by native threads, the
// emulation by the helper's children. One container's flood or hung target stalls only its own fd.
import { spawn, type ChildProcess } from 'child_process';
import { EventEmitter } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { silentLogger, type Logger } from '../log';
import { addon, addonDir, packageRoot, prebuildDir, type NotifyEvent, type NotifyEventClosed, type NotifyEventDone, type NotifyEventFast, type NotifyEventNotif, type NsInfo } from '../native/addon';
import { ERRNO, RF_HOST_OK, STAGES, errnoName } from './constants';
import { checkCaller, decide, describeCall, syscallOf, type Decision } from './decide';
import { AuditLimiter, type AuditSuppressedRecord } from './audit-limit';
import { fixedDenials } from './fast-deny';
import { attachLazyCreds } from './lazy-creds';
import { kernelRefusal, refusedDecision } from './refused';
import { FdKeeper, type KeptEntry, type Registration } from './keeper';
import { loadPolicy, selectProfile, type Policy, type Profile } from './schema';
import { archName, nativeLayouts } from './syscalls';

export interface AuditRecord {
  time: string;
  container: string;
  pid: number;
  arch: string;
  syscall: string;
  args: Record<string, string | number | null>;
  decision: 'allow' | 'deny';
  errno: number;
  errnoName?: string;
  reason: string;
  /** Emulations: what the helper reported (stage ok = the call was made). */
  result?: { ret: number; errno: number; stage: string };
  /** Where the call was really done, as the container sees it: the helper found the object it acted on there. */
  where?: string;
  latencyUs: number;
}

/** What a test hook sees before a decision is made. */
export interface NotificationInfo {
  container: string;
  pid: number;
  syscall: string | null;
  notification: NotifyEventNotif;
}

export interface PolicyServerOptions {
  /** Unix socket path (the containers' linux.seccomp.listenerPath). */
  socket: string;
  /** The policy, or a file to load it from (JSON or YAML); `reload()` re-reads the file. */
  policy?: Policy;
  policyFile?: string;
  /** Group (name or gid) that may connect: the socket becomes 0770 with that group. Default 0700. */
  group?: string | number;
  /** Peer uids allowed to connect besides root (SO_PEERCRED). A single one (and no group) owns the 0700 socket. */
  users?: number[];
  log?: Logger;
  /** Receives audit records when the policy's `audit` switch is on (default: one JSON line on stdout). */
  audit?: (rec: AuditRecord) => void;
  /**
   * Receives the counts of audit records the policy's `auditLimit` suppressed (periodically and when a container
   * is released). Default: a JSON line on stdout, or a log warning when `audit` is given.
   */
  auditSuppressed?: (rec: AuditSuppressedRecord) => void;
  /** Notifications of one fd in TypeScript's hands at once (default 64). */
  window?: number;
  /** SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux >= 6.6; default false). */
  syncWakeUp?: boolean;
  /** Largest state message accepted (default 1 MiB). */
  maxMessageBytes?: number;
  /** A connection must deliver its message within this time (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * Serve callers in the initial user namespace: containers without a user namespace (registered by root).
   * Off by default: such a caller's emulated call would be made with host privilege in the host's user
   * namespace, so the deployment must say it wants that.
   */
  hostCallers?: boolean;
  /**
   * Deposit every notify fd in hako-fd-keeper so that running containers are served again after this server
   * restarts or crashes (lib/policy/keeper.ts; default true). close() leaves them there unless told to release.
   */
  keeper?: boolean;
  /** Tests: awaited before each decision. */
  hooks?: { beforeDecision?(n: NotificationInfo): void | Promise<void> };
}

interface ContainerRec {
  id: string;
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
  metadata: string;
  listeners: Set<number>;
  pending: number;
  profile?: { gen: number; profile: Profile | null };
  /** The uid of the peer that registered it (0: the runtime as root). */
  owner: number;
  /** Its init's user and pid namespaces (inodes; the fds pin them while the container is registered). */
  userns: number;
  pidns: number;
  nsFds: number[];
}

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

interface Inflight {
  n: NotifyEventNotif;
  c: ContainerRec;
  d: Decision & { action: 'emulate' };
}

export interface PolicyServerStats {
  notifications: number;
  allowed: number;
  denied: number;
  failed: number;
  gone: number;
  connections: number;
  rejected: number;
}

/** hako-policy-helper beside the loaded addon, in build/Release, or in prebuilds; HAKO_POLICY_HELPER overrides. */
export function policyHelperPath(): string {
  const env = process.env.HAKO_POLICY_HELPER;
  if (env && fs.existsSync(env)) return env;
  const root = packageRoot();
  const dir = addonDir(root);
  const candidates = [dir && path.join(dir, 'hako-policy-helper'), path.join(root, 'build', 'Release', 'hako-policy-helper'), path.join(prebuildDir(root), 'hako-policy-helper')];
  const found = candidates.find((c): c is string => !!c && fs.existsSync(c));
  if (!found) throw new HakoError('hako-policy-helper not found (build/Release, prebuilds); run npm install');
  return found;
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

export class PolicyServer extends EventEmitter {
  readonly socketPath: string;
  private policyValue: Policy;
  private gen = 1;
  private log: Logger;
  private sid = 0;
  private listenFd = -1;
  private listenWatch = 0;
  private helper?: ChildProcess;
  private helperRestarts: number[] = [];
  private conns = new Set<Conn>();
  private containersById = new Map<string, ContainerRec>();
  private byListener = new Map<number, ContainerRec>();
  private inflight = new Map<number, Inflight>();
  private closed = false;
  private allowedGid?: number;
  private keeper?: FdKeeper;
  private keptKeys = new Map<number, bigint>();
  /**
   * Per listener: its id ring (memfd), mapped by notifyAdd before its thread receives anything, so that no id
   * escapes the ring; deposited with the fd, again with the same ring after a keeper is lost.
   */
  private rings = new Map<number, number>();
  /** Per listener: what was deposited besides the container's fields (status, peer), to deposit it again. */
  private regExtra = new Map<number, Registration>();
  private auditLimiter = new AuditLimiter(
    () => this.policyValue.auditLimit,
    (r) => this.writeSuppressed(r),
  );
  readonly stats: PolicyServerStats = { notifications: 0, allowed: 0, denied: 0, failed: 0, gone: 0, connections: 0, rejected: 0 };

  constructor(private readonly opts: PolicyServerOptions) {
    super();
    if (!opts.socket) throw new HakoError('policy server: a socket path is required', { field: '--socket' });
    this.socketPath = path.resolve(opts.socket);
    this.log = opts.log ?? silentLogger;
    if (opts.policy) this.policyValue = opts.policy;
    else if (opts.policyFile) this.policyValue = loadPolicy(opts.policyFile);
    else throw new HakoError('policy server: a policy is required', { field: '--policy' });
    if (opts.group !== undefined) this.allowedGid = groupId(opts.group);
  }

  get policy(): Policy {
    return this.policyValue;
  }

  /** Replace the policy (atomically: calls decided from now on use it). */
  setPolicy(p: Policy): void {
    this.policyValue = p;
    this.gen++;
    for (const [lid, c] of this.byListener) this.updateFixed(lid, c);
  }

  /** Re-read the policy file. A policy that does not load keeps the old one (and the error is logged). */
  reload(): boolean {
    if (!this.opts.policyFile) return false;
    try {
      this.setPolicy(loadPolicy(this.opts.policyFile));
      this.log.info(`policy server: policy reloaded from ${this.opts.policyFile}`);
      this.emit('reload', this.policyValue);
      return true;
    } catch (e) {
      this.log.error(`policy server: reload failed, keeping the previous policy: ${(e as Error).message}`);
      this.emit('reloadError', e);
      return false;
    }
  }

  /** Listen on the socket and start the helper. */
  async start(): Promise<void> {
    const a = addon();
    // A stale socket from a previous server is replaced; anything else at the path is an error.
    try {
      const st = fs.lstatSync(this.socketPath);
      if (!st.isSocket()) throw new HakoError(`--socket: ${this.socketPath} exists and is not a socket`, { field: '--socket' });
      fs.unlinkSync(this.socketPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    const mode = this.allowedGid !== undefined ? 0o770 : 0o700;
    this.listenFd = a.listenUnix(this.socketPath, mode);
    if (this.allowedGid !== undefined) fs.chownSync(this.socketPath, 0, this.allowedGid);
    else if (this.opts.users?.length === 1) fs.chownSync(this.socketPath, this.opts.users[0], 0); // one rootless runtime user
    else if (this.opts.users?.length) this.log.warn('policy server: several --user uids and no --group: only root can open the 0700 socket');
    this.sid = a.notifyServerCreate((ev) => this.onEvent(ev), this.startHelper());
    a.notifyServerSetLayouts(this.sid, nativeLayouts());
    if (this.opts.keeper !== false) await this.startKeeper();
    this.listenWatch = a.policyFdWatch(this.listenFd, () => this.onAcceptable());
    this.log.info(`policy server: listening on ${this.socketPath} (mode ${mode.toString(8)}), policy ${this.policyValue.file}`);
  }

  /**
   * Stop: close the socket, the helper and this server's notify fds. With a keeper (the default) the running
   * containers' notified calls then wait in the kernel for the next server; `release: true` (or no keeper)
   * drops them for good: pending and future notified calls fail with ENOSYS.
   */
  async close(opts: { release?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const a = addon();
    if (opts.release) this.keeper?.release();
    if (this.listenWatch) a.policyFdUnwatch(this.listenWatch);
    if (this.listenFd >= 0) fs.closeSync(this.listenFd);
    try {
      fs.unlinkSync(this.socketPath);
    } catch {
      /* gone */
    }
    for (const c of [...this.conns]) this.dropConn(c, null);
    if (this.sid) a.notifyServerClose(this.sid);
    const h = this.helper;
    if (h && h.exitCode === null && h.signalCode === null) {
      h.ref(); // keep the loop alive until the exit is seen
      h.kill('SIGKILL');
      await new Promise<void>((resolve) => h.once('exit', () => resolve()));
    }
    for (const c of this.containersById.values()) for (const f of c.nsFds) fs.closeSync(f);
    for (const r of this.rings.values()) fs.closeSync(r);
    this.rings.clear();
    this.auditLimiter.close();
    // Last, when this server answers nothing any more: the keeper answers EAGAIN to what is left (keeper.ts).
    this.keeper?.close();
    this.containersById.clear();
    this.byListener.clear();
  }

  /** Containers being served: id, pid, number of notify fds (init + execs), emulations in flight. */
  containers(): { id: string; pid: number; listeners: number; pending: number }[] {
    return [...this.containersById.values()].map((c) => ({ id: c.id, pid: c.pid, listeners: c.listeners.size, pending: c.pending }));
  }

  // ---------------------------------------------------------------- helper

  private startHelper(): number {
    const a = addon();
    const [mine, theirs] = a.seqpacketPair();
    let child: ChildProcess;
    try {
      child = spawn(policyHelperPath(), ['3'], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
    } finally {
      fs.closeSync(theirs);
    }
    child.unref();
    child.on('error', (e) => this.log.error(`policy server: helper: ${e.message}`));
    child.on('exit', (code, sig) => {
      if (!this.closed) this.log.warn(`policy server: helper exited (${sig ?? code})`);
    });
    this.helper = child;
    return mine;
  }

  private restartHelper(): void {
    if (this.closed) return;
    const now = Date.now();
    this.helperRestarts = this.helperRestarts.filter((t) => now - t < 60_000);
    if (this.helperRestarts.length >= 10) {
      this.log.error('policy server: the helper keeps dying; emulated calls fail with EAGAIN until it can be restarted');
      setTimeout(() => this.restartHelper(), 5_000).unref();
      return;
    }
    this.helperRestarts.push(now);
    try {
      addon().notifyServerSetHelper(this.sid, this.startHelper());
    } catch (e) {
      this.log.error(`policy server: restart the helper: ${(e as Error).message}`);
    }
  }

  // ---------------------------------------------------------------- connections

  private peerAllowed(uid: number, gid: number): boolean {
    if (uid === 0) return true;
    if (this.opts.users?.includes(uid)) return true;
    return this.allowedGid !== undefined && gid === this.allowedGid;
  }

  private onAcceptable(): void {
    const a = addon();
    for (;;) {
      let conn: { fd: number; pid: number; uid: number; gid: number } | null;
      try {
        conn = a.policyAccept(this.listenFd);
      } catch (e) {
        this.log.warn(`policy server: accept: ${(e as Error).message}`);
        return;
      }
      if (!conn) return;
      this.stats.connections++;
      if (!this.peerAllowed(conn.uid, conn.gid)) {
        this.stats.rejected++;
        this.log.warn(`policy server: refused a connection from uid ${conn.uid} gid ${conn.gid} pid ${conn.pid} (not root or an allowed user)`);
        fs.closeSync(conn.fd);
        continue;
      }
      const c: Conn = {
        fd: conn.fd,
        pid: conn.pid,
        uid: conn.uid,
        watch: 0,
        timer: setTimeout(() => this.dropConn(c, `no complete message within ${this.opts.connectTimeoutMs ?? 5000} ms`), this.opts.connectTimeoutMs ?? 5000),
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
      this.stats.rejected++;
      this.log.warn(`policy server: dropped a connection from pid ${c.pid} uid ${c.uid}: ${why}`);
      this.emit('rejected', why);
    }
  }

  private onConnReadable(c: Conn): void {
    const max = this.opts.maxMessageBytes ?? 1 << 20;
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
    const m = msg as { fds?: unknown; pid?: unknown; metadata?: unknown; state?: { id?: unknown; pid?: unknown; status?: unknown; bundle?: unknown; annotations?: unknown } };
    if (!m || typeof m !== 'object' || Array.isArray(m)) return this.dropConn(c, 'the message is not a JSON object');
    if (!Array.isArray(m.fds) || !m.fds.every((x) => typeof x === 'string')) return this.dropConn(c, '"fds" must be an array of names');
    const names = m.fds as string[];
    if (names.length !== c.fds.length) return this.dropConn(c, `"fds" names ${names.length} fds but ${c.fds.length} were received`);
    const idx = names.indexOf('seccompFd');
    if (idx < 0 || names.lastIndexOf('seccompFd') !== idx) return this.dropConn(c, `exactly one "seccompFd" is required (got ${JSON.stringify(names)})`);
    const st = m.state;
    if (!st || typeof st !== 'object' || typeof st.id !== 'string' || !st.id) return this.dropConn(c, '"state.id" is required');
    const pid = typeof m.pid === 'number' ? m.pid : typeof st.pid === 'number' ? st.pid : 0;
    const annotations: Record<string, string> = {};
    if (st.annotations && typeof st.annotations === 'object')
      for (const [k, v] of Object.entries(st.annotations as Record<string, unknown>)) if (typeof v === 'string') annotations[k] = v;
    const fd = c.fds[idx];
    const bad = addon().notifyCheckFd(fd);
    if (bad) return this.dropConn(c, `"seccompFd" is ${bad}`);
    // The container is what the runtime registered: its init (state.pid) must be a live process in a user
    // namespace owned by the peer (root may register any), and callers on this fd are later served only if
    // they are in that init's user and pid namespaces. The id the peer gives is bound to that container.
    const initPid = typeof st.pid === 'number' && st.pid > 0 ? st.pid : pid;
    const scope = this.containerScope(initPid, c.uid);
    if (typeof scope === 'string') return this.dropConn(c, scope);
    const existing = this.containersById.get(st.id);
    if (existing && (existing.owner !== c.uid || existing.userns !== scope.userns || existing.pidns !== scope.pidns)) {
      for (const f of scope.fds) fs.closeSync(f);
      return this.dropConn(c, `container id ${JSON.stringify(st.id)} is already registered for another container (owner uid ${existing.owner}, init pid ${existing.pid})`);
    }
    if (existing) for (const f of scope.fds) fs.closeSync(f);
    // Keep the notify fd, close everything else the peer sent.
    c.fds.splice(idx, 1);
    this.dropConnQuietly(c);
    let lid: number;
    let ring: number | undefined;
    try {
      if (this.opts.keeper !== false) ring = addon().notifyRingCreate();
      lid = addon().notifyAdd(this.sid, fd, this.opts.window ?? 64, !!this.opts.syncWakeUp, ring);
    } catch (e) {
      this.log.error(`policy server: container ${st.id}: ${(e as Error).message}`);
      if (ring !== undefined) fs.closeSync(ring);
      if (!existing) for (const f of scope.fds) fs.closeSync(f);
      return;
    }
    if (ring !== undefined) this.rings.set(lid, ring);
    let rec = this.containersById.get(st.id);
    if (!rec) {
      rec = {
        id: st.id,
        pid,
        bundle: typeof st.bundle === 'string' ? st.bundle : '',
        annotations,
        metadata: typeof m.metadata === 'string' ? m.metadata : '',
        listeners: new Set(),
        pending: 0,
        owner: c.uid,
        userns: scope.userns,
        pidns: scope.pidns,
        nsFds: scope.fds,
      };
      this.containersById.set(st.id, rec);
    }
    rec.listeners.add(lid);
    this.byListener.set(lid, rec);
    this.afterRegister(lid, rec, { status: st.status, peer: { uid: c.uid, pid: c.pid } });
    const profile = this.profileFor(rec);
    this.log.info(
      `policy server: container ${st.id} (${String(st.status ?? '?')}, pid ${pid}) connected: listener ${lid}, profile ${profile ? JSON.stringify(profile.name) : 'none (everything denied)'}`,
    );
    this.emit('register', { id: st.id, pid, listener: lid, status: st.status });
  }

  /**
   * The namespaces of a container's init as a peer names it: pinned (fds) user and pid namespaces, or why the
   * registration is refused.
   */
  private containerScope(initPid: number, peerUid: number): { userns: number; pidns: number; fds: number[] } | string {
    if (!(initPid > 0)) return '"state.pid" (the container\'s init) is required';
    const fds: number[] = [];
    try {
      fds.push(fs.openSync(`/proc/${initPid}/ns/user`, 'r'), fs.openSync(`/proc/${initPid}/ns/pid`, 'r'));
      const info: NsInfo = addon().policyNsInfo(initPid);
      const userns = fs.fstatSync(fds[0]).ino;
      const pidns = fs.fstatSync(fds[1]).ino;
      // The pid could have been reused between the opens: the pinned namespaces must be the ones read.
      if (info.user[0]?.[0] !== userns || info.pid[0] !== pidns) throw new Error('the process changed while it was examined');
      const initial = info.user.length === 1;
      let why: string | null = null;
      if (initial && !this.opts.hostCallers)
        why = `the container's init (pid ${initPid}) is in the initial user namespace: the server serves containers without a user namespace only with --host-callers`;
      else if (initial && peerUid !== 0) why = `the container's init (pid ${initPid}) is in the initial user namespace, and only root may register such a container`;
      else if (!initial && peerUid !== 0 && info.user[info.user.length - 2][1] !== peerUid)
        why = `the container's init (pid ${initPid}) is in a user namespace owned by uid ${info.user[info.user.length - 2][1]}, not by the peer (uid ${peerUid})`;
      if (why) {
        for (const f of fds) fs.closeSync(f);
        return why;
      }
      return { userns, pidns, fds };
    } catch (e) {
      for (const f of fds) fs.closeSync(f);
      return `the container's init (state.pid ${initPid}) cannot be examined: ${(e as Error).message}`;
    }
  }

  // ---------------------------------------------------------------- hako-fd-keeper (restart survival)

  private async startKeeper(ours = new Map<bigint, number>()): Promise<void> {
    const got = await FdKeeper.open(this.socketPath, this.log, () => this.onKeeperLost());
    if (!got) return;
    this.keeper = got.keeper;
    if (got.abandoned) this.log.warn(`policy server: ${got.abandoned} call(s) the previous server had received and not answered were answered EAGAIN`);
    for (const e of got.entries) {
      const lid = ours.get(e.key);
      if (lid === undefined || !this.byListener.has(lid)) {
        this.adopt(e);
        continue;
      }
      // Deposited by this server and served already (a keeper we lost the connection to, still alive).
      this.keptKeys.set(lid, e.key);
      for (const f of [e.fd, e.ring, ...e.extra]) fs.closeSync(f);
    }
  }

  /** The keeper is gone (or dropped us): start one again and deposit every fd served, so a restart still works. */
  private onKeeperLost(): void {
    const ours = new Map([...this.keptKeys].map(([lid, key]) => [key, lid]));
    this.keeper = undefined;
    this.keptKeys.clear();
    const retry = (ms: number): void => {
      setTimeout(() => {
        if (this.closed || this.keeper) return;
        void this.startKeeper(ours).then(() => {
          if (this.closed) return this.keeper?.close();
          if (!this.keeper) return retry(5000);
          let n = 0;
          for (const [lid, rec] of this.byListener)
            if (!this.keptKeys.has(lid)) {
              this.keepListener(lid, rec, this.regExtra.get(lid) ?? {});
              n++;
            }
          this.log.info(`policy server: hako-fd-keeper started again; ${n} notify fd(s) deposited`);
        });
      }, ms).unref();
    };
    if (!this.closed) retry(200);
  }

  /** A listener was registered: its fixed denials, its deposit in the keeper. */
  private afterRegister(lid: number, rec: ContainerRec, extra: Registration): void {
    this.updateFixed(lid, rec);
    this.keepListener(lid, rec, extra);
  }

  /**
   * The calls of this listener denied on the native thread (fast-deny.ts). None while a test hook watches every
   * decision, nor when the policy wants a record of every call (audit on, auditLimit: false): a batch has one.
   */
  private updateFixed(lid: number, rec: ContainerRec): void {
    if (!this.sid || this.opts.hooks?.beforeDecision) return;
    const p = this.policyValue;
    addon().notifySetFixed(this.sid, lid, p.audit && !p.auditLimit ? [] : fixedDenials(p, this.profileFor(rec)));
  }

  /**
   * The registration deposited with a notify fd: the container's own fields, not this process's state
   * (listener ids, counters, the profile cache) nor fds, whose numbers mean nothing in the next server: a
   * field holding fds (named *Fds / *Fd) is left out. The namespaces the registration pinned (`nsFds`: the
   * init's user and pid namespaces, which every caller is checked against) go along as fds, so the next server
   * checks callers against the very same namespaces, not inode numbers that could have been reused.
   */
  private keepListener(lid: number, rec: ContainerRec, extra: Registration): void {
    this.regExtra.set(lid, extra);
    if (!this.keeper) return;
    const fields = Object.fromEntries(Object.entries(rec).filter(([k]) => !['listeners', 'pending', 'profile'].includes(k) && !/Fds?$/.test(k)));
    const key = this.keeper.deposit(this.sid, lid, { v: 1, container: fields, ...extra }, rec.nsFds, this.rings.get(lid));
    if (key !== null) this.keptKeys.set(lid, key);
  }

  private forgetListener(lid: number): void {
    this.regExtra.delete(lid);
    const ring = this.rings.get(lid);
    if (ring !== undefined) fs.closeSync(ring);
    this.rings.delete(lid);
    const key = this.keptKeys.get(lid);
    if (key === undefined) return;
    this.keptKeys.delete(lid);
    this.keeper?.forget(key);
  }

  /** A notify fd a previous server deposited: serve it again under the registration it was accepted with. */
  private adopt(e: KeptEntry): void {
    const a = addon();
    const reg = e.registration as { v?: number; container?: Partial<ContainerRec> & { id?: unknown }; status?: unknown };
    const fields = reg.container;
    const existing = typeof fields?.id === 'string' ? this.containersById.get(fields.id) : undefined;
    const bad =
      a.notifyCheckFd(e.fd) ??
      pinnedNamespacesProblem(fields, e.extra) ??
      (fields ? this.adoptionRefusal(fields) : null) ??
      (existing && fields && (existing.owner !== fields.owner || existing.userns !== fields.userns || existing.pidns !== fields.pidns)
        ? `container id ${JSON.stringify(existing.id)} is already served for another container (owner uid ${existing.owner}, init pid ${existing.pid})`
        : null);
    if (reg.v !== 1 || !fields || typeof fields.id !== 'string' || bad) {
      this.log.warn(`policy server: hako-fd-keeper entry ${e.key}: ${bad ?? 'not a registration of this version'}; dropped`);
      for (const f of e.extra) fs.closeSync(f);
      fs.closeSync(e.fd);
      fs.closeSync(e.ring);
      this.keeper?.forget(e.key);
      return;
    }
    let lid: number;
    try {
      lid = a.notifyAdd(this.sid, e.fd, this.opts.window ?? 64, !!this.opts.syncWakeUp, e.ring);
    } catch (err) {
      this.log.error(`policy server: container ${fields.id}: ${(err as Error).message}`);
      for (const f of [e.ring, ...e.extra]) fs.closeSync(f);
      return;
    }
    this.rings.set(lid, e.ring); // kept: a deposit again (a new keeper) carries the ring this listener writes
    let rec = this.containersById.get(fields.id);
    if (!rec) {
      rec = { bundle: '', annotations: {}, metadata: '', pid: 0, owner: 0, userns: 0, pidns: 0, ...fields, id: fields.id, listeners: new Set(), pending: 0, profile: undefined, nsFds: e.extra };
      this.containersById.set(rec.id, rec);
    } else for (const f of e.extra) fs.closeSync(f);
    rec.listeners.add(lid);
    this.byListener.set(lid, rec);
    this.keptKeys.set(lid, e.key);
    const { v: _v, container: _c, ...extra } = reg;
    this.regExtra.set(lid, extra);
    this.updateFixed(lid, rec);
    this.log.info(`policy server: container ${rec.id} (pid ${rec.pid}) served again: listener ${lid} taken back from hako-fd-keeper`);
    this.emit('register', { id: rec.id, pid: rec.pid, listener: lid, status: reg.status, adopted: true });
  }

  /**
   * The registration rules that depend on this server's options, applied again to an adopted container (the
   * previous server may have run with --host-callers): a container whose init is in the initial user namespace
   * only with hostCallers, and only if root registered it. Null, or why it is not served.
   */
  private adoptionRefusal(fields: Partial<ContainerRec>): string | null {
    if (fields.userns !== initialUserns()) return null;
    if (!this.opts.hostCallers) return `its init (pid ${fields.pid}) is in the initial user namespace: the server serves containers without a user namespace only with --host-callers`;
    if (fields.owner !== 0) return `its init (pid ${fields.pid}) is in the initial user namespace, and only root may register such a container`;
    return null;
  }

  private dropConnQuietly(c: Conn): void {
    this.dropConn(c, null);
  }

  // ---------------------------------------------------------------- notifications

  private profileFor(c: ContainerRec): Profile | null {
    if (c.profile?.gen !== this.gen) c.profile = { gen: this.gen, profile: selectProfile(this.policyValue, c) };
    return c.profile.profile;
  }

  private onEvent(ev: NotifyEvent): void {
    try {
      if (ev.type === 'notif') this.onNotif(ev);
      else if (ev.type === 'fastdeny') this.onFast(ev);
      else if (ev.type === 'done') this.onDone(ev);
      else this.onClosed(ev);
    } catch (e) {
      this.log.error(`policy server: ${(e as Error).stack ?? e}`);
    }
  }

  private onNotif(n: NotifyEventNotif): void {
    this.stats.notifications++;
    attachLazyCreds(this.sid, n);
    const c = this.byListener.get(n.listener);
    if (!c) {
      addon().notifyRespond(this.sid, n.listener, n.token, ERRNO.EPERM, 0);
      return;
    }
    const hook = this.opts.hooks?.beforeDecision;
    if (!hook) return this.decideAndAct(n, c);
    Promise.resolve()
      .then(() => hook({ container: c.id, pid: n.pid, syscall: syscallOf(n), notification: n }))
      .then(
        () => this.decideAndAct(n, c),
        (e) => {
          this.log.error(`policy server: hook: ${(e as Error).message}`);
          this.decideAndAct(n, c);
        },
      );
  }

  private decideAndAct(n: NotifyEventNotif, c: ContainerRec): void {
    const a = addon();
    let d: Decision;
    const policy = this.policyValue;
    try {
      d = refusedDecision(n) ?? decide(n, { policy, profile: this.profileFor(c) });
    } catch (e) {
      d = { action: 'deny', errno: ERRNO.EPERM, reason: `internal error: ${(e as Error).message}` };
      this.log.error(`policy server: decide: ${(e as Error).stack}`);
    }
    if (d.action === 'emulate') {
      // Never more than the caller could do itself, and only for a process of this container.
      let ns: NsInfo | null = null;
      let nsError = '';
      try {
        ns = a.notifyCallerNs(this.sid, n.listener, n.token);
      } catch (e) {
        nsError = `: ${(e as Error).message}`;
      }
      const why = checkCaller(n, d, { ns, containerUserns: c.userns, containerPidns: c.pidns, owner: c.owner, hostCallers: !!this.opts.hostCallers });
      if (why) d = { action: 'deny', errno: ERRNO.EPERM, reason: `${why}${ns ? '' : nsError}` };
      else if (this.opts.hostCallers) d = { ...d, flags: d.flags | RF_HOST_OK };
    }
    if (d.action === 'emulate' && c.pending >= policy.maxPending) d = { action: 'deny', errno: ERRNO.EAGAIN, reason: `more than ${policy.maxPending} emulations in flight` };
    if (d.action === 'deny') {
      const se = a.notifyRespond(this.sid, n.listener, n.token, d.errno, 0);
      if (se) this.stats.gone++;
      this.stats.denied++;
      if (policy.audit) this.audit(n, c, d, undefined, se);
      return;
    }
    c.pending++;
    this.inflight.set(n.token, { n, c, d });
    const e = a.notifyEmulate(this.sid, n.listener, n.token, d.op, d.flags, d.ints, d.strs, policy.timeoutMs);
    if (e) {
      c.pending--;
      this.inflight.delete(n.token);
      if (e === ERRNO.ENOENT || e === ERRNO.EALREADY) this.stats.gone++; // the caller (or its container) is gone
      else this.stats.failed++;
      if (policy.audit) this.audit(n, c, d, { ret: -1, errno: e, stage: 'queue' }, 0);
    }
  }

  /** Calls already denied on the native thread: counted, and (with audit) this one's record, the others suppressed. */
  private onFast(ev: NotifyEventFast): void {
    if (ev.count === 0) return; // counted by the previous event
    this.stats.notifications += ev.count;
    this.stats.denied += ev.count;
    if (ev.sendErrno) this.stats.gone++;
    const c = this.byListener.get(ev.listener);
    if (!c || !this.policyValue.audit) return;
    const n = { ...ev, type: 'notif', token: 0 } as NotifyEventNotif;
    this.audit(n, c, { action: 'deny', errno: ev.errno, reason: 'no profile matches this container (decided natively)' }, undefined, ev.sendErrno);
    this.auditLimiter.suppress(c.id, ev.count - 1);
  }

  private onDone(ev: NotifyEventDone): void {
    const f = this.inflight.get(ev.token);
    if (!f) return;
    this.inflight.delete(ev.token);
    f.c.pending--;
    if (ev.stage === 8 || ev.sendErrno === ERRNO.ENOENT) this.stats.gone++;
    else if (ev.errno) this.stats.failed++;
    else this.stats.allowed++;
    if (this.policyValue.audit) this.audit(f.n, f.c, f.d, { ret: ev.ret, errno: ev.errno, stage: STAGES[ev.stage] ?? String(ev.stage) }, ev.sendErrno);
    this.emit('emulated', { container: f.c.id, errno: ev.errno, stage: STAGES[ev.stage] });
  }

  private onClosed(ev: NotifyEventClosed): void {
    if (ev.listener === 0) {
      this.log.warn('policy server: the helper went away; starting a new one');
      this.restartHelper();
      return;
    }
    addon().notifyRemove(this.sid, ev.listener);
    this.forgetListener(ev.listener);
    const c = this.byListener.get(ev.listener);
    this.byListener.delete(ev.listener);
    if (!c) return;
    c.listeners.delete(ev.listener);
    if (ev.reason !== 'hup') this.log.warn(`policy server: container ${c.id}: listener ${ev.listener} failed: ${ev.reason} ${ev.errno ? errnoName(ev.errno) : ''}`);
    if (c.listeners.size === 0 && this.containersById.get(c.id) === c) {
      this.containersById.delete(c.id);
      for (const f of c.nsFds) fs.closeSync(f);
      c.nsFds = [];
      this.log.info(`policy server: container ${c.id} is gone; released`);
      this.auditLimiter.release(c.id);
      this.emit('release', c.id);
    }
  }

  private writeSuppressed(r: AuditSuppressedRecord): void {
    if (this.opts.auditSuppressed) this.opts.auditSuppressed(r);
    else if (this.opts.audit) this.log.warn(`policy server: audit records suppressed: ${JSON.stringify(r)}`);
    else process.stdout.write(JSON.stringify(r) + '\n');
    this.emit('auditSuppressed', r);
  }

  private audit(n: NotifyEventNotif, c: ContainerRec, d: Decision, result: AuditRecord['result'], sendErrno: number): void {
    if (!this.auditLimiter.admit(c.id)) return; // counted, reported by the limiter (audit-limit.ts)
    const view = describeCall(n);
    const denied = d.action === 'deny';
    const errno = denied ? d.errno : result?.errno ?? 0;
    const rec: AuditRecord = {
      time: new Date().toISOString(),
      container: c.id,
      pid: n.pid,
      arch: archName(n.arch, n.nr),
      syscall: kernelRefusal(n)?.name ?? view.syscall,
      args: view.args,
      decision: denied ? 'deny' : 'allow',
      errno,
      reason: d.reason + (sendErrno === ERRNO.ENOENT ? ' (the caller was gone)' : ''),
      latencyUs: Math.round((addon().notifyNow() - n.t0) * 10) / 10,
    };
    if (errno) rec.errnoName = errnoName(errno);
    if (result) rec.result = result;
    if (result && (result.stage === 'ok' || (result.stage === 'moved' && result.errno === 0)) && d.action === 'emulate' && d.where) rec.where = d.where;
    if (result?.stage === 'verify') rec.reason += `; not done: the object resolved in the caller's root is not at ${d.action === 'emulate' ? d.where : '?'} as the container sees it (moved, or a chroot or mount in the way)`;
    if (result?.stage === 'moved')
      rec.reason +=
        result.errno === ERRNO.EPERM
          ? '; undone: the target was moved while the call was made'
          : result.errno
            ? `; the target was moved while the call was made, and undoing it failed (${errnoName(result.errno)})`
            : '; its parent directory was moved during the call, after the unmount';
    if (this.opts.audit) this.opts.audit(rec);
    else process.stdout.write(JSON.stringify(rec) + '\n');
    this.emit('audit', rec);
  }
}

/**
 * Why a deposited registration cannot be served again, or null: it must come with the two namespaces it pinned
 * (user, pid), still the ones its fields name. Without them every caller check would rest on bare inode numbers.
 */
function pinnedNamespacesProblem(fields: Partial<ContainerRec> | undefined, fds: number[]): string | null {
  if (!fields) return null;
  if (fds.length !== 2) return `${fds.length} namespace fds deposited, not the user and pid namespaces of its init`;
  const [user, pid] = fds.map((f) => fs.fstatSync(f));
  // Inode numbers are unique among namespaces only: the fds must be namespaces (nsfs) in the first place.
  const nsfs = fs.statSync('/proc/self/ns/user').dev;
  if (user.dev !== nsfs || pid.dev !== nsfs) return 'the fds deposited with it are not namespaces';
  if (user.ino !== fields.userns || pid.ino !== fields.pidns) return 'the namespaces deposited are not the ones it was registered with';
  return null;
}

let initialUsernsIno: number | undefined;

/** The initial user namespace as this server sees it (the outermost of its own), as containerScope counts it. */
function initialUserns(): number {
  if (initialUsernsIno === undefined) {
    const chain = addon().policyNsInfo(process.pid).user;
    initialUsernsIno = chain[chain.length - 1][0];
  }
  return initialUsernsIno;
}
