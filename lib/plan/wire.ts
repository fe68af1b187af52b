// TypeScript side of the runtime <-> init wire format. src-native/common/wire.h is the definition;
// the numbers here mirror it, and test/wire.test.ts round-trips messages through the C++ decoder.

export const MAGIC = 0x314f4b48;
export const HEADER_SIZE = 12;
export const MAX_MESSAGE = 4 << 20;

export const Msg = {
  PLAN: 1,
  CONTINUE: 2,
  START: 3,
  SETUP: 4,
  READY: 10,
  ERROR: 11,
  PAUSE: 12,
  FD: 13,
  STEP: 14,
} as const;

export const Tag = {
  ROOTFS: 1,
  ROOTFS_READONLY: 2,
  NO_PIVOT: 3,
  ROOTFS_PROPAGATION: 4,
  HOSTNAME: 5,
  DOMAINNAME: 6,
  MOUNT: 7,
  MASKED_PATH: 8,
  READONLY_PATH: 9,
  DEVICE: 10,
  SYMLINK: 11,
  SYSCTL: 12,
  OOM_SCORE_ADJ: 13,
  PERSONALITY: 14,
  CONSOLE: 15,
  DEBUG: 16,
  PAUSE: 17,
  NEW_MOUNT_NS: 18,
  PROCESS: 19,
  DEV_BIND_HOST: 20,
  SECCOMP_EARLY: 21,
  UNSHARE_CGROUPNS: 22,
  TIME_NS: 23,
  CGROUP_PROCS: 24,
  NEW_KEYRING: 25,
  LOOPBACK_UP: 26,
  M_SOURCE: 100,
  M_DEST: 101,
  M_FSTYPE: 102,
  M_FLAGS: 103,
  M_DATA: 104,
  M_PROPAGATION: 105,
  M_BIND: 106,
  M_ATTR_SET: 107,
  M_ATTR_CLR: 108,
  M_OPTIONAL: 109,
  M_IDMAP: 110,
  M_IDMAP_RECURSIVE: 111,
  M_COPYUP: 112,
  M_SOURCE_FD: 113,
  D_PATH: 120,
  D_TYPE: 121,
  D_MAJOR: 122,
  D_MINOR: 123,
  D_MODE: 124,
  D_UID: 125,
  D_GID: 126,
  K_A: 130,
  K_B: 131,
  P_ARG: 200,
  P_ENV: 201,
  P_CWD: 202,
  P_UID: 203,
  P_GID: 204,
  P_GIDS: 205,
  P_UMASK: 206,
  P_CAPS: 207,
  P_NNP: 208,
  P_RLIMIT: 209,
  P_SECCOMP: 210,
  P_SCHED: 211,
  P_IOPRIO: 212,
  P_AFFINITY: 213,
  P_APPARMOR: 214,
  P_SELINUX: 215,
  P_TERMINAL: 216,
  P_PRESERVE_FDS: 217,
  E_ERRNO: 300,
  E_STEP: 301,
  E_MESSAGE: 302,
  R_NAME: 310,
  R_POINT: 311,
} as const;

export const PausePoint = { PRE_PIVOT: 1 } as const;

/** Builds a record list. Nested records are built with a child Encoder and added with `nested`. */
export class Encoder {
  private chunks: Buffer[] = [];
  private size = 0;

  private push(tag: number, payload: Buffer): this {
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32LE(tag, 0);
    head.writeUInt32LE(payload.length, 4);
    this.chunks.push(head, payload);
    this.size += 8 + payload.length;
    return this;
  }

  str(tag: number, value: string): this {
    return this.push(tag, Buffer.from(value, 'utf8'));
  }

  u32(tag: number, value: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(value >>> 0, 0);
    return this.push(tag, b);
  }

  i32(tag: number, value: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32LE(value, 0);
    return this.push(tag, b);
  }

  u64(tag: number, value: bigint | number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), 0);
    return this.push(tag, b);
  }

  bytes(tag: number, value: Buffer): this {
    return this.push(tag, value);
  }

  nested(tag: number, child: Encoder): this {
    return this.push(tag, child.body());
  }

  body(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  /** The whole message: header + records. */
  message(type: number): Buffer {
    const body = this.body();
    if (body.length > MAX_MESSAGE) throw new Error(`setup message too large (${body.length} bytes)`);
    const head = Buffer.allocUnsafe(HEADER_SIZE);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(type, 4);
    head.writeUInt32LE(body.length, 8);
    return Buffer.concat([head, body]);
  }
}

export interface Record {
  tag: number;
  payload: Buffer;
}

/** Parse a message header + records (for messages coming back from the init helper). */
export function decodeMessage(buf: Buffer): { type: number; records: Record[] } {
  if (buf.length < HEADER_SIZE || buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(8) !== buf.length - HEADER_SIZE)
    throw new Error('malformed message from container init');
  return { type: buf.readUInt32LE(4), records: decodeRecords(buf.subarray(HEADER_SIZE)) };
}

export function decodeRecords(body: Buffer): Record[] {
  const out: Record[] = [];
  let off = 0;
  while (off < body.length) {
    if (body.length - off < 8) throw new Error('truncated record');
    const tag = body.readUInt32LE(off);
    const len = body.readUInt32LE(off + 4);
    if (len > body.length - off - 8) throw new Error('truncated record');
    out.push({ tag, payload: body.subarray(off + 8, off + 8 + len) });
    off += 8 + len;
  }
  return out;
}
