// Bundle the CLI into dist/cli.js: one file to read at start-up instead of dozens of modules.
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const esbuild = require('esbuild') as typeof import('esbuild');
esbuild.buildSync({
  entryPoints: [path.join(root, 'dist', 'lib', 'cli', 'main.js')],
  outfile: path.join(root, 'dist', 'cli.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['node-gyp-build'],
  minify: false,
  logLevel: 'warning',
});
