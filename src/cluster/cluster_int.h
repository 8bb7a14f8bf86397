/*
 * cluster_int.h - what the parts of cluster mode share (src/cluster only).
 *
 * cluster.c owns the NATS connection (driven by the loop, nats_ev.c), the
 * JetStream context and the worker thread for blocking calls
 * (cluster_work.h). Each cluster behaviour (retained store, shared
 * subscriptions, client-id ownership, sessions, wills) lives in its own
 * file and reaches these through the accessors below.
 *
 * Threading: everything here is called on the loop thread, except that
 * cluster_nc() and cluster_js() may be used by jobs on the worker thread.
 * Never make a blocking NATS call (JetStream, key-value, request) on the
 * loop thread: the loop reads the replies, so it would wait forever.
 */
#ifndef MQTTD_CLUSTER_INT_H
#define MQTTD_CLUSTER_INT_H

#include <nats/nats.h>

struct broker;
struct cluster;
struct msg;
struct cluster_work;
struct ev_loop;
struct log;

struct ev_loop *cluster_loop(const struct cluster *cl);
struct broker *cluster_broker(const struct cluster *cl);
struct log *cluster_log(const struct cluster *cl);
/* this node's name (cluster_node_name or the host name) */
const char *cluster_node(const struct cluster *cl);
natsConnection *cluster_nc(const struct cluster *cl);
/* the JetStream context of cluster_nc (default options) */
jsCtx *cluster_js(const struct cluster *cl);
struct cluster_work *cluster_work_q(const struct cluster *cl);
/*
 * cluster_kv: open the key-value bucket named bucket into *kv, creating it
 * when missing (history 1; entries expire ttl ns after their last write,
 * 0: never). Creation is idempotent, so any node may start first. Worker
 * thread only (blocking). Returns the cnats status (*kv NULL unless OK).
 */
natsStatus cluster_kv(struct cluster *cl, const char *bucket, int64_t ttl,
                      kvStore **kv);

/* the options the main connection was made with (cnats copied them at its
 * connect: a second connection may change and reuse them) */
natsOptions *cluster_opts(const struct cluster *cl);

/* Called on the loop for each message of a cluster_subscribe
 * subscription; the message is destroyed after the call. */
typedef void (*cluster_msg_fn)(void *ud, natsMsg *m);

/*
 * cluster_subscribe: a synchronous subscription to subject (queue group
 * queue, or NULL) on cluster_nc whose messages are handed to fn(ud, msg)
 * on the loop after every read, in order, with no pending limit. Returns
 * the subscription (owned by the cluster: destroyed by cluster_free or
 * cluster_unsubscribe), or NULL with the cnats status in *st.
 */
natsSubscription *cluster_subscribe(struct cluster *cl, const char *subject,
                                    const char *queue, cluster_msg_fn fn,
                                    void *ud, natsStatus *st);

/* cluster_unsubscribe: stop and destroy a cluster_subscribe
 * subscription (loop thread). Accepts NULL. */
void cluster_unsubscribe(struct cluster *cl, natsSubscription *sub);

/*
 * cluster_msg_in: the MQTT message a NATS message carries: subject is a
 * topic's subject under CLUSTER_WIRE_ROOT (cluster_wire.h), data[0..len)
 * its envelope (len < 0: none). The topic is decoded into topic[cap]
 * (the message refers to it only while it is built). Returns a new
 * message (one reference), or NULL: *why says why it is not one (NULL
 * when it simply expired).
 */
struct msg *cluster_msg_in(const char *subject, const void *data, int len,
                           char *topic, size_t cap, const char **why);

#endif
