// Over 400 lines because the runtime/init sockets and fd passing to callers share the address and SCM_RIGHTS helpers.
// Sockets between the runtime and the init helper, and fd passing to callers (console socket, seccomp
// listener). Receiving is asynchronous: a uv_poll on the socket, then a non-blocking recvmsg, so the
// event loop never waits on a container.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <uv.h>

#include <map>
#include <string>
#include <vector>

#include "common.h"
#include "../common/scm.h"

namespace hako {
namespace {

Napi::Value SeqpacketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return ThrowErrno(info.Env(), "socketpair", errno);
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

// peerCredentials(fd) -> {pid, uid, gid}: SO_PEERCRED of a connected unix socket (an accepted connection: the
// credentials its peer had when it connected).
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return ThrowType(env, "peerCredentials: an fd is required");
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return ThrowErrno(env, "SO_PEERCRED", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
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

int ConnectUnix(const std::string& path, bool nonblock = false) {
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
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0));
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
  if (len == 0 && fds.empty()) return true;
  struct iovec iov = {const_cast<uint8_t*>(data), len};
  ssize_t w = scm::send_fds(sock, &iov, 1, fds.data(), fds.size(), MSG_NOSIGNAL);
  if (w < 0) return false;
  size_t sent = static_cast<size_t>(w);
  while (sent < len) {
    ssize_t k = send(sock, data + sent, len - sent, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return false;
    sent += static_cast<size_t>(k);
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
// The console-socket and seccomp-listener protocols are both this shape. The connect is non-blocking: a
// peer that does not accept (its backlog full) fails with EAGAIN at step "connect", and TypeScript retries
// until its deadline instead of the event loop waiting on the peer (which may be served by this very
// process, as the policy server is). The message is small and the connection fresh, so the send cannot
// wait; were it to, EAGAIN at step "sendmsg" is an error.
Napi::Value SendToPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  UniqueFd s(ConnectUnix(path, true));
  if (s.get() < 0) return ThrowErrno(env, "connect", errno, path);
  if (!SendWithFds(s.get(), buf.Data(), buf.Length(), FdList(info[2]))) return ThrowErrno(env, "sendmsg", errno, path);
  return env.Undefined();
}

// Every asynchronous wait of this file polls an fd and is registered by id, so TypeScript can cancel it
// (its deadline passed, or the caller gave up) before it closes that fd: a poll left running on a closed
// fd number would take the messages of whatever reuses the number (the next container's init socket).
// Cancelled, a wait never calls its callback.
class PollWait {
 public:
  virtual ~PollWait() = default;
  uint32_t id() const { return id_; }
  static void Cancel(uint32_t id) {
    auto it = waits().find(id);
    if (it != waits().end()) it->second->Finish();
  }

 protected:
  PollWait(Napi::Env env, Napi::Function cb) : env_(env), cb_(Napi::Persistent(cb)), id_(next_id()++) {
    poll_.data = this;
  }
  // 0, or a negative libuv error; on failure the object is gone (deleted now or at its handle's close).
  static int Start(PollWait* w, int fd, int events) {
    uv_loop_t* loop;
    if (napi_get_uv_event_loop(w->env_, &loop) != napi_ok) {
      delete w;
      return UV_EINVAL;
    }
    int r = uv_poll_init(loop, &w->poll_, fd);
    if (r != 0) {
      delete w;  // the handle was never initialised, so there is nothing to close
      return r;
    }
    waits()[w->id_] = w;
    r = w->Poll(events);
    if (r != 0) w->Finish();
    return r;
  }
  int Poll(int events) { return uv_poll_start(&poll_, events, Dispatch); }
  // Unregister, stop polling (the fd leaves the loop's epoll set now) and free the object once libuv has
  // closed the handle. Members stay valid until the end of the current callback.
  void Finish() {
    waits().erase(id_);
    uv_poll_stop(&poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), [](uv_handle_t* h) { delete static_cast<PollWait*>(h->data); });
    Finished();
  }
  virtual void OnReady(int status, int events) = 0;
  // Called once the fd has left the loop (uv_close takes it out of epoll at once): an fd the wait owns is
  // closed here, before the caller hears of the outcome or of a cancel.
  virtual void Finished() {}

  Napi::Env env_;
  Napi::FunctionReference cb_;

 private:
  static void Dispatch(uv_poll_t* h, int status, int events) {
    static_cast<PollWait*>(h->data)->OnReady(status, events);
  }
  static std::map<uint32_t, PollWait*>& waits() {
    static std::map<uint32_t, PollWait*> m;
    return m;
  }
  static uint32_t& next_id() {
    static uint32_t n = 1;
    return n;
  }
  uint32_t id_;
  uv_poll_t poll_;
};

// The most fds one message from the init carries (it sends one at a time).
constexpr size_t kMaxRecvFds = 8;

// Asynchronous receive of one message (with any fds) from a seqpacket socket.
class Receiver : public PollWait {
 public:
  static int Begin(Napi::Env env, int fd, Napi::Function cb, uint32_t* id) {
    Receiver* r = new Receiver(env, fd, cb);
    *id = r->id();
    return Start(r, fd, UV_READABLE | UV_DISCONNECT);
  }

