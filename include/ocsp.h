/*
 * ocsp.h - OCSP (RFC 6960) as the broker uses it, without I/O: building a
 * request for one certificate, and checking a responder's DER answer
 * (parse, signature and signer, nonce, freshness, the certificate's
 * status). The HTTP exchange is ocsp_http.h's, the cache and the sharing
 * of queries ocsp_cache.h's. Responses are untrusted input: every length
 * is bounded (OCSP_MAX_RESPONSE) and every failure has a specific reason.
 *
 *   ocsp_request_new(cert, issuer)  -> DER request (+ nonce) + certid
 *   HTTP POST to the responder      -> DER response (<= OCSP_MAX_RESPONSE)
 *   ocsp_response_check(...)        -> struct ocsp_result
 */
#ifndef MQTTD_OCSP_H
#define MQTTD_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/types.h> /* X509, X509_STORE */

/* The largest response body accepted (a responder answering 1 GiB is cut
 * after this many bytes). Real responses are 1-4 KiB. */
#define OCSP_MAX_RESPONSE (64u * 1024u)
/* Clock skew allowed on thisUpdate/nextUpdate (seconds). */
#define OCSP_SKEW 300

/* What an OCSP check concluded about a certificate. */
enum ocsp_status {
    OCSP_GOOD = 0,
    OCSP_REVOKED,
    OCSP_UNKNOWN,     /* the responder does not know the certificate */
    OCSP_UNREACHABLE, /* no answer: connect error, timeout, HTTP error */
    OCSP_INVALID,     /* an answer that fails a check (signature, signer,
                         nonce, freshness, syntax, size) */
};

struct ocsp_result {
    enum ocsp_status status;
    int reason;         /* OCSP_REVOKED: CRL reason code, -1 if none */
    time_t revoked_at;  /* OCSP_REVOKED: revocationTime (0 unknown) */
    time_t this_update; /* of a verified answer, else 0 */
    time_t next_update; /* of a verified answer, 0 if absent */
    char why[256];      /* detail for UNREACHABLE / INVALID */
};

/* An OCSP request for one certificate (opaque). */
struct ocsp_req;

/*
 * ocsp_req_new: a request for 'cert' issued by 'issuer' (SHA-1 CertID as
 * RFC 6960 requires of responders, with a 16-byte random nonce when
 * with_nonce). Returns NULL with a reason in err when OpenSSL fails.
 * ocsp_req_free accepts NULL.
 */
struct ocsp_req *ocsp_req_new(X509 *cert, X509 *issuer, bool with_nonce,
                              char *err, size_t errlen);
void ocsp_req_free(struct ocsp_req *r);

/* ocsp_req_der: the request in DER (owned by r; *len its length). */
const uint8_t *ocsp_req_der(const struct ocsp_req *r, size_t *len);

/*
 * ocsp_req_key: the cache key of the request's certificate (issuer name
 * hash, issuer key hash, serial: the DER CertID), owned by r.
 */
const uint8_t *ocsp_req_key(const struct ocsp_req *r, size_t *len);

/*
 * ocsp_response_check: check a responder's DER answer to request rq:
 * parsed whole (no trailing bytes), responseStatus successful, a basic
 * response signed by the issuer or by a delegated signer that the issuer
 * certified for OCSP signing (OCSP_basic_verify against 'store', the
 * response's own certificates as intermediates), the nonce equal to the
 * request's when the responder echoes one, a SingleResponse for the
 * request's certificate whose thisUpdate/nextUpdate hold now (OCSP_SKEW
 * seconds of skew). Fills *res: GOOD / REVOKED / UNKNOWN, or INVALID with
 * the reason in res->why. Never allocates what outlives the call; no I/O.
 */
void ocsp_response_check(const uint8_t *der, size_t len,
                         const struct ocsp_req *rq, X509_STORE *store,
                         struct ocsp_result *res);

/*
 * ocsp_cert_url: the first OCSP responder URL of cert's Authority
 * Information Access extension into out; -1 when there is none (or it
 * does not fit).
 */
int ocsp_cert_url(X509 *cert, char *out, size_t outlen);

/* ocsp_find_issuer: the issuer of cert in store (a new reference), or
 * NULL. For a resumed TLS session, which carries no verified chain. */
X509 *ocsp_find_issuer(X509_STORE *store, X509 *cert);

/* ocsp_status_name: "good", "revoked", "unknown", "responder unreachable",
 * "invalid response". */
const char *ocsp_status_name(enum ocsp_status s);

/*
 * ocsp_describe: the log text of a result: "good", "revoked (reason
 * keyCompromise, at 2026-12-06T03:52:50Z)", "unknown certificate",
 * "responder unreachable (connect: Connection refused)", "invalid
 * response (signer not authorised: ...)".
 */
void ocsp_describe(const struct ocsp_result *r, char *out, size_t outlen);

#endif
