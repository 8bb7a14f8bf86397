/*
 * test_router.c - unit tests for router.c: subscribe/unsubscribe/replace,
 * matching with '+', '#' and '$' topics (checked against topic_matches),
 * overlapping subscriptions, shared groups (round robin, one hit per group,
 * member removal), 100,000 subscriptions and 65,535-level topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"
#include "topic.h"

/* Owners are opaque: small integers cast to pointers are enough. */
#define OWNER(i) ((void *)(uintptr_t)(i))

static int sub(struct router *r, const char *f, uintptr_t owner, uint32_t id)
{
    bool existed = true;
    int rc =
        router_subscribe(r, f, strlen(f), OWNER(owner), 1, 0, id, &existed);

    assert_int_equal(rc, 0);
    return existed;
}

static int unsub(struct router *r, const char *f, uintptr_t owner)
{
    return router_unsubscribe(r, f, strlen(f), OWNER(owner));
}

static void match(struct router *r, const char *t, struct router_hits *h)
{
    router_match(r, t, strlen(t), h);
}

/* count_owner: hits of owner in h. */
static size_t count_owner(const struct router_hits *h, uintptr_t owner)
{
    size_t n = 0;

    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].owner == OWNER(owner))
            n++;
    return n;
}

static void test_subscribe_replace_unsubscribe(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    bool existed = true;

    (void)state;
    assert_int_equal(router_count(r), 0);
    assert_int_equal(router_subscribe(r, "a/b", 3, OWNER(1), 1, 0, 0, &existed),
                     0);
    assert_false(existed);
    assert_int_equal(router_count(r), 1);
    /* same owner, same filter: replaced, still one [MQTT-3.8.4-3] */
    assert_int_equal(router_subscribe(r, "a/b", 3, OWNER(1), 2, ROUTER_NO_LOCAL,
                                      7, &existed),
                     0);
    assert_true(existed);
    assert_int_equal(router_count(r), 1);
    match(r, "a/b", &h);
    assert_int_equal(h.n, 1);
    assert_ptr_equal(h.v[0].owner, OWNER(1));
    assert_int_equal(h.v[0].qos, 2);
    assert_int_equal(h.v[0].flags, ROUTER_NO_LOCAL);
    assert_int_equal(h.v[0].sub_id, 7);
    assert_false(h.v[0].shared);
    /* existed may be NULL */
    assert_int_equal(router_subscribe(r, "a/b", 3, OWNER(2), 0, 0, 0, NULL), 0);
    assert_int_equal(router_count(r), 2);

    assert_int_equal(unsub(r, "a/b", 3), -1);   /* other owner */
    assert_int_equal(unsub(r, "a/c", 1), -1);   /* other filter */
    assert_int_equal(unsub(r, "a", 1), -1);     /* interior node */
    assert_int_equal(unsub(r, "a/b/c", 1), -1); /* below */
    assert_int_equal(unsub(r, "a/+", 1), -1);
    assert_int_equal(unsub(r, "$share/g/a/b", 1), -1);
    assert_int_equal(unsub(r, "a/b", 1), 0);
    assert_int_equal(unsub(r, "a/b", 1), -1);
    assert_int_equal(router_count(r), 1);
    match(r, "a/b", &h);
    assert_int_equal(h.n, 1);
    assert_ptr_equal(h.v[0].owner, OWNER(2));
    assert_int_equal(unsub(r, "a/b", 2), 0);
    assert_int_equal(router_count(r), 0);
    match(r, "a/b", &h);
    assert_int_equal(h.n, 0);
    /* the trie is usable again after being emptied */
    assert_false(sub(r, "a/b", 1, 0));
    match(r, "a/b", &h);
    assert_int_equal(h.n, 1);
    free(h.v);
    router_free(r);
    router_free(NULL);
}

/* Same truth table as test_topic.c: the trie must agree with
 * topic_matches() for every pair. */
