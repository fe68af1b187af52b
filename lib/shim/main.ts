// containerd-shim-hako-v2: containerd's runtime v2 shim for hako (runtime_type io.containerd.hako.v2).
//   start   prints the ttrpc address of the group's shim, starting a server for a new group
//   delete  cleans one container up after a shim is gone (or after every removal, as containerd 1.5+ calls it)
//   (none)  serves containerd.task.v2.Task on the socket passed as fd 3 (what `start` spawns)
//   spare   waits, started, for the next new group of containerd -address (HAKO_SHIM_SPARE=1; lib/shim/spare.ts)
// Modules are loaded per mode: `delete` with nothing to do loads no more than this file.
import * as fs from 'fs';
import * as path from 'path';
import { FlagError, parseFlags, type ShimFlags } from './flags';
import { groupOf, runtimeRoot, socketPath, SOCKET_DIR } from './address';

// Loaded when a mode needs them: the routine `delete` and `start` load little more than this file.
const protoModule = (): typeof import('./proto') => require('./proto');
const messagesModule = (): typeof import('./messages') => require('./messages');
const rootfsModule = (): typeof import('./rootfs') => require('./rootfs');
const serverModule = (): typeof import('./server') => require('./server');
const runtimeModule = (): typeof import('../runtime/runtime') => require('../runtime/runtime');
const deadShimModule = (): typeof import('./dead-shim') => require('./dead-shim');
const groupSocketModule = (): typeof import('./group-socket') => require('./group-socket');
const spareModule = (): typeof import('./spare') => require('./spare');
const serverProcessModule = (): typeof import('./server-process') => require('./server-process');

function fail(msg: string): never {
  process.stderr.write(`containerd-shim-hako-v2: ${msg}\n`);
  process.exit(1);
}

/** Shim options from containerd: runtimeoptions.v1.Options {type_url = 1, config_path = 2} inside an Any, on stdin. */
function readOptions(stdin: Buffer): { configPath: string } {
  if (stdin.length === 0) return { configPath: '' };
  const { decodeAny, Fields } = protoModule();
  try {
    const any = decodeAny(stdin);
    if (!any || !/runtimeoptions\.v1\.Options$/.test(any.typeUrl)) return { configPath: '' };
    return { configPath: new Fields(any.value).string(2) };
  } catch {
    return { configPath: '' };
  }
}

/** The shim's own config (ConfigPath in containerd's runtime options): `group = "namespace"` puts a namespace in one shim. */
function groupsByNamespace(configPath: string): boolean {
  if (!configPath) return false;
  let text: string;
  try {
    text = fs.readFileSync(configPath, 'utf8');
  } catch (e) {
    fail(`options: ConfigPath ${configPath}: ${(e as Error).message}`);
  }
  const m = /^\s*group\s*=\s*"([^"]*)"/m.exec(text);
  if (m && m[1] !== 'namespace' && m[1] !== 'pod')
    fail(`${configPath}: group = "${m[1]}": expected "pod" or "namespace"`);
  return m?.[1] === 'namespace';
}

function readStdin(): Buffer {
  try {
    return fs.readFileSync(0);
  } catch {
    return Buffer.alloc(0);
  }
}

