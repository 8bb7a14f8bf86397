/*
 * cluster_owner.c - client-id ownership across nodes (cluster_owner.h).
 */
#include "cluster_owner.h"

#include <nats/nats.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "cluster_int.h"
#include "cluster_work.h"
#include "log.h"
#include "util.h"

#define OWNER_PREFIX "$KV." CLUSTER_OWNER_BUCKET "."
/* client ids longer than this are not claimed (the key is twice as long,
 * and the subject must stay under NATS' control-line limit) */
#define OWNER_ID_MAX 1000

struct cluster_owner {
    struct cluster *cl;
    kvStore *kv; /* worker thread only, once created */
    natsSubscription *sub;
    char epoch[17];
    uint64_t seq;
    struct log_ratelimit rl;
    int refs; /* the owner and every job in flight */
    int dead; /* cluster_owner_free called (read by the worker) */
};

/* one job for the worker */
struct owner_job {
    struct cluster_owner *o;
    char *id;  /* client id */
    char *key; /* hex of id */
    char value[160];
    natsStatus st;
    char err[200]; /* nats_GetLastError of the worker */
    bool other;    /* Get: the key names another node's connection */
};

static void owner_unref(struct cluster_owner *o)
{
    if (--o->refs == 0) {
        kvStore_Destroy(o->kv);
        free(o);
    }
}

static char *hex_key(const char *id)
{
    size_t n = strlen(id);
    char *k = xmalloc(2 * n + 1);

    util_hex(id, n, k);
    return k;
}

/* the client id a key names: its hex decoded, no NUL inside */
static int unhex(const char *k, size_t n, char *out, size_t cap)
{
    int len = util_unhex(k, n, out, cap);

    return len <= 0 || memchr(out, '\0', (size_t)len) ? -1 : 0;
}

static struct owner_job *job_new(struct cluster_owner *o, const char *id)
{
    struct owner_job *j = xcalloc(1, sizeof(*j));

    j->o = o;
    o->refs++;
    j->id = xstrdup(id);
    j->key = hex_key(id);
    return j;
}

static void job_free(struct owner_job *j)
{
    owner_unref(j->o);
    free(j->id);
    free(j->key);
    free(j);
}

/* ---- worker thread ---------------------------------------------------- */

static natsStatus ensure_kv(struct cluster_owner *o)
{
    if (o->kv)
        return NATS_OK;
    /* a claim outlives its connection until overwritten or a day old:
     * bounds the bucket; a key gone is read as "no other owner" */
    return cluster_kv(o->cl, CLUSTER_OWNER_BUCKET, (int64_t)86400 * 1000000000,
                      &o->kv);
}

/* the worker's last NATS error text into j->err */
static void keep_err(struct owner_job *j)
{
    const char *e = j->st != NATS_OK ? nats_GetLastError(NULL) : NULL;

    snprintf(j->err, sizeof(j->err), "%s", e ? e : natsStatus_GetText(j->st));
}

static void work_put(void *arg)
{
    struct owner_job *j = arg;

    if (__atomic_load_n(&j->o->dead, __ATOMIC_ACQUIRE)) {
        j->st = NATS_CONNECTION_CLOSED;
        return;
    }
    j->st = ensure_kv(j->o);
    if (j->st == NATS_OK)
        j->st = kvStore_PutString(NULL, j->o->kv, j->key, j->value);
    keep_err(j);
}

static void work_get(void *arg)
{
    struct owner_job *j = arg;
    kvEntry *e = NULL;
    size_t el = strlen(j->o->epoch);

    if (__atomic_load_n(&j->o->dead, __ATOMIC_ACQUIRE)) {
        j->st = NATS_CONNECTION_CLOSED;
        return;
    }
    j->st = ensure_kv(j->o);
    if (j->st == NATS_OK)
        j->st = kvStore_Get(&e, j->o->kv, j->key);
    if (j->st == NATS_OK) {
        const char *v = kvEntry_ValueString(e);
        j->other = v && !(strncmp(v, j->o->epoch, el) == 0 && v[el] == ':');
        kvEntry_Destroy(e);
    }
}

