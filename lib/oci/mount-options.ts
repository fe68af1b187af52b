// OCI mount options -> mount(2) flags, propagation, recursive attributes and filesystem data,
// with runc's vocabulary (config.md "Mounts" and runc's mount option table).
import { invalidField } from '../errors';
import { MOUNT_ATTR, MS } from './constants';

export interface ParsedMountOptions {
  flags: number;
  propagation: number;
  attrSet: number;
  attrClr: number;
  data: string[];
  bind: 0 | 1 | 2;
  /** 1: idmap (the mount itself), 2: ridmap (recursively). */
  idmap: 0 | 1 | 2;
  /** tmpcopyup: a tmpfs starts with a copy of the directory it covers. */
  copyUp?: boolean;
}

const SET: Record<string, number> = {
  bind: MS.BIND,
  dirsync: MS.DIRSYNC,
  iversion: MS.I_VERSION,
  lazytime: MS.LAZYTIME,
  mand: MS.MANDLOCK,
  noatime: MS.NOATIME,
  nodev: MS.NODEV,
  nodiratime: MS.NODIRATIME,
  noexec: MS.NOEXEC,
  nosuid: MS.NOSUID,
  rbind: MS.BIND | MS.REC,
  relatime: MS.RELATIME,
  remount: MS.REMOUNT,
  ro: MS.RDONLY,
  silent: MS.SILENT,
  strictatime: MS.STRICTATIME,
  sync: MS.SYNCHRONOUS,
  nosymfollow: MS.NOSYMFOLLOW,
};

const CLEAR: Record<string, number> = {
  async: MS.SYNCHRONOUS,
  atime: MS.NOATIME,
  defaults: 0,
  dev: MS.NODEV,
  diratime: MS.NODIRATIME,
  exec: MS.NOEXEC,
  loud: MS.SILENT,
  noiversion: MS.I_VERSION,
  nolazytime: MS.LAZYTIME,
  nomand: MS.MANDLOCK,
  norelatime: MS.RELATIME,
  nostrictatime: MS.STRICTATIME,
  rw: MS.RDONLY,
  suid: MS.NOSUID,
  symfollow: MS.NOSYMFOLLOW,
};

/** Mount propagation by its OCI name (mount options and linux.rootfsPropagation). */
export const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

// Recursive attributes applied with mount_setattr(AT_RECURSIVE): [set, clear].
const RECURSIVE: Record<string, [number, number]> = {
  rro: [MOUNT_ATTR.RDONLY, 0],
  rrw: [0, MOUNT_ATTR.RDONLY],
  rnosuid: [MOUNT_ATTR.NOSUID, 0],
  rsuid: [0, MOUNT_ATTR.NOSUID],
  rnodev: [MOUNT_ATTR.NODEV, 0],
  rdev: [0, MOUNT_ATTR.NODEV],
  rnoexec: [MOUNT_ATTR.NOEXEC, 0],
  rexec: [0, MOUNT_ATTR.NOEXEC],
  rnodiratime: [MOUNT_ATTR.NODIRATIME, 0],
  rdiratime: [0, MOUNT_ATTR.NODIRATIME],
  rrelatime: [MOUNT_ATTR.RELATIME, MOUNT_ATTR._ATIME],
  rnorelatime: [0, 0],
  rnoatime: [MOUNT_ATTR.NOATIME, MOUNT_ATTR._ATIME],
  ratime: [0, 0],
  rstrictatime: [MOUNT_ATTR.STRICTATIME, MOUNT_ATTR._ATIME],
  rnostrictatime: [0, 0],
  rnosymfollow: [MOUNT_ATTR.NOSYMFOLLOW, 0],
  rsymfollow: [0, MOUNT_ATTR.NOSYMFOLLOW],
};

export function parseMountOptions(options: string[] | undefined, field: string): ParsedMountOptions {
  const out: ParsedMountOptions = { flags: 0, propagation: 0, attrSet: 0, attrClr: 0, data: [], bind: 0, idmap: 0 };
  (options ?? []).forEach((opt, i) => {
    if (typeof opt !== 'string') throw invalidField(`${field}[${i}]`, 'must be a string');
    if (opt in SET) out.flags |= SET[opt];
    else if (opt in CLEAR) out.flags &= ~CLEAR[opt];
    else if (opt in PROPAGATION) out.propagation |= PROPAGATION[opt];
    else if (opt in RECURSIVE) {
      out.attrSet |= RECURSIVE[opt][0];
      out.attrClr |= RECURSIVE[opt][1];
    } else if (opt === 'idmap' || opt === 'ridmap') {
      out.idmap = opt === 'ridmap' ? 2 : 1;
    } else if (opt === 'tmpcopyup') {
      out.copyUp = true; // steers the runtime: never reaches the kernel
    } else out.data.push(opt);
  });
  if (out.flags & MS.BIND) out.bind = out.flags & MS.REC ? 2 : 1;
  return out;
}
