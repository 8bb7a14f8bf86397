/*
 * test_topic.c - unit tests for topic.c: name/filter validation (after
 * Mosquitto's valid/invalid filter tables), level limits, "$share" parsing
 * and the topic_matches truth table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"

struct valid_case {
    const char *s;
    bool valid;
};

static const struct valid_case filter_cases[] = {
    {"#", true},       {"+", true},       {"a/#", true},     {"+/+", true},
    {"/", true},       {"//", true},      {"a//b", true},    {"+/#", true},
    {"$SYS/#", true},  {"a/+/b", true},   {"/+", true},      {"+/", true},
    {"a/b/c", true},   {"/#", true},      {"a/b/", true},    {"$share", true},
    {"a b/c d", true}, {"+/+/+/#", true}, {"a/#/b", false},  {"a#", false},
    {"a+", false},     {"#a", false},     {"a/b#", false},   {"+a", false},
    {"a/+b", false},   {"", false},       {"##", false},     {"++", false},
    {"#/", false},     {"#/a", false},    {"a/b+", false},   {"+#", false},
    {"#+", false},     {"a/#/#", false},  {"a/++/b", false}, {"a/b+/c", false},
};

static const struct valid_case name_cases[] = {
    {"a", true},    {"/", true},       {"a/b", true},  {"$SYS/x", true},
    {"a//b", true}, {"//", true},      {"a/", true},   {"$share/g/a", true},
    {"a b", true},  {"", false},       {"+", false},   {"#", false},
    {"a/+", false}, {"a/#", false},    {"a+b", false}, {"a#b", false},
    {"+/a", false}, {"$SYS/#", false},
};

static void test_filter_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(filter_cases) / sizeof(filter_cases[0]);
         i++) {
        const struct valid_case *c = &filter_cases[i];

        if (topic_filter_valid(c->s, strlen(c->s)) != c->valid)
            fail_msg("topic_filter_valid(\"%s\") != %d", c->s, c->valid);
    }
}

static void test_name_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        const struct valid_case *c = &name_cases[i];

        if (topic_name_valid(c->s, strlen(c->s)) != c->valid)
            fail_msg("topic_name_valid(\"%s\") != %d", c->s, c->valid);
    }
}

/* Not NUL-terminated: only the given length may be read. */
static void test_length_respected(void **state)
{
    (void)state;
    assert_true(topic_name_valid("a/b+", 3));
    assert_false(topic_name_valid("a/b+", 4));
    assert_true(topic_filter_valid("a/#b", 3));
    assert_false(topic_filter_valid("a/#b", 4));
    assert_true(topic_matches("a/b#", 3, "a/bc", 3));
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

static void test_level_limit(void **state)
{
    size_t len;
    char *s;

    (void)state;
    s = build("a", TOPIC_MAX_LEVELS, &len);
    assert_true(topic_name_valid(s, len));
    assert_true(topic_filter_valid(s, len));
    free(s);
    s = build("a", TOPIC_MAX_LEVELS + 1, &len);
    assert_false(topic_name_valid(s, len));
    assert_false(topic_filter_valid(s, len));
    free(s);
    s = build("+", TOPIC_MAX_LEVELS, &len);
    assert_true(topic_filter_valid(s, len));
    free(s);
    s = build("+", TOPIC_MAX_LEVELS + 1, &len);
    assert_false(topic_filter_valid(s, len));
    free(s);
    /* 65,535 empty levels: the largest count a 16-bit length allows */
    s = build("", 65535, &len);
    assert_int_equal(len, 65534);
    assert_false(topic_name_valid(s, len));
    assert_false(topic_filter_valid(s, len));
    free(s);
    s = build("", TOPIC_MAX_LEVELS, &len);
    assert_true(topic_name_valid(s, len));
    free(s);
}

/* A limit is not a syntax error: too deep is reported apart from
 * malformed (SUBACK 0x8F / PUBLISH 0x90 versus closing the connection),
 * and a syntax error anywhere wins over depth. */
static void test_check_kinds(void **state)
{
    static const struct {
        const char *s;
        enum topic_check name, filter;
    } cases[] = {
        {"a/b", TOPIC_OK, TOPIC_OK},
        {"", TOPIC_MALFORMED, TOPIC_MALFORMED},
        {"a/+", TOPIC_MALFORMED, TOPIC_OK},
        {"a/#", TOPIC_MALFORMED, TOPIC_OK},
        {"a/#/b", TOPIC_MALFORMED, TOPIC_MALFORMED},
        {"a#", TOPIC_MALFORMED, TOPIC_MALFORMED},
        {"sport/tennis#", TOPIC_MALFORMED, TOPIC_MALFORMED},
        {"a+/b", TOPIC_MALFORMED, TOPIC_MALFORMED},
        {"++", TOPIC_MALFORMED, TOPIC_MALFORMED},
    };
    size_t len;
    char *s;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].s);
        assert_int_equal(topic_name_check(cases[i].s, n), cases[i].name);
        assert_int_equal(topic_filter_check(cases[i].s, n), cases[i].filter);
    }
    s = build("a", TOPIC_MAX_LEVELS + 1, &len);
    assert_int_equal(topic_name_check(s, len), TOPIC_TOO_DEEP);
    assert_int_equal(topic_filter_check(s, len), TOPIC_TOO_DEEP);
    s[len - 1] = '#'; /* last level "#": still a well-formed filter */
    assert_int_equal(topic_filter_check(s, len), TOPIC_TOO_DEEP);
    assert_int_equal(topic_name_check(s, len), TOPIC_MALFORMED);
    s[0] = '#'; /* '#' not last: malformed however deep */
    assert_int_equal(topic_filter_check(s, len), TOPIC_MALFORMED);
    free(s);
}

