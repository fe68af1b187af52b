// hako-policy-helper: resolving the caller's paths in its root, and where the resolved object really is.
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

namespace hako_helper {

namespace {

constexpr uint64_t kResolveNoMagiclinks = 0x02, kResolveNoSymlinks = 0x04, kResolveInRoot = 0x10;

struct OpenHow {
  uint64_t flags, mode, resolve;
};

}  // namespace

int resolve(int rootfd, const char* path, uint64_t oflags) {
  struct OpenHow how = {oflags | O_PATH | O_CLOEXEC, 0, kResolveInRoot | kResolveNoSymlinks | kResolveNoMagiclinks};
  long fd;
  do fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
  while (fd < 0 && errno == EAGAIN);  // a concurrent rename in the tree: retry (the kernel asks for it)
  return static_cast<int>(fd);
}

namespace {

char g_parent[4096];  // resolve_parent's copy of the directory part

}  // namespace

// The directory holding the last component of a normalized absolute path, resolved like resolve();
// *base points at that last component (never empty, ".", ".." or containing '/').
int resolve_parent(int rootfd, const char* path, const char** base) {
  const char* slash = strrchr(path, '/');
  if (!slash || !slash[1] || strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0) finish(ST_RESOLVE, EINVAL);
  size_t dl = static_cast<size_t>(slash - path);
  if (dl >= sizeof(g_parent)) finish(ST_RESOLVE, ENAMETOOLONG);
  memcpy(g_parent, path, dl);
  g_parent[dl] = 0;
  int dfd = resolve(rootfd, dl ? g_parent : "/", O_DIRECTORY);
  if (dfd < 0) finish(ST_RESOLVE, errno);
  *base = slash + 1;
  return dfd;
}

// ---- where the resolved object really is ----
//
// The server decided on a path as the container sees it from its mount namespace's root (s4/s5); the
// helper resolved the caller's path inside the caller's root. The call is made only if the object resolved
// is the object at the decided path (same mount, device and inode), resolved afresh from the mount
// namespace's root without symlinks: a rename, a chroot or a mount in the way makes the two differ.

int g_nsroot = -1;  // the caller's mount namespace's root (opened right after joining it)

namespace {

struct KStatx {  // struct statx of linux/stat.h (glibc's lacks stx_mnt_id)
  uint32_t mask, blksize;
  uint64_t attributes;
  uint32_t nlink, uid, gid;
  uint16_t mode, pad0;
  uint64_t ino, size, blocks, attributes_mask;
  uint8_t times[64];
  uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
  uint64_t mnt_id;
  uint64_t spare[13];
};
static_assert(offsetof(KStatx, mnt_id) == 144, "struct statx layout");
constexpr unsigned kStatxIno = 0x100, kStatxMntId = 0x1000;

struct Ident {
  uint64_t mnt, ino;
  uint32_t maj, min;
  bool operator==(const Ident& o) const { return mnt == o.mnt && ino == o.ino && maj == o.maj && min == o.min; }
};

bool ident(int fd, Ident* id) {
  KStatx st;
  memset(&st, 0, sizeof(st));
  if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kStatxIno | kStatxMntId, &st) < 0) return false;
  if (!(st.mask & kStatxMntId)) {
    errno = ENOSYS;  // Linux < 5.8: no mount id, so no proof
    return false;
  }
  *id = {st.mnt_id, st.ino, st.dev_major, st.dev_minor};
  return true;
}

}  // namespace

// The object at `view` (as the container sees it) is the object `fd` refers to.
bool is_at(int fd, const char* view, uint64_t oflags) {
  struct OpenHow how = {oflags | O_PATH | O_CLOEXEC, 0, kResolveInRoot | kResolveNoSymlinks | kResolveNoMagiclinks};
  long f;
  do f = syscall(SYS_openat2, g_nsroot, view, &how, sizeof(how));
  while (f < 0 && errno == EAGAIN);
  if (f < 0) return false;
  Ident a, b;
  bool same = ident(fd, &a) && ident(static_cast<int>(f), &b) && a == b;
  close(static_cast<int>(f));
  return same;
}

