// Argument comparisons in classic BPF. cBPF words are 32-bit, so a 64-bit comparison tests the high word first
// and looks at the low word only when the high words are equal. On 32-bit ABIs (i386, arm, x32) libseccomp
// compares the low word alone, against the operand truncated to 32 bits; hako does the same so a profile means
// the same thing under hako and runc.

import type { Condition } from './policy';
import { Label, type Program } from './bpf';
import { BPF_JEQ, BPF_JGE, BPF_JGT, SECCOMP_DATA_ARGS } from './constants';

const lo32 = (v: bigint): number => Number(v & 0xffffffffn);
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);

/** Offset of the low word of args[index]; the high word follows it (little-endian hosts only). */
const argLo = (index: number): number => SECCOMP_DATA_ARGS + 8 * index;
const argHi = (index: number): number => SECCOMP_DATA_ARGS + 8 * index + 4;

/**
 * true or false when the condition holds for every value or for none (at this ABI's width), else undefined:
 * such conditions need no code, and a rule with an impossible one can never match.
 */
export function constantCondition(c: Condition, argBits: 32 | 64): boolean | undefined {
  const max = argBits === 64 ? (1n << 64n) - 1n : 0xffffffffn;
  const v = c.value & max;
  switch (c.op) {
    case 'SCMP_CMP_MASKED_EQ':
      return v === 0n ? true : undefined; // (x & 0) == (d & 0)
    case 'SCMP_CMP_LT':
      return v === 0n ? false : undefined;
    case 'SCMP_CMP_GE':
      return v === 0n ? true : undefined;
    case 'SCMP_CMP_LE':
      return v === max ? true : undefined;
    case 'SCMP_CMP_GT':
      return v === max ? false : undefined;
    default:
      return undefined;
  }
}

/**
 * Emit code that continues at `pass` when the condition holds and at `fail` otherwise. The caller binds `pass`
 * right after when it is the next condition, so the common path falls through.
 */
export function emitCondition(p: Program, c: Condition, argBits: 32 | 64, pass: Label, fail: Label): void {
  if (c.op === 'SCMP_CMP_MASKED_EQ') {
    emitMaskedEq(p, c, argBits, pass, fail);
    return;
  }
  const vl = lo32(c.value);
  if (argBits === 64) {
    const vh = hi32(c.value);
    const lowWord = new Label();
    emitHighWord(p, c, vh, pass, fail, lowWord);
    p.bind(lowWord);
  }
  p.load(argLo(c.index));
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      p.jump(BPF_JEQ, vl, pass, fail);
      break;
    case 'SCMP_CMP_NE':
      p.jump(BPF_JEQ, vl, fail, pass);
      break;
    case 'SCMP_CMP_GT':
      p.jump(BPF_JGT, vl, pass, fail);
      break;
    case 'SCMP_CMP_GE':
      p.jump(BPF_JGE, vl, pass, fail);
      break;
    case 'SCMP_CMP_LT':
      p.jump(BPF_JGE, vl, fail, pass);
      break;
    case 'SCMP_CMP_LE':
      p.jump(BPF_JGT, vl, fail, pass);
      break;
    default:
      throw new Error(`seccomp: operator ${c.op as string}`);
  }
}

/**
 * The high-word half of an ordered or equality comparison: decide on the high word when it settles the result,
 * fall to `lowWord` when the high words are equal.
 */
function emitHighWord(p: Program, c: Condition, vh: number, pass: Label, fail: Label, lowWord: Label): void {
  p.load(argHi(c.index));
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      p.jump(BPF_JEQ, vh, lowWord, fail);
      return;
    case 'SCMP_CMP_NE':
      p.jump(BPF_JEQ, vh, lowWord, pass);
      return;
    case 'SCMP_CMP_GT':
    case 'SCMP_CMP_GE':
    case 'SCMP_CMP_LT':
    case 'SCMP_CMP_LE': {
      const greater = c.op === 'SCMP_CMP_GT' || c.op === 'SCMP_CMP_GE';
      // hi > vh decides for GT/GE and against LT/LE; hi < vh the other way round.
      if (vh === 0) {
        // hi < 0 is impossible: one test is enough.
        p.jump(BPF_JGT, 0, greater ? pass : fail, lowWord);
        return;
      }
      const equalTest = new Label();
      p.jump(BPF_JGT, vh, greater ? pass : fail, equalTest);
      p.bind(equalTest);
      p.jump(BPF_JEQ, vh, lowWord, greater ? fail : pass);
      return;
    }
    default:
      throw new Error(`seccomp: operator ${c.op as string}`);
  }
}

/**
 * (arg & mask) == (expected & mask), with mask = value and expected = valueTwo: libseccomp masks the expected
 * value too (db.c _db_node_mask_fixup), so bits of valueTwo outside the mask are ignored, not "never equal".
 */
function emitMaskedEq(p: Program, c: Condition, argBits: 32 | 64, pass: Label, fail: Label): void {
  const expected = c.valueTwo & c.value;
  const ml = lo32(c.value);
  const dl = lo32(expected);
  if (argBits === 64) {
    const mh = hi32(c.value);
    const dh = hi32(expected);
    if (mh !== 0) {
      const lowWord = new Label();
      p.load(argHi(c.index));
      if (mh !== 0xffffffff) p.and(mh);
      p.jump(BPF_JEQ, dh, lowWord, fail);
      p.bind(lowWord);
    }
  }
  if (ml === 0) {
    p.goto(pass); // (x & 0) == 0 always
    return;
  }
  p.load(argLo(c.index));
  if (ml !== 0xffffffff) p.and(ml);
  p.jump(BPF_JEQ, dl, pass, fail);
}
