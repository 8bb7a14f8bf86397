/*
 * fuzz_tls_rec.c - libFuzzer harness for the TLS 1.3 record layer
 * (tls_rec.c) behind the AEAD: what a peer holding the keys can send.
 *
 * A client that completed the handshake can put anything inside a record
 * that authenticates: any inner content type, any padding, handshake
 * messages of any shape, alerts, KeyUpdates in any number. Random bytes
 * would never get past the tag, so the harness is the client: per input it
 * runs a real handshake (OpenSSL on both ends of a socketpair), lets
 * tls_rec take the server side over, derives the client's record keys
 * itself from the client's traffic secret (EVP_KDF "TLS13-KDF", so not
 * tls_rec's own derivation) and seals what the input describes. A sealed
 * "ok" record read back first proves per input that the two derivations
 * agree; when they do not, the harness aborts rather than fuzz the tag
 * check alone.
 *
 * Input: byte 0 picks the suite (and a small rekey limit for the server's
 * writes); then operations until the input ends:
 *   0 sealed record: type, padding length, 2-byte length, content
 *   1 sealed record of one repeated byte: type, byte, 2-byte length
 *     (reaches the 16 KiB limits with short inputs)
 *   2 raw bytes: 1-byte length, bytes (plaintext records, cut headers)
 *   3 sealed record with one bit flipped: 2-byte position, then as 0
 *   4 deliver all but the last k bytes (k from the next byte), read
 *   5 server writes n bytes of application data (2-byte n)
 * A sealed KeyUpdate switches the harness's own key after it, as the
 * server will. Checked: no crash or leak (ASan, UBSan), reads never claim
 * more than the buffer, an error always has a reason and sticks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"
#include "tls_rec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIRE_MAX (1u << 20) /* ciphertext the harness holds before sending */
#define MAX_OPS 64

/* The contexts, made once: a P-256 server certificate in memory. */
struct world {
    SSL_CTX *sctx, *cctx;
};

static struct world world;

/* The harness's client: its write secret, key and sequence number. */
struct client {
    const char *digest, *cipher;
    size_t hash_len, key_len;
    unsigned char secret[48], key[32], iv[12];
    size_t secret_len;
    uint64_t seq;
};

/* One input's connection. */
struct run {
    int cfd, sfd;
    struct tls_rec *r;
    struct client cl;
    uint8_t *rbuf, *scratch, *wire;
    size_t wire_len, wire_sent;
    bool dead; /* tls_rec returned CLOSED or ERROR */
};

static void client_keylog(const SSL *ssl, const char *line);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_tls_rec: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_NAME *name;

    (void)argc;
    (void)argv;
    if (key == NULL || cert == NULL || X509_set_version(cert, 2) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -60) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), 86400) == NULL ||
        X509_set_pubkey(cert, key) != 1)
        die("certificate");
    name = X509_get_subject_name(cert);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"fuzz", -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(cert, name) != 1 ||
        X509_sign(cert, key, EVP_sha256()) <= 0)
        die("certificate");
    world.sctx = SSL_CTX_new(TLS_server_method());
    world.cctx = SSL_CTX_new(TLS_client_method());
    if (world.sctx == NULL || world.cctx == NULL ||
        SSL_CTX_use_certificate(world.sctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(world.sctx, key) != 1 ||
        !tls_rec_ctx_setup(world.sctx) ||
        SSL_CTX_set_min_proto_version(world.cctx, TLS1_3_VERSION) != 1)
        die("contexts");
    SSL_CTX_set_verify(world.cctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_keylog_callback(world.cctx, client_keylog);
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}

/* Client keylog: keep CLIENT_TRAFFIC_SECRET_0 in the run's client. */
static void client_keylog(const SSL *ssl, const char *line)
{
    static const char label[] = "CLIENT_TRAFFIC_SECRET_0 ";
    struct client *cl = SSL_get_app_data(ssl);
    const char *p;
    size_t n = 0;

    if (strncmp(line, label, sizeof(label) - 1) != 0)
        return;
    p = strchr(line + sizeof(label) - 1, ' ');
    if (p == NULL)
        return;
    for (p++; p[0] && p[1] && n < sizeof(cl->secret); p += 2) {
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1)
            return;
        cl->secret[n++] = (unsigned char)v;
    }
    cl->secret_len = n;
}

