// cgroup v2 (unified) manager: one directory, controllers enabled from the parents' cgroup.subtree_control,
// v1-shaped OCI values converted the way runc's fs2 driver converts them, devices by an eBPF program.

import * as fs from 'fs';
import { HakoError, invalidField } from '../errors';
import type { LinuxResources } from '../oci/types';
import { BaseManager, enableControllers, isSigkill } from './base';
import { memoryValues } from '../oci/validate-resources';
import {
  blkioWeightToIoWeight,
  checkHugepageSize,
  checkMemoryUsage,
  checkUnifiedKey,
  cpuSharesToWeight,
  cpuValues,
  memorySwapToV2,
  num,
  pidsMax,
  rdmaLine,
  v2Limit,
} from './convert';
import { deviceFilterProgram, DEVICE_FILTER_LICENSE } from './device-bpf';
import { DeviceEmulator, parseDeviceRules } from './devices';
import {
  allPids,
  errnoOf,
  intString,
  isErrno,
  isPermissionError,
  parseKeyValues,
  parseU64,
  sleepMs,
  writeError,
} from './files';
import { type MetricsExtraV2, metricsExtraV2 } from './metrics-extra';
import { type RuncStats, statsV2 } from './stats';
import type { CgroupManager, CgroupManagerOptions, OomCounters } from './types';

export class CgroupV2Manager extends BaseManager implements CgroupManager {
  readonly mode = 'v2' as const;
  private readonly dir: string;
  private readonly mount: string;

  constructor(opts: CgroupManagerOptions) {
    super(opts);
    if (opts.layout.mode !== 'v2' || !opts.layout.v2Mount || !this.resolved.unified) {
      throw new Error('CgroupV2Manager needs a v2 layout');
    }
    this.dir = this.resolved.unified;
    this.mount = opts.layout.v2Mount;
  }

  paths(): Record<string, string> {
    return { '': this.dir };
  }

  protected leafDirs(): string[] {
    return [this.dir];
  }

  /**
   * Rootless: the directory must lie in a subtree delegated to us (e.g. user@1000.service); if its nearest
   * existing ancestor is not writable we skip cgroups altogether with a warning.
   */
  create(): string[] {
    if (this.rootless && !this.writableAncestor()) {
      this.noteSkipped(
        `rootless: ${this.dir} is not in a writable (delegated) cgroup subtree; running without cgroup limits`,
      );
      this.skipped.add(this.dir);
      return [];
    }
    const made = this.mkdirUnder(this.mount, this.dir);
    this.warnRefusedMkdirs();
    if (!this.skipped.has(this.dir)) enableControllers(this.io, this.mount, this.dir, 'all', this.log);
    return made;
  }

  private writableAncestor(): boolean {
    for (let d = this.dir; d.startsWith(this.mount); d = d.slice(0, d.lastIndexOf('/')) || '/') {
      if (fs.existsSync(d)) {
        try {
          fs.accessSync(d, fs.constants.W_OK);
          // cgroup.procs of the ancestor must be writable too, or processes cannot be moved below it.
          fs.accessSync(`${d}/cgroup.procs`, fs.constants.W_OK);
          return true;
        } catch {
          return false;
        }
      }
      if (d === this.mount) break;
    }
    return false;
  }

  addProcess(pid: number): void {
    this.joinDir(this.dir, pid);
  }

  private usable(field: string): boolean {
    if (!this.skipped.has(this.dir)) return true;
    this.warn(`rootless: ${field} ignored: ${this.dir} is not writable`);
    return false;
  }

  private ignored(field: string, why: string): void {
    this.warn(`${field} ignored: ${why}`);
  }

  apply(r: LinuxResources): void {
    const d = this.dir;
    if (r.pids && this.usable('linux.resources.pids')) {
      this.write(d, 'pids.max', pidsMax(num(r.pids.limit, 'linux.resources.pids.limit')), 'linux.resources.pids.limit');
    }
    this.applyMemory(r);
    this.applyIo(r);
    this.applyCpu(r);
    if (r.devices) this.applyDevices(r);
    if (r.cpu?.cpus && this.usable('linux.resources.cpu.cpus'))
      this.write(d, 'cpuset.cpus', r.cpu.cpus, 'linux.resources.cpu.cpus');
    if (r.cpu?.mems && this.usable('linux.resources.cpu.mems'))
      this.write(d, 'cpuset.mems', r.cpu.mems, 'linux.resources.cpu.mems');
    this.applyHugetlb(r);
    const rdma = Object.entries(r.rdma ?? {}).filter(
      ([, v]) => v.hcaHandles !== undefined || v.hcaObjects !== undefined,
    );
    if (rdma.length && this.usable('linux.resources.rdma')) {
      for (const [dev, v] of rdma)
        this.write(d, 'rdma.max', rdmaLine(dev, v), `linux.resources.rdma[${JSON.stringify(dev)}]`);
    }
    if (r.network?.classID) this.ignored('linux.resources.network.classID', 'cgroup v2 has no net_cls controller');
    if (r.network?.priorities?.length)
      this.ignored('linux.resources.network.priorities', 'cgroup v2 has no net_prio controller');
    if (r.unified && Object.keys(r.unified).length > 0) this.applyUnified(r.unified);
  }

