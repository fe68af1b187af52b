// Events from the listener and reply threads, turned into JavaScript objects on the event loop (the
// ThreadSafeFunction's CallJs) and passed to the server's handler.
#include "notify.h"

namespace hako {
namespace notify {
namespace {

Napi::Value Latin1(Napi::Env env, const std::string& s) {
  napi_value v;
  napi_create_string_latin1(env, s.data(), s.size(), &v);
  return Napi::Value(env, v);
}

// HAKO_NOTIFY_TRACE: the time `field` of the request an event carries.
void Stamp(const Event* ev, double Request::*field) {
  double t = NowUs();
  if (std::shared_ptr<Listener> l = ev->traced.lock()) {
    std::lock_guard<std::mutex> g(l->mu);
    auto it = l->reqs.find(ev->token);
    if (it != l->reqs.end()) it->second.*field = t;
  }
}

// The call of a notification or fixed denial: id, pid, arch, nr, kind, t0.
void SetCall(Napi::Env env, Napi::Object o, const Event* ev) {
  o.Set("id", Napi::BigInt::New(env, ev->id));
  o.Set("pid", Napi::Number::New(env, ev->pid));
  o.Set("arch", Napi::Number::New(env, ev->arch));
  o.Set("nr", Napi::Number::New(env, ev->nr));
  o.Set("kind", Napi::Number::New(env, ev->kind));
  o.Set("t0", Napi::Number::New(env, ev->t0));
}

// Its arguments: args (BigInt), strs (the copied strings and buffers, or null), states (StrState).
void SetArgs(Napi::Env env, Napi::Object o, const Event* ev) {
  Napi::Array args = Napi::Array::New(env, 6);
  Napi::Array strs = Napi::Array::New(env, 6);
  Napi::Array states = Napi::Array::New(env, 6);
  for (uint32_t i = 0; i < 6; i++) {
    args.Set(i, Napi::BigInt::New(env, ev->args[i]));
    states.Set(i, Napi::Number::New(env, ev->state[i]));
    if (ev->state[i] == S_OK)
      strs.Set(i, ev->type6[i] == ARG_BUF
                      ? Napi::Buffer<char>::Copy(env, ev->str[i].data(), ev->str[i].size()).As<Napi::Value>()
                      : Latin1(env, ev->str[i]));
    else strs.Set(i, env.Null());
  }
  o.Set("args", args);
  o.Set("strs", strs);
  o.Set("states", states);
}

}  // namespace

void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t*, Event* ev) {
  std::unique_ptr<Event> owned(ev);
  if (env == nullptr || cb.IsEmpty()) return;
  Napi::Object o = Napi::Object::New(env);
  o.Set("listener", Napi::Number::New(env, ev->listener));
  switch (ev->type) {
    case Event::NOTIF:
      if (g_trace) Stamp(ev, &Request::t_js);
      o.Set("type", Napi::String::New(env, "notif"));
      o.Set("token", Napi::Number::New(env, static_cast<double>(ev->token)));
      SetCall(env, o, ev);
      SetArgs(env, o, ev);
      if (ev->prepared) o.Set("prepared", Napi::Boolean::New(env, true));
      if (g_trace) Stamp(ev, &Request::t_built);
      break;
    case Event::FAST: {
      // Let the next fixed denial post again first, then take the count: none is lost (a count of 0 means
      // this call was counted by the previous event).
      uint64_t count = 0;
      if (std::shared_ptr<Listener> l = ev->owner.lock()) {
        l->fast_posted.store(false);
        count = l->fast_count.exchange(0);
      }
      o.Set("type", Napi::String::New(env, "fastdeny"));
      SetCall(env, o, ev);
      o.Set("errno", Napi::Number::New(env, ev->err));
      o.Set("sendErrno", Napi::Number::New(env, ev->send_err));
      o.Set("count", Napi::Number::New(env, static_cast<double>(count)));
      SetArgs(env, o, ev);
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
  // The handler catches its own errors, so a throw here is a bug in it. It is not swallowed:
  // napi_fatal_exception raises it as an uncaught exception ('uncaughtException'), which ends the process
  // unless a listener for that event is installed.
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

Tsfn NewTsfn(Napi::Env env, Napi::Function cb) { return Tsfn::New(env, cb, "hako-policy", 0, 1); }

}  // namespace notify
}  // namespace hako
