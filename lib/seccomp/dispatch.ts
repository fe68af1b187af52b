// Per-architecture decision map and its BPF. For one AUDIT_ARCH value, every syscall number 0 .. 2^32-1 gets an
// outcome: a fixed return value, or a chain of argument rules. Runs of numbers with the same fixed return value
// collapse into one interval, and the intervals are searched with a balanced tree of `jge` tests, so a
// Docker-sized profile costs about one instruction per interval and 8-10 tests per syscall at run time.

import { Label, type Program } from './bpf';
import { emitCondition } from './conditions';
import { BPF_JGE } from './constants';
import type { Condition } from './policy';

export interface ChainRule {
  ret: number;
  args: Condition[];
}

export type Outcome =
  | { kind: 'ret'; ret: number }
  /** Rules tried in order, first full match wins, else `fallback`. Every rule has at least one condition. */
  | { kind: 'chain'; rules: ChainRule[]; fallback: number; argBits: 32 | 64 };

const SPACE_END = 2 ** 32; // exclusive end of the syscall number space

/** Sorted, non-overlapping intervals covering [0, 2^32), each with one outcome. */
export class DecisionMap {
  private starts: number[] = [0];
  private outcomes: Outcome[];

  constructor(initial: Outcome) {
    this.outcomes = [initial];
  }

  /** Index of the interval containing n. */
  private find(n: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= n) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private split(at: number): void {
    if (at >= SPACE_END) return;
    const i = this.find(at);
    if (this.starts[i] === at) return;
    this.starts.splice(i + 1, 0, at);
    this.outcomes.splice(i + 1, 0, this.outcomes[i]);
  }

  /** Set the outcome of every number in [first, last]. */
  set(first: number, last: number, outcome: Outcome): void {
    if (first > last) return;
    this.split(first);
    this.split(last + 1);
    const a = this.find(first);
    const b = last + 1 >= SPACE_END ? this.starts.length : this.find(last + 1);
    this.starts.splice(a, b - a, first);
    this.outcomes.splice(a, b - a, outcome);
  }

  get(n: number): Outcome {
    return this.outcomes[this.find(n)];
  }

  /** The intervals with neighbouring equal fixed returns merged. */
  intervals(): { start: number; outcome: Outcome }[] {
    const out: { start: number; outcome: Outcome }[] = [];
    this.starts.forEach((start, i) => {
      const outcome = this.outcomes[i];
      const prev = out[out.length - 1];
      if (prev && prev.outcome.kind === 'ret' && outcome.kind === 'ret' && prev.outcome.ret === outcome.ret) return;
      out.push({ start, outcome });
    });
    return out;
  }
}

/** Emit the search over `map`; expects A = seccomp_data.nr on entry. */
export function emitDispatch(p: Program, map: DecisionMap): void {
  const iv = map.intervals();
  const isRetLeaf = (a: number, b: number): boolean => b - a === 1 && iv[a].outcome.kind === 'ret';
  const entry = (a: number, b: number): Label => {
    const o = iv[a].outcome;
    return isRetLeaf(a, b) && o.kind === 'ret' ? p.retLabel(o.ret) : new Label();
  };

  const emit = (a: number, b: number, label: Label): void => {
    p.bind(label);
    if (b - a === 1) {
      const o = iv[a].outcome;
      if (o.kind === 'chain') emitChain(p, o);
      else p.ret(o.ret);
      return;
    }
    const mid = (a + b) >> 1;
    const left = entry(a, mid);
    const right = entry(mid, b);
    p.jump(BPF_JGE, iv[mid].start, right, left);
    if (!isRetLeaf(a, mid)) emit(a, mid, left);
    if (!isRetLeaf(mid, b)) emit(mid, b, right);
  };

  if (iv.length === 1 && iv[0].outcome.kind === 'ret') {
    p.ret(iv[0].outcome.ret); // a single outcome for every number
    return;
  }
  emit(0, iv.length, new Label());
}

function emitChain(p: Program, chain: Extract<Outcome, { kind: 'chain' }>): void {
  chain.rules.forEach((rule, r) => {
    const last = r === chain.rules.length - 1;
    const nextRule = last ? p.retLabel(chain.fallback) : new Label();
    rule.args.forEach((cond, c) => {
      const lastCond = c === rule.args.length - 1;
      const pass = lastCond ? p.retLabel(rule.ret) : new Label();
      emitCondition(p, cond, chain.argBits, pass, nextRule);
      if (!lastCond) p.bind(pass);
    });
    if (!last) p.bind(nextRule);
  });
}
