/*
 * bridge.c - Mosquitto-compatible bridges (bridge.h): per bridge a remote
 * link (conn_connect, plain or TLS) and a local link (a socketpair into
 * this broker, broker_accept_internal), relayed packet by packet.
 *
 * States (logged once per change, from bridge_enter):
 *
 *   WAITING --restart timer--> CONNECTING --remote CONNACK--> SETUP
 *      ^                                                       |
 *      |                  local CONNACK + SUBACK, remote SUBACK |
 *      +---------- either link closes ------------- UP <-------+
 *
 *   start_type once: STOPPED instead of WAITING after a failure.
 *   start_type lazy: LAZY (the local session subscribed, queueing) until
 *   'threshold' messages wait in it; UP goes back to LAZY after
 *   idle_timeout seconds without a message.
 *
 * Packet ids: a PUBLISH keeps its id across the bridge, and so do the
 * acknowledgements that follow it, so no id table is kept. Our own
 * SUBSCRIBE/UNSUBSCRIBE use ids 2 and 3 (a server keeps no state for
 * them, and we tell their answers apart by type); the remote notification
 * goes at QoS 0, so it takes no id.
 *
 * Flow: the local link announces the remote broker's Receive Maximum, so
 * the local broker never has more QoS 1/2 messages in flight towards the
 * remote than it accepts; the local broker does not hold our local end to
 * its own Receive Maximum (broker_accept_internal), the remote broker
 * applies its own. A link's reading pauses while the other link's output
 * is over the high-water mark; PUBLISHes from the remote wait until the
 * local link is up.
 */
#include "bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ev.h>
#include <openssl/rand.h>

#include "bridge_topic.h"
#include "broker.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "mqtt_codec.h"
#include "resolve.h"
#include "session.h"
#include "tls.h"
#include "topic.h"
#include "util.h"

#define BRIDGE_CONNECT_TIMEOUT 20.0 /* TCP + TLS + CONNACK */
#define BRIDGE_MAX_INCOMING (256u << 20)
#define BRIDGE_PID_SUB 2
#define BRIDGE_PID_UNSUB 3

enum bstate {
    BS_STOPPED,
    BS_WAITING,
    BS_CONNECTING,
    BS_SETUP,
    BS_UP,
    BS_LAZY,
};

static const char *const state_names[] = {"stopped",    "waiting", "connecting",
                                          "connecting", "up",      "lazy"};

/* why a link's reading is paused */
#define P_OUTPUT 1u /* the other link's output is over its high-water mark */

struct bridge;

struct link {
    struct bridge *br;
    struct conn *conn;
    bool remote;
    uint8_t version;
    bool connacked;
    uint16_t recv_max;   /* what we may have unacknowledged towards it */
    uint32_t max_packet; /* its Maximum Packet Size, 0 = none */
    uint8_t max_qos;     /* its Maximum QoS (v5), else 2 */
    bool retain_ok;      /* its Retain Available (v5), else true */
    unsigned pause;      /* P_* */
    unsigned own;        /* our own packets awaiting an answer */
    double last_tx;
    double ping_at; /* PINGREQ sent, no PINGRESP yet (0: none) */
    uint16_t keepalive;
    /* QoS 2 ids we answered ourselves (not forwarded): their PUBREL is
     * answered here too */
    uint8_t self_qos2[8192];
};

struct btopic {
    const struct conf_bridge_topic *t;
    char *local_filter, *remote_filter;
};

struct bridge {
    struct bridges *bs;
    struct conf_bridge *cf;
    struct btopic *topics;
    struct link remote, local;
    enum bstate st;
    int notified; /* -1 nothing published yet, else the last 0/1 */
    ev_timer restart;
    size_t addr;
    double delay; /* the current restart delay (backoff) */
    bool was_up;  /* the last connection reached UP */
    bool lazy_setup;
    char last_fail[160];
    struct tls_ctx *tls;
    struct resolve *rs; /* the remote host's lookup in flight */
    double last_msg;    /* a message crossed (idle_timeout) */
    uint64_t msgs_in, msgs_out, reconnects, connects;
};

struct bridges {
    struct ev_loop *loop;
    struct broker *b;
    struct log *log;
    struct conn_loop *cl;
    struct bridge *v;
    size_t n;
    ev_timer tick;
    double last_sys;
    bool stopping;
};

static void link_on_open(void *ud, struct conn *c);
static ssize_t link_on_data(void *ud, struct conn *c, const uint8_t *buf,
                            size_t len);
static void link_on_drain(void *ud, struct conn *c);
static void link_on_timeout(void *ud, struct conn *c, enum conn_timeout why);
static void link_on_close(void *ud, struct conn *c, const char *reason);

static const struct conn_handler link_handler = {
    .on_open = link_on_open,
    .on_data = link_on_data,
    .on_drain = link_on_drain,
    .on_timeout = link_on_timeout,
    .on_close = link_on_close,
};

static void bridge_connect(struct bridge *br);
static void bridge_fail(struct bridge *br, const char *why);

static double now_of(const struct bridge *br)
{
    return ev_now(br->bs->loop);
}

static struct link *other(struct link *l)
{
    return l->remote ? &l->br->local : &l->br->remote;
}

/* ---- state ------------------------------------------------------------- */

