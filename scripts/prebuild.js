#!/usr/bin/env node
// npm run prebuild: prebuilds/linux-{x64,arm64,arm} for glibc with prebuildify and the Debian cross
// compilers. Each folder holds the Node-API addon (tagged so node-gyp-build picks it: x64 `.glibc`,
// arm64 `.armv8.glibc`, arm `.armv7.glibc`, never chosen by an armv6 Node) and every executable target of
// binding.gyp (the static init helper `hako-init`, the static test/demo program `hako-probe`, ...), all
// stripped with the target's strip.
//
// The builds run in a temporary copy of the sources (binding.gyp, src-native/, package.json), so the
// checkout's build/ — which node-gyp-build prefers over prebuilds/ — is never touched.
//
//   node scripts/prebuild.js [--arch x64,arm64,arm] [--out DIR] [--check]
//     --arch   subset of targets (default: all three)
//     --out    package root that receives prebuilds/ (default: this checkout)
//     --check  print whether prebuilds/ is up to date with the sources (exit 0) or not (exit 1); no build
//     --verbose show the node-gyp output (otherwise shown only when a build fails)
//
// Needs: g++ make python3 (node-gyp), gcc/g++-aarch64-linux-gnu, gcc/g++-arm-linux-gnueabihf, and the Node
// headers (npm_config_nodedir, default /usr when /usr/include/node/node_api.h exists: no header download).
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

/** The three shipped targets: node arch, GNU triplet (null = host), prebuildify tag arguments, ELF e_machine. */
const TARGETS = {
  x64: { triplet: null, tags: ['--tag-libc'], machine: 62 },
  arm64: { triplet: 'aarch64-linux-gnu', tags: ['--armv', '8', '--tag-armv', '--tag-libc'], machine: 183 },
  arm: { triplet: 'arm-linux-gnueabihf', tags: ['--armv', '7', '--tag-armv', '--tag-libc'], machine: 40 },
};
/** The executables binding.gyp builds beside the addon (hako-init, hako-probe, ...): all go into each folder. */
function executables(root = ROOT) {
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8'));
  return gyp.targets.filter((t) => t.type === 'executable').map((t) => t.target_name);
}
/** Built and kept in prebuilds/ for the tests and the demo, but not shipped in the npm package. */
const TEST_ONLY = ['hako-probe'];

/** sha256 over everything that goes into the native build, so stale prebuilds can be detected. */
function sourceHash(root = ROOT) {
  const h = crypto.createHash('sha256');
  const files = ['binding.gyp'];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (/\.(c|cc|h|js)$/.test(e.name)) files.push(r);
    }
  };
  walk('src-native');
  for (const f of files) h.update(f + '\0').update(fs.readFileSync(path.join(root, f))).update('\0');
  return h.digest('hex');
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** node-gyp: the one npm runs scripts with, a local install, or npm's bundled copy beside this Node. */
function nodeGypJs() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] }));
  } catch {
    /* not installed locally */
  }
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && fs.existsSync(c)) || null;
}

/** What a target needs that is missing (empty when it can be built here). */
function missingTools(arch) {
  const t = TARGETS[arch];
  const pre = t.triplet ? `${t.triplet}-` : '';
  return [`${pre}gcc`, `${pre}g++`, `${pre}strip`].filter((c) => !which(c));
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status}`})`);
}

function copyTree(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else fs.copyFileSync(s, d);
  }
}

/** e_machine of an ELF file (0 if not ELF). */
function elfMachine(file) {
  const b = fs.readFileSync(file).subarray(0, 20);
  if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return 0;
  return b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18);
}

