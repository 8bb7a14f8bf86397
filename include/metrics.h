/*
 * metrics.h - the broker's figures for operators: the Prometheus text
 * exposition (format 0.0.4) served at /metrics and the JSON document the
 * status page draws from. Pure producers: they read the broker (every
 * thread's counters through broker_totals) and what the daemon measured
 * (struct metrics_ext), and return text; the HTTP server is http_ops.c's.
 *
 *   broker_totals (all threads) --+
 *   TLS contexts (tls_ctx_certs) -+--> metrics_text  --> GET /metrics
 *   struct metrics_ext -----------+--> metrics_json  --> GET /api/status
 *   (loops, HTTP listeners, bridges_stat)
 */
#ifndef MQTTD_METRICS_H
#define MQTTD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct bridge_stat;

/* One event-loop thread as the daemon measured it. */
struct metrics_thread {
    double busy_seconds; /* handling events since start */
    double utilisation;  /* busy share of the last sampling period, 0..1 */
};

/* What only the daemon knows. Arrays are borrowed for the call. */
struct metrics_ext {
    unsigned nthreads;
    const struct metrics_thread *threads; /* [nthreads] */
    const size_t *http_conns; /* [nlisteners]: open HTTP connections of the
                                 protocol http listeners (NULL: none) */
    bool ready;               /* what /readyz answers */
    const struct bridge_stat *bridges; /* [nbridges], from bridges_stat */
    size_t nbridges;
};

/* A point of the status page's history (every second). */
struct metrics_sample {
    double t; /* Unix time */
    uint64_t clients;
    uint64_t msgs_rx, msgs_tx;
    uint64_t pub_rx, pub_tx;
    uint64_t bytes_rx, bytes_tx;
    uint64_t dropped;
    double utilisation; /* the busiest thread's */
};

/*
 * metrics_tls_fail_class: the enum stats_tls_fail class of a connection's
 * close reason when it says a TLS handshake failed ("TLS handshake failed:
 * ...", or closed during it), -1 otherwise. NULL gives -1.
 */
int metrics_tls_fail_class(const char *reason);

/*
 * metrics_text: the Prometheus text exposition of b (every thread's
 * figures when there are several; the other threads' are as of their last
 * one-second tick) and x. Returns a NUL-terminated malloc'd string (the
 * caller frees it) and its length in *len. Never NULL.
 */
char *metrics_text(struct broker *b, const struct metrics_ext *x, size_t *len);

/* metrics_sample: the current point of the history (clients and the
 * counters) of b; s->t and s->utilisation are the caller's. */
void metrics_sample(struct broker *b, struct metrics_sample *s);

/*
 * metrics_json: the status page's document: totals, listeners, threads,
 * every loaded certificate with its expiry (and tls_expiry_warning_days),
 * and the history hist[0..n) oldest first. malloc'd, NUL-terminated, the
 * caller frees it; never NULL.
 */
char *metrics_json(struct broker *b, const struct metrics_ext *x,
                   const struct metrics_sample *hist, size_t n);

#endif
