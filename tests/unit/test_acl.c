/*
 * test_acl.c - ACL files: topic/pattern rules, %c/%u whole-level
 * substitution, CVE-2017-7650 (wildcards or '/' in client id / username),
 * deny wins, the anonymous section, SUBSCRIBE coverage, loader errors, and
 * a cross-check of the matcher against topic_matches().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "topic.h"
#include "util.h"

#define R AUTH_READ
#define W AUTH_WRITE
#define S AUTH_SUBSCRIBE

static const char acl_text[] =
    "# anonymous section\n"
    "topic read public/#\n"
    "topic anon/rw\n"
    "topic deny public/private/#\n"
    "\n"
    "pattern readwrite devices/%c/#\n"
    "pattern read users/%u/inbox/#\n"
    "pattern write users/%u/outbox\n"
    "pattern deny devices/%c/locked\n"
    "pattern deny quarantine/%u/#\n"
    "\n"
    "user alice\n"
    "topic readwrite alice/#\n"
    "topic deny alice/secret/#\n"
    "topic read $SYS/broker/#\n"
    "topic read sensors/+/temp\n"
    "topic write   cmd/with space  \n"
    "user bob\n"
    "topic write bob/out\n"
    "topic read #\n"
    "topic deny #/never\n" /* invalid: '#' not last; replaced below */
    "";

static struct acl *load_fixture(void)
{
    char err[256] = "";
    /* drop the deliberately invalid last rule for the good fixture */
    const char *end = strstr(acl_text, "topic deny #/never");
    struct acl *a =
        acl_parse("acl", acl_text, (size_t)(end - acl_text), err, sizeof(err));
    if (a == NULL)
        fail_msg("fixture: %s", err);
    return a;
}

struct acase {
    const char *cid, *user, *topic;
    enum auth_access acc;
    bool want;
};

static void run_cases(const struct acl *a, const struct acase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool got = acl_check(a, c[i].cid, c[i].user, c[i].topic,
                             strlen(c[i].topic), c[i].acc);
        if (got != c[i].want)
            fail_msg("case %zu: cid=%s user=%s topic=%s acc=%d: got %d", i,
                     c[i].cid ? c[i].cid : "(null)",
                     c[i].user ? c[i].user : "(null)", c[i].topic,
                     (int)c[i].acc, got);
    }
}

static void test_topic_rules(void **state)
{
    static const struct acase cases[] = {
        /* anonymous section */
        {"c1", NULL, "public/a", R, true},
        {"c1", NULL, "public", R, true}, /* "a/#" matches "a" */
        {"c1", NULL, "public/a", W, false},
        {"c1", NULL, "anon/rw", R, true},
        {"c1", NULL, "anon/rw", W, true},
        {"c1", NULL, "anon/rw/x", W, false},
        {"c1", NULL, "public/private/x", R, false}, /* deny wins */
        {"c1", NULL, "public/private", R, false},
        {"c1", NULL, "alice/x", R, false},
        /* anonymous rules do not apply to users */
        {"c1", "alice", "public/a", R, false},
        {"c1", "carol", "public/a", R, false}, /* no section: patterns only */
        /* alice */
        {"c1", "alice", "alice/x/y", W, true},
        {"c1", "alice", "alice", R, true},
        {"c1", "alice", "alice/secret", R, false},
        {"c1", "alice", "alice/secret/deep", W, false},
        {"c1", "alice", "alice/secretive", W, true},
        {"c1", "alice", "$SYS/broker/uptime", R, true},
        {"c1", "alice", "$SYS/other", R, false},
        {"c1", "alice", "sensors/k/temp", R, true},
        {"c1", "alice", "sensors/k/temp", W, false},
        {"c1", "alice", "sensors/k/hum", R, false},
        {"c1", "alice", "cmd/with space", W, true},
        {"c1", "Alice", "alice/x", R, false}, /* names are case sensitive */
        /* bob: "#" does not reach $ topics [MQTT-4.7.2-1] */
        {"c1", "bob", "anything/at/all", R, true},
        {"c1", "bob", "$SYS/broker/uptime", R, false},
        {"c1", "bob", "bob/out", W, true},
        {"c1", "bob", "bob/in", W, false},
    };
    struct acl *a = load_fixture();

    (void)state;
    run_cases(a, cases, ARRAY_LEN(cases));
    acl_free(a);
}

