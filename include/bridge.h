/*
 * bridge.h - Mosquitto-compatible bridges (the "connection" sections of
 * the configuration, struct conf_bridge in conf.h) on the first event
 * loop.
 *
 * A bridge is two MQTT client connections relayed packet by packet:
 *
 *   local broker (this mqttd)                      remote broker
 *   +-----------------------+   socketpair   +--------+   conn_connect +------+
 *   | internal client       |<-------------->| bridge |<---------------->| | |
 * local_clientid, v5,   |  "local link"  | relay  |  "remote link"   |      |
 *   | subscribed to the out |                |        |  remote_clientid | | |
 * topics (No Local)     |                |        |  subscribed to   |      |
 *   +-----------------------+                +--------+  the in topics +------+
 *
 * PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP cross with their packet ids
 * unchanged, so each end's session state (cleansession false) makes QoS
 * 1/2 survive an outage: while the remote is down the local link is
 * closed too and the local session queues the out messages; after the
 * reconnect both ends resend what was not acknowledged, in order.
 */
#ifndef MQTTD_BRIDGE_H
#define MQTTD_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

struct broker;
struct ev_loop;
struct bridges;

/* A bridge's figures for $SYS and the stats JSON. */
struct bridge_stat {
    const char *name;    /* borrowed */
    const char *state;   /* "up", "connecting", "waiting", "stopped", "lazy" */
    uint64_t msgs_in;    /* remote -> local */
    uint64_t msgs_out;   /* local -> remote */
    uint64_t reconnects; /* connections made after the first */
};

/*
 * bridges_new: the bridges of broker_conf(b) (copied: bridges are not
 * changed by a reload, as in Mosquitto), started on loop as their
 * start_type says. NULL when there are none. Errors building a TLS
 * context are logged and that bridge stays stopped.
 */
struct bridges *bridges_new(struct ev_loop *loop, struct broker *b);

/* bridges_shutdown: disconnect every bridge (no reconnects after). */
void bridges_shutdown(struct bridges *bs);

/* bridges_free: close and free. Accepts NULL. */
void bridges_free(struct bridges *bs);

/* bridges_reload_tls: SIGHUP: rebuild each TLS bridge's client context
 * from its files (the next connection uses it); a failure is logged and
 * the old context kept. */
void bridges_reload_tls(struct bridges *bs);

/* bridges_count / bridges_stat: figures of bridge i (< count). */
size_t bridges_count(const struct bridges *bs);
void bridges_stat(const struct bridges *bs, size_t i, struct bridge_stat *out);

#endif
