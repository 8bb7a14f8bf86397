/*
 * hashmap.h - an open-addressing hash map of intrusive entries, keyed by
 * byte strings and hashed with SipHash-1-3 under a random per-owner key.
 *
 *   struct hashmap                       struct foo (the caller's)
 *   +-- slots[cap] -- NULL (free)        +-- ...
 *   |               -- TOMB (removed)    +-- struct hashmap_entry he
 *   |               -- &foo->he  ------> |     hash, key --> foo's bytes, len
 *   +-- cap (0 or a power of two), n, tombs
 *
 * The map stores pointers to entries embedded in the caller's structures
 * (hashmap_item() gets back to the structure) and never copies or frees a
 * key or an entry: a key's bytes must stay valid and unchanged while its
 * entry is in a map. Linear probing; a removed slot becomes a tombstone, so
 * removal never moves another entry and an iteration may remove the entry
 * it is on. The table is rebuilt on insertion when live entries and
 * tombstones would pass 3/4 of it (growing, keeping or shrinking its
 * size), on hashmap_shrink() when at most 1/8 of it is live, and freed
 * when its last entry is removed.
 *
 * Hashes come from hashmap_hash() under a struct hashmap_seed the owner
 * keeps (one seed may serve many maps, e.g. every node of a trie), drawn
 * at random by hashmap_seed_init(), so peers who choose keys (topic levels,
 * client ids) cannot aim them at one probe sequence.
 *
 * The struct bodies are in this header so that a map and an entry can be
 * embedded without a pointer hop; read and change them only through the
 * functions below. hashmap_find() and hashmap_next() are inline: they are
 * on the PUBLISH path of the router and the retained store.
 */
#ifndef MQTTD_HASHMAP_H
#define MQTTD_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A SipHash key; fill it with hashmap_seed_init(). */
struct hashmap_seed {
    uint64_t k0, k1;
};

/* Embedded in the caller's structure; set with hashmap_entry_init(). */
struct hashmap_entry {
    uint64_t hash;
    const void *key; /* borrowed: the caller's bytes */
    size_t len;
};

struct hashmap {
    struct hashmap_entry **slots; /* NULL = free, HASHMAP_TOMB = removed */
    uint32_t cap;                 /* 0 or a power of two */
    uint32_t n;                   /* live entries */
    uint32_t tombs;
};

/* A removed slot (never a valid entry address). */
#define HASHMAP_TOMB ((struct hashmap_entry *)(uintptr_t)1)

/* An empty map needs no allocation: all zero. */
#define HASHMAP_INIT                                                           \
    {                                                                          \
        NULL, 0, 0, 0                                                          \
    }

/* hashmap_item: the structure of 'type' whose member 'member' is entry e. */
#define hashmap_item(e, type, member)                                          \
    ((type *)(void *)((char *)(e)-offsetof(type, member)))

/*
 * hashmap_seed_init: a fresh random key (getrandom; when that fails, clock
 * and address bits, which are weaker but still differ per instance).
 */
void hashmap_seed_init(struct hashmap_seed *seed);

/* hashmap_hash: SipHash-1-3 of p[0..len) under seed. */
uint64_t hashmap_hash(const struct hashmap_seed *seed, const void *p,
                      size_t len);

/*
 * hashmap_mix64: spread the bits of x (the splitmix64 finaliser). Not
 * keyed: for values no peer chooses, such as pointers.
 */
uint64_t hashmap_mix64(uint64_t x);

/*
 * hashmap_entry_init: make e stand for key[0..len) (hashed under seed).
 * The bytes are not copied: they must outlive e's time in any map.
 */
void hashmap_entry_init(struct hashmap_entry *e,
                        const struct hashmap_seed *seed, const void *key,
                        size_t len);

/* hashmap_init: an empty map (the same as HASHMAP_INIT). */
void hashmap_init(struct hashmap *m);

/*
 * hashmap_clear: free the table (not the entries) and leave an empty map.
 * Walk the map with hashmap_next() first to free the entries if needed.
 */
void hashmap_clear(struct hashmap *m);

/*
 * hashmap_insert: add entry e (initialised with hashmap_entry_init under
 * the seed every other entry of m uses). Its key must not be in m yet:
 * look it up first. May rebuild the table, so it must not be called
 * while an iteration over m is going on. Aborts only on out-of-memory or
 * more than 2^31 entries.
 */
void hashmap_insert(struct hashmap *m, struct hashmap_entry *e);

/*
 * hashmap_remove: take entry e out of m (its slot becomes a tombstone; the
 * table is freed when e was the last entry). Returns 0, or -1 when e is
 * not in m. Moves no other entry, so it is safe during hashmap_next().
 */
int hashmap_remove(struct hashmap *m, struct hashmap_entry *e);

/*
 * hashmap_shrink: when at most 1/8 of m's table is live, rebuild it
 * smaller and without tombstones (removal alone never gives memory back
 * before the last entry goes). Like insertion, not during an iteration.
 */
void hashmap_shrink(struct hashmap *m);

/* hashmap_count: number of entries in m. */
static inline size_t hashmap_count(const struct hashmap *m)
{
    return m->n;
}

/*
 * hashmap_find_hashed: the entry of m for key[0..len) whose hash is 'hash'
 * (from hashmap_hash under m's seed), or NULL. Allocates nothing.
 */
static inline struct hashmap_entry *hashmap_find_hashed(const struct hashmap *m,
                                                        uint64_t hash,
                                                        const void *key,
                                                        size_t len)
{
    struct hashmap_entry *e;
    size_t mask, i;

    if (m->n == 0)
        return NULL;
    mask = (size_t)m->cap - 1;
    /* the load limit keeps at least one free slot, so this ends */
    for (i = (size_t)hash & mask; (e = m->slots[i]) != NULL; i = (i + 1) & mask)
        if (e != HASHMAP_TOMB && e->hash == hash && e->len == len &&
            memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

/*
 * hashmap_find: the entry of m for key[0..len) under seed, or NULL. An
 * empty map costs no hashing. Allocates nothing.
 */
static inline struct hashmap_entry *
hashmap_find(const struct hashmap *m, const struct hashmap_seed *seed,
             const void *key, size_t len)
{
    if (m->n == 0)
        return NULL;
    return hashmap_find_hashed(m, hashmap_hash(seed, key, len), key, len);
}

/* hashmap_find_str: hashmap_find() for a NUL-terminated key. */
static inline struct hashmap_entry *
hashmap_find_str(const struct hashmap *m, const struct hashmap_seed *seed,
                 const char *key)
{
    return hashmap_find(m, seed, key, strlen(key));
}

/*
 * hashmap_next: iteration. Start with *it = 0; each call returns the next
 * entry (in no particular order) or NULL at the end. The entry returned may
 * be removed (hashmap_remove) before the next call; inserting during an
 * iteration is not allowed.
 */
static inline struct hashmap_entry *hashmap_next(const struct hashmap *m,
                                                 size_t *it)
{
    struct hashmap_entry *e;

    while (*it < m->cap) {
        e = m->slots[(*it)++];
        if (e != NULL && e != HASHMAP_TOMB)
            return e;
    }
    return NULL;
}

#endif
