/*
 * tls_ticket.c - session ticket keys and the checks on every resumption
 * (see tls_ticket.h).
 *
 * A ticket is the server's own encrypted copy of a session: it carries the
 * client certificate that was verified in the full handshake. OpenSSL
 * resumes a session from it without verifying that certificate again, so
 * before a ticket is used the decrypt callback (SSL_CTX_set_session_ticket_cb)
 * checks the certificate against what a full handshake would check now:
 *
 *   ClientHello + ticket
 *     -> key_cb: find the key by name (unknown name: full handshake)
 *     -> OpenSSL: HMAC, decrypt, decode the session
 *     -> decrypt_cb: peer certificate valid now? issuer still trusted?
 *                    not revoked by the context's current CRL? CRL not
 *                    expired? certificate present when one is required?
 *          no  -> SSL_TICKET_RETURN_IGNORE: full handshake, whose
 *                 verification then fails with its usual reason
 *          yes -> resumed (TLS 1.3 PSK / TLS 1.2 ticket)
 *
 * Key rotation without a key file: the key of period p = floor(now /
 * lifetime) is HKDF-SHA256(process secret, "mqttd ticket key" || p). The
 * secret is drawn once per process and never changes afterwards (like an
 * ex_data index, a registration, not mutable state); each tls_tickets
 * caches the keys of the current and previous period under its mutex.
 * Tickets of period p decrypt during p and p + 1, and are renewed in p + 1.
 */
#include "tls_ticket.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "log.h"
#include "tls.h"
#include "tls_ssl.h"
#include "util.h"

#define NAME_LEN 16
#define HMAC_LEN 32
#define AES_LEN 32
#define SECRET_LEN 32

struct ticket_key {
    unsigned char name[NAME_LEN];
    unsigned char hmac[HMAC_LEN];
    unsigned char aes[AES_LEN];
};

struct tls_tickets {
    unsigned refs;
    uint32_t lifetime;
    struct log *lg;
    bool from_file;
    size_t nkeys;                                /* from_file */
    struct ticket_key keys[TLS_TICKET_MAX_KEYS]; /* [0] encrypts */
    /* random mode: keys of period 'period' and period - 1 */
    pthread_mutex_t mu;
    bool have; /* cur and prev derived */
    uint64_t period;
    struct ticket_key cur, prev;
};

/* Process-wide registrations, set exactly once (CRYPTO_THREAD_run_once). */
static CRYPTO_ONCE tk_once = CRYPTO_ONCE_STATIC_INIT;
static int tk_ctx_index = -1;
static unsigned char tk_secret[SECRET_LEN];
static bool tk_secret_ok;

static void tk_ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                        long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    tls_tickets_unref(ptr);
}

static void tk_once_init(void)
{
    tk_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tk_ctx_free);
    tk_secret_ok = RAND_priv_bytes(tk_secret, sizeof(tk_secret)) == 1;
}

static bool tk_init(void)
{
    return CRYPTO_THREAD_run_once(&tk_once, tk_once_init) == 1 &&
           tk_ctx_index >= 0 && tk_secret_ok;
}

/* ---- keys ---------------------------------------------------------------- */

/* key_split: one 80-byte record in nginx's order: name, HMAC key, AES key. */
static void key_split(struct ticket_key *k, const unsigned char *rec)
{
    memcpy(k->name, rec, NAME_LEN);
    memcpy(k->hmac, rec + NAME_LEN, HMAC_LEN);
    memcpy(k->aes, rec + NAME_LEN + HMAC_LEN, AES_LEN);
}

/* derive: the key of period p from the process secret. 0 or -1. */
static int derive(uint64_t p, struct ticket_key *k)
{
    static const unsigned char label[16] = {'m', 'q', 't', 't', 'd', ' ',
                                            't', 'i', 'c', 'k', 'e', 't',
                                            ' ', 'k', 'e', 'y'};
    unsigned char info[sizeof(label) + 8], out[TLS_TICKET_KEY_LEN];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];
    int rc = -1;

    memcpy(info, label, sizeof(label)); /* "mqttd ticket key", no NUL */
    for (int i = 0; i < 8; i++)
        info[sizeof(label) + i] = (unsigned char)(p >> (56 - 8 * i));
    if (kc == NULL)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, tk_secret,
                                                  SECRET_LEN);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
                                                  sizeof(info));
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kc, out, sizeof(out), params) != 1)
        goto out;
    key_split(k, out);
    rc = 0;
