// Over 400 lines because each notified call family's decision sits beside the path and caller checks they share.
// Policy decisions. Input: one notification with the arguments the native thread copied out of the caller
// (the only copy the decision and the emulation ever use). Output: deny with an errno, or an emulation
// request for hako-policy-helper built from that copy. Pure apart from reading /proc links to resolve a
// relative path or an fd (the helper re-checks NOTIF_ID_VALID before acting, so a recycled pid can at
// worst make a decision about the wrong path, never an action).
import * as fs from 'fs';
import type { NotifyEventNotif, NsInfo } from '../native/addon';
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  ERRNO,
  MNT_DETACH,
  MNT_EXPIRE,
  MNT_FORCE,
  MOUNT_FLAGS,
  MS,
  MS_MGC_MSK,
  MS_MGC_VAL,
  MS_PROPAGATION,
  OP,
  PAGE_SIZE_BOUND,
  RF_JOIN_USERNS,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  UMOUNT_NOFOLLOW,
  XATTR_CREATE,
  XATTR_REPLACE,
  totalMemory,
} from './constants';
import { matchPath, memparse, normalizePath, type MountRule, type Policy, type Profile } from './schema';
import { KINDS, idBits, type SyscallName } from './syscalls';

export type Decision =
  | { action: 'deny'; errno: number; reason: string }
  | {
      action: 'emulate';
      op: number;
      flags: number;
      ints: number[];
      strs: (string | Buffer | null)[];
      reason: string;
      /** The path acted on as the container sees it (from its mount namespace's root); the helper checks it. */
      where?: string;
    };

export interface DecisionContext {
  policy: Policy;
  profile: Profile | null;
  /** Base directory (as the caller sees it) for relative paths: `cwd` or `fd/N` of the caller. Overridable for tests. */
  callerDir?: (pid: number, dirfd: number) => string | null;
  /**
   * The caller's root directory as the container sees it (from its mount namespace's root): '/' unless the
   * caller is chrooted. Overridable for tests (a test giving only `callerDir` gets '/').
   */
  callerRoot?: (pid: number) => string | null;
}

/** Audit-friendly view of the call. */
export interface CallView {
  syscall: string;
  args: Record<string, string | number | null>;
}

const ST_OK = 1;
const ST_NULL = 2;
const ST_FAULT = 3;
const ST_LONG = 4;

function deny(errno: number, reason: string): Decision {
  return { action: 'deny', errno, reason };
}

/** The path as policies are written (UTF-8) when the bytes are valid UTF-8; else the raw latin1 form. */
function forMatch(latin1: string): string {
  if (!/[\x80-\xff]/.test(latin1)) return latin1;
  const b = Buffer.from(latin1, 'latin1');
  const u = b.toString('utf8');
  return Buffer.from(u, 'utf8').equals(b) ? u : latin1;
}

function readlinkSafe(p: string): string | null {
  try {
    return fs.readlinkSync(p, { encoding: 'latin1' });
  } catch {
    return null;
  }
}

/**
 * The caller's directory for a relative path, as the caller sees it: the link of /proc/<tid>/cwd (or fd/N)
 * made relative to /proc/<tid>/root. null when it cannot be known (outside the root, deleted, not a path).
 */
export function callerDir(pid: number, dirfd: number): string | null {
  const base = readlinkSafe(`/proc/${pid}/${dirfd === AT_FDCWD ? 'cwd' : `fd/${dirfd}`}`);
  const root = readlinkSafe(`/proc/${pid}/root`);
  if (base === null || root === null || !base.startsWith('/') || base.endsWith(' (deleted)')) return null;
  if (root === '/') return base;
  if (base === root) return '/';
  if (base.startsWith(root + '/')) return base.slice(root.length);
  return null;
}

/**
 * The caller's root as the container sees it: the link of /proc/<tid>/root. For a caller in another mount
 * namespace the kernel writes it relative to that namespace's root ('/' for a container's init, '/sub' after
 * `chroot /sub`). null when it is not a path (deleted, unreachable).
 */
export function callerRoot(pid: number): string | null {
  const root = readlinkSafe(`/proc/${pid}/root`);
  if (root === null || !root.startsWith('/') || root.endsWith(' (deleted)')) return null;
  return normalizePath(root);
}

/**
 * A path argument, absolute and lexically normalized, twice: `caller` as the caller sees it (resolved by the
 * helper inside the caller's root) and `view` as the container sees it from its mount namespace's root (what
 * the policy matches, and where the helper checks that the resolved object really is). They differ for a
 * chrooted caller: `mount("/foo")` after `chroot /sub` is a mount on the container's /sub/foo.
 */
