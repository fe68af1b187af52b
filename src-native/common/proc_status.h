// A process's credentials from /proc/<tid>/status, read once for the addon (notifyCreds: the policy server
// decides with them) and the policy helper (it acts with them). The file is read through a /proc/<tid>
// directory fd opened and validated (NOTIF_ID_VALID) while the caller was blocked in its call, so the
// credentials are that caller's even if its pid has been reused since. The ids are as the reader's user
// namespace sees them.
//
// C library calls on stack memory only: usable from the static policy helper (musl, no libstdc++).
#pragma once
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

namespace proc_status {

struct Creds {
  // Real, effective, saved and filesystem ids (the four columns of the Uid: and Gid: lines).
  unsigned uid = 0, euid = 0, suid = 0, fsuid = 0;
  unsigned gid = 0, egid = 0, sgid = 0, fsgid = 0;
  bool have_ids = false;  // both the Uid: and the Gid: lines were read
  uint64_t cap_eff = 0;
  bool have_cap_eff = false;
  unsigned umask = 022;
  bool have_umask = false;  // Linux >= 4.7
  int ngroups = -1;         // supplementary groups stored in the caller's array; -1: no Groups: line (or no array)
};

// Reads `status` of the process directory `procdir` into *c; supplementary groups go to groups[0..max_groups)
// when `groups` is given. false, with errno when a call failed, if the file could not be read or lacks the
// Uid: or Gid: line.
inline bool read_creds(int procdir, Creds* c, gid_t* groups = nullptr, int max_groups = 0) {
  int fd = openat(procdir, "status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  int err = errno;
  close(fd);
  errno = err;
  if (n <= 0) return false;
  buf[n] = 0;
  bool got_uid = false, got_gid = false;
  for (char* line = buf; line && *line;) {
    char* nl = strchr(line, '\n');
    if (nl) *nl = 0;
    unsigned a, b, s, f;
    unsigned long long cap;
    if (sscanf(line, "Uid: %u %u %u %u", &a, &b, &s, &f) == 4) {
      c->uid = a;
      c->euid = b;
      c->suid = s;
      c->fsuid = f;
      got_uid = true;
    } else if (sscanf(line, "Gid: %u %u %u %u", &a, &b, &s, &f) == 4) {
      c->gid = a;
      c->egid = b;
      c->sgid = s;
      c->fsgid = f;
      got_gid = true;
    } else if (sscanf(line, "CapEff: %llx", &cap) == 1) {
      c->cap_eff = cap;
      c->have_cap_eff = true;
    } else if (sscanf(line, "Umask: %o", &a) == 1) {
      c->umask = a;
      c->have_umask = true;
    } else if (groups && strncmp(line, "Groups:", 7) == 0) {
      c->ngroups = 0;
      for (char* q = line + 7; *q && c->ngroups < max_groups;) {
        char* end;
        unsigned long g = strtoul(q, &end, 10);
        if (end == q) break;
        groups[c->ngroups++] = static_cast<gid_t>(g);
        q = end;
      }
    }
    line = nl ? nl + 1 : nullptr;
  }
  c->have_ids = got_uid && got_gid;
  return c->have_ids;
}

}  // namespace proc_status
