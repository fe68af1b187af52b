// The OCI resource values as both managers take them: checked once, here, so v1 and v2 refuse a value with the
// same field and message (the schema and ranges are checked earlier, in oci/validate-resources.ts, whose
// memoryValues() both use); and the v1 → v2 conversions. The OCI resources are v1-shaped, so on cgroup v2
// some values must be mapped the way runc (github.com/opencontainers/cgroups utils.go) maps them, or the same
// config.json would give a container a different share of the machine under hako than under runc.
import { invalidField, shown } from '../errors';
import type { LinuxCPU } from '../oci/types';
import { intString } from './files';

/**
 * Go's math.Log2: exact for powers of two (via frexp), else log(frac)/ln2 + exp. Reproduced rather than using
 * Math.log2 so that ceil() below lands on the same integer as runc at the edges.
 */
function goLog2(x: number): number {
  // frexp: x = frac * 2^exp with frac in [0.5, 1)
  let exp = Math.floor(Math.log2(x)) + 1;
  let frac = x / 2 ** exp;
  if (frac >= 1) {
    frac /= 2;
    exp += 1;
  } else if (frac < 0.5) {
    frac *= 2;
    exp -= 1;
  }
  if (frac === 0.5) return exp - 1;
  return Math.log(frac) * (1 / Math.LN2) + exp;
}

/**
 * cpu.shares [2, 262144] (default 1024) → cpu.weight [1, 10000] (default 100).
 *
 * runc ≥ 1.3.2 (opencontainers/cgroups ≥ 0.0.3) uses a quadratic fit in log2 space that maps the three anchor
 * points min→min, default→default, max→max: weight = ceil(10^((l² + 125·l)/612 − 7/34)), l = log2(shares).
 * The older linear formula (`cpuSharesToWeightLinear`) mapped the default 1024 shares to weight 39, i.e. a
 * container asking for the default got less than an unconfined process. 0 stays 0 ("unset").
 */
export function cpuSharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  const l = goLog2(shares);
  const exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0;
  return Math.ceil(10 ** exponent);
}

/** The formula of runc ≤ 1.3.1 and crun: 1 + ((shares − 2) · 9999) / 262142, integer division. */
export function cpuSharesToWeightLinear(shares: number): number {
  if (shares === 0) return 0;
  return Number(1n + ((BigInt(shares) - 2n) * 9999n) / 262142n);
}

/**
 * blkio.weight [10, 1000] → io.weight [1, 10000]: 1 + (w − 10) · 9999 / 990 (runc ConvertBlkIOToIOWeightValue).
 * Used only when the BFQ file io.bfq.weight is absent; BFQ takes the v1 range unchanged.
 */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return Number(1n + ((BigInt(weight) - 10n) * 9999n) / 990n);
}

/**
 * OCI memory.swap is memory+swap (v1 memsw); cgroup v2 memory.swap.max is swap alone. Returns the value for
 * memory.swap.max: a number of bytes, -1 for "max", or 0 for "leave unset" (runc ConvertMemorySwapToCgroupV2Value).
 * Throws a message (without field) when the combination cannot be converted.
 */
export function memorySwapToV2(swap: number, limit: number): number {
  if (limit === -1 && swap === 0) return -1; // "unlimited memory" implies unlimited swap, as on v1
  if (swap === -1 || swap === 0) return swap;
  if (limit === -1) return swap;
  if (limit === 0) throw new Error('unable to set swap limit without memory limit');
  if (limit < 0) throw new Error(`invalid memory value: ${limit}`);
  if (swap < limit) throw new Error('memory+swap limit should be >= memory limit');
  return swap - limit;
}

/** v2 writes "max" where v1 took -1; 0 means "not set". */
export function v2Limit(value: number): string {
  if (value === -1) return 'max';
  return BigInt(value).toString();
}

/** runc's pids.max mapping (runtime-spec ≥ 1.3): >0 → n, 0 → "1" (0 is a real limit, systemd cannot say 0), <0 → "max". */
export function pidsMax(limit: number): string {
  if (limit > 0) return BigInt(limit).toString();
  if (limit === 0) return '1';
  return 'max';
}

export function rdmaLine(dev: string, v: { hcaHandles?: number; hcaObjects?: number }): string {
  const field = `linux.resources.rdma[${JSON.stringify(dev)}]`;
  if (!/^[^\s/]+$/.test(dev)) throw invalidField(field, 'invalid device name');
  let line = dev;
  if (v.hcaHandles !== undefined) line += ` hca_handle=${intString(v.hcaHandles, `${field}.hcaHandles`)}`;
  if (v.hcaObjects !== undefined) line += ` hca_object=${intString(v.hcaObjects, `${field}.hcaObjects`)}`;
  return line;
}

/** A unified key must be a plain "controller.parameter" file name; returns the controller. */
export function checkUnifiedKey(key: string, field: string): string {
  if (key.includes('/') || key === '.' || key === '..') throw invalidField(field, 'must be a file name (no slashes)');
  const dot = key.indexOf('.');
  if (dot <= 0) throw invalidField(field, 'must be of the form CONTROLLER.PARAMETER');
  return key.slice(0, dot);
}

/** Validates an integer field and returns it as a number. */
export function num(v: number, field: string): number {
  intString(v, field);
  return v;
}

/** cpu.shares, cpu.quota and cpu.period, integers (0: unset). */
export function cpuValues(c: LinuxCPU, f: string): { shares: number; quota: number; period: number } {
  const shares = num(c.shares ?? 0, `${f}.shares`);
  const quota = num(c.quota ?? 0, `${f}.quota`);
  const period = num(c.period ?? 0, `${f}.period`);
  return { shares, quota, period };
}

/** memory.checkBeforeUpdate: a new limit (or memory+swap limit) at or below the cgroup's current usage is refused. */
export function checkMemoryUsage(usage: bigint | undefined, limit: number, swap: number, f: string): void {
  if (usage === undefined) return;
  if (swap > 0 && BigInt(swap) <= usage)
    throw invalidField(`${f}.swap`, `rejecting memory+swap limit ${swap} <= usage ${usage}`);
  if (limit > 0 && BigInt(limit) <= usage)
    throw invalidField(`${f}.limit`, `rejecting memory limit ${limit} <= usage ${usage}`);
}

const HUGEPAGE_SIZE = /^\d+[KMGTP]?B$/;

/** A hugepageLimits entry's page size as the hugetlb file names spell it ("2MB", "1GB"); `fld` is the entry's field. */
export function checkHugepageSize(l: { pageSize?: string }, fld: string): void {
  if (!HUGEPAGE_SIZE.test(l.pageSize ?? ''))
    throw invalidField(`${fld}.pageSize`, `invalid page size ${shown(l.pageSize)}`);
}