/* notify_local: the retained 0/1 on the notification topic locally. */
static void notify_local(struct bridge *br, int v)
{
    struct msg *m;
    const char *t = br->cf->notification_topic;

    if (!br->cf->notifications || br->notified == v)
        return;
    br->notified = v;
    m = msg_new(t, strlen(t), NULL, 0, (const uint8_t *)(v ? "1" : "0"), 1, 1,
                true, 0);
    broker_publish_sys(br->bs->b, m);
    msg_unref(m);
}

/* bridge_enter: the one place a bridge changes state (and logs it). */
static void bridge_enter(struct bridge *br, enum bstate st)
{
    struct log *lg = br->bs->log;
    const struct conf_bridge_addr *a = &br->cf->addrs[br->addr];

    if (br->st == st)
        return;
    switch (st) {
    case BS_UP:
        LOG_N(lg, "Bridge %s: up, connected to %s:%u as %s.", br->cf->name,
              a->host, a->port, br->cf->remote_clientid);
        br->last_fail[0] = '\0';
        br->was_up = true;
        br->last_msg = now_of(br);
        br->delay = 0;
        notify_local(br, 1);
        break;
    case BS_STOPPED:
        LOG_N(lg, "Bridge %s: stopped.", br->cf->name);
        break;
    case BS_LAZY:
        LOG_N(lg,
              "Bridge %s: lazy, waiting for %u queued messages before "
              "connecting.",
              br->cf->name, br->cf->threshold);
        break;
    default:
        LOG_D(lg, "Bridge %s: %s.", br->cf->name, state_names[st]);
        break;
    }
    if (br->st == BS_UP)
        notify_local(br, 0);
    br->st = st;
}

/* ---- output ------------------------------------------------------------ */

static void link_send(struct link *l, const uint8_t *p, size_t n)
{
    if (l->conn == NULL)
        return;
    conn_write(l->conn, p, n);
    l->last_tx = now_of(l->br);
}

static void link_ack(struct link *l, uint8_t type, uint16_t pid, uint8_t rc)
{
    uint8_t buf[16];
    size_t n = mqtt_enc_ack(buf, sizeof(buf), l->version, type, pid,
                            l->version == MQTT_V5 ? rc : 0, NULL, 0);

    link_send(l, buf, n);
}

static void self_mark(struct link *l, uint16_t pid, bool on)
{
    if (on)
        l->self_qos2[pid >> 3] |= (uint8_t)(1u << (pid & 7));
    else
        l->self_qos2[pid >> 3] &= (uint8_t) ~(1u << (pid & 7));
}

static bool self_has(const struct link *l, uint16_t pid)
{
    return (l->self_qos2[pid >> 3] >> (pid & 7)) & 1u;
}

/* apply_pause: pause or resume reading l as its reasons say. */
static void apply_pause(struct link *l)
{
    if (l->conn == NULL)
        return;
    if (l->pause)
        conn_pause_read(l->conn);
    else
        conn_resume_read(l->conn);
}

static void set_pause(struct link *l, unsigned why, bool on)
{
    unsigned old = l->pause;

    if (on)
        l->pause |= why;
    else
        l->pause &= ~why;
    if (old != l->pause)
        apply_pause(l);
}

/* ---- CONNECT, SUBSCRIBE ------------------------------------------------- */

static void send_connect(struct link *l)
{
    struct bridge *br = l->br;
    const struct conf_bridge *cf = br->cf;
    struct mqtt_connect c;
    uint8_t props[64], wprops[16], *buf;
    struct mqtt_pb pb, wpb;
    size_t n;
    bool clean = l->remote ? cf->cleansession : cf->local_cleansession;
    const char *id = l->remote ? cf->remote_clientid : cf->local_clientid;
    const char *user = l->remote ? cf->remote_username : cf->local_username;
    const char *pw = l->remote ? cf->remote_password : cf->local_password;

    if (br->lazy_setup && !l->remote)
        clean = false; /* the session must outlive the set-up */
    memset(&c, 0, sizeof(c));
    c.version = l->version;
    c.bridge = l->remote && cf->try_private && l->version != MQTT_V5;
    c.clean_start = clean;
    c.keepalive = l->remote ? cf->keepalive : 0;
    c.client_id.p = id;
    c.client_id.len = (uint16_t)strlen(id);
    mqtt_pb_init(&pb, props, sizeof(props));
    if (!clean)
        mqtt_pb_u32(&pb, MQTT_PROP_SESSION_EXPIRY, UINT32_MAX);
    if (!l->remote && br->remote.recv_max && br->remote.recv_max < 65535)
        mqtt_pb_u16(&pb, MQTT_PROP_RECEIVE_MAXIMUM, br->remote.recv_max);
    c.props.raw = props;
    c.props.raw_len = pb.len;
    if (l->remote && cf->notifications && !cf->notifications_local_only) {
        mqtt_pb_init(&wpb, wprops, sizeof(wprops));
        c.has_will = true;
        c.will_qos = 1;
        c.will_retain = true;
        c.will_topic.p = cf->notification_topic;
        c.will_topic.len = (uint16_t)strlen(cf->notification_topic);
        c.will_payload.p = (const uint8_t *)"0";
        c.will_payload.len = 1;
        c.will_props.raw = wprops;
        c.will_props.raw_len = wpb.len;
    }
    if (user) {
        c.has_username = true;
        c.username.p = user;
        c.username.len = (uint16_t)strlen(user);
        if (pw) {
            c.has_password = true;
            c.password.p = (const uint8_t *)pw;
            c.password.len = (uint16_t)strlen(pw);
        }
    }
    n = mqtt_enc_connect(NULL, 0, &c);
    buf = xmalloc(n);
    mqtt_enc_connect(buf, n, &c);
    link_send(l, buf, n);
    free(buf);
}