interface Resolved {
  caller: string;
  view: string;
}

function rootOf(ctx: DecisionContext, pid: number): string | null {
  if (ctx.callerRoot) return ctx.callerRoot(pid);
  if (ctx.callerDir) return '/';
  return callerRoot(pid);
}

function inRoot(ctx: DecisionContext, pid: number, callerPath: string): Resolved | null {
  const root = rootOf(ctx, pid);
  if (root === null) return null;
  return { caller: callerPath, view: root === '/' ? callerPath : normalizePath(`${root}/${callerPath}`) };
}

/** A path argument (dirfd: AT_FDCWD or an fd of the caller), see Resolved. */
function resolvePath(ctx: DecisionContext, pid: number, dirfd: number, p: string): Resolved | null {
  if (p.startsWith('/')) return inRoot(ctx, pid, normalizePath(p));
  const base = (ctx.callerDir ?? callerDir)(pid, dirfd);
  if (base === null) return null;
  return inRoot(ctx, pid, normalizePath(`${base}/${p}`));
}

/** The caller's fd (or cwd) as a path, see Resolved. */
function resolveFd(ctx: DecisionContext, pid: number, fd: number): Resolved | null {
  const p = (ctx.callerDir ?? callerDir)(pid, fd);
  return p === null ? null : inRoot(ctx, pid, normalizePath(p));
}

function i32(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}
function u32(v: bigint): number {
  return Number(BigInt.asUintN(32, v));
}

function argState(n: NotifyEventNotif, i: number, what: string, longErrno: number): Decision | null {
  const st = n.states[i];
  if (st === ST_FAULT) return deny(ERRNO.EFAULT, `${what}: unreadable pointer`);
  if (st === ST_LONG) return deny(longErrno, `${what}: too long`);
  return null;
}

function str(n: NotifyEventNotif, i: number): string | null {
  const s = n.strs[i];
  return typeof s === 'string' ? s : null;
}

function flagNames(f: number): string {
  const names = Object.entries(MOUNT_FLAGS)
    .filter(([, v]) => v.ms && f & v.ms)
    .map(([k]) => k);
  for (const [k, v] of Object.entries(MS))
    if (f & v && !Object.values(MOUNT_FLAGS).some((m) => m.ms === v)) names.push(k.toLowerCase());
  return names.join(',') || '0';
}

/** tmpfs-style size: memparse, or N% of RAM. null when it is not a size. */
function sizeBytes(v: string): bigint | null {
  const pct = /^([0-9]+)%$/.exec(v);
  if (pct) return (BigInt(totalMemory()) * BigInt(pct[1])) / 100n;
  return memparse(v);
}

function checkLimits(rule: MountRule, opts: [string, string | null][]): string | null {
  for (const [key, max] of rule.limits) {
    const sizeLike = key === 'size';
    const found = opts.filter(([k]) => k === key || (sizeLike && k === 'nr_blocks'));
    if (found.length === 0) return `${key}= is required (at most ${max})`;
    for (const [k, v] of found) {
      if (v === null) return `${k} needs a value`;
      let n: bigint | null;
      if (k === 'nr_blocks') {
        const b = memparse(v);
        n = b === null ? null : b * BigInt(PAGE_SIZE_BOUND);
      } else n = sizeLike ? sizeBytes(v) : memparse(v);
      if (n === null) return `${k}=${v}: not a number`;
      if (n === 0n) return `${k}=${v}: 0 means unlimited`;
      if (n > max) return `${k}=${v}: above the limit ${max}`;
    }
  }
  return null;
}

