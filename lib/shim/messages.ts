// The containerd task API messages the shim speaks, on lib/shim/proto.ts. Field numbers are those of
// containerd's interface definitions (Apache-2.0, containerd 1.6.20 / 1.7 `api/`): runtime/task/v2/shim.proto
// (service containerd.task.v2.Task), types/mount.proto, types/task/task.proto (Status), events/task.proto,
// services/ttrpc/events/v1/events.proto. Empty exec_id = the container's init.
import { type AnyMsg, anyWriter, decodeAny, Fields, timestampWriter, Writer } from './proto';

export const TASK_SERVICE = 'containerd.task.v2.Task';
export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';

/** containerd.v1.types.Status */
export const Status = { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 } as const;

export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

function decodeMount(b: Buffer): Mount {
  const f = new Fields(b);
  return {
    type: f.string(1),
    source: f.string(2),
    target: f.string(3),
    options: f.repeatedBytes(4).map((x) => x.toString('utf8')),
  };
}

function mountWriter(m: Mount): Writer {
  const w = new Writer().string(1, m.type).string(2, m.source).string(3, m.target);
  for (const o of m.options) w.string(4, o);
  return w;
}

export interface CreateTaskRequest {
  id: string;
  bundle: string;
  rootfs: Mount[];
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  checkpoint: string;
  options?: AnyMsg;
}

export function decodeCreate(b: Buffer): CreateTaskRequest {
  const f = new Fields(b);
  return {
    id: f.string(1),
    bundle: f.string(2),
    rootfs: f.repeatedBytes(3).map(decodeMount),
    terminal: f.bool(4),
    stdin: f.string(5),
    stdout: f.string(6),
    stderr: f.string(7),
    checkpoint: f.string(8),
    options: decodeAny(f.bytes(10)),
  };
}

/** Requests that carry {id = 1, exec_id = 2} (Start, Delete, State, Wait) or only id (Pids, Pause, Resume, Stats, Connect). */
export function decodeIdExec(b: Buffer): { id: string; execId: string } {
  const f = new Fields(b);
  return { id: f.string(1), execId: f.string(2) };
}

export interface ExecRequest {
  id: string;
  execId: string;
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  spec?: AnyMsg;
}

export function decodeExec(b: Buffer): ExecRequest {
  const f = new Fields(b);
  return {
    id: f.string(1),
    execId: f.string(2),
    terminal: f.bool(3),
    stdin: f.string(4),
    stdout: f.string(5),
    stderr: f.string(6),
    spec: decodeAny(f.bytes(7)),
  };
}

export function decodeResize(b: Buffer): { id: string; execId: string; width: number; height: number } {
  const f = new Fields(b);
  return { id: f.string(1), execId: f.string(2), width: f.uint(3), height: f.uint(4) };
}

export function decodeCloseIO(b: Buffer): { id: string; execId: string; stdin: boolean } {
  const f = new Fields(b);
  return { id: f.string(1), execId: f.string(2), stdin: f.bool(3) };
}

export function decodeKill(b: Buffer): { id: string; execId: string; signal: number; all: boolean } {
  const f = new Fields(b);
  return { id: f.string(1), execId: f.string(2), signal: f.uint(3), all: f.bool(4) };
}

export function decodeUpdate(b: Buffer): { id: string; resources?: AnyMsg } {
  const f = new Fields(b);
  return { id: f.string(1), resources: decodeAny(f.bytes(2)) };
}

export function decodeShutdown(b: Buffer): { id: string; now: boolean } {
  const f = new Fields(b);
  return { id: f.string(1), now: f.bool(2) };
}

export const empty = (): Buffer => Buffer.alloc(0);

/** CreateTaskResponse, StartResponse: {pid = 1}. */
export const pidResponse = (pid: number): Buffer => new Writer().uint(1, pid).finish();

/**
 * exited_at of a process that has not exited: Go's zero time.Time (0001-01-01T00:00:00Z), which containerd's runc shim
 * sends (protobuf.ToTimestamp(p.ExitedAt())). Leaving the field out is not the same on every containerd: 1.6 (gogo,
 * nullable=false) reads an absent Timestamp as the zero time, but 1.7 (a *timestamppb.Timestamp) reads nil, whose
 * AsTime() is 1970-01-01, a time that is not IsZero() (seen: 1.7.13's Tasks.Get gave a running task exited_at 1970).
 */
export const NOT_EXITED_MS = -62135596800_000;
const exitedAtWriter = (at: Date | undefined): Writer => timestampWriter(at ?? NOT_EXITED_MS);

/** DeleteResponse {pid = 1, exit_status = 2, exited_at = 3}. */
export function deleteResponse(pid: number, exitStatus: number, exitedAt: Date | undefined): Buffer {
  return new Writer().uint(1, pid).uint(2, exitStatus).message(3, exitedAtWriter(exitedAt)).finish();
}

