// Sockets between the runtime and the init helper, and fd passing to callers (console socket, seccomp
// listener). Receiving is asynchronous: a uv_poll on the socket, then a non-blocking recvmsg, so the
// event loop never waits on a container.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <uv.h>

#include <string>
#include <vector>

#include "common.h"

namespace hako {
namespace {

Napi::Value SeqpacketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return ThrowErrno(info.Env(), "socketpair", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), sv[0]));
  a.Set(1u, Napi::Number::New(info.Env(), sv[1]));
  return a;
}

bool FillAddr(const std::string& path, sockaddr_un* addr, socklen_t* len) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

// listenUnix(path, mode): a listening stream socket at `path` with `mode`. Long paths are reached
// through /proc/self/fd of their directory, so the 108-byte sun_path limit never bites.
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  mode_t mode = static_cast<mode_t>(info[1].As<Napi::Number>().Uint32Value());
  UniqueFd dirfd;
  std::string bind_path = path;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ThrowErrno(env, "listen", ENAMETOOLONG, path);
    dirfd.reset(open(path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (dirfd.get() < 0) return ThrowErrno(env, "listen", errno, path);
    bind_path = "/proc/self/fd/" + std::to_string(dirfd.get()) + path.substr(slash);
  }
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) return ThrowErrno(env, "listen", errno, "socket");
  sockaddr_un addr;
  socklen_t len;
  if (!FillAddr(bind_path, &addr, &len)) return ThrowErrno(env, "listen", ENAMETOOLONG, path);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) return ThrowErrno(env, "listen", errno, path);
  if (chmod(bind_path.c_str(), mode) < 0) return ThrowErrno(env, "listen", errno, "chmod " + path);
  if (listen(s.get(), 16) < 0) return ThrowErrno(env, "listen", errno, path);
  return Napi::Number::New(env, s.release());
}

int ConnectUnix(const std::string& path) {
  UniqueFd dirfd;
  std::string p = path;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) {
      errno = ENAMETOOLONG;
      return -1;
    }
    dirfd.reset(open(path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (dirfd.get() < 0) return -1;
    p = "/proc/self/fd/" + std::to_string(dirfd.get()) + path.substr(slash);
  }
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) return -1;
  sockaddr_un addr;
  socklen_t len;
  if (!FillAddr(p, &addr, &len)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int r;
  do r = connect(s.get(), reinterpret_cast<sockaddr*>(&addr), len);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -1;
  return s.release();
}

// One sendmsg carrying `data` and, in the first message only, the fds as one SCM_RIGHTS.
bool SendWithFds(int sock, const uint8_t* data, size_t len, const std::vector<int>& fds) {
  struct iovec iov = {const_cast<uint8_t*>(data), len};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  std::vector<char> cbuf;
  if (!fds.empty()) {
    cbuf.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    mh.msg_control = cbuf.data();
    mh.msg_controllen = cbuf.size();
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  size_t sent = 0;
  while (sent < len || (len == 0 && !fds.empty() && sent == 0)) {
    ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    sent += static_cast<size_t>(w);
    if (len == 0) break;
    iov.iov_base = const_cast<uint8_t*>(data) + sent;
    iov.iov_len = len - sent;
    mh.msg_control = nullptr;
    mh.msg_controllen = 0;
  }
  return true;
}

std::vector<int> FdList(Napi::Value v) {
  std::vector<int> fds;
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  return fds;
}

// sendMessage(fd, buffer, fds?)
Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  if (!SendWithFds(fd, buf.Data(), buf.Length(), FdList(info[2])))
    return ThrowErrno(info.Env(), "send", errno, "to container init");
  return info.Env().Undefined();
}

// sendToPath(path, buffer, fds): connect to a unix socket, send one message with the fds, close.
// The console-socket and seccomp-listener protocols are both this shape.
Napi::Value SendToPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  UniqueFd s(ConnectUnix(path));
  if (s.get() < 0) return ThrowErrno(env, "connect", errno, path);
  if (!SendWithFds(s.get(), buf.Data(), buf.Length(), FdList(info[2]))) return ThrowErrno(env, "sendmsg", errno, path);
  return env.Undefined();
}

// Asynchronous receive of one message (with any fds) from a seqpacket socket.
class Receiver {
 public:
  Receiver(Napi::Env env, int fd, Napi::Function cb) : env_(env), fd_(fd), cb_(Napi::Persistent(cb)) {
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    poll_.data = this;
    if (uv_poll_init(loop, &poll_, fd) != 0) {
      failed_ = true;
      return;
    }
    uv_poll_start(&poll_, UV_READABLE | UV_DISCONNECT, OnReady);
  }
  bool failed() const { return failed_; }

