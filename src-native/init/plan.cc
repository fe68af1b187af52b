// Over 400 lines because it is the one decoder of the setup plan and process messages, with the --decode printer beside the fields it decodes.
// Decoder of the setup plan (see src-native/common/wire.h). Hostile input must produce an error, never
// undefined behaviour: every length is checked by wire::Reader and every allocation by the arena.
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace {

struct Arena {
  uint8_t* base;
  size_t cap;
  size_t used;
};

void* arena_alloc(Arena* a, size_t n) {
  size_t aligned = (a->used + 7) & ~static_cast<size_t>(7);
  if (aligned > a->cap || n > a->cap - aligned) return nullptr;
  a->used = aligned + n;
  return a->base + aligned;
}

char* arena_str(Arena* a, const uint8_t* p, uint32_t len) {
  if (!wire::valid_str(p, len)) return nullptr;
  char* s = static_cast<char*>(arena_alloc(a, len + 1));
  if (!s) return nullptr;
  memcpy(s, p, len);
  s[len] = 0;
  return s;
}

#define FAIL(msg) \
  do {            \
    *err = (msg); \
    return false; \
  } while (0)

bool decode_pair(Arena* a, const uint8_t* p, uint32_t len, Pair* out, const char** err) {
  wire::Reader r(p, len);
  uint32_t tag, l;
  const uint8_t* v;
  out->a = out->b = nullptr;
  while (r.next(&tag, &v, &l)) {
    char** dst = tag == wire::K_A ? &out->a : tag == wire::K_B ? &out->b : nullptr;
    if (!dst) FAIL("unknown pair field");
    if (!(*dst = arena_str(a, v, l))) FAIL("invalid pair string");
  }
  if (r.bad) FAIL("truncated pair record");
  if (!out->a || !out->b) FAIL("incomplete pair record");
  return true;
}

bool decode_mount(Arena* a, const uint8_t* p, uint32_t len, MountSpec* m, const char** err) {
  wire::Reader r(p, len);
  uint32_t tag, l;
  const uint8_t* v;
  memset(m, 0, sizeof(*m));
  while (r.next(&tag, &v, &l)) {
    bool ok = true;
    switch (tag) {
      case wire::M_SOURCE: ok = (m->source = arena_str(a, v, l)) != nullptr; break;
      case wire::M_DEST: ok = (m->dest = arena_str(a, v, l)) != nullptr; break;
      case wire::M_FSTYPE: ok = (m->fstype = arena_str(a, v, l)) != nullptr; break;
      case wire::M_DATA: ok = (m->data = arena_str(a, v, l)) != nullptr; break;
      case wire::M_FLAGS: ok = wire::as_u64(v, l, &m->flags); break;
      case wire::M_PROPAGATION: ok = wire::as_u64(v, l, &m->propagation); break;
      case wire::M_ATTR_SET: ok = wire::as_u64(v, l, &m->attr_set); break;
      case wire::M_ATTR_CLR: ok = wire::as_u64(v, l, &m->attr_clr); break;
      case wire::M_BIND: ok = wire::as_u32(v, l, &m->bind) && m->bind <= 2; break;
      case wire::M_OPTIONAL: ok = wire::as_u32(v, l, &m->optional); break;
      case wire::M_COPYUP: ok = wire::as_u32(v, l, &m->copy_up); break;
      case wire::M_SOURCE_FD:
        ok = wire::as_u32(v, l, &m->source_fd) && m->source_fd < kMaxPlanFds;
        m->has_source_fd = true;
        break;
      case wire::M_IDMAP:
        ok = wire::as_u32(v, l, &m->idmap_fd) && m->idmap_fd >= 3 && m->idmap_fd < 65536;
        m->has_idmap = true;
        break;
      case wire::M_IDMAP_RECURSIVE: ok = wire::as_u32(v, l, &m->idmap_recursive); break;
      default: FAIL("unknown mount field");
    }
    if (!ok) FAIL("invalid mount field");
  }
  if (r.bad) FAIL("truncated mount record");
  if (!m->dest || m->dest[0] != '/') FAIL("mount without absolute destination");
  return true;
}

bool decode_device(Arena* a, const uint8_t* p, uint32_t len, DeviceSpec* d, const char** err) {
  wire::Reader r(p, len);
  uint32_t tag, l;
  const uint8_t* v;
  memset(d, 0, sizeof(*d));
  while (r.next(&tag, &v, &l)) {
    bool ok = true;
    switch (tag) {
      case wire::D_PATH: ok = (d->path = arena_str(a, v, l)) != nullptr; break;
      case wire::D_TYPE: ok = wire::as_u32(v, l, &d->type); break;
      case wire::D_MAJOR: ok = wire::as_u32(v, l, &d->major); break;
      case wire::D_MINOR: ok = wire::as_u32(v, l, &d->minor); break;
      case wire::D_MODE: ok = wire::as_u32(v, l, &d->mode); break;
      case wire::D_UID: ok = wire::as_u32(v, l, &d->uid); break;
      case wire::D_GID: ok = wire::as_u32(v, l, &d->gid); break;
      default: FAIL("unknown device field");
    }
    if (!ok) FAIL("invalid device field");
  }
  if (r.bad) FAIL("truncated device record");
  if (!d->path || d->path[0] != '/') FAIL("device without absolute path");
  if (d->type != 'c' && d->type != 'b' && d->type != 'p' && d->type != 'u') FAIL("invalid device type");
  return true;
}

// Count records with `tag` in a list, so arrays can be sized before they are filled.
size_t count_tag(const uint8_t* p, uint32_t len, uint32_t want) {
  wire::Reader r(p, len);
  uint32_t tag, l;
  const uint8_t* v;
  size_t n = 0;
  while (r.next(&tag, &v, &l))
    if (tag == want) n++;
  return n;
}

template <typename T>
T* alloc_array(Arena* a, size_t n) {
  if (n > (1u << 24)) return nullptr;
  return static_cast<T*>(arena_alloc(a, sizeof(T) * (n ? n : 1)));
}

bool decode_process(Arena* a, const uint8_t* p, uint32_t len, ProcessSpec* ps, const char** err) {
  memset(ps, 0, sizeof(*ps));
  ps->argv = alloc_array<char*>(a, count_tag(p, len, wire::P_ARG) + 1);
  ps->envp = alloc_array<char*>(a, count_tag(p, len, wire::P_ENV) + 2);  // + HOME when the config has none
  ps->rlimits = alloc_array<RlimitSpec>(a, count_tag(p, len, wire::P_RLIMIT));
  if (!ps->argv || !ps->envp || !ps->rlimits) FAIL("process record too large");
  wire::Reader r(p, len);
  uint32_t tag, l;
  const uint8_t* v;
  while (r.next(&tag, &v, &l)) {
    bool ok = true;
    switch (tag) {
      case wire::P_ARG: ok = (ps->argv[ps->argc++] = arena_str(a, v, l)) != nullptr; break;
      case wire::P_ENV: ok = (ps->envp[ps->envc++] = arena_str(a, v, l)) != nullptr; break;
      case wire::P_CWD: ok = (ps->cwd = arena_str(a, v, l)) != nullptr; break;
      case wire::P_UID: ok = wire::as_u32(v, l, &ps->uid); break;
      case wire::P_GID: ok = wire::as_u32(v, l, &ps->gid); break;
      case wire::P_GIDS:
        ok = l % 4 == 0 && (ps->gids = alloc_array<uint32_t>(a, l / 4)) != nullptr;
        if (ok) {
          memcpy(ps->gids, v, l);
          ps->ngids = l / 4;
        }
        break;
      case wire::P_UMASK:
        ok = wire::as_u32(v, l, &ps->umask) && ps->umask <= 0777;
        ps->has_umask = true;
        break;
      case wire::P_CAPS:
        ok = l == sizeof(ps->caps);
        if (ok) memcpy(ps->caps, v, l);
        ps->has_caps = true;
        break;
      case wire::P_NNP: {
        uint32_t x = 0;
        ok = wire::as_u32(v, l, &x);
        ps->nnp = x != 0;
        break;
      }
      case wire::P_RLIMIT: {
        RlimitSpec* rl = &ps->rlimits[ps->nrlimits++];
        ok = l == 24;
        if (ok) {
          memcpy(&rl->type, v, 4);
          memcpy(&rl->soft, v + 8, 8);
          memcpy(&rl->hard, v + 16, 8);
          ok = rl->type < 64;
        }
        break;
      }
      case wire::P_SECCOMP:
        ok = l >= 8 && (l - 8) % sizeof(struct sock_filter) == 0 && (l - 8) / sizeof(struct sock_filter) <= 4096 &&
             l > 8;
        if (ok) {
          memcpy(&ps->seccomp_flags, v, 4);
          ps->filter_len = (l - 8) / sizeof(struct sock_filter);
          ps->filter = alloc_array<struct sock_filter>(a, ps->filter_len);
          ok = ps->filter != nullptr;
          if (ok) memcpy(ps->filter, v + 8, l - 8);
          ps->has_seccomp = true;
        }
        break;
      case wire::P_SCHED:
        ok = l == sizeof(wire::SchedRecord);
        if (ok) memcpy(&ps->sched, v, l);
        ps->has_sched = true;
        break;
      case wire::P_IOPRIO:
        ok = wire::as_u32(v, l, &ps->ioprio);
        ps->has_ioprio = true;
        break;
      case wire::P_AFFINITY:
        ok = l > 0 && l <= 1024 && (ps->affinity = alloc_array<uint8_t>(a, l)) != nullptr;
        if (ok) {
          memcpy(ps->affinity, v, l);
          ps->affinity_len = l;
        }
        break;
      case wire::P_APPARMOR: ok = (ps->apparmor = arena_str(a, v, l)) != nullptr; break;
      case wire::P_SELINUX: ok = (ps->selinux = arena_str(a, v, l)) != nullptr; break;
      case wire::P_TERMINAL: {
        uint32_t x = 0;
        ok = wire::as_u32(v, l, &x);
        ps->terminal = x != 0;
        break;
      }
      case wire::P_PRESERVE_FDS: ok = wire::as_u32(v, l, &ps->preserve_fds) && ps->preserve_fds < 65536; break;
      default: FAIL("unknown process field");
    }
    if (!ok) FAIL("invalid process field");
  }
  if (r.bad) FAIL("truncated process record");
  ps->argv[ps->argc] = nullptr;
  ps->envp[ps->envc] = nullptr;
  if (ps->argc == 0) FAIL("process without args");
  if (!ps->cwd || ps->cwd[0] != '/') FAIL("process without absolute cwd");
  return true;
}

bool new_arena(Arena* a, uint32_t len) {
  a->cap = static_cast<size_t>(len) * 16 + 4096;
  a->used = 0;
  a->base = static_cast<uint8_t*>(malloc(a->cap));
  return a->base != nullptr;
}

#define GET_U32(field)                                  \
  do {                                                  \
    uint32_t x_ = 0;                                    \
    if (!wire::as_u32(v, l, &x_)) FAIL("invalid flag"); \
    field = x_ != 0;                                    \
  } while (0)

bool decode_plan_records(Arena* a, const uint8_t* body, uint32_t len, Plan* out, const char** err) {
  out->mounts = alloc_array<MountSpec>(a, count_tag(body, len, wire::T_MOUNT));
  out->masked = alloc_array<char*>(a, count_tag(body, len, wire::T_MASKED_PATH));
  out->readonly = alloc_array<char*>(a, count_tag(body, len, wire::T_READONLY_PATH));
  out->devices = alloc_array<DeviceSpec>(a, count_tag(body, len, wire::T_DEVICE));
  out->symlinks = alloc_array<Pair>(a, count_tag(body, len, wire::T_SYMLINK));
  out->sysctls = alloc_array<Pair>(a, count_tag(body, len, wire::T_SYSCTL));
  out->cgroup_procs = alloc_array<char*>(a, count_tag(body, len, wire::T_CGROUP_PROCS));
  if (!out->cgroup_procs) FAIL("plan too large");
  if (!out->mounts || !out->masked || !out->readonly || !out->devices || !out->symlinks || !out->sysctls)
    FAIL("plan too large");
  wire::Reader r(body, len);
  uint32_t tag, l;
  const uint8_t* v;
  while (r.next(&tag, &v, &l)) {
    switch (tag) {
      case wire::T_ROOTFS:
        if (!(out->rootfs = arena_str(a, v, l)) || out->rootfs[0] != '/') FAIL("invalid rootfs");
        break;
      case wire::T_ROOTFS_READONLY: GET_U32(out->rootfs_readonly); break;
      case wire::T_NO_PIVOT: GET_U32(out->no_pivot); break;
      case wire::T_NEW_MOUNT_NS: GET_U32(out->new_mount_ns); break;
      case wire::T_DEBUG: GET_U32(out->debug); break;
      case wire::T_DEV_BIND_HOST: GET_U32(out->dev_bind_host); break;
      case wire::T_SECCOMP_EARLY: GET_U32(out->seccomp_early); break;
      case wire::T_UNSHARE_CGROUPNS: GET_U32(out->unshare_cgroupns); break;
      case wire::T_NEW_KEYRING: GET_U32(out->new_keyring); break;
      case wire::T_LOOPBACK_UP: GET_U32(out->loopback_up); break;
      case wire::T_CGROUP_PROCS: {
        char* p = arena_str(a, v, l);
        if (!p || p[0] != '/') FAIL("invalid cgroup.procs path");
        out->cgroup_procs[out->ncgroup_procs++] = p;
        break;
      }
      case wire::T_TIME_NS:
        if (l != sizeof(out->time_offsets)) FAIL("invalid time offsets");
        memcpy(out->time_offsets, v, l);
        out->time_ns = true;
        break;
      case wire::T_ROOTFS_PROPAGATION:
        if (!wire::as_u64(v, l, &out->rootfs_propagation)) FAIL("invalid rootfs propagation");
        out->has_propagation = true;
        break;
      case wire::T_HOSTNAME:
        if (!(out->hostname = arena_str(a, v, l))) FAIL("invalid hostname");
        break;
      case wire::T_DOMAINNAME:
        if (!(out->domainname = arena_str(a, v, l))) FAIL("invalid domainname");
        break;
      case wire::T_MOUNT:
        if (!decode_mount(a, v, l, &out->mounts[out->nmounts++], err)) return false;
        break;
      case wire::T_MASKED_PATH:
        if (!(out->masked[out->nmasked++] = arena_str(a, v, l))) FAIL("invalid masked path");
        break;
      case wire::T_READONLY_PATH:
        if (!(out->readonly[out->nreadonly++] = arena_str(a, v, l))) FAIL("invalid readonly path");
        break;
      case wire::T_DEVICE:
        if (!decode_device(a, v, l, &out->devices[out->ndevices++], err)) return false;
        break;
      case wire::T_SYMLINK:
        if (!decode_pair(a, v, l, &out->symlinks[out->nsymlinks++], err)) return false;
        break;
      case wire::T_SYSCTL:
        if (!decode_pair(a, v, l, &out->sysctls[out->nsysctls++], err)) return false;
        break;
      case wire::T_OOM_SCORE_ADJ: {
        uint32_t x = 0;
        if (!wire::as_u32(v, l, &x)) FAIL("invalid oom_score_adj");
        out->oom_score_adj = static_cast<int32_t>(x);
        if (out->oom_score_adj < -1000 || out->oom_score_adj > 1000) FAIL("oom_score_adj out of range");
        out->has_oom = true;
        break;
      }
      case wire::T_PERSONALITY:
        if (!wire::as_u32(v, l, &out->personality)) FAIL("invalid personality");
        out->has_personality = true;
        break;
      case wire::T_CONSOLE: {
        wire::Reader cr(v, l);
        uint32_t ct, cl;
        const uint8_t* cv;
        while (cr.next(&ct, &cv, &cl)) {
          uint32_t* dst = ct == wire::K_A ? &out->rows : ct == wire::K_B ? &out->cols : nullptr;
          if (!dst || !wire::as_u32(cv, cl, dst)) FAIL("invalid console record");
        }
        if (cr.bad) FAIL("truncated console record");
        out->console = true;
        break;
      }
      case wire::T_PAUSE:
        if (!wire::as_u32(v, l, &out->pause_mask)) FAIL("invalid pause record");
        break;
      case wire::T_PROCESS:
        if (out->has_process) FAIL("duplicate process record");
        if (!decode_process(a, v, l, &out->process, err)) return false;
        out->has_process = true;
        break;
      default: FAIL("unknown plan field (is the init helper older than the runtime? rebuild or reinstall hako)");
    }
  }
  if (r.bad) FAIL("truncated plan record");
  if (!out->rootfs) FAIL("plan without rootfs");
  return true;
}

}  // namespace

