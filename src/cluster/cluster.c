/*
 * cluster.c - cluster mode over NATS (cluster.h, docs/cluster.md).
 */
#include "cluster.h"

#include <ev.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "cluster_auth.h"
#include "cluster_int.h"
#include "cluster_owner.h"
#include "cluster_retain.h"
#include "cluster_sess.h"
#include "cluster_share.h"
#include "cluster_wire.h"
#include "cluster_wills.h"
#include "cluster_work.h"
#include "conf.h"
#include "log.h"
#include "msg.h"
#include "nats_ev.h"
#include "util.h"

/* a cluster_subscribe subscription */
struct csub {
    struct csub *next;
    natsSubscription *sub;
    cluster_msg_fn fn;
    void *ud;
};

struct cluster {
    struct ev_loop *loop;
    struct broker *b;
    struct log *log;
    struct nats_ev *ev;
    natsOptions *opts;
    natsConnection *nc;
    natsSubscription *sub;
    jsCtx *js;
    struct cluster_work *work;
    struct cluster_owner *owner; /* client-id ownership */
    struct csub *subs;
    struct cluster_retain *retain; /* retained messages cluster-wide */
    struct cluster_share *share;   /* $share groups across nodes */
    struct cluster_sess *sess;     /* JetStream, sessions across nodes */
    struct cluster_wills *wills;   /* wills of dead nodes */
    ev_timer status;               /* logs connection changes */
    natsConnStatus last;
    char lasterr[256];     /* the last connect error logged (status_cb) */
    pthread_mutex_t errmu; /* guards asyncerr (written by cnats' thread) */
    char asyncerr[256];
    char name[80];
    uint8_t *buf; /* envelope being published */
    size_t buf_cap;
    char subj[CLUSTER_WIRE_SUBJECT_MAX + 1];
    char topic[65536];
    struct log_ratelimit out_rl, in_rl;
};

/* ---- this node's clients -> NATS --------------------------------------- */

static void pub_hook(void *ud, const struct msg *m)
{
    struct cluster *cl = ud;
    struct cluster_wire_msg w = {m->qos,        m->retain,    m->expiry_at,
                                 m->props,      m->props_len, m->payload,
                                 m->payload_len};
    size_t n = CLUSTER_WIRE_HEADER + (size_t)m->props_len + m->payload_len;
    natsStatus st;
    unsigned sup;

    if (cluster_wire_subject(m->topic, m->topic_len, cl->subj,
                             sizeof(cl->subj)) < 0) {
        if (log_ratelimit_ok(&cl->out_rl, 5, 10.0, &sup))
            LOG_W(cl->log,
                  "Cluster: message on '%.100s...' not sent to the other "
                  "nodes: its NATS subject would be over %d bytes (%u "
                  "similar lines suppressed).",
                  m->topic, CLUSTER_WIRE_SUBJECT_MAX, sup);
        cluster_share_publish(cl->share, m, NULL, NULL, 0);
        return;
    }
    if (n > cl->buf_cap) {
        cl->buf_cap = n;
        cl->buf = xrealloc(cl->buf, n);
    }
    cluster_wire_header(&w, cl->buf);
    if (m->props_len)
        memcpy(cl->buf + CLUSTER_WIRE_HEADER, m->props, m->props_len);
    if (m->payload_len)
        memcpy(cl->buf + CLUSTER_WIRE_HEADER + m->props_len, m->payload,
               m->payload_len);
    /* buffered by cnats: written by the adapter's write watcher, or kept
     * in its reconnect buffer while NATS is away */
    st = natsConnection_Publish(cl->nc, cl->subj, cl->buf, (int)n);
    if (st != NATS_OK && log_ratelimit_ok(&cl->out_rl, 5, 10.0, &sup))
        LOG_W(cl->log,
              "Cluster: message on '%s' not sent to the other nodes: %s (%u "
              "similar lines suppressed).",
              m->topic, natsStatus_GetText(st), sup);
    /* the shared groups of every node, this one included, get it there */
    cluster_share_publish(cl->share, m, cl->subj, cl->buf, n);
    if (m->retain)
        cluster_retain_local(cl->retain, m, cl->subj);
}

