/*
 * cluster_wills.c - the wills of a node that died (cluster_wills.h).
 *
 * Records are written and deleted with core NATS publishes on the KV
 * bucket's subjects ($KV.MQTT_WILLS.<key>; a delete carries the header
 * KV-Operation: DEL), from the loop: nothing waits, the NATS connection
 * keeps their order, and JetStream's acknowledgements come back on an
 * inbox where failures are logged. Claims, scans and MQTT_OWNER lookups
 * block: they run on the worker thread (cluster_work.h).
 *
 * Record value: "W1 DELAY DUE NODELEN TOPICLEN\n" NODE TOPIC ENVELOPE
 * (DELAY: seconds the will waits once its client is gone; DUE: Unix time
 * it is due when its client was already gone, else 0; ENVELOPE: as
 * cluster_wire_header, then properties and payload).
 */
#include "cluster_wills.h"

#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <limits.h>
#include <nats/nats.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "cluster_int.h"
#include "cluster_owner.h"
#include "cluster_wire.h"
#include "cluster_work.h"
#include "conf.h"
#include "log.h"
#include "msg.h"
#include "util.h"

#define WILLS_BUCKET "MQTT_WILLS"
#define NODES_BUCKET "MQTT_NODES"
#define WILLS_PREFIX "$KV." WILLS_BUCKET "."
#define HB_PREFIX "mqttd.hb."
#define BYE_PREFIX "mqttd.bye."
#define EPOCH_LEN 16
/* client ids longer than this get no record (as MQTT_OWNER) */
#define ID_MAX 1000

/* a node seen through its heartbeats or its records */
struct peer {
    struct peer *next;
    char epoch[EPOCH_LEN + 1];
    char node[80];
    double seen;   /* ev_now of its last heartbeat (or of the scan) */
    bool claiming; /* a claim job is in flight */
};

/* one will record of a dead node this node claimed */
struct rec {
    struct rec *next;
    char *key; /* "<epoch>.<hex id>" */
    uint8_t *val;
    size_t len;
    char epoch[EPOCH_LEN + 1];
    char node[80];
    int64_t due;    /* Unix time to publish it */
    bool owned;     /* MQTT_OWNER still names the dead node's connection */
    char owner[48]; /* what MQTT_OWNER holds (debug lines) */
};

struct cluster_wills {
    struct cluster *cl;
    char epoch[EPOCH_LEN + 1];
    double timeout;
    natsSubscription *hb, *bye, *acks;
    char inbox[64];
    ev_timer tick;
    double up_since; /* ev_now the NATS connection was seen up; 0: down */
    struct peer *peers;
    struct rec *pending;                     /* claimed, due later */
    kvStore *wills_kv, *nodes_kv, *owner_kv; /* worker thread only */
    uint8_t *buf;
    size_t cap;
    struct log_ratelimit rl, ack_rl;
    int refs; /* the module and every job in flight */
    int dead; /* cluster_wills_free called (read by the worker) */
};

enum job_kind { JOB_INIT, JOB_SCAN, JOB_CLAIM, JOB_CHECK };

struct job {
    struct cluster_wills *w;
    enum job_kind kind;
    char epoch[EPOCH_LEN + 1];
    char node[80];
    bool bye;      /* CLAIM: the node stopped in order: drop, not publish */
    int64_t death; /* CLAIM: Unix time of its last heartbeat */
    double silent; /* CLAIM: seconds without heartbeat */
    natsStatus st;
    char err[200];
    bool won;          /* CLAIM: this node took the epoch */
    bool taken;        /* CLAIM lost: another node holds the claim */
    bool self_claimed; /* SCAN: our own epoch was claimed (taken for dead) */
    struct rec *recs;  /* CLAIM: the records; CHECK: those due */
    char (*epochs)[EPOCH_LEN + 1]; /* SCAN: other epochs with records */
    size_t nepochs;
};

static void done_init(void *arg);
static void done_scan(void *arg);
static void done_claim(void *arg);
static void done_check(void *arg);

