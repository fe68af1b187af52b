// The transient scope through systemd's D-Bus API (org.freedesktop.systemd1.Manager, see
// org.freedesktop.systemd1(5)): StartTransientUnit, SetUnitProperties, StopUnit, ResetFailedUnit, and the
// JobRemoved signal that says when a start or stop job is over. One connection per operation: each CLI
// verb is its own process, and a connection costs a few milliseconds.

import * as fs from 'fs';
import { HakoError } from '../../errors';
import { Bus, DBusError, Variant, sessionBusAddress, systemBusAddress } from '../../dbus/bus';
import type { Message } from '../../dbus/marshal';
import type { Property } from './properties';

const SYSTEMD = {
  destination: 'org.freedesktop.systemd1',
  path: '/org/freedesktop/systemd1',
  interface: 'org.freedesktop.systemd1.Manager',
};
const FIELD = 'linux.cgroupsPath';
/** How long a start or stop job may take (an emulated machine is slow; systemd's own default is 90 s). */
const JOB_TIMEOUT_MS = 60_000;

/** sd_booted(): systemd as PID 1 makes this directory early at boot. */
export function requireSystemd(): void {
  if (!fs.existsSync('/run/systemd/system'))
    throw new HakoError(
      '--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the cgroupfs driver (omit the flag)',
      {
        field: '--systemd-cgroup',
        code: 'ENOSYSTEMD',
      },
    );
}

/** Connects to systemd on the system bus; errors say what is missing (systemd itself, or its bus). */
export async function connectSystemd(): Promise<Bus> {
  requireSystemd();
  const address = systemBusAddress();
  try {
    return await Bus.connect(address);
  } catch (e) {
    throw new HakoError(
      `--systemd-cgroup: cannot reach systemd over the D-Bus system bus (${address}): ${(e as Error).message}`,
      {
        field: '--systemd-cgroup',
        code: 'ENOSYSTEMD',
      },
    );
  }
}

/**
 * Connects to the user's own systemd (rootless, as runc): on the session bus, $DBUS_SESSION_BUS_ADDRESS or
 * $XDG_RUNTIME_DIR/bus (dbus-user-session's socket, which systemd --user runs).
 */
export async function connectUserSystemd(): Promise<Bus> {
  requireSystemd();
  try {
    return await Bus.connect(sessionBusAddress());
  } catch (e) {
    throw new HakoError(
      `--systemd-cgroup (rootless): cannot reach the user's systemd over the D-Bus session bus: ${(e as Error).message} (a user session with systemd --user and dbus-user-session; loginctl enable-linger keeps one)`,
      {
        field: '--systemd-cgroup',
        code: 'ENOSYSTEMD',
      },
    );
  }
}

/**
 * Collects JobRemoved signals from the moment it is made, so that a job that ends before its start call
 * returns is not missed (systemd sends the reply first, but both can be in one read).
 */
class JobWatch {
  private readonly done = new Map<string, string>();
  private readonly waiters = new Map<string, (result: string) => void>();
  private readonly off: () => void;

  private constructor(bus: Bus) {
    this.off = bus.onSignal((m: Message) => {
      if (m.interface !== SYSTEMD.interface || m.member !== 'JobRemoved') return;
      const [, job, , result] = m.body as [number, string, string, string];
      const w = this.waiters.get(job);
      if (w) w(result);
      else this.done.set(job, result);
    });
  }

  static async start(bus: Bus): Promise<JobWatch> {
    const watch = new JobWatch(bus);
    await bus.call({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: [
        `type='signal',sender='org.freedesktop.systemd1',interface='${SYSTEMD.interface}',member='JobRemoved',path='${SYSTEMD.path}'`,
      ],
    });
    // systemd sends its Manager signals only while some client is subscribed.
    await bus.call({ ...SYSTEMD, member: 'Subscribe' });
    return watch;
  }

  /** The job's result: "done", "failed", "canceled", "timeout", "dependency", "skipped". */
  wait(job: string, what: string): Promise<string> {
    const known = this.done.get(job);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(job);
        reject(
          new HakoError(`${what}: systemd did not finish the job ${job} within ${JOB_TIMEOUT_MS / 1000} s`, {
            field: FIELD,
            code: 'ETIMEDOUT',
          }),
        );
      }, JOB_TIMEOUT_MS);
      this.waiters.set(job, (result) => {
        clearTimeout(timer);
        this.waiters.delete(job);
        resolve(result);
      });
    });
  }

  close(): void {
    this.off();
  }
}

export interface ScopeRequest {
  unit: string;
  slice: string;
  description: string;
  pid: number;
  properties: Property[];
}

/**
 * StartTransientUnit of a scope holding pid, with Delegate=yes (the container may manage its own sub-cgroups,
 * and systemd leaves the scope's subtree alone). Resolves when the start job is done. A unit of that name
 * that already exists is an error naming linux.cgroupsPath and is left alone (it is not ours); a start job
 * that fails leaves nothing: the failed unit is reset.
 */
