/*
 * conn.c - non-blocking connections over libev: input reassembly, output
 * batching (one write per connection per loop iteration), TLS driving with
 * WANT_READ/WANT_WRITE tracked per direction, timers and deferred close.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "tls.h"
#include "tls_rec.h"
#include "util.h"

#define SCRATCH_SIZE (64u * 1024u)
#define OUT_KEEP_CAP 0u          /* idle connections keep no output buffer */
#define IN_KEEP_CAP 0u           /* input buffer freed when empty */
#define WRITE_MAX (512u * 1024u) /* bytes written per wakeup (fairness) */
/* Sealed TLS 1.3 records of WRITE_MAX plaintext bytes: 22 bytes each. */
#define SEAL_SCRATCH_SIZE (WRITE_MAX + (WRITE_MAX / 16384u + 2u) * 64u)

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
    CF_WIO = 1u << 5,         /* write watcher active */
    CF_READ_WANTS_WRITE = 1u << 6,
    CF_WRITE_WANTS_READ = 1u << 7,
};

struct conn_loop {
    struct ev_loop *loop;
    struct log *log;
    ev_prepare prepare;
    uint8_t *scratch;
    uint8_t *seal_scratch; /* for tls_rec_write, allocated on first use */
    struct conn *pending;  /* singly linked via next_pending */
    struct conn *closing;  /* singly linked via next_close */
    struct conn *replay;   /* resumed with buffered input (next_replay) */
    size_t count;
    struct log_ratelimit tls_rl;
};

struct conn {
    struct conn_loop *cl;
    const struct conn_handler *h;
    void *ud;
    int fd;
    unsigned flags;
    SSL *ssl;               /* handshake, and TLS 1.2 afterwards */
    struct tls_rec *rec;    /* TLS 1.3 after the handshake (ssl freed) */
    struct tls_info *tinfo; /* after the handshake */
    struct tls_ctx *tls;
    ev_io rio, wio;
    ev_timer timer;
    double deadline_at; /* 0 = none (ev_now based) */
    double idle;        /* 0 = none */
    double last_rx;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_head, out_len, out_cap;
    size_t tls_wlen; /* length of an SSL_write to retry, 0 = none */
    struct conn *next_pending, *next_close, *next_replay;
    const char *close_reason;
    char *close_why; /* owned copy for TLS failure reasons, or NULL */
    uint16_t port;
    char peer[INET6_ADDRSTRLEN];
};

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents);
static void conn_flush(struct conn *c);

struct conn_loop *conn_loop_new(struct ev_loop *loop, struct log *lg)
{
    struct conn_loop *cl = xcalloc(1, sizeof(*cl));

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
    free(cl->scratch);
    free(cl->seal_scratch);
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

struct conn *conn_new(struct conn_loop *cl, int fd, struct tls_ctx *tls,
                      double handshake_timeout, const struct sockaddr *sa,
                      socklen_t salen, const struct conn_handler *h, void *ud)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    c->cl = cl;
    c->h = h;
    c->ud = ud;
    c->fd = fd;
    cl->count++;
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
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    ev_init(&c->timer, conn_timer_cb);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->last_rx = ev_now(cl->loop);
    if (tls) {
        c->tls = tls_ctx_ref(tls);
        c->ssl = tls_new_ssl(tls, fd);
        if (c->ssl == NULL) {
            conn_close(c, "TLS set-up failed");
            return c;
        }
        c->flags |= CF_HANDSHAKE;
        if (handshake_timeout > 0)
            c->deadline_at = ev_now(cl->loop) + handshake_timeout;
        timer_arm(c);
        ev_io_start(cl->loop, &c->rio);
        return c;
    }
    c->flags |= CF_OPEN;
    ev_io_start(cl->loop, &c->rio);
    if (h->on_open)
        h->on_open(ud, c);
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
    return c->tls != NULL;
}

const struct tls_info *conn_tls_info(const struct conn *c)
{
    return c->tinfo;
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
        c->next_pending = c->cl->pending;
        c->cl->pending = c;
    }
}

