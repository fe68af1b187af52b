// `hako policy-server --socket PATH --policy FILE`: serve containers' seccomp notifications (lib/policy).
// Runs until SIGINT/SIGTERM; SIGHUP reloads the policy file (a file that does not load keeps the old policy).
import * as fs from 'fs';
import { HakoError } from '../errors';
import type { Logger } from '../log';
import { parseVerb } from './verbs';

export async function policyServerCommand(argv: string[], log: Logger): Promise<number> {
  // Its flags and help text are in ./verbs (hako policy-server --help).
  const p = parseVerb('policy-server', argv);
  const policyFile = p.flags.policy as string | undefined;
  if (!policyFile) throw new HakoError('policy-server: --policy FILE is required', { field: '--policy' });
  const { PolicyServer, loadPolicy } = require('../policy') as typeof import('../policy');
  if (p.flags.check) {
    const pol = loadPolicy(policyFile);
    process.stdout.write(`${policyFile}: ok, ${pol.profiles.length} profile(s)\n`);
    return 0;
  }
  const socket = p.flags.socket as string | undefined;
  if (!socket) throw new HakoError('policy-server: --socket PATH is required', { field: '--socket' });
  const users = ((p.flags.user as string[] | undefined) ?? []).map((u) => {
    if (!/^\d+$/.test(u)) throw new HakoError(`policy-server: --user: a numeric uid is required, got ${u}`, { field: '--user' });
    return Number(u);
  });
  let auditFd: number | undefined;
  const auditFile = p.flags['audit-log'] as string | undefined;
  if (auditFile) auditFd = fs.openSync(auditFile, 'a', 0o600);
  // A daemon: what happens to containers (info) and what went wrong (errors) is shown on stderr too; the
  // CLI logger already prints warnings there.
  const daemonLog: Logger = {
    debug: (m) => log.debug(m),
    info: (m) => {
      log.info(m);
      process.stderr.write(`hako: ${m}\n`);
    },
    warn: (m) => log.warn(m),
    error: (m) => {
      log.error(m);
      process.stderr.write(`hako: error: ${m}\n`);
    },
  };
  const server = new PolicyServer({
    socket,
    policyFile,
    group: p.flags.group as string | undefined,
    users,
    log: daemonLog,
    window: p.flags.window as number | undefined,
    syncWakeUp: !!p.flags['sync-wakeup'],
    hostCallers: !!p.flags['host-callers'],
    audit: (rec) => {
      const line = JSON.stringify(rec) + '\n';
      if (auditFd !== undefined) fs.writeSync(auditFd, line);
      else process.stdout.write(line);
    },
  });
  await server.start();
  process.stderr.write(`hako policy-server: listening on ${server.socketPath}\n`);
  const onHup = () => {
    if (server.reload()) process.stderr.write(`hako policy-server: policy reloaded\n`);
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  process.off('SIGHUP', onHup);
  await server.close();
  if (auditFd !== undefined) fs.closeSync(auditFd);
  return 0;
}
