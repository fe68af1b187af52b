// `kill ID [SIGNAL]`: a signal to the container's init (--all: to every process of its cgroup).
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';

export async function kill(cli: CliContext, argv: string[]): Promise<number> {
  const p = parseVerb('kill', argv);
  const id = requireId(p, 'kill');
  cli.logger.debug(
    `kill: signal ${p.positional[1] ?? 'TERM'} to container ${id}${p.flags.all ? ' (all processes)' : ''}`,
  );
  await cli.runtime().kill(id, p.positional[1] ?? 'TERM', { all: !!p.flags.all });
  return 0;
}