out:
    OPENSSL_cleanse(out, sizeof(out));
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    ERR_clear_error();
    return rc;
}

/* refresh: bring the cached period keys up to date (caller holds mu). */
static int refresh(struct tls_tickets *tk)
{
    uint64_t p = (uint64_t)time(NULL) / tk->lifetime;

    if (tk->have && p == tk->period)
        return 0;
    if (tk->have && p == tk->period + 1) {
        tk->prev = tk->cur;
    } else if (derive(p - 1, &tk->prev) != 0) {
        return -1;
    }
    if (derive(p, &tk->cur) != 0) {
        tk->have = false;
        return -1;
    }
    tk->period = p;
    tk->have = true;
    return 0;
}

/* read_key_file: fill tk->keys from path. 0 or -1 with err filled. */
static int read_key_file(struct tls_tickets *tk, const char *path, char *err,
                         size_t errlen)
{
    unsigned char buf[TLS_TICKET_KEY_LEN * TLS_TICKET_MAX_KEYS + 1];
    struct stat st;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "tls_session_ticket_key_file '%s': %s", path,
                 strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "tls_session_ticket_key_file '%s': %s", path,
                 strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen,
                 "tls_session_ticket_key_file '%s': not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(err, errlen,
                 "tls_session_ticket_key_file '%s': mode %04o gives group or "
                 "others access to the ticket keys; chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(err, errlen,
                 "tls_session_ticket_key_file '%s': owned by uid %u, neither "
                 "the service user (uid %u) nor root",
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    while (got < sizeof(buf)) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "tls_session_ticket_key_file '%s': %s", path,
                     strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got == 0 || got % TLS_TICKET_KEY_LEN != 0 ||
        got > TLS_TICKET_KEY_LEN * TLS_TICKET_MAX_KEYS) {
        snprintf(err, errlen,
                 "tls_session_ticket_key_file '%s': %zu%s bytes; it must hold "
                 "1 to %d keys of %d bytes each (e.g. openssl rand %d)",
                 path, got, got >= sizeof(buf) ? " or more" : "",
                 TLS_TICKET_MAX_KEYS, TLS_TICKET_KEY_LEN, TLS_TICKET_KEY_LEN);
        goto out;
    }
    tk->nkeys = got / TLS_TICKET_KEY_LEN;
    for (size_t i = 0; i < tk->nkeys; i++)
        key_split(&tk->keys[i], buf + i * TLS_TICKET_KEY_LEN);
    for (size_t i = 0; i < tk->nkeys; i++)
        for (size_t j = 0; j < i; j++)
            if (memcmp(tk->keys[i].name, tk->keys[j].name, NAME_LEN) == 0) {
                snprintf(err, errlen,
                         "tls_session_ticket_key_file '%s': keys %zu and %zu "
                         "have the same name (first 16 bytes)",
                         path, j + 1, i + 1);
                goto out;
            }
    rc = 0;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

struct tls_tickets *tls_tickets_new(const char *key_file, uint32_t lifetime,
                                    struct log *lg, char *err, size_t errlen)
{
    struct tls_tickets *tk;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!tk_init()) {
        snprintf(err, errlen, "TLS session tickets: no random secret");
        ERR_clear_error();
        return NULL;
    }
    tk = xcalloc(1, sizeof(*tk));
    tk->refs = 1;
    tk->lifetime = lifetime ? lifetime : 1;
    tk->lg = lg;
    pthread_mutex_init(&tk->mu, NULL);
    if (key_file != NULL) {
        tk->from_file = true;
        if (read_key_file(tk, key_file, err, errlen) != 0)
            goto fail;
    } else if (refresh(tk) != 0) {
        snprintf(err, errlen, "TLS session tickets: key derivation failed");
        goto fail;
    }
    return tk;
