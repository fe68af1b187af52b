// Where a container's cgroup lives, following runc's cgroupfs driver (libcontainer/cgroups/fs/paths.go,
// fs2/defaultpath.go, specconv CreateCgroupConfig):
//
// - The path is cleaned lexically first, so "../../x" cannot climb out of a hierarchy.
// - Absolute `linux.cgroupsPath` ("/docker/<id>"): relative to each hierarchy's mountpoint
//   (<mountpoint>/docker/<id>), whatever cgroup the runtime itself is in.
// - Relative ("foo/bar"): under the runtime's own cgroup read from /proc/self/cgroup.
//   v1: per controller, <mountpoint>/<own path relative to the mount root>/foo/bar.
//   v2: under the *parent* of the own cgroup, because the own cgroup has processes in it and the "no internal
//   processes" rule would stop controllers being enabled for a child of it (runc does the same).
// - Unset or "": the container id as a relative path, i.e. <own cgroup>/<id>; this is what runc does
//   (`c.Name = id` with an empty Parent), so hako uses no "/hako" prefix of its own. Two runtimes using one id
//   collide there, which is why clients always set cgroupsPath.
// - "slice:prefix:name" is the systemd driver's syntax (--systemd-cgroup, lib/runtime/systemd-cgroup.ts);
//   without the flag such a path is an error naming linux.cgroupsPath.
//
// Hybrid hosts: the cgroup2 directory is created too (runc joins the unified hierarchy in hybrid mode so
// systemd-style tools see the container). For relative paths hako puts it under the own "0::" cgroup, like the
// v1 hierarchies; runc 1.1+ puts it directly under the unified mountpoint, a quirk we do not copy.

import * as fs from 'fs';
import * as path from 'path';
import { HakoError, invalidField } from '../errors';
import { type CgroupLayout, type ProcCgroup, parseProcCgroup } from './layout';

export interface CgroupPaths {
  /** The cleaned inner path: absolute ("/docker/x") or relative to the own cgroup ("x"). */
  inner: string;
  /** v1 controller (or "name=systemd") → directory, for every controller of the hierarchies we manage. */
  v1: Map<string, string>;
  /** The cgroup2 directory (v2, or the unified hierarchy on a hybrid host). */
  unified?: string;
}

/** v1 hierarchies a container joins: runc's subsystem list (named "name=systemd" and "misc" are joined too). */
export const MANAGED_V1 = new Set([
  'cpuset',
  'devices',
  'memory',
  'cpu',
  'cpuacct',
  'pids',
  'blkio',
  'hugetlb',
  'net_cls',
  'net_prio',
  'perf_event',
  'freezer',
  'rdma',
  'misc',
  'name=systemd',
]);

/** runc's CleanPath: lexical clean; relative paths stay relative but cannot start with "..". */
export function cleanCgroupPath(p: string): string {
  if (p === '') return '';
  if (p.startsWith('/')) return path.posix.normalize(p).replace(/(.)\/+$/, '$1');
  const abs = path.posix.normalize('/' + p);
  const rel = path.posix.relative('/', abs);
  return rel === '' ? '.' : rel;
}

const SYSTEMD_PATH = /^[^/:]*:[^/:]*:[^/:]+$/;

export interface ResolveOptions {
  layout: CgroupLayout;
  cgroupsPath?: string;
  id?: string;
  systemdCgroup?: boolean;
  /** Text of /proc/self/cgroup; read from the real file when omitted and needed. */
  procSelfCgroup?: string;
}

