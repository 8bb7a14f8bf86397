/*
 * test_mqtt_codec.c - CMocka tests for the MQTT codec (src/mqtt_codec.c).
 *
 * Table driven: well-formed samples of every packet type and version are
 * decoded from right before a PROT_NONE guard page (so any over-read
 * faults), their fields checked, and every truncation point must give
 * MQTT_INCOMPLETE. A malformed table gives each bad packet with the reason
 * code expected. Every encoder is round-tripped through the decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mqtt_codec.h"
#include "util.h"

/* ---- guard page helpers ---------------------------------------------- */

struct guard {
    uint8_t *base;
    size_t maplen;
    uint8_t *end; /* first byte of the PROT_NONE page */
};

/* Map enough pages for 'n' bytes followed by one PROT_NONE page. */
static void guard_init(struct guard *g, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = n / pg + 1;

    g->maplen = (pages + 1) * pg;
    g->base = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->base != MAP_FAILED);
    g->end = g->base + pages * pg;
    assert_int_equal(mprotect(g->end, pg, PROT_NONE), 0);
}

/* Copy src[0..n) so that it ends right at the guard page. */
static const uint8_t *guard_put(struct guard *g, const uint8_t *src, size_t n)
{
    uint8_t *p = g->end - n;

    if (n > 0)
        memcpy(p, src, n);
    return p;
}

static void guard_free(struct guard *g)
{
    munmap(g->base, g->maplen);
}

/*
 * Decode buf[0..n) from a guard page and expect it to be consumed whole;
 * *pkt is filled from a final decode of buf itself;
 * then check that every strict prefix is MQTT_INCOMPLETE for both
 * mqtt_frame_peek (while the header is short) and mqtt_decode.
 */
static void decode_ok(const uint8_t *buf, size_t n, uint8_t version,
                      bool from_client, struct mqtt_packet *pkt)
{
    struct guard g;
    struct mqtt_packet gpkt;
    uint8_t rc = 0, first;
    const char *why = NULL;
    uint32_t rem;
    int hl, rv;

    guard_init(&g, n);
    rv = mqtt_decode(guard_put(&g, buf, n), n, version, from_client, &gpkt, &rc,
                     &why);
    if (rv != (int)n)
        print_error("decode returned %d (rc 0x%02x, %s)\n", rv, rc,
                    why ? why : "-");
    assert_int_equal(rv, (int)n);
    hl = mqtt_frame_peek(buf, n, &first, &rem);
    assert_true(hl >= 2 && hl <= 5);
    assert_int_equal(first, buf[0]);
    assert_int_equal((size_t)hl + rem, n);
    for (size_t i = 0; i < n; i++) {
        struct mqtt_packet tmp;
        const uint8_t *p = guard_put(&g, buf, i);

        rv = mqtt_frame_peek(p, i, &first, &rem);
        assert_int_equal(rv, i < (size_t)hl ? MQTT_INCOMPLETE : hl);
        rv = mqtt_decode(p, i, version, from_client, &tmp, &rc, &why);
        if (rv != MQTT_INCOMPLETE)
            print_error("prefix %zu of %zu: %d\n", i, n, rv);
        assert_int_equal(rv, MQTT_INCOMPLETE);
    }
    guard_free(&g);
    /* Decode again from the caller's buffer so that the strings in *pkt
     * stay valid after the guard mapping is gone. */
    assert_int_equal(mqtt_decode(buf, n, version, from_client, pkt, &rc, &why),
                     (int)n);
}

static int decode_bad(const uint8_t *buf, size_t n, uint8_t version,
                      bool from_client, uint8_t *rc, const char **why)
{
    struct guard g;
    struct mqtt_packet pkt;
    int rv;

    guard_init(&g, n);
    rv = mqtt_decode(guard_put(&g, buf, n), n, version, from_client, &pkt, rc,
                     why);
    guard_free(&g);
    return rv;
}

static bool str_is(struct mqtt_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static bool bin_is(struct mqtt_bin b, const void *want, size_t n)
{
    return b.len == n && (n == 0 || memcmp(b.p, want, n) == 0);
}

#define B(...)                                                                 \
    (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* ---- well-formed samples ----------------------------------------------- */

static void chk_connect_min(const struct mqtt_packet *p)
{
    const struct mqtt_connect *c = &p->u.connect;

    assert_int_equal(c->version, 4);
    assert_true(c->clean_start);
    assert_int_equal(c->keepalive, 60);
    assert_int_equal(c->client_id.len, 0);
    assert_false(c->has_will || c->has_username || c->has_password);
}

static void chk_connect_31(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.connect.version, 3);
    assert_true(str_is(p->u.connect.client_id, "abc"));
}

static void chk_connect_full(const struct mqtt_packet *p)
{
    const struct mqtt_connect *c = &p->u.connect;

    assert_int_equal(c->version, 4);
    assert_true(str_is(c->client_id, "c1"));
    assert_true(c->has_will && c->will_retain);
    assert_int_equal(c->will_qos, 1);
    assert_true(str_is(c->will_topic, "w/t"));
    assert_true(bin_is(c->will_payload, "\x01\x02", 2));
    assert_true(c->has_username && str_is(c->username, "u"));
    assert_true(c->has_password && bin_is(c->password, "pw", 2));
    assert_int_equal(c->props.present, 0);
}

static void chk_connect_v5(const struct mqtt_packet *p)
{
    const struct mqtt_connect *c = &p->u.connect;
    struct mqtt_prop pr;
    uint32_t off = 0;
    int n = 0;

    assert_int_equal(c->version, 5);
    assert_int_equal(c->keepalive, 10);
    assert_true(MQTT_HAS_PROP(&c->props, MQTT_PROP_SESSION_EXPIRY));
    assert_int_equal(c->props.session_expiry, 120);
    assert_int_equal(c->props.receive_maximum, 20);
    assert_int_equal(c->props.n_user_props, 1);
    assert_int_equal(c->props.raw_len, 15);
    while (mqtt_prop_next(c->props.raw, c->props.raw_len, &off, &pr)) {
        if (pr.id == MQTT_PROP_USER_PROPERTY) {
            assert_true(str_is(pr.str, "k"));
            assert_true(str_is(pr.str2, "v"));
        }
        n++;
    }
    assert_int_equal(n, 3);
    assert_true(str_is(c->client_id, "id"));
    assert_true(str_is(c->username, "u"));
    assert_true(bin_is(c->password, "p", 1));
}

static void chk_connect_v5_will(const struct mqtt_packet *p)
{
    const struct mqtt_connect *c = &p->u.connect;

    assert_int_equal(c->version, 5);
    assert_true(c->has_will);
    assert_int_equal(c->will_qos, 2);
    assert_int_equal(c->props.raw_len, 0);
    assert_int_equal(c->will_props.payload_format, 1);
    assert_int_equal(c->will_props.will_delay, 5);
    assert_true(str_is(c->will_topic, "t"));
    assert_true(bin_is(c->will_payload, "hi", 2));
}

static void chk_connect_v5_pass(const struct mqtt_packet *p)
{
    assert_false(p->u.connect.has_username);
    assert_true(p->u.connect.has_password);
    assert_true(bin_is(p->u.connect.password, "pw", 2));
}

static void chk_connack_v3(const struct mqtt_packet *p)
{
    assert_true(p->u.connack.session_present);
    assert_int_equal(p->u.connack.rc, 0);
}

static void chk_connack_v5(const struct mqtt_packet *p)
{
    const struct mqtt_props *pr = &p->u.connack.props;

    assert_false(p->u.connack.session_present);
    assert_int_equal(pr->maximum_qos, 1);
    assert_true(MQTT_HAS_PROP(pr, MQTT_PROP_RETAIN_AVAILABLE));
    assert_int_equal(pr->retain_available, 0);
    assert_true(str_is(pr->assigned_client_id, "abc"));
}

static void chk_pub_v3_q0(const struct mqtt_packet *p)
{
    const struct mqtt_publish *m = &p->u.publish;

    assert_int_equal(m->qos, 0);
    assert_false(m->retain || m->dup);
    assert_true(str_is(m->topic, "a/b"));
    assert_int_equal(m->packet_id, 0);
    assert_int_equal(m->payload_len, 2);
    assert_memory_equal(m->payload, "hi", 2);
}

static void chk_pub_v3_q1(const struct mqtt_packet *p)
{
    const struct mqtt_publish *m = &p->u.publish;

    assert_int_equal(m->qos, 1);
    assert_true(m->retain && m->dup);
    assert_int_equal(m->packet_id, 7);
    assert_int_equal(m->payload_len, 1);
}

static void chk_pub_v5(const struct mqtt_packet *p)
{
    const struct mqtt_publish *m = &p->u.publish;
    struct mqtt_prop pr;
    uint32_t off = 0;
    int users = 0;

    assert_int_equal(m->qos, 2);
    assert_int_equal(m->packet_id, 9);
    assert_int_equal(m->props.payload_format, 1);
    assert_int_equal(m->props.message_expiry, 60);
    assert_int_equal(m->props.topic_alias, 5);
    assert_int_equal(m->props.n_user_props, 2);
    while (mqtt_prop_next(m->props.raw, m->props.raw_len, &off, &pr))
        if (pr.id == MQTT_PROP_USER_PROPERTY)
            assert_true(str_is(pr.str, users++ == 0 ? "a" : "c"));
    assert_int_equal(users, 2);
    assert_int_equal(m->payload_len, 2);
}

static void chk_pub_v5_alias(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.publish.topic.len, 0);
    assert_int_equal(p->u.publish.props.topic_alias, 1);
    assert_int_equal(p->u.publish.payload_len, 1);
}

