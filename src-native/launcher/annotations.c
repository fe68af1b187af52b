// A strict JSON reader (RFC 8259) that validates the whole document and keeps only what groupOf reads.
#include "annotations.h"

#include <string.h>

#define MAX_DEPTH 64

struct reader {
  const char* p;
  const char* end;
};

static const char GROUP[] = "io.containerd.runc.v2.group";
static const char SANDBOX[] = "io.kubernetes.cri.sandbox-id";

static void skip_ws(struct reader* r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/** A string at r->p (its opening quote): its raw contents, and whether it has escapes. */
static int read_string(struct reader* r, struct json_span* out, int* escaped) {
  if (r->p >= r->end || *r->p != '"') return -1;
  const char* start = ++r->p;
  *escaped = 0;
  while (r->p < r->end) {
    unsigned char c = (unsigned char)*r->p;
    if (c == '"') {
      out->ptr = start;
      out->len = (size_t)(r->p - start);
      r->p++;
      return 0;
    }
    if (c < 0x20) return -1;
    if (c == '\\') {
      *escaped = 1;
      if (++r->p >= r->end) return -1;
      char e = *r->p;
      if (e == 'u') {
        if (r->end - r->p < 5) return -1;
        for (int i = 1; i <= 4; i++)
          if (!is_hex(r->p[i])) return -1;
        r->p += 4;
      } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
        return -1;
      }
    }
    r->p++;
  }
  return -1;
}

static int read_number(struct reader* r) {
  if (r->p < r->end && *r->p == '-') r->p++;
  if (r->p >= r->end || !is_digit(*r->p)) return -1;
  if (*r->p == '0') r->p++;
  else
    while (r->p < r->end && is_digit(*r->p)) r->p++;
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    if (r->p >= r->end || !is_digit(*r->p)) return -1;
    while (r->p < r->end && is_digit(*r->p)) r->p++;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
    if (r->p >= r->end || !is_digit(*r->p)) return -1;
    while (r->p < r->end && is_digit(*r->p)) r->p++;
  }
  return 0;
}

static int read_literal(struct reader* r, const char* word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return -1;
  r->p += n;
  return 0;
}

static int skip_value(struct reader* r, int depth);

/**
 * An object at r->p. For each member, `member` (when not NULL) is called with its name before its value is
 * read, and may read the value itself (returning 1), leave it to be skipped (0), or fail (-1).
 */
typedef int (*member_fn)(struct reader* r, struct json_span name, void* ctx, int depth);

static int read_object(struct reader* r, int depth, member_fn member, void* ctx) {
  if (depth > MAX_DEPTH) return -1;
  r->p++;  // '{'
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return 0;
  }
  for (;;) {
    struct json_span name;
    int escaped;
    skip_ws(r);
    if (read_string(r, &name, &escaped) < 0) return -1;
    // An escaped name could spell a name that matters: only a reader that decodes it could tell.
    if (escaped && member) return -1;
    skip_ws(r);
    if (r->p >= r->end || *r->p != ':') return -1;
    r->p++;
    skip_ws(r);
    int taken = member ? member(r, name, ctx, depth + 1) : 0;
    if (taken < 0) return -1;
    if (!taken && skip_value(r, depth + 1) < 0) return -1;
    skip_ws(r);
    if (r->p >= r->end) return -1;
    if (*r->p == '}') {
      r->p++;
      return 0;
    }
    if (*r->p != ',') return -1;
    r->p++;
  }
}

static int read_array(struct reader* r, int depth) {
  if (depth > MAX_DEPTH) return -1;
  r->p++;  // '['
  skip_ws(r);
  if (r->p < r->end && *r->p == ']') {
    r->p++;
    return 0;
  }
  for (;;) {
    skip_ws(r);
    if (skip_value(r, depth + 1) < 0) return -1;
    skip_ws(r);
    if (r->p >= r->end) return -1;
    if (*r->p == ']') {
      r->p++;
      return 0;
    }
    if (*r->p != ',') return -1;
    r->p++;
  }
}

static int skip_value(struct reader* r, int depth) {
  if (r->p >= r->end) return -1;
  struct json_span s;
  int escaped;
  switch (*r->p) {
    case '{': return read_object(r, depth, NULL, NULL);
    case '[': return read_array(r, depth);
    case '"': return read_string(r, &s, &escaped);
    case 't': return read_literal(r, "true");
    case 'f': return read_literal(r, "false");
    case 'n': return read_literal(r, "null");
    default: return read_number(r);
  }
}

struct found {
  struct json_span group;
  struct json_span sandbox;
};

static int name_is(struct json_span name, const char* want) {
  return name.len == strlen(want) && memcmp(name.ptr, want, name.len) == 0;
}

/** A member of "annotations": the two that matter must be plain strings of printable ASCII. */
static int annotation(struct reader* r, struct json_span name, void* ctx, int depth) {
  (void)depth;
  struct found* f = ctx;
  struct json_span* slot = name_is(name, GROUP) ? &f->group : name_is(name, SANDBOX) ? &f->sandbox : NULL;
  if (!slot) return 0;
  struct json_span value;
  int escaped;
  if (read_string(r, &value, &escaped) < 0 || escaped) return -1;
  for (size_t i = 0; i < value.len; i++)
    if (value.ptr[i] < 0x20 || value.ptr[i] > 0x7e) return -1;
  *slot = value;
  return 1;
}

static int top_member(struct reader* r, struct json_span name, void* ctx, int depth) {
  if (!name_is(name, "annotations")) return 0;
  struct found* f = ctx;
  // A later "annotations" replaces an earlier one, as in JSON.parse.
  f->group.ptr = f->sandbox.ptr = NULL;
  if (r->p < r->end && *r->p == 'n') return read_literal(r, "null") < 0 ? -1 : 1;
  if (r->p >= r->end || *r->p != '{') return -1;
  return read_object(r, depth, annotation, f) < 0 ? -1 : 1;
}

int read_group_annotations(const char* doc, size_t len, struct json_span* group, struct json_span* sandbox) {
  struct reader r = {doc, doc + len};
  struct found f = {{NULL, 0}, {NULL, 0}};
  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{') return -1;
  if (read_object(&r, 1, top_member, &f) < 0) return -1;
  skip_ws(&r);
  if (r.p != r.end) return -1;
  *group = f.group;
  *sandbox = f.sandbox;
  return 0;
}
