// spawn(): start a container's init helper in new namespaces.
//
// Node is multithreaded, so the child runs only raw syscalls on data prepared before the clone, resets
// signal dispositions and the mask, and executes the helper from an fd opened beforehand. Two shapes:
//  - no user namespace: clone(CLONE_VM|CLONE_VFORK) on a private stack. The parent thread sleeps until
//    the child has executed the helper, and no page table of the Node process is copied.
//  - user namespace: clone3 with fork semantics. The child must wait for its uid/gid maps before it
//    executes the helper (an exec without a mapping for its uid would drop every capability), and a vfork
//    parent could not write them. The runtime writes the maps, then calls spawnContinue().
// A failure in the child before exec comes back as {errno, step} over a CLOEXEC pipe.
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <vector>

#include "common.h"
#include "../common/syscalls.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace hako {
namespace {

struct ChildError {
  int err;
  int pid;  // exec: the process in the container's pid namespace (err == 0)
  char step[56];
};

struct ChildArgs {
  int helper_fd;
  char** argv;
  char** envp;
  int plan_fd, ctl_fd, preserve;
  int err_fd;   // write end
  int sync_fd;  // read end, -1 when the child need not wait
  int stdio[3];  // fds to become the container's 0/1/2, or -1 to inherit
  int ns_pidfd;  // exec: join the namespaces of this process (setns by pidfd), or -1
  int ns_flags;
  bool plain;             // a hook: no plan/control sockets, just stdio
  bool refork;            // joined a pid namespace by path: fork once more so the init is inside it
  const char* exec_path;  // execve this path after setns (resolved in the container), or null: helper_fd
  const char* cwd;        // chdir here after joining the namespaces (a hook's bundle directory), or null
  std::vector<int> join_fds;
  std::vector<int> join_types;
  std::vector<const char*> cgroup_files;  // exec: join these (write "0") before entering the namespaces
  std::vector<int> extra_fds;             // passed to the init at 3+N+2, 3+N+3, ... (user namespaces of idmaps)
  std::vector<int> runtime_fds;           // held by the runtime: never passed on, even inside 3..3+N-1
};

// An fd of this spawn's own, or one the caller named as the runtime's: never for the container.
bool runtime_owned(const ChildArgs* a, int fd) {
  if (fd == a->err_fd || fd == a->sync_fd || fd == a->plan_fd || fd == a->ctl_fd || fd == a->helper_fd ||
      fd == a->ns_pidfd)
    return true;
  for (const std::vector<int>* list : {&a->extra_fds, &a->join_fds, &a->runtime_fds})
    for (int x : *list)
      if (x == fd) return true;
  return false;
}

[[noreturn]] void child_fail(const ChildArgs* a, const char* step) {
  ChildError e = {};
  e.err = errno;
  for (size_t i = 0; step[i] && i < sizeof(e.step) - 1; i++) e.step[i] = step[i];
  ssize_t w = write(a->err_fd, &e, sizeof(e));
  (void)w;
  _exit(127);
}

// Runs in the child. Only async-signal-safe calls; no allocation, no C++ runtime.
int child_main(void* arg) {
  const ChildArgs* a = static_cast<const ChildArgs*>(arg);
  struct sigaction sa = {};
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, nullptr);  // glibc-internal signals refuse: fine
  if (a->sync_fd >= 0) {
    char c;
    ssize_t r;
    do r = read(a->sync_fd, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1) {
      errno = ECANCELED;
      child_fail(a, "wait for uid/gid maps");
    }
    // Become root of the new user namespace before exec, or exec as the unmapped overflow uid would drop
    // every capability. Raw syscalls: glibc's wrappers would broadcast to threads this child does not have.
    if (syscall(SYS_setgroups, 0, nullptr) < 0 && errno != EPERM) child_fail(a, "setgroups in user namespace");
    if (syscall(SYS_setresgid, 0, 0, 0) < 0) child_fail(a, "setgid 0 in user namespace");
    if (syscall(SYS_setresuid, 0, 0, 0) < 0) child_fail(a, "setuid 0 in user namespace");
  }
  // exec: the single-threaded child moves itself into the container's cgroups while host paths still
  // resolve (before setns into the container's mount namespace); the process it forks inherits them.
  for (const char* f : a->cgroup_files) {
    int fd = open(f, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) child_fail(a, "join cgroup");
    close(fd);
  }
  for (size_t i = 0; i < a->join_fds.size(); i++)
    if (setns(a->join_fds[i], a->join_types[i]) < 0) child_fail(a, "setns");
  if (a->ns_pidfd >= 0 || a->refork) {
    // exec: enter every namespace of the container at once. A pid namespace applies to children only, so
    // fork once more; CLONE_PARENT makes the runtime the new process's parent (it reaps it, by pid).
    if (a->ns_pidfd >= 0 && a->ns_flags && setns(a->ns_pidfd, a->ns_flags) < 0) child_fail(a, "setns into the container");
    if (a->ns_pidfd >= 0 && (a->ns_flags & CLONE_NEWUSER)) {
      // As at create: become root of the container's user namespace before exec, or the unmapped host
      // uid would make the exec drop every capability.
      if (syscall(SYS_setgroups, 0, nullptr) < 0 && errno != EPERM) child_fail(a, "setgroups in user namespace");
      if (syscall(SYS_setresgid, 0, 0, 0) < 0) child_fail(a, "setgid 0 in user namespace");
      if (syscall(SYS_setresuid, 0, 0, 0) < 0) child_fail(a, "setuid 0 in user namespace");
    }
    long pid = syscall(SYS_clone, CLONE_PARENT, 0, nullptr, nullptr, 0);
    if (pid < 0) child_fail(a, "clone into the container's pid namespace");
    if (pid > 0) {
      ChildError e = {};
      e.err = 0;
      e.pid = static_cast<int>(pid);
      ssize_t w = write(a->err_fd, &e, sizeof(e));
      _exit(w == static_cast<ssize_t>(sizeof(e)) ? 0 : 1);
    }
  }
  // Lay out the fds: preserved ones stay at 3..3+N-1, the plan socket goes to 3+N, the control socket
  // to 3+N+1. Move our fds above that range first so no dup3 overwrites one still needed.
  int base = 3 + a->preserve, high = base + 2 + static_cast<int>(a->extra_fds.size());
  int stdio_moved[3] = {-1, -1, -1};
  for (int i = 0; i < 3; i++)
    if (a->stdio[i] >= 0 && (stdio_moved[i] = fcntl(a->stdio[i], F_DUPFD_CLOEXEC, high)) < 0) child_fail(a, "dup stdio");
  int plan = a->plain ? -1 : fcntl(a->plan_fd, F_DUPFD_CLOEXEC, high);
  int ctl = a->plain ? -1 : fcntl(a->ctl_fd, F_DUPFD_CLOEXEC, high);
  int err_fd = fcntl(a->err_fd, F_DUPFD_CLOEXEC, high);
  // A hook script run from an fd needs that fd to survive exec (the interpreter opens /dev/fd/N).
  int helper = a->exec_path ? -1 : fcntl(a->helper_fd, a->plain ? F_DUPFD : F_DUPFD_CLOEXEC, high);
  if ((!a->plain && (plan < 0 || ctl < 0)) || err_fd < 0 || (!a->exec_path && helper < 0)) child_fail(a, "dup fds");
  ChildArgs moved = *a;  // only for reporting through the moved error fd
  moved.err_fd = err_fd;
  if (!a->plain && (dup3(plan, base, 0) < 0 || dup3(ctl, base + 1, 0) < 0)) child_fail(&moved, "dup fds");
  for (int i = 0; i < 3; i++)
    if (stdio_moved[i] >= 0 && dup3(stdio_moved[i], i, 0) < 0) child_fail(&moved, "dup stdio");
  // Extra fds: first out of the way (above `high`), then to their places right after the control socket.
  int extra_moved[16];
  size_t nextra = a->extra_fds.size() < 16 ? a->extra_fds.size() : 16;
  for (size_t i = 0; i < nextra; i++)
    if ((extra_moved[i] = fcntl(a->extra_fds[i], F_DUPFD_CLOEXEC, high)) < 0) child_fail(&moved, "dup fds");
  for (size_t i = 0; i < nextra; i++)
    if (dup3(extra_moved[i], base + 2 + static_cast<int>(i), 0) < 0) child_fail(&moved, "dup fds");
  // Node marks every inherited fd close-on-exec; the container inherits stdio and 3..3+N-1, except what the
  // runtime itself holds there: this spawn's own fds and those the caller names (state locks, namespace fds).
  // A container holding a lock would keep it for its lifetime; holding the error pipe, it would keep the
  // parent waiting for an EOF that never comes.
  for (int fd = 0; fd < 3; fd++) fcntl(fd, F_SETFD, 0);
  for (int fd = 3; fd < base; fd++)
    if (!runtime_owned(a, fd)) fcntl(fd, F_SETFD, 0);
  // Every other fd, including what the caller leaked (the containerd shim's fd 3), closes at exec.
  int keep_until = base + 2 + static_cast<int>(nextra);
  if (syscall(SYS_close_range, keep_until, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = keep_until; fd < 4096; fd++)
      if (fd != err_fd && fd != helper) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (a->plain && helper >= 0) fcntl(helper, F_SETFD, 0);
  if (a->cwd && chdir(a->cwd) < 0) child_fail(&moved, "chdir to the bundle");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (a->exec_path) {
    execve(a->exec_path, a->argv, a->envp);
    child_fail(&moved, "exec");
  }
  syscall(SYS_execveat, helper, "", a->argv, a->envp, AT_EMPTY_PATH);
  child_fail(&moved, a->plain ? "exec" : "exec init helper");
}

struct CloneArgs3 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

std::vector<std::string> ToStrings(Napi::Array arr) {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

// Read the child's report: EOF means it executed the helper. An exec spawn first reports the pid of the
// process it forked into the container (stored in *exec_pid).
Napi::Value CheckChildError(Napi::Env env, int err_fd, int* exec_pid = nullptr) {
  for (;;) {
    ChildError e;
    ssize_t r;
    do r = read(err_fd, &e, sizeof(e));
    while (r < 0 && errno == EINTR);
    if (r != static_cast<ssize_t>(sizeof(e))) return env.Null();
    if (e.err == 0 && e.pid > 0 && exec_pid) {
      *exec_pid = e.pid;
      continue;
    }
    e.step[sizeof(e.step) - 1] = 0;
    if (exec_pid && *exec_pid > 0) {
      // The process forked into the container failed before exec: reap it now, or the container's pid
      // namespace could never finish dying (its init waits for every member to be reaped).
      int st;
      waitpid(*exec_pid, &st, 0);
      *exec_pid = 0;
    }
    return ThrowErrno(env, e.step, e.err, "container init");
  }
}

// spawn({helperFd, argv, cloneFlags, planFd, ctlFd, preserveFds, join: [[fd, nstype]], waitForMaps})
//   -> {pid, pidfd, errFd?, syncFd?}
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) return ThrowType(env, "spawn: options object expected");
  Napi::Object o = info[0].As<Napi::Object>();
  std::vector<std::string> argv_s = ToStrings(o.Get("argv").As<Napi::Array>());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(&s[0]);
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  if (o.Has("envp") && o.Get("envp").IsArray()) env_s = ToStrings(o.Get("envp").As<Napi::Array>());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(&e[0]);
  envp.push_back(nullptr);
  std::string exec_path = o.Has("execPath") && o.Get("execPath").IsString() ? o.Get("execPath").As<Napi::String>().Utf8Value() : "";
  uint64_t ns_flags = static_cast<uint64_t>(o.Get("cloneFlags").As<Napi::Number>().Int64Value());
  bool wait_maps = o.Get("waitForMaps").ToBoolean();
  // Joining a user namespace is refused to a process sharing its mm, so that case forks too.
  bool fork_mode = wait_maps || o.Get("forkMode").ToBoolean();

