#!/usr/bin/env node
// Run the compiled test files with Node's built-in runner. Integration tests create real containers,
// so they need root; the summary lines are node:test's own.
//
//   node scripts/run-tests.js [--all] [--times FILE] [NAME...]
//     (default)  the quick suite (`npm test`): every file but the slow ones below
//     --all      the full suite (`npm run test:all`, what CI runs): every file
//     --times F  run the files one by one and write each one's wall time and exit status to F (JSON), the
//                source of the suite times README gives
//     NAME...    only the files whose name contains one of the NAMEs (with or without --all)
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

/**
 * Left out of the quick suite: the ARM prebuilds under qemu-user take 10-15 minutes on 2 cores (two emulated
 * Nodes running the unit tests), against about 3 minutes for all the other files together.
 */
const FULL_ONLY = ['prebuild-emulated'];

const dir = path.join(__dirname, '..', 'dist', 'test');
const args = process.argv.slice(2);
const all = args.includes('--all');
const timesAt = args.indexOf('--times');
const timesFile = timesAt >= 0 ? args[timesAt + 1] : undefined;
if (timesAt >= 0 && !timesFile) {
  console.error('run-tests: --times needs a file');
  process.exit(2);
}
const only = args.filter((a, i) => a !== '--all' && (timesAt < 0 || (i !== timesAt && i !== timesAt + 1)));
const bad = only.filter((a) => a.startsWith('-'));
if (bad.length) {
  console.error(`run-tests: unknown option ${bad.join(' ')} (usage: run-tests.js [--all] [NAME...])`);
  process.exit(2);
}
const candidates = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
// A file named explicitly runs even when it is full-suite only.
const left = all || only.length ? [] : candidates.filter((f) => FULL_ONLY.some((s) => f.startsWith(`${s}.`)));
const files = candidates.filter((f) => !left.includes(f)).map((f) => path.join(dir, f));
if (files.length === 0) {
  console.error(`run-tests: no test file matches ${only.join(' ')}`);
  process.exit(2);
}
if (left.length) console.log(`# quick suite: ${left.join(', ')} left out (npm run test:all runs them)`);
// No --test-force-exit: on Node 20 it can end a file's process before the runner has passed on that file's last
// results (seen in CI: seccomp-compiler's last suites went missing, silently, with 0 failures). A stuck test is
// bounded instead by its own timeout, and the whole run by .ci/run's stage limit.
const RUNNER = ['--test', '--test-concurrency=1'];
if (!timesFile) {
  const r = spawnSync(process.execPath, [...RUNNER, ...files], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const os = require('os');
const record = {
  date: new Date().toISOString(),
  host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
  suite: all ? 'test:all' : 'test',
  files: {},
};
const started = Date.now();
let failed = 0;
for (const f of files) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [...RUNNER, f], { stdio: 'inherit' });
  record.files[path.basename(f)] = { seconds: Math.round((Date.now() - t0) / 100) / 10, status: r.status };
  if (r.status !== 0) failed++;
}
record.totalSeconds = Math.round((Date.now() - started) / 100) / 10;
record.failedFiles = failed;
fs.writeFileSync(timesFile, JSON.stringify(record, null, 2) + '\n');
console.log(`# ${files.length} files in ${record.totalSeconds} s, ${failed} failed; times in ${timesFile}`);
process.exit(failed ? 1 : 0);
