/*
 * auth_mtls.c - certificate identity extraction and the mTLS
 * authenticator (see auth_mtls.h).
 *
 * CN rules follow Mosquitto's handle_connect.c: the first commonName,
 * refused when its ASN1 length differs from strlen() (embedded NUL); mqttd
 * also insists the bytes are valid UTF-8 (MQTT usernames must be,
 * [MQTT-1.5.4-1]) and identical to the string's UTF-8 conversion.
 *
 * SAN identities (tls_identity_source, mqttd): the first subjectAltName
 * entry of the chosen kind, an IA5String, with the same NUL and UTF-8
 * checks; only that first entry counts (a bad first URI is refused even
 * when a good second one follows), and no SAN of that kind is a refusal,
 * never a fall back to the CN.
 */
#include "auth_mtls.h"

#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "util.h"

static int first_cn(X509_NAME *name, char *out, size_t outlen, const char **why)
{
    X509_NAME_ENTRY *e;
    ASN1_STRING *d;
    const unsigned char *raw;
    unsigned char *utf8 = NULL;
    int idx, rawlen, ulen, rc = -1;

    idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) {
        *why = "no CN";
        return -1;
    }
    e = X509_NAME_get_entry(name, idx);
    d = e ? X509_NAME_ENTRY_get_data(e) : NULL;
    if (d == NULL) {
        *why = "no CN";
        return -1;
    }
    raw = ASN1_STRING_get0_data(d);
    rawlen = ASN1_STRING_length(d);
    if (raw == NULL || rawlen <= 0) {
        *why = "empty CN";
        return -1;
    }
    /* Embedded NUL, as Mosquitto checks: length != strlen. */
    if (memchr(raw, '\0', (size_t)rawlen) != NULL) {
        *why = "CN contains NUL";
        return -1;
    }
    ulen = ASN1_STRING_to_UTF8(&utf8, d);
    if (ulen < 0 || ulen != rawlen || memcmp(utf8, raw, (size_t)rawlen) ||
        !util_utf8_valid(utf8, (size_t)ulen)) {
        *why = "CN not valid UTF-8";
        goto fail;
    }
    if ((size_t)ulen >= outlen) {
        *why = "identity too long";
        goto fail;
    }
    memcpy(out, utf8, (size_t)ulen);
    out[ulen] = '\0';
    rc = 0;
fail:
    OPENSSL_free(utf8);
    return rc;
}

static int rfc2253(X509_NAME *name, char *out, size_t outlen, const char **why)
{
    BIO *b = BIO_new(BIO_s_mem());
    BUF_MEM *bm = NULL;
    int rc = -1;

    if (b == NULL) {
        *why = "out of memory";
        return -1;
    }
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) < 0) {
        *why = "cannot print subject";
        goto fail;
    }
    BIO_get_mem_ptr(b, &bm);
    if (bm == NULL || bm->length == 0) {
        *why = "empty subject";
        goto fail;
    }
    /* XN_FLAG_RFC2253 escapes control and non-ASCII bytes; check anyway. */
    if (!util_utf8_valid(bm->data, bm->length)) {
        *why = "subject not valid UTF-8";
        goto fail;
    }
    if (bm->length >= outlen) {
        *why = "identity too long";
        goto fail;
    }
    memcpy(out, bm->data, bm->length);
    out[bm->length] = '\0';
    rc = 0;
fail:
    BIO_free(b);
    return rc;
}

/* The reasons of one SAN kind. */
struct san_kind {
    int gen_type; /* GEN_URI, GEN_DNS, GEN_EMAIL */
    const char *none, *empty, *nul, *utf8;
};

static const struct san_kind san_uri = {GEN_URI, "no URI SAN", "empty URI SAN",
                                        "URI SAN contains NUL",
                                        "URI SAN not valid UTF-8"};
static const struct san_kind san_dns = {GEN_DNS, "no DNS SAN", "empty DNS SAN",
                                        "DNS SAN contains NUL",
                                        "DNS SAN not valid UTF-8"};
static const struct san_kind san_email = {
    GEN_EMAIL, "no email SAN", "empty email SAN", "email SAN contains NUL",
    "email SAN not valid UTF-8"};

/* first_san: the first subjectAltName entry of kind k (see
 * auth_mtls_identity_from). */