/* send_subscribe: SUBSCRIBE the link's direction of topics (remote: in,
 * local: out); UNSUBSCRIBE the out-only ones remotely
 * (bridge_attempt_unsubscribe). */
static void send_subscribe(struct link *l)
{
    struct bridge *br = l->br;
    const struct conf_bridge *cf = br->cf;
    unsigned want = l->remote ? CONF_BRIDGE_IN : CONF_BRIDGE_OUT;
    struct mqtt_str *f = xcalloc(cf->ntopics, sizeof(*f));
    struct mqtt_sub_opts *o = xcalloc(cf->ntopics, sizeof(*o));
    uint32_t n = 0, nu = 0;
    uint8_t *buf;
    size_t len;

    for (size_t i = 0; i < cf->ntopics; i++) {
        const struct btopic *t = &br->topics[i];
        if (!(t->t->dir & want))
            continue;
        f[n].p = l->remote ? t->remote_filter : t->local_filter;
        f[n].len = (uint16_t)strlen(f[n].p);
        o[n].qos = t->t->qos;
        o[n].no_local = true;
        o[n].retain_as_published = true;
        n++;
    }
    if (n > 0) {
        len = mqtt_enc_subscribe(NULL, 0, l->version, BRIDGE_PID_SUB, f, o, n,
                                 NULL, 0);
        buf = xmalloc(len);
        mqtt_enc_subscribe(buf, len, l->version, BRIDGE_PID_SUB, f, o, n, NULL,
                           0);
        link_send(l, buf, len);
        free(buf);
        l->own++;
    }
    if (l->remote && cf->attempt_unsubscribe) {
        for (size_t i = 0; i < cf->ntopics; i++) {
            const struct btopic *t = &br->topics[i];
            if (t->t->dir != CONF_BRIDGE_OUT)
                continue;
            f[nu].p = t->remote_filter;
            f[nu].len = (uint16_t)strlen(f[nu].p);
            nu++;
        }
        if (nu > 0) {
            len = mqtt_enc_unsubscribe(NULL, 0, l->version, BRIDGE_PID_UNSUB, f,
                                       nu, NULL, 0);
            buf = xmalloc(len);
            mqtt_enc_unsubscribe(buf, len, l->version, BRIDGE_PID_UNSUB, f, nu,
                                 NULL, 0);
            link_send(l, buf, len);
            free(buf);
            l->own++;
        }
    }
    free(f);
    free(o);
}

static void send_remote_notification(struct link *l)
{
    const struct conf_bridge *cf = l->br->cf;
    const char *t = cf->notification_topic;
    uint8_t buf[512];
    size_t n;

    if (!cf->notifications || cf->notifications_local_only)
        return;
    n = mqtt_enc_publish_hdr(buf, sizeof(buf) - 1, l->version, 0, true, false,
                             t, (uint16_t)strlen(t), 0, NULL, 0, 1);
    if (n == 0 || n >= sizeof(buf) - 1)
        return;
    buf[n] = '1';
    link_send(l, buf, n + 1);
}

/* setup_check: both links connected: the bridge is up (a lazy bridge's
 * set-up ends when the local subscription is made). */
static void setup_check(struct bridge *br)
{
    if (br->st != BS_SETUP || !br->local.connacked || !br->remote.connacked)
        return;
    if (br->lazy_setup) {
        if (br->local.own)
            return;
        /* the local session exists and queues: wait for the threshold */
        br->lazy_setup = false;
        conn_close(br->local.conn, "lazy bridge set up");
        bridge_enter(br, BS_LAZY);
        return;
    }
    bridge_enter(br, BS_UP);
    /* offer again the remote PUBLISHes that waited for the local link */
    if (br->remote.conn) {
        conn_pause_read(br->remote.conn);
        apply_pause(&br->remote);
        if (!br->remote.pause)
            conn_resume_read(br->remote.conn);
    }
}

/* start_local: the local link over a socketpair into our own broker. */
static void start_local(struct bridge *br)
{
    int sv[2];
    struct sockaddr_un sun;
    struct link *l = &br->local;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        bridge_fail(br, "socketpair failed");
        return;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    l->version = MQTT_V5;
    l->connacked = false;
    l->own = 0;
    l->pause = 0;
    broker_accept_internal(br->bs->b, sv[0]);
    l->conn =
        conn_new(br->bs->cl, sv[1], NULL, 0, (const struct sockaddr *)&sun,
                 sizeof(sa_family_t), &link_handler, l);
}

/* ---- PUBLISH relay ------------------------------------------------------ */

/* map_topic: the topic of PUBLISH p from src as the other end's. */
static long map_topic(struct bridge *br, const struct link *src,
                      const struct mqtt_publish *p, char *out, size_t cap)
{
    unsigned want = src->remote ? CONF_BRIDGE_IN : CONF_BRIDGE_OUT;

    for (size_t i = 0; i < br->cf->ntopics; i++) {
        const struct btopic *t = &br->topics[i];
        const char *f = src->remote ? t->remote_filter : t->local_filter;
        long n;

        if (!(t->t->dir & want) ||
            !topic_matches(f, strlen(f), p->topic.p, p->topic.len))
            continue;
        n = src->remote ? bridge_topic_remap(p->topic.p, p->topic.len,
                                             t->t->remote_prefix,
                                             t->t->local_prefix, out, cap)
                        : bridge_topic_remap(p->topic.p, p->topic.len,
                                             t->t->local_prefix,
                                             t->t->remote_prefix, out, cap);
        if (n > 0)
            return n;
    }
    return -1;
}

