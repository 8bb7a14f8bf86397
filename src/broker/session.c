/*
 * session.c - MQTT session state that outlives a connection: the
 * subscriptions, the outgoing QoS 1/2 window (inflight), the bounded queue
 * of messages waiting for the window or for the client to come back, and
 * the incoming QoS 2 packet ids.
 *
 *   publish -> session_deliver --online, window has room--> inflight -> wire
 *                              \--otherwise--> queue (max_queued_messages /
 *                                              max_queued_bytes; overflow
 *                                              dropped and counted)
 *   PUBACK / PUBCOMP -> slot freed -> session_pump moves the queue head in
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "auth.h"
#include "broker_int.h"
#include "conf.h"
#include "hashmap.h"
#include "log.h"
#include "msg.h"
#include "router.h"
#include "util.h"

struct session *session_new(struct broker *b, const char *client_id)
{
    struct session *s = xcalloc(1, sizeof(*s));

    s->b = b;
    s->client_id = xstrdup(client_id);
    s->next_pid = 1;
    s->expiry = 0;
    hashmap_init(&s->ix);
    return s;
}

static void queue_grow(struct session *s);

static void qitem_clear(struct qitem *qi)
{
    msg_unref(qi->m);
    qi->m = NULL;
}

/* threads > 1: tell the hub this shard gained or lost a subscription (a
 * shared one also as a group member). */
static void note_sub(const struct session *s, const char *filter, size_t len,
                     int delta)
{
    if (s->b->shard)
        shard_note_sub(s->b->shard, filter, len, delta);
    if (s->b->sub_hook) /* cluster mode (broker_set_share_hook) */
        s->b->sub_hook(s->b->sub_hook_ud, filter, len, delta);
}

void session_free(struct session *s)
{
    if (s == NULL)
        return;
    hashmap_clear(&s->ix);
    for (size_t i = 0; i < s->nsubs; i++) {
        router_unsubscribe(s->b->router, s->subs[i]->filter, s->subs[i]->len,
                           s);
        note_sub(s, s->subs[i]->filter, s->subs[i]->len, -1);
        free(s->subs[i]);
    }
    free(s->subs);
    for (uint16_t i = 0; i < s->infl_cap; i++)
        msg_unref(s->infl[i].m);
    free(s->infl);
    for (size_t i = 0; i < s->q_n; i++)
        qitem_clear(&s->q[(s->q_head + i) % s->q_cap]);
    free(s->q);
    free(s->rx_qos2);
    if (s->will) {
        msg_unref(s->will);
        s->will = NULL;
        broker_will_changed(s->b, s);
    }
    free(s->username);
    free(s->client_id);
    free(s);
}

void session_will_set(struct session *s, struct msg *will, uint32_t delay)
{
    bool had = s->will != NULL;

    msg_unref(s->will);
    s->will = will;
    s->will_delay = delay;
    s->will_at = 0;
    if (had || will)
        broker_will_changed(s->b, s);
}

/* ---- the session's own subscriptions -----------------------------------
 * Each subscription is one record (struct sub, its filter inline) that two
 * structures point to: subs[], in the order snapshots write them (order of
 * subscription; a removal moves the last pointer into the hole), and the
 * index ix, which finds a record by its filter (hashmap.h). Records never
 * move: growing or reordering subs[] moves pointers only, so the intrusive
 * entries in ix stay valid without re-linking, and each record keeps its
 * place in subs[] (pos) for an O(1) removal. Subscribe and unsubscribe are
 * O(1) however many filters one client holds (100,000 must not be
 * quadratic). The peer chooses the filters, so ix hashes them with SipHash
 * under the broker's random key (the registry's seed): nobody can aim
 * thousands of filters at one probe sequence. */

static struct sub *sub_find(const struct session *s, const char *filter,
                            size_t len)
{
    struct hashmap_entry *e =
        hashmap_find(&s->ix, &s->b->reg.seed, filter, len);

    return e != NULL ? hashmap_item(e, struct sub, he) : NULL;
}

/* A new record for filter (not held yet), last in subs[] and in ix. */
static struct sub *sub_add(struct session *s, const char *filter, size_t len)
{
    struct sub *sb = xcalloc(1, sizeof(*sb) + len + 1);