static const struct {
    const char *f, *t;
    bool match;
} match_cases[] = {
    {"#", "a", true},           {"#", "a/b", true},
    {"#", "/", true},           {"a/#", "a", true},
    {"a/#", "a/", true},        {"a/#", "a/b/c", true},
    {"a/#", "ab", false},       {"a/#", "b", false},
    {"a/b/#", "a/b", true},     {"a/b/#", "a", false},
    {"/#", "/a", true},         {"/#", "a", false},
    {"+/+", "/", true},         {"+/+", "a", false},
    {"+/+", "a/b/c", false},    {"+", "/", false},
    {"+", "a", true},           {"/+", "/", true},
    {"+/", "a/", true},         {"+/", "a", false},
    {"a/+", "a/", true},        {"a/+", "a", false},
    {"a/+", "a/b/c", false},    {"a/+/c", "a//c", true},
    {"a/+/c", "a/b/d", false},  {"+/#", "a", true},
    {"+/#", "a/b/c", true},     {"+/+/#", "a", false},
    {"+/+/#", "a/b", true},     {"a/b", "a/b/", false},
    {"a/b/", "a/b", false},     {"a/b", "a/bc", false},
    {"a//b", "a/b", false},     {"//", "//", true},
    {"+/+/+", "//", true},      {"#", "$SYS/x", false},
    {"#", "$SYS", false},       {"+/x", "$SYS/x", false},
    {"+", "$SYS", false},       {"+/#", "$SYS", false},
    {"$SYS/#", "$SYS/x", true}, {"$SYS/#", "$SYS", true},
    {"$SYS/#", "$SYSx", false}, {"$SYS/+", "$SYS/x", true},
    {"$SYS", "$SYS", true},     {"a/+", "a/$x", true},
    {"+/$x", "a/$x", true},     {"#", "x$", true},
};

static void test_match_table(void **state)
{
    struct router_hits h = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const char *f = match_cases[i].f, *t = match_cases[i].t;
        struct router *r = router_new();
        char shared[64];

        assert_int_equal(topic_matches(f, strlen(f), t, strlen(t)),
                         match_cases[i].match);
        sub(r, f, 1, 0);
        snprintf(shared, sizeof(shared), "$share/g/%s", f);
        sub(r, shared, 2, 0);
        match(r, t, &h);
        if (h.n != (match_cases[i].match ? 2u : 0u))
            fail_msg("router: \"%s\" vs \"%s\": %zu hits", f, t, h.n);
        assert_int_equal(unsub(r, f, 1), 0);
        assert_int_equal(unsub(r, shared, 2), 0);
        assert_int_equal(router_count(r), 0);
        router_free(r);
    }
    free(h.v);
}

/* Many filters in one trie: every hit set equals the brute-force set. */
static void test_match_many_filters(void **state)
{
    static const char *filters[] = {
        "#",     "+",      "+/+",    "+/#",  "a",     "a/#",   "a/+",    "a/b",
        "a/b/c", "a/+/c",  "a/b/#",  "/",    "/#",    "/+",    "+/",     "//",
        "a/",    "$SYS/#", "$SYS/+", "$SYS", "+/b/#", "+/+/+", "a/+/+/#"};
    static const char *topics[] = {
        "a",     "a/b",  "a/b/c",  "a/",  "/",       "//",      "b",
        "a/c/c", "$SYS", "$SYS/x", "x/b", "x/b/y/z", "a/b/c/d", "$SYS/x/y"};
    struct router *r = router_new();
    struct router_hits h = {0};
    size_t nf = sizeof(filters) / sizeof(filters[0]);

    (void)state;
    for (size_t i = 0; i < nf; i++)
        sub(r, filters[i], i + 1, (uint32_t)i);
    assert_int_equal(router_count(r), nf);
    for (size_t j = 0; j < sizeof(topics) / sizeof(topics[0]); j++) {
        const char *t = topics[j];

        match(r, t, &h);
        for (size_t i = 0; i < nf; i++) {
            bool want =
                topic_matches(filters[i], strlen(filters[i]), t, strlen(t));

            if (count_owner(&h, i + 1) != (want ? 1u : 0u))
                fail_msg("\"%s\" vs \"%s\": want %d", filters[i], t, want);
        }
    }
    for (size_t i = 0; i < nf; i++)
        assert_int_equal(unsub(r, filters[i], i + 1), 0);
    assert_int_equal(router_count(r), 0);
    free(h.v);
    router_free(r);
}

