/*
 * server.c - owns the libev loop: listeners and the accept4 loop (EMFILE
 * handled with a reserve fd, never a busy loop), signals, the one-second
 * housekeeping timer, configuration reload, and systemd notifications.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "broker.h"
#include "conf.h"
#include "hub.h"
#include "log.h"
#include "persist.h"
#include "util.h"

#define MAX_SOCKS_PER_LISTENER 4

/* What an accepting loop needs: shard 0 (the server itself) or a worker. */
struct acceptor {
    struct broker *broker;
    struct log *log;
    int reserve_fd; /* spare fd, released on EMFILE */
    unsigned batch; /* connections accepted per wake-up */
    struct log_ratelimit emfile_rl;
};

struct lsock {
    struct acceptor *acc;
    size_t li;
    int fd;
    bool nodelay;
    ev_io w;
    ev_timer retry; /* EMFILE back-off */
};

/* threads > 1: one more event loop, its broker shard and its own log. */
struct worker {
    struct server *srv;
    unsigned idx;
    struct ev_loop *loop;
    struct log *log;
    struct acceptor acc;
    struct lsock *socks; /* its watchers on the server's listening fds */
    ev_timer tick;
    ev_async ctl;
    unsigned ctl_req; /* W_* (atomic) */
    int64_t beat_ms;  /* monotonic ms of its last tick (atomic) */
    pthread_t thread;
    bool started;
};

enum { W_STOP = 1u, W_RELOAD = 2u, W_TLS = 4u };

struct server {
    struct ev_loop *loop;
    struct log *log;
    struct broker *broker;
    char *conf_path;
    struct lsock *socks;
    size_t nsocks;
    struct acceptor acc;
    struct hub *hub;        /* threads > 1 */
    struct worker *workers; /* [1..nthreads) */
    unsigned nthreads;
    /* workers_sync: requests the main thread waits for */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    unsigned sync_left;
    int64_t wd_stale_ms; /* a worker silent this long withholds the ping */
    bool wd_withheld;
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    ev_timer tick;
    ev_timer watchdog;  /* WATCHDOG=1 at half of WATCHDOG_USEC */
    ev_prepare durable; /* persistence_sync always: save, then ack */
    struct log_ratelimit save_rl;
    /* persistence */
    char *db_path; /* NULL when persistence is off */
    double last_save;
    uint64_t changes_at_save;
    pid_t save_pid;  /* background save in progress */
    double retry_at; /* after a failed save: not before this */
    ev_child save_child;
};

static void worker_request(struct worker *w, unsigned req);
static void workers_sync(struct server *s, unsigned req);

/* ---- systemd notify (the sd_notify protocol, no libsystemd needed) ----- */

static void notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}

/* ---- listeners -------------------------------------------------------- */

static int bind_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 1024) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "cannot listen on unix socket %s: %s", path,
             strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void add_sock(struct server *s, size_t li, int fd, bool nodelay)
{
    struct lsock *ls;

    s->socks = xreallocarray(s->socks, s->nsocks + 1, sizeof(*s->socks));
    ls = &s->socks[s->nsocks++];
    memset(ls, 0, sizeof(*ls));
    ls->acc = &s->acc;
    ls->li = li;
    ls->fd = fd;
    ls->nodelay = nodelay;
}

/* Bind listener li: every address the host resolves to. */
static int bind_listener(struct server *s, const struct conf *c, size_t li,
                         char *err, size_t errlen)
{
    const struct conf_listener *l = &c->listeners[li];
    struct addrinfo hints, *res = NULL, *ai;
    char port[8];
    int n = 0, gai, last_errno = 0;

    if (l->unix_path) {
        int fd = bind_unix(l->unix_path, err, errlen);
        if (fd < 0)
            return -1;
        add_sock(s, li, fd, false);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = l->socket_domain;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    snprintf(port, sizeof(port), "%u", l->port);
    gai = getaddrinfo(l->address, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s:%d: cannot resolve listener address '%s': %s",
                 l->src ? l->src : "-", l->line, l->address ? l->address : "*",
                 gai_strerror(gai));
        return -1;
    }
    for (ai = res; ai && n < MAX_SOCKS_PER_LISTENER; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
            last_errno = errno;
            close(fd);
            continue;
        }
        add_sock(s, li, fd, c->set_tcp_nodelay);
        n++;
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, errlen, "%s:%d: cannot listen on %s port %u: %s",
                 l->src ? l->src : "-", l->line, l->address ? l->address : "*",
                 l->port, strerror(last_errno ? last_errno : EADDRNOTAVAIL));
        return -1;
    }
    return 0;
}

