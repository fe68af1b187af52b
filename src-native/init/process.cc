#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "channel.h"
#include "../common/syscalls.h"

namespace {

const char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool is_executable(const char* path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};

int set_caps(const uint64_t caps[5]) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; i++) {
    data[i].effective = static_cast<uint32_t>(caps[1] >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(caps[2] >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(caps[3] >> (32 * i));
  }
  return static_cast<int>(syscall(SYS_capset, &hdr, data));
}

}  // namespace

int resolve_executable(const ProcessSpec* p, char* out, size_t outlen, char* msg, size_t msglen) {
  const char* arg0 = p->argv[0];
  if (strchr(arg0, '/')) {
    struct stat st;
    if (stat(arg0, &st) < 0) {
      int e = errno;
      snprintf(msg, msglen, "exec: \"%s\": stat %s: %s", arg0, arg0, errtext(e));
      return e;
    }
    if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
      snprintf(msg, msglen, "exec: \"%s\": permission denied", arg0);
      return EACCES;
    }
    snprintf(out, outlen, "%s", arg0);
    return 0;
  }
  const char* path = kDefaultPath;
  for (size_t i = 0; i < p->envc; i++)
    if (strncmp(p->envp[i], "PATH=", 5) == 0) path = p->envp[i] + 5;
  const char* s = path;
  while (true) {
    const char* e = strchr(s, ':');
    size_t n = e ? static_cast<size_t>(e - s) : strlen(s);
    char cand[4096];
    if (n == 0) snprintf(cand, sizeof(cand), "./%s", arg0);
    else snprintf(cand, sizeof(cand), "%.*s/%s", static_cast<int>(n), s, arg0);
    if (is_executable(cand)) {
      snprintf(out, outlen, "%s", cand);
      return 0;
    }
    if (!e) break;
    s = e + 1;
  }
  snprintf(msg, msglen, "exec: \"%s\": executable file not found in $PATH", arg0);
  return ENOENT;
}

// The home directory of `uid` in the container's /etc/passwd, "/" when it has none (runc's and crun's rule for a
// process whose env has no HOME). The file belongs to the container: it is read only if it is a regular file
// (a FIFO there must not block the init), and at most 1 MiB of it; a line is only trusted to be a line.
void home_of(uint32_t uid, char* out, size_t outlen) {
  snprintf(out, outlen, "/");
  int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return;
  struct stat st;
  static char buf[1 << 20];
  size_t len = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    while (len < sizeof(buf) - 1) {
      ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      len += static_cast<size_t>(n);
    }
  }
  close(fd);
  buf[len] = 0;
  char want[16];
  snprintf(want, sizeof(want), "%u", uid);
  for (char* line = buf; line && *line;) {
    char* next = strchr(line, '\n');
    if (next) *next++ = 0;
    // name:password:uid:gid:gecos:home:shell
    char* field[7] = {};
    int n = 0;
    for (char* f = line; f && n < 7; n++) {
      field[n] = f;
      f = strchr(f, ':');
      if (f) *f++ = 0;
    }
    if (n >= 6 && strcmp(field[2], want) == 0) {
      if (field[5][0]) snprintf(out, outlen, "%s", field[5]);
      return;
    }
    line = next;
  }
}

int load_seccomp(const ProcessSpec* p) {
  struct sock_fprog prog = {static_cast<unsigned short>(p->filter_len), p->filter};
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
  if (r < 0) {
    int e = errno;
    if (e == EINVAL && p->seccomp_flags)
      fail("seccomp", e, "load seccomp filter: the kernel refused the filter flags 0x%x: %s", p->seccomp_flags,
           errtext(e));
    fail("seccomp", e, "load seccomp filter: %s", errtext(e));
  }
  return (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) ? static_cast<int>(r) : -1;
}

