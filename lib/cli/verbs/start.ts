// `start`: run the configured process of a created container.
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';

export async function start(cli: CliContext, argv: string[]): Promise<number> {
  const p = parseVerb('start', argv);
  await cli.runtime().start(requireId(p, 'start'));
  return 0;
}
