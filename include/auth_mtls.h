/*
 * auth_mtls.h - client-certificate identities (Mosquitto's
 * use_identity_as_username / use_subject_as_username) and the mTLS
 * authenticator of the auth chain.
 */
#ifndef MQTTD_AUTH_MTLS_H
#define MQTTD_AUTH_MTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "auth.h"

struct conf_tls;

/* Longest DER certificate auth_mtls_identity_der accepts. */
#define AUTH_MTLS_MAX_DER (64u * 1024u)

/*
 * auth_mtls_identity: the username a certificate maps to.
 *   subject == false: the first commonName of the subject (as Mosquitto:
 *     X509_NAME_get_index_by_NID(NID_commonName)). Refused when absent
 *     ("no CN"), empty ("empty CN"), holding a NUL byte ("CN contains
 *     NUL"), or when its bytes are not exactly its valid UTF-8 form
 *     ("CN not valid UTF-8"; so a BMPString or a Latin-1 T61String CN is
 *     refused rather than re-encoded: the identity is always byte-equal to
 *     the username Mosquitto would take).
 *   subject == true: the whole subject as X509_NAME_print_ex(...,
 *     XN_FLAG_RFC2253), e.g. "CN=test client,OU=Production,O=Server,
 *     L=Nottingham,ST=Nottinghamshire,C=GB" (the string Mosquitto uses).
 * Writes the NUL-terminated identity to out[outlen] and returns 0, or
 * returns -1 with *why set to a static reason ("no certificate",
 * "identity too long", ...).
 */
int auth_mtls_identity(X509 *cert, bool subject, char *out, size_t outlen,
                       const char **why);

/* Where a certificate identity comes from. */
enum auth_mtls_source {
    AUTH_MTLS_CN,        /* the first commonName (auth_mtls_identity) */
    AUTH_MTLS_SUBJECT,   /* the RFC 2253 subject (auth_mtls_identity) */
    AUTH_MTLS_SAN_URI,   /* the first uniformResourceIdentifier SAN */
    AUTH_MTLS_SAN_DNS,   /* the first dNSName SAN */
    AUTH_MTLS_SAN_EMAIL, /* the first rfc822Name SAN */
};

/*
 * auth_mtls_source_of: the source a listener's TLS settings select:
 * SUBJECT with use_subject_as_username, else per tls_identity_source.
 */
enum auth_mtls_source auth_mtls_source_of(const struct conf_tls *t);

/*
 * auth_mtls_identity_from: the username 'cert' maps to from 'src'. CN and
 * SUBJECT as auth_mtls_identity. For the SAN sources, the first
 * subjectAltName entry of that kind (e.g. the SPIFFE ID
 * "spiffe://example.org/sensor/7" for SAN_URI), with the CN's checks:
 * refused when the certificate has none ("no URI SAN", "no DNS SAN",
 * "no email SAN"; there is no fallback to the CN), when that first entry
 * is empty ("empty URI SAN", ...), holds a NUL byte ("URI SAN contains
 * NUL", ...) or is not valid UTF-8 ("URI SAN not valid UTF-8", ...); also
 * "several subjectAltName extensions" and "bad subjectAltName extension"
 * (does not decode). Writes the NUL-terminated identity to out[outlen]
 * and returns 0, or returns -1 with *why set to a static reason.
 */
int auth_mtls_identity_from(X509 *cert, enum auth_mtls_source src, char *out,
                            size_t outlen, const char **why);

/*
 * auth_mtls_identity_der: the same for a DER-encoded certificate
 * der[0..len) (len <= AUTH_MTLS_MAX_DER); "bad certificate" when it does
 * not parse. For tests and the fuzzer.
 */
int auth_mtls_identity_der(const uint8_t *der, size_t len, bool subject,
                           char *out, size_t outlen, const char **why);

/* auth_mtls_identity_der_from: auth_mtls_identity_from over DER (the
 * limits and "bad certificate" of auth_mtls_identity_der). */
int auth_mtls_identity_der_from(const uint8_t *der, size_t len,
                                enum auth_mtls_source src, char *out,
                                size_t outlen, const char **why);

/*
 * auth_mtls_authenticator: fill *out with the mTLS authenticator (no
 * state). Its check returns ALLOW when c->cert_identity is set (the
 * CONNECT username/password are not used in this mode), else DENY with
 * c->cert_error or "no certificate identity". It is only put in the chain
 * of listeners that map certificate identities, so it never returns
 * NOT_MINE there.
 */
void auth_mtls_authenticator(struct authenticator *out);

#endif