  ChildArgs a;
  auto int_opt = [&](const char* k) { return o.Has(k) && o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().Int32Value() : -1; };
  a.helper_fd = int_opt("helperFd");
  a.plan_fd = int_opt("planFd");
  a.ctl_fd = int_opt("ctlFd");
  a.preserve = o.Has("preserveFds") ? o.Get("preserveFds").As<Napi::Number>().Int32Value() : 0;
  a.argv = argv.data();
  a.ns_pidfd = o.Has("nsPidfd") ? o.Get("nsPidfd").As<Napi::Number>().Int32Value() : -1;
  a.ns_flags = o.Has("nsFlags") ? o.Get("nsFlags").As<Napi::Number>().Int32Value() : 0;
  a.refork = false;
  std::vector<std::string> cgroup_s;
  if (o.Has("cgroupFiles") && o.Get("cgroupFiles").IsArray()) cgroup_s = ToStrings(o.Get("cgroupFiles").As<Napi::Array>());
  for (auto& f : cgroup_s) a.cgroup_files.push_back(f.c_str());
  if (o.Has("extraFds") && o.Get("extraFds").IsArray()) {
    Napi::Array x = o.Get("extraFds").As<Napi::Array>();
    if (x.Length() > 16) return ThrowType(env, "spawn: at most 16 extra fds");
    for (uint32_t i = 0; i < x.Length(); i++) a.extra_fds.push_back(x.Get(i).As<Napi::Number>().Int32Value());
  }
  if (o.Has("runtimeFds") && o.Get("runtimeFds").IsArray()) {
    Napi::Array x = o.Get("runtimeFds").As<Napi::Array>();
    for (uint32_t i = 0; i < x.Length(); i++) a.runtime_fds.push_back(x.Get(i).As<Napi::Number>().Int32Value());
  }
  if (a.ns_pidfd >= 0) fork_mode = true;
  for (int i = 0; i < 3; i++) a.stdio[i] = -1;
  if (o.Has("stdio") && o.Get("stdio").IsArray()) {
    Napi::Array st = o.Get("stdio").As<Napi::Array>();
    for (uint32_t i = 0; i < 3 && i < st.Length(); i++)
      if (st.Get(i).IsNumber()) a.stdio[i] = st.Get(i).As<Napi::Number>().Int32Value();
  }
  a.envp = envp.data();
  a.plain = o.Get("plain").ToBoolean();
  a.exec_path = exec_path.empty() ? nullptr : exec_path.c_str();
  std::string cwd = o.Has("cwd") && o.Get("cwd").IsString() ? o.Get("cwd").As<Napi::String>().Utf8Value() : "";
  a.cwd = cwd.empty() ? nullptr : cwd.c_str();
  if (o.Has("join") && o.Get("join").IsArray()) {
    Napi::Array j = o.Get("join").As<Napi::Array>();
    for (uint32_t i = 0; i < j.Length(); i++) {
      Napi::Array pair = j.Get(i).As<Napi::Array>();
      a.join_fds.push_back(pair.Get(0u).As<Napi::Number>().Int32Value());
      a.join_types.push_back(pair.Get(1u).As<Napi::Number>().Int32Value());
      if (a.join_types.back() == CLONE_NEWPID) a.refork = true;
    }
  }
  int errp[2], syncp[2] = {-1, -1};
  if (pipe2(errp, O_CLOEXEC) < 0) return ThrowErrno(env, "spawn", errno, "pipe");
  UniqueFd err_r(errp[0]), err_w(errp[1]);
  if (wait_maps && pipe2(syncp, O_CLOEXEC) < 0) return ThrowErrno(env, "spawn", errno, "pipe");
  UniqueFd sync_r(syncp[0]), sync_w(syncp[1]);
  a.err_fd = err_w.get();
  a.sync_fd = sync_r.get();

