// hako-fd-keeper: holds the policy server's seccomp notify fds so that running containers are served again
// after the server restarts (or crashes).
//
// Why: when the last holder of a notify fd closes it, the kernel detaches the listener and every pending and
// future notified call of that container fails with ENOSYS, for good. While any process holds the fd, a
// notification simply waits in the kernel until someone receives it. So the server hands a dup of every notify
// fd it accepts, with its registration (container id, state, peer credentials: opaque bytes to us), to this
// small static process; a new server connects, says HELLO, receives every held fd and registration back, and
// serves them. The keeper never receives a notification itself: it does not add latency, and it polls the fds
// only for POLLHUP (the container is gone: the fd is closed and forgotten).
//
// Calls the dead server had received but not answered would wait forever (the kernel hands a notification to
// one receiver once). The server records each received id in a small shared ring (a memfd deposited with the
// fd, keeper_proto.h); when the server's connection closes, the keeper answers every id of the ring that is
// still pending (SECCOMP_IOCTL_NOTIF_ID_VALID) with EAGAIN: the caller can retry, and the retry reaches the
// next server. An emulation the dead server's helper was running is killed with it (PR_SET_PDEATHSIG), and
// the helper checks ID_VALID right before acting, so an answered call is not acted on afterwards.
//
// Who may talk to it: the socket is 0600 and each peer's SO_PEERCRED uid must be the keeper's own (the
// server's) uid; one server at a time (a second gets BUSY). Lifetime: started by the server (setsid, not its
// child in any way that matters), it exits when no server is connected and it holds no fd, i.e. it never
// outlives the last container that needs it; a keeper no server ever connects to exits after 10 s.
//
//   hako-fd-keeper SOCKET-PATH
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "keeper_proto.h"
#include "../common/notif.h"
#include "../common/scm.h"

using namespace hako_keeper;

