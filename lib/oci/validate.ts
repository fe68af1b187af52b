// Schema checks of config.json with errors that name the field. Deeper checks (mount options,
// seccomp, resources) live with the code that interprets those fields.
import { invalidField, shown } from '../errors';
import { CAPABILITY_SETS, NAMESPACE_FLAGS, RLIMITS } from './constants';
import type { Process, Spec } from './types';
import { checkDepth } from './depth';
import { validateResources } from './validate-resources';
import { checkPlanSize } from './plan-size';

/** The kernel's limits: NGROUPS_MAX, __NEW_UTS_LEN, a mount's data page, MAX_ARG_STRLEN (one execve string). */
const NGROUPS_MAX = 65536;
const UTS_LEN = 64;
const MOUNT_DATA_MAX = 4096;
const ARG_STRLEN_MAX = 32 * 4096;

/** The fields of a process that go to init, for the plan size check. */
function processParts(p: Record<string, unknown>, field: string): [string, unknown][] {
  const user = (p.user ?? {}) as Record<string, unknown>;
  return [
    [`${field}.args`, p.args],
    [`${field}.env`, p.env],
    [`${field}.cwd`, p.cwd],
    [`${field}.user.additionalGids`, user.additionalGids],
    [`${field}.capabilities`, p.capabilities],
    [`${field}.rlimits`, p.rlimits],
    [`${field}.apparmorProfile`, p.apparmorProfile],
    [`${field}.selinuxLabel`, p.selinuxLabel],
  ];
}

function maxBytes(v: Json, max: number, field: string, what: string): void {
  if (typeof v === 'string' && Buffer.byteLength(v) > max)
    throw invalidField(field, `is ${Buffer.byteLength(v)} bytes long; ${what} is at most ${max}`);
}

export { checkDepth, MAX_CONFIG_DEPTH } from './depth';

type Json = unknown;

function isObj(v: Json): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function expectType(v: Json, type: 'string' | 'number' | 'boolean' | 'object' | 'array', field: string): void {
  const ok =
    type === 'array'
      ? Array.isArray(v)
      : type === 'object'
        ? isObj(v)
        : typeof v === type && (type !== 'number' || Number.isFinite(v));
  if (!ok) throw invalidField(field, `must be ${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}`);
}

function optional(v: Json, type: Parameters<typeof expectType>[1], field: string): void {
  if (v !== undefined && v !== null) expectType(v, type, field);
}

function expectInt(v: Json, field: string, min = 0, max = 2 ** 32 - 1): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw invalidField(field, `must be an integer between ${min} and ${max}`);
}

function stringArray(v: Json, field: string): void {
  if (v === undefined || v === null) return;
  expectType(v, 'array', field);
  (v as unknown[]).forEach((s, i) => expectType(s, 'string', `${field}[${i}]`));
}

