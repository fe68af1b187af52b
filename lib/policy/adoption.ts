// Adoption: a notify fd a previous server deposited in hako-fd-keeper is served again under the registration
// it was accepted with, once the rules of this server's options (--host-callers) and the namespaces it pinned
// have been checked again.
import * as fs from 'fs';
import { addon } from '../native/addon';
import type { KeptEntry } from './keeper';
import type { Listeners } from './listeners';
import type { ContainerRec, ServerState } from './server-state';

/** A notify fd a previous server deposited: serve it again under the registration it was accepted with. */
export function adopt(s: ServerState, l: Listeners, e: KeptEntry): void {
  const a = addon();
  const reg = e.registration as { v?: number; container?: Partial<ContainerRec> & { id?: unknown }; status?: unknown };
  const fields = reg.container;
  const existing = typeof fields?.id === 'string' ? s.containersById.get(fields.id) : undefined;
  const bad =
    a.notifyCheckFd(e.fd) ??
    pinnedNamespacesProblem(fields, e.extra) ??
    (fields ? adoptionRefusal(s, fields) : null) ??
    (existing &&
    fields &&
    (existing.owner !== fields.owner || existing.userns !== fields.userns || existing.pidns !== fields.pidns)
      ? `container id ${JSON.stringify(existing.id)} is already served for another container (owner uid ${existing.owner}, init pid ${existing.pid})`
      : null);
  if (reg.v !== 1 || !fields || typeof fields.id !== 'string' || bad) {
    s.log.warn(`policy server: hako-fd-keeper entry ${e.key}: ${bad ?? 'not a registration of this version'}; dropped`);
    for (const f of e.extra) fs.closeSync(f);
    fs.closeSync(e.fd);
    fs.closeSync(e.ring);
    l.keeper?.forget(e.key);
    return;
  }
  const existingRec = s.containersById.get(fields.id);
  const rec: ContainerRec = existingRec ?? {
    bundle: '',
    annotations: {},
    metadata: '',
    pid: 0,
    owner: 0,
    userns: 0,
    pidns: 0,
    ...fields,
    id: fields.id,
    listeners: new Set(),
    pending: 0,
    profile: undefined,
    nsFds: e.extra,
  };
  let lid: number;
  try {
    // The native denials go with the fd: the container's calls pending in it are answered as all later ones.
    lid = a.notifyAdd(s.sid, e.fd, s.opts.window ?? 64, !!s.opts.syncWakeUp, e.ring, l.fixedFor(rec));
  } catch (err) {
    s.log.error(`policy server: container ${fields.id}: ${(err as Error).message}`);
    for (const f of [e.ring, ...e.extra]) fs.closeSync(f);
    return;
  }
  l.rings.set(lid, e.ring); // kept: a deposit again (a new keeper) carries the ring this listener writes
  if (existingRec) for (const f of e.extra) fs.closeSync(f);
  else s.containersById.set(rec.id, rec);
  rec.listeners.add(lid);
  s.byListener.set(lid, rec);
  l.keptKeys.set(lid, e.key);
  const { v: _v, container: _c, ...extra } = reg;
  l.regExtra.set(lid, extra);
  s.log.info(
    `policy server: container ${rec.id} (pid ${rec.pid}) served again: listener ${lid} taken back from hako-fd-keeper`,
  );
  s.emit('register', { id: rec.id, pid: rec.pid, listener: lid, status: reg.status, adopted: true });
}

/**
 * The registration rules that depend on this server's options, applied again to an adopted container (the
 * previous server may have run with --host-callers): a container whose init is in the initial user namespace
 * only with hostCallers, and only if root registered it. Null, or why it is not served.
 */
function adoptionRefusal(s: ServerState, fields: Partial<ContainerRec>): string | null {
  if (fields.userns !== initialUserns()) return null;
  if (!s.opts.hostCallers)
    return `its init (pid ${fields.pid}) is in the initial user namespace: the server serves containers without a user namespace only with --host-callers`;
  if (fields.owner !== 0)
    return `its init (pid ${fields.pid}) is in the initial user namespace, and only root may register such a container`;
  return null;
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
  if (user.ino !== fields.userns || pid.ino !== fields.pidns)
    return 'the namespaces deposited are not the ones it was registered with';
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