fail:
    tls_tickets_unref(tk);
    return NULL;
}

void tls_tickets_unref(struct tls_tickets *tk)
{
    if (tk == NULL || __atomic_sub_fetch(&tk->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    pthread_mutex_destroy(&tk->mu);
    OPENSSL_cleanse(tk, sizeof(*tk));
    free(tk);
}

/* ---- callbacks ------------------------------------------------------------
 */

/* find_key: the key to encrypt with (name == NULL) or the one named 'name';
 * copied to *out under the lock. Returns 0 for the first/current key, 1
 * for an older one (renew the ticket), -1 when none. */
static int find_key(struct tls_tickets *tk, const unsigned char *name,
                    struct ticket_key *out)
{
    int rc = -1;

    if (tk->from_file) {
        for (size_t i = 0; i < tk->nkeys; i++)
            if (name == NULL || memcmp(name, tk->keys[i].name, NAME_LEN) == 0) {
                *out = tk->keys[i];
                return i == 0 ? 0 : 1;
            }
        return -1;
    }
    pthread_mutex_lock(&tk->mu);
    if (refresh(tk) != 0) {
        rc = -1;
    } else if (name == NULL || memcmp(name, tk->cur.name, NAME_LEN) == 0) {
        *out = tk->cur;
        rc = 0;
    } else if (memcmp(name, tk->prev.name, NAME_LEN) == 0) {
        *out = tk->prev;
        rc = 1;
    }
    pthread_mutex_unlock(&tk->mu);
    return rc;
}

/* mac_init: HMAC-SHA256 keyed with k on hctx. 1 or 0. */
static int mac_init(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_octet_string(
        OSSL_MAC_PARAM_KEY, (void *)(uintptr_t)k->hmac, HMAC_LEN);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params);
}

/*
 * OpenSSL's ticket key callback: enc = 1: fill key_name and iv, set up
 * the cipher and MAC with the encrypting key (1 = ok, -1 = error); enc = 0:
 * set up the key named key_name (1 = ok, 2 = ok and issue a fresh ticket,
 * 0 = unknown key: full handshake, -1 = error).
 */
static int key_cb(SSL *s, unsigned char key_name[16],
                  unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *ctx,
                  EVP_MAC_CTX *hctx, int enc)
{
    struct tls_tickets *tk =
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), tk_ctx_index);
    struct ticket_key k;
    int which, rc = -1;

    if (tk == NULL)
        return enc ? -1 : 0;
    which = find_key(tk, enc ? NULL : key_name, &k);
    if (which < 0) {
        rc = enc ? -1 : 0;
        goto out;
    }
    if (enc) {
        memcpy(key_name, k.name, NAME_LEN);
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
            EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
            mac_init(hctx, &k) != 1)
            goto out;
        rc = 1;
    } else {
        if (mac_init(hctx, &k) != 1 ||
            EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            goto out;
        rc = which == 0 ? 1 : 2;
    }
out:
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* refuse_why: why a ticket with 'peer' must not be used on ctx now, or
 * NULL when it may. The same checks as the full handshake's verification,
 * minus the signatures, which were checked when the ticket was issued. */
static const char *refuse_why(SSL_CTX *ctx, X509 *peer)
{
    int mode = SSL_CTX_get_verify_mode(ctx);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_STORE_CTX *xs = NULL;
    X509_OBJECT *obj = NULL;
    const char *why = NULL;

    if (peer == NULL)
        return (mode & SSL_VERIFY_FAIL_IF_NO_PEER_CERT)
                   ? "no client certificate in the session"
                   : NULL;
    if (!(mode & SSL_VERIFY_PEER))
        return "client certificate in a session of a listener that "
               "asks for none";
    if (X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0)
        return "client certificate expired";
    if (X509_cmp_current_time(X509_get0_notBefore(peer)) >= 0)
        return "client certificate not yet valid";
    xs = X509_STORE_CTX_new();
    if (xs == NULL || X509_STORE_CTX_init(xs, store, peer, NULL) != 1) {
        why = "out of memory";
        goto out;
    }
    obj = X509_STORE_CTX_get_obj_by_subject(xs, X509_LU_X509,
                                            X509_get_issuer_name(peer));
    if (obj == NULL) {
        why = "issuer of the client certificate no longer trusted";
        goto out;
    }
    X509_OBJECT_free(obj);
    obj = NULL;
    if (!(X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store)) &
          X509_V_FLAG_CRL_CHECK))
        goto out;
    obj = X509_STORE_CTX_get_obj_by_subject(xs, X509_LU_CRL,
                                            X509_get_issuer_name(peer));
    if (obj == NULL) {
        why = "no CRL for the client certificate's CA";
    } else {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(obj);
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
        X509_REVOKED *rev = NULL;

        if (next != NULL && X509_cmp_current_time(next) <= 0)
            why = "CRL expired";
        else if (X509_CRL_get0_by_cert(crl, &rev, peer) == 1)
            why = "client certificate revoked";
    }