export function validateProcess(p: Json, field = 'process'): asserts p is Process {
  // exec's and setup's --process files come here without the config's check.
  checkDepth(p, undefined, field);
  expectType(p, 'object', field);
  const proc = p as Record<string, unknown>;
  expectType(proc.user, 'object', `${field}.user`);
  const user = proc.user as Record<string, unknown>;
  expectInt(user.uid, `${field}.user.uid`);
  expectInt(user.gid, `${field}.user.gid`);
  if (user.umask !== undefined && user.umask !== null) expectInt(user.umask, `${field}.user.umask`, 0, 0o777);
  if (user.additionalGids !== undefined && user.additionalGids !== null) {
    expectType(user.additionalGids, 'array', `${field}.user.additionalGids`);
    const gids = user.additionalGids as unknown[];
    if (gids.length > NGROUPS_MAX)
      throw invalidField(
        `${field}.user.additionalGids`,
        `has ${gids.length} groups; the kernel takes at most ${NGROUPS_MAX} (NGROUPS_MAX)`,
      );
    gids.forEach((g, i) => expectInt(g, `${field}.user.additionalGids[${i}]`));
  }
  stringArray(proc.args, `${field}.args`);
  if (!Array.isArray(proc.args) || proc.args.length === 0)
    throw invalidField(`${field}.args`, 'must hold at least one argument');
  stringArray(proc.env, `${field}.env`);
  // As runc's init (prepareEnv) refuses them, but here, before anything is made: NAME=value with a name, and no
  // NUL (execve would cut the string there). Without this an entry "=x" reached the init.
  (proc.env as string[] | undefined)?.forEach((e, i) => {
    const eq = e.indexOf('=');
    if (eq < 0) throw invalidField(`${field}.env[${i}]`, "must be NAME=value: it has no '=' (as runc refuses)");
    if (eq === 0) throw invalidField(`${field}.env[${i}]`, 'must be NAME=value: the name is empty (as runc refuses)');
    if (e.includes('\u0000')) throw invalidField(`${field}.env[${i}]`, 'contains a NUL byte');
  });
  for (const k of ['args', 'env'] as const)
    (proc[k] as unknown[] | undefined)?.forEach((a, i) =>
      maxBytes(a, ARG_STRLEN_MAX, `${field}.${k}[${i}]`, 'one string of execve (MAX_ARG_STRLEN)'),
    );
  expectType(proc.cwd, 'string', `${field}.cwd`);
  if (!(proc.cwd as string).startsWith('/')) throw invalidField(`${field}.cwd`, 'must be an absolute path');
  optional(proc.terminal, 'boolean', `${field}.terminal`);
  optional(proc.noNewPrivileges, 'boolean', `${field}.noNewPrivileges`);
  if (proc.oomScoreAdj !== undefined) expectInt(proc.oomScoreAdj, `${field}.oomScoreAdj`, -1000, 1000);
  if (proc.capabilities !== undefined && proc.capabilities !== null) {
    expectType(proc.capabilities, 'object', `${field}.capabilities`);
    for (const [set, list] of Object.entries(proc.capabilities as Record<string, unknown>)) {
      if (!(CAPABILITY_SETS as readonly string[]).includes(set))
        throw invalidField(`${field}.capabilities.${set}`, 'unknown capability set');
      // An unknown name is a warning, not an error (runtime-spec; plan/capabilities.ts).
      stringArray(list, `${field}.capabilities.${set}`);
    }
  }
  if (proc.rlimits !== undefined && proc.rlimits !== null) {
    expectType(proc.rlimits, 'array', `${field}.rlimits`);
    const seen = new Set<string>();
    (proc.rlimits as unknown[]).forEach((r, i) => {
      const f = `${field}.rlimits[${i}]`;
      expectType(r, 'object', f);
      const rl = r as Record<string, unknown>;
      expectType(rl.type, 'string', `${f}.type`);
      if (!((rl.type as string) in RLIMITS)) throw invalidField(`${f}.type`, `unknown rlimit ${shown(rl.type)}`);
      if (seen.has(rl.type as string)) throw invalidField(`${f}.type`, `duplicate rlimit ${shown(rl.type)}`);
      seen.add(rl.type as string);
      expectInt(rl.soft, `${f}.soft`, 0, Number.MAX_VALUE);
      expectInt(rl.hard, `${f}.hard`, 0, Number.MAX_VALUE);
      if ((rl.soft as number) > (rl.hard as number)) throw invalidField(`${f}.soft`, 'must not exceed hard');
    });
  }
  checkPlanSize(processParts(proc, field));
}