static void chk_pub_v5_subids(const struct mqtt_packet *p)
{
    const struct mqtt_props *pr = &p->u.publish.props;
    struct mqtt_prop one;
    uint32_t off = 0;

    assert_int_equal(pr->n_subscription_ids, 2);
    assert_int_equal(pr->subscription_id, 1);
    assert_int_equal(p->u.publish.payload_len, 0);
    assert_true(mqtt_prop_next(pr->raw, pr->raw_len, &off, &one));
    assert_true(mqtt_prop_next(pr->raw, pr->raw_len, &off, &one));
    assert_int_equal(one.u32, 129);
    assert_false(mqtt_prop_next(pr->raw, pr->raw_len, &off, &one));
}

static void chk_ack(const struct mqtt_packet *p, uint16_t pid, uint8_t rc)
{
    assert_int_equal(p->u.ack.packet_id, pid);
    assert_int_equal(p->u.ack.rc, rc);
}

static void chk_puback1(const struct mqtt_packet *p)
{
    chk_ack(p, 1, 0);
}

static void chk_pubrel2(const struct mqtt_packet *p)
{
    chk_ack(p, 2, 0);
}

static void chk_pubrec3(const struct mqtt_packet *p)
{
    chk_ack(p, 3, 0);
}

static void chk_puback4(const struct mqtt_packet *p)
{
    chk_ack(p, 4, 0x10);
    assert_int_equal(p->u.ack.props.raw_len, 0);
}

static void chk_pubcomp5(const struct mqtt_packet *p)
{
    chk_ack(p, 5, 0x92);
    assert_true(str_is(p->u.ack.props.reason_string, "no"));
}

static void chk_puback6(const struct mqtt_packet *p)
{
    chk_ack(p, 6, 0);
}

static void chk_sub_v3(const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *s = &p->u.subscribe;
    struct mqtt_str f;
    struct mqtt_sub_opts o;
    uint32_t off = 0;

    assert_int_equal(s->packet_id, 10);
    assert_int_equal(s->count, 2);
    assert_true(mqtt_sub_next(s, &off, &f, &o));
    assert_true(str_is(f, "a/#"));
    assert_int_equal(o.qos, 1);
    assert_true(mqtt_sub_next(s, &off, &f, &o));
    assert_true(str_is(f, "+"));
    assert_int_equal(o.qos, 2);
    assert_false(mqtt_sub_next(s, &off, &f, &o));
}

static void chk_sub_v5(const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *s = &p->u.subscribe;
    struct mqtt_str f;
    struct mqtt_sub_opts o;
    uint32_t off = 0;

    assert_int_equal(s->props.subscription_id, 7);
    assert_int_equal(s->count, 1);
    assert_true(mqtt_sub_next(s, &off, &f, &o));
    assert_true(str_is(f, "a"));
    assert_int_equal(o.qos, 1);
    assert_true(o.no_local && o.retain_as_published);
    assert_int_equal(o.retain_handling, 2);
}

static void chk_unsub_v3(const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *s = &p->u.subscribe;
    struct mqtt_str f;
    uint32_t off = 0;

    assert_int_equal(s->packet_id, 12);
    assert_int_equal(s->count, 2);
    assert_true(mqtt_unsub_next(s, &off, &f) && str_is(f, "a"));
    assert_true(mqtt_unsub_next(s, &off, &f) && str_is(f, "bc"));
    assert_false(mqtt_unsub_next(s, &off, &f));
}

static void chk_unsub_v5(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.subscribe.packet_id, 13);
    assert_int_equal(p->u.subscribe.count, 1);
}

static void chk_suback_v3(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.suback.packet_id, 10);
    assert_int_equal(p->u.suback.count, 2);
    assert_int_equal(p->u.suback.codes[1], 0x80);
}

static void chk_suback_v5(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.suback.count, 3);
    assert_int_equal(p->u.suback.codes[2], 0x97);
}

static void chk_unsuback_v3(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.suback.packet_id, 12);
    assert_int_equal(p->u.suback.count, 0);
}

static void chk_unsuback_v5(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.suback.count, 2);
    assert_int_equal(p->u.suback.codes[1], 0x11);
    assert_true(MQTT_HAS_PROP(&p->u.suback.props, MQTT_PROP_REASON_STRING));
}

static void chk_disc0(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.disconnect.rc, 0);
}

static void chk_disc4(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.disconnect.rc, 4);
}

static void chk_disc_props(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.disconnect.rc, 0x8B);
    assert_true(str_is(p->u.disconnect.props.reason_string, "by"));
}

static void chk_auth(const struct mqtt_packet *p)
{
    assert_int_equal(p->u.disconnect.rc, 0x18);
    assert_true(str_is(p->u.disconnect.props.auth_method, "SCRA"));
    assert_true(bin_is(p->u.disconnect.props.auth_data, "\x01\x02", 2));
}

static void chk_none(const struct mqtt_packet *p)
{
    (void)p;
}

struct good {
    const char *name;
    const uint8_t *b;
    size_t n;
    uint8_t version;
    bool from_client;
    uint8_t type;
    void (*check)(const struct mqtt_packet *);
};

#define MQ 0x00, 0x04, 'M', 'Q', 'T', 'T'

static const struct good good_tab[] = {
    {"CONNECT 3.1.1 minimal", B(0x10, 12, MQ, 4, 0x02, 0, 60, 0, 0), 0, true,
     MQTT_CONNECT, chk_connect_min},
    {"CONNECT 3.1.1 when already connected",
     B(0x10, 12, MQ, 4, 0x02, 0, 60, 0, 0), 4, true, MQTT_CONNECT,
     chk_connect_min},
    {"CONNECT 3.1",
     B(0x10, 17, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60, 0, 3, 'a',
       'b', 'c'),
     0, true, MQTT_CONNECT, chk_connect_31},
    {"CONNECT 3.1.1 will user pass",
     B(0x10, 30, MQ, 4, 0xEE, 0, 60, 0, 2, 'c', '1', 0, 3, 'w', '/', 't', 0, 2,
       1, 2, 0, 1, 'u', 0, 2, 'p', 'w'),
     0, true, MQTT_CONNECT, chk_connect_full},
    {"CONNECT 5 props",
     B(0x10, 36, MQ, 5, 0xC2, 0, 10, 15, 0x11, 0, 0, 0, 120, 0x21, 0, 20, 0x26,
       0, 1, 'k', 0, 1, 'v', 0, 2, 'i', 'd', 0, 1, 'u', 0, 1, 'p'),
     0, true, MQTT_CONNECT, chk_connect_v5},
    {"CONNECT 5 will props",
     B(0x10, 28, MQ, 5, 0x16, 0, 0, 0, 0, 0, 7, 0x01, 1, 0x18, 0, 0, 0, 5, 0, 1,
       't', 0, 2, 'h', 'i'),
     0, true, MQTT_CONNECT, chk_connect_v5_will},
    {"CONNECT 5 password without username",
     B(0x10, 17, MQ, 5, 0x42, 0, 0, 0, 0, 0, 0, 2, 'p', 'w'), 0, true,
     MQTT_CONNECT, chk_connect_v5_pass},
    {"CONNACK 3.1.1", B(0x20, 2, 1, 0), 4, false, MQTT_CONNACK, chk_connack_v3},
    {"CONNACK 3.1", B(0x20, 2, 0, 0), 3, false, MQTT_CONNACK, chk_none},
    {"CONNACK 5",
     B(0x20, 13, 0, 0, 10, 0x24, 1, 0x25, 0, 0x12, 0, 3, 'a', 'b', 'c'), 5,
     false, MQTT_CONNACK, chk_connack_v5},
    {"PUBLISH 3.1.1 QoS 0", B(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'), 4, true,
     MQTT_PUBLISH, chk_pub_v3_q0},
    {"PUBLISH 3.1 QoS 0 from server", B(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'),
     3, false, MQTT_PUBLISH, chk_pub_v3_q0},
    {"PUBLISH 3.1.1 QoS 1 dup retain", B(0x3B, 6, 0, 1, 't', 0, 7, 'x'), 4,
     true, MQTT_PUBLISH, chk_pub_v3_q1},
    {"PUBLISH 5 QoS 2 props",
     B(0x34, 32, 0, 1, 't', 0, 9, 24, 0x01, 1, 0x02, 0, 0, 0, 60, 0x23, 0, 5,
       0x26, 0, 1, 'a', 0, 1, 'b', 0x26, 0, 1, 'c', 0, 1, 'd', 'o', 'k'),
     5, true, MQTT_PUBLISH, chk_pub_v5},
    {"PUBLISH 5 empty topic with alias", B(0x30, 7, 0, 0, 3, 0x23, 0, 1, 'x'),
     5, true, MQTT_PUBLISH, chk_pub_v5_alias},
    {"PUBLISH 5 from server, 2 subscription ids",
     B(0x30, 9, 0, 1, 't', 5, 0x0B, 1, 0x0B, 0x81, 0x01), 5, false,
     MQTT_PUBLISH, chk_pub_v5_subids},
    {"PUBACK 3.1.1", B(0x40, 2, 0, 1), 4, true, MQTT_PUBACK, chk_puback1},
    {"PUBACK 3.1.1 from server", B(0x40, 2, 0, 1), 4, false, MQTT_PUBACK,
     chk_puback1},
    {"PUBREL 3.1", B(0x62, 2, 0, 2), 3, true, MQTT_PUBREL, chk_pubrel2},
    {"PUBREC 5 short", B(0x50, 2, 0, 3), 5, true, MQTT_PUBREC, chk_pubrec3},
    {"PUBACK 5 rc only", B(0x40, 3, 0, 4, 0x10), 5, true, MQTT_PUBACK,
     chk_puback4},
    {"PUBCOMP 5 rc props", B(0x70, 9, 0, 5, 0x92, 5, 0x1F, 0, 2, 'n', 'o'), 5,
     false, MQTT_PUBCOMP, chk_pubcomp5},
    {"PUBACK 5 long form rc 0", B(0x40, 4, 0, 6, 0, 0), 5, true, MQTT_PUBACK,
     chk_puback6},
    {"SUBSCRIBE 3.1.1",
     B(0x82, 12, 0, 10, 0, 3, 'a', '/', '#', 1, 0, 1, '+', 2), 4, true,
     MQTT_SUBSCRIBE, chk_sub_v3},
    {"SUBSCRIBE 3.1", B(0x82, 12, 0, 10, 0, 3, 'a', '/', '#', 1, 0, 1, '+', 2),
     3, true, MQTT_SUBSCRIBE, chk_sub_v3},
    {"SUBSCRIBE 5", B(0x82, 9, 0, 11, 2, 0x0B, 7, 0, 1, 'a', 0x2D), 5, true,
     MQTT_SUBSCRIBE, chk_sub_v5},
    {"UNSUBSCRIBE 3.1.1", B(0xA2, 9, 0, 12, 0, 1, 'a', 0, 2, 'b', 'c'), 4, true,
     MQTT_UNSUBSCRIBE, chk_unsub_v3},
    {"UNSUBSCRIBE 5", B(0xA2, 6, 0, 13, 0, 0, 1, 'x'), 5, true,
     MQTT_UNSUBSCRIBE, chk_unsub_v5},
    {"SUBACK 3.1.1", B(0x90, 4, 0, 10, 1, 0x80), 4, false, MQTT_SUBACK,
     chk_suback_v3},
    {"SUBACK 5", B(0x90, 6, 0, 11, 0, 0, 2, 0x97), 5, false, MQTT_SUBACK,
     chk_suback_v5},
    {"UNSUBACK 3.1.1", B(0xB0, 2, 0, 12), 4, false, MQTT_UNSUBACK,
     chk_unsuback_v3},
    {"UNSUBACK 5", B(0xB0, 8, 0, 13, 3, 0x1F, 0, 0, 0, 0x11), 5, false,
     MQTT_UNSUBACK, chk_unsuback_v5},
    {"PINGREQ", B(0xC0, 0), 4, true, MQTT_PINGREQ, chk_none},
    {"PINGRESP", B(0xD0, 0), 5, false, MQTT_PINGRESP, chk_none},
    {"DISCONNECT 3.1.1", B(0xE0, 0), 4, true, MQTT_DISCONNECT, chk_disc0},
    {"DISCONNECT 5 short", B(0xE0, 0), 5, true, MQTT_DISCONNECT, chk_disc0},
    {"DISCONNECT 5 rc only", B(0xE0, 1, 4), 5, true, MQTT_DISCONNECT,
     chk_disc4},
    {"DISCONNECT 5 props", B(0xE0, 7, 0x8B, 5, 0x1F, 0, 2, 'b', 'y'), 5, false,
     MQTT_DISCONNECT, chk_disc_props},
    {"AUTH 5 short", B(0xF0, 0), 5, true, MQTT_AUTH, chk_disc0},
    {"AUTH 5 props",
     B(0xF0, 14, 0x18, 12, 0x15, 0, 4, 'S', 'C', 'R', 'A', 0x16, 0, 2, 1, 2), 5,
     false, MQTT_AUTH, chk_auth},
};

static void test_good_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(good_tab); i++) {
        const struct good *t = &good_tab[i];
        struct mqtt_packet pkt;

        print_message("good: %s\n", t->name);
        decode_ok(t->b, t->n, t->version, t->from_client, &pkt);
        assert_int_equal(pkt.type, t->type);
        assert_int_equal(pkt.flags, t->b[0] & 0x0F);
        t->check(&pkt);
    }
}

