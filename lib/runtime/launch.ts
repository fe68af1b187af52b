// Launch: start (the configured process) and setup (fast start: a process supplied now) of a created
// container, with the startContainer and poststart hooks around the init's exec.
import * as fs from 'fs';
import { HakoError, invalidField } from '../errors';
import { trace } from '../log';
import { validateProcess } from '../oci/validate';
import type { LinuxSeccomp, Process, SeccompAction } from '../oci/types';
import { setupMessage, startMessage } from '../plan/messages';
import type { ProcessExtras } from '../plan/process';
import { isPermissiveAction } from '../seccomp/policy';
import { validateId, type StoredState } from '../state/store';
import { defaultCacheDir } from './cache-dir';
import { runHookInContainer, runHooks, type RuntimeContext } from './context';
import { notWaiting, sendControl } from './control';
import type { SetupOptions } from './options';
import { exeId, procStat } from './proc';
import { compileProcessSeccomp } from './seccomp-support';
import { publicState, liveStatus } from './status';
import { killAndWait, killProcess } from './teardown';

/** Parse the --sched shortcut into a runtime-spec scheduler object. */
export function parseSched(s: string): Process['scheduler'] {
  const [policy, ...rest] = s.split(':');
  const name = `SCHED_${policy.toUpperCase()}`;
  const nums = rest.map((x) => {
    if (!/^\d+$/.test(x)) throw invalidField('sched', `invalid number "${x}" in "${s}"`);
    return Number(x);
  });
  if (name === 'SCHED_DEADLINE')
    return { policy: name, runtime: nums[0], deadline: nums[1], period: nums[2] ?? nums[1] };
  if (name === 'SCHED_FIFO' || name === 'SCHED_RR') return { policy: name, priority: nums[0] ?? 1 };
  if (name === 'SCHED_OTHER' || name === 'SCHED_BATCH' || name === 'SCHED_IDLE')
    return { policy: name, nice: nums[0] ?? 0 };
  throw invalidField('sched', `unknown policy "${policy}" (FIFO, RR, DEADLINE, OTHER, BATCH, IDLE)`);
}

/** Start a created container's configured process. */
export async function start(rt: RuntimeContext, id: string): Promise<void> {
  await launch(rt, id, startMessage(), 'start', rt.known.get(id));
}

/**
 * Fast start: run `proc` (a runtime-spec process object) in a created container whose whole
 * configuration is already applied. The container keeps waiting if the process is refused.
 */
export async function setup(rt: RuntimeContext, id: string, proc: Process, opts: SetupOptions = {}): Promise<void> {
  validateProcess(proc, 'process');
  const p: Process = opts.sched ? { ...proc, scheduler: parseSched(opts.sched) } : proc;
  validateId(id);
  // Only its config is read here (fixed at create); launch() checks the status under the lock.
  const { config } = rt.known.get(id) ?? rt.store.load(id);
  // The init applies the container's own seccomp filter (it has it from the plan).
  const extras: ProcessExtras = { cpuAffinity: opts.cpuAffinity, ...rt.capabilityExtras(config) };
  const message = setupMessage(p, extras);
  await launch(rt, id, message, 'setup', rt.known.get(id));
}

