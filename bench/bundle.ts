// The benchmark bundles: one config.json shared by hako, runc and crun, a static busybox rootfs.
import * as fs from 'fs';
import * as path from 'path';
import { probePath } from '../lib/native/addon';
import { defaultSpec } from '../lib/default-spec';
import { defaultSeccompProfile } from '../lib/seccomp/default-profile';
import type { LinuxSeccomp, Spec } from '../lib/oci/types';

export const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

/**
 * crun 1.8.1 refuses an ociVersion it does not know ("unknown version specified" for 1.2.x), so the shared
 * config says what `runc spec` 1.1.5 writes. hako accepts any 1.x.
 */
export const BENCH_OCI_VERSION = '1.0.2-dev';

export interface BenchBundle {
  dir: string;
  rootfs: string;
  spec: Spec;
}

function rootfsSkeleton(rootfs: string): void {
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
}

function writeSpec(dir: string, spec: Spec): void {
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
}

/**
 * busybox-static rootfs whose process is `/bin/true`: the `hako spec` defaults otherwise (terminal false), with
 * hako's default seccomp profile or, `seccomp` false, without one (as `runc spec` writes it).
 */
export function makeTrueBundle(dir: string, busybox: string, seccomp = true): BenchBundle {
  const rootfs = path.join(dir, 'rootfs');
  rootfsSkeleton(rootfs);
  fs.copyFileSync(busybox, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  for (const t of ['true', 'sh']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', t));
  const spec = defaultSpec({ args: ['/bin/true'], terminal: false, seccomp });
  spec.ociVersion = BENCH_OCI_VERSION;
  if (!seccomp) delete spec.linux!.seccomp;
  else spec.linux!.seccomp ??= defaultSeccompProfile(spec.process!.capabilities!.bounding ?? []);
  writeSpec(dir, spec);
  return { dir, rootfs, spec };
}

/** A rootfs with hako-probe as /bin/probe running `getpid-loop N`, optionally under a seccomp policy. */
export function makeGetpidBundle(dir: string, n: number, seccomp?: LinuxSeccomp): BenchBundle {
  const rootfs = path.join(dir, 'rootfs');
  rootfsSkeleton(rootfs);
  fs.copyFileSync(probePath(), path.join(rootfs, 'bin', 'probe'));
  fs.chmodSync(path.join(rootfs, 'bin', 'probe'), 0o755);
  const spec = defaultSpec({ args: ['/bin/probe', 'getpid-loop', String(n)], terminal: false, seccomp: false });
  spec.ociVersion = BENCH_OCI_VERSION;
  if (seccomp) spec.linux!.seccomp = seccomp;
  else delete spec.linux!.seccomp;
  writeSpec(dir, spec);
  return { dir, rootfs, spec };
}