export function resolveCgroupPaths(opts: ResolveOptions): CgroupPaths {
  const field = 'linux.cgroupsPath';
  const raw = opts.cgroupsPath ?? '';
  if (opts.systemdCgroup) {
    // The systemd driver never comes here: lib/runtime/systemd-cgroup.ts asks systemd for a scope and
    // resolves the scope's directory as an absolute path without this flag.
    throw new HakoError(
      `${field}: the cgroupfs driver was asked to resolve a --systemd-cgroup path; the systemd driver makes it`,
      {
        field,
        code: 'ENOTSUP_SYSTEMD',
      },
    );
  }
  if (SYSTEMD_PATH.test(raw)) {
    throw new HakoError(
      `${field}: ${JSON.stringify(raw)} is a systemd "slice:prefix:name" path, which the systemd cgroup driver takes: ` +
        `pass --systemd-cgroup, or use a filesystem path such as "/hako/<id>" with the cgroupfs driver`,
      { field, code: 'ENOTSUP_SYSTEMD' },
    );
  }
  let inner: string;
  if (raw !== '') {
    inner = cleanCgroupPath(raw);
  } else {
    const id = opts.id ?? '';
    if (id === '' || id.includes('/') || id === '.' || id === '..') {
      throw invalidField(field, `unset, and the container id ${JSON.stringify(id)} cannot name a cgroup`);
    }
    inner = id;
  }
  if (inner === '/' || inner === '.') {
    throw invalidField(field, `${JSON.stringify(raw)} names the cgroup root; a container needs its own cgroup`);
  }

  const relative = !inner.startsWith('/');
  let own: ProcCgroup | undefined;
  const ownCgroup = (): ProcCgroup => {
    own ??= parseProcCgroup(opts.procSelfCgroup ?? fs.readFileSync('/proc/self/cgroup', 'utf8'));
    return own;
  };
  const { layout } = opts;
  const v1 = new Map<string, string>();
  let unified: string | undefined;

  if (layout.mode === 'v2') {
    const mount = layout.v2Mount as string;
    if (!relative) unified = path.join(mount, inner);
    else {
      const ownPath = ownCgroup().unified;
      if (ownPath === undefined) throw noOwnCgroup('the cgroup2 hierarchy');
      const parent = path.posix.dirname(relativeToMountRoot(ownPath, layout.v2MountRoot));
      unified = path.join(mount, parent, inner);
    }
    return { inner, v1, unified };
  }

  for (const h of layout.v1Hierarchies) {
    const managed = h.controllers.filter((c) => MANAGED_V1.has(c));
    if (managed.length === 0) continue;
    let dir: string;
    if (!relative) dir = path.join(h.mountpoint, inner);
    else {
      const ownPath = managed.map((c) => ownCgroup().v1.get(c)).find((p) => p !== undefined);
      if (ownPath === undefined) throw noOwnCgroup(`the ${managed.join(',')} hierarchy`);
      dir = path.join(h.mountpoint, relativeToMountRoot(ownPath, h.root), inner);
    }
    for (const c of h.controllers) v1.set(c, dir);
  }
  if (layout.mode === 'hybrid' && layout.v2Mount) {
    if (!relative) unified = path.join(layout.v2Mount, inner);
    else {
      const ownPath = ownCgroup().unified ?? '/';
      unified = path.join(layout.v2Mount, relativeToMountRoot(ownPath, layout.v2MountRoot), inner);
    }
  }
  return { inner, v1, unified };
}

/**
 * /proc/self/cgroup paths are relative to the hierarchy's root, the mountpoint shows the mount's root
 * (not "/" in a container without a cgroup namespace): strip it, like runc's getCgroupPathHelper.
 */
function relativeToMountRoot(cgroupPath: string, mountRoot: string | undefined): string {
  const r = mountRoot ?? '/';
  if (r === '/' || r === '') return cgroupPath;
  const rel = path.posix.relative(r, cgroupPath);
  if (rel.startsWith('..')) return '/';
  return '/' + rel;
}

function noOwnCgroup(what: string): HakoError {
  return new HakoError(
    `linux.cgroupsPath: relative (or unset) paths are resolved under hako's own cgroup, ` +
      `but /proc/self/cgroup has no entry for ${what}`,
    { field: 'linux.cgroupsPath', code: 'ENOCGROUP' },
  );
}