function decideMount(n: NotifyEventNotif, ctx: DecisionContext, profile: Profile): Decision {
  const e =
    argState(n, 1, 'target', ERRNO.ENAMETOOLONG) ??
    argState(n, 0, 'source', ERRNO.ENAMETOOLONG) ??
    argState(n, 2, 'filesystem type', ERRNO.ENODEV) ??
    argState(n, 4, 'data', ERRNO.EINVAL);
  if (e) return e;
  if (n.states[1] === ST_NULL) return deny(ERRNO.EFAULT, 'target: NULL');
  let flags = n.args[3];
  if ((flags & MS_MGC_MSK) === MS_MGC_VAL) flags &= ~MS_MGC_MSK;
  if (flags >> 32n) return deny(profile.errno, `unknown mount flags 0x${flags.toString(16)}`);
  const f = Number(flags);
  const rawTarget = str(n, 1)!;
  const resolved = resolvePath(ctx, n.pid, AT_FDCWD, rawTarget);
  if (resolved === null)
    return deny(profile.errno, `target ${JSON.stringify(rawTarget)}: cannot resolve a relative path`);
  const target = resolved.view;
  if (f & MS.REMOUNT) return deny(profile.errno, `remount of ${target} is not allowed`);
  if (f & MS.MOVE) return deny(profile.errno, `move mount onto ${target} is not allowed`);
  if (f & MS_PROPAGATION) return deny(profile.errno, `propagation change of ${target} is not allowed`);
  const bind = (f & MS.BIND) !== 0;
  const fstype = str(n, 2);
  const source = str(n, 0);
  let sourcePath: string | null = null;
  let sourceCaller: string | null = null;
  if (bind) {
    if (source === null) return deny(ERRNO.EFAULT, 'bind source: NULL');
    const src = resolvePath(ctx, n.pid, AT_FDCWD, source);
    if (src === null)
      return deny(profile.errno, `bind source ${JSON.stringify(source)}: cannot resolve a relative path`);
    sourcePath = src.view;
    sourceCaller = src.caller;
  } else if (fstype === null) {
    return deny(ERRNO.EFAULT, 'filesystem type: NULL');
  }
  const tMatch = forMatch(target);
  let why: string | null = null;
  for (const rule of profile.mount) {
    if (rule.bind !== bind) continue;
    if (!bind && !rule.types.has(fstype!)) continue;
    if (!matchPath(rule.targets, tMatch)) continue;
    const problem: { attrs: number; options?: string[] } | string = bind
      ? checkBind(rule, f, sourcePath!)
      : checkNew(rule, f, source, str(n, 4) ?? '');
    if (typeof problem === 'string') {
      why ??= `${rule.field}: ${problem}`;
      continue;
    }
    const flagsHelper = rule.privileged ? 0 : RF_JOIN_USERNS;
    if (bind)
      return {
        action: 'emulate',
        op: OP.BIND,
        flags: flagsHelper,
        ints: [problem.attrs, f & MS.REC ? 1 : 0, 0, 0, 0, 0],
        strs: [null, sourceCaller, resolved.caller, null, target, sourcePath],
        reason: `${rule.field}: bind ${sourcePath} on ${target}`,
        where: target,
      };
    return {
      action: 'emulate',
      op: OP.MOUNT,
      flags: flagsHelper,
      ints: [problem.attrs, 0, 0, 0, 0, 0],
      strs: [fstype, source, resolved.caller, (problem.options ?? []).join('\0'), target, null],
      reason: `${rule.field}: ${fstype} on ${target}`,
      where: target,
    };
  }
  return deny(
    profile.errno,
    why ?? `no mount rule allows ${bind ? `a bind mount of ${sourcePath}` : fstype} on ${target}`,
  );
}

function attrsOf(f: number, rule: MountRule): number {
  let attrs = rule.forceAttrs;
  for (const v of Object.values(MOUNT_FLAGS)) if (v.attr !== undefined && f & v.ms) attrs |= v.attr;
  return attrs;
}

// Flags that grant nothing: always accepted.
const HARMLESS = MS.SILENT | MS.RELATIME;

function checkNew(
  rule: MountRule,
  f: number,
  source: string | null,
  data: string,
): { attrs: number; options: string[] } | string {
  const extra = f & ~(rule.flags | HARMLESS);
  if (extra) return `flags not allowed: ${flagNames(extra)}`;
  if (rule.sources && (source === null || !(rule.sources as RegExp[]).some((r) => r.test(source))))
    return `source ${JSON.stringify(source)} not allowed`;
  const opts: [string, string | null][] = [];
  for (const o of data.split(',')) {
    if (!o) continue;
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq);
    const v = eq < 0 ? null : o.slice(eq + 1);
    if (!rule.options.has(k)) return `option ${JSON.stringify(k)} not allowed`;
    const pat = rule.options.get(k);
    if (pat && (v === null || !pat.test(v))) return `option ${k}=${v ?? ''} not allowed`;
    opts.push([k, v]);
  }
  const lim = checkLimits(rule, opts);
  if (lim) return lim;
  const options = opts.map(([k, v]) => (v === null ? k : `${k}=${v}`));
  for (const v of Object.values(MOUNT_FLAGS)) if (v.sb && f & v.ms) options.push(v.sb);
  return { attrs: attrsOf(f, rule), options };
}

