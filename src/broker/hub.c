/*
 * hub.c - cross-thread inboxes (mutex + vector, drained in batches from an
 * ev_async), client-id ownership, shared-group membership and counters.
 */
#include "hub.h"
#include "ocsp_cache.h"
#include "tls_staple.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "conn.h"
#include "msg.h"
#include "util.h"

#define MAX_SHARDS 64u
#define SHARE_LOG 1024u /* membership changes remembered (hub_share_serves) */

struct inbox {
    pthread_mutex_t mu;
    struct hub_item *v; /* posted, not yet taken (mu) */
    size_t n, cap;
    struct hub_item *cv; /* HUB_CONN / HUB_RESUME: never held (mu) */
    size_t cn, ccap;
    uint64_t waiters; /* shards to send HUB_RESUME to (mu) */
    size_t backlog;   /* posted and not yet handled (mu) */
    /* the owning thread only: */
    struct hub_item *cur; /* taken batch being handled */
    size_t cur_i, cur_n, cur_cap;
    struct ev_loop *loop;
    ev_async wake;
    hub_fn fn;
    void *ud;
    bool bound;
    long subs;                /* subscriptions held (atomic) */
    struct hub_totals totals; /* (hub->tmu) */
};

struct share {
    char *key;
    size_t len;
    uint32_t members[MAX_SHARDS]; /* > 0: that shard holds members */
};

/* One membership change, for evaluating a message against the membership
 * of its publish time. */
struct share_change {
    uint32_t share; /* index into hub.shares (entries are never removed) */
    uint8_t shard;
    int8_t delta;
};

struct hub {
    unsigned n;
    struct inbox *in;
    pthread_mutex_t smu; /* shares, share_log, share_gen */
    struct share *shares;
    size_t nshares, shares_cap;
    struct share_change share_log[SHARE_LOG]; /* [gen % SHARE_LOG] */
    uint32_t share_gen;  /* changes so far (written under smu, atomic) */
    pthread_mutex_t tmu; /* totals */
    size_t *lcount;
    struct ocsp_cache *ocsp;     /* client-certificate OCSP, every shard */
    struct tls_staples *staples; /* stapled responses, every shard */
};

static void push(struct hub_item **v, size_t *n, size_t *cap,
                 const struct hub_item *it)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xreallocarray(*v, *cap, sizeof(**v));
    }
    (*v)[(*n)++] = *it;
}

/* Take the control items (connections, resumes) posted so far. */
static struct hub_item *take_ctl(struct inbox *ib, size_t *n)
{
    struct hub_item *c;

    pthread_mutex_lock(&ib->mu);
    c = ib->cv;
    *n = ib->cn;
    ib->cv = NULL;
    ib->cn = ib->ccap = 0;
    pthread_mutex_unlock(&ib->mu);
    return c;
}

void hub_item_drop(const struct hub_item *it)
{
    if (it->kind == HUB_MSG)
        msg_unref(it->m);
    else if (it->kind == HUB_CONN)
        conn_destroy_detached(it->c);
}

struct hub *hub_new(unsigned n)
{
    struct hub *h = xcalloc(1, sizeof(*h));

    if (n > MAX_SHARDS)
        n = MAX_SHARDS;
    h->n = n;
    h->in = xcalloc(n, sizeof(*h->in));
    for (unsigned i = 0; i < n; i++)
        pthread_mutex_init(&h->in[i].mu, NULL);
    pthread_mutex_init(&h->smu, NULL);
    pthread_mutex_init(&h->tmu, NULL);
    h->ocsp = ocsp_cache_new();
    h->staples = tls_staples_new();
    return h;
}

