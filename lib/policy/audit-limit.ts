// Audit rate limiting: one container's flood must not fill the disk (a 10-second flood once wrote 155,000
// records, 45 MB). A token bucket per container admits records; what it refuses is counted, and a record
// saying how many were suppressed is written every `reportMs` while suppression goes on, and once more when the
// container is released or the server closes, so the audit trail always accounts for every decision:
// records written + suppressed counts = decisions.
import type { AuditLimit } from './schema';

export interface AuditSuppressedRecord {
  time: string;
  container: string;
  /** Decisions of this container not written as records since `since`. */
  suppressed: number;
  since: string;
  /** true: the container was released (or the server stopped); no more records of it follow. */
  final: boolean;
  reason: string;
}

interface Bucket {
  tokens: number;
  last: number;
  suppressed: number;
  since: number;
}

export class AuditLimiter {
  private buckets = new Map<string, Bucket>();
  private timer?: NodeJS.Timeout;
  private timerMs = 0;

  constructor(
    private readonly limit: () => AuditLimit | null,
    private readonly write: (r: AuditSuppressedRecord) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** May a record of `container` be written now? A refusal is counted. */
  admit(container: string): boolean {
    const lim = this.limit();
    if (!lim) return true;
    const t = this.now();
    let b = this.buckets.get(container);
    if (!b) {
      b = { tokens: lim.burst, last: t, suppressed: 0, since: 0 };
      this.buckets.set(container, b);
    } else {
      b.tokens = Math.min(lim.burst, b.tokens + ((t - b.last) * lim.rate) / 1000);
      b.last = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    if (b.suppressed === 0) b.since = t;
    b.suppressed++;
    this.arm(lim.reportMs);
    return false;
  }

  /** Count records that were never offered (calls answered in a batch on the native thread, fast-deny.ts). */
  suppress(container: string, n: number): void {
    const lim = this.limit();
    if (n <= 0) return;
    let b = this.buckets.get(container);
    const t = this.now();
    if (!b) {
      b = { tokens: lim?.burst ?? 0, last: t, suppressed: 0, since: 0 };
      this.buckets.set(container, b);
    }
    if (b.suppressed === 0) b.since = t;
    b.suppressed += n;
    this.arm(lim?.reportMs ?? 10_000);
  }

  /** Report (and reset) what was suppressed: for one container, or all. */
  report(container?: string, final = false): void {
    const ids = container === undefined ? [...this.buckets.keys()] : [container];
    for (const id of ids) {
      const b = this.buckets.get(id);
      if (!b) continue;
      if (b.suppressed > 0) {
        const lim = this.limit();
        this.write({
          time: new Date(this.now()).toISOString(),
          container: id,
          suppressed: b.suppressed,
          since: new Date(b.since).toISOString(),
          final,
          reason: lim
            ? `audit rate limit: ${lim.rate}/s, burst ${lim.burst}`
            : 'denied on the native thread in a batch (one record per batch)',
        });
        b.suppressed = 0;
      }
      if (final) this.buckets.delete(id);
    }
  }

  /** The container is gone: its last count, then its bucket is dropped. */
  release(container: string): void {
    this.report(container, true);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.report(undefined, true);
  }

  // The periodic report runs only while something is being suppressed (no timer on an idle board).
  private arm(ms: number): void {
    if (this.timer && this.timerMs === ms) return;
    if (this.timer) clearInterval(this.timer);
    this.timerMs = ms;
    this.timer = setInterval(() => {
      this.report();
      if (![...this.buckets.values()].some((b) => b.suppressed > 0) && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, ms);
    this.timer.unref();
  }
}
