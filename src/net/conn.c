/*
 * conn.c - non-blocking connections over libev: input reassembly, output
 * batching (one write per connection per loop iteration), the transport
 * stack (transport.h) driven with WANT_READ/WANT_WRITE tracked per
 * direction, handshakes, outgoing connects, timers and deferred close.
 * Which transport a conn has is decided once, when it is made; after that
 * every byte goes through the vtable.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "proxy_proto.h"
#include "transport.h"
#include "util.h"

#define SCRATCH_SIZE (64u * 1024u)
#define OUT_KEEP_CAP 0u          /* idle connections keep no output buffer */
#define IN_KEEP_CAP 0u           /* input buffer freed when empty */
#define WRITE_MAX (512u * 1024u) /* bytes written per wakeup (fairness) */
#define WHY_MAX 512u
/* Handshake CPU per loop iteration: past it, connections whose handshake
 * step is due wait (FIFO) for the next iteration, so that a reconnect
 * storm of full TLS handshakes (0.5-1 ms each) cannot hold established
 * clients back for more than about this long per iteration. */
#define HS_BUDGET 0.001

enum {
    CF_HANDSHAKE = 1u << 0,
    CF_OPEN = 1u << 1,
    CF_CLOSING = 1u << 2,
    CF_PENDING = 1u << 3,     /* on the pending-write list */
    CF_PAUSED = 1u << 4,      /* reading paused: output over high water */
    CF_OVER = 1u << 8,        /* output went over high water: tell on drain */
    CF_USER_PAUSED = 1u << 9, /* reading paused by the upper layer */
    CF_REPLAY = 1u << 10,     /* on the replay list (buffered input) */
    CF_DETACHED = 1u << 11,   /* between loops (conn_detach/conn_attach) */
    CF_PROXY = 1u << 12,      /* a PROXY layer whose header is not applied */
    CF_LINGER = 1u << 13,     /* close once the output is written */
    CF_HS_DEFER = 1u << 14,   /* on the deferred-handshake list */
    CF_WIO = 1u << 5,         /* write watcher active */
    CF_READ_WANTS_WRITE = 1u << 6,
    CF_WRITE_WANTS_READ = 1u << 7,
};

struct conn_loop {
    struct ev_loop *loop;
    struct log *log;
    ev_prepare prepare;
    uint8_t *scratch;
    /* FIFO via next_pending: written in the order output was first
     * queued (a publisher's ack before its subscribers' copies) */
    struct conn *pending;
    struct conn **pending_tail;
    struct conn *closing; /* singly linked via next_close */
    struct conn *replay;  /* resumed with buffered input (next_replay) */
    /* handshake steps past this iteration's HS_BUDGET, FIFO via next_hs;
     * hs_idle keeps the loop from blocking while any wait */
    struct conn *hs_defer;
    struct conn **hs_defer_tail;
    double hs_used; /* handshake seconds spent in this iteration */
    ev_idle hs_idle;
    size_t count;
    struct log_ratelimit hs_rl;
};

struct conn {
    struct conn_loop *cl;
    const struct conn_handler *h;
    void *ud;
    int fd;
    unsigned flags;
    struct transport *xprt;         /* top of the transport stack */
    const struct xprt_stage *stage; /* of the handshake, while it runs */
    double hs_timeout;              /* handshake deadline, 0 = none */
    ev_io rio, wio;
    ev_timer timer;
    double deadline_at; /* 0 = none (ev_now based) */
    double idle;        /* 0 = none */
    double last_rx;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_head, out_len, out_cap;
    struct conn *next_pending, *next_close, *next_replay, *next_hs;
    const char *close_reason;
    const char *linger_reason; /* conn_close_flushed */
    char *close_why;           /* owned copy of a formatted reason, or NULL */
    uint16_t port;
    char peer[INET6_ADDRSTRLEN];
};

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents);
static void conn_flush(struct conn *c);
static void conn_handshake(struct conn *c);
static bool xprt_pending(const struct conn *c);
static void timer_arm(struct conn *c);
static void hs_idle_cb(struct ev_loop *loop, ev_idle *w, int revents);

struct conn_loop *conn_loop_new(struct ev_loop *loop, struct log *lg)
{
    struct conn_loop *cl = xcalloc(1, sizeof(*cl));

