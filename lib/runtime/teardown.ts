// Teardown: signals to a container (kill) and its removal (delete, with --force's kill and bounded wait).
import * as fs from 'fs';
import { HakoError } from '../errors';
import { trace } from '../log';
import { addon } from '../native/addon';
import { parseSignal } from '../oci/constants';
import { foreignError, validateId, type StoredState } from '../state/store';
import { Container } from './container';
import { hooksModule, KILL_WAIT_MS, type RuntimeContext } from './context';
import { isAlive } from './proc';
import { publicState } from './status';

export async function kill(
  rt: RuntimeContext,
  id: string,
  signal: string | number = 'TERM',
  opts: { all?: boolean } = {},
): Promise<void> {
  validateId(id);
  // 0 is no signal, only the existence check of kill(2): runc accepts it, and liveness probes use `kill ID 0`.
  const sig = typeof signal === 'number' ? signal : signal === '0' ? 0 : parseSignal(signal);
  if (sig === undefined || sig < 0) throw new HakoError(`invalid signal: ${signal}`, { field: 'signal' });
  const s = rt.loadLive(id);
  if (s.status === 'stopped') throw new HakoError('container not running', { code: 'ESRCH' });
  if (!opts.all) {
    killProcess(rt, s, sig);
    // SIGKILL waits in a frozen cgroup: thaw, so the container stops (as runc does; containerd then deletes it).
    if (sig === 9 && s.status === 'paused') rt.cgroups.manager(s).thaw();
    return;
  }
  // --all signals the cgroup; the init may already be gone (and reaped) by the time we get to it.
  rt.cgroups.killAll(s, sig);
  try {
    killProcess(rt, s, sig);
  } catch (e) {
    if ((e as HakoError).code !== 'ESRCH') throw e;
  }
}

export function killProcess(rt: RuntimeContext, s: StoredState, sig: number): void {
  let pidfd: number;
  try {
    pidfd = addon().pidfdOpen(s.pid!);
  } catch {
    throw new HakoError('container not running', { code: 'ESRCH' });
  }
  try {
    // The pidfd pins the process: if its start time still matches, the signal cannot hit a reused pid.
    if (!isAlive(s.pid, s.pidStartTime)) throw new HakoError('container not running', { code: 'ESRCH' });
    addon().pidfdSendSignal(pidfd, sig);
  } finally {
    fs.closeSync(pidfd);
  }
}

