/*
 * fuzz_codec.c - libFuzzer harness for the MQTT codec.
 *
 * Input: byte 0 selects the connection state, the rest is the wire data.
 *   bits 0-1: protocol level 0 (before CONNECT), 3, 4 or 5
 *   bit 2:    0 = decode as the server (from_client), 1 = as a client
 *
 * The data is copied to an exact-size heap buffer so ASan flags any
 * over-read. When a packet decodes, the harness checks framing consistency,
 * that every strict prefix is MQTT_INCOMPLETE-compatible, walks properties
 * and subscription entries, and re-encodes the packet with the matching
 * encoder: most packets must come out byte-identical (the decoder rejects
 * non-minimal varints, so there is one encoding); acks, DISCONNECT and AUTH
 * may have used a longer form and are compared field by field instead.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude
 *        src/mqtt_codec.c src/util.c tests/fuzz/fuzz_codec.c -o fuzz_codec
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #x);                                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Walk a validated property block; the counts must match the decoder's. */
static void walk_props(const struct mqtt_props *pr)
{
    struct mqtt_prop p;
    uint32_t off = 0, users = 0, subids = 0, prev = 0;

    while (mqtt_prop_next(pr->raw, pr->raw_len, &off, &p)) {
        CHECK(off > prev && off <= pr->raw_len);
        prev = off;
        CHECK((pr->present >> p.id) & 1u);
        if (p.id == MQTT_PROP_USER_PROPERTY)
            users++;
        if (p.id == MQTT_PROP_SUBSCRIPTION_ID) {
            if (subids == 0)
                CHECK(p.u32 == pr->subscription_id);
            subids++;
        }
    }
    CHECK(prev == pr->raw_len);
    CHECK(users == pr->n_user_props);
    CHECK(subids == pr->n_subscription_ids);
}

/* Encode with a sizing call first; the written size must match. */
#define ENCODE(out, cap, call_with_out, call_sizing)                           \
    ({                                                                         \
        size_t need_ = (call_sizing);                                          \
        CHECK(need_ <= (cap));                                                 \
        size_t got_ = (call_with_out);                                         \
        CHECK(got_ == need_);                                                  \
        got_;                                                                  \
    })

static void same_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    CHECK(an == bn);
    CHECK(memcmp(a, b, an) == 0);
}

