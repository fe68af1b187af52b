// Shared helpers of the addon: errno-carrying errors and fd ownership.
#pragma once
#include <errno.h>
#include <napi.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "../common/fd.h"

namespace hako {

// Throw an Error whose message names the step, with `errno` and `step` properties for TypeScript.
inline Napi::Value ThrowErrno(Napi::Env env, const char* step, int err, const std::string& detail = "") {
  std::string msg = std::string(step) + ": " + (detail.empty() ? "" : detail + ": ") + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("step", Napi::String::New(env, step));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

inline Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

using ::UniqueFd;

void InitSpawn(Napi::Env env, Napi::Object exports);
void InitIpc(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitMount(Napi::Env env, Napi::Object exports);
void InitNotify(Napi::Env env, Napi::Object exports);
void InitPolicySocket(Napi::Env env, Napi::Object exports);

}  // namespace hako
