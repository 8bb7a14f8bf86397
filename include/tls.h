/*
 * tls.h - TLS for listeners: SSL_CTX built from a listener's conf,
 * swapped atomically on reload, verify logging, identity extraction,
 * expiry and revocation checks. The connection layer drives SSL objects
 * with the non-blocking helpers below; nothing here blocks.
 */
#ifndef MQTTD_TLS_H
#define MQTTD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

struct conf_tls;
struct log;

/* A listener's TLS context: one SSL_CTX plus what was loaded into it.
 * Reference-counted: connections keep the context they were accepted
 * with; a reload swaps in a new one for new handshakes only. */
struct tls_ctx;

/*
 * tls_ctx_new: build a server SSL_CTX from t: certificate chain + key
 * (checked to match), CA file/path, CRL (checked with
 * X509_V_FLAG_CRL_CHECK when given), DH params, minimum version (never
 * below TLS 1.2), ciphers (default: ECDHE+AEAD only), TLS 1.3 suites,
 * groups, client-certificate mode (CA names sent to clients), no
 * renegotiation, no compression, session tickets on. Returns a context
 * with one reference, or NULL with "FILE:LINE: what failed: OpenSSL
 * reason" in err (FILE:LINE being t->src:t->line).
 */
struct tls_ctx *tls_ctx_new(const struct conf_tls *t, struct log *lg, char *err,
                            size_t errlen);
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
void tls_ctx_unref(struct tls_ctx *c); /* accepts NULL */

/* tls_ctx_ssl: the SSL_CTX inside (borrowed). */
SSL_CTX *tls_ctx_ssl(struct tls_ctx *c);

/*
 * tls_ctx_changed: true when any file the context was loaded from has a
 * different mtime/size/inode now than at load (tls_reload_interval).
 */
bool tls_ctx_changed(const struct tls_ctx *c);

/* tls_ctx_crl_loaded: true when a CRL is configured. */
bool tls_ctx_has_crl(const struct tls_ctx *c);

/*
 * tls_ctx_cert_revoked: true when 'cert' (a connected client's) is listed
 * in this context's CRL. Used after a reload to cut off revoked clients.
 */
bool tls_ctx_cert_revoked(const struct tls_ctx *c, X509 *cert);

/*
 * tls_ctx_expiry_report: log a warning for each of the server certificate,
 * CA certificates and CRL nextUpdate that falls within 'warn_days' of now;
 * fill *server_not_after (0 if unknown). Called at load and daily.
 */
void tls_ctx_expiry_report(const struct tls_ctx *c, struct log *lg,
                           unsigned warn_days, time_t now,
                           time_t *server_not_after);

/* Result of a non-blocking TLS step, mapped from SSL_get_error. */
enum tls_io {
    TLS_IO_OK = 0,
    TLS_IO_WANT_READ,
    TLS_IO_WANT_WRITE,
    TLS_IO_CLOSED, /* clean close, EOF, ZERO_RETURN, SYSCALL errno 0 */
    TLS_IO_ERROR,
};

/* tls_new_ssl: a server SSL for an accepted fd from c. NULL on failure. */
SSL *tls_new_ssl(struct tls_ctx *c, int fd);

/*
 * tls_handshake: one SSL_accept step. On TLS_IO_ERROR, *why is filled with
 * a specific reason ("client certificate expired", "unknown CA",
 * "no client certificate", "protocol version too old", "no shared cipher",
 * "plaintext MQTT on a TLS port", "certificate revoked", ...) including
 * the verify details (depth, subject, issuer, serial, SHA-256 fingerprint)
 * when a certificate was involved.
 */
enum tls_io tls_handshake(SSL *ssl, char *why, size_t whylen);

/* tls_read: SSL_read up to len; *n bytes read when TLS_IO_OK. */
enum tls_io tls_read(SSL *ssl, void *buf, size_t len, size_t *n);

/* tls_write: SSL_write of exactly len bytes (retry with the same len after
 * WANT_*); *n bytes written when TLS_IO_OK. */
enum tls_io tls_write(SSL *ssl, const void *buf, size_t len, size_t *n);

/*
 * What an established TLS connection is (version, suite, resumption, the
 * client certificate and whether it was verified), kept after the SSL is
 * freed. tls_info_new takes a snapshot when the handshake has completed;
 * never NULL. tls_info_free accepts NULL.
 */
struct tls_info;
struct tls_info *tls_info_new(SSL *ssl);
void tls_info_free(struct tls_info *ti);

/* tls_info_peer: the client certificate (borrowed) or NULL. */
X509 *tls_info_peer(const struct tls_info *ti);

/*
 * tls_describe: "TLSv1.3 TLS_AES_256_GCM_SHA384 subject=CN=client1
 * serial=0A..." or "... no client certificate", with " resumed" when the
 * session was resumed; for the accepted-connection log line.
 */
void tls_describe(const struct tls_info *ti, char *out, size_t outlen);

/*
 * tls_peer_identity: the username taken from the verified client
 * certificate: the first CN (subject=false) or the RFC 2253 subject
 * (subject=true). Returns 0, or -1 with *why ("no certificate",
 * "certificate not verified", "no CN", "CN not valid UTF-8", "CN contains
 * NUL") when none can be used.
 */
int tls_peer_identity(const struct tls_info *ti, bool subject, char *out,
                      size_t outlen, const char **why);

/* tls_peer_not_after: the client certificate's notAfter (0 if none). */
time_t tls_peer_not_after(const struct tls_info *ti);

/* tls_release_buffers: free idle read/write buffers (SSL_MODE_RELEASE_
 * BUFFERS is set on every SSL; provided for explicit idle trimming). */
void tls_release_buffers(SSL *ssl);

#endif
