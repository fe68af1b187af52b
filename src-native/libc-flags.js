#!/usr/bin/env node
// Compiler and linker flags for the static helpers (hako-init, hako-policy-helper, hako-probe), printed
// for binding.gyp (`<!@(node src-native/libc-flags.js cxxflags)` ...) and CMakeLists.txt.
//
// Why musl: a static glibc binary costs ~0.67 MB (x64) before any code of ours, the helpers are static
// so a waiting container maps no shared libc, and three helpers x three architectures would blow the
// package budget. The helpers use only C headers and no libstdc++, so when the target's musl is
// installed (Debian musl-dev / musl-tools, multiarch for arm64/armhf) they link against it: ~80 KB each.
// Otherwise (no musl, HAKO_LIBC=glibc, or a musl-native toolchain such as Yocto's TCLIBC=musl, whose
// plain -static already is musl) the flags are plain static glibc, which works the same, only bigger.
//
//   node src-native/libc-flags.js cflags|cxxflags|ldflags|describe
// The target compiler is $CXX (as node-gyp and prebuild.js set it for cross builds), else g++.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

function compilerOutput(args) {
  const cxx = (process.env.CXX || 'g++').split(/\s+/).filter(Boolean);
  const r = spawnSync(cxx[0], [...cxx.slice(1), ...args], { encoding: 'utf8' });
  return r.status === 0 ? `${r.stdout}${r.stderr}` : '';
}

/** The musl triplet matching the compiler's GNU one (x86_64-linux-gnu -> x86_64-linux-musl, arm-linux-gnueabihf -> arm-linux-musleabihf). */
function muslTriplet(gnu) {
  if (!/-linux-gnu/.test(gnu)) return null;
  return gnu.replace(/-linux-gnu/, '-linux-musl');
}

/** Directories the compiler searches for <...> headers, in order. */
function systemIncludeDirs() {
  const out = compilerOutput(['-E', '-x', 'c', '-v', '/dev/null', '-o', '/dev/null']);
  const start = out.indexOf('#include <...> search starts here:');
  const end = out.indexOf('End of search list.');
  if (start < 0 || end < 0) return [];
  return out
    .slice(start, end)
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
}

/**
 * musl's include dir has no kernel headers: give the build a directory holding only the target's
 * linux/, asm/ and asm-generic/ (symlinks), so no glibc header can leak into a musl build.
 */
function kernelHeaderDir(triplet) {
  const dir = path.join(__dirname, '..', 'build', 'libc', triplet, 'include');
  const dirs = systemIncludeDirs();
  const find = (name, probe) => dirs.map((d) => path.join(d, name)).find((p) => fs.existsSync(path.join(p, probe)));
  const wanted = {
    linux: find('linux', 'openat2.h'),
    asm: find('asm', 'unistd.h'),
    'asm-generic': find('asm-generic', 'errno-base.h'),
  };
  if (Object.values(wanted).some((p) => !p)) return null;
  // `describe` only reports (prebuild.js --check, the tests): it must not create build/ in the checkout.
  if (process.argv[2] === 'describe') return dir;
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(wanted)) {
    const link = path.join(dir, name);
    try {
      if (fs.readlinkSync(link) === target) continue;
      fs.unlinkSync(link);
    } catch {
      /* absent */
    }
    fs.symlinkSync(target, link);
  }
  return dir;
}

function choose() {
  const gnu = compilerOutput(['-dumpmachine']).trim();
  if (process.env.HAKO_LIBC !== 'glibc') {
    const mt = muslTriplet(gnu);
    const specs = mt && `/usr/lib/${mt}/musl-gcc.specs`;
    if (specs && fs.existsSync(specs) && fs.existsSync(`/usr/lib/${mt}/libc.a`)) {
      const kdir = kernelHeaderDir(mt);
      if (kdir) {
        return {
          libc: `musl (${mt})`,
          cflags: ['-specs', specs, '-idirafter', kdir],
          cxxflags: ['-specs', specs, '-nostdinc++', '-idirafter', kdir],
          ldflags: ['-specs', specs, '-static'],
        };
      }
    }
  }
  return {
    libc: `static ${/musl/.test(gnu) ? 'musl' : 'glibc'} (${gnu || 'unknown compiler'})`,
    cflags: [],
    cxxflags: [],
    ldflags: ['-static'],
  };
}

const what = process.argv[2];
const flags = choose();
if (what === 'cflags' || what === 'cxxflags' || what === 'ldflags') process.stdout.write(`${flags[what].join(' ')}\n`);
else if (what === 'describe') process.stdout.write(`${flags.libc}\n`);
else {
  process.stderr.write('usage: libc-flags.js cflags|cxxflags|ldflags|describe\n');
  process.exit(2);
}
