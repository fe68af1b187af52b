// linux.resources as systemd unit properties, the set runc's systemd driver gives a scope
// (systemd.resource-control(5) names them). Everything else, and these same values again, the driver then
// writes to the files of the scope's cgroup through the cgroupfs managers, as runc does: systemd's view and
// the kernel's then agree, and what systemd has no property for (io throttles, hugetlb, memory.low on v1,
// cpu.idle, burst, rdma, unified keys) still applies.

import * as fs from 'fs';
import { invalidField } from '../../errors';
import { Variant } from '../../dbus/marshal';
import type { LinuxResources } from '../../oci/types';
import { memoryValues } from '../../oci/validate-resources';
import { cpuSharesToWeight, memorySwapToV2 } from '../convert';
import { DeviceEmulator, parseDeviceRules, accessString } from '../devices';

export type Property = [string, Variant];

/** systemd's "infinity" for the u64 properties (CGROUP_LIMIT_MAX). */
export const INFINITY = 0xffffffffffffffffn;

const u64 = (v: number): bigint => (v === -1 ? INFINITY : BigInt(v));

export interface PropertyOptions {
  /** cgroup v2 (or a hybrid host, where systemd drives the unified side): v2 property names. */
  v2: boolean;
  /** Text of /proc/devices, for "char-NAME" device groups (default: the real file). */
  procDevices?: string;
  warn?: (message: string) => void;
}

/**
 * The resource properties of linux.resources. Zero values mean "unset", as everywhere in the driver (runc).
 * Values are checked with the same rules as the cgroupfs path, and errors name the field.
 */
export function resourceProperties(r: LinuxResources | undefined, opts: PropertyOptions): Property[] {
  const out: Property[] = [];
  if (!r) return out;
  const p = (name: string, sig: string, value: unknown) => out.push([name, new Variant(sig, value)]);
  const f = 'linux.resources';

  if (r.memory) {
    const { limit, swap, reservation } = memoryValues(r.memory, `${f}.memory`);
    if (opts.v2) {
      if (limit !== 0) p('MemoryMax', 't', u64(limit));
      if (reservation !== 0) p('MemoryLow', 't', u64(reservation));
      let sw: number;
      try {
        sw = memorySwapToV2(swap, limit);
      } catch (e) {
        throw invalidField(`${f}.memory.swap`, (e as Error).message);
      }
      if (sw !== 0) p('MemorySwapMax', 't', u64(sw));
      // swap == limit means "no swap": memorySwapToV2 says 0 ("unset") for it, and the file gets "0".
      else if (swap > 0 && swap === limit) p('MemorySwapMax', 't', 0n);
    } else if (limit !== 0) p('MemoryLimit', 't', u64(limit));
  }

  const c = r.cpu;
  if (c) {
    const shares = c.shares ?? 0;
    if (shares) {
      if (opts.v2) p('CPUWeight', 't', BigInt(cpuSharesToWeight(shares)));
      else p('CPUShares', 't', BigInt(shares));
    }
    const quota = c.quota ?? 0;
    let period = c.period ?? 0;
    if (period !== 0) p('CPUQuotaPeriodUSec', 't', BigInt(period));
    if (quota !== 0 || period !== 0) {
      // systemd keeps the quota per second of CPU time; it rounds to 1% (10 ms per second) when it writes
      // cpu.max, so the value is rounded up to that step here, as runc does, rather than down by systemd.
      let perSec = INFINITY;
      if (quota > 0) {
        if (period === 0) period = 100000;
        perSec = (BigInt(quota) * 1000000n) / BigInt(period);
        if (perSec % 10000n !== 0n) perSec = (perSec / 10000n + 1n) * 10000n;
      }
      p('CPUQuotaPerSecUSec', 't', perSec);
    }
    if (c.cpus) p('AllowedCPUs', 'ay', cpusetMask(c.cpus, `${f}.cpu.cpus`));
    if (c.mems) p('AllowedMemoryNodes', 'ay', cpusetMask(c.mems, `${f}.cpu.mems`));
  }

  if (r.pids) {
    const limit = r.pids.limit;
    // runtime-spec 1.3: 0 is a real limit; systemd's TasksMax cannot say 0, so 1 as pids.max gets it too.
    p('TasksMax', 't', limit > 0 ? BigInt(limit) : limit === 0 ? 1n : INFINITY);
  }

  if (r.devices) out.push(...deviceProperties(r, opts));
  return out;
}

