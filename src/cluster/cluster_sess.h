/*
 * cluster_sess.h - JetStream for QoS 1/2 and persistent sessions that move
 * between nodes (docs/cluster.md, "Offline sessions"). Internal to
 * src/cluster; every function runs on the loop thread.
 *
 *   stream MQTT_MSGS   over mqtt.t.> and mqtt.d.>: every message the
 *                      nodes exchange, kept cluster_msgs_max_age seconds /
 *                      cluster_msgs_max_bytes bytes (oldest dropped)
 *   bucket MQTT_SESSIONS  offline persistent sessions, by hex client id:
 *                      node, version, expiry, offline time, subscriptions
 *   subject mqttd.sess.moved.<hex id>  "this session now lives on node N":
 *                      the other nodes drop their offline copy
 */
#ifndef MQTTD_CLUSTER_SESS_H
#define MQTTD_CLUSTER_SESS_H

struct cluster;
struct cluster_sess;

/* cluster_sess_new: install the broker's session hooks, subscribe to the
 * moved notices and create the stream and bucket (worker thread,
 * idempotent). Never NULL. */
struct cluster_sess *cluster_sess_new(struct cluster *cl);

/* cluster_sess_connected: NATS (re)connected: create the stream and
 * bucket again if missing. */
void cluster_sess_connected(struct cluster_sess *cs);

/* cluster_sess_free: remove the hooks, free. Call after
 * cluster_work_free (the done callbacks of queued jobs use cs). Accepts
 * NULL. */
void cluster_sess_free(struct cluster_sess *cs);

#endif