export async function startScope(bus: Bus, req: ScopeRequest): Promise<void> {
  const props: Property[] = [
    ['Description', new Variant('s', req.description)],
    ['Slice', new Variant('s', req.slice)],
    ['Delegate', new Variant('b', true)],
    ['PIDs', new Variant('au', [req.pid])],
    // Not ordered against shutdown.target and friends: the container's life is the runtime's business (runc).
    ['DefaultDependencies', new Variant('b', false)],
    ['MemoryAccounting', new Variant('b', true)],
    ['CPUAccounting', new Variant('b', true)],
    ['TasksAccounting', new Variant('b', true)],
    ...req.properties,
  ];
  const watch = await JobWatch.start(bus);
  try {
    let job: string;
    try {
      [job] = (await bus.call({
        ...SYSTEMD,
        member: 'StartTransientUnit',
        signature: 'ssa(sv)a(sa(sv))',
        body: [req.unit, 'fail', props, []],
      })) as [string];
    } catch (e) {
      throw startError(e, req);
    }
    const result = await watch.wait(job, `create: starting ${req.unit}`);
    if (result !== 'done') {
      await removeUnit(bus, req.unit);
      throw new HakoError(
        `${FIELD}: systemd could not start the scope ${req.unit} in ${req.slice} (job result "${result}"; see journalctl -u ${req.unit})`,
        {
          field: FIELD,
          code: 'ESYSTEMD',
        },
      );
    }
  } finally {
    watch.close();
  }
}

function startError(e: unknown, req: ScopeRequest): Error {
  if (!(e instanceof DBusError)) return e as Error;
  if (e.type === 'org.freedesktop.systemd1.UnitExists')
    return new HakoError(
      `${FIELD}: the systemd unit ${req.unit} already exists (another container, or one not deleted); choose another name or stop the unit`,
      {
        field: FIELD,
        code: 'EEXIST',
      },
    );
  if (
    e.type === 'org.freedesktop.DBus.Error.AccessDenied' ||
    e.type === 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired'
  )
    return new HakoError(`--systemd-cgroup: systemd refused to create ${req.unit}: ${e.message}`, {
      field: '--systemd-cgroup',
      code: 'EPERM',
    });
  // InvalidArgs and the like: systemd names what it did not like (a property, the slice, the unit name).
  return new HakoError(`${FIELD}: systemd refused the scope ${req.unit} in ${req.slice}: ${e.message} (${e.type})`, {
    field: FIELD,
    code: 'ESYSTEMD',
  });
}

/** SetUnitProperties (runtime, not persisted: the unit is transient anyway). */
export async function setScopeProperties(bus: Bus, unit: string, properties: Property[]): Promise<void> {
  if (properties.length === 0) return;
  try {
    await bus.call({ ...SYSTEMD, member: 'SetUnitProperties', signature: 'sba(sv)', body: [unit, true, properties] });
  } catch (e) {
    if (e instanceof DBusError && e.type === 'org.freedesktop.systemd1.NoSuchUnit')
      throw new HakoError(
        `update: the container's systemd scope ${unit} no longer exists (the container has stopped)`,
        { code: 'ESRCH' },
      );
    throw new HakoError(`update: systemd refused the properties of ${unit}: ${(e as Error).message}`, {
      code: 'ESYSTEMD',
    });
  }
}

/**
 * StopUnit, waiting for the job, then ResetFailedUnit: afterwards systemd has no trace of the scope. A unit
 * that is already gone is fine (a scope whose processes all ended is removed by systemd by itself).
 */
export async function stopScope(bus: Bus, unit: string): Promise<void> {
  const watch = await JobWatch.start(bus);
  try {
    let job: string | undefined;
    try {
      [job] = (await bus.call({ ...SYSTEMD, member: 'StopUnit', signature: 'ss', body: [unit, 'replace'] })) as [
        string,
      ];
    } catch (e) {
      if (!(e instanceof DBusError && e.type === 'org.freedesktop.systemd1.NoSuchUnit'))
        throw new HakoError(`delete: systemd could not stop ${unit}: ${(e as Error).message}`, { code: 'ESYSTEMD' });
    }
    if (job) await watch.wait(job, `delete: stopping ${unit}`);
  } finally {
    watch.close();
  }
  await resetFailed(bus, unit);
}

async function removeUnit(bus: Bus, unit: string): Promise<void> {
  try {
    await bus.call({ ...SYSTEMD, member: 'StopUnit', signature: 'ss', body: [unit, 'replace'] });
  } catch {
    /* not loaded, or already stopping */
  }
  await resetFailed(bus, unit);
}

async function resetFailed(bus: Bus, unit: string): Promise<void> {
  try {
    await bus.call({ ...SYSTEMD, member: 'ResetFailedUnit', signature: 's', body: [unit] });
  } catch {
    /* NoSuchUnit: nothing to reset */
  }
}
