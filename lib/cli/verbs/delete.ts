// `delete [--force] ID`: remove a stopped container (--force: kill it first).
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';

export async function deleteVerb(cli: CliContext, argv: string[]): Promise<number> {
  const p = parseVerb('delete', argv);
  await cli.runtime().delete(requireId(p, 'delete'), { force: !!p.flags.force });
  return 0;
}
