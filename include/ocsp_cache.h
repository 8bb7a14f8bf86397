/*
 * ocsp_cache.h - client-certificate OCSP status for the whole process: a
 * cache of verified answers keyed by (certificate, responder URL) - the
 * CertID (issuer name hash, issuer key hash, serial) and the URL asked -
 * and at most one query in flight per key, shared by every connection
 * that waits for it, whichever event-loop thread it is on.
 *
 *   struct ocsp_cache (one per process, mutex)   struct ocsp_loop (one per
 *     +-- map key -> entry                         loop: its ev_async and
 *           +-- answer, answered at                the results queued for
 *           +-- query in flight: owner loop        its waiters)
 *           +-- waiters (any loop)
 *
 *   ocsp_cache_check(cert) --cached & fresh--> result now
 *                          --in flight-------> join its waiters
 *                          --otherwise-------> ocsp_http_start on the
 *                                              caller's loop, new entry
 *   answer (owner loop) -> ocsp_response_check -> entry -> each waiter:
 *     same loop: its callback; another loop: queued for that loop and
 *     its ev_async sent; the callback runs there.
 *
 * An answer is reused until min(nextUpdate, answered + cache_seconds)
 * (the cap of the caller asking). Failures (unreachable, invalid) are not
 * cached: the next connection asks again.
 */
#ifndef MQTTD_OCSP_CACHE_H
#define MQTTD_OCSP_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "ocsp.h"

struct ev_loop;
struct ocsp_cache;
struct ocsp_loop;
struct ocsp_waiter;

/* The result for a waiter; valid_until is when the answer stops being
 * reused (ev_now time, the wall clock; now for a failure). */
typedef void (*ocsp_done_fn)(void *ud, const struct ocsp_result *r,
                             double valid_until);

/* What a check is asked with (the listener's settings). */
struct ocsp_params {
    const char *responder;  /* URL overriding the AIA, or NULL */
    unsigned cache_seconds; /* cap on reuse of an answer */
    double timeout;         /* bound on one query */
};

/* ocsp_cache_new: an empty cache any thread may use through an
 * ocsp_loop. Never NULL. ocsp_cache_free: after every ocsp_loop of it was
 * freed; accepts NULL. */
struct ocsp_cache *ocsp_cache_new(void);
void ocsp_cache_free(struct ocsp_cache *oc);

/*
 * ocsp_loop_new: loop's handle on oc (call on loop's thread; queries it
 * starts run on loop, results for its waiters are called on loop). Never
 * NULL. ocsp_loop_free (same thread): its waiters are dropped without
 * being called; the queries it runs are stopped, and their waiters on
 * other loops get OCSP_UNREACHABLE ("query abandoned"). Accepts NULL.
 */
struct ocsp_loop *ocsp_loop_new(struct ocsp_cache *oc, struct ev_loop *loop);
void ocsp_loop_free(struct ocsp_loop *ol);

/*
 * ocsp_cache_check: the status of cert (issued by issuer, whose response
 * signer is verified against store) as the responder p->responder, or
 * else the certificate's AIA URL, says. Returns true when the result is
 * known now: a fresh cached answer, or a failure to even ask (no issuer,
 * no responder URL): *res and *valid_until are filled, *w is NULL.
 * Returns false when a query runs (started now on ol's loop, or shared
 * with earlier callers of any loop): fn(ud, ...) is called on ol's loop
 * when it ends unless ocsp_waiter_cancel(*w) is called first. 'refresh'
 * ignores a cached answer (a live client's periodic re-check). On ol's
 * thread only.
 */
bool ocsp_cache_check(struct ocsp_loop *ol, X509 *cert, X509 *issuer,
                      X509_STORE *store, const struct ocsp_params *p,
                      bool refresh, ocsp_done_fn fn, void *ud,
                      struct ocsp_result *res, double *valid_until,
                      struct ocsp_waiter **w);

/* ocsp_waiter_cancel: the waiter's callback will not run (on the thread
 * of the loop it waits on). Accepts NULL. */
void ocsp_waiter_cancel(struct ocsp_waiter *w);

/* ocsp_cache_sweep: drop cached answers that expired (call now and then,
 * from any loop's thread). */
void ocsp_cache_sweep(struct ocsp_loop *ol);

/* ocsp_cache_queries: HTTP queries started so far, by every loop. */
unsigned long long ocsp_cache_queries(struct ocsp_cache *oc);

#endif
