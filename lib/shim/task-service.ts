// Over 400 lines because it is one service of 17 methods, each a short translation of a Task call to the library.
// containerd.task.v2.Task over the library: one Runtime (state root /run/containerd/hako/<namespace>), any
// number of containers (a group: the containers of one pod), each with its init and exec'd processes.
//
// Exits come from the library's Container.wait() (the shim's own children, reaped by pidfd: no SIGCHLD handler, no
// wait for any child). Per exit, in this order: the status is recorded (so State says STOPPED before Wait returns,
// which containerd's Delete requires), the init's exit SIGKILLs its execs (as runc's shim does), Wait callers are
// released, TaskExit is published (after TaskStart: an exit found during Start waits for Start's event).
import * as fs from 'fs';
import * as path from 'path';
import { Runtime, type Container } from '../runtime/runtime';
import { HakoError } from '../errors';
import type { LinuxResources, Process } from '../oci/types';
import * as M from './messages';
import { containerdMetrics } from './metrics';
import type { Publisher } from './publisher';
import { mountRootfs, unmountRootfs } from './rootfs';
import { OomWatch } from './oom';
import type { LoggerContext } from './logger';
import { ProcessIO, type StdioPaths } from './stdio';
import { stepTimer } from './step-timer';
import { Code, type Handler, RpcError } from './ttrpc';

export const SHIM_VERSION = 'hako-shim-v2 0.1.0';

/** Left in a bundle by a finished Delete (state removed, rootfs unmounted): the launcher's `delete` has nothing to do. */
export const DELETED_MARK = '.hako-deleted';

type ProcStatus = 'created' | 'running' | 'stopped';

class Proc {
  status: ProcStatus = 'created';
  pid = 0;
  exitStatus = 0;
  exitedAt?: Date;
  container?: Container;
  io?: ProcessIO;
  /** Resolves once the exit is recorded (Wait). */
  readonly exited: Promise<void>;
  private markExited!: () => void;
  /** Resolves once TaskStart / TaskExecStarted is published (or the start failed): TaskExit follows it. */
  readonly startPublished: Promise<void>;
  markStartPublished!: () => void;

  constructor(
    readonly execId: string,
    readonly paths: StdioPaths,
    readonly spec?: Process,
  ) {
    this.exited = new Promise((r) => (this.markExited = r));
    this.startPublished = new Promise((r) => (this.markStartPublished = r));
  }

  recordExit(status: number): void {
    if (this.status === 'stopped') return;
    this.status = 'stopped';
    this.exitStatus = status;
    this.exitedAt = new Date();
    this.markExited();
  }
}

class Task {
  readonly execs = new Map<string, Proc>();
  paused = false;
  oom?: OomWatch;
  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly rootfs: M.Mount[],
    readonly init: Proc,
  ) {}
}

/** process.terminal of the bundle's config.json (the runtime reads the rest). */
function readSpecTerminal(bundle: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(path.join(bundle, 'config.json'), 'utf8');
  } catch {
    throw new RpcError(Code.InvalidArgument, `create: ${bundle}/config.json does not exist`);
  }
  try {
    return (JSON.parse(text) as { process?: { terminal?: unknown } }).process?.terminal === true;
  } catch (e) {
    throw new RpcError(Code.InvalidArgument, `create: ${bundle}/config.json: ${(e as Error).message}`);
  }
}

/** A library error as a gRPC status containerd understands (errdefs/grpc.go). */
function toRpc(e: unknown): unknown {
  if (e instanceof RpcError) return e;
  if (e instanceof HakoError) {
    if (e.code === 'ENOENT' || e.code === 'ESRCH') return new RpcError(Code.NotFound, e.message);
    if (e.code === 'EEXIST') return new RpcError(Code.AlreadyExists, e.message);
    if (e.field) return new RpcError(Code.InvalidArgument, e.message);
  }
  return e;
}