    memcpy(sb->filter, filter, len);
    sb->len = (uint16_t)len;
    hashmap_entry_init(&sb->he, &s->b->reg.seed, sb->filter, len);
    hashmap_insert(&s->ix, &sb->he);
    if (s->nsubs == s->subs_cap) {
        s->subs_cap = s->subs_cap ? s->subs_cap * 2 : 4;
        s->subs = xreallocarray(s->subs, s->subs_cap, sizeof(*s->subs));
    }
    sb->pos = s->nsubs;
    s->subs[s->nsubs++] = sb;
    return sb;
}

/* Take record sb out of ix and subs[] (the last one fills its place) and
 * free it. */
static void sub_del(struct session *s, struct sub *sb)
{
    struct sub *last = s->subs[--s->nsubs];

    hashmap_remove(&s->ix, &sb->he);
    hashmap_shrink(&s->ix);
    last->pos = sb->pos;
    s->subs[sb->pos] = last;
    free(sb);
}

int session_subscribe(struct session *s, const char *filter, size_t len,
                      uint8_t qos, uint8_t flags, uint8_t rh, uint32_t sub_id,
                      bool *existed)
{
    struct sub *sb = sub_find(s, filter, len);

    router_subscribe(s->b->router, filter, len, s, qos, flags, sub_id, existed);
    s->b->st.changes++;
    if (sb == NULL) {
        note_sub(s, filter, len, 1);
        sb = sub_add(s, filter, len);
    }
    sb->qos = qos;
    sb->flags = flags;
    sb->rh = rh;
    sb->sub_id = sub_id;
    return 0;
}

bool session_has_sub(const struct session *s, const char *filter, size_t len)
{
    return sub_find(s, filter, len) != NULL;
}

int session_unsubscribe(struct session *s, const char *filter, size_t len)
{
    struct sub *sb = sub_find(s, filter, len);

    if (sb == NULL)
        return -1;
    router_unsubscribe(s->b->router, filter, len, s);
    note_sub(s, filter, len, -1);
    s->b->st.changes++;
    sub_del(s, sb);
    return 0;
}

static uint16_t window_cap(const struct session *s)
{
    uint16_t cap = s->b->conf->max_inflight_messages;
    const struct client *c = s->client;

    if (cap == 0)
        cap = 65535;
    if (c && c->recv_max && c->recv_max < cap)
        cap = c->recv_max;
    return cap;
}

static uint16_t alloc_pid(struct session *s)
{
    /* ids in use are exactly the occupied inflight slots; the window is
     * far smaller than 65535 so this terminates quickly */
    for (;;) {
        uint16_t pid = s->next_pid++;
        bool used = false;
        if (s->next_pid == 0)
            s->next_pid = 1;
        if (pid == 0)
            continue;
        for (uint16_t i = 0; i < s->infl_cap; i++) {
            if (s->infl[i].state != SESSION_INFL_FREE &&
                s->infl[i].pid == pid) {
                used = true;
                break;
            }
        }
        if (!used)
            return pid;
    }
}

static struct inflight *infl_slot(struct session *s)
{
    uint16_t cap = window_cap(s);

    if (s->infl_n >= cap)
        return NULL;
    if (s->b->conf->max_inflight_bytes && s->infl_n > 0 &&
        s->infl_bytes >= s->b->conf->max_inflight_bytes)
        return NULL;
    for (uint16_t i = 0; i < s->infl_cap; i++) {
        if (s->infl[i].state == SESSION_INFL_FREE)
            return &s->infl[i];
    }
    {
        uint16_t old = s->infl_cap;
        uint32_t ncap = old ? (uint32_t)old * 2 : 8;
        if (ncap > 65535)
            ncap = 65535;
        if (ncap <= old)
            return NULL;
        s->infl = xreallocarray(s->infl, ncap, sizeof(*s->infl));
        memset(s->infl + old, 0, (ncap - old) * sizeof(*s->infl));
        s->infl_cap = (uint16_t)ncap;
        return &s->infl[old];
    }
}

static void send_inflight(struct session *s, struct inflight *f, bool dup)
{
    if (s->client == NULL || !s->client->connected)
        return;
    if (f->state == SESSION_INFL_PUBREL) {
        client_send_ack(s->client, MQTT_PUBREL, f->pid, 0);
        return;
    }
    if (client_send_publish(s->client, f->m, f->qos, f->retain, dup, f->pid,
                            f->sub_ids, f->nsub_ids) < 0) {
        /* too large for this client: drop it from the window [MQTT-3.1.2-25] */
        msg_unref(f->m);
        s->infl_bytes -= f->bytes;
        memset(f, 0, sizeof(*f));
        s->infl_n--;
        s->b->st.pub_dropped++;
        s->b->st.dropped[STATS_DROP_TOO_LARGE]++;
    }
}

