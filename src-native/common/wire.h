// The runtime <-> init helper wire format, defined once. lib/plan/wire.ts mirrors these numbers.
//
// A message is a 12-byte header {u32 magic, u32 type, u32 length} followed by `length` bytes of records.
// A record is {u32 tag, u32 length, payload}. Integers are host byte order (both ends run on one machine).
// Nested structures (a mount, a device, the process) are records whose payload is itself a record list.
// The decoder never trusts a length: every read is bounds-checked, so a malformed message is an error,
// never an out-of-bounds access (fuzzed under ASan/UBSan by test/wire.test.ts).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace wire {

constexpr uint32_t kMagic = 0x314f4b48;  // "HKO1"
constexpr uint32_t kHeaderSize = 12;
constexpr uint32_t kMaxMessage = 4u << 20;

enum MsgType : uint32_t {
  // runtime -> init
  MSG_PLAN = 1,      // container configuration + default process
  MSG_CONTINUE = 2,  // resume after a pause point (uid maps, hooks)
  MSG_START = 3,     // run the configured process (control socket)
  MSG_SETUP = 4,     // run the process given in this message (control socket)
  // init -> runtime
  MSG_READY = 10,  // configuration applied; waiting for start
  MSG_ERROR = 11,  // E_ERRNO, E_STEP, E_MESSAGE
  MSG_PAUSE = 12,  // R_POINT: waiting at a pause point for MSG_CONTINUE
  MSG_FD = 13,     // R_NAME, one fd in SCM_RIGHTS (pty master, seccomp listener)
  MSG_STEP = 14,   // R_NAME: a setup step finished (debug plans only)
};

enum Tag : uint32_t {
  // container-level records of MSG_PLAN
  T_ROOTFS = 1,              // str: absolute host path of the rootfs
  T_ROOTFS_READONLY = 2,     // u32
  T_NO_PIVOT = 3,            // u32
  T_ROOTFS_PROPAGATION = 4,  // u64 mount flags
  T_HOSTNAME = 5,            // str
  T_DOMAINNAME = 6,          // str
  T_MOUNT = 7,               // nested M_*
  T_MASKED_PATH = 8,         // str
  T_READONLY_PATH = 9,       // str
  T_DEVICE = 10,             // nested D_*
  T_SYMLINK = 11,            // nested K_A (target), K_B (link path)
  T_SYSCTL = 12,             // nested K_A (key), K_B (value)
  T_OOM_SCORE_ADJ = 13,      // i32
  T_PERSONALITY = 14,        // u32
  T_CONSOLE = 15,            // nested K_A (u32 rows), K_B (u32 cols): create a pty, send its master
  T_DEBUG = 16,              // u32: report every step
  T_PAUSE = 17,              // u32 point: stop there and wait for MSG_CONTINUE
  T_NEW_MOUNT_NS = 18,       // u32: the mount namespace is new: build the rootfs
  T_PROCESS = 19,            // nested P_*
  T_DEV_BIND_HOST = 20,      // u32: bind devices from the host instead of mknod (user namespace)
  T_SECCOMP_EARLY = 21,      // u32: load the process filter at create (listener handoff), not at start
  T_UNSHARE_CGROUPNS = 22,   // u32: unshare the cgroup namespace once placed in the container's cgroup
  T_TIME_NS = 23,            // i64[4]: new time namespace with monotonic s, ns, boottime s, ns offsets
  T_NEW_KEYRING = 25,        // u32: join a new anonymous session keyring (keys are not shared with the host)
  T_CGROUP_PROCS = 24,       // str: a cgroup.procs file the init joins itself (writing "0") before anything else
  T_LOOPBACK_UP = 26,        // u32: the network namespace is new: bring its loopback interface up

  // mount
  M_SOURCE = 100,
  M_DEST = 101,
  M_FSTYPE = 102,
  M_FLAGS = 103 /* u64 */,
  M_DATA = 104,
  M_PROPAGATION = 105 /* u64 */,
  M_BIND = 106 /* u32: 1 bind, 2 rbind */,
  M_ATTR_SET = 107 /* u64 */,
  M_ATTR_CLR = 108 /* u64 */,
  M_OPTIONAL = 109 /* u32: a missing source is skipped */,
  M_IDMAP = 110 /* u32 fd of a user namespace: an idmapped bind mount */,
  M_IDMAP_RECURSIVE = 111 /* u32 */,
  M_COPYUP = 112 /* u32: a tmpfs starts with a copy of the directory it covers (tmpcopyup) */,
  M_SOURCE_FD = 113 /* u32: index, among the fds sent with the plan, of the bind source opened by the runtime */,

