// Events to containerd as its own shims send them in 1.6+: a ttrpc call
// containerd.services.events.ttrpc.v1.Events/Forward on $TTRPC_ADDRESS (not the -publish-binary, which the
// Go shim library never uses). One queue, sent in order (Create before Start before Exit, as containerd's
// README requires); a failed send is retried on a new connection with a growing pause, and dropped after 5
// tries, as containerd's publisher does, so a containerd that is down cannot make the shim grow without bound.
import { Client } from './ttrpc';
import { EVENTS_SERVICE, forwardRequest, type TaskEvent } from './messages';

const RETRIES = 5;
const CALL_TIMEOUT_MS = 5000;

export class Publisher {
  private client?: Client;
  private readonly queue: { e: TaskEvent; at: Date; tries: number }[] = [];
  private running = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly address: string | undefined,
    private readonly namespace: string,
    private readonly log: (m: string) => void,
  ) {}

  publish(e: TaskEvent): void {
    if (!this.address) return;
    this.queue.push({ e, at: new Date(), tries: 0 });
    if (!this.running) void this.drain();
  }

  /** Resolves once every queued event was sent or dropped (Shutdown flushes before the shim leaves). */
  flushed(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const item = this.queue[0];
      try {
        if (!this.client || this.client.isClosed) this.client = await Client.connect(this.address!);
        await this.client.call(EVENTS_SERVICE, 'Forward', forwardRequest(this.namespace, item.e, item.at), {
          timeoutMs: CALL_TIMEOUT_MS,
          metadata: { 'containerd-namespace-ttrpc': this.namespace },
        });
        this.queue.shift();
      } catch (err) {
        this.client?.close();
        this.client = undefined;
        if (++item.tries >= RETRIES) {
          this.log(`event ${item.e.topic} dropped after ${RETRIES} tries: ${(err as Error).message}`);
          this.queue.shift();
        } else {
          await new Promise((r) => setTimeout(r, item.tries * 1000));
        }
      }
    }
    this.running = false;
    // The connection is not kept: between bursts of events it would only hold containerd's socket.
    this.client?.close();
    this.client = undefined;
    for (const r of this.idle.splice(0)) r();
  }
}