/* ---- malformed samples -------------------------------------------------- */

struct bad {
    const char *name;
    const uint8_t *b;
    size_t n;
    uint8_t version;
    bool from_client;
    uint8_t rc;
};

#define MAL MQTT_RC_MALFORMED
#define PROTO MQTT_RC_PROTOCOL_ERROR
#define TOPIC MQTT_RC_TOPIC_NAME_INVALID
#define UNSUP MQTT_RC_UNSUPPORTED_PROTOCOL

static const struct bad bad_tab[] = {
    /* fixed header */
    {"PUBACK flags", B(0x41, 2, 0, 1), 4, true, MAL},
    {"PUBREL flags 0", B(0x60, 2, 0, 1), 4, true, MAL},
    {"SUBSCRIBE flags 0", B(0x80, 6, 0, 1, 0, 1, 'a', 0), 4, true, MAL},
    {"UNSUBSCRIBE flags 3", B(0xA3, 5, 0, 1, 0, 1, 'a'), 4, true, MAL},
    {"CONNECT flags", B(0x11, 12, MQ, 4, 0x02, 0, 60, 0, 0), 0, true, MAL},
    {"PINGREQ flags", B(0xC1, 0), 4, true, MAL},
    {"DISCONNECT flags", B(0xE8, 0), 5, true, MAL},
    {"type 0", B(0x00, 0), 4, true, MAL},
    {"5-byte varint", B(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), 4, true, MAL},
    {"non-minimal varint 80 00", B(0x30, 0x80, 0x00), 4, true, MAL},
    {"non-minimal varint 83 80 00", B(0xC0, 0x83, 0x80, 0x00), 4, true, MAL},
    /* PUBLISH */
    {"PUBLISH QoS 3", B(0x36, 5, 0, 1, 't', 0, 1), 4, true, MAL},
    {"PUBLISH DUP on QoS 0", B(0x38, 3, 0, 1, 't'), 4, true, PROTO},
    {"PUBLISH DUP on QoS 0 v5", B(0x38, 4, 0, 1, 't', 0), 5, true, PROTO},
    {"PUBLISH packet id 0", B(0x32, 5, 0, 1, 't', 0, 0), 4, true, PROTO},
    {"PUBLISH packet id missing", B(0x32, 4, 0, 1, 't', 0), 4, true, MAL},
    /* wildcard or empty topic: malformed [MQTT-3.3.2-2], [MQTT-4.7.3-1];
     * v5 empty without an alias: Protocol Error (3.3.2.3.4) */
    {"PUBLISH topic +", B(0x30, 5, 0, 3, 'a', '/', '+'), 4, true, MAL},
    {"PUBLISH topic + v5", B(0x30, 6, 0, 3, 'a', '/', '+', 0), 5, true, MAL},
    {"PUBLISH topic #", B(0x30, 3, 0, 1, '#'), 5, false, MAL},
    {"PUBLISH empty topic v3", B(0x30, 2, 0, 0), 4, true, MAL},
    {"PUBLISH empty topic v5 no alias", B(0x30, 3, 0, 0, 0), 5, true, PROTO},
    {"PUBLISH topic past end", B(0x30, 3, 0, 5, 'a'), 4, true, MAL},
    {"topic invalid UTF-8", B(0x30, 4, 0, 2, 0xC3, 0x28), 4, true, MAL},
    {"topic U+0000", B(0x30, 4, 0, 2, 'a', 0), 4, true, MAL},
    {"topic overlong 2-byte", B(0x30, 4, 0, 2, 0xC0, 0x80), 4, true, MAL},
    {"topic overlong 3-byte", B(0x30, 5, 0, 3, 0xE0, 0x80, 0xAF), 4, true, MAL},
    {"topic surrogate", B(0x30, 5, 0, 3, 0xED, 0xA0, 0x80), 4, true, MAL},
    {"topic above U+10FFFF", B(0x30, 6, 0, 4, 0xF4, 0x90, 0x80, 0x80), 4, true,
     MAL},
    {"PUBLISH payload format 1 bad payload",
     B(0x30, 8, 0, 1, 't', 2, 0x01, 1, 0xFF, 0xFE), 5, true,
     MQTT_RC_PAYLOAD_FORMAT_INVALID},
    /* CONNECT */
    {"bad protocol name",
     B(0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0), 0, true, UNSUP},
    {"MQTT level 3", B(0x10, 12, MQ, 3, 0x02, 0, 60, 0, 0), 0, true, UNSUP},
    {"MQTT level 6", B(0x10, 12, MQ, 6, 0x02, 0, 60, 0, 0), 0, true, UNSUP},
    {"MQIsdp level 4",
     B(0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 0x02, 0, 60, 0, 0), 0,
     true, UNSUP},
    {"protocol name truncated", B(0x10, 5, 0, 4, 'M', 'Q', 'T'), 0, true, MAL},
    {"connect reserved flag", B(0x10, 12, MQ, 4, 0x03, 0, 60, 0, 0), 0, true,
     MAL},
    {"will QoS without will", B(0x10, 12, MQ, 4, 0x0A, 0, 60, 0, 0), 0, true,
     MAL},
    {"will retain without will", B(0x10, 13, MQ, 5, 0x22, 0, 60, 0, 0, 0), 0,
     true, MAL},
    {"will QoS 3", B(0x10, 12, MQ, 4, 0x1E, 0, 60, 0, 0), 0, true, MAL},
    {"password without username 3.1.1",
     B(0x10, 16, MQ, 4, 0x42, 0, 60, 0, 0, 0, 2, 'p', 'w'), 0, true, MAL},
    {"client id invalid UTF-8", B(0x10, 13, MQ, 4, 0x02, 0, 60, 0, 1, 0xFF), 0,
     true, MAL},
    {"will topic with wildcard",
     B(0x10, 17, MQ, 4, 0x06, 0, 60, 0, 0, 0, 1, '#', 0, 0), 0, true, TOPIC},
    {"will payload truncated",
     B(0x10, 17, MQ, 4, 0x06, 0, 60, 0, 0, 0, 1, 't', 0, 5), 0, true, MAL},
    {"will payload format 1 bad payload",
     B(0x10, 22, MQ, 5, 0x06, 0, 60, 0, 0, 0, 2, 0x01, 1, 0, 1, 't', 0, 1,
       0xC0),
     0, true, MQTT_RC_PAYLOAD_FORMAT_INVALID},
    {"CONNECT trailing byte", B(0x10, 13, MQ, 4, 0x02, 0, 60, 0, 0, 0), 0, true,
     MAL},
    {"CONNECT will delay in connect props",
     B(0x10, 18, MQ, 5, 0x02, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 0), 0, true,
     PROTO},
    {"CONNECT receive maximum 0",
     B(0x10, 16, MQ, 5, 0x02, 0, 60, 3, 0x21, 0, 0, 0, 0), 0, true, PROTO},
    {"CONNECT maximum packet size 0",
     B(0x10, 18, MQ, 5, 0x02, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 0), 0, true,
     PROTO},
    {"CONNECT request problem info 2",
     B(0x10, 15, MQ, 5, 0x02, 0, 60, 2, 0x17, 2, 0, 0), 0, true, PROTO},
    {"CONNECT request response info 2",
     B(0x10, 15, MQ, 5, 0x02, 0, 60, 2, 0x19, 2, 0, 0), 0, true, PROTO},
    {"CONNECT auth data without method",
     B(0x10, 17, MQ, 5, 0x02, 0, 60, 4, 0x16, 0, 1, 'x', 0, 0), 0, true, PROTO},
    {"will props: topic alias not allowed",
     B(0x10, 22, MQ, 5, 0x06, 0, 60, 0, 0, 0, 3, 0x23, 0, 1, 0, 1, 't', 0, 0),
     0, true, PROTO},
    /* SUBSCRIBE / UNSUBSCRIBE */
    {"SUBSCRIBE no entries", B(0x82, 2, 0, 1), 4, true, PROTO},
    {"SUBSCRIBE v5 no entries", B(0x82, 3, 0, 1, 0), 5, true, PROTO},
    {"SUBSCRIBE packet id 0", B(0x82, 6, 0, 0, 0, 1, 'a', 0), 4, true, PROTO},
    {"SUBSCRIBE v3 options bit 2", B(0x82, 6, 0, 1, 0, 1, 'a', 0x04), 4, true,
     MAL},
    {"SUBSCRIBE v3 QoS 3", B(0x82, 6, 0, 1, 0, 1, 'a', 0x03), 4, true, MAL},
    {"SUBSCRIBE v5 options bit 6", B(0x82, 7, 0, 1, 0, 0, 1, 'a', 0x40), 5,
     true, MAL},
    {"SUBSCRIBE v5 QoS 3", B(0x82, 7, 0, 1, 0, 0, 1, 'a', 0x03), 5, true,
     PROTO},
    {"SUBSCRIBE v5 retain handling 3", B(0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30), 5,
     true, PROTO},
    {"SUBSCRIBE empty filter", B(0x82, 5, 0, 1, 0, 0, 0), 4, true, MAL},
    {"SUBSCRIBE options missing", B(0x82, 5, 0, 1, 0, 1, 'a'), 4, true, MAL},
    {"SUBSCRIBE filter bad UTF-8", B(0x82, 6, 0, 1, 0, 1, 0x80, 0), 4, true,
     MAL},
    {"SUBSCRIBE subscription id 0", B(0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0),
     5, true, PROTO},
    {"SUBSCRIBE subscription id repeated",
     B(0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0), 5, true, PROTO},
    {"SUBSCRIBE subscription id non-minimal",
     B(0x82, 10, 0, 1, 3, 0x0B, 0x81, 0x00, 0, 1, 'a', 0), 5, true, MAL},
    {"UNSUBSCRIBE no entries", B(0xA2, 2, 0, 1), 4, true, PROTO},
    {"UNSUBSCRIBE packet id 0", B(0xA2, 5, 0, 0, 0, 1, 'a'), 4, true, PROTO},
    {"UNSUBSCRIBE empty filter", B(0xA2, 4, 0, 1, 0, 0), 4, true, MAL},
    {"UNSUBSCRIBE subscription id", B(0xA2, 8, 0, 1, 2, 0x0B, 1, 0, 1, 'a'), 5,
     true, PROTO},
    /* direction and state */
    {"CONNACK from client", B(0x20, 2, 0, 0), 4, true, PROTO},
    {"SUBACK from client", B(0x90, 3, 0, 1, 0), 4, true, PROTO},
    {"UNSUBACK from client", B(0xB0, 2, 0, 1), 4, true, PROTO},
    {"PINGRESP from client", B(0xD0, 0), 4, true, PROTO},
    {"PINGREQ from server", B(0xC0, 0), 4, false, PROTO},
    {"SUBSCRIBE from server", B(0x82, 6, 0, 1, 0, 1, 'a', 0), 4, false, PROTO},
    {"UNSUBSCRIBE from server", B(0xA2, 5, 0, 1, 0, 1, 'a'), 4, false, PROTO},
    {"CONNECT from server", B(0x10, 12, MQ, 4, 0x02, 0, 60, 0, 0), 4, false,
     PROTO},
    {"first packet PINGREQ", B(0xC0, 0), 0, true, PROTO},
    {"first packet PUBLISH", B(0x30, 3, 0, 1, 't'), 0, true, PROTO},
    {"AUTH in 3.1.1", B(0xF0, 0), 4, true, MAL},
    /* v5 properties */
    {"unknown property 0x05", B(0x30, 6, 0, 1, 't', 2, 0x05, 0), 5, true, MAL},
    {"unknown property 0x80", B(0x30, 6, 0, 1, 't', 2, 0x80, 0), 5, true, MAL},
    {"unknown property 0x2B", B(0x30, 6, 0, 1, 't', 2, 0x2B, 0), 5, true, MAL},
    {"session expiry in PUBLISH", B(0x30, 9, 0, 1, 't', 5, 0x11, 0, 0, 0, 1), 5,
     true, PROTO},
    {"subscription id in PUBLISH from client",
     B(0x30, 6, 0, 1, 't', 2, 0x0B, 1), 5, true, PROTO},
    {"payload format repeated", B(0x30, 8, 0, 1, 't', 4, 1, 0, 1, 0), 5, true,
     PROTO},
    {"payload format 2", B(0x30, 6, 0, 1, 't', 2, 1, 2), 5, true, PROTO},
    {"topic alias repeated", B(0x30, 10, 0, 1, 't', 6, 0x23, 0, 1, 0x23, 0, 2),
     5, true, PROTO},
    {"response topic wildcard", B(0x30, 8, 0, 1, 't', 4, 0x08, 0, 1, '+'), 5,
     true, PROTO},
    {"response topic empty", B(0x30, 7, 0, 1, 't', 3, 0x08, 0, 0), 5, true,
     PROTO},
    {"property length past end", B(0x30, 5, 0, 1, 't', 5, 1), 5, true, MAL},
    {"property value truncated", B(0x30, 7, 0, 1, 't', 3, 0x02, 0, 0), 5, true,
     MAL},
    {"user property value truncated",
     B(0x30, 10, 0, 1, 't', 6, 0x26, 0, 1, 'k', 0, 1), 5, true, MAL},
    {"user property bad UTF-8",
     B(0x30, 11, 0, 1, 't', 7, 0x26, 0, 1, 'k', 0, 1, 0xFF), 5, true, MAL},
    {"CONNACK maximum QoS 2", B(0x20, 5, 0, 0, 2, 0x24, 2), 5, false, PROTO},
    {"CONNACK retain available 2", B(0x20, 5, 0, 0, 2, 0x25, 2), 5, false,
     PROTO},
    {"CONNACK wildcard available 2", B(0x20, 5, 0, 0, 2, 0x28, 2), 5, false,
     PROTO},
    {"CONNACK sub id available 2", B(0x20, 5, 0, 0, 2, 0x29, 2), 5, false,
     PROTO},
    {"CONNACK shared available 2", B(0x20, 5, 0, 0, 2, 0x2A, 2), 5, false,
     PROTO},
    {"CONNACK reserved flags", B(0x20, 2, 2, 0), 4, false, MAL},
    {"CONNACK v3 rc 6", B(0x20, 2, 0, 6), 4, false, PROTO},
    {"CONNACK session present with error", B(0x20, 3, 1, 0x87, 0), 5, false,
     PROTO},
    {"reason string in PUBLISH", B(0x30, 8, 0, 1, 't', 4, 0x1F, 0, 1, 'x'), 5,
     true, PROTO},
    {"AUTH data without method", B(0xF0, 6, 0x18, 4, 0x16, 0, 1, 'x'), 5, true,
     PROTO},
    {"AUTH bad reason code", B(0xF0, 1, 0x80), 5, true, PROTO},
    {"PUBACK bad reason code", B(0x40, 3, 0, 1, 0x05), 5, true, PROTO},
    {"PUBREL bad reason code", B(0x62, 3, 0, 1, 0x10), 5, true, PROTO},
    {"PUBACK packet id 0", B(0x40, 2, 0, 0), 4, true, PROTO},
    {"SUBACK bad code v3", B(0x90, 3, 0, 1, 0x87), 4, false, PROTO},
    {"SUBACK no codes", B(0x90, 2, 0, 1), 4, false, PROTO},
    {"DISCONNECT bad reason code", B(0xE0, 1, 0x01), 5, true, PROTO},
    /* trailing bytes */
    {"PUBACK v3 trailing", B(0x40, 3, 0, 1, 0), 4, true, MAL},
    {"PINGREQ trailing", B(0xC0, 1, 0), 4, true, MAL},
    {"DISCONNECT v3 trailing", B(0xE0, 1, 0), 4, true, MAL},
    {"UNSUBACK v3 trailing", B(0xB0, 3, 0, 1, 0), 4, false, MAL},
    {"CONNACK v3 trailing", B(0x20, 3, 0, 0, 0), 4, false, MAL},
    {"PUBACK v5 trailing after props", B(0x40, 5, 0, 1, 0, 0, 0), 5, true, MAL},
};

