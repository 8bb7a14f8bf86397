/*
 * tls_staple.c - OCSP stapling for a listener's server certificate (see
 * tls_staple.h).
 *
 *   struct tls_staple
 *     +-- ctx            the context it staples for (reference); its
 *                        SSL_CTX status callback points here
 *     +-- cert, issuer   the server certificate and its issuer
 *     +-- store          trust for the response: the issuer alone
 *     +-- der, next_update   the verified response being stapled
 *     +-- timer, http    the next refresh; the fetch in flight
 *     +-- reg, slot      where the fetcher publishes der and every
 *                        thread's status callback reads it (mutex)
 *
 *   struct tls_staples
 *     +-- mu
 *     +-- v[slot]        digest of the certificate, der, next_update
 */
#include "tls_staple.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "ocsp.h"
#include "ocsp_http.h"
#include "tls_ssl.h"
#include "util.h"

#define STAPLE_RETRY 60.0     /* after a failed fetch */
#define STAPLE_MAX_WAIT 3600. /* refresh at least hourly */
#define STAPLE_FILE_POLL 5.0  /* tls_ocsp_stapling_file change check */
#define STAPLE_TIMEOUT 10.0   /* one fetch */

struct slot {
    uint8_t digest[32]; /* SHA-256 of the certificate's DER */
    uint8_t *der;       /* NULL: nothing published */
    size_t derlen;
    time_t next_update;
};

struct tls_staples {
    pthread_mutex_t mu;
    struct slot *v;
    size_t n;
};

struct tls_staple {
    struct tls_staples *reg;
    unsigned slot;
    bool fetch;
    uint8_t digest[32]; /* of cert */
    struct ev_loop *loop;
    struct log *log;
    char *label;
    char *file; /* NULL: fetch from the AIA URL */
    struct tls_ctx *ctx;
    X509 *cert, *issuer;
    X509_STORE *store;
    struct ocsp_req *req; /* of the fetch in flight */
    struct ocsp_http *http;
    ev_timer timer;
    uint8_t *der;
    size_t derlen;
    time_t next_update; /* of der (0: none given) */
    bool stale_logged;
    struct timespec file_mtime;
    off_t file_size;
};

static void refresh(struct tls_staple *s);

