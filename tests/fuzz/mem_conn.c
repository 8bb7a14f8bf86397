/*
 * mem_conn.c - an in-memory implementation of conn.h for the whole-session
 * fuzzer (fuzz_session.c) and its replay test: no sockets, no libev
 * watchers. Link it instead of src/conn.c.
 *
 * The harness plays both the peers and the event loop:
 *
 *   memconn_push(c, bytes)  the peer sent bytes: they wait in the conn's
 *                           "socket"; one read of at most read_max bytes
 *                           happens at once (a read callback), the rest
 *                           one read per loop iteration
 *   memconn_peer_eof(c)     the peer closed: seen after the socket drains
 *                           ("connection closed by peer"), like read()==0
 *   memconn_fire_timer(c)   a deadline or idle timer fires (on_timeout)
 *   memconn_run(cl)         loop iterations until nothing is left to do:
 *                           reads, then the ev_prepare work of conn.c
 *                           (replay of resumed input, output flush, the
 *                           deferred closes)
 *
 * Same contracts as conn.c: on_data is offered the unconsumed tail again
 * with more bytes, never from inside a callback after a resume; output is
 * flushed (handed to the harness's on_output hook) once per iteration;
 * conn_close() only schedules, the close runs from memconn_run() which calls
 * on_close and frees. Backpressure follows CONN_OUT_HIWAT/LOWAT with
 * on_drain. A per-conn drain rate (bytes per iteration, 0 = the peer reads
 * nothing) lets the harness build slow consumers.
 *
 * To let ASan see over-reads and over-writes by the upper layer, on_data
 * gets an exact-size heap copy of the bytes offered, and conn_out_reserve()
 * returns an exact-size staging buffer that conn_out_commit() appends.
 * Contract violations by the upper layer (on_data returning more than it
 * was given, -1 without conn_close, commit past the reserve) abort().
 *
 * TLS, transport layers and outgoing connections are not modelled:
 * conn_new() with a TLS context and conn_connect() close the conn,
 * conn_push_layer() and conn_insert_layer() abort; conn_proxy() is NULL.
 */
#include "conn.h"
#include "mem_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MC_READ_MAX (64u * 1024u) /* like conn.c's scratch buffer */
#define MC_MAX_ITER 1000000u      /* a livelock is a bug */
#define MC_COPY_MAX (16u * 1024u) /* on_data gets an exact copy up to this */
#define MC_BIG_SOCK 4096u         /* more waiting: read at least ... */
#define MC_BIG_READ 1024u         /* ... this much (no byte-wise 100 KiB) */

enum {
    MF_OPEN = 1u << 0,
    MF_CLOSING = 1u << 1,
    MF_PAUSED = 1u << 2,      /* output over high water */
    MF_USER_PAUSED = 1u << 3, /* conn_pause_read */
    MF_OVER = 1u << 4,        /* tell on_drain once below low water */
    MF_REPLAY = 1u << 5,      /* on the replay list */
    MF_PENDING = 1u << 6,     /* output committed since the last flush */
    MF_EOF = 1u << 7,         /* the peer closed its side */
    MF_RESERVED = 1u << 8,    /* a conn_out_reserve is outstanding */
};

struct conn_loop {
    struct conn *all; /* every live conn (doubly linked) */
    struct conn *closing;
    struct conn *replay;
    size_t count;
    struct memconn_hooks hooks;
    void *hooks_arg;
};

struct conn {
    struct conn_loop *cl;
    const struct conn_handler *h;
    void *ud;
    unsigned flags;
    struct conn *prev, *next;
    struct conn *next_close, *next_replay;
    const char *close_reason;
    /* peer -> conn: bytes not yet read */
    uint8_t *sock;
    size_t sock_head, sock_len, sock_cap; /* sock_len: from sock_head */
    size_t read_max;
    /* read but not consumed by on_data */
    uint8_t *in;
    size_t in_len, in_cap;
    /* conn -> peer */
    uint8_t *out;
    size_t out_head, out_len, out_cap;
    uint8_t *stage; /* conn_out_reserve staging buffer */
    size_t stage_len;
    size_t drain; /* bytes the peer reads per iteration */
    /* timers */
    bool deadline_armed;
    double idle;
    uint16_t port;
    char peer[INET6_ADDRSTRLEN];
};

