// Over 400 lines because mounts, devices, masked paths and the read-only finish share the in-root path helpers; splitting them is open (issue 17).
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

#include "channel.h"
#include "../common/syscalls.h"


namespace {

Fd g_root;  // O_PATH fd of the rootfs mount (after the self bind)

// Read-only tmpfs mounts are mounted writable and made read-only once the rootfs is complete (as runc
// does): mounts nested below them, devices and the process cwd may still need directories in them.
struct ReadonlyLater {
  int fd;               // O_PATH fd of the mount's root
  unsigned long flags;  // its per-mount flags, for the remount fallback
  const char* dest;
};
ReadonlyLater* g_ro_later;
size_t g_nro_later;

// The host's /dev/null (O_PATH), verified to be the null device: the source of every masked file. Never the
// container's /dev/null, which the image (or a /dev bound from a shared directory) can make a symlink to a
// procfs file that the mask would then bind, writable, over /proc/keys (CVE-2025-31133).
Fd g_devnull;

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
int mkdir_all_in_root(const char* path, int depth = 0) {
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
    if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0) fail("mount", errno, "tmpcopyup of %s: stat %s: %s", dest, name, errtext(errno));
    mode_t perm = st.st_mode & 07777;
    int r = 0;
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(dst, name, 0700) < 0) fail("mount", errno, "tmpcopyup of %s: mkdir %s: %s", dest, name, errtext(errno));
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

// Call fn(mount point, fstype, ctx) for each line of /proc/self/mountinfo, the mount point unescaped
// ("\040" and the like). The table is read whole first: fn may change what its later lines describe.
using MountFn = void (*)(char* mp, const char* fstype, void* ctx);
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
  if (n <= 0 || prefix[0] != '/') fail("mount", n < 0 ? errno : EINVAL, "find where %s is mounted: %s", dest, errtext(n < 0 ? errno : EINVAL));
  prefix[n] = 0;
  BelowCtx ctx = {prefix, static_cast<size_t>(n), flags, dest};
  each_mount("mount", "mounts below a read-only rbind", [](char* mp, const char*, void* c) {
    auto* x = static_cast<BelowCtx*>(c);
    if (!below(mp, x->prefix, x->len)) return;
    if (remount(mp, MS_BIND | x->flags | locked_flags(mp)) < 0)
      fail("mount", errno, "remount %s (below %s) with ro/nosuid/nodev/noexec: %s", mp, x->dest, errtext(errno));
  }, &ctx);
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