void hub_free(struct hub *h)
{
    if (h == NULL)
        return;
    ocsp_cache_free(h->ocsp);
    tls_staples_free(h->staples);
    for (unsigned i = 0; i < h->n; i++) {
        struct inbox *ib = &h->in[i];
        for (size_t k = ib->cur_i; k < ib->cur_n; k++)
            hub_item_drop(&ib->cur[k]);
        for (size_t k = 0; k < ib->n; k++)
            hub_item_drop(&ib->v[k]);
        for (size_t k = 0; k < ib->cn; k++)
            hub_item_drop(&ib->cv[k]);
        free(ib->cv);
        free(ib->cur);
        free(ib->v);
        pthread_mutex_destroy(&ib->mu);
    }
    for (size_t i = 0; i < h->nshares; i++)
        free(h->shares[i].key);
    free(h->shares);
    free(h->in);
    free(h->lcount);
    pthread_mutex_destroy(&h->smu);
    pthread_mutex_destroy(&h->tmu);
    free(h);
}

unsigned hub_size(const struct hub *h)
{
    return h->n;
}

unsigned hub_owner(const struct hub *h, const char *id, size_t len)
{
    return (unsigned)(util_fnv1a(id, len) % h->n);
}

/* ---- inboxes ---------------------------------------------------------- */

static void send_resumes(struct hub *h, unsigned idx, uint64_t waiters)
{
    for (unsigned w = 0; w < h->n && waiters; w++) {
        if (waiters & (UINT64_C(1) << w)) {
            struct hub_item r = {.kind = HUB_RESUME, .from = (uint8_t)idx};
            waiters &= ~(UINT64_C(1) << w);
            (void)hub_post(h, w, &r);
        }
    }
}

/* With ib->mu held and the taken batch handled: swap it (emptied) with
 * what was posted meanwhile. */
static void take_batch(struct inbox *ib)
{
    struct hub_item *v = ib->cur;
    size_t cap = ib->cur_cap;

    ib->cur = ib->v;
    ib->cur_cap = ib->cap;
    ib->cur_n = ib->n;
    ib->cur_i = 0;
    ib->v = v;
    ib->cap = cap;
    ib->n = 0;
}

/* Handle the taken batch, then take the next one, until the inbox is
 * empty or the handler holds back. */
static void drain(struct hub *h, unsigned idx)
{
    struct inbox *ib = &h->in[idx];

    for (;;) {
        size_t handled = 0, nctl;
        uint64_t waiters = 0;
        bool held = false;
        struct hub_item *ctl = take_ctl(ib, &nctl);

        /* connections and resumes first: they never wait behind messages
         * held for a slow subscriber */
        for (size_t i = 0; i < nctl; i++)
            (void)ib->fn(ib->ud, &ctl[i]);
        free(ctl);
        while (ib->cur_i < ib->cur_n) {
            struct hub_item *it = &ib->cur[ib->cur_i];
            if (!ib->fn(ib->ud, it)) {
                held = true;
                break;
            }
            ib->cur_i++;
            handled++;
        }
        pthread_mutex_lock(&ib->mu);
        __atomic_store_n(&ib->backlog, ib->backlog - handled, __ATOMIC_RELAXED);
        if (ib->waiters && ib->backlog <= HUB_LOWAT) {
            waiters = ib->waiters;
            ib->waiters = 0;
        }
        if (!held) {
            take_batch(ib);
        }
        pthread_mutex_unlock(&ib->mu);
        if (waiters)
            send_resumes(h, idx, waiters);
        if (held || ib->cur_n == 0)
            return;
    }
}

struct wake_ctx {
    struct hub *h;
    unsigned idx;
};

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct wake_ctx *wc = w->data;

    (void)loop;
    (void)revents;
    drain(wc->h, wc->idx);
}

void hub_bind(struct hub *h, unsigned idx, struct ev_loop *loop, hub_fn fn,
              void *ud)
{
    struct inbox *ib = &h->in[idx];
    struct wake_ctx *wc = xmalloc(sizeof(*wc));

    wc->h = h;
    wc->idx = idx;
    ib->fn = fn;
    ib->ud = ud;
    ev_async_init(&ib->wake, wake_cb);
    ib->wake.data = wc;
    ev_async_start(loop, &ib->wake);
    ev_unref(loop); /* the inbox alone must not keep the loop running */
    pthread_mutex_lock(&ib->mu);
    ib->loop = loop;
    ib->bound = true;
    pthread_mutex_unlock(&ib->mu);
}