static void test_dollar_topics(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};

    (void)state;
    sub(r, "#", 1, 0);
    sub(r, "+/x", 2, 0);
    sub(r, "+/#", 3, 0);
    sub(r, "$SYS/#", 4, 0);
    sub(r, "$SYS/+", 5, 0);
    sub(r, "$SYS/x", 6, 0);
    sub(r, "$share/g/#", 7, 0);
    match(r, "$SYS/x", &h);
    assert_int_equal(h.n, 3);
    assert_int_equal(count_owner(&h, 4), 1);
    assert_int_equal(count_owner(&h, 5), 1);
    assert_int_equal(count_owner(&h, 6), 1);
    match(r, "x/x", &h); /* control: the wildcards do match other topics */
    assert_int_equal(h.n, 4);
    free(h.v);
    router_free(r);
}

static void test_overlapping_one_owner(void **state)
{
    static const char *filters[] = {"a/b", "a/+", "#", "a/#", "+/b", "+/+"};
    struct router *r = router_new();
    struct router_hits h = {0};
    unsigned seen = 0;

    (void)state;
    for (size_t i = 0; i < 6; i++)
        sub(r, filters[i], 1, (uint32_t)(i + 1));
    sub(r, "c", 1, 99);
    assert_int_equal(router_count(r), 7);
    match(r, "a/b", &h);
    assert_int_equal(h.n, 6);
    for (size_t i = 0; i < h.n; i++) {
        assert_ptr_equal(h.v[i].owner, OWNER(1));
        assert_true(h.v[i].sub_id >= 1 && h.v[i].sub_id <= 6);
        seen |= 1u << h.v[i].sub_id;
    }
    assert_int_equal(seen, 0x7e); /* each filter exactly once */
    free(h.v);
    router_free(r);
}

static void test_shared_round_robin(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    uintptr_t seq[9];

    (void)state;
    sub(r, "$share/g/a/+", 1, 11);
    sub(r, "$share/g/a/+", 2, 12);
    sub(r, "$share/g/a/+", 3, 13);
    assert_true(sub(r, "$share/g/a/+", 2, 22)); /* replace, not add */
    assert_int_equal(router_count(r), 3);
    for (int i = 0; i < 9; i++) {
        match(r, "a/x", &h);
        assert_int_equal(h.n, 1);
        assert_true(h.v[0].shared);
        seq[i] = (uintptr_t)h.v[0].owner;
        if (seq[i] == 2)
            assert_int_equal(h.v[0].sub_id, 22);
    }
    /* each window of three is a permutation of {1,2,3}, repeated */
    assert_int_equal(seq[0] + seq[1] + seq[2], 6);
    assert_true(seq[0] != seq[1] && seq[1] != seq[2] && seq[0] != seq[2]);
    for (int i = 3; i < 9; i++)
        assert_int_equal(seq[i], seq[i - 3]);
    /* a plain subscriber alongside gets its own hit */
    sub(r, "a/x", 4, 0);
    match(r, "a/x", &h);
    assert_int_equal(h.n, 2);
    assert_int_equal(count_owner(&h, 4), 1);
    /* no match: the cursor does not move */
    match(r, "b/x", &h);
    assert_int_equal(h.n, 0);
    free(h.v);
    router_free(r);
}