/* ---- NATS -> this node's subscribers ----------------------------------- */

struct msg *cluster_msg_in(const char *subject, const void *data, int len,
                           char *topic, size_t cap, const char **why)
{
    struct cluster_wire_msg w;
    int tl;

    *why = NULL;
    tl = cluster_wire_topic(subject, strlen(subject), topic, cap);
    if (tl < 0) {
        *why = "not an MQTT topic's subject";
        return NULL;
    }
    if (len < 0 ||
        cluster_wire_decode((const uint8_t *)data, (size_t)len, &w, why) < 0) {
        *why = *why ? *why : "no data";
        return NULL;
    }
    if (msg_expired(&(struct msg){.expiry_at = w.expiry_at},
                    (int64_t)time(NULL)))
        return NULL;
    return msg_new(topic, (size_t)tl, w.props, w.props_len, w.payload,
                   w.payload_len, w.qos, w.retain, w.expiry_at);
}

static void take_one(struct cluster *cl, natsMsg *nm)
{
    const char *s = natsMsg_GetSubject(nm), *why;
    struct msg *m =
        cluster_msg_in(s, natsMsg_GetData(nm), natsMsg_GetDataLength(nm),
                       cl->topic, sizeof(cl->topic), &why);
    unsigned sup;

    if (m == NULL) {
        if (why != NULL && log_ratelimit_ok(&cl->in_rl, 5, 10.0, &sup))
            LOG_W(cl->log,
                  "Cluster: NATS message on '%.200s' ignored: %s (%u similar "
                  "lines suppressed).",
                  s, why, sup);
        return;
    }
    if (m->retain)
        cluster_retain_remote(cl->retain, m);
    broker_publish_remote(cl->b, m);
    msg_unref(m);
}

static void on_read(void *ud)
{
    struct cluster *cl = ud;
    natsMsg *nm = NULL;
    struct csub *s, *next;

    while (cl->sub && natsSubscription_NextMsg(&nm, cl->sub, 0) == NATS_OK &&
           nm) {
        take_one(cl, nm);
        natsMsg_Destroy(nm);
        nm = NULL;
    }
    /* a handler may unsubscribe itself (or another): take next first */
    for (s = cl->subs; s; s = next) {
        next = s->next;
        while (natsSubscription_NextMsg(&nm, s->sub, 0) == NATS_OK && nm) {
            s->fn(s->ud, nm);
            natsMsg_Destroy(nm);
            nm = NULL;
            if (!natsSubscription_IsValid(s->sub))
                break;
        }
    }
}

/* ---- what the behaviours share (cluster_int.h) ------------------------ */

struct ev_loop *cluster_loop(const struct cluster *cl)
{
    return cl->loop;
}
struct broker *cluster_broker(const struct cluster *cl)
{
    return cl->b;
}
struct log *cluster_log(const struct cluster *cl)
{
    return cl->log;
}
const char *cluster_node(const struct cluster *cl)
{
    return cl->name;
}
natsConnection *cluster_nc(const struct cluster *cl)
{
    return cl->nc;
}
jsCtx *cluster_js(const struct cluster *cl)
{
    return cl->js;
}
struct cluster_work *cluster_work_q(const struct cluster *cl)
{
    return cl->work;
}
natsOptions *cluster_opts(const struct cluster *cl)
{
    return cl->opts;
}

natsStatus cluster_kv(struct cluster *cl, const char *bucket, int64_t ttl,
                      kvStore **kv)
{
    kvConfig kc;

    if (js_KeyValue(kv, cl->js, bucket) == NATS_OK)
        return NATS_OK;
    *kv = NULL;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = 1;
    kc.TTL = ttl;
    return js_CreateKeyValue(kv, cl->js, &kc);
}

