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
 *    With HAKO_SHIM_SPARE=1, the spare server of this containerd takes the group first, if one waits
 *    (spare_claim.c, lib/shim/spare-protocol.ts).
 * Everything else runs `node <dir>/hako-shim.js ARGS` (dir: this program's own directory): options on stdin, odd
 * arguments, names Node's path.join would rewrite, a config.json this program cannot read exactly as JSON.parse
 * would, a server that did not report.
 *
 * Size: static musl, 30-46 KB. binding.gyp links the arm64 build with a 4 KB max page size (38 instead of 67 KB,
 * most of it alignment): arm64 kernels with 64 KB pages (rare on boards) cannot map it, and install.js, which runs
 * `--hako-launcher` before it installs a launcher, then installs the sh. CMake (Yocto) keeps the toolchain's default.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "launcher.h"

int g_argc;
char** g_argv;

static void say(const char* s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t w = write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

int write_all(int fd, const void* buf, size_t n) {
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
int concat(char* buf, size_t size, ...) {
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
int shim_js(char* out, size_t size) {
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
_Noreturn void node_shim(void) {
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
