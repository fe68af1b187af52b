// Cgroups in the lifecycle: one manager per container, built from the host layout and the state.
import * as fs from 'fs';
import * as path from 'path';
import { detectCgroupLayout, type CgroupLayout } from '../cgroups/layout';
import { createCgroupManager } from '../cgroups/create';
import type { CgroupManager } from '../cgroups/types';
import type { Logger } from '../log';
import { addon } from '../native/addon';
import type { LinuxResources, Spec } from '../oci/types';
import type { CreateIntent, StoredState } from '../state/store';
import { HakoError } from '../errors';
import { isHostRoot } from './privilege';
import { type CgroupHost, type PreparedCgroup, deviceRules, missingDirs, mountSourceOf } from './cgroup-parts';

export { type PreparedCgroup, deviceRules, missingDirs, mountSourceOf } from './cgroup-parts';

/** The systemd driver's glue, loaded only when a container uses it (it brings the D-Bus client). */
const systemdModule = (): typeof import('./systemd-cgroup') => require('./systemd-cgroup');
/** A container of the systemd driver: its state's cgroupsPath is "slice:prefix:name" (refused by cgroupfs). */
const SYSTEMD_STATE = /^[^/:]*:[^/:]*:[^/:]+$/;
const isSystemd = (cgroupPath: string | undefined): boolean => SYSTEMD_STATE.test(cgroupPath ?? '');

/** Whether resources ask for any limit (device rules, which every container has, do not count). */
export function requestsLimits(resources?: LinuxResources): boolean {
  return Object.entries(resources ?? {}).some(
    ([k, v]) =>
      k !== 'devices' && v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0),
  );
}

/**
 * The files the init writes "0" to, to join its cgroups. v1 `tasks` moves the calling thread without the
 * kernel's global threadgroup lock, whose first writer waits for an RCU grace period (~15 ms here); the
 * init is single-threaded, so its thread is the whole process. cgroup2 only has cgroup.procs.
 */
export function procsFiles(manager: CgroupManager): string[] {
  // A hybrid host's cgroup2 side is joined too, as runc does, though it costs that grace period: the
  // container's processes must be where its cgroup2 directory (and the cgroup2 mount the container sees)
  // says, for whatever attributes processes through cgroup2 (systemd, for one). create.ts mostly has the runtime
  // join it for the init, beside the init's work (hybridV2Procs below).
  return procsFilesOf(manager.paths());
}

/**
 * On a hybrid host, the container's cgroup2 cgroup.procs. Its write waits for that RCU grace period every time
 * (6-10 ms measured here: containers are created too far apart for the kernel's fast path to hold), and that
 * side carries no controller, only the membership: create.ts has the runtime join it for the init, on a libuv
 * thread, while the init sets the container up, instead of the init waiting for it first.
 */
export function hybridV2Procs(layout: CgroupLayout, manager: CgroupManager): string | undefined {
  const dir = layout.mode === 'hybrid' ? manager.paths()[''] : undefined;
  return dir && fs.existsSync(path.join(dir, 'cgroup.procs')) ? path.join(dir, 'cgroup.procs') : undefined;
}

/** procsFiles for explicit directories (keys as manager.paths()). */
export function procsFilesOf(dirs: Record<string, string>): string[] {
  return Object.values(dirs)
    .filter((d, i, all) => all.indexOf(d) === i && fs.existsSync(d))
    .map((d) => path.join(d, fs.existsSync(path.join(d, 'tasks')) ? 'tasks' : 'cgroup.procs'));
}

/**
 * runc 1.1's `exec --cgroup`: the container's cgroup directories with the requested sub-cgroups put in. With
 * the "" key every hierarchy gets the same sub-path, else only the named controllers do (the others keep the
 * container's own cgroup). The sub-cgroups must exist (runc fails writing the pid into a missing one): checked
 * here, before anything starts.
 */
