// Over 400 lines because a v1 manager is one class with a method per controller hierarchy, in runc's write order.
// cgroup v1 manager (also hybrid hosts: v1 controllers, plus the container joins the cgroup2 hierarchy).
//
// Write order and the "0 means unset" rules follow runc's fs driver so that a config behaves the same:
// cpuset, devices, memory, cpu, pids, blkio, hugetlb, net_cls, net_prio, rdma, then (hybrid) unified.

import * as path from 'path';
import { HakoError, invalidField, shown } from '../errors';
import type { LinuxResources } from '../oci/types';
import { BaseManager, enableControllers } from './base';
import { memoryValues } from '../oci/validate-resources';
import { checkHugepageSize, checkMemoryUsage, checkUnifiedKey, cpuValues, num, pidsMax, rdmaLine } from './convert';
import { DeviceEmulator, parseDeviceRules, ruleLine } from './devices';
import { allPids, errnoOf, intString, isErrno, parseKeyValues, parseU64, sleepMs, writeError } from './files';
import { type MetricsExtraV1, metricsExtraV1 } from './metrics-extra';
import { type RuncStats, statsV1 } from './stats';
import type { CgroupManager, CgroupManagerOptions, OomCounters } from './types';

export class CgroupV1Manager extends BaseManager implements CgroupManager {
  readonly mode: 'v1' | 'hybrid';
  private readonly dirs: Map<string, string>;
  private readonly unified?: string;

  constructor(opts: CgroupManagerOptions) {
    super(opts);
    if (opts.layout.mode === 'v2') throw new Error('CgroupV1Manager needs a v1 or hybrid layout');
    this.mode = opts.layout.mode;
    this.dirs = this.resolved.v1;
    this.unified = this.mode === 'hybrid' ? this.resolved.unified : undefined;
  }

  paths(): Record<string, string> {
    const out: Record<string, string> = {};
    // Keys as in runc's state.json cgroup_paths: controller names, "name=systemd", "" for cgroup2.
    for (const [c, d] of this.dirs) out[c] = d;
    if (this.unified) out[''] = this.unified;
    return out;
  }

  protected leafDirs(): string[] {
    const dirs = [...new Set(this.dirs.values())];
    if (this.unified) dirs.push(this.unified);
    return dirs;
  }

  create(): string[] {
    const made: string[] = [];
    for (const h of this.opts.layout.v1Hierarchies) {
      const dir = this.dirs.get(h.controllers[0]);
      if (!dir) continue;
      made.push(...this.mkdirUnder(h.mountpoint, dir));
      if (h.controllers.includes('cpuset') && !this.skipped.has(dir)) this.cpusetInherit(h.mountpoint, dir);
    }
    if (this.unified && this.opts.layout.v2Mount) made.push(...this.mkdirUnder(this.opts.layout.v2Mount, this.unified));
    this.warnRefusedMkdirs();
    return made;
  }

