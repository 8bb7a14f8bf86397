/*
 * fuzz_cert_identity.c - libFuzzer harness for certificate identity
 * extraction from DER: never crash, and any identity returned is
 * NUL-terminated, non-empty, valid UTF-8 and fits the buffer.
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

    for (int subject = 0; subject < 2; subject++) {
        if (auth_mtls_identity_der(data, size, subject != 0, out, sizeof(out),
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
