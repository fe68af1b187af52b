// The link to hako-fd-keeper (keeper.ts): at start, the fds a previous server deposited are adopted; when the
// keeper is lost, one is started again and every fd served is deposited again, so a restart still works.
import * as fs from 'fs';
import { adopt } from './adoption';
import { FdKeeper } from './keeper';
import type { Listeners } from './listeners';
import type { ServerState } from './server-state';

export class KeeperLink {
  constructor(
    private readonly s: ServerState,
    private readonly l: Listeners,
  ) {}

  async start(ours = new Map<bigint, number>()): Promise<void> {
    const got = await FdKeeper.open(this.s.socketPath, this.s.log, () => this.onLost());
    if (!got) return;
    this.l.keeper = got.keeper;
    if (got.abandoned)
      this.s.log.warn(
        `policy server: ${got.abandoned} call(s) the previous server had received and not answered were answered EAGAIN`,
      );
    for (const e of got.entries) {
      const lid = ours.get(e.key);
      if (lid === undefined || !this.s.byListener.has(lid)) {
        adopt(this.s, this.l, e);
        continue;
      }
      // Deposited by this server and served already (a keeper we lost the connection to, still alive).
      this.l.keptKeys.set(lid, e.key);
      for (const f of [e.fd, e.ring, ...e.extra]) fs.closeSync(f);
    }
  }

  /** The keeper is gone (or dropped us): start one again and deposit every fd served, so a restart still works. */
  private onLost(): void {
    const ours = new Map([...this.l.keptKeys].map(([lid, key]) => [key, lid]));
    this.l.keeper = undefined;
    this.l.keptKeys.clear();
    const retry = (ms: number): void => {
      setTimeout(() => {
        if (this.s.closed || this.l.keeper) return;
        void this.start(ours).then(() => {
          if (this.s.closed) return this.l.keeper?.close();
          if (!this.l.keeper) return retry(5000);
          let n = 0;
          for (const [lid, rec] of this.s.byListener)
            if (!this.l.keptKeys.has(lid)) {
              this.l.keepListener(lid, rec, this.l.regExtra.get(lid) ?? {});
              n++;
            }
          this.s.log.info(`policy server: hako-fd-keeper started again; ${n} notify fd(s) deposited`);
        });
      }, ms).unref();
    };
    if (!this.s.closed) retry(200);
  }
}
