/*
 * client.c - the MQTT protocol on one connection: framing with limits
 * checked before buffering, CONNECT (authentication, session attach and
 * takeover), PUBLISH in (ACL, topic alias, QoS 1/2 acks), SUBSCRIBE /
 * UNSUBSCRIBE (ACL per filter, retained delivery), keepalive, DISCONNECT,
 * wills, and the encoding of every packet the broker sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <openssl/rand.h>

#include "auth.h"
#include "auth_mtls.h"
#include "authq.h"
#include "broker_int.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "ocsp_cache.h"
#include "proxy_proto.h"
#include "retain.h"
#include "tls.h"
#include "topic.h"
#include "util.h"

/*
 * A client that has not completed CONNECT may send at most this much in
 * one packet (CVE-2023-0809 class: nothing unbounded is allocated before
 * authentication): the largest CONNECT whose six length-prefixed fields
 * (client id, will topic, will payload, user name, password,
 * authentication data) are all 65,535 bytes long, plus 1 KiB for the
 * headers and the smaller properties.
 */
#define PRECONNECT_MAX (6u * 65537u + 1024u)

/* At most this many outgoing topic aliases per connection (lookup is a
 * linear scan). */
#define OUT_ALIAS_CAP 32u

static void client_on_open(void *ud, struct conn *conn);
static ssize_t client_on_data(void *ud, struct conn *conn, const uint8_t *buf,
                              size_t len);
static void client_on_drain(void *ud, struct conn *conn);
static void client_on_timeout(void *ud, struct conn *conn,
                              enum conn_timeout why);
static void client_on_close(void *ud, struct conn *conn, const char *reason);

const struct conn_handler client_handler = {
    .on_open = client_on_open,
    .on_data = client_on_data,
    .on_drain = client_on_drain,
    .on_timeout = client_on_timeout,
    .on_close = client_on_close,
};

struct client *client_new(struct broker *b, size_t li)
{
    struct client *c = xcalloc(1, sizeof(*c));

    c->b = b;
    c->listener = li;
    c->next = b->reg.clients;
    if (b->reg.clients)
        b->reg.clients->prev = c;
    b->reg.clients = c;
    b->reg.nclients++;
    return c;
}

static const char *cid(const struct client *c)
{
    return c->client_id ? c->client_id : "<unknown>";
}

uint8_t client_version(const struct client *c)
{
    return c->version;
}

uint32_t client_max_packet(const struct client *c)
{
    return c->max_packet;
}

void client_resume_read(struct client *c)
{
    c->paused = false;
    conn_resume_read(c->conn);
}

bool client_can_force(const struct client *c)
{
    return c->conn != NULL && conn_out_pending(c->conn) < CONN_OUT_HARD;
}

bool client_can_send(const struct client *c)
{
    return c->conn && !conn_closing(c->conn) &&
           conn_out_pending(c->conn) < CONN_OUT_HIWAT;
}

/* ---- encoding --------------------------------------------------------- */

static void send_raw(struct client *c, const uint8_t *p, size_t n)
{
    conn_write(c->conn, p, n);
    c->b->st.msgs_sent++;
    c->b->st.bytes_sent += n;
}

void client_send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t rc)
{
    uint8_t buf[8];
    size_t n =
        mqtt_enc_ack(buf, sizeof(buf), c->version, type, pid, rc, NULL, 0);

    send_raw(c, buf, n);
}

static void send_connack(struct client *c, uint8_t version, bool sp, uint8_t rc,
                         const uint8_t *props, uint32_t plen)
{
    uint8_t buf[512];
    size_t n = mqtt_enc_connack(buf, sizeof(buf), version, sp, rc, props, plen);

    if (n <= sizeof(buf))
        send_raw(c, buf, n);
}

/*
 * Outgoing topic aliases (v5, when the client announced a Topic Alias
 * Maximum): the first out_alias_max distinct topics get aliases 1..n for
 * the life of the connection [MQTT-3.3.2-7]; later topics go in full. The
 * first PUBLISH of a topic carries topic and alias, later ones the alias
 * and an empty topic. Returns the alias (0 = none) and sets *topic_len.
 */
static uint16_t out_alias(struct client *c, const struct msg *m,
                          uint16_t *topic_len)
{
    for (uint16_t i = 0; i < c->out_alias_n; i++) {
        if (strcmp(c->out_alias[i], m->topic) == 0) {
            *topic_len = 0;
            return (uint16_t)(i + 1);
        }
    }
    if (c->out_alias_n < c->out_alias_max) {
        if (c->out_alias == NULL)
            c->out_alias = xcalloc(c->out_alias_max, sizeof(char *));
        c->out_alias[c->out_alias_n++] = xstrdup(m->topic);
        return c->out_alias_n;
    }
    return 0;
}

static int send_publish(struct client *c, struct msg *m, uint8_t qos,
                        bool retain, bool dup, uint16_t pid,
                        const uint32_t *sub_ids, uint8_t nsub_ids);

int client_send_publish(struct client *c, struct msg *m, uint8_t qos,
                        bool retain, bool dup, uint16_t pid,
                        const uint32_t *sub_ids, uint8_t nsub_ids)
{
    if (qos == 0 && !client_can_send(c))
        return -1;
    return send_publish(c, m, qos, retain, dup, pid, sub_ids, nsub_ids);
}

int client_send_publish_force(struct client *c, struct msg *m, bool retain,
                              const uint32_t *sub_ids, uint8_t nsub_ids)
{
    return send_publish(c, m, 0, retain, false, 0, sub_ids, nsub_ids);
}

static int send_publish(struct client *c, struct msg *m, uint8_t qos,
                        bool retain, bool dup, uint16_t pid,
                        const uint32_t *sub_ids, uint8_t nsub_ids)
{
    uint16_t topic_len = m->topic_len;
    uint8_t pstack[256], *props = NULL;
    uint32_t plen = 0;
    size_t hdr, total;
    uint8_t *out;

    if (c->conn == NULL || conn_closing(c->conn))
        return -1;
    if (c->version == MQTT_V5) {
        struct mqtt_pb pb;
        uint32_t need = m->props_len + 5 + 3 + 5u * nsub_ids;
        props = need <= sizeof(pstack) ? pstack : xmalloc(need);
        mqtt_pb_init(&pb, props, need);
        if (c->out_alias_max) {
            uint16_t a = out_alias(c, m, &topic_len);
            if (a)
                mqtt_pb_u16(&pb, MQTT_PROP_TOPIC_ALIAS, a);
        }
        if (m->expiry_at) {
            int64_t left = m->expiry_at - (int64_t)time(NULL);
            mqtt_pb_u32(&pb, MQTT_PROP_MESSAGE_EXPIRY,
                        left > 0 ? (uint32_t)left : 0);
        }
        for (uint8_t i = 0; i < nsub_ids; i++)
            mqtt_pb_varint(&pb, MQTT_PROP_SUBSCRIPTION_ID, sub_ids[i]);
        mqtt_pb_raw(&pb, m->props, m->props_len);
        plen = pb.len;
    }
    hdr = mqtt_enc_publish_hdr(NULL, 0, c->version, qos, retain, dup, m->topic,
                               topic_len, pid, props, plen, m->payload_len);
    total = hdr + m->payload_len;
    if (c->max_packet && total > c->max_packet) {
        /* [MQTT-3.1.2-25]: drop what the client cannot receive */
        if (props && props != pstack)
            free(props);
        return -1;
    }
    out = conn_out_reserve(c->conn, total);
    mqtt_enc_publish_hdr(out, hdr, c->version, qos, retain, dup, m->topic,
                         topic_len, pid, props, plen, m->payload_len);
    memcpy(out + hdr, m->payload, m->payload_len);
    conn_out_commit(c->conn, total);
    if (props && props != pstack)
        free(props);
    c->b->st.msgs_sent++;
    c->b->st.pub_msgs_sent++;
    c->b->st.bytes_sent += total;
    return 0;
}

