/*
 * fuzz_session.c - whole-session libFuzzer harness: a byte stream drives
 * up to 8 interleaved connections through CONNECT -> session -> router ->
 * delivery over the in-memory transport of mem_conn.c (no sockets).
 *
 * A fresh broker (conf_default, logging off) is built for every input and
 * freed at the end, so ASan sees every leak. Input layout:
 *
 *   byte 0      configuration variant (bits select small queues and
 *               windows, queue_qos0_messages with persistence_sync always,
 *               upgrade_outgoing_qos, no retain, max_qos 1, size limits,
 *               no topic aliases and few subscriptions, byte limits and
 *               max_connections 4)
 *   then ops    op byte (op % 16), slot byte (k = slot % 8), arguments:
 *
 *    0 OPEN k            accept a connection into slot k
 *    1 RAW k n bytes     the peer of k sends n raw bytes
 *    2 CONNECT k a b c   a valid CONNECT (v3.1/3.1.1/5, client id from a
 *                        small set so takeovers happen, will, keepalive,
 *                        v5 session expiry / receive max / max packet size)
 *    3 SUBSCRIBE k a b   one or two filters from a set with wildcards and
 *                        $share, QoS and v5 options, subscription id
 *    4 UNSUBSCRIBE k a
 *    5 PUBLISH k a b c   topic from a set, QoS 0/1/2, retain, dup, payload
 *                        size class, v5 topic alias / expiry / format
 *    6 ACK k a           PUBACK/PUBREC/PUBCOMP for ids the broker sent,
 *                        PUBREL for our own QoS 2 ids, or a raw id
 *    7 PINGREQ k
 *    8 DISCONNECT k a    v5: with will (0x04), session expiry property
 *    9 EOF k             the peer closes
 *   10 TIMER k a         fire the deadline (a even) or idle timer
 *   11 LOOP              run loop iterations until nothing is left to do,
 *                        then release acks held by persistence_sync always
 *   12 TICK a            broker_tick (a == 0xff: broker_shutdown, 0xfe:
 *                        broker_flush_acks after a failed save)
 *   13 DRAIN k a         peer read rate: stalled, 7 B, 4 KiB, everything
 *   14 READMAX k a       bytes per read (0 = 64 KiB)
 *   15 BURST k n a b c   n*4 PUBLISHes as op 5
 *
 * Checked: no sanitizer report; every byte the broker sends frames and
 * decodes as a valid server packet for the client's protocol level and
 * fits the client's Maximum Packet Size [MQTT-3.1.2-24]; no partial packet
 * is left when a connection closes with its output flushed; the transport
 * contracts (mem_conn.c); after the teardown no connection or client is
 * left.
 *
 * Build (libFuzzer):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
 *     -D_GNU_SOURCE -Iinclude -Isrc tests/fuzz/fuzz_session.c
 *     tests/fuzz/mem_conn.c src/{util,log,msg,conf,mqtt_codec,topic,router,
 *     retain,passwd,acl,auth_mtls,auth,authq,tls,session,broker,client,
 *     persist,sys}.c -lssl -lcrypto -lev -lcjson -lm -lpthread
 * Standalone replay (any compiler): add -DFUZZ_SESSION_MAIN, drop
 * -fsanitize=fuzzer, run with files or directories as arguments.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ev.h>

#include "broker.h"
#include "client.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "mqtt_codec.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "mem_conn.h"

/* ---- harness state ------------------------------------------------------ */

#define NSLOTS 8
#define NACKS 8

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_session: " __VA_ARGS__);                         \
        fputc('\n', stderr);                                                   \
        abort();                                                               \
    } while (0)

struct pending_ack {
    uint8_t type; /* what we answer with: PUBACK, PUBREC, PUBCOMP */
    uint16_t pid;
};

struct slot {
    int k; /* index, for traces */
    struct conn *c;
    struct client *cli; /* the broker's client of c (until c is freed) */
    uint8_t version;    /* of the last CONNECT we built */
    uint16_t next_pid;
    /* what the peer received, reassembled into packets */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    /* ids to acknowledge (ring) */
    struct pending_ack acks[NACKS];
    unsigned nacks;
    /* our QoS 2 ids waiting for PUBREL (ring) */
    uint16_t q2[NACKS];
    unsigned nq2;
};

