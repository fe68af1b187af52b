// The N-API entry points of the policy server's notification side (notify*): a server (its event callback,
// helper socket and argument layouts), its listeners, and the answers TypeScript gives. Every entry point
// finds its server and listener with Lookup.
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <algorithm>

#include "notify.h"
#include "../common/notif.h"
#include "../keeper/keeper_proto.h"

namespace hako {
namespace notify {
namespace {

const unsigned long kSetFlags = _IOW('!', 4, uint64_t);
const uint64_t kSyncWakeUp = 1;

std::mutex g_mu;
std::map<uint32_t, std::shared_ptr<Core>> g_cores;
uint32_t g_next_core = 1;

std::shared_ptr<Core> FindCore(uint32_t sid) {
  std::lock_guard<std::mutex> g(g_mu);
  auto it = g_cores.find(sid);
  return it == g_cores.end() ? nullptr : it->second;
}

}  // namespace

uint32_t U32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }
uint64_t Token(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<uint64_t>(info[i].As<Napi::Number>().Int64Value());
}

Target Lookup(const Napi::CallbackInfo& info, bool with_listener) {
  Target t;
  t.core = FindCore(U32(info, 0));
  if (t.core && with_listener) t.listener = t.core->Find(U32(info, 1));
  return t;
}

namespace {

// notifyServerCreate(onEvent, helperSock) -> server id. The helper socket is owned from here on.
Napi::Value ServerCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) return ThrowType(env, "notifyServerCreate: a callback is required");
  std::shared_ptr<Core> core = std::make_shared<Core>();
  core->tsfn = NewTsfn(env, info[0].As<Napi::Function>());
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
  std::shared_ptr<Core> core = Lookup(info, false).core;
  if (!core) return ThrowErrno(env, "policy server", ENOENT, "closed");
  if (!StartReplyThread(core, info[1].As<Napi::Number>().Int32Value()))
    return ThrowErrno(env, "policy server", errno, "start the helper reply thread");
  return env.Undefined();
}

// notifyServerSetLayouts(sid, [[arch, nr, kind, types[6], max[6], lenIdx[6], prepare], ...])
Napi::Value ServerSetLayouts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = Lookup(info, false).core;
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
    Napi::Array types = e.Get(3u).As<Napi::Array>(), max = e.Get(4u).As<Napi::Array>(),
                len = e.Get(5u).As<Napi::Array>();
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

// [[arch, nr, errno], ...] -> the fixed denials of a listener (nullptr for an empty list: none). False after
// throwing a TypeError for anything else.
bool ParseFixed(Napi::Env env, const Napi::Value& v, const char* who, std::shared_ptr<FixedMap>* out) {
  if (!v.IsArray()) {
    ThrowType(env, (std::string(who) + ": an array of [arch, nr, errno] is required").c_str());
    return false;
  }
  Napi::Array a = v.As<Napi::Array>();
  std::shared_ptr<FixedMap> m;
  if (a.Length()) m = std::make_shared<FixedMap>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value ev = a.Get(i);
    Napi::Array e = ev.As<Napi::Array>();
    if (!ev.IsArray() || e.Length() != 3 || !e.Get(0u).IsNumber() || !e.Get(1u).IsNumber() || !e.Get(2u).IsNumber()) {
      ThrowType(env, (std::string(who) + ": each entry must be [arch, nr, errno]").c_str());
      return false;
    }
    (*m)[LayoutKey(e.Get(0u).As<Napi::Number>().Uint32Value(), e.Get(1u).As<Napi::Number>().Int32Value())] =
        CleanErrno(e.Get(2u).As<Napi::Number>().Int32Value());
  }
  *out = std::move(m);
  return true;
}

