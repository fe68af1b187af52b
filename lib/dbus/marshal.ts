// Over 400 lines because the marshalling of every D-Bus type, reader beside writer, is one specification section best read in one place.
// D-Bus wire format (the specification's "Marshaling" section), little-endian only on the way out, both
// endiannesses on the way in. Only what the systemd driver needs plus the basic types, so that any reply
// systemd or the bus daemon sends can be read: y b n q i u x t d s o g h, arrays, structs, dict entries,
// variants.
//
// Values in TypeScript: y n q i u h d -> number; x t -> bigint (a number is accepted when writing);
// b -> boolean; s o g -> string; a -> array (a dict entry is a two-element array, an `ay` reads as a Buffer
// and accepts one); ( ) -> array of the members; v -> Variant.

/** A D-Bus variant: the value together with its own signature. */
export class Variant {
  constructor(
    readonly signature: string,
    readonly value: unknown,
  ) {}
}

export class DBusMarshalError extends Error {
  constructor(message: string) {
    super(`D-Bus: ${message}`);
    this.name = 'DBusMarshalError';
  }
}

const ALIGN: Record<string, number> = {
  y: 1,
  b: 4,
  n: 2,
  q: 2,
  i: 4,
  u: 4,
  x: 8,
  t: 8,
  d: 8,
  s: 4,
  o: 4,
  g: 1,
  h: 4,
  a: 4,
  '(': 8,
  '{': 8,
  v: 1,
};
const MAX_ARRAY = 64 * 1024 * 1024;
const OBJECT_PATH = /^\/$|^(\/[A-Za-z0-9_]+)+$/;

/** Splits a signature into its complete types ("sa(sv)b" -> ["s", "a(sv)", "b"]). */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < sig.length) {
    const end = typeEnd(sig, i);
    out.push(sig.slice(i, end));
    i = end;
  }
  return out;
}

/** The index just past the single complete type starting at i. */
function typeEnd(sig: string, i: number, inArray = false): number {
  const c = sig[i];
  if (c === undefined) throw new DBusMarshalError(`signature ${JSON.stringify(sig)} ends inside a type`);
  if (c === 'a') return typeEnd(sig, i + 1, true);
  // A dict entry is only an array's element type.
  if (c === '{' && !inArray)
    throw new DBusMarshalError(`signature ${JSON.stringify(sig)}: a dict entry outside an array`);
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    let j = i + 1;
    let n = 0;
    while (sig[j] !== close) {
      if (sig[j] === undefined) throw new DBusMarshalError(`signature ${JSON.stringify(sig)}: unclosed ${c}`);
      j = typeEnd(sig, j);
      n++;
    }
    if (n === 0 || (c === '{' && n !== 2))
      throw new DBusMarshalError(`signature ${JSON.stringify(sig)}: bad ${c}${close}`);
    return j + 1;
  }
  if (!(c in ALIGN))
    throw new DBusMarshalError(`signature ${JSON.stringify(sig)}: unknown type code ${JSON.stringify(c)}`);
  return i + 1;
}

/** Appends values to a growing buffer; offsets (and so alignment) count from the start of the message. */
export class Writer {
  private buf = Buffer.alloc(256);
  private len = 0;

  constructor(private readonly base = 0) {}

  get length(): number {
    return this.len;
  }

  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  align(n: number): void {
    const pad = (n - ((this.base + this.len) % n)) % n;
    this.room(pad);
    this.buf.fill(0, this.len, this.len + pad);
    this.len += pad;
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }

  u8(v: number): void {
    this.room(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }

  u32(v: number): void {
    this.align(4);
    this.room(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }

  /** Overwrites a u32 written earlier (an array's length, known only after its elements). */
  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v, at);
  }

  /** Writes every value of `values` with the signature `sig` (a sequence of complete types). */
  write(sig: string, values: unknown[]): void {
    const types = splitSignature(sig);
    if (types.length !== values.length)
      throw new DBusMarshalError(
        `signature ${JSON.stringify(sig)} has ${types.length} types, but ${values.length} values were given`,
      );
    types.forEach((t, i) => this.value(t, values[i]));
  }

