/*
 * tls_ssl.h - the SSL-level side of tls.c, for the TLS transport
 * (transport_tls.c) and tls.c's unit test only: making an SSL from a
 * context, one handshake/read/write step mapped to enum tls_io with a
 * specific reason for every failed handshake, and the snapshot of an
 * established connection. Uses OpenSSL's type names only; the files that
 * call it include OpenSSL's SSL header themselves.
 */
#ifndef MQTTD_TLS_SSL_H
#define MQTTD_TLS_SSL_H

#include <stddef.h>

#include <openssl/types.h>

#include "tls.h"

/* Result of a non-blocking TLS step, mapped from SSL_get_error. */
enum tls_io {
    TLS_IO_OK = 0,
    TLS_IO_WANT_READ,
    TLS_IO_WANT_WRITE,
    TLS_IO_CLOSED, /* clean close, EOF, ZERO_RETURN, SYSCALL errno 0 */
    TLS_IO_ERROR,
};

/* tls_ctx_ssl: the SSL_CTX inside (borrowed). */
SSL_CTX *tls_ctx_ssl(struct tls_ctx *c);

/* tls_new_ssl: a server SSL for an accepted fd from c. NULL on failure. */
SSL *tls_new_ssl(struct tls_ctx *c, int fd);

/*
 * tls_new_client_ssl: a client SSL for a connected fd from c (a
 * tls_client_ctx_new context), sending sni (may be NULL) and, unless c is
 * insecure, requiring the server certificate to match it. NULL on failure.
 */
SSL *tls_new_client_ssl(struct tls_ctx *c, int fd, const char *sni);

/*
 * tls_handshake: one handshake step (either side). On TLS_IO_ERROR, *why
 * is filled with a specific reason ("client certificate expired",
 * "unknown CA", "no client certificate", "protocol version too old",
 * "no shared cipher", "first byte 0x10 is not a TLS record: plaintext on
 * a TLS port?", "certificate verify failed: ..." for a client, ...)
 * including the verify details (depth, subject, issuer, serial, SHA-256
 * fingerprint) when a client certificate was involved.
 */
enum tls_io tls_handshake(SSL *ssl, char *why, size_t whylen);

/* tls_read: SSL_read up to len; *n bytes read when TLS_IO_OK. */
enum tls_io tls_read(SSL *ssl, void *buf, size_t len, size_t *n);

/* tls_write: SSL_write of exactly len bytes (retry with the same len after
 * WANT_*); *n bytes written when TLS_IO_OK. */
enum tls_io tls_write(SSL *ssl, const void *buf, size_t len, size_t *n);

/* tls_info_new: the snapshot of an SSL whose handshake has completed.
 * Never NULL; free with tls_info_free. */
struct tls_info *tls_info_new(SSL *ssl);

/* tls_release_buffers: free idle read/write buffers (SSL_MODE_RELEASE_
 * BUFFERS is set on every SSL; provided for explicit idle trimming). */
void tls_release_buffers(SSL *ssl);

#endif
