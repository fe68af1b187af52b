// `pause` and `resume`: freeze and thaw every process of a container (the cgroup freezer).
import { parseVerb, requireId } from '../args';
import type { CliContext } from '../context';

export async function pauseResume(cli: CliContext, argv: string[], command: string): Promise<number> {
  const verb = command as 'pause' | 'resume';
  const p = parseVerb(verb, argv);
  await cli.runtime()[verb](requireId(p, verb));
  return 0;
}