natsSubscription *cluster_subscribe(struct cluster *cl, const char *subject,
                                    const char *queue, cluster_msg_fn fn,
                                    void *ud, natsStatus *st)
{
    natsSubscription *sub = NULL;
    struct csub *s;

    *st = queue
              ? natsConnection_QueueSubscribeSync(&sub, cl->nc, subject, queue)
              : natsConnection_SubscribeSync(&sub, cl->nc, subject);
    if (*st != NATS_OK)
        return NULL;
    natsSubscription_SetPendingLimits(sub, -1, -1);
    s = xcalloc(1, sizeof(*s));
    s->sub = sub;
    s->fn = fn;
    s->ud = ud;
    s->next = cl->subs;
    cl->subs = s;
    return sub;
}

void cluster_unsubscribe(struct cluster *cl, natsSubscription *sub)
{
    struct csub **pp, *s;

    if (sub == NULL)
        return;
    for (pp = &cl->subs; (s = *pp) != NULL; pp = &s->next)
        if (s->sub == sub) {
            *pp = s->next;
            natsSubscription_Unsubscribe(sub);
            natsSubscription_Destroy(sub);
            free(s);
            return;
        }
}

/* ---- connection state ------------------------------------------------- */

/* Logs why the NATS connection fails (TLS verification, authorization),
 * once per different reason: cnats' texts never hold the password. */
static void log_conn_error(struct cluster *cl, natsConnStatus st)
{
    const char *text = NULL;
    char async[256];

    pthread_mutex_lock(&cl->errmu);
    snprintf(async, sizeof(async), "%s", cl->asyncerr);
    cl->asyncerr[0] = '\0';
    pthread_mutex_unlock(&cl->errmu);
    if (async[0])
        text = async;
    else if (natsConnection_GetLastError(cl->nc, &text) == NATS_OK ||
             text == NULL || *text == '\0')
        return;
    if (strcmp(text, cl->lasterr) == 0 ||
        (async[0] == '\0' && cl->lasterr[0] &&
         strcmp(text, "No server available for connection") == 0))
        return; /* the same, or cnats' generic text after a real reason */
    snprintf(cl->lasterr, sizeof(cl->lasterr), "%s", text);
    LOG_E(cl->log, "Cluster: node %s cannot connect to NATS: %s%s", cl->name,
          text,
          st == NATS_CONN_STATUS_CLOSED
              ? "; the NATS client gave up (a refused CA, client "
                "certificate or credentials? check the cluster_nats_* keys "
                "and the NATS server log, then restart); local delivery "
                "goes on"
              : "; retrying, local delivery goes on");
}

static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cluster *cl = w->data;
    natsConnStatus st = natsConnection_Status(cl->nc);
    char url[256];

    (void)loop;
    (void)revents;
    if (st != NATS_CONN_STATUS_CONNECTED)
        log_conn_error(cl, st);
    if (st == cl->last)
        return;
    if (st == NATS_CONN_STATUS_CONNECTED) {
        if (natsConnection_GetConnectedUrl(cl->nc, url, sizeof(url)) != NATS_OK)
            snprintf(url, sizeof(url), "?");
        LOG_N(cl->log, "Cluster: node %s connected to NATS at %s.", cl->name,
              url);
        cl->lasterr[0] = '\0';
        cluster_retain_connected(cl->retain);
        cluster_sess_connected(cl->sess);
    } else if (cl->last == NATS_CONN_STATUS_CONNECTED) {
        LOG_W(cl->log,
              "Cluster: node %s lost its NATS connection; local delivery "
              "goes on, messages for the other nodes are buffered until "
              "NATS returns.",
              cl->name);
    }
    cl->last = st;
}

/* Connected after a failed first attempt (cnats' thread): status_cb, on
 * the loop, notices and logs it; nothing to do here. Not NULL, so that
 * natsConnection_Connect does not retry synchronously. */
/* cnats' asynchronous errors (its thread): the reason is kept for
 * status_cb, which logs it on the loop. */
