// A newcomer's first commands: per-verb help generated from the parser's own flag tables, the global errors
// without a doubled prefix, the demo bundle the package makes itself, and library errors that name library
// options (the CLI maps them to its flags).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { HakoError, Pool, Runtime, makeExampleBundle, type ExecOptions, type PooledRun } from '../lib/index';
import { VERBS, parseVerb, wantsHelp } from '../lib/cli/args';
import { verbHelp } from '../lib/cli/output';
import { disposeRoot, hako, testRoot, tmpDir, uniqueId } from './helpers/env';

const root = testRoot('cli-help');
after(() => disposeRoot(root));

describe('per-verb help', () => {
  for (const verb of Object.keys(VERBS)) {
    test(`hako help ${verb}, hako ${verb} --help and -h list its flags`, () => {
      const outs = [
        ['help', verb],
        [verb, '--help'],
        [verb, '-h'],
      ].map((args) => {
        const r = hako(root, args);
        assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stderr, '');
        return r.stdout;
      });
      assert.equal(outs[1], outs[0]);
      assert.equal(outs[2], outs[0]);
      assert.equal(outs[0], verbHelp(verb));
      assert.match(outs[0], new RegExp(`^NAME:\\n   hako ${verb} - `));
      for (const f of VERBS[verb].flags) {
        assert.match(outs[0], new RegExp(`\\n   --${f.name}\\b`), `${verb} --help lists --${f.name}`);
        if (f.alias) assert.match(outs[0], new RegExp(`, -${f.alias}\\b`), `${verb} --help lists -${f.alias}`);
      }
      // Every flag the help lists is one the verb's parser accepts.
      for (const m of outs[0].matchAll(/^ {3}--([\w-]+)/gm)) {
        if (m[1] === 'help') continue;
        const spec = VERBS[verb].flags.find((f) => f.name === m[1])!;
        assert.ok(spec, `${verb}: --${m[1]} is in its table`);
        const argv = spec.type === 'boolean' ? [`--${m[1]}`] : [`--${m[1]}`, spec.type === 'number' ? '1' : 'x'];
        assert.doesNotThrow(() => parseVerb(verb, argv), `${verb} parses --${m[1]}`);
      }
    });
  }

  test('-h after the container id of exec and ps belongs to the command, not to hako', () => {
    assert.equal(wantsHelp('exec', ['ctr', 'ls', '-h']), false);
    assert.equal(wantsHelp('ps', ['ctr', '-h']), false);
    assert.equal(wantsHelp('exec', ['-t', '--help']), true);
  });

  test('hako help, hako --help: the commands with their summaries; hako help of an unknown verb fails naming it', () => {
    const r = hako(root, ['help']);
    assert.equal(r.status, 0);
    for (const [verb, v] of Object.entries(VERBS))
      assert.ok(r.stdout.includes(`   ${verb.padEnd(14)}  ${v.summary}`), verb);
    assert.equal(hako(root, ['--help']).stdout, r.stdout);
    const bad = hako(root, ['help', 'nope']);
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, 'hako: help: unknown command "nope" (see hako --help)\n');
  });

  test('an unknown global flag is reported once, without a doubled prefix', () => {
    const r = hako(root, ['--nope', 'list']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'hako: flag provided but not defined: -nope\n');
    const v = hako(root, ['create', '--nope', 'x']);
    assert.equal(v.stderr, 'hako: create: flag provided but not defined: -nope\n');
  });
});

describe('the demo bundle and library errors', () => {
  test('hako example-bundle DIR makes a bundle that runs and prints the greeting', () => {
    const dir = path.join(tmpDir('example'), 'hello');
    const r = hako(root, ['example-bundle', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(dir, 'config.json')));
    const run = hako(root, ['run', '--bundle', dir, uniqueId('hello')]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^Hello from a hako container!/);
    const again = hako(root, ['example-bundle', dir]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^hako: dir: .* exists and is not empty\n$/);
    assert.match(hako(root, ['example-bundle']).stderr, /example-bundle: exactly one argument/);
  });

  test('a library error names the library option (bundle), the CLI its flag (--bundle)', async () => {
    const rt = new Runtime({ root });
    const missing = path.join(tmpDir('nobundle'), 'srv-web');
    await assert.rejects(rt.run(uniqueId('lib'), { bundle: missing }), (e: unknown) => {
      assert.ok(e instanceof HakoError);
      assert.equal(e.field, 'bundle');
      assert.equal(e.message, `bundle: bundle ${missing} does not exist`);
      return true;
    });
    assert.throws(
      () => makeExampleBundle(''),
      (e: unknown) => e instanceof HakoError && e.field === 'dir',
    );
    const r = hako(root, ['run', '--bundle', missing, uniqueId('cli')]);
    assert.equal(r.stderr, `hako: --bundle: bundle ${missing} does not exist\n`);
  });

  test('a Pool prefix ending in a separator gets no second one (x- gives x-0); an invalid one is refused naming prefix', async () => {
    const rt = new Runtime({ root });
    const bundle = makeExampleBundle(path.join(tmpDir('pool'), 'b'));
    const prefix = `${uniqueId('x')}-`;
    const pool = new Pool(rt, { bundle, size: 1, prefix });
    try {
      await pool.start();
      // exit 0: prints nothing (the process inherits this test's stdout, node:test's channel).
      const job: PooledRun = await pool.run({ args: ['/bin/probe', 'exit', '0'], cwd: '/', user: { uid: 0, gid: 0 } });
      assert.equal(job.id, `${prefix}0`);
      assert.equal((await job.exit).status, 0);
    } finally {
      await pool.close();
    }
    assert.throws(
      () => new Pool(rt, { bundle, size: 1, prefix: 'a/b' }),
      (e: unknown) => e instanceof HakoError && e.field === 'prefix',
    );
    const opts: ExecOptions = {}; // exported from the package's entry point (a compile-time check)
    assert.deepEqual(opts, {});
  });
});
