/*
 * test_tls_rec.c - unit tests for tls_rec.c, the TLS 1.3 record layer that
 * takes a connection over from OpenSSL after the server handshake. The
 * oracle is a real OpenSSL client on the other end of a socketpair: if
 * tls_rec derives a key or nonce wrongly, or frames a record or a
 * KeyUpdate badly, the client fails to decrypt or to parse.
 *
 * Covered: the three AEAD suites both ways; large transfers both ways with
 * small socket buffers (partial records in, queued ciphertext out);
 * KeyUpdate from the client (not requested, requested and answered, many
 * requests while the client does not read share one answer); the
 * rekey limit; close_notify both ways; tampered, oversized and plaintext
 * handshake records (TLS_IO_ERROR and the RFC 8446 alert the client
 * sees); a fatal alert from the client; 0, 2 and 5 session tickets sent
 * before the take; EOF without close_notify; connections tls_rec_take refuses
 * (TLS 1.2, a CCM suite, input OpenSSL already buffered); a record split
 * across reads; data the client sends right after its Finished.
 *
 * The server key and a self-signed certificate are made in memory (P-256).
 * For the tests that need to see or cut the client's records, a relay
 * sits between the two ends:
 *
 *   client SSL -- cfd ==pair A== rc  <pump()>  rs ==pair B== sfd -- tls_rec
 *
 * otherwise cfd and sfd are the two ends of one socketpair.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"
#include "tls_rec.h"

#define WAIT_MS 5000     /* safety bound for every poll */
#define MAX_STEPS 200000 /* bound for every IO loop */

/* ------------------------------------------------------------------------ */
/* Fixture: the server key and certificate, made once.                       */

struct fx {
    EVP_PKEY *key;
    X509 *cert;
};

static int group_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    X509_NAME *name;

    if (fx == NULL)
        return -1;
    fx->key = EVP_EC_gen("P-256");
    fx->cert = X509_new();
    if (fx->key == NULL || fx->cert == NULL)
        goto fail;
    if (X509_set_version(fx->cert, 2) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(fx->cert), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(fx->cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(fx->cert), 86400) == NULL ||
        X509_set_pubkey(fx->cert, fx->key) != 1)
        goto fail;
    name = X509_get_subject_name(fx->cert);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"localhost", -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(fx->cert, name) != 1 ||
        X509_sign(fx->cert, fx->key, EVP_sha256()) <= 0)
        goto fail;
    *state = fx;
    return 0;
fail:
    ERR_print_errors_fp(stderr);
    X509_free(fx->cert);
    EVP_PKEY_free(fx->key);
    free(fx);
    return -1;
}

static int group_teardown(void **state)
{
    struct fx *fx = *state;

    if (fx == NULL)
        return 0;
    X509_free(fx->cert);
    EVP_PKEY_free(fx->key);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* A connection: OpenSSL client, server SSL then tls_rec, optional relay.    */

struct relay_dir {
    uint8_t buf[16384];
    size_t len, off;
    bool eof;
};

struct pair {
    SSL_CTX *sctx, *cctx;
    SSL *ssl; /* server; NULL once tls_rec took over */
    SSL *cli;
    struct tls_rec *r;
    int cfd, sfd; /* the client's and the server's socket */
    int rc, rs;   /* relay ends facing cfd and sfd; -1 without relay */
    bool hold;    /* relay: leave client->server bytes to the test */
    struct relay_dir c2s, s2c;
    uint8_t *rbuf;    /* TLS_REC_READ_MIN bytes for tls_rec_read */
    uint8_t *scratch; /* TLS_REC_WRITE_MIN bytes for tls_rec_write */
};

struct opts {
    const char *suite;         /* client's TLS 1.3 suites, or NULL */
    const char *server_suites; /* server's TLS 1.3 suites, or NULL */
    int max_version;           /* client's maximum version, or 0 */
    int tickets;               /* NewSessionTickets sent: 0 means one,
                                  -1 none */
    bool relay;                /* put the relay in between */
    bool read_ahead;           /* server SSL read-ahead */
    const char *early;         /* client writes this as soon as its
                                  handshake is done, before the server's */
};

static const char *ssl_errstr(void)
{
    unsigned long e = ERR_peek_error();

    return e == 0 ? "(no OpenSSL error)" : ERR_reason_error_string(e);
}

static bool relay_move(struct relay_dir *d, int from, int to)
{
    bool moved = false;
    ssize_t k;
    int i;

    for (i = 0; i < 1000; i++) {
        bool step = false;

        if (d->off == d->len && !d->eof) {
            d->off = d->len = 0;
            k = read(from, d->buf, sizeof(d->buf));
            if (k > 0) {
                d->len = (size_t)k;
                step = true;
            } else if (k == 0) {
                d->eof = true;
                (void)shutdown(to, SHUT_WR);
                step = true;
            } else if (errno != EAGAIN) {
                fail_msg("relay read: %s", strerror(errno));
            }
        }
        if (d->off < d->len) {
            k = write(to, d->buf + d->off, d->len - d->off);
            if (k > 0) {
                d->off += (size_t)k;
                step = true;
            } else if (errno != EAGAIN) {
                fail_msg("relay write: %s", strerror(errno));
            }
        }
        if (!step)
            break;
        moved = true;
    }
    return moved;
}

/* pump: move what the relay can, both ways (client->server unless hold). */
static void pump(struct pair *p)
{
    if (p->rc < 0)
        return;
    if (!p->hold)
        (void)relay_move(&p->c2s, p->rc, p->rs);
    (void)relay_move(&p->s2c, p->rs, p->rc);
}

static void add_pfd(struct pollfd *pf, nfds_t *n, int fd, short ev)
{
    if (fd < 0)
        return;
    pf[*n].fd = fd;
    pf[*n].events = ev;
    pf[*n].revents = 0;
    (*n)++;
}

/* await2: poll fd1/fd2 (-1: none) and the relay until something is ready
 * (failing the test after WAIT_MS), then pump the relay. */
static void await2(struct pair *p, int fd1, short ev1, int fd2, short ev2)
{
    struct pollfd pf[6];
    nfds_t n = 0;
    int rc;

    add_pfd(pf, &n, fd1, ev1);
    add_pfd(pf, &n, fd2, ev2);
    if (p->rc >= 0) {
        if (!p->hold) {
            if (p->c2s.off < p->c2s.len)
                add_pfd(pf, &n, p->rs, POLLOUT);
            else if (!p->c2s.eof)
                add_pfd(pf, &n, p->rc, POLLIN);
        }
        if (p->s2c.off < p->s2c.len)
            add_pfd(pf, &n, p->rc, POLLOUT);
        else if (!p->s2c.eof)
            add_pfd(pf, &n, p->rs, POLLIN);
    }
    if (n == 0)
        fail_msg("nothing to wait for");
    do {
        rc = poll(pf, n, WAIT_MS);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0)
        fail_msg("timed out after %d ms waiting for fd %d/%d", WAIT_MS, fd1,
                 fd2);
    assert_true(rc > 0);
    pump(p);
}

static void await1(struct pair *p, int fd, short ev)
{
    await2(p, fd, ev, -1, 0);
}

static void set_sndbuf(int fd, int bytes)
{
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)), 0);
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)), 0);
}

