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
  // Smaller source and code cache: both are read at every CLI start. Pure ASCII (esbuild's default charset), so
  // bin/hako reads it as latin1 without UTF-8 decoding.
  minify: true,
  charset: 'ascii',
  logLevel: 'warning',
});
