#!/usr/bin/env node
// The package figures README gives: what `npm pack` would ship (sizes per prebuild folder, groups, installed
// and tarball size) and which libc each target's static helpers link, from prebuilds/manifest.json.
//   node scripts/package-sizes.js [OUT.json]   (default docs/package-sizes.json)
// Run after `npm run prebuild` and `npm run build`; test/package.test.ts checks the same budgets.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const out = path.resolve(process.argv[2] || path.join(ROOT, 'docs', 'package-sizes.json'));
const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
if (r.status !== 0) {
  console.error(`package-sizes: npm pack --dry-run failed: ${r.stderr}`);
  process.exit(1);
}
const pack = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))[0];
// As published: prepack puts the sh launcher at bin/containerd-shim-hako-v2, where a built checkout (packed here with
// --ignore-scripts) has its native one. (The tarball size stays as packed: a few KB over.)
const launcher = pack.files.find((f) => f.path === 'bin/containerd-shim-hako-v2');
const sh = pack.files.find((f) => f.path === 'bin/containerd-shim-hako-v2.sh');
if (launcher && sh) {
  pack.unpackedSize += sh.size - launcher.size;
  launcher.size = sh.size;
}
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'prebuilds', 'manifest.json'), 'utf8'));
const MB = (n) => Math.round(n / 1000) / 1000;
const group = (re) => MB(pack.files.filter((f) => re.test(f.path)).reduce((s, f) => s + f.size, 0));
const prebuilds = {};
for (const f of pack.files) {
  const m = /^prebuilds\/(linux-[^/]+)\/(.+)$/.exec(f.path);
  if (m) (prebuilds[m[1]] ??= {})[m[2]] = MB(f.size);
}
const record = {
  date: new Date().toISOString(),
  helperLibc: manifest.helperLibc,
  prebuildsMB: prebuilds,
  groupsMB: {
    prebuilds: group(/^prebuilds\//),
    'dist/lib': group(/^dist\/lib\//),
    'dist/cli.js': group(/^dist\/cli\.js$/),
    'dist/shim.js': group(/^dist\/shim\.js$/),
    'src-native': group(/^src-native\//),
    other: group(/^(?!prebuilds\/|dist\/|src-native\/)/),
  },
  installedMB: MB(pack.unpackedSize),
  tarballMB: MB(pack.size),
  files: pack.files.length,
};
fs.writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
console.log(
  `package-sizes: installed ${record.installedMB} MB, tarball ${record.tarballMB} MB -> ${path.relative(process.cwd(), out)}`,
);
