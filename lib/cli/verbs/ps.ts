// `ps`: the container's processes, as JSON pids or as the host's `ps` rows of them.
import { spawnSync } from 'child_process';
import { HakoError } from '../../errors';
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';

/** `ps`: the container's processes, as JSON pids or as `ps` rows (extra args go to ps). */
export async function ps(cli: CliContext, argv: string[]): Promise<number> {
  const rt = cli.runtime();
  // As runc: everything after the id goes to ps (`hako ps ID -e -o pid,comm`).
  const p = parseVerb('ps', argv);
  const id = requireId(p, 'ps');
  const pids = await rt.ps(id);
  const format = (p.flags.format as string | undefined) ?? 'table';
  if (format === 'json') {
    process.stdout.write(JSON.stringify(pids) + '\n');
    return 0;
  }
  if (format !== 'table') throw new HakoError(`ps: invalid format "${format}" (table or json)`, { field: '--format' });
  const psArgs = p.positional.slice(1);
  const r = spawnSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8' });
  if (r.status !== 0) throw new HakoError(`ps: ${r.stderr || r.error?.message}`);
  const lines = r.stdout.split('\n').filter(Boolean);
  const header = lines[0];
  const col = header.trim().split(/\s+/).indexOf('PID');
  if (col < 0) throw new HakoError('ps: the ps output has no PID column');
  const set = new Set(pids);
  process.stdout.write(header + '\n');
  for (const l of lines.slice(1)) if (set.has(Number(l.trim().split(/\s+/)[col]))) process.stdout.write(l + '\n');
  return 0;
}
