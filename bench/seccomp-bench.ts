// Seccomp compiler numbers: compile time of the default profile (first call and warm), program size, and how
// many BPF instructions a syscall runs through (measured with the test interpreter over every syscall number
// of each ABI). Run: node dist/bench/seccomp-bench.js
import { ARCHES, hostScmpArches, type ScmpArch } from '../lib/seccomp/arch';
import { compileSeccomp } from '../lib/seccomp/compile';
import { defaultSeccompProfile } from '../lib/seccomp/default-profile';
import { run } from '../test/helpers/bpf-interpreter';

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function main(): void {
  const rows: Record<string, string | number>[] = [];
  for (const nativeArch of ['x64', 'arm64', 'arm']) {
    const profile = defaultSeccompProfile(['CAP_CHOWN', 'CAP_SETUID', 'CAP_SETGID'], undefined, { nativeArch });
    let t = process.hrtime.bigint();
    const first = compileSeccomp(profile, { nativeArch });
    const firstMs = ms(t);
    const rounds = 200;
    t = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) compileSeccomp(profile, { nativeArch });
    const warmMs = ms(t) / rounds;

    const abis = hostScmpArches(
      ({ x64: 'SCMP_ARCH_X86_64', arm64: 'SCMP_ARCH_AARCH64', arm: 'SCMP_ARCH_ARM' } as Record<string, ScmpArch>)[
        nativeArch
      ],
    );
    let total = 0;
    let count = 0;
    let worst = 0;
    for (const abi of abis) {
      for (const nr of Object.values(ARCHES[abi].table)) {
        const steps = run(
          first.filter,
          { arch: ARCHES[abi].audit, nr: (nr | ARCHES[abi].nrBase) >>> 0 },
          { validated: true },
        ).steps;
        total += steps;
        count++;
        worst = Math.max(worst, steps);
      }
    }
    rows.push({
      host: nativeArch,
      abis: abis.map((a) => a.replace('SCMP_ARCH_', '')).join('+'),
      instructions: first.instructions,
      'first compile ms': firstMs.toFixed(2),
      'warm compile ms': warmMs.toFixed(3),
      'mean insns/syscall': (total / count).toFixed(1),
      'max insns/syscall': worst,
    });
  }
  console.table(rows);
}

main();
