/*
 * hub.h - the meeting point of the event-loop threads (threads > 1).
 *
 * Every thread runs its own libev loop and broker "shard": the
 * connections, sessions, subscriptions and retained store it owns. A
 * client id belongs to exactly one shard (hub_owner), so a session never
 * has two owners. The hub carries the little that crosses threads, each
 * through a per-shard inbox (a mutex-protected FIFO drained in batches
 * from an ev_async, so a burst of N messages costs one wake-up):
 *
 *   HUB_MSG     a published message, routed again by the receiving shard
 *               to its own subscribers (and stored there when retained)
 *   HUB_CONN    a connection whose CONNECT names a client id another
 *               shard owns, with its unread bytes (CONNECT first)
 *   HUB_RESUME  "my backlog drained": resume publishers held for it
 *
 * Backpressure: an inbox over HUB_HIWAT messages asks its poster to hold
 * the publisher (hub_post returns true) and remembers the poster; once
 * that inbox is back under HUB_LOWAT the poster gets a HUB_RESUME.
 * HUB_CONN and HUB_RESUME travel in a separate control list that is
 * handled first and never held behind messages.
 *
 * The hub also counts each shard's subscriptions (a message is forwarded
 * only to shards holding some, or when retained), records which shards
 * hold members of each shared-subscription group (one shard serves a
 * group per message), and keeps a copy of each shard's counters for $SYS.
 */
#ifndef MQTTD_HUB_H
#define MQTTD_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

struct ev_loop;
struct hub;
struct msg;
struct conn;
struct ocsp_cache;
struct tls_staples;

#define HUB_HIWAT 16384u
#define HUB_LOWAT 4096u

enum hub_kind { HUB_MSG, HUB_CONN, HUB_RESUME };

struct hub_item {
    uint8_t kind;
    uint8_t from;   /* posting shard */
    uint16_t li;    /* HUB_CONN: listener index */
    struct msg *m;  /* HUB_MSG: one reference, owned by the item */
    struct conn *c; /* HUB_CONN: detached conn (conn_detach) */
};

/*
 * hub_fn: called on the receiving shard's loop thread for each item, in
 * posting order per poster. Return false to stop draining (the item is
 * kept and offered again after hub_kick): the shard is holding back.
 */
typedef bool (*hub_fn)(void *ud, struct hub_item *it);

/* A shard's counters as $SYS reports them (summed by hub_totals). */
struct hub_totals {
    struct broker_stats st;
    uint64_t clients;
    uint64_t sessions, sessions_offline;
    uint64_t subscriptions;
    uint64_t store_msgs, store_bytes; /* queued and in flight */
    /* connected clients with a certificate, and the soonest notAfter
     * among them (Unix time, 0 = none; the minimum over the shards) */
    uint64_t client_certs, client_cert_soonest;
};

/* hub_new: n shards (2..64). Never NULL. hub_free: after every shard has
 * been unbound; drops undelivered items (hub_item_drop). */
struct hub *hub_new(unsigned n);
void hub_free(struct hub *h);

/* hub_size: the number of shards. */
unsigned hub_size(const struct hub *h);

/*
 * hub_bind: shard idx runs on 'loop' (whose thread calls fn). Call on that
 * thread before anything is posted to it. hub_unbind stops the watcher
 * (on the same thread) and drops what is still queued; later posts to idx
 * are dropped at once.
 */
void hub_bind(struct hub *h, unsigned idx, struct ev_loop *loop, hub_fn fn,
              void *ud);
void hub_unbind(struct hub *h, unsigned idx);

/* hub_item_drop: release what an undelivered item owns (its message
 * reference, or its detached conn). */
void hub_item_drop(const struct hub_item *it);

/* hub_owner: the shard that owns client id (id, len). */
unsigned hub_owner(const struct hub *h, const char *id, size_t len);

/*
 * hub_post: queue a copy of *it for shard 'to' and wake it if it was idle.
 * Returns true when that inbox is over HUB_HIWAT: the caller should hold
 * its publisher; it then receives a HUB_RESUME (from = to) once the inbox
 * is under HUB_LOWAT.
 */
bool hub_post(struct hub *h, unsigned to, const struct hub_item *it);

/*
 * hub_post_batch: queue n items (their references and conns move to the
 * inbox) for shard 'to' from shard 'from' with one lock and at most one
 * wake-up. wait: 'from' holds publishers for this inbox and wants a
 * HUB_RESUME once it is under HUB_LOWAT. hub_backlog: items queued for
 * 'to' and not yet handled (a hint, read without the lock).
 */
void hub_post_batch(struct hub *h, unsigned to, unsigned from,
                    const struct hub_item *v, size_t n, bool wait);
size_t hub_backlog(const struct hub *h, unsigned to);

/* hub_kick: shard idx (its own thread) wants its inbox drained again
 * after fn returned false. */
void hub_kick(struct hub *h, unsigned idx);

/* hub_subs_add: shard idx gained (delta > 0) or lost subscriptions.
 * hub_subs: how many shard idx holds (a hint, read without a lock). */
void hub_subs_add(struct hub *h, unsigned idx, long delta);
bool hub_has_subs(const struct hub *h, unsigned idx);

/*
 * Shared subscriptions across shards. hub_share_join / hub_share_leave:
 * shard idx gained / lost a member of the group named by key
 * ("$share/GROUP/FILTER"). hub_share_gen: the membership generation
 * (stamped on a message when it is published). hub_share_serves: true
 * when shard idx serves the group for a message with spread value
 * 'spread' published at generation 'gen'. Every shard gives the same
 * answer whenever it routes the message: membership is taken as it was
 * at 'gen' (the last 1,024 changes are remembered), the shards holding
 * members take turns, and each turns over its own members.
 */
void hub_share_join(struct hub *h, unsigned idx, const char *key, size_t len);
void hub_share_leave(struct hub *h, unsigned idx, const char *key, size_t len);
uint32_t hub_share_gen(const struct hub *h);
bool hub_share_serves(struct hub *h, unsigned idx, uint32_t spread,
                      uint32_t gen, const char *key, size_t len);

/* hub_drain: handle shard idx's queued items now (on its own thread), so
 * that a SUBSCRIBE sees every message acknowledged before it (the
 * retained store is up to date). */
void hub_drain(struct hub *h, unsigned idx);

/* hub_totals_put: shard idx's counters; hub_totals_sum: all shards'. */
void hub_totals_put(struct hub *h, unsigned idx, const struct hub_totals *t);
void hub_totals_sum(struct hub *h, struct hub_totals *out);

/* hub_listener_count: the shared per-listener connection counters (nl of
 * them, sized by the first call; touched with atomic operations). */
size_t *hub_listener_counts(struct hub *h, size_t nl);

/* hub_ocsp: the process-wide client-certificate OCSP cache (ocsp_cache.h);
 * hub_staples: the stapled responses (tls_staple.h). Owned by the hub,
 * freed with it. */
struct ocsp_cache *hub_ocsp(struct hub *h);
struct tls_staples *hub_staples(struct hub *h);

#endif