static void make_socketpair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

/* cli_write: write all of data with the client (small amounts only). */
static void cli_write(struct pair *p, const void *data, size_t len)
{
    size_t off = 0;
    int i, ret, e;

    for (i = 0; off < len && i < MAX_STEPS; i++) {
        ERR_clear_error();
        ret = SSL_write(p->cli, (const uint8_t *)data + off, (int)(len - off));
        if (ret > 0) {
            off += (size_t)ret;
            continue;
        }
        e = SSL_get_error(p->cli, ret);
        if (e == SSL_ERROR_WANT_WRITE)
            await1(p, p->cfd, POLLOUT);
        else if (e == SSL_ERROR_WANT_READ)
            await1(p, p->cfd, POLLIN);
        else
            fail_msg("client write: SSL error %d: %s", e, ssl_errstr());
    }
    assert_int_equal(off, len);
}

static void cli_write_str(struct pair *p, const char *s)
{
    cli_write(p, s, strlen(s));
}

/* cli_read: read exactly len bytes with the client. */
static void cli_read(struct pair *p, uint8_t *out, size_t len)
{
    size_t got = 0;
    int i, ret, e;

    for (i = 0; got < len && i < MAX_STEPS; i++) {
        size_t want = len - got < 65536 ? len - got : 65536;

        ERR_clear_error();
        ret = SSL_read(p->cli, out + got, (int)want);
        if (ret > 0) {
            got += (size_t)ret;
            continue;
        }
        e = SSL_get_error(p->cli, ret);
        if (e != SSL_ERROR_WANT_READ)
            fail_msg("client read after %zu of %zu bytes: SSL error %d: %s",
                     got, len, e, ssl_errstr());
        await1(p, p->cfd, POLLIN);
    }
    assert_int_equal(got, len);
}

static void cli_expect(struct pair *p, const char *s)
{
    size_t len = strlen(s);
    uint8_t *buf = malloc(len + 1);

    assert_non_null(buf);
    cli_read(p, buf, len);
    buf[len] = '\0';
    assert_string_equal((char *)buf, s);
    free(buf);
}

/* cli_expect_end: the client's next read ends the connection with SSL
 * error ssl_err and, for SSL_ERROR_SSL, OpenSSL reason 'reason' (a
 * received alert is SSL_AD_REASON_OFFSET + its description). */
static void cli_expect_end(struct pair *p, int ssl_err, int reason)
{
    uint8_t buf[256];
    int i, ret, e = SSL_ERROR_NONE;

    for (i = 0; i < MAX_STEPS; i++) {
        ERR_clear_error();
        ret = SSL_read(p->cli, buf, (int)sizeof(buf));
        if (ret > 0)
            fail_msg("client read %d unexpected bytes", ret);
        e = SSL_get_error(p->cli, ret);
        if (e != SSL_ERROR_WANT_READ)
            break;
        await1(p, p->cfd, POLLIN);
    }
    if (e != ssl_err)
        fail_msg("client: SSL error %d (%s), expected %d", e, ssl_errstr(),
                 ssl_err);
    if (ssl_err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) != reason)
        fail_msg("client: '%s' (reason %d), expected reason %d", ssl_errstr(),
                 ERR_GET_REASON(ERR_peek_error()), reason);
    ERR_clear_error();
}

/* srv_read: tls_rec_read into out until want bytes came, or a result
 * other than TLS_IO_OK/WANT_READ (returned in *last). Returns the count. */
static size_t srv_read(struct pair *p, uint8_t *out, size_t want,
                       enum tls_io *last)
{
    enum tls_io res = TLS_IO_WANT_READ;
    size_t got = 0, n;
    int i;

    for (i = 0; i < MAX_STEPS; i++) {
        n = 0;
        res = tls_rec_read(p->r, p->sfd, p->rbuf, TLS_REC_READ_MIN, &n);
        assert_true(n <= TLS_REC_READ_MIN);
        if (got + n > want)
            fail_msg("server got %zu bytes, expected %zu", got + n, want);
        if (n > 0)
            memcpy(out + got, p->rbuf, n);
        got += n;
        if (res == TLS_IO_OK) {
            assert_true(n > 0);
            if (got == want)
                break;
            continue;
        }
        if (res != TLS_IO_WANT_READ || got == want)
            break;
        await1(p, p->sfd, POLLIN);
    }
    *last = res;
    return got;
}