function checkBind(rule: MountRule, f: number, source: string): { attrs: number } | string {
  const extra = f & ~(rule.flags | HARMLESS | MS.BIND);
  if (extra) return `flags not allowed: ${flagNames(extra)}`;
  if (!matchPath(rule.sources as { source: string; re: RegExp }[], forMatch(source)))
    return `bind source ${source} not allowed`;
  return { attrs: attrsOf(f, rule) };
}

function decideUmount(n: NotifyEventNotif, ctx: DecisionContext, profile: Profile, name: SyscallName): Decision {
  const e = argState(n, 0, 'target', ERRNO.ENAMETOOLONG);
  if (e) return e;
  if (n.states[0] === ST_NULL) return deny(ERRNO.EFAULT, 'target: NULL');
  const flags = name === 'umount' ? 0 : i32(n.args[1]);
  if (flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW))
    return deny(ERRNO.EINVAL, 'unknown umount flags');
  const resolved = resolvePath(ctx, n.pid, AT_FDCWD, str(n, 0)!);
  if (resolved === null) return deny(profile.errno, 'target: cannot resolve a relative path');
  const target = resolved.view;
  if (flags & (MNT_FORCE | MNT_EXPIRE)) return deny(profile.errno, `umount of ${target}: force/expire are not allowed`);
  let why: string | null = null;
  for (const rule of profile.umount) {
    if (!matchPath(rule.targets, forMatch(target))) continue;
    if (flags & MNT_DETACH && !rule.detach) {
      why ??= `${rule.field}: detach not allowed`;
      continue;
    }
    return {
      action: 'emulate',
      op: OP.UMOUNT,
      flags: RF_JOIN_USERNS,
      ints: [flags & MNT_DETACH, 0, 0, 0, 0, 0],
      strs: [null, null, resolved.caller, null, target, null],
      reason: `${rule.field}: umount ${target}`,
      where: target,
    };
  }
  return deny(profile.errno, why ?? `no umount rule allows ${target}`);
}

function decodeDev(dev: number): [number, number] {
  return [(dev & 0xfff00) >>> 8, (dev & 0xff) | ((dev >>> 12) & 0xfff00)];
}

function decideMknod(n: NotifyEventNotif, ctx: DecisionContext, profile: Profile, name: SyscallName): Decision {
  const at = name === 'mknodat' ? 1 : 0;
  const e = argState(n, at, 'path', ERRNO.ENAMETOOLONG);
  if (e) return e;
  if (n.states[at] === ST_NULL) return deny(ERRNO.EFAULT, 'path: NULL');
  const dirfd = at ? i32(n.args[0]) : AT_FDCWD;
  const raw = str(n, at)!;
  if (raw === '') return deny(ERRNO.ENOENT, 'empty path');
  const resolved = resolvePath(ctx, n.pid, dirfd, raw);
  if (resolved === null) return deny(profile.errno, 'path: cannot resolve a relative path');
  if (resolved.caller === '/') return deny(ERRNO.EEXIST, 'path is /');
  const p = resolved.view;
  let mode = u32(n.args[at + 1]);
  let type = mode & S_IFMT;
  if (type === 0) {
    type = S_IFREG;
    mode |= S_IFREG;
  }
  if (![S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK].includes(type)) return deny(ERRNO.EINVAL, 'invalid file type');
  const [major, minor] = decodeDev(u32(n.args[at + 2]));
  const isDev = type === S_IFCHR || type === S_IFBLK;
  let why: string | null = null;
  for (const rule of profile.mknod) {
    if (!matchPath(rule.paths, forMatch(p))) continue;
    if (isDev) {
      const t = type === S_IFCHR ? 'c' : 'b';
      if (
        !rule.devices.some(
          (d) =>
            d.type === t && major >= d.major[0] && major <= d.major[1] && minor >= d.minor[0] && minor <= d.minor[1],
        )
      ) {
        why ??= `${rule.field}: device ${t} ${major}:${minor} not allowed`;
        continue;
      }
    } else if (!rule.nodes) {
      why ??= `${rule.field}: fifos, sockets and files are not allowed (nodes: true)`;
      continue;
    }
    return {
      action: 'emulate',
      op: OP.MKNOD,
      flags: 0,
      ints: [mode, isDev ? major : 0, isDev ? minor : 0, 0, 0, 0],
      strs: [null, null, resolved.caller, null, p, null],
      reason: `${rule.field}: mknod ${p}`,
      where: p,
    };
  }
  return deny(profile.errno, why ?? `no mknod rule allows ${p}`);
}

