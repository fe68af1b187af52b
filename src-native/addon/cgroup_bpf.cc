// See cgroup_bpf.h. bpf(2) is called directly (no libbpf): four commands with small, stable attr layouts.
#include "cgroup_bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace hako {
namespace {

// The name marks our programs so that a re-attach (update) finds and detaches only them.
constexpr char kProgName[] = "hako_devices";
static_assert(sizeof(kProgName) <= BPF_OBJ_NAME_LEN, "program name too long");

// BPF_MAXINSNS: the limit for unprivileged-sized programs; ours are a few instructions per device rule.
constexpr size_t kMaxInsns = 4096;
constexpr size_t kInsnSize = sizeof(struct bpf_insn);

long SysBpf(int cmd, union bpf_attr* attr) {
  long rc;
  do {
    rc = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
  } while (rc < 0 && errno == EINTR);
  return rc;
}

uint64_t PtrToU64(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// BPF_PROG_LOAD. On failure sets *err and, for verifier rejections, fills *verifierLog.
int LoadProgram(const Napi::Buffer<uint8_t>& insns, const std::string& license, int* err, std::string* verifierLog) {
  auto attempt = [&](char* logBuf, uint32_t logSize) -> int {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = PtrToU64(insns.Data());
    attr.insn_cnt = static_cast<uint32_t>(insns.Length() / kInsnSize);
    attr.license = PtrToU64(license.c_str());
    memcpy(attr.prog_name, kProgName, sizeof(kProgName));
    if (logBuf != nullptr) {
      attr.log_level = 1;
      attr.log_buf = PtrToU64(logBuf);
      attr.log_size = logSize;
    }
    // The returned fd is always close-on-exec (the kernel creates bpf fds with O_CLOEXEC).
    return static_cast<int>(SysBpf(BPF_PROG_LOAD, &attr));
  };

  int fd = attempt(nullptr, 0);
  if (fd < 0 && errno == EPERM) {
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (often 64 KiB): raise it and retry once.
    struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &unlimited) == 0) fd = attempt(nullptr, 0);
  }
  if (fd >= 0) return fd;
  *err = errno;
  if (*err == EINVAL || *err == EACCES) {
    // Ask again with a log buffer so the error says why the verifier refused.
    std::vector<char> log(64 * 1024, '\0');
    int again = attempt(log.data(), static_cast<uint32_t>(log.size()));
    if (again >= 0) return again;  // cannot really happen, but then we are done
    log.back() = '\0';
    *verifierLog = log.data();
    while (!verifierLog->empty() && (verifierLog->back() == '\n' || verifierLog->back() == ' '))
      verifierLog->pop_back();
  }
  return -1;
}

// BPF_PROG_QUERY for BPF_CGROUP_DEVICE programs attached directly to the cgroup.
bool QueryAttached(int cgroupFd, std::vector<uint32_t>* ids, int* err) {
  std::vector<uint32_t> buf(64);
  for (int tries = 0; tries < 8; tries++) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = static_cast<uint32_t>(cgroupFd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = PtrToU64(buf.data());
    attr.query.prog_cnt = static_cast<uint32_t>(buf.size());
    if (SysBpf(BPF_PROG_QUERY, &attr) == 0) {
      buf.resize(attr.query.prog_cnt);
      *ids = buf;
      return true;
    }
    if (errno != ENOSPC) {
      *err = errno;
      return false;
    }
    // ENOSPC: prog_cnt now holds the real count.
    buf.resize(attr.query.prog_cnt > buf.size() ? attr.query.prog_cnt : buf.size() * 2);
  }
  *err = ENOSPC;
  return false;
}

bool ProgInfo(int progFd, struct bpf_prog_info* info, int* err) {
  memset(info, 0, sizeof(*info));
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.info.bpf_fd = static_cast<uint32_t>(progFd);
  attr.info.info_len = sizeof(*info);
  attr.info.info = PtrToU64(info);
  if (SysBpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0) {
    *err = errno;
    return false;
  }
  return true;
}

