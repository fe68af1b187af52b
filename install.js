#!/usr/bin/env node
// npm install: use the prebuilt addon when one loads on this machine (prebuilds/, node-gyp-build's choice of
// platform, arch, armv and libc), else build the addon and the static helpers from source with node-gyp
// (g++ make python3). node-gyp's own output (about 50 lines) is shown only when the build fails.
//
// In a clone of the repository (prebuilds are never in git) building from source is the normal path and
// nothing is said; an installed package without a matching prebuild says so once, as the build takes a while.
// Then it puts containerd's shim launcher at bin/containerd-shim-hako-v2: the native one when this machine has one
// that runs, else the POSIX sh (placeLauncher below; docs/shim.md "The launcher").
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = __dirname;

function prebuiltLoads() {
  if (process.env.npm_config_build_from_source === 'true') return false;
  try {
    require(require('node-gyp-build').resolve(root));
    return true;
  } catch {
    return false;
  }
}

/**
 * node-gyp's script: the one npm runs scripts with, a local install, or npm's copy beside this Node; null when
 * none is there. Also scripts/prebuild.js's.
 */
function nodeGypJs() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] }));
  } catch {
    /* not installed locally */
  }
  candidates.push(
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  );
  return candidates.find((c) => c && fs.existsSync(c)) || null;
}

/** How to run node-gyp: its script under this Node, else the one on PATH. */
function nodeGyp() {
  const js = nodeGypJs();
  return js ? [process.execPath, js] : ['node-gyp'];
}

const LAUNCHER = path.join(root, 'bin', 'containerd-shim-hako-v2');
const LAUNCHER_SH = `${LAUNCHER}.sh`;

/**
 * The native launcher built or prebuilt for this machine: the one beside the addon that loads here (a local
 * build first, as lib/native/addon.ts), if it runs; else null.
 */
function nativeLauncher() {
  const dirs = [];
  if (!process.env.PREBUILDS_ONLY) dirs.push(path.join(root, 'build', 'Release'));
  try {
    dirs.push(path.dirname(require('node-gyp-build').resolve(root)));
  } catch {
    /* no prebuild for this machine */
  }
  for (const dir of dirs) {
    const file = path.join(dir, 'hako-shim-launcher');
    if (!fs.existsSync(file)) continue;
    const r = spawnSync(file, ['--hako-launcher'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0 && r.stdout === 'hako-shim-launcher\n') return file;
  }
  return null;
}

/**
 * bin/containerd-shim-hako-v2, the name containerd runs (npm links it from package.json's bin): a copy of the
 * native launcher when there is one for this machine (no shell between containerd and it; it finds
 * hako-shim.js beside its own real path, so a copy, not a link), else of the POSIX sh one. Untracked in git;
 * replaced by rename, so a running launcher and npm's bin link are undisturbed. `pack` puts the sh there, for
 * the tarball (package.json prepack; postpack puts this machine's back).
 */
function placeLauncher(pack = false) {
  const from = (!pack && nativeLauncher()) || LAUNCHER_SH;
  const tmp = path.join(path.dirname(LAUNCHER), `.containerd-shim-hako-v2.${process.pid}`);
  fs.copyFileSync(from, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, LAUNCHER);
  return from;
}

function main() {
  if (!prebuiltLoads()) {
    const checkout = fs.existsSync(path.join(root, 'lib', 'index.ts'));
    if (!checkout)
      process.stderr.write(
        'hako: no prebuilt addon matches this platform, arch and libc: building it and hako-init from source with node-gyp (needs g++ make python3)\n',
      );
    const [cmd, ...args] = nodeGyp();
    const started = Date.now();
    const r = spawnSync(cmd, [...args, 'rebuild'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (r.status !== 0) {
      process.stderr.write(`${r.stdout || ''}${r.stderr || ''}`);
      process.stderr.write(
        `hako: building the native addon from source failed (${r.error ? r.error.message : `exit ${r.status}`}); it needs g++, make and python3\n`,
      );
      process.exit(1);
    }
    if (!checkout) process.stderr.write(`hako: built from source in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  placeLauncher();
}

// node install.js              npm install: the addon (prebuilt or built), then bin/containerd-shim-hako-v2
// node install.js --launcher   only bin/containerd-shim-hako-v2 (npm run build:native, postpack)
// node install.js --pack       the sh at bin/containerd-shim-hako-v2, for the tarball (prepack)
if (require.main === module) {
  const arg = process.argv[2];
  if (arg === '--launcher' || arg === '--pack') {
    const from = placeLauncher(arg === '--pack');
    if (process.env.HAKO_VERBOSE)
      process.stderr.write(`hako: bin/containerd-shim-hako-v2 <- ${path.relative(root, from)}\n`);
  } else if (arg) {
    process.stderr.write(`install.js: unknown argument ${arg} (--launcher, --pack or none)\n`);
    process.exit(2);
  } else main();
}
module.exports = { nodeGypJs, nativeLauncher, placeLauncher };
