// SHA-256 (FIPS 180-4) of one byte string, as lowercase hex: the launcher names a group's socket with it, as
// containerd's shims do (lib/shim/address.ts). Tested against the FIPS vectors and Node's crypto
// (test/shim-launcher.test.ts).
#ifndef HAKO_LAUNCHER_SHA256_H
#define HAKO_LAUNCHER_SHA256_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** hex receives 64 hex digits and a NUL. */
void sha256_hex(const unsigned char* data, size_t len, char hex[65]);

#ifdef __cplusplus
}
#endif

#endif
