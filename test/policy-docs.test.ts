// docs/policy.md's library example is run as written (issue 15: it once called a function the package did
// not export): the ```ts block is compiled, `from 'hako'` is this package, the two paths point to a temp dir.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as ts from 'typescript';
import type { PolicyServer, Spec } from '../lib';
import { ROOT_DIR, disposeRoot, testRoot, tmpDir, uniqueId } from './helpers/env';
import { HAVE_GCC, REFERENCE_POLICY, hakoAsync, lines, policyBundle, startServer, MOUNT_TMPFS_FOO } from './policy-env';

test(
  'docs/policy.md: the library example compiles against the package exports and runs',
  { skip: process.getuid?.() !== 0 ? 'needs root' : false },
  async () => {
    const md = fs.readFileSync(path.join(ROOT_DIR, 'docs', 'policy.md'), 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(md)?.[1];
    assert.ok(block, 'a ts block');
    const dir = tmpDir('policy-docs');
    const sock = path.join(dir, 'policy.sock');
    const policyFile = path.join(dir, 'policy.yaml');
    fs.writeFileSync(policyFile, 'profiles: []\n');
    assert.ok(block.includes("'/run/hako/policy.sock'") && block.includes("'/etc/hako/policy.yaml'"));
    const src = block
      .replace("'/run/hako/policy.sock'", JSON.stringify(sock))
      .replace("'/etc/hako/policy.yaml'", JSON.stringify(policyFile));
    // Type-check it like a user's file would be: against lib/index.ts, named 'hako'.
    const file = path.join(ROOT_DIR, 'test', '__policy_docs_example.ts');
    const host = ts.createCompilerHost({});
    const orig = host.getSourceFile.bind(host);
    host.getSourceFile = (f, v) =>
      path.resolve(f) === file ? ts.createSourceFile(f, `${src}\nexport {};\n`, v) : orig(f, v);
    const program = ts.createProgram(
      [file],
      {
        strict: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        noEmit: true,
        types: ['node'],
        skipLibCheck: true,
        paths: { hako: [path.join(ROOT_DIR, 'lib', 'index.ts')] },
        baseUrl: ROOT_DIR,
      },
      host,
    );
    const diags = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    assert.deepEqual(diags, [], 'the example type-checks against the package exports');
    // Run it: CommonJS, in an async function (it uses top-level await), 'hako' = the built package.
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const req = (m: string) => (m === 'hako' ? require(path.join(ROOT_DIR, 'dist', 'lib', 'index.js')) : require(m));
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
      ...a: string[]
    ) => (...v: unknown[]) => Promise<{ server: PolicyServer; spec: Spec }>;
    const run = new AsyncFunction('require', 'exports', `${js}\nreturn { server, spec };`);
    const hups = process.listeners('SIGHUP');
    const { server, spec } = await run(req, {});
    try {
      assert.equal(server.socketPath, sock);
      assert.ok(fs.statSync(sock).isSocket());
      assert.equal(spec.linux!.seccomp!.listenerPath, sock);
      assert.equal(spec.linux!.seccomp!.defaultAction, 'SCMP_ACT_ERRNO', 'the default profile was extended');
      assert.deepEqual(spec.linux!.seccomp!.syscalls!.find((r) => r.action === 'SCMP_ACT_NOTIFY')!.names.slice(0, 2), [
        'mount',
        'umount2',
      ]);
    } finally {
      for (const l of process.listeners('SIGHUP')) if (!hups.includes(l)) process.off('SIGHUP', l);
      await server.close({ release: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'hako policy seccomp-section: prints the section policySeccompSection gives; --bundle --base default writes a config a real container is served with',
  { skip: process.getuid?.() !== 0 || !HAVE_GCC ? 'needs root and gcc' : false },
  async () => {
    const { policySeccompSection } = require(path.join(ROOT_DIR, 'dist', 'lib', 'index.js')) as typeof import('../lib');
    const printed = await hakoAsync('/run/hako-policy-docs', [
      'policy',
      'seccomp-section',
      '--socket',
      'rel/policy.sock',
      '--metadata',
      'tier=edge',
      '--include',
      'chown',
    ]);
    assert.equal(printed.code, 0, printed.err);
    assert.deepEqual(
      JSON.parse(printed.out),
      policySeccompSection(path.resolve('rel/policy.sock'), { metadata: 'tier=edge', include: ['chown'] }),
    );
    const bad = await hakoAsync('/run/hako-policy-docs', [
      'policy',
      'seccomp-section',
      '--socket',
      's',
      '--include',
      'ptrace',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /unknown family ptrace/);

    const s = await startServer(REFERENCE_POLICY);
    const root = testRoot('policy-docs');
    try {
      // A bundle with no seccomp section at all: the CLI writes it, extending hako's default profile.
      const b = policyBundle(
        ['/bin/attack', ...MOUNT_TMPFS_FOO, ';', 'mount', 'tmpfs', '/bar', 'tmpfs', '0', 'size=1m'],
        {
          socket: s.socket,
          mutate: (sp) => delete sp.linux!.seccomp,
        },
      );
      const w = await hakoAsync(root, [
        'policy',
        'seccomp-section',
        '--socket',
        s.socket,
        '--base',
        'default',
        '--bundle',
        b.dir,
      ]);
      assert.equal(w.code, 0, w.err);
      const cfg = JSON.parse(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8')) as Spec;
      assert.equal(cfg.linux!.seccomp!.listenerPath, s.socket);
      assert.equal(cfg.linux!.seccomp!.defaultAction, 'SCMP_ACT_ERRNO');
      const r = await hakoAsync(root, ['run', '--bundle', b.dir, uniqueId('a')]);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(
        lines(r.out)
          .filter((l) => l.op === 'mount')
          .map((l) => l.errno),
        [0, 1],
        r.out,
      );
    } finally {
      await s.close();
      disposeRoot(root);
    }
  },
);
