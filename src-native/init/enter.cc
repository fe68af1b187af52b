// The enter preamble of hako-init. The runtime's spawn child (a clone of the multithreaded Node process)
// only lays out fds and executes the sealed memfd copy of this helper; everything that moves a process into
// an existing container happens here, in a static single-threaded program that is not dumpable, so no fork
// of Node is ever inside a container and /proc/PID/exe of an entering process never leads to a host file.
//
// Order, as the spawn child did it before: cgroups are joined while host paths still resolve (before the
// mount namespace changes); namespace fds by path, then the target's namespaces by its pidfd; root of a
// joined user namespace (an exec as the unmapped host uid would drop every capability); then, a pid
// namespace applying to children only, one more fork with CLONE_PARENT: the runtime becomes the parent of
// the process inside (it reaps it by pid), and learns its pid from this pipe.
#include "enter.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/child_error.h"

namespace {

constexpr int kMaxJoins = 16;
constexpr int kMaxCgroups = 16;

int number(const char* s, long lo, long hi) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 0);
  if (*s == 0 || *end != 0 || errno || v < lo || v > hi) return -1;
  return static_cast<int>(v);
}

void become_root(int err) {
  if (syscall(SYS_setgroups, 0, nullptr) < 0 && errno != EPERM) enter_fail(err, errno, "setgroups in user namespace");
  if (syscall(SYS_setresgid, 0, 0, 0) < 0) enter_fail(err, errno, "setgid 0 in user namespace");
  if (syscall(SYS_setresuid, 0, 0, 0) < 0) enter_fail(err, errno, "setuid 0 in user namespace");
}

// A credential change (setns into a user namespace, setresuid) resets the dumpable flag to
// fs.suid_dumpable, which need not be 0: set it again, so /proc/PID/exe, mem and fd stay closed to the
// container until the execve.
void not_dumpable(int err) {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) enter_fail(err, errno, "prctl PR_SET_DUMPABLE");
}

}  // namespace

void enter_fail(int err_fd, int err, const char* step) {
  ChildError e = {};
  e.err = err;
  for (size_t i = 0; step[i] && i < sizeof(e.step) - 1; i++) e.step[i] = step[i];
  ssize_t w = write(err_fd, &e, sizeof(e));
  (void)w;
  _exit(127);
}

int enter(int argc, char** argv, int* err_fd) {
  // Nothing can be reported before the pipe is known: a malformed command line is the runtime's bug.
  int err = argc > 2 ? number(argv[2], 3, 65535) : -1;
  if (err < 0 || fcntl(err, F_SETFD, FD_CLOEXEC) < 0) _exit(126);
  *err_fd = err;
  // Executed from a memfd, the process would be named "memfd:hako-init" (ps, /proc/PID/comm).
  if (prctl(PR_SET_NAME, "hako-init", 0, 0, 0) < 0) enter_fail(err, errno, "prctl PR_SET_NAME");
  not_dumpable(err);
  const char* cgroups[kMaxCgroups];
  int ncgroups = 0;
  int join_fd[kMaxJoins], join_type[kMaxJoins], njoins = 0;
  int target = -1, target_flags = 0;
  bool refork = false;
  int unshare_flags = 0;
  const char* cwd = nullptr;
  int i = 3;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char* opt = argv[i];
    bool has1 = i + 1 < argc, has2 = i + 2 < argc;
    if (strcmp(opt, "--cgroup") == 0 && has1 && ncgroups < kMaxCgroups) {
      cgroups[ncgroups++] = argv[++i];
    } else if (strcmp(opt, "--join") == 0 && has2 && njoins < kMaxJoins) {
      join_fd[njoins] = number(argv[i + 1], 3, 65535);
      join_type[njoins] = number(argv[i + 2], 0, 0x7fffffff);
      if (join_fd[njoins] < 0 || join_type[njoins] < 0) enter_fail(err, EINVAL, "enter: bad --join");
      if (fcntl(join_fd[njoins], F_SETFD, FD_CLOEXEC) < 0) enter_fail(err, errno, "enter: namespace fd");
      njoins++;
      i += 2;
    } else if (strcmp(opt, "--setns") == 0 && has2) {
      target = number(argv[i + 1], 3, 65535);
      target_flags = number(argv[i + 2], 0, 0x7fffffff);
      if (target < 0 || target_flags < 0) enter_fail(err, EINVAL, "enter: bad --setns");
      if (fcntl(target, F_SETFD, FD_CLOEXEC) < 0) enter_fail(err, errno, "enter: target pidfd");
      i += 2;
    } else if (strcmp(opt, "--unshare") == 0 && has1) {
      unshare_flags = number(argv[++i], 1, 0x7fffffff);
      if (unshare_flags < 0) enter_fail(err, EINVAL, "enter: bad --unshare");
    } else if (strcmp(opt, "--refork") == 0) {
      refork = true;
    } else if (strcmp(opt, "--cwd") == 0 && has1) {
      cwd = argv[++i];
    } else {
      enter_fail(err, EINVAL, "enter: unknown option");
    }
  }
  if (i >= argc) enter_fail(err, EINVAL, "enter: no -- after the options");
  for (int c = 0; c < ncgroups; c++) {
    int fd = open(cgroups[c], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) enter_fail(err, errno, "join cgroup");
    close(fd);
  }
  // A joined user namespace first (as runc): its root may then join the namespaces it owns.
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < njoins; j++) {
      if ((join_type[j] == CLONE_NEWUSER) != (pass == 0)) continue;
      if (setns(join_fd[j], join_type[j]) < 0)
        enter_fail(err, errno, pass == 0 ? "setns into the user namespace" : "setns");
      close(join_fd[j]);
      if (pass == 0) become_root(err);
    }
  if (target >= 0) {
    if (target_flags && setns(target, target_flags) < 0) enter_fail(err, errno, "setns into the container");
    close(target);
    if (target_flags & CLONE_NEWUSER) become_root(err);
  }
  // New namespaces of a container that joins a user namespace are made here, once inside it, so that
  // namespace owns them (made by the clone, they would belong to the runtime's, and the container's root
  // could not mount or bring its loopback up there). A new pid namespace applies to children: the fork
  // below makes the init its pid 1.
  if (unshare_flags && unshare(unshare_flags) < 0) enter_fail(err, errno, "unshare new namespaces");
  refork |= (unshare_flags & CLONE_NEWPID) != 0;
  not_dumpable(err);
  if (refork) {
    // From here on two processes share this code; only raw syscalls until the child goes back to main.
    // A raw clone, not fork(): fork cannot make the runtime the parent (CLONE_PARENT). This process is
    // single-threaded, so the child may then run ordinary libc code (malloc, stdio); it must not rely on
    // the thread id the C library cached at start-up (raise, pthread_kill), which the init never calls.
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, nullptr, nullptr, 0);
    if (pid < 0) enter_fail(err, errno, "clone into the container's pid namespace");
    if (pid > 0) {
      ChildError e = {};
      e.pid = static_cast<int>(pid);
      ssize_t w = write(err, &e, sizeof(e));
      _exit(w == static_cast<ssize_t>(sizeof(e)) ? 0 : 1);
    }
    not_dumpable(err);
  }
  if (cwd && chdir(cwd) < 0) enter_fail(err, errno, "chdir to the bundle");
  return i + 1;
}
