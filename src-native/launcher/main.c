/*
 * containerd-shim-hako-v2's native launcher: what bin/containerd-shim-hako-v2.sh does, with no shell and no
 * program run for the routine calls (each fork and exec costs ~1 ms on a board; the sh ran sed and sha256sum on
 * every `start` of a pod's next container). install.js puts it at bin/containerd-shim-hako-v2 wherever it was
 * built or prebuilt for this machine, and the sh there otherwise; docs/shim.md says why it is not a mode of a
 * bigger program.
 *  - `delete` after a normal removal (no hako state; .hako-deleted, or the rootfs no mount point): runc's shim's
 *    answer, DeleteResponse {exit_status 137, exited_at now}, with no Node.
 *  - `start` for a group whose server runs (its record "<pid> <start time>" matches /proc/<pid>/stat): the
 *    socket address lib/shim/address.ts computes, written to ./address and printed, with no Node.
 *  - `start` for a new group (or a dead server's): the server itself, as `setsid node ... hako-shim.js` with
 *    HAKO_SHIM_BOOT=1 (lib/shim/main.ts), reports the address on fd 3, a pipe to this program, which prints it.
 * Everything else runs `node <dir>/hako-shim.js ARGS` (dir: this program's own directory): options on stdin, odd
 * arguments, names Node's path.join would rewrite, a config.json this program cannot read exactly as JSON.parse
 * would, a server that did not report.
 *
 * Size: static musl, 30-46 KB. binding.gyp links the arm64 build with a 4 KB max page size (38 instead of 67 KB,
 * most of it alignment): arm64 kernels with 64 KB pages (rare on boards) cannot map it, and install.js, which runs
 * `--hako-launcher` before it installs a launcher, then installs the sh. CMake (Yocto) keeps the toolchain's default.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "annotations.h"
#include "sha256.h"

extern char** environ;

#define SOCKET_DIR "/run/containerd/s/"
#define RECORDS_DIR "/run/containerd/hako-shims/"
#define STATE_ROOT "/run/containerd/hako/"
/** config.json larger than this goes to Node (containerd's are a few KB, a long seccomp profile ~30 KB). */
#define MAX_CONFIG (4 << 20)

static int g_argc;
static char** g_argv;

