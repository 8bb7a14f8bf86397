/*
 * test_tls.c - unit tests for tls.c: context building and its errors,
 * handshakes over a socketpair against an OpenSSL client (client
 * certificates good, missing, expired, revoked, from another CA, old
 * protocol, no shared cipher, plaintext on a TLS port), identity extraction,
 * data transfer, resumption, revocation, change detection and expiry
 * reports. The test PKI is built in a temporary directory by
 * certs/mkcerts.sh (found through $MQTTD_SOURCE_DIR, default ".").
 *
 * The logger is stubbed here (log_msg & co. record into the struct log the
 * caller passes), so the test links only src/tls.c, src/auth_mtls.c and
 * src/util.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../../src/net/tls_ssl.h"
#include "auth_mtls.h"
#include "conf.h"
#include "log.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* Logger stub: counts and keeps messages in the caller's struct log.        */

struct log {
    unsigned types;
    int nwarn;
    char text[4096]; /* every message, newline-separated (truncated) */
};

bool log_enabled(const struct log *lg, unsigned level)
{
    return lg != NULL && (lg->types & level) != 0;
}

void log_vmsg(struct log *lg, unsigned level, const char *fmt, va_list ap)
{
    size_t used;

    if (lg == NULL)
        return;
    if (level == LOG_WARNING)
        lg->nwarn++;
    used = strlen(lg->text);
    if (used + 2 < sizeof(lg->text)) {
        vsnprintf(lg->text + used, sizeof(lg->text) - used - 1, fmt, ap);
        strcat(lg->text, "\n");
    }
}

void log_msg(struct log *lg, unsigned level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lg, level, fmt, ap);
    va_end(ap);
}

void log_event(struct log *lg, unsigned level, const char *event,
               const char *text, ...)
{
    (void)event;
    log_msg(lg, level, "%s", text);
}

static void log_reset(struct log *lg)
{
    memset(lg, 0, sizeof(*lg));
    lg->types = LOG_ALL;
}

/* ------------------------------------------------------------------------ */
/* Fixture: the PKI directory.                                               */

struct fx {
    char dir[512];
    struct log lg;
};

static int group_setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    const char *src = getenv("MQTTD_SOURCE_DIR");
    char cmd[2 * PATH_MAX + 64];

    if (src == NULL || src[0] == '\0')
        src = ".";
    snprintf(fx->dir, sizeof(fx->dir), "%s/mqttd-test-tls-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "sh '%s/certs/mkcerts.sh' '%s'", src, fx->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls: '%s' failed (set MQTTD_SOURCE_DIR)\n", cmd);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_tls: could not remove %s\n", fx->dir);
        free(fx);
        return -1;
    }
    log_reset(&fx->lg);
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[PATH_MAX + 16];

    if (fx == NULL)
        return 0;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_tls: could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

/* A conf_tls with its strings stored alongside. */
struct tconf {
    struct conf_tls t;
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX], crl[PATH_MAX],
        dh[PATH_MAX];
};

static void pki_path(const struct fx *fx, const char *name, char *out,
                     size_t outlen)
{
    snprintf(out, outlen, "%s/%s", fx->dir, name);
}

/* tconf_init: server.crt/server.key, cafile ca.crt (when mode != NONE or
 * crl), crlfile crl.pem when 'crl'. Source "mqttd.conf" line 42. */
static void tconf_init(struct tconf *c, const struct fx *fx,
                       enum conf_cert_mode mode, bool crl)
{
    memset(c, 0, sizeof(*c));
    pki_path(fx, "server.crt", c->cert, sizeof(c->cert));
    pki_path(fx, "server.key", c->key, sizeof(c->key));
    pki_path(fx, "ca.crt", c->ca, sizeof(c->ca));
    pki_path(fx, "crl.pem", c->crl, sizeof(c->crl));
    pki_path(fx, "dhparam.pem", c->dh, sizeof(c->dh));
    c->t.certfile = c->cert;
    c->t.keyfile = c->key;
    c->t.cafile = c->ca;
    c->t.crlfile = crl ? c->crl : NULL;
    c->t.min_version = TLS1_2_VERSION;
    c->t.cert_mode = mode;
    c->t.require_certificate = mode == CONF_CERT_REQUIRED;
    c->t.src = "mqttd.conf";
    c->t.line = 42;
}

