// Wire format between the addon (policy server) and hako-policy-helper, over a SOCK_SEQPACKET pair.
// One datagram per request: PolicyRequest, then the strings s[0..5] back to back (str_len bytes each,
// no terminators). SCM_RIGHTS carries exactly two fds: [0] the seccomp notify fd, [1] an O_PATH fd of
// /proc/<tid> of the caller, opened and validated (SECCOMP_IOCTL_NOTIF_ID_VALID) by the addon.
// The reply is one PolicyReply datagram. Both ends are built from this tree, so no versioning beyond magic.
#pragma once
#include <stdint.h>

namespace hako_policy {

constexpr uint32_t kMagic = 0x6861706fu;  // "hapo"
constexpr uint32_t kMaxStr = 65536;
constexpr uint32_t kMaxRequest = 4096 + 6 * kMaxStr;

enum Op : uint32_t {
  // Paths: s2 (and s1 for a bind source) as the caller sees them, resolved inside its root; s4 (s5 for the
  // bind source) the same object's path as the container sees it from its mount namespace's root, which
  // the policy allowed: the helper acts only if what it resolved is what is there.
  OP_MOUNT = 1,        // s0 fstype, s1 source, s2 target, s3 options "k=v\0k\0..."; i0 MOUNT_ATTR_*
  OP_BIND = 2,         // s1 source path, s2 target, s5 source as the container sees it; i0 MOUNT_ATTR_*, i1 recursive
  OP_UMOUNT = 3,       // s2 target; i0 umount2 flags (MNT_DETACH/MNT_EXPIRE only)
  OP_MKNOD = 4,        // s2 path; i0 mode (type|perm), i1 major, i2 minor
  OP_SETHOSTNAME = 5,  // s0 name; i0 1 = setdomainname
  OP_SETXATTR = 6,     // s2 path (or i2 = caller fd >= 0), s0 name, s1 value; i0 xattr flags, i1 follow
  OP_CHOWN = 7,        // s2 path (or i2 = caller fd >= 0); i0 uid, i1 gid (-1 keeps), i3 follow
};

enum ReqFlags : uint32_t {
  RF_JOIN_USERNS = 1,  // act as the caller's user namespace root with the caller's fsuid/fsgid
  RF_HOST_OK = 2,      // the caller may be in the helper's own (initial) user namespace (--host-callers)
};

struct PolicyRequest {
  uint32_t magic;
  uint32_t op;
  uint32_t flags;
  uint32_t timeout_ms;
  uint64_t token;
  uint64_t notif_id;
  int64_t i[6];
  uint32_t str_len[6];
  uint32_t has_str;  // bit n: s[n] present (a NULL pointer in the call is absent, not empty)
};

// Which step failed, for the audit line.
enum Stage : int32_t {
  ST_OK = 0,
  ST_PROTOCOL = 1,
  ST_PROC = 2,  // opening the caller's /proc entries (it is gone)
  ST_USERNS = 3,
  ST_CREDS = 4,
  ST_MNTNS = 5,
  ST_RESOLVE = 6,   // openat2 of a path in the caller's root
  ST_PREPARE = 7,   // fsopen/fsconfig/fsmount/open_tree
  ST_VALIDATE = 8,  // NOTIF_ID_VALID right before acting: the caller is gone
  ST_ACT = 9,       // the final syscall
  ST_TIMEOUT = 10,
  ST_CRASH = 11,
  ST_UTSNS = 12,
  ST_VERIFY = 13,  // the resolved object is not at the path the server decided on (EPERM): nothing was done
  ST_MOVED = 14,   // it was moved while the call was made: undone (EPERM), or for umount reported as done
};

struct PolicyReply {
  uint64_t token;
  int64_t ret;
  int32_t err;
  int32_t stage;
};

}  // namespace hako_policy