/* HKDF-Expand-Label(secret, label, "", len) through OpenSSL's TLS13-KDF. */
static void expand(const struct client *cl, const char *label,
                   unsigned char *out, size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         (char *)cl->digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                          (void *)cl->secret, cl->hash_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX,
                                          (void *)"tls13 ", 6),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label,
                                          strlen(label)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
        OSSL_PARAM_construct_end(),
    };

    if (kctx == NULL || EVP_KDF_derive(kctx, out, len, params) != 1)
        die("TLS13-KDF");
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
}

static void client_keys(struct client *cl)
{
    expand(cl, "key", cl->key, cl->key_len);
    expand(cl, "iv", cl->iv, sizeof(cl->iv));
    cl->seq = 0;
}

/* Append one record sealed with the client's key: content, inner type,
 * pad zero bytes. */
static void seal(struct run *rn, uint8_t type, const uint8_t *content,
                 size_t len, size_t pad)
{
    struct client *cl = &rn->cl;
    size_t inner = len + 1 + pad, clen = inner + 16;
    uint8_t *rec = rn->wire + rn->wire_len;
    unsigned char nonce[12];
    EVP_CIPHER *ciph;
    EVP_CIPHER_CTX *ctx;
    int outl = 0;

    if (clen > 0xffff || rn->wire_len + 5 + clen > WIRE_MAX)
        return;
    rec[0] = 23;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (uint8_t)(clen >> 8);
    rec[4] = (uint8_t)clen;
    if (len > 0)
        memcpy(rec + 5, content, len);
    rec[5 + len] = type;
    memset(rec + 6 + len, 0, pad);
    memcpy(nonce, cl->iv, sizeof(nonce));
    for (unsigned i = 0; i < 8; i++)
        nonce[11 - i] ^= (unsigned char)(cl->seq >> (8 * i));
    ciph = EVP_CIPHER_fetch(NULL, cl->cipher, NULL);
    ctx = EVP_CIPHER_CTX_new();
    if (ciph == NULL || ctx == NULL ||
        EVP_EncryptInit_ex2(ctx, ciph, cl->key, nonce, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &outl, rec, 5) != 1 ||
        EVP_EncryptUpdate(ctx, rec + 5, &outl, rec + 5, (int)inner) != 1 ||
        EVP_EncryptFinal_ex(ctx, rec + 5 + inner, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, rec + 5 + inner) !=
            1)
        die("seal");
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(ciph);
    cl->seq++;
    rn->wire_len += 5 + clen;
    /* a well-formed KeyUpdate switches the sender's key after it */
    if (type == 22 && len == 5 && content[0] == 24 && content[1] == 0 &&
        content[2] == 0 && content[3] == 1 && content[4] <= 1) {
        unsigned char next[48];
        expand(cl, "traffic upd", next, cl->hash_len);
        memcpy(cl->secret, next, cl->hash_len);
        client_keys(cl);
    }
}

/* Read what the client end received (the server's records) and drop it. */
static void drain_client(struct run *rn)
{
    uint8_t sink[65536];

    while (read(rn->cfd, sink, sizeof(sink)) > 0)
        ;
}

