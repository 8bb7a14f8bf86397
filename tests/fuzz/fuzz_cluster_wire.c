/*
 * fuzz_cluster_wire.c - libFuzzer harness for src/cluster/cluster_wire.c,
 * what mqttd reads from NATS (subjects and envelopes another node sent).
 * Checked properties:
 *   - cluster_wire_topic and cluster_wire_decode never read out of bounds;
 *   - a subject cluster_wire_topic accepts maps back to the same subject
 *     (the mapping is canonical: one subject per topic);
 *   - a topic that is a valid MQTT topic name maps to a subject that
 *     decodes back to it;
 *   - a decoded envelope's parts lie inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_wire.h"
#include "topic.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            abort();                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char topic[70000], subj[CLUSTER_WIRE_SUBJECT_MAX + 1];
    const char *s = (const char *)data;
    struct cluster_wire_msg m;
    const char *why;
    int n, k;

    n = cluster_wire_topic(s, size, topic, sizeof(topic));
    if (n >= 0) {
        k = cluster_wire_subject(topic, (size_t)n, subj, sizeof(subj));
        CHECK(k == (int)size && memcmp(subj, s, size) == 0);
    }
    if (size > 0 && size < 65536 && topic_name_valid(s, size) &&
        util_utf8_valid(s, size)) {
        k = cluster_wire_subject(s, size, subj, sizeof(subj));
        if (k >= 0) {
            n = cluster_wire_topic(subj, (size_t)k, topic, sizeof(topic));
            CHECK(n == (int)size && memcmp(topic, s, size) == 0);
        }
    }
    if (cluster_wire_decode(data, size, &m, &why) == 0) {
        CHECK(m.props >= data && m.payload >= m.props);
        CHECK(m.payload + m.payload_len == data + size);
        CHECK(m.qos <= 2);
    } else {
        CHECK(why != NULL);
    }
    return 0;
}