void client_disconnect(struct client *c, uint8_t rc, const char *reason)
{
    if (c->conn == NULL || conn_closing(c->conn))
        return;
    if (c->version == MQTT_V5 && c->connected) {
        uint8_t buf[300], pbuf[280];
        struct mqtt_pb pb;
        size_t n;
        mqtt_pb_init(&pb, pbuf, sizeof(pbuf));
        if (reason && rc >= 0x80)
            mqtt_pb_str(&pb, MQTT_PROP_REASON_STRING, reason,
                        (uint16_t)strnlen(reason, 200));
        n = mqtt_enc_disconnect(buf, sizeof(buf), MQTT_V5, MQTT_DISCONNECT, rc,
                                pb.overflow ? NULL : pbuf,
                                pb.overflow ? 0 : pb.len);
        if (n <= sizeof(buf))
            send_raw(c, buf, n);
    }
    conn_close(c->conn, reason);
}

/* Close for bad input: v5 gets DISCONNECT with the reason code first. */
static void protocol_fail(struct client *c, uint8_t rc, const char *why)
{
    struct broker *b = c->b;

    b->st.malformed++;
    LOG_N(b->log,
          "Client %s (%s:%d) sent a bad packet: %s (reason 0x%02x); "
          "disconnecting.",
          cid(c), conn_peer_ip(c->conn), conn_peer_port(c->conn), why, rc);
    client_disconnect(c, rc, why);
}

/* ---- CONNECT ---------------------------------------------------------- */

static void auth_failed_log(struct client *c, const char *username,
                            const char *reason)
{
    char port[12];

    snprintf(port, sizeof(port), "%d", conn_peer_port(c->conn));
    log_event(c->b->log, LOG_NOTICE, "auth_failed", "auth failed", "ip",
              conn_peer_ip(c->conn), "port", port, "client_id", cid(c),
              "username", username ? username : "", "reason", reason,
              (const char *)NULL);
}

static void refuse(struct client *c, uint8_t version, uint8_t v3rc,
                   uint8_t v5rc, const char *why)
{
    c->b->st.clients_rejected++;
    if (version == MQTT_V5 && c->problem_info && why) {
        /* Reason String only when the client asked for problem
         * information [MQTT-3.1.2-29] */
        uint8_t pbuf[200];
        struct mqtt_pb pb;
        mqtt_pb_init(&pb, pbuf, sizeof(pbuf));
        mqtt_pb_str(&pb, MQTT_PROP_REASON_STRING, why,
                    (uint16_t)strnlen(why, 150));
        send_connack(c, version, false, v5rc, pbuf, pb.len);
    } else {
        send_connack(c, version, false, version == MQTT_V5 ? v5rc : v3rc, NULL,
                     0);
    }
    conn_close(c->conn, why);
}

/* Build a message from wire fields (PUBLISH or will). */
static struct msg *make_msg(const char *topic, size_t tlen,
                            const struct mqtt_props *props,
                            const uint8_t *payload, uint32_t plen, uint8_t qos,
                            bool retain)
{
    uint8_t stack[512], *fp = stack;
    uint32_t flen = 0;
    int64_t expiry = 0;
    struct msg *m;

    if (props->raw_len) {
        if (props->raw_len > sizeof(stack))
            fp = xmalloc(props->raw_len);
        flen = mqtt_props_forward(props, false, fp, props->raw_len);
        if (MQTT_HAS_PROP(props, MQTT_PROP_MESSAGE_EXPIRY))
            expiry = (int64_t)time(NULL) + props->message_expiry;
    }
    m = msg_new(topic, tlen, flen ? fp : NULL, flen, payload, plen, qos, retain,
                expiry);
    if (fp != stack)
        free(fp);
    return m;
}

static void make_client_id(struct client *c, const char *prefix)
{
    struct broker *b = c->b;
    uint64_t rnd = 0;
    char buf[96];

    if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
        rnd = (uint64_t)time(NULL);
    /* threads > 1: an id this shard owns, so that a reconnect with it
     * finds its session here (a few tries: 1 in 'threads' fits) */
    do {
        b->reg.auto_id++;
        snprintf(buf, sizeof(buf), "%s%08llX%08llX", prefix ? prefix : "auto-",
                 (unsigned long long)(b->reg.auto_id & 0xffffffffu),
                 (unsigned long long)(rnd & 0xffffffffu));
    } while (!broker_owns_id(b, buf, strlen(buf)));
    c->client_id = xstrdup(buf);
}

/*
 * receive_maximum: the QoS 2 PUBLISHes a v5 client may have unreleased
 * towards us (the CONNACK Receive Maximum, 3.2.2.3.3; [MQTT-3.3.4-7]):
 * max_inflight_messages as in Mosquitto (0 = 65535), bounded by
 * max_receive_maximum. v3 clients are never told a limit, so only
 * max_receive_maximum bounds theirs.
 */
static uint16_t receive_maximum(const struct conf *cf, uint8_t version)
{
    uint16_t rm = cf->max_receive_maximum ? cf->max_receive_maximum : 65535;

    if (version == MQTT_V5 && cf->max_inflight_messages &&
        cf->max_inflight_messages < rm)
        rm = cf->max_inflight_messages;
    return rm;
}

static void connack_props(struct client *c, struct mqtt_pb *pb, bool assigned,
                          uint16_t server_keepalive)
{
    const struct conf *cf = c->b->conf;
    const struct conf_listener *l = &cf->listeners[c->listener];
    uint16_t rm = receive_maximum(cf, MQTT_V5);

    if (assigned)
        mqtt_pb_str(pb, MQTT_PROP_ASSIGNED_CLIENT_ID, c->client_id,
                    (uint16_t)strlen(c->client_id));
    if (server_keepalive)
        mqtt_pb_u16(pb, MQTT_PROP_SERVER_KEEP_ALIVE, c->keepalive);
    /* absent means 65535 (3.2.2.3.3): sent only below that */
    if (rm < 65535)
        mqtt_pb_u16(pb, MQTT_PROP_RECEIVE_MAXIMUM, rm);
    if (l->max_qos < 2)
        mqtt_pb_byte(pb, MQTT_PROP_MAXIMUM_QOS, l->max_qos);
    if (!cf->retain_available)
        mqtt_pb_byte(pb, MQTT_PROP_RETAIN_AVAILABLE, 0);
    if (cf->max_packet_size)
        mqtt_pb_u32(pb, MQTT_PROP_MAXIMUM_PACKET_SIZE, cf->max_packet_size);
    if (c->alias_max)
        mqtt_pb_u16(pb, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, c->alias_max);
}

/* What CONNECT processing needs after authentication, which may finish
 * later (authq) when the wire packet is gone. */
struct connect_req {
    uint8_t version;
    bool clean_start;
    bool assigned;
    uint16_t server_ka;
    uint32_t expiry;
    struct msg *will;
    uint32_t will_delay;
    bool password_used; /* authenticated with a password */
    bool sess_checked;  /* the cluster's session hook has seen it */
};

static void connect_finish(struct client *c, struct connect_req *req,
                           enum auth_result r, const char *reason,
                           bool bad_creds);

static void connect_req_free(struct connect_req *req)
{
    if (req) {
        msg_unref(req->will);
        free(req);
    }
}

static void auth_done(void *ud, enum auth_result r, const char *reason,
                      bool bad_creds)
{
    struct client *c = ud;
    struct connect_req *req = c->pending;

    c->pending = NULL;
    c->auth_job = NULL;
    if (c->conn == NULL || conn_closing(c->conn)) {
        connect_req_free(req);
        return;
    }
    conn_resume_read(c->conn);
    connect_finish(c, req, r, reason, bad_creds);
}

