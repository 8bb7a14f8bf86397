/*
 * cluster_wire.h - what crosses NATS between mqttd nodes (docs/cluster.md):
 * the lossless MQTT topic <-> NATS subject mapping and the envelope that
 * carries a PUBLISH (QoS, retain, expiry, MQTT 5 properties, payload).
 *
 * Subjects: CLUSTER_WIRE_ROOT ".t" for topics, ".d" for topics whose first
 * level starts with '$' (so that leading '*' / '>' never match them, as
 * MQTT's '+' / '#' do not), then one token per MQTT level: '_' followed by
 * the level with every byte outside [A-Za-z0-9_-] written %XX (upper-case
 * hex). Empty levels, '.', spaces, '*', '>' and non-ASCII bytes all
 * survive; '_' first makes every token non-empty and never a wildcard.
 */
#ifndef MQTTD_CLUSTER_WIRE_H
#define MQTTD_CLUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_WIRE_ROOT "mqtt"
/* NATS' default max_control_line is 4096 ("PUB <subject> <len>\r\n"). */
#define CLUSTER_WIRE_SUBJECT_MAX 4000
#define CLUSTER_WIRE_HEADER 14 /* envelope bytes before the properties */

/*
 * cluster_wire_subject: write the subject of MQTT topic name t (len bytes,
 * a valid topic: no wildcards) and a NUL into out. Returns its length, or
 * -1 when it would not fit in min(size, CLUSTER_WIRE_SUBJECT_MAX + 1).
 */
int cluster_wire_subject(const char *t, size_t len, char *out, size_t size);

/*
 * cluster_wire_filter: the subject filter of MQTT topic filter f (a valid
 * filter, not $share). A trailing '#' also matches its parent level in
 * MQTT ("a/#" matches "a"), which NATS' '>' does not: then *parent is set
 * to the length of the parent's subject, a prefix of out (out[*parent] is
 * '.'), and the caller subscribes to both; otherwise *parent is 0. Returns
 * the length written (NUL-terminated) or -1 as cluster_wire_subject.
 */
int cluster_wire_filter(const char *f, size_t len, char *out, size_t size,
                        size_t *parent);

/*
 * cluster_wire_topic: the MQTT topic name of subject s (len bytes), NUL-
 * terminated in out. Returns its length, or -1 when s is not a subject
 * cluster_wire_subject makes (bad root, token or escape, '$'-root
 * mismatch, or a result that is not a valid MQTT topic name: empty,
 * wildcards, NUL, bad UTF-8) or out is too small.
 */
int cluster_wire_topic(const char *s, size_t len, char *out, size_t size);

/* The envelope: version 1, flags (QoS in bits 0-1, retain in bit 2),
 * expiry (int64 big-endian, 0 = none), properties length (uint32 BE),
 * the properties, the payload (the rest). */
struct cluster_wire_msg {
    uint8_t qos;
    bool retain;
    int64_t expiry_at;
    const uint8_t *props;
    uint32_t props_len;
    const uint8_t *payload;
    uint32_t payload_len;
};

/* cluster_wire_header: write the CLUSTER_WIRE_HEADER bytes before the
 * properties and payload of m into out. */
void cluster_wire_header(const struct cluster_wire_msg *m,
                         uint8_t out[CLUSTER_WIRE_HEADER]);

/*
 * cluster_wire_decode: parse envelope p (n bytes) into m (pointers into
 * p). Returns 0, or -1 with *why set to a static reason when it is too
 * short, another version, QoS 3, unknown flags or a properties length
 * past the end.
 */
int cluster_wire_decode(const uint8_t *p, size_t n, struct cluster_wire_msg *m,
                        const char **why);

#endif
