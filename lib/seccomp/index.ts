// The seccomp compiler: OCI linux.seccomp -> classic BPF, plus hako's default profile.
export { compileSeccomp, BAD_ARCH_RET } from './compile';
export type { CompiledSeccomp, CompileOptions } from './compile';
export { defaultSeccompProfile, CLONE_NAMESPACE_FLAGS } from './default-profile';
export type { DefaultProfileOptions } from './default-profile';
export { ARCHES, hostScmpArches, nativeScmpArch, syscallNumber } from './arch';
export type { ScmpArch } from './arch';
export { SECCOMP_FILTER_FLAGS, seccompFlagNames, BPF_MAXINSNS } from './constants';
export { disassemble } from './disasm';
