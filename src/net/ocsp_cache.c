/*
 * ocsp_cache.c - verified OCSP answers per (certificate, responder) and
 * shared queries, for every event-loop thread of the process (see
 * ocsp_cache.h).
 *
 *   struct ocsp_cache                    one mutex guards all below
 *     +-- map (hashmap, keyed SipHash) CertID DER + 0 + URL -> entry
 *           +-- owner    the loop running the query, NULL when none
 *           +-- req, http, store   that query (touched by owner only,
 *                                  under the mutex)
 *           +-- waiters  connections waiting for it, any loop
 *           +-- res, at, nu_until  the last verified answer
 *   struct ocsp_loop (per loop)
 *     +-- async  woken when results for its waiters were queued
 *     +-- done   those waiters (state W_QUEUED), FIFO
 *
 * A waiter is W_WAIT (in an entry's list), W_QUEUED (result set, in its
 * loop's done list) or W_CALLING (being called back on its loop: a cancel
 * then only mutes it). Callbacks run without the mutex held.
 */
#include "ocsp_cache.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <openssl/x509.h>

#include "hashmap.h"
#include "ocsp_http.h"
#include "util.h"

/* Entries kept at most; beyond it answers are not cached (queries still
 * run and are still shared). */
#define OCSP_CACHE_MAX 100000u

enum wstate { W_WAIT, W_QUEUED, W_CALLING };

struct ocsp_cache;
static void sweep_locked(struct ocsp_cache *oc, double now);

struct ocsp_waiter {
    struct ocsp_waiter *prev, *next;
    struct entry *e; /* W_WAIT: the entry waited for */
    struct ocsp_loop *ol;
    enum wstate state;
    ocsp_done_fn fn;
    void *ud;
    unsigned cache_seconds;
    struct ocsp_result res; /* W_QUEUED / W_CALLING */
    double until;
};

struct entry {
    struct hashmap_entry he;
    uint8_t *key;
    size_t keylen;
    struct ocsp_cache *oc;
    struct ocsp_loop *owner; /* runs the query; NULL: none in flight */
    struct ocsp_req *req;
    struct ocsp_http *http;
    X509_STORE *store; /* to verify the answer with (reference) */
    struct ocsp_waiter *waiters;
    bool have; /* res holds a verified answer */
    struct ocsp_result res;
    double at;       /* when it came (wall clock) */
    double nu_until; /* its nextUpdate (wall clock), INFINITY if none */
    unsigned max_cs; /* the largest cache_seconds asked with */
};

struct ocsp_cache {
    pthread_mutex_t mu;
    struct hashmap_seed seed;
    struct hashmap map;
    unsigned long long queries;
};

struct ocsp_loop {
    struct ocsp_cache *oc;
    struct ev_loop *loop;
    ev_async async;
    struct ocsp_waiter *done, *done_tail; /* under oc->mu */
};

struct ocsp_cache *ocsp_cache_new(void)
{
    struct ocsp_cache *oc = xcalloc(1, sizeof(*oc));

    pthread_mutex_init(&oc->mu, NULL);
    hashmap_seed_init(&oc->seed);
    hashmap_init(&oc->map);
    return oc;
}

/* entry_free: the entry has no query in flight and no waiters. */
static void entry_free(struct entry *e)
{
    ocsp_req_free(e->req);
    X509_STORE_free(e->store);
    free(e->key);
    free(e);
}

static void entry_remove(struct entry *e)
{
    (void)hashmap_remove(&e->oc->map, &e->he);
    entry_free(e);
}

void ocsp_cache_free(struct ocsp_cache *oc)
{
    struct hashmap_entry *he;
    size_t it = 0;

    if (oc == NULL)
        return;
    /* every loop is gone: no entry has a query or waiters left */
    while ((he = hashmap_next(&oc->map, &it)) != NULL)
        entry_free(hashmap_item(he, struct entry, he));
    hashmap_clear(&oc->map);
    pthread_mutex_destroy(&oc->mu);
    free(oc);
}

/* until_for: how long e's answer is reused for a cap of cs seconds. */
static double until_for(const struct entry *e, unsigned cs)
{
    double u = e->at + (double)cs;

    if (e->nu_until < u)
        u = e->nu_until;
    return u < e->at ? e->at : u;
}

