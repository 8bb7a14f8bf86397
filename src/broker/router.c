/*
 * router.c - the subscription trie (see router.h).
 *
 *   struct router
 *   +-- root (struct node)
 *   |     map[] --> "a" --+-- map[] --> "b"   subs: [owner,qos,...]
 *   |     plus  --> '+'   +-- plus  --> '+'   groups: ["g": members, cursor]
 *   |     pound --> '#'   +-- pound --> '#'
 *   +-- stk[]  explicit walk stack reused by router_match / router_free
 *
 * Every node points to its parent so unsubscribe prunes empty nodes bottom
 * up in a loop. Literal children live in a hash map (hashmap.h) keyed by
 * the level's bytes and hashed with SipHash-1-3 under a per-router random
 * key, so subscribers cannot flood one bucket. A node's subscription list gains
 * an owner index (open addressing over the list positions) once it is long,
 * keeping subscribe/unsubscribe O(1) even with many owners on one filter.
 *
 * Nothing here recurses: subscribe, unsubscribe, match and free are loops,
 * so filters and topics of any depth (65,535 levels) are safe.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "topic.h"
#include "util.h"

enum node_kind { NODE_ROOT, NODE_LITERAL, NODE_PLUS, NODE_POUND };

struct sub {
    void *owner;
    uint32_t sub_id;
    uint8_t qos;
    uint8_t flags;
};

/* Lists at most this long are searched linearly; longer ones are indexed. */
#define SUBV_INDEX_MIN 16

/* A list of subscriptions; idx[] maps owner -> position + 1 (0 = empty). */
struct sub_vec {
    struct sub *v;
    uint32_t *idx;
    size_t n, cap, idx_cap;
};

/* A shared-subscription group: "$share/NAME/filter" lives at filter's node. */
struct group {
    struct sub_vec members;
    size_t cursor; /* next member to receive a message */
    size_t name_len;
    char *name;
    char *key; /* the whole "$share/GROUP/FILTER" (router_hit.share_key) */
    size_t key_len;
};

struct node {
    struct node *parent;
    struct hashmap kids; /* literal children, by their 'he' */
    struct node *plus, *pound;
    struct sub_vec subs;
    struct group *groups;
    size_t ngroups, groups_cap;
    struct hashmap_entry he; /* in the parent's kids (literal nodes) */
    enum node_kind kind;
    char key[];
};

/* A walk position: node, and the offset of the next topic level to match
 * (len + 1 once every level has been consumed). */
struct frame {
    struct node *n;
    size_t pos;
};

struct router {
    struct node *root;
    size_t count;
    struct hashmap_seed seed; /* of every node's kids */
    struct frame *stk;
    size_t stk_cap;
};

/* --- hashing ------------------------------------------------------------ */

/* ptr_hash: spread an owner pointer over 64 bits. */
static uint64_t ptr_hash(const void *p)
{
    return hashmap_mix64((uint64_t)(uintptr_t)p);
}

/* --- subscription lists ------------------------------------------------- */

/* subv_idx_put: record that v[i] sits at position i in the owner index. */
static void subv_idx_put(struct sub_vec *sv, size_t i)
{
    size_t mask = sv->idx_cap - 1;
    size_t h = (size_t)ptr_hash(sv->v[i].owner) & mask;

    while (sv->idx[h] != 0)
        h = (h + 1) & mask;
    sv->idx[h] = (uint32_t)(i + 1);
}

/* subv_idx_build: (re)build the owner index with room for 'cap' slots. */
static void subv_idx_build(struct sub_vec *sv, size_t cap)
{
    free(sv->idx);
    sv->idx = xcalloc(cap, sizeof(*sv->idx));
    sv->idx_cap = cap;
    for (size_t i = 0; i < sv->n; i++)
        subv_idx_put(sv, i);
}

/* subv_idx_slot: index slot holding owner, or SIZE_MAX. Needs sv->idx. */
static size_t subv_idx_slot(const struct sub_vec *sv, const void *owner)
{
    size_t mask = sv->idx_cap - 1;
    size_t h = (size_t)ptr_hash(owner) & mask;

    while (sv->idx[h] != 0) {
        if (sv->v[sv->idx[h] - 1].owner == owner)
            return h;
        h = (h + 1) & mask;
    }
    return SIZE_MAX;
}

/* subv_find: position of owner's entry, or SIZE_MAX. */
static size_t subv_find(const struct sub_vec *sv, const void *owner)
{
    size_t s;

    if (sv->idx != NULL) {
        s = subv_idx_slot(sv, owner);
        return s == SIZE_MAX ? SIZE_MAX : sv->idx[s] - 1;
    }
    for (size_t i = 0; i < sv->n; i++)
        if (sv->v[i].owner == owner)
            return i;
    return SIZE_MAX;
}