export function validateSpec(spec: Json): asserts spec is Spec {
  // First: everything after this (the validators, JSON.stringify of the state) recurses over the config.
  checkDepth(spec);
  expectType(spec, 'object', 'config.json');
  const s = spec as Record<string, unknown>;
  expectType(s.ociVersion, 'string', 'ociVersion');
  if (!/^1\.\d+\.\d+/.test(s.ociVersion as string))
    throw invalidField('ociVersion', `unsupported version ${shown(s.ociVersion)}`);
  expectType(s.root, 'object', 'root');
  const root = s.root as Record<string, unknown>;
  expectType(root.path, 'string', 'root.path');
  if (!root.path) throw invalidField('root.path', 'must not be empty');
  optional(root.readonly, 'boolean', 'root.readonly');
  // runtime-spec: `start` MUST fail when the config has no process. Refused here, at create, as runc does:
  // a container that can never start is of no use (fast setup's templates carry a process too, see README).
  if (s.process === undefined || s.process === null)
    throw invalidField(
      'process',
      'config.json has no process; a container needs one to be started (runtime-spec: start fails without it)',
    );
  validateProcess(s.process);
  optional(s.hostname, 'string', 'hostname');
  optional(s.domainname, 'string', 'domainname');
  maxBytes(s.hostname, UTS_LEN, 'hostname', "a host name (the kernel's __NEW_UTS_LEN)");
  maxBytes(s.domainname, UTS_LEN, 'domainname', "a domain name (the kernel's __NEW_UTS_LEN)");
  if (s.annotations !== undefined) {
    expectType(s.annotations, 'object', 'annotations');
    for (const [k, v] of Object.entries(s.annotations as object)) expectType(v, 'string', `annotations.${k}`);
  }
  if (s.mounts !== undefined && s.mounts !== null) {
    expectType(s.mounts, 'array', 'mounts');
    (s.mounts as unknown[]).forEach((m, i) => {
      expectType(m, 'object', `mounts[${i}]`);
      const mm = m as Record<string, unknown>;
      expectType(mm.destination, 'string', `mounts[${i}].destination`);
      optional(mm.type, 'string', `mounts[${i}].type`);
      optional(mm.source, 'string', `mounts[${i}].source`);
      stringArray(mm.options, `mounts[${i}].options`);
      // The options that are not flags go to mount(2) as its data, one page at most.
      (mm.options as unknown[] | undefined)?.forEach((o, j) =>
        maxBytes(o, MOUNT_DATA_MAX, `mounts[${i}].options[${j}]`, 'a mount option (the data of mount(2) is one page)'),
      );
      maxBytes(mm.destination, MOUNT_DATA_MAX, `mounts[${i}].destination`, 'a path (PATH_MAX)');
      maxBytes(mm.source, MOUNT_DATA_MAX, `mounts[${i}].source`, 'a path (PATH_MAX)');
    });
  }
  if (s.hooks !== undefined && s.hooks !== null) {
    expectType(s.hooks, 'object', 'hooks');
    for (const [kind, list] of Object.entries(s.hooks as object)) {
      if (!['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'].includes(kind))
        throw invalidField(`hooks.${kind}`, 'unknown hook kind');
      expectType(list, 'array', `hooks.${kind}`);
      (list as unknown[]).forEach((h, i) => {
        const f = `hooks.${kind}[${i}]`;
        expectType(h, 'object', f);
        const hh = h as Record<string, unknown>;
        expectType(hh.path, 'string', `${f}.path`);
        if (!(hh.path as string).startsWith('/')) throw invalidField(`${f}.path`, 'must be an absolute path');
        stringArray(hh.args, `${f}.args`);
        stringArray(hh.env, `${f}.env`);
        if (hh.timeout !== undefined && hh.timeout !== null) expectInt(hh.timeout, `${f}.timeout`, 1);
      });
    }
  }
  if (s.linux !== undefined && s.linux !== null) validateLinux(s.linux);
  const linux = (s.linux ?? {}) as Record<string, unknown>;
  // Everything that goes into the plan, together (each part may be fine on its own).
  checkPlanSize([
    ...processParts(s.process as unknown as Record<string, unknown>, 'process'),
    ['mounts', s.mounts],
    ['hostname', s.hostname],
    ['domainname', s.domainname],
    ...(
      [
        'maskedPaths',
        'readonlyPaths',
        'devices',
        'sysctl',
        'namespaces',
        'uidMappings',
        'gidMappings',
        'seccomp',
      ] as const
    ).map((k): [string, unknown] => [`linux.${k}`, linux[k]]),
  ]);
  const nsTypes = new Set(((linux.namespaces as { type: string }[] | undefined) ?? []).map((n) => n.type));
  if (s.hostname && !nsTypes.has('uts'))
    throw invalidField('hostname', 'cannot set a hostname without a private UTS namespace');
  if (s.domainname && !nsTypes.has('uts'))
    throw invalidField('domainname', 'cannot set a domainname without a private UTS namespace');
  // Mappings only mean something for a user namespace (runc refuses them too). Idmapped mounts carry their own.
  if (!nsTypes.has('user')) {
    for (const f of ['uidMappings', 'gidMappings'] as const)
      if (Array.isArray(linux[f]) && (linux[f] as unknown[]).length > 0)
        throw invalidField(
          `linux.${f}`,
          'given, but linux.namespaces has no user namespace to map (add {"type": "user"} or drop the mappings)',
        );
  }
}

