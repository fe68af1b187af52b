// hako's cgroup manager (cgroupfs driver) for v1, hybrid and v2 hosts.
//
// Typical lifecycle, as the runtime drives it:
//   const layout = detectCgroupLayout();
//   const cg = createCgroupManager({ layout, path: spec.linux?.cgroupsPath, id, rootless, log,
//                                    attachDeviceFilter: addon.attachDeviceFilter });
//   const created = cg.create();          // persist `created` and `cg.paths()` in state.json
//   cg.apply(resources);                  // before the process joins: RT budget, cpuset must exist first
//   cg.addProcess(initPid);
//   ... pause: cg.freeze() / resume: cg.thaw() / kill --all: cg.killAll(sig) / ps: cg.pids()
//   ... update: cg.apply(newResources) / events: cg.stats(), cg.oomEvents()
//   cg.destroy();                         // in `delete`, with { created } from the state
//
// Device rules: the runtime passes linux.resources.devices followed by DEFAULT_ALLOWED_DEVICES and one allow
// rule per linux.devices entry, as runc does; an explicit empty list denies every device.

import type { CgroupManager, OomCounters } from './types';
import { CgroupV1Manager } from './v1';
import { CgroupV2Manager } from './v2';

export { detectCgroupLayout, parseMountinfo, parseProcCgroup } from './layout';
export type { CgroupLayout, CgroupMode, V1Hierarchy } from './layout';
export { resolveCgroupPaths, cleanCgroupPath } from './paths';
export type { CgroupPaths } from './paths';
export { cpuSharesToWeight, cpuSharesToWeightLinear, blkioWeightToIoWeight, memorySwapToV2, pidsMax } from './convert';
export { DeviceEmulator, parseDeviceRules, DEFAULT_ALLOWED_DEVICES } from './devices';
export type { DeviceRule } from './devices';
export { deviceFilterInsns, deviceFilterProgram, encodeInsns, decodeInsns, DEVICE_FILTER_LICENSE } from './device-bpf';
export { encodeEvent, statsEvent } from './stats';
export type { RuncStats, StatsEvent, OomEvent } from './stats';
export type { CgroupManager, CgroupManagerOptions, CgroupLog, AttachDeviceFilter, OomCounters } from './types';
export { CgroupV1Manager, CgroupV2Manager };
export { createCgroupManager } from './create';

/**
 * Polls the OOM counters and calls onOom once per new OOM event (for `events`, which prints
 * {"type":"oom","id":...}). v1 counts oom_kill increments and under_oom rising edges (OOM killer disabled);
 * v2 counts memory.events oom increments. Returns a stop function; the timer keeps the process alive.
 */
export function watchOom(manager: CgroupManager, onOom: () => void, intervalMs = 200): () => void {
  let last: OomCounters;
  try {
    last = manager.oomEvents();
  } catch {
    last = { oomKill: 0, oom: 0, underOom: false };
  }
  const timer = setInterval(() => {
    let now: OomCounters;
    try {
      now = manager.oomEvents();
    } catch {
      return;
    }
    let n = Math.max(0, now.oomKill - last.oomKill, manager.mode === 'v2' ? now.oom - last.oom : 0);
    if (manager.mode !== 'v2' && now.underOom && !last.underOom && n === 0) n = 1;
    last = now;
    for (let i = 0; i < n; i++) onOom();
  }, intervalMs);
  return () => clearInterval(timer);
}
