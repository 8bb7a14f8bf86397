/*
 * ocsp_cache.c - verified OCSP answers per certificate and shared queries
 * (see ocsp_cache.h).
 *
 *   struct ocsp_cache
 *     +-- map (hashmap, keyed SipHash) CertID DER -> struct entry
 *           +-- req      the OCSP request (nonce) of the query in flight
 *           +-- http     the query in flight, NULL when none
 *           +-- waiters  connections waiting for it (doubly linked)
 *           +-- res, until  the last verified answer and its reuse limit
 */
#include "ocsp_cache.h"

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

struct ocsp_waiter {
    struct ocsp_waiter *prev, *next;
    struct entry *e;
    ocsp_done_fn fn;
    void *ud;
};

struct entry {
    struct hashmap_entry he;
    uint8_t *key;
    size_t keylen;
    struct ocsp_cache *oc;
    struct ocsp_req *req;   /* of the query in flight */
    struct ocsp_http *http; /* NULL when no query runs */
    X509_STORE *store;      /* to verify the answer with (reference) */
    unsigned cache_seconds;
    struct ocsp_waiter *waiters;
    bool have; /* res holds a verified answer valid until 'until' */
    struct ocsp_result res;
    double until;
};

struct ocsp_cache {
    struct ev_loop *loop;
    struct hashmap_seed seed;
    struct hashmap map;
    unsigned long long queries;
};

struct ocsp_cache *ocsp_cache_new(struct ev_loop *loop)
{
    struct ocsp_cache *oc = xcalloc(1, sizeof(*oc));

    oc->loop = loop;
    hashmap_seed_init(&oc->seed);
    hashmap_init(&oc->map);
    return oc;
}

static void entry_free(struct entry *e)
{
    struct ocsp_waiter *w, *n;

    ocsp_http_cancel(e->http);
    for (w = e->waiters; w != NULL; w = n) {
        n = w->next;
        free(w);
    }
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
    while ((he = hashmap_next(&oc->map, &it)) != NULL)
        entry_free(hashmap_item(he, struct entry, he));
    hashmap_clear(&oc->map);
    free(oc);
}

/* http_done: the query of entry ud ended: verify, cache, tell waiters. */
static void http_done(void *ud, enum ocsp_http_end end, const uint8_t *body,
                      size_t len, const char *why)
{
    struct entry *e = ud;
    struct ocsp_cache *oc = e->oc;
    struct ocsp_result res;
    struct ocsp_waiter *list;
    double now = ev_now(oc->loop), until = now;

    e->http = NULL;
    memset(&res, 0, sizeof(res));
    res.reason = -1;
    if (end == OCSP_HTTP_OK) {
        ocsp_response_check(body, len, e->req, e->store, &res);
    } else {
        res.status =
            end == OCSP_HTTP_UNREACHABLE ? OCSP_UNREACHABLE : OCSP_INVALID;
        snprintf(res.why, sizeof(res.why), "%s", why ? why : "failed");
    }
    if (res.status == OCSP_GOOD || res.status == OCSP_REVOKED ||
        res.status == OCSP_UNKNOWN) {
        until = now + (double)e->cache_seconds;
        if (res.next_update > 0) {
            double nu = now + (double)(res.next_update - time(NULL));
            if (nu < until)
                until = nu;
        }
        if (until < now)
            until = now;
        e->have = true;
        e->res = res;
        e->until = until;
    }
    list = e->waiters;
    e->waiters = NULL;
    /* detach every waiter first: a callback may start a new check of the
     * same certificate, or cancel another waiter */
    for (struct ocsp_waiter *w = list; w != NULL; w = w->next)
        w->e = NULL;
    while (list != NULL) {
        struct ocsp_waiter *w = list;
        list = w->next;
        if (w->fn != NULL)
            w->fn(w->ud, &res, until);
        free(w);
    }
    if (!e->have && e->http == NULL && e->waiters == NULL)
        entry_remove(e);
}

bool ocsp_cache_check(struct ocsp_cache *oc, X509 *cert, X509 *issuer,
                      X509_STORE *store, const struct ocsp_params *p,
                      bool refresh, ocsp_done_fn fn, void *ud,
                      struct ocsp_result *res, double *valid_until,
                      struct ocsp_waiter **wp)
{
    double now = ev_now(oc->loop);
    struct ocsp_req *rq = NULL;
    struct hashmap_entry *he;
    struct ocsp_waiter *w;
    struct entry *e;
    const uint8_t *key, *der;
    size_t keylen, derlen;
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
    rq = ocsp_req_new(cert, issuer, true, err, sizeof(err));
    if (rq == NULL) {
        snprintf(res->why, sizeof(res->why), "cannot build a request: %s", err);
        return true;
    }
    key = ocsp_req_key(rq, &keylen);
    he = hashmap_find(&oc->map, &oc->seed, key, keylen);
    e = he ? hashmap_item(he, struct entry, he) : NULL;
    if (e != NULL && e->have && !refresh && e->until > now) {
        *res = e->res;
        *valid_until = e->until;
        ocsp_req_free(rq);
        return true;
    }
    if (e == NULL || e->http == NULL) {
        if (p->responder != NULL)
            snprintf(url, sizeof(url), "%s", p->responder);
        else if (ocsp_cert_url(cert, url, sizeof(url)) != 0) {
            snprintf(res->why, sizeof(res->why),
                     "no responder: the certificate has no OCSP URL (AIA) "
                     "and tls_ocsp_responder is not set");
            ocsp_req_free(rq);
            return true;
        }
        if (e == NULL) {
            if (hashmap_count(&oc->map) >= OCSP_CACHE_MAX)
                ocsp_cache_sweep(oc);
            e = xcalloc(1, sizeof(*e));
            e->oc = oc;
            e->key = xmemdup(key, keylen);
            e->keylen = keylen;
            hashmap_entry_init(&e->he, &oc->seed, e->key, e->keylen);
            hashmap_insert(&oc->map, &e->he);
        }
        ocsp_req_free(e->req);
        e->req = rq;
        rq = NULL;
        X509_STORE_free(e->store);
        X509_STORE_up_ref(store);
        e->store = store;
        e->cache_seconds = p->cache_seconds;
        der = ocsp_req_der(e->req, &derlen);
        oc->queries++;
        e->http = ocsp_http_start(oc->loop, url, der, derlen, p->timeout,
                                  http_done, e);
    }
    ocsp_req_free(rq);
    w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->fn = fn;
    w->ud = ud;
    w->next = e->waiters;
    if (e->waiters != NULL)
        e->waiters->prev = w;
    e->waiters = w;
    *wp = w;
    return false;
}

void ocsp_waiter_cancel(struct ocsp_waiter *w)
{
    struct entry *e;

    if (w == NULL)
        return;
    e = w->e;
    if (e == NULL) { /* being called back right now: just mute it */
        w->fn = NULL;
        return;
    }
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    free(w);
    /* the query goes on without waiters: its answer is still cached */
}

void ocsp_cache_sweep(struct ocsp_cache *oc)
{
    double now = ev_now(oc->loop);
    struct hashmap_entry *he;
    size_t it = 0;

    while ((he = hashmap_next(&oc->map, &it)) != NULL) {
        struct entry *e = hashmap_item(he, struct entry, he);
        if (e->http == NULL && e->waiters == NULL && e->until <= now)
            entry_remove(e);
    }
    hashmap_shrink(&oc->map);
}

unsigned long long ocsp_cache_queries(const struct ocsp_cache *oc)
{
    return oc->queries;
}