static void mc_fail(const char *what)
{
    fprintf(stderr, "mem_conn: contract violation: %s\n", what);
    abort();
}

static void buf_append(uint8_t **buf, size_t *len, size_t *cap, const void *p,
                       size_t n)
{
    if (n == 0)
        return;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n)
            c *= 2;
        *buf = xrealloc(*buf, c);
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* ---- conn.h ----------------------------------------------------------- */

struct conn_loop *conn_loop_new(struct ev_loop *loop, struct log *lg)
{
    (void)loop;
    (void)lg;
    return xcalloc(1, sizeof(struct conn_loop));
}

void conn_loop_free(struct conn_loop *cl)
{
    if (cl == NULL)
        return;
    if (cl->count != 0)
        mc_fail("conn_loop_free with live connections");
    free(cl);
}

size_t conn_loop_count(const struct conn_loop *cl)
{
    return cl->count;
}

struct conn *conn_create(struct conn_loop *cl, int fd, struct tls_ctx *tls,
                         double handshake_timeout, const struct sockaddr *sa,
                         socklen_t salen, const struct conn_handler *h,
                         void *ud)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    (void)fd; /* never touched: the harness passes a fake one */
    (void)handshake_timeout;
    c->cl = cl;
    c->h = h;
    c->ud = ud;
    c->read_max = MC_READ_MAX;
    c->drain = SIZE_MAX;
    c->next = cl->all;
    if (cl->all)
        cl->all->prev = c;
    cl->all = c;
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
    if (cl->hooks.on_new)
        cl->hooks.on_new(cl->hooks_arg, c);
    if (tls)
        conn_close(c, "TLS not supported by mem_conn");
    return c;
}

void conn_push_layer(struct conn *c, struct transport *layer)
{
    (void)c;
    (void)layer;
    mc_fail("transport layers are not modelled by mem_conn");
}

void conn_insert_layer(struct conn *c, struct transport *layer)
{
    (void)c;
    (void)layer;
    mc_fail("transport layers are not modelled by mem_conn");
}

const struct proxy_hdr *conn_proxy(const struct conn *c)
{
    (void)c;
    return NULL;
}

void conn_start(struct conn *c)
{
    if (c->flags & (MF_CLOSING | MF_OPEN))
        return;
    c->flags |= MF_OPEN;
    if (c->h->on_open)
        c->h->on_open(c->ud, c);
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

/* Outgoing connections are not modelled: the conn closes at once with a
 * reason, as a refused connect would. */
struct conn *conn_connect(struct conn_loop *cl, const char *host, int port,
                          struct tls_ctx *tls, const char *sni, double timeout,
                          const struct conn_handler *h, void *ud)
{
    struct conn *c = conn_create(cl, -1, NULL, timeout, NULL, 0, h, ud);

    (void)tls;
    (void)sni;
    snprintf(c->peer, sizeof(c->peer), "%s", host);
    c->port = (uint16_t)port;
    conn_close(c, "connect: not modelled by mem_conn");
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
    (void)c;
    return false;
}

const struct tls_info *conn_tls_info(const struct conn *c)
{
    (void)c;
    return NULL;
}

bool conn_closing(const struct conn *c)
{
    return (c->flags & MF_CLOSING) != 0;
}

size_t conn_out_pending(const struct conn *c)
{
    return c->out_len - c->out_head;
}

uint8_t *conn_out_reserve(struct conn *c, size_t n)
{
    if (c->flags & MF_RESERVED)
        mc_fail("conn_out_reserve twice without a commit");
    c->flags |= MF_RESERVED;
    /* exact size (at least 1 byte so malloc(0) is not special) */
    c->stage = xmalloc(n ? n : 1);
    c->stage_len = n;
    return c->stage;
}

static void out_append(struct conn *c, const void *p, size_t n)
{
    /* like conn.c: kept after conn_close() while the conn is open, so a
     * final CONNACK/DISCONNECT goes out best-effort */
    if ((c->flags & MF_CLOSING) && !(c->flags & MF_OPEN))
        return;
    if (c->out_head > 0 && c->out_head == c->out_len)
        c->out_head = c->out_len = 0;
    if (c->out_head > 0 && c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_head, c->out_len - c->out_head);
        c->out_len -= c->out_head;
        c->out_head = 0;
    }
    buf_append(&c->out, &c->out_len, &c->out_cap, p, n);
    if (n)
        c->flags |= MF_PENDING;
    if (conn_out_pending(c) > CONN_OUT_HIWAT)
        c->flags |= MF_OVER;
}

