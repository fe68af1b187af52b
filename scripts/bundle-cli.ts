// Bundle the CLI into dist/cli.js and the containerd shim into dist/shim.js: one file to read at start-up instead of
// dozens of modules (bin/hako and bin/hako-shim.js load them with a V8 code cache).
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');
const esbuild = require('esbuild') as typeof import('esbuild');

// tsc's `import * as fs from 'fs'` helper (esModuleInterop) copies every export of a builtin into a new object
// of getters, once per importing module: about 100 properties for `fs`, run by the interpreter at every CLI
// start, and a getter call on every later `fs.x`. lib/ imports only Node builtins that way and never reads
// `.default` from such a namespace, so in the bundle the namespace can be the module itself.
const IMPORT_STAR_HELPER =
  /var __importStar = \(this && this\.__importStar\) \|\| \(function \(\) \{\n[\s\S]*?\n\}\)\(\);\n/;
const plainImportStar: import('esbuild').Plugin = {
  name: 'plain-import-star',
  setup(build) {
    build.onLoad({ filter: /[\\/]dist[\\/]lib[\\/].*\.js$/ }, (args) => {
      let contents = fs.readFileSync(args.path, 'utf8');
      if (contents.includes('var __importStar =')) {
        const before = contents;
        contents = contents.replace(IMPORT_STAR_HELPER, 'var __importStar = (mod) => mod;\n');
        if (contents === before)
          throw new Error(`${args.path}: tsc's __importStar helper changed shape; update scripts/bundle-cli.ts`);
      }
      return { contents, loader: 'js' };
    });
  },
};
function bundle(entry: string, out: string): Promise<unknown> {
  return esbuild.build({
    entryPoints: [path.join(root, 'dist', 'lib', ...entry.split('/'))],
    outfile: path.join(root, 'dist', out),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // yaml (the policy file parser, ~110 KB minified) stays a package of its own: only the resident policy server
    // loads it, so every other command neither reads nor compiles it at start-up.
    external: ['node-gyp-build', 'yaml'],
    // Smaller source and code cache: both are read at every CLI start. Pure ASCII (esbuild's default charset), so
    // bin/hako reads it as latin1 without UTF-8 decoding.
    minify: !process.env.HAKO_BUNDLE_NOMINIFY,
    charset: 'ascii',
    logLevel: 'warning',
    plugins: [plainImportStar],
  });
}

Promise.all([bundle('cli/main.js', 'cli.js'), bundle('shim/main.js', 'shim.js')]).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
