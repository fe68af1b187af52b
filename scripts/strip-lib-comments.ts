// dist/lib's JavaScript without comments: the package ships dist/lib (the library's modules, for require('hako'))
// and every byte of it lands on a board's flash. The comments stay where a reader or an editor looks for them:
// in lib/'s TypeScript and in dist/lib's .d.ts (tsc's JSDoc). Runs after scripts/bundle-cli.ts, which reads tsc's
// own output (its __importStar helper, matched as tsc prints it).
import * as fs from 'fs';
import * as path from 'path';

const esbuild = require('esbuild') as typeof import('esbuild');
const lib = path.resolve(__dirname, '..', 'lib');

function* jsFiles(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* jsFiles(p);
    else if (e.name.endsWith('.js')) yield p;
  }
}

let before = 0;
let after = 0;
for (const file of jsFiles(lib)) {
  const code = fs.readFileSync(file, 'utf8');
  // Not minified: names, lines and layout stay readable in a stack trace; only comments go (legal ones too:
  // the package's LICENSE and NOTICE carry them). A shebang line is kept by esbuild.
  const out = esbuild.transformSync(code, { loader: 'js', target: 'node20', legalComments: 'none', charset: 'utf8' });
  before += code.length;
  after += out.code.length;
  fs.writeFileSync(file, out.code);
}
if (process.env.HAKO_BUILD_VERBOSE) console.log(`dist/lib JavaScript: ${before} -> ${after} bytes without comments`);
