/*
 * persist.c - snapshots of the broker's durable state (see persist.h).
 *
 * Save serialises everything into one memory buffer, appends a SHA-256 of
 * it and hands it to util_write_file_atomic() (temp file, fsync, rename,
 * fsync of the directory). Load reads the whole file, checks magic,
 * version and checksum before looking at any record, then rebuilds the
 * retained store and the sessions through the core's own functions. A
 * file that fails any check is moved aside and the broker starts empty.
 *
 * Records (all integers big-endian, "str" = u16 length + bytes):
 *
 *   msg      = str topic, u32 props_len, props, u32 payload_len, payload,
 *              u8 qos, u8 retain, i64 expiry_at (wall-clock s, 0 = never)
 *   RETAINED = msg
 *   SESSION  = str client_id, u8 has_username [str username],
 *              u32 listener, u8 protocol version, u32 expiry,
 *              i64 offline_since (wall-clock s), u16 next_pid,
 *              u32 nsubs   { str filter, u8 qos, u8 flags, u8 rh,
 *                            u32 sub_id }
 *              u16 ninfl   { u16 pid, u8 qos, u8 state, u8 retain,
 *                            u8 nids, u32 ids[nids],
 *                            msg (only when state == SESSION_INFL_PUBLISH) }
 *              u32 nqueue  { u8 qos, u8 retain, u8 nids, u32 ids[nids],
 *                            msg }
 *              u16 nrx     { u16 pid }
 *              u8 has_will [u32 will_delay, msg]
 *
 * Every count and length read back is checked against the bytes left in
 * its record before anything is allocated; nothing recurses.
 */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "mqtt_codec.h"
#include "msg.h"
#include "retain.h"
#include "router.h"
#include "session.h"
#include "topic.h"
#include "util.h"

#define PERSIST_MAGIC "MQTTDDB\0"
#define PERSIST_MAGIC_LEN 8
#define PERSIST_VERSION 1u
#define PERSIST_HDR_LEN (PERSIST_MAGIC_LEN + 4)
#define PERSIST_SUM_LEN 32
/* Largest file accepted on load (and produced on save). */
#define PERSIST_MAX_FILE ((uint64_t)4 << 30)

enum rec_type {
    REC_RETAINED = 1,
    REC_SESSION = 2,
};

/* Smallest encodings, for "count fits in what is left" checks. */
#define MSG_MIN_LEN (2 + 1 + 4 + 4 + 1 + 1 + 8)
#define SUB_MIN_LEN (2 + 1 + 1 + 1 + 1 + 4)
#define INFL_MIN_LEN (2 + 1 + 1 + 1 + 1)
#define QITEM_MIN_LEN (1 + 1 + 1 + MSG_MIN_LEN)

/* ---- writing ---------------------------------------------------------- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

static void wb_reserve(struct wbuf *w, size_t n)
{
    size_t ncap;

    if (w->cap - w->len >= n)
        return;
    ncap = w->cap ? w->cap : 4096;
    while (ncap - w->len < n) {
        if (ncap > SIZE_MAX / 2)
            abort(); /* cannot happen: memory would run out first */
        ncap *= 2;
    }
    w->p = xrealloc(w->p, ncap);
    w->cap = ncap;
}

static void wb_put(struct wbuf *w, const void *p, size_t n)
{
    wb_reserve(w, n);
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void wb_u8(struct wbuf *w, uint8_t v)
{
    wb_put(w, &v, 1);
}

static void wb_u16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    wb_put(w, b, 2);
}

static void wb_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};

    wb_put(w, b, 4);
}

static void wb_i64(struct wbuf *w, int64_t sv)
{
    uint64_t v = (uint64_t)sv;

    wb_u32(w, (uint32_t)(v >> 32));
    wb_u32(w, (uint32_t)v);
}

/* A string of at most 65535 bytes (client ids, usernames, filters and
 * topics are bounded by MQTT's u16 string length). */
static void wb_str(struct wbuf *w, const char *s, size_t len)
{
    wb_u16(w, (uint16_t)len);
    wb_put(w, s, len);
}

