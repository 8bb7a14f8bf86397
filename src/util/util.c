/*
 * util.c - allocation that aborts on OOM, number parsing, UTF-8 checks,
 * constant-time compare, edit distance, crash-safe file writes and
 * line-by-line file reading.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t size)
{
    fprintf(stderr, "mqttd: out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        oom(size);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        oom(size);
    return p;
}

void *xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        oom(SIZE_MAX);
    return xrealloc(ptr, nmemb * size);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *xmemdup(const void *p, size_t n)
{
    void *q = xmalloc(n);

    if (n)
        memcpy(q, p, n);
    return q;
}

int util_strtonum(const char *s, long long minval, long long maxval,
                  long long *out, const char **errstr)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || minval > maxval) {
        *errstr = "invalid";
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || end == s) {
        *errstr = "invalid";
        return -1;
    }
    if ((errno == ERANGE && v == LLONG_MIN) || v < minval) {
        *errstr = "too small";
        return -1;
    }
    if ((errno == ERANGE && v == LLONG_MAX) || v > maxval) {
        *errstr = "too large";
        return -1;
    }
    *out = v;
    return 0;
}

bool util_utf8_valid(const void *p, size_t len)
{
    const unsigned char *s = p;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        unsigned cp, need;

        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= need)
            return false;
        for (unsigned k = 1; k <= need; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

bool util_ct_memeq(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;

    for (size_t i = 0; i < len; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

char *util_hex(const void *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        *out++ = hx[b[i] >> 4];
        *out++ = hx[b[i] & 15];
    }
    *out = '\0';
    return out;
}

int util_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int util_unhex(const char *s, size_t n, char *out, size_t cap)
{
    if (n % 2 || n / 2 + 1 > cap || n / 2 > INT_MAX)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = util_hexval(s[2 * i]), lo = util_hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (char)(hi << 4 | lo);
    }
    out[n / 2] = '\0';
    return (int)(n / 2);
}

uint64_t util_fnv1a(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 14695981039346656037ull; /* offset basis */

    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

double util_now_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned util_levenshtein(const char *a, const char *b)
{
    unsigned row[65], la = (unsigned)strlen(a), lb = (unsigned)strlen(b);

    if (la > 64 || lb > 64)
        return 1000;
    for (unsigned j = 0; j <= lb; j++)
        row[j] = j;
    for (unsigned i = 1; i <= la; i++) {
        unsigned prev = row[0];
        row[0] = i;
        for (unsigned j = 1; j <= lb; j++) {
            unsigned cur = row[j];
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned v = prev + cost;
            if (row[j] + 1 < v)
                v = row[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}

int util_write_file_atomic(const char *path, const void *data, size_t len,
                           unsigned mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    const char *slash;
    const unsigned char *p = data;
    int fd = -1, dfd, saved;
    size_t off = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd == -1)
        return -1;
    if (fchmod(fd, (mode_t)mode) == -1)
        goto fail;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) == -1)
        goto fail;
    if (close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1)
        goto fail;
    slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t dl = (size_t)(slash - path);
        memcpy(dir, path, dl);
        dir[dl] = '\0';
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd != -1) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    saved = errno;
    if (fd != -1)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int util_parse_lines(const char *name, const char *buf, size_t len,
                     size_t max_file, size_t max_line, util_line_fn fn,
                     void *ud, char *err, size_t errlen)
{
    size_t pos = 0, ll;
    const char *s, *nl, *why;
    unsigned long line = 0;

    if (len > max_file) {
        set_err(err, errlen, "%s: file larger than %zu bytes", name, max_file);
        return -1;
    }
    while (pos < len) {
        line++;
        s = buf + pos;
        nl = memchr(s, '\n', len - pos);
        ll = nl ? (size_t)(nl - s) : len - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll > max_line) {
            set_err(err, errlen, "%s:%lu: line longer than %zu bytes", name,
                    line, max_line);
            return -1;
        }
        if (memchr(s, '\0', ll) != NULL) {
            set_err(err, errlen, "%s:%lu: NUL byte in line", name, line);
            return -1;
        }
        why = NULL;
        if (fn(ud, s, ll, &why) == -1) {
            set_err(err, errlen, "%s:%lu: %s", name, line,
                    why ? why : "invalid line");
            return -1;
        }
    }
    return 0;
}

int util_read_lines(const char *path, size_t max_file, size_t max_line,
                    util_line_fn fn, void *ud, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ssize_t n;
    int fd, rc = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == -1 || S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: not a readable file", path);
        goto fail;
    }
    /* Read at most max_file + 1 bytes whatever fstat says. */
    for (;;) {
        if (len == cap) {
            if (cap > max_file) {
                set_err(err, errlen, "%s: file larger than %zu bytes", path,
                        max_file);
                goto fail;
            }
            cap = cap ? cap * 2 : 4096;
            if (cap > max_file + 1)
                cap = max_file + 1;
            buf = xrealloc(buf, cap);
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    rc = util_parse_lines(path, buf, len, max_file, max_line, fn, ud, err,
                          errlen);
fail:
    close(fd);
    if (buf != NULL)
        explicit_bzero(buf, len);
    free(buf);
    return rc;
}
