// The manager for the host's layout (v1 and hybrid share the v1 implementation). Only that implementation is
// loaded: a CLI process runs on one host layout and need not load the other.
import type { CgroupManager, CgroupManagerOptions } from './types';

export function createCgroupManager(opts: CgroupManagerOptions): CgroupManager {
  if (opts.layout.mode === 'v2') return new (require('./v2') as typeof import('./v2')).CgroupV2Manager(opts);
  return new (require('./v1') as typeof import('./v1')).CgroupV1Manager(opts);
}
