// The plan (what container init is told to do) goes to init as one message on a SOCK_SEQPACKET socketpair, and
// the kernel refuses a message longer than the socket's send buffer (net.core.wmem_default, 212992 bytes unless
// raised) with EMSGSIZE: "send: Message too long", naming no field. A config whose env, gids, mounts or paths
// add up to more than that is refused here instead, before anything is created, naming its largest part.
import * as fs from 'fs';
import { invalidField } from '../errors';

let wmem: number | undefined;
/** What one message to init can carry: the send buffer less the kernel's 32 bytes (unix_dgram_sendmsg). */
export function planLimit(): number {
  if (wmem === undefined) {
    wmem = 212992;
    try {
      const n = Number(fs.readFileSync('/proc/sys/net/core/wmem_default', 'utf8').trim());
      if (Number.isInteger(n) && n > 0) wmem = n;
    } catch {
      /* no /proc: the kernel's default */
    }
  }
  return wmem - 32;
}

/** The config's share of it: room is left for what the plan carries besides (tags, compiled seccomp, hako's own paths). */
export function planBudget(): number {
  return planLimit() - 16 * 1024;
}

/** The last check, of the encoded plan itself, for what the estimate above missed: a clear error, not EMSGSIZE. */
export function checkPlanMessage(message: Buffer): void {
  if (message.length > planLimit())
    throw invalidField(
      'config.json',
      `too large: the container's plan is ${message.length} bytes, more than the ${planLimit()} one message to container init can carry (net.core.wmem_default)`,
    );
}

/**
 * Bytes a value takes at least in the plan: strings their UTF-8 length plus a length, numbers 4. Iterative
 * (the depth was checked before, but this must not be the first thing to overflow if it was not).
 */
export function planWeight(value: unknown): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') total += Buffer.byteLength(v) + 4;
    else if (typeof v === 'number' || typeof v === 'boolean') total += 4;
    else if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) stack.push(x);
  }
  return total;
}

/** Refuse when the parts together exceed the plan's budget, naming the largest part. */
export function checkPlanSize(parts: [field: string, value: unknown][]): void {
  const max = planBudget();
  let total = 0;
  let largest: [string, number] = ['config.json', 0];
  for (const [field, v] of parts) {
    if (v === undefined || v === null) continue;
    const w = planWeight(v);
    total += w;
    if (w > largest[1]) largest = [field, w];
  }
  if (total > max)
    throw invalidField(
      largest[0],
      `too large: the container's plan would need at least ${total} bytes, more than the ${max} one message to container init can carry (net.core.wmem_default); this field takes ${largest[1]}`,
    );
}