export function subCgroupDirs(paths: Record<string, string>, sub: Record<string, string>): Record<string, string> {
  const out = { ...paths };
  const under = (base: string, add: string): string => {
    const dir = path.join(base, add);
    if (dir !== base && !dir.startsWith(base + '/'))
      throw new HakoError(`--cgroup: ${add} is not a sub cgroup path`, { field: '--cgroup' });
    return dir;
  };
  if (sub[''] !== undefined) {
    for (const k of Object.keys(out)) out[k] = under(out[k], sub['']);
  } else {
    for (const [ctrl, add] of Object.entries(sub)) {
      if (paths[ctrl] === undefined) throw new HakoError(`--cgroup: unknown controller ${ctrl}`, { field: '--cgroup' });
      // Co-mounted controllers (cpu,cpuacct) share one directory: they move together, or the join into the
      // other name's directory would take the process back out.
      for (const k of Object.keys(paths)) if (paths[k] === paths[ctrl]) out[k] = under(paths[k], add);
    }
  }
  for (const [ctrl, dir] of Object.entries(out)) {
    if (dir !== paths[ctrl] && !fs.existsSync(dir)) {
      throw new HakoError(`--cgroup: the sub-cgroup ${dir} does not exist (exec joins an existing one)`, {
        field: '--cgroup',
        code: 'ENOENT',
      });
    }
  }
  return out;
}

/**
 * How many processes are already in the cgroup, counted as runc does: in one hierarchy (devices on v1, else
 * the first existing one), its sub-cgroups included.
 */
export function processesIn(dirs: Record<string, string>): number {
  const dir = [dirs.devices, ...Object.values(dirs)].find((d) => d && fs.existsSync(d));
  if (!dir) return 0;
  let n = 0;
  const walk = (d: string, depth: number): void => {
    try {
      n += fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length;
      if (depth < 16)
        for (const e of fs.readdirSync(d, { withFileTypes: true }))
          if (e.isDirectory()) walk(path.join(d, e.name), depth + 1);
    } catch {
      /* removed meanwhile */
    }
  };
  walk(dir, 0);
  return n;
}

/** Write pid into each directory's cgroup.procs (when the init cannot join by itself). */
export function joinDirs(dirs: Record<string, string>, pid: number): void {
  for (const d of new Set(Object.values(dirs))) fs.writeFileSync(path.join(d, 'cgroup.procs'), String(pid));
}

/** The init can join its cgroups itself when the runtime is root of the host and makes no user namespace. */
export function initJoinsCgroups(userns: boolean): boolean {
  return !userns && isHostRoot();
}

export class CgroupSupport implements CgroupHost {
  private layoutCache?: CgroupLayout;

  /** rootless: cgroup permission errors are warnings (runc's --rootless); undefined: unless host root. */
  constructor(
    readonly log: Logger,
    private readonly rootless?: boolean,
    /** --systemd-cgroup: new containers get a transient systemd scope (the other verbs go by the state). */
    private readonly systemd = false,
  ) {}

  layout(): CgroupLayout {
    return (this.layoutCache ??= detectCgroupLayout());
  }

  manager(
    s: Pick<StoredState, 'id' | 'cgroupPath' | 'cgroupCreated' | 'cgroupDirs'> & { config?: Spec },
  ): CgroupManager {
    // Directories resolved at create are reused: a relative path resolved again from another caller's own
    // cgroup would name a different directory.
    const dirs = s.cgroupDirs;
    return createCgroupManager({
      layout: this.layout(),
      path: s.cgroupPath,
      id: s.id,
      paths: dirs
        ? {
            inner: s.cgroupPath || s.id,
            v1: new Map(Object.entries(dirs).filter(([k]) => k !== '')),
            unified: dirs[''],
          }
        : undefined,
      rootless: this.rootless ?? !isHostRoot(),
      limitsRequested: s.config ? requestsLimits(s.config.linux?.resources) : undefined,
      log: this.log,
      created: s.cgroupCreated,
      attachDeviceFilter: addon().attachDeviceFilter,
    });
  }

