// `create` and `run` (foreground, or --detach): a container from a bundle; the foreground run forwards signals,
// relays a terminal, and returns the process's status.
import * as path from 'path';
import { trace } from '../../log';
import { parseVerb, requireId, str } from '../args';
import type { CliContext } from '../context';
import { preserveArgs } from '../inherited-fds';

export async function createOrRun(cli: CliContext, argv: string[], command: string): Promise<number> {
  const p = parseVerb(command, argv);
  const id = requireId(p, command);
  const opts = {
    bundle: str(p, 'bundle') ?? process.cwd(),
    // crun's --config: a config file other than <bundle>/config.json, relative to the caller's directory
    config: str(p, 'config') === undefined ? undefined : path.resolve(str(p, 'config')!),
    pidFile: str(p, 'pid-file'),
    consoleSocket: str(p, 'console-socket'),
    pidfdSocket: str(p, 'pidfd-socket'),
    noPivot: !!p.flags['no-pivot'],
    noNewKeyring: !!p.flags['no-new-keyring'],
    ...preserveArgs(p.flags['preserve-fds'] as number | undefined),
  };
  const rt = cli.runtime();
  if (command === 'create') {
    await rt.create(id, opts);
    return 0;
  }
  if (p.flags.detach) {
    await rt.run(id, opts);
    return 0;
  }
  // A terminal without --console-socket: hako holds the pty and relays it to its own stdio, as runc does.
  const relay = opts.consoleSocket
    ? undefined
    : (require('../terminal') as typeof import('../terminal')).consoleRelay();
  const c = await rt.run(id, { ...opts, callerTerminal: true, onConsole: relay && ((fd: number) => relay.attach(fd)) });
  // Foreground: forward signals to the container, return its status, clean up.
  const forward = (sig: NodeJS.Signals) => {
    try {
      c.signal(require('os').constants.signals[sig]);
    } catch {
      /* already gone */
    }
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
  for (const s of sigs) process.on(s, forward);
  const st = await c.wait();
  await relay?.finish();
  trace('container exited');
  for (const s of sigs) process.removeListener(s, forward);
  if (!p.flags.keep) await rt.delete(id, { force: true });
  trace('deleted');
  return st.status;
}
