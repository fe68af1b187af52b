#!/usr/bin/env node
// npm install: use the prebuilt addon when one loads on this machine (prebuilds/, node-gyp-build's choice of
// platform, arch, armv and libc), else build the addon and the static helpers from source with node-gyp
// (g++ make python3). node-gyp's own output (about 50 lines) is shown only when the build fails.
//
// In a clone of the repository (prebuilds are never in git) building from source is the normal path and
// nothing is said; an installed package without a matching prebuild says so once, as the build takes a while.
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
}

if (require.main === module) main();
module.exports = { nodeGypJs };
