/*
 * cluster_share.c - "$share/GROUP/FILTER" across nodes over NATS queue
 * groups (cluster_share.h, docs/cluster.md).
 *
 * Why a second connection: the main one has "no echo" (a node never gets
 * its own messages back on mqtt.>), and NATS applies that to queue
 * subscriptions too, so a group whose only member node is the publisher
 * would lose the message. The queue subscriptions live on a connection
 * that publishes nothing; messages are published into the shared space on
 * the main one.
 */
#include "cluster_share.h"

#include <ev.h>
#include <math.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "cluster_int.h"
#include "cluster_wire.h"
#include "conf.h"
#include "log.h"
#include "msg.h"
#include "nats_ev.h"
#include "topic.h"
#include "util.h"

#define CS_ROOT "mqtts" /* CLUSTER_WIRE_ROOT + "s" */
/* a node with shared groups says so on this subject every CS_ANNOUNCE_S
 * seconds (and at once when its first group appears); the others publish
 * shared copies while such an announcement is under CS_TTL_S old */
#define CS_ANNOUNCE "mqttd.share.on"
#define CS_ANNOUNCE_S 1.0
#define CS_TTL_S 3.5

/* one shared group with members on this node */
struct cs_group {
    struct cs_group *next;
    unsigned members;
    natsSubscription *sub[2]; /* the filter's subjects ('#': two) */
    size_t key_len;
    char key[]; /* "$share/GROUP/FILTER" */
};

struct cluster_share {
    struct cluster *cl;
    struct nats_ev *ev;
    natsConnection *nc; /* queue subscriptions only */
    struct cs_group *groups;
    unsigned unjoined;    /* groups whose filter has no NATS subject */
    natsSubscription *on; /* CS_ANNOUNCE of the other nodes */
    ev_timer announce;    /* ours, while this node has groups */
    double remote_until;  /* ev_now until which another node has groups */
    char subj[CLUSTER_WIRE_SUBJECT_MAX + 8];
    char topic[65536];
    struct log_ratelimit rl;
};

/* the shared-space subject of a topic's subject or filter: "mqtt.x" ->
 * "mqtts.x" */
static int share_subject(const char *subj, char *out, size_t size)
{
    size_t rl = strlen(CLUSTER_WIRE_ROOT), n = strlen(subj);

    if (n < rl || strlen(CS_ROOT) + n - rl + 1 > size)
        return -1;
    snprintf(out, size, "%s%s", CS_ROOT, subj + rl);
    return 0;
}

/* NATS away (or the topic has no subject): m to one member of each
 * matching local group; unjoined: only to the groups not on NATS (their
 * filter has no subject) */
static void publish_local(struct cluster_share *cs, const struct msg *m,
                          bool unjoined)
{
    struct broker *b = cluster_broker(cs->cl);
    struct msg *copy = NULL; /* the publish hook's m is read-only */
    const char *gname, *inner;
    size_t glen, ilen;

    for (struct cs_group *g = cs->groups; g; g = g->next) {
        if ((unjoined && g->sub[0] != NULL) ||
            topic_share_parse(g->key, g->key_len, &gname, &glen, &inner,
                              &ilen) != 1 ||
            !topic_matches(inner, ilen, m->topic, m->topic_len))
            continue;
        if (copy == NULL)
            copy = msg_new(m->topic, m->topic_len, m->props, m->props_len,
                           m->payload, m->payload_len, m->qos, m->retain,
                           m->expiry_at);
        (void)broker_publish_share(b, g->key, g->key_len, copy);
    }
    msg_unref(copy);
}

void cluster_share_publish(struct cluster_share *cs, const struct msg *m,
                           const char *subj, const uint8_t *data, size_t n)
{
    natsStatus st;
    unsigned sup;

    if (cs->groups == NULL && ev_now(cluster_loop(cs->cl)) >= cs->remote_until)
        return; /* no shared group on any node: no shared copy */
    if (subj == NULL ||
        natsConnection_Status(cluster_nc(cs->cl)) !=
            NATS_CONN_STATUS_CONNECTED ||
        natsConnection_Status(cs->nc) != NATS_CONN_STATUS_CONNECTED ||
        share_subject(subj, cs->subj, sizeof(cs->subj)) < 0) {
        publish_local(cs, m, false);
        return;
    }
    if (cs->unjoined)
        publish_local(cs, m, true);
    st = natsConnection_Publish(cluster_nc(cs->cl), cs->subj, data, (int)n);
    if (st != NATS_OK && log_ratelimit_ok(&cs->rl, 5, 10.0, &sup))
        LOG_W(cluster_log(cs->cl),
              "Cluster: message on subject '%.200s' not sent to the shared "
              "groups: %s (%u similar lines suppressed).",
              subj, natsStatus_GetText(st), sup);
}

