// ttrpc, containerd's small RPC protocol over a unix stream socket (ttrpc v1.1 as containerd 1.6 vendors it).
//
// Frame: a 10-byte big-endian header {length u32 (payload only), stream_id u32, type u8, flags u8}, then the
// payload. Type 1 = Request, 2 = Response (3 = Data, ttrpc 1.2 streaming, ignored here as v1.1 servers do).
// Max payload 4 MiB. Clients use odd stream ids from 1, +2 per call; a response reuses its request's id.
// Request {service = 1, method = 2, payload = 3, timeout_nano = 4, metadata = 5 {key = 1, value = 2}},
// Response {status = 1 google.rpc.Status {code = 1, message = 2}, payload = 2}.
// Requests on one connection run concurrently and may finish out of order (containerd keeps Wait open for
// hours on the connection it uses for everything else).
import * as net from 'net';
import { Fields, ProtoError, Writer } from './proto';

export const HEADER = 10;
export const MAX_PAYLOAD = 4 << 20;
export const TYPE_REQUEST = 1;
export const TYPE_RESPONSE = 2;

/** gRPC status codes containerd maps to its errdefs (errdefs/grpc.go). */
export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  FailedPrecondition: 9,
  ResourceExhausted: 8,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

/**
 * The text of the containerd errdefs class of each status code (github.com/containerd/errdefs). containerd's Go
 * shims wrap that class (`fmt.Errorf("...: %w", errdefs.ErrNotFound)`), so their messages end with it: 1.6 and 1.7
 * strip it and wrap it again (errdefs.FromGRPC), while 2.x shows the message as sent (errgrpc.ToNative). Ours end
 * with it too, so `ctr` says "not found" to every containerd as it does with runc's shim.
 */
const CLASS_TEXT: Record<number, string> = {
  [Code.Canceled]: 'context canceled',
  [Code.InvalidArgument]: 'invalid argument',
  [Code.DeadlineExceeded]: 'context deadline exceeded',
  [Code.NotFound]: 'not found',
  [Code.AlreadyExists]: 'already exists',
  [Code.FailedPrecondition]: 'failed precondition',
  [Code.ResourceExhausted]: 'resource exhausted',
  [Code.Unimplemented]: 'not implemented',
  [Code.Internal]: 'internal',
  [Code.Unavailable]: 'unavailable',
};

/** `message`, ending with its code's errdefs class (": not found") unless it already does. */
export function statusMessage(code: number, message: string): string {
  const cls = CLASS_TEXT[code];
  return !cls || message.endsWith(cls) ? message : `${message}: ${cls}`;
}

/** An error the peer receives as a gRPC status. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export function encodeFrame(f: Frame): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32BE(f.payload.length, 0);
  h.writeUInt32BE(f.streamId, 4);
  h.writeUInt8(f.type, 8);
  h.writeUInt8(f.flags, 9);
  return Buffer.concat([h, f.payload]);
}

/**
 * Splits a byte stream into frames. A frame whose declared length exceeds MAX_PAYLOAD is skipped (its bytes
 * discarded as they arrive) and reported through onOversize, so the stream stays in sync (as ttrpc does).
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private skip = 0;

  constructor(
    private readonly onFrame: (f: Frame) => void,
    private readonly onOversize: (streamId: number, type: number, length: number) => void = () => {},
  ) {}

  push(chunk: Buffer): void {
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length);
      this.skip -= n;
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER) {
      const length = this.buf.readUInt32BE(0);
      const streamId = this.buf.readUInt32BE(4);
      const type = this.buf.readUInt8(8);
      const flags = this.buf.readUInt8(9);
      if (length > MAX_PAYLOAD) {
        const have = this.buf.length - HEADER;
        this.skip = Math.max(0, length - have);
        this.buf = this.buf.subarray(HEADER + Math.min(length, have));
        this.onOversize(streamId, type, length);
        if (this.skip > 0) return;
        continue;
      }
      if (this.buf.length < HEADER + length) return;
      const payload = Buffer.from(this.buf.subarray(HEADER, HEADER + length));
      this.buf = this.buf.subarray(HEADER + length);
      this.onFrame({ streamId, type, flags, payload });
    }
  }
}

export interface Request {
  service: string;
  method: string;
  payload: Buffer;
  timeoutNano: bigint;
  metadata: Record<string, string>;
}

export function encodeRequest(r: Omit<Request, 'timeoutNano' | 'metadata'> & Partial<Request>): Buffer {
  const w = new Writer().string(1, r.service).string(2, r.method).bytes(3, r.payload).uint(4, r.timeoutNano);
  for (const [key, value] of Object.entries(r.metadata ?? {}))
    w.message(5, new Writer().string(1, key).string(2, value));
  return w.finish();
}

export function decodeRequest(buf: Buffer): Request {
  const f = new Fields(buf);
  const metadata: Record<string, string> = {};
  for (const kv of f.repeatedBytes(5)) {
    const m = new Fields(kv);
    metadata[m.string(1)] = m.string(2);
  }
  return {
    service: f.string(1),
    method: f.string(2),
    payload: f.bytes(3) ?? Buffer.alloc(0),
    timeoutNano: f.bigint(4),
    metadata,
  };
}

export interface Response {
  code: number;
  message: string;
  payload: Buffer;
}

export function encodeResponse(r: Response): Buffer {
  const w = new Writer();
  if (r.code !== 0) w.message(1, new Writer().uint(1, r.code).string(2, r.message));
  return w.bytes(2, r.payload).finish();
}

export function decodeResponse(buf: Buffer): Response {
  const f = new Fields(buf);
  const st = f.bytes(1);
  const s = st ? new Fields(st) : undefined;
  return { code: s?.uint(1) ?? 0, message: s?.string(2) ?? '', payload: f.bytes(2) ?? Buffer.alloc(0) };
}

/** A method: request payload in, response payload out; throw RpcError for a status other than Unknown. */
export type Handler = (payload: Buffer, req: Request) => Promise<Buffer> | Buffer;

