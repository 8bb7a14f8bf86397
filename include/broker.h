/*
 * broker.h - the MQTT broker core of one event loop: client registry,
 * sessions, router, retained store, auth and TLS contexts per listener.
 * server.c owns sockets and signals and hands accepted fds in here.
 */
#ifndef MQTTD_BROKER_H
#define MQTTD_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct ev_loop;
struct conf;
struct conn_loop;
struct client;
struct hub_totals;
struct log;
struct msg;
struct retain;
struct session;
struct broker;

/* Why a message was dropped (mqttd_messages_dropped_total{reason}). */
enum stats_drop {
    STATS_DROP_QUEUE_FULL,    /* max_queued_messages / max_queued_bytes */
    STATS_DROP_SLOW_CONSUMER, /* QoS 0 to a client whose output is full */
    STATS_DROP_TOO_LARGE,     /* over the receiver's Maximum Packet Size */
    STATS_DROP_MEMORY_LIMIT,  /* refused while over memory_limit */
    STATS_DROP_N
};

/* Why a TLS handshake failed (metrics_tls_fail_class). */
enum stats_tls_fail {
    STATS_TLS_TIMEOUT,
    STATS_TLS_NO_CLIENT_CERT,
    STATS_TLS_CERT_EXPIRED,
    STATS_TLS_CERT_REVOKED,
    STATS_TLS_UNKNOWN_CA,
    STATS_TLS_VERIFY_FAILED,
    STATS_TLS_PROTOCOL_VERSION,
    STATS_TLS_NOT_TLS,
    STATS_TLS_CLIENT_REJECTED,
    STATS_TLS_CLOSED,
    STATS_TLS_OTHER,
    STATS_TLS_N
};

/* Why a CONNECT failed authentication. */
enum stats_auth_fail {
    STATS_AUTH_BAD_CREDENTIALS, /* bad user name or password */
    STATS_AUTH_NOT_AUTHORIZED,  /* refused by the authenticator chain */
    STATS_AUTH_BAD_METHOD,      /* unsupported v5 authentication method */
    STATS_AUTH_N
};

/* Counters exposed through $SYS and the stats JSON. Only uint64_t members
 * (hub_totals_sum adds them up as an array). */
struct broker_stats {
    uint64_t msgs_received, msgs_sent;
    uint64_t bytes_received, bytes_sent;
    uint64_t pub_msgs_received, pub_msgs_sent;
    uint64_t pub_dropped;      /* QoS 0 dropped for slow consumers, queue
                                  overflow, oversize for the receiver */
    uint64_t clients_total;    /* connections accepted */
    uint64_t clients_rejected; /* refused at CONNECT or over limits */
    uint64_t malformed;        /* connections closed for bad input */
    uint64_t acl_denied;
    uint64_t limit_hits;
    uint64_t changes;                   /* durable-state changes (autosave) */
    uint64_t dropped[STATS_DROP_N];     /* pub_dropped by reason */
    uint64_t tls_failed[STATS_TLS_N];   /* TLS handshakes that failed */
    uint64_t auth_failed[STATS_AUTH_N]; /* CONNECTs refused by auth */
    uint64_t ocsp_refused;              /* clients refused or cut off by OCSP */
    uint64_t tls_handshakes; /* TLS handshakes completed, resumed ones too */
    uint64_t tls_resumed;    /* of which resumed from a session ticket */
};

/*
 * broker_new: a broker on 'loop' with snapshot 'c' (ownership passes to
 * the broker) and logger lg (borrowed). Builds auth and TLS contexts for
 * every listener; on failure returns NULL after writing every error to
 * stderr-style 'err' (one "FILE:LINE: message" per line).
 */
struct broker *broker_new(struct ev_loop *loop, struct conf *c, struct log *lg,
                          char *err, size_t errlen);

/* broker_free: close every connection and free everything. Accepts NULL. */
void broker_free(struct broker *b);

