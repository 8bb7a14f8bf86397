/*
 * cluster_wire.c - MQTT topic <-> NATS subject mapping and the PUBLISH
 * envelope (cluster_wire.h).
 */
#include "cluster_wire.h"

#include <string.h>

#include "topic.h"
#include "util.h"

static bool plain(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

struct out {
    char *p;
    size_t n, cap;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n >= o->cap - o->n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void put_level(struct out *o, const char *l, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    put(o, "._", 2);
    for (size_t i = 0; i < n && !o->full; i++) {
        unsigned char ch = (unsigned char)l[i];
        if (plain(ch)) {
            put(o, (const char *)&l[i], 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            put(o, e, 3);
        }
    }
}

static int finish(struct out *o)
{
    if (o->full)
        return -1;
    o->p[o->n] = '\0';
    return (int)o->n;
}

static void out_init(struct out *o, char *p, size_t size)
{
    o->p = p;
    o->n = 0;
    o->cap = size < CLUSTER_WIRE_SUBJECT_MAX + 1 ? size
                                                 : CLUSTER_WIRE_SUBJECT_MAX + 1;
    o->full = size == 0;
}

int cluster_wire_subject(const char *t, size_t len, char *out, size_t size)
{
    struct out o;
    size_t start = 0;

    out_init(&o, out, size);
    put(&o, CLUSTER_WIRE_ROOT, strlen(CLUSTER_WIRE_ROOT));
    put(&o, len > 0 && t[0] == '$' ? ".d" : ".t", 2);
    for (size_t i = 0; i <= len; i++) {
        if (i == len || t[i] == '/') {
            put_level(&o, t + start, i - start);
            start = i + 1;
        }
    }
    return finish(&o);
}

int cluster_wire_filter(const char *f, size_t len, char *out, size_t size,
                        size_t *parent)
{
    struct out o;
    size_t start = 0;

    *parent = 0;
    out_init(&o, out, size);
    put(&o, CLUSTER_WIRE_ROOT, strlen(CLUSTER_WIRE_ROOT));
    put(&o, len > 0 && f[0] == '$' ? ".d" : ".t", 2);
    for (size_t i = 0; i <= len; i++) {
        if (i == len || f[i] == '/') {
            size_t n = i - start;
            if (n == 1 && f[start] == '+') {
                put(&o, ".*", 2);
            } else if (n == 1 && f[start] == '#') {
                /* "#" alone: every level below the root, no parent */
                if (start > 0)
                    *parent = o.n;
                put(&o, ".>", 2);
            } else {
                put_level(&o, f + start, n);
            }
            start = i + 1;
        }
    }
    return finish(&o);
}

static int unhex(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int cluster_wire_topic(const char *s, size_t len, char *out, size_t size)
{
    size_t rl = strlen(CLUSTER_WIRE_ROOT), i, n = 0;
    bool dollar, first = true;

    if (len < rl + 2 || memcmp(s, CLUSTER_WIRE_ROOT, rl) != 0 || s[rl] != '.' ||
        (s[rl + 1] != 't' && s[rl + 1] != 'd'))
        return -1;
    dollar = s[rl + 1] == 'd';
    i = rl + 2;
    if (i == len)
        return -1; /* no level */
    while (i < len) {
        if (s[i] != '.' || i + 1 >= len || s[i + 1] != '_')
            return -1;
        if (!first) { /* a level separator */
            if (n + 1 >= size)
                return -1;
            out[n++] = '/';
        }
        first = false;
        for (i += 2; i < len && s[i] != '.'; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '%') {
                int hi, lo;
                if (i + 2 >= len)
                    return -1;
                hi = unhex((unsigned char)s[i + 1]);
                lo = unhex((unsigned char)s[i + 2]);
                if (hi < 0 || lo < 0)
                    return -1;
                ch = (unsigned char)(hi << 4 | lo);
                /* canonical: plain bytes are never escaped; a topic
                 * name has no wildcard, NUL or separator in a level */
                if (plain(ch) || ch == 0 || ch == '+' || ch == '#' || ch == '/')
                    return -1;
                i += 2;
            } else if (!plain(ch)) {
                return -1;
            }
            if (n + 1 >= size)
                return -1;
            out[n++] = (char)ch;
        }
    }
    if (dollar != (n > 0 && out[0] == '$'))
        return -1;
    if (n >= size || !topic_name_valid(out, n) || !util_utf8_valid(out, n))
        return -1;
    out[n] = '\0';
    return (int)n;
}

void cluster_wire_header(const struct cluster_wire_msg *m,
                         uint8_t out[CLUSTER_WIRE_HEADER])
{
    uint64_t e = (uint64_t)m->expiry_at;

    out[0] = 1;
    out[1] = (uint8_t)((m->qos & 3) | (m->retain ? 4 : 0));
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(e >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[10 + i] = (uint8_t)(m->props_len >> (24 - 8 * i));
}

int cluster_wire_decode(const uint8_t *p, size_t n, struct cluster_wire_msg *m,
                        const char **why)
{
    uint64_t e = 0;
    uint32_t pl = 0;

    if (n < CLUSTER_WIRE_HEADER) {
        *why = "envelope too short";
        return -1;
    }
    if (p[0] != 1) {
        *why = "unknown envelope version";
        return -1;
    }
    if ((p[1] & 3) == 3 || (p[1] & ~7u) != 0) {
        *why = "bad envelope flags";
        return -1;
    }
    for (int i = 0; i < 8; i++)
        e = e << 8 | p[2 + i];
    for (int i = 0; i < 4; i++)
        pl = pl << 8 | p[10 + i];
    if (pl > n - CLUSTER_WIRE_HEADER ||
        n - CLUSTER_WIRE_HEADER - pl > UINT32_MAX) {
        *why = "properties length past the end";
        return -1;
    }
    m->qos = p[1] & 3;
    m->retain = (p[1] & 4) != 0;
    m->expiry_at = (int64_t)e;
    m->props = p + CLUSTER_WIRE_HEADER;
    m->props_len = pl;
    m->payload = p + CLUSTER_WIRE_HEADER + pl;
    m->payload_len = (uint32_t)(n - CLUSTER_WIRE_HEADER - pl);
    return 0;
}
