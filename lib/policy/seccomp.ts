// The linux.seccomp section that sends a container's privileged calls to the policy server.
import * as os from 'os';
import type { LinuxSeccomp, SeccompSyscall } from '../oci/types';
import { hostScmpArches, nativeScmpArch, type ScmpArch } from '../seccomp/arch';
import { ERRNO, S_IFBLK, S_IFCHR, S_IFMT } from './constants';

export interface PolicySeccompOptions {
  /** linux.seccomp.listenerMetadata, matched by profiles' match.metadata. */
  metadata?: string;
  /** Families notified besides mount/umount, device mknod and sethostname/setdomainname. */
  include?: ('setxattr' | 'chown')[];
  /** ABIs in the filter (default: every ABI the host runs except x32, whose calls are then killed). */
  architectures?: ScmpArch[];
  /** SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (default: when the kernel has it, >= 5.19). */
  waitKillable?: boolean;
  /**
   * What happens to the calls this section refuses in the kernel (the new mount API, io_uring), which never
   * reach the server and so leave no audit record by default:
   * - 'errno' (default): refused by the filter, silently, at no cost;
   * - 'log': refused by the filter, and SECCOMP_FILTER_FLAG_LOG has the kernel log them (audit type 1326,
   *   or the kernel log without auditd) when `errno` is in /proc/sys/kernel/seccomp/actions_logged. Note the
   *   flag logs the filter's notified calls (`user_notif`) too;
   * - 'notify': notified instead; the server answers each with the same errno and audits it (one round trip
   *   each, rate-limited like any record). Without a server they fail with ENOSYS: still refused.
   */
  kernelRefusals?: 'errno' | 'log' | 'notify';
  /**
   * A profile to extend (e.g. hako's default profile): the policy rules are put first (the first matching
   * rule decides), its default action, architectures and other rules are kept.
   */
  base?: LinuxSeccomp;
}

/** The new mount API: these would bypass the mount(2) policy, so they fail with ENOSYS (mount(8) falls back). */
export const NEW_MOUNT_API = [
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  'open_tree_attr',
  'mount_setattr',
];
/** io_uring: its operations are not seen by seccomp at all. */
export const IO_URING = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

export function kernelAtLeast(major: number, minor: number, release = os.release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

/**
 * The linux.seccomp object for a container served by the policy server at `listenerPath`: every other call
 * is allowed (combine with your own profile by appending these rules to its `syscalls`), the notified calls
 * go to the server, and the calls that could bypass it are refused in the kernel.
 */
export function policySeccompSection(listenerPath: string, opts: PolicySeccompOptions = {}): LinuxSeccomp {
  const arches = opts.architectures ?? hostScmpArches(nativeScmpArch()).filter((a) => a !== 'SCMP_ARCH_X32');
  // pivot_root is notified (and always refused, with an audit line): it rearranges the mount table as
  // MS_MOVE does, and the policy never allows that.
  const notify = ['mount', 'umount2', 'umount', 'pivot_root', 'sethostname', 'setdomainname'];
  if (opts.include?.includes('setxattr')) notify.push('setxattr', 'lsetxattr', 'fsetxattr');
  if (opts.include?.includes('chown'))
    notify.push('chown', 'lchown', 'fchown', 'fchownat', 'chown32', 'lchown32', 'fchown32');
  const devices = (name: string, modeArg: number): SeccompSyscall[] =>
    [S_IFCHR, S_IFBLK].map((type) => ({
      names: [name],
      action: 'SCMP_ACT_NOTIFY',
      args: [{ index: modeArg, value: S_IFMT, valueTwo: type, op: 'SCMP_CMP_MASKED_EQ' }],
    }));
  const waitKillable = opts.waitKillable ?? kernelAtLeast(5, 19);
  const sc: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: arches,
    listenerPath,
    syscalls: [
      { names: NEW_MOUNT_API, action: 'SCMP_ACT_ERRNO', errnoRet: ERRNO.ENOSYS },
      { names: IO_URING, action: 'SCMP_ACT_ERRNO', errnoRet: ERRNO.EPERM },
      { names: notify, action: 'SCMP_ACT_NOTIFY' },
      ...devices('mknod', 1),
      ...devices('mknodat', 2),
    ],
  };
  if (waitKillable) sc.flags = ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'];
  if (opts.kernelRefusals === 'log') sc.flags = [...(sc.flags ?? []), 'SECCOMP_FILTER_FLAG_LOG'];
  // Argument-less refusals become notifications; lib/policy/refused.ts answers them with the same errno.
  if (opts.kernelRefusals === 'notify')
    sc.syscalls = sc.syscalls!.map((r) =>
      r.action === 'SCMP_ACT_ERRNO' && !r.args?.length ? { names: r.names, action: 'SCMP_ACT_NOTIFY' } : r,
    );
  if (opts.metadata !== undefined) sc.listenerMetadata = opts.metadata;
  if (opts.base) {
    const b = opts.base;
    return {
      ...b,
      architectures: b.architectures ?? sc.architectures,
      flags: [...new Set([...(b.flags ?? []), ...(sc.flags ?? [])])],
      listenerPath,
      ...(opts.metadata !== undefined ? { listenerMetadata: opts.metadata } : {}),
      syscalls: [...sc.syscalls!, ...(b.syscalls ?? [])],
    };
  }
  return sc;
}