function buildTarget(arch, work, nodeGyp, log) {
  const t = TARGETS[arch];
  const pre = t.triplet ? `${t.triplet}-` : '';
  const env = { ...process.env, JOBS: process.env.JOBS || 'max' };
  if (t.triplet) Object.assign(env, { CC: `${pre}gcc`, CXX: `${pre}g++`, LINK: `${pre}g++`, AR: `${pre}ar` });
  else for (const k of ['CC', 'CXX', 'LINK', 'AR']) delete env[k];
  // prebuildify spawns node-gyp without a shell: give it an executable wrapper around node-gyp.js.
  const wrapper = path.join(work, '.node-gyp');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${nodeGyp}" "$@"\n`, { mode: 0o755 });
  const prebuildify = require.resolve('prebuildify/bin.js', { paths: [ROOT] });
  const started = Date.now();
  fs.rmSync(path.join(work, 'build'), { recursive: true, force: true });
  const args = [prebuildify, '--napi', '--strip', '--strip-bin', `${pre}strip`, '--arch', arch, ...t.tags, '--node-gyp', wrapper];
  const r = spawnSync(process.execPath, args, { cwd: work, env, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', log ? 'inherit' : 'pipe', log ? 'inherit' : 'pipe'] });
  const output = `${r.stdout || ''}${r.stderr || ''}`;
  if (r.status !== 0) {
    process.stderr.write(output);
    throw new Error(`prebuildify for linux-${arch} failed (${r.error ? r.error.message : `exit ${r.status}`})`);
  }
  // Compiler warnings are worth seeing: a target-specific one (32-bit types on arm) is a portability bug.
  const warnings = [...new Set(output.split('\n').filter((l) => /\bwarning:/.test(l)).map((l) => l.replace(work + '/', '')))];
  const dir = path.join(work, 'prebuilds', `linux-${arch}`);
  for (const exe of executables(work)) {
    const out = path.join(dir, exe);
    fs.copyFileSync(path.join(work, 'build', 'Release', exe), out);
    run(`${pre}strip`, ['--strip-all', out]);
    fs.chmodSync(out, 0o755);
  }
  for (const f of fs.readdirSync(dir)) {
    const m = elfMachine(path.join(dir, f));
    if (m !== t.machine) throw new Error(`${dir}/${f}: ELF machine ${m}, expected ${t.machine} for ${arch}`);
  }
  return { dir, seconds: (Date.now() - started) / 1000, warnings };
}

function readManifest(out) {
  try {
    return JSON.parse(fs.readFileSync(path.join(out, 'prebuilds', 'manifest.json'), 'utf8'));
  } catch {
    return null;
  }
}

/**
 * npm (10 and older) runs a script named `prebuild` before every `npm run build`, and so before `npm test`
 * and `npm install` of the checkout. Only `npm run prebuild` itself should build: find the nearest npm
 * process above us (npm sets its title to "npm <args>") and see which script it was asked for.
 */
function runAsHookOfBuild() {
  if (process.env.npm_lifecycle_event !== 'prebuild') return false;
  let pid = process.ppid;
  for (let depth = 0; depth < 8 && pid > 1; depth++) {
    let argv;
    let stat;
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return false;
    }
    let words = null;
    if (argv.length && /^npm( |$)/.test(argv[0])) words = argv.join(' ').split(/\s+/).slice(1);
    else {
      const i = argv.findIndex((a) => /npm-cli\.js$|(^|\/)npm$/.test(a));
      if (i >= 0) words = argv.slice(i + 1);
    }
    if (words) {
      const cmd = words.filter((w) => !w.startsWith('-'));
      const script = ['run', 'run-script', 'rum', 'urn'].includes(cmd[0]) ? cmd[1] : cmd[0];
      return script !== 'prebuild';
    }
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return false;
}

function main(argv) {
  if (runAsHookOfBuild()) {
    console.error('prebuild: skipped (npm runs the "prebuild" script before "build"; use `npm run prebuild` to make prebuilds)');
    return 0;
  }
  const opt = { arch: Object.keys(TARGETS), out: ROOT, check: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--arch') opt.arch = argv[++i].split(',').filter(Boolean);
    else if (a === '--out') opt.out = path.resolve(argv[++i]);
    else if (a === '--check') opt.check = true;
    else if (a === '--verbose') opt.verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: node scripts/prebuild.js [--arch x64,arm64,arm] [--out DIR] [--check] [--verbose]');
      return 0;
    }
    else throw new Error(`prebuild: unknown argument ${a}`);
  }
  for (const a of opt.arch) if (!TARGETS[a]) throw new Error(`prebuild: --arch ${a}: not one of ${Object.keys(TARGETS).join(', ')}`);

  const hash = sourceHash();
  if (opt.check) {
    const fresh = isFresh(opt.arch, opt.out);
    console.log(fresh ? 'prebuilds are up to date' : 'prebuilds are missing or older than src-native/ and binding.gyp');
    return fresh ? 0 : 1;
  }

  const missing = opt.arch.flatMap(missingTools);
  if (missing.length) {
    console.error(`prebuild: missing tools: ${missing.join(', ')}\n` +
      '  apt-get install g++ make python3 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf');
    return 1;
  }
  const nodeGyp = nodeGypJs();
  if (!nodeGyp) {
    console.error('prebuild: node-gyp not found (run through npm, or npm install node-gyp)');
    return 1;
  }
  if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) process.env.npm_config_nodedir = '/usr';

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-prebuild-'));
  const summary = {};
  try {
    for (const f of ['package.json', 'binding.gyp']) fs.copyFileSync(path.join(ROOT, f), path.join(work, f));
    copyTree(path.join(ROOT, 'src-native'), path.join(work, 'src-native'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'));
    for (const arch of opt.arch) {
      process.stderr.write(`prebuild: linux-${arch} ... `);
      const { dir, seconds, warnings } = buildTarget(arch, work, nodeGyp, opt.verbose);
      const files = {};
      for (const f of fs.readdirSync(dir).sort()) files[f] = fs.statSync(path.join(dir, f)).size;
      summary[arch] = { files, seconds };
      process.stderr.write(`${seconds.toFixed(1)} s${warnings.length ? `, ${warnings.length} compiler warning(s):` : ''}\n`);
      for (const w of warnings) process.stderr.write(`  ${w}\n`);
    }
    // Replace the finished folders only now, so a failed build leaves the previous prebuilds alone.
    const dest = path.join(opt.out, 'prebuilds');
    fs.mkdirSync(dest, { recursive: true });
    const previous = readManifest(opt.out);
    const targets = previous && previous.sources === hash ? { ...previous.targets } : {};
    for (const arch of opt.arch) {
      const d = path.join(dest, `linux-${arch}`);
      fs.rmSync(d, { recursive: true, force: true });
      copyTree(path.join(work, 'prebuilds', `linux-${arch}`), d);
      targets[arch] = summary[arch].files;
    }
    const manifest = { sources: hash, node: process.versions.node, napi: 8, libc: 'glibc', targets };
    fs.writeFileSync(path.join(dest, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  for (const [arch, s] of Object.entries(summary))
    console.log(`prebuilds/linux-${arch}: ${Object.entries(s.files).map(([f, n]) => `${f} ${n} B`).join(', ')} (${s.seconds.toFixed(1)} s)`);
  return 0;
}

/** true when prebuilds/ under `out` was built from the current sources for every arch in `arches`. */
function isFresh(arches = Object.keys(TARGETS), out = ROOT) {
  const m = readManifest(out);
  if (!m || m.sources !== sourceHash() || !m.targets) return false;
  return arches.every((a) => m.targets[a] && Object.keys(m.targets[a]).every((f) => fs.existsSync(path.join(out, 'prebuilds', `linux-${a}`, f))));
}

/**
 * For tests: make prebuilds/ current. Returns undefined when it is (rebuilding it first if it was stale and
 * the cross compilers are here), otherwise the reason it cannot be.
 */
function ensureFresh(arches = Object.keys(TARGETS)) {
  if (isFresh(arches)) return undefined;
  const missing = arches.flatMap(missingTools);
  if (missing.length)
    return `prebuilds/ is missing or older than src-native/, and the compilers to rebuild it are not installed (${missing.join(', ')}): ` +
      'apt-get install g++-aarch64-linux-gnu g++-arm-linux-gnueabihf, then npm run prebuild';
  const r = spawnSync(process.execPath, [__filename, '--arch', arches.join(',')], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`npm run prebuild failed:\n${r.stdout}\n${r.stderr}`);
  return isFresh(arches) ? undefined : 'prebuilds/ is still older than the sources after a rebuild (were they edited meanwhile?)';
}

module.exports = { TARGETS, TEST_ONLY, executables, sourceHash, missingTools, elfMachine, isFresh, ensureFresh };

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`prebuild: ${e.message}`);
    process.exitCode = 1;
  }
}
