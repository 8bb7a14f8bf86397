/*
 * tls.c - TLS for listeners with OpenSSL 3: the server SSL_CTX built from a
 * listener's conf_tls, the non-blocking handshake/read/write steps mapped to
 * enum tls_io, specific reasons for every rejected handshake, identity
 * extraction, revocation and expiry checks, and change detection for reload.
 *
 *   struct tls_ctx (refcounted; a reload builds a new one next to it)
 *     +-- SSL_CTX         cert chain + key, CA store (+ CRLs), verify mode
 *     +-- files[]         path + (dev, ino, size, mtime) at load time
 *     +-- cas             CA certificates of cafile (expiry report)
 *     +-- crls            CRLs of crlfile (revocation of live clients)
 *
 *   every SSL made by tls_new_ssl carries a struct tls_conn (ex_data)
 *   until its handshake succeeds: the first bytes peeked before the
 *   handshake (plaintext-on-a-TLS-port diagnosis) and the first verify
 *   failure (error, depth, subject, issuer, serial, SHA-256 fingerprint)
 *   recorded by the verify callback.
 */
#include "tls_ssl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "log.h"
#include "pkcs11_uri.h"
#include "tls_engine.h"
#include "util.h"

/* TLS <= 1.2: forward-secret AEAD suites only (no CBC, no RSA key exchange,
 * no 3DES/RC4/NULL/EXPORT). TLS 1.3 suites are all AEAD already. */
#define TLS_DEFAULT_CIPHERS                                                    \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"               \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

/* TLS 1.3: AES-128-GCM with SHA-256 first (the suite every TLS 1.3 stack
 * must implement). Its key schedule and transcript hash run on SHA-256,
 * which this hardware computes with SHA instructions, where SHA-384 runs
 * in software; the server's order decides. */
#define TLS13_DEFAULT_SUITES                                                   \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                           \
    "TLS_CHACHA20_POLY1305_SHA256"

#define TLS_SESSION_ID_CTX "mqttd"
#define TLS_SESSION_CACHE_SIZE 1024 /* bounded server-side session cache */
#define TLS_NAME_MAX 256            /* subject/issuer text kept per failure */

enum tls_file_kind {
    TF_CERT,
    TF_KEY,
    TF_CA,
    TF_CAPATH,
    TF_CRL,
    TF_DH,
    TF_COUNT,
};

static const char *const tls_file_names[TF_COUNT] = {
    "certfile", "keyfile", "cafile", "capath", "crlfile", "dhparamfile",
};

/* A file the context was loaded from, as it was at load time. */
struct tls_file {
    char *path; /* NULL = not configured */
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct tls_ctx {
    unsigned refs;
    SSL_CTX *ssl;
    struct tls_file files[TF_COUNT];
    STACK_OF(X509) * cas;      /* certificates of cafile, may be empty */
    STACK_OF(X509_CRL) * crls; /* NULL when no crlfile */
    bool insecure;             /* client: no server certificate check */
    void *engine;              /* tls_keyform engine: tls_engine_release */
};

/* The first certificate verification failure of a handshake. */
struct tls_verify_fail {
    int verr;
    int depth;
    char subject[TLS_NAME_MAX];
    char issuer[TLS_NAME_MAX];
    char serial[80];
    char sha256[3 * 32];
};

/* Per-SSL handshake state (ex_data), freed once the handshake succeeds so
 * that established connections carry nothing extra. */
struct tls_conn {
    unsigned char head[8]; /* first bytes of the stream, peeked */
    size_t headlen;
    bool peeked;
    struct tls_verify_fail *fail; /* NULL until verification fails */
};

/*
 * The ex_data index for struct tls_conn. OpenSSL hands out ex_data indexes
 * process-wide; this is set exactly once (CRYPTO_THREAD_run_once) and never
 * changes afterwards, so it is a registration, not mutable state.
 */
static CRYPTO_ONCE tls_once = CRYPTO_ONCE_STATIC_INIT;
static int tls_ex_index = -1;

static void tls_conn_destroy(struct tls_conn *tc)
{
    if (tc != NULL)
        free(tc->fail);
    free(tc);
}

static void tls_conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                          long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    tls_conn_destroy(ptr);
}

static void tls_once_init(void)
{
    tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_conn_free);
}

static bool tls_init(void)
{
    return CRYPTO_THREAD_run_once(&tls_once, tls_once_init) == 1 &&
           tls_ex_index >= 0;
}

/* tls_conn_get: the SSL's tls_conn, created on first use when 'create'. */
static struct tls_conn *tls_conn_get(SSL *ssl, bool create)
{
    struct tls_conn *tc;

    if (tls_ex_index < 0)
        return NULL;
    tc = SSL_get_ex_data(ssl, tls_ex_index);
    if (tc == NULL && create) {
        tc = xcalloc(1, sizeof(*tc));
        if (SSL_set_ex_data(ssl, tls_ex_index, tc) != 1) {
            free(tc);
            return NULL;
        }
    }
    return tc;
}

/* ------------------------------------------------------------------------ */
/* Small formatting helpers                                                  */

/* ossl_reason: the reasons in OpenSSL's error queue ("; "-joined, distinct),
 * or "unknown error"; empties the queue. Never holds key material: OpenSSL
 * error strings name routines, reasons and file names only. */
static void ossl_reason(char *out, size_t outlen)
{
    unsigned long e;
    const char *data = NULL;
    int flags = 0;
    size_t used = 0;

    out[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *r = ERR_reason_error_string(e);
        char one[256];

        if (r == NULL) {
            snprintf(one, sizeof(one), "error %08lx", e);
        } else if ((flags & ERR_TXT_STRING) && data != NULL &&
                   data[0] != '\0') {
            snprintf(one, sizeof(one), "%s (%s)", r, data);
        } else {
            snprintf(one, sizeof(one), "%s", r);
        }
        if (strstr(out, one) != NULL || used + 3 >= outlen)
            continue;
        used += (size_t)snprintf(out + used, outlen - used, "%s%s",
                                 used ? "; " : "", one);
        if (used >= outlen)
            used = outlen - 1;
    }
    if (out[0] == '\0')
        snprintf(out, outlen, "unknown error");
}

