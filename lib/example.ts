// A small demo bundle made from the package itself: a rootfs holding only hako-probe (the project's own
// static program, shipped in every prebuild folder and built with the addon otherwise), so README's examples
// run right after `npm install hako`, with no image to download. `hako example-bundle DIR` calls this.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from './errors';
import { probePath } from './native/addon';
import { defaultSpec } from './default-spec';

export interface ExampleBundleOptions {
  /** The process of config.json (default `/bin/hello`, which prints "Hello from a hako container!"). */
  args?: string[];
}

/**
 * Make the bundle in `dir` (created; it must not exist, or be empty) and return its absolute path. The rootfs
 * has `/bin/hello` (and `/bin/probe`, the same program: `probe json` reports what the process sees).
 */
export function makeExampleBundle(dir: string, opts: ExampleBundleOptions = {}): string {
  if (typeof dir !== 'string' || dir === '') throw new HakoError('dir: a directory path is required', { field: 'dir' });
  if (
    opts.args !== undefined &&
    (!Array.isArray(opts.args) || opts.args.length === 0 || !opts.args.every((a) => typeof a === 'string'))
  )
    throw new HakoError('args: a non-empty array of strings is required', { field: 'args' });
  const bundle = path.resolve(dir);
  let probe: string;
  try {
    probe = probePath();
  } catch {
    throw new HakoError(
      'hako-probe is not in this installation (neither in prebuilds/ nor in build/Release): reinstall hako',
      { field: 'dir' },
    );
  }
  let entries: string[] | undefined;
  try {
    entries = fs.readdirSync(bundle);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new HakoError(`dir: ${bundle}: ${(e as Error).message}`, { field: 'dir' });
  }
  if (entries && entries.length) throw new HakoError(`dir: ${bundle} exists and is not empty`, { field: 'dir' });
  const rootfs = path.join(bundle, 'rootfs');
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'bin', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.chmodSync(bundle, 0o755);
  for (const name of ['hello', 'probe']) {
    fs.copyFileSync(probe, path.join(rootfs, 'bin', name));
    fs.chmodSync(path.join(rootfs, 'bin', name), 0o755);
  }
  fs.writeFileSync(path.join(rootfs, 'etc', 'hostname'), 'hako\n');
  const spec = defaultSpec({ args: opts.args ?? ['/bin/hello'], terminal: false });
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2) + '\n');
  return bundle;
}