static void srv_expect(struct pair *p, const char *s)
{
    size_t len = strlen(s), got;
    uint8_t *buf = malloc(len + 1);
    enum tls_io res;

    assert_non_null(buf);
    got = srv_read(p, buf, len, &res);
    if (res == TLS_IO_ERROR)
        fail_msg("server read: TLS_IO_ERROR: %s", tls_rec_error(p->r));
    if (res == TLS_IO_CLOSED)
        fail_msg("server read: TLS_IO_CLOSED after %zu bytes", got);
    assert_int_equal(got, len);
    buf[len] = '\0';
    assert_string_equal((char *)buf, s);
    free(buf);
}

/* srv_read_end: tls_rec_read until TLS_IO_CLOSED or TLS_IO_ERROR (which
 * must be 'expect'); what came before is left in out, the count returned. */
static size_t srv_read_end(struct pair *p, uint8_t *out, size_t cap,
                           enum tls_io expect)
{
    enum tls_io res = TLS_IO_WANT_READ;
    size_t got = 0, n;
    int i;

    for (i = 0; i < MAX_STEPS; i++) {
        n = 0;
        res = tls_rec_read(p->r, p->sfd, p->rbuf, TLS_REC_READ_MIN, &n);
        if (got + n > cap)
            fail_msg("server got %zu bytes, at most %zu expected", got + n,
                     cap);
        if (n > 0)
            memcpy(out + got, p->rbuf, n);
        got += n;
        if (res == TLS_IO_CLOSED || res == TLS_IO_ERROR)
            break;
        if (res == TLS_IO_WANT_READ)
            await1(p, p->sfd, POLLIN);
    }
    if (res != expect)
        fail_msg("server read: result %d, expected %d (error '%s')", (int)res,
                 (int)expect, tls_rec_error(p->r));
    return got;
}

/* srv_flush: write queued ciphertext until none is left. */
static void srv_flush(struct pair *p)
{
    enum tls_io res;
    int i;

    for (i = 0; tls_rec_write_pending(p->r) && i < MAX_STEPS; i++) {
        res = tls_rec_flush(p->r, p->sfd);
        if (res == TLS_IO_OK)
            break;
        if (res != TLS_IO_WANT_WRITE)
            fail_msg("server flush: %d: %s", (int)res, tls_rec_error(p->r));
        await1(p, p->sfd, POLLOUT);
    }
    assert_false(tls_rec_write_pending(p->r));
}

/* srv_write: tls_rec_write all of data (one call per record-sized piece)
 * and flush. */
static void srv_write(struct pair *p, const void *data, size_t len)
{
    size_t off = 0, n;
    enum tls_io res;
    int i;

    for (i = 0; off < len && i < MAX_STEPS; i++) {
        n = SIZE_MAX;
        res = tls_rec_write(p->r, p->sfd, (const uint8_t *)data + off,
                            len - off, p->scratch, TLS_REC_WRITE_MIN, &n);
        if (res == TLS_IO_OK) {
            assert_true(n > 0 && n <= len - off);
            off += n;
        } else if (res == TLS_IO_WANT_WRITE) {
            assert_int_equal(n, 0);
            await1(p, p->sfd, POLLOUT);
        } else {
            fail_msg("server write: %d: %s", (int)res, tls_rec_error(p->r));
        }
    }
    assert_int_equal(off, len);
    srv_flush(p);
}

static void srv_write_str(struct pair *p, const char *s)
{
    srv_write(p, s, strlen(s));
}

/* pair_open: contexts, sockets and the full handshake; the server SSL is
 * left in p->ssl for pair_take (or for the test). */
static void pair_open(const struct fx *fx, struct pair *p, const struct opts *o)
{
    int a[2], b[2], i, ret, e;
    bool cdone = false, sdone = false;
    size_t tickets;

    memset(p, 0, sizeof(*p));
    p->cfd = p->sfd = p->rc = p->rs = -1;
    p->rbuf = malloc(TLS_REC_READ_MIN);
    p->scratch = malloc(TLS_REC_WRITE_MIN);
    assert_non_null(p->rbuf);
    assert_non_null(p->scratch);

    p->sctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(p->sctx);
    assert_int_equal(SSL_CTX_use_certificate(p->sctx, fx->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, fx->key), 1);
    tickets = o->tickets == 0 ? 1 : o->tickets < 0 ? 0 : (size_t)o->tickets;
    assert_int_equal(SSL_CTX_set_num_tickets(p->sctx, tickets), 1);
    if (o->server_suites)
        assert_int_equal(SSL_CTX_set_ciphersuites(p->sctx, o->server_suites),
                         1);
    if (o->read_ahead)
        SSL_CTX_set_read_ahead(p->sctx, 1);
    assert_true(tls_rec_ctx_setup(p->sctx));

    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->cctx);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(p->cctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->suite)
        assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, o->suite), 1);
    if (o->max_version)
        assert_int_equal(SSL_CTX_set_max_proto_version(p->cctx, o->max_version),
                         1);

    make_socketpair(a);
    p->cfd = a[0];
    if (o->relay) {
        make_socketpair(b);
        p->rc = a[1];
        p->rs = b[1];
        p->sfd = b[0];
    } else {
        p->sfd = a[1];
    }

    p->ssl = SSL_new(p->sctx);
    p->cli = SSL_new(p->cctx);
    assert_non_null(p->ssl);
    assert_non_null(p->cli);
    assert_int_equal(SSL_set_fd(p->ssl, p->sfd), 1);
    assert_int_equal(SSL_set_fd(p->cli, p->cfd), 1);
    SSL_set_connect_state(p->cli);
    SSL_set_accept_state(p->ssl);

    for (i = 0; i < 1000 && !(cdone && sdone); i++) {
        if (!cdone) {
            ERR_clear_error();
            ret = SSL_connect(p->cli);
            if (ret == 1) {
                cdone = true;
                if (o->early)
                    cli_write_str(p, o->early);
            } else {
                e = SSL_get_error(p->cli, ret);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    fail_msg("client handshake: SSL error %d: %s", e,
                             ssl_errstr());
            }
        }
        if (!sdone) {
            ERR_clear_error();
            ret = SSL_accept(p->ssl);
            if (ret == 1) {
                sdone = true;
            } else {
                e = SSL_get_error(p->ssl, ret);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    fail_msg("server handshake: SSL error %d: %s", e,
                             ssl_errstr());
            }
        }
        if (cdone && sdone)
            break;
        pump(p);
        await2(p, cdone ? -1 : p->cfd, POLLIN, sdone ? -1 : p->sfd, POLLIN);
    }
    assert_true(cdone);
    assert_true(sdone);
    ERR_clear_error();
}