static X509 *load_cert(const struct fx *fx, const char *name)
{
    char path[PATH_MAX];
    FILE *f;
    X509 *x;

    pki_path(fx, name, path, sizeof(path));
    f = fopen(path, "r");
    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

/* ------------------------------------------------------------------------ */
/* Context tests                                                             */

static void test_ctx_ok(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512] = "";
    struct tls_ctx *ctx;
    SSL_CTX *s;

    tconf_init(&c, fx, CONF_CERT_REQUIRED, false);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_string_equal(err, "");
    s = tls_ctx_ssl(ctx);
    assert_non_null(s);
    assert_int_equal(SSL_CTX_get_min_proto_version(s), TLS1_2_VERSION);
    assert_true(SSL_CTX_get_options(s) & SSL_OP_NO_COMPRESSION);
    assert_true(SSL_CTX_get_options(s) & SSL_OP_NO_RENEGOTIATION);
    assert_true(SSL_CTX_get_options(s) & SSL_OP_CIPHER_SERVER_PREFERENCE);
    assert_false(SSL_CTX_get_mode(s) & SSL_MODE_ENABLE_PARTIAL_WRITE);
    assert_true(SSL_CTX_get_mode(s) & SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    assert_int_equal(SSL_CTX_get_verify_mode(s),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(s)), 1);
    assert_false(tls_ctx_has_crl(ctx));
    assert_false(tls_ctx_changed(ctx));
    /* references */
    assert_ptr_equal(tls_ctx_ref(ctx), ctx);
    tls_ctx_unref(ctx);
    assert_non_null(tls_ctx_ssl(ctx));
    tls_ctx_unref(ctx);
    tls_ctx_unref(NULL);
}

static void test_ctx_default_ciphers(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512];
    struct tls_ctx *ctx;
    STACK_OF(SSL_CIPHER) * sk;
    int i;

    tconf_init(&c, fx, CONF_CERT_NONE, false);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_verify_mode(tls_ctx_ssl(ctx)),
                     SSL_VERIFY_NONE);
    sk = SSL_CTX_get_ciphers(tls_ctx_ssl(ctx));
    assert_true(sk_SSL_CIPHER_num(sk) > 0);
    for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
        const char *n = SSL_CIPHER_get_name(ci);

        if (strncmp(n, "TLS_", 4) == 0)
            continue; /* TLS 1.3 suites: AEAD only by design */
        assert_true(SSL_CIPHER_is_aead(ci));
        assert_non_null(strstr(n, "ECDHE"));
        assert_null(strstr(n, "CBC"));
        assert_null(strstr(n, "3DES"));
    }
    tls_ctx_unref(ctx);
}

/* Table: configurations that must fail, and what the error must say. */
struct bad_case {
    const char *name;
    const char *certfile, *keyfile, *cafile, *crlfile, *dhfile;
    const char *ciphers, *suites, *groups;
    enum conf_cert_mode mode;
    const char *expect[3];
};

