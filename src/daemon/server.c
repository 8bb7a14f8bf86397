/*
 * server.c - the process around the brokers: owns the main libev loop and
 * puts the parts together (listeners and the accept loop in listener.c,
 * worker threads in threads.c, snapshot scheduling in persist_sched.c);
 * keeps the signals (TERM/INT stop, HUP reload, USR1 save), the
 * one-second timer, the systemd watchdog and the startup lines.
 */
#include "server.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "auth.h"
#include "bridge.h"
#include "broker.h"
#include "cluster.h"
#include "conf.h"
#include "http_ops.h"
#include "hub.h"
#include "listener.h"
#include "log.h"
#include "persist_sched.h"
#include "sysd.h"
#include "threads.h"
#include "util.h"

struct server {
    struct ev_loop *loop;
    struct log *log;
    struct broker *broker; /* shard 0 with threads > 1 */
    char *conf_path;
    struct listeners *ls;
    struct acceptor *acc;
    unsigned batch;          /* connections accepted per wake-up */
    struct hub *hub;         /* threads > 1 */
    struct threads *threads; /* threads > 1 */
    unsigned nthreads;
    struct cluster *cluster;  /* cluster_nats; NULL otherwise */
    struct persist_sched *ps; /* NULL when persistence is off */
    int64_t wd_stale_ms;      /* a worker silent this long withholds the ping */
    bool wd_withheld;
    struct http_ops *http; /* protocol http listeners, else NULL */
    bool stopping;         /* in http_shutdown_grace */
    ev_timer grace;
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    ev_timer tick;
    ev_timer watchdog;       /* WATCHDOG=1 at half of WATCHDOG_USEC */
    struct bridges *bridges; /* NULL when none are configured */
};

/* ---- signals and timers ------------------------------------------------ */

static void stop_now(struct server *s);

/* http_shutdown_grace over (or a second signal): stop for real. */
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    stop_now(w->data);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = w->data;
    uint32_t grace = broker_conf(s->broker)->http_shutdown_grace;

    (void)loop;
    (void)revents;
    if (s->http && grace > 0 && !s->stopping) {
        /* /readyz answers 503 while everything else goes on, so that a
         * load balancer stops sending clients before they are cut */
        s->stopping = true;
        http_ops_shutdown(s->http);
        sysd_notify("STOPPING=1");
        LOG_N(s->log,
              "Shutting down in %u s (http_shutdown_grace): /readyz "
              "answers 503; a second signal stops at once.",
              grace);
        ev_timer_init(&s->grace, grace_cb, (double)grace, 0.0);
        s->grace.data = s;
        ev_timer_start(s->loop, &s->grace);
        return;
    }
    stop_now(s);
}

static void stop_now(struct server *s)
{
    struct ev_loop *loop = s->loop;

    ev_timer_stop(loop, &s->grace);
    if (s->http) {
        http_ops_shutdown(s->http);
        http_ops_close_all(s->http);
    }
    LOG_N(s->log, "mqttd version %s terminating", MQTTD_VERSION);
    sysd_notify("STOPPING=1");
    acceptor_stop(s->acc);
    bridges_shutdown(s->bridges);
    broker_shutdown(s->broker);
    if (s->threads)
        threads_stop(s->threads);
    ev_break(loop, EVBREAK_ALL);
}

/* reload_err: a conf_err_fn for reloads: messages starting with
 * CONF_WARNING_PREFIX are warnings (the reload goes on), the rest errors. */
