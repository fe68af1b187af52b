// SCM_RIGHTS fd passing over unix sockets, written once for the addon (ipc, notify), the init, the policy
// helper and the fd keeper.
//
// One rule for receiving: truncated control data (MSG_CTRUNC: the sender passed more fds than there was
// room for, and the kernel closed the rest), or more fds than the caller allows, is an error. Every fd that
// did arrive is then closed, none is handed out, and the receive fails with EMSGSIZE. Received fds are
// close-on-exec from the start (MSG_CMSG_CLOEXEC), so none can leak into a process executed meanwhile.
// Whether the data was truncated (MSG_TRUNC) is the caller's to judge: it gets the message flags.
//
// Plain C library calls on caller-provided and stack memory only: no allocation, no C++ runtime, usable from
// the static helpers (musl) and from the init's pre-exec path.
#pragma once
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace scm {

// The kernel's limit of fds in one message (SCM_MAX_FD).
constexpr size_t kMaxFds = 253;

// One sendmsg of the `iovlen` buffers with `nfds` fds (0: none) as one SCM_RIGHTS message; EINTR is
// retried. Returns what sendmsg returns (a stream socket may take only part of the data: the fds went with
// that first part).
inline ssize_t send_fds(int sock, const struct iovec* iov, size_t iovlen, const int* fds, size_t nfds, int flags) {
  if (nfds > kMaxFds) {
    errno = EINVAL;
    return -1;
  }
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = const_cast<struct iovec*>(iov);
  mh.msg_iovlen = iovlen;
  if (nfds > 0) {
    size_t space = CMSG_SPACE(sizeof(int) * nfds);
    memset(cbuf, 0, space);
    mh.msg_control = cbuf;
    mh.msg_controllen = space;
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t w;
  do w = sendmsg(sock, &mh, flags);
  while (w < 0 && errno == EINTR);
  return w;
}

// One recvmsg into the `iovlen` buffers, taking up to `max` fds (at most kMaxFds) into fds[], close-on-exec;
// *nfds says how many came (0 unless the result is >= 0). `flags` are added to MSG_CMSG_CLOEXEC; EINTR is
// retried. Returns what recvmsg returns (0: end of stream, or an empty datagram), or -1 with EMSGSIZE when
// the fds did not fit (see the top of the file: then none is kept). *msg_flags, when given, gets the
// message's flags (MSG_TRUNC).
inline ssize_t recv_fds(int sock, struct iovec* iov, size_t iovlen, int* fds, size_t max, size_t* nfds, int flags,
                        int* msg_flags = nullptr) {
  *nfds = 0;
  if (msg_flags) *msg_flags = 0;
  if (max > kMaxFds) max = kMaxFds;
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = iovlen;
  if (max > 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * max);
  }
  ssize_t n;
  do n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  // CMSG_SPACE rounds up: the buffer may hold one fd more than `max`, which counts as too many.
  bool too_many = (mh.msg_flags & MSG_CTRUNC) != 0;
  for (struct cmsghdr* c = max > 0 ? CMSG_FIRSTHDR(&mh) : nullptr; c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int f;
      memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*nfds < max) {
        fds[(*nfds)++] = f;
      } else {
        close(f);
        too_many = true;
      }
    }
  }
  if (msg_flags) *msg_flags = mh.msg_flags;
  if (too_many) {
    for (size_t i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

}  // namespace scm
