/*
 * broker.c - the broker core of one loop: the session registry (client id
 * hash), the publish pipeline (retain -> route -> merge overlapping
 * subscriptions -> read ACL -> deliver), per-listener auth and TLS
 * contexts, reload, and the once-a-second housekeeping.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "auth.h"
#include "authq.h"
#include "broker_int.h"
#include "conf.h"
#include "hashmap.h"
#include "hub.h"
#include "log.h"
#include "msg.h"
#include "ocsp_cache.h"
#include "proxy_proto.h"
#include "retain.h"
#include "router.h"
#include "sys.h"
#include "tls.h"
#include "tls_staple.h"
#include "tls_ticket.h"
#include "transport_ws.h"
#include "util.h"

/* ---- session registry (hashmap.h: keyed SipHash over client ids) ------- */

/*
 * Client ids are chosen by peers, so the map hashes them under a random
 * per-broker key (b->reg.seed): nobody can pick ids that pile up on one
 * probe sequence. Each session's entry is keyed by its own client_id
 * string, which does not change while the session lives.
 */

static struct session *session_of(struct hashmap_entry *e)
{
    return e != NULL ? hashmap_item(e, struct session, he) : NULL;
}

struct session *broker_session_find(struct broker *b, const char *id)
{
    return session_of(hashmap_find_str(&b->reg.sessions, &b->reg.seed, id));
}

void broker_session_add(struct broker *b, struct session *s)
{
    hashmap_entry_init(&s->he, &b->reg.seed, s->client_id,
                       strlen(s->client_id));
    hashmap_insert(&b->reg.sessions, &s->he);
    b->st.changes++;
}

void broker_session_remove(struct broker *b, struct session *s)
{
    if (hashmap_remove(&b->reg.sessions, &s->he) == 0)
        b->st.changes++;
}

size_t broker_session_count(const struct broker *b)
{
    return hashmap_count(&b->reg.sessions);
}

void broker_session_foreach(struct broker *b,
                            void (*fn)(struct session *s, void *arg), void *arg)
{
    struct hashmap_entry *e;
    size_t it = 0;

    /* removal leaves a tombstone in place, so the walk stays valid */
    while ((e = hashmap_next(&b->reg.sessions, &it)) != NULL)
        fn(session_of(e), arg);
}

static void clear_one(struct session *s, void *arg)
{
    (void)arg;
    session_drop(s);
}

void broker_clear(struct broker *b)
{
    broker_session_foreach(b, clear_one, NULL);
    retain_free(b->retain);
    b->retain = retain_new();
}

/* ---- construction ----------------------------------------------------- */

static void append_err(char *err, size_t errlen, const char *msg)
{
    size_t n = strlen(err);

    if (n + 2 < errlen)
        snprintf(err + n, errlen - n, "%s%s", n ? "\n" : "", msg);
}

/* Build auth and TLS for every listener of c. Returns 0 or -1 (errors
 * appended to err; nothing allocated is kept). */
static int build_contexts(struct broker *b, const struct conf *c,
                          struct auth ***authp, struct tls_ctx ***tlsp,
                          char *err, size_t errlen)
{
    struct auth **auth =
        xcalloc(c->nlisteners ? c->nlisteners : 1, sizeof(*auth));
    struct tls_ctx **tls =
        xcalloc(c->nlisteners ? c->nlisteners : 1, sizeof(*tls));
    char e[1024];
    int rc = 0;

    for (size_t i = 0; i < c->nlisteners; i++) {
        e[0] = '\0';
        auth[i] = auth_new(c, i, e, sizeof(e));
        if (auth[i] == NULL) {
            append_err(err, errlen, e);
            rc = -1;
        }
        if (c->listeners[i].tls_enabled) {
            e[0] = '\0';
            tls[i] = tls_ctx_new(&c->listeners[i].tls, b->log, e, sizeof(e));
            if (tls[i] == NULL) {
                append_err(err, errlen, e);
                rc = -1;
            }
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < c->nlisteners; i++) {
            auth_free(auth[i]);
            tls_ctx_unref(tls[i]);
        }
        free(auth);
        free(tls);
        return -1;
    }
    *authp = auth;
    *tlsp = tls;
    return 0;
}

/* Session ticket keys for the TLS contexts tls[] of c, attached to each
 * (one set per broker: a reload re-reads the key file). *tkp is NULL when
 * no listener has TLS. Returns 0, or -1 with the error appended. */
static int build_tickets(struct broker *b, const struct conf *c,
                         struct tls_ctx **tls, struct tls_tickets **tkp,
                         char *err, size_t errlen)
{
    struct tls_tickets *tk = NULL;
    char e[512];

    *tkp = NULL;
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (tls[i] == NULL)
            continue;
        e[0] = '\0';
        if (tk == NULL)
            tk = tls_tickets_new(c->tls_session_ticket_key_file,
                                 c->tls_session_ticket_lifetime, b->log, e,
                                 sizeof(e));
        if (tk == NULL || tls_tickets_attach(tk, tls[i], e, sizeof(e)) != 0) {
            append_err(err, errlen, e);
            tls_tickets_unref(tk);
            return -1;
        }
    }
    *tkp = tk;
    return 0;
}

static void free_contexts(struct auth **auth, struct tls_ctx **tls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        auth_free(auth[i]);
        tls_ctx_unref(tls[i]);
    }
    free(auth);
    free(tls);
}

