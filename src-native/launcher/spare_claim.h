// The launcher's side of the spare claim (lib/shim/spare-protocol.ts is the specification): a new group tries the
// waiting spare shim server of its containerd before it starts Node.
#ifndef HAKO_LAUNCHER_SPARE_CLAIM_H
#define HAKO_LAUNCHER_SPARE_CLAIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Claims the spare of containerd `address` for the group socket `sock` (an absolute /run/containerd/s/<hex> path),
 * sending `cwd`, args (the launcher's argv after argv[0]) and envp. On success `out` holds "unix://<sock>" (NUL
 * terminated) and the result is its length; -1 when no spare served the claim (none, taken, failed, too slow, or
 * the claim too large): the caller starts a server the normal way.
 */
int claim_spare(const char* address, const char* cwd, const char* sock, int argc, char* const* argv, char* const* envp,
                char* out, size_t out_size);

#ifdef __cplusplus
}
#endif

#endif
