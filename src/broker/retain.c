/*
 * retain.c - the retained-message store (see retain.h).
 *
 *   struct retain
 *   +-- root (struct rnode, no message)
 *   |     map[] --> "a" [msg] --+-- map[] --> "b" [msg]      topic a/b
 *   |                           +-- map[] --> ""  [msg]      topic a/
 *   |     map[] --> "$SYS" -----+-- map[] --> "x" [msg]      topic $SYS/x
 *   +-- count, bytes (sum of msg_size); sys_count, sys_bytes: the $SYS part
 *   +-- stk[]  explicit walk stack for match / foreach / free
 *
 * One node per topic level; a node holds at most one message (one
 * reference). Children are kept in a hash map (hashmap.h) keyed by the
 * level bytes (SipHash-1-3, per-store random key). Nodes point to their
 * parents so clearing a topic prunes empty nodes bottom up in a loop. No
 * function recurses, so topic depth cannot exhaust the C stack.
 */
#include "retain.h"

#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "msg.h"
#include "topic.h"
#include "util.h"

struct rnode {
    struct rnode *parent;
    struct hashmap kids;     /* children, by their 'he' */
    struct msg *m;           /* retained message, one reference, or NULL */
    struct hashmap_entry he; /* in the parent's kids (not the root) */
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
    size_t count, bytes;         /* every topic */
    size_t sys_count, sys_bytes; /* "$SYS" topics: outside the limits */
    struct hashmap_seed seed;    /* of every node's kids */
    struct rframe *stk;
    size_t stk_cap;
};

/* --- nodes and the children map ---------------------------------------- */

/* rnode_new: a child of parent for level key[0..key_len) (linked into
 * parent's map), or the root when parent is NULL. */
static struct rnode *rnode_new(struct retain *rs, struct rnode *parent,
                               const char *key, size_t key_len)
{
    struct rnode *n = xcalloc(1, sizeof(*n) + key_len);

    n->parent = parent;
    if (key_len)
        memcpy(n->key, key, key_len);
    if (parent != NULL) {
        hashmap_entry_init(&n->he, &rs->seed, n->key, key_len);
        hashmap_insert(&parent->kids, &n->he);
    }
    return n;
}

/* child: n's child for level key[0..key_len), or NULL. */
static struct rnode *child(const struct retain *rs, const struct rnode *n,
                           const char *key, size_t key_len)
{
    struct hashmap_entry *e = hashmap_find(&n->kids, &rs->seed, key, key_len);

    return e != NULL ? hashmap_item(e, struct rnode, he) : NULL;
}

/* find_topic: the node of topic t, created along the way when 'create'. */
static struct rnode *find_topic(struct retain *rs, const char *t, size_t len,
                                bool create)
{
    struct rnode *n = rs->root, *c;
    size_t pos = 0, end;

    for (;;) {
        end = topic_level_end(t, len, pos);
        c = child(rs, n, t + pos, end - pos);
        if (c == NULL) {
            if (!create)
                return NULL;
            c = rnode_new(rs, n, t + pos, end - pos);
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

    while (n->parent != NULL && n->m == NULL && hashmap_count(&n->kids) == 0) {
        p = n->parent;
        hashmap_remove(&p->kids, &n->he);
        hashmap_shrink(&p->kids);
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
    struct hashmap_entry *e;
    size_t it = 0;

    while ((e = hashmap_next(&n->kids, &it)) != NULL) {
        if (first && e->len > 0 && *(const char *)e->key == '$')
            continue;
        walk_push(w, hashmap_item(e, struct rnode, he), pos);
    }
}

/* --- public API --------------------------------------------------------- */

struct retain *retain_new(void)
{
    struct retain *rs = xcalloc(1, sizeof(*rs));

    hashmap_seed_init(&rs->seed);
    rs->root = rnode_new(rs, NULL, NULL, 0);
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
        hashmap_clear(&n->kids);
        free(n);
    }
    free(w.v);
    free(rs->stk);
    free(rs);
}

/* is_sys: topic t is "$SYS" or below it (written by the broker only). */
static bool is_sys(const char *t, size_t len)
{
    return len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/');
}

/* account: add (sign 1) or take away (-1) one message of 'size' bytes. */
static void account(struct retain *rs, bool sys, size_t size, int sign)
{
    if (sign > 0) {
        rs->count++;
        rs->bytes += size;
    } else {
        rs->count--;
        rs->bytes -= size;
    }
    if (sys) {
        rs->sys_count = sign > 0 ? rs->sys_count + 1 : rs->sys_count - 1;
        rs->sys_bytes = sign > 0 ? rs->sys_bytes + size : rs->sys_bytes - size;
    }
}

int retain_set(struct retain *rs, struct msg *m, size_t max_count,
               size_t max_bytes)
{
    size_t size = msg_size(m), old, ucount, ubytes;
    bool sys = is_sys(m->topic, m->topic_len);
    struct rnode *n;

    /* the broker's own $SYS topics neither count toward nor obey the
     * users' limits */
    if (sys)
        max_count = max_bytes = 0;
    ucount = rs->count - rs->sys_count;
    ubytes = rs->bytes - rs->sys_bytes;
    n = find_topic(rs, m->topic, m->topic_len, false);
    if (m->payload_len == 0) { /* clear [MQTT-3.3.1-6] */
        if (n != NULL && n->m != NULL) {
            account(rs, sys, msg_size(n->m), -1);
            msg_unref(n->m);
            n->m = NULL;
            prune(n);
        }
        return 0;
    }
    if (n != NULL && n->m != NULL) { /* replace [MQTT-3.3.1-5] */
        old = msg_size(n->m);
        if (max_bytes != 0 && ubytes - old + size > max_bytes)
            return -1;
        msg_ref(m);
        account(rs, sys, old, -1);
        msg_unref(n->m);
        n->m = m;
        account(rs, sys, size, 1);
        return 0;
    }
    if ((max_count != 0 && ucount + 1 > max_count) ||
        (max_bytes != 0 && ubytes + size > max_bytes))
        return -1;
    if (n == NULL)
        n = find_topic(rs, m->topic, m->topic_len, true);
    n->m = msg_ref(m);
    account(rs, sys, size, 1);
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
        end = topic_level_end(f, len, pos);
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
            c = child(rs, n, f + pos, end - pos);
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
