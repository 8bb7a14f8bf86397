/*
 * topic.h - MQTT topic names and topic filters: validation, matching,
 * shared-subscription names. Pure functions over (pointer, length); the
 * strings need not be NUL-terminated and have already been checked for UTF-8
 * by the codec.
 */
#ifndef MQTTD_TOPIC_H
#define MQTTD_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Topic names and filters are limited to this many levels ('/'-separated).
 * Deeper ones are refused (TOPIC_NAME_INVALID / TOPIC_FILTER_INVALID) so no
 * structure grows with attacker-chosen depth; see docs/security.md. */
#define TOPIC_MAX_LEVELS 1024

/*
 * topic_level_end: the end of the level of s[0..len) that starts at 'pos':
 * the index of the next '/' at or after pos, or len when that level is the
 * last one; inline because the router and the retained store call it once
 * per level on every PUBLISH. pos >= len gives len (so pos = len + 1, "past the
 * last level", is safe). Levels may be empty ("a//b"). Any bytes; no NUL
 * needed.
 */
static inline size_t topic_level_end(const char *s, size_t len, size_t pos)
{
    const char *slash;

    if (pos >= len)
        return len;
    slash = memchr(s + pos, '/', len - pos);
    return slash != NULL ? (size_t)(slash - s) : len;
}

/* What topic_name_check / topic_filter_check found. */
enum topic_check {
    TOPIC_OK = 0,
    TOPIC_MALFORMED, /* breaks the syntax: a malformed packet [MQTT-4.7] */
    TOPIC_TOO_DEEP,  /* well-formed, over TOPIC_MAX_LEVELS: a limit */
};

/*
 * topic_name_check: a PUBLISH topic: non-empty [MQTT-4.7.3-1] and no '+'
 * or '#' [MQTT-3.3.2-2], else TOPIC_MALFORMED; more than TOPIC_MAX_LEVELS
 * levels: TOPIC_TOO_DEEP. topic_name_valid: topic_name_check == TOPIC_OK.
 */
enum topic_check topic_name_check(const char *t, size_t len);
bool topic_name_valid(const char *t, size_t len);

/*
 * topic_filter_check: a SUBSCRIBE/UNSUBSCRIBE filter: non-empty
 * [MQTT-4.7.3-1]; '#' only as the whole last level [MQTT-4.7.1-2]; '+'
 * only as a whole level [MQTT-4.7.1-3]; else TOPIC_MALFORMED. More than
 * TOPIC_MAX_LEVELS levels: TOPIC_TOO_DEEP. A "$share/..." filter is
 * checked by topic_share_parse() first, then its inner filter here.
 * topic_filter_valid: topic_filter_check == TOPIC_OK.
 */
enum topic_check topic_filter_check(const char *f, size_t len);
bool topic_filter_valid(const char *f, size_t len);

/*
 * topic_share_parse: recognise "$share/GROUP/FILTER" [MQTT-4.8.2].
 * Returns 0 when f is not a shared-subscription filter; 1 when it is and
 * the parts are valid (GROUP non-empty, without '/', '+', '#'; FILTER
 * non-empty), with *group and *inner pointing into f; -1 when it starts
 * with "$share/" but is malformed.
 */
int topic_share_parse(const char *f, size_t len, const char **group,
                      size_t *group_len, const char **inner, size_t *inner_len);

/*
 * topic_matches: true when topic name t matches filter f with MQTT rules:
 * '+' one level, '#' this level and below ("a/#" matches "a"), a filter
 * starting with a wildcard does not match a topic starting with '$'
 * [MQTT-4.7.2-1]. Iterative; no recursion.
 */
bool topic_matches(const char *f, size_t flen, const char *t, size_t tlen);

#endif
