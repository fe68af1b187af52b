// A classic BPF interpreter for seccomp filters, checked the way the kernel checks a filter before loading it
// (bpf_check_classic + seccomp_check_filter), so a program the kernel would refuse fails here too.

export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** Up to six 64-bit arguments; missing ones are 0. */
  args?: (bigint | number)[];
}

export interface RunResult {
  ret: number;
  /** Instructions executed. */
  steps: number;
}

const SECCOMP_DATA_SIZE = 64;
const BPF_MEMWORDS = 16;
const MAXINSNS = 4096;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export function decode(filter: Buffer): Insn[] {
  if (filter.length % 8 !== 0) throw new Error(`filter length ${filter.length} is not a multiple of 8`);
  const out: Insn[] = [];
  for (let i = 0; i < filter.length; i += 8) {
    out.push({
      code: filter.readUInt16LE(i),
      jt: filter.readUInt8(i + 2),
      jf: filter.readUInt8(i + 3),
      k: filter.readUInt32LE(i + 4),
    });
  }
  return out;
}

const LD_W_ABS = 0x20;
const LD_W_LEN = 0x80;
const LDX_W_LEN = 0x81;
const LD_IMM = 0x00;
const LDX_IMM = 0x01;
const LD_MEM = 0x60;
const LDX_MEM = 0x61;
const ST = 0x02;
const STX = 0x03;
const RET_K = 0x06;
const RET_A = 0x16;
const TAX = 0x07;
const TXA = 0x87;
const JA = 0x05;

/** Throw if the kernel would refuse this filter. */
export function validate(filter: Buffer): void {
  const prog = decode(filter);
  if (prog.length === 0 || prog.length > MAXINSNS) throw new Error(`filter has ${prog.length} instructions`);
  prog.forEach((insn, pc) => {
    const { code, k } = insn;
    const cls = code & 0x07;
    const where = `insn ${pc} (code 0x${code.toString(16)})`;
    if (code === LD_W_ABS) {
      if (k >= SECCOMP_DATA_SIZE || k % 4 !== 0) throw new Error(`${where}: bad seccomp_data offset ${k}`);
    } else if (code === LD_W_LEN || code === LDX_W_LEN || code === LD_IMM || code === LDX_IMM) {
      // fine
    } else if (code === LD_MEM || code === LDX_MEM || code === ST || code === STX) {
      if (k >= BPF_MEMWORDS) throw new Error(`${where}: scratch index ${k}`);
    } else if (code === RET_K || code === RET_A || code === TAX || code === TXA) {
      // fine
    } else if (cls === 0x04) {
      const op = code & 0xf0;
      if (![0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0].includes(op) || (code & ~0xf8) !== 0x04) {
        throw new Error(`${where}: ALU op`);
      }
      if ((op === 0x30 || op === 0x90) && (code & 0x08) === 0 && k === 0) throw new Error(`${where}: division by 0`);
      if ((op === 0x60 || op === 0x70) && (code & 0x08) === 0 && k >= 32) throw new Error(`${where}: shift ${k}`);
    } else if (cls === 0x05) {
      const op = code & 0xf0;
      if (code === JA) {
        if (pc + 1 + k >= prog.length) throw new Error(`${where}: ja out of program`);
      } else {
        if (![0x10, 0x20, 0x30, 0x40].includes(op) || (code & ~0xf8) !== 0x05) throw new Error(`${where}: jump op`);
        if (pc + 1 + insn.jt >= prog.length || pc + 1 + insn.jf >= prog.length) {
          throw new Error(`${where}: jump out of program`);
        }
      }
    } else {
      throw new Error(`${where}: opcode not allowed in seccomp filters`);
    }
  });
  const last = prog[prog.length - 1].code;
  if (last !== RET_K && last !== RET_A) throw new Error('filter does not end with ret');
}

