// Schema and range checks of linux.resources, shared by create (config.json) and update, so a value the
// kernel would misread (2^63 bytes, a period of 0, pids.limit -2) is refused with the field's name before
// any cgroup exists. The cgroup managers (v1 and v2) take their memory values from memoryValues() below,
// so the rules for those live in one place.
import { invalidField, shown } from '../errors';
import { checkDepth } from './depth';
import type { LinuxMemory } from './types';

/**
 * The int64 fields of the runtime-spec hold less than 2^63. JSON numbers are read as doubles, in which
 * 9223372036854775807 (int64's maximum) is already 2^63: such a value cannot be written back as given, so it is
 * refused too (-1 says "unlimited").
 */
const TWO_63 = 2 ** 63;

/** The smallest memory.limit taken (Docker's minimum too). */
export const MIN_MEMORY_LIMIT = 6 * 1024 * 1024;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function int64(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidField(field, `must be an integer, got ${shown(v)}`);
  if (v >= TWO_63 || v < -TWO_63)
    throw invalidField(
      field,
      `${BigInt(v)} is outside the int64 range of the runtime-spec (below 2^63; -1 means unlimited)`,
    );
  return v;
}

/** A byte count where -1 means unlimited (as runc and the kernel's memory files take it) and 0 means unset. */
function bytesOrUnlimited(v: unknown, field: string): number {
  const n = int64(v, field);
  if (n < -1) throw invalidField(field, `must be -1 (unlimited), 0 (unset) or a number of bytes, got ${n}`);
  return n;
}

/** A non-negative integer (the spec's uint64 fields). */
function uint64(v: unknown, field: string): number {
  const n = int64(v, field);
  if (n < 0) throw invalidField(field, `must not be negative, got ${n}`);
  return n;
}

/** The memory values, checked: 0 for "not set", -1 for "unlimited". One validator for the v1 and v2 managers. */
export interface MemoryValues {
  limit: number;
  swap: number;
  reservation: number;
  kernel: number;
  kernelTCP: number;
  /** undefined: not set (absent or -1, as runc's -1 default). */
  swappiness?: number;
}

export function memoryValues(m: LinuxMemory, f = 'linux.resources.memory'): MemoryValues {
  const opt = (v: unknown, field: string) => (present(v) ? bytesOrUnlimited(v, field) : 0);
  const limit = opt(m.limit, `${f}.limit`);
  const swap = opt(m.swap, `${f}.swap`);
  const reservation = opt(m.reservation, `${f}.reservation`);
  const kernel = opt(m.kernel, `${f}.kernel`);
  const kernelTCP = opt(m.kernelTCP, `${f}.kernelTCP`);
  let swappiness: number | undefined;
  if (present(m.swappiness) && m.swappiness !== -1) {
    swappiness = int64(m.swappiness, `${f}.swappiness`);
    // The kernel's range (runc checks the same).
    if (swappiness < 0 || swappiness > 100)
      throw invalidField(`${f}.swappiness`, `must be between 0 and 100, got ${swappiness}`);
  }
  return { limit, swap, reservation, kernel, kernelTCP, swappiness };
}

/**
 * Check linux.resources (or an update's resources). Only what the runtime-spec's schema and the kernel
 * settle without a cgroup is checked here; the rest (controller presence, devices, hugetlb sizes) is checked
 * by the manager that writes it, which names the field too.
 */