  // All signals blocked across the clone, so no Node handler runs in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  if (a.refork) fork_mode = true;
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  pid_t pid = -1;
  int clone_errno = 0;
  const size_t kStack = 256 * 1024;
  if (!fork_mode) {
    void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
      clone_errno = errno;
    } else {
      pid = clone(child_main, static_cast<char*>(stack) + kStack,
                  static_cast<int>(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | ns_flags) | SIGCHLD, &a, &pidfd);
      clone_errno = errno;
      munmap(stack, kStack);
    }
  } else {
    CloneArgs3 ca = {};
    ca.flags = CLONE_PIDFD | ns_flags;
    ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    ca.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &ca, sizeof(ca));
    if (r == 0) child_main(&a);  // never returns
    if (r < 0 && errno == ENOSYS) {
      // Kernels before 5.3: plain clone with fork semantics on a private stack.
      void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (stack != MAP_FAILED) {
        r = clone(child_main, static_cast<char*>(stack) + kStack, static_cast<int>(CLONE_PIDFD | ns_flags) | SIGCHLD,
                  &a, &pidfd);
        clone_errno = errno;
        munmap(stack, kStack);
      }
    }
    clone_errno = errno;
    pid = static_cast<pid_t>(r);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    std::string what = "clone";
    if (clone_errno == EPERM || clone_errno == EINVAL || clone_errno == ENOSPC) what += " into new namespaces";
    return ThrowErrno(env, "clone", clone_errno, what);
  }
  err_w.reset();
  sync_r.reset();
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, pid));
  result.Set("pidfd", Napi::Number::New(env, pidfd));
  if (!wait_maps) {
    int exec_pid = 0;
    Napi::Value e = CheckChildError(env, err_r.get(), &exec_pid);
    if (a.ns_pidfd >= 0 || a.refork) {
      // The intermediate child has exited after forking the exec'd process; reap it by pid.
      int st;
      waitpid(pid, &st, 0);
      close(pidfd);
      if (env.IsExceptionPending()) return e;
      if (exec_pid <= 0) return ThrowErrno(env, "exec", ECHILD, "no process was started in the container");
      result.Set("pid", Napi::Number::New(env, exec_pid));
      long fd = syscall(SYS_pidfd_open, exec_pid, 0);
      if (fd < 0) return ThrowErrno(env, "pidfd_open", errno, "exec process");
      result.Set("pidfd", Napi::Number::New(env, static_cast<double>(fd)));
      return result;
    }
    if (env.IsExceptionPending()) {
      int st;
      waitpid(pid, &st, 0);  // our own child, by pid
      close(pidfd);
      return e;
    }
  } else {
    result.Set("errFd", Napi::Number::New(env, err_r.release()));
    result.Set("syncFd", Napi::Number::New(env, sync_w.release()));
  }
  return result;
}

