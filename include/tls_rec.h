/*
 * tls_rec.h - the record layer of an established TLS 1.3 connection, run
 * without OpenSSL's SSL object.
 *
 * OpenSSL 3.0 keeps about 11 KiB per connection in its SSL object after the
 * handshake (the object itself with 32 pipeline record slots, both cipher
 * contexts, a handshake buffer kept for post-handshake messages). For a
 * fleet of idle devices that is most of the broker's memory. TLS 1.3
 * separates the handshake from record protection cleanly, as the kernel's
 * TLS offload does: OpenSSL runs the handshake; tls_rec captures the
 * application traffic secrets while it does (keylog callback), counts the
 * records OpenSSL protects with them (message callback), and then takes
 * over: keys and IVs are derived as RFC 8446 section 7.3 says, records
 * are sealed and opened with OpenSSL's EVP AEAD ciphers (AES-128-GCM,
 * AES-256-GCM, ChaCha20-Poly1305), KeyUpdate is answered and sent, alerts
 * and close_notify are handled, and the SSL is freed. What stays per
 * connection is two cipher contexts and the two secrets, plus a partial
 * record only while one is in flight.
 *
 * Anything else (TLS 1.2, CCM suites, input OpenSSL already buffered) keeps
 * the SSL: tls_rec_take returns NULL and says why.
 */
#ifndef MQTTD_TLS_REC_H
#define MQTTD_TLS_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "tls.h"

/* Largest TLSCiphertext (RFC 8446 5.2): header + 2^14 + 256. */
#define TLS_REC_MAX_RECORD (5u + 16384u + 256u)
/* tls_rec_read needs a buffer of at least this many bytes. */
#define TLS_REC_READ_MIN (2u * TLS_REC_MAX_RECORD)
/* tls_rec_write needs a scratch buffer of at least this many bytes. */
#define TLS_REC_WRITE_MIN (16384u + 22u)

struct tls_rec;

/*
 * tls_rec_ctx_setup: install the keylog and message callbacks that capture
 * what tls_rec_take needs on every SSL created from ctx afterwards. Call
 * once per SSL_CTX, before its first SSL_new. Returns false (OpenSSL error
 * queue set) when the per-SSL state cannot be registered.
 */
bool tls_rec_ctx_setup(SSL_CTX *ctx);

/*
 * tls_rec_take: for an SSL whose server handshake has just completed
 * (SSL_accept returned 1) and nothing was read after it, a record layer
 * that continues the connection; the caller then frees ssl and uses only
 * the tls_rec on the same fd. NULL when the connection is not TLS 1.3 with
 * an AEAD suite tls_rec implements, or OpenSSL buffered input already;
 * *why (static text) then says which, and the caller keeps using ssl.
 */
struct tls_rec *tls_rec_take(SSL *ssl, const char **why);

/* tls_rec_free: wipe the keys and free r (no close_notify). NULL is ok. */
void tls_rec_free(struct tls_rec *r);

/*
 * tls_rec_read: read from fd into buf (cap >= TLS_REC_READ_MIN), open the
 * complete records and leave their application data in buf[0..*n). A
 * partial record is kept in r until the rest arrives. *n bytes are valid
 * whatever the result, so deliver them first:
 *   TLS_IO_OK        *n > 0
 *   TLS_IO_WANT_READ nothing (more) to deliver until fd is readable
 *   TLS_IO_CLOSED    the peer sent close_notify or closed the socket
 *   TLS_IO_ERROR     a bad record, alert or socket error; a fatal alert
 *                    was sent when the protocol asks for one;
 *                    tls_rec_error says why
 * A KeyUpdate that asks for one is answered before any more application
 * data; while earlier ciphertext still waits for the socket the answer is
 * owed rather than queued, and requests that arrive meanwhile share it
 * (RFC 8446 4.6.3). Check tls_rec_write_pending afterwards.
 */
enum tls_io tls_rec_read(struct tls_rec *r, int fd, uint8_t *buf, size_t cap,
                         size_t *n);

/*
 * tls_rec_write: seal up to len bytes of buf into records in scratch
 * (scratch_cap >= TLS_REC_WRITE_MIN) and write them to fd. *n is how many
 * plaintext bytes were taken; what the socket did not accept stays queued
 * in r (tls_rec_write_pending) and goes out first on the next call.
 *   TLS_IO_OK         *n bytes taken (0 < *n <= len, or 0 when len is 0)
 *   TLS_IO_WANT_WRITE queued ciphertext is still waiting; nothing taken
 *   TLS_IO_ERROR      socket error; tls_rec_error says why
 */
enum tls_io tls_rec_write(struct tls_rec *r, int fd, const uint8_t *buf,
                          size_t len, uint8_t *scratch, size_t scratch_cap,
                          size_t *n);

/* tls_rec_write_pending: true while sealed bytes wait for the socket or a
 * KeyUpdate answer is owed; tls_rec_flush sends both. */
bool tls_rec_write_pending(const struct tls_rec *r);

/*
 * tls_rec_flush: write queued ciphertext, then an owed KeyUpdate answer.
 * TLS_IO_OK when none is left,
 * TLS_IO_WANT_WRITE when some is, TLS_IO_ERROR on a socket error.
 */
enum tls_io tls_rec_flush(struct tls_rec *r, int fd);

/* tls_rec_close_notify: best effort: seal and send close_notify after any
 * queued ciphertext; never blocks, ignores errors. */
void tls_rec_close_notify(struct tls_rec *r, int fd);

/* tls_rec_error: why the last TLS_IO_ERROR, or ""; the text lives as long
 * as r. */
const char *tls_rec_error(const struct tls_rec *r);

/*
 * tls_rec_set_rekey_limit: send a KeyUpdate (update_not_requested) and
 * switch to the next write key after this many records under one key
 * (default 2^23, well inside the AES-GCM limit of RFC 8446 5.5). For tests.
 */
void tls_rec_set_rekey_limit(struct tls_rec *r, uint64_t records);

/* tls_rec_key_updates: KeyUpdates received and sent so far (tests, logs). */
void tls_rec_key_updates(const struct tls_rec *r, uint64_t *received,
                         uint64_t *sent);

#endif