void conn_out_commit(struct conn *c, size_t n)
{
    if (!(c->flags & MF_RESERVED))
        mc_fail("conn_out_commit without conn_out_reserve");
    if (n > c->stage_len)
        mc_fail("conn_out_commit past the reserved size");
    out_append(c, c->stage, n);
    free(c->stage);
    c->stage = NULL;
    c->stage_len = 0;
    c->flags &= ~MF_RESERVED;
}

void conn_write(struct conn *c, const void *p, size_t n)
{
    if (c->flags & MF_RESERVED)
        mc_fail("conn_write between reserve and commit");
    out_append(c, p, n);
}

void conn_set_deadline(struct conn *c, double secs)
{
    c->deadline_armed = secs > 0;
}

void conn_set_idle(struct conn *c, double secs)
{
    c->idle = secs > 0 ? secs : 0;
}

void conn_reserve_input(struct conn *c, size_t n)
{
    /* a hint: grow once (the upper layer checked n against its limits) */
    if (n > c->in_cap) {
        c->in = xrealloc(c->in, n);
        c->in_cap = n;
    }
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->flags & MF_CLOSING)
        return;
    c->flags |= MF_CLOSING;
    c->close_reason = reason;
    c->next_close = c->cl->closing;
    c->cl->closing = c;
}

void conn_pause_read(struct conn *c)
{
    c->flags |= MF_USER_PAUSED;
}

void conn_resume_read(struct conn *c)
{
    if (!(c->flags & MF_USER_PAUSED) || (c->flags & MF_CLOSING))
        return;
    c->flags &= ~MF_USER_PAUSED;
    if (!(c->flags & MF_REPLAY) && c->in_len > 0) {
        c->flags |= MF_REPLAY;
        c->next_replay = c->cl->replay;
        c->cl->replay = c;
    }
}

/* ---- input ------------------------------------------------------------ */

/* Offer buffered input plus buf[0..n) to on_data; keep the unconsumed
 * tail. n may be 0 to offer what is buffered (after a resume). */
