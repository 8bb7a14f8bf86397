/*
 * test_conn.c - the connection layer over real sockets in a real libev
 * loop: a test layer stacked over the plain transport (transport.h) with
 * bytes both ways, back-pressure and partial writes, and close; outgoing
 * connections (conn_connect) in plain and TLS, with the reasons of a
 * refused connect, a failed certificate check and a handshake timeout.
 *
 * The TLS cases build the development PKI with certs/mkcerts.sh (found
 * through $MQTTD_SOURCE_DIR, default ".") in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "conf.h"
#include "conn.h"
#include "log.h"
#include "tls.h"
#include "transport.h"
#include "util.h"

#define WAIT_SECS 10.0

/* ------------------------------------------------------------------------ */
/* A trivial layer: a 4-byte greeting each way in its handshake (like a    */
/* PROXY header, consumed before the first byte of the layer above), then   */
/* every byte XORed with a key both ways.                                   */

static const uint8_t GREETING[4] = {'H', 'E', 'L', 'O'};
#define XOR_KEY 0x5a

struct xor_layer {
    struct transport base;
    size_t sent, got; /* greeting bytes written / read */
    uint8_t *wbuf;
    size_t wcap;
};

static const struct xprt_stage xor_stage = {
    .event = NULL,
    .what = "test layer",
    .timeout = "greeting timeout",
};

static enum xprt_io xor_handshake(struct transport *t, char *why, size_t whylen,
                                  const struct xprt_stage **stage)
{
    struct xor_layer *x = (struct xor_layer *)t;
    struct transport *lo = t->lower;
    uint8_t in[sizeof(GREETING)];
    enum xprt_io r;
    size_t n;

    *stage = &xor_stage;
    while (x->sent < sizeof(GREETING)) {
        r = lo->ops->write(lo, GREETING + x->sent, sizeof(GREETING) - x->sent,
                           &n);
        if (r != XPRT_OK)
            return r;
        x->sent += n;
    }
    while (x->got < sizeof(GREETING)) {
        /* exactly the greeting: what follows belongs to the layer above */
        r = lo->ops->read(lo, in, sizeof(GREETING) - x->got, &n);
        if (r != XPRT_OK) {
            if (r == XPRT_CLOSED)
                snprintf(why, whylen, "closed during greeting");
            return r;
        }
        if (memcmp(in, GREETING + x->got, n) != 0) {
            snprintf(why, whylen, "bad greeting");
            return XPRT_ERROR;
        }
        x->got += n;
    }
    return XPRT_OK;
}

static enum xprt_io xor_read(struct transport *t, void *buf, size_t len,
                             size_t *n)
{
    struct transport *lo = t->lower;
    enum xprt_io r = lo->ops->read(lo, buf, len, n);
    uint8_t *p = buf;
    size_t i;

    for (i = 0; r == XPRT_OK && i < *n; i++)
        p[i] ^= XOR_KEY;
    if (r == XPRT_ERROR)
        t->err = lo->err;
    return r;
}

/* The same bytes XOR the same key give the same output: a retried write
 * offers the lower transport what it was offered before. */
static enum xprt_io xor_write(struct transport *t, const void *buf, size_t len,
                              size_t *n)
{
    struct xor_layer *x = (struct xor_layer *)t;
    struct transport *lo = t->lower;
    const uint8_t *p = buf;
    enum xprt_io r;
    size_t i;

    if (len > x->wcap) {
        x->wbuf = xrealloc(x->wbuf, len);
        x->wcap = len;
    }
    for (i = 0; i < len; i++)
        x->wbuf[i] = p[i] ^ XOR_KEY;
    r = lo->ops->write(lo, x->wbuf, len, n);
    if (r == XPRT_ERROR)
        t->err = lo->err;
    return r;
}

static size_t xor_pending(const struct transport *t)
{
    const struct transport *lo = t->lower;

    return lo->ops->pending ? lo->ops->pending(lo) : 0;
}

static void xor_free(struct transport *t)
{
    struct xor_layer *x = (struct xor_layer *)t;

    free(x->wbuf);
    free(x);
}

static const struct xprt_ops xor_ops = {
    .handshake = xor_handshake,
    .read = xor_read,
    .write = xor_write,
    .pending = xor_pending,
    .free = xor_free,
    .stage = &xor_stage,
};

static struct transport *xor_layer_new(void)
{
    struct xor_layer *x = xcalloc(1, sizeof(*x));

    x->base.ops = &xor_ops;
    return &x->base;
}

