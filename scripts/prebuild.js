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
//   node scripts/prebuild.js [--arch x64,arm64,arm] [--out DIR] [--check] [--allow-glibc-helpers]
//     --arch   subset of targets (default: all three)
//     --out    package root that receives prebuilds/ (default: this checkout)
//     --check  compare prebuilds/ with what this machine would build now (sources, and the libc each target's
//              helpers would link): exit 0 when they match, else 1 with the reasons; no build
//     --allow-glibc-helpers  build (or pass --check) even where a target's helpers fall back to static glibc
//              (no musl for it here): they work, but cost ~0.4-0.7 MB each and break the package size budget
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
const { nodeGypJs } = require('../install.js'); // the same node-gyp npm install would use

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
/**
 * Built and kept in prebuilds/ for the tests, but not shipped in the npm package: none now; hako-probe ships,
 * as `hako example-bundle` (makeExampleBundle) makes the demo bundle from it.
 */
const TEST_ONLY = [];

/** The Debian packages that give each target's helpers musl (see src-native/libc-flags.js). */
const MUSL_PACKAGES = { x64: 'musl-tools musl-dev', arm64: 'musl-dev:arm64', arm: 'musl-dev:armhf' };

/** The target's compiler environment (the host's for x64). */
function targetEnv(arch) {
  const t = TARGETS[arch];
  const env = { ...process.env };
  if (t.triplet)
    Object.assign(env, {
      CC: `${t.triplet}-gcc`,
      CXX: `${t.triplet}-g++`,
      LINK: `${t.triplet}-g++`,
      AR: `${t.triplet}-ar`,
    });
  else for (const k of ['CC', 'CXX', 'LINK', 'AR']) delete env[k];
  return env;
}

/**
 * The libc the static helpers of `arch` link against when built here now, as src-native/libc-flags.js
 * (under `root`) decides it: "musl (aarch64-linux-musl)", "static glibc (...)".
 */