  /**
   * Create the container's cgroups and apply its resources, before the init joins them. `record` is called
   * first with what is about to be made (the state directory's intent file), so that a runtime killed in the
   * middle leaves something `delete --force` can find.
   */
  prepare(id: string, spec: Spec, record?: (intent: Omit<CreateIntent, 'runtime'>) => void): PreparedCgroup {
    if (this.systemd) return systemdModule().prepareScope(this, id, spec, record);
    const cgroupPath = spec.linux?.cgroupsPath ?? '';
    const manager = this.manager({ id, cgroupPath, config: spec });
    const cgroupDirs = manager.paths();
    refuseFrozen(cgroupDirs);
    const busy = processesIn(cgroupDirs);
    // runc 1.1 warns too (and 1.2 refuses): the container would share its limits and its kill --all with them.
    if (busy) this.log.warn(`container's cgroup is not empty: ${busy} process(es) found`);
    const cgroupCreated = missingDirs(Object.values(cgroupDirs));
    record?.({ id, cgroupPath, cgroupDirs, cgroupCreated });
    let created: string[];
    try {
      created = manager.create();
      manager.apply({ ...(spec.linux?.resources ?? {}), devices: deviceRules(spec) });
    } catch (e) {
      // A mkdir -p that failed half-way reports nothing it made: remove what was missing before instead.
      try {
        this.manager({ id, cgroupPath, cgroupDirs, cgroupCreated }).destroy();
      } catch (ce) {
        this.log.warn(`cleanup after failed create: ${(ce as Error).message}`);
      }
      throw e;
    }
    const layout = this.layout();
    return {
      path: cgroupPath,
      created,
      manager,
      addProcess: (pid) => manager.addProcess(pid),
      procsFiles: () => procsFiles(manager),
      hybridV2Procs: () => hybridV2Procs(layout, manager),
      destroy: () => manager.destroy(),
      mountSource: () => mountSourceOf(layout, manager),
    };
  }

  /** update: the systemd driver sets the scope's properties too, then both write the files. */
  async apply(s: StoredState, resources: LinuxResources): Promise<void> {
    if (isSystemd(s.cgroupPath)) return systemdModule().updateScope(this, s, resources);
    this.manager(s).apply(resources);
  }

  killAll(s: StoredState, sig: number): void {
    try {
      this.manager(s).killAll(sig);
    } catch (e) {
      this.log.warn(`kill --all: ${(e as Error).message}`);
    }
  }

  destroy(s: StoredState): void | Promise<void> {
    if (isSystemd(s.cgroupPath)) return systemdModule().destroyScope(this, s);
    this.manager(s).destroy();
  }

  /** After a create killed before its state.json: kill whatever joined the cgroups, then remove them. */
  destroyIntent(intent: CreateIntent): void | Promise<void> {
    if (isSystemd(intent.cgroupPath)) return systemdModule().destroyScope(this, intent, true);
    const m = this.manager({
      id: intent.id,
      cgroupPath: intent.cgroupPath,
      cgroupDirs: intent.cgroupDirs,
      cgroupCreated: intent.cgroupCreated,
    });
    if (m.exists()) {
      try {
        m.killAll(9);
      } catch (e) {
        this.log.debug(`delete --force: kill the processes of ${intent.id}'s cgroup: ${(e as Error).message}`);
      }
    }
    m.destroy();
  }
}

/**
 * Refuse a target cgroup that is frozen, or would be born frozen under a frozen parent: the init would join it
 * and stop in the kernel's freezer (state D) with the runtime waiting for it forever. runc fails here too.
 * The nearest existing directory decides: v1 freezer.state, cgroup2 cgroup.freeze and the frozen of
 * cgroup.events (a hybrid host's cgroup2 side freezes the processes as well).
 */
function refuseFrozen(dirs: Record<string, string>): void {
  const nearest = (dir: string): string => {
    let d = dir;
    while (d !== '/' && !fs.existsSync(d)) d = path.dirname(d);
    return d;
  };
  const read = (file: string): string | undefined => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const refuse = (dir: string, why: string) =>
    new HakoError(
      `linux.cgroupsPath: the cgroup ${dir} is frozen (${why}); the container's processes would hang in it: thaw it first`,
      {
        field: 'linux.cgroupsPath',
        code: 'EFROZEN',
      },
    );
  for (const [controller, dir] of Object.entries(dirs)) {
    if (controller === 'freezer') {
      const d = nearest(dir);
      const state = read(path.join(d, 'freezer.state'));
      if (state === 'FROZEN' || state === 'FREEZING') throw refuse(d, `freezer.state ${state}`);
    } else if (controller === '') {
      const d = nearest(dir);
      if (read(path.join(d, 'cgroup.freeze')) === '1') throw refuse(d, 'cgroup.freeze 1');
      if (/^frozen 1$/m.test(read(path.join(d, 'cgroup.events')) ?? '')) throw refuse(d, 'cgroup.events: frozen 1');
    }
  }
}
