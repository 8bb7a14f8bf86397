/*
 * test_http_parse.c - unit tests for http_parse.c: a table of heads with
 * their expected results, every one parsed whole, a byte at a time and at
 * every split point (the result must not depend on the split; every
 * proper prefix of a good head is HTTP_PARSE_MORE), placed right before a
 * PROT_NONE guard page so that a read past the end faults; limits;
 * header lookup and token lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_parse.h"

#define MAX_HDRS 8

static const struct http_limits lim = {
    .max_line = 64, .max_headers = MAX_HDRS, .max_total = 256};

struct pcase {
    const char *in;
    size_t len; /* the literal's length: it may hold a NUL */
    enum http_parse_res want;
};

#define C(s, w)                                                                \
    {                                                                          \
        s, sizeof(s) - 1, w                                                    \
    }

#define GOOD "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"

static const struct pcase cases[] = {
    C(GOOD, HTTP_PARSE_DONE),
    C("GET / HTTP/1.0\r\n\r\n", HTTP_PARSE_DONE),
    C("GET * HTTP/1.1\r\nA:\r\nB: \t\r\n\r\n", HTTP_PARSE_DONE),
    C("GET http://h/p?q=1 HTTP/1.1\r\nX: v\xc3\xa9 w\r\n\r\n", HTTP_PARSE_DONE),
    C("GET / HTTP/1.1\r\n\r\nTRAILING", HTTP_PARSE_DONE),
    C("\r\nGET / HTTP/1.1\r\n\r\n", HTTP_PARSE_ERR_REQUEST_LINE),
    C(" GET / HTTP/1.1\r\n\r\n", HTTP_PARSE_ERR_REQUEST_LINE),
    C("GET  / HTTP/1.1\r\n\r\n", HTTP_PARSE_ERR_REQUEST_LINE),
    C("GET /\r\n\r\n", HTTP_PARSE_ERR_REQUEST_LINE),
    C("GET / \r\n\r\n", HTTP_PARSE_ERR_VERSION),
    C("G(T / HTTP/1.1\r\n\r\n", HTTP_PARSE_ERR_METHOD),
    C("GET /a\x01 HTTP/1.1\r\n\r\n", HTTP_PARSE_ERR_TARGET),
    C("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", HTTP_PARSE_ERR_TARGET),
    C("GET / HTTP/1.1 \r\n\r\n", HTTP_PARSE_ERR_VERSION),
    C("GET / http/1.1\r\n\r\n", HTTP_PARSE_ERR_VERSION),
    C("GET / HTTP/11\r\n\r\n", HTTP_PARSE_ERR_VERSION),
    C("GET / HTTP/2.0\r\n\r\n", HTTP_PARSE_ERR_VERSION_UNSUP),
    C("GET / HTTP/1.2\r\n\r\n", HTTP_PARSE_ERR_VERSION_UNSUP),
    C("GET / HTTP/1.1\n\r\n", HTTP_PARSE_ERR_LINE_END),
    C("GET / HTTP/1.1\rX\n\r\n", HTTP_PARSE_ERR_LINE_END),
    C("GET / HTTP/1.1\r\nA: b\n\r\n", HTTP_PARSE_ERR_LINE_END),
    C("GET / HTTP/1.1\r\nA: b\r\n\n", HTTP_PARSE_ERR_LINE_END),
    C("GET / HTTP/1.1\r\nA: b\r\n\rx", HTTP_PARSE_ERR_LINE_END),
    C("GET / HTTP/1.1\r\nA : b\r\n\r\n", HTTP_PARSE_ERR_HEADER_SPACE),
    C("GET / HTTP/1.1\r\n: b\r\n\r\n", HTTP_PARSE_ERR_HEADER_NAME),
    C("GET / HTTP/1.1\r\nA\r\n\r\n", HTTP_PARSE_ERR_HEADER_NAME),
    C("GET / HTTP/1.1\r\nA(: b\r\n\r\n", HTTP_PARSE_ERR_HEADER_NAME),
    C("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", HTTP_PARSE_ERR_HEADER_VALUE),
    C("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", HTTP_PARSE_ERR_HEADER_VALUE),
    C("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", HTTP_PARSE_ERR_OBS_FOLD),
    C("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", HTTP_PARSE_ERR_OBS_FOLD),
    /* the request line at 64 bytes passes, at 65 it does not */
    C("GET /12345678901234567890123456789012345678901234567890 HTTP/1.1\r\n\r\n",
      HTTP_PARSE_DONE),
    C("GET /123456789012345678901234567890123456789012345678901 HTTP/1.1\r\n\r\n",
      HTTP_PARSE_ERR_URI_TOO_LONG),
    C("GET / HTTP/1.1\r\nA: "
      "1234567890123456789012345678901234567890123456789012345678901\r\n\r\n",
      HTTP_PARSE_DONE),
    C("GET / HTTP/1.1\r\nA: "
      "12345678901234567890123456789012345678901234567890123456789012\r\n\r\n",
      HTTP_PARSE_ERR_LINE_TOO_LONG),
    C("GET / HTTP/1.1\r\nA:1\r\nA:2\r\nA:3\r\nA:4\r\nA:5\r\nA:6\r\nA:7\r\nA:"
      "8\r\n\r\n",
      HTTP_PARSE_DONE),
    C("GET / HTTP/1.1\r\nA:1\r\nA:2\r\nA:3\r\nA:4\r\nA:5\r\nA:6\r\nA:7\r\nA:"
      "8\r\nA:9\r\n\r\n",
      HTTP_PARSE_ERR_TOO_MANY_HEADERS),
};