async function start(f: ShimFlags): Promise<void> {
  if (!f.id || !f.namespace || !f.address) fail('start: -id, -namespace and -address are required');
  const bundle = process.cwd();
  let annotations: Record<string, string> | undefined;
  try {
    annotations = (
      JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> }
    ).annotations;
  } catch (e) {
    fail(`start: ${bundle}/config.json: ${(e as Error).message}`);
  }
  const opts = readOptions(readStdin());
  const sock = socketPath(f.address, f.namespace, groupOf(f.id, annotations, groupsByNamespace(opts.configPath)));
  const address = `unix://${sock}`;
  const { bindGroupSocket, writeAddress } = groupSocketModule();
  const bound = await bindGroupSocket(sock);
  if (bound === 'joined') {
    writeAddress(bundle, address);
    process.stdout.write(address);
    return;
  }
  const listenFd = bound;
  writeAddress(bundle, address);
  // The server must not hold start's stdout or stderr: containerd reads both until every holder closed them.
  let log: number | 'ignore' = 'ignore';
  try {
    log = fs.openSync(path.join(bundle, 'log'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    /* no log FIFO (containerd opens it before start; not there when run by hand) */
  }
  const args = ['-namespace', f.namespace, '-id', f.id, '-address', f.address];
  if (f.publishBinary) args.push('-publish-binary', f.publishBinary);
  if (f.debug) args.push('-debug');
  serverProcessModule().spawnServer({
    script: process.argv[1],
    args,
    cwd: bundle,
    stderr: log,
    listenFd,
    env: { ...process.env, HAKO_SHIM_SOCKET: sock },
  });
  fs.closeSync(listenFd);
  if (typeof log === 'number') fs.closeSync(log);
  process.stdout.write(address);
}

async function del(f: ShimFlags): Promise<void> {
  if (!f.id || !f.namespace) fail('delete: -id and -namespace are required');
  const bundle = f.bundle || process.cwd();
  const root = runtimeRoot(f.namespace);
  // The routine case (containerd calls delete after every removal): the shim already deleted the container and
  // unmounted its rootfs. Nothing to load; the answer is runc's shim's (below), as bin/containerd-shim-hako-v2's.
  const hasState = fs.existsSync(path.join(root, f.id));
  const rootfs = rootfsModule();
  const { deleteResponse } = messagesModule();
  if (!hasState && !rootfs.isMountPoint(path.join(bundle, 'rootfs'))) {
    process.stdout.write(deleteResponse(0, 137, new Date()));
    return;
  }
  const { Runtime } = runtimeModule();
  const runtime = new Runtime({ root });
  let pid = 0;
  if (hasState) {
    try {
      pid = (await runtime.state(f.id)).pid ?? 0;
    } catch {
      /* a create that did not finish */
    }
    await runtime.delete(f.id, { force: true });
  }
  await rootfs.unmountRootfs(bundle);
  // After a shim's death, the last container of its group takes the dead shim's socket and record with it.
  const removed = await deadShimModule().removeDeadShimLeftovers(bundle, f.id, root);
  if (removed.length && f.debug) process.stderr.write(`containerd-shim-hako-v2: removed ${removed.join(', ')}\n`);
  // As runc's shim: the container was killed (or is gone), 128 + SIGKILL, now.
  process.stdout.write(deleteResponse(pid, 137, new Date()));
}

async function serve(f: ShimFlags): Promise<void> {
  const { serveShim } = serverModule();
  const { bindGroupSocket, startThreadPool, writeAddress } = groupSocketModule();
  if (process.env.HAKO_SHIM_BOOT !== '1') {
    await serveShim(f, 3);
    startThreadPool();
    return;
  }
  // Started by bin/containerd-shim-hako-v2 for a new group in place of `start` (one Node start instead of two): bind
  // the socket, write <bundle>/address, and report the address on fd 3 (the launcher's pipe), closing it once the
  // socket listens. The launcher prints it for containerd.
  delete process.env.HAKO_SHIM_BOOT;
  const sock = process.env.HAKO_SHIM_SOCKET ?? '';
  if (!sock.startsWith(SOCKET_DIR + '/')) fail('HAKO_SHIM_BOOT: HAKO_SHIM_SOCKET is not a shim socket');
  const address = `unix://${sock}`;
  const report = (): void => {
    fs.writeSync(3, address);
    fs.closeSync(3);
  };
  const bound = await bindGroupSocket(sock);
  writeAddress(process.cwd(), address);
  if (bound === 'joined') {
    report();
    process.exit(0);
  }
  await serveShim(f, bound);
  report();
  startThreadPool();
}

export async function main(argv: string[]): Promise<void> {
  let f: ShimFlags;
  try {
    f = parseFlags(argv);
  } catch (e) {
    if (e instanceof FlagError) fail(e.message);
    throw e;
  }
  if (f.version) {
    process.stdout.write('containerd-shim-hako-v2\n  Version: 0.1.0\n');
    return;
  }
  if (f.command === 'start') return start(f);
  if (f.command === 'delete') return del(f);
  if (f.command === 'spare') return spareModule().runSpare(f);
  return serve(f);
}

/**
 * Run as a command: `start` and `delete` exit when done; the server runs until Shutdown. bin/hako-shim.js calls
 * this on the bundle (dist/shim.js); dist/lib/shim/main.js run directly does the same.
 */
export function run(argv: string[]): void {
  main(argv).then(
    () => {
      if (!argv.some((a) => a === 'start' || a === 'delete')) return;
      process.exit(0);
    },
    (e: unknown) => fail((e as Error)?.message ?? String(e)),
  );
}

if (require.main === module) run(process.argv.slice(2));
