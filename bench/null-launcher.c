/*
 * The null shim's launcher (bench/null-shim.ts): a measuring instrument of the containerd bench, never installed.
 * `start` writes ./address and prints the one server's address (NULL_SOCKET, fixed at compile time), `delete`
 * prints nothing; one static program, as cheap to run as hako's native launcher (src-native/launcher) in its
 * routine calls, so the floor stays a floor. Compiled by installNullShim into the bench's temp dir.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#ifndef NULL_SOCKET
#error "build with -DNULL_SOCKET='\"/path/to/socket\"'"
#endif

int main(int argc, char **argv) {
  static const char address[] = "unix://" NULL_SOCKET;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "delete")) return 0;
    if (!strcmp(argv[i], "start")) {
      int fd = open("address", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || write(fd, address, sizeof address - 1) != (ssize_t)(sizeof address - 1) || close(fd) < 0) return 1;
      return write(1, address, sizeof address - 1) == (ssize_t)(sizeof address - 1) ? 0 : 1;
    }
  }
  static const char usage[] = "null shim: start or delete expected\n";
  (void)!write(2, usage, sizeof usage - 1);
  return 1;
}
