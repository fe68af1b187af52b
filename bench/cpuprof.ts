// Summarise V8 .cpuprofile files (node --cpu-prof): where a short-lived CLI process spends its time.
// Self time by function and by script, the idle share (waiting on I/O, children, timers), and the wall span.
// Run: node dist/bench/cpuprof.js FILE.cpuprofile... (several files are averaged).
import * as fs from 'fs';
import * as path from 'path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  files: number;
  /** Mean per profile (ms). */
  wallMs: number;
  idleMs: number;
  gcMs: number;
  programMs: number;
  byFunction: { name: string; ms: number }[];
  byScript: { name: string; ms: number }[];
  /** Inclusive time of selected functions (ms), e.g. the module loader. */
  inclusive: { name: string; ms: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return url;
  const m = /\/(dist\/.*|node_modules\/.*)$/.exec(url.replace(/^file:\/\//, ''));
  return m ? m[1] : path.basename(url);
}

/** Functions whose inclusive time is worth knowing in a hako CLI profile (matched by name). */
export const CLI_FUNCTIONS = [
  'wrapSafe',
  'Module._extensions..node',
  'runtime',
  'createOrRun',
  'create',
  'readConfig',
  'prepare',
  'buildPlan',
  'compileProcessSeccomp',
  'spawn',
  'addProcess',
  'converse',
  'start',
  'sendControl',
  'wait',
  'delete',
  'destroy',
  'save',
];

export function summarise(files: string[], inclusiveNames: readonly string[] = CLI_FUNCTIONS): ProfileSummary {
  const fn = new Map<string, number>();
  const script = new Map<string, number>();
  const incl = new Map<string, number>();
  let wall = 0;
  let idle = 0;
  let gc = 0;
  let program = 0;
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(f, 'utf8')) as CpuProfile;
    wall += (p.endTime - p.startTime) / 1000;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const self = new Map<number, number>();
    for (let i = 0; i < p.samples.length; i++)
      self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
    for (const [id, ms] of self) {
      const n = byId.get(id)!;
      const name = n.callFrame.functionName || '(anonymous)';
      if (name === '(idle)') idle += ms;
      else if (name === '(garbage collector)') gc += ms;
      else if (name === '(program)') program += ms;
      const key = `${name} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
      fn.set(key, (fn.get(key) ?? 0) + ms);
      const s = shortUrl(n.callFrame.url);
      script.set(s, (script.get(s) ?? 0) + ms);
      // Inclusive: charge each named ancestor once per sample.
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const fname = byId.get(cur)!.callFrame.functionName;
        if (inclusiveNames.includes(fname) && !seen.has(fname)) {
          seen.add(fname);
          incl.set(fname, (incl.get(fname) ?? 0) + ms);
        }
      }
    }
  }
  const k = Math.max(files.length, 1);
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: ms / k }));
  return {
    files: files.length,
    wallMs: wall / k,
    idleMs: idle / k,
    gcMs: gc / k,
    programMs: program / k,
    byFunction: top(fn, 15),
    byScript: top(script, 10),
    inclusive: inclusiveNames.filter((n) => incl.has(n)).map((name) => ({ name, ms: incl.get(name)! / k })),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const L = [
    `${s.files} profile(s), mean wall ${s.wallMs.toFixed(1)} ms: idle ${s.idleMs.toFixed(1)}, (program) ${s.programMs.toFixed(1)}, GC ${s.gcMs.toFixed(1)} ms`,
  ];
  L.push('self time by function (ms):');
  for (const x of s.byFunction) L.push(`  ${x.ms.toFixed(2).padStart(7)}  ${x.name}`);
  L.push('self time by script (ms):');
  for (const x of s.byScript) L.push(`  ${x.ms.toFixed(2).padStart(7)}  ${x.name}`);
  L.push('inclusive time of hako functions (ms, by name):');
  for (const x of s.inclusive) L.push(`  ${x.ms.toFixed(2).padStart(7)}  ${x.name}`);
  return L.join('\n');
}

if (require.main === module) {
  const files = process.argv.slice(2).flatMap((a) =>
    fs.statSync(a).isDirectory()
      ? fs
          .readdirSync(a)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => path.join(a, f))
      : [a],
  );
  process.stdout.write(formatSummary(summarise(files)) + '\n');
}
