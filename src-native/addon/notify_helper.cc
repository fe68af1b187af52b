// The channel to hako-policy-helper: an emulation goes out as one datagram with the notify fd and the
// caller's /proc/<tid> fd (HandToHelper), and a reply thread per helper sends the result to the caller
// when the helper answers, then tells TypeScript ("done"). When the helper dies, what it held fails with EIO.
#include <sys/socket.h>
#include <sys/uio.h>

#include <vector>

#include "notify.h"
#include "../common/scm.h"

namespace hako {
namespace notify {
namespace {

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

}  // namespace

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

int HandToHelper(const std::shared_ptr<Core>& core, const std::shared_ptr<Listener>& l, uint64_t token,
                 const Request& req, const std::string& body) {
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
    struct iovec iov = {const_cast<char*>(body.data()), body.size()};
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
  return err;
}

}  // namespace notify
}  // namespace hako
