// `hako policy-server --socket PATH --policy FILE`: serve containers' seccomp notifications (lib/policy).
// Runs until SIGINT/SIGTERM; SIGHUP reloads the policy file (a file that does not load keeps the old policy).
// `hako policy seccomp-section --socket PATH`: the linux.seccomp section that sends a container's calls there.
import * as fs from 'fs';
import * as path from 'path';
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
  { name: 'host-callers', type: 'boolean' },
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
  --host-callers      also serve callers in the initial user namespace (containers without a user
                      namespace, registered by root); refused by default
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
    hostCallers: !!p.flags['host-callers'],
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
  // HAKO_NOTIFY_TRACE=1 (the bench): where the answered calls' time went, one JSON line.
  const trace = (require('../native/addon') as typeof import('../native/addon')).addon().notifyTrace();
  if (trace) process.stderr.write(`hako policy-server: trace ${JSON.stringify(trace)}\n`);
  if (auditFd !== undefined) fs.closeSync(auditFd);
  return 0;
}

const SECTION_FLAGS: FlagSpec[] = [
  { name: 'socket', alias: 's', type: 'string' },
  { name: 'metadata', type: 'string' },
  { name: 'include', type: 'string', multiple: true },
  { name: 'base', type: 'string' },
  { name: 'bundle', alias: 'b', type: 'string' },
  { name: 'help', alias: 'h', type: 'boolean' },
];

const POLICY_USAGE = `usage: hako policy seccomp-section --socket PATH [options]

Prints the linux.seccomp section of config.json that sends a container's privileged calls
(mount, umount2, device mknod, sethostname, ...) to the policy server listening on PATH.

  --socket PATH       the policy server's socket (linux.seccomp.listenerPath; made absolute)
  --metadata STR      linux.seccomp.listenerMetadata (matched by profiles' match.metadata)
  --include FAMILY    also notify setxattr or chown (repeatable, or comma-separated)
  --base default      extend hako's default seccomp profile (for the bundle's bounding
                      capabilities, or hako spec's defaults) instead of allowing everything else
  --bundle DIR        write the section into DIR/config.json instead of printing it`;

/** `hako policy <subcommand>`: tools around the policy server that need no running server. */
export async function policyCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(POLICY_USAGE + '\n');
    return 0;
  }
  if (sub !== 'seccomp-section') throw new HakoError(`policy: unknown subcommand ${sub} (known: seccomp-section)`, { field: 'policy' });
  const p = parseArgs(rest, SECTION_FLAGS, 'policy seccomp-section');
  if (p.flags.help) {
    process.stdout.write(POLICY_USAGE + '\n');
    return 0;
  }
  const socket = p.flags.socket as string | undefined;
  if (!socket) throw new HakoError('policy seccomp-section: --socket PATH is required', { field: '--socket' });
  const include = ((p.flags.include as string[] | undefined) ?? []).flatMap((x) => x.split(',')).filter(Boolean);
  for (const f of include)
    if (f !== 'setxattr' && f !== 'chown') throw new HakoError(`policy seccomp-section: --include: unknown family ${f} (setxattr, chown)`, { field: '--include' });
  const base = p.flags.base as string | undefined;
  if (base !== undefined && base !== 'default') throw new HakoError(`policy seccomp-section: --base: only "default" is known, got ${base}`, { field: '--base' });
  const { policySeccompSection } = require('../policy') as typeof import('../policy');
  const bundle = p.flags.bundle as string | undefined;
  const configPath = bundle ? path.join(bundle, 'config.json') : undefined;
  const spec = configPath ? (JSON.parse(fs.readFileSync(configPath, 'utf8')) as import('../oci/types').Spec) : undefined;
  let baseProfile: import('../oci/types').LinuxSeccomp | undefined;
  if (base === 'default') {
    const { defaultSeccompProfile } = require('../seccomp') as typeof import('../seccomp');
    const { defaultSpec } = require('../oci/default-spec') as typeof import('../oci/default-spec');
    const caps = spec?.process?.capabilities?.bounding ?? defaultSpec().process!.capabilities!.bounding!;
    baseProfile = defaultSeccompProfile(caps);
  }
  const section = policySeccompSection(path.resolve(socket), {
    metadata: p.flags.metadata as string | undefined,
    include: include as ('setxattr' | 'chown')[],
    base: baseProfile,
  });
  if (!configPath || !spec) {
    process.stdout.write(JSON.stringify(section, null, 2) + '\n');
    return 0;
  }
  spec.linux = { ...(spec.linux ?? {}), seccomp: section };
  const tmp = `${configPath}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(spec, null, 2) + '\n');
  fs.renameSync(tmp, configPath);
  return 0;
}
