/*
 * hashmap.c - SipHash-1-3 keyed hashing and the open-addressing map of
 * intrusive entries (see hashmap.h): seeding, insertion with table
 * rebuilds, tombstone removal. Lookup and iteration are inline in the
 * header.
 */
#include "hashmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "util.h"

/* Smallest table; a table is rebuilt when n + tombs would pass 3/4. */
#define HASHMAP_MIN_CAP 4u
#define HASHMAP_MAX_CAP (1u << 31)

/* --- SipHash-1-3 --------------------------------------------------------- */

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

uint64_t hashmap_hash(const struct hashmap_seed *seed, const void *p,
                      size_t len)
{
    const uint8_t *in = p;
    uint64_t v0 = seed->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = seed->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = seed->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = seed->k1 ^ 0x7465646279746573ULL;
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

uint64_t hashmap_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

void hashmap_seed_init(struct hashmap_seed *seed)
{
    uint64_t k[2];
    struct timespec ts;

    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = hashmap_mix64((uint64_t)(uintptr_t)seed ^ (uint64_t)ts.tv_nsec);
        k[1] = hashmap_mix64((uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_sec);
    }
    seed->k0 = k[0];
    seed->k1 = k[1];
}

void hashmap_entry_init(struct hashmap_entry *e,
                        const struct hashmap_seed *seed, const void *key,
                        size_t len)
{
    e->hash = hashmap_hash(seed, key, len);
    e->key = key;
    e->len = len;
}

/* --- the map ------------------------------------------------------------- */

void hashmap_init(struct hashmap *m)
{
    m->slots = NULL;
    m->cap = m->n = m->tombs = 0;
}

void hashmap_clear(struct hashmap *m)
{
    free(m->slots);
    hashmap_init(m);
}

/* place: put e in the first free slot of its probe sequence (no tombs). */
static void place(struct hashmap_entry **slots, size_t cap,
                  struct hashmap_entry *e)
{
    size_t mask = cap - 1, i = (size_t)e->hash & mask;

    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = e;
}

/* rebuild: a table sized for n + 1 entries at most half full, without
 * tombstones (smaller than before when most slots were tombstones). */
static void rebuild(struct hashmap *m)
{
    size_t cap = HASHMAP_MIN_CAP;
    struct hashmap_entry **slots;

    while (((size_t)m->n + 1) * 2 > cap)
        cap *= 2;
    if (cap > HASHMAP_MAX_CAP) {
        fprintf(stderr, "mqttd: hash map over %u slots\n", HASHMAP_MAX_CAP);
        abort();
    }
    slots = xcalloc(cap, sizeof(*slots));
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i] != NULL && m->slots[i] != HASHMAP_TOMB)
            place(slots, cap, m->slots[i]);
    free(m->slots);
    m->slots = slots;
    m->cap = (uint32_t)cap;
    m->tombs = 0;
}

void hashmap_insert(struct hashmap *m, struct hashmap_entry *e)
{
    size_t mask, i;

    /* keep live entries plus tombstones at or below 3/4 of the table */
    if (((size_t)m->n + m->tombs + 1) * 4 > (size_t)m->cap * 3)
        rebuild(m);
    mask = (size_t)m->cap - 1;
    for (i = (size_t)e->hash & mask; m->slots[i] != NULL; i = (i + 1) & mask)
        if (m->slots[i] == HASHMAP_TOMB) {
            m->tombs--;
            break;
        }
    m->slots[i] = e;
    m->n++;
}

int hashmap_remove(struct hashmap *m, struct hashmap_entry *e)
{
    size_t mask, i;

    if (m->n == 0)
        return -1;
    mask = (size_t)m->cap - 1;
    for (i = (size_t)e->hash & mask; m->slots[i] != e; i = (i + 1) & mask)
        if (m->slots[i] == NULL)
            return -1;
    if (--m->n == 0) {
        hashmap_clear(m);
        return 0;
    }
    m->slots[i] = HASHMAP_TOMB;
    m->tombs++;
    return 0;
}

void hashmap_shrink(struct hashmap *m)
{
    if (m->cap > HASHMAP_MIN_CAP && (size_t)m->n * 8 <= m->cap)
        rebuild(m);
}