/* ocsp_sync: a handle on the OCSP cache (the hub's with threads > 1)
 * when a listener checks client certificates. */
static void ocsp_sync(struct broker *b, const struct conf *c)
{
    for (size_t i = 0; i < c->nlisteners && b->ocsp == NULL; i++)
        if (c->listeners[i].tls.ocsp_check != CONF_OCSP_OFF) {
            struct ocsp_cache *oc;
            if (b->shard != NULL)
                oc = shard_ocsp(b->shard);
            else {
                if (b->ocsp_own == NULL)
                    b->ocsp_own = ocsp_cache_new();
                oc = b->ocsp_own;
            }
            b->ocsp = ocsp_loop_new(oc, b->loop);
        }
}

/* staple_sync: OCSP stapling per listener as the configuration says, on
 * the current contexts (at start, after a reload or a context rebuild). */
static void staple_sync(struct broker *b)
{
    if (b->staple == NULL)
        b->staple =
            xcalloc(b->nlisteners ? b->nlisteners : 1, sizeof(*b->staple));
    for (size_t i = 0; i < b->nlisteners; i++) {
        const struct conf_listener *l = &b->conf->listeners[i];
        char label[64];

        if (!l->tls.ocsp_stapling || b->tls[i] == NULL) {
            tls_staple_free(b->staple[i]);
            b->staple[i] = NULL;
            continue;
        }
        if (b->staple[i] == NULL) {
            snprintf(label, sizeof(label), "listener %u", (unsigned)l->port);
            b->staple[i] = tls_staple_new(b->loop, b->log, label,
                                          l->tls.ocsp_stapling_file, b->staples,
                                          (unsigned)i, b->staple_fetch);
        }
        tls_staple_attach(b->staple[i], b->tls[i]);
    }
}

struct broker *broker_new(struct ev_loop *loop, struct conf *c, struct log *lg,
                          char *err, size_t errlen)
{
    struct broker *b = xcalloc(1, sizeof(*b));

    err[0] = '\0';
    b->loop = loop;
    b->log = lg;
    hashmap_seed_init(&b->reg.seed);
    if (build_contexts(b, c, &b->auth, &b->tls, err, errlen) < 0) {
        free(b);
        return NULL;
    }
    if (build_tickets(b, c, b->tls, &b->tickets, err, errlen) < 0) {
        free_contexts(b->auth, b->tls, c->nlisteners);
        free(b);
        return NULL;
    }
    b->conf = c;
    b->nlisteners = c->nlisteners;
    b->listener_clients =
        xcalloc(c->nlisteners ? c->nlisteners : 1, sizeof(size_t));
    b->cl = conn_loop_new(loop, lg);
    b->router = router_new();
    b->authq = authq_new(loop);
    b->sys = sys_new();
    b->tls_not_after =
        xcalloc(b->nlisteners ? b->nlisteners : 1, sizeof(time_t));
    b->retain = retain_new();
    b->flow = flow_new();
    b->started = ev_now(loop);
    ocsp_sync(b, c);
    b->staples = tls_staples_new();
    b->staples_own = true;
    b->staple_fetch = true;
    staple_sync(b);
    return b;
}

void broker_free(struct broker *b)
{
    struct hashmap_entry *e;
    size_t it = 0;

    if (b == NULL)
        return;
    /* the walk reads only the table, never a freed entry */
    while ((e = hashmap_next(&b->reg.sessions, &it)) != NULL) {
        struct session *s = session_of(e);
        if (s->client)
            s->client->s = NULL;
        session_free(s);
    }
    hashmap_clear(&b->reg.sessions);
    shard_free(b->shard); /* after the sessions: they tell the hub */
    authq_free(b->authq);
    sys_free(b->sys);
    free(b->tls_not_after);
    for (size_t i = 0; b->staple != NULL && i < b->nlisteners; i++)
        tls_staple_free(b->staple[i]);
    free(b->staple);
    if (b->staples_own)
        tls_staples_free(b->staples);
    free_contexts(b->auth, b->tls, b->nlisteners);
    tls_tickets_unref(b->tickets);
    router_free(b->router);
    retain_free(b->retain);
    free(b->hits.v);
    free(b->targets);
    flow_free(b->flow);
    free(b->acks);
    if (b->shard == NULL)
        free(b->listener_clients); /* else the hub's, shared */
    for (struct client *c = b->reg.clients; c; c = c->next)
        c->ocsp_wait = NULL; /* freed with the loop's handle */
    ocsp_loop_free(b->ocsp);
    ocsp_cache_free(b->ocsp_own);
    conn_loop_free(b->cl);
    conf_free(b->conf);
    free(b);
}

const struct conf *broker_conf(const struct broker *b)
{
    return b->conf;
}

const struct broker_stats *broker_stats(const struct broker *b)
{
    return &b->st;
}

size_t broker_client_count(const struct broker *b)
{
    return b->reg.nclients;
}

struct log *broker_log(const struct broker *b)
{
    return b->log;
}

struct conn_loop *broker_conn_loop(const struct broker *b)
{
    return b->cl;
}

struct retain *broker_retain(const struct broker *b)
{
    return b->retain;
}

double broker_uptime(const struct broker *b)
{
    return ev_now(b->loop) - b->started;
}

struct tls_ctx *broker_tls_ctx(const struct broker *b, size_t li)
{
    return li < b->nlisteners ? b->tls[li] : NULL;
}

