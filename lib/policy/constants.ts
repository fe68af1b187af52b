// Kernel constants the policy server decides on: errno names, mount(2) flags and their new-mount-API
// equivalents, and the helper's operations (src-native/helper/policy_proto.h).
import { MOUNT_ATTR, MS } from '../oci/constants';
import * as os from 'os';

export const ERRNO: Readonly<Record<string, number>> = Object.freeze({
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  ENODATA: 61,
  EOPNOTSUPP: 95,
  ENOTSUP: 95,
  ETIMEDOUT: 110,
  EALREADY: 114,
});

export const ERRNO_NAME: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(ERRNO)
      .filter(([k]) => k !== 'ENOTSUP')
      .map(([k, v]) => [v, k]),
  ),
);

export function errnoName(e: number): string {
  return ERRNO_NAME[e] ?? `errno ${e}`;
}

// mount(2) flags and mount attributes come from the project's one table (lib/oci/constants).
export { MOUNT_ATTR, MS };
export const MS_MGC_VAL = 0xc0ed0000n;
export const MS_MGC_MSK = 0xffff0000n;
export const MS_PROPAGATION = MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE;

/**
 * The mount flag names a policy may allow, with their MS_ bit and how the emulation applies them:
 * a mount attribute (fsmount/mount_setattr) or a superblock flag (fsconfig FSCONFIG_SET_FLAG).
 */
export const MOUNT_FLAGS: Readonly<Record<string, { ms: number; attr?: number; sb?: string; bindOnly?: boolean }>> =
  Object.freeze({
    ro: { ms: MS.RDONLY, attr: MOUNT_ATTR.RDONLY },
    nosuid: { ms: MS.NOSUID, attr: MOUNT_ATTR.NOSUID },
    nodev: { ms: MS.NODEV, attr: MOUNT_ATTR.NODEV },
    noexec: { ms: MS.NOEXEC, attr: MOUNT_ATTR.NOEXEC },
    nosymfollow: { ms: MS.NOSYMFOLLOW, attr: MOUNT_ATTR.NOSYMFOLLOW },
    noatime: { ms: MS.NOATIME, attr: MOUNT_ATTR.NOATIME },
    nodiratime: { ms: MS.NODIRATIME, attr: MOUNT_ATTR.NODIRATIME },
    relatime: { ms: MS.RELATIME, attr: MOUNT_ATTR.RELATIME },
    strictatime: { ms: MS.STRICTATIME, attr: MOUNT_ATTR.STRICTATIME },
    sync: { ms: MS.SYNCHRONOUS, sb: 'sync' },
    dirsync: { ms: MS.DIRSYNC, sb: 'dirsync' },
    lazytime: { ms: MS.LAZYTIME, sb: 'lazytime' },
    silent: { ms: MS.SILENT },
    rec: { ms: MS.REC, bindOnly: true },
  });

// umount2(2) flags.
export const MNT_FORCE = 1;
export const MNT_DETACH = 2;
export const MNT_EXPIRE = 4;
export const UMOUNT_NOFOLLOW = 8;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_EMPTY_PATH = 0x1000;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

export const CAP_SYS_ADMIN = 21;

/** Operations of hako-policy-helper (policy_proto.h). */
export const OP = Object.freeze({ MOUNT: 1, BIND: 2, UMOUNT: 3, MKNOD: 4, SETHOSTNAME: 5, SETXATTR: 6, CHOWN: 7 });
export const RF_JOIN_USERNS = 1;
/** The server serves callers in the initial user namespace (--host-callers): the helper may act for them. */
export const RF_HOST_OK = 2;

/** hako_policy::Stage names, for audit lines. */
export const STAGES = [
  'ok',
  'protocol',
  'proc',
  'userns',
  'creds',
  'mntns',
  'resolve',
  'prepare',
  'validate',
  'act',
  'timeout',
  'crash',
  'utsns',
  'verify',
  'moved',
];

/** Page size used to turn tmpfs nr_blocks into bytes: the largest a supported host uses (conservative). */
export const PAGE_SIZE_BOUND = process.arch === 'x64' || process.arch === 'ia32' ? 4096 : 65536;

export function totalMemory(): number {
  return os.totalmem();
}
