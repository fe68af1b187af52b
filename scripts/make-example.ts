// Build examples/hello (the README demo) with the library's makeExampleBundle: a bundle whose rootfs holds only
// hako-probe, the project's own static program, so the demo needs no download.
import * as fs from 'fs';
import * as path from 'path';
import { makeExampleBundle } from '../lib/example';
import { probePath } from '../lib/native/addon';

const root = path.resolve(__dirname, '..', '..');
const bundle = path.join(root, 'examples', 'hello');

try {
  probePath(root);
} catch {
  console.warn('make-example: hako-probe is not built yet (npm install builds it); skipping examples/hello');
  process.exit(0);
}
fs.rmSync(bundle, { recursive: true, force: true });
makeExampleBundle(bundle);
