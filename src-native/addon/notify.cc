// Seccomp user-notification supervision for the policy server (lib/policy).
//
// One native thread per notify fd (a container's init, or one exec) runs
//   poll({notify fd, wake eventfd}) -> SECCOMP_IOCTL_NOTIF_RECV -> copy the pointer arguments out of the
//   caller (process_vm_readv, once) -> open /proc/<tid> (for calls that may be emulated) -> NOTIF_ID_VALID
// and hands the notification to TypeScript through a ThreadSafeFunction. TypeScript decides; the answer
// comes back here: an errno/value is sent at once (NOTIF_SEND, never blocks), an emulation is sent to
// hako-policy-helper with the notify fd and the /proc/<tid> fd, and a reply thread sends the result when
// the helper answers. Nothing here ever blocks the event loop, and a thread per fd means a target whose
// memory cannot be read (a hung FUSE mapping) or a flood of notifications stalls only its own fd: each fd
// has at most `window` notifications in TypeScript's hands, so the others always get their turn.
// SECCOMP_USER_NOTIF_FLAG_CONTINUE is never used.
#include <fcntl.h>
#include <linux/nsfs.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "../common/notif.h"
#include "../common/proc_status.h"
#include "../common/scm.h"
#include "../helper/policy_proto.h"
#include "../keeper/keeper_proto.h"
#include "common.h"

namespace hako {
namespace {

const unsigned long kSetFlags = _IOW('!', 4, uint64_t);
const uint64_t kSyncWakeUp = 1;

double NowUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// An errno the kernel passes to the caller unchanged and that means what it says: 1..4095 except the
// kernel-internal restart codes (512..530), which a supervisor must never return.
int CleanErrno(int e) {
  if (e <= 0 || e > 4095 || (e >= 512 && e <= 530)) return EPERM;
  return e;
}

int Send(int fd, uint64_t id, int64_t val, int err) {
  struct seccomp_notif_resp r;
  memset(&r, 0, sizeof(r));
  r.id = id;
  r.val = err ? 0 : val;
  r.error = err ? -CleanErrno(err) : 0;
  r.flags = 0;
  int rc;
  do rc = ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

// ---- argument layouts: which arguments of (arch, nr) are pointers, set by TypeScript ----

enum ArgType : uint8_t { ARG_INT = 0, ARG_CSTR = 1, ARG_BUF = 2 };
enum StrState : uint8_t { S_NONE = 0, S_OK = 1, S_NULL = 2, S_FAULT = 3, S_LONG = 4 };

struct Layout {
  int32_t kind = -1;
  uint8_t type[6] = {};
  uint8_t len_idx[6] = {};
  uint32_t max[6] = {};
  bool prepare = false;
};
using LayoutMap = std::unordered_map<uint64_t, Layout>;
// (arch, nr) -> errno of calls whose answer does not depend on anything (notifySetFixed).
using FixedMap = std::unordered_map<uint64_t, int>;
uint64_t LayoutKey(uint32_t arch, int32_t nr) { return (static_cast<uint64_t>(arch) << 32) | static_cast<uint32_t>(nr); }

uint8_t ReadCString(pid_t pid, uint64_t addr, uint32_t max, std::string* out) {
  out->clear();
  if (addr == 0) return S_NULL;
  char buf[4096];
  uint64_t a = addr;
  while (out->size() <= max) {
    size_t page_left = 4096 - (a & 4095);  // never cross a 4 KiB boundary: a fault stops at the page
    size_t want = std::min<size_t>(page_left, static_cast<size_t>(max) + 1 - out->size());
    struct iovec l = {buf, want}, r = {reinterpret_cast<void*>(static_cast<uintptr_t>(a)), want};
    ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n <= 0) return S_FAULT;
    const void* z = memchr(buf, 0, static_cast<size_t>(n));
    if (z) {
      out->append(buf, static_cast<size_t>(static_cast<const char*>(z) - buf));
      return S_OK;
    }
    out->append(buf, static_cast<size_t>(n));
    a += static_cast<uint64_t>(n);
  }
  return S_LONG;
}

uint8_t ReadBuffer(pid_t pid, uint64_t addr, uint64_t len, uint32_t max, std::string* out) {
  out->clear();
  if (len > max) return S_LONG;
  if (len == 0) return S_OK;
  if (addr == 0) return S_FAULT;
  out->resize(static_cast<size_t>(len));
  struct iovec l = {&(*out)[0], static_cast<size_t>(len)}, r = {reinterpret_cast<void*>(static_cast<uintptr_t>(addr)), static_cast<size_t>(len)};
  ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
  if (n != static_cast<ssize_t>(len)) return S_FAULT;
  return S_OK;
}

// ---- the caller's namespaces, for the server's ownership and capability checks ----

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

// ---- events handed to TypeScript ----

struct Listener;

struct Event {
  enum Type { NOTIF, CLOSED, DONE, FAST } type = NOTIF;
  std::weak_ptr<Listener> owner;  // FAST: whose count CallJs takes
  std::weak_ptr<Listener> traced;  // HAKO_NOTIFY_TRACE: where CallJs records its timestamp
  uint32_t listener = 0;
  uint64_t token = 0;
  uint64_t id = 0;
  uint32_t pid = 0, arch = 0;
  int32_t nr = 0, kind = -1;
  uint64_t args[6] = {};
  std::string str[6];
  uint8_t state[6] = {};
  uint8_t type6[6] = {};
  bool prepared = false;
  double t0 = 0;
  std::string reason;
  int err = 0, stage = 0, send_err = 0;
  int64_t ret = 0;
};

struct Request {
  uint64_t id;
  int procdir;
  double t0;
  // HAKO_NOTIFY_TRACE only: poll returned, ready to hand over, JS callback entered.
  double t_poll = 0, t_ready = 0, t_js = 0, t_built = 0;
};

// ---- latency breakdown (HAKO_NOTIFY_TRACE=1): where a denied call's round trip goes, for the bench ----
// Off by default: one branch per notification. Each answered request adds one sample of 6 stages (µs):
// poll wake-up -> RECV done, RECV -> copy + /proc + ID_VALID done, -> JS callback entered (thread handoff),
// -> event object built (native, N-API), -> answer started (JS: decision, audit), -> NOTIF_SEND done.
const bool g_trace = getenv("HAKO_NOTIFY_TRACE") != nullptr;
std::mutex g_trace_mu;
std::vector<std::array<float, 6>> g_trace_samples;

void TraceAnswer(const Request& r, double t_resp, double t_sent) {
  if (!g_trace || r.t_js == 0) return;
  std::lock_guard<std::mutex> g(g_trace_mu);
  if (g_trace_samples.size() >= 1000000) return;
  g_trace_samples.push_back({static_cast<float>(r.t0 - r.t_poll), static_cast<float>(r.t_ready - r.t0), static_cast<float>(r.t_js - r.t_ready),
                             static_cast<float>(r.t_built - r.t_js), static_cast<float>(t_resp - r.t_built), static_cast<float>(t_sent - t_resp)});
}

struct Core;
void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t*, Event* ev);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Event, CallJs>;

struct Listener {
  uint32_t lid;
  int fd;
  int wake;
  uint32_t window;
  // The ids received, shared with hako-fd-keeper (keeper_proto.h): after a crash of this process the keeper
  // answers the ones still pending. nullptr when the server runs without a keeper. Set once (notifyAdd or
  // notifyKeep, possibly while the thread runs), unmapped in the destructor.
  std::atomic<uint64_t*> ring{nullptr};
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> inflight{0};
  // Fixed denials answered on this thread (notifySetFixed): the count since TypeScript last took it, and
  // whether an event carrying it is on its way (one at a time: a flood costs no event per call).
  std::shared_ptr<const FixedMap> fixed;
  std::atomic<uint64_t> fast_count{0};
  std::atomic<bool> fast_posted{false};
  std::mutex mu;
  std::unordered_map<uint64_t, Request> reqs;
  std::shared_ptr<Core> core;