void free_arena(void* arena) { free(arena); }

bool decode_plan(const uint8_t* body, uint32_t len, Plan* out, const char** err) {
  memset(out, 0, sizeof(*out));
  Arena a;
  if (!new_arena(&a, len)) FAIL("out of memory");
  if (!decode_plan_records(&a, body, len, out, err)) {
    free(a.base);
    memset(out, 0, sizeof(*out));
    return false;
  }
  out->arena = a.base;
  return true;
}

bool decode_process_message(const uint8_t* body, uint32_t len, ProcessSpec* out, void** arena, const char** err) {
  Arena a;
  if (!new_arena(&a, len)) FAIL("out of memory");
  // A setup message carries exactly one T_PROCESS record.
  wire::Reader r(body, len);
  uint32_t tag, l;
  const uint8_t* v;
  bool found = false;
  while (r.next(&tag, &v, &l)) {
    if (tag != wire::T_PROCESS || found) {
      free(a.base);
      FAIL("setup message must hold one process record");
    }
    if (!decode_process(&a, v, l, out, err)) {
      free(a.base);
      return false;
    }
    found = true;
  }
  if (r.bad || !found) {
    free(a.base);
    FAIL(r.bad ? "truncated setup message" : "setup message without process");
  }
  *arena = a.base;
  return true;
}

