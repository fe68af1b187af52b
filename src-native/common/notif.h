// SECCOMP_IOCTL_NOTIF_ID_VALID, asked once for the addon (on receipt), the policy helper (right before it
// acts) and the fd keeper (before it answers what a crashed server left).
#pragma once
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>

namespace notif {

// 0 when the caller is still blocked in notification `id` of notify fd `fd`, else the errno (ENOENT: it is
// gone or was interrupted). Linux 5.17 fixed the ioctl's number (_IOR to _IOW); kernels before it know only
// the old one, and refuse the new one with EINVAL or ENOTTY.
inline int id_valid(int fd, uint64_t id) {
  const unsigned long kNew = _IOW('!', 2, uint64_t), kOld = _IOR('!', 2, uint64_t);
  uint64_t v = id;
  if (ioctl(fd, kNew, &v) == 0) return 0;
  int e = errno;
  if (e == EINVAL || e == ENOTTY) {
    v = id;
    if (ioctl(fd, kOld, &v) == 0) return 0;
    if (errno != EINVAL && errno != ENOTTY) e = errno;
  }
  return e;
}

}  // namespace notif
