#!/usr/bin/env node
// The board lane's result files (scripts/board/lane.sh).
//   summarize.js guest NAME TAP CONSOLE-LOG WALL-S GUEST-RC QEMU-RC LIMIT-S  -> JSON on stdout
//   summarize.js table DIR [TOTAL-S GUESTS]                                  -> Markdown on stdout (README table)
// The TAP is node:test's reporter output as the guest printed it on its serial console.
'use strict';
const fs = require('fs');
const path = require('path');

function parseTap(text) {
  const tests = [];
  let suite = '';
  const counts = {};
  for (const line of text.split('\n')) {
    const m = /^( *)(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b ?(.*))?$/.exec(line);
    if (m) {
      const indent = m[1].length;
      const name = m[3].replace(/\\#/g, '#');
      if (indent === 0) suite = '';
      else tests.push({ suite, name, ok: m[2] === 'ok', skip: m[4] === 'SKIP' ? m[5] || true : undefined });
      continue;
    }
    const s = /^# Subtest: (.*)$/.exec(line);
    if (s) suite = s[1];
    const c = /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(line);
    if (c) counts[c[1]] = Number(c[2]);
  }
  return { tests, counts };
}

function parseInfo(log) {
  const info = {};
  for (const line of log.split('\n')) {
    const m = /^HAKO-BOARD-INFO: (.*)$/.exec(line);
    if (!m) continue;
    for (const kv of m[1].matchAll(/(\w+)=(\S+(?: \S+)*?)(?= \w+=|$)/g)) info[kv[1]] = kv[2];
  }
  return info;
}

function guest([name, tapFile, logFile, wall, guestRc, qemuRc, limit]) {
  const tap = fs.existsSync(tapFile) ? fs.readFileSync(tapFile, 'utf8') : '';
  const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
  const { tests, counts } = parseTap(tap);
  const info = parseInfo(log);
  const result = {
    guest: name,
    date: new Date().toISOString(),
    kernel: info.uname ?? null,
    cgroup: info.cgroup ?? null,
    controllers: info.controllers ?? null,
    package: info.package ?? null,
    vcpus: info.cpus ? Number(info.cpus) : null,
    memKb: info.mem_kb ? Number(info.mem_kb) : null,
    // Wall times under TCG emulation on the 2-vCPU CI VM (shared): they say how long the lane takes, nothing
    // about hako's speed on a board.
    wallSeconds: Number(wall),
    nodeStartSeconds: info.node_e0_s ? Number(info.node_e0_s) : null,
    cliVersionSeconds: info.hako_version_s ? Number(info.hako_version_s) : null,
    guestUptimeAtTests: info.uptime_at_tests ? Number(info.uptime_at_tests) : null,
    guestUptimeAtEnd: info.uptime_at_end ? Number(info.uptime_at_end) : null,
    limitSeconds: Number(limit),
    qemuExit: Number(qemuRc),
    guestTestsExit: guestRc === 'none' ? null : Number(guestRc),
    passed: guestRc === '0' && tests.length > 0 && !tests.some((t) => !t.ok),
    counts,
    tests,
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

const ORDER = ['x86_64', 'arm64', 'armv7', 'x86_64-v1', 'arm64-v1', 'armv7-v1'];

function table([dir, total, guests]) {
  const results = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')))
    .filter((r) => r.guest)
    .sort((a, b) => ORDER.indexOf(a.guest) - ORDER.indexOf(b.guest));
  const cols = results.map((r) => `${r.guest}`);
  const rows = [];
  const key = (t) => `${t.suite.replace(/^board [^:]*: /, '').replace(/ \(v[12]\)$/, '')}: ${t.name}`;
  for (const r of results) for (const t of r.tests) if (!rows.includes(key(t))) rows.push(key(t));
  const out = [];
  out.push(`| | ${cols.join(' | ')} |`);
  out.push(`|---|${cols.map(() => '---').join('|')}|`);
  out.push(`| kernel | ${results.map((r) => r.kernel ?? '?').join(' | ')} |`);
  out.push(
    `| cgroup layout | ${results.map((r) => (r.cgroup === 'v1' ? 'v1 only' : r.cgroup === 'v2' ? 'pure v2' : '?')).join(' | ')} |`,
  );
  for (const row of rows) {
    const cells = results.map((r) => {
      const t = r.tests.find((x) => key(x) === row);
      if (!t) return '–';
      if (t.skip) return 'skipped';
      return t.ok ? 'pass' : '**FAIL**';
    });
    out.push(`| ${row.replace(/\|/g, '\\|')} | ${cells.join(' | ')} |`);
  }
  out.push(`| result | ${results.map((r) => (r.passed ? 'passed' : '**failed**')).join(' | ')} |`);
  out.push(
    `| wall time under TCG emulation (boot + tests + power-off) | ${results.map((r) => `${r.wallSeconds} s`).join(' | ')} |`,
  );
  out.push(
    `| of which the tests (guest uptime) | ${results.map((r) => (r.guestUptimeAtEnd && r.guestUptimeAtTests ? `${Math.round(r.guestUptimeAtEnd - r.guestUptimeAtTests)} s` : '?')).join(' | ')} |`,
  );
  out.push(
    `| \`node -e 0\` / \`hako --version\` in the guest, under TCG | ${results.map((r) => (r.nodeStartSeconds != null ? `${r.nodeStartSeconds} / ${r.cliVersionSeconds} s` : '?')).join(' | ')} |`,
  );
  out.push('');
  if (total)
    out.push(
      `The lane's run of ${guests} took ${total} s in all (npm pack, the downloads not yet cached, initramfs builds, the guests one after the other).`,
      '',
    );
  out.push(
    `Written by scripts/board/summarize.js from ${results.map((r) => `${r.guest}.json (${r.date})`).join(', ')}.`,
  );
  process.stdout.write(out.join('\n') + '\n');
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'guest') guest(args);
else if (mode === 'table') table(args);
else {
  process.stderr.write('usage: summarize.js guest NAME TAP LOG WALL GUEST-RC QEMU-RC LIMIT | table DIR\n');
  process.exit(2);
}