  private applyMemory(r: LinuxResources): void {
    const m = r.memory;
    if (!m) return;
    const f = 'linux.resources.memory';
    // The values' rules are shared with the v1 manager and the config check (oci/validate-resources.ts).
    const { limit, swap: swapIn, reservation, swappiness } = memoryValues(m, f);
    if (m.kernel) this.ignored(`${f}.kernel`, 'cgroup v2 has no separate kernel memory limit');
    if (m.kernelTCP) this.ignored(`${f}.kernelTCP`, 'cgroup v2 has no separate kernel TCP memory limit');
    if (swappiness !== undefined) this.ignored(`${f}.swappiness`, 'cgroup v2 has no per-cgroup swappiness');
    if (m.disableOOMKiller) this.ignored(`${f}.disableOOMKiller`, 'cgroup v2 cannot disable the OOM killer');
    if (m.useHierarchy === false) this.ignored(`${f}.useHierarchy`, 'cgroup v2 is always hierarchical');
    if (!limit && !swapIn && !reservation) return;
    if (!this.usable(f)) return;
    const d = this.dir;

    if (m.checkBeforeUpdate) checkMemoryUsage(parseU64(this.io.read(d, 'memory.current')), limit, swapIn, f);
    let swap: number;
    try {
      swap = memorySwapToV2(swapIn, limit);
    } catch (err) {
      throw invalidField(`${f}.swap`, (err as Error).message);
    }
    // memory.swap.max: -1 → "max", 0 → leave alone, except swap == limit which means "no swap" → "0".
    let swapStr = swap === 0 ? '' : v2Limit(swap);
    if (swapStr === '' && swapIn > 0) swapStr = '0';
    if (swapStr !== '') {
      const err = this.io.tryWrite(d, 'memory.swap.max', swapStr);
      if (err) {
        // Without swap accounting the file is missing: "max" and "0" are then already true.
        if (!(isErrno(err, 'ENOENT') && (swapStr === 'max' || swapStr === '0'))) {
          if (!(this.rootless && isPermissionError(err)))
            throw writeError(d, 'memory.swap.max', swapStr, `${f}.swap`, err);
        }
      }
    }
    if (limit !== 0) this.write(d, 'memory.max', v2Limit(limit), `${f}.limit`);
    if (reservation !== 0) this.write(d, 'memory.low', v2Limit(reservation), `${f}.reservation`);
  }

  private applyIo(r: LinuxResources): void {
    const b = r.blockIO;
    if (!b) return;
    const f = 'linux.resources.blockIO';
    const weight = num(b.weight ?? 0, `${f}.weight`);
    const devs = b.weightDevice ?? [];
    if (b.leafWeight || devs.some((w) => w.leafWeight))
      this.ignored(`${f}.leafWeight`, 'cgroup v2 has no leaf weights');
    const throttles: [keyof typeof b, string][] = [
      ['throttleReadBpsDevice', 'rbps'],
      ['throttleWriteBpsDevice', 'wbps'],
      ['throttleReadIOPSDevice', 'riops'],
      ['throttleWriteIOPSDevice', 'wiops'],
    ];
    const anySet = weight || devs.some((w) => w.weight) || throttles.some(([k]) => ((b[k] as unknown[]) ?? []).length);
    if (!anySet || !this.usable(f)) return;
    const d = this.dir;
    // With the BFQ scheduler io.bfq.weight takes the v1 range (10-1000) unchanged; otherwise io.weight
    // (1-10000) gets the converted value. io.bfq.weight holding "default N" (not a bare number) means it
    // also accepts per-device "MAJ:MIN W" lines.
    const bfq = this.io.read(d, 'io.bfq.weight');
    if (weight) {
      if (bfq !== undefined) this.write(d, 'io.bfq.weight', String(weight), `${f}.weight`);
      else this.write(d, 'io.weight', String(blkioWeightToIoWeight(weight)), `${f}.weight`);
    }
    const bfqPerDevice = bfq !== undefined && !/^\s*\d+\s*$/.test(bfq);
    devs.forEach((w, i) => {
      if (!w.weight) return;
      const fld = `${f}.weightDevice[${i}]`;
      const dev = `${num(w.major, fld)}:${num(w.minor, fld)}`;
      if (bfqPerDevice) this.write(d, 'io.bfq.weight', `${dev} ${num(w.weight, fld)}`, fld);
      else this.write(d, 'io.weight', `${dev} ${blkioWeightToIoWeight(num(w.weight, fld))}`, fld);
    });
    for (const [key, name] of throttles) {
      const list = (b[key] as { major: number; minor: number; rate: number }[] | undefined) ?? [];
      list.forEach((t, i) => {
        const fld = `${f}.${key}[${i}]`;
        // v1 took 0 as "no limit"; io.max spells that "max" (0 would be a zero-throughput limit).
        const rate = t.rate === 0 ? 'max' : intString(t.rate, fld);
        this.write(d, 'io.max', `${num(t.major, fld)}:${num(t.minor, fld)} ${name}=${rate}`, fld);
      });
    }
  }