export function validateResources(r: unknown, f = 'linux.resources'): void {
  if (!present(r)) return;
  // update's resources are merged into the state, which JSON.stringify then walks.
  checkDepth(r, undefined, f);
  if (!isObj(r)) throw invalidField(f, `must be an object, got ${Array.isArray(r) ? 'an array' : typeof r}`);
  if (present(r.memory)) {
    if (!isObj(r.memory)) throw invalidField(`${f}.memory`, `must be an object, got ${shown(r.memory)}`);
    const { limit } = memoryValues(r.memory as LinuxMemory, `${f}.memory`);
    // Below a few MB not even hako-init fits: the kernel OOM-kills it during setup, and create waited for it for
    // ever (the fuzz test's memory.limit 1). Docker refuses below 6 MB for the same reason; so does hako.
    if (limit > 0 && limit < MIN_MEMORY_LIMIT)
      throw invalidField(
        `${f}.memory.limit`,
        `${limit} bytes is too little for any process; at least ${MIN_MEMORY_LIMIT} (6 MiB), or -1 for unlimited`,
      );
  }
  if (present(r.cpu)) {
    const c = r.cpu;
    if (!isObj(c)) throw invalidField(`${f}.cpu`, `must be an object, got ${shown(c)}`);
    for (const k of ['shares', 'burst', 'realtimePeriod'] as const) if (present(c[k])) uint64(c[k], `${f}.cpu.${k}`);
    for (const k of ['quota', 'realtimeRuntime', 'idle'] as const) if (present(c[k])) int64(c[k], `${f}.cpu.${k}`);
    if (present(c.period)) {
      // The CFS bandwidth period: the kernel takes 1 ms to 1 s (cpu.cfs_period_us, cpu.max). 0 means unset, as in
      // runc: Docker's `update` sends 0 for every field it leaves alone, and the cgroup managers skip it.
      const p = uint64(c.period, `${f}.cpu.period`);
      if (p !== 0 && (p < 1000 || p > 1_000_000))
        throw invalidField(
          `${f}.cpu.period`,
          `must be between 1000 and 1000000 microseconds (1 ms to 1 s), got ${p}; omit it for the default`,
        );
    }
    for (const k of ['cpus', 'mems'] as const)
      if (present(c[k]) && typeof c[k] !== 'string')
        throw invalidField(`${f}.cpu.${k}`, `must be a string, got ${shown(c[k])}`);
  }
  if (present(r.pids)) {
    if (!isObj(r.pids)) throw invalidField(`${f}.pids`, 'must be an object');
    if (!present(r.pids.limit)) throw invalidField(`${f}.pids.limit`, 'is required in a pids object');
    const n = int64(r.pids.limit, `${f}.pids.limit`);
    // runtime-spec int64, mapped as runc maps it (cgroups/convert.ts pidsMax): > 0 a limit, 0 "1", -1 "max".
    // Other negatives mean nothing more than -1 does; refuse them rather than guess.
    if (n < -1)
      throw invalidField(`${f}.pids.limit`, `must be -1 (unlimited), 0 or a positive number of tasks, got ${n}`);
  }
  for (const k of ['devices', 'hugepageLimits'] as const)
    if (present(r[k]) && !Array.isArray(r[k])) throw invalidField(`${f}.${k}`, `must be an array, got ${shown(r[k])}`);
  for (const k of ['blockIO', 'network', 'rdma', 'unified'] as const)
    if (present(r[k]) && !isObj(r[k])) throw invalidField(`${f}.${k}`, `must be an object, got ${shown(r[k])}`);
  if (isObj(r.memory)) {
    for (const k of ['disableOOMKiller', 'useHierarchy', 'checkBeforeUpdate'] as const)
      if (present(r.memory[k]) && typeof r.memory[k] !== 'boolean')
        throw invalidField(`${f}.memory.${k}`, `must be a boolean, got ${shown(r.memory[k])}`);
  }
  // The element types too: the cgroup managers iterate these and read their fields as the spec types them,
  // so a string where an object belongs would otherwise surface as a TypeError there.
  eachObject(r.devices, `${f}.devices`, (d, g) => {
    if (typeof d.allow !== 'boolean') throw invalidField(`${g}.allow`, `must be a boolean, got ${shown(d.allow)}`);
    optString(d.type, `${g}.type`);
    optString(d.access, `${g}.access`);
    for (const k of ['major', 'minor'] as const) if (present(d[k])) int64(d[k], `${g}.${k}`);
  });
  eachObject(r.hugepageLimits, `${f}.hugepageLimits`, (h, g) => {
    if (typeof h.pageSize !== 'string')
      throw invalidField(`${g}.pageSize`, `must be a string, got ${shown(h.pageSize)}`);
    if (!present(h.limit)) throw invalidField(`${g}.limit`, 'is required');
    uint64(h.limit, `${g}.limit`);
  });
  if (isObj(r.blockIO)) {
    const b = r.blockIO;
    const bf = `${f}.blockIO`;
    for (const k of ['weight', 'leafWeight'] as const) if (present(b[k])) uint64(b[k], `${bf}.${k}`);
    eachObject(b.weightDevice, `${bf}.weightDevice`, (d, g) => {
      for (const k of ['major', 'minor'] as const) int64(d[k], `${g}.${k}`);
      for (const k of ['weight', 'leafWeight'] as const) if (present(d[k])) uint64(d[k], `${g}.${k}`);
    });
    for (const t of [
      'throttleReadBpsDevice',
      'throttleWriteBpsDevice',
      'throttleReadIOPSDevice',
      'throttleWriteIOPSDevice',
    ] as const)
      eachObject(b[t], `${bf}.${t}`, (d, g) => {
        for (const k of ['major', 'minor'] as const) int64(d[k], `${g}.${k}`);
        uint64(d.rate, `${g}.rate`);
      });
  }
  if (isObj(r.network)) {
    const n = r.network;
    if (present(n.classID)) uint64(n.classID, `${f}.network.classID`);
    eachObject(n.priorities, `${f}.network.priorities`, (p, g) => {
      if (typeof p.name !== 'string') throw invalidField(`${g}.name`, `must be a string, got ${shown(p.name)}`);
      uint64(p.priority, `${g}.priority`);
    });
  }
  if (isObj(r.rdma))
    for (const [dev, v] of Object.entries(r.rdma)) {
      const g = `${f}.rdma.${dev.slice(0, 64)}`;
      if (!isObj(v)) throw invalidField(g, `must be an object, got ${shown(v)}`);
      for (const k of ['hcaHandles', 'hcaObjects'] as const) if (present(v[k])) uint64(v[k], `${g}.${k}`);
    }
  if (isObj(r.unified))
    for (const [k, v] of Object.entries(r.unified))
      if (typeof v !== 'string')
        throw invalidField(`${f}.unified.${k.slice(0, 64)}`, `must be a string, got ${shown(v)}`);
}

function optString(v: unknown, field: string): void {
  if (present(v) && typeof v !== 'string') throw invalidField(field, `must be a string, got ${shown(v)}`);
}

/** Each element of an optional array must be an object; `check` then looks at its fields. */
function eachObject(list: unknown, field: string, check: (o: Record<string, unknown>, f: string) => void): void {
  if (!present(list)) return;
  if (!Array.isArray(list)) throw invalidField(field, `must be an array, got ${shown(list)}`);
  list.forEach((o, i) => {
    if (!isObj(o)) throw invalidField(`${field}[${i}]`, `must be an object, got ${shown(o)}`);
    check(o, `${field}[${i}]`);
  });
}