static const struct bad_case bad_cases[] = {
    {"key mismatch",
     "server.crt",
     "client1.key",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: ", "client1.key' does not match certfile", "server.crt"}},
    {"missing certfile",
     "nope.crt",
     "server.key",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: certfile '", "nope.crt'", "No such file or directory"}},
    {"missing keyfile",
     "server.crt",
     "nope.key",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: keyfile '", "nope.key'", "No such file"}},
    {"certfile not PEM",
     "index.txt",
     "server.key",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: certfile '", "index.txt'", "no start line"}},
    {"keyfile holds a certificate",
     "server.crt",
     "server.crt",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: keyfile '", "server.crt'", NULL}},
    {"cafile missing",
     "server.crt",
     "server.key",
     "nope-ca.crt",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_REQUIRED,
     {"mqttd.conf:42: cafile '", "nope-ca.crt'", "No such file"}},
    {"cafile without certificates",
     "server.crt",
     "server.key",
     "index.txt",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_REQUIRED,
     {"mqttd.conf:42: cafile '", "index.txt'", NULL}},
    {"required without CA",
     "server.crt",
     "server.key",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_REQUIRED,
     {"mqttd.conf:42: ", "neither cafile nor capath", NULL}},
    {"crlfile without CRL",
     "server.crt",
     "server.key",
     "ca.crt",
     "ca.crt",
     NULL,
     NULL,
     NULL,
     NULL,
     CONF_CERT_REQUIRED,
     {"mqttd.conf:42: crlfile '", "no PEM CRL", NULL}},
    {"dhparamfile not DH",
     "server.crt",
     "server.key",
     NULL,
     NULL,
     "ca.crt",
     NULL,
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: dhparamfile '", "ca.crt'", NULL}},
    {"bad ciphers",
     "server.crt",
     "server.key",
     NULL,
     NULL,
     NULL,
     "NOPE",
     NULL,
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: ciphers 'NOPE'", NULL, NULL}},
    {"bad TLS 1.3 suites",
     "server.crt",
     "server.key",
     NULL,
     NULL,
     NULL,
     NULL,
     "TLS_NOPE",
     NULL,
     CONF_CERT_NONE,
     {"mqttd.conf:42: ciphers_tls1.3 'TLS_NOPE'", NULL, NULL}},
    {"bad groups",
     "server.crt",
     "server.key",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     "nogroup",
     CONF_CERT_NONE,
     {"mqttd.conf:42: tls_groups 'nogroup'", NULL, NULL}},
};

static void test_ctx_errors(void **state)
{
    struct fx *fx = *state;
    size_t i, j;

    for (i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct tconf c;
        char err[512];
        struct tls_ctx *ctx;

        tconf_init(&c, fx, b->mode, false);
        pki_path(fx, b->certfile, c.cert, sizeof(c.cert));
        pki_path(fx, b->keyfile, c.key, sizeof(c.key));
        c.t.cafile = NULL;
        if (b->cafile) {
            pki_path(fx, b->cafile, c.ca, sizeof(c.ca));
            c.t.cafile = c.ca;
        }
        if (b->crlfile) {
            pki_path(fx, b->crlfile, c.crl, sizeof(c.crl));
            c.t.crlfile = c.crl;
        }
        if (b->dhfile) {
            pki_path(fx, b->dhfile, c.dh, sizeof(c.dh));
            c.t.dhparamfile = c.dh;
        }
        c.t.ciphers = (char *)(uintptr_t)b->ciphers;
        c.t.ciphers_tls13 = (char *)(uintptr_t)b->suites;
        c.t.tls_groups = (char *)(uintptr_t)b->groups;
        err[0] = '\0';
        ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
        if (ctx != NULL)
            fail_msg("case '%s': context built", b->name);
        if (getenv("TEST_TLS_VERBOSE") != NULL)
            printf("    %-28s -> %s\n", b->name, err);
        for (j = 0; j < ARRAY_LEN(b->expect) && b->expect[j]; j++)
            if (strstr(err, b->expect[j]) == NULL)
                fail_msg("case '%s': error '%s' lacks '%s'", b->name, err,
                         b->expect[j]);
        /* never key material */
        assert_null(strstr(err, "PRIVATE KEY-----"));
        assert_int_equal(ERR_peek_error(), 0);
    }
}

static void test_ctx_versions_and_options(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512];
    struct tls_ctx *ctx;

    /* below 1.2 is never accepted: clamped, with a warning */
    tconf_init(&c, fx, CONF_CERT_NONE, false);
    c.t.min_version = TLS1_1_VERSION;
    log_reset(&fx->lg);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(tls_ctx_ssl(ctx)),
                     TLS1_2_VERSION);
    assert_int_equal(fx->lg.nwarn, 1);
    tls_ctx_unref(ctx);

    c.t.min_version = 0; /* unset: TLS 1.2 */
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(tls_ctx_ssl(ctx)),
                     TLS1_2_VERSION);
    tls_ctx_unref(ctx);

    c.t.min_version = TLS1_3_VERSION;
    c.t.dhparamfile = c.dh;
    c.t.ciphers_tls13 = (char *)(uintptr_t) "TLS_AES_128_GCM_SHA256";
    c.t.tls_groups = (char *)(uintptr_t) "X25519:P-256";
    c.t.cert_mode = CONF_CERT_OPTIONAL;
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(tls_ctx_ssl(ctx)),
                     TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_get_verify_mode(tls_ctx_ssl(ctx)),
                     SSL_VERIFY_PEER);
    tls_ctx_unref(ctx);
}

static void test_ctx_crl_and_revoked(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512];
    struct tls_ctx *ctx, *plain;
    X509 *rev = load_cert(fx, "client-revoked.crt");
    X509 *ok = load_cert(fx, "client1.crt");
    X509 *other = load_cert(fx, "client-otherca.crt");

    tconf_init(&c, fx, CONF_CERT_REQUIRED, true);
    log_reset(&fx->lg);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(fx->lg.nwarn, 0);
    assert_true(tls_ctx_has_crl(ctx));
    assert_true(tls_ctx_cert_revoked(ctx, rev));
    assert_false(tls_ctx_cert_revoked(ctx, ok));
    assert_false(tls_ctx_cert_revoked(ctx, other));
    assert_false(tls_ctx_cert_revoked(ctx, NULL));

    tconf_init(&c, fx, CONF_CERT_REQUIRED, false);
    plain = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(plain);
    assert_false(tls_ctx_has_crl(plain));
    assert_false(tls_ctx_cert_revoked(plain, rev));

    /* a CRL whose CA is missing from cafile: loads, with a warning */
    tconf_init(&c, fx, CONF_CERT_REQUIRED, true);
    pki_path(fx, "other-ca.crt", c.ca, sizeof(c.ca));
    log_reset(&fx->lg);
    tls_ctx_unref(tls_ctx_new(&c.t, &fx->lg, err, sizeof(err)));
    assert_true(fx->lg.nwarn >= 1);
    assert_non_null(strstr(fx->lg.text, "not in cafile"));

    X509_free(rev);
    X509_free(ok);
    X509_free(other);
    tls_ctx_unref(ctx);
    tls_ctx_unref(plain);
}

/* copy: a byte copy of a PKI file into another one. */
static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    size_t n;
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void test_ctx_changed(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512], src[PATH_MAX];
    struct tls_ctx *ctx;
    struct timespec ts[2];

    tconf_init(&c, fx, CONF_CERT_REQUIRED, true);
    pki_path(fx, "server.crt", src, sizeof(src));
    pki_path(fx, "changed-server.crt", c.cert, sizeof(c.cert));
    copy_file(src, c.cert);
    pki_path(fx, "crl.pem", src, sizeof(src));
    pki_path(fx, "changed-crl.pem", c.crl, sizeof(c.crl));
    copy_file(src, c.crl);

    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_false(tls_ctx_changed(ctx));

    /* touch: same content, new mtime */
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = time(NULL) + 10;
    ts[1].tv_nsec = 0;
    assert_int_equal(utimensat(AT_FDCWD, c.crl, ts, 0), 0);
    assert_true(tls_ctx_changed(ctx));
    tls_ctx_unref(ctx);

    /* replaced by rename: new inode */
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_false(tls_ctx_changed(ctx));
    pki_path(fx, "changed-tmp.crt", src, sizeof(src));
    copy_file(c.cert, src);
    assert_int_equal(rename(src, c.cert), 0);
    assert_true(tls_ctx_changed(ctx));
    tls_ctx_unref(ctx);

    /* deleted */
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(unlink(c.crl), 0);
    assert_true(tls_ctx_changed(ctx));
    tls_ctx_unref(ctx);
    unlink(c.cert);
}

static void test_ctx_expiry_report(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512];
    struct tls_ctx *ctx;
    time_t now = time(NULL), na = 0;
    X509 *srv = load_cert(fx, "server.crt");
    struct tm tm;

    tconf_init(&c, fx, CONF_CERT_REQUIRED, true);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);

    /* nothing within 30 days */
    log_reset(&fx->lg);
    tls_ctx_expiry_report(ctx, &fx->lg, 30, now, &na);
    assert_int_equal(fx->lg.nwarn, 0);
    assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(srv), &tm), 1);
    assert_int_equal(na, timegm(&tm));
    assert_true(na > now);

    /* everything within 20 years: server, CA and CRL each warned */
    log_reset(&fx->lg);
    tls_ctx_expiry_report(ctx, &fx->lg, 20 * 366, now, &na);
    assert_int_equal(fx->lg.nwarn, 3);
    assert_non_null(strstr(fx->lg.text, "server certificate"));
    assert_non_null(strstr(fx->lg.text, "CA certificate"));
    assert_non_null(strstr(fx->lg.text, "CRL"));
    assert_non_null(strstr(fx->lg.text, "expires on"));

    /* seen from 11 years later: all expired */
    log_reset(&fx->lg);
    tls_ctx_expiry_report(ctx, &fx->lg, 30, now + 11 * 366 * 86400L, &na);
    assert_int_equal(fx->lg.nwarn, 3);
    assert_non_null(strstr(fx->lg.text, "expired on"));

    tls_ctx_expiry_report(NULL, &fx->lg, 30, now, &na);
    assert_int_equal(na, 0);
    X509_free(srv);
    tls_ctx_unref(ctx);
}