function decideHostname(n: NotifyEventNotif, profile: Profile, name: SyscallName): Decision {
  if (n.states[0] === ST_LONG) return deny(ERRNO.EINVAL, 'name longer than 64 bytes');
  if (i32(n.args[1]) < 0) return deny(ERRNO.EINVAL, 'negative length');
  if (n.states[0] === ST_FAULT) return deny(ERRNO.EFAULT, 'name: unreadable pointer');
  const buf = (n.strs[0] as Buffer | null) ?? Buffer.alloc(0);
  const value = buf.toString('latin1');
  const rule = profile.sethostname;
  const domain = name === 'setdomainname';
  const pats = rule ? (domain ? rule.domainnames : rule.names) : [];
  if (!pats.some((r) => r.test(value))) return deny(profile.errno, `${name} ${JSON.stringify(value)} not allowed`);
  return {
    action: 'emulate',
    op: OP.SETHOSTNAME,
    flags: RF_JOIN_USERNS,
    ints: [domain ? 1 : 0, 0, 0, 0, 0, 0],
    strs: [buf, null, null, null, null, null],
    reason: `${rule!.field}: ${name} ${value}`,
  };
}

function decideXattr(n: NotifyEventNotif, ctx: DecisionContext, profile: Profile, name: SyscallName): Decision {
  const byFd = name === 'fsetxattr';
  const e =
    (byFd ? null : argState(n, 0, 'path', ERRNO.ENAMETOOLONG)) ??
    argState(n, 1, 'name', ERRNO.ERANGE) ??
    argState(n, 2, 'value', ERRNO.E2BIG);
  if (e) return e;
  if (!byFd && n.states[0] === ST_NULL) return deny(ERRNO.EFAULT, 'path: NULL');
  if (n.states[1] === ST_NULL) return deny(ERRNO.EFAULT, 'name: NULL');
  const xname = str(n, 1)!;
  if (xname === '') return deny(ERRNO.ERANGE, 'empty attribute name');
  const flags = i32(n.args[4]);
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return deny(ERRNO.EINVAL, 'unknown xattr flags');
  const value = (n.strs[2] as Buffer | null) ?? Buffer.alloc(0);
  const resolved = byFd ? resolveFd(ctx, n.pid, i32(n.args[0])) : resolvePath(ctx, n.pid, AT_FDCWD, str(n, 0)!);
  if (resolved === null)
    return deny(profile.errno, byFd ? "fd: not a file in the caller's root" : 'path: cannot resolve a relative path');
  const p = resolved.view;
  let why: string | null = null;
  for (const rule of profile.setxattr) {
    if (!matchPath(rule.paths, forMatch(p))) continue;
    if (!rule.names.some((r) => r.test(xname))) {
      why ??= `${rule.field}: attribute ${xname} not allowed`;
      continue;
    }
    if (value.length > rule.maxSize) {
      why ??= `${rule.field}: value larger than ${rule.maxSize}`;
      continue;
    }
    return {
      action: 'emulate',
      op: OP.SETXATTR,
      flags: 0,
      ints: [flags, name === 'setxattr' ? 1 : 0, -1, 0, 0, 0],
      strs: [xname, value, resolved.caller, null, p, null],
      reason: `${rule.field}: ${xname} on ${p}`,
      where: p,
    };
  }
  return deny(profile.errno, why ?? `no setxattr rule allows ${xname} on ${p}`);
}

function inRanges(r: [number, number][], v: number): boolean {
  return r.some(([lo, hi]) => v >= lo && v <= hi);
}