/* call_local: call back and free the waiters of list (W_CALLING), the
 * mutex not held. A callback may cancel a later waiter of the list: it
 * is then muted (fn NULL), never freed by the cancel. */
static void call_local(struct ocsp_waiter *list)
{
    while (list != NULL) {
        struct ocsp_waiter *w = list;
        list = w->next;
        if (w->fn != NULL)
            w->fn(w->ud, &w->res, w->until);
        free(w);
    }
}

/* async_cb: results for this loop's waiters were queued: call them. */
static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct ocsp_loop *ol = w->data;
    struct ocsp_waiter *list, *x;

    (void)loop;
    (void)revents;
    pthread_mutex_lock(&ol->oc->mu);
    list = ol->done;
    ol->done = ol->done_tail = NULL;
    for (x = list; x != NULL; x = x->next)
        x->state = W_CALLING;
    pthread_mutex_unlock(&ol->oc->mu);
    call_local(list);
}

struct ocsp_loop *ocsp_loop_new(struct ocsp_cache *oc, struct ev_loop *loop)
{
    struct ocsp_loop *ol = xcalloc(1, sizeof(*ol));

    ol->oc = oc;
    ol->loop = loop;
    ev_async_init(&ol->async, async_cb);
    ol->async.data = ol;
    ev_async_start(loop, &ol->async);
    ev_unref(loop); /* the watcher alone does not keep the loop running */
    return ol;
}

/* unlink: take w out of its entry's waiter list (under the mutex). */
static void unlink_waiter(struct ocsp_waiter *w)
{
    struct entry *e = w->e;

    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->e = NULL;
}

/*
 * hand_out: give res to every waiter of e (under the mutex). Waiters of
 * loop 'self' go to *local (called by the caller once it unlocked); the
 * others are queued on their loop, which is woken.
 */
static void hand_out(struct entry *e, const struct ocsp_result *res,
                     bool cached, double now, struct ocsp_loop *self,
                     struct ocsp_waiter **local)
{
    struct ocsp_waiter *w, *next;

    for (w = e->waiters; w != NULL; w = next) {
        next = w->next;
        w->e = NULL;
        w->prev = w->next = NULL;
        w->res = *res;
        w->until = cached ? until_for(e, w->cache_seconds) : now;
        if (w->until < now)
            w->until = now;
        if (w->ol == self) {
            w->state = W_CALLING;
            w->next = *local;
            *local = w;
            continue;
        }
        w->state = W_QUEUED;
        if (w->ol->done_tail != NULL)
            w->ol->done_tail->next = w;
        else
            w->ol->done = w;
        w->ol->done_tail = w;
        ev_async_send(w->ol->loop, &w->ol->async);
    }
    e->waiters = NULL;
}

/* http_done: the query of entry ud ended (on its owner's loop): verify,
 * cache, hand the result to every waiter. */
static void http_done(void *ud, enum ocsp_http_end end, const uint8_t *body,
                      size_t len, const char *why)
{
    struct entry *e = ud;
    struct ocsp_cache *oc = e->oc;
    struct ocsp_loop *self;
    struct ocsp_waiter *local = NULL;
    struct ocsp_result res;
    double now;
    bool cached;

    pthread_mutex_lock(&oc->mu);
    self = e->owner;
    now = ev_now(self->loop);
    e->http = NULL;
    e->owner = NULL;
    memset(&res, 0, sizeof(res));
    res.reason = -1;
    if (end == OCSP_HTTP_OK) {
        ocsp_response_check(body, len, e->req, e->store, &res);
    } else {
        res.status =
            end == OCSP_HTTP_UNREACHABLE ? OCSP_UNREACHABLE : OCSP_INVALID;
        snprintf(res.why, sizeof(res.why), "%s", why ? why : "failed");
    }
    cached = res.status == OCSP_GOOD || res.status == OCSP_REVOKED ||
             res.status == OCSP_UNKNOWN;
    if (cached) {
        e->have = true;
        e->res = res;
        e->at = now;
        e->nu_until = res.next_update > 0
                          ? now + (double)(res.next_update - time(NULL))
                          : INFINITY;
    }
    hand_out(e, &res, cached, now, self, &local);
    if (!e->have)
        entry_remove(e);
    pthread_mutex_unlock(&oc->mu);
    call_local(local);
}