/* self_ack: answer src's QoS 1/2 PUBLISH ourselves (not forwarded, or
 * forwarded at QoS 0). */
static void self_ack(struct link *src, const struct mqtt_publish *p)
{
    if (p->qos == 1) {
        link_ack(src, MQTT_PUBACK, p->packet_id, 0);
    } else if (p->qos == 2) {
        self_mark(src, p->packet_id, true);
        link_ack(src, MQTT_PUBREC, p->packet_id, 0);
    }
}

/* relay_publish: forward src's PUBLISH p to the other link. */
static void relay_publish(struct link *src, const struct mqtt_publish *p)
{
    struct bridge *br = src->br;
    struct link *dst = other(src);
    char topic[65536 + 1];
    uint8_t props[2048];
    uint32_t plen = 0;
    long tlen;
    uint8_t qos = p->qos;
    bool retain = p->retain;
    size_t hdr, total;
    uint8_t *out;
    uint32_t limit = br->cf->max_packet_size;

    if (src->remote)
        br->msgs_in++;
    else
        br->msgs_out++;
    br->last_msg = now_of(br);
    if (p->qos == 2 && self_has(src, p->packet_id)) {
        /* a resent QoS 2 we already answered */
        link_ack(src, MQTT_PUBREC, p->packet_id, 0);
        return;
    }
    tlen = map_topic(br, src, p, topic, sizeof(topic));
    if (tlen < 0) {
        LOG_D(br->bs->log, "Bridge %s: no topic rule for '%.*s'; dropped.",
              br->cf->name, (int)p->topic.len, p->topic.p);
        self_ack(src, p);
        return;
    }
    if (!src->remote && !br->cf->outgoing_retain)
        retain = false;
    if (!dst->retain_ok)
        retain = false;
    if (qos > dst->max_qos)
        qos = dst->max_qos;
    if (src->version == MQTT_V5 && dst->version == MQTT_V5)
        plen = mqtt_props_forward(&p->props, true, props, sizeof(props));
    hdr = mqtt_enc_publish_hdr(
        NULL, 0, dst->version, qos, retain, qos ? p->dup : false, topic,
        (uint16_t)tlen, qos ? p->packet_id : 0, props, plen, p->payload_len);
    total = hdr + p->payload_len;
    if (dst->max_packet && (limit == 0 || dst->max_packet < limit))
        limit = dst->max_packet;
    if (limit && total > limit) {
        LOG_N(br->bs->log,
              "Bridge %s: message on '%s' of %zu bytes over the packet size "
              "limit %u; dropped.",
              br->cf->name, topic, total, limit);
        self_ack(src, p);
        return;
    }
    if (dst->conn == NULL || conn_closing(dst->conn)) {
        /* not acknowledged: the source resends it after the reconnect */
        return;
    }
    out = conn_out_reserve(dst->conn, total);
    mqtt_enc_publish_hdr(out, hdr, dst->version, qos, retain,
                         qos ? p->dup : false, topic, (uint16_t)tlen,
                         qos ? p->packet_id : 0, props, plen, p->payload_len);
    memcpy(out + hdr, p->payload, p->payload_len);
    conn_out_commit(dst->conn, total);
    dst->last_tx = now_of(br);
    if (qos < p->qos)
        self_ack(src, p);
    if (conn_out_pending(dst->conn) > CONN_OUT_HIWAT)
        set_pause(src, P_OUTPUT, true);
}

/* relay_ack: PUBACK/PUBREC/PUBREL/PUBCOMP from src for the other link. */
static void relay_ack(struct link *src, uint8_t type, const struct mqtt_ack *a)
{
    struct link *dst = other(src);
    uint8_t rc = a->rc;

    if (type == MQTT_PUBREL && self_has(src, a->packet_id)) {
        self_mark(src, a->packet_id, false);
        link_ack(src, MQTT_PUBCOMP, a->packet_id, 0);
        return;
    }
    if (dst->conn == NULL || conn_closing(dst->conn))
        return;
    /* v3 has no reason codes; a v3 source's ack is a success */
    link_ack(dst, type, a->packet_id, dst->version == MQTT_V5 ? rc : 0);
}

/* ---- incoming packets --------------------------------------------------- */

static void on_connack(struct link *l, const struct mqtt_connack *ca)
{
    struct bridge *br = l->br;
    const struct mqtt_props *p = &ca->props;

    if (ca->rc != 0) {
        char why[120];
        snprintf(why, sizeof(why), "%s refused the connection: %s (%u)",
                 l->remote ? "remote broker" : "local broker",
                 l->version == MQTT_V5 ? mqtt_rc_name(ca->rc)
                 : ca->rc == 4         ? "bad user name or password"
                 : ca->rc == 5         ? "not authorised"
                                       : "refused",
                 ca->rc);
        bridge_fail(br, why);
        return;
    }
    l->connacked = true;
    conn_set_deadline(l->conn, 0);
    l->recv_max = 0;
    l->max_packet = 0;
    l->max_qos = 2;
    l->retain_ok = true;
    if (l->version == MQTT_V5) {
        l->recv_max = MQTT_HAS_PROP(p, MQTT_PROP_RECEIVE_MAXIMUM)
                          ? p->receive_maximum
                          : 65535;
        if (MQTT_HAS_PROP(p, MQTT_PROP_MAXIMUM_PACKET_SIZE))
            l->max_packet = p->maximum_packet_size;
        if (MQTT_HAS_PROP(p, MQTT_PROP_MAXIMUM_QOS))
            l->max_qos = p->maximum_qos;
        if (MQTT_HAS_PROP(p, MQTT_PROP_RETAIN_AVAILABLE))
            l->retain_ok = p->retain_available != 0;
        if (MQTT_HAS_PROP(p, MQTT_PROP_SERVER_KEEP_ALIVE))
            l->keepalive = p->server_keep_alive;
    }
    if (l->remote) {
        br->connects++;
        if (br->connects > 1)
            br->reconnects++;
        bridge_enter(br, BS_SETUP);
        send_remote_notification(l);
        send_subscribe(l);
        start_local(br);
    } else {
        send_subscribe(l);
        setup_check(br);
    }
}