static void xor_buf(uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] ^= XOR_KEY;
}

/* ------------------------------------------------------------------------ */
/* The upper layer: records what the conn reports.                          */

struct up {
    struct conn *c;
    bool opened, closed;
    char reason[512];
    uint8_t *in;
    size_t in_len;
    unsigned drains;
};

static void up_open(void *ud, struct conn *c)
{
    struct up *u = ud;

    u->c = c;
    u->opened = true;
}

static ssize_t up_data(void *ud, struct conn *c, const uint8_t *buf, size_t len)
{
    struct up *u = ud;

    (void)c;
    u->in = xrealloc(u->in, u->in_len + len);
    memcpy(u->in + u->in_len, buf, len);
    u->in_len += len;
    return (ssize_t)len;
}

static void up_drain(void *ud, struct conn *c)
{
    (void)c;
    ((struct up *)ud)->drains++;
}

static void up_timeout(void *ud, struct conn *c, enum conn_timeout why)
{
    (void)ud;
    (void)why;
    conn_close(c, "timeout");
}

static void up_close(void *ud, struct conn *c, const char *reason)
{
    struct up *u = ud;

    (void)c;
    u->closed = true;
    snprintf(u->reason, sizeof(u->reason), "%s", reason);
}

static const struct conn_handler up_handler = {
    .on_open = up_open,
    .on_data = up_data,
    .on_drain = up_drain,
    .on_timeout = up_timeout,
    .on_close = up_close,
};

static void up_reset(struct up *u)
{
    free(u->in);
    memset(u, 0, sizeof(*u));
}

/* ------------------------------------------------------------------------ */
/* Fixture: one loop, its conn_loop, a logger.                              */

struct fx {
    struct ev_loop *loop;
    struct conn_loop *cl;
    struct log *lg;
    char pki[PATH_MAX];
};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));

    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->lg = log_new();
    fx->cl = conn_loop_new(fx->loop, fx->lg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(conn_loop_count(fx->cl), 0);
    conn_loop_free(fx->cl);
    ev_loop_destroy(fx->loop);
    log_free(fx->lg);
    free(fx);
    return 0;
}

/* Run the loop until *flag is true (fails after WAIT_SECS). */
static void run_until(struct fx *fx, const bool *flag)
{
    ev_tstamp end = ev_time() + WAIT_SECS;

    while (!*flag) {
        if (ev_time() > end)
            fail_msg("timed out waiting for the loop");
        ev_run(fx->loop, EVRUN_ONCE | EVRUN_NOWAIT);
        if (!*flag)
            usleep(1000);
    }
}

/* Read what is available on a non-blocking fd into *buf. */
static size_t drain_fd(int fd, uint8_t **buf, size_t *len)
{
    uint8_t tmp[65536];
    size_t total = 0;
    ssize_t n;

    while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
        *buf = xrealloc(*buf, *len + (size_t)n);
        memcpy(*buf + *len, tmp, (size_t)n);
        *len += (size_t)n;
        total += (size_t)n;
    }
    return total;
}

