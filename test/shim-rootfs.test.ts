// The shim's rootfs mounts (lib/shim/rootfs.ts) through the addon's mount(2)/umount2(2): a read-only rbind and an
// overlay as containerd's snapshotters hand them over, unmounted again; a failing mount names the call, the mount
// and errno; and a mount type the native path leaves to mount(8) still works. Needs root (mounts on the host).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addon } from '../lib/native/addon';
import { isMountPoint, mountRootfs, unmountRootfs } from '../lib/shim/rootfs';

const root = process.getuid?.() === 0;

describe('shim rootfs mounts', { skip: !root && 'needs root' }, () => {
  let dir: string;
  let bundle: string;
  let rootfs: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hako-shim-rootfs-'));
    for (const d of ['lower', 'upper', 'work', 'bundle']) fs.mkdirSync(path.join(dir, d));
    fs.writeFileSync(path.join(dir, 'lower', 'f'), 'lower\n');
    bundle = path.join(dir, 'bundle');
    rootfs = path.join(bundle, 'rootfs');
  });

  after(async () => {
    await unmountRootfs(bundle);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the addon has mount and umount', () => {
    assert.equal(typeof addon().mount, 'function');
    assert.equal(typeof addon().umount, 'function');
  });

  test('a read-only rbind is read-only, and unmounting leaves no mount', async () => {
    await mountRootfs(bundle, [
      { type: 'bind', source: path.join(dir, 'lower'), target: '', options: ['rbind', 'ro'] },
    ]);
    assert.ok(isMountPoint(rootfs));
    assert.equal(fs.readFileSync(path.join(rootfs, 'f'), 'utf8'), 'lower\n');
    assert.throws(() => fs.writeFileSync(path.join(rootfs, 'g'), 'x'), { code: 'EROFS' });
    await unmountRootfs(bundle);
    assert.ok(!isMountPoint(rootfs));
  });

  test('an overlay writes to its upper dir', async () => {
    const opts = [
      'index=off',
      `workdir=${path.join(dir, 'work')}`,
      `upperdir=${path.join(dir, 'upper')}`,
      `lowerdir=${path.join(dir, 'lower')}`,
    ];
    await mountRootfs(bundle, [{ type: 'overlay', source: 'overlay', target: '', options: opts }]);
    fs.writeFileSync(path.join(rootfs, 'g'), 'upper\n');
    assert.equal(fs.readFileSync(path.join(dir, 'upper', 'g'), 'utf8'), 'upper\n');
    assert.ok(!fs.existsSync(path.join(dir, 'lower', 'g')));
    await unmountRootfs(bundle);
    assert.ok(!isMountPoint(rootfs));
  });

  test('a failing mount names the call, the mount and the error', async () => {
    await assert.rejects(
      mountRootfs(bundle, [
        { type: 'overlay', source: 'overlay', target: '', options: [`lowerdir=${path.join(dir, 'missing')}`] },
      ]),
      /rootfs: mount: overlay overlay on .*rootfs: No such file or directory/,
    );
    assert.ok(!isMountPoint(rootfs));
  });

  test('a type the native path leaves to mount(8) (tmpfs) is mounted too', async () => {
    await mountRootfs(bundle, [{ type: 'tmpfs', source: 'tmpfs', target: '', options: ['size=1m'] }]);
    assert.ok(isMountPoint(rootfs));
    await unmountRootfs(bundle);
    assert.ok(!isMountPoint(rootfs));
  });
});
