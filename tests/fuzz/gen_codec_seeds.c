/*
 * gen_codec_seeds.c - write a seed corpus for fuzz_codec into a directory.
 *
 * Usage: gen_codec_seeds OUTDIR
 *
 * Each seed is the fuzz_codec selector byte (bits 0-1: level 0/3/4/5, bit 2:
 * decode as a client) followed by one packet built with the codec's own
 * encoders: every packet type, every protocol level, with and without v5
 * properties.
 *
 * Build: cc -Iinclude src/mqtt_codec.c src/util.c
 *        tests/fuzz/gen_codec_seeds.c -o gen_codec_seeds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"

#define SEL_SERVER 0 /* decoded by the server: from_client */
#define SEL_CLIENT 4 /* decoded by the client: from a server */

struct gen {
    const char *dir;
    unsigned n;
    int errors;
};

static uint8_t sel_of(uint8_t version, int side)
{
    uint8_t v = version == 0 ? 0 : (uint8_t)(version - 2); /* 3,4,5->1,2,3 */

    return (uint8_t)(v | side);
}

static void emit(struct gen *g, uint8_t sel, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/seed-%03u", g->dir, g->n++);
    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        g->errors++;
        return;
    }
    if (fwrite(&sel, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n) {
        perror(path);
        g->errors++;
    }
    if (fclose(f) != 0)
        g->errors++;
}

static uint32_t build_props(uint8_t *buf, uint32_t cap, int kind)
{
    struct mqtt_pb pb;

    mqtt_pb_init(&pb, buf, cap);
    switch (kind) {
    case 0: /* CONNECT */
        mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, 60);
        mqtt_pb_u16(&pb, MQTT_PROP_RECEIVE_MAXIMUM, 10);
        mqtt_pb_u32(&pb, MQTT_PROP_MAXIMUM_PACKET_SIZE, 4096);
        mqtt_pb_byte(&pb, MQTT_PROP_REQUEST_PROBLEM_INFO, 1);
        mqtt_pb_str(&pb, MQTT_PROP_AUTH_METHOD, "PLAIN", 5);
        mqtt_pb_bin(&pb, MQTT_PROP_AUTH_DATA, "ab", 2);
        break;
    case 1: /* PUBLISH / will */
        mqtt_pb_byte(&pb, MQTT_PROP_PAYLOAD_FORMAT, 1);
        mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY, 30);
        mqtt_pb_str(&pb, MQTT_PROP_CONTENT_TYPE, "text", 4);
        mqtt_pb_str(&pb, MQTT_PROP_RESPONSE_TOPIC, "r/t", 3);
        mqtt_pb_bin(&pb, MQTT_PROP_CORRELATION_DATA, "id", 2);
        break;
    case 2: /* CONNACK */
        mqtt_pb_byte(&pb, MQTT_PROP_MAXIMUM_QOS, 1);
        mqtt_pb_byte(&pb, MQTT_PROP_RETAIN_AVAILABLE, 1);
        mqtt_pb_str(&pb, MQTT_PROP_ASSIGNED_CLIENT_ID, "auto", 4);
        mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 8);
        mqtt_pb_byte(&pb, MQTT_PROP_SHARED_SUB_AVAILABLE, 0);
        break;
    case 3: /* SUBSCRIBE */
        mqtt_pb_varint(&pb, MQTT_PROP_SUBSCRIPTION_ID, 1000);
        break;
    default: /* acks, DISCONNECT */
        mqtt_pb_str(&pb, MQTT_PROP_REASON_STRING, "because", 7);
        break;
    }
    mqtt_pb_user(&pb, "k", 1, "v", 1);
    return pb.overflow ? 0 : pb.len;
}

