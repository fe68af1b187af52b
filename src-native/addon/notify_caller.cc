// The caller of a notification, as the server's decisions need it: its namespaces (ownership and
// capability checks) and its credentials, read through the /proc/<tid> directory opened and validated
// (NOTIF_ID_VALID) when the call was received; and the namespaces of a container's init by pid.
#include <linux/nsfs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <vector>

#include "notify.h"
#include "../common/proc_status.h"

namespace hako {
namespace notify {
namespace {

// A namespace file's inode number (unique while the namespace lives; the server pins the ones it keeps).
bool NsIno(int fd, uint64_t* ino) {
  struct stat st;
  if (fstat(fd, &st) < 0) return false;
  *ino = static_cast<uint64_t>(st.st_ino);
  return true;
}

struct NsChainEntry {
  uint64_t ino;
  int64_t owner;  // NS_GET_OWNER_UID as the server sees it (a host uid); -1 for non-user namespaces
};

// The chain from namespace `fd` up to the outermost one the server can see (NS_GET_PARENT fails with EPERM
// there: the initial namespace when the server runs in it). Takes ownership of fd. errno on failure.
int NsChain(int fd, bool user, std::vector<NsChainEntry>* out) {
  for (int depth = 0; fd >= 0 && depth < 40; depth++) {
    NsChainEntry e = {0, -1};
    if (!NsIno(fd, &e.ino)) {
      int err = errno;
      close(fd);
      return err;
    }
    if (user) {
      uid_t uid;
      if (ioctl(fd, NS_GET_OWNER_UID, &uid) < 0) {
        int err = errno;
        close(fd);
        return err;
      }
      e.owner = static_cast<int64_t>(uid);
    }
    out->push_back(e);
    int parent = ioctl(fd, NS_GET_PARENT);
    int err = errno;
    close(fd);
    if (parent < 0) return err == EPERM ? 0 : err;  // EPERM: no parent in our view, the top
    fd = parent;
  }
  if (fd >= 0) close(fd);
  return 0;
}

// The chain of user namespaces owning namespace file `name` of the process dir (the owner first, then its
// ancestors). errno on failure.
int NsOwnerChain(int procdir, const char* name, std::vector<NsChainEntry>* out) {
  int fd = openat(procdir, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int u = ioctl(fd, NS_GET_USERNS);
  int err = errno;
  close(fd);
  if (u < 0) return err;
  return NsChain(u, true, out);
}

Napi::Array ChainArray(Napi::Env env, const std::vector<NsChainEntry>& chain) {
  Napi::Array a = Napi::Array::New(env, chain.size());
  for (uint32_t i = 0; i < chain.size(); i++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, static_cast<double>(chain[i].ino)));
    pair.Set(1u, Napi::Number::New(env, static_cast<double>(chain[i].owner)));
    a.Set(i, pair);
  }
  return a;
}

// {user: [[ino, ownerUid], ...innermost first], pid: [ino, ...], mntOwner, utsOwner (the user namespaces
// owning the mount and UTS namespaces, as chains like user), mnt} of a /proc/<tid>
// directory, or throws with the errno and the step.
Napi::Value NsInfoOf(Napi::Env env, int procdir) {
  std::vector<NsChainEntry> user, pid;
  int fd = openat(procdir, "ns/user", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, "open ns/user", errno);
  int e = NsChain(fd, true, &user);
  if (e) return ThrowErrno(env, "user namespace chain", e);
  fd = openat(procdir, "ns/pid", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, "open ns/pid", errno);
  e = NsChain(fd, false, &pid);
  if (e) return ThrowErrno(env, "pid namespace chain", e);
  std::vector<NsChainEntry> mnt_owner, uts_owner;
  e = NsOwnerChain(procdir, "ns/mnt", &mnt_owner);
  if (e || mnt_owner.empty()) return ThrowErrno(env, "owner of ns/mnt", e ? e : ENOENT);
  e = NsOwnerChain(procdir, "ns/uts", &uts_owner);
  if (e || uts_owner.empty()) return ThrowErrno(env, "owner of ns/uts", e ? e : ENOENT);
  uint64_t mnt = 0;
  fd = openat(procdir, "ns/mnt", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || !NsIno(fd, &mnt)) {
    int err = errno;
    if (fd >= 0) close(fd);
    return ThrowErrno(env, "ns/mnt", err);
  }
  close(fd);
  Napi::Object o = Napi::Object::New(env);
  Napi::Array p = Napi::Array::New(env, pid.size());
  for (uint32_t i = 0; i < pid.size(); i++) p.Set(i, Napi::Number::New(env, static_cast<double>(pid[i].ino)));
  o.Set("user", ChainArray(env, user));
  o.Set("pid", p);
  o.Set("mntOwner", ChainArray(env, mnt_owner));
  o.Set("utsOwner", ChainArray(env, uts_owner));
  o.Set("mnt", Napi::Number::New(env, static_cast<double>(mnt)));
  return o;
}

}  // namespace

// notifyCallerNs(sid, lid, token) -> NsInfo of a pending notification's caller, read through the /proc/<tid>
// directory opened (and validated with NOTIF_ID_VALID) when it was received; null when there is none. A
// caller that died since has no namespaces to read (ESRCH/ENOENT are thrown).
Napi::Value CallerNs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Listener> l = Lookup(info).listener;
  if (!l) return env.Null();
  bool found;
  int procdir = l->DupProcdir(Token(info, 2), &found);
  if (!found) return env.Null();
  if (procdir < 0) return ThrowErrno(env, "dup /proc/<tid>", errno);
  Napi::Value v = NsInfoOf(env, procdir);
  close(procdir);
  return v;
}

// policyNsInfo(pid) -> NsInfo of /proc/<pid> (a container's init named by a runtime's state message).
Napi::Value PidNs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) return ThrowErrno(env, "policyNsInfo", EINVAL, "pid must be positive");
  char p[32];
  snprintf(p, sizeof(p), "/proc/%d", pid);
  int procdir = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (procdir < 0) return ThrowErrno(env, p, errno);
  Napi::Value v = NsInfoOf(env, procdir);
  close(procdir);
  return v;
}

// notifyCreds(sid, lid, token) -> {uid, euid, fsuid, gid, egid, fsgid, capEff} | null: the caller's credentials,
// read through the /proc/<tid> fd opened and validated (NOTIF_ID_VALID) when the call was received, so they
// are the caller's even if its pid has been reused since. null: not prepared, already answered, unreadable.
Napi::Value CredsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Listener> l = Lookup(info).listener;
  if (!l) return env.Null();
  bool found;
  int procdir = l->DupProcdir(Token(info, 2), &found);
  if (procdir < 0) return env.Null();
  proc_status::Creds cr;
  bool ok = proc_status::read_creds(procdir, &cr) && cr.have_cap_eff;
  close(procdir);
  if (!ok) return env.Null();
  Napi::Object c = Napi::Object::New(env);
  c.Set("uid", Napi::Number::New(env, cr.uid));
  c.Set("euid", Napi::Number::New(env, cr.euid));
  c.Set("fsuid", Napi::Number::New(env, cr.fsuid));
  c.Set("gid", Napi::Number::New(env, cr.gid));
  c.Set("egid", Napi::Number::New(env, cr.egid));
  c.Set("fsgid", Napi::Number::New(env, cr.fsgid));
  c.Set("capEff", Napi::BigInt::New(env, cr.cap_eff));
  return c;
}

}  // namespace notify
}  // namespace hako
