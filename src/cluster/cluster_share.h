/*
 * cluster_share.h - shared subscriptions across nodes (docs/cluster.md).
 *
 * Each node with local members of "$share/GROUP/FILTER" queue-subscribes
 * the filter's subjects in the shared subject space ("mqtts." + the
 * subject without its "mqtt." root) with a queue group named after
 * (GROUP, FILTER), on a second NATS connection of its own; every node
 * publishes each message there too. NATS gives each message to one
 * member node per group, which gives it to one local member. The broker
 * no longer routes messages to shared groups itself
 * (broker_set_share_hook). Internal to src/cluster; loop thread only.
 */
#ifndef MQTTD_CLUSTER_SHARE_H
#define MQTTD_CLUSTER_SHARE_H

#include <stddef.h>
#include <stdint.h>

struct cluster;
struct cluster_share;
struct msg;

/* cluster_share_new: open the shared-delivery connection (first attempt
 * now, like the main one; then reconnecting forever) and hook the
 * broker's subscriptions. Call with every signal blocked (cnats threads
 * start). Returns NULL with a message in err when cnats refuses. */
struct cluster_share *cluster_share_new(struct cluster *cl, char *err,
                                        size_t errlen);

/* cluster_share_free: unhook the broker, close the connection, free.
 * Accepts NULL. */
void cluster_share_free(struct cluster_share *cs);

/*
 * cluster_share_publish: this node's client published m (after local
 * routing; broker not routing): publish its envelope data (n bytes) with
 * topic subject subj (cluster_wire_subject) into the shared space (on the
 * main connection, buffered by cnats), for the groups of every node.
 * When either connection is not up, or subj is NULL (the topic has no
 * subject), m goes to this node's matching groups instead (one member
 * each), and not to NATS.
 */
void cluster_share_publish(struct cluster_share *cs, const struct msg *m,
                           const char *subj, const uint8_t *data, size_t n);

#endif