/* ------------------------------------------------------------------------ */
/* Handshakes over a socketpair                                              */

struct pair {
    int fd[2]; /* [0] server side, [1] client side */
    SSL *srv, *cli;
};

static SSL_CTX *client_ctx(const struct fx *fx, const char *name, int maxv)
{
    SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
    char p[PATH_MAX];

    assert_non_null(cc);
    pki_path(fx, "ca.crt", p, sizeof(p));
    assert_int_equal(SSL_CTX_load_verify_locations(cc, p, NULL), 1);
    SSL_CTX_set_verify(cc, SSL_VERIFY_PEER, NULL);
    if (name != NULL) {
        char key[PATH_MAX];

        snprintf(p, sizeof(p), "%s/%s.crt", fx->dir, name);
        snprintf(key, sizeof(key), "%s/%s.key", fx->dir, name);
        assert_int_equal(SSL_CTX_use_certificate_file(cc, p, SSL_FILETYPE_PEM),
                         1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(cc, key, SSL_FILETYPE_PEM),
                         1);
    }
    if (maxv != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(cc, maxv), 1);
    return cc;
}

static void pair_open(struct pair *p, struct tls_ctx *ctx, SSL_CTX *cc)
{
    int i;

    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    for (i = 0; i < 2; i++)
        assert_int_equal(fcntl(p->fd[i], F_SETFL, O_NONBLOCK), 0);
    p->srv = tls_new_ssl(ctx, p->fd[0]);
    assert_non_null(p->srv);
    if (cc != NULL) {
        p->cli = SSL_new(cc);
        assert_non_null(p->cli);
        assert_int_equal(SSL_set_fd(p->cli, p->fd[1]), 1);
        assert_int_equal(SSL_set1_host(p->cli, "localhost"), 1);
        SSL_set_connect_state(p->cli);
    }
}

static void pair_close(struct pair *p)
{
    /* a clean close keeps the sessions resumable (SSL_free without a
     * shutdown marks them not resumable) */
    if (p->cli != NULL && SSL_is_init_finished(p->cli))
        (void)SSL_shutdown(p->cli);
    if (p->srv != NULL && SSL_is_init_finished(p->srv))
        (void)SSL_shutdown(p->srv);
    SSL_free(p->srv);
    SSL_free(p->cli);
    if (p->fd[0] >= 0)
        close(p->fd[0]);
    if (p->fd[1] >= 0)
        close(p->fd[1]);
    ERR_clear_error();
}

