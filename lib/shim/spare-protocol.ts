// The spare claim: how a launcher hands a new group to a waiting spare shim server (lib/shim/spare.ts) instead of
// starting Node. This comment is the specification; src-native/launcher speaks it, lib/shim/spare-client.ts too.
//
// Socket: /run/containerd/hako-shims/spare-<H>.sock, H the first 32 hex digits (lower case) of the sha256 of
// containerd's -address as the launcher got it (one spare per containerd instance). SOCK_STREAM, mode 0600; the
// spare serves only a peer of its own uid and gid (SO_PEERCRED), as a group's server does.
//
// Request (claimer -> spare), sent at once after connect:
//   "HSPR" (4 bytes), N (u32, little-endian), then N bytes: NUL-terminated strings, in this order:
//     cwd      the bundle directory (the launcher's working directory), absolute
//     socket   the group's socket path: /run/containerd/s/<64 lower-case hex digits>, as `start` computes it
//     argc     decimal, 1..64
//     argv     argc strings: the launcher's arguments after argv[0] (-namespace NS -address A -id ID ... start)
//     envc     decimal, 0..4096
//     envp     envc strings "K=V" (K non-empty): the launcher's environment (TTRPC_ADDRESS, NAMESPACE, ...)
//   N is at most 256 KiB; the N bytes hold exactly these strings and nothing after them. The -address in argv
//   must be the spare's own, the subcommand `start`, -namespace and -id present.
// Answer (spare -> claimer): "unix://<socket>" (no NUL, no newline), then the spare closes the connection. The
//   claimer reads to EOF: that exact answer means the group's server listens on <socket>, its record is written,
//   and <cwd>/address holds the same string; the claimer prints it for containerd. Anything else (EOF with no
//   bytes, a refused connection, no socket) means no spare served the claim: the claimer starts a server the
//   normal way. A claim that breaks a rule above gets EOF and no answer, and the spare keeps waiting for another.
// A spare serves one claim: it unlinks its socket and stops listening before it works on it, so a second claimer
// gets EOF (or ECONNREFUSED) and falls back.
import * as path from 'path';
import { SHIM_RECORDS, SOCKET_DIR } from './address';

const cryptoModule = (): typeof import('crypto') => require('crypto');

export const CLAIM_MAGIC = 'HSPR';
export const CLAIM_HEADER_BYTES = 8;
export const MAX_CLAIM_BYTES = 256 * 1024;
export const MAX_CLAIM_ARGS = 64;
export const MAX_CLAIM_ENV = 4096;

export interface Claim {
  cwd: string;
  socket: string;
  args: string[];
  env: string[];
}

export class ClaimError extends Error {}

/** The spare's socket for containerd at `address`. */
export function spareSocketPath(address: string): string {
  const h = cryptoModule().createHash('sha256').update(address).digest('hex').slice(0, 32);
  return path.join(SHIM_RECORDS, `spare-${h}.sock`);
}

export function encodeClaim(c: Claim): Buffer {
  const strings = [c.cwd, c.socket, String(c.args.length), ...c.args, String(c.env.length), ...c.env];
  const body = Buffer.concat(strings.map((s) => Buffer.from(`${s}\0`)));
  const header = Buffer.alloc(CLAIM_HEADER_BYTES);
  header.write(CLAIM_MAGIC, 0, 'latin1');
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body]);
}

/**
 * The body's length from the first 8 bytes, or a ClaimError (wrong magic, too long). The reader waits for that
 * many bytes more.
 */
export function claimLength(header: Buffer): number {
  if (header.length < CLAIM_HEADER_BYTES) throw new ClaimError('claim: short header');
  if (header.toString('latin1', 0, 4) !== CLAIM_MAGIC) throw new ClaimError('claim: magic is not "HSPR"');
  const n = header.readUInt32LE(4);
  if (n > MAX_CLAIM_BYTES) throw new ClaimError(`claim: length ${n} is over ${MAX_CLAIM_BYTES}`);
  return n;
}

function count(s: string | undefined, field: string, max: number): number {
  if (s === undefined || !/^(0|[1-9][0-9]{0,5})$/.test(s))
    throw new ClaimError(`claim: ${field} is not a decimal count`);
  const n = Number(s);
  if (n > max) throw new ClaimError(`claim: ${field} ${n} is over ${max}`);
  return n;
}

/** The claim in a body of claimLength() bytes; a ClaimError names the field that breaks the rules above. */
export function decodeClaim(body: Buffer): Claim {
  if (body.length === 0 || body[body.length - 1] !== 0) throw new ClaimError('claim: body does not end with NUL');
  const strings = body.toString('utf8', 0, body.length - 1).split('\0');
  let i = 0;
  const next = (): string | undefined => strings[i++];
  const cwd = next() ?? '';
  if (!path.isAbsolute(cwd) || path.normalize(cwd) !== cwd)
    throw new ClaimError(`claim: cwd ${JSON.stringify(cwd)} is not an absolute, normal path`);
  const socket = next() ?? '';
  if (path.dirname(socket) !== SOCKET_DIR || !/^[0-9a-f]{64}$/.test(path.basename(socket)))
    throw new ClaimError(`claim: socket ${JSON.stringify(socket)} is not a group socket in ${SOCKET_DIR}`);
  const argc = count(next(), 'argc', MAX_CLAIM_ARGS);
  if (argc === 0) throw new ClaimError('claim: argc is 0');
  const args: string[] = [];
  for (let k = 0; k < argc; k++) {
    const a = next();
    if (a === undefined) throw new ClaimError(`claim: ${argc} arguments announced, ${k} sent`);
    args.push(a);
  }
  const envc = count(next(), 'envc', MAX_CLAIM_ENV);
  const env: string[] = [];
  for (let k = 0; k < envc; k++) {
    const e = next();
    if (e === undefined) throw new ClaimError(`claim: ${envc} environment strings announced, ${k} sent`);
    if (e.indexOf('=') < 1) throw new ClaimError(`claim: environment string ${k} is not K=V`);
    env.push(e);
  }
  if (i !== strings.length) throw new ClaimError(`claim: ${strings.length - i} strings after the environment`);
  return { cwd, socket, args, env };
}
