/*
 * threads.h - threads > 1: the event loops beside the main one. Each
 * worker thread runs its own loop with its own broker shard (of the hub
 * the main thread's broker is shard 0 of), its own log handle and its own
 * acceptor on the shared listening sockets. The main thread keeps the
 * signals; it asks the workers to reload, check their TLS files or stop
 * through an ev_async, and waits (bounded) for their confirmation.
 *
 *   main loop (shard 0, signals) --threads_sync(RELOAD|TLS)--> ev_async
 *        ^                                                        |
 *        +------------- confirmation (mutex + condvar) <-- worker i loop
 */
#ifndef MQTTD_THREADS_H
#define MQTTD_THREADS_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct hub;
struct listeners;
struct log;
struct threads;

/* What threads_sync asks of every worker. */
enum threads_req {
    THREADS_RELOAD = 2, /* re-read the configuration (broker_reload) */
    THREADS_TLS = 4,    /* broker_tls_check */
    THREADS_LOG = 8,    /* log_reopen (a SIGHUP whose reload failed) */
};

/*
 * threads_new: workers 1..n-1 (n >= 2), each with a broker shard of hub h
 * built from the configuration at conf_path (NULL: the defaults with
 * listener port 'port'), accepting on ls (up to batch connections per
 * wake-up); lg (borrowed) is the main thread's log. h, ls and lg must
 * outlive them. Their loops do not run before threads_start. Returns NULL
 * with err filled on failure (nothing is left).
 */
struct threads *threads_new(unsigned n, struct hub *h, const char *conf_path,
                            uint16_t port, const struct listeners *ls,
                            unsigned batch, struct log *lg, char *err,
                            size_t errlen);

/* threads_start: run every worker's loop on its own thread (they take no
 * signals). Returns 0, or -1 (logged) when one could not start. */
int threads_start(struct threads *t);

/* threads_sync: have every running worker do req and wait until they
 * confirmed, at most 10 s (a warning is logged then). Main thread only. */
void threads_sync(struct threads *t, enum threads_req req);

/* threads_stop: ask every running worker to disconnect its clients and
 * end its loop (threads_join waits for that). */
void threads_stop(struct threads *t);

/* threads_join: stop (if not yet asked) and wait for every worker. */
void threads_join(struct threads *t);

/*
 * threads_stale: the first running worker whose one-second tick is
 * older than stale_ms (a wedged loop): its index, with *age_ms set; 0
 * when every worker ticks.
 */
unsigned threads_stale(const struct threads *t, int64_t stale_ms,
                       int64_t *age_ms);

/* threads_busy_ns: the time worker i (1..n-1) spent handling events
 * since it started, in ns (0 for another i); any thread may ask.
 * threads_beat_age_ms: ms since worker i's last one-second tick, -1 when
 * it does not run. */
uint64_t threads_busy_ns(const struct threads *t, unsigned i);
int64_t threads_beat_age_ms(const struct threads *t, unsigned i);

/* threads_free: join, then free every worker's acceptor, broker, log and
 * loop. Accepts NULL. */
void threads_free(struct threads *t);

/* threads_log_apply: apply c's log settings (types, destinations, file,
 * timestamps, JSON) to lg; an error is logged and the old settings stay.
 * For the main thread's log and every worker's. */
void threads_log_apply(struct log *lg, const struct conf *c);

/* threads_log_reopen: reopen lg's log file with its current settings (a
 * SIGHUP whose reload failed still lets logrotate move the file); an error
 * is logged and the old file stays in use. */
void threads_log_reopen(struct log *lg);

#endif
