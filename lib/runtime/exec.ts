// Exec: an additional process in a running container, entered by the init helper (never a fork of Node).
import * as fs from 'fs';
import * as path from 'path';
import { HakoError, invalidField } from '../errors';
import { trace } from '../log';
import { addon } from '../native/addon';
import { validateProcess } from '../oci/validate';
import { checkPlanMessage } from '../oci/plan-size';
import type { Process } from '../oci/types';
import { execPlanMessage } from '../plan/messages';
import { pidFileError, validateId, writeAtomic } from '../state/store';
import { defaultCacheDir } from './cache-dir';
import { Container } from './container';
import { cgroupModule, enterModule, type RuntimeContext } from './context';
import { execConversation, forwardInitFd, sendPlan } from './control';
import { noPreserveFds, type ExecOptions } from './options';
import { sendPidfd } from './pidfd-socket';
import { isAlive, namespacesToJoin } from './proc';
import { compileProcessSeccomp, sendSeccompListener } from './seccomp-support';

/**
 * Run an additional process in a running container: it joins every namespace and the cgroup of the
 * container (a native child does the setns) and gets the container's seccomp filter.
 */
export async function exec(rt: RuntimeContext, id: string, proc: Process, opts: ExecOptions = {}): Promise<Container> {
  validateId(id);
  validateProcess(proc, 'process');
  const s = rt.loadLive(id);
  if (s.status === 'stopped') throw new HakoError('cannot exec in a stopped container');
  if (s.status === 'paused' && !opts.ignorePaused)
    throw new HakoError('cannot exec in a paused container (ignorePaused; hako exec --ignore-paused)');
  if (proc.terminal && !opts.consoleSocket && !opts.onConsole)
    throw new HakoError('consoleSocket: a terminal was requested, so a console socket is required', {
      field: 'consoleSocket',
    });
  if (proc.apparmorProfile) throw invalidField('process.apparmorProfile', 'AppArmor is not enabled on this host');
  if (proc.selinuxLabel) throw invalidField('process.selinuxLabel', 'SELinux is not enabled on this host');
  const passFds = enterModule().checkPassFds(opts.passFds ?? noPreserveFds(opts), 'passFds');
  const preserveFds = passFds.length;
  const seccomp = compileProcessSeccomp(s.config, rt.log, defaultCacheDir());
  const fds: number[] = [];
  try {
    const [parentEnd, childEnd] = addon().seqpacketPair();
    fds.push(parentEnd, childEnd);
    const target = addon().pidfdOpen(s.pid!);
    fds.push(target);
    if (!isAlive(s.pid, s.pidStartTime)) throw new HakoError('container not running', { code: 'ESRCH' });
    const manager = rt.cgroups.manager(s);
    // Paused (ignorePaused): the process goes into the frozen cgroup and stays frozen until resume, as runc's
    // does. It must not join the cgroup itself: frozen before its exec of hako-init, it held the spawn's
    // close-on-exec error pipe open and Node's thread blocked in that read for ever. This process moves it
    // in once it runs hako-init, and does not wait for an exec that comes only at resume.
    const paused = s.status === 'paused';
    if (paused && (proc.terminal || seccomp?.listenerPath))
      throw new HakoError(
        'cannot exec with a terminal or a seccomp agent in a paused container: its process stays frozen until resume, so neither could be handed over',
      );
    const selfJoin =
      !paused &&
      cgroupModule().initJoinsCgroups(!!(s.config.linux?.namespaces ?? []).some((n) => n.type === 'user' && !n.path));
    const subDirs = opts.subCgroups ? cgroupModule().subCgroupDirs(manager.paths(), opts.subCgroups) : undefined;
    // The init joins the cgroups and namespaces and forks into the pid namespace itself: nothing that
    // enters the container is a fork of Node (src-native/init/enter.cc).
    const spawned = enterModule().spawnInit({
      run: { kind: 'exec' },
      cgroupFiles: selfJoin
        ? subDirs
          ? cgroupModule().procsFilesOf(subDirs)
          : cgroupModule().procsFiles(manager)
        : undefined,
      stdio: opts.stdio,
      passFds,
      plan: childEnd,
      target: { pidfd: target, flags: namespacesToJoin(s.pid!) },
      refork: true,
    });
    const container = new Container(id, spawned.pid, spawned.pidfd, true);
    trace('exec: spawned');
    try {
      if (!selfJoin && subDirs) cgroupModule().joinDirs(subDirs, spawned.pid);
      else if (!selfJoin) manager.addProcess(spawned.pid);
      const planMessage = execPlanMessage(proc, !!seccomp?.listenerPath, {
        preserveFds,
        seccomp: seccomp ?? undefined,
        ...rt.capabilityExtras(s.config),
      });
      checkPlanMessage(planMessage);
      await sendPlan(parentEnd, planMessage);
      trace('exec: plan sent');
      fs.closeSync(childEnd);
      fds.splice(fds.indexOf(childEnd), 1);
      // Paused: frozen now, it executes at resume; nothing to hand over (no terminal, no agent), so no wait.
      if (!paused)
        await execConversation(parentEnd, (name, fds) =>
          forwardInitFd(name, fds, {
            seccomp: (fd) => sendSeccompListener(s.config, s, fd, 'running', spawned.pid),
            consoleSocket: opts.consoleSocket,
            onConsole: opts.onConsole,
          }),
        );
      if (opts.pidfdSocket) sendPidfd(opts.pidfdSocket, spawned.pidfd, 'setns');
    } catch (e) {
      try {
        container.signal(9);
      } catch {
        /* gone */
      }
      await container.wait();
      throw e;
    }
    if (opts.pidFile) {
      try {
        writeAtomic(path.resolve(opts.pidFile), String(spawned.pid), 0o644);
      } catch (e) {
        // As runc: a process whose pid the caller cannot learn is not left running.
        container.signal(9);
        await container.wait();
        throw pidFileError(opts.pidFile, e);
      }
    }
    trace('exec: running');
    return container;
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}
