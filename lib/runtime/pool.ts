// A pool of pre-created containers from one template bundle: each `run(process)` hands out a waiting
// container and starts the given process in it at once (no namespace, mount or cgroup work left to do),
// while the pool refills in the background. close() (and process exit) removes every container it made.
import { HakoError } from '../errors';
import type { Process } from '../oci/types';
import type { Runtime, Container, ExitStatus, SetupOptions } from './runtime';

export interface PoolOptions {
  bundle: string;
  /** How many containers wait, ready. */
  size: number;
  /** Prefix of the generated container ids: `web` gives web-0, web-1, ...; `web-` (or `web_`, `web.`) gives web-0 too. */
  prefix?: string;
}

export interface PooledRun {
  id: string;
  container: Container;
  /** Resolves with the exit status; the container is deleted once it exits. */
  exit: Promise<ExitStatus>;
}

let poolSeq = 0;

export class Pool {
  private ready: Container[] = [];
  private filling = 0;
  private seq = 0;
  private closed = false;
  private readonly prefix: string;
  private readonly all = new Set<string>();
  private waiters: (() => void)[] = [];
  private readonly onExit = () => this.closeSync();

  constructor(
    readonly runtime: Runtime,
    readonly opts: PoolOptions,
  ) {
    if (!Number.isInteger(opts.size) || opts.size < 1)
      throw new HakoError('pool size must be a positive integer', { field: 'size' });
    const prefix = opts.prefix ?? `hako-pool-${process.pid}-${poolSeq++}`;
    // A prefix that already ends with a separator gets no second one (x- gives x-0, not x--0).
    this.prefix = typeof prefix === 'string' && /[-_.]$/.test(prefix) ? prefix : `${prefix}-`;
    if (typeof prefix !== 'string' || !/^[\w+.-]+$/.test(`${this.prefix}0`))
      throw new HakoError(
        `prefix: ${JSON.stringify(prefix)} does not make valid container ids (letters, digits, _ + . -)`,
        { field: 'prefix' },
      );
    process.once('exit', this.onExit);
  }

  /** Fill the pool; resolves when `size` containers wait. */
  async start(): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (let i = this.ready.length + this.filling; i < this.opts.size; i++) jobs.push(this.addOne());
    await Promise.all(jobs);
  }

  get available(): number {
    return this.ready.length;
  }

  private async addOne(): Promise<void> {
    this.filling++;
    const id = `${this.prefix}${this.seq++}`;
    try {
      this.all.add(id);
      const c = await this.runtime.create(id, { bundle: this.opts.bundle });
      if (this.closed) {
        await this.runtime.delete(id, { force: true });
        this.all.delete(id);
        return;
      }
      c.unref();
      this.ready.push(c);
      this.waiters.shift()?.();
    } catch (e) {
      this.all.delete(id);
      this.runtime.log.warn(`pool: pre-create ${id}: ${(e as Error).message}`);
      throw e;
    } finally {
      this.filling--;
    }
  }

  private refill(): void {
    if (this.closed) return;
    for (let i = this.ready.length + this.filling; i < this.opts.size; i++) this.addOne().catch(() => {});
  }

  /** Run `proc` in a waiting container. */
  async run(proc: Process, opts: SetupOptions = {}): Promise<PooledRun> {
    if (this.closed) throw new HakoError('pool is closed');
    let c = this.ready.shift();
    if (!c) {
      this.refill();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      c = this.ready.shift();
      if (!c) throw new HakoError('pool: no container available');
    }
    try {
      await this.runtime.setup(c.id, proc, opts);
    } catch (e) {
      // A refused process leaves the container waiting: give it back.
      this.ready.unshift(c);
      throw e;
    }
    this.refill();
    const container = c;
    const exit = container.wait().then(async (st) => {
      await this.runtime.delete(container.id, { force: true }).catch(() => {});
      this.all.delete(container.id);
      return st;
    });
    return { id: container.id, container, exit };
  }

  async close(): Promise<void> {
    this.closed = true;
    process.removeListener('exit', this.onExit);
    const ids = [...this.all];
    this.ready = [];
    await Promise.all(ids.map((id) => this.runtime.delete(id, { force: true }).catch(() => {})));
    this.all.clear();
  }

  /** Last resort at process exit: kill synchronously what is left. */
  private closeSync(): void {
    for (const id of this.all) {
      try {
        const s = this.runtime.store.load(id);
        if (s.pid) process.kill(s.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      this.runtime.store.remove(id);
    }
  }
}
