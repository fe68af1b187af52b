// `example-bundle DIR`: a small demo bundle (a rootfs holding only hako-probe).
import { HakoError } from '../../errors';
import { parseVerb } from '../args';
import type { CliContext } from '../context';
import { writeStdout } from '../output';

export function exampleBundle(_cli: CliContext, argv: string[]): number {
  const p = parseVerb('example-bundle', argv);
  const dir = p.positional[0];
  if (!dir || p.positional.length > 1)
    throw new HakoError('example-bundle: exactly one argument, the directory to make, is required', { field: 'dir' });
  const { makeExampleBundle } = require('../../example') as typeof import('../../example');
  const bundle = makeExampleBundle(dir);
  writeStdout(`${bundle}: run it with hako run --bundle ${bundle} ID\n`);
  return 0;
}
