// The shim's launchers in their routine calls, which answer without Node: `delete` after the server's Delete (its
// <bundle>/.hako-deleted, or no rootfs mount and no state), and `start` for a group whose server runs (its
// record: pid and start time, checked in /proc). Every other case must reach Node. Both launchers run every case:
// the native one (src-native/launcher, which install.js and build:native put at bin/containerd-shim-hako-v2) and
// the POSIX sh one (bin/containerd-shim-hako-v2.sh, what a machine without a native build runs), with GNU's tools
// and with busybox's. Here `node` on
// the launcher's PATH is a stand-in that notes its call and fails (or, for a new group, plays the server that
// reports its address on fd 3), so each case shows which way the launcher took. No containerd: a listening socket
// of this process plays the group's server. Needs root (the launchers' fixed paths under /run/containerd, and a
// bind mount).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { groupOf, runtimeRoot, SHIM_RECORDS, socketPath } from '../lib/shim/address';
import { Fields } from '../lib/shim/proto';
import { procStat } from '../lib/runtime/proc';

const root = process.getuid?.() === 0;
const REPO = path.join(__dirname, '..', '..');
const NATIVE = path.join(REPO, 'bin', 'containerd-shim-hako-v2');
const SH = path.join(REPO, 'bin', 'containerd-shim-hako-v2.sh');
const GROUP_KEY = 'io.containerd.runc.v2.group';
const SANDBOX_KEY = 'io.kubernetes.cri.sandbox-id';

function isElf(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, 0);
    fs.closeSync(fd);
    return b.readUInt32BE(0) === 0x7f454c46;
  } catch {
    return false;
  }
}

const nativeSkip = !isElf(NATIVE) && `${NATIVE} is not the native launcher (npm run build:native puts it there)`;
const BUSYBOX_BIN = ['/usr/bin/busybox', '/bin/busybox'].find((p) => fs.existsSync(p));
/** The sh launcher runs its tools from PATH: GNU's here, busybox's on most boards. */
const LAUNCHERS = [
  { name: 'native', file: NATIVE, skip: nativeSkip, busybox: false },
  { name: 'sh', file: SH, skip: false as const, busybox: false },
  { name: 'sh-busybox', file: SH, skip: !BUSYBOX_BIN && 'no busybox here', busybox: true },
];