struct fz {
    const uint8_t *p;
    size_t n, off;
    struct broker *b;
    struct conn *last_new;
    struct slot slots[NSLOTS];
    uint8_t *pkt; /* encode buffer */
    size_t pkt_cap;
};

static struct log *g_log; /* shared by all inputs; writes nowhere */
static bool g_trace;      /* FUZZ_SESSION_TRACE: print the traffic */

static bool more(const struct fz *f)
{
    return f->off < f->n;
}

static uint8_t u8(struct fz *f)
{
    return f->off < f->n ? f->p[f->off++] : 0;
}

static struct slot *slot_of(struct fz *f, const struct conn *c)
{
    for (int i = 0; i < NSLOTS; i++)
        if (f->slots[i].c == c)
            return &f->slots[i];
    return NULL;
}

static uint8_t *pkt_buf(struct fz *f, size_t n)
{
    if (n > f->pkt_cap) {
        f->pkt = xrealloc(f->pkt, n);
        f->pkt_cap = n;
    }
    return f->pkt;
}

/* ---- checking what the broker sends -------------------------------------- */

static void dump_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(stderr, "%02x ", p[i]);
    fprintf(stderr, "%s\n", n > 64 ? "..." : "");
}

static void remember_ack(struct slot *s, uint8_t type, uint16_t pid)
{
    s->acks[s->nacks % NACKS] = (struct pending_ack){type, pid};
    s->nacks++;
}

/* One complete packet sent by the broker to the client cli. */
static void check_packet(struct slot *s, const struct client *cli,
                         const uint8_t *p, size_t n)
{
    struct mqtt_packet pkt;
    uint8_t rc = 0, v = client_version(cli) ? client_version(cli) : MQTT_V311;
    const char *why = NULL;
    int r = mqtt_decode(p, n, v, false, &pkt, &rc, &why);

    if (r != (int)n) {
        dump_hex(p, n);
        FAIL("broker sent an undecodable %s (v%u): %s (rc 0x%02x)",
             mqtt_type_name(p[0] >> 4), v, why ? why : "?", rc);
    }
    if (client_max_packet(cli) && n > client_max_packet(cli)) {
        dump_hex(p, n);
        FAIL("broker sent a %zu-byte %s over the client's Maximum Packet "
             "Size %u [MQTT-3.1.2-24]",
             n, mqtt_type_name(pkt.type), client_max_packet(cli));
    }
    if (g_trace)
        fprintf(stderr, "  slot %d <- %s %zu bytes\n", s->k,
                mqtt_type_name(pkt.type), n);
    switch (pkt.type) {
    case MQTT_PUBLISH:
        if (pkt.u.publish.qos == 1)
            remember_ack(s, MQTT_PUBACK, pkt.u.publish.packet_id);
        else if (pkt.u.publish.qos == 2)
            remember_ack(s, MQTT_PUBREC, pkt.u.publish.packet_id);
        break;
    case MQTT_PUBREL:
        remember_ack(s, MQTT_PUBCOMP, pkt.u.ack.packet_id);
        break;
    default:
        break;
    }
}

static void on_new(void *arg, struct conn *c)
{
    struct fz *f = arg;

    f->last_new = c;
}

