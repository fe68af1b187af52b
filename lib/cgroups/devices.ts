// Device access rules: `linux.resources.devices` evaluated with cgroup v1 semantics.
//
// A v1 devices cgroup is a default (allow-all "blacklist" or deny-all "whitelist") plus a set of exceptions
// keyed by (type, major, minor); "a" rules reset the default and drop every exception, other rules add or
// remove exception bits. runc evaluates the OCI list with an emulator of exactly that, then (v1) writes the
// minimal transition into devices.allow/devices.deny or (v2) compiles the resulting exceptions into an eBPF
// program (every exception has the non-default verdict, so their order does not matter: the program returns
// the non-default verdict on the first match and the default otherwise). Doing the same here means one
// config behaves identically on v1 and v2.
//
// Like runc, removing permissions that a wider wildcard exception grants ("allow c *:* rwm" then
// "deny c 1:3 rwm") is an error: v1 would silently keep the access, which is worse than refusing.

import { HakoError } from '../errors';
import type { LinuxDeviceCgroup } from '../oci/types';

export type DeviceType = 'a' | 'b' | 'c';

/** Access bits in the BPF_DEVCG_ACC_* encoding: m=1, r=2, w=4. */
export const ACC_MKNOD = 1;
export const ACC_READ = 2;
export const ACC_WRITE = 4;
export const ACC_ALL = 7;

export interface DeviceRule {
  type: DeviceType;
  /** -1 = wildcard "*". */
  major: number;
  minor: number;
  /** Bitmask of ACC_*. */
  access: number;
  allow: boolean;
}

export function accessString(access: number): string {
  return (access & ACC_READ ? 'r' : '') + (access & ACC_WRITE ? 'w' : '') + (access & ACC_MKNOD ? 'm' : '');
}

/** The v1 file syntax: "c 1:3 rwm", "a *:* rwm". */
export function ruleLine(rule: DeviceRule): string {
  const n = (v: number): string => (v < 0 ? '*' : String(v));
  return `${rule.type} ${n(rule.major)}:${n(rule.minor)} ${accessString(rule.access)}`;
}

const MAX_DEV_NUMBER = 0x7fffffff;

/** Converts the OCI rules, validating them the way runc's specconv does (access must not be empty). */
export function parseDeviceRules(rules: LinuxDeviceCgroup[], fieldBase = 'linux.resources.devices'): DeviceRule[] {
  return rules.map((r, i) => {
    const field = `${fieldBase}[${i}]`;
    const bad = (why: string): HakoError => new HakoError(`${field}: ${why}`, { field, code: 'EINVAL_CONFIG' });
    const type = (r.type ?? 'a') === '' ? 'a' : (r.type ?? 'a');
    if (type !== 'a' && type !== 'b' && type !== 'c') throw bad(`invalid device type ${JSON.stringify(r.type)}`);
    const num = (v: number | undefined, what: string): number => {
      if (v === undefined || v === null || v === -1) return -1;
      if (!Number.isInteger(v) || v < 0 || v > MAX_DEV_NUMBER) throw bad(`invalid ${what} ${String(v)}`);
      return v;
    };
    const access = r.access ?? '';
    if (access === '') throw bad('access cannot be empty (use "rwm" for all)');
    let bits = 0;
    for (const ch of access) {
      if (ch === 'r') bits |= ACC_READ;
      else if (ch === 'w') bits |= ACC_WRITE;
      else if (ch === 'm') bits |= ACC_MKNOD;
      else throw bad(`invalid access ${JSON.stringify(access)}`);
    }
    return {
      type,
      major: type === 'a' ? -1 : num(r.major, 'major'),
      minor: type === 'a' ? -1 : num(r.minor, 'minor'),
      access: type === 'a' ? ACC_ALL : bits,
      allow: !!r.allow,
    };
  });
}

type Key = string; // "c:1:3"
const keyOf = (t: 'b' | 'c', major: number, minor: number): Key => `${t}:${major}:${minor}`;

interface Exception {
  type: 'b' | 'c';
  major: number;
  minor: number;
  access: number;
}

export class DeviceEmulator {
  /** true: blacklist (default allow, exceptions deny); false: whitelist (default deny, exceptions allow). */
  defaultAllow = false;
  private exceptions = new Map<Key, Exception>();

  /** A new cgroup in our hands starts as deny-all, which is what runc builds the target from. */
  static fromRules(rules: DeviceRule[]): DeviceEmulator {
    const e = new DeviceEmulator();
    rules.forEach((r, i) => e.apply(r, i));
    return e;
  }