int set_attrs(int mount_fd, uint64_t attrs, bool recursive) {
  struct mount_attr attr = {};
  attr.attr_set = attrs;
  return static_cast<int>(
      syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)));
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
    if (syscall(SYS_move_mount, m->idmap_fd, "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
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
        fail("mount", errno, "apply ro/nosuid/nodev/noexec to every mount under the rbind of %s: %s", m->dest, errtext(errno));
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

// Bind `src` (an fd; with every mount below it when `recursive`) onto the O_PATH fd `dst`, by fds only: the
// copy is made (open_tree), restricted by `attrs` on every mount it holds, and only then attached
// (move_mount), so nothing is looked up by path and the container never sees it less restricted. A kernel
// without mount_setattr (before 5.12) gets the copy attached and its top mount remounted with `ms_flags`.
// Returns false with errno set; *what names the call that failed.
bool bind_by_fd(int src, int dst, uint64_t attrs, unsigned long ms_flags, bool recursive, const char* dest,
                const char** what) {
  *what = "open_tree";
  Fd tree(static_cast<int>(syscall(SYS_open_tree, src, "",
                                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0))));
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
    if (!src.ok() || fstat(src.get(), &hs) < 0) fail("device", errno, "open the host's %s to bind it: %s", d->path, errtext(errno));
    if ((hs.st_mode & S_IFMT) != type || (type != S_IFIFO && hs.st_rdev != makedev(d->major, d->minor)))
      fail("device", EINVAL, "the host's %s is not the configured device (%c %u:%u): refusing to bind it", d->path,
           static_cast<char>(d->type), d->major, d->minor);
    Fd dir(mkdir_all_in_root(parent));
    if (!dir.ok()) fail("device", errno, "create parent of %s: %s", d->path, errtext(errno));
    struct stat st;
    if (fstatat(dir.get(), base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) && unlinkat(dir.get(), base, 0) < 0)
      fail("device", errno, "remove the symlink at %s: %s", d->path, errtext(errno));
    // O_PATH dirfds cannot create files with openat; mknodat can.
    if (mknodat(dir.get(), base, S_IFREG | 0644, 0) < 0 && errno != EEXIST) fail("device", errno, "create %s: %s", d->path, errtext(errno));
    Fd target(openat(dir.get(), base, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!target.ok()) fail("device", errno, "open %s in the rootfs: %s", d->path, errtext(errno));
    const char* what;
    if (!bind_by_fd(src.get(), target.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, MS_NOSUID | MS_NOEXEC, false, d->path, &what))
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
  if (strcmp(s->b, "/dev/ptmx") == 0 &&
      (unlinkat(dir.get(), base, 0) < 0 || symlinkat(s->a, dir.get(), base) < 0))
    fail("symlink", errno, "replace %s with a symlink to %s: %s", s->b, s->a, errtext(errno));
}

// Open the host's /dev/null once, before pivot_root, and make sure it is the null device (char 1:3) and not a
// link or a file standing in for it.
int host_devnull() {
  if (g_devnull.ok()) return g_devnull.get();
  g_devnull.reset(open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!g_devnull.ok()) fail("masked path", errno, "open the host's /dev/null: %s", errtext(errno));
  struct stat st;
  if (fstat(g_devnull.get(), &st) < 0) fail("masked path", errno, "stat the host's /dev/null: %s", errtext(errno));
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
    fail("masked path", EINVAL, "the host's /dev/null is not the null device (char 1:3): refusing to mask paths with it");
  return g_devnull.get();
}

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
    if (mount("tmpfs", fd_path(target.get(), tpath, sizeof(tpath)), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=0k") < 0)
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

// --no-pivot leaves the host's mounts in the container's mount namespace, under the new root. A procfs or
// sysfs mount among them is a fully visible one, which lets a process in a nested user namespace mount a new
// proc or sysfs (the kernel's mount_too_revealing check passes) that no mask or read-only path covers. As
// runc does: detach every proc and sysfs mount outside the rootfs before the move, or cover it with an empty
// tmpfs where it cannot be detached (locked in a user namespace). The rest of the old root stays, unreachable
// from the chroot.
void detach_host_proc_sysfs(const char* rootfs) {
  struct Ctx {
    const char* rootfs;
    size_t len;
  } ctx = {rootfs, strlen(rootfs)};
  each_mount("rootfs", "no pivot", [](char* mp, const char* fstype, void* c) {
    auto* x = static_cast<Ctx*>(c);
    if (strcmp(fstype, "proc") != 0 && strcmp(fstype, "sysfs") != 0) return;
    if (strcmp(mp, x->rootfs) == 0 || below(mp, x->rootfs, x->len)) return;  // the container's own
    // Still there? A mount below one detached before it went with it, and the path now shows what was under.
    struct statfs sf;
    if (statfs(mp, &sf) < 0 || (sf.f_type != PROC_SUPER_MAGIC && sf.f_type != SYSFS_MAGIC)) return;
    if (umount2(mp, MNT_DETACH) < 0 &&
        mount("tmpfs", mp, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k") < 0)
      fail("rootfs", errno, "detach or hide the host's %s mount at %s (no pivot): %s", fstype, mp, errtext(errno));
  }, &ctx);
}

}  // namespace

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

void setup_kernel_settings(const Plan* plan) {
  for (size_t i = 0; i < plan->nsysctls; i++) {
    char path[512] = "/proc/sys/";
    size_t off = strlen(path);
    for (const char* k = plan->sysctls[i].a; *k && off < sizeof(path) - 1; k++) path[off++] = *k == '.' ? '/' : *k;
    path[off] = 0;
    Fd f(open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    const char* v = plan->sysctls[i].b;
    if (!f.ok() || write(f.get(), v, strlen(v)) < 0)
      fail("sysctl", errno, "set sysctl %s=%s: %s", plan->sysctls[i].a, v, errtext(errno));
  }
  if (plan->hostname && sethostname(plan->hostname, strlen(plan->hostname)) < 0)
    fail("hostname", errno, "sethostname %s: %s", plan->hostname, errtext(errno));
  if (plan->domainname && setdomainname(plan->domainname, strlen(plan->domainname)) < 0)
    fail("domainname", errno, "setdomainname %s: %s", plan->domainname, errtext(errno));
  if (plan->has_oom) {
    Fd f(open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC));
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d", plan->oom_score_adj);
    if (!f.ok() || write(f.get(), buf, static_cast<size_t>(n)) < 0)
      fail("oom_score_adj", errno, "set oom_score_adj %d: %s", plan->oom_score_adj, errtext(errno));
  }
  step_done("kernel settings");
}

void finish_rootfs(const Plan* plan) {
  // As runc and crun: a process cwd missing from the rootfs is created (0755, root's), inside the root like
  // every path here, before the root may turn read-only. It fails create as runc's does, except a permission
  // error, left to the chdir (as root of the container's namespace, later) to judge.
  if (plan->has_process && plan->process.cwd && plan->process.cwd[0] == '/') {
    Fd cwd(mkdir_all_in_root(plan->process.cwd));
    if (!cwd.ok() && errno != EACCES && errno != EPERM)
      fail("cwd", errno, "mkdir %s: %s", plan->process.cwd, errtext(errno));
  }
  make_deferred_readonly();
  // Masked and read-only paths before pivot_root: every target is resolved inside the root from its fd, and a
  // masked file gets the host's /dev/null, which is still reachable (and checked) here.
  for (size_t i = 0; i < plan->nmasked; i++) mask_path(plan->masked[i]);
  for (size_t i = 0; i < plan->nreadonly; i++) readonly_path(plan->readonly[i]);
  g_devnull.reset();
  if (plan->no_pivot) {
    char real[4096];
    if (!realpath(plan->rootfs, real)) fail("rootfs", errno, "resolve rootfs %s: %s", plan->rootfs, errtext(errno));
    detach_host_proc_sysfs(real);
    if (chdir(plan->rootfs) < 0 || mount(plan->rootfs, "/", nullptr, MS_MOVE, nullptr) < 0 || chroot(".") < 0 ||
        chdir("/") < 0)
      fail("rootfs", errno, "move rootfs to / (no pivot): %s", errtext(errno));
  } else {
    Fd oldroot(open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    Fd newroot(open(plan->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!oldroot.ok() || !newroot.ok()) fail("pivot_root", errno, "open roots: %s", errtext(errno));
    if (fchdir(newroot.get()) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
      fail("pivot_root", errno, "pivot_root %s: %s", plan->rootfs, errtext(errno));
    // The old root is stacked under the new one; detach it without propagating to the host.
    if (fchdir(oldroot.get()) < 0 || mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
      fail("pivot_root", errno, "detach old root: %s", errtext(errno));
  }
  g_root.reset();
  if (plan->has_propagation && mount(nullptr, "/", nullptr, static_cast<unsigned long>(plan->rootfs_propagation), nullptr) < 0)
    fail("rootfs", errno, "set rootfsPropagation: %s", errtext(errno));
  step_done("pivot_root");
}

void make_root_readonly(const Plan* plan) {
  if (plan->rootfs_readonly && remount("/", MS_BIND | MS_RDONLY) < 0)
    fail("rootfs", errno, "remount root read-only: %s", errtext(errno));
}