static void on_output(void *arg, struct conn *c, void *ud, const uint8_t *p,
                      size_t n)
{
    struct fz *f = arg;
    struct slot *s = slot_of(f, c);
    const struct client *cli = ud;
    size_t off = 0;

    if (s == NULL)
        FAIL("output on a connection the harness does not know");
    if (s->rx_len + n > s->rx_cap) {
        size_t cap = s->rx_cap ? s->rx_cap : 256;
        while (cap < s->rx_len + n)
            cap *= 2;
        s->rx = xrealloc(s->rx, cap);
        s->rx_cap = cap;
    }
    memcpy(s->rx + s->rx_len, p, n);
    s->rx_len += n;
    while (off < s->rx_len) {
        uint8_t first;
        uint32_t rem;
        int h = mqtt_frame_peek(s->rx + off, s->rx_len - off, &first, &rem);
        if (h == MQTT_INCOMPLETE)
            break;
        if (h == MQTT_MALFORMED) {
            dump_hex(s->rx + off, s->rx_len - off);
            FAIL("broker sent a bad fixed header");
        }
        if (s->rx_len - off < (size_t)h + rem)
            break;
        check_packet(s, cli, s->rx + off, (size_t)h + rem);
        off += (size_t)h + rem;
    }
    memmove(s->rx, s->rx + off, s->rx_len - off);
    s->rx_len -= off;
}

static void slot_reset(struct slot *s)
{
    free(s->rx);
    memset(s, 0, sizeof(*s));
}

static void on_free(void *arg, struct conn *c, bool complete)
{
    struct fz *f = arg;
    struct slot *s = slot_of(f, c);

    if (s == NULL)
        FAIL("a connection the harness does not know was freed");
    if (complete && s->rx_len > 0) {
        dump_hex(s->rx, s->rx_len);
        FAIL("connection closed with a partial packet sent (%zu bytes)",
             s->rx_len);
    }
    slot_reset(s);
}

/* ---- building client packets --------------------------------------------- */

static const char *const client_ids[] = {"c0", "c1",  "c2", "c3",
                                         "",   "sub", "c0", "x/y#"};
static const char *const topics[] = {
    "a/b",
    "a",
    "a/b/c",
    "$SYS/x",
    "b",
    "a/c",
    "/",
    "a//b",
    "",
    "$share/g/a",
    "sport/tennis/player1",
    "a/+",
};
static const char *const filters[] = {
    "a/b",        "a/+",    "a/#", "#",        "+/+",          "$share/g/a/#",
    "$share/g/#", "$SYS/#", "+",   "a/b/c",    "$share/h/a/b", "a",
    "/",          "a//b",   "#/a", "$share/g", "sport/#",      "$share/g/+/+",
    "a/b/#",      "+/b/#",
};
static const uint32_t payload_sizes[] = {0,    1,    16,    200,
                                         1000, 5000, 30000, 100000};

static uint8_t slot_version(const struct slot *s)
{
    if (s->cli && client_version(s->cli))
        return client_version(s->cli);
    return s->version ? s->version : MQTT_V311;
}

static uint16_t new_pid(struct slot *s)
{
    if (++s->next_pid == 0)
        s->next_pid = 1;
    return s->next_pid;
}

static void op_open(struct fz *f, struct slot *s, int k)
{
    struct sockaddr_in sa;
    struct client *cli;

    if (s->c)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)(40000 + k));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->last_new = NULL;
    cli = broker_accept(f->b, 0, -1, (const struct sockaddr *)&sa, sizeof(sa));
    if (cli == NULL) {
        if (f->last_new != NULL)
            FAIL("broker_accept refused a connection it created");
        return; /* refused: max_connections */
    }
    if (f->last_new == NULL)
        FAIL("broker_accept returned a client without a connection");
    slot_reset(s);
    s->k = k;
    s->c = f->last_new;
    s->cli = cli;
}

