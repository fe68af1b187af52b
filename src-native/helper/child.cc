// hako-policy-helper's per-request child: it joins the caller's namespaces and takes the caller's
// credentials and groups (child.h), then act.cc makes the call; finish() writes the reply and exits.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

using proc_status::Creds;
using proc_status::read_creds;

namespace hako_helper {

int g_hostproc = -1;

namespace {

// The helper's own namespaces: a namespace equal to ours is not joined (setns would fail or be useless).
struct NsType {
  const char* name;
  int flag;
  ino_t ino;
  dev_t dev;
};
NsType g_ns[] = {{"user", CLONE_NEWUSER, 0, 0}, {"mnt", CLONE_NEWNS, 0, 0},  {"uts", CLONE_NEWUTS, 0, 0},
                 {"ipc", CLONE_NEWIPC, 0, 0},   {"net", CLONE_NEWNET, 0, 0}, {"cgroup", CLONE_NEWCGROUP, 0, 0},
                 {"pid", CLONE_NEWPID, 0, 0}};
enum { NS_USER, NS_MNT, NS_UTS, NS_IPC, NS_NET, NS_CGROUP, NS_PID, NS_COUNT };

}  // namespace

void read_own_namespaces() {
  for (auto& t : g_ns) {
    char p[48];
    snprintf(p, sizeof(p), "/proc/self/ns/%s", t.name);
    struct stat st;
    if (stat(p, &st) == 0) {
      t.ino = st.st_ino;
      t.dev = st.st_dev;
    }
  }
}

namespace {

// Supplementary groups of the caller (as the host sees them): directory permissions are checked with the
// caller's groups, never with the helper's own (root's) group list.
gid_t g_groups[65536];

}  // namespace

int g_out = -1;
PolicyReply g_reply;

[[noreturn]] void finish(int stage, int err, int64_t ret) {
  // Drop every reference we hold (a new mount's fd, the resolved target) before the caller is answered:
  // the caller continues at once, and an umount right after must not find the mount busy.
  bool ok = (g_out <= 3 || syscall(SYS_close_range, 3, g_out - 1, 0) == 0) &&
            syscall(SYS_close_range, g_out + 1, ~0U, 0) == 0;
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

namespace {

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

}  // namespace

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
      if (!host_ok && (t == NS_USER || t == NS_MNT || t == NS_UTS))
        finish(t == NS_USER ? ST_USERNS : t == NS_MNT ? ST_MNTNS : ST_UTSNS, EPERM);
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
    case OP_SETHOSTNAME: need = 1ULL << CAP_SYS_ADMIN; break;
    case OP_MKNOD: need = 1ULL << CAP_MKNOD; break;
    case OP_SETXATTR:
      need = (1ULL << CAP_SYS_ADMIN) | (r.has(0) && strncmp(r.s[0], "security.", 9) == 0 ? 1ULL << CAP_SETFCAP : 0);
      break;
    case OP_CHOWN: need = 1ULL << CAP_CHOWN; break;
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

  act(r, notify_fd, rootfd, callerfd, host);
}

}  // namespace hako_helper