struct share_case {
    const char *f;
    int rc;
    const char *group, *inner;
};

static const struct share_case share_cases[] = {
    {"$share/g/a/b", 1, "g", "a/b"},
    {"$share/g/#", 1, "g", "#"},
    {"$share/group/+/x", 1, "group", "+/x"},
    {"$share/g//", 1, "g", "/"},
    {"$share/g/a#", 1, "g", "a#"}, /* inner checked separately */
    {"$share/g/$SYS/#", 1, "g", "$SYS/#"},
    {"a/b", 0, NULL, NULL},
    {"$share", 0, NULL, NULL},
    {"$sharex/g/a", 0, NULL, NULL},
    {"$SHARE/g/a", 0, NULL, NULL},
    {"$shar/g/a", 0, NULL, NULL},
    {"+/share/g/a", 0, NULL, NULL},
    {"$share/", -1, NULL, NULL},
    {"$share/g", -1, NULL, NULL},
    {"$share/g/", -1, NULL, NULL},
    {"$share//a", -1, NULL, NULL},
    {"$share/g+/a", -1, NULL, NULL},
    {"$share/g#/a", -1, NULL, NULL},
    {"$share/+/a", -1, NULL, NULL},
    {"$share/#/a", -1, NULL, NULL},
};

static void test_share_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(share_cases) / sizeof(share_cases[0]); i++) {
        const struct share_case *c = &share_cases[i];
        const char *g = NULL, *in = NULL;
        size_t gl = 0, il = 0;
        int rc = topic_share_parse(c->f, strlen(c->f), &g, &gl, &in, &il);

        if (rc != c->rc)
            fail_msg("topic_share_parse(\"%s\") = %d, want %d", c->f, rc,
                     c->rc);
        if (rc != 1)
            continue;
        assert_int_equal(gl, strlen(c->group));
        assert_memory_equal(g, c->group, gl);
        assert_int_equal(il, strlen(c->inner));
        assert_memory_equal(in, c->inner, il);
        assert_ptr_equal(in + il, c->f + strlen(c->f));
    }
}

struct match_case {
    const char *f, *t;
    bool match;
};

static const struct match_case match_cases[] = {
    {"#", "a", true},
    {"#", "a/b", true},
    {"#", "/", true},
    {"#", "a/b/c/d", true},
    {"a/#", "a", true},
    {"a/#", "a/", true},
    {"a/#", "a/b", true},
    {"a/#", "a/b/c", true},
    {"a/#", "ab", false},
    {"a/#", "b", false},
    {"a/#", "b/a", false},
    {"a/b/#", "a/b", true},
    {"a/b/#", "a", false},
    {"/#", "/a", true},
    {"/#", "/", true},
    {"/#", "a", false},
    {"+/+", "/", true},
    {"+/+", "a/b", true},
    {"+/+", "a", false},
    {"+/+", "a/b/c", false},
    {"+", "/", false},
    {"+", "a", true},
    {"/+", "/", true},
    {"/+", "/a", true},
    {"+/", "a/", true},
    {"+/", "a", false},
    {"a/+", "a/", true},
    {"a/+", "a/b", true},
    {"a/+", "a", false},
    {"a/+", "a/b/c", false},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a//c", true},
    {"a/+/c", "a/b/d", false},
    {"+/+/+", "a/b", false},
    {"+/#", "a", true},
    {"+/#", "a/b/c", true},
    {"+/+/#", "a", false},
    {"+/+/#", "a/b", true},
    {"a/b", "a/b", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b", false},
    {"a/b", "a/c", false},
    {"a/b", "a/bc", false},
    {"a/bc", "a/b", false},
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a", "A", false},
    {"//", "//", true},
    {"+/+/+", "//", true},
    /* '$' topics [MQTT-4.7.2-1] */
    {"#", "$SYS/x", false},
    {"#", "$SYS", false},
    {"#", "$", false},
    {"+/x", "$SYS/x", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/#", "$SYSx", false},
    {"$SYS/+", "$SYS/x", true},
    {"$SYS/+", "$SYS/x/y", false},
    {"$SYS", "$SYS", true},
    {"$SYS/x", "$SYS/x", true},
    {"a/+", "a/$x", true},
    {"a/#", "a/$x/y", true},
    {"+/$x", "a/$x", true},
    {"#", "x$", true},
    {"+", "a$", true},
};

static void test_matches(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        bool m = topic_matches(c->f, strlen(c->f), c->t, strlen(c->t));

        if (m != c->match)
            fail_msg("topic_matches(\"%s\", \"%s\") = %d", c->f, c->t, m);
    }
}

static void test_matches_deep(void **state)
{
    size_t fl, tl;
    char *f = build("+", 65535, &fl);
    char *t = build("", 65535, &tl);

    (void)state;
    assert_true(topic_matches(f, fl, t, tl));
    assert_false(topic_matches(f, fl, t, tl - 1)); /* one level fewer */
    assert_true(topic_matches(t, tl, t, tl));
    assert_false(topic_matches(t, tl, t, tl - 1));
    assert_true(topic_matches("#", 1, t, tl));
    free(f);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_valid),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_length_respected),
        cmocka_unit_test(test_level_limit),
        cmocka_unit_test(test_check_kinds),
        cmocka_unit_test(test_share_parse),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_matches_deep),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