/*
 * broker_set_hub: make b shard idx of h (threads > 1): bind its inbox on
 * b's loop (call on b's thread, before its loop runs). Client ids, their
 * sessions and subscribers are then split between the shards; messages,
 * retained ones included, cross through the hub.
 */
struct hub;
void broker_set_hub(struct broker *b, struct hub *h, unsigned idx);

/*
 * threads > 1, TLS files changed on disk (tls_reload_interval): only the
 * first thread watches them; before it announces a reload it calls fn(ud),
 * which must have every other thread run broker_tls_check (its own
 * contexts) and return once they did.
 */
void broker_set_tls_sync(struct broker *b, void (*fn)(void *ud), void *ud);
void broker_tls_check(struct broker *b);

/* broker_conf: the snapshot in force (borrowed). */
const struct conf *broker_conf(const struct broker *b);

/*
 * broker_accept: take an accepted non-blocking fd from listener 'li'.
 * Enforces max_connections (closes the fd with a log line when over, and
 * returns NULL). Returns the new client (owned by the broker).
 */
struct client *broker_accept(struct broker *b, size_t li, int fd,
                             const struct sockaddr *sa, socklen_t salen);

/*
 * broker_accept_internal: take fd, one end of a socketpair whose other end
 * is the local side of one of our bridges (bridge.c): a client of
 * listener 0 that is trusted (no authentication, no ACL) and marked as a
 * bridge (its subscriptions are No Local, Retain As Published). Returns
 * the client (owned by the broker).
 */
struct client *broker_accept_internal(struct broker *b, int fd);

/* broker_mark_internal: mark the session of client id 'id' (restored from
 * persistence) as a bridge's local end before it reconnects. */
void broker_mark_internal(struct broker *b, const char *id);

/*
 * broker_reload: apply snapshot c (validated by conf_load; ownership
 * passes to the broker on success). Rebuilds auth and TLS contexts; when
 * any fails the old ones stay and -1 is returned with the errors in err
 * (c is then freed by the broker). Listener changes that need a restart
 * are logged. Connected clients whose certificate is revoked by a new CRL
 * are disconnected.
 */
int broker_reload(struct broker *b, struct conf *c, char *err, size_t errlen);

/* broker_tick: once per second from server.c: expiries, $SYS, TLS
 * checks. */
void broker_tick(struct broker *b);

/* broker_shutdown: disconnect every client (v5: DISCONNECT 0x8B). */
void broker_shutdown(struct broker *b);

/*
 * broker_pending_acks: acknowledgements waiting for a durable save
 * (persistence_sync always). broker_flush_acks sends them (ok true) after
 * the caller saved the state, or, when the save failed (ok false),
 * disconnects their clients so the unacknowledged messages are re-sent
 * after a reconnect.
 */
size_t broker_pending_acks(const struct broker *b);
void broker_flush_acks(struct broker *b, bool ok);

/*
 * broker_publish_sys: publish m (retained when m->retain, outside the
 * retained-store limits) from the broker itself ($SYS): the same pipeline
 * as a client's PUBLISH without the write-ACL check. Takes no ownership.
 */
void broker_publish_sys(struct broker *b, struct msg *m);

/*
 * broker_set_sys_json: fn(ud, json) adds members to the cJSON object of
 * $SYS/broker/stats/json each time it is built (bridges); NULL removes it.
 * broker_sys_json_extra runs it (sys.c).
 */
void broker_set_sys_json(struct broker *b, void (*fn)(void *ud, void *json),
                         void *ud);
void broker_sys_json_extra(struct broker *b, void *json);

/*
 * broker_set_publish_hook: cluster mode (threads 1): after a client's or a
 * will's PUBLISH passed the write ACL and was routed to this node's
 * subscribers, fn(ud, m) is called (m borrowed: msg_ref to keep it). Not
 * called for the broker's own ($SYS) messages nor for those given to
 * broker_publish_remote. fn NULL: off (the default).
 */
