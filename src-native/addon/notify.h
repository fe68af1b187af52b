// Seccomp user-notification supervision for the policy server (lib/policy): what its files share.
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
//
// The files:
//   notify_listener.cc  the listener threads: receive, copy the arguments, hand to TypeScript, answer fixed denials
//   notify_helper.cc    the channel to hako-policy-helper: emulations out, replies in (a reply thread)
//   notify_events.cc    events turned into JavaScript objects on the event loop (CallJs)
//   notify_caller.cc    the caller's namespaces and credentials, read through its /proc/<tid> directory
//   notify_api.cc       the N-API entry points of a server and its listeners (notify*)
//   policy_socket.cc    the policy socket and hako-fd-keeper plumbing (policy*, keeper*), no server state
#pragma once
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "../helper/policy_proto.h"
#include "common.h"

namespace hako {
namespace notify {

double NowUs();
// An errno the kernel passes to the caller unchanged and that means what it says: 1..4095 except the
// kernel-internal restart codes (512..530), which a supervisor must never return.
int CleanErrno(int e);
// NOTIF_SEND of an answer: `err` (made clean) or, with err 0, `val`. 0 or the errno (ENOENT: the caller is gone).
int Send(int fd, uint64_t id, int64_t val, int err);
// A detached thread with every signal blocked (they are Node's main thread's). false with errno.
bool StartThread(void* (*fn)(void*), void* arg);

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
inline uint64_t LayoutKey(uint32_t arch, int32_t nr) {
  return (static_cast<uint64_t>(arch) << 32) | static_cast<uint32_t>(nr);
}

// ---- events handed to TypeScript ----

struct Listener;

struct Event {
  enum Type { NOTIF, CLOSED, DONE, FAST } type = NOTIF;
  std::weak_ptr<Listener> owner;   // FAST: whose count CallJs takes
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
extern const bool g_trace;
// One sample for request `r`, answered at t_resp (JS) and sent at t_sent.
void TraceAnswer(const Request& r, double t_resp, double t_sent);
// The samples so far (emptied when `reset`).
std::vector<std::array<float, 6>> TraceSamples(bool reset);

struct Core;
void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t*, Event* ev);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Event, CallJs>;
// The ThreadSafeFunction of a new server, calling `cb` with each event. Made in notify_events.cc, beside
// CallJs: node-addon-api compares CallJs with nullptr at compile time, which a translation unit that only
// declares it cannot do under the sanitizers (scripts/sanitize.sh).
Tsfn NewTsfn(Napi::Env env, Napi::Function cb);

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

  // Answers what was received and never answered (see notify_listener.cc), closes the fds.
  ~Listener();
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
  // A close-on-exec duplicate of the /proc/<tid> directory of request `token` (another thread may answer the
  // request and close the original meanwhile). -1 with *found false: no such request, or none was opened.
  int DupProcdir(uint64_t token, bool* found) {
    std::lock_guard<std::mutex> g(mu);
    auto it = reqs.find(token);
    *found = it != reqs.end() && it->second.procdir >= 0;
    return *found ? fcntl(it->second.procdir, F_DUPFD_CLOEXEC, 3) : -1;
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

// The server info[0] names and, when `with_listener`, its listener info[1]: the one lookup of every entry
// point. Either is null when it is gone (the server closed, the listener removed).
struct Target {
  std::shared_ptr<Core> core;
  std::shared_ptr<Listener> listener;
};
Target Lookup(const Napi::CallbackInfo& info, bool with_listener = true);
uint32_t U32(const Napi::CallbackInfo& info, size_t i);
// A request's token (a number from an event).
uint64_t Token(const Napi::CallbackInfo& info, size_t i);

// notify_listener.cc: the thread of one listener; takes a heap-allocated shared_ptr<Listener>.
void* ListenerThread(void* arg);
// notify_helper.cc: a reply thread for a new helper socket (owned from here on). false with errno.
bool StartReplyThread(const std::shared_ptr<Core>& core, int sock);
// notify_helper.cc: hand request `req` (taken from l) to the helper as `body` (a PolicyRequest and its
// strings), and close req.procdir. 0, or the errno it could not be handed over with: the caller has then
// been answered with it, and its place in the window freed.
int HandToHelper(const std::shared_ptr<Core>& core, const std::shared_ptr<Listener>& l, uint64_t token,
                 const Request& req, const std::string& body);

// notify_caller.cc: entry points.
Napi::Value CallerNs(const Napi::CallbackInfo& info);
Napi::Value PidNs(const Napi::CallbackInfo& info);
Napi::Value CredsOf(const Napi::CallbackInfo& info);

}  // namespace notify
}  // namespace hako
