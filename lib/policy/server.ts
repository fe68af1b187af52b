// The policy server: receives containers' seccomp notify fds on `linux.seccomp.listenerPath` (runtime-spec
// protocol), decides every notified call in TypeScript, and has the native side answer it or emulate it.
//
//   runtime --(unix socket: state JSON + SCM_RIGHTS "seccompFd")--> accept (SO_PEERCRED) -> read to EOF
//   -> validate -> notifyAdd: a native thread per fd: RECV, copy arguments, ID_VALID -> ThreadSafeFunction
//   -> decide() -> notifyRespond (errno) | notifyEmulate (hako-policy-helper) -> NOTIF_SEND -> audit line
//
// The event loop never blocks: the socket is read by a uv_poll, the notify fds by native threads, the
// emulation by the helper's children. One container's flood or hung target stalls only its own fd.
//
// This class is the owner: it holds the policy and wires the parts, each one concern over the shared state
// (server-state.ts): the socket and its connections (connections.ts), registration (registration.ts), the
// listeners' fixed denials and deposits (listeners.ts), hako-fd-keeper (keeper-link.ts, adoption.ts), the
// notification dispatch (dispatch.ts), audit records (audit-log.ts) and the helper (helper-process.ts).
import { EventEmitter } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { silentLogger } from '../log';
import { addon } from '../native/addon';
import { AuditLog } from './audit-log';
import { Connections } from './connections';
import { Dispatch } from './dispatch';
import { HelperProcess } from './helper-process';
import { KeeperLink } from './keeper-link';
import { Listeners } from './listeners';
import { loadPolicy, type Policy } from './schema';
import { ServerState, type PolicyServerOptions, type PolicyServerStats } from './server-state';
import { nativeLayouts } from './syscalls';

export { policyHelperPath } from './helper-process';
export type { AuditRecord, NotificationInfo, PolicyServerOptions, PolicyServerStats } from './server-state';

export class PolicyServer extends EventEmitter {
  readonly socketPath: string;
  readonly stats: PolicyServerStats;
  private readonly state: ServerState;
  private readonly listenerTable: Listeners;
  private readonly connections: Connections;
  private readonly helper: HelperProcess;
  private readonly auditLog: AuditLog;
  private readonly keeperLink: KeeperLink;
  private readonly dispatch: Dispatch;

  constructor(private readonly opts: PolicyServerOptions) {
    super();
    if (!opts.socket) throw new HakoError('policy server: a socket path is required', { field: '--socket' });
    this.socketPath = path.resolve(opts.socket);
    const log = opts.log ?? silentLogger;
    let policy: Policy;
    if (opts.policy) policy = opts.policy;
    else if (opts.policyFile) policy = loadPolicy(opts.policyFile);
    else throw new HakoError('policy server: a policy is required', { field: '--policy' });
    this.state = new ServerState(opts, this.socketPath, log, policy, (event, ...args) => this.emit(event, ...args));
    this.stats = this.state.stats;
    this.listenerTable = new Listeners(this.state);
    this.connections = new Connections(this.state, this.listenerTable);
    this.helper = new HelperProcess(this.state);
    this.auditLog = new AuditLog(this.state);
    this.keeperLink = new KeeperLink(this.state, this.listenerTable);
    this.dispatch = new Dispatch(this.state, this.listenerTable, this.helper, this.auditLog);
  }

  get policy(): Policy {
    return this.state.policy;
  }

  /** Replace the policy (atomically: calls decided from now on use it). */
  setPolicy(p: Policy): void {
    this.state.policy = p;
    this.state.gen++;
    for (const [lid, c] of this.state.byListener) this.listenerTable.updateFixed(lid, c);
  }

  /** Re-read the policy file. A policy that does not load keeps the old one (and the error is logged). */
  reload(): boolean {
    const log = this.state.log;
    if (!this.opts.policyFile) return false;
    try {
      this.setPolicy(loadPolicy(this.opts.policyFile));
      log.info(`policy server: policy reloaded from ${this.opts.policyFile}`);
      this.emit('reload', this.state.policy);
      return true;
    } catch (e) {
      log.error(`policy server: reload failed, keeping the previous policy: ${(e as Error).message}`);
      this.emit('reloadError', e);
      return false;
    }
  }

  /** Listen on the socket and start the helper. */
  async start(): Promise<void> {
    const a = addon();
    const mode = this.connections.listen();
    this.state.sid = a.notifyServerCreate((ev) => this.dispatch.onEvent(ev), this.helper.start());
    a.notifyServerSetLayouts(this.state.sid, nativeLayouts());
    if (this.opts.keeper !== false) await this.keeperLink.start();
    this.connections.watch();
    this.state.log.info(
      `policy server: listening on ${this.socketPath} (mode ${mode.toString(8)}), policy ${this.state.policy.file}`,
    );
  }

  /**
   * Stop: close the socket, the helper and this server's notify fds. With a keeper (the default) the running
   * containers' notified calls then wait in the kernel for the next server; `release: true` (or no keeper)
   * drops them for good: pending and future notified calls fail with ENOSYS.
   */
  async close(opts: { release?: boolean } = {}): Promise<void> {
    const s = this.state;
    if (s.closed) return;
    s.closed = true;
    const a = addon();
    if (opts.release) this.listenerTable.keeper?.release();
    this.connections.close();
    if (s.sid) a.notifyServerClose(s.sid);
    await this.helper.stop();
    for (const c of s.containersById.values()) for (const f of c.nsFds) fs.closeSync(f);
    this.listenerTable.closeRings();
    this.auditLog.limiter.close();
    // Last, when this server answers nothing any more: the keeper answers EAGAIN to what is left (keeper.ts).
    this.listenerTable.keeper?.close();
    s.containersById.clear();
    s.byListener.clear();
  }

  /** Containers being served: id, pid, number of notify fds (init + execs), emulations in flight. */
  containers(): { id: string; pid: number; listeners: number; pending: number }[] {
    return [...this.state.containersById.values()].map((c) => ({
      id: c.id,
      pid: c.pid,
      listeners: c.listeners.size,
      pending: c.pending,
    }));
  }
}
