// The policy server's audit records: one per decided call when the policy's `audit` switch is on, through
// the policy's `auditLimit` (audit-limit.ts), to the `audit` option or a JSON line on stdout.
import { addon, type NotifyEventNotif } from '../native/addon';
import { AuditLimiter, type AuditSuppressedRecord } from './audit-limit';
import { ERRNO, errnoName } from './constants';
import { describeCall, type Decision } from './decide';
import { kernelRefusal } from './refused';
import type { AuditRecord, ContainerRec, ServerState } from './server-state';
import { archName } from './syscalls';

export class AuditLog {
  readonly limiter: AuditLimiter;

  constructor(private readonly s: ServerState) {
    this.limiter = new AuditLimiter(
      () => this.s.policy.auditLimit,
      (r) => this.writeSuppressed(r),
    );
  }

  private writeSuppressed(r: AuditSuppressedRecord): void {
    if (this.s.opts.auditSuppressed) this.s.opts.auditSuppressed(r);
    else if (this.s.opts.audit) this.s.log.warn(`policy server: audit records suppressed: ${JSON.stringify(r)}`);
    else process.stdout.write(JSON.stringify(r) + '\n');
    this.s.emit('auditSuppressed', r);
  }

  audit(n: NotifyEventNotif, c: ContainerRec, d: Decision, result: AuditRecord['result'], sendErrno: number): void {
    if (!this.limiter.admit(c.id)) return; // counted, reported by the limiter (audit-limit.ts)
    const view = describeCall(n);
    const denied = d.action === 'deny';
    const errno = denied ? d.errno : (result?.errno ?? 0);
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
    if (
      result &&
      (result.stage === 'ok' || (result.stage === 'moved' && result.errno === 0)) &&
      d.action === 'emulate' &&
      d.where
    )
      rec.where = d.where;
    if (result?.stage === 'verify')
      rec.reason += `; not done: the object resolved in the caller's root is not at ${d.action === 'emulate' ? d.where : '?'} as the container sees it (moved, or a chroot or mount in the way)`;
    if (result?.stage === 'moved')
      rec.reason +=
        result.errno === ERRNO.EPERM
          ? '; undone: the target was moved while the call was made'
          : result.errno
            ? `; the target was moved while the call was made, and undoing it failed (${errnoName(result.errno)})`
            : '; its parent directory was moved during the call, after the unmount';
    if (this.s.opts.audit) this.s.opts.audit(rec);
    else process.stdout.write(JSON.stringify(rec) + '\n');
    this.s.emit('audit', rec);
  }
}