static void handle_connect(struct client *c, const struct mqtt_connect *p)
{
    struct broker *b = c->b;
    const struct conf *cf = b->conf;
    const struct conf_listener *l = &cf->listeners[c->listener];
    const struct conf_security *sec = conf_listener_sec(cf, c->listener);
    struct auth *a = b->auth[c->listener];
    struct auth_client ac;
    struct connect_req *req;
    const char *reason = NULL;
    char identity[1024];
    bool bad_creds = false;
    uint8_t v = p->version;

    c->version = v;
    c->keepalive = p->keepalive;
    if (p->bridge)
        c->bridge = true;
    if (v == MQTT_V5)
        c->problem_info =
            !MQTT_HAS_PROP(&p->props, MQTT_PROP_REQUEST_PROBLEM_INFO) ||
            p->props.request_problem_info;
    req = xcalloc(1, sizeof(*req));
    req->version = v;
    req->clean_start = p->clean_start;
    /* client identifier [MQTT-3.1.3-6..9] */
    if (p->client_id.len == 0) {
        if (v == MQTT_V31 || (v == MQTT_V311 && !p->clean_start) ||
            !sec->allow_zero_length_clientid) {
            c->client_id = xstrdup("<empty>");
            LOG_N(b->log,
                  "Client from %s:%d refused: empty client id not allowed.",
                  conn_peer_ip(c->conn), conn_peer_port(c->conn));
            refuse(c, v, MQTT_V3_REFUSED_IDENTIFIER, MQTT_RC_CLIENT_ID_INVALID,
                   "empty client id refused");
            goto refused;
        }
        make_client_id(c, sec->auto_id_prefix);
        req->assigned = true;
    } else {
        c->client_id = xstrndup(p->client_id.p, p->client_id.len);
    }
    /* keepalive limit */
    if (cf->max_keepalive &&
        (p->keepalive > cf->max_keepalive || p->keepalive == 0)) {
        if (v != MQTT_V5) {
            LOG_N(b->log,
                  "Client %s refused: keepalive %u above max_keepalive %u.",
                  c->client_id, p->keepalive, cf->max_keepalive);
            refuse(c, v, MQTT_V3_REFUSED_IDENTIFIER, 0,
                   "keepalive above max_keepalive");
            goto refused;
        }
        c->keepalive = cf->max_keepalive;
        req->server_ka = 1;
    }
    if (p->has_will && cf->retain_available == false && p->will_retain) {
        refuse(c, v, MQTT_V3_REFUSED_NOT_AUTHORIZED,
               MQTT_RC_RETAIN_NOT_SUPPORTED, "will retain not available");
        goto refused;
    }
    if (p->has_will && p->will_qos > l->max_qos) {
        refuse(c, v, MQTT_V3_REFUSED_NOT_AUTHORIZED, MQTT_RC_QOS_NOT_SUPPORTED,
               "will QoS not supported");
        goto refused;
    }
    if (p->has_will && cf->message_size_limit &&
        p->will_payload.len > cf->message_size_limit) {
        /* as a PUBLISH would be refused; Mosquitto: v5 0x95, v3 CONNACK 5 */
        b->st.limit_hits++;
        LOG_N(b->log,
              "Client %s refused: will payload of %u bytes over "
              "message_size_limit %u.",
              c->client_id, (unsigned)p->will_payload.len,
              cf->message_size_limit);
        refuse(c, v, MQTT_V3_REFUSED_NOT_AUTHORIZED, MQTT_RC_PACKET_TOO_LARGE,
               "will payload over message_size_limit");
        goto refused;
    }
    /* MQTT 5 connection properties */
    if (v == MQTT_V5) {
        c->recv_max = MQTT_HAS_PROP(&p->props, MQTT_PROP_RECEIVE_MAXIMUM)
                          ? p->props.receive_maximum
                          : 65535;
        c->max_packet = p->props.maximum_packet_size;
        c->problem_info =
            !MQTT_HAS_PROP(&p->props, MQTT_PROP_REQUEST_PROBLEM_INFO) ||
            p->props.request_problem_info;
        c->alias_max = l->max_topic_alias;
        c->out_alias_max = p->props.topic_alias_maximum < OUT_ALIAS_CAP
                               ? p->props.topic_alias_maximum
                               : OUT_ALIAS_CAP;
        if (c->alias_max)
            c->aliases = xcalloc((size_t)c->alias_max + 1, sizeof(char *));
        if (MQTT_HAS_PROP(&p->props, MQTT_PROP_AUTH_METHOD) &&
            !auth_has_method(b->auth[c->listener], p->props.auth_method.p,
                             p->props.auth_method.len)) {
            LOG_N(b->log,
                  "Client %s refused: unsupported authentication "
                  "method.",
                  c->client_id);
            b->st.auth_failed[STATS_AUTH_BAD_METHOD]++;
            refuse(c, v, 0, MQTT_RC_BAD_AUTH_METHOD,
                   "unsupported authentication method");
            goto refused;
        }
        req->expiry = p->props.session_expiry;
    } else {
        req->expiry = p->clean_start ? 0 : UINT32_MAX;
    }
    if (req->expiry != 0 && cf->persistent_client_expiration &&
        req->expiry > cf->persistent_client_expiration)
        req->expiry = cf->persistent_client_expiration;
    if (p->has_will) {
        req->will = make_msg(p->will_topic.p, p->will_topic.len, &p->will_props,
                             p->will_payload.p, p->will_payload.len,
                             p->will_qos, p->will_retain);
        req->will_delay = p->will_props.will_delay;
    }

    if (c->internal) {
        /* our own bridge's local end (bridge.c): trusted, as Mosquitto's */
        if (p->has_username)
            c->username = xstrndup(p->username.p, p->username.len);
        connect_finish(c, req, AUTH_ALLOW, NULL, false);
        return;
    }
    /* authentication */
    memset(&ac, 0, sizeof(ac));
    ac.client_id = c->client_id;
    if (p->has_username)
        c->username = xstrndup(p->username.p, p->username.len);
    ac.username = c->username;
    if (p->has_password) {
        ac.password = p->password.p;
        ac.password_len = p->password.len;
    }
    ac.peer_ip = conn_peer_ip(c->conn);
    ac.peer_port = conn_peer_port(c->conn);
    if ((l->tls_enabled || l->proxy_protocol == 2) &&
        (l->tls.use_identity_as_username || l->tls.use_subject_as_username)) {
        const char *why = NULL;
        const struct tls_info *ti = conn_tls_info(c->conn);
        int got = -1;
        if (!l->tls_enabled) /* TLS at the proxy: its PROXY v2 header's CN */
            got = proxy_cert_identity(conn_proxy(c->conn), identity,
                                      sizeof(identity), &why);
        else if (ti && !tls_info_verified(ti))
            why = "certificate not verified";
        else if (ti)
            got = auth_mtls_identity_from(tls_info_peer(ti),
                                          auth_mtls_source_of(&l->tls),
                                          identity, sizeof(identity), &why);
        if (got == 0) {
            ac.cert_identity = identity;
            free(c->username);
            c->username = xstrdup(identity);
            ac.username = c->username;
            ac.password = NULL;
            ac.password_len = 0;
        } else {
            ac.cert_error = why ? why : "no certificate";
        }
    }
    req->password_used = ac.password != NULL;
    if (ac.password && auth_has_password_file(a)) {
        /* a password hash check can take hundreds of ms: off the loop,
         * reading nothing more from this client until it is done */
        LOG_D(b->log, "Client %s: password check queued.", c->client_id);
        c->pending = req;
        conn_pause_read(c->conn);
        c->auth_job = authq_submit(b->authq, a, &ac, auth_done, c);
        return;
    }
    {
        enum auth_result r = auth_connect(a, &ac, &reason, &bad_creds);
        connect_finish(c, req, r, reason, bad_creds);
    }
    return;
refused:
    connect_req_free(req);
}

