// The listener threads: one per notify fd (a container's init, or one exec). Each polls its fd and a wake
// eventfd, receives a notification, answers a fixed denial at once, or copies the pointer arguments out of
// the caller (once), opens /proc/<tid> for calls that may be emulated, checks NOTIF_ID_VALID, and posts the
// notification to TypeScript. At most `window` notifications of one fd are in TypeScript's hands.
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>

#include "notify.h"
#include "../common/notif.h"
#include "../keeper/keeper_proto.h"

namespace hako {
namespace notify {

double NowUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

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

const bool g_trace = getenv("HAKO_NOTIFY_TRACE") != nullptr;

namespace {

std::mutex g_trace_mu;
std::vector<std::array<float, 6>> g_trace_samples;

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
  struct iovec l = {&(*out)[0], static_cast<size_t>(len)},
               r = {reinterpret_cast<void*>(static_cast<uintptr_t>(addr)), static_cast<size_t>(len)};
  ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
  if (n != static_cast<ssize_t>(len)) return S_FAULT;
  return S_OK;
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
        if (lay.type[i] == ARG_CSTR)
          ev->state[i] = ReadCString(static_cast<pid_t>(n->pid), n->data.args[i], lay.max[i], &ev->str[i]);
        else if (lay.type[i] == ARG_BUF)
          ev->state[i] = ReadBuffer(static_cast<pid_t>(n->pid), n->data.args[i], n->data.args[lay.len_idx[i]],
                                    lay.max[i], &ev->str[i]);
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

}  // namespace

void TraceAnswer(const Request& r, double t_resp, double t_sent) {
  if (!g_trace || r.t_js == 0) return;
  std::lock_guard<std::mutex> g(g_trace_mu);
  if (g_trace_samples.size() >= 1000000) return;
  g_trace_samples.push_back({static_cast<float>(r.t0 - r.t_poll), static_cast<float>(r.t_ready - r.t0),
                             static_cast<float>(r.t_js - r.t_ready), static_cast<float>(r.t_built - r.t_js),
                             static_cast<float>(t_resp - r.t_built), static_cast<float>(t_sent - t_resp)});
}

std::vector<std::array<float, 6>> TraceSamples(bool reset) {
  std::lock_guard<std::mutex> g(g_trace_mu);
  std::vector<std::array<float, 6>> s = g_trace_samples;
  if (reset) g_trace_samples.clear();
  return s;
}

Listener::~Listener() {
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

}  // namespace notify
}  // namespace hako
