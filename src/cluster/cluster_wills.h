/*
 * cluster_wills.h - the wills of a node that died (docs/cluster.md, "Wills
 * of a dead node"): published once, by one surviving node.
 *
 * Each node publishes mqttd.hb.<epoch> every second (its owner epoch,
 * cluster_owner.h) and records the will of each of its sessions in the KV
 * bucket MQTT_WILLS (key "<epoch>.<hex client id>"), deleting the record
 * when the will is published or discarded here. A node that has seen no
 * heartbeat of an epoch for cluster_node_timeout seconds, while itself
 * connected to NATS for that long, races kvStore_Create on MQTT_NODES key
 * "claim.<epoch>"; the winner publishes that epoch's wills (after what
 * remains of their delay) unless MQTT_OWNER names another connection of
 * the client by then, and deletes the records. An orderly stop publishes
 * mqttd.bye.<epoch>: its records are dropped, not published.
 */
#ifndef MQTTD_CLUSTER_WILLS_H
#define MQTTD_CLUSTER_WILLS_H

struct cluster;
struct cluster_wills;

/* cluster_wills_new: create the buckets (worker thread), subscribe to
 * heartbeats, start this node's heartbeat and hook the broker's wills.
 * epoch: this process's owner epoch (16 hex digits, copied). Loop
 * thread. */
struct cluster_wills *cluster_wills_new(struct cluster *cl, const char *epoch);

/* cluster_wills_free: unhook, say goodbye (mqttd.bye.<epoch>, written
 * out at once), free. Call before the NATS connection is closed; jobs in
 * flight keep nothing of it. Accepts NULL. */
void cluster_wills_free(struct cluster_wills *w);

#endif
