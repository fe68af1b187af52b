// The runtime's messages to a container's init, built here so every wire layout lives in plan/: the start
// and setup requests on the control socket, the CONTINUE after create's hooks, and the plan of an exec.
import type { Process } from '../oci/types';
import { encodeProcess, type ProcessExtras } from './process';
import { Encoder, Msg, Tag } from './wire';

/** START: execute the container's configured process. */
export function startMessage(): Buffer {
  return new Encoder().message(Msg.START);
}

/** SETUP: execute `p` (fast start) instead of the configured process. */
export function setupMessage(p: Process, extras: ProcessExtras): Buffer {
  return new Encoder().nested(Tag.PROCESS, encodeProcess(p, 'process', extras)).message(Msg.SETUP);
}

/** CONTINUE: the hooks of create's pause point have run. */
export function continueMessage(): Buffer {
  return new Encoder().message(Msg.CONTINUE);
}

/**
 * The PLAN of an exec: the process only (the container is already set up), with its console; `seccompEarly`
 * when a notify agent gets the filter's fd (the filter is then loaded before the process's other steps).
 */
export function execPlanMessage(proc: Process, seccompEarly: boolean, extras: ProcessExtras): Buffer {
  const plan = new Encoder().str(Tag.ROOTFS, '/');
  if (proc.terminal)
    plan.nested(
      Tag.CONSOLE,
      new Encoder().u32(Tag.K_A, proc.consoleSize?.height ?? 0).u32(Tag.K_B, proc.consoleSize?.width ?? 0),
    );
  if (seccompEarly) plan.u32(Tag.SECCOMP_EARLY, 1);
  plan.nested(Tag.PROCESS, encodeProcess(proc, 'process', extras));
  return plan.message(Msg.PLAN);
}
