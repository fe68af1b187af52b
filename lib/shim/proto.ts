// A minimal protobuf wire codec (proto3: varint, 64-bit, length-delimited, 32-bit), enough for the ttrpc
// envelope, the containerd task API, its events and cgroup metrics (whose PSI averages are doubles).
//
// Why hand-written rather than protobufjs or @bufbuild/protobuf: the shim serves a few dozen flat messages,
// and every module it loads is paid by each new shim (one per pod) on boards where Node itself is slow to
// start. Measured here (Node 20.20.2, this 2-core machine under load, median of 9 fresh processes, time spent in
// `require`): this file with messages.ts and ttrpc.ts 4.2 ms; `protobufjs/minimal` alone 10.6 ms (its runtime,
// before any message code), `protobufjs/light` 15.8 ms; `@bufbuild/protobuf` with `codegenv2` and `wire` 31.8 ms
// (before any generated descriptor is decoded). So no generated code is committed: the message shapes are in
// messages.ts, field numbers taken from containerd's .proto files (cited there).

export class Writer {
  private chunks: Buffer[] = [];
  private len = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.len += b.length;
    return this;
  }

  private varint(v: bigint | number): this {
    let n = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (n >= 0x80n) {
      out.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    out.push(Number(n));
    return this.push(Buffer.from(out));
  }

  private tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  /** uint32/uint64/int64/enum; zero is the default and is not written (proto3). */
  uint(field: number, v: number | bigint | undefined): this {
    if (v === undefined || v === 0 || v === 0n) return this;
    return this.tag(field, 0).varint(v);
  }

  /** double, as 8 little-endian bytes (wire type 1); zero is the default and is not written. */
  double(field: number, v: number | undefined): this {
    if (!v) return this;
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    return this.tag(field, 1).push(b);
  }

  bool(field: number, v: boolean | undefined): this {
    return v ? this.tag(field, 0).varint(1) : this;
  }

  bytes(field: number, v: Buffer | undefined, always = false): this {
    if (!v || (v.length === 0 && !always)) return this;
    return this.tag(field, 2).varint(v.length).push(v);
  }

  string(field: number, v: string | undefined): this {
    return v ? this.bytes(field, Buffer.from(v, 'utf8')) : this;
  }

  /** A nested message, written even when empty (its presence can matter, as for a Timestamp). */
  message(field: number, m: Writer | undefined): this {
    return m ? this.bytes(field, m.finish(), true) : this;
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks, this.len);
  }
}

/** One decoded field: varints as bigint, length-delimited as Buffer. */
export interface Field {
  no: number;
  wire: number;
  int?: bigint;
  buf?: Buffer;
}

export class ProtoError extends Error {}

/** All fields of a message, in order (repeated fields appear once per element). Throws ProtoError on bad input. */
export function decode(buf: Buffer): Field[] {
  const out: Field[] = [];
  let off = 0;
  const varint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      if (off >= buf.length) throw new ProtoError('truncated varint');
      const b = buf[off++];
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return BigInt.asUintN(64, r);
      shift += 7n;
      if (shift > 63n) throw new ProtoError('varint too long');
    }
  };
  while (off < buf.length) {
    const key = varint();
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (no === 0) throw new ProtoError('field number 0');
    switch (wire) {
      case 0:
        out.push({ no, wire, int: varint() });
        break;
      case 1:
        if (off + 8 > buf.length) throw new ProtoError('truncated fixed64');
        out.push({ no, wire, int: buf.readBigUInt64LE(off) });
        off += 8;
        break;
      case 2: {
        const n = Number(varint());
        if (n > buf.length - off) throw new ProtoError('truncated length-delimited field');
        out.push({ no, wire, buf: buf.subarray(off, off + n) });
        off += n;
        break;
      }
      case 5:
        if (off + 4 > buf.length) throw new ProtoError('truncated fixed32');
        out.push({ no, wire, int: BigInt(buf.readUInt32LE(off)) });
        off += 4;
        break;
      default:
        throw new ProtoError(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

/** Typed access to a decoded message: the last occurrence of a scalar wins, as in protobuf. */
export class Fields {
  private readonly fields: Field[];
  constructor(buf: Buffer) {
    this.fields = decode(buf);
  }
  private last(no: number): Field | undefined {
    for (let i = this.fields.length - 1; i >= 0; i--) if (this.fields[i].no === no) return this.fields[i];
    return undefined;
  }
  private expect(no: number, wire: number): Field | undefined {
    const f = this.last(no);
    if (f && f.wire !== wire) throw new ProtoError(`field ${no}: wire type ${f.wire}, expected ${wire}`);
    return f;
  }
  string(no: number): string {
    return this.expect(no, 2)?.buf?.toString('utf8') ?? '';
  }
  bytes(no: number): Buffer | undefined {
    return this.expect(no, 2)?.buf;
  }
  uint(no: number): number {
    const v = this.expect(no, 0)?.int ?? 0n;
    return Number(BigInt.asUintN(32, v));
  }
  bigint(no: number): bigint {
    return this.expect(no, 0)?.int ?? 0n;
  }
  bool(no: number): boolean {
    return (this.expect(no, 0)?.int ?? 0n) !== 0n;
  }
  repeatedBytes(no: number): Buffer[] {
    return this.fields.filter((f) => f.no === no && f.wire === 2).map((f) => f.buf!);
  }
}

/** google.protobuf.Any {type_url = 1, value = 2}. */
export interface AnyMsg {
  typeUrl: string;
  value: Buffer;
}

export function anyWriter(a: AnyMsg): Writer {
  return new Writer().string(1, a.typeUrl).bytes(2, a.value);
}

export function decodeAny(buf: Buffer | undefined): AnyMsg | undefined {
  if (!buf) return undefined;
  const f = new Fields(buf);
  return { typeUrl: f.string(1), value: f.bytes(2) ?? Buffer.alloc(0) };
}

/** google.protobuf.Timestamp {seconds = 1, nanos = 2} from a Date (or ms since the epoch). */
export function timestampWriter(t: Date | number): Writer {
  const ms = typeof t === 'number' ? t : t.getTime();
  const seconds = Math.floor(ms / 1000);
  return new Writer().uint(1, seconds).uint(2, Math.round((ms - seconds * 1000) * 1e6));
}

export function decodeTimestamp(buf: Buffer | undefined): number | undefined {
  if (!buf) return undefined;
  const f = new Fields(buf);
  return Number(BigInt.asIntN(64, f.bigint(1))) * 1000 + f.uint(2) / 1e6;
}
