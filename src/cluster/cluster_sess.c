/*
 * cluster_sess.c - the MQTT_MSGS stream and persistent sessions that move
 * between nodes (cluster_sess.h, docs/cluster.md).
 *
 * A persistent session going offline on node A: A writes it (its
 * subscriptions and the time) to MQTT_SESSIONS and keeps its own offline
 * copy, fed live as before. Its client reconnecting (clean start false):
 *   - to A: the KV entry is deleted, A's copy is used (as single-node);
 *   - to B: B reads the entry, creates one pull consumer on MQTT_MSGS per
 *     subscription subject, starting at the offline time, fetches what
 *     they hold, merges it in stream order (a message matching two
 *     subscriptions once), deletes the consumers and the entry, builds the
 *     session with those messages queued, then sends CONNACK (session
 *     present) and announces the move so that A drops its copy.
 * The blocking calls run on the cluster's worker thread (cluster_work.h).
 */
#include "cluster_sess.h"

#include <cjson/cJSON.h>
#include <ev.h>
#include <nats/nats.h>
#include <stdio.h>
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
#include "session.h"
#include "util.h"

#define STREAM "MQTT_MSGS"
#define BUCKET "MQTT_SESSIONS"
#define MOVED "mqttd.sess.moved."

struct cluster_sess {
    struct cluster *cl;
    natsSubscription *moved;
    uint64_t seq;   /* consumer names */
    long long boot; /* consumer names: unique across restarts */
    kvStore *kv;    /* MQTT_SESSIONS, opened once (worker thread only) */
};

/* ---- helpers ---------------------------------------------------------- */

static char *hex_key(const char *prefix, const char *id)
{
    size_t n = strlen(id), pl = strlen(prefix);
    char *k = xcalloc(1, pl + 2 * n + 2);

    snprintf(k, pl + 2, "%sc", prefix); /* 'c': never empty */
    util_hex(id, n, k + pl + 1);
    return k;
}

/* the bucket, opened at its first use (worker thread) */
static kvStore *bucket(struct cluster_sess *cs, natsStatus *st)
{
    *st = NATS_OK;
    if (cs->kv == NULL &&
        (*st = js_KeyValue(&cs->kv, cluster_js(cs->cl), BUCKET)) != NATS_OK)
        cs->kv = NULL;
    return cs->kv;
}

/* ---- stream and bucket ------------------------------------------------ */

struct ensure_job {
    struct cluster *cl;
    uint32_t max_age;
    uint64_t max_bytes;
    char err[200];
};

