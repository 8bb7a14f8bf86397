/*
 * fuzz_http_parse.c - libFuzzer harness for http_parse.c.
 *
 * The first input byte picks the limits (so that they are hit) and a split
 * point; the rest is the request head. Checked properties:
 *   - the result is the same parsed whole, in two pieces at the split, and
 *     a byte at a time (it depends on the bytes, not their arrival);
 *   - no read outside the input (ASan), no error without a reason;
 *   - after DONE: head_len <= size, ends with CRLF CRLF, every offset
 *     lies inside the head, names are non-empty and hold no ':' or
 *     whitespace, values no CR, LF or leading/trailing SP/HTAB, the
 *     request line fits max_line, nhdrs <= max_headers, and
 *     http_header_get finds every header by its own name.
 *
 * Build: see tests/fuzz/run-fuzz.sh (src/net/http_parse.c alone).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            abort();                                                           \
    } while (0)

#define MAX_HDRS 64

static void check_done(const struct http_parser *p, const uint8_t *b, size_t n)
{
    char name[256];

    CHECK(p->head_len >= 4 && p->head_len <= n);
    CHECK(p->head_len <= p->lim.max_total);
    CHECK(memcmp(b + p->head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(p->nhdrs <= p->lim.max_headers);
    CHECK(p->method_len > 0 && p->target_len > 0);
    CHECK(p->target_off + p->target_len < p->head_len);
    CHECK(p->minor == 0 || p->minor == 1);
    for (size_t i = 0; i < p->nhdrs; i++) {
        const struct http_header *h = &p->hdrs[i];

        CHECK(h->name_len > 0);
        CHECK(h->name_off + h->name_len <= p->head_len);
        CHECK(h->value_off + h->value_len <= p->head_len);
        CHECK(memchr(b + h->name_off, ':', h->name_len) == NULL);
        CHECK(memchr(b + h->name_off, ' ', h->name_len) == NULL);
        CHECK(memchr(b + h->value_off, '\r', h->value_len) == NULL);
        CHECK(memchr(b + h->value_off, '\n', h->value_len) == NULL);
        if (h->value_len > 0) {
            uint8_t f = b[h->value_off];
            uint8_t l = b[h->value_off + h->value_len - 1];

            CHECK(f != ' ' && f != '\t' && l != ' ' && l != '\t');
        }
        (void)http_token_list_has((const char *)b + h->value_off, h->value_len,
                                  "upgrade");
        if (h->name_len < sizeof(name)) {
            memcpy(name, b + h->name_off, h->name_len);
            name[h->name_len] = '\0';
            CHECK(http_header_get(p, b, name, NULL, NULL) >= 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_header h1[MAX_HDRS], h2[MAX_HDRS], h3[MAX_HDRS];
    struct http_parser p1, p2, p3;
    enum http_parse_res r1, r2, r3;
    struct http_limits lim;
    const uint8_t *b;
    size_t n, split;

    if (size < 1)
        return 0;
    lim.max_line = 16 + (data[0] & 0x0f) * 16;
    lim.max_headers = 1 + (size_t)((data[0] >> 4) & 0x03) * 21;
    lim.max_total = (data[0] & 0x80) ? 4096 : 200;
    b = data + 1;
    n = size - 1;
    split = n > 0 ? (size_t)data[0] * 7 % (n + 1) : 0;

    http_parser_init(&p1, &lim, h1);
    r1 = http_parse(&p1, b, n);
    CHECK(http_parse_reason(r1) != NULL);
    CHECK(http_parse(&p1, b, n) == r1 || r1 == HTTP_PARSE_MORE);

    http_parser_init(&p2, &lim, h2);
    r2 = http_parse(&p2, b, split);
    if (r2 == HTTP_PARSE_MORE)
        r2 = http_parse(&p2, b, n);
    CHECK(r2 == r1);

    http_parser_init(&p3, &lim, h3);
    r3 = HTTP_PARSE_MORE;
    for (size_t k = 1; k <= n && r3 == HTTP_PARSE_MORE; k++)
        r3 = http_parse(&p3, b, k);
    CHECK(r3 == r1);

    if (r1 == HTTP_PARSE_DONE) {
        CHECK(p2.head_len == p1.head_len && p3.head_len == p1.head_len);
        CHECK(p2.nhdrs == p1.nhdrs && p3.nhdrs == p1.nhdrs);
        CHECK(memcmp(h1, h2, p1.nhdrs * sizeof(h1[0])) == 0);
        check_done(&p1, b, n);
    } else if (r1 != HTTP_PARSE_MORE) {
        CHECK(http_parse_status(r1) >= 400);
    }
    return 0;
}