  ~Listener() {
    // Received and never answered (the server is closing while TypeScript had them): answer EAGAIN rather
    // than leave the caller blocked, which it would be for good when hako-fd-keeper holds a dup of the fd.
    for (auto& kv : reqs) {
      Send(fd, kv.second.id, 0, EAGAIN);
      if (kv.second.procdir >= 0) close(kv.second.procdir);
    }
    if (uint64_t* r = ring.load()) munmap(r, hako_keeper::kRingBytes);
    close(fd);
    close(wake);
  }
  void Wake() {
    uint64_t one = 1;
    ssize_t w = write(wake, &one, sizeof(one));
    (void)w;
  }
  bool Take(uint64_t token, Request* out) {
    std::lock_guard<std::mutex> g(mu);
    auto it = reqs.find(token);
    if (it == reqs.end()) return false;
    *out = it->second;
    reqs.erase(it);
    return true;
  }
  // One notification answered (or dropped): make room in the window.
  void Done() {
    if (inflight.fetch_sub(1) >= window) Wake();
  }
};

struct Pending {
  std::shared_ptr<Listener> listener;
  uint64_t id;
  uint32_t gen;
};

struct Core : std::enable_shared_from_this<Core> {
  Tsfn tsfn;
  std::mutex mu;
  std::shared_ptr<const LayoutMap> layouts = std::make_shared<LayoutMap>();
  std::map<uint32_t, std::shared_ptr<Listener>> listeners;
  std::unordered_map<uint64_t, Pending> pending;
  std::atomic<uint64_t> next_token{1};
  uint32_t next_lid = 1;
  int helper = -1;
  uint32_t helper_gen = 0;
  bool closed = false;

  std::shared_ptr<const LayoutMap> Layouts() {
    std::lock_guard<std::mutex> g(mu);
    return layouts;
  }
  std::shared_ptr<Listener> Find(uint32_t lid) {
    std::lock_guard<std::mutex> g(mu);
    auto it = listeners.find(lid);
    return it == listeners.end() ? nullptr : it->second;
  }
  void Post(Event* ev) {
    if (tsfn.BlockingCall(ev) != napi_ok) delete ev;
  }
};

std::mutex g_mu;
std::map<uint32_t, std::shared_ptr<Core>> g_cores;
uint32_t g_next_core = 1;

std::shared_ptr<Core> FindCore(uint32_t sid) {
  std::lock_guard<std::mutex> g(g_mu);
  auto it = g_cores.find(sid);
  return it == g_cores.end() ? nullptr : it->second;
}

size_t NotifSize() {
  static size_t size = [] {
    struct seccomp_notif_sizes s = {};
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &s) == 0 && s.seccomp_notif > sizeof(struct seccomp_notif))
      return static_cast<size_t>(s.seccomp_notif);
    return sizeof(struct seccomp_notif);
  }();
  return size;
}

