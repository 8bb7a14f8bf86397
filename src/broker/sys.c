/*
 * sys.c - $SYS topics with Mosquitto's names, plus $SYS/broker/stats/json
 * (cJSON). Values are published as retained messages so a new subscriber
 * sees them at once, exactly like Mosquitto does.
 */
#include "sys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "broker.h"
#include "conf.h"
#include "hub.h"
#include "msg.h"
#include "retain.h"
#include "util.h"

/* Counters with 1/5/15 minute load averages (per minute, as Mosquitto). */
enum {
    L_MSG_RX,
    L_MSG_TX,
    L_PUB_RX,
    L_PUB_TX,
    L_PUB_DROP,
    L_BYTES_RX,
    L_BYTES_TX,
    L_CONNECTIONS,
    L_COUNT
};

static const char *const load_names[L_COUNT] = {
    "messages/received", "messages/sent",  "publish/received", "publish/sent",
    "publish/dropped",   "bytes/received", "bytes/sent",       "connections",
};

struct sys {
    uint64_t last[L_COUNT];
    double load[L_COUNT][3];
    bool primed;
};

struct sys *sys_new(void)
{
    return xcalloc(1, sizeof(struct sys));
}

void sys_free(struct sys *s)
{
    free(s);
}

static void put(struct broker *b, const char *topic, const char *value)
{
    struct msg *m =
        msg_new(topic, strlen(topic), NULL, 0, (const uint8_t *)value,
                (uint32_t)strlen(value), 0, true, 0);

    broker_publish_sys(b, m);
    msg_unref(m);
}

static void put_u64(struct broker *b, const char *topic, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    put(b, topic, buf);
}

static void put_dbl(struct broker *b, const char *topic, double v)
{
    char buf[48];

    snprintf(buf, sizeof(buf), "%.2f", v);
    put(b, topic, buf);
}

