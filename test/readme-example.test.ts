// README's library example runs as written: the ```js block of the "Library" section, saved as a .mjs file and
// run by Node as root, with two substitutions only: `from 'hako'` loads this checkout's build (as an installed
// package would load its own), and the state root is this test's.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ROOT_DIR, disposeRoot, testRoot, tmpDir } from './helpers/env';

const root = testRoot('readme');
after(() => disposeRoot(root));

test("README's library example runs as written and prints what its comments say", () => {
  const readme = fs.readFileSync(path.join(ROOT_DIR, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Library\n'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'README has a ```js block in its Library section');
  assert.ok(
    code.includes("from 'hako'") && code.includes("root: '/run/hako'"),
    'the example imports hako and uses /run/hako',
  );
  const dir = tmpDir('readme');
  const file = path.join(dir, 'example.mjs');
  const entry = JSON.stringify(path.join(ROOT_DIR, 'dist', 'lib', 'index.js'));
  fs.writeFileSync(
    file,
    code.replace("from 'hako'", `from ${entry}`).replace("root: '/run/hako'", `root: ${JSON.stringify(root)}`),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000, env });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(
    r.stdout,
    'Hello from a hako container!\nhostname=hako pid=1 uid=0\nexit status 0\nhello from the pool\nexit status 0\n',
  );
  assert.equal(r.stderr, '');
  // The example removes its bundle; its containers are gone.
  assert.deepEqual(fs.readdirSync(dir), ['example.mjs']);
  assert.deepEqual(
    fs.readdirSync(root).filter((f) => !f.startsWith('.')),
    [],
  );
});