// Handle one received notification on the listener's thread.
void Handle(const std::shared_ptr<Listener>& lp, const struct seccomp_notif* n, double t_poll) {
  Listener* l = lp.get();
  double t0 = NowUs();
  std::unique_ptr<Event> ev(new Event());
  ev->type = Event::NOTIF;
  ev->listener = l->lid;
  ev->id = n->id;
  ev->pid = n->pid;
  ev->arch = n->data.arch;
  ev->nr = n->data.nr;
  ev->t0 = t0;
  for (int i = 0; i < 6; i++) ev->args[i] = n->data.args[i];
  std::shared_ptr<const LayoutMap> layouts = l->core->Layouts();
  auto it = n->pid ? layouts->find(LayoutKey(n->data.arch, n->data.nr)) : layouts->end();
  int fixed_errno = 0;
  {
    std::lock_guard<std::mutex> g(l->mu);
    if (l->fixed) {
      auto f = l->fixed->find(LayoutKey(n->data.arch, n->data.nr));
      if (f != l->fixed->end()) fixed_errno = f->second;
    }
  }
  if (fixed_errno) {
    // Denied whatever the arguments (no profile matches the container, or a call the filter refuses): answer
    // here, without a trip to the event loop. TypeScript gets one event per batch, with the count (stats, and
    // the audit: this call's record, the others counted as suppressed) and this call's arguments.
    l->fast_count.fetch_add(1);
    bool post = !l->fast_posted.exchange(true);
    if (post && it != layouts->end()) {
      const Layout& lay = it->second;
      ev->kind = lay.kind;
      for (int i = 0; i < 6; i++) {
        ev->type6[i] = lay.type[i];
        if (lay.type[i] == ARG_CSTR) ev->state[i] = ReadCString(static_cast<pid_t>(n->pid), n->data.args[i], lay.max[i], &ev->str[i]);
        else if (lay.type[i] == ARG_BUF)
          ev->state[i] = ReadBuffer(static_cast<pid_t>(n->pid), n->data.args[i], n->data.args[lay.len_idx[i]], lay.max[i], &ev->str[i]);
      }
    }
    int se = Send(l->fd, n->id, 0, fixed_errno);
    if (!post) return;
    ev->type = Event::FAST;
    ev->err = fixed_errno;
    ev->send_err = se;
    ev->owner = lp;
    l->core->Post(ev.release());
    return;
  }
  int procdir = -1;
  if (it != layouts->end()) {
    const Layout& lay = it->second;
    ev->kind = lay.kind;
    pid_t pid = static_cast<pid_t>(n->pid);
    // The one copy of the caller's memory: the decision and the action use only these bytes.
    for (int i = 0; i < 6; i++) {
      ev->type6[i] = lay.type[i];
      if (lay.type[i] == ARG_CSTR) ev->state[i] = ReadCString(pid, n->data.args[i], lay.max[i], &ev->str[i]);
      else if (lay.type[i] == ARG_BUF)
        ev->state[i] = ReadBuffer(pid, n->data.args[i], n->data.args[lay.len_idx[i]], lay.max[i], &ev->str[i]);
    }
    if (lay.prepare) {
      char p[32];
      snprintf(p, sizeof(p), "/proc/%u", n->pid);
      procdir = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
      // The credentials are read only when TypeScript asks (notifyCreds, for a call it would emulate):
      // /proc/<tid>/status costs ~10 µs, most of a denied call's time on this thread.
      if (procdir >= 0) ev->prepared = true;
    }
  }
  // After reading memory and opening /proc/<tid>, before anyone relies on them: is it still the caller?
  if (notif::id_valid(l->fd, n->id) != 0) {
    if (procdir >= 0) close(procdir);
    return;  // the caller died or was interrupted; nothing to answer
  }
  uint64_t token = l->core->next_token.fetch_add(1);
  ev->token = token;
  {
    std::lock_guard<std::mutex> g(l->mu);
    Request r{n->id, procdir, t0};
    if (g_trace) {
      r.t_poll = t_poll;
      r.t_ready = NowUs();
      ev->traced = lp;
    }
    l->reqs[token] = r;
  }
  l->inflight.fetch_add(1);
  l->core->Post(ev.release());
}

void* ListenerThread(void* arg) {
  std::shared_ptr<Listener>* holder = static_cast<std::shared_ptr<Listener>*>(arg);
  std::shared_ptr<Listener> l = *holder;
  delete holder;
  size_t size = NotifSize();
  std::vector<uint8_t> buf(size);
  std::string reason = "stopped";
  int err = 0;
  while (!l->stop.load()) {
    struct pollfd pf[2] = {{l->wake, POLLIN, 0}, {l->fd, 0, 0}};
    // A full window: stop receiving (the calls wait in the kernel) until TypeScript answers some.
    if (l->inflight.load() < l->window) pf[1].events = POLLIN;
    int r = poll(pf, 2, -1);
    double t_poll = g_trace ? NowUs() : 0;
    if (r < 0) {
      if (errno == EINTR) continue;
      reason = "error";
      err = errno;
      break;
    }
    if (pf[0].revents & POLLIN) {
      uint64_t v;
      ssize_t rd = read(l->wake, &v, sizeof(v));
      (void)rd;
    }
    if (l->stop.load()) break;
    if (pf[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      // Every task using the filter has exited and been reaped (Linux >= 5.8).
      reason = "hup";
      break;
    }
    if (!(pf[1].revents & POLLIN)) continue;
    std::fill(buf.begin(), buf.end(), 0);  // RECV wants a zeroed buffer (EINVAL otherwise, >= 5.5)
    int rc;
    do rc = ioctl(l->fd, SECCOMP_IOCTL_NOTIF_RECV, buf.data());
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      if (errno == ENOENT) continue;  // the caller was killed before we got it; the next poll tells HUP
      reason = "error";
      err = errno;
      break;
    }
    if (uint64_t* ring = l->ring.load(std::memory_order_relaxed)) {
      uint64_t id = reinterpret_cast<const struct seccomp_notif*>(buf.data())->id;
      __atomic_store_n(&ring[id % hako_keeper::kRingSlots], id, __ATOMIC_RELAXED);
    }
    Handle(l, reinterpret_cast<const struct seccomp_notif*>(buf.data()), t_poll);
  }
  if (!l->stop.load()) {
    Event* ev = new Event();
    ev->type = Event::CLOSED;
    ev->listener = l->lid;
    ev->reason = reason;
    ev->err = err;
    l->core->Post(ev);
  }
  Tsfn tsfn = l->core->tsfn;
  l.reset();
  tsfn.Release();
  return nullptr;
}

bool StartThread(void* (*fn)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  // The thread must not take signals meant for Node's main thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rc = pthread_create(&t, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  errno = rc;
  return rc == 0;
}

// ---- the helper's replies ----

struct ReplyArgs {
  std::shared_ptr<Core> core;
  int sock;
  uint32_t gen;
};

void FinishPending(Core* core, uint64_t token, const Pending& p, const hako_policy::PolicyReply& rep) {
  int se = Send(p.listener->fd, p.id, rep.ret, rep.err);
  p.listener->Done();
  Event* ev = new Event();
  ev->type = Event::DONE;
  ev->listener = p.listener->lid;
  ev->token = token;
  ev->ret = rep.ret;
  ev->err = rep.err;
  ev->stage = rep.stage;
  ev->send_err = se;
  core->Post(ev);
}

