/*
 * test_ocsp.c - unit tests for ocsp.c: the checks on a responder's answer.
 * Responses are signed here with OpenSSL (OCSP_basic_sign) over the PKI
 * of `certs/mkcerts.sh --ocsp` (built in a temporary directory; the script
 * is found through $MQTTD_SOURCE_DIR, default "."): good, revoked with a
 * reason, unknown, CA-signed without certificates, a signer without the
 * OCSPSigning EKU, stale and future times, nonces echoed and wrong, a
 * response about another certificate, a failed responder status, trailing
 * bytes, every truncation, an over-long body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ocsp.h"

static char dir[256];
static X509 *ca, *signer, *rogue, *good, *revoked;
static EVP_PKEY *ca_key, *signer_key, *rogue_key;
static X509_STORE *store;

static X509 *load_cert(const char *name)
{
    char path[512];
    FILE *f;
    X509 *x;

    snprintf(path, sizeof(path), "%s/ocsp/%s.crt", dir, name);
    f = fopen(path, "r");
    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *load_key(const char *name)
{
    char path[512];
    FILE *f;
    EVP_PKEY *k;

    snprintf(path, sizeof(path), "%s/ocsp/%s.key", dir, name);
    f = fopen(path, "r");
    assert_non_null(f);
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static int setup(void **state)
{
    const char *src = getenv("MQTTD_SOURCE_DIR");
    char cmd[1024];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/mqttd-test-ocsp-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "bash %s/certs/mkcerts.sh --ocsp=http://127.0.0.1:9/ %s "
             ">/dev/null 2>&1",
             src ? src : ".", dir);
    if (system(cmd) != 0)
        return -1;
    ca = load_cert("ca");
    signer = load_cert("ocsp-signer");
    rogue = load_cert("rogue-signer");
    good = load_cert("client-good");
    revoked = load_cert("client-revoked");
    ca_key = load_key("ca");
    signer_key = load_key("ocsp-signer");
    rogue_key = load_key("rogue-signer");
    store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    X509_free(ca);
    X509_free(signer);
    X509_free(rogue);
    X509_free(good);
    X509_free(revoked);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(signer_key);
    EVP_PKEY_free(rogue_key);
    X509_STORE_free(store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* How to build a response. */
struct spec {
    int status;      /* V_OCSP_CERTSTATUS_* */
    int reason;      /* for revoked */
    long this_off;   /* thisUpdate = now + this_off */
    long next_off;   /* nextUpdate = now + next_off (0: none) */
    X509 *about;     /* certificate the answer is about */
    X509 *sign_cert; /* signer */
    EVP_PKEY *sign_key;
    unsigned long flags; /* OCSP_basic_sign flags */
    const char *nonce;   /* NULL: none; "copy": the request's; else bytes */
    int resp_status;     /* OCSP_RESPONSE_STATUS_* */
};

static unsigned char *make(const struct spec *sp, OCSP_REQUEST *req,
                           size_t *len)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), sp->about, ca);
    ASN1_TIME *tu = X509_gmtime_adj(NULL, sp->this_off);
    ASN1_TIME *nu = sp->next_off ? X509_gmtime_adj(NULL, sp->next_off) : NULL;
    ASN1_TIME *rt = X509_gmtime_adj(NULL, -3600);
    OCSP_RESPONSE *resp;
    unsigned char *der = NULL;
    int n;

    assert_non_null(
        OCSP_basic_add1_status(bs, id, sp->status, sp->reason, rt, tu, nu));
    if (sp->nonce != NULL && strcmp(sp->nonce, "copy") == 0)
        assert_int_equal(OCSP_copy_nonce(bs, req), 1);
    else if (sp->nonce != NULL)
        assert_int_equal(OCSP_basic_add1_nonce(bs, (unsigned char *)sp->nonce,
                                               (int)strlen(sp->nonce)),
                         1);
    assert_int_equal(OCSP_basic_sign(bs, sp->sign_cert, sp->sign_key,
                                     EVP_sha256(), NULL, sp->flags),
                     1);
    resp = OCSP_response_create(sp->resp_status, sp->resp_status ? NULL : bs);
    n = i2d_OCSP_RESPONSE(resp, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    OCSP_RESPONSE_free(resp);
    OCSP_BASICRESP_free(bs);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(tu);
    ASN1_TIME_free(nu);
    ASN1_TIME_free(rt);
    return der;
}

/* check: build the response for sp, check it against a request for 'for'
 * (with a nonce when with_nonce). */
static void check(const struct spec *sp, X509 *for_cert, bool with_nonce,
                  struct ocsp_result *r)
{
    char err[200];
    struct ocsp_req *rq =
        ocsp_req_new(for_cert, ca, with_nonce, err, sizeof(err));
    const uint8_t *reqder;
    size_t reqlen, len;
    OCSP_REQUEST *req;
    const unsigned char *p;
    unsigned char *der;

    assert_non_null(rq);
    reqder = ocsp_req_der(rq, &reqlen);
    p = reqder;
    req = d2i_OCSP_REQUEST(NULL, &p, (long)reqlen);
    assert_non_null(req);
    der = make(sp, req, &len);
    ocsp_response_check(der, len, rq, store, r);
    OPENSSL_free(der);
    OCSP_REQUEST_free(req);
    ocsp_req_free(rq);
}