 private:
  Receiver(Napi::Env env, int fd, Napi::Function cb) : PollWait(env, cb), fd_(fd) {}

  void OnReady(int status, int) override {
    uint8_t stack_buf[65536];
    std::vector<uint8_t> heap;
    uint8_t* buf = stack_buf;
    size_t cap = sizeof(stack_buf);
    ssize_t peek = recv(fd_, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (peek < 0 && (errno == EAGAIN || errno == EINTR) && status == 0) return;  // spurious wakeup
    if (peek > static_cast<ssize_t>(cap)) {
      heap.resize(static_cast<size_t>(peek));
      buf = heap.data();
      cap = heap.size();
    }
    struct iovec iov = {buf, cap};
    // More fds than we make room for: the message cannot be used, and scm.h has closed the ones that did
    // arrive (nobody else would). EMSGSIZE with no data is this case only.
    int got[kMaxRecvFds];
    size_t nfds = 0;
    ssize_t n = scm::recv_fds(fd_, &iov, 1, got, kMaxRecvFds, &nfds, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && status == 0) return;
    int err = n < 0 ? errno : 0;
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    Napi::Value data =
        n > 0 ? Napi::Buffer<uint8_t>::Copy(env, buf, static_cast<size_t>(n)).As<Napi::Value>() : env.Null();
    Napi::Array fdarr = Napi::Array::New(env, nfds);
    for (size_t i = 0; i < nfds; i++) fdarr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, got[i]));
    Napi::Function cb = cb_.Value();
    Finish();
    napi_value args[3] = {Napi::Number::New(env, err), data, fdarr};
    // MakeCallback runs microtasks after, like any libuv-driven callback.
    cb.MakeCallback(env.Global(), 3, args);
  }

  int fd_;
};

// recvMessage(fd, cb(errno, buffer|null, fds[])) -> wait id: one message, asynchronously. errno EMSGSIZE
// with a null buffer: the message carried more fds than allowed (they are closed).
Napi::Value RecvMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t id;
  int r = Receiver::Begin(env, fd, info[1].As<Napi::Function>(), &id);
  if (r != 0) return ThrowErrno(env, "recv", -r, "poll fd " + std::to_string(fd));
  return Napi::Number::New(env, id);
}