function dataWords(d: SeccompData): Uint32Array {
  const buf = Buffer.alloc(SECCOMP_DATA_SIZE);
  buf.writeInt32LE(d.nr | 0, 0);
  buf.writeUInt32LE(d.arch >>> 0, 4);
  buf.writeBigUInt64LE(BigInt.asUintN(64, d.instructionPointer ?? 0n), 8);
  for (let i = 0; i < 6; i++) {
    const v = d.args?.[i] ?? 0n;
    buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), 16 + 8 * i);
  }
  const words = new Uint32Array(SECCOMP_DATA_SIZE / 4);
  for (let i = 0; i < words.length; i++) words[i] = buf.readUInt32LE(4 * i);
  return words;
}

/** Validate (unless told it already was), then run the filter on `data`. */
export function run(filter: Buffer, data: SeccompData, opts: { validated?: boolean } = {}): RunResult {
  if (!opts.validated) validate(filter);
  const prog = decode(filter);
  const words = dataWords(data);
  const mem = new Uint32Array(BPF_MEMWORDS);
  const written = new Array<boolean>(BPF_MEMWORDS).fill(false);
  let A = 0;
  let X = 0;
  let steps = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    steps++;
    const { code, jt, jf, k } = prog[pc];
    const cls = code & 0x07;
    if (code === LD_W_ABS) A = words[k / 4];
    else if (code === LD_W_LEN) A = SECCOMP_DATA_SIZE;
    else if (code === LDX_W_LEN) X = SECCOMP_DATA_SIZE;
    else if (code === LD_IMM) A = k;
    else if (code === LDX_IMM) X = k;
    else if (code === LD_MEM || code === LDX_MEM) {
      if (!written[k]) throw new Error(`insn ${pc}: M[${k}] read before written`);
      if (code === LD_MEM) A = mem[k];
      else X = mem[k];
    } else if (code === ST) {
      mem[k] = A;
      written[k] = true;
    } else if (code === STX) {
      mem[k] = X;
      written[k] = true;
    } else if (code === RET_K) return { ret: k >>> 0, steps };
    else if (code === RET_A) return { ret: A >>> 0, steps };
    else if (code === TAX) X = A;
    else if (code === TXA) A = X;
    else if (cls === 0x04) {
      const src = code & 0x08 ? X : k;
      switch (code & 0xf0) {
        case 0x00:
          A = (A + src) >>> 0;
          break;
        case 0x10:
          A = (A - src) >>> 0;
          break;
        case 0x20:
          A = Number((BigInt(A) * BigInt(src)) & 0xffffffffn);
          break;
        case 0x30:
          if (src === 0) return { ret: 0, steps };
          A = Math.floor(A / src) >>> 0;
          break;
        case 0x40:
          A = (A | src) >>> 0;
          break;
        case 0x50:
          A = (A & src) >>> 0;
          break;
        case 0x60:
          A = src >= 32 ? 0 : (A << src) >>> 0;
          break;
        case 0x70:
          A = src >= 32 ? 0 : A >>> src;
          break;
        case 0x80:
          A = -A >>> 0;
          break;
        case 0x90:
          if (src === 0) return { ret: 0, steps };
          A = (A % src) >>> 0;
          break;
        case 0xa0:
          A = (A ^ src) >>> 0;
          break;
        default:
          throw new Error(`insn ${pc}: ALU`);
      }
    } else if (cls === 0x05) {
      if (code === JA) {
        pc += k;
        continue;
      }
      const src = (code & 0x08 ? X : k) >>> 0;
      const a = A >>> 0;
      let cond: boolean;
      switch (code & 0xf0) {
        case 0x10:
          cond = a === src;
          break;
        case 0x20:
          cond = a > src;
          break;
        case 0x30:
          cond = a >= src;
          break;
        case 0x40:
          cond = (a & src) !== 0;
          break;
        default:
          throw new Error(`insn ${pc}: jump`);
      }
      pc += cond ? jt : jf;
    } else {
      throw new Error(`insn ${pc}: opcode 0x${code.toString(16)}`);
    }
  }
  throw new Error('fell off the end of the filter');
}

/** The return value alone. */
export function decide(filter: Buffer, data: SeccompData, opts: { validated?: boolean } = {}): number {
  return run(filter, data, opts).ret;
}