/* pid_is_self: true when the decimal string pid (LISTEN_PID, WATCHDOG_PID)
 * names this process; garbage or an out-of-range number is "not us". */
static bool pid_is_self(const char *pid)
{
    long long v;
    const char *es;

    return util_strtonum(pid, 1, INT_MAX, &v, &es) == 0 &&
           v == (long long)getpid();
}

/*
 * systemd socket activation: LISTEN_PID/LISTEN_FDS name inherited listening
 * sockets starting at fd 3. Each is matched to the listener with the same
 * port (TCP) or path (unix); those listeners are not bound again. Returns
 * the number of sockets taken, or -1 (err filled) when one matches no
 * listener.
 */
static int take_inherited(struct server *s, const struct conf *c, bool *taken,
                          char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    long long n;
    const char *es;

    if (pid == NULL || fds == NULL || !pid_is_self(pid))
        return 0;
    if (util_strtonum(fds, 0, 1024, &n, &es) < 0) {
        snprintf(err, errlen, "invalid LISTEN_FDS '%s'", fds);
        return -1;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (int fd = 3; fd < 3 + (int)n; fd++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        size_t li;
        int fl;

        /* zeroed: sun_path of a 108-byte path has no NUL, and the
         * analyzer cannot see getsockname() fill it (glibc's
         * transparent __SOCKADDR_ARG) */
        memset(&ss, 0, sizeof(ss));
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
            snprintf(err, errlen, "inherited fd %d: %s", fd, strerror(errno));
            return -1;
        }
        for (li = 0; li < c->nlisteners; li++) {
            const struct conf_listener *l = &c->listeners[li];
            if (ss.ss_family == AF_UNIX) {
                const struct sockaddr_un *su = (const struct sockaddr_un *)&ss;
                if (l->unix_path && strcmp(l->unix_path, su->sun_path) == 0)
                    break;
            } else if (!l->unix_path) {
                uint16_t port =
                    ss.ss_family == AF_INET
                        ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                        : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                if (port == l->port)
                    break;
            }
        }
        if (li == c->nlisteners) {
            snprintf(err, errlen,
                     "inherited socket (fd %d) matches no listener in the "
                     "configuration",
                     fd);
            return -1;
        }
        fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        add_sock(s, li, fd, c->set_tcp_nodelay && ss.ss_family != AF_UNIX);
        taken[li] = true;
        LOG_N(s->log, "Using socket-activated listener (fd %d) for port %u%s.",
              fd, (unsigned)c->listeners[li].port,
              ss.ss_family == AF_UNIX ? " (unix)" : "");
    }
    return (int)n;
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lsock *ls = w->data;

    (void)revents;
    ev_io_start(loop, &ls->w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lsock *ls = w->data;
    struct acceptor *a = ls->acc;

    (void)revents;
    for (unsigned i = 0; i < a->batch; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd;

        memset(&ss, 0, sizeof(ss)); /* see take_inherited() */
        fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            unsigned sup;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                /* Free the reserve fd, accept and drop one connection so
                 * the peer is not left hanging, then pause accepting for a
                 * moment: never spin on a level-triggered EMFILE. */
                int e = errno; /* close/accept4/open below clobber it */

                if (a->reserve_fd >= 0) {
                    close(a->reserve_fd);
                    a->reserve_fd = -1;
                    fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
                    if (fd >= 0)
                        close(fd);
                    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
                if (log_ratelimit_ok(&a->emfile_rl, 1, 5.0, &sup))
                    LOG_W(a->log,
                          "Out of file descriptors (%s): refusing new "
                          "connections for 100 ms.",
                          strerror(e));
                ev_io_stop(loop, &ls->w);
                ev_timer_set(&ls->retry, 0.1, 0.0);
                ev_timer_start(loop, &ls->retry);
                return;
            }
            LOG_W(a->log, "accept failed: %s", strerror(errno));
            return;
        }
        if (ls->nodelay && ss.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        broker_accept(a->broker, ls->li, fd, (struct sockaddr *)&ss, sl);
    }
}

/* ---- signals and timers ------------------------------------------------ */

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = w->data;

    (void)revents;
    LOG_N(s->log, "mqttd version %s terminating", MQTTD_VERSION);
    notify("STOPPING=1");
    for (size_t i = 0; i < s->nsocks; i++)
        ev_io_stop(loop, &s->socks[i].w);
    broker_shutdown(s->broker);
    for (unsigned i = 1; i < s->nthreads; i++)
        worker_request(&s->workers[i], W_STOP);
    ev_break(loop, EVBREAK_ALL);
}