size_t broker_listener_clients(const struct broker *b, size_t li)
{
    return li < b->nlisteners
               ? __atomic_load_n(&b->listener_clients[li], __ATOMIC_RELAXED)
               : 0;
}

time_t broker_tls_not_after(const struct broker *b, size_t li)
{
    return li < b->nlisteners ? b->tls_not_after[li] : 0;
}

static void totals_one(struct session *s, void *arg)
{
    struct hub_totals *t = arg;

    t->sessions++;
    if (s->client == NULL)
        t->sessions_offline++;
    t->store_msgs += s->q_n + s->infl_n;
    t->store_bytes += s->q_bytes;
    if (s->client && s->client->conn) {
        const struct tls_info *ti = conn_tls_info(s->client->conn);
        time_t na = ti ? tls_peer_not_after(ti) : 0;
        if (na > 0) {
            t->client_certs++;
            if (!t->client_cert_soonest ||
                (uint64_t)na < t->client_cert_soonest)
                t->client_cert_soonest = (uint64_t)na;
        }
    }
}

void broker_totals(struct broker *b, bool all, struct hub_totals *t)
{
    memset(t, 0, sizeof(*t));
    t->st = b->st;
    t->clients = b->reg.nclients;
    t->subscriptions = router_count(b->router);
    broker_session_foreach(b, totals_one, t);
    if (all && b->shard)
        shard_totals(b->shard, t, true);
}

struct auth *broker_auth(struct broker *b, size_t li)
{
    return b->auth[li];
}

void broker_publish_will(struct broker *b, struct session *s)
{
    struct msg *w = s->will;

    s->will = NULL;
    s->will_at = 0;
    if (w == NULL)
        return;
    broker_will_changed(b, s);
    if (msg_expired(w, (int64_t)time(NULL))) {
        msg_unref(w);
        return;
    }
    if (broker_publish(b, NULL, s, w, NULL) == PUBLISH_DENIED)
        LOG_N(b->log, "Will of client %s on '%s' denied by the ACL.",
              s->client_id, w->topic);
    msg_unref(w);
}

/* ---- persistence_sync always ------------------------------------------ */

void broker_defer_ack(struct broker *b, struct client *c, uint8_t type,
                      uint16_t pid, uint8_t rc)
{
    if (b->nacks == b->acks_cap) {
        b->acks_cap = b->acks_cap ? b->acks_cap * 2 : 64;
        b->acks = xreallocarray(b->acks, b->acks_cap, sizeof(*b->acks));
    }
    b->acks[b->nacks].c = c;
    b->acks[b->nacks].type = type;
    b->acks[b->nacks].pid = pid;
    b->acks[b->nacks].rc = rc;
    b->nacks++;
}

void broker_drop_acks(struct broker *b, struct client *c)
{
    for (size_t i = 0; i < b->nacks; i++)
        if (b->acks[i].c == c)
            b->acks[i].c = NULL;
}

size_t broker_pending_acks(const struct broker *b)
{
    return b->nacks;
}

void broker_flush_acks(struct broker *b, bool ok)
{
    size_t n = b->nacks;

    b->nacks = 0;
    for (size_t i = 0; i < n; i++) {
        struct client *c = b->acks[i].c;
        if (c == NULL)
            continue;
        if (ok)
            client_send_ack(c, b->acks[i].type, b->acks[i].pid, b->acks[i].rc);
        else
            client_disconnect(c, MQTT_RC_UNSPECIFIED,
                              "message could not be stored");
    }
}

/* ---- publisher flow control ------------------------------------------ */

void broker_pause(struct broker *b, struct client *c)
{
    if (c->paused || c->conn == NULL)
        return;
    flow_hold(b->flow, c);
    c->paused = true;
    conn_pause_read(c->conn);
}

void broker_resume_paused(struct broker *b)
{
    if (flow_resume(b->flow))
        shard_kick(b->shard);
}

void broker_unpause(struct broker *b, struct client *c)
{
    flow_forget(b->flow, c);
    c->paused = false;
}

/* ---- accept ----------------------------------------------------------- */

/*
 * ws_layer: the WebSocket server layer of listener l for conn, pushed over
 * the plain or TLS transport (and the PROXY layer, if any); the
 * connection's deadline (connect_timeout) bounds the TLS and the upgrade
 * handshakes together, so a slow partial request is cut by it.
 */
static struct transport *
ws_layer(struct broker *b, const struct conf_listener *l, struct conn *conn)
{
    const struct conf *cf = b->conf;
    struct ws_conf wc;

    memset(&wc, 0, sizeof(wc));
    wc.path = l->ws_path;
    wc.origins = (const char *const *)l->ws_origins;
    wc.norigins = l->nws_origins;
    wc.headers_size = cf->websockets_headers_size;
    /* one frame may carry a whole MQTT packet, not more */
    wc.max_frame = cf->max_packet_size ? cf->max_packet_size : 268435460u;
    wc.log = b->log;
    wc.peer = conn_peer_ip(conn);
    return transport_ws_server(&wc);
}

