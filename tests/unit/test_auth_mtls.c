/*
 * test_auth_mtls.c - certificate identities: certificates are built here
 * with the OpenSSL API (plain CN, no CN, embedded NUL, invalid UTF-8,
 * non-UTF-8 string types, several CNs, RFC 2253 subjects), plus the DER
 * entry point and the mTLS authenticator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth_mtls.h"
#include "util.h"

struct attr {
    int nid;
    int type; /* V_ASN1_* (raw bytes) or MBSTRING_UTF8 */
    const char *val;
    int len; /* -1 = strlen */
};

static EVP_PKEY *test_key(void)
{
    static EVP_PKEY *key; /* test-only cache; freed in main */

    if (key == NULL)
        key = EVP_EC_gen("P-256");
    assert_non_null(key);
    return key;
}

/* make_cert: a self-signed certificate whose subject has attrs in order. */
static X509 *make_cert(const struct attr *attrs, size_t n)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    EVP_PKEY *key = test_key();

    assert_non_null(x);
    assert_non_null(name);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    for (size_t i = 0; i < n; i++) {
        int len = attrs[i].len >= 0 ? attrs[i].len : (int)strlen(attrs[i].val);
        assert_int_equal(X509_NAME_add_entry_by_NID(
                             name, attrs[i].nid, attrs[i].type,
                             (const unsigned char *)attrs[i].val, len, -1, 0),
                         1);
    }
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_NAME_free(name);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static void test_cn_cases(void **state)
{
    static const struct {
        struct attr a[3];
        size_t n;
        int rc;
        const char *want; /* identity or reason */
    } cases[] = {
        {{{NID_commonName, MBSTRING_UTF8, "test client", -1}},
         1,
         0,
         "test client"},
        {{{NID_organizationName, MBSTRING_UTF8, "Org", -1},
          {NID_commonName, MBSTRING_UTF8, "after-o", -1}},
         2,
         0,
         "after-o"},
        {{{NID_commonName, MBSTRING_UTF8, "first", -1},
          {NID_commonName, MBSTRING_UTF8, "second", -1}},
         2,
         0,
         "first"},
        {{{NID_commonName, MBSTRING_UTF8, "J\xc3\xbcrgen", -1}},
         1,
         0,
         "J\xc3\xbcrgen"},
        {{{NID_commonName, V_ASN1_PRINTABLESTRING, "printable", -1}},
         1,
         0,
         "printable"},
        {{{NID_commonName, V_ASN1_T61STRING, "t61 ascii", -1}},
         1,
         0,
         "t61 ascii"},
        {{{NID_organizationName, MBSTRING_UTF8, "NoCN Org", -1}},
         1,
         -1,
         "no CN"},
        {{{NID_commonName, V_ASN1_UTF8STRING, "ab\0cd", 5}},
         1,
         -1,
         "CN contains NUL"},
        {{{NID_commonName, V_ASN1_UTF8STRING, "ab\0", 3}},
         1,
         -1,
         "CN contains NUL"},
        /* A BMPString without NUL bytes (U+4E2D U+6587): its UTF-8 form
         * differs from the raw bytes Mosquitto would use */
        {{{NID_commonName, V_ASN1_BMPSTRING, "\x4e\x2d\x65\x87", 4}},
         1,
         -1,
         "CN not valid UTF-8"},
        /* Latin-1 byte in a T61String: Mosquitto would take the raw byte,
         * which is not UTF-8 */
        {{{NID_commonName, V_ASN1_T61STRING, "caf\xe9", -1}},
         1,
         -1,
         "CN not valid UTF-8"},
        /* BMPString "te": UTF-16 bytes hold NULs, as Mosquitto refuses */
        {{{NID_commonName, V_ASN1_BMPSTRING, "\0t\0e", 4}},
         1,
         -1,
         "CN contains NUL"},
        {{{NID_commonName, V_ASN1_UTF8STRING, "", 0}}, 1, -1, "empty CN"},
    };
    char out[256];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        X509 *x = make_cert(cases[i].a, cases[i].n);
        const char *why = NULL;
        int rc;

        memset(out, 'X', sizeof(out));
        rc = auth_mtls_identity(x, false, out, sizeof(out), &why);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d why %s", i, rc, why ? why : "-");
        if (rc == 0)
            assert_string_equal(out, cases[i].want);
        else if (strcmp(why, cases[i].want) != 0)
            fail_msg("case %zu: why '%s' want '%s'", i, why, cases[i].want);
        X509_free(x);
    }
}