static void reencode(const uint8_t *in, size_t n, uint8_t version,
                     bool from_client, const struct mqtt_packet *pkt)
{
    size_t cap = n + 16, m;
    uint8_t *out = malloc(cap);
    struct mqtt_packet again;

    CHECK(out != NULL);
    switch (pkt->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *c = &pkt->u.connect;

        walk_props(&c->props);
        walk_props(&c->will_props);
        m = ENCODE(out, cap, mqtt_enc_connect(out, cap, c),
                   mqtt_enc_connect(NULL, 0, c));
        same_bytes(out, m, in, n);
        break;
    }
    case MQTT_CONNACK: {
        const struct mqtt_connack *c = &pkt->u.connack;

        walk_props(&c->props);
        m = ENCODE(out, cap,
                   mqtt_enc_connack(out, cap, version, c->session_present,
                                    c->rc, c->props.raw, c->props.raw_len),
                   mqtt_enc_connack(NULL, 0, version, c->session_present, c->rc,
                                    c->props.raw, c->props.raw_len));
        same_bytes(out, m, in, n);
        break;
    }
    case MQTT_PUBLISH: {
        const struct mqtt_publish *p = &pkt->u.publish;

        walk_props(&p->props);
        m = ENCODE(out, cap,
                   mqtt_enc_publish_hdr(out, cap, version, p->qos, p->retain,
                                        p->dup, p->topic.p, p->topic.len,
                                        p->packet_id, p->props.raw,
                                        p->props.raw_len, p->payload_len),
                   mqtt_enc_publish_hdr(NULL, 0, version, p->qos, p->retain,
                                        p->dup, p->topic.p, p->topic.len,
                                        p->packet_id, p->props.raw,
                                        p->props.raw_len, p->payload_len));
        CHECK(m + p->payload_len <= cap);
        if (p->payload_len > 0)
            memcpy(out + m, p->payload, p->payload_len);
        same_bytes(out, m + p->payload_len, in, n);
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        const struct mqtt_ack *a = &pkt->u.ack;

        walk_props(&a->props);
        m = ENCODE(out, cap,
                   mqtt_enc_ack(out, cap, version, pkt->type, a->packet_id,
                                a->rc, a->props.raw, a->props.raw_len),
                   mqtt_enc_ack(NULL, 0, version, pkt->type, a->packet_id,
                                a->rc, a->props.raw, a->props.raw_len));
        CHECK(m <= n);
        CHECK(mqtt_decode(out, m, version, from_client, &again, NULL, NULL) ==
              (int)m);
        CHECK(again.type == pkt->type);
        CHECK(again.u.ack.packet_id == a->packet_id);
        CHECK(again.u.ack.rc == a->rc);
        CHECK(again.u.ack.props.raw_len == a->props.raw_len);
        break;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        const struct mqtt_subscribe *s = &pkt->u.subscribe;
        bool unsub = pkt->type == MQTT_UNSUBSCRIBE;
        struct mqtt_str *f = calloc(s->count + 1, sizeof(*f));
        struct mqtt_sub_opts *o = calloc(s->count + 1, sizeof(*o));
        uint32_t off = 0, i = 0;

        CHECK(f != NULL && o != NULL);
        walk_props(&s->props);
        while (unsub ? mqtt_unsub_next(s, &off, &f[i])
                     : mqtt_sub_next(s, &off, &f[i], &o[i])) {
            CHECK(i < s->count);
            CHECK(f[i].len > 0);
            CHECK(o[i].qos <= 2 && o[i].retain_handling <= 2);
            i++;
        }
        CHECK(i == s->count && off == s->entries_len);
        if (unsub)
            m = ENCODE(out, cap,
                       mqtt_enc_unsubscribe(out, cap, version, s->packet_id, f,
                                            i, s->props.raw, s->props.raw_len),
                       mqtt_enc_unsubscribe(NULL, 0, version, s->packet_id, f,
                                            i, s->props.raw, s->props.raw_len));
        else
            m = ENCODE(out, cap,
                       mqtt_enc_subscribe(out, cap, version, s->packet_id, f, o,
                                          i, s->props.raw, s->props.raw_len),
                       mqtt_enc_subscribe(NULL, 0, version, s->packet_id, f, o,
                                          i, s->props.raw, s->props.raw_len));
        same_bytes(out, m, in, n);
        free(f);
        free(o);
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: {
        const struct mqtt_suback *s = &pkt->u.suback;

        walk_props(&s->props);
        m = ENCODE(
            out, cap,
            mqtt_enc_suback(out, cap, version, pkt->type, s->packet_id,
                            s->codes, s->count, s->props.raw, s->props.raw_len),
            mqtt_enc_suback(NULL, 0, version, pkt->type, s->packet_id, s->codes,
                            s->count, s->props.raw, s->props.raw_len));
        same_bytes(out, m, in, n);
        break;
    }
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        m = ENCODE(out, cap, mqtt_enc_simple(out, cap, pkt->type),
                   mqtt_enc_simple(NULL, 0, pkt->type));
        same_bytes(out, m, in, n);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: {
        const struct mqtt_disconnect *d = &pkt->u.disconnect;

        walk_props(&d->props);
        m = ENCODE(out, cap,
                   mqtt_enc_disconnect(out, cap, version, pkt->type, d->rc,
                                       d->props.raw, d->props.raw_len),
                   mqtt_enc_disconnect(NULL, 0, version, pkt->type, d->rc,
                                       d->props.raw, d->props.raw_len));
        CHECK(m <= n);
        CHECK(mqtt_decode(out, m, version, from_client, &again, NULL, NULL) ==
              (int)m);
        CHECK(again.type == pkt->type);
        CHECK(again.u.disconnect.rc == d->rc);
        CHECK(again.u.disconnect.props.raw_len == d->props.raw_len);
        break;
    }
    default:
        CHECK(!"decoded an unknown packet type");
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t versions[4] = {0, MQTT_V31, MQTT_V311, MQTT_V5};
    struct mqtt_packet pkt;
    uint8_t version, first, rc = 0;
    const char *why = NULL;
    bool from_client;
    uint32_t rem;
    uint8_t *buf;
    int hl, rv;

    if (size < 1)
        return 0;
    version = versions[data[0] & 3];
    from_client = !(data[0] & 4);
    data++;
    size--;
    buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);

    hl = mqtt_frame_peek(buf, size, &first, &rem);
    rv = mqtt_decode(buf, size, version, from_client, &pkt, &rc, &why);
    if (hl == MQTT_MALFORMED) {
        CHECK(rv == MQTT_MALFORMED);
    } else if (hl == MQTT_INCOMPLETE) {
        CHECK(rv == MQTT_INCOMPLETE);
    } else {
        CHECK(hl >= 2 && hl <= 5 && first == buf[0]);
        CHECK(rem <= MQTT_MAX_REMAINING);
        if (rv == MQTT_INCOMPLETE)
            CHECK((size_t)hl + rem > size);
    }
    if (rv == MQTT_MALFORMED) {
        CHECK(why != NULL && why[0] != '\0');
        CHECK(rc >= MQTT_RC_UNSPECIFIED);
        (void)mqtt_rc_name(rc);
    }
    if (rv > 0) {
        struct mqtt_packet again;

        CHECK((size_t)rv == (size_t)hl + rem && (size_t)rv <= size);
        (void)mqtt_type_name(pkt.type);
        /* The packet alone decodes the same; one byte less is incomplete. */
        CHECK(mqtt_decode(buf, (size_t)rv, version, from_client, &again, NULL,
                          NULL) == rv);
        CHECK(mqtt_decode(buf, (size_t)rv - 1, version, from_client, &again,
                          NULL, NULL) == MQTT_INCOMPLETE);
        reencode(buf, (size_t)rv,
                 pkt.type == MQTT_CONNECT ? pkt.u.connect.version : version,
                 from_client, &pkt);
    }
    free(buf);
    return 0;
}
