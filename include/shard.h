/*
 * shard.h - one broker's place among the threads (threads > 1): its index
 * in the hub, the outboxes of messages and connections for the other
 * shards (posted once per loop iteration), the per-message stamps that
 * let every shard agree on shared-group delivery, and the hand-over of
 * TLS reload checks. A broker without a shard (threads 1) routes
 * everything itself.
 *
 *   broker_publish --shard_forward--> outbox[i] (msg refs)
 *        ev_prepare (before conn.c's writes, and again after the
 *        closes) --shard_flush--> hub_post_batch(i) --> shard i's inbox
 *   hub inbox of this shard --item callback--> the broker
 */
#ifndef MQTTD_SHARD_H
#define MQTTD_SHARD_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct ev_loop;
struct hub;
struct hub_item;
struct hub_totals;
struct msg;
struct shard;
struct ocsp_cache;
struct tls_staples;

/*
 * shard_new: the link of the broker on 'loop' to hub h as shard idx. Starts
 * the outbox flush watchers on loop and binds the inbox: every item for
 * this shard is handed to fn(ud, it) on loop's thread (hub_bind's
 * contract: false keeps the item for later). Call on loop's thread before
 * it runs. Never NULL.
 */
struct shard *shard_new(struct ev_loop *loop, struct hub *h, unsigned idx,
                        bool (*fn)(void *ud, struct hub_item *it), void *ud);

/* shard_free: unbind the inbox, stop the watchers and drop what the
 * outboxes still hold. Accepts NULL. */
void shard_free(struct shard *sh);

/* shard_index: this shard's index (0 is the first thread, which runs
 * $SYS, TLS file checks and signals). */
unsigned shard_index(const struct shard *sh);

/* shard_listener_counts: the connection counters per listener shared by
 * every shard (nl of them; owned by the hub, atomic). */
size_t *shard_listener_counts(struct shard *sh, size_t nl);

/* shard_stamp: set m's spread value and shared-group generation; call
 * once, before any other shard can see m. */
void shard_stamp(struct shard *sh, struct msg *m);

/* shard_serves: true when this shard serves the shared group 'key'
 * (len bytes) for message m (every shard computes the same answer). */
bool shard_serves(const struct shard *sh, const struct msg *m, const char *key,
                  size_t len);

/*
 * shard_forward: queue a reference to m for every other shard that holds
 * subscriptions (every other shard when m is retained: each keeps a copy
 * of the retained store). Returns true when may_hold and a destination's
 * backlog is over HUB_HIWAT: the publisher is to wait (the batch then
 * asks that shard to send HUB_RESUME once it caught up).
 */
bool shard_forward(struct shard *sh, struct msg *m, bool may_hold);

/* shard_others_have_subs: true when another shard holds subscriptions
 * (a hint, the same one shard_forward goes by). sh may be NULL (one
 * thread): false. */
bool shard_others_have_subs(const struct shard *sh);

/* shard_owns: true when this shard owns client id (id, len). */
bool shard_owns(const struct shard *sh, const char *id, size_t len);

/* shard_post_conn: queue detached connection c of listener li for the
 * shard that owns client id (id, len) (posted by shard_flush). */
void shard_post_conn(struct shard *sh, const char *id, size_t len,
                     struct conn *c, size_t li);

/* shard_flush: hand the queued items to their shards now (otherwise done
 * by the prepare watchers once per loop iteration). */
void shard_flush(struct shard *sh);

/* shard_kick: have the hub deliver this shard's inbox again (after it
 * was held). shard_drain: deliver what is in it now. */
void shard_kick(struct shard *sh);
void shard_drain(struct shard *sh);

/* shard_note_sub: this shard gained (delta 1) or lost (-1) subscription
 * 'filter' (len bytes; a $share one also as a group member). */
void shard_note_sub(struct shard *sh, const char *filter, size_t len,
                    int delta);

/* shard_totals: hand this shard's $SYS figures t to the hub; with sum,
 * replace t by the sum over every shard. */
void shard_totals(struct shard *sh, struct hub_totals *t, bool sum);

/*
 * shard_set_tls_sync / shard_tls_sync: on the first shard, fn(ud) has
 * every other shard check its TLS files and returns once they did;
 * shard_tls_sync calls it (nothing on another shard or when unset).
 */
void shard_set_tls_sync(struct shard *sh, void (*fn)(void *ud), void *ud);
void shard_tls_sync(struct shard *sh);

/* shard_ocsp, shard_staples: the hub's process-wide OCSP cache and
 * stapled responses (hub_ocsp, hub_staples). */
struct ocsp_cache *shard_ocsp(struct shard *sh);
struct tls_staples *shard_staples(struct shard *sh);

#endif
