// `setup --process FILE`: fast start, a given process run in a created container at once.
import * as fs from 'fs';
import { HakoError } from '../../errors';
import { parseVerb, requireId, str } from '../args';
import type { CliContext } from '../context';

export async function setup(cli: CliContext, argv: string[]): Promise<number> {
  const p = parseVerb('setup', argv);
  const id = requireId(p, 'setup');
  const file = str(p, 'process');
  if (!file)
    throw new HakoError('setup: --process FILE is required (a runtime-spec process object)', { field: '--process' });
  let proc: unknown;
  try {
    proc = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    if (e instanceof RangeError) throw new HakoError('--process: nested too deeply', { field: '--process' });
    throw new HakoError(`--process: ${(e as Error).message.slice(0, 200)}`, { field: '--process' });
  }
  await cli.runtime().setup(id, proc as never, { cpuAffinity: str(p, 'cpu-affinity'), sched: str(p, 'sched') });
  return 0;
}
