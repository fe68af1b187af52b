// The system calls the policy server understands: which arguments are pointers (copied out of the caller
// once, by the native thread), per ABI. Numbers come from lib/seccomp's tables, so a 32-bit ARM or i386
// caller is decoded with its own numbers (seccomp_data.arch says which ABI made the call).
import type { NotifyLayout } from '../native/addon';
import { ARCHES, hostScmpArches, nativeScmpArch, type ScmpArch } from '../seccomp/arch';

export type SyscallName =
  | 'mount'
  | 'umount2'
  | 'umount'
  | 'pivot_root'
  | 'mknod'
  | 'mknodat'
  | 'sethostname'
  | 'setdomainname'
  | 'setxattr'
  | 'lsetxattr'
  | 'fsetxattr'
  | 'chown'
  | 'lchown'
  | 'fchown'
  | 'fchownat'
  | 'chown32'
  | 'lchown32'
  | 'fchown32';

const I = 0; // integer
const S = 1; // C string
const B = 2; // buffer, length in another argument

interface ArgSpec {
  types: number[];
  max: number[];
  len: number[];
}

const PATH = 4096;

/** Argument layouts; the index of a name in KINDS is its `kind` number on the native side. */
const LAYOUTS: Readonly<Record<SyscallName, ArgSpec>> = {
  mount: { types: [S, S, S, I, S, I], max: [PATH, PATH, 255, 0, 4095, 0], len: [0, 0, 0, 0, 0, 0] },
  umount2: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  umount: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  pivot_root: { types: [S, S, I, I, I, I], max: [PATH, PATH, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  mknod: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  mknodat: { types: [I, S, I, I, I, I], max: [0, PATH, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  // __NEW_UTS_LEN is 64: a longer name is EINVAL, reported as "too long" here.
  sethostname: { types: [B, I, I, I, I, I], max: [64, 0, 0, 0, 0, 0], len: [1, 0, 0, 0, 0, 0] },
  setdomainname: { types: [B, I, I, I, I, I], max: [64, 0, 0, 0, 0, 0], len: [1, 0, 0, 0, 0, 0] },
  // XATTR_NAME_MAX 255, XATTR_SIZE_MAX 65536.
  setxattr: { types: [S, S, B, I, I, I], max: [PATH, 255, 65536, 0, 0, 0], len: [0, 0, 3, 0, 0, 0] },
  lsetxattr: { types: [S, S, B, I, I, I], max: [PATH, 255, 65536, 0, 0, 0], len: [0, 0, 3, 0, 0, 0] },
  fsetxattr: { types: [I, S, B, I, I, I], max: [0, 255, 65536, 0, 0, 0], len: [0, 0, 3, 0, 0, 0] },
  chown: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  lchown: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  fchown: { types: [I, I, I, I, I, I], max: [0, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  fchownat: { types: [I, S, I, I, I, I], max: [0, PATH, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  chown32: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  lchown32: { types: [S, I, I, I, I, I], max: [PATH, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
  fchown32: { types: [I, I, I, I, I, I], max: [0, 0, 0, 0, 0, 0], len: [0, 0, 0, 0, 0, 0] },
};

export const KINDS = Object.keys(LAYOUTS) as SyscallName[];

/** The ABIs whose callers the server decodes: every ABI the host runs (x32 is killed by the filter). */
export function serverArches(): ScmpArch[] {
  return hostScmpArches(nativeScmpArch());
}

/** On i386 and arm, chown/lchown/fchown take 16-bit ids (the *32 variants take 32-bit ones). */
export function idBits(archAudit: number, name: SyscallName): 16 | 32 {
  const arch = Object.values(ARCHES).find(
    (a) => a.audit === archAudit && a.argBits === 32 && a.name !== 'SCMP_ARCH_X32',
  );
  if (arch && (name === 'chown' || name === 'lchown' || name === 'fchown')) return 16;
  return 32;
}

/** The layout table for notifyServerSetLayouts. */
export function nativeLayouts(): NotifyLayout[] {
  const out: NotifyLayout[] = [];
  for (const arch of serverArches()) {
    const info = ARCHES[arch];
    KINDS.forEach((name, kind) => {
      if (!Object.prototype.hasOwnProperty.call(info.table, name)) return;
      const nr = (info.table[name] | info.nrBase) >>> 0;
      const l = LAYOUTS[name];
      out.push([info.audit >>> 0, nr | 0, kind, l.types, l.max, l.len, true]);
    });
  }
  return out;
}

/** audit arch -> ABI name, for audit lines. */
export function archName(audit: number, nr: number): string {
  for (const a of Object.values(ARCHES)) {
    if (a.audit >>> 0 !== audit >>> 0) continue;
    if (a.nrBase && (nr & a.nrBase) === 0) continue;
    if (!a.nrBase && a.name === 'SCMP_ARCH_X86_64' && nr & 0x40000000) continue;
    return a.name;
  }
  return `0x${(audit >>> 0).toString(16)}`;
}
