/*
 * test_cluster_wire.c - the MQTT topic <-> NATS subject mapping and the
 * envelope of src/cluster/cluster_wire.c over a table of awkward topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster_wire.h"
#include "util.h"

/* Topic names and the subjects they map to; every one round-trips. */
static const struct {
    const char *topic, *subject;
} names[] = {
    {"a", "mqtt.t._a"},
    {"a/b/c", "mqtt.t._a._b._c"},
    {"/", "mqtt.t._._"},
    {"//", "mqtt.t._._._"},
    {"a//b", "mqtt.t._a._._b"},
    {"/a/", "mqtt.t._._a._"},
    {"a.b", "mqtt.t._a%2Eb"},
    {".", "mqtt.t._%2E"},
    {"a b", "mqtt.t._a%20b"},
    {" ", "mqtt.t._%20"},
    {"*", "mqtt.t._%2A"},
    {">", "mqtt.t._%3E"},
    {"a/*/>", "mqtt.t._a._%2A._%3E"},
    {"%41", "mqtt.t._%2541"},
    {"_", "mqtt.t.__"},
    {"a_b-c", "mqtt.t._a_b-c"},
    {"caf\xc3\xa9", "mqtt.t._caf%C3%A9"},
    {"$SYS/broker", "mqtt.d._%24SYS._broker"},
    {"$", "mqtt.d._%24"},
    {"a/$b", "mqtt.t._a._%24b"},
    {"\t\r\n", "mqtt.t._%09%0D%0A"},
};

static void test_names_round_trip(void **state)
{
    char subj[CLUSTER_WIRE_SUBJECT_MAX + 1], back[4096];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        const char *t = names[i].topic;
        int n = cluster_wire_subject(t, strlen(t), subj, sizeof(subj));
        if (n < 0 || strcmp(subj, names[i].subject) != 0)
            fail_msg("'%s': got '%s' want '%s'", t, n < 0 ? "(error)" : subj,
                     names[i].subject);
        assert_int_equal(n, (int)strlen(names[i].subject));
        n = cluster_wire_topic(subj, strlen(subj), back, sizeof(back));
        if (n < 0 || strcmp(back, t) != 0)
            fail_msg("'%s' does not round-trip (got %s)", t,
                     n < 0 ? "an error" : back);
    }
}

/* Distinct topics never share a subject (the mapping is injective). */
static void test_names_distinct(void **state)
{
    char a[CLUSTER_WIRE_SUBJECT_MAX + 1], b[CLUSTER_WIRE_SUBJECT_MAX + 1];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        for (size_t j = i + 1; j < ARRAY_LEN(names); j++) {
            assert_true(cluster_wire_subject(names[i].topic,
                                             strlen(names[i].topic), a,
                                             sizeof(a)) > 0);
            assert_true(cluster_wire_subject(names[j].topic,
                                             strlen(names[j].topic), b,
                                             sizeof(b)) > 0);
            assert_string_not_equal(a, b);
        }
}

/* Filters: '+' -> '*', '#' -> '>' (plus the parent level). */
static const struct {
    const char *filter, *subject;
    size_t parent;
} filters[] = {
    {"#", "mqtt.t.>", 0},
    {"+", "mqtt.t.*", 0},
    {"+/#", "mqtt.t.*.>", 8},
    {"a/#", "mqtt.t._a.>", 9},
    {"a/+/c", "mqtt.t._a.*._c", 0},
    {"a.b/+", "mqtt.t._a%2Eb.*", 0},
    {"$SYS/#", "mqtt.d._%24SYS.>", 14},
    {"$SYS/+/x", "mqtt.d._%24SYS.*._x", 0},
    {"/+", "mqtt.t._.*", 0},
    {"*/>", "mqtt.t._%2A._%3E", 0},
};

static void test_filters(void **state)
{
    char subj[CLUSTER_WIRE_SUBJECT_MAX + 1];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(filters); i++) {
        const char *f = filters[i].filter;
        size_t parent = 99;
        int n = cluster_wire_filter(f, strlen(f), subj, sizeof(subj), &parent);
        if (n < 0 || strcmp(subj, filters[i].subject) != 0)
            fail_msg("'%s': got '%s' want '%s'", f, n < 0 ? "(error)" : subj,
                     filters[i].subject);
        if (parent != filters[i].parent)
            fail_msg("'%s': parent %zu want %zu", f, parent, filters[i].parent);
    }
}

