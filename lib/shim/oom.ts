// TaskOOM for one container: the cgroup's OOM counters (v1 memory.oom_control oom_kill / under_oom, v2
// memory.events oom_kill / oom), polled once a second, and once more when the init exits, so an OOM kill that
// ends the container is reported (before its TaskExit) even when it fell between two polls.
import type { CgroupManager, OomCounters } from '../cgroups/types';

const POLL_MS = 1000;

export class OomWatch {
  private last: OomCounters;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly manager: CgroupManager,
    private readonly onOom: () => void,
  ) {
    this.last = this.read() ?? { oomKill: 0, oom: 0, underOom: false };
    this.timer = setInterval(() => this.check(), POLL_MS);
    this.timer.unref(); // the server's socket keeps the shim alive, not this
  }

  private read(): OomCounters | undefined {
    try {
      return this.manager.oomEvents();
    } catch {
      return undefined; // the cgroup is gone
    }
  }

  check(): void {
    const now = this.read();
    if (!now) return;
    let n = Math.max(0, now.oomKill - this.last.oomKill, this.manager.mode === 'v2' ? now.oom - this.last.oom : 0);
    if (this.manager.mode !== 'v2' && now.underOom && !this.last.underOom && n === 0) n = 1;
    this.last = now;
    for (let i = 0; i < n; i++) this.onOom();
  }

  /** A last look, then no more. */
  stop(): void {
    clearInterval(this.timer);
    this.check();
  }
}
