/*
 * conf.h - the configuration snapshot and its Mosquitto-syntax parser.
 *
 * A struct conf is an immutable snapshot: conf_load() builds a new one from
 * a file (and include_dir), the broker takes it as a whole, and a SIGHUP
 * builds another one next to it; on any error the old one stays in force.
 * The parser never applies settings itself.
 *
 *   struct conf
 *     +-- global settings (limits, logging, persistence, ...)
 *     +-- sec           security settings used when per_listener_settings
 *     |                 is false (or as defaults for every listener)
 *     +-- listeners[0..n)
 *           +-- address / port / unix path, protocol options
 *           +-- tls       certfile, keyfile, ... (NULL certfile = plain)
 *           +-- sec       per-listener security (per_listener_settings true)
 *
 * Every string in the snapshot is owned by it and freed by conf_free().
 */
#ifndef MQTTD_CONF_H
#define MQTTD_CONF_H

/* Upper bound of the threads key. */
#define CONF_MAX_THREADS 64

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr;

/* Client-certificate policy of a TLS listener. */
enum conf_cert_mode {
    CONF_CERT_NONE = 0, /* no CertificateRequest is sent */
    CONF_CERT_OPTIONAL, /* requested and verified when given */
    CONF_CERT_REQUIRED, /* handshake fails without a valid certificate */
};

/* tls_identity_source: which part of the client certificate
 * use_identity_as_username takes (mqttd; Mosquitto always takes the CN). */
enum conf_identity_source {
    CONF_ID_CN = 0,    /* the first commonName (Mosquitto's rule) */
    CONF_ID_SAN_URI,   /* the first URI subjectAltName (SPIFFE ID) */
    CONF_ID_SAN_DNS,   /* the first DNS subjectAltName */
    CONF_ID_SAN_EMAIL, /* the first rfc822Name (email) subjectAltName */
};

/* Authentication / authorisation settings (global or per listener). */
struct conf_security {
    int allow_anonymous; /* -1 = not set (Mosquitto 2.0 default rule), 0, 1 */
    char *password_file; /* NULL = none */
    char *acl_file;      /* NULL = none */
    bool allow_zero_length_clientid; /* default true */
    char *auto_id_prefix;            /* default "auto-" */
    /* where password_file / acl_file were set, for error messages */
    const char *password_file_src;
    int password_file_line;
    const char *acl_file_src;
    int acl_file_line;
};

/* tls_ocsp_check: off, soft (only "revoked" refuses), hard (anything but
 * "good" refuses). */
enum conf_ocsp_check {
    CONF_OCSP_OFF = 0,
    CONF_OCSP_SOFT,
    CONF_OCSP_HARD,
};

struct conf_tls {
    char *certfile, *keyfile, *cafile, *capath, *crlfile, *dhparamfile;
    char *ciphers;       /* TLS <= 1.2 list; NULL = mqttd's strong default */
    char *ciphers_tls13; /* NULL = OpenSSL default TLS 1.3 suites */
    char *tls_groups;    /* NULL = OpenSSL default groups */
    int min_version;     /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    bool require_certificate;      /* Mosquitto key */
    enum conf_cert_mode cert_mode; /* derived from require_certificate
                                      unless client_cert_mode is set */
    bool use_identity_as_username;
    bool use_subject_as_username;
    enum conf_identity_source identity_source; /* [CONF_ID_CN] */
    /* tls_engine ID (NULL = none) and tls_keyform engine: keyfile is then
     * a key id for that engine, e.g. a PKCS#11 URI (pkcs11_uri.h) */
    char *engine;
    bool keyform_engine;
    /* client-certificate OCSP (docs/tls.md) and stapling */
    enum conf_ocsp_check ocsp_check; /* tls_ocsp_check [off] */
    char *ocsp_responder;            /* URL overriding the AIA, or NULL */
    uint32_t ocsp_cache_seconds;     /* [3600] */
    bool ocsp_stapling;              /* tls_ocsp_stapling [false] */
    char *ocsp_stapling_file;        /* DER kept fresh outside, or NULL */
    /* source location of the certfile line, for FILE:LINE errors on load */
    const char *src;
    int line;
};