static void set_nonblock(int fd)
{
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* A listening TCP socket on 127.0.0.1 with an ephemeral port. */
static int listen_local(int *port)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* A layer stacked over the plain transport.                                */

static struct conn *layered_conn(struct fx *fx, struct up *u, int fd)
{
    struct conn *c =
        conn_create(fx->cl, fd, NULL, 5.0, NULL, 0, &up_handler, u);

    conn_push_layer(c, xor_layer_new());
    conn_start(c);
    u->c = c;
    return c;
}

static void test_layer_bytes_both_ways(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    uint8_t hello[4 + 5], *got = NULL, msg[] = "pong";
    size_t got_len = 0;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    layered_conn(fx, &u, sv[0]);
    assert_false(u.opened); /* the layer's handshake comes first */
    assert_false(conn_is_tls(u.c));
    assert_null(conn_tls_info(u.c));

    /* the greeting and the first data in one segment: the layer takes
     * exactly its greeting, the rest reaches the upper layer */
    memcpy(hello, GREETING, 4);
    memcpy(hello + 4, "ping!", 5);
    xor_buf(hello + 4, 5);
    assert_int_equal(write(sv[1], hello, sizeof(hello)),
                     (ssize_t)sizeof(hello));
    run_until(fx, &u.opened);
    while (u.in_len < 5) {
        ev_run(fx->loop, EVRUN_ONCE);
    }
    assert_memory_equal(u.in, "ping!", 5);

    /* down: XORed on the wire, after the layer's own greeting */
    conn_write(u.c, msg, 4);
    while (got_len < 8) {
        ev_run(fx->loop, EVRUN_ONCE | EVRUN_NOWAIT);
        drain_fd(sv[1], &got, &got_len);
    }
    assert_memory_equal(got, GREETING, 4);
    xor_buf(got + 4, 4);
    assert_memory_equal(got + 4, "pong", 4);

    /* close by the upper layer: the peer sees EOF */
    conn_close(u.c, "done");
    run_until(fx, &u.closed);
    assert_string_equal(u.reason, "done");
    assert_int_equal(read(sv[1], hello, sizeof(hello)), 0);
    close(sv[1]);
    free(got);
    up_reset(&u);
}

static void test_layer_back_pressure(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    const size_t total = 4u * 1024u * 1024u; /* well past CONN_OUT_HIWAT */
    uint8_t *src = xmalloc(total), *got = NULL;
    size_t got_len = 0, i;
    bool partial = false;
    int sv[2];

    for (i = 0; i < total; i++)
        src[i] = (uint8_t)(i * 7u + (i >> 13));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    layered_conn(fx, &u, sv[0]);
    assert_int_equal(write(sv[1], GREETING, 4), 4);
    run_until(fx, &u.opened);

    conn_write(u.c, src, total);
    assert_int_equal(conn_out_pending(u.c), total);
    /* one flush per loop iteration: the socket takes part of it */
    ev_run(fx->loop, EVRUN_ONCE | EVRUN_NOWAIT);
    partial = conn_out_pending(u.c) > 0 && conn_out_pending(u.c) < total;
    assert_true(partial);
    /* the peer reads slowly; EV_WRITE finishes the rest */
    while (got_len < total + 4) {
        ev_run(fx->loop, EVRUN_ONCE | EVRUN_NOWAIT);
        drain_fd(sv[1], &got, &got_len);
    }
    assert_int_equal(got_len, total + 4);
    assert_int_equal(conn_out_pending(u.c), 0);
    assert_true(u.drains >= 1); /* on_drain after going over high water */
    xor_buf(got + 4, total);
    assert_memory_equal(got + 4, src, total);

    /* close by the peer */
    close(sv[1]);
    run_until(fx, &u.closed);
    assert_string_equal(u.reason, "connection closed by peer");
    free(src);
    free(got);
    up_reset(&u);
}

static void test_layer_bad_greeting(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    layered_conn(fx, &u, sv[0]);
    assert_int_equal(write(sv[1], "HELP", 4), 4);
    run_until(fx, &u.closed);
    assert_false(u.opened);
    assert_string_equal(u.reason, "test layer: bad greeting");
    close(sv[1]);
    up_reset(&u);
}

static void test_layer_greeting_timeout(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    struct conn *c;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    c = conn_create(fx->cl, sv[0], NULL, 0.05, NULL, 0, &up_handler, &u);
    conn_push_layer(c, xor_layer_new());
    conn_start(c);
    run_until(fx, &u.closed);
    assert_string_equal(u.reason, "test layer: greeting timeout");
    close(sv[1]);
    up_reset(&u);
}

/* ------------------------------------------------------------------------ */
/* Outgoing connections.                                                    */

static void test_connect_plain(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    uint8_t *got = NULL, buf[16];
    size_t got_len = 0;
    int lfd, port, afd = -1;
    struct conn *c;

    lfd = listen_local(&port);
    c = conn_connect(fx->cl, "127.0.0.1", port, NULL, NULL, 5.0, &up_handler,
                     &u);
    run_until(fx, &u.opened);
    assert_ptr_equal(u.c, c);
    assert_string_equal(conn_peer_ip(c), "127.0.0.1");
    assert_int_equal(conn_peer_port(c), port);
    while (afd < 0) {
        afd = accept(lfd, NULL, NULL);
        if (afd < 0)
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    }
    set_nonblock(afd);
    conn_write(c, "up", 2);
    while (got_len < 2) {
        ev_run(fx->loop, EVRUN_ONCE | EVRUN_NOWAIT);
        drain_fd(afd, &got, &got_len);
    }
    assert_memory_equal(got, "up", 2);
    assert_int_equal(write(afd, "down", 4), 4);
    while (u.in_len < 4)
        ev_run(fx->loop, EVRUN_ONCE);
    assert_memory_equal(u.in, "down", 4);
    conn_close(c, "bye");
    run_until(fx, &u.closed);
    assert_int_equal(read(afd, buf, sizeof(buf)), 0);
    close(afd);
    close(lfd);
    free(got);
    up_reset(&u);
}

static void test_connect_refused(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    int lfd, port;

    lfd = listen_local(&port);
    close(lfd); /* nothing listens there now */
    conn_connect(fx->cl, "127.0.0.1", port, NULL, NULL, 5.0, &up_handler, &u);
    run_until(fx, &u.closed);
    assert_false(u.opened);
    assert_string_equal(u.reason, "connect: Connection refused");
    up_reset(&u);
}

/* ------------------------------------------------------------------------ */
/* TLS: a server conn (tls_ctx_new, accepted from a listener in the same    */
/* loop) and a client conn (conn_connect with tls_client_ctx_new).          */

struct tls_fx {
    struct fx *fx;
    struct tls_ctx *srv_ctx;
    int lfd;
    ev_io accept_w;
    struct up srv;
};

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tls_fx *t = w->data;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(t->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK);

    (void)revents;
    if (fd < 0)
        return;
    ev_io_stop(loop, w);
    t->srv.c = conn_new(t->fx->cl, fd, t->srv_ctx, 5.0, (struct sockaddr *)&ss,
                        sl, &up_handler, &t->srv);
}

