// `hako policy-server --socket PATH --policy FILE`: serve containers' seccomp notifications (lib/policy).
// Runs until SIGINT/SIGTERM; SIGHUP reloads the policy file (a file that does not load keeps the old policy).
// `hako policy seccomp-section --socket PATH`: the linux.seccomp section that sends a container's calls there.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../../errors';
import type { Logger } from '../../log';
import { parseVerb } from '../args';
import { verbHelp } from '../output';

export async function policyServerCommand(argv: string[], log: Logger): Promise<number> {
  // Its flags are in ../args and its help text in ../output (hako policy-server --help).
  const p = parseVerb('policy-server', argv);
  const policyFile = p.flags.policy as string | undefined;
  if (!policyFile) throw new HakoError('policy-server: --policy FILE is required', { field: '--policy' });
  const { PolicyServer, loadPolicy } = require('../../policy') as typeof import('../../policy');
  if (p.flags.check) {
    const pol = loadPolicy(policyFile);
    process.stdout.write(`${policyFile}: ok, ${pol.profiles.length} profile(s)\n`);
    return 0;
  }
  const socket = p.flags.socket as string | undefined;
  if (!socket) throw new HakoError('policy-server: --socket PATH is required', { field: '--socket' });
  const users = ((p.flags.user as string[] | undefined) ?? []).map((u) => {
    if (!/^\d+$/.test(u))
      throw new HakoError(`policy-server: --user: a numeric uid is required, got ${u}`, { field: '--user' });
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
  const trace = (require('../../native/addon') as typeof import('../../native/addon')).addon().notifyTrace();
  if (trace) process.stderr.write(`hako policy-server: trace ${JSON.stringify(trace)}\n`);
  if (auditFd !== undefined) fs.closeSync(auditFd);
  return 0;
}

/** `hako policy <subcommand>`: tools around the policy server that need no running server. */
export async function policyCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === 'help') {
    process.stdout.write(verbHelp('policy') + '\n');
    return 0;
  }
  if (sub !== 'seccomp-section')
    throw new HakoError(`policy: unknown subcommand ${sub} (known: seccomp-section)`, { field: 'policy' });
  // Its flags and help text are in ./verbs (hako policy --help).
  const p = parseVerb('policy', rest);
  const socket = p.flags.socket as string | undefined;
  if (!socket) throw new HakoError('policy seccomp-section: --socket PATH is required', { field: '--socket' });
  const include = ((p.flags.include as string[] | undefined) ?? []).flatMap((x) => x.split(',')).filter(Boolean);
  for (const f of include)
    if (f !== 'setxattr' && f !== 'chown')
      throw new HakoError(`policy seccomp-section: --include: unknown family ${f} (setxattr, chown)`, {
        field: '--include',
      });
  const base = p.flags.base as string | undefined;
  if (base !== undefined && base !== 'default')
    throw new HakoError(`policy seccomp-section: --base: only "default" is known, got ${base}`, { field: '--base' });
  const { policySeccompSection } = require('../../policy') as typeof import('../../policy');
  const bundle = p.flags.bundle as string | undefined;
  const configPath = bundle ? path.join(bundle, 'config.json') : undefined;
  const spec = configPath
    ? (JSON.parse(fs.readFileSync(configPath, 'utf8')) as import('../../oci/types').Spec)
    : undefined;
  let baseProfile: import('../../oci/types').LinuxSeccomp | undefined;
  if (base === 'default') {
    const { defaultSeccompProfile } = require('../../seccomp') as typeof import('../../seccomp');
    const { defaultSpec } = require('../../default-spec') as typeof import('../../default-spec');
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
