// Devices (made, or bound from the host in a user namespace) and symlinks, created inside the root.
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sendfile.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <dirent.h>
#include <unistd.h>

#include "rootfs_parts.h"
#include "../common/syscalls.h"

namespace hako_rootfs {

void make_device(const DeviceSpec* d, bool bind_host) {
  char parent[4096];
  const char* base;
  if (!split_path(d->path, parent, sizeof(parent), &base)) fail("device", EINVAL, "invalid device path %s", d->path);
  mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
  if (bind_host) {
    // In a user namespace mknod is refused: bind the host's node instead, as runc does. From fd to fd: the
    // host's node is opened without following a link and must be the configured device; what the image has
    // at the path (a link to some other file of the container, say) is replaced by an empty file, never
    // followed. A device node needs neither setuid nor exec: the bind gets nosuid and noexec.
    Fd src(open(d->path, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat hs;
    if (!src.ok() || fstat(src.get(), &hs) < 0)
      fail("device", errno, "open the host's %s to bind it: %s", d->path, errtext(errno));
    if ((hs.st_mode & S_IFMT) != type || (type != S_IFIFO && hs.st_rdev != makedev(d->major, d->minor)))
      fail("device", EINVAL, "the host's %s is not the configured device (%c %u:%u): refusing to bind it", d->path,
           static_cast<char>(d->type), d->major, d->minor);
    Fd dir(mkdir_all_in_root(parent));
    if (!dir.ok()) fail("device", errno, "create parent of %s: %s", d->path, errtext(errno));
    struct stat st;
    if (fstatat(dir.get(), base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
        unlinkat(dir.get(), base, 0) < 0)
      fail("device", errno, "remove the symlink at %s: %s", d->path, errtext(errno));
    // O_PATH dirfds cannot create files with openat; mknodat can.
    if (mknodat(dir.get(), base, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
      fail("device", errno, "create %s: %s", d->path, errtext(errno));
    Fd target(openat(dir.get(), base, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!target.ok()) fail("device", errno, "open %s in the rootfs: %s", d->path, errtext(errno));
    const char* what;
    if (!bind_by_fd(src.get(), target.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, MS_NOSUID | MS_NOEXEC, false,
                    d->path, &what))
      fail("device", errno, "bind device %s from the host (%s): %s", d->path, what, errtext(errno));
    return;
  }
  Fd dir(mkdir_all_in_root(parent));
  if (!dir.ok()) fail("device", errno, "create parent of %s: %s", d->path, errtext(errno));
  mode_t mode = (d->mode & 07777) | type;
  dev_t dev = makedev(d->major, d->minor);
  if (mknodat(dir.get(), base, mode, dev) < 0) {
    if (errno != EEXIST) fail("device", errno, "mknod %s: %s", d->path, errtext(errno));
    // A listed device replaces whatever the rootfs had there; unlinkat never follows symlinks.
    if (unlinkat(dir.get(), base, 0) < 0 || mknodat(dir.get(), base, mode, dev) < 0)
      fail("device", errno, "replace %s: %s", d->path, errtext(errno));
  }
  if (fchownat(dir.get(), base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
    fail("device", errno, "chown %s: %s", d->path, errtext(errno));
}

void make_symlink(const Pair* s) {
  char parent[4096];
  const char* base;
  if (!split_path(s->b, parent, sizeof(parent), &base)) fail("symlink", EINVAL, "invalid link path %s", s->b);
  Fd dir(mkdir_all_in_root(parent));
  if (!dir.ok()) fail("symlink", errno, "create parent of %s: %s", s->b, errtext(errno));
  if (symlinkat(s->a, dir.get(), base) == 0) return;
  if (errno != EEXIST) fail("symlink", errno, "symlink %s -> %s: %s", s->b, s->a, errtext(errno));
  // As runc: /dev/ptmx is always the runtime's link to pts/ptmx, whatever the image (or a tmpcopyup of its
  // /dev) put there: the console code never opens it, but the container's programs do. unlinkat never follows.
  if (strcmp(s->b, "/dev/ptmx") == 0 && (unlinkat(dir.get(), base, 0) < 0 || symlinkat(s->a, dir.get(), base) < 0))
    fail("symlink", errno, "replace %s with a symlink to %s: %s", s->b, s->a, errtext(errno));
}

}  // namespace hako_rootfs