static void on_suback(struct link *l, const struct mqtt_packet *pkt)
{
    struct bridge *br = l->br;
    const struct mqtt_suback *sa = &pkt->u.suback;

    if (pkt->type == MQTT_SUBACK) {
        for (uint32_t i = 0; i < sa->count; i++)
            if (sa->codes[i] >= 0x80)
                LOG_W(br->bs->log,
                      "Bridge %s: the %s broker refused subscription %u "
                      "(code 0x%02x).",
                      br->cf->name, l->remote ? "remote" : "local", i + 1,
                      sa->codes[i]);
    }
    if (l->own > 0)
        l->own--;
    setup_check(br);
}

/* handle: one decoded packet from l. Returns false after closing. */
static bool handle(struct link *l, const struct mqtt_packet *pkt)
{
    struct bridge *br = l->br;

    switch (pkt->type) {
    case MQTT_CONNACK:
        if (l->connacked) {
            bridge_fail(br, "second CONNACK");
            return false;
        }
        on_connack(l, &pkt->u.connack);
        return l->conn != NULL && !conn_closing(l->conn);
    case MQTT_PUBLISH:
        relay_publish(l, &pkt->u.publish);
        return true;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        relay_ack(l, pkt->type, &pkt->u.ack);
        return true;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        on_suback(l, pkt);
        return true;
    case MQTT_PINGRESP:
        l->ping_at = 0;
        return true;
    case MQTT_DISCONNECT: {
        char why[120];
        snprintf(why, sizeof(why), "%s broker disconnected: %s",
                 l->remote ? "remote" : "local",
                 mqtt_rc_name(pkt->u.disconnect.rc));
        bridge_fail(br, why);
        return false;
    }
    default:
        bridge_fail(br, "unexpected packet from the broker");
        return false;
    }
}

static ssize_t link_on_data(void *ud, struct conn *c, const uint8_t *buf,
                            size_t len)
{
    struct link *l = ud;
    size_t off = 0;

    while (off < len) {
        uint8_t first, rc = 0;
        uint32_t rem;
        int h = mqtt_frame_peek(buf + off, len - off, &first, &rem);
        struct mqtt_packet pkt;
        const char *why = NULL;
        int r;

        if (h == MQTT_INCOMPLETE)
            break;
        if (h < 0 || rem > BRIDGE_MAX_INCOMING) {
            bridge_fail(l->br, "malformed packet from the broker");
            return -1;
        }
        if ((size_t)h + rem > len - off) {
            conn_reserve_input(c, (size_t)h + rem);
            break;
        }
        /* a PUBLISH from the remote waits for the local link (offered
         * again from setup_check) */
        if ((first >> 4) == MQTT_PUBLISH && l->remote &&
            !l->br->local.connacked)
            break;
        r = mqtt_decode(buf + off, (size_t)h + rem, l->version, false, &pkt,
                        &rc, &why);
        if (r < 0) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "malformed packet from the %s broker: %s",
                     l->remote ? "remote" : "local", why ? why : "?");
            bridge_fail(l->br, msg);
            return -1;
        }
        off += (size_t)r;
        if (!handle(l, &pkt))
            return -1;
    }
    return (ssize_t)off;
}

static void link_on_open(void *ud, struct conn *c)
{
    struct link *l = ud;

    l->conn = c;
    l->last_tx = now_of(l->br);
    l->ping_at = 0;
    conn_set_deadline(c, BRIDGE_CONNECT_TIMEOUT);
    send_connect(l);
    apply_pause(l);
}

static void link_on_drain(void *ud, struct conn *c)
{
    struct link *l = ud;

    (void)c;
    set_pause(other(l), P_OUTPUT, false);
}

static void link_on_timeout(void *ud, struct conn *c, enum conn_timeout why)
{
    struct link *l = ud;

    (void)c;
    bridge_fail(l->br, why == CONN_TIMEOUT_DEADLINE
                           ? (l->connacked ? "timed out" : "no CONNACK in time")
                           : "idle");
}