/* set_err: "SRC:LINE: " + message into err (no prefix without t->src). */
static void set_err(char *err, size_t errlen, const struct conf_tls *t,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_err(char *err, size_t errlen, const struct conf_tls *t,
                    const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (err == NULL || errlen == 0)
        return;
    if (t->src != NULL)
        n = snprintf(err, errlen, "%s:%d: ", t->src, t->line);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* sanitize: replace control bytes so peer-supplied text is safe in logs. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            *s = '?';
}

/* name_str: RFC 2253 text of a name (non-ASCII and specials escaped). */
static void name_str(const X509_NAME *name, char *out, size_t outlen)
{
    BIO *b;
    int n;

    out[0] = '\0';
    if (name == NULL || outlen == 0)
        return;
    b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_read(b, out, (int)(outlen - 1));
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    sanitize(out);
}

/* serial_str: the serial number in hex ("" on failure). */
static void serial_str(X509 *x, char *out, size_t outlen)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;

    snprintf(out, outlen, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* fingerprint_str: SHA-256 of the DER certificate, "AB:CD:..". */
static void fingerprint_str(X509 *x, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    size_t used = 0;

    out[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1)
        return;
    for (i = 0; i < mdlen && used + 3 < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%02X",
                                 i ? ":" : "", md[i]);
}

/* asn1_time_t: an ASN1_TIME as time_t (0 on failure). */
static time_t asn1_time_t(const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* asn1_time_str: ISO 8601 text of an ASN1_TIME. */
static void asn1_time_str(const ASN1_TIME *t, char *out, size_t outlen)
{
    BIO *b = BIO_new(BIO_s_mem());
    int n = 0;

    out[0] = '\0';
    if (b == NULL)
        return;
    if (ASN1_TIME_print_ex(b, t, ASN1_DTFLGS_ISO8601) == 1)
        n = BIO_read(b, out, (int)(outlen - 1));
    out[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

/* ------------------------------------------------------------------------ */
/* Context                                                                   */

static void file_stat(struct tls_file *f)
{
    struct stat st;

    f->present = false;
    if (f->path == NULL || stat(f->path, &st) != 0)
        return;
    f->present = true;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = st.st_size;
    f->mtime = st.st_mtim;
}

static void tls_ctx_free(struct tls_ctx *c)
{
    size_t i;

    if (c == NULL)
        return;
    SSL_CTX_free(c->ssl);
    tls_engine_release(c->engine); /* after the key's last user */
    sk_X509_pop_free(c->cas, X509_free);
    sk_X509_CRL_pop_free(c->crls, X509_CRL_free);
    for (i = 0; i < TF_COUNT; i++)
        free(c->files[i].path);
    free(c);
}

/* Passphrase callback: encrypted keys are refused instead of prompting on
 * a terminal the daemon does not have. */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    if (u != NULL)
        *(bool *)u = true;
    return -1;
}

/*
 * Verify callback: keep OpenSSL's verdict, and on the first failure record
 * what failed (error, depth, certificate details) on the SSL, so that
 * tls_handshake can say exactly why a client was refused.
 */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl;
    struct tls_conn *tc;
    struct tls_verify_fail *f;
    X509 *cert;

    if (ok)
        return 1;
    ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl == NULL)
        return 0;
    tc = tls_conn_get(ssl, true);
    if (tc == NULL || tc->fail != NULL)
        return 0;
    f = tc->fail = xcalloc(1, sizeof(*f));
    f->verr = X509_STORE_CTX_get_error(xs);
    f->depth = X509_STORE_CTX_get_error_depth(xs);
    cert = X509_STORE_CTX_get_current_cert(xs);
    if (cert != NULL) {
        name_str(X509_get_subject_name(cert), f->subject, sizeof(f->subject));
        name_str(X509_get_issuer_name(cert), f->issuer, sizeof(f->issuer));
        serial_str(cert, f->serial, sizeof(f->serial));
        fingerprint_str(cert, f->sha256, sizeof(f->sha256));
    }
    return 0;
}

/* read_pem_certs: every certificate of a PEM file (empty stack if none). */
static STACK_OF(X509) * read_pem_certs(const char *path)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *b = BIO_new_file(path, "r");
    X509 *x;

    if (sk == NULL || b == NULL)
        goto fail;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(sk, x) == 0) {
            X509_free(x);
            goto fail;
        }
    }
    ERR_clear_error(); /* the "no start line" at end of file */
    BIO_free(b);
    return sk;
fail:
    BIO_free(b);
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

/*
 * load_crls: add every CRL of t->crlfile to the store (checked for the
 * leaf certificate, as Mosquitto does) and keep them in c->crls. A CRL
 * whose issuer is in cafile must carry a good signature from it.
 */
static int load_crls(struct tls_ctx *c, const struct conf_tls *t,
                     struct log *lg, char *err, size_t errlen)
{
    X509_STORE *store = SSL_CTX_get_cert_store(c->ssl);
    BIO *b = NULL;
    X509_CRL *crl;
    char reason[256];
    int i, j;

