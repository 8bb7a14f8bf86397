/*
 * router.h - the subscription trie.
 *
 *   root
 *    +-- "a" ------+-- "b"  [subs]          filter a/b
 *    |             +-- '+'  [subs]          filter a/+
 *    |             +-- '#'  [subs]          filter a/#
 *    +-- '#' [subs]                          filter #
 *    +-- shared: "$share/g/a/+" lives at node a/+ in a group list
 *
 * Each node has a hash map of literal children plus dedicated '+' and '#'
 * slots. Matching walks the trie iteratively (an explicit heap stack, no
 * recursion, so topic depth cannot overflow the C stack) and only collects
 * hits into a caller-owned vector; ACL checks and delivery happen after the
 * walk. Owners are opaque pointers (sessions).
 */
#ifndef MQTTD_ROUTER_H
#define MQTTD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct router;

/* Subscription option flags stored with a subscription. */
#define ROUTER_NO_LOCAL 0x01u
#define ROUTER_RETAIN_AS_PUBLISHED 0x02u

/* One subscription that matched a topic. */
struct router_hit {
    void *owner;
    uint32_t sub_id; /* 0 = none */
    uint8_t qos;     /* granted QoS */
    uint8_t flags;   /* ROUTER_* */
    bool shared;     /* chosen member of a shared-subscription group */
    uint16_t share_len;
    const char *share_key; /* shared: "$share/GROUP/FILTER" (not NUL-ended;
                              valid until the router changes) */
};

/* A growable vector of hits owned by the caller; reuse it between calls
 * (router_match resets n). Free 'v' with free(). */
struct router_hits {
    struct router_hit *v;
    size_t n, cap;
};

/* router_new: an empty trie. Never NULL. */
struct router *router_new(void);

/* router_free: free the trie (not the owners). Accepts NULL. */
void router_free(struct router *r);

/*
 * router_subscribe: add or replace owner's subscription to 'filter'
 * (already validated with topic_filter_valid / topic_share_parse; may be a
 * "$share/GROUP/FILTER"). An existing subscription of the same owner to the
 * same filter is replaced (options, sub_id) and *existed is set true
 * [MQTT-3.8.4-3]. Returns 0.
 */
int router_subscribe(struct router *r, const char *filter, size_t len,
                     void *owner, uint8_t qos, uint8_t flags, uint32_t sub_id,
                     bool *existed);

/*
 * router_unsubscribe: remove owner's subscription to 'filter' (exact filter
 * string, shared or not). Returns 0 when one was removed, -1 when none
 * existed. Empty trie nodes are freed.
 */
int router_unsubscribe(struct router *r, const char *filter, size_t len,
                       void *owner);

/*
 * router_match: collect every subscription matching topic name t into
 * hits (reset first). Non-shared subscriptions give one hit each (an owner
 * with several matching filters appears several times: the caller merges).
 * Each matching shared group gives exactly one hit, its members taken in
 * round-robin order. Wildcards at the first level do not match topics
 * beginning with '$' [MQTT-4.7.2-1].
 */
void router_match(struct router *r, const char *t, size_t len,
                  struct router_hits *hits);

/* router_count: number of subscriptions held. */
size_t router_count(const struct router *r);

#endif