static void op_connect(struct fz *f, struct slot *s)
{
    uint8_t a = u8(f), bb = u8(f), cc = u8(f);
    static const uint16_t kas[] = {0, 1, 60, 65535};
    static const uint32_t expiries[] = {0, 0, 60, UINT32_MAX};
    static const uint16_t rmax[] = {0, 1, 2, 65535};
    static const uint32_t maxpkt[] = {0, 64, 256, 1024};
    struct mqtt_connect c;
    uint8_t props[64], wprops[64];
    struct mqtt_pb pb, wpb;
    const char *id = client_ids[(a >> 2) % ARRAY_LEN(client_ids)];
    const char *wt = topics[(bb >> 5) % 8];
    size_t n;

    if (s->c == NULL)
        return;
    memset(&c, 0, sizeof(c));
    c.version = (uint8_t)(MQTT_V31 + (a & 3) % 3);
    s->version = c.version;
    c.clean_start = (a & 0x20) != 0;
    c.keepalive = kas[bb & 3];
    c.client_id = (struct mqtt_str){id, (uint16_t)strlen(id)};
    if (a & 0x40) {
        c.has_will = true;
        c.will_qos = (uint8_t)(((bb >> 2) & 3) % 3);
        c.will_retain = (bb & 0x10) != 0;
        c.will_topic = (struct mqtt_str){wt, (uint16_t)strlen(wt)};
        c.will_payload = (struct mqtt_bin){(const uint8_t *)"bye", 3};
    }
    if (a & 0x80) {
        c.has_username = true;
        c.username = (struct mqtt_str){"u", 1};
        c.has_password = true;
        c.password = (struct mqtt_bin){(const uint8_t *)"p", 1};
    }
    if (c.version == MQTT_V5) {
        mqtt_pb_init(&pb, props, sizeof(props));
        if (cc & 3)
            mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, expiries[cc & 3]);
        if ((cc >> 2) & 3)
            mqtt_pb_u16(&pb, MQTT_PROP_RECEIVE_MAXIMUM, rmax[(cc >> 2) & 3]);
        if ((cc >> 4) & 3)
            mqtt_pb_u32(&pb, MQTT_PROP_MAXIMUM_PACKET_SIZE,
                        maxpkt[(cc >> 4) & 3]);
        if (cc & 0x40)
            mqtt_pb_byte(&pb, MQTT_PROP_REQUEST_PROBLEM_INFO, 0);
        c.props.raw = props;
        c.props.raw_len = pb.len;
        mqtt_pb_init(&wpb, wprops, sizeof(wprops));
        if (c.has_will && (cc & 0x80))
            mqtt_pb_u32(&wpb, MQTT_PROP_WILL_DELAY, 5);
        if (c.has_will && (bb & 0x80))
            mqtt_pb_u32(&wpb, MQTT_PROP_MESSAGE_EXPIRY, 30);
        c.will_props.raw = wprops;
        c.will_props.raw_len = wpb.len;
    }
    n = mqtt_enc_connect(NULL, 0, &c);
    mqtt_enc_connect(pkt_buf(f, n), n, &c);
    memconn_push(s->c, f->pkt, n);
}

static void op_subscribe(struct fz *f, struct slot *s)
{
    uint8_t a = u8(f), bb = u8(f);
    uint8_t v = slot_version(s);
    struct mqtt_str fl[2];
    struct mqtt_sub_opts o[2];
    uint8_t props[16];
    struct mqtt_pb pb;
    uint32_t count = (a & 0x80) ? 2 : 1;
    size_t n;

    if (s->c == NULL)
        return;
    for (uint32_t i = 0; i < count; i++) {
        const char *t = filters[(i ? bb : a) % ARRAY_LEN(filters)];
        fl[i] = (struct mqtt_str){t, (uint16_t)strlen(t)};
        memset(&o[i], 0, sizeof(o[i]));
        o[i].qos = (uint8_t)((bb & 3) % 3);
        if (v == MQTT_V5) {
            o[i].no_local = (bb & 4) != 0;
            o[i].retain_as_published = (bb & 8) != 0;
            o[i].retain_handling = (uint8_t)(((bb >> 4) & 3) % 3);
        }
    }
    mqtt_pb_init(&pb, props, sizeof(props));
    if (v == MQTT_V5 && (bb & 0x40))
        mqtt_pb_varint(&pb, MQTT_PROP_SUBSCRIPTION_ID, (uint32_t)a + 1);
    n = mqtt_enc_subscribe(NULL, 0, v, new_pid(s), fl, o, count, props, pb.len);
    mqtt_enc_subscribe(pkt_buf(f, n), n, v, s->next_pid, fl, o, count, props,
                       pb.len);
    memconn_push(s->c, f->pkt, n);
}