    c->crls = sk_X509_CRL_new_null();
    b = BIO_new_file(t->crlfile, "r");
    if (c->crls == NULL || b == NULL)
        goto fail_ossl;
    while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_CRL_push(c->crls, crl) == 0) {
            X509_CRL_free(crl);
            goto fail_ossl;
        }
    }
    ERR_clear_error();
    if (sk_X509_CRL_num(c->crls) == 0) {
        set_err(err, errlen, t, "crlfile '%s': no PEM CRL found", t->crlfile);
        goto fail;
    }
    for (i = 0; i < sk_X509_CRL_num(c->crls); i++) {
        X509_CRL *cr = sk_X509_CRL_value(c->crls, i);
        const X509_NAME *iss = X509_CRL_get_issuer(cr);
        bool found = false;

        for (j = 0; j < sk_X509_num(c->cas); j++) {
            X509 *ca = sk_X509_value(c->cas, j);

            if (X509_NAME_cmp(X509_get_subject_name(ca), iss) != 0)
                continue;
            found = true;
            if (X509_CRL_verify(cr, X509_get0_pubkey(ca)) == 1)
                break;
            name_str(iss, reason, sizeof(reason));
            ERR_clear_error();
            set_err(err, errlen, t,
                    "crlfile '%s': CRL of '%s' is not signed by that CA in "
                    "cafile",
                    t->crlfile, reason);
            goto fail;
        }
        if (!found && t->capath == NULL && lg != NULL) {
            name_str(iss, reason, sizeof(reason));
            LOG_W(lg, "TLS: crlfile '%s': CRL issuer '%s' is not in cafile",
                  t->crlfile, reason);
        }
        if (X509_STORE_add_crl(store, cr) != 1)
            goto fail_ossl;
    }
    /* Each CA of cafile without a CRL: its clients fail the CRL check. */
    for (j = 0; lg != NULL && j < sk_X509_num(c->cas); j++) {
        X509 *ca = sk_X509_value(c->cas, j);
        bool has = false;

        for (i = 0; i < sk_X509_CRL_num(c->crls) && !has; i++)
            has = X509_NAME_cmp(
                      X509_CRL_get_issuer(sk_X509_CRL_value(c->crls, i)),
                      X509_get_subject_name(ca)) == 0;
        if (!has) {
            name_str(X509_get_subject_name(ca), reason, sizeof(reason));
            LOG_W(lg,
                  "TLS: crlfile '%s' has no CRL for CA '%s': its client "
                  "certificates will be rejected (unable to get CRL)",
                  t->crlfile, reason);
        }
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    BIO_free(b);
    return 0;
fail_ossl:
    ossl_reason(reason, sizeof(reason));
    set_err(err, errlen, t, "crlfile '%s': %s", t->crlfile, reason);
fail:
    BIO_free(b);
    return -1;
}

/* load_dh: DH parameters from a PEM file into the context. */
static int load_dh(struct tls_ctx *c, const struct conf_tls *t, char *err,
                   size_t errlen)
{
    BIO *b = BIO_new_file(t->dhparamfile, "r");
    EVP_PKEY *dh = NULL;
    char reason[256];

    if (b == NULL)
        goto fail;
    dh = PEM_read_bio_Parameters(b, NULL);
    if (dh == NULL)
        goto fail;
    if (!EVP_PKEY_is_a(dh, "DH")) {
        set_err(err, errlen, t, "dhparamfile '%s': not DH parameters",
                t->dhparamfile);
        goto fail_quiet;
    }
    if (SSL_CTX_set0_tmp_dh_pkey(c->ssl, dh) != 1)
        goto fail;
    BIO_free(b);
    return 0; /* dh is owned by the context now */
fail:
    ossl_reason(reason, sizeof(reason));
    set_err(err, errlen, t, "dhparamfile '%s': %s", t->dhparamfile, reason);
fail_quiet:
    EVP_PKEY_free(dh);
    BIO_free(b);
    return -1;
}

/* check_readable: a clear error for a missing or unreadable file. */
static int check_readable(const struct conf_tls *t, const char *what,
                          const char *path, bool dir, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        set_err(err, errlen, t, "%s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    if (dir != S_ISDIR(st.st_mode)) {
        set_err(err, errlen, t, "%s '%s': %s", what, path,
                dir ? "not a directory" : "is a directory");
        return -1;
    }
    return 0;
}

/* use_engine_key: the private key from t->engine (tls_engine.c). */
static int use_engine_key(struct tls_ctx *c, const struct conf_tls *t,
                          char *err, size_t errlen)
{
    char why[1024];
    SSL_CTX *ssl = c->ssl;
    EVP_PKEY *k = tls_engine_load_key(t->engine, t->keyfile, &c->engine, why,
                                      sizeof(why));
    int rc = -1;

    if (k == NULL) {
        set_err(err, errlen, t, "%s", why);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey(ssl, k) == 1)
        rc = 0;
    else
        set_err(err, errlen, t,
                "keyfile: the engine key does not fit certfile "
                "'%s'",
                t->certfile);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return rc;
}