/* schedule: both links closed: the next attempt as start_type says. */
static void schedule(struct bridge *br)
{
    const struct conf_bridge *cf = br->cf;
    double d;

    if (br->bs->stopping) {
        bridge_enter(br, BS_STOPPED);
        return;
    }
    if (br->st == BS_LAZY)
        return;
    if (cf->start_type == CONF_BRIDGE_ONCE) {
        bridge_enter(br, BS_STOPPED);
        return;
    }
    if (cf->start_type == CONF_BRIDGE_LAZY && br->was_up) {
        /* back to waiting for the threshold */
        br->was_up = false;
        bridge_enter(br, BS_LAZY);
        return;
    }
    /* the next address: round robin always moves on; failover goes back
     * to the main address after a connection that was up */
    if (cf->naddrs > 1) {
        if (!cf->round_robin && br->was_up)
            br->addr = 0;
        else
            br->addr = (br->addr + 1) % cf->naddrs;
    }
    if (cf->restart_cap == 0) {
        d = cf->restart_base;
    } else {
        /* Mosquitto's "decorrelated jitter": base..min(cap, 3 x last) */
        double prev = br->delay > 0 ? br->delay : cf->restart_base;
        double hi = prev * 3 < cf->restart_cap ? prev * 3 : cf->restart_cap;
        uint32_t r = 0;
        (void)RAND_bytes((unsigned char *)&r, sizeof(r));
        d = cf->restart_base +
            (hi > cf->restart_base
                 ? (double)(r % 1000) / 1000.0 * (hi - cf->restart_base)
                 : 0);
    }
    /* after an up connection the first retry comes at once */
    if (br->was_up)
        d = d < 1 ? d : 1;
    br->delay = d;
    br->was_up = false;
    bridge_enter(br, BS_WAITING);
    ev_timer_set(&br->restart, d, 0);
    ev_timer_start(br->bs->loop, &br->restart);
}

static void link_on_close(void *ud, struct conn *c, const char *reason)
{
    struct link *l = ud;
    struct bridge *br = l->br;

    (void)c;
    l->conn = NULL;
    l->connacked = false;
    l->own = 0;
    l->pause = 0;
    memset(l->self_qos2, 0, sizeof(l->self_qos2));
    if (br->bs->stopping)
        return;
    if (br->st != BS_LAZY && br->st != BS_WAITING && br->st != BS_STOPPED)
        bridge_fail(br, reason);
    if (br->remote.conn == NULL && br->local.conn == NULL)
        schedule(br);
}

/*
 * bridge_fail: the bridge goes down: log why (once per distinct reason
 * until it is up again), close both links; schedule() runs when the
 * last one has closed.
 */
static void bridge_fail(struct bridge *br, const char *why)
{
    const struct conf_bridge_addr *a = &br->cf->addrs[br->addr];

    if (br->st == BS_UP || strcmp(br->last_fail, why) != 0) {
        if (br->st == BS_UP)
            LOG_N(br->bs->log, "Bridge %s: connection to %s:%u lost: %s.",
                  br->cf->name, a->host, a->port, why);
        else
            LOG_N(br->bs->log,
                  "Bridge %s: cannot connect to %s:%u: %s (retrying "
                  "quietly).",
                  br->cf->name, a->host, a->port, why);
        snprintf(br->last_fail, sizeof(br->last_fail), "%s", why);
    } else {
        LOG_D(br->bs->log, "Bridge %s: %s:%u: %s.", br->cf->name, a->host,
              a->port, why);
    }
    if (br->st == BS_UP || br->st == BS_SETUP || br->st == BS_CONNECTING)
        bridge_enter(br, br->lazy_setup ? BS_LAZY : BS_WAITING);
    if (br->st == BS_WAITING && ev_is_active(&br->restart))
        ev_timer_stop(br->bs->loop, &br->restart);
    if (br->remote.conn)
        conn_close(br->remote.conn, why);
    if (br->local.conn)
        conn_close(br->local.conn, why);
}

/* bridge_resolved: the remote host's addresses: connect to the first. */
static void bridge_resolved(void *ud, const struct resolve_addr *addrs,
                            size_t n, const char *why)
{
    struct bridge *br = ud;
    const struct conf_bridge_addr *a = &br->cf->addrs[br->addr];
    struct link *l = &br->remote;
    char ip[INET6_ADDRSTRLEN], msg[300];
    const void *in;

    br->rs = NULL;
    if (br->bs->stopping || br->st != BS_CONNECTING)
        return;
    in = n == 0 ? NULL
         : addrs[0].family == AF_INET
             ? (const void *)&((const struct sockaddr_in *)&addrs[0].sa)
                   ->sin_addr
             : (const void *)&((const struct sockaddr_in6 *)&addrs[0].sa)
                   ->sin6_addr;
    if (in == NULL || inet_ntop(addrs[0].family, in, ip, sizeof(ip)) == NULL) {
        snprintf(msg, sizeof(msg), "resolve %s: %s", a->host,
                 why ? why : "no address");
        bridge_fail(br, msg);
        schedule(br); /* no link was opened: nothing else will */
        return;
    }
    l->conn = conn_connect(br->bs->cl, ip, a->port, br->tls,
                           br->cf->insecure ? NULL : a->host,
                           BRIDGE_CONNECT_TIMEOUT, &link_handler, l);
}

/* bridge_connect: start the remote link (or, lazy set-up, the local). */
static void bridge_connect(struct bridge *br)
{
    const struct conf_bridge_addr *a = &br->cf->addrs[br->addr];
    struct link *l = &br->remote;
    char port[8];

    if (br->bs->stopping || br->rs != NULL)
        return;
    if (br->lazy_setup) {
        br->remote.connacked = true; /* nothing to wait for remotely */
        bridge_enter(br, BS_SETUP);
        start_local(br);
        return;
    }
    bridge_enter(br, BS_CONNECTING);
    l->version = br->cf->protocol_version;
    l->connacked = false;
    l->own = 0;
    l->pause = 0;
    l->keepalive = br->cf->keepalive;
    snprintf(port, sizeof(port), "%u", (unsigned)a->port);
    /* the name is looked up on the loop (resolve.h), never blocking it */
    br->rs = resolve_start(br->bs->loop, a->host, port, bridge_resolved, br);
}