/* tls_rec_read until it wants more input; check what it says. */
static void server_read(struct run *rn)
{
    for (int i = 0; i < 1000 && !rn->dead; i++) {
        size_t n = SIZE_MAX;
        enum tls_io res =
            tls_rec_read(rn->r, rn->sfd, rn->rbuf, TLS_REC_READ_MIN, &n);

        if (n > TLS_REC_READ_MIN)
            die("read claims more than the buffer");
        if (tls_rec_write_pending(rn->r))
            (void)tls_rec_flush(rn->r, rn->sfd);
        drain_client(rn);
        if (res == TLS_IO_WANT_READ)
            return;
        if (res == TLS_IO_CLOSED || res == TLS_IO_ERROR) {
            if (res == TLS_IO_ERROR && tls_rec_error(rn->r)[0] == '\0')
                die("error without a reason");
            if (tls_rec_read(rn->r, rn->sfd, rn->rbuf, TLS_REC_READ_MIN, &n) !=
                    res ||
                n != 0)
                die("a final result did not stick");
            rn->dead = true;
            if (getenv("FUZZ_TLS_REC_VERBOSE"))
                fprintf(stderr, "fuzz_tls_rec: %s: %s\n",
                        res == TLS_IO_CLOSED ? "closed" : "error",
                        tls_rec_error(rn->r));
        }
    }
}

/* Send the wire up to 'upto' bytes, reading on the server as it goes. */
static void deliver(struct run *rn, size_t upto)
{
    for (int i = 0; i < 100000 && rn->wire_sent < upto && !rn->dead; i++) {
        ssize_t k =
            write(rn->cfd, rn->wire + rn->wire_sent, upto - rn->wire_sent);
        if (k > 0)
            rn->wire_sent += (size_t)k;
        else if (k < 0 && errno != EAGAIN && errno != EINTR)
            die("socketpair write");
        server_read(rn);
    }
    server_read(rn);
}

/* Handshake with the suite picked; tls_rec takes the server over. */
static bool open_run(struct run *rn, unsigned suite)
{
    static const struct {
        const char *name, *digest, *cipher;
        size_t hash_len, key_len;
    } suites[3] = {
        {"TLS_AES_128_GCM_SHA256", "SHA256", "AES-128-GCM", 32, 16},
        {"TLS_AES_256_GCM_SHA384", "SHA384", "AES-256-GCM", 48, 32},
        {"TLS_CHACHA20_POLY1305_SHA256", "SHA256", "ChaCha20-Poly1305", 32, 32},
    };
    int sv[2];
    SSL *srv, *cli;
    bool cdone = false, sdone = false;
    const char *why = "";

    memset(rn, 0, sizeof(*rn));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        die("socketpair");
    rn->cfd = sv[0];
    rn->sfd = sv[1];
    rn->cl.digest = suites[suite].digest;
    rn->cl.cipher = suites[suite].cipher;
    rn->cl.hash_len = suites[suite].hash_len;
    rn->cl.key_len = suites[suite].key_len;
    srv = SSL_new(world.sctx);
    cli = SSL_new(world.cctx);
    if (srv == NULL || cli == NULL || SSL_set_fd(srv, rn->sfd) != 1 ||
        SSL_set_fd(cli, rn->cfd) != 1 ||
        SSL_set_ciphersuites(cli, suites[suite].name) != 1)
        die("SSL_new");
    SSL_set_app_data(cli, &rn->cl);
    for (int i = 0; i < 100 && !(cdone && sdone); i++) {
        if (!cdone)
            cdone = SSL_connect(cli) == 1;
        if (!sdone)
            sdone = SSL_accept(srv) == 1;
    }
    if (!cdone || !sdone || rn->cl.secret_len != rn->cl.hash_len)
        die("handshake");
    rn->r = tls_rec_take(srv, &why);
    SSL_free(srv);
    SSL_free(cli);
    if (rn->r == NULL) {
        fprintf(stderr, "tls_rec_take: %s\n", why);
        die("take");
    }
    client_keys(&rn->cl);
    rn->rbuf = malloc(TLS_REC_READ_MIN);
    rn->scratch = malloc(TLS_REC_WRITE_MIN);
    rn->wire = malloc(WIRE_MAX);
    if (rn->rbuf == NULL || rn->scratch == NULL || rn->wire == NULL)
        die("malloc");
    drain_client(rn);
    ERR_clear_error();
    return true;
}