for (const launcher of LAUNCHERS)
  describe(
    `shim launcher (${launcher.name}): the routine start and delete without Node`,
    {
      skip: (!root && 'needs root') || launcher.skip,
    },
    () => {
      let dir: string;
      let bundle: string;
      let nodeCalls: string;
      let server: net.Server;
      const ns = `launcher-test-${launcher.name}-${process.pid}`;
      const group = 'g1';
      let address: string;
      let sock: string;
      let record: string;
      const config = (annotations?: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
        fs.writeFileSync(
          path.join(bundle, 'config.json'),
          JSON.stringify({ ociVersion: '1.0.2', ...extra, annotations }),
        );
      const liveRecord = (s: string) =>
        fs.writeFileSync(
          path.join(SHIM_RECORDS, `${path.basename(s)}.pid`),
          `${process.pid} ${procStat(process.pid)!.startTime}\n`,
        );

      const launch = (args: string[], env: Record<string, string> = {}) => {
        fs.rmSync(nodeCalls, { force: true });
        const r = spawnSync(
          launcher.file,
          ['-namespace', ns, '-address', address, '-publish-binary', '/bin/false', ...args],
          {
            cwd: bundle,
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { PATH: path.join(dir, 'bin'), ...env },
            timeout: 10_000,
          },
        );
        return {
          status: r.status,
          stdout: r.stdout.toString(),
          raw: r.stdout,
          stderr: r.stderr.toString(),
          node: fs.existsSync(nodeCalls),
          calls: fs.existsSync(nodeCalls) ? fs.readFileSync(nodeCalls, 'utf8') : '',
        };
      };

      before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-shim-launcher-'));
        address = path.join(dir, 'containerd.sock');
        bundle = path.join(dir, 'bundle');
        nodeCalls = path.join(dir, 'node-called');
        fs.mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
        config({ [GROUP_KEY]: group });
        fs.mkdirSync(path.join(dir, 'bin'));
        for (const tool of ['sed', 'sha256sum', 'readlink', 'awk', 'setsid'])
          fs.symlinkSync(
            launcher.busybox
              ? BUSYBOX_BIN!
              : ['/usr/bin', '/bin'].map((d) => path.join(d, tool)).find((p) => fs.existsSync(p))!,
            path.join(dir, 'bin', tool),
          );
        // The stand-in for Node: notes its arguments (and for the server of a new group, its session and
        // environment), and fails; as a new group's server (BOOT_REPORT set) it logs a line on stderr and reports
        // its socket on fd 3, as lib/shim/main.ts does.
        fs.writeFileSync(
          path.join(dir, 'bin', 'node'),
          [
            '#!/bin/sh',
            `echo "$*" >>'${nodeCalls}'`,
            'if [ "${HAKO_SHIM_BOOT:-}" = 1 ] && [ -n "${BOOT_REPORT:-}" ]; then',
            `  read -r st </proc/$$/stat; echo "stat $st" >>'${nodeCalls}'`,
            `  echo "socket $HAKO_SHIM_SOCKET" >>'${nodeCalls}'`,
            '  echo "server log line" >&2',
            '  printf "unix://%s" "$HAKO_SHIM_SOCKET" >&3',
            '  exit 0',
            'fi',
            'exit 99',
            '',
          ].join('\n'),
          { mode: 0o755 },
        );
        sock = socketPath(address, ns, group);
        record = path.join(SHIM_RECORDS, `${path.basename(sock)}.pid`);
        fs.mkdirSync(path.dirname(sock), { recursive: true, mode: 0o711 });
        fs.mkdirSync(SHIM_RECORDS, { recursive: true, mode: 0o700 });
        server = net.createServer((c) => c.destroy());
        await new Promise<void>((r) => server.listen(sock, r));
      });

      after(async () => {
        await new Promise((r) => server.close(r));
        fs.rmSync(sock, { force: true });
        fs.rmSync(record, { force: true });
        fs.rmSync(runtimeRoot(ns), { recursive: true, force: true });
        spawnSync('umount', [path.join(bundle, 'rootfs')]);
        fs.rmSync(dir, { recursive: true, force: true });
      });

      test('start: a live server of the group (pid and start time) is answered by the launcher alone', () => {
        config({ [GROUP_KEY]: group });
        liveRecord(sock);
        const r = launch(['-id', 'c1', 'start']);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, `unix://${sock}`);
        assert.equal(fs.readFileSync(path.join(bundle, 'address'), 'utf8'), `unix://${sock}`, 'address, no newline');
        assert.equal(r.node, false, 'Node was not started');
      });

      test('start: the address Node computes (lib/shim/address.ts), for each way of naming the group', async () => {
        // Keys of 55, 56, 63 and 64 bytes and more: SHA-256's one- and two-block paddings.
        const base = `${address}/${ns}/`.length;
        const cases: { id: string; annotations?: Record<string, string> }[] = [
          { id: 'c-sandbox', annotations: { [SANDBOX_KEY]: 'pod-sandbox-1' } },
          { id: 'c-both', annotations: { [SANDBOX_KEY]: 'pod-x', [GROUP_KEY]: 'wins' } },
          { id: 'c-empty-group', annotations: { [GROUP_KEY]: '', [SANDBOX_KEY]: 'pod-y' } },
          { id: 'c-own' },
          ...[55, 56, 63, 64, 119, 120, 200].map((n) => ({ id: 'x'.repeat(Math.max(1, n - base)) })),
          { id: 'c-spaces', annotations: { [GROUP_KEY]: 'a group with spaces' } },
          { id: 'c-sub', annotations: { [GROUP_KEY]: 'a/b' } },
        ];
        const servers: net.Server[] = [];
        try {
          for (const c of cases) {
            config(c.annotations);
            const want = socketPath(address, ns, groupOf(c.id, c.annotations, false));
            const s = net.createServer((x) => x.destroy());
            servers.push(s);
            fs.rmSync(want, { force: true });
            await new Promise<void>((r) => s.listen(want, r));
            liveRecord(want);
            const r = launch(['-id', c.id, 'start']);
            fs.rmSync(path.join(SHIM_RECORDS, `${path.basename(want)}.pid`), { force: true });
            assert.deepEqual(
              [r.status, r.stdout, r.node],
              [0, `unix://${want}`, false],
              `${JSON.stringify(c)}: ${r.stderr}`,
            );
          }
        } finally {
          for (const s of servers) await new Promise((r) => s.close(r));
          config({ [GROUP_KEY]: group });
        }
      });

      test('start: a record whose start time is not the pid’s (a reused pid) goes to Node', () => {
        config({ [GROUP_KEY]: group });
        fs.writeFileSync(record, `${process.pid} ${Number(procStat(process.pid)!.startTime) + 1}\n`);
        const r = launch(['-id', 'c2', 'start']);
        assert.notEqual(r.status, 0);
        assert.equal(r.node, true);
        assert.doesNotMatch(r.stdout, /unix:/);
      });

      test('start: a record of a dead pid, or one without a start time, goes to Node', () => {
        const dead = spawnSync('/bin/true').pid!;
        for (const content of [`${dead} 1\n`, `${process.pid}\n`]) {
          fs.writeFileSync(record, content);
          const r = launch(['-id', 'c3', 'start']);
          assert.equal(r.node, true, content);
          assert.notEqual(r.status, 0);
        }
      });

      test('start of a new group: the server, in its own session, reports on fd 3; its stderr is the log FIFO', async () => {
        config({ [GROUP_KEY]: 'new-group' });
        const want = socketPath(address, ns, 'new-group');
        const log = path.join(bundle, 'log');
        assert.equal(spawnSync('mkfifo', [log]).status, 0);
        // containerd holds the FIFO open for reading before it runs start.
        const reader = fs.openSync(log, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        try {
          const r = launch(['-id', 'c4', '-debug', 'start'], { BOOT_REPORT: '1' });
          assert.equal(r.status, 0, r.stderr);
          assert.equal(r.stdout, `unix://${want}`);
          const lines = r.calls.split('\n');
          assert.match(
            lines[0],
            new RegExp(
              `^--max-semi-space-size=1 \\S+/bin/hako-shim\\.js -namespace ${ns} -id c4 -address \\S+ -debug$`,
            ),
          );
          assert.equal(
            lines.find((l) => l.startsWith('socket ')),
            `socket ${want}`,
          );
          const stat = lines.find((l) => l.startsWith('stat '))!.slice(5);
          const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
          const [pid, session] = [stat.split(' ')[0], fields[3]];
          assert.equal(session, pid, 'the server leads its own session (setsid)');
          const buf = Buffer.alloc(256);
          const n = fs.readSync(reader, buf);
          assert.equal(buf.toString('utf8', 0, n), 'server log line\n', "the server's stderr is containerd's log FIFO");
        } finally {
          fs.closeSync(reader);
          fs.rmSync(log, { force: true });
          config({ [GROUP_KEY]: group });
        }
      });

      test('start: a hostile or unreadable config.json goes to Node or fails, never to a wrong socket', async (t) => {
        // A live server on every socket a misreading could name: the group's real one, and each decoy's.
        const decoys = ['evil', 'a"b', 'a\\b', 'x'.repeat(1 << 20), 'nested'];
        const servers: net.Server[] = [];
        const listen = async (s: string) => {
          const srv = net.createServer((x) => x.destroy());
          servers.push(srv);
          fs.rmSync(s, { force: true });
          await new Promise<void>((r) => srv.listen(s, r));
          liveRecord(s);
        };
        for (const d of decoys) if (d.length < 100) await listen(socketPath(address, ns, d));
        liveRecord(sock);
        const id = 'c5';
        const json = (annotations: unknown, extra = '') =>
          `{"ociVersion":"1.0.2"${extra},"annotations":${JSON.stringify(annotations)}}`;
        const cases: [string, string | Buffer | null][] = [
          ['a quote in the value', json({ [GROUP_KEY]: 'a"b' })],
          ['a backslash in the value', json({ [GROUP_KEY]: 'a\\b' })],
          ['a quote in the sandbox id', json({ [SANDBOX_KEY]: 'a"b' })],
          [
            'a later duplicate key with an escape',
            `{"annotations":{"${GROUP_KEY}":"${group}","${GROUP_KEY}":"a\\"b"}}`,
          ],
          ['a number for the sandbox id', `{"annotations":{"${SANDBOX_KEY}":5}}`],
          ['a huge value', json({ [GROUP_KEY]: 'x'.repeat(1 << 20) })],
          ['an escaped key that spells the group key', `{"annotations":{"io.containerd.runc.v2\\u002egroup":"evil"}}`],
          ['the key outside annotations', `{"annotations":{},"linux":{"sysctl":{"${GROUP_KEY}":"evil"}}}`],
          [
            'the key nested deeper, after annotations',
            `{"annotations":{"${GROUP_KEY}":"${group}"},"x":{"${GROUP_KEY}":"nested"}}`,
          ],
          [
            'a later annotations object replaces the first',
            `{"annotations":{"${GROUP_KEY}":"evil"},"annotations":{"${GROUP_KEY}":"${group}"}}`,
          ],
          [
            'non-UTF-8 bytes in the value',
            Buffer.concat([
              Buffer.from(`{"annotations":{"${GROUP_KEY}":"g`),
              Buffer.from([0xff, 0xfe]),
              Buffer.from('1"}}'),
            ]),
          ],
          ['invalid JSON (cut short)', `{"annotations":{"${GROUP_KEY}":"${group}"}`],
          ['trailing garbage', `{"annotations":{"${GROUP_KEY}":"${group}"}} x`],
          ['a number for the group', `{"annotations":{"${GROUP_KEY}":5}}`],
          ['a group that path.join would rewrite', json({ [GROUP_KEY]: '../g1' })],
          ['a symlinked config.json', 'symlink'],
          ['no config.json', null],
        ];
        const file = path.join(bundle, 'config.json');
        try {
          for (const [what, content] of cases) {
            fs.rmSync(file, { force: true });
            if (content === 'symlink') {
              fs.writeFileSync(path.join(dir, 'real-config.json'), json({ [GROUP_KEY]: group }));
              fs.symlinkSync(path.join(dir, 'real-config.json'), file);
            } else if (content !== null) fs.writeFileSync(file, content);
            // What Node itself would answer: the socket of the group JSON.parse finds, or a failure.
            let expected: string | undefined;
            try {
              const annotations = (
                JSON.parse(fs.readFileSync(file, 'utf8')) as { annotations?: Record<string, string> }
              ).annotations;
              expected = socketPath(address, ns, groupOf(id, annotations, false));
            } catch {
              expected = undefined;
            }
            const r = launch(['-id', id, 'start']);
            // The sh's sed reads the annotation, it does not validate the document: for a JSON.parse error it may
            // answer the socket of the group it read (containerd writes valid JSON; the native launcher checks).
            if (launcher.name !== 'native' && expected === undefined && r.status === 0 && !r.node) {
              t.diagnostic(`sh, ${what}: answered ${r.stdout} where Node would fail`);
              continue;
            }
            if (r.status === 0 && !r.node)
              assert.equal(r.stdout, `unix://${expected}`, `${what}: the launcher answered, with Node's socket`);
            else
              assert.ok(r.node && !/unix:/.test(r.stdout), `${what}: to Node (status ${r.status}, stdout ${r.stdout})`);
            if (
              launcher.name === 'native' &&
              what !== 'the key nested deeper, after annotations' &&
              what !== 'a later annotations object replaces the first'
            )
              assert.ok(r.node, `${what}: the native launcher leaves this to Node`);
          }
        } finally {
          for (const s of servers) await new Promise((r) => s.close(r));
          fs.rmSync(file, { force: true });
          config({ [GROUP_KEY]: group });
        }
      });

      test('start: options on stdin, odd arguments and names path.join would rewrite go to Node', () => {
        liveRecord(sock);
        for (const args of [
          ['-id', 'c1', 'start', 'extra'],
          ['-id', 'c1', 'start', 'delete'],
          ['-id', 'c1', '-unknown', 'start'],
          ['-id', 'a b', 'start'],
          ['-id', 'a/b', 'start'],
          ['-id', 'c1'],
          // The sh answers this one with the group's socket (right here: the group is the annotation's); the native
          // launcher leaves every "." or ".." name to Node.
          ...(launcher.name === 'native' ? [['-id', '..', 'start']] : []),
        ]) {
          const r = launch(args);
          assert.deepEqual([r.status, r.node], [99, true], args.join(' '));
        }
        const r = spawnSync(launcher.file, ['-namespace', ns, '-address', address, '-id', 'c1', 'start'], {
          cwd: bundle,
          input: Buffer.from([0x0a, 0x00]),
          env: { PATH: path.join(dir, 'bin') },
        });
        assert.equal(r.status, 99, 'options on stdin: Node reads them');
      });

      test('delete: after the server’s Delete (.hako-deleted), or with no state and no rootfs mount, no Node', () => {
        // The answer is runc's shim's: DeleteResponse {exit_status 137, exited_at now}.
        const answered = (r: ReturnType<typeof launch>) => {
          const f = new Fields(r.raw);
          const at = new Fields(f.bytes(3) ?? Buffer.alloc(0));
          const ms = at.uint(1) * 1000 + at.uint(2) / 1e6;
          return f.uint(2) === 137 && f.uint(1) === 0 && Math.abs(ms - Date.now()) < 5000;
        };
        fs.writeFileSync(path.join(bundle, '.hako-deleted'), '');
        let r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
        assert.deepEqual([r.status, answered(r), r.node], [0, true, false], r.stderr);
        fs.rmSync(path.join(bundle, '.hako-deleted'));
        r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
        assert.deepEqual([r.status, answered(r), r.node], [0, true, false], r.stderr);
      });

      test('delete: a mounted rootfs, or hako state of the container, goes to Node', () => {
        const rootfs = path.join(bundle, 'rootfs');
        assert.equal(spawnSync('mount', ['--bind', dir, rootfs]).status, 0);
        try {
          const r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
          assert.deepEqual([r.status, r.node], [99, true], 'a rootfs left mounted');
        } finally {
          assert.equal(spawnSync('umount', [rootfs]).status, 0);
        }
        fs.mkdirSync(path.join(runtimeRoot(ns), 'c1'), { recursive: true });
        fs.writeFileSync(path.join(bundle, '.hako-deleted'), '');
        const r = launch(['-id', 'c1', '-bundle', bundle, 'delete']);
        assert.deepEqual([r.status, r.node], [99, true], 'hako state left, whatever the mark says');
        fs.rmSync(path.join(runtimeRoot(ns), 'c1'), { recursive: true });
        fs.rmSync(path.join(bundle, '.hako-deleted'));
      });
    },
  );