static void test_shared_groups_each_hit(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    size_t g1 = 0;

    (void)state;
    sub(r, "$share/g1/a/+", 1, 0);
    sub(r, "$share/g1/a/+", 2, 0);
    sub(r, "$share/g2/a/#", 3, 0);
    sub(r, "$share/g3/a/+", 4, 0);
    sub(r, "$share/g1/a/x", 5, 0); /* same name, other filter: own group */
    sub(r, "$share/g1/b/x", 6, 0); /* does not match */
    assert_int_equal(router_count(r), 6);
    for (int i = 0; i < 4; i++) {
        match(r, "a/x", &h);
        assert_int_equal(h.n, 4);
        for (size_t j = 0; j < h.n; j++)
            assert_true(h.v[j].shared);
        assert_int_equal(count_owner(&h, 1) + count_owner(&h, 2), 1);
        g1 += count_owner(&h, 1);
        assert_int_equal(count_owner(&h, 3), 1);
        assert_int_equal(count_owner(&h, 4), 1);
        assert_int_equal(count_owner(&h, 5), 1);
    }
    assert_int_equal(g1, 2); /* alternated */
    /* one owner both shared and plain on one filter: two subscriptions */
    sub(r, "a/+", 1, 0);
    assert_int_equal(router_count(r), 7);
    assert_int_equal(unsub(r, "a/+", 2), -1);
    assert_int_equal(unsub(r, "$share/g2/a/+", 1), -1);
    assert_int_equal(unsub(r, "$share/g9/a/+", 1), -1);
    assert_int_equal(unsub(r, "a/+", 1), 0);
    match(r, "a/x", &h);
    assert_int_equal(h.n, 4);
    free(h.v);
    router_free(r);
}

/*
 * Regression class of CVE-2024-8376 (Mosquitto): removing members of a
 * shared group, down to the last one, then matching, must neither crash
 * nor touch freed memory (ASan watches).
 */
static void test_shared_unsubscribe_then_match(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    uintptr_t last;

    (void)state;
    sub(r, "$share/g/a/+", 1, 0);
    sub(r, "$share/g/a/+", 2, 0);
    sub(r, "$share/g/a/+", 3, 0);
    match(r, "a/x", &h);
    match(r, "a/x", &h); /* cursor now at the third member */
    last = (uintptr_t)h.v[0].owner;
    assert_int_equal(unsub(r, "$share/g/a/+", last), 0);
    for (int i = 0; i < 4; i++) {
        match(r, "a/x", &h);
        assert_int_equal(h.n, 1);
    }
    assert_int_equal(router_count(r), 2);
    assert_int_equal(unsub(r, "$share/g/a/+", 1) + unsub(r, "$share/g/a/+", 2) +
                         unsub(r, "$share/g/a/+", 3),
                     -1); /* two of three existed */
    assert_int_equal(router_count(r), 0);
    match(r, "a/x", &h);
    assert_int_equal(h.n, 0);
    assert_int_equal(unsub(r, "$share/g/a/+", 1), -1);
    /* the group can be recreated and used */
    sub(r, "$share/g/a/+", 9, 0);
    match(r, "a/x", &h);
    assert_int_equal(h.n, 1);
    assert_ptr_equal(h.v[0].owner, OWNER(9));
    /* the last member leaves while a plain subscription keeps the node */
    sub(r, "a/+", 8, 0);
    assert_int_equal(unsub(r, "$share/g/a/+", 9), 0);
    match(r, "a/x", &h);
    assert_int_equal(h.n, 1);
    assert_ptr_equal(h.v[0].owner, OWNER(8));
    assert_false(h.v[0].shared);
    /* malformed share filters are refused, not stored */
    assert_int_equal(
        router_subscribe(r, "$share/g", 8, OWNER(1), 0, 0, 0, NULL), -1);
    assert_int_equal(unsub(r, "$share//a", 1), -1);
    assert_int_equal(router_count(r), 1);
    free(h.v);
    router_free(r);
}

