// What `npm pack` ships: the three prebuild folders (addon + hako-init, right machine code, stripped),
// compiled JS with types, README and LICENSE, the sources a fallback build needs — and no tests, build
// trees or TypeScript sources. Also measures the size budgets and prints them.
//
// The prebuilds come from `npm run prebuild`; when they are missing or older than src-native/ this test
// rebuilds them if the cross compilers are installed, and otherwise skips the prebuild checks (under CI=true,
// or HAKO_REQUIRE_PREBUILDS=1, missing prebuilds are a failure).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { packageRoot } from '../lib/native/addon';

const ROOT = packageRoot();
const MB = 1_000_000;
/** Budgets (issue 8): the installed package with all three prebuilds, and addon + hako-init per architecture. */
const BUDGET_TOTAL = 2.63 * MB;
const BUDGET_ARCH = 1 * MB;

interface Prebuild {
  arch: string;
  addon: string;
  machine: number;
  machineName: string;
}
const PREBUILDS: Prebuild[] = [
  { arch: 'x64', addon: 'hako.glibc.node', machine: 62, machineName: 'x86-64' },
  { arch: 'arm64', addon: 'hako.armv8.glibc.node', machine: 183, machineName: 'AArch64' },
  { arch: 'arm', addon: 'hako.armv7.glibc.node', machine: 40, machineName: 'ARM' },
];

