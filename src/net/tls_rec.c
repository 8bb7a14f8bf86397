/*
 * tls_rec.c - TLS 1.3 record protection after OpenSSL's handshake: secret
 * capture during the handshake, key derivation (RFC 8446 7.1, 7.3),
 * sealing and opening records (5.2, 5.3), KeyUpdate (4.6.3) and alerts
 * (6). See tls_rec.h for why.
 */
#include "tls_rec.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util.h"

#define HDR_LEN 5u
#define TAG_LEN 16u
#define MAX_PLAIN 16384u
#define MAX_CIPHER (MAX_PLAIN + 256u)
#define SECRET_MAX 48u
#define KEY_MAX 32u
#define IV_LEN 12u
#define OVERHEAD (HDR_LEN + 1u + TAG_LEN) /* header, inner type, tag */
#define REKEY_DEFAULT (1ull << 23)

enum {
    CT_ALERT = 21,
    CT_HANDSHAKE = 22,
    CT_APPDATA = 23,
};

enum {
    HS_FINISHED = 20,
    HS_KEY_UPDATE = 24,
};

enum {
    AL_CLOSE_NOTIFY = 0,
    AL_UNEXPECTED_MESSAGE = 10,
    AL_BAD_RECORD_MAC = 20,
    AL_RECORD_OVERFLOW = 22,
    AL_ILLEGAL_PARAMETER = 47,
    AL_DECODE_ERROR = 50,
    AL_USER_CANCELED = 90,
};

/* What the callbacks capture while OpenSSL runs the handshake (ex_data). */
struct rec_capture {
    unsigned char client[SECRET_MAX]; /* client_application_traffic_secret_0 */
    unsigned char server[SECRET_MAX]; /* server_application_traffic_secret_0 */
    size_t client_len, server_len;
    bool sent_finished, got_finished;
    uint64_t wseq; /* records written after the server's Finished */
    uint64_t rseq; /* records read after the client's Finished */
};

/* One direction: the current traffic secret, its key schedule and IV. */
struct rec_dir {
    EVP_CIPHER_CTX *ctx;
    unsigned char secret[SECRET_MAX];
    unsigned char iv[IV_LEN];
    uint64_t seq;
};

#define N_SUITES 3 /* TLS_AES_128_GCM, TLS_AES_256_GCM, TLS_CHACHA20 */

/* One TLS 1.3 AEAD suite, fetched from the provider once per SSL_CTX:
 * fetching by name costs more than the whole key schedule of a
 * connection, so no connection fetches. */
struct rec_suite {
    uint16_t id;        /* TLS cipher suite number */
    EVP_CIPHER *cipher; /* NULL when the provider lacks it */
    EVP_MAC_CTX *hmac;  /* HMAC with the suite's hash, no key yet: each
                           derivation duplicates it */
    size_t hash_len, key_len;
};

/* The suites of one SSL_CTX (ex_data), shared by reference with every
 * tls_rec taken from it, so a reload may free the SSL_CTX first. Read-only
 * after set-up; the count is atomic because the loops of 'threads' take
 * and free connections concurrently. */
struct rec_algs {
    atomic_uint refs;
    struct rec_suite suite[N_SUITES];
};

struct tls_rec {
    struct rec_algs *algs; /* a reference */
    const struct rec_suite *s;
    struct rec_dir rd, wr;
    uint64_t rekey_limit;
    uint64_t ku_rx, ku_tx;
    bool ku_owed;  /* a KeyUpdate was requested and is not answered yet */
    uint8_t *part; /* a partial record read, or NULL */
    size_t part_len;
    uint8_t *wq; /* sealed bytes the socket has not taken, or NULL */
    size_t wq_head, wq_len;
    bool closed; /* close_notify or EOF seen */
    bool failed;
    char err[96];
};

/*
 * The ex_data index for struct rec_capture. OpenSSL hands out ex_data
 * indexes process-wide; it is set exactly once (CRYPTO_THREAD_run_once) and
 * never changes afterwards, so it is a registration, not mutable state.
 */
static CRYPTO_ONCE rec_once = CRYPTO_ONCE_STATIC_INIT;
static int rec_ex_index = -1;
static int algs_ex_index = -1; /* struct rec_algs on the SSL_CTX */