/* drive: run both ends until the server side finishes. Returns the
 * server's final tls_io; *cli_ok tells whether the client completed. */
static enum tls_io drive(struct pair *p, char *why, size_t whylen, bool *cli_ok)
{
    enum tls_io s = TLS_IO_WANT_READ;
    bool cdone = false, cfail = false;
    int i;

    *cli_ok = false;
    for (i = 0; i < 1000; i++) {
        struct pollfd pfd[2];

        if (!cdone && !cfail) {
            int r = SSL_connect(p->cli);

            if (r == 1) {
                cdone = true;
            } else {
                int e = SSL_get_error(p->cli, r);

                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    cfail = true;
            }
            ERR_clear_error();
        }
        s = tls_handshake(p->srv, why, whylen);
        if (s != TLS_IO_WANT_READ && s != TLS_IO_WANT_WRITE)
            break;
        pfd[0].fd = p->fd[0];
        pfd[0].events = POLLIN;
        pfd[1].fd = p->fd[1];
        pfd[1].events = POLLIN;
        (void)poll(pfd, 2, 20);
    }
    /* TLS 1.2: the server completes first; let the client finish. */
    for (i = 0; i < 100 && s == TLS_IO_OK && !cdone && !cfail; i++) {
        int r = SSL_connect(p->cli);

        if (r == 1)
            cdone = true;
        else if (SSL_get_error(p->cli, r) != SSL_ERROR_WANT_READ)
            cfail = true;
        ERR_clear_error();
    }
    /* TLS 1.3: the client completes before the server has checked its
     * certificate; it is complete only if the server accepted it too. */
    *cli_ok = cdone && s == TLS_IO_OK;
    return s;
}

/* Table: client certificate x server policy -> outcome. */
struct hs_case {
    const char *name;
    const char *client; /* PKI name, NULL = no certificate */
    enum conf_cert_mode mode;
    bool crl;
    int maxv; /* client max version, 0 = default */
    enum tls_io expect;
    const char *why[3];   /* substrings of 'why' on failure */
    const char *identity; /* expected CN identity, NULL = -1 */
    const char *id_why;   /* expected reason when identity is NULL */
};

static const struct hs_case hs_cases[] = {
    {"client1 required",
     "client1",
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_OK,
     {NULL},
     "client1",
     NULL},
    {"client2 TLS 1.2",
     "client2",
     CONF_CERT_REQUIRED,
     false,
     TLS1_2_VERSION,
     TLS_IO_OK,
     {NULL},
     "client2",
     NULL},
    {"client1 required + CRL",
     "client1",
     CONF_CERT_REQUIRED,
     true,
     0,
     TLS_IO_OK,
     {NULL},
     "client1",
     NULL},
    {"no CN",
     "client-nocn",
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_OK,
     {NULL},
     NULL,
     "no CN"},
    {"anonymous optional",
     NULL,
     CONF_CERT_OPTIONAL,
     false,
     0,
     TLS_IO_OK,
     {NULL},
     NULL,
     "no certificate"},
    {"anonymous none",
     NULL,
     CONF_CERT_NONE,
     false,
     0,
     TLS_IO_OK,
     {NULL},
     NULL,
     "no certificate"},
    {"no certificate",
     NULL,
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_ERROR,
     {"no client certificate", NULL, NULL},
     NULL,
     NULL},
    {"no certificate TLS 1.2",
     NULL,
     CONF_CERT_REQUIRED,
     false,
     TLS1_2_VERSION,
     TLS_IO_ERROR,
     {"no client certificate", NULL, NULL},
     NULL,
     NULL},
    {"expired",
     "client-expired",
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_ERROR,
     {"client certificate expired", "certificate has expired",
      "subject=\"CN=client-expired,O=mqttd test\""},
     NULL,
     NULL},
    {"expired optional",
     "client-expired",
     CONF_CERT_OPTIONAL,
     false,
     0,
     TLS_IO_ERROR,
     {"client certificate expired", "depth=0", "sha256="},
     NULL,
     NULL},
    {"other CA",
     "client-otherca",
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_ERROR,
     {"client certificate from unknown CA",
      "unable to get local issuer certificate",
      "issuer=\"CN=mqttd other CA,O=mqttd other\""},
     NULL,
     NULL},
    {"revoked",
     "client-revoked",
     CONF_CERT_REQUIRED,
     true,
     0,
     TLS_IO_ERROR,
     {"client certificate revoked", "certificate revoked", "serial="},
     NULL,
     NULL},
    {"revoked TLS 1.2",
     "client-revoked",
     CONF_CERT_REQUIRED,
     true,
     TLS1_2_VERSION,
     TLS_IO_ERROR,
     {"client certificate revoked", NULL},
     NULL,
     NULL},
    {"revoked without CRL",
     "client-revoked",
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_OK,
     {NULL},
     "client-revoked",
     NULL},
    {"server cert as client",
     "server",
     CONF_CERT_REQUIRED,
     false,
     0,
     TLS_IO_ERROR,
     {"client certificate not valid for TLS client authentication",
      "unsuitable certificate purpose", "CN=localhost"},
     NULL,
     NULL},
};