struct client *broker_accept(struct broker *b, size_t li, int fd,
                             const struct sockaddr *sa, socklen_t salen)
{
    const struct conf_listener *l = &b->conf->listeners[li];
    struct client *c;
    int maxc = l->max_connections;

    if (maxc < 0 && b->conf->max_connections >= 0)
        maxc = b->conf->max_connections;
    if (maxc >= 0 && __atomic_load_n(&b->listener_clients[li],
                                     __ATOMIC_RELAXED) >= (size_t)maxc) {
        static const char *why = "max_connections reached";
        unsigned sup;

        b->st.clients_rejected++;
        b->st.limit_hits++;
        /* at most one line a second: a reconnect storm against a full
         * listener must not flood the log */
        if (log_ratelimit_ok(&b->maxconn_rl, 1, 1.0, &sup))
            LOG_N(b->log,
                  "Connection on listener %u refused: %s (%d; %u more "
                  "refused since the last such line).",
                  (unsigned)l->port, why, maxc, sup);
        close(fd);
        return NULL;
    }
    c = client_new(b, li);
    __atomic_add_fetch(&b->listener_clients[li], 1, __ATOMIC_RELAXED);
    b->st.clients_total++;
    if (l->proxy_protocol != 0 || l->protocol == CONF_PROTO_WEBSOCKETS) {
        double deadline = (double)b->conf->connect_timeout;
        struct proxy_policy pol;
        if (l->proxy_protocol != 0) /* the PROXY header first, under TLS */
            proxy_policy_for(b->conf, l, &pol, &deadline);
        c->conn = conn_create(b->cl, fd, b->tls[li], deadline, sa, salen,
                              &client_handler, c);
        if (l->proxy_protocol != 0)
            conn_insert_layer(c->conn, transport_proxy_new(&pol));
        if (l->protocol == CONF_PROTO_WEBSOCKETS)
            conn_push_layer(c->conn, ws_layer(b, l, c->conn));
        conn_start(c->conn);
        return c;
    }
    c->conn =
        conn_new(b->cl, fd, b->tls[li], (double)b->conf->tls_handshake_timeout,
                 sa, salen, &client_handler, c);
    return c;
}

struct client *broker_accept_internal(struct broker *b, int fd)
{
    struct client *c = client_new(b, 0);
    struct sockaddr_un sun;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    c->internal = true;
    c->bridge = true;
    __atomic_add_fetch(&b->listener_clients[0], 1, __ATOMIC_RELAXED);
    b->st.clients_total++;
    c->conn = conn_new(b->cl, fd, NULL, 0, (const struct sockaddr *)&sun,
                       sizeof(sa_family_t), &client_handler, c);
    return c;
}

void broker_set_sys_json(struct broker *b, void (*fn)(void *ud, void *json),
                         void *ud)
{
    b->sys_json = fn;
    b->sys_json_ud = ud;
}

void broker_sys_json_extra(struct broker *b, void *json)
{
    if (b->sys_json)
        b->sys_json(b->sys_json_ud, json);
}

void broker_mark_internal(struct broker *b, const char *id)
{
    struct session *s = broker_session_find(b, id);

    if (s != NULL)
        s->internal = true;
}

/* ---- publish pipeline ------------------------------------------------- */

static struct target *target_slot(struct broker *b, size_t n)
{
    if (n >= b->ntargets_cap) {
        b->ntargets_cap = b->ntargets_cap ? b->ntargets_cap * 2 : 64;
        b->targets =
            xreallocarray(b->targets, b->ntargets_cap, sizeof(*b->targets));
    }
    return &b->targets[n];
}

/* Marks a session whose read ACL refused the message being routed. */
#define MARK_DENIED UINT32_MAX

/*
 * Step 3 of broker_publish: collect m's targets on this shard into
 * b->targets (origin: the publishing session when it lives here, for No
 * Local): overlapping subscriptions merged, the read ACL checked once per
 * session. Returns the number of targets.
 */
static size_t route_collect(struct broker *b, struct session *origin,
                            struct msg *m)
{
    size_t nt = 0;
    uint32_t gen;

    router_match(b->router, m->topic, m->topic_len, &b->hits);
    if (b->hits.n == 0)
        return 0;
    gen = ++b->mark_gen;
    if (gen == 0)
        gen = ++b->mark_gen;
    for (size_t i = 0; i < b->hits.n; i++) {
        const struct router_hit *h = &b->hits.v[i];
        struct session *s = h->owner;
        struct target *t;

        if ((h->flags & ROUTER_NO_LOCAL) && s == origin && !h->shared)
            continue;
        /* threads > 1: one shard serves a shared group per message */
        if (h->shared && b->shard &&
            !shard_serves(b->shard, m, h->share_key, h->share_len))
            continue;
        /* cluster mode: a shared group gets its messages through the
         * cluster (broker_publish_share), and only those */
        if (b->sub_hook && !b->share_local &&
            (h->shared
                 ? b->share_only == NULL || h->share_len != b->share_only_len ||
                       memcmp(h->share_key, b->share_only, h->share_len) != 0
                 : b->share_only != NULL))
            continue;
        if (s->mark == gen) {
            if (s->mark_idx == MARK_DENIED)
                continue;
            t = &b->targets[s->mark_idx];
            if (h->qos > t->qos)
                t->qos = h->qos;
            if (h->flags & ROUTER_RETAIN_AS_PUBLISHED)
                t->rap = true;
        } else {
            s->mark = gen;
            if (!s->internal &&
                !auth_acl(b->auth[s->listener], s->client_id, s->username,
                          m->topic, m->topic_len, AUTH_READ)) {
                b->st.acl_denied++;
                s->mark_idx = MARK_DENIED;
                continue;
            }
            s->mark_idx = (uint32_t)nt;
            t = target_slot(b, nt++);
            t->s = s;
            t->qos = h->qos;
            t->rap = (h->flags & ROUTER_RETAIN_AS_PUBLISHED) != 0;
            t->nsub_ids = 0;
        }
        if (h->sub_id && t->nsub_ids < ARRAY_LEN(t->sub_ids))
            t->sub_ids[t->nsub_ids++] = h->sub_id;
    }
    return nt;
}

