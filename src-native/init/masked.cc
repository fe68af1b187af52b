// Masked paths (an empty read-only tmpfs, or the host's checked /dev/null) and read-only paths, by fd.
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

// The host's /dev/null (O_PATH), verified to be the null device: the source of every masked file. Never the
// container's /dev/null, which the image (or a /dev bound from a shared directory) can make a symlink to a
// procfs file that the mask would then bind, writable, over /proc/keys (CVE-2025-31133).
Fd g_devnull;

namespace {

// Open the host's /dev/null once, before pivot_root, and make sure it is the null device (char 1:3) and not a
// link or a file standing in for it.
int host_devnull() {
  if (g_devnull.ok()) return g_devnull.get();
  g_devnull.reset(open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!g_devnull.ok()) fail("masked path", errno, "open the host's /dev/null: %s", errtext(errno));
  struct stat st;
  if (fstat(g_devnull.get(), &st) < 0) fail("masked path", errno, "stat the host's /dev/null: %s", errtext(errno));
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
    fail("masked path", EINVAL,
         "the host's /dev/null is not the null device (char 1:3): refusing to mask paths with it");
  return g_devnull.get();
}

}  // namespace

// Mask `path` (a container path, resolved inside the root before pivot_root): a directory gets an empty
// read-only tmpfs, anything else the null device. The target is opened once, O_NOFOLLOW (a link there is
// itself covered, never followed), checked through that fd and mounted onto through it.
void mask_path(const char* path) {
  Fd target(openat2_in_root(g_root.get(), path, O_PATH | O_NOFOLLOW));
  if (!target.ok()) {
    if (errno == ENOENT) return;
    fail("masked path", errno, "open %s in the rootfs: %s", path, errtext(errno));
  }
  struct stat st;
  if (fstat(target.get(), &st) < 0) fail("masked path", errno, "stat %s: %s", path, errtext(errno));
  if (S_ISDIR(st.st_mode)) {
    char tpath[64];
    if (mount("tmpfs", fd_path(target.get(), tpath, sizeof(tpath)), "tmpfs",
              MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k") < 0)
      fail("masked path", errno, "mask %s with an empty tmpfs: %s", path, errtext(errno));
    return;
  }
  // Read-only: the bound inode is the host's /dev/null, whose mode and owner a chmod or chown through the
  // mask must not change (writes to a device on a read-only mount still reach the device).
  const char* what;
  if (!bind_by_fd(host_devnull(), target.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                  MS_RDONLY | MS_NOSUID | MS_NOEXEC, false, path, &what))
    fail("masked path", errno, "mask %s with /dev/null (%s): %s", path, what, errtext(errno));
}

// Make `path` (resolved inside the root; a link is followed there) read-only: a recursive copy of what is
// mounted there, read-only on every mount it holds, attached over it by fd. The copy keeps the nosuid,
// nodev and noexec of what it covers (/proc's, say).
void readonly_path(const char* path) {
  Fd target(openat2_in_root(g_root.get(), path, O_PATH));
  if (!target.ok()) {
    if (errno == ENOENT) return;
    fail("readonly path", errno, "open %s in the rootfs: %s", path, errtext(errno));
  }
  char tpath[64];
  unsigned long keep = locked_flags(fd_path(target.get(), tpath, sizeof(tpath))) & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
  const char* what;
  if (!bind_by_fd(target.get(), target.get(), MOUNT_ATTR_RDONLY, MS_REC | MS_RDONLY | keep, true, path, &what))
    fail("readonly path", errno, "make %s read-only (%s): %s", path, what, errtext(errno));
}

}  // namespace hako_rootfs