static bool queue_push(struct session *s, struct msg *m, uint8_t qos,
                       bool retain, const uint32_t *sub_ids, uint8_t nsub_ids)
{
    const struct conf *cf = s->b->conf;
    size_t sz = msg_size(m);
    struct qitem *qi;

    if ((cf->max_queued_messages && s->q_n >= cf->max_queued_messages) ||
        (cf->max_queued_bytes && s->q_bytes + sz > cf->max_queued_bytes)) {
        s->b->st.pub_dropped++;
        s->b->st.dropped[STATS_DROP_QUEUE_FULL]++;
        if (!s->drop_logged) {
            s->drop_logged = true;
            LOG_N(s->b->log,
                  "Client %s: queue full (max_queued_messages %u, "
                  "max_queued_bytes %llu): dropping messages.",
                  s->client_id, cf->max_queued_messages,
                  (unsigned long long)cf->max_queued_bytes);
        }
        return false;
    }
    if (s->q_n == s->q_cap)
        queue_grow(s);
    qi = &s->q[(s->q_head + s->q_n) % s->q_cap];
    qi->m = msg_ref(m);
    qi->qos = qos;
    qi->retain = retain;
    qi->nsub_ids = nsub_ids;
    if (nsub_ids)
        memcpy(qi->sub_ids, sub_ids, nsub_ids * sizeof(uint32_t));
    s->q_n++;
    s->q_bytes += sz;
    s->b->st.changes++;
    return true;
}

/* Put a message into a free window slot and send it. */
static void window_send(struct session *s, struct inflight *f, struct msg *m,
                        uint8_t qos, bool retain, const uint32_t *sub_ids,
                        uint8_t nsub_ids)
{
    f->m = msg_ref(m);
    f->bytes = m->payload_len;
    s->infl_bytes += f->bytes;
    f->qos = qos;
    f->retain = retain;
    f->state = SESSION_INFL_PUBLISH;
    f->pid = alloc_pid(s);
    f->nsub_ids = nsub_ids;
    if (nsub_ids)
        memcpy(f->sub_ids, sub_ids, nsub_ids * sizeof(uint32_t));
    s->infl_n++;
    send_inflight(s, f, false);
}

/* Queue high-water mark for publisher flow control: half the limit. */
static bool queue_high(const struct session *s)
{
    const struct conf *cf = s->b->conf;
    size_t hi = cf->max_queued_messages ? cf->max_queued_messages / 2 : 1000;

    if (hi == 0)
        hi = 1;
    return s->q_n >= hi ||
           (cf->max_queued_bytes && s->q_bytes >= cf->max_queued_bytes / 2);
}

static bool queue_low(const struct session *s)
{
    const struct conf *cf = s->b->conf;
    size_t hi = cf->max_queued_messages ? cf->max_queued_messages / 2 : 1000;

    return s->q_n <= hi / 2 &&
           (!cf->max_queued_bytes || s->q_bytes <= cf->max_queued_bytes / 4);
}

/*
 * Publisher flow control. A message was queued for an online session, or
 * a QoS 0 one met a full output: when the publisher may be held back
 * (may_hold) and this subscriber still drains, mark the session blocking
 * and have the caller hold the publisher (DELIVER_WAIT) rather than drop
 * acknowledged messages later. A subscriber that does not drain within a
 * second is marked stuck (broker_tick) and holds back nobody.
 */
static enum deliver_result hold_publisher(struct session *s)
{
    flow_sub_block(&s->flow, ev_now(s->b->loop));
    return DELIVER_WAIT;
}

/* DELIVER_MAY_HOLD, and this subscriber still holds publishers back. */
static inline bool may_hold(const struct session *s, unsigned flags)
{
    return (flags & DELIVER_MAY_HOLD) && !s->flow.stuck;
}

