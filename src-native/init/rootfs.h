// Building the container's root filesystem inside its new mount namespace.
#pragma once
#include "plan.h"

// Prepare propagation, bind the rootfs onto itself and perform the configured mounts, devices and
// symlinks. Every target inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT), so a symlink in
// the rootfs can never redirect a mount, a device or a file creation to the host. Fails the helper on error.
void setup_mounts(const Plan* plan);
// Masked and read-only paths, then pivot_root (or move + chroot).
void finish_rootfs(const Plan* plan);
// The read-only root, last (as runc's finalizeRootfs): the console is set up in /dev before it.
void make_root_readonly(const Plan* plan);
// Apply sysctls, hostname and domainname in the container's namespaces.
void setup_kernel_settings(const Plan* plan);