/* pair_take: tls_rec takes the connection over; the server SSL goes. */
static void pair_take(struct pair *p)
{
    const char *why = NULL;

    p->r = tls_rec_take(p->ssl, &why);
    if (p->r == NULL)
        fail_msg("tls_rec_take refused: %s", why ? why : "(why not set)");
    SSL_free(p->ssl);
    p->ssl = NULL;
    assert_non_null(tls_rec_error(p->r));
    assert_string_equal(tls_rec_error(p->r), "");
}

static void pair_close(struct pair *p)
{
    tls_rec_free(p->r);
    SSL_free(p->ssl);
    SSL_free(p->cli);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    if (p->cfd >= 0)
        close(p->cfd);
    if (p->sfd >= 0)
        close(p->sfd);
    if (p->rc >= 0)
        close(p->rc);
    if (p->rs >= 0)
        close(p->rs);
    free(p->rbuf);
    free(p->scratch);
    memset(p, 0, sizeof(*p));
    ERR_clear_error();
}

static void open_taken(const struct fx *fx, struct pair *p,
                       const struct opts *o)
{
    static const struct opts none;

    pair_open(fx, p, o ? o : &none);
    pair_take(p);
}

static void pattern(uint8_t *buf, size_t len, unsigned seed)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (uint8_t)((i * 131u + i / 4093u + seed) & 0xffu);
}

/* relay_take_record: the next whole record the client wrote, held back
 * from the server (p->hold). Returns its length (header included). */
static size_t relay_take_record(struct pair *p, uint8_t *rec, size_t cap)
{
    size_t have = 0, need = 5;
    ssize_t k;
    int i;

    assert_true(p->hold);
    for (i = 0; have < need && i < MAX_STEPS; i++) {
        k = read(p->rc, rec + have, need - have);
        if (k > 0) {
            have += (size_t)k;
            if (have == 5 && need == 5) {
                need = 5 + ((size_t)rec[3] << 8 | rec[4]);
                assert_true(need <= cap);
            }
            continue;
        }
        if (k == 0)
            fail_msg("relay: EOF inside a record");
        assert_int_equal(errno, EAGAIN);
        await1(p, p->rc, POLLIN);
    }
    assert_int_equal(have, need);
    return have;
}

static void write_all(int fd, const uint8_t *data, size_t len)
{
    ssize_t k = write(fd, data, len);

    /* small writes to an empty socket: taken whole */
    assert_true(k >= 0);
    assert_int_equal((size_t)k, len);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

/* Each AEAD suite, both directions, through the OpenSSL client. */
static void test_suites(void **state)
{
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256",
                                         "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    const struct fx *fx = *state;
    size_t i, n;

    tls_rec_free(NULL);
    for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        struct opts o = {.suite = suites[i]};
        struct pair p;

        pair_open(fx, &p, &o);
        assert_int_equal(SSL_version(p.ssl), TLS1_3_VERSION);
        assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(p.ssl)),
                            suites[i]);
        pair_take(&p);

        cli_write_str(&p, "hello");
        srv_expect(&p, "hello");
        srv_write_str(&p, "world");
        cli_expect(&p, "world");

        /* a zero-length write takes nothing and sends nothing */
        n = SIZE_MAX;
        assert_int_equal(tls_rec_write(p.r, p.sfd, (const uint8_t *)"", 0,
                                       p.scratch, TLS_REC_WRITE_MIN, &n),
                         TLS_IO_OK);
        assert_int_equal(n, 0);

        /* and again, both ways: the sequence numbers moved on */
        cli_write_str(&p, "second from client");
        srv_expect(&p, "second from client");
        srv_write_str(&p, "second from server");
        cli_expect(&p, "second from server");
        assert_string_equal(tls_rec_error(p.r), "");
        pair_close(&p);
    }
}

/* The server's session tickets are records under the application key
 * sent by OpenSSL: tls_rec must continue after however many there were. */
static void test_ticket_counts(void **state)
{
    static const int tickets[] = {-1, 2, 5};
    size_t i;

    for (i = 0; i < sizeof(tickets) / sizeof(tickets[0]); i++) {
        struct opts o = {.tickets = tickets[i]};
        struct pair p;

        pair_open(*state, &p, &o);
        pair_take(&p);
        srv_write_str(&p, "after the tickets");
        cli_expect(&p, "after the tickets");
        cli_write_str(&p, "client too");
        srv_expect(&p, "client too");
        pair_close(&p);
    }
}

/* 200 KiB from the client in full-size records, arriving in pieces
 * through a small socket buffer. */
