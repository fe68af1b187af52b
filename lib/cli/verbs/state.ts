// `state`: the OCI state of a container, as JSON.
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';
import { writeStdout } from '../output';

export async function state(cli: CliContext, argv: string[]): Promise<number> {
  const p = parseVerb('state', argv);
  const st = await cli.runtime().state(requireId(p, 'state'));
  writeStdout(JSON.stringify(st, null, 2) + '\n');
  return 0;
}
