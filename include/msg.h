/*
 * msg.h - an application message, stored once and shared by reference among
 * the router, retained store, session queues and inflight windows.
 *
 *   struct msg (one allocation)
 *   +--------+------------------+--------------+-------------+
 *   | header | topic (NUL-term) | props (v5)   | payload     |
 *   +--------+------------------+--------------+-------------+
 *
 * 'props' holds the forwardable MQTT 5 properties of the PUBLISH as
 * received (Payload Format Indicator, Content Type, Response Topic,
 * Correlation Data, User Properties in order); Message Expiry, Topic Alias
 * and Subscription Identifiers are not in it: they are per delivery.
 *
 * The struct body is public because every module on the delivery path
 * reads it; only msg.c writes it, and it is immutable once created except
 * for the reference count.
 */
#ifndef MQTTD_MSG_H
#define MQTTD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    uint32_t refs;
    uint8_t qos; /* QoS it was published with */
    bool retain; /* retain flag as published */
    uint16_t topic_len;
    uint32_t props_len;
    uint32_t payload_len;
    int64_t expiry_at;  /* wall-clock Unix seconds; 0 = never expires */
    uint64_t seq;       /* broker-wide sequence number (persistence) */
    uint32_t spread;    /* threads > 1: picks the thread serving a shared
                           group (set once, before the message is shared) */
    uint32_t share_gen; /* threads > 1: shared-group membership as of the
                           publish (hub_share_gen) */
    const char *topic;  /* NUL-terminated, points inside this allocation */
    const uint8_t *props;
    const uint8_t *payload;
    char data[];
};

/*
 * msg_new: copy topic, props and payload into one new message with one
 * reference. Never returns NULL (aborts on OOM). Callers check sizes
 * against limits before calling.
 */
struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *props,
                    uint32_t props_len, const uint8_t *payload,
                    uint32_t payload_len, uint8_t qos, bool retain,
                    int64_t expiry_at);

/* msg_ref: take one more reference; returns m. */
static inline struct msg *msg_ref(struct msg *m)
{
    /* atomic: with threads > 1 one message is shared by several loops */
    __atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

/* msg_unref: drop one reference; frees on the last. Accepts NULL. */
void msg_unref(struct msg *m);

/* msg_size: bytes the message accounts for against memory limits. */
size_t msg_size(const struct msg *m);

/* msg_expired: true when the message has an expiry before 'now'. */
static inline bool msg_expired(const struct msg *m, int64_t now)
{
    return m->expiry_at != 0 && now >= m->expiry_at;
}

#endif