static void test_patterns(void **state)
{
    static const struct acase cases[] = {
        {"dev1", NULL, "devices/dev1/state", W, true},
        {"dev1", NULL, "devices/dev1", R, true},
        {"dev1", NULL, "devices/dev2/state", W, false},
        {"dev1", "alice", "devices/dev1/state", R, true},
        {"dev1", NULL, "devices/dev1/locked", W, false}, /* deny pattern */
        {"dev1", NULL, "devices/dev2/locked", W, false},
        {"c", "alice", "users/alice/inbox/1", R, true},
        {"c", "alice", "users/alice/inbox/1", W, false},
        {"c", "alice", "users/bob/inbox/1", R, false},
        {"c", "alice", "users/alice/outbox", W, true},
        {"c", NULL, "users//inbox/1", R, false}, /* %u without username */
        {"c", "", "users//inbox/1", R, true},    /* empty username */
        {"c", "q", "quarantine/q/x", R, false},
        {"c", "bob", "quarantine/q/x", R, true},
        /* CVE-2017-7650: wildcards or '/' never satisfy a pattern */
        {"+", NULL, "devices/+/x", W, false},
        {"+", NULL, "devices/dev2/x", W, false},
        {"#", NULL, "devices/dev2/x", W, false},
        {"#", NULL, "devices/#", W, false},
        {"a/b", NULL, "devices/a/b/x", W, false},
        {"a/b", NULL, "devices/a/b", W, false},
        {"c", "+", "users/x/inbox/1", R, false},
        {"c", "#", "users/x/inbox/1", R, false},
        {"c", "a/b", "users/a/b/inbox/1", R, false},
        {"c", "a/b", "users/a/inbox", R, false},
        /* ... and make deny patterns fail closed (level acts as '+') */
        {"c", "a/b", "quarantine/z/1", R, false},
        {"c", "#", "quarantine/z/1", R, false},
        {NULL, NULL, "devices/x/y", W, false},
    };
    struct acl *a = load_fixture();

    (void)state;
    run_cases(a, cases, ARRAY_LEN(cases));
    acl_free(a);
}

static void test_subscribe(void **state)
{
    static const struct acase cases[] = {
        {"c", NULL, "public/#", S, true},
        {"c", NULL, "public/+/x", S, true},
        {"c", NULL, "public", S, true},
        {"c", NULL, "#", S, false}, /* not covered by public/# */
        {"c", NULL, "+/x", S, false},
        {"c", NULL, "anon/rw", S, true},
        {"c", NULL, "anon/+", S, false},
        /* deny covering the whole filter refuses it; a deny covering only
         * part of it leaves the rest to the delivery-time READ check */
        {"c", NULL, "public/private/#", S, false},
        {"c", NULL, "public/private/x", S, false},
        {"c", "alice", "alice/#", S, true},
        {"c", "alice", "alice/secret/#", S, false},
        {"c", "alice", "alice/secret/+", S, false},
        {"c", "alice", "sensors/+/temp", S, true},
        {"c", "alice", "sensors/x/temp", S, true},
        {"c", "alice", "sensors/#", S, false},
        {"c", "alice", "sensors/+/+", S, false},
        {"c", "alice", "$SYS/broker/#", S, true},
        {"c", "alice", "$SYS/#", S, false},
        {"c", "alice", "cmd/with space", S, false}, /* write only */
        {"c", "bob", "#", S, true},
        {"c", "bob", "+/+", S, true},
        {"c", "bob", "$SYS/#", S, false},
        {"c", "bob", "$share/g/foo/#", S, true},
        {"c", "alice", "$share/g/alice/x", S, true},
        {"c", "alice", "$share/g/bob/x", S, false},
        {"c", "alice", "$share/g", S, false},
        {"dev1", NULL, "devices/dev1/#", S, true},
        {"dev1", NULL, "devices/+/#", S, false},
        {"+", NULL, "devices/+/#", S, false},
        {"c", "alice", "users/alice/inbox/#", S, true},
    };
    struct acl *a = load_fixture();

    (void)state;
    run_cases(a, cases, ARRAY_LEN(cases));
    acl_free(a);
}

static void test_covers(void **state)
{
    static const struct {
        const char *r, *f;
        bool want;
    } cases[] = {
        {"#", "a", true},         {"#", "a/b/#", true},
        {"#", "#", true},         {"#", "$SYS/x", false},
        {"+/#", "$SYS/#", false}, {"$SYS/#", "$SYS/#", true},
        {"a/#", "a", true},       {"a/#", "a/#", true},
        {"a/#", "a/+/b", true},   {"a/#", "b", false},
        {"a/+", "a/b", true},     {"a/+", "a/+", true},
        {"a/+", "a/#", false},    {"a/+", "a", false},
        {"a/+", "a/b/c", false},  {"a/b", "a/+", false},
        {"a/b", "a/b", true},     {"a/b", "a/b/#", false},
        {"a", "a/#", false},      {"+/+", "a/b", true},
        {"+", "#", false},        {"a//b", "a/+/b", false},
        {"a/+/b", "a//b", true},  {"", "a", false},
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bool got = acl_filter_covers(cases[i].r, strlen(cases[i].r), cases[i].f,
                                     strlen(cases[i].f));
        if (got != cases[i].want)
            fail_msg("case %zu: %s covers %s: got %d", i, cases[i].r,
                     cases[i].f, got);
    }
}