static void reload_err(void *arg, const char *file, int line, const char *msg)
{
    struct server *s = arg;

    if (line > 0)
        LOG_E(s->log, "%s:%d: %s", file, line, msg);
    else
        LOG_E(s->log, "%s: %s", file, msg);
}

static void log_apply(struct log *lg, const struct conf *c);

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = w->data;
    struct conf *c;
    char err[4096];

    (void)loop;
    (void)revents;
    notify("RELOADING=1");
    LOG_N(s->log, "Reloading configuration%s%s.", s->conf_path ? " from " : "",
          s->conf_path ? s->conf_path : "");
    if (s->conf_path == NULL) {
        c = conf_default(broker_conf(s->broker)->listeners[0].port);
    } else {
        c = conf_load(s->conf_path, reload_err, s);
    }
    if (c == NULL) {
        LOG_E(s->log, "Reload failed: configuration has errors; keeping the "
                      "running configuration.");
        notify("READY=1\nSTATUS=reload failed, old configuration kept");
        return;
    }
    log_apply(s->log, c);
    if (broker_reload(s->broker, c, err, sizeof(err)) < 0) {
        char *line = err, *nl;
        for (; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            LOG_E(s->log, "%s", line);
        }
        LOG_E(s->log, "Reload failed; keeping the running configuration.");
        log_apply(s->log, broker_conf(s->broker));
        notify("READY=1\nSTATUS=reload failed, old configuration kept");
        return;
    }
    if (s->nthreads > 1)
        workers_sync(s, W_RELOAD);
    LOG_N(s->log, "Configuration reloaded.");
    notify("READY=1\nSTATUS=running, configuration reloaded");
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ping systemd only while every thread is alive: a worker whose
 * one-second tick stopped (a wedged loop) withholds the ping, so systemd's
 * WatchdogSec restarts the service. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = w->data;
    int64_t now = mono_ms();

    (void)loop;
    (void)revents;
    for (unsigned i = 1; i < s->nthreads; i++) {
        struct worker *wk = &s->workers[i];
        int64_t age;
        if (!wk->started)
            continue;
        age = now - __atomic_load_n(&wk->beat_ms, __ATOMIC_RELAXED);
        if (age > s->wd_stale_ms) {
            if (!s->wd_withheld)
                LOG_E(s->log,
                      "Thread %u has not run for %.1f s: withholding the "
                      "systemd watchdog ping.",
                      i, (double)age / 1000.0);
            s->wd_withheld = true;
            return;
        }
    }
    if (s->wd_withheld)
        LOG_N(s->log, "Every thread runs again: watchdog pings resumed.");
    s->wd_withheld = false;
    notify("WATCHDOG=1");
}

/* systemd's WatchdogSec: ping at half the interval, only for our pid. */
static void watchdog_start(struct server *s)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long v;
    const char *es;

    if (usec == NULL || util_strtonum(usec, 1, 86400LL * 1000000, &v, &es) < 0)
        return;
    if (pid && !pid_is_self(pid))
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

/* ---- persistence ------------------------------------------------------- */

