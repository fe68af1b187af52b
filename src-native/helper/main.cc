// Over 400 lines because the per-request child (resolve, verify, act) and the helper loop share the request state; splitting it by syscall family is open (issue 17).
// hako-policy-helper: performs the system calls the policy server emulates for containers (mount, umount,
// mknod, sethostname, setxattr, chown) in the caller's namespaces.
//
// Why a separate process: joining a user namespace (setns CLONE_NEWUSER) is refused to a multithreaded
// process and to one sharing its fs_struct, and Node is always multithreaded, so neither the server nor a
// fork of it may do it. This static helper is started once by the server, stays single-threaded, and forks
// one short-lived child per request (a fork of a ~1 MB static process costs a few hundred microseconds).
// The child refuses a caller in the helper's own (initial) user namespace unless the server serves host
// callers, joins the caller's namespaces, applies the caller's credentials and groups, resolves paths inside
// the caller's root with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), checks that
// what it resolved is the object at the path the server decided on (as the container sees it, from its
// mount namespace's root), prepares the action, checks SECCOMP_IOCTL_NOTIF_ID_VALID, acts on that same fd,
// checks again where the result is (undoing a mount that a rename sent elsewhere), and writes a PolicyReply
// to a pipe. The helper loop
// never blocks on a child: a hung child (a mount on a dead FUSE server, say) is killed at its deadline.
//
// fd 3 is the SOCK_SEQPACKET end shared with the server (see policy_proto.h). The helper exits when the
// server goes away (EOF, or PR_SET_PDEATHSIG).
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stddef.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "policy_proto.h"
#include "../common/notif.h"
#include "../common/proc_status.h"
#include "../common/scm.h"
#include "../common/syscalls.h"

using namespace hako_policy;
using proc_status::Creds;
using proc_status::read_creds;


namespace {

constexpr uint64_t kResolveNoMagiclinks = 0x02, kResolveNoSymlinks = 0x04, kResolveInRoot = 0x10;
constexpr unsigned kFsopenCloexec = 1, kFsmountCloexec = 1, kOpenTreeClone = 1;
constexpr unsigned kFsconfigSetFlag = 0, kFsconfigSetString = 1, kFsconfigCmdCreate = 6;
constexpr unsigned kMoveMountFEmptyPath = 0x4, kMoveMountTEmptyPath = 0x40;
constexpr unsigned kAtRecursive = 0x8000;
constexpr int kMaxChildren = 64;

struct OpenHow {
  uint64_t flags, mode, resolve;
};
struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

int g_sock = 3;
int g_hostproc = -1;  // /proc of the helper (the host's), for /proc/self/fd/N paths after joining a mntns

// The helper's own namespaces: a namespace equal to ours is not joined (setns would fail or be useless).
struct NsType {
  const char* name;
  int flag;
  ino_t ino;
  dev_t dev;
};
NsType g_ns[] = {{"user", CLONE_NEWUSER, 0, 0}, {"mnt", CLONE_NEWNS, 0, 0},     {"uts", CLONE_NEWUTS, 0, 0},
                 {"ipc", CLONE_NEWIPC, 0, 0},   {"net", CLONE_NEWNET, 0, 0},    {"cgroup", CLONE_NEWCGROUP, 0, 0},
                 {"pid", CLONE_NEWPID, 0, 0}};
enum { NS_USER, NS_MNT, NS_UTS, NS_IPC, NS_NET, NS_CGROUP, NS_PID, NS_COUNT };

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// ---- the per-request child ----

struct Request {
  PolicyRequest h;
  const char* s[6];
  uint32_t len[6];
  bool has(int n) const { return (h.has_str >> n) & 1; }
  // Strings as C strings: each one was copied into its own NUL-terminated buffer.
};

// Supplementary groups of the caller (as the host sees them): directory permissions are checked with the
// caller's groups, never with the helper's own (root's) group list.
gid_t g_groups[65536];

int g_out = -1;
PolicyReply g_reply;

[[noreturn]] void finish(int stage, int err, int64_t ret = -1) {
  // Drop every reference we hold (a new mount's fd, the resolved target) before the caller is answered:
  // the caller continues at once, and an umount right after must not find the mount busy.
  bool ok = (g_out <= 3 || syscall(SYS_close_range, 3, g_out - 1, 0) == 0) && syscall(SYS_close_range, g_out + 1, ~0U, 0) == 0;
  if (!ok)  // Linux < 5.9
    for (int fd = 3; fd < 4096; fd++)
      if (fd != g_out) close(fd);
  g_reply.stage = stage;
  g_reply.err = err;
  g_reply.ret = err ? -1 : ret;
  ssize_t w;
  do w = write(g_out, &g_reply, sizeof(g_reply));
  while (w < 0 && errno == EINTR);
  _exit(0);
}

bool same_as_ours(int fd, int type) {
  struct stat st;
  return fstat(fd, &st) == 0 && st.st_ino == g_ns[type].ino && st.st_dev == g_ns[type].dev;
}

// Keep exactly `keep` (plus what the caller had, when given) in the effective set; permitted is untouched.
bool set_effective(uint64_t keep) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &hdr, d) < 0) return false;
  uint64_t prm = static_cast<uint64_t>(d[0].permitted) | (static_cast<uint64_t>(d[1].permitted) << 32);
  uint64_t eff = prm & keep;
  d[0].effective = static_cast<uint32_t>(eff);
  d[1].effective = static_cast<uint32_t>(eff >> 32);
  return syscall(SYS_capset, &hdr, d) == 0;
}