static void test_bad_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_tab); i++) {
        const struct bad *t = &bad_tab[i];
        uint8_t rc = 0xFF;
        const char *why = NULL;
        int rv;

        rv = decode_bad(t->b, t->n, t->version, t->from_client, &rc, &why);
        if (rv != MQTT_MALFORMED || rc != t->rc)
            print_error("bad: %s: rv %d rc 0x%02x (want 0x%02x) %s\n", t->name,
                        rv, rc, t->rc, why ? why : "-");
        assert_int_equal(rv, MQTT_MALFORMED);
        assert_int_equal(rc, t->rc);
        assert_non_null(why);
        assert_true(strlen(why) > 0);
    }
}

/* The session needs the level of an unsupported CONNECT to pick its answer. */
static void test_unsupported_level_reported(void **state)
{
    static const uint8_t p[] = {0x10, 12, MQ, 6, 0x02, 0, 60, 0, 0};
    struct mqtt_packet pkt;
    uint8_t rc;
    const char *why;

    (void)state;
    assert_int_equal(mqtt_decode(p, sizeof(p), 0, true, &pkt, &rc, &why),
                     MQTT_MALFORMED);
    assert_int_equal(rc, MQTT_RC_UNSUPPORTED_PROTOCOL);
    assert_int_equal(pkt.type, MQTT_CONNECT);
    assert_int_equal(pkt.u.connect.version, 6);
    /* NULL rc/why are accepted. */
    assert_int_equal(mqtt_decode(p, sizeof(p), 0, true, &pkt, NULL, NULL),
                     MQTT_MALFORMED);
}

