// Registration: a container's notify fd, received and validated by connections.ts, is bound to the container
// the runtime named (its init's pinned user and pid namespaces, the peer that registered it) and served.
import * as fs from 'fs';
import { addon, type NsInfo } from '../native/addon';
import type { Listeners } from './listeners';
import type { ContainerRec, ServerState } from './server-state';

/** The pinned (fds) user and pid namespaces of a container's init, and their inodes. */
export interface Scope {
  userns: number;
  pidns: number;
  fds: number[];
}

/** A validated registration message: its state, the peer that sent it, the notify fd, the init's scope. */
export interface RegistrationRequest {
  st: { id: string; status?: unknown; bundle?: unknown };
  m: { metadata?: unknown };
  c: { uid: number; pid: number };
  pid: number;
  annotations: Record<string, string>;
  fd: number;
  scope: Scope;
  /** The id is registered already (for this same container): its scope's fds are closed and not needed. */
  existing: boolean;
}

/**
 * The namespaces of a container's init as a peer names it: pinned (fds) user and pid namespaces, or why the
 * registration is refused.
 */
export function containerScope(s: ServerState, initPid: number, peerUid: number): Scope | string {
  if (!(initPid > 0)) return '"state.pid" (the container\'s init) is required';
  // The init may change its user namespace between the opens and the read (a container whose first act is
  // unshare(CLONE_NEWUSER), examined late on a loaded machine): examined again, it is then stable. A pid
  // reused meanwhile fails the same comparison.
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = examineInit(s, initPid, peerUid);
    if (r !== CHANGED) return r;
  }
  return `the container's init (state.pid ${initPid}) cannot be examined: the process changed while it was examined`;
}

const CHANGED = Symbol('changed');

function examineInit(s: ServerState, initPid: number, peerUid: number): Scope | string | typeof CHANGED {
  const fds: number[] = [];
  try {
    fds.push(fs.openSync(`/proc/${initPid}/ns/user`, 'r'), fs.openSync(`/proc/${initPid}/ns/pid`, 'r'));
    s.opts.hooks?.afterPinning?.(initPid);
    const info: NsInfo = addon().policyNsInfo(initPid);
    const userns = fs.fstatSync(fds[0]).ino;
    const pidns = fs.fstatSync(fds[1]).ino;
    // The pinned namespaces must be the ones read.
    if (info.user[0]?.[0] !== userns || info.pid[0] !== pidns) {
      for (const f of fds) fs.closeSync(f);
      return CHANGED;
    }
    const initial = info.user.length === 1;
    let why: string | null = null;
    if (initial && !s.opts.hostCallers)
      why = `the container's init (pid ${initPid}) is in the initial user namespace: the server serves containers without a user namespace only with --host-callers`;
    else if (initial && peerUid !== 0)
      why = `the container's init (pid ${initPid}) is in the initial user namespace, and only root may register such a container`;
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

/** Serve the notify fd: a listener of the container, its fixed denials and its deposit in the keeper. */
export function register(s: ServerState, l: Listeners, req: RegistrationRequest): void {
  const { st, m, c, pid, annotations, fd, scope, existing } = req;
  // The record first (not yet published): the profile it selects decides the listener's native denials,
  // which must be in place before the thread receives the container's first call.
  const rec: ContainerRec = s.containersById.get(st.id) ?? {
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
  let lid: number;
  let ring: number | undefined;
  try {
    if (s.opts.keeper !== false) ring = addon().notifyRingCreate();
    lid = addon().notifyAdd(s.sid, fd, s.opts.window ?? 64, !!s.opts.syncWakeUp, ring, l.fixedFor(rec));
  } catch (e) {
    s.log.error(`policy server: container ${st.id}: ${(e as Error).message}`);
    if (ring !== undefined) fs.closeSync(ring);
    if (!existing) for (const f of scope.fds) fs.closeSync(f);
    return;
  }
  if (ring !== undefined) l.rings.set(lid, ring);
  s.containersById.set(st.id, rec);
  rec.listeners.add(lid);
  s.byListener.set(lid, rec);
  l.afterRegister(lid, rec, { status: st.status, peer: { uid: c.uid, pid: c.pid } });
  const profile = s.profileFor(rec);
  s.log.info(
    `policy server: container ${st.id} (${String(st.status ?? '?')}, pid ${pid}) connected: listener ${lid}, profile ${profile ? JSON.stringify(profile.name) : 'none (everything denied)'}`,
  );
  s.emit('register', { id: st.id, pid, listener: lid, status: st.status });
}