    cl->pending_tail = &cl->pending;
    cl->hs_defer_tail = &cl->hs_defer;
    ev_idle_init(&cl->hs_idle, hs_idle_cb);
    cl->hs_idle.data = cl;
    cl->loop = loop;
    cl->log = lg;
    cl->scratch = xmalloc(SCRATCH_SIZE);
    ev_prepare_init(&cl->prepare, loop_prepare_cb);
    cl->prepare.data = cl;
    ev_prepare_start(loop, &cl->prepare);
    ev_unref(loop); /* the prepare watcher alone must not keep the loop */
    return cl;
}

void conn_loop_free(struct conn_loop *cl)
{
    if (cl == NULL)
        return;
    ev_ref(cl->loop);
    ev_prepare_stop(cl->loop, &cl->prepare);
    ev_idle_stop(cl->loop, &cl->hs_idle);
    free(cl->scratch);
    free(cl);
}

size_t conn_loop_count(const struct conn_loop *cl)
{
    return cl->count;
}

static void wio_start(struct conn *c)
{
    if (!(c->flags & CF_WIO)) {
        c->flags |= CF_WIO;
        ev_io_start(c->cl->loop, &c->wio);
    }
}

static void wio_stop(struct conn *c)
{
    if (c->flags & CF_WIO) {
        c->flags &= ~CF_WIO;
        ev_io_stop(c->cl->loop, &c->wio);
    }
}

static void timer_arm(struct conn *c)
{
    struct ev_loop *loop = c->cl->loop;
    double now = ev_now(loop), at = 0;

    if (c->deadline_at > 0)
        at = c->deadline_at;
    if (c->idle > 0) {
        double t = c->last_rx + c->idle;
        if (at == 0 || t < at)
            at = t;
    }
    ev_timer_stop(loop, &c->timer);
    if (at > 0) {
        ev_timer_set(&c->timer, at > now ? at - now : 0.0, 0.0);
        ev_timer_start(loop, &c->timer);
    }
}

/* Fill c->peer/c->port from the peer address ("unix" for others). */
static void set_peer(struct conn *c, const struct sockaddr *sa, socklen_t salen)
{
    if (sa && sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, c->peer, sizeof(c->peer));
        c->port = ntohs(s4->sin_port);
    } else if (sa && sa->sa_family == AF_INET6 &&
               salen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, c->peer, sizeof(c->peer));
        c->port = ntohs(s6->sin6_port);
    } else {
        strcpy(c->peer, "unix");
    }
}

/* Close c with a formatted reason (kept in c->close_why). */
static void close_fmt(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void close_fmt(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->flags & CF_CLOSING)
        return;
    free(c->close_why);
    c->close_why = xmalloc(WHY_MAX);
    va_start(ap, fmt);
    vsnprintf(c->close_why, WHY_MAX, fmt, ap);
    va_end(ap);
    conn_close(c, c->close_why);
}

/* The conn without a transport or running watchers. */
static struct conn *conn_alloc(struct conn_loop *cl, int fd,
                               const struct conn_handler *h, void *ud)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    c->cl = cl;
    c->h = h;
    c->ud = ud;
    c->fd = fd;
    cl->count++;
    strcpy(c->peer, "unix");
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    ev_init(&c->timer, conn_timer_cb);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->last_rx = ev_now(cl->loop);
    return c;
}

struct conn *conn_create(struct conn_loop *cl, int fd, struct tls_ctx *tls,
                         double handshake_timeout, const struct sockaddr *sa,
                         socklen_t salen, const struct conn_handler *h,
                         void *ud)
{
    struct conn *c = conn_alloc(cl, fd, h, ud);
    struct transport *x;

    set_peer(c, sa, salen);
    c->hs_timeout = handshake_timeout;
    c->xprt = transport_plain_new(fd);
    if (tls) {
        x = transport_tls_server(tls, c->xprt);
        if (x == NULL)
            conn_close(c, "TLS set-up failed");
        else
            c->xprt = x;
    }
    return c;
}

void conn_push_layer(struct conn *c, struct transport *layer)
{
    layer->lower = c->xprt;
    layer->fd = c->fd;
    c->xprt = layer;
}