/* A leading wildcard never reaches a '$' topic: its root is ".d". */
static void test_dollar_not_matched(void **state)
{
    char s[CLUSTER_WIRE_SUBJECT_MAX + 1], f[CLUSTER_WIRE_SUBJECT_MAX + 1];
    size_t parent;

    (void)state;
    assert_true(cluster_wire_subject("$SYS/x", 6, s, sizeof(s)) > 0);
    assert_true(cluster_wire_filter("#", 1, f, sizeof(f), &parent) > 0);
    assert_memory_not_equal(s, f, 7); /* "mqtt.d." vs "mqtt.t." */
    assert_true(cluster_wire_filter("+/x", 3, f, sizeof(f), &parent) > 0);
    assert_memory_not_equal(s, f, 7);
}

/* Subjects another node might send that are not ours: refused. */
static void test_bad_subjects(void **state)
{
    static const char *bad[] = {
        "",
        "mqtt",
        "mqtt.t",
        "mqtt.x._a",
        "nats.t._a",
        "mqtt.t.a",       /* token without '_' */
        "mqtt.t._a.",     /* empty token */
        "mqtt.t._a..b",   /* empty token */
        "mqtt.t._a%2",    /* short escape */
        "mqtt.t._a%2e",   /* lower-case hex */
        "mqtt.t._a%41",   /* a plain byte escaped */
        "mqtt.t._a%2B",   /* '+' */
        "mqtt.t._a%23",   /* '#' */
        "mqtt.t._a%2F",   /* '/' inside a level */
        "mqtt.t._a%00",   /* NUL */
        "mqtt.t._%FF",    /* bad UTF-8 */
        "mqtt.t._a b",    /* raw space */
        "mqtt.t.*",       /* a wildcard */
        "mqtt.t._",       /* the empty topic */
        "mqtt.t._%24SYS", /* '$' topic under the plain root */
        "mqtt.d._SYS",    /* plain topic under the '$' root */
    };
    char out[256];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (cluster_wire_topic(bad[i], strlen(bad[i]), out, sizeof(out)) >= 0)
            fail_msg("'%s' accepted as '%s'", bad[i], out);
}

/* Too long for NATS' control line: -1, never a truncated subject. */
static void test_too_long(void **state)
{
    static char t[2000], s[CLUSTER_WIRE_SUBJECT_MAX + 100], o[8];

    (void)state;
    memset(t, '.', sizeof(t) - 1); /* 3 bytes each once escaped */
    assert_int_equal(cluster_wire_subject(t, strlen(t), s, sizeof(s)), -1);
    assert_int_equal(cluster_wire_subject("abcdefgh", 8, o, sizeof(o)), -1);
    assert_int_equal(cluster_wire_topic("mqtt.t._abcdefgh", 16, o, sizeof(o)),
                     -1);
}

static void test_envelope(void **state)
{
    uint8_t buf[64];
    const char *why = NULL;
    struct cluster_wire_msg m = {2, true, 1700000000, (const uint8_t *)"P",
                                 1, NULL, 0},
                            d;

    (void)state;
    cluster_wire_header(&m, buf);
    memcpy(buf + CLUSTER_WIRE_HEADER, "Pxyz", 4);
    assert_int_equal(
        cluster_wire_decode(buf, CLUSTER_WIRE_HEADER + 4, &d, &why), 0);
    assert_int_equal(d.qos, 2);
    assert_true(d.retain);
    assert_int_equal(d.expiry_at, 1700000000);
    assert_int_equal(d.props_len, 1);
    assert_memory_equal(d.props, "P", 1);
    assert_int_equal(d.payload_len, 3);
    assert_memory_equal(d.payload, "xyz", 3);

    assert_int_equal(cluster_wire_decode(buf, 13, &d, &why), -1);
    assert_string_equal(why, "envelope too short");
    buf[13] = 5; /* properties length 5, 4 bytes follow */
    assert_int_equal(
        cluster_wire_decode(buf, CLUSTER_WIRE_HEADER + 4, &d, &why), -1);
    assert_string_equal(why, "properties length past the end");
    buf[13] = 1;
    buf[1] = 3;
    assert_int_equal(
        cluster_wire_decode(buf, CLUSTER_WIRE_HEADER + 4, &d, &why), -1);
    assert_string_equal(why, "bad envelope flags");
    buf[1] = 0;
    buf[0] = 2;
    assert_int_equal(
        cluster_wire_decode(buf, CLUSTER_WIRE_HEADER + 4, &d, &why), -1);
    assert_string_equal(why, "unknown envelope version");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_names_distinct),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_dollar_not_matched),
        cmocka_unit_test(test_bad_subjects),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
