/*
 * passwd.h - Mosquitto-compatible password files.
 *
 * One entry per line, as written by mosquitto_passwd (2.0):
 *
 *   user:$7$ITERATIONS$SALT_B64$HASH_B64   PBKDF2-HMAC-SHA512
 *   user:$6$SALT_B64$HASH_B64              SHA-512(password || salt)
 *
 * SALT is 12 bytes (mosquitto_passwd output) or 64 bytes; HASH is 64
 * bytes; base64 is the standard alphabet with '=' padding. Blank lines and
 * lines whose first non-blank character is '#' are kept as comments.
 *
 *   struct passwd
 *     +-- lines[0..n)   entries and comment lines in file order
 *     +-- index         open-addressing table: username -> line
 *
 * Like Mosquitto 2.0.11, a line that cannot be used (no ':', bad
 * username, malformed hash) does not fail the load: it is reported as
 * "<why>; entry ignored" for FILE:LINE through a passwd_warn_fn, kept
 * verbatim for passwd_serialise(), and gives no entry, so its user is
 * denied. A username on two lines is denied too (the second line is kept
 * as a shadow). Only file-level problems fail the load: I/O errors, size
 * limits, over-long lines and NUL bytes ("FILE:LINE: reason").
 */
#ifndef MQTTD_PASSWD_H
#define MQTTD_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWD_SALT_LEN 12      /* what we (and mosquitto_passwd) generate */
#define PASSWD_SALT_LEN_LONG 64 /* also accepted on load */
#define PASSWD_HASH_LEN 64
#define PASSWD_ITER_MIN 1
#define PASSWD_ITER_MAX 10000000
/* mqttd-passwd's default $7$ iteration count: OWASP 2023 recommendation
 * for PBKDF2-HMAC-SHA512 (mosquitto_passwd 2.0 uses 101). */
#define PASSWD_DEFAULT_ITERATIONS 210000
#define PASSWD_MAX_LINE 65536       /* bytes per line, newline excluded */
#define PASSWD_MAX_FILE (64u << 20) /* bytes per file */
#define PASSWD_MAX_USERNAME 65535   /* MQTT string limit */
/* Room for the longest hash text we produce: "$7$" + 8 digits + "$" +
 * base64(64) + "$" + base64(64) + NUL. */
#define PASSWD_HASH_TEXT_MAX 200

enum passwd_type {
    PASSWD_SHA512 = 6,        /* "$6$" */
    PASSWD_SHA512_PBKDF2 = 7, /* "$7$" */
};

enum passwd_result {
    PASSWD_OK = 0,      /* user found, password matches */
    PASSWD_BAD = 1,     /* user found, password wrong or missing */
    PASSWD_NO_USER = 2, /* no such user */
};

struct passwd;

/* passwd_new: an empty file (for mqttd-passwd -c). Never NULL. */
struct passwd *passwd_new(void);

/*
 * passwd_warn_fn: a skipped line: the file name, its 1-based line and
 * "<why>; entry ignored". The same shape as conf_err_fn.
 */
typedef void (*passwd_warn_fn)(void *arg, const char *file, int line,
                               const char *msg);

/*
 * passwd_load_warn: read and parse the file at 'path'; each skipped line
 * goes to warn(arg, ...) (warn may be NULL). Returns a new table, or NULL
 * with "PATH:LINE: reason" (or "PATH: reason" for I/O errors and size
 * limits) in err. The caller owns the result (passwd_free).
 */
struct passwd *passwd_load_warn(const char *path, passwd_warn_fn warn,
                                void *arg, char *err, size_t errlen);

/* passwd_load: passwd_load_warn() without a warning sink. */
struct passwd *passwd_load(const char *path, char *err, size_t errlen);

/*
 * passwd_parse_warn / passwd_parse: the same over buf[0..len) named 'name'
 * in messages (for tests, the fuzzer and mqttd-passwd). buf need not be
 * NUL-terminated.
 */
struct passwd *passwd_parse_warn(const char *name, const char *buf, size_t len,
                                 passwd_warn_fn warn, void *arg, char *err,
                                 size_t errlen);
struct passwd *passwd_parse(const char *name, const char *buf, size_t len,
                            char *err, size_t errlen);

/* passwd_free: free the table. Accepts NULL. */
void passwd_free(struct passwd *pw);

/* passwd_count: number of users. */
size_t passwd_count(const struct passwd *pw);

/* passwd_has_user: true when 'user' has an entry. */
bool passwd_has_user(const struct passwd *pw, const char *user);

/* passwd_user_stamp: a fingerprint of user's entry (its hash text), 0 when
 * the user has none. A changed password gives a different stamp; nothing
 * secret can be recovered from it (it is a hash of a hash). */
uint64_t passwd_user_stamp(const struct passwd *pw, const char *user);

/*
 * passwd_check: verify a CONNECT. The hash comparison is constant-time
 * (util_ct_memeq). An empty or missing password (NULL or length 0) gives
 * PASSWD_BAD for a known user before any hashing, even when the entry is
 * a hash of "" (Mosquitto 2.0); so does a user denied for appearing on
 * two lines. A $7$ check costs 'iterations' HMAC-SHA512 rounds.
 */
enum passwd_result passwd_check(const struct passwd *pw, const char *user,
                                const uint8_t *password, size_t password_len);

/*
 * passwd_hash_make: a new hash text ("$7$ITER$SALT$HASH" or
 * "$6$SALT$HASH", NUL-terminated) for password with a fresh random
 * 12-byte salt (RAND_bytes) into out[outlen] (PASSWD_HASH_TEXT_MAX is
 * enough). 'iterations' is used for $7$ only and must be in
 * [PASSWD_ITER_MIN, PASSWD_ITER_MAX]. Returns 0, or -1 (bad arguments,
 * RNG or digest failure, out too small).
 */
int passwd_hash_make(enum passwd_type type, unsigned long iterations,
                     const uint8_t *password, size_t password_len, char *out,
                     size_t outlen);

/*
 * passwd_hash_verify: check password against one hash text (the part after
 * "user:"). Returns 1 on match, 0 on mismatch, -1 when 'hash' is malformed
 * (*why then names the problem, a static string).
 */
int passwd_hash_verify(const char *hash, const uint8_t *password,
                       size_t password_len, const char **why);

/*
 * passwd_set: add 'user' with hash text 'hash' at the end, or replace the
 * hash of an existing user in place (dropping the user's repeated lines).
 * Returns 0, or -1 with a reason in err (empty/invalid username, username
 * with ':', malformed hash).
 */
int passwd_set(struct passwd *pw, const char *user, const char *hash, char *err,
               size_t errlen);

/* passwd_remove: delete 'user' (and its repeated lines). Returns 0, or -1
 * when not present. */
int passwd_remove(struct passwd *pw, const char *user);

/*
 * passwd_serialise: the file text: entries as "user:hash\n" and comment
 * lines as they were read, in order. Returns a NUL-terminated buffer the
 * caller frees; *len (if not NULL) gets its length without the NUL.
 */
char *passwd_serialise(const struct passwd *pw, size_t *len);

#endif
