// The spare claim (lib/shim/spare-protocol.ts): "HSPR", u32 LE length, NUL-terminated strings; the answer is
// "unix://<sock>" then EOF. Blocking calls with a receive timeout: the launcher is a short-lived program of its own.
#define _GNU_SOURCE

#include "spare_claim.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sha256.h"

#define SPARE_DIR "/run/containerd/hako-shims/spare-"
/** MAX_CLAIM_BYTES of lib/shim/spare-protocol.ts. */
#define MAX_CLAIM (256 * 1024)
/** How long a spare may take to answer: one still booting answers once it runs (about a Node start). */
#define ANSWER_TIMEOUT_S 5

/** Appends s and its NUL at *at if it fits below MAX_CLAIM; -1 otherwise. */
static int put(char* buf, size_t* at, const char* s) {
  size_t n = strlen(s) + 1;
  if (*at + n > 8 + MAX_CLAIM) return -1;
  memcpy(buf + *at, s, n);
  *at += n;
  return 0;
}

static int send_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/** The claim message, malloc'ed; its length in *len. NULL when it would be over MAX_CLAIM. */
static char* build_claim(const char* cwd, const char* sock, int argc, char* const* argv, char* const* envp,
                         size_t* len) {
  char* buf = malloc(8 + MAX_CLAIM);
  if (!buf) return NULL;
  size_t at = 8;
  char num[16];
  int envc = 0;
  while (envp[envc]) envc++;
  int ok = put(buf, &at, cwd) == 0 && put(buf, &at, sock) == 0;
  snprintf(num, sizeof num, "%d", argc);
  ok = ok && put(buf, &at, num) == 0;
  for (int i = 0; ok && i < argc; i++) ok = put(buf, &at, argv[i]) == 0;
  snprintf(num, sizeof num, "%d", envc);
  ok = ok && put(buf, &at, num) == 0;
  for (int i = 0; ok && i < envc; i++) ok = put(buf, &at, envp[i]) == 0;
  if (!ok) {
    free(buf);
    return NULL;
  }
  uint32_t n = (uint32_t)(at - 8);
  memcpy(buf, "HSPR", 4);
  for (int i = 0; i < 4; i++) buf[4 + i] = (char)((n >> (8 * i)) & 0xff);
  *len = at;
  return buf;
}

int claim_spare(const char* address, const char* cwd, const char* sock, int argc, char* const* argv, char* const* envp,
                char* out, size_t out_size) {
  char hex[65];
  sha256_hex((const unsigned char*)address, strlen(address), hex);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s%.32s.sock", SPARE_DIR, hex);
  if (n < 0 || (size_t)n >= sizeof sa.sun_path) return -1;
  size_t expected = sizeof "unix://" - 1 + strlen(sock);
  if (expected + 1 > out_size) return -1;
  size_t len;
  char* claim = build_claim(cwd, sock, argc, argv, envp, &len);
  if (!claim) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
  int r;
  do r = fd < 0 ? -1 : connect(fd, (struct sockaddr*)&sa, sizeof sa);
  while (r < 0 && errno == EINTR);
  if (r < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 || send_all(fd, claim, len) < 0) {
    free(claim);
    if (fd >= 0) close(fd);
    return -1;
  }
  free(claim);
  // The answer, then EOF (a timeout or an error is no answer; so is anything longer).
  size_t have = 0;
  int eof = 0;
  for (;;) {
    ssize_t k = recv(fd, out + have, out_size - 1 - have, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k == 0) eof = 1;
    if (k <= 0) break;
    have += (size_t)k;
    if (have > expected || have == out_size - 1) break;
  }
  close(fd);
  out[have] = '\0';
  if (!eof || have != expected || strncmp(out, "unix://", 7) != 0 || strcmp(out + 7, sock) != 0) return -1;
  return (int)have;
}
