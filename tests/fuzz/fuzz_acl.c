/*
 * fuzz_acl.c - libFuzzer harness for the ACL loader and matcher. The
 * first input line is "CLIENTID USERNAME TOPIC" for checks; the rest is
 * the ACL file. Checks must never crash, and a SUBSCRIBE allowed for a
 * filter that is also a topic name implies READ is allowed for it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *nl;
    char head[256], *cid, *user, *topic, err[256];
    size_t hl;
    struct acl *a;

    nl = memchr(s, '\n', size);
    if (nl == NULL)
        return 0;
    hl = (size_t)(nl - s);
    if (hl >= sizeof(head) || memchr(s, '\0', hl) != NULL)
        return 0;
    memcpy(head, s, hl);
    head[hl] = '\0';
    cid = head;
    user = strchr(cid, ' ');
    if (user == NULL)
        return 0;
    *user++ = '\0';
    topic = strchr(user, ' ');
    if (topic == NULL)
        return 0;
    *topic++ = '\0';

    a = acl_parse("fuzz", nl + 1, size - hl - 1, err, sizeof(err));
    if (a == NULL)
        return 0;
    {
        size_t tl = strlen(topic);
        const char *u = user[0] == '-' ? NULL : user;
        bool r = acl_check(a, cid, u, topic, tl, AUTH_READ);
        (void)acl_check(a, cid, u, topic, tl, AUTH_WRITE);
        bool sub = acl_check(a, cid, u, topic, tl, AUTH_SUBSCRIBE);
        if (sub && topic_name_valid(topic, tl) &&
            topic_share_parse(topic, tl, &(const char *){0}, &(size_t){0},
                              &(const char *){0}, &(size_t){0}) == 0 &&
            !r)
            abort();
        if (topic_filter_valid(topic, tl))
            (void)acl_filter_covers(topic, tl, topic, tl);
    }
    acl_free(a);
    return 0;
}
