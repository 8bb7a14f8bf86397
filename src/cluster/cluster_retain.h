/*
 * cluster_retain.h - retained messages cluster-wide (docs/cluster.md).
 *
 * The JetStream stream MQTT_RETAIN (file storage, one message per
 * subject) is the cluster's retained store; each node's local retained
 * store (retain.h) is a cache of it, from which new subscriptions get
 * their retained messages exactly as on a single node (Retain Handling,
 * Retain As Published, ACLs unchanged). The cache is kept current by the
 * live messages of the other nodes and reloaded from the stream on every
 * (re)connection to NATS. Internal to src/cluster; loop thread only.
 */
#ifndef MQTTD_CLUSTER_RETAIN_H
#define MQTTD_CLUSTER_RETAIN_H

struct cluster;
struct cluster_retain;
struct msg;

/* cluster_retain_new: the retained part of cluster cl. Never NULL. */
struct cluster_retain *cluster_retain_new(struct cluster *cl);

/* cluster_retain_free: free (after cluster_work_free ran the jobs still
 * queued). Accepts NULL. */
void cluster_retain_free(struct cluster_retain *cr);

/*
 * cluster_retain_local: a retained message m of this node's clients with
 * NATS subject subj (cluster_wire_subject): written to the stream, or its
 * subject purged when m's payload is empty, on the worker thread, in
 * publish order.
 */
void cluster_retain_local(struct cluster_retain *cr, const struct msg *m,
                          const char *subj);

/* cluster_retain_remote: a retained message m of another node (live, core
 * NATS): set in (or, empty, cleared from) the local cache. */
void cluster_retain_remote(struct cluster_retain *cr, struct msg *m);

/* cluster_retain_connected: connected (again) to NATS: create the stream
 * when missing and reload the cache from it. */
void cluster_retain_connected(struct cluster_retain *cr);

#endif