export interface ServiceOptions {
  namespace: string;
  runtimeRoot: string;
  publisher: Publisher;
  log: (m: string) => void;
  /** How long a binary:// logger has to signal ready before Create fails (default 10 s). */
  loggerReadyTimeoutMs?: number;
  /** Called when Shutdown finds no container left: the server closes and the process leaves. */
  onShutdown: () => void;
  /** Called after a container's Start (not an exec's) answered. */
  onContainerStarted?: () => void;
  /** -debug: log the steps of Create, Start and Delete (lib/shim/step-timer.ts). */
  debug?: boolean;
}

export class TaskService {
  readonly runtime: Runtime;
  private readonly tasks = new Map<string, Task>();

  constructor(private readonly opts: ServiceOptions) {
    this.runtime = new Runtime({ root: opts.runtimeRoot });
  }

  get size(): number {
    return this.tasks.size;
  }

  /** The handlers, by method name; each maps library errors to gRPC statuses. */
  handlers(): Map<string, Handler> {
    const h = new Map<string, Handler>();
    const add = (name: string, fn: (b: Buffer) => Promise<Buffer> | Buffer) =>
      h.set(name, async (b) => {
        try {
          return await fn(b);
        } catch (e) {
          throw toRpc(e);
        }
      });
    add('Create', (b) => this.create(M.decodeCreate(b)));
    add('Start', (b) => this.start(M.decodeIdExec(b)));
    add('Delete', (b) => this.delete(M.decodeIdExec(b)));
    add('Exec', (b) => this.exec(M.decodeExec(b)));
    add('ResizePty', (b) => this.resizePty(M.decodeResize(b)));
    add('CloseIO', (b) => this.closeIO(M.decodeCloseIO(b)));
    add('State', (b) => this.state(M.decodeIdExec(b)));
    add('Pids', (b) => this.pids(M.decodeIdExec(b).id));
    add('Pause', (b) => this.pause(M.decodeIdExec(b).id));
    add('Resume', (b) => this.resume(M.decodeIdExec(b).id));
    add('Kill', (b) => this.kill(M.decodeKill(b)));
    add('Update', (b) => this.update(M.decodeUpdate(b)));
    add('Wait', (b) => this.wait(M.decodeIdExec(b)));
    add('Stats', (b) => this.stats(M.decodeIdExec(b).id));
    add('Connect', (b) => this.connect(M.decodeIdExec(b).id));
    add('Shutdown', (b) => this.shutdown(M.decodeShutdown(b)));
    add('Checkpoint', () => {
      throw new RpcError(Code.Unimplemented, 'checkpoint is not supported by the hako shim');
    });
    return h;
  }

  private steps(what: string) {
    return stepTimer(what, this.opts.debug ? this.opts.log : undefined);
  }

  private loggerContext(id: string): LoggerContext {
    return { id, namespace: this.opts.namespace, readyTimeoutMs: this.opts.loggerReadyTimeoutMs ?? 10_000 };
  }

  private task(id: string): Task {
    const t = this.tasks.get(id);
    if (!t) throw new RpcError(Code.NotFound, `container ${JSON.stringify(id)}: not found`);
    return t;
  }

  private proc(id: string, execId: string): { t: Task; p: Proc } {
    const t = this.task(id);
    if (!execId) return { t, p: t.init };
    const p = t.execs.get(execId);
    if (!p) throw new RpcError(Code.NotFound, `process ${JSON.stringify(execId)} of container ${id}: not found`);
    return { t, p };
  }