static void ensure_work(void *arg)
{
    struct ensure_job *j = arg;
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    kvStore *kv = NULL;
    const char *subj[] = {CLUSTER_WIRE_ROOT ".t.>", CLUSTER_WIRE_ROOT ".d.>"};
    natsStatus st;

    jsStreamConfig_Init(&sc);
    sc.Name = STREAM;
    sc.Subjects = subj;
    sc.SubjectsLen = 2;
    sc.Storage = js_FileStorage;
    sc.MaxAge = (int64_t)j->max_age * 1000000000LL;
    sc.MaxBytes = (int64_t)j->max_bytes;
    sc.Discard = js_DiscardOld;
    st = js_AddStream(&si, cluster_js(j->cl), &sc, NULL, &jerr);
    if (st != NATS_OK && jerr == JSStreamNameExistErr)
        st = js_UpdateStream(&si, cluster_js(j->cl), &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (st != NATS_OK) {
        snprintf(j->err, sizeof(j->err), "stream " STREAM ": %s (%d)",
                 natsStatus_GetText(st), (int)jerr);
        return;
    }
    st = cluster_kv(j->cl, BUCKET, 0, &kv);
    kvStore_Destroy(kv);
    if (st != NATS_OK)
        snprintf(j->err, sizeof(j->err), "bucket " BUCKET ": %s",
                 natsStatus_GetText(st));
}

static void ensure_done(void *arg)
{
    struct ensure_job *j = arg;

    if (j->err[0])
        LOG_W(cluster_log(j->cl),
              "Cluster: node %s could not create JetStream %s; QoS 1/2 "
              "messages are not kept for offline sessions until it can.",
              cluster_node(j->cl), j->err);
    else
        LOG_I(cluster_log(j->cl),
              "Cluster: node %s: stream " STREAM " and bucket " BUCKET
              " ready.",
              cluster_node(j->cl));
    free(j);
}

void cluster_sess_connected(struct cluster_sess *cs)
{
    struct ensure_job *j = xcalloc(1, sizeof(*j));
    const struct conf *c = broker_conf(cluster_broker(cs->cl));

    j->cl = cs->cl;
    j->max_age = c->cluster_msgs_max_age;
    j->max_bytes = c->cluster_msgs_max_bytes;
    cluster_work_submit(cluster_work_q(cs->cl), ensure_work, ensure_done, j);
}

/* ---- a session goes offline ------------------------------------------- */

struct put_job {
    struct cluster_sess *cs;
    struct cluster *cl;
    char *key, *id, *json;
    natsStatus st;
};

static void add_sub(const struct session_sub *sub, void *arg)
{
    cJSON *o = cJSON_CreateObject();
    char *f = xcalloc(1, (size_t)sub->len + 1);

    memcpy(f, sub->filter, sub->len);
    cJSON_AddStringToObject(o, "f", f);
    cJSON_AddNumberToObject(o, "q", sub->qos);
    cJSON_AddNumberToObject(o, "fl", sub->flags);
    cJSON_AddNumberToObject(o, "rh", sub->rh);
    cJSON_AddNumberToObject(o, "id", sub->sub_id);
    cJSON_AddItemToArray(arg, o);
    free(f);
}

static void put_work(void *arg)
{
    struct put_job *j = arg;
    kvStore *kv = bucket(j->cs, &j->st);
    uint64_t rev;

    if (kv)
        j->st = kvStore_PutString(&rev, kv, j->key, j->json);
}

static void put_done(void *arg)
{
    struct put_job *j = arg;

    if (j->st == NATS_OK)
        LOG_I(cluster_log(j->cl),
              "Cluster: offline session of %s kept in " BUCKET ".", j->id);
    else
        LOG_W(cluster_log(j->cl),
              "Cluster: offline session of %s not written to " BUCKET
              " (%s): it can resume on this node only.",
              j->id, natsStatus_GetText(j->st));
    free(j->key);
    free(j->id);
    free(j->json);
    free(j);
}

static void on_offline(void *ud, struct session *s)
{
    struct cluster_sess *cs = ud;
    struct session_info in;
    struct timespec now;
    cJSON *o = cJSON_CreateObject(), *subs = cJSON_CreateArray();
    struct put_job *j;
    char start[32];

    session_info(s, &in);
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(start, sizeof(start), "%lld",
             (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    cJSON_AddStringToObject(o, "node", cluster_node(cs->cl));
    cJSON_AddNumberToObject(o, "v", in.version);
    cJSON_AddNumberToObject(o, "exp", in.expiry);
    cJSON_AddNumberToObject(o, "off", (double)now.tv_sec);
    cJSON_AddStringToObject(o, "start", start);
    session_subs_foreach(s, add_sub, subs);
    cJSON_AddItemToObject(o, "subs", subs);
    j = xcalloc(1, sizeof(*j));
    j->cs = cs;
    j->cl = cs->cl;
    j->key = hex_key("", in.client_id);
    j->id = xstrdup(in.client_id);
    j->json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cluster_work_submit(cluster_work_q(cs->cl), put_work, put_done, j);
}

/* ---- a client connects ------------------------------------------------ */

struct got {
    uint64_t seq;
    uint8_t qos;
    uint32_t sub_id;
    natsMsg *m;
};

struct conn_job {
    struct cluster_sess *cs;
    struct client *c; /* NULL once it closed (cancel) */
    char *id, *key;
    bool clean;
    char *json;   /* the KV entry, NULL: none */
    bool kv_ok;   /* the lookup got an answer */
    bool foreign; /* the entry was written by another node */
    cJSON *doc;
    struct got *got;
    size_t ngot, cap;
    char err[160];
};

/* the timestamp (ns) of stream message seq, or -1 when it is not there
 * (deleted) or cannot be read */
static int64_t msg_time(struct cluster *cl, uint64_t seq)
{
    natsMsg *m = NULL;
    int64_t t = -1;

    if (js_GetMsg(&m, cluster_js(cl), STREAM, seq, NULL, NULL) == NATS_OK) {
        t = natsMsg_GetTime(m);
        natsMsg_Destroy(m);
    }
    return t;
}

/*
 * seq_from_time: the first sequence of MQTT_MSGS stored at or after t0
 * (ns), by a binary search over the stream's timestamps (at most ~40
 * reads; a deleted message counts as older). The last sequence + 1 when
 * none is. 0 with j->err set when the stream cannot be read.
 *
 * Not the consumer's own DeliverByStartTime: nats-server 2.9.10 (Debian
 * 12) placed such a consumer after messages stored later than its start
 * time now and then (seen: 5 messages 0.56 s after the start, consumer
 * started at sequence 6), which lost a moving session's messages.
 */
static uint64_t seq_from_time(struct conn_job *j, int64_t t0)
{
    struct cluster *cl = j->cs->cl;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t lo, hi;
    natsStatus st;

    st = js_GetStreamInfo(&si, cluster_js(cl), STREAM, NULL, &jerr);
    if (st != NATS_OK || si == NULL) {
        snprintf(j->err, sizeof(j->err), "stream " STREAM ": %s (%d)",
                 natsStatus_GetText(st), (int)jerr);
        return 0;
    }
    lo = si->State.FirstSeq;
    hi = si->State.LastSeq + 1;
    jsStreamInfo_Destroy(si);
    if (lo == 0)
        lo = 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (msg_time(cl, mid) >= t0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void fetch_subject(struct conn_job *j, const char *subject,
                          uint64_t start, uint8_t qos, uint32_t sub_id)
{
    struct cluster *cl = j->cs->cl;
    jsSubOptions so;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    char durable[128];
    jsConsumerInfo *ci = NULL;
    uint64_t pending = 0;
    natsStatus st;

    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = -1;
    so.Config.InactiveThreshold = 60LL * 1000000000LL; /* a backstop */
    /* the worker's jobs run one at a time: j->cs->seq is not shared */
    snprintf(durable, sizeof(durable), "mqttd_%s_%llx_%llu", cluster_node(cl),
             (unsigned long long)j->cs->boot, (unsigned long long)++j->cs->seq);
    st = js_PullSubscribe(&sub, cluster_js(cl), subject, durable, NULL, &so,
                          &jerr);
    if (st != NATS_OK) {
        snprintf(j->err, sizeof(j->err), "consumer on %s: %s (%d)", subject,
                 natsStatus_GetText(st), (int)jerr);
        return;
    }
    /* what the consumer holds now, then fetch exactly that: a NoWait
     * fetch right after the consumer's creation may come back short */
    if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &jerr) == NATS_OK &&
        ci) {
        pending = ci->NumPending;
        jsConsumerInfo_Destroy(ci);
    }
    while (pending > 0) {
        natsMsgList list = {0};
        jsFetchRequest fr;

        jsFetchRequest_Init(&fr);
        fr.Batch = pending < 256 ? (int)pending : 256;
        fr.Expires = 2000LL * 1000000LL;
        st = natsSubscription_FetchRequest(&list, sub, &fr);
        if (st != NATS_OK || list.Count == 0) {
            natsMsgList_Destroy(&list);
            snprintf(j->err, sizeof(j->err),
                     "fetch on %s: %s, %llu message(s) not fetched", subject,
                     natsStatus_GetText(st), (unsigned long long)pending);
            break;
        }
        for (int i = 0; i < list.Count; i++) {
            jsMsgMetaData *md = NULL;
            natsMsg *m = list.Msgs[i];
            if (pending > 0)
                pending--;
            if (natsMsg_GetMetaData(&md, m) != NATS_OK)
                continue;
            natsMsg_Ack(m, NULL);
            if (j->ngot == j->cap) {
                j->cap = j->cap ? 2 * j->cap : 64;
                j->got = xrealloc(j->got, j->cap * sizeof(*j->got));
            }
            j->got[j->ngot++] =
                (struct got){md->Sequence.Stream, qos, sub_id, m};
            list.Msgs[i] = NULL; /* ours now */
            jsMsgMetaData_Destroy(md);
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub); /* deletes the consumer it made */
    natsSubscription_Destroy(sub);
}

static void conn_work(void *arg)
{
    struct conn_job *j = arg;
    kvStore *kv;
    kvEntry *e = NULL;
    natsStatus st;
    cJSON *node, *subs, *sub, *start;
    int64_t t0;
    uint64_t seq0;

    kv = bucket(j->cs, &st);
    if (kv)
        st = kvStore_Get(&e, kv, j->key);
    if (st == NATS_NOT_FOUND) {
        j->kv_ok = true;
    } else if (st == NATS_OK) {
        j->kv_ok = true;
        j->json = xstrdup(kvEntry_ValueString(e));
        kvEntry_Destroy(e);
        kvStore_Delete(kv, j->key); /* ownership moves (or ends) here */
    } else {
        snprintf(j->err, sizeof(j->err), "%s", natsStatus_GetText(st));
    }
    if (j->json == NULL || j->clean)
        return;
    j->doc = cJSON_Parse(j->json);
    node = cJSON_GetObjectItem(j->doc, "node");
    if (!cJSON_IsString(node) ||
        strcmp(node->valuestring, cluster_node(j->cs->cl)) == 0)
        return; /* ours: this node's offline copy is the session */
    {
        double exp = cJSON_GetNumberValue(cJSON_GetObjectItem(j->doc, "exp"));
        double off = cJSON_GetNumberValue(cJSON_GetObjectItem(j->doc, "off"));
        if (exp < 4294967295.0 && off + exp < (double)time(NULL)) {
            snprintf(j->err, sizeof(j->err),
                     "its session on node %s expired; starting a new one",
                     node->valuestring);
            return; /* expired: the entry is gone, a new session starts */
        }
    }
    j->foreign = true;
    start = cJSON_GetObjectItem(j->doc, "start");
    t0 = cJSON_IsString(start) ? strtoll(start->valuestring, NULL, 10) : 0;
    seq0 = seq_from_time(j, t0);
    if (seq0 == 0)
        return; /* j->err says why: the session moves without messages */
    subs = cJSON_GetObjectItem(j->doc, "subs");
    cJSON_ArrayForEach(sub, subs)
    {
        cJSON *f = cJSON_GetObjectItem(sub, "f");
        char subj[CLUSTER_WIRE_SUBJECT_MAX + 1];
        size_t parent = 0;
        int n;
        uint8_t q =
            (uint8_t)cJSON_GetNumberValue(cJSON_GetObjectItem(sub, "q"));
        uint32_t id =
            (uint32_t)cJSON_GetNumberValue(cJSON_GetObjectItem(sub, "id"));

        if (!cJSON_IsString(f) || q == 0 ||
            strncmp(f->valuestring, "$share/", 7) == 0)
            continue; /* QoS 0 is not kept offline; shares: not here */
        n = cluster_wire_filter(f->valuestring, strlen(f->valuestring), subj,
                                sizeof(subj), &parent);
        if (n < 0)
            continue;
        fetch_subject(j, subj, seq0, q, id);
        if (parent) {
            subj[parent] = '\0';
            fetch_subject(j, subj, seq0, q, id);
        }
    }
}

static int got_cmp(const void *a, const void *b)
{
    const struct got *x = a, *y = b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void restore(struct conn_job *j)
{
    struct cluster *cl = j->cs->cl;
    struct broker *b = cluster_broker(cl);
    cJSON *sub, *subs = cJSON_GetObjectItem(j->doc, "subs");
    struct session *s;
    size_t queued = 0;
    char topic[65536];
    uint8_t v = (uint8_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j->doc, "v"));
    double exp = cJSON_GetNumberValue(cJSON_GetObjectItem(j->doc, "exp"));

    s = broker_session_adopt(j->c, v,
                             exp >= 4294967295.0 ? UINT32_MAX : (uint32_t)exp);
    if (s == NULL)
        return;
    cJSON_ArrayForEach(sub, subs)
    {
        cJSON *f = cJSON_GetObjectItem(sub, "f");
        struct session_sub ss = {0};
        if (!cJSON_IsString(f))
            continue;
        ss.filter = f->valuestring;
        ss.len = (uint16_t)strlen(f->valuestring);
        ss.qos = (uint8_t)cJSON_GetNumberValue(cJSON_GetObjectItem(sub, "q"));
        ss.flags =
            (uint8_t)cJSON_GetNumberValue(cJSON_GetObjectItem(sub, "fl"));
        ss.rh = (uint8_t)cJSON_GetNumberValue(cJSON_GetObjectItem(sub, "rh"));
        ss.sub_id =
            (uint32_t)cJSON_GetNumberValue(cJSON_GetObjectItem(sub, "id"));
        session_restore_sub(s, &ss);
    }
    if (j->ngot > 1)
        qsort(j->got, j->ngot, sizeof(*j->got), got_cmp);
    for (size_t i = 0; i < j->ngot; i++) {
        struct got *g = &j->got[i];
        const char *subject = natsMsg_GetSubject(g->m);
        struct cluster_wire_msg w;
        const char *why = NULL;
        struct msg *m;
        int tl, len = natsMsg_GetDataLength(g->m);
        uint8_t q = g->qos;

        /* the same message through two subscriptions: once, best QoS */
        while (i + 1 < j->ngot && j->got[i + 1].seq == g->seq) {
            i++;
            if (j->got[i].qos > q)
                q = j->got[i].qos;
        }
        tl = cluster_wire_topic(subject, strlen(subject), topic, sizeof(topic));
        if (tl < 0 || len < 0 ||
            cluster_wire_decode((const uint8_t *)natsMsg_GetData(g->m),
                                (size_t)len, &w, &why) < 0 ||
            w.qos == 0)
            continue;
        m = msg_new(topic, (size_t)tl, w.props, w.props_len, w.payload,
                    w.payload_len, w.qos, false, w.expiry_at);
        if (broker_deliver_restored(b, s, m, q, g->sub_id))
            queued++;
        msg_unref(m);
    }
    LOG_N(cluster_log(cl),
          "Cluster: session of %s moved here from node %s: %zu "
          "subscription(s), %zu message(s) kept meanwhile.",
          j->id, cJSON_GetStringValue(cJSON_GetObjectItem(j->doc, "node")),
          (size_t)cJSON_GetArraySize(subs), queued);
}

static void conn_job_free(struct conn_job *j)
{
    for (size_t i = 0; i < j->ngot; i++)
        natsMsg_Destroy(j->got[i].m);
    free(j->got);
    cJSON_Delete(j->doc);
    free(j->json);
    free(j->id);
    free(j->key);
    free(j);
}

static void conn_done(void *arg)
{
    struct conn_job *j = arg;
    struct cluster *cl = j->cs->cl;

    if (j->clean) { /* not held: only the clean-up of other nodes */
        if (j->json) {
            char *subj = hex_key(MOVED, j->id);
            natsConnection_PublishString(cluster_nc(cl), subj,
                                         cluster_node(cl));
            free(subj);
        }
        conn_job_free(j);
        return;
    }
    if (j->c == NULL) { /* the client left meanwhile */
        if (j->foreign)
            LOG_W(cluster_log(cl),
                  "Cluster: %s closed while its session was moving here; "
                  "its offline messages are lost.",
                  j->id);
        conn_job_free(j);
        return;
    }
    if (j->err[0])
        LOG_W(cluster_log(cl), "Cluster: session lookup of %s: %s.", j->id,
              j->err);
    if (j->foreign)
        restore(j);
    if (j->kv_ok && j->foreign) {
        /* the other nodes drop their offline copy of the session */
        char *subj = hex_key(MOVED, j->id);
        natsConnection_PublishString(cluster_nc(cl), subj, cluster_node(cl));
        free(subj);
    }
    broker_connect_resume(j->c);
    conn_job_free(j);
}

static bool on_connect(void *ud, struct client *c, const char *id, bool clean,
                       void **token)
{
    struct cluster_sess *cs = ud;
    struct conn_job *j;

    if (natsConnection_Status(cluster_nc(cs->cl)) != NATS_CONN_STATUS_CONNECTED)
        return false; /* NATS away: this node's sessions only */
    j = xcalloc(1, sizeof(*j));
    j->cs = cs;
    j->c = c;
    j->id = xstrdup(id);
    j->key = hex_key("", id);
    j->clean = clean;
    cluster_work_submit(cluster_work_q(cs->cl), conn_work, conn_done, j);
    if (clean) {
        /* a new session: nothing to wait for; the job deletes any entry
         * and tells the other nodes to drop their offline copy */
        j->c = NULL;
        return false;
    }
    *token = j;
    return true;
}

static void on_cancel(void *ud, void *token)
{
    struct conn_job *j = token;

    (void)ud;
    j->c = NULL;
}

/* ---- another node took a session -------------------------------------- */

static void on_moved(void *ud, natsMsg *nm)
{
    struct cluster_sess *cs = ud;
    const char *subj = natsMsg_GetSubject(nm);
    size_t n;
    char *id;
    struct session *s;

    if (natsMsg_GetDataLength(nm) > 0 &&
        strncmp(natsMsg_GetData(nm), cluster_node(cs->cl),
                (size_t)natsMsg_GetDataLength(nm)) == 0 &&
        strlen(cluster_node(cs->cl)) == (size_t)natsMsg_GetDataLength(nm))
        return; /* our own */
    if (strlen(subj) < strlen(MOVED) + 1)
        return;
    subj += strlen(MOVED) + 1; /* past the 'c' of hex_key */
    n = strlen(subj);
    id = xcalloc(1, n / 2 + 1);
    if (util_unhex(subj, n, id, n / 2 + 1) < 0) {
        free(id);
        return;
    }
    s = broker_session_find(cluster_broker(cs->cl), id);
    if (s) {
        struct session_info in;
        session_info(s, &in);
        if (!in.online) {
            LOG_I(cluster_log(cs->cl),
                  "Cluster: offline session of %s moved to another node; "
                  "dropped here.",
                  id);
            session_drop(s);
        }
    }
    free(id);
}

/* ---- life ------------------------------------------------------------- */

static const struct broker_sess_hooks hooks = {on_offline, on_connect,
                                               on_cancel};

struct cluster_sess *cluster_sess_new(struct cluster *cl)
{
    struct cluster_sess *cs = xcalloc(1, sizeof(*cs));
    natsStatus st;

    cs->cl = cl;
    cs->boot = (long long)time(NULL);
    cs->moved = cluster_subscribe(cl, MOVED ">", NULL, on_moved, cs, &st);
    if (cs->moved == NULL)
        LOG_W(cluster_log(cl), "Cluster: no subscription to session moves: %s.",
              natsStatus_GetText(st));
    broker_set_session_hooks(cluster_broker(cl), &hooks, cs);
    return cs;
}

void cluster_sess_free(struct cluster_sess *cs)
{
    if (cs == NULL)
        return;
    broker_set_session_hooks(cluster_broker(cs->cl), NULL, NULL);
    kvStore_Destroy(cs->kv); /* the worker, its only user, is gone */
    free(cs);
}
