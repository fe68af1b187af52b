// Turn the measurements into targets, ratios, a markdown report and a hand-written SVG bar chart.
import type { MemRow } from './memory';
import type { SeccompResults } from './seccomp';
import type { CliProfile, CliRssRow, TimingRow } from './startup';
import { fmt } from './util';

export interface Target {
  variant: string;
  name: string;
  pass: boolean | null;
  detail: string;
}

export interface Ratio {
  variant: string;
  name: string;
  value: number;
  detail: string;
}

export interface BenchResults {
  date: string;
  env: Record<string, string | number>;
  config: Record<string, number | string>;
  variants: { name: string; description: string; seccompRules: number }[];
  /** Reference rows (variant '') and section 1 per variant. */
  startup: TimingRow[];
  /** Peak RSS of the CLI start-up commands and of node -e 0 (issue 8's budget). */
  cliRss: CliRssRow[];
  /** The same runs after an idle spell each (see benchSporadic). */
  sporadic: TimingRow[];
  cliProfiles: CliProfile[];
  setup: TimingRow[];
  memory: MemRow[];
  seccomp: SeccompResults | null;
  ratios: Ratio[];
  targets: Target[];
  cleanup: { leftoverDeleted: number; strayCgroups: number; failed: string[] };
}

const mb = (kb: number) => kb / 1024;