  private async create(r: M.CreateTaskRequest): Promise<Buffer> {
    if (!r.id) throw new RpcError(Code.InvalidArgument, 'create: id is empty');
    if (this.tasks.has(r.id)) throw new RpcError(Code.AlreadyExists, `container ${r.id}: already exists`);
    if (r.checkpoint)
      throw new RpcError(Code.Unimplemented, 'create from a checkpoint is not supported by the hako shim');
    // containerd makes <state>/io.containerd.runtime.v2.task/<namespace>/<id>, with config.json in it.
    const bundle = r.bundle;
    if (
      !path.isAbsolute(bundle) ||
      path.basename(bundle) !== r.id ||
      path.basename(path.dirname(bundle)) !== this.opts.namespace
    )
      throw new RpcError(
        Code.InvalidArgument,
        `create: bundle ${JSON.stringify(bundle)} is not containerd's bundle of ${r.id} in namespace ${this.opts.namespace}`,
      );
    if (!fs.existsSync(path.join(bundle, 'config.json')))
      throw new RpcError(Code.InvalidArgument, `create: ${bundle}/config.json does not exist`);
    fs.rmSync(path.join(bundle, DELETED_MARK), { force: true });
    const specTerminal = readSpecTerminal(bundle);
    // A mismatch would leave the process without the stdio it was given: with terminal set and none in the spec,
    // the runtime would hand it the shim's own fds 0-2 (its stderr is containerd's log). runc refuses it too.
    if (specTerminal !== r.terminal)
      throw new RpcError(
        Code.InvalidArgument,
        `create: terminal is ${r.terminal} but process.terminal in ${bundle}/config.json is ${specTerminal}`,
      );
    const init = new Proc('', { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal });
    const t = new Task(r.id, bundle, r.rootfs, init);
    this.tasks.set(r.id, t); // reserved: a second Create of this id is AlreadyExists
    let mounted = false;
    const steps = this.steps(`Create ${r.id}`);
    try {
      await mountRootfs(bundle, r.rootfs);
      mounted = r.rootfs.length > 0;
      steps.lap('rootfs');
      init.io = await ProcessIO.open(init.paths, this.loggerContext(r.id));
      const io = init.io;
      steps.lap('io');
      const c = await this.runtime.create(r.id, {
        bundle,
        stdio: r.terminal ? undefined : io.childFds,
        onConsole: r.terminal ? io.attachConsole : undefined,
      });
      io.closeChildEnds();
      steps.lap('library create');
      init.container = c;
      init.pid = c.pid;
      try {
        t.oom = new OomWatch(this.runtime.cgroupManager(r.id), () => this.opts.publisher.publish(M.taskOOM(r.id)));
      } catch (e) {
        this.opts.log(`oom watch of ${r.id}: ${(e as Error).message}`);
      }
      this.watchExit(t, init);
      steps.lap('oom watch');
    } catch (e) {
      this.tasks.delete(r.id);
      await init.io?.stop(true);
      await this.runtime.delete(r.id, { force: true }).catch(() => {});
      if (mounted) await unmountRootfs(bundle).catch(() => {});
      throw e;
    }
    this.opts.publisher.publish(M.taskCreate({ id: r.id, bundle, rootfs: r.rootfs, ...init.paths, pid: init.pid }));
    steps.lap('event');
    steps.end();
    return M.pidResponse(init.pid);
  }

  /** Follow a process to its exit (see the file's comment for the order of what happens then). */
  private watchExit(t: Task, p: Proc): void {
    void p.container!.wait().then(async (s) => {
      p.recordExit(s.status);
      if (p === t.init) {
        t.oom?.stop();
        t.oom = undefined;
        for (const e of t.execs.values())
          if (e.status === 'running')
            try {
              e.container?.signal(9);
            } catch {
              /* gone */
            }
      }
      await p.io?.finish();
      await p.startPublished;
      this.opts.publisher.publish(M.taskExit(t.id, p.execId || t.id, p.pid, s.status, p.exitedAt!));
    });
  }

  private async start(r: { id: string; execId: string }): Promise<Buffer> {
    const { t, p } = this.proc(r.id, r.execId);
    if (p.status !== 'created' || (r.execId && p.container))
      throw new RpcError(Code.FailedPrecondition, `process ${r.execId || r.id}: already started`);
    if (!r.execId) {
      const steps = this.steps(`Start ${r.id}`);
      try {
        await this.runtime.start(r.id);
      } catch (e) {
        p.markStartPublished();
        throw e;
      }
      steps.lap('library start');
      p.status = p.status === 'created' ? 'running' : p.status;
      this.opts.publisher.publish(M.taskStart(r.id, p.pid));
      p.markStartPublished();
      steps.lap('event');
      steps.end();
      this.opts.onContainerStarted?.();
      return M.pidResponse(p.pid);
    }
    if (t.init.status !== 'running') throw new RpcError(Code.FailedPrecondition, `container ${r.id} is not running`);
    try {
      p.io = await ProcessIO.open(p.paths, this.loggerContext(r.execId));
      const c = await this.runtime.exec(r.id, p.spec!, {
        stdio: p.paths.terminal ? undefined : p.io.childFds,
        onConsole: p.paths.terminal ? p.io.attachConsole : undefined,
        ignorePaused: true,
      });
      p.io.closeChildEnds();
      p.container = c;
      p.pid = c.pid;
      p.status = 'running';
    } catch (e) {
      await p.io?.stop(true);
      p.markStartPublished();
      throw e;
    }
    this.watchExit(t, p);
    this.opts.publisher.publish(M.taskExecStarted(r.id, r.execId, p.pid));
    p.markStartPublished();
    return M.pidResponse(p.pid);
  }

