// The per-request child of hako-policy-helper (main.cc says what it does and why), shared by its parts:
// child.cc joins the caller's namespaces and takes its credentials, verify.cc checks where the resolved
// object really is, act.cc makes the calls by family, main.cc is the helper loop that forks the children.
// Everything here runs in a single-threaded static process; a child ends in finish(), never returns.
#pragma once

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "policy_proto.h"
#include "../common/proc_status.h"

namespace hako_helper {

using namespace hako_policy;

struct Request {
  PolicyRequest h;
  const char* s[6];
  uint32_t len[6];
  bool has(int n) const { return (h.has_str >> n) & 1; }
  // Strings as C strings: each one was copied into its own NUL-terminated buffer.
};

extern int g_hostproc;  // /proc of the helper (the host's), for /proc/self/fd/N paths after joining a mntns
extern int g_nsroot;    // the caller's mount namespace's root (opened right after joining it)
extern int g_out;       // the child's end of the pipe its PolicyReply goes to
extern PolicyReply g_reply;

// child.cc
[[noreturn]] void finish(int stage, int err, int64_t ret = -1);
void read_own_namespaces();
[[noreturn]] void run_child(const Request& r, int notify_fd, int procdir);

// verify.cc
int resolve(int rootfd, const char* path, uint64_t oflags);
int resolve_parent(int rootfd, const char* path, const char** base);
bool is_at(int fd, const char* view, uint64_t oflags);
void verify_or_die(int fd, const char* view, uint64_t oflags);
int resolve_verified(int rootfd, const char* path, const char* view, uint64_t oflags);
void parent_of(const char* path, char* buf, size_t size);
void check_attached(int mnt, const char* view, const char* caller_path);

// act.cc
[[noreturn]] void act(const Request& r, int notify_fd, int rootfd, int callerfd, const proc_status::Creds& host);

}  // namespace hako_helper
