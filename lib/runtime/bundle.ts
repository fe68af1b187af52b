// The bundle: its config.json read and validated, and the checks on it that need the host (LSMs).
import * as fs from 'fs';
import * as path from 'path';
import { HakoError, invalidField } from '../errors';
import { validateSpec } from '../oci/validate';
import type { Spec } from '../oci/types';

const lsmEnabled = (name: 'apparmor' | 'selinux') =>
  name === 'apparmor'
    ? readTrim('/sys/module/apparmor/parameters/enabled') === 'Y'
    : fs.existsSync('/sys/fs/selinux/enforce');

function readTrim(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function checkLsm(spec: Spec): void {
  if (spec.process?.apparmorProfile)
    throw invalidField(
      'process.apparmorProfile',
      lsmEnabled('apparmor')
        ? 'AppArmor profiles are not supported by this hako build'
        : 'AppArmor is not enabled on this host',
    );
  if (spec.process?.selinuxLabel)
    throw invalidField(
      'process.selinuxLabel',
      lsmEnabled('selinux')
        ? 'SELinux labels are not supported by this hako build'
        : 'SELinux is not enabled on this host',
    );
}

export function readConfig(bundle: string, configFile?: string): Spec {
  let text: string;
  try {
    if (!fs.statSync(bundle).isDirectory())
      throw new HakoError(`bundle: ${bundle} is not a directory`, { field: 'bundle' });
  } catch (e) {
    if (e instanceof HakoError) throw e;
    throw new HakoError(
      `bundle: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `bundle ${bundle} does not exist` : (e as Error).message}`,
      { field: 'bundle' },
    );
  }
  try {
    text = fs.readFileSync(configFile ?? path.join(bundle, 'config.json'), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (configFile)
      throw new HakoError(`config: ${code === 'ENOENT' ? `${configFile} does not exist` : (e as Error).message}`, {
        field: 'config',
      });
    if (code === 'ENOENT') throw new HakoError(`bundle: config.json not found in ${bundle}`, { field: 'bundle' });
    throw new HakoError(`bundle: read ${bundle}/config.json: ${(e as Error).message}`, { field: 'bundle' });
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    // V8's parser is iterative today, but one that recursed would end in a RangeError: say what it means.
    if (e instanceof RangeError) throw new HakoError('config.json: nested too deeply', { field: 'config.json' });
    throw new HakoError(`config.json: invalid JSON: ${(e as Error).message.slice(0, 200)}`, { field: 'config.json' });
  }
  validateSpec(spec);
  return spec;
}
