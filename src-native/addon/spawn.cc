// Over 400 lines because the clone child and the parent preparing its POD struct must be read side by side (no allocation in the child).
// spawn(): start hako-init, the one program that enters a container.
//
// Node is multithreaded, so the child runs only raw syscalls on data the parent prepared (and allocated)
// before the clone, one POD struct of fixed-size arrays; the child itself allocates nothing and uses no C++
// runtime. It resets signal dispositions and the mask, lays out its fds and executes the sealed in-memory
// copy of hako-init (sealInit). It never joins an existing namespace or cgroup itself: a fork of Node
// inside a container would expose the node binary through /proc/PID/exe (CVE-2019-5736). Joining cgroups and namespaces, becoming root in a joined user
// namespace and the fork into a joined pid namespace are done by the init (its --enter preamble), which
// is static, single-threaded, non-dumpable and runs from a sealed memfd. Two shapes of clone:
//  - no new user namespace: clone(CLONE_VM|CLONE_VFORK) on a private stack. The parent thread sleeps until
//    the child has executed the init, and no page table of the Node process is copied.
//  - a new user namespace: clone3 with fork semantics. The child must wait for its uid/gid maps before it
//    executes the init (an exec without a mapping for its uid would drop every capability), and a vfork
//    parent could not write them. The runtime writes the maps, then calls spawnContinue(). Nothing else is
//    in the new namespaces yet, so this fork of Node is visible to nobody.
// A failure before exec comes back as a ChildError over a CLOEXEC pipe; the init inherits the pipe at a
// position the argv names and reports over it too.
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <memory>
#include <type_traits>
#include <vector>

#include "common.h"
#include "../common/child_error.h"
#include "../common/syscalls.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_execveat
#define SYS_execveat 322
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

