// The only Node-API surface of hako. Each Init* registers the functions of one kernel concern.
#include "cgroup_bpf.h"
#include "common.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  hako::InitSpawn(env, exports);
  hako::InitIpc(env, exports);
  hako::InitProcess(env, exports);
  hako::InitMount(env, exports);
  hako::InitCgroupBpf(env, exports);
  hako::InitNotify(env, exports);
  hako::InitPolicySocket(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(hako, Init)