// spawnContinue(syncFd, errFd): the maps are written; let the child execute the helper and check it did.
Napi::Value SpawnContinue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UniqueFd sync_w(info[0].As<Napi::Number>().Int32Value());
  UniqueFd err_r(info[1].As<Napi::Number>().Int32Value());
  char c = 1;
  if (write(sync_w.get(), &c, 1) != 1) return ThrowErrno(env, "spawn", errno, "release child");
  sync_w.reset();
  return CheckChildError(env, err_r.get());
}

}  // namespace

// idmapTree(uidMap, gidMap, source, recursive) -> fd of a detached clone of `source` idmapped through a new
// user namespace with those mappings ("inside outside size" lines). A child is cloned into the namespace,
// its maps written from here (the runtime's namespace: host ids mean host ids), the namespace opened, the
// child let go and reaped by pid.
Napi::Value MakeUserns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string uid_map = info[0].As<Napi::String>().Utf8Value();
  std::string gid_map = info[1].As<Napi::String>().Utf8Value();
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return ThrowErrno(env, "userns", errno, "pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  CloneArgs3 ca = {};
  ca.flags = CLONE_NEWUSER;
  ca.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &ca, sizeof(ca));
  if (pid == 0) {
    close(wr.get());  // our copy of the write end, or the read below would never see EOF
    char c;
    ssize_t r = read(rd.get(), &c, 1);  // returns when the parent closes its end
    _exit(r < 0 ? 1 : 0);
  }
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return ThrowErrno(env, "userns", clone_errno, "clone3 into a new user namespace");
  auto write_file = [&](const char* name, const std::string& text) {
    std::string path = "/proc/" + std::to_string(pid) + "/" + name;
    UniqueFd f(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    return f.get() >= 0 && write(f.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  };
  int fd = -1, err = 0;
  const char* step = "write uid_map";
  if (!write_file("uid_map", uid_map)) err = errno;
  else if (step = "write gid_map", !write_file("gid_map", gid_map)) err = errno;
  else {
    step = "open the user namespace";
    std::string ns = "/proc/" + std::to_string(pid) + "/ns/user";
    fd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) err = errno;
  }
  wr.reset();
  int st;
  waitpid(static_cast<pid_t>(pid), &st, 0);
  if (fd < 0) return ThrowErrno(env, "userns", err, step);
  UniqueFd userns(fd);
  // The idmapped tree is made here, in the runtime: idmapping needs CAP_SYS_ADMIN over the source's
  // filesystem, which a container in a user namespace lacks. The init only attaches it (move_mount).
  std::string source = info[2].As<Napi::String>().Utf8Value();
  bool recursive = info[3].ToBoolean();
  UniqueFd tree(static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, source.c_str(),
                                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0))));
  if (tree.get() < 0) return ThrowErrno(env, "open_tree", errno, source);
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns.get());
  if (syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) < 0)
    return ThrowErrno(env, "mount_setattr", errno, "idmap " + source);
  return Napi::Number::New(env, tree.release());
}

void InitSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("idmapTree", Napi::Function::New(env, MakeUserns, "idmapTree"));
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("spawnContinue", Napi::Function::New(env, SpawnContinue, "spawnContinue"));
}

}  // namespace hako