void hub_unbind(struct hub *h, unsigned idx)
{
    struct inbox *ib = &h->in[idx];

    pthread_mutex_lock(&ib->mu);
    ib->bound = false;
    pthread_mutex_unlock(&ib->mu);
    if (ib->loop) {
        ev_ref(ib->loop);
        ev_async_stop(ib->loop, &ib->wake);
        free(ib->wake.data);
        ib->wake.data = NULL;
    }
    for (;;) {
        size_t nctl;
        struct hub_item *ctl = take_ctl(ib, &nctl);

        for (size_t i = 0; i < nctl; i++)
            hub_item_drop(&ctl[i]);
        free(ctl);
        while (ib->cur_i < ib->cur_n)
            hub_item_drop(&ib->cur[ib->cur_i++]);
        pthread_mutex_lock(&ib->mu);
        take_batch(ib);
        __atomic_store_n(&ib->backlog, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&ib->mu);
        if (ib->cur_n == 0 && ib->cn == 0)
            break;
    }
}

void hub_post_batch(struct hub *h, unsigned to, unsigned from,
                    const struct hub_item *v, size_t n, bool wait)
{
    struct inbox *ib = &h->in[to];
    bool wake;
    size_t nmsg = 0, ctl0;

    if (n == 0)
        return;
    pthread_mutex_lock(&ib->mu);
    if (!ib->bound) {
        pthread_mutex_unlock(&ib->mu);
        for (size_t i = 0; i < n; i++)
            hub_item_drop(&v[i]);
        return;
    }
    wake = ib->n == 0;
    ctl0 = ib->cn;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == HUB_MSG) {
            push(&ib->v, &ib->n, &ib->cap, &v[i]);
            nmsg++;
        } else {
            push(&ib->cv, &ib->cn, &ib->ccap, &v[i]);
        }
    }
    wake = (wake && nmsg > 0) || ib->cn > ctl0;
    __atomic_store_n(&ib->backlog, ib->backlog + nmsg, __ATOMIC_RELAXED);
    if (wait)
        ib->waiters |= UINT64_C(1) << from;
    pthread_mutex_unlock(&ib->mu);
    if (wake)
        ev_async_send(ib->loop, &ib->wake);
}

bool hub_post(struct hub *h, unsigned to, const struct hub_item *it)
{
    bool over = it->kind == HUB_MSG && hub_backlog(h, to) + 1 > HUB_HIWAT;

    hub_post_batch(h, to, it->from, it, 1, over);
    return over;
}

size_t hub_backlog(const struct hub *h, unsigned to)
{
    return __atomic_load_n(&h->in[to].backlog, __ATOMIC_RELAXED);
}

void hub_kick(struct hub *h, unsigned idx)
{
    struct inbox *ib = &h->in[idx];

    ev_feed_event(ib->loop, &ib->wake, EV_ASYNC);
}

/* ---- subscriptions and shared groups ----------------------------------- */

void hub_subs_add(struct hub *h, unsigned idx, long delta)
{
    __atomic_add_fetch(&h->in[idx].subs, delta, __ATOMIC_RELAXED);
}

bool hub_has_subs(const struct hub *h, unsigned idx)
{
    return __atomic_load_n(&h->in[idx].subs, __ATOMIC_RELAXED) > 0;
}

static struct share *share_find(struct hub *h, const char *key, size_t len)
{
    for (size_t i = 0; i < h->nshares; i++)
        if (h->shares[i].len == len && memcmp(h->shares[i].key, key, len) == 0)
            return &h->shares[i];
    return NULL;
}

/* With smu held: remember a membership change and advance the
 * generation. */
static void share_logged(struct hub *h, const struct share *s, unsigned idx,
                         int delta)
{
    struct share_change *c = &h->share_log[h->share_gen % SHARE_LOG];

    c->share = (uint32_t)(s - h->shares);
    c->shard = (uint8_t)idx;
    c->delta = (int8_t)delta;
    __atomic_store_n(&h->share_gen, h->share_gen + 1, __ATOMIC_RELEASE);
}

uint32_t hub_share_gen(const struct hub *h)
{
    return __atomic_load_n(&h->share_gen, __ATOMIC_ACQUIRE);
}