/** Ratios and targets for one bundle variant (reference rows, variant '', are shared). */
export function evaluate(
  variant: string,
  startup: TimingRow[],
  setup: TimingRow[],
  memory: MemRow[],
  sporadic: TimingRow[] = [],
): { ratios: Ratio[]; targets: Target[] } {
  const all = [...startup, ...setup, ...sporadic];
  const row = (k: string) =>
    all.find((r) => r.key === k && (r.variant === variant || r.variant === '') && !r.error && r.stats.n > 0);
  const cli = row('hako-cli-run');
  const lib = row('hako-lib-run');
  const node = row('node-e0');
  const ver = row('hako-version');
  const runc = row('runc-run');
  const crun = row('crun-run');
  const lsetup = row('hako-lib-setup');
  const csetup = row('hako-cli-setup');
  const libStartToExit = lib?.phases?.['run()+wait()'];
  const ratios: Ratio[] = [];
  const ratio = (name: string, a: number | undefined, b: number | undefined, detail: string) => {
    if (a !== undefined && b !== undefined && b > 0) ratios.push({ variant, name, value: a / b, detail });
  };
  ratio('hako run (CLI) / crun run', cli?.stats.mean, crun?.stats.mean, 'means');
  ratio('hako run (CLI) / runc run', cli?.stats.mean, runc?.stats.mean, 'means');
  if (cli && node)
    ratio('(hako run CLI − node -e 0) / crun run', cli.stats.mean - node.stats.mean, crun?.stats.mean, 'means');
  if (ver && node)
    ratio(
      '(hako --version − node -e 0) / crun run',
      ver.stats.mean - node.stats.mean,
      crun?.stats.mean,
      'CLI start-up cost alone',
    );
  ratio('library run()+wait()+delete() / crun run', lib?.stats.mean, crun?.stats.mean, 'means');
  ratio('library run()+wait()+delete() / runc run', lib?.stats.mean, runc?.stats.mean, 'means');
  ratio(
    'sporadic: hako run (CLI) / crun run',
    row('hako-cli-run-gap')?.stats.mean,
    row('crun-run-gap')?.stats.mean,
    'means, idle before each run',
  );
  ratio(
    'sporadic: library run()+wait()+delete() / crun run',
    row('hako-lib-run-gap')?.stats.mean,
    row('crun-run-gap')?.stats.mean,
    'means, idle before each run',
  );
  ratio(
    'sporadic: library run()+wait()+delete() / runc run',
    row('hako-lib-run-gap')?.stats.mean,
    row('runc-run-gap')?.stats.mean,
    'means, idle before each run',
  );
  ratio(
    'library run()+wait() / library setup()+wait()',
    libStartToExit?.mean,
    lsetup?.stats.mean,
    'speed-up of setup over a normal run (both without delete)',
  );
  ratio(
    'library run()+wait()+delete() / library setup()+wait()',
    lib?.stats.mean,
    lsetup?.stats.mean,
    'speed-up, normal run with delete',
  );
  ratio('crun run / library setup()+wait()', crun?.stats.mean, lsetup?.stats.mean, 'speed-up');
  ratio('runc run / library setup()+wait()', runc?.stats.mean, lsetup?.stats.mean, 'speed-up');
  ratio('crun run / hako setup (CLI)', crun?.stats.mean, csetup?.stats.mean, 'speed-up (<1: the CLI setup is slower)');
  ratio('runc run / hako setup (CLI)', runc?.stats.mean, csetup?.stats.mean, 'speed-up (<1: the CLI setup is slower)');
  const mem = (rt: string) => memory.find((m) => m.runtime === rt && m.variant === variant && !m.error);
  const mh = mem('hako');
  const mc = mem('crun');
  const mr = mem('runc');
  const n = mh?.many.count ?? '?';
  ratio('waiting PSS alone: hako / crun', mh?.alone.pssKb, mc?.alone.pssKb, '');
  ratio('waiting PSS alone: hako / runc', mh?.alone.pssKb, mr?.alone.pssKb, '');
  ratio(`waiting PSS each (${n} at once): hako / crun`, mh?.many.pssEachKb, mc?.many.pssEachKb, '');
  ratio(`waiting PSS each (${n} at once): hako / runc`, mh?.many.pssEachKb, mr?.many.pssEachKb, '');
  ratio('waiting RSS alone: hako / crun', mh?.alone.rssKb, mc?.alone.rssKb, '');

  const targets: Target[] = [];
  const target = (name: string, ok: boolean | null, detail: string) =>
    targets.push({ variant, name, pass: ok, detail });
  target(
    'library run() faster than crun run',
    lib && crun ? lib.stats.mean < crun.stats.mean : null,
    lib && crun
      ? `run()+wait()+delete() ${fmt(lib.stats.mean)} ms vs crun run ${fmt(crun.stats.mean)} ms (means; medians ${fmt(lib.stats.median)} vs ${fmt(crun.stats.median)})`
      : 'not measured',
  );
  target(
    "CLI's time above node -e 0 ≤ crun run",
    cli && node && crun ? cli.stats.mean - node.stats.mean <= crun.stats.mean : null,
    cli && node && crun
      ? `hako run ${fmt(cli.stats.mean)} − node -e 0 ${fmt(node.stats.mean)} = ${fmt(cli.stats.mean - node.stats.mean)} ms vs crun run ${fmt(crun.stats.mean)} ms`
      : 'not measured',
  );
  target(
    'setup ≥ 5× faster than the normal library run()',
    lsetup && libStartToExit ? libStartToExit.mean / lsetup.stats.mean >= 5 : null,
    lsetup && libStartToExit && lib
      ? `run()+wait() ${fmt(libStartToExit.mean)} ms / setup()+wait() ${fmt(lsetup.stats.mean, 3)} ms = ${fmt(libStartToExit.mean / lsetup.stats.mean, 1)}× (with run's delete(): ${fmt(lib.stats.mean / lsetup.stats.mean, 1)}×)`
      : 'not measured',
  );
  target(
    'library setup under 1 ms (setup() call to process exited)',
    lsetup ? lsetup.stats.mean < 1 : null,
    lsetup
      ? `setup()+wait() mean ${fmt(lsetup.stats.mean, 3)} ms, median ${fmt(lsetup.stats.median, 3)}, p95 ${fmt(lsetup.stats.p95, 3)}; setup() alone mean ${fmt(lsetup.phases?.['setup()'].mean, 3)} ms`
      : 'not measured',
  );
  target(
    "hako's waiting PSS ≤ crun's (alone)",
    mh && mc ? mh.alone.pssKb <= mc.alone.pssKb : null,
    mh && mc ? `${fmt(mb(mh.alone.pssKb), 3)} MB vs ${fmt(mb(mc.alone.pssKb), 3)} MB` : 'not measured',
  );
  target(
    `hako's waiting PSS ≤ crun's (each, ${n} at once)`,
    mh && mc ? mh.many.pssEachKb <= mc.many.pssEachKb : null,
    mh && mc ? `${fmt(mb(mh.many.pssEachKb), 3)} MB vs ${fmt(mb(mc.many.pssEachKb), 3)} MB` : 'not measured',
  );
  target(
    "hako's waiting RSS under 1 MB",
    mh ? mh.alone.rssKb < 1024 : null,
    mh ? `${fmt(mb(mh.alone.rssKb), 3)} MB (${Math.round(mh.alone.rssKb)} kB)` : 'not measured',
  );
  return { ratios, targets };
}