void conn_insert_layer(struct conn *c, struct transport *layer)
{
    struct transport **pp = &c->xprt;

    while ((*pp)->lower != NULL)
        pp = &(*pp)->lower;
    layer->lower = *pp;
    layer->fd = c->fd;
    *pp = layer;
    c->flags |= CF_PROXY; /* apply_proxy looks for a header after steps */
}

const struct proxy_hdr *conn_proxy(const struct conn *c)
{
    return c->xprt != NULL ? proxy_stack_hdr(c->xprt) : NULL;
}

/* The PROXY header arrived: the client's address replaces the proxy's
 * (a LOCAL or UNIX-family header keeps the socket's). */
static void apply_proxy(struct conn *c)
{
    const struct proxy_hdr *h = proxy_stack_hdr(c->xprt);

    if (h == NULL)
        return;
    c->flags &= ~CF_PROXY;
    if (!h->local && (h->family == AF_INET || h->family == AF_INET6)) {
        LOG_D(c->cl->log, "PROXY v%u header from %s:%d: client %s:%u",
              (unsigned)h->version, c->peer, c->port, h->src_ip,
              (unsigned)h->src_port);
        snprintf(c->peer, sizeof(c->peer), "%s", h->src_ip);
        c->port = h->src_port;
    }
}

/* The stage of the first handshake to run: the lowest transport of the
 * stack that has one (handshakes complete bottom-up). */
static const struct xprt_stage *first_stage(const struct transport *t)
{
    const struct xprt_stage *st = NULL;

    for (; t != NULL; t = t->lower)
        if (t->ops->handshake != NULL && t->ops->stage != NULL)
            st = t->ops->stage;
    return st;
}

/* Open c: the transport stack is established. */
static void conn_open(struct conn *c)
{
    c->flags &= ~CF_HANDSHAKE;
    c->flags |= CF_OPEN;
    c->stage = NULL;
    if (c->h->on_open)
        c->h->on_open(c->ud, c);
}

void conn_start(struct conn *c)
{
    struct conn_loop *cl = c->cl;

    if (c->flags & (CF_CLOSING | CF_OPEN | CF_HANDSHAKE))
        return;
    ev_io_start(cl->loop, &c->rio);
    if (c->xprt->ops->handshake == NULL) {
        conn_open(c);
        return;
    }
    /* the first step runs when the peer's first bytes arrive */
    c->flags |= CF_HANDSHAKE;
    c->stage = first_stage(c->xprt);
    if (c->hs_timeout > 0)
        c->deadline_at = ev_now(cl->loop) + c->hs_timeout;
    timer_arm(c);
}

struct conn *conn_new(struct conn_loop *cl, int fd, struct tls_ctx *tls,
                      double handshake_timeout, const struct sockaddr *sa,
                      socklen_t salen, const struct conn_handler *h, void *ud)
{
    struct conn *c =
        conn_create(cl, fd, tls, handshake_timeout, sa, salen, h, ud);

    conn_start(c);
    return c;
}