static void error_cb(natsConnection *nc, natsSubscription *sub, natsStatus err,
                     void *closure)
{
    struct cluster *cl = closure;
    const char *text = NULL;

    (void)sub;
    natsConnection_GetLastError(nc, &text);
    pthread_mutex_lock(&cl->errmu);
    snprintf(cl->asyncerr, sizeof(cl->asyncerr), "%s%s%s",
             natsStatus_GetText(err), text && *text ? ": " : "",
             text ? text : "");
    pthread_mutex_unlock(&cl->errmu);
}

static void connected_cb(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
}

static int set_servers(natsOptions *o, const char *list)
{
    char *copy = xstrdup(list), *save = NULL;
    const char *v[64];
    int n = 0;
    natsStatus st;

    for (char *t = strtok_r(copy, ",", &save); t && n < 64;
         t = strtok_r(NULL, ",", &save))
        v[n++] = t;
    st = natsOptions_SetServers(o, v, n);
    free(copy);
    return st == NATS_OK ? 0 : -1;
}

struct cluster *cluster_new(struct ev_loop *loop, struct broker *b,
                            struct log *lg, char *err, size_t errlen)
{
    const struct conf *c = broker_conf(b);
    struct cluster *cl = xcalloc(1, sizeof(*cl));
    char host[64], cname[100];
    natsStatus st, cst;
    sigset_t all, old;

    cl->loop = loop;
    cl->b = b;
    cl->log = lg;
    cl->last = NATS_CONN_STATUS_DISCONNECTED;
    pthread_mutex_init(&cl->errmu, NULL);
    if (c->cluster_node_name) {
        snprintf(cl->name, sizeof(cl->name), "%s", c->cluster_node_name);
    } else {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "mqttd");
        host[sizeof(host) - 1] = '\0';
        snprintf(cl->name, sizeof(cl->name), "%s", host);
    }
    snprintf(cname, sizeof(cname), "mqttd-%s", cl->name);
    /* cnats' threads (started now and on reconnects) must not take the
     * daemon's signals, which the loop reads (signalfd): they start with
     * every signal blocked */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (nats_Open(-1) != NATS_OK) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        snprintf(err, errlen, "cluster: the NATS library did not start");
        pthread_mutex_destroy(&cl->errmu);
        free(cl);
        return NULL;
    }
    cl->ev = nats_ev_new(loop, on_read, cl);
    if (natsOptions_Create(&cl->opts) != NATS_OK ||
        set_servers(cl->opts, c->cluster_nats) < 0) {
        snprintf(err, errlen, "cluster_nats '%s': %s", c->cluster_nats,
                 nats_GetLastError(NULL) ? nats_GetLastError(NULL)
                                         : "refused by the NATS client");
        goto fail;
    }
    if (natsOptions_SetName(cl->opts, cname) != NATS_OK ||
        natsOptions_SetNoEcho(cl->opts, true) != NATS_OK ||
        natsOptions_SetAllowReconnect(cl->opts, true) != NATS_OK ||
        natsOptions_SetMaxReconnect(cl->opts, -1) != NATS_OK ||
        natsOptions_SetReconnectWait(cl->opts, 500) != NATS_OK ||
        natsOptions_SetRetryOnFailedConnect(cl->opts, true, connected_cb,
                                            NULL) != NATS_OK ||
        nats_ev_install(cl->ev, cl->opts) != NATS_OK) {
        snprintf(err, errlen, "cluster: NATS options refused: %s",
                 nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "?");
        goto fail;
    }
    if (cluster_auth_apply(cl->opts, c, err, errlen) < 0)
        goto fail;
    if (natsOptions_SetErrorHandler(cl->opts, error_cb, cl) != NATS_OK) {
        snprintf(err, errlen, "cluster: NATS error handler refused");
        goto fail;
    }
    cst = natsConnection_Connect(&cl->nc, cl->opts);
    if (cst != NATS_OK && cst != NATS_NOT_YET_CONNECTED) {
        snprintf(err, errlen, "cluster_nats '%s': %s", c->cluster_nats,
                 natsStatus_GetText(cst));
        goto fail;
    }
    if (cst == NATS_NOT_YET_CONNECTED && nats_GetLastError(NULL) &&
        *nats_GetLastError(NULL)) {
        /* why the first attempt failed (TLS, authorization): cnats' text,
         * which never holds the password */
        snprintf(cl->lasterr, sizeof(cl->lasterr), "%s",
                 nats_GetLastError(NULL));
        LOG_E(lg, "Cluster: node %s cannot connect to NATS: %s", cl->name,
              cl->lasterr);
    }
    st = natsConnection_SubscribeSync(&cl->sub, cl->nc, CLUSTER_WIRE_ROOT ".>");
    if (st == NATS_CONNECTION_CLOSED) {
        /* the NATS client gave up at once (a refused certificate or
         * password): the node serves its local clients, without cluster */
        LOG_E(lg,
              "Cluster: node %s: the NATS client gave up (%s); this node "
              "serves its local clients only: fix the cluster_nats keys "
              "and restart.",
              cl->name, cl->lasterr[0] ? cl->lasterr : "connection closed");
        cl->sub = NULL;
    } else if (st != NATS_OK) {
        snprintf(err, errlen, "cluster: NATS subscription refused: %s",
                 natsStatus_GetText(st));
        goto fail;
    }
    /* no limit on pending messages: on_read takes them all after every
     * read, so they never pile up */
    if (cl->sub)
        natsSubscription_SetPendingLimits(cl->sub, -1, -1);
    if (natsConnection_JetStream(&cl->js, cl->nc, NULL) != NATS_OK) {
        snprintf(err, errlen, "cluster: no JetStream context: %s",
                 nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "?");
        goto fail;
    }
    cl->work = cluster_work_new(loop);
    cl->retain = cluster_retain_new(cl);
    ev_timer_init(&cl->status, status_cb, 0.0, 0.25);
    cl->status.data = cl;
    ev_timer_start(loop, &cl->status);
    ev_unref(loop); /* does not keep the loop alive */
    if (cst == NATS_NOT_YET_CONNECTED)
        LOG_W(lg,
              "Cluster: node %s could not reach NATS at %s yet; retrying "
              "every 0.5 s, local delivery goes on.",
              cl->name, c->cluster_nats);
    cl->share = cluster_share_new(cl, err, errlen);
    if (cl->share == NULL) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        cluster_free(cl);
        return NULL;
    }
    broker_set_publish_hook(b, pub_hook, cl);
    cl->owner = cluster_owner_new(cl);
    cl->sess = cluster_sess_new(cl);
    cl->wills = cluster_wills_new(cl, cluster_owner_epoch(cl->owner));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return cl;
