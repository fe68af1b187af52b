// The routine `delete`: containerd runs it after every removal; once the shim's Delete ran there is nothing to
// clean, and the answer is runc's shim's, DeleteResponse {exit_status 137, exited_at now}.
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "launcher.h"

/** Decode mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape_mountinfo(char* s) {
  char* w = s;
  for (char* r = s; *r;) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
      r += 4;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
}

/** 1 when `path` is a mount point (its real path is a mount point of /proc/self/mountinfo), 0 when not, -1 unsure. */
static int mounted(const char* path) {
  char real[PATH_MAX];
  if (!realpath(path, real)) return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  // Lines are read whole through a buffer that keeps the unfinished tail: mountinfo is generated as it is read.
  static char buf[1 << 16];
  size_t have = 0;
  int found = 0, eof = 0;
  while (!found && !eof) {
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return -1;
    }
    if (n == 0) {
      eof = 1;
      if (have == 0) break;
      buf[have++] = '\n';
    } else {
      have += (size_t)n;
    }
    size_t start = 0;
    for (size_t i = 0; i < have && !found; i++) {
      if (buf[i] != '\n') continue;
      buf[i] = '\0';
      // Field 5 (the mount point): after four spaces.
      char* f = buf + start;
      for (int k = 0; k < 4 && f; k++) {
        f = strchr(f, ' ');
        if (f) f++;
      }
      if (f) {
        char* sp = strchr(f, ' ');
        if (sp) *sp = '\0';
        unescape_mountinfo(f);
        found = strcmp(f, real) == 0;
      }
      start = i + 1;
    }
    if (start == 0 && have == sizeof buf - 1) {  // a line longer than the buffer
      close(fd);
      return -1;
    }
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  close(fd);
  return found;
}

static size_t varint(unsigned char* out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (unsigned char)v;
  return n;
}

/** DeleteResponse {exit_status = 2: 137 (128 + SIGKILL), exited_at = 3: Timestamp {seconds = 1, nanos = 2}}. */
static int delete_response(void) {
  struct timespec now;
  if (clock_gettime(CLOCK_REALTIME, &now) < 0 || now.tv_sec < 0) return -1;
  unsigned char ts[32], msg[48];
  size_t t = 0, m = 0;
  ts[t++] = 0x08;
  t += varint(ts + t, (uint64_t)now.tv_sec);
  // Whole milliseconds, as Node's answer (a Date) has them.
  uint64_t nanos = (uint64_t)now.tv_nsec / 1000000 * 1000000;
  if (nanos) {
    ts[t++] = 0x10;
    t += varint(ts + t, nanos);
  }
  msg[m++] = 0x10;
  m += varint(msg + m, 137);
  msg[m++] = 0x1a;
  msg[m++] = (unsigned char)t;
  memcpy(msg + m, ts, t);
  return write_all(1, msg, m + t);
}

static int exists(const char* path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/** The routine delete: answered when the shim's Delete already ran; otherwise Node. */
_Noreturn void delete_call(const struct flags* f) {
  const char* bundle = f->bundle && *f->bundle ? f->bundle : ".";
  char path[PATH_MAX];
  // .hako-deleted: the shim's Delete finished (state removed, rootfs unmounted; lib/shim/task-service.ts).
  if (concat(path, sizeof path, STATE_ROOT, f->ns, "/", f->id, NULL) < 0 || exists(path)) node_shim();
  if (concat(path, sizeof path, bundle, "/.hako-deleted", NULL) < 0) node_shim();
  if (!exists(path)) {
    if (concat(path, sizeof path, bundle, "/rootfs", NULL) < 0 || mounted(path) != 0) node_shim();
  }
  if (delete_response() < 0) node_shim();
  _exit(0);
}