static void test_large_client_to_server(void **state)
{
    const size_t total = 200u * 1024u;
    uint8_t *src = malloc(total), *dst = malloc(total);
    size_t coff = 0, sgot = 0, n;
    struct pair p;
    enum tls_io res;
    int i, ret, e;

    assert_non_null(src);
    assert_non_null(dst);
    pattern(src, total, 7);
    open_taken(*state, &p, NULL);
    set_sndbuf(p.cfd, 4096);
    set_sndbuf(p.sfd, 4096);

    for (i = 0; (coff < total || sgot < total) && i < MAX_STEPS; i++) {
        bool progress = false;

        if (coff < total) {
            ERR_clear_error();
            ret = SSL_write(p.cli, src + coff, (int)(total - coff));
            if (ret > 0) {
                coff += (size_t)ret;
                progress = true;
            } else {
                e = SSL_get_error(p.cli, ret);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    fail_msg("client write: SSL error %d: %s", e, ssl_errstr());
            }
        }
        n = 0;
        res = tls_rec_read(p.r, p.sfd, p.rbuf, TLS_REC_READ_MIN, &n);
        if (sgot + n > total)
            fail_msg("server got %zu bytes of %zu", sgot + n, total);
        if (n > 0) {
            memcpy(dst + sgot, p.rbuf, n);
            sgot += n;
            progress = true;
        }
        if (res == TLS_IO_ERROR || res == TLS_IO_CLOSED)
            fail_msg("server read: %d after %zu bytes: '%s'", (int)res, sgot,
                     tls_rec_error(p.r));
        if (!progress)
            await2(&p, coff < total ? p.cfd : -1, POLLOUT, p.sfd, POLLIN);
    }
    assert_int_equal(coff, total);
    assert_int_equal(sgot, total);
    assert_memory_equal(src, dst, total);

    /* the connection still works the other way */
    srv_write_str(&p, "done");
    cli_expect(&p, "done");
    pair_close(&p);
    free(src);
    free(dst);
}

/* 1 MiB from the server through a small socket buffer: writes are cut
 * short, the rest is queued and flushed first. */
static void test_large_server_to_client(void **state)
{
    const size_t total = 1024u * 1024u;
    uint8_t *src = malloc(total), *dst = malloc(total);
    size_t off = 0, got = 0, n;
    bool saw_pending = false, saw_want_write = false;
    struct pair p;
    enum tls_io res;
    int i, ret, e;

    assert_non_null(src);
    assert_non_null(dst);
    pattern(src, total, 3);
    open_taken(*state, &p, NULL);
    set_sndbuf(p.sfd, 4096);
    set_sndbuf(p.cfd, 4096);

    for (i = 0; (off < total || got < total) && i < MAX_STEPS; i++) {
        bool progress = false;

        if (tls_rec_write_pending(p.r)) {
            saw_pending = true;
            res = tls_rec_flush(p.r, p.sfd);
            if (res == TLS_IO_OK)
                progress = true;
            else if (res != TLS_IO_WANT_WRITE)
                fail_msg("server flush: %d: %s", (int)res, tls_rec_error(p.r));
        }
        if (off < total) {
            n = SIZE_MAX;
            res = tls_rec_write(p.r, p.sfd, src + off, total - off, p.scratch,
                                TLS_REC_WRITE_MIN, &n);
            if (res == TLS_IO_OK) {
                assert_true(n > 0 && n <= total - off);
                off += n;
                progress = true;
                if (tls_rec_write_pending(p.r))
                    saw_pending = true;
            } else if (res == TLS_IO_WANT_WRITE) {
                assert_int_equal(n, 0);
                assert_true(tls_rec_write_pending(p.r));
                saw_want_write = true;
            } else {
                fail_msg("server write: %d: %s", (int)res, tls_rec_error(p.r));
            }
        }
        for (;;) {
            size_t want = total - got < 65536 ? total - got : 65536;

            if (want == 0)
                break;
            ERR_clear_error();
            ret = SSL_read(p.cli, dst + got, (int)want);
            if (ret > 0) {
                got += (size_t)ret;
                progress = true;
                continue;
            }
            e = SSL_get_error(p.cli, ret);
            if (e != SSL_ERROR_WANT_READ)
                fail_msg("client read after %zu bytes: SSL error %d: %s", got,
                         e, ssl_errstr());
            break;
        }
        if (!progress)
            await2(&p, off < total || tls_rec_write_pending(p.r) ? p.sfd : -1,
                   POLLOUT, got < total ? p.cfd : -1, POLLIN);
    }
    assert_int_equal(off, total);
    assert_int_equal(got, total);
    assert_false(tls_rec_write_pending(p.r));
    assert_memory_equal(src, dst, total);
    /* the small buffer did cut writes short */
    assert_true(saw_pending);
    assert_true(saw_want_write);
    assert_int_equal(tls_rec_flush(p.r, p.sfd), TLS_IO_OK);

    cli_write_str(&p, "thanks");
    srv_expect(&p, "thanks");
    pair_close(&p);
    free(src);
    free(dst);
}

/* KeyUpdate from the client: followed, and answered when requested. */
static void test_key_update_from_client(void **state)
{
    struct pair p;
    uint64_t rx = 99, tx = 99;

    open_taken(*state, &p, NULL);
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(rx, 0);
    assert_int_equal(tx, 0);

    assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    cli_write_str(&p, "after update");
    srv_expect(&p, "after update");
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(rx, 1);
    assert_int_equal(tx, 0);
    assert_false(tls_rec_write_pending(p.r));

    /* the server's keys did not change: it still writes readably */
    srv_write_str(&p, "unchanged");
    cli_expect(&p, "unchanged");

    assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
    cli_write_str(&p, "please update");
    srv_expect(&p, "please update");
    srv_flush(&p); /* the answer, if it was queued */
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(rx, 2);
    assert_int_equal(tx, 1);

    /* the client takes our KeyUpdate, then data under the new key */
    srv_write_str(&p, "updated");
    cli_expect(&p, "updated");
    cli_write_str(&p, "third");
    srv_expect(&p, "third");
    srv_write_str(&p, "fourth");
    cli_expect(&p, "fourth");
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(rx, 2);
    assert_int_equal(tx, 1);
    pair_close(&p);
}

