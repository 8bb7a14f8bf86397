/*
 * fuzz_proxy_proto.c - libFuzzer harness for the PROXY protocol parser
 * (proxy_parse, proxy_check, proxy_cert_identity): every input, at every
 * length, must give a header length within the input, PROXY_INCOMPLETE or
 * PROXY_MALFORMED with a reason, and a parsed header's strings must be
 * NUL-terminated within their fields. A prefix of a complete header must
 * be INCOMPLETE (the transport layer relies on it to read no byte past the
 * header).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_hdr h;
    const char *why = NULL;
    int n = proxy_parse(data, size, &h, &why);

    if (n == PROXY_MALFORMED) {
        if (why == NULL)
            abort();
        return 0;
    }
    if (n == PROXY_INCOMPLETE)
        return 0;
    if (n <= 0 || (size_t)n > size)
        abort();
    if (memchr(h.src_ip, 0, sizeof(h.src_ip)) == NULL ||
        memchr(h.ssl_cn, 0, sizeof(h.ssl_cn)) == NULL ||
        memchr(h.ssl_version, 0, sizeof(h.ssl_version)) == NULL)
        abort();
    /* every proper prefix is incomplete or (v1/v2 byte checks) malformed,
     * never a shorter header */
    for (size_t k = 0; k < (size_t)n; k++) {
        struct proxy_hdr p;
        int r = proxy_parse(data, k, &p, &why);
        if (r > 0)
            abort();
    }
    {
        struct proxy_policy pol = {h.version, true, true, true};
        char id[64];
        (void)proxy_check(&pol, &h, &why);
        (void)proxy_cert_identity(&h, id, sizeof(id), &why);
    }
    return 0;
}