 private:
  static void OnReady(uv_poll_t* h, int status, int) {
    Receiver* self = static_cast<Receiver*>(h->data);
    uint8_t stack_buf[65536];
    std::vector<uint8_t> heap;
    uint8_t* buf = stack_buf;
    size_t cap = sizeof(stack_buf);
    ssize_t peek = recv(self->fd_, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (peek < 0 && (errno == EAGAIN || errno == EINTR) && status == 0) return;  // spurious wakeup
    if (peek > static_cast<ssize_t>(cap)) {
      heap.resize(static_cast<size_t>(peek));
      buf = heap.data();
      cap = heap.size();
    }
    struct iovec iov = {buf, cap};
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 8)];
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    ssize_t n = recvmsg(self->fd_, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && status == 0) return;
    int err = n < 0 ? errno : 0;
    uv_poll_stop(h);
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    std::vector<int> fds;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int f;
          memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.push_back(f);
        }
      }
    }
    Napi::Value data = n > 0 ? Napi::Buffer<uint8_t>::Copy(env, buf, static_cast<size_t>(n)).As<Napi::Value>()
                             : env.Null();
    Napi::Array fdarr = Napi::Array::New(env, fds.size());
    for (size_t i = 0; i < fds.size(); i++) fdarr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
    Napi::Function cb = self->cb_.Value();
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) { delete static_cast<Receiver*>(hh->data); });
    napi_value args[3] = {Napi::Number::New(env, err), data, fdarr};
    Napi::Object global = env.Global();
    // MakeCallback runs microtasks after, like any libuv-driven callback.
    cb.MakeCallback(global, 3, args);
  }

  Napi::Env env_;
  int fd_;
  Napi::FunctionReference cb_;
  uv_poll_t poll_;
  bool failed_ = false;
};

// recvMessage(fd, cb(errno, buffer|null, fds[])): one message, asynchronously.
Napi::Value RecvMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Receiver* r = new Receiver(env, fd, info[1].As<Napi::Function>());
  if (r->failed()) {
    delete r;
    return ThrowErrno(env, "recv", EBADF, "poll init");
  }
  return env.Undefined();
}

// One request to a waiting container's control socket: connect, send, then (asynchronously) read until
// the init closes its end. An empty reply means the process was executed (the connection is CLOEXEC in the
// init); anything else is an error message.
class ControlExchange {
 public:
  ControlExchange(Napi::Env env, int fd, Napi::Function cb) : env_(env), fd_(fd), cb_(Napi::Persistent(cb)) {
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    poll_.data = this;
    uv_poll_init(loop, &poll_, fd);
    uv_poll_start(&poll_, UV_READABLE | UV_DISCONNECT, OnReady);
  }

 private:
  static void OnReady(uv_poll_t* h, int status, int) {
    ControlExchange* self = static_cast<ControlExchange*>(h->data);
    int err = status < 0 ? EIO : 0;
    for (;;) {
      char buf[8192];
      ssize_t n = recv(self->fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        self->data_.insert(self->data_.end(), buf, buf + n);
        if (self->data_.size() > (1u << 20)) {
          err = EMSGSIZE;
          break;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !err) return;  // more to come
      if (n < 0 && errno != ECONNRESET) err = errno;
      break;  // EOF (or a reset: the init exec'd while we were reading)
    }
    uv_poll_stop(h);
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    Napi::Function cb = self->cb_.Value();
    napi_value args[2] = {Napi::Number::New(env, err),
                          Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(self->data_.data()), self->data_.size())};
    close(self->fd_);
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) { delete static_cast<ControlExchange*>(hh->data); });
    cb.MakeCallback(env.Global(), 2, args);
  }

  Napi::Env env_;
  int fd_;
  Napi::FunctionReference cb_;
  uv_poll_t poll_;
  std::vector<char> data_;
};

// controlExchange(path, message, cb(errno, reply)): throws if the socket cannot be reached.
Napi::Value ControlExchangeFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  UniqueFd s(ConnectUnix(path));
  if (s.get() < 0) return ThrowErrno(env, "connect", errno, path);
  if (!SendWithFds(s.get(), buf.Data(), buf.Length(), {})) return ThrowErrno(env, "send", errno, path);
  new ControlExchange(env, s.release(), info[2].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace

void InitIpc(Napi::Env env, Napi::Object exports) {
  exports.Set("controlExchange", Napi::Function::New(env, ControlExchangeFn, "controlExchange"));
  exports.Set("seqpacketPair", Napi::Function::New(env, SeqpacketPair, "seqpacketPair"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage, "sendMessage"));
  exports.Set("sendToPath", Napi::Function::New(env, SendToPath, "sendToPath"));
  exports.Set("recvMessage", Napi::Function::New(env, RecvMessage, "recvMessage"));
}

}  // namespace hako