static void test_load_errors(void **state)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"topic deny #/never\n", "t:1: invalid topic filter"},
        {"topic read a/b+\n", "t:1: invalid topic filter"},
        {"\n# c\ntopic sometimes a/b\n",
         "t:3: invalid access type (expected read, write, readwrite or "
         "deny)"},
        {"topic\n", "t:1: empty topic"},
        {"user\n", "t:1: user with no name"},
        {"users alice\n",
         "t:1: unknown keyword (expected user, topic or pattern)"},
        {"Topic read a\n",
         "t:1: unknown keyword (expected user, topic or pattern)"},
        {"pattern read a/%c-x/b\n",
         "t:1: %c and %u must be a whole topic level"},
        {"pattern read a/x%u\n", "t:1: %c and %u must be a whole topic level"},
        {"topic read a/\xff\n", "t:1: topic filter is not valid UTF-8"},
        {"user \xc0\n", "t:1: username is not valid UTF-8"},
        {"topic read a\n\0topic read b\n", "t:2: NUL byte in line"},
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t len = strlen(cases[i].text);
        struct acl *a;
        if (strstr(cases[i].err, "NUL") != NULL)
            len += 1 + strlen(cases[i].text + len + 1);
        err[0] = '\0';
        a = acl_parse("t", cases[i].text, len, err, sizeof(err));
        if (a != NULL)
            fail_msg("case %zu loaded", i);
        if (strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu: got '%s' want '%s'", i, err, cases[i].err);
    }
    assert_null(acl_load("/nonexistent/acl", err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/acl: cannot open: No such file or "
                             "directory");
}

static void test_syntax_details(void **state)
{
    /* "topic read" alone is the topic "read" with readwrite (Mosquitto);
     * %c in a topic (not pattern) rule is literal; a user may have several
     * sections; CRLF and blanks are fine. */
    const char *t = "topic read\r\n"
                    "topic read lit/%c\n"
                    "user u1\n"
                    "\ttopic write a\n"
                    "user u2\n"
                    "topic write b\n"
                    "user u1\n"
                    "topic write c\r\n"
                    "  # indented comment\n";
    char err[256] = "";
    struct acl *a = acl_parse("t", t, strlen(t), err, sizeof(err));
    static const struct acase cases[] = {
        {"c", NULL, "read", W, true},   {"c", NULL, "read", R, true},
        {"c", NULL, "lit/%c", R, true}, {"c", NULL, "lit/c", R, false},
        {"c", "u1", "a", W, true},      {"c", "u1", "c", W, true},
        {"c", "u1", "b", W, false},     {"c", "u2", "b", W, true},
        {"c", "u2", "a", W, false},
    };

    (void)state;
    if (a == NULL)
        fail_msg("%s", err);
    run_cases(a, cases, ARRAY_LEN(cases));
    acl_free(a);

    /* an empty ACL file allows nothing */
    a = acl_parse("t", "", 0, err, sizeof(err));
    assert_non_null(a);
    assert_false(acl_check(a, "c", NULL, "x", 1, R));
    acl_free(a);
    /* no ACL at all: acl_check allows */
    assert_true(acl_check(NULL, "c", NULL, "x", 1, W));
    acl_free(NULL);
}

/* A deny pattern whose %u/%c cannot be substituted acts as if the level
 * were '+': it fails closed instead of being skipped. */
static void test_deny_pattern_fails_closed(void **state)
{
    const char *t = "user a/b\ntopic read #\n"
                    "user #\ntopic read #\n"
                    "user ok\ntopic read #\n"
                    "pattern deny q/%u/#\n"
                    "pattern deny d/%c\n";
    char err[256] = "";
    struct acl *a = acl_parse("t", t, strlen(t), err, sizeof(err));
    static const struct acase cases[] = {
        {"c", "a/b", "r/1", R, true},    {"c", "a/b", "q/z/1", R, false},
        {"c", "#", "q/z/1", R, false},   {"c", "ok", "q/z/1", R, true},
        {"c", "ok", "q/ok/1", R, false}, {"c", "ok", "d/x", R, true},
        {"c", "ok", "d/c", R, false},    {"x+", "ok", "d/x", R, false},
        {"x/y", "ok", "d/x", R, false},
    };

    (void)state;
    if (a == NULL)
        fail_msg("%s", err);
    run_cases(a, cases, ARRAY_LEN(cases));
    acl_free(a);
}