/** Issue 8's CLI start-up budget: each within 10 ms of node -e 0, peak RSS at most 10 % above node's. */
export function evaluateCli(startup: TimingRow[], cliRss: CliRssRow[]): Target[] {
  const targets: Target[] = [];
  const row = (k: string) => startup.find((r) => r.key === k && r.variant === '' && !r.error && r.stats.n > 0);
  const node = row('node-e0');
  const nodeRss = cliRss.find((r) => r.key === 'node-e0')?.rssKb ?? null;
  for (const [key, label] of [
    ['hako-version', 'hako --version'],
    ['hako-state', 'hako state ID'],
    ['hako-list', 'hako list'],
  ]) {
    const r = row(key);
    targets.push({
      variant: '',
      name: `${label} within 10 ms of node -e 0`,
      pass: r && node ? r.stats.mean - node.stats.mean <= 10 : null,
      detail:
        r && node
          ? `${fmt(r.stats.mean)} − ${fmt(node.stats.mean)} = ${fmt(r.stats.mean - node.stats.mean)} ms (means)`
          : 'not measured',
    });
    const rss = cliRss.find((x) => x.key === key)?.rssKb ?? null;
    targets.push({
      variant: '',
      name: `${label} peak RSS ≤ 1.1 × node -e 0's`,
      pass: rss !== null && nodeRss !== null ? rss <= nodeRss * 1.1 : null,
      detail:
        rss !== null && nodeRss !== null
          ? `${fmt(mb(rss))} MB vs ${fmt(mb(nodeRss))} MB = ${fmt(rss / nodeRss, 3)}× (median ru_maxrss)`
          : 'not measured',
    });
  }
  return targets;
}

function timingTable(rows: TimingRow[], ref?: TimingRow): string {
  const out = [
    '| command | mean ± sd (ms) | median | p95 | min | max | n | × crun run | host CPU busy |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.error) {
      out.push(`| ${r.label} | failed: ${r.error.replace(/\|/g, '/')} | | | | | | | |`);
      continue;
    }
    const s = r.stats;
    const rel = ref && !ref.error ? fmt(s.mean / ref.stats.mean) : '–';
    const d = s.mean < 2 ? 3 : 2;
    out.push(
      `| ${r.label} | ${fmt(s.mean, d)} ± ${fmt(s.stddev, d)} | ${fmt(s.median, d)} | ${fmt(s.p95, d)} | ${fmt(s.min, d)} | ${fmt(s.max, d)} | ${s.n} | ${rel} | ${r.hostBusy === undefined ? '–' : `${r.hostBusy} %`} |`,
    );
  }
  return out.join('\n');
}

function phaseTable(rows: TimingRow[]): string {
  const out = ['| loop | phase | mean (ms) | median | p95 |', '|---|---|---:|---:|---:|'];
  for (const r of rows)
    for (const [k, s] of Object.entries(r.phases ?? {}))
      out.push(`| ${r.label} | ${k} | ${fmt(s.mean, 3)} | ${fmt(s.median, 3)} | ${fmt(s.p95, 3)} |`);
  return out.join('\n');
}