/* A non-blocking socket connecting to ai; -1 with errno on failure. */
static int connect_socket(const struct addrinfo *ai)
{
    int fd, one = 1, saved;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (ai->ai_family != AF_UNIX)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

struct conn *conn_connect(struct conn_loop *cl, const char *host, int port,
                          struct tls_ctx *tls, const char *sni, double timeout,
                          const struct conn_handler *h, void *ud)
{
    struct addrinfo hints, *res = NULL;
    struct transport *x;
    struct conn *c;
    char portstr[16];
    int fd = -1, rc, saved = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc == 0) {
        fd = connect_socket(res);
        saved = errno;
    }
    c = conn_alloc(cl, fd, h, ud);
    c->hs_timeout = timeout;
    c->port = (uint16_t)port;
    if (rc != 0) {
        snprintf(c->peer, sizeof(c->peer), "%s", host);
        close_fmt(c, "connect: %s: %s", host, gai_strerror(rc));
        return c;
    }
    set_peer(c, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (fd < 0) {
        close_fmt(c, "connect: %s", strerror(saved));
        return c;
    }
    c->xprt = transport_plain_connecting(fd);
    if (tls) {
        x = transport_tls_client(tls, c->xprt, sni);
        if (x == NULL) {
            conn_close(c, "TLS set-up failed");
            return c;
        }
        c->xprt = x;
    }
    conn_start(c);
    /* step now: the connect stage (which names a timeout) starts here,
     * and a connect that completed at once goes on without waiting */
    conn_handshake(c);
    return c;
}

const char *conn_peer_ip(const struct conn *c)
{
    return c->peer;
}

int conn_peer_port(const struct conn *c)
{
    return c->port;
}

bool conn_is_tls(const struct conn *c)
{
    return c->xprt != NULL && transport_secure(c->xprt);
}

const struct tls_info *conn_tls_info(const struct conn *c)
{
    return c->xprt != NULL ? transport_peer_info(c->xprt) : NULL;
}

bool conn_closing(const struct conn *c)
{
    return (c->flags & CF_CLOSING) != 0;
}

size_t conn_out_pending(const struct conn *c)
{
    return c->out_len - c->out_head;
}

static void mark_pending(struct conn *c)
{
    if (!(c->flags & CF_PENDING)) {
        c->flags |= CF_PENDING;
        c->next_pending = NULL;
        *c->cl->pending_tail = c;
        c->cl->pending_tail = &c->next_pending;
    }
}

uint8_t *conn_out_reserve(struct conn *c, size_t n)
{
    if (c->out_head > 0 && c->out_head == c->out_len) {
        c->out_head = c->out_len = 0;
    }
    if (c->out_len + n > c->out_cap) {
        size_t live = c->out_len - c->out_head;
        if (c->out_head > 0) {
            /* compact: a write to retry may move (transport.h) */
            memmove(c->out, c->out + c->out_head, live);
            c->out_head = 0;
            c->out_len = live;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 1024;
            while (cap < c->out_len + n)
                cap *= 2;
            c->out = xrealloc(c->out, cap);
            c->out_cap = cap;
        }
    }
    return c->out + c->out_len;
}

void conn_out_commit(struct conn *c, size_t n)
{
    if (c->flags & CF_CLOSING && !(c->flags & CF_OPEN))
        return;
    c->out_len += n;
    if (n)
        mark_pending(c);
    if (conn_out_pending(c) > CONN_OUT_HIWAT)
        c->flags |= CF_OVER;
}

void conn_write(struct conn *c, const void *p, size_t n)
{
    uint8_t *dst = conn_out_reserve(c, n);

    memcpy(dst, p, n);
    conn_out_commit(c, n);
}

void conn_set_deadline(struct conn *c, double secs)
{
    c->deadline_at = secs > 0 ? ev_now(c->cl->loop) + secs : 0;
    if (!(c->flags & CF_CLOSING))
        timer_arm(c);
}

void conn_set_idle(struct conn *c, double secs)
{
    c->idle = secs;
    c->last_rx = ev_now(c->cl->loop);
    if (!(c->flags & CF_CLOSING))
        timer_arm(c);
}

void conn_reserve_input(struct conn *c, size_t n)
{
    if (n > c->in_cap) {
        c->in = xrealloc(c->in, n);
        c->in_cap = n;
    }
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->flags & CF_CLOSING)
        return;
    c->flags |= CF_CLOSING;
    c->close_reason = reason;
    ev_io_stop(c->cl->loop, &c->rio);
    wio_stop(c);
    ev_timer_stop(c->cl->loop, &c->timer);
    c->next_close = c->cl->closing;
    c->cl->closing = c;
}

void conn_close_flushed(struct conn *c, const char *reason)
{
    if (c->flags & (CF_CLOSING | CF_LINGER))
        return;
    if (conn_out_pending(c) == 0) {
        conn_close(c, reason);
        return;
    }
    c->flags |= CF_LINGER;
    c->linger_reason = reason;
}

/* Start or stop the read watcher to match the flags. */
static void update_read(struct conn *c)
{
    if (c->flags & (CF_CLOSING | CF_PAUSED | CF_USER_PAUSED))
        ev_io_stop(c->cl->loop, &c->rio);
    else
        ev_io_start(c->cl->loop, &c->rio);
}

/* Hand bytes to the upper layer; keep an incomplete tail. n may be 0 to
 * offer what is already buffered (after a resume). */
