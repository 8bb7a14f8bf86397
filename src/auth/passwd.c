/*
 * passwd.c - Mosquitto-compatible password files (see passwd.h): loader
 * that skips unusable lines with a FILE:LINE warning, username index,
 * PBKDF2-HMAC-SHA512 ($7$) and salted SHA-512 ($6$) verification in constant
 * time, hash generation and serialisation for mqttd-passwd.
 *
 * Hash text grammar (as mosquitto_passwd 2.0 writes it):
 *
 *   $7$ ITER $ B64(salt) $ B64(PBKDF2-HMAC-SHA512(pw, salt, ITER, 64))
 *   $6$ B64(salt) $ B64(SHA512(pw || salt))
 *
 * ITER is decimal, 1..10,000,000; salt is 12 or 64 bytes; base64 is the
 * standard alphabet, padded with '='.
 */
#include "passwd.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util.h"

struct pw_hash {
    enum passwd_type type;
    unsigned long iterations; /* $7$ only */
    size_t salt_len;
    uint8_t salt[PASSWD_SALT_LEN_LONG];
    uint8_t hash[PASSWD_HASH_LEN];
};

/* One line of the file: an entry (user != NULL) or a comment/blank line
 * kept verbatim for serialisation. */
struct pw_line {
    char *user;
    char *text; /* hash text of an entry, or the whole comment line */
    struct pw_hash h;
    bool denied; /* a later line repeats the user: never authenticates */
    bool shadow; /* that later line: kept for serialisation, not indexed */
};

struct passwd {
    struct pw_line *lines;
    size_t nlines, cap;
    size_t nusers;
    /* Open addressing, linear probing: slot holds line index + 1, 0 is
     * empty. Size is a power of two at least twice nusers. */
    size_t *slots;
    size_t nslots;
    uint64_t seed;
};

/* ---- base64 (standard alphabet, '=' padding) ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* b64_encode: encode n bytes into out (4*ceil(n/3)+1 bytes needed). */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
        out[o++] = b64chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

/*
 * b64_decode: decode s[0..len) into out[0..outmax). The length must be a
 * multiple of 4 with at most two '=' at the end. Returns the number of
 * bytes, or -1 when malformed or longer than outmax.
 */
static long b64_decode(const char *s, size_t len, uint8_t *out, size_t outmax)
{
    size_t pad = 0, n, o = 0;

    if (len == 0 || len % 4 != 0)
        return -1;
    if (s[len - 1] == '=')
        pad++;
    if (s[len - 2] == '=')
        pad++;
    n = len / 4 * 3 - pad;
    if (n > outmax)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + (size_t)k];
            if (c == '=' && i + 4 == len && (size_t)k >= 4 - pad)
                v[k] = 0;
            else if ((v[k] = b64_value(c)) < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (o < n)
            out[o++] = (uint8_t)(w >> 16);
        if (o < n)
            out[o++] = (uint8_t)(w >> 8);
        if (o < n)
            out[o++] = (uint8_t)w;
    }
    return (long)n;
}

/* ---- hash text ---- */

/*
 * parse_hash: parse a hash text of length len into *h. Returns 0, or -1
 * with *why set (static string).
 */