void ocsp_loop_free(struct ocsp_loop *ol)
{
    struct ocsp_cache *oc;
    struct hashmap_entry *he;
    struct ocsp_waiter *w, *next;
    size_t it = 0;

    if (ol == NULL)
        return;
    oc = ol->oc;
    pthread_mutex_lock(&oc->mu);
    while ((he = hashmap_next(&oc->map, &it)) != NULL) {
        struct entry *e = hashmap_item(he, struct entry, he);
        struct ocsp_waiter *none = NULL, **pp = &e->waiters;

        /* drop this loop's waiters, keeping the others' links */
        while ((w = *pp) != NULL) {
            if (w->ol != ol) {
                pp = &w->next;
                continue;
            }
            *pp = w->next;
            if (w->next != NULL)
                w->next->prev = w->prev;
            free(w);
        }
        if (e->owner == ol) {
            struct ocsp_result res;

            ocsp_http_cancel(e->http);
            e->http = NULL;
            e->owner = NULL;
            memset(&res, 0, sizeof(res));
            res.reason = -1;
            res.status = OCSP_UNREACHABLE;
            snprintf(res.why, sizeof(res.why),
                     "query abandoned (its thread stopped)");
            hand_out(e, &res, false, ev_now(ol->loop), ol, &none);
        }
        if (!e->have && e->owner == NULL && e->waiters == NULL)
            entry_remove(e);
    }
    for (w = ol->done; w != NULL; w = next) {
        next = w->next;
        free(w);
    }
    ol->done = ol->done_tail = NULL;
    pthread_mutex_unlock(&oc->mu);
    ev_ref(ol->loop);
    ev_async_stop(ol->loop, &ol->async);
    free(ol);
}

/* key_of: CertID DER, a 0 byte, the URL: the map key (xmalloc'ed). */
static uint8_t *key_of(const uint8_t *id, size_t idlen, const char *url,
                       size_t *keylen)
{
    size_t ul = strlen(url);
    uint8_t *k = xmalloc(idlen + 1 + ul);

    memcpy(k, id, idlen);
    k[idlen] = 0;
    memcpy(k + idlen + 1, url, ul);
    *keylen = idlen + 1 + ul;
    return k;
}

bool ocsp_cache_check(struct ocsp_loop *ol, X509 *cert, X509 *issuer,
                      X509_STORE *store, const struct ocsp_params *p,
                      bool refresh, ocsp_done_fn fn, void *ud,
                      struct ocsp_result *res, double *valid_until,
                      struct ocsp_waiter **wp)
{
    struct ocsp_cache *oc = ol->oc;
    double now = ev_now(ol->loop);
    struct ocsp_req *rq = NULL;
    struct hashmap_entry *he;
    struct ocsp_waiter *w;
    struct entry *e;
    const uint8_t *id, *der;
    uint8_t *key;
    size_t idlen, keylen, derlen;
    char url[1024], err[200];

