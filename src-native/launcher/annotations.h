// The two annotations of a bundle's config.json that choose a shim's group (lib/shim/address.ts groupOf), read
// with certainty or not at all: the launcher hands every document it cannot judge exactly as JSON.parse would to
// Node.
#ifndef HAKO_LAUNCHER_ANNOTATIONS_H
#define HAKO_LAUNCHER_ANNOTATIONS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A string inside the document (not NUL-terminated); ptr NULL when the annotation is absent. */
struct json_span {
  const char* ptr;
  size_t len;
};

/**
 * Parse `doc` (the whole file) as strict JSON (RFC 8259, as JSON.parse): a top-level object whose "annotations"
 * member, if there is one, is an object or null. group and sandbox receive the values of
 * "io.containerd.runc.v2.group" and "io.kubernetes.cri.sandbox-id" there (the last of duplicates, as JSON.parse).
 * Returns 0, or -1 when the answer is not certain: invalid JSON, nesting deeper than 64, a member name with an
 * escape (it could spell one of these names), or one of the two values that is not a string of printable ASCII
 * without escapes.
 */
int read_group_annotations(const char* doc, size_t len, struct json_span* group, struct json_span* sandbox);

#ifdef __cplusplus
}
#endif

#endif