static int first_san(X509 *cert, const struct san_kind *k, char *out,
                     size_t outlen, const char **why)
{
    GENERAL_NAMES *gens;
    const ASN1_IA5STRING *s = NULL;
    const unsigned char *raw;
    int crit = -1, len, i, rc = -1;

    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        /* -1: no extension; -2: more than one; else it did not decode */
        *why = crit == -1   ? k->none
               : crit == -2 ? "several subjectAltName extensions"
                            : "bad subjectAltName extension";
        ERR_clear_error();
        return -1;
    }
    for (i = 0; i < sk_GENERAL_NAME_num(gens) && s == NULL; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

        if (g != NULL && g->type == k->gen_type)
            s = g->d.ia5; /* uniformResourceIdentifier, dNSName, rfc822Name */
    }
    if (s == NULL) {
        *why = k->none;
        goto fail;
    }
    raw = ASN1_STRING_get0_data(s);
    len = ASN1_STRING_length(s);
    if (raw == NULL || len <= 0) {
        *why = k->empty;
        goto fail;
    }
    if (memchr(raw, '\0', (size_t)len) != NULL) {
        *why = k->nul;
        goto fail;
    }
    if (!util_utf8_valid(raw, (size_t)len)) {
        *why = k->utf8;
        goto fail;
    }
    if ((size_t)len >= outlen) {
        *why = "identity too long";
        goto fail;
    }
    memcpy(out, raw, (size_t)len);
    out[len] = '\0';
    rc = 0;
fail:
    GENERAL_NAMES_free(gens);
    return rc;
}

enum auth_mtls_source auth_mtls_source_of(const struct conf_tls *t)
{
    if (t->use_subject_as_username)
        return AUTH_MTLS_SUBJECT;
    switch (t->identity_source) {
    case CONF_ID_SAN_URI:
        return AUTH_MTLS_SAN_URI;
    case CONF_ID_SAN_DNS:
        return AUTH_MTLS_SAN_DNS;
    case CONF_ID_SAN_EMAIL:
        return AUTH_MTLS_SAN_EMAIL;
    case CONF_ID_CN:
    default:
        return AUTH_MTLS_CN;
    }
}

int auth_mtls_identity_from(X509 *cert, enum auth_mtls_source src, char *out,
                            size_t outlen, const char **why)
{
    if (cert == NULL) {
        *why = "no certificate";
        return -1;
    }
    if (out == NULL || outlen == 0) {
        *why = "identity too long";
        return -1;
    }
    switch (src) {
    case AUTH_MTLS_SAN_URI:
        return first_san(cert, &san_uri, out, outlen, why);
    case AUTH_MTLS_SAN_DNS:
        return first_san(cert, &san_dns, out, outlen, why);
    case AUTH_MTLS_SAN_EMAIL:
        return first_san(cert, &san_email, out, outlen, why);
    case AUTH_MTLS_SUBJECT:
        return auth_mtls_identity(cert, true, out, outlen, why);
    case AUTH_MTLS_CN:
    default:
        return auth_mtls_identity(cert, false, out, outlen, why);
    }
}

int auth_mtls_identity(X509 *cert, bool subject, char *out, size_t outlen,
                       const char **why)
{
    X509_NAME *name;

    if (cert == NULL) {
        *why = "no certificate";
        return -1;
    }
    if (out == NULL || outlen == 0) {
        *why = "identity too long";
        return -1;
    }
    name = X509_get_subject_name(cert);
    if (name == NULL) {
        *why = "no subject";
        return -1;
    }
    return subject ? rfc2253(name, out, outlen, why)
                   : first_cn(name, out, outlen, why);
}

int auth_mtls_identity_der(const uint8_t *der, size_t len, bool subject,
                           char *out, size_t outlen, const char **why)
{
    return auth_mtls_identity_der_from(
        der, len, subject ? AUTH_MTLS_SUBJECT : AUTH_MTLS_CN, out, outlen, why);
}

int auth_mtls_identity_der_from(const uint8_t *der, size_t len,
                                enum auth_mtls_source src, char *out,
                                size_t outlen, const char **why)
{
    const unsigned char *p = der;
    X509 *x;
    int rc;

    if (der == NULL || len == 0 || len > AUTH_MTLS_MAX_DER) {
        *why = "bad certificate";
        return -1;
    }
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        *why = "bad certificate";
        return -1;
    }
    rc = auth_mtls_identity_from(x, src, out, outlen, why);
    X509_free(x);
    return rc;
}

static enum auth_result mtls_check(void *state, const struct auth_client *c,
                                   const char **reason)
{
    (void)state;
    if (c->cert_identity != NULL)
        return AUTH_ALLOW;
    *reason = c->cert_error ? c->cert_error : "no certificate identity";
    return AUTH_DENY;
}

void auth_mtls_authenticator(struct authenticator *out)
{
    out->name = "mtls";
    out->check = mtls_check;
    out->free = NULL;
    out->state = NULL;
}