/* ---- helpers ---------------------------------------------------------- */

static void wills_unref(struct cluster_wills *w)
{
    if (--w->refs == 0) {
        kvStore_Destroy(w->wills_kv);
        kvStore_Destroy(w->nodes_kv);
        kvStore_Destroy(w->owner_kv);
        free(w->buf);
        free(w);
    }
}

static void rec_free_all(struct rec *r)
{
    while (r) {
        struct rec *n = r->next;
        free(r->key);
        free(r->val);
        free(r);
        r = n;
    }
}

static struct job *job_new(struct cluster_wills *w, enum job_kind kind)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->w = w;
    j->kind = kind;
    w->refs++;
    return j;
}

static void job_free(struct job *j)
{
    rec_free_all(j->recs);
    free(j->epochs);
    wills_unref(j->w);
    free(j);
}

static bool is_epoch(const char *s, size_t n)
{
    if (n != EPOCH_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* the fields of a record value; false when it is not one */
struct rec_fields {
    uint32_t delay;
    int64_t due;
    const char *node, *topic;
    size_t node_len, topic_len;
    const uint8_t *env;
    size_t env_len;
};

/* next_u64: the decimal number at *p followed by a space or the end, at
 * most max; advances *p past it and the space */
static bool next_u64(const char **p, unsigned long long max,
                     unsigned long long *out)
{
    char *end;

    if (**p < '0' || **p > '9')
        return false;
    errno = 0;
    *out = strtoull(*p, &end, 10);
    if (errno != 0 || *out > max || (*end != ' ' && *end != '\0'))
        return false;
    *p = *end == ' ' ? end + 1 : end;
    return true;
}

/* head_numbers: "W1 DELAY DUE NODELEN TOPICLEN" */
static bool head_numbers(const char *head, unsigned *delay,
                         unsigned long long *due, unsigned *nl, unsigned *tl)
{
    const char *p = head + 3;
    unsigned long long d, n, t;

    if (strncmp(head, "W1 ", 3) != 0 || !next_u64(&p, UINT32_MAX, &d) ||
        !next_u64(&p, ULLONG_MAX, due) || !next_u64(&p, UINT32_MAX, &n) ||
        !next_u64(&p, UINT32_MAX, &t) || *p != '\0')
        return false;
    *delay = (unsigned)d;
    *nl = (unsigned)n;
    *tl = (unsigned)t;
    return true;
}

static bool rec_parse(const uint8_t *v, size_t n, struct rec_fields *f)
{
    const uint8_t *nl = memchr(v, '\n', n < 100 ? n : 100);
    char head[101];
    unsigned long long due;
    unsigned delay, nl_, tl;
    size_t hl;

    if (nl == NULL)
        return false;
    hl = (size_t)(nl - v);
    memcpy(head, v, hl);
    head[hl] = '\0';
    if (!head_numbers(head, &delay, &due, &nl_, &tl) ||
        hl + 1 + (size_t)nl_ + tl > n)
        return false;
    f->delay = delay;
    f->due = (int64_t)due;
    f->node = (const char *)nl + 1;
    f->node_len = nl_;
    f->topic = f->node + nl_;
    f->topic_len = tl;
    f->env = (const uint8_t *)f->topic + tl;
    f->env_len = n - (hl + 1 + nl_ + tl);
    return true;
}

/* ---- worker thread ---------------------------------------------------- */

static natsStatus ensure_one(struct cluster_wills *w, kvStore **kv,
                             const char *bucket, int64_t ttl)
{
    return *kv ? NATS_OK : cluster_kv(w->cl, bucket, ttl, kv);
}

static natsStatus ensure(struct cluster_wills *w)
{
    natsStatus st;

    /* records live as long as their connection: no TTL; claims are
     * needed only until every node saw the epoch go: a day */
    st = ensure_one(w, &w->wills_kv, WILLS_BUCKET, 0);
    if (st == NATS_OK)
        st = ensure_one(w, &w->nodes_kv, NODES_BUCKET,
                        (int64_t)86400 * 1000000000);
    return st;
}

static void keep_err(struct job *j)
{
    const char *e = j->st != NATS_OK ? nats_GetLastError(NULL) : NULL;

    snprintf(j->err, sizeof(j->err), "%s",
             e && *e ? e : natsStatus_GetText(j->st));
}

static bool gone(const struct job *j)
{
    return __atomic_load_n(&j->w->dead, __ATOMIC_ACQUIRE) != 0;
}

static void work_init(void *arg)
{
    struct job *j = arg;

    j->st = gone(j) ? NATS_CONNECTION_CLOSED : ensure(j->w);
    keep_err(j);
}

/* the epochs that have records in MQTT_WILLS; was this node's own epoch
 * claimed (taken for dead while cut off)? */
static void work_scan(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;
    kvKeysList list = {0};
    kvEntry *e = NULL;
    char key[EPOCH_LEN + 8];

    if (gone(j)) {
        j->st = NATS_CONNECTION_CLOSED;
        return;
    }
    /* (re)connected: the buckets may be new (a NATS store lost) */
    kvStore_Destroy(w->wills_kv);
    kvStore_Destroy(w->nodes_kv);
    w->wills_kv = w->nodes_kv = NULL;
    j->st = ensure(w);
    if (j->st == NATS_OK) {
        snprintf(key, sizeof(key), "claim.%s", w->epoch);
        if (kvStore_Get(&e, w->nodes_kv, key) == NATS_OK) {
            j->self_claimed = true;
            kvEntry_Destroy(e);
        }
        j->st = kvStore_Keys(&list, w->wills_kv, NULL);
        if (j->st == NATS_NOT_FOUND) /* no keys */
            j->st = NATS_OK;
    }
    if (j->st != NATS_OK) {
        keep_err(j);
        return;
    }
    j->epochs = xcalloc((size_t)list.Count + 1, sizeof(*j->epochs));
    for (int i = 0; i < list.Count; i++) {
        const char *k = list.Keys[i], *dot = strchr(k, '.');
        size_t n;

        if (dot == NULL || !is_epoch(k, (size_t)(dot - k)) ||
            strncmp(k, w->epoch, EPOCH_LEN) == 0)
            continue;
        for (n = 0; n < j->nepochs; n++)
            if (strncmp(j->epochs[n], k, EPOCH_LEN) == 0)
                break;
        if (n == j->nepochs) {
            memcpy(j->epochs[n], k, EPOCH_LEN);
            j->epochs[n][EPOCH_LEN] = '\0';
            j->nepochs++;
        }
    }
    kvKeysList_Destroy(&list);
}

/* race for the epoch; the winner reads its records */
static void work_claim(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;
    char key[EPOCH_LEN + 8], filter[EPOCH_LEN + 4];
    kvWatcher *wt = NULL;
    kvWatchOptions o;
    kvEntry *e = NULL;

    if (gone(j)) {
        j->st = NATS_CONNECTION_CLOSED;
        return;
    }
    j->st = ensure(w);
    snprintf(key, sizeof(key), "claim.%s", j->epoch);
    if (j->st == NATS_OK)
        j->st =
            kvStore_CreateString(NULL, w->nodes_kv, key, cluster_node(w->cl));
    if (j->st != NATS_OK) {
        keep_err(j);
        /* refused because it exists (another node won), or an error */
        if (w->nodes_kv && kvStore_Get(&e, w->nodes_kv, key) == NATS_OK) {
            const char *v = kvEntry_ValueString(e);
            j->taken = true;
            snprintf(j->err, sizeof(j->err), "%s", v ? v : "?");
            kvEntry_Destroy(e);
        }
        return;
    }
    j->won = true;
    kvWatchOptions_Init(&o);
    o.IgnoreDeletes = true;
    o.Timeout = 5000;
    snprintf(filter, sizeof(filter), "%s.*", j->epoch);
    j->st = kvStore_Watch(&wt, w->wills_kv, filter, &o);
    while (j->st == NATS_OK) {
        const void *v;
        struct rec *r;

        e = NULL;
        j->st = kvWatcher_Next(&e, wt, 5000);
        if (j->st != NATS_OK || e == NULL)
            break; /* NULL: every current record seen */
        v = kvEntry_Value(e);
        r = xcalloc(1, sizeof(*r));
        r->key = xstrdup(kvEntry_Key(e));
        r->len = (size_t)kvEntry_ValueLen(e);
        r->val = xmalloc(r->len + 1);
        if (r->len)
            memcpy(r->val, v, r->len);
        memcpy(r->epoch, j->epoch, sizeof(r->epoch));
        r->next = j->recs;
        j->recs = r;
        kvEntry_Destroy(e);
    }
    keep_err(j);
    kvWatcher_Destroy(wt);
}

/* for each record due: does MQTT_OWNER still name the dead connection? */
static void work_check(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;

    if (!gone(j) && w->owner_kv == NULL &&
        js_KeyValue(&w->owner_kv, cluster_js(w->cl), CLUSTER_OWNER_BUCKET) !=
            NATS_OK)
        w->owner_kv = NULL;
    for (struct rec *r = j->recs; r; r = r->next) {
        const char *hex = strchr(r->key, '.');
        kvEntry *e = NULL;
        natsStatus st;

        r->owned = true; /* no answer: publish (as a single node would) */
        if (gone(j) || w->owner_kv == NULL || hex == NULL)
            continue;
        st = kvStore_Get(&e, w->owner_kv, hex + 1);
        if (st == NATS_OK) {
            const char *v = kvEntry_ValueString(e);
            r->owned = v && strncmp(v, r->epoch, EPOCH_LEN) == 0 &&
                       v[EPOCH_LEN] == ':';
            snprintf(r->owner, sizeof(r->owner), "%s", v ? v : "");
            kvEntry_Destroy(e);
        }
    }
}

/* ---- loop thread ------------------------------------------------------ */

static void submit(struct job *j)
{
    static void (*const work[])(void *) = {work_init, work_scan, work_claim,
                                           work_check};
    static void (*const done[])(void *) = {done_init, done_scan, done_claim,
                                           done_check};

    cluster_work_submit(cluster_work_q(j->w->cl), work[j->kind], done[j->kind],
                        j);
}

static struct peer *peer_get(struct cluster_wills *w, const char *epoch,
                             double now)
{
    struct peer *p;

    for (p = w->peers; p; p = p->next)
        if (strcmp(p->epoch, epoch) == 0)
            return p;
    p = xcalloc(1, sizeof(*p));
    memcpy(p->epoch, epoch, EPOCH_LEN);
    snprintf(p->node, sizeof(p->node), "?");
    p->seen = now;
    p->next = w->peers;
    w->peers = p;
    return p;
}

static void peer_drop(struct cluster_wills *w, const char *epoch)
{
    for (struct peer **pp = &w->peers, *p; (p = *pp) != NULL; pp = &p->next)
        if (strcmp(p->epoch, epoch) == 0) {
            *pp = p->next;
            free(p);
            return;
        }
}

/* delete record key (core publish with KV-Operation: DEL) */
static void rec_delete(struct cluster_wills *w, const char *key)
{
    char subj[sizeof(WILLS_PREFIX) + EPOCH_LEN + 2 * ID_MAX + 2];
    natsMsg *nm = NULL;

    snprintf(subj, sizeof(subj), WILLS_PREFIX "%s", key);
    if (natsMsg_Create(&nm, subj, w->inbox, NULL, 0) != NATS_OK)
        return;
    natsMsgHeader_Set(nm, "KV-Operation", "DEL");
    natsConnection_PublishMsg(cluster_nc(w->cl), nm);
    natsMsg_Destroy(nm);
}

static void check_due(struct cluster_wills *w)
{
    int64_t now = (int64_t)time(NULL);
    struct job *j = NULL;

    for (struct rec **pp = &w->pending, *r; (r = *pp) != NULL;) {
        if (r->due > now) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (j == NULL)
            j = job_new(w, JOB_CHECK);
        r->next = j->recs;
        j->recs = r;
    }
    if (j)
        submit(j);
}

static void done_init(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;

    if (!w->dead && j->st != NATS_OK)
        LOG_W(cluster_log(w->cl),
              "Cluster: buckets " WILLS_BUCKET " and " NODES_BUCKET
              " not ready yet (%s); retried on the first connection.",
              j->err);
    else if (!w->dead)
        LOG_N(cluster_log(w->cl),
              "Cluster: node %s: buckets " WILLS_BUCKET " and " NODES_BUCKET
              " ready.",
              cluster_node(w->cl));
    job_free(j);
}

static void done_scan(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;
    double now = ev_now(cluster_loop(w->cl));

    if (w->dead) {
        job_free(j);
        return;
    }
    if (j->st != NATS_OK)
        LOG_W(cluster_log(w->cl),
              "Cluster: bucket " WILLS_BUCKET " not scanned (%s): wills of "
              "nodes that died while this node was away are published only "
              "if another node notices.",
              j->err);
    if (j->self_claimed)
        LOG_W(cluster_log(w->cl),
              "Cluster: node %s was taken for dead while cut off from NATS: "
              "another node published the wills of the clients connected "
              "here then (they may be published again when those clients "
              "go).",
              cluster_node(w->cl));
    /* judged after the timeout unless their heartbeats come */
    for (size_t i = 0; i < j->nepochs; i++)
        peer_get(w, j->epochs[i], now);
    job_free(j);
}

static void done_claim(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;
    struct peer *p;
    size_t n = 0;
    unsigned sup;

    if (w->dead) {
        job_free(j);
        return;
    }
    for (p = w->peers; p; p = p->next)
        if (strcmp(p->epoch, j->epoch) == 0)
            break;
    if (!j->won && !j->taken) {
        /* JetStream error: try again at the next tick */
        if (p)
            p->claiming = false;
        if (log_ratelimit_ok(&w->rl, 5, 10.0, &sup))
            LOG_W(cluster_log(w->cl),
                  "Cluster: could not claim the wills of node %s (%s); "
                  "retrying (%u similar lines suppressed).",
                  j->node, j->err, sup);
        job_free(j);
        return;
    }
    peer_drop(w, j->epoch);
    if (j->taken) {
        LOG_D(cluster_log(w->cl),
              "Cluster: wills of node %s (epoch %s) claimed by node %s.",
              j->node, j->epoch, j->err);
        job_free(j);
        return;
    }
    for (struct rec *r = j->recs; r; r = r->next) {
        struct rec_fields f;
        n++;
        if (rec_parse(r->val, r->len, &f)) {
            snprintf(r->node, sizeof(r->node), "%.*s", (int)f.node_len, f.node);
            r->due = f.due ? f.due : j->death + (int64_t)f.delay;
        } else {
            snprintf(r->node, sizeof(r->node), "%s", j->node);
            r->due = 0; /* dropped when checked */
        }
        if (strcmp(j->node, "?") == 0)
            snprintf(j->node, sizeof(j->node), "%s", r->node);
    }
    if (j->bye) {
        for (struct rec *r = j->recs; r; r = r->next)
            rec_delete(w, r->key);
        LOG_N(cluster_log(w->cl),
              "Cluster: node %s stopped; %zu will record(s) of its clients "
              "dropped.",
              j->node, n);
        job_free(j);
        return;
    }
    LOG_N(cluster_log(w->cl),
          "Cluster: node %s is gone (no heartbeat for %.0f s); node %s took "
          "over its %zu will record(s)%s.",
          j->node, j->silent, cluster_node(w->cl), n,
          j->st != NATS_OK ? " (the list may be incomplete)" : "");
    /* to the pending list (delays), then publish what is due */
    while (j->recs) {
        struct rec *r = j->recs;
        j->recs = r->next;
        r->next = w->pending;
        w->pending = r;
    }
    check_due(w); /* before job_free drops j's reference to w */
    job_free(j);
}

static void done_check(void *arg)
{
    struct job *j = arg;
    struct cluster_wills *w = j->w;

    if (w->dead) {
        job_free(j);
        return;
    }
    /* one log line per dead node in the batch */
    for (struct rec *r = j->recs; r; r = r->next) {
        size_t pub = 0, skip = 0, bad = 0;
        bool first = true;

        for (struct rec *q = j->recs; q != r && first; q = q->next)
            if (strcmp(q->epoch, r->epoch) == 0)
                first = false;
        if (!first)
            continue;
        for (struct rec *q = r; q; q = q->next) {
            struct rec_fields f;
            struct cluster_wire_msg m;
            const char *why = NULL;
            struct msg *msg;

            if (strcmp(q->epoch, r->epoch) != 0)
                continue;
            if (!rec_parse(q->val, q->len, &f) || f.topic_len == 0 ||
                cluster_wire_decode(f.env, f.env_len, &m, &why) < 0) {
                bad++;
            } else if (!q->owned) {
                skip++;
                LOG_D(cluster_log(w->cl),
                      "Cluster: will record %s not "
                      "published: " CLUSTER_OWNER_BUCKET " names %s.",
                      q->key, q->owner);
            } else {
                msg = msg_new(f.topic, f.topic_len, m.props, m.props_len,
                              m.payload, m.payload_len, m.qos, m.retain,
                              m.expiry_at);
                if (!msg_expired(msg, (int64_t)time(NULL)) &&
                    broker_publish_orphan_will(cluster_broker(w->cl), msg))
                    pub++;
                msg_unref(msg);
            }
            rec_delete(w, q->key);
        }
        LOG_N(cluster_log(w->cl),
              "Cluster: wills of node %s's clients: %zu published, %zu not "
              "(the client connected again elsewhere)%s.",
              r->node, pub, skip,
              bad ? ", some unreadable records dropped" : "");
    }
    job_free(j);
}

/* the broker's will hook: record or delete this node's record */
static void on_will(void *ud, const char *id, const struct msg *m,
                    uint32_t delay, int64_t due)
{
    struct cluster_wills *w = ud;
    size_t idl = strlen(id), n, node_len;
    char subj[sizeof(WILLS_PREFIX) + EPOCH_LEN + 2 * ID_MAX + 2], head[100];
    struct cluster_wire_msg wm;
    const char *node = cluster_node(w->cl);
    natsStatus st;
    unsigned sup;
    int hl;
    char *p;

    if (idl == 0 || idl > ID_MAX)
        return;
    p = subj + snprintf(subj, sizeof(subj), WILLS_PREFIX "%s.", w->epoch);
    util_hex(id, idl, p);
    if (m == NULL) {
        rec_delete(w, subj + strlen(WILLS_PREFIX));
        return;
    }
    node_len = strlen(node);
    hl = snprintf(head, sizeof(head), "W1 %" PRIu32 " %lld %zu %zu\n", delay,
                  (long long)(due > 0 ? due : 0), node_len,
                  (size_t)m->topic_len);
    n = (size_t)hl + node_len + m->topic_len + CLUSTER_WIRE_HEADER +
        m->props_len + m->payload_len;
    if (n > w->cap) {
        w->cap = n;
        w->buf = xrealloc(w->buf, n);
    }
    wm = (struct cluster_wire_msg){m->qos,        m->retain,    m->expiry_at,
                                   m->props,      m->props_len, m->payload,
                                   m->payload_len};
    p = (char *)w->buf;
    memcpy(p, head, (size_t)hl);
    p += hl;
    memcpy(p, node, node_len);
    p += node_len;
    memcpy(p, m->topic, m->topic_len);
    p += m->topic_len;
    cluster_wire_header(&wm, (uint8_t *)p);
    p += CLUSTER_WIRE_HEADER;
    if (m->props_len)
        memcpy(p, m->props, m->props_len);
    p += m->props_len;
    if (m->payload_len)
        memcpy(p, m->payload, m->payload_len);
    st = natsConnection_PublishRequest(cluster_nc(w->cl), subj, w->inbox,
                                       w->buf, (int)n);
    if (st != NATS_OK && log_ratelimit_ok(&w->ack_rl, 5, 10.0, &sup))
        LOG_W(cluster_log(w->cl),
              "Cluster: will of client %s not recorded in " WILLS_BUCKET
              " (%s): if this node dies it is not published (%u similar "
              "lines suppressed).",
              id, natsStatus_GetText(st), sup);
}

/* a JetStream API answer with an "error" member */
static bool has_error(const char *d, size_t n)
{
    for (size_t i = 0; i + 7 <= n; i++)
        if (memcmp(d + i, "\"error\"", 7) == 0)
            return true;
    return false;
}

/* JetStream's answer to a record write or delete */
static void on_ack(void *ud, natsMsg *m)
{
    struct cluster_wills *w = ud;
    const char *d = natsMsg_GetData(m), *why = NULL;
    int len = natsMsg_GetDataLength(m);
    unsigned sup;

    if (natsMsg_IsNoResponders(m))
        why = "no JetStream stream for the bucket (JetStream down?)";
    else if (d && len > 0 && has_error(d, (size_t)len))
        why = d;
    if (why && log_ratelimit_ok(&w->ack_rl, 5, 10.0, &sup))
        LOG_W(cluster_log(w->cl),
              "Cluster: a will record of this node was not stored "
              "in " WILLS_BUCKET
              ": %.200s; if this node dies now, that will is not published "
              "(%u similar lines suppressed).",
              why, sup);
}

static void on_hb(void *ud, natsMsg *m)
{
    struct cluster_wills *w = ud;
    const char *s = natsMsg_GetSubject(m) + strlen(HB_PREFIX);
    struct peer *p;
    int len = natsMsg_GetDataLength(m);

    if (!is_epoch(s, strlen(s)) || strcmp(s, w->epoch) == 0)
        return;
    p = peer_get(w, s, ev_now(cluster_loop(w->cl)));
    p->seen = ev_now(cluster_loop(w->cl));
    if (len > 0 && strcmp(p->node, "?") == 0) {
        snprintf(p->node, sizeof(p->node), "%.*s",
                 len < (int)sizeof(p->node) - 1 ? len
                                                : (int)sizeof(p->node) - 1,
                 natsMsg_GetData(m));
        LOG_D(cluster_log(w->cl), "Cluster: node %s (epoch %s) is up.", p->node,
              p->epoch);
    }
}

static void claim(struct cluster_wills *w, struct peer *p, bool bye, double now)
{
    struct job *j = job_new(w, JOB_CLAIM);

    p->claiming = true;
    memcpy(j->epoch, p->epoch, sizeof(j->epoch));
    snprintf(j->node, sizeof(j->node), "%s", p->node);
    j->bye = bye;
    j->silent = now - p->seen;
    j->death = (int64_t)time(NULL) - (int64_t)(now - p->seen);
    submit(j);
}

static void on_bye(void *ud, natsMsg *m)
{
    struct cluster_wills *w = ud;
    const char *s = natsMsg_GetSubject(m) + strlen(BYE_PREFIX);
    double now = ev_now(cluster_loop(w->cl));
    struct peer *p;

    if (!is_epoch(s, strlen(s)) || strcmp(s, w->epoch) == 0)
        return;
    p = peer_get(w, s, now);
    if (natsMsg_GetDataLength(m) > 0)
        snprintf(p->node, sizeof(p->node), "%.*s",
                 natsMsg_GetDataLength(m) < 79 ? natsMsg_GetDataLength(m) : 79,
                 natsMsg_GetData(m));
    if (!p->claiming)
        claim(w, p, true, now);
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct cluster_wills *w = t->data;
    natsConnection *nc = cluster_nc(w->cl);
    double now = ev_now(loop);
    char subj[sizeof(HB_PREFIX) + EPOCH_LEN];

    (void)revents;
    if (natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) {
        w->up_since = 0;
        return;
    }
    if (w->up_since == 0) {
        /* (re)connected: judge others only after a full timeout */
        w->up_since = now;
        submit(job_new(w, JOB_SCAN));
    }
    snprintf(subj, sizeof(subj), HB_PREFIX "%s", w->epoch);
    natsConnection_PublishString(nc, subj, cluster_node(w->cl));
    if (now - w->up_since >= w->timeout)
        for (struct peer *p = w->peers; p; p = p->next)
            if (!p->claiming && now - p->seen >= w->timeout)
                claim(w, p, false, now);
    check_due(w);
}

struct cluster_wills *cluster_wills_new(struct cluster *cl, const char *epoch)
{
    struct cluster_wills *w = xcalloc(1, sizeof(*w));
    const struct conf *c = broker_conf(cluster_broker(cl));
    natsStatus st = NATS_OK;

    w->cl = cl;
    w->refs = 1;
    snprintf(w->epoch, sizeof(w->epoch), "%s", epoch);
    w->timeout = c->cluster_node_timeout ? c->cluster_node_timeout : 3;
    snprintf(w->inbox, sizeof(w->inbox), "_INBOX.mqttd-wills.%s", w->epoch);
    w->hb = cluster_subscribe(cl, HB_PREFIX "*", NULL, on_hb, w, &st);
    if (w->hb)
        w->bye = cluster_subscribe(cl, BYE_PREFIX "*", NULL, on_bye, w, &st);
    if (w->bye)
        w->acks = cluster_subscribe(cl, w->inbox, NULL, on_ack, w, &st);
    if (w->acks == NULL)
        LOG_W(cluster_log(cl),
              "Cluster: no subscription to node heartbeats (%s): this node "
              "does not publish the wills of dead nodes.",
              natsStatus_GetText(st));
    ev_timer_init(&w->tick, tick_cb, 1.0, 1.0);
    w->tick.data = w;
    ev_timer_start(cluster_loop(cl), &w->tick);
    ev_unref(cluster_loop(cl)); /* does not keep the loop alive */
    submit(job_new(w, JOB_INIT));
    broker_set_will_hook(cluster_broker(cl), on_will, w);
    return w;
}

void cluster_wills_free(struct cluster_wills *w)
{
    natsConnection *nc;
    char subj[sizeof(BYE_PREFIX) + EPOCH_LEN];

    if (w == NULL)
        return;
    nc = cluster_nc(w->cl);
    broker_set_will_hook(cluster_broker(w->cl), NULL, NULL);
    ev_ref(cluster_loop(w->cl));
    ev_timer_stop(cluster_loop(w->cl), &w->tick);
    if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
        /* orderly stop: the others drop this node's records. The loop no
         * longer runs: written out here (a few bytes, after the deletes
         * of the clients closed at shutdown) */
        snprintf(subj, sizeof(subj), BYE_PREFIX "%s", w->epoch);
        natsConnection_PublishString(nc, subj, cluster_node(w->cl));
        natsConnection_ProcessWriteEvent(nc);
    }
    cluster_unsubscribe(w->cl, w->hb);
    cluster_unsubscribe(w->cl, w->bye);
    cluster_unsubscribe(w->cl, w->acks);
    while (w->peers) {
        struct peer *p = w->peers;
        w->peers = p->next;
        free(p);
    }
    rec_free_all(w->pending);
    w->pending = NULL;
    __atomic_store_n(&w->dead, 1, __ATOMIC_RELEASE);
    wills_unref(w);
}
