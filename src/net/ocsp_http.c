/*
 * ocsp_http.c - a non-blocking OCSP-over-HTTP exchange in the libev loop
 * (see ocsp_http.h).
 *
 *   struct ocsp_http
 *     +-- fd, io (ev_io)   the socket, watched for what OpenSSL wants
 *     +-- timer            the deadline; also fires at once to report a
 *                          failure to start from the loop
 *     +-- rctx             OSSL_HTTP_REQ_CTX over a socket BIO (NOCLOSE)
 *     +-- rs               the host name lookup in flight (resolve.h)
 *     +-- addrs, next      the resolved addresses, tried in turn
 */
#include "ocsp_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>

#include "ocsp.h"
#include "resolve.h"
#include "util.h"

struct ocsp_http {
    struct ev_loop *loop;
    ev_io io;
    ev_timer timer;
    int fd;
    bool connected;
    BIO *bio;
    OSSL_HTTP_REQ_CTX *rctx;
    OCSP_REQUEST *req;
    char *host, *port, *path;
    struct resolve *rs;
    struct resolve_addr addrs[RESOLVE_MAX_ADDRS];
    size_t naddrs, next;
    double timeout;
    ocsp_http_fn fn;
    void *ud;
    /* set when the exchange ended before the loop could run it */
    enum ocsp_http_end end;
    char why[200];
};

/* close_sock: drop the socket and what OpenSSL built over it. */
static void close_sock(struct ocsp_http *h)
{
    ev_io_stop(h->loop, &h->io);
    OSSL_HTTP_REQ_CTX_free(h->rctx);
    h->rctx = NULL;
    BIO_free(h->bio);
    h->bio = NULL;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    h->connected = false;
}

static void h_free(struct ocsp_http *h)
{
    ev_timer_stop(h->loop, &h->timer);
    resolve_cancel(h->rs);
    close_sock(h);
    OCSP_REQUEST_free(h->req);
    OPENSSL_free(h->host);
    OPENSSL_free(h->port);
    OPENSSL_free(h->path);
    free(h);
}

static void finish(struct ocsp_http *h, enum ocsp_http_end end,
                   const uint8_t *body, size_t len, const char *why)
{
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->timer);
    h->fn(h->ud, end, body, len, why);
    h_free(h);
}

/* fail_later: report from the loop (the caller is still in start). */
static void fail_later(struct ocsp_http *h, enum ocsp_http_end end,
                       const char *fmt, const char *a)
    __attribute__((format(printf, 3, 0)));
static void fail_later(struct ocsp_http *h, enum ocsp_http_end end,
                       const char *fmt, const char *a)
{
    h->end = end;
    snprintf(h->why, sizeof(h->why), fmt, a);
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->timer);
    ev_timer_set(&h->timer, 0., 0.);
    ev_timer_start(h->loop, &h->timer);
}

static void ossl_why(char *out, size_t outlen)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    snprintf(out, outlen, "%s", r ? r : "connection closed");
    ERR_clear_error();
}

/* step: one non-blocking round of the HTTP exchange. */
static void step(struct ocsp_http *h)
{
    int r;
    char why[200];

    ERR_clear_error();
    r = OSSL_HTTP_REQ_CTX_nbio(h->rctx);
    if (r == 1) {
        BIO *mem = OSSL_HTTP_REQ_CTX_get0_mem_bio(h->rctx);
        char *p = NULL;
        long n = mem ? BIO_get_mem_data(mem, &p) : 0;

        if (n <= 0 || p == NULL || (size_t)n > OCSP_MAX_RESPONSE) {
            finish(h, OCSP_HTTP_BAD, NULL, 0, "empty or over-long body");
            return;
        }
        finish(h, OCSP_HTTP_OK, (const uint8_t *)p, (size_t)n, NULL);
        return;
    }
    if (r == 0) {
        ossl_why(why, sizeof(why));
        finish(h, OCSP_HTTP_BAD, NULL, 0, why);
        return;
    }
    ev_io_stop(h->loop, &h->io);
    ev_io_set(&h->io, h->fd, BIO_should_write(h->bio) ? EV_WRITE : EV_READ);
    ev_io_start(h->loop, &h->io);
}

static void try_connect(struct ocsp_http *h, int last_err);

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ocsp_http *h = w->data;
    int err = 0;
    socklen_t el = sizeof(err);

    (void)loop;
    (void)revents;
    if (!h->connected) {
        if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
        if (err != 0) {
            try_connect(h, err); /* the next address, if any */
            return;
        }
        h->connected = true;
    }
    step(h);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ocsp_http *h = w->data;
    char why[200];

    (void)loop;
    (void)revents;
    if (h->why[0] != '\0') {
        snprintf(why, sizeof(why), "%s", h->why);
        finish(h, h->end, NULL, 0, why);
        return;
    }
    snprintf(why, sizeof(why), "no answer within %g s", h->timeout);
    finish(h, OCSP_HTTP_UNREACHABLE, NULL, 0, why);
}