/* subv_add: append s (its owner must not be in the list yet). */
static void subv_add(struct sub_vec *sv, const struct sub *s)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 2;
        sv->v = xreallocarray(sv->v, sv->cap, sizeof(*sv->v));
    }
    sv->v[sv->n++] = *s;
    if (sv->idx == NULL && sv->n <= SUBV_INDEX_MIN)
        return;
    if (sv->idx == NULL || sv->n * 2 > sv->idx_cap) {
        size_t cap = sv->idx_cap ? sv->idx_cap : 2 * SUBV_INDEX_MIN;

        while (sv->n * 2 > cap)
            cap *= 2;
        subv_idx_build(sv, cap);
    } else {
        subv_idx_put(sv, sv->n - 1);
    }
}

/* subv_idx_del: delete index slot h (backward-shift deletion). */
static void subv_idx_del(struct sub_vec *sv, size_t h)
{
    size_t mask = sv->idx_cap - 1, j = h, home;

    sv->idx[h] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (sv->idx[j] == 0)
            return;
        home = (size_t)ptr_hash(sv->v[sv->idx[j] - 1].owner) & mask;
        /* Move j back to h unless its home lies cyclically in (h, j]. */
        if (((j - home) & mask) >= ((j - h) & mask)) {
            sv->idx[h] = sv->idx[j];
            sv->idx[j] = 0;
            h = j;
        }
    }
}

/* subv_remove: remove entry i; the last entry takes its place. */
static void subv_remove(struct sub_vec *sv, size_t i)
{
    size_t last = sv->n - 1;

    if (sv->idx != NULL) {
        subv_idx_del(sv, subv_idx_slot(sv, sv->v[i].owner));
        if (i != last)
            sv->idx[subv_idx_slot(sv, sv->v[last].owner)] = (uint32_t)(i + 1);
    }
    sv->v[i] = sv->v[last];
    sv->n--;
    if (sv->n == 0) {
        free(sv->v);
        free(sv->idx);
        memset(sv, 0, sizeof(*sv));
        return;
    }
    if (sv->cap > 8 && sv->n * 4 <= sv->cap) {
        sv->cap /= 2;
        sv->v = xreallocarray(sv->v, sv->cap, sizeof(*sv->v));
    }
    if (sv->idx != NULL && sv->n <= SUBV_INDEX_MIN / 2) {
        free(sv->idx);
        sv->idx = NULL;
        sv->idx_cap = 0;
    } else if (sv->idx != NULL && sv->n * 8 <= sv->idx_cap) {
        subv_idx_build(sv, sv->idx_cap / 2);
    }
}

static void subv_free(struct sub_vec *sv)
{
    free(sv->v);
    free(sv->idx);
}

/* --- nodes and the children map ---------------------------------------- */

static struct node *node_new(struct node *parent, enum node_kind kind,
                             const char *key, size_t key_len)
{
    struct node *n = xcalloc(1, sizeof(*n) + key_len);

    n->parent = parent;
    n->kind = kind;
    if (key_len)
        memcpy(n->key, key, key_len);
    return n;
}

/* node_free: free one node's own storage (not its children). */
static void node_free(struct node *n)
{
    for (size_t i = 0; i < n->ngroups; i++) {
        subv_free(&n->groups[i].members);
        free(n->groups[i].name);
        free(n->groups[i].key);
    }
    free(n->groups);
    subv_free(&n->subs);
    hashmap_clear(&n->kids);
    free(n);
}

static bool node_empty(const struct node *n)
{
    return n->subs.n == 0 && n->ngroups == 0 && hashmap_count(&n->kids) == 0 &&
           n->plus == NULL && n->pound == NULL;
}

/* child_get: n's child for filter level [key, key_len); created if 'create'
 * is set, else NULL when missing. "+" and "#" are the wildcard slots. */
static struct node *child_get(struct router *r, struct node *n, const char *key,
                              size_t key_len, bool create)
{
    struct node **slot, *c;
    struct hashmap_entry *e;

    if (key_len == 1 && (key[0] == '+' || key[0] == '#')) {
        slot = key[0] == '+' ? &n->plus : &n->pound;
        if (*slot == NULL && create)
            *slot = node_new(n, key[0] == '+' ? NODE_PLUS : NODE_POUND, key,
                             key_len);
        return *slot;
    }
    e = hashmap_find(&n->kids, &r->seed, key, key_len);
    if (e != NULL)
        return hashmap_item(e, struct node, he);
    if (!create)
        return NULL;
    c = node_new(n, NODE_LITERAL, key, key_len);
    hashmap_entry_init(&c->he, &r->seed, c->key, key_len);
    hashmap_insert(&n->kids, &c->he);
    return c;
}