struct tls_ctx *tls_ctx_new(const struct conf_tls *t, struct log *lg, char *err,
                            size_t errlen)
{
    struct tls_ctx *c = xcalloc(1, sizeof(*c));
    const char *paths[TF_COUNT];
    char reason[512];
    const char *what = "TLS context";
    bool encrypted = false;
    int minv, mode;
    size_t i;

    c->refs = 1;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    ERR_clear_error();
    if (!tls_init()) {
        what = "TLS initialisation";
        goto fail_ossl;
    }
    if (t->certfile == NULL || t->keyfile == NULL) {
        set_err(err, errlen, t, "TLS needs both certfile and keyfile");
        goto fail;
    }
    if (t->cert_mode != CONF_CERT_NONE && t->cafile == NULL &&
        t->capath == NULL) {
        set_err(err, errlen, t,
                "client certificates are requested but neither cafile nor "
                "capath is set");
        goto fail;
    }

    /* Remember the files first: a change during loading is then seen by
     * the next tls_ctx_changed() instead of being missed. */
    paths[TF_CERT] = t->certfile;
    /* an engine key (tls_keyform engine) is no file: nothing to stat */
    paths[TF_KEY] = t->keyform_engine ? NULL : t->keyfile;
    paths[TF_CA] = t->cafile;
    paths[TF_CAPATH] = t->capath;
    paths[TF_CRL] = t->crlfile;
    paths[TF_DH] = t->dhparamfile;
    for (i = 0; i < TF_COUNT; i++) {
        if (paths[i] == NULL)
            continue;
        c->files[i].path = xstrdup(paths[i]);
        file_stat(&c->files[i]);
        if (check_readable(t, tls_file_names[i], paths[i], i == TF_CAPATH, err,
                           errlen) != 0)
            goto fail;
    }

    c->ssl = SSL_CTX_new(TLS_server_method());
    if (c->ssl == NULL)
        goto fail_ossl;

    /* Never below TLS 1.2, whatever the configuration says. */
    minv = t->min_version == TLS1_3_VERSION ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (t->min_version != 0 && t->min_version != TLS1_2_VERSION &&
        t->min_version != TLS1_3_VERSION && lg != NULL)
        LOG_W(lg,
              "TLS: %s:%d: unsupported minimum TLS version 0x%x, using "
              "TLS 1.2",
              t->src ? t->src : "?", t->line, (unsigned)t->min_version);
    if (SSL_CTX_set_min_proto_version(c->ssl, minv) != 1) {
        what = "tls_version";
        goto fail_ossl;
    }
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_COMPRESSION |
                                    SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
                                    | SSL_OP_NO_CLIENT_RENEGOTIATION
#endif
    );
    /* No partial writes: tls_write writes all or nothing and is retried
     * with the same length, possibly from a moved buffer. */
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_clear_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);

    if (SSL_CTX_set_cipher_list(
            c->ssl, t->ciphers ? t->ciphers : TLS_DEFAULT_CIPHERS) != 1) {
        ossl_reason(reason, sizeof(reason));
        set_err(err, errlen, t, "ciphers '%s': %s",
                t->ciphers ? t->ciphers : TLS_DEFAULT_CIPHERS, reason);
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(c->ssl, t->ciphers_tls13
                                             ? t->ciphers_tls13
                                             : TLS13_DEFAULT_SUITES) != 1) {
        ossl_reason(reason, sizeof(reason));
        set_err(err, errlen, t, "ciphers_tls1.3 '%s': %s",
                t->ciphers_tls13 ? t->ciphers_tls13 : TLS13_DEFAULT_SUITES,
                reason);
        goto fail;
    }
    if (t->tls_groups != NULL &&
        SSL_CTX_set1_groups_list(c->ssl, t->tls_groups) != 1) {
        ossl_reason(reason, sizeof(reason));
        set_err(err, errlen, t, "tls_groups '%s': %s", t->tls_groups, reason);
        goto fail;
    }

    /* Certificate chain and key. */
    SSL_CTX_set_default_passwd_cb(c->ssl, no_passphrase_cb);
    SSL_CTX_set_default_passwd_cb_userdata(c->ssl, &encrypted);
    if (SSL_CTX_use_certificate_chain_file(c->ssl, t->certfile) != 1) {
        ossl_reason(reason, sizeof(reason));
        set_err(err, errlen, t, "certfile '%s': %s", t->certfile, reason);
        goto fail;
    }
    if (t->keyform_engine) {
        if (use_engine_key(c, t, err, errlen) != 0)
            goto fail;
    } else if (SSL_CTX_use_PrivateKey_file(c->ssl, t->keyfile,
                                           SSL_FILETYPE_PEM) != 1) {
        char shown[512];

        pkcs11_uri_redact(t->keyfile, shown, sizeof(shown));
        ossl_reason(reason, sizeof(reason));
        if (encrypted)
            set_err(err, errlen, t,
                    "keyfile '%s': the key is encrypted; mqttd needs an "
                    "unencrypted key (protect it with file permissions)",
                    shown);
        else if (strstr(reason, "values mismatch") != NULL)
            set_err(err, errlen, t,
                    "keyfile '%s' does not match certfile '%s': %s", shown,
                    t->certfile, reason);
        else
            set_err(err, errlen, t, "keyfile '%s': %s", shown, reason);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        char shown[512];

        ossl_reason(reason, sizeof(reason));
        set_err(err, errlen, t, "keyfile '%s' does not match certfile '%s': %s",
                pkcs11_uri_redact(t->keyfile, shown, sizeof(shown)),
                t->certfile, reason);
        goto fail;
    }
    SSL_CTX_set_default_passwd_cb(c->ssl, NULL);
    SSL_CTX_set_default_passwd_cb_userdata(c->ssl, NULL);

    /* Trust anchors for client certificates, and the CA names sent in the
     * CertificateRequest. */
    if (t->cafile != NULL || t->capath != NULL) {
        if (SSL_CTX_load_verify_locations(c->ssl, t->cafile, t->capath) != 1) {
            ossl_reason(reason, sizeof(reason));
            set_err(err, errlen, t, "%s '%s': %s",
                    t->cafile ? "cafile" : "capath",
                    t->cafile ? t->cafile : t->capath, reason);
            goto fail;
        }
    }
    /* A certfile without intermediates: build the chain to send once, here.
     * Left empty, OpenSSL rebuilds and verifies it against the store on
     * every handshake (X509_verify_cert: an ECDSA verification, 24 % of
     * the broker's instructions per P-256 handshake under callgrind).
     * IGNORE_ERROR keeps what is found, as the per-handshake build did. */
    {
        STACK_OF(X509) *chain = NULL;
        if (SSL_CTX_get0_chain_certs(c->ssl, &chain) == 1 &&
            sk_X509_num(chain) <= 0 &&
            SSL_CTX_build_cert_chain(c->ssl,
                                     SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR) != 1)
            ERR_clear_error();
    }
    if (t->cafile != NULL) {
        c->cas = read_pem_certs(t->cafile);
        if (c->cas == NULL || sk_X509_num(c->cas) == 0) {
            ERR_clear_error();
            set_err(err, errlen, t, "cafile '%s': no PEM certificate found",
                    t->cafile);
            goto fail;
        }
    } else {
        c->cas = sk_X509_new_null();
        if (c->cas == NULL)
            goto fail_ossl;
    }
    if (t->cert_mode != CONF_CERT_NONE) {
        STACK_OF(X509_NAME) *names = NULL;

        if (t->cafile != NULL)
            names = SSL_load_client_CA_file(t->cafile);
        else
            names = sk_X509_NAME_new_null();
        if (names != NULL && t->capath != NULL)
            (void)SSL_add_dir_cert_subjects_to_stack(names, t->capath);
        if (names == NULL)
            goto fail_ossl;
        SSL_CTX_set_client_CA_list(c->ssl, names); /* takes ownership */
        ERR_clear_error();
    }
    switch (t->cert_mode) {
    case CONF_CERT_REQUIRED:
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        break;
    case CONF_CERT_OPTIONAL:
        mode = SSL_VERIFY_PEER;
        break;
    case CONF_CERT_NONE:
    default:
        mode = SSL_VERIFY_NONE;
        break;
    }
    SSL_CTX_set_verify(c->ssl, mode, verify_cb);

    if (t->crlfile != NULL && load_crls(c, t, lg, err, errlen) != 0)
        goto fail;
    if (t->dhparamfile != NULL) {
        if (load_dh(c, t, err, errlen) != 0)
            goto fail;
    } else {
        SSL_CTX_set_dh_auto(c->ssl, 1); /* only used if DHE is configured */
    }

    /* Resumption: tickets (keys are per context, so a reload invalidates
     * every earlier session) and a bounded server-side cache. */
    if (SSL_CTX_set_session_id_context(
            c->ssl, (const unsigned char *)TLS_SESSION_ID_CTX,
            sizeof(TLS_SESSION_ID_CTX) - 1) != 1)
        goto fail_ossl;
    SSL_CTX_sess_set_cache_size(c->ssl, TLS_SESSION_CACHE_SIZE);
    /* One TLS 1.3 ticket per handshake, not OpenSSL's two: a device holds
     * one connection. Each ticket costs a session encoding, a re-decode
     * of it (with the client certificate: ~1.6 M instructions under
     * callgrind, see docs/performance.md), an encryption and an HMAC.
     * A TLS 1.3 resumption issues none unless the ticket's key is an
     * older one (decrypt_cb: SSL_TICKET_RETURN_USE vs USE_RENEW). */
    if (SSL_CTX_set_num_tickets(c->ssl, 1) != 1)
        goto fail_ossl;
    ERR_clear_error();
    return c;

