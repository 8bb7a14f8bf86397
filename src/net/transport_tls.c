/*
 * transport_tls.c - the TLS transport: OpenSSL's SSL on the socket of the
 * transport below, for the whole connection (handshake and records).
 * tls.c builds the SSL and explains failed handshakes; this file keeps
 * what driving it needs:
 *   - the length of a write OpenSSL asked to retry (SSL_write must be
 *     called again with the same length; SSL_MODE_ACCEPT_MOVING_WRITE_
 *     BUFFER lets the bytes move), hidden from conn;
 *   - the snapshot of the established connection (tls_info);
 *   - the transports below, whose handshakes (a PROXY header) complete
 *     before the first TLS byte.
 * With SSL_MODE_RELEASE_BUFFERS an idle connection holds no record
 * buffers.
 */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls_ssl.h"
#include "util.h"

struct xprt_tls {
    struct transport base;
    SSL *ssl;
    struct tls_info *info; /* once established */
    size_t wlen;           /* length of an SSL_write to retry, 0 = none */
    bool lower_done;       /* the handshakes below have completed */
};

static const struct xprt_stage tls_server_stage = {
    .event = "tls_rejected",
    .what = "TLS handshake failed",
    .timeout = "handshake timeout",
};

static const struct xprt_stage tls_client_stage = {
    .event = "tls_failed",
    .what = "TLS",
    .timeout = "handshake timeout",
};

static enum xprt_io from_tls(enum tls_io r)
{
    switch (r) {
    case TLS_IO_OK:
        return XPRT_OK;
    case TLS_IO_WANT_READ:
        return XPRT_WANT_READ;
    case TLS_IO_WANT_WRITE:
        return XPRT_WANT_WRITE;
    case TLS_IO_CLOSED:
        return XPRT_CLOSED;
    case TLS_IO_ERROR:
    default:
        return XPRT_ERROR;
    }
}

static enum xprt_io xtls_handshake(struct transport *t, char *why,
                                   size_t whylen,
                                   const struct xprt_stage **stage)
{
    struct xprt_tls *x = (struct xprt_tls *)t;
    struct transport *lo = t->lower;
    enum xprt_io r;

    if (!x->lower_done && lo != NULL && lo->ops->handshake != NULL) {
        r = lo->ops->handshake(lo, why, whylen, stage);
        if (r != XPRT_OK)
            return r;
    }
    x->lower_done = true;
    *stage = t->ops->stage;
    r = from_tls(tls_handshake(x->ssl, why, whylen));
    if (r == XPRT_OK)
        x->info = tls_info_new(x->ssl);
    return r;
}

static enum xprt_io xtls_read(struct transport *t, void *buf, size_t len,
                              size_t *n)
{
    struct xprt_tls *x = (struct xprt_tls *)t;
    enum xprt_io r = from_tls(tls_read(x->ssl, buf, len, n));

    if (r == XPRT_ERROR)
        t->err = "TLS read error";
    return r;
}

static enum xprt_io xtls_write(struct transport *t, const void *buf, size_t len,
                               size_t *n)
{
    struct xprt_tls *x = (struct xprt_tls *)t;
    enum xprt_io r;

    if (x->wlen != 0)
        len = x->wlen; /* OpenSSL wants the same length again */
    r = from_tls(tls_write(x->ssl, buf, len, n));
    switch (r) {
    case XPRT_OK:
        x->wlen = 0;
        break;
    case XPRT_WANT_READ:
    case XPRT_WANT_WRITE:
        x->wlen = len;
        break;
    default:
        t->err = "TLS write error";
        break;
    }
    return r;
}

static size_t xtls_pending(const struct transport *t)
{
    const struct xprt_tls *x = (const struct xprt_tls *)t;
    int n = SSL_pending(x->ssl);

    return n > 0 ? (size_t)n : 0;
}

static void xtls_shutdown(struct transport *t)
{
    struct xprt_tls *x = (struct xprt_tls *)t;

    ERR_clear_error();
    (void)SSL_shutdown(x->ssl);
    ERR_clear_error();
}

static void xtls_free(struct transport *t)
{
    struct xprt_tls *x = (struct xprt_tls *)t;

    SSL_free(x->ssl);
    tls_info_free(x->info);
    free(x);
}

static const struct tls_info *xtls_peer_info(const struct transport *t)
{
    return ((const struct xprt_tls *)t)->info;
}

static const struct xprt_ops tls_server_ops = {
    .handshake = xtls_handshake,
    .read = xtls_read,
    .write = xtls_write,
    .pending = xtls_pending,
    .shutdown = xtls_shutdown,
    .free = xtls_free,
    .peer_info = xtls_peer_info,
    .secure = true,
    .stage = &tls_server_stage,
};

static const struct xprt_ops tls_client_ops = {
    .handshake = xtls_handshake,
    .read = xtls_read,
    .write = xtls_write,
    .pending = xtls_pending,
    .shutdown = xtls_shutdown,
    .free = xtls_free,
    .peer_info = xtls_peer_info,
    .secure = true,
    .stage = &tls_client_stage,
};

static struct transport *xtls_new(SSL *ssl, const struct xprt_ops *ops,
                                  struct transport *lower)
{
    struct xprt_tls *x;

    if (ssl == NULL)
        return NULL;
    x = xcalloc(1, sizeof(*x));
    x->base.ops = ops;
    x->base.lower = lower;
    x->base.fd = lower->fd;
    x->ssl = ssl;
    return &x->base;
}

struct transport *transport_tls_server(struct tls_ctx *ctx,
                                       struct transport *lower)
{
    return xtls_new(tls_new_ssl(ctx, lower->fd), &tls_server_ops, lower);
}

struct transport *transport_tls_client(struct tls_ctx *ctx,
                                       struct transport *lower, const char *sni)
{
    return xtls_new(tls_new_client_ssl(ctx, lower->fd, sni), &tls_client_ops,
                    lower);
}