static int tls_group_setup(void **state)
{
    struct fx *fx;
    const char *src = getenv("MQTTD_SOURCE_DIR");
    char cmd[2 * PATH_MAX + 64];

    setup(state);
    fx = *state;
    if (src == NULL || src[0] == '\0')
        src = ".";
    snprintf(fx->pki, sizeof(fx->pki), "%s/mqttd-test-conn-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(fx->pki) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s/certs/mkcerts.sh' '%s' >/dev/null", src,
             fx->pki);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_conn: '%s' failed (set MQTTD_SOURCE_DIR)\n", cmd);
        return -1;
    }
    return 0;
}

static int tls_group_teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->pki);
    if (system(cmd) != 0)
        fprintf(stderr, "test_conn: could not remove %s\n", fx->pki);
    return teardown(state);
}

static void pki(const struct fx *fx, const char *name, char *out)
{
    snprintf(out, PATH_MAX, "%s/%s", fx->pki, name);
}

static void tls_server_start(struct fx *fx, struct tls_fx *t, int *port)
{
    char cert[PATH_MAX], key[PATH_MAX], err[512];
    struct conf_tls ct;

    memset(t, 0, sizeof(*t));
    t->fx = fx;
    pki(fx, "server.crt", cert);
    pki(fx, "server.key", key);
    memset(&ct, 0, sizeof(ct));
    ct.certfile = cert;
    ct.keyfile = key;
    ct.cert_mode = CONF_CERT_NONE;
    ct.src = "test";
    t->srv_ctx = tls_ctx_new(&ct, fx->lg, err, sizeof(err));
    if (t->srv_ctx == NULL)
        fail_msg("tls_ctx_new: %s", err);
    t->lfd = listen_local(port);
    ev_io_init(&t->accept_w, accept_cb, t->lfd, EV_READ);
    t->accept_w.data = t;
    ev_io_start(fx->loop, &t->accept_w);
    /* the loop has not run since the group setup made the PKI (seconds
     * under load): deadlines start from now, not from a stale ev_now() */
    ev_now_update(fx->loop);
}

static void tls_server_stop(struct fx *fx, struct tls_fx *t)
{
    ev_io_stop(fx->loop, &t->accept_w);
    close(t->lfd);
    tls_ctx_unref(t->srv_ctx);
    up_reset(&t->srv);
}

static struct tls_ctx *client_ctx(struct fx *fx, const char *ca)
{
    char cafile[PATH_MAX], err[512];
    struct tls_ctx *c;

    pki(fx, ca, cafile);
    c = tls_client_ctx_new(cafile, NULL, NULL, NULL, false, "mqtt", err,
                           sizeof(err));
    if (c == NULL)
        fail_msg("tls_client_ctx_new: %s", err);
    return c;
}

