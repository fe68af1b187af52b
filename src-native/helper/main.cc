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
//
// This file is the helper loop; the per-request child is child.cc, verify.cc and act.cc (child.h).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "../common/scm.h"

using namespace hako_helper;

namespace {

constexpr int kMaxChildren = 64;

int g_sock = 3;

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
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
  read_own_namespaces();
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