static void wb_msg(struct wbuf *w, const struct msg *m)
{
    wb_str(w, m->topic, m->topic_len);
    wb_u32(w, m->props_len);
    wb_put(w, m->props, m->props_len);
    wb_u32(w, m->payload_len);
    wb_put(w, m->payload, m->payload_len);
    wb_u8(w, m->qos);
    wb_u8(w, m->retain ? 1 : 0);
    wb_i64(w, m->expiry_at);
}

static void wb_ids(struct wbuf *w, const uint32_t *ids, uint8_t n)
{
    wb_u8(w, n);
    for (uint8_t i = 0; i < n; i++)
        wb_u32(w, ids[i]);
}

/* Start a record: type and a length placeholder; returns the offset of
 * the placeholder for rec_end. */
static size_t rec_begin(struct wbuf *w, uint8_t type)
{
    size_t at;

    wb_u8(w, type);
    at = w->len;
    wb_u32(w, 0);
    return at;
}

/* Patch the record length. Returns 0, or -1 when the body is over 4 GiB. */
static int rec_end(struct wbuf *w, size_t at)
{
    size_t body = w->len - at - 4;

    if ((uint64_t)body > UINT32_MAX)
        return -1;
    w->p[at] = (uint8_t)(body >> 24);
    w->p[at + 1] = (uint8_t)(body >> 16);
    w->p[at + 2] = (uint8_t)(body >> 8);
    w->p[at + 3] = (uint8_t)body;
    return 0;
}

struct save_ctx {
    struct wbuf *w;
    int64_t now;
    int rc;
};

static void save_retained(struct msg *m, void *arg)
{
    struct save_ctx *sc = arg;
    size_t at;

    if (sc->rc < 0 || msg_expired(m, sc->now))
        return;
    at = rec_begin(sc->w, REC_RETAINED);
    wb_msg(sc->w, m);
    if (rec_end(sc->w, at) < 0)
        sc->rc = -1;
}

static void save_sub(const struct session_sub *sb, void *arg)
{
    struct wbuf *w = arg;

    wb_str(w, sb->filter, sb->len);
    wb_u8(w, sb->qos);
    wb_u8(w, sb->flags);
    wb_u8(w, sb->rh);
    wb_u32(w, sb->sub_id);
}

static void save_inflight(const struct session_item *f, void *arg)
{
    struct wbuf *w = arg;

    wb_u16(w, f->pid);
    wb_u8(w, f->qos);
    wb_u8(w, f->state);
    wb_u8(w, f->retain ? 1 : 0);
    wb_ids(w, f->sub_ids, f->nsub_ids);
    if (f->state == SESSION_INFL_PUBLISH)
        wb_msg(w, f->m);
}

static void save_queued(const struct session_item *qi, void *arg)
{
    struct wbuf *w = arg;

    wb_u8(w, qi->qos);
    wb_u8(w, qi->retain ? 1 : 0);
    wb_ids(w, qi->sub_ids, qi->nsub_ids);
    wb_msg(w, qi->m);
}

/* One REC_SESSION record (sessions that end at disconnect are skipped). */
static void save_session(struct session *s, void *arg)
{
    struct save_ctx *sc = arg;
    struct wbuf *w = sc->w;
    struct session_info si;
    struct session_counts n;
    const uint16_t *rx;
    size_t nrx, at;

    session_info(s, &si);
    if (sc->rc < 0 || si.expiry == 0)
        return;
    session_counts(s, &n);
    at = rec_begin(w, REC_SESSION);
    wb_str(w, si.client_id, strlen(si.client_id));
    wb_u8(w, si.username ? 1 : 0);
    if (si.username)
        wb_str(w, si.username, strlen(si.username));
    wb_u32(w, (uint32_t)si.listener);
    wb_u8(w, si.version);
    wb_u32(w, si.expiry);
    /* an online session is saved as if it went offline now: after a
     * restart its client is gone */
    wb_i64(w, si.online ? sc->now : (int64_t)si.offline_since);
    wb_u16(w, si.next_pid);

    wb_u32(w, (uint32_t)n.subs);
    session_subs_foreach(s, save_sub, w);
    wb_u16(w, (uint16_t)n.inflight);
    session_inflight_foreach(s, save_inflight, w);
    wb_u32(w, (uint32_t)n.queued);
    session_queue_foreach(s, save_queued, w);

    rx = session_rx_qos2(s, &nrx);
    wb_u16(w, (uint16_t)nrx);
    for (size_t i = 0; i < nrx; i++)
        wb_u16(w, rx[i]);

    wb_u8(w, si.will ? 1 : 0);
    if (si.will) {
        wb_u32(w, si.will_delay);
        wb_msg(w, si.will);
    }
    if (rec_end(w, at) < 0)
        sc->rc = -1;
}

