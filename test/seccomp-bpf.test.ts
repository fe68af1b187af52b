import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Label, Program } from '../lib/seccomp/bpf';
import { BPF_JEQ, BPF_JGT, SECCOMP_DATA_ARCH, SECCOMP_DATA_ARGS, SECCOMP_DATA_NR } from '../lib/seccomp/constants';
import { disassemble } from '../lib/seccomp/disasm';
import { decide, validate } from './helpers/bpf-interpreter';

const ARCH = 0xc000003e;

/** `count` instructions that change nothing the program depends on. */
/** `count` loads, alternating words so that none is redundant (the assembler drops redundant ones). */
function filler(p: Program, count: number): void {
  for (let i = 0; i < count; i++) p.load(SECCOMP_DATA_ARGS + 4 * (i % 2));
}

describe('assembler', () => {
  test('a load of the word A holds on every path is dropped; one needed on some path stays', () => {
    const p = new Program();
    p.load(SECCOMP_DATA_NR);
    const a = new Label();
    const b = new Label();
    const join = new Label();
    p.jump(BPF_JEQ, 1, a, b);
    p.bind(a);
    p.load(SECCOMP_DATA_NR); // redundant: A is nr here
    p.jump(BPF_JEQ, 2, join, join);
    p.bind(b);
    p.load(SECCOMP_DATA_ARGS); // needed
    p.bind(join);
    p.load(SECCOMP_DATA_NR); // reached with A = nr (from a) and A = args[0] (from b): needed
    p.jump(BPF_JEQ, 3, p.retLabel(7), p.retLabel(8));
    p.emitReturns();
    const filter = p.assemble();
    validate(filter);
    assert.equal(filter.length / 8, 8, disassemble(filter).join('\n'));
    assert.equal(decide(filter, { arch: ARCH, nr: 3 }), 7);
    assert.equal(decide(filter, { arch: ARCH, nr: 1 }), 8);
    assert.equal(decide(filter, { arch: ARCH, nr: 2 }), 8);
  });

  test('a jump of exactly 255 needs no help, 256 gets a nearby ret', () => {
    for (const [gap, extra] of [
      [254, 0],
      [255, 1],
    ] as const) {
      const p = new Program();
      p.load(SECCOMP_DATA_NR);
      const far = new Label();
      const near = new Label();
      p.jump(BPF_JEQ, 7, far, near);
      p.bind(near);
      filler(p, gap);
      p.ret(1);
      p.bind(far);
      p.ret(2);
      const filter = p.assemble();
      validate(filter);
      assert.equal(filter.length / 8, 2 + gap + 2 + extra, `gap ${gap}`);
      assert.equal(decide(filter, { arch: ARCH, nr: 7 }), 2);
      assert.equal(decide(filter, { arch: ARCH, nr: 8 }), 1);
    }
  });

  test('far targets that are not returns are reached through ja', () => {
    const p = new Program();
    p.load(SECCOMP_DATA_NR);
    const far = new Label();
    const near = new Label();
    p.jump(BPF_JGT, 100, far, near);
    p.bind(near);
    filler(p, 400);
    p.ret(1);
    p.bind(far);
    p.load(SECCOMP_DATA_ARCH); // target is code, not a ret (and not a load the assembler would drop)
    p.ret(2);
    const filter = p.assemble();
    validate(filter);
    assert.ok(disassemble(filter).some((l) => l.includes(' ja ')));
    assert.equal(decide(filter, { arch: ARCH, nr: 101 }), 2);
    assert.equal(decide(filter, { arch: ARCH, nr: 100 }), 1);
  });

  test('both sides far, many distinct far returns, shared copies reused', () => {
    const p = new Program();
    p.load(SECCOMP_DATA_NR);
    for (let i = 0; i < 600; i++) {
      const next = new Label();
      p.jump(BPF_JEQ, i, p.retLabel(1000 + (i % 20)), next);
      p.bind(next);
    }
    p.jump(BPF_JGT, 5000, p.retLabel(7), p.retLabel(8));
    p.emitReturns();
    const filter = p.assemble();
    validate(filter);
    for (let i = 0; i < 600; i++) assert.equal(decide(filter, { arch: ARCH, nr: i }), 1000 + (i % 20), `nr ${i}`);
    assert.equal(decide(filter, { arch: ARCH, nr: 6000 }), 7);
    assert.equal(decide(filter, { arch: ARCH, nr: 4000 }), 8);
    // 600 tests + 22 shared returns + copies reused within reach: about 20 per 256 instructions, not one per jump
    assert.ok(filter.length / 8 < 600 + 22 + 120, `${filter.length / 8}`);
  });

  test('labels must be bound before assembling', () => {
    const p = new Program();
    p.load(SECCOMP_DATA_NR);
    p.jump(BPF_JEQ, 1, new Label(), p.retLabel(0));
    p.emitReturns();
    assert.throws(() => p.assemble(), /unbound label/);
  });
});