static void test_handshakes(void **state)
{
    struct fx *fx = *state;
    char whys[ARRAY_LEN(hs_cases)][512];
    size_t i, j;

    for (i = 0; i < ARRAY_LEN(hs_cases); i++) {
        const struct hs_case *h = &hs_cases[i];
        struct tconf c;
        char err[512], *why = whys[i], id[256], desc[512];
        const char *idwhy = NULL;
        struct tls_ctx *ctx;
        SSL_CTX *cc;
        struct pair p;
        enum tls_io r;
        bool cli_ok;
        int rc;

        tconf_init(&c, fx, h->mode, h->crl);
        ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
        if (ctx == NULL)
            fail_msg("case '%s': %s", h->name, err);
        cc = client_ctx(fx, h->client, h->maxv);
        pair_open(&p, ctx, cc);
        why[0] = '\0';
        r = drive(&p, why, 512, &cli_ok);
        if (r != h->expect)
            fail_msg("case '%s': got %d want %d (why: %s)", h->name, (int)r,
                     (int)h->expect, why);
        if (getenv("TEST_TLS_VERBOSE") != NULL)
            printf("    %-24s -> %d %s\n", h->name, (int)r, why);
        for (j = 0; j < ARRAY_LEN(h->why) && h->why[j]; j++)
            if (strstr(why, h->why[j]) == NULL)
                fail_msg("case '%s': why '%s' lacks '%s'", h->name, why,
                         h->why[j]);
        if (r == TLS_IO_OK) {
            struct tls_info *ti = tls_info_new(p.srv);
            assert_true(cli_ok);
            assert_true(tls_info_verified(ti));
            rc = auth_mtls_identity(tls_info_peer(ti), false, id, sizeof(id),
                                    &idwhy);
            if (h->identity != NULL) {
                if (rc != 0)
                    fail_msg("case '%s': identity failed: %s", h->name, idwhy);
                assert_string_equal(id, h->identity);
                assert_true(tls_peer_not_after(ti) > time(NULL));
                tls_describe(ti, desc, sizeof(desc));
                assert_non_null(strstr(desc, "subject=CN="));
                assert_non_null(strstr(desc, h->identity));
                assert_non_null(strstr(desc, "serial="));
                assert_non_null(strstr(desc, h->maxv == TLS1_2_VERSION
                                                 ? "TLSv1.2 ECDHE-ECDSA-"
                                                 : "TLSv1.3 TLS_"));
            } else {
                assert_int_equal(rc, -1);
                assert_string_equal(idwhy, h->id_why);
                if (h->client == NULL) {
                    assert_int_equal(tls_peer_not_after(ti), 0);
                    tls_describe(ti, desc, sizeof(desc));
                    assert_non_null(strstr(desc, "no client certificate"));
                }
            }
            tls_info_free(ti);
        } else {
            assert_false(cli_ok);
        }
        assert_int_equal(ERR_peek_error(), 0);
        pair_close(&p);
        SSL_CTX_free(cc);
        tls_ctx_unref(ctx);
    }
    /* every rejection reason is distinct between kinds of failure */
    for (i = 0; i < ARRAY_LEN(hs_cases); i++)
        for (j = i + 1; j < ARRAY_LEN(hs_cases); j++)
            if (hs_cases[i].expect == TLS_IO_ERROR &&
                hs_cases[j].expect == TLS_IO_ERROR &&
                strcmp(hs_cases[i].why[0], hs_cases[j].why[0]) != 0)
                assert_string_not_equal(whys[i], whys[j]);
}