  value(t: string, v: unknown): void {
    const c = t[0];
    switch (c) {
      case 'y':
        return this.u8(int(v, 0, 0xff, t));
      case 'b':
        if (typeof v !== 'boolean') throw bad(t, v);
        return this.u32(v ? 1 : 0);
      case 'n':
      case 'q': {
        const n = c === 'n' ? int(v, -0x8000, 0x7fff, t) : int(v, 0, 0xffff, t);
        this.align(2);
        this.room(2);
        if (c === 'n') this.buf.writeInt16LE(n, this.len);
        else this.buf.writeUInt16LE(n, this.len);
        this.len += 2;
        return;
      }
      case 'i':
        this.align(4);
        this.room(4);
        this.buf.writeInt32LE(int(v, -0x80000000, 0x7fffffff, t), this.len);
        this.len += 4;
        return;
      case 'u':
      case 'h':
        return this.u32(int(v, 0, 0xffffffff, t));
      case 'x':
      case 't': {
        const big =
          typeof v === 'bigint' ? v : typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : undefined;
        if (big === undefined) throw bad(t, v);
        if (c === 't' ? big < 0n || big > 0xffffffffffffffffn : big < -(1n << 63n) || big >= 1n << 63n) throw bad(t, v);
        this.align(8);
        this.room(8);
        if (c === 't') this.buf.writeBigUInt64LE(big, this.len);
        else this.buf.writeBigInt64LE(big, this.len);
        this.len += 8;
        return;
      }
      case 'd':
        if (typeof v !== 'number') throw bad(t, v);
        this.align(8);
        this.room(8);
        this.buf.writeDoubleLE(v, this.len);
        this.len += 8;
        return;
      case 's':
      case 'o': {
        if (typeof v !== 'string') throw bad(t, v);
        if (c === 'o' && !OBJECT_PATH.test(v)) throw new DBusMarshalError(`${JSON.stringify(v)} is not an object path`);
        const b = Buffer.from(v, 'utf8');
        if (b.includes(0)) throw new DBusMarshalError(`a string holds a NUL byte`);
        this.u32(b.length);
        this.bytes(b);
        return this.u8(0);
      }
      case 'g': {
        if (typeof v !== 'string' || v.length > 255) throw bad(t, v);
        splitSignature(v);
        this.u8(v.length);
        this.bytes(Buffer.from(v, 'ascii'));
        return this.u8(0);
      }
      case 'v': {
        if (!(v instanceof Variant)) throw bad(t, v);
        if (splitSignature(v.signature).length !== 1)
          throw new DBusMarshalError(`variant signature ${JSON.stringify(v.signature)} is not one complete type`);
        this.value('g', v.signature);
        return this.value(v.signature, v.value);
      }
      case '(': {
        const members = splitSignature(t.slice(1, -1));
        if (!Array.isArray(v) || v.length !== members.length) throw bad(t, v);
        this.align(8);
        members.forEach((m, i) => this.value(m, v[i]));
        return;
      }
      case 'a': {
        const elem = t.slice(1);
        const items: unknown[] =
          elem === 'y' && Buffer.isBuffer(v)
            ? [...v]
            : Array.isArray(v)
              ? v
              : (() => {
                  throw bad(t, v);
                })();
        this.u32(0);
        const lenAt = this.len - 4;
        // The padding to the first element's alignment is not part of the length, even with no elements.
        this.align(ALIGN[elem[0]]);
        const start = this.len;
        if (elem[0] === '{') {
          const [k, val] = splitSignature(elem.slice(1, -1));
          for (const item of items) {
            if (!Array.isArray(item) || item.length !== 2) throw bad(elem, item);
            this.align(8);
            this.value(k, item[0]);
            this.value(val, item[1]);
          }
        } else for (const item of items) this.value(elem, item);
        const n = this.len - start;
        if (n > MAX_ARRAY) throw new DBusMarshalError(`array of ${n} bytes is longer than D-Bus allows`);
        this.patchU32(lenAt, n);
        return;
      }
      default:
        throw new DBusMarshalError(`cannot write type ${JSON.stringify(t)}`);
    }
  }
}

function int(v: unknown, min: number, max: number, t: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(t, v);
  return v;
}

function bad(t: string, v: unknown): DBusMarshalError {
  const shown =
    typeof v === 'bigint'
      ? `${v}n`
      : typeof v === 'object' && v !== null
        ? Array.isArray(v)
          ? `an array of ${v.length}`
          : 'an object'
        : JSON.stringify(v);
  return new DBusMarshalError(`value ${shown} does not fit type ${JSON.stringify(t)}`);
}

