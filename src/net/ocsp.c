/*
 * ocsp.c - OCSP requests and the checks on a responder's answer (see
 * ocsp.h). Pure functions over OpenSSL's OCSP code: no I/O, no state.
 *
 *   struct ocsp_req
 *     +-- req   OCSP_REQUEST (one CertID, optional nonce)
 *     +-- id    the CertID (SHA-1, as responders must support)
 *     +-- der   the request in DER (HTTP body)
 *     +-- key   the CertID in DER (cache key: issuer hashes + serial)
 */
#include "ocsp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util.h"

struct ocsp_req {
    OCSP_REQUEST *req;
    OCSP_CERTID *id;         /* owned by req after add0; a copy is kept here */
    STACK_OF(X509) * issuer; /* the issuer: a CA-signed response need not
                                carry the CA's certificate */
    uint8_t *der;
    size_t derlen;
    uint8_t *key;
    size_t keylen;
};

/* last_reason: the first reason in OpenSSL's error queue (empties it). */
static void last_reason(char *out, size_t outlen)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    snprintf(out, outlen, "%s", r ? r : "unknown error");
    ERR_clear_error();
}

static uint8_t *der_of_req(OCSP_REQUEST *req, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_OCSP_REQUEST(req, &p);
    uint8_t *out;

    if (n <= 0)
        return NULL;
    out = xmemdup(p, (size_t)n);
    OPENSSL_free(p);
    *len = (size_t)n;
    return out;
}

static uint8_t *der_of_id(OCSP_CERTID *id, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_OCSP_CERTID(id, &p);
    uint8_t *out;

    if (n <= 0)
        return NULL;
    out = xmemdup(p, (size_t)n);
    OPENSSL_free(p);
    *len = (size_t)n;
    return out;
}

struct ocsp_req *ocsp_req_new(X509 *cert, X509 *issuer, bool with_nonce,
                              char *err, size_t errlen)
{
    struct ocsp_req *r = xcalloc(1, sizeof(*r));
    OCSP_CERTID *id = NULL;

    ERR_clear_error();
    r->req = OCSP_REQUEST_new();
    r->issuer = sk_X509_new_null();
    id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
    if (r->req == NULL || r->issuer == NULL || id == NULL ||
        sk_X509_push(r->issuer, issuer) <= 0)
        goto fail;
    X509_up_ref(issuer);
    r->id = OCSP_CERTID_dup(id);
    if (r->id == NULL || OCSP_request_add0_id(r->req, id) == NULL)
        goto fail;
    id = NULL; /* owned by req */
    if (with_nonce && OCSP_request_add1_nonce(r->req, NULL, 16) != 1)
        goto fail;
    r->der = der_of_req(r->req, &r->derlen);
    r->key = der_of_id(r->id, &r->keylen);
    if (r->der == NULL || r->key == NULL)
        goto fail;
    return r;
fail:
    last_reason(err, errlen);
    OCSP_CERTID_free(id);
    ocsp_req_free(r);
    return NULL;
}

void ocsp_req_free(struct ocsp_req *r)
{
    if (r == NULL)
        return;
    OCSP_REQUEST_free(r->req);
    OCSP_CERTID_free(r->id);
    sk_X509_pop_free(r->issuer, X509_free);
    free(r->der);
    free(r->key);
    free(r);
}

const uint8_t *ocsp_req_der(const struct ocsp_req *r, size_t *len)
{
    *len = r->derlen;
    return r->der;
}

const uint8_t *ocsp_req_key(const struct ocsp_req *r, size_t *len)
{
    *len = r->keylen;
    return r->key;
}