/* prune: free n and its ancestors while they hold nothing. */
static void prune(struct node *n)
{
    struct node *p;

    while (n->kind != NODE_ROOT && node_empty(n)) {
        p = n->parent;
        if (n->kind == NODE_PLUS)
            p->plus = NULL;
        else if (n->kind == NODE_POUND)
            p->pound = NULL;
        else {
            hashmap_remove(&p->kids, &n->he);
            hashmap_shrink(&p->kids);
        }
        node_free(n);
        n = p;
    }
}

/* walk_filter: the node for filter f (created when 'create'), or NULL. */
static struct node *walk_filter(struct router *r, const char *f, size_t len,
                                bool create)
{
    struct node *n = r->root, *c;
    size_t pos = 0, end;

    for (;;) {
        end = topic_level_end(f, len, pos);
        c = child_get(r, n, f + pos, end - pos, create);
        if (c == NULL) /* only when !create */
            return NULL;
        n = c;
        if (end == len)
            return n;
        pos = end + 1;
    }
}

static struct group *group_find(struct node *n, const char *name,
                                size_t name_len)
{
    for (size_t i = 0; i < n->ngroups; i++)
        if (n->groups[i].name_len == name_len &&
            memcmp(n->groups[i].name, name, name_len) == 0)
            return &n->groups[i];
    return NULL;
}

static struct group *group_add(struct node *n, const char *name,
                               size_t name_len, const char *key, size_t klen)
{
    struct group *g;

    if (n->ngroups == n->groups_cap) {
        n->groups_cap = n->groups_cap ? n->groups_cap * 2 : 1;
        n->groups = xreallocarray(n->groups, n->groups_cap, sizeof(*n->groups));
    }
    g = &n->groups[n->ngroups++];
    memset(g, 0, sizeof(*g));
    g->name = xmemdup(name, name_len);
    g->name_len = name_len;
    g->key = xmemdup(key, klen);
    g->key_len = klen;
    return g;
}

static void group_remove(struct node *n, struct group *g)
{
    subv_free(&g->members);
    free(g->name);
    free(g->key);
    *g = n->groups[--n->ngroups];
    if (n->ngroups == 0) {
        free(n->groups);
        n->groups = NULL;
        n->groups_cap = 0;
    }
}

/* --- public API --------------------------------------------------------- */

struct router *router_new(void)
{
    struct router *r = xcalloc(1, sizeof(*r));

    r->root = node_new(NULL, NODE_ROOT, NULL, 0);
    hashmap_seed_init(&r->seed);
    return r;
}

/* stk_reserve: room for at least 'need' frames on the walk stack. */
static void stk_reserve(struct router *r, size_t need)
{
    if (need <= r->stk_cap)
        return;
    r->stk_cap = r->stk_cap ? r->stk_cap : 64;
    while (r->stk_cap < need)
        r->stk_cap *= 2;
    r->stk = xreallocarray(r->stk, r->stk_cap, sizeof(*r->stk));
}

void router_free(struct router *r)
{
    struct hashmap_entry *e;
    size_t sp = 0, it;
    struct node *n;

    if (r == NULL)
        return;
    /* Iterative: every popped node pushes its children, then is freed. */
    stk_reserve(r, 1);
    r->stk[sp++].n = r->root;
    while (sp > 0) {
        n = r->stk[--sp].n;
        stk_reserve(r, sp + hashmap_count(&n->kids) + 2);
        if (n->plus != NULL)
            r->stk[sp++].n = n->plus;
        if (n->pound != NULL)
            r->stk[sp++].n = n->pound;
        for (it = 0; (e = hashmap_next(&n->kids, &it)) != NULL;)
            r->stk[sp++].n = hashmap_item(e, struct node, he);
        node_free(n);
    }
    free(r->stk);
    free(r);
}

/*
 * router_subscribe: see router.h. Defensive addition to the contract:
 * returns -1 (nothing changed) for a malformed "$share/..." filter, which
 * the caller should have refused with topic_share_parse() already.
 */