void exec_process(const ProcessSpec* p, int terminal_fd) {
  char path[4096], msg[4200];
  // The cwd first: a relative executable ("./run") is found from it, as with runc.
  if (chdir(p->cwd) < 0) {
    int err = errno;
    report_error("cwd", err, "chdir to cwd (\"%s\") set in config.json failed: %s", p->cwd, errtext(err));
    if (chdir("/") < 0) fail("cwd", errno, "chdir /: %s", errtext(errno));
    return;
  }
  int err = resolve_executable(p, path, sizeof(path), msg, sizeof(msg));
  if (err) {
    report_error("exec", err, "%s", msg);
    if (chdir("/") < 0) fail("cwd", errno, "chdir /: %s", errtext(errno));
    return;
  }
  bool has_home = false;
  for (size_t i = 0; i < p->envc; i++) has_home |= strncmp(p->envp[i], "HOME=", 5) == 0;
  static char home_env[4096 + 5];
  if (!has_home) {
    memcpy(home_env, "HOME=", 5);
    home_of(p->uid, home_env + 5, sizeof(home_env) - 5);
    // decode_process left room for this one entry and the terminating NULL.
    p->envp[p->envc] = home_env;
    p->envp[p->envc + 1] = nullptr;
  }
  // Affinity, scheduling and I/O priority are applied in this order and undone in reverse when a later one
  // is refused, so a refused process leaves the waiting init as it was (README: "untouched"). Undoing can be
  // refused too: without CAP_SYS_NICE in the initial user namespace, a nice value raised (or SCHED_IDLE set)
  // for the process cannot be taken back. Then the init ends (see undo) rather than wait changed.
  cpu_set_t old_affinity;
  CPU_ZERO(&old_affinity);
  SchedAttr old_sched = {};
  old_sched.size = sizeof(old_sched);
  // Put back what was changed before a refusal (the cwd too, as the refusals above do); false (with errno)
  // if it could not be, and then the init ends: it would not wait unchanged.
  auto undo = [&](bool affinity, bool sched) {
    if (sched && syscall(SYS_sched_setattr, 0, &old_sched, 0) < 0) return false;
    if (affinity && sched_setaffinity(0, sizeof(old_affinity), &old_affinity) < 0) return false;
    return chdir("/") == 0;
  };
  if (p->affinity_len) {
    if (sched_getaffinity(0, sizeof(old_affinity), &old_affinity) < 0) {
      err = errno;
      report_error("cpu affinity", err, "sched_getaffinity: %s", errtext(err));
      return;
    }
    if (sched_setaffinity(0, p->affinity_len, reinterpret_cast<const cpu_set_t*>(p->affinity)) < 0) {
      err = errno;
      report_error("cpu affinity", err, "sched_setaffinity: %s%s", errtext(err),
                   err == EINVAL ? " (no requested CPU is allowed by the container's cpuset)" : "");
      return;
    }
  }
  if (p->has_sched) {
    if (syscall(SYS_sched_getattr, 0, &old_sched, sizeof(old_sched), 0) < 0) {
      err = errno;
      if (!undo(p->affinity_len, false))
        fail("scheduler", errno, "undo the CPU affinity and cwd of a refused process: %s", errtext(errno));
      report_error("scheduler", err, "sched_getattr: %s", errtext(err));
      return;
    }
    SchedAttr attr = {};
    attr.size = sizeof(attr);
    attr.sched_policy = p->sched.policy;
    attr.sched_flags = p->sched.flags;
    attr.sched_nice = p->sched.nice;
    attr.sched_priority = p->sched.priority;
    attr.sched_runtime = p->sched.runtime;
    attr.sched_deadline = p->sched.deadline;
    attr.sched_period = p->sched.period;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0) {
      err = errno;
      // Undone before the report, so that a failure to undo is the one answer the caller gets.
      if (!undo(p->affinity_len, false))
        fail("scheduler", errno, "undo the CPU affinity and cwd of a refused process: %s", errtext(errno));
      report_error("scheduler", err, "sched_setattr policy %u priority %u: %s%s", p->sched.policy, p->sched.priority,
                   errtext(err),
                   err == EPERM   ? " (real-time scheduling needs CAP_SYS_NICE and, with cgroup v1 cpu, a realtime "
                                    "runtime budget)"
                   : err == EBUSY ? " (SCHED_DEADLINE admission control refused the bandwidth for this cpuset)"
                                  : "");
      return;
    }
  }
  if (p->has_ioprio && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, p->ioprio) < 0) {
    err = errno;
    if (!undo(p->affinity_len, p->has_sched))
      fail("ioprio", errno, "undo the scheduling, CPU affinity and cwd of a refused process: %s", errtext(errno));
    report_error("ioprio", err, "ioprio_set 0x%x: %s", p->ioprio, errtext(err));
    return;
  }

  // From here on nothing can be undone: a failure ends the container.
  // As runc and crun: the process leads a session of its own, so its process group lies inside the container
  // (getpgrp() is not 0) and a terminal's job control signals for the caller's group never reach it directly
  // (a foreground run forwards them, once). EPERM: already a group leader, nothing to do.
  if (setsid() < 0 && errno != EPERM) fail("session", errno, "setsid: %s", errtext(errno));
  if (p->terminal && terminal_fd >= 0) {
    if (ioctl(terminal_fd, TIOCSCTTY, 0) < 0)
      fail("terminal", errno, "make the pty the controlling terminal: %s", errtext(errno));
    for (int i = 0; i < 3; i++)
      if (dup2(terminal_fd, i) < 0) fail("terminal", errno, "dup2 pty: %s", errtext(errno));
    if (terminal_fd > 2) close(terminal_fd);
  }
  for (size_t i = 0; i < p->nrlimits; i++) {
    struct rlimit rl = {p->rlimits[i].soft, p->rlimits[i].hard};
    if (setrlimit(static_cast<decltype(RLIMIT_NOFILE)>(p->rlimits[i].type), &rl) < 0) {
      err = errno;
      fail("rlimits", err, "error setting rlimit type %u: %s%s", p->rlimits[i].type, errtext(err),
           err == EPERM ? " (raising a hard limit needs CAP_SYS_RESOURCE)" : "");
    }
  }
  umask(p->has_umask ? p->umask : 022);
  bool seccomp_late = p->has_seccomp && p->nnp;
  // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the capability drop may remove.
  if (p->has_seccomp && !p->nnp) load_seccomp(p);
  if (p->has_caps) {
    for (int cap = 0; cap <= 63; cap++) {
      if (p->caps[0] & (1ULL << cap)) continue;
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
        if (errno == EINVAL) break;  // past the kernel's last capability
        fail("capabilities", errno, "drop capability %d from the bounding set: %s", cap, errtext(errno));
      }
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail("capabilities", errno, "keepcaps: %s", errtext(errno));
  }
  if (setgroups(p->ngids, reinterpret_cast<const gid_t*>(p->gids)) < 0 && !(errno == EPERM && p->ngids == 0))
    fail("user", errno, "setgroups: %s", errtext(errno));
  if (setresgid(p->gid, p->gid, p->gid) < 0) fail("user", errno, "setgid %u: %s", p->gid, errtext(errno));
  if (setresuid(p->uid, p->uid, p->uid) < 0) fail("user", errno, "setuid %u: %s", p->uid, errtext(errno));
  if (p->has_caps) {
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail("capabilities", errno, "keepcaps: %s", errtext(errno));
    if (set_caps(p->caps) < 0) fail("capabilities", errno, "capset: %s", errtext(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
      fail("capabilities", errno, "clear ambient capabilities: %s", errtext(errno));
    // As runc: an ambient capability missing from the inheritable set cannot be raised (EPERM); the
    // kernel's rule wins over the config, and the process starts without it.
    for (int cap = 0; cap <= 63; cap++)
      if ((p->caps[4] & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno != EPERM)
        fail("capabilities", errno, "raise ambient capability %d: %s", cap, errtext(errno));
  }
  if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    fail("no_new_privs", errno, "set no_new_privs: %s", errtext(errno));
  // Every fd past stdio and the preserved ones is closed at exec, including anything the caller leaked.
  if (syscall(SYS_close_range, 3 + p->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = 3 + static_cast<int>(p->preserve_fds); fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  // setresuid and capset reset the dumpable flag to fs.suid_dumpable: clear it again, so until the execve
  // below the container cannot open /proc/PID/exe (the init's memfd) or /proc/PID/mem of this process.
  // A container seccomp filter already loaded may deny prctl: then only a flag still 0 is good enough.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
    fail("dumpable", errno, "prctl PR_SET_DUMPABLE: %s", errtext(errno));
  if (seccomp_late) load_seccomp(p);
  execve(path, p->argv, p->envp);
  err = errno;
  fail("exec", err, "exec: \"%s\": %s", p->argv[0], errtext(err));
}
