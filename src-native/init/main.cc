// Over 400 lines because it is the init's one sequence (plan, rootfs, console, cgroups, seccomp, exec), read top to bottom.
// hako-init: the first process of every container.
//
//   hako-init PLAN_FD CONTROL_FD     (started by the addon's spawn, already inside the new namespaces)
//   hako-init --enter ERR_FD ... -- PLAN_FD CONTROL_FD | --exec PLAN_FD | [--hook-seccomp FD FLAGS]
//                                    --hook-fd FD ARGV... | --hook-path PATH ARGV...
//                                    (join an existing container's cgroups and namespaces first: enter.cc)
//   hako-init --decode               (tests: decode a message from stdin, print it as JSON)
//
// The runtime executes this helper from a sealed memfd, and it is not dumpable until it executes the
// container's process: the container can neither open /proc/PID/exe of it nor write what it leads to.
//
// Create: read the plan from PLAN_FD (a seqpacket socketpair with the runtime), build the rootfs, apply
// the container-level configuration, report READY, then wait. Start: accept a connection on CONTROL_FD (a
// listening unix socket in the container's state directory, mode 0600), check the peer is root or the
// container's owner, read START (run the configured process) or SETUP (run the process it carries),
// apply the process-level steps and exec. A successful exec closes the connection (it is CLOEXEC): the
// caller reads EOF. A failure is reported on the connection.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/time.h>
#include <termios.h>
#include <unistd.h>

#include "../common/syscalls.h"
#include "channel.h"
#include "enter.h"
#include "plan.h"
#include "process.h"
#include "rootfs.h"

// Linux 4.13; older C library headers may not name it (the value is the same on every architecture hako builds for).
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace {

int parse_fd(const char* s) {
  char* end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 3 || v > 65535) return -1;
  return static_cast<int>(v);
}

int decode_stdin() {
  size_t cap = 1 << 16, len = 0;
  uint8_t* buf = static_cast<uint8_t*>(malloc(cap));
  for (;;) {
    if (len == cap) {
      if (cap > (wire::kMaxMessage + wire::kHeaderSize) * 2) break;
      cap *= 2;
      buf = static_cast<uint8_t*>(realloc(buf, cap));
    }
    ssize_t r = read(0, buf + len, cap - len);
    if (r <= 0) break;
    len += static_cast<size_t>(r);
  }
  uint32_t type, body_len;
  const uint8_t* body;
  const char* err = "bad header";
  int rc = 2;
  if (wire::parse_header(buf, len, &type, &body, &body_len)) {
    if (type == wire::MSG_PLAN) {
      Plan plan;
      if (decode_plan(body, body_len, &plan, &err)) {
        print_plan_json(&plan);
        free_arena(plan.arena);
        rc = 0;
      }
    } else if (type == wire::MSG_SETUP) {
      ProcessSpec p;
      void* arena;
      if (decode_process_message(body, body_len, &p, &arena, &err)) {
        print_process_json(&p);
        putchar('\n');
        free_arena(arena);
        rc = 0;
      }
    } else {
      err = "unexpected message type";
    }
  }
  if (rc) fprintf(stderr, "decode error: %s\n", err);
  free(buf);
  return rc;
}

// Wait at a pause point until the runtime says to go on (it runs hooks meanwhile).
void pause_at(uint32_t point, int plan_fd) {
  char name[16];
  snprintf(name, sizeof(name), "%u", point);
  if (!send_msg(wire::MSG_PAUSE, wire::R_POINT, name)) _exit(1);
  size_t len;
  uint8_t* msg = read_message(plan_fd, false, &len);
  uint32_t type, blen;
  const uint8_t* body;
  if (!msg || !wire::parse_header(msg, len, &type, &body, &blen) || type != wire::MSG_CONTINUE) _exit(1);
  free(msg);
}

int openat2_checked(int dirfd, const char* path, int flags, uint64_t resolve) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = resolve;
  int fd;
  do fd = static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd;
}

