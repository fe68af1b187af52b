// The Runtime: the OCI lifecycle (create, start, state, kill, delete) plus run, list and setup, on
// the state root. The CLI is a thin layer over this class; a Node device agent uses it in-process.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError, invalidField } from '../errors';
import { createLogger, trace, type Logger } from '../log';
import { addon, type ExitResult } from '../native/addon';
import { parseSignal } from '../oci/constants';
import { validateProcess, validateSpec } from '../oci/validate';
import { checkPlanMessage } from '../oci/plan-size';
import { validateResources } from '../oci/validate-resources';
import { OCI_VERSION, type LinuxSeccomp, type SeccompAction, type Hook, type LinuxResources, type Process, type Spec, type State } from '../oci/types';
import { grantableCapabilities } from '../plan/capabilities';
import { encodeProcess, type ProcessExtras } from '../plan/process';
import { decodeMessage, Encoder, Msg, Tag } from '../plan/wire';
import { holdFd, releaseFd } from '../state/held-fds';
import { foreignError, pidFileError, StateStore, validateId, writeAtomic, type StoredState } from '../state/store';
import { errorFromMessage, notWaiting, recvOne, sendControl, sendToPathWithin } from './control';
import type { HookKind } from './hooks';
import { exeId, isAlive, namespacesToJoin, procStat } from './proc';
import type { CgroupSupport } from './cgroup-support';
import { defaultStateRoot, runningInUserNamespace } from './privilege';
import { compileProcessSeccomp, sendSeccompListener } from './seccomp-support';
import { isPermissiveAction } from '../seccomp/policy';
import { defaultCacheDir } from './cache-dir';
import { testPause } from './test-pause';
import { sendPidfd } from './pidfd-socket';

// Modules loaded on first use: a CLI process runs one verb, and state, list, kill or delete never need the
// cgroup managers, the plan builder or the hook runner (their loading was a third of `hako state`'s cost).
const cgroupModule = (): typeof import('./cgroup-support') => require('./cgroup-support');
const planModule = (): typeof import('../plan/build') => require('../plan/build');
const hooksModule = (): typeof import('./hooks') => require('./hooks');
const enterModule = (): typeof import('./enter') => require('./enter');

/** `preserveFds: N` (fds 3..3+N-1 of this process) is gone: in a Node process that range holds Node's own fds. */
function noPreserveFds(opts: object): [] {
  if ((opts as { preserveFds?: unknown }).preserveFds !== undefined)
    throw new HakoError('preserveFds: replaced by passFds, the list of fds to pass (fds 3..3+N-1 of a Node process are its own epoll, eventfd and pipes)', { field: 'preserveFds' });
  return [];
}

async function runHooks(hooks: Hook[] | undefined, state: State, kind: HookKind): Promise<void> {
  if (hooks?.length) await hooksModule().runHooks(hooks, state, kind);
}
function runHookInContainer(
  hook: Hook,
  state: State,
  kind: HookKind,
  index: number,
  initPid: number,
  resolveInContainer: boolean,
  opts?: import('./hooks').InContainerHookOptions,
): Promise<void> {
  return hooksModule().runHookInContainer(hook, state, kind, index, initPid, resolveInContainer, opts);
}

export interface RuntimeOptions {
  root?: string;
  logger?: Logger;
  debug?: boolean;
  systemdCgroup?: boolean;
  /**
   * Treat cgroup permission errors as warnings (runc's --rootless true|false). Default: unless the runtime is
   * root of the host (a root that only owns a user namespace, as under rootless podman, counts as rootless).
   */
  rootless?: boolean;
}

export interface CreateOptions {
  bundle: string;
  /** The config file, when it is not the bundle's config.json (crun's --config). */
  config?: string;
  pidFile?: string;
  consoleSocket?: string;
  /** Send a pidfd of the container's init to this AF_UNIX socket (runc's --pidfd-socket). */
  pidfdSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  /**
   * fds of this process the container gets at 3, 4, ... in this order (null: nothing at that number). Only
   * these: an fd number range would hand over whatever Node opened there (its epoll, eventfd, signal pipes).
   */
  passFds?: (number | null)[];
  /** Socket activation: the first N passed fds are listeners; the process gets LISTEN_FDS=N, LISTEN_PID=1. */
  listenFds?: number;
  /** fds for the container's stdin, stdout and stderr (library use); the caller's own by default. */
  stdio?: (number | null)[];
  /** A terminal process without a console socket uses the caller's terminal (foreground `run`). */
  callerTerminal?: boolean;
  /**
   * A terminal process without a console socket: the pty master is handed to this callback, which owns it
   * from then on (the CLI relays it to its own stdio, as runc does without --console-socket).
   */
  onConsole?: (master: number) => void;
}

export interface ExecOptions {
  consoleSocket?: string;
  /** Send a pidfd of the exec'd process to this AF_UNIX socket (runc's --pidfd-socket). */
  pidfdSocket?: string;
  pidFile?: string;
  /** As CreateOptions.passFds. */
  passFds?: (number | null)[];
  stdio?: (number | null)[];
  /** Exec even when the container is paused (the process starts frozen). */
  ignorePaused?: boolean;
  /** As CreateOptions.onConsole. */
  onConsole?: (master: number) => void;
  /**
   * runc 1.1's `exec --cgroup`: existing sub-cgroups to run the process in, controller -> path below the
   * container's cgroup ("" = the same path in every hierarchy).
   */
  subCgroups?: Record<string, string>;
}

export interface SetupOptions {
  /** CPU list ("0-1,3") the process runs on; overrides process.execCPUAffinity.final. */
  cpuAffinity?: string;
  /** "FIFO:50", "RR:10", "OTHER", "BATCH", "IDLE", "DEADLINE:runtime:deadline:period" (ns). */
  sched?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: number | null;
  /** The shell convention: the exit code, or 128 + the signal number. */
  status: number;
}

/** How long delete --force waits for a SIGKILLed init to exit. */
const KILL_WAIT_MS = 5000;

const hasUserNamespace = (spec: Spec): boolean => (spec?.linux?.namespaces ?? []).some((n) => n.type === 'user');

function toExitStatus(r: ExitResult | null): ExitStatus {
  if (!r) return { code: null, signal: null, status: 255 };
  return { code: r.code, signal: r.signal, status: r.code ?? 128 + (r.signal ?? 0) };
}

