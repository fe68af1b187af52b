// Process handles by pidfd: open, signal, and wait for the exit of exactly that process (no SIGCHLD
// handler, no wait for "any child").
// A uv_poll on the pidfd wakes when the process exits; waitid(P_PIDFD) then reaps exactly that child.
#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <string.h>
#include <termios.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <uv.h>

#include <map>

#include "common.h"
#include "../common/syscalls.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace hako {
namespace {

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  int pid = info[0].As<Napi::Number>().Int32Value();
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return ThrowErrno(info.Env(), "pidfd_open", errno, "pid " + std::to_string(pid));
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int sig = info[1].As<Napi::Number>().Int32Value();
  if (syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) < 0)
    return ThrowErrno(info.Env(), "kill", errno, "signal " + std::to_string(sig));
  return info.Env().Undefined();
}

// Reap a child that has already exited (or report that it is not ours / still running).
// Returns {code, signal} or null when nothing could be reaped. With `reap` false the status is only
// looked at (WNOWAIT): the child stays a zombie for its one reaper.
Napi::Value ReapResult(Napi::Env env, int pidfd, bool block, bool reap = true) {
  siginfo_t si = {};
  int r;
  int flags = WEXITED | (block ? 0 : WNOHANG) | (reap ? 0 : WNOWAIT);
  do r = waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &si, flags);
  while (r < 0 && errno == EINTR);
  if (r < 0 || si.si_pid == 0) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  if (si.si_code == CLD_EXITED) {
    o.Set("code", Napi::Number::New(env, si.si_status));
    o.Set("signal", env.Null());
  } else {
    o.Set("code", env.Null());
    o.Set("signal", Napi::Number::New(env, si.si_status));
  }
  return o;
}

Napi::Value WaitSync(const Napi::CallbackInfo& info) {
  return ReapResult(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].ToBoolean());
}

struct Watcher {
  Napi::Env env;
  int pidfd;
  uint32_t id;
  bool reap;
  Napi::FunctionReference cb;
  uv_poll_t poll;
};

std::map<uint32_t, Watcher*> g_watchers;
uint32_t g_next_id = 1;

void CloseWatcher(Watcher* w) {
  g_watchers.erase(w->id);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), [](uv_handle_t* h) { delete static_cast<Watcher*>(h->data); });
}

void OnExit(uv_poll_t* h, int, int) {
  Watcher* w = static_cast<Watcher*>(h->data);
  Napi::Env env = w->env;
  Napi::HandleScope scope(env);
  Napi::Value result = ReapResult(env, w->pidfd, false, w->reap);
  Napi::Function cb = w->cb.Value();
  CloseWatcher(w);
  napi_value args[1] = {result};
  cb.MakeCallback(env.Global(), 1, args);
}

// watchExit(pidfd, ref, cb(result|null), reap = true) -> id. The callback fires once, when the process has
// exited; `result` is null when the process is not our child (someone else reaps it). A pidfd is readable
// once its process has exited, reaped or not, so a watcher with reap false learns of the exit without
// taking the status from the process's one reaper (its Container).
Napi::Value WatchExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool reap = info.Length() < 4 || info[3].IsUndefined() || info[3].ToBoolean();
  Watcher* w = new Watcher{env,  info[0].As<Napi::Number>().Int32Value(),        g_next_id++,
                           reap, Napi::Persistent(info[2].As<Napi::Function>()), {}};
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  w->poll.data = w;
  if (uv_poll_init(loop, &w->poll, w->pidfd) != 0) {
    delete w;
    return ThrowErrno(env, "watch", EBADF, "pidfd poll");
  }
  int r = uv_poll_start(&w->poll, UV_READABLE, OnExit);
  if (r != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), [](uv_handle_t* h) { delete static_cast<Watcher*>(h->data); });
    return ThrowErrno(env, "watch", -r, "pidfd poll");
  }
  if (!info[1].ToBoolean()) uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  g_watchers[w->id] = w;
  return Napi::Number::New(env, w->id);
}

Napi::Value UnwatchExit(const Napi::CallbackInfo& info) {
  auto it = g_watchers.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != g_watchers.end()) CloseWatcher(it->second);
  return info.Env().Undefined();
}