void broker_set_publish_hook(struct broker *b,
                             void (*fn)(void *ud, const struct msg *m),
                             void *ud);

/*
 * broker_set_connect_hook: cluster mode (threads 1): fn(ud, client_id)
 * is called on the loop each time a client is accepted (after its
 * CONNACK 0; id borrowed). fn NULL: off (the default).
 */
void broker_set_connect_hook(struct broker *b,
                             void (*fn)(void *ud, const char *client_id),
                             void *ud);

/*
 * broker_set_will_hook: cluster mode (threads 1): fn(ud, client_id, will,
 * delay, due) is called on the loop each time the will that the session
 * of client_id holds changes (arguments borrowed). will non-NULL: the
 * session holds this will; delay: the seconds it waits once the client is
 * gone (the Will Delay Interval capped by the session expiry, 0 when the
 * session ends with the connection); due: 0 while the client is
 * connected, else the Unix time the pending delayed will is due. will
 * NULL: the session no longer holds a will (published, discarded, or the
 * session ended). fn NULL: off (the default).
 */
void broker_set_will_hook(struct broker *b,
                          void (*fn)(void *ud, const char *client_id,
                                     const struct msg *will, uint32_t delay,
                                     int64_t due),
                          void *ud);

/*
 * broker_publish_orphan_will: cluster mode: publish m, the will of a
 * client of a node that died (its write ACL was checked there at
 * CONNECT), as this node's own will: retained store, this node's
 * subscribers, then the publish hook (the other nodes). Takes no
 * ownership. Returns false when called from inside delivery.
 */
bool broker_publish_orphan_will(struct broker *b, struct msg *m);

/*
 * broker_take_over: client id 'id' connected to another node (cluster
 * mode): close its connection here as a local takeover does (v5:
 * DISCONNECT 0x8E Session taken over; v3: closed). Its will is published
 * only when its session ends here (expiry 0) and has no Will Delay
 * Interval. Returns false when no client with that id is connected here.
 */
bool broker_take_over(struct broker *b, const char *id);

/*
 * broker_publish_remote: a message another node published (cluster mode):
 * route it to this node's subscribers (read ACL, QoS, queue limits as for
 * any message; the publisher is never held back) without the publish hook
 * and without the retained store. Takes no ownership. Returns false when
 * called from inside delivery (refused with a log line).
 */
bool broker_publish_remote(struct broker *b, struct msg *m);

/*
 * broker_set_share_hook: cluster mode (threads 1): shared groups
 * ("$share/GROUP/FILTER") are served through the cluster. From now on no
 * publish (local or broker_publish_remote) is routed to a shared group,
 * except the broker's own $SYS messages; the cluster hands each group its
 * messages with broker_publish_share. fn(ud, filter, len, delta) is
 * called for every subscription a session adds (+1) or removes (-1), any
 * filter, and at once for every subscription already held (+1). fn NULL:
 * off (the default; the single-node behaviour).
 */
void broker_set_share_hook(struct broker *b,
                           void (*fn)(void *ud, const char *filter, size_t len,
                                      int delta),
                           void *ud);

/*
 * broker_publish_share: cluster mode: deliver m to one member of this
 * node's shared group key ("$share/GROUP/FILTER", len bytes), taken in
 * round-robin order (read ACL, QoS, queue limits as for any message).
 * Takes no ownership. Returns false when the group has no member here
 * that takes it, or when called from inside delivery.
 */
bool broker_publish_share(struct broker *b, const char *key, size_t len,
                          struct msg *m);

/* broker_stats: the counters (borrowed). */
const struct broker_stats *broker_stats(const struct broker *b);

/* broker_client_count: connected clients. */
size_t broker_client_count(const struct broker *b);

/* broker_log: the logger (borrowed). broker_conn_loop: the connection set
 * of b's loop (borrowed). broker_retain: the retained store (borrowed). */
