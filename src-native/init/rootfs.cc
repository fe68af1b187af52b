// Building the container's root filesystem (rootfs.h): the sequence. Its parts share rootfs_parts.h: paths
// inside the root (rootfs_paths.cc), the mounts (mounts.cc), devices and symlinks (devices.cc), masked and
// read-only paths (masked.cc).
#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sendfile.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <dirent.h>
#include <unistd.h>

#include "rootfs_parts.h"
#include "../common/syscalls.h"

namespace {

using namespace hako_rootfs;

// --no-pivot leaves the host's mounts in the container's mount namespace, under the new root. A procfs or
// sysfs mount among them is a fully visible one, which lets a process in a nested user namespace mount a new
// proc or sysfs (the kernel's mount_too_revealing check passes) that no mask or read-only path covers. As
// runc does: detach every proc and sysfs mount outside the rootfs before the move, or cover it with an empty
// tmpfs where it cannot be detached (locked in a user namespace). The rest of the old root stays, unreachable
// from the chroot.
void detach_host_proc_sysfs(const char* rootfs) {
  struct Ctx {
    const char* rootfs;
    size_t len;
  } ctx = {rootfs, strlen(rootfs)};
  each_mount(
      "rootfs", "no pivot",
      [](char* mp, const char* fstype, void* c) {
        auto* x = static_cast<Ctx*>(c);
        if (strcmp(fstype, "proc") != 0 && strcmp(fstype, "sysfs") != 0) return;
        if (strcmp(mp, x->rootfs) == 0 || below(mp, x->rootfs, x->len)) return;  // the container's own
        // Still there? A mount below one detached before it went with it, and the path now shows what was under.
        struct statfs sf;
        if (statfs(mp, &sf) < 0 || (sf.f_type != PROC_SUPER_MAGIC && sf.f_type != SYSFS_MAGIC)) return;
        if (umount2(mp, MNT_DETACH) < 0 &&
            mount("tmpfs", mp, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k") < 0)
          fail("rootfs", errno, "detach or hide the host's %s mount at %s (no pivot): %s", fstype, mp, errtext(errno));
      },
      &ctx);
}

}  // namespace

using namespace hako_rootfs;

void setup_kernel_settings(const Plan* plan) {
  for (size_t i = 0; i < plan->nsysctls; i++) {
    char path[512] = "/proc/sys/";
    size_t off = strlen(path);
    for (const char* k = plan->sysctls[i].a; *k && off < sizeof(path) - 1; k++) path[off++] = *k == '.' ? '/' : *k;
    path[off] = 0;
    Fd f(open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    const char* v = plan->sysctls[i].b;
    if (!f.ok() || write(f.get(), v, strlen(v)) < 0)
      fail("sysctl", errno, "set sysctl %s=%s: %s", plan->sysctls[i].a, v, errtext(errno));
  }
  if (plan->hostname && sethostname(plan->hostname, strlen(plan->hostname)) < 0)
    fail("hostname", errno, "sethostname %s: %s", plan->hostname, errtext(errno));
  if (plan->domainname && setdomainname(plan->domainname, strlen(plan->domainname)) < 0)
    fail("domainname", errno, "setdomainname %s: %s", plan->domainname, errtext(errno));
  if (plan->has_oom) {
    Fd f(open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC));
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d", plan->oom_score_adj);
    if (!f.ok() || write(f.get(), buf, static_cast<size_t>(n)) < 0)
      fail("oom_score_adj", errno, "set oom_score_adj %d: %s", plan->oom_score_adj, errtext(errno));
  }
  step_done("kernel settings");
}

void finish_rootfs(const Plan* plan) {
  // As runc and crun: a process cwd missing from the rootfs is created (0755, root's), inside the root like
  // every path here, before the root may turn read-only. It fails create as runc's does, except a permission
  // error, left to the chdir (as root of the container's namespace, later) to judge.
  if (plan->has_process && plan->process.cwd && plan->process.cwd[0] == '/') {
    Fd cwd(mkdir_all_in_root(plan->process.cwd));
    if (!cwd.ok() && errno != EACCES && errno != EPERM)
      fail("cwd", errno, "mkdir %s: %s", plan->process.cwd, errtext(errno));
  }
  make_deferred_readonly();
  // Masked and read-only paths before pivot_root: every target is resolved inside the root from its fd, and a
  // masked file gets the host's /dev/null, which is still reachable (and checked) here.
  for (size_t i = 0; i < plan->nmasked; i++) mask_path(plan->masked[i]);
  for (size_t i = 0; i < plan->nreadonly; i++) readonly_path(plan->readonly[i]);
  g_devnull.reset();
  if (plan->no_pivot) {
    char real[4096];
    if (!realpath(plan->rootfs, real)) fail("rootfs", errno, "resolve rootfs %s: %s", plan->rootfs, errtext(errno));
    detach_host_proc_sysfs(real);
    if (chdir(plan->rootfs) < 0 || mount(plan->rootfs, "/", nullptr, MS_MOVE, nullptr) < 0 || chroot(".") < 0 ||
        chdir("/") < 0)
      fail("rootfs", errno, "move rootfs to / (no pivot): %s", errtext(errno));
  } else {
    Fd oldroot(open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    Fd newroot(open(plan->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!oldroot.ok() || !newroot.ok()) fail("pivot_root", errno, "open roots: %s", errtext(errno));
    if (fchdir(newroot.get()) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
      fail("pivot_root", errno, "pivot_root %s: %s", plan->rootfs, errtext(errno));
    // The old root is stacked under the new one; detach it without propagating to the host.
    if (fchdir(oldroot.get()) < 0 || mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
      fail("pivot_root", errno, "detach old root: %s", errtext(errno));
  }
  g_root.reset();
  if (plan->has_propagation &&
      mount(nullptr, "/", nullptr, static_cast<unsigned long>(plan->rootfs_propagation), nullptr) < 0)
    fail("rootfs", errno, "set rootfsPropagation: %s", errtext(errno));
  step_done("pivot_root");
}

void make_root_readonly(const Plan* plan) {
  if (plan->rootfs_readonly && remount("/", MS_BIND | MS_RDONLY) < 0)
    fail("rootfs", errno, "remount root read-only: %s", errtext(errno));
}
