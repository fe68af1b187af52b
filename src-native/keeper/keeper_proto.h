// Wire format between the policy server (lib/policy/keeper.ts) and hako-fd-keeper (keeper/main.cc).
//
// SOCK_SEQPACKET, one message per record: a KeeperHeader, then `len` bytes of payload (the registration, JSON
// written and read only by the server: the keeper never parses it). PUT and ENTRY carry 2 to kMaxFds fds in
// SCM_RIGHTS: [seccomp notify fd, ring memfd, then whatever else the registration needs kept open (namespace
// fds pinning what the container was registered with, say), in the order the server gave them]. The ring is kRingSlots uint64 ids, written by the server's
// listener thread at each NOTIF_RECV (slot = id % kRingSlots): after a server dies the keeper answers every
// id in it that is still pending (the old server had received it and will never answer), see main.cc.
#pragma once
#include <stdint.h>

namespace hako_keeper {

constexpr uint32_t kMagic = 0x524b5048;  // "HPKR"
constexpr uint32_t kMaxPayload = 60 * 1024;
constexpr uint32_t kRingSlots = 256;
constexpr int kMaxFds = 8;
constexpr uint32_t kRingBytes = kRingSlots * 8;

enum Type : uint32_t {
  HELLO = 1,    // server -> keeper: I am the server; send me what you hold
  ENTRY = 2,    // keeper -> server: one held registration (payload + 2 fds)
  END = 3,      // keeper -> server: that was all; from now on you own the fds' notifications
  PUT = 4,      // server -> keeper: hold this (payload + 2 fds) under `key`
  DEL = 5,      // server -> keeper: forget `key` (close its fds)
  RELEASE = 6,  // server -> keeper: close everything and exit (a server stopped for good)
  BUSY = 7,     // keeper -> server: another server is connected; refused
};

struct KeeperHeader {
  uint32_t magic;
  uint32_t type;
  uint64_t key;
  uint32_t len;
  uint32_t reserved;
};

}  // namespace hako_keeper