  /**
   * A new v1 cpuset cgroup starts with empty cpuset.cpus/mems and refuses tasks (ENOSPC) until they are set:
   * copy them from the parent, for every level we descend through, as runc's cpusetEnsureParent does.
   */
  private cpusetInherit(mount: string, dir: string): void {
    const chain: string[] = [];
    for (let d = dir; d !== mount && d.startsWith(mount + '/'); d = path.dirname(d)) chain.unshift(d);
    for (const d of chain) {
      const parent = path.dirname(d);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const cur = this.io.read(d, f);
        if (cur === undefined || cur.trim() !== '') continue;
        const val = (this.io.read(parent, f) ?? '').trim();
        if (val !== '') this.write(d, f, val, 'linux.resources.cpu.' + (f === 'cpuset.cpus' ? 'cpus' : 'mems'));
      }
    }
  }

  addProcess(pid: number): void {
    for (const dir of this.leafDirs()) this.joinDir(dir, pid);
  }

  /** The directory of a controller for a setting that is present, or undefined (rootless skip). */
  private target(controller: string, field: string): string | undefined {
    const dir = this.dirs.get(controller);
    if (!dir) {
      if (this.rootless) {
        this.warn(`rootless: ${field} ignored: the ${controller} controller is not mounted`);
        return undefined;
      }
      throw new HakoError(`${field}: the ${controller} cgroup controller is not mounted on this host`, {
        field,
        code: 'ENOCONTROLLER',
      });
    }
    if (this.skipped.has(dir)) {
      this.warn(`rootless: ${field} ignored: ${dir} is not writable`);
      return undefined;
    }
    return dir;
  }

  apply(r: LinuxResources): void {
    this.applyCpuset(r);
    if (r.devices) this.applyDevices(r);
    this.applyMemory(r);
    this.applyCpu(r);
    if (r.pids) {
      const d = this.target('pids', 'linux.resources.pids.limit');
      if (d)
        this.write(
          d,
          'pids.max',
          pidsMax(num(r.pids.limit, 'linux.resources.pids.limit')),
          'linux.resources.pids.limit',
        );
    }
    this.applyBlkio(r);
    this.applyHugetlb(r);
    this.applyNetwork(r);
    this.applyRdma(r);
    if (r.unified && Object.keys(r.unified).length > 0) this.applyUnified(r.unified);
  }

  private applyCpuset(r: LinuxResources): void {
    const cpus = r.cpu?.cpus;
    const mems = r.cpu?.mems;
    if (cpus) {
      const d = this.target('cpuset', 'linux.resources.cpu.cpus');
      if (d) this.write(d, 'cpuset.cpus', cpus, 'linux.resources.cpu.cpus');
    }
    if (mems) {
      const d = this.target('cpuset', 'linux.resources.cpu.mems');
      if (d) this.write(d, 'cpuset.mems', mems, 'linux.resources.cpu.mems');
    }
  }

  /**
   * devices.allow/devices.deny: compute the minimal transition from what devices.list shows to the target
   * (for a fresh cgroup: "a *:* rwm" to devices.deny, then each allow), then re-read the list to check.
   */
  private applyDevices(r: LinuxResources): void {
    const field = 'linux.resources.devices';
    // Rootless without a devices cgroup: nothing to warn about (the rules always hold the runtime's defaults),
    // and nothing is lost: a container that cannot mknod reaches only the nodes bound into it.
    const own = this.dirs.get('devices');
    if (this.rootless && (!own || this.skipped.has(own))) return;
    const rules = parseDeviceRules(r.devices ?? []);
    const wanted = DeviceEmulator.fromRules(rules);
    const d = this.target('devices', field);
    if (!d) return;
    const current = DeviceEmulator.fromList(this.io.read(d, 'devices.list') ?? 'a *:* rwm\n');
    for (const rule of current.transition(wanted)) {
      const ok = this.write(d, rule.allow ? 'devices.allow' : 'devices.deny', ruleLine(rule), field);
      if (!ok) return; // rootless: runc ignores device errors there too
    }
    const after = this.io.read(d, 'devices.list');
    if (after === undefined) return;
    const got = DeviceEmulator.fromList(after);
    const mismatch = wanted.defaultAllow ? !got.defaultAllow : !got.equals(wanted);
    if (mismatch) {
      throw new HakoError(`${field}: ${d}/devices.list does not match the requested rules after writing them`, {
        field,
        step: 'verify devices.list',
      });
    }
  }

  private applyMemory(r: LinuxResources): void {
    const m = r.memory;
    if (!m) return;
    const f = 'linux.resources.memory';
    // The values' rules are shared with the v2 manager and the config check (oci/validate-resources.ts).
    const { limit, reservation, kernel, kernelTCP, swappiness, swap: swapIn } = memoryValues(m, f);
    let swap = swapIn;
    const anySet =
      limit ||
      swap ||
      reservation ||
      kernel ||
      kernelTCP ||
      swappiness !== undefined ||
      m.disableOOMKiller !== undefined ||
      m.useHierarchy !== undefined;
    if (!anySet) return;
    const d = this.target('memory', f);
    if (!d) return;

    if (m.checkBeforeUpdate) checkMemoryUsage(parseU64(this.io.read(d, 'memory.usage_in_bytes')), limit, swap, f);

    const hasMemsw = this.io.exists(d, 'memory.memsw.limit_in_bytes');
    if (limit === -1 && swap === 0 && hasMemsw) swap = -1; // "unlimited memory" lifts the swap limit too
    if (swap !== 0 && !hasMemsw) {
      this.warn(`${f}.swap ignored: the kernel has no swap accounting (memory.memsw.* missing)`);
      swap = 0;
    }
    const setLimit = (): void => {
      if (limit === 0) return;
      const err = this.io.tryWrite(d, 'memory.limit_in_bytes', String(limit));
      if (!err) return;
      if (isErrno(err, 'EBUSY')) {
        const usage = parseU64(this.io.read(d, 'memory.usage_in_bytes'));
        const peak = parseU64(this.io.read(d, 'memory.max_usage_in_bytes'));
        throw new HakoError(
          `${f}.limit: unable to set memory limit to ${limit} (current usage: ${usage}, peak usage: ${peak}) ` +
            `in ${d}/memory.limit_in_bytes (EBUSY)`,
          { field: `${f}.limit`, errno: errnoOf(err).errno, step: 'write memory.limit_in_bytes', code: 'EBUSY' },
        );
      }
      if (this.rootless && ['EACCES', 'EPERM', 'EROFS'].includes(err.code ?? '')) {
        this.warn(`rootless: ${f}.limit not applied (${err.code})`);
        return;
      }
      throw writeError(d, 'memory.limit_in_bytes', String(limit), `${f}.limit`, err);
    };
    const setSwap = (): void => {
      if (swap !== 0) this.write(d, 'memory.memsw.limit_in_bytes', String(swap), `${f}.swap`);
    };
    // memsw must stay >= limit at every step: raise memsw first when it grows (or becomes unlimited).
    let done = false;
    if (limit !== 0 && swap !== 0) {
      const cur = parseU64(this.io.read(d, 'memory.limit_in_bytes')) ?? 0n;
      if (swap === -1 || cur < BigInt(swap)) {
        setSwap();
        setLimit();
        done = true;
      }
    }
    if (!done) {
      setLimit();
      setSwap();
    }

    if (reservation !== 0) this.write(d, 'memory.soft_limit_in_bytes', String(reservation), `${f}.reservation`);
    if (kernel !== 0) this.optionalWrite(d, 'memory.kmem.limit_in_bytes', String(kernel), `${f}.kernel`);
    if (kernelTCP !== 0) this.optionalWrite(d, 'memory.kmem.tcp.limit_in_bytes', String(kernelTCP), `${f}.kernelTCP`);
    if (m.disableOOMKiller) this.write(d, 'memory.oom_control', '1', `${f}.disableOOMKiller`);
    else if (m.disableOOMKiller === false) {
      // Only undo an earlier disable (update); a fresh cgroup already has the OOM killer enabled.
      const cur = parseKeyValues(this.io.read(d, 'memory.oom_control')).get('oom_kill_disable');
      if (cur === 1n) this.write(d, 'memory.oom_control', '0', `${f}.disableOOMKiller`);
    }
    // Its range (0-100) is checked by memoryValues().
    if (swappiness !== undefined) this.write(d, 'memory.swappiness', String(swappiness), `${f}.swappiness`);
    if (m.useHierarchy !== undefined) {
      const want = m.useHierarchy ? '1' : '0';
      if ((this.io.read(d, 'memory.use_hierarchy') ?? '').trim() !== want) {
        this.write(d, 'memory.use_hierarchy', want, `${f}.useHierarchy`);
      }
    }
  }

  /** Kernel-memory knobs are gone from newer kernels (runc ignores them entirely): warn when absent. */
  private optionalWrite(d: string, name: string, value: string, field: string): void {
    if (!this.io.exists(d, name)) {
      this.warn(`${field} ignored: this kernel has no ${name}`);
      return;
    }
    this.write(d, name, value, field);
  }

  private applyCpu(r: LinuxResources): void {
    const c = r.cpu;
    if (!c) return;
    const f = 'linux.resources.cpu';
    const { shares, quota, period } = cpuValues(c, f);
    const rtRuntime = num(c.realtimeRuntime ?? 0, `${f}.realtimeRuntime`);
    const rtPeriod = num(c.realtimePeriod ?? 0, `${f}.realtimePeriod`);
    if (!shares && !quota && !period && c.burst === undefined && c.idle === undefined && !rtRuntime && !rtPeriod)
      return;
    const d = this.target('cpu', f);
    if (!d) return;

    if (shares !== 0) {
      if (!this.write(d, 'cpu.shares', String(shares), `${f}.shares`)) return;
      // The kernel clamps out-of-range shares silently; runc reports the clamp, so do we.
      const got = parseU64(this.io.read(d, 'cpu.shares'));
      if (got !== undefined && got !== BigInt(shares)) {
        throw invalidField(
          `${f}.shares`,
          `${shares} is out of range: the ${BigInt(shares) > got ? 'maximum' : 'minimum'} allowed cpu-shares is ${got}`,
        );
      }
    }
    // A new period may be refused (EINVAL) against the old quota; retry it after the quota, like runc.
    let pendingPeriod: string | undefined;
    if (period !== 0) {
      const err = this.io.tryWrite(d, 'cpu.cfs_period_us', String(period));
      if (err) {
        if (!isErrno(err, 'EINVAL') || quota === 0)
          throw writeError(d, 'cpu.cfs_period_us', String(period), `${f}.period`, err);
        pendingPeriod = String(period);
      }
    }
    let pendingBurst: string | undefined;
    if (c.burst !== undefined) {
      const burst = intString(c.burst, `${f}.burst`);
      const err = this.io.tryWrite(d, 'cpu.cfs_burst_us', burst);
      if (err && isErrno(err, 'ENOENT')) this.warn(`${f}.burst ignored: this kernel has no cpu.cfs_burst_us`);
      else if (err) {
        if (!isErrno(err, 'EINVAL') || quota === 0) throw writeError(d, 'cpu.cfs_burst_us', burst, `${f}.burst`, err);
        pendingBurst = burst;
      }
    }
    if (quota !== 0) {
      this.write(d, 'cpu.cfs_quota_us', String(quota), `${f}.quota`);
      if (pendingPeriod) this.write(d, 'cpu.cfs_period_us', pendingPeriod, `${f}.period`);
      if (pendingBurst) this.write(d, 'cpu.cfs_burst_us', pendingBurst, `${f}.burst`);
    }
    if (c.idle !== undefined) this.write(d, 'cpu.idle', intString(c.idle, `${f}.idle`), `${f}.idle`);
    // Realtime: the period may need the runtime lowered first (the kernel checks runtime <= period).
    let pendingRt: string | undefined;
    if (rtPeriod !== 0) {
      const err = this.io.tryWrite(d, 'cpu.rt_period_us', String(rtPeriod));
      if (err) {
        if (!isErrno(err, 'EINVAL') || rtRuntime === 0) {
          throw writeError(d, 'cpu.rt_period_us', String(rtPeriod), `${f}.realtimePeriod`, err);
        }
        pendingRt = String(rtPeriod);
      }
    }
    if (rtRuntime !== 0) {
      this.write(d, 'cpu.rt_runtime_us', String(rtRuntime), `${f}.realtimeRuntime`);
      if (pendingRt) this.write(d, 'cpu.rt_period_us', pendingRt, `${f}.realtimePeriod`);
    }
  }

  private applyBlkio(r: LinuxResources): void {
    const b = r.blockIO;
    if (!b) return;
    const f = 'linux.resources.blockIO';
    const weight = num(b.weight ?? 0, `${f}.weight`);
    const leaf = num(b.leafWeight ?? 0, `${f}.leafWeight`);
    const throttles: [keyof typeof b, string][] = [
      ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device'],
      ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device'],
      ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device'],
      ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device'],
    ];
    const devs = b.weightDevice ?? [];
    const anySet =
      weight ||
      leaf ||
      devs.some((w) => w.weight || w.leafWeight) ||
      throttles.some(([k]) => ((b[k] as unknown[]) ?? []).length);
    if (!anySet) return;
    const d = this.target('blkio', f);
    if (!d) return;
    // CFQ (removed in 5.0) had blkio.weight; BFQ names them blkio.bfq.weight.
    const cfq = this.io.exists(d, 'blkio.weight');
    const weightFile = cfq ? 'blkio.weight' : 'blkio.bfq.weight';
    const weightDevFile = cfq ? 'blkio.weight_device' : 'blkio.bfq.weight_device';
    if (weight) this.write(d, weightFile, String(weight), `${f}.weight`);
    if (leaf) this.write(d, 'blkio.leaf_weight', String(leaf), `${f}.leafWeight`);
    devs.forEach((w, i) => {
      const dev = `${num(w.major, `${f}.weightDevice[${i}].major`)}:${num(w.minor, `${f}.weightDevice[${i}].minor`)}`;
      if (w.weight)
        this.write(
          d,
          weightDevFile,
          `${dev} ${num(w.weight, `${f}.weightDevice[${i}].weight`)}`,
          `${f}.weightDevice[${i}].weight`,
        );
      if (w.leafWeight) {
        this.write(
          d,
          'blkio.leaf_weight_device',
          `${dev} ${num(w.leafWeight, `${f}.weightDevice[${i}].leafWeight`)}`,
          `${f}.weightDevice[${i}].leafWeight`,
        );
      }
    });
    for (const [key, file] of throttles) {
      const list = (b[key] as { major: number; minor: number; rate: number }[] | undefined) ?? [];
      list.forEach((t, i) => {
        const fld = `${f}.${key}[${i}]`;
        this.write(d, file, `${num(t.major, fld)}:${num(t.minor, fld)} ${intString(t.rate, fld)}`, fld);
      });
    }
  }

  private applyHugetlb(r: LinuxResources): void {
    const limits = r.hugepageLimits ?? [];
    if (limits.length === 0) return;
    const f = 'linux.resources.hugepageLimits';
    limits.forEach((l, i) => {
      checkHugepageSize(l, `${f}[${i}]`);
    });
    let dir = this.dirs.get('hugetlb');
    let v2 = false;
    if (!dir && this.unifiedHas('hugetlb')) {
      // Hybrid host whose hugetlb controller lives on the cgroup2 side (not bound to v1): use it there.
      dir = this.unified as string;
      v2 = true;
      enableControllers(this.io, this.opts.layout.v2Mount as string, dir, ['hugetlb'], this.log);
    }
    if (!dir) dir = this.target('hugetlb', f);
    if (!dir || this.skipped.has(dir)) return;
    const suffix = v2 ? '.max' : '.limit_in_bytes';
    let rsvd = true;
    limits.forEach((l, i) => {
      const fld = `${f}[${i}]`;
      const val = intString(l.limit, `${fld}.limit`);
      this.write(dir as string, `hugetlb.${l.pageSize}${suffix}`, val, fld);
      // Reservation limits (5.7+) also cover pages reserved but not yet faulted; absent on older kernels.
      if (rsvd) {
        const err = this.io.tryWrite(dir as string, `hugetlb.${l.pageSize}.rsvd${suffix}`, val);
        if (err && isErrno(err, 'ENOENT')) rsvd = false;
        else if (err) throw writeError(dir as string, `hugetlb.${l.pageSize}.rsvd${suffix}`, val, fld, err);
      }
    });
  }

  private applyNetwork(r: LinuxResources): void {
    const n = r.network;
    if (!n) return;
    const f = 'linux.resources.network';
    if (n.classID) {
      const d = this.target('net_cls', `${f}.classID`);
      if (d) this.write(d, 'net_cls.classid', intString(n.classID, `${f}.classID`), `${f}.classID`);
    }
    const prios = n.priorities ?? [];
    if (prios.length > 0) {
      const d = this.target('net_prio', `${f}.priorities`);
      if (!d) return;
      prios.forEach((p, i) => {
        if (!/^[^\s/]+$/.test(p.name ?? ''))
          throw invalidField(`${f}.priorities[${i}].name`, `invalid interface name ${shown(p.name)}`);
        this.write(
          d,
          'net_prio.ifpriomap',
          `${p.name} ${intString(p.priority, `${f}.priorities[${i}].priority`)}`,
          `${f}.priorities[${i}]`,
        );
      });
    }
  }

  private applyRdma(r: LinuxResources): void {
    const entries = Object.entries(r.rdma ?? {}).filter(
      ([, v]) => v.hcaHandles !== undefined || v.hcaObjects !== undefined,
    );
    if (entries.length === 0) return;
    const d = this.target('rdma', 'linux.resources.rdma');
    if (d)
      for (const [dev, v] of entries)
        this.write(d, 'rdma.max', rdmaLine(dev, v), `linux.resources.rdma[${JSON.stringify(dev)}]`);
  }

  /** Is controller available to our cgroup2 directory (hybrid host)? */
  private unifiedHas(controller: string): boolean {
    if (!this.unified || !this.opts.layout.v2Mount) return false;
    const root = this.io.read(this.opts.layout.v2Mount, 'cgroup.controllers') ?? '';
    return root.split(/\s+/).includes(controller);
  }

  /**
   * `unified` on a v1 host is an error (runc: "cannot use unified on cgroup v1"). On a hybrid host a key is
   * accepted when it targets the cgroup2 hierarchy: its controller is available there (not bound to a v1
   * hierarchy), or it is a core "cgroup.*" file. Anything else names the offending key.
   */
  private applyUnified(unified: Record<string, string>): void {
    for (const [key, value] of Object.entries(unified)) {
      const field = `linux.resources.unified[${JSON.stringify(key)}]`;
      if (this.mode === 'v1' || !this.unified) {
        throw invalidField(field, 'cannot use unified resources on a cgroup v1 host (no cgroup2 hierarchy)');
      }
      const ctrl = checkUnifiedKey(key, field);
      if (ctrl !== 'cgroup') {
        if (this.dirs.has(ctrl)) {
          throw invalidField(
            field,
            `controller ${ctrl} is bound to a cgroup v1 hierarchy on this hybrid host; use the v1 resource fields`,
          );
        }
        if (!this.unifiedHas(ctrl))
          throw invalidField(field, `controller ${ctrl} is not available in the cgroup2 hierarchy`);
        enableControllers(this.io, this.opts.layout.v2Mount as string, this.unified, [ctrl], this.log);
      }
      if (this.skipped.has(this.unified)) continue;
      for (const line of value.split('\n')) if (line !== '' || value === '') this.write(this.unified, key, line, field);
    }
  }

  freeze(): void {
    const d = this.freezerDir();
    for (let i = 0; i < 1000; i++) {
      if (i % 50 === 49) {
        // A task stuck in FREEZING (e.g. in a vfork) sometimes needs a thaw to make progress.
        this.io.tryWrite(d, 'freezer.state', 'THAWED');
        sleepMs(10);
      }
      this.write(d, 'freezer.state', 'FROZEN', 'freezer.state');
      const state = (this.io.read(d, 'freezer.state') ?? '').trim();
      if (state === 'FROZEN') return;
      if (state !== 'FREEZING') {
        this.io.tryWrite(d, 'freezer.state', 'THAWED');
        throw new HakoError(`cannot freeze ${d}: unexpected freezer.state ${JSON.stringify(state)}`, {
          step: 'freeze',
        });
      }
      sleepMs(i < 25 ? 1 : 10);
    }
    this.io.tryWrite(d, 'freezer.state', 'THAWED');
    throw new HakoError(`cannot freeze ${d}: still FREEZING after retries`, { step: 'freeze', code: 'ETIMEDOUT' });
  }

  thaw(): void {
    const d = this.freezerDir();
    this.write(d, 'freezer.state', 'THAWED', 'freezer.state');
  }

  isFrozen(): boolean {
    const d = this.dirs.get('freezer');
    if (!d) return false;
    for (let i = 0; i < 1000; i++) {
      const state = (this.io.read(d, 'freezer.state') ?? '').trim();
      if (state === 'THAWED' || state === '') return false;
      if (state === 'FROZEN') {
        // FROZEN may be inherited from a frozen parent; self_freezing says whether *we* froze it.
        const self = this.io.read(d, 'freezer.self_freezing');
        return self === undefined ? true : self.trim() === '1';
      }
      sleepMs(1);
    }
    return true;
  }

  private freezerDir(): string {
    const d = this.dirs.get('freezer');
    if (!d)
      throw new HakoError('cannot freeze: the freezer cgroup controller is not mounted', {
        code: 'ENOCONTROLLER',
        step: 'freeze',
      });
    return d;
  }

  pids(): number[] {
    for (const c of ['devices', 'freezer', 'pids', 'memory', 'cpu', 'cpuacct', 'cpuset', 'name=systemd']) {
      const d = this.dirs.get(c);
      if (d && !this.skipped.has(d)) return allPids(d);
    }
    const any = [...this.dirs.values()][0];
    return any ? allPids(any) : [];
  }

  /** Freeze, signal everyone, thaw: no process can fork a child that escapes the signal in between. */
  killAll(signal: NodeJS.Signals | number): void {
    const freezer = this.dirs.get('freezer');
    if (!freezer || this.skipped.has(freezer) || !this.io.exists(freezer, 'freezer.state')) {
      this.signalAll(this.pids(), signal);
      return;
    }
    this.signalFrozen(signal);
  }

  stats(): RuncStats {
    const dir = (c: string): string | undefined => this.dirs.get(c);
    return statsV1(
      this.io,
      {
        cpu: dir('cpu'),
        cpuacct: dir('cpuacct'),
        cpuset: dir('cpuset'),
        memory: dir('memory'),
        pids: dir('pids'),
        blkio: dir('blkio'),
        hugetlb: dir('hugetlb'),
        unifiedHugetlb: !dir('hugetlb') && this.unifiedHas('hugetlb') ? this.unified : undefined,
      },
      this.hugePageSizes(),
    );
  }

  metricsExtra(): MetricsExtraV1 {
    const dir = (c: string): string | undefined => this.dirs.get(c);
    return metricsExtraV1(
      this.io,
      {
        memory: dir('memory'),
        rdma: dir('rdma'),
        hugetlb: dir('hugetlb'),
        unifiedHugetlb: !dir('hugetlb') && this.unifiedHas('hugetlb') ? this.unified : undefined,
      },
      this.hugePageSizes(),
    );
  }

  oomEvents(): OomCounters {
    const d = this.dirs.get('memory');
    const kv = d ? parseKeyValues(this.io.read(d, 'memory.oom_control')) : new Map<string, bigint>();
    const underOom = kv.get('under_oom') === 1n;
    return { oomKill: Number(kv.get('oom_kill') ?? 0n), oom: underOom ? 1 : 0, underOom };
  }
}