  private applyCpu(r: LinuxResources): void {
    const c = r.cpu;
    if (!c) return;
    const f = 'linux.resources.cpu';
    const { shares, quota, period } = cpuValues(c, f);
    if (c.realtimeRuntime || c.realtimePeriod) {
      const field = c.realtimeRuntime ? `${f}.realtimeRuntime` : `${f}.realtimePeriod`;
      throw invalidField(field, 'realtime CPU bandwidth is not supported on cgroup v2');
    }
    if (!shares && !quota && !period && c.burst === undefined && c.idle === undefined) return;
    if (!this.usable(f)) return;
    const d = this.dir;
    if (c.idle !== undefined) this.write(d, 'cpu.idle', intString(c.idle, `${f}.idle`), `${f}.idle`);
    if (shares) this.write(d, 'cpu.weight', String(cpuSharesToWeight(shares)), `${f}.shares`);
    let pendingBurst: string | undefined;
    if (c.burst !== undefined) {
      const burst = intString(c.burst, `${f}.burst`);
      const err = this.io.tryWrite(d, 'cpu.max.burst', burst);
      if (err) {
        // A larger burst can be refused against the old quota; retry after writing the new quota.
        if (!isErrno(err, 'EINVAL') || quota === 0) throw writeError(d, 'cpu.max.burst', burst, `${f}.burst`, err);
        pendingBurst = burst;
      }
    }
    if (quota !== 0 || period !== 0) {
      const value = `${quota > 0 ? quota : 'max'} ${period || 100000}`;
      this.write(d, 'cpu.max', value, quota !== 0 ? `${f}.quota` : `${f}.period`);
      if (pendingBurst) this.write(d, 'cpu.max.burst', pendingBurst, `${f}.burst`);
    }
  }

  private applyDevices(r: LinuxResources): void {
    const field = 'linux.resources.devices';
    const emu = DeviceEmulator.fromRules(parseDeviceRules(r.devices ?? []));
    if (!this.usable(field)) return;
    const attach = this.opts.attachDeviceFilter;
    if (!attach) {
      if (this.rootless) return this.ignored(field, 'no eBPF device filter loader');
      throw new HakoError(`${field}: cgroup v2 device rules need the native addon's attachDeviceFilter`, {
        field,
        code: 'ENOTSUP',
      });
    }
    const prog = deviceFilterProgram(emu);
    try {
      const fd = attach(this.dir, prog, DEVICE_FILTER_LICENSE);
      // The attachment holds the program; our fd is not needed any more.
      if (typeof fd === 'number' && fd >= 0) fs.closeSync(fd);
    } catch (err) {
      // Rootless (or in a user namespace) bpf(2) is normally not permitted; runc ignores that too.
      if (this.rootless) return this.ignored(field, `cannot attach the device filter: ${(err as Error).message}`);
      const e = err as { errno?: number; step?: string; message?: string };
      throw new HakoError(
        `${field}: cannot install the eBPF device filter on ${this.dir}: ${e.message ?? String(err)}`,
        {
          field,
          errno: typeof e.errno === 'number' ? Math.abs(e.errno) : undefined,
          step: e.step ?? 'attach device filter',
        },
      );
    }
  }

