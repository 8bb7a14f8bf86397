/*
 * cluster.h - cluster mode (docs/cluster.md): this node exchanges its
 * clients' PUBLISHes with the other mqttd nodes over NATS. This slice uses
 * core NATS subjects (at most once across nodes; no JetStream yet): every
 * node subscribes to every subject under CLUSTER_WIRE_ROOT and publishes
 * each local client's message once (no echo of its own messages).
 *
 * Only created when the configuration has cluster_nats (threads 1).
 */
#ifndef MQTTD_CLUSTER_H
#define MQTTD_CLUSTER_H

#include <stddef.h>

struct broker;
struct ev_loop;
struct log;
struct cluster;

/*
 * cluster_new: connect broker b (on loop, threads 1) to the NATS servers
 * of its configuration's cluster_nats, reconnecting forever; hooks b's
 * publish path. The first connection attempt is made here, before the
 * loop serves clients (bounded by cnats' 2 s connect timeout); when it
 * fails, later ones run on cnats' own thread and local delivery goes on
 * meanwhile. Returns NULL with a message in err when the NATS options are
 * refused (a URL cnats cannot parse).
 */
struct cluster *cluster_new(struct ev_loop *loop, struct broker *b,
                            struct log *lg, char *err, size_t errlen);

/* cluster_free: unhook the broker, close the NATS connection, free.
 * Accepts NULL. */
void cluster_free(struct cluster *cl);

#endif