static void work_init(void *arg)
{
    struct owner_job *j = arg;

    j->st = __atomic_load_n(&j->o->dead, __ATOMIC_ACQUIRE)
                ? NATS_CONNECTION_CLOSED
                : ensure_kv(j->o);
    keep_err(j);
}

/* ---- loop thread ------------------------------------------------------ */

static void done_put(void *arg)
{
    struct owner_job *j = arg;
    struct cluster_owner *o = j->o;
    unsigned sup;

    if (!o->dead && j->st != NATS_OK && log_ratelimit_ok(&o->rl, 5, 10.0, &sup))
        LOG_W(cluster_log(o->cl),
              "Cluster: ownership of client id %s not recorded in NATS "
              "(%s); the client is served here, another node will not "
              "close it (%u similar lines suppressed).",
              j->id, j->err, sup);
    else if (!o->dead && j->st == NATS_OK)
        LOG_D(cluster_log(o->cl), "Cluster: client id %s claimed by node %s.",
              j->id, cluster_node(o->cl));
    job_free(j);
}

static void done_get(void *arg)
{
    struct owner_job *j = arg;

    if (!j->o->dead && j->st == NATS_OK && j->other)
        broker_take_over(cluster_broker(j->o->cl), j->id);
    job_free(j);
}

static void done_init(void *arg)
{
    struct owner_job *j = arg;

    if (!j->o->dead && j->st != NATS_OK)
        LOG_W(cluster_log(j->o->cl),
              "Cluster: key-value bucket " CLUSTER_OWNER_BUCKET
              " not ready yet (%s); retried on the first connection.",
              j->err);
    job_free(j);
}

/* a client was accepted here: claim its id */
static void on_connect(void *ud, const char *id)
{
    struct cluster_owner *o = ud;
    struct owner_job *j;

    if (strlen(id) > OWNER_ID_MAX)
        return;
    j = job_new(o, id);
    snprintf(j->value, sizeof(j->value), "%s:%llu:%.100s", o->epoch,
             (unsigned long long)++o->seq, cluster_node(o->cl));
    cluster_work_submit(cluster_work_q(o->cl), work_put, done_put, j);
}

/* another node's claim ($KV.MQTT_OWNER.<hex id>): when the id is
 * connected here, read the key back after our own claims */
static void on_claim(void *ud, natsMsg *m)
{
    struct cluster_owner *o = ud;
    const char *s = natsMsg_GetSubject(m);
    char id[OWNER_ID_MAX + 1];
    size_t pl = strlen(OWNER_PREFIX);
    struct session *sess;

    if (strncmp(s, OWNER_PREFIX, pl) != 0 ||
        unhex(s + pl, strlen(s + pl), id, sizeof(id)) < 0)
        return;
    sess = broker_session_find(cluster_broker(o->cl), id);
    if (sess == NULL)
        return;
    cluster_work_submit(cluster_work_q(o->cl), work_get, done_get,
                        job_new(o, id));
}

struct cluster_owner *cluster_owner_new(struct cluster *cl)
{
    struct cluster_owner *o = xcalloc(1, sizeof(*o));
    natsStatus st;
    uint64_t r = 0;
    struct timespec ts;

    o->cl = cl;
    o->refs = 1;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
        ((uint64_t)getpid() << 32);
    snprintf(o->epoch, sizeof(o->epoch), "%016llx", (unsigned long long)r);
    o->sub = cluster_subscribe(cl, OWNER_PREFIX ">", NULL, on_claim, o, &st);
    if (o->sub == NULL)
        LOG_W(cluster_log(cl),
              "Cluster: no subscription to client-id claims (%s): clients "
              "connected here are not closed when they connect elsewhere.",
              natsStatus_GetText(st));
    cluster_work_submit(cluster_work_q(cl), work_init, done_init,
                        job_new(o, ""));
    broker_set_connect_hook(cluster_broker(cl), on_connect, o);
    return o;
}

const char *cluster_owner_epoch(const struct cluster_owner *o)
{
    return o->epoch;
}

void cluster_owner_free(struct cluster_owner *o)
{
    if (o == NULL)
        return;
    broker_set_connect_hook(cluster_broker(o->cl), NULL, NULL);
    cluster_unsubscribe(o->cl, o->sub);
    __atomic_store_n(&o->dead, 1, __ATOMIC_RELEASE);
    owner_unref(o);
}
