/*
 * util.h - allocation helpers that abort on out-of-memory, number parsing,
 * UTF-8 validation and small string helpers shared by every module.
 */
#ifndef MQTTD_UTIL_H
#define MQTTD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTTD_VERSION "0.1.0"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * x*alloc: like malloc/calloc/realloc/strdup but never return NULL: on
 * allocation failure they print a message and abort(). xfree-style release is
 * plain free(), which accepts NULL.
 */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

/*
 * util_strtonum: parse a base-10 integer in [minval, maxval] from the whole
 * of 's' (no trailing garbage). Returns 0 and stores the value in *out, or -1
 * and sets *errstr to "invalid", "too small" or "too large" (static strings).
 */
int util_strtonum(const char *s, long long minval, long long maxval,
                  long long *out, const char **errstr);

/*
 * util_utf8_valid: true when p[0..len) is well-formed UTF-8 as MQTT requires
 * [MQTT-1.5.4-1]: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
 * above U+10FFFF, and no U+0000 [MQTT-1.5.4-2].
 */
bool util_utf8_valid(const void *p, size_t len);

/*
 * util_ct_memeq: constant-time comparison of two equal-length buffers.
 * Returns true when equal. Time depends only on len.
 */
bool util_ct_memeq(const void *a, const void *b, size_t len);

/* util_hex: p[0..n) as 2n lower-case hex digits into out, which must hold
 * 2n + 1 bytes (NUL-terminated). Returns out + 2n (the NUL). */
char *util_hex(const void *p, size_t n, char *out);

/* util_hexval: the value of hex digit c (either case), or -1. */
int util_hexval(char c);

/*
 * util_unhex: the n hex digits at s (either case) decoded into out[cap],
 * NUL-terminated. Returns the number of bytes decoded, or -1 when n is
 * odd, a character is not a hex digit, or n / 2 + 1 > cap.
 */
int util_unhex(const char *s, size_t n, char *out, size_t cap);

/* util_fnv1a: 64-bit FNV-1a of p[0..len) (hash tables, fingerprints; not
 * for anything an attacker can target with collisions at scale). */
uint64_t util_fnv1a(const void *p, size_t len);

/* util_now_mono: CLOCK_MONOTONIC in seconds (double). */
double util_now_mono(void);

/*
 * util_levenshtein: edit distance between a and b (for "did you mean"
 * hints). Strings longer than 64 bytes return a large value.
 */
unsigned util_levenshtein(const char *a, const char *b);

/*
 * util_write_file_atomic: write len bytes to path crash-safely: a temporary
 * file in the same directory created with 'mode', write, fsync, rename over
 * path, fsync of the directory. Returns 0, or -1 with errno set and the
 * temporary file removed; 'path' is untouched on failure.
 */
int util_write_file_atomic(const char *path, const void *data, size_t len,
                           unsigned mode);

/*
 * util_line_fn: called for each line of a file, without its '\n' (a '\r'
 * before it is kept). Returns 0, or -1 with *why set to a static string
 * naming the problem, which stops the reading.
 */
typedef int (*util_line_fn)(void *ud, const char *line, size_t len,
                            const char **why);

/*
 * util_parse_lines: call fn(ud, ...) for each line of buf[0..len) in order
 * (the last line need not end in '\n'; an empty buffer has no lines).
 * Returns 0, or -1 with err set to "NAME: file larger than MAX_FILE bytes"
 * (len > max_file), "NAME:LINE: line longer than MAX_LINE bytes",
 * "NAME:LINE: NUL byte in line" or "NAME:LINE: WHY" (fn refused it);
 * lines are counted from 1. err may be NULL.
 */
int util_parse_lines(const char *name, const char *buf, size_t len,
                     size_t max_file, size_t max_line, util_line_fn fn,
                     void *ud, char *err, size_t errlen);

/*
 * util_read_lines: read the file at path (at most max_file bytes, whatever
 * its size claims, so pipes and growing files are safe too) and give its
 * lines to util_parse_lines() with path as NAME. Besides that function's
 * errors, -1 with err "PATH: cannot open: REASON", "PATH: not a readable
 * file" (a directory), "PATH: file larger than MAX_FILE bytes" or "PATH:
 * read error: REASON". The copy of the file is wiped before it is freed
 * (password files).
 */
int util_read_lines(const char *path, size_t max_file, size_t max_line,
                    util_line_fn fn, void *ud, char *err, size_t errlen);

#endif
