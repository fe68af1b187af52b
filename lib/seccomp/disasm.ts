// Human-readable listing of a compiled filter, for `--debug` output and for reading test failures.

import { SECCOMP_DATA_ARGS, SECCOMP_DATA_ARCH, SECCOMP_DATA_IP, SECCOMP_DATA_NR } from './constants';

const JUMPS: Record<number, string> = { 0x00: 'ja', 0x10: 'jeq', 0x20: 'jgt', 0x30: 'jge', 0x40: 'jset' };
const ALU: Record<number, string> = {
  0x00: 'add',
  0x10: 'sub',
  0x20: 'mul',
  0x30: 'div',
  0x40: 'or',
  0x50: 'and',
  0x60: 'lsh',
  0x70: 'rsh',
  0x80: 'neg',
  0x90: 'mod',
  0xa0: 'xor',
};

function field(offset: number): string {
  if (offset === SECCOMP_DATA_NR) return 'nr';
  if (offset === SECCOMP_DATA_ARCH) return 'arch';
  if (offset === SECCOMP_DATA_IP) return 'ip';
  if (offset === SECCOMP_DATA_IP + 4) return 'ip_hi';
  if (offset >= SECCOMP_DATA_ARGS && offset < SECCOMP_DATA_ARGS + 48) {
    const rel = offset - SECCOMP_DATA_ARGS;
    return `args[${rel >> 3}]${rel & 4 ? '_hi' : '_lo'}`;
  }
  return `[${offset}]`;
}

function retName(k: number): string {
  const data = k & 0xffff;
  switch ((k & 0xffff0000) >>> 0) {
    case 0x80000000:
      return 'KILL_PROCESS';
    case 0x00000000:
      return 'KILL_THREAD';
    case 0x00030000:
      return `TRAP(${data})`;
    case 0x00050000:
      return `ERRNO(${data})`;
    case 0x7fc00000:
      return 'USER_NOTIF';
    case 0x7ff00000:
      return `TRACE(${data})`;
    case 0x7ffc0000:
      return 'LOG';
    case 0x7fff0000:
      return 'ALLOW';
    default:
      return `0x${k.toString(16)}`;
  }
}

export function disassemble(filter: Buffer): string[] {
  const lines: string[] = [];
  for (let i = 0; i * 8 < filter.length; i++) {
    const code = filter.readUInt16LE(i * 8);
    const jt = filter.readUInt8(i * 8 + 2);
    const jf = filter.readUInt8(i * 8 + 3);
    const k = filter.readUInt32LE(i * 8 + 4);
    const hex = `0x${k.toString(16)}`;
    let text: string;
    switch (code & 0x07) {
      case 0x00:
        text = (code & 0xe0) === 0x20 ? `ld ${field(k)}` : (code & 0xe0) === 0x00 ? `ld #${hex}` : `ld M[${k}]`;
        break;
      case 0x01:
        text = (code & 0xe0) === 0x60 ? `ldx M[${k}]` : `ldx #${hex}`;
        break;
      case 0x02:
        text = `st M[${k}]`;
        break;
      case 0x03:
        text = `stx M[${k}]`;
        break;
      case 0x04:
        text = `${ALU[code & 0xf0] ?? '?'} ${code & 0x08 ? 'x' : `#${hex}`}`;
        break;
      case 0x05: {
        const op = JUMPS[code & 0xf0] ?? '?';
        text = op === 'ja' ? `ja ${i + 1 + k}` : `${op} #${hex} ? ${i + 1 + jt} : ${i + 1 + jf}`;
        break;
      }
      case 0x06:
        text = code & 0x10 ? 'ret a' : `ret ${retName(k)}`;
        break;
      default:
        text = code & 0x80 ? 'txa' : 'tax';
    }
    lines.push(`${String(i).padStart(4)}: ${text}`);
  }
  return lines;
}