function decideChown(n: NotifyEventNotif, ctx: DecisionContext, profile: Profile, name: SyscallName): Decision {
  const bits = idBits(n.arch, name);
  const id = (v: bigint) => {
    const x = bits === 16 ? Number(BigInt.asUintN(16, v)) : u32(v);
    return (bits === 16 && x === 0xffff) || (bits === 32 && x === 0xffffffff) ? -1 : x;
  };
  let r: Resolved | null;
  let uid: number, gid: number;
  let follow = 1;
  if (name === 'fchown' || name === 'fchown32') {
    r = resolveFd(ctx, n.pid, i32(n.args[0]));
    uid = id(n.args[1]);
    gid = id(n.args[2]);
    follow = 0;
    if (r === null) return deny(profile.errno, "fd: not a file in the caller's root");
  } else if (name === 'fchownat') {
    const e = argState(n, 1, 'path', ERRNO.ENAMETOOLONG);
    if (e) return e;
    if (n.states[1] === ST_NULL) return deny(ERRNO.EFAULT, 'path: NULL');
    const flags = i32(n.args[4]);
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) return deny(ERRNO.EINVAL, 'unknown fchownat flags');
    const dirfd = i32(n.args[0]);
    const raw = str(n, 1)!;
    uid = id(n.args[2]);
    gid = id(n.args[3]);
    follow = flags & AT_SYMLINK_NOFOLLOW ? 0 : 1;
    if (raw === '' && flags & AT_EMPTY_PATH) {
      r = resolveFd(ctx, n.pid, dirfd);
      follow = 0;
    } else if (raw === '') {
      return deny(ERRNO.ENOENT, 'empty path');
    } else r = resolvePath(ctx, n.pid, dirfd, raw);
    if (r === null) return deny(profile.errno, 'path: cannot resolve');
  } else {
    const e = argState(n, 0, 'path', ERRNO.ENAMETOOLONG);
    if (e) return e;
    if (n.states[0] === ST_NULL) return deny(ERRNO.EFAULT, 'path: NULL');
    if (str(n, 0) === '') return deny(ERRNO.ENOENT, 'empty path');
    r = resolvePath(ctx, n.pid, AT_FDCWD, str(n, 0)!);
    uid = id(n.args[1]);
    gid = id(n.args[2]);
    follow = name === 'lchown' || name === 'lchown32' ? 0 : 1;
    if (r === null) return deny(profile.errno, 'path: cannot resolve a relative path');
  }
  const p = r.view;
  let why: string | null = null;
  for (const rule of profile.chown) {
    if (!matchPath(rule.paths, forMatch(p))) continue;
    if (uid !== -1 && !inRanges(rule.uids, uid)) {
      why ??= `${rule.field}: uid ${uid} not allowed`;
      continue;
    }
    if (gid !== -1 && !inRanges(rule.gids, gid)) {
      why ??= `${rule.field}: gid ${gid} not allowed`;
      continue;
    }
    return {
      action: 'emulate',
      op: OP.CHOWN,
      flags: RF_JOIN_USERNS,
      ints: [uid, gid, -1, follow, 0, 0],
      strs: [null, null, r.caller, null, p, null],
      reason: `${rule.field}: chown ${p} ${uid}:${gid}`,
      where: p,
    };
  }
  return deny(profile.errno, why ?? `no chown rule allows ${p} ${uid}:${gid}`);
}

/** What the server knows about the caller and its container, for checkCaller. */
export interface CallerScope {
  /** The caller's namespaces, read through its validated /proc/<tid> (null: they could not be read). */
  ns: NsInfo | null;
  /** The container's init's user and pid namespaces (inodes, pinned by the server while it is registered). */
  containerUserns: number;
  containerPidns: number;
  /** The container's owner: the uid of the peer that registered it (0: the runtime running as root). */
  owner: number;
  /** The server serves callers in the initial user namespace (containers without one; --host-callers). */
  hostCallers: boolean;
}

const CAP_CHOWN = 0;
const CAP_SYS_ADMIN = 21;
const CAP_MKNOD = 27;
const CAP_SETFCAP = 31;
const CAP_NAMES: Record<number, string> = {
  [CAP_CHOWN]: 'CAP_CHOWN',
  [CAP_SYS_ADMIN]: 'CAP_SYS_ADMIN',
  [CAP_MKNOD]: 'CAP_MKNOD',
  [CAP_SETFCAP]: 'CAP_SETFCAP',
};

/**
 * The policy is a further restriction, never a grant of power: before an allowed call is emulated, check that
 * the caller is a process of the container it was registered as, and that the kernel would have let the
 * caller make the call itself (the capability the call needs, in the user namespace the kernel checks it in).
 * Returns null, or the reason for EPERM.
 *
 * - The caller must be in the container's user namespace or one nested in it, and in its pid namespace or
 *   one nested in it (a notify fd of some other process, sent under this container's name, fails here).
 * - A caller in the initial user namespace (a host process, or a container without a user namespace) only
 *   when the server was started for host callers, and only for a container registered by root.
 * - mount, bind, umount: CAP_SYS_ADMIN over the caller's mount namespace, as the kernel checks it: in the
 *   user namespace owning it, which must be the caller's own (or one nested in it, owned by the caller); a
 *   caller in a nested user namespace that did not make its own mount namespace has no power over the
 *   container's mounts. sethostname: the same over the UTS namespace. chown: CAP_CHOWN; mknod: CAP_MKNOD; trusted.* and security.* attributes:
 *   CAP_SYS_ADMIN (security.capability: CAP_SETFCAP), each in the caller's own user namespace.
 * - Calls done with host privilege (mknod of a device, trusted./security. attributes, `privileged` mount
 *   rules) only for containers registered by root: a non-root runtime user could not make them either.
 */