export function markdown(r: BenchResults): string {
  const L: string[] = [];
  const crunOf = (rows: TimingRow[], v: string, key = 'crun-run') => rows.find((x) => x.key === key && x.variant === v);
  L.push(`# hako benchmark — ${r.date}`, '');
  L.push(
    Object.entries(r.env)
      .map(([k, v]) => `${k}: ${v}`)
      .join(' · '),
    '',
  );
  L.push(
    `Counts: ${Object.entries(r.config)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}. All runtimes share one bundle per variant (busybox-static, \`/bin/true\`, ` +
      `hako's default spec, ociVersion ${r.env.bundleOciVersion}) and run in one private mount namespace with /sys/fs/cgroup/unified unmounted. ` +
      "CLI rows: `hyperfine -N`, each command `sh -c 'exec …'` with a unique id. Library rows: an in-process loop (process.hrtime) in the bench's own Node process. " +
      `"host CPU busy": the share of all ${r.env.cpus} CPUs busy while the row ran, the bench's own work included (one process at a time: about ${Math.round(100 / Number(r.env.cpus))} % of the host); well above that, other load was competing.`,
    '',
  );
  L.push('Bundle variants:', '');
  for (const v of r.variants)
    L.push(`- **${v.name}**: ${v.description}${v.seccompRules ? ` (${v.seccompRules} rules)` : ''}`);
  L.push('');
  L.push('## 1. Start to exit of a container running `true`', '');
  const refs = r.startup.filter((x) => x.variant === '');
  if (refs.length)
    L.push(
      'References (no container):',
      '',
      timingTable(refs, crunOf(r.startup, r.variants.find((v) => v.name === 'plain')?.name ?? r.variants[0]?.name)),
      '',
    );
  for (const v of r.variants) {
    const rows = r.startup.filter((x) => x.variant === v.name);
    if (!rows.length) continue;
    L.push(
      `### ${v.name}`,
      '',
      timingTable(rows, crunOf(r.startup, v.name)),
      '',
      'Library phases:',
      '',
      phaseTable(rows.filter((x) => x.phases)),
      '',
    );
  }
  if (refs.length && r.variants.some((v) => v.name === 'plain'))
    L.push('(× crun run of the references: relative to the plain variant.)', '');
  if (r.cliRss?.length) {
    const nodeRss = r.cliRss.find((x) => x.key === 'node-e0')?.rssKb ?? null;
    L.push(
      'CLI start-up memory (peak RSS, median ru_maxrss of each process):',
      '',
      '| command | peak RSS (MB) | × node -e 0 |',
      '|---|---:|---:|',
    );
    for (const x of r.cliRss)
      L.push(
        `| ${x.label} | ${x.rssKb === null ? 'n/a' : fmt(x.rssKb / 1024)} | ${x.rssKb !== null && nodeRss ? fmt(x.rssKb / nodeRss, 3) : '–'} |`,
      );
    L.push('');
  }
  if (r.sporadic.length) {
    const v = r.sporadic[0].variant;
    L.push(
      `### Sporadic starts (idle before each run; ${v})`,
      '',
      'On cgroup v1 the first write to a `cgroup.procs` file after an idle spell waits for an RCU grace period (the cgroup threadgroup rwsem); back-to-back runs of a fast runtime skip it, a device starting containers now and then pays it every time. Last column: × crun run with the same idle time.',
      '',
      timingTable(r.sporadic, crunOf(r.sporadic, v, 'crun-run-gap')),
      '',
      'Phases:',
      '',
      phaseTable(r.sporadic.filter((x) => x.phases)),
      '',
    );
  }
  for (const p of r.cliProfiles)
    L.push(
      `### Where \`hako run\` (CLI) spends its time (${p.variant})`,
      '',
      `\`${p.command}\`, mean per run:`,
      '',
      '```',
      p.text,
      '```',
      '',
    );
  L.push('## 2. Fast setup (pre-created container)', '');
  for (const v of r.variants) {
    const rows = r.setup.filter((x) => x.variant === v.name);
    if (!rows.length) continue;
    L.push(
      `### ${v.name}`,
      '',
      timingTable(rows, crunOf(r.startup, v.name)),
      '',
      phaseTable(rows.filter((x) => x.phases)),
      '',
    );
  }
  L.push('## 3. Memory of a container waiting between create and start', '');
  L.push(
    '| variant | runtime | process (threads) | alone: RSS | alone: PSS (anon + file) | alone: private | N at once: PSS each / total | N at once: RSS each / total | other processes sharing the executable |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const m of r.memory) {
    if (m.error) {
      L.push(`| ${m.variant} | ${m.runtime} | failed: ${m.error.replace(/\|/g, '/')} | | | | | | |`);
      continue;
    }
    L.push(
      `| ${m.variant} | ${m.runtime} | \`${m.process}\` (${m.threads}) | ${fmt(mb(m.alone.rssKb), 3)} MB | ${fmt(mb(m.alone.pssKb), 3)} MB (${fmt(mb(m.alone.pssAnonKb), 3)} + ${fmt(mb(m.alone.pssFileKb), 3)}) | ${fmt(mb(m.alone.privateKb), 3)} MB | ${fmt(mb(m.many.pssEachKb), 3)} / ${fmt(mb(m.many.pssTotalKb), 1)} MB (N=${m.many.count}) | ${fmt(mb(m.many.rssEachKb), 3)} / ${fmt(mb(m.many.rssTotalKb), 1)} MB | ${m.otherSharers} |`,
    );
  }
  L.push(
    '',
    `(alone: mean of ${r.memory[0]?.alone.reps ?? '?'} creates, one container at a time; MB = 1024 kB, from /proc/PID/smaps_rollup; hako runs a private copy of hako-init here, so no other hako-init on the host shares its pages)`,
    '',
  );
  if (r.seccomp) {
    const s = r.seccomp;
    L.push('## 4. Seccomp', '');
    L.push(
      `Default profile for the bundle's capabilities: ${s.compile.rules} rules → ${s.compile.instructions} BPF instructions. ` +
        (s.compile.cold
          ? `Fresh Node process (median of 5): require lib/seccomp ${fmt(s.compile.cold.requireMs)} ms, build profile ${fmt(s.compile.cold.profileMs)} ms, first compile ${fmt(s.compile.cold.firstCompileMs)} ms. `
          : '') +
        `Warm compile: ${fmt(s.compile.warmMs, 3)} ms (mean of ${s.compile.rounds}).`,
      '',
    );
    L.push(
      'Seccomp mode of the container process (`hako-probe json`, /proc/self/status; 2 = filter): ' +
        s.modes.map((m) => `${m.runtime} ${m.filter}: ${m.seccomp ?? `failed (${m.error})`}`).join(', ') +
        '.',
      '',
    );
    L.push(`\`hako-probe getpid-loop ${s.getpid.n}\`, ${s.getpid.reps} repetitions (ns per getpid):`, '');
    L.push(
      '| runtime | filter | median ns/call | min | max | filter cost vs same runtime without (median / min) |',
      '|---|---|---:|---:|---:|---:|',
    );
    for (const g of s.getpid.rows) {
      if (g.error) {
        L.push(`| ${g.runtime} | ${g.filter} | failed: ${g.error.replace(/\|/g, '/').slice(0, 200)} | | | |`);
        continue;
      }
      const base = s.getpid.rows.find((x) => x.runtime === g.runtime && x.filter === 'none' && !x.error);
      const over =
        g.filter !== 'none' && base
          ? `${fmt(g.nsPerCall.median - base.nsPerCall.median, 1)} / ${fmt(g.nsPerCall.min - base.nsPerCall.min, 1)} ns`
          : '–';
      L.push(
        `| ${g.runtime} | ${g.filter} | ${fmt(g.nsPerCall.median, 1)} | ${fmt(g.nsPerCall.min, 1)} | ${fmt(g.nsPerCall.max, 1)} | ${over} |`,
      );
    }
    L.push(
      '',
      '`bench/seccomp-bench.js` (all hosts, BPF steps counted with the test interpreter):',
      '',
      '```',
      s.seccompBenchOutput,
      '```',
      '',
    );
  }
  L.push('## Ratios', '', '| variant | ratio | value | note |', '|---|---|---:|---|');
  for (const x of r.ratios) L.push(`| ${x.variant} | ${x.name} | ${fmt(x.value, 2)} | ${x.detail} |`);
  L.push('', '## Targets', '', '| variant | target | result | measured |', '|---|---|---|---|');
  for (const t of r.targets)
    L.push(
      `| ${t.variant} | ${t.name} | ${t.pass === null ? 'n/a' : t.pass ? '**pass**' : '**FAIL**'} | ${t.detail} |`,
    );
  L.push(
    '',
    `Cleanup: ${r.cleanup.leftoverDeleted} leftover containers deleted and ${r.cleanup.strayCgroups} stray cgroup directories removed at the end${r.cleanup.failed.length ? `; failures: ${r.cleanup.failed.join('; ')}` : ''}.`,
    '',
  );
  return L.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Bar {
  label: string;
  value: number;
  text: string;
  color: string;
}

function panel(title: string, unit: string, bars: Bar[], y0: number, width: number): { svg: string; height: number } {
  const labelW = 270;
  const barH = 18;
  const gap = 5;
  const maxBar = width - labelW - 200;
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const parts: string[] = [`<text x="10" y="${y0 + 18}" font-weight="bold" font-size="15">${esc(title)}</text>`];
  let y = y0 + 32;
  for (const b of bars) {
    const w = Math.max(1, (b.value / max) * maxBar);
    parts.push(
      `<text x="${labelW - 8}" y="${y + 13}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${b.color}"/>`,
      `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 13}">${esc(b.text)}</text>`,
    );
    y += barH + gap;
  }
  parts.push(`<text x="${labelW}" y="${y + 12}" font-size="11" fill="#666">${esc(unit)}</text>`);
  return { svg: parts.join('\n'), height: y + 24 - y0 };
}

const SHORT: Record<string, string> = {
  'sh-true': 'sh -c exec true',
  'node-e0': 'node -e 0',
  'node-e0-hostenv': 'node -e 0 (host env)',
  'hako-version': 'hako --version',
  'hako-state': 'hako state',
  'hako-list': 'hako list',
  'hako-cli-run': 'hako run (CLI)',
  'runc-run': 'runc run',
  'crun-run': 'crun run',
  'hako-lib-run': 'hako run() (library)',
  'hako-lib-setup': 'hako setup() (library)',
  'hako-cli-setup': 'hako setup (CLI)',
};

function shortLabel(row: TimingRow, gapMs: unknown): string {
  const gap = row.key.endsWith('-gap');
  const base = SHORT[gap ? row.key.slice(0, -4) : row.key] ?? row.label;
  const parts = [gap ? `${gapMs} ms idle` : '', row.variant].filter(Boolean);
  return parts.length ? `${base} [${parts.join(', ')}]` : base;
}

const COLORS: Record<string, string> = { hako: '#2a7ab8', runc: '#c0504d', crun: '#9bbb59', ref: '#999999' };

export function svg(r: BenchResults): string {
  const width = 980;
  const color = (key: string) =>
    key.startsWith('hako-version')
      ? COLORS.ref
      : key.startsWith('hako')
        ? COLORS.hako
        : key.startsWith('runc')
          ? COLORS.runc
          : key.startsWith('crun')
            ? COLORS.crun
            : COLORS.ref;
  const timeBars: Bar[] = [...r.startup, ...r.sporadic, ...r.setup]
    .filter((x) => !x.error && x.stats.n > 0 && x.key !== 'hako-lib-steps')
    .map((x) => ({
      label: shortLabel(x, r.config.BENCH_GAP_MS),
      value: x.stats.mean,
      text: `${fmt(x.stats.mean, x.stats.mean < 2 ? 3 : 1)} ms`,
      color: color(x.key),
    }));
  const memBars: Bar[] = [];
  for (const m of r.memory.filter((x) => !x.error)) {
    memBars.push({
      label: `${m.runtime} [${m.variant}]: alone`,
      value: mb(m.alone.pssKb),
      text: `${fmt(mb(m.alone.pssKb))} MB PSS (RSS ${fmt(mb(m.alone.rssKb))})`,
      color: COLORS[m.runtime],
    });
    memBars.push({
      label: `${m.runtime} [${m.variant}]: each of ${m.many.count}`,
      value: mb(m.many.pssEachKb),
      text: `${fmt(mb(m.many.pssEachKb), 3)} MB PSS`,
      color: COLORS[m.runtime],
    });
  }
  const p1 = panel('Start to exit of `true` (mean, ms; lower is better)', 'milliseconds', timeBars, 0, width);
  const p2 = memBars.length
    ? panel(
        'Waiting container between create and start (PSS, MB)',
        'MB (1024 kB), /proc/PID/smaps_rollup',
        memBars,
        p1.height + 10,
        width,
      )
    : { svg: '', height: 0 };
  const height = p1.height + p2.height + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    p1.svg,
    p2.svg,
    `<text x="10" y="${height - 8}" font-size="10" fill="#666">${esc(`hako bench ${r.date} · ${r.env.kernel} · ${r.env.cpus} CPUs · variants: seccomp = hako spec defaults (default seccomp profile), plain = no seccomp · see latest.md`)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
