// Seccomp architectures: OCI/libseccomp names -> kernel AUDIT_ARCH values and syscall tables.

import { HakoError, invalidField, shown } from '../errors';
import { AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT } from './constants';
import { SYSCALLS_AARCH64 } from './tables/aarch64';
import { SYSCALLS_ARM } from './tables/arm';
import { SYSCALLS_I386 } from './tables/i386';
import { SYSCALLS_X32 } from './tables/x32';
import { SYSCALLS_X86_64 } from './tables/x86_64';

export type ScmpArch = 'SCMP_ARCH_X86_64' | 'SCMP_ARCH_X86' | 'SCMP_ARCH_X32' | 'SCMP_ARCH_AARCH64' | 'SCMP_ARCH_ARM';

export interface ArchInfo {
  name: ScmpArch;
  /** seccomp_data.arch as the kernel reports it. */
  audit: number;
  /** Width of syscall arguments as libseccomp models them: on 32-bit ABIs only the low word is compared. */
  argBits: 32 | 64;
  /** Raw name -> number table; `nrBase` is ORed in (x32). */
  table: Readonly<Record<string, number>>;
  nrBase: number;
}

export const ARCHES: Readonly<Record<ScmpArch, ArchInfo>> = Object.freeze({
  SCMP_ARCH_X86_64: {
    name: 'SCMP_ARCH_X86_64',
    audit: AUDIT_ARCH_X86_64,
    argBits: 64,
    table: SYSCALLS_X86_64,
    nrBase: 0,
  },
  // x32 is a 64-bit register ABI, but libseccomp treats it as 32-bit for argument comparisons; we match it.
  SCMP_ARCH_X32: {
    name: 'SCMP_ARCH_X32',
    audit: AUDIT_ARCH_X86_64,
    argBits: 32,
    table: SYSCALLS_X32,
    nrBase: X32_SYSCALL_BIT,
  },
  SCMP_ARCH_X86: { name: 'SCMP_ARCH_X86', audit: AUDIT_ARCH_I386, argBits: 32, table: SYSCALLS_I386, nrBase: 0 },
  SCMP_ARCH_AARCH64: {
    name: 'SCMP_ARCH_AARCH64',
    audit: AUDIT_ARCH_AARCH64,
    argBits: 64,
    table: SYSCALLS_AARCH64,
    nrBase: 0,
  },
  SCMP_ARCH_ARM: { name: 'SCMP_ARCH_ARM', audit: AUDIT_ARCH_ARM, argBits: 32, table: SYSCALLS_ARM, nrBase: 0 },
});

/**
 * Names the OCI spec lists that hako has no tables for. A process of these ABIs cannot run on the hosts hako
 * supports (x86_64, aarch64, armv7), so leaving them out of the filter changes no decision; they are accepted
 * and skipped rather than rejected, so generic multi-arch profiles keep working.
 */
export const FOREIGN_ARCHES: ReadonlySet<string> = new Set([
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
]);

export function isScmpArch(name: string): name is ScmpArch {
  return Object.prototype.hasOwnProperty.call(ARCHES, name);
}

/** The ABI of a Node `process.arch` value. */
export function nativeScmpArch(nodeArch: string = process.arch): ScmpArch {
  switch (nodeArch) {
    case 'x64':
      return 'SCMP_ARCH_X86_64';
    case 'arm64':
      return 'SCMP_ARCH_AARCH64';
    case 'arm':
      return 'SCMP_ARCH_ARM';
    case 'ia32':
      return 'SCMP_ARCH_X86';
    default:
      throw new HakoError(`seccomp: no syscall tables for host architecture ${nodeArch}`, { code: 'ENOTSUP' });
  }
}

/** Every ABI a process may use on a host of this ABI: Docker's "archMap" (x86_64 runs i386 and x32, aarch64 runs arm). */
export function hostScmpArches(native: ScmpArch): ScmpArch[] {
  switch (native) {
    case 'SCMP_ARCH_X86_64':
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'SCMP_ARCH_AARCH64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    default:
      return [native];
  }
}

/**
 * The ABIs a filter covers: the native one always (libseccomp's seccomp_init adds it and runc never removes it),
 * then the listed ones in order, duplicates dropped. Throws on a name the spec does not define.
 */
export function resolveArches(
  listed: readonly string[] | undefined,
  native: ScmpArch,
  debug: (msg: string) => void,
): ScmpArch[] {
  const out: ScmpArch[] = [native];
  // The config is only typed, not checked, by the time it gets here: a string instead of the list is possible.
  if (listed !== undefined && listed !== null && !Array.isArray(listed))
    throw invalidField('linux.seccomp.architectures', `must be an array, got ${shown(listed)}`);
  (listed ?? []).forEach((name: unknown, i) => {
    const field = `linux.seccomp.architectures[${i}]`;
    if (typeof name !== 'string') throw invalidField(field, `must be a string, got ${shown(name)}`);
    const resolved = name === 'SCMP_ARCH_NATIVE' ? native : name;
    if (isScmpArch(resolved)) {
      if (!out.includes(resolved)) out.push(resolved);
    } else if (FOREIGN_ARCHES.has(resolved)) {
      debug(`seccomp: ${field} ${name} cannot run on this host, skipped`);
    } else {
      throw invalidField(field, `unknown architecture ${shown(name)}`);
    }
  });
  return out;
}

/** The syscall number of `name` on `arch` as seccomp_data.nr reports it, or undefined if the ABI lacks it. */
export function syscallNumber(arch: ScmpArch, name: string): number | undefined {
  const info = ARCHES[arch];
  if (!Object.prototype.hasOwnProperty.call(info.table, name)) return undefined;
  return (info.table[name] | info.nrBase) >>> 0;
}