static int parse_hash(const char *s, size_t len, struct pw_hash *h,
                      const char **why)
{
    const char *p = s, *end = s + len, *d1, *d2;
    long n;

    memset(h, 0, sizeof(*h));
    if (len >= 3 && memcmp(s, "$7$", 3) == 0) {
        char num[16];
        size_t nl;
        long long it;
        const char *e;

        h->type = PASSWD_SHA512_PBKDF2;
        p += 3;
        d1 = memchr(p, '$', (size_t)(end - p));
        if (d1 == NULL) {
            *why = "malformed $7$ hash (no iteration count)";
            return -1;
        }
        nl = (size_t)(d1 - p);
        if (nl == 0 || nl >= sizeof(num)) {
            *why = "iteration count out of range 1..10000000";
            return -1;
        }
        for (size_t i = 0; i < nl; i++) {
            if (p[i] < '0' || p[i] > '9') {
                *why = "iteration count is not a number";
                return -1;
            }
        }
        memcpy(num, p, nl);
        num[nl] = '\0';
        if (util_strtonum(num, PASSWD_ITER_MIN, PASSWD_ITER_MAX, &it, &e) ==
            -1) {
            *why = "iteration count out of range 1..10000000";
            return -1;
        }
        h->iterations = (unsigned long)it;
        p = d1 + 1;
    } else if (len >= 3 && memcmp(s, "$6$", 3) == 0) {
        h->type = PASSWD_SHA512;
        p += 3;
    } else {
        *why = "unknown password hash type (expected $6$ or $7$)";
        return -1;
    }
    d2 = memchr(p, '$', (size_t)(end - p));
    if (d2 == NULL) {
        *why = "malformed hash (no '$' between salt and hash)";
        return -1;
    }
    n = b64_decode(p, (size_t)(d2 - p), h->salt, sizeof(h->salt));
    if (n < 0) {
        *why = "salt is not valid base64";
        return -1;
    }
    if (n != PASSWD_SALT_LEN && n != PASSWD_SALT_LEN_LONG) {
        *why = "salt must be 12 or 64 bytes";
        return -1;
    }
    h->salt_len = (size_t)n;
    p = d2 + 1;
    if (memchr(p, '$', (size_t)(end - p)) != NULL) {
        *why = "malformed hash (extra '$')";
        return -1;
    }
    {
        uint8_t tmp[PASSWD_HASH_LEN + 3];
        n = b64_decode(p, (size_t)(end - p), tmp, sizeof(tmp));
        if (n < 0) {
            *why = "hash is not valid base64";
            return -1;
        }
        if (n != PASSWD_HASH_LEN) {
            *why = "hash must be 64 bytes";
            return -1;
        }
        memcpy(h->hash, tmp, PASSWD_HASH_LEN);
    }
    return 0;
}