/** Reads values from a message; offsets count from the message start (`base` is where buf begins). */
export class Reader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly little: boolean,
    private readonly base = 0,
  ) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new DBusMarshalError('message is shorter than its contents say');
  }

  align(n: number): void {
    this.pos += (n - ((this.base + this.pos) % n)) % n;
    if (this.pos > this.buf.length) throw new DBusMarshalError('message is shorter than its contents say');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  u32(): number {
    this.align(4);
    this.need(4);
    const v = this.little ? this.buf.readUInt32LE(this.pos) : this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  read(sig: string): unknown[] {
    return splitSignature(sig).map((t) => this.value(t));
  }

  value(t: string): unknown {
    const b = this.buf;
    const L = this.little;
    switch (t[0]) {
      case 'y':
        return this.u8();
      case 'b': {
        const v = this.u32();
        if (v > 1) throw new DBusMarshalError(`boolean holds ${v}`);
        return v === 1;
      }
      case 'n':
      case 'q': {
        this.align(2);
        this.need(2);
        const v =
          t === 'n'
            ? L
              ? b.readInt16LE(this.pos)
              : b.readInt16BE(this.pos)
            : L
              ? b.readUInt16LE(this.pos)
              : b.readUInt16BE(this.pos);
        this.pos += 2;
        return v;
      }
      case 'i': {
        this.align(4);
        this.need(4);
        const v = L ? b.readInt32LE(this.pos) : b.readInt32BE(this.pos);
        this.pos += 4;
        return v;
      }
      case 'u':
      case 'h':
        return this.u32();
      case 'x':
      case 't': {
        this.align(8);
        this.need(8);
        const v =
          t === 't'
            ? L
              ? b.readBigUInt64LE(this.pos)
              : b.readBigUInt64BE(this.pos)
            : L
              ? b.readBigInt64LE(this.pos)
              : b.readBigInt64BE(this.pos);
        this.pos += 8;
        return v;
      }
      case 'd': {
        this.align(8);
        this.need(8);
        const v = L ? b.readDoubleLE(this.pos) : b.readDoubleBE(this.pos);
        this.pos += 8;
        return v;
      }
      case 's':
      case 'o': {
        const n = this.u32();
        this.need(n + 1);
        const s = b.toString('utf8', this.pos, this.pos + n);
        this.pos += n + 1;
        return s;
      }
      case 'g': {
        const n = this.u8();
        this.need(n + 1);
        const s = b.toString('ascii', this.pos, this.pos + n);
        this.pos += n + 1;
        return s;
      }
      case 'v': {
        const sig = this.value('g') as string;
        if (splitSignature(sig).length !== 1)
          throw new DBusMarshalError(`variant signature ${JSON.stringify(sig)} is not one complete type`);
        return new Variant(sig, this.value(sig));
      }
      case '(': {
        this.align(8);
        return splitSignature(t.slice(1, -1)).map((m) => this.value(m));
      }
      case 'a': {
        const n = this.u32();
        if (n > MAX_ARRAY) throw new DBusMarshalError(`array of ${n} bytes is longer than D-Bus allows`);
        const elem = t.slice(1);
        this.align(ALIGN[elem[0]]);
        const end = this.pos + n;
        this.need(n);
        if (elem === 'y') {
          this.pos = end;
          return Buffer.from(b.subarray(end - n, end));
        }
        const out: unknown[] = [];
        const kv = elem[0] === '{' ? splitSignature(elem.slice(1, -1)) : undefined;
        while (this.pos < end) {
          if (kv) {
            this.align(8);
            out.push([this.value(kv[0]), this.value(kv[1])]);
          } else out.push(this.value(elem));
        }
        if (this.pos !== end) throw new DBusMarshalError('array elements overrun the array length');
        return out;
      }
      default:
        throw new DBusMarshalError(`cannot read type ${JSON.stringify(t)}`);
    }
  }
}

// --- messages ---------------------------------------------------------------------------------------------

export const enum MessageType {
  MethodCall = 1,
  MethodReturn = 2,
  Error = 3,
  Signal = 4,
}

/** Header field codes (the specification's table). */
const FIELD = {
  path: 1,
  interface: 2,
  member: 3,
  errorName: 4,
  replySerial: 5,
  destination: 6,
  sender: 7,
  signature: 8,
  unixFds: 9,
} as const;
const FIELD_SIG: Record<number, string> = { 1: 'o', 2: 's', 3: 's', 4: 's', 5: 'u', 6: 's', 7: 's', 8: 'g', 9: 'u' };

export interface Message {
  type: MessageType;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature: string;
  body: unknown[];
}

/** NO_REPLY_EXPECTED */
export const FLAG_NO_REPLY = 1;

/** One message as bytes (little-endian, protocol version 1). */
export function encodeMessage(m: Omit<Message, 'flags'> & { flags?: number }): Buffer {
  const body = new Writer(0);
  body.write(m.signature, m.body);
  const head = new Writer(0);
  head.bytes(Buffer.from([0x6c, m.type, m.flags ?? 0, 1]));
  head.u32(body.length);
  head.u32(m.serial);
  const fields: [number, Variant][] = [];
  const add = (code: number, v: unknown) => {
    if (v !== undefined && v !== '') fields.push([code, new Variant(FIELD_SIG[code], v)]);
  };
  add(FIELD.path, m.path);
  add(FIELD.interface, m.interface);
  add(FIELD.member, m.member);
  add(FIELD.errorName, m.errorName);
  add(FIELD.replySerial, m.replySerial);
  add(FIELD.destination, m.destination);
  add(FIELD.sender, m.sender);
  add(FIELD.signature, m.signature);
  head.value('a(yv)', fields);
  head.align(8);
  return Buffer.concat([head.result(), body.result()]);
}

/**
 * The length of the first complete message in buf, or 0 when more bytes are needed. The fixed header says
 * how long the fields array and the body are.
 */
export function messageLength(buf: Buffer): number {
  if (buf.length < 16) return 0;
  const little = buf[0] === 0x6c;
  if (!little && buf[0] !== 0x42) throw new DBusMarshalError(`bad endianness byte ${buf[0]}`);
  const bodyLen = little ? buf.readUInt32LE(4) : buf.readUInt32BE(4);
  const fieldsLen = little ? buf.readUInt32LE(12) : buf.readUInt32BE(12);
  const headerLen = 16 + fieldsLen + ((8 - (fieldsLen % 8)) % 8);
  const total = headerLen + bodyLen;
  if (total > 128 * 1024 * 1024) throw new DBusMarshalError(`message of ${total} bytes is longer than D-Bus allows`);
  return buf.length >= total ? total : 0;
}

/** Decodes one complete message (as delimited by messageLength). */
export function decodeMessage(buf: Buffer): Message {
  const little = buf[0] === 0x6c;
  const r = new Reader(buf, little);
  r.pos = 1;
  const type = r.u8() as MessageType;
  const flags = r.u8();
  const version = r.u8();
  if (version !== 1) throw new DBusMarshalError(`protocol version ${version}`);
  const bodyLen = r.u32();
  const serial = r.u32();
  const fields = r.value('a(yv)') as [number, Variant][];
  r.align(8);
  const m: Message = { type, flags, serial, signature: '', body: [] };
  for (const [code, v] of fields) {
    switch (code) {
      case FIELD.path:
        m.path = v.value as string;
        break;
      case FIELD.interface:
        m.interface = v.value as string;
        break;
      case FIELD.member:
        m.member = v.value as string;
        break;
      case FIELD.errorName:
        m.errorName = v.value as string;
        break;
      case FIELD.replySerial:
        m.replySerial = v.value as number;
        break;
      case FIELD.destination:
        m.destination = v.value as string;
        break;
      case FIELD.sender:
        m.sender = v.value as string;
        break;
      case FIELD.signature:
        m.signature = v.value as string;
        break;
      default:
        break; // unknown fields are ignored, as the specification asks
    }
  }
  const start = r.pos;
  if (start + bodyLen > buf.length) throw new DBusMarshalError('message body is shorter than the header says');
  const body = new Reader(buf.subarray(start, start + bodyLen), little, start);
  m.body = body.read(m.signature);
  if (body.pos !== bodyLen) throw new DBusMarshalError(`body has ${bodyLen - body.pos} bytes after its values`);
  return m;
}