// notifyAdd(sid, fd, window, syncWakeUp, ringFd?, fixed?) -> listener id. The fd is owned from here on; ringFd (a
// memfd from notifyRingCreate, shared with hako-fd-keeper) is mapped and stays the caller's to close. `fixed`
// (as notifySetFixed) is in place before the thread receives anything: a container's first calls arrive as soon
// as the fd is served, and must get the same answer, from the same place, as the rest.
Napi::Value Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Core> core = Lookup(info, false).core;
  int fd = info[1].As<Napi::Number>().Int32Value();
  if (!core) {
    close(fd);
    return ThrowErrno(env, "policy server", ENOENT, "closed");
  }
  std::shared_ptr<FixedMap> fixed;
  if (info.Length() > 5 && !info[5].IsUndefined() && !ParseFixed(env, info[5], "notifyAdd", &fixed)) {
    close(fd);
    return env.Undefined();
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
  l->fixed = fixed;
  if (info.Length() > 4 && info[4].IsNumber()) {
    void* m = mmap(nullptr, hako_keeper::kRingBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   info[4].As<Napi::Number>().Int32Value(), 0);
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
  std::shared_ptr<Core> core = Lookup(info, false).core;
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
  std::shared_ptr<Listener> l = Lookup(info).listener;
  if (!l) return Napi::Number::New(env, ENOENT);
  Request req;
  uint64_t token = Token(info, 2);
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
  Target t = Lookup(info);
  if (!t.listener) return Napi::Number::New(env, ENOENT);
  uint64_t token = Token(info, 2);
  Request req;
  if (!t.listener->Take(token, &req)) return Napi::Number::New(env, EALREADY);
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
  int err = HandToHelper(t.core, t.listener, token, req, body);
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
  if (strcmp(target, "anon_inode:seccomp notify") != 0)
    return Napi::String::New(env, std::string("not a seccomp notify fd (") + target + ")");
  // The ioctl must be understood: ENOENT for an id that is not pending.
  int e = notif::id_valid(fd, 0);
  if (e != ENOENT && e != 0) return Napi::String::New(env, std::string("NOTIF_ID_VALID refused: ") + strerror(e));
  return env.Null();
}

// notifySetFixed(sid, lid, [[arch, nr, errno], ...]): calls of this listener answered on its thread with
// that errno, whatever their arguments (an empty list: none). TypeScript computes it from the policy.
Napi::Value SetFixed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Listener> l = Lookup(info).listener;
  if (!l) return env.Undefined();
  std::shared_ptr<FixedMap> m;
  if (!ParseFixed(env, info[2], "notifySetFixed", &m)) return env.Undefined();
  std::lock_guard<std::mutex> g(l->mu);
  l->fixed = m;
  return env.Undefined();
}

// notifyTrace(reset?) -> null (HAKO_NOTIFY_TRACE unset) or {n, stages: [name, p50, p90, mean][]} in µs.
Napi::Value Trace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_trace) return env.Null();
  std::vector<std::array<float, 6>> s = TraceSamples(info[0].ToBoolean());
  static const char* names[6] = {"poll wake-up to RECV done", "copy + /proc + ID_VALID", "handoff to the JS thread",
                                 "event object (N-API)",      "JS: decision, audit",     "NOTIF_SEND"};
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

Napi::Value NowMicros(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), NowUs()); }

// ---- hako-fd-keeper (lib/policy/keeper.ts) ----

// notifyKeep(sid, lid, ringFd) -> a close-on-exec dup of the listener's notify fd, for hako-fd-keeper. The
// ring (a notifyRingCreate memfd, stays the caller's to close) is mapped, if the listener has none yet, and
// from now on records every id received.
Napi::Value Keep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target t = Lookup(info);
  if (!t.core) return ThrowErrno(env, "policy server", ENOENT, "closed");
  std::shared_ptr<Listener> l = t.listener;
  if (!l) return ThrowErrno(env, "policy server", ENOENT, "no such listener");
  if (!l->ring.load()) {
    void* m = mmap(nullptr, hako_keeper::kRingBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   info[2].As<Napi::Number>().Int32Value(), 0);
    if (m == MAP_FAILED) return ThrowErrno(env, "mmap", errno, "notify ring");
    uint64_t* expected = nullptr;
    if (!l->ring.compare_exchange_strong(expected, static_cast<uint64_t*>(m))) munmap(m, hako_keeper::kRingBytes);
  }
  int d = fcntl(l->fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return ThrowErrno(env, "dup", errno, "notify fd");
  return Napi::Number::New(env, d);
}

}  // namespace
}  // namespace notify

void InitNotify(Napi::Env env, Napi::Object exports) {
  using namespace notify;
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
}

}  // namespace hako