/* guarded: a copy of in[0..n) that ends right before a PROT_NONE page. */
static uint8_t *guarded(const char *in, size_t n, void **map, size_t *maplen)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t pages = (n + (size_t)pg - 1) / (size_t)pg + 1;
    uint8_t *m;

    *maplen = pages * (size_t)pg;
    m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + *maplen - pg, (size_t)pg, PROT_NONE), 0);
    *map = m;
    m += *maplen - (size_t)pg - n;
    memcpy(m, in, n);
    return m;
}

static enum http_parse_res parse_split(const uint8_t *b, size_t n, size_t split,
                                       struct http_parser *p,
                                       struct http_header *h)
{
    enum http_parse_res r;

    http_parser_init(p, &lim, h);
    r = http_parse(p, b, split);
    if (r != HTTP_PARSE_MORE)
        return r;
    return http_parse(p, b, n);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct pcase *c = &cases[i];
        size_t n = c->len;
        struct http_header h[MAX_HDRS];
        struct http_parser p;
        size_t maplen;
        void *map;
        uint8_t *b;

        b = guarded(c->in, n, &map, &maplen);
        for (size_t split = 0; split <= n; split++) {
            enum http_parse_res r = parse_split(b, n, split, &p, h);

            if (r != c->want)
                fail_msg("case %zu split %zu: %s, want %s", i, split,
                         http_parse_reason(r), http_parse_reason(c->want));
        }
        /* a byte at a time */
        http_parser_init(&p, &lim, h);
        for (size_t k = 1; k <= n; k++) {
            enum http_parse_res r = http_parse(&p, b, k);

            if (r != HTTP_PARSE_MORE) {
                assert_int_equal(r, c->want);
                break;
            }
            if (k == n)
                fail_msg("case %zu: still MORE after %zu bytes", i, n);
        }
        /* every truncation of a good head is MORE */
        if (c->want == HTTP_PARSE_DONE) {
            size_t head = p.head_len;

            for (size_t k = 0; k < head; k++) {
                http_parser_init(&p, &lim, h);
                if (http_parse(&p, b, k) != HTTP_PARSE_MORE)
                    fail_msg("case %zu: truncation %zu not MORE", i, k);
            }
        }
        munmap(map, maplen);
    }
}