static void deliver(struct conn *c, const uint8_t *buf, size_t n)
{
    uint8_t *copy;
    size_t len;
    ssize_t used;

    if (n == 0 && c->in_len == 0)
        return;
    buf_append(&c->in, &c->in_len, &c->in_cap, buf, n);
    len = c->in_len;
    if (len <= MC_COPY_MAX) {
        copy = xmalloc(len);
        memcpy(copy, c->in, len);
        used = c->h->on_data(c->ud, c, copy, len);
        free(copy);
    } else {
        /* big buffered packets: no copy per read (quadratic) */
        used = c->h->on_data(c->ud, c, c->in, len);
    }
    if (used < 0) {
        if (!(c->flags & MF_CLOSING))
            mc_fail("on_data returned -1 without conn_close");
        return;
    }
    if ((size_t)used > len)
        mc_fail("on_data consumed more than it was offered");
    if (c->flags & MF_CLOSING)
        return;
    if (used > 0)
        memmove(c->in, c->in + used, len - (size_t)used);
    c->in_len = len - (size_t)used;
    if (c->in_len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    if (conn_out_pending(c) > CONN_OUT_HIWAT && !(c->flags & MF_PAUSED))
        c->flags |= MF_PAUSED | MF_OVER;
}

bool memconn_readable(const struct conn *c)
{
    return !(c->flags & (MF_CLOSING | MF_PAUSED | MF_USER_PAUSED));
}

/* One read callback: at most read_max bytes, or the EOF. */
static void read_once(struct conn *c)
{
    size_t want = c->read_max, n;
    uint8_t *chunk;

    /* any segmentation of a stream is valid; keep big bodies cheap */
    if (c->sock_len > MC_BIG_SOCK && want < MC_BIG_READ)
        want = MC_BIG_READ;
    n = c->sock_len < want ? c->sock_len : want;

    if (!memconn_readable(c))
        return;
    if (n == 0) {
        if (c->flags & MF_EOF)
            conn_close(c, "connection closed by peer");
        return;
    }
    chunk = xmalloc(n);
    memcpy(chunk, c->sock + c->sock_head, n);
    c->sock_head += n;
    c->sock_len -= n;
    if (c->sock_len == 0) {
        free(c->sock);
        c->sock = NULL;
        c->sock_head = c->sock_cap = 0;
    }
    deliver(c, chunk, n);
    free(chunk);
}

static bool wants_read(const struct conn *c)
{
    return memconn_readable(c) && (c->sock_len > 0 || (c->flags & MF_EOF));
}

/* ---- output ----------------------------------------------------------- */

/* The peer reads up to c->drain bytes. */
static void flush(struct conn *c)
{
    struct conn_loop *cl = c->cl;
    size_t n = conn_out_pending(c);

    c->flags &= ~MF_PENDING;
    if (n > c->drain)
        n = c->drain;
    if (n == 0)
        return;
    if (cl->hooks.on_output)
        cl->hooks.on_output(cl->hooks_arg, c, c->ud, c->out + c->out_head, n);
    c->out_head += n;
    if (c->out_head == c->out_len) {
        free(c->out);
        c->out = NULL;
        c->out_head = c->out_len = c->out_cap = 0;
    }
    if (conn_out_pending(c) >= CONN_OUT_LOWAT || (c->flags & MF_CLOSING))
        return;
    c->flags &= ~MF_PAUSED;
    if (c->flags & MF_OVER) {
        c->flags &= ~MF_OVER;
        if (c->h->on_drain)
            c->h->on_drain(c->ud, c);
    }
}

static void conn_free(struct conn *c)
{
    struct conn_loop *cl = c->cl;
    bool complete;

    /* best effort, like conn.c: one write of what is queued */
    if ((c->flags & MF_OPEN) && conn_out_pending(c) > 0)
        flush(c);
    complete = conn_out_pending(c) == 0;
    if (c->h->on_close)
        c->h->on_close(c->ud, c, c->close_reason ? c->close_reason : "closed");
    if (c->flags & MF_RESERVED)
        mc_fail("conn freed with a reserve outstanding");
    if (cl->hooks.on_free)
        cl->hooks.on_free(cl->hooks_arg, c, complete);
    if (c->prev)
        c->prev->next = c->next;
    else
        cl->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->sock);
    free(c->in);
    free(c->out);
    cl->count--;
    free(c);
}

/* The ev_prepare work of conn.c: replay, flush, deferred closes. Returns
 * true when it did anything. */