/** A container this process knows about. `wait()` resolves when its init exits. */
export class Container {
  /** This process's unreaped children, by pid: delete --force waits on their reaper instead of reaping. */
  private static readonly children = new Map<number, Container>();
  /**
   * The exit of `pid` as its reaper in this process reports it (reaping it once it has exited); undefined if it
   * is not our child.
   */
  static exitOf(pid: number): Promise<ExitStatus> | undefined {
    const c = Container.children.get(pid);
    c?.wantReap();
    return c?.exitPromise;
  }

  private readonly exitPromise: Promise<ExitStatus>;
  private resolveExit!: (s: ExitStatus) => void;
  private watchId?: number;
  private waited = false;
  private exited = false;
  /** Someone asked for the exit status: reap as soon as the process has exited. */
  private reapWanted = false;
  /** The process has exited, and is still our unreaped child (a zombie) until someone asks for its status. */
  private zombie = false;

  constructor(
    readonly id: string,
    readonly pid: number,
    private pidfd: number,
    /** This process is the init's parent, so it can reap it and learn its exit status. */
    readonly isParent: boolean,
    /** Called once the exit is known (the runtime then releases the mount namespace it held). */
    private onExit?: () => void,
  ) {
    holdFd(pidfd);
    this.exitPromise = new Promise((resolve) => (this.resolveExit = resolve));
    // One watcher from now on, which never reaps: the exit is reaped (by this pidfd, never a wait for any child) only once
    // someone asks for it (wait(), delete, delete --force through exitOf), so it is this process's one reaper.
    // A CLI that leaves without asking (create, run -d, exec -d) leaves its child unreaped: it then passes to the
    // caller's subreaper (the containerd shim, conmon), which must get the real exit status. Unreferenced until
    // wait(), so a created container does not keep Node running.
    this.watchId = addon().watchExit(
      pidfd,
      false,
      (r) => {
        this.watchId = undefined;
        if (!isParent) return this.finish(r);
        this.zombie = true;
        if (this.reapWanted) this.reap();
      },
      false,
    );
    if (isParent) Container.children.set(pid, this);
  }

  private wantReap(): void {
    // Whoever asks awaits the answer: the watch now keeps the event loop alive until the exit comes.
    if (!this.reapWanted && this.watchId !== undefined) addon().refWatch(this.watchId, true);
    this.reapWanted = true;
    if (this.zombie) this.reap();
  }

  private reap(): void {
    this.zombie = false;
    this.finish(addon().waitSync(this.pidfd, false));
  }

  private finish(r: ExitResult | null): void {
    if (Container.children.get(this.pid) === this) Container.children.delete(this.pid);
    this.closeFd();
    this.resolveExit(toExitStatus(r));
    this.exited = true;
    if (this.waited) this.afterExit();
  }

  wait(): Promise<ExitStatus> {
    this.waited = true;
    this.wantReap();
    if (this.exited) this.afterExit();
    return this.exitPromise;
  }

  /** Once the exit is known and someone waits for it: after they have heard of it, release the mount namespace (its teardown). */
  private afterExit(): void {
    const f = this.onExit;
    this.onExit = undefined;
    if (f) setImmediate(f);
  }

  /** Stop keeping the event loop alive for this container (its exit is still reaped once someone asks for it). */
  unref(): void {
    if (this.watchId !== undefined) addon().refWatch(this.watchId, false);
  }

  signal(sig: number): void {
    addon().pidfdSendSignal(this.pidfd, sig);
  }

  private closeFd(): void {
    if (this.pidfd >= 0) {
      releaseFd(this.pidfd);
      fs.closeSync(this.pidfd);
    }
    this.pidfd = -1;
  }
}

const lsmEnabled = (name: 'apparmor' | 'selinux') =>
  name === 'apparmor' ? readTrim('/sys/module/apparmor/parameters/enabled') === 'Y' : fs.existsSync('/sys/fs/selinux/enforce');