fail_ossl:
    ossl_reason(reason, sizeof(reason));
    set_err(err, errlen, t, "%s: %s", what, reason);
fail:
    ERR_clear_error();
    tls_ctx_free(c);
    return NULL;
}

/* alpn_wire: "mqtt,x-amzn-mqtt-ca" as ALPN wire format (length-prefixed
 * names); -1 when a name is empty or longer than 255 bytes. */
static int alpn_wire(const char *list, unsigned char *out, size_t outlen,
                     size_t *n)
{
    const char *p = list;

    *n = 0;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 255 || *n + 1 + len > outlen)
            return -1;
        out[(*n)++] = (unsigned char)len;
        memcpy(out + *n, p, len);
        *n += len;
        p += len;
        if (*p == ',')
            p++;
    }
    return *n > 0 ? 0 : -1;
}

struct tls_ctx *tls_client_ctx_new(const char *cafile, const char *capath,
                                   const char *certfile, const char *keyfile,
                                   bool insecure, const char *alpn, char *err,
                                   size_t errlen)
{
    struct tls_ctx *c = xcalloc(1, sizeof(*c));
    unsigned char wire[512];
    char reason[512];
    const char *what = "TLS client context";
    size_t wn;

    c->refs = 1;
    c->insecure = insecure;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    ERR_clear_error();
    if (!tls_init())
        goto fail_ossl;
    if ((certfile == NULL) != (keyfile == NULL)) {
        snprintf(err, errlen, "TLS client: certfile and keyfile go together");
        goto fail;
    }
    c->ssl = SSL_CTX_new(TLS_client_method());
    if (c->ssl == NULL)
        goto fail_ossl;
    if (SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION) != 1)
        goto fail_ossl;
    SSL_CTX_set_options(c->ssl,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_clear_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (SSL_CTX_set_cipher_list(c->ssl, TLS_DEFAULT_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(c->ssl, TLS13_DEFAULT_SUITES) != 1)
        goto fail_ossl;
    SSL_CTX_set_default_passwd_cb(c->ssl, no_passphrase_cb);
    if (cafile != NULL || capath != NULL) {
        what = "cafile/capath";
        if (SSL_CTX_load_verify_locations(c->ssl, cafile, capath) != 1)
            goto fail_ossl;
    } else if (!insecure) {
        what = "default CA paths";
        if (SSL_CTX_set_default_verify_paths(c->ssl) != 1)
            goto fail_ossl;
    }
    if (certfile != NULL) {
        what = "certfile";
        if (SSL_CTX_use_certificate_chain_file(c->ssl, certfile) != 1)
            goto fail_ossl;
        what = "keyfile";
        if (SSL_CTX_use_PrivateKey_file(c->ssl, keyfile, SSL_FILETYPE_PEM) !=
                1 ||
            SSL_CTX_check_private_key(c->ssl) != 1)
            goto fail_ossl;
    }
    if (alpn != NULL) {
        if (alpn_wire(alpn, wire, sizeof(wire), &wn) != 0) {
            snprintf(err, errlen, "TLS client: invalid ALPN list '%s'", alpn);
            goto fail;
        }
        what = "ALPN";
        /* 0 is success here (OpenSSL's historical convention) */
        if (SSL_CTX_set_alpn_protos(c->ssl, wire, (unsigned)wn) != 0)
            goto fail_ossl;
    }
    SSL_CTX_set_verify(c->ssl, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
    ERR_clear_error();
    return c;

fail_ossl:
    ossl_reason(reason, sizeof(reason));
    snprintf(err, errlen, "TLS client: %s: %s", what, reason);
fail:
    ERR_clear_error();
    tls_ctx_free(c);
    return NULL;
}

int tls_ctx_set_min_version(struct tls_ctx *c, int version)
{
    return SSL_CTX_set_min_proto_version(c->ssl, version) == 1 ? 0 : -1;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
    if (c != NULL)
        __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void tls_ctx_unref(struct tls_ctx *c)
{
    if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    tls_ctx_free(c);
}

SSL_CTX *tls_ctx_ssl(struct tls_ctx *c)
{
    return c->ssl;
}

bool tls_ctx_changed(const struct tls_ctx *c)
{
    size_t i;

    for (i = 0; i < TF_COUNT; i++) {
        const struct tls_file *old = &c->files[i];
        struct tls_file now;

        if (old->path == NULL)
            continue;
        now = *old;
        file_stat(&now);
        if (now.present != old->present)
            return true;
        if (!now.present)
            continue;
        if (now.dev != old->dev || now.ino != old->ino ||
            now.size != old->size || now.mtime.tv_sec != old->mtime.tv_sec ||
            now.mtime.tv_nsec != old->mtime.tv_nsec)
            return true;
    }
    return false;
}

bool tls_ctx_has_crl(const struct tls_ctx *c)
{
    return c != NULL && c->crls != NULL && sk_X509_CRL_num(c->crls) > 0;
}

bool tls_ctx_cert_revoked(const struct tls_ctx *c, X509 *cert)
{
    int i;

    if (!tls_ctx_has_crl(c) || cert == NULL)
        return false;
    for (i = 0; i < sk_X509_CRL_num(c->crls); i++) {
        X509_CRL *crl = sk_X509_CRL_value(c->crls, i);
        X509_REVOKED *rev = NULL;

        if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
                          X509_get_issuer_name(cert)) != 0)
            continue;
        /* 1 = listed; 2 = listed as removeFromCRL (not revoked) */
        if (X509_CRL_get0_by_cert(crl, &rev, cert) == 1)
            return true;
    }
    return false;
}

/* expiry_one: warn when 'when' is less than warn_days away (or past). */
static void expiry_one(struct log *lg, const char *what, const char *path,
                       const X509_NAME *name, const ASN1_TIME *when,
                       const ASN1_TIME *now, unsigned warn_days)
{
    char subj[TLS_NAME_MAX], date[64];
    int days = 0, secs = 0;
    long long left;

    if (when == NULL || lg == NULL || !ASN1_TIME_diff(&days, &secs, now, when))
        return;
    left = (long long)days * 86400 + secs;
    if (left >= (long long)warn_days * 86400)
        return;
    name_str(name, subj, sizeof(subj));
    asn1_time_str(when, date, sizeof(date));
    if (left <= 0)
        LOG_W(lg, "TLS: %s '%s' (%s) expired on %s (%d days ago)", what, path,
              subj, date, -days);
    else
        LOG_W(lg, "TLS: %s '%s' (%s) expires on %s (in %d days)", what, path,
              subj, date, days);
}

void tls_ctx_expiry_report(const struct tls_ctx *c, struct log *lg,
                           unsigned warn_days, time_t now,
                           time_t *server_not_after)
{
    ASN1_TIME *nowt;
    X509 *srv;
    STACK_OF(X509) *chain = NULL;
    int i;

    if (server_not_after != NULL)
        *server_not_after = 0;
    if (c == NULL)
        return;
    srv = SSL_CTX_get0_certificate(c->ssl);
    if (srv != NULL && server_not_after != NULL)
        *server_not_after = asn1_time_t(X509_get0_notAfter(srv));
    nowt = ASN1_TIME_set(NULL, now);
    if (nowt == NULL)
        return;
    if (srv != NULL)
        expiry_one(lg, "server certificate", c->files[TF_CERT].path,
                   X509_get_subject_name(srv), X509_get0_notAfter(srv), nowt,
                   warn_days);
    if (SSL_CTX_get0_chain_certs(c->ssl, &chain) == 1)
        for (i = 0; i < sk_X509_num(chain); i++) {
            X509 *x = sk_X509_value(chain, i);
            bool ca = false;

            /* the chain built at load may end in a CA of cafile: report
             * that one once, as a CA certificate */
            for (int k = 0; !ca && k < sk_X509_num(c->cas); k++)
                ca = X509_cmp(x, sk_X509_value(c->cas, k)) == 0;
            if (ca)
                continue;
            expiry_one(lg, "chain certificate", c->files[TF_CERT].path,
                       X509_get_subject_name(x), X509_get0_notAfter(x), nowt,
                       warn_days);
        }
    for (i = 0; i < sk_X509_num(c->cas); i++) {
        X509 *x = sk_X509_value(c->cas, i);

        expiry_one(lg, "CA certificate", c->files[TF_CA].path,
                   X509_get_subject_name(x), X509_get0_notAfter(x), nowt,
                   warn_days);
    }
    for (i = 0; c->crls != NULL && i < sk_X509_CRL_num(c->crls); i++) {
        X509_CRL *crl = sk_X509_CRL_value(c->crls, i);

        expiry_one(lg, "CRL (nextUpdate) of", c->files[TF_CRL].path,
                   X509_CRL_get_issuer(crl), X509_CRL_get0_nextUpdate(crl),
                   nowt, warn_days);
    }
    ASN1_TIME_free(nowt);
    ERR_clear_error();
}

/* cert_one: hand one certificate (or a CRL's nextUpdate) to fn. */
static void cert_one(tls_cert_fn fn, void *ud, const char *kind,
                     const char *file, const X509_NAME *name,
                     const ASN1_TIME *t)
{
    struct tls_cert_info ci;
    char subj[TLS_NAME_MAX];

    name_str(name, subj, sizeof(subj));
    ci.kind = kind;
    ci.file = file ? file : "";
    ci.subject = subj;
    ci.not_after = t ? asn1_time_t(t) : 0;
    fn(ud, &ci);
}

void tls_ctx_certs(const struct tls_ctx *c, tls_cert_fn fn, void *ud)
{
    STACK_OF(X509) *chain = NULL;
    X509 *srv;
    int i;

    if (c == NULL)
        return;
    srv = SSL_CTX_get0_certificate(c->ssl);
    if (srv != NULL)
        cert_one(fn, ud, "server", c->files[TF_CERT].path,
                 X509_get_subject_name(srv), X509_get0_notAfter(srv));
    if (SSL_CTX_get0_chain_certs(c->ssl, &chain) == 1)
        for (i = 0; i < sk_X509_num(chain); i++) {
            X509 *x = sk_X509_value(chain, i);
            bool ca = false;

            for (int k = 0; !ca && k < sk_X509_num(c->cas); k++)
                ca = X509_cmp(x, sk_X509_value(c->cas, k)) == 0;
            if (!ca)
                cert_one(fn, ud, "chain", c->files[TF_CERT].path,
                         X509_get_subject_name(x), X509_get0_notAfter(x));
        }
    for (i = 0; i < sk_X509_num(c->cas); i++) {
        X509 *x = sk_X509_value(c->cas, i);

        cert_one(fn, ud, "ca", c->files[TF_CA].path, X509_get_subject_name(x),
                 X509_get0_notAfter(x));
    }
    for (i = 0; c->crls != NULL && i < sk_X509_CRL_num(c->crls); i++) {
        X509_CRL *crl = sk_X509_CRL_value(c->crls, i);

        cert_one(fn, ud, "crl", c->files[TF_CRL].path, X509_CRL_get_issuer(crl),
                 X509_CRL_get0_nextUpdate(crl));
    }
    ERR_clear_error();
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

SSL *tls_new_ssl(struct tls_ctx *c, int fd)
{
    SSL *ssl;

    if (c == NULL || !tls_init())
        return NULL;
    ssl = SSL_new(c->ssl);
    if (ssl == NULL)
        goto fail;
    if (SSL_set_fd(ssl, fd) != 1 || tls_conn_get(ssl, true) == NULL)
        goto fail;
    SSL_set_accept_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

SSL *tls_new_client_ssl(struct tls_ctx *c, int fd, const char *sni)
{
    SSL *ssl;

    if (c == NULL || !tls_init())
        return NULL;
    ssl = SSL_new(c->ssl);
    if (ssl == NULL)
        goto fail;
    if (SSL_set_fd(ssl, fd) != 1)
        goto fail;
    if (sni != NULL) {
        if (SSL_set_tlsext_host_name(ssl, sni) != 1)
            goto fail;
        if (!c->insecure && SSL_set1_host(ssl, sni) != 1)
            goto fail;
    }
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

/* map_io: SSL_get_error of a failed call to enum tls_io. errno is kept for
 * the caller on socket errors. */
static enum tls_io map_io(SSL *ssl, int ret)
{
    int saved = errno;
    int e = SSL_get_error(ssl, ret);
    unsigned long code;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_IO_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && saved == 0)
            return TLS_IO_CLOSED;
        errno = saved;
        return TLS_IO_ERROR;
    case SSL_ERROR_SSL:
        code = ERR_peek_error();
        if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
            ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return TLS_IO_CLOSED;
        return TLS_IO_ERROR;
    default:
        return TLS_IO_ERROR;
    }
}

/* peek_head: before OpenSSL consumes anything, look at the first bytes
 * the client sent (to recognise plaintext on a TLS port). */
static void peek_head(SSL *ssl, struct tls_conn *tc)
{
    int fd;
    ssize_t n;

    if (tc == NULL || tc->peeked)
        return;
    fd = SSL_get_rfd(ssl);
    if (fd < 0) {
        tc->peeked = true;
        return;
    }
    n = recv(fd, tc->head, sizeof(tc->head), MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        tc->headlen = (size_t)n;
        tc->peeked = true;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
               errno != EINTR) {
        tc->peeked = true; /* not a socket, or a real error: give up */
    }
}

/* verify_summary: a short description of an X509_V_ERR_* code. */
static const char *verify_summary(int verr, int depth)
{
    bool leaf = depth == 0;

    switch (verr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return leaf ? "client certificate expired"
                    : "a CA certificate of the client chain expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return leaf ? "client certificate not yet valid"
                    : "a CA certificate of the client chain not yet valid";
    case X509_V_ERR_CERT_REVOKED:
        return "client certificate revoked";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "client certificate from unknown CA";
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        return "no CRL for the client certificate's CA in crlfile";
    case X509_V_ERR_CRL_HAS_EXPIRED:
        return "CRL expired (crlfile needs a fresh CRL)";
    case X509_V_ERR_CRL_NOT_YET_VALID:
        return "CRL not yet valid";
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
        return "CRL signature invalid";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "client certificate signature invalid";
    case X509_V_ERR_INVALID_PURPOSE:
        return "client certificate not valid for TLS client authentication";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
        return "client certificate chain too long";
    default:
        return "client certificate rejected";
    }
}

/* why_verify: the verify failure with the certificate details. */
static void why_verify(SSL *ssl, const struct tls_conn *tc, char *why,
                       size_t whylen)
{
    long verr = SSL_get_verify_result(ssl);

    const struct tls_verify_fail *f = tc ? tc->fail : NULL;

    if (f == NULL) {
        snprintf(why, whylen, "%s: %s", verify_summary((int)verr, 0),
                 X509_verify_cert_error_string(verr));
        return;
    }
    snprintf(why, whylen,
             "%s: %s (depth=%d subject=\"%s\" serial=%s sha256=%s "
             "issuer=\"%s\")",
             verify_summary(f->verr, f->depth),
             X509_verify_cert_error_string(f->verr), f->depth, f->subject,
             f->serial, f->sha256, f->issuer);
}

/* why_not_tls: the stream did not start like a TLS record (0x16). */
static bool why_not_tls(const struct tls_conn *tc, const char *reason,
                        char *why, size_t whylen)
{
    static const char *const http[] = {"GET ", "POST", "PUT ",
                                       "HEAD", "CONN", "OPTI"};
    size_t i;

    if (tc == NULL || tc->headlen == 0 || tc->head[0] == 0x16)
        return false;
    for (i = 0; i < ARRAY_LEN(http); i++)
        if (tc->headlen >= 4 && memcmp(tc->head, http[i], 4) == 0) {
            snprintf(why, whylen, "plaintext HTTP on a TLS port: %s", reason);
            return true;
        }
    /* The first byte of a TLS stream is a record type: handshake (0x16).
     * Anything else is most often a client speaking its protocol in the
     * clear; naming that protocol is the caller's business. */
    snprintf(why, whylen,
             "first byte 0x%02x is not a TLS record: plaintext on a TLS "
             "port? (%s)",
             tc->head[0], reason);
    return true;
}

/* why_ssl_error: a specific reason for a failed handshake from the error
 * queue (empties it). Returns TLS_IO_CLOSED for an EOF. */
static enum tls_io why_ssl_error(SSL *ssl, const struct tls_conn *tc, char *why,
                                 size_t whylen)
{
    unsigned long e, code = 0;
    char reason[256];
    int r;

    /* the first SSL-library error is the one that failed the handshake */
    while ((e = ERR_peek_error()) != 0) {
        if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
            code = e;
            break;
        }
        (void)ERR_get_error();
    }
    r = code ? ERR_GET_REASON(code) : 0;
    ossl_reason(reason, sizeof(reason));
    if (r == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        snprintf(why, whylen, "connection closed during TLS handshake");
        return TLS_IO_CLOSED;
    }
    if (!SSL_is_server(ssl)) { /* an outgoing connection */
        long verr = SSL_get_verify_result(ssl);
        if (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && verr != X509_V_OK)
            snprintf(why, whylen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(verr));
        else
            snprintf(why, whylen, "%s", reason);
        return TLS_IO_ERROR;
    }
    if (why_not_tls(tc, reason, why, whylen))
        return TLS_IO_ERROR;
    if (r == SSL_R_CERTIFICATE_VERIFY_FAILED ||
        SSL_get_verify_result(ssl) != X509_V_OK) {
        why_verify(ssl, tc, why, whylen);
        return TLS_IO_ERROR;
    }
    switch (r) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        snprintf(why, whylen, "no client certificate (required)");
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_WRONG_SSL_VERSION:
        snprintf(why, whylen, "protocol version too old: %s", reason);
        break;
    case SSL_R_NO_SHARED_CIPHER:
        snprintf(why, whylen,
                 "no shared cipher (the client offers none of the "
                 "configured ciphers): %s",
                 reason);
        break;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        snprintf(why, whylen, "not a TLS handshake: %s", reason);
        break;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        snprintf(why, whylen, "client rejected the server certificate: %s",
                 reason);
        break;
    default:
        if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
            snprintf(why, whylen, "client aborted the handshake: %s", reason);
        else
            snprintf(why, whylen, "%s", reason);
        break;
    }
    return TLS_IO_ERROR;
}

