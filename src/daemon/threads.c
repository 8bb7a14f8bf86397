/*
 * threads.c - the worker threads of threads > 1: one loop, broker shard,
 * log and acceptor each, and the control channel from the main thread
 * (see threads.h).
 */
#include "threads.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "broker.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "loopstat.h"
#include "util.h"

enum { W_STOP = 1u }; /* besides enum threads_req */

/* One more event loop, its broker shard and its own log. */
struct worker {
    struct threads *t;
    unsigned idx;
    struct ev_loop *loop;
    struct log *log;
    struct broker *broker;
    struct acceptor *acc;
    struct loopstat *stat; /* busy time of its loop */
    ev_timer tick;
    ev_async ctl;
    unsigned ctl_req; /* W_STOP | enum threads_req (atomic) */
    int64_t beat_ms;  /* monotonic ms of its last tick (atomic) */
    pthread_t thread;
    bool started;
};

struct threads {
    struct log *log; /* the main thread's */
    char *conf_path;
    struct worker *w; /* [1..n) */
    unsigned n;
    /* threads_sync: requests the main thread waits for */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    unsigned sync_left;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void threads_log_apply(struct log *lg, const struct conf *c)
{
    struct log_settings ls = {
        .types = c->log_types,
        .dests = c->log_dests,
        .file = c->log_file,
        .timestamp = c->log_timestamp,
        .ts_format = c->log_timestamp_format,
        .json = c->log_json,
    };
    char err[512];

    if (log_configure(lg, &ls, err, sizeof(err)) < 0)
        LOG_E(lg, "%s", err);
}

void threads_log_reopen(struct log *lg)
{
    char err[512];

    if (log_reopen(lg, err, sizeof(err)) < 0)
        LOG_E(lg, "%s", err);
}

static void worker_request(struct worker *w, unsigned req)
{
    if (!w->started)
        return;
    __atomic_or_fetch(&w->ctl_req, req, __ATOMIC_RELEASE);
    ev_async_send(w->loop, &w->ctl);
}

static void worker_tick_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    struct worker *w = tm->data;

    (void)loop;
    (void)revents;
    __atomic_store_n(&w->beat_ms, mono_ms(), __ATOMIC_RELAXED);
    broker_tick(w->broker);
}

/* Reload on the worker's own thread: the main thread validated the same
 * file a moment ago, so errors here are unexpected (and logged). */
static void worker_reload(struct worker *w)
{
    struct conf *c;
    char err[4096];

    if (w->t->conf_path == NULL)
        return;
    c = conf_load(w->t->conf_path, NULL, NULL);
    if (c == NULL) {
        threads_log_reopen(w->log);
        LOG_E(w->log, "thread %u: reload failed; keeping its configuration.",
              w->idx);
        return;
    }
    threads_log_apply(w->log, c);
    if (broker_reload(w->broker, c, err, sizeof(err)) < 0)
        LOG_E(w->log, "thread %u: reload failed: %s", w->idx, err);
}

static void worker_ctl_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    unsigned req = __atomic_exchange_n(&w->ctl_req, 0u, __ATOMIC_ACQUIRE);

    (void)revents;
    if (req & THREADS_RELOAD)
        worker_reload(w);
    if (req & THREADS_TLS)
        broker_tls_check(w->broker);
    if (req & THREADS_LOG)
        threads_log_reopen(w->log);
    if (req & (THREADS_RELOAD | THREADS_TLS | THREADS_LOG)) {
        struct threads *t = w->t;
        pthread_mutex_lock(&t->sync_mu);
        if (t->sync_left > 0)
            t->sync_left--;
        pthread_cond_signal(&t->sync_cv);
        pthread_mutex_unlock(&t->sync_mu);
    }
    if (req & W_STOP) {
        acceptor_stop(w->acc);
        broker_shutdown(w->broker);
        ev_break(loop, EVBREAK_ALL);
    }
}

void threads_sync(struct threads *t, enum threads_req req)
{
    struct timespec until;
    unsigned n = 0;

    pthread_mutex_lock(&t->sync_mu);
    for (unsigned i = 1; i < t->n; i++)
        n += t->w[i].started;
    t->sync_left = n;
    pthread_mutex_unlock(&t->sync_mu);
    for (unsigned i = 1; i < t->n; i++)
        worker_request(&t->w[i], req);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&t->sync_mu);
    while (t->sync_left > 0) {
        if (pthread_cond_timedwait(&t->sync_cv, &t->sync_mu, &until) != 0) {
            LOG_W(t->log,
                  "%u thread(s) did not confirm the reload within "
                  "10 s.",
                  t->sync_left);
            break;
        }
    }
    pthread_mutex_unlock(&t->sync_mu);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    ev_run(w->loop, 0);
    /* let the final DISCONNECTs and closes run */
    ev_run(w->loop, EVRUN_NOWAIT);
    return NULL;
}

/* accept_cb: the acceptor's listener_accept_fn; ud is the worker's
 * broker shard. */
static void accept_cb(void *ud, size_t li, int fd, const struct sockaddr *sa,
                      socklen_t salen)
{
    broker_accept(ud, li, fd, sa, salen);
}