static void restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bridge *br = w->data;

    (void)loop;
    (void)revents;
    bridge_connect(br);
}

/* ---- the one-second tick: keepalive, lazy start, idle, $SYS ------------- */

static void publish_sys(struct bridges *bs)
{
    char topic[512], val[32];
    const struct conf *cf = broker_conf(bs->b);

    for (size_t i = 0; i < bs->n; i++) {
        struct bridge_stat st;
        struct {
            const char *k;
            uint64_t v;
        } nums[3];
        bridges_stat(bs, i, &st);
        nums[0].k = "messages/received";
        nums[0].v = st.msgs_in;
        nums[1].k = "messages/sent";
        nums[1].v = st.msgs_out;
        nums[2].k = "reconnects";
        nums[2].v = st.reconnects;
        snprintf(topic, sizeof(topic), "$SYS/broker/bridges/%s/state", st.name);
        {
            struct msg *m = msg_new(topic, strlen(topic), NULL, 0,
                                    (const uint8_t *)st.state,
                                    (uint32_t)strlen(st.state), 0, true, 0);
            broker_publish_sys(bs->b, m);
            msg_unref(m);
        }
        for (size_t k = 0; k < ARRAY_LEN(nums); k++) {
            struct msg *m;
            snprintf(topic, sizeof(topic), "$SYS/broker/bridges/%s/%s", st.name,
                     nums[k].k);
            snprintf(val, sizeof(val), "%llu", (unsigned long long)nums[k].v);
            m = msg_new(topic, strlen(topic), NULL, 0, (const uint8_t *)val,
                        (uint32_t)strlen(val), 0, true, 0);
            broker_publish_sys(bs->b, m);
            msg_unref(m);
        }
    }
    (void)cf;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bridges *bs = w->data;
    double now = ev_now(loop);
    const struct conf *cf = broker_conf(bs->b);

    (void)revents;
    for (size_t i = 0; i < bs->n; i++) {
        struct bridge *br = &bs->v[i];
        struct link *r = &br->remote;

        if (br->st == BS_UP && r->conn && r->keepalive) {
            if (r->ping_at > 0 && now - r->ping_at >= r->keepalive) {
                bridge_fail(br, "no PINGRESP from the remote broker");
                continue;
            }
            if (r->ping_at == 0 && now - r->last_tx >= r->keepalive) {
                uint8_t p[2];
                size_t n = mqtt_enc_simple(p, sizeof(p), MQTT_PINGREQ);
                link_send(r, p, n);
                r->ping_at = now;
            }
        }
        if (br->st == BS_UP && br->cf->start_type == CONF_BRIDGE_LAZY &&
            now - br->last_msg >= br->cf->idle_timeout) {
            LOG_N(bs->log, "Bridge %s: idle for %u s; disconnecting.",
                  br->cf->name, br->cf->idle_timeout);
            bridge_fail(br, "idle_timeout");
            continue;
        }
        if (br->st == BS_LAZY && br->remote.conn == NULL &&
            br->local.conn == NULL) {
            struct session *s =
                broker_session_find(bs->b, br->cf->local_clientid);
            struct session_counts sc;
            if (s == NULL)
                continue;
            session_counts(s, &sc);
            if (sc.queued >= br->cf->threshold) {
                LOG_N(bs->log,
                      "Bridge %s: %zu messages queued (threshold %u); "
                      "connecting.",
                      br->cf->name, sc.queued, br->cf->threshold);
                br->was_up = true; /* a later failure goes back to lazy */
                bridge_connect(br);
            }
        }
    }
    if (cf->sys_interval && now - bs->last_sys >= cf->sys_interval) {
        bs->last_sys = now;
        publish_sys(bs);
    }
}