enum tls_io tls_handshake(SSL *ssl, char *why, size_t whylen)
{
    struct tls_conn *tc = tls_conn_get(ssl, false);
    char tmp[8];
    int r, e, saved;
    X509 *peer;

    if (why == NULL || whylen == 0) {
        why = tmp;
        whylen = sizeof(tmp);
    }
    why[0] = '\0';
    peek_head(ssl, tc);
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(ssl);
    if (r == 1) {
        /* A resumed session skips verification: refuse one whose client
         * certificate has expired since. */
        peer = SSL_get0_peer_certificate(ssl);
        if (SSL_session_reused(ssl) && peer != NULL &&
            X509_cmp_current_time(X509_get0_notAfter(peer)) < 0) {
            char subj[TLS_NAME_MAX];

            name_str(X509_get_subject_name(peer), subj, sizeof(subj));
            snprintf(why, whylen,
                     "client certificate expired (resumed session, "
                     "subject=\"%s\")",
                     subj);
            return TLS_IO_ERROR;
        }
        if (tc != NULL) { /* handshake state no longer needed */
            SSL_set_ex_data(ssl, tls_ex_index, NULL);
            tls_conn_destroy(tc);
        }
        return TLS_IO_OK;
    }
    saved = errno;
    e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(why, whylen, "connection closed during TLS handshake");
        return TLS_IO_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() != 0)
            return why_ssl_error(ssl, tc, why, whylen);
        if (saved == 0) {
            snprintf(why, whylen, "connection closed during TLS handshake");
            return TLS_IO_CLOSED;
        }
        snprintf(why, whylen, "socket error during TLS handshake: %s",
                 strerror(saved));
        errno = saved;
        return TLS_IO_ERROR;
    case SSL_ERROR_SSL:
        return why_ssl_error(ssl, tc, why, whylen);
    default:
        snprintf(why, whylen, "TLS handshake failed (SSL error %d)", e);
        ERR_clear_error();
        return TLS_IO_ERROR;
    }
}