/* Build worker idx (on the main thread; its loop runs later on its own). */
static int worker_init(struct threads *t, struct worker *w, unsigned idx,
                       struct hub *h, uint16_t port, const struct listeners *ls,
                       unsigned batch, char *err, size_t errlen)
{
    struct conf *c;

    w->t = t;
    w->idx = idx;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (w->loop == NULL) {
        snprintf(err, errlen, "cannot create the event loop of thread %u", idx);
        return -1;
    }
    w->log = log_new();
    c = t->conf_path ? conf_load(t->conf_path, NULL, NULL) : conf_default(port);
    if (c == NULL) {
        snprintf(err, errlen, "thread %u: the configuration failed to load",
                 idx);
        return -1;
    }
    threads_log_apply(w->log, c);
    w->broker = broker_new(w->loop, c, w->log, err, errlen);
    if (w->broker == NULL)
        return -1;
    broker_set_hub(w->broker, h, idx);
    w->acc = acceptor_new(w->loop, ls, accept_cb, w->broker, w->log, batch);
    for (size_t li = 0; li < broker_conf(w->broker)->nlisteners; li++)
        if (broker_conf(w->broker)->listeners[li].protocol == CONF_PROTO_HTTP)
            acceptor_skip(w->acc, li); /* the main thread's (http_ops.c) */
    w->stat = loopstat_new(w->loop);
    ev_timer_init(&w->tick, worker_tick_cb, 1.0, 1.0);
    w->tick.data = w;
    ev_timer_start(w->loop, &w->tick);
    ev_async_init(&w->ctl, worker_ctl_cb);
    w->ctl.data = w;
    ev_async_start(w->loop, &w->ctl);
    return 0;
}

struct threads *threads_new(unsigned n, struct hub *h, const char *conf_path,
                            uint16_t port, const struct listeners *ls,
                            unsigned batch, struct log *lg, char *err,
                            size_t errlen)
{
    struct threads *t = xcalloc(1, sizeof(*t));

    t->log = lg;
    t->conf_path = conf_path ? xstrdup(conf_path) : NULL;
    t->n = n;
    pthread_mutex_init(&t->sync_mu, NULL);
    pthread_cond_init(&t->sync_cv, NULL);
    t->w = xcalloc(n, sizeof(*t->w));
    for (unsigned i = 1; i < n; i++) {
        if (worker_init(t, &t->w[i], i, h, port, ls, batch, err, errlen) < 0) {
            threads_free(t);
            return NULL;
        }
    }
    return t;
}

int threads_start(struct threads *t)
{
    sigset_t all, old;

    /* workers take no signals: the main loop's signalfd gets them all */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 1; i < t->n; i++) {
        struct worker *w = &t->w[i];
        __atomic_store_n(&w->beat_ms, mono_ms(), __ATOMIC_RELAXED);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            LOG_E(t->log, "cannot start thread %u: %s", i, strerror(errno));
            return -1;
        }
        w->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

void threads_stop(struct threads *t)
{
    for (unsigned i = 1; i < t->n; i++)
        worker_request(&t->w[i], W_STOP);
}

void threads_join(struct threads *t)
{
    for (unsigned i = 1; i < t->n; i++) {
        struct worker *w = &t->w[i];
        if (w->started) {
            worker_request(w, W_STOP);
            pthread_join(w->thread, NULL);
            w->started = false;
        }
    }
}

unsigned threads_stale(const struct threads *t, int64_t stale_ms,
                       int64_t *age_ms)
{
    int64_t now = mono_ms();

    for (unsigned i = 1; i < t->n; i++) {
        const struct worker *w = &t->w[i];
        int64_t age;
        if (!w->started)
            continue;
        age = now - __atomic_load_n(&w->beat_ms, __ATOMIC_RELAXED);
        if (age > stale_ms) {
            *age_ms = age;
            return i;
        }
    }
    return 0;
}

uint64_t threads_busy_ns(const struct threads *t, unsigned i)
{
    return i >= 1 && i < t->n && t->w[i].stat ? loopstat_busy_ns(t->w[i].stat)
                                              : 0;
}

int64_t threads_beat_age_ms(const struct threads *t, unsigned i)
{
    if (i < 1 || i >= t->n || !t->w[i].started)
        return -1;
    return mono_ms() - __atomic_load_n(&t->w[i].beat_ms, __ATOMIC_RELAXED);
}

static void worker_free(struct worker *w)
{
    if (w->loop == NULL)
        return;
    acceptor_free(w->acc);
    loopstat_free(w->stat);
    ev_timer_stop(w->loop, &w->tick);
    ev_async_stop(w->loop, &w->ctl);
    broker_free(w->broker);
    log_free(w->log);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
}

void threads_free(struct threads *t)
{
    if (t == NULL)
        return;
    threads_join(t);
    for (unsigned i = 1; i < t->n; i++)
        worker_free(&t->w[i]);
    free(t->w);
    pthread_mutex_destroy(&t->sync_mu);
    pthread_cond_destroy(&t->sync_cv);
    free(t->conf_path);
    free(t);
}
