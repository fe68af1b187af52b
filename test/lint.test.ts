// The linters are part of the suite: a finding of ESLint, Prettier's check or clang-format's check fails `npm test`
// (scripts/lint.js runs them; scripts/format.sh applies the formatters).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

// dist/test/lint.test.js -> the checkout: the linters read the sources, not the build.
const ROOT_DIR = path.join(__dirname, '..', '..');

test('npm run lint: ESLint, Prettier and clang-format find nothing', (t) => {
  const r = spawnSync(process.execPath, [path.join(ROOT_DIR, 'scripts', 'lint.js')], {
    cwd: ROOT_DIR,
    encoding: 'utf8',
    timeout: 300_000,
  });
  // The skip line for a missing clang-format is shown in the run's output (the test passes without it).
  for (const line of r.stdout.split('\n')) if (/skipped/.test(line)) t.diagnostic(line);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});