/* Serialise b into w (magic, version, records, checksum). Returns 0 or -1
 * (a record or the whole file over the format's limits). */
static int serialise(struct broker *b, struct wbuf *w, char *err, size_t errlen)
{
    struct save_ctx sc = {w, (int64_t)time(NULL), 0};
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    wb_put(w, PERSIST_MAGIC, PERSIST_MAGIC_LEN);
    wb_u32(w, PERSIST_VERSION);
    retain_foreach(broker_retain(b), save_retained, &sc);
    broker_session_foreach(b, save_session, &sc);
    if (sc.rc < 0 || (uint64_t)w->len + PERSIST_SUM_LEN > PERSIST_MAX_FILE) {
        snprintf(err, errlen, "snapshot too large for the file format");
        return -1;
    }
    if (EVP_Digest(w->p, w->len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != PERSIST_SUM_LEN) {
        snprintf(err, errlen, "SHA-256 failed");
        return -1;
    }
    wb_put(w, md, PERSIST_SUM_LEN);
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

/* A bounded reader over one record. 'bad' is sticky: after a short read
 * every later read returns zero/NULL, and callers check it before they
 * allocate or commit anything. */
struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static size_t rb_left(const struct rbuf *r)
{
    return r->bad ? 0 : r->len - r->off;
}

static const uint8_t *rb_take(struct rbuf *r, size_t n)
{
    const uint8_t *p;

    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    p = r->p + r->off;
    r->off += n;
    return p;
}

static uint8_t rb_u8(struct rbuf *r)
{
    const uint8_t *p = rb_take(r, 1);

    return p ? p[0] : 0;
}

static uint16_t rb_u16(struct rbuf *r)
{
    const uint8_t *p = rb_take(r, 2);

    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

static uint32_t rb_u32(struct rbuf *r)
{
    const uint8_t *p = rb_take(r, 4);

    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                   ((uint32_t)p[2] << 8) | p[3]
             : 0;
}

static int64_t rb_i64(struct rbuf *r)
{
    uint64_t hi = rb_u32(r), lo = rb_u32(r);

    return (int64_t)((hi << 32) | lo);
}

/* A u16-length string; *len set. NULL when short. */
static const char *rb_str(struct rbuf *r, size_t *len)
{
    uint16_t n = rb_u16(r);
    const uint8_t *p = rb_take(r, n);

    *len = p ? n : 0;
    return (const char *)p;
}

/* A UTF-8 string without NUL, up to 65535 bytes (empty only when
 * allow_empty), duplicated. NULL when short or invalid (nothing allocated
 * then). */
static char *rb_strdup(struct rbuf *r, bool allow_empty)
{
    size_t n;
    const char *p = rb_str(r, &n);

    if (p == NULL || (n == 0 && !allow_empty) || !util_utf8_valid(p, n)) {
        r->bad = true;
        return NULL;
    }
    return xstrndup(p, n);
}

/* Decode one message. NULL (nothing allocated) when short or invalid. */
static struct msg *rb_msg(struct rbuf *r)
{
    size_t tlen;
    const char *topic = rb_str(r, &tlen);
    uint32_t props_len = rb_u32(r);
    const uint8_t *props = rb_take(r, props_len);
    uint32_t payload_len = rb_u32(r);
    const uint8_t *payload = rb_take(r, payload_len);
    uint8_t qos = rb_u8(r), retain = rb_u8(r);
    int64_t expiry_at = rb_i64(r);

    if (r->bad || topic == NULL || !topic_name_valid(topic, tlen) ||
        !util_utf8_valid(topic, tlen) || qos > 2 || retain > 1 ||
        expiry_at < 0) {
        r->bad = true;
        return NULL;
    }
    return msg_new(topic, tlen, props, props_len, payload, payload_len, qos,
                   retain != 0, expiry_at);
}

/* Subscription identifiers of an inflight/queue entry. */
static int rb_ids(struct rbuf *r, uint32_t *ids, uint8_t *n)
{
    uint8_t cnt = rb_u8(r);

    if (cnt > 4) {
        r->bad = true;
        return -1;
    }
    for (uint8_t i = 0; i < cnt; i++) {
        ids[i] = rb_u32(r);
        if (ids[i] == 0 || ids[i] > 268435455) {
            r->bad = true;
            return -1;
        }
    }
    *n = cnt;
    return r->bad ? -1 : 0;
}

static int load_retained(struct broker *b, struct rbuf *r, int64_t now,
                         const char **why)
{
    struct msg *m = rb_msg(r);

    if (m == NULL) {
        *why = "bad retained message";
        return -1;
    }
    if (!msg_expired(m, now))
        retain_set(broker_retain(b), m, 0, 0); /* limits off while loading */
    msg_unref(m);
    return 0;
}

static int load_subs(struct session *s, struct rbuf *r)
{
    uint32_t n = rb_u32(r);

    if (r->bad || n > rb_left(r) / SUB_MIN_LEN)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        size_t flen, ilen;
        const char *f = rb_str(r, &flen), *g, *inner;
        size_t glen;
        uint8_t qos = rb_u8(r), flags = rb_u8(r), rh = rb_u8(r);
        uint32_t sub_id = rb_u32(r);
        int sh;
        struct session_sub sb;

        if (r->bad || f == NULL || flen == 0 || !util_utf8_valid(f, flen))
            return -1;
        inner = f;
        ilen = flen;
        sh = topic_share_parse(f, flen, &g, &glen, &inner, &ilen);
        if (sh < 0 || !topic_filter_valid(inner, ilen) || qos > 2 ||
            (flags & ~(ROUTER_NO_LOCAL | ROUTER_RETAIN_AS_PUBLISHED)) ||
            rh > 2 || sub_id > 268435455)
            return -1;
        sb = (struct session_sub){f, (uint16_t)flen, qos, flags, rh, sub_id};
        if (session_restore_sub(s, &sb) < 0)
            return -1; /* the same filter twice */
    }
    return 0;
}

/* The outgoing window: resent (PUBLISH with DUP, or PUBREL) when the
 * client comes back [MQTT-4.4.0-1]. */
static int load_inflight(struct session *s, struct rbuf *r)
{
    uint16_t n = rb_u16(r);
    uint8_t *seen;
    int rc = -1;

    if (r->bad || n > rb_left(r) / INFL_MIN_LEN)
        return -1;
    if (n == 0)
        return 0;
    seen = xcalloc(65536 / 8, 1);
    for (uint16_t i = 0; i < n; i++) {
        struct session_item it = {0};
        uint16_t pid = rb_u16(r);
        uint8_t qos = rb_u8(r), state = rb_u8(r), retain = rb_u8(r);

        if (rb_ids(r, it.sub_ids, &it.nsub_ids) < 0)
            goto fail;
        if (pid == 0 || (seen[pid / 8] & (1u << (pid % 8))) || qos < 1 ||
            qos > 2 || retain > 1 ||
            (state != SESSION_INFL_PUBLISH && state != SESSION_INFL_PUBREL) ||
            (state == SESSION_INFL_PUBREL && qos != 2))
            goto fail;
        seen[pid / 8] |= (uint8_t)(1u << (pid % 8));
        if (state == SESSION_INFL_PUBLISH) {
            it.m = rb_msg(r);
            if (it.m == NULL)
                goto fail;
        }
        it.pid = pid;
        it.qos = qos;
        it.state = state;
        it.retain = retain != 0;
        if (session_restore_inflight(s, &it) < 0)
            goto fail;
    }
    rc = 0;
fail:
    free(seen);
    return rc; /* on failure broker_clear releases what was loaded */
}

static int load_queue(struct session *s, struct rbuf *r)
{
    uint32_t n = rb_u32(r);

    if (r->bad || n > rb_left(r) / QITEM_MIN_LEN)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        struct session_item it = {0};
        uint8_t qos = rb_u8(r), retain = rb_u8(r);

        if (rb_ids(r, it.sub_ids, &it.nsub_ids) < 0 || qos > 2 || retain > 1)
            return -1;
        it.m = rb_msg(r);
        if (it.m == NULL)
            return -1;
        it.qos = qos;
        it.retain = retain != 0;
        session_restore_queued(s, &it);
    }
    return 0;
}

/* Incoming QoS 2 ids awaiting PUBREL: a resent PUBLISH with one of them
 * is acknowledged but not delivered again [MQTT-4.3.3-10]. */
static int load_rx_qos2(struct session *s, struct rbuf *r)
{
    uint16_t n = rb_u16(r);
    uint8_t *seen;
    int rc = -1;

    if (r->bad || n > rb_left(r) / 2)
        return -1;
    if (n == 0)
        return 0;
    seen = xcalloc(65536 / 8, 1);
    for (uint16_t i = 0; i < n; i++) {
        uint16_t pid = rb_u16(r);
        if (pid == 0 || (seen[pid / 8] & (1u << (pid % 8))))
            goto fail;
        seen[pid / 8] |= (uint8_t)(1u << (pid % 8));
        session_restore_rx_qos2(s, pid);
    }
    rc = 0;
fail:
    free(seen);
    return rc;
}

static int load_session(struct broker *b, struct rbuf *r, int64_t now,
                        const char **why)
{
    const struct conf *cf = broker_conf(b);
    struct session *s = NULL;
    struct session_info si = {0};
    char *id, *user = NULL;
    uint8_t has_user, version, has_will;
    uint32_t listener, expiry;
    int64_t offline;

    *why = "bad session record";
    id = rb_strdup(r, false);
    if (id == NULL)
        return -1;
    has_user = rb_u8(r);
    if (has_user > 1 || (has_user && (user = rb_strdup(r, true)) == NULL))
        goto fail;
    listener = rb_u32(r);
    version = rb_u8(r);
    expiry = rb_u32(r);
    offline = rb_i64(r);
    if (r->bad || version < MQTT_V31 || version > MQTT_V5 || expiry == 0 ||
        offline < 0)
        goto fail;
    if (broker_session_find(b, id) != NULL) {
        *why = "the same client id twice";
        goto fail;
    }
    if (listener >= cf->nlisteners) {
        if (cf->nlisteners > 0)
            LOG_W(broker_log(b),
                  "Persistence: session %s was on listener #%u, which no "
                  "longer exists; using the first listener.",
                  id, (unsigned)listener);
        listener = 0;
    }
    si.client_id = id;
    si.username = user;
    si.listener = listener;
    si.version = version;
    si.expiry = expiry;
    si.offline_since = (double)offline;
    si.next_pid = rb_u16(r);
    s = session_restore(b, &si); /* from here on the broker owns it */
    free(id);
    free(user);
    if (s == NULL)
        return -1;
    if (load_subs(s, r) < 0 || load_inflight(s, r) < 0 ||
        load_queue(s, r) < 0 || load_rx_qos2(s, r) < 0)
        return -1;
    has_will = rb_u8(r);
    if (r->bad || has_will > 1)
        return -1;
    if (has_will) {
        uint32_t delay = rb_u32(r);
        struct msg *w = rb_msg(r);
        if (w == NULL)
            return -1;
        session_will_set(s, w, delay);
    }
    /* expired while the broker was down: drop it now rather than at the
     * first tick */
    if (expiry != UINT32_MAX && now - offline >= (int64_t)expiry)
        session_drop(s);
    return 0;
fail:
    free(id);
    free(user);
    return -1;
}

/* Check the framing and rebuild b. Returns 0, or -1 with *why set. */
static int decode(struct broker *b, const uint8_t *p, size_t len,
                  const char **why)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    struct rbuf all;
    uint32_t version;
    int64_t now = (int64_t)time(NULL);

    if (len < PERSIST_HDR_LEN + PERSIST_SUM_LEN) {
        *why = "truncated";
        return -1;
    }
    if (memcmp(p, PERSIST_MAGIC, PERSIST_MAGIC_LEN) != 0) {
        *why = "not an mqttd persistence file (bad magic)";
        return -1;
    }
    version = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) |
              ((uint32_t)p[10] << 8) | p[11];
    if (version != PERSIST_VERSION) {
        *why = "unsupported format version";
        return -1;
    }
    len -= PERSIST_SUM_LEN;
    if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != PERSIST_SUM_LEN) {
        *why = "SHA-256 failed";
        return -1;
    }
    if (!util_ct_memeq(md, p + len, PERSIST_SUM_LEN)) {
        *why = "checksum mismatch (corrupt or truncated)";
        return -1;
    }
    all = (struct rbuf){p, len, PERSIST_HDR_LEN, false};
    while (rb_left(&all) > 0) {
        uint8_t type = rb_u8(&all);
        uint32_t rlen = rb_u32(&all);
        const uint8_t *body = rb_take(&all, rlen);
        struct rbuf r = {body, rlen, 0, false};
        int rc = 0;

        if (body == NULL) {
            *why = "record runs past the end of the file";
            return -1;
        }
        switch (type) {
        case REC_RETAINED:
            rc = load_retained(b, &r, now, why);
            break;
        case REC_SESSION:
            rc = load_session(b, &r, now, why);
            break;
        default:
            /* a later minor addition: skip it */
            LOG_W(broker_log(b),
                  "Persistence: skipping unknown record type %u.",
                  (unsigned)type);
            continue;
        }
        if (rc < 0)
            return -1;
        if (r.bad || r.off != r.len) {
            *why = "record length does not match its contents";
            return -1;
        }
    }
    return 0;
}

