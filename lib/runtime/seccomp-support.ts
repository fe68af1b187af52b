// Seccomp in the lifecycle: compile the config's policy for the init helper to load, and hand the
// notify listener fd to `listenerPath` the way runtime-spec config-linux.md describes.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import type { Logger } from '../log';
import { addon } from '../native/addon';
import { OCI_VERSION, type Spec } from '../oci/types';
import { writeAtomic, type StoredState } from '../state/store';

/** Bump when the compiler's output changes, so cached programs are not reused. */
const COMPILER_VERSION = 1;

export interface ProcessSeccomp {
  filter: Buffer;
  flags: number;
  listenerPath?: string;
}

const memo = new Map<string, { filter: Buffer; flags: number; usesNotify: boolean }>();

/**
 * Compile the config's seccomp policy. Devices run the same few profiles over and over, so results are
 * memoised in the process and, for the CLI, in `cacheDir` (a tmpfs directory of the state root), keyed by
 * a hash of the policy, the architecture and the compiler version.
 */
export function compileProcessSeccomp(spec: Spec, log: Logger, cacheDir?: string): ProcessSeccomp | null {
  const sc = spec.linux?.seccomp;
  if (!sc) return null;
  const key = crypto.createHash('sha256').update(`${COMPILER_VERSION}\0${process.arch}\0${JSON.stringify(sc)}`).digest('hex').slice(0, 32);
  let compiled = memo.get(key);
  const file = cacheDir ? path.join(cacheDir, `seccomp-${key}.bpf`) : undefined;
  if (!compiled && file) {
    try {
      const b = fs.readFileSync(file);
      compiled = { flags: b.readUInt32LE(0), usesNotify: b.readUInt32LE(4) === 1, filter: b.subarray(8) };
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
        const head = Buffer.alloc(8);
        head.writeUInt32LE(compiled.flags, 0);
        head.writeUInt32LE(compiled.usesNotify ? 1 : 0, 4);
        fs.mkdirSync(cacheDir!, { recursive: true, mode: 0o700 });
        writeAtomic(file, Buffer.concat([head, compiled.filter]));
      } catch {
        /* a cache is optional */
      }
    }
  }
  memo.set(key, compiled);
  return { filter: compiled.filter, flags: compiled.flags, listenerPath: compiled.usesNotify ? sc.listenerPath : undefined };
}

/** Send the container process state and the listener fd (SCM_RIGHTS) to the seccomp agent. */
export function sendSeccompListener(spec: Spec, s: StoredState, fd: number, status: 'creating' | 'running' = 'creating', pid = s.pid): void {
  const sc = spec.linux?.seccomp;
  if (!sc?.listenerPath) throw new HakoError('seccomp listener fd received but linux.seccomp.listenerPath is not set');
  const message = {
    ociVersion: OCI_VERSION,
    fds: ['seccompFd'],
    pid,
    metadata: sc.listenerMetadata ?? '',
    state: { ociVersion: OCI_VERSION, id: s.id, status, pid: s.pid, bundle: s.bundle, annotations: s.annotations ?? {} },
  };
  try {
    addon().sendToPath(sc.listenerPath, Buffer.from(JSON.stringify(message)), [fd]);
  } catch (e) {
    throw new HakoError(`linux.seccomp.listenerPath: send the seccomp listener to ${sc.listenerPath}: ${(e as Error).message}`, {
      field: 'linux.seccomp.listenerPath',
    });
  }
}