static char *db_path(const struct conf *c)
{
    const char *dir = c->persistence_location ? c->persistence_location : "";
    const char *file = c->persistence_file ? c->persistence_file : "mqttd.db";
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    if (dir[0] == '\0')
        snprintf(p, n, "%s", file);
    else
        snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 file);
    return p;
}

static void save_done_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct server *s = w->data;

    (void)revents;
    ev_child_stop(loop, w);
    s->save_pid = 0;
    if (WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0)
        LOG_I(s->log, "Saved the persistence file %s.", s->db_path);
    else {
        LOG_E(s->log,
              "Saving the persistence file %s failed; the previous file "
              "is kept; retrying.",
              s->db_path);
        /* the changes since the last good save are still unsaved */
        s->changes_at_save = 0;
        s->last_save = 0;
        {
            /* retry within the autosave interval, at most every 10 s */
            uint32_t iv = broker_conf(s->broker)->autosave_interval;
            s->retry_at = ev_now(loop) + (iv > 0 && iv < 10 ? iv : 10);
        }
    }
}

/* Start a background save unless one is running. */
static void save_now(struct server *s, const char *why)
{
    char err[512];
    pid_t pid;

    if (s->db_path == NULL || s->save_pid > 0)
        return;
    LOG_D(s->log, "Saving persistence file (%s).", why);
    s->last_save = ev_now(s->loop);
    s->changes_at_save = broker_stats(s->broker)->changes;
    pid = persist_save_bg(s->broker, s->db_path, err, sizeof(err));
    if (pid < 0) {
        LOG_E(s->log, "Background save failed to start: %s", err);
        return;
    }
    s->save_pid = pid;
    ev_child_set(&s->save_child, pid, 0);
    ev_child_start(s->loop, &s->save_child);
}

/*
 * persistence_sync always: once per loop iteration, before any output is
 * written (this prepare watcher has the highest priority), save the state
 * synchronously if acknowledgements are waiting, then release them. One
 * fsync covers every message of the iteration (group commit).
 */
static void durable_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct server *s = w->data;
    char err[512];
    unsigned sup;
    bool ok;

    (void)loop;
    (void)revents;
    if (broker_pending_acks(s->broker) == 0)
        return;
    ok = persist_save(s->broker, s->db_path, err, sizeof(err)) == 0;
    if (!ok && log_ratelimit_ok(&s->save_rl, 1, 5.0, &sup))
        LOG_E(s->log,
              "persistence_sync always: saving %s failed (%s); disconnecting "
              "the publishers whose messages are not stored.",
              s->db_path, err);
    s->last_save = ev_now(s->loop);
    s->changes_at_save = broker_stats(s->broker)->changes;
    broker_flush_acks(s->broker, ok);
}

static void usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = w->data;

    (void)loop;
    (void)revents;
    if (s->db_path == NULL) {
        LOG_I(s->log, "SIGUSR1: persistence is not enabled; nothing to save.");
        return;
    }
    save_now(s, "SIGUSR1");
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = w->data;

    (void)loop;
    (void)revents;
    broker_tick(s->broker);
    if (s->db_path && ev_now(s->loop) >= s->retry_at) {
        const struct conf *c = broker_conf(s->broker);
        uint64_t changes = broker_stats(s->broker)->changes;
        if (c->autosave_on_changes) {
            if (c->autosave_interval &&
                changes - s->changes_at_save >= c->autosave_interval)
                save_now(s, "autosave_on_changes");
        } else if (c->autosave_interval &&
                   ev_now(s->loop) - s->last_save >= c->autosave_interval &&
                   changes != s->changes_at_save) {
            save_now(s, "autosave_interval");
        }
    }
}

/* ---- worker threads (threads > 1) ------------------------------------ */

static void log_apply(struct log *lg, const struct conf *c)
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

static void worker_request(struct worker *w, unsigned req)
{
    if (!w->started)
        return;
    __atomic_or_fetch(&w->ctl_req, req, __ATOMIC_RELEASE);
    ev_async_send(w->loop, &w->ctl);
}

static void worker_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;

    (void)loop;
    (void)revents;
    __atomic_store_n(&w->beat_ms, mono_ms(), __ATOMIC_RELAXED);
    broker_tick(w->acc.broker);
}

