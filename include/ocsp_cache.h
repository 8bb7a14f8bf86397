/*
 * ocsp_cache.h - client-certificate OCSP status for one event loop: a
 * cache of verified answers keyed by the certificate's CertID (issuer
 * name hash, issuer key hash, serial), and at most one query in flight
 * per certificate, shared by every connection that waits for it.
 *
 *   ocsp_cache_check(cert) --cached & fresh--> result now
 *                          --in flight-------> join its waiters
 *                          --otherwise-------> ocsp_http_start, new entry
 *   answer -> ocsp_response_check -> entry (kept until min(nextUpdate,
 *             now + cache_seconds) when it is a verified answer) -> each
 *             waiter's callback
 *
 * Failures (unreachable, invalid) are not cached: the next connection
 * asks again. One cache per loop (thread); nothing is shared across.
 */
#ifndef MQTTD_OCSP_CACHE_H
#define MQTTD_OCSP_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "ocsp.h"

struct ev_loop;
struct ocsp_cache;
struct ocsp_waiter;

/* The result for a waiter; valid_until is when the answer stops being
 * reused (ev_now time; now for a failure). */
typedef void (*ocsp_done_fn)(void *ud, const struct ocsp_result *r,
                             double valid_until);

/* What a check is asked with (the listener's settings). */
struct ocsp_params {
    const char *responder;  /* URL overriding the AIA, or NULL */
    unsigned cache_seconds; /* cap on reuse of an answer */
    double timeout;         /* bound on one query */
};

/* ocsp_cache_new: an empty cache on loop. Never NULL. ocsp_cache_free
 * cancels queries in flight without calling their waiters; accepts NULL. */
struct ocsp_cache *ocsp_cache_new(struct ev_loop *loop);
void ocsp_cache_free(struct ocsp_cache *oc);

/*
 * ocsp_cache_check: the status of cert (issued by issuer, whose response
 * signer is verified against store). Returns true when the result is
 * known now: a fresh cached answer, or a failure to even ask (no issuer,
 * no responder URL): *res and *valid_until are filled, *w is NULL.
 * Returns false when a query runs (started now or shared with earlier
 * callers): fn(ud, ...) is called from the loop when it ends unless
 * ocsp_waiter_cancel(*w) is called first. 'refresh' ignores a cached
 * answer (a live client's periodic re-check).
 */
bool ocsp_cache_check(struct ocsp_cache *oc, X509 *cert, X509 *issuer,
                      X509_STORE *store, const struct ocsp_params *p,
                      bool refresh, ocsp_done_fn fn, void *ud,
                      struct ocsp_result *res, double *valid_until,
                      struct ocsp_waiter **w);

/* ocsp_waiter_cancel: the waiter's callback will not run. */
void ocsp_waiter_cancel(struct ocsp_waiter *w);

/* ocsp_cache_sweep: drop cached answers that expired (call now and then). */
void ocsp_cache_sweep(struct ocsp_cache *oc);

/* ocsp_cache_queries: HTTP queries started so far (for $SYS and tests). */
unsigned long long ocsp_cache_queries(const struct ocsp_cache *oc);

#endif