void* ReplyThread(void* arg) {
  ReplyArgs* ra = static_cast<ReplyArgs*>(arg);
  std::shared_ptr<Core> core = ra->core;
  int sock = ra->sock;
  uint32_t gen = ra->gen;
  delete ra;
  for (;;) {
    hako_policy::PolicyReply rep;
    ssize_t n = recv(sock, &rep, sizeof(rep), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof(rep))) break;
    Pending p;
    {
      std::lock_guard<std::mutex> g(core->mu);
      auto it = core->pending.find(rep.token);
      if (it == core->pending.end()) continue;
      p = it->second;
      core->pending.erase(it);
    }
    FinishPending(core.get(), rep.token, p, rep);
  }
  // The helper is gone: what it held fails with EIO (the server starts a new helper).
  std::vector<std::pair<uint64_t, Pending>> lost;
  {
    std::lock_guard<std::mutex> g(core->mu);
    for (auto it = core->pending.begin(); it != core->pending.end();) {
      if (it->second.gen == gen) {
        lost.emplace_back(it->first, it->second);
        it = core->pending.erase(it);
      } else {
        ++it;
      }
    }
    if (core->helper == sock) core->helper = -1;
  }
  for (auto& kv : lost) {
    hako_policy::PolicyReply rep = {kv.first, -1, EIO, hako_policy::ST_CRASH};
    FinishPending(core.get(), kv.first, kv.second, rep);
  }
  if (!core->closed) {
    Event* ev = new Event();
    ev->type = Event::CLOSED;
    ev->listener = 0;  // listener 0: the helper
    ev->reason = "helper";
    core->Post(ev);
  }
  close(sock);
  Tsfn tsfn = core->tsfn;
  core.reset();
  tsfn.Release();
  return nullptr;
}

// ---- JavaScript side ----

Napi::Value Latin1(Napi::Env env, const std::string& s) {
  napi_value v;
  napi_create_string_latin1(env, s.data(), s.size(), &v);
  return Napi::Value(env, v);
}

void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t*, Event* ev) {
  std::unique_ptr<Event> owned(ev);
  if (env == nullptr || cb.IsEmpty()) return;
  Napi::Object o = Napi::Object::New(env);
  o.Set("listener", Napi::Number::New(env, ev->listener));
  switch (ev->type) {
    case Event::NOTIF: {
      if (g_trace) {
        double t = NowUs();
        if (std::shared_ptr<Listener> l = ev->traced.lock()) {
          std::lock_guard<std::mutex> g(l->mu);
          auto it = l->reqs.find(ev->token);
          if (it != l->reqs.end()) it->second.t_js = t;
        }
      }
      o.Set("type", Napi::String::New(env, "notif"));
      o.Set("token", Napi::Number::New(env, static_cast<double>(ev->token)));
      o.Set("id", Napi::BigInt::New(env, ev->id));
      o.Set("pid", Napi::Number::New(env, ev->pid));
      o.Set("arch", Napi::Number::New(env, ev->arch));
      o.Set("nr", Napi::Number::New(env, ev->nr));
      o.Set("kind", Napi::Number::New(env, ev->kind));
      o.Set("t0", Napi::Number::New(env, ev->t0));
      Napi::Array args = Napi::Array::New(env, 6);
      Napi::Array strs = Napi::Array::New(env, 6);
      Napi::Array states = Napi::Array::New(env, 6);
      for (uint32_t i = 0; i < 6; i++) {
        args.Set(i, Napi::BigInt::New(env, ev->args[i]));
        states.Set(i, Napi::Number::New(env, ev->state[i]));
        if (ev->state[i] == S_OK)
          strs.Set(i, ev->type6[i] == ARG_BUF ? Napi::Buffer<char>::Copy(env, ev->str[i].data(), ev->str[i].size()).As<Napi::Value>()
                                               : Latin1(env, ev->str[i]));
        else
          strs.Set(i, env.Null());
      }
      o.Set("args", args);
      o.Set("strs", strs);
      o.Set("states", states);
      if (ev->prepared) o.Set("prepared", Napi::Boolean::New(env, true));
      if (g_trace) {
        double t = NowUs();
        if (std::shared_ptr<Listener> l = ev->traced.lock()) {
          std::lock_guard<std::mutex> g(l->mu);
          auto it = l->reqs.find(ev->token);
          if (it != l->reqs.end()) it->second.t_built = t;
        }
      }
      break;
    }
    case Event::FAST: {
      // Let the next fixed denial post again first, then take the count: none is lost (a count of 0 means
      // this call was counted by the previous event).
      uint64_t count = 0;
      if (std::shared_ptr<Listener> l = ev->owner.lock()) {
        l->fast_posted.store(false);
        count = l->fast_count.exchange(0);
      }
      o.Set("type", Napi::String::New(env, "fastdeny"));
      o.Set("id", Napi::BigInt::New(env, ev->id));
      o.Set("pid", Napi::Number::New(env, ev->pid));
      o.Set("arch", Napi::Number::New(env, ev->arch));
      o.Set("nr", Napi::Number::New(env, ev->nr));
      o.Set("kind", Napi::Number::New(env, ev->kind));
      o.Set("t0", Napi::Number::New(env, ev->t0));
      o.Set("errno", Napi::Number::New(env, ev->err));
      o.Set("sendErrno", Napi::Number::New(env, ev->send_err));
      o.Set("count", Napi::Number::New(env, static_cast<double>(count)));
      Napi::Array args = Napi::Array::New(env, 6);
      Napi::Array strs = Napi::Array::New(env, 6);
      Napi::Array states = Napi::Array::New(env, 6);
      for (uint32_t i = 0; i < 6; i++) {
        args.Set(i, Napi::BigInt::New(env, ev->args[i]));
        states.Set(i, Napi::Number::New(env, ev->state[i]));
        if (ev->state[i] == S_OK)
          strs.Set(i, ev->type6[i] == ARG_BUF ? Napi::Buffer<char>::Copy(env, ev->str[i].data(), ev->str[i].size()).As<Napi::Value>()
                                               : Latin1(env, ev->str[i]));
        else
          strs.Set(i, env.Null());
      }
      o.Set("args", args);
      o.Set("strs", strs);
      o.Set("states", states);
      break;
    }
    case Event::CLOSED:
      o.Set("type", Napi::String::New(env, "closed"));
      o.Set("reason", Napi::String::New(env, ev->reason));
      o.Set("errno", Napi::Number::New(env, ev->err));
      break;
    case Event::DONE:
      o.Set("type", Napi::String::New(env, "done"));
      o.Set("token", Napi::Number::New(env, static_cast<double>(ev->token)));
      o.Set("ret", Napi::Number::New(env, static_cast<double>(ev->ret)));
      o.Set("errno", Napi::Number::New(env, ev->err));
      o.Set("stage", Napi::Number::New(env, ev->stage));
      o.Set("sendErrno", Napi::Number::New(env, ev->send_err));
      break;
  }
  napi_value argv[1] = {o};
  napi_value global;
  napi_get_global(env, &global);
  napi_value result;
  napi_call_function(env, global, cb, 1, argv, &result);
  // The handler catches its own errors; a throw here would be a bug in it: report, do not crash.
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

uint32_t U32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }

bool StartReplyThread(const std::shared_ptr<Core>& core, int sock) {
  ReplyArgs* ra = new ReplyArgs{core, sock, 0};
  {
    std::lock_guard<std::mutex> g(core->mu);
    core->helper = sock;
    ra->gen = ++core->helper_gen;
  }
  core->tsfn.Acquire();
  if (!StartThread(ReplyThread, ra)) {
    int e = errno;
    core->tsfn.Release();
    delete ra;
    errno = e;
    return false;
  }
  return true;
}

// notifyServerCreate(onEvent, helperSock) -> server id. The helper socket is owned from here on.
Napi::Value ServerCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) return ThrowType(env, "notifyServerCreate: a callback is required");
  std::shared_ptr<Core> core = std::make_shared<Core>();
  core->tsfn = Tsfn::New(env, info[0].As<Napi::Function>(), "hako-policy", 0, 1);
  core->tsfn.Unref(env);
  uint32_t sid;
  {
    std::lock_guard<std::mutex> g(g_mu);
    sid = g_next_core++;
    g_cores[sid] = core;
  }
  if (info[1].IsNumber() && !StartReplyThread(core, info[1].As<Napi::Number>().Int32Value()))
    return ThrowErrno(env, "policy server", errno, "start the helper reply thread");
  return Napi::Number::New(env, sid);
}

// notifyServerSetHelper(sid, sock): a new helper after the old one died.
Napi::Value ServerSetHelper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return ThrowErrno(env, "policy server", ENOENT, "closed");
  if (!StartReplyThread(core, info[1].As<Napi::Number>().Int32Value()))
    return ThrowErrno(env, "policy server", errno, "start the helper reply thread");
  return env.Undefined();
}

// notifyServerSetLayouts(sid, [[arch, nr, kind, types[6], max[6], lenIdx[6], prepare], ...])
Napi::Value ServerSetLayouts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return ThrowErrno(env, "policy server", ENOENT, "closed");
  if (!info[1].IsArray()) return ThrowType(env, "layouts: an array is required");
  Napi::Array a = info[1].As<Napi::Array>();
  std::shared_ptr<LayoutMap> m = std::make_shared<LayoutMap>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value ev = a.Get(i);
    if (!ev.IsArray()) return ThrowType(env, "layouts: each entry is an array");
    Napi::Array e = ev.As<Napi::Array>();
    Layout lay;
    uint32_t arch = e.Get(0u).As<Napi::Number>().Uint32Value();
    int32_t nr = e.Get(1u).As<Napi::Number>().Int32Value();
    lay.kind = e.Get(2u).As<Napi::Number>().Int32Value();
    Napi::Array types = e.Get(3u).As<Napi::Array>(), max = e.Get(4u).As<Napi::Array>(), len = e.Get(5u).As<Napi::Array>();
    for (uint32_t k = 0; k < 6; k++) {
      lay.type[k] = static_cast<uint8_t>(types.Get(k).As<Napi::Number>().Uint32Value());
      lay.max[k] = max.Get(k).As<Napi::Number>().Uint32Value();
      lay.len_idx[k] = static_cast<uint8_t>(std::min<uint32_t>(5, len.Get(k).As<Napi::Number>().Uint32Value()));
    }
    lay.prepare = e.Get(6u).ToBoolean();
    (*m)[LayoutKey(arch, nr)] = lay;
  }
  std::lock_guard<std::mutex> g(core->mu);
  core->layouts = m;
  return env.Undefined();
}

// notifyServerClose(sid): stop every listener (their fds close once no reply is pending), the helper
// channel, and the ThreadSafeFunction.
Napi::Value ServerClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core;
  {
    std::lock_guard<std::mutex> g(g_mu);
    auto it = g_cores.find(U32(info, 0));
    if (it == g_cores.end()) return env.Undefined();
    core = it->second;
    g_cores.erase(it);
  }
  std::map<uint32_t, std::shared_ptr<Listener>> ls;
  {
    std::lock_guard<std::mutex> g(core->mu);
    core->closed = true;
    ls.swap(core->listeners);
    if (core->helper >= 0) shutdown(core->helper, SHUT_RDWR);
  }
  for (auto& kv : ls) {
    kv.second->stop.store(true);
    kv.second->Wake();
  }
  core->tsfn.Release();
  return env.Undefined();
}

// notifyAdd(sid, fd, window, syncWakeUp, ringFd?) -> listener id. The fd is owned from here on; ringFd (a
// memfd from notifyRingCreate, shared with hako-fd-keeper) is mapped and stays the caller's to close.
Napi::Value Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  int fd = info[1].As<Napi::Number>().Int32Value();
  if (!core) {
    close(fd);
    return ThrowErrno(env, "policy server", ENOENT, "closed");
  }
  uint32_t window = std::max<uint32_t>(1, U32(info, 2));
  if (info[3].ToBoolean()) {
    uint64_t flags = kSyncWakeUp;
    ioctl(fd, kSetFlags, flags);  // Linux >= 6.6; older kernels: EINVAL, harmless
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(env, "eventfd", e);
  }
  std::shared_ptr<Listener> l = std::make_shared<Listener>();
  l->fd = fd;
  l->wake = wake;
  l->window = window;
  l->core = core;
  if (info.Length() > 4 && info[4].IsNumber()) {
    void* m = mmap(nullptr, hako_keeper::kRingBytes, PROT_READ | PROT_WRITE, MAP_SHARED, info[4].As<Napi::Number>().Int32Value(), 0);
    if (m != MAP_FAILED) l->ring.store(static_cast<uint64_t*>(m));  // else: served, only not recoverable after a crash
  }
  {
    std::lock_guard<std::mutex> g(core->mu);
    l->lid = core->next_lid++;
    core->listeners[l->lid] = l;
  }
  core->tsfn.Acquire();
  if (!StartThread(ListenerThread, new std::shared_ptr<Listener>(l))) {
    int e = errno;
    core->tsfn.Release();
    std::lock_guard<std::mutex> g(core->mu);
    core->listeners.erase(l->lid);
    return ThrowErrno(env, "pthread_create", e);
  }
  return Napi::Number::New(env, l->lid);
}