static void reload_err(void *arg, const char *file, int line, const char *msg)
{
    struct server *s = arg;
    unsigned level =
        strncmp(msg, CONF_WARNING_PREFIX, sizeof(CONF_WARNING_PREFIX) - 1) == 0
            ? LOG_WARNING
            : LOG_ERR;

    if (line > 0)
        LOGF(s->log, level, "%s:%d: %s", file, line, msg);
    else
        LOGF(s->log, level, "%s: %s", file, msg);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = w->data;
    struct conf *c;
    char err[4096];

    (void)loop;
    (void)revents;
    sysd_notify("RELOADING=1");
    LOG_N(s->log, "Reloading configuration%s%s.", s->conf_path ? " from " : "",
          s->conf_path ? s->conf_path : "");
    if (s->conf_path == NULL) {
        c = conf_default(broker_conf(s->broker)->listeners[0].port);
    } else {
        c = conf_load(s->conf_path, reload_err, s);
    }
    if (c == NULL) {
        /* the log file is reopened anyway: logrotate relies on SIGHUP */
        threads_log_reopen(s->log);
        if (s->threads)
            threads_sync(s->threads, THREADS_LOG);
        LOG_E(s->log, "Reload failed: configuration has errors; keeping the "
                      "running configuration.");
        sysd_notify("READY=1\nSTATUS=reload failed, old configuration kept");
        return;
    }
    threads_log_apply(s->log, c);
    /* lines the reloaded broker will skip; a file that cannot be loaded
     * fails broker_reload, which says why */
    (void)auth_check_password_files(c, reload_err, NULL, s);
    if (broker_reload(s->broker, c, err, sizeof(err)) < 0) {
        char *line = err, *nl;
        for (; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            LOG_E(s->log, "%s", line);
        }
        LOG_E(s->log, "Reload failed; keeping the running configuration.");
        threads_log_apply(s->log, broker_conf(s->broker));
        if (s->threads)
            threads_sync(s->threads, THREADS_LOG);
        sysd_notify("READY=1\nSTATUS=reload failed, old configuration kept");
        return;
    }
    if (s->threads)
        threads_sync(s->threads, THREADS_RELOAD);
    bridges_reload_tls(s->bridges);
    listeners_apply(s->ls, broker_conf(s->broker));
    LOG_N(s->log, "Configuration reloaded.");
    sysd_notify("READY=1\nSTATUS=running, configuration reloaded");
}

/* Ping systemd only while every thread is alive: a worker whose
 * one-second tick stopped (a wedged loop) withholds the ping, so systemd's
 * WatchdogSec restarts the service. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = w->data;
    int64_t age = 0;
    unsigned stale;

    (void)loop;
    (void)revents;
    stale = s->threads ? threads_stale(s->threads, s->wd_stale_ms, &age) : 0;
    if (stale) {
        if (!s->wd_withheld)
            LOG_E(s->log,
                  "Thread %u has not run for %.1f s: withholding the "
                  "systemd watchdog ping.",
                  stale, (double)age / 1000.0);
        s->wd_withheld = true;
        return;
    }
    if (s->wd_withheld)
        LOG_N(s->log, "Every thread runs again: watchdog pings resumed.");
    s->wd_withheld = false;
    sysd_notify("WATCHDOG=1");
}

/* systemd's WatchdogSec: ping at half the interval, only for our pid. */
static void watchdog_start(struct server *s)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long v;
    const char *es;

    if (usec == NULL || util_strtonum(usec, 1, 86400LL * 1000000, &v, &es) < 0)
        return;
    if (pid && !sysd_pid_is_self(pid))
        return;
    ev_timer_init(&s->watchdog, watchdog_cb, 0.0, (double)v / 2e6);
    s->watchdog.data = s;
    /* a worker ticks every second; stale after half the watchdog period
     * (at least 3 s) */
    s->wd_stale_ms = v / 2000 > 3000 ? v / 2000 : 3000;
    ev_timer_again(s->loop, &s->watchdog);
    ev_unref(s->loop);
    LOG_I(s->log, "systemd watchdog: pinging every %.1f s.", (double)v / 2e6);
}

