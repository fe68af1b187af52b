// Linked only into the sanitizer builds of hako-init and hako-policy-helper (scripts/sanitize.sh), never into a
// shipped binary. The init runs with an empty environment, so ASAN_OPTIONS cannot reach it: its options are
// compiled in here, and its reports go to a file opened at start-up, while host paths still resolve (after
// pivot_root a log_path would resolve inside the container's rootfs, and its stderr is the container's).
// UBSan is built in trap mode (-fsanitize-undefined-trap-on-error): gcc's separate UBSan runtime ignores any
// log path in this combination and would print on the container's stderr, so undefined behaviour traps instead
// and ASan (handle_sigill) reports the SIGILL with its stack trace through the same file.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef HAKO_SANITIZE_DIR
#error "HAKO_SANITIZE_DIR (where reports go) must be defined"
#endif

extern "C" {
void __sanitizer_set_report_fd(void* fd);

// detect_leaks=0: the helpers exec or _exit; LeakSanitizer's tracer cannot run inside every container (pid
// namespace, seccomp), and a leak at the exit of a short-lived helper is not what this job looks for.
const char* __asan_default_options() { return "detect_leaks=0:halt_on_error=1:handle_sigill=1:exitcode=86:print_summary=1"; }
}

__attribute__((constructor)) static void hako_sanitize_report_fd() {
  // The policy helper gets the job's ASAN_OPTIONS (log_path), and closes every fd it does not use at start.
  const char* env = getenv("ASAN_OPTIONS");
  if (env && strstr(env, "log_path")) return;
  int fd = open(HAKO_SANITIZE_DIR "/asan-init.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;  // exec: already in the container's mount namespace; reports stay on stderr
  // Far above the fds the init is handed (3..3+N+2+16): a low number could sit inside the preserved range.
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
  close(fd);
  if (high >= 0) __sanitizer_set_report_fd(reinterpret_cast<void*>(static_cast<long>(high)));
}
