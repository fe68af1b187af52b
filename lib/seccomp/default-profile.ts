// hako's default seccomp profile: an allow-list with the same effect as Docker's default (moby/profiles
// seccomp/default.json, 2025): EPERM for anything not listed, argument filters on personality, socket and clone,
// clone3 answered with ENOSYS so libc falls back to clone, and privileged calls allowed only with the capability
// that the kernel would check anyway. Capability and architecture conditions are resolved here, so the result
// is a plain OCI LinuxSeccomp any runtime can load.
//
// Differences from Docker, on purpose:
// - unshare without CAP_SYS_ADMIN is allowed when no namespace flag is set (Docker denies every unshare); the
//   mask includes CLONE_NEWTIME, which unshare accepts and clone cannot express.
// - open_tree_attr (6.15) joins open_tree in the CAP_SYS_ADMIN block.
// - no rule uses two conditions on the same argument, so runc's OR-splitting of such rules cannot change its
//   meaning if the profile is handed to another runtime.

import os from 'os';
import type { LinuxSeccomp, SeccompAction, SeccompArg, SeccompSyscall } from '../oci/types';
import { hostScmpArches, nativeScmpArch, type ScmpArch } from './arch';

const words = (s: string): string[] => s.trim().split(/\s+/);

/** Calls every container may make: the kernel does its own permission checks on them. */
const ALLOWED = words(`
  accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
  clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
  clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
  epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
  eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
  fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
  flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
  ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu getcwd
  getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
  getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid
  getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
  gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
  inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
  ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
  lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
  lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret
  mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
  mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal
  msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
  _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
  pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
  pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
  recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat renameat2
  restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
  rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
  sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
  sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
  seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
  sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
  setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
  setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr
  setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
  socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat sync
  sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
  timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
  timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
  uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`);

/**
 * Address families socket(2) may create: everything below AF_DECnet (12) and the maintained families above it.
 * Left out, as in Docker: DECnet, ECONET, ATMSVC, IRDA, WANPIPE, ISDN, CAIF, ALG, VSOCK and anything past MCTP (45).
 */
const SOCKET_FAMILIES_ABOVE_11 = [
  13, 14, 15, 16, 17, 18, 21, 22, 24, 26, 27, 28, 29, 30, 31, 32, 33, 35, 36, 39, 41, 42, 43, 44, 45,
];

/** personality(2) values that do not weaken the process: PER_LINUX, PER_LINUX32, UNAME26 variants, query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET */
export const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const CLONE_NEWTIME = 0x80; // in clone(2)'s flags this bit is part of the exit signal, in unshare(2)'s a namespace

interface Block {
  names: string[];
  action?: SeccompAction;
  errnoRet?: number;
  args?: SeccompArg[];
  /** Included when the container has any of these capabilities. */
  caps?: string[];
  /** Left out when the container has any of these capabilities. */
  unlessCaps?: string[];
  /** Included when any of these ABIs is in the profile. */
  arches?: ScmpArch[];
  /** Included on kernels at least this new. */
  minKernel?: [number, number];
}

const arg0 = (op: SeccompArg['op'], value: number): SeccompArg[] => [{ index: 0, value, op }];