function readTrim(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** LSM labels: hako applies none yet, so asking for one on a host without that LSM is an error, not a downgrade. */
const O_PATH = 0o10000000; // the same on x86_64, aarch64 and arm (Node's fs.constants lacks it)

/**
 * O_PATH fds of the bind sources (idmapped ones excepted), opened through /proc/PID/root of the init: in its
 * mount namespace, which a bind may only take mounts from, but with the runtime's privilege. A source that
 * cannot be opened is left to the init, whose own attempt reports it (or skips an optional mount).
 */
function bindSourceFds(spec: Spec, bundle: string, initPid: number): { fds: number[]; index: (i: number) => number | undefined } {
  const fds: number[] = [];
  const slot = new Map<number, number>();
  (spec.mounts ?? []).forEach((m, i) => {
    const opts = m.options ?? [];
    const bind = m.type === 'bind' || opts.includes('bind') || opts.includes('rbind');
    if (!bind || !m.source || opts.includes('idmap') || opts.includes('ridmap') || fds.length >= 64) return;
    try {
      fds.push(fs.openSync(`/proc/${initPid}/root${path.resolve(bundle, m.source)}`, O_PATH));
      slot.set(i, fds.length - 1);
    } catch {
      /* see above */
    }
  });
  return { fds, index: (i) => slot.get(i) };
}

function checkLsm(spec: Spec): void {
  if (spec.process?.apparmorProfile)
    throw invalidField('process.apparmorProfile', lsmEnabled('apparmor') ? 'AppArmor profiles are not supported by this hako build' : 'AppArmor is not enabled on this host');
  if (spec.process?.selinuxLabel)
    throw invalidField('process.selinuxLabel', lsmEnabled('selinux') ? 'SELinux labels are not supported by this hako build' : 'SELinux is not enabled on this host');
}

function readConfig(bundle: string, configFile?: string): Spec {
  let text: string;
  try {
    if (!fs.statSync(bundle).isDirectory()) throw new HakoError(`bundle: ${bundle} is not a directory`, { field: 'bundle' });
  } catch (e) {
    if (e instanceof HakoError) throw e;
    throw new HakoError(`bundle: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `bundle ${bundle} does not exist` : (e as Error).message}`, { field: 'bundle' });
  }
  try {
    text = fs.readFileSync(configFile ?? path.join(bundle, 'config.json'), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (configFile) throw new HakoError(`config: ${code === 'ENOENT' ? `${configFile} does not exist` : (e as Error).message}`, { field: 'config' });
    if (code === 'ENOENT') throw new HakoError(`bundle: config.json not found in ${bundle}`, { field: 'bundle' });
    throw new HakoError(`bundle: read ${bundle}/config.json: ${(e as Error).message}`, { field: 'bundle' });
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    // V8's parser is iterative today, but one that recursed would end in a RangeError: say what it means.
    if (e instanceof RangeError) throw new HakoError('config.json: nested too deeply', { field: 'config.json' });
    throw new HakoError(`config.json: invalid JSON: ${(e as Error).message.slice(0, 200)}`, { field: 'config.json' });
  }
  validateSpec(spec);
  return spec;
}

/** Parse the --sched shortcut into a runtime-spec scheduler object. */
export function parseSched(s: string): Process['scheduler'] {
  const [policy, ...rest] = s.split(':');
  const name = `SCHED_${policy.toUpperCase()}`;
  const nums = rest.map((x) => {
    if (!/^\d+$/.test(x)) throw invalidField('sched', `invalid number "${x}" in "${s}"`);
    return Number(x);
  });
  if (name === 'SCHED_DEADLINE') return { policy: name, runtime: nums[0], deadline: nums[1], period: nums[2] ?? nums[1] };
  if (name === 'SCHED_FIFO' || name === 'SCHED_RR') return { policy: name, priority: nums[0] ?? 1 };
  if (name === 'SCHED_OTHER' || name === 'SCHED_BATCH' || name === 'SCHED_IDLE') return { policy: name, nice: nums[0] ?? 0 };
  throw invalidField('sched', `unknown policy "${policy}" (FIFO, RR, DEADLINE, OTHER, BATCH, IDLE)`);
}

export class Runtime {
  readonly store: StateStore;
  readonly log: Logger;
  private readonly debug: boolean;
  private readonly rootless?: boolean;
  private readonly systemdCgroup: boolean;
  private cgroupSupport?: CgroupSupport;
  /** States of the containers this instance created: setup() on them skips re-reading state.json. */
  private readonly known = new Map<string, StoredState>();
  /**
   * The mount namespace of each container this instance created, held open (one fd). When a container's last
   * process exits, the kernel unmounts its whole mount tree (an RCU grace period, ~0.15 ms here) before the
   * parent learns of the exit; holding the namespace lets wait() resolve first, and the teardown follows when
   * the fd is closed: right after the exit is reported, or at delete(). (Holding ipc, uts and net as well
   * measured no better: their teardown is already deferred by the kernel.)
   */
  private readonly heldNamespaces = new Map<string, number>();

  constructor(opts: RuntimeOptions = {}) {
    this.store = new StateStore(opts.root ?? defaultStateRoot());
    this.rootless = opts.rootless;
    this.log = opts.logger ?? createLogger({ debug: opts.debug });
    this.debug = opts.debug ?? false;
    if (opts.systemdCgroup && !fs.existsSync('/run/systemd/system'))
      throw new HakoError('systemdCgroup: systemd is not running on this host; use the cgroupfs driver (omit the flag)', { field: 'systemdCgroup' });
    this.systemdCgroup = !!opts.systemdCgroup;
  }

  private get cgroups(): CgroupSupport {
    return (this.cgroupSupport ??= new (cgroupModule().CgroupSupport)(this.log, this.rootless, this.systemdCgroup));
  }

  /** Create a container from a bundle: configured, waiting for start in its init helper. */
  async create(id: string, opts: CreateOptions): Promise<Container> {
    validateId(id);
    if (!opts.bundle) throw new HakoError('bundle: a bundle directory is required', { field: 'bundle' });
    const bundle = path.resolve(opts.bundle);
    const spec = readConfig(bundle, opts.config && path.resolve(opts.config));
    trace('config read');
    // `run` in the foreground without a console socket: the process uses the caller's terminal as it is.
    if (opts.callerTerminal && spec.process?.terminal && !opts.consoleSocket && !opts.onConsole) spec.process.terminal = false;
    const rootfs = path.resolve(bundle, spec.root!.path);
    if (!fs.existsSync(rootfs) || !fs.statSync(rootfs).isDirectory())
      throw invalidField('root.path', `rootfs ${rootfs} does not exist or is not a directory`);
    checkLsm(spec);
    if (opts.consoleSocket && !spec.process?.terminal)
      throw new HakoError('consoleSocket: given, but process.terminal is false', { field: 'consoleSocket' });
    if (spec.process?.terminal && !opts.consoleSocket && !opts.onConsole)
      throw new HakoError('consoleSocket: process.terminal is true, so a console socket is required', { field: 'consoleSocket' });
    const passFds = enterModule().checkPassFds(opts.passFds ?? noPreserveFds(opts), 'passFds');
    const preserveFds = passFds.length;
    // Socket activation (as runc): the process learns about its listeners through LISTEN_FDS / LISTEN_PID=1.
    // The CLI reads LISTEN_FDS from its environment; a library caller says so itself.
    const listenFds = opts.listenFds ?? 0;
    if (!Number.isInteger(listenFds) || listenFds < 0 || listenFds > passFds.length)
      throw new HakoError(`listenFds: ${listenFds} is not a count of the passed fds`, { field: 'listenFds' });
    if (spec.process && listenFds > 0)
      spec.process.env = [...(spec.process.env ?? []).filter((e) => !/^LISTEN_(FDS|PID)=/.test(e)), `LISTEN_FDS=${listenFds}`, 'LISTEN_PID=1'];
    const seccomp = compileProcessSeccomp(spec, this.log, defaultCacheDir());
    trace('seccomp compiled');

    this.store.reserve(id);
    trace('state dir reserved');
    const cleanup: (() => void | Promise<void>)[] = [() => this.store.remove(id)];
    const fds: number[] = [];
    try {
      return await this.store.withLock(id, async () => {
        const cgroup = this.cgroups.prepare(id, spec, (intent) => this.store.saveIntent(intent));
        trace('cgroups prepared');
        testPause('cgroups');
        cleanup.push(() => cgroup.destroy());
        const userns = hasUserNamespace(spec);
        // systemd puts the init in its scope itself (StartTransientUnit with its pid, in addProcess).
        const selfJoin = cgroupModule().initJoinsCgroups(userns) && !cgroup.systemd;
        const idmaps = this.idmapNamespaces(spec, preserveFds, bundle);
        fds.push(...idmaps.fds);
        const planOpts: Parameters<ReturnType<typeof planModule>['buildPlan']>[1] = {
          cgroupProcs: selfJoin ? cgroup.procsFiles() : undefined,
          idmapFd: idmaps.initFd,
          bundle,
          noPivot: opts.noPivot,
          noNewKeyring: opts.noNewKeyring,
          debug: this.debug,
          pauseBeforePivot: !!(spec.hooks?.prestart?.length || spec.hooks?.createRuntime?.length || spec.hooks?.createContainer?.length),
          console: spec.process?.terminal ? { rows: spec.process.consoleSize?.height ?? 0, cols: spec.process.consoleSize?.width ?? 0 } : undefined,
          process: { preserveFds, seccomp: seccomp ?? undefined, ...this.capabilityExtras(spec) },
          cgroupMounts: cgroup.mountSource(),
          seccompEarly: !!seccomp?.listenerPath,
          runtimeInUserNamespace: runningInUserNamespace(),
          warn: (m) => this.log.warn(m),
        };
        let plan = planModule().buildPlan(spec, planOpts);
        const helperId = enterModule().sealedInit().id;
        trace('plan built');
        const ctlFd = addon().listenUnix(this.store.controlSocket(id), 0o600);
        fds.push(ctlFd);
        const [parentEnd, childEnd] = addon().seqpacketPair();
        fds.push(parentEnd, childEnd);
        const joins: [number, number][] = plan.joins.map(([p, flag], i) => {
          try {
            const fd = fs.openSync(p, 'r');
            fds.push(fd);
            return [fd, flag];
          } catch (e) {
            // The errno's words, not Node's message (which repeats the call and the path).
            const words = (require('util') as typeof import('util')).getSystemErrorMap().get((e as NodeJS.ErrnoException).errno ?? 0)?.[1];
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
        // answering leaves the socket open (by us) and converse() waits its whole timeout instead of reading EOF.
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
            this.log.warn(`create: process ${spawned.pid} has not exited ${KILL_WAIT_MS} ms after SIGKILL (frozen outside the container's cgroup?); it is reaped when it does`);
        });
        if (plan.userns) {
          try {
            this.writeIdMaps(spawned.pid, spec);
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
          plan = planModule().buildPlan(spec, { ...planOpts, sourceFd: sources.index, warn: () => undefined, process: { ...planOpts.process, warn: () => undefined } });
        }
        checkPlanMessage(plan.message);
        try {
          addon().sendMessage(parentEnd, plan.message, sources?.fds);
        } catch (e) {
          // EPIPE/ECONNRESET: the init is already gone (the socket's other end closed with it).
          const errno = (e as { errno?: number }).errno; // the addon's: positive
          if (errno === 32 || errno === 104) throw await initExited(spawned.pidfd);
          throw e;
        }
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
        this.store.save(stored);
        trace('state creating saved');
        await this.converse(parentEnd, spawned.pidfd, stored, spec, opts);
        trace('plan applied (READY)');
        if (opts.pidfdSocket) sendPidfd(opts.pidfdSocket, spawned.pidfd, 'standard');
        stored.recorded = 'created';
        stored.status = 'created';
        this.store.save(stored);
        trace('state saved');
        this.known.set(id, stored);
        if (opts.pidFile) writeAtomic(path.resolve(opts.pidFile), String(spawned.pid), 0o644);
        this.holdNamespace(id, spawned.pid);
        return new Container(id, spawned.pid, spawned.pidfd, true, () => this.releaseNamespace(id));
      });
    } catch (e) {
      for (const c of cleanup.reverse()) {
        try {
          await c();
        } catch (ce) {
          this.log.warn(`cleanup after failed create: ${(ce as Error).message}`);
        }
      }
      throw e;
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
  }

  /** Talk to the init during create: run hooks at its pause point, forward fds, until READY. */
  private async converse(sock: number, pidfd: number, stored: StoredState, spec: Spec, opts: CreateOptions): Promise<void> {
    const timeoutMs = 120_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = await recvOne(sock, deadline - Date.now(), 'create');
      if (!msg.data) throw await initExited(pidfd, msg.errno);
      const { type, records } = decodeMessage(msg.data);
      const name = records.find((r) => r.tag === Tag.R_NAME)?.payload.toString();
      switch (type) {
        case Msg.READY:
          return;
        case Msg.ERROR:
          throw errorFromMessage(msg.data, 'create');
        case Msg.STEP:
          this.log.debug(`init: ${name} done`);
          break;
        case Msg.FD:
          try {
            if (name === 'seccompFd') await sendSeccompListener(spec, stored, msg.fds[0]);
            else if (opts.consoleSocket) await sendToPathWithin(path.resolve(opts.consoleSocket), Buffer.from(name ?? ''), [msg.fds[0]]);
            else if (opts.onConsole) opts.onConsole(msg.fds.shift()!); // the callback owns it now
          } finally {
            for (const fd of msg.fds) fs.closeSync(fd);
          }
          break;
        case Msg.PAUSE: {
          const state = this.publicState(stored, 'creating');
          // runtime-tools and crun give prestart hooks the "created" status (it runs at the end of create).
          await runHooks(spec.hooks?.prestart, { ...state, status: 'created' }, 'prestart');
          await runHooks(spec.hooks?.createRuntime, state, 'createRuntime');
          // runc runs them in the rootfs (it chdirs there first); still reachable by its host path before pivot_root.
          const cwd = stored.rootfs ?? path.resolve(stored.bundle, spec.root?.path ?? 'rootfs');
          for (const [i, h] of (spec.hooks?.createContainer ?? []).entries()) await runHookInContainer(h, state, 'createContainer', i, stored.pid!, false, { cwd });
          addon().sendMessage(sock, new Encoder().message(Msg.CONTINUE));
          break;
        }
        default:
          throw new HakoError(`create: unexpected message ${type} from container init`);
      }
    }
  }

  /**
   * An idmapped, detached clone of each idmap/ridmap mount's source, made here (host ids are host ids)
   * with the mount's mappings, or the container's when the mount has none. The init gets them as fds
   * after its control socket and attaches them.
   */
  private idmapNamespaces(spec: Spec, preserveFds: number, bundle: string): { fds: number[]; initFd: (i: number) => number } {
    const fds: number[] = [];
    const slot = new Map<number, number>();
    const text = (maps: { containerID: number; hostID: number; size: number }[]) => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
    try {
      (spec.mounts ?? []).forEach((m, i) => {
        if (!(m.options ?? []).some((o) => o === 'idmap' || o === 'ridmap')) return;
        if (m.type !== 'bind' && !(m.options ?? []).some((o) => o === 'bind' || o === 'rbind'))
          throw invalidField(`mounts[${i}].options`, 'idmap and ridmap apply to bind mounts only');
        const uid = m.uidMappings ?? spec.linux?.uidMappings;
        const gid = m.gidMappings ?? spec.linux?.gidMappings;
        if (!uid?.length || !gid?.length) throw invalidField(`mounts[${i}].uidMappings`, 'an idmapped mount needs uidMappings and gidMappings (of the mount or of the container)');
        if (fds.length >= 16) throw invalidField(`mounts[${i}]`, 'at most 16 idmapped mounts');
        try {
          const recursive = (m.options ?? []).includes('ridmap') || (m.options ?? []).includes('rbind');
          fds.push(addon().idmapTree(text(uid), text(gid), path.resolve(bundle, m.source ?? ''), recursive));
        } catch (e) {
          throw invalidField(`mounts[${i}].uidMappings`, `make the user namespace of an idmapped mount: ${(e as Error).message}`);
        }
        slot.set(i, 3 + preserveFds + 2 + fds.length - 1);
      });
    } catch (e) {
      for (const fd of fds) fs.closeSync(fd);
      throw e;
    }
    return { fds, initFd: (i) => slot.get(i)! };
  }

  private writeIdMaps(pid: number, spec: Spec): void {
    const fmt = (maps: { containerID: number; hostID: number; size: number }[] | undefined) =>
      (maps ?? []).map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
    const uid = fmt(spec.linux?.uidMappings);
    const gid = fmt(spec.linux?.gidMappings);
    if (!uid || !gid) throw invalidField('linux.uidMappings', 'a user namespace needs uidMappings and gidMappings');
    const root = (process.getuid?.() ?? 0) === 0;
    const own = (maps: { hostID: number; size: number }[] | undefined, id: number | undefined) =>
      (maps ?? []).length === 1 && maps![0].hostID === id && maps![0].size === 1;
    if (!root && !(own(spec.linux?.uidMappings, process.getuid?.()) && own(spec.linux?.gidMappings, process.getgid?.()))) {
      // An unprivileged user may only map itself; wider ranges go through the setuid helpers of the
      // uidmap package, which check /etc/subuid and /etc/subgid.
      for (const [tool, maps, field] of [
        ['newuidmap', spec.linux?.uidMappings, 'linux.uidMappings'],
        ['newgidmap', spec.linux?.gidMappings, 'linux.gidMappings'],
      ] as const) {
        const args = [String(pid), ...(maps ?? []).flatMap((m) => [String(m.containerID), String(m.hostID), String(m.size)])];
        const r = require('child_process').spawnSync(tool, args, { encoding: 'utf8' }) as { status: number | null; stderr: string; error?: Error };
        if (r.status !== 0)
          throw invalidField(field, `${tool} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()} (are the ranges in /etc/sub${tool === 'newuidmap' ? 'uid' : 'gid'}?)`);
      }
      return;
    }
    try {
      fs.writeFileSync(`/proc/${pid}/uid_map`, uid);
      if (!root) fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
      fs.writeFileSync(`/proc/${pid}/gid_map`, gid);
    } catch (e) {
      throw invalidField('linux.uidMappings', `write uid/gid maps: ${(e as Error).message}`);
    }
  }

  private publicState(s: StoredState, status = s.status): State {
    return {
      ociVersion: s.ociVersion,
      id: s.id,
      status,
      pid: status === 'stopped' ? 0 : s.pid,
      bundle: s.bundle,
      rootfs: s.rootfs,
      created: s.created,
      owner: s.owner,
      annotations: s.annotations,
    };
  }

  /** The live status: the recorded one as long as the process is alive and still ours. */
  private liveStatus(s: StoredState): State['status'] {
    if (!isAlive(s.pid, s.pidStartTime)) return 'stopped';
    const status = s.recorded === 'created' && s.helperId && exeId(s.pid!) !== s.helperId ? 'running' : s.recorded;
    if (status === 'running' && s.paused) return 'paused';
    return status;
  }

  private loadLive(id: string): StoredState {
    const s = this.store.load(id);
    s.status = this.liveStatus(s);
    return s;
  }

  async state(id: string): Promise<State> {
    validateId(id);
    const s = this.loadLive(id);
    return this.publicState(s);
  }

  async list(): Promise<State[]> {
    const out: State[] = [];
    for (const id of this.store.ids()) {
      try {
        out.push(this.publicState(this.loadLive(id)));
      } catch (e) {
        // Another runtime's container in a shared root, or one being created or deleted right now.
        this.log.debug(`list: skipping ${id}: ${(e as Error).message}`);
      }
    }
    return out;
  }

  /** Start a created container's configured process. */
  async start(id: string): Promise<void> {
    await this.launch(id, new Encoder().message(Msg.START), 'start', this.known.get(id));
  }

  /**
   * Fast start: run `proc` (a runtime-spec process object) in a created container whose whole
   * configuration is already applied. The container keeps waiting if the process is refused.
   */
  async setup(id: string, proc: Process, opts: SetupOptions = {}): Promise<void> {
    validateProcess(proc, 'process');
    const p: Process = opts.sched ? { ...proc, scheduler: parseSched(opts.sched) } : proc;
    validateId(id);
    // Only its config is read here (fixed at create); launch() checks the status under the lock.
    const { config } = this.known.get(id) ?? this.store.load(id);
    // The init applies the container's own seccomp filter (it has it from the plan).
    const extras: ProcessExtras = { cpuAffinity: opts.cpuAffinity, ...this.capabilityExtras(config) };
    const message = new Encoder().nested(Tag.PROCESS, encodeProcess(p, 'process', extras)).message(Msg.SETUP);
    await this.launch(id, message, 'setup', this.known.get(id));
  }

  private async launch(id: string, message: Buffer, verb: string, loaded?: StoredState): Promise<void> {
    validateId(id);
    await this.store.withLock(id, async () => {
      const s = loaded ?? this.store.load(id);
      const spec = s.config;
      const checkWaiting = () => {
        s.status = this.liveStatus(s);
        if (s.status === 'stopped') throw new HakoError(`cannot ${verb} a container that has stopped`);
        if (s.status !== 'created') throw new HakoError(`cannot ${verb} an already running container`);
      };
      // A container this instance created (fast setup's path) skips the /proc checks: only its waiting init
      // accepts on the control socket, so a refused connection is when the status is worth working out.
      const deferCheck = !!loaded && !spec.hooks?.startContainer?.length;
      if (!deferCheck) checkWaiting();
      // runtime-spec: start MUST fail without a process. create refuses such configs; a state an older hako
      // wrote may still lack one.
      if (verb === 'start' && !spec.process) throw invalidField('process', 'the container has no process to start (runtime-spec: start fails; setup can supply one)');
      // Under the container's seccomp filter, as runc's init runs them after loading it.
      const seccomp = spec.hooks?.startContainer?.length ? compileProcessSeccomp(spec, this.log, defaultCacheDir()) ?? undefined : undefined;
      for (const [i, h] of (spec.hooks?.startContainer ?? []).entries()) await runHookInContainer(h, this.publicState(s), 'startContainer', i, s.pid!, true, { seccomp });
      trace(`${verb}: locked`);
      const stop = () => {
        try {
          this.killProcess(s, 9);
        } catch (k) {
          if ((k as HakoError).code !== 'ESRCH') throw k;
        }
      };
      // A filter that refuses execve refuses the init's exec of the process, and then the init's report and
      // its exit too: it could never say so (it was seen spinning on a refused exit). Known from the config,
      // so said here, before the init is asked; start stops the container, as for any refused process.
      if (seccompRefusesExec(spec.linux?.seccomp)) {
        if (deferCheck) checkWaiting();
        if (verb === 'start') stop();
        throw invalidField('linux.seccomp', `the container's seccomp filter refuses execve (default action ${spec.linux!.seccomp!.defaultAction}, no rule allows it): its process can never be executed${verb === 'start' ? '; the container is stopped' : ''}`);
      }
      try {
        await sendControl(this.store.controlSocket(id), message, verb);
      } catch (e) {
        if (deferCheck && notWaiting((e as HakoError).errno)) checkWaiting();
        // No answer in time: the init cannot act on the request or report why (a seccomp filter refusing
        // execve or the writes of its report under conditions this process cannot evaluate, a stopped init).
        // start stops it from outside (SIGKILL always works), or it would hold the container for ever.
        if (verb === 'start' && (e as HakoError).code === 'ETIMEDOUT') {
          stop();
          const hint = spec.linux?.seccomp ? ": the container's seccomp filter (linux.seccomp) may refuse execve, or exit, of its process" : '';
          throw new HakoError(`${(e as Error).message}${hint}; the container is stopped`, { errno: 110, code: 'ETIMEDOUT', field: spec.linux?.seccomp ? 'linux.seccomp' : undefined });
        }
        // The init refused the configured process (a step failed): the container is stopped, as runc's init
        // exits then. Left waiting it could never run, and containerd will not delete a created task.
        // (setup keeps it waiting: another process may yet be supplied.)
        if (verb === 'start' && (e as HakoError).step) {
          try {
            this.killProcess(s, 9);
          } catch (k) {
            if ((k as HakoError).code !== 'ESRCH') throw k;
          }
        }
        throw e;
      }
      trace('process executed');
      // No state write: liveStatus() sees the init has executed the process (/proc/PID/exe changed).
      s.status = 'running';
      if (spec.hooks?.poststart?.length) {
        try {
          await runHooks(spec.hooks.poststart, this.publicState(s), 'poststart');
        } catch (e) {
          // runtime-spec 1.3: a failing poststart fails the operation; the container is stopped. A process
          // that already exited is stopped: the hook's error is the one to report.
          try {
            this.killProcess(s, 9);
          } catch (k) {
            if ((k as HakoError).code !== 'ESRCH') throw k;
          }
          throw e;
        }
      }
    });
  }

  /** create + start. The returned container's wait() gives the exit status. */
  async run(id: string, opts: CreateOptions): Promise<Container> {
    const c = await this.create(id, opts);
    try {
      await this.start(id);
    } catch (e) {
      await this.delete(id, { force: true }).catch(() => {});
      throw e;
    }
    return c;
  }

  async kill(id: string, signal: string | number = 'TERM', opts: { all?: boolean } = {}): Promise<void> {
    validateId(id);
    // 0 is no signal, only the existence check of kill(2): runc accepts it, and liveness probes use `kill ID 0`.
    const sig = typeof signal === 'number' ? signal : signal === '0' ? 0 : parseSignal(signal);
    if (sig === undefined || sig < 0) throw new HakoError(`invalid signal: ${signal}`, { field: 'signal' });
    const s = this.loadLive(id);
    if (s.status === 'stopped') throw new HakoError('container not running', { code: 'ESRCH' });
    if (!opts.all) {
      this.killProcess(s, sig);
      // SIGKILL waits in a frozen cgroup: thaw, so the container stops (as runc does; containerd then deletes it).
      if (sig === 9 && s.status === 'paused') this.cgroups.manager(s).thaw();
      return;
    }
    // --all signals the cgroup; the init may already be gone (and reaped) by the time we get to it.
    this.cgroups.killAll(s, sig);
    try {
      this.killProcess(s, sig);
    } catch (e) {
      if ((e as HakoError).code !== 'ESRCH') throw e;
    }
  }

  private killProcess(s: StoredState, sig: number): void {
    let pidfd: number;
    try {
      pidfd = addon().pidfdOpen(s.pid!);
    } catch {
      throw new HakoError('container not running', { code: 'ESRCH' });
    }
    try {
      // The pidfd pins the process: if its start time still matches, the signal cannot hit a reused pid.
      if (!isAlive(s.pid, s.pidStartTime)) throw new HakoError('container not running', { code: 'ESRCH' });
      addon().pidfdSendSignal(pidfd, sig);
    } finally {
      fs.closeSync(pidfd);
    }
  }

  /** Delete a container; `force` kills it first. A missing container is fine with `force`. */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    validateId(id);
    // Never remove (nor lock) another runtime's container in a shared root.
    if (this.store.isForeign(id)) throw foreignError(id);
    if (!this.store.exists(id)) {
      this.releaseNamespace(id);
      if (opts.force) {
        // A create killed before its state.json: what it recorded it would make goes too.
        const intent = this.store.loadIntent(id);
        if (intent) {
          // Under the lock: a create still running holds it, and may have written its state by then.
          const created = await this.store.withLock(id, async () => {
            if (this.store.exists(id)) return true;
            await this.cgroups.destroyIntent(intent);
            return false;
          });
          if (created) return this.delete(id, opts);
        }
        this.store.remove(id);
        return;
      }
      throw new HakoError(`container "${id}" does not exist`, { code: 'ENOENT' });
    }
    await this.store.withLock(id, async () => {
      const s = this.loadLive(id);
      // runtime-spec: deleting a container that is not stopped is an error and has no effect.
      if (s.status !== 'stopped' && !opts.force)
        throw new HakoError(`cannot delete container ${id} that is not stopped: ${s.status}`);
      trace('delete: locked');
      const stuck = s.status !== 'stopped' && !(await this.killAndWait(s));
      // A stopped init that is this process's own unreaped child (a library caller that never waited): reaped
      // here, so a long-lived process keeps no zombie and no pidfd for a deleted container.
      if (!stuck && s.status === 'stopped') await Container.exitOf(s.pid!);
      trace('delete: killed');
      this.releaseNamespace(id);
      try {
        await this.cgroups.destroy(s);
      } catch (e) {
        // Only a process that outlived SIGKILL keeps its cgroups busy; --force still deletes the container.
        if (!stuck) throw e;
        this.log.warn(`delete --force: ${(e as Error).message}`);
      }
      trace('delete: cgroups destroyed');
      this.store.remove(id);
      trace('delete: state removed');
      this.known.delete(id);
      if (s.config.hooks?.poststop?.length) {
        // runtime-spec: a failing poststop hook is a warning, and the remaining hooks still run.
        const state = this.publicState(s, 'stopped');
        for (const [i, h] of s.config.hooks.poststop.entries()) {
          try {
            await hooksModule().runHook(h, state, 'poststop', i);
          } catch (e) {
            this.log.warn(`poststop hook failed: ${(e as Error).message}`);
          }
        }
      }
    });
  }

  /** Called while the init waits (alive, its pidfd held), so /proc/PID is the container's init. */
  private holdNamespace(id: string, pid: number): void {
    try {
      this.heldNamespaces.set(id, holdFd(fs.openSync(`/proc/${pid}/ns/mnt`, 'r')));
    } catch {
      /* an optimisation only */
    }
  }

  /** What a process of this container can be granted, and where the capabilities it cannot get are reported. */
  private capabilityExtras(spec: Spec): Pick<ProcessExtras, 'grantableCaps' | 'warn'> {
    return { grantableCaps: grantableCapabilities(hasUserNamespace(spec)), warn: (m) => this.log.warn(m) };
  }

  private releaseNamespace(id: string): void {
    const fd = this.heldNamespaces.get(id);
    if (fd === undefined) return;
    this.heldNamespaces.delete(id);
    releaseFd(fd);
    fs.closeSync(fd);
  }

  /**
   * SIGKILL the init (and its cgroup) and wait for the exit, KILL_WAIT_MS at most: a process someone froze in
   * a cgroup v1 freezer of their own cannot die until thawed, and delete --force must not hang on it (false).
   */
  private async killAndWait(s: StoredState): Promise<boolean> {
    let pidfd: number;
    try {
      pidfd = addon().pidfdOpen(s.pid!);
    } catch {
      return true;
    }
    if (!isAlive(s.pid, s.pidStartTime)) {
      fs.closeSync(pidfd);
      return true;
    }
    this.cgroups.killAll(s, 9);
    try {
      addon().pidfdSendSignal(pidfd, 9);
    } catch {
      /* exited meanwhile */
    }
    const exited = await new Promise<boolean>((resolve) => {
      let watch: number | undefined;
      const timer = setTimeout(() => {
        if (watch !== undefined) addon().unwatchExit(watch);
        resolve(false);
      }, KILL_WAIT_MS);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      // Never a second reaper: the exit status belongs to the init's Container, whose wait() must still see
      // the SIGKILL. Our own child: wait for that reaper (so no zombie and no pidfd outlive delete). Another
      // process's: watch the pidfd without reaping.
      const own = Container.exitOf(s.pid!);
      if (own) void own.then(done);
      else watch = addon().watchExit(pidfd, true, done, false);
    });
    fs.closeSync(pidfd);
    if (!exited) this.log.warn(`delete --force: process ${s.pid} has not exited ${KILL_WAIT_MS} ms after SIGKILL (frozen outside the container's cgroup?); deleting the container anyway`);
    return exited;
  }

  /**
   * Run an additional process in a running container: it joins every namespace and the cgroup of the
   * container (a native child does the setns) and gets the container's seccomp filter.
   */
  async exec(id: string, proc: Process, opts: ExecOptions = {}): Promise<Container> {
    validateId(id);
    validateProcess(proc, 'process');
    const s = this.loadLive(id);
    if (s.status === 'stopped') throw new HakoError('cannot exec in a stopped container');
    if (s.status === 'paused' && !opts.ignorePaused) throw new HakoError('cannot exec in a paused container (ignorePaused; hako exec --ignore-paused)');
    if (proc.terminal && !opts.consoleSocket && !opts.onConsole) throw new HakoError('consoleSocket: a terminal was requested, so a console socket is required', { field: 'consoleSocket' });
    if (proc.apparmorProfile) throw invalidField('process.apparmorProfile', 'AppArmor is not enabled on this host');
    if (proc.selinuxLabel) throw invalidField('process.selinuxLabel', 'SELinux is not enabled on this host');
    const passFds = enterModule().checkPassFds(opts.passFds ?? noPreserveFds(opts), 'passFds');
    const preserveFds = passFds.length;
    const seccomp = compileProcessSeccomp(s.config, this.log, defaultCacheDir());
    const fds: number[] = [];
    try {
      const [parentEnd, childEnd] = addon().seqpacketPair();
      fds.push(parentEnd, childEnd);
      const target = addon().pidfdOpen(s.pid!);
      fds.push(target);
      if (!isAlive(s.pid, s.pidStartTime)) throw new HakoError('container not running', { code: 'ESRCH' });
      const manager = this.cgroups.manager(s);
      const selfJoin = cgroupModule().initJoinsCgroups(!!(s.config.linux?.namespaces ?? []).some((n) => n.type === 'user' && !n.path));
      const subDirs = opts.subCgroups ? cgroupModule().subCgroupDirs(manager.paths(), opts.subCgroups) : undefined;
      // The init joins the cgroups and namespaces and forks into the pid namespace itself: nothing that
      // enters the container is a fork of Node (src-native/init/enter.cc).
      const spawned = enterModule().spawnInit({
        run: { kind: 'exec' },
        cgroupFiles: selfJoin ? (subDirs ? cgroupModule().procsFilesOf(subDirs) : cgroupModule().procsFiles(manager)) : undefined,
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
        const plan = new Encoder().str(Tag.ROOTFS, '/');
        if (proc.terminal) plan.nested(Tag.CONSOLE, new Encoder().u32(Tag.K_A, proc.consoleSize?.height ?? 0).u32(Tag.K_B, proc.consoleSize?.width ?? 0));
        if (seccomp?.listenerPath) plan.u32(Tag.SECCOMP_EARLY, 1);
        plan.nested(Tag.PROCESS, encodeProcess(proc, 'process', { preserveFds, seccomp: seccomp ?? undefined, ...this.capabilityExtras(s.config) }));
        const planMessage = plan.message(Msg.PLAN);
        checkPlanMessage(planMessage);
        addon().sendMessage(parentEnd, planMessage);
        trace('exec: plan sent');
        fs.closeSync(childEnd);
        fds.splice(fds.indexOf(childEnd), 1);
        for (;;) {
          const msg = await recvOne(parentEnd, 60_000, 'exec');
          if (!msg.data) break; // the helper's end closed at exec
          const { type, records } = decodeMessage(msg.data);
          if (type === Msg.ERROR) throw errorFromMessage(msg.data, 'exec');
          if (type === Msg.FD) {
            const name = records.find((r) => r.tag === Tag.R_NAME)?.payload.toString();
            try {
              if (name === 'seccompFd') await sendSeccompListener(s.config, s, msg.fds[0], 'running', spawned.pid);
              else if (opts.consoleSocket) await sendToPathWithin(path.resolve(opts.consoleSocket), Buffer.from(name ?? ''), [msg.fds[0]]);
              else opts.onConsole?.(msg.fds.shift()!); // the callback owns it now
            } finally {
              for (const fd of msg.fds) fs.closeSync(fd);
            }
          }
        }
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

  /** Freeze every process of the container (cgroup freezer). */
  async pause(id: string): Promise<void> {
    validateId(id);
    await this.store.withLock(id, () => {
      const s = this.loadLive(id);
      if (s.status !== 'running') throw new HakoError(s.status === 'paused' ? 'container already paused' : 'container not running');
      this.cgroups.manager(s).freeze();
      s.paused = true;
      this.store.save(s);
    });
  }

  async resume(id: string): Promise<void> {
    validateId(id);
    await this.store.withLock(id, () => {
      const s = this.loadLive(id);
      if (s.status !== 'paused') throw new HakoError('container not paused');
      this.cgroups.manager(s).thaw();
      s.paused = false;
      this.store.save(s);
    });
  }

  /** Host pids of every process in the container's cgroup. */
  async ps(id: string): Promise<number[]> {
    validateId(id);
    const s = this.loadLive(id);
    return this.cgroups.manager(s).pids();
  }

  /** Change the container's resources (linux.resources shape; unset fields stay as they are). */
  async update(id: string, resources: LinuxResources): Promise<void> {
    validateId(id);
    validateResources(resources);
    await this.store.withLock(id, async () => {
      const s = this.loadLive(id);
      if (s.status === 'stopped') throw new HakoError('container not running');
      await this.cgroups.apply(s, resources);
      const linux = (s.config.linux ??= {});
      linux.resources = mergeResources(linux.resources ?? {}, resources);
      this.store.save(s);
    });
  }

  /** The cgroup manager of a container (stats, OOM counters) for `events`. */
  cgroupManager(id: string) {
    return this.cgroups.manager(this.store.load(id));
  }

  /** A handle on an existing container (not created by this process: no exit status). */
  container(id: string): Container {
    const s = this.loadLive(id);
    if (s.status === 'stopped') throw new HakoError('container not running', { code: 'ESRCH' });
    return new Container(id, s.pid!, addon().pidfdOpen(s.pid!), false);
  }
}

function mergeResources(base: LinuxResources, change: LinuxResources): LinuxResources {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(change)) {
    const prev = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' ? { ...(prev as object), ...v } : v;
  }
  return out as LinuxResources;
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

/**
 * The error for an init whose plan socket closed during create: it exited (or was killed). Its status, when it
 * is known within a moment (the socket closes as the process exits, slightly before it becomes a zombie), is
 * only looked at (WNOWAIT): create's cleanup reaps it.
 */
function initExited(pidfd: number, errno?: number): Promise<HakoError> {
  return new Promise((resolve) => {
    const done = (r: { code: number | null; signal: number | null } | null) => {
      const status = r ? (r.signal !== null ? `killed by signal ${r.signal}` : `exit status ${r.code}`) : errno ? `errno ${errno}` : '';
      resolve(new HakoError(`container init exited during setup${status ? ` (${status})` : ''}`, { step: 'create' }));
    };
    let watch = 0;
    const timer = setTimeout(() => {
      addon().unwatchExit(watch);
      done(null);
    }, 1000);
    watch = addon().watchExit(
      pidfd,
      true,
      (r) => {
        clearTimeout(timer);
        done(r);
      },
      false,
    );
  });
}

/**
 * True when linux.seccomp refuses execve for certain: no rule names it and the default action is not allow-like
 * (nor a notify agent's to decide), or every rule naming it refuses it without conditions. Anything the kernel
 * must decide (conditions, an agent) is false: the init tries, and start's timeout covers a silent refusal.
 */
export function seccompRefusesExec(sc: LinuxSeccomp | undefined): boolean {
  if (!sc) return false;
  const refuses = (action: string) => !isPermissiveAction(action as SeccompAction) && action !== 'SCMP_ACT_NOTIFY';
  const rules = (sc.syscalls ?? []).filter((r) => (r.names ?? []).includes('execve'));
  if (!rules.length) return refuses(sc.defaultAction);
  return rules.every((r) => refuses(r.action) && !(r.args ?? []).length);
}