function validateMappings(v: Json, field: string): void {
  if (v === undefined || v === null) return;
  expectType(v, 'array', field);
  (v as unknown[]).forEach((m, i) => {
    expectType(m, 'object', `${field}[${i}]`);
    const mm = m as Record<string, unknown>;
    expectInt(mm.containerID, `${field}[${i}].containerID`);
    expectInt(mm.hostID, `${field}[${i}].hostID`);
    expectInt(mm.size, `${field}[${i}].size`, 1);
  });
}

function validateLinux(l: Json): void {
  expectType(l, 'object', 'linux');
  const linux = l as Record<string, unknown>;
  if (linux.namespaces !== undefined && linux.namespaces !== null) {
    expectType(linux.namespaces, 'array', 'linux.namespaces');
    const seen = new Set<string>();
    (linux.namespaces as unknown[]).forEach((n, i) => {
      expectType(n, 'object', `linux.namespaces[${i}]`);
      const ns = n as Record<string, unknown>;
      expectType(ns.type, 'string', `linux.namespaces[${i}].type`);
      if (!((ns.type as string) in NAMESPACE_FLAGS))
        throw invalidField(`linux.namespaces[${i}].type`, `unknown namespace type ${shown(ns.type)}`);
      if (seen.has(ns.type as string))
        throw invalidField(`linux.namespaces[${i}].type`, `duplicate namespace ${shown(ns.type)}`);
      seen.add(ns.type as string);
      optional(ns.path, 'string', `linux.namespaces[${i}].path`);
      if (ns.path && !(ns.path as string).startsWith('/'))
        throw invalidField(`linux.namespaces[${i}].path`, 'must be an absolute path');
    });
  }
  // runtime-spec 1.3 fields this build does not implement: refusing beats silently running without them.
  for (const f of ['netDevices', 'memoryPolicy', 'intelRdt'] as const)
    if (linux[f] !== undefined && linux[f] !== null)
      throw invalidField(`linux.${f}`, 'is not supported by this hako build');
  validateMappings(linux.uidMappings, 'linux.uidMappings');
  validateMappings(linux.gidMappings, 'linux.gidMappings');
  optional(linux.cgroupsPath, 'string', 'linux.cgroupsPath');
  validateResources(linux.resources);
  optional(linux.rootfsPropagation, 'string', 'linux.rootfsPropagation');
  stringArray(linux.maskedPaths, 'linux.maskedPaths');
  stringArray(linux.readonlyPaths, 'linux.readonlyPaths');
  if (linux.sysctl !== undefined && linux.sysctl !== null) {
    expectType(linux.sysctl, 'object', 'linux.sysctl');
    for (const [k, v] of Object.entries(linux.sysctl as object)) expectType(v, 'string', `linux.sysctl.${k}`);
  }
  if (linux.devices !== undefined && linux.devices !== null) {
    expectType(linux.devices, 'array', 'linux.devices');
    (linux.devices as unknown[]).forEach((d, i) => {
      const f = `linux.devices[${i}]`;
      expectType(d, 'object', f);
      const dd = d as Record<string, unknown>;
      expectType(dd.path, 'string', `${f}.path`);
      if (!(dd.path as string).startsWith('/')) throw invalidField(`${f}.path`, 'must be an absolute path');
      if (!['c', 'b', 'u', 'p'].includes(dd.type as string))
        throw invalidField(`${f}.type`, 'must be one of c, b, u, p');
      if (dd.type !== 'p') {
        expectInt(dd.major, `${f}.major`);
        expectInt(dd.minor, `${f}.minor`);
      }
      if (dd.fileMode !== undefined && dd.fileMode !== null) {
        // Permission bits, optionally with the file type bits of st_mode (podman --privileged sends e.g.
        // 0o20666 for a character device): those must then name the device's type.
        expectInt(dd.fileMode, `${f}.fileMode`, 0, 0o177777);
        const fileType = (dd.fileMode as number) & 0o170000;
        const expected = { c: 0o020000, u: 0o020000, b: 0o060000, p: 0o010000 }[dd.type as 'c' | 'u' | 'b' | 'p'];
        if (fileType !== 0 && fileType !== expected)
          throw invalidField(
            `${f}.fileMode`,
            `file type bits 0o${fileType.toString(8)} do not match type "${dd.type}"`,
          );
      }
      if (dd.uid !== undefined && dd.uid !== null) expectInt(dd.uid, `${f}.uid`);
      if (dd.gid !== undefined && dd.gid !== null) expectInt(dd.gid, `${f}.gid`);
    });
  }
}
