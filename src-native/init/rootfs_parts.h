// The parts of the rootfs build (rootfs.h) share this: the rootfs's O_PATH fd and paths resolved inside it
// (rootfs_paths.cc), the configured mounts (mounts.cc), devices and symlinks (devices.cc), masked and
// read-only paths (masked.cc). Like all of the init before exec: single-threaded, every failure is fail().
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "plan.h"

namespace hako_rootfs {

extern Fd g_root;     // O_PATH fd of the rootfs mount (after the self bind)
extern Fd g_devnull;  // the host's /dev/null, checked (masked.cc), closed before pivot_root

// rootfs_paths.cc: paths inside the root, remounts, the mount table, binds by fd.
int openat2_in_root(int rootfd, const char* path, int flags);
bool split_path(const char* path, char* parent, size_t plen, const char** base);
int mkdir_all_in_root(const char* path, int depth = 0);
int ensure_target(const char* path, bool dir);
const char* fd_path(int fd, char* buf, size_t n);
unsigned long locked_flags(const char* path);
int remount(const char* path, unsigned long flags);
using MountFn = void (*)(char* mp, const char* fstype, void* ctx);
void each_mount(const char* step, const char* why, MountFn fn, void* ctx);
bool below(const char* mp, const char* prefix, size_t len);
void restrict_mounts_below(int mount_fd, unsigned long flags, const char* dest);
int set_attrs(int mount_fd, uint64_t attrs, bool recursive);
bool bind_by_fd(int src, int dst, uint64_t attrs, unsigned long ms_flags, bool recursive, const char* dest,
                const char** what);

// mounts.cc
void make_deferred_readonly();
// devices.cc
void make_device(const DeviceSpec* d, bool bind_host);
void make_symlink(const Pair* s);
// masked.cc
void mask_path(const char* path);
void readonly_path(const char* path);

}  // namespace hako_rootfs
