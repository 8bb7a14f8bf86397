/*
 * nats_ev.c - libev adapter for cnats (nats_ev.h).
 *
 * The wanted state (socket, read, write) is kept under a mutex; whoever
 * changes it applies it at once when on the loop's thread, otherwise wakes
 * the loop (ev_async) to apply it there: libev watchers are only touched
 * on their loop's thread.
 */
#include "nats_ev.h"

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>

#include "util.h"

struct nats_ev {
    struct ev_loop *loop;
    pthread_t loop_thread;
    void (*on_read)(void *ud);
    void *ud;
    ev_io rd, wr;
    ev_async wake;
    pthread_mutex_t mu;
    /* wanted, under mu */
    natsConnection *nc;
    int fd; /* -1: detached */
    bool want_rd, want_wr;
    /* applied, loop thread only */
    int cur_fd;
};

static void apply(struct nats_ev *a)
{
    int fd;
    bool r, w;

    pthread_mutex_lock(&a->mu);
    fd = a->fd;
    r = a->want_rd;
    w = a->want_wr;
    pthread_mutex_unlock(&a->mu);
    if (fd != a->cur_fd) {
        ev_io_stop(a->loop, &a->rd);
        ev_io_stop(a->loop, &a->wr);
        a->cur_fd = fd;
        if (fd >= 0) {
            ev_io_set(&a->rd, fd, EV_READ);
            ev_io_set(&a->wr, fd, EV_WRITE);
        }
    }
    if (fd < 0)
        return;
    if (r && !ev_is_active(&a->rd))
        ev_io_start(a->loop, &a->rd);
    else if (!r && ev_is_active(&a->rd))
        ev_io_stop(a->loop, &a->rd);
    if (w && !ev_is_active(&a->wr))
        ev_io_start(a->loop, &a->wr);
    else if (!w && ev_is_active(&a->wr))
        ev_io_stop(a->loop, &a->wr);
}

static void changed(struct nats_ev *a)
{
    if (pthread_equal(pthread_self(), a->loop_thread))
        apply(a);
    else
        ev_async_send(a->loop, &a->wake);
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    apply(w->data);
}

static natsConnection *conn_of(struct nats_ev *a)
{
    natsConnection *nc;

    pthread_mutex_lock(&a->mu);
    nc = a->nc;
    pthread_mutex_unlock(&a->mu);
    return nc;
}

static void rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct nats_ev *a = w->data;
    natsConnection *nc = conn_of(a);

    (void)loop;
    (void)revents;
    if (nc == NULL)
        return;
    natsConnection_ProcessReadEvent(nc);
    a->on_read(a->ud);
}

static void wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct nats_ev *a = w->data;
    natsConnection *nc = conn_of(a);

    (void)loop;
    (void)revents;
    if (nc != NULL)
        natsConnection_ProcessWriteEvent(nc);
}

/* (Re)connected: poll the new socket for reads. */
static natsStatus attach_cb(void **user, void *loop, natsConnection *nc,
                            natsSock sock)
{
    struct nats_ev *a = loop;

    *user = a;
    pthread_mutex_lock(&a->mu);
    a->nc = nc;
    a->fd = (int)sock;
    a->want_rd = true;
    a->want_wr = false;
    pthread_mutex_unlock(&a->mu);
    changed(a);
    return NATS_OK;
}

static natsStatus read_cb(void *user, bool add)
{
    struct nats_ev *a = user;

    pthread_mutex_lock(&a->mu);
    a->want_rd = add;
    pthread_mutex_unlock(&a->mu);
    changed(a);
    return NATS_OK;
}

static natsStatus write_cb(void *user, bool add)
{
    struct nats_ev *a = user;

    pthread_mutex_lock(&a->mu);
    a->want_wr = add;
    pthread_mutex_unlock(&a->mu);
    changed(a);
    return NATS_OK;
}

static natsStatus detach_cb(void *user)
{
    struct nats_ev *a = user;

    pthread_mutex_lock(&a->mu);
    a->fd = -1;
    a->want_rd = a->want_wr = false;
    pthread_mutex_unlock(&a->mu);
    changed(a);
    return NATS_OK;
}

struct nats_ev *nats_ev_new(struct ev_loop *loop, void (*on_read)(void *ud),
                            void *ud)
{
    struct nats_ev *a = xcalloc(1, sizeof(*a));

    a->loop = loop;
    a->loop_thread = pthread_self();
    a->on_read = on_read;
    a->ud = ud;
    a->fd = a->cur_fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    ev_io_init(&a->rd, rd_cb, -1, EV_READ);
    ev_io_init(&a->wr, wr_cb, -1, EV_WRITE);
    a->rd.data = a->wr.data = a;
    ev_async_init(&a->wake, wake_cb);
    a->wake.data = a;
    ev_async_start(loop, &a->wake);
    return a;
}

natsStatus nats_ev_install(struct nats_ev *a, natsOptions *opts)
{
    return natsOptions_SetEventLoop(opts, a, attach_cb, read_cb, write_cb,
                                    detach_cb);
}

void nats_ev_free(struct nats_ev *a)
{
    if (a == NULL)
        return;
    ev_io_stop(a->loop, &a->rd);
    ev_io_stop(a->loop, &a->wr);
    ev_async_stop(a->loop, &a->wake);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
