/*
 * The broker core's private header: the structures shared by the three files
 * of the broker core: broker.c (registry, publish pipeline), session.c (state
 * that outlives a connection) and client.c (the MQTT protocol on one
 * connection). They form one subsystem, so their bodies are visible to
 * each other here and to nothing else.
 *
 *   broker --sessions (hash by client id)--> session --client--> client
 *     |                                         ^                  |
 *     +-- router (owner = session) -------------+                  +-- conn
 *     +-- retain (msg refs)
 */
#ifndef MQTTD_BROKER_INT_H
#define MQTTD_BROKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "broker.h"
#include "client.h"
#include "conn.h"
#include "flow.h"
#include "hashmap.h"
#include "shard.h"
#include "log.h"
#include "mqtt_codec.h"
#include "router.h"
#include "session.h"

struct auth;
struct authq;
struct hub;
struct tls_ctx;
struct msg;
struct session;
struct client;

/* ---- broker ---------------------------------------------------------- */

/* The registry: sessions by client id and the live clients. */
struct registry {
    struct hashmap sessions;  /* session.he, keyed by client_id */
    struct hashmap_seed seed; /* random: peers choose the client ids */
    struct client *clients;   /* all live clients (doubly linked) */
    size_t nclients;
    uint64_t auto_id; /* next assigned client id */
};

/* One delivery target after merging overlapping subscriptions. */
struct target {
    struct session *s;
    uint8_t qos;
    bool rap; /* retain as published */
    uint8_t nsub_ids;
    uint32_t sub_ids[4];
};

/*
 * One broker shard: the registry, the publish pipeline's state (router,
 * retained store, routing scratch), per-listener auth and TLS, counters;
 * flow control and the link to the other threads are their own modules.
 */
struct broker {
    struct registry reg;
    struct ev_loop *loop;
    struct conn_loop *cl;
    struct log *log;
    struct conf *conf;
    struct router *router;
    struct retain *retain;
    struct auth **auth;              /* per listener */
    struct tls_ctx **tls;            /* per listener, NULL for plain */
    struct tls_tickets *tickets;     /* session ticket keys, NULL = no TLS */
    struct log_ratelimit maxconn_rl; /* max_connections refusals: 1/s */
    struct authq *authq;             /* password checks off the loop */
    time_t *tls_not_after; /* per listener, from the last expiry check */
    struct sys *sys;       /* $SYS state */
    double last_sys;
    bool over_memory; /* heap above memory_limit (checked each second) */
    /* persistence_sync always: acknowledgements held until the snapshot
     * holding their messages is on disk */
    struct deferred_ack {
        struct client *c; /* NULL once that client closed */
        uint16_t pid;
        uint8_t type;
        uint8_t rc; /* reason code (v5) */
    } * acks;
    size_t nacks, acks_cap;
    size_t nlisteners;
    size_t *listener_clients; /* connected clients per listener */
    struct router_hits hits;
    struct target *targets;
    size_t ntargets_cap;
    uint32_t mark_gen;
    bool routing; /* hits/targets/mark_gen in use (no nesting) */
    uint64_t msg_seq;
    double started;
    double last_expiry_report;
    struct flow *flow; /* publisher flow control */
    double last_tls_check;
    struct broker_stats st;
    struct log_ratelimit limit_rl; /* limit-hit log lines */
    struct shard *shard;         /* threads > 1: its place among the threads */
    struct ocsp_loop *ocsp;      /* client-certificate OCSP, NULL when unused */
    struct ocsp_cache *ocsp_own; /* threads 1: the cache (else the hub's) */
    struct tls_staple **staple;  /* per listener, NULL without stapling */
    struct tls_staples *staples; /* where the staples are kept */
    bool staples_own;            /* threads 1: b->staples is b's */
    bool staple_fetch;           /* this shard fetches (the first one) */
    /* more members of the stats JSON (bridges), broker_set_sys_json */
    void (*sys_json)(void *ud, void *json);
    void *sys_json_ud;
    /* cluster mode: a client's or will's publish after local routing */
    void (*pub_hook)(void *ud, const struct msg *m);
    void *pub_hook_ud;
    /* cluster mode: shared groups are served through the cluster
     * (broker_set_share_hook, broker_publish_share) */
    void (*sub_hook)(void *ud, const char *filter, size_t len, int delta);
    void *sub_hook_ud;
    const char *share_only; /* broker_publish_share: this group only */
    size_t share_only_len;
    bool share_local; /* routing a $SYS message: local groups too */
    /* cluster mode: a client was accepted (CONNACK 0 sent) */
    void (*conn_hook)(void *ud, const char *client_id);
    void *conn_hook_ud;
    /* cluster mode: the will a session holds changed (broker_set_will_hook) */
    void (*will_hook)(void *ud, const char *client_id, const struct msg *will,
                      uint32_t delay, int64_t due);
    void *will_hook_ud;
    /* cluster mode: persistent sessions across nodes */
    const struct broker_sess_hooks *sess_hooks;
    void *sess_hooks_ud;
};