struct log *broker_log(const struct broker *b);
struct conn_loop *broker_conn_loop(const struct broker *b);
struct retain *broker_retain(const struct broker *b);

/* broker_session_find: the session of client id 'id', or NULL. */
struct session *broker_session_find(struct broker *b, const char *id);

/* broker_session_count: sessions in the registry. */
size_t broker_session_count(const struct broker *b);

/*
 * broker_session_foreach: fn(s, arg) for every session in the registry.
 * fn may drop s itself (session_drop), nothing else in the registry.
 */
void broker_session_foreach(struct broker *b,
                            void (*fn)(struct session *s, void *arg),
                            void *arg);

/* broker_clear: drop every session (no wills) and every retained
 * message: back to an empty broker after a failed load. */
void broker_clear(struct broker *b);

/* broker_uptime: seconds since broker_new, by the loop's clock. */
double broker_uptime(const struct broker *b);

/* broker_tls_not_after: the certificate expiry of listener li as of the
 * last expiry check (0: none or not TLS). */
time_t broker_tls_not_after(const struct broker *b, size_t li);

/* broker_tls_ctx: listener li's TLS context in force (borrowed; take a
 * reference to keep it), NULL for a plain listener. */
struct tls_ctx;
struct tls_ctx *broker_tls_ctx(const struct broker *b, size_t li);

/* broker_listener_clients: MQTT connections open on listener li now
 * (every thread's: the counters are shared). */
size_t broker_listener_clients(const struct broker *b, size_t li);

/*
 * broker_totals: the $SYS figures of b (counters, clients, sessions,
 * subscriptions, store). With threads > 1 and all true, b's are handed to
 * the hub and the sum over every thread is returned.
 */
void broker_totals(struct broker *b, bool all, struct hub_totals *t);

/*
 * Cluster mode, persistent sessions that move between nodes
 * (src/cluster/cluster_sess.c). All called on the loop thread.
 *
 * offline(ud, s): the client of session s closed and s stays (expiry >
 * 0), after its will was handled. s is borrowed (may be dropped later).
 *
 * connect(ud, c, id, clean, &token): client c passed authentication
 * with client id 'id' and clean start 'clean'. Return true to hold the
 * CONNECT (nothing read from c, no CONNACK) until broker_connect_resume;
 * *token is then handed to cancel(ud, token) if c closes first (after
 * which broker_connect_resume must not be called for it).
 */
struct broker_sess_hooks {
    void (*offline)(void *ud, struct session *s);
    bool (*connect)(void *ud, struct client *c, const char *id, bool clean,
                    void **token);
    void (*cancel)(void *ud, void *token);
};

/* broker_set_session_hooks: install h (borrowed, NULL: off, the
 * default) with ud. */
void broker_set_session_hooks(struct broker *b,
                              const struct broker_sess_hooks *h, void *ud);

/* broker_connect_resume: go on with a CONNECT the connect hook held:
 * attach or create the session of c's client id, CONNACK, resend. */
void broker_connect_resume(struct client *c);

/* broker_session_adopt: a new offline session for held client c (its
 * id, user name and listener; version, expiry as given) in place of any
 * offline copy this node holds, for the cluster to fill
 * (session_restore_sub, broker_deliver_restored) before
 * broker_connect_resume attaches c to it. NULL when c's id is online
 * here. */
struct session *broker_session_adopt(struct client *c, uint8_t version,
                                     uint32_t expiry);

/* broker_client_id: client c's id (borrowed). */
const char *broker_client_id(const struct client *c);

/*
 * broker_deliver_restored: queue m (a message kept for offline session s
 * by another node) on s at QoS qos, with subscription identifier sub_id
 * (0: none), if s's read ACL allows it and m has not expired. Takes no
 * ownership. Returns true when queued.
 */
bool broker_deliver_restored(struct broker *b, struct session *s, struct msg *m,
                             uint8_t qos, uint32_t sub_id);

#endif