static void conn_deliver(struct conn *c, const uint8_t *buf, size_t n)
{
    const uint8_t *data;
    size_t len;
    ssize_t used;
    bool from_in;

    if (n)
        c->last_rx = ev_now(c->cl->loop);
    if (c->in_len > 0) {
        if (c->in_len + n > c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap : 512;
            while (cap < c->in_len + n)
                cap *= 2;
            c->in = xrealloc(c->in, cap);
            c->in_cap = cap;
        }
        if (n)
            memcpy(c->in + c->in_len, buf, n);
        c->in_len += n;
        data = c->in;
        len = c->in_len;
        from_in = true;
    } else if (n == 0) {
        return;
    } else {
        data = buf;
        len = n;
        from_in = false;
    }
    used = c->h->on_data(c->ud, c, data, len);
    if (used < 0 || (c->flags & (CF_CLOSING | CF_DETACHED)))
        return;
    if ((size_t)used < len) {
        size_t rest = len - (size_t)used;
        /* on_data may have grown c->in (conn_reserve_input): use c->in,
         * never the stale 'data', for buffered input */
        if (from_in) {
            memmove(c->in, c->in + used, rest);
        } else {
            if (rest > c->in_cap) {
                c->in = xrealloc(c->in, rest);
                c->in_cap = rest;
            }
            memcpy(c->in, data + used, rest);
        }
        c->in_len = rest;
    } else {
        c->in_len = 0;
        if (c->in_cap > IN_KEEP_CAP) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    if (conn_out_pending(c) > CONN_OUT_HIWAT && !(c->flags & CF_PAUSED)) {
        c->flags |= CF_PAUSED | CF_OVER;
        update_read(c);
    }
}

void conn_pause_read(struct conn *c)
{
    c->flags |= CF_USER_PAUSED;
    update_read(c);
}

/* Put c on the replay list when it holds input not yet offered. */
static void replay_if_buffered(struct conn *c)
{
    if (!(c->flags & CF_REPLAY) && (c->in_len > 0 || xprt_pending(c))) {
        c->flags |= CF_REPLAY;
        c->next_replay = c->cl->replay;
        c->cl->replay = c;
    }
}

void conn_resume_read(struct conn *c)
{
    if (!(c->flags & CF_USER_PAUSED) || (c->flags & CF_CLOSING))
        return;
    c->flags &= ~CF_USER_PAUSED;
    update_read(c);
    replay_if_buffered(c);
}

/* Unlink c from the loop's singly linked lists (pending, replay). */
static void unlink_lists(struct conn *c)
{
    struct conn_loop *cl = c->cl;

    if (c->flags & CF_PENDING) {
        struct conn **pp = &cl->pending;
        while (*pp && *pp != c)
            pp = &(*pp)->next_pending;
        if (*pp) {
            *pp = c->next_pending;
            if (cl->pending_tail == &c->next_pending)
                cl->pending_tail = pp;
        }
        c->flags &= ~CF_PENDING;
    }
    if (c->flags & CF_REPLAY) {
        struct conn **pp = &cl->replay;
        while (*pp && *pp != c)
            pp = &(*pp)->next_replay;
        if (*pp)
            *pp = c->next_replay;
        c->flags &= ~CF_REPLAY;
    }
    if (c->flags & CF_HS_DEFER) {
        struct conn **pp = &cl->hs_defer;
        while (*pp && *pp != c)
            pp = &(*pp)->next_hs;
        if (*pp) {
            *pp = c->next_hs;
            if (cl->hs_defer_tail == &c->next_hs)
                cl->hs_defer_tail = pp;
        }
        c->flags &= ~CF_HS_DEFER;
    }
}

void conn_detach(struct conn *c, const uint8_t *rest, size_t n)
{
    struct conn_loop *cl = c->cl;

    if (c->in != NULL && rest >= c->in && rest < c->in + c->in_cap) {
        memmove(c->in, rest, n);
    } else if (n > 0) {
        uint8_t *dst = c->in;
        if (dst == NULL || n > c->in_cap) {
            free(c->in);
            dst = xmalloc(n);
            c->in = dst;
            c->in_cap = n;
        }
        memcpy(dst, rest, n);
    }
    c->in_len = n;
    ev_io_stop(cl->loop, &c->rio);
    wio_stop(c);
    ev_timer_stop(cl->loop, &c->timer);
    unlink_lists(c);
    c->flags |= CF_DETACHED;
    c->ud = NULL;
    cl->count--;
}

void conn_attach(struct conn *c, struct conn_loop *cl, void *ud)
{
    c->cl = cl;
    c->ud = ud;
    c->flags &= ~CF_DETACHED;
    cl->count++;
    update_read(c);
    timer_arm(c);
    if (conn_out_pending(c) > 0)
        mark_pending(c);
    replay_if_buffered(c);
}

/* Free what c owns, and c (no callbacks, no TLS close_notify). */
static void conn_release(struct conn *c)
{
    transport_free_stack(c->xprt);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    free(c->close_why);
    free(c);
}

void conn_destroy_detached(struct conn *c)
{
    conn_release(c);
}

/* The handshake failed (or timed out) in c->stage: log it when the stage
 * names an event (rate limited per loop), and close with "what: why". */
static void handshake_fail(struct conn *c, const char *why)
{
    struct conn_loop *cl = c->cl;
    const struct xprt_stage *st = c->stage;
    unsigned suppressed = 0;

    if (st != NULL && st->event != NULL &&
        log_ratelimit_ok(&cl->hs_rl, 20, 1.0, &suppressed))
        log_event(cl->log, LOG_NOTICE, st->event, st->what, "ip", c->peer,
                  "reason", why, suppressed ? "suppressed_before" : NULL,
                  suppressed ? "yes" : NULL, (const char *)NULL);
    close_fmt(c, "%s: %s", st != NULL ? st->what : "handshake failed", why);
}

/* One handshake step of the transport stack. */
static void conn_handshake(struct conn *c)
{
    char why[WHY_MAX];
    const struct xprt_stage *st = c->stage;
    enum xprt_io r;

    why[0] = '\0';
    r = c->xprt->ops->handshake(c->xprt, why, sizeof(why), &st);
    if (st != NULL)
        c->stage = st;
    if (c->flags & CF_PROXY)
        apply_proxy(c);
    switch (r) {
    case XPRT_OK:
        c->deadline_at = 0;
        timer_arm(c);
        if (conn_out_pending(c) == 0)
            wio_stop(c);
        else
            mark_pending(c); /* queued before the transport was ready */
        conn_open(c);
        /* bytes that came with the handshake (a WebSocket frame sent
         * right after the upgrade request) are read from the loop */
        if (!(c->flags & CF_CLOSING))
            replay_if_buffered(c);
        return;
    case XPRT_WANT_READ:
        wio_stop(c);
        return;
    case XPRT_WANT_WRITE:
        wio_start(c);
        return;
    case XPRT_CLOSED:
        LOG_D(c->cl->log, "Connection from %s:%d closed in handshake: %s",
              c->peer, c->port, why[0] ? why : "closed by peer");
        close_fmt(c, "%s", why[0] ? why : "connection closed in handshake");
        return;
    case XPRT_ERROR:
    default:
        handshake_fail(c, why[0] ? why : "error");
        return;
    }
}

/* Bytes decoded by the transport but not read yet (SSL_pending). */
static bool xprt_pending(const struct conn *c)
{
    const struct transport *x = c->xprt;

    return x->ops->pending != NULL && x->ops->pending(x) > 0;
}

/* Read from the transport into the loop's scratch buffer and deliver;
 * again only while the transport holds decoded input. */
static void conn_read(struct conn *c)
{
    struct transport *x = c->xprt;
    uint8_t *buf = c->cl->scratch;

    do {
        size_t n = 0;
        switch (x->ops->read(x, buf, SCRATCH_SIZE, &n)) {
        case XPRT_OK:
            c->flags &= ~CF_READ_WANTS_WRITE;
            conn_deliver(c, buf, n);
            break;
        case XPRT_WANT_READ:
            return;
        case XPRT_WANT_WRITE:
            c->flags |= CF_READ_WANTS_WRITE;
            wio_start(c);
            return;
        case XPRT_CLOSED:
            conn_close(c, "connection closed by peer");
            return;
        case XPRT_ERROR:
        default:
            conn_close(c, x->err ? x->err : "read error");
            return;
        }
    } while (
        !(c->flags & (CF_CLOSING | CF_PAUSED | CF_USER_PAUSED | CF_DETACHED)) &&
        xprt_pending(c));
}

/* hs_idle_cb: nothing to do; an active idle watcher only makes the loop
 * poll without blocking while deferred handshakes wait. */
static void hs_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* handshake_step: one handshake step of c within the iteration's budget;
 * past it, c stops watching its socket and waits on the deferred list
 * (its bytes stay in the socket buffer). */
static void handshake_step(struct conn *c)
{
    struct conn_loop *cl = c->cl;
    double t0;

    if (cl->hs_used >= HS_BUDGET) {
        if (!(c->flags & CF_HS_DEFER)) {
            ev_io_stop(cl->loop, &c->rio);
            ev_io_stop(cl->loop, &c->wio); /* CF_WIO says to restart it */
            c->flags |= CF_HS_DEFER;
            c->next_hs = NULL;
            *cl->hs_defer_tail = c;
            cl->hs_defer_tail = &c->next_hs;
            ev_idle_start(cl->loop, &cl->hs_idle);
        }
        return;
    }
    t0 = ev_time();
    conn_handshake(c);
    cl->hs_used += ev_time() - t0;
}

/* hs_resume: a new iteration's budget; run deferred handshake steps in
 * arrival order while it lasts. */
static void hs_resume(struct conn_loop *cl)
{
    cl->hs_used = 0;
    while (cl->hs_defer != NULL && cl->hs_used < HS_BUDGET) {
        struct conn *c = cl->hs_defer;

        cl->hs_defer = c->next_hs;
        if (cl->hs_defer == NULL)
            cl->hs_defer_tail = &cl->hs_defer;
        c->flags &= ~CF_HS_DEFER;
        if (c->flags & CF_CLOSING)
            continue;
        ev_io_start(cl->loop, &c->rio);
        if (c->flags & CF_WIO)
            ev_io_start(cl->loop, &c->wio);
        handshake_step(c);
    }
    if (cl->hs_defer == NULL)
        ev_idle_stop(cl->loop, &cl->hs_idle);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;

    (void)loop;
    (void)revents;
    if (c->flags & CF_CLOSING)
        return;
    if (c->flags & CF_HANDSHAKE) {
        handshake_step(c);
        return;
    }
    if (c->flags & CF_WRITE_WANTS_READ) {
        c->flags &= ~CF_WRITE_WANTS_READ;
        conn_flush(c);
        if (c->flags & CF_CLOSING)
            return;
    }
    conn_read(c);
}

static void after_drain(struct conn *c)
{
    if ((c->flags & CF_LINGER) && conn_out_pending(c) == 0 &&
        !(c->flags & CF_CLOSING)) {
        conn_close(c, c->linger_reason);
        return;
    }
    if (c->out_head == c->out_len) {
        c->out_head = c->out_len = 0;
        if (c->out_cap > OUT_KEEP_CAP) {
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
    }
    if (conn_out_pending(c) >= CONN_OUT_LOWAT || (c->flags & CF_CLOSING))
        return;
    if (c->flags & CF_PAUSED) {
        c->flags &= ~CF_PAUSED;
        update_read(c);
    }
    if (c->flags & CF_OVER) {
        c->flags &= ~CF_OVER;
        if (c->h->on_drain)
            c->h->on_drain(c->ud, c);
    }
}

/* Write what is queued: one transport write per call, at most WRITE_MAX
 * bytes; EV_WRITE runs only while a write could not complete. */
static void conn_flush(struct conn *c)
{
    struct transport *x = c->xprt;
    size_t len = conn_out_pending(c), n = 0;

    if (len == 0) {
        wio_stop(c);
        return;
    }
    if (!(c->flags & CF_OPEN))
        return; /* handshake first */
    if (len > WRITE_MAX)
        len = WRITE_MAX;
    switch (x->ops->write(x, c->out + c->out_head, len, &n)) {
    case XPRT_OK:
        c->out_head += n;
        break;
    case XPRT_WANT_WRITE:
        wio_start(c);
        return;
    case XPRT_WANT_READ:
        c->flags |= CF_WRITE_WANTS_READ;
        return;
    case XPRT_CLOSED:
    case XPRT_ERROR:
    default:
        c->out_head = c->out_len;
        if (!(c->flags & CF_CLOSING))
            conn_close(c, x->err ? x->err : "write error");
        return;
    }
    if (conn_out_pending(c) > 0)
        wio_start(c);
    else if (!(c->flags & CF_READ_WANTS_WRITE))
        wio_stop(c);
    after_drain(c);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;

    (void)loop;
    (void)revents;
    if (c->flags & CF_CLOSING)
        return;
    if (c->flags & CF_HANDSHAKE) {
        handshake_step(c);
        return;
    }
    if (c->flags & CF_READ_WANTS_WRITE) {
        c->flags &= ~CF_READ_WANTS_WRITE;
        conn_read(c);
        if (c->flags & (CF_CLOSING | CF_DETACHED))
            return;
    }
    conn_flush(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;
    double now = ev_now(loop);

    (void)revents;
    if (c->flags & CF_CLOSING)
        return;
    if (c->deadline_at > 0 && now >= c->deadline_at) {
        c->deadline_at = 0;
        if (c->flags & CF_HANDSHAKE) {
            handshake_fail(c, c->stage ? c->stage->timeout : "timed out");
            return;
        }
        c->h->on_timeout(c->ud, c, CONN_TIMEOUT_DEADLINE);
        if (!(c->flags & CF_CLOSING))
            timer_arm(c);
        return;
    }
    if (c->idle > 0 && now - c->last_rx >= c->idle) {
        c->h->on_timeout(c->ud, c, CONN_TIMEOUT_IDLE);
        if (!(c->flags & CF_CLOSING)) {
            c->last_rx = now;
            timer_arm(c);
        }
        return;
    }
    timer_arm(c);
}

static void conn_free(struct conn *c)
{
    struct conn_loop *cl = c->cl;

    /* best effort: push out a final CONNACK/DISCONNECT */
    /* (CF_CLOSING stays set: a write error here must not re-queue c) */
    if ((c->flags & CF_OPEN) && conn_out_pending(c) > 0)
        conn_flush(c);
    wio_stop(c);
    ev_io_stop(cl->loop, &c->rio);
    ev_timer_stop(cl->loop, &c->timer);
    if (c->h->on_close)
        c->h->on_close(c->ud, c, c->close_reason ? c->close_reason : "closed");
    if (c->flags & CF_OPEN)
        transport_shutdown_stack(c->xprt);
    cl->count--;
    conn_release(c);
}

static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct conn_loop *cl = w->data;

    bool hs_done = false;

    (void)loop;
    (void)revents;
again:
    while (cl->replay) {
        struct conn *c = cl->replay;
        cl->replay = c->next_replay;
        c->flags &= ~CF_REPLAY;
        if (c->flags & (CF_CLOSING | CF_USER_PAUSED))
            continue;
        conn_deliver(c, NULL, 0);
        if (!(c->flags &
              (CF_CLOSING | CF_USER_PAUSED | CF_PAUSED | CF_DETACHED)) &&
            xprt_pending(c))
            conn_read(c);
    }
    while (cl->pending) {
        struct conn *c = cl->pending;
        cl->pending = c->next_pending;
        if (cl->pending == NULL)
            cl->pending_tail = &cl->pending;
        c->flags &= ~CF_PENDING;
        if (!(c->flags & CF_CLOSING))
            conn_flush(c);
    }
    while (cl->closing) {
        struct conn *c = cl->closing;
        cl->closing = c->next_close;
        /* a conn on the pending list that is closing: unlink lazily */
        unlink_lists(c);
        conn_free(c);
    }
    /* on_close handlers may queue output (wills) or close more conns */
    if (cl->pending || cl->replay)
        goto again;
    /* deferred handshakes last: what established clients were answered
     * in this iteration is written before the handshake budget is spent;
     * then what the handshakes queued or closed */
    if (!hs_done) {
        hs_done = true;
        hs_resume(cl);
        if (cl->pending || cl->replay || cl->closing)
            goto again;
    }
}
