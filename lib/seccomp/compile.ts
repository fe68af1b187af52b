// OCI linux.seccomp -> classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER), without libseccomp.
//
// Semantics (documented choices where runtimes differ):
// - Architectures: the native ABI is always covered (as libseccomp's seccomp_init does), plus the listed ones.
//   A syscall from any other ABI gets libseccomp's bad-arch action, SCMP_ACT_KILL (= KILL_THREAD), which runc
//   keeps. x86_64 and x32 share AUDIT_ARCH_X86_64 and, as in libseccomp, numbers from 0x40000000 up are x32's:
//   with x86_64 alone they are bad-arch (except -1, which tracers use to skip a call), with x32 alone the numbers
//   below are, and with both each rule matches its own ABI's numbers only, so an x32 call never hits an x86_64 rule.
// - Rules are tried in the order of `syscalls`, the first one whose conditions all hold decides; with no match
//   the default action applies. Conditions of one rule are ANDed, unless two of them name the same argument:
//   libseccomp refuses such a rule, and runc (matchCall) and crun then add each condition as a rule of its own,
//   so all the conditions of that rule are ORed (those on other arguments too). Profiles written for runc rely
//   on that, so hako does the same (splitRepeatedIndices).
// - Names unknown on an ABI are skipped for that ABI, with a debug message (runc logs and skips too).
// - ENOSYS stub (runc's patchbpf): unless the default action is ALLOW/LOG/TRACE or already returns ENOSYS,
//   numbers above the highest one the profile names get ENOSYS, so a libc probing a newer syscall falls back
//   instead of failing on the default EPERM. Disable with `enosysStub: false`.

import { HakoError } from '../errors';
import type { LinuxSeccomp } from '../oci/types';
import { ARCHES, nativeScmpArch, resolveArches, type ScmpArch, syscallNumber } from './arch';
import { Label, Program } from './bpf';
import {
  BPF_JEQ,
  BPF_MAXINSNS,
  SECCOMP_DATA_ARCH,
  SECCOMP_DATA_NR,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_THREAD,
  X32_SYSCALL_BIT,
} from './constants';
import { constantCondition } from './conditions';
import { type ChainRule, DecisionMap, emitDispatch, type Outcome } from './dispatch';
import { isPermissiveAction, parsePolicy, type Policy, type Rule } from './policy';

export interface CompiledSeccomp {
  /** struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k per 8 bytes, little-endian (all supported hosts). */
  filter: Buffer;
  instructions: number;
  /** SECCOMP_FILTER_FLAG_* bits for seccomp(2). */
  flags: number;
  usesNotify: boolean;
}

export interface CompileOptions {
  /** Node `process.arch` value of the host: 'x64' | 'arm64' | 'arm' (default: process.arch). */
  nativeArch?: string;
  debug?: (msg: string) => void;
  /** Return ENOSYS above the highest syscall the profile names (runc behaviour). Default true. */
  enosysStub?: boolean;
}

/** What libseccomp does for a syscall of an ABI missing from the filter. */
export const BAD_ARCH_RET = SECCOMP_RET_KILL_THREAD;
const ENOSYS = 38;
const RET_ENOSYS = (SECCOMP_RET_ERRNO | ENOSYS) >>> 0;
const LAST_NR = 2 ** 32 - 1;

interface Group {
  audit: number;
  arches: ScmpArch[];
}

/** ABIs sharing an AUDIT_ARCH value form one block of the program (only x86_64 + x32 do). */
function groupByAudit(arches: ScmpArch[]): Group[] {
  const groups: Group[] = [];
  for (const arch of arches) {
    const audit = ARCHES[arch].audit;
    const g = groups.find((x) => x.audit === audit);
    if (g) g.arches.push(arch);
    else groups.push({ audit, arches: [arch] });
  }
  return groups;
}

/**
 * A rule with two or more conditions on one argument index becomes one rule per condition, in order, as runc's
 * matchCall and crun do before handing rules to libseccomp (which refuses a repeated index in one rule).
 */
export function splitRepeatedIndices(rule: Rule): Rule[] {
  const seen = new Set<number>();
  const repeated = rule.args.some((c) => seen.size === seen.add(c.index).size);
  if (!repeated) return [rule];
  return rule.args.map((c) => ({ ...rule, args: [c] }));
}