/* A client configured with 'tweak' must be refused with 'expect'. */
static void refused_client(struct fx *fx, int maxv, const char *ciphers,
                           const char *expect)
{
    struct tconf c;
    char err[512], why[512] = "";
    struct tls_ctx *ctx;
    SSL_CTX *cc;
    struct pair p;
    bool cli_ok;

    tconf_init(&c, fx, CONF_CERT_NONE, false);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    cc = client_ctx(fx, NULL, 0);
    SSL_CTX_set_security_level(cc, 0);
    assert_int_equal(SSL_CTX_set_min_proto_version(cc, TLS1_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(cc, maxv), 1);
    if (ciphers)
        assert_int_equal(SSL_CTX_set_cipher_list(cc, ciphers), 1);
    pair_open(&p, ctx, cc);
    assert_int_equal(drive(&p, why, sizeof(why), &cli_ok), TLS_IO_ERROR);
    if (getenv("TEST_TLS_VERBOSE") != NULL)
        printf("    -> %s\n", why);
    if (strstr(why, expect) == NULL)
        fail_msg("why '%s' lacks '%s'", why, expect);
    assert_false(cli_ok);
    pair_close(&p);
    SSL_CTX_free(cc);
    tls_ctx_unref(ctx);
}

static void test_old_protocol(void **state)
{
    refused_client(*state, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0",
                   "protocol version too old");
}

static void test_no_shared_cipher(void **state)
{
    /* RSA key exchange and CBC: not in the default list */
    refused_client(*state, TLS1_2_VERSION,
                   "AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA",
                   "no shared cipher");
}

/* Raw bytes instead of a ClientHello. */
static void raw_client(struct fx *fx, const void *data, size_t len,
                       enum tls_io expect, const char *want)
{
    struct tconf c;
    char err[512], why[512] = "";
    struct tls_ctx *ctx;
    struct pair p;
    enum tls_io r = TLS_IO_WANT_READ;
    int i;

    tconf_init(&c, fx, CONF_CERT_REQUIRED, false);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    pair_open(&p, ctx, NULL);
    /* nothing sent yet: the server waits */
    assert_int_equal(tls_handshake(p.srv, why, sizeof(why)), TLS_IO_WANT_READ);
    if (len > 0)
        assert_int_equal(write(p.fd[1], data, len), (ssize_t)len);
    else {
        close(p.fd[1]);
        p.fd[1] = -1;
    }
    for (i = 0; i < 10 && r == TLS_IO_WANT_READ; i++)
        r = tls_handshake(p.srv, why, sizeof(why));
    if (getenv("TEST_TLS_VERBOSE") != NULL)
        printf("    -> %d %s\n", (int)r, why);
    if (r != expect || strstr(why, want) == NULL)
        fail_msg("got %d want %d, why '%s' (want '%s')", (int)r, (int)expect,
                 why, want);
    pair_close(&p);
    tls_ctx_unref(ctx);
}

static void test_plaintext_mqtt(void **state)
{
    /* MQTT 3.1.1 CONNECT, client id "c" */
    static const unsigned char connect[] = {0x10, 0x0d, 0x00, 0x04, 'M',
                                            'Q',  'T',  'T',  0x04, 0x02,
                                            0x00, 0x3c, 0x00, 0x01, 'c'};

    raw_client(*state, connect, sizeof(connect), TLS_IO_ERROR,
               "first byte 0x10 is not a TLS record: plaintext on a TLS "
               "port?");
}

static void test_plaintext_http(void **state)
{
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    raw_client(*state, get, sizeof(get) - 1, TLS_IO_ERROR,
               "plaintext HTTP on a TLS port");
}

static void test_garbage(void **state)
{
    static const unsigned char junk[] = {0x42, 0x00, 0x01, 0x02,
                                         0x03, 0x04, 0x05};

    raw_client(*state, junk, sizeof(junk), TLS_IO_ERROR,
               "first byte 0x42 is not a TLS record");
}

static void test_eof_during_handshake(void **state)
{
    raw_client(*state, NULL, 0, TLS_IO_CLOSED, "closed");
}

/* Data both ways, a large write retried with a moved buffer, and close. */
static void test_data_and_close(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512], why[512];
    struct tls_ctx *ctx;
    SSL_CTX *cc;
    struct pair p;
    bool cli_ok;
    unsigned char buf[256];
    size_t n = 0, got = 0, big = 1u << 20, off = 0;
    unsigned char *src = xmalloc(big), *moved = xmalloc(big);
    unsigned char *sink = xmalloc(big);
    enum tls_io r;
    int i, k;

    tconf_init(&c, fx, CONF_CERT_REQUIRED, false);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    cc = client_ctx(fx, "client3", 0);
    pair_open(&p, ctx, cc);
    assert_int_equal(drive(&p, why, sizeof(why), &cli_ok), TLS_IO_OK);

    /* server -> client */
    assert_int_equal(tls_write(p.srv, "hello", 5, &n), TLS_IO_OK);
    assert_int_equal(n, 5);
    assert_int_equal(tls_write(p.srv, "", 0, &n), TLS_IO_OK);
    assert_int_equal(n, 0);
    for (i = 0; i < 100; i++) {
        k = SSL_read(p.cli, buf, sizeof(buf));
        if (k > 0)
            break;
        ERR_clear_error();
    }
    assert_int_equal(k, 5);
    assert_memory_equal(buf, "hello", 5);

    /* client -> server; nothing more: WANT_READ */
    assert_int_equal(SSL_write(p.cli, "ping", 4), 4);
    assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &n), TLS_IO_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &n), TLS_IO_WANT_READ);
    assert_int_equal(n, 0);
    tls_release_buffers(p.srv);

    /* 1 MiB: WANT_WRITE while the socket is full, retried with the same
     * length from another buffer; all of it arrives in order. */
    for (off = 0; off < big; off++)
        src[off] = (unsigned char)(off * 7);
    memcpy(moved, src, big);
    r = tls_write(p.srv, src, big, &n);
    for (i = 0; r == TLS_IO_WANT_WRITE && i < 100000; i++) {
        k = SSL_read(p.cli, sink + got, (int)(big - got));
        if (k > 0)
            got += (size_t)k;
        ERR_clear_error();
        r = tls_write(p.srv, (i & 1) ? moved : src, big, &n);
    }
    assert_int_equal(r, TLS_IO_OK);
    assert_int_equal(n, big);
    for (i = 0; got < big && i < 100000; i++) {
        k = SSL_read(p.cli, sink + got, (int)(big - got));
        if (k > 0)
            got += (size_t)k;
        ERR_clear_error();
    }
    assert_int_equal(got, big);
    assert_memory_equal(sink, src, big);

    /* close_notify from the client: CLOSED */
    (void)SSL_shutdown(p.cli);
    assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &n), TLS_IO_CLOSED);
    pair_close(&p);

    /* EOF without close_notify: CLOSED as well (the client reads what
     * it was sent first: unread data would turn its close into a reset) */
    pair_open(&p, ctx, cc);
    assert_int_equal(drive(&p, why, sizeof(why), &cli_ok), TLS_IO_OK);
    for (i = 0; i < 5; i++) {
        (void)SSL_read(p.cli, buf, sizeof(buf));
        ERR_clear_error();
    }
    close(p.fd[1]);
    p.fd[1] = -1;
    for (i = 0; i < 10; i++) {
        r = tls_read(p.srv, buf, sizeof(buf), &n);
        if (r != TLS_IO_WANT_READ)
            break;
    }
    assert_int_equal(r, TLS_IO_CLOSED);
    pair_close(&p);

    free(src);
    free(moved);
    free(sink);
    SSL_CTX_free(cc);
    tls_ctx_unref(ctx);
}

