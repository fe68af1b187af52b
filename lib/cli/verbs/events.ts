// `events`: resource statistics (once with --stats, or every interval) and OOM events, as JSON lines.
import { HakoError } from '../../errors';
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';

function parseInterval(v: string | undefined): number {
  if (!v) return 5000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new HakoError(`--interval: invalid duration "${v}"`, { field: '--interval' });
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[(m[2] ?? 's') as 'ms' | 's' | 'm'];
}

/** `events`: `--stats` prints one stats record; otherwise stats every interval plus OOM events. */
export async function events(cli: CliContext, argv: string[]): Promise<number> {
  const rt = cli.runtime();
  const p = parseVerb('events', argv);
  const id = requireId(p, 'events');
  const { statsEvent, encodeEvent, watchOom } = require('../../cgroups') as typeof import('../../cgroups');
  const mgr = rt.cgroupManager(id);
  const emit = () => process.stdout.write(encodeEvent(statsEvent(id, mgr.stats())) + '\n');
  if ((await rt.state(id)).status === 'stopped') throw new HakoError('container not running');
  if (p.flags.stats) {
    emit();
    return 0;
  }
  const interval = parseInterval(p.flags.interval as string | undefined);
  return new Promise<number>((resolve) => {
    const stopOom = watchOom(mgr, () => process.stdout.write(JSON.stringify({ type: 'oom', id }) + '\n'));
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the body catches everything: it never rejects
    const timer = setInterval(async () => {
      try {
        if ((await rt.state(id)).status === 'stopped') throw new Error('stopped');
        emit();
      } catch {
        clearInterval(timer);
        stopOom();
        resolve(0);
      }
    }, interval);
  });
}
