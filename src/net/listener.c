/*
 * listener.c - binding the listening sockets (or taking them from systemd)
 * and the accept4 loops that hand connections to the acceptor's callback
 * (see listener.h).
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "log.h"
#include "sysd.h"
#include "util.h"

#define MAX_SOCKS_PER_LISTENER 4

struct lsock {
    size_t li;
    int fd;
    bool nodelay;
    unsigned port;
    /* max_connection_rate, shared by every thread's acceptor (atomics):
     * at most 'rate' connections accepted in the second 'win' */
    uint32_t rate; /* 0 = unlimited */
    int64_t win;
    uint32_t count;
};

struct listeners {
    struct lsock *v;
    size_t n;
};

/* One socket's watchers in one acceptor. */
struct awatch {
    struct acceptor *acc;
    struct lsock *ls;
    ev_io w;
    ev_timer retry; /* EMFILE back-off */
};

struct acceptor {
    struct ev_loop *loop;
    listener_accept_fn fn; /* takes every accepted fd */
    void *ud;
    struct log *log;
    int reserve_fd; /* spare fd, released on EMFILE */
    unsigned batch; /* connections accepted per wake-up */
    struct log_ratelimit emfile_rl;
    struct log_ratelimit rate_rl;
    struct awatch *w;
    size_t n;
};

/* ---- binding ------------------------------------------------------------ */

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

static void add_sock(struct listeners *ls, size_t li, int fd, bool nodelay)
{
    struct lsock *s;

    ls->v = xreallocarray(ls->v, ls->n + 1, sizeof(*ls->v));
    s = &ls->v[ls->n++];
    memset(s, 0, sizeof(*s));
    s->li = li;
    s->fd = fd;
    s->nodelay = nodelay;
}

/* Bind listener li: every address the host resolves to. */
static int bind_listener(struct listeners *ls, const struct conf *c, size_t li,
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
        add_sock(ls, li, fd, false);
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
        add_sock(ls, li, fd, c->set_tcp_nodelay);
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

/* inherited_score: how well the inherited socket 'ss' fits listener 'l':
 * 0 no match (other port or path), 1 same port, 2 same port and the
 * listener's address is the socket's own (so two sockets on one port, say
 * 127.0.0.1:1883 and [::1]:1883, go to the two listeners with those
 * addresses), 3 same unix path. */
static int inherited_score(const struct conf_listener *l,
                           const struct sockaddr_storage *ss)
{
    unsigned char want[sizeof(struct in6_addr)];
    uint16_t port;

    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)ss;
        return l->unix_path && strcmp(l->unix_path, su->sun_path) == 0 ? 3 : 0;
    }
    if (l->unix_path)
        return 0;
    port = ss->ss_family == AF_INET
               ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
               : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    if (port != l->port)
        return 0;
    if (l->address == NULL)
        return 1;
    if (ss->ss_family == AF_INET && inet_pton(AF_INET, l->address, want) == 1 &&
        memcmp(want, &((const struct sockaddr_in *)ss)->sin_addr, 4) == 0)
        return 2;
    if (ss->ss_family == AF_INET6 &&
        inet_pton(AF_INET6, l->address, want) == 1 &&
        memcmp(want, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16) == 0)
        return 2;
    return 1;
}

/* match_inherited: the listener an inherited socket belongs to: the best
 * inherited_score, and among equals one that has no inherited socket yet
 * (else the first). Returns c->nlisteners when none matches. */
static size_t match_inherited(const struct conf *c,
                              const struct sockaddr_storage *ss,
                              const bool *taken)
{
    size_t best = c->nlisteners;
    int best_score = 0;

    for (size_t li = 0; li < c->nlisteners; li++) {
        /* a free listener ranks above a taken one of the same score */
        int sc = inherited_score(&c->listeners[li], ss) * 2;
        if (sc > 0 && !taken[li])
            sc++;
        if (sc > best_score) {
            best_score = sc;
            best = li;
        }
    }
    return best;
}

