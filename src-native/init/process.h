// The process-level steps: the last things done before the container process is executed.
#pragma once
#include "plan.h"

// Find argv[0] the way execvp would, using PATH from the process environment. Writes the path into
// `out`. Returns 0 or an errno, with a runc-style message in `msg`.
int resolve_executable(const ProcessSpec* p, char* out, size_t outlen, char* msg, size_t msglen);

// Apply the process-level steps and exec. Returns only if a step failed before anything irreversible
// happened (the container keeps waiting; the error has been reported). Once an irreversible step has run,
// a failure ends the helper.
void exec_process(const ProcessSpec* p, int terminal_fd);

// Load a seccomp filter (used early when its listener fd must reach the runtime at create).
// Returns the listener fd (or -1 when the filter has no listener); fails the helper on error.
int load_seccomp(const ProcessSpec* p);
