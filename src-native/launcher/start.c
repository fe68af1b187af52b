// `start`: the group's socket address as lib/shim/address.ts computes it, answered alone when the group's server
// runs, else by a waiting spare server (HAKO_SHIM_SPARE=1, spare_claim.c) or by booting that server (HAKO_SHIM_BOOT);
// what cannot be read with certainty goes to Node.
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "annotations.h"
#include "launcher.h"
#include "spare_claim.h"
#include "sha256.h"

extern char** environ;

/** config.json larger than this goes to Node (containerd's are a few KB, a long seccomp profile ~30 KB). */
#define MAX_CONFIG (4 << 20)

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
  // HAKO_SHIM_SPARE=1: the spare server of this containerd, if one waits, takes the group (lib/shim/spare.ts);
  // no answer from it and the server boots as without one.
  const char* spare = getenv("HAKO_SHIM_SPARE");
  char cwd[PATH_MAX], claimed[sizeof "unix://" + PATH_MAX];
  if (spare && !strcmp(spare, "1") && getcwd(cwd, sizeof cwd) &&
      claim_spare(f->address, cwd, sock, g_argc - 1, g_argv + 1, environ, claimed, sizeof claimed) > 0)
    _exit(write_all(1, claimed, strlen(claimed)) < 0);
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

_Noreturn void start_call(const struct flags* f) {
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