enum tls_io tls_read(SSL *ssl, void *buf, size_t len, size_t *n)
{
    *n = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(ssl, buf, len, n) == 1)
        return TLS_IO_OK;
    *n = 0;
    return map_io(ssl, 0);
}

enum tls_io tls_write(SSL *ssl, const void *buf, size_t len, size_t *n)
{
    *n = 0;
    if (len == 0)
        return TLS_IO_OK;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(ssl, buf, len, n) == 1)
        return TLS_IO_OK; /* all of len: partial writes are off */
    *n = 0;
    return map_io(ssl, 0);
}

/* What an established connection is, kept after its SSL is gone. */
struct tls_info {
    X509 *peer;          /* owned reference, NULL = no certificate */
    const char *version; /* static strings of libssl */
    const char *cipher;
    bool resumed;
    bool verified;
    X509 *issuer; /* owned; the peer's issuer from the verified chain */
};

struct tls_info *tls_info_new(SSL *ssl)
{
    struct tls_info *ti = xcalloc(1, sizeof(*ti));

    ti->peer = SSL_get1_peer_certificate(ssl);
    ti->version = SSL_get_version(ssl);
    ti->cipher = SSL_get_cipher_name(ssl);
    ti->resumed = SSL_session_reused(ssl) != 0;
    ti->verified = SSL_get_verify_result(ssl) == X509_V_OK;
    {
        STACK_OF(X509) *ch = SSL_get0_verified_chain(ssl);
        if (ti->peer != NULL && ch != NULL && sk_X509_num(ch) >= 2) {
            ti->issuer = sk_X509_value(ch, 1);
            X509_up_ref(ti->issuer);
        }
    }
    return ti;
}