static void algs_unref(struct rec_algs *a)
{
    if (a == NULL || atomic_fetch_sub(&a->refs, 1) != 1)
        return;
    for (size_t i = 0; i < N_SUITES; i++) {
        EVP_CIPHER_free(a->suite[i].cipher);
        EVP_MAC_CTX_free(a->suite[i].hmac);
    }
    free(a);
}

/* Fetch what one suite needs; a suite the provider lacks stays NULL and
 * tls_rec_take declines it. */
static void suite_fetch(struct rec_suite *s, uint16_t id, const char *cipher,
                        const char *digest, size_t hash_len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    char dname[16]; /* OSSL_PARAM wants a mutable string */
    OSSL_PARAM params[2];

    snprintf(dname, sizeof(dname), "%s", digest);
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, dname, 0);
    params[1] = OSSL_PARAM_construct_end();
    s->id = id;
    s->cipher = EVP_CIPHER_fetch(NULL, cipher, NULL);
    s->hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (s->cipher != NULL && s->hmac != NULL &&
        EVP_MAC_CTX_set_params(s->hmac, params) == 1) {
        s->hash_len = hash_len;
        s->key_len = (size_t)EVP_CIPHER_get_key_length(s->cipher);
    } else {
        EVP_CIPHER_free(s->cipher);
        EVP_MAC_CTX_free(s->hmac);
        s->cipher = NULL;
        s->hmac = NULL;
    }
    EVP_MAC_free(mac);
}

enum { EX_CAPTURE, EX_ALGS }; /* argl of the two ex_data indexes */

/* ex_data free callback for both indexes: argl says which one ptr is. */
static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                    long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argp;
    if (argl == EX_ALGS)
        algs_unref(ptr);
    else if (ptr != NULL)
        OPENSSL_clear_free(ptr, sizeof(struct rec_capture));
}

static void rec_once_init(void)
{
    rec_ex_index = SSL_get_ex_new_index(EX_CAPTURE, NULL, NULL, NULL, ex_free);
    algs_ex_index =
        SSL_CTX_get_ex_new_index(EX_ALGS, NULL, NULL, NULL, ex_free);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Parse "<hex>" into out; the length in bytes, 0 when malformed. */
static size_t parse_hex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;

    while (s[0] != '\0' && s[0] != ' ' && s[0] != '\n') {
        int hi = hexval(s[0]), lo = s[1] ? hexval(s[1]) : -1;
        if (hi < 0 || lo < 0 || n == cap)
            return 0;
        out[n++] = (unsigned char)((hi << 4) | lo);
        s += 2;
    }
    return n;
}

/* Keylog lines: "LABEL <client_random hex> <secret hex>". Only the two
 * application traffic secrets are kept; the line is not logged. */
static void keylog_cb(const SSL *ssl, const char *line)
{
    struct rec_capture *cap = SSL_get_ex_data(ssl, rec_ex_index);
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ";
    static const char sv[] = "SERVER_TRAFFIC_SECRET_0 ";
    unsigned char *dst;
    size_t *dlen;
    const char *p;

    if (cap == NULL)
        return;
    if (strncmp(line, cl, sizeof(cl) - 1) == 0) {
        dst = cap->client;
        dlen = &cap->client_len;
    } else if (strncmp(line, sv, sizeof(sv) - 1) == 0) {
        dst = cap->server;
        dlen = &cap->server_len;
    } else {
        return;
    }
    p = strchr(line + sizeof(cl) - 1, ' '); /* skip the client random */
    *dlen = p ? parse_hex(p + 1, dst, SECRET_MAX) : 0;
}

/* Message callback: counts the records protected with the application
 * keys before tls_rec takes over (the server's session tickets). */
