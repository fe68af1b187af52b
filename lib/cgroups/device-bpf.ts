// The cgroup v2 device filter: a BPF_PROG_TYPE_CGROUP_DEVICE program generated from the device rules.
//
// cgroup v2 has no devices controller; the kernel runs every BPF_CGROUP_DEVICE program attached to the
// cgroup (and its ancestors) on each device open/mknod with a context
//   struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// where access_type = (access << 16) | type, type BPF_DEVCG_DEV_BLOCK=1 / CHAR=2, access MKNOD=1 READ=2 WRITE=4,
// and allows the access only if the program returns 1.
//
// The rules are first reduced with the v1 emulator (devices.ts), as runc does, so the program has a default
// verdict and a list of exceptions that all carry the opposite verdict. Layout:
//   r2 = type, r3 = access, r4 = major, r5 = minor          (prologue)
//   per exception: if type/access/major/minor do not match goto next; r0 = verdict; exit
//   r0 = default; exit
// Access matching follows the v1 kernel: an allow exception must grant all requested bits; a deny exception
// (default-allow programs) denies as soon as it overlaps the request. runc's generator uses the "all bits" test
// for both, which lets open(O_RDWR) through a "deny c 1:3 w" rule; we do not copy that.

import * as os from 'os';
import { HakoError } from '../errors';
import { ACC_ALL, type DeviceEmulator, ruleLine } from './devices';

export const BPF_DEVCG_DEV_BLOCK = 1;
export const BPF_DEVCG_DEV_CHAR = 2;

/** The license string handed to BPF_PROG_LOAD (no GPL-only helpers are used). */
export const DEVICE_FILTER_LICENSE = 'Apache-2.0';

// Opcode bytes (class | op | source), from linux/bpf.h and bpf_common.h.
export const OP = {
  LDX_MEM_W: 0x61, // BPF_LDX | BPF_MEM | BPF_W
  ALU32_AND_K: 0x54, // BPF_ALU | BPF_AND | BPF_K
  ALU32_RSH_K: 0x74, // BPF_ALU | BPF_RSH | BPF_K
  ALU32_MOV_K: 0xb4, // BPF_ALU | BPF_MOV | BPF_K
  ALU32_MOV_X: 0xbc, // BPF_ALU | BPF_MOV | BPF_X
  JMP_JEQ_K: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  JMP_JNE_K: 0x55, // BPF_JMP | BPF_JNE | BPF_K
  JMP_JNE_X: 0x5d, // BPF_JMP | BPF_JNE | BPF_X
  EXIT: 0x95, // BPF_JMP | BPF_EXIT
} as const;

export interface BpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const R0 = 0;
const R1 = 1;
const R2 = 2;
const R3 = 3;
const R4 = 4;
const R5 = 5;

const insn = (code: number, dst: number, src: number, off: number, imm: number): BpfInsn => ({
  code,
  dst,
  src,
  off,
  imm,
});

/** A jump whose target is patched once the block's end is known. */
interface PendingJump {
  index: number;
}

export function deviceFilterInsns(emu: DeviceEmulator): BpfInsn[] {
  const out: BpfInsn[] = [
    insn(OP.LDX_MEM_W, R2, R1, 0, 0),
    insn(OP.ALU32_AND_K, R2, 0, 0, 0xffff),
    insn(OP.LDX_MEM_W, R3, R1, 0, 0),
    insn(OP.ALU32_RSH_K, R3, 0, 0, 16),
    insn(OP.LDX_MEM_W, R4, R1, 4, 0),
    insn(OP.LDX_MEM_W, R5, R1, 8, 0),
  ];
  const defaultAllow = emu.defaultAllow;
  for (const rule of emu.rules()) {
    if (rule.type === 'a') continue; // the leading reset rule only says which default we have
    if (rule.allow === defaultAllow) {
      throw new HakoError(`internal: device rule "${ruleLine(rule)}" repeats the default verdict`, {
        field: 'linux.resources.devices',
      });
    }
    const jumps: PendingJump[] = [];
    const jump = (i: BpfInsn): void => {
      jumps.push({ index: out.length });
      out.push(i);
    };
    jump(insn(OP.JMP_JNE_K, R2, 0, 0, rule.type === 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
    if (rule.access !== ACC_ALL) {
      out.push(insn(OP.ALU32_MOV_X, R1, R3, 0, 0));
      out.push(insn(OP.ALU32_AND_K, R1, 0, 0, rule.access));
      // allow exception: every requested bit granted (r1 == r3); deny exception: any overlap (r1 != 0)
      if (rule.allow) jump(insn(OP.JMP_JNE_X, R1, R3, 0, 0));
      else jump(insn(OP.JMP_JEQ_K, R1, 0, 0, 0));
    }
    if (rule.major >= 0) jump(insn(OP.JMP_JNE_K, R4, 0, 0, rule.major));
    if (rule.minor >= 0) jump(insn(OP.JMP_JNE_K, R5, 0, 0, rule.minor));
    out.push(insn(OP.ALU32_MOV_K, R0, 0, 0, rule.allow ? 1 : 0));
    out.push(insn(OP.EXIT, 0, 0, 0, 0));
    const next = out.length;
    for (const j of jumps) out[j.index].off = next - (j.index + 1);
  }
  out.push(insn(OP.ALU32_MOV_K, R0, 0, 0, defaultAllow ? 1 : 0));
  out.push(insn(OP.EXIT, 0, 0, 0, 0));
  if (out.length > 4096) {
    throw new HakoError(`linux.resources.devices: ${out.length} BPF instructions exceed the kernel limit of 4096`, {
      field: 'linux.resources.devices',
    });
  }
  return out;
}

/**
 * struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } in host byte order. The register
 * bitfields follow the C bitfield order of the ABI: dst in the low nibble on little-endian machines, the high
 * nibble on big-endian ones (MIPS/PowerPC boards run big-endian).
 */
export function encodeInsns(insns: BpfInsn[], endian: 'LE' | 'BE' = os.endianness()): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((i, n) => {
    const o = n * 8;
    buf.writeUInt8(i.code, o);
    buf.writeUInt8(endian === 'LE' ? (i.src << 4) | i.dst : (i.dst << 4) | i.src, o + 1);
    if (endian === 'LE') {
      buf.writeInt16LE(i.off, o + 2);
      buf.writeInt32LE(i.imm | 0, o + 4);
    } else {
      buf.writeInt16BE(i.off, o + 2);
      buf.writeInt32BE(i.imm | 0, o + 4);
    }
  });
  return buf;
}

export function decodeInsns(buf: Buffer, endian: 'LE' | 'BE' = os.endianness()): BpfInsn[] {
  const out: BpfInsn[] = [];
  for (let o = 0; o + 8 <= buf.length; o += 8) {
    const regs = buf.readUInt8(o + 1);
    out.push({
      code: buf.readUInt8(o),
      dst: endian === 'LE' ? regs & 0xf : regs >> 4,
      src: endian === 'LE' ? regs >> 4 : regs & 0xf,
      off: endian === 'LE' ? buf.readInt16LE(o + 2) : buf.readInt16BE(o + 2),
      imm: endian === 'LE' ? buf.readInt32LE(o + 4) : buf.readInt32BE(o + 4),
    });
  }
  return out;
}

/** The program bytes ready for BPF_PROG_LOAD. */
export function deviceFilterProgram(emu: DeviceEmulator): Buffer {
  return encodeInsns(deviceFilterInsns(emu));
}