/*
 * KeyUpdate requests from a client that does not read: while the server's
 * earlier ciphertext waits for the socket, every request shares one owed
 * answer (RFC 8446 4.6.3), so the queue cannot grow with the requests.
 * Once the client reads, the one answer comes before any more data.
 */
static void test_key_update_requests_share_answer(void **state)
{
    enum { REQUESTS = 300 };
    const size_t chunk = 4096;
    uint8_t *src = malloc(chunk), *dst = malloc(1u << 22);
    size_t queued = 0, got = 0, n;
    struct pair p;
    uint64_t rx = 0, tx = 99;
    enum tls_io res = TLS_IO_OK;
    int i, ret, e;

    assert_non_null(src);
    assert_non_null(dst);
    pattern(src, chunk, 5);
    open_taken(*state, &p, NULL);
    set_sndbuf(p.sfd, 4096);
    set_sndbuf(p.cfd, 4096);

    /* fill the server-to-client direction until ciphertext is queued */
    for (i = 0; i < MAX_STEPS && queued < (1u << 22) - chunk; i++) {
        n = 0;
        res = tls_rec_write(p.r, p.sfd, src, chunk, p.scratch,
                            TLS_REC_WRITE_MIN, &n);
        queued += n;
        if (res != TLS_IO_OK)
            break;
    }
    assert_int_equal(res, TLS_IO_WANT_WRITE);
    assert_true(tls_rec_write_pending(p.r));

    for (i = 0; i < REQUESTS; i++) {
        assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
        cli_write_str(&p, "k");
        srv_expect(&p, "k");
    }
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(rx, REQUESTS);
    assert_int_equal(tx, 0); /* owed, not queued behind the blocked data */
    assert_true(tls_rec_write_pending(p.r));

    /* the client reads: the data, then exactly one KeyUpdate */
    for (i = 0; i < MAX_STEPS && (got < queued || tls_rec_write_pending(p.r));
         i++) {
        bool progress = false;

        if (tls_rec_write_pending(p.r)) {
            res = tls_rec_flush(p.r, p.sfd);
            if (res == TLS_IO_OK)
                progress = true;
            else if (res != TLS_IO_WANT_WRITE)
                fail_msg("server flush: %d: %s", (int)res, tls_rec_error(p.r));
        }
        ERR_clear_error();
        ret = SSL_read(p.cli, dst + got, 65536);
        if (ret > 0) {
            got += (size_t)ret;
            progress = true;
        } else if ((e = SSL_get_error(p.cli, ret)) != SSL_ERROR_WANT_READ) {
            fail_msg("client read after %zu bytes: SSL error %d: %s", got, e,
                     ssl_errstr());
        }
        if (!progress)
            await2(&p, tls_rec_write_pending(p.r) ? p.sfd : -1, POLLOUT, p.cfd,
                   POLLIN);
    }
    assert_int_equal(got, queued);
    for (size_t off = 0; off < got; off += chunk)
        assert_memory_equal(dst + off, src, chunk);
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(tx, 1);

    /* both directions still agree on their keys */
    srv_write_str(&p, "after the answer");
    cli_expect(&p, "after the answer");
    cli_write_str(&p, "and back");
    srv_expect(&p, "and back");
    pair_close(&p);
    free(src);
    free(dst);
}

/* The rekey limit: a KeyUpdate every few records, followed by the client. */
static void test_rekey_limit(void **state)
{
    char expect[128] = "", msg[16];
    struct pair p;
    uint64_t rx = 99, tx = 0;
    int i;

    open_taken(*state, &p, NULL);
    tls_rec_set_rekey_limit(p.r, 3);
    for (i = 0; i < 10; i++) {
        snprintf(msg, sizeof(msg), "msg-%d;", i);
        strcat(expect, msg);
        srv_write_str(&p, msg);
    }
    cli_expect(&p, expect);
    tls_rec_key_updates(p.r, &rx, &tx);
    assert_int_equal(rx, 0);
    assert_true(tx >= 3);
    assert_true(tx <= 10);

    /* the client's direction is untouched */
    cli_write_str(&p, "still fine");
    srv_expect(&p, "still fine");
    srv_write_str(&p, "and more");
    cli_expect(&p, "and more");
    pair_close(&p);
}

/* close_notify from the client: TLS_IO_CLOSED, data before it delivered. */
static void test_close_notify_from_client(void **state)
{
    uint8_t buf[64];
    struct pair p;
    size_t got;

    open_taken(*state, &p, NULL);
    ERR_clear_error();
    assert_int_equal(SSL_shutdown(p.cli), 0);
    got = srv_read_end(&p, buf, sizeof(buf), TLS_IO_CLOSED);
    assert_int_equal(got, 0);
    pair_close(&p);

    /* data and close_notify arriving together */
    open_taken(*state, &p, NULL);
    cli_write_str(&p, "last");
    ERR_clear_error();
    assert_int_equal(SSL_shutdown(p.cli), 0);
    got = srv_read_end(&p, buf, sizeof(buf), TLS_IO_CLOSED);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "last", 4);
    pair_close(&p);
}