static void test_connect_tls(void **state)
{
    struct fx *fx = *state;
    struct tls_fx t;
    struct up u = {0};
    struct tls_ctx *cc = client_ctx(fx, "ca.crt");
    struct conn *c;
    char desc[256];
    int port;

    tls_server_start(fx, &t, &port);
    c = conn_connect(fx->cl, "127.0.0.1", port, cc, "localhost", 5.0,
                     &up_handler, &u);
    tls_ctx_unref(cc); /* the connection keeps what it needs */
    run_until(fx, &u.opened);
    run_until(fx, &t.srv.opened);
    assert_true(conn_is_tls(c));
    assert_true(conn_is_tls(t.srv.c));
    assert_non_null(conn_tls_info(c));
    assert_non_null(tls_info_peer(conn_tls_info(c))); /* server cert */
    tls_describe(conn_tls_info(t.srv.c), desc, sizeof(desc));
    assert_non_null(strstr(desc, "no client certificate"));

    conn_write(c, "ping", 4);
    while (t.srv.in_len < 4)
        ev_run(fx->loop, EVRUN_ONCE);
    assert_memory_equal(t.srv.in, "ping", 4);
    conn_write(t.srv.c, "pong", 4);
    while (u.in_len < 4)
        ev_run(fx->loop, EVRUN_ONCE);
    assert_memory_equal(u.in, "pong", 4);

    /* close_notify from the client: a clean close on the server */
    conn_close(c, "bye");
    run_until(fx, &t.srv.closed);
    assert_string_equal(t.srv.reason, "connection closed by peer");
    assert_true(u.closed);
    tls_server_stop(fx, &t);
    up_reset(&u);
}

static void test_connect_tls_unknown_ca(void **state)
{
    struct fx *fx = *state;
    struct tls_fx t;
    struct up u = {0};
    struct tls_ctx *cc = client_ctx(fx, "other-ca.crt");
    int port;

    tls_server_start(fx, &t, &port);
    conn_connect(fx->cl, "127.0.0.1", port, cc, "localhost", 5.0, &up_handler,
                 &u);
    tls_ctx_unref(cc);
    run_until(fx, &u.closed);
    assert_false(u.opened);
    if (strncmp(u.reason, "TLS: certificate verify failed: ", 32) != 0)
        fail_msg("reason: %s", u.reason);
    run_until(fx, &t.srv.closed);
    tls_server_stop(fx, &t);
    up_reset(&u);
}

static void test_connect_tls_wrong_name(void **state)
{
    struct fx *fx = *state;
    struct tls_fx t;
    struct up u = {0};
    struct tls_ctx *cc = client_ctx(fx, "ca.crt");
    int port;

    tls_server_start(fx, &t, &port);
    conn_connect(fx->cl, "127.0.0.1", port, cc, "broker.example", 5.0,
                 &up_handler, &u);
    tls_ctx_unref(cc);
    run_until(fx, &u.closed);
    assert_false(u.opened);
    if (strstr(u.reason, "TLS: certificate verify failed: ") == NULL ||
        strstr(u.reason, "hostname mismatch") == NULL)
        fail_msg("reason: %s", u.reason);
    run_until(fx, &t.srv.closed);
    tls_server_stop(fx, &t);
    up_reset(&u);
}

/* A listener that accepts and never answers: the handshake deadline. */
static void test_connect_tls_timeout(void **state)
{
    struct fx *fx = *state;
    struct up u = {0};
    struct tls_ctx *cc = client_ctx(fx, "ca.crt");
    int lfd, port;

    lfd = listen_local(&port);
    conn_connect(fx->cl, "127.0.0.1", port, cc, "localhost", 0.1, &up_handler,
                 &u);
    tls_ctx_unref(cc);
    run_until(fx, &u.closed);
    assert_false(u.opened);
    assert_string_equal(u.reason, "TLS: handshake timeout");
    close(lfd);
    up_reset(&u);
}

/* ------------------------------------------------------------------------ */
/* Handshake budget: deferred handshake steps run after the iteration's     */
/* output of established connections is written.                            */

#define SLOW_N 4
#define SLOW_SPIN 0.0025 /* s per first handshake step: past the budget */

struct slow_watch {
    int echo_peer;  /* the established conn's peer end */
    bool echo_read; /* its data reached on_data */
    unsigned late;  /* steps that ran after echo_read, echo not written */
    unsigned after; /* steps that ran after echo_read */
};

/* the test's observer (a test binary runs one test at a time) */
static struct slow_watch *slow_w;

struct slow_layer {
    struct xor_layer x;
    bool spun;
};