/* What a listener speaks ("protocol"). */
enum conf_protocol {
    CONF_PROTO_MQTT = 0,
    CONF_PROTO_WEBSOCKETS, /* MQTT over WebSockets (transport_ws.h) */
    CONF_PROTO_HTTP,       /* the operations endpoints (http_ops.c) */
};

struct conf_listener {
    uint16_t port;       /* 0 with unix_path set = unix socket */
    char *address;       /* bind address/host; NULL = all (or loopback when
                            implied by the no-config default) */
    char *unix_path;     /* "listener 0 /path" */
    int socket_domain;   /* AF_UNSPEC (default), AF_INET or AF_INET6 */
    int max_connections; /* -1 = unlimited */
    uint32_t max_connection_rate; /* accepted per second, 0 = unlimited */
    uint8_t max_qos;              /* max_qos / maximum_qos: 0..2, default 2 */
    uint16_t max_topic_alias;     /* default 10 */
    bool tls_enabled;             /* certfile given */
    struct conf_tls tls;
    struct conf_security sec;  /* used when conf.per_listener_settings */
    uint8_t proxy_protocol;    /* enable_proxy_protocol: 0 (off), 1, 2 */
    bool proxy_v2_require_tls; /* proxy_protocol_v2_require_tls */
    const char *src;
    int line;                    /* where the listener line is */
    enum conf_protocol protocol; /* [mqtt] */
    char *ws_path;               /* websockets_path; NULL = any path */
    char **ws_origins;           /* websockets_origin values; none = any */
    size_t nws_origins;
    /* protocol http: operations endpoints (/metrics, /healthz, ...) */
    struct cidr *http_allow; /* http_allow_from ranges (owned) */
    size_t nhttp_allow;
};

struct conf {
    char *path; /* the main file (NULL for built-in defaults) */
    /* listeners */
    struct conf_listener *listeners;
    size_t nlisteners;
    bool implicit_listener; /* no listener configured: loopback 1883 */
    bool per_listener_settings;
    struct conf_security sec;

    /* limits (Mosquitto defaults in brackets) */
    int max_connections;          /* -1 [-1]: applies to the default listener */
    uint32_t max_connection_rate; /* [0] = unlimited; listener default */
    /* max_keepalive: 0 = off (mqttd default; Mosquitto 2.0.11: 65535,
     * 10..65535). N > 0: a v3 client whose keepalive is 0 or above N is
     * refused (CONNACK 2), a v5 one is sent Server Keep Alive N. */
    uint16_t max_keepalive;
    uint32_t max_packet_size;       /* 0 = protocol max [0] */
    uint32_t message_size_limit;    /* 0 = none [0] */
    uint16_t max_inflight_messages; /* [20]; 0 = unlimited */
    uint64_t max_inflight_bytes;    /* [0] */
    uint32_t max_queued_messages;   /* [1000]; 0 = unlimited */
    uint64_t max_queued_bytes;      /* [0] = unlimited */
    bool queue_qos0_messages;       /* [false] */
    bool retain_available;          /* [true] */
    bool set_tcp_nodelay;           /* mqttd default true (Mosquitto false) */
    uint8_t max_qos; /* max_qos / maximum_qos [2]: default for listeners */
    uint16_t max_topic_alias;              /* [10] default for listeners */
    uint32_t max_subscriptions_per_client; /* mqttd [10000]; 0 = unlimited */
    uint32_t max_retained_messages;        /* mqttd [100000]; 0 = unlimited */
    uint64_t max_retained_bytes;           /* mqttd [256 MiB]; 0 = unlimited */
    uint64_t memory_limit;                 /* [0] = unlimited (bytes) */
    uint32_t connect_timeout; /* mqttd: seconds to first CONNECT [10] */
    uint32_t persistent_client_expiration; /* seconds, 0 = never [0] */
    bool upgrade_outgoing_qos;             /* [false] */
    bool check_retain_source;              /* [false] */

    /* logging */
    unsigned log_types;         /* LOG_* bits; default LOG_DEFAULT_TYPES */
    unsigned log_dests;         /* LOGD_* bits; default stderr */
    char *log_file;             /* for "log_dest file PATH" */
    bool log_timestamp;         /* [true] */
    char *log_timestamp_format; /* NULL = Unix seconds */
    bool log_json;              /* log_format json */
    bool connection_messages;   /* [true] */

