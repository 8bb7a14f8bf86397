/*
 * session.h - the public face of an MQTT session. Its body is private to
 * the broker core (src/broker/broker_int.h); persistence and $SYS read it
 * through snapshots and iterators and rebuild it through the restore
 * functions below, so the session's layout (the inflight slots, the queue
 * ring, the subscription index) can change without touching them.
 *
 *   persist_save --session_info / _subs_foreach / _inflight_foreach /
 *                  _queue_foreach / _rx_qos2--> file
 *   file --session_restore -> _restore_sub / _inflight / _queued /
 *          _rx_qos2 / session_will_set--> persist_load
 */
#ifndef MQTTD_SESSION_H
#define MQTTD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct msg;
struct session;

/* State of an outgoing QoS 1/2 window slot (values are in the snapshot
 * file format: do not renumber). */
enum session_infl_state {
    SESSION_INFL_FREE = 0,
    SESSION_INFL_PUBLISH = 1, /* PUBLISH sent, waiting PUBACK/PUBREC */
    SESSION_INFL_PUBREL = 2,  /* PUBREL sent, waiting PUBCOMP */
};

/* The scalar state of a session. Strings and the will are borrowed. */
struct session_info {
    const char *client_id;
    const char *username; /* NULL: none */
    size_t listener;      /* of the last connection */
    uint8_t version;
    uint32_t expiry;      /* seconds; UINT32_MAX = never, 0 = ends at close */
    double offline_since; /* ev time of the detach (meaningless online) */
    bool online;          /* a connection is attached */
    uint16_t next_pid;
    struct msg *will; /* NULL: none */
    uint32_t will_delay;
};

/* One remembered subscription. */
struct session_sub {
    const char *filter; /* not NUL-terminated when borrowed from a file */
    uint16_t len;
    uint8_t qos;
    uint8_t flags; /* ROUTER_* */
    uint8_t rh;    /* retain handling */
    uint32_t sub_id;
};

/* One message in the outgoing window or in the queue. */
struct session_item {
    struct msg *m; /* NULL for an inflight SESSION_INFL_PUBREL */
    uint16_t pid;  /* inflight only */
    uint8_t qos;
    uint8_t state; /* inflight only: enum session_infl_state */
    bool retain;
    uint8_t nsub_ids;
    uint32_t sub_ids[4];
};

/* Sizes of a session's collections. */
struct session_counts {
    size_t subs;
    size_t inflight;     /* occupied window slots */
    size_t queued;       /* messages in the queue */
    size_t queued_bytes; /* msg_size() total of the queue */
    size_t rx_qos2;      /* incoming QoS 2 ids awaiting PUBREL */
};

/* session_info: fill *out with s's scalar state (borrowed pointers, valid
 * until s changes). */
void session_info(const struct session *s, struct session_info *out);

/* session_counts: fill *out with the sizes of s's collections. */
void session_counts(const struct session *s, struct session_counts *out);

/* session_subs_foreach: fn(sub, arg) for every subscription of s, in the
 * order they were made (an unsubscribe moves the last one into its
 * place). fn must not change s. */
void session_subs_foreach(const struct session *s,
                          void (*fn)(const struct session_sub *sub, void *arg),
                          void *arg);

/* session_inflight_foreach: fn(item, arg) for every occupied window slot,
 * in slot order (the resend order). fn must not change s. */
void session_inflight_foreach(const struct session *s,
                              void (*fn)(const struct session_item *it,
                                         void *arg),
                              void *arg);

/* session_queue_foreach: fn(item, arg) for every queued message, oldest
 * first. fn must not change s. */
void session_queue_foreach(const struct session *s,
                           void (*fn)(const struct session_item *it, void *arg),
                           void *arg);

/* session_rx_qos2: the incoming QoS 2 ids awaiting PUBREL (*n of them;
 * borrowed, valid until s changes). */
const uint16_t *session_rx_qos2(const struct session *s, size_t *n);

/*
 * session_restore: a new offline session in b's registry from in
 * (client_id, username, listener, version, expiry, offline_since,
 * next_pid; the strings are copied; will and online are ignored). Returns
 * it (owned by b), or NULL when b already holds that client id.
 */
struct session *session_restore(struct broker *b,
                                const struct session_info *in);

/* session_restore_sub: subscribe s as sub says (router included).
 * Returns 0, or -1 when s already held that filter (s unchanged then). */
int session_restore_sub(struct session *s, const struct session_sub *sub);

/* session_restore_inflight: append it to s's window, taking it->m's
 * reference (NULL for a PUBREL). Returns 0, or -1 when the window already
 * holds 65535 entries (the reference is dropped then). The caller checks
 * packet ids for duplicates. */
int session_restore_inflight(struct session *s, const struct session_item *it);

/* session_restore_queued: append it to s's queue (no limits applied),
 * taking it->m's reference. */
void session_restore_queued(struct session *s, const struct session_item *it);

/* session_restore_rx_qos2: remember incoming QoS 2 id pid as awaiting
 * PUBREL (the caller checks for duplicates). */
void session_restore_rx_qos2(struct session *s, uint16_t pid);

/* session_will_set: replace s's will (takes will's reference; NULL
 * clears it) and its delay in seconds. */
void session_will_set(struct session *s, struct msg *will, uint32_t delay);

/* session_drop: remove s from its broker's registry and free it (no will
 * is published). */
void session_drop(struct session *s);

#endif