  private async delete(r: { id: string; execId: string }): Promise<Buffer> {
    const { t, p } = this.proc(r.id, r.execId);
    if (r.execId) {
      if (p.status === 'running')
        throw new RpcError(Code.FailedPrecondition, `cannot delete running process ${r.execId}`);
      t.execs.delete(r.execId);
      p.recordExit(p.exitStatus); // a never-started exec: release its waiters
      p.markStartPublished();
      await p.io?.stop();
      return M.deleteResponse(p.pid, p.exitStatus, p.exitedAt);
    }
    if (p.status === 'running') throw new RpcError(Code.FailedPrecondition, `cannot delete running container ${r.id}`);
    // A created but never started container: its init helper still waits, and goes with --force.
    const steps = this.steps(`Delete ${r.id}`);
    await this.runtime.delete(r.id, { force: true });
    steps.lap('library delete');
    if (p.status === 'created') p.recordExit(0);
    p.markStartPublished();
    // Loggers are reaped before the answer: nothing of the container remains once Delete returns.
    await Promise.all([...t.execs.values(), p].map((e) => e.io?.stop() ?? Promise.resolve()));
    t.oom?.stop();
    t.oom = undefined;
    steps.lap('io and oom watch closed');
    await unmountRootfs(t.bundle);
    // For the launcher's routine `delete` (bin/containerd-shim-hako-v2): nothing is left to clean in this bundle.
    try {
      fs.writeFileSync(path.join(t.bundle, DELETED_MARK), '');
    } catch {
      /* no bundle: the launcher checks the mounts itself */
    }
    steps.lap('unmount');
    this.tasks.delete(r.id);
    this.opts.publisher.publish(M.taskDelete(r.id, p.pid, p.exitStatus, p.exitedAt));
    steps.lap('event');
    steps.end();
    return M.deleteResponse(p.pid, p.exitStatus, p.exitedAt);
  }

  private exec(r: M.ExecRequest): Buffer {
    const t = this.task(r.id);
    if (!r.execId) throw new RpcError(Code.InvalidArgument, 'exec: exec_id is empty');
    if (t.execs.has(r.execId)) throw new RpcError(Code.AlreadyExists, `exec ${r.execId}: already exists`);
    if (t.init.status !== 'running') throw new RpcError(Code.FailedPrecondition, `container ${r.id} is not running`);
    let spec: Process;
    try {
      spec = JSON.parse((r.spec?.value ?? Buffer.alloc(0)).toString('utf8')) as Process;
    } catch (e) {
      throw new RpcError(Code.InvalidArgument, `exec: the process spec is not JSON: ${(e as Error).message}`);
    }
    if (!spec || typeof spec !== 'object' || !Array.isArray(spec.args))
      throw new RpcError(Code.InvalidArgument, 'exec: the process spec has no args');
    spec.terminal = r.terminal;
    t.execs.set(
      r.execId,
      new Proc(r.execId, { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal }, spec),
    );
    this.opts.publisher.publish(M.taskExecAdded(r.id, r.execId));
    return M.empty();
  }

  private resizePty(r: { id: string; execId: string; width: number; height: number }): Buffer {
    const { p } = this.proc(r.id, r.execId);
    p.io?.resize(r.width, r.height);
    return M.empty();
  }