/** The outcome for one syscall number: rules in order up to the first unconditional one. */
function outcomeFor(named: Rule[], policy: Policy, arch: ScmpArch, name: string, debug: (m: string) => void): Outcome {
  const rules = named.flatMap(splitRepeatedIndices);
  const chain: ChainRule[] = [];
  let fallback = policy.defaultRet;
  const argBits = ARCHES[arch].argBits;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    const verdicts = rule.args.map((c) => constantCondition(c, argBits));
    if (verdicts.includes(false)) {
      debug(`seccomp: ${name} on ${arch}: ${rule.field} can never match`);
      continue;
    }
    const args = rule.args.filter((_c, k) => verdicts[k] === undefined);
    if (args.length === 0) {
      fallback = rule.ret;
      const dead = rules.slice(i + 1).map((r) => r.field);
      if (dead.length) debug(`seccomp: ${name} on ${arch}: ${dead.join(', ')} never reached after ${rule.field}`);
      break;
    }
    chain.push({ ret: rule.ret, args });
  }
  // Trailing rules that return what the fallback returns change nothing.
  while (chain.length && chain[chain.length - 1].ret === fallback) chain.pop();
  if (chain.length === 0) return { kind: 'ret', ret: fallback };
  if (argBits === 32) {
    for (const rule of rules) {
      for (const c of rule.args) {
        if (c.value >> 32n !== 0n || c.valueTwo >> 32n !== 0n) {
          debug(`seccomp: ${name} on ${arch}: ${rule.field} operand truncated to 32 bits (32-bit ABI, as libseccomp)`);
        }
      }
    }
  }
  return { kind: 'chain', rules: chain, fallback, argBits };
}

function buildMap(group: Group, policy: Policy, enosys: boolean, debug: (m: string) => void): DecisionMap {
  const map = new DecisionMap({ kind: 'ret', ret: policy.defaultRet });
  const has = (a: ScmpArch): boolean => group.arches.includes(a);
  // One of x86_64 and x32 without the other: the other one's numbers are a foreign ABI (x32 alone happens when a
  // profile lists it on an ARM host).
  if (has('SCMP_ARCH_X86_64') && !has('SCMP_ARCH_X32')) {
    map.set(X32_SYSCALL_BIT, LAST_NR - 1, { kind: 'ret', ret: BAD_ARCH_RET });
  }
  if (has('SCMP_ARCH_X32') && !has('SCMP_ARCH_X86_64'))
    map.set(0, X32_SYSCALL_BIT - 1, { kind: 'ret', ret: BAD_ARCH_RET });

  for (const arch of group.arches) {
    // nr -> [name, rules naming it, in order]
    const byNr = new Map<number, { name: string; rules: Rule[] }>();
    let highest = -1;
    for (const rule of policy.rules) {
      for (const name of rule.names) {
        const nr = syscallNumber(arch, name);
        if (nr === undefined) {
          debug(`seccomp: unknown syscall ${JSON.stringify(name)} on ${arch} (${rule.field}), ignored`);
          continue;
        }
        highest = Math.max(highest, nr);
        const entry = byNr.get(nr) ?? { name, rules: [] };
        if (!entry.rules.includes(rule)) entry.rules.push(rule);
        byNr.set(nr, entry);
      }
    }
    if (enosys && highest >= 0) {
      const end = arch === 'SCMP_ARCH_X86_64' ? X32_SYSCALL_BIT - 1 : LAST_NR;
      map.set(highest + 1, end, { kind: 'ret', ret: RET_ENOSYS });
    }
    for (const [nr, { name, rules }] of byNr) map.set(nr, nr, outcomeFor(rules, policy, arch, name, debug));
  }
  return map;
}

export function compileSeccomp(spec: LinuxSeccomp, opts: CompileOptions = {}): CompiledSeccomp {
  const debug = opts.debug ?? ((): void => undefined);
  const policy = parsePolicy(spec, debug);
  const native = nativeScmpArch(opts.nativeArch ?? process.arch);
  const arches = resolveArches(spec.architectures, native, debug);
  const enosys =
    (opts.enosysStub ?? true) && !isPermissiveAction(policy.defaultAction) && policy.defaultRet !== RET_ENOSYS;

  const p = new Program();
  const groups = groupByAudit(arches);
  const entries = groups.map(() => new Label());
  p.load(SECCOMP_DATA_ARCH);
  groups.forEach((g, i) => {
    const last = i === groups.length - 1;
    const notThis = last ? p.retLabel(BAD_ARCH_RET) : new Label();
    p.jump(BPF_JEQ, g.audit, entries[i], notThis);
    if (!last) p.bind(notThis);
  });
  groups.forEach((g, i) => {
    p.bind(entries[i]);
    p.load(SECCOMP_DATA_NR);
    emitDispatch(p, buildMap(g, policy, enosys, debug));
    p.emitReturns(); // after each ABI's code, so its jumps to them stay short
  });

  const filter = p.assemble();
  const instructions = filter.length / 8;
  if (instructions > BPF_MAXINSNS) {
    throw new HakoError(
      `linux.seccomp: the compiled filter has ${instructions} instructions, more than the kernel's limit of ${BPF_MAXINSNS}`,
      { field: 'linux.seccomp', code: 'E2BIG' },
    );
  }
  debug(`seccomp: ${instructions} instructions for ${arches.join(', ')}`);
  return { filter, instructions, flags: policy.flags, usesNotify: policy.usesNotify };
}
