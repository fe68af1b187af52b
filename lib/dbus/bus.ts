// A small D-Bus client over a unix socket: EXTERNAL authentication, Hello, method calls with replies and
// errors, signals. Written here rather than taken from npm: dbus-next 0.10 (the maintained pure-JS client)
// measured 19-28 ms for require() on the project's machine after Node's net module was loaded (17 packages:
// xml2js, event-stream, jsbi, long...), against about 2 ms for these two files (plus 1.5 ms for net, which
// both need); the driver needs only method calls and one signal. It is required only by the systemd cgroup
// driver (lib/runtime/systemd-cgroup.ts), never on the cgroupfs path.

import * as net from 'net';
import { decodeMessage, encodeMessage, FLAG_NO_REPLY, type Message, MessageType, messageLength } from './marshal';

export { Variant } from './marshal';

/** An error reply (org.freedesktop.DBus.Error.*, org.freedesktop.systemd1.*), or a transport failure. */
export class DBusError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'DBusError';
  }
}

export interface CallOptions {
  destination?: string;
  path: string;
  interface?: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** Milliseconds until the call fails with DBusError "hako.Timeout" (default 25 s, as libdbus). */
  timeoutMs?: number;
  noReply?: boolean;
}

export type SignalHandler = (m: Message) => void;

/** The system bus address: $DBUS_SYSTEM_BUS_ADDRESS or the well-known socket. */
export function systemBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}

/** The session (user) bus address: $DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus, as sd-bus finds it. */
export function sessionBusAddress(): string {
  const a = process.env.DBUS_SESSION_BUS_ADDRESS;
  if (a) return a;
  const dir = process.env.XDG_RUNTIME_DIR;
  if (!dir)
    throw new DBusError(
      'hako.NoAddress',
      'no session bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set',
    );
  return `unix:path=${dir}/bus`;
}

/** The unix socket of the first unix: entry of a D-Bus address list ("unix:path=/x;tcp:..."). */
export function parseAddress(address: string): string {
  for (const entry of address.split(';')) {
    const colon = entry.indexOf(':');
    if (colon < 0 || entry.slice(0, colon) !== 'unix') continue;
    const kv = new Map<string, string>();
    for (const pair of entry.slice(colon + 1).split(',')) {
      const eq = pair.indexOf('=');
      if (eq > 0) kv.set(pair.slice(0, eq), decodeURIComponent(pair.slice(eq + 1)));
    }
    const p = kv.get('path');
    if (p) return p;
    const abs = kv.get('abstract');
    if (abs) return `\0${abs}`;
  }
  throw new DBusError(
    'hako.BadAddress',
    `D-Bus address ${JSON.stringify(address)} has no unix:path= or unix:abstract= entry`,
  );
}