/* Reload on the worker's own thread: the server validated the same file
 * a moment ago, so errors here are unexpected (and logged). */
static void worker_reload(struct worker *w)
{
    struct server *s = w->srv;
    struct conf *c;
    char err[4096];

    if (s->conf_path == NULL)
        return;
    c = conf_load(s->conf_path, NULL, NULL);
    if (c == NULL) {
        LOG_E(w->log, "thread %u: reload failed; keeping its configuration.",
              w->idx);
        return;
    }
    log_apply(w->log, c);
    if (broker_reload(w->acc.broker, c, err, sizeof(err)) < 0)
        LOG_E(w->log, "thread %u: reload failed: %s", w->idx, err);
}

static void worker_ctl_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    unsigned req = __atomic_exchange_n(&w->ctl_req, 0u, __ATOMIC_ACQUIRE);

    (void)revents;
    if (req & W_RELOAD)
        worker_reload(w);
    if (req & W_TLS)
        broker_tls_check(w->acc.broker);
    if (req & (W_RELOAD | W_TLS)) {
        struct server *s = w->srv;
        pthread_mutex_lock(&s->sync_mu);
        if (s->sync_left > 0)
            s->sync_left--;
        pthread_cond_signal(&s->sync_cv);
        pthread_mutex_unlock(&s->sync_mu);
    }
    if (req & W_STOP) {
        for (size_t i = 0; i < w->srv->nsocks; i++) {
            ev_io_stop(loop, &w->socks[i].w);
            ev_timer_stop(loop, &w->socks[i].retry);
        }
        broker_shutdown(w->acc.broker);
        ev_break(loop, EVBREAK_ALL);
    }
}

/* Ask every worker to do 'req' and wait (bounded) until they did: a
 * reload is announced once every thread runs with it. */
static void workers_sync(struct server *s, unsigned req)
{
    struct timespec until;
    unsigned n = 0;

    pthread_mutex_lock(&s->sync_mu);
    for (unsigned i = 1; i < s->nthreads; i++)
        n += s->workers[i].started;
    s->sync_left = n;
    pthread_mutex_unlock(&s->sync_mu);
    for (unsigned i = 1; i < s->nthreads; i++)
        worker_request(&s->workers[i], req);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->sync_mu);
    while (s->sync_left > 0) {
        if (pthread_cond_timedwait(&s->sync_cv, &s->sync_mu, &until) != 0) {
            LOG_W(s->log,
                  "%u thread(s) did not confirm the reload within "
                  "10 s.",
                  s->sync_left);
            break;
        }
    }
    pthread_mutex_unlock(&s->sync_mu);
}

static void tls_sync_cb(void *ud)
{
    workers_sync(ud, W_TLS);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    ev_run(w->loop, 0);
    /* let the final DISCONNECTs and closes run */
    ev_run(w->loop, EVRUN_NOWAIT);
    return NULL;
}

/* Build worker idx (on the main thread; its loop runs later on its own). */
static int worker_init(struct server *s, struct worker *w, unsigned idx,
                       char *err, size_t errlen)
{
    struct conf *c;

    w->srv = s;
    w->idx = idx;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (w->loop == NULL) {
        snprintf(err, errlen, "cannot create the event loop of thread %u", idx);
        return -1;
    }
    w->log = log_new();
    c = s->conf_path ? conf_load(s->conf_path, NULL, NULL)
                     : conf_default(broker_conf(s->broker)->listeners[0].port);
    if (c == NULL) {
        snprintf(err, errlen, "thread %u: the configuration failed to load",
                 idx);
        return -1;
    }
    log_apply(w->log, c);
    w->acc.broker = broker_new(w->loop, c, w->log, err, errlen);
    if (w->acc.broker == NULL)
        return -1;
    w->acc.log = w->log;
    w->acc.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->acc.batch = s->acc.batch;
    broker_set_hub(w->acc.broker, s->hub, idx);
    w->socks = xcalloc(s->nsocks ? s->nsocks : 1, sizeof(*w->socks));
    for (size_t i = 0; i < s->nsocks; i++) {
        struct lsock *ls = &w->socks[i];
        *ls = s->socks[i];
        ls->acc = &w->acc;
        ev_io_init(&ls->w, accept_cb, ls->fd, EV_READ);
        ls->w.data = ls;
        ev_init(&ls->retry, retry_cb);
        ls->retry.data = ls;
        ev_io_start(w->loop, &ls->w);
    }
    ev_timer_init(&w->tick, worker_tick_cb, 1.0, 1.0);
    w->tick.data = w;
    ev_timer_start(w->loop, &w->tick);
    ev_async_init(&w->ctl, worker_ctl_cb);
    w->ctl.data = w;
    ev_async_start(w->loop, &w->ctl);
    return 0;
}