Napi::Value AttachDeviceFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsString()) {
    return ThrowType(env, "attachDeviceFilter(cgroupDir: string, insns: Buffer, license: string)");
  }
  const std::string dir = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> insns = info[1].As<Napi::Buffer<uint8_t>>();
  const std::string license = info[2].As<Napi::String>().Utf8Value();
  if (insns.Length() == 0 || insns.Length() % kInsnSize != 0 || insns.Length() / kInsnSize > kMaxInsns) {
    return ThrowErrno(env, "validate program", EINVAL,
                      "instruction buffer must be a non-empty multiple of 8 bytes, at most 4096 instructions");
  }

  UniqueFd cgroupFd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cgroupFd.get() < 0) return ThrowErrno(env, "open cgroup directory", errno, dir);

  int err = 0;
  std::string verifierLog;
  UniqueFd progFd(LoadProgram(insns, license, &err, &verifierLog));
  if (progFd.get() < 0) {
    return ThrowErrno(env, "BPF_PROG_LOAD", err,
                      verifierLog.empty() ? "BPF_PROG_TYPE_CGROUP_DEVICE" : "verifier: " + verifierLog);
  }

  struct bpf_prog_info newInfo;
  if (!ProgInfo(progFd.get(), &newInfo, &err)) return ThrowErrno(env, "BPF_OBJ_GET_INFO_BY_FD", err, "new program");

  // Attach first, detach the old ones after: with ALLOW_MULTI every attached program must allow an access,
  // so during the overlap the rules are at least as strict as either set, never absent.
  {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = static_cast<uint32_t>(cgroupFd.get());
    attr.attach_bpf_fd = static_cast<uint32_t>(progFd.get());
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (SysBpf(BPF_PROG_ATTACH, &attr) != 0) return ThrowErrno(env, "BPF_PROG_ATTACH", errno, dir);
  }

  std::vector<uint32_t> ids;
  if (!QueryAttached(cgroupFd.get(), &ids, &err)) return ThrowErrno(env, "BPF_PROG_QUERY", err, dir);
  for (uint32_t id : ids) {
    if (id == newInfo.id) continue;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = id;
    UniqueFd oldFd(static_cast<int>(SysBpf(BPF_PROG_GET_FD_BY_ID, &attr)));
    if (oldFd.get() < 0) {
      // A program we may not open (LSM policy, or it went away) cannot be ours to replace; it only adds
      // restrictions, so leaving it is safe.
      if (errno == EPERM || errno == EACCES || errno == ENOENT) continue;
      return ThrowErrno(env, "BPF_PROG_GET_FD_BY_ID", errno, "program id " + std::to_string(id));
    }
    struct bpf_prog_info oldInfo;
    if (!ProgInfo(oldFd.get(), &oldInfo, &err)) return ThrowErrno(env, "BPF_OBJ_GET_INFO_BY_FD", err, "old program");
    if (strncmp(oldInfo.name, kProgName, BPF_OBJ_NAME_LEN) != 0) continue;
    union bpf_attr det;
    memset(&det, 0, sizeof(det));
    det.target_fd = static_cast<uint32_t>(cgroupFd.get());
    det.attach_bpf_fd = static_cast<uint32_t>(oldFd.get());
    det.attach_type = BPF_CGROUP_DEVICE;
    if (SysBpf(BPF_PROG_DETACH, &det) != 0 && errno != ENOENT) {
      return ThrowErrno(env, "BPF_PROG_DETACH", errno, "old hako program id " + std::to_string(id));
    }
  }
  return Napi::Number::New(env, progFd.release());
}

}  // namespace

void InitCgroupBpf(Napi::Env env, Napi::Object exports) {
  exports.Set("attachDeviceFilter", Napi::Function::New(env, AttachDeviceFilter, "attachDeviceFilter"));
}

}  // namespace hako