static void test_topic_alias_zero_decoded(void **state)
{
    static const uint8_t p[] = {0x30, 7, 0, 1, 't', 3, 0x23, 0, 0};
    struct mqtt_packet pkt;

    (void)state;
    decode_ok(p, sizeof(p), 5, true, &pkt);
    assert_true(MQTT_HAS_PROP(&pkt.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
    assert_int_equal(pkt.u.publish.props.topic_alias, 0);
}

/* A long client id is accepted in 3.1 (Mosquitto does). */
static void test_v31_long_client_id(void **state)
{
    uint8_t p[64] = {0x10, 0,   0, 6, 'M', 'Q', 'I', 's',
                     'd',  'p', 3, 2, 0,   60,  0,   40};
    struct mqtt_packet pkt;

    (void)state;
    memset(p + 16, 'x', 40);
    p[1] = 14 + 40;
    decode_ok(p, 56, 0, true, &pkt);
    assert_int_equal(pkt.u.connect.client_id.len, 40);
}

/* ---- frame peek ------------------------------------------------------- */

struct peek_case {
    const uint8_t *b;
    size_t n;
    int rv;
    uint32_t rem;
};

static const struct peek_case peek_tab[] = {
    {B(0), MQTT_INCOMPLETE, 0},
    {B(0x30), MQTT_INCOMPLETE, 0},
    {B(0x30, 0x00), 2, 0},
    {B(0x30, 0x7F), 2, 127},
    {B(0x30, 0x80), MQTT_INCOMPLETE, 0},
    {B(0x30, 0x80, 0x01), 3, 128},
    {B(0x30, 0xFF, 0x7F), 3, 16383},
    {B(0x30, 0x80, 0x80, 0x01), 4, 16384},
    {B(0x30, 0xFF, 0xFF, 0x7F), 4, 2097151},
    {B(0x30, 0x80, 0x80, 0x80, 0x01), 5, 2097152},
    {B(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 5, 268435455},
    {B(0x30, 0xFF, 0xFF, 0xFF), MQTT_INCOMPLETE, 0},
    {B(0x30, 0xFF, 0xFF, 0xFF, 0xFF), MQTT_MALFORMED, 0},
    {B(0x30, 0x80, 0x00), MQTT_MALFORMED, 0},
    {B(0x30, 0x80, 0x80, 0x00), MQTT_MALFORMED, 0},
    {B(0x30, 0xFF, 0x80, 0x80, 0x00), MQTT_MALFORMED, 0},
};

static void test_frame_peek(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(peek_tab); i++) {
        const struct peek_case *t = &peek_tab[i];
        size_t n = i == 0 ? 0 : t->n; /* first case: empty buffer */
        struct guard g;
        uint8_t first = 0;
        uint32_t rem = 0;
        int rv;

        guard_init(&g, n);
        rv = mqtt_frame_peek(guard_put(&g, t->b, n), n, &first, &rem);
        guard_free(&g);
        assert_int_equal(rv, t->rv);
        if (rv > 0) {
            assert_int_equal(rem, t->rem);
            assert_int_equal(first, 0x30);
        }
    }
}

/* A header announcing more than is buffered is INCOMPLETE for decode. */
static void test_decode_incomplete_big(void **state)
{
    static const uint8_t p[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0, 1, 't'};
    struct mqtt_packet pkt;

    (void)state;
    assert_int_equal(mqtt_decode(p, sizeof(p), 4, true, &pkt, NULL, NULL),
                     MQTT_INCOMPLETE);
}

static void test_varint(void **state)
{
    static const uint32_t vals[] = {
        0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 12345678, 268435455};
    uint8_t buf[8];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        uint8_t hdr[8] = {0x30};
        uint32_t rem = 0;
        uint8_t first;
        int n = mqtt_varint_put(buf, vals[i]);

        assert_int_equal(n, mqtt_varint_size(vals[i]));
        memcpy(hdr + 1, buf, (size_t)n);
        assert_int_equal(mqtt_frame_peek(hdr, (size_t)n + 1, &first, &rem),
                         n + 1);
        assert_int_equal(rem, vals[i]);
    }
    assert_int_equal(mqtt_varint_size(127), 1);
    assert_int_equal(mqtt_varint_size(128), 2);
    assert_int_equal(mqtt_varint_size(268435455), 4);
}

/* ---- encoders -------------------------------------------------------- */

/*
 * Check the sizing contract: with cap 0 and cap n-1 nothing is written and
 * n is returned; with cap n the same n bytes come out.
 */
typedef size_t (*enc_fn)(uint8_t *out, size_t cap, const void *arg);

static size_t enc_checked(enc_fn f, const void *arg, uint8_t *out, size_t cap)
{
    uint8_t *tmp;
    size_t n = f(NULL, 0, arg);

    assert_true(n >= 2 && n <= cap);
    tmp = malloc(n + 16);
    assert_non_null(tmp);
    memset(tmp, 0xA5, n + 16);
    assert_int_equal(f(tmp, n - 1, arg), n);
    for (size_t i = 0; i < n + 16; i++)
        assert_int_equal(tmp[i], 0xA5);
    assert_int_equal(f(tmp, n, arg), n);
    for (size_t i = n; i < n + 16; i++)
        assert_int_equal(tmp[i], 0xA5);
    memcpy(out, tmp, n);
    free(tmp);
    return n;
}

/* A v5 property block with one of each type that PUBLISH allows. */
static uint32_t publish_props(uint8_t *buf, uint32_t cap)
{
    struct mqtt_pb pb;

    mqtt_pb_init(&pb, buf, cap);
    mqtt_pb_byte(&pb, MQTT_PROP_PAYLOAD_FORMAT, 0);
    mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY, 3600);
    mqtt_pb_str(&pb, MQTT_PROP_CONTENT_TYPE, "text/plain", 10);
    mqtt_pb_str(&pb, MQTT_PROP_RESPONSE_TOPIC, "re/sp", 5);
    mqtt_pb_bin(&pb, MQTT_PROP_CORRELATION_DATA, "\x00\x01\x02", 3);
    mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS, 3);
    mqtt_pb_user(&pb, "key", 3, "value", 5);
    mqtt_pb_user(&pb, "key", 3, "value2", 6);
    assert_false(pb.overflow);
    return pb.len;
}

struct connack_arg {
    uint8_t version;
    bool sp;
    uint8_t rc;
    const uint8_t *props;
    uint32_t plen;
};

static size_t enc_connack_w(uint8_t *out, size_t cap, const void *a_)
{
    const struct connack_arg *a = a_;

    return mqtt_enc_connack(out, cap, a->version, a->sp, a->rc, a->props,
                            a->plen);
}