static void msg_cb(int write_p, int version, int content_type, const void *buf,
                   size_t len, SSL *ssl, void *arg)
{
    struct rec_capture *cap = SSL_get_ex_data(ssl, rec_ex_index);
    const unsigned char *b = buf;

    (void)version;
    (void)arg;
    if (cap == NULL) {
        cap = OPENSSL_zalloc(sizeof(*cap));
        if (cap == NULL || !SSL_set_ex_data(ssl, rec_ex_index, cap)) {
            OPENSSL_free(cap);
            return;
        }
    }
    if (content_type == SSL3_RT_HEADER) {
        if (write_p && cap->sent_finished)
            cap->wseq++;
        else if (!write_p && cap->got_finished)
            cap->rseq++;
    } else if (content_type == SSL3_RT_HANDSHAKE && len > 0 &&
               b[0] == HS_FINISHED) {
        if (write_p)
            cap->sent_finished = true;
        else
            cap->got_finished = true;
    }
}

bool tls_rec_ctx_setup(SSL_CTX *ctx)
{
    struct rec_algs *a;

    if (!CRYPTO_THREAD_run_once(&rec_once, rec_once_init) || rec_ex_index < 0 ||
        algs_ex_index < 0)
        return false;
    if (SSL_CTX_get_ex_data(ctx, algs_ex_index) == NULL) {
        a = xcalloc(1, sizeof(*a));
        atomic_init(&a->refs, 1);
        suite_fetch(&a->suite[0], 0x1301, "AES-128-GCM", "SHA256", 32);
        suite_fetch(&a->suite[1], 0x1302, "AES-256-GCM", "SHA384", 48);
        suite_fetch(&a->suite[2], 0x1303, "ChaCha20-Poly1305", "SHA256", 32);
        if (!SSL_CTX_set_ex_data(ctx, algs_ex_index, a)) {
            algs_unref(a);
            return false;
        }
    }
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    SSL_CTX_set_msg_callback(ctx, msg_cb);
    return true;
}

/* HKDF-Expand-Label(secret, label, "", outlen) for outlen <= hash length:
 * one HMAC block, T(1) (RFC 8446 7.1, RFC 5869 2.3). */
static bool expand_label(const struct tls_rec *r, const unsigned char *secret,
                         const char *label, unsigned char *out, size_t outlen)
{
    unsigned char info[2 + 1 + 6 + 16 + 1 + 1];
    unsigned char t[EVP_MAX_MD_SIZE];
    size_t ll = strlen(label), i = 0, tlen = 0;
    EVP_MAC_CTX *m;
    bool ok;

    if (ll > 16 || outlen > r->s->hash_len)
        return false;
    info[i++] = (unsigned char)(outlen >> 8);
    info[i++] = (unsigned char)outlen;
    info[i++] = (unsigned char)(6 + ll);
    memcpy(info + i, "tls13 ", 6);
    i += 6;
    memcpy(info + i, label, ll);
    i += ll;
    info[i++] = 0; /* empty context */
    info[i++] = 1; /* block counter */
    m = EVP_MAC_CTX_dup(r->s->hmac);
    ok = m != NULL && EVP_MAC_init(m, secret, r->s->hash_len, NULL) == 1 &&
         EVP_MAC_update(m, info, i) == 1 &&
         EVP_MAC_final(m, t, &tlen, sizeof(t)) == 1 && tlen >= outlen;
    EVP_MAC_CTX_free(m);
    if (ok)
        memcpy(out, t, outlen);
    OPENSSL_cleanse(t, sizeof(t));
    return ok;
}

