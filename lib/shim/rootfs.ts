// The bundle's rootfs: containerd passes the snapshot's mounts with Create, and the shim mounts them onto
// <bundle>/rootfs in order (runtime/v2/README.md: "Shims are responsible for mounting the filesystem into the
// rootfs/ directory of the bundle"), and unmounts it in Delete and in the `delete` subcommand. The usual mounts
// (overlay, bind) are made with the addon's mount(2): spawning util-linux mount(8) for them cost several ms of
// every Create. Anything else (another filesystem type, which may need a loop device, idmapped or recursive
// attributes, an overlay whose options outgrow a page, an addon built before mount.cc) goes to mount(8),
// asynchronously (never a blocking wait on the event loop).
import * as fs from 'fs';
import * as path from 'path';
import { addon } from '../native/addon';
import { MS } from '../oci/constants';
import { parseMountOptions } from '../oci/mount-options';
import type { Mount } from './messages';
import { Code, RpcError } from './ttrpc';

function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  // child_process is loaded for mount(8) only, which the usual overlay and bind mounts no longer need.
  const { execFile } = require('child_process') as typeof import('child_process');
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { cwd, timeout: 30_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(),
    ),
  );
}

/** overlay's lowerdir may outgrow a page: as containerd does, mount from the layers' common parent with relative paths. */
function shortenOverlay(options: string[]): { options: string[]; cwd?: string } {
  if (options.join(',').length < 3584) return { options };
  const lower = options.find((o) => o.startsWith('lowerdir='));
  if (!lower) return { options };
  const dirs = lower.slice('lowerdir='.length).split(':');
  const parent = path.dirname(path.dirname(dirs[0]));
  if (!dirs.every((d) => d.startsWith(parent + '/'))) return { options };
  const rel = dirs.map((d) => path.relative(parent, d));
  return { options: options.map((o) => (o === lower ? `lowerdir=${rel.join(':')}` : o)), cwd: parent };
}

const MNT_DETACH = 2;

/** Make one overlay or bind mount with mount(2); false when it is not one this handles (mount(8) does it then). */
function mountNative(m: Mount, options: string[], target: string): boolean {
  const a = addon();
  if (!a.mount || (m.type !== 'overlay' && m.type !== 'bind')) return false;
  let p;
  try {
    p = parseMountOptions(options, 'rootfs mount options');
  } catch {
    return false;
  }
  if (p.attrSet || p.attrClr || p.idmap || p.copyUp) return false;
  if (m.type === 'overlay') {
    if (p.bind) return false;
    a.mount(m.source, target, 'overlay', p.flags, p.data.join(','));
  } else {
    if (p.data.length) return false;
    // As mount(8) and containerd's mounter: the bind first, then a remount for ro, nosuid and the like.
    a.mount(m.source, target, '', MS.BIND | (p.bind === 2 ? MS.REC : 0), '');
    const rest = p.flags & ~(MS.BIND | MS.REC);
    if (rest) a.mount('', target, '', MS.REMOUNT | MS.BIND | rest, '');
  }
  if (p.propagation) a.mount('', target, '', p.propagation, '');
  return true;
}

export async function mountRootfs(bundle: string, mounts: Mount[]): Promise<void> {
  const target = path.join(bundle, 'rootfs');
  if (mounts.length === 0) return; // `ctr run --rootfs`: the spec's root.path is used as it is
  fs.mkdirSync(target, { recursive: true });
  for (const m of mounts) {
    if (!m.type || !m.source)
      throw new RpcError(Code.InvalidArgument, `rootfs mount without type or source: ${JSON.stringify(m)}`);
    const shortened = m.type === 'overlay' ? shortenOverlay(m.options) : { options: m.options, cwd: undefined };
    const cwd = shortened.cwd;
    let options = shortened.options;
    if (!cwd) {
      try {
        if (mountNative(m, options, target)) continue;
      } catch (e) {
        throw new Error(`rootfs: ${(e as Error).message}`);
      }
    }
    // containerd's own mounter maps rbind to a recursive bind; mount(8) takes it as "rbind".
    if (m.type === 'bind') options = options.filter((o) => o !== 'bind');
    const args = ['-t', m.type === 'bind' ? 'none' : m.type];
    if (m.type === 'bind' && !options.includes('rbind')) options = ['bind', ...options];
    if (options.length) args.push('-o', options.join(','));
    args.push(m.source, target);
    await run('mount', args, cwd);
  }
}

/** Unmount everything on <bundle>/rootfs; fine when nothing is mounted there (idempotent). */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = path.join(bundle, 'rootfs');
  const a = addon();
  for (let i = 0; i < 16 && isMountPoint(target); i++) {
    if (a.umount) {
      try {
        a.umount(target, 0);
      } catch {
        try {
          a.umount(target, MNT_DETACH);
        } catch {
          /* isMountPoint decides: a next round, or done */
        }
      }
      continue;
    }
    try {
      await run('umount', [target]);
    } catch {
      await run('umount', ['-l', target]).catch(() => {});
    }
  }
}

export function isMountPoint(p: string): boolean {
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    return false;
  }
  const esc = (s: string) =>
    s.replace(/\\/g, '\\134').replace(/ /g, '\\040').replace(/\t/g, '\\011').replace(/\n/g, '\\012');
  const want = esc(real);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === want);
}