static void test_rt_connack(void **state)
{
    uint8_t props[128], out[256];
    struct mqtt_pb pb;
    struct mqtt_packet pkt;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, 99);
    mqtt_pb_u16(&pb, MQTT_PROP_RECEIVE_MAXIMUM, 100);
    mqtt_pb_byte(&pb, MQTT_PROP_MAXIMUM_QOS, 1);
    mqtt_pb_byte(&pb, MQTT_PROP_RETAIN_AVAILABLE, 1);
    mqtt_pb_u32(&pb, MQTT_PROP_MAXIMUM_PACKET_SIZE, 1 << 20);
    mqtt_pb_str(&pb, MQTT_PROP_ASSIGNED_CLIENT_ID, "auto-1", 6);
    mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 10);
    mqtt_pb_str(&pb, MQTT_PROP_REASON_STRING, "ok", 2);
    mqtt_pb_byte(&pb, MQTT_PROP_WILDCARD_SUB_AVAILABLE, 1);
    mqtt_pb_byte(&pb, MQTT_PROP_SUB_ID_AVAILABLE, 0);
    mqtt_pb_byte(&pb, MQTT_PROP_SHARED_SUB_AVAILABLE, 1);
    mqtt_pb_u16(&pb, MQTT_PROP_SERVER_KEEP_ALIVE, 30);
    mqtt_pb_str(&pb, MQTT_PROP_RESPONSE_INFO, "ri", 2);
    mqtt_pb_str(&pb, MQTT_PROP_SERVER_REFERENCE, "srv", 3);
    mqtt_pb_str(&pb, MQTT_PROP_AUTH_METHOD, "m", 1);
    mqtt_pb_bin(&pb, MQTT_PROP_AUTH_DATA, "d", 1);
    mqtt_pb_user(&pb, "a", 1, "b", 1);
    assert_false(pb.overflow);

    for (uint8_t v = 3; v <= 5; v++) {
        struct connack_arg a = {v, true, 0, props, pb.len};
        size_t n = enc_checked(enc_connack_w, &a, out, sizeof(out));
        const struct mqtt_props *pr = &pkt.u.connack.props;

        decode_ok(out, n, v, false, &pkt);
        assert_int_equal(pkt.type, MQTT_CONNACK);
        assert_true(pkt.u.connack.session_present);
        if (v < 5) {
            assert_int_equal(n, 4);
            assert_int_equal(pr->present, 0);
            continue;
        }
        assert_int_equal(pr->raw_len, pb.len);
        assert_int_equal(pr->session_expiry, 99);
        assert_int_equal(pr->receive_maximum, 100);
        assert_int_equal(pr->maximum_qos, 1);
        assert_int_equal(pr->maximum_packet_size, 1 << 20);
        assert_true(str_is(pr->assigned_client_id, "auto-1"));
        assert_int_equal(pr->topic_alias_maximum, 10);
        assert_int_equal(pr->shared_sub_available, 1);
        assert_int_equal(pr->server_keep_alive, 30);
        assert_true(str_is(pr->server_reference, "srv"));
        assert_true(bin_is(pr->auth_data, "d", 1));
        assert_int_equal(pr->n_user_props, 1);

        /* refused, no props */
        a.sp = false;
        a.rc = MQTT_RC_NOT_AUTHORIZED;
        a.plen = 0;
        n = enc_checked(enc_connack_w, &a, out, sizeof(out));
        decode_ok(out, n, v, false, &pkt);
        assert_int_equal(pkt.u.connack.rc, MQTT_RC_NOT_AUTHORIZED);
    }
}

struct pub_arg {
    uint8_t version, qos;
    bool retain, dup;
    const char *topic;
    uint16_t pid;
    const uint8_t *props;
    uint32_t plen, payload_len;
};

static size_t enc_pub_w(uint8_t *out, size_t cap, const void *a_)
{
    const struct pub_arg *a = a_;

    return mqtt_enc_publish_hdr(out, cap, a->version, a->qos, a->retain, a->dup,
                                a->topic, (uint16_t)strlen(a->topic), a->pid,
                                a->props, a->plen, a->payload_len);
}

static void test_rt_publish(void **state)
{
    static const uint32_t payload_lens[] = {0, 5, 200, 20000};
    uint8_t props[256];
    uint32_t plen = publish_props(props, sizeof(props));
    uint8_t *out = malloc(32768);

    (void)state;
    assert_non_null(out);
    for (uint8_t v = 3; v <= 5; v++)
        for (uint8_t qos = 0; qos <= 2; qos++)
            for (size_t pl = 0; pl < ARRAY_LEN(payload_lens); pl++)
                for (int dir = 0; dir < 2; dir++) {
                    struct pub_arg a = {v,       qos,   qos & 1,
                                        qos > 0, "a/b", qos ? 77 : 0,
                                        props,   plen,  payload_lens[pl]};
                    struct mqtt_packet pkt;
                    const struct mqtt_publish *m = &pkt.u.publish;
                    size_t n = enc_checked(enc_pub_w, &a, out, 32768);

                    memset(out + n, 'z', payload_lens[pl]);
                    n += payload_lens[pl];
                    if (payload_lens[pl] < 1000)
                        decode_ok(out, n, v, dir == 0, &pkt);
                    else
                        assert_int_equal(
                            mqtt_decode(out, n, v, dir == 0, &pkt, NULL, NULL),
                            (int)n);
                    assert_int_equal(pkt.type, MQTT_PUBLISH);
                    assert_int_equal(m->qos, qos);
                    assert_int_equal(m->retain, qos & 1);
                    assert_int_equal(m->dup, qos > 0);
                    assert_true(str_is(m->topic, "a/b"));
                    assert_int_equal(m->packet_id, qos ? 77 : 0);
                    assert_int_equal(m->payload_len, payload_lens[pl]);
                    if (v == 5) {
                        assert_int_equal(m->props.raw_len, plen);
                        assert_memory_equal(m->props.raw, props, plen);
                        assert_int_equal(m->props.message_expiry, 3600);
                        assert_true(
                            str_is(m->props.content_type, "text/plain"));
                        assert_true(str_is(m->props.response_topic, "re/sp"));
                        assert_true(bin_is(m->props.correlation_data,
                                           "\x00\x01\x02", 3));
                        assert_int_equal(m->props.topic_alias, 3);
                        assert_int_equal(m->props.n_user_props, 2);
                    } else {
                        assert_int_equal(m->props.present, 0);
                    }
                }
    free(out);
}

struct ack_arg {
    uint8_t version, type;
    uint16_t pid;
    uint8_t rc;
    const uint8_t *props;
    uint32_t plen;
};

static size_t enc_ack_w(uint8_t *out, size_t cap, const void *a_)
{
    const struct ack_arg *a = a_;

    return mqtt_enc_ack(out, cap, a->version, a->type, a->pid, a->rc, a->props,
                        a->plen);
}

static void test_rt_ack(void **state)
{
    uint8_t props[64], out[128];
    struct mqtt_pb pb;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_str(&pb, MQTT_PROP_REASON_STRING, "why", 3);
    mqtt_pb_user(&pb, "k", 1, "v", 1);
    for (uint8_t v = 3; v <= 5; v++)
        for (uint8_t type = MQTT_PUBACK; type <= MQTT_PUBCOMP; type++)
            for (int variant = 0; variant < 3; variant++)
                for (int dir = 0; dir < 2; dir++) {
                    bool rel = type == MQTT_PUBREL || type == MQTT_PUBCOMP;
                    uint8_t rc = variant == 1 ? (rel ? 0x92 : 0x10) : 0;
                    struct ack_arg a = {v,  type,  0x1234,
                                        rc, props, variant == 2 ? pb.len : 0};
                    struct mqtt_packet pkt;
                    size_t n = enc_checked(enc_ack_w, &a, out, sizeof(out));

                    assert_int_equal(out[0] & 0x0F,
                                     type == MQTT_PUBREL ? 2 : 0);
                    if (v < 5 || variant == 0)
                        assert_int_equal(n, 4);
                    if (v == 5 && variant == 1)
                        assert_int_equal(n, 5);
                    decode_ok(out, n, v, dir == 0, &pkt);
                    assert_int_equal(pkt.type, type);
                    assert_int_equal(pkt.u.ack.packet_id, 0x1234);
                    assert_int_equal(pkt.u.ack.rc, v == 5 ? rc : 0);
                    if (v == 5 && variant == 2)
                        assert_true(
                            str_is(pkt.u.ack.props.reason_string, "why"));
                }
}

struct suback_arg {
    uint8_t version, type;
    const uint8_t *codes;
    uint32_t count;
    const uint8_t *props;
    uint32_t plen;
};

static size_t enc_suback_w(uint8_t *out, size_t cap, const void *a_)
{
    const struct suback_arg *a = a_;

    return mqtt_enc_suback(out, cap, a->version, a->type, 99, a->codes,
                           a->count, a->props, a->plen);
}

static void test_rt_suback(void **state)
{
    static const uint8_t sub_codes[] = {0, 1, 2, 0x80};
    static const uint8_t unsub_codes[] = {0, 0x11, 0x87};
    uint8_t props[32], out[128];
    struct mqtt_pb pb;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_user(&pb, "x", 1, "y", 1);
    for (uint8_t v = 3; v <= 5; v++)
        for (int u = 0; u < 2; u++) {
            struct suback_arg a = {v,
                                   u ? MQTT_UNSUBACK : MQTT_SUBACK,
                                   u ? unsub_codes : sub_codes,
                                   u ? 3 : 4,
                                   props,
                                   pb.len};
            struct mqtt_packet pkt;
            size_t n = enc_checked(enc_suback_w, &a, out, sizeof(out));

            decode_ok(out, n, v, false, &pkt);
            assert_int_equal(pkt.type, a.type);
            assert_int_equal(pkt.u.suback.packet_id, 99);
            if (u && v < 5) {
                assert_int_equal(n, 4);
                assert_int_equal(pkt.u.suback.count, 0);
                continue;
            }
            assert_int_equal(pkt.u.suback.count, a.count);
            assert_memory_equal(pkt.u.suback.codes, a.codes, a.count);
            assert_int_equal(pkt.u.suback.props.n_user_props, v == 5);
        }
}

static void test_rt_simple(void **state)
{
    uint8_t out[4] = {0xAA, 0xAA, 0xAA, 0xAA};
    struct mqtt_packet pkt;

    (void)state;
    assert_int_equal(mqtt_enc_simple(out, 1, MQTT_PINGREQ), 2);
    assert_int_equal(out[0], 0xAA);
    assert_int_equal(mqtt_enc_simple(out, 4, MQTT_PINGREQ), 2);
    decode_ok(out, 2, 4, true, &pkt);
    assert_int_equal(pkt.type, MQTT_PINGREQ);
    assert_int_equal(mqtt_enc_simple(out, 4, MQTT_PINGRESP), 2);
    decode_ok(out, 2, 5, false, &pkt);
    assert_int_equal(pkt.type, MQTT_PINGRESP);
    assert_int_equal(out[2], 0xAA);
}