/* digest: compute the hash of password under h's parameters into out. */
static int digest(const struct pw_hash *h, const uint8_t *pw, size_t pwlen,
                  uint8_t out[PASSWD_HASH_LEN])
{
    static const uint8_t empty[1] = {0};
    EVP_MD_CTX *ctx;
    unsigned olen = 0;
    int ok;

    if (pwlen > INT_MAX)
        return -1;
    if (pw == NULL)
        pw = empty;
    if (h->type == PASSWD_SHA512_PBKDF2) {
        if (h->iterations < PASSWD_ITER_MIN || h->iterations > PASSWD_ITER_MAX)
            return -1;
        ok = PKCS5_PBKDF2_HMAC((const char *)pw, (int)pwlen, h->salt,
                               (int)h->salt_len, (int)h->iterations,
                               EVP_sha512(), PASSWD_HASH_LEN, out);
        return ok == 1 ? 0 : -1;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -1;
    ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, pw, pwlen) == 1 &&
         EVP_DigestUpdate(ctx, h->salt, h->salt_len) == 1 &&
         EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == PASSWD_HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* verify: 1 match, 0 mismatch (also on digest failure). */
static int verify(const struct pw_hash *h, const uint8_t *pw, size_t pwlen)
{
    uint8_t out[PASSWD_HASH_LEN];
    bool eq;

    if (digest(h, pw, pwlen, out) == -1)
        return 0;
    eq = util_ct_memeq(out, h->hash, PASSWD_HASH_LEN);
    OPENSSL_cleanse(out, sizeof(out));
    return eq ? 1 : 0;
}

int passwd_hash_verify(const char *hash, const uint8_t *password,
                       size_t password_len, const char **why)
{
    struct pw_hash h;
    const char *w = NULL;

    if (parse_hash(hash, strlen(hash), &h, &w) == -1) {
        if (why != NULL)
            *why = w;
        return -1;
    }
    return verify(&h, password, password_len);
}

int passwd_hash_make(enum passwd_type type, unsigned long iterations,
                     const uint8_t *password, size_t password_len, char *out,
                     size_t outlen)
{
    struct pw_hash h;
    char salt64[PASSWD_SALT_LEN * 2], hash64[PASSWD_HASH_LEN * 2];
    int n;

    memset(&h, 0, sizeof(h));
    h.type = type;
    if (type == PASSWD_SHA512_PBKDF2) {
        if (iterations < PASSWD_ITER_MIN || iterations > PASSWD_ITER_MAX)
            return -1;
        h.iterations = iterations;
    } else if (type != PASSWD_SHA512) {
        return -1;
    }
    h.salt_len = PASSWD_SALT_LEN;
    if (RAND_bytes(h.salt, PASSWD_SALT_LEN) != 1)
        return -1;
    if (digest(&h, password, password_len, h.hash) == -1)
        return -1;
    b64_encode(h.salt, h.salt_len, salt64);
    b64_encode(h.hash, PASSWD_HASH_LEN, hash64);
    if (type == PASSWD_SHA512_PBKDF2)
        n = snprintf(out, outlen, "$7$%lu$%s$%s", iterations, salt64, hash64);
    else
        n = snprintf(out, outlen, "$6$%s$%s", salt64, hash64);
    OPENSSL_cleanse(&h, sizeof(h));
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return 0;
}

/* ---- table ---- */

static uint64_t name_hash(uint64_t seed, const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* find_slot: the slot holding user, or the empty slot where it would go. */
static size_t find_slot(const struct passwd *pw, const char *user)
{
    size_t mask = pw->nslots - 1;
    size_t i = (size_t)name_hash(pw->seed, user) & mask;

    while (pw->slots[i] != 0 &&
           strcmp(pw->lines[pw->slots[i] - 1].user, user) != 0)
        i = (i + 1) & mask;
    return i;
}

static void rebuild_index(struct passwd *pw)
{
    size_t want = 16;

    while (want < pw->nusers * 2 + 2)
        want *= 2;
    free(pw->slots);
    pw->nslots = want;
    pw->slots = xcalloc(want, sizeof(*pw->slots));
    for (size_t i = 0; i < pw->nlines; i++) {
        if (pw->lines[i].user != NULL && !pw->lines[i].shadow)
            pw->slots[find_slot(pw, pw->lines[i].user)] = i + 1;
    }
}

static struct pw_line *lookup(const struct passwd *pw, const char *user)
{
    size_t s;

    if (pw == NULL || user == NULL || pw->nslots == 0)
        return NULL;
    s = find_slot(pw, user);
    return pw->slots[s] ? &pw->lines[pw->slots[s] - 1] : NULL;
}

static struct pw_line *push_line(struct passwd *pw)
{
    struct pw_line *l;

    if (pw->nlines == pw->cap) {
        pw->cap = pw->cap ? pw->cap * 2 : 16;
        pw->lines = xreallocarray(pw->lines, pw->cap, sizeof(*pw->lines));
    }
    l = &pw->lines[pw->nlines++];
    memset(l, 0, sizeof(*l));
    return l;
}

/* add_user: append an entry; the index grows when half full. */
static void add_user(struct passwd *pw, const char *user, size_t ulen,
                     const char *text, size_t tlen, const struct pw_hash *h)
{
    struct pw_line *l = push_line(pw);

    l->user = xstrndup(user, ulen);
    l->text = xstrndup(text, tlen);
    l->h = *h;
    pw->nusers++;
    if (pw->nusers * 2 + 2 > pw->nslots)
        rebuild_index(pw);
    else
        pw->slots[find_slot(pw, l->user)] = pw->nlines;
}

struct passwd *passwd_new(void)
{
    struct passwd *pw = xcalloc(1, sizeof(*pw));

    if (RAND_bytes((unsigned char *)&pw->seed, sizeof(pw->seed)) != 1)
        pw->seed = (uint64_t)(uintptr_t)pw;
    rebuild_index(pw);
    return pw;
}

void passwd_free(struct passwd *pw)
{
    if (pw == NULL)
        return;
    for (size_t i = 0; i < pw->nlines; i++) {
        free(pw->lines[i].user);
        free(pw->lines[i].text);
        OPENSSL_cleanse(&pw->lines[i].h, sizeof(pw->lines[i].h));
    }
    free(pw->lines);
    free(pw->slots);
    free(pw);
}

size_t passwd_count(const struct passwd *pw)
{
    return pw ? pw->nusers : 0;
}

bool passwd_has_user(const struct passwd *pw, const char *user)
{
    return lookup(pw, user) != NULL;
}

uint64_t passwd_user_stamp(const struct passwd *pw, const char *user)
{
    const struct pw_line *l = lookup(pw, user);
    uint64_t h;

    if (l == NULL)
        return 0;
    h = util_fnv1a(l->text, strlen(l->text));
    if (l->denied)
        h = ~h;
    return h ? h : 1;
}

enum passwd_result passwd_check(const struct passwd *pw, const char *user,
                                const uint8_t *password, size_t password_len)
{
    const struct pw_line *l = lookup(pw, user);

    /* Before any hashing: an empty or missing password never matches,
     * even a hash of "" (Mosquitto 2.0, CVE-2021-34434 class). */
    if (l == NULL)
        return PASSWD_NO_USER;
    if (password == NULL || password_len == 0 || l->denied)
        return PASSWD_BAD;
    return verify(&l->h, password, password_len) ? PASSWD_OK : PASSWD_BAD;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* check_username: 0 or -1 with *why. */
static int check_username(const char *u, size_t len, const char **why)
{
    if (len == 0) {
        *why = "empty username";
        return -1;
    }
    if (len > PASSWD_MAX_USERNAME) {
        *why = "username longer than 65535 bytes";
        return -1;
    }
    if (u[0] == '#') {
        *why = "username starts with '#'";
        return -1;
    }
    if (is_blank(u[0]) || is_blank(u[len - 1])) {
        *why = "username has leading or trailing blanks";
        return -1;
    }
    if (memchr(u, '\n', len) != NULL || memchr(u, '\r', len) != NULL) {
        *why = "username contains a line break";
        return -1;
    }
    if (memchr(u, ':', len) != NULL) {
        *why = "username contains ':'";
        return -1;
    }
    if (!util_utf8_valid(u, len)) {
        *why = "username is not valid UTF-8";
        return -1;
    }
    return 0;
}

/* drop_shadows: delete the repeated (shadow) lines of user; reindex. */
static void drop_shadows(struct passwd *pw, const char *user)
{
    size_t o = 0;

    for (size_t i = 0; i < pw->nlines; i++) {
        struct pw_line *l = &pw->lines[i];
        if (l->shadow && strcmp(l->user, user) == 0) {
            free(l->user);
            free(l->text);
            OPENSSL_cleanse(&l->h, sizeof(l->h));
            continue;
        }
        pw->lines[o++] = *l;
    }
    pw->nlines = o;
    rebuild_index(pw);
}

int passwd_set(struct passwd *pw, const char *user, const char *hash, char *err,
               size_t errlen)
{
    struct pw_hash h;
    struct pw_line *l;
    const char *why = NULL;

    if (check_username(user, strlen(user), &why) == -1 ||
        parse_hash(hash, strlen(hash), &h, &why) == -1) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s", why);
        return -1;
    }
    l = lookup(pw, user);
    if (l != NULL) {
        free(l->text);
        l->text = xstrdup(hash);
        l->h = h;
        if (l->denied) {
            /* one entry again: drop the repeated lines */
            l->denied = false;
            drop_shadows(pw, user);
        }
        return 0;
    }
    add_user(pw, user, strlen(user), hash, strlen(hash), &h);
    return 0;
}

int passwd_remove(struct passwd *pw, const char *user)
{
    struct pw_line *l = lookup(pw, user);
    size_t i;

    if (l == NULL)
        return -1;
    i = (size_t)(l - pw->lines);
    free(l->user);
    free(l->text);
    memmove(&pw->lines[i], &pw->lines[i + 1],
            (pw->nlines - i - 1) * sizeof(*pw->lines));
    pw->nlines--;
    pw->nusers--;
    drop_shadows(pw, user); /* reindexes */
    return 0;
}

char *passwd_serialise(const struct passwd *pw, size_t *len)
{
    size_t total = 1, o = 0;
    char *out;

    for (size_t i = 0; i < pw->nlines; i++) {
        const struct pw_line *l = &pw->lines[i];
        total += (l->user ? strlen(l->user) + 1 : 0) + strlen(l->text) + 1;
    }
    out = xmalloc(total);
    for (size_t i = 0; i < pw->nlines; i++) {
        const struct pw_line *l = &pw->lines[i];
        size_t n;
        if (l->user != NULL) {
            n = strlen(l->user);
            memcpy(out + o, l->user, n);
            o += n;
            out[o++] = ':';
        }
        n = strlen(l->text);
        memcpy(out + o, l->text, n);
        o += n;
        out[o++] = '\n';
    }
    out[o] = '\0';
    if (len != NULL)
        *len = o;
    return out;
}

/* ---- loading ---- */

struct loader {
    struct passwd *pw;
    const char *name; /* file name for warnings */
    int line;         /* 1-based number of the line being parsed */
    passwd_warn_fn warn;
    void *arg;
};

/* keep_line: store s[0..len) verbatim (comments, blank and skipped lines),
 * so that mqttd-passwd writes back what it could not use. */
static void keep_line(struct passwd *pw, const char *s, size_t len)
{
    struct pw_line *l = push_line(pw);

    l->text = xstrndup(s, len);
}

/*
 * parse_entry: the "user:hash" line s[0..len) (trimmed, not a comment).
 * Returns 0 with the entry added; 1 with *why for a repeated user (the
 * line is kept as a shadow, the user denied); -1 with *why when the line
 * is unusable.
 */
static int parse_entry(struct passwd *pw, const char *s, size_t len,
                       const char **why)
{
    const char *colon, *h;
    size_t ul, hl;
    struct pw_hash hash;
    struct pw_line *dup;

    colon = memchr(s, ':', len);
    if (colon == NULL) {
        *why = "no ':' between username and password hash";
        return -1;
    }
    ul = (size_t)(colon - s);
    while (ul > 0 && is_blank(s[ul - 1]))
        ul--;
    h = colon + 1;
    hl = len - (size_t)(h - s);
    while (hl > 0 && is_blank(*h)) {
        h++;
        hl--;
    }
    if (check_username(s, ul, why) == -1)
        return -1;
    if (hl == 0) {
        *why = "no password hash";
        return -1;
    }
    if (parse_hash(h, hl, &hash, why) == -1)
        return -1;
    {
        char *name = xstrndup(s, ul);
        dup = lookup(pw, name);
        free(name);
    }
    if (dup != NULL) {
        /* Which of the two was meant is unknown: deny the user. */
        struct pw_line *l;
        dup->denied = true;
        l = push_line(pw); /* may move dup */
        l->user = xstrndup(s, ul);
        l->text = xstrndup(h, hl);
        l->shadow = true;
        *why = "duplicate username, user denied";
        OPENSSL_cleanse(&hash, sizeof(hash));
        return 1;
    }
    add_user(pw, s, ul, h, hl, &hash);
    return 0;
}

/*
 * parse_line: one line (no newline). Comments and blank lines are kept;
 * an unusable line is kept verbatim, reported through the warning sink as
 * "<why>; entry ignored" and gives no entry (its user is denied). Never
 * fails: Mosquitto 2.0.11 also starts with such a file.
 */
static int parse_line(void *ud, const char *s, size_t len, const char **why)
{
    struct loader *ld = ud;
    const char *w = NULL;
    size_t i = 0, end = len;
    int rc;

    (void)why;
    ld->line++;
    while (end > 0 && (is_blank(s[end - 1]) || s[end - 1] == '\r'))
        end--;
    while (i < end && is_blank(s[i]))
        i++;
    if (i == end || s[i] == '#') {
        keep_line(ld->pw, s, end);
        return 0;
    }
    rc = parse_entry(ld->pw, s + i, end - i, &w);
    if (rc == -1)
        keep_line(ld->pw, s, end);
    if (rc != 0) {
        if (ld->warn != NULL) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s; entry ignored", w);
            ld->warn(ld->arg, ld->name, ld->line, msg);
        }
    }
    return 0;
}

struct passwd *passwd_parse_warn(const char *name, const char *buf, size_t len,
                                 passwd_warn_fn warn, void *arg, char *err,
                                 size_t errlen)
{
    struct loader ld = {passwd_new(), name, 0, warn, arg};

    if (util_parse_lines(name, buf, len, PASSWD_MAX_FILE, PASSWD_MAX_LINE,
                         parse_line, &ld, err, errlen) == -1) {
        passwd_free(ld.pw);
        return NULL;
    }
    return ld.pw;
}

struct passwd *passwd_parse(const char *name, const char *buf, size_t len,
                            char *err, size_t errlen)
{
    return passwd_parse_warn(name, buf, len, NULL, NULL, err, errlen);
}

struct passwd *passwd_load_warn(const char *path, passwd_warn_fn warn,
                                void *arg, char *err, size_t errlen)
{
    struct loader ld = {passwd_new(), path, 0, warn, arg};

    /* util_read_lines wipes its copy of the file (the hashes) */
    if (util_read_lines(path, PASSWD_MAX_FILE, PASSWD_MAX_LINE, parse_line, &ld,
                        err, errlen) == -1) {
        passwd_free(ld.pw);
        return NULL;
    }
    return ld.pw;
}

struct passwd *passwd_load(const char *path, char *err, size_t errlen)
{
    return passwd_load_warn(path, NULL, NULL, err, errlen);
}