    /* process */
    char *pid_file;
    char *user;            /* ["mosquitto" in Mosquitto]; mqttd ["mqttd"] */
    uint32_t sys_interval; /* [10] seconds; 0 = $SYS disabled */
    uint32_t threads;      /* [1] event-loop threads; 0 = auto (one per CPU) */

    /* persistence */
    bool persistence;           /* [false] */
    char *persistence_location; /* directory, default "" (cwd) */
    char *persistence_file;     /* ["mqttd.db"] */
    uint32_t autosave_interval; /* [1800] */
    bool autosave_on_changes;   /* [false] */
    int persistence_sync;       /* 0 = snapshot (default), 1 = always */

    /* TLS lifecycle (mqttd) */
    uint32_t tls_reload_interval;         /* [0] = only on SIGHUP */
    uint32_t tls_expiry_warning_days;     /* [30] */
    uint32_t tls_handshake_timeout;       /* [10] seconds */
    char *tls_session_ticket_key_file;    /* NULL = random in-memory keys */
    uint32_t tls_session_ticket_lifetime; /* [7200] s, key rotation too */

    /* protocol http (mqttd): seconds /readyz answers 503 after SIGTERM
     * before the process stops [0] */
    uint32_t http_shutdown_grace;

    /* MQTT 5 */
    uint16_t max_receive_maximum; /* mqttd [65535]: server Receive Max */

    /* bridges ("connection" sections) */
    struct conf_bridge *bridges;
    size_t nbridges;
    /* cluster mode (docs/cluster.md) */
    char *cluster_nats;      /* comma-separated nats:// URLs; NULL = off */
    char *cluster_node_name; /* NULL: the host name */
    /* TLS and credentials of the NATS connection (cluster_auth.c) */
    char *cluster_nats_cafile;       /* TLS to NATS: trusted CAs (PEM) */
    char *cluster_nats_certfile;     /* client certificate chain (PEM) */
    char *cluster_nats_keyfile;      /* its private key (PEM) */
    char *cluster_nats_user;         /* user/password authentication */
    char *cluster_nats_password;     /* never logged */
    char *cluster_nats_credentials;  /* a NATS .creds file (JWT + nkey) */
    uint32_t cluster_msgs_max_age;   /* MQTT_MSGS stream: seconds */
    uint64_t cluster_msgs_max_bytes; /* MQTT_MSGS stream: bytes */
    /* seconds without heartbeat before a node is dead (cluster_wills.c) */
    uint32_t cluster_node_timeout;
    /* WebSockets: bytes of an upgrade request head; 0 = default (4096) */
    uint32_t websockets_headers_size;
};

/* ---- bridges (Mosquitto's "connection" sections; conf_bridge.c) ---- */

/* Direction of a bridge topic line. */
enum conf_bridge_dir {
    CONF_BRIDGE_OUT = 1,  /* local -> remote */
    CONF_BRIDGE_IN = 2,   /* remote -> local */
    CONF_BRIDGE_BOTH = 3, /* both */
};

/* One "topic PATTERN [DIR [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]" line. The
 * strings are never NULL ("" for an empty pattern or prefix). */
struct conf_bridge_topic {
    char *pattern;
    char *local_prefix, *remote_prefix;
    enum conf_bridge_dir dir;
    uint8_t qos;
};

struct conf_bridge_addr {
    char *host;
    uint16_t port;
};

enum conf_bridge_start {
    CONF_BRIDGE_AUTOMATIC = 0,
    CONF_BRIDGE_LAZY,
    CONF_BRIDGE_ONCE,
};

