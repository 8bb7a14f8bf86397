/*
 * cluster_owner.h - client-id ownership across the nodes (docs/cluster.md,
 * "Client-id ownership"): the same client id connecting to another node
 * takes the session over from this one (MQTT 5 DISCONNECT 0x8E).
 *
 * KV bucket MQTT_OWNER: key = the client id in hex, value =
 * "EPOCH:SEQ:NODE" (this process's random epoch, a per-connection
 * sequence number, the node name). Each accepted client's claim is
 * written on the worker thread; every node watches the bucket's subjects
 * and, for a claim by another node naming a client connected here, reads
 * the key back (on the worker, after this node's own writes) and closes
 * the local client when the last writer was another node.
 */
#ifndef MQTTD_CLUSTER_OWNER_H
#define MQTTD_CLUSTER_OWNER_H

/* the bucket's name (cluster_wills.c reads it too) */
#define CLUSTER_OWNER_BUCKET "MQTT_OWNER"

struct cluster;
struct cluster_owner;

/* cluster_owner_new: create the bucket (idempotent, worker thread),
 * subscribe, hook the broker's accepted connections. Loop thread. */
struct cluster_owner *cluster_owner_new(struct cluster *cl);

/* cluster_owner_epoch: this process's epoch (16 hex digits), the first
 * field of every claim it writes (borrowed, lives as long as o). */
const char *cluster_owner_epoch(const struct cluster_owner *o);

/* cluster_owner_free: unhook and free; call before the worker is freed
 * (jobs in flight keep nothing of it). Accepts NULL. */
void cluster_owner_free(struct cluster_owner *o);

#endif