// notifyRemove(sid, lid): forget a listener (after its "closed" event, or to drop a container).
Napi::Value Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return env.Undefined();
  std::shared_ptr<Listener> l;
  {
    std::lock_guard<std::mutex> g(core->mu);
    auto it = core->listeners.find(U32(info, 1));
    if (it == core->listeners.end()) return env.Undefined();
    l = it->second;
    core->listeners.erase(it);
  }
  l->stop.store(true);
  l->Wake();
  return env.Undefined();
}

// notifyRespond(sid, lid, token, errno, val) -> 0, or the errno of NOTIF_SEND (ENOENT: the caller is gone).
Napi::Value Respond(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return Napi::Number::New(env, ENOENT);
  std::shared_ptr<Listener> l = core->Find(U32(info, 1));
  if (!l) return Napi::Number::New(env, ENOENT);
  Request req;
  uint64_t token = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  if (!l->Take(token, &req)) return Napi::Number::New(env, EALREADY);
  int err = info[3].As<Napi::Number>().Int32Value();
  int64_t val = info[4].IsNumber() ? info[4].As<Napi::Number>().Int64Value() : 0;
  double t_resp = g_trace ? NowUs() : 0;
  int se = Send(l->fd, req.id, val, err);
  if (g_trace) TraceAnswer(req, t_resp, NowUs());
  if (req.procdir >= 0) close(req.procdir);
  l->Done();
  return Napi::Number::New(env, se);
}

bool GetBytes(Napi::Value v, std::string* out) {
  if (v.IsBuffer()) {
    Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
    out->assign(b.Data(), b.Length());
    return true;
  }
  if (v.IsString()) {
    size_t len;
    napi_get_value_string_latin1(v.Env(), v, nullptr, 0, &len);
    out->resize(len + 1);
    napi_get_value_string_latin1(v.Env(), v, &(*out)[0], len + 1, &len);
    out->resize(len);
    return true;
  }
  return false;
}

// notifyEmulate(sid, lid, token, op, flags, ints[6], strs[6] (string|Buffer|null), timeoutMs) -> 0, or an
// errno when the request could not be handed to the helper (the caller has then been answered with it).
// The result arrives later as a "done" event.
Napi::Value Emulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return Napi::Number::New(env, ENOENT);
  std::shared_ptr<Listener> l = core->Find(U32(info, 1));
  if (!l) return Napi::Number::New(env, ENOENT);
  uint64_t token = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  Request req;
  if (!l->Take(token, &req)) return Napi::Number::New(env, EALREADY);
  hako_policy::PolicyRequest h;
  memset(&h, 0, sizeof(h));
  h.magic = hako_policy::kMagic;
  h.op = U32(info, 3);
  h.flags = U32(info, 4);
  h.timeout_ms = U32(info, 7);
  h.token = token;
  h.notif_id = req.id;
  Napi::Array ints = info[5].As<Napi::Array>();
  Napi::Array strs = info[6].As<Napi::Array>();
  std::string body;
  std::string s[6];
  for (uint32_t i = 0; i < 6; i++) {
    h.i[i] = i < ints.Length() ? ints.Get(i).As<Napi::Number>().Int64Value() : 0;
    if (i < strs.Length() && GetBytes(strs.Get(i), &s[i])) {
      h.has_str |= 1u << i;
      h.str_len[i] = static_cast<uint32_t>(std::min<size_t>(s[i].size(), hako_policy::kMaxStr));
    }
  }
  body.append(reinterpret_cast<const char*>(&h), sizeof(h));
  for (int i = 0; i < 6; i++) body.append(s[i].data(), h.str_len[i]);
  int err = 0;
  if (req.procdir < 0) err = ESRCH;
  int sock = -1;
  uint32_t gen = 0;
  if (!err) {
    std::lock_guard<std::mutex> g(core->mu);
    sock = core->helper;
    gen = core->helper_gen;
    if (sock < 0) err = EAGAIN;
    else core->pending[token] = Pending{l, req.id, gen};
  }
  if (!err) {
    int fds[2] = {l->fd, req.procdir};
    struct iovec iov = {&body[0], body.size()};
    ssize_t w = scm::send_fds(sock, &iov, 1, fds, 2, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) {
      err = errno == EWOULDBLOCK ? EAGAIN : errno == EPIPE || errno == ECONNRESET ? EAGAIN : errno;
      std::lock_guard<std::mutex> g(core->mu);
      core->pending.erase(token);
    }
  }
  if (req.procdir >= 0) close(req.procdir);
  if (err) {
    Send(l->fd, req.id, 0, err);
    l->Done();
  }
  return Napi::Number::New(env, err);
}

// notifyCheckFd(fd) -> null when fd is a seccomp notify fd, else the reason it is not.
Napi::Value CheckFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  char p[64], target[128];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, target, sizeof(target) - 1);
  if (n < 0) return Napi::String::New(env, std::string("not an open fd: ") + strerror(errno));
  target[n] = 0;
  if (strcmp(target, "anon_inode:seccomp notify") != 0) return Napi::String::New(env, std::string("not a seccomp notify fd (") + target + ")");
  // The ioctl must be understood: ENOENT for an id that is not pending.
  int e = notif::id_valid(fd, 0);
  if (e != ENOENT && e != 0) return Napi::String::New(env, std::string("NOTIF_ID_VALID refused: ") + strerror(e));
  return env.Null();
}

// ---- the listening socket: accept with peer credentials, chunked receive with fds ----

// policyAccept(fd) -> {fd, pid, uid, gid} | null (nothing pending)
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int lfd = info[0].As<Napi::Number>().Int32Value();
  int c;
  do c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  while (c < 0 && errno == EINTR);
  if (c < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return env.Null();
    return ThrowErrno(env, "accept", errno);
  }
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    int e = errno;
    close(c);
    return ThrowErrno(env, "SO_PEERCRED", e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, c));
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

