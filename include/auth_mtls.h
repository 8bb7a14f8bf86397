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

/*
 * auth_mtls_identity_der: the same for a DER-encoded certificate
 * der[0..len) (len <= AUTH_MTLS_MAX_DER); "bad certificate" when it does
 * not parse. For tests and the fuzzer.
 */
int auth_mtls_identity_der(const uint8_t *der, size_t len, bool subject,
                           char *out, size_t outlen, const char **why);

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