function helperLibc(arch, root = ROOT) {
  const r = spawnSync(process.execPath, [path.join(root, 'src-native', 'libc-flags.js'), 'describe'], {
    env: targetEnv(arch),
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout.trim() : `unknown (${(r.stderr || '').trim()})`;
}

const isMusl = (libc) => /^musl\b/.test(libc || '');

/** sha256 over everything that goes into the native build, so stale prebuilds can be detected. */
function sourceHash(root = ROOT) {
  const h = crypto.createHash('sha256');
  const files = ['binding.gyp'];
  const walk = (rel) => {
    for (const e of fs
      .readdirSync(path.join(root, rel), { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (/\.(c|cc|h|js)$/.test(e.name)) files.push(r);
    }
  };
  walk('src-native');
  for (const f of files)
    h.update(f + '\0')
      .update(fs.readFileSync(path.join(root, f)))
      .update('\0');
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

/** What a target needs that is missing (empty when it can be built here). */
function missingTools(arch) {
  const t = TARGETS[arch];
  const pre = t.triplet ? `${t.triplet}-` : '';
  return [`${pre}gcc`, `${pre}g++`, `${pre}strip`].filter((c) => !which(c));
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status}`})`);
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
  const env = { ...targetEnv(arch), JOBS: process.env.JOBS || 'max' };
  // prebuildify spawns node-gyp without a shell: give it an executable wrapper around node-gyp.js.
  const wrapper = path.join(work, '.node-gyp');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${nodeGyp}" "$@"\n`, { mode: 0o755 });
  const prebuildify = require.resolve('prebuildify/bin.js', { paths: [ROOT] });
  const started = Date.now();
  fs.rmSync(path.join(work, 'build'), { recursive: true, force: true });
  const args = [
    prebuildify,
    '--napi',
    '--strip',
    '--strip-bin',
    `${pre}strip`,
    '--arch',
    arch,
    ...t.tags,
    '--node-gyp',
    wrapper,
  ];
  const r = spawnSync(process.execPath, args, {
    cwd: work,
    env,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', log ? 'inherit' : 'pipe', log ? 'inherit' : 'pipe'],
  });
  const output = `${r.stdout || ''}${r.stderr || ''}`;
  if (r.status !== 0) {
    process.stderr.write(output);
    throw new Error(`prebuildify for linux-${arch} failed (${r.error ? r.error.message : `exit ${r.status}`})`);
  }
  // Compiler warnings are worth seeing: a target-specific one (32-bit types on arm) is a portability bug.
  const warnings = [
    ...new Set(
      output
        .split('\n')
        .filter((l) => /\bwarning:/.test(l))
        .map((l) => l.replace(work + '/', '')),
    ),
  ];
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
  // npm runs a script named "prebuild" before "build" (so on every `npm install` of the checkout): nothing to
  // do then, and nothing to say.
  if (runAsHookOfBuild()) return 0;
  const opt = {
    arch: Object.keys(TARGETS),
    out: ROOT,
    check: false,
    verbose: false,
    allowGlibc: process.env.HAKO_LIBC === 'glibc',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--arch') opt.arch = value().split(',').filter(Boolean);
    else if (a === '--out') opt.out = path.resolve(value());
    else if (a === '--check') opt.check = true;
    else if (a === '--verbose') opt.verbose = true;
    else if (a === '--allow-glibc-helpers') opt.allowGlibc = true;
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node scripts/prebuild.js [--arch x64,arm64,arm] [--out DIR] [--check] [--allow-glibc-helpers] [--verbose]',
      );
      return 0;
    } else throw new Error(`unknown argument ${a}`);
  }
  for (const a of opt.arch)
    if (!TARGETS[a]) throw new Error(`--arch ${a}: not one of ${Object.keys(TARGETS).join(', ')}`);

  const hash = sourceHash();
  if (opt.check) {
    const reasons = staleReasons(opt.arch, opt.out, { allowGlibc: opt.allowGlibc });
    if (reasons.length === 0)
      console.log(
        `prebuilds are up to date (${opt.arch.map((a) => `linux-${a} helpers: ${readManifest(opt.out).helperLibc[a]}`).join('; ')})`,
      );
    else
      console.log(`prebuilds are not what this machine would build now:\n${reasons.map((r) => `  - ${r}`).join('\n')}`);
    return reasons.length === 0 ? 0 : 1;
  }

  const missing = opt.arch.flatMap(missingTools);
  if (missing.length) {
    console.error(
      `prebuild: missing tools: ${missing.join(', ')}\n` +
        '  apt-get install g++ make python3 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf',
    );
    return 1;
  }
  const nodeGyp = nodeGypJs();
  if (!nodeGyp) {
    console.error('prebuild: node-gyp not found (run through npm, or npm install node-gyp)');
    return 1;
  }
  if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h'))
    process.env.npm_config_nodedir = '/usr';

  // The helpers fit the package budget only when linked against musl: refuse a silent fallback to static glibc.
  const libcs = Object.fromEntries(opt.arch.map((a) => [a, helperLibc(a)]));
  const glibc = opt.arch.filter((a) => !isMusl(libcs[a]));
  if (glibc.length) {
    const lines = glibc.map(
      (a) => `linux-${a}: the helpers would be ${libcs[a]} (apt-get install ${MUSL_PACKAGES[a]})`,
    );
    const multiarch = glibc.some((a) => a !== 'x64')
      ? '  (for musl-dev:arm64/armhf first: dpkg --add-architecture arm64; dpkg --add-architecture armhf; apt-get update)\n'
      : '';
    if (!opt.allowGlibc) {
      console.error(
        `prebuild: no musl for ${glibc.map((a) => `linux-${a}`).join(', ')}: the static helpers would fall back to glibc ` +
          `(0.4-0.7 MB each instead of ~0.1 MB, over the package size budget):\n  ${lines.join('\n  ')}\n${multiarch}` +
          '  Install musl as above, or pass --allow-glibc-helpers to build them anyway (not for publishing).',
      );
      return 1;
    }
    console.error(
      `${'!'.repeat(100)}\nprebuild: WARNING: static glibc helpers (--allow-glibc-helpers): this package breaks its size budget\n  ${lines.join('\n  ')}\n${'!'.repeat(100)}`,
    );
  }

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
      process.stderr.write(
        `${seconds.toFixed(1)} s${warnings.length ? `, ${warnings.length} compiler warning(s):` : ''}\n`,
      );
      for (const w of warnings) process.stderr.write(`  ${w}\n`);
    }
    // Replace the finished folders only now, so a failed build leaves the previous prebuilds alone.
    const dest = path.join(opt.out, 'prebuilds');
    fs.mkdirSync(dest, { recursive: true });
    const previous = readManifest(opt.out);
    const same = previous && previous.sources === hash && previous.helperLibc;
    const targets = same ? { ...previous.targets } : {};
    const helperLibcs = same ? { ...previous.helperLibc } : {};
    for (const arch of opt.arch) {
      const d = path.join(dest, `linux-${arch}`);
      fs.rmSync(d, { recursive: true, force: true });
      copyTree(path.join(work, 'prebuilds', `linux-${arch}`), d);
      targets[arch] = summary[arch].files;
      helperLibcs[arch] = libcs[arch];
    }
    // addonLibc: the addons link the system's glibc dynamically; helperLibc: what each target's static helpers are.
    const manifest = {
      sources: hash,
      node: process.versions.node,
      napi: 8,
      addonLibc: 'glibc',
      helperLibc: helperLibcs,
      targets,
    };
    fs.writeFileSync(path.join(dest, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  for (const [arch, s] of Object.entries(summary))
    console.log(
      `prebuilds/linux-${arch}: ${Object.entries(s.files)
        .map(([f, n]) => `${f} ${n} B`)
        .join(', ')} (helpers: ${libcs[arch]}; ${s.seconds.toFixed(1)} s)`,
    );
  return 0;
}

/**
 * Why prebuilds/ under `out` is not what this machine would build now for `arches` (empty when it is):
 * missing, built from other sources, or helpers of another libc than libc-flags.js picks here (a target whose
 * compiler is missing is compared on sources only: nothing would be built for it). Static glibc helpers are a
 * reason too, unless `allowGlibc`.
 */
function staleReasons(arches = Object.keys(TARGETS), out = ROOT, opts = {}) {
  const m = readManifest(out);
  if (!m || !m.targets) return [`${path.join(out, 'prebuilds', 'manifest.json')} is missing: run npm run prebuild`];
  const reasons = [];
  if (m.sources !== sourceHash()) reasons.push('built from other sources than src-native/ and binding.gyp now hold');
  for (const a of arches) {
    const files = m.targets[a];
    if (!files) {
      reasons.push(`linux-${a} was not built`);
      continue;
    }
    const gone = Object.keys(files).filter((f) => !fs.existsSync(path.join(out, 'prebuilds', `linux-${a}`, f)));
    if (gone.length) reasons.push(`linux-${a}: ${gone.join(', ')} missing`);
    const built = m.helperLibc && m.helperLibc[a];
    if (!built)
      reasons.push(`linux-${a}: the manifest does not say which libc the helpers link (made by an older prebuild.js)`);
    else if (missingTools(a).length === 0) {
      const now = helperLibc(a);
      if (now !== built) reasons.push(`linux-${a}: helpers built with ${built}, this machine would build ${now}`);
    }
    if (built && !isMusl(built) && !opts.allowGlibc)
      reasons.push(
        `linux-${a}: helpers are ${built}, not musl (over the size budget; apt-get install ${MUSL_PACKAGES[a]}, npm run prebuild)`,
      );
  }
  return reasons;
}

/** true when prebuilds/ under `out` is what this machine would build now for every arch in `arches`. */
function isFresh(arches = Object.keys(TARGETS), out = ROOT) {
  return staleReasons(arches, out, { allowGlibc: true }).length === 0;
}

/**
 * For tests, which never build into the checkout: undefined when prebuilds/ is current for `arches`,
 * otherwise why not, with what to run.
 */
function staleReason(arches = Object.keys(TARGETS)) {
  const reasons = staleReasons(arches, ROOT, { allowGlibc: true });
  if (reasons.length === 0) return undefined;
  const missing = [...new Set(arches.flatMap(missingTools))];
  // The musl each target's helpers need (libc-flags.js looks for its libc.a there).
  const muslDir = { x64: 'x86_64-linux-musl', arm64: 'aarch64-linux-musl', arm: 'arm-linux-musleabihf' };
  const noMusl = arches.filter((a) => !fs.existsSync(`/usr/lib/${muslDir[a]}/libc.a`)).map((a) => MUSL_PACKAGES[a]);
  return (
    `prebuilds/ is not current (${reasons.join('; ')}); run \`npm run prebuild\`` +
    (missing.length
      ? ` (needs ${missing.join(', ')}: apt-get install g++-aarch64-linux-gnu g++-arm-linux-gnueabihf)`
      : '') +
    (noMusl.length
      ? ` (and musl for the helpers: apt-get install ${noMusl.join(' ')}, after dpkg --add-architecture for arm64/armhf)`
      : '')
  );
}

module.exports = {
  TARGETS,
  TEST_ONLY,
  MUSL_PACKAGES,
  executables,
  sourceHash,
  missingTools,
  elfMachine,
  helperLibc,
  isMusl,
  staleReasons,
  isFresh,
  staleReason,
  readManifest,
};

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`prebuild: ${e.message}`);
    process.exitCode = 1;
  }
}