void sys_update(struct sys *s, struct broker *b, double interval)
{
    struct hub_totals t;
    const struct broker_stats *st = &t.st;
    static const double windows[3] = {60.0, 300.0, 900.0};
    char topic[160], buf[160];
    const struct conf *cf = broker_conf(b);
    long uptime = (long)broker_uptime(b);
    cJSON *j, *load;
    char *js;

    /* every thread's counters when there are several */
    broker_totals(b, true, &t);
    uint64_t now_v[L_COUNT] = {
        st->msgs_received, st->msgs_sent,     st->pub_msgs_received,
        st->pub_msgs_sent, st->pub_dropped,   st->bytes_received,
        st->bytes_sent,    st->clients_total,
    };

    if (interval <= 0)
        interval = 1;
    for (int k = 0; k < L_COUNT; k++) {
        double rate =
            s->primed ? (double)(now_v[k] - s->last[k]) * 60.0 / interval : 0.0;
        for (int w = 0; w < 3; w++) {
            double a = exp(-interval / windows[w]);
            s->load[k][w] =
                s->primed ? s->load[k][w] * a + rate * (1.0 - a) : 0.0;
        }
        s->last[k] = now_v[k];
    }
    s->primed = true;

    put(b, "$SYS/broker/version", "mqttd version " MQTTD_VERSION);
    snprintf(buf, sizeof(buf), "%ld seconds", uptime);
    put(b, "$SYS/broker/uptime", buf);
    put_u64(b, "$SYS/broker/clients/connected", t.clients);
    put_u64(b, "$SYS/broker/clients/active", t.clients);
    put_u64(b, "$SYS/broker/clients/disconnected", t.sessions_offline);
    put_u64(b, "$SYS/broker/clients/inactive", t.sessions_offline);
    put_u64(b, "$SYS/broker/clients/total", t.sessions);
    put_u64(b, "$SYS/broker/messages/received", st->msgs_received);
    put_u64(b, "$SYS/broker/messages/sent", st->msgs_sent);
    put_u64(b, "$SYS/broker/publish/messages/received", st->pub_msgs_received);
    put_u64(b, "$SYS/broker/publish/messages/sent", st->pub_msgs_sent);
    put_u64(b, "$SYS/broker/publish/messages/dropped", st->pub_dropped);
    put_u64(b, "$SYS/broker/bytes/received", st->bytes_received);
    put_u64(b, "$SYS/broker/bytes/sent", st->bytes_sent);
    put_u64(b, "$SYS/broker/subscriptions/count", t.subscriptions);
    put_u64(b, "$SYS/broker/retained messages/count",
            retain_count(broker_retain(b)));
    put_u64(b, "$SYS/broker/store/messages/count", t.store_msgs);
    put_u64(b, "$SYS/broker/store/messages/bytes", t.store_bytes);
    put_u64(b, "$SYS/broker/limits/hits", st->limit_hits);
    put_u64(b, "$SYS/broker/acl/denied", st->acl_denied);
    put_u64(b, "$SYS/broker/clients/rejected", st->clients_rejected);
    put_u64(b, "$SYS/broker/clients/malformed", st->malformed);
    put_u64(b, "$SYS/broker/clients/ocsp_refused", st->ocsp_refused);
    put_u64(b, "$SYS/broker/tls/handshakes", st->tls_handshakes);
    put_u64(b, "$SYS/broker/tls/handshakes/resumed", st->tls_resumed);
    for (int k = 0; k < L_COUNT; k++) {
        static const char *const wn[3] = {"1min", "5min", "15min"};
        for (int w = 0; w < 3; w++) {
            snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s",
                     load_names[k], wn[w]);
            put_dbl(b, topic, s->load[k][w]);
        }
    }
    /* TLS certificate dates (from the last expiry check) */
    for (size_t i = 0; i < cf->nlisteners; i++) {
        time_t na = broker_tls_not_after(b, i);
        struct tm tm;
        if (na <= 0)
            continue;
        gmtime_r(&na, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(topic, sizeof(topic),
                 "$SYS/broker/tls/listener/%u/server_not_after",
                 (unsigned)cf->listeners[i].port);
        put(b, topic, buf);
        snprintf(topic, sizeof(topic),
                 "$SYS/broker/tls/listener/%u/server_days_left",
                 (unsigned)cf->listeners[i].port);
        put_u64(b, topic,
                na > time(NULL) ? (uint64_t)(na - time(NULL)) / 86400 : 0);
    }

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", MQTTD_VERSION);
    cJSON_AddNumberToObject(j, "uptime_s", (double)uptime);
    cJSON_AddNumberToObject(j, "clients_connected", (double)t.clients);
    cJSON_AddNumberToObject(j, "clients_disconnected",
                            (double)t.sessions_offline);
    cJSON_AddNumberToObject(j, "clients_total", (double)t.sessions);
    cJSON_AddNumberToObject(j, "messages_received", (double)st->msgs_received);
    cJSON_AddNumberToObject(j, "messages_sent", (double)st->msgs_sent);
    cJSON_AddNumberToObject(j, "publish_received",
                            (double)st->pub_msgs_received);
    cJSON_AddNumberToObject(j, "publish_sent", (double)st->pub_msgs_sent);
    cJSON_AddNumberToObject(j, "publish_dropped", (double)st->pub_dropped);
    cJSON_AddNumberToObject(j, "bytes_received", (double)st->bytes_received);
    cJSON_AddNumberToObject(j, "bytes_sent", (double)st->bytes_sent);
    cJSON_AddNumberToObject(j, "subscriptions", (double)t.subscriptions);
    cJSON_AddNumberToObject(j, "retained_messages",
                            (double)retain_count(broker_retain(b)));
    cJSON_AddNumberToObject(j, "store_messages", (double)t.store_msgs);
    cJSON_AddNumberToObject(j, "store_bytes", (double)t.store_bytes);
    cJSON_AddNumberToObject(j, "limit_hits", (double)st->limit_hits);
    cJSON_AddNumberToObject(j, "acl_denied", (double)st->acl_denied);
    cJSON_AddNumberToObject(j, "clients_rejected",
                            (double)st->clients_rejected);
    cJSON_AddNumberToObject(j, "malformed", (double)st->malformed);
    cJSON_AddNumberToObject(j, "ocsp_refused", (double)st->ocsp_refused);
    cJSON_AddNumberToObject(j, "tls_handshakes", (double)st->tls_handshakes);
    cJSON_AddNumberToObject(j, "tls_resumed", (double)st->tls_resumed);
    load = cJSON_AddObjectToObject(j, "load_per_min");
    for (int k = 0; k < L_COUNT; k++) {
        cJSON *o = cJSON_AddObjectToObject(load, load_names[k]);
        cJSON_AddNumberToObject(o, "1min", s->load[k][0]);
        cJSON_AddNumberToObject(o, "5min", s->load[k][1]);
        cJSON_AddNumberToObject(o, "15min", s->load[k][2]);
    }
    broker_sys_json_extra(b, j);
    js = cJSON_PrintUnformatted(j);
    if (js) {
        put(b, "$SYS/broker/stats/json", js);
        cJSON_free(js);
    }
    cJSON_Delete(j);
}
