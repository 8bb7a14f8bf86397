/*
 * proxy_proto.c - the PROXY protocol v1/v2 parser and the transport layer
 * that reads the header before the first TLS or MQTT byte (see
 * proxy_proto.h; the format is HAProxy's proxy-protocol.txt).
 *
 * The layer never reads past the header: it peeks (MSG_PEEK) at what the
 * socket holds, lets the parser say how much of it is header, and reads
 * exactly that. While the header is incomplete every peeked byte belongs
 * to it (proxy_parse's contract), so it is read at once and the socket is
 * not left readable with bytes nobody takes (no busy loop).
 */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"
#include "transport.h"
#include "util.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* PP2 TLV types (proxy-protocol.txt 2.2) */
enum {
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
};

/* ---- version 1 ---------------------------------------------------------- */

/* A decimal port without leading zeros, 0..65535, in s[0..n). */
static int v1_port(const char *s, size_t n, uint16_t *out)
{
    unsigned long v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* An address of family af in s[0..n) into out (its canonical text). */
static int v1_addr(int af, const char *s, size_t n, char *out, size_t outlen)
{
    char tmp[64];
    uint8_t bin[16];

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(af, tmp, bin) != 1)
        return -1;
    return inet_ntop(af, bin, out, (socklen_t)outlen) != NULL ? 0 : -1;
}

