#!/usr/bin/env node
// `npm run lint` (and test/lint.test.ts, so `npm test`): ESLint, Prettier's check and clang-format's check over the
// tree. Exit status 1 when any of them has a finding. scripts/format.sh applies the formatters.
//
// clang-format is a system tool (Debian's clang-format; .ci/run installs it): where it is missing its check is
// skipped with the reason printed, so a machine without it can still run the suite.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const bin = (pkg, file) => path.join(ROOT, 'node_modules', pkg, file);

/** The C and C++ sources clang-format checks (src-native/probe/.clang-format leaves probe.c out on purpose). */
function nativeSources() {
  const r = spawnSync('git', ['ls-files', '-z', 'src-native/*.cc', 'src-native/*.h', 'src-native/*.c'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  return r.stdout.split('\0').filter(Boolean);
}

/** The clang-format to use ($CLANG_FORMAT, else clang-format on PATH), or null when there is none. */
function clangFormat() {
  const cmd = process.env.CLANG_FORMAT || 'clang-format';
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? { cmd, version: r.stdout.trim() } : null;
}

function run(name, cmd, args) {
  console.log(`lint: ${name}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.error) console.error(`lint: ${name}: ${r.error.message}`);
  return r.status === 0;
}

function main() {
  const failed = [];
  // ESLint: no warnings allowed either (every rule in eslint.config.mjs is an error or off).
  if (!run('eslint', process.execPath, [bin('eslint', 'bin/eslint.js'), '--max-warnings=0', '.', 'bin/hako'])) {
    failed.push('eslint');
  }
  // Prettier: what .prettierignore leaves (the code), and bin/hako by name.
  if (
    !run('prettier --check', process.execPath, [
      bin('prettier', 'bin/prettier.cjs'),
      '--check',
      '--log-level=warn',
      '.',
      'bin/hako',
    ])
  ) {
    failed.push('prettier (scripts/format.sh fixes it)');
  }
  const cf = clangFormat();
  if (!cf) {
    console.log(
      'lint: clang-format skipped: no clang-format on PATH (apt-get install clang-format, or set CLANG_FORMAT)',
    );
  } else if (!run(`clang-format check (${cf.version})`, cf.cmd, ['--dry-run', '--Werror', ...nativeSources()])) {
    failed.push('clang-format (scripts/format.sh fixes it)');
  }
  if (failed.length) {
    console.error(`lint: findings from ${failed.join(', ')}`);
    process.exit(1);
  }
  console.log('lint: clean');
}

main();
