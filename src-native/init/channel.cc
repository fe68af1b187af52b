#include "channel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/scm.h"
#include "../common/syscalls.h"

namespace {
int g_channel = -1;
bool g_stream = false;
bool g_debug = false;

void put_record(uint8_t* buf, size_t cap, size_t* off, uint32_t tag, const void* data, uint32_t len) {
  if (*off + 8 + len > cap) len = static_cast<uint32_t>(cap - *off - 8);  // truncate a long message
  memcpy(buf + *off, &tag, 4);
  memcpy(buf + *off + 4, &len, 4);
  memcpy(buf + *off + 8, data, len);
  *off += 8 + len;
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
}  // namespace

void channel_set(int fd) { g_channel = fd; }
int channel_get() { return g_channel; }
bool channel_is_stream() { return g_stream; }
void channel_set_stream(bool stream) { g_stream = stream; }
void set_debug(bool on) { g_debug = on; }

bool send_msg(uint32_t type, uint32_t tag1, const char* s1, uint32_t tag2, const char* s2, int fd) {
  uint8_t buf[8192];
  size_t off = wire::kHeaderSize;
  if (s1) put_record(buf, sizeof(buf) - 1024, &off, tag1, s1, static_cast<uint32_t>(strlen(s1)));
  if (s2) put_record(buf, sizeof(buf), &off, tag2, s2, static_cast<uint32_t>(strlen(s2)));
  uint32_t body = static_cast<uint32_t>(off - wire::kHeaderSize);
  memcpy(buf, &wire::kMagic, 4);
  memcpy(buf + 4, &type, 4);
  memcpy(buf + 8, &body, 4);
  if (g_channel < 0) return false;
  if (fd < 0 && g_stream) return write_all(g_channel, buf, off);
  struct iovec iov = {buf, off};
  ssize_t w = scm::send_fds(g_channel, &iov, 1, &fd, fd >= 0 ? 1 : 0, MSG_NOSIGNAL);
  if (w < 0) return false;
  if (static_cast<size_t>(w) == off) return true;
  // A stream socket may take the message in parts: the fd went with the first part.
  return write_all(g_channel, buf + w, off - static_cast<size_t>(w));
}

static void vreport(const char* step, int err, const char* fmt, va_list ap) {
  char msg[4096];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  uint8_t buf[8192];
  size_t off = wire::kHeaderSize;
  uint32_t e = static_cast<uint32_t>(err);
  put_record(buf, sizeof(buf), &off, wire::E_ERRNO, &e, 4);
  put_record(buf, sizeof(buf), &off, wire::E_STEP, step, static_cast<uint32_t>(strlen(step)));
  put_record(buf, sizeof(buf), &off, wire::E_MESSAGE, msg, static_cast<uint32_t>(strlen(msg)));
  uint32_t type = wire::MSG_ERROR, body = static_cast<uint32_t>(off - wire::kHeaderSize);
  memcpy(buf, &wire::kMagic, 4);
  memcpy(buf + 4, &type, 4);
  memcpy(buf + 8, &body, 4);
  if (g_channel < 0 || !write_all(g_channel, buf, off)) {
    // Nobody is listening: stderr is the last place this can go.
    dprintf(2, "hako-init: %s: %s\n", step, msg);
  }
}

const char* errtext(int err) {
  static char bufs[4][128];
  static unsigned next;
  char* b = bufs[next++ % 4];
  snprintf(b, sizeof(bufs[0]), "%s", strerror(err));
  if (b[0] >= 'A' && b[0] <= 'Z' && !(b[1] >= 'A' && b[1] <= 'Z')) b[0] = static_cast<char>(b[0] - 'A' + 'a');
  return b;
}

void report_error(const char* step, int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(step, err, fmt, ap);
  va_end(ap);
}

void fail(const char* step, int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(step, err, fmt, ap);
  va_end(ap);
  die(127);
}

void die(int status) {
  // Under the container's seccomp filter (loaded just before the exec) every syscall here may be refused: none
  // is retried (glibc's _exit retries exit_group for ever: an init spinning at 100% CPU). Raw syscalls, in
  // order: exit_group, exit, SIGKILL to itself (ignored when it is pid 1 of a pid namespace, as a signal from
  // inside), then block in rt_sigsuspend (pause is not on every arch) until the runtime kills it. If even that
  // is refused, a trap: the kernel forces SIGILL, which kills (a pid namespace's init too) as nothing here
  // handles it; never a spin.
  syscall(SYS_exit_group, status);
  syscall(SYS_exit, status);
  long self = syscall(SYS_getpid);
  if (self > 0) syscall(SYS_kill, self, SIGKILL);  // never 0 or -1: a group, or everything
  // Still here: close every fd before blocking, so the runtime's start reads EOF on the control connection at
  // once, finds this process still running hako-init (no exec) and reports it, instead of waiting its timeout.
  if (syscall(SYS_close_range, 0, ~0U, 0) < 0)
    for (int fd = 0; fd < 1024; fd++) syscall(SYS_close, fd);
  sigset_t none;
  sigemptyset(&none);
  while (syscall(SYS_rt_sigsuspend, &none, _NSIG / 8) < 0 && errno == EINTR) {
  }
  __builtin_trap();
}

void step_done(const char* name) {
  if (g_debug) send_msg(wire::MSG_STEP, wire::R_NAME, name);
}

uint8_t* read_message_fds(int fd, size_t* len, int* fds, size_t max, size_t* nfds) {
  *nfds = 0;
  // Seqpacket: peek the size, then take the whole datagram.
  ssize_t n;
  do n = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    if (n == 0) errno = 0;
    return nullptr;
  }
  if (static_cast<size_t>(n) > wire::kMaxMessage + wire::kHeaderSize) {
    errno = EMSGSIZE;
    return nullptr;
  }
  uint8_t* buf = static_cast<uint8_t*>(malloc(static_cast<size_t>(n)));
  if (!buf) return nullptr;
  struct iovec iov = {buf, static_cast<size_t>(n)};
  // More fds than `max` (scm.h: all closed) fails with EMSGSIZE.
  ssize_t r = scm::recv_fds(fd, &iov, 1, fds, max, nfds, 0);
  if (r != n) {
    for (size_t i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    free(buf);
    if (r >= 0) errno = EPROTO;
    return nullptr;
  }
  *len = static_cast<size_t>(n);
  return buf;
}

uint8_t* read_message(int fd, bool stream, size_t* len) {
  if (!stream) {
    size_t nfds;
    return read_message_fds(fd, len, nullptr, 0, &nfds);  // a message with fds is refused (EMSGSIZE)
  }
  uint8_t hdr[wire::kHeaderSize];
  size_t got = 0;
  while (got < sizeof(hdr)) {
    ssize_t r = read(fd, hdr + got, sizeof(hdr) - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = got ? EPROTO : 0;
      return nullptr;
    }
    got += static_cast<size_t>(r);
  }
  uint32_t magic, body;
  memcpy(&magic, hdr, 4);
  memcpy(&body, hdr + 8, 4);
  if (magic != wire::kMagic || body > wire::kMaxMessage) {
    errno = EPROTO;
    return nullptr;
  }
  size_t total = wire::kHeaderSize + body;
  uint8_t* buf = static_cast<uint8_t*>(malloc(total));
  if (!buf) return nullptr;
  memcpy(buf, hdr, sizeof(hdr));
  while (got < total) {
    ssize_t r = read(fd, buf + got, total - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      free(buf);
      errno = r == 0 ? EPROTO : errno;
      return nullptr;
    }
    got += static_cast<size_t>(r);
  }
  *len = total;
  return buf;
}
