// The shim's serving mode: containerd.task.v2.Task on the listening socket `start` passed as fd 3.
// The process leaves on Shutdown with no container left, or on SIGTERM/SIGINT, removing its socket.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import type { ShimFlags } from './flags';
import { procStat } from '../runtime/proc';
import { runtimeRoot, SHIM_RECORDS } from './address';
import { sweepDeadShims } from './dead-shim';
import { TASK_SERVICE } from './messages';
import { refusePeer } from './peer';
import { Publisher } from './publisher';
import { TaskService } from './task-service';
import { serveConnection, type Services } from './ttrpc';

/** HAKO_SHIM_LOGGER_READY_TIMEOUT_MS (containerd passes its environment on): for slow boards, or tests. */
function loggerReadyTimeout(): number | undefined {
  const v = Number(process.env.HAKO_SHIM_LOGGER_READY_TIMEOUT_MS);
  return Number.isInteger(v) && v > 0 ? v : undefined;
}

const SWEEP_DELAY_MS = 1000;

export async function serveShim(f: ShimFlags, listenFd: number): Promise<void> {
  const debug = f.debug;
  // stderr is containerd's `log` FIFO of the first bundle, or nothing: a reader that went away must not kill us.
  process.stderr.on('error', () => {});
  const log = (m: string): void => {
    process.stderr.write(`${new Date().toISOString()} hako-shim[${process.pid}] ${m}\n`);
  };
  const sockPath = process.env.HAKO_SHIM_SOCKET ?? '';
  const publisher = new Publisher(process.env.TTRPC_ADDRESS, f.namespace, log);
  // eslint-disable-next-line prefer-const -- assigned once below, after the handlers; leave() may run before that
  let server: net.Server | undefined;
  let record: string | undefined;
  // HAKO_SHIM_SPARE=1: a spare for the next new group, once this group's first container started (lib/shim/spare.ts).
  const spare =
    process.env.HAKO_SHIM_SPARE === '1' && f.address
      ? (require('./spare-starter') as typeof import('./spare-starter')).spareStarter(
          f.address,
          process.argv[1],
          log,
          debug,
        )
      : undefined;
  const leave = async (code: number): Promise<void> => {
    await Promise.race([
      Promise.all([publisher.flushed(), spare?.now()]),
      new Promise((r) => setTimeout(r, 5000).unref()),
    ]);
    // The record first: the launcher must not send a new container to a shim that is leaving.
    if (record) fs.rmSync(record, { force: true });
    server?.close();
    if (sockPath) fs.rmSync(sockPath, { force: true });
    process.exit(code);
  };
  const service = new TaskService({
    namespace: f.namespace,
    runtimeRoot: runtimeRoot(f.namespace),
    publisher,
    log,
    loggerReadyTimeoutMs: loggerReadyTimeout(),
    onShutdown: () => void leave(0),
    onContainerStarted: spare?.soon,
    debug,
  });
  const handlers = service.handlers();
  if (debug) {
    for (const [name, h] of handlers)
      handlers.set(name, async (b, req) => {
        const t0 = process.hrtime.bigint();
        try {
          return await h(b, req);
        } finally {
          log(`${name} ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
        }
      });
  }
  const services: Services = new Map([[TASK_SERVICE, handlers]]);
  // The shim's death would take every container of its group with it (containerd then deletes them all): an error
  // no handler caught is logged, and the shim goes on serving the others.
  process.on('uncaughtException', (e) => log(`uncaught: ${e.stack ?? e}`));
  process.on('unhandledRejection', (e) => log(`unhandled rejection: ${(e as Error)?.stack ?? e}`));
  process.on('SIGTERM', () => void leave(0));
  process.on('SIGINT', () => void leave(0));
  server = net.createServer((conn) => {
    const refused = refusePeer(conn);
    if (refused) {
      log(`connection refused: ${refused}`);
      conn.destroy();
      return;
    }
    serveConnection(conn, services, log);
  });
  server.on('error', (e) => log(`server: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen({ fd: listenFd }, () => resolve());
  });
  // The record bin/containerd-shim-hako-v2 checks to send a group's next container here without starting Node.
  if (sockPath) {
    const dir = SHIM_RECORDS;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    record = path.join(dir, `${path.basename(sockPath)}.pid`);
    // "<pid> <start time>": the launcher tells this process from a later one of the same pid by its start time.
    fs.writeFileSync(`${record}.tmp`, `${process.pid} ${procStat(process.pid)?.startTime ?? ''}\n`);
    fs.renameSync(`${record}.tmp`, record);
  }
  // Leftovers of shims killed with no container left (dead-shim.ts), a second after this one serves: by then
  // containerd has usually sent this group's first container.
  setTimeout(
    () =>
      void sweepDeadShims().then(
        (gone) => gone.length && log(`removed a dead shim's leftovers: ${gone.join(', ')}`),
        (e: Error) => log(`sweeping dead shims: ${e.message}`),
      ),
    SWEEP_DELAY_MS,
  ).unref();
  // performance.now(): since this process started (Node's own start, loading the shim, listening).
  if (debug)
    log(`serving ${sockPath} for namespace ${f.namespace}, ${performance.now().toFixed(1)} ms after the process start`);
}