  private applyHugetlb(r: LinuxResources): void {
    const limits = r.hugepageLimits ?? [];
    if (limits.length === 0 || !this.usable('linux.resources.hugepageLimits')) return;
    let rsvd = true;
    limits.forEach((l, i) => {
      const fld = `linux.resources.hugepageLimits[${i}]`;
      checkHugepageSize(l, fld);
      const val = intString(l.limit, `${fld}.limit`);
      this.write(this.dir, `hugetlb.${l.pageSize}.max`, val, fld);
      if (rsvd) {
        const err = this.io.tryWrite(this.dir, `hugetlb.${l.pageSize}.rsvd.max`, val);
        if (err && isErrno(err, 'ENOENT')) rsvd = false;
        else if (err) throw writeError(this.dir, `hugetlb.${l.pageSize}.rsvd.max`, val, fld, err);
      }
    });
  }

  /** Keys are written one line at a time (io.max, etc. take one entry per write), as runc does. */
  private applyUnified(unified: Record<string, string>): void {
    const available = new Set((this.io.read(this.dir, 'cgroup.controllers') ?? '').split(/\s+/).filter(Boolean));
    for (const [key, value] of Object.entries(unified)) {
      const field = `linux.resources.unified[${JSON.stringify(key)}]`;
      const ctrl = checkUnifiedKey(key, field);
      if (!this.usable(field)) continue;
      for (const line of value.split('\n')) {
        if (line === '' && value !== '') continue;
        const err = this.io.tryWrite(this.dir, key, line);
        if (!err) continue;
        if (this.rootless && isPermissionError(err)) {
          this.ignored(field, `not writable (${errnoOf(err).code})`);
          break;
        }
        if (isErrno(err, 'ENOENT', 'EACCES', 'EPERM') && ctrl !== 'cgroup' && !available.has(ctrl)) {
          throw new HakoError(`${field}: cannot be set: controller ${ctrl} is not available in ${this.dir}`, {
            field,
            errno: errnoOf(err).errno,
            step: `write ${key}`,
            code: errnoOf(err).code,
          });
        }
        throw writeError(this.dir, key, line, field, err);
      }
    }
  }

  freeze(): void {
    const d = this.dir;
    if (!this.io.exists(d, 'cgroup.freeze')) {
      throw new HakoError(`cannot freeze ${d}: cgroup.freeze is missing (kernel older than 5.2)`, {
        step: 'freeze',
        code: 'ENOTSUP',
      });
    }
    this.write(d, 'cgroup.freeze', '1', 'cgroup.freeze');
    // cgroup.freeze is the request; cgroup.events "frozen 1" says every task has stopped.
    for (let i = 0; i < 1000; i++) {
      if (parseKeyValues(this.io.read(d, 'cgroup.events')).get('frozen') === 1n) return;
      sleepMs(i < 20 ? 1 : 10);
    }
    this.io.tryWrite(d, 'cgroup.freeze', '0');
    throw new HakoError(`cannot freeze ${d}: cgroup.events never reported "frozen 1"`, {
      step: 'freeze',
      code: 'ETIMEDOUT',
    });
  }

  thaw(): void {
    if (!this.io.exists(this.dir, 'cgroup.freeze')) return;
    this.write(this.dir, 'cgroup.freeze', '0', 'cgroup.freeze');
  }

  isFrozen(): boolean {
    const req = (this.io.read(this.dir, 'cgroup.freeze') ?? '').trim();
    if (req !== '1') return false;
    return parseKeyValues(this.io.read(this.dir, 'cgroup.events')).get('frozen') === 1n;
  }

  pids(): number[] {
    return allPids(this.dir);
  }

  /**
   * SIGKILL: cgroup.kill (5.14+) kills the whole subtree atomically in the kernel. Other signals, or older
   * kernels: freeze, signal every pid, thaw, so that nothing forks past the signal.
   */
  killAll(signal: NodeJS.Signals | number): void {
    const d = this.dir;
    if (isSigkill(signal) && this.io.exists(d, 'cgroup.kill')) {
      const err = this.io.tryWrite(d, 'cgroup.kill', '1');
      if (!err || isErrno(err, 'ENOENT', 'ENODEV')) return;
      throw writeError(d, 'cgroup.kill', '1', 'cgroup.kill', err);
    }
    if (!this.io.exists(d, 'cgroup.freeze')) {
      this.signalAll(this.pids(), signal);
      return;
    }
    this.signalFrozen(signal);
  }

  stats(): RuncStats {
    return statsV2(this.io, this.dir, this.hugePageSizes());
  }

  metricsExtra(): MetricsExtraV2 {
    return metricsExtraV2(this.io, this.dir, this.hugePageSizes());
  }

  oomEvents(): OomCounters {
    const kv = parseKeyValues(this.io.read(this.dir, 'memory.events'));
    return { oomKill: Number(kv.get('oom_kill') ?? 0n), oom: Number(kv.get('oom') ?? 0n), underOom: false };
  }
}
