/*
 * topic.c - MQTT topic names and topic filters (see topic.h): validation,
 * "$share/GROUP/FILTER" parsing and name/filter matching.
 *
 * Everything here is a pure function over (pointer, length): no allocation,
 * no recursion, one pass over the bytes. Levels are the '/'-separated parts
 * of a string; "a/" has two levels ("a" and ""), "/" has two empty levels.
 */
#include "topic.h"

#include <string.h>

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

enum topic_check topic_name_check(const char *t, size_t len)
{
    size_t levels = 1;
    bool deep = false;

    if (len == 0) /* [MQTT-4.7.3-1] */
        return TOPIC_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        switch (t[i]) {
        case '+':
        case '#': /* [MQTT-3.3.2-2] */
            return TOPIC_MALFORMED;
        case '/':
            if (++levels > TOPIC_MAX_LEVELS)
                deep = true;
            break;
        default:
            break;
        }
    }
    return deep ? TOPIC_TOO_DEEP : TOPIC_OK;
}

bool topic_name_valid(const char *t, size_t len)
{
    return topic_name_check(t, len) == TOPIC_OK;
}

enum topic_check topic_filter_check(const char *f, size_t len)
{
    size_t levels = 1;
    bool deep = false;

    if (len == 0) /* [MQTT-4.7.3-1] */
        return TOPIC_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        bool starts = i == 0 || f[i - 1] == '/';

        switch (f[i]) {
        case '/':
            if (++levels > TOPIC_MAX_LEVELS)
                deep = true;
            break;
        case '+': /* a whole level [MQTT-4.7.1-3] */
            if (!starts || (i + 1 < len && f[i + 1] != '/'))
                return TOPIC_MALFORMED;
            break;
        case '#': /* the whole last level [MQTT-4.7.1-2] */
            if (!starts || i + 1 != len)
                return TOPIC_MALFORMED;
            break;
        default:
            break;
        }
    }
    return deep ? TOPIC_TOO_DEEP : TOPIC_OK;
}

bool topic_filter_valid(const char *f, size_t len)
{
    return topic_filter_check(f, len) == TOPIC_OK;
}

int topic_share_parse(const char *f, size_t len, const char **group,
                      size_t *group_len, const char **inner, size_t *inner_len)
{
    const char *g, *slash;
    size_t rest;

    if (len < SHARE_PREFIX_LEN || memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN))
        return 0;
    g = f + SHARE_PREFIX_LEN;
    rest = len - SHARE_PREFIX_LEN;
    slash = memchr(g, '/', rest);
    /* A non-empty ShareName [MQTT-4.8.2-1] followed by '/' [MQTT-4.8.2-2] */
    if (slash == NULL || slash == g)
        return -1;
    /* ShareName must not contain '/', '+' or '#' [MQTT-4.8.2-2] */
    if (memchr(g, '+', (size_t)(slash - g)) ||
        memchr(g, '#', (size_t)(slash - g)))
        return -1;
    if ((size_t)(slash - g) + 1 == rest) /* no filter [MQTT-4.8.2-2] */
        return -1;
    *group = g;
    *group_len = (size_t)(slash - g);
    *inner = slash + 1;
    *inner_len = len - (size_t)(*inner - f);
    return 1;
}

bool topic_matches(const char *f, size_t flen, const char *t, size_t tlen)
{
    size_t fp = 0, tp = 0;

    /* [MQTT-4.7.2-1]: a leading wildcard never matches a '$' topic. */
    if (tlen > 0 && t[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        size_t fe = topic_level_end(f, flen, fp);
        size_t te = topic_level_end(t, tlen, tp);
        size_t fl = fe - fp;

        /* '#' as the whole last level: this level and everything below. */
        if (fl == 1 && f[fp] == '#' && fe == flen)
            return true;
        if (!(fl == 1 && f[fp] == '+') &&
            (fl != te - tp || memcmp(f + fp, t + tp, fl) != 0))
            return false;
        if (fe == flen && te == tlen)
            return true;
        if (fe == flen) /* filter exhausted, topic has more levels */
            return false;
        if (te == tlen) {
            /* Topic exhausted: only a trailing "/#" still matches, since
             * '#' includes the parent level ("a/#" matches "a"). */
            return flen - fe == 2 && f[fe + 1] == '#';
        }
        fp = fe + 1;
        tp = te + 1;
    }
}