/*
 * systemd socket activation: LISTEN_PID/LISTEN_FDS name inherited listening
 * sockets starting at fd 3. Each is matched to the listener with the same
 * port (TCP; preferring the same address, then a listener not matched yet)
 * or path (unix); those listeners are not bound again. Returns
 * the number of sockets taken, or -1 (err filled) when one matches no
 * listener.
 */
static int take_inherited(struct listeners *ls, const struct conf *c,
                          struct log *lg, bool *taken, char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    long long n;
    const char *es;

    if (pid == NULL || fds == NULL || !sysd_pid_is_self(pid))
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
        li = match_inherited(c, &ss, taken);
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
        add_sock(ls, li, fd, c->set_tcp_nodelay && ss.ss_family != AF_UNIX);
        taken[li] = true;
        LOG_N(lg, "Using socket-activated listener (fd %d) for port %u%s.", fd,
              (unsigned)c->listeners[li].port,
              ss.ss_family == AF_UNIX ? " (unix)" : "");
    }
    return (int)n;
}

struct listeners *listeners_bind(const struct conf *c, struct log *lg,
                                 char *err, size_t errlen)
{
    struct listeners *ls = xcalloc(1, sizeof(*ls));
    bool *taken = xcalloc(c->nlisteners ? c->nlisteners : 1, 1);
    int rc = take_inherited(ls, c, lg, taken, err, errlen);

    for (size_t i = 0; rc >= 0 && i < c->nlisteners; i++) {
        if (!taken[i] && bind_listener(ls, c, i, err, errlen) < 0)
            rc = -1;
    }
    free(taken);
    if (rc < 0) {
        listeners_free(ls);
        return NULL;
    }
    listeners_apply(ls, c);
    return ls;
}

void listeners_apply(struct listeners *ls, const struct conf *c)
{
    for (size_t i = 0; i < ls->n; i++) {
        struct lsock *s = &ls->v[i];

        if (s->li >= c->nlisteners)
            continue;
        s->port = c->listeners[s->li].port;
        __atomic_store_n(&s->rate, c->listeners[s->li].max_connection_rate,
                         __ATOMIC_RELAXED);
    }
}

void listeners_free(struct listeners *ls)
{
    if (ls == NULL)
        return;
    for (size_t i = 0; i < ls->n; i++)
        close(ls->v[i].fd);
    free(ls->v);
    free(ls);
}

/* ---- accepting ---------------------------------------------------------- */

/* At most this many backlog connections are dropped per EMFILE, so a
 * flood cannot hold the loop; the rest wait for the next round. */
#define SHED_MAX 4096

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct awatch *aw = w->data;
    struct acceptor *a = aw->acc;

    (void)revents;
    if (a->reserve_fd < 0) /* lost the race for it last time */
        a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ev_io_start(loop, &aw->w);
}

/* log_shed: one closed connection (dropped) or one EMFILE with nothing
 * to close, rate-limited to one line per 5 s with the count suppressed. */
static void log_shed(struct acceptor *a, int e, bool dropped)
{
    unsigned sup;

    if (!log_ratelimit_ok(&a->emfile_rl, 1, 5.0, &sup))
        return;
    LOG_W(a->log,
          "Out of file descriptors (%s, %u similar suppressed): %s; "
          "refusing new connections for 100 ms.",
          strerror(e), sup,
          dropped ? "closed a waiting connection at once"
                  : "no waiting connection");
}

/*
 * shed_backlog: out of descriptors (errno e). Free the reserve fd, then
 * accept and close every connection waiting in ls's backlog (until
 * EAGAIN, at most SHED_MAX) so no peer is left hanging without an answer,
 * and take the reserve fd again. The caller pauses accepting: EMFILE is
 * level-triggered and must never make the loop spin.
 */
static void shed_backlog(struct acceptor *a, const struct lsock *ls, int e)
{
    unsigned n = 0;

    if (a->reserve_fd >= 0) {
        close(a->reserve_fd);
        a->reserve_fd = -1;
        while (n < SHED_MAX) {
            int fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                break; /* EAGAIN, or EMFILE: another thread took the fd */
            }
            close(fd);
            n++;
            log_shed(a, e, true);
        }
        a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (n == 0)
        log_shed(a, e, false);
}