/* Step 5: deliver m to the nt collected targets. may_hold: the publisher
 * can be held back. Returns true when a subscriber asks for that. */
static bool route_deliver(struct broker *b, struct session *origin,
                          struct msg *m, size_t nt, bool may_hold)
{
    unsigned hold = may_hold ? DELIVER_MAY_HOLD : 0, done = 0;

    for (size_t i = 0; i < nt; i++) {
        struct target *t = &b->targets[i];
        struct session *s = t->s;
        uint8_t qos = b->conf->upgrade_outgoing_qos ? t->qos
                      : m->qos < t->qos             ? m->qos
                                                    : t->qos;
        unsigned flags;

        /* [MQTT-3.3.1-9]: retain is 0 on normal delivery unless RAP */
        flags = (t->rap && m->retain ? DELIVER_RETAIN : 0) |
                (s != origin ? hold : 0);
        done |= session_deliver(s, m, qos, flags, t->sub_ids, t->nsub_ids);
    }
    return (done & DELIVER_WAIT) != 0;
}

/* A remote publisher's message from the hub: route it here. */
static bool route_remote(struct broker *b, struct msg *m)
{
    bool wait;

    b->routing = true;
    wait = route_deliver(b, NULL, m, route_collect(b, NULL, m), true);
    b->routing = false;
    return wait;
}

/* Step 2 of broker_publish: the retained store. */
static void publish_retain(struct broker *b, struct client *c,
                           struct session *s, struct msg *m, bool local)
{
    const struct conf *cf = b->conf;
    unsigned sup;

    if (local) { /* the broker's own ($SYS) */
        retain_set(b->retain, m, 0, 0);
        return;
    }
    b->st.changes++;
    if (retain_set(b->retain, m, cf->max_retained_messages,
                   cf->max_retained_bytes) == 0 ||
        (c == NULL && s != NULL)) /* a will of a session here */
        return;
    b->st.limit_hits++;
    if (c == NULL) /* a dead node's will (broker_publish_orphan_will) */
        return;
    if (log_ratelimit_ok(&b->limit_rl, 5, 10.0, &sup))
        LOG_W(b->log,
              "Retained message on '%s' from %s refused: retained "
              "store limit reached (%u similar lines suppressed).",
              m->topic, c->client_id ? c->client_id : "<unknown>", sup);
}

/* publish: broker_publish, and broker_publish_orphan_will with c and s
 * NULL and local false; local: the broker's own message ($SYS), which
 * stays on this node (shared groups here, no publish hook) */
static enum publish_result publish(struct broker *b, struct client *c,
                                   struct session *s, struct msg *m,
                                   const struct publish_ack *ack, bool local)
{
    struct session *origin = c ? c->s : s;
    bool may_hold = c != NULL, wait;
    size_t nt;

    if (b->routing) {
        /* a publish from inside delivery would reuse hits/targets under
         * the outer loop: a bug, refused loudly rather than corrupting */
        LOG_W(b->log, "Nested publish on '%s' refused (internal error).",
              m->topic);
        return PUBLISH_DENIED;
    }
    if ((c && !c->internal) || (!c && s && !s->internal)) {
        bool ok =
            c && c->bridge
                ? auth_acl_bridge_state(b->auth[c->listener], c->client_id,
                                        c->username, m->topic, m->topic_len)
            : c ? auth_acl(b->auth[c->listener], c->client_id, c->username,
                           m->topic, m->topic_len, AUTH_WRITE)
                : auth_acl(b->auth[s->listener], s->client_id, s->username,
                           m->topic, m->topic_len, AUTH_WRITE);
        if (!ok) {
            b->st.acl_denied++;
            return PUBLISH_DENIED;
        }
    }
    if (m->retain)
        publish_retain(b, c, s, m, local);
    b->st.pub_msgs_received++;
    if (b->shard) /* before any other thread sees m */
        shard_stamp(b->shard, m);
    b->routing = true;
    b->share_local = local;
    nt = route_collect(b, origin, m);
    b->share_local = false;
    if (ack != NULL && c != NULL) {
        /* [MQTT-3.4.2.1] / 3.5.2.1: 0x10 "No matching subscribers" (v5);
         * written before the copies (same output buffer: wire order) */
        uint8_t rc = c->version == MQTT_V5 && nt == 0 &&
                             !shard_others_have_subs(b->shard)
                         ? MQTT_RC_NO_MATCHING_SUBSCRIBERS
                         : MQTT_RC_SUCCESS;
        client_ack_accepted(c, ack->type, ack->pid, rc);
    }
    wait = route_deliver(b, origin, m, nt, may_hold);
    b->routing = false;
    /* other shards route it to their subscribers and keep their own copy
     * of the retained store (every retained publish reaches this point
     * after the retained step) */
    if (b->shard && shard_forward(b->shard, m, may_hold))
        wait = true;
    if (b->pub_hook && !local) /* cluster mode */
        b->pub_hook(b->pub_hook_ud, m);
    return wait ? PUBLISH_WAIT : PUBLISH_OK;
}