namespace {

struct Entry {
  uint64_t key;
  int fd;                  // seccomp notify fd
  int ring;                // memfd of kRingSlots ids
  int extra[kMaxFds - 2];  // more fds of the registration, kept and given back as they are
  int nextra;
  const volatile uint64_t* ids;
  char* payload;
  uint32_t len;
};

Entry* g_entries = nullptr;
size_t g_count = 0, g_cap = 0;
int g_listen = -1, g_server = -1;
const char* g_path = nullptr;

void CloseEntry(Entry* e) {
  if (e->ids) munmap(const_cast<uint64_t*>(e->ids), kRingBytes);
  close(e->fd);
  close(e->ring);
  for (int i = 0; i < e->nextra; i++) close(e->extra[i]);
  free(e->payload);
}

void RemoveAt(size_t i) {
  CloseEntry(&g_entries[i]);
  g_entries[i] = g_entries[--g_count];
}

void CloseFds(int* fds, int n) {
  for (int i = 0; i < n; i++) close(fds[i]);
}

[[noreturn]] void Exit(int code) {
  for (size_t i = 0; i < g_count; i++) CloseEntry(&g_entries[i]);
  // Unlink only the socket we bound (a new keeper may already own the path after a stale one was replaced).
  struct stat a, b;
  if (g_listen >= 0 && fstat(g_listen, &a) == 0 && stat(g_path, &b) == 0 && S_ISSOCK(b.st_mode)) unlink(g_path);
  _exit(code);
}

// The server went away: answer what it had received and not answered (see the top of the file).
uint32_t AnswerAbandoned() {
  uint32_t n = 0;
  for (size_t i = 0; i < g_count; i++) {
    Entry* e = &g_entries[i];
    if (!e->ids) continue;
    for (uint32_t s = 0; s < kRingSlots; s++) {
      uint64_t id = e->ids[s];
      if (id == 0 || notif::id_valid(e->fd, id) != 0) continue;
      struct seccomp_notif_resp r;
      memset(&r, 0, sizeof(r));
      r.id = id;
      r.error = -EAGAIN;
      int rc;
      do rc = ioctl(e->fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
      while (rc < 0 && errno == EINTR);
      if (rc == 0) n++;
    }
  }
  return n;
}

uint32_t g_abandoned = 0;  // answered since the last server's HELLO, reported in END

bool SendMsg(int sock, uint32_t type, uint64_t key, const void* payload, uint32_t len, const int* fds, int nfds) {
  KeeperHeader h = {kMagic, type, key, len, 0};
  struct iovec iov[2] = {{&h, sizeof(h)}, {const_cast<void*>(payload), len}};
  ssize_t w = scm::send_fds(sock, iov, len ? 2 : 1, fds, nfds > 0 ? static_cast<size_t>(nfds) : 0, MSG_NOSIGNAL);
  return w == static_cast<ssize_t>(sizeof(h) + len);
}

void DropServer() {
  close(g_server);
  g_server = -1;
  g_abandoned += AnswerAbandoned();
}

bool IsNotifyFd(int fd) {
  char p[64], t[64];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, t, sizeof(t) - 1);
  if (n < 0) return false;
  t[n] = 0;
  return strcmp(t, "anon_inode:seccomp notify") == 0;
}

void Put(uint64_t key, const char* payload, uint32_t len, int* fds, int nfds) {
  if (nfds < 2 || nfds > kMaxFds || !IsNotifyFd(fds[0])) {
    CloseFds(fds, nfds);
    return;
  }
  struct stat st;
  void* ids = MAP_FAILED;
  if (fstat(fds[1], &st) == 0 && st.st_size >= static_cast<off_t>(kRingBytes))
    ids = mmap(nullptr, kRingBytes, PROT_READ, MAP_SHARED, fds[1], 0);
  char* copy = static_cast<char*>(malloc(len ? len : 1));
  if (!copy) {
    if (ids != MAP_FAILED) munmap(ids, kRingBytes);
    CloseFds(fds, nfds);
    return;
  }
  memcpy(copy, payload, len);
  for (size_t i = 0; i < g_count; i++)
    if (g_entries[i].key == key) {
      RemoveAt(i);
      break;
    }
  if (g_count == g_cap) {
    size_t cap = g_cap ? g_cap * 2 : 16;
    Entry* grown = static_cast<Entry*>(realloc(g_entries, cap * sizeof(Entry)));
    if (!grown) {
      free(copy);
      if (ids != MAP_FAILED) munmap(ids, kRingBytes);
      CloseFds(fds, nfds);
      return;
    }
    g_entries = grown;
    g_cap = cap;
  }
  Entry& e = g_entries[g_count++];
  e.key = key;
  e.fd = fds[0];
  e.ring = fds[1];
  e.nextra = nfds - 2;
  for (int i = 2; i < nfds; i++) e.extra[i - 2] = fds[i];
  e.ids = ids == MAP_FAILED ? nullptr : static_cast<const volatile uint64_t*>(ids);
  e.payload = copy;
  e.len = len;
}

void OnServerMessage() {
  static char buf[sizeof(KeeperHeader) + kMaxPayload];
  struct iovec iov = {buf, sizeof(buf)};
  // One fd more than a message may carry is taken, so that Put sees (and refuses) too many; beyond that the
  // message is lost (scm.h: every fd closed, EMSGSIZE) and the server with it.
  int fds[kMaxFds + 1];
  size_t got = 0;
  int msg_flags = 0;
  ssize_t n = scm::recv_fds(g_server, &iov, 1, fds, kMaxFds + 1, &got, MSG_DONTWAIT, &msg_flags);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  int nfds = static_cast<int>(got);
  if (n <= 0) {  // EOF or error: the server is gone
    CloseFds(fds, nfds);
    DropServer();
    return;
  }
  KeeperHeader h;
  if (static_cast<size_t>(n) < sizeof(h) || (msg_flags & MSG_TRUNC)) {
    CloseFds(fds, nfds);
    DropServer();
    return;
  }
  memcpy(&h, buf, sizeof(h));
  if (h.magic != kMagic || h.len != static_cast<size_t>(n) - sizeof(h)) {
    CloseFds(fds, nfds);
    DropServer();
    return;
  }
  switch (h.type) {
    case HELLO: {
      CloseFds(fds, nfds);
      for (size_t i = 0; i < g_count; i++) {
        const Entry& e = g_entries[i];
        int all[kMaxFds] = {e.fd, e.ring};
        for (int k = 0; k < e.nextra; k++) all[2 + k] = e.extra[k];
        if (!SendMsg(g_server, ENTRY, e.key, e.payload, e.len, all, 2 + e.nextra)) {
          DropServer();
          return;
        }
      }
      char msg[64];
      int len = snprintf(msg, sizeof(msg), "{\"abandoned\":%u}", g_abandoned);
      g_abandoned = 0;
      if (!SendMsg(g_server, END, 0, msg, static_cast<uint32_t>(len), nullptr, 0)) DropServer();
      return;
    }
    case PUT: Put(h.key, buf + sizeof(h), h.len, fds, nfds); return;
    case DEL:
      CloseFds(fds, nfds);
      for (size_t i = 0; i < g_count; i++)
        if (g_entries[i].key == h.key) {
          RemoveAt(i);
          break;
        }
      return;
    case RELEASE: CloseFds(fds, nfds); Exit(0);
    default: CloseFds(fds, nfds); DropServer();
  }
}

void OnAcceptable() {
  for (;;) {
    int c = accept4(g_listen, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;  // EAGAIN (the listening socket is non-blocking) or a transient error
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != geteuid()) {
      close(c);
      continue;
    }
    if (g_server >= 0) {
      SendMsg(c, BUSY, 0, nullptr, 0, nullptr, 0);
      close(c);
      continue;
    }
    // Sends to the server block at most 5 s: a server that does not read is dropped, not waited for.
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    g_server = c;
  }
}

int Bind(const char* path) {
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  struct sockaddr_un a;
  memset(&a, 0, sizeof(a));
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(a.sun_path)) {
    close(s);
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(a.sun_path, path);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) < 0) {
    if (errno != EADDRINUSE) {
      close(s);
      return -1;
    }
    // A keeper that answers is alive: leave it alone. A dead one left its socket file: replace it.
    int t = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    bool alive = t >= 0 && connect(t, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) == 0;
    if (t >= 0) close(t);
    if (alive || unlink(path) < 0 || bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) < 0) {
      close(s);
      errno = EADDRINUSE;
      return -1;
    }
  }
  if (chmod(path, 0600) < 0 || listen(s, 8) < 0) {
    close(s);
    return -1;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || argv[1][0] != '/') {
    fprintf(stderr, "usage: hako-fd-keeper /ABSOLUTE/SOCKET-PATH\n");
    return 2;
  }
  // Nothing inherited stays open (stdio becomes /dev/null), no signal from a terminal or a dead peer kills
  // us, and we hold no directory busy.
  for (int fd = 3; fd < 1024; fd++) close(fd);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    for (int fd = 0; fd < 3; fd++) dup2(null, fd);
    if (null > 2) close(null);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  setsid();
  umask(077);
  if (chdir("/") < 0) return 1;
  g_path = argv[1];
  g_listen = Bind(g_path);
  if (g_listen < 0) return errno == EADDRINUSE ? 0 : 1;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  bool ever_served = false;
  struct pollfd* pfs = nullptr;
  size_t pcap = 0;
  for (;;) {
    if (g_server >= 0) ever_served = true;
    if (g_server < 0 && g_count == 0) {
      if (ever_served) Exit(0);
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec >= 10) Exit(0);
    }
    size_t want = 2 + g_count;
    if (want > pcap) {
      struct pollfd* grown = static_cast<struct pollfd*>(realloc(pfs, want * 2 * sizeof(struct pollfd)));
      if (!grown) Exit(1);
      pfs = grown;
      pcap = want * 2;
    }
    pfs[0] = {g_listen, POLLIN, 0};
    pfs[1] = {g_server, POLLIN, 0};                                             // a negative fd is ignored by poll
    for (size_t i = 0; i < g_count; i++) pfs[2 + i] = {g_entries[i].fd, 0, 0};  // POLLHUP only: never receive
    int r = poll(pfs, want, g_server < 0 && g_count == 0 ? 1000 : -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      Exit(1);
    }
    // Entries first (indices shift as they are removed: walk backwards).
    for (size_t i = g_count; i-- > 0;)
      if (pfs[2 + i].revents & (POLLHUP | POLLERR | POLLNVAL)) RemoveAt(i);
    if (pfs[1].revents) OnServerMessage();
    if (pfs[0].revents & POLLIN) OnAcceptable();
  }
}
