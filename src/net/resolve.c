/*
 * resolve.c - non-blocking name resolution in a libev loop with c-ares
 * (see resolve.h).
 *
 *   struct resolve
 *     +-- ch       a c-ares channel of its own; its sock_state_cb keeps
 *     +-- socks[]  one ev_io per socket c-ares uses (what it waits for)
 *     +-- timer    c-ares's next timeout; fires at once to deliver a
 *                  result known before the loop ran (IP literal, hosts)
 *     +-- addrs[]  the result, kept until fn is called from the loop
 */
#include "resolve.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <ev.h>

#include "util.h"

struct sock {
    ev_io io;
    int fd; /* -1: slot free */
};

struct resolve {
    struct ev_loop *loop;
    ares_channel ch;
    bool have_ch;
    bool done;  /* the result (addrs or why) is known */
    bool dying; /* being freed: c-ares callbacks do nothing */
    struct sock socks[ARES_GETSOCK_MAXNUM];
    ev_timer timer;
    resolve_fn fn;
    void *ud;
    struct resolve_addr addrs[RESOLVE_MAX_ADDRS];
    size_t n;
    char why[200];
};

static void q_free(struct resolve *q)
{
    q->dying = true;
    ev_timer_stop(q->loop, &q->timer);
    if (q->have_ch)
        ares_destroy(q->ch); /* closes its sockets: sock_cb stops watchers */
    for (size_t i = 0; i < ARES_GETSOCK_MAXNUM; i++)
        if (q->socks[i].fd >= 0)
            ev_io_stop(q->loop, &q->socks[i].io);
    free(q);
}

static void deliver(struct resolve *q)
{
    ev_timer_stop(q->loop, &q->timer);
    q->fn(q->ud, q->addrs, q->n, q->n ? NULL : q->why);
    q_free(q);
}

/* after_ares: deliver a known result, else wait for c-ares's timeout. */
static void after_ares(struct resolve *q)
{
    struct timeval tv, *tvp;

    if (q->done) {
        deliver(q);
        return;
    }
    tvp = ares_timeout(q->ch, NULL, &tv);
    ev_timer_stop(q->loop, &q->timer);
    ev_timer_set(&q->timer,
                 tvp ? (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6 : 1.0,
                 0.);
    ev_timer_start(q->loop, &q->timer);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct resolve *q = w->data;
    int fd = w->fd;

    (void)loop;
    ares_process_fd(q->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    after_ares(q);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct resolve *q = w->data;

    (void)loop;
    (void)revents;
    if (!q->done && q->have_ch)
        ares_process_fd(q->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    after_ares(q);
}

/* sock_cb: c-ares opened, re-armed or closed one of its sockets. */
static void sock_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolve *q = data;
    struct sock *s = NULL, *free_slot = NULL;

    for (size_t i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        if (q->socks[i].fd == fd)
            s = &q->socks[i];
        else if (q->socks[i].fd < 0 && free_slot == NULL)
            free_slot = &q->socks[i];
    }
    if (s != NULL)
        ev_io_stop(q->loop, &s->io);
    if (!readable && !writable) {
        if (s != NULL)
            s->fd = -1;
        return;
    }
    if (s == NULL) {
        if (free_slot == NULL)
            return; /* cannot happen: c-ares uses at most that many */
        s = free_slot;
        s->fd = fd;
    }
    ev_io_init(&s->io, io_cb, fd,
               (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    s->io.data = q;
    if (!q->dying)
        ev_io_start(q->loop, &s->io);
}

/* gai_cb: c-ares's answer; kept until the loop delivers it. */
static void gai_cb(void *arg, int status, int timeouts,
                   struct ares_addrinfo *res)
{
    struct resolve *q = arg;

    (void)timeouts;
    if (q->dying) {
        ares_freeaddrinfo(res);
        return;
    }
    q->done = true;
    if (status != ARES_SUCCESS || res == NULL) {
        snprintf(q->why, sizeof(q->why), "%s", ares_strerror(status));
        ares_freeaddrinfo(res);
        return;
    }
    for (struct ares_addrinfo_node *n = res->nodes;
         n != NULL && q->n < RESOLVE_MAX_ADDRS; n = n->ai_next) {
        if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
            n->ai_addrlen > sizeof(q->addrs[0].sa))
            continue;
        q->addrs[q->n].family = n->ai_family;
        q->addrs[q->n].len = (socklen_t)n->ai_addrlen;
        memcpy(&q->addrs[q->n].sa, n->ai_addr, n->ai_addrlen);
        q->n++;
    }
    if (q->n == 0)
        snprintf(q->why, sizeof(q->why), "no IPv4 or IPv6 address");
    ares_freeaddrinfo(res);
}

/* literal: an IP literal converted without any lookup; false when host
 * is a name. */
static bool literal(struct resolve *q, const char *host, const char *port)
{
    struct addrinfo hints, *ai = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    /* both flags: getaddrinfo does no lookup and cannot block */
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
        return false;
    if (ai->ai_addrlen <= sizeof(q->addrs[0].sa)) {
        q->addrs[0].family = ai->ai_family;
        q->addrs[0].len = ai->ai_addrlen;
        memcpy(&q->addrs[0].sa, ai->ai_addr, ai->ai_addrlen);
        q->n = 1;
    } else {
        snprintf(q->why, sizeof(q->why), "address too long");
    }
    freeaddrinfo(ai);
    q->done = true;
    return true;
}

struct resolve *resolve_start(struct ev_loop *loop, const char *host,
                              const char *port, resolve_fn fn, void *ud)
{
    struct resolve *q = xcalloc(1, sizeof(*q));
    struct ares_options o;
    struct ares_addrinfo_hints hints;
    int rc;

    q->loop = loop;
    q->fn = fn;
    q->ud = ud;
    for (size_t i = 0; i < ARES_GETSOCK_MAXNUM; i++)
        q->socks[i].fd = -1;
    ev_timer_init(&q->timer, timer_cb, 0., 0.);
    q->timer.data = q;
    if (host == NULL || host[0] == '\0') {
        snprintf(q->why, sizeof(q->why), "empty host name");
        q->done = true;
    } else if (!literal(q, host, port)) {
        memset(&o, 0, sizeof(o));
        o.sock_state_cb = sock_cb;
        o.sock_state_cb_data = q;
        rc = ares_init_options(&q->ch, &o, ARES_OPT_SOCK_STATE_CB);
        if (rc != ARES_SUCCESS) {
            snprintf(q->why, sizeof(q->why), "resolver set-up: %s",
                     ares_strerror(rc));
            q->done = true;
        } else {
            q->have_ch = true;
            memset(&hints, 0, sizeof(hints));
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_flags = ARES_AI_NUMERICSERV;
            /* may answer at once (hosts file): gai_cb only keeps it */
            ares_getaddrinfo(q->ch, host, port, &hints, gai_cb, q);
        }
    }
    if (q->done) {
        ev_timer_set(&q->timer, 0., 0.); /* deliver from the loop */
        ev_timer_start(loop, &q->timer);
    } else {
        after_ares(q);
    }
    return q;
}

void resolve_cancel(struct resolve *q)
{
    if (q != NULL)
        q_free(q);
}