/* ---- NATS -> one member of a local group ------------------------------ */

static void take_one(struct cluster_share *cs, struct cs_group *g, natsMsg *nm)
{
    const char *s = natsMsg_GetSubject(nm),
               *why = "not an MQTT topic's subject";
    size_t sl = strlen(s), rl = strlen(CS_ROOT);
    struct msg *m = NULL;
    unsigned sup;

    /* back to the topic's subject: "mqtt" + the rest */
    if (sl > rl && sl < sizeof(cs->subj) && memcmp(s, CS_ROOT, rl) == 0) {
        memcpy(cs->subj, CLUSTER_WIRE_ROOT, rl - 1);
        memcpy(cs->subj + rl - 1, s + rl, sl - rl + 1);
        m = cluster_msg_in(cs->subj, natsMsg_GetData(nm),
                           natsMsg_GetDataLength(nm), cs->topic,
                           sizeof(cs->topic), &why);
    }
    if (m == NULL) {
        if (why != NULL && log_ratelimit_ok(&cs->rl, 5, 10.0, &sup))
            LOG_W(cluster_log(cs->cl),
                  "Cluster: shared NATS message on '%.200s' ignored: %s (%u "
                  "similar lines suppressed).",
                  s, why, sup);
        return;
    }
    if (!broker_publish_share(cluster_broker(cs->cl), g->key, g->key_len, m) &&
        log_ratelimit_ok(&cs->rl, 5, 10.0, &sup))
        LOG_N(cluster_log(cs->cl),
              "Cluster: message on '%.200s' for shared group '%.200s' "
              "taken by no member here (%u similar lines suppressed).",
              cs->topic, g->key, sup);
    msg_unref(m);
}

static void on_read(void *ud)
{
    struct cluster_share *cs = ud;
    struct cs_group *g, *next;
    natsMsg *nm = NULL;

    for (g = cs->groups; g; g = next) {
        next = g->next;
        for (int i = 0; i < 2; i++)
            while (g->sub[i] &&
                   natsSubscription_NextMsg(&nm, g->sub[i], 0) == NATS_OK &&
                   nm) {
                take_one(cs, g, nm);
                natsMsg_Destroy(nm);
                nm = NULL;
            }
    }
}

/* ---- local membership -> queue subscriptions -------------------------- */

/* the queue group of key: a hash, as a NATS name (no spaces, bounded) */
static void queue_name(const char *key, size_t len, char out[64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int o = snprintf(out, 64, "mqtt-share-");

    EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL);
    util_hex(md, mdlen < 20 ? mdlen : 20, out + o);
}

static natsSubscription *qsub(struct cluster_share *cs, const char *subj,
                              const char *queue, const struct cs_group *g)
{
    natsSubscription *sub = NULL;
    natsStatus st;

    st = natsConnection_QueueSubscribeSync(&sub, cs->nc, subj, queue);
    if (st != NATS_OK) {
        LOG_W(cluster_log(cs->cl),
              "Cluster: shared group '%.200s' not joined on NATS: %s; "
              "served on this node only (its own clients' messages).",
              g->key, natsStatus_GetText(st));
        return NULL;
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    return sub;
}

static void group_join(struct cluster_share *cs, struct cs_group *g,
                       const char *inner, size_t ilen)
{
    char f[CLUSTER_WIRE_SUBJECT_MAX + 1], queue[64];
    size_t parent = 0;

    if (cluster_wire_filter(inner, ilen, f, sizeof(f), &parent) < 0 ||
        share_subject(f, cs->subj, sizeof(cs->subj)) < 0) {
        LOG_W(cluster_log(cs->cl),
              "Cluster: shared group '%.200s' served on this node only "
              "(its own clients' messages): its NATS subject would be over "
              "%d bytes.",
              g->key, CLUSTER_WIRE_SUBJECT_MAX);
        cs->unjoined++;
        return;
    }
    queue_name(g->key, g->key_len, queue);
    g->sub[0] = qsub(cs, cs->subj, queue, g);
    if (g->sub[0] == NULL) { /* refused by cnats: served here only */
        cs->unjoined++;
        return;
    }
    if (parent) {
        /* "a/#" also matches "a": the parent's subject too */
        cs->subj[parent + 1] = '\0';
        g->sub[1] = qsub(cs, cs->subj, queue, g);
    }
}

/* ---- which nodes have groups ------------------------------------------ */

static void announce(struct cluster_share *cs)
{
    /* the main connection, like the messages it is about (cnats buffers
     * it while NATS is away) */
    natsConnection_PublishString(cluster_nc(cs->cl), CS_ANNOUNCE,
                                 cluster_node(cs->cl));
}

static void announce_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cluster_share *cs = w->data;

    (void)loop;
    (void)revents;
    announce(cs);
}

