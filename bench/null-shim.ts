// The NULL SHIM: a measuring instrument of the containerd bench (bench/containerd-bench.ts), not product code and
// never installed. It is a containerd shim v2 (runtime io.containerd.hakonull.v2) that runs no container: it
// answers the Task API at once, so `ctr run --rm --runtime io.containerd.hakonull.v2 IMAGE id true` costs what
// containerd and ctr cost with a shim that does nothing. That is the floor under every shim's time, and runc's
// time / the floor is the best ratio any shim could reach against runc's.
//
// Two parts, as a real resident shim has them:
//  - the launcher `containerd-shim-hakonull-v2` (bench/null-launcher.c, compiled static by installNullShim into the
//    bench's temp dir, which is on the bench containerd's PATH only): `start` writes <bundle>/address and prints the
//    one server's address, `delete` prints an empty DeleteResponse; one static program each, as hako's native
//    launcher (src-native/launcher) in its routine case, so the floor is no slower than hako's own launcher (a POSIX
//    sh stands in, with a warning, where no C compiler is found);
//  - the server, this file run by Node (`node null-shim.js SOCKET`): one process for every container, on the ttrpc
//    and protobuf code of hako's shim (lib/shim/ttrpc.ts, messages.ts, proto.ts). Create answers a pid, Start
//    "runs" the container, which exits 0 at once (its stdio FIFOs are opened and closed, so ctr's copy loops end by
//    EOF as they do with a real container), Wait answers once Start has run, State reports STOPPED after it,
//    Delete forgets the container, Connect and Shutdown answer (Shutdown never ends the server: the bench does).
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as M from '../lib/shim/messages';
import { Code, RpcError, serveConnection, type Handler, type Services } from '../lib/shim/ttrpc';

export const NULL_RUNTIME = 'io.containerd.hakonull.v2';
const NULL_BINARY = 'containerd-shim-hakonull-v2';

interface NullTask {
  bundle: string;
  stdout: string;
  stderr: string;
  status: number;
  exitedAt?: Date;
  /** Resolves when Start has run (the container's exit). */
  exited: Promise<void>;
  exit: () => void;
}

/** Let the stdio FIFOs' reader (ctr) see EOF, as when a container's output ends. */
function closeFifo(p: string): void {
  if (!p) return;
  try {
    fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
  } catch {
    /* no reader, or not a FIFO: nothing to end */
  }
}

export function nullHandlers(): Map<string, Handler> {
  const tasks = new Map<string, NullTask>();
  const task = (id: string): NullTask => {
    const t = tasks.get(id);
    if (!t) throw new RpcError(Code.NotFound, `null shim: container ${id}: not found`);
    return t;
  };
  const h = new Map<string, Handler>();
  h.set('Create', (b) => {
    const r = M.decodeCreate(b);
    let exit!: () => void;
    const exited = new Promise<void>((res) => (exit = res));
    tasks.set(r.id, { bundle: r.bundle, stdout: r.stdout, stderr: r.stderr, status: M.Status.CREATED, exited, exit });
    return M.pidResponse(process.pid);
  });
  h.set('Start', (b) => {
    const t = task(M.decodeIdExec(b).id);
    closeFifo(t.stdout);
    closeFifo(t.stderr);
    t.status = M.Status.STOPPED;
    t.exitedAt = new Date();
    t.exit();
    return M.pidResponse(process.pid);
  });
  h.set('Wait', async (b) => {
    const t = task(M.decodeIdExec(b).id);
    await t.exited;
    return M.waitResponse(0, t.exitedAt!);
  });
  h.set('State', (b) => {
    const { id, execId } = M.decodeIdExec(b);
    const t = task(id);
    return M.stateResponse({
      id,
      bundle: t.bundle,
      pid: process.pid,
      status: t.status,
      stdin: '',
      stdout: t.stdout,
      stderr: t.stderr,
      terminal: false,
      exitStatus: 0,
      exitedAt: t.exitedAt,
      execId,
    });
  });
  h.set('Delete', (b) => {
    const id = M.decodeIdExec(b).id;
    const t = task(id);
    tasks.delete(id);
    t.exit();
    return M.deleteResponse(process.pid, 0, t.exitedAt ?? new Date());
  });
  h.set('Kill', () => M.empty());
  h.set('Connect', (b) => M.connectResponse(process.pid, tasks.has(M.decodeIdExec(b).id) ? process.pid : 0, 'null'));
  h.set('Shutdown', () => M.empty());
  return h;
}

/**
 * The launcher compiled from bench/null-launcher.c with the server's socket built in: static (musl-gcc when there
 * is one, as hako's launcher), else dynamic. false when no compiler could build it.
 */
function compileLauncher(out: string, sock: string): boolean {
  const source = path.join(__dirname, '..', '..', 'bench', 'null-launcher.c');
  const define = `-DNULL_SOCKET=${JSON.stringify(sock)}`;
  for (const [cc, ...flags] of [['musl-gcc', '-static'], ['cc', '-static'], ['cc']]) {
    const r = spawnSync(cc, ['-O2', ...flags, define, '-o', out, source], { stdio: 'ignore' });
    if (r.status === 0) return true;
  }
  return false;
}

/** The fallback launcher: answers `start` with the server's address and `delete` with nothing, in one sh process. */
function launcherScript(sock: string): string {
  return [
    '#!/bin/sh',
    "# The null shim launcher of hako's containerd bench (bench/null-shim.ts): a measuring instrument, runs nothing.",
    'for a; do',
    '  case $a in',
    `    start) printf 'unix://%s' '${sock}' >address && printf 'unix://%s' '${sock}'; exit ;;`,
    '    delete) exit 0 ;;',
    '  esac',
    'done',
    "echo 'null shim: start or delete expected' >&2",
    'exit 1',
    '',
  ].join('\n');
}

/**
 * Put the null shim's launcher in binDir (a directory on the bench containerd's PATH) and start its server on
 * sock; resolves once the server listens. The caller stops the server (kill its pid) when done.
 */
export async function installNullShim(binDir: string, sock: string): Promise<ChildProcess> {
  const launcher = path.join(binDir, NULL_BINARY);
  if (!compileLauncher(launcher, sock)) {
    process.stderr.write(
      "null shim: no C compiler built bench/null-launcher.c: its launcher is a POSIX sh, slower than hako's native one (the floor is then no floor)\n",
    );
    fs.writeFileSync(launcher, launcherScript(sock), { mode: 0o755 });
  }
  const server = spawn(process.execPath, [__filename, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('exit', (code) => reject(new Error(`null shim server exited (${code}) before listening`)));
    server.stdout!.once('data', () => resolve());
  });
  server.removeAllListeners('exit');
  return server;
}

if (require.main === module) {
  const sock = process.argv[2];
  if (!sock) {
    process.stderr.write('usage: node null-shim.js SOCKET\n');
    process.exit(2);
  }
  const services: Services = new Map([[M.TASK_SERVICE, nullHandlers()]]);
  fs.rmSync(sock, { force: true });
  net.createServer((conn) => serveConnection(conn, services)).listen(sock, () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => {
    fs.rmSync(sock, { force: true });
    process.exit(0);
  });
}