async function launch(
  rt: RuntimeContext,
  id: string,
  message: Buffer,
  verb: string,
  loaded?: StoredState,
): Promise<void> {
  validateId(id);
  await rt.store.withLock(id, async () => {
    const s = loaded ?? rt.store.load(id);
    const spec = s.config;
    const checkWaiting = () => {
      s.status = liveStatus(s);
      if (s.status === 'stopped') throw new HakoError(`cannot ${verb} a container that has stopped`);
      if (s.status !== 'created') throw new HakoError(`cannot ${verb} an already running container`);
    };
    // A container this instance created (fast setup's path) skips the /proc checks: only its waiting init
    // accepts on the control socket, so a refused connection is when the status is worth working out.
    const deferCheck = !!loaded && !spec.hooks?.startContainer?.length;
    if (!deferCheck) checkWaiting();
    // runtime-spec: start MUST fail without a process. create refuses such configs; a state an older hako
    // wrote may still lack one.
    if (verb === 'start' && !spec.process)
      throw invalidField(
        'process',
        'the container has no process to start (runtime-spec: start fails; setup can supply one)',
      );
    // Under the container's seccomp filter, as runc's init runs them after loading it.
    const seccomp = spec.hooks?.startContainer?.length
      ? (compileProcessSeccomp(spec, rt.log, defaultCacheDir()) ?? undefined)
      : undefined;
    for (const [i, h] of (spec.hooks?.startContainer ?? []).entries())
      await runHookInContainer(h, publicState(s), 'startContainer', i, s.pid!, true, { seccomp });
    trace(`${verb}: locked`);
    const stop = () => {
      try {
        killProcess(rt, s, 9);
      } catch (k) {
        if ((k as HakoError).code !== 'ESRCH') throw k;
      }
    };
    // A filter that refuses execve refuses the init's exec of the process, and then the init's report and
    // its exit too: it could never say so (it was seen spinning on a refused exit). Known from the config,
    // so said here, before the init is asked; start stops the container, as for any refused process.
    if (seccompRefusesExec(spec.linux?.seccomp)) {
      if (deferCheck) checkWaiting();
      if (verb === 'start') stop();
      throw invalidField(
        'linux.seccomp',
        `the container's seccomp filter refuses execve (default action ${spec.linux!.seccomp!.defaultAction}, no rule allows it): its process can never be executed${verb === 'start' ? '; the container is stopped' : ''}`,
      );
    }
    try {
      await sendControl(rt.store.controlSocket(id), message, verb);
    } catch (e) {
      if (deferCheck && notWaiting((e as HakoError).errno)) checkWaiting();
      // No answer in time: the init cannot act on the request or report why (a seccomp filter refusing
      // execve or the writes of its report under conditions this process cannot evaluate, a stopped init).
      // start stops it from outside (SIGKILL always works), or it would hold the container for ever.
      if (verb === 'start' && (e as HakoError).code === 'ETIMEDOUT') {
        stop();
        const hint = spec.linux?.seccomp
          ? ": the container's seccomp filter (linux.seccomp) may refuse execve, or exit, of its process"
          : '';
        throw new HakoError(`${(e as Error).message}${hint}; the container is stopped`, {
          errno: 110,
          code: 'ETIMEDOUT',
          field: spec.linux?.seccomp ? 'linux.seccomp' : undefined,
        });
      }
      // The init refused the configured process (a step failed): the container is stopped, as runc's init
      // exits then. Left waiting it could never run, and containerd will not delete a created task.
      // (setup keeps it waiting: another process may yet be supplied.)
      if (verb === 'start' && (e as HakoError).step) {
        try {
          killProcess(rt, s, 9);
        } catch (k) {
          if ((k as HakoError).code !== 'ESRCH') throw k;
        }
      }
      throw e;
    }
    // The connection closed with no reply: the exec closed it (close-on-exec), or the init died, or gave up
    // and closed it, on its way there (a seccomp filter that kills it at execve, or refuses its report and its
    // exit): runc's start would say nothing. Told apart by what the process is now.
    if (!executedProcess(s)) {
      // Killed and waited for (bounded): a state asked right after the failed start says stopped.
      await killAndWait(rt, s);
      const hint = spec.linux?.seccomp
        ? ": the container's seccomp filter (linux.seccomp) may refuse or kill its execve, or exit"
        : '';
      throw new HakoError(
        `${verb}: container init ended before it executed the process${hint}; the container is stopped`,
        { step: 'exec', field: spec.linux?.seccomp ? 'linux.seccomp' : undefined },
      );
    }
    trace('process executed');
    // No state write: liveStatus() sees the init has executed the process (/proc/PID/exe changed).
    s.status = 'running';
    if (spec.hooks?.poststart?.length) {
      try {
        await runHooks(spec.hooks.poststart, publicState(s), 'poststart');
      } catch (e) {
        // runtime-spec 1.3: a failing poststart fails the operation; the container is stopped. A process
        // that already exited is stopped: the hook's error is the one to report.
        try {
          killProcess(rt, s, 9);
        } catch (k) {
          if ((k as HakoError).code !== 'ESRCH') throw k;
        }
        throw e;
      }
    }
  });
}

/**
 * After the init closed the control connection with no reply: did it execute the process? While the process
 * lives its /proc/PID/exe says (the sealed init until the exec). Once it is exiting or a zombie (our unreaped
 * child) there is no exe, but its name is still the init's ("hako-init") unless an exec renamed it. A process
 * already reaped by someone else (a CLI start, whose init the create's caller reaps) cannot be told: taken as
 * executed, as runc does.
 */
function executedProcess(s: StoredState): boolean {
  if (!s.pid || !s.helperId) return true;
  const st = procStat(s.pid);
  if (!st || (s.pidStartTime !== undefined && st.startTime !== s.pidStartTime)) return true;
  const exe = exeId(s.pid);
  if (exe !== undefined) return exe !== s.helperId;
  try {
    return fs.readFileSync(`/proc/${s.pid}/comm`, 'utf8').trim() !== 'hako-init';
  } catch {
    return true;
  }
}

/**
 * True when linux.seccomp refuses execve for certain: no rule names it and the default action is not allow-like
 * (nor a notify agent's to decide), or every rule naming it refuses it without conditions. Anything the kernel
 * must decide (conditions, an agent) is false: the init tries, and start's timeout covers a silent refusal.
 */
export function seccompRefusesExec(sc: LinuxSeccomp | undefined): boolean {
  if (!sc) return false;
  const refuses = (action: string) => !isPermissiveAction(action as SeccompAction) && action !== 'SCMP_ACT_NOTIFY';
  const rules = (sc.syscalls ?? []).filter((r) => (r.names ?? []).includes('execve'));
  if (!rules.length) return refuses(sc.defaultAction);
  return rules.every((r) => refuses(r.action) && !(r.args ?? []).length);
}