static struct spec base(void)
{
    struct spec sp = {V_OCSP_CERTSTATUS_GOOD,
                      -1,
                      -60,
                      3600,
                      good,
                      signer,
                      signer_key,
                      0,
                      NULL,
                      OCSP_RESPONSE_STATUS_SUCCESSFUL};
    return sp;
}

static void test_good_delegated_signer(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;
    char d[300];

    (void)state;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_GOOD);
    assert_true(r.this_update > 0 && r.next_update > r.this_update);
    ocsp_describe(&r, d, sizeof(d));
    assert_string_equal(d, "good");
}

static void test_revoked_with_reason(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;
    char d[300];

    (void)state;
    sp.status = V_OCSP_CERTSTATUS_REVOKED;
    sp.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
    sp.about = revoked;
    check(&sp, revoked, false, &r);
    assert_int_equal(r.status, OCSP_REVOKED);
    assert_int_equal(r.reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
    assert_true(r.revoked_at > 0);
    ocsp_describe(&r, d, sizeof(d));
    assert_non_null(strstr(d, "revoked (reason keyCompromise, at 20"));
}

static void test_unknown(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.status = V_OCSP_CERTSTATUS_UNKNOWN;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_UNKNOWN);
}

static void test_ca_signed_without_certificates(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.sign_cert = ca;
    sp.sign_key = ca_key;
    sp.flags = OCSP_NOCERTS;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_GOOD);
}

static void test_signer_without_ocsp_eku(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.sign_cert = rogue;
    sp.sign_key = rogue_key;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_non_null(strstr(r.why, "signature or signer not trusted"));
}

static void test_stale_and_future(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.this_off = -2 * 86400;
    sp.next_off = -86400;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_string_equal(r.why, "stale response: nextUpdate has passed");
    sp.this_off = 86400;
    sp.next_off = 2 * 86400;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_string_equal(r.why, "stale response: thisUpdate is in the future");
    sp.this_off = -60; /* within the allowed skew: no nextUpdate at all */
    sp.next_off = 0;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_GOOD);
    assert_int_equal(r.next_update, 0);
}

static void test_nonce(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.nonce = "copy";
    check(&sp, good, true, &r);
    assert_int_equal(r.status, OCSP_GOOD);
    sp.nonce = "0123456789abcdef";
    check(&sp, good, true, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_non_null(strstr(r.why, "nonce mismatch"));
    sp.nonce = NULL; /* a responder that ignores nonces */
    check(&sp, good, true, &r);
    assert_int_equal(r.status, OCSP_GOOD);
}

static void test_other_certificate(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.about = revoked;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_string_equal(r.why, "no status for the certificate in the response");
}

static void test_responder_status(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;

    (void)state;
    sp.resp_status = OCSP_RESPONSE_STATUS_TRYLATER;
    check(&sp, good, false, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_string_equal(r.why, "responder status trylater");
}

static void test_truncations_trailing_and_size(void **state)
{
    struct spec sp = base();
    struct ocsp_result r;
    char err[200];
    struct ocsp_req *rq = ocsp_req_new(good, ca, false, err, sizeof(err));
    size_t len, i;
    unsigned char *der, *big;

    (void)state;
    der = make(&sp, NULL, &len);
    for (i = 0; i < len; i++) {
        ocsp_response_check(der, i, rq, store, &r);
        assert_int_equal(r.status, OCSP_INVALID);
        assert_true(r.why[0] != '\0');
    }
    big = calloc(1, OCSP_MAX_RESPONSE + 1);
    assert_non_null(big);
    memcpy(big, der, len);
    ocsp_response_check(big, len + 1, rq, store, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_string_equal(r.why, "trailing bytes after the response");
    ocsp_response_check(big, OCSP_MAX_RESPONSE + 1, rq, store, &r);
    assert_int_equal(r.status, OCSP_INVALID);
    assert_string_equal(r.why, "response size over the limit");
    ocsp_response_check(der, len, rq, store, &r);
    assert_int_equal(r.status, OCSP_GOOD);
    free(big);
    OPENSSL_free(der);
    ocsp_req_free(rq);
}

static void test_aia_url_and_issuer(void **state)
{
    char url[256];
    X509 *iss;

    (void)state;
    assert_int_equal(ocsp_cert_url(good, url, sizeof(url)), 0);
    assert_string_equal(url, "http://127.0.0.1:9/");
    assert_int_equal(ocsp_cert_url(good, url, 5), -1);
    assert_int_equal(ocsp_cert_url(ca, url, sizeof(url)), -1);
    iss = ocsp_find_issuer(store, good);
    assert_non_null(iss);
    assert_int_equal(X509_cmp(iss, ca), 0);
    X509_free(iss);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_delegated_signer),
        cmocka_unit_test(test_revoked_with_reason),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_ca_signed_without_certificates),
        cmocka_unit_test(test_signer_without_ocsp_eku),
        cmocka_unit_test(test_stale_and_future),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_other_certificate),
        cmocka_unit_test(test_responder_status),
        cmocka_unit_test(test_truncations_trailing_and_size),
        cmocka_unit_test(test_aia_url_and_issuer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