/* Read all of fd (a regular file of at most PERSIST_MAX_FILE bytes). */
static int read_all(int fd, uint8_t **out, size_t *outlen, bool *too_big)
{
    struct stat st;
    size_t cap, len = 0;
    uint8_t *buf;

    *too_big = false;
    if (fstat(fd, &st) == -1)
        return -1;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)st.st_size > PERSIST_MAX_FILE) {
        *too_big = true;
        return 0;
    }
    cap = (size_t)st.st_size + 1; /* +1: notice growth while reading */
    buf = xmalloc(cap);
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            if ((uint64_t)cap > PERSIST_MAX_FILE) {
                free(buf);
                *too_big = true;
                return 0;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
    *out = buf;
    *outlen = len;
    return 0;
}

int persist_load(struct broker *b, const char *path, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    bool too_big;
    const char *why = NULL;
    char aside[4096];
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open persistence file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (read_all(fd, &buf, &len, &too_big) < 0) {
        snprintf(err, errlen, "cannot read persistence file %s: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    if (too_big)
        why = "larger than 4 GiB";
    else if (decode(b, buf, len, &why) == 0) {
        free(buf);
        LOG_N(broker_log(b),
              "Loaded the persistence file %s: %zu retained messages, "
              "%zu sessions.",
              path, retain_count(broker_retain(b)), broker_session_count(b));
        return 0;
    }
    free(buf);
    broker_clear(b);
    if (snprintf(aside, sizeof(aside), "%s.corrupt-%lld", path,
                 (long long)time(NULL)) >= (int)sizeof(aside)) {
        snprintf(err, errlen, "persistence file %s is corrupt (%s)", path, why);
        return -1;
    }
    if (rename(path, aside) == -1) {
        snprintf(err, errlen,
                 "persistence file %s is corrupt (%s) and cannot be moved "
                 "aside: %s",
                 path, why, strerror(errno));
        return -1;
    }
    LOG_E(broker_log(b),
          "Persistence file %s is corrupt (%s): moved it to %s; starting "
          "with no retained messages and no sessions.",
          path, why, aside);
    return 0;
}

int persist_save(struct broker *b, const char *path, char *err, size_t errlen)
{
    struct wbuf w = {NULL, 0, 0};
    int rc = -1;

    if (serialise(b, &w, err, errlen) < 0)
        goto fail;
    if (util_write_file_atomic(path, w.p, w.len, 0600) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    rc = 0;
fail:
    free(w.p);
    return rc;
}

pid_t persist_save_bg(struct broker *b, const char *path, char *err,
                      size_t errlen)
{
    pid_t pid;

    /* empty the stdio buffers so the child cannot write them twice */
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        char e[512];
        int rc = persist_save(b, path, e, sizeof(e));
        if (rc < 0) {
            LOG_E(broker_log(b), "Saving the persistence file failed: %s", e);
            fflush(NULL);
        }
        _exit(rc < 0 ? 1 : 0); /* no atexit handlers, no libev */
    }
    return pid;
}