int resolve(int rootfd, const char* path, uint64_t oflags) {
  struct OpenHow how = {oflags | O_PATH | O_CLOEXEC, 0, kResolveInRoot | kResolveNoSymlinks | kResolveNoMagiclinks};
  long fd;
  do fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
  while (fd < 0 && errno == EAGAIN);  // a concurrent rename in the tree: retry (the kernel asks for it)
  return static_cast<int>(fd);
}

// The directory holding the last component of a normalized absolute path, resolved like resolve();
// *base points at that last component (never empty, ".", ".." or containing '/').
char g_parent[4096];
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

int resolve(int rootfd, const char* path, uint64_t oflags);

// Resolve the caller's path in its root and check it is the object at `view`. A second attempt when they
// differ: a mount stacked on the path between the two resolutions (by a sibling thread) is not a move.
int resolve_verified(int rootfd, const char* path, const char* view, uint64_t oflags) {
  for (int attempt = 0; attempt < 2; attempt++) {
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

// The decisive check: the caller is still blocked in the very call we were asked to act for.
void validate_or_die(int notify_fd, uint64_t id) {
  if (notif::id_valid(notify_fd, id) != 0) finish(ST_VALIDATE, ENOENT);
}

// "self/fd/N" relative to the helper's /proc, for syscalls that only take a path (umount2, setxattr).
void chdir_hostproc() {
  if (fchdir(g_hostproc) < 0) finish(ST_ACT, errno);
}

[[noreturn]] void run_child(const Request& r, int notify_fd, int procdir) {
  const uint32_t op = r.h.op;
  const bool join_user = (r.h.flags & RF_JOIN_USERNS) != 0;
  const bool host_ok = (r.h.flags & RF_HOST_OK) != 0;
  const bool has_path = op != OP_SETHOSTNAME;
  // The path as the container sees it (the one the policy allowed), for every op that has a path.
  if (has_path && !r.has(4)) finish(ST_PROTOCOL, EINVAL);
  // 1. Everything about the caller is opened through its /proc/<tid> directory, while we are fully
  // privileged: that directory was validated against the notification, so these are the caller's.
  Creds host;
  if (!read_creds(procdir, &host, g_groups, 65536)) finish(ST_PROC, errno ? errno : ESRCH);
  if (host.ngroups < 0) finish(ST_PROC, EINVAL);
  int nsfd[NS_COUNT];
  bool want[NS_COUNT] = {};
  // The caller's user namespace is always opened: a caller in ours (the initial one) is refused unless the
  // server serves host callers, whatever the op (the helper would otherwise act with host privilege for it).
  want[NS_USER] = true;
  want[NS_MNT] = op != OP_SETHOSTNAME;
  want[NS_UTS] = op == OP_SETHOSTNAME;
  // A new filesystem instance takes some namespaces from the mounter (sysfs: net, mqueue: ipc, cgroup2:
  // cgroup, proc: pid): join all of the caller's, so a mount never shows the host's.
  want[NS_IPC] = want[NS_NET] = want[NS_CGROUP] = op == OP_MOUNT;
  const bool is_proc = op == OP_MOUNT && r.has(0) && strcmp(r.s[0], "proc") == 0;
  want[NS_PID] = is_proc;
  for (int t = 0; t < NS_COUNT; t++) {
    nsfd[t] = -1;
    if (!want[t]) continue;
    char p[32];
    snprintf(p, sizeof(p), "ns/%s", g_ns[t].name);
    nsfd[t] = openat(procdir, p, O_RDONLY | O_CLOEXEC);
    if (nsfd[t] < 0) finish(ST_PROC, errno);
    if (same_as_ours(nsfd[t], t)) {
      if (!host_ok && (t == NS_USER || t == NS_MNT || t == NS_UTS)) finish(t == NS_USER ? ST_USERNS : t == NS_MNT ? ST_MNTNS : ST_UTSNS, EPERM);
      close(nsfd[t]);
      nsfd[t] = -1;
    }
  }
  if (!join_user && nsfd[NS_USER] >= 0) {
    close(nsfd[NS_USER]);  // host privilege (a privileged rule, mknod, setxattr): stays in ours
    nsfd[NS_USER] = -1;
  }
  int rootfd = -1, callerfd = -1;
  if (has_path) {
    rootfd = openat(procdir, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) finish(ST_PROC, errno);
  }
  if ((op == OP_SETXATTR || op == OP_CHOWN) && r.h.i[2] >= 0) {
    char p[32];
    snprintf(p, sizeof(p), "fd/%lld", static_cast<long long>(r.h.i[2]));
    callerfd = openat(procdir, p, O_PATH | O_CLOEXEC);
    if (callerfd < 0) finish(ST_PROC, errno == ENOENT ? EBADF : errno);
  }

  // 2. Credentials. Joining the caller's user namespace makes us its root with every capability there,
  // nothing more on the host; then the caller's fsuid/fsgid, so new inodes belong to the caller.
  uint64_t need = 0;
  switch (op) {
    case OP_MOUNT:
    case OP_BIND:
    case OP_UMOUNT:
    case OP_SETHOSTNAME:
      need = 1ULL << CAP_SYS_ADMIN;
      break;
    case OP_MKNOD:
      need = 1ULL << CAP_MKNOD;
      break;
    case OP_SETXATTR:
      need = (1ULL << CAP_SYS_ADMIN) | (r.has(0) && strncmp(r.s[0], "security.", 9) == 0 ? 1ULL << CAP_SETFCAP : 0);
      break;
    case OP_CHOWN:
      need = 1ULL << CAP_CHOWN;
      break;
  }
  // setns(mnt) needs CAP_SYS_ADMIN and CAP_SYS_CHROOT; they are dropped from the effective set after.
  const uint64_t kSetns = (1ULL << CAP_SYS_ADMIN) | (1ULL << CAP_SYS_CHROOT);
  // The caller's supplementary groups (host view), set while we are still the host's root.
  if (setgroups(static_cast<size_t>(host.ngroups), g_groups) < 0) finish(ST_CREDS, errno);
  // Namespaces a new filesystem takes from the mounter (ipc, net, cgroup, pid) are joined first, as the
  // host's root: a caller in a nested user namespace has them owned by an outer one, which its user
  // namespace's root could not join. They grant nothing: what the mount may do is checked by the kernel
  // against the user namespaces owning them, where the helper will have only the caller's power.
  static const int kFirst[] = {NS_IPC, NS_NET, NS_CGROUP, NS_PID};
  for (int t : kFirst) {
    if (nsfd[t] < 0) continue;
    if (setns(nsfd[t], g_ns[t].flag) < 0) finish(ST_USERNS, errno);
    close(nsfd[t]);
    nsfd[t] = -1;
  }
  if (nsfd[NS_USER] >= 0) {
    if (setns(nsfd[NS_USER], CLONE_NEWUSER) < 0) finish(ST_USERNS, errno);
    Creds inside;  // the same ids, as the caller's user namespace sees them
    if (!read_creds(procdir, &inside)) finish(ST_PROC, errno ? errno : ESRCH);
    setfsgid(inside.fsgid);
    setfsuid(inside.fsuid);
    if (static_cast<unsigned>(setfsuid(static_cast<uid_t>(-1))) != inside.fsuid ||
        static_cast<unsigned>(setfsgid(static_cast<gid_t>(-1))) != inside.fsgid)
      finish(ST_CREDS, EPERM);
  } else {
    setfsgid(host.fsgid);
    setfsuid(host.fsuid);
    if (static_cast<unsigned>(setfsuid(static_cast<uid_t>(-1))) != host.fsuid ||
        static_cast<unsigned>(setfsgid(static_cast<gid_t>(-1))) != host.fsgid)
      finish(ST_CREDS, EPERM);
  }
  if (!set_effective(need | kSetns)) finish(ST_CREDS, errno);
  // 3. The mount and UTS namespaces, as the caller's user namespace's root: joined only if that user
  // namespace has power over them, as the caller's call would need.
  static const int kAfterUser[] = {NS_MNT, NS_UTS};
  for (int t : kAfterUser) {
    if (nsfd[t] < 0) continue;
    if (setns(nsfd[t], g_ns[t].flag) < 0) finish(t == NS_MNT ? ST_MNTNS : ST_UTSNS, errno);
    close(nsfd[t]);
  }
  // setns(mnt) put us at the mount namespace's root: the root paths as the container sees them start from.
  if (has_path) {
    g_nsroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (g_nsroot < 0) finish(ST_MNTNS, errno);
  }
  // Paths the kernel resolves by itself (a block device given as a mount source) resolve in the caller's
  // root, not the mount namespace's root (which is the host's for a container that did not pivot_root).
  if (rootfd >= 0 && (fchdir(rootfd) < 0 || chroot(".") < 0)) finish(ST_MNTNS, errno);
  // Only the capability the call needs, on top of the caller's fsuid/fsgid (DAC is checked as the caller).
  if (!set_effective(need)) finish(ST_CREDS, errno);
  if (is_proc) {
    // procfs shows the pid namespace of the mounter's own pid namespace: become a member by forking.
    pid_t g = fork();
    if (g < 0) finish(ST_PREPARE, errno);
    if (g > 0) {
      int st;
      while (waitpid(g, &st, 0) < 0 && errno == EINTR) {
      }
      _exit(0);  // the grandchild wrote the reply (or the helper reports a crash on EOF)
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
  }

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
      if (syscall(SYS_move_mount, mnt, "", tgt, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) < 0) finish(ST_ACT, errno);
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
      if (syscall(SYS_move_mount, tree, "", tgt, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) < 0) finish(ST_ACT, errno);
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

// ---- the helper loop ----

struct Child {
  pid_t pid;
  int pipe;
  uint64_t token;
  int64_t deadline;
  bool replied;
};

Child g_children[kMaxChildren];
int g_nchildren = 0;

void send_reply(const PolicyReply& rep) {
  ssize_t w;
  do w = send(g_sock, &rep, sizeof(rep), MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) _exit(0);  // the server is gone
}

void reply_error(uint64_t token, int stage, int err) {
  PolicyReply rep = {token, -1, err, stage};
  send_reply(rep);
}

// Receive one request and fork its child. Returns false when the server closed the socket.
bool handle_request(uint8_t* buf) {
  struct iovec iov = {buf, kMaxRequest};
  int fds[4];
  size_t nfds = 0;
  int msg_flags = 0;
  memset(buf, 0, sizeof(PolicyRequest));
  ssize_t n = scm::recv_fds(g_sock, &iov, 1, fds, 4, &nfds, 0, &msg_flags);
  if (n < 0 && errno == EMSGSIZE) {
    // More fds than a request carries (scm.h closed them all): refused like any malformed request. The
    // data did arrive: its header names the token to answer.
    PolicyRequest h;
    memcpy(&h, buf, sizeof(h));
    if (h.magic == kMagic) reply_error(h.token, ST_PROTOCOL, EINVAL);
    return true;
  }
  auto drop = [&]() {
    for (size_t i = 0; i < nfds; i++) close(fds[i]);
  };
  if (n <= 0) {
    drop();  // an empty datagram may carry fds too
    return false;
  }
  Request r;
  if (static_cast<size_t>(n) < sizeof(PolicyRequest)) {
    drop();
    return true;
  }
  memcpy(&r.h, buf, sizeof(r.h));
  size_t off = sizeof(PolicyRequest);
  bool ok = r.h.magic == kMagic && nfds == 2 && !(msg_flags & MSG_TRUNC);
  // Strings are copied to a separate NUL-terminated area after the datagram.
  static char strings[6 * (kMaxStr + 1)];
  char* sp = strings;
  for (int i = 0; ok && i < 6; i++) {
    r.len[i] = r.h.str_len[i];
    if (r.len[i] > kMaxStr || off + r.len[i] > static_cast<size_t>(n)) {
      ok = false;
      break;
    }
    memcpy(sp, buf + off, r.len[i]);
    sp[r.len[i]] = 0;
    r.s[i] = sp;
    sp += r.len[i] + 1;
    off += r.len[i];
  }
  if (ok && (r.h.op < OP_MOUNT || r.h.op > OP_CHOWN)) ok = false;
  // Paths must be present where the op needs them (the server guarantees it; a bad request is refused).
  if (ok && (r.h.op == OP_MOUNT) && (!r.has(0) || !r.has(2))) ok = false;
  if (ok && r.h.op == OP_BIND && (!r.has(1) || !r.has(2))) ok = false;
  if (ok && (r.h.op == OP_UMOUNT || r.h.op == OP_MKNOD) && !r.has(2)) ok = false;
  if (ok && r.h.op == OP_SETHOSTNAME && !r.has(0)) ok = false;
  if (ok && (r.h.op == OP_SETXATTR || r.h.op == OP_CHOWN) && !r.has(2) && r.h.i[2] < 0) ok = false;
  if (ok && r.h.op == OP_SETXATTR && !r.has(0)) ok = false;
  if (!ok) {
    drop();
    reply_error(r.h.token, ST_PROTOCOL, EINVAL);
    return true;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    drop();
    reply_error(r.h.token, ST_PREPARE, errno);
    return true;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    drop();
    reply_error(r.h.token, ST_PREPARE, e == ENOMEM ? EAGAIN : e);
    return true;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(p[0]);
    close(g_sock);
    g_out = p[1];
    g_reply.token = r.h.token;
    run_child(r, fds[0], fds[1]);
  }
  close(p[1]);
  drop();
  Child& c = g_children[g_nchildren++];
  c.pid = pid;
  c.pipe = p[0];
  c.token = r.h.token;
  c.deadline = now_ms() + (r.h.timeout_ms ? r.h.timeout_ms : 10000);
  c.replied = false;
  return true;
}

void reap(int idx) {
  Child& c = g_children[idx];
  int st;
  while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR) {
  }
  close(c.pipe);
  g_children[idx] = g_children[--g_nchildren];
}

}  // namespace

int main(int argc, char** argv) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc > 1) g_sock = atoi(argv[1]);
  if (getppid() == 1) return 0;  // the server died before we armed PDEATHSIG
  signal(SIGPIPE, SIG_IGN);
  fcntl(g_sock, F_SETFD, FD_CLOEXEC);
  g_hostproc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (g_hostproc < 0) {
    perror("hako-policy-helper: open /proc");
    return 1;
  }
  for (auto& t : g_ns) {
    char p[48];
    snprintf(p, sizeof(p), "/proc/self/ns/%s", t.name);
    struct stat st;
    if (stat(p, &st) == 0) {
      t.ino = st.st_ino;
      t.dev = st.st_dev;
    }
  }
  static uint8_t buf[kMaxRequest];
  for (;;) {
    struct pollfd pf[kMaxChildren + 1];
    int n = 0;
    // At the children limit, requests wait in the socket (the server's send then gets EAGAIN).
    pf[n++] = {g_sock, static_cast<short>(g_nchildren < kMaxChildren ? POLLIN : 0), 0};
    int64_t now = now_ms(), wait = -1;
    for (int i = 0; i < g_nchildren; i++) {
      pf[n++] = {g_children[i].pipe, POLLIN, 0};
      int64_t left = g_children[i].deadline - now;
      if (!g_children[i].replied && (wait < 0 || left < wait)) wait = left < 0 ? 0 : left;
    }
    int r = poll(pf, static_cast<nfds_t>(n), static_cast<int>(wait));
    if (r < 0 && errno != EINTR) return 1;
    now = now_ms();
    // Children first (the array is compacted by reap, so walk backwards).
    for (int i = g_nchildren - 1; i >= 0; i--) {
      Child& c = g_children[i];
      short ev = pf[i + 1].revents;
      if (ev & POLLIN) {
        PolicyReply rep;
        ssize_t k = read(c.pipe, &rep, sizeof(rep));
        if (k == static_cast<ssize_t>(sizeof(rep)) && !c.replied) {
          rep.token = c.token;
          send_reply(rep);
          c.replied = true;
        } else if (k <= 0) {
          ev |= POLLHUP;
        }
      }
      if (ev & (POLLHUP | POLLERR)) {
        if (!c.replied) reply_error(c.token, ST_CRASH, EIO);
        reap(i);
        continue;
      }
      if (!c.replied && now >= c.deadline) {
        kill(c.pid, SIGKILL);
        reply_error(c.token, ST_TIMEOUT, ETIMEDOUT);
        c.replied = true;
      }
    }
    if (pf[0].revents & (POLLHUP | POLLERR)) return 0;
    if ((pf[0].revents & POLLIN) && !handle_request(buf)) return 0;
  }
}
