// `spec`: a default config.json in the bundle directory (never over an existing one).
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../../errors';
import { parseVerb, str } from '../args';
import type { CliContext } from '../context';

export function spec(_cli: CliContext, argv: string[]): number {
  const p = parseVerb('spec', argv);
  const { defaultSpec } = require('../../default-spec') as typeof import('../../default-spec');
  const bundle = str(p, 'bundle') ?? '.';
  const file = path.join(bundle, 'config.json');
  if (fs.existsSync(file)) throw new HakoError(`spec: File ${file} exists. Remove it first`, { field: '--bundle' });
  fs.writeFileSync(file, JSON.stringify(defaultSpec({ rootless: !!p.flags.rootless }), null, 2) + '\n');
  return 0;
}