static void test_request_fields(void **state)
{
    const char *in = "GET /mqtt?x HTTP/1.1\r\nHost: example\r\n"
                     "Connection: keep-alive, Upgrade\r\nUPGRADE:  websocket "
                     "\r\nX-Empty:\r\nx-dup: 1\r\nX-Dup: 2\r\n\r\nrest";
    const uint8_t *b = (const uint8_t *)in;
    struct http_header h[MAX_HDRS];
    struct http_parser p;
    const char *v = NULL;
    size_t vlen = 0;

    (void)state;
    http_parser_init(&p, &lim, h);
    assert_int_equal(http_parse(&p, b, strlen(in)), HTTP_PARSE_DONE);
    assert_int_equal(p.head_len, strlen(in) - 4);
    assert_true(http_method_is(&p, b, "GET"));
    assert_false(http_method_is(&p, b, "get"));
    assert_false(http_method_is(&p, b, "GE"));
    assert_int_equal(p.target_len, 7);
    assert_memory_equal(in + p.target_off, "/mqtt?x", 7);
    assert_int_equal(p.minor, 1);
    assert_int_equal(p.nhdrs, 6);
    assert_int_equal(http_header_get(&p, b, "upgrade", &v, &vlen), 1);
    assert_int_equal(vlen, 9);
    assert_memory_equal(v, "websocket", 9);
    assert_int_equal(http_header_get(&p, b, "x-empty", &v, &vlen), 1);
    assert_int_equal(vlen, 0);
    assert_int_equal(http_header_get(&p, b, "X-DUP", &v, &vlen), 2);
    assert_memory_equal(v, "1", 1);
    assert_int_equal(http_header_get(&p, b, "missing", NULL, NULL), 0);
    assert_int_equal(http_header_get(&p, b, "Host", &v, &vlen), 1);
    assert_int_equal(http_header_get(&p, b, "Hos", NULL, NULL), 0);
    assert_int_equal(http_header_get(&p, b, "Hostx", NULL, NULL), 0);
    assert_int_equal(http_header_get(&p, b, "connection", &v, &vlen), 1);
    assert_true(http_token_list_has(v, vlen, "upgrade"));
    assert_true(http_token_list_has(v, vlen, "Keep-Alive"));
    assert_false(http_token_list_has(v, vlen, "keep"));
    assert_false(http_token_list_has(v, vlen, "close"));
    /* sticky: another call returns DONE without reading */
    assert_int_equal(http_parse(&p, NULL, 0), HTTP_PARSE_DONE);
}

static void test_token_list(void **state)
{
    (void)state;
    assert_true(http_token_list_has("mqtt", 4, "mqtt"));
    assert_true(http_token_list_has(" , mqttv3.1 ,mqtt ", 18, "mqtt"));
    assert_true(http_token_list_has("a,\tB\t", 5, "b"));
    assert_false(http_token_list_has("mqttx", 5, "mqtt"));
    assert_false(http_token_list_has("", 0, "mqtt"));
    assert_false(http_token_list_has(",,,", 3, "mqtt"));
    assert_false(http_token_list_has("mq tt", 5, "mqtt"));
}

static void test_total_limit(void **state)
{
    struct http_limits small = {
        .max_line = 100, .max_headers = 4, .max_total = 24};
    const char *ok = "GET / HTTP/1.1\r\nA: b\r\n\r\n";   /* 24 bytes */
    const char *big = "GET / HTTP/1.1\r\nA: bc\r\n\r\n"; /* 25 bytes */
    struct http_header h[4];
    struct http_parser p;

    (void)state;
    http_parser_init(&p, &small, h);
    assert_int_equal(http_parse(&p, (const uint8_t *)ok, strlen(ok)),
                     HTTP_PARSE_DONE);
    http_parser_init(&p, &small, h);
    assert_int_equal(http_parse(&p, (const uint8_t *)big, 24), HTTP_PARSE_MORE);
    assert_int_equal(http_parse(&p, (const uint8_t *)big, 25),
                     HTTP_PARSE_ERR_TOO_LARGE);
    assert_int_equal(http_parse_status(p.res), 431);
    /* sticky */
    assert_int_equal(http_parse(&p, (const uint8_t *)big, 25),
                     HTTP_PARSE_ERR_TOO_LARGE);
}

static void test_reasons(void **state)
{
    (void)state;
    for (int r = HTTP_PARSE_DONE; r <= HTTP_PARSE_ERR_LINE_END; r++) {
        const char *s = http_parse_reason((enum http_parse_res)r);
        int st = http_parse_status((enum http_parse_res)r);

        assert_non_null(s);
        assert_string_not_equal(s, "unknown");
        if (r >= HTTP_PARSE_ERR_REQUEST_LINE)
            assert_true(st >= 400 && st < 600);
        else
            assert_int_equal(st, 0);
    }
    assert_int_equal(http_parse_status(HTTP_PARSE_ERR_VERSION_UNSUP), 505);
    assert_int_equal(http_parse_status(HTTP_PARSE_ERR_HEADER_NAME), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_token_list),
        cmocka_unit_test(test_total_limit),
        cmocka_unit_test(test_reasons),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