static void op_unsubscribe(struct fz *f, struct slot *s)
{
    uint8_t a = u8(f);
    uint8_t v = slot_version(s);
    const char *t = filters[a % ARRAY_LEN(filters)];
    struct mqtt_str fl = {t, (uint16_t)strlen(t)};
    size_t n;

    if (s->c == NULL)
        return;
    n = mqtt_enc_unsubscribe(NULL, 0, v, new_pid(s), &fl, 1, NULL, 0);
    mqtt_enc_unsubscribe(pkt_buf(f, n), n, v, s->next_pid, &fl, 1, NULL, 0);
    memconn_push(s->c, f->pkt, n);
}

/* Build one PUBLISH from the argument bytes and send it. */
static void send_publish(struct fz *f, struct slot *s, uint8_t a, uint8_t bb,
                         uint8_t cc)
{
    uint8_t v = slot_version(s);
    const char *t = topics[a % ARRAY_LEN(topics)];
    uint16_t tlen = (uint16_t)strlen(t);
    uint8_t qos = (uint8_t)((bb & 3) % 3);
    bool dup = qos > 0 && (bb & 4);
    bool retain = (bb & 8) != 0;
    uint32_t plen = payload_sizes[cc & 7];
    uint16_t pid = 0;
    uint8_t props[32];
    struct mqtt_pb pb;
    size_t hdr;
    uint8_t *out;

    if (qos > 0) {
        pid = ((bb >> 4) & 3) == 3 && s->next_pid ? s->next_pid : new_pid(s);
        if (qos == 2) {
            s->q2[s->nq2 % NACKS] = pid;
            s->nq2++;
        }
    }
    mqtt_pb_init(&pb, props, sizeof(props));
    if (v == MQTT_V5) {
        switch ((cc >> 3) & 3) {
        case 1: /* set alias 1 */
            mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS, 1);
            break;
        case 2: /* use alias 1 */
            mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS, 1);
            tlen = 0;
            break;
        case 3: /* out of range with the default max_topic_alias 10 */
            mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS, (uint16_t)(a % 3 + 10));
            break;
        default:
            break;
        }
        if (cc & 0x20)
            mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY, (cc & 0x40) ? 1 : 100);
        if (cc & 0x80)
            mqtt_pb_byte(&pb, MQTT_PROP_PAYLOAD_FORMAT, 1);
    }
    hdr = mqtt_enc_publish_hdr(NULL, 0, v, qos, retain, dup, t, tlen, pid,
                               props, pb.len, plen);
    out = pkt_buf(f, hdr + plen);
    mqtt_enc_publish_hdr(out, hdr, v, qos, retain, dup, t, tlen, pid, props,
                         pb.len, plen);
    memset(out + hdr, 'x', plen);
    memconn_push(s->c, out, hdr + plen);
}

static void op_publish(struct fz *f, struct slot *s)
{
    uint8_t a = u8(f), bb = u8(f), cc = u8(f);

    if (s->c)
        send_publish(f, s, a, bb, cc);
}

static void op_burst(struct fz *f, struct slot *s)
{
    unsigned count = (unsigned)u8(f) * 4u;
    uint8_t a = u8(f), bb = u8(f), cc = u8(f);

    cc &= (uint8_t)~0x04; /* at most 200-byte payloads */
    for (unsigned i = 0; i < count && s->c; i++)
        send_publish(f, s, a, bb, cc);
}

static void op_ack(struct fz *f, struct slot *s)
{
    uint8_t a = u8(f);
    uint8_t v = slot_version(s);
    uint8_t type, rc = 0, buf[8];
    uint16_t pid;
    size_t n;

    if (s->c == NULL)
        return;
    if ((a & 0x80) && s->nq2) {
        unsigned have = s->nq2 < NACKS ? s->nq2 : NACKS;
        type = MQTT_PUBREL;
        pid = s->q2[a % have];
    } else if (!(a & 0x80) && s->nacks) {
        unsigned have = s->nacks < NACKS ? s->nacks : NACKS;
        const struct pending_ack *pa =
            &s->acks[(s->nacks - 1 - a % have) % NACKS];
        type = pa->type;
        pid = pa->pid;
        if (v == MQTT_V5 && (a & 0x40) && type != MQTT_PUBCOMP)
            rc = MQTT_RC_UNSPECIFIED;
    } else {
        type = (uint8_t)(MQTT_PUBACK + (a & 3));
        pid = (uint16_t)(a | 1u);
    }
    n = mqtt_enc_ack(buf, sizeof(buf), v, type, pid, rc, NULL, 0);
    memconn_push(s->c, buf, n);
}

