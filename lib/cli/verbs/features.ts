// `features`: the runtime-spec features document of this build.
import { parseVerb } from '../args';
import type { CliContext } from '../context';
import { writeStdout } from '../output';

export function features(_cli: CliContext, argv: string[]): number {
  parseVerb('features', argv);
  const { features } = require('../../oci/features') as typeof import('../../oci/features');
  writeStdout(JSON.stringify(features(), null, 2) + '\n');
  return 0;
}