/* Resumption works within one context (session id context, tickets) and
 * not across a reload (a new context). */
static void test_resumption(void **state)
{
    struct fx *fx = *state;
    struct tconf c;
    char err[512], why[512], desc[512], id[64];
    const char *idwhy;
    struct tls_ctx *ctx, *ctx2;
    SSL_CTX *cc;
    SSL_SESSION *sess = NULL;
    struct pair p;
    struct tls_info *ti;
    bool cli_ok;
    unsigned char b;
    int i;

    tconf_init(&c, fx, CONF_CERT_REQUIRED, false);
    ctx = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    ctx2 = tls_ctx_new(&c.t, &fx->lg, err, sizeof(err));
    assert_non_null(ctx);
    assert_non_null(ctx2);
    cc = client_ctx(fx, "client1", 0);

    pair_open(&p, ctx, cc);
    assert_int_equal(drive(&p, why, sizeof(why), &cli_ok), TLS_IO_OK);
    /* TLS 1.3 tickets arrive after the handshake */
    for (i = 0; i < 10 && sess == NULL; i++) {
        (void)SSL_read(p.cli, &b, 1);
        ERR_clear_error();
        if (SSL_SESSION_is_resumable(SSL_get0_session(p.cli)))
            sess = SSL_get1_session(p.cli);
    }
    assert_non_null(sess);
    pair_close(&p);

    pair_open(&p, ctx, cc);
    assert_int_equal(SSL_set_session(p.cli, sess), 1);
    assert_int_equal(drive(&p, why, sizeof(why), &cli_ok), TLS_IO_OK);
    assert_true(SSL_session_reused(p.srv));
    ti = tls_info_new(p.srv);
    tls_describe(ti, desc, sizeof(desc));
    assert_non_null(strstr(desc, "resumed"));
    assert_true(tls_info_verified(ti));
    assert_int_equal(
        auth_mtls_identity(tls_info_peer(ti), false, id, sizeof(id), &idwhy),
        0);
    assert_string_equal(id, "client1");
    tls_info_free(ti);
    pair_close(&p);

    pair_open(&p, ctx2, cc);
    assert_int_equal(SSL_set_session(p.cli, sess), 1);
    assert_int_equal(drive(&p, why, sizeof(why), &cli_ok), TLS_IO_OK);
    assert_false(SSL_session_reused(p.srv));
    pair_close(&p);

    SSL_SESSION_free(sess);
    SSL_CTX_free(cc);
    tls_ctx_unref(ctx);
    tls_ctx_unref(ctx2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_ok),
        cmocka_unit_test(test_ctx_default_ciphers),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_ctx_versions_and_options),
        cmocka_unit_test(test_ctx_crl_and_revoked),
        cmocka_unit_test(test_ctx_changed),
        cmocka_unit_test(test_ctx_expiry_report),
        cmocka_unit_test(test_handshakes),
        cmocka_unit_test(test_old_protocol),
        cmocka_unit_test(test_no_shared_cipher),
        cmocka_unit_test(test_plaintext_mqtt),
        cmocka_unit_test(test_plaintext_http),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_eof_during_handshake),
        cmocka_unit_test(test_data_and_close),
        cmocka_unit_test(test_resumption),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