/* tls_rec_close_notify: the client sees a clean close. */
static void test_close_notify_to_client(void **state)
{
    struct pair p;

    open_taken(*state, &p, NULL);
    srv_write_str(&p, "bye");
    tls_rec_close_notify(p.r, p.sfd);
    cli_expect(&p, "bye");
    cli_expect_end(&p, SSL_ERROR_ZERO_RETURN, 0);
    assert_true((SSL_get_shutdown(p.cli) & SSL_RECEIVED_SHUTDOWN) != 0);
    pair_close(&p);
}

/* One flipped bit anywhere in a record: TLS_IO_ERROR, bad_record_mac. */
static void test_tampered_record(void **state)
{
    static const size_t where[] = {5, 6, 0 /* last byte: the tag */};
    uint8_t rec[TLS_REC_MAX_RECORD], buf[64];
    struct opts o = {.relay = true};
    size_t i, len, at;

    for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        struct pair p;

        pair_open(*state, &p, &o);
        pair_take(&p);
        p.hold = true;
        cli_write_str(&p, "tamper with me");
        len = relay_take_record(&p, rec, sizeof(rec));
        assert_int_equal(rec[0], 0x17);
        assert_true(len > 5 + 14 + 16);
        at = where[i] ? where[i] : len - 1;
        rec[at] ^= 0x01;
        write_all(p.rs, rec, len);

        assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_ERROR), 0);
        assert_non_null(tls_rec_error(p.r));
        assert_true(strlen(tls_rec_error(p.r)) > 0);
        if (tls_rec_write_pending(p.r))
            (void)tls_rec_flush(p.r, p.sfd);
        /* RFC 8446 5.2: bad_record_mac */
        cli_expect_end(&p, SSL_ERROR_SSL,
                       SSL_AD_REASON_OFFSET + SSL_AD_BAD_RECORD_MAC);
        pair_close(&p);
    }
}

/* A record header announcing more than 2^14 + 256 bytes: record_overflow. */
static void test_oversized_record(void **state)
{
    static const uint8_t hdr[] = {0x17, 0x03, 0x03, 0x48, 0x00};
    uint8_t buf[64];
    struct pair p;

    open_taken(*state, &p, NULL);
    write_all(p.cfd, hdr, sizeof(hdr));
    assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_ERROR), 0);
    assert_true(strlen(tls_rec_error(p.r)) > 0);
    if (tls_rec_write_pending(p.r))
        (void)tls_rec_flush(p.r, p.sfd);
    /* RFC 8446 5.2: record_overflow */
    cli_expect_end(&p, SSL_ERROR_SSL,
                   SSL_AD_REASON_OFFSET + SSL_AD_RECORD_OVERFLOW);
    pair_close(&p);
}

/* An unprotected handshake record after the handshake: unexpected_message. */
static void test_plaintext_handshake_record(void **state)
{
    static const uint8_t rec[] = {0x16, 0x03, 0x03, 0x00, 0x04,
                                  0x00, 0x00, 0x00, 0x00};
    uint8_t buf[64];
    struct pair p;

    open_taken(*state, &p, NULL);
    write_all(p.cfd, rec, sizeof(rec));
    assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_ERROR), 0);
    assert_true(strlen(tls_rec_error(p.r)) > 0);
    if (tls_rec_write_pending(p.r))
        (void)tls_rec_flush(p.r, p.sfd);
    /* RFC 8446 5: unexpected record type -> unexpected_message */
    cli_expect_end(&p, SSL_ERROR_SSL,
                   SSL_AD_REASON_OFFSET + SSL_AD_UNEXPECTED_MESSAGE);
    pair_close(&p);
}

/* A fatal alert from the client (its answer to a forged record):
 * TLS_IO_ERROR, and tls_rec_error says something. */
static void test_alert_from_client(void **state)
{
    uint8_t forged[5 + 32], buf[64];
    struct pair p;

    open_taken(*state, &p, NULL);
    memset(forged, 0xa5, sizeof(forged));
    forged[0] = 0x17;
    forged[1] = 0x03;
    forged[2] = 0x03;
    forged[3] = 0x00;
    forged[4] = 32;
    write_all(p.sfd, forged, sizeof(forged)); /* behind tls_rec's back */
    cli_expect_end(&p, SSL_ERROR_SSL,
                   SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC);
    assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_ERROR), 0);
    assert_true(strlen(tls_rec_error(p.r)) > 0);
    pair_close(&p);
}

/* The client's socket ends without close_notify: TLS_IO_CLOSED. */
static void test_peer_eof(void **state)
{
    uint8_t buf[64];
    struct pair p;
    int ret;

    /* half close */
    open_taken(*state, &p, NULL);
    assert_int_equal(shutdown(p.cfd, SHUT_WR), 0);
    assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_CLOSED), 0);
    pair_close(&p);

    /* data, then the half close */
    open_taken(*state, &p, NULL);
    cli_write_str(&p, "tail");
    assert_int_equal(shutdown(p.cfd, SHUT_WR), 0);
    assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_CLOSED), 4);
    assert_memory_equal(buf, "tail", 4);
    pair_close(&p);

    /* full close, once the client read the session ticket (unread input
     * would make the kernel report ECONNRESET instead of EOF) */
    open_taken(*state, &p, NULL);
    ERR_clear_error();
    ret = SSL_read(p.cli, buf, (int)sizeof(buf));
    assert_true(ret <= 0);
    assert_int_equal(SSL_get_error(p.cli, ret), SSL_ERROR_WANT_READ);
    close(p.cfd);
    p.cfd = -1;
    assert_int_equal(srv_read_end(&p, buf, sizeof(buf), TLS_IO_CLOSED), 0);
    pair_close(&p);
}

/* serve_ssl_echo: the SSL tls_rec_take refused still carries the
 * connection: one message each way through OpenSSL. */
