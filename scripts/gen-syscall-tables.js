#!/usr/bin/env node
'use strict';
// Generates lib/seccomp/tables/*.ts (syscall name -> number) from the kernel uapi headers.
//
//   node scripts/gen-syscall-tables.js [--check]
//
// Sources (Debian): linux-libc-dev for x86 (unistd_64.h, unistd_32.h, unistd_x32.h), and the cross packages
// linux-libc-dev-arm64-cross (asm-generic/unistd.h) and linux-libc-dev-armhf-cross (unistd-eabi.h + unistd.h for
// the __ARM_NR_* private calls). The aarch64 and arm headers are full of #if blocks and macro arithmetic
// (__NR3264_*, __NR_SYSCALL_BASE + n), so they go through the small preprocessor below rather than a regexp.
//
// The distribution headers lag the running kernels: SUPPLEMENT adds the calls numbered after them. Since Linux 5.1
// every new syscall takes the same number on every architecture ("common" in the syscall.tbl files), so one list
// serves all five tables; it is only applied for names the header lacks, and a clash with a header number aborts.
// --check regenerates in memory and exits 1 if a committed table differs (for CI).

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const OUT_DIR = path.join(ROOT, 'lib', 'seccomp', 'tables');

/** Post-6.1 syscalls: name -> [number, ABIs]. Source: the syscall.tbl files of Linux 6.17. */
const COMMON = ['x86_64', 'i386', 'x32', 'aarch64', 'arm'];
const SUPPLEMENT = {
  cachestat: [451, COMMON], // 6.5
  fchmodat2: [452, COMMON], // 6.6
  map_shadow_stack: [453, COMMON], // 6.6 (only implemented on x86_64; the number is reserved everywhere)
  futex_wake: [454, COMMON], // 6.7
  futex_wait: [455, COMMON],
  futex_requeue: [456, COMMON],
  statmount: [457, COMMON], // 6.8
  listmount: [458, COMMON],
  lsm_get_self_attr: [459, COMMON],
  lsm_set_self_attr: [460, COMMON],
  lsm_list_modules: [461, COMMON],
  mseal: [462, COMMON], // 6.10
  setxattrat: [463, COMMON], // 6.13
  getxattrat: [464, COMMON],
  listxattrat: [465, COMMON],
  removexattrat: [466, COMMON],
  open_tree_attr: [467, COMMON], // 6.15
  file_getattr: [468, COMMON], // 6.17
  file_setattr: [469, COMMON],
  uretprobe: [335, ['x86_64', 'x32']], // 6.11, x86 only ("common" in syscall_64.tbl, so x32 too)
};

const TARGETS = [
  {
    arch: 'x86_64',
    header: '/usr/include/x86_64-linux-gnu/asm/unistd_64.h',
    version: '/usr/include/linux/version.h',
    defines: {},
  },
  {
    arch: 'i386',
    header: '/usr/include/x86_64-linux-gnu/asm/unistd_32.h',
    version: '/usr/include/linux/version.h',
    defines: {},
  },
  {
    arch: 'x32',
    header: '/usr/include/x86_64-linux-gnu/asm/unistd_x32.h',
    version: '/usr/include/linux/version.h',
    // The table stores the raw x32 numbers; the compiler ORs in __X32_SYSCALL_BIT (libseccomp does the same).
    defines: { __X32_SYSCALL_BIT: '0' },
  },
  {
    arch: 'aarch64',
    header: '/usr/aarch64-linux-gnu/include/asm/unistd.h',
    version: '/usr/aarch64-linux-gnu/include/linux/version.h',
    includeDir: '/usr/aarch64-linux-gnu/include',
    defines: {},
  },
  {
    arch: 'arm',
    header: '/usr/arm-linux-gnueabihf/include/asm/unistd.h',
    version: '/usr/arm-linux-gnueabihf/include/linux/version.h',
    includeDir: '/usr/arm-linux-gnueabihf/include',
    // EABI only: libseccomp and the kernel's seccomp support on 32-bit ARM require it (no OABI compat).
    defines: { __ARM_EABI__: '1' },
  },
];

