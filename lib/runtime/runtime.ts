// The Runtime: the OCI lifecycle (create, start, state, kill, delete) plus run, list and setup, on
// the state root. The CLI is a thin layer over this class; a Node device agent uses it in-process.
// A facade: each concern lives in its own module (create, launch, exec, teardown, cgroup-ops, query),
// and they share this instance's RuntimeContext.
import type { LinuxResources, Process, State } from '../oci/types';
import type { StateStore } from '../state/store';
import type { Logger } from '../log';
import * as cgroupOps from './cgroup-ops';
import { type Container, existingContainer } from './container';
import { RuntimeContext } from './context';
import { create } from './create';
import { exec } from './exec';
import { setup, start } from './launch';
import type { CreateOptions, ExecOptions, RuntimeOptions, SetupOptions } from './options';
import { list, state } from './query';
import { deleteContainer, kill } from './teardown';

export { Container } from './container';
export { parseSched, seccompRefusesExec } from './launch';
export type { CreateOptions, ExecOptions, ExitStatus, RuntimeOptions, SetupOptions } from './options';

export class Runtime {
  readonly store: StateStore;
  readonly log: Logger;
  private readonly rt: RuntimeContext;

  constructor(opts: RuntimeOptions = {}) {
    this.rt = new RuntimeContext(opts);
    this.store = this.rt.store;
    this.log = this.rt.log;
  }

  /** Create a container from a bundle: configured, waiting for start in its init helper. */
  create(id: string, opts: CreateOptions): Promise<Container> {
    return create(this.rt, id, opts);
  }

  state(id: string): Promise<State> {
    return state(this.rt, id);
  }

  list(): Promise<State[]> {
    return list(this.rt);
  }

  /** Start a created container's configured process. */
  start(id: string): Promise<void> {
    return start(this.rt, id);
  }

  /**
   * Fast start: run `proc` (a runtime-spec process object) in a created container whose whole
   * configuration is already applied. The container keeps waiting if the process is refused.
   */
  setup(id: string, proc: Process, opts: SetupOptions = {}): Promise<void> {
    return setup(this.rt, id, proc, opts);
  }

  /** create + start. The returned container's wait() gives the exit status. */
  async run(id: string, opts: CreateOptions): Promise<Container> {
    const c = await this.create(id, opts);
    try {
      await this.start(id);
    } catch (e) {
      await this.delete(id, { force: true }).catch(() => {});
      throw e;
    }
    return c;
  }

  kill(id: string, signal: string | number = 'TERM', opts: { all?: boolean } = {}): Promise<void> {
    return kill(this.rt, id, signal, opts);
  }

  /** Delete a container; `force` kills it first. A missing container is fine with `force`. */
  delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    return deleteContainer(this.rt, id, opts);
  }

  /**
   * Run an additional process in a running container: it joins every namespace and the cgroup of the
   * container (a native child does the setns) and gets the container's seccomp filter.
   */
  exec(id: string, proc: Process, opts: ExecOptions = {}): Promise<Container> {
    return exec(this.rt, id, proc, opts);
  }

  /** Freeze every process of the container (cgroup freezer). */
  pause(id: string): Promise<void> {
    return cgroupOps.pause(this.rt, id);
  }

  resume(id: string): Promise<void> {
    return cgroupOps.resume(this.rt, id);
  }

  /** Host pids of every process in the container's cgroup. */
  ps(id: string): Promise<number[]> {
    return cgroupOps.ps(this.rt, id);
  }

  /** Change the container's resources (linux.resources shape; unset fields stay as they are). */
  update(id: string, resources: LinuxResources): Promise<void> {
    return cgroupOps.update(this.rt, id, resources);
  }

  /** The cgroup manager of a container (stats, OOM counters) for `events`. */
  cgroupManager(id: string) {
    return cgroupOps.cgroupManager(this.rt, id);
  }

  /** A handle on an existing container (not created by this process: no exit status). */
  container(id: string): Container {
    return existingContainer(this.rt, id);
  }
}