static void op_disconnect(struct fz *f, struct slot *s)
{
    uint8_t a = u8(f);
    uint8_t props[16], buf[32];
    struct mqtt_pb pb;
    size_t n;

    if (s->c == NULL)
        return;
    if (slot_version(s) != MQTT_V5) {
        buf[0] = MQTT_DISCONNECT << 4;
        buf[1] = 0;
        memconn_push(s->c, buf, 2);
        return;
    }
    mqtt_pb_init(&pb, props, sizeof(props));
    if (a & 2)
        mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, (a & 4) ? 60 : 0);
    n = mqtt_enc_disconnect(buf, sizeof(buf), MQTT_V5, MQTT_DISCONNECT,
                            (a & 1) ? MQTT_RC_DISCONNECT_WITH_WILL : 0, props,
                            pb.len);
    memconn_push(s->c, buf, n);
}

/* ---- the program ----------------------------------------------------------
 */

static void configure(struct conf *c, uint8_t v)
{
    struct conf_listener *l = &c->listeners[0];

    if (v & 0x01) {
        c->max_queued_messages = 4;
        c->max_inflight_messages = 2;
    }
    if (v & 0x02) {
        c->queue_qos0_messages = true;
        /* acks held for a save; the harness plays server.c (op 11/12) */
        c->persistence = true;
        c->persistence_sync = 1;
    }
    if (v & 0x04)
        c->upgrade_outgoing_qos = true;
    if (v & 0x08)
        c->retain_available = false;
    if (v & 0x10)
        l->max_qos = 1;
    if (v & 0x20) {
        c->message_size_limit = 100;
        c->max_packet_size = 4096;
    }
    if (v & 0x40) {
        l->max_topic_alias = 0;
        c->max_subscriptions_per_client = 2;
        c->max_retained_messages = 2;
    }
    if (v & 0x80) {
        c->max_queued_bytes = 1000;
        c->max_inflight_bytes = 500;
        c->max_receive_maximum = 2;
        l->max_connections = 4;
    }
}

