// Messages from the init helper to whoever is talking to it: the runtime's socketpair during create,
// a control connection during start/setup. Also the small RAII fd type used throughout the helper.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "../common/fd.h"
#include "../common/wire.h"

// The helper's name for an owned fd.
using Fd = UniqueFd;

// The fd that reports go to; switched from the plan socket to a control connection at start.
void channel_set(int fd);
int channel_get();
bool channel_is_stream();
void channel_set_stream(bool stream);

// Send a message of `type` with up to two string records and an optional fd (SCM_RIGHTS).
bool send_msg(uint32_t type, uint32_t tag1, const char* s1, uint32_t tag2 = 0, const char* s2 = nullptr, int fd = -1);
// Report an error with errno and step to the channel.
void report_error(const char* step, int err, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
// Report the error and end the helper: used once a failure leaves nothing to go back to.
[[noreturn]] void fail(const char* step, int err, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
// End the helper with `status`, whatever a seccomp filter refuses: never spins (see channel.cc).
[[noreturn]] void die(int status);
// strerror as Go (runc) words it: lower case. Callers match it: Docker maps "no such file or directory" in a
// create error to exit status 127, case-sensitively. Four rotating buffers, so one message can hold several.
const char* errtext(int err);
// Debug plans report each finished step.
void step_done(const char* name);
void set_debug(bool on);

// Read one whole message from a SOCK_SEQPACKET fd (create) or a SOCK_STREAM fd (control). Returns a malloc'd
// buffer (caller frees) and its length, or nullptr on EOF/error (errno set; 0 on clean EOF).
uint8_t* read_message(int fd, bool stream, size_t* len);
// A seqpacket message with up to `max` fds (SCM_RIGHTS, received close-on-exec); *nfds says how many came.
uint8_t* read_message_fds(int fd, size_t* len, int* fds, size_t max, size_t* nfds);
