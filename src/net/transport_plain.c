/*
 * transport_plain.c - the plain socket transport (TCP or unix): read() and
 * write() on the non-blocking fd, errno mapped to enum xprt_io. An
 * outgoing socket whose connect() is in progress has a handshake that
 * completes when the kernel reports the connection established.
 */
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static const struct xprt_stage plain_connect_stage = {
    .event = "connect_failed",
    .what = "connect",
    .timeout = "timed out",
};

static enum xprt_io plain_read(struct transport *t, void *buf, size_t len,
                               size_t *n)
{
    ssize_t r = read(t->fd, buf, len);

    if (r > 0) {
        *n = (size_t)r;
        return XPRT_OK;
    }
    *n = 0;
    if (r == 0)
        return XPRT_CLOSED;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return XPRT_WANT_READ;
    t->err =
        errno == ECONNRESET ? "connection reset by peer" : "socket read error";
    return XPRT_ERROR;
}

static enum xprt_io plain_write(struct transport *t, const void *buf,
                                size_t len, size_t *n)
{
    ssize_t r = write(t->fd, buf, len);

    if (r >= 0) {
        *n = (size_t)r;
        return XPRT_OK;
    }
    *n = 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return XPRT_WANT_WRITE;
    t->err = errno == EPIPE || errno == ECONNRESET ? "connection reset by peer"
                                                   : "socket write error";
    return XPRT_ERROR;
}

static void plain_free(struct transport *t)
{
    free(t);
}

/* connect() in progress: done when SO_ERROR is clear and the socket has
 * a peer; the first step runs before the socket is writable. */
static enum xprt_io plain_connect_step(struct transport *t, char *why,
                                       size_t whylen,
                                       const struct xprt_stage **stage)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss), el = sizeof(int);
    int e = 0;

    *stage = &plain_connect_stage;
    if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
        e = errno;
    if (e == 0) {
        if (getpeername(t->fd, (struct sockaddr *)&ss, &sl) == 0)
            return XPRT_OK;
        if (errno == ENOTCONN)
            return XPRT_WANT_WRITE;
        e = errno;
    }
    snprintf(why, whylen, "%s", strerror(e));
    return XPRT_ERROR;
}

static const struct xprt_ops plain_ops = {
    .read = plain_read,
    .write = plain_write,
    .free = plain_free,
};

static const struct xprt_ops plain_connecting_ops = {
    .handshake = plain_connect_step,
    .read = plain_read,
    .write = plain_write,
    .free = plain_free,
    .stage = &plain_connect_stage,
};

static struct transport *plain_new(int fd, const struct xprt_ops *ops)
{
    struct transport *t = xcalloc(1, sizeof(*t));

    t->ops = ops;
    t->fd = fd;
    return t;
}

struct transport *transport_plain_new(int fd)
{
    return plain_new(fd, &plain_ops);
}

struct transport *transport_plain_connecting(int fd)
{
    return plain_new(fd, &plain_connecting_ops);
}