static void serve_ssl_echo(struct pair *p)
{
    char buf[32];
    int i, ret, e;

    cli_write_str(p, "via ssl");
    for (i = 0; i < MAX_STEPS; i++) {
        ERR_clear_error();
        ret = SSL_read(p->ssl, buf, (int)sizeof(buf) - 1);
        if (ret > 0)
            break;
        e = SSL_get_error(p->ssl, ret);
        if (e != SSL_ERROR_WANT_READ)
            fail_msg("server SSL_read: %d: %s", e, ssl_errstr());
        await1(p, p->sfd, POLLIN);
    }
    assert_int_equal(ret, 7);
    buf[ret] = '\0';
    assert_string_equal(buf, "via ssl");
    ERR_clear_error();
    assert_int_equal(SSL_write(p->ssl, "ok", 2), 2);
    cli_expect(p, "ok");
}

static void expect_refused(struct pair *p)
{
    const char *why = NULL;

    p->r = tls_rec_take(p->ssl, &why);
    assert_null(p->r);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    serve_ssl_echo(p);
}

/* What tls_rec does not take: TLS 1.2, a CCM suite. */
static void test_take_refused(void **state)
{
    struct opts o12 = {.max_version = TLS1_2_VERSION};
    struct opts ccm = {.suite = "TLS_AES_128_CCM_SHA256",
                       .server_suites = "TLS_AES_128_CCM_SHA256"};
    struct pair p;

    pair_open(*state, &p, &o12);
    assert_int_equal(SSL_version(p.ssl), TLS1_2_VERSION);
    expect_refused(&p);
    pair_close(&p);

    pair_open(*state, &p, &ccm);
    assert_int_equal(SSL_version(p.ssl), TLS1_3_VERSION);
    assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(p.ssl)),
                        "TLS_AES_128_CCM_SHA256");
    expect_refused(&p);
    pair_close(&p);
}

/* Records split across reads; the rest of one and a whole next record in
 * one read. */
static void test_partial_record(void **state)
{
    uint8_t r1[TLS_REC_MAX_RECORD], r2[TLS_REC_MAX_RECORD];
    uint8_t both[2 * TLS_REC_MAX_RECORD];
    struct opts o = {.relay = true};
    size_t l1, l2, n;
    struct pair p;

    pair_open(*state, &p, &o);
    pair_take(&p);
    p.hold = true;
    cli_write_str(&p, "partial");
    l1 = relay_take_record(&p, r1, sizeof(r1));
    cli_write_str(&p, "+second");
    l2 = relay_take_record(&p, r2, sizeof(r2));

    /* 2 bytes of the header, then 5 more: nothing to deliver yet */
    write_all(p.rs, r1, 2);
    n = SIZE_MAX;
    assert_int_equal(tls_rec_read(p.r, p.sfd, p.rbuf, TLS_REC_READ_MIN, &n),
                     TLS_IO_WANT_READ);
    assert_int_equal(n, 0);
    write_all(p.rs, r1 + 2, 5);
    n = SIZE_MAX;
    assert_int_equal(tls_rec_read(p.r, p.sfd, p.rbuf, TLS_REC_READ_MIN, &n),
                     TLS_IO_WANT_READ);
    assert_int_equal(n, 0);

    /* the rest of the first record and all of the second at once */
    memcpy(both, r1 + 7, l1 - 7);
    memcpy(both + l1 - 7, r2, l2);
    write_all(p.rs, both, l1 - 7 + l2);
    srv_expect(&p, "partial+second");

    /* and still in step */
    cli_write_str(&p, "third");
    l1 = relay_take_record(&p, r1, sizeof(r1));
    write_all(p.rs, r1, l1);
    srv_expect(&p, "third");
    srv_write_str(&p, "answer");
    cli_expect(&p, "answer");
    pair_close(&p);
}

/* Data the client sends right after its Finished, before the server's
 * handshake step that reads the Finished: kept by tls_rec when OpenSSL
 * did not read it; with read-ahead OpenSSL buffers it and the take is
 * refused. */
static void test_data_right_after_finished(void **state)
{
    struct opts o = {.early = "right away"};
    struct opts ra = {.early = "via ssl", .read_ahead = true};
    const char *why = NULL;
    char buf[32];
    struct pair p;
    int ret;

    pair_open(*state, &p, &o);
    assert_false(SSL_has_pending(p.ssl));
    pair_take(&p);
    srv_expect(&p, "right away");
    srv_write_str(&p, "got it");
    cli_expect(&p, "got it");
    pair_close(&p);

    pair_open(*state, &p, &ra);
    assert_true(SSL_has_pending(p.ssl));
    p.r = tls_rec_take(p.ssl, &why);
    assert_null(p.r);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    ERR_clear_error();
    ret = SSL_read(p.ssl, buf, (int)sizeof(buf) - 1);
    assert_int_equal(ret, 7);
    buf[ret] = '\0';
    assert_string_equal(buf, "via ssl");
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suites),
        cmocka_unit_test(test_ticket_counts),
        cmocka_unit_test(test_large_client_to_server),
        cmocka_unit_test(test_large_server_to_client),
        cmocka_unit_test(test_key_update_from_client),
        cmocka_unit_test(test_key_update_requests_share_answer),
        cmocka_unit_test(test_rekey_limit),
        cmocka_unit_test(test_close_notify_from_client),
        cmocka_unit_test(test_close_notify_to_client),
        cmocka_unit_test(test_tampered_record),
        cmocka_unit_test(test_oversized_record),
        cmocka_unit_test(test_plaintext_handshake_record),
        cmocka_unit_test(test_alert_from_client),
        cmocka_unit_test(test_peer_eof),
        cmocka_unit_test(test_take_refused),
        cmocka_unit_test(test_partial_record),
        cmocka_unit_test(test_data_right_after_finished),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
