/*
 * test_retain.c - unit tests for retain.c: set/replace/clear with reference
 * counts and byte accounting, wildcard matching (checked against
 * topic_matches), '$' rules, limits ($SYS outside them), 100,000 topics
 * and deep topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"
#include "retain.h"
#include "topic.h"

static struct msg *mk(const char *topic, const char *payload)
{
    return msg_new(topic, strlen(topic), NULL, 0, (const uint8_t *)payload,
                   (uint32_t)strlen(payload), 1, true, 0);
}

/* set: retain a new message on topic and drop our own reference. */
static int set(struct retain *rs, const char *topic, const char *payload,
               size_t max_count, size_t max_bytes)
{
    struct msg *m = mk(topic, payload);
    int rc = retain_set(rs, m, max_count, max_bytes);

    msg_unref(m);
    return rc;
}

/* Collected topics, sorted and joined with ' ' for comparison. */
struct seen {
    const char *v[64];
    size_t n;
};

static void collect_cb(struct msg *m, void *arg)
{
    struct seen *s = arg;

    assert_true(s->n < 64);
    s->v[s->n++] = m->topic;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void joined(struct seen *s, char *out, size_t outlen)
{
    size_t o = 0;

    qsort(s->v, s->n, sizeof(s->v[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < s->n; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? " " : "",
                              s->v[i]);
}

/* norm: the space-separated list 'want', sorted like joined(). */
static void norm(const char *want, char *out, size_t outlen)
{
    char tmp[512];
    struct seen s = {.n = 0};

    snprintf(tmp, sizeof(tmp), "%s", want);
    for (char *tok = strtok(tmp, " "); tok != NULL; tok = strtok(NULL, " "))
        s.v[s.n++] = tok;
    joined(&s, out, outlen);
}

static void match_str(struct retain *rs, const char *f, char *out,
                      size_t outlen)
{
    struct seen s = {.n = 0};

    retain_match(rs, f, strlen(f), collect_cb, &s);
    joined(&s, out, outlen);
}

static void count_cb(struct msg *m, void *arg)
{
    (void)m;
    (*(size_t *)arg)++;
}

static void test_set_replace_clear(void **state)
{
    struct retain *rs = retain_new();
    struct msg *m1 = mk("a/b", "one"), *m2 = mk("a/b", "second");
    struct msg *clr = mk("a/b", "");
    char buf[256];

    (void)state;
    assert_int_equal(retain_count(rs), 0);
    assert_int_equal(retain_bytes(rs), 0);
    assert_int_equal(retain_set(rs, m1, 0, 0), 0);
    assert_int_equal(m1->refs, 2);
    assert_int_equal(retain_count(rs), 1);
    assert_int_equal(retain_bytes(rs), msg_size(m1));
    /* replace [MQTT-3.3.1-5] */
    assert_int_equal(retain_set(rs, m2, 0, 0), 0);
    assert_int_equal(m1->refs, 1);
    assert_int_equal(m2->refs, 2);
    assert_int_equal(retain_count(rs), 1);
    assert_int_equal(retain_bytes(rs), msg_size(m2));
    /* setting the same message again keeps one reference */
    assert_int_equal(retain_set(rs, m2, 0, 0), 0);
    assert_int_equal(m2->refs, 2);
    match_str(rs, "a/b", buf, sizeof(buf));
    assert_string_equal(buf, "a/b");
    /* empty payload clears [MQTT-3.3.1-6] */
    assert_int_equal(retain_set(rs, clr, 1, 1), 0);
    assert_int_equal(m2->refs, 1);
    assert_int_equal(clr->refs, 1);
    assert_int_equal(retain_count(rs), 0);
    assert_int_equal(retain_bytes(rs), 0);
    match_str(rs, "#", buf, sizeof(buf));
    assert_string_equal(buf, "");
    /* clearing a missing topic is a no-op */
    assert_int_equal(retain_set(rs, clr, 0, 0), 0);
    assert_int_equal(set(rs, "a", "", 0, 0), 0);
    assert_int_equal(retain_count(rs), 0);
    /* clearing a parent keeps the child, clearing the child the parent */
    assert_int_equal(set(rs, "a", "p", 0, 0), 0);
    assert_int_equal(set(rs, "a/b/c", "c", 0, 0), 0);
    assert_int_equal(set(rs, "a", "", 0, 0), 0);
    match_str(rs, "#", buf, sizeof(buf));
    assert_string_equal(buf, "a/b/c");
    assert_int_equal(set(rs, "a", "p", 0, 0), 0);
    assert_int_equal(set(rs, "a/b/c", "", 0, 0), 0);
    match_str(rs, "#", buf, sizeof(buf));
    assert_string_equal(buf, "a");
    assert_int_equal(retain_count(rs), 1);
    msg_unref(m1);
    msg_unref(m2);
    msg_unref(clr);
    retain_free(rs);
    retain_free(NULL);
}

static const char *topics[] = {
    "a",      "a/b",      "a/b/c", "a/", "/",  "//",    "b",    "$SYS",
    "$SYS/x", "$SYS/x/y", "a/$x",  "$",  "x$", "a/c/c", "a//c", "/a",
};

struct filter_case {
    const char *f, *want;
};

static const struct filter_case filter_cases[] = {
    {"#", "/ // /a a a/ a/$x a/b a/b/c a/c/c a//c b x$"},
    {"+", "a b x$"},
    {"a", "a"},
    {"a/#", "a a/ a/$x a/b a/b/c a/c/c a//c"},
    {"a/+", "a/ a/$x a/b"},
    {"a/+/c", "a/b/c a/c/c a//c"},
    {"+/+", "/ /a a/ a/$x a/b"},
    {"+/#", "/ // /a a a/ a/$x a/b a/b/c a/c/c a//c b x$"},
    {"/#", "/ // /a"},
    {"/+", "/ /a"},
    {"+/", "/ a/"},
    {"//", "//"},
    {"$SYS/#", "$SYS $SYS/x $SYS/x/y"},
    {"$SYS/+", "$SYS/x"},
    {"$SYS", "$SYS"},
    {"$SYS/+/y", "$SYS/x/y"},
    {"$", "$"},
    {"+/+/+", "// a/b/c a/c/c a//c"},
    {"nope/#", ""},
    {"a/b/c/d", ""},
};

static void test_match_wildcards(void **state)
{
    struct retain *rs = retain_new();
    char buf[512], want[512];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        assert_int_equal(set(rs, topics[i], "x", 0, 0), 0);
    assert_int_equal(retain_count(rs), sizeof(topics) / sizeof(topics[0]));
    for (size_t i = 0; i < sizeof(filter_cases) / sizeof(filter_cases[0]);
         i++) {
        match_str(rs, filter_cases[i].f, buf, sizeof(buf));
        norm(filter_cases[i].want, want, sizeof(want));
        if (strcmp(buf, want) != 0)
            fail_msg("retain_match(\"%s\") = \"%s\", want \"%s\"",
                     filter_cases[i].f, buf, want);
    }
    /* and every filter agrees with topic_matches() */
    for (size_t i = 0; i < sizeof(filter_cases) / sizeof(filter_cases[0]);
         i++) {
        const char *f = filter_cases[i].f;
        struct seen s = {.n = 0};
        size_t expect = 0;

        for (size_t j = 0; j < sizeof(topics) / sizeof(topics[0]); j++)
            expect += topic_matches(f, strlen(f), topics[j], strlen(topics[j]));
        retain_match(rs, f, strlen(f), collect_cb, &s);
        assert_int_equal(s.n, expect);
    }
    retain_foreach(rs, count_cb, &n);
    assert_int_equal(n, sizeof(topics) / sizeof(topics[0]));
    retain_free(rs);
}

static void test_limits(void **state)
{
    struct retain *rs = retain_new();
    struct msg *a = mk("a", "12345678"), *b = mk("b", "12345678");
    struct msg *c = mk("c", "12345678"), *big = mk("a", "1234567890123456");
    size_t sz = msg_size(a);
    char buf[64];

    (void)state;
    /* count limit */
    assert_int_equal(retain_set(rs, a, 2, 0), 0);
    assert_int_equal(retain_set(rs, b, 2, 0), 0);
    assert_int_equal(retain_set(rs, c, 2, 0), -1);
    assert_int_equal(c->refs, 1);
    assert_int_equal(retain_count(rs), 2);
    assert_int_equal(retain_bytes(rs), 2 * sz);
    match_str(rs, "c", buf, sizeof(buf));
    assert_string_equal(buf, "");
    assert_int_equal(retain_set(rs, big, 2, 0), 0); /* replace is fine */
    assert_int_equal(retain_count(rs), 2);
    assert_int_equal(retain_bytes(rs), sz + msg_size(big));
    /* byte limit: new topics */
    assert_int_equal(set(rs, "b", "", 0, 0), 0);
    assert_int_equal(retain_bytes(rs), msg_size(big));
    assert_int_equal(retain_set(rs, b, 0, msg_size(big) + sz - 1), -1);
    assert_int_equal(b->refs, 1);
    assert_int_equal(retain_set(rs, b, 0, msg_size(big) + sz), 0);
    /* byte limit: replacing must stay within max_bytes */
    assert_int_equal(retain_set(rs, a, 0, 2 * sz), 0); /* shrinks */
    assert_int_equal(retain_bytes(rs), 2 * sz);
    assert_int_equal(retain_set(rs, big, 0, 2 * sz), -1); /* would grow */
    assert_int_equal(big->refs, 1);
    assert_int_equal(a->refs, 2);
    assert_int_equal(retain_set(rs, big, 0, sz + msg_size(big)), 0);
    assert_int_equal(a->refs, 1);
    /* a refused new topic leaves no trie nodes behind to match */
    assert_int_equal(set(rs, "x/y/z", "v", 1, 0), -1);
    match_str(rs, "#", buf, sizeof(buf));
    assert_string_equal(buf, "a b");
    /* clearing is always allowed */
    assert_int_equal(set(rs, "a", "", 1, 1), 0);
    assert_int_equal(retain_count(rs), 1);
    assert_int_equal(retain_bytes(rs), sz);
    msg_unref(a);
    msg_unref(b);
    msg_unref(c);
    msg_unref(big);
    retain_free(rs);
}

#define MANY 100000

static void test_many(void **state)
{
    struct retain *rs = retain_new();
    char t[64];
    size_t bytes = 0, n;

    (void)state;
    for (int i = 0; i < MANY; i++) {
        int l = snprintf(t, sizeof(t), "t/%d/%d", i % 100, i);
        struct msg *m =
            msg_new(t, (size_t)l, NULL, 0, (const uint8_t *)"v", 1, 0, true, 0);

        assert_int_equal(retain_set(rs, m, MANY, 0), 0);
        bytes += msg_size(m);
        msg_unref(m);
    }
    assert_int_equal(retain_count(rs), MANY);
    assert_int_equal(retain_bytes(rs), bytes);
    assert_int_equal(set(rs, "t/x", "v", MANY, 0), -1);
    n = 0;
    retain_match(rs, "t/#", 3, count_cb, &n);
    assert_int_equal(n, MANY);
    n = 0;
    retain_match(rs, "t/7/+", 5, count_cb, &n);
    assert_int_equal(n, MANY / 100);
    n = 0;
    retain_match(rs, "+/+/777", 7, count_cb, &n);
    assert_int_equal(n, 1);
    /* clear every other one, then the rest */
    for (int k = 0; k < 2; k++) {
        for (int i = k; i < MANY; i += 2) {
            snprintf(t, sizeof(t), "t/%d/%d", i % 100, i);
            assert_int_equal(set(rs, t, "", 0, 0), 0);
        }
        n = 0;
        retain_foreach(rs, count_cb, &n);
        assert_int_equal(n, retain_count(rs));
    }
    assert_int_equal(retain_count(rs), 0);
    assert_int_equal(retain_bytes(rs), 0);
    /* leave some for retain_free */
    assert_int_equal(set(rs, "t/1/1", "v", 0, 0), 0);
    retain_free(rs);
}

static void test_deep(void **state)
{
    struct retain *rs = retain_new();
    size_t len = 65534, n = 0;
    char *t = malloc(len + 1), *p = malloc(2 * 65535);
    struct msg *m, *m2;

    (void)state;
    assert_non_null(t);
    assert_non_null(p);
    memset(t, '/', len); /* 65,535 empty levels */
    t[len] = '\0';
    for (size_t i = 0; i < 65535; i++) {
        p[2 * i] = '+';
        p[2 * i + 1] = '/';
    }
    m = msg_new(t, len, NULL, 0, (const uint8_t *)"v", 1, 0, true, 0);
    assert_int_equal(retain_set(rs, m, 0, 0), 0);
    m2 = msg_new(t, 10, NULL, 0, (const uint8_t *)"v", 1, 0, true, 0);
    assert_int_equal(retain_set(rs, m2, 0, 0), 0);
    msg_unref(m2);
    assert_int_equal(retain_count(rs), 2);
    retain_match(rs, "#", 1, count_cb, &n);
    assert_int_equal(n, 2);
    n = 0;
    retain_match(rs, t, len, count_cb, &n);
    assert_int_equal(n, 1);
    n = 0;
    retain_match(rs, p, 2 * 65535 - 1, count_cb, &n); /* 65,535 x '+' */
    assert_int_equal(n, 1);
    n = 0;
    retain_match(rs, p, 2 * 65535 - 3, count_cb, &n); /* one fewer */
    assert_int_equal(n, 0);
    retain_foreach(rs, count_cb, &n);
    assert_int_equal(n, 2);
    retain_free(rs); /* iterative free of a 65,535-node chain */
    assert_int_equal(m->refs, 1);
    msg_unref(m);
    free(t);
    free(p);
}

/* The broker's $SYS topics neither use up nor obey the users' limits
 * (max_retained_messages / max_retained_bytes), while retain_count and
 * retain_bytes still report them; other '$' topics count like any. */
static void test_sys_outside_quota(void **state)
{
    struct retain *rs = retain_new();
    struct msg *sys = mk("$SYS/broker/uptime", "12345678");
    struct msg *u = mk("u", "12345678");
    size_t sz, usz;

    (void)state;
    sz = msg_size(sys);
    assert_int_equal(retain_set(rs, sys, 0, 0), 0);
    assert_int_equal(set(rs, "$SYS", "x", 0, 0), 0);
    assert_int_equal(retain_count(rs), 2);
    /* two user topics fit a quota of two despite the two $SYS ones */
    assert_int_equal(set(rs, "a", "1", 2, 0), 0);
    assert_int_equal(set(rs, "b", "1", 2, 0), 0);
    assert_int_equal(set(rs, "c", "1", 2, 0), -1);
    assert_int_equal(retain_count(rs), 4);
    /* a full user quota does not refuse a new or larger $SYS message */
    assert_int_equal(set(rs, "$SYS/broker/clients/connected", "3", 2, 1), 0);
    assert_int_equal(set(rs, "$SYS/broker/uptime", "1234567890123", 2, 1), 0);
    assert_int_equal(retain_count(rs), 5);
    /* "$SYSTEM" and other '$' topics are user topics: they count */
    assert_int_equal(set(rs, "$SYSTEM/x", "1", 2, 0), -1);
    assert_int_equal(set(rs, "$other", "1", 2, 0), -1);
    assert_int_equal(set(rs, "b", "", 0, 0), 0);
    assert_int_equal(set(rs, "$other", "1", 2, 0), 0);
    assert_int_equal(set(rs, "c", "1", 2, 0), -1);
    /* bytes: only the user topics count toward max_bytes */
    assert_int_equal(set(rs, "a", "", 0, 0), 0);
    assert_int_equal(set(rs, "$other", "", 0, 0), 0);
    assert_int_equal(retain_count(rs), 3);           /* the three $SYS topics */
    assert_int_equal(retain_set(rs, sys, 0, sz), 0); /* $SYS replace */
    usz = msg_size(u);
    assert_true(retain_bytes(rs) > usz);
    assert_int_equal(retain_set(rs, u, 0, usz), 0); /* exactly the quota */
    assert_int_equal(set(rs, "u2", "1", 0, usz), -1);
    assert_int_equal(set(rs, "u", "", 0, 0), 0);
    /* clearing $SYS topics gives back their accounting */
    assert_int_equal(set(rs, "$SYS/broker/uptime", "", 0, 0), 0);
    assert_int_equal(set(rs, "$SYS/broker/clients/connected", "", 0, 0), 0);
    assert_int_equal(set(rs, "$SYS", "", 0, 0), 0);
    assert_int_equal(retain_count(rs), 0);
    assert_int_equal(retain_bytes(rs), 0);
    assert_int_equal(set(rs, "v", "1", 2, 0), 0);
    assert_int_equal(set(rs, "w", "1", 2, 0), 0);
    assert_int_equal(set(rs, "x", "1", 2, 0), -1);
    msg_unref(sys);
    msg_unref(u);
    retain_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_replace_clear),
        cmocka_unit_test(test_match_wildcards),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sys_outside_quota),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_deep),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
