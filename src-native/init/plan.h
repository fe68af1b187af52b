// The decoded setup plan. Everything lives in one arena owned by the plan, so a waiting container holds
// a single small allocation and decoding failure frees everything at once.
#pragma once
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/wire.h"

// Most fds the plan message may carry (bind sources opened by the runtime).
constexpr uint32_t kMaxPlanFds = 64;

struct MountSpec {
  char* source;
  char* dest;
  char* fstype;
  char* data;
  uint64_t flags;
  uint64_t propagation;
  uint64_t attr_set;
  uint64_t attr_clr;
  uint32_t bind;  // 0 none, 1 bind, 2 rbind
  uint32_t optional;
  bool has_idmap;
  uint32_t idmap_fd;  // user namespace fd inherited from the runtime
  uint32_t idmap_recursive;
  uint32_t copy_up;  // tmpcopyup
  bool has_source_fd;
  // The bind source as an O_PATH fd the runtime opened in this mount namespace with its own privilege (an
  // index among the plan message's fds until read_plan resolves it).
  uint32_t source_fd;
};

struct DeviceSpec {
  char* path;
  uint32_t type;
  uint32_t major, minor, mode, uid, gid;
};

struct Pair {
  char* a;
  char* b;
};

struct RlimitSpec {
  uint32_t type;
  uint64_t soft, hard;
};

struct ProcessSpec {
  char** argv;  // NULL-terminated
  size_t argc;
  char** envp;  // NULL-terminated
  size_t envc;
  char* cwd;
  uint32_t uid, gid;
  uint32_t* gids;
  size_t ngids;
  bool has_umask;
  uint32_t umask;
  bool has_caps;
  uint64_t caps[5];  // bounding effective inheritable permitted ambient
  bool nnp;
  RlimitSpec* rlimits;
  size_t nrlimits;
  bool has_seccomp;
  uint32_t seccomp_flags;
  struct sock_filter* filter;
  size_t filter_len;
  bool has_sched;
  wire::SchedRecord sched;
  bool has_ioprio;
  uint32_t ioprio;
  uint8_t* affinity;
  size_t affinity_len;
  char* apparmor;
  char* selinux;
  bool terminal;
  uint32_t preserve_fds;
};

struct Plan {
  char* rootfs;
  bool rootfs_readonly, no_pivot, new_mount_ns, debug, dev_bind_host, seccomp_early, unshare_cgroupns, new_keyring,
      loopback_up;
  bool has_propagation;
  uint64_t rootfs_propagation;
  char* hostname;
  char* domainname;
  MountSpec* mounts;
  size_t nmounts;
  char** masked;
  size_t nmasked;
  char** readonly;
  size_t nreadonly;
  DeviceSpec* devices;
  size_t ndevices;
  Pair* symlinks;
  size_t nsymlinks;
  char** cgroup_procs;
  size_t ncgroup_procs;
  Pair* sysctls;
  size_t nsysctls;
  bool time_ns;
  int64_t time_offsets[4];  // monotonic s, ns, boottime s, ns
  bool has_oom;
  int32_t oom_score_adj;
  bool has_personality;
  uint32_t personality;
  bool console;
  uint32_t rows, cols;
  uint32_t pause_mask;
  bool has_process;
  ProcessSpec process;
  void* arena;
};

// Decode a MSG_PLAN body. Returns false with *err set to a static description on malformed input.
bool decode_plan(const uint8_t* body, uint32_t len, Plan* out, const char** err);
// Decode a T_PROCESS payload (also the body of MSG_SETUP) into `out`, allocating from a fresh arena.
bool decode_process_message(const uint8_t* body, uint32_t len, ProcessSpec* out, void** arena, const char** err);
void free_arena(void* arena);
// Print a decoded plan as JSON (the round-trip tests compare it with what TypeScript encoded).
void print_plan_json(const Plan* p);
void print_process_json(const ProcessSpec* p);
