// Device rules: the v1 emulator, the v1 transition writes, and the v2 eBPF program, whose decisions are
// checked instruction by instruction with a small interpreter of the opcodes the generator emits.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HakoError } from '../lib/errors';
import type { LinuxDeviceCgroup } from '../lib/oci/types';
import {
  decodeInsns,
  deviceFilterInsns,
  deviceFilterProgram,
  encodeInsns,
  OP,
  type BpfInsn,
} from '../lib/cgroups/device-bpf';
import {
  ACC_MKNOD,
  ACC_READ,
  ACC_WRITE,
  DEFAULT_ALLOWED_DEVICES,
  DeviceEmulator,
  parseDeviceRules,
  ruleLine,
} from '../lib/cgroups/devices';

const M64 = (1n << 64n) - 1n;
const M32 = (1n << 32n) - 1n;
const sext = (imm: number): bigint => BigInt.asUintN(64, BigInt(imm));

/** Runs a BPF_PROG_TYPE_CGROUP_DEVICE program on one bpf_cgroup_dev_ctx; returns r0. */
function run(insns: BpfInsn[], type: number, access: number, major: number, minor: number): number {
  const ctx = Buffer.alloc(12);
  ctx.writeUInt32LE(((access << 16) | type) >>> 0, 0);
  ctx.writeUInt32LE(major, 4);
  ctx.writeUInt32LE(minor, 8);
  const CTX = 0x1000n; // r1 holds the context pointer
  const r: bigint[] = new Array(11).fill(0n);
  r[1] = CTX;
  for (let pc = 0, steps = 0; pc < insns.length; pc++, steps++) {
    assert.ok(steps < 10000, 'runaway program');
    const i = insns[pc];
    switch (i.code) {
      case OP.LDX_MEM_W: {
        assert.equal(r[i.src], CTX, `pc ${pc}: load through a non-context register`);
        assert.ok(i.off >= 0 && i.off + 4 <= 12 && i.off % 4 === 0, `pc ${pc}: bad ctx offset ${i.off}`);
        r[i.dst] = BigInt(ctx.readUInt32LE(i.off));
        break;
      }
      case OP.ALU32_AND_K:
        r[i.dst] = r[i.dst] & sext(i.imm) & M32;
        break;
      case OP.ALU32_RSH_K:
        r[i.dst] = (r[i.dst] & M32) >> BigInt(i.imm);
        break;
      case OP.ALU32_MOV_K:
        r[i.dst] = sext(i.imm) & M32;
        break;
      case OP.ALU32_MOV_X:
        r[i.dst] = r[i.src] & M32;
        break;
      case OP.JMP_JEQ_K:
      case OP.JMP_JNE_K:
      case OP.JMP_JNE_X: {
        assert.ok(i.off >= 0, `pc ${pc}: backward jump`);
        assert.ok(pc + 1 + i.off < insns.length, `pc ${pc}: jump out of the program`);
        const other = i.code === OP.JMP_JNE_X ? r[i.src] : sext(i.imm) & M64;
        const eq = r[i.dst] === other;
        if (i.code === OP.JMP_JEQ_K ? eq : !eq) pc += i.off;
        break;
      }
      case OP.EXIT:
        return Number(r[0]);
      default:
        assert.fail(`pc ${pc}: unexpected opcode 0x${i.code.toString(16)}`);
    }
  }
  assert.fail('fell off the end of the program');
}

const emuOf = (rules: LinuxDeviceCgroup[]): DeviceEmulator => DeviceEmulator.fromRules(parseDeviceRules(rules));

const MAJORS = [0, 1, 5, 8, 10, 136, 200];
const MINORS = [0, 1, 2, 3, 5, 7, 8, 9, 16, 200];

/** Every (type, major, minor, access) of the grid: program verdict == v1 kernel semantics of the emulator. */
function assertProgramMatches(emu: DeviceEmulator): number {
  const insns = decodeInsns(encodeInsns(deviceFilterInsns(emu), 'LE'), 'LE');
  let checked = 0;
  for (const [t, bpfType] of [
    ['b', 1],
    ['c', 2],
  ] as const) {
    for (const major of MAJORS) {
      for (const minor of MINORS) {
        for (let access = 1; access <= 7; access++) {
          const want = emu.allows(t, major, minor, access) ? 1 : 0;
          const got = run(insns, bpfType, access, major, minor);
          assert.equal(got, want, `${t} ${major}:${minor} access ${access}`);
          checked++;
        }
      }
    }
  }
  return checked;
}

