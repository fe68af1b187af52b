// Encodes an OCI `process` object as the T_PROCESS record the init helper applies before exec.
// Used for the container's own process (in the plan) and for `setup` (fast start).
import { invalidField, shown } from '../errors';
import { IOPRIO_CLASSES, RLIMITS, SCHED_FLAGS, SCHED_POLICIES } from '../oci/constants';
import type { Process, Scheduler } from '../oci/types';
import { capabilityGrant } from './capabilities';
import { Encoder, Tag } from './wire';

export interface ProcessExtras {
  preserveFds?: number;
  /** struct sock_filter[] and SECCOMP_FILTER_FLAG_* bits, from the seccomp compiler. */
  seccomp?: { filter: Buffer; flags: number };
  /** CPU list overriding execCPUAffinity.final, e.g. "0-1,3". */
  cpuAffinity?: string;
  /** The capabilities the process can be given (capabilities.ts grantableCapabilities); default: any. */
  grantableCaps?: bigint;
  /** Where warnings go: capabilities that are unknown or cannot be granted. */
  warn?: (msg: string) => void;
}

const RLIM_INFINITY = 0xffffffffffffffffn;

/** "0-3,7" -> cpu_set_t bytes (whole 64-bit words, as the kernel expects). */
export function cpuListToMask(list: string, field: string): Buffer {
  const cpus: number[] = [];
  for (const part of list.split(',').map((p) => p.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw invalidField(field, `invalid CPU list ${shown(list)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi >= 8192) throw invalidField(field, `invalid CPU range ${shown(part)}`);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  const bytes = Buffer.alloc(Math.ceil((Math.max(...cpus) + 1) / 64) * 8);
  for (const c of cpus) bytes[c >> 3] |= 1 << (c & 7);
  return bytes;
}

export function encodeScheduler(s: Scheduler, field: string): Buffer {
  if (!(s.policy in SCHED_POLICIES)) throw invalidField(`${field}.policy`, `unknown policy ${shown(s.policy)}`);
  const policy = SCHED_POLICIES[s.policy];
  let flags = 0;
  (s.flags ?? []).forEach((f, i) => {
    if (!(f in SCHED_FLAGS)) throw invalidField(`${field}.flags[${i}]`, `unknown flag ${shown(f)}`);
    flags |= SCHED_FLAGS[f];
  });
  const prio = s.priority ?? 0;
  if ((policy === 1 || policy === 2) && (prio < 1 || prio > 99))
    throw invalidField(`${field}.priority`, `must be 1..99 for ${s.policy}`);
  if (policy !== 1 && policy !== 2 && prio !== 0) throw invalidField(`${field}.priority`, `must be 0 for ${s.policy}`);
  const nice = s.nice ?? 0;
  if (nice < -20 || nice > 19) throw invalidField(`${field}.nice`, 'must be -20..19');
  if (policy === 6) {
    const { runtime = 0, deadline = 0, period = 0 } = s;
    if (!runtime || !deadline) throw invalidField(field, 'SCHED_DEADLINE needs runtime and deadline');
    if (runtime > deadline || (period && deadline > period))
      throw invalidField(field, 'SCHED_DEADLINE needs runtime <= deadline <= period');
  }
  const b = Buffer.alloc(48);
  b.writeUInt32LE(policy, 0);
  b.writeInt32LE(nice, 4);
  b.writeUInt32LE(prio, 8);
  b.writeBigUInt64LE(BigInt(flags), 16);
  b.writeBigUInt64LE(BigInt(s.runtime ?? 0), 24);
  b.writeBigUInt64LE(BigInt(s.deadline ?? 0), 32);
  b.writeBigUInt64LE(BigInt(s.period ?? 0), 40);
  return b;
}

export function encodeProcess(p: Process, field: string, extras: ProcessExtras = {}): Encoder {
  const e = new Encoder();
  for (const a of p.args ?? []) e.str(Tag.P_ARG, a);
  for (const v of p.env ?? []) e.str(Tag.P_ENV, v);
  e.str(Tag.P_CWD, p.cwd);
  e.u32(Tag.P_UID, p.user.uid);
  e.u32(Tag.P_GID, p.user.gid);
  const gids = p.user.additionalGids ?? [];
  const g = Buffer.alloc(gids.length * 4);
  gids.forEach((x, i) => g.writeUInt32LE(x, i * 4));
  e.bytes(Tag.P_GIDS, g);
  if (p.user.umask !== undefined && p.user.umask !== null) e.u32(Tag.P_UMASK, p.user.umask);
  if (p.capabilities) {
    const caps = Buffer.alloc(40);
    const grant = capabilityGrant(p.capabilities, `${field}.capabilities`, extras.grantableCaps);
    for (const w of grant.warnings) extras.warn?.(w);
    grant.masks.forEach((m, i) => caps.writeBigUInt64LE(m, i * 8));
    e.bytes(Tag.P_CAPS, caps);
  }
  if (p.noNewPrivileges) e.u32(Tag.P_NNP, 1);
  (p.rlimits ?? []).forEach((r, i) => {
    const b = Buffer.alloc(24);
    const type = RLIMITS[r.type];
    if (type === undefined) throw invalidField(`${field}.rlimits[${i}].type`, `unknown rlimit ${shown(r.type)}`);
    b.writeUInt32LE(type, 0);
    const big = (v: number) => (v >= 2 ** 63 ? RLIM_INFINITY : BigInt(v));
    b.writeBigUInt64LE(big(r.soft), 8);
    b.writeBigUInt64LE(big(r.hard), 16);
    e.bytes(Tag.P_RLIMIT, b);
  });
  if (extras.seccomp) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(extras.seccomp.flags, 0);
    e.bytes(Tag.P_SECCOMP, Buffer.concat([head, extras.seccomp.filter]));
  }
  if (p.scheduler) e.bytes(Tag.P_SCHED, encodeScheduler(p.scheduler, `${field}.scheduler`));
  if (p.ioPriority) {
    const cls = IOPRIO_CLASSES[p.ioPriority.class];
    if (!cls) throw invalidField(`${field}.ioPriority.class`, `unknown class ${shown(p.ioPriority.class)}`);
    if (!Number.isInteger(p.ioPriority.priority) || p.ioPriority.priority < 0 || p.ioPriority.priority > 7)
      throw invalidField(`${field}.ioPriority.priority`, 'must be 0..7');
    e.u32(Tag.P_IOPRIO, (cls << 13) | p.ioPriority.priority);
  }
  const affinity = extras.cpuAffinity ?? p.execCPUAffinity?.final;
  if (affinity)
    e.bytes(
      Tag.P_AFFINITY,
      cpuListToMask(affinity, extras.cpuAffinity ? 'cpuAffinity' : `${field}.execCPUAffinity.final`),
    );
  if (p.apparmorProfile) e.str(Tag.P_APPARMOR, p.apparmorProfile);
  if (p.selinuxLabel) e.str(Tag.P_SELINUX, p.selinuxLabel);
  if (p.terminal) e.u32(Tag.P_TERMINAL, 1);
  if (extras.preserveFds) e.u32(Tag.P_PRESERVE_FDS, extras.preserveFds);
  return e;
}