void verify_or_die(int fd, const char* view, uint64_t oflags) {
  if (!is_at(fd, view, oflags)) finish(ST_VERIFY, EPERM);
}

// Resolve the caller's path in its root and check it is the object at `view`. More attempts when they
// differ: a mount stacked on the path between the two resolutions (by a sibling thread) is not a move, and
// on a loaded machine several siblings can stack in a row (CI saw two). Bounded, so a caller that keeps
// moving the path gets EPERM rather than a helper that spins.
int resolve_verified(int rootfd, const char* path, const char* view, uint64_t oflags) {
  for (int attempt = 0; attempt < 4; attempt++) {
    int fd = resolve(rootfd, path, oflags);
    if (fd < 0) finish(ST_RESOLVE, errno);
    if (is_at(fd, view, oflags)) return fd;
    close(fd);
  }
  finish(ST_VERIFY, EPERM);
}

// The parent directory part of a normalized absolute path ("/" for "/x"), into buf.
void parent_of(const char* path, char* buf, size_t size) {
  const char* slash = strrchr(path, '/');
  size_t dl = slash ? static_cast<size_t>(slash - path) : 0;
  if (dl + 2 > size) finish(ST_PROTOCOL, ENAMETOOLONG);
  if (dl == 0) {
    strcpy(buf, "/");
    return;
  }
  memcpy(buf, path, dl);
  buf[dl] = 0;
}

namespace {

// Undo a mount attached by move_mount (its fd is the new mount's root): detach it wherever it went.
int undo_mount(int mnt) {
  char p[32];
  snprintf(p, sizeof(p), "self/fd/%d", mnt);
  if (fchdir(g_hostproc) < 0) return errno;
  return umount2(p, MNT_DETACH) == 0 ? 0 : errno;
}

// /proc/self/mountinfo says mount `id` is mounted on `path` (relative to our root, which is then the
// caller's: mountinfo shows mount points from the reader's root and leaves out mounts outside it).
bool mountinfo_says(uint64_t id, const char* path) {
  int fd = openat(g_hostproc, "self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static char buf[1 << 20];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
    if (len == sizeof(buf) - 1) break;  // a bigger table: the line may be missing, which refuses (safe)
  }
  close(fd);
  buf[len] = 0;
  static char point[4096];
  for (char* line = buf; line && *line;) {
    char* nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char* end;
    unsigned long long mid = strtoull(line, &end, 10);
    if (end != line && mid == id) {
      // Fields: id parent major:minor root mount-point ...; mount-point is the 5th, octal-escaped.
      char* f = line;
      for (int i = 0; i < 4 && f; i++) {
        f = strchr(f, ' ');
        if (f) f++;
      }
      if (!f) return false;
      size_t k = 0;
      for (; *f && *f != ' ' && k + 1 < sizeof(point); f++) {
        if (f[0] == '\\' && f[1] >= '0' && f[1] <= '3' && f[2] >= '0' && f[2] <= '7' && f[3] >= '0' && f[3] <= '7') {
          point[k++] = static_cast<char>(((f[1] - '0') << 6) | ((f[2] - '0') << 3) | (f[3] - '0'));
          f += 3;
        } else {
          point[k++] = *f;
        }
      }
      point[k] = 0;
      return strcmp(point, path) == 0;
    }
    line = nl ? nl + 1 : nullptr;
  }
  return false;
}

}  // namespace

// After move_mount: the new mount must be at the decided path. Either it is what is there now (seen from
// the mount namespace's root), or - when another mount was stacked on it meanwhile - the mount table says
// it is mounted on the caller's path within the caller's root, which was checked to be the decided path
// (a mount point cannot be renamed; moving a directory above it is the container's own later doing). If a
// rename took the target elsewhere before the mount, it is detached again and the call refused.
void check_attached(int mnt, const char* view, const char* caller_path) {
  if (is_at(mnt, view, 0)) return;
  Ident id;
  if (ident(mnt, &id) && mountinfo_says(id.mnt, caller_path)) return;
  int e = undo_mount(mnt);
  finish(ST_MOVED, e ? e : EPERM);
}

}  // namespace hako_helper
