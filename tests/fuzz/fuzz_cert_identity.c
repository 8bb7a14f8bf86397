/*
 * fuzz_cert_identity.c - libFuzzer harness for certificate identity
 * extraction from DER, for every source (CN, RFC 2253 subject, URI, DNS
 * and email subjectAltName): never crash, and any identity returned is
 * NUL-terminated, non-empty, valid UTF-8 and fits the buffer; a SAN
 * identity never contains '\0' (strlen covers it all by construction).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_mtls.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[1024];
    const char *why = NULL;

    static const enum auth_mtls_source srcs[] = {
        AUTH_MTLS_CN, AUTH_MTLS_SUBJECT, AUTH_MTLS_SAN_URI, AUTH_MTLS_SAN_DNS,
        AUTH_MTLS_SAN_EMAIL};

    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        why = NULL;
        if (auth_mtls_identity_der_from(data, size, srcs[i], out, sizeof(out),
                                        &why) == 0) {
            size_t n = strnlen(out, sizeof(out));
            if (n == 0 || n == sizeof(out) || !util_utf8_valid(out, n))
                abort();
        } else if (why == NULL) {
            abort();
        }
    }
    return 0;
}