// --- JSON dump for round-trip tests ---------------------------------------------------------------

namespace {
void json_str(const char* s) {
  if (!s) {
    fputs("null", stdout);
    return;
  }
  putchar('"');
  for (const unsigned char* c = reinterpret_cast<const unsigned char*>(s); *c; c++) {
    if (*c == '"' || *c == '\\') printf("\\%c", *c);
    else if (*c < 0x20) printf("\\u%04x", *c);
    else putchar(*c);
  }
  putchar('"');
}
void json_strs(char* const* v, size_t n) {
  putchar('[');
  for (size_t i = 0; i < n; i++) {
    if (i) putchar(',');
    json_str(v[i]);
  }
  putchar(']');
}
}  // namespace

void print_process_json(const ProcessSpec* p) {
  printf("{\"args\":");
  json_strs(p->argv, p->argc);
  printf(",\"env\":");
  json_strs(p->envp, p->envc);
  printf(",\"cwd\":");
  json_str(p->cwd);
  printf(",\"uid\":%u,\"gid\":%u,\"gids\":[", p->uid, p->gid);
  for (size_t i = 0; i < p->ngids; i++) printf(i ? ",%u" : "%u", p->gids[i]);
  printf("],\"umask\":");
  if (p->has_umask) printf("%u", p->umask);
  else printf("null");
  printf(",\"caps\":");
  if (p->has_caps) {
    printf("[");
    for (int i = 0; i < 5; i++) printf(i ? ",\"%llx\"" : "\"%llx\"", static_cast<unsigned long long>(p->caps[i]));
    printf("]");
  } else {
    printf("null");
  }
  printf(",\"nnp\":%s,\"rlimits\":[", p->nnp ? "true" : "false");
  for (size_t i = 0; i < p->nrlimits; i++)
    printf("%s{\"type\":%u,\"soft\":\"%llu\",\"hard\":\"%llu\"}", i ? "," : "", p->rlimits[i].type,
           static_cast<unsigned long long>(p->rlimits[i].soft), static_cast<unsigned long long>(p->rlimits[i].hard));
  printf("],\"seccomp\":");
  if (p->has_seccomp) printf("{\"flags\":%u,\"instructions\":%zu}", p->seccomp_flags, p->filter_len);
  else printf("null");
  printf(",\"sched\":");
  if (p->has_sched)
    printf("{\"policy\":%u,\"nice\":%d,\"priority\":%u,\"runtime\":\"%llu\",\"deadline\":\"%llu\",\"period\":\"%llu\"}",
           p->sched.policy, p->sched.nice, p->sched.priority, static_cast<unsigned long long>(p->sched.runtime),
           static_cast<unsigned long long>(p->sched.deadline), static_cast<unsigned long long>(p->sched.period));
  else printf("null");
  printf(",\"ioprio\":");
  if (p->has_ioprio) printf("%u", p->ioprio);
  else printf("null");
  printf(",\"affinity\":[");
  for (size_t i = 0; i < p->affinity_len; i++) printf(i ? ",%u" : "%u", p->affinity[i]);
  printf("],\"apparmor\":");
  json_str(p->apparmor);
  printf(",\"selinux\":");
  json_str(p->selinux);
  printf(",\"terminal\":%s,\"preserveFds\":%u}", p->terminal ? "true" : "false", p->preserve_fds);
}