/** Macro names that look like syscalls but are not: counters, bases and markers. */
const NOT_SYSCALLS = new Set([
  '__NR_syscalls',
  '__NR_arch_specific_syscall',
  '__NR_SYSCALL_BASE',
  '__NR_OABI_SYSCALL_BASE',
  '__NR_SYSCALL_MASK',
  '__ARM_NR_BASE',
]);

// ---------------------------------------------------------------------------------------------------------------
// A preprocessor just large enough for the uapi unistd headers: object-like #define/#undef, #if/#ifdef/#ifndef/
// #elif/#else/#endif with integer expressions, and #include of other headers under includeDir. Function-like
// macros are recorded as defined (for defined()) but never expanded; everything outside directives is ignored.

function tokenize(expr) {
  const tokens = [];
  const re = /\s*(0[xX][0-9a-fA-F]+|\d+|[A-Za-z_]\w*|&&|\|\||==|!=|<=|>=|<<|>>|[()+\-*/%<>!~&|^?:,])/y;
  let pos = 0;
  const src = expr.replace(/\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b/g, '$1');
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new Error(`cannot tokenize ${JSON.stringify(expr)} at ${pos}`);
    tokens.push(m[1]);
    pos = re.lastIndex;
  }
  return tokens;
}

class Preprocessor {
  constructor(defines, includeDir) {
    /** name -> replacement text (object-like) or null (function-like) */
    this.macros = new Map(Object.entries(defines));
    this.includeDir = includeDir;
  }

  isDefined(name) {
    return this.macros.has(name);
  }

  /** Integer value of an expression, macros expanded recursively; unknown identifiers are 0 as in C. */
  evaluate(expr, depth = 0) {
    if (depth > 32) throw new Error(`macro recursion in ${expr}`);
    const raw = tokenize(expr);
    const tokens = [];
    for (let i = 0; i < raw.length; i++) {
      const t = raw[i];
      if (t === 'defined') {
        let name = raw[i + 1];
        if (name === '(') {
          name = raw[i + 2];
          i += 3;
        } else {
          i += 1;
        }
        tokens.push(this.isDefined(name) ? '1' : '0');
      } else if (/^[A-Za-z_]/.test(t)) {
        const body = this.macros.get(t);
        tokens.push(typeof body === 'string' && body.trim() !== '' ? String(this.evaluate(body, depth + 1)) : '0');
      } else {
        tokens.push(t);
      }
    }
    return new ExprParser(tokens).parseAll();
  }

