// config.json -> the setup plan the init helper executes at create.
import * as path from 'path';
import { invalidField, shown } from '../errors';
import { MS, NAMESPACE_FLAGS } from '../oci/constants';
import { PROPAGATION, parseMountOptions } from '../oci/mount-options';
import type { Device, Linux, Mount, Spec } from '../oci/types';
import { encodeProcess, type ProcessExtras } from './process';
import { Encoder, Msg, PausePoint, Tag } from './wire';

export interface CgroupMountSource {
  /** cgroup2 at /sys/fs/cgroup, or per-hierarchy bind mounts of the container's v1 directories. */
  mode: 'v2' | 'v1';
  binds: { name: string; source: string }[];
}

export interface PlanOptions {
  bundle: string;
  noPivot?: boolean;
  debug?: boolean;
  /** The runtime must run hooks before pivot_root. */
  pauseBeforePivot?: boolean;
  console?: { rows: number; cols: number };
  process?: ProcessExtras;
  cgroupMounts?: CgroupMountSource;
  /** Load the seccomp filter at create: its listener fd goes to listenerPath before create returns. */
  seccompEarly?: boolean;
  warn?: (msg: string) => void;
  noNewKeyring?: boolean;
  /** The init's fd of the user namespace for the idmapped mount at this index of `mounts`. */
  idmapFd?: (mountIndex: number) => number;
  /** Index, among the fds sent with the plan, of a bind source the runtime opened (user namespaces). */
  sourceFd?: (mountIndex: number) => number | undefined;
  /** cgroup.procs files the init joins by itself (cheaper than the runtime moving it). */
  cgroupProcs?: string[];
  /** The runtime itself runs in a user namespace: device nodes cannot be made, only bound from the host. */
  runtimeInUserNamespace?: boolean;
}

export interface BuiltPlan {
  message: Buffer;
  cloneFlags: number;
  /** Namespaces to join: [path, CLONE_NEW* flag]. */
  joins: [string, number][];
  userns: boolean;
  rootfs: string;
}

const DEFAULT_DEVICES: Device[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0 },
];

const DEV_SYMLINKS: [string, string][] = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
];

/** Clean an in-container path: absolute, no "." or "..", relative destinations taken from "/". */
export function containerPath(p: string, field: string): string {
  if (typeof p !== 'string' || p === '') throw invalidField(field, 'must be a non-empty path');
  if (p.includes('\0')) throw invalidField(field, 'must not contain NUL');
  // "/mnt/" names /mnt: a trailing slash would leave the native side an empty last component.
  return path.posix.normalize('/' + p).replace(/(.)\/+$/, '$1');
}

function encodeMount(
  m: Mount,
  i: number,
  bundle: string,
  idmapFd?: (i: number) => number,
  sourceFd?: (i: number) => number | undefined,
): Encoder {
  const field = `mounts[${i}]`;
  const dest = containerPath(m.destination, `${field}.destination`);
  const opts = parseMountOptions(m.options, `${field}.options`);
  const e = new Encoder();
  const isBind = opts.bind !== 0 || m.type === 'bind';
  let source = m.source;
  if (isBind) {
    if (!source) throw invalidField(`${field}.source`, 'a bind mount needs a source');
    source = path.resolve(bundle, source);
    e.u32(Tag.M_BIND, opts.bind === 2 ? 2 : 1);
  }
  if (source) e.str(Tag.M_SOURCE, source);
  const fd = isBind && !opts.idmap ? sourceFd?.(i) : undefined;
  if (fd !== undefined) e.u32(Tag.M_SOURCE_FD, fd);
  e.str(Tag.M_DEST, dest);
  if (!isBind && m.type && m.type !== 'none') e.str(Tag.M_FSTYPE, m.type);
  if (!isBind && (!m.type || m.type === 'none'))
    throw invalidField(`${field}.type`, 'a mount that is not a bind mount needs a type');
  e.u64(Tag.M_FLAGS, opts.flags);
  if (opts.data.length) e.str(Tag.M_DATA, opts.data.join(','));
  if (opts.propagation) e.u64(Tag.M_PROPAGATION, opts.propagation);
  if (opts.attrSet) e.u64(Tag.M_ATTR_SET, opts.attrSet);
  if (opts.attrClr) e.u64(Tag.M_ATTR_CLR, opts.attrClr);
  if (opts.copyUp) {
    if (m.type !== 'tmpfs') throw invalidField(`${field}.options`, 'tmpcopyup applies to tmpfs mounts only');
    e.u32(Tag.M_COPYUP, 1);
  }
  if (opts.idmap) {
    if (!isBind) throw invalidField(`${field}.options`, 'idmap and ridmap apply to bind mounts only');
    if (!idmapFd) throw invalidField(`${field}.options`, 'idmapped mount without a user namespace');
    e.u32(Tag.M_IDMAP, idmapFd(i));
    if (opts.idmap === 2) e.u32(Tag.M_IDMAP_RECURSIVE, 1);
  }
  return e;
}