enum deliver_result session_deliver(struct session *s, struct msg *m,
                                    uint8_t qos, unsigned flags,
                                    const uint32_t *sub_ids, uint8_t nsub_ids)
{
    struct client *c = s->client;
    bool online = c != NULL && c->connected;
    bool retain = (flags & DELIVER_RETAIN) != 0;

    if (qos == 0) {
        if (online && !client_can_send(c) && may_hold(s, flags) &&
            client_can_force(c)) {
            /* a reading-but-slow subscriber: keep the message (output may
             * go past the high-water mark up to the client's hard limit)
             * and hold the publisher back instead of dropping */
            if (client_send_publish_force(c, m, retain, sub_ids, nsub_ids) <
                0) {
                s->b->st.pub_dropped++;
                s->b->st.dropped[STATS_DROP_TOO_LARGE]++;
            }
            return hold_publisher(s);
        }
        if (online) {
            if (client_send_publish(c, m, 0, retain, false, 0, sub_ids,
                                    nsub_ids) < 0) {
                s->b->st.pub_dropped++;
                s->b->st.dropped[STATS_DROP_SLOW_CONSUMER]++;
                if (!c->dropping) {
                    /* once per congestion episode, reset on drain */
                    c->dropping = true;
                    LOG_N(s->b->log,
                          "Client %s is not reading: dropping QoS 0 "
                          "messages until its output drains.",
                          s->client_id);
                }
                return DELIVER_DROPPED;
            }
            return DELIVER_SENT;
        }
        if (s->b->conf->queue_qos0_messages &&
            queue_push(s, m, 0, retain, sub_ids, nsub_ids))
            return DELIVER_QUEUED;
        return DELIVER_DROPPED;
    }
    if (online && s->q_n == 0) {
        struct inflight *f = infl_slot(s);
        if (f) {
            window_send(s, f, m, qos, retain, sub_ids, nsub_ids);
            return DELIVER_SENT;
        }
    }
    if (!queue_push(s, m, qos, retain, sub_ids, nsub_ids))
        return DELIVER_DROPPED;
    if (online && may_hold(s, flags) && queue_high(s))
        return hold_publisher(s);
    return DELIVER_QUEUED;
}

/* A queued message may still go out: not expired, and the session's user
 * still has read access (the ACL may have been reloaded since it was
 * queued). */
static bool still_deliverable(struct session *s, const struct msg *m)
{
    if (msg_expired(m, (int64_t)time(NULL)))
        return false;
    if (!s->internal &&
        !auth_acl(s->b->auth[s->listener], s->client_id, s->username, m->topic,
                  m->topic_len, AUTH_READ)) {
        s->b->st.acl_denied++;
        return false;
    }
    return true;
}

void session_pump(struct session *s)
{
    struct client *c = s->client;

    while (c && c->connected && s->q_n > 0 && client_can_send(c)) {
        struct qitem *qi = &s->q[s->q_head];
        if (qi->qos > 0) {
            struct inflight *f = infl_slot(s);
            if (f == NULL)
                return;
            if (still_deliverable(s, qi->m))
                window_send(s, f, qi->m, qi->qos, qi->retain, qi->sub_ids,
                            qi->nsub_ids);
        } else if (still_deliverable(s, qi->m)) {
            client_send_publish(c, qi->m, 0, qi->retain, false, 0, qi->sub_ids,
                                qi->nsub_ids);
        }
        s->q_bytes -= msg_size(qi->m);
        qitem_clear(qi);
        s->q_head = (s->q_head + 1) % s->q_cap;
        s->q_n--;
    }
    if (queue_low(s)) {
        s->drop_logged = false;
        if (flow_sub_release(&s->flow))
            broker_resume_paused(s->b);
    }
}

int session_ack(struct session *s, uint8_t type, uint16_t pid, uint8_t rc)
{
    for (uint16_t i = 0; i < s->infl_cap; i++) {
        struct inflight *f = &s->infl[i];
        if (f->state == SESSION_INFL_FREE || f->pid != pid)
            continue;
        if (type == MQTT_PUBACK && f->qos == 1 &&
            f->state == SESSION_INFL_PUBLISH) {
            goto release;
        } else if (type == MQTT_PUBREC && f->qos == 2 &&
                   f->state == SESSION_INFL_PUBLISH && rc >= 0x80) {
            /* [MQTT-4.3.3-4]: an error PUBREC ends the flow: no PUBREL,
             * the packet id and the send quota are free again */
            goto release;
        } else if (type == MQTT_PUBREC && f->qos == 2 &&
                   f->state == SESSION_INFL_PUBLISH) {
            f->state = SESSION_INFL_PUBREL;
            s->b->st.changes++;
            msg_unref(f->m); /* the message is delivered; keep the id */
            f->m = NULL;
            s->infl_bytes -= f->bytes;
            f->bytes = 0;
            if (s->client)
                client_send_ack(s->client, MQTT_PUBREL, pid, 0);
            return 0;
        } else if (type == MQTT_PUBREC && f->state == SESSION_INFL_PUBREL) {
            if (s->client)
                client_send_ack(s->client, MQTT_PUBREL, pid, 0);
            return 0;
        } else if (type == MQTT_PUBCOMP && f->state == SESSION_INFL_PUBREL) {
            goto release;
        }
        return -1;
    release:
        s->b->st.changes++;
        msg_unref(f->m);
        s->infl_bytes -= f->bytes;
        memset(f, 0, sizeof(*f));
        s->infl_n--;
        session_pump(s);
        return 0;
    }
    return -1;
}