/** Delete a container; `force` kills it first. A missing container is fine with `force`. */
export async function deleteContainer(rt: RuntimeContext, id: string, opts: { force?: boolean } = {}): Promise<void> {
  validateId(id);
  // Never remove (nor lock) another runtime's container in a shared root.
  if (rt.store.isForeign(id)) throw foreignError(id);
  if (!rt.store.exists(id)) {
    rt.releaseNamespace(id);
    if (opts.force) {
      // A create killed before its state.json: what it recorded it would make goes too.
      const intent = rt.store.loadIntent(id);
      if (intent) {
        // Under the lock: a create still running holds it, and may have written its state by then.
        const created = await rt.store.withLock(id, async () => {
          if (rt.store.exists(id)) return true;
          await rt.cgroups.destroyIntent(intent);
          return false;
        });
        if (created) return deleteContainer(rt, id, opts);
      }
      rt.store.remove(id);
      return;
    }
    throw new HakoError(`container "${id}" does not exist`, { code: 'ENOENT' });
  }
  // --force first kills the init, outside the lock: an operation that holds the lock while it waits on the init
  // (a start whose init is stopped, frozen or stuck under its seccomp filter waits up to its control timeout)
  // then ends at once and lets go, so delete --force never waits on it.
  if (opts.force) killInit(rt, id);
  const deleting = rt.store.withLock(id, async () => {
    // The operation that held the lock may have removed the container (a create that failed).
    if (opts.force && !rt.store.exists(id)) {
      rt.releaseNamespace(id);
      return;
    }
    const s = rt.loadLive(id);
    // runtime-spec: deleting a container that is not stopped is an error and has no effect.
    if (s.status !== 'stopped' && !opts.force)
      throw new HakoError(`cannot delete container ${id} that is not stopped: ${s.status}`);
    trace('delete: locked');
    const stuck = s.status !== 'stopped' && !(await killAndWait(rt, s));
    // An init that is this process's own unreaped child (a library caller that never waited): reaped here, so a
    // long-lived process keeps no zombie and no pidfd for a deleted container. Whatever the status said: an init
    // that was alive when it was loaded may have died before killAndWait looked (which then has nothing to
    // kill and returns at once), and its Container's pidfd was kept for ever (fuzz seed 1, issue 14).
    if (!stuck) await Container.exitOf(s.pid!, KILL_WAIT_MS);
    trace('delete: killed');
    rt.releaseNamespace(id);
    try {
      await rt.cgroups.destroy(s);
    } catch (e) {
      // Only a process that outlived SIGKILL keeps its cgroups busy; --force still deletes the container.
      if (!stuck) throw e;
      rt.log.warn(`delete --force: ${(e as Error).message}`);
    }
    trace('delete: cgroups destroyed');
    rt.store.remove(id);
    trace('delete: state removed');
    rt.known.delete(id);
    if (s.config.hooks?.poststop?.length) {
      // runtime-spec: a failing poststop hook is a warning, and the remaining hooks still run.
      const state = publicState(s, 'stopped');
      for (const [i, h] of s.config.hooks.poststop.entries()) {
        try {
          await hooksModule().runHook(h, state, 'poststop', i);
        } catch (e) {
          rt.log.warn(`poststop hook failed: ${(e as Error).message}`);
        }
      }
    }
  });
  try {
    await deleting;
  } catch (e) {
    // A create the kill made fail removed the container's directory, lock included, while we waited for it.
    if (opts.force && (e as HakoError).code === 'ENOENT' && !rt.store.exists(id)) return;
    throw e;
  }
}

/** SIGKILL a container's init if it is still the one recorded (the pidfd pins it); a best effort, never a wait. */
function killInit(rt: RuntimeContext, id: string): void {
  let s: StoredState;
  try {
    s = rt.known.get(id) ?? rt.store.load(id);
  } catch {
    return; // no state (yet): nothing to kill
  }
  if (!s.pid || !isAlive(s.pid, s.pidStartTime)) return;
  try {
    killProcess(rt, s, 9);
  } catch {
    /* gone meanwhile */
  }
}

/**
 * SIGKILL the init (and its cgroup) and wait for the exit, KILL_WAIT_MS at most: a process someone froze in
 * a cgroup v1 freezer of their own cannot die until thawed, and delete --force must not hang on it (false).
 */
export async function killAndWait(rt: RuntimeContext, s: StoredState): Promise<boolean> {
  let pidfd: number;
  try {
    pidfd = addon().pidfdOpen(s.pid!);
  } catch {
    return true;
  }
  if (!isAlive(s.pid, s.pidStartTime)) {
    fs.closeSync(pidfd);
    return true;
  }
  rt.cgroups.killAll(s, 9);
  try {
    addon().pidfdSendSignal(pidfd, 9);
  } catch {
    /* exited meanwhile */
  }
  const exited = await new Promise<boolean>((resolve) => {
    let watch: number | undefined;
    const timer = setTimeout(() => {
      if (watch !== undefined) addon().unwatchExit(watch);
      resolve(false);
    }, KILL_WAIT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    // Never a second reaper: the exit status belongs to the init's Container, whose wait() must still see
    // the SIGKILL. Our own child: wait for that reaper (so no zombie and no pidfd outlive delete). Another
    // process's: watch the pidfd without reaping.
    const own = Container.exitOf(s.pid!);
    if (own) void own.then(done);
    else watch = addon().watchExit(pidfd, true, done, false);
  });
  fs.closeSync(pidfd);
  if (!exited)
    rt.log.warn(
      `delete --force: process ${s.pid} has not exited ${KILL_WAIT_MS} ms after SIGKILL (frozen outside the container's cgroup?); deleting the container anyway`,
    );
  return exited;
}