/* One bridge. Mosquitto's defaults in brackets. */
struct conf_bridge {
    char *name;
    struct conf_bridge_addr *addrs; /* at least one */
    size_t naddrs;
    bool round_robin; /* [false]: the first address is the main one */
    struct conf_bridge_topic *topics;
    size_t ntopics;
    uint8_t protocol_version; /* MQTT_V31/V311/V5 levels 3, 4, 5 [4] */
    bool cleansession;        /* [false] */
    bool local_cleansession;  /* [= cleansession] */
    char *remote_clientid;    /* [NAME.HOSTNAME] */
    char *local_clientid;     /* [local.REMOTE_CLIENTID] */
    char *remote_username, *remote_password;           /* NULL = none */
    char *local_username, *local_password;             /* NULL = none */
    char *cafile, *capath, *certfile, *keyfile, *alpn; /* NULL = none */
    bool tls;            /* cafile or capath given */
    bool insecure;       /* bridge_insecure [false] */
    int tls_min_version; /* TLS1_2_VERSION [tlsv1.2] or TLS1_3_VERSION */
    bool notifications;  /* [true] */
    bool notifications_local_only; /* [false] */
    char *notification_topic;      /* [$SYS/broker/connection/CLIENTID/state] */
    bool try_private;              /* [true] */
    bool attempt_unsubscribe;      /* bridge_attempt_unsubscribe [true] */
    uint32_t restart_base;         /* restart_timeout: constant (cap 0) or */
    uint32_t restart_cap;          /* backoff base..cap [5 30] */
    enum conf_bridge_start start_type;
    uint16_t keepalive;       /* keepalive_interval [60], 5..65535 */
    uint32_t idle_timeout;    /* [60] (lazy) */
    uint32_t threshold;       /* [10] (lazy) */
    uint32_t max_packet_size; /* bridge_max_packet_size [0] = unlimited */
    bool outgoing_retain;     /* bridge_outgoing_retain [true] */
    const char *src;          /* the connection line */
    int line;
};

/* conf_bridge_dup: a deep copy of one bridge that outlives its snapshot
 * (its src/line are cleared); conf_bridge_free frees it (accepts NULL). */
struct conf_bridge *conf_bridge_dup(const struct conf_bridge *b);
void conf_bridge_free(struct conf_bridge *b);

/*
 * Error sink: called once per error with the file, the 1-based line (0 when
 * the error is not about one line) and the message. conf_load() keeps going
 * after an error so every error in the file is reported. Warnings (a
 * Mosquitto key accepted although it has no effect in mqttd) go to the same
 * sink with a message that starts with CONF_WARNING_PREFIX; they do not
 * make the load fail.
 */
#define CONF_WARNING_PREFIX "warning: "

typedef void (*conf_err_fn)(void *arg, const char *file, int line,
                            const char *msg);

/* conf_err_stderr: a conf_err_fn that prints "FILE:LINE: MSG" to stderr. */
void conf_err_stderr(void *arg, const char *file, int line, const char *msg);

/*
 * conf_load: parse the file at 'path' (and the files its include_dir lines
 * name) into a new snapshot. Every error goes to 'errfn'; the return value is
 * NULL when there was at least one error (nothing partial is returned).
 * Files named by keys (certfile, password_file, ...) are checked to be
 * readable here. Ownership of the result passes to the caller.
 */
struct conf *conf_load(const char *path, conf_err_fn errfn, void *arg);

/*
 * conf_load_buf: the same over an in-memory text named 'name' (for tests and
 * the fuzzer). include_dir lines are still followed on disk. File
 * readability checks are skipped when 'check_files' is false.
 */
struct conf *conf_load_buf(const char *name, const char *buf, size_t len,
                           bool check_files, conf_err_fn errfn, void *arg);

/*
 * conf_default: the snapshot used when mqttd runs with no config file:
 * Mosquitto 2.0's, one listener on 127.0.0.1 and ::1 port 1883 (or 'port'
 * when non-zero, from -p) with allow_anonymous true. Never NULL.
 */
struct conf *conf_default(uint16_t port);

/*
 * conf_effective_anonymous: the allow_anonymous value in force for a
 * security block after Mosquitto 2.0's default rule (unset means false when
 * listeners were configured, true for the implicit loopback listener).
 */
bool conf_effective_anonymous(const struct conf *c,
                              const struct conf_security *sec);

/* conf_listener_sec: the security block that applies to listener i. */
const struct conf_security *conf_listener_sec(const struct conf *c, size_t i);

/* conf_free: free a snapshot and everything it owns. Accepts NULL. */
void conf_free(struct conf *c);

#endif
