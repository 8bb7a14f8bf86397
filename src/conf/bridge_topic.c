/*
 * bridge_topic.c - prefix remapping of bridge topics (bridge_topic.h).
 * In the conf layer so that both the parser (validation) and the bridge
 * (runtime) use the same rules.
 */
#include "bridge_topic.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

const char *bridge_topic_check(const char *pattern, const char *local_prefix,
                               const char *remote_prefix)
{
    if (*pattern == '\0') {
        /* one topic remapped to another: both prefixes are the topics */
        if (*local_prefix == '\0' || *remote_prefix == '\0')
            return "an empty topic pattern needs both a local and a remote "
                   "prefix";
        if (strpbrk(local_prefix, "+#") || strpbrk(remote_prefix, "+#"))
            return "with an empty topic pattern the prefixes are topic "
                   "names and must not contain wildcards";
        return NULL;
    }
    if (strpbrk(local_prefix, "+#") || strpbrk(remote_prefix, "+#"))
        return "a topic prefix must not contain wildcards";
    return NULL;
}

char *bridge_topic_join(const char *prefix, const char *pattern)
{
    size_t n = strlen(prefix) + strlen(pattern) + 1;
    char *s = xmalloc(n);

    snprintf(s, n, "%s%s", prefix, pattern);
    return s;
}

long bridge_topic_remap(const char *t, size_t tlen, const char *from_prefix,
                        const char *to_prefix, char *out, size_t cap)
{
    size_t fl = strlen(from_prefix), tl = strlen(to_prefix), n;

    if (tlen < fl || memcmp(t, from_prefix, fl) != 0)
        return -1;
    n = tl + (tlen - fl);
    if (n == 0 || n > 65535 || n + 1 > cap)
        return -1;
    memcpy(out, to_prefix, tl);
    memcpy(out + tl, t + fl, tlen - fl);
    out[n] = '\0';
    return (long)n;
}
