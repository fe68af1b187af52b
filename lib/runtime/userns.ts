// The user-namespace dance of create: the id maps written (or newuidmap/newgidmap asked), the idmapped mount
// sources made here with host ids, and the bind sources opened in the init's mount namespace.
import * as fs from 'fs';
import * as path from 'path';
import { invalidField } from '../errors';
import { addon } from '../native/addon';
import type { Spec } from '../oci/types';

const O_PATH = 0o10000000; // the same on x86_64, aarch64 and arm (Node's fs.constants lacks it)

/**
 * O_PATH fds of the bind sources (idmapped ones excepted), opened through /proc/PID/root of the init: in its
 * mount namespace, which a bind may only take mounts from, but with the runtime's privilege. A source that
 * cannot be opened is left to the init, whose own attempt reports it (or skips an optional mount).
 */
export function bindSourceFds(
  spec: Spec,
  bundle: string,
  initPid: number,
): { fds: number[]; index: (i: number) => number | undefined } {
  const fds: number[] = [];
  const slot = new Map<number, number>();
  (spec.mounts ?? []).forEach((m, i) => {
    const opts = m.options ?? [];
    const bind = m.type === 'bind' || opts.includes('bind') || opts.includes('rbind');
    if (!bind || !m.source || opts.includes('idmap') || opts.includes('ridmap') || fds.length >= 64) return;
    try {
      fds.push(fs.openSync(`/proc/${initPid}/root${path.resolve(bundle, m.source)}`, O_PATH));
      slot.set(i, fds.length - 1);
    } catch {
      /* see above */
    }
  });
  return { fds, index: (i) => slot.get(i) };
}

/**
 * An idmapped, detached clone of each idmap/ridmap mount's source, made here (host ids are host ids)
 * with the mount's mappings, or the container's when the mount has none. The init gets them as fds
 * after its control socket and attaches them.
 */
export function idmapNamespaces(
  spec: Spec,
  preserveFds: number,
  bundle: string,
): { fds: number[]; initFd: (i: number) => number } {
  const fds: number[] = [];
  const slot = new Map<number, number>();
  const text = (maps: { containerID: number; hostID: number; size: number }[]) =>
    maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
  try {
    (spec.mounts ?? []).forEach((m, i) => {
      if (!(m.options ?? []).some((o) => o === 'idmap' || o === 'ridmap')) return;
      if (m.type !== 'bind' && !(m.options ?? []).some((o) => o === 'bind' || o === 'rbind'))
        throw invalidField(`mounts[${i}].options`, 'idmap and ridmap apply to bind mounts only');
      const uid = m.uidMappings ?? spec.linux?.uidMappings;
      const gid = m.gidMappings ?? spec.linux?.gidMappings;
      if (!uid?.length || !gid?.length)
        throw invalidField(
          `mounts[${i}].uidMappings`,
          'an idmapped mount needs uidMappings and gidMappings (of the mount or of the container)',
        );
      if (fds.length >= 16) throw invalidField(`mounts[${i}]`, 'at most 16 idmapped mounts');
      try {
        const recursive = (m.options ?? []).includes('ridmap') || (m.options ?? []).includes('rbind');
        fds.push(addon().idmapTree(text(uid), text(gid), path.resolve(bundle, m.source ?? ''), recursive));
      } catch (e) {
        throw invalidField(
          `mounts[${i}].uidMappings`,
          `make the user namespace of an idmapped mount: ${(e as Error).message}`,
        );
      }
      slot.set(i, 3 + preserveFds + 2 + fds.length - 1);
    });
  } catch (e) {
    for (const fd of fds) fs.closeSync(fd);
    throw e;
  }
  return { fds, initFd: (i) => slot.get(i)! };
}

export function writeIdMaps(pid: number, spec: Spec): void {
  const fmt = (maps: { containerID: number; hostID: number; size: number }[] | undefined) =>
    (maps ?? []).map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
  const uid = fmt(spec.linux?.uidMappings);
  const gid = fmt(spec.linux?.gidMappings);
  if (!uid || !gid) throw invalidField('linux.uidMappings', 'a user namespace needs uidMappings and gidMappings');
  const root = (process.getuid?.() ?? 0) === 0;
  const own = (maps: { hostID: number; size: number }[] | undefined, id: number | undefined) =>
    (maps ?? []).length === 1 && maps![0].hostID === id && maps![0].size === 1;
  if (
    !root &&
    !(own(spec.linux?.uidMappings, process.getuid?.()) && own(spec.linux?.gidMappings, process.getgid?.()))
  ) {
    // An unprivileged user may only map itself; wider ranges go through the setuid helpers of the
    // uidmap package, which check /etc/subuid and /etc/subgid.
    for (const [tool, maps, field] of [
      ['newuidmap', spec.linux?.uidMappings, 'linux.uidMappings'],
      ['newgidmap', spec.linux?.gidMappings, 'linux.gidMappings'],
    ] as const) {
      const args = [
        String(pid),
        ...(maps ?? []).flatMap((m) => [String(m.containerID), String(m.hostID), String(m.size)]),
      ];
      const r = require('child_process').spawnSync(tool, args, { encoding: 'utf8' }) as {
        status: number | null;
        stderr: string;
        error?: Error;
      };
      if (r.status !== 0)
        throw invalidField(
          field,
          `${tool} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()} (are the ranges in /etc/sub${tool === 'newuidmap' ? 'uid' : 'gid'}?)`,
        );
    }
    return;
  }
  try {
    fs.writeFileSync(`/proc/${pid}/uid_map`, uid);
    if (!root) fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
    fs.writeFileSync(`/proc/${pid}/gid_map`, gid);
  } catch (e) {
    throw invalidField('linux.uidMappings', `write uid/gid maps: ${(e as Error).message}`);
  }
}
