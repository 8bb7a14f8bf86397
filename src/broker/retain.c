/*
 * retain.c - the retained-message store (see retain.h).
 *
 *   struct retain
 *   +-- root (struct rnode, no message)
 *   |     map[] --> "a" [msg] --+-- map[] --> "b" [msg]      topic a/b
 *   |                           +-- map[] --> ""  [msg]      topic a/
 *   |     map[] --> "$SYS" -----+-- map[] --> "x" [msg]      topic $SYS/x
 *   +-- count, bytes (sum of msg_size)
 *   +-- stk[]  explicit walk stack for match / foreach / free
 *
 * One node per topic level; a node holds at most one message (one
 * reference). Children are kept in an open-addressing hash table keyed by
 * the level bytes (SipHash-1-3, per-store random key). Nodes point to their
 * parents so clearing a topic prunes empty nodes bottom up in a loop. No
 * function recurses, so topic depth cannot exhaust the C stack.
 */
#include "retain.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "msg.h"
#include "util.h"

struct rnode {
    struct rnode *parent;
    struct rnode **map; /* children; NULL = free slot */
    size_t map_cap;     /* 0 or a power of two */
    size_t map_n;
    struct msg *m; /* retained message, one reference, or NULL */
    uint64_t hash;
    size_t key_len;
    char key[];
};

/* A walk position: node and the offset of the next filter level, or
 * len + 1 (every level consumed) or WALK_SUBTREE (emit all below). */
struct rframe {
    struct rnode *n;
    size_t pos;
};

#define WALK_SUBTREE SIZE_MAX

struct retain {
    struct rnode *root;
    size_t count, bytes;
    uint64_t k0, k1;
    struct rframe *stk;
    size_t stk_cap;
};

/* --- hashing ------------------------------------------------------------ */

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL64(v1, 13);                                                   \
        v1 ^= v0;                                                              \
        v0 = ROTL64(v0, 32);                                                   \
        v2 += v3;                                                              \
        v3 = ROTL64(v3, 16);                                                   \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL64(v3, 21);                                                   \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL64(v1, 17);                                                   \
        v1 ^= v2;                                                              \
        v2 = ROTL64(v2, 32);                                                   \
    } while (0)

