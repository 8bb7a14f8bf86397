/*
 * cluster_retain.c - retained messages cluster-wide over the JetStream
 * stream MQTT_RETAIN (cluster_retain.h, docs/cluster.md).
 *
 * Stream subjects: CR_ROOT + the topic's subject without its "mqtt"
 * root ("mqttr.t._a._b" for "a/b"), outside "mqtt.>" so the nodes' core
 * subscription never sees them. One message per subject (the envelope of
 * cluster_wire.h); an empty retained publish purges the subject.
 */
#include "cluster_retain.h"

#include <nats/nats.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "cluster_int.h"
#include "cluster_wire.h"
#include "cluster_work.h"
#include "conf.h"
#include "log.h"
#include "msg.h"
#include "retain.h"
#include "util.h"

#define CR_STREAM "MQTT_RETAIN"
#define CR_ROOT "mqttr"
#define CR_LOAD_RETRIES 3

struct cluster_retain {
    struct cluster *cl;
    uint64_t gen; /* retained changes seen on the loop (local and remote) */
    struct log_ratelimit rl;
};

/* ---- writes (worker thread) -------------------------------------------- */

struct cr_write {
    struct cluster_retain *cr;
    char *subj;
    uint8_t *data; /* NULL: purge */
    size_t len;
    natsStatus st;
    jsErrCode jerr;
};

static void write_work(void *arg)
{
    struct cr_write *w = arg;
    jsCtx *js = cluster_js(w->cr->cl);

    if (w->data) {
        w->st =
            js_Publish(NULL, js, w->subj, w->data, (int)w->len, NULL, &w->jerr);
    } else {
        jsOptions o;
        jsOptions_Init(&o);
        o.Stream.Purge.Subject = w->subj;
        w->st = js_PurgeStream(js, CR_STREAM, &o, &w->jerr);
    }
}

static void write_done(void *arg)
{
    struct cr_write *w = arg;
    unsigned sup;

    if (w->st != NATS_OK && log_ratelimit_ok(&w->cr->rl, 5, 10.0, &sup))
        LOG_W(cluster_log(w->cr->cl),
              "Cluster: retained message on subject '%.200s' not %s the "
              "cluster store %s: %s (JetStream error %d; %u similar lines "
              "suppressed).",
              w->subj, w->data ? "written to" : "cleared from", CR_STREAM,
              natsStatus_GetText(w->st), (int)w->jerr, sup);
    free(w->subj);
    free(w->data);
    free(w);
}

void cluster_retain_local(struct cluster_retain *cr, const struct msg *m,
                          const char *subj)
{
    struct cr_write *w = xcalloc(1, sizeof(*w));
    size_t sl = strlen(subj), rl = strlen(CLUSTER_WIRE_ROOT);

    cr->gen++;
    w->cr = cr;
    w->subj = xmalloc(strlen(CR_ROOT) + sl - rl + 1);
    memcpy(w->subj, CR_ROOT, strlen(CR_ROOT));
    memcpy(w->subj + strlen(CR_ROOT), subj + rl, sl - rl + 1);
    if (m->payload_len) {
        struct cluster_wire_msg e = {m->qos,        true,         m->expiry_at,
                                     m->props,      m->props_len, m->payload,
                                     m->payload_len};
        w->len = CLUSTER_WIRE_HEADER + (size_t)m->props_len + m->payload_len;
        w->data = xmalloc(w->len);
        cluster_wire_header(&e, w->data);
        if (m->props_len)
            memcpy(w->data + CLUSTER_WIRE_HEADER, m->props, m->props_len);
        memcpy(w->data + CLUSTER_WIRE_HEADER + m->props_len, m->payload,
               m->payload_len);
    }
    cluster_work_submit(cluster_work_q(cr->cl), write_work, write_done, w);
}

void cluster_retain_remote(struct cluster_retain *cr, struct msg *m)
{
    const struct conf *c = broker_conf(cluster_broker(cr->cl));

    cr->gen++;
    retain_set(broker_retain(cluster_broker(cr->cl)), m,
               c->max_retained_messages, c->max_retained_bytes);
}

/* ---- (re)load the cache (stream read on the worker thread) ------------- */

struct cr_item {
    char *subj;
    uint8_t *data;
    size_t len;
};

struct cr_load {
    struct cluster_retain *cr;
    uint64_t gen; /* cr->gen when submitted */
    unsigned tries;
    struct cr_item *items;
    size_t n, cap;
    const char *why; /* failed: static reason */
    natsStatus st;
};

static void add_item(struct cr_load *l, natsMsg *m)
{
    const char *s = natsMsg_GetSubject(m);
    int len = natsMsg_GetDataLength(m);

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    l->items[l->n].subj = xstrdup(s);
    l->items[l->n].len = len > 0 ? (size_t)len : 0;
    l->items[l->n].data = xmalloc(l->items[l->n].len + 1);
    if (len > 0)
        memcpy(l->items[l->n].data, natsMsg_GetData(m), (size_t)len);
    l->n++;
}