// The container's /dev/console is its terminal, as with runc (getty, systemd and the like write there): an
// empty file bound over by the pty's slave. Called after pivot_root: the paths are the container's. Nothing
// the image put at /dev/console is followed (CVE-2025-52565: a link there to a /proc/sys file got the pty
// bound over that file): a link is removed, and the file bound over is opened O_NOFOLLOW and checked to be a
// plain file or device node outside procfs and sysfs. The bind goes from fd to fd: no path is looked up again.
void bind_console(int slave) {
  Fd dev(openat2_checked(AT_FDCWD, "/dev", O_PATH | O_DIRECTORY, RESOLVE_NO_MAGICLINKS));
  if (!dev.ok()) fail("terminal", errno, "open /dev: %s", errtext(errno));
  struct stat st;
  if (fstatat(dev.get(), "console", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
      unlinkat(dev.get(), "console", 0) < 0)
    fail("terminal", errno, "remove the symlink at /dev/console: %s", errtext(errno));
  // mknod of a regular file, not open(O_CREAT): whatever is there already (a /dev bound from the host holds
  // the host's console) is never opened.
  if (mknodat(dev.get(), "console", S_IFREG | 0666, 0) < 0 && errno != EEXIST)
    fail("terminal", errno, "create /dev/console: %s", errtext(errno));
  Fd target(openat(dev.get(), "console", O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!target.ok()) fail("terminal", errno, "open /dev/console: %s", errtext(errno));
  struct statfs sf;
  if (fstat(target.get(), &st) < 0 || fstatfs(target.get(), &sf) < 0)
    fail("terminal", errno, "stat /dev/console: %s", errtext(errno));
  if (!(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) || sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC)
    fail("terminal", EINVAL,
         "/dev/console in the container is not a plain file or device node (mode 0%o, filesystem 0x%lx): refusing to "
         "bind the terminal over it",
         static_cast<unsigned>(st.st_mode), static_cast<unsigned long>(sf.f_type));
  Fd tree(static_cast<int>(syscall(SYS_open_tree, slave, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
  if (!tree.ok()) fail("terminal", errno, "clone the pty mount for /dev/console (open_tree): %s", errtext(errno));
  if (syscall(SYS_move_mount, tree.get(), "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    fail("terminal", errno, "bind the pty to /dev/console: %s", errtext(errno));
}

// Create the pty inside the container and hand its master to the runtime; with `as_dev_console` (a container's
// init after pivot_root, not an exec) it also becomes the container's /dev/console. The master is the ptmx of
// the devpts mounted at /dev/pts, opened without following any link and without leaving that mount, so no
// file the image placed at /dev/ptmx or /dev/pts (a link to a /proc/sys file, another device) is opened
// read-write; the slave is opened from the master (TIOCGPTPEER), not by name.
int setup_console(const Plan* plan, bool as_dev_console) {
  Fd pts(openat2_checked(AT_FDCWD, "/dev/pts", O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS));
  if (!pts.ok())
    fail("terminal", errno, "open /dev/pts (a terminal needs devpts mounted there, not a link): %s", errtext(errno));
  struct statfs sf;
  if (fstatfs(pts.get(), &sf) < 0) fail("terminal", errno, "statfs /dev/pts: %s", errtext(errno));
  if (sf.f_type != DEVPTS_SUPER_MAGIC)
    fail("terminal", EINVAL, "/dev/pts is not a devpts mount (filesystem 0x%lx): a terminal needs one",
         static_cast<unsigned long>(sf.f_type));
  Fd master(openat2_checked(pts.get(), "ptmx", O_RDWR | O_NOCTTY,
                            RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
  if (!master.ok()) fail("terminal", errno, "open /dev/pts/ptmx: %s", errtext(errno));
  struct stat st;
  if (fstat(master.get(), &st) < 0) fail("terminal", errno, "stat /dev/pts/ptmx: %s", errtext(errno));
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2)
    fail("terminal", EINVAL, "/dev/pts/ptmx is not the pty multiplexer (char 5:2)");
  int unlock = 0;
  if (ioctl(master.get(), TIOCSPTLCK, &unlock) < 0) fail("terminal", errno, "unlockpt: %s", errtext(errno));
  int n = 0;
  if (ioctl(master.get(), TIOCGPTN, &n) < 0) fail("terminal", errno, "ptsname: %s", errtext(errno));
  char name[64];
  snprintf(name, sizeof(name), "/dev/pts/%d", n);
  int slave = ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) fail("terminal", errno, "open the pty slave %s (TIOCGPTPEER): %s", name, errtext(errno));
  if (as_dev_console) bind_console(slave);
  if (plan->rows || plan->cols) {
    struct winsize ws = {};
    ws.ws_row = static_cast<unsigned short>(plan->rows);
    ws.ws_col = static_cast<unsigned short>(plan->cols);
    ioctl(slave, TIOCSWINSZ, &ws);
  }
  if (!send_msg(wire::MSG_FD, wire::R_NAME, name, 0, nullptr, master.get()))
    fail("terminal", errno, "send pty master: %s", errtext(errno));
  return slave;
}

void on_signal(int sig) { die(128 + sig); }

// The init moves itself into its cgroups. A single-threaded process writing "0" is a cheap migration; the
// same write by the multithreaded runtime makes the kernel wait for an RCU grace period (~15 ms here).
void join_cgroups(const Plan* plan) {
  for (size_t i = 0; i < plan->ncgroup_procs; i++) {
    int fd = open(plan->cgroup_procs[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
      fail("cgroup", errno, "join cgroup %s: %s", plan->cgroup_procs[i], errtext(errno));
    close(fd);
  }
  if (plan->ncgroup_procs) step_done("cgroups");
}

// A time namespace takes effect for our children and for our own next exec; its offsets must be written
// before any process enters it, so the init unshares it (not the clone) and sets them right away.
void setup_time_namespace(const Plan* plan) {
  if (unshare(CLONE_NEWTIME) < 0) fail("timens", errno, "unshare time namespace: %s", errtext(errno));
  const int64_t* o = plan->time_offsets;
  if (o[0] || o[1] || o[2] || o[3]) {
    char buf[160];
    int n = snprintf(buf, sizeof(buf), "monotonic %lld %lld\nboottime %lld %lld\n", static_cast<long long>(o[0]),
                     static_cast<long long>(o[1]), static_cast<long long>(o[2]), static_cast<long long>(o[3]));
    int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, buf, static_cast<size_t>(n)) != n)
      fail("timens", errno, "write timeOffsets to /proc/self/timens_offsets: %s", errtext(errno));
    close(fd);
  }
}

// Unmapped host users appear with this uid inside a user namespace (read before pivot_root).
uid_t g_overflow_uid = static_cast<uid_t>(-1);
// The runtime that created this container, as this user namespace sees it (with a mapping such as
// 0->1, 1->0, host root is uid 1 here).
uid_t g_runtime_uid = static_cast<uid_t>(-1);

// Only root or the user that owns the container (root inside its user namespace) may start it. The first
// gate is the filesystem: the socket is 0600 in a 0700 directory of the owner. Inside a user namespace
// the host's root is unmapped and shows as the overflow uid; the filesystem gate is what excludes others.
bool peer_allowed(int conn) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return false;
  return cred.uid == 0 || cred.uid == geteuid() || cred.uid == g_overflow_uid || cred.uid == g_runtime_uid;
}

void read_overflow_uid() {
  // Only meaningful in a user namespace other than the initial one.
  char map[64] = {0};
  int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, map, sizeof(map) - 1);
  close(fd);
  if (n > 0 && strstr(map, "4294967295") != nullptr) return;  // initial namespace: maps everything
  fd = open("/proc/sys/kernel/overflowuid", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[16] = {0};
  if (read(fd, buf, sizeof(buf) - 1) > 0) g_overflow_uid = static_cast<uid_t>(strtoul(buf, nullptr, 10));
  close(fd);
}

[[noreturn]] void wait_for_start(int ctl_fd, Plan* plan, int terminal_fd) {
  for (;;) {
    int conn = accept4(ctl_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      fail("wait", errno, "accept on control socket: %s", errtext(errno));
    }
    Fd c(conn);
    struct timeval tv = {5, 0};
    if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
      // Without a timeout a caller could keep the init here forever: refuse, and say why.
      channel_set(conn);
      channel_set_stream(true);
      report_error("control", errno, "set a receive timeout on the control connection: %s", errtext(errno));
      channel_set(-1);
      continue;
    }
    // The request is read before any answer, a refusal included: closing with it unread resets the
    // connection, and a caller still sending would get EPIPE instead of the answer.
    size_t len;
    uint8_t* msg = read_message(conn, true, &len);
    int read_err = errno;
    if (!peer_allowed(conn)) {
      free(msg);
      // Say so: a bare close could read as "the process was executed" (the reply a successful start gives).
      channel_set(conn);
      channel_set_stream(true);
      report_error("control", EPERM, "permission denied: only the user that created this container may start it");
      channel_set(-1);
      continue;
    }
    if (!msg) {
      // A caller that sent nothing and left needs no answer. Any other failed read is answered: a bare close
      // would read as "executed".
      if (read_err == 0) continue;
      channel_set(conn);
      channel_set_stream(true);
      report_error("control", read_err, "read the request: %s",
                   read_err == EAGAIN ? "no whole message within 5 s" : errtext(read_err));
      channel_set(-1);
      continue;
    }
    // A caller that has closed its end gave up (its deadline passed while this init was stopped or
    // frozen): it was told the start failed, so the request is dropped rather than carried out unseen.
    // (POLLHUP means both directions are shut; a caller that only shut down writing still waits. A poll
    // that fails tells nothing, and the request goes ahead.)
    struct pollfd pfd = {conn, POLLIN, 0};
    int pr;
    do pr = poll(&pfd, 1, 0);
    while (pr < 0 && errno == EINTR);
    if (pr > 0 && (pfd.revents & POLLHUP)) {
      free(msg);
      continue;
    }
    channel_set(conn);
    channel_set_stream(true);
    uint32_t type, blen;
    const uint8_t* body;
    if (!wire::parse_header(msg, len, &type, &body, &blen)) {
      report_error("control", EPROTO, "malformed control message");
    } else if (type == wire::MSG_START) {
      // No process in the config: starting succeeds and the container simply stops (runtime-tools expects it).
      if (!plan->has_process) _exit(0);
      exec_process(&plan->process, terminal_fd);
    } else if (type == wire::MSG_SETUP) {
      ProcessSpec p;
      void* arena = nullptr;
      const char* err;
      if (!decode_process_message(body, blen, &p, &arena, &err)) {
        report_error("setup", EINVAL, "invalid process: %s", err);
      } else {
        // The container's seccomp filter, already in the plan, applies to a supplied process too; the
        // runtime does not send it again.
        if (!p.has_seccomp && plan->process.has_seccomp) {
          p.has_seccomp = true;
          p.seccomp_flags = plan->process.seccomp_flags;
          p.filter = plan->process.filter;
          p.filter_len = plan->process.filter_len;
        }
        exec_process(&p, terminal_fd);
        free_arena(arena);
      }
    } else {
      report_error("control", EPROTO, "unexpected control message %u", type);
    }
    free(msg);
    channel_set(-1);
  }
}

// Read and decode the MSG_PLAN the runtime sends first; any problem ends the helper with a report.
void read_plan(int plan_fd, Plan* plan) {
  size_t len;
  static int fds[kMaxPlanFds];
  size_t nfds = 0;
  uint8_t* msg = read_message_fds(plan_fd, &len, fds, kMaxPlanFds, &nfds);
  if (!msg) fail("plan", errno, "read plan: %s", errno ? errtext(errno) : "runtime went away");
  uint32_t type, blen;
  const uint8_t* body;
  if (!wire::parse_header(msg, len, &type, &body, &blen) || type != wire::MSG_PLAN)
    fail("plan", EPROTO, "malformed plan header");
  const char* err;
  if (!decode_plan(body, blen, plan, &err)) fail("plan", EINVAL, "invalid plan: %s", err);
  free(msg);
  for (size_t i = 0; i < plan->nmounts; i++) {
    MountSpec* m = &plan->mounts[i];
    if (!m->has_source_fd) continue;
    if (m->source_fd >= nfds) fail("plan", EPROTO, "bind source %s: fd %u was not sent", m->dest, m->source_fd);
    m->source_fd = static_cast<uint32_t>(fds[m->source_fd]);
  }
}

// A filter with a notify listener is loaded before the runtime lets go, so the listener fd can travel to
// listenerPath during create (or exec).
void load_seccomp_early(Plan* plan) {
  if (!plan->process.has_seccomp) return;
  int listener = load_seccomp(&plan->process);
  plan->process.has_seccomp = false;
  if (listener < 0) return;
  if (!send_msg(wire::MSG_FD, wire::R_NAME, "seccompFd", 0, nullptr, listener))
    fail("seccomp", errno, "send listener fd: %s", errtext(errno));
  close(listener);
}

}  // namespace

// hako-init --exec PLAN_FD: started inside a running container's namespaces and cgroup by `hako exec`.
// The plan holds the process (and a console request); there is no rootfs to build and nothing to wait for.
[[noreturn]] void exec_mode(int plan_fd) {
  fcntl(plan_fd, F_SETFD, FD_CLOEXEC);
  channel_set(plan_fd);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) fail("init", errno, "prctl PR_SET_DUMPABLE: %s", errtext(errno));
  Plan plan;
  read_plan(plan_fd, &plan);
  if (!plan.has_process) fail("plan", EINVAL, "exec plan without a process");
  join_cgroups(&plan);
  int terminal_fd = plan.console ? setup_console(&plan, false) : -1;
  if (plan.seccomp_early) load_seccomp_early(&plan);
  exec_process(&plan.process, terminal_fd);
  die(127);  // the refusal was reported; nothing waits here
}

// SIOCSIFFLAGS on `lo` of the namespace the init was cloned into (it has CAP_NET_ADMIN there).
static void loopback_up() {
  Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.ok()) fail("loopback", errno, "socket for the loopback interface: %s", errtext(errno));
  int s = sock.get();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) fail("loopback", errno, "read the flags of lo: %s", errtext(errno));
  if (!(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) fail("loopback", errno, "bring lo up: %s", errtext(errno));
  }
}

// [--hook-seccomp FD FLAGS] --hook-fd FD ARGV... / --hook-path PATH ARGV...: a hook that runs in the
// container, after the enter preamble. The program comes from the runtime's mount namespace (an fd opened
// there: createContainer) or the container's (a path: startContainer). With --hook-seccomp, the container's
// filter (a file of sock_filter) is loaded first, as runc's init loads it before running startContainer
// hooks. A failed exec is reported on the enter error pipe.
static sock_filter g_hook_filter[4096];  // BPF_MAXINSNS: static, nothing is allocated here

static void load_hook_seccomp(int fd, unsigned flags, int err_fd) {
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, reinterpret_cast<char*>(g_hook_filter) + got, sizeof(g_hook_filter) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) enter_fail(err_fd, errno, "hook: read the seccomp filter");
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (got == sizeof(g_hook_filter)) break;
  }
  close(fd);
  if (got == 0 || got % sizeof(sock_filter) != 0) enter_fail(err_fd, EINVAL, "hook: seccomp filter size");
  struct sock_fprog prog = {static_cast<unsigned short>(got / sizeof(sock_filter)), g_hook_filter};
  // Loading needs CAP_SYS_ADMIN in the namespace or no_new_privs; the hook runner is root of the container's
  // user namespace, so the first try normally succeeds.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0) return;
  if (errno == EACCES && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0)
    return;
  enter_fail(err_fd, errno, "hook: load the container's seccomp filter");
}