static void gen_all(struct gen *g, uint8_t v)
{
    uint8_t buf[1024], props[256], wprops[256];
    uint32_t pl, wpl;
    size_t n;
    bool v5 = v == MQTT_V5;

    /* CONNECT, first packet and later */
    for (int variant = 0; variant < 3; variant++) {
        struct mqtt_connect c = {0};

        c.version = v;
        c.clean_start = true;
        c.keepalive = 60;
        c.client_id = (struct mqtt_str){"seed", 4};
        if (variant > 0) {
            c.has_username = true;
            c.username = (struct mqtt_str){"u", 1};
            c.has_password = true;
            c.password = (struct mqtt_bin){(const uint8_t *)"p", 1};
        }
        if (variant > 1) {
            c.has_will = true;
            c.will_qos = 1;
            c.will_topic = (struct mqtt_str){"w", 1};
            c.will_payload = (struct mqtt_bin){(const uint8_t *)"bye", 3};
            if (v5) {
                pl = build_props(props, sizeof(props), 0);
                wpl = build_props(wprops, sizeof(wprops), 1);
                c.props.raw = props;
                c.props.raw_len = pl;
                c.will_props.raw = wprops;
                c.will_props.raw_len = wpl;
            }
        }
        n = mqtt_enc_connect(buf, sizeof(buf), &c);
        emit(g, sel_of(0, SEL_SERVER), buf, n);
        emit(g, sel_of(v, SEL_SERVER), buf, n);
    }

    pl = v5 ? build_props(props, sizeof(props), 2) : 0;
    n = mqtt_enc_connack(buf, sizeof(buf), v, true, 0, props, pl);
    emit(g, sel_of(v, SEL_CLIENT), buf, n);

    pl = v5 ? build_props(props, sizeof(props), 1) : 0;
    for (uint8_t qos = 0; qos <= 2; qos++) {
        n = mqtt_enc_publish_hdr(buf, sizeof(buf), v, qos, qos == 1, qos == 2,
                                 "a/b/c", 5, qos ? 1 : 0, props, pl, 5);
        memcpy(buf + n, "hello", 5);
        emit(g, sel_of(v, SEL_SERVER), buf, n + 5);
        emit(g, sel_of(v, SEL_CLIENT), buf, n + 5);
    }

    pl = v5 ? build_props(props, sizeof(props), 4) : 0;
    for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
        n = mqtt_enc_ack(buf, sizeof(buf), v, t, 7, 0, NULL, 0);
        emit(g, sel_of(v, SEL_SERVER), buf, n);
        if (v5) {
            n = mqtt_enc_ack(buf, sizeof(buf), v, t, 7, 0, props, pl);
            emit(g, sel_of(v, SEL_CLIENT), buf, n);
        }
    }

    {
        static const struct mqtt_str f[] = {{"a/+", 3}, {"#", 1}};
        static const struct mqtt_sub_opts o[] = {{1, false, false, 0},
                                                 {2, true, true, 1}};
        static const uint8_t codes[] = {1, 2};
        static const uint8_t ucodes[] = {0x11};

        pl = v5 ? build_props(props, sizeof(props), 3) : 0;
        n = mqtt_enc_subscribe(buf, sizeof(buf), v, 3, f, o, 2, props, pl);
        emit(g, sel_of(v, SEL_SERVER), buf, n);
        n = mqtt_enc_unsubscribe(buf, sizeof(buf), v, 4, f, 2, NULL, 0);
        emit(g, sel_of(v, SEL_SERVER), buf, n);
        pl = v5 ? build_props(props, sizeof(props), 4) : 0;
        n = mqtt_enc_suback(buf, sizeof(buf), v, MQTT_SUBACK, 3, codes, 2,
                            props, pl);
        emit(g, sel_of(v, SEL_CLIENT), buf, n);
        n = mqtt_enc_suback(buf, sizeof(buf), v, MQTT_UNSUBACK, 4, ucodes, 1,
                            NULL, 0);
        emit(g, sel_of(v, SEL_CLIENT), buf, n);
    }

    n = mqtt_enc_simple(buf, sizeof(buf), MQTT_PINGREQ);
    emit(g, sel_of(v, SEL_SERVER), buf, n);
    n = mqtt_enc_simple(buf, sizeof(buf), MQTT_PINGRESP);
    emit(g, sel_of(v, SEL_CLIENT), buf, n);
    pl = v5 ? build_props(props, sizeof(props), 4) : 0;
    n = mqtt_enc_disconnect(buf, sizeof(buf), v, MQTT_DISCONNECT, v5 ? 0x04 : 0,
                            props, pl);
    emit(g, sel_of(v, SEL_SERVER), buf, n);
    if (v5) {
        struct mqtt_pb pb;

        mqtt_pb_init(&pb, props, sizeof(props));
        mqtt_pb_str(&pb, MQTT_PROP_AUTH_METHOD, "SCRAM", 5);
        mqtt_pb_bin(&pb, MQTT_PROP_AUTH_DATA, "xyz", 3);
        n = mqtt_enc_disconnect(buf, sizeof(buf), v, MQTT_AUTH,
                                MQTT_RC_CONTINUE_AUTH, props, pb.len);
        emit(g, sel_of(v, SEL_SERVER), buf, n);
        emit(g, sel_of(v, SEL_CLIENT), buf, n);
    }
}

int main(int argc, char **argv)
{
    struct gen g = {0};

    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    g.dir = argv[1];
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        gen_all(&g, v);
    printf("%u seeds written to %s\n", g.n, g.dir);
    return g.errors ? 1 : 0;
}
