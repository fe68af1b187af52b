// The enter preamble: how a process gets into an existing container (exec, a hook that runs in the
// container, an init that joins namespaces by path). See enter.cc.
#pragma once

// Parse and carry out `--enter ERR_FD [--cgroup PATH]... [--join FD NSTYPE]... [--setns PIDFD FLAGS]
// [--unshare FLAGS] [--refork] [--cwd DIR] --` at argv[1]. Returns the index of the first argument after "--" in the
// process that goes on (the one forked into the pid namespace with --refork); *err_fd is the error pipe,
// close-on-exec, still open. A failure is reported on the pipe and ends the process.
int enter(int argc, char** argv, int* err_fd);

// Report a failure on the error pipe in the addon's ChildError format and exit 127.
[[noreturn]] void enter_fail(int err_fd, int err, const char* step);