namespace hako {
namespace {

// Stdio, the passed fds (at most 1024), plan and control sockets, 16 idmap fds, and the init's enter fds
// (error pipe, target pidfd, namespace fds, a hook's program): well below this.
constexpr int kMaxLayout = 1152;
// A layout entry meaning "the write end of this spawn's error pipe" (made here, unknown to the caller).
constexpr int kErrPipe = -2;

// Everything the child reads, filled in before the clone. No pointer in it leads to memory the child may
// allocate or free; argv and envp point into vectors the parent keeps alive until the child has executed.
struct ChildArgs {
  int init_fd;
  char** argv;
  char** envp;
  int err_fd;              // write end
  int sync_fd;             // read end, -1 when the child need not wait
  int parent_fds[2];       // the parent's ends (error read, sync write): a forked child closes its copies
  int n;                   // the child's fds 0..n-1 are laid out as `layout` says
  int layout[kMaxLayout];  // source fd, kErrPipe, or -1: stdio inherited as is / above 2 nothing (close-on-exec)
  int moved[kMaxLayout];   // written by the child: the copies it makes above the layout
};

// The child gets a pointer to this struct and copies nothing out of it: it must stay plain data.
static_assert(std::is_trivially_copyable<ChildArgs>::value && std::is_standard_layout<ChildArgs>::value,
              "ChildArgs is read after clone: plain data only, nothing that allocates when copied");

[[noreturn]] void child_fail(int err_fd, const char* step) {
  ChildError e = {};
  e.err = errno;
  for (size_t i = 0; step[i] && i < sizeof(e.step) - 1; i++) e.step[i] = step[i];
  ssize_t w = write(err_fd, &e, sizeof(e));
  (void)w;
  _exit(127);
}

// Runs in the child: only raw, async-signal-safe syscalls on the ChildArgs filled in before the clone.
// Close every fd from `lo` up except the (up to three) in keep, unsorted, -1 for none. No allocation.
static bool close_all_but(int lo, int k0, int k1, int k2) {
  int keep[3] = {k0, k1, k2};
  for (int i = 0; i < 3; i++)  // sort the three
    for (int j = i + 1; j < 3; j++)
      if (keep[j] < keep[i]) {
        int t = keep[i];
        keep[i] = keep[j];
        keep[j] = t;
      }
  for (int i = 0; i < 3; i++) {
    if (keep[i] < lo) continue;
    if (keep[i] > lo && syscall(SYS_close_range, lo, keep[i] - 1, 0) < 0) {
      if (errno != ENOSYS) return false;
      for (int fd = lo; fd < keep[i]; fd++) close(fd);  // before 5.9: one by one (EBADF: nothing there)
    }
    lo = keep[i] + 1;
  }
  if (syscall(SYS_close_range, lo, ~0U, 0) < 0) {
    if (errno != ENOSYS) return false;
    for (int fd = lo; fd < 4096; fd++) close(fd);
  }
  return true;
}

// Runs in the child: only raw, async-signal-safe syscalls on the ChildArgs filled in before the clone.
int child_main(void* arg) {
  ChildArgs* a = static_cast<ChildArgs*>(arg);
  struct sigaction sa = {};
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, nullptr);  // glibc-internal signals refuse: fine
  bool waits = a->sync_fd >= 0;
  if (waits) {
    // A forked child (the user-namespace path) holds copies of every fd of the runtime until it executes.
    // The parent's pipe ends go first: holding the sync pipe's write end itself, it would never read EOF
    // when the parent dies, and would wait for ever (pid 1 of its pid namespace, out of delete's reach).
    if (close(a->parent_fds[0]) < 0 || close(a->parent_fds[1]) < 0)
      child_fail(a->err_fd, "close the parent's pipe ends");
    // Killed with the thread that cloned it (the runtime), should a sibling spawn's child still hold a copy of
    // the sync pipe's write end. No getppid() check: it is 0 in a new pid namespace; the EOF on the sync pipe
    // covers a parent already gone. Cleared once released, or the running init would die with the runtime.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(a->err_fd, "set the parent-death signal");
  }
  // Every fd the layout needs (the error pipe and the init's memfd too) first goes above the whole final
  // range, so no dup3 below overwrites one still to be placed (an idmap fd inside the passed range did).
  int top = a->n > 3 ? a->n : 3;
  int err = fcntl(a->err_fd, F_DUPFD_CLOEXEC, top);
  if (err < 0) child_fail(a->err_fd, "move the error pipe");
  int init = fcntl(a->init_fd, F_DUPFD_CLOEXEC, top);
  if (init < 0) child_fail(err, "move the init's memfd");
  int sync = -1;
  if (waits && (sync = fcntl(a->sync_fd, F_DUPFD_CLOEXEC, top)) < 0) child_fail(err, "move the sync pipe");
  for (int i = 0; i < a->n; i++) {
    int src = a->layout[i] == kErrPipe ? a->err_fd : a->layout[i];
    a->moved[i] = -1;
    if (src >= 0 && (a->moved[i] = fcntl(src, F_DUPFD_CLOEXEC, top)) < 0) child_fail(err, "dup fds into place");
  }
  // Node marks every fd close-on-exec, stdio included: the ones placed here are cleared; the holes of the
  // layout are closed now (they would close at exec: the same, but a waiting child must not hold them).
  for (int i = 0; i < top; i++) {
    if (i < a->n && a->moved[i] >= 0) {
      if (dup3(a->moved[i], i, 0) < 0) child_fail(err, i < 3 ? "dup stdio" : "dup fds into place");
    } else if (i < 3) {
      if (fcntl(i, F_SETFD, 0) < 0 && errno != EBADF) child_fail(err, "inherit stdio");
    } else if (close(i) < 0 && errno != EBADF) {
      child_fail(err, "close a hole of the layout");
    }
  }
  if (waits) {
    // Before the wait, which may be long (or for ever, were the parent gone): nothing of the runtime's stays
    // open here (its state dir's lock fd above all, which would keep delete --force from the container).
    if (!close_all_but(top, err, init, sync)) child_fail(err, "close the runtime's fds");
    char c;
    ssize_t r;
    do r = read(sync, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1) {
      errno = ECANCELED;
      child_fail(err, "wait for uid/gid maps");
    }
    if (close(sync) < 0) child_fail(err, "close the sync pipe");
    if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0) child_fail(err, "clear the parent-death signal");
    // Become root of the new user namespace before exec, or exec as the unmapped overflow uid would drop
    // every capability. Raw syscalls: glibc's wrappers would broadcast to threads this child does not have.
    if (syscall(SYS_setgroups, 0, nullptr) < 0 && errno != EPERM) child_fail(err, "setgroups in user namespace");
    if (syscall(SYS_setresgid, 0, 0, 0) < 0) child_fail(err, "setgid 0 in user namespace");
    if (syscall(SYS_setresuid, 0, 0, 0) < 0) child_fail(err, "setuid 0 in user namespace");
  }
  // Every other fd, including what the caller leaked (the containerd shim's fd 3), closes at exec.
  if (syscall(SYS_close_range, top, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    // Kernels before 5.11: one by one (EBADF: nothing there).
    for (int fd = top; fd < 4096; fd++)
      if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF) child_fail(err, "close-on-exec above the layout");
  }
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) < 0) child_fail(err, "unblock signals");
  syscall(SYS_execveat, init, "", a->argv, a->envp, AT_EMPTY_PATH);
  child_fail(err, "exec init helper");
}

struct CloneArgs3 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

