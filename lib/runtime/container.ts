// The handle on a container's process (its init, or an exec'd process): its pidfd, its one reaper, its exit.
import * as fs from 'fs';
import { HakoError } from '../errors';
import { addon, type ExitResult } from '../native/addon';
import { holdFd, releaseFd } from '../state/held-fds';
import type { RuntimeContext } from './context';
import type { ExitStatus } from './options';

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
  static exitOf(pid: number): Promise<ExitStatus> | undefined;
  /** As exitOf, but resolving undefined after `ms` (delete must not wait for ever on an exit that does not come). */
  static exitOf(pid: number, ms: number): Promise<ExitStatus | undefined> | undefined;
  static exitOf(pid: number, ms?: number): Promise<ExitStatus | undefined> | undefined {
    const c = Container.children.get(pid);
    if (!c) return undefined;
    c.wantReap();
    if (ms === undefined) return c.exitPromise;
    let timer: NodeJS.Timeout;
    return Promise.race([
      c.exitPromise,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms))),
    ]).finally(() => clearTimeout(timer));
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

/** A handle on an existing container (not created by this process: no exit status). */
export function existingContainer(rt: RuntimeContext, id: string): Container {
  const s = rt.loadLive(id);
  if (s.status === 'stopped') throw new HakoError('container not running', { code: 'ESRCH' });
  return new Container(id, s.pid!, addon().pidfdOpen(s.pid!), false);
}
