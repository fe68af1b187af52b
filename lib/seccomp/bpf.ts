// A small classic-BPF assembler: instructions with symbolic jump targets, resolved in one place so that code
// generation never counts offsets. Conditional jumps only reach 255 instructions forward; longer ones get a
// nearby copy of the target `ret` (or a `ja`, whose offset is 32-bit) inserted right after the jump.

import {
  BPF_ABS,
  BPF_ALU,
  BPF_AND,
  BPF_JA,
  type BPF_JEQ,
  type BPF_JGE,
  type BPF_JGT,
  BPF_JMP,
  type BPF_JSET,
  BPF_K,
  BPF_LD,
  BPF_RET,
  BPF_W,
} from './constants';

export type JumpOp = typeof BPF_JEQ | typeof BPF_JGT | typeof BPF_JGE | typeof BPF_JSET;

/** A jump target; bound to the instruction emitted after `Program.bind`. */
export class Label {
  insn?: Insn;
}

interface Insn {
  code: number;
  k: number;
  jt?: Label;
  jf?: Label;
  /** Target of an unconditional `ja` (its offset goes in k). */
  ja?: Label;
}

const MAX_COND_JUMP = 255;

export class Program {
  private readonly insns: Insn[] = [];
  private pending: Label[] = [];
  private readonly retLabels = new Map<number, Label>();

  /** Attach `label` to the next instruction emitted. */
  bind(label: Label): void {
    if (label.insn) throw new Error('bpf: label bound twice');
    this.pending.push(label);
  }

  private emit(insn: Insn): void {
    for (const label of this.pending) label.insn = insn;
    this.pending = [];
    this.insns.push(insn);
  }

  /** A = 32-bit word of seccomp_data at `offset`. */
  load(offset: number): void {
    this.emit({ code: BPF_LD | BPF_W | BPF_ABS, k: offset });
  }

  and(k: number): void {
    this.emit({ code: BPF_ALU | BPF_AND | BPF_K, k: k >>> 0 });
  }

  /** if (A op k) goto jt else goto jf; comparisons are unsigned 32-bit. */
  jump(op: JumpOp, k: number, jt: Label, jf: Label): void {
    this.emit({ code: BPF_JMP | op | BPF_K, k: k >>> 0, jt, jf });
  }

  goto(target: Label): void {
    this.emit({ code: BPF_JMP | BPF_JA, k: 0, ja: target });
  }

  ret(k: number): void {
    this.emit({ code: BPF_RET | BPF_K, k: k >>> 0 });
  }

  /**
   * A label for `ret k`, one per distinct value. The instruction itself is emitted by `emitReturns`, so leaves of
   * the dispatch tree that only return cost no instruction of their own.
   */
  retLabel(k: number): Label {
    const key = k >>> 0;
    let label = this.retLabels.get(key);
    if (!label) {
      label = new Label();
      this.retLabels.set(key, label);
    }
    return label;
  }

  /**
   * Emit the shared `ret` instructions referenced so far. Later `retLabel` calls get fresh labels, so each block
   * of code can keep its returns close by (jumps only go forward).
   */
  emitReturns(): void {
    for (const [k, label] of this.retLabels) {
      this.bind(label);
      this.ret(k);
    }
    this.retLabels.clear();
  }

  get length(): number {
    return this.insns.length;
  }

  /** Resolve labels (inserting long-jump helpers as needed) and encode as struct sock_filter[], little-endian. */
  assemble(): Buffer {
    if (this.pending.length) throw new Error('bpf: label bound past the last instruction');
    this.dropRedundantLoads();
    this.fixLongJumps();
    const index = new Map<Insn, number>();
    this.insns.forEach((insn, i) => index.set(insn, i));
    const where = (label: Label, from: number): number => {
      const at = label.insn ? index.get(label.insn) : undefined;
      if (at === undefined) throw new Error('bpf: jump to an unbound label');
      const offset = at - from - 1;
      if (offset < 0) throw new Error('bpf: backward jump');
      return offset;
    };
    const out = Buffer.alloc(this.insns.length * 8);
    this.insns.forEach((insn, i) => {
      let { k } = insn;
      let jt = 0;
      let jf = 0;
      if (insn.ja) k = where(insn.ja, i);
      if (insn.jt && insn.jf) {
        jt = where(insn.jt, i);
        jf = where(insn.jf, i);
        if (jt > MAX_COND_JUMP || jf > MAX_COND_JUMP) throw new Error('bpf: long jump left unresolved');
      }
      out.writeUInt16LE(insn.code, i * 8);
      out.writeUInt8(jt, i * 8 + 2);
      out.writeUInt8(jf, i * 8 + 3);
      out.writeUInt32LE(k >>> 0, i * 8 + 4);
    });
    return out;
  }