fail:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    jsCtx_Destroy(cl->js);
    natsSubscription_Destroy(cl->sub);
    natsConnection_Destroy(cl->nc);
    natsOptions_Destroy(cl->opts);
    nats_ev_free(cl->ev);
    nats_Close();
    pthread_mutex_destroy(&cl->errmu);
    free(cl);
    return NULL;
}

void cluster_free(struct cluster *cl)
{
    if (cl == NULL)
        return;
    broker_set_publish_hook(cl->b, NULL, NULL);
    cluster_share_free(cl->share);
    ev_ref(cl->loop);
    ev_timer_stop(cl->loop, &cl->status);
    /* closed first: jobs still queued fail at once (cluster_work.h) */
    cluster_wills_free(cl->wills); /* before the owner: uses its epoch */
    cluster_owner_free(cl->owner);
    natsConnection_Close(cl->nc);
    cluster_work_free(cl->work);
    cluster_retain_free(cl->retain);
    cluster_sess_free(cl->sess);
    while (cl->subs)
        cluster_unsubscribe(cl, cl->subs->sub);
    natsSubscription_Destroy(cl->sub);
    cl->sub = NULL;
    jsCtx_Destroy(cl->js);
    natsConnection_Destroy(cl->nc);
    natsOptions_Destroy(cl->opts);
    nats_ev_free(cl->ev);
    nats_CloseAndWait(2000);
    free(cl->buf);
    pthread_mutex_destroy(&cl->errmu);
    free(cl);
}
