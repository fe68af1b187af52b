// What the policy server holds per listener (a notify fd being served) besides its container: the calls
// denied on the native thread, the deposit in hako-fd-keeper (its key, its id ring, the registration's extra
// fields), so that a listener can be deposited again and forgotten when it closes.
import * as fs from 'fs';
import { addon } from '../native/addon';
import { fixedDenials } from './fast-deny';
import type { FdKeeper, Registration } from './keeper';
import type { ContainerRec, ServerState } from './server-state';

export class Listeners {
  /** The keeper this server deposits in (none: disabled, or lost and not yet started again: keeper-link.ts). */
  keeper?: FdKeeper;
  readonly keptKeys = new Map<number, bigint>();
  /**
   * Per listener: its id ring (memfd), mapped by notifyAdd before its thread receives anything, so that no id
   * escapes the ring; deposited with the fd, again with the same ring after a keeper is lost.
   */
  readonly rings = new Map<number, number>();
  /** Per listener: what was deposited besides the container's fields (status, peer), to deposit it again. */
  readonly regExtra = new Map<number, Registration>();

  constructor(private readonly s: ServerState) {}

  /** A listener was registered: its deposit in the keeper. */
  afterRegister(lid: number, rec: ContainerRec, extra: Registration): void {
    this.keepListener(lid, rec, extra);
  }

  /**
   * The calls of a container denied on the native thread (fast-deny.ts), given to notifyAdd so that they are in
   * place before its first call arrives. None while a test hook watches every decision, nor when the policy wants
   * a record of every call (audit on, auditLimit: false): a batch has one.
   */
  fixedFor(rec: ContainerRec): Array<[number, number, number]> {
    const p = this.s.policy;
    if (this.s.opts.hooks?.beforeDecision || (p.audit && !p.auditLimit)) return [];
    return fixedDenials(p, this.s.profileFor(rec));
  }

  /** The policy changed (reload): a served listener's fixed denials again. */
  updateFixed(lid: number, rec: ContainerRec): void {
    if (!this.s.sid) return;
    addon().notifySetFixed(this.s.sid, lid, this.fixedFor(rec));
  }

  /**
   * The registration deposited with a notify fd: the container's own fields, not this process's state
   * (listener ids, counters, the profile cache) nor fds, whose numbers mean nothing in the next server: a
   * field holding fds (named *Fds / *Fd) is left out. The namespaces the registration pinned (`nsFds`: the
   * init's user and pid namespaces, which every caller is checked against) go along as fds, so the next server
   * checks callers against the very same namespaces, not inode numbers that could have been reused.
   */
  keepListener(lid: number, rec: ContainerRec, extra: Registration): void {
    this.regExtra.set(lid, extra);
    if (!this.keeper) return;
    const fields = Object.fromEntries(
      Object.entries(rec).filter(([k]) => !['listeners', 'pending', 'profile'].includes(k) && !/Fds?$/.test(k)),
    );
    const key = this.keeper.deposit(
      this.s.sid,
      lid,
      { v: 1, container: fields, ...extra },
      rec.nsFds,
      this.rings.get(lid),
    );
    if (key !== null) this.keptKeys.set(lid, key);
  }

  forgetListener(lid: number): void {
    this.regExtra.delete(lid);
    const ring = this.rings.get(lid);
    if (ring !== undefined) fs.closeSync(ring);
    this.rings.delete(lid);
    const key = this.keptKeys.get(lid);
    if (key === undefined) return;
    this.keptKeys.delete(lid);
    this.keeper?.forget(key);
  }

  /** Close: the rings are closed here (the keeper holds its own copies). */
  closeRings(): void {
    for (const r of this.rings.values()) fs.closeSync(r);
    this.rings.clear();
  }
}