/** Services by full proto name, then methods by name. */
export type Services = Map<string, Map<string, Handler>>;

/**
 * Serve one connection. Each request runs on its own; a handler's failure becomes that stream's status and never
 * closes the connection. Malformed frames get InvalidArgument where a stream id can answer them.
 */
export function serveConnection(sock: net.Socket, services: Services, log: (m: string) => void = () => {}): void {
  const send = (streamId: number, r: Response): void => {
    if (sock.destroyed) return;
    let payload = encodeResponse(r);
    if (payload.length > MAX_PAYLOAD)
      payload = encodeResponse({
        code: Code.ResourceExhausted,
        message: `response of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`,
        payload: Buffer.alloc(0),
      });
    sock.write(encodeFrame({ streamId, type: TYPE_RESPONSE, flags: 0, payload }));
  };
  const fail = (streamId: number, code: number, message: string) =>
    send(streamId, { code, message: statusMessage(code, message), payload: Buffer.alloc(0) });
  const reader = new FrameReader(
    (frame) => {
      if (frame.type !== TYPE_REQUEST) return; // v1.1 servers ignore other frames
      if (frame.streamId % 2 === 0)
        return fail(frame.streamId, Code.InvalidArgument, `stream id ${frame.streamId} must be odd`);
      let req: Request;
      try {
        req = decodeRequest(frame.payload);
      } catch (e) {
        return fail(frame.streamId, Code.InvalidArgument, `malformed request: ${(e as Error).message}`);
      }
      const handler = services.get(req.service)?.get(req.method);
      if (!handler) return fail(frame.streamId, Code.Unimplemented, `/${req.service}/${req.method} is not implemented`);
      Promise.resolve()
        .then(() => handler(req.payload, req))
        .then(
          (payload) => send(frame.streamId, { code: 0, message: '', payload }),
          (e: unknown) => {
            const code = e instanceof RpcError ? e.code : e instanceof ProtoError ? Code.InvalidArgument : Code.Unknown;
            if (!(e instanceof RpcError)) log(`${req.method}: ${(e as Error)?.stack ?? e}`);
            fail(frame.streamId, code, (e as Error)?.message ?? String(e));
          },
        );
    },
    (streamId, type, length) => {
      if (type === TYPE_REQUEST)
        fail(streamId, Code.ResourceExhausted, `message of ${length} bytes exceeds ${MAX_PAYLOAD}`);
    },
  );
  sock.on('data', (c: Buffer) => reader.push(c));
  sock.on('error', () => sock.destroy());
}

/** A ttrpc client on one connection: calls with odd stream ids, answers matched by id. */
export class Client {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout }
  >();
  private closed = false;

  constructor(readonly sock: net.Socket) {
    const reader = new FrameReader((f) => {
      if (f.type !== TYPE_RESPONSE) return;
      const p = this.pending.get(f.streamId);
      if (!p) return;
      this.pending.delete(f.streamId);
      if (p.timer) clearTimeout(p.timer);
      try {
        const r = decodeResponse(f.payload);
        if (r.code !== 0) p.reject(new RpcError(r.code, r.message));
        else p.resolve(r.payload);
      } catch (e) {
        p.reject(e as Error);
      }
    });
    sock.on('data', (c: Buffer) => reader.push(c));
    const closeAll = (e: Error) => {
      this.closed = true;
      for (const p of this.pending.values()) {
        if (p.timer) clearTimeout(p.timer);
        p.reject(e);
      }
      this.pending.clear();
    };
    sock.on('error', (e) => closeAll(e));
    sock.on('close', () => closeAll(new Error('ttrpc: connection closed')));
  }

  static connect(path: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new Client(s));
      });
      s.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closed || this.sock.destroyed;
  }

  call(
    service: string,
    method: string,
    payload: Buffer,
    opts: { timeoutMs?: number; metadata?: Record<string, string> } = {},
  ): Promise<Buffer> {
    if (this.isClosed) return Promise.reject(new Error('ttrpc: connection closed'));
    const streamId = this.nextId;
    this.nextId += 2;
    const timeoutNano = opts.timeoutMs ? BigInt(opts.timeoutMs) * 1_000_000n : 0n;
    return new Promise((resolve, reject) => {
      const entry: { resolve: (b: Buffer) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } = {
        resolve,
        reject,
      };
      if (opts.timeoutMs)
        entry.timer = setTimeout(() => {
          this.pending.delete(streamId);
          reject(new RpcError(Code.DeadlineExceeded, `${method}: no answer in ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      this.pending.set(streamId, entry);
      this.sock.write(
        encodeFrame({
          streamId,
          type: TYPE_REQUEST,
          flags: 0,
          payload: encodeRequest({ service, method, payload, timeoutNano, metadata: opts.metadata }),
        }),
      );
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
