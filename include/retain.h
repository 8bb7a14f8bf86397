/*
 * retain.h - the retained-message store: one message per topic name, kept
 * in a trie of topic levels so a new subscription's filter finds its
 * retained messages without scanning every topic. Walks are iterative.
 */
#ifndef MQTTD_RETAIN_H
#define MQTTD_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg;
struct retain;

/* retain_new: an empty store. Never NULL. */
struct retain *retain_new(void);

/* retain_free: drop every message reference and free. Accepts NULL. */
void retain_free(struct retain *rs);

/*
 * retain_set: set the retained message of m->topic to m (takes a new
 * reference), replacing any previous one; a zero-length payload clears the
 * topic instead [MQTT-3.3.1-6]. Returns 0, or -1 when adding a new topic
 * would exceed max_count or replacing or adding one would exceed max_bytes
 * (0 = unlimited); then nothing changes. The limits are the users' quota:
 * they count only topics outside "$SYS" (which only the broker writes),
 * and a "$SYS" topic is never refused, so the broker's own messages cannot
 * use up the quota nor be refused once users have filled it.
 */
int retain_set(struct retain *rs, struct msg *m, size_t max_count,
               size_t max_bytes);

/*
 * retain_match: call cb(m, arg) for every retained message whose topic
 * matches the (valid, non-shared) filter f, with MQTT '$' rules. The
 * callback must not modify the store.
 */
void retain_match(struct retain *rs, const char *f, size_t len,
                  void (*cb)(struct msg *m, void *arg), void *arg);

/* retain_foreach: every retained message, in no particular order. */
void retain_foreach(struct retain *rs, void (*cb)(struct msg *m, void *arg),
                    void *arg);

/* retain_count / retain_bytes: messages held and msg_size() total, "$SYS"
 * topics included (what $SYS/broker/retained messages/count shows). */
size_t retain_count(const struct retain *rs);
size_t retain_bytes(const struct retain *rs);

#endif