static void usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = w->data;

    (void)loop;
    (void)revents;
    if (s->ps == NULL) {
        LOG_I(s->log, "SIGUSR1: persistence is not enabled; nothing to save.");
        return;
    }
    persist_sched_save(s->ps, "SIGUSR1");
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = w->data;

    (void)loop;
    (void)revents;
    broker_tick(s->broker);
    if (s->ps)
        persist_sched_tick(s->ps);
}

/* threads > 1: before the first thread announces a TLS reload, every
 * other thread checks its own contexts. */
static void tls_sync_cb(void *ud)
{
    struct server *s = ud;

    if (s->threads)
        threads_sync(s->threads, THREADS_TLS);
}

/* accept_cb: the acceptor's listener_accept_fn; ud is the server.
 * protocol http listeners go to the operations server. */
static void accept_cb(void *ud, size_t li, int fd, const struct sockaddr *sa,
                      socklen_t salen)
{
    struct server *s = ud;
    const struct conf *c = broker_conf(s->broker);

    if (s->http && li < c->nlisteners &&
        c->listeners[li].protocol == CONF_PROTO_HTTP)
        http_ops_accept(s->http, li, fd, sa, salen);
    else
        broker_accept(s->broker, li, fd, sa, salen);
}

static unsigned threads_wanted(const struct conf *c)
{
    long n = c->threads;

    if (n == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1)
            n = 1;
    }
    return n > CONF_MAX_THREADS ? CONF_MAX_THREADS : (unsigned)n;
}

/* ---- lifecycle --------------------------------------------------------- */

struct server *server_new(const char *conf_path, struct conf *c, struct log *lg,
                          char *err, size_t errlen)
{
    struct server *s = xcalloc(1, sizeof(*s));
    uint16_t port0 = c->nlisteners ? c->listeners[0].port : 0;

    s->loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
    s->log = lg;
    s->conf_path = conf_path ? xstrdup(conf_path) : NULL;
    s->nthreads = threads_wanted(c);
    /* with several loops on one listening socket, take a few connections
     * per wake-up so that the TLS handshakes spread over the threads */
    s->batch = s->nthreads > 1 ? 8 : 16;
    signal(SIGPIPE, SIG_IGN);
    threads_log_apply(s->log, c);
    s->ls = listeners_bind(c, lg, err, errlen);
    if (s->ls == NULL)
        goto fail;
    s->broker = broker_new(s->loop, c, lg, err, errlen);
    if (s->broker == NULL)
        goto fail;
    c = NULL; /* the broker's now */
    s->ps = persist_sched_new(s->loop, s->broker, lg, broker_conf(s->broker));
    if (s->ps && persist_sched_load(s->ps, err, errlen) < 0)
        goto fail;
    if (s->nthreads > 1) {
        s->hub = hub_new(s->nthreads);
        broker_set_hub(s->broker, s->hub, 0);
        broker_set_tls_sync(s->broker, tls_sync_cb, s);
        s->threads = threads_new(s->nthreads, s->hub, s->conf_path, port0,
                                 s->ls, s->batch, lg, err, errlen);
        if (s->threads == NULL)
            goto fail;
    }
    if (broker_conf(s->broker)->cluster_nats) {
        s->cluster = cluster_new(s->loop, s->broker, lg, err, errlen);
        if (s->cluster == NULL)
            goto fail;
    }
    if (s->ps)
        persist_sched_start(s->ps);
    if (http_ops_wanted(broker_conf(s->broker)))
        s->http = http_ops_new(s->loop, s->broker, s->threads, s->nthreads, lg);
    s->acc = acceptor_new(s->loop, s->ls, accept_cb, s, lg, s->batch);
    ev_signal_init(&s->sig_term, stop_cb, SIGTERM);
    ev_signal_init(&s->sig_int, stop_cb, SIGINT);
    ev_signal_init(&s->sig_hup, hup_cb, SIGHUP);
    ev_signal_init(&s->sig_usr1, usr1_cb, SIGUSR1);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s->sig_usr1.data = s;
    ev_signal_start(s->loop, &s->sig_term);
    ev_signal_start(s->loop, &s->sig_int);
    ev_signal_start(s->loop, &s->sig_hup);
    ev_signal_start(s->loop, &s->sig_usr1);
    ev_timer_init(&s->tick, tick_cb, 1.0, 1.0);
    s->tick.data = s;
    ev_timer_start(s->loop, &s->tick);
    return s;
fail:
    conf_free(c);
    server_free(s);
    return NULL;
}

