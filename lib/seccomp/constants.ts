// Kernel ABI constants for seccomp filters (include/uapi/linux/{seccomp,filter,bpf_common,audit}.h).

/** struct seccomp_data: { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; } */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_IP = 8;
export const SECCOMP_DATA_ARGS = 16;
export const SECCOMP_DATA_SIZE = 64;

/** Kernel limit on a classic BPF program (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

/** Syscall numbers of the x32 ABI carry this bit; they arrive under AUDIT_ARCH_X86_64. */
export const X32_SYSCALL_BIT = 0x40000000;

// Return values of a filter (SECCOMP_RET_*); the low 16 bits are action data.
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
export const SECCOMP_RET_TRACE = 0x7ff00000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) flag bits, by the names the OCI spec and the kernel use. */
export const SECCOMP_FILTER_FLAGS: Readonly<Record<string, number>> = Object.freeze({
  SECCOMP_FILTER_FLAG_TSYNC: 1 << 0,
  SECCOMP_FILTER_FLAG_LOG: 1 << 1,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 1 << 2,
  SECCOMP_FILTER_FLAG_NEW_LISTENER: 1 << 3,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH: 1 << 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 1 << 5,
});
export const SECCOMP_FILTER_FLAG_TSYNC = 1 << 0;
export const SECCOMP_FILTER_FLAG_LOG = 1 << 1;
export const SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2;
export const SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3;
export const SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4;
export const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5;

/** Names of the bits set in `flags`, lowest first (for logs and error messages). */
export function seccompFlagNames(flags: number): string[] {
  return Object.entries(SECCOMP_FILTER_FLAGS)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);
}

// AUDIT_ARCH_* = EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000)
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
export const AUDIT_ARCH_AARCH64 = 0xc00000b7;
export const AUDIT_ARCH_ARM = 0x40000028;

// Classic BPF opcodes (linux/bpf_common.h), only those a seccomp filter uses.
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_MISC = 0x07;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IMM = 0x00;
export const BPF_MEM = 0x60;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_K = 0x00;
export const BPF_A = 0x10;