static void on_announce(void *ud, natsMsg *m)
{
    struct cluster_share *cs = ud;

    (void)m;
    cs->remote_until = ev_now(cluster_loop(cs->cl)) + CS_TTL_S;
}

static void sub_hook(void *ud, const char *filter, size_t len, int delta)
{
    struct cluster_share *cs = ud;
    const char *gname, *inner;
    size_t glen, ilen;
    struct cs_group *g, **pp;

    if (topic_share_parse(filter, len, &gname, &glen, &inner, &ilen) != 1)
        return;
    for (pp = &cs->groups; (g = *pp) != NULL; pp = &g->next)
        if (g->key_len == len && memcmp(g->key, filter, len) == 0)
            break;
    if (delta > 0) {
        if (g == NULL) {
            bool first = cs->groups == NULL;
            g = xcalloc(1, sizeof(*g) + len + 1);
            memcpy(g->key, filter, len);
            g->key_len = len;
            g->next = cs->groups;
            cs->groups = g;
            group_join(cs, g, inner, ilen);
            if (first) { /* the other nodes start sending shared copies */
                announce(cs);
                ev_timer_again(cluster_loop(cs->cl), &cs->announce);
            }
        }
        g->members++;
        return;
    }
    if (g == NULL || --g->members > 0)
        return;
    /* the last member here left: NATS gives the group's messages to the
     * other member nodes from now on */
    *pp = g->next;
    if (g->sub[0] == NULL)
        cs->unjoined--;
    for (int i = 0; i < 2; i++)
        if (g->sub[i]) {
            natsSubscription_Unsubscribe(g->sub[i]);
            natsSubscription_Destroy(g->sub[i]);
        }
    free(g);
    if (cs->groups == NULL)
        ev_timer_stop(cluster_loop(cs->cl), &cs->announce);
}

struct cluster_share *cluster_share_new(struct cluster *cl, char *err,
                                        size_t errlen)
{
    struct cluster_share *cs = xcalloc(1, sizeof(*cs));
    natsOptions *o = cluster_opts(cl);
    char name[120];
    natsStatus st;

    cs->cl = cl;
    cs->ev = nats_ev_new(cluster_loop(cl), on_read, cs);
    snprintf(name, sizeof(name), "mqttd-%s-share", cluster_node(cl));
    /* the main connection's options (servers, reconnection, and whatever
     * security they carry); cnats copied them at its connect, so changing
     * the name and event loop here only concerns this connection */
    if (natsOptions_SetName(o, name) != NATS_OK ||
        nats_ev_install(cs->ev, o) != NATS_OK) {
        snprintf(err, errlen, "cluster: NATS options refused: %s",
                 nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "?");
        goto fail;
    }
    st = natsConnection_Connect(&cs->nc, o);
    if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
        snprintf(err, errlen, "cluster: shared-delivery connection: %s",
                 natsStatus_GetText(st));
        goto fail;
    }
    ev_init(&cs->announce, announce_cb);
    cs->announce.repeat = CS_ANNOUNCE_S;
    cs->announce.data = cs;
    cs->on = cluster_subscribe(cl, CS_ANNOUNCE, NULL, on_announce, cs, &st);
    if (cs->on == NULL) {
        /* other nodes' groups unknown: always send shared copies */
        cs->remote_until = INFINITY;
        LOG_W(cluster_log(cl),
              "Cluster: no subscription to shared-group announcements (%s): "
              "every message is sent to the shared groups' subjects too.",
              natsStatus_GetText(st));
    }
    broker_set_share_hook(cluster_broker(cl), sub_hook, cs);
    return cs;
fail:
    natsConnection_Destroy(cs->nc);
    nats_ev_free(cs->ev);
    free(cs);
    return NULL;
}

void cluster_share_free(struct cluster_share *cs)
{
    if (cs == NULL)
        return;
    broker_set_share_hook(cluster_broker(cs->cl), NULL, NULL);
    ev_timer_stop(cluster_loop(cs->cl), &cs->announce);
    cluster_unsubscribe(cs->cl, cs->on);
    natsConnection_Close(cs->nc);
    while (cs->groups) {
        struct cs_group *g = cs->groups;
        cs->groups = g->next;
        for (int i = 0; i < 2; i++)
            natsSubscription_Destroy(g->sub[i]);
        free(g);
    }
    natsConnection_Destroy(cs->nc);
    nats_ev_free(cs->ev);
    free(cs);
}