static void run_op(struct fz *f)
{
    uint8_t op = u8(f) % 16;
    int k;
    struct slot *s;

    if (g_trace)
        fprintf(stderr, "op %u at %zu\n", op, f->off - 1);
    if (op == 11) {
        memconn_run(broker_conn_loop(f->b));
        /* persistence_sync always: server.c saves and releases the held
         * acknowledgements once per loop iteration (group commit) */
        if (broker_pending_acks(f->b)) {
            broker_flush_acks(f->b, true);
            memconn_run(broker_conn_loop(f->b));
        }
        return;
    }
    if (op == 12) {
        uint8_t a = u8(f);
        if (a == 0xff)
            broker_shutdown(f->b);
        else if (a == 0xfe)
            broker_flush_acks(f->b, false); /* the save failed */
        else
            broker_tick(f->b);
        return;
    }
    k = u8(f) % NSLOTS;
    s = &f->slots[k];
    switch (op) {
    case 0:
        op_open(f, s, k);
        break;
    case 1: {
        size_t n = u8(f);
        if (n > f->n - f->off)
            n = f->n - f->off;
        if (s->c)
            memconn_push(s->c, f->p + f->off, n);
        f->off += n;
        break;
    }
    case 2:
        if (s->c == NULL)
            op_open(f, s, k);
        op_connect(f, s);
        break;
    case 3:
        op_subscribe(f, s);
        break;
    case 4:
        op_unsubscribe(f, s);
        break;
    case 5:
        op_publish(f, s);
        break;
    case 6:
        op_ack(f, s);
        break;
    case 7:
        if (s->c) {
            static const uint8_t ping[2] = {MQTT_PINGREQ << 4, 0};
            memconn_push(s->c, ping, 2);
        }
        break;
    case 8:
        op_disconnect(f, s);
        break;
    case 9:
        if (s->c)
            memconn_peer_eof(s->c);
        break;
    case 10: {
        uint8_t a = u8(f);
        if (s->c)
            memconn_fire_timer(s->c, (a & 1) ? CONN_TIMEOUT_IDLE
                                             : CONN_TIMEOUT_DEADLINE);
        break;
    }
    case 13: {
        static const size_t rates[] = {0, 7, 4096, SIZE_MAX};
        uint8_t a = u8(f);
        if (s->c)
            memconn_set_drain(s->c, rates[a & 3]);
        break;
    }
    case 14: {
        uint8_t a = u8(f);
        if (s->c)
            memconn_set_read_max(s->c, a);
        break;
    }
    case 15:
        op_burst(f, s);
        break;
    default:
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char devnull[] = "/dev/null";
    struct log_settings ls;
    char err[256];

    (void)argc;
    (void)argv;
    g_trace = getenv("FUZZ_SESSION_TRACE") != NULL;
    g_log = log_new();
    memset(&ls, 0, sizeof(ls));
    ls.types = 0;
    ls.dests = LOGD_NONE;
    if (getenv("FUZZ_SESSION_LOG")) {
        /* format every log line (catches format bugs), write nowhere */
        ls.types = LOG_ALL;
        ls.dests = LOGD_FILE;
        ls.file = devnull;
    }
    if (g_trace) {
        ls.types = LOG_ALL;
        ls.dests = LOGD_STDERR;
    }
    if (log_configure(g_log, &ls, err, sizeof(err)) < 0)
        FAIL("log_configure: %s", err);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct memconn_hooks hooks = {on_new, on_output, on_free};
    struct fz f;
    struct conf *c;
    char err[1024];

    if (size == 0)
        return 0;
    if (g_log == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    memset(&f, 0, sizeof(f));
    f.p = data;
    f.n = size;
    c = conf_default(1883);
    configure(c, u8(&f));
    f.b = broker_new(ev_default_loop(0), c, g_log, err, sizeof(err));
    if (f.b == NULL)
        FAIL("broker_new: %s", err);
    memconn_set_hooks(broker_conn_loop(f.b), &hooks, &f);
    while (more(&f))
        run_op(&f);

    /* teardown: every peer reads everything and goes away */
    for (int i = 0; i < NSLOTS; i++) {
        if (f.slots[i].c) {
            memconn_set_drain(f.slots[i].c, SIZE_MAX);
            conn_close(f.slots[i].c, "harness teardown");
        }
    }
    memconn_run(broker_conn_loop(f.b));
    if (conn_loop_count(broker_conn_loop(f.b)) != 0 ||
        broker_client_count(f.b) != 0)
        FAIL("after teardown: %zu connections, %zu clients left",
             conn_loop_count(broker_conn_loop(f.b)), broker_client_count(f.b));
    broker_free(f.b);
    for (int i = 0; i < NSLOTS; i++)
        slot_reset(&f.slots[i]);
    free(f.pkt);
    return 0;
}

#ifdef FUZZ_SESSION_MAIN
/* ---- standalone replay ------------------------------------------------------
 */

static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    struct timespec t0, t1;

    if (fp == NULL) {
        perror(path);
        return -1;
    }
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len, fp);
        len += n;
    } while (n > 0);
    fclose(fp);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    LLVMFuzzerTestOneInput(buf, len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (getenv("FUZZ_SESSION_TIME"))
        fprintf(stderr, "%.3f ms %s\n",
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
                path);
    free(buf);
    return 0;
}

static int replay_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (stat(path, &st) < 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char sub[4096];
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' ||
            (nl > 3 && strcmp(de->d_name + nl - 3, ".md") == 0))
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        if (replay_file(sub) < 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i]) < 0)
            rc = 1;
    log_free(g_log);
    return rc;
}
#endif
