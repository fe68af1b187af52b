// The policy server's sockets, without any server state: the listening socket (accept with the peer's
// credentials, chunked non-blocking receive with fds, a readiness watch), and the plumbing of
// hako-fd-keeper (lib/policy/keeper.ts): its ring memfd and its socket.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <uv.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common.h"
#include "../common/scm.h"
#include "../keeper/keeper_proto.h"

namespace hako {
namespace {

uint32_t U32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }

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
  o.Set("data",
        n > 0 ? Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n)).As<Napi::Value>() : env.Null());
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

void InitPolicySocket(Napi::Env env, Napi::Object exports) {
  exports.Set("notifyRingCreate", Napi::Function::New(env, RingCreate, "notifyRingCreate"));
  exports.Set("keeperConnect", Napi::Function::New(env, KeeperConnect, "keeperConnect"));
  exports.Set("policyAccept", Napi::Function::New(env, Accept, "policyAccept"));
  exports.Set("policyRecv", Napi::Function::New(env, Recv, "policyRecv"));
  exports.Set("policyFdWatch", Napi::Function::New(env, FdWatchStart, "policyFdWatch"));
  exports.Set("policyFdUnwatch", Napi::Function::New(env, FdWatchStop, "policyFdUnwatch"));
}

}  // namespace hako
