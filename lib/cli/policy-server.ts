// `hako policy-server --socket PATH --policy FILE`: serve containers' seccomp notifications (lib/policy).
// Runs until SIGINT/SIGTERM; SIGHUP reloads the policy file (a file that does not load keeps the old policy).
import * as fs from 'fs';
import { HakoError } from '../errors';
import type { Logger } from '../log';
import { parseArgs, type FlagSpec } from './args';

const FLAGS: FlagSpec[] = [
  { name: 'socket', alias: 's', type: 'string' },
  { name: 'policy', alias: 'p', type: 'string' },
  { name: 'group', type: 'string' },
  { name: 'user', type: 'string', multiple: true },
  { name: 'audit-log', type: 'string' },
  { name: 'window', type: 'number' },
  { name: 'sync-wakeup', type: 'boolean' },
  { name: 'check', type: 'boolean' },
  { name: 'no-keeper', type: 'boolean' },
  { name: 'release-on-exit', type: 'boolean' },
  { name: 'help', alias: 'h', type: 'boolean' },
];

const USAGE = `usage: hako policy-server --socket PATH --policy FILE [options]

Serves the seccomp notifications of containers whose linux.seccomp.listenerPath is PATH,
deciding each call with the policy in FILE (JSON or YAML, see docs/policy.md).

  --socket PATH       the unix socket to listen on (created 0700, or 0770 with --group)
  --policy FILE       the policy; SIGHUP reloads it
  --group GROUP       members of GROUP may connect (besides root)
  --user UID          this uid may connect (repeatable)
  --audit-log FILE    append audit lines there instead of stdout (when the policy has audit: true)
  --window N          notifications of one container in flight at once (default 64)
  --sync-wakeup       SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux >= 6.6)
  --check             only validate the policy file and exit
  --no-keeper         do not deposit the notify fds in hako-fd-keeper: running containers are not
                      served again after a restart (their notified calls fail with ENOSYS)
  --release-on-exit   on SIGINT/SIGTERM, have hako-fd-keeper drop the fds too (stop for good);
                      by default they wait there for the next server`;

export async function policyServerCommand(argv: string[], log: Logger): Promise<number> {
  const p = parseArgs(argv, FLAGS, 'policy-server');
  if (p.flags.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
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
  const writeAudit = (rec: object): void => {
    const line = JSON.stringify(rec) + '\n';
    if (auditFd !== undefined) fs.writeSync(auditFd, line);
    else process.stdout.write(line);
  };
  const server = new PolicyServer({
    socket,
    policyFile,
    group: p.flags.group as string | undefined,
    users,
    log: daemonLog,
    window: p.flags.window as number | undefined,
    syncWakeUp: !!p.flags['sync-wakeup'],
    keeper: !p.flags['no-keeper'],
    audit: (rec) => writeAudit(rec),
    auditSuppressed: (rec) => writeAudit(rec),
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
  await server.close({ release: !!p.flags['release-on-exit'] });
  if (auditFd !== undefined) fs.closeSync(auditFd);
  return 0;
}