static void load_work(void *arg)
{
    struct cr_load *l = arg;
    jsCtx *js = cluster_js(l->cr->cl);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    uint64_t msgs;

    l->st = js_GetStreamInfo(&si, js, CR_STREAM, NULL, &jerr);
    if (l->st == NATS_NOT_FOUND) {
        jsStreamConfig sc;
        const char *subjects[] = {CR_ROOT ".>"};
        jsStreamConfig_Init(&sc);
        sc.Name = CR_STREAM;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.MaxMsgsPerSubject = 1;
        /* another node may create it at the same time: same config */
        l->st = js_AddStream(&si, js, &sc, NULL, &jerr);
        if (l->st != NATS_OK)
            l->st = js_GetStreamInfo(&si, js, CR_STREAM, NULL, &jerr);
    }
    if (l->st != NATS_OK) {
        l->why = "stream not available";
        return;
    }
    msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    if (msgs == 0)
        return;
    jsSubOptions_Init(&so);
    so.Stream = CR_STREAM;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverLastPerSubject;
    l->st = js_SubscribeSync(&sub, js, CR_ROOT ".>", NULL, &so, &jerr);
    if (l->st != NATS_OK) {
        l->why = "consumer refused";
        return;
    }
    for (;;) {
        natsMsg *m = NULL;
        jsMsgMetaData *md = NULL;
        uint64_t pending = 0;

        l->st = natsSubscription_NextMsg(&m, sub, 5000);
        if (l->st == NATS_TIMEOUT && l->n == 0) {
            /* purged since the stream info was read: empty */
            l->st = NATS_OK;
            break;
        }
        if (l->st != NATS_OK) {
            l->why = "stream read interrupted";
            break;
        }
        if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
            pending = md->NumPending;
            jsMsgMetaData_Destroy(md);
        }
        add_item(l, m);
        natsMsg_Destroy(m);
        if (pending == 0)
            break;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cr_item *)a)->subj,
                  ((const struct cr_item *)b)->subj);
}

static void free_load(struct cr_load *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].subj);
        free(l->items[i].data);
    }
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

struct cr_stale {
    struct cr_load *l;
    struct msg **v;
    size_t n, cap;
    char subj[CLUSTER_WIRE_SUBJECT_MAX + 16];
};

/* a cached topic the stream does not hold (cleared while this node was
 * away from NATS): collected, cleared after the walk */
static void stale_cb(struct msg *m, void *arg)
{
    struct cr_stale *s = arg;
    struct cr_item key;
    size_t rl = strlen(CR_ROOT); /* CLUSTER_WIRE_ROOT + 1 */

    if (m->topic_len >= 4 && memcmp(m->topic, "$SYS", 4) == 0)
        return;
    /* "mqtt.t._a" written at offset 1, then "mqttr" over its first 5
     * bytes: "mqttr.t._a" */
    if (cluster_wire_subject(m->topic, m->topic_len, s->subj + 1,
                             sizeof(s->subj) - 1) < 0)
        return; /* too long for the cluster: local only */
    memcpy(s->subj, CR_ROOT, rl);
    key.subj = s->subj;
    if (s->l->n &&
        bsearch(&key, s->l->items, s->l->n, sizeof(key), item_cmp) != NULL)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = msg_ref(m);
}

static void load_done(void *arg);

static void load_submit(struct cr_load *l)
{
    l->gen = l->cr->gen;
    cluster_work_submit(cluster_work_q(l->cr->cl), load_work, load_done, l);
}

static void load_done(void *arg)
{
    struct cr_load *l = arg;
    struct cluster_retain *cr = l->cr;
    struct broker *b = cluster_broker(cr->cl);
    const struct conf *c = broker_conf(b);
    struct retain *rs = broker_retain(b);
    struct cr_stale st = {.l = l};
    char topic[65536];
    size_t set = 0;

    if (l->why) {
        LOG_W(cluster_log(cr->cl),
              "Cluster: retained messages not loaded from %s: %s (%s); "
              "retrying at the next connection to NATS.",
              CR_STREAM, l->why, natsStatus_GetText(l->st));
        free_load(l);
        free(l);
        return;
    }
    if (cr->gen != l->gen && l->tries++ < CR_LOAD_RETRIES) {
        /* a retained message changed while the stream was read: the read
         * may be older than the cache, read again */
        free_load(l);
        load_submit(l);
        return;
    }
    if (l->n > 1)
        qsort(l->items, l->n, sizeof(*l->items), item_cmp);
    retain_foreach(rs, stale_cb, &st);
    for (size_t i = 0; i < st.n; i++) {
        struct msg *m = st.v[i];
        struct msg *e =
            msg_new(m->topic, m->topic_len, NULL, 0, NULL, 0, 0, true, 0);
        retain_set(rs, e, 0, 0);
        msg_unref(e);
        msg_unref(m);
    }
    free(st.v);
    for (size_t i = 0; i < l->n; i++) {
        struct cr_item *it = &l->items[i];
        const char *why;
        size_t sl = strlen(it->subj), rl = strlen(CR_ROOT);
        struct msg *m;

        /* back to the topic's subject: "mqtt" + the rest */
        memmove(it->subj + 4, it->subj + rl, sl - rl + 1);
        memcpy(it->subj, CLUSTER_WIRE_ROOT, 4);
        m = cluster_msg_in(it->subj, it->data, (int)it->len, topic,
                           sizeof(topic), &why);
        if (m == NULL)
            continue;
        if (m->payload_len == 0) {
            msg_unref(m);
            continue;
        }
        m->retain = true; /* the stream holds retained messages only */
        if (retain_set(rs, m, c->max_retained_messages,
                       c->max_retained_bytes) == 0)
            set++;
        msg_unref(m);
    }
    LOG_I(cluster_log(cr->cl),
          "Cluster: %zu retained message(s) loaded from %s, %zu stale "
          "one(s) cleared.",
          set, CR_STREAM, st.n);
    free_load(l);
    free(l);
}

void cluster_retain_connected(struct cluster_retain *cr)
{
    struct cr_load *l = xcalloc(1, sizeof(*l));

    l->cr = cr;
    load_submit(l);
}

struct cluster_retain *cluster_retain_new(struct cluster *cl)
{
    struct cluster_retain *cr = xcalloc(1, sizeof(*cr));

    cr->cl = cl;
    return cr;
}

void cluster_retain_free(struct cluster_retain *cr)
{
    free(cr);
}