  // device
  D_PATH = 120,
  D_TYPE = 121 /* u32 'c' 'b' 'p' */,
  D_MAJOR = 122,
  D_MINOR = 123,
  D_MODE = 124,
  D_UID = 125,
  D_GID = 126,

  // pairs
  K_A = 130,
  K_B = 131,

  // process
  P_ARG = 200,
  P_ENV = 201,
  P_CWD = 202,
  P_UID = 203,
  P_GID = 204,
  P_GIDS = 205 /* u32[] */,
  P_UMASK = 206,
  P_CAPS = 207 /* u64[5]: bounding effective inheritable permitted ambient */,
  P_NNP = 208,
  P_RLIMIT = 209 /* u32 type, u32 0, u64 soft, u64 hard */,
  P_SECCOMP = 210 /* u32 flags, u32 0, sock_filter[] */,
  P_SCHED = 211 /* SchedRecord */,
  P_IOPRIO = 212 /* u32 */,
  P_AFFINITY = 213 /* cpu mask bytes */,
  P_APPARMOR = 214,
  P_SELINUX = 215,
  P_TERMINAL = 216 /* u32 */,
  P_PRESERVE_FDS = 217 /* u32 */,

  // error / report
  E_ERRNO = 300,
  E_STEP = 301,
  E_MESSAGE = 302,
  R_NAME = 310,
  R_POINT = 311,
};

enum PausePoint : uint32_t {
  PAUSE_PRE_PIVOT = 1,  // mounts done, before pivot_root: prestart/createRuntime/createContainer hooks
};

struct SchedRecord {
  uint32_t policy;
  int32_t nice;
  uint32_t priority;
  uint32_t pad;
  uint64_t flags;
  uint64_t runtime;
  uint64_t deadline;
  uint64_t period;
};

// A bounds-checked view of a record list.
struct Reader {
  const uint8_t* p;
  size_t n;
  size_t off = 0;
  bool bad = false;

  Reader(const void* data, size_t len) : p(static_cast<const uint8_t*>(data)), n(len) {}

  // Next record; false at the end or on a malformed record (then `bad` is set).
  bool next(uint32_t* tag, const uint8_t** payload, uint32_t* len) {
    if (off == n) return false;
    if (n - off < 8) {
      bad = true;
      return false;
    }
    uint32_t t, l;
    memcpy(&t, p + off, 4);
    memcpy(&l, p + off + 4, 4);
    if (l > n - off - 8) {
      bad = true;
      return false;
    }
    *tag = t;
    *payload = p + off + 8;
    *len = l;
    off += 8 + static_cast<size_t>(l);
    return true;
  }
};

inline bool as_u32(const uint8_t* p, uint32_t len, uint32_t* out) {
  if (len != 4) return false;
  memcpy(out, p, 4);
  return true;
}
inline bool as_u64(const uint8_t* p, uint32_t len, uint64_t* out) {
  if (len != 8) return false;
  memcpy(out, p, 8);
  return true;
}
// Strings travel without a terminator and must not contain NUL (they become C strings).
inline bool valid_str(const uint8_t* p, uint32_t len) { return memchr(p, 0, len) == nullptr && len < 65536; }

// Parse and check a message header. On success *type/*body/*body_len describe the records.
inline bool parse_header(const uint8_t* buf, size_t len, uint32_t* type, const uint8_t** body, uint32_t* body_len) {
  if (len < kHeaderSize) return false;
  uint32_t magic, t, l;
  memcpy(&magic, buf, 4);
  memcpy(&t, buf + 4, 4);
  memcpy(&l, buf + 8, 4);
  if (magic != kMagic || l != len - kHeaderSize || l > kMaxMessage) return false;
  *type = t;
  *body = buf + kHeaderSize;
  *body_len = l;
  return true;
}

}  // namespace wire
