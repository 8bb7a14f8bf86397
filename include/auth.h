/*
 * auth.h - authentication and authorisation behind one interface.
 *
 * A struct auth is built per listener from a conf snapshot: an ordered chain
 * of authenticators plus the ACL of that listener's security settings
 * (global ones unless per_listener_settings is true).
 *
 *   auth_connect()  ->  [mTLS identity] -> [password file] -> [anonymous]
 *                        each: ALLOW | DENY (reason) | NOT_MINE
 *                        the first ALLOW/DENY wins; all NOT_MINE = DENY
 *   auth_acl()      ->  ACL file rules (or allow-all without acl_file),
 *                        $SYS rules
 *
 * Authenticators only decide; the session builds the CONNACK.
 */
#ifndef MQTTD_AUTH_H
#define MQTTD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h" /* conf_err_fn */

enum auth_result {
    AUTH_NOT_MINE = 0,
    AUTH_ALLOW = 1,
    AUTH_DENY = 2,
};

/* Access kinds for ACL checks. */
enum auth_access {
    AUTH_READ = 1,      /* a message is delivered to the client */
    AUTH_WRITE = 2,     /* the client publishes */
    AUTH_SUBSCRIBE = 4, /* the client subscribes to a filter */
};

/* What the session knows about a connecting client. */
struct auth_client {
    const char *client_id;
    const char *username;    /* NULL when none was sent */
    const uint8_t *password; /* NULL when none was sent */
    size_t password_len;
    /* TLS: the identity taken from the verified client certificate per
     * use_identity_as_username / use_subject_as_username, NULL when the
     * listener does not map identities or no certificate was given. */
    const char *cert_identity;
    const char *cert_error; /* why no identity could be taken, or NULL */
    const char *peer_ip;
    int peer_port;
};

/* One authenticator: a small vtable, like a connection type. */
struct authenticator {
    const char *name;
    enum auth_result (*check)(void *state, const struct auth_client *c,
                              const char **reason);
    void (*free)(void *state);
    void *state;
    /*
     * MQTT 5 enhanced authentication (optional; NULL method for plain
     * authenticators). 'method' is the Authentication Method it serves;
     * 'step' consumes the client's Authentication Data (CONNECT or AUTH)
     * and either finishes (AUTH_ALLOW / AUTH_DENY) or returns
     * AUTH_NOT_MINE with *more set and server data in out[0..*outlen) for
     * an AUTH 0x18 (continue) round. No method ships today: a CONNECT
     * naming any method is refused with 0x8C; this is where one plugs in.
     */
    const char *method;
    enum auth_result (*step)(void *state, const struct auth_client *c,
                             const uint8_t *in, size_t inlen, uint8_t *out,
                             size_t *outlen, bool *more, const char **reason);
};

struct auth;

/*
 * auth_new: build the chain and ACL for listener 'li' of snapshot c,
 * loading password_file and acl_file. On error returns NULL and fills err
 * with "FILE:LINE: message". The result does not reference c.
 */
struct auth *auth_new(const struct conf *c, size_t li, char *err,
                      size_t errlen);

/*
 * auth_check_password_files: load each distinct password_file of c once
 * (conf_load only checks that they are readable) and report what the
 * broker will do with them: every line it will skip goes to warn(arg,
 * FILE, LINE, CONF_WARNING_PREFIX "<why>; entry ignored"); a file that
 * cannot be loaded at all goes to fail(arg, "FILE[:LINE]: reason") when
 * fail is not NULL. Returns -1 when a file cannot be loaded, else 0.
 */
int auth_check_password_files(const struct conf *c, conf_err_fn warn,
                              void (*fail)(void *arg, const char *err),
                              void *arg);

/* auth_free: drop the creator's reference; the chain and ACL are freed
 * with the last reference. Accepts NULL. */
void auth_free(struct auth *a);

/* auth_ref / auth_unref: extra references (a queued password check keeps
 * the auth it started with across a reload). Loop thread only. */
struct auth *auth_ref(struct auth *a);
void auth_unref(struct auth *a);

/*
 * auth_connect: run the chain for a CONNECT. Returns AUTH_ALLOW or
 * AUTH_DENY; on DENY *reason is a static short text for the log
 * ("unknown user", "bad password", "anonymous not allowed",
 * "no certificate identity", ...) and *bad_credentials says whether the
 * CONNACK should say "bad user name or password" (true) or "not
 * authorised" (false).
 */
enum auth_result auth_connect(const struct auth *a, const struct auth_client *c,
                              const char **reason, bool *bad_credentials);

/*
 * auth_acl: may client (client_id, username; username NULL when
 * anonymous) access 'topic' (a topic name for READ/WRITE, a filter for
 * SUBSCRIBE) that way? Mosquitto's rules: without an acl_file everything is
 * allowed except writing to $SYS; with one, the anonymous section (or the
 * user's section) plus pattern rules with %c/%u substituted, deny rules
 * win, and a client id or username holding '+', '#' or '/' never matches a
 * pattern rule ('/' does in a SAN identity, tls_identity_source other
 * than cn: acl_check_levels). Clients may never write to "$SYS/...".
 */
bool auth_acl(const struct auth *a, const char *client_id, const char *username,
              const char *topic, size_t topic_len, enum auth_access access);

/* auth_has_method: true when an authenticator of the chain serves the
 * MQTT 5 Authentication Method m[0..len). */
bool auth_has_method(const struct auth *a, const char *m, size_t len);

/* auth_has_password_file: true when a password file is configured; the
 * session then re-checks connected clients after a reload. */
/*
 * auth_acl_bridge_state: the write check of a bridge's (try_private)
 * PUBLISH: as auth_acl, except that $SYS/broker/connection/... (a
 * bridge's state notification) is allowed as Mosquitto allows it: always
 * without an acl_file, else as the ACL says (Mosquitto's documented rule
 * "pattern write $SYS/broker/connection/%c/state").
 */
bool auth_acl_bridge_state(const struct auth *a, const char *client_id,
                           const char *username, const char *topic,
                           size_t topic_len);

bool auth_has_password_file(const struct auth *a);

/*
 * auth_user_stamp: a fingerprint of username's password-file entry (0 when
 * no password file applies or the user has no entry). The session keeps
 * the stamp a client authenticated with; after a reload a different stamp
 * means the password changed or the user was removed.
 */
uint64_t auth_user_stamp(const struct auth *a, const char *username);

#endif