static void say(const char* s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t w = write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int write_all(int fd, const void* buf, size_t n) {
  const char* p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/** The NUL-terminated strings up to a NULL, concatenated into buf: their length, or -1 when they do not fit. */
static int concat(char* buf, size_t size, ...) {
  va_list ap;
  va_start(ap, size);
  size_t n = 0;
  for (const char* s; (s = va_arg(ap, const char*));) {
    size_t l = strlen(s);
    if (n + l >= size) {
      va_end(ap);
      return -1;
    }
    memcpy(buf + n, s, l);
    n += l;
  }
  va_end(ap);
  buf[n] = '\0';
  return (int)n;
}

/** <directory of this program>/hako-shim.js, the Node side (bin/hako-shim.js beside the installed launcher). */
static int shim_js(char* out, size_t size) {
  ssize_t n = readlink("/proc/self/exe", out, size - 1);
  if (n <= 0 || (size_t)n >= size - 1) return -1;
  out[n] = '\0';
  char* slash = strrchr(out, '/');
  static const char name[] = "hako-shim.js";
  if (!slash || (size_t)(slash + 1 - out) + sizeof name > size) return -1;
  memcpy(slash + 1, name, sizeof name);
  return 0;
}

/** Hand the call to Node, with the arguments as given: `node <dir>/hako-shim.js ARGS`. */
static _Noreturn void node_shim(void) {
  char js[PATH_MAX];
  if (shim_js(js, sizeof js) < 0) {
    say("containerd-shim-hako-v2: cannot find hako-shim.js beside /proc/self/exe\n");
    _exit(127);
  }
  char* args[g_argc + 2];
  args[0] = "node";
  args[1] = js;
  for (int i = 1; i < g_argc; i++) args[i + 1] = g_argv[i];
  args[g_argc + 1] = NULL;
  execvp("node", args);
  say("containerd-shim-hako-v2: node: ");
  say(strerror(errno));
  say("\n");
  _exit(127);
}

struct flags {
  const char *ns, *id, *bundle, *address, *cmd;
  int debug;
};

/** `-name=value` or `--name=value`: the value, else NULL. */
static const char* inline_value(const char* arg, const char* name) {
  const char* a = arg + 1 + (arg[1] == '-');
  size_t n = strlen(name);
  return strncmp(a, name, n) == 0 && a[n] == '=' ? a + n + 1 : NULL;
}

/** -name or --name. */
static int is_flag(const char* arg, const char* name) { return strcmp(arg + 1 + (arg[1] == '-'), name) == 0; }

/** The flags containerd passes (as the sh reads them); 0, or -1 for anything else. */
static int parse_flags(int argc, char** argv, struct flags* f) {
  static const char* const names[] = {"namespace", "id", "bundle", "address", "publish-binary"};
  memset(f, 0, sizeof *f);
  const char** slots[] = {&f->ns, &f->id, &f->bundle, &f->address, NULL};
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    int matched = 0;
    if (a[0] == '-' && a[1] != '\0') {
      for (int k = 0; k < 5 && !matched; k++) {
        const char* v = inline_value(a, names[k]);
        if (v || is_flag(a, names[k])) {
          if (!v && ++i < argc) v = argv[i];
          if (v && slots[k]) *slots[k] = v;
          matched = 1;
        }
      }
      if (!matched && is_flag(a, "debug")) f->debug = matched = 1;
    } else if (strcmp(a, "start") == 0 || strcmp(a, "delete") == 0) {
      if (f->cmd) return -1;
      f->cmd = a;
      matched = 1;
    }
    if (!matched) return -1;
  }
  return 0;
}

/** A name the sh accepts: none of //, /./, /../ (with a '/' appended), space, backslash, newline. */
static int plain_name(const char* v, int append_slash) {
  size_t n = strlen(v);
  char buf[n + 2];
  memcpy(buf, v, n);
  if (append_slash) buf[n++] = '/';
  buf[n] = '\0';
  if (strstr(buf, "//") || strstr(buf, "/./") || strstr(buf, "/../") || strpbrk(buf, " \\\n")) return 0;
  return 1;
}

/** Printable ASCII only: Node reads arguments and files as UTF-8, and would hash other bytes differently. */
static int ascii(const char* s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return 0;
  return 1;
}

/**
 * A path that Node's path.join leaves as it is: no empty segment but a leading '/', no "." or ".." segment,
 * no trailing '/'. Only then is the launcher's concatenation the key Node hashes.
 */
static int normal_path(const char* p, size_t n) {
  if (n == 0) return 0;
  size_t i = p[0] == '/' ? 1 : 0;
  if (i == n) return 1;
  while (i <= n) {
    size_t j = i;
    while (j < n && p[j] != '/') j++;
    size_t seg = j - i;
    if (seg == 0) return 0;
    if ((seg == 1 && p[i] == '.') || (seg == 2 && p[i] == '.' && p[i + 1] == '.')) return 0;
    i = j + 1;
  }
  return 1;
}

/* --- delete ----------------------------------------------------------------------------------------------- */

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
  if (now.tv_nsec) {
    ts[t++] = 0x10;
    t += varint(ts + t, (uint64_t)now.tv_nsec);
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
static _Noreturn void delete_call(const struct flags* f) {
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

/* --- start ------------------------------------------------------------------------------------------------ */

/** config.json of the bundle (the working directory): its contents in a buffer of ours, or NULL (then: Node). */
static char* read_config(size_t* len) {
  // Not through a symlink, and only a regular file (a FIFO would block): anything else is for Node to judge.
  int fd = open("config.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return NULL;
  struct stat st;
  char* buf = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAX_CONFIG) buf = malloc((size_t)st.st_size + 1);
  size_t have = 0;
  while (buf) {
    ssize_t n = read(fd, buf + have, (size_t)st.st_size + 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || have + (size_t)n > (size_t)st.st_size) {  // an error, or a file that grew while read
      free(buf);
      buf = NULL;
    } else if (n == 0) {
      break;
    } else {
      have += (size_t)n;
    }
  }
  close(fd);
  *len = have;
  return buf;
}

/** Whether /proc/<pid>/stat shows start time `start` (field 22) for a process that is not a zombie. */
static int server_alive(const char* pid, const char* start) {
  char path[64], stat[1024];
  if (concat(path, sizeof path, "/proc/", pid, "/stat", NULL) < 0) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return 0;
  stat[n] = '\0';
  // The fields after comm's last ") ": state (3) ... starttime (22).
  char* p = NULL;
  for (char* q = stat; (q = strstr(q, ") ")); q++) p = q + 2;
  if (!p || *p == 'Z') return 0;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return 0;
    p++;
  }
  size_t len = strcspn(p, " \n");
  return len == strlen(start) && memcmp(p, start, len) == 0;
}

/** The record "<pid> <start time>\n" (lib/shim/server.ts), both decimal; 0 when read, -1 when not. */
static int read_record(const char* path, char* pid, char* start, size_t size) {
  char buf[128];
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* p = buf;
  size_t a = strspn(p, "0123456789");
  if (a == 0 || a >= size || p[a] != ' ') return -1;
  memcpy(pid, p, a);
  pid[a] = '\0';
  p += a + 1;
  size_t b = strspn(p, "0123456789");
  if (b == 0 || b >= size || (p[b] != '\n' && p[b] != '\0')) return -1;
  memcpy(start, p, b);
  start[b] = '\0';
  return 0;
}

/** O_CLOEXEC fd `fd` moved to `target` for exec (dup2 of an fd onto itself would keep FD_CLOEXEC). */
static int place_fd(int fd, int target) {
  if (fd == target) return fcntl(fd, F_SETFD, 0);
  return dup2(fd, target) < 0 ? -1 : 0;
}

/**
 * A new group: start the server (HAKO_SHIM_BOOT, lib/shim/main.ts), in its own session, its stderr the log FIFO
 * containerd opened (else /dev/null), fd 3 a pipe on which it reports its address once it listens. Prints that
 * address; anything else goes to Node's `start`.
 */
static _Noreturn void boot_server(const struct flags* f, const char* sock) {
  char js[PATH_MAX];
  if (shim_js(js, sizeof js) < 0) node_shim();
  char sock_env[sizeof "HAKO_SHIM_SOCKET=" + 128];
  if (concat(sock_env, sizeof sock_env, "HAKO_SHIM_SOCKET=", sock, NULL) < 0) node_shim();
  size_t nenv = 0;
  while (environ[nenv]) nenv++;
  char* envp[nenv + 3];
  size_t e = 0;
  for (size_t i = 0; i < nenv; i++)
    if (strncmp(environ[i], "HAKO_SHIM_SOCKET=", 17) != 0 && strncmp(environ[i], "HAKO_SHIM_BOOT=", 15) != 0)
      envp[e++] = environ[i];
  envp[e++] = sock_env;
  envp[e++] = "HAKO_SHIM_BOOT=1";
  envp[e] = NULL;
  char* args[] = {"node",
                  "--max-semi-space-size=1",
                  js,
                  "-namespace",
                  (char*)f->ns,
                  "-id",
                  (char*)f->id,
                  "-address",
                  (char*)f->address,
                  f->debug ? "-debug" : NULL,
                  NULL};

  // containerd opens the log FIFO for reading before start; without a reader, the server logs nowhere.
  int log = -1;
  struct stat st;
  if (stat("log", &st) == 0 && S_ISFIFO(st.st_mode)) {
    log = open("log", O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
    if (log >= 0 && fcntl(log, F_SETFL, O_WRONLY | O_APPEND) < 0) node_shim();
  }
  if (log < 0) log = open("/dev/null", O_WRONLY | O_CLOEXEC);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  int p[2];
  if (log < 0 || null < 0 || pipe2(p, O_CLOEXEC) < 0) node_shim();
  // Above the four targets, so no placement overwrites a source still to be placed.
  int hi_null = fcntl(null, F_DUPFD_CLOEXEC, 10), hi_log = fcntl(log, F_DUPFD_CLOEXEC, 10);
  int hi_w = fcntl(p[1], F_DUPFD_CLOEXEC, 10);
  if (hi_null < 0 || hi_log < 0 || hi_w < 0) node_shim();
  pid_t pid = fork();
  if (pid < 0) node_shim();
  if (pid == 0) {
    if (setsid() < 0 || place_fd(hi_null, 0) < 0 || place_fd(hi_null, 1) < 0 || place_fd(hi_log, 2) < 0 ||
        place_fd(hi_w, 3) < 0)
      _exit(127);
    execvpe("node", args, envp);
    _exit(127);
  }
  close(p[1]);
  close(hi_w);
  // The address, then EOF once the server closed fd 3 (it listens by then).
  char out[256];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(p[0], out + have, sizeof out - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || (have += (size_t)n) == sizeof out - 1) break;
  }
  out[have] = '\0';
  // Reaped if it already failed; a server that runs is left to be adopted (it is in its own session).
  waitpid(pid, NULL, WNOHANG);
  while (have && out[have - 1] == '\n') out[--have] = '\0';
  if (strncmp(out, "unix://", 7) != 0 || write_all(1, out, have) < 0) node_shim();
  _exit(0);
}

static _Noreturn void start_call(const struct flags* f) {
  // Options on stdin (a pipe, not /dev/null) can change the grouping: Node reads them.
  struct stat in, null;
  if (fstat(0, &in) < 0 || stat("/dev/null", &null) < 0 || in.st_dev != null.st_dev || in.st_ino != null.st_ino)
    node_shim();
  if (!f->address || !*f->address) node_shim();
  size_t len;
  char* config = read_config(&len);
  struct json_span group, sandbox;
  if (!config || read_group_annotations(config, len, &group, &sandbox) < 0) node_shim();
  // The group: runc's annotation, else the CRI sandbox's, else the container (lib/shim/address.ts groupOf).
  if (!group.ptr || !group.len) group = sandbox;
  if (!group.ptr || !group.len) group = (struct json_span){f->id, strlen(f->id)};
  // The key Node hashes: path.join(address, namespace, group), when joining them changes nothing.
  size_t alen = strlen(f->address);
  if (alen > 1 && f->address[alen - 1] == '/') alen--;
  size_t nlen = strlen(f->ns), klen = alen + 1 + nlen + 1 + group.len;
  char key[klen + 1];
  memcpy(key, f->address, alen);
  key[alen] = '/';
  memcpy(key + alen + 1, f->ns, nlen);
  key[alen + 1 + nlen] = '/';
  memcpy(key + alen + 2 + nlen, group.ptr, group.len);
  key[klen] = '\0';
  if (!ascii(key, klen) || !normal_path(key, klen)) node_shim();
  char hex[65];
  sha256_hex((const unsigned char*)key, klen, hex);
  free(config);

  char sock[sizeof SOCKET_DIR + 64], record[sizeof RECORDS_DIR + 64 + 4], pid[24], start[24];
  memcpy(sock, SOCKET_DIR, sizeof SOCKET_DIR - 1);
  memcpy(sock + sizeof SOCKET_DIR - 1, hex, 65);
  memcpy(record, RECORDS_DIR, sizeof RECORDS_DIR - 1);
  memcpy(record + sizeof RECORDS_DIR - 1, hex, 64);
  memcpy(record + sizeof RECORDS_DIR - 1 + 64, ".pid", 5);
  // The record is "<pid> <start time>" (lib/shim/server.ts): the server is alive while /proc/<pid>/stat shows that
  // start time, which no later process of that pid has, and is no zombie.
  struct stat st;
  if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && read_record(record, pid, start, sizeof pid) == 0 &&
      server_alive(pid, start)) {
    char address[sizeof "unix://" + sizeof sock];
    int n = concat(address, sizeof address, "unix://", sock, (char*)NULL);
    // One write(2) of a short line, no newline: containerd reads it only when it restarts, long after this.
    int fd = open("address", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, address, (size_t)n) < 0 || close(fd) < 0) node_shim();
    if (write_all(1, address, (size_t)n) < 0) _exit(1);
    _exit(0);
  }
  boot_server(f, sock);
}

int main(int argc, char** argv) {
  g_argc = argc;
  g_argv = argv;
  // install.js's check that this build runs here before it puts it at bin/containerd-shim-hako-v2.
  if (argc == 2 && !strcmp(argv[1], "--hako-launcher")) _exit(write_all(1, "hako-shim-launcher\n", 19) < 0);
  struct flags f;
  if (argc < 1 || parse_flags(argc, argv, &f) < 0 || !f.ns || !*f.ns || !f.id || !*f.id) node_shim();
  // Names that path.join would rewrite, or that need escaping in mountinfo, and ids with a '/': Node decides.
  if (!plain_name(f.ns, 0) || !plain_name(f.id, 0) || !plain_name(f.address ? f.address : "", 1) ||
      !plain_name(f.bundle ? f.bundle : "", 1) || strchr(f.ns, '/') || strchr(f.id, '/') || !strcmp(f.ns, ".") ||
      !strcmp(f.ns, "..") || !strcmp(f.id, ".") || !strcmp(f.id, ".."))
    node_shim();
  if (f.cmd && !strcmp(f.cmd, "delete")) delete_call(&f);
  if (f.cmd && !strcmp(f.cmd, "start")) start_call(&f);
  node_shim();
}
