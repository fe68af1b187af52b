// Paths inside the container's root (openat2 RESOLVE_IN_ROOT: no symlink leads out of it), remounts that
// keep locked flags, the mount table, and binds made from fd to fd: what the parts of the rootfs build share.
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

Fd g_root;  // O_PATH fd of the rootfs mount (after the self bind)

int openat2_in_root(int rootfd, const char* path, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  // Paths are absolute in the config; inside the root they resolve relative to it.
  while (*path == '/') path++;
  if (!*path) path = ".";
  int fd;
  do fd = static_cast<int>(syscall(SYS_openat2, rootfd, path, &how, sizeof(how)));
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd;
}

// Split "a/b/c" into its parent "a/b" and last component "c" (into caller buffers).
bool split_path(const char* path, char* parent, size_t plen, const char** base) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  if (n >= plen) return false;
  memcpy(parent, path, n);
  parent[n] = 0;
  char* slash = strrchr(parent, '/');
  if (!slash) return false;
  *base = path + (slash - parent) + 1;
  if (slash == parent) parent[1] = 0;
  else *slash = 0;
  return true;
}

// mkdir -p inside the root; returns an O_PATH fd of the directory. A component that is a symlink (even a
// dangling one, or one aimed at the host) is followed *inside* the root: its target is created there, the
// way the container will see it. openat2(RESOLVE_IN_ROOT) confines every lookup, so no string handling
// here can reach outside the rootfs.
int mkdir_all_in_root(const char* path, int depth) {
  if (depth > 40) {
    errno = ELOOP;
    return -1;
  }
  char prefix[4096];
  size_t len = strlen(path);
  if (len >= sizeof(prefix)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  size_t i = 0;
  prefix[0] = 0;
  while (i < len) {
    while (i < len && path[i] == '/') i++;
    size_t start = i;
    while (i < len && path[i] != '/') i++;
    if (i == start) break;
    char comp[256];
    if (i - start >= sizeof(comp)) {
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(comp, path + start, i - start);
    comp[i - start] = 0;
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", prefix[0] ? prefix : "/");
    size_t pl = strlen(prefix);
    snprintf(prefix + pl, sizeof(prefix) - pl, "/%s", comp);
    if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) continue;
    Fd probe(openat2_in_root(g_root.get(), prefix, O_PATH | O_DIRECTORY));
    if (probe.ok()) continue;
    if (errno != ENOENT) return -1;
    Fd pfd(openat2_in_root(g_root.get(), parent, O_PATH | O_DIRECTORY));
    if (!pfd.ok()) return -1;
    if (mkdirat(pfd.get(), comp, 0755) == 0) continue;
    if (errno != EEXIST) return -1;
    // Something is there but does not resolve: a symlink whose target is missing. Create the target
    // inside the root, then carry on with the rest of the path through it.
    char target[4096];
    ssize_t n = readlinkat(pfd.get(), comp, target, sizeof(target) - 1);
    if (n < 0) return -1;
    target[n] = 0;
    char next[8192];
    if (target[0] == '/') snprintf(next, sizeof(next), "%s%s", target, path + i);
    else snprintf(next, sizeof(next), "%s/%s%s", parent, target, path + i);
    return mkdir_all_in_root(next, depth + 1);
  }
  return openat2_in_root(g_root.get(), path, O_PATH | O_DIRECTORY);
}

// Make sure `path` exists in the root as a directory (dir=true) or a file, and return an O_PATH fd of it.
int ensure_target(const char* path, bool dir) {
  if (dir) return mkdir_all_in_root(path);
  int fd = openat2_in_root(g_root.get(), path, O_PATH);
  if (fd >= 0 || errno != ENOENT) return fd;
  char parent[4096];
  const char* base;
  if (!split_path(path, parent, sizeof(parent), &base)) {
    errno = EINVAL;
    return -1;
  }
  Fd pfd(mkdir_all_in_root(parent));
  if (!pfd.ok()) return -1;
  // O_PATH dirfds cannot create files with openat; mknodat can.
  if (mknodat(pfd.get(), base, S_IFREG | 0644, 0) < 0 && errno != EEXIST) return -1;
  return openat2_in_root(g_root.get(), path, O_PATH);
}

const char* fd_path(int fd, char* buf, size_t n) {
  snprintf(buf, n, "/proc/self/fd/%d", fd);
  return buf;
}

// MS_* flags that a mount in a user namespace may have locked and that a remount must keep.
unsigned long locked_flags(const char* path) {
  struct statvfs sv;
  if (statvfs(path, &sv) < 0) return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

int remount(const char* path, unsigned long flags) {
  if (mount(nullptr, path, nullptr, MS_REMOUNT | flags, nullptr) == 0) return 0;
  if (errno != EPERM) return -1;
  return mount(nullptr, path, nullptr, MS_REMOUNT | flags | locked_flags(path), nullptr);
}

// Call fn(mount point, fstype, ctx) for each line of /proc/self/mountinfo, the mount point unescaped
// ("\040" and the like). The table is read whole first: fn may change what its later lines describe.
void each_mount(const char* step, const char* why, MountFn fn, void* ctx) {
  Fd f(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!f.ok()) fail(step, errno, "read /proc/self/mountinfo (%s): %s", why, errtext(errno));
  size_t cap = 1 << 16, len = 0;
  char* buf = static_cast<char*>(malloc(cap));
  for (;;) {
    if (!buf) fail(step, ENOMEM, "read /proc/self/mountinfo (%s): %s", why, errtext(ENOMEM));
    if (len + 1 >= cap) {
      cap *= 2;
      char* bigger = static_cast<char*>(realloc(buf, cap));
      if (!bigger) free(buf);
      buf = bigger;
      continue;
    }
    ssize_t n = read(f.get(), buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(step, errno, "read /proc/self/mountinfo (%s): %s", why, errtext(errno));
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  buf[len] = 0;
  // Lines are "id parent maj:min root mountpoint options [optional...] - fstype source super".
  for (char* line = buf; line && *line;) {
    char* next = strchr(line, '\n');
    if (next) *next++ = 0;
    char* field[5] = {};
    char* p = line;
    for (int i = 0; i < 5 && p; i++) {
      field[i] = p;
      p = strchr(p, ' ');
      if (p) *p++ = 0;
    }
    char* sep = p ? strstr(p, " - ") : nullptr;
    if (field[4] && sep) {
      char* fstype = sep + 3;
      char* end = strchr(fstype, ' ');
      if (end) *end = 0;
      char* w = field[4];
      for (char* r = field[4]; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
          *w++ = static_cast<char>((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
          r += 4;
        } else {
          *w++ = *r++;
        }
      }
      *w = 0;
      fn(field[4], fstype, ctx);
    }
    line = next;
  }
  free(buf);
}

// Whether `mp` lies strictly below the directory `prefix` (len bytes).
bool below(const char* mp, const char* prefix, size_t len) {
  if (len == 1) return mp[0] == '/' && mp[1] != 0;
  return strncmp(mp, prefix, len) == 0 && mp[len] == '/';
}

// Without mount_setattr (Linux before 5.12): add `flags` (ro, nosuid, nodev, noexec) to every mount below the
// one `mount_fd` names, one remount each, by the paths the kernel reports. Each keeps the flags it has: a bind
// remount sets them all, so they are read first (statvfs) and repeated.
struct BelowCtx {
  const char* prefix;
  size_t len;
  unsigned long flags;
  const char* dest;
};
void restrict_mounts_below(int mount_fd, unsigned long flags, const char* dest) {
  char fdp[64], prefix[4096];
  ssize_t n = readlink(fd_path(mount_fd, fdp, sizeof(fdp)), prefix, sizeof(prefix) - 1);
  if (n <= 0 || prefix[0] != '/')
    fail("mount", n < 0 ? errno : EINVAL, "find where %s is mounted: %s", dest, errtext(n < 0 ? errno : EINVAL));
  prefix[n] = 0;
  BelowCtx ctx = {prefix, static_cast<size_t>(n), flags, dest};
  each_mount(
      "mount", "mounts below a read-only rbind",
      [](char* mp, const char*, void* c) {
        auto* x = static_cast<BelowCtx*>(c);
        if (!below(mp, x->prefix, x->len)) return;
        if (remount(mp, MS_BIND | x->flags | locked_flags(mp)) < 0)
          fail("mount", errno, "remount %s (below %s) with ro/nosuid/nodev/noexec: %s", mp, x->dest, errtext(errno));
      },
      &ctx);
}

int set_attrs(int mount_fd, uint64_t attrs, bool recursive) {
  struct mount_attr attr = {};
  attr.attr_set = attrs;
  return static_cast<int>(
      syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)));
}

// Bind `src` (an fd; with every mount below it when `recursive`) onto the O_PATH fd `dst`, by fds only: the
// copy is made (open_tree), restricted by `attrs` on every mount it holds, and only then attached
// (move_mount), so nothing is looked up by path and the container never sees it less restricted. A kernel
// without mount_setattr (before 5.12) gets the copy attached and its top mount remounted with `ms_flags`.
// Returns false with errno set; *what names the call that failed.
bool bind_by_fd(int src, int dst, uint64_t attrs, unsigned long ms_flags, bool recursive, const char* dest,
                const char** what) {
  *what = "open_tree";
  Fd tree(static_cast<int>(syscall(
      SYS_open_tree, src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0))));
  if (!tree.ok()) return false;
  bool remount_after = false;
  if (attrs && set_attrs(tree.get(), attrs, recursive) < 0) {
    if (errno != ENOSYS) {
      *what = "mount_setattr";
      return false;
    }
    remount_after = true;
  }
  *what = "move_mount";
  if (syscall(SYS_move_mount, tree.get(), "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return false;
  if (!remount_after) return true;
  // The tree fd now names the attached mount.
  char path[64];
  *what = "remount";
  if (remount(fd_path(tree.get(), path, sizeof(path)), MS_BIND | ms_flags) < 0) return false;
  if (recursive) restrict_mounts_below(tree.get(), ms_flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), dest);
  return true;
}

}  // namespace hako_rootfs