void tls_info_free(struct tls_info *ti)
{
    if (ti == NULL)
        return;
    X509_free(ti->peer);
    X509_free(ti->issuer);
    free(ti);
}

X509 *tls_info_peer(const struct tls_info *ti)
{
    return ti->peer;
}

X509 *tls_info_issuer(const struct tls_info *ti)
{
    return ti->issuer;
}

X509_STORE *tls_ctx_store(struct tls_ctx *c)
{
    return SSL_CTX_get_cert_store(c->ssl);
}

void tls_describe(const struct tls_info *ti, char *out, size_t outlen)
{
    char subj[TLS_NAME_MAX], serial[80];

    if (outlen == 0)
        return;
    if (ti->peer == NULL) {
        snprintf(out, outlen, "%s %s no client certificate%s", ti->version,
                 ti->cipher, ti->resumed ? " resumed" : "");
        return;
    }
    name_str(X509_get_subject_name(ti->peer), subj, sizeof(subj));
    serial_str(ti->peer, serial, sizeof(serial));
    snprintf(out, outlen, "%s %s subject=%s serial=%s%s", ti->version,
             ti->cipher, subj, serial, ti->resumed ? " resumed" : "");
}

bool tls_info_resumed(const struct tls_info *ti)
{
    return ti->resumed;
}

bool tls_info_verified(const struct tls_info *ti)
{
    return ti->verified;
}

time_t tls_peer_not_after(const struct tls_info *ti)
{
    if (ti->peer == NULL)
        return 0;
    return asn1_time_t(X509_get0_notAfter(ti->peer));
}

void tls_release_buffers(SSL *ssl)
{
    (void)SSL_free_buffers(ssl); /* 0 when data is pending: kept then */
}
