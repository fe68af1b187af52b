// cgroup v2 device filter: load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to a cgroup directory.
//
// exports.attachDeviceFilter(cgroupDir: string, insns: Buffer, license: string) -> number
//   Loads the program (the instruction bytes are generated in TypeScript, lib/cgroups/device-bpf.ts), attaches
//   it with BPF_F_ALLOW_MULTI, then detaches every other program hako attached earlier (recognised by the
//   program name "hako_devices"), so an update replaces the filter without a window where none applies.
//   Returns the program fd (O_CLOEXEC; the attachment keeps the program alive, the caller may close it).
//   Errors are thrown with `errno` and `step` properties.
#pragma once
#include <napi.h>

namespace hako {

void InitCgroupBpf(Napi::Env env, Napi::Object exports);

}  // namespace hako