/* sys_json: "bridges" in $SYS/broker/stats/json. */
static void sys_json(void *ud, void *json)
{
    const struct bridges *bs = ud;
    cJSON *arr = cJSON_AddArrayToObject(json, "bridges");

    for (size_t i = 0; arr && i < bs->n; i++) {
        struct bridge_stat st;
        cJSON *o = cJSON_CreateObject();
        bridges_stat(bs, i, &st);
        cJSON_AddStringToObject(o, "name", st.name);
        cJSON_AddStringToObject(o, "state", st.state);
        cJSON_AddNumberToObject(o, "messages_received", (double)st.msgs_in);
        cJSON_AddNumberToObject(o, "messages_sent", (double)st.msgs_out);
        cJSON_AddNumberToObject(o, "reconnects", (double)st.reconnects);
        cJSON_AddItemToArray(arr, o);
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

static struct tls_ctx *make_tls(struct bridges *bs, const struct conf_bridge *c)
{
    char err[512];
    struct tls_ctx *t;

    if (!c->tls)
        return NULL;
    t = tls_client_ctx_new(c->cafile, c->capath, c->certfile, c->keyfile, false,
                           c->alpn, err, sizeof(err));
    if (t == NULL) {
        LOG_E(bs->log, "Bridge %s: %s", c->name, err);
        return NULL;
    }
    if (tls_ctx_set_min_version(t, c->tls_min_version) < 0) {
        LOG_E(bs->log, "Bridge %s: cannot set bridge_tls_version.", c->name);
        tls_ctx_unref(t);
        return NULL;
    }
    return t;
}

struct bridges *bridges_new(struct ev_loop *loop, struct broker *b)
{
    const struct conf *cf = broker_conf(b);
    struct bridges *bs;

    if (cf->nbridges == 0)
        return NULL;
    bs = xcalloc(1, sizeof(*bs));
    bs->loop = loop;
    bs->b = b;
    bs->log = broker_log(b);
    bs->cl = broker_conn_loop(b);
    bs->n = cf->nbridges;
    bs->v = xcalloc(bs->n, sizeof(*bs->v));
    bs->last_sys = ev_now(loop);
    for (size_t i = 0; i < bs->n; i++) {
        struct bridge *br = &bs->v[i];
        br->bs = bs;
        br->cf = conf_bridge_dup(&cf->bridges[i]);
        br->notified = -1;
        br->remote.br = br;
        br->remote.remote = true;
        br->local.br = br;
        br->topics = xcalloc(br->cf->ntopics, sizeof(*br->topics));
        for (size_t k = 0; k < br->cf->ntopics; k++) {
            const struct conf_bridge_topic *t = &br->cf->topics[k];
            br->topics[k].t = t;
            br->topics[k].local_filter =
                bridge_topic_join(t->local_prefix, t->pattern);
            br->topics[k].remote_filter =
                bridge_topic_join(t->remote_prefix, t->pattern);
        }
        ev_timer_init(&br->restart, restart_cb, 0, 0);
        br->restart.data = br;
        br->st = BS_STOPPED;
        broker_mark_internal(b, br->cf->local_clientid);
        if (br->cf->tls) {
            br->tls = make_tls(bs, br->cf);
            if (br->tls == NULL)
                continue;
        }
        LOG_I(bs->log, "Bridge %s: %s to %s:%u%s.", br->cf->name,
              br->cf->start_type == CONF_BRIDGE_LAZY   ? "lazy"
              : br->cf->start_type == CONF_BRIDGE_ONCE ? "connecting once"
                                                       : "connecting",
              br->cf->addrs[0].host, br->cf->addrs[0].port,
              br->cf->tls ? " over TLS" : "");
        if (br->cf->start_type == CONF_BRIDGE_LAZY)
            br->lazy_setup = true;
        bridge_connect(br);
    }
    broker_set_sys_json(b, sys_json, bs);
    ev_timer_init(&bs->tick, tick_cb, 1.0, 1.0);
    bs->tick.data = bs;
    ev_timer_start(loop, &bs->tick);
    ev_unref(loop); /* the tick alone does not keep the loop running */
    return bs;
}

void bridges_shutdown(struct bridges *bs)
{
    if (bs == NULL)
        return;
    bs->stopping = true;
    for (size_t i = 0; i < bs->n; i++) {
        struct bridge *br = &bs->v[i];
        uint8_t p[4];
        size_t n;

        if (ev_is_active(&br->restart))
            ev_timer_stop(bs->loop, &br->restart);
        resolve_cancel(br->rs);
        br->rs = NULL;
        if (br->remote.conn && br->remote.connacked) {
            n = mqtt_enc_disconnect(p, sizeof(p), br->remote.version,
                                    MQTT_DISCONNECT, 0, NULL, 0);
            link_send(&br->remote, p, n);
        }
        if (br->remote.conn)
            conn_close(br->remote.conn, "shutting down");
        if (br->local.conn)
            conn_close(br->local.conn, "shutting down");
        bridge_enter(br, BS_STOPPED);
    }
}

void bridges_free(struct bridges *bs)
{
    if (bs == NULL)
        return;
    bridges_shutdown(bs);
    broker_set_sys_json(bs->b, NULL, NULL);
    ev_ref(bs->loop);
    ev_timer_stop(bs->loop, &bs->tick);
    for (size_t i = 0; i < bs->n; i++) {
        struct bridge *br = &bs->v[i];
        for (size_t k = 0; k < br->cf->ntopics; k++) {
            free(br->topics[k].local_filter);
            free(br->topics[k].remote_filter);
        }
        free(br->topics);
        tls_ctx_unref(br->tls);
        conf_bridge_free(br->cf);
    }
    free(bs->v);
    free(bs);
}

void bridges_reload_tls(struct bridges *bs)
{
    if (bs == NULL)
        return;
    for (size_t i = 0; i < bs->n; i++) {
        struct bridge *br = &bs->v[i];
        struct tls_ctx *t;

        if (!br->cf->tls)
            continue;
        t = make_tls(bs, br->cf);
        if (t == NULL) {
            LOG_E(bs->log,
                  "Bridge %s: TLS files not reloaded; keeping the old ones.",
                  br->cf->name);
            continue;
        }
        tls_ctx_unref(br->tls);
        br->tls = t;
        LOG_I(bs->log, "Bridge %s: TLS files reloaded.", br->cf->name);
        if (br->st == BS_STOPPED && !bs->stopping &&
            br->cf->start_type != CONF_BRIDGE_ONCE)
            bridge_connect(br);
    }
}

size_t bridges_count(const struct bridges *bs)
{
    return bs ? bs->n : 0;
}

void bridges_stat(const struct bridges *bs, size_t i, struct bridge_stat *out)
{
    const struct bridge *br = &bs->v[i];

    out->name = br->cf->name;
    out->state = state_names[br->st];
    out->msgs_in = br->msgs_in;
    out->msgs_out = br->msgs_out;
    out->reconnects = br->reconnects;
}