/* siphash13: SipHash-1-3 of p[0..len) under key (k0, k1). */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const void *p, size_t len)
{
    const uint8_t *in = p;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, left = len & 7;
    const uint8_t *end = in + (len - left);

    for (; in != end; in += 8) {
        m = 0;
        for (i = 0; i < 8; i++)
            m |= (uint64_t)in[i] << (8 * i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < left; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* seed_key: a random SipHash key; falls back to clock and address bits. */
static void seed_key(struct retain *rs)
{
    uint64_t k[2];
    struct timespec ts;

    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)(uintptr_t)rs * 0x9e3779b97f4a7c15ULL ^
               (uint64_t)ts.tv_nsec;
        k[1] = (uint64_t)(uintptr_t)&ts * 0xbf58476d1ce4e5b9ULL ^
               (uint64_t)ts.tv_sec;
    }
    rs->k0 = k[0];
    rs->k1 = k[1];
}

/* --- nodes and the children map ---------------------------------------- */

static struct rnode *rnode_new(struct rnode *parent, const char *key,
                               size_t key_len, uint64_t hash)
{
    struct rnode *n = xcalloc(1, sizeof(*n) + key_len);

    n->parent = parent;
    n->hash = hash;
    n->key_len = key_len;
    if (key_len)
        memcpy(n->key, key, key_len);
    return n;
}

static struct rnode *map_find(const struct rnode *n, const char *key,
                              size_t key_len, uint64_t hash)
{
    size_t mask, i;
    struct rnode *c;

    if (n->map_cap == 0)
        return NULL;
    mask = n->map_cap - 1;
    for (i = (size_t)hash & mask; (c = n->map[i]) != NULL; i = (i + 1) & mask)
        if (c->hash == hash && c->key_len == key_len &&
            memcmp(c->key, key, key_len) == 0)
            return c;
    return NULL;
}

static void map_place(struct rnode **map, size_t cap, struct rnode *c)
{
    size_t mask = cap - 1, i = (size_t)c->hash & mask;

    while (map[i] != NULL)
        i = (i + 1) & mask;
    map[i] = c;
}

static void map_resize(struct rnode *n, size_t cap)
{
    struct rnode **map = xcalloc(cap, sizeof(*map));

    for (size_t i = 0; i < n->map_cap; i++)
        if (n->map[i] != NULL)
            map_place(map, cap, n->map[i]);
    free(n->map);
    n->map = map;
    n->map_cap = cap;
}

static void map_insert(struct rnode *n, struct rnode *c)
{
    if ((n->map_n + 1) * 4 > n->map_cap * 3) /* load factor <= 3/4 */
        map_resize(n, n->map_cap ? n->map_cap * 2 : 4);
    map_place(n->map, n->map_cap, c);
    n->map_n++;
}

/* map_remove: unlink child c (backward-shift deletion). */
static void map_remove(struct rnode *n, struct rnode *c)
{
    size_t mask = n->map_cap - 1, h = (size_t)c->hash & mask, j, home;

    while (n->map[h] != c)
        h = (h + 1) & mask;
    n->map[h] = NULL;
    for (j = h;;) {
        j = (j + 1) & mask;
        if (n->map[j] == NULL)
            break;
        home = (size_t)n->map[j]->hash & mask;
        /* move j into the hole unless its home is cyclically in (h, j] */
        if (((j - home) & mask) >= ((j - h) & mask)) {
            n->map[h] = n->map[j];
            n->map[j] = NULL;
            h = j;
        }
    }
    if (--n->map_n == 0) {
        free(n->map);
        n->map = NULL;
        n->map_cap = 0;
    } else if (n->map_cap > 8 && n->map_n * 8 <= n->map_cap) {
        map_resize(n, n->map_cap / 2);
    }
}

static size_t level_end(const char *s, size_t len, size_t pos)
{
    const char *slash;

    if (pos >= len)
        return len;
    slash = memchr(s + pos, '/', len - pos);
    return slash != NULL ? (size_t)(slash - s) : len;
}

/* find_topic: the node of topic t, created along the way when 'create'. */
static struct rnode *find_topic(struct retain *rs, const char *t, size_t len,
                                bool create)
{
    struct rnode *n = rs->root, *c;
    size_t pos = 0, end;
    uint64_t h;

    for (;;) {
        end = level_end(t, len, pos);
        h = siphash13(rs->k0, rs->k1, t + pos, end - pos);
        c = map_find(n, t + pos, end - pos, h);
        if (c == NULL) {
            if (!create)
                return NULL;
            c = rnode_new(n, t + pos, end - pos, h);
            map_insert(n, c);
        }
        n = c;
        if (end == len)
            return n;
        pos = end + 1;
    }
}

/* prune: free n and its ancestors while they hold nothing. */
static void prune(struct rnode *n)
{
    struct rnode *p;

    while (n->parent != NULL && n->m == NULL && n->map_n == 0) {
        p = n->parent;
        map_remove(p, n);
        free(n);
        n = p;
    }
}

/* A walk stack borrowed from the store for one call (see walk_begin). */
struct walk {
    struct rframe *v;
    size_t sp, cap;
};

/* walk_begin: take the store's stack, so a nested walk from a callback
 * (which the contract forbids, but which must not corrupt memory) would
 * allocate its own instead of sharing ours. */
static void walk_begin(struct retain *rs, struct walk *w)
{
    w->v = rs->stk;
    w->cap = rs->stk_cap;
    w->sp = 0;
    rs->stk = NULL;
    rs->stk_cap = 0;
}

/* walk_end: give the larger of the two stacks back to the store. */
static void walk_end(struct retain *rs, struct walk *w)
{
    if (rs->stk_cap >= w->cap) {
        free(w->v);
        return;
    }
    free(rs->stk);
    rs->stk = w->v;
    rs->stk_cap = w->cap;
}

static void walk_push(struct walk *w, struct rnode *n, size_t pos)
{
    if (w->sp == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->v = xreallocarray(w->v, w->cap, sizeof(*w->v));
    }
    w->v[w->sp].n = n;
    w->v[w->sp++].pos = pos;
}

/* walk_push_children: push every child of n with position pos; at the
 * first level ('first') children starting with '$' are skipped. */
static void walk_push_children(struct walk *w, struct rnode *n, size_t pos,
                               bool first)
{
    struct rnode *c;

    for (size_t i = 0; i < n->map_cap; i++) {
        c = n->map[i];
        if (c == NULL || (first && c->key_len > 0 && c->key[0] == '$'))
            continue;
        walk_push(w, c, pos);
    }
}

/* --- public API --------------------------------------------------------- */

struct retain *retain_new(void)
{
    struct retain *rs = xcalloc(1, sizeof(*rs));

    rs->root = rnode_new(NULL, NULL, 0, 0);
    seed_key(rs);
    return rs;
}

void retain_free(struct retain *rs)
{
    struct walk w;
    struct rnode *n;

    if (rs == NULL)
        return;
    walk_begin(rs, &w);
    walk_push(&w, rs->root, 0);
    while (w.sp > 0) {
        n = w.v[--w.sp].n;
        walk_push_children(&w, n, 0, false);
        msg_unref(n->m);
        free(n->map);
        free(n);
    }
    free(w.v);
    free(rs->stk);
    free(rs);
}

int retain_set(struct retain *rs, struct msg *m, size_t max_count,
               size_t max_bytes)
{
    size_t size = msg_size(m), old;
    struct rnode *n;

    n = find_topic(rs, m->topic, m->topic_len, false);
    if (m->payload_len == 0) { /* clear [MQTT-3.3.1-6] */
        if (n != NULL && n->m != NULL) {
            rs->bytes -= msg_size(n->m);
            rs->count--;
            msg_unref(n->m);
            n->m = NULL;
            prune(n);
        }
        return 0;
    }
    if (n != NULL && n->m != NULL) { /* replace [MQTT-3.3.1-5] */
        old = msg_size(n->m);
        if (max_bytes != 0 && rs->bytes - old + size > max_bytes)
            return -1;
        msg_ref(m);
        msg_unref(n->m);
        n->m = m;
        rs->bytes = rs->bytes - old + size;
        return 0;
    }
    if ((max_count != 0 && rs->count + 1 > max_count) ||
        (max_bytes != 0 && rs->bytes + size > max_bytes))
        return -1;
    if (n == NULL)
        n = find_topic(rs, m->topic, m->topic_len, true);
    n->m = msg_ref(m);
    rs->count++;
    rs->bytes += size;
    return 0;
}

void retain_match(struct retain *rs, const char *f, size_t len,
                  void (*cb)(struct msg *m, void *arg), void *arg)
{
    struct walk w;
    size_t pos, end;
    struct rnode *n, *c;

    walk_begin(rs, &w);
    walk_push(&w, rs->root, 0);
    while (w.sp > 0) {
        n = w.v[--w.sp].n;
        pos = w.v[w.sp].pos;
        if (pos == WALK_SUBTREE) { /* below a '#': everything matches */
            if (n->m != NULL)
                cb(n->m, arg);
            walk_push_children(&w, n, WALK_SUBTREE, false);
            continue;
        }
        if (pos > len) { /* every filter level consumed */
            if (n->m != NULL)
                cb(n->m, arg);
            continue;
        }
        end = level_end(f, len, pos);
        if (end - pos == 1 && f[pos] == '#') {
            /* this level and below; includes the parent ("a/#" matches
             * "a") [MQTT-4.7.1-2]; no '$' topics at the first level
             * [MQTT-4.7.2-1] */
            if (n->m != NULL)
                cb(n->m, arg);
            walk_push_children(&w, n, WALK_SUBTREE, pos == 0);
        } else if (end - pos == 1 && f[pos] == '+') {
            walk_push_children(&w, n, end + 1, pos == 0);
        } else {
            c = map_find(n, f + pos, end - pos,
                         siphash13(rs->k0, rs->k1, f + pos, end - pos));
            if (c != NULL)
                walk_push(&w, c, end + 1);
        }
    }
    walk_end(rs, &w);
}

void retain_foreach(struct retain *rs, void (*cb)(struct msg *m, void *arg),
                    void *arg)
{
    struct walk w;
    struct rnode *n;

    walk_begin(rs, &w);
    walk_push(&w, rs->root, 0);
    while (w.sp > 0) {
        n = w.v[--w.sp].n;
        if (n->m != NULL)
            cb(n->m, arg);
        walk_push_children(&w, n, 0, false);
    }
    walk_end(rs, &w);
}

size_t retain_count(const struct retain *rs)
{
    return rs->count;
}

size_t retain_bytes(const struct retain *rs)
{
    return rs->bytes;
}