/* The line buf[0..n) without its CRLF: "PROXY ..." */
static int v1_fields(const char *line, size_t n, struct proxy_hdr *h,
                     const char **why)
{
    const char *f[6];
    size_t fl[6], nf = 0, start = 0;
    int af;

    if (n >= 13 && memcmp(line, "PROXY UNKNOWN", 13) == 0 &&
        (n == 13 || line[13] == ' ')) {
        h->local = true; /* the rest of the line is ignored (spec) */
        h->family = AF_UNSPEC;
        return 0;
    }
    for (size_t i = 0; i <= n; i++) {
        if (i == n || line[i] == ' ') {
            if (nf == 6) {
                *why = "PROXY v1: too many fields";
                return -1;
            }
            f[nf] = line + start;
            fl[nf] = i - start;
            if (fl[nf] == 0) {
                *why = "PROXY v1: empty field (double space)";
                return -1;
            }
            nf++;
            start = i + 1;
        }
    }
    if (nf != 6) {
        *why = "PROXY v1: wrong number of fields";
        return -1;
    }
    if (fl[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
        af = AF_INET;
    else if (fl[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
        af = AF_INET6;
    else {
        *why = "PROXY v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)";
        return -1;
    }
    if (v1_addr(af, f[2], fl[2], h->src_ip, sizeof(h->src_ip)) < 0 ||
        v1_addr(af, f[3], fl[3], h->dst_ip, sizeof(h->dst_ip)) < 0) {
        *why = "PROXY v1: bad address";
        return -1;
    }
    if (v1_port(f[4], fl[4], &h->src_port) < 0 ||
        v1_port(f[5], fl[5], &h->dst_port) < 0) {
        *why = "PROXY v1: bad port";
        return -1;
    }
    h->family = af;
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                    const char **why)
{
    size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;

    /* the fixed start, checked as far as it arrived */
    if (memcmp(buf, "PROXY ", len < 6 ? len : 6) != 0) {
        *why = "not a PROXY protocol header";
        return PROXY_MALFORMED;
    }
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return PROXY_INCOMPLETE;
            if (buf[i + 1] != '\n' || i + 2 > PROXY_V1_MAX) {
                *why = "PROXY v1: CR without LF (or past 107 bytes)";
                return PROXY_MALFORMED;
            }
            h->version = 1;
            if (v1_fields((const char *)buf, i, h, why) < 0)
                return PROXY_MALFORMED;
            return (int)(i + 2);
        }
        if (buf[i] < 0x20 || buf[i] > 0x7e) {
            *why = "PROXY v1: control or non-ASCII byte";
            return PROXY_MALFORMED;
        }
    }
    if (len >= PROXY_V1_MAX) {
        *why = "PROXY v1: no CRLF within 107 bytes";
        return PROXY_MALFORMED;
    }
    return PROXY_INCOMPLETE;
}

/* ---- version 2 ---------------------------------------------------------- */

/* CRC-32C (Castagnoli, reflected 0x82F63B78), bitwise: headers are small. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* The sub-TLVs of PP2_TYPE_SSL, v[0..n) after client and verify. */
static int v2_ssl_subs(const uint8_t *v, size_t n, struct proxy_hdr *h,
                       const char **why)
{
    size_t off = 0;

    while (off < n) {
        uint8_t type;
        size_t l;

        if (n - off < 3) {
            *why = "PROXY v2: truncated SSL sub-TLV";
            return -1;
        }
        type = v[off];
        l = be16(v + off + 1);
        off += 3;
        if (l > n - off) {
            *why = "PROXY v2: SSL sub-TLV overruns the SSL TLV";
            return -1;
        }
        if (type == PP2_SUBTYPE_SSL_CN) {
            if (h->has_cn) {
                *why = "PROXY v2: two SSL CN sub-TLVs";
                return -1;
            }
            if (l > PROXY_CN_MAX) {
                *why = "PROXY v2: SSL CN too long";
                return -1;
            }
            if (memchr(v + off, '\0', l) != NULL) {
                *why = "PROXY v2: SSL CN contains NUL";
                return -1;
            }
            memcpy(h->ssl_cn, v + off, l);
            h->ssl_cn[l] = '\0';
            h->has_cn = true;
        } else if (type == PP2_SUBTYPE_SSL_VERSION) {
            size_t k = l < PROXY_SSL_VERSION_MAX ? l : PROXY_SSL_VERSION_MAX;
            for (size_t i = 0; i < k; i++)
                h->ssl_version[i] = (v[off + i] >= 0x20 && v[off + i] < 0x7f)
                                        ? (char)v[off + i]
                                        : '?';
            h->ssl_version[k] = '\0';
        }
        off += l;
    }
    return 0;
}

/* The TLVs in buf[off..end); buf[0..end) is the whole header. */
static int v2_tlvs(const uint8_t *buf, size_t off, size_t end,
                   struct proxy_hdr *h, const char **why)
{
    while (off < end) {
        uint8_t type;
        size_t l;

        if (end - off < 3) {
            *why = "PROXY v2: truncated TLV";
            return -1;
        }
        type = buf[off];
        l = be16(buf + off + 1);
        if (l > end - off - 3) {
            *why = "PROXY v2: TLV overruns the header";
            return -1;
        }
        if (type == PP2_TYPE_SSL) {
            if (h->has_ssl) {
                *why = "PROXY v2: two SSL TLVs";
                return -1;
            }
            if (l < 5) {
                *why = "PROXY v2: SSL TLV too short";
                return -1;
            }
            h->has_ssl = true;
            h->ssl_client = buf[off + 3];
            h->ssl_verify = be32(buf + off + 4);
            if (v2_ssl_subs(buf + off + 8, l - 5, h, why) < 0)
                return -1;
        } else if (type == PP2_TYPE_CRC32C) {
            uint8_t zero[4] = {0, 0, 0, 0};
            uint32_t want, got;
            if (l != 4) {
                *why = "PROXY v2: CRC32C TLV not 4 bytes";
                return -1;
            }
            want = be32(buf + off + 3);
            /* over the whole header with the checksum field zeroed */
            got = crc32c(0, buf, off + 3);
            got = crc32c(got, zero, 4);
            got = crc32c(got, buf + off + 7, end - off - 7);
            if (got != want) {
                *why = "PROXY v2: CRC32C mismatch";
                return -1;
            }
        }
        off += 3 + l;
    }
    return 0;
}

static int parse_v2(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                    const char **why)
{
    size_t body, alen, total;
    uint8_t cmd, fam, proto;

    if (memcmp(buf, v2_sig, len < 12 ? len : 12) != 0) {
        *why = "not a PROXY protocol header";
        return PROXY_MALFORMED;
    }
    if (len >= 13 && (buf[12] >> 4) != 2) {
        *why = "PROXY v2: unsupported version";
        return PROXY_MALFORMED;
    }
    if (len >= 13 && (buf[12] & 0x0f) > 1) {
        *why = "PROXY v2: unknown command";
        return PROXY_MALFORMED;
    }
    if (len < PROXY_V2_HEAD)
        return PROXY_INCOMPLETE;
    cmd = buf[12] & 0x0f;
    fam = buf[13] >> 4;
    proto = buf[13] & 0x0f;
    body = be16(buf + 14);
    if (body > PROXY_V2_MAX_LEN) {
        *why = "PROXY v2: header longer than 2048 bytes";
        return PROXY_MALFORMED;
    }
    if (fam > 3 || proto > 2) {
        *why = "PROXY v2: unknown address family or protocol";
        return PROXY_MALFORMED;
    }
    total = PROXY_V2_HEAD + body;
    if (len < total)
        return PROXY_INCOMPLETE;
    h->version = 2;
    h->local = cmd == 0;
    switch (fam) {
    case 1:
        alen = 12;
        h->family = AF_INET;
        break;
    case 2:
        alen = 36;
        h->family = AF_INET6;
        break;
    case 3:
        alen = 216;
        h->family = AF_UNIX;
        break;
    default:
        alen = 0;
        h->family = AF_UNSPEC;
        break;
    }
    if (!h->local && fam != 0 && proto != 1) {
        *why = "PROXY v2: not a STREAM connection";
        return PROXY_MALFORMED;
    }
    if (body < alen) {
        *why = "PROXY v2: length too short for the addresses";
        return PROXY_MALFORMED;
    }
    if (h->family == AF_INET) {
        inet_ntop(AF_INET, buf + 16, h->src_ip, sizeof(h->src_ip));
        inet_ntop(AF_INET, buf + 20, h->dst_ip, sizeof(h->dst_ip));
        h->src_port = be16(buf + 24);
        h->dst_port = be16(buf + 26);
    } else if (h->family == AF_INET6) {
        inet_ntop(AF_INET6, buf + 16, h->src_ip, sizeof(h->src_ip));
        inet_ntop(AF_INET6, buf + 32, h->dst_ip, sizeof(h->dst_ip));
        h->src_port = be16(buf + 48);
        h->dst_port = be16(buf + 50);
    } else if (h->family == AF_UNIX) {
        strcpy(h->src_ip, "unix");
        strcpy(h->dst_ip, "unix");
    }
    if (v2_tlvs(buf, PROXY_V2_HEAD + alen, total, h, why) < 0)
        return PROXY_MALFORMED;
    return (int)total;
}

int proxy_parse(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                const char **why)
{
    memset(h, 0, sizeof(*h));
    if (len == 0)
        return PROXY_INCOMPLETE;
    if (buf[0] == 'P')
        return parse_v1(buf, len, h, why);
    if (buf[0] == v2_sig[0])
        return parse_v2(buf, len, h, why);
    *why = "not a PROXY protocol header";
    return PROXY_MALFORMED;
}

/* ---- policy ------------------------------------------------------------- */

int proxy_check(const struct proxy_policy *p, const struct proxy_hdr *h,
                const char **why)
{
    bool cert;

    if (h->version != p->version) {
        *why = p->version == 2 ? "expected PROXY protocol v2, got v1"
                               : "expected PROXY protocol v1, got v2";
        return -1;
    }
    if (h->local)
        return 0;
    if (p->require_tls &&
        !(h->has_ssl && (h->ssl_client & PROXY_CLIENT_SSL) != 0)) {
        *why = "client did not use TLS to the proxy "
               "(proxy_protocol_v2_require_tls)";
        return -1;
    }
    cert = h->has_ssl &&
           (h->ssl_client & (PROXY_CLIENT_CERT_CONN | PROXY_CLIENT_CERT_SESS));
    if (p->require_cert && !(cert && h->ssl_verify == 0)) {
        *why = cert ? "client certificate not verified by the proxy"
                    : "no verified client certificate in PROXY header";
        return -1;
    }
    if (p->check_cert && cert && h->ssl_verify != 0) {
        *why = "client certificate not verified by the proxy";
        return -1;
    }
    return 0;
}

int proxy_cert_identity(const struct proxy_hdr *h, char *out, size_t outlen,
                        const char **why)
{
    size_t n;

    if (h == NULL) {
        *why = "no PROXY header";
        return -1;
    }
    if (!h->has_ssl ||
        !(h->ssl_client & (PROXY_CLIENT_CERT_CONN | PROXY_CLIENT_CERT_SESS)) ||
        h->ssl_verify != 0) {
        *why = "no verified client certificate in PROXY header";
        return -1;
    }
    if (!h->has_cn || h->ssl_cn[0] == '\0') {
        *why = "no CN in PROXY header";
        return -1;
    }
    n = strlen(h->ssl_cn);
    if (!util_utf8_valid(h->ssl_cn, n)) {
        *why = "CN not valid UTF-8";
        return -1;
    }
    if (n >= outlen) {
        *why = "identity too long";
        return -1;
    }
    memcpy(out, h->ssl_cn, n + 1);
    return 0;
}

void proxy_policy_for(const struct conf *cf, const struct conf_listener *l,
                      struct proxy_policy *p, double *deadline)
{
    bool at_proxy = l->proxy_protocol == 2 && !l->tls_enabled;
    uint32_t t = cf->connect_timeout;

    memset(p, 0, sizeof(*p));
    p->version = l->proxy_protocol;
    p->require_tls = l->proxy_protocol == 2 && l->proxy_v2_require_tls;
    p->require_cert = at_proxy && l->tls.cert_mode == CONF_CERT_REQUIRED;
    p->check_cert = at_proxy && l->tls.cert_mode != CONF_CERT_NONE;
    if (l->tls_enabled && cf->tls_handshake_timeout < t)
        t = cf->tls_handshake_timeout;
    *deadline = (double)t;
}

/* ---- the transport layer ------------------------------------------------ */

struct xprt_proxy {
    struct transport base;
    struct proxy_policy pol;
    bool parsed; /* a well-formed header was read (hdr holds it) */
    bool done;   /* ... and the policy accepted it */
    size_t have; /* header bytes read so far, in buf */
    struct proxy_hdr hdr;
    uint8_t *buf; /* PROXY_BUF bytes while the header is read, then NULL */
};

#define PROXY_BUF (PROXY_V2_HEAD + PROXY_V2_MAX_LEN)

static const struct xprt_stage proxy_stage = {
    .event = "proxy_rejected",
    .what = "PROXY protocol",
    .timeout = "no complete PROXY header in time",
};

/* Read exactly n bytes the socket is known to hold (just peeked). */
static int take(struct xprt_proxy *x, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(x->base.fd, x->buf + x->have, n, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        x->have += (size_t)r;
        n -= (size_t)r;
    }
    return 0;
}

static enum xprt_io proxy_handshake(struct transport *t, char *why,
                                    size_t whylen,
                                    const struct xprt_stage **stage)
{
    struct xprt_proxy *x = (struct xprt_proxy *)t;
    struct transport *lo = t->lower;
    const char *reason = NULL;
    ssize_t r;
    int n;

    *stage = &proxy_stage;
    if (lo != NULL && lo->ops->handshake != NULL) {
        enum xprt_io lr = lo->ops->handshake(lo, why, whylen, stage);
        if (lr != XPRT_OK)
            return lr;
        *stage = &proxy_stage;
    }
    if (x->done)
        return XPRT_OK;
    if (x->buf == NULL)
        x->buf = xmalloc(PROXY_BUF);
    r = recv(t->fd, x->buf + x->have, PROXY_BUF - x->have, MSG_PEEK);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return XPRT_WANT_READ;
        snprintf(why, whylen, "%s", strerror(errno));
        return XPRT_ERROR;
    }
    if (r == 0) {
        snprintf(why, whylen,
                 x->have ? "connection closed in the middle of the header"
                         : "connection closed before any header");
        return XPRT_ERROR;
    }
    n = proxy_parse(x->buf, x->have + (size_t)r, &x->hdr, &reason);
    if (n == PROXY_INCOMPLETE) {
        /* every byte seen is header: take them all */
        if (take(x, (size_t)r) < 0) {
            snprintf(why, whylen, "socket read error");
            return XPRT_ERROR;
        }
        return XPRT_WANT_READ;
    }
    if (n == PROXY_MALFORMED) {
        snprintf(why, whylen, "%s", reason);
        return XPRT_ERROR;
    }
    if (take(x, (size_t)n - x->have) < 0) {
        snprintf(why, whylen, "socket read error");
        return XPRT_ERROR;
    }
    x->parsed = true; /* a refusal below is logged with the client address */
    if (proxy_check(&x->pol, &x->hdr, &reason) < 0) {
        snprintf(why, whylen, "%s", reason);
        return XPRT_ERROR;
    }
    x->done = true;
    free(x->buf); /* an established connection keeps only hdr */
    x->buf = NULL;
    if (x->hdr.local) {
        snprintf(why, whylen,
                 "PROXY protocol: %s connection (health check) "
                 "closed",
                 x->hdr.version == 2 ? "LOCAL" : "UNKNOWN");
        return XPRT_CLOSED;
    }
    return XPRT_OK;
}

static enum xprt_io proxy_read(struct transport *t, void *buf, size_t len,
                               size_t *n)
{
    enum xprt_io r = t->lower->ops->read(t->lower, buf, len, n);

    t->err = t->lower->err;
    return r;
}

static enum xprt_io proxy_write(struct transport *t, const void *buf,
                                size_t len, size_t *n)
{
    enum xprt_io r = t->lower->ops->write(t->lower, buf, len, n);

    t->err = t->lower->err;
    return r;
}

static void proxy_free(struct transport *t)
{
    free(((struct xprt_proxy *)t)->buf);
    free(t);
}

static const struct xprt_ops proxy_ops = {
    .handshake = proxy_handshake,
    .read = proxy_read,
    .write = proxy_write,
    .free = proxy_free,
    .stage = &proxy_stage,
};

struct transport *transport_proxy_new(const struct proxy_policy *p)
{
    struct xprt_proxy *x = xcalloc(1, sizeof(*x));

    x->base.ops = &proxy_ops;
    x->base.fd = -1;
    x->pol = *p;
    return &x->base;
}

const struct proxy_hdr *proxy_stack_hdr(const struct transport *t)
{
    for (; t != NULL; t = t->lower)
        if (t->ops == &proxy_ops) {
            const struct xprt_proxy *x = (const struct xprt_proxy *)t;
            return x->parsed ? &x->hdr : NULL;
        }
    return NULL;
}