enum publish_result broker_publish(struct broker *b, struct client *c,
                                   struct session *s, struct msg *m,
                                   const struct publish_ack *ack)
{
    return publish(b, c, s, m, ack, c == NULL && s == NULL);
}

void broker_set_publish_hook(struct broker *b,
                             void (*fn)(void *ud, const struct msg *m),
                             void *ud)
{
    b->pub_hook = fn;
    b->pub_hook_ud = ud;
}

void broker_will_changed(struct broker *b, struct session *s)
{
    uint32_t d = s->will_delay;
    int64_t due = 0;

    if (b->will_hook == NULL)
        return;
    if (s->will == NULL) {
        b->will_hook(b->will_hook_ud, s->client_id, NULL, 0, 0);
        return;
    }
    /* as client_close schedules it [MQTT-3.1.3-9] */
    if (s->expiry == 0)
        d = 0;
    else if (s->expiry < d)
        d = s->expiry;
    if (s->will_at > 0)
        due = (int64_t)time(NULL) + (int64_t)(s->will_at - ev_now(b->loop));
    b->will_hook(b->will_hook_ud, s->client_id, s->will, d, due);
}

void broker_set_will_hook(struct broker *b,
                          void (*fn)(void *ud, const char *client_id,
                                     const struct msg *will, uint32_t delay,
                                     int64_t due),
                          void *ud)
{
    b->will_hook = fn;
    b->will_hook_ud = ud;
}

bool broker_publish_orphan_will(struct broker *b, struct msg *m)
{
    /* no ACL (checked at its CONNECT), no client to hold back */
    return publish(b, NULL, NULL, m, NULL, false) != PUBLISH_DENIED;
}

void broker_set_connect_hook(struct broker *b,
                             void (*fn)(void *ud, const char *client_id),
                             void *ud)
{
    b->conn_hook = fn;
    b->conn_hook_ud = ud;
}

void broker_set_session_hooks(struct broker *b,
                              const struct broker_sess_hooks *h, void *ud)
{
    b->sess_hooks = h;
    b->sess_hooks_ud = ud;
}

bool broker_publish_remote(struct broker *b, struct msg *m)
{
    if (b->routing) {
        LOG_W(b->log, "Nested publish on '%s' refused (internal error).",
              m->topic);
        return false;
    }
    (void)route_remote(b, m); /* another node cannot be held back */
    return true;
}

struct share_hook_ctx {
    void (*fn)(void *ud, const char *filter, size_t len, int delta);
    void *ud;
};

static void share_hook_one(struct session *s, void *arg)
{
    struct share_hook_ctx *h = arg;

    for (size_t i = 0; i < s->nsubs; i++)
        h->fn(h->ud, s->subs[i]->filter, s->subs[i]->len, 1);
}

void broker_set_share_hook(struct broker *b,
                           void (*fn)(void *ud, const char *filter, size_t len,
                                      int delta),
                           void *ud)
{
    struct share_hook_ctx h = {fn, ud};

    b->sub_hook = fn;
    b->sub_hook_ud = ud;
    if (fn != NULL)
        broker_session_foreach(b, share_hook_one, &h);
}

bool broker_publish_share(struct broker *b, const char *key, size_t len,
                          struct msg *m)
{
    size_t nt;

    if (b->routing) {
        LOG_W(b->log, "Nested publish on '%s' refused (internal error).",
              m->topic);
        return false;
    }
    b->routing = true;
    b->share_only = key;
    b->share_only_len = len;
    nt = route_collect(b, NULL, m);
    b->share_only = NULL;
    (void)route_deliver(b, NULL, m, nt, true);
    b->routing = false;
    return nt > 0;
}

void broker_publish_sys(struct broker *b, struct msg *m)
{
    broker_publish(b, NULL, NULL, m, NULL);
}

void broker_flush_out(struct broker *b)
{
    if (b->shard)
        shard_flush(b->shard);
}

/* ---- threads > 1: the hub's items for this shard ----------------------- */

static bool hub_item_cb(void *ud, struct hub_item *it)
{
    struct broker *b = ud;

    switch (it->kind) {
    case HUB_MSG: {
        struct msg *m = it->m;
        if (flow_inbox_held(b->flow))
            return false;
        if (m->retain)
            retain_set(b->retain, m, b->conf->max_retained_messages,
                       b->conf->max_retained_bytes);
        /* the remote publisher can be held back: a subscriber over its
         * high-water mark holds this inbox (and, once it fills, the
         * publishers of the other shards) */
        if (route_remote(b, m))
            flow_hold_inbox(b->flow);
        msg_unref(m);
        it->m = NULL;
        return true;
    }
    case HUB_CONN: {
        bool internal = it->li == BROKER_LI_INTERNAL;
        struct client *c = client_new(b, internal ? 0 : it->li);
        const struct conf_tls *t =
            internal ? NULL : &b->conf->listeners[it->li].tls;
        c->internal = c->bridge = internal;
        c->conn = it->c;
        if (t &&
            t->ocsp_check != CONF_OCSP_OFF) /* checked on the first shard */
            c->ocsp_next = ev_now(b->loop) + (double)t->ocsp_cache_seconds;
        conn_attach(it->c, b->cl, c);
        return true;
    }
    case HUB_RESUME:
    default:
        broker_resume_paused(b);
        return true;
    }
}

