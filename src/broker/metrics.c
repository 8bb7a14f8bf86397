/*
 * metrics.c - the Prometheus text exposition and the status page's JSON
 * (see metrics.h). Every figure comes from broker_totals (the sum over the
 * threads, as $SYS reports it), the retained store, the TLS contexts in
 * force and the daemon's struct metrics_ext; nothing here keeps state.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "bridge.h"
#include "broker.h"
#include "conf.h"
#include "hub.h"
#include "retain.h"
#include "tls.h"
#include "util.h"

/* Label values of the reason enums in broker.h, in their order. */
static const char *const drop_names[STATS_DROP_N] = {
    "queue_full", "slow_consumer", "too_large", "memory_limit"};
static const char *const tls_names[STATS_TLS_N] = {
    "timeout",
    "no_client_certificate",
    "certificate_expired",
    "certificate_revoked",
    "unknown_ca",
    "verify_failed",
    "protocol_version",
    "not_tls",
    "client_rejected_server_certificate",
    "closed",
    "other"};
static const char *const auth_names[STATS_AUTH_N] = {
    "bad_username_or_password", "not_authorized", "bad_auth_method"};

#define TLS_FAILED_PREFIX "TLS handshake failed: "

int metrics_tls_fail_class(const char *reason)
{
    /* the reasons tls.c and conn.c give, by their start */
    static const struct {
        const char *start;
        int cls;
    } map[] = {
        {"handshake timeout", STATS_TLS_TIMEOUT},
        {"no client certificate", STATS_TLS_NO_CLIENT_CERT},
        {"client certificate expired", STATS_TLS_CERT_EXPIRED},
        {"client certificate revoked", STATS_TLS_CERT_REVOKED},
        {"client certificate from unknown CA", STATS_TLS_UNKNOWN_CA},
        {"certificate verify failed", STATS_TLS_VERIFY_FAILED},
        {"client certificate", STATS_TLS_VERIFY_FAILED},
        {"a CA certificate", STATS_TLS_VERIFY_FAILED},
        {"CRL", STATS_TLS_VERIFY_FAILED},
        {"no CRL", STATS_TLS_VERIFY_FAILED},
        {"protocol version", STATS_TLS_PROTOCOL_VERSION},
        {"not a TLS handshake", STATS_TLS_NOT_TLS},
        {"plaintext HTTP", STATS_TLS_NOT_TLS},
        {"client rejected the server certificate", STATS_TLS_CLIENT_REJECTED},
        {"connection closed during TLS handshake", STATS_TLS_CLOSED},
        {"client aborted", STATS_TLS_CLOSED},
    };
    const char *why;

    if (reason == NULL)
        return -1;
    if (strcmp(reason, "connection closed during TLS handshake") == 0)
        return STATS_TLS_CLOSED;
    if (strncmp(reason, TLS_FAILED_PREFIX, sizeof(TLS_FAILED_PREFIX) - 1) != 0)
        return -1;
    why = reason + sizeof(TLS_FAILED_PREFIX) - 1;
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (strncmp(why, map[i].start, strlen(map[i].start)) == 0)
            return map[i].cls;
    return STATS_TLS_OTHER;
}

/* ---- text exposition --------------------------------------------------- */

