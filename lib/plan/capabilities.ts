// Which of a process's requested capabilities it can be given. runtime-spec (config.md, process.capabilities):
// a value that cannot be mapped to a kernel interface or cannot be granted MUST be logged as a warning, and
// the runtime SHOULD NOT fail for it (a restricted host, such as one whose bounding set lacks a capability,
// still runs `--privileged` containers with what it has).
import * as fs from 'fs';
import { CAPABILITIES, CAPABILITY_SETS } from '../oci/constants';
import type { Capabilities } from '../oci/types';

export interface CapabilityGrant {
  /** Bit masks in CAPABILITY_SETS order. */
  masks: bigint[];
  /** One line per problem, naming the field; empty when everything requested is granted. */
  warnings: string[];
}

let kernelLast: number | undefined;
/** [no user namespace, own user namespace]: fixed for the life of this process. */
const grantable: (bigint | undefined)[] = [];
let bits: Map<string, bigint> | undefined;

function allUpTo(last: number): bigint {
  return (1n << BigInt(last + 1)) - 1n;
}
const ALL = allUpTo(63);

/** The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap), or hako's own table's last. */
function kernelLastCapability(): number {
  if (kernelLast === undefined) {
    try {
      kernelLast = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'latin1').trim());
    } catch {
      kernelLast = NaN;
    }
    if (!Number.isInteger(kernelLast)) kernelLast = CAPABILITIES.length - 1;
  }
  return kernelLast;
}

/**
 * What the container's init can hold. In a user namespace of its own (created or joined) the kernel gives
 * it every capability there is, bounding set included; otherwise it inherits this process's credentials
 * and can hold no more than this process's permitted set.
 */
export function grantableCapabilities(inUserNamespace: boolean): bigint {
  const i = Number(inUserNamespace);
  if (grantable[i] === undefined) {
    const kernel = allUpTo(kernelLastCapability());
    const m = inUserNamespace ? null : /^CapPrm:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    grantable[i] = m ? BigInt(`0x${m[1]}`) & kernel : kernel;
  }
  return grantable[i]!;
}

/**
 * Masks for the init helper. Names hako does not know and capabilities that `grantable` lacks are left
 * out and reported, one line for each kind (the bounding set is only ever reduced, so a missing one needs
 * no drop).
 */
export function capabilityGrant(caps: Capabilities, field: string, grantable: bigint = ALL): CapabilityGrant {
  const unknown = new Map<string, string[]>();
  const unavailable = new Map<string, string[]>();
  const note = (m: Map<string, string[]>, name: string, set: string) => m.set(name, [...(m.get(name) ?? []), set]);
  const masks = CAPABILITY_SETS.map((set) => {
    let mask = 0n;
    for (const name of caps[set] ?? []) {
      const bit = (bits ??= new Map(CAPABILITIES.map((c, i) => [c, 1n << BigInt(i)]))).get(name);
      if (bit === undefined) note(unknown, name, set);
      else if (!(grantable & bit)) note(unavailable, name, set);
      else mask |= bit;
    }
    return mask;
  });
  const list = (m: Map<string, string[]>) => [...m].map(([name, sets]) => `${name} (${sets.join(', ')})`).join(', ');
  const warnings: string[] = [];
  if (unknown.size) warnings.push(`${field}: ignoring unknown capabilities: ${list(unknown)}`);
  if (unavailable.size)
    warnings.push(
      `${field}: cannot be granted on this host (not held by the runtime, or unknown to the kernel), the process starts without them: ${list(unavailable)}`,
    );
  return { masks, warnings };
}