/* The listener index a bridge's local end (client.internal) crosses to
 * another shard with (broker_migrate): it stays internal there. */
#define BROKER_LI_INTERNAL 0xFFFFu

/* Add / remove sessions by client id (broker.c; find is in broker.h). */
void broker_session_add(struct broker *b, struct session *s);
void broker_session_remove(struct broker *b, struct session *s);

/* The acknowledgement of a client's QoS 1/2 PUBLISH (PUBACK or PUBREC
 * with its packet id), written by broker_publish once it knows whether
 * the message has subscribers, before any copy is delivered. */
struct publish_ack {
    uint8_t type;
    uint16_t pid;
};

/* What broker_publish did. */
enum publish_result {
    PUBLISH_OK,
    PUBLISH_WAIT,   /* routed; hold the publisher back (flow control) */
    PUBLISH_DENIED, /* the write ACL refused it: nothing else was done */
};

/*
 * broker_publish: the one publish pipeline, for every message that enters
 * the broker (a client's PUBLISH, a will, $SYS):
 *
 *   1. write ACL of the publisher: client c, else the session s whose
 *      will m is; none for the broker's own ($SYS: c and s NULL). Denied:
 *      acl_denied counted, PUBLISH_DENIED (the caller answers and logs).
 *   2. m->retain: the retained store. A client's or a will's message
 *      counts as a durable change and is held to max_retained_messages /
 *      max_retained_bytes (a client's refusal is counted in limit_hits
 *      and logged, rate-limited; the message is still routed); $SYS is
 *      stored outside those limits.
 *   3. routing to this shard's subscribers: No Local against the origin
 *      session (c->s or s), merged overlapping subscriptions, read ACL
 *      per subscriber, collected into the targets.
 *   4. ack (c's QoS 1/2 PUBLISH, else NULL): client_ack_accepted
 *      with reason 0x10 "No matching subscribers" for v5 when no target
 *      here and no other shard holds subscriptions, else 0; written
 *      before the copies below, so a publisher subscribed to its own
 *      topic reads the ack first (Mosquitto's order).
 *   5. session_deliver to each target.
 *   6. threads > 1: the hand-off to the other shards (outboxes, posted
 *      once per loop iteration by broker_flush_out).
 *
 * Not re-entrant: steps 3-5 use the shard's routing scratch (hits,
 * targets, marks), so nothing they call may publish (closes are deferred
 * by conn.c: a will is published after the loop). A nested call is a bug;
 * it is refused (logged as an internal error, PUBLISH_DENIED) rather than
 * corrupt the outer routing.
 *
 * Returns PUBLISH_WAIT when client c is to be read no more until
 * broker_resume_paused (a subscriber, or another shard's inbox, is over
 * its high-water mark; the caller pauses c), PUBLISH_OK otherwise. Takes
 * no ownership of m.
 */
enum publish_result broker_publish(struct broker *b, struct client *c,
                                   struct session *s, struct msg *m,
                                   const struct publish_ack *ack);

/* broker_pause / broker_resume_paused: publisher flow control. pause
 * stops reading from c until broker_resume_paused (a queue drained, or
 * the one-second tick gave up on a stuck subscriber). */
void broker_pause(struct broker *b, struct client *c);
void broker_resume_paused(struct broker *b);
void broker_unpause(struct broker *b, struct client *c);

/* broker_publish_will: publish s's will now (write ACL checked, retained
 * when flagged) and clear it. */
void broker_publish_will(struct broker *b, struct session *s);

/* broker_will_changed: tell the will hook (if any) what s's will is now
 * (after a change of s->will or s->will_at). */
void broker_will_changed(struct broker *b, struct session *s);

/* broker_defer_ack / broker_drop_acks: hold a PUBACK/PUBREC (reason rc)
 * until the next durable save (broker_flush_acks); forget a closing
 * client's. */
void broker_defer_ack(struct broker *b, struct client *c, uint8_t type,
                      uint16_t pid, uint8_t rc);
void broker_drop_acks(struct broker *b, struct client *c);

/* broker_migrate: hand c's connection (its CONNECT at rest[0..n)) to the
 * shard that owns client id (id, len), and free c without callbacks.
 * Returns false when this shard owns it (nothing done). */
bool broker_migrate(struct broker *b, struct client *c, const char *id,
                    size_t len, const uint8_t *rest, size_t n);

/* broker_flush_out: hand the messages queued for other shards over now
 * (otherwise done once per loop iteration). */
