{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-std=gnu++17", "-fno-rtti"]
  },
  "targets": [
    {
      "target_name": "hako",
      "sources": [
        "src-native/addon/binding.cc",
        "src-native/addon/spawn.cc",
        "src-native/addon/ipc.cc",
        "src-native/addon/process.cc",
        "src-native/addon/mount.cc",
        "src-native/addon/cgroup_bpf.cc",
        "src-native/addon/notify_api.cc",
        "src-native/addon/notify_caller.cc",
        "src-native/addon/notify_events.cc",
        "src-native/addon/notify_helper.cc",
        "src-native/addon/notify_listener.cc",
        "src-native/addon/policy_socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-Os", "-fvisibility=hidden", "-ffunction-sections", "-fdata-sections"],
      "ldflags": ["-Wl,--gc-sections"]
    },
    {
      "target_name": "hako-init",
      "type": "executable",
      "sources": [
        "src-native/init/main.cc",
        "src-native/init/plan.cc",
        "src-native/init/channel.cc",
        "src-native/init/rootfs.cc",
        "src-native/init/rootfs_paths.cc",
        "src-native/init/mounts.cc",
        "src-native/init/devices.cc",
        "src-native/init/masked.cc",
        "src-native/init/process.cc",
        "src-native/init/enter.cc"
      ],
      "cflags_cc": ["-Os", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections", "<!@(node src-native/libc-flags.js cxxflags)"],
      "ldflags": ["<!@(node src-native/libc-flags.js ldflags)", "-Wl,--gc-sections", "-s"]
    },
    {
      "target_name": "hako-policy-helper",
      "type": "executable",
      "sources": ["src-native/helper/main.cc", "src-native/helper/child.cc", "src-native/helper/verify.cc", "src-native/helper/act.cc"],
      "cflags_cc": ["-Os", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections", "<!@(node src-native/libc-flags.js cxxflags)"],
      "ldflags": ["<!@(node src-native/libc-flags.js ldflags)", "-Wl,--gc-sections", "-s"]
    },
    {
      "target_name": "hako-fd-keeper",
      "type": "executable",
      "sources": ["src-native/keeper/main.cc"],
      "cflags_cc": ["-Os", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections", "<!@(node src-native/libc-flags.js cxxflags)"],
      "ldflags": ["<!@(node src-native/libc-flags.js ldflags)", "-Wl,--gc-sections", "-s"]
    },
    {
      "target_name": "hako-shim-launcher",
      "type": "executable",
      "sources": ["src-native/launcher/main.c", "src-native/launcher/delete.c", "src-native/launcher/start.c", "src-native/launcher/annotations.c", "src-native/launcher/sha256.c", "src-native/launcher/spare_claim.c"],
      "cflags": ["-Os", "-std=gnu11", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections", "<!@(node src-native/libc-flags.js cflags)"],
      "ldflags": ["<!@(node src-native/libc-flags.js ldflags)", "-Wl,--gc-sections", "-s"],
      "conditions": [["target_arch=='arm64'", {"ldflags": ["-Wl,-z,max-page-size=4096"]}]]
    },
    {
      "target_name": "hako-probe",
      "type": "executable",
      "sources": ["src-native/probe/probe.c"],
      "cflags": ["-Os", "-std=gnu11", "<!@(node src-native/libc-flags.js cflags)"],
      "ldflags": ["<!@(node src-native/libc-flags.js ldflags)", "-s"]
    }
  ]
}
