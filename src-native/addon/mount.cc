// mount(2) and umount2(2) for the containerd shim's rootfs (lib/shim/rootfs.ts): containerd hands the shim the
// snapshot's mounts with Create, and spawning util-linux mount(8) for each took several ms of every Create. Both
// calls are synchronous: an overlay or bind mount is one short syscall, not a wait.
#include <sys/mount.h>

#include "common.h"

namespace hako {
namespace {

// mount(source, target, fstype, flags, data): null/empty source, fstype or data pass NULL (a propagation change
// or a remount).
Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[1].IsString() || !info[3].IsNumber())
    return ThrowType(env, "mount(source, target, fstype, flags, data)");
  auto str = [&](size_t i) { return info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : std::string(); };
  std::string source = str(0), target = str(1), fstype = str(2), data = str(4);
  unsigned long flags = static_cast<unsigned long>(info[3].As<Napi::Number>().Int64Value());
  if (mount(source.empty() ? nullptr : source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
            data.empty() ? nullptr : data.c_str()) < 0)
    return ThrowErrno(env, "mount", errno,
                      (fstype.empty() ? std::string("none") : fstype) + " " + source + " on " + target);
  return env.Undefined();
}

Napi::Value Umount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) return ThrowType(env, "umount(target, flags)");
  std::string target = info[0].As<Napi::String>().Utf8Value();
  if (umount2(target.c_str(), info[1].As<Napi::Number>().Int32Value()) < 0)
    return ThrowErrno(env, "umount", errno, target);
  return env.Undefined();
}

}  // namespace

void InitMount(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount", Napi::Function::New(env, Umount, "umount"));
}

}  // namespace hako