export function checkCaller(
  n: NotifyEventNotif,
  d: Decision & { action: 'emulate' },
  scope: CallerScope,
): string | null {
  const c = n.creds;
  if (!c) return "the caller's credentials could not be read";
  const ns = scope.ns;
  if (!ns || ns.user.length === 0 || ns.pid.length === 0) return "the caller's namespaces could not be read";
  const users = ns.user.map(([ino]) => ino);
  if (!users.includes(scope.containerUserns))
    return "the caller is not in the container's user namespace (nor one nested in it)";
  if (!ns.pid.includes(scope.containerPidns))
    return "the caller is not in the container's pid namespace (nor one nested in it)";
  const own = ns.user[0];
  const initial = ns.user.length === 1;
  if (initial && !scope.hostCallers)
    return 'the caller is in the initial user namespace (a host process, or a container without a user namespace): the server is not configured for host callers';
  if (initial && scope.owner !== 0)
    return `the caller is in the initial user namespace and the container's owner (uid ${scope.owner}) is not root`;
  // The outermost user namespace below the initial one belongs to the container's owner (checked when the
  // container was registered); checked again here for the caller's own chain.
  if (!initial && scope.owner !== 0 && ns.user[ns.user.length - 2][1] !== scope.owner)
    return `the caller's user namespace is not owned by the container's owner (uid ${scope.owner})`;
  const caps = c.capEff;
  const has = (cap: number) => ((caps >> BigInt(cap)) & 1n) === 1n;
  const who = `uid ${c.euid} with capabilities 0x${caps.toString(16)}`;
  // The kernel's ns_capable(): walking up from the namespace checked, the caller's own user namespace must be
  // reached (then its effective set decides), or a child of it that the caller's euid owns (all capabilities).
  const need = (cap: number, over: [number, number][] | null, what: string): string | null => {
    const lacks = `the caller (${who}) lacks ${CAP_NAMES[cap]} in its user namespace: the kernel would refuse it`;
    if (over === null) return has(cap) ? null : lacks;
    for (let i = 0; i < over.length; i++) {
      if (over[i][0] === own[0]) return has(cap) ? null : lacks;
      if (i + 1 < over.length && over[i + 1][0] === own[0] && over[i][1] === c.euid) return null;
    }
    return `the caller (${who}) is in a user namespace with no power over its ${what} (an outer user namespace owns it): the kernel would refuse it`;
  };
  const hostPrivilege = (what: string): string | null =>
    scope.owner === 0
      ? null
      : `${what} needs host privilege, which the container's owner (uid ${scope.owner}) does not have`;
  switch (d.op) {
    case OP.MOUNT:
    case OP.BIND:
    case OP.UMOUNT:
      return (
        need(CAP_SYS_ADMIN, ns.mntOwner, 'mount namespace') ??
        (d.flags & RF_JOIN_USERNS ? null : hostPrivilege('a privileged mount rule'))
      );
    case OP.SETHOSTNAME:
      return need(CAP_SYS_ADMIN, ns.utsOwner, 'UTS namespace');
    case OP.MKNOD: {
      // Fifos, sockets and regular files need no privilege (and are not notified by the generated filter).
      const type = d.ints[0] & 0o170000;
      if (type !== 0o020000 && type !== 0o060000) return null;
      return need(CAP_MKNOD, null, '') ?? hostPrivilege('a device node');
    }
    case OP.CHOWN:
      return d.ints[0] === -1 && d.ints[1] === -1 ? null : need(CAP_CHOWN, null, '');
    case OP.SETXATTR: {
      const xname = String(d.strs[0]);
      if (xname.startsWith('security.capability'))
        return need(CAP_SETFCAP, null, '') ?? hostPrivilege(`attribute ${xname}`);
      if (xname.startsWith('trusted.') || xname.startsWith('security.'))
        return need(CAP_SYS_ADMIN, null, '') ?? hostPrivilege(`attribute ${xname}`);
      return null; // user.*: permission is the file's (DAC, checked as the caller's fsuid by the helper)
    }
    default:
      return `operation ${d.op} is not known to the caller check`;
  }
}