void broker_set_hub(struct broker *b, struct hub *h, unsigned idx)
{
    b->shard = shard_new(b->loop, h, idx, hub_item_cb, b);
    free(b->listener_clients);
    b->listener_clients = shard_listener_counts(b->shard, b->nlisteners);
    /* no client yet: switch to the process-wide OCSP cache and staples */
    if (b->ocsp != NULL) {
        ocsp_loop_free(b->ocsp);
        b->ocsp = NULL;
        ocsp_cache_free(b->ocsp_own);
        b->ocsp_own = NULL;
        ocsp_sync(b, b->conf);
    }
    for (size_t i = 0; b->staple != NULL && i < b->nlisteners; i++) {
        tls_staple_free(b->staple[i]);
        b->staple[i] = NULL;
    }
    if (b->staples_own)
        tls_staples_free(b->staples);
    b->staples = shard_staples(b->shard);
    b->staples_own = false;
    b->staple_fetch = idx == 0; /* the main thread's shard fetches */
    staple_sync(b);
}

void broker_set_tls_sync(struct broker *b, void (*fn)(void *ud), void *ud)
{
    if (b->shard)
        shard_set_tls_sync(b->shard, fn, ud);
}

bool broker_owns_id(const struct broker *b, const char *id, size_t len)
{
    return b->shard == NULL || shard_owns(b->shard, id, len);
}

bool broker_migrate(struct broker *b, struct client *c, const char *id,
                    size_t len, const uint8_t *rest, size_t n)
{
    struct conn *conn = c->conn;
    size_t li = c->internal ? BROKER_LI_INTERNAL : c->listener;

    if (broker_owns_id(b, id, len))
        return false;
    conn_detach(conn, rest, n);
    client_discard(c);
    /* posted from the next prepare watcher: the callers up the stack
     * (conn.c's read loop) still look at the conn until they return */
    shard_post_conn(b->shard, id, len, conn, li);
    return true;
}

/* True on the first thread (or the only one): $SYS, TLS file checks. */
static bool first_shard(const struct broker *b)
{
    return b->shard == NULL || shard_index(b->shard) == 0;
}

/* ---- reload / tick / shutdown ----------------------------------------- */

/* Disconnect connected TLS clients whose certificate the (new) CRL of their
 * listener revokes (MQTT 5: DISCONNECT 0x98 Administrative action). */
static void revoke_check(struct broker *b)
{
    for (struct client *cl = b->reg.clients, *next; cl; cl = next) {
        struct tls_ctx *t = b->tls[cl->listener];
        const struct tls_info *ti;
        X509 *peer;

        next = cl->next;
        if (t == NULL || !tls_ctx_has_crl(t) || cl->conn == NULL)
            continue;
        ti = conn_tls_info(cl->conn);
        peer = ti ? tls_info_peer(ti) : NULL;
        if (peer && tls_ctx_cert_revoked(t, peer)) {
            LOG_N(b->log,
                  "Client %s (%s:%d) disconnected: its certificate is "
                  "revoked by the current CRL.",
                  cl->client_id ? cl->client_id : "<unknown>",
                  conn_peer_ip(cl->conn), conn_peer_port(cl->conn));
            client_disconnect(cl, MQTT_RC_ADMIN_ACTION, "certificate revoked");
        }
    }
}

/* Expiry warnings for every TLS listener (at load, on reload, daily). */
static void report_expiry(struct broker *b)
{
    time_t now = time(NULL);

    for (size_t i = 0; i < b->nlisteners; i++) {
        time_t na = 0;
        if (b->tls[i])
            tls_ctx_expiry_report(b->tls[i], b->log,
                                  b->conf->tls_expiry_warning_days, now, &na);
        b->tls_not_after[i] = na;
    }
    b->last_expiry_report = ev_now(b->loop);
}

/* tls_reload_interval: rebuild a listener's context when its files
 * changed on disk; a broken set keeps the old context. */
void broker_tls_check(struct broker *b)
{
    bool changed = false;

    for (size_t i = 0; i < b->nlisteners; i++) {
        struct tls_ctx *n;
        char e[1024];
        if (b->tls[i] == NULL || !tls_ctx_changed(b->tls[i]))
            continue;
        e[0] = '\0';
        n = tls_ctx_new(&b->conf->listeners[i].tls, b->log, e, sizeof(e));
        if (n != NULL && tls_tickets_attach(b->tickets, n, e, sizeof(e)) != 0) {
            tls_ctx_unref(n);
            n = NULL;
        }
        if (n == NULL) {
            LOG_E(b->log,
                  "TLS files of listener %u changed but do not "
                  "load; keeping the old ones: %s",
                  (unsigned)b->conf->listeners[i].port, e);
            continue;
        }
        tls_ctx_unref(b->tls[i]);
        b->tls[i] = n;
        if (b->staple != NULL && b->staple[i] != NULL)
            tls_staple_attach(b->staple[i], n);
        if (!changed && b->shard)
            shard_tls_sync(b->shard); /* the other threads too, first */
        changed = true;
        if (first_shard(b))
            LOG_N(b->log, "TLS files of listener %u changed on disk: reloaded.",
                  (unsigned)b->conf->listeners[i].port);
    }
    if (changed) {
        revoke_check(b);
        report_expiry(b);
    }
}

