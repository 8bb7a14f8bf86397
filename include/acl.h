/*
 * acl.h - Mosquitto-compatible ACL files.
 *
 *   # comment
 *   topic read public/#            rules before any "user" line apply to
 *   pattern write dev/%c/status    anonymous clients; "pattern" rules
 *   user alice                     apply to every client with %c (client
 *   topic readwrite alice/#        id) and %u (username) substituted as
 *   topic deny alice/secret        whole topic levels
 *
 * Access is one of read, write, readwrite (default when omitted) or deny.
 *
 *   struct acl
 *     +-- anon       rules for clients without a username
 *     +-- users[]    sorted by name: rules of each "user" section
 *     +-- patterns   pattern rules, levels pre-split, %c/%u marked
 *
 * Checks: a deny rule that matches (READ/WRITE) or covers (SUBSCRIBE)
 * wins; otherwise some read/readwrite (READ, SUBSCRIBE) or
 * write/readwrite (WRITE) rule must match (or cover). A client id or
 * username holding '+', '#' or '/' never satisfies an allow pattern that
 * uses it, and makes a deny pattern that uses it act as if that level
 * were '+' (CVE-2017-7650: fail closed); acl_check_levels lets a
 * certificate SAN identity's '/' through as several levels.
 */
#ifndef MQTTD_ACL_H
#define MQTTD_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

#define ACL_MAX_LINE 65536       /* bytes per line */
#define ACL_MAX_FILE (64u << 20) /* bytes per file */

struct acl;

/*
 * acl_load: read and parse the ACL file at 'path'. Returns a new ACL, or
 * NULL with "PATH:LINE: reason" (or "PATH: reason") in err. Every rule
 * filter must be a valid topic filter, and %c/%u must be a whole level of
 * a pattern rule. The caller owns the result (acl_free).
 */
struct acl *acl_load(const char *path, char *err, size_t errlen);

/* acl_parse: the same over buf[0..len) named 'name' (tests, fuzzer). */
struct acl *acl_parse(const char *name, const char *buf, size_t len, char *err,
                      size_t errlen);

/* acl_free: accepts NULL. */
void acl_free(struct acl *a);

/*
 * acl_check: may the client (client_id; username NULL when anonymous)
 * access topic[0..topic_len) that way? For AUTH_SUBSCRIBE 'topic' is a
 * filter (a "$share/GROUP/" prefix is removed first). $SYS write
 * protection is auth_acl's business, not this function's.
 */
bool acl_check(const struct acl *a, const char *client_id, const char *username,
               const char *topic, size_t topic_len, enum auth_access access);

/*
 * acl_check_levels: acl_check, and with user_levels a username holding
 * '/' (a certificate SAN identity such as spiffe://example.org/sensor/7,
 * which the CA assigns, not the client) is substituted for %u as the
 * several levels it spans, as Mosquitto substitutes; '+' and '#' in it
 * still never satisfy an allow pattern. acl_check is user_levels false.
 */
bool acl_check_levels(const struct acl *a, const char *client_id,
                      const char *username, bool user_levels, const char *topic,
                      size_t topic_len, enum auth_access access);

/*
 * acl_filter_covers: true when every topic name matched by filter f is
 * also matched by rule filter r (both valid filters): each rule level is
 * '#' (covers the rest), '+' (any one level of f, including '+', not '#')
 * or a literal equal to f's level; a rule starting with a wildcard does
 * not cover a filter starting with '$'.
 */
bool acl_filter_covers(const char *r, size_t rlen, const char *f, size_t flen);

#endif