  /**
   * Rebuilds the state of a v1 cgroup from devices.list. That file lists allowed devices only, so a blacklist
   * cgroup shows "a *:* rwm" and its deny exceptions are invisible: treat it as allow-all.
   */
  static fromList(text: string): DeviceEmulator {
    const e = new DeviceEmulator();
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      const m = /^([abc]) (\*|\d+):(\*|\d+) ([rwm]+)$/.exec(t);
      if (!m) throw new Error(`malformed devices.list line ${JSON.stringify(t)}`);
      const access = [...m[4]].reduce((a, c) => a | (c === 'r' ? ACC_READ : c === 'w' ? ACC_WRITE : ACC_MKNOD), 0);
      const num = (s: string): number => (s === '*' ? -1 : Number(s));
      e.apply({ type: m[1] as DeviceType, major: num(m[2]), minor: num(m[3]), access, allow: true });
    }
    return e;
  }

  apply(rule: DeviceRule, index = -1): void {
    if (rule.type === 'a') {
      this.defaultAllow = rule.allow;
      this.exceptions.clear();
      return;
    }
    // An allow in a whitelist (or a deny in a blacklist) adds an exception; the opposite removes one.
    if (rule.allow !== this.defaultAllow) this.add(rule);
    else this.remove(rule, index);
  }

  private add(rule: DeviceRule): void {
    const k = keyOf(rule.type as 'b' | 'c', rule.major, rule.minor);
    const old = this.exceptions.get(k);
    this.exceptions.set(k, {
      type: rule.type as 'b' | 'c',
      major: rule.major,
      minor: rule.minor,
      access: (old?.access ?? 0) | rule.access,
    });
  }

  private remove(rule: DeviceRule, index: number): void {
    const t = rule.type as 'b' | 'c';
    for (const [maj, min] of [
      [-1, rule.minor],
      [rule.major, -1],
      [-1, -1],
    ]) {
      if (maj === rule.major && min === rule.minor) continue;
      const wider = this.exceptions.get(keyOf(t, maj, min));
      if (wider && (wider.access & rule.access) !== 0) {
        const field = index >= 0 ? `linux.resources.devices[${index}]` : 'linux.resources.devices';
        throw new HakoError(
          `${field}: rule "${ruleLine(rule)}" (${rule.allow ? 'allow' : 'deny'}) cannot punch a hole in the wider ` +
            `rule "${ruleLine({ ...wider, allow: !rule.allow })}"; the devices cgroup would ignore it`,
          { field, code: 'EINVAL_CONFIG' },
        );
      }
    }
    const k = keyOf(t, rule.major, rule.minor);
    const old = this.exceptions.get(k);
    if (!old) return;
    const left = old.access & ~rule.access;
    if (left === 0) this.exceptions.delete(k);
    else this.exceptions.set(k, { ...old, access: left });
  }

  /** Exceptions sorted by (major, minor, type) so the output is stable. */
  entries(): Exception[] {
    return [...this.exceptions.values()].sort(
      (a, b) => a.major - b.major || a.minor - b.minor || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
    );
  }

  /**
   * The rules that take a cgroup from this state to target with the least disruption. A change of default
   * (or a blacklist source, whose deny exceptions we cannot see) needs a reset rule first; that is the
   * "deny all, then allow" sequence of a fresh container.
   */
  transition(target: DeviceEmulator): DeviceRule[] {
    const out: DeviceRule[] = [];
    let old = new Map(this.exceptions);
    if (this.defaultAllow || this.defaultAllow !== target.defaultAllow) {
      out.push({ type: 'a', major: -1, minor: -1, access: ACC_ALL, allow: target.defaultAllow });
      old = new Map();
    }
    const sorted = (m: Map<Key, Exception>): [Key, Exception][] =>
      [...m.entries()].sort(
        ([, a], [, b]) => a.major - b.major || a.minor - b.minor || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
      );
    for (const [k, ex] of sorted(old)) {
      const dropped = ex.access & ~(target.exceptions.get(k)?.access ?? 0);
      if (dropped) out.push({ ...ex, access: dropped, allow: target.defaultAllow });
    }
    // Allow rules go in the order the config lists them: the kernel keeps its list in write order, and
    // runtime-spec says entries are applied in order (runtime-tools checks devices.list against it).
    for (const [k, ex] of target.exceptions) {
      const gained = ex.access & ~(old.get(k)?.access ?? 0);
      if (gained) out.push({ ...ex, access: gained, allow: !target.defaultAllow });
    }
    return out;
  }

  /** Rules from a deny-all cgroup to this state (the program input for v2). */
  rules(): DeviceRule[] {
    return new DeviceEmulator().transition(this);
  }

  /**
   * Would this state allow the access? The kernel's v1 check (devcgroup_legacy_check_permission): in a
   * whitelist one exception must grant every requested bit; in a blacklist any exception that overlaps the
   * request denies it (open(O_RDWR) asks for r and w at once). Reference semantics for the BPF program tests.
   */
  allows(type: 'b' | 'c', major: number, minor: number, access: number): boolean {
    for (const ex of this.exceptions.values()) {
      if (ex.type !== type) continue;
      if (ex.major !== -1 && ex.major !== major) continue;
      if (ex.minor !== -1 && ex.minor !== minor) continue;
      if (this.defaultAllow ? (access & ex.access) !== 0 : (access & ex.access) === access) return !this.defaultAllow;
    }
    return this.defaultAllow;
  }

  equals(other: DeviceEmulator): boolean {
    if (this.defaultAllow !== other.defaultAllow || this.exceptions.size !== other.exceptions.size) return false;
    for (const [k, ex] of this.exceptions) if (other.exceptions.get(k)?.access !== ex.access) return false;
    return true;
  }
}

/**
 * The devices every container gets besides its config's own (runc's specconv AllowedDevices): mknod of any
 * node, and rwm on null, zero, full, random, urandom, tty, ptmx, /dev/pts/* and /dev/net/tun. The runtime
 * appends these (and one rule per `linux.devices` entry) after `linux.resources.devices`.
 */
export const DEFAULT_ALLOWED_DEVICES: LinuxDeviceCgroup[] = [
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
];