// policyRecv(fd, maxBytes) -> {data: Buffer|null, fds: number[], eof, again, ctrunc}
// Non-blocking; fds arrive close-on-exec. Every received fd is the caller's to close. ctrunc: more fds than
// 16 came, all closed here (scm.h), with no data and no fds.
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  size_t max = std::max<uint32_t>(1, U32(info, 1));
  std::vector<char> buf(std::min<size_t>(max, 65536));
  struct iovec iov = {buf.data(), buf.size()};
  int got[16];
  size_t nfds = 0;
  ssize_t n = scm::recv_fds(fd, &iov, 1, got, 16, &nfds, MSG_DONTWAIT);
  int err = n < 0 ? errno : 0;
  Napi::Object o = Napi::Object::New(env);
  Napi::Array fds = Napi::Array::New(env);
  if (err == EAGAIN || err == EWOULDBLOCK) {
    o.Set("again", Napi::Boolean::New(env, true));
    o.Set("fds", fds);
    return o;
  }
  if (err == EMSGSIZE) {
    // More than 16 fds: scm.h has closed every one that came; the connection is unusable.
    o.Set("fds", fds);
    o.Set("ctrunc", Napi::Boolean::New(env, true));
    return o;
  }
  if (n < 0) return ThrowErrno(env, "recvmsg", err);
  for (uint32_t k = 0; k < nfds; k++) fds.Set(k, Napi::Number::New(env, got[k]));
  o.Set("fds", fds);
  o.Set("eof", Napi::Boolean::New(env, n == 0));
  o.Set("data", n > 0 ? Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n)).As<Napi::Value>() : env.Null());
  return o;
}

// Persistent readiness watch of an fd: policyFdWatch(fd, cb(status, events)) -> id; policyFdUnwatch(id).
struct FdWatch {
  Napi::Env env;
  uint32_t id;
  Napi::FunctionReference cb;
  uv_poll_t poll;
};
std::map<uint32_t, FdWatch*> g_fdwatches;
uint32_t g_next_fdwatch = 1;

void OnFdReady(uv_poll_t* h, int status, int events) {
  FdWatch* w = static_cast<FdWatch*>(h->data);
  Napi::Env env = w->env;
  Napi::HandleScope scope(env);
  napi_value args[2] = {Napi::Number::New(env, status), Napi::Number::New(env, events)};
  w->cb.Value().MakeCallback(env.Global(), 2, args);
}

Napi::Value FdWatchStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  FdWatch* w = new FdWatch{env, g_next_fdwatch++, Napi::Persistent(info[1].As<Napi::Function>()), {}};
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  w->poll.data = w;
  if (uv_poll_init(loop, &w->poll, fd) != 0) {
    delete w;
    return ThrowErrno(env, "watch", EBADF, "fd poll");
  }
  uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, OnFdReady);
  if (info.Length() > 2 && !info[2].ToBoolean()) uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  g_fdwatches[w->id] = w;
  return Napi::Number::New(env, w->id);
}

Napi::Value FdWatchStop(const Napi::CallbackInfo& info) {
  auto it = g_fdwatches.find(U32(info, 0));
  if (it != g_fdwatches.end()) {
    FdWatch* w = it->second;
    g_fdwatches.erase(it);
    uv_poll_stop(&w->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), [](uv_handle_t* h) { delete static_cast<FdWatch*>(h->data); });
  }
  return info.Env().Undefined();
}

Napi::Value NowMicros(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), NowUs()); }

// notifyCallerNs(sid, lid, token) -> NsInfo of a pending notification's caller, read through the /proc/<tid>
// directory opened (and validated with NOTIF_ID_VALID) when it was received; null when there is none. A
// caller that died since has no namespaces to read (ESRCH/ENOENT are thrown).
Napi::Value CallerNs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return env.Null();
  std::shared_ptr<Listener> l = core->Find(U32(info, 1));
  if (!l) return env.Null();
  uint64_t token = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  int procdir = -1;
  {
    std::lock_guard<std::mutex> g(l->mu);
    auto it = l->reqs.find(token);
    if (it == l->reqs.end() || it->second.procdir < 0) return env.Null();
    // A duplicate: Respond/Emulate may close the original on another thread's behalf later.
    procdir = fcntl(it->second.procdir, F_DUPFD_CLOEXEC, 3);
  }
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

// notifySetFixed(sid, lid, [[arch, nr, errno], ...]): calls of this listener answered on its thread with
// that errno, whatever their arguments (an empty list: none). TypeScript computes it from the policy.
Napi::Value SetFixed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return env.Undefined();
  std::shared_ptr<Listener> l = core->Find(U32(info, 1));
  if (!l) return env.Undefined();
  if (!info[2].IsArray()) return ThrowType(env, "notifySetFixed: an array is required");
  Napi::Array a = info[2].As<Napi::Array>();
  std::shared_ptr<FixedMap> m;
  if (a.Length()) m = std::make_shared<FixedMap>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Array e = a.Get(i).As<Napi::Array>();
    (*m)[LayoutKey(e.Get(0u).As<Napi::Number>().Uint32Value(), e.Get(1u).As<Napi::Number>().Int32Value())] = CleanErrno(e.Get(2u).As<Napi::Number>().Int32Value());
  }
  std::lock_guard<std::mutex> g(l->mu);
  l->fixed = m;
  return env.Undefined();
}

// notifyCreds(sid, lid, token) -> {uid, euid, fsuid, gid, egid, fsgid, capEff} | null: the caller's credentials,
// read through the /proc/<tid> fd opened and validated (NOTIF_ID_VALID) when the call was received, so they
// are the caller's even if its pid has been reused since. null: not prepared, already answered, unreadable.
Napi::Value CredsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return env.Null();
  std::shared_ptr<Listener> l = core->Find(U32(info, 1));
  if (!l) return env.Null();
  uint64_t token = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  int procdir = -1;
  {
    std::lock_guard<std::mutex> g(l->mu);
    auto it = l->reqs.find(token);
    if (it == l->reqs.end() || it->second.procdir < 0) return env.Null();
    procdir = fcntl(it->second.procdir, F_DUPFD_CLOEXEC, 3);  // the request may be answered meanwhile
  }
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