// cancelWait(id): stop a recvMessage or controlExchange before its fd is closed; its callback is not
// called. An id that already completed is ignored.
Napi::Value CancelWait(const Napi::CallbackInfo& info) {
  PollWait::Cancel(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

// One request to a waiting container's control socket: send, then read until the init closes its end.
// An empty reply means the process was executed (the connection is CLOEXEC in the init); anything else
// is an error message. The socket is non-blocking and both directions go through the poll, so a stalled
// init holds nothing but this wait, which TypeScript cancels at its deadline.
class ControlExchange : public PollWait {
 public:
  // Takes `fd` (connected, non-blocking). Returns 0 or an errno; on error the fd is closed.
  static int Begin(Napi::Env env, int fd, const uint8_t* data, size_t len, Napi::Function cb, uint32_t* id) {
    ControlExchange* x = new ControlExchange(env, fd, data, len, cb);
    *id = x->id();
    int err = x->SendSome();
    if (err) {
      delete x;  // not started yet: the destructor closes the fd
      return err;
    }
    int r = Start(x, fd, x->Events());
    return r ? -r : 0;
  }

 private:
  ControlExchange(Napi::Env env, int fd, const uint8_t* data, size_t len, Napi::Function cb)
      : PollWait(env, cb), fd_(fd), out_(data, data + len) {}

  int Events() const { return UV_READABLE | UV_DISCONNECT | (sending() ? UV_WRITABLE : 0); }
  bool sending() const { return sent_ < out_.size() && !broken_; }

  // Send what the socket takes now. EPIPE/ECONNRESET are not errors here: the init answered and closed
  // (a caller it refuses), and its answer is still there to read. Other errnos are returned.
  int SendSome() {
    while (sending()) {
      ssize_t w = send(fd_.get(), out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
      if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        broken_ = errno;
        return 0;
      }
      if (w < 0) return errno;
      sent_ += static_cast<size_t>(w);
    }
    return 0;
  }

  void OnReady(int status, int events) override {
    int err = 0;
    bool done = false;
    if (status < 0) {
      // libuv has stopped this poll on EPOLLERR, so this is the last call: the socket's error says what
      // happened. A reset (the init closed with our request unread) is EPIPE on the send, and its answer, if
      // it gave one, is still there to read.
      int so = 0;
      socklen_t sl = sizeof(so);
      if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &so, &sl) < 0) so = errno;
      if (so == ECONNRESET || so == EPIPE) {
        broken_ = so;
      } else {
        err = so ? so : EIO;
      }
    } else if ((events & UV_WRITABLE) && sending()) {
      err = SendSome();
      done = err != 0;  // the send failed: nothing more to read
      if (!err && !sending() && Poll(Events()) != 0) err = EIO;
    }
    while (!done) {
      char buf[8192];
      ssize_t n = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        data_.insert(data_.end(), buf, buf + n);
        if (data_.size() > (1u << 20)) {
          err = EMSGSIZE;
          done = true;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!err && status >= 0) return;  // more to come
        break;
      }
      if (n < 0 && errno == ECONNRESET) broken_ = ECONNRESET;
      else if (n < 0) err = errno;
      done = true;  // EOF, or a reset after the answer
    }
    // A reset, or a send cut short, means the init closed with our request not (all) read: it cannot have
    // executed it, so an empty reply must not read as success. (After an exec the init has read the whole
    // request, and the caller sees a plain EOF.)
    if (!err && data_.empty() && (broken_ || sent_ < out_.size())) err = broken_ ? broken_ : EPIPE;
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    Napi::Function cb = cb_.Value();
    napi_value args[2] = {Napi::Number::New(env, err),
                          Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(data_.data()), data_.size())};
    Finish();
    cb.MakeCallback(env.Global(), 2, args);
  }

  // Closed now, not when the handle is freed: a cancelled caller is gone by the time it is told, so an init
  // that gets to the request later sees the hang-up and does not act on it.
  void Finished() override { fd_.reset(); }

  UniqueFd fd_;
  std::vector<uint8_t> out_;
  size_t sent_ = 0;
  int broken_ = 0;  // EPIPE/ECONNRESET: the init closed before it had read all of our request
  std::vector<char> data_;
};

// controlExchange(path, message, cb(errno, reply)) -> wait id. Throws if the socket cannot be reached
// (ENOENT, ECONNREFUSED: no init waits; EAGAIN: its backlog is full, try again) or the send fails.
Napi::Value ControlExchangeFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  // Non-blocking: a full backlog (a stalled init) fails with EAGAIN instead of blocking the event loop.
  UniqueFd s(ConnectUnix(path, true));
  if (s.get() < 0) return ThrowErrno(env, "connect", errno, path);
  uint32_t id;
  int err = ControlExchange::Begin(env, s.release(), buf.Data(), buf.Length(), info[2].As<Napi::Function>(), &id);
  if (err) return ThrowErrno(env, "send", err, path);
  return Napi::Number::New(env, id);
}

}  // namespace

void InitIpc(Napi::Env env, Napi::Object exports) {
  exports.Set("controlExchange", Napi::Function::New(env, ControlExchangeFn, "controlExchange"));
  exports.Set("seqpacketPair", Napi::Function::New(env, SeqpacketPair, "seqpacketPair"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage, "sendMessage"));
  exports.Set("sendToPath", Napi::Function::New(env, SendToPath, "sendToPath"));
  exports.Set("recvMessage", Napi::Function::New(env, RecvMessage, "recvMessage"));
  exports.Set("cancelWait", Napi::Function::New(env, CancelWait, "cancelWait"));
}

}  // namespace hako
