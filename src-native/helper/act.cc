// hako-policy-helper: the calls, by family (mount, bind, umount, mknod, sethostname, setxattr, chown), made
// by the per-request child in the caller's namespaces once the objects are resolved and verified.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "child.h"
#include "../common/notif.h"

namespace hako_helper {

namespace {

constexpr unsigned kFsopenCloexec = 1, kFsmountCloexec = 1, kOpenTreeClone = 1;
constexpr unsigned kFsconfigSetFlag = 0, kFsconfigSetString = 1, kFsconfigCmdCreate = 6;
constexpr unsigned kMoveMountFEmptyPath = 0x4, kMoveMountTEmptyPath = 0x40;
constexpr unsigned kAtRecursive = 0x8000;

struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

// The decisive check: the caller is still blocked in the very call we were asked to act for.
void validate_or_die(int notify_fd, uint64_t id) {
  if (notif::id_valid(notify_fd, id) != 0) finish(ST_VALIDATE, ENOENT);
}

// "self/fd/N" relative to the helper's /proc, for syscalls that only take a path (umount2, setxattr).
void chdir_hostproc() {
  if (fchdir(g_hostproc) < 0) finish(ST_ACT, errno);
}

}  // namespace

[[noreturn]] void act(const Request& r, int notify_fd, int rootfd, int callerfd, const proc_status::Creds& host) {
  const uint32_t op = r.h.op;
  const uint64_t id = r.h.notif_id;
  switch (op) {
    case OP_MOUNT: {
      int tgt = resolve_verified(rootfd, r.s[2], r.s[4], 0);
      int fs = static_cast<int>(syscall(SYS_fsopen, r.s[0], kFsopenCloexec));
      if (fs < 0) finish(ST_PREPARE, errno);
      if (r.has(1) && syscall(SYS_fsconfig, fs, kFsconfigSetString, "source", r.s[1], 0) < 0) finish(ST_PREPARE, errno);
      // Options: "key=value" or "key", NUL separated (the server split the caller's data string).
      for (const char* o = r.s[3]; r.has(3) && o < r.s[3] + r.len[3]; o += strlen(o) + 1) {
        if (!*o) continue;
        char key[256];
        const char* eq = strchr(o, '=');
        long rc;
        if (eq) {
          size_t kl = static_cast<size_t>(eq - o);
          if (kl >= sizeof(key)) finish(ST_PREPARE, EINVAL);
          memcpy(key, o, kl);
          key[kl] = 0;
          rc = syscall(SYS_fsconfig, fs, kFsconfigSetString, key, eq + 1, 0);
        } else {
          rc = syscall(SYS_fsconfig, fs, kFsconfigSetFlag, o, nullptr, 0);
        }
        if (rc < 0) finish(ST_PREPARE, errno);
      }
      if (syscall(SYS_fsconfig, fs, kFsconfigCmdCreate, nullptr, nullptr, 0) < 0) finish(ST_PREPARE, errno);
      int mnt = static_cast<int>(syscall(SYS_fsmount, fs, kFsmountCloexec, static_cast<unsigned>(r.h.i[0])));
      if (mnt < 0) finish(ST_PREPARE, errno);
      validate_or_die(notify_fd, id);
      if (syscall(SYS_move_mount, mnt, "", tgt, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) < 0)
        finish(ST_ACT, errno);
      check_attached(mnt, r.s[4], r.s[2]);
      finish(ST_OK, 0, 0);
    }
    case OP_BIND: {
      if (!r.has(5)) finish(ST_PROTOCOL, EINVAL);
      int src = resolve_verified(rootfd, r.s[1], r.s[5], 0);
      int tgt = resolve_verified(rootfd, r.s[2], r.s[4], 0);
      unsigned rec = r.h.i[1] ? kAtRecursive : 0;
      int tree = static_cast<int>(syscall(SYS_open_tree, src, "", kOpenTreeClone | O_CLOEXEC | AT_EMPTY_PATH | rec));
      if (tree < 0) finish(ST_PREPARE, errno);
      if (r.h.i[0]) {
        struct MountAttr a = {static_cast<uint64_t>(r.h.i[0]), 0, 0, 0};
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rec, &a, sizeof(a)) < 0) finish(ST_PREPARE, errno);
      }
      validate_or_die(notify_fd, id);
      if (syscall(SYS_move_mount, tree, "", tgt, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) < 0)
        finish(ST_ACT, errno);
      check_attached(tree, r.s[4], r.s[2]);
      finish(ST_OK, 0, 0);
    }
    case OP_UMOUNT: {
      // An fd on the mount itself would make it busy (EBUSY): pin the parent directory instead (resolved
      // without symlinks), stand in it, and unmount the last component without following it. The name is
      // looked up once, atomically, in a directory that cannot move under us.
      // A rename of the parent after the check moves the mount with it: the end state is that of an allowed
      // umount followed by the container's own rename, so it is reported (stage moved), not undone.
      const char* base;
      int dfd = resolve_parent(rootfd, r.s[2], &base);
      static char view_parent[4096];
      parent_of(r.s[4], view_parent, sizeof(view_parent));
      verify_or_die(dfd, view_parent, O_DIRECTORY);
      if (fchdir(dfd) < 0) finish(ST_RESOLVE, errno);
      validate_or_die(notify_fd, id);
      if (umount2(base, (static_cast<int>(r.h.i[0]) & MNT_DETACH) | UMOUNT_NOFOLLOW) < 0) finish(ST_ACT, errno);
      if (!is_at(dfd, view_parent, O_DIRECTORY)) finish(ST_MOVED, 0, 0);
      finish(ST_OK, 0, 0);
    }
    case OP_MKNOD: {
      // The server sends a normalized absolute path: its last component is created in the directory
      // the rest resolves to.
      const char* base;
      int dfd = resolve_parent(rootfd, r.s[2], &base);
      static char view_parent[4096];
      parent_of(r.s[4], view_parent, sizeof(view_parent));
      verify_or_die(dfd, view_parent, O_DIRECTORY);
      mode_t mode = static_cast<mode_t>(r.h.i[0]);
      mode = (mode & S_IFMT) | (mode & 07777 & ~(host.have_umask ? host.umask : 022));
      dev_t dev = makedev(static_cast<unsigned>(r.h.i[1]), static_cast<unsigned>(r.h.i[2]));
      validate_or_die(notify_fd, id);
      if (mknodat(dfd, base, mode, dev) < 0) finish(ST_ACT, errno);
      if (!is_at(dfd, view_parent, O_DIRECTORY)) {
        // The directory was moved while the node was made: remove the node we made (if it is still ours).
        // (Reported as EPERM once removed; the unlink's errno if it could not be, so the audit shows it.)
        struct stat st;
        int e = EPERM;
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) e = errno;
        else if ((st.st_mode & S_IFMT) == (mode & S_IFMT) && st.st_rdev == dev && unlinkat(dfd, base, 0) < 0) e = errno;
        finish(ST_MOVED, e);
      }
      finish(ST_OK, 0, 0);
    }
    case OP_SETHOSTNAME: {
      validate_or_die(notify_fd, id);
      int rc = r.h.i[0] == 1 ? setdomainname(r.s[0], r.len[0]) : sethostname(r.s[0], r.len[0]);
      if (rc < 0) finish(ST_ACT, errno);
      finish(ST_OK, 0, 0);
    }
    case OP_SETXATTR: {
      const uint64_t of = r.h.i[1] ? 0 : O_NOFOLLOW;
      int fd = callerfd;
      if (fd >= 0) verify_or_die(fd, r.s[4], O_NOFOLLOW);
      else fd = resolve_verified(rootfd, r.s[2], r.s[4], of);
      char p[48];
      snprintf(p, sizeof(p), "self/fd/%d", fd);
      chdir_hostproc();
      validate_or_die(notify_fd, id);
      if (setxattr(p, r.s[0], r.has(1) ? r.s[1] : "", r.len[1], static_cast<int>(r.h.i[0])) < 0) finish(ST_ACT, errno);
      finish(ST_OK, 0, 0);
    }
    case OP_CHOWN: {
      const uint64_t of = r.h.i[3] ? 0 : O_NOFOLLOW;
      int fd = callerfd;
      if (fd >= 0) verify_or_die(fd, r.s[4], O_NOFOLLOW);
      else fd = resolve_verified(rootfd, r.s[2], r.s[4], of);
      validate_or_die(notify_fd, id);
      if (fchownat(fd, "", static_cast<uid_t>(r.h.i[0]), static_cast<gid_t>(r.h.i[1]), AT_EMPTY_PATH) < 0)
        finish(ST_ACT, errno);
      finish(ST_OK, 0, 0);
    }
  }
  finish(ST_PROTOCOL, EINVAL);
}

}  // namespace hako_helper
