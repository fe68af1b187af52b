// Create: a container from a bundle, configured and waiting for start in its init helper. The init is
// spawned, given its ids (userns.ts) and cgroup, sent the plan, and talked to until READY (control.ts).
import * as fs from 'fs';
import * as path from 'path';
import { HakoError, invalidField } from '../errors';
import { trace } from '../log';
import { addon } from '../native/addon';
import { checkPlanMessage } from '../oci/plan-size';
import { OCI_VERSION, type Spec } from '../oci/types';
import { validateId, writeAtomic, type StoredState } from '../state/store';
import { checkLsm, readConfig } from './bundle';
import { defaultCacheDir } from './cache-dir';
import { Container } from './container';
import {
  cgroupModule,
  enterModule,
  hasUserNamespace,
  KILL_WAIT_MS,
  planModule,
  runHookInContainer,
  runHooks,
  type RuntimeContext,
} from './context';
import { createConversation, forwardInitFd, sendPlan } from './control';
import { noPreserveFds, type CreateOptions } from './options';
import { sendPidfd } from './pidfd-socket';
import { runningInUserNamespace } from './privilege';
import { procStat } from './proc';
import { compileProcessSeccomp, sendSeccompListener } from './seccomp-support';
import { publicState } from './status';
import { testPause } from './test-pause';
import { bindSourceFds, idmapNamespaces, writeIdMaps } from './userns';

