// Coverage of the policy server's seccomp section: every system call that changes a mount table, on every
// ABI a host runs (x86_64 + i386 on x86_64, aarch64 + arm on aarch64, arm alone), is either sent to the
// server (SCMP_ACT_NOTIFY) or refused in the kernel (SCMP_ACT_ERRNO). Checked by running the generated
// filter in the project's BPF interpreter, so the test sees what the kernel would.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { policySeccompSection } from '../lib/policy';
import { ARCHES, hostScmpArches, nativeScmpArch } from '../lib/seccomp/arch';
import { compileSeccomp } from '../lib/seccomp/compile';
import { decide } from './helpers/bpf-interpreter';

const RET_ACTION = 0xffff0000;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const RET_USER_NOTIF = 0x7fc00000;

/**
 * Every call that mounts, unmounts or moves a mount, or builds one to attach later. (unshare/clone/clone3/
 * setns with CLONE_NEWNS only give the process a copy of its mount table: every later change in the copy goes
 * through these same calls under the same inherited filter, so they are deliberately not in this list;
 * chroot changes no mount table either.)
 */
const MOUNT_CHANGING = [
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'move_mount',
  'open_tree',
  'open_tree_attr',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'mount_setattr',
];

/** Also refused: io_uring, whose operations seccomp never sees. */
const ALSO_REFUSED = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

describe('policy seccomp section: mount-changing calls on every ABI', () => {
  for (const host of ['x64', 'arm64', 'arm']) {
    test(`host ${host}: each one is notified or refused, never allowed`, () => {
      const native = nativeScmpArch(host);
      const arches = hostScmpArches(native).filter((a) => a !== 'SCMP_ARCH_X32');
      const sc = policySeccompSection('/run/test.sock', { architectures: arches, waitKillable: false });
      const { filter } = compileSeccomp(sc, { nativeArch: host });
      let checked = 0;
      for (const arch of arches) {
        const info = ARCHES[arch];
        // The names a table has: arm and aarch64 have no umount, aarch64 no mknod; a name every ABI lacks
        // would be a typo in the list, caught below.
        for (const name of [...MOUNT_CHANGING, ...ALSO_REFUSED]) {
          if (!Object.prototype.hasOwnProperty.call(info.table, name)) continue;
          const nr = info.table[name] | info.nrBase;
          // The arguments do not matter for these: try a few shapes, including a bind/move flag set.
          for (const args of [
            [0n, 0n, 0n, 0n, 0n, 0n],
            [1n, 2n, 3n, 0x2000n, 5n, 6n],
            [0xffffffffn, 0n, 0n, 0x1000n, 0n, 0n],
          ]) {
            const ret = decide(filter, { nr, arch: info.audit >>> 0, args }) >>> 0;
            const action = (ret & RET_ACTION) >>> 0;
            assert.ok(
              action === RET_USER_NOTIF || action === RET_ERRNO,
              `${arch} ${name} (${nr}): 0x${ret.toString(16)} is neither NOTIFY nor ERRNO`,
            );
            assert.notEqual(action, RET_ALLOW);
          }
          checked++;
        }
      }
      assert.ok(checked >= MOUNT_CHANGING.length - 1, `only ${checked} calls checked`);
      // (32-bit ARM EABI and aarch64 never had the old one-argument umount.)
      for (const name of MOUNT_CHANGING.filter((x) => !(x === 'umount' && host !== 'x64')))
        assert.ok(
          arches.some((a) => Object.prototype.hasOwnProperty.call(ARCHES[a].table, name)),
          `${name} is in no table of ${host}`,
        );
    });
  }

  test('pivot_root is notified (refused by the server with an audit line), on every ABI', () => {
    for (const host of ['x64', 'arm64']) {
      const arches = hostScmpArches(nativeScmpArch(host)).filter((a) => a !== 'SCMP_ARCH_X32');
      const { filter } = compileSeccomp(
        policySeccompSection('/run/test.sock', { architectures: arches, waitKillable: false }),
        { nativeArch: host },
      );
      for (const arch of arches) {
        const ret = decide(filter, { nr: ARCHES[arch].table.pivot_root, arch: ARCHES[arch].audit >>> 0 }) >>> 0;
        assert.equal((ret & RET_ACTION) >>> 0, RET_USER_NOTIF, `${arch} pivot_root`);
      }
    }
  });

  test('x32 numbers of these calls are killed on x86_64 (bad ABI)', () => {
    const arches = hostScmpArches('SCMP_ARCH_X86_64').filter((a) => a !== 'SCMP_ARCH_X32');
    const { filter } = compileSeccomp(
      policySeccompSection('/run/test.sock', { architectures: arches, waitKillable: false }),
      { nativeArch: 'x64' },
    );
    const x32 = ARCHES.SCMP_ARCH_X32;
    for (const name of MOUNT_CHANGING) {
      if (!Object.prototype.hasOwnProperty.call(x32.table, name)) continue;
      const ret = decide(filter, { nr: x32.table[name] | x32.nrBase, arch: x32.audit >>> 0 }) >>> 0;
      const action = (ret & RET_ACTION) >>> 0;
      assert.ok(
        action !== RET_ALLOW && action !== RET_USER_NOTIF && action !== RET_ERRNO,
        `x32 ${name}: 0x${ret.toString(16)}`,
      );
    }
  });
});