/* gen_time: a GeneralizedTime as time_t (0 on failure or NULL). */
static time_t gen_time(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

static void invalid(struct ocsp_result *res, const char *fmt, const char *a)
    __attribute__((format(printf, 2, 0)));
static void invalid(struct ocsp_result *res, const char *fmt, const char *a)
{
    res->status = OCSP_INVALID;
    snprintf(res->why, sizeof(res->why), fmt, a);
}

void ocsp_response_check(const uint8_t *der, size_t len,
                         const struct ocsp_req *rq, X509_STORE *store,
                         struct ocsp_result *res)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    char reason[160];
    int rs, st = -1, crl_reason = -1, n;

    memset(res, 0, sizeof(*res));
    res->status = OCSP_INVALID;
    res->reason = -1;
    ERR_clear_error();
    if (len == 0 || len > OCSP_MAX_RESPONSE) {
        invalid(res, "response size %s", len ? "over the limit" : "zero");
        goto done;
    }
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (resp == NULL || p != der + len) {
        invalid(res, "%s",
                resp ? "trailing bytes after the response"
                     : "malformed response (not DER OCSP)");
        goto done;
    }
    rs = OCSP_response_status(resp);
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        invalid(res, "responder status %s", OCSP_response_status_str(rs));
        goto done;
    }
    bs = OCSP_response_get1_basic(resp);
    if (bs == NULL) {
        invalid(res, "%s", "not a basic OCSP response");
        goto done;
    }
    /* 1: nonces equal; -1: only the request has one (the responder does
     * not support nonces); 2: neither; 3: only the response; 0: differ */
    n = OCSP_check_nonce(rq->req, bs);
    if (n == 0) {
        invalid(res, "%s", "nonce mismatch (replayed or foreign response)");
        goto done;
    }
    if (OCSP_basic_verify(bs, rq->issuer, store, 0) <= 0) {
        last_reason(reason, sizeof(reason));
        invalid(res, "signature or signer not trusted: %s", reason);
        goto done;
    }
    if (OCSP_resp_find_status(bs, rq->id, &st, &crl_reason, &rev, &thisupd,
                              &nextupd) != 1) {
        invalid(res, "%s", "no status for the certificate in the response");
        goto done;
    }
    if (OCSP_check_validity(thisupd, nextupd, OCSP_SKEW, -1) != 1) {
        unsigned long e = ERR_peek_error();
        int r = ERR_GET_REASON(e);

        invalid(res, "stale response: %s",
                r == OCSP_R_STATUS_EXPIRED         ? "nextUpdate has passed"
                : r == OCSP_R_STATUS_NOT_YET_VALID ? "thisUpdate is in the "
                                                     "future"
                : r == OCSP_R_NEXTUPDATE_BEFORE_THISUPDATE
                    ? "nextUpdate before thisUpdate"
                    : "bad thisUpdate/nextUpdate");
        ERR_clear_error();
        goto done;
    }
    res->this_update = gen_time(thisupd);
    res->next_update = gen_time(nextupd);
    switch (st) {
    case V_OCSP_CERTSTATUS_GOOD:
        res->status = OCSP_GOOD;
        break;
    case V_OCSP_CERTSTATUS_REVOKED:
        res->status = OCSP_REVOKED;
        res->reason = crl_reason;
        res->revoked_at = gen_time(rev);
        break;
    default:
        res->status = OCSP_UNKNOWN;
        break;
    }
done:
    ERR_clear_error();
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
}

int ocsp_cert_url(X509 *cert, char *out, size_t outlen)
{
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(cert);
    int rc = -1;

    if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0) {
        const char *u = sk_OPENSSL_STRING_value(urls, 0);
        if (strlen(u) < outlen) {
            snprintf(out, outlen, "%s", u);
            rc = 0;
        }
    }
    X509_email_free(urls); /* frees an OPENSSL_STRING stack */
    return rc;
}

X509 *ocsp_find_issuer(X509_STORE *store, X509 *cert)
{
    X509_STORE_CTX *x = X509_STORE_CTX_new();
    X509 *iss = NULL;

    if (x != NULL && X509_STORE_CTX_init(x, store, cert, NULL) == 1 &&
        X509_STORE_CTX_get1_issuer(&iss, x, cert) != 1)
        iss = NULL;
    X509_STORE_CTX_free(x);
    ERR_clear_error();
    return iss;
}

const char *ocsp_status_name(enum ocsp_status s)
{
    switch (s) {
    case OCSP_GOOD:
        return "good";
    case OCSP_REVOKED:
        return "revoked";
    case OCSP_UNKNOWN:
        return "unknown";
    case OCSP_UNREACHABLE:
        return "responder unreachable";
    case OCSP_INVALID:
    default:
        return "invalid response";
    }
}

void ocsp_describe(const struct ocsp_result *r, char *out, size_t outlen)
{
    char at[32] = "unknown time";
    struct tm tm;

    switch (r->status) {
    case OCSP_REVOKED:
        if (r->revoked_at > 0 && gmtime_r(&r->revoked_at, &tm) != NULL)
            strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(out, outlen, "revoked (reason %s, at %s)",
                 r->reason >= 0 ? OCSP_crl_reason_str(r->reason)
                                : "unspecified",
                 at);
        break;
    case OCSP_UNKNOWN:
        snprintf(out, outlen,
                 "unknown certificate (the responder does not "
                 "know it)");
        break;
    case OCSP_UNREACHABLE:
    case OCSP_INVALID:
        snprintf(out, outlen, "%s (%s)", ocsp_status_name(r->status), r->why);
        break;
    case OCSP_GOOD:
    default:
        snprintf(out, outlen, "good");
        break;
    }
}