/** Create a container from a bundle: configured, waiting for start in its init helper. */
export async function create(rt: RuntimeContext, id: string, opts: CreateOptions): Promise<Container> {
  validateId(id);
  if (!opts.bundle) throw new HakoError('bundle: a bundle directory is required', { field: 'bundle' });
  const bundle = path.resolve(opts.bundle);
  const spec = readConfig(bundle, opts.config && path.resolve(opts.config));
  trace('config read');
  // `run` in the foreground without a console socket: the process uses the caller's terminal as it is.
  if (opts.callerTerminal && spec.process?.terminal && !opts.consoleSocket && !opts.onConsole)
    spec.process.terminal = false;
  const rootfs = path.resolve(bundle, spec.root!.path);
  if (!fs.existsSync(rootfs) || !fs.statSync(rootfs).isDirectory())
    throw invalidField('root.path', `rootfs ${rootfs} does not exist or is not a directory`);
  checkLsm(spec);
  if (opts.consoleSocket && !spec.process?.terminal)
    throw new HakoError('consoleSocket: given, but process.terminal is false', { field: 'consoleSocket' });
  if (spec.process?.terminal && !opts.consoleSocket && !opts.onConsole)
    throw new HakoError('consoleSocket: process.terminal is true, so a console socket is required', {
      field: 'consoleSocket',
    });
  const passFds = enterModule().checkPassFds(opts.passFds ?? noPreserveFds(opts), 'passFds');
  const preserveFds = passFds.length;
  // Socket activation (as runc): the process learns about its listeners through LISTEN_FDS / LISTEN_PID=1.
  // The CLI reads LISTEN_FDS from its environment; a library caller says so itself.
  const listenFds = opts.listenFds ?? 0;
  if (!Number.isInteger(listenFds) || listenFds < 0 || listenFds > passFds.length)
    throw new HakoError(`listenFds: ${listenFds} is not a count of the passed fds`, { field: 'listenFds' });
  if (spec.process && listenFds > 0)
    spec.process.env = [
      ...(spec.process.env ?? []).filter((e) => !/^LISTEN_(FDS|PID)=/.test(e)),
      `LISTEN_FDS=${listenFds}`,
      'LISTEN_PID=1',
    ];
  const seccomp = compileProcessSeccomp(spec, rt.log, defaultCacheDir());
  trace('seccomp compiled');

  rt.store.reserve(id);
  trace('state dir reserved');
  const cleanup: (() => void | Promise<void>)[] = [() => rt.store.remove(id)];
  const fds: number[] = [];
  try {
    return await rt.store.withLock(id, async () => {
      const cgroup = rt.cgroups.prepare(id, spec, (intent) => rt.store.saveIntent(intent));
      trace('cgroups prepared');
      testPause('cgroups');
      cleanup.push(() => cgroup.destroy());
      const userns = hasUserNamespace(spec);
      // systemd puts the init in its scope itself (StartTransientUnit with its pid, in addProcess).
      const selfJoin = cgroupModule().initJoinsCgroups(userns) && !cgroup.systemd;
      const idmaps = idmapNamespaces(spec, preserveFds, bundle);
      fds.push(...idmaps.fds);
      const pauseBeforePivot = !!(
        spec.hooks?.prestart?.length ||
        spec.hooks?.createRuntime?.length ||
        spec.hooks?.createContainer?.length
      );
      // A hybrid host's cgroup2 side, joined by this process while the init works (cgroup-support.ts
      // hybridV2Procs), where nothing can run or be made in the container before it is joined: no user namespace
      // to map first, no namespace joined by path (a fork into a pid namespace), no cgroup namespace (its root is
      // where the init is when it unshares), no hooks at the pause point.
      const lateV2Join =
        selfJoin &&
        !userns &&
        !pauseBeforePivot &&
        !(spec.linux?.namespaces ?? []).some((n) => n.path || n.type === 'cgroup')
          ? cgroup.hybridV2Procs?.()
          : undefined;
      const planOpts: Parameters<ReturnType<typeof planModule>['buildPlan']>[1] = {
        cgroupProcs: selfJoin ? cgroup.procsFiles().filter((f) => f !== lateV2Join) : undefined,
        idmapFd: idmaps.initFd,
        bundle,
        noPivot: opts.noPivot,
        noNewKeyring: opts.noNewKeyring,
        debug: rt.debug,
        pauseBeforePivot,
        console: spec.process?.terminal
          ? { rows: spec.process.consoleSize?.height ?? 0, cols: spec.process.consoleSize?.width ?? 0 }
          : undefined,
        process: { preserveFds, seccomp: seccomp ?? undefined, ...rt.capabilityExtras(spec) },
        cgroupMounts: cgroup.mountSource(),
        seccompEarly: !!seccomp?.listenerPath,
        runtimeInUserNamespace: runningInUserNamespace(),
        warn: (m) => rt.log.warn(m),
      };
      let plan = planModule().buildPlan(spec, planOpts);
      const helperId = enterModule().sealedInit().id;
      trace('plan built');
      const ctlFd = addon().listenUnix(rt.store.controlSocket(id), 0o600);
      fds.push(ctlFd);
      const [parentEnd, childEnd] = addon().seqpacketPair();
      fds.push(parentEnd, childEnd);
      const joins: [number, number][] = plan.joins.map(([p, flag]) => {
        try {
          const fd = fs.openSync(p, 'r');
          fds.push(fd);
          return [fd, flag];
        } catch (e) {
          // The errno's words, not Node's message (which repeats the call and the path).
          const words = (require('util') as typeof import('util'))
            .getSystemErrorMap()
            .get((e as NodeJS.ErrnoException).errno ?? 0)?.[1];
          throw invalidField(`linux.namespaces`, `open namespace path ${p}: ${words ?? (e as Error).message}`);
        }
      });
      // Joining a user namespace: the init makes the new namespaces once inside it (they must be its).
      const joinsUser = joins.some(([, flag]) => flag === 0x10000000);
      let spawned = enterModule().spawnInit({
        run: { kind: 'create' },
        cloneFlags: joinsUser ? 0 : plan.cloneFlags,
        unshare: joinsUser ? plan.cloneFlags : undefined,
        stdio: opts.stdio,
        passFds,
        plan: childEnd,
        ctl: ctlFd,
        extraFds: idmaps.fds,
        joins,
        // A joined pid namespace applies to children only: the init forks once more to be inside it.
        refork: joins.some(([, flag]) => flag === 0x20000000),
        waitForMaps: plan.userns,
      });
      trace('init spawned');
      // The child has its own copy of the plan socket's end now: ours must go, or an init that dies before
      // answering leaves the socket open (by us) and createConversation() waits its whole timeout instead of reading EOF.
      fds.splice(fds.indexOf(childEnd), 1);
      fs.closeSync(childEnd);
      cleanup.push(async () => {
        try {
          addon().pidfdSendSignal(spawned.pidfd, 9);
        } catch {
          /* already gone */
        }
        // Reaped through a poll with a deadline, never a blocking waitid: an init that cannot die yet (frozen
        // in a cgroup v1 freezer) must not stop the event loop, nor this create from failing.
        if (!(await reapWithin(spawned.pidfd, KILL_WAIT_MS)))
          rt.log.warn(
            `create: process ${spawned.pid} has not exited ${KILL_WAIT_MS} ms after SIGKILL (frozen outside the container's cgroup?); it is reaped when it does`,
          );
      });
      // Settled (an error, or undefined) rather than rejected: awaited once the init is READY, or by the cleanup.
      const lateJoin = lateV2Join
        ? new Promise<NodeJS.ErrnoException | undefined>((settle) =>
            fs.writeFile(lateV2Join, String(spawned.pid), (e) => settle(e ?? undefined)),
          )
        : undefined;
      // On failure, the write settles before the init is killed and its cgroups removed.
      if (lateJoin) cleanup.push(() => lateJoin.then(() => undefined));
      if (plan.userns) {
        try {
          writeIdMaps(spawned.pid, spec);
        } catch (e) {
          // spawnContinue owns these two pipe ends; without it they are ours to close (the child then
          // reads EOF, and the cleanup kills it anyway).
          fs.closeSync(spawned.syncFd!);
          fs.closeSync(spawned.errFd!);
          throw e;
        }
        const forked = addon().spawnContinue(spawned.syncFd!, spawned.errFd!);
        if (forked) {
          // The init forked into a joined pid namespace: reap the intermediate, follow the init.
          addon().waitSync(spawned.pidfd, true);
          fs.closeSync(spawned.pidfd);
          spawned = { pid: forked, pidfd: addon().pidfdOpen(forked) };
        }
      }
      if (!selfJoin) await cgroup.addProcess(spawned.pid);
      trace('init in cgroup');
      testPause('joined');
      // A new user namespace: the bind sources are opened now, in the init's mount namespace but with this
      // process's privilege, and travel with the plan (as runc does: a source the mapped root cannot reach
      // still works). A joined user namespace makes its mount namespace later, so nothing to open there yet.
      const sources = plan.userns && !joinsUser ? bindSourceFds(spec, bundle, spawned.pid) : undefined;
      if (sources?.fds.length) {
        fds.push(...sources.fds);
        // Built again with the fds' places; its warnings were given the first time.
        plan = planModule().buildPlan(spec, {
          ...planOpts,
          sourceFd: sources.index,
          warn: () => undefined,
          process: { ...planOpts.process, warn: () => undefined },
        });
      }
      checkPlanMessage(plan.message);
      await sendPlan(parentEnd, plan.message, sources?.fds, spawned.pidfd);
      const startTime = procStat(spawned.pid)?.startTime;
      const stored: StoredState = {
        ociVersion: OCI_VERSION,
        id,
        status: 'creating',
        recorded: 'creating',
        pid: spawned.pid,
        pidStartTime: startTime,
        helperId,
        bundle,
        rootfs,
        created: new Date().toISOString(),
        owner: String(process.getuid?.() ?? 0),
        annotations: spec.annotations ?? {},
        config: spec,
        cgroupPath: cgroup.path,
        cgroupCreated: cgroup.created,
        cgroupDirs: cgroup.manager.paths(),
      };
      rt.store.save(stored);
      trace('state creating saved');
      await createConversation(parentEnd, spawned.pidfd, rt.log, {
        onFd: (name, fds) => forwardFd(name, fds, stored, spec, opts),
        onPause: () => runPauseHooks(stored, spec),
      });
      trace('plan applied (READY)');
      const lateError = await lateJoin;
      if (lateError)
        throw new HakoError(`join cgroup ${lateV2Join}: ${lateError.message}`, {
          code: lateError.code,
          step: 'cgroup',
        });
      if (lateJoin) trace('cgroup2 joined');
      if (opts.pidfdSocket) sendPidfd(opts.pidfdSocket, spawned.pidfd, 'standard');
      stored.recorded = 'created';
      stored.status = 'created';
      rt.store.save(stored);
      trace('state saved');
      rt.known.set(id, stored);
      if (opts.pidFile) writeAtomic(path.resolve(opts.pidFile), String(spawned.pid), 0o644);
      rt.holdNamespace(id, spawned.pid);
      return new Container(id, spawned.pid, spawned.pidfd, true, () => rt.releaseNamespace(id));
    });
  } catch (e) {
    for (const c of cleanup.reverse()) {
      try {
        await c();
      } catch (ce) {
        rt.log.warn(`cleanup after failed create: ${(ce as Error).message}`);
      }
    }
    throw e;
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

/** An fd the init sends during create: the seccomp listener to its agent, the console's master to its socket. */
function forwardFd(
  name: string | undefined,
  fds: number[],
  stored: StoredState,
  spec: Spec,
  opts: CreateOptions,
): Promise<void> {
  return forwardInitFd(name, fds, {
    seccomp: (fd) => sendSeccompListener(spec, stored, fd),
    consoleSocket: opts.consoleSocket,
    onConsole: opts.onConsole,
  });
}

/** The hooks at the init's pause point (before pivot_root): prestart, createRuntime, createContainer. */
async function runPauseHooks(stored: StoredState, spec: Spec): Promise<void> {
  const state = publicState(stored, 'creating');
  // runtime-tools and crun give prestart hooks the "created" status (it runs at the end of create).
  await runHooks(spec.hooks?.prestart, { ...state, status: 'created' }, 'prestart');
  await runHooks(spec.hooks?.createRuntime, state, 'createRuntime');
  // runc runs them in the rootfs (it chdirs there first); still reachable by its host path before pivot_root.
  const cwd = stored.rootfs ?? path.resolve(stored.bundle, spec.root?.path ?? 'rootfs');
  for (const [i, h] of (spec.hooks?.createContainer ?? []).entries())
    await runHookInContainer(h, state, 'createContainer', i, stored.pid!, false, { cwd });
}

/**
 * Reap our child behind `pidfd` (then close it) once it exits; false if it has not within `ms`. The watch
 * then stays, unreferenced, and reaps it whenever it does exit: no zombie, no blocked event loop.
 */
function reapWithin(pidfd: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      addon().refWatch(watch, false);
      resolve(false);
    }, ms);
    const watch = addon().watchExit(pidfd, true, () => {
      clearTimeout(timer);
      fs.closeSync(pidfd);
      resolve(true);
    });
  });
}