std::vector<std::string> ToStrings(Napi::Array arr) {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

// Read the reports on the error pipe: EOF means the init executed (or finished entering). An init that
// forked into a joined pid namespace first reports the pid of that process (stored in *forked).
Napi::Value CheckChildError(Napi::Env env, int err_fd, int* forked) {
  for (;;) {
    ChildError e;
    ssize_t r;
    do r = read(err_fd, &e, sizeof(e));
    while (r < 0 && errno == EINTR);
    if (r != static_cast<ssize_t>(sizeof(e))) return env.Null();
    if (e.err == 0 && e.pid > 0) {
      *forked = e.pid;
      continue;
    }
    e.step[sizeof(e.step) - 1] = 0;
    if (*forked > 0) {
      // The process forked into the container failed: reap it now, or the container's pid namespace could
      // never finish dying (its init waits for every member to be reaped).
      int st;
      waitpid(*forked, &st, 0);
      *forked = 0;
    }
    return ThrowErrno(env, e.step, e.err ? e.err : EPROTO, "container init");
  }
}

// spawn({initFd, argv, envp?, cloneFlags, layout, waitForMaps, refork}) -> {pid, pidfd, errFd?, syncFd?}
//   layout[i]: the fd that becomes the child's fd i; null leaves stdio as inherited (fds 0-2) or nothing
//   (above); -2 is this spawn's error pipe. refork: the init forks into a joined pid namespace and reports
//   that process, which the result then names (the intermediate is reaped here).
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) return ThrowType(env, "spawn: options object expected");
  Napi::Object o = info[0].As<Napi::Object>();
  if (!o.Get("initFd").IsNumber() || !o.Get("argv").IsArray() || !o.Get("layout").IsArray())
    return ThrowType(env, "spawn: initFd, argv and layout are required");
  std::vector<std::string> argv_s = ToStrings(o.Get("argv").As<Napi::Array>());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(&s[0]);
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  if (o.Has("envp") && o.Get("envp").IsArray()) env_s = ToStrings(o.Get("envp").As<Napi::Array>());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(&e[0]);
  envp.push_back(nullptr);
  uint64_t ns_flags = static_cast<uint64_t>(o.Get("cloneFlags").As<Napi::Number>().Int64Value());
  bool wait_maps = o.Get("waitForMaps").ToBoolean();
  bool refork = o.Get("refork").ToBoolean();

  std::unique_ptr<ChildArgs> a(new ChildArgs());
  a->init_fd = o.Get("initFd").As<Napi::Number>().Int32Value();
  Napi::Array layout = o.Get("layout").As<Napi::Array>();
  if (layout.Length() > static_cast<uint32_t>(kMaxLayout)) return ThrowType(env, "spawn: too many fds to lay out");
  a->n = static_cast<int>(layout.Length());
  for (int i = 0; i < a->n; i++) {
    Napi::Value v = layout.Get(static_cast<uint32_t>(i));
    int fd = v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1;
    if (v.IsNumber() && fd < 0 && fd != kErrPipe) return ThrowType(env, "spawn: invalid fd in layout");
    a->layout[i] = fd;
  }
  a->argv = argv.data();
  a->envp = envp.data();
  int errp[2], syncp[2] = {-1, -1};
  if (pipe2(errp, O_CLOEXEC) < 0) return ThrowErrno(env, "spawn", errno, "pipe");
  UniqueFd err_r(errp[0]), err_w(errp[1]);
  if (wait_maps && pipe2(syncp, O_CLOEXEC) < 0) return ThrowErrno(env, "spawn", errno, "pipe");
  UniqueFd sync_r(syncp[0]), sync_w(syncp[1]);
  a->err_fd = err_w.get();
  a->sync_fd = sync_r.get();
  a->parent_fds[0] = err_r.get();
  a->parent_fds[1] = sync_w.get();

  // All signals blocked across the clone, so no Node handler runs in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  pid_t pid = -1;
  int clone_errno = 0;
  const size_t kStack = 256 * 1024;
  if (!wait_maps) {
    void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
      clone_errno = errno;
    } else {
      pid = clone(child_main, static_cast<char*>(stack) + kStack,
                  static_cast<int>(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | ns_flags) | SIGCHLD, a.get(), &pidfd);
      clone_errno = errno;
      munmap(stack, kStack);
    }
  } else {
    CloneArgs3 ca = {};
    ca.flags = CLONE_PIDFD | ns_flags;
    ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    ca.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &ca, sizeof(ca));
    if (r == 0) child_main(a.get());  // never returns
    clone_errno = errno;
    if (r < 0 && errno == ENOSYS) {
      // Kernels before 5.3: plain clone with fork semantics on a private stack.
      void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (stack != MAP_FAILED) {
        r = clone(child_main, static_cast<char*>(stack) + kStack, static_cast<int>(CLONE_PIDFD | ns_flags) | SIGCHLD,
                  a.get(), &pidfd);
        clone_errno = errno;
        munmap(stack, kStack);
      }
    }
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
  if (wait_maps) {
    result.Set("errFd", Napi::Number::New(env, err_r.release()));
    result.Set("syncFd", Napi::Number::New(env, sync_w.release()));
    return result;
  }
  int forked = 0;
  Napi::Value e = CheckChildError(env, err_r.get(), &forked);
  if (refork || env.IsExceptionPending()) {
    // Our own child: the init that failed, or the intermediate that exited after forking into the pid
    // namespace. Reaped by pid.
    int st;
    waitpid(pid, &st, 0);
    close(pidfd);
    if (env.IsExceptionPending()) return e;
    if (forked <= 0) return ThrowErrno(env, "spawn", ECHILD, "no process was started in the container's pid namespace");
    result.Set("pid", Napi::Number::New(env, forked));
    long fd = syscall(SYS_pidfd_open, forked, 0);
    if (fd < 0) return ThrowErrno(env, "pidfd_open", errno, "the process forked into the container");
    result.Set("pidfd", Napi::Number::New(env, static_cast<double>(fd)));
  }
  return result;
}