/* Cross-check: for rules without %c/%u, the ACL matcher agrees with
 * topic_matches() on a grid of filters and topics. */
static void test_matches_agree_with_topic(void **state)
{
    static const char *filters[] = {
        "#",  "+",  "a",    "a/#",    "a/+",    "+/b", "a/b",   "a/+/c", "+/+",
        "/+", "+/", "a//b", "$SYS/#", "$SYS/+", "+/#", "a/b/#", "/#",    "//"};
    static const char *topics[] = {
        "a",    "b",    "a/b",    "a/b/c",    "a/c", "/",  "/a",   "a/",
        "a//b", "$SYS", "$SYS/x", "$SYS/x/y", "x/b", "//", "a/x/c"};
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(filters); i++) {
        char text[64];
        char err[128];
        struct acl *a;
        snprintf(text, sizeof(text), "topic read %s\n", filters[i]);
        a = acl_parse("t", text, strlen(text), err, sizeof(err));
        assert_non_null(a);
        for (size_t j = 0; j < ARRAY_LEN(topics); j++) {
            const char *f = filters[i], *t = topics[j];
            bool want = topic_matches(f, strlen(f), t, strlen(t));
            bool got = acl_check(a, "c", NULL, t, strlen(t), R);
            if (got != want)
                fail_msg("filter %s topic %s: acl %d topic_matches %d", f, t,
                         got, want);
            /* a filter that covers a topic name matches it */
            assert_int_equal(acl_filter_covers(f, strlen(f), t, strlen(t)),
                             want);
        }
        acl_free(a);
    }
}

/* acl_check_levels: a SAN identity with '/' is substituted for %u as
 * several levels; without user_levels it never satisfies %u. */
static void test_user_levels(void **state)
{
    static const char text[] = "pattern readwrite devices/%u/#\n"
                               "pattern write telemetry/%u\n"
                               "pattern deny devices/%u/locked\n"
                               "user spiffe://example.org/sensor/7\n"
                               "topic read fleet/#\n";
    static const struct {
        const char *user, *topic;
        enum auth_access acc;
        bool levels, want;
    } cases[] = {
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/7/t", W, true, true},
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/7", R, true, true},
        {"spiffe://example.org/sensor/7",
         "telemetry/spiffe://example.org/sensor/7", W, true, true},
        /* one level more or less, or another identity: no */
        {"spiffe://example.org/sensor/7",
         "telemetry/spiffe://example.org/sensor/7/x", W, true, false},
        {"spiffe://example.org/sensor/7",
         "telemetry/spiffe://example.org/sensor", W, true, false},
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/8/t", W, true, false},
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/70/t", W, true, false},
        /* a filter over several levels of the identity */
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/7/#", S, true, true},
        {"spiffe://example.org/sensor/7", "devices/spiffe://example.org/+/7/#",
         S, true, false},
        /* the deny pattern with the identity */
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/7/locked", W, true, false},
        /* the user section matches the exact identity */
        {"spiffe://example.org/sensor/7", "fleet/a", R, true, true},
        {"spiffe://example.org/sensor/8", "fleet/a", R, true, false},
        /* without user_levels (password usernames): '/' never matches */
        {"spiffe://example.org/sensor/7",
         "devices/spiffe://example.org/sensor/7/t", W, false, false},
        /* '+' and '#' never match, even from a certificate */
        {"spiffe://x/+", "devices/spiffe://x/+/t", W, true, false},
        {"a#", "devices/a#/t", W, true, false},
        /* a name without '/' works as before */
        {"plain", "devices/plain/t", W, true, true},
    };
    char err[256] = "";
    struct acl *a = acl_parse("acl", text, sizeof(text) - 1, err, sizeof(err));

    (void)state;
    if (a == NULL)
        fail_msg("%s", err);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bool got = acl_check_levels(a, "cid", cases[i].user, cases[i].levels,
                                    cases[i].topic, strlen(cases[i].topic),
                                    cases[i].acc);
        if (got != cases[i].want)
            fail_msg("case %zu: user=%s topic=%s: got %d", i, cases[i].user,
                     cases[i].topic, got);
    }
    acl_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_rules),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_syntax_details),
        cmocka_unit_test(test_deny_pattern_fails_closed),
        cmocka_unit_test(test_matches_agree_with_topic),
        cmocka_unit_test(test_user_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
