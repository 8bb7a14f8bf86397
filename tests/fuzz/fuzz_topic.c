/*
 * fuzz_topic.c - libFuzzer harness for topic.c, router.c and retain.c.
 *
 * The input is split at its first '\n' into a filter and a topic name (no
 * '\n': both are the whole input). Checked properties:
 *   - the validators and topic_share_parse() never read out of bounds and
 *     return consistent results (a "$share" group is non-empty, has no
 *     '/', '+' or '#', and the inner filter is the non-empty tail);
 *   - for a valid filter and topic, the router and the retained store
 *     agree with topic_matches(); subscribe + replace + unsubscribe leaves
 *     router_count() at 0;
 *   - invalid input given straight to the router does not crash it.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *          src/topic.c src/router.c src/retain.c src/msg.c src/util.c \
 *          tests/fuzz/fuzz_topic.c -o fuzz_topic
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "retain.h"
#include "router.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            abort();                                                           \
    } while (0)

static void count_cb(struct msg *m, void *arg)
{
    (void)m;
    (*(size_t *)arg)++;
}

/* check_share: topic_share_parse's result is self-consistent. */
static int check_share(const char *f, size_t flen, const char **inner,
                       size_t *ilen)
{
    const char *g = NULL;
    size_t gl = 0;
    int sh = topic_share_parse(f, flen, &g, &gl, inner, ilen);

    CHECK(sh >= -1 && sh <= 1);
    if (sh == 0)
        CHECK(flen < 7 || memcmp(f, "$share/", 7) != 0);
    if (sh != 1)
        return sh;
    CHECK(g == f + 7 && gl > 0 && *ilen > 0);
    CHECK(*inner == g + gl + 1 && *inner + *ilen == f + flen);
    for (size_t i = 0; i < gl; i++)
        CHECK(g[i] != '/' && g[i] != '+' && g[i] != '#');
    return 1;
}

/* check_router: subscribe / replace / match / unsubscribe of one filter. */
static void check_router(const char *f, size_t flen, const char *t, size_t tlen,
                         int expect)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    bool existed = true;

    CHECK(router_subscribe(r, f, flen, (void *)1, 1, 0, 5, &existed) == 0);
    CHECK(!existed && router_count(r) == 1);
    CHECK(router_subscribe(r, f, flen, (void *)1, 2, 0, 6, &existed) == 0);
    CHECK(existed && router_count(r) == 1);
    CHECK(router_subscribe(r, "#", 1, (void *)2, 0, 0, 0, NULL) == 0);
    router_match(r, t, tlen, &h);
    CHECK(h.n == (size_t)expect + (t[0] != '$'));
    for (size_t i = 0; i < h.n; i++)
        if (h.v[i].owner == (void *)1)
            CHECK(h.v[i].qos == 2 && h.v[i].sub_id == 6);
    CHECK(router_unsubscribe(r, f, flen, (void *)3) == -1);
    CHECK(router_unsubscribe(r, f, flen, (void *)1) == 0);
    CHECK(router_unsubscribe(r, f, flen, (void *)1) == -1);
    CHECK(router_unsubscribe(r, "#", 1, (void *)2) == 0);
    CHECK(router_count(r) == 0);
    router_match(r, t, tlen, &h);
    CHECK(h.n == 0);
    free(h.v);
    router_free(r);
}

/* check_retain: the retained store agrees with topic_matches(). */
static void check_retain(const char *f, size_t flen, const char *t, size_t tlen,
                         int expect)
{
    struct retain *rs = retain_new();
    struct msg *m =
        msg_new(t, tlen, NULL, 0, (const uint8_t *)"v", 1, 0, true, 0);
    struct msg *clr = msg_new(t, tlen, NULL, 0, NULL, 0, 0, true, 0);
    size_t n = 0;

    CHECK(retain_set(rs, m, 1, 0) == 0);
    CHECK(retain_set(rs, m, 1, 0) == 0);
    retain_match(rs, f, flen, count_cb, &n);
    CHECK(n == (size_t)expect);
    CHECK(retain_set(rs, clr, 1, 0) == 0);
    CHECK(retain_count(rs) == 0 && retain_bytes(rs) == 0);
    n = 0;
    retain_match(rs, f, flen, count_cb, &n);
    CHECK(n == 0);
    CHECK(m->refs == 1);
    msg_unref(m);
    msg_unref(clr);
    retain_free(rs);
}

/* check_raw: unvalidated input straight into the router must be safe. */
static void check_raw(const char *f, size_t flen, const char *t, size_t tlen,
                      int sh)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    int rc = router_subscribe(r, f, flen, (void *)1, 0, 0, 0, NULL);

    CHECK(rc == (sh < 0 ? -1 : 0));
    router_match(r, t, tlen, &h);
    router_match(r, f, flen, &h);
    if (rc == 0)
        CHECK(router_unsubscribe(r, f, flen, (void *)1) == 0);
    CHECK(router_count(r) == 0);
    free(h.v);
    router_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    const char *f = in, *t = in, *inner = NULL;
    size_t flen = size, tlen = size, ilen = 0;
    bool fv, nv;
    int sh, expect;

    if (size > 70000)
        return 0;
    if (nl != NULL) {
        flen = (size_t)(nl - in);
        t = nl + 1;
        tlen = size - flen - 1;
    }
    fv = topic_filter_valid(f, flen);
    nv = topic_name_valid(t, tlen);
    if (nv) {
        /* a valid name is a valid filter that matches itself */
        CHECK(topic_filter_valid(t, tlen));
        CHECK(topic_matches(t, tlen, t, tlen));
    }
    (void)topic_matches(f, flen, t, tlen); /* anything: must not crash */
    sh = check_share(f, flen, &inner, &ilen);
    if (sh == 0) {
        inner = f;
        ilen = flen;
    }
    check_raw(f, flen, t, tlen, sh);
    if (sh < 0 || !topic_filter_valid(inner, ilen) || !nv)
        return 0;
    CHECK(sh == 1 || fv);
    expect = topic_matches(inner, ilen, t, tlen);
    check_router(f, flen, t, tlen, expect);
    if (tlen <= UINT16_MAX)
        check_retain(inner, ilen, t, tlen, expect);
    return 0;
}