int server_run(struct server *s)
{
    const struct conf *c = broker_conf(s->broker);

    LOG_N(s->log, "mqttd version %s starting", MQTTD_VERSION);
    LOG_N(s->log, "Config loaded from %s.",
          s->conf_path ? s->conf_path : "(built-in defaults)");
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (l->unix_path)
            LOG_N(s->log, "Opening unix listen socket on %s.", l->unix_path);
        else
            LOG_N(s->log, "Opening %s%s listen socket on %s port %u%s.",
                  l->protocol == CONF_PROTO_HTTP
                      ? (l->tls_enabled ? "HTTPS (operations)"
                                        : "HTTP (operations)")
                  : l->tls_enabled ? "TLS"
                                   : "plain",
                  l->protocol == CONF_PROTO_WEBSOCKETS ? " websockets" : "",
                  l->address ? l->address : "all addresses", l->port,
                  l->tls_enabled
                      ? (l->tls.min_version == 0x0304 ? " (TLS 1.3)"
                                                      : " (TLS 1.2, 1.3)")
                      : "");
    }
    if (s->ps && c->persistence_sync)
        LOG_N(s->log,
              "Persistence: %s, saved before every QoS 1/2 acknowledgement "
              "(persistence_sync always).",
              persist_sched_path(s->ps));
    else if (s->ps)
        LOG_N(s->log, "Persistence: snapshot to %s every %u s%s.",
              persist_sched_path(s->ps), c->autosave_interval,
              c->autosave_on_changes ? " (counted in changes)" : "");
    else
        LOG_N(s->log, "Persistence: disabled.");
    if (s->threads) {
        LOG_N(s->log, "Running %u event-loop threads.", s->nthreads);
        if (threads_start(s->threads) < 0) {
            threads_join(s->threads);
            return 1;
        }
    }
    s->bridges = bridges_new(s->loop, s->broker);
    if (s->http)
        http_ops_set_bridges(s->http, s->bridges);
    sysd_notify("READY=1\nSTATUS=running");
    if (s->http)
        http_ops_set_ready(s->http, true); /* bound, loaded, running */
    watchdog_start(s);
    ev_run(s->loop, 0);
    /* let the final DISCONNECTs and closes run */
    ev_run(s->loop, EVRUN_NOWAIT);
    if (s->threads)
        threads_join(s->threads);
    if (s->ps && persist_sched_final(s->ps) < 0)
        return 1;
    return 0;
}

void server_free(struct server *s)
{
    if (s == NULL)
        return;
    acceptor_free(s->acc);
    http_ops_free(s->http);
    ev_timer_stop(s->loop, &s->tick);
    ev_timer_stop(s->loop, &s->grace);
    if (ev_is_active(&s->watchdog)) {
        ev_ref(s->loop);
        ev_timer_stop(s->loop, &s->watchdog);
    }
    ev_signal_stop(s->loop, &s->sig_term);
    ev_signal_stop(s->loop, &s->sig_int);
    ev_signal_stop(s->loop, &s->sig_hup);
    ev_signal_stop(s->loop, &s->sig_usr1);
    persist_sched_free(s->ps);
    threads_free(s->threads);
    bridges_free(s->bridges); /* after http_ops_free, which borrowed them */
    cluster_free(s->cluster); /* before the broker it hooks */
    broker_free(s->broker);
    hub_free(s->hub);
    listeners_free(s->ls);
    free(s->conf_path);
    free(s);
}
