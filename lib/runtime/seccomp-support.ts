// Seccomp in the lifecycle: compile the config's policy for the init helper to load, and hand the
// notify listener fd to `listenerPath` the way runtime-spec config-linux.md describes.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import type { Logger } from '../log';
import { sendToPathWithin } from './control';
import { OCI_VERSION, type Spec } from '../oci/types';
import { writeAtomic, type StoredState } from '../state/store';
import { ensureCacheDir } from './cache-dir';

/** Bump when the compiler's output changes, so cached programs are not reused. */
const COMPILER_VERSION = 3; // 3: repeated argument index ORed, MASKED_EQ masks valueTwo (libseccomp)

export interface ProcessSeccomp {
  filter: Buffer;
  flags: number;
  listenerPath?: string;
}

/** 32-bit FNV-1a, as hex: a cheap spread for cache file names (the crypto module costs ms to load). */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

const memo = new Map<string, { filter: Buffer; flags: number; usesNotify: boolean }>();

/**
 * Compile the config's seccomp policy. Devices run the same few profiles over and over, so results are
 * memoised in the process and, for the CLI, in `cacheDir` (a tmpfs directory of hako's own, cache-dir.ts, never
 * the state root), keyed by a hash of the policy, the architecture and the compiler version.
 */
export function compileProcessSeccomp(spec: Spec, log: Logger, cacheDir?: string): ProcessSeccomp | null {
  const sc = spec.linux?.seccomp;
  if (!sc) return null;
  // The cache file holds the policy text it was compiled from and is used only when that text matches
  // exactly: the file name's hash only spreads entries, it is never trusted.
  const text = `${COMPILER_VERSION}\0${process.arch}\0${JSON.stringify(sc)}`;
  let compiled = memo.get(text);
  const file = cacheDir ? path.join(cacheDir, `seccomp-${fnv1a(text)}.bpf`) : undefined;
  if (!compiled && file && ensureCacheDir(cacheDir!)) {
    try {
      const b = fs.readFileSync(file);
      const textLen = b.readUInt32LE(8);
      if (b.toString('utf8', 12, 12 + textLen) === text)
        compiled = { flags: b.readUInt32LE(0), usesNotify: b.readUInt32LE(4) === 1, filter: b.subarray(12 + textLen) };
    } catch {
      /* not cached yet */
    }
  }
  if (!compiled) {
    // Required here, not at the top: the compiler and its syscall tables take ~6 ms to load, which a
    // cached program does not need.
    const { compileSeccomp } = require('../seccomp/compile') as typeof import('../seccomp/compile');
    compiled = compileSeccomp(sc, { debug: (m) => log.debug(m) });
    if (file) {
      try {
        const body = Buffer.from(text);
        const head = Buffer.alloc(12);
        head.writeUInt32LE(compiled.flags, 0);
        head.writeUInt32LE(compiled.usesNotify ? 1 : 0, 4);
        head.writeUInt32LE(body.length, 8);
        if (ensureCacheDir(cacheDir!)) writeAtomic(file, Buffer.concat([head, body, compiled.filter]));
      } catch {
        /* a cache is optional */
      }
    }
  }
  memo.set(text, compiled);
  return {
    filter: compiled.filter,
    flags: compiled.flags,
    listenerPath: compiled.usesNotify ? sc.listenerPath : undefined,
  };
}

/** Send the container process state and the listener fd (SCM_RIGHTS) to the seccomp agent. */
export async function sendSeccompListener(
  spec: Spec,
  s: StoredState,
  fd: number,
  status: 'creating' | 'running' = 'creating',
  pid = s.pid,
): Promise<void> {
  const sc = spec.linux?.seccomp;
  if (!sc?.listenerPath) throw new HakoError('seccomp listener fd received but linux.seccomp.listenerPath is not set');
  const message = {
    ociVersion: OCI_VERSION,
    fds: ['seccompFd'],
    pid,
    metadata: sc.listenerMetadata ?? '',
    state: {
      ociVersion: OCI_VERSION,
      id: s.id,
      status,
      pid: s.pid,
      bundle: s.bundle,
      annotations: s.annotations ?? {},
    },
  };
  try {
    await sendToPathWithin(sc.listenerPath, Buffer.from(JSON.stringify(message)), [fd]);
  } catch (e) {
    throw new HakoError(
      `linux.seccomp.listenerPath: send the seccomp listener to ${sc.listenerPath}: ${(e as Error).message}`,
      {
        field: 'linux.seccomp.listenerPath',
      },
    );
  }
}