// notifyTrace(reset?) -> null (HAKO_NOTIFY_TRACE unset) or {n, stages: [name, p50, p90, mean][]} in µs.
Napi::Value Trace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_trace) return env.Null();
  std::vector<std::array<float, 6>> s;
  {
    std::lock_guard<std::mutex> g(g_trace_mu);
    s = g_trace_samples;
    if (info[0].ToBoolean()) g_trace_samples.clear();
  }
  static const char* names[6] = {"poll wake-up to RECV done", "copy + /proc + ID_VALID", "handoff to the JS thread", "event object (N-API)", "JS: decision, audit", "NOTIF_SEND"};
  Napi::Object o = Napi::Object::New(env);
  o.Set("n", Napi::Number::New(env, static_cast<double>(s.size())));
  Napi::Array stages = Napi::Array::New(env, 6);
  for (uint32_t k = 0; k < 6; k++) {
    std::vector<float> v(s.size());
    double sum = 0;
    for (size_t i = 0; i < s.size(); i++) sum += v[i] = s[i][k];
    std::sort(v.begin(), v.end());
    Napi::Array row = Napi::Array::New(env, 4);
    row.Set(0u, Napi::String::New(env, names[k]));
    row.Set(1u, Napi::Number::New(env, v.empty() ? 0 : v[v.size() / 2]));
    row.Set(2u, Napi::Number::New(env, v.empty() ? 0 : v[(v.size() * 9) / 10]));
    row.Set(3u, Napi::Number::New(env, v.empty() ? 0 : sum / static_cast<double>(v.size())));
    stages.Set(k, row);
  }
  o.Set("stages", stages);
  return o;
}

// ---- hako-fd-keeper (lib/policy/keeper.ts) ----

// notifyKeep(sid, lid, ringFd) -> a close-on-exec dup of the listener's notify fd, for hako-fd-keeper. The
// ring (a notifyRingCreate memfd, stays the caller's to close) is mapped, if the listener has none yet, and
// from now on records every id received.
Napi::Value Keep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = FindCore(U32(info, 0));
  if (!core) return ThrowErrno(env, "policy server", ENOENT, "closed");
  std::shared_ptr<Listener> l = core->Find(U32(info, 1));
  if (!l) return ThrowErrno(env, "policy server", ENOENT, "no such listener");
  if (!l->ring.load()) {
    void* m = mmap(nullptr, hako_keeper::kRingBytes, PROT_READ | PROT_WRITE, MAP_SHARED, info[2].As<Napi::Number>().Int32Value(), 0);
    if (m == MAP_FAILED) return ThrowErrno(env, "mmap", errno, "notify ring");
    uint64_t* expected = nullptr;
    if (!l->ring.compare_exchange_strong(expected, static_cast<uint64_t*>(m))) munmap(m, hako_keeper::kRingBytes);
  }
  int d = fcntl(l->fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return ThrowErrno(env, "dup", errno, "notify fd");
  return Napi::Number::New(env, d);
}

// notifyRingCreate() -> fd: a zeroed memfd of kRingBytes, close-on-exec.
Napi::Value RingCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(syscall(SYS_memfd_create, "hako-notify-ring", 1u /* MFD_CLOEXEC */));
  if (fd < 0) return ThrowErrno(env, "memfd_create", errno);
  if (ftruncate(fd, hako_keeper::kRingBytes) < 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(env, "ftruncate", e, "notify ring");
  }
  return Napi::Number::New(env, fd);
}

// keeperConnect(path) -> {fd, uid, pid} (a non-blocking SOCK_SEQPACKET, close-on-exec), or an errno number
// when nothing listens there (ENOENT, ECONNREFUSED: the caller starts a keeper).
Napi::Value KeeperConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un a;
  memset(&a, 0, sizeof(a));
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) return ThrowErrno(env, "connect", ENAMETOOLONG, path);
  memcpy(a.sun_path, path.data(), path.size());
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return ThrowErrno(env, "socket", errno);
  // A local connect never waits for the peer to accept (it fails with EAGAIN when the backlog is full).
  int rc;
  do rc = connect(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    close(s);
    return Napi::Number::New(env, e);
  }
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || fcntl(s, F_SETFL, O_NONBLOCK) < 0) {
    int e = errno;
    close(s);
    return ThrowErrno(env, "keeper socket", e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, s));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("pid", Napi::Number::New(env, cred.pid));
  return o;
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("notifyServerCreate", Napi::Function::New(env, ServerCreate, "notifyServerCreate"));
  exports.Set("notifyServerSetHelper", Napi::Function::New(env, ServerSetHelper, "notifyServerSetHelper"));
  exports.Set("notifyServerSetLayouts", Napi::Function::New(env, ServerSetLayouts, "notifyServerSetLayouts"));
  exports.Set("notifyServerClose", Napi::Function::New(env, ServerClose, "notifyServerClose"));
  exports.Set("notifyAdd", Napi::Function::New(env, Add, "notifyAdd"));
  exports.Set("notifyRemove", Napi::Function::New(env, Remove, "notifyRemove"));
  exports.Set("notifyRespond", Napi::Function::New(env, Respond, "notifyRespond"));
  exports.Set("notifyEmulate", Napi::Function::New(env, Emulate, "notifyEmulate"));
  exports.Set("notifyCheckFd", Napi::Function::New(env, CheckFd, "notifyCheckFd"));
  exports.Set("notifyNow", Napi::Function::New(env, NowMicros, "notifyNow"));
  exports.Set("notifyCallerNs", Napi::Function::New(env, CallerNs, "notifyCallerNs"));
  exports.Set("policyNsInfo", Napi::Function::New(env, PidNs, "policyNsInfo"));
  exports.Set("notifySetFixed", Napi::Function::New(env, SetFixed, "notifySetFixed"));
  exports.Set("notifyCreds", Napi::Function::New(env, CredsOf, "notifyCreds"));
  exports.Set("notifyTrace", Napi::Function::New(env, Trace, "notifyTrace"));
  exports.Set("notifyKeep", Napi::Function::New(env, Keep, "notifyKeep"));
  exports.Set("notifyRingCreate", Napi::Function::New(env, RingCreate, "notifyRingCreate"));
  exports.Set("keeperConnect", Napi::Function::New(env, KeeperConnect, "keeperConnect"));
  exports.Set("policyAccept", Napi::Function::New(env, Accept, "policyAccept"));
  exports.Set("policyRecv", Napi::Function::New(env, Recv, "policyRecv"));
  exports.Set("policyFdWatch", Napi::Function::New(env, FdWatchStart, "policyFdWatch"));
  exports.Set("policyFdUnwatch", Napi::Function::New(env, FdWatchStop, "policyFdUnwatch"));
}

}  // namespace hako