static void connect_finish(struct client *c, struct connect_req *req,
                           enum auth_result r, const char *reason,
                           bool bad_creds)
{
    struct broker *b = c->b;
    const struct conf *cf = b->conf;
    struct session *s;
    bool present = false;
    uint8_t v = req->version;

    if (r != AUTH_ALLOW) {
        auth_failed_log(c, c->username, reason ? reason : "denied");
        b->st.auth_failed[bad_creds ? STATS_AUTH_BAD_CREDENTIALS
                                    : STATS_AUTH_NOT_AUTHORIZED]++;
        if (bad_creds)
            refuse(c, v, MQTT_V3_REFUSED_BAD_USER_PASS,
                   MQTT_RC_BAD_USER_OR_PASS, "authentication failed");
        else
            refuse(c, v, MQTT_V3_REFUSED_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
                   "not authorised");
        connect_req_free(req);
        return;
    }

    c->pw_stamp = req->password_used
                      ? auth_user_stamp(b->auth[c->listener], c->username)
                      : 0;
    if (b->sess_hooks && !req->sess_checked && !c->internal) {
        /* cluster mode: the session may live on another node */
        void *tok = NULL;
        req->sess_checked = true;
        if (b->sess_hooks->connect(b->sess_hooks_ud, c, c->client_id,
                                   req->clean_start, &tok)) {
            c->pending = req;
            c->sess_wait = tok;
            conn_pause_read(c->conn);
            return;
        }
    }
    /* session attach, takeover [MQTT-3.1.4-3] */
    s = broker_session_find(b, c->client_id);
    if (s && s->client) {
        struct client *old = s->client;
        LOG_N(b->log, "Client %s already connected, closing old connection.",
              c->client_id);
        old->taken_over = true;
        old->s = NULL;
        s->client = NULL;
        /* [MQTT-3.1.4-3]: the old will goes as for any close (3.1.2.5):
         * published when the session ends here (clean start, or it had
         * expiry 0); discarded when the session goes on. A will with a
         * Will Delay Interval is discarded in both cases: the new
         * connection came before the delay ran out [MQTT-3.1.3-9]
         * (Mosquitto 2.0.11 does the same). */
        if ((req->clean_start || s->expiry == 0) && !old->clean_disconnect &&
            s->will_delay == 0)
            broker_publish_will(b, s);
        else
            session_will_set(s, NULL, 0);
        client_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER,
                          "session taken over");
    }
    if (s && s->will_at > 0) {
        /* an offline session with a delayed will: resuming it suppresses
         * the will, ending it (clean start) publishes it */
        if (req->clean_start)
            broker_publish_will(b, s);
        else
            session_will_set(s, NULL, 0);
    }
    if (s && (req->clean_start || s->expiry == 0)) {
        broker_session_remove(b, s);
        session_free(s);
        s = NULL;
    }
    if (s) {
        present = true;
    } else {
        s = session_new(b, c->client_id);
        broker_session_add(b, s);
    }
    s->client = c;
    c->s = s;
    s->internal = c->internal;
    s->listener = c->listener;
    s->version = v;
    s->expiry = req->expiry;
    free(s->username);
    s->username = c->username ? xstrdup(c->username) : NULL;
    session_will_set(s, req->will, req->will_delay);
    req->will = NULL;

    /* CONNACK */
    if (v == MQTT_V5) {
        uint8_t pbuf[400];
        struct mqtt_pb pb;
        mqtt_pb_init(&pb, pbuf, sizeof(pbuf));
        connack_props(c, &pb, req->assigned, req->server_ka);
        send_connack(c, v, present, 0, pbuf, pb.len);
    } else {
        send_connack(c, v, v == MQTT_V31 ? false : present, 0, NULL, 0);
    }
    c->connected = true;
    conn_set_deadline(c->conn, 0);
    if (conn_tls_info(c->conn)) {
        /* cut the client off at its certificate's notAfter */
        time_t na = tls_peer_not_after(conn_tls_info(c->conn));
        if (na > 0) {
            double left = difftime(na, time(NULL));
            conn_set_deadline(c->conn, left > 0.001 ? left : 0.001);
        }
    }
    if (c->keepalive)
        conn_set_idle(c->conn, c->keepalive * 1.5);
    if (cf->connection_messages) {
        char u[300] = "";
        if (c->username)
            snprintf(u, sizeof(u), ", u'%s'", c->username);
        LOG_N(b->log,
              "New client connected from %s:%d as %s (p%d, c%d, k%u%s).",
              conn_peer_ip(c->conn), conn_peer_port(c->conn), c->client_id,
              v == MQTT_V31    ? 1
              : v == MQTT_V311 ? 2
                               : 5,
              req->clean_start ? 1 : 0, c->keepalive, u);
    }
    connect_req_free(req);
    if (b->conn_hook) /* cluster mode: claim the id cluster-wide */
        b->conn_hook(b->conn_hook_ud, c->client_id);
    if (present)
        session_resume(s);
}

bool broker_take_over(struct broker *b, const char *id)
{
    struct session *s = broker_session_find(b, id);
    struct client *old;

    if (s == NULL || s->client == NULL)
        return false;
    old = s->client;
    LOG_N(b->log,
          "Client %s connected to another node, closing this connection.", id);
    old->taken_over = true;
    /* as a local takeover by a connection that does not start clean:
     * the will goes with the close only when the session ends here and
     * has no Will Delay Interval [MQTT-3.1.4-3, 3.1.3-9] */
    if (s->expiry != 0 || s->will_delay != 0)
        session_will_set(s, NULL, 0);
    client_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
    return true;
}

void broker_connect_resume(struct client *c)
{
    struct connect_req *req = c->pending;

    c->pending = NULL;
    c->sess_wait = NULL;
    if (req == NULL)
        return;
    if (c->conn == NULL || conn_closing(c->conn)) {
        connect_req_free(req);
        return;
    }
    conn_resume_read(c->conn);
    connect_finish(c, req, AUTH_ALLOW, NULL, false);
}

const char *broker_client_id(const struct client *c)
{
    return c->client_id;
}

struct session *broker_session_adopt(struct client *c, uint8_t version,
                                     uint32_t expiry)
{
    struct broker *b = c->b;
    struct session *s = broker_session_find(b, c->client_id);
    struct session_info in = {0};

    if (s && s->client == NULL)
        session_drop(s); /* a stale offline copy */
    else if (s)
        return NULL;
    in.client_id = c->client_id;
    in.username = c->username;
    in.listener = c->listener;
    in.version = version;
    in.expiry = expiry;
    in.offline_since = ev_now(b->loop);
    in.next_pid = 1;
    return session_restore(b, &in);
}

bool broker_deliver_restored(struct broker *b, struct session *s, struct msg *m,
                             uint8_t qos, uint32_t sub_id)
{
    struct session_item it = {0};

    if (msg_expired(m, (int64_t)time(NULL)))
        return false;
    if (!s->internal &&
        !auth_acl(b->auth[s->listener], s->client_id, s->username, m->topic,
                  m->topic_len, AUTH_READ))
        return false;
    it.m = msg_ref(m);
    it.qos = m->qos < qos ? m->qos : qos;
    if (sub_id) {
        it.nsub_ids = 1;
        it.sub_ids[0] = sub_id;
    }
    session_restore_queued(s, &it);
    return true;
}

/* ---- PUBLISH ---------------------------------------------------------- */

void client_ack_accepted(struct client *c, uint8_t type, uint16_t pid,
                         uint8_t rc)
{
    if (c->b->conf->persistence && c->b->conf->persistence_sync)
        broker_defer_ack(c->b, c, type, pid, rc);
    else
        client_send_ack(c, type, pid, rc);
}

/* PUBACK/PUBREC refusing PUBLISH p: reason rc for v5, 0 (none) for v3.
 * Nothing for QoS 0. */
static void ack_refused(struct client *c, const struct mqtt_publish *p,
                        uint8_t rc)
{
    uint8_t r = c->version == MQTT_V5 ? rc : 0;

    if (p->qos == 1)
        client_send_ack(c, MQTT_PUBACK, p->packet_id, r);
    else if (p->qos == 2)
        client_send_ack(c, MQTT_PUBREC, p->packet_id, r);
}

/* A PUBLISH from c. Returns true when c is to be held back (flow
 * control: a subscriber is over its high-water mark), false otherwise. */