/*
 * rate_ok: one more connection on ls within max_connection_rate? Fixed
 * one-second windows shared by the threads: the first acceptor to see a
 * new second resets the count (a race at the boundary lets a few more
 * through, never a whole second's worth).
 */
static bool rate_ok(struct lsock *ls, double now)
{
    uint32_t rate = __atomic_load_n(&ls->rate, __ATOMIC_RELAXED);
    int64_t sec = (int64_t)now, win;

    if (rate == 0)
        return true;
    win = __atomic_load_n(&ls->win, __ATOMIC_RELAXED);
    if (win != sec &&
        __atomic_compare_exchange_n(&ls->win, &win, sec, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        __atomic_store_n(&ls->count, 0, __ATOMIC_RELAXED);
    return __atomic_add_fetch(&ls->count, 1, __ATOMIC_RELAXED) <= rate;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct awatch *aw = w->data;
    struct acceptor *a = aw->acc;
    struct lsock *ls = aw->ls;

    (void)revents;
    for (unsigned i = 0; i < a->batch; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd;

        memset(&ss, 0, sizeof(ss)); /* see take_inherited() */
        fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                shed_backlog(a, ls, errno);
                ev_io_stop(loop, &aw->w);
                ev_timer_set(&aw->retry, 0.1, 0.0);
                ev_timer_start(loop, &aw->retry);
                return;
            }
            LOG_W(a->log, "accept failed: %s", strerror(errno));
            return;
        }
        if (!rate_ok(ls, ev_now(loop))) {
            unsigned sup;

            close(fd); /* before any TLS work */
            if (log_ratelimit_ok(&a->rate_rl, 1, 1.0, &sup))
                LOG_N(a->log,
                      "Connection on listener %u refused: max_connection_rate "
                      "%u per second reached (%u more refused since the last "
                      "such line).",
                      ls->port, __atomic_load_n(&ls->rate, __ATOMIC_RELAXED),
                      sup);
            continue;
        }
        if (ls->nodelay && ss.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        a->fn(a->ud, ls->li, fd, (const struct sockaddr *)&ss, sl);
    }
}

struct acceptor *acceptor_new(struct ev_loop *loop, const struct listeners *ls,
                              listener_accept_fn fn, void *ud, struct log *lg,
                              unsigned batch)
{
    struct acceptor *a = xcalloc(1, sizeof(*a));

    a->loop = loop;
    a->fn = fn;
    a->ud = ud;
    a->log = lg;
    a->batch = batch;
    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    a->n = ls->n;
    a->w = xcalloc(ls->n ? ls->n : 1, sizeof(*a->w));
    for (size_t i = 0; i < ls->n; i++) {
        struct awatch *aw = &a->w[i];
        aw->acc = a;
        aw->ls = &ls->v[i];
        ev_io_init(&aw->w, accept_cb, aw->ls->fd, EV_READ);
        aw->w.data = aw;
        ev_init(&aw->retry, retry_cb);
        aw->retry.data = aw;
        ev_io_start(loop, &aw->w);
    }
    return a;
}

void acceptor_skip(struct acceptor *a, size_t li)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->w[i].ls->li == li) {
            ev_io_stop(a->loop, &a->w[i].w);
            ev_timer_stop(a->loop, &a->w[i].retry);
        }
}

void acceptor_stop(struct acceptor *a)
{
    for (size_t i = 0; i < a->n; i++) {
        ev_io_stop(a->loop, &a->w[i].w);
        ev_timer_stop(a->loop, &a->w[i].retry);
    }
}

void acceptor_free(struct acceptor *a)
{
    if (a == NULL)
        return;
    acceptor_stop(a);
    free(a->w);
    if (a->reserve_fd >= 0)
        close(a->reserve_fd);
    free(a);
}