static bool prepare(struct conn_loop *cl)
{
    bool did = false;
    unsigned rounds = 0;
    bool again;

    do {
        if (++rounds > MC_MAX_ITER)
            mc_fail("prepare does not settle (livelock)");
        again = false;
        while (cl->replay) {
            struct conn *c = cl->replay;
            cl->replay = c->next_replay;
            c->flags &= ~MF_REPLAY;
            did = true;
            if (c->flags & (MF_CLOSING | MF_USER_PAUSED))
                continue;
            deliver(c, NULL, 0);
        }
        for (struct conn *c = cl->all; c; c = c->next) {
            if ((c->flags & MF_PENDING) && !(c->flags & MF_CLOSING)) {
                flush(c);
                did = true;
            }
        }
        while (cl->closing) {
            struct conn *c = cl->closing;
            cl->closing = c->next_close;
            if (c->flags & MF_REPLAY) {
                struct conn **pp = &cl->replay;
                while (*pp && *pp != c)
                    pp = &(*pp)->next_replay;
                if (*pp)
                    *pp = c->next_replay;
            }
            conn_free(c);
            did = true;
        }
        if (cl->replay)
            again = true;
        for (struct conn *c = cl->all; c && !again; c = c->next)
            if ((c->flags & MF_PENDING) && !(c->flags & MF_CLOSING))
                again = true;
    } while (again);
    return did;
}

/* ---- harness API ------------------------------------------------------- */

void memconn_set_hooks(struct conn_loop *cl, const struct memconn_hooks *h,
                       void *arg)
{
    cl->hooks = *h;
    cl->hooks_arg = arg;
}

void memconn_push(struct conn *c, const void *p, size_t n)
{
    if (c->flags & (MF_CLOSING | MF_EOF))
        return;
    if (c->sock_head > 0) {
        memmove(c->sock, c->sock + c->sock_head, c->sock_len);
        c->sock_head = 0;
    }
    buf_append(&c->sock, &c->sock_len, &c->sock_cap, p, n);
    read_once(c);
}

void memconn_peer_eof(struct conn *c)
{
    c->flags |= MF_EOF;
    read_once(c);
}

void memconn_set_read_max(struct conn *c, size_t n)
{
    c->read_max = n ? n : MC_READ_MAX;
}

void memconn_set_drain(struct conn *c, size_t per_iter)
{
    c->drain = per_iter;
    if (conn_out_pending(c) > 0)
        c->flags |= MF_PENDING;
}

bool memconn_timer_armed(const struct conn *c, enum conn_timeout why)
{
    if (c->flags & MF_CLOSING)
        return false;
    return why == CONN_TIMEOUT_DEADLINE ? c->deadline_armed : c->idle > 0;
}

bool memconn_fire_timer(struct conn *c, enum conn_timeout why)
{
    if (!memconn_timer_armed(c, why))
        return false;
    if (why == CONN_TIMEOUT_DEADLINE)
        c->deadline_armed = false;
    c->h->on_timeout(c->ud, c, why);
    return true;
}

unsigned memconn_run(struct conn_loop *cl)
{
    unsigned iter = 0;

    for (;;) {
        bool did = prepare(cl);
        for (struct conn *c = cl->all; c; c = c->next) {
            if (wants_read(c)) {
                read_once(c);
                did = true;
            }
            /* a slow peer reads some more each iteration */
            if (conn_out_pending(c) > 0 && c->drain > 0 &&
                !(c->flags & MF_CLOSING))
                c->flags |= MF_PENDING;
        }
        if (!did)
            return iter;
        if (++iter > MC_MAX_ITER)
            mc_fail("loop does not settle (livelock)");
    }
}

/* Moving connections between threads: the in-memory transport runs one
 * broker on one loop (no hub), so broker code never calls these here. */
void conn_detach(struct conn *c, const uint8_t *rest, size_t n)
{
    (void)c;
    (void)rest;
    (void)n;
    abort();
}

void conn_attach(struct conn *c, struct conn_loop *cl, void *ud)
{
    (void)c;
    (void)cl;
    (void)ud;
    abort();
}

void conn_destroy_detached(struct conn *c)
{
    (void)c;
    abort();
}
