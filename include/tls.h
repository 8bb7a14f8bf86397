/*
 * tls.h - TLS contexts and what a handshake established: a listener's
 * SSL_CTX built from its conf, swapped atomically on reload, verify
 * logging, expiry and revocation checks; client contexts for outgoing
 * connections; the peer certificate of an established connection. TLS
 * knows no MQTT and no authentication: turning a certificate into a
 * username is auth_mtls.h's. The TLS transport (transport.h) drives the
 * SSL objects; no OpenSSL SSL type appears here, and nothing blocks.
 */
#ifndef MQTTD_TLS_H
#define MQTTD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/types.h> /* X509 */

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

/*
 * tls_client_ctx_new: a client context for outgoing connections (a
 * bridge): TLS 1.2 or later, server certificate verified against cafile
 * and/or capath (the system's default paths when both are NULL), and the
 * name sent as SNI checked against it, unless insecure; certfile/keyfile
 * (both or neither) as the client certificate; alpn a comma-separated
 * protocol list or NULL. Returns a context with one reference, or NULL
 * with "what failed: OpenSSL reason" in err.
 */
struct tls_ctx *tls_client_ctx_new(const char *cafile, const char *capath,
                                   const char *certfile, const char *keyfile,
                                   bool insecure, const char *alpn, char *err,
                                   size_t errlen);

/* tls_ctx_set_min_version: the lowest TLS version c negotiates
 * (TLS1_2_VERSION or TLS1_3_VERSION). Returns 0, or -1 when refused. */
int tls_ctx_set_min_version(struct tls_ctx *c, int version);

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

/*
 * tls_ctx_certs: fn(ud, ci) for every certificate the context loaded: the
 * server certificate ("server"), the rest of its chain ("chain"), each CA
 * of cafile ("ca") and each CRL of crlfile ("crl", subject = issuer,
 * not_after = nextUpdate, 0 when it has none). ci and its strings are
 * valid during the call only. Nothing when c is NULL.
 */
struct tls_cert_info {
    const char *kind; /* "server", "chain", "ca", "crl" */
    const char *file; /* the file it came from ("" if unknown) */
    const char *subject;
    time_t not_after;
};
typedef void (*tls_cert_fn)(void *ud, const struct tls_cert_info *ci);
void tls_ctx_certs(const struct tls_ctx *c, tls_cert_fn fn, void *ud);

/*
 * What an established TLS connection is (version, suite, resumption, the
 * client certificate and whether it was verified), kept after the SSL is
 * freed. The TLS transport takes the snapshot when the handshake has
 * completed. tls_info_free accepts NULL.
 */
struct tls_info;
void tls_info_free(struct tls_info *ti);

/* tls_info_peer: the peer's certificate (borrowed) or NULL. */
X509 *tls_info_peer(const struct tls_info *ti);

/* tls_info_issuer: the issuer of the peer's certificate as the handshake's
 * verified chain has it (borrowed), NULL when unknown (resumed session). */
X509 *tls_info_issuer(const struct tls_info *ti);

/* tls_ctx_store: the context's trust store (borrowed): CA certificates,
 * CRLs; OCSP answers are verified against it. */
X509_STORE *tls_ctx_store(struct tls_ctx *c);
/* tls_info_resumed: true when the session was resumed from a ticket. */
bool tls_info_resumed(const struct tls_info *ti);

/* tls_info_verified: true when the peer's certificate chain verified
 * (also true when the peer sent none: check tls_info_peer). */
bool tls_info_verified(const struct tls_info *ti);

/*
 * tls_describe: "TLSv1.3 TLS_AES_256_GCM_SHA384 subject=CN=client1
 * serial=0A..." or "... no client certificate", with " resumed" when the
 * session was resumed; for the accepted-connection log line.
 */
void tls_describe(const struct tls_info *ti, char *out, size_t outlen);

/* tls_peer_not_after: the client certificate's notAfter (0 if none). */
time_t tls_peer_not_after(const struct tls_info *ti);

#endif