static int workers_start(struct server *s)
{
    sigset_t all, old;

    /* workers take no signals: the main loop's signalfd gets them all */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 1; i < s->nthreads; i++) {
        struct worker *w = &s->workers[i];
        __atomic_store_n(&w->beat_ms, mono_ms(), __ATOMIC_RELAXED);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            LOG_E(s->log, "cannot start thread %u: %s", i, strerror(errno));
            return -1;
        }
        w->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

static void workers_join(struct server *s)
{
    for (unsigned i = 1; i < s->nthreads; i++) {
        struct worker *w = &s->workers[i];
        if (w->started) {
            worker_request(w, W_STOP);
            pthread_join(w->thread, NULL);
            w->started = false;
        }
    }
}

static void worker_free(struct worker *w)
{
    if (w->loop == NULL)
        return;
    for (size_t i = 0; w->socks && i < w->srv->nsocks; i++) {
        ev_io_stop(w->loop, &w->socks[i].w);
        ev_timer_stop(w->loop, &w->socks[i].retry);
    }
    free(w->socks);
    ev_timer_stop(w->loop, &w->tick);
    ev_async_stop(w->loop, &w->ctl);
    broker_free(w->acc.broker);
    if (w->acc.reserve_fd >= 0)
        close(w->acc.reserve_fd);
    log_free(w->log);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
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

    s->loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
    s->log = lg;
    s->conf_path = conf_path ? xstrdup(conf_path) : NULL;
    s->acc.log = lg;
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_cond_init(&s->sync_cv, NULL);
    s->acc.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->nthreads = threads_wanted(c);
    /* with several loops on one listening socket, take a few connections
     * per wake-up so that the TLS handshakes spread over the threads */
    s->acc.batch = s->nthreads > 1 ? 8 : 256;
    signal(SIGPIPE, SIG_IGN);
    log_apply(s->log, c);
    {
        bool *taken = xcalloc(c->nlisteners ? c->nlisteners : 1, 1);
        int rc = take_inherited(s, c, taken, err, errlen);
        for (size_t i = 0; rc >= 0 && i < c->nlisteners; i++) {
            if (!taken[i] && bind_listener(s, c, i, err, errlen) < 0)
                rc = -1;
        }
        free(taken);
        if (rc < 0)
            goto fail;
    }
    if (c->persistence)
        s->db_path = db_path(c);
    s->broker = broker_new(s->loop, c, lg, err, errlen);
    if (s->broker == NULL)
        goto fail;
    if (s->db_path && persist_load(s->broker, s->db_path, err, errlen) < 0) {
        broker_free(s->broker);
        s->broker = NULL;
        goto fail_broker_freed;
    }
    s->acc.broker = s->broker;
    if (s->nthreads > 1) {
        s->hub = hub_new(s->nthreads);
        broker_set_hub(s->broker, s->hub, 0);
        broker_set_tls_sync(s->broker, tls_sync_cb, s);
        s->workers = xcalloc(s->nthreads, sizeof(*s->workers));
        for (unsigned i = 1; i < s->nthreads; i++) {
            if (worker_init(s, &s->workers[i], i, err, errlen) < 0) {
                server_free(s);
                return NULL;
            }
        }
    }
    s->last_save = ev_now(s->loop);
    s->changes_at_save = broker_stats(s->broker)->changes;
    ev_init(&s->save_child, save_done_cb);
    s->save_child.data = s;
    if (s->db_path && c->persistence_sync) {
        ev_prepare_init(&s->durable, durable_cb);
        ev_set_priority(&s->durable, EV_MAXPRI);
        s->durable.data = s;
        ev_prepare_start(s->loop, &s->durable);
        ev_unref(s->loop);
    }
    for (size_t i = 0; i < s->nsocks; i++) {
        struct lsock *ls = &s->socks[i];
        ev_io_init(&ls->w, accept_cb, ls->fd, EV_READ);
        ls->w.data = ls;
        ev_init(&ls->retry, retry_cb);
        ls->retry.data = ls;
        ev_io_start(s->loop, &ls->w);
    }
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
fail_broker_freed:
    free(s->db_path);
    for (size_t i = 0; i < s->nsocks; i++)
        close(s->socks[i].fd);
    free(s->socks);
    if (s->acc.reserve_fd >= 0)
        close(s->acc.reserve_fd);
    free(s->conf_path);
    free(s);
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
            LOG_N(s->log, "Opening %s listen socket on %s port %u%s.",
                  l->tls_enabled ? "TLS" : "plain",
                  l->address ? l->address : "all addresses", l->port,
                  l->tls_enabled
                      ? (l->tls.min_version == 0x0304 ? " (TLS 1.3)"
                                                      : " (TLS 1.2, 1.3)")
                      : "");
    }
    if (s->db_path && c->persistence_sync)
        LOG_N(s->log,
              "Persistence: %s, saved before every QoS 1/2 acknowledgement "
              "(persistence_sync always).",
              s->db_path);
    else if (s->db_path)
        LOG_N(s->log, "Persistence: snapshot to %s every %u s%s.", s->db_path,
              c->autosave_interval,
              c->autosave_on_changes ? " (counted in changes)" : "");
    else
        LOG_N(s->log, "Persistence: disabled.");
    if (s->nthreads > 1) {
        LOG_N(s->log, "Running %u event-loop threads.", s->nthreads);
        if (workers_start(s) < 0) {
            workers_join(s);
            return 1;
        }
    }
    notify("READY=1\nSTATUS=running");
    watchdog_start(s);
    ev_run(s->loop, 0);
    /* let the final DISCONNECTs and closes run */
    ev_run(s->loop, EVRUN_NOWAIT);
    workers_join(s);
    if (s->db_path) {
        char err[512];
        if (s->save_pid > 0) {
            int st;
            (void)waitpid(s->save_pid, &st, 0);
            s->save_pid = 0;
        }
        if (persist_save(s->broker, s->db_path, err, sizeof(err)) < 0) {
            LOG_E(s->log, "Saving %s at shutdown failed: %s", s->db_path, err);
            return 1;
        }
        LOG_N(s->log, "Saved the persistence file %s.", s->db_path);
    }
    return 0;
}