void session_resume(struct session *s)
{
    int64_t now = (int64_t)time(NULL);

    /* resend in packet id order of allocation is not tracked; slot order
     * keeps the original send order for windows that never wrapped */
    for (uint16_t i = 0; i < s->infl_cap; i++) {
        struct inflight *f = &s->infl[i];
        if (f->state == SESSION_INFL_PUBLISH && f->m &&
            msg_expired(f->m, now) && s->version == MQTT_V5) {
            msg_unref(f->m);
            s->infl_bytes -= f->bytes;
            memset(f, 0, sizeof(*f));
            s->infl_n--;
            continue;
        }
        if (f->state != SESSION_INFL_FREE)
            send_inflight(s, f, f->state == SESSION_INFL_PUBLISH);
    }
    session_pump(s);
}

int session_rx_qos2_add(struct session *s, uint16_t pid, uint16_t max)
{
    for (uint16_t i = 0; i < s->rx_qos2_n; i++) {
        if (s->rx_qos2[i] == pid)
            return 1;
    }
    if (s->rx_qos2_n >= max)
        return -1;
    if (s->rx_qos2_n == s->rx_qos2_cap) {
        uint32_t ncap = s->rx_qos2_cap ? (uint32_t)s->rx_qos2_cap * 2 : 4;
        if (ncap > 65535)
            ncap = 65535;
        s->rx_qos2 = xreallocarray(s->rx_qos2, ncap, sizeof(uint16_t));
        s->rx_qos2_cap = (uint16_t)ncap;
    }
    s->rx_qos2[s->rx_qos2_n++] = pid;
    s->b->st.changes++;
    return 0;
}

bool session_rx_qos2_del(struct session *s, uint16_t pid)
{
    for (uint16_t i = 0; i < s->rx_qos2_n; i++) {
        if (s->rx_qos2[i] == pid) {
            s->rx_qos2[i] = s->rx_qos2[--s->rx_qos2_n];
            s->b->st.changes++;
            return true;
        }
    }
    return false;
}

/* ---- snapshots (persistence, $SYS) ------------------------------------ */

void session_info(const struct session *s, struct session_info *out)
{
    out->client_id = s->client_id;
    out->username = s->username;
    out->listener = s->listener;
    out->version = s->version;
    out->expiry = s->expiry;
    out->offline_since = s->offline_since;
    out->online = s->client != NULL;
    out->next_pid = s->next_pid;
    out->will = s->will;
    out->will_delay = s->will_delay;
}

void session_counts(const struct session *s, struct session_counts *out)
{
    out->subs = s->nsubs;
    out->inflight = s->infl_n;
    out->queued = s->q_n;
    out->queued_bytes = s->q_bytes;
    out->rx_qos2 = s->rx_qos2_n;
}

void session_subs_foreach(const struct session *s,
                          void (*fn)(const struct session_sub *sub, void *arg),
                          void *arg)
{
    for (size_t i = 0; i < s->nsubs; i++) {
        const struct sub *sb = s->subs[i];
        struct session_sub out = {sb->filter, sb->len, sb->qos,
                                  sb->flags,  sb->rh,  sb->sub_id};
        fn(&out, arg);
    }
}

void session_inflight_foreach(const struct session *s,
                              void (*fn)(const struct session_item *it,
                                         void *arg),
                              void *arg)
{
    for (uint16_t i = 0; i < s->infl_cap; i++) {
        const struct inflight *f = &s->infl[i];
        struct session_item it;
        if (f->state == SESSION_INFL_FREE)
            continue;
        it.m = f->m;
        it.pid = f->pid;
        it.qos = f->qos;
        it.state = f->state;
        it.retain = f->retain;
        it.nsub_ids = f->nsub_ids;
        memcpy(it.sub_ids, f->sub_ids, sizeof(it.sub_ids));
        fn(&it, arg);
    }
}

