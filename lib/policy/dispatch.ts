// The notification dispatch: every event of the native notify threads (a notified call, a batch denied
// natively, an emulation done, a listener closed) is counted, decided (decide.ts), answered or emulated, and
// audited; a closed listener releases its container when it was the last.
import * as fs from 'fs';
import {
  addon,
  type NotifyEvent,
  type NotifyEventClosed,
  type NotifyEventDone,
  type NotifyEventFast,
  type NotifyEventNotif,
  type NsInfo,
} from '../native/addon';
import type { AuditLog } from './audit-log';
import { ERRNO, RF_HOST_OK, STAGES, errnoName } from './constants';
import { checkCaller, decide, syscallOf, type Decision } from './decide';
import type { HelperProcess } from './helper-process';
import { attachLazyCreds } from './lazy-creds';
import type { Listeners } from './listeners';
import { refusedDecision } from './refused';
import type { ContainerRec, ServerState } from './server-state';

interface Inflight {
  n: NotifyEventNotif;
  c: ContainerRec;
  d: Decision & { action: 'emulate' };
}

export class Dispatch {
  private inflight = new Map<number, Inflight>();

  constructor(
    private readonly s: ServerState,
    private readonly l: Listeners,
    private readonly helper: HelperProcess,
    private readonly auditLog: AuditLog,
  ) {}

  onEvent(ev: NotifyEvent): void {
    try {
      if (ev.type === 'notif') this.onNotif(ev);
      else if (ev.type === 'fastdeny') this.onFast(ev);
      else if (ev.type === 'done') this.onDone(ev);
      else this.onClosed(ev);
    } catch (e) {
      this.s.log.error(`policy server: ${(e as Error).stack ?? e}`);
    }
  }

  private onNotif(n: NotifyEventNotif): void {
    this.s.stats.notifications++;
    attachLazyCreds(this.s.sid, n);
    const c = this.s.byListener.get(n.listener);
    if (!c) {
      addon().notifyRespond(this.s.sid, n.listener, n.token, ERRNO.EPERM, 0);
      return;
    }
    const hook = this.s.opts.hooks?.beforeDecision;
    if (!hook) return this.decideAndAct(n, c);
    Promise.resolve()
      .then(() => hook({ container: c.id, pid: n.pid, syscall: syscallOf(n), notification: n }))
      .then(
        () => this.decideAndAct(n, c),
        (e) => {
          this.s.log.error(`policy server: hook: ${(e as Error).message}`);
          this.decideAndAct(n, c);
        },
      );
  }

  private decideAndAct(n: NotifyEventNotif, c: ContainerRec): void {
    const a = addon();
    let d: Decision;
    const policy = this.s.policy;
    try {
      d = refusedDecision(n) ?? decide(n, { policy, profile: this.s.profileFor(c) });
    } catch (e) {
      d = { action: 'deny', errno: ERRNO.EPERM, reason: `internal error: ${(e as Error).message}` };
      this.s.log.error(`policy server: decide: ${(e as Error).stack}`);
    }
    if (d.action === 'emulate') {
      // Never more than the caller could do itself, and only for a process of this container.
      let ns: NsInfo | null = null;
      let nsError = '';
      try {
        ns = a.notifyCallerNs(this.s.sid, n.listener, n.token);
      } catch (e) {
        nsError = `: ${(e as Error).message}`;
      }
      const why = checkCaller(n, d, {
        ns,
        containerUserns: c.userns,
        containerPidns: c.pidns,
        owner: c.owner,
        hostCallers: !!this.s.opts.hostCallers,
      });
      if (why) d = { action: 'deny', errno: ERRNO.EPERM, reason: `${why}${ns ? '' : nsError}` };
      else if (this.s.opts.hostCallers) d = { ...d, flags: d.flags | RF_HOST_OK };
    }
    if (d.action === 'emulate' && c.pending >= policy.maxPending)
      d = { action: 'deny', errno: ERRNO.EAGAIN, reason: `more than ${policy.maxPending} emulations in flight` };
    if (d.action === 'deny') {
      const se = a.notifyRespond(this.s.sid, n.listener, n.token, d.errno, 0);
      if (se) this.s.stats.gone++;
      this.s.stats.denied++;
      if (policy.audit) this.auditLog.audit(n, c, d, undefined, se);
      return;
    }
    c.pending++;
    this.inflight.set(n.token, { n, c, d });
    const e = a.notifyEmulate(this.s.sid, n.listener, n.token, d.op, d.flags, d.ints, d.strs, policy.timeoutMs);
    if (e) {
      c.pending--;
      this.inflight.delete(n.token);
      if (e === ERRNO.ENOENT || e === ERRNO.EALREADY)
        this.s.stats.gone++; // the caller (or its container) is gone
      else this.s.stats.failed++;
      if (policy.audit) this.auditLog.audit(n, c, d, { ret: -1, errno: e, stage: 'queue' }, 0);
    }
  }

  /** Calls already denied on the native thread: counted, and (with audit) this one's record, the others suppressed. */
  private onFast(ev: NotifyEventFast): void {
    if (ev.count === 0) return; // counted by the previous event
    this.s.stats.notifications += ev.count;
    this.s.stats.denied += ev.count;
    if (ev.sendErrno) this.s.stats.gone++;
    const c = this.s.byListener.get(ev.listener);
    if (!c || !this.s.policy.audit) return;
    const n = { ...ev, type: 'notif', token: 0 } as NotifyEventNotif;
    this.auditLog.audit(
      n,
      c,
      { action: 'deny', errno: ev.errno, reason: 'no profile matches this container (decided natively)' },
      undefined,
      ev.sendErrno,
    );
    this.auditLog.limiter.suppress(c.id, ev.count - 1);
  }

  private onDone(ev: NotifyEventDone): void {
    const f = this.inflight.get(ev.token);
    if (!f) return;
    this.inflight.delete(ev.token);
    f.c.pending--;
    if (ev.stage === 8 || ev.sendErrno === ERRNO.ENOENT) this.s.stats.gone++;
    else if (ev.errno) this.s.stats.failed++;
    else this.s.stats.allowed++;
    if (this.s.policy.audit)
      this.auditLog.audit(
        f.n,
        f.c,
        f.d,
        { ret: ev.ret, errno: ev.errno, stage: STAGES[ev.stage] ?? String(ev.stage) },
        ev.sendErrno,
      );
    this.s.emit('emulated', { container: f.c.id, errno: ev.errno, stage: STAGES[ev.stage] });
  }

  private onClosed(ev: NotifyEventClosed): void {
    if (ev.listener === 0) {
      this.s.log.warn('policy server: the helper went away; starting a new one');
      this.helper.restart();
      return;
    }
    addon().notifyRemove(this.s.sid, ev.listener);
    this.l.forgetListener(ev.listener);
    const c = this.s.byListener.get(ev.listener);
    this.s.byListener.delete(ev.listener);
    if (!c) return;
    c.listeners.delete(ev.listener);
    if (ev.reason !== 'hup')
      this.s.log.warn(
        `policy server: container ${c.id}: listener ${ev.listener} failed: ${ev.reason} ${ev.errno ? errnoName(ev.errno) : ''}`,
      );
    if (c.listeners.size === 0 && this.s.containersById.get(c.id) === c) {
      this.s.containersById.delete(c.id);
      for (const f of c.nsFds) fs.closeSync(f);
      c.nsFds = [];
      this.s.log.info(`policy server: container ${c.id} is gone; released`);
      this.auditLog.limiter.release(c.id);
      this.s.emit('release', c.id);
    }
  }
}