static void close_run(struct run *rn)
{
    if (!rn->dead)
        tls_rec_close_notify(rn->r, rn->sfd);
    tls_rec_free(rn->r);
    close(rn->cfd);
    close(rn->sfd);
    free(rn->rbuf);
    free(rn->scratch);
    free(rn->wire);
    ERR_clear_error();
}

/* The first record of every run: proves both sides derived the same key. */
static void check_keys(struct run *rn)
{
    size_t n = 0;
    enum tls_io res;

    seal(rn, 23, (const uint8_t *)"ok", 2, 0);
    while (write(rn->cfd, rn->wire, rn->wire_len) < 0 && errno == EINTR)
        ;
    res = tls_rec_read(rn->r, rn->sfd, rn->rbuf, TLS_REC_READ_MIN, &n);
    if (res != TLS_IO_OK || n != 2 || memcmp(rn->rbuf, "ok", 2) != 0) {
        fprintf(stderr, "result %d, %zu bytes, '%s'\n", (int)res, n,
                tls_rec_error(rn->r));
        die("the harness and tls_rec disagree on the client's key");
    }
    rn->wire_len = rn->wire_sent = 0;
}

/* Input cursor. */
struct in {
    const uint8_t *p;
    size_t left;
};

static unsigned take8(struct in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static size_t take16(struct in *in)
{
    size_t hi = take8(in);
    return (hi << 8) | take8(in);
}

static uint8_t content_type(unsigned b)
{
    static const uint8_t common[4] = {23, 22, 21, 23};
    return b & 0x80 ? (uint8_t)(b & 0x7f) : common[b & 3];
}

static void server_write(struct run *rn, size_t len)
{
    static const uint8_t zeros[4096];
    size_t n = 0;

    if (len > sizeof(zeros))
        len = sizeof(zeros);
    if (tls_rec_write(rn->r, rn->sfd, zeros, len, rn->scratch,
                      TLS_REC_WRITE_MIN, &n) == TLS_IO_ERROR &&
        tls_rec_error(rn->r)[0] == '\0')
        die("write error without a reason");
    if (n > len)
        die("write took more than it was given");
    drain_client(rn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    struct run rn;
    unsigned first = take8(&in);

    open_run(&rn, first % 3);
    if (first >> 2)
        tls_rec_set_rekey_limit(rn.r, first >> 2);
    check_keys(&rn);
    for (int op = 0; op < MAX_OPS && in.left > 0 && !rn.dead; op++) {
        unsigned kind = take8(&in) % 6;
        uint8_t type, fill[16640];
        size_t len, pad, pos = 0, before;

        switch (kind) {
        case 0:
        case 3:
            if (kind == 3)
                pos = take16(&in);
            type = content_type(take8(&in));
            pad = take8(&in);
            len = take16(&in) % 2048;
            if (len > in.left)
                len = in.left;
            before = rn.wire_len;
            seal(&rn, type, in.p, len, pad);
            in.p += len;
            in.left -= len;
            if (kind == 3 && rn.wire_len > before)
                rn.wire[before + pos % (rn.wire_len - before)] ^= 0x10;
            break;
        case 1:
            type = content_type(take8(&in));
            memset(fill, (int)take8(&in), sizeof(fill));
            len = take16(&in) % (sizeof(fill) + 1);
            seal(&rn, type, fill, len, 0);
            break;
        case 2:
            len = take8(&in);
            if (len > in.left)
                len = in.left;
            if (rn.wire_len + len <= WIRE_MAX) {
                memcpy(rn.wire + rn.wire_len, in.p, len);
                rn.wire_len += len;
            }
            in.p += len;
            in.left -= len;
            break;
        case 4:
            len = take8(&in);
            deliver(&rn, rn.wire_len > len ? rn.wire_len - len : 0);
            break;
        default:
            server_write(&rn, take16(&in));
            break;
        }
    }
    deliver(&rn, rn.wire_len);
    close_run(&rn);
    return 0;
}