describe('the native launcher’s SHA-256 (src-native/launcher/sha256.c)', () => {
  const cc = ['cc', 'gcc'].find((c) => spawnSync(c, ['--version']).status === 0);
  test(
    'FIPS 180-4 vectors and every length up to 300 bytes match Node’s crypto',
    { skip: !cc && 'no C compiler' },
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-sha256-'));
      try {
        // A harness that hashes each line of stdin (the sources are the launcher's own).
        const harness = path.join(dir, 'harness.c');
        fs.writeFileSync(
          harness,
          [
            '#include <stdio.h>',
            '#include <string.h>',
            '#include "sha256.h"',
            'static char line[1 << 21];',
            'int main(void) {',
            '  char hex[65];',
            '  while (fgets(line, sizeof line, stdin)) {',
            '    size_t n = strlen(line);',
            "    if (n && line[n - 1] == '\\n') line[--n] = 0;",
            '    sha256_hex((const unsigned char *)line, n, hex);',
            '    puts(hex);',
            '  }',
            '  return 0;',
            '}',
            '',
          ].join('\n'),
        );
        const src = path.join(REPO, 'src-native', 'launcher');
        const exe = path.join(dir, 'harness');
        const built = spawnSync(cc!, ['-O2', '-I', src, '-o', exe, harness, path.join(src, 'sha256.c')], {
          encoding: 'utf8',
        });
        assert.equal(built.status, 0, built.stderr);
        const inputs = [
          '',
          'abc',
          'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
          'a'.repeat(1_000_000),
          ...Array.from({ length: 301 }, (_, n) =>
            Array.from({ length: n }, (_, i) => String.fromCharCode(33 + ((i * 7 + n) % 90))).join(''),
          ),
        ];
        const r = spawnSync(exe, [], { input: inputs.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 24 });
        assert.equal(r.status, 0);
        const got = r.stdout.trim().split('\n');
        assert.equal(got[0], 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
        assert.equal(got[1], 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
        assert.equal(got[2], '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
        assert.equal(got[3], 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
        inputs.forEach((s, i) =>
          assert.equal(got[i], createHash('sha256').update(s).digest('hex'), `length ${s.length}`),
        );
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