  private closeIO(r: { id: string; execId: string; stdin: boolean }): Buffer {
    const { p } = this.proc(r.id, r.execId);
    if (r.stdin) p.io?.closeStdin();
    return M.empty();
  }

  private state(r: { id: string; execId: string }): Buffer {
    const { t, p } = this.proc(r.id, r.execId);
    let status: number =
      p.status === 'created' ? M.Status.CREATED : p.status === 'running' ? M.Status.RUNNING : M.Status.STOPPED;
    if (status === M.Status.RUNNING && t.paused) status = M.Status.PAUSED;
    return M.stateResponse({
      id: r.execId || r.id,
      bundle: t.bundle,
      pid: p.pid,
      status,
      ...p.paths,
      exitStatus: p.exitStatus,
      exitedAt: p.exitedAt,
      execId: r.execId,
    });
  }

  private async pids(id: string): Promise<Buffer> {
    const t = this.task(id);
    const byPid = new Map<number, string>();
    for (const [execId, e] of t.execs) if (e.pid) byPid.set(e.pid, execId);
    const pids = t.init.status === 'stopped' ? [] : await this.runtime.ps(id);
    return M.pidsResponse(pids.map((pid) => ({ pid, execId: byPid.get(pid) })));
  }

  private async pause(id: string): Promise<Buffer> {
    const t = this.task(id);
    await this.runtime.pause(id);
    t.paused = true;
    this.opts.publisher.publish(M.taskPaused(id));
    return M.empty();
  }

  private async resume(id: string): Promise<Buffer> {
    const t = this.task(id);
    await this.runtime.resume(id);
    t.paused = false;
    this.opts.publisher.publish(M.taskResumed(id));
    return M.empty();
  }

  private async kill(r: { id: string; execId: string; signal: number; all: boolean }): Promise<Buffer> {
    const { t, p } = this.proc(r.id, r.execId);
    // A process that has exited: NotFound, which containerd's WithProcessKill takes as success.
    if (p.status === 'stopped') throw new RpcError(Code.NotFound, `process ${r.execId || r.id}: already exited`);
    if (r.execId) {
      if (!p.container) throw new RpcError(Code.FailedPrecondition, `process ${r.execId}: not started`);
      p.container.signal(r.signal);
      return M.empty();
    }
    await this.runtime.kill(r.id, r.signal, { all: r.all });
    // SIGKILL waits in a frozen cgroup: the library thaws it; the task is no longer paused.
    if (r.signal === 9) t.paused = false;
    return M.empty();
  }

  private async update(r: { id: string; resources?: { typeUrl: string; value: Buffer } }): Promise<Buffer> {
    this.task(r.id);
    let res: LinuxResources;
    try {
      res = JSON.parse((r.resources?.value ?? Buffer.from('{}')).toString('utf8')) as LinuxResources;
    } catch (e) {
      throw new RpcError(Code.InvalidArgument, `update: resources are not JSON: ${(e as Error).message}`);
    }
    await this.runtime.update(r.id, res);
    return M.empty();
  }

  private async wait(r: { id: string; execId: string }): Promise<Buffer> {
    const { p } = this.proc(r.id, r.execId);
    await p.exited;
    return M.waitResponse(p.exitStatus, p.exitedAt!);
  }

  private stats(id: string): Buffer {
    const t = this.task(id);
    if (t.init.status === 'stopped') throw new RpcError(Code.NotFound, `container ${id}: not running`);
    return M.statsResponse(containerdMetrics(this.runtime.cgroupManager(id)));
  }

  private connect(id: string): Buffer {
    // An unknown id is no error: containerd probes the shim's liveness with it (task_pid 0).
    return M.connectResponse(process.pid, this.tasks.get(id)?.init.pid ?? 0, SHIM_VERSION);
  }

  private shutdown(r: { id: string; now: boolean }): Buffer {
    // Sent after every task Delete: the shim stays while any container of its group remains.
    if (this.tasks.size > 0 && !r.now) return M.empty();
    setImmediate(() => this.opts.onShutdown());
    return M.empty();
  }
}