    *wp = NULL;
    *valid_until = now;
    memset(res, 0, sizeof(*res));
    res->reason = -1;
    res->status = OCSP_UNREACHABLE;
    if (issuer == NULL) {
        snprintf(res->why, sizeof(res->why),
                 "the issuer of the certificate is not known");
        return true;
    }
    if (p->responder != NULL)
        snprintf(url, sizeof(url), "%s", p->responder);
    else if (ocsp_cert_url(cert, url, sizeof(url)) != 0) {
        snprintf(res->why, sizeof(res->why),
                 "no responder: the certificate has no OCSP URL (AIA) "
                 "and tls_ocsp_responder is not set");
        return true;
    }
    rq = ocsp_req_new(cert, issuer, true, err, sizeof(err));
    if (rq == NULL) {
        snprintf(res->why, sizeof(res->why), "cannot build a request: %s", err);
        return true;
    }
    id = ocsp_req_key(rq, &idlen);
    key = key_of(id, idlen, url, &keylen);
    pthread_mutex_lock(&oc->mu);
    he = hashmap_find(&oc->map, &oc->seed, key, keylen);
    e = he ? hashmap_item(he, struct entry, he) : NULL;
    if (e != NULL && e->have && !refresh &&
        until_for(e, p->cache_seconds) > now) {
        *res = e->res;
        *valid_until = until_for(e, p->cache_seconds);
        pthread_mutex_unlock(&oc->mu);
        ocsp_req_free(rq);
        free(key);
        return true;
    }
    if (e == NULL) {
        if (hashmap_count(&oc->map) >= OCSP_CACHE_MAX)
            sweep_locked(oc, now);
        e = xcalloc(1, sizeof(*e));
        e->oc = oc;
        e->key = key;
        key = NULL;
        e->keylen = keylen;
        e->nu_until = INFINITY;
        hashmap_entry_init(&e->he, &oc->seed, e->key, e->keylen);
        hashmap_insert(&oc->map, &e->he);
    }
    free(key);
    if (p->cache_seconds > e->max_cs)
        e->max_cs = p->cache_seconds;
    if (e->owner == NULL) {
        ocsp_req_free(e->req);
        e->req = rq;
        rq = NULL;
        X509_STORE_free(e->store);
        X509_STORE_up_ref(store);
        e->store = store;
        der = ocsp_req_der(e->req, &derlen);
        oc->queries++;
        e->owner = ol;
        /* never calls back from inside: http_done runs from ol's loop */
        e->http = ocsp_http_start(ol->loop, url, der, derlen, p->timeout,
                                  http_done, e);
    }
    w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->ol = ol;
    w->state = W_WAIT;
    w->fn = fn;
    w->ud = ud;
    w->cache_seconds = p->cache_seconds;
    w->next = e->waiters;
    if (e->waiters != NULL)
        e->waiters->prev = w;
    e->waiters = w;
    *wp = w;
    pthread_mutex_unlock(&oc->mu);
    ocsp_req_free(rq);
    return false;
}

void ocsp_waiter_cancel(struct ocsp_waiter *w)
{
    struct ocsp_loop *ol;

    if (w == NULL)
        return;
    ol = w->ol;
    pthread_mutex_lock(&ol->oc->mu);
    switch (w->state) {
    case W_WAIT:
        unlink_waiter(w);
        free(w);
        /* the query goes on without this waiter: its answer is cached */
        break;
    case W_QUEUED: {
        struct ocsp_waiter *prev = NULL;
        for (struct ocsp_waiter *x = ol->done; x != NULL; x = x->next) {
            if (x == w) {
                if (prev != NULL)
                    prev->next = w->next;
                else
                    ol->done = w->next;
                if (ol->done_tail == w)
                    ol->done_tail = prev;
                free(w);
                break;
            }
            prev = x;
        }
        break;
    }
    case W_CALLING:
    default:
        w->fn = NULL; /* being called back on this loop: just mute it */
        break;
    }
    pthread_mutex_unlock(&ol->oc->mu);
}

/* sweep_locked: drop the answers no caller reuses any more. */
static void sweep_locked(struct ocsp_cache *oc, double now)
{
    struct hashmap_entry *he;
    size_t it = 0;

    while ((he = hashmap_next(&oc->map, &it)) != NULL) {
        struct entry *e = hashmap_item(he, struct entry, he);
        if (e->owner == NULL && e->waiters == NULL &&
            (!e->have || until_for(e, e->max_cs) <= now))
            entry_remove(e);
    }
    hashmap_shrink(&oc->map);
}

void ocsp_cache_sweep(struct ocsp_loop *ol)
{
    pthread_mutex_lock(&ol->oc->mu);
    sweep_locked(ol->oc, ev_now(ol->loop));
    pthread_mutex_unlock(&ol->oc->mu);
}

unsigned long long ocsp_cache_queries(struct ocsp_cache *oc)
{
    unsigned long long n;

    pthread_mutex_lock(&oc->mu);
    n = oc->queries;
    pthread_mutex_unlock(&oc->mu);
    return n;
}
