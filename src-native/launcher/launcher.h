// What the launcher's parts share (main.c: arguments and the way to Node; delete.c; start.c).
#ifndef HAKO_LAUNCHER_H
#define HAKO_LAUNCHER_H

#include <stddef.h>

#define SOCKET_DIR "/run/containerd/s/"
#define RECORDS_DIR "/run/containerd/hako-shims/"
#define STATE_ROOT "/run/containerd/hako/"

/** The flags containerd passes, as the sh reads them (NULL when not given). */
struct flags {
  const char *ns, *id, *bundle, *address, *cmd;
  int debug;
};

/** main()'s arguments (the spare claim sends them on, start.c). */
extern int g_argc;
extern char** g_argv;

/** Hand the call to Node, with the arguments as given: `node <dir>/hako-shim.js ARGS`. */
_Noreturn void node_shim(void);
/** <directory of this program>/hako-shim.js, the Node side (bin/hako-shim.js beside the installed launcher). */
int shim_js(char* out, size_t size);
int write_all(int fd, const void* buf, size_t n);
/** The NUL-terminated strings up to a NULL, concatenated into buf: their length, or -1 when they do not fit. */
int concat(char* buf, size_t size, ...);

/** The routine delete (delete.c): answered when the shim's Delete already ran; otherwise Node. */
_Noreturn void delete_call(const struct flags* f);
/** start (start.c): a running group's address, or its new server's; otherwise Node. */
_Noreturn void start_call(const struct flags* f);

#endif