export interface StateInfo {
  id: string;
  bundle: string;
  pid: number;
  status: number;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt?: Date;
  execId: string;
}

export function stateResponse(s: StateInfo): Buffer {
  return new Writer()
    .string(1, s.id)
    .string(2, s.bundle)
    .uint(3, s.pid)
    .uint(4, s.status)
    .string(5, s.stdin)
    .string(6, s.stdout)
    .string(7, s.stderr)
    .bool(8, s.terminal)
    .uint(9, s.exitStatus)
    .message(10, exitedAtWriter(s.exitedAt))
    .string(11, s.execId)
    .finish();
}

/** PidsResponse {processes = 1 [ProcessInfo {pid = 1, info = 2 Any}]}; info = containerd.runc.v1.ProcessDetails {exec_id = 1}. */
export function pidsResponse(procs: { pid: number; execId?: string }[]): Buffer {
  const w = new Writer();
  for (const p of procs) {
    const info = p.execId
      ? anyWriter({ typeUrl: 'containerd.runc.v1.ProcessDetails', value: new Writer().string(1, p.execId).finish() })
      : undefined;
    w.message(1, new Writer().uint(1, p.pid).message(2, info));
  }
  return w.finish();
}

/** WaitResponse {exit_status = 1, exited_at = 2}. */
export function waitResponse(exitStatus: number, exitedAt: Date): Buffer {
  return new Writer().uint(1, exitStatus).message(2, timestampWriter(exitedAt)).finish();
}

/** StatsResponse {stats = 1 Any}. */
export const statsResponse = (stats: AnyMsg): Buffer => new Writer().message(1, anyWriter(stats)).finish();

/** ConnectResponse {shim_pid = 1, task_pid = 2, version = 3}. */
export function connectResponse(shimPid: number, taskPid: number, version: string): Buffer {
  return new Writer().uint(1, shimPid).uint(2, taskPid).string(3, version).finish();
}

// ---- events (containerd.events.*), type URLs without the type.googleapis.com/ prefix: containerd 1.6 finds
// only bare names (its typeurl v1 registry); 1.7 accepts both.

export interface TaskEvent {
  topic: string;
  event: AnyMsg;
}

const ev = (topic: string, type: string, w: Writer): TaskEvent => ({
  topic,
  event: { typeUrl: `containerd.events.${type}`, value: w.finish() },
});

export function taskCreate(e: {
  id: string;
  bundle: string;
  rootfs: Mount[];
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  pid: number;
}): TaskEvent {
  const w = new Writer().string(1, e.id).string(2, e.bundle);
  for (const m of e.rootfs) w.message(3, mountWriter(m));
  w.message(4, new Writer().string(1, e.stdin).string(2, e.stdout).string(3, e.stderr).bool(4, e.terminal));
  return ev('/tasks/create', 'TaskCreate', w.uint(6, e.pid));
}
export const taskStart = (id: string, pid: number) =>
  ev('/tasks/start', 'TaskStart', new Writer().string(1, id).uint(2, pid));
export const taskExit = (id: string, procId: string, pid: number, status: number, at: Date) =>
  ev(
    '/tasks/exit',
    'TaskExit',
    new Writer().string(1, id).string(2, procId).uint(3, pid).uint(4, status).message(5, timestampWriter(at)),
  );
export const taskDelete = (id: string, pid: number, status: number, at: Date | undefined) =>
  ev(
    '/tasks/delete',
    'TaskDelete',
    new Writer().string(1, id).uint(2, pid).uint(3, status).message(4, exitedAtWriter(at)).string(5, id),
  );
export const taskExecAdded = (id: string, execId: string) =>
  ev('/tasks/exec-added', 'TaskExecAdded', new Writer().string(1, id).string(2, execId));
export const taskExecStarted = (id: string, execId: string, pid: number) =>
  ev('/tasks/exec-started', 'TaskExecStarted', new Writer().string(1, id).string(2, execId).uint(3, pid));
export const taskPaused = (id: string) => ev('/tasks/paused', 'TaskPaused', new Writer().string(1, id));
export const taskResumed = (id: string) => ev('/tasks/resumed', 'TaskResumed', new Writer().string(1, id));
export const taskOOM = (id: string) => ev('/tasks/oom', 'TaskOOM', new Writer().string(1, id));

/** ForwardRequest {envelope = 1 Envelope {timestamp = 1, namespace = 2, topic = 3, event = 4 Any}}. */
export function forwardRequest(namespace: string, e: TaskEvent, at: Date): Buffer {
  const env = new Writer()
    .message(1, timestampWriter(at))
    .string(2, namespace)
    .string(3, e.topic)
    .message(4, anyWriter(e.event));
  return new Writer().message(1, env).finish();
}