struct disc_arg {
    uint8_t version, type, rc;
    const uint8_t *props;
    uint32_t plen;
};

static size_t enc_disc_w(uint8_t *out, size_t cap, const void *a_)
{
    const struct disc_arg *a = a_;

    return mqtt_enc_disconnect(out, cap, a->version, a->type, a->rc, a->props,
                               a->plen);
}

static void test_rt_disconnect(void **state)
{
    uint8_t props[64], aprops[64], out[128];
    struct mqtt_pb pb, apb;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, 0);
    mqtt_pb_str(&pb, MQTT_PROP_REASON_STRING, "bye", 3);
    mqtt_pb_init(&apb, aprops, sizeof(aprops));
    mqtt_pb_str(&apb, MQTT_PROP_AUTH_METHOD, "SCRAM-SHA-1", 11);
    mqtt_pb_bin(&apb, MQTT_PROP_AUTH_DATA, "\x00\xff", 2);
    for (uint8_t v = 3; v <= 5; v++)
        for (int variant = 0; variant < 3; variant++)
            for (int dir = 0; dir < 2; dir++) {
                struct disc_arg a = {v, MQTT_DISCONNECT,
                                     variant ? MQTT_RC_DISCONNECT_WITH_WILL : 0,
                                     props, variant == 2 ? pb.len : 0};
                struct mqtt_packet pkt;
                size_t n = enc_checked(enc_disc_w, &a, out, sizeof(out));

                if (v < 5 || variant == 0)
                    assert_int_equal(n, 2);
                decode_ok(out, n, v, dir == 0, &pkt);
                assert_int_equal(pkt.type, MQTT_DISCONNECT);
                assert_int_equal(pkt.u.disconnect.rc, v == 5 ? a.rc : 0);
                if (v == 5 && variant == 2)
                    assert_true(
                        str_is(pkt.u.disconnect.props.reason_string, "bye"));
                if (v < 5)
                    continue;
                /* AUTH */
                a.type = MQTT_AUTH;
                a.rc = variant ? MQTT_RC_CONTINUE_AUTH : 0;
                a.props = aprops;
                a.plen = variant == 2 ? apb.len : 0;
                n = enc_checked(enc_disc_w, &a, out, sizeof(out));
                decode_ok(out, n, v, dir == 0, &pkt);
                assert_int_equal(pkt.type, MQTT_AUTH);
                assert_int_equal(pkt.u.disconnect.rc, a.rc);
                if (variant == 2)
                    assert_true(str_is(pkt.u.disconnect.props.auth_method,
                                       "SCRAM-SHA-1"));
            }
}

static size_t enc_connect_w(uint8_t *out, size_t cap, const void *a)
{
    return mqtt_enc_connect(out, cap, a);
}

/* Mosquitto's try_private: protocol level 0x83/0x84 is a bridge (3.1,
 * 3.1.1); the encoder sets the bit for c.bridge; 0x85 is refused. */
static void test_connect_bridge_bit(void **state)
{
    uint8_t out[128], rc = 0;
    const char *why = NULL;
    struct mqtt_packet pkt;
    size_t n;

    (void)state;
    for (uint8_t v = 3; v <= 5; v++) {
        struct mqtt_connect c = {0};
        c.version = v;
        c.bridge = true;
        c.clean_start = true;
        c.client_id = (struct mqtt_str){"b", 1};
        n = mqtt_enc_connect(out, sizeof(out), &c);
        assert_int_equal(out[v == 3 ? 10 : 8], v == 5 ? 5 : (v | 0x80));
        decode_ok(out, n, 0, true, &pkt);
        assert_int_equal(pkt.u.connect.version, v);
        assert_int_equal(pkt.u.connect.bridge, v != 5);
        if (v != 5)
            continue;
        out[8] = 0x85; /* v5 has no bridge bit */
        assert_int_equal(decode_bad(out, n, 0, true, &rc, &why),
                         MQTT_MALFORMED);
        assert_int_equal(rc, MQTT_RC_UNSUPPORTED_PROTOCOL);
    }
}

static void test_rt_connect(void **state)
{
    uint8_t props[128], wprops[128], out[512];
    struct mqtt_pb pb, wpb;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, 300);
    mqtt_pb_u16(&pb, MQTT_PROP_RECEIVE_MAXIMUM, 10);
    mqtt_pb_u32(&pb, MQTT_PROP_MAXIMUM_PACKET_SIZE, 65536);
    mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 5);
    mqtt_pb_byte(&pb, MQTT_PROP_REQUEST_RESPONSE_INFO, 1);
    mqtt_pb_byte(&pb, MQTT_PROP_REQUEST_PROBLEM_INFO, 0);
    mqtt_pb_str(&pb, MQTT_PROP_AUTH_METHOD, "PLAIN", 5);
    mqtt_pb_bin(&pb, MQTT_PROP_AUTH_DATA, "xy", 2);
    mqtt_pb_user(&pb, "u", 1, "p", 1);
    mqtt_pb_init(&wpb, wprops, sizeof(wprops));
    mqtt_pb_u32(&wpb, MQTT_PROP_WILL_DELAY, 10);
    mqtt_pb_byte(&wpb, MQTT_PROP_PAYLOAD_FORMAT, 1);
    mqtt_pb_u32(&wpb, MQTT_PROP_MESSAGE_EXPIRY, 20);
    mqtt_pb_str(&wpb, MQTT_PROP_CONTENT_TYPE, "json", 4);
    mqtt_pb_str(&wpb, MQTT_PROP_RESPONSE_TOPIC, "r", 1);
    mqtt_pb_bin(&wpb, MQTT_PROP_CORRELATION_DATA, "c", 1);
    mqtt_pb_user(&wpb, "w", 1, "u", 1);
    assert_false(pb.overflow || wpb.overflow);

    for (uint8_t v = 3; v <= 5; v++)
        for (int variant = 0; variant < 4; variant++) {
            struct mqtt_connect c = {0}, *d;
            struct mqtt_packet pkt;
            size_t n;

            c.version = v;
            c.clean_start = variant & 1;
            c.keepalive = (uint16_t)(variant * 1000);
            c.client_id = (struct mqtt_str){"client-\xc3\xa9", 9};
            if (variant >= 1) {
                c.has_username = true;
                c.username = (struct mqtt_str){"user", 4};
                c.has_password = true;
                c.password = (struct mqtt_bin){(const uint8_t *)"\0pw", 3};
            }
            if (variant >= 2) {
                c.has_will = true;
                c.will_qos = 2;
                c.will_retain = true;
                c.will_topic = (struct mqtt_str){"will/topic", 10};
                c.will_payload = (struct mqtt_bin){(const uint8_t *)"{}", 2};
            }
            if (variant == 3 && v == 5) {
                c.props.raw = props;
                c.props.raw_len = pb.len;
                c.will_props.raw = wprops;
                c.will_props.raw_len = wpb.len;
            }
            if (variant == 0)
                c.client_id.len = 0;
            n = enc_checked(enc_connect_w, &c, out, sizeof(out));
            decode_ok(out, n, 0, true, &pkt);
            decode_ok(out, n, v, true, &pkt);
            assert_int_equal(pkt.type, MQTT_CONNECT);
            d = &pkt.u.connect;
            assert_int_equal(d->version, v);
            assert_int_equal(d->clean_start, c.clean_start);
            assert_int_equal(d->keepalive, c.keepalive);
            assert_int_equal(d->client_id.len, c.client_id.len);
            assert_memory_equal(d->client_id.p, c.client_id.p, c.client_id.len);
            assert_int_equal(d->has_username, c.has_username);
            assert_int_equal(d->has_password, c.has_password);
            assert_int_equal(d->has_will, c.has_will);
            if (c.has_username) {
                assert_true(str_is(d->username, "user"));
                assert_true(bin_is(d->password, "\0pw", 3));
            }
            if (c.has_will) {
                assert_int_equal(d->will_qos, 2);
                assert_true(d->will_retain);
                assert_true(str_is(d->will_topic, "will/topic"));
                assert_true(bin_is(d->will_payload, "{}", 2));
            }
            assert_int_equal(d->props.raw_len, c.props.raw_len);
            assert_int_equal(d->will_props.raw_len, c.will_props.raw_len);
            if (c.props.raw_len) {
                assert_int_equal(d->props.session_expiry, 300);
                assert_int_equal(d->props.maximum_packet_size, 65536);
                assert_true(str_is(d->props.auth_method, "PLAIN"));
                assert_int_equal(d->will_props.will_delay, 10);
                assert_int_equal(d->will_props.payload_format, 1);
                assert_true(str_is(d->will_props.content_type, "json"));
            }
        }
}

struct sub_arg {
    uint8_t version;
    bool unsub;
    const struct mqtt_str *filters;
    const struct mqtt_sub_opts *opts;
    uint32_t count;
    const uint8_t *props;
    uint32_t plen;
};

static size_t enc_sub_w(uint8_t *out, size_t cap, const void *a_)
{
    const struct sub_arg *a = a_;

    if (a->unsub)
        return mqtt_enc_unsubscribe(out, cap, a->version, 4242, a->filters,
                                    a->count, a->props, a->plen);
    return mqtt_enc_subscribe(out, cap, a->version, 4242, a->filters, a->opts,
                              a->count, a->props, a->plen);
}