  /**
   * Remove each `ld` whose word A already holds on every path that reaches it (argument chains reload the same
   * word for every value they test). Filters load faster with fewer instructions: the kernel converts and JITs
   * each one at attach time. Jumps only go forward, so one pass in order sees every predecessor first.
   */
  private dropRedundantLoads(): void {
    const LD = BPF_LD | BPF_W | BPF_ABS;
    // What A holds on entry to an instruction: a word offset, null (unknown), absent (no path seen yet).
    const entry = new Map<Insn, number | null>();
    const meet = (insn: Insn | undefined, a: number | null): void => {
      if (!insn) throw new Error('bpf: jump to an unbound label');
      const prev = entry.get(insn);
      entry.set(insn, prev === undefined || prev === a ? a : null);
    };
    const redundant = new Set<Insn>();
    let fallthrough: number | null | undefined = null; // the first instruction starts with A unknown
    for (const insn of this.insns) {
      let a: number | null | undefined = entry.get(insn);
      if (fallthrough !== undefined) a = a === undefined || a === fallthrough ? fallthrough : null;
      if (a === undefined) a = null; // unreachable: assume nothing
      fallthrough = undefined;
      if (insn.code === LD) {
        if (a === insn.k) redundant.add(insn);
        fallthrough = insn.k;
      } else if ((insn.code & 0x07) === BPF_JMP) {
        if (insn.ja) meet(insn.ja.insn, a);
        if (insn.jt) meet(insn.jt.insn, a);
        if (insn.jf) meet(insn.jf.insn, a);
      } else if (insn.code !== (BPF_RET | BPF_K)) {
        fallthrough = null; // an ALU operation: A changed
      }
    }
    if (!redundant.size) return;
    // A removed load falls through: its jumps go to the next kept instruction.
    const next = new Map<Insn, Insn>();
    for (let i = this.insns.length - 1, after: Insn | undefined; i >= 0; i--) {
      const insn = this.insns[i];
      if (redundant.has(insn)) next.set(insn, after as Insn);
      else after = insn;
    }
    const retarget = (label: Label | undefined): Label | undefined => {
      const to = label?.insn && next.get(label.insn);
      if (!to) return label;
      const moved = new Label();
      moved.insn = to;
      return moved;
    };
    for (const insn of this.insns) {
      insn.ja = retarget(insn.ja);
      insn.jt = retarget(insn.jt);
      insn.jf = retarget(insn.jf);
    }
    this.insns.splice(0, this.insns.length, ...this.insns.filter((insn) => !redundant.has(insn)));
  }

  /**
   * Retarget every conditional jump farther than 255 to an equivalent instruction within reach: an existing copy
   * of the target `ret` or a `ja` to the target, else a new one inserted just after the jump. Walking backwards
   * makes one pass enough: an insertion at i+1 only lengthens jumps that start before it, which are still to come.
   */
  private fixLongJumps(): void {
    const isRet = (insn: Insn): boolean => insn.code === (BPF_RET | BPF_K);
    const index = new Map<Insn, number>();
    const renumber = (from: number): void => {
      for (let j = from; j < this.insns.length; j++) index.set(this.insns[j], j);
    };
    renumber(0);
    for (let i = this.insns.length - 1; i >= 0; i--) {
      const insn = this.insns[i];
      if (!insn.jt || !insn.jf) continue;
      // An insertion for one side pushes the other side's target one further: check both until both reach.
      const far = (side: 'jt' | 'jf'): boolean =>
        (index.get((insn[side] as Label).insn as Insn) as number) - i - 1 > MAX_COND_JUMP;
      while (far('jt') || far('jf')) {
        const side = far('jt') ? 'jt' : 'jf';
        const target = (insn[side] as Label).insn as Insn;
        let alias: Insn | undefined;
        for (let j = i + 1; j <= i + 1 + MAX_COND_JUMP && !alias; j++) {
          const cand = this.insns[j];
          if (isRet(target) ? isRet(cand) && cand.k === target.k : cand.ja?.insn === target) alias = cand;
        }
        if (!alias) {
          alias = isRet(target) ? { code: target.code, k: target.k } : { code: BPF_JMP | BPF_JA, k: 0, ja: insn[side] };
          this.insns.splice(i + 1, 0, alias);
          renumber(i + 1);
        }
        const label = new Label();
        label.insn = alias;
        insn[side] = label;
      }
    }
  }
}