void server_free(struct server *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nsocks; i++) {
        ev_io_stop(s->loop, &s->socks[i].w);
        ev_timer_stop(s->loop, &s->socks[i].retry);
        close(s->socks[i].fd);
    }
    free(s->socks);
    ev_timer_stop(s->loop, &s->tick);
    if (ev_is_active(&s->durable)) {
        ev_ref(s->loop);
        ev_prepare_stop(s->loop, &s->durable);
    }
    if (ev_is_active(&s->watchdog)) {
        ev_ref(s->loop);
        ev_timer_stop(s->loop, &s->watchdog);
    }
    ev_signal_stop(s->loop, &s->sig_term);
    ev_signal_stop(s->loop, &s->sig_int);
    ev_signal_stop(s->loop, &s->sig_hup);
    ev_signal_stop(s->loop, &s->sig_usr1);
    if (s->save_pid > 0)
        ev_child_stop(s->loop, &s->save_child);
    workers_join(s);
    for (unsigned i = 1; s->workers && i < s->nthreads; i++)
        worker_free(&s->workers[i]);
    free(s->workers);
    broker_free(s->broker);
    hub_free(s->hub);
    if (s->acc.reserve_fd >= 0)
        close(s->acc.reserve_fd);
    free(s->db_path);
    free(s->conf_path);
    free(s);
}