int broker_reload(struct broker *b, struct conf *c, char *err, size_t errlen)
{
    struct auth **auth;
    struct tls_ctx **tls;
    struct tls_tickets *tk;

    err[0] = '\0';
    if (c->nlisteners != b->nlisteners) {
        append_err(err, errlen,
                   "listener changes need a restart; keeping the running "
                   "configuration");
        conf_free(c);
        return -1;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *n = &c->listeners[i],
                                   *o = &b->conf->listeners[i];
        if (n->port != o->port || n->tls_enabled != o->tls_enabled ||
            n->protocol != o->protocol ||
            (n->address == NULL) != (o->address == NULL) ||
            (n->address && strcmp(n->address, o->address) != 0)) {
            append_err(err, errlen,
                       "listener changes need a restart; keeping the "
                       "running configuration");
            conf_free(c);
            return -1;
        }
    }
    if (build_contexts(b, c, &auth, &tls, err, errlen) < 0) {
        conf_free(c);
        return -1;
    }
    if (build_tickets(b, c, tls, &tk, err, errlen) < 0) {
        free_contexts(auth, tls, c->nlisteners);
        conf_free(c);
        return -1;
    }
    tls_tickets_unref(b->tickets);
    b->tickets = tk;
    free_contexts(b->auth, b->tls, b->nlisteners);
    b->auth = auth;
    b->tls = tls;
    conf_free(b->conf);
    b->conf = c;
    ocsp_sync(b, c);
    staple_sync(b);
    revoke_check(b);
    report_expiry(b);
    /* clients whose password-file entry was removed or changed */
    for (struct client *cl = b->reg.clients, *next; cl; cl = next) {
        uint64_t now_stamp;

        next = cl->next;
        if (!cl->connected || cl->pw_stamp == 0)
            continue;
        now_stamp = auth_user_stamp(b->auth[cl->listener], cl->username);
        if (now_stamp == cl->pw_stamp)
            continue;
        if (now_stamp == 0)
            LOG_N(b->log,
                  "Client %s disconnected: user '%s' is no longer in the "
                  "password file.",
                  cl->client_id, cl->username);
        else
            LOG_N(b->log,
                  "Client %s disconnected: the password of user '%s' "
                  "changed.",
                  cl->client_id, cl->username);
        client_disconnect(cl, MQTT_RC_NOT_AUTHORIZED,
                          now_stamp ? "credentials changed" : "user removed");
    }
    return 0;
}

void broker_tick(struct broker *b)
{
    double now = ev_now(b->loop);

    if (b->last_expiry_report == 0 || now - b->last_expiry_report >= 86400)
        report_expiry(b);
    if (b->conf->memory_limit) {
        struct mallinfo2 mi = mallinfo2();
        bool over = mi.uordblks + mi.hblkhd > b->conf->memory_limit;
        if (over != b->over_memory)
            LOG_W(b->log,
                  over ? "Heap %zu bytes is above memory_limit %llu: "
                         "refusing new messages."
                       : "Heap %zu bytes is below memory_limit %llu again.",
                  mi.uordblks + mi.hblkhd,
                  (unsigned long long)b->conf->memory_limit);
        b->over_memory = over;
    }
    if (!first_shard(b)) {
        /* $SYS is published by the first thread, from every thread's
         * counters */
        struct hub_totals t;
        broker_totals(b, false, &t);
        shard_totals(b->shard, &t, false);
    } else if (b->conf->sys_interval &&
               (b->last_sys == 0 ||
                now - b->last_sys >= b->conf->sys_interval)) {
        sys_update(b->sys, b, b->last_sys ? now - b->last_sys : 0);
        b->last_sys = now;
    }
    if (b->conf->tls_reload_interval && first_shard(b) &&
        now - b->last_tls_check >= b->conf->tls_reload_interval) {
        b->last_tls_check = now;
        broker_tls_check(b);
    }

    /* expire offline sessions; give up on subscribers that stopped
     * draining while publishers waited for them */
    bool resume = false;
    struct hashmap_entry *e;
    size_t it = 0;
    while ((e = hashmap_next(&b->reg.sessions, &it)) != NULL) {
        struct session *s = session_of(e);
        if (flow_sub_tick(&s->flow, s->client != NULL, now)) {
            resume = true;
            if (s->flow.stuck)
                LOG_N(b->log,
                      "Client %s is not acknowledging: its queue no longer "
                      "holds back publishers.",
                      s->client_id);
        }
        if (s->client)
            continue;
        if (s->will_at > 0 && now >= s->will_at)
            broker_publish_will(b, s);
        if (s->expiry != UINT32_MAX &&
            now - s->offline_since >= (double)s->expiry) {
            if (s->will)
                broker_publish_will(b, s); /* the session ends */
            broker_session_remove(b, s);
            session_free(s);
        }
    }
    hashmap_shrink(&b->reg.sessions); /* not during the walk */
    if (b->ocsp != NULL) {            /* OCSP re-checks of connected clients */
        for (struct client *cl = b->reg.clients, *nx; cl; cl = nx) {
            nx = cl->next;
            if (cl->ocsp_next > 0 && now >= cl->ocsp_next)
                client_ocsp_recheck(cl);
        }
        ocsp_cache_sweep(b->ocsp);
    }
    if (resume && flow_held(b->flow))
        broker_resume_paused(b);
}

void broker_shutdown(struct broker *b)
{
    for (struct client *c = b->reg.clients; c; c = c->next) {
        c->clean_disconnect = true; /* no wills on an orderly shutdown */
        client_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN,
                          "server shutting down");
    }
}