static void test_subject_rfc2253(void **state)
{
    static const struct attr mosq[] = {
        {NID_countryName, MBSTRING_UTF8, "GB", -1},
        {NID_stateOrProvinceName, MBSTRING_UTF8, "Nottinghamshire", -1},
        {NID_localityName, MBSTRING_UTF8, "Nottingham", -1},
        {NID_organizationName, MBSTRING_UTF8, "Server", -1},
        {NID_organizationalUnitName, MBSTRING_UTF8, "Production", -1},
        {NID_commonName, MBSTRING_UTF8, "test client", -1},
    };
    static const struct attr special[] = {
        {NID_commonName, MBSTRING_UTF8, "a,b+c \"q\"", -1},
    };
    static const struct attr utf8[] = {
        {NID_commonName, MBSTRING_UTF8, "J\xc3\xbcrgen", -1},
    };
    static const struct attr nul[] = {
        {NID_commonName, V_ASN1_UTF8STRING, "a\0b", 3},
    };
    char out[512];
    const char *why = NULL;
    X509 *x;

    (void)state;
    x = make_cert(mosq, ARRAY_LEN(mosq));
    assert_int_equal(auth_mtls_identity(x, true, out, sizeof(out), &why), 0);
    assert_string_equal(out, "CN=test client,OU=Production,O=Server,"
                             "L=Nottingham,ST=Nottinghamshire,C=GB");
    /* too small a buffer */
    assert_int_equal(auth_mtls_identity(x, true, out, 20, &why), -1);
    assert_string_equal(why, "identity too long");
    assert_int_equal(auth_mtls_identity(x, false, out, 11, &why), -1);
    assert_string_equal(why, "identity too long");
    assert_int_equal(auth_mtls_identity(x, false, out, 12, &why), 0);
    assert_string_equal(out, "test client");
    X509_free(x);

    x = make_cert(special, 1);
    assert_int_equal(auth_mtls_identity(x, true, out, sizeof(out), &why), 0);
    assert_string_equal(out, "CN=a\\,b\\+c \\\"q\\\"");
    X509_free(x);

    x = make_cert(utf8, 1);
    assert_int_equal(auth_mtls_identity(x, true, out, sizeof(out), &why), 0);
    assert_string_equal(out, "CN=J\\C3\\BCrgen");
    X509_free(x);

    /* the subject form escapes a NUL, so it stays usable */
    x = make_cert(nul, 1);
    assert_int_equal(auth_mtls_identity(x, true, out, sizeof(out), &why), 0);
    assert_string_equal(out, "CN=a\\00b");
    assert_int_equal(auth_mtls_identity(x, false, out, sizeof(out), &why), -1);
    X509_free(x);

    assert_int_equal(auth_mtls_identity(NULL, false, out, sizeof(out), &why),
                     -1);
    assert_string_equal(why, "no certificate");
}

static void test_der(void **state)
{
    static const struct attr a[] = {
        {NID_organizationName, MBSTRING_UTF8, "O", -1},
        {NID_commonName, MBSTRING_UTF8, "device-42", -1},
    };
    X509 *x = make_cert(a, ARRAY_LEN(a));
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    char out[128];
    const char *why = NULL;

    (void)state;
    assert_true(len > 0);
    assert_int_equal(
        auth_mtls_identity_der(der, (size_t)len, false, out, sizeof(out), &why),
        0);
    assert_string_equal(out, "device-42");
    assert_int_equal(
        auth_mtls_identity_der(der, (size_t)len, true, out, sizeof(out), &why),
        0);
    assert_string_equal(out, "CN=device-42,O=O");
    /* truncated and garbage input */
    assert_int_equal(auth_mtls_identity_der(der, (size_t)len / 2, false, out,
                                            sizeof(out), &why),
                     -1);
    assert_string_equal(why, "bad certificate");
    assert_int_equal(auth_mtls_identity_der((const uint8_t *)"\x30\x03xyz", 5,
                                            false, out, sizeof(out), &why),
                     -1);
    assert_int_equal(
        auth_mtls_identity_der(der, 0, false, out, sizeof(out), &why), -1);
    OPENSSL_free(der);
    X509_free(x);
}