out:
    X509_OBJECT_free(obj);
    X509_STORE_CTX_free(xs);
    ERR_clear_error();
    return why;
}

/* OpenSSL's decrypted-ticket callback: decide whether the session in the
 * ticket may be resumed (see the file comment). */
static SSL_TICKET_RETURN decrypt_cb(SSL *s, SSL_SESSION *ss,
                                    const unsigned char *keyname,
                                    size_t keyname_len,
                                    SSL_TICKET_STATUS status, void *arg)
{
    struct tls_tickets *tk = arg;
    const char *why;
    X509 *peer;
    char subj[256];

    (void)keyname;
    (void)keyname_len;
    switch (status) {
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
        return SSL_TICKET_RETURN_ABORT;
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        break;
    case SSL_TICKET_NO_DECRYPT:
    case SSL_TICKET_EMPTY:
    default:
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    peer = SSL_SESSION_get0_peer(ss);
    why = refuse_why(SSL_get_SSL_CTX(s), peer);
    if (why != NULL) {
        if (tk != NULL && tk->lg != NULL && log_enabled(tk->lg, LOG_DEBUG)) {
            subj[0] = '\0';
            if (peer != NULL)
                X509_NAME_oneline(X509_get_subject_name(peer), subj,
                                  sizeof(subj));
            LOG_D(tk->lg,
                  "TLS: session ticket not used (%s, subject=\"%s\"): full "
                  "handshake",
                  why, subj);
        }
        return SSL_TICKET_RETURN_IGNORE;
    }
    return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
                                        : SSL_TICKET_RETURN_USE_RENEW;
}

int tls_tickets_attach(struct tls_tickets *tk, struct tls_ctx *c, char *err,
                       size_t errlen)
{
    SSL_CTX *ctx;

    if (tk == NULL || c == NULL)
        return 0;
    ctx = tls_ctx_ssl(c);
    if (!tk_init() || SSL_CTX_set_ex_data(ctx, tk_ctx_index, tk) != 1) {
        snprintf(err, errlen, "TLS session tickets: cannot attach the keys");
        ERR_clear_error();
        return -1;
    }
    __atomic_fetch_add(&tk->refs, 1, __ATOMIC_RELAXED);
    /* stateless tickets only: a session-ID cache hit would resume without
     * passing decrypt_cb */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_timeout(ctx, (long)tk->lifetime);
    /* no 0-RTT: early data (a CONNECT, a PUBLISH) could be replayed */
    if (SSL_CTX_set_max_early_data(ctx, 0) != 1 ||
        SSL_CTX_set_recv_max_early_data(ctx, 0) != 1 ||
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, key_cb) != 1 ||
        SSL_CTX_set_session_ticket_cb(ctx, NULL, decrypt_cb, tk) != 1) {
        snprintf(err, errlen, "TLS session tickets: cannot set callbacks");
        ERR_clear_error();
        return -1;
    }
    return 0;
}