void print_plan_json(const Plan* p) {
  printf("{\"rootfs\":");
  json_str(p->rootfs);
  printf(",\"readonly\":%s,\"noPivot\":%s,\"newMountNs\":%s,\"hostname\":", p->rootfs_readonly ? "true" : "false",
         p->no_pivot ? "true" : "false", p->new_mount_ns ? "true" : "false");
  json_str(p->hostname);
  printf(",\"domainname\":");
  json_str(p->domainname);
  printf(",\"mounts\":[");
  for (size_t i = 0; i < p->nmounts; i++) {
    const MountSpec* m = &p->mounts[i];
    printf("%s{\"source\":", i ? "," : "");
    json_str(m->source);
    printf(",\"destination\":");
    json_str(m->dest);
    printf(",\"type\":");
    json_str(m->fstype);
    printf(",\"data\":");
    json_str(m->data);
    printf(",\"flags\":\"%llx\",\"propagation\":\"%llx\",\"bind\":%u}", static_cast<unsigned long long>(m->flags),
           static_cast<unsigned long long>(m->propagation), m->bind);
  }
  printf("],\"masked\":");
  json_strs(p->masked, p->nmasked);
  printf(",\"readonlyPaths\":");
  json_strs(p->readonly, p->nreadonly);
  printf(",\"devices\":[");
  for (size_t i = 0; i < p->ndevices; i++) {
    const DeviceSpec* d = &p->devices[i];
    printf("%s{\"path\":", i ? "," : "");
    json_str(d->path);
    printf(",\"type\":\"%c\",\"major\":%u,\"minor\":%u,\"mode\":%u,\"uid\":%u,\"gid\":%u}", static_cast<char>(d->type),
           d->major, d->minor, d->mode, d->uid, d->gid);
  }
  printf("],\"sysctl\":{");
  for (size_t i = 0; i < p->nsysctls; i++) {
    if (i) putchar(',');
    json_str(p->sysctls[i].a);
    putchar(':');
    json_str(p->sysctls[i].b);
  }
  printf("},\"process\":");
  if (p->has_process) print_process_json(&p->process);
  else printf("null");
  printf("}\n");
}
