/*
 * msg.c - reference-counted application messages (see msg.h).
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *props,
                    uint32_t props_len, const uint8_t *payload,
                    uint32_t payload_len, uint8_t qos, bool retain,
                    int64_t expiry_at)
{
    struct msg *m;
    size_t total = sizeof(*m) + topic_len + 1 + props_len + payload_len;
    char *p;

    m = xmalloc(total);
    m->refs = 1;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->props_len = props_len;
    m->payload_len = payload_len;
    m->expiry_at = expiry_at;
    m->seq = 0;
    m->spread = 0;
    m->share_gen = 0;
    p = m->data;
    memcpy(p, topic, topic_len);
    p[topic_len] = '\0';
    m->topic = p;
    p += topic_len + 1;
    if (props_len)
        memcpy(p, props, props_len);
    m->props = (const uint8_t *)p;
    p += props_len;
    if (payload_len)
        memcpy(p, payload, payload_len);
    m->payload = (const uint8_t *)p;
    return m;
}

void msg_unref(struct msg *m)
{
    if (m == NULL)
        return;
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(m);
}

size_t msg_size(const struct msg *m)
{
    return sizeof(*m) + m->topic_len + 1 + m->props_len + m->payload_len;
}