void broker_flush_out(struct broker *b);

/* broker_owns_id: true when this shard owns client id (id, len). */
bool broker_owns_id(const struct broker *b, const char *id, size_t len);

/* broker_auth: the auth of listener li. */
struct auth *broker_auth(struct broker *b, size_t li);

/* ---- session ---------------------------------------------------------- */

/* One subscription as the session remembers it (persistence, cleanup):
 * one allocation each, so that its entry in the session's index stays put
 * (session.c). */
struct sub {
    struct hashmap_entry he; /* in session.ix, keyed by filter */
    size_t pos;              /* its place in session.subs */
    uint32_t sub_id;
    uint16_t len;
    uint8_t qos;
    uint8_t flags; /* ROUTER_* */
    uint8_t rh;    /* retain handling */
    char filter[]; /* len bytes and a NUL */
};

struct inflight {
    struct msg *m;
    uint16_t pid;
    uint8_t qos;
    uint8_t state;
    bool retain;
    uint8_t nsub_ids;
    uint32_t sub_ids[4];
    uint32_t bytes; /* payload bytes counted against max_inflight_bytes */
};

struct qitem {
    struct msg *m;
    uint8_t qos;
    bool retain;
    uint8_t nsub_ids;
    uint32_t sub_ids[4];
};

struct session {
    struct broker *b;
    char *client_id;
    struct client *client; /* attached connection, NULL when offline */
    size_t listener;       /* listener of the last connection */
    char *username;        /* of the last connection (ACL checks) */
    uint8_t version;
    uint32_t expiry;      /* seconds; UINT32_MAX = never */
    double offline_since; /* ev time when detached */
    /* subscriptions: in snapshot order, and by filter (session.c) */
    struct sub **subs;
    size_t nsubs, subs_cap;
    struct hashmap ix; /* sub.he, keyed under b->reg.seed */
    /* outgoing QoS 1/2 window */
    struct inflight *infl;
    uint16_t infl_cap, infl_n;
    uint16_t next_pid;
    uint64_t infl_bytes;
    /* queued messages (FIFO ring) */
    struct qitem *q;
    size_t q_head, q_n, q_cap;
    size_t q_bytes;
    /* incoming QoS 2 packet ids awaiting PUBREL */
    uint16_t *rx_qos2;
    uint16_t rx_qos2_n, rx_qos2_cap;
    /* will */
    struct msg *will;
    uint32_t will_delay;
    double will_at; /* delayed will due (ev time), 0 = none */
    /* flow control: this session's queue holds publishers back, or it
     * stopped draining and may no longer hold anyone (stuck) */
    struct flow_sub flow;
    bool drop_logged;
    /* dedupe mark for broker_publish */
    uint32_t mark;
    uint32_t mark_idx;
    /* in b->reg.sessions (keyed by client_id) */
    struct hashmap_entry he;
    bool internal; /* last connected by a bridge's local end: no ACL */
};

struct session *session_new(struct broker *b, const char *client_id);
/* session_free: unsubscribe everything, drop queues, free. */
void session_free(struct session *s);
/* session_subscribe / session_unsubscribe: router + remembered list.
 * Return 0 or -1 (unsubscribe: none existed). */
int session_subscribe(struct session *s, const char *filter, size_t len,
                      uint8_t qos, uint8_t flags, uint8_t rh, uint32_t sub_id,
                      bool *existed);
int session_unsubscribe(struct session *s, const char *filter, size_t len);
/* session_has_sub: true when the session holds exactly this filter. */
bool session_has_sub(const struct session *s, const char *filter, size_t len);
/* What session_deliver did with a message (bits, so that a caller
 * delivering to many sessions can OR the answers together). */
enum deliver_result {
    DELIVER_SENT = 0x1,    /* written to the client (or into its window) */
    DELIVER_QUEUED = 0x2,  /* waiting in the session's queue */
    DELIVER_DROPPED = 0x4, /* not delivered (limits, offline QoS 0, too
                              large) */
    DELIVER_WAIT = 0x8,    /* delivered or queued, but the subscriber is over
                              its high-water mark: hold the publisher back */
};

/* session_deliver flags (one argument: six stay in registers) */
#define DELIVER_RETAIN 0x01u   /* send with the retain flag */
#define DELIVER_MAY_HOLD 0x02u /* the publisher can be held back */

/*
 * session_deliver: send now, or queue (bounded), per state and QoS.
 * DELIVER_MAY_HOLD: the publisher can be held back (another client, or a
 * remote shard); only then is DELIVER_WAIT returned, and a QoS 0 message
 * to a slow but reading subscriber is written past its high-water mark
 * instead of dropped. The caller owning the publisher acts on it.
 */