/* setup_http: the request context over the connected socket. */
static int setup_http(struct ocsp_http *h)
{
    h->bio = BIO_new_socket(h->fd, BIO_NOCLOSE);
    if (h->bio == NULL)
        return -1;
    h->rctx = OSSL_HTTP_REQ_CTX_new(h->bio, h->bio, 0);
    if (h->rctx == NULL)
        return -1;
    OSSL_HTTP_REQ_CTX_set_max_response_length(h->rctx, OCSP_MAX_RESPONSE);
    if (OSSL_HTTP_REQ_CTX_set_request_line(h->rctx, 1, NULL, NULL, h->path) !=
            1 ||
        OSSL_HTTP_REQ_CTX_add1_header(h->rctx, "Host", h->host) != 1 ||
        OSSL_HTTP_REQ_CTX_set_expected(h->rctx, "application/ocsp-response", 1,
                                       0, 0) != 1 ||
        OSSL_HTTP_REQ_CTX_set1_req(h->rctx, "application/ocsp-request",
                                   ASN1_ITEM_rptr(OCSP_REQUEST),
                                   (const ASN1_VALUE *)h->req) != 1)
        return -1;
    return 0;
}

/* try_connect: connect to the next resolved address (non-blocking); when
 * none is left, report the last error. From the loop only. */
static void try_connect(struct ocsp_http *h, int last_err)
{
    char why[200];

    close_sock(h);
    while (h->next < h->naddrs) {
        const struct resolve_addr *a = &h->addrs[h->next++];

        h->fd =
            socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (h->fd < 0) {
            last_err = errno;
            continue;
        }
        if (connect(h->fd, (const struct sockaddr *)&a->sa, a->len) != 0 &&
            errno != EINPROGRESS) {
            last_err = errno;
            close_sock(h);
            continue;
        }
        if (setup_http(h) != 0) {
            char e[160];
            ossl_why(e, sizeof(e));
            snprintf(why, sizeof(why), "HTTP set-up: %s", e);
            finish(h, OCSP_HTTP_UNREACHABLE, NULL, 0, why);
            return;
        }
        ev_io_set(&h->io, h->fd, EV_WRITE);
        ev_io_start(h->loop, &h->io);
        return;
    }
    snprintf(why, sizeof(why), "connect: %s", strerror(last_err));
    finish(h, OCSP_HTTP_UNREACHABLE, NULL, 0, why);
}

/* resolved: the responder's addresses (or why there are none). */
static void resolved(void *ud, const struct resolve_addr *a, size_t n,
                     const char *why)
{
    struct ocsp_http *h = ud;
    char msg[260];

    h->rs = NULL;
    if (n == 0) {
        snprintf(msg, sizeof(msg), "resolve %s: %s", h->host,
                 why ? why : "failed");
        finish(h, OCSP_HTTP_UNREACHABLE, NULL, 0, msg);
        return;
    }
    memcpy(h->addrs, a, n * sizeof(*a));
    h->naddrs = n;
    h->next = 0;
    try_connect(h, ECONNREFUSED);
}

struct ocsp_http *ocsp_http_start(struct ev_loop *loop, const char *url,
                                  const uint8_t *req, size_t reqlen,
                                  double timeout, ocsp_http_fn fn, void *ud)
{
    struct ocsp_http *h = xcalloc(1, sizeof(*h));
    const unsigned char *p = req;
    int ssl = 0;

    h->loop = loop;
    h->fd = -1;
    h->fn = fn;
    h->ud = ud;
    h->timeout = timeout;
    ev_io_init(&h->io, io_cb, -1, EV_WRITE);
    h->io.data = h;
    ev_timer_init(&h->timer, timer_cb, timeout, 0.);
    h->timer.data = h;
    ERR_clear_error();
    h->req = d2i_OCSP_REQUEST(NULL, &p, (long)reqlen);
    if (h->req == NULL) {
        fail_later(h, OCSP_HTTP_UNREACHABLE, "%s", "bad request");
        return h;
    }
    if (OSSL_HTTP_parse_url(url, &ssl, NULL, &h->host, &h->port, NULL, &h->path,
                            NULL, NULL) != 1) {
        ERR_clear_error();
        fail_later(h, OCSP_HTTP_UNREACHABLE, "bad responder URL '%s'", url);
        return h;
    }
    if (ssl) {
        fail_later(h, OCSP_HTTP_UNREACHABLE,
                   "https responder URL '%s': only http is supported", url);
        return h;
    }
    /* the deadline covers the lookup too; resolved() runs from the loop */
    ev_timer_start(loop, &h->timer);
    h->rs = resolve_start(loop, h->host, h->port, resolved, h);
    return h;
}

void ocsp_http_cancel(struct ocsp_http *h)
{
    if (h != NULL)
        h_free(h);
}
