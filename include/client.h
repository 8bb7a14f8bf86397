/*
 * client.h - the public face of one MQTT connection's protocol state
 * (src/broker/client.c; its body is private to the broker core). The
 * broker creates clients (broker_accept) and owns them; these read-only
 * accessors are for code outside the core that watches a client, such as
 * the whole-session fuzzer checking what the broker sends.
 */
#ifndef MQTTD_CLIENT_H
#define MQTTD_CLIENT_H

#include <stdint.h>

struct client;

/* client_version: the MQTT protocol version of c's CONNECT (MQTT_V31,
 * MQTT_V311, MQTT_V5), 0 before it. */
uint8_t client_version(const struct client *c);

/* client_max_packet: the Maximum Packet Size c announced (v5), 0 for
 * none. */
uint32_t client_max_packet(const struct client *c);

/* client_resume_read: flow control lets publisher c go: read from it
 * again (conn_resume_read). */
void client_resume_read(struct client *c);

#endif