const BLOCKS: Block[] = [
  { names: ALLOWED },
  // Before 4.8, ptrace could change the syscall number after seccomp had checked it.
  { names: words('process_vm_readv process_vm_writev ptrace'), minKernel: [4, 8] },
  { names: ['socket'], args: arg0('SCMP_CMP_LT', 12) },
  ...SOCKET_FAMILIES_ABOVE_11.map((family): Block => ({ names: ['socket'], args: arg0('SCMP_CMP_EQ', family) })),
  ...PERSONALITIES.map((persona): Block => ({ names: ['personality'], args: arg0('SCMP_CMP_EQ', persona) })),
  {
    names: words('arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls'),
    arches: ['SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64'],
  },
  { names: ['arch_prctl'], arches: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'] },
  { names: ['modify_ldt'], arches: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_X86'] },
  { names: ['open_by_handle_at'], caps: ['CAP_DAC_READ_SEARCH'] },
  {
    names: words(`
      bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr
      lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree open_tree_attr perf_event_open
      quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare`),
    caps: ['CAP_SYS_ADMIN'],
  },
  // Threads and plain fork-style clones, but no new namespaces.
  {
    names: ['clone'],
    args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    unlessCaps: ['CAP_SYS_ADMIN'],
  },
  {
    names: ['unshare'],
    args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS | CLONE_NEWTIME, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    unlessCaps: ['CAP_SYS_ADMIN'],
  },
  // clone3's flags live in memory where BPF cannot look: ENOSYS makes libc fall back to the filtered clone.
  { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, unlessCaps: ['CAP_SYS_ADMIN'] },
  { names: ['reboot'], caps: ['CAP_SYS_BOOT'] },
  { names: ['chroot'], caps: ['CAP_SYS_CHROOT'] },
  { names: words('delete_module init_module finit_module'), caps: ['CAP_SYS_MODULE'] },
  { names: ['acct'], caps: ['CAP_SYS_PACCT'] },
  {
    names: words('kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace'),
    caps: ['CAP_SYS_PTRACE'],
  },
  { names: words('iopl ioperm'), caps: ['CAP_SYS_RAWIO'] },
  { names: words('settimeofday stime clock_settime clock_settime64'), caps: ['CAP_SYS_TIME'] },
  { names: ['vhangup'], caps: ['CAP_SYS_TTY_CONFIG'] },
  { names: words('get_mempolicy mbind set_mempolicy set_mempolicy_home_node'), caps: ['CAP_SYS_NICE'] },
  { names: ['syslog'], caps: ['CAP_SYSLOG'] },
  { names: ['bpf'], caps: ['CAP_BPF'] },
  { names: ['perf_event_open'], caps: ['CAP_PERFMON'] },
  // CAP_SYS_RESOURCE gates no syscall here: setrlimit/prlimit64 are allowed and the kernel checks raising limits.
];

export interface DefaultProfileOptions {
  /** Host `process.arch`, used when `arches` is not given (default: process.arch). */
  nativeArch?: string;
  /** `uname -r` of the kernel the container will run on (default: os.release()). */
  kernelRelease?: string;
}

function kernelAtLeast(release: string, [major, minor]: [number, number]): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true; // an unparsable release is a modern custom kernel far more often than a pre-4.8 one
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

/** "sys_admin", "SYS_ADMIN" and "CAP_SYS_ADMIN" all mean CAP_SYS_ADMIN. */
function normalizeCap(cap: string): string {
  const upper = cap.toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

/**
 * The default profile for a container with capabilities `caps` (its bounding set) whose processes may use the
 * ABIs `arches` (default: every ABI the host runs, e.g. x86_64 + i386 + x32 on an x86_64 host).
 */
export function defaultSeccompProfile(
  caps: readonly string[],
  arches?: readonly ScmpArch[],
  opts: DefaultProfileOptions = {},
): LinuxSeccomp {
  const have = new Set(caps.map(normalizeCap));
  const abis = arches ? [...arches] : hostScmpArches(nativeScmpArch(opts.nativeArch ?? process.arch));
  const release = opts.kernelRelease ?? os.release();

  const syscalls: SeccompSyscall[] = [];
  for (const block of BLOCKS) {
    if (block.caps && !block.caps.some((c) => have.has(c))) continue;
    if (block.unlessCaps && block.unlessCaps.some((c) => have.has(c))) continue;
    if (block.arches && !block.arches.some((a) => abis.includes(a))) continue;
    if (block.minKernel && !kernelAtLeast(release, block.minKernel)) continue;
    const rule: SeccompSyscall = { names: [...block.names], action: block.action ?? 'SCMP_ACT_ALLOW' };
    if (block.errnoRet !== undefined) rule.errnoRet = block.errnoRet;
    if (block.args) rule.args = block.args.map((a) => ({ ...a }));
    syscalls.push(rule);
  }
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, architectures: abis, syscalls };
}