/* Install d's key and IV from d->secret. */
static bool dir_keys(const struct tls_rec *r, struct rec_dir *d, int enc)
{
    unsigned char key[KEY_MAX];
    bool ok;

    if (!expand_label(r, d->secret, "key", key, r->s->key_len) ||
        !expand_label(r, d->secret, "iv", d->iv, IV_LEN))
        return false;
    if (d->ctx == NULL && (d->ctx = EVP_CIPHER_CTX_new()) == NULL)
        return false;
    ok = EVP_CipherInit_ex2(d->ctx, r->s->cipher, key, NULL, enc, NULL) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

/* KeyUpdate: next secret = HKDF-Expand-Label(secret, "traffic upd"). */
static bool dir_update(const struct tls_rec *r, struct rec_dir *d, int enc)
{
    unsigned char next[SECRET_MAX];

    if (!expand_label(r, d->secret, "traffic upd", next, r->s->hash_len))
        return false;
    memcpy(d->secret, next, r->s->hash_len);
    OPENSSL_cleanse(next, sizeof(next));
    d->seq = 0;
    return dir_keys(r, d, enc);
}

/* Per-record nonce: the IV XOR the 64-bit sequence number (5.3). */
static void nonce(const struct rec_dir *d, unsigned char out[IV_LEN])
{
    memcpy(out, d->iv, IV_LEN);
    for (unsigned i = 0; i < 8; i++)
        out[IV_LEN - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

/* Seal len bytes of content type 'type' into out (len + OVERHEAD bytes). */
static bool seal(struct rec_dir *d, uint8_t type, const uint8_t *in, size_t len,
                 uint8_t *out)
{
    unsigned char iv[IV_LEN];
    size_t clen = len + 1 + TAG_LEN;
    int outl = 0;

    out[0] = CT_APPDATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    nonce(d, iv);
    if (EVP_CipherInit_ex2(d->ctx, NULL, NULL, iv, 1, NULL) != 1 ||
        EVP_EncryptUpdate(d->ctx, NULL, &outl, out, (int)HDR_LEN) != 1 ||
        (len > 0 &&
         EVP_EncryptUpdate(d->ctx, out + HDR_LEN, &outl, in, (int)len) != 1) ||
        EVP_EncryptUpdate(d->ctx, out + HDR_LEN + len, &outl, &type, 1) != 1 ||
        EVP_EncryptFinal_ex(d->ctx, out + HDR_LEN + len + 1, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, (int)TAG_LEN,
                            out + HDR_LEN + len + 1) != 1)
        return false;
    d->seq++;
    return true;
}

/* Open the record at rec (header + clen bytes) in place. On success the
 * content is rec[HDR_LEN .. HDR_LEN + *len) of type *type. */
static bool open_record(struct rec_dir *d, uint8_t *rec, size_t clen,
                        size_t *len, uint8_t *type)
{
    unsigned char iv[IV_LEN];
    uint8_t *p = rec + HDR_LEN;
    size_t n = clen - TAG_LEN;
    int outl = 0;

    nonce(d, iv);
    if (EVP_CipherInit_ex2(d->ctx, NULL, NULL, iv, 0, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, (int)TAG_LEN,
                            p + n) != 1 ||
        EVP_DecryptUpdate(d->ctx, NULL, &outl, rec, (int)HDR_LEN) != 1 ||
        EVP_DecryptUpdate(d->ctx, p, &outl, p, (int)n) != 1 ||
        EVP_DecryptFinal_ex(d->ctx, p + n, &outl) != 1)
        return false;
    d->seq++;
    while (n > 0 && p[n - 1] == 0) /* strip the padding */
        n--;
    if (n == 0) {
        *type = 0; /* no content type: unexpected_message */
        *len = 0;
        return true;
    }
    *type = p[n - 1];
    *len = n - 1;
    return true;
}

struct tls_rec *tls_rec_take(SSL *ssl, const char **why)
{
    const struct rec_suite *suite = NULL;
    struct rec_capture *cap;
    struct rec_algs *algs;
    const SSL_CIPHER *c;
    struct tls_rec *r;
    uint16_t id;

    *why = "";
    if (SSL_version(ssl) != TLS1_3_VERSION) {
        *why = "not TLS 1.3";
        return NULL;
    }
    if (rec_ex_index < 0 ||
        SSL_CTX_get_keylog_callback(SSL_get_SSL_CTX(ssl)) != keylog_cb) {
        *why = "tls_record_layer openssl";
        return NULL;
    }
    if ((cap = SSL_get_ex_data(ssl, rec_ex_index)) == NULL) {
        *why = "secrets not captured";
        return NULL;
    }
    if (!SSL_is_init_finished(ssl) || SSL_has_pending(ssl)) {
        *why = "OpenSSL holds input";
        return NULL;
    }
    algs = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), algs_ex_index);
    c = SSL_get_current_cipher(ssl);
    id = c ? SSL_CIPHER_get_protocol_id(c) : 0;
    for (size_t i = 0; algs != NULL && i < N_SUITES && suite == NULL; i++)
        if (algs->suite[i].id == id && algs->suite[i].cipher != NULL)
            suite = &algs->suite[i];
    if (suite == NULL) {
        *why = "cipher suite not handled here";
        return NULL;
    }
    if (cap->client_len != suite->hash_len ||
        cap->server_len != suite->hash_len) {
        *why = "secrets not captured";
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    atomic_fetch_add(&algs->refs, 1);
    r->algs = algs;
    r->s = suite;
    memcpy(r->rd.secret, cap->client, suite->hash_len);
    memcpy(r->wr.secret, cap->server, suite->hash_len);
    OPENSSL_cleanse(cap->client, sizeof(cap->client));
    OPENSSL_cleanse(cap->server, sizeof(cap->server));
    r->rekey_limit = REKEY_DEFAULT;
    if (!dir_keys(r, &r->rd, 0) || !dir_keys(r, &r->wr, 1)) {
        tls_rec_free(r);
        *why = "key set-up failed";
        return NULL;
    }
    r->rd.seq = cap->rseq;
    r->wr.seq = cap->wseq;
    return r;
}

void tls_rec_free(struct tls_rec *r)
{
    if (r == NULL)
        return;
    EVP_CIPHER_CTX_free(r->rd.ctx);
    EVP_CIPHER_CTX_free(r->wr.ctx);
    algs_unref(r->algs);
    free(r->part);
    free(r->wq);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

static void set_err(struct tls_rec *r, const char *what)
{
    snprintf(r->err, sizeof(r->err), "%s", what);
}

/* Append n sealed bytes to the write queue. */
static void queue(struct tls_rec *r, const uint8_t *p, size_t n)
{
    size_t left = r->wq_len - r->wq_head;
    uint8_t *q = xmalloc(left + n);

    if (left > 0)
        memcpy(q, r->wq + r->wq_head, left);
    memcpy(q + left, p, n);
    free(r->wq);
    r->wq = q;
    r->wq_head = 0;
    r->wq_len = left + n;
}

static void socket_err(struct tls_rec *r, int e)
{
    set_err(r, e == ECONNRESET || e == EPIPE ? "connection reset by peer"
                                             : "socket error");
}

/* Seal a KeyUpdate into out (5 + OVERHEAD bytes), then switch the write
 * key. */
static bool seal_key_update(struct tls_rec *r, bool request, uint8_t *out)
{
    const uint8_t msg[5] = {HS_KEY_UPDATE, 0, 0, 1, request ? 1 : 0};

    if (!seal(&r->wr, CT_HANDSHAKE, msg, sizeof(msg), out) ||
        !dir_update(r, &r->wr, 1))
        return false;
    r->ku_tx++;
    return true;
}

/* Send the queue; then, when a KeyUpdate is owed, seal the answer behind
 * it and send that too. Only an empty queue takes the answer, so a peer
 * that requests updates without reading is owed one answer, not one per
 * request (RFC 8446 4.6.3: a silent side answers many with one). */
enum tls_io tls_rec_flush(struct tls_rec *r, int fd)
{
    for (;;) {
        uint8_t ku[5 + OVERHEAD];

        while (r->wq_head < r->wq_len) {
            ssize_t k = send(fd, r->wq + r->wq_head, r->wq_len - r->wq_head,
                             MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return TLS_IO_WANT_WRITE;
                socket_err(r, errno);
                r->failed = true;
                return TLS_IO_ERROR;
            }
            r->wq_head += (size_t)k;
        }
        free(r->wq);
        r->wq = NULL;
        r->wq_head = r->wq_len = 0;
        if (!r->ku_owed || r->failed)
            return TLS_IO_OK;
        r->ku_owed = false;
        if (!seal_key_update(r, false, ku)) {
            set_err(r, "TLS key update failed");
            r->failed = true;
            return TLS_IO_ERROR;
        }
        queue(r, ku, sizeof(ku));
    }
}

bool tls_rec_write_pending(const struct tls_rec *r)
{
    return r->wq_head < r->wq_len || (r->ku_owed && !r->failed);
}

/* Queue one sealed alert (best effort) and try to send it. */
static void send_alert(struct tls_rec *r, int fd, uint8_t desc)
{
    uint8_t msg[2] = {desc == AL_CLOSE_NOTIFY ? 1 : 2, desc};
    uint8_t out[2 + OVERHEAD];

    r->ku_owed = false; /* nothing follows an alert */
    if (r->wr.ctx == NULL || !seal(&r->wr, CT_ALERT, msg, sizeof(msg), out))
        return;
    queue(r, out, sizeof(out));
    (void)tls_rec_flush(r, fd);
}

/* A fatal protocol error: send the alert, remember why. */
static enum tls_io fail(struct tls_rec *r, int fd, uint8_t alert,
                        const char *why)
{
    set_err(r, why);
    r->failed = true;
    send_alert(r, fd, alert);
    return TLS_IO_ERROR;
}

static const char *alert_name(uint8_t desc)
{
    switch (desc) {
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 22:
        return "record_overflow";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 80:
        return "internal_error";
    default:
        return "other";
    }
}

/* Handshake messages after the handshake: only KeyUpdate (4.6.3), whole
 * and last in its record (5.1). */
static enum tls_io handshake_msgs(struct tls_rec *r, int fd, const uint8_t *p,
                                  size_t len)
{
    if (len < 4 || p[0] != HS_KEY_UPDATE)
        return fail(r, fd, AL_UNEXPECTED_MESSAGE,
                    "unexpected TLS handshake message after the handshake");
    if (len < 5 || p[1] != 0 || p[2] != 0 || p[3] != 1)
        return fail(r, fd, AL_DECODE_ERROR, "malformed TLS KeyUpdate");
    if (len > 5) /* the key changes after it: nothing may follow (5.1) */
        return fail(r, fd, AL_UNEXPECTED_MESSAGE,
                    "TLS KeyUpdate not at the end of its record");
    if (p[4] > 1)
        return fail(r, fd, AL_ILLEGAL_PARAMETER,
                    "malformed TLS KeyUpdate (request_update)");
    if (!dir_update(r, &r->rd, 0))
        return fail(r, fd, AL_DECODE_ERROR, "TLS key update failed");
    r->ku_rx++;
    if (p[4] == 1) { /* update_requested: answered before any more data */
        r->ku_owed = true;
        if (tls_rec_flush(r, fd) == TLS_IO_ERROR)
            return TLS_IO_ERROR;
    }
    return TLS_IO_OK;
}

enum tls_io tls_rec_read(struct tls_rec *r, int fd, uint8_t *buf, size_t cap,
                         size_t *n)
{
    size_t have = r->part_len, off = 0, out = 0;
    enum tls_io res = TLS_IO_OK;
    ssize_t k;

    *n = 0;
    if (r->failed)
        return TLS_IO_ERROR;
    if (r->closed)
        return TLS_IO_CLOSED;
    if (cap < TLS_REC_READ_MIN)
        return fail(r, fd, AL_DECODE_ERROR, "TLS read buffer too small");
    if (have > 0)
        memcpy(buf, r->part, have);
    do
        k = read(fd, buf + have, cap - have);
    while (k < 0 && errno == EINTR);
    if (k < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return TLS_IO_WANT_READ;
        socket_err(r, errno);
        r->failed = true;
        return TLS_IO_ERROR;
    }
    if (k == 0) {
        r->closed = true;
        return TLS_IO_CLOSED;
    }
    have += (size_t)k;
    free(r->part);
    r->part = NULL;
    r->part_len = 0;

    while (have - off >= HDR_LEN) {
        uint8_t *rec = buf + off, type = 0;
        size_t clen = ((size_t)rec[3] << 8) | rec[4], plen = 0;

        if (rec[0] != CT_APPDATA) {
            res = fail(r, fd, AL_UNEXPECTED_MESSAGE,
                       "unencrypted TLS record after the handshake");
            break;
        }
        if (clen > MAX_CIPHER) {
            res = fail(r, fd, AL_RECORD_OVERFLOW, "TLS record too long");
            break;
        }
        if (have - off < HDR_LEN + clen)
            break; /* partial: wait for the rest */
        if (clen < TAG_LEN + 1 ||
            !open_record(&r->rd, rec, clen, &plen, &type)) {
            res = fail(r, fd, AL_BAD_RECORD_MAC,
                       "TLS record authentication failed (bad_record_mac)");
            break;
        }
        off += HDR_LEN + clen;
        if (plen > MAX_PLAIN) {
            res = fail(r, fd, AL_RECORD_OVERFLOW, "TLS record too long");
            break;
        }
        if (type == CT_APPDATA) {
            memmove(buf + out, rec + HDR_LEN, plen);
            out += plen;
        } else if (type == CT_ALERT) {
            const uint8_t *a = rec + HDR_LEN;
            if (plen != 2) {
                res = fail(r, fd, AL_DECODE_ERROR, "malformed TLS alert");
                break;
            }
            if (a[1] == AL_USER_CANCELED)
                continue;
            if (a[1] == AL_CLOSE_NOTIFY) {
                r->closed = true;
                res = TLS_IO_CLOSED;
                break;
            }
            snprintf(r->err, sizeof(r->err), "peer sent TLS alert %u (%s)",
                     (unsigned)a[1], alert_name(a[1]));
            r->failed = true;
            res = TLS_IO_ERROR;
            break;
        } else if (type == CT_HANDSHAKE) {
            res = handshake_msgs(r, fd, rec + HDR_LEN, plen);
            if (res != TLS_IO_OK)
                break;
        } else {
            res = fail(r, fd, AL_UNEXPECTED_MESSAGE,
                       "unexpected TLS record content type");
            break;
        }
    }
    if (res == TLS_IO_OK && off < have) {
        r->part_len = have - off;
        r->part = xmalloc(r->part_len);
        memcpy(r->part, buf + off, r->part_len);
    }
    *n = out;
    if (res == TLS_IO_OK && out == 0)
        return TLS_IO_WANT_READ;
    return res;
}

enum tls_io tls_rec_write(struct tls_rec *r, int fd, const uint8_t *buf,
                          size_t len, uint8_t *scratch, size_t scratch_cap,
                          size_t *n)
{
    size_t o = 0, taken = 0, w = 0;
    enum tls_io res;

    *n = 0;
    if (r->failed)
        return TLS_IO_ERROR;
    if (tls_rec_write_pending(r) && (res = tls_rec_flush(r, fd)) != TLS_IO_OK)
        return res;
    while (taken < len) {
        size_t chunk = len - taken, room = scratch_cap - o;
        if (r->wr.seq >= r->rekey_limit) {
            if (room < 5 + OVERHEAD + OVERHEAD + 1)
                break;
            if (!seal_key_update(r, false, scratch + o)) {
                set_err(r, "TLS key update failed");
                r->failed = true;
                return TLS_IO_ERROR;
            }
            o += 5 + OVERHEAD;
            room = scratch_cap - o;
        }
        if (room < OVERHEAD + 1)
            break;
        if (chunk > MAX_PLAIN)
            chunk = MAX_PLAIN;
        if (chunk > room - OVERHEAD)
            chunk = room - OVERHEAD;
        if (!seal(&r->wr, CT_APPDATA, buf + taken, chunk, scratch + o)) {
            set_err(r, "TLS record encryption failed");
            r->failed = true;
            return TLS_IO_ERROR;
        }
        o += chunk + OVERHEAD;
        taken += chunk;
    }
    while (w < o) {
        ssize_t k = send(fd, scratch + w, o - w, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            socket_err(r, errno);
            r->failed = true;
            return TLS_IO_ERROR;
        }
        w += (size_t)k;
    }
    if (w < o)
        queue(r, scratch + w, o - w);
    *n = taken;
    return TLS_IO_OK;
}

void tls_rec_close_notify(struct tls_rec *r, int fd)
{
    if (!r->failed)
        send_alert(r, fd, AL_CLOSE_NOTIFY);
}

const char *tls_rec_error(const struct tls_rec *r)
{
    return r->err;
}

void tls_rec_set_rekey_limit(struct tls_rec *r, uint64_t records)
{
    r->rekey_limit = records > 0 ? records : 1;
}

void tls_rec_key_updates(const struct tls_rec *r, uint64_t *received,
                         uint64_t *sent)
{
    *received = r->ku_rx;
    *sent = r->ku_tx;
}