uint8_t *conn_out_reserve(struct conn *c, size_t n)
{
    if (c->out_head > 0 && c->out_head == c->out_len) {
        c->out_head = c->out_len = 0;
    }
    if (c->out_len + n > c->out_cap) {
        size_t live = c->out_len - c->out_head;
        if (c->out_head > 0 && c->tls_wlen == 0) {
            /* compact; a pending TLS retry may move its buffer
             * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) but keeps its length */
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
    if (!(c->flags & CF_REPLAY) &&
        (c->in_len > 0 || (c->ssl && SSL_pending(c->ssl) > 0))) {
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
        if (*pp)
            *pp = c->next_pending;
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
    if (conn_out_pending(c) > 0 || (c->rec && tls_rec_write_pending(c->rec)))
        mark_pending(c);
    replay_if_buffered(c);
}

/* Free what c owns, and c (no callbacks, no TLS close_notify). */
static void conn_release(struct conn *c)
{
    SSL_free(c->ssl);
    tls_rec_free(c->rec);
    tls_info_free(c->tinfo);
    tls_ctx_unref(c->tls);
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

static void tls_fail(struct conn *c, const char *why)
{
    struct conn_loop *cl = c->cl;
    unsigned suppressed = 0;

    if (log_ratelimit_ok(&cl->tls_rl, 20, 1.0, &suppressed))
        log_event(cl->log, LOG_NOTICE, "tls_rejected", "TLS handshake failed",
                  "ip", c->peer, "reason", why,
                  suppressed ? "suppressed_before" : NULL,
                  suppressed ? "yes" : NULL, (const char *)NULL);
    free(c->close_why);
    c->close_why = xmalloc(256);
    snprintf(c->close_why, 256, "TLS handshake failed: %s", why);
    conn_close(c, c->close_why);
}

static void conn_handshake(struct conn *c)
{
    char why[512];
    const char *kept = NULL;
    enum tls_io r;

    why[0] = '\0';
    r = tls_handshake(c->ssl, why, sizeof(why));
    switch (r) {
    case TLS_IO_OK:
        c->tinfo = tls_info_new(c->ssl);
        c->rec = tls_rec_take(c->ssl, &kept);
        if (c->rec != NULL) { /* TLS 1.3: records continue without ssl */
            SSL_free(c->ssl);
            c->ssl = NULL;
        } else {
            LOG_D(c->cl->log, "TLS records of %s:%d stay with OpenSSL: %s",
                  c->peer, c->port, kept);
        }
        c->flags &= ~CF_HANDSHAKE;
        c->flags |= CF_OPEN;
        c->deadline_at = 0;
        timer_arm(c);
        if (conn_out_pending(c) == 0)
            wio_stop(c);
        if (c->h->on_open)
            c->h->on_open(c->ud, c);
        return;
    case TLS_IO_WANT_READ:
        wio_stop(c);
        return;
    case TLS_IO_WANT_WRITE:
        wio_start(c);
        return;
    case TLS_IO_CLOSED:
        conn_close(c, "closed during TLS handshake");
        return;
    case TLS_IO_ERROR:
    default:
        tls_fail(c, why[0] ? why : "TLS error");
        return;
    }
}

static void conn_read_tls(struct conn *c)
{
    uint8_t *buf = c->cl->scratch;

    do {
        size_t n = 0;
        enum tls_io r = tls_read(c->ssl, buf, SCRATCH_SIZE, &n);
        switch (r) {
        case TLS_IO_OK:
            c->flags &= ~CF_READ_WANTS_WRITE;
            conn_deliver(c, buf, n);
            break;
        case TLS_IO_WANT_READ:
            return;
        case TLS_IO_WANT_WRITE:
            c->flags |= CF_READ_WANTS_WRITE;
            wio_start(c);
            return;
        case TLS_IO_CLOSED:
            conn_close(c, "connection closed by peer");
            return;
        default:
            conn_close(c, "TLS read error");
            return;
        }
    } while (
        !(c->flags & (CF_CLOSING | CF_PAUSED | CF_USER_PAUSED | CF_DETACHED)) &&
        SSL_pending(c->ssl) > 0);
}

/* TLS 1.3 after the handshake: tls_rec reads and opens the records. */
static void conn_read_rec(struct conn *c)
{
    uint8_t *buf = c->cl->scratch;
    size_t n = 0;
    enum tls_io r = tls_rec_read(c->rec, c->fd, buf, SCRATCH_SIZE, &n);

    if (n > 0) {
        conn_deliver(c, buf, n);
        if (c->flags & CF_DETACHED)
            return; /* another loop owns c now; it sees r's state */
    }
    if (tls_rec_write_pending(c->rec))
        wio_start(c); /* a KeyUpdate answer or an alert is queued */
    if (c->flags & CF_CLOSING)
        return;
    switch (r) {
    case TLS_IO_OK:
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        return;
    case TLS_IO_CLOSED:
        conn_close(c, "connection closed by peer");
        return;
    default:
        conn_close(c, tls_rec_error(c->rec));
        return;
    }
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    ssize_t n;

    (void)loop;
    (void)revents;
    if (c->flags & CF_CLOSING)
        return;
    if (c->flags & CF_HANDSHAKE) {
        conn_handshake(c);
        return;
    }
    if (c->rec) {
        conn_read_rec(c);
        return;
    }
    if (c->ssl) {
        if (c->flags & CF_WRITE_WANTS_READ) {
            c->flags &= ~CF_WRITE_WANTS_READ;
            conn_flush(c);
        }
        conn_read_tls(c);
        return;
    }
    n = read(c->fd, c->cl->scratch, SCRATCH_SIZE);
    if (n > 0) {
        conn_deliver(c, c->cl->scratch, (size_t)n);
    } else if (n == 0) {
        conn_close(c, "connection closed by peer");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(c, errno == ECONNRESET ? "connection reset by peer"
                                          : "socket read error");
    }
}

static void after_drain(struct conn *c)
{
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

/* conn_flush for TLS 1.3 after the handshake: seal and write, one send()
 * per call; sealed bytes the socket did not take wait in c->rec. */
static void conn_flush_rec(struct conn *c)
{
    struct conn_loop *cl = c->cl;
    size_t len = conn_out_pending(c), n = 0;
    enum tls_io r;

    if (len == 0 && !tls_rec_write_pending(c->rec)) {
        wio_stop(c);
        return;
    }
    if (len > WRITE_MAX)
        len = WRITE_MAX;
    if (len == 0) {
        r = tls_rec_flush(c->rec, c->fd);
    } else {
        if (cl->seal_scratch == NULL)
            cl->seal_scratch = xmalloc(SEAL_SCRATCH_SIZE);
        r = tls_rec_write(c->rec, c->fd, c->out + c->out_head, len,
                          cl->seal_scratch, SEAL_SCRATCH_SIZE, &n);
    }
    switch (r) {
    case TLS_IO_OK:
        c->out_head += n;
        break;
    case TLS_IO_WANT_WRITE:
        wio_start(c);
        return;
    default:
        c->out_head = c->out_len;
        if (!(c->flags & CF_CLOSING))
            conn_close(c, tls_rec_error(c->rec));
        return;
    }
    if (conn_out_pending(c) > 0 || tls_rec_write_pending(c->rec))
        wio_start(c);
    else
        wio_stop(c);
    after_drain(c);
}

/* Write what is queued: one write()/SSL_write() per call. */
static void conn_flush(struct conn *c)
{
    size_t len = conn_out_pending(c);

    if (c->rec) {
        if (c->flags & CF_OPEN)
            conn_flush_rec(c);
        return;
    }

    if (len == 0) {
        wio_stop(c);
        return;
    }
    if (!(c->flags & CF_OPEN))
        return; /* handshake first */
    if (len > WRITE_MAX)
        len = WRITE_MAX;
    if (c->ssl) {
        size_t n = 0;
        enum tls_io r;
        if (c->tls_wlen)
            len = c->tls_wlen;
        r = tls_write(c->ssl, c->out + c->out_head, len, &n);
        switch (r) {
        case TLS_IO_OK:
            c->tls_wlen = 0;
            c->out_head += n;
            break;
        case TLS_IO_WANT_WRITE:
            c->tls_wlen = len;
            wio_start(c);
            return;
        case TLS_IO_WANT_READ:
            c->tls_wlen = len;
            c->flags |= CF_WRITE_WANTS_READ;
            return;
        default:
            c->out_head = c->out_len;
            if (!(c->flags & CF_CLOSING))
                conn_close(c, "TLS write error");
            return;
        }
    } else {
        ssize_t n = write(c->fd, c->out + c->out_head, len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                wio_start(c);
                return;
            }
            c->out_head = c->out_len;
            if (!(c->flags & CF_CLOSING))
                conn_close(c, errno == EPIPE || errno == ECONNRESET
                                  ? "connection reset by peer"
                                  : "socket write error");
            return;
        }
        c->out_head += (size_t)n;
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
        conn_handshake(c);
        return;
    }
    if (c->flags & CF_READ_WANTS_WRITE) {
        c->flags &= ~CF_READ_WANTS_WRITE;
        conn_read_tls(c);
        if (c->flags & CF_CLOSING)
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
            tls_fail(c, "handshake timeout");
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
    if (c->ssl && (c->flags & CF_OPEN)) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
    }
    if (c->rec)
        tls_rec_close_notify(c->rec, c->fd);
    cl->count--;
    conn_release(c);
}

static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct conn_loop *cl = w->data;

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
        if (c->ssl &&
            !(c->flags &
              (CF_CLOSING | CF_USER_PAUSED | CF_PAUSED | CF_DETACHED)) &&
            SSL_pending(c->ssl) > 0)
            conn_read_tls(c);
    }
    while (cl->pending) {
        struct conn *c = cl->pending;
        cl->pending = c->next_pending;
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
}