enum deliver_result session_deliver(struct session *s, struct msg *m,
                                    uint8_t qos, unsigned flags,
                                    const uint32_t *sub_ids, uint8_t nsub_ids);
/* session_ack: PUBACK/PUBREC/PUBCOMP from the client with its reason
 * code (0 for v3). Returns 0, or -1 when the packet id is unknown. */
int session_ack(struct session *s, uint8_t type, uint16_t pid, uint8_t rc);
/* session_resume: after (re)attach: resend inflight (DUP) and pump the
 * queue. */
void session_resume(struct session *s);
/* session_pump: move queued messages into the window while there is room. */
void session_pump(struct session *s);
/* session_rx_qos2_*: incoming QoS 2 ids. add returns 1 when already
 * present, 0 when added, -1 when full. */
int session_rx_qos2_add(struct session *s, uint16_t pid, uint16_t max);
bool session_rx_qos2_del(struct session *s, uint16_t pid);

/* ---- client ----------------------------------------------------------- */

struct client {
    struct broker *b;
    struct conn *conn;
    struct session *s; /* after CONNECT */
    struct client *prev, *next;
    size_t listener;
    uint8_t version;       /* 0 before CONNECT */
    bool connected;        /* CONNACK 0 sent */
    bool clean_disconnect; /* DISCONNECT received: no will */
    bool send_will;        /* v5 DISCONNECT 0x04 */
    bool taken_over;
    bool dropping; /* QoS 0 being dropped: output over limit */
    bool paused;   /* held by flow control (flow_hold) */
    uint16_t keepalive;
    uint16_t recv_max;   /* the client's Receive Maximum (v5) */
    uint32_t max_packet; /* the client's Maximum Packet Size, 0 none */
    uint16_t alias_max;  /* our Topic Alias Maximum for this client */
    char **aliases;      /* incoming topic aliases [1..alias_max] */
    char **out_alias;    /* outgoing aliases [0..out_alias_n) */
    uint16_t out_alias_n, out_alias_max;
    bool problem_info;           /* v5 Request Problem Information */
    char *client_id;             /* also for log lines before a session */
    struct connect_req *pending; /* CONNECT waiting for authq */
    struct authq_job *auth_job;
    char *username;
    uint64_t pw_stamp; /* password-file entry authenticated against */
    struct ocsp_waiter *ocsp_wait; /* OCSP query this client waits for */
    double ocsp_next;              /* connected: next OCSP re-check (0: none) */
    bool bridge;   /* a bridge (try_private / our own): subscriptions get
                      No Local and Retain As Published (Mosquitto) */
    bool internal; /* the local end of one of our bridges (bridge.c):
                      trusted, no authentication or ACL */
    /* CONNECT held by the cluster's session hook */
    void *sess_wait;
};

/* client_ocsp_recheck: a connected client's periodic OCSP re-check, due
 * (broker_tick); a revoked answer disconnects it (v5: 0x98). */
void client_ocsp_recheck(struct client *c);

/* client_new: protocol state for a new conn on listener li (conn.c calls
 * back through client_handler). */
extern const struct conn_handler client_handler;
struct client *client_new(struct broker *b, size_t li);

/* client_discard: free a client that has not handled its CONNECT (its
 * conn moved to another shard): no callbacks, no log line. */
void client_discard(struct client *c);

/*
 * client_send_publish: encode a PUBLISH to c (v3 or v5 per c->version).
 * Returns 0, or -1 when it was not sent (over the client's Maximum Packet
 * Size, or a QoS 0 message to a client whose output is over its limit).
 */
int client_send_publish(struct client *c, struct msg *m, uint8_t qos,
                        bool retain, bool dup, uint16_t pid,
                        const uint32_t *sub_ids, uint8_t nsub_ids);
/* client_send_publish_force: a QoS 0 PUBLISH written even when the output
 * is over the high-water mark (flow control keeps it bounded). */
int client_send_publish_force(struct client *c, struct msg *m, bool retain,
                              const uint32_t *sub_ids, uint8_t nsub_ids);
void client_send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t rc);
/* client_ack_accepted: PUBACK/PUBREC (reason rc, v5) for a PUBLISH the
 * broker took: now, or with persistence_sync always once the state that
 * holds it is on disk (broker_defer_ack). */
void client_ack_accepted(struct client *c, uint8_t type, uint16_t pid,
                         uint8_t rc);
/* client_disconnect: v5: DISCONNECT with rc first; then close. */
void client_disconnect(struct client *c, uint8_t rc, const char *reason);
/* client_can_send: true when c's output is below the high-water mark. */
bool client_can_send(const struct client *c);
/* client_can_force: true when c's output is below its hard limit (a QoS 0
 * message may still be written past the high-water mark). */
bool client_can_force(const struct client *c);

#endif