Napi::Value RefWatch(const Napi::CallbackInfo& info) {
  auto it = g_watchers.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != g_watchers.end()) {
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&it->second->poll);
    if (info[1].ToBoolean()) uv_ref(h);
    else uv_unref(h);
  }
  return info.Env().Undefined();
}

// flock(fd, exclusive, nonblock) -> true when taken, false when busy (nonblock).
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = (info[1].ToBoolean() ? LOCK_EX : LOCK_SH) | (info[2].ToBoolean() ? LOCK_NB : 0);
  int r;
  do r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
  if (r < 0) return ThrowErrno(info.Env(), "flock", errno);
  return Napi::Boolean::New(info.Env(), true);
}

// pipe() -> [read end, write end], both close-on-exec: the shim's binary:// loggers read a container's stdout
// and stderr from pipes (as containerd's runc shim gives them), which Node cannot make (its child stdio are
// socketpairs, and /dev/stdout cannot be reopened from a socket).
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return ThrowErrno(info.Env(), "pipe2", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), p[0]));
  a.Set(1u, Napi::Number::New(info.Env(), p[1]));
  return a;
}

// dup2(oldFd, newFd): a containerd shim spare (lib/shim/spare.ts), started with its stderr on /dev/null, makes the
// log FIFO of the bundle it is claimed for its fd 2 (the server's stderr, as the launcher gives a new server).
// Node has no dup2; newFd is left without close-on-exec, as a standard fd is.
Napi::Value Dup2(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || !info[1].IsNumber()) return ThrowType(info.Env(), "dup2: two fds are required");
  int from = info[0].As<Napi::Number>().Int32Value();
  int to = info[1].As<Napi::Number>().Int32Value();
  int r;
  do r = dup2(from, to);
  while (r < 0 && (errno == EINTR || errno == EBUSY));
  if (r < 0) return ThrowErrno(info.Env(), "dup2", errno);
  return info.Env().Undefined();
}

// setWinsize(fd, rows, cols): the window size of a pty (the CLI relaying a container's terminal sets it from
// its own terminal, at start and on SIGWINCH).
Napi::Value SetWinsize(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct winsize ws = {};
  ws.ws_row = static_cast<unsigned short>(info[1].As<Napi::Number>().Uint32Value());
  ws.ws_col = static_cast<unsigned short>(info[2].As<Napi::Number>().Uint32Value());
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) return ThrowErrno(info.Env(), "ioctl TIOCSWINSZ", errno);
  return info.Env().Undefined();
}

// makeRaw(fd) -> the previous termios (a Buffer), after cfmakeraw: as runc's console relay does, output
// processing is off too (libuv's raw mode keeps ONLCR, which would turn the container's \r\n into \r\r\n).
Napi::Value MakeRaw(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct termios old;
  if (tcgetattr(fd, &old) < 0) return ThrowErrno(info.Env(), "tcgetattr", errno);
  struct termios raw = old;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSANOW, &raw) < 0) return ThrowErrno(info.Env(), "tcsetattr", errno);
  return Napi::Buffer<char>::Copy(info.Env(), reinterpret_cast<const char*>(&old), sizeof(old));
}

// restoreTerminal(fd, saved): put back what makeRaw returned.
Napi::Value RestoreTerminal(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto saved = info[1].As<Napi::Buffer<char>>();
  struct termios t;
  if (saved.Length() != sizeof(t)) return ThrowErrno(info.Env(), "restore terminal", EINVAL);
  memcpy(&t, saved.Data(), sizeof(t));
  if (tcsetattr(fd, TCSANOW, &t) < 0) return ThrowErrno(info.Env(), "tcsetattr", errno);
  return info.Env().Undefined();
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("makeRaw", Napi::Function::New(env, MakeRaw, "makeRaw"));
  exports.Set("restoreTerminal", Napi::Function::New(env, RestoreTerminal, "restoreTerminal"));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize, "setWinsize"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal, "pidfdSendSignal"));
  exports.Set("waitSync", Napi::Function::New(env, WaitSync, "waitSync"));
  exports.Set("watchExit", Napi::Function::New(env, WatchExit, "watchExit"));
  exports.Set("unwatchExit", Napi::Function::New(env, UnwatchExit, "unwatchExit"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("dup2", Napi::Function::New(env, Dup2, "dup2"));
  exports.Set("refWatch", Napi::Function::New(env, RefWatch, "refWatch"));
}

}  // namespace hako