static enum xprt_io slow_handshake(struct transport *t, char *why,
                                   size_t whylen,
                                   const struct xprt_stage **stage)
{
    struct slow_layer *s = (struct slow_layer *)t;

    if (!s->spun) {
        uint8_t b;
        ev_tstamp end = ev_time() + SLOW_SPIN;

        s->spun = true;
        while (ev_time() < end)
            ;
        if (slow_w->echo_read) {
            slow_w->after++;
            if (recv(slow_w->echo_peer, &b, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
                slow_w->late++;
        }
    }
    return xor_handshake(t, why, whylen, stage);
}

static const struct xprt_ops slow_ops = {
    .handshake = slow_handshake,
    .read = xor_read,
    .write = xor_write,
    .pending = xor_pending,
    .free = xor_free,
    .stage = &xor_stage,
};

/* echo: the established conn answers what it reads */
static ssize_t echo_data(void *ud, struct conn *c, const uint8_t *buf,
                         size_t len)
{
    struct up *u = ud;

    slow_w->echo_read = true;
    u->in_len += len;
    conn_write(c, buf, len);
    return (ssize_t)len;
}

static const struct conn_handler echo_handler = {
    .on_open = up_open,
    .on_data = echo_data,
    .on_drain = up_drain,
    .on_timeout = up_timeout,
    .on_close = up_close,
};

static void test_deferred_handshakes_after_writes(void **state)
{
    struct fx *fx = *state;
    struct slow_watch w = {0};
    struct up su[SLOW_N], eu = {0};
    int sp[SLOW_N][2], ep[2];
    uint8_t buf[16];
    bool all_open = false;
    int n_open;
    ev_tstamp end = ev_time() + WAIT_SECS;

    memset(su, 0, sizeof(su));
    slow_w = &w;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ep), 0);
    set_nonblock(ep[0]);
    set_nonblock(ep[1]);
    w.echo_peer = ep[1];
    conn_new(fx->cl, ep[0], NULL, 0, NULL, 0, &echo_handler, &eu);
    assert_true(eu.opened);
    for (int i = 0; i < SLOW_N; i++) {
        struct slow_layer *l = xcalloc(1, sizeof(*l));
        struct conn *c;

        l->x.base.ops = &slow_ops;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp[i]), 0);
        set_nonblock(sp[i][0]);
        set_nonblock(sp[i][1]);
        c = conn_create(fx->cl, sp[i][0], NULL, 5.0, NULL, 0, &up_handler,
                        &su[i]);
        conn_push_layer(c, &l->x.base);
        conn_start(c);
        assert_int_equal(write(sp[i][1], GREETING, 4), 4);
    }
    /* one iteration: one slow step fills the budget, the rest wait */
    ev_run(fx->loop, EVRUN_ONCE);
    n_open = 0;
    for (int i = 0; i < SLOW_N; i++)
        n_open += su[i].opened;
    assert_true(n_open < SLOW_N - 1);
    /* the established conn's request arrives while handshakes wait */
    assert_int_equal(write(ep[1], "ping", 4), 4);
    while (!all_open || eu.in_len < 4) {
        if (ev_time() > end)
            fail_msg("timed out waiting for the loop");
        ev_run(fx->loop, EVRUN_ONCE | EVRUN_NOWAIT);
        all_open = true;
        for (int i = 0; i < SLOW_N; i++)
            all_open = all_open && su[i].opened;
    }
    /* handshake steps did run after the request was read, and each of
     * them found the answer already written */
    assert_true(w.after > 0);
    assert_int_equal(w.late, 0);
    assert_int_equal(read(ep[1], buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    for (int i = 0; i < SLOW_N; i++) {
        conn_close(su[i].c, "done");
        run_until(fx, &su[i].closed);
        close(sp[i][1]);
        up_reset(&su[i]);
    }
    conn_close(eu.c, "done");
    run_until(fx, &eu.closed);
    close(ep[1]);
    up_reset(&eu);
    slow_w = NULL;
}

int main(void)
{
    /* as in the daemon (server.c): a write to a peer that went away is an
     * error return, not a signal that kills the test */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest plain[] = {
        cmocka_unit_test_setup_teardown(test_layer_bytes_both_ways, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_layer_back_pressure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_layer_bad_greeting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_layer_greeting_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connect_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_handshakes_after_writes,
                                        setup, teardown),
    };
    const struct CMUnitTest tls[] = {
        cmocka_unit_test(test_connect_tls),
        cmocka_unit_test(test_connect_tls_unknown_ca),
        cmocka_unit_test(test_connect_tls_wrong_name),
        cmocka_unit_test(test_connect_tls_timeout),
    };
    int rc = cmocka_run_group_tests_name("conn", plain, NULL, NULL);

    rc |= cmocka_run_group_tests_name("conn_tls", tls, tls_group_setup,
                                      tls_group_teardown);
    return rc;
}