int router_subscribe(struct router *r, const char *filter, size_t len,
                     void *owner, uint8_t qos, uint8_t flags, uint32_t sub_id,
                     bool *existed)
{
    const char *gname = NULL, *inner = filter;
    size_t glen = 0, ilen = len, i;
    struct sub s = {
        .owner = owner, .sub_id = sub_id, .qos = qos, .flags = flags};
    struct sub_vec *sv;
    struct group *g;
    struct node *n;
    int shared;

    if (existed != NULL)
        *existed = false;
    shared = topic_share_parse(filter, len, &gname, &glen, &inner, &ilen);
    if (shared < 0)
        return -1;
    n = walk_filter(r, inner, ilen, true);
    if (shared) {
        g = group_find(n, gname, glen);
        if (g == NULL)
            g = group_add(n, gname, glen, filter, len);
        sv = &g->members;
    } else {
        sv = &n->subs;
    }
    i = subv_find(sv, owner);
    if (i != SIZE_MAX) { /* replace options [MQTT-3.8.4-3] */
        sv->v[i] = s;
        if (existed != NULL)
            *existed = true;
        return 0;
    }
    subv_add(sv, &s);
    r->count++;
    return 0;
}

int router_unsubscribe(struct router *r, const char *filter, size_t len,
                       void *owner)
{
    const char *gname = NULL, *inner = filter;
    size_t glen = 0, ilen = len, i;
    struct group *g = NULL;
    struct sub_vec *sv;
    struct node *n;
    int shared;

    shared = topic_share_parse(filter, len, &gname, &glen, &inner, &ilen);
    if (shared < 0)
        return -1;
    n = walk_filter(r, inner, ilen, false);
    if (n == NULL)
        return -1;
    if (shared) {
        g = group_find(n, gname, glen);
        if (g == NULL)
            return -1;
        sv = &g->members;
    } else {
        sv = &n->subs;
    }
    i = subv_find(sv, owner);
    if (i == SIZE_MAX)
        return -1;
    subv_remove(sv, i);
    r->count--;
    if (g != NULL) {
        if (g->members.n == 0)
            group_remove(n, g); /* g is invalid from here */
        else if (g->cursor >= g->members.n)
            g->cursor = 0;
    }
    prune(n);
    return 0;
}

static void hits_push(struct router_hits *hits, const struct sub *s,
                      const struct group *g)
{
    struct router_hit *h;

    if (hits->n == hits->cap) {
        hits->cap = hits->cap ? hits->cap * 2 : 16;
        hits->v = xreallocarray(hits->v, hits->cap, sizeof(*hits->v));
    }
    h = &hits->v[hits->n++];
    h->owner = s->owner;
    h->sub_id = s->sub_id;
    h->qos = s->qos;
    h->flags = s->flags;
    h->shared = g != NULL;
    h->share_key = g ? g->key : NULL;
    h->share_len = g ? g->key_len : 0;
}

/* collect: every subscription at n, and one member of each group there. */
static void collect(struct node *n, struct router_hits *hits)
{
    for (size_t i = 0; i < n->subs.n; i++)
        hits_push(hits, &n->subs.v[i], NULL);
    for (size_t i = 0; i < n->ngroups; i++) {
        struct group *g = &n->groups[i];

        /* groups are removed when they lose their last member */
        if (g->cursor >= g->members.n)
            g->cursor = 0;
        hits_push(hits, &g->members.v[g->cursor], g);
        g->cursor = (g->cursor + 1) % g->members.n;
    }
}

void router_match(struct router *r, const char *t, size_t len,
                  struct router_hits *hits)
{
    /* [MQTT-4.7.2-1]: no first-level wildcard for topics starting '$' */
    bool dollar = len > 0 && t[0] == '$';
    struct hashmap_entry *e;
    size_t sp = 0, pos, end;
    struct node *n;

    hits->n = 0;
    stk_reserve(r, 1);
    r->stk[sp++] = (struct frame){r->root, 0};
    while (sp > 0) {
        n = r->stk[--sp].n;
        pos = r->stk[sp].pos;
        if (pos > len) {
            /* every level consumed: n's own subscriptions match, and so
             * does a '#' below it ("a/#" matches "a") [MQTT-4.7.1-2] */
            collect(n, hits);
            if (n->pound != NULL)
                collect(n->pound, hits);
            continue;
        }
        end = topic_level_end(t, len, pos);
        stk_reserve(r, sp + 2);
        if (pos > 0 || !dollar) {
            if (n->pound != NULL)
                collect(n->pound, hits);
            if (n->plus != NULL)
                r->stk[sp++] = (struct frame){n->plus, end + 1};
        }
        e = hashmap_find(&n->kids, &r->seed, t + pos, end - pos);
        if (e != NULL)
            r->stk[sp++] =
                (struct frame){hashmap_item(e, struct node, he), end + 1};
    }
}

size_t router_count(const struct router *r)
{
    return r->count;
}