static void test_rt_subscribe(void **state)
{
    static const struct mqtt_str filters[] = {
        {"a/+/c", 5}, {"#", 1}, {"$share/g/x", 10}, {"d/\xe2\x82\xac", 5}};
    static const struct mqtt_sub_opts opts[] = {
        {0, false, false, 0},
        {1, true, false, 1},
        {2, false, true, 2},
        {1, true, true, 0},
    };
    uint8_t props[32], uprops[32], out[256];
    struct mqtt_pb pb, upb;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_varint(&pb, MQTT_PROP_SUBSCRIPTION_ID, 300000);
    mqtt_pb_user(&pb, "s", 1, "t", 1);
    mqtt_pb_init(&upb, uprops, sizeof(uprops));
    mqtt_pb_user(&upb, "s", 1, "t", 1);
    for (uint8_t v = 3; v <= 5; v++)
        for (int u = 0; u < 2; u++) {
            struct sub_arg a = {v,
                                u,
                                filters,
                                opts,
                                4,
                                u ? uprops : props,
                                u ? upb.len : pb.len};
            struct mqtt_packet pkt;
            const struct mqtt_subscribe *s = &pkt.u.subscribe;
            struct mqtt_str f;
            struct mqtt_sub_opts o;
            uint32_t off = 0, i = 0;
            size_t n = enc_checked(enc_sub_w, &a, out, sizeof(out));

            assert_int_equal(out[0] & 0x0F, 2);
            decode_ok(out, n, v, true, &pkt);
            assert_int_equal(pkt.type, u ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE);
            assert_int_equal(s->packet_id, 4242);
            assert_int_equal(s->count, 4);
            if (v == 5 && !u) {
                assert_int_equal(s->props.subscription_id, 300000);
                assert_int_equal(s->props.n_subscription_ids, 1);
            }
            if (v == 5)
                assert_int_equal(s->props.n_user_props, 1);
            while (u ? mqtt_unsub_next(s, &off, &f)
                     : mqtt_sub_next(s, &off, &f, &o)) {
                assert_int_equal(f.len, filters[i].len);
                assert_memory_equal(f.p, filters[i].p, f.len);
                if (!u) {
                    assert_int_equal(o.qos, opts[i].qos);
                    if (v == 5) {
                        assert_int_equal(o.no_local, opts[i].no_local);
                        assert_int_equal(o.retain_as_published,
                                         opts[i].retain_as_published);
                        assert_int_equal(o.retain_handling,
                                         opts[i].retain_handling);
                    } else {
                        assert_false(o.no_local || o.retain_as_published);
                    }
                }
                i++;
            }
            assert_int_equal(i, 4);
        }
}

static void test_pb_overflow(void **state)
{
    uint8_t buf[8];
    struct mqtt_pb pb;

    (void)state;
    mqtt_pb_init(&pb, buf, sizeof(buf));
    mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY, 1);
    assert_false(pb.overflow);
    assert_int_equal(pb.len, 5);
    mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY, 1);
    assert_true(pb.overflow);
    assert_true(pb.len <= pb.cap);
    mqtt_pb_byte(&pb, MQTT_PROP_PAYLOAD_FORMAT, 1); /* fits but too late */
    assert_true(pb.overflow);
    assert_int_equal(pb.len, 5);

    mqtt_pb_init(&pb, buf, sizeof(buf));
    mqtt_pb_raw(&pb, (const uint8_t *)"\x01\x01", 2);
    mqtt_pb_varint(&pb, MQTT_PROP_SUBSCRIPTION_ID, 268435455);
    assert_false(pb.overflow);
    assert_int_equal(pb.len, 7);
    mqtt_pb_user(&pb, "k", 1, "v", 1);
    assert_true(pb.overflow);
}

static void test_prop_next_end(void **state)
{
    struct mqtt_prop pr;
    uint32_t off = 0;
    /* A block that was never validated: truncated u32. */
    static const uint8_t bad[] = {0x01, 0x01, 0x02, 0x00};

    (void)state;
    assert_int_equal(mqtt_prop_next(NULL, 0, &off, &pr), 0);
    assert_int_equal(mqtt_prop_next(bad, sizeof(bad), &off, &pr), 1);
    assert_int_equal(pr.id, MQTT_PROP_PAYLOAD_FORMAT);
    assert_int_equal(pr.u32, 1);
    assert_int_equal(mqtt_prop_next(bad, sizeof(bad), &off, &pr), 0);
    assert_int_equal(mqtt_prop_next(bad, sizeof(bad), &off, &pr), 0);
}

/* 50,000 user properties decode (the walk is linear). */
static void test_many_user_props(void **state)
{
    const uint32_t n_props = 50000;
    uint32_t cap = n_props * 9, off = 0, seen = 0;
    uint8_t *props = malloc(cap), *pkt_buf;
    struct mqtt_pb pb;
    struct mqtt_packet pkt;
    struct mqtt_prop pr;
    size_t n, hdr;
    int rv;

    (void)state;
    assert_non_null(props);
    mqtt_pb_init(&pb, props, cap);
    for (uint32_t i = 0; i < n_props; i++)
        mqtt_pb_user(&pb, "ab", 2, "cd", 2);
    assert_false(pb.overflow);
    hdr = mqtt_enc_publish_hdr(NULL, 0, 5, 1, false, false, "t", 1, 1, props,
                               pb.len, 3);
    pkt_buf = malloc(hdr + 3);
    assert_non_null(pkt_buf);
    assert_int_equal(mqtt_enc_publish_hdr(pkt_buf, hdr, 5, 1, false, false, "t",
                                          1, 1, props, pb.len, 3),
                     hdr);
    memcpy(pkt_buf + hdr, "xyz", 3);
    n = hdr + 3;
    rv = mqtt_decode(pkt_buf, n, 5, true, &pkt, NULL, NULL);
    assert_int_equal(rv, (int)n);
    assert_int_equal(pkt.u.publish.props.n_user_props, n_props);
    while (mqtt_prop_next(pkt.u.publish.props.raw, pkt.u.publish.props.raw_len,
                          &off, &pr)) {
        assert_int_equal(pr.id, MQTT_PROP_USER_PROPERTY);
        seen++;
    }
    assert_int_equal(seen, n_props);
    free(pkt_buf);
    free(props);
}

/* A PUBLISH's forwarded properties: expiry only on request, no alias or
 * subscription identifier, the rest in order; a short buffer gives 0. */
static void test_props_forward(void **state)
{
    uint8_t props[128], pkt_buf[256], out[128];
    static const uint8_t want[] = {
        0x01, 0x01,                              /* payload format 1 */
        0x03, 0x00, 0x02, 't',  'j',             /* content type "tj" */
        0x09, 0x00, 0x01, 0x07,                  /* correlation data */
        0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v', /* user property */
    };
    struct mqtt_pb pb;
    struct mqtt_packet pkt;
    const struct mqtt_props *pp;
    size_t hdr;
    uint32_t n;

    (void)state;
    mqtt_pb_init(&pb, props, sizeof(props));
    mqtt_pb_byte(&pb, MQTT_PROP_PAYLOAD_FORMAT, 1);
    mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY, 60);
    mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS, 3);
    mqtt_pb_str(&pb, MQTT_PROP_CONTENT_TYPE, "tj", 2);
    mqtt_pb_bin(&pb, MQTT_PROP_CORRELATION_DATA, "\x07", 1);
    mqtt_pb_user(&pb, "k", 1, "v", 1);
    assert_false(pb.overflow);
    hdr = mqtt_enc_publish_hdr(pkt_buf, sizeof(pkt_buf), 5, 1, false, false,
                               "t", 1, 1, props, pb.len, 0);
    assert_true(hdr > 0);
    assert_int_equal(mqtt_decode(pkt_buf, hdr, 5, true, &pkt, NULL, NULL),
                     (int)hdr);
    pp = &pkt.u.publish.props;

    n = mqtt_props_forward(pp, false, out, sizeof(out));
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));

    n = mqtt_props_forward(pp, true, out, sizeof(out));
    assert_int_equal(n, sizeof(want) + 5);
    assert_memory_equal(out, want, 2);
    assert_memory_equal(out + 2, "\x02\x00\x00\x00\x3c", 5);
    assert_memory_equal(out + 7, want + 2, sizeof(want) - 2);

    assert_int_equal(mqtt_props_forward(pp, true, out, 10), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mqtt_type_name(MQTT_PUBLISH), "PUBLISH");
    assert_string_equal(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
    assert_string_equal(mqtt_type_name(MQTT_AUTH), "AUTH");
    assert_string_equal(mqtt_type_name(0), "RESERVED");
    assert_string_equal(mqtt_type_name(200), "RESERVED");
    assert_string_equal(mqtt_rc_name(MQTT_RC_NOT_AUTHORIZED), "Not authorized");
    assert_string_equal(mqtt_rc_name(MQTT_RC_SUCCESS), "Success");
    assert_string_equal(mqtt_rc_name(0x03), "Unknown reason code");
    for (unsigned i = 0; i < 256; i++)
        assert_non_null(mqtt_rc_name((uint8_t)i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_table),
        cmocka_unit_test(test_bad_table),
        cmocka_unit_test(test_unsupported_level_reported),
        cmocka_unit_test(test_topic_alias_zero_decoded),
        cmocka_unit_test(test_v31_long_client_id),
        cmocka_unit_test(test_frame_peek),
        cmocka_unit_test(test_decode_incomplete_big),
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_rt_connack),
        cmocka_unit_test(test_rt_publish),
        cmocka_unit_test(test_rt_ack),
        cmocka_unit_test(test_rt_suback),
        cmocka_unit_test(test_rt_simple),
        cmocka_unit_test(test_rt_disconnect),
        cmocka_unit_test(test_rt_connect),
        cmocka_unit_test(test_connect_bridge_bit),
        cmocka_unit_test(test_rt_subscribe),
        cmocka_unit_test(test_pb_overflow),
        cmocka_unit_test(test_prop_next_end),
        cmocka_unit_test(test_many_user_props),
        cmocka_unit_test(test_props_forward),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