void hub_share_join(struct hub *h, unsigned idx, const char *key, size_t len)
{
    struct share *s;

    pthread_mutex_lock(&h->smu);
    s = share_find(h, key, len);
    if (s == NULL) {
        if (h->nshares == h->shares_cap) {
            h->shares_cap = h->shares_cap ? h->shares_cap * 2 : 8;
            h->shares =
                xreallocarray(h->shares, h->shares_cap, sizeof(*h->shares));
        }
        s = &h->shares[h->nshares++];
        memset(s, 0, sizeof(*s));
        s->key = xstrndup(key, len);
        s->len = len;
    }
    s->members[idx]++;
    share_logged(h, s, idx, 1);
    pthread_mutex_unlock(&h->smu);
}

void hub_share_leave(struct hub *h, unsigned idx, const char *key, size_t len)
{
    struct share *s;

    pthread_mutex_lock(&h->smu);
    s = share_find(h, key, len);
    if (s && s->members[idx] > 0) {
        s->members[idx]--;
        share_logged(h, s, idx, -1);
    }
    pthread_mutex_unlock(&h->smu);
}

bool hub_share_serves(struct hub *h, unsigned idx, uint32_t spread,
                      uint32_t gen, const char *key, size_t len)
{
    struct share *s;
    bool serves = true;

    pthread_mutex_lock(&h->smu);
    s = share_find(h, key, len);
    if (s) {
        uint32_t members[MAX_SHARDS], si = (uint32_t)(s - h->shares);
        unsigned with[MAX_SHARDS], n = 0;

        /* every thread must decide alike although it routes the message
         * at its own time: undo the changes made since the publish */
        memcpy(members, s->members, sizeof(members));
        if (h->share_gen - gen <= SHARE_LOG) {
            for (uint32_t g = gen; g != h->share_gen; g++) {
                const struct share_change *c = &h->share_log[g % SHARE_LOG];
                if (c->share == si)
                    members[c->shard] -= (uint32_t)c->delta;
            }
        }
        for (unsigned k = 0; k < h->n; k++)
            if (members[k] > 0)
                with[n++] = k;
        if (n > 0)
            serves = with[spread % n] == idx;
    }
    pthread_mutex_unlock(&h->smu);
    return serves;
}

void hub_drain(struct hub *h, unsigned idx)
{
    drain(h, idx);
}

/* ---- counters ---------------------------------------------------------- */

void hub_totals_put(struct hub *h, unsigned idx, const struct hub_totals *t)
{
    pthread_mutex_lock(&h->tmu);
    h->in[idx].totals = *t;
    pthread_mutex_unlock(&h->tmu);
}

void hub_totals_sum(struct hub *h, struct hub_totals *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&h->tmu);
    for (unsigned i = 0; i < h->n; i++) {
        const struct hub_totals *t = &h->in[i].totals;
        const uint64_t *src = (const uint64_t *)&t->st;
        uint64_t *dst = (uint64_t *)&out->st;
        for (size_t k = 0; k < sizeof(t->st) / sizeof(uint64_t); k++)
            dst[k] += src[k];
        out->clients += t->clients;
        out->sessions += t->sessions;
        out->sessions_offline += t->sessions_offline;
        out->subscriptions += t->subscriptions;
        out->store_msgs += t->store_msgs;
        out->store_bytes += t->store_bytes;
        out->client_certs += t->client_certs;
        if (t->client_cert_soonest &&
            (!out->client_cert_soonest ||
             t->client_cert_soonest < out->client_cert_soonest))
            out->client_cert_soonest = t->client_cert_soonest;
    }
    pthread_mutex_unlock(&h->tmu);
}

size_t *hub_listener_counts(struct hub *h, size_t nl)
{
    pthread_mutex_lock(&h->tmu);
    if (h->lcount == NULL)
        h->lcount = xcalloc(nl ? nl : 1, sizeof(size_t));
    pthread_mutex_unlock(&h->tmu);
    return h->lcount;
}

struct ocsp_cache *hub_ocsp(struct hub *h)
{
    return h->ocsp;
}

struct tls_staples *hub_staples(struct hub *h)
{
    return h->staples;
}