export function syscallOf(n: NotifyEventNotif): SyscallName | null {
  return n.kind >= 0 && n.kind < KINDS.length ? KINDS[n.kind] : null;
}

/** Decide one notification. */
export function decide(n: NotifyEventNotif, ctx: DecisionContext): Decision {
  const name = syscallOf(n);
  if (!name)
    return deny(ctx.profile?.errno ?? ctx.policy.defaultErrno, `syscall ${n.nr} is not handled by the policy server`);
  if (n.pid === 0)
    return deny(
      ctx.profile?.errno ?? ctx.policy.defaultErrno,
      "the caller is not visible in the server's pid namespace",
    );
  const profile = ctx.profile;
  if (!profile) return deny(ctx.policy.defaultErrno, 'no profile matches this container');
  switch (name) {
    case 'mount':
      return decideMount(n, ctx, profile);
    case 'umount2':
    case 'umount':
      return decideUmount(n, ctx, profile, name);
    case 'pivot_root':
      // Never emulated: it moves the root mount and the old root elsewhere, which the policy refuses as
      // MS_MOVE. (It is notified rather than refused in the kernel so that the refusal is audited.)
      return deny(
        profile.errno,
        `pivot_root(${JSON.stringify(str(n, 0))}, ${JSON.stringify(str(n, 1))}) is never allowed (it moves mounts, like MS_MOVE)`,
      );
    case 'mknod':
    case 'mknodat':
      return decideMknod(n, ctx, profile, name);
    case 'sethostname':
    case 'setdomainname':
      return decideHostname(n, profile, name);
    case 'setxattr':
    case 'lsetxattr':
    case 'fsetxattr':
      return decideXattr(n, ctx, profile, name);
    default:
      return decideChown(n, ctx, profile, name);
  }
}

function printable(s: string | Buffer | null): string | null {
  if (s === null) return null;
  const t = typeof s === 'string' ? s : s.toString('latin1');
  const u = forMatch(t);
  return u.length > 512 ? u.slice(0, 512) + '…' : u;
}

/** The call's arguments for an audit line. */
export function describeCall(n: NotifyEventNotif): CallView {
  const name = syscallOf(n);
  const a = n.args;
  const s = (i: number) =>
    n.states[i] === ST_OK
      ? printable(n.strs[i])
      : n.states[i] === ST_NULL
        ? null
        : `<${['', '', 'null', 'fault', 'too long'][n.states[i]]}>`;
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  switch (name) {
    case 'mount':
      return { syscall: name, args: { source: s(0), target: s(1), fstype: s(2), flags: hex(a[3]), data: s(4) } };
    case 'umount2':
      return { syscall: name, args: { target: s(0), flags: hex(a[1]) } };
    case 'umount':
      return { syscall: name, args: { target: s(0) } };
    case 'pivot_root':
      return { syscall: name, args: { new_root: s(0), put_old: s(1) } };
    case 'mknod':
      return { syscall: name, args: { path: s(0), mode: `0${u32(a[1]).toString(8)}`, dev: hex(a[2]) } };
    case 'mknodat':
      return {
        syscall: name,
        args: { dirfd: i32(a[0]), path: s(1), mode: `0${u32(a[2]).toString(8)}`, dev: hex(a[3]) },
      };
    case 'sethostname':
    case 'setdomainname':
      return { syscall: name, args: { name: s(0) } };
    case 'setxattr':
    case 'lsetxattr':
      return { syscall: name, args: { path: s(0), name: s(1), size: Number(a[3]), flags: i32(a[4]) } };
    case 'fsetxattr':
      return { syscall: name, args: { fd: i32(a[0]), name: s(1), size: Number(a[3]), flags: i32(a[4]) } };
    case 'fchownat':
      return {
        syscall: name,
        args: { dirfd: i32(a[0]), path: s(1), uid: i32(a[2]), gid: i32(a[3]), flags: i32(a[4]) },
      };
    case 'fchown':
    case 'fchown32':
      return { syscall: name, args: { fd: i32(a[0]), uid: i32(a[1]), gid: i32(a[2]) } };
    case null:
      return { syscall: `nr ${n.nr}`, args: Object.fromEntries(a.map((v, i) => [`a${i}`, hex(v)])) };
    default:
      return { syscall: name, args: { path: s(0), uid: i32(a[1]), gid: i32(a[2]) } };
  }
}