[[noreturn]] void run_hook(int argc, char** argv, int err_fd) {
  if (argc >= 5 && strcmp(argv[1], "--hook-seccomp") == 0) {
    int fd = parse_fd(argv[2]);
    if (fd < 0) enter_fail(err_fd, EBADF, "hook: bad seccomp fd");
    load_hook_seccomp(fd, static_cast<unsigned>(strtoul(argv[3], nullptr, 10)), err_fd);
    argc -= 3;
    argv += 3;
  }
  if (argc < 4) enter_fail(err_fd, EINVAL, "hook: no program");
  if (strcmp(argv[1], "--hook-fd") == 0) {
    int fd = parse_fd(argv[2]);
    if (fd < 0) enter_fail(err_fd, EBADF, "hook: bad fd");
    // The fd stays open across exec: a script's interpreter opens it as /dev/fd/N.
    syscall(SYS_execveat, fd, "", &argv[3], environ, AT_EMPTY_PATH);
  } else {
    execve(argv[2], &argv[3], environ);
  }
  enter_fail(err_fd, errno, "exec");
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--decode") == 0) return decode_stdin();
  if (argc > 1 && strcmp(argv[1], "--enter") == 0) {
    int err_fd = -1;
    int first = enter(argc, argv, &err_fd);
    // What follows "--" is this helper's ordinary command line ("--" stands in for argv[0]).
    argc -= first - 1;
    argv += first - 1;
    if (argc > 1 && (strcmp(argv[1], "--hook-fd") == 0 || strcmp(argv[1], "--hook-path") == 0 ||
                     strcmp(argv[1], "--hook-seccomp") == 0))
      run_hook(argc, argv, err_fd);
    // Entered: the runtime reads EOF once this copy is closed (and the intermediate has exited).
    close(err_fd);
  }
  if (argc == 3 && strcmp(argv[1], "--exec") == 0) {
    int fd = parse_fd(argv[2]);
    if (fd < 0) return 2;
    exec_mode(fd);
  }
  if (argc != 3) {
    fprintf(stderr, "hako-init: internal helper of hako, not meant to be run by hand\n");
    return 2;
  }
  int plan_fd = parse_fd(argv[1]), ctl_fd = parse_fd(argv[2]);
  if (plan_fd < 0 || ctl_fd < 0) {
    fprintf(stderr, "hako-init: invalid fd arguments\n");
    return 2;
  }
  fcntl(plan_fd, F_SETFD, FD_CLOEXEC);
  fcntl(ctl_fd, F_SETFD, FD_CLOEXEC);
  channel_set(plan_fd);
  // Not dumpable for the container's whole life as its waiting init (see the top of this file).
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) fail("init", errno, "prctl PR_SET_DUMPABLE: %s", errtext(errno));
  umask(0);

  Plan plan;
  read_plan(plan_fd, &plan);
  set_debug(plan.debug);

  join_cgroups(&plan);
  read_overflow_uid();
  {
    // The plan socket's peer is the runtime; SO_PEERCRED translates its uid into this namespace (the maps
    // are written before this helper runs).
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(plan_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) g_runtime_uid = cred.uid;
  }
  // The runtime placed us in the container's cgroup before sending the plan: a cgroup namespace made now
  // has that cgroup as its root, so the container sees itself at "/".
  if (plan.unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
    fail("cgroupns", errno, "unshare cgroup namespace: %s", errtext(errno));
  if (plan.time_ns) setup_time_namespace(&plan);
  if (plan.loopback_up) loopback_up();
  // A fresh session keyring, so the container cannot reach the host's (runc's default; --no-new-keyring).
  // Kernels without keys (ENOSYS) or a keyctl the host denies (EPERM/EACCES) leave the inherited one.
  if (plan.new_keyring && syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, nullptr) < 0 && errno != ENOSYS &&
      errno != EPERM && errno != EACCES)
    fail("keyring", errno, "join a new session keyring: %s", errtext(errno));
  if (plan.new_mount_ns) setup_mounts(&plan);
  setup_kernel_settings(&plan);
  if (plan.pause_mask & wire::PAUSE_PRE_PIVOT) pause_at(wire::PAUSE_PRE_PIVOT, plan_fd);
  if (plan.new_mount_ns) finish_rootfs(&plan);
  else if (chroot(plan.rootfs) < 0 || chdir("/") < 0)
    fail("rootfs", errno, "chroot %s: %s", plan.rootfs, errtext(errno));
  if (plan.has_personality && personality(plan.personality) < 0)
    fail("personality", errno, "personality 0x%x: %s", plan.personality, errtext(errno));
  int terminal_fd = plan.console ? setup_console(&plan, plan.new_mount_ns) : -1;
  if (plan.new_mount_ns) make_root_readonly(&plan);
  // With a terminal the pty is the container's stdio from now on, as with runc: the caller's pipes must not
  // stay open in the waiting init (the containerd shim reads create's output until EOF).
  for (int i = 0; terminal_fd >= 0 && i < 3; i++)
    if (dup2(terminal_fd, i) < 0) fail("terminal", errno, "dup2 pty: %s", errtext(errno));
  if (plan.has_process) {
    // As runc: a cwd that cannot be entered, or a program not found from it, fails create, not start (a
    // container whose start failed stays created, and containerd will not delete a created task). A
    // permission error is left to the chdir at start, made as root of the container's namespace again.
    if (plan.process.cwd && chdir(plan.process.cwd) < 0 && errno != EACCES && errno != EPERM) {
      int e = errno;
      fail("cwd", e, "chdir to cwd (\"%s\") set in config.json failed: %s", plan.process.cwd, errtext(e));
    }
    char path[4096], emsg[4200];
    int e = resolve_executable(&plan.process, path, sizeof(path), emsg, sizeof(emsg));
    if (e) fail("exec", e, "%s", emsg);
    if (chdir("/") < 0) fail("cwd", errno, "chdir /: %s", errtext(errno));
    if (plan.seccomp_early) load_seccomp_early(&plan);
  }
  static const int kExitSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (int sig : kExitSignals) signal(sig, on_signal);
  if (!send_msg(wire::MSG_READY, 0, nullptr)) _exit(1);
  // The runtime closes its end once it has recorded the container; nothing more comes on this socket.
  close(plan_fd);
  channel_set(-1);
  wait_for_start(ctl_fd, &plan, terminal_fd);
}