/** A "cgroup" mount becomes cgroup2, or a tmpfs with the container's v1 hierarchies bound in. */
function encodeCgroupMount(m: Mount, i: number, src: CgroupMountSource | undefined, out: Encoder): void {
  const field = `mounts[${i}]`;
  const dest = containerPath(m.destination, `${field}.destination`);
  const opts = parseMountOptions(m.options, `${field}.options`);
  const flags = opts.flags & ~MS.RDONLY;
  if (!src || src.mode === 'v2') {
    out.nested(
      Tag.MOUNT,
      new Encoder()
        .str(Tag.M_SOURCE, 'cgroup')
        .str(Tag.M_DEST, dest)
        .str(Tag.M_FSTYPE, 'cgroup2')
        .u64(Tag.M_FLAGS, opts.flags),
    );
    return;
  }
  out.nested(
    Tag.MOUNT,
    new Encoder()
      .str(Tag.M_SOURCE, 'tmpfs')
      .str(Tag.M_DEST, dest)
      .str(Tag.M_FSTYPE, 'tmpfs')
      .u64(Tag.M_FLAGS, flags)
      .str(Tag.M_DATA, 'mode=755'),
  );
  for (const b of src.binds) {
    out.nested(
      Tag.MOUNT,
      new Encoder()
        .u32(Tag.M_BIND, 2)
        .u32(Tag.M_OPTIONAL, 1)
        .str(Tag.M_SOURCE, b.source)
        .str(Tag.M_DEST, path.posix.join(dest, b.name))
        .u64(Tag.M_FLAGS, opts.flags | MS.BIND | MS.REC),
    );
  }
  if (opts.flags & MS.RDONLY) {
    out.nested(
      Tag.MOUNT,
      new Encoder()
        .str(Tag.M_SOURCE, 'tmpfs')
        .str(Tag.M_DEST, dest)
        .str(Tag.M_FSTYPE, 'tmpfs')
        .u64(Tag.M_FLAGS, flags | MS.REMOUNT | MS.RDONLY),
    );
  }
}

function encodeDevice(d: Device, field: string): Encoder {
  const e = new Encoder();
  e.str(Tag.D_PATH, containerPath(d.path, `${field}.path`));
  e.u32(Tag.D_TYPE, (d.type === 'u' ? 'c' : d.type).charCodeAt(0));
  e.u32(Tag.D_MAJOR, d.major ?? 0);
  e.u32(Tag.D_MINOR, d.minor ?? 0);
  e.u32(Tag.D_MODE, (d.fileMode ?? 0o666) & 0o7777); // the type comes from D_TYPE
  e.u32(Tag.D_UID, d.uid ?? 0);
  e.u32(Tag.D_GID, d.gid ?? 0);
  return e;
}