describe('device emulator (v1 semantics)', () => {
  test('rules: deny-all then allows; "a" resets; permissions merge and subtract', () => {
    const e = emuOf([
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'w' },
      { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
      { allow: false, type: 'c', major: 1, minor: 5, access: 'm' },
    ]);
    assert.equal(e.defaultAllow, false);
    assert.deepEqual(e.rules().map(ruleLine), ['c 1:3 rw', 'c 1:5 rw'], 'from deny-all: no reset needed');
    assert.equal(e.allows('c', 1, 3, ACC_READ | ACC_WRITE), true);
    assert.equal(e.allows('c', 1, 3, ACC_MKNOD), false);
    assert.equal(e.allows('b', 1, 3, ACC_READ), false);
    const reset = emuOf([
      { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
      { allow: true, access: 'rwm' },
    ]);
    assert.equal(reset.defaultAllow, true);
    assert.deepEqual(
      reset.rules().map((r) => `${r.allow} ${ruleLine(r)}`),
      ['true a *:* rwm'],
    );
  });

  test('a deny inside a wider allow cannot be expressed: error naming the rule index', () => {
    assert.throws(
      () =>
        emuOf([
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 1, access: 'rwm' },
          { allow: false, type: 'c', major: 1, minor: 3, access: 'r' },
        ]),
      (e: unknown) => e instanceof HakoError && e.field === 'linux.resources.devices[2]',
    );
    // removing bits the wildcard does not grant is fine
    emuOf([
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', access: 'm' },
      { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
    ]);
  });

  test('transition from devices.list: minimal writes, reset only when the default changes', () => {
    const current = DeviceEmulator.fromList('c 1:3 rwm\nc 1:5 rwm\nc 136:* rw\n');
    const target = emuOf([
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 9, access: 'rw' },
      { allow: true, type: 'c', major: 136, access: 'rwm' },
    ]);
    assert.deepEqual(
      current.transition(target).map((r) => `${r.allow ? 'allow' : 'deny'} ${ruleLine(r)}`),
      ['deny c 1:5 rwm', 'allow c 1:9 rw', 'allow c 136:* m'],
    );
    const fresh = DeviceEmulator.fromList('a *:* rwm\n');
    const t = fresh.transition(target).map((r) => `${r.allow ? 'allow' : 'deny'} ${ruleLine(r)}`);
    assert.deepEqual(t, ['deny a *:* rwm', 'allow c 1:3 rwm', 'allow c 1:9 rw', 'allow c 136:* rwm']);
    assert.equal(current.transition(current).length, 0);
  });

  test('OCI rule validation', () => {
    assert.throws(() => parseDeviceRules([{ allow: true, type: 'x', access: 'r' }]), /invalid device type/);
    assert.throws(() => parseDeviceRules([{ allow: true, type: 'c', access: 'rx' }]), /invalid access/);
    assert.throws(() => parseDeviceRules([{ allow: true, type: 'c', major: -5, access: 'r' }]), /invalid major/);
    assert.deepEqual(parseDeviceRules([{ allow: true, type: 'a', major: 3, access: 'r' }])[0], {
      type: 'a',
      major: -1,
      minor: -1,
      access: 7,
      allow: true,
    });
  });
});

describe('eBPF device filter', () => {
  const sets: [string, LinuxDeviceCgroup[]][] = [
    [
      'runtime default (deny all + defaults + a block device)',
      [
        { allow: false, access: 'rwm' },
        ...DEFAULT_ALLOWED_DEVICES,
        { allow: true, type: 'b', major: 8, minor: 0, access: 'r' },
      ],
    ],
    ['no rules: deny everything', []],
    ['allow all', [{ allow: true, access: 'rwm' }]],
    [
      'blacklist with partial denies (any overlap denies)',
      [
        { allow: true, access: 'rwm' },
        { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
        { allow: false, type: 'b', major: 8, access: 'rwm' },
        { allow: false, type: 'c', minor: 9, access: 'm' },
      ],
    ],
    [
      'whitelist with split and subtracted permissions, wildcard minors and majors',
      [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'w' },
        { allow: true, type: 'c', major: 5, access: 'rm' },
        { allow: true, type: 'b', minor: 16, access: 'w' },
        { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
        { allow: false, type: 'c', major: 10, minor: 200, access: 'm' },
      ],
    ],
  ];
  for (const [name, rules] of sets) {
    test(`decisions equal the v1 semantics: ${name}`, () => {
      const checked = assertProgramMatches(emuOf(rules));
      assert.equal(checked, 2 * MAJORS.length * MINORS.length * 7);
    });
  }

  test('program shape: prologue loads the context, ends with exit, verdict constants 0/1', () => {
    const insns = deviceFilterInsns(
      emuOf([
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      ]),
    );
    assert.deepEqual(
      insns.slice(0, 6).map((i) => i.code),
      [OP.LDX_MEM_W, OP.ALU32_AND_K, OP.LDX_MEM_W, OP.ALU32_RSH_K, OP.LDX_MEM_W, OP.LDX_MEM_W],
    );
    // one rule with rwm: type + major + minor checks, verdict, exit; then the default
    assert.equal(insns.length, 6 + 5 + 2);
    assert.equal(insns[insns.length - 1].code, OP.EXIT);
    assert.deepEqual(insns[insns.length - 2], { code: OP.ALU32_MOV_K, dst: 0, src: 0, off: 0, imm: 0 });
    const bytes = deviceFilterProgram(emuOf([]));
    assert.equal(bytes.length, 8 * 8);
  });

  test('encoding: 8 bytes per insn, register nibbles follow the byte order', () => {
    const insns: BpfInsn[] = [{ code: OP.ALU32_MOV_X, dst: 1, src: 3, off: -2, imm: -7 }];
    const le = encodeInsns(insns, 'LE');
    assert.deepEqual([...le], [0xbc, 0x31, 0xfe, 0xff, 0xf9, 0xff, 0xff, 0xff]);
    const be = encodeInsns(insns, 'BE');
    assert.deepEqual([...be], [0xbc, 0x13, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xf9]);
    assert.deepEqual(decodeInsns(be, 'BE'), insns);
    assert.deepEqual(decodeInsns(le, 'LE'), insns);
  });
});