export class Bus {
  private serial = 0;
  private buf: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<
    number,
    { resolve: (m: Message) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private readonly handlers = new Set<SignalHandler>();
  private closedWith?: Error;
  /** The unique name the bus daemon gave us (":1.42"); empty on a peer-to-peer connection. */
  uniqueName = '';

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => this.fail(new DBusError('hako.Disconnected', `D-Bus connection failed: ${e.message}`)));
    sock.on('close', () => this.fail(new DBusError('hako.Disconnected', 'D-Bus connection closed')));
  }

  /**
   * Connects and authenticates (EXTERNAL: the kernel vouches for our uid through SO_PEERCRED). `hello`:
   * false for a peer-to-peer socket such as systemd's /run/systemd/private, which has no bus daemon.
   */
  static async connect(address: string, opts: { hello?: boolean; timeoutMs?: number } = {}): Promise<Bus> {
    const socketPath = parseAddress(address);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new DBusError('hako.Timeout', `D-Bus: no connection to ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new DBusError(`hako.${e.code ?? 'Error'}`, `D-Bus: cannot connect to ${socketPath}: ${e.code ?? e.message}`),
        );
      });
    });
    try {
      await authenticate(sock, timeoutMs);
    } catch (e) {
      sock.destroy();
      throw e;
    }
    const bus = new Bus(sock);
    if (opts.hello !== false) {
      try {
        const [name] = await bus.call({
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'Hello',
          timeoutMs,
        });
        bus.uniqueName = name as string;
      } catch (e) {
        bus.close();
        throw e;
      }
    }
    return bus;
  }

  /** Calls a method; resolves with the reply's body values, rejects with a DBusError for an error reply. */
  call(o: CallOptions): Promise<unknown[]> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const serial = ++this.serial;
    const msg = encodeMessage({
      type: MessageType.MethodCall,
      flags: o.noReply ? FLAG_NO_REPLY : 0,
      serial,
      destination: o.destination,
      path: o.path,
      interface: o.interface,
      member: o.member,
      signature: o.signature ?? '',
      body: o.body ?? [],
    });
    if (o.noReply) {
      this.sock.write(msg);
      return Promise.resolve([]);
    }
    return new Promise<Message>((resolve, reject) => {
      const timeoutMs = o.timeoutMs ?? 25_000;
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(
          new DBusError('hako.Timeout', `D-Bus: ${o.interface ?? ''}.${o.member} got no reply within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.set(serial, { resolve, reject, timer });
      this.sock.write(msg);
    }).then((reply) => {
      if (reply.type === MessageType.Error) {
        const text = typeof reply.body[0] === 'string' ? reply.body[0] : (reply.errorName ?? 'error');
        throw new DBusError(reply.errorName ?? 'org.freedesktop.DBus.Error.Failed', text);
      }
      return reply.body;
    });
  }

  /** Every signal addressed to us or broadcast that matches a rule we added (AddMatch). */
  onSignal(handler: SignalHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  close(): void {
    this.fail(new DBusError('hako.Disconnected', 'D-Bus connection closed'));
    this.sock.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      let n: number;
      let m: Message;
      try {
        n = messageLength(this.buf);
        if (n === 0) return;
        m = decodeMessage(this.buf.subarray(0, n));
      } catch (e) {
        // A message we cannot read leaves the stream unframed: nothing after it can be trusted either.
        this.fail(new DBusError('hako.Protocol', (e as Error).message));
        this.sock.destroy();
        return;
      }
      this.buf = this.buf.subarray(n);
      this.dispatch(m);
    }
  }

  private dispatch(m: Message): void {
    if ((m.type === MessageType.MethodReturn || m.type === MessageType.Error) && m.replySerial !== undefined) {
      const p = this.pending.get(m.replySerial);
      if (!p) return;
      this.pending.delete(m.replySerial);
      clearTimeout(p.timer);
      p.resolve(m);
    } else if (m.type === MessageType.Signal) {
      for (const h of this.handlers) h(m);
    } else if (m.type === MessageType.MethodCall && !(m.flags & FLAG_NO_REPLY)) {
      // Nobody calls us; the bus (or a peer) still gets an answer rather than waiting for a timeout.
      this.sock.write(
        encodeMessage({
          type: MessageType.Error,
          serial: ++this.serial,
          replySerial: m.serial,
          destination: m.sender,
          errorName: 'org.freedesktop.DBus.Error.UnknownMethod',
          signature: 's',
          body: [`hako's D-Bus client has no objects (${m.interface ?? ''}.${m.member ?? ''})`],
        }),
      );
    }
  }

  private fail(e: Error): void {
    if (this.closedWith) return;
    this.closedWith = e;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }
}

/**
 * The SASL exchange: a NUL byte, AUTH EXTERNAL with our uid in hex, OK from the server, BEGIN. Nothing else
 * is negotiated (no unix fd passing: the driver sends none).
 */
async function authenticate(sock: net.Socket, timeoutMs: number): Promise<void> {
  const uid = String(process.geteuid?.() ?? 0);
  const hex = Buffer.from(uid, 'ascii').toString('hex');
  const line = await new Promise<string>((resolve, reject) => {
    let got = '';
    const timer = setTimeout(
      () => done(new DBusError('hako.Timeout', `D-Bus: authentication got no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n');
      if (end >= 0) done(undefined, got.slice(0, end));
    };
    const onClose = () =>
      done(new DBusError('hako.Disconnected', 'D-Bus: the server closed the connection during authentication'));
    const done = (err?: Error, l?: string) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) reject(err);
      else resolve(l as string);
    };
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.write(`\0AUTH EXTERNAL ${hex}\r\n`);
  });
  if (!line.startsWith('OK '))
    throw new DBusError(
      'hako.AuthFailed',
      `D-Bus: EXTERNAL authentication as uid ${uid} refused: ${JSON.stringify(line)}`,
    );
  sock.write('BEGIN\r\n');
}
