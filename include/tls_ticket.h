/*
 * tls_ticket.h - TLS session tickets of the listeners: the keys that
 * encrypt them (tls_session_ticket_key_file, or a random in-memory key
 * rotated every tls_session_ticket_lifetime), and the checks a resumption
 * must pass before it may skip the certificate verification of a full
 * handshake (revocation by the current CRL, expiry, trusted issuer).
 *
 *   struct tls_tickets (one per broker, refcounted by the SSL_CTXs using it)
 *     +-- keys[]   from the key file: 80-byte records, nginx's layout
 *     |            (name 16 | HMAC-SHA256 key 32 | AES-256-CBC key 32);
 *     |            keys[0] encrypts, every key decrypts
 *     +-- or the current and previous period keys derived (HKDF-SHA256)
 *         from a random process secret drawn once, so that every thread
 *         of the process derives the same keys without sharing state
 *
 * Keys never reach a log line.
 */
#ifndef MQTTD_TLS_TICKET_H
#define MQTTD_TLS_TICKET_H

#include <stddef.h>
#include <stdint.h>

struct log;
struct tls_ctx;
struct tls_tickets;

#define TLS_TICKET_KEY_LEN 80 /* one key record of the key file */
#define TLS_TICKET_MAX_KEYS 16

/*
 * tls_tickets_new: ticket keys read from key_file (NULL = random
 * in-memory keys rotated every 'lifetime' seconds), tickets valid for
 * 'lifetime' seconds (also the lifetime hint sent to clients). The file
 * must hold 1..TLS_TICKET_MAX_KEYS records of TLS_TICKET_KEY_LEN bytes, be
 * a regular file owned by the effective user or root, and give no access
 * to group or others. lg (borrowed, may be NULL) gets a debug line per
 * resumption and per refused one. Returns an object with one reference,
 * or NULL with "tls_session_ticket_key_file 'PATH': why" in err (never
 * any key byte).
 */
struct tls_tickets *tls_tickets_new(const char *key_file, uint32_t lifetime,
                                    struct log *lg, char *err, size_t errlen);

/* tls_tickets_unref: drop one reference; the last one wipes the keys.
 * Accepts NULL. */
void tls_tickets_unref(struct tls_tickets *tk);

/*
 * tls_tickets_attach: make server context c issue and accept tickets with
 * tk's keys (c keeps a reference): stateless tickets only (the in-memory
 * session cache is turned off, so no resumption escapes the checks),
 * no early data (0-RTT), and every ticket presented is checked before it
 * is used: a client certificate revoked by c's current CRL, expired or
 * not yet valid, whose issuer is no longer trusted, or missing where c
 * requires one, turns the resumption into a full handshake (which then
 * fails with its usual reason). Returns 0, or -1 with err filled.
 */
int tls_tickets_attach(struct tls_tickets *tk, struct tls_ctx *c, char *err,
                       size_t errlen);

#endif