void session_queue_foreach(const struct session *s,
                           void (*fn)(const struct session_item *it, void *arg),
                           void *arg)
{
    for (size_t i = 0; i < s->q_n; i++) {
        const struct qitem *qi = &s->q[(s->q_head + i) % s->q_cap];
        struct session_item it = {0};
        it.m = qi->m;
        it.qos = qi->qos;
        it.retain = qi->retain;
        it.nsub_ids = qi->nsub_ids;
        memcpy(it.sub_ids, qi->sub_ids, sizeof(it.sub_ids));
        fn(&it, arg);
    }
}

const uint16_t *session_rx_qos2(const struct session *s, size_t *n)
{
    *n = s->rx_qos2_n;
    return s->rx_qos2;
}

/* ---- restore (persistence) -------------------------------------------- */

struct session *session_restore(struct broker *b, const struct session_info *in)
{
    struct session *s;

    if (broker_session_find(b, in->client_id) != NULL)
        return NULL;
    s = session_new(b, in->client_id);
    s->username = in->username ? xstrdup(in->username) : NULL;
    s->listener = in->listener;
    s->version = in->version;
    s->expiry = in->expiry;
    s->offline_since = in->offline_since;
    s->next_pid = in->next_pid ? in->next_pid : 1;
    broker_session_add(b, s);
    return s;
}

int session_restore_sub(struct session *s, const struct session_sub *sub)
{
    bool existed = false;

    if (session_has_sub(s, sub->filter, sub->len))
        return -1;
    session_subscribe(s, sub->filter, sub->len, sub->qos, sub->flags, sub->rh,
                      sub->sub_id, &existed);
    return 0;
}

int session_restore_inflight(struct session *s, const struct session_item *it)
{
    struct inflight *f;

    if (s->infl_n == s->infl_cap) {
        uint32_t ncap = s->infl_cap ? (uint32_t)s->infl_cap * 2 : 8;
        if (ncap > 65535)
            ncap = 65535;
        if (ncap <= s->infl_cap) {
            msg_unref(it->m);
            return -1;
        }
        s->infl = xreallocarray(s->infl, ncap, sizeof(*s->infl));
        memset(s->infl + s->infl_cap, 0,
               (ncap - s->infl_cap) * sizeof(*s->infl));
        s->infl_cap = (uint16_t)ncap;
    }
    f = &s->infl[s->infl_n++]; /* restored windows are dense */
    f->m = it->m;
    f->pid = it->pid;
    f->qos = it->qos;
    f->state = it->state;
    f->retain = it->retain;
    f->nsub_ids = it->nsub_ids;
    memcpy(f->sub_ids, it->sub_ids, sizeof(f->sub_ids));
    f->bytes = it->m ? it->m->payload_len : 0;
    s->infl_bytes += f->bytes;
    return 0;
}

/* Make room for one more queue entry (the ring becomes linear). */
static void queue_grow(struct session *s)
{
    size_t ncap = s->q_cap ? s->q_cap * 2 : 8;
    struct qitem *nq = xcalloc(ncap, sizeof(*nq));

    for (size_t i = 0; i < s->q_n; i++)
        nq[i] = s->q[(s->q_head + i) % s->q_cap];
    free(s->q);
    s->q = nq;
    s->q_cap = ncap;
    s->q_head = 0;
}

void session_restore_queued(struct session *s, const struct session_item *it)
{
    struct qitem *qi;

    if (s->q_n == s->q_cap)
        queue_grow(s);
    qi = &s->q[(s->q_head + s->q_n) % s->q_cap];
    qi->m = it->m;
    qi->qos = it->qos;
    qi->retain = it->retain;
    qi->nsub_ids = it->nsub_ids;
    memcpy(qi->sub_ids, it->sub_ids, sizeof(qi->sub_ids));
    s->q_n++;
    s->q_bytes += msg_size(it->m);
}

void session_restore_rx_qos2(struct session *s, uint16_t pid)
{
    if (s->rx_qos2_n == s->rx_qos2_cap) {
        uint32_t ncap = s->rx_qos2_cap ? (uint32_t)s->rx_qos2_cap * 2 : 4;
        if (ncap > 65535)
            ncap = 65535;
        if (ncap <= s->rx_qos2_cap)
            return; /* cannot happen: ids are unique u16 values */
        s->rx_qos2 = xreallocarray(s->rx_qos2, ncap, sizeof(uint16_t));
        s->rx_qos2_cap = (uint16_t)ncap;
    }
    s->rx_qos2[s->rx_qos2_n++] = pid;
}

void session_drop(struct session *s)
{
    broker_session_remove(s->b, s);
    session_free(s);
}