// spawnContinue(syncFd, errFd) -> pid | undefined: the maps are written; let the child execute the init
// and check it did. A number: the init forked into a joined pid namespace, and that is its pid (the caller
// reaps the intermediate, its own child).
Napi::Value SpawnContinue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UniqueFd sync_w(info[0].As<Napi::Number>().Int32Value());
  UniqueFd err_r(info[1].As<Napi::Number>().Int32Value());
  char c = 1;
  if (write(sync_w.get(), &c, 1) != 1) return ThrowErrno(env, "spawn", errno, "release child");
  sync_w.reset();
  int forked = 0;
  Napi::Value e = CheckChildError(env, err_r.get(), &forked);
  if (env.IsExceptionPending()) return e;
  return forked > 0 ? Napi::Number::New(env, forked) : env.Undefined();
}

// sealInit(path) -> fd: a sealed in-memory copy of the init helper, made once per runtime process. Every
// process that enters a container is executed from it, so /proc/PID/exe of such a process leads to this
// memfd, which cannot be written, truncated or grown, never to a file on the host (CVE-2019-5736).
Napi::Value SealInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  UniqueFd src(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src.ok()) return ThrowErrno(env, "sealInit", errno, "open " + path);
  struct stat st;
  if (fstat(src.get(), &st) < 0) return ThrowErrno(env, "sealInit", errno, "stat " + path);
  // MFD_EXEC says so explicitly where the kernel knows it (6.3+: vm.memfd_noexec may make it required);
  // older kernels refuse the unknown flag with EINVAL and make memfds executable anyway.
  UniqueFd mfd(static_cast<int>(syscall(SYS_memfd_create, "hako-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)));
  if (!mfd.ok() && errno == EINVAL)
    mfd.reset(static_cast<int>(syscall(SYS_memfd_create, "hako-init", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!mfd.ok()) return ThrowErrno(env, "sealInit", errno, "memfd_create (is vm.memfd_noexec 2?)");
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(mfd.get(), src.get(), &off, static_cast<size_t>(st.st_size - off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ThrowErrno(env, "sealInit", errno, "copy " + path + " into a memfd");
    if (n == 0) return ThrowErrno(env, "sealInit", EIO, path + " shrank while it was copied");
  }
  int seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
  // F_SEAL_EXEC (6.3+) also freezes the mode's exec bits; older kernels refuse the unknown seal.
  if (fcntl(mfd.get(), F_ADD_SEALS, seals | F_SEAL_EXEC) < 0 &&
      (errno != EINVAL || fcntl(mfd.get(), F_ADD_SEALS, seals) < 0))
    return ThrowErrno(env, "sealInit", errno, "seal the memfd");
  int have = fcntl(mfd.get(), F_GET_SEALS);
  if (have < 0 || (have & seals) != seals)
    return ThrowErrno(env, "sealInit", have < 0 ? errno : EPERM, "seals not in place");
  return Napi::Number::New(env, mfd.release());
}

}  // namespace

// idmapTree(uidMap, gidMap, source, recursive) -> fd of a detached clone of `source` idmapped through a new
// user namespace with those mappings ("inside outside size" lines). A child is cloned into the namespace,
// its maps written from here (the runtime's namespace: host ids mean host ids), the namespace opened, the
// child let go and reaped by pid. The child only waits for EOF on a pipe and exits: no allocation there.
Napi::Value IdmapTree(const Napi::CallbackInfo& info) {
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
  if (syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) <
      0)
    return ThrowErrno(env, "mount_setattr", errno, "idmap " + source);
  return Napi::Number::New(env, tree.release());
}

void InitSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("idmapTree", Napi::Function::New(env, IdmapTree, "idmapTree"));
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("spawnContinue", Napi::Function::New(env, SpawnContinue, "spawnContinue"));
  exports.Set("sealInit", Napi::Function::New(env, SealInit, "sealInit"));
}

}  // namespace hako
