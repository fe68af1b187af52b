// Who starts spares (lib/shim/spare.ts): a server with HAKO_SHIM_SPARE=1 in its environment, once its group's first
// container started, if no spare of its containerd is alive (its socket accepts). The check and the bind of the
// spare's socket happen under the records lock (lib/shim/dead-shim.ts); the starter passes the bound socket as the
// spare's fd 3, so from then on it accepts (into its backlog while the spare boots) and a second check finds it.
// The spare runs in its own session with stdio on /dev/null; nobody waits for it.
import * as fs from 'fs';
import { addon } from '../native/addon';
import { canConnect, withRecordsLock } from './dead-shim';
import { spawnServer } from './server-process';
import { spareSocketPath } from './spare-protocol';

/**
 * How long after its group's first container started a server starts a spare: the calls that follow a start
 * (containerd's Wait, a short container's Delete and Shutdown) then do not share the 2 cores of a board with a Node
 * start, nor wait for the fork. A server that leaves before starts it as it leaves.
 */
const SPARE_START_DELAY_MS = 500;

/** Variables of a server that a spare it starts must not inherit. */
export const SERVER_ONLY_ENV = ['HAKO_SHIM_SOCKET', 'HAKO_SHIM_BOOT'];

/**
 * Start a spare for containerd at `address` unless one is alive (its socket accepts). `script` is the shim's
 * (process.argv[1]). Returns the new spare's pid, or undefined when one was alive or none can be started.
 */
export async function ensureSpare(
  address: string,
  script: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number | undefined> {
  if (!addon().dup2) return undefined; // an addon built before dup2: the spare could not take a log FIFO as stderr
  const sock = spareSocketPath(address);
  const listenFd = await withRecordsLock(async () => {
    if (await canConnect(sock)) return undefined;
    fs.rmSync(sock, { force: true });
    return addon().listenUnix(sock, 0o600);
  });
  if (listenFd === undefined) return undefined;
  try {
    const spareEnv = { ...env };
    for (const k of SERVER_ONLY_ENV) delete spareEnv[k];
    const args = ['-address', address, 'spare'];
    return spawnServer({ script, args, cwd: '/', stderr: 'ignore', listenFd, env: spareEnv });
  } finally {
    fs.closeSync(listenFd);
  }
}

/**
 * A server's spare start: soon() after its first container started (once; later calls do nothing), now() when it
 * leaves (the start if it is still to come; resolves when it is done).
 */
export function spareStarter(
  address: string,
  script: string,
  log: (m: string) => void,
  debug: boolean,
): { soon: () => void; now: () => Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let started: Promise<void> | undefined;
  const start = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    started ??= ensureSpare(address, script).then(
      (pid) => {
        if (pid && debug) log(`started spare ${pid}`);
      },
      (e: unknown) => log(`spare: ${(e as Error)?.message ?? e}`),
    );
    return started;
  };
  return {
    soon: () => {
      if (!timer && !started) timer = setTimeout(() => void start(), SPARE_START_DELAY_MS);
    },
    now: () => (timer || started ? start() : Promise.resolve()),
  };
}