interface PrebuildScript {
  ensureFresh(arches?: string[]): string | undefined;
  executables(): string[];
  TEST_ONLY: string[];
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const prebuildScript = require(path.join(ROOT, 'scripts', 'prebuild.js')) as PrebuildScript;

interface PackFile {
  path: string;
  size: number;
}
function npmPack(): { files: PackFile[]; size: number; unpackedSize: number } {
  const npmCli = process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const r = spawnSync(npmCli[0], [...npmCli.slice(1), 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `npm pack --dry-run failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { files: PackFile[]; size: number; unpackedSize: number }[];
  return j[0];
}

/** The few ELF facts the checks need, read from the headers. */
interface Elf {
  machine: number;
  flags: number;
  type: number;
  interp: boolean;
  dynamic: boolean;
  sections: string[];
}
function readElf(file: string): Elf {
  const b = fs.readFileSync(file);
  assert.equal(b.readUInt32BE(0), 0x7f454c46, `${file} is not ELF`);
  const is64 = b[4] === 2;
  assert.equal(b[5], 1, `${file}: not little-endian`);
  const u16 = (o: number) => b.readUInt16LE(o);
  const u32 = (o: number) => b.readUInt32LE(o);
  const word = (o: number) => (is64 ? Number(b.readBigUInt64LE(o)) : u32(o));
  const type = u16(16);
  const machine = u16(18);
  const phoff = word(is64 ? 32 : 28);
  const shoff = word(is64 ? 40 : 32);
  const flags = u32(is64 ? 48 : 36);
  const [phentsize, phnum, shentsize, shnum, shstrndx] = [u16(is64 ? 54 : 42), u16(is64 ? 56 : 44), u16(is64 ? 58 : 46), u16(is64 ? 60 : 48), u16(is64 ? 62 : 50)];
  let interp = false;
  let dynamic = false;
  for (let i = 0; i < phnum; i++) {
    const t = u32(phoff + i * phentsize);
    if (t === 3) interp = true;
    if (t === 2) dynamic = true;
  }
  const sections: string[] = [];
  if (shoff && shnum && shstrndx < shnum) {
    const sh = (i: number) => shoff + i * shentsize;
    const strOff = word(sh(shstrndx) + (is64 ? 24 : 16));
    for (let i = 0; i < shnum; i++) {
      const nameOff = strOff + u32(sh(i));
      sections.push(b.toString('latin1', nameOff, b.indexOf(0, nameOff)));
    }
  }
  return { machine, flags, type, interp, dynamic, sections };
}

const fmt = (n: number) => `${(n / MB).toFixed(3)} MB`;

describe('npm package', () => {
  let pack: { files: PackFile[]; size: number; unpackedSize: number };
  let paths: Set<string>;
  let noPrebuilds: string | undefined;

  before(() => {
    noPrebuilds = prebuildScript.ensureFresh();
    if (noPrebuilds && (process.env.CI === 'true' || process.env.HAKO_REQUIRE_PREBUILDS === '1')) throw new Error(noPrebuilds);
    pack = npmPack();
    paths = new Set(pack.files.map((f) => f.path));
  });

  test('ships compiled JS, types, the CLI, README, LICENSE and what a fallback build needs', () => {
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/hako', 'dist/cli.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/native/addon.js', 'dist/lib/native/addon.d.ts', 'binding.gyp'])
      assert.ok(paths.has(f), `${f} is in the package`);
    // Every compiled module has its declaration file.
    for (const f of paths) if (f.startsWith('dist/lib/') && f.endsWith('.js')) assert.ok(paths.has(f.replace(/\.js$/, '.d.ts')), `${f} has types`);
    // `npm install` without a matching prebuild runs node-gyp: every source binding.gyp names must be there.
    const gyp = fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8');
    for (const src of gyp.match(/src-native\/[\w./-]+\.(?:cc|c|js)/g) ?? []) assert.ok(paths.has(src), `${src} (binding.gyp) is in the package`);
    assert.ok(gyp.includes('src-native/libc-flags.js'), 'binding.gyp takes the helpers\' libc flags from src-native/libc-flags.js');
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string; types: string; bin: Record<string, string>; scripts: Record<string, string> };
    assert.ok(paths.has(pkg.main) && paths.has(pkg.types), 'main and types are shipped');
    for (const b of Object.values(pkg.bin)) assert.ok(paths.has(b.replace(/^\.\//, '')), `bin ${b} is shipped`);
    assert.match(pkg.scripts.install, /^node-gyp-build\b/, 'install uses a prebuild or builds from source');
  });

  test('no tests, build trees, TypeScript sources or dev files', () => {
    const forbidden = [/^dist\/test\//, /^test\//, /^build\//, /^build-cmake\//, /^lib\//, /^scripts\//, /^bench\//, /^examples\//, /^node_modules\//, /^docs\//, /^\.ci\//, /^dist\/scripts\//, /^dist\/bench\//, /\.test\.(js|ts)$/, /(^|\/)\.git/, /\.tgz$/];
    const bad = [...paths].filter((p) => forbidden.some((re) => re.test(p)) || (p.endsWith('.ts') && !p.endsWith('.d.ts')));
    assert.deepEqual(bad, []);
    assert.ok(![...paths].some((p) => p.endsWith('/hako-probe')), 'hako-probe (tests and demo only) is not shipped');
  });

  test('the three prebuild folders: tagged addon and hako-init, right machine code, stripped', (t) => {
    if (noPrebuilds) return t.skip(noPrebuilds);
    for (const p of PREBUILDS) {
      const dir = `prebuilds/linux-${p.arch}`;
      assert.ok(paths.has(`${dir}/${p.addon}`), `${dir}/${p.addon} is in the package`);
      const shipped = prebuildScript.executables().filter((e) => !prebuildScript.TEST_ONLY.includes(e));
      assert.ok(shipped.includes('hako-init'));
      for (const e of shipped) assert.ok(paths.has(`${dir}/${e}`), `${dir}/${e} is in the package`);
      for (const f of [p.addon, ...prebuildScript.executables()]) {
        const e = readElf(path.join(ROOT, dir, f));
        assert.equal(e.machine, p.machine, `${dir}/${f} is ${p.machineName} code`);
        assert.ok(!e.sections.includes('.symtab') && !e.sections.includes('.debug_info'), `${dir}/${f} is stripped`);
        if (p.arch === 'arm') {
          assert.equal(e.flags & 0xff000000, 0x05000000, `${dir}/${f}: ARM EABI version 5`);
          assert.ok(e.flags & 0x400, `${dir}/${f}: hard-float ABI (armhf)`);
        }
        if (f === p.addon) assert.equal(e.type, 3, `${f} is a shared object`);
        else assert.ok(!e.interp && !e.dynamic, `${dir}/${f} is static (it runs inside any container rootfs)`);
      }
      // Nothing else in the folder: node-gyp-build takes any *.node file there as a candidate.
      assert.deepEqual([...paths].filter((f) => f.startsWith(`${dir}/`)).sort(), [p.addon, ...shipped].map((f) => `${dir}/${f}`).sort());
    }
  });

  test('the static helpers are linked against musl wherever the target\'s musl is installed', (t) => {
    if (noPrebuilds) return t.skip(noPrebuilds);
    const targets = [
      { arch: 'x64', cxx: 'g++', musl: 'x86_64-linux-musl' },
      { arch: 'arm64', cxx: 'aarch64-linux-gnu-g++', musl: 'aarch64-linux-musl' },
      { arch: 'arm', cxx: 'arm-linux-gnueabihf-g++', musl: 'arm-linux-musleabihf' },
    ];
    let checked = 0;
    for (const x of targets) {
      if (!fs.existsSync(`/usr/lib/${x.musl}/libc.a`)) {
        t.diagnostic(`linux-${x.arch}: no ${x.musl} musl here, helpers are static glibc`);
        continue;
      }
      const env: NodeJS.ProcessEnv = { ...process.env, CXX: x.cxx };
      delete env.HAKO_LIBC;
      const described = spawnSync(process.execPath, [path.join(ROOT, 'src-native', 'libc-flags.js'), 'describe'], { env, encoding: 'utf8' });
      assert.equal(described.stdout.trim(), `musl (${x.musl})`, `libc-flags.js picks musl for ${x.cxx}`);
      for (const exe of ['hako-init', 'hako-policy-helper']) {
        const bytes = fs.readFileSync(path.join(ROOT, 'prebuilds', `linux-${x.arch}`, exe));
        // Static glibc leaves its own messages ("Fatal glibc error: ...") in every binary.
        assert.equal(bytes.indexOf('glibc'), -1, `prebuilds/linux-${x.arch}/${exe} has no static glibc in it`);
      }
      checked++;
    }
    const glibc = spawnSync(process.execPath, [path.join(ROOT, 'src-native', 'libc-flags.js'), 'ldflags'], { env: { ...process.env, HAKO_LIBC: 'glibc' }, encoding: 'utf8' });
    assert.equal(glibc.stdout.trim(), '-static', 'HAKO_LIBC=glibc: plain static glibc');
    t.diagnostic(`${checked} of 3 architectures checked`);
  });

  test('size budgets: installed package and native payload per architecture (printed)', (t) => {
    if (noPrebuilds) return t.skip(noPrebuilds);
    const size = (f: string) => pack.files.find((x) => x.path === f)?.size ?? 0;
    const lines: string[] = [];
    const over: string[] = [];
    for (const p of PREBUILDS) {
      const dir = `prebuilds/linux-${p.arch}`;
      const addonSize = size(`${dir}/${p.addon}`);
      const init = size(`${dir}/hako-init`);
      const others = pack.files.filter((f) => f.path.startsWith(`${dir}/`) && ![p.addon, 'hako-init'].includes(path.basename(f.path)));
      const extra = others.map((f) => `; also ${path.basename(f.path)} ${fmt(f.size)}`).join('');
      lines.push(`linux-${p.arch.padEnd(5)}  addon ${fmt(addonSize)} + hako-init ${fmt(init)} = ${fmt(addonSize + init)}  (budget ${fmt(BUDGET_ARCH)})${extra}`);
      assert.ok(addonSize + init <= BUDGET_ARCH, `linux-${p.arch}: addon + hako-init ${fmt(addonSize + init)} > ${fmt(BUDGET_ARCH)}`);
    }
    const group = (re: RegExp) => pack.files.filter((f) => re.test(f.path)).reduce((s, f) => s + f.size, 0);
    lines.push(`prebuilds ${fmt(group(/^prebuilds\//))}, dist/lib ${fmt(group(/^dist\/lib\//))}, dist/cli.js ${fmt(group(/^dist\/cli\.js$/))}, src-native ${fmt(group(/^src-native\//))}, other ${fmt(group(/^(?!prebuilds\/|dist\/|src-native\/)/))}`);
    lines.push(`installed (unpacked) ${fmt(pack.unpackedSize)} (budget ${fmt(BUDGET_TOTAL)}), tarball ${fmt(pack.size)}, ${pack.files.length} files`);
    if (pack.unpackedSize > BUDGET_TOTAL) over.push(`installed size ${fmt(pack.unpackedSize)} > ${fmt(BUDGET_TOTAL)}`);
    for (const l of lines) t.diagnostic(l);
    // The helpers fit only when linked against musl (src-native/libc-flags.js): static glibc costs ~0.67 MB each.
    assert.deepEqual(over, [], 'static glibc helpers? install musl-dev for each target (see .ci/run)');
  });
});
