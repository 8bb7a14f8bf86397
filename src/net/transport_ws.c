/*
 * transport_ws.c - MQTT over WebSockets as a transport layer (see
 * transport_ws.h): the HTTP/1.1 upgrade (http_parse.c), then libwslay's event
 * API over the transport below (plain or TLS).
 *
 *   read(buf)  -> wslay_event_recv -> recv_cb: lower->read into the free end
 *                 of buf; peek_take checks each frame header, unmasks the
 *                 payload of data frames into buf and hands libwslay the
 *                 control frames only
 *   write(buf) -> binary frames written here to the lower transport (a
 *                 small write copied next to its header, a large one
 *                 header then payload); the bytes are reported written as
 *                 they go, and a half-written frame is finished before
 *                 libwslay may send a control frame
 *
 * libwslay answers pings and close frames itself; the replies go out from
 * read() (and from write() and shutdown()).
 */
#include "transport_ws.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "http_parse.h"
#include "log.h"
#include "transport.h"
#include "util.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_HEADERS 64
#define WS_EARLY_BYTES 4096u /* frame bytes read with the request head */
/* libwslay holds up to 4096 input bytes of its own (its frame context's
 * ibuf); the payload they decode to must still fit in the read buffer */
#define WS_IBUF_SLACK 8192u
#define WS_READ_MIN (4u * WS_IBUF_SLACK) /* smallest read() buffer */
#define WS_MSG_MAX (256u * 1024u)        /* payload of one outgoing frame */
#define WS_SMALL 1024u /* a write up to this size goes out with its header */

static const struct xprt_stage ws_stage = {
    .event = "ws_handshake_failed",
    .what = "WebSocket handshake",
    .timeout = "timed out",
};

enum { HS_LOWER = 0, HS_REQUEST, HS_REPLY, HS_REFUSE, HS_DONE };

/* Why reading stopped. */
enum {
    RS_OPEN = 0,
    RS_VIOLATION, /* a frame header failed the checks below */
    RS_PEER_CLOSE,
    RS_PROTO, /* libwslay refused the input */
    RS_EOF,
    RS_LOWER_ERR,
    RS_FAIL,
};

/* The frame-header checker: where the next header starts. */
enum { PK_B0 = 0, PK_B1, PK_EXT, PK_MASK, PK_PAY };

struct ws_peek {
    int st;
    uint8_t op;
    unsigned need, ext; /* bytes left of this header field / ext length */
    uint64_t len;       /* payload bytes left (PK_PAY) or being read */
    bool in_frag;       /* inside a fragmented data message */
    uint8_t key[4];     /* a data frame's mask key */
    unsigned moff;      /* the key offset of the next payload byte */
};

struct ws {
    struct transport base;
    /* configuration (copied) */
    char *path;
    char **origins;
    size_t norigins;
    size_t headers_size;
    uint64_t max_frame;
    struct log *log;
    const char *peer; /* borrowed: conn's address, updated by PROXY */
    /* handshake */
    int hs;
    uint8_t *req; /* the request head (the bytes after it: early) */
    size_t req_len, req_cap;
    struct http_header *hdrs;
    struct http_parser hp;
    char *reply;
    size_t reply_len, reply_off;
    char why[192];
    /* framing */
    wslay_event_context_ptr ctx;
    struct ws_peek pk;
    bool violation;
    uint8_t *out; /* the caller's read buffer during read() */
    size_t out_cap, out_len;
    uint8_t *early; /* frame bytes that came with the request head */
    size_t early_off, early_len;
    size_t rgn_off, rgn_end; /* bytes read into out[], not yet given */
    /* the data frame being written: a small one whole (sbuf), a large
     * one as header (hdr) then frame_left payload bytes from the caller */
    uint8_t sbuf[WS_SMALL + 10];
    size_t slen, soff, spl;
    uint8_t hdr[10];
    size_t hlen, hoff;
    uint64_t frame_left;
    enum xprt_io lower_r, lower_w;
    int rs;
    uint16_t vcode;
    char vwhy[128];
};

/* ---- Sec-WebSocket-Accept ------------------------------------------- */

int ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char raw[24], dig[SHA_DIGEST_LENGTH];
    char cat[24 + sizeof(WS_GUID)];

    /* 16 bytes in base64: 22 characters and "==" */
    if (keylen != 24 || key[22] != '=' || key[23] != '=')
        return -1;
    if (EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
        return -1;
    memcpy(cat, key, 24);
    memcpy(cat + 24, WS_GUID, sizeof(WS_GUID) - 1);
    SHA1((const unsigned char *)cat, 24 + sizeof(WS_GUID) - 1, dig);
    if (EVP_EncodeBlock((unsigned char *)out, dig, SHA_DIGEST_LENGTH) !=
        WS_ACCEPT_LEN)
        return -1;
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

/* ---- the upgrade request -------------------------------------------- */

static const char *status_text(int st)
{
    switch (st) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* refuse: answer status with reason as the body; the handshake then
 * fails with "STATUS reason". */
static void refuse(struct ws *w, int st, const char *reason)
{
    const char *extra = st == 426 ? "Sec-WebSocket-Version: 13\r\n" : "";
    int n;

    snprintf(w->why, sizeof(w->why), "%d %s", st, reason);
    w->reply = xmalloc(512);
    n = snprintf(w->reply, 512,
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s\n",
                 st, status_text(st), strlen(reason) + 1, extra, reason);
    w->reply_len = n > 0 && n < 512 ? (size_t)n : 0;
    w->reply_off = 0;
    w->hs = HS_REFUSE;
}

/* The first of the MQTT subprotocols the client offers (in its order,
 * over every Sec-WebSocket-Protocol line), NULL when none; *offered says
 * whether it offered any. */
static const char *pick_subprotocol(const struct ws *w, bool *offered)
{
    const struct http_parser *p = &w->hp;
    const char *b = (const char *)w->req;

    *offered = false;
    for (size_t i = 0; i < p->nhdrs; i++) {
        const struct http_header *h = &p->hdrs[i];
        const char *v = b + h->value_off;
        size_t vlen = h->value_len, j = 0;

        if (!http_strcaseeq(b + h->name_off, h->name_len,
                            "Sec-WebSocket-Protocol"))
            continue;
        while (j < vlen) {
            size_t s, e;

            while (j < vlen && (v[j] == ' ' || v[j] == '\t' || v[j] == ','))
                j++;
            s = j;
            while (j < vlen && v[j] != ',')
                j++;
            e = j;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (e == s)
                continue;
            *offered = true;
            if (e - s == 4 && memcmp(v + s, "mqtt", 4) == 0)
                return "mqtt";
            if (e - s == 8 && memcmp(v + s, "mqttv3.1", 8) == 0)
                return "mqttv3.1";
        }
    }
    return NULL;
}

static bool origin_allowed(const struct ws *w, const char *o, size_t olen)
{
    for (size_t i = 0; i < w->norigins; i++)
        if (http_strcaseeq(o, olen, w->origins[i]))
            return true;
    return false;
}

/* check_request: whether the parsed head is a WebSocket upgrade we
 * serve: 0 with the 101 reply built, or the status to refuse with and
 * *reason. */
static int check_request(struct ws *w, const char **reason)
{
    const struct http_parser *p = &w->hp;
    const uint8_t *b = w->req;
    const char *v, *target = (const char *)b + p->target_off, *proto;
    char accept[WS_ACCEPT_LEN + 1];
    size_t vlen, plen, cnt;
    bool offered;
    int n;

    *reason = "method must be GET";
    if (!http_method_is(p, b, "GET"))
        return 400;
    *reason = "HTTP/1.1 required";
    if (p->minor != 1)
        return 400;
    *reason = "request target must be a path";
    if (target[0] != '/')
        return 400;
    plen = p->target_len;
    v = memchr(target, '?', plen);
    if (v != NULL)
        plen = (size_t)(v - target);
    *reason = "no WebSocket endpoint at this path";
    if (w->path != NULL &&
        !(plen == strlen(w->path) && memcmp(target, w->path, plen) == 0))
        return 404;
    cnt = http_header_get(p, b, "Host", NULL, NULL);
    *reason = cnt ? "more than one Host header" : "missing Host header";
    if (cnt != 1)
        return 400;
    *reason = "missing Upgrade: websocket";
    if (http_header_get(p, b, "Upgrade", &v, &vlen) != 1 ||
        !http_token_list_has(v, vlen, "websocket"))
        return 400;
    *reason = "missing Connection: Upgrade";
    if (http_header_get(p, b, "Connection", &v, &vlen) != 1 ||
        !http_token_list_has(v, vlen, "upgrade"))
        return 400;
    cnt = http_header_get(p, b, "Sec-WebSocket-Version", &v, &vlen);
    *reason = "missing Sec-WebSocket-Version";
    if (cnt == 0)
        return 400;
    *reason = "unsupported Sec-WebSocket-Version";
    if (cnt != 1 || !(vlen == 2 && memcmp(v, "13", 2) == 0))
        return 426;
    *reason = "missing or invalid Sec-WebSocket-Key";
    if (http_header_get(p, b, "Sec-WebSocket-Key", &v, &vlen) != 1 ||
        ws_accept_key(v, vlen, accept) != 0)
        return 400;
    if (w->norigins > 0) {
        /* browsers always send Origin; other clients may omit it */
        cnt = http_header_get(p, b, "Origin", &v, &vlen);
        *reason = "Origin not allowed";
        if (cnt > 1 || (cnt == 1 && !origin_allowed(w, v, vlen)))
            return 403;
    }
    proto = pick_subprotocol(w, &offered);
    *reason = "no supported subprotocol (mqtt, mqttv3.1)";
    if (offered && proto == NULL)
        return 400;
    w->reply = xmalloc(256);
    n = snprintf(w->reply, 256,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                 "%s%s%s\r\n",
                 accept, proto ? "Sec-WebSocket-Protocol: " : "",
                 proto ? proto : "", proto ? "\r\n" : "");
    w->reply_len = (size_t)n;
    w->reply_off = 0;
    w->hs = HS_REPLY;
    if (log_enabled(w->log, LOG_WEBSOCKETS))
        log_event(w->log, LOG_WEBSOCKETS, "ws_upgrade", "WebSocket upgrade",
                  "ip", w->peer, "subprotocol", proto ? proto : "none",
                  (const char *)NULL);
    *reason = NULL;
    return 0;
}

/* read_request: read and parse the head; on the end of it, check it. */
static enum xprt_io read_request(struct ws *w, char *why, size_t whylen)
{
    struct transport *lo = w->base.lower;

    for (;;) {
        enum http_parse_res pr;
        enum xprt_io r;
        size_t n = 0;

        r = lo->ops->read(lo, w->req + w->req_len, w->req_cap - w->req_len, &n);
        if (r == XPRT_CLOSED) {
            snprintf(why, whylen, "connection closed during the request");
            return r;
        }
        if (r == XPRT_ERROR) {
            snprintf(why, whylen, "%s", lo->err ? lo->err : "read error");
            return r;
        }
        if (r != XPRT_OK)
            return r;
        w->req_len += n;
        pr = http_parse(&w->hp, w->req, w->req_len);
        if (pr == HTTP_PARSE_MORE)
            continue;
        if (pr != HTTP_PARSE_DONE) {
            refuse(w, http_parse_status(pr), http_parse_reason(pr));
        } else {
            const char *reason;
            int st = check_request(w, &reason);

            if (st != 0)
                refuse(w, st, reason);
        }
        /* what follows the head: the first frames, for recv_cb */
        if (w->hp.head_len < w->req_len) {
            w->early = w->req;
            w->early_off = w->hp.head_len;
            w->early_len = w->req_len;
        } else {
            free(w->req);
        }
        w->req = NULL;
        free(w->hdrs);
        w->hdrs = NULL;
        w->hp.hdrs = NULL;
        return XPRT_OK;
    }
}

/* ---- frame headers -------------------------------------------------- */

static bool violate(struct ws *w, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool violate(struct ws *w, uint16_t code, const char *fmt, ...)
{
    va_list ap;

    w->violation = true;
    w->vcode = code;
    va_start(ap, fmt);
    vsnprintf(w->vwhy, sizeof(w->vwhy), fmt, ap);
    va_end(ap);
    return false;
}

static bool is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static bool peek_b0(struct ws *w, uint8_t b)
{
    struct ws_peek *k = &w->pk;
    bool fin = (b & 0x80) != 0;
    uint8_t op = b & 0x0f;

    if (b & 0x70)
        return violate(w, 1002, "RSV bit set without an extension");
    if ((op >= 3 && op <= 7) || op >= 0xb)
        return violate(w, 1002, "reserved opcode 0x%x", op);
    if (op == WSLAY_TEXT_FRAME) /* [MQTT-6.0.0-1] */
        return violate(w, 1003, "text frame (MQTT needs binary frames)");
    if (is_control(op) && !fin)
        return violate(w, 1002, "fragmented control frame");
    if (op == WSLAY_CONTINUATION_FRAME && !k->in_frag)
        return violate(w, 1002, "continuation frame without a message");
    if (op == WSLAY_BINARY_FRAME && k->in_frag)
        return violate(w, 1002, "new message inside a fragmented one");
    if (!is_control(op))
        k->in_frag = !fin;
    k->op = op;
    k->st = PK_B1;
    return true;
}

/* The payload length is known: check it, go on to the mask key. */
static bool peek_len(struct ws *w)
{
    struct ws_peek *k = &w->pk;

    if ((k->ext == 2 && k->len < 126) || (k->ext == 8 && k->len < 65536))
        return violate(w, 1002, "frame length not minimally encoded");
    if (k->ext == 8 && (k->len >> 63) != 0)
        return violate(w, 1002, "frame length with the top bit set");
    if (!is_control(k->op) && k->len > w->max_frame)
        return violate(w, 1009, "frame of %llu bytes over the limit of %llu",
                       (unsigned long long)k->len,
                       (unsigned long long)w->max_frame);
    k->st = PK_MASK;
    k->need = 4;
    return true;
}

static bool peek_b1(struct ws *w, uint8_t b)
{
    struct ws_peek *k = &w->pk;
    uint8_t len7 = b & 0x7f;

    if (!(b & 0x80))
        return violate(w, 1002, "unmasked client frame");
    if (is_control(k->op) && len7 > 125)
        return violate(w, 1002, "control frame over 125 bytes");
    k->len = 0;
    k->ext = 0;
    if (len7 >= 126) {
        k->ext = k->need = len7 == 126 ? 2 : 8;
        k->st = PK_EXT;
        return true;
    }
    k->len = len7;
    return peek_len(w);
}

/* unmask: dst[0..n) = src[0..n) XOR the mask key from key offset *moff,
 * eight bytes at a time (dst may trail src in the same buffer). */
static void unmask(uint8_t *dst, const uint8_t *src, size_t n,
                   const uint8_t key[4], unsigned *moff)
{
    uint8_t kk[8];
    uint64_t km, v;
    size_t j = 0;

    for (unsigned q = 0; q < 8; q++)
        kk[q] = key[(*moff + q) & 3];
    memcpy(&km, kk, sizeof(km));
    for (; j + 8 <= n; j += 8) {
        memcpy(&v, src + j, sizeof(v));
        v ^= km;
        memcpy(dst + j, &v, sizeof(v));
    }
    for (; j < n; j++)
        dst[j] = src[j] ^ kk[j & 7];
    *moff = (unsigned)((*moff + n) & 3);
}

/*
 * peek_take: follow the frames in src[0..n): every header is checked
 * (peek_b0, peek_b1, peek_len); the payload of data frames is unmasked
 * straight into the caller's read buffer (w->out); control frames, whole,
 * go to dst[0..dstcap) for libwslay (*got bytes). Returns the bytes of
 * src used: fewer than n at an offending byte, when dst is full, or when
 * the read buffer is.
 */
static size_t peek_take(struct ws *w, const uint8_t *src, size_t n,
                        uint8_t *dst, size_t dstcap, size_t *got)
{
    struct ws_peek *k = &w->pk;
    size_t i = 0;

    while (i < n) {
        bool ctl = k->st != PK_B0 && is_control(k->op);
        uint8_t c = src[i];

        if (k->st == PK_PAY && !ctl) {
            size_t room = w->out_cap - w->out_len, take = n - i;

            if (take > k->len)
                take = (size_t)k->len;
            if (take > room)
                take = room;
            if (take == 0)
                return i;
            unmask(w->out + w->out_len, src + i, take, k->key, &k->moff);
            w->out_len += take;
            i += take;
            k->len -= take;
            if (k->len == 0)
                k->st = PK_B0;
            continue;
        }
        if (k->st == PK_PAY || (k->st != PK_B0 && ctl)) {
            /* a control frame's byte, for libwslay */
            size_t take = 1;

            if (*got >= dstcap)
                return i;
            if (k->st == PK_PAY) {
                take = n - i;
                if (take > k->len)
                    take = (size_t)k->len;
                if (take > dstcap - *got)
                    take = dstcap - *got;
                memcpy(dst + *got, src + i, take);
                *got += take;
                i += take;
                k->len -= take;
                if (k->len == 0)
                    k->st = PK_B0;
                continue;
            }
        }
        switch (k->st) {
        case PK_B0:
            if (!peek_b0(w, c))
                return i;
            if (is_control(k->op)) {
                if (*got >= dstcap) {
                    k->st = PK_B0; /* not taken: again next time */
                    return i;
                }
                dst[(*got)++] = c;
            }
            break;
        case PK_B1:
            if (!peek_b1(w, c))
                return i;
            if (is_control(k->op))
                dst[(*got)++] = c;
            break;
        case PK_EXT:
            k->len = (k->len << 8) | c;
            if (--k->need == 0 && !peek_len(w))
                return i;
            break;
        case PK_MASK:
        default:
            if (is_control(k->op))
                dst[(*got)++] = c;
            else
                k->key[4 - k->need] = c;
            if (--k->need == 0) {
                k->moff = 0;
                k->st = k->len > 0 ? PK_PAY : PK_B0;
            }
            break;
        }
        i++;
    }
    return n;
}

/* ---- libwslay callbacks ---------------------------------------------- */

/*
 * recv_cb: libwslay wants input. The bytes are read from the lower
 * transport into the free end of the caller's read buffer (out), well
 * past the payload decoded so far, which grows by at most one byte per
 * byte read: one buffer serves both and nothing is allocated. peek_take
 * unmasks data frames' payload into out itself (libwslay's unmasking, a
 * byte at a time, was most of the framing's CPU: docs/performance.md) and
 * hands libwslay the control frames only.
 */
static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud)
{
    struct ws *w = ud;
    struct transport *lo = w->base.lower;
    size_t got = 0;

    (void)flags;
    while (got == 0 && !w->violation && w->rs == RS_OPEN) {
        const uint8_t *src;
        size_t avail, used, n = 0;

        if (w->early != NULL) {
            src = w->early + w->early_off;
            avail = w->early_len - w->early_off;
        } else {
            if (w->rgn_off == w->rgn_end) {
                size_t start = w->out_len + WS_IBUF_SLACK;

                /* the caller's buffer is full: what is left in the
                 * socket keeps it readable for the next iteration */
                if (start + WS_IBUF_SLACK > w->out_cap)
                    break;
                w->lower_r =
                    lo->ops->read(lo, w->out + start, w->out_cap - start, &n);
                if (w->lower_r != XPRT_OK || n == 0)
                    break;
                w->rgn_off = start;
                w->rgn_end = start + n;
            }
            src = w->out + w->rgn_off;
            avail = w->rgn_end - w->rgn_off;
        }
        used = peek_take(w, src, avail, buf, len, &got);
        if (w->early != NULL) {
            w->early_off += used;
            if (w->early_off == w->early_len) {
                free(w->early);
                w->early = NULL;
            }
        } else {
            w->rgn_off += used;
        }
        if (used == 0 && got == 0)
            break; /* the read buffer is full */
    }
    if (got > 0)
        return (ssize_t)got;
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud)
{
    struct ws *w = ud;
    struct transport *lo = w->base.lower;
    size_t n = 0;

    (void)flags;
    w->lower_w = lo->ops->write(lo, data, len, &n);
    if (w->lower_w == XPRT_OK && n > 0)
        return (ssize_t)n;
    if (w->lower_w == XPRT_OK || w->lower_w == XPRT_WANT_READ ||
        w->lower_w == XPRT_WANT_WRITE)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
};

/* ---- the transport -------------------------------------------------- */

static enum xprt_io ws_handshake(struct transport *t, char *why, size_t whylen,
                                 const struct xprt_stage **stage)
{
    struct ws *w = (struct ws *)t;
    struct transport *lo = t->lower;
    enum xprt_io r;

    if (w->hs == HS_LOWER) {
        if (lo->ops->handshake != NULL) {
            r = lo->ops->handshake(lo, why, whylen, stage);
            if (r != XPRT_OK)
                return r;
        }
        w->hs = HS_REQUEST;
    }
    *stage = &ws_stage;
    if (w->hs == HS_REQUEST) {
        r = read_request(w, why, whylen);
        if (r != XPRT_OK)
            return r;
    }
    while (w->reply_off < w->reply_len) {
        size_t n = 0;

        r = lo->ops->write(lo, w->reply + w->reply_off,
                           w->reply_len - w->reply_off, &n);
        if (r == XPRT_ERROR || r == XPRT_CLOSED) {
            snprintf(why, whylen, "%s", lo->err ? lo->err : "write error");
            return XPRT_ERROR;
        }
        if (r != XPRT_OK)
            return r;
        w->reply_off += n;
    }
    free(w->reply);
    w->reply = NULL;
    w->reply_len = w->reply_off = 0;
    if (w->hs == HS_REFUSE) {
        snprintf(why, whylen, "%s", w->why);
        return XPRT_ERROR;
    }
    if (wslay_event_context_server_init(&w->ctx, &ws_callbacks, w) != 0) {
        snprintf(why, whylen, "out of memory");
        return XPRT_ERROR;
    }
    wslay_event_config_set_no_buffering(w->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_frame);
    w->hs = HS_DONE;
    return XPRT_OK;
}

/* Send the control frames libwslay has queued (pong, close), unless a
 * data frame of ours is half written. */
static int ws_send(struct ws *w)
{
    if (w->slen > 0 || w->hlen > 0 || w->frame_left > 0 ||
        !wslay_event_want_write(w->ctx))
        return 0;
    return wslay_event_send(w->ctx);
}

static const char *code_reason(uint16_t code)
{
    switch (code) {
    case 1003:
        return "WebSocket text frame (1003)";
    case 1009:
        return "WebSocket frame too big (1009)";
    default:
        return "WebSocket protocol error (1002)";
    }
}

/* After wslay_event_recv: why reading stopped, if it did. */
static void classify(struct ws *w, int rv)
{
    struct transport *lo = w->base.lower;
    char code[8];

    if (w->violation) {
        w->rs = RS_VIOLATION;
        wslay_event_shutdown_read(w->ctx);
        (void)wslay_event_queue_close(
            w->ctx, w->vcode, (const uint8_t *)w->vwhy, strnlen(w->vwhy, 123));
        snprintf(code, sizeof(code), "%u", (unsigned)w->vcode);
        log_event(w->log, LOG_NOTICE, "ws_protocol_error",
                  "WebSocket protocol error", "ip", w->peer, "code", code,
                  "reason", w->vwhy, (const char *)NULL);
        w->base.err = code_reason(w->vcode);
    } else if (wslay_event_get_close_received(w->ctx)) {
        w->rs = RS_PEER_CLOSE;
    } else if (rv != 0 || !wslay_event_get_read_enabled(w->ctx)) {
        w->rs = rv != 0 ? RS_FAIL : RS_PROTO;
        log_event(w->log, LOG_NOTICE, "ws_protocol_error",
                  "WebSocket protocol error", "ip", w->peer, "reason",
                  rv != 0 ? "receive failed" : "refused by libwslay",
                  (const char *)NULL);
        w->base.err = "WebSocket protocol error";
    } else if (w->lower_r == XPRT_CLOSED) {
        w->rs = RS_EOF;
    } else if (w->lower_r == XPRT_ERROR) {
        w->rs = RS_LOWER_ERR;
        w->base.err = lo->err ? lo->err : "read error";
    }
}

static enum xprt_io ws_read(struct transport *t, void *buf, size_t len,
                            size_t *n)
{
    struct ws *w = (struct ws *)t;

    *n = 0;
    if (len < WS_READ_MIN) {
        t->err = "WebSocket read buffer too small";
        return XPRT_ERROR;
    }
    w->out = buf;
    w->out_cap = len;
    w->out_len = 0;
    w->rgn_off = w->rgn_end = 0;
    if (w->rs == RS_OPEN) {
        int rv;

        w->lower_r = XPRT_OK;
        rv = wslay_event_recv(w->ctx);
        classify(w, rv);
    }
    w->out = NULL;
    (void)ws_send(w);
    if (w->out_len > 0) {
        *n = w->out_len;
        return XPRT_OK;
    }
    switch (w->rs) {
    case RS_OPEN:
        return w->lower_r == XPRT_WANT_WRITE ? XPRT_WANT_WRITE : XPRT_WANT_READ;
    case RS_PEER_CLOSE:
    case RS_EOF:
        return XPRT_CLOSED;
    default:
        return XPRT_ERROR;
    }
}

/* frame_header: a server data frame's header (FIN, binary, never
 * masked) for a payload of pl bytes into h; its length. */
static size_t frame_header(uint8_t *h, size_t pl)
{
    h[0] = 0x80 | WSLAY_BINARY_FRAME;
    if (pl < 126) {
        h[1] = (uint8_t)pl;
        return 2;
    }
    if (pl < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(pl >> 8);
        h[3] = (uint8_t)pl;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)pl >> (56 - 8 * i));
    return 10;
}

/* lower_write: everything of p[*off..len) to the lower transport. */
static enum xprt_io lower_write(struct ws *w, const uint8_t *p, size_t len,
                                size_t *off)
{
    struct transport *lo = w->base.lower;

    while (*off < len) {
        size_t k = 0;
        enum xprt_io r = lo->ops->write(lo, p + *off, len - *off, &k);

        if (r == XPRT_CLOSED || r == XPRT_ERROR) {
            w->base.err = lo->err ? lo->err : "write error";
            return XPRT_ERROR;
        }
        if (r != XPRT_OK)
            return r;
        *off += k;
    }
    return XPRT_OK;
}

/*
 * ws_write: the bytes as binary frames, written by this layer (libwslay
 * only sends the control frames, between ours). A write of at most
 * WS_SMALL bytes becomes one frame copied next to its header and written
 * with one lower write; a larger one gets its header written first, then
 * the payload straight from buf, reported as it goes. No allocation
 * either way (libwslay's own queue would copy every message into a fresh
 * allocation and write header and payload apart: docs/performance.md).
 * The retry rule of transport.h holds: after WANT_*, the same bytes are
 * offered below again.
 */
static enum xprt_io ws_write(struct transport *t, const void *buf, size_t len,
                             size_t *n)
{
    struct ws *w = (struct ws *)t;
    enum xprt_io r;
    size_t k = 0;

    *n = 0;
    if (w->slen == 0 && w->hlen == 0 && w->frame_left == 0) {
        size_t pl;

        w->lower_w = XPRT_OK;
        if (ws_send(w) != 0) {
            t->err = t->lower->err ? t->lower->err : "WebSocket send failed";
            return XPRT_ERROR;
        }
        if (wslay_event_want_write(w->ctx))
            return w->lower_w == XPRT_WANT_READ ? XPRT_WANT_READ
                                                : XPRT_WANT_WRITE;
        if (!wslay_event_get_write_enabled(w->ctx) ||
            wslay_event_get_close_sent(w->ctx)) {
            t->err = "WebSocket closing";
            return XPRT_ERROR;
        }
        if (len == 0)
            return XPRT_OK;
        pl = len < WS_MSG_MAX ? len : WS_MSG_MAX;
        if (pl <= WS_SMALL) {
            size_t h = frame_header(w->sbuf, pl);

            memcpy(w->sbuf + h, buf, pl);
            w->slen = h + pl;
            w->soff = 0;
            w->spl = pl;
        } else {
            w->hlen = frame_header(w->hdr, pl);
            w->hoff = 0;
            w->frame_left = pl;
        }
    }
    if (w->slen > 0) {
        r = lower_write(w, w->sbuf, w->slen, &w->soff);
        if (r != XPRT_OK)
            return r;
        *n = w->spl;
        w->slen = w->soff = w->spl = 0;
        (void)ws_send(w); /* a pong queued meanwhile */
        return XPRT_OK;
    }
    if (w->hlen > 0) {
        r = lower_write(w, w->hdr, w->hlen, &w->hoff);
        if (r != XPRT_OK)
            return r;
        w->hlen = w->hoff = 0;
    }
    r = t->lower->ops->write(t->lower, buf,
                             len < w->frame_left ? len : w->frame_left, &k);
    if (r == XPRT_CLOSED || r == XPRT_ERROR) {
        t->err = t->lower->err ? t->lower->err : "write error";
        return XPRT_ERROR;
    }
    if (r != XPRT_OK)
        return r;
    w->frame_left -= k;
    *n = k;
    if (w->frame_left == 0)
        (void)ws_send(w);
    return XPRT_OK;
}

static size_t ws_pending(const struct transport *t)
{
    const struct ws *w = (const struct ws *)t;
    const struct transport *lo = t->lower;
    size_t p = 0;

    if (w->ctx == NULL)
        return 0;
    /* bytes left in the socket when the caller's buffer filled up keep
     * it readable: not counted, so that conn reads once per loop
     * iteration as over a plain socket */
    if (w->rs != RS_OPEN)
        p++;
    if (w->early != NULL)
        p += w->early_len - w->early_off;
    if (lo->ops->pending != NULL)
        p += lo->ops->pending(lo);
    return p;
}

static void ws_shutdown(struct transport *t)
{
    struct ws *w = (struct ws *)t;

    if (w->ctx == NULL)
        return;
    /* a close frame must not land inside a data frame: finish a small
     * one if it goes at once; after a large one cut short, no close */
    if (w->slen > 0 && lower_write(w, w->sbuf, w->slen, &w->soff) == XPRT_OK)
        w->slen = w->soff = 0;
    if (w->slen > 0 || w->hlen > 0 || w->frame_left > 0)
        return;
    (void)wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    (void)ws_send(w);
}

static void ws_free(struct transport *t)
{
    struct ws *w = (struct ws *)t;

    if (w == NULL)
        return;
    wslay_event_context_free(w->ctx);
    free(w->path);
    for (size_t i = 0; i < w->norigins; i++)
        free(w->origins[i]);
    free(w->origins);
    free(w->req);
    free(w->early);
    free(w->hdrs);
    free(w->reply);
    free(w);
}

static const struct xprt_ops ws_ops = {
    .handshake = ws_handshake,
    .read = ws_read,
    .write = ws_write,
    .pending = ws_pending,
    .shutdown = ws_shutdown,
    .free = ws_free,
    .stage = &ws_stage,
};

struct transport *transport_ws_server(const struct ws_conf *wc)
{
    struct ws *w = xcalloc(1, sizeof(*w));
    struct http_limits lim;

    w->base.ops = &ws_ops;
    w->path = wc->path != NULL ? xstrdup(wc->path) : NULL;
    if (wc->norigins > 0) {
        w->origins = xcalloc(wc->norigins, sizeof(*w->origins));
        for (size_t i = 0; i < wc->norigins; i++)
            w->origins[i] = xstrdup(wc->origins[i]);
        w->norigins = wc->norigins;
    }
    w->headers_size =
        wc->headers_size > 0 ? wc->headers_size : WS_HEADERS_SIZE_DEFAULT;
    w->max_frame = wc->max_frame;
    w->log = wc->log;
    w->peer = wc->peer ? wc->peer : "?";
    w->req_cap = w->headers_size + WS_EARLY_BYTES;
    w->req = xmalloc(w->req_cap);
    w->hdrs = xcalloc(WS_MAX_HEADERS, sizeof(*w->hdrs));
    lim.max_line = w->headers_size;
    lim.max_headers = WS_MAX_HEADERS;
    lim.max_total = w->headers_size;
    http_parser_init(&w->hp, &lim, w->hdrs);
    return &w->base;
}
