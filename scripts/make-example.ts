// Build examples/hello: a bundle whose rootfs holds only hako-probe, the project's own static program,
// so the README demo needs no download.
import * as fs from 'fs';
import * as path from 'path';
import { probePath } from '../lib/native/addon';
import { defaultSpec } from '../lib/oci/default-spec';

const root = path.resolve(__dirname, '..', '..');
const bundle = path.join(root, 'examples', 'hello');
const rootfs = path.join(bundle, 'rootfs');

let probe: string;
try {
  probe = probePath(root);
} catch {
  console.warn('make-example: hako-probe is not built yet (npm install builds it); skipping examples/hello');
  process.exit(0);
}
fs.rmSync(bundle, { recursive: true, force: true });
for (const d of ['proc', 'sys', 'dev', 'tmp', 'bin', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
fs.copyFileSync(probe, path.join(rootfs, 'bin', 'hello'));
fs.chmodSync(path.join(rootfs, 'bin', 'hello'), 0o755);
fs.writeFileSync(path.join(rootfs, 'etc', 'hostname'), 'hako\n');
const spec = defaultSpec({ args: ['/bin/hello'], terminal: false });
fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2) + '\n');
