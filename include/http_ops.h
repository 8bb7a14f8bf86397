/*
 * http_ops.h - the operations HTTP server of the protocol http listeners:
 * GET /metrics (Prometheus text, metrics.h), /healthz, /readyz, the
 * status page at / and its JSON at /api/status. It runs on the main
 * thread's loop only (the worker threads skip these listeners), answers
 * one request per connection (Content-Length, Connection: close) and
 * parses the request head with http_parse.h's strict, bounded parser.
 *
 *   accept (main loop) --> http_allow_from? --no--> 403 (and a log line)
 *        | yes
 *        v
 *   conn (plain or TLS) --bytes--> http_parse --error--> 400/414/431/505
 *        | DONE
 *        v
 *   route: /metrics /healthz /readyz / /api/status --> response, close
 *
 * Every second it samples the broker's counters and each loop's busy time
 * into a ten-minute history the status page plots.
 */
#ifndef MQTTD_HTTP_OPS_H
#define MQTTD_HTTP_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct bridges;
struct broker;
struct conf;
struct ev_loop;
struct http_ops;
struct log;
struct threads;

/* http_ops_wanted: true when c has a protocol http listener. */
bool http_ops_wanted(const struct conf *c);

/*
 * http_ops_new: the server on loop (the main thread's), reading broker b
 * (shard 0: its totals are every thread's), the worker threads t (NULL
 * with one thread) of nthreads loops in all, logging to lg. b, t and lg
 * must outlive it. Never NULL.
 */
struct http_ops *http_ops_new(struct ev_loop *loop, struct broker *b,
                              struct threads *t, unsigned nthreads,
                              struct log *lg);

/*
 * http_ops_accept: take accepted fd of protocol http listener li (the
 * acceptor's callback on the main thread): peers outside the listener's
 * http_allow_from get 403 once their request arrived. The fd is the
 * server's from then on (closed with a log line when over its connection
 * cap).
 */
void http_ops_accept(struct http_ops *h, size_t li, int fd,
                     const struct sockaddr *sa, socklen_t salen);

/* http_ops_set_ready: what /readyz answers (false: 503 "starting");
 * http_ops_shutdown: from now on /readyz answers 503 "shutting down". */
void http_ops_set_ready(struct http_ops *h, bool ready);

/* http_ops_set_bridges: the bridges /metrics reports (borrowed, on h's
 * loop; NULL before they are freed). */
void http_ops_set_bridges(struct http_ops *h, const struct bridges *bs);
void http_ops_shutdown(struct http_ops *h);

/* http_ops_close_all: close every HTTP connection (the loop frees them
 * on its next iteration; call before the last one). */
void http_ops_close_all(struct http_ops *h);

/* http_ops_free: close every HTTP connection and free. Accepts NULL. */
void http_ops_free(struct http_ops *h);

#endif