/* A label value with \, " and newline escaped (exposition format). */
static void put_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help,
                uint64_t v)
{
    head(f, name, type, help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* listener_label: "ADDR:PORT" ("*:PORT" for every address), "[v6]:PORT",
 * or the unix socket path. */
static void listener_label(const struct conf_listener *l, char *buf, size_t len)
{
    if (l->unix_path)
        snprintf(buf, len, "%s", l->unix_path);
    else if (l->address && strchr(l->address, ':'))
        snprintf(buf, len, "[%s]:%u", l->address, (unsigned)l->port);
    else
        snprintf(buf, len, "%s:%u", l->address ? l->address : "*",
                 (unsigned)l->port);
}

static const char *listener_proto(const struct conf_listener *l)
{
    if (l->protocol == CONF_PROTO_HTTP)
        return l->tls_enabled ? "https" : "http";
    return l->tls_enabled ? "mqtts" : "mqtt";
}

struct cert_walk {
    FILE *f;          /* text output, or */
    cJSON *arr;       /* JSON output */
    const char *name; /* listener label */
};

static void cert_text(void *ud, const struct tls_cert_info *ci)
{
    struct cert_walk *w = ud;

    if (ci->not_after <= 0)
        return;
    fputs("mqttd_tls_certificate_expiry_timestamp_seconds{listener=\"", w->f);
    put_label(w->f, w->name);
    fputs("\",kind=\"", w->f);
    put_label(w->f, ci->kind);
    fputs("\",file=\"", w->f);
    put_label(w->f, ci->file);
    fputs("\",subject=\"", w->f);
    put_label(w->f, ci->subject);
    fprintf(w->f, "\"} %lld\n", (long long)ci->not_after);
}

static void cert_json(void *ud, const struct tls_cert_info *ci)
{
    struct cert_walk *w = ud;
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "listener", w->name);
    cJSON_AddStringToObject(o, "kind", ci->kind);
    cJSON_AddStringToObject(o, "file", ci->file);
    cJSON_AddStringToObject(o, "subject", ci->subject);
    cJSON_AddNumberToObject(o, "not_after", (double)ci->not_after);
    cJSON_AddItemToArray(w->arr, o);
}

static void reasons(FILE *f, const char *name, const char *help,
                    const char *const *labels, const uint64_t *v, size_t n)
{
    head(f, name, "counter", help);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s{reason=\"%s\"} %llu\n", name, labels[i],
                (unsigned long long)v[i]);
}

/* bridge_text: the bridges' figures bs[0..n) (bridges_stat, the source of
 * $SYS/broker/bridges/...). */
static void bridge_text(FILE *f, const struct bridge_stat *bs, size_t n)
{
    static const struct {
        const char *name, *help;
    } ctr[] = {
        {"mqttd_bridge_messages_received_total",
         "Messages the bridge relayed from the remote broker to this one."},
        {"mqttd_bridge_messages_sent_total",
         "Messages the bridge relayed from this broker to the remote one."},
        {"mqttd_bridge_reconnects_total",
         "Connections of the bridge made after the first."},
    };
    if (n == 0)
        return;
    head(f, "mqttd_bridge_up", "gauge",
         "1 when the bridge is connected to the remote broker.");
    for (size_t i = 0; i < n; i++) {
        fputs("mqttd_bridge_up{bridge=\"", f);
        put_label(f, bs[i].name);
        fprintf(f, "\"} %d\n", strcmp(bs[i].state, "up") == 0);
    }
    head(f, "mqttd_bridge_state", "gauge",
         "The bridge's state as $SYS/broker/bridges/NAME/state reports it "
         "(always 1).");
    for (size_t i = 0; i < n; i++) {
        fputs("mqttd_bridge_state{bridge=\"", f);
        put_label(f, bs[i].name);
        fputs("\",state=\"", f);
        put_label(f, bs[i].state);
        fputs("\"} 1\n", f);
    }
    for (size_t k = 0; k < ARRAY_LEN(ctr); k++) {
        head(f, ctr[k].name, "counter", ctr[k].help);
        for (size_t i = 0; i < n; i++) {
            const struct bridge_stat *st = &bs[i];
            uint64_t v = k == 0   ? st->msgs_in
                         : k == 1 ? st->msgs_out
                                  : st->reconnects;
            fprintf(f, "%s{bridge=\"", ctr[k].name);
            put_label(f, st->name);
            fprintf(f, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

char *metrics_text(struct broker *b, const struct metrics_ext *x, size_t *len)
{
    const struct conf *cf = broker_conf(b);
    struct hub_totals t;
    const struct broker_stats *st = &t.st;
    char *out = NULL, name[300];
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);

    if (f == NULL)
        abort(); /* out of memory, as the x*alloc functions */
    broker_totals(b, true, &t);
    head(f, "mqttd_build_info", "gauge", "mqttd version (always 1).");
    fprintf(f, "mqttd_build_info{version=\"%s\"} 1\n", MQTTD_VERSION);
    head(f, "mqttd_uptime_seconds", "gauge", "Seconds since the start.");
    fprintf(f, "mqttd_uptime_seconds %.3f\n", broker_uptime(b));
    one(f, "mqttd_ready", "gauge",
        "1 when /readyz answers 200 (listeners bound, persistence loaded, "
        "not shutting down).",
        x->ready ? 1 : 0);
    one(f, "mqttd_clients_connected", "gauge", "Connected MQTT clients.",
        t.clients);
    one(f, "mqttd_sessions", "gauge",
        "Sessions held (connected and offline persistent ones).", t.sessions);
    one(f, "mqttd_sessions_offline", "gauge",
        "Persistent sessions without a connection.", t.sessions_offline);
    one(f, "mqttd_connections_accepted_total", "counter",
        "MQTT connections accepted.", st->clients_total);
    one(f, "mqttd_clients_rejected_total", "counter",
        "Connections refused at CONNECT or over a limit.",
        st->clients_rejected);
    one(f, "mqttd_malformed_packets_total", "counter",
        "Connections closed for a malformed packet.", st->malformed);
    one(f, "mqttd_messages_received_total", "counter",
        "MQTT packets of every type received.", st->msgs_received);
    one(f, "mqttd_messages_sent_total", "counter",
        "MQTT packets of every type sent.", st->msgs_sent);
    one(f, "mqttd_publish_messages_received_total", "counter",
        "PUBLISH packets received from clients.", st->pub_msgs_received);
    one(f, "mqttd_publish_messages_sent_total", "counter",
        "PUBLISH packets sent to clients.", st->pub_msgs_sent);
    one(f, "mqttd_bytes_received_total", "counter",
        "Bytes of MQTT received (after TLS decryption).", st->bytes_received);
    one(f, "mqttd_bytes_sent_total", "counter",
        "Bytes of MQTT sent (before TLS encryption).", st->bytes_sent);
    one(f, "mqttd_subscriptions", "gauge", "Subscriptions held.",
        t.subscriptions);
    one(f, "mqttd_retained_messages", "gauge", "Retained messages held.",
        retain_count(broker_retain(b)));
    one(f, "mqttd_store_messages", "gauge",
        "Messages queued for or in flight to clients.", t.store_msgs);
    one(f, "mqttd_store_bytes", "gauge", "Bytes of the queued messages.",
        t.store_bytes);
    reasons(f, "mqttd_messages_dropped_total",
            "Messages not delivered to a subscriber (or refused), by "
            "reason.",
            drop_names, st->dropped, STATS_DROP_N);
    one(f, "mqttd_acl_denied_total", "counter",
        "Publishes and subscriptions refused by the ACL.", st->acl_denied);
    one(f, "mqttd_limit_hits_total", "counter",
        "Times a configured limit refused something.", st->limit_hits);
    reasons(f, "mqttd_tls_handshake_failures_total",
            "TLS handshakes on MQTT listeners that failed, by reason.",
            tls_names, st->tls_failed, STATS_TLS_N);
    reasons(f, "mqttd_auth_failures_total",
            "CONNECTs refused by authentication, by reason.", auth_names,
            st->auth_failed, STATS_AUTH_N);

    head(f, "mqttd_listener_connections", "gauge",
         "Connections open on each listener.");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        const struct conf_listener *l = &cf->listeners[i];
        size_t v = l->protocol == CONF_PROTO_HTTP
                       ? (x->http_conns ? x->http_conns[i] : 0)
                       : broker_listener_clients(b, i);
        listener_label(l, name, sizeof(name));
        fputs("mqttd_listener_connections{listener=\"", f);
        put_label(f, name);
        fprintf(f, "\",protocol=\"%s\"} %zu\n", listener_proto(l), v);
    }

    head(f, "mqttd_tls_certificate_expiry_timestamp_seconds", "gauge",
         "notAfter of every certificate loaded (server, chain, CA) and "
         "nextUpdate of every CRL, as a Unix time.");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        struct cert_walk w = {.f = f, .name = name};
        listener_label(&cf->listeners[i], name, sizeof(name));
        tls_ctx_certs(broker_tls_ctx(b, i), cert_text, &w);
    }
    one(f, "mqttd_tls_expiry_warning_seconds", "gauge",
        "tls_expiry_warning_days in seconds: certificates expiring within "
        "this are warned about.",
        (uint64_t)cf->tls_expiry_warning_days * 86400u);
    one(f, "mqttd_tls_client_certificates", "gauge",
        "Connected clients that presented a certificate.", t.client_certs);
    if (t.client_cert_soonest)
        one(f, "mqttd_tls_client_certificate_soonest_expiry_timestamp_seconds",
            "gauge",
            "The soonest notAfter among connected clients' certificates.",
            t.client_cert_soonest);

    head(f, "mqttd_thread_busy_seconds_total", "counter",
         "Time each event-loop thread spent handling events.");
    for (unsigned i = 0; i < x->nthreads; i++)
        fprintf(f, "mqttd_thread_busy_seconds_total{thread=\"%u\"} %.6f\n", i,
                x->threads[i].busy_seconds);
    head(f, "mqttd_thread_utilisation_ratio", "gauge",
         "Busy share of each event-loop thread over the last second.");
    for (unsigned i = 0; i < x->nthreads; i++)
        fprintf(f, "mqttd_thread_utilisation_ratio{thread=\"%u\"} %.4f\n", i,
                x->threads[i].utilisation);
    bridge_text(f, x->bridges, x->nbridges);
    fclose(f);
    *len = n;
    return out;
}

/* ---- status JSON ------------------------------------------------------- */

void metrics_sample(struct broker *b, struct metrics_sample *s)
{
    struct hub_totals t;

    broker_totals(b, true, &t);
    s->clients = t.clients;
    s->msgs_rx = t.st.msgs_received;
    s->msgs_tx = t.st.msgs_sent;
    s->pub_rx = t.st.pub_msgs_received;
    s->pub_tx = t.st.pub_msgs_sent;
    s->bytes_rx = t.st.bytes_received;
    s->bytes_tx = t.st.bytes_sent;
    s->dropped = t.st.pub_dropped;
}

char *metrics_json(struct broker *b, const struct metrics_ext *x,
                   const struct metrics_sample *hist, size_t n)
{
    const struct conf *cf = broker_conf(b);
    struct hub_totals t;
    cJSON *j = cJSON_CreateObject(), *o, *a, *h;
    char name[300], *s, *js;

    broker_totals(b, true, &t);
    cJSON_AddStringToObject(j, "version", MQTTD_VERSION);
    cJSON_AddNumberToObject(j, "now", (double)time(NULL));
    cJSON_AddNumberToObject(j, "uptime", broker_uptime(b));
    cJSON_AddBoolToObject(j, "ready", x->ready);
    cJSON_AddNumberToObject(j, "warning_days",
                            (double)cf->tls_expiry_warning_days);
    o = cJSON_AddObjectToObject(j, "totals");
    cJSON_AddNumberToObject(o, "clients", (double)t.clients);
    cJSON_AddNumberToObject(o, "sessions", (double)t.sessions);
    cJSON_AddNumberToObject(o, "subscriptions", (double)t.subscriptions);
    cJSON_AddNumberToObject(o, "retained",
                            (double)retain_count(broker_retain(b)));
    cJSON_AddNumberToObject(o, "pub_received", (double)t.st.pub_msgs_received);
    cJSON_AddNumberToObject(o, "pub_sent", (double)t.st.pub_msgs_sent);
    cJSON_AddNumberToObject(o, "dropped", (double)t.st.pub_dropped);
    a = cJSON_AddArrayToObject(j, "listeners");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        const struct conf_listener *l = &cf->listeners[i];
        cJSON *e = cJSON_CreateObject();
        listener_label(l, name, sizeof(name));
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "protocol", listener_proto(l));
        cJSON_AddNumberToObject(
            e, "connections",
            (double)(l->protocol == CONF_PROTO_HTTP
                         ? (x->http_conns ? x->http_conns[i] : 0)
                         : broker_listener_clients(b, i)));
        cJSON_AddItemToArray(a, e);
    }
    a = cJSON_AddArrayToObject(j, "threads");
    for (unsigned i = 0; i < x->nthreads; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "busy_seconds", x->threads[i].busy_seconds);
        cJSON_AddNumberToObject(e, "utilisation", x->threads[i].utilisation);
        cJSON_AddItemToArray(a, e);
    }
    a = cJSON_AddArrayToObject(j, "certificates");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        struct cert_walk w = {.arr = a, .name = name};
        listener_label(&cf->listeners[i], name, sizeof(name));
        tls_ctx_certs(broker_tls_ctx(b, i), cert_json, &w);
    }
    o = cJSON_AddObjectToObject(j, "client_certificates");
    cJSON_AddNumberToObject(o, "count", (double)t.client_certs);
    cJSON_AddNumberToObject(o, "soonest", (double)t.client_cert_soonest);
    /* history: one array per series keeps the document small */
    h = cJSON_AddObjectToObject(j, "history");
    {
        static const char *const keys[] = {
            "t",      "clients",  "msgs_rx",  "msgs_tx", "pub_rx",
            "pub_tx", "bytes_rx", "bytes_tx", "dropped", "utilisation"};
        cJSON *arr[ARRAY_LEN(keys)];
        for (size_t k = 0; k < ARRAY_LEN(keys); k++)
            arr[k] = cJSON_AddArrayToObject(h, keys[k]);
        for (size_t i = 0; i < n; i++) {
            const struct metrics_sample *p = &hist[i];
            const double v[ARRAY_LEN(keys)] = {p->t,
                                               (double)p->clients,
                                               (double)p->msgs_rx,
                                               (double)p->msgs_tx,
                                               (double)p->pub_rx,
                                               (double)p->pub_tx,
                                               (double)p->bytes_rx,
                                               (double)p->bytes_tx,
                                               (double)p->dropped,
                                               p->utilisation};
            for (size_t k = 0; k < ARRAY_LEN(keys); k++)
                cJSON_AddItemToArray(arr[k], cJSON_CreateNumber(v[k]));
        }
    }
    js = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (js == NULL)
        abort(); /* out of memory, as the x*alloc functions */
    s = xstrdup(js);
    cJSON_free(js);
    return s;
}