/*
 * An invalid UTF8String CN cannot even be built with the X509 API, so patch
 * the DER of a certificate with CN "badZZ": OpenSSL 3 refuses to parse the
 * result (its name canonicalisation converts to UTF-8), so such a client
 * never gets past the handshake; the DER entry point says so.
 */
static void test_der_invalid_utf8(void **state)
{
    static const struct attr a[] = {
        {NID_commonName, MBSTRING_UTF8, "badZZ", -1},
    };
    static const char *repl[] = {"bad\xff\xfe", "bad\xc0\xaf", "b\xed\xa0\x80"};
    X509 *x = make_cert(a, 1);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    char out[64];
    const char *why;

    (void)state;
    assert_true(len > 0);
    for (size_t k = 0; k < ARRAY_LEN(repl); k++) {
        unsigned char *copy = xmemdup(der, (size_t)len);
        int hits = 0;
        for (int i = 0; i + 5 <= len; i++) {
            if (memcmp(copy + i, "badZZ", 5) == 0) {
                memcpy(copy + i, repl[k], 5);
                hits++;
            }
        }
        assert_int_equal(hits, 2); /* subject and issuer */
        why = NULL;
        assert_int_equal(auth_mtls_identity_der(copy, (size_t)len, false, out,
                                                sizeof(out), &why),
                         -1);
        assert_true(strcmp(why, "bad certificate") == 0 ||
                    strcmp(why, "CN not valid UTF-8") == 0);
        free(copy);
    }
    OPENSSL_free(der);
    X509_free(x);
}

static void test_authenticator(void **state)
{
    struct authenticator au;
    struct auth_client c;
    const char *reason = NULL;

    (void)state;
    auth_mtls_authenticator(&au);
    assert_string_equal(au.name, "mtls");
    memset(&c, 0, sizeof(c));
    c.username = "ignored";
    c.password = (const uint8_t *)"ignored";
    c.password_len = 7;
    assert_int_equal(au.check(au.state, &c, &reason), AUTH_DENY);
    assert_string_equal(reason, "no certificate identity");
    c.cert_error = "no CN";
    assert_int_equal(au.check(au.state, &c, &reason), AUTH_DENY);
    assert_string_equal(reason, "no CN");
    c.cert_identity = "device-42";
    c.cert_error = NULL;
    reason = NULL;
    assert_int_equal(au.check(au.state, &c, &reason), AUTH_ALLOW);
    assert_null(reason);
}

/* One subjectAltName entry: kind + raw IA5 bytes. */
struct san {
    int type; /* GEN_URI, GEN_DNS, GEN_EMAIL */
    const char *val;
    int len; /* -1 = strlen */
};

/* add_san: add a subjectAltName extension with sans[0..n) (appended even
 * when the certificate already has one, for the duplicate case). */
static void add_san(X509 *x, const struct san *sans, size_t n)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

    assert_non_null(gens);
    for (size_t i = 0; i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
        int len = sans[i].len >= 0 ? sans[i].len : (int)strlen(sans[i].val);

        assert_non_null(g);
        assert_non_null(ia5);
        assert_int_equal(ASN1_STRING_set(ia5, sans[i].val, len), 1);
        GENERAL_NAME_set0_value(g, sans[i].type, ia5);
        assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
    }
    assert_int_equal(
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_APPEND),
        1);
    GENERAL_NAMES_free(gens);
}