/* Removal of every cursor position, in every order, from groups of 1..5. */
static void test_shared_cursor_positions(void **state)
{
    struct router_hits h = {0};

    (void)state;
    for (uintptr_t n = 1; n <= 5; n++) {
        for (uintptr_t adv = 0; adv < n; adv++) {
            for (uintptr_t victim = 1; victim <= n; victim++) {
                struct router *r = router_new();
                size_t seen[6] = {0};

                for (uintptr_t o = 1; o <= n; o++)
                    sub(r, "$share/g/t", o, 0);
                for (uintptr_t i = 0; i < adv; i++)
                    match(r, "t", &h);
                assert_int_equal(unsub(r, "$share/g/t", victim), 0);
                for (uintptr_t i = 0; i < 2 * (n - 1); i++) {
                    match(r, "t", &h);
                    assert_int_equal(h.n, n > 1 ? 1 : 0);
                    if (h.n)
                        seen[(uintptr_t)h.v[0].owner]++;
                }
                assert_int_equal(seen[victim], 0);
                for (uintptr_t o = 1; o <= n; o++)
                    if (o != victim)
                        assert_int_equal(seen[o], 2);
                router_free(r);
            }
        }
    }
    free(h.v);
}

#define MANY 100000

static void test_many_filters(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    char f[64];

    (void)state;
    for (int i = 0; i < MANY; i++) {
        int n = snprintf(f, sizeof(f), "d/%d/%d", i % 317, i);

        router_subscribe(r, f, (size_t)n, OWNER(i + 1), 0, 0, 0, NULL);
    }
    assert_int_equal(router_count(r), MANY);
    sub(r, "d/5/+", MANY + 1, 0);
    match(r, "d/5/5", &h);
    assert_int_equal(h.n, 2);
    match(r, "d/6/5", &h);
    assert_int_equal(h.n, 0);
    assert_int_equal(unsub(r, "d/5/+", MANY + 1), 0);
    /* remove in a different order than added */
    for (int k = 0; k < 2; k++) {
        for (int i = k; i < MANY; i += 2) {
            int n = snprintf(f, sizeof(f), "d/%d/%d", i % 317, i);

            assert_int_equal(router_unsubscribe(r, f, (size_t)n, OWNER(i + 1)),
                             0);
        }
    }
    assert_int_equal(router_count(r), 0);
    match(r, "d/5/5", &h);
    assert_int_equal(h.n, 0);
    free(h.v);
    router_free(r);
}

/* Many owners on one filter (indexed list) and in one shared group. */
static void test_many_owners(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    bool existed;

    (void)state;
    for (uintptr_t i = 1; i <= MANY; i++) {
        sub(r, "x/+", i, 0);
        if (i % 1000 == 0)
            sub(r, "$share/g/x/y", i, 0);
    }
    assert_int_equal(router_count(r), MANY + MANY / 1000);
    for (uintptr_t i = 1; i <= MANY; i += 777) {
        router_subscribe(r, "x/+", 3, OWNER(i), 2, 0, (uint32_t)i, &existed);
        assert_true(existed);
    }
    assert_int_equal(router_count(r), MANY + MANY / 1000);
    match(r, "x/y", &h);
    assert_int_equal(h.n, MANY + 1);
    for (size_t i = 0; i < h.n; i++)
        if (!h.v[i].shared && (uintptr_t)h.v[i].owner % 777 == 1)
            assert_int_equal(h.v[i].qos, 2);
    for (uintptr_t i = 1; i <= MANY; i += 3)
        assert_int_equal(unsub(r, "x/+", i), 0);
    for (uintptr_t i = 1; i <= MANY; i += 3)
        assert_int_equal(unsub(r, "x/+", i), -1);
    match(r, "x/y", &h);
    assert_int_equal(h.n, MANY - (MANY + 2) / 3 + 1);
    for (uintptr_t i = 1; i <= MANY; i++) {
        if (i % 3 != 1)
            assert_int_equal(unsub(r, "x/+", i), 0);
        if (i % 1000 == 0)
            assert_int_equal(unsub(r, "$share/g/x/y", i), 0);
    }
    assert_int_equal(router_count(r), 0);
    match(r, "x/y", &h);
    assert_int_equal(h.n, 0);
    free(h.v);
    router_free(r);
}

