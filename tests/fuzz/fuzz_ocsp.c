/*
 * fuzz_ocsp.c - libFuzzer harness for OCSP responses as the broker checks
 * them (ocsp_response_check: DER parsing, responder status, nonce,
 * signature and signer, freshness, the certificate's status): a hostile
 * responder's bytes must give a specific result and never crash.
 *
 * The PKI comes from `certs/mkcerts.sh --ocsp DIR` (run-fuzz.sh makes it
 * and seeds the corpus with real `openssl ocsp` answers for it); the
 * directory holding ca.crt is MQTTD_FUZZ_OCSP_DIR. Each input is checked
 * against a request for client-good and one for client-revoked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ocsp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set once by LLVMFuzzerInitialize, read-only afterwards. */
static X509_STORE *store;
static struct ocsp_req *req_good, *req_revoked;

static X509 *load(const char *dir, const char *name)
{
    char path[4096];
    FILE *f;
    X509 *x;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr,
                "fuzz_ocsp: cannot open %s (MQTTD_FUZZ_OCSP_DIR: "
                "certs/mkcerts.sh --ocsp output)\n",
                path);
        abort();
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        abort();
    return x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("MQTTD_FUZZ_OCSP_DIR");
    X509 *ca, *good, *revoked;
    char err[200];

    (void)argc;
    (void)argv;
    if (dir == NULL)
        dir = "build-fuzz/ocsp-pki/ocsp";
    ca = load(dir, "ca.crt");
    good = load(dir, "client-good.crt");
    revoked = load(dir, "client-revoked.crt");
    store = X509_STORE_new();
    if (store == NULL || X509_STORE_add_cert(store, ca) != 1)
        abort();
    req_good = ocsp_req_new(good, ca, false, err, sizeof(err));
    req_revoked = ocsp_req_new(revoked, ca, false, err, sizeof(err));
    if (req_good == NULL || req_revoked == NULL)
        abort();
    X509_free(ca);
    X509_free(good);
    X509_free(revoked);
    return 0;
}

static void check(const uint8_t *data, size_t size, const struct ocsp_req *rq)
{
    struct ocsp_result r;
    char d[512];

    ocsp_response_check(data, size, rq, store, &r);
    switch (r.status) {
    case OCSP_GOOD:
    case OCSP_UNKNOWN:
        if (r.this_update == 0)
            abort(); /* a verified answer has a thisUpdate */
        break;
    case OCSP_REVOKED:
        if (r.this_update == 0 || r.reason < -1 || r.reason > 10)
            abort();
        break;
    case OCSP_INVALID:
        if (r.why[0] == '\0' || strnlen(r.why, sizeof(r.why)) == sizeof(r.why))
            abort(); /* every refusal says why */
        break;
    case OCSP_UNREACHABLE:
    default:
        abort(); /* not a result of checking bytes */
    }
    ocsp_describe(&r, d, sizeof(d));
    if (strnlen(d, sizeof(d)) == sizeof(d))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, req_good);
    check(data, size, req_revoked);
    return 0;
}