struct tls_staples *tls_staples_new(void)
{
    struct tls_staples *r = xcalloc(1, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void tls_staples_free(struct tls_staples *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].der);
    free(r->v);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* publish: the fetcher's response (or none) for every thread. */
static void publish(struct tls_staple *s)
{
    struct tls_staples *r = s->reg;
    struct slot *sl;

    if (!s->fetch)
        return;
    pthread_mutex_lock(&r->mu);
    if (s->slot >= r->n) {
        r->v = xreallocarray(r->v, s->slot + 1, sizeof(*r->v));
        memset(r->v + r->n, 0, (s->slot + 1 - r->n) * sizeof(*r->v));
        r->n = s->slot + 1;
    }
    sl = &r->v[s->slot];
    free(sl->der);
    sl->der = s->der ? xmemdup(s->der, s->derlen) : NULL;
    sl->derlen = s->der ? s->derlen : 0;
    sl->next_update = s->next_update;
    memcpy(sl->digest, s->digest, sizeof(sl->digest));
    pthread_mutex_unlock(&r->mu);
}

static void schedule(struct tls_staple *s, double in)
{
    ev_timer_stop(s->loop, &s->timer);
    ev_timer_set(&s->timer, in, 0.);
    ev_timer_start(s->loop, &s->timer);
}

static void drop(struct tls_staple *s)
{
    free(s->der);
    s->der = NULL;
    s->derlen = 0;
    s->next_update = 0;
    publish(s);
}

/* status_cb: a client asked for the certificate status (status_request):
 * staple the kept response when it is still fresh. */
static int status_cb(SSL *ssl, void *arg)
{
    struct tls_staple *s = arg;
    struct tls_staples *r;
    unsigned char *copy = NULL;
    size_t len = 0;
    time_t nu = 0;

    if (s == NULL || s->cert == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    r = s->reg;
    pthread_mutex_lock(&r->mu);
    if (s->slot < r->n && r->v[s->slot].der != NULL &&
        memcmp(r->v[s->slot].digest, s->digest, sizeof(s->digest)) == 0) {
        copy = OPENSSL_memdup(r->v[s->slot].der, r->v[s->slot].derlen);
        len = r->v[s->slot].derlen;
        nu = r->v[s->slot].next_update;
    }
    pthread_mutex_unlock(&r->mu);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (nu > 0 && time(NULL) > nu + OCSP_SKEW) {
        OPENSSL_free(copy);
        if (!s->stale_logged)
            LOG_W(s->log,
                  "OCSP stapling (%s): the kept response is stale "
                  "(nextUpdate passed, no fresh one yet): not stapled.",
                  s->label);
        s->stale_logged = true;
        return SSL_TLSEXT_ERR_NOACK;
    }
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* accept_der: verify der as the response for the server certificate; keep
 * it when it says good. Returns the delay to the next refresh. */
static double accept_der(struct tls_staple *s, const uint8_t *der, size_t len)
{
    struct ocsp_result r;
    char d[400];
    double wait;
    time_t now = time(NULL);

    ocsp_response_check(der, len, s->req, s->store, &r);
    if (r.status != OCSP_GOOD) {
        ocsp_describe(&r, d, sizeof(d));
        LOG_W(s->log, "OCSP stapling (%s): %s: not stapled.", s->label, d);
        drop(s);
        return STAPLE_RETRY;
    }
    free(s->der);
    s->der = xmemdup(der, len);
    s->derlen = len;
    s->next_update = r.next_update;
    s->stale_logged = false;
    publish(s);
    LOG_I(s->log, "OCSP stapling (%s): good response (%zu bytes) stapled.",
          s->label, len);
    wait = STAPLE_MAX_WAIT;
    if (r.next_update > now && (double)(r.next_update - now) / 2 < wait)
        wait = (double)(r.next_update - now) / 2;
    return wait < 1.0 ? 1.0 : wait;
}

static void fetch_done(void *ud, enum ocsp_http_end end, const uint8_t *body,
                       size_t len, const char *why)
{
    struct tls_staple *s = ud;

    s->http = NULL;
    if (end != OCSP_HTTP_OK) {
        LOG_W(s->log,
              "OCSP stapling (%s): responder %s (%s); %s; retrying in "
              "%.0f s.",
              s->label, end == OCSP_HTTP_UNREACHABLE ? "unreachable" : "failed",
              why ? why : "?",
              s->der ? "the kept response is stapled while it is fresh"
                     : "nothing stapled",
              STAPLE_RETRY);
        schedule(s, STAPLE_RETRY);
        return;
    }
    schedule(s, accept_der(s, body, len));
}

/* read_file: (re)load tls_ocsp_stapling_file when it changed. */
static void read_file(struct tls_staple *s, bool force)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;
    FILE *f;

    if (stat(s->file, &st) != 0) {
        if (force || s->der != NULL)
            LOG_W(s->log, "OCSP stapling (%s): cannot read '%s': not stapled.",
                  s->label, s->file);
        drop(s);
        s->file_size = -1;
        return;
    }
    if (!force && st.st_size == s->file_size &&
        st.st_mtim.tv_sec == s->file_mtime.tv_sec &&
        st.st_mtim.tv_nsec == s->file_mtime.tv_nsec)
        return;
    s->file_size = st.st_size;
    s->file_mtime = st.st_mtim;
    if (st.st_size <= 0 || (size_t)st.st_size > OCSP_MAX_RESPONSE) {
        LOG_W(s->log,
              "OCSP stapling (%s): '%s' is empty or over %u bytes: not "
              "stapled.",
              s->label, s->file, OCSP_MAX_RESPONSE);
        drop(s);
        return;
    }
    f = fopen(s->file, "rb");
    if (f != NULL) {
        buf = xmalloc((size_t)st.st_size);
        n = fread(buf, 1, (size_t)st.st_size, f);
        fclose(f);
    }
    if (n == 0) {
        LOG_W(s->log, "OCSP stapling (%s): cannot read '%s': not stapled.",
              s->label, s->file);
        drop(s);
    } else {
        (void)accept_der(s, buf, n);
    }
    free(buf);
}

static void refresh(struct tls_staple *s)
{
    char url[1024], err[200];
    const uint8_t *der;
    size_t len;

    if (s->cert == NULL)
        return;
    if (s->file != NULL) {
        read_file(s, false);
        schedule(s, STAPLE_FILE_POLL);
        return;
    }
    if (s->http != NULL)
        return;
    if (ocsp_cert_url(s->cert, url, sizeof(url)) != 0) {
        LOG_W(s->log,
              "OCSP stapling (%s): the server certificate names no OCSP "
              "responder (AIA): nothing to staple.",
              s->label);
        return;
    }
    ocsp_req_free(s->req);
    s->req = ocsp_req_new(s->cert, s->issuer, true, err, sizeof(err));
    if (s->req == NULL) {
        LOG_W(s->log, "OCSP stapling (%s): %s", s->label, err);
        schedule(s, STAPLE_RETRY);
        return;
    }
    der = ocsp_req_der(s->req, &len);
    s->http =
        ocsp_http_start(s->loop, url, der, len, STAPLE_TIMEOUT, fetch_done, s);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    refresh(w->data);
}

struct tls_staple *tls_staple_new(struct ev_loop *loop, struct log *lg,
                                  const char *label, const char *file,
                                  struct tls_staples *reg, unsigned slot,
                                  bool fetch)
{
    struct tls_staple *s = xcalloc(1, sizeof(*s));

    s->reg = reg;
    s->slot = slot;
    s->fetch = fetch;
    s->loop = loop;
    s->log = lg;
    s->label = xstrdup(label);
    s->file = file ? xstrdup(file) : NULL;
    s->file_size = -1;
    ev_timer_init(&s->timer, timer_cb, 0., 0.);
    s->timer.data = s;
    return s;
}

/* detach: stop stapling for the current context. */
static void detach(struct tls_staple *s)
{
    if (s->ctx != NULL) {
        SSL_CTX *sc = tls_ctx_ssl(s->ctx);
        SSL_CTX_set_tlsext_status_cb(sc, NULL);
        SSL_CTX_set_tlsext_status_arg(sc, NULL);
        tls_ctx_unref(s->ctx);
        s->ctx = NULL;
    }
}

void tls_staple_free(struct tls_staple *s)
{
    if (s == NULL)
        return;
    detach(s);
    ev_timer_stop(s->loop, &s->timer);
    if (s->der != NULL)
        drop(s); /* withdrawn for every thread */
    ocsp_http_cancel(s->http);
    ocsp_req_free(s->req);
    X509_free(s->cert);
    X509_free(s->issuer);
    X509_STORE_free(s->store);
    free(s->der);
    free(s->label);
    free(s->file);
    free(s);
}

/* find_issuer: the server certificate's issuer from the chain built at
 * load, else from the context's store. A new reference, or NULL. */
static X509 *find_issuer(struct tls_ctx *ctx, X509 *cert)
{
    STACK_OF(X509) *chain = NULL;
    SSL_CTX *sc = tls_ctx_ssl(ctx);

    if (SSL_CTX_get0_chain_certs(sc, &chain) == 1)
        for (int i = 0; i < sk_X509_num(chain); i++) {
            X509 *x = sk_X509_value(chain, i);
            if (X509_check_issued(x, cert) == X509_V_OK) {
                X509_up_ref(x);
                return x;
            }
        }
    return ocsp_find_issuer(SSL_CTX_get_cert_store(sc), cert);
}

void tls_staple_attach(struct tls_staple *s, struct tls_ctx *ctx)
{
    SSL_CTX *sc = tls_ctx_ssl(ctx);
    X509 *cert = SSL_CTX_get0_certificate(sc);
    bool same;

    detach(s);
    s->ctx = tls_ctx_ref(ctx);
    SSL_CTX_set_tlsext_status_cb(sc, status_cb);
    SSL_CTX_set_tlsext_status_arg(sc, s);
    same = cert != NULL && s->cert != NULL && X509_cmp(cert, s->cert) == 0;
    if (same && s->file == NULL)
        return; /* the kept response still applies; refresh as planned */
    ocsp_http_cancel(s->http);
    s->http = NULL;
    drop(s);
    X509_free(s->cert);
    X509_free(s->issuer);
    X509_STORE_free(s->store);
    s->cert = s->issuer = NULL;
    s->store = NULL;
    if (cert == NULL)
        return;
    X509_up_ref(cert);
    s->cert = cert;
    {
        unsigned int dl = 0;
        if (X509_digest(cert, EVP_sha256(), s->digest, &dl) != 1 ||
            dl != sizeof(s->digest))
            memset(s->digest, 0, sizeof(s->digest));
    }
    if (!s->fetch)
        return; /* staples what the fetcher publishes */
    s->issuer = find_issuer(ctx, cert);
    ERR_clear_error();
    if (s->issuer == NULL) {
        LOG_W(s->log,
              "OCSP stapling (%s): the issuer of the server certificate is "
              "in neither certfile nor cafile: nothing to staple.",
              s->label);
        return;
    }
    /* a response about this certificate is signed by its issuer or by a
     * signer the issuer certified: the issuer is the only trust needed */
    s->store = X509_STORE_new();
    if (s->store == NULL || X509_STORE_add_cert(s->store, s->issuer) != 1) {
        LOG_W(s->log, "OCSP stapling (%s): cannot build the trust store.",
              s->label);
        return;
    }
    if (s->file != NULL) {
        char err[200];
        ocsp_req_free(s->req);
        /* the CertID to look for; no nonce in a file */
        s->req = ocsp_req_new(s->cert, s->issuer, false, err, sizeof(err));
        if (s->req == NULL) {
            LOG_W(s->log, "OCSP stapling (%s): %s", s->label, err);
            return;
        }
        read_file(s, true);
        schedule(s, STAPLE_FILE_POLL);
        return;
    }
    schedule(s, 0.);
}