const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/** The namespace a sysctl belongs to (runc's rules), or undefined when it is global to the host. */
export function sysctlNamespace(key: string): string | undefined {
  const k = key.replace(/\//g, '.');
  if (IPC_SYSCTLS.has(k) || k.startsWith('fs.mqueue.')) return 'ipc';
  if (k.startsWith('net.')) return 'network';
  if (k === 'kernel.hostname' || k === 'kernel.domainname') return 'uts';
  if (k.startsWith('user.')) return 'user';
  return undefined;
}

function timeOffsets(offsets: Linux['timeOffsets']): Buffer {
  const b = Buffer.alloc(32);
  for (const [name, at] of Object.entries(offsets ?? {})) {
    const base = name === 'monotonic' ? 0 : name === 'boottime' ? 16 : -1;
    if (base < 0)
      throw invalidField(`linux.timeOffsets.${name}`, 'only "monotonic" and "boottime" clocks have offsets');
    const secs = at.secs ?? 0;
    const ns = at.nanosecs ?? 0;
    if (!Number.isInteger(secs) || !Number.isInteger(ns) || ns < 0 || ns >= 1e9)
      throw invalidField(`linux.timeOffsets.${name}`, 'secs must be an integer and nanosecs within 0..999999999');
    b.writeBigInt64LE(BigInt(secs), base);
    b.writeBigInt64LE(BigInt(ns), base + 8);
  }
  return b;
}

const PERSONALITY_DOMAINS: Record<string, number> = { LINUX: 0x0000, LINUX32: 0x0008 };
const PERSONALITY_FLAGS: Record<string, number> = {
  UNAME26: 0x0020000,
  ADDR_NO_RANDOMIZE: 0x0040000,
  FDPIC_FUNCPTRS: 0x0080000,
  MMAP_PAGE_ZERO: 0x0100000,
  ADDR_COMPAT_LAYOUT: 0x0200000,
  READ_IMPLIES_EXEC: 0x0400000,
  ADDR_LIMIT_32BIT: 0x0800000,
  SHORT_INODE: 0x1000000,
  WHOLE_SECONDS: 0x2000000,
  STICKY_TIMEOUTS: 0x4000000,
  ADDR_LIMIT_3GB: 0x8000000,
};

function personality(p: NonNullable<Linux['personality']>): number {
  const domain = PERSONALITY_DOMAINS[p.domain];
  if (domain === undefined)
    throw invalidField('linux.personality.domain', `unknown domain ${shown(p.domain)} (LINUX or LINUX32)`);
  return (p.flags ?? []).reduce((v, f, i) => {
    if (!(f in PERSONALITY_FLAGS)) throw invalidField(`linux.personality.flags[${i}]`, `unknown flag ${shown(f)}`);
    return v | PERSONALITY_FLAGS[f];
  }, domain);
}

export function buildPlan(spec: Spec, opts: PlanOptions): BuiltPlan {
  const linux = spec.linux ?? {};
  const e = new Encoder();
  const rootfs = path.resolve(opts.bundle, spec.root!.path);
  e.str(Tag.ROOTFS, rootfs);
  if (spec.root?.readonly) e.u32(Tag.ROOTFS_READONLY, 1);
  if (opts.noPivot) e.u32(Tag.NO_PIVOT, 1);
  if (opts.debug) e.u32(Tag.DEBUG, 1);
  if (!opts.noNewKeyring) e.u32(Tag.NEW_KEYRING, 1);
  for (const f of opts.cgroupProcs ?? []) e.str(Tag.CGROUP_PROCS, f);

  let cloneFlags = 0;
  const joins: [string, number][] = [];
  for (const ns of linux.namespaces ?? []) {
    const flag = NAMESPACE_FLAGS[ns.type];
    if (ns.path) joins.push([ns.path, flag]);
    else cloneFlags |= flag;
  }
  if (cloneFlags & NAMESPACE_FLAGS.cgroup) {
    // Created by the init after it joined its cgroup, so the namespace is rooted there (as runc does).
    cloneFlags &= ~NAMESPACE_FLAGS.cgroup;
    e.u32(Tag.UNSHARE_CGROUPNS, 1);
  }
  if (cloneFlags & NAMESPACE_FLAGS.time) {
    cloneFlags &= ~NAMESPACE_FLAGS.time;
    e.bytes(Tag.TIME_NS, timeOffsets(linux.timeOffsets));
  } else if (linux.timeOffsets && Object.keys(linux.timeOffsets).length) {
    throw invalidField('linux.timeOffsets', 'needs a new time namespace ({"type": "time"})');
  }
  const userns = (cloneFlags & NAMESPACE_FLAGS.user) !== 0;
  // A new network namespace has only `lo`, and it is down: runc and crun bring it up, and programs expect
  // 127.0.0.1 to work (podman --network none, a container that talks to itself).
  if (cloneFlags & NAMESPACE_FLAGS.network) e.u32(Tag.LOOPBACK_UP, 1);
  const newMountNs = (cloneFlags & NAMESPACE_FLAGS.mount) !== 0;
  // Without a new mount namespace there is nowhere private to mount: the init only chroots into the rootfs
  // (as runc does for configs without one) and the mounts are not made, rather than made on the host.
  if (newMountNs) e.u32(Tag.NEW_MOUNT_NS, 1);
  else if ((spec.mounts ?? []).length)
    opts.warn?.('mounts: ignored without a new mount namespace (the container is chrooted into its rootfs)');
  // mknod needs CAP_MKNOD in the initial user namespace: in a new or joined one, or when the runtime runs
  // in one (rootless podman), the host's device nodes are bound instead, as runc does.
  if (userns || joins.some(([, flag]) => flag === NAMESPACE_FLAGS.user) || opts.runtimeInUserNamespace)
    e.u32(Tag.DEV_BIND_HOST, 1);
  if (linux.rootfsPropagation) {
    const p = PROPAGATION[linux.rootfsPropagation];
    if (p === undefined)
      throw invalidField('linux.rootfsPropagation', `unknown propagation ${shown(linux.rootfsPropagation)}`);
    e.u64(Tag.ROOTFS_PROPAGATION, p);
  }
  if (spec.hostname !== undefined) e.str(Tag.HOSTNAME, spec.hostname);
  if (spec.domainname !== undefined) e.str(Tag.DOMAINNAME, spec.domainname);

  const mounts = newMountNs ? (spec.mounts ?? []) : [];
  let devIsBind = false;
  let hasDevPts = false;
  mounts.forEach((m, i) => {
    const dest = containerPath(m.destination, `mounts[${i}].destination`);
    if (m.type === 'cgroup' || m.type === 'cgroup2') return encodeCgroupMount(m, i, opts.cgroupMounts, e);
    if (dest === '/dev' && (m.type === 'bind' || parseMountOptions(m.options, `mounts[${i}].options`).bind))
      devIsBind = true;
    if (dest === '/dev/pts') hasDevPts = true;
    e.nested(Tag.MOUNT, encodeMount(m, i, opts.bundle, opts.idmapFd, opts.sourceFd));
  });
  // Default devices and /dev links, unless /dev comes from the host; configured devices win.
  const configured = new Set((linux.devices ?? []).map((d) => containerPath(d.path, 'linux.devices')));
  if (!devIsBind && newMountNs) {
    for (const d of DEFAULT_DEVICES)
      if (!configured.has(d.path)) e.nested(Tag.DEVICE, encodeDevice(d, 'default device'));
    for (const [target, link] of DEV_SYMLINKS)
      e.nested(Tag.SYMLINK, new Encoder().str(Tag.K_A, target).str(Tag.K_B, link));
    if (hasDevPts && !configured.has('/dev/ptmx'))
      e.nested(Tag.SYMLINK, new Encoder().str(Tag.K_A, 'pts/ptmx').str(Tag.K_B, '/dev/ptmx'));
  }
  if (newMountNs) {
    (linux.devices ?? []).forEach((d, i) => e.nested(Tag.DEVICE, encodeDevice(d, `linux.devices[${i}]`)));
    for (const [i, p] of (linux.maskedPaths ?? []).entries())
      e.str(Tag.MASKED_PATH, containerPath(p, `linux.maskedPaths[${i}]`));
    for (const [i, p] of (linux.readonlyPaths ?? []).entries())
      e.str(Tag.READONLY_PATH, containerPath(p, `linux.readonlyPaths[${i}]`));
  }
  const hasNs = (type: string) => (linux.namespaces ?? []).some((n) => n.type === type);
  for (const [k, v] of Object.entries(linux.sysctl ?? {})) {
    if (!/^[a-zA-Z0-9_.\-/]+$/.test(k) || k.includes('..'))
      throw invalidField(`linux.sysctl.${k}`, 'invalid sysctl name');
    // As runc: the hostname has a field of its own, which a sysctl would silently override.
    if (k === 'kernel.hostname')
      throw invalidField('linux.sysctl.kernel.hostname', 'conflicts with the "hostname" field: set the hostname there');
    if (k === 'kernel.domainname' && spec.domainname !== undefined && spec.domainname !== v)
      throw invalidField(
        'linux.sysctl.kernel.domainname',
        `${shown(v)} conflicts with the "domainname" field (${shown(spec.domainname)})`,
      );
    const ns = sysctlNamespace(k);
    if (!ns)
      throw invalidField(
        `linux.sysctl.${k}`,
        'is not in a separate kernel namespace: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*, kernel.domainname, user.*) can be set',
      );
    if (!hasNs(ns)) throw invalidField(`linux.sysctl.${k}`, `needs a ${ns} namespace`);
    e.nested(Tag.SYSCTL, new Encoder().str(Tag.K_A, k).str(Tag.K_B, v));
  }
  if (spec.process?.oomScoreAdj !== undefined) e.i32(Tag.OOM_SCORE_ADJ, spec.process.oomScoreAdj);
  if (linux.personality) e.u32(Tag.PERSONALITY, personality(linux.personality));
  if (opts.console)
    e.nested(Tag.CONSOLE, new Encoder().u32(Tag.K_A, opts.console.rows).u32(Tag.K_B, opts.console.cols));
  if (opts.pauseBeforePivot) e.u32(Tag.PAUSE, PausePoint.PRE_PIVOT);
  if (opts.seccompEarly) e.u32(Tag.SECCOMP_EARLY, 1);
  if (spec.process) e.nested(Tag.PROCESS, encodeProcess(spec.process, 'process', opts.process));
  return { message: e.message(Msg.PLAN), cloneFlags, joins, userns, rootfs };
}