static bool handle_publish(struct client *c, const struct mqtt_publish *p)
{
    struct broker *b = c->b;
    const struct conf *cf = b->conf;
    const struct conf_listener *l = &cf->listeners[c->listener];
    const char *topic = p->topic.p;
    size_t tlen = p->topic.len;
    struct publish_ack ack;
    enum publish_result r;
    struct msg *m;

    if (c->version == MQTT_V5 &&
        MQTT_HAS_PROP(&p->props, MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = p->props.topic_alias;
        if (a == 0 || a > c->alias_max) {
            protocol_fail(c, MQTT_RC_TOPIC_ALIAS_INVALID,
                          "topic alias out of range");
            return false;
        }
        if (tlen == 0) {
            if (c->aliases[a] == NULL) {
                protocol_fail(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
                return false;
            }
            topic = c->aliases[a];
            tlen = strlen(topic);
        } else {
            free(c->aliases[a]);
            c->aliases[a] = xstrndup(topic, tlen);
        }
    }
    switch (topic_name_check(topic, tlen)) {
    case TOPIC_OK:
        break;
    case TOPIC_TOO_DEEP: /* well-formed, over a limit: 0x90 */
        protocol_fail(c, MQTT_RC_TOPIC_NAME_INVALID,
                      "topic name has too many levels");
        return false;
    case TOPIC_MALFORMED: /* the codec refuses these; kept as a guard */
    default:
        protocol_fail(c, MQTT_RC_PROTOCOL_ERROR, "invalid topic name");
        return false;
    }
    if (p->qos > l->max_qos) {
        protocol_fail(c, MQTT_RC_QOS_NOT_SUPPORTED, "QoS above max_qos");
        return false;
    }
    if (p->retain && !cf->retain_available) {
        protocol_fail(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not available");
        return false;
    }
    if (cf->message_size_limit && p->payload_len > cf->message_size_limit) {
        b->st.limit_hits++;
        LOG_N(b->log,
              "Client %s: message of %u bytes on '%.*s' over "
              "message_size_limit %u dropped.",
              cid(c), p->payload_len, (int)tlen, topic, cf->message_size_limit);
        if (c->version == MQTT_V5) {
            client_disconnect(c, MQTT_RC_PACKET_TOO_LARGE,
                              "message_size_limit exceeded");
            return false;
        }
        /* v3 has no refusal: acknowledged (a QoS 2 id as received) */
        if (p->qos != 2 || session_rx_qos2_add(c->s, p->packet_id, 65535) >= 0)
            ack_refused(c, p, 0);
        return false;
    }
    if (b->over_memory) {
        /* memory_limit: refuse new messages until the heap shrinks */
        b->st.limit_hits++;
        b->st.pub_dropped++;
        b->st.dropped[STATS_DROP_MEMORY_LIMIT]++;
        ack_refused(c, p, MQTT_RC_QUOTA_EXCEEDED);
        return false;
    }
    if (p->qos == 2) {
        /* our own bridge's local end: the remote broker's window applies */
        uint16_t max = c->internal ? 65535 : receive_maximum(cf, c->version);
        int seen = session_rx_qos2_add(c->s, p->packet_id, max);
        if (seen < 0) {
            /* the client broke [MQTT-3.3.4-7]: more unreleased QoS 2
             * PUBLISHes than our Receive Maximum: DISCONNECT 0x93 (3.3.4) */
            char why[96];
            snprintf(why, sizeof(why),
                     "more than %u QoS 2 messages in flight (Receive "
                     "Maximum)",
                     max);
            protocol_fail(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, why);
            return false;
        }
        if (seen == 1) { /* duplicate of one not yet released [MQTT-4.3.3] */
            client_ack_accepted(c, MQTT_PUBREC, p->packet_id, 0);
            return false;
        }
    }
    m = make_msg(topic, tlen, &p->props, p->payload, p->payload_len, p->qos,
                 p->retain);
    /* QoS 1/2: broker_publish writes the PUBACK/PUBREC once it knows the
     * subscribers, before their copies (Mosquitto's order) */
    ack.type = p->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK;
    ack.pid = p->packet_id;
    r = broker_publish(b, c, NULL, m, p->qos ? &ack : NULL);
    msg_unref(m);
    if (r == PUBLISH_DENIED) {
        char tb[512];
        snprintf(tb, sizeof(tb), "%.*s", (int)tlen, topic);
        log_event(b->log, LOG_NOTICE, "acl_denied", "acl denied", "client_id",
                  cid(c), "username", c->username ? c->username : "", "topic",
                  tb, "action", "publish", (const char *)NULL);
        ack_refused(c, p, MQTT_RC_NOT_AUTHORIZED);
        if (p->qos == 2 && c->version == MQTT_V5)
            session_rx_qos2_del(c->s, p->packet_id);
        return false;
    }
    return r == PUBLISH_WAIT;
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------ */

struct retained_ctx {
    struct client *c;
    uint8_t qos;
    uint32_t sub_id;
};

static void deliver_retained(struct msg *m, void *arg)
{
    struct retained_ctx *rc = arg;
    struct client *c = rc->c;
    struct session *s = c->s;

    if (msg_expired(m, (int64_t)time(NULL)))
        return;
    if (!c->internal &&
        !auth_acl(c->b->auth[c->listener], c->client_id, c->username, m->topic,
                  m->topic_len, AUTH_READ))
        return;
    /* [MQTT-3.3.1-8]: retained messages sent on subscribe keep retain=1 */
    session_deliver(s, m, m->qos < rc->qos ? m->qos : rc->qos, DELIVER_RETAIN,
                    rc->sub_id ? &rc->sub_id : NULL, rc->sub_id ? 1 : 0);
}

/*
 * filters_check: the first malformed filter of SUBSCRIBE / UNSUBSCRIBE p
 * ('#' not the whole last level, '+' not a whole level [MQTT-4.7.1-2,
 * MQTT-4.7.1-3], a malformed "$share/" filter [MQTT-4.8.2-1, -2]) makes
 * the whole packet malformed (v5 4.13: DISCONNECT 0x81, then close;
 * v3: close), before any of its filters takes effect. Returns true when
 * all are well-formed (one too deep is: it is refused per filter).
 */
static bool filters_check(struct client *c, const struct mqtt_subscribe *p,
                          bool sub)
{
    uint32_t off = 0;
    struct mqtt_str f;
    struct mqtt_sub_opts o;
    char why[160];

    while (sub ? mqtt_sub_next(p, &off, &f, &o)
               : mqtt_unsub_next(p, &off, &f)) {
        const char *g, *inner = f.p;
        size_t glen, ilen = f.len;

        if (topic_share_parse(f.p, f.len, &g, &glen, &inner, &ilen) >= 0 &&
            topic_filter_check(inner, ilen) != TOPIC_MALFORMED)
            continue;
        snprintf(why, sizeof(why), "malformed topic filter '%.*s'",
                 (int)(f.len < 100 ? f.len : 100), f.p);
        protocol_fail(c, MQTT_RC_MALFORMED, why);
        return false;
    }
    return true;
}

static void handle_subscribe(struct client *c, const struct mqtt_subscribe *p)
{
    struct broker *b = c->b;
    const struct conf *cf = b->conf;
    const struct conf_listener *l = &cf->listeners[c->listener];
    bool v5 = c->version == MQTT_V5;
    uint8_t codes_stack[64], *codes = codes_stack;
    bool send_stack[64], *send = send_stack;
    uint32_t off = 0, i = 0, nsub;
    struct mqtt_str f;
    struct mqtt_sub_opts o;
    uint32_t sub_id = p->props.subscription_id;
    uint8_t buf[128];
    size_t n;

    /* threads > 1: take in what the other threads already handed over, so
     * a message acknowledged before this SUBSCRIBE is retained here, not
     * delivered to the new subscription as a live one */
    if (b->shard)
        shard_drain(b->shard);
    if (!filters_check(c, p, true))
        return;
    if (p->count > ARRAY_LEN(codes_stack)) {
        codes = xmalloc(p->count);
        send = xmalloc(p->count * sizeof(bool));
    }
    while (mqtt_sub_next(p, &off, &f, &o)) {
        const char *g, *inner = f.p;
        size_t glen, ilen = f.len;
        int sh = topic_share_parse(f.p, f.len, &g, &glen, &inner, &ilen);
        bool existed = false;
        uint8_t flags = 0, qos;

        send[i] = false;
        if (topic_filter_check(inner, ilen) != TOPIC_OK) {
            /* well-formed (filters_check) but over TOPIC_MAX_LEVELS: a
             * limit, refused for this filter only */
            codes[i++] = v5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
            LOG_N(b->log,
                  "Client %s: subscription filter '%.*s' refused: more "
                  "than %u levels.",
                  cid(c), (int)(f.len < 100 ? f.len : 100), f.p,
                  TOPIC_MAX_LEVELS);
            continue;
        }
        if (sh == 1 && o.no_local) {
            /* [MQTT-3.8.3-4] */
            if (codes != codes_stack) {
                free(codes);
                free(send);
            }
            protocol_fail(c, MQTT_RC_PROTOCOL_ERROR,
                          "no local on a shared subscription");
            return;
        }
        if (!c->internal &&
            !auth_acl(b->auth[c->listener], c->client_id, c->username, inner,
                      ilen, AUTH_SUBSCRIBE)) {
            char fb[512];
            snprintf(fb, sizeof(fb), "%.*s", (int)f.len, f.p);
            b->st.acl_denied++;
            log_event(b->log, LOG_NOTICE, "acl_denied", "acl denied",
                      "client_id", cid(c), "username",
                      c->username ? c->username : "", "topic", fb, "action",
                      "subscribe", (const char *)NULL);
            codes[i++] = v5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
            continue;
        }
        if (cf->max_subscriptions_per_client &&
            c->s->nsubs >= cf->max_subscriptions_per_client &&
            !session_has_sub(c->s, f.p, f.len)) {
            unsigned sup;
            b->st.limit_hits++;
            if (log_ratelimit_ok(&b->limit_rl, 5, 10.0, &sup))
                LOG_N(b->log,
                      "Client %s: max_subscriptions_per_client (%u) "
                      "reached (%u similar lines suppressed).",
                      cid(c), cf->max_subscriptions_per_client, sup);
            codes[i++] = v5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
            continue;
        }
        qos = o.qos < l->max_qos ? o.qos : l->max_qos;
        if (c->bridge) /* Mosquitto: a bridge gets its messages no more */
            flags |= ROUTER_NO_LOCAL | ROUTER_RETAIN_AS_PUBLISHED;
        if (o.no_local)
            flags |= ROUTER_NO_LOCAL;
        if (o.retain_as_published)
            flags |= ROUTER_RETAIN_AS_PUBLISHED;
        session_subscribe(c->s, f.p, f.len, qos, flags, o.retain_handling,
                          sub_id, &existed);
        LOGF(b->log, LOG_SUBSCRIBE, "%s %u %.*s", cid(c), qos, (int)f.len, f.p);
        codes[i] = qos;
        send[i] = sh == 0 && (o.retain_handling == 0 ||
                              (o.retain_handling == 1 && !existed));
        i++;
    }
    n = mqtt_enc_suback(NULL, 0, c->version, MQTT_SUBACK, p->packet_id, codes,
                        i, NULL, 0);
    {
        uint8_t *out = n <= sizeof(buf) ? buf : xmalloc(n);
        mqtt_enc_suback(out, n, c->version, MQTT_SUBACK, p->packet_id, codes, i,
                        NULL, 0);
        send_raw(c, out, n);
        if (out != buf)
            free(out);
    }
    /* retained messages after the SUBACK, for the i entries walked above */
    nsub = i;
    off = 0;
    i = 0;
    while (i < nsub && mqtt_sub_next(p, &off, &f, &o)) {
        if (send[i] && codes[i] < 0x80) {
            struct retained_ctx rc = {c, codes[i], sub_id};
            retain_match(b->retain, f.p, f.len, deliver_retained, &rc);
        }
        i++;
    }
    if (codes != codes_stack) {
        free(codes);
        free(send);
    }
}

static void handle_unsubscribe(struct client *c, const struct mqtt_subscribe *p)
{
    uint8_t codes_stack[64], *codes = codes_stack;
    uint32_t off = 0, i = 0;
    struct mqtt_str f;
    uint8_t buf[128];
    size_t n;

    if (!filters_check(c, p, false))
        return;
    if (p->count > ARRAY_LEN(codes_stack))
        codes = xmalloc(p->count);
    while (mqtt_unsub_next(p, &off, &f)) {
        int r = session_unsubscribe(c->s, f.p, f.len);
        codes[i++] = r == 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        LOGF(c->b->log, LOG_UNSUBSCRIBE, "%s %.*s", cid(c), (int)f.len, f.p);
    }
    n = mqtt_enc_suback(NULL, 0, c->version, MQTT_UNSUBACK, p->packet_id, codes,
                        i, NULL, 0);
    {
        uint8_t *out = n <= sizeof(buf) ? buf : xmalloc(n);
        mqtt_enc_suback(out, n, c->version, MQTT_UNSUBACK, p->packet_id, codes,
                        i, NULL, 0);
        send_raw(c, out, n);
        if (out != buf)
            free(out);
    }
    if (codes != codes_stack)
        free(codes);
}

/* ---- dispatch --------------------------------------------------------- */

/* Dispatch one packet. Returns true when no more is to be read from c
 * until broker_resume_paused (a PUBLISH met flow control). */
static bool handle_packet(struct client *c, const struct mqtt_packet *pkt)
{
    if (!c->connected) {
        if (pkt->type == MQTT_CONNECT) {
            handle_connect(c, &pkt->u.connect);
            return false;
        }
        protocol_fail(c, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
        return false;
    }
    switch (pkt->type) {
    case MQTT_CONNECT:
        protocol_fail(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
        return false;
    case MQTT_PUBLISH:
        return handle_publish(c, &pkt->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        if (session_ack(c->s, pkt->type, pkt->u.ack.packet_id, pkt->u.ack.rc) <
            0) {
            LOG_D(c->b->log, "Client %s: %s for unknown packet id %u.", cid(c),
                  mqtt_type_name(pkt->type), pkt->u.ack.packet_id);
            if (pkt->type == MQTT_PUBREC)
                client_send_ack(
                    c, MQTT_PUBREL, pkt->u.ack.packet_id,
                    c->version == MQTT_V5 ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
        }
        return false;
    case MQTT_PUBREL: {
        bool found = session_rx_qos2_del(c->s, pkt->u.ack.packet_id);
        client_send_ack(
            c, MQTT_PUBCOMP, pkt->u.ack.packet_id,
            found || c->version != MQTT_V5 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        return false;
    }
    case MQTT_SUBSCRIBE:
        handle_subscribe(c, &pkt->u.subscribe);
        return false;
    case MQTT_UNSUBSCRIBE:
        handle_unsubscribe(c, &pkt->u.subscribe);
        return false;
    case MQTT_PINGREQ: {
        uint8_t b2[2] = {MQTT_PINGRESP << 4, 0};
        send_raw(c, b2, 2);
        return false;
    }
    case MQTT_DISCONNECT: {
        const struct mqtt_disconnect *d = &pkt->u.disconnect;
        if (c->version == MQTT_V5 &&
            MQTT_HAS_PROP(&d->props, MQTT_PROP_SESSION_EXPIRY)) {
            if (c->s->expiry == 0 && d->props.session_expiry != 0) {
                protocol_fail(c, MQTT_RC_PROTOCOL_ERROR,
                              "session expiry set at DISCONNECT after 0");
                return false;
            }
            c->s->expiry = d->props.session_expiry;
        }
        if (c->version == MQTT_V5 && d->rc == MQTT_RC_DISCONNECT_WITH_WILL)
            c->send_will = true;
        else
            c->clean_disconnect = true;
        conn_close(c->conn, "client disconnected");
        return false;
    }
    case MQTT_AUTH:
        protocol_fail(c, MQTT_RC_PROTOCOL_ERROR,
                      "AUTH without an authentication method");
        return false;
    default:
        protocol_fail(c, MQTT_RC_PROTOCOL_ERROR, "unexpected packet type");
        return false;
    }
}

/*
 * The first packet declares more than PRECONNECT_MAX or max_packet_size
 * bytes: refused at once, before any of it is buffered, with a log line.
 * A v5 CONNECT gets CONNACK 0x95 when its protocol level came with the
 * fixed header (buf[0..n) is what arrived, hdr the fixed header's length);
 * anything else is closed (v3 has no code for it).
 */
static void refuse_large_first(struct client *c, const uint8_t *buf, size_t n,
                               size_t hdr, size_t total)
{
    struct broker *b = c->b;
    const struct conf *cf = b->conf;
    bool over_mps = cf->max_packet_size && total > cf->max_packet_size;
    char why[128];

    if (over_mps)
        b->st.limit_hits++;
    snprintf(why, sizeof(why),
             "packet before CONNECT too large (%zu bytes, over %s %u)", total,
             over_mps ? "max_packet_size" : "the pre-CONNECT limit",
             over_mps ? cf->max_packet_size : PRECONNECT_MAX);
    LOG_N(b->log, "Client from %s:%d refused: %s.", conn_peer_ip(c->conn),
          conn_peer_port(c->conn), why);
    /* CONNECT: protocol name (u16 length, "MQTT"), then the level */
    if ((buf[0] >> 4) == MQTT_CONNECT && n >= hdr + 7 && buf[hdr] == 0 &&
        buf[hdr + 1] == 4 && memcmp(buf + hdr + 2, "MQTT", 4) == 0 &&
        buf[hdr + 6] == MQTT_V5) {
        refuse(c, MQTT_V5, 0, MQTT_RC_PACKET_TOO_LARGE, why);
        return;
    }
    b->st.clients_rejected++;
    conn_close(c->conn, why);
}

static ssize_t client_on_data(void *ud, struct conn *conn, const uint8_t *buf,
                              size_t len)
{
    struct client *c = ud;
    struct broker *b = c->b;
    const struct conf *cf = b->conf;
    size_t off = 0;

    (void)conn;
    b->st.bytes_received += len;
    while (off < len) {
        uint8_t first, rc = 0;
        uint32_t rem;
        const char *why = NULL;
        struct mqtt_packet pkt;
        int h = mqtt_frame_peek(buf + off, len - off, &first, &rem);
        size_t total;
        bool hold;
        int r;

        if (h == MQTT_INCOMPLETE)
            break;
        if (h == MQTT_MALFORMED) {
            protocol_fail(c, MQTT_RC_MALFORMED, "bad remaining length");
            return -1;
        }
        total = (size_t)h + rem;
        if (!c->connected &&
            (total > PRECONNECT_MAX ||
             (cf->max_packet_size && total > cf->max_packet_size))) {
            refuse_large_first(c, buf + off, len - off, (size_t)h, total);
            return -1;
        }
        if (cf->max_packet_size && total > cf->max_packet_size) {
            b->st.limit_hits++;
            protocol_fail(c, MQTT_RC_PACKET_TOO_LARGE,
                          "packet larger than max_packet_size");
            return -1;
        }
        if (len - off < total) {
            conn_reserve_input(c->conn, total);
            break;
        }
        r = mqtt_decode(buf + off, total, c->connected ? c->version : 0, true,
                        &pkt, &rc, &why);
        if (r < 0) {
            if (!c->connected && rc == MQTT_RC_UNSUPPORTED_PROTOCOL) {
                LOG_N(b->log,
                      "Client from %s:%d refused: unsupported protocol "
                      "version.",
                      conn_peer_ip(c->conn), conn_peer_port(c->conn));
                refuse(c, MQTT_V311, MQTT_V3_REFUSED_PROTOCOL,
                       MQTT_RC_UNSUPPORTED_PROTOCOL,
                       "unsupported protocol version");
                return -1;
            }
            protocol_fail(c, rc ? rc : MQTT_RC_MALFORMED,
                          why ? why : "malformed packet");
            return -1;
        }
        if (b->shard && pkt.type == MQTT_CONNECT && !c->connected &&
            c->client_id == NULL && c->pending == NULL &&
            pkt.u.connect.client_id.len > 0 &&
            broker_migrate(b, c, pkt.u.connect.client_id.p,
                           pkt.u.connect.client_id.len, buf + off, len - off)) {
            /* the owning shard takes it from the CONNECT on, and counts
             * those bytes when it reads them */
            b->st.bytes_received -= len - off;
            return -1;
        }
        b->st.msgs_received++;
        hold = handle_packet(c, &pkt);
        off += total;
        if (conn_closing(c->conn))
            return -1;
        if (hold) {
            /* a subscriber's queue is filling: read no more from this
             * publisher until it drains (broker_resume_paused) */
            broker_pause(b, c);
            break;
        }
    }
    return (ssize_t)off;
}

/* ---- client-certificate OCSP (docs/tls.md) ----------------------------- */

/* ocsp_apply: act on a client's OCSP result: before CONNECT, refuse it or
 * let its CONNECT in; connected, cut it off when revoked. */
static void ocsp_apply(struct client *c, const struct ocsp_result *r,
                       double until)
{
    struct broker *b = c->b;
    const struct conf_tls *t = &b->conf->listeners[c->listener].tls;
    double now = ev_now(b->loop), retry;
    char d[400];
    bool refuse_it;

    if (c->conn == NULL || conn_closing(c->conn))
        return;
    ocsp_describe(r, d, sizeof(d));
    refuse_it = r->status == OCSP_REVOKED ||
                (t->ocsp_check == CONF_OCSP_HARD && r->status != OCSP_GOOD);
    /* re-check when the answer stops being reused; after a failure, in a
     * minute (or sooner when tls_ocsp_cache_seconds is shorter) */
    retry = t->ocsp_cache_seconds > 0 && t->ocsp_cache_seconds < 60
                ? (double)t->ocsp_cache_seconds
                : 60.0;
    c->ocsp_next = until > now ? until : now + retry;
    if (c->connected) {
        if (r->status != OCSP_REVOKED) {
            if (r->status != OCSP_GOOD)
                LOG_W(b->log, "Client %s (%s:%d): OCSP re-check: %s.", cid(c),
                      conn_peer_ip(c->conn), conn_peer_port(c->conn), d);
            return;
        }
        b->st.ocsp_refused++;
        LOG_N(b->log, "Client %s (%s:%d) disconnected: OCSP: %s.", cid(c),
              conn_peer_ip(c->conn), conn_peer_port(c->conn), d);
        client_disconnect(c, MQTT_RC_ADMIN_ACTION, "certificate revoked");
        return;
    }
    if (refuse_it) {
        char why[440];
        b->st.ocsp_refused++;
        b->st.clients_rejected++;
        snprintf(why, sizeof(why), "OCSP: %s", d);
        LOG_N(b->log, "Client from %s:%d refused: %s.", conn_peer_ip(c->conn),
              conn_peer_port(c->conn), why);
        conn_close(c->conn, why);
        return;
    }
    if (r->status != OCSP_GOOD)
        LOG_W(b->log,
              "Client from %s:%d: OCSP: %s; accepted (tls_ocsp_check soft).",
              conn_peer_ip(c->conn), conn_peer_port(c->conn), d);
    conn_resume_read(c->conn);
}

static void ocsp_done(void *ud, const struct ocsp_result *r, double until)
{
    struct client *c = ud;

    c->ocsp_wait = NULL;
    ocsp_apply(c, r, until);
}

/* ocsp_start: check c's certificate; returns true when c must wait. */
static bool ocsp_start(struct client *c)
{
    struct broker *b = c->b;
    const struct conf_tls *t = &b->conf->listeners[c->listener].tls;
    const struct tls_info *ti = conn_tls_info(c->conn);
    struct tls_ctx *ctx = b->tls[c->listener];
    struct ocsp_params p;
    struct ocsp_result r;
    X509 *peer = ti ? tls_info_peer(ti) : NULL, *issuer, *found = NULL;
    double until, to = (double)b->conf->connect_timeout * 0.75;
    bool now;

    if (t->ocsp_check == CONF_OCSP_OFF || b->ocsp == NULL || peer == NULL ||
        ctx == NULL || c->ocsp_wait != NULL)
        return false;
    issuer = tls_info_issuer(ti);
    if (issuer == NULL)
        issuer = found = ocsp_find_issuer(tls_ctx_store(ctx), peer);
    p.responder = t->ocsp_responder;
    p.cache_seconds = t->ocsp_cache_seconds ? t->ocsp_cache_seconds : 3600;
    p.timeout = to < 1.0 ? 1.0 : to;
    now = ocsp_cache_check(b->ocsp, peer, issuer, tls_ctx_store(ctx), &p, false,
                           ocsp_done, c, &r, &until, &c->ocsp_wait);
    X509_free(found);
    if (now) {
        ocsp_apply(c, &r, until);
        return false;
    }
    return true;
}

void client_ocsp_recheck(struct client *c)
{
    c->ocsp_next = 0;
    if (c->conn != NULL && !conn_closing(c->conn))
        (void)ocsp_start(c);
}

/* ---- events ------------------------------------------------------------ */

static void client_on_open(void *ud, struct conn *conn)
{
    struct client *c = ud;

    if (conn_is_tls(conn)) {
        char d[512];
        const struct tls_info *ti = conn_tls_info(conn);

        tls_describe(ti, d, sizeof(d));
        LOG_I(c->b->log, "TLS connection from %s:%d: %s", conn_peer_ip(conn),
              conn_peer_port(conn), d);
        c->b->st.tls_handshakes++;
        if (ti != NULL && tls_info_resumed(ti)) {
            c->b->st.tls_resumed++;
            LOG_D(c->b->log,
                  "TLS session resumed from a ticket for %s:%d (no "
                  "certificate verification: checked against the current "
                  "CRL and expiry instead)",
                  conn_peer_ip(conn), conn_peer_port(conn));
        }
    }
    conn_set_deadline(conn, (double)c->b->conf->connect_timeout);
    /* OCSP: CONNECT is read once the certificate's status is known */
    if (conn_is_tls(conn) && ocsp_start(c))
        conn_pause_read(conn);
}

static void client_on_drain(void *ud, struct conn *conn)
{
    struct client *c = ud;

    (void)conn;
    c->dropping = false;
    if (c->s && c->s->flow.blocking && c->s->q_n == 0 &&
        flow_sub_release(&c->s->flow)) {
        /* output drained: release publishers held for this subscriber */
        broker_resume_paused(c->b);
    }
    if (c->s)
        session_pump(c->s);
}

static void client_on_timeout(void *ud, struct conn *conn,
                              enum conn_timeout why)
{
    struct client *c = ud;

    if (why == CONN_TIMEOUT_DEADLINE && !c->connected && c->ocsp_wait) {
        ocsp_waiter_cancel(c->ocsp_wait);
        c->ocsp_wait = NULL;
        c->b->st.ocsp_refused++;
        c->b->st.clients_rejected++;
        LOG_N(c->b->log,
              "Client from %s:%d refused: OCSP: responder unreachable (no "
              "answer within connect_timeout %u s).",
              conn_peer_ip(conn), conn_peer_port(conn),
              c->b->conf->connect_timeout);
        conn_close(conn, "OCSP: responder unreachable");
        return;
    }
    if (why == CONN_TIMEOUT_DEADLINE && !c->connected) {
        LOG_N(c->b->log,
              "Client from %s:%d sent no CONNECT within %u s; "
              "closing.",
              conn_peer_ip(conn), conn_peer_port(conn),
              c->b->conf->connect_timeout);
        conn_close(conn, "no CONNECT in time");
        return;
    }
    if (why == CONN_TIMEOUT_DEADLINE && c->connected) {
        LOG_N(c->b->log,
              "Client %s (%s:%d) disconnected: its certificate expired.",
              cid(c), conn_peer_ip(conn), conn_peer_port(conn));
        client_disconnect(c, MQTT_RC_ADMIN_ACTION, "certificate expired");
        return;
    }
    if (why == CONN_TIMEOUT_IDLE) {
        if (c->b->conf->connection_messages)
            LOG_N(c->b->log, "Client %s has exceeded timeout, disconnecting.",
                  cid(c));
        client_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keepalive timeout");
    }
}

/* Take c off its broker's list and free what every client owns. */
static void client_unlink_free(struct client *c)
{
    struct broker *b = c->b;

    if (c->prev)
        c->prev->next = c->next;
    else
        b->reg.clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->reg.nclients--;
    free(c->client_id);
    free(c->username);
    free(c);
}

void client_discard(struct client *c)
{
    client_unlink_free(c);
}

static void client_on_close(void *ud, struct conn *conn, const char *reason)
{
    struct client *c = ud;
    struct broker *b = c->b;
    struct session *s = c->s;

    (void)conn;
    {
        int tf = metrics_tls_fail_class(reason);
        if (tf >= 0)
            b->st.tls_failed[tf]++;
    }
    if (c->paused)
        broker_unpause(b, c);
    broker_drop_acks(b, c);
    if (c->ocsp_wait) {
        ocsp_waiter_cancel(c->ocsp_wait);
        c->ocsp_wait = NULL;
    }
    if (c->auth_job) {
        authq_cancel(c->auth_job);
        c->auth_job = NULL;
        connect_req_free(c->pending);
        c->pending = NULL;
    }
    if (c->sess_wait) {
        if (b->sess_hooks)
            b->sess_hooks->cancel(b->sess_hooks_ud, c->sess_wait);
        c->sess_wait = NULL;
        connect_req_free(c->pending);
        c->pending = NULL;
    }
    if (s) {
        s->client = NULL;
        c->s = NULL;
        if (flow_sub_unblock(&s->flow))
            broker_resume_paused(b);
        s->offline_since = ev_now(b->loop);
        if (s->will && (!c->clean_disconnect || c->send_will)) {
            /* [MQTT-3.1.3-9]: after the Will Delay Interval, or when the
             * session ends, whichever comes first */
            if (s->will_delay > 0 && s->expiry > 0) {
                s->will_at = s->offline_since +
                             (double)(s->will_delay < s->expiry ? s->will_delay
                                                                : s->expiry);
                broker_will_changed(b, s);
            } else
                broker_publish_will(b, s);
        } else {
            session_will_set(s, NULL, 0);
        }
        if (s->expiry == 0) {
            broker_session_remove(b, s);
            session_free(s);
        } else if (b->sess_hooks && !s->internal) {
            b->sess_hooks->offline(b->sess_hooks_ud, s);
        }
    }
    /* logged once the will (if any) is published and, with threads > 1,
     * handed to the other threads: a client that reacts to this line sees
     * it everywhere */
    broker_flush_out(b);
    if (c->connected && b->conf->connection_messages && !c->taken_over) {
        if (c->clean_disconnect)
            LOG_N(b->log, "Client %s disconnected.", cid(c));
        else
            LOG_N(b->log, "Client %s closed its connection (%s).", cid(c),
                  reason);
    }
    if (c->aliases) {
        for (uint32_t i = 0; i <= c->alias_max; i++)
            free(c->aliases[i]);
        free(c->aliases);
    }
    for (uint16_t i = 0; i < c->out_alias_n; i++)
        free(c->out_alias[i]);
    free(c->out_alias);
    __atomic_sub_fetch(&b->listener_clients[c->listener], 1, __ATOMIC_RELAXED);
    client_unlink_free(c);
}