/**
 * "0-3,8" -> the bitmask systemd takes for AllowedCPUs/AllowedMemoryNodes (byte i bit j = CPU 8i+j).
 * Throws naming the field for anything that is not a cpuset list.
 */
export function cpusetMask(list: string, field: string): Buffer {
  const bits: number[] = [];
  for (const part of list.trim().split(',')) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) throw invalidField(field, `${JSON.stringify(list)} is not a list of numbers and ranges ("0-3,8")`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 8191)
      throw invalidField(field, `${JSON.stringify(list)}: bad range ${JSON.stringify(part.trim())}`);
    for (let i = a; i <= b; i++) bits.push(i);
  }
  const mask = Buffer.alloc(bits.length ? (Math.max(...bits) >> 3) + 1 : 0);
  for (const i of bits) mask[i >> 3] |= 1 << (i & 7);
  return mask;
}

/**
 * DevicePolicy and DeviceAllow, as runc derives them: an allow-list becomes "strict" with one DeviceAllow
 * entry per allowed device or group; a config that allows everything is "auto" with no list. A deny-list
 * (allow all, deny some) has no systemd form: "auto", and the eBPF program the driver installs through the
 * files enforces the denials (systemd and hako each attach a program; the kernel asks both).
 */
export function deviceProperties(r: LinuxResources, opts: PropertyOptions): Property[] {
  const emu = DeviceEmulator.fromRules(parseDeviceRules(r.devices ?? []));
  const out: Property[] = [];
  if (emu.defaultAllow) {
    out.push(['DevicePolicy', new Variant('s', 'auto')], ['DeviceAllow', new Variant('a(ss)', [])]);
    return out;
  }
  let names: Map<string, string> | undefined;
  const groupName = (type: 'b' | 'c', major: number): string | undefined => {
    names ??= procDeviceNames(opts.procDevices);
    return names.get(`${type}${major}`);
  };
  const allow: [string, string][] = [];
  for (const ex of emu.entries()) {
    const kind = ex.type === 'b' ? 'block' : 'char';
    const perms = accessString(ex.access);
    if (ex.major < 0) {
      allow.push([`${kind}-*`, perms]);
    } else if (ex.minor < 0) {
      // systemd names a whole major by its /proc/devices name ("char-pts"); one without a name cannot be
      // said, and only the eBPF program then allows it.
      const name = groupName(ex.type, ex.major);
      if (name) allow.push([`${kind}-${name}`, perms]);
      else
        opts.warn?.(
          `linux.resources.devices: ${ex.type} ${ex.major}:* has no name in /proc/devices, so systemd's DeviceAllow cannot list it; hako's device filter still allows it`,
        );
    } else allow.push([`/dev/${kind}/${ex.major}:${ex.minor}`, perms]);
  }
  out.push(['DevicePolicy', new Variant('s', 'strict')], ['DeviceAllow', new Variant('a(ss)', allow)]);
  return out;
}

/** /proc/devices: "Character devices:" / "Block devices:" sections of "major name" lines. */
function procDeviceNames(text?: string): Map<string, string> {
  let t = text;
  if (t === undefined) {
    try {
      t = fs.readFileSync('/proc/devices', 'utf8');
    } catch {
      t = '';
    }
  }
  const out = new Map<string, string>();
  let type: 'b' | 'c' | undefined;
  for (const line of t.split('\n')) {
    if (/^Character devices:/.test(line)) type = 'c';
    else if (/^Block devices:/.test(line)) type = 'b';
    else {
      const m = /^\s*(\d+)\s+(\S+)/.exec(line);
      if (m && type && !out.has(`${type}${m[1]}`)) out.set(`${type}${m[1]}`, m[2]);
    }
  }
  return out;
}