  run(file) {
    const text = fs
      .readFileSync(file, 'utf8')
      .replace(/\\\r?\n/g, ' ')
      .replace(/\/\*[\s\S]*?\*\//g, ' ');
    // Each frame: taking = this branch is emitted; done = some branch of this #if was taken; parent = enclosing taking.
    const stack = [];
    const taking = () => stack.length === 0 || stack[stack.length - 1].taking;
    for (const rawLine of text.split('\n')) {
      const line = rawLine.replace(/\/\/.*$/, '').trim();
      const m = /^#\s*(\w+)\s*(.*)$/.exec(line);
      if (!m) continue;
      const [, directive, rest] = m;
      switch (directive) {
        case 'if':
        case 'ifdef':
        case 'ifndef': {
          const parent = taking();
          let cond = false;
          if (parent) {
            if (directive === 'ifdef') cond = this.isDefined(rest.trim());
            else if (directive === 'ifndef') cond = !this.isDefined(rest.trim());
            else cond = this.evaluate(rest) !== 0;
          }
          stack.push({ parent, taking: parent && cond, done: parent && cond });
          break;
        }
        case 'elif': {
          const top = stack[stack.length - 1];
          const cond = top.parent && !top.done && this.evaluate(rest) !== 0;
          top.taking = cond;
          top.done = top.done || cond;
          break;
        }
        case 'else': {
          const top = stack[stack.length - 1];
          top.taking = top.parent && !top.done;
          top.done = true;
          break;
        }
        case 'endif':
          stack.pop();
          break;
        case 'define': {
          if (!taking()) break;
          const d = /^([A-Za-z_]\w*)(\()?\s*(.*)$/.exec(rest);
          if (!d) throw new Error(`bad #define in ${file}: ${line}`);
          this.macros.set(d[1], d[2] ? null : d[3]);
          break;
        }
        case 'undef':
          if (taking()) this.macros.delete(rest.trim());
          break;
        case 'include': {
          if (!taking()) break;
          const inc = /^[<"]([^>"]+)[>"]/.exec(rest);
          if (!inc) throw new Error(`bad #include in ${file}: ${line}`);
          // Only the unistd chain and __BITS_PER_LONG matter; nothing else in these headers affects numbering.
          if (!/unistd|bitsperlong/.test(inc[1])) break;
          if (!this.includeDir) throw new Error(`${file} includes ${inc[1]} but no include directory is set`);
          const target = path.join(this.includeDir, inc[1]);
          this.run(fs.existsSync(target) ? target : path.join(path.dirname(file), path.basename(inc[1])));
          break;
        }
        default:
          break; // #error, #warning, #pragma: not present in these headers
      }
    }
    if (stack.length !== 0) throw new Error(`unbalanced #if in ${file}`);
  }
}

/** Precedence-climbing parser over C integer expressions (values stay within Number's safe range here). */
class ExprParser {
  constructor(tokens) {
    this.tokens = tokens;
    this.pos = 0;
  }
  peek() {
    return this.tokens[this.pos];
  }
  next() {
    return this.tokens[this.pos++];
  }
  parseAll() {
    const v = this.ternary();
    if (this.pos !== this.tokens.length) throw new Error(`trailing tokens: ${this.tokens.slice(this.pos).join(' ')}`);
    return v;
  }
  ternary() {
    const c = this.binary(0);
    if (this.peek() !== '?') return c;
    this.next();
    const a = this.ternary();
    if (this.next() !== ':') throw new Error('expected :');
    const b = this.ternary();
    return c ? a : b;
  }
  binary(minPrec) {
    const PREC = {
      '||': 1,
      '&&': 2,
      '|': 3,
      '^': 4,
      '&': 5,
      '==': 6,
      '!=': 6,
      '<': 7,
      '>': 7,
      '<=': 7,
      '>=': 7,
      '<<': 8,
      '>>': 8,
      '+': 9,
      '-': 9,
      '*': 10,
      '/': 10,
      '%': 10,
    };
    let left = this.unary();
    for (;;) {
      const op = this.peek();
      const prec = PREC[op];
      if (prec === undefined || prec < minPrec) return left;
      this.next();
      const right = this.binary(prec + 1);
      left = applyBinary(op, left, right);
    }
  }
  unary() {
    const t = this.next();
    if (t === '(') {
      const v = this.ternary();
      if (this.next() !== ')') throw new Error('expected )');
      return v;
    }
    if (t === '!') return this.unary() ? 0 : 1;
    if (t === '-') return -this.unary();
    if (t === '+') return this.unary();
    if (t === '~') return ~this.unary();
    if (t !== undefined && /^(0[xX][0-9a-fA-F]+|\d+)$/.test(t)) return Number(t);
    throw new Error(`unexpected token ${t}`);
  }
}

function applyBinary(op, a, b) {
  switch (op) {
    case '||':
      return a || b ? 1 : 0;
    case '&&':
      return a && b ? 1 : 0;
    case '|':
      return a | b;
    case '^':
      return a ^ b;
    case '&':
      return a & b;
    case '==':
      return a === b ? 1 : 0;
    case '!=':
      return a !== b ? 1 : 0;
    case '<':
      return a < b ? 1 : 0;
    case '>':
      return a > b ? 1 : 0;
    case '<=':
      return a <= b ? 1 : 0;
    case '>=':
      return a >= b ? 1 : 0;
    case '<<':
      return a * 2 ** b;
    case '>>':
      return Math.floor(a / 2 ** b);
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return Math.trunc(a / b);
    case '%':
      return a % b;
    default:
      throw new Error(`operator ${op}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

function headerVersion(file) {
  const pp = new Preprocessor({});
  pp.run(file);
  const v = (n) => (pp.isDefined(n) ? pp.evaluate(n) : undefined);
  const major = v('LINUX_VERSION_MAJOR');
  if (major !== undefined) return `${major}.${v('LINUX_VERSION_PATCHLEVEL')}.${v('LINUX_VERSION_SUBLEVEL')}`;
  const code = v('LINUX_VERSION_CODE');
  return `${code >> 16}.${(code >> 8) & 0xff}.${code & 0xff}`;
}

function tableFor(target) {
  if (!fs.existsSync(target.header)) {
    throw new Error(
      `${target.header} is missing: apt-get install -y linux-libc-dev linux-libc-dev-arm64-cross linux-libc-dev-armhf-cross`,
    );
  }
  const pp = new Preprocessor(target.defines, target.includeDir);
  pp.run(target.header);
  const table = new Map();
  for (const [macro, body] of pp.macros) {
    if (typeof body !== 'string' || NOT_SYSCALLS.has(macro)) continue;
    const m = /^__(?:ARM_)?NR_(\w+)$/.exec(macro);
    if (!m) continue;
    const nr = pp.evaluate(macro);
    if (!Number.isInteger(nr) || nr < 0 || nr > 0xffffffff) throw new Error(`${target.arch}: ${macro} = ${nr}`);
    table.set(m[1], nr);
  }
  const fromHeader = table.size;
  const numbers = new Map([...table].map(([name, nr]) => [nr, name]));
  const added = [];
  for (const [name, [nr, abis]] of Object.entries(SUPPLEMENT)) {
    if (!abis.includes(target.arch) || table.has(name)) continue;
    if (numbers.has(nr)) throw new Error(`${target.arch}: supplement ${name}=${nr} clashes with ${numbers.get(nr)}`);
    table.set(name, nr);
    added.push(name);
  }
  if (fromHeader < 300) throw new Error(`${target.arch}: only ${fromHeader} syscalls parsed from ${target.header}`);
  return { table, fromHeader, added, version: headerVersion(target.version) };
}

function render(target, { table, fromHeader, added, version }) {
  const entries = [...table].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
  const constName = `SYSCALLS_${target.arch.toUpperCase()}`;
  const lines = [
    `// Generated by scripts/gen-syscall-tables.js: do not edit.`,
    `// Source: ${target.header} (Linux uapi ${version}), ${fromHeader} entries;` +
      ` ${added.length} added from the post-${version.split('.').slice(0, 2).join('.')} supplement.`,
  ];
  if (target.arch === 'x32') lines.push('// Raw x32 numbers: the compiler ORs in __X32_SYSCALL_BIT (0x40000000).');
  lines.push(
    '',
    `export const ${constName}: Readonly<Record<string, number>> = Object.freeze({`,
    ...entries.map(([name, nr]) => `  ${name}: ${nr > 0xffff ? '0x' + nr.toString(16) : nr},`),
    '});',
    '',
  );
  return lines.join('\n');
}

function main() {
  const check = process.argv.includes('--check');
  let stale = false;
  fs.mkdirSync(OUT_DIR, { recursive: true });
  for (const target of TARGETS) {
    const result = tableFor(target);
    const text = render(target, result);
    const out = path.join(OUT_DIR, `${target.arch}.ts`);
    if (check) {
      const current = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
      if (current !== text) {
        stale = true;
        console.error(`${path.relative(ROOT, out)} is stale`);
      }
      continue;
    }
    fs.writeFileSync(out, text);
    console.log(
      `${path.relative(ROOT, out)}: ${result.table.size} syscalls (${result.fromHeader} from Linux ${result.version} headers` +
        `${result.added.length ? `, +${result.added.length} supplement` : ''})`,
    );
  }
  if (stale) process.exit(1);
}

main();
