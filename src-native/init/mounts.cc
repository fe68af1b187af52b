// The configured mounts (setup_mounts, rootfs.h): bind, idmapped bind and filesystem mounts onto targets
// created inside the root, tmpfs modes and tmpcopyup, restrictions on every mount an rbind brings along, and
// read-only tmpfs mounts made so once the rootfs is complete.
#include "rootfs.h"

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

namespace {

// Read-only tmpfs mounts are mounted writable and made read-only once the rootfs is complete (as runc
// does): mounts nested below them, devices and the process cwd may still need directories in them.
struct ReadonlyLater {
  int fd;               // O_PATH fd of the mount's root
  unsigned long flags;  // its per-mount flags, for the remount fallback
  const char* dest;
};
ReadonlyLater* g_ro_later;
size_t g_nro_later;

// Whether a comma-separated mount data string holds the option `name` ("mode=" matches "mode=0755").
bool has_option(const char* data, const char* name) {
  size_t n = strlen(name);
  for (const char* p = data; p && *p;) {
    if (strncmp(p, name, n) == 0) return true;
    p = strchr(p, ',');
    if (p) p++;
  }
  return false;
}

// tmpcopyup: copy the tree under `src` (the directory a tmpfs now covers, opened before the mount) into `dst`
// (the tmpfs root): contents, modes, owners and times; symlinks as links (never followed), device nodes and
// fifos recreated (never opened), sockets skipped. Everything is reached by *at() from the two fds, so no
// path in the image can lead the copy elsewhere.
void copy_tree(int src, int dst, const char* dest, int depth) {
  if (depth > 64) fail("mount", ELOOP, "tmpcopyup of %s: directory tree too deep", dest);
  int list_fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* dir = list_fd < 0 ? nullptr : fdopendir(list_fd);
  if (!dir) fail("mount", errno, "tmpcopyup of %s: read directory: %s", dest, errtext(errno));
  while (struct dirent* e = readdir(dir)) {
    const char* name = e->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
    struct stat st;
    if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      fail("mount", errno, "tmpcopyup of %s: stat %s: %s", dest, name, errtext(errno));
    mode_t perm = st.st_mode & 07777;
    int r = 0;
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(dst, name, 0700) < 0)
        fail("mount", errno, "tmpcopyup of %s: mkdir %s: %s", dest, name, errtext(errno));
      Fd s(openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      Fd d(openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!s.ok() || !d.ok()) fail("mount", errno, "tmpcopyup of %s: open %s: %s", dest, name, errtext(errno));
      copy_tree(s.get(), d.get(), dest, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      Fd s(openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      Fd d(openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!s.ok() || !d.ok()) fail("mount", errno, "tmpcopyup of %s: open %s: %s", dest, name, errtext(errno));
      for (off_t left = st.st_size; left > 0;) {
        ssize_t n = sendfile(d.get(), s.get(), nullptr, static_cast<size_t>(left > (1 << 30) ? (1 << 30) : left));
        if (n < 0) fail("mount", errno, "tmpcopyup of %s: copy %s: %s", dest, name, errtext(errno));
        if (n == 0) break;  // the file shrank meanwhile
        left -= n;
      }
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
      if (n < 0) fail("mount", errno, "tmpcopyup of %s: readlink %s: %s", dest, name, errtext(errno));
      target[n] = 0;
      r = symlinkat(target, dst, name);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
      r = mknodat(dst, name, st.st_mode, st.st_rdev);
    } else {
      continue;  // a socket: nothing to copy
    }
    if (r < 0) fail("mount", errno, "tmpcopyup of %s: create %s: %s", dest, name, errtext(errno));
    // Owner first: chown clears set-id bits, which the mode then restores. An owner this user namespace does
    // not map (EINVAL) stays the copier's.
    if (fchownat(dst, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL)
      fail("mount", errno, "tmpcopyup of %s: chown %s: %s", dest, name, errtext(errno));
    if (!S_ISLNK(st.st_mode) && fchmodat(dst, name, perm, 0) < 0)
      fail("mount", errno, "tmpcopyup of %s: chmod %s: %s", dest, name, errtext(errno));
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW);  // best effort, as cp -a
  }
  closedir(dir);
}

// MOUNT_ATTR_* of the MS_* flags that take something away from a mount (and so may always be added, even to
// mounts whose flags a user namespace has locked).
uint64_t restricting_attrs(unsigned long flags) {
  uint64_t a = 0;
  if (flags & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  return a;
}

// Fail when the last component of a mount's destination is a symlink in the rootfs (the components before it
// resolve inside the root, as everywhere here).
void refuse_link_destination(const MountSpec* m) {
  char parent[4096];
  const char* base;
  if (!split_path(m->dest, parent, sizeof(parent), &base) || !*base) return;  // "/": nothing to check
  Fd dir(openat2_in_root(g_root.get(), parent, O_PATH | O_DIRECTORY));
  if (!dir.ok()) return;  // missing: created as directories below
  struct stat st;
  if (fstatat(dir.get(), base, &st, AT_SYMLINK_NOFOLLOW) < 0) return;
  if (S_ISLNK(st.st_mode))
    fail("mount", ELOOP, "%s must be mounted on ordinary directory: %s is a symlink in the rootfs", m->fstype, m->dest);
  if (!S_ISDIR(st.st_mode))
    fail("mount", ENOTDIR, "%s must be mounted on ordinary directory: %s is not a directory in the rootfs", m->fstype,
         m->dest);
}

void do_mount(const MountSpec* m) {
  bool is_bind = m->bind != 0;
  bool target_dir = true;
  if (is_bind) {
    struct stat st;
    // An idmapped source arrives as a tree fd, and in a new user namespace any bind source as an O_PATH fd
    // the runtime opened in this mount namespace (the path may not be searchable by the mapped root).
    int src_fd = m->has_idmap ? static_cast<int>(m->idmap_fd) : m->has_source_fd ? static_cast<int>(m->source_fd) : -1;
    if (src_fd >= 0 ? fstat(src_fd, &st) < 0 : (!m->source || stat(m->source, &st) < 0)) {
      if (m->optional) return;
      fail("mount", errno, "mount source %s for %s: %s", m->source ? m->source : "(none)", m->dest, errtext(errno));
    }
    target_dir = S_ISDIR(st.st_mode);
  }
  // A tmpfs over a directory of the image takes that directory's mode (as with runc: /run stays 0755, not
  // tmpfs's 1777) unless its options set one, and with tmpcopyup a copy of its contents, read through an fd
  // opened before the mount hides them.
  bool is_tmpfs = !is_bind && m->fstype && strcmp(m->fstype, "tmpfs") == 0;
  Fd covered(is_tmpfs ? openat2_in_root(g_root.get(), m->dest, O_RDONLY | O_DIRECTORY) : -1);
  struct stat covered_st = {};
  if (covered.ok() && fstat(covered.get(), &covered_st) < 0) covered.reset();
  // As runc: proc and sysfs go on an ordinary directory. A link there (an image's /proc -> somewhere) would
  // otherwise be followed and the filesystem mounted wherever it points, where no masked or read-only path
  // (they name /proc/...) covers it.
  bool kernel_fs = !is_bind && m->fstype && (strcmp(m->fstype, "proc") == 0 || strcmp(m->fstype, "sysfs") == 0);
  if (kernel_fs) refuse_link_destination(m);
  Fd target(ensure_target(m->dest, target_dir));
  if (!target.ok()) fail("mount", errno, "create mount destination %s in rootfs: %s", m->dest, errtext(errno));
  char tpath[64];
  fd_path(target.get(), tpath, sizeof(tpath));
  const unsigned long kPropagation = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;
  unsigned long flags = static_cast<unsigned long>(m->flags) & ~kPropagation;
  bool ro_later = is_tmpfs && (flags & MS_RDONLY);
  if (ro_later) flags &= ~MS_RDONLY;
  if (is_bind && m->has_idmap) {
    // An idmapped bind: the runtime cloned and idmapped the source tree (it holds the privilege that
    // takes); attach that detached tree here.
    if (syscall(SYS_move_mount, m->idmap_fd, "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
        0)
      fail("mount", errno, "attach the idmapped mount of %s to %s: %s", m->source, m->dest, errtext(errno));
    close(static_cast<int>(m->idmap_fd));
  } else if (is_bind) {
    unsigned long bflags = MS_BIND | (m->bind == 2 ? MS_REC : 0);
    // Through the runtime's fd when there is one (runc does the same): /proc/self/fd/N names the source without
    // walking its path, whose directories the mapped root may not be allowed to search.
    char spath[64];
    const char* src = m->source;
    if (m->has_source_fd) {
      snprintf(spath, sizeof(spath), "/proc/self/fd/%u", m->source_fd);
      src = spath;
    }
    if (mount(src, tpath, nullptr, bflags, nullptr) < 0)
      fail("mount", errno, "bind mount %s to %s: %s", m->source, m->dest, errtext(errno));
    if (m->has_source_fd) close(static_cast<int>(m->source_fd));
  } else {
    const char* src = m->source && *m->source ? m->source : (m->fstype ? m->fstype : "none");
    if (mount(src, tpath, m->fstype, flags, m->data) < 0)
      fail("mount", errno, "mount %s (type %s) to %s: %s", src, m->fstype ? m->fstype : "(none)", m->dest,
           errtext(errno));
  }
  // The fd names the mountpoint underneath; reopen to reach the new mount's root.
  Fd mounted(openat2_in_root(g_root.get(), m->dest, O_PATH));
  if (!mounted.ok()) fail("mount", errno, "reopen mount %s: %s", m->dest, errtext(errno));
  char mpath[64];
  fd_path(mounted.get(), mpath, sizeof(mpath));
  if (covered.ok()) {
    if (m->copy_up) {
      Fd root(open(mpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!root.ok()) fail("mount", errno, "tmpcopyup of %s: open the new mount: %s", m->dest, errtext(errno));
      copy_tree(covered.get(), root.get(), m->dest, 0);
    }
    if (!has_option(m->data, "mode=") && chmod(mpath, covered_st.st_mode & 07777) < 0)
      fail("mount", errno, "give %s the mode of the directory it covers: %s", m->dest, errtext(errno));
  }
  unsigned long extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
  if (is_bind && extra) {
    if (remount(mpath, MS_BIND | extra) < 0)
      fail("mount", errno, "remount bind %s with its options: %s", m->dest, errtext(errno));
    // A remount changes the top mount only: the mounts an rbind brought along (the cgroup hierarchies under a
    // bound /sys, say) would stay writable under a read-only /sys (CVE-2023-25809). ro, nosuid, nodev and
    // noexec go on every one of them.
    uint64_t restrict_all = restricting_attrs(extra);
    if (m->bind == 2 && restrict_all && set_attrs(mounted.get(), restrict_all, true) < 0) {
      if (errno != ENOSYS)
        fail("mount", errno, "apply ro/nosuid/nodev/noexec to every mount under the rbind of %s: %s", m->dest,
             errtext(errno));
      restrict_mounts_below(mounted.get(), extra & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), m->dest);
    }
  }
  if (m->propagation) {
    if (mount(nullptr, mpath, nullptr, static_cast<unsigned long>(m->propagation), nullptr) < 0)
      fail("mount", errno, "set propagation of %s: %s", m->dest, errtext(errno));
  }
  if (m->attr_set || m->attr_clr) {
    struct mount_attr attr = {};
    attr.attr_set = m->attr_set;
    attr.attr_clr = m->attr_clr;
    if (syscall(SYS_mount_setattr, mounted.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
      fail("mount", errno, "set recursive attributes of %s (mount_setattr): %s", m->dest, errtext(errno));
  }
  if (ro_later) g_ro_later[g_nro_later++] = {mounted.release(), flags | MS_RDONLY, m->dest};
}

}  // namespace

// Make the deferred tmpfs mounts read-only: this mount only (nested mounts keep their own flags), as with
// runc's remount; mount_setattr changes the one flag, the remount fallback repeats the others.
void make_deferred_readonly() {
  for (size_t i = 0; i < g_nro_later; i++) {
    Fd fd(g_ro_later[i].fd);
    struct mount_attr attr = {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (syscall(SYS_mount_setattr, fd.get(), "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0) continue;
    char path[64];
    if (errno != ENOSYS || remount(fd_path(fd.get(), path, sizeof(path)), MS_BIND | g_ro_later[i].flags) < 0)
      fail("mount", errno, "make %s read-only: %s", g_ro_later[i].dest, errtext(errno));
  }
  free(g_ro_later);
  g_ro_later = nullptr;
  g_nro_later = 0;
}

}  // namespace hako_rootfs

using namespace hako_rootfs;

void setup_mounts(const Plan* plan) {
  unsigned long prop = MS_REC | MS_SLAVE;
  if (plan->has_propagation && (plan->rootfs_propagation & MS_PRIVATE)) prop = MS_REC | MS_PRIVATE;
  if (mount(nullptr, "/", nullptr, prop, nullptr) < 0) fail("rootfs", errno, "make / %s: %s", "slave", errtext(errno));
  if (mount(plan->rootfs, plan->rootfs, nullptr, MS_BIND | MS_REC, nullptr) < 0)
    fail("rootfs", errno, "bind rootfs %s onto itself: %s", plan->rootfs, errtext(errno));
  g_root.reset(open(plan->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!g_root.ok()) fail("rootfs", errno, "open rootfs %s: %s", plan->rootfs, errtext(errno));
  step_done("rootfs");
  g_ro_later = static_cast<ReadonlyLater*>(calloc(plan->nmounts ? plan->nmounts : 1, sizeof(ReadonlyLater)));
  if (!g_ro_later) fail("mount", ENOMEM, "allocate the mount list: %s", errtext(ENOMEM));
  for (size_t i = 0; i < plan->nmounts; i++) do_mount(&plan->mounts[i]);
  step_done("mounts");
  for (size_t i = 0; i < plan->ndevices; i++) make_device(&plan->devices[i], plan->dev_bind_host);
  for (size_t i = 0; i < plan->nsymlinks; i++) make_symlink(&plan->symlinks[i]);
  step_done("devices");
}
