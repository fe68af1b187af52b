// What the Runtime's verbs share: the state root, the log, the cgroup support, and what this instance knows
// of the containers it created (their states, their held mount namespaces). Each verb's module takes it as `rt`.
import * as fs from 'fs';
import { HakoError } from '../errors';
import { createLogger, type Logger } from '../log';
import type { Hook, Spec, State } from '../oci/types';
import { grantableCapabilities } from '../plan/capabilities';
import type { ProcessExtras } from '../plan/process';
import { holdFd, releaseFd } from '../state/held-fds';
import { StateStore, type StoredState } from '../state/store';
import type { CgroupSupport } from './cgroup-support';
import type { HookKind } from './hooks';
import type { RuntimeOptions } from './options';
import { defaultStateRoot } from './privilege';
import { liveStatus } from './status';

// Modules loaded on first use: a CLI process runs one verb, and state, list, kill or delete never need the
// cgroup managers, the plan builder or the hook runner (their loading was a third of `hako state`'s cost).
export const cgroupModule = (): typeof import('./cgroup-support') => require('./cgroup-support');
export const planModule = (): typeof import('../plan/build') => require('../plan/build');
export const hooksModule = (): typeof import('./hooks') => require('./hooks');
export const enterModule = (): typeof import('./enter') => require('./enter');

export async function runHooks(hooks: Hook[] | undefined, state: State, kind: HookKind): Promise<void> {
  if (hooks?.length) await hooksModule().runHooks(hooks, state, kind);
}
export function runHookInContainer(
  hook: Hook,
  state: State,
  kind: HookKind,
  index: number,
  initPid: number,
  resolveInContainer: boolean,
  opts?: import('./hooks').InContainerHookOptions,
): Promise<void> {
  return hooksModule().runHookInContainer(hook, state, kind, index, initPid, resolveInContainer, opts);
}

/** How long delete --force waits for a SIGKILLed init to exit. */
export const KILL_WAIT_MS = 5000;

export const hasUserNamespace = (spec: Spec): boolean => (spec?.linux?.namespaces ?? []).some((n) => n.type === 'user');

export class RuntimeContext {
  readonly store: StateStore;
  readonly log: Logger;
  readonly debug: boolean;
  private readonly rootless?: boolean;
  private readonly systemdCgroup: boolean;
  private cgroupSupport?: CgroupSupport;
  /** States of the containers this instance created: setup() on them skips re-reading state.json. */
  readonly known = new Map<string, StoredState>();
  /**
   * The mount namespace of each container this instance created, held open (one fd). When a container's last
   * process exits, the kernel unmounts its whole mount tree (an RCU grace period, ~0.15 ms here) before the
   * parent learns of the exit; holding the namespace lets wait() resolve first, and the teardown follows when
   * the fd is closed: right after the exit is reported, or at delete(). (Holding ipc, uts and net as well
   * measured no better: their teardown is already deferred by the kernel.)
   */
  private readonly heldNamespaces = new Map<string, number>();

  constructor(opts: RuntimeOptions = {}) {
    this.store = new StateStore(opts.root ?? defaultStateRoot());
    this.rootless = opts.rootless;
    this.log = opts.logger ?? createLogger({ debug: opts.debug });
    this.debug = opts.debug ?? false;
    if (opts.systemdCgroup && !fs.existsSync('/run/systemd/system'))
      throw new HakoError(
        'systemdCgroup: systemd is not running on this host; use the cgroupfs driver (omit the flag)',
        { field: 'systemdCgroup' },
      );
    this.systemdCgroup = !!opts.systemdCgroup;
  }

  get cgroups(): CgroupSupport {
    return (this.cgroupSupport ??= new (cgroupModule().CgroupSupport)(this.log, this.rootless, this.systemdCgroup));
  }

  loadLive(id: string): StoredState {
    const s = this.store.load(id);
    s.status = liveStatus(s);
    return s;
  }

  /** Called while the init waits (alive, its pidfd held), so /proc/PID is the container's init. */
  holdNamespace(id: string, pid: number): void {
    try {
      this.heldNamespaces.set(id, holdFd(fs.openSync(`/proc/${pid}/ns/mnt`, 'r')));
    } catch {
      /* an optimisation only */
    }
  }

  /** What a process of this container can be granted, and where the capabilities it cannot get are reported. */
  capabilityExtras(spec: Spec): Pick<ProcessExtras, 'grantableCaps' | 'warn'> {
    return { grantableCaps: grantableCapabilities(hasUserNamespace(spec)), warn: (m) => this.log.warn(m) };
  }

  releaseNamespace(id: string): void {
    const fd = this.heldNamespaces.get(id);
    if (fd === undefined) return;
    this.heldNamespaces.delete(id);
    releaseFd(fd);
    fs.closeSync(fd);
  }
}
