/*
 * bridge_topic.h - the topic remapping rules of a bridge "topic" line
 * (Mosquitto's, see "Configuring Bridges" in mosquitto.conf(5)): pure
 * string functions, no allocation except where said.
 *
 *   topic PATTERN DIR QOS LOCAL_PREFIX REMOTE_PREFIX
 *
 *   local filter  = LOCAL_PREFIX  + PATTERN   (subscribed locally, out)
 *   remote filter = REMOTE_PREFIX + PATTERN   (subscribed remotely, in)
 *
 *   out: local topic  L/x  -> strip LOCAL_PREFIX,  add REMOTE_PREFIX -> R/x
 *   in:  remote topic R/x  -> strip REMOTE_PREFIX, add LOCAL_PREFIX  -> L/x
 *
 * An empty PATTERN ("" in the file) maps the single topic LOCAL_PREFIX to
 * the single topic REMOTE_PREFIX; both prefixes must then be non-empty.
 */
#ifndef MQTTD_BRIDGE_TOPIC_H
#define MQTTD_BRIDGE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * bridge_topic_check: NULL when the combination is valid (the table of
 * mosquitto.conf(5)), else a static text saying why not. The strings
 * are the unquoted values ("" for the place marker "").
 */
const char *bridge_topic_check(const char *pattern, const char *local_prefix,
                               const char *remote_prefix);

/*
 * bridge_topic_join: a new string prefix + pattern (the full filter of
 * one end). Never NULL (aborts on OOM); the caller frees it.
 */
char *bridge_topic_join(const char *prefix, const char *pattern);

/*
 * bridge_topic_remap: the topic t[0..tlen) of one end as the topic of the
 * other end: from_prefix stripped, to_prefix added, written to out (at
 * most cap bytes, NUL-terminated). Returns the length, or -1 when t does
 * not start with from_prefix or the result does not fit (or is empty or
 * longer than 65535 bytes).
 */
long bridge_topic_remap(const char *t, size_t tlen, const char *from_prefix,
                        const char *to_prefix, char *out, size_t cap);

#endif
