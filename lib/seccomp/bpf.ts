// A small classic-BPF assembler: instructions with symbolic jump targets, resolved in one place so that code
// generation never counts offsets. Conditional jumps only reach 255 instructions forward; longer ones get a
// nearby copy of the target `ret` (or a `ja`, whose offset is 32-bit) inserted right after the jump.

import { BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W } from './constants';

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