/* build: 'levels' levels of 'lvl' joined with '/'. */
static char *build(const char *lvl, size_t levels, size_t *len)
{
    size_t l = strlen(lvl), n = levels * (l + 1) - 1;
    char *s = malloc(n + 1);
    char *p = s;

    assert_non_null(s);
    for (size_t i = 0; i < levels; i++) {
        if (i > 0)
            *p++ = '/';
        memcpy(p, lvl, l);
        p += l;
    }
    *p = '\0';
    *len = n;
    return s;
}

/* 65,535 levels: no recursion in subscribe, match, unsubscribe, free. */
static void test_deep(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};
    size_t tl, pl, al;
    char *t = build("", 65535, &tl);  /* "/////...": 65,535 empty levels */
    char *p = build("+", 65535, &pl); /* "+/+/.../+" */
    char *a = build("a", 65535, &al); /* "a/a/.../a" */

    (void)state;
    assert_int_equal(tl, 65534);
    router_subscribe(r, t, tl, OWNER(1), 0, 0, 0, NULL);
    router_subscribe(r, p, pl, OWNER(2), 0, 0, 0, NULL);
    router_subscribe(r, a, al, OWNER(3), 0, 0, 0, NULL);
    sub(r, "#", 4, 0);
    sub(r, "+/#", 5, 0);
    sub(r, "+/+", 6, 0);
    router_subscribe(r, t, tl - 1, OWNER(7), 0, 0, 0, NULL); /* 1 less */
    router_match(r, t, tl, &h);
    assert_int_equal(h.n, 4);
    assert_int_equal(count_owner(&h, 1) + count_owner(&h, 2) +
                         count_owner(&h, 4) + count_owner(&h, 5),
                     4);
    router_match(r, a, al, &h);
    assert_int_equal(h.n, 4); /* 2, 3, 4, 5 */
    assert_int_equal(count_owner(&h, 3), 1);
    router_match(r, t, tl - 1, &h);
    assert_int_equal(h.n, 3); /* 4, 5, 7 */
    assert_int_equal(router_unsubscribe(r, t, tl, OWNER(1)), 0);
    assert_int_equal(router_unsubscribe(r, p, pl, OWNER(2)), 0);
    router_match(r, t, tl, &h);
    assert_int_equal(h.n, 2);
    /* 'a' chain and the 65,534-level one are left for router_free */
    free(t);
    free(p);
    free(a);
    free(h.v);
    router_free(r);
}

/* Invalid input the caller should have refused must still be safe. */
static void test_odd_input(void **state)
{
    struct router *r = router_new();
    struct router_hits h = {0};

    (void)state;
    sub(r, "a/#/b", 1, 0);
    sub(r, "#", 2, 0);
    router_match(r, "", 0, &h);
    assert_int_equal(h.n, 1);
    match(r, "a/#/b", &h);
    assert_int_equal(h.n, 1); /* only "#": '#' is not a literal level */
    match(r, "a/+", &h);
    assert_int_equal(h.n, 1);
    assert_int_equal(unsub(r, "a/#/b", 1), 0);
    assert_int_equal(router_count(r), 1);
    free(h.v);
    router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_replace_unsubscribe),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_many_filters),
        cmocka_unit_test(test_dollar_topics),
        cmocka_unit_test(test_overlapping_one_owner),
        cmocka_unit_test(test_shared_round_robin),
        cmocka_unit_test(test_shared_groups_each_hit),
        cmocka_unit_test(test_shared_unsubscribe_then_match),
        cmocka_unit_test(test_shared_cursor_positions),
        cmocka_unit_test(test_many_filters),
        cmocka_unit_test(test_many_owners),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_odd_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