static void test_san_cases(void **state)
{
    static const struct attr cn[] = {{NID_commonName, MBSTRING_UTF8, "cn", -1}};
    static const struct {
        struct san s[3];
        size_t n;
        enum auth_mtls_source src;
        int rc;
        const char *want; /* identity or reason */
    } cases[] = {
        {{{GEN_URI, "spiffe://example.org/sensor/7", -1}},
         1,
         AUTH_MTLS_SAN_URI,
         0,
         "spiffe://example.org/sensor/7"},
        /* the first of its kind, after names of other kinds */
        {{{GEN_DNS, "a.example", -1},
          {GEN_URI, "spiffe://x/1", -1},
          {GEN_URI, "spiffe://x/2", -1}},
         3,
         AUTH_MTLS_SAN_URI,
         0,
         "spiffe://x/1"},
        {{{GEN_URI, "spiffe://x/1", -1}, {GEN_DNS, "a.example", -1}},
         2,
         AUTH_MTLS_SAN_DNS,
         0,
         "a.example"},
        {{{GEN_EMAIL, "dev@example.org", -1}},
         1,
         AUTH_MTLS_SAN_EMAIL,
         0,
         "dev@example.org"},
        /* no SAN of that kind: refused, never the CN */
        {{{GEN_DNS, "a.example", -1}}, 1, AUTH_MTLS_SAN_URI, -1, "no URI SAN"},
        {{{GEN_URI, "spiffe://x/1", -1}},
         1,
         AUTH_MTLS_SAN_EMAIL,
         -1,
         "no email SAN"},
        {{{GEN_URI, "spiffe://x/1", -1}},
         1,
         AUTH_MTLS_SAN_DNS,
         -1,
         "no DNS SAN"},
        /* only the first counts: a bad first one is not skipped */
        {{{GEN_URI, "spiffe://x/\0evil", 16}, {GEN_URI, "spiffe://x/2", -1}},
         2,
         AUTH_MTLS_SAN_URI,
         -1,
         "URI SAN contains NUL"},
        {{{GEN_URI, "spiffe://x/\xff", -1}},
         1,
         AUTH_MTLS_SAN_URI,
         -1,
         "URI SAN not valid UTF-8"},
        {{{GEN_DNS, "b\xc0\xaf", -1}},
         1,
         AUTH_MTLS_SAN_DNS,
         -1,
         "DNS SAN not valid UTF-8"},
        {{{GEN_EMAIL, "", 0}}, 1, AUTH_MTLS_SAN_EMAIL, -1, "empty email SAN"},
        /* the CN source ignores SANs */
        {{{GEN_URI, "spiffe://x/1", -1}}, 1, AUTH_MTLS_CN, 0, "cn"},
    };
    char out[256];
    const char *why;

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        X509 *x = make_cert(cn, 1);
        unsigned char *der = NULL;
        int len;

        add_san(x, cases[i].s, cases[i].n);
        why = NULL;
        out[0] = '\0';
        assert_int_equal(
            auth_mtls_identity_from(x, cases[i].src, out, sizeof(out), &why),
            cases[i].rc);
        assert_string_equal(cases[i].rc == 0 ? out : why, cases[i].want);
        /* the DER entry point agrees */
        len = i2d_X509(x, &der);
        assert_true(len > 0);
        assert_int_equal(auth_mtls_identity_der_from(der, (size_t)len,
                                                     cases[i].src, out,
                                                     sizeof(out), &why),
                         cases[i].rc);
        OPENSSL_free(der);
        X509_free(x);
    }
}

static void test_san_edge(void **state)
{
    static const struct attr cn[] = {{NID_commonName, MBSTRING_UTF8, "cn", -1}};
    static const struct san one = {GEN_URI, "spiffe://x/1", -1};
    X509 *x = make_cert(cn, 1);
    char out[256], tiny[8];
    const char *why = NULL;

    (void)state;
    /* no subjectAltName extension at all */
    assert_int_equal(
        auth_mtls_identity_from(x, AUTH_MTLS_SAN_URI, out, sizeof(out), &why),
        -1);
    assert_string_equal(why, "no URI SAN");
    /* too long for the buffer */
    add_san(x, &one, 1);
    assert_int_equal(
        auth_mtls_identity_from(x, AUTH_MTLS_SAN_URI, tiny, sizeof(tiny), &why),
        -1);
    assert_string_equal(why, "identity too long");
    /* two subjectAltName extensions: ambiguous, refused */
    add_san(x, &one, 1);
    assert_int_equal(
        auth_mtls_identity_from(x, AUTH_MTLS_SAN_URI, out, sizeof(out), &why),
        -1);
    assert_string_equal(why, "several subjectAltName extensions");
    X509_free(x);
    assert_int_equal(auth_mtls_identity_from(NULL, AUTH_MTLS_SAN_URI, out,
                                             sizeof(out), &why),
                     -1);
    assert_string_equal(why, "no certificate");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cn_cases),
        cmocka_unit_test(test_subject_rfc2253),
        cmocka_unit_test(test_der),
        cmocka_unit_test(test_der_invalid_utf8),
        cmocka_unit_test(test_authenticator),
        cmocka_unit_test(test_san_cases),
        cmocka_unit_test(test_san_edge),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    EVP_PKEY_free(test_key());
    return rc;
}
