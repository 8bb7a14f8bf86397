/*
 * mqtt_codec.h - pure decoding and encoding of MQTT 3.1, 3.1.1 and 5.0
 * packets. No I/O, no globals, no allocation: decoders fill caller-owned
 * structs whose strings point into the input buffer; encoders write into a
 * caller-supplied buffer.
 *
 * Framing:
 *
 *   +--------+-------------------+---------------------------------+
 *   | byte 0 | remaining length  | variable header + payload       |
 *   | type|fl| 1..4 bytes varint | 'remaining' bytes               |
 *   +--------+-------------------+---------------------------------+
 *
 * The caller first peeks the fixed header (mqtt_frame_peek), checks the
 * remaining length against its limits *before* buffering the body, then
 * decodes the complete packet with mqtt_decode().
 */
#ifndef MQTTD_MQTT_CODEC_H
#define MQTTD_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes of the decoders (bytes consumed are >= 0). */
#define MQTT_MALFORMED (-1)
#define MQTT_INCOMPLETE (-2)

/* Protocol levels. */
#define MQTT_V31 3
#define MQTT_V311 4
#define MQTT_V5 5

#define MQTT_MAX_REMAINING 268435455u /* 0xFFFFFF7F as a varint */

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5 reason codes (also used internally to say why a packet failed). */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_USER_OR_PASS = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1/3.1.1 CONNACK return codes. */
enum mqtt_v3_connack {
    MQTT_V3_ACCEPTED = 0,
    MQTT_V3_REFUSED_PROTOCOL = 1,
    MQTT_V3_REFUSED_IDENTIFIER = 2,
    MQTT_V3_REFUSED_UNAVAILABLE = 3,
    MQTT_V3_REFUSED_BAD_USER_PASS = 4,
    MQTT_V3_REFUSED_NOT_AUTHORIZED = 5,
};

/* MQTT 5 property identifiers. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* A length-prefixed string or binary value; points into the input. */
struct mqtt_str {
    const char *p;
    uint16_t len;
};
struct mqtt_bin {
    const uint8_t *p;
    uint16_t len;
};

/*
 * Decoded MQTT 5 properties. Every singleton property that was present has
 * its bit (1ull << id) set in 'present'. 'raw'/'raw_len' is the whole
 * property block (without its length prefix) so repeated properties (user
 * properties, subscription identifiers) can be walked in order with
 * mqtt_prop_next(). For v3 packets everything is zero.
 */
struct mqtt_props {
    uint64_t present;
    const uint8_t *raw;
    uint32_t raw_len;
    uint8_t payload_format;
    uint32_t message_expiry;
    struct mqtt_str content_type;
    struct mqtt_str response_topic;
    struct mqtt_bin correlation_data;
    uint32_t subscription_id; /* the first one; SUBSCRIBE allows one */
    uint32_t n_subscription_ids;
    uint32_t session_expiry;
    struct mqtt_str assigned_client_id;
    uint16_t server_keep_alive;
    struct mqtt_str auth_method;
    struct mqtt_bin auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay;
    uint8_t request_response_info;
    struct mqtt_str response_info;
    struct mqtt_str server_reference;
    struct mqtt_str reason_string;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint32_t n_user_props;
    uint32_t maximum_packet_size;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
};

#define MQTT_HAS_PROP(props, id) (((props)->present >> (id)) & 1u)

/* One property as walked by mqtt_prop_next(). */
struct mqtt_prop {
    uint8_t id;
    uint32_t u32;         /* byte, two-byte, four-byte and varint values */
    struct mqtt_str str;  /* UTF-8 string values; name of a user property */
    struct mqtt_str str2; /* value of a user property */
    struct mqtt_bin bin;  /* binary values */
};

/*
 * mqtt_prop_next: walk a property block that mqtt_decode() already
 * validated. *off starts at 0. Returns 1 and fills *out, or 0 at the end.
 */
int mqtt_prop_next(const uint8_t *raw, uint32_t raw_len, uint32_t *off,
                   struct mqtt_prop *out);

struct mqtt_connect {
    uint8_t version; /* 3, 4 or 5 */
    bool bridge;     /* level 0x83/0x84: a Mosquitto bridge (try_private) */
    bool clean_start;
    uint16_t keepalive;
    struct mqtt_str client_id;
    bool has_will;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_props will_props;
    struct mqtt_str will_topic;
    struct mqtt_bin will_payload; /* 'len' may be up to 65535 */
    bool has_username;
    struct mqtt_str username;
    bool has_password;
    struct mqtt_bin password;
    struct mqtt_props props;
};

struct mqtt_connack {
    bool session_present;
    uint8_t rc;
    struct mqtt_props props;
};

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_str topic; /* may be empty in v5 when a topic alias is set */
    uint16_t packet_id;    /* 0 for QoS 0 */
    const uint8_t *payload;
    uint32_t payload_len;
    struct mqtt_props props;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t rc; /* 0 when absent */
    struct mqtt_props props;
};

/*
 * SUBSCRIBE / UNSUBSCRIBE: the entries were validated by mqtt_decode();
 * walk them with mqtt_sub_next() / mqtt_unsub_next(). Filters are checked
 * for UTF-8 and non-emptiness only; wildcard placement and depth are
 * checked by topic_filter_check(): the broker closes the connection on a
 * malformed filter and refuses one over the depth limit per filter.
 */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    const uint8_t *entries;
    uint32_t entries_len;
    uint32_t count;
};

/* SUBSCRIBE options byte (v5 bits; v3 uses only qos). */
struct mqtt_sub_opts {
    uint8_t qos;
    bool no_local;
    bool retain_as_published;
    uint8_t retain_handling; /* 0, 1, 2 */
};

int mqtt_sub_next(const struct mqtt_subscribe *s, uint32_t *off,
                  struct mqtt_str *filter, struct mqtt_sub_opts *opts);
int mqtt_unsub_next(const struct mqtt_subscribe *s, uint32_t *off,
                    struct mqtt_str *filter);

struct mqtt_suback { /* SUBACK / UNSUBACK as decoded (tests, fuzzers) */
    uint16_t packet_id;
    struct mqtt_props props;
    const uint8_t *codes;
    uint32_t count;
};

struct mqtt_disconnect { /* DISCONNECT and AUTH */
    uint8_t rc;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;  /* enum mqtt_type */
    uint8_t flags; /* low nibble of byte 0 */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe;   /* also UNSUBSCRIBE */
        struct mqtt_suback suback;         /* also UNSUBACK */
        struct mqtt_disconnect disconnect; /* also AUTH */
    } u;
};

/*
 * mqtt_frame_peek: read the fixed header at buf[0..len). Returns the header
 * size (2..5) and stores byte 0 in *first and the remaining length in
 * *remaining; MQTT_INCOMPLETE when more bytes are needed; MQTT_MALFORMED for
 * a 5th length byte or a non-minimal encoding [MQTT-1.5.5-1]. Never reads
 * past len.
 */
int mqtt_frame_peek(const uint8_t *buf, size_t len, uint8_t *first,
                    uint32_t *remaining);

/*
 * mqtt_decode: decode one complete packet (fixed header included) from
 * buf[0..len) for a connection at protocol level 'version' (0 before
 * CONNECT: only CONNECT is decodable then, and its own level is used).
 * 'from_client' selects the direction: packets only a server may send
 * (CONNACK, SUBACK, UNSUBACK, PINGRESP) are malformed from a client and
 * vice versa.
 *
 * Returns the bytes consumed (> 0) and fills *pkt; MQTT_INCOMPLETE when buf
 * does not hold the whole packet; MQTT_MALFORMED with *rc set to the reason
 * (MQTT_RC_MALFORMED, MQTT_RC_PROTOCOL_ERROR, MQTT_RC_UNSUPPORTED_PROTOCOL,
 * MQTT_RC_TOPIC_NAME_INVALID, ...) and *why to a static human-readable text
 * for the log ("reserved flag bits set in PUBLISH", ...).
 *
 * Checks include: reserved flag bits per packet type; QoS 3; DUP on QoS 0;
 * packet id 0 where one is required; every string valid UTF-8 without
 * U+0000; protocol name/level ("MQIsdp"/3, "MQTT"/4, "MQTT"/5); CONNECT flag
 * rules [MQTT-3.1.2-3, -11, -13, -15, -22]; PUBLISH topics without
 * wildcards and non-empty (v5: empty allowed only with a Topic Alias);
 * SUBSCRIBE/UNSUBSCRIBE with at least one entry, reserved option bits zero,
 * retain handling 3 refused; v5 properties: unknown id -> MQTT_RC_MALFORMED,
 * a property not allowed in this packet or a non-repeatable one repeated or
 * an out-of-range value -> MQTT_RC_PROTOCOL_ERROR; trailing bytes after
 * the last field -> MQTT_RC_MALFORMED. Work is linear in len.
 */
int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version,
                bool from_client, struct mqtt_packet *pkt, uint8_t *rc,
                const char **why);

/* ---- encoding ------------------------------------------------------- */

/*
 * Outgoing properties: a small builder over a caller buffer. Use
 * mqtt_pb_init, then the mqtt_pb_* adders; 'overflow' becomes true when the
 * buffer was too small (the content is then unusable).
 */
struct mqtt_pb {
    uint8_t *buf;
    uint32_t cap;
    uint32_t len;
    bool overflow;
};
void mqtt_pb_init(struct mqtt_pb *pb, uint8_t *buf, uint32_t cap);
void mqtt_pb_byte(struct mqtt_pb *pb, uint8_t id, uint8_t v);
void mqtt_pb_u16(struct mqtt_pb *pb, uint8_t id, uint16_t v);
void mqtt_pb_u32(struct mqtt_pb *pb, uint8_t id, uint32_t v);
void mqtt_pb_varint(struct mqtt_pb *pb, uint8_t id, uint32_t v);
void mqtt_pb_str(struct mqtt_pb *pb, uint8_t id, const char *s, uint16_t len);
void mqtt_pb_bin(struct mqtt_pb *pb, uint8_t id, const void *p, uint16_t len);
void mqtt_pb_user(struct mqtt_pb *pb, const char *k, uint16_t klen,
                  const char *v, uint16_t vlen);
/* Append raw, already encoded properties (e.g. a forwarded block). */
void mqtt_pb_raw(struct mqtt_pb *pb, const uint8_t *raw, uint32_t len);

/*
 * mqtt_props_forward: the properties of a received PUBLISH (p, decoded by
 * mqtt_decode) that travel with the message to its receivers (MQTT 5
 * 3.3.2.3: Payload Format Indicator, Content Type, Response Topic,
 * Correlation Data, User Properties, in their order; plus Message Expiry
 * Interval when keep_expiry — a broker turns it into a deadline itself),
 * encoded into out. Topic Alias and Subscription Identifiers are dropped.
 * Returns the length, or 0 when out (cap bytes) is too small; cap >=
 * p->raw_len always suffices.
 */
uint32_t mqtt_props_forward(const struct mqtt_props *p, bool keep_expiry,
                            uint8_t *out, uint32_t cap);

/* mqtt_varint_size: bytes needed to encode v as a variable byte integer. */
int mqtt_varint_size(uint32_t v);
/* mqtt_varint_put: encode v at out; returns bytes written (1..4). */
int mqtt_varint_put(uint8_t *out, uint32_t v);

/*
 * All encoders below write one whole packet into out[0..cap) and return its
 * size; when cap is too small they write nothing and return the size needed
 * (so callers can size a buffer with cap 0). 'props'/'props_len' is a v5
 * property block without its length prefix (ignored for v3 versions; pass
 * NULL, 0 for none). None of them can fail otherwise.
 */

/* CONNACK. rc is the v3 return code or the v5 reason code per version. */
size_t mqtt_enc_connack(uint8_t *out, size_t cap, uint8_t version,
                        bool session_present, uint8_t rc, const uint8_t *props,
                        uint32_t props_len);

/*
 * PUBLISH header: everything up to (not including) the payload: fixed
 * header with remaining length computed for 'payload_len', topic, packet id
 * (qos > 0), properties (v5). The caller appends the payload bytes.
 */
size_t mqtt_enc_publish_hdr(uint8_t *out, size_t cap, uint8_t version,
                            uint8_t qos, bool retain, bool dup,
                            const char *topic, uint16_t topic_len,
                            uint16_t packet_id, const uint8_t *props,
                            uint32_t props_len, uint32_t payload_len);

/* PUBACK/PUBREC/PUBREL/PUBCOMP ('type'); v5 omits rc and properties when rc
 * is 0 and there are none [MQTT-3.4.2.1]. */
size_t mqtt_enc_ack(uint8_t *out, size_t cap, uint8_t version, uint8_t type,
                    uint16_t packet_id, uint8_t rc, const uint8_t *props,
                    uint32_t props_len);

/* SUBACK/UNSUBACK ('type') with 'count' return/reason codes. For v3
 * UNSUBACK the codes are not sent. */
size_t mqtt_enc_suback(uint8_t *out, size_t cap, uint8_t version, uint8_t type,
                       uint16_t packet_id, const uint8_t *codes, uint32_t count,
                       const uint8_t *props, uint32_t props_len);

/* PINGRESP (and PINGREQ for tests): 2 bytes. */
size_t mqtt_enc_simple(uint8_t *out, size_t cap, uint8_t type);

/* DISCONNECT or AUTH (v5 only; v3 DISCONNECT is 2 bytes). */
size_t mqtt_enc_disconnect(uint8_t *out, size_t cap, uint8_t version,
                           uint8_t type, uint8_t rc, const uint8_t *props,
                           uint32_t props_len);

/*
 * Client-side encoders, used by tests, fuzz seeds and the benchmark:
 * CONNECT from a struct mqtt_connect (strings taken from it; props from
 * c->props.raw/raw_len, will props from c->will_props.raw/raw_len),
 * SUBSCRIBE/UNSUBSCRIBE from arrays.
 */
size_t mqtt_enc_connect(uint8_t *out, size_t cap, const struct mqtt_connect *c);
size_t mqtt_enc_subscribe(uint8_t *out, size_t cap, uint8_t version,
                          uint16_t packet_id, const struct mqtt_str *filters,
                          const struct mqtt_sub_opts *opts, uint32_t count,
                          const uint8_t *props, uint32_t props_len);
size_t mqtt_enc_unsubscribe(uint8_t *out, size_t cap, uint8_t version,
                            uint16_t packet_id, const struct mqtt_str *filters,
                            uint32_t count, const uint8_t *props,
                            uint32_t props_len);

/* mqtt_type_name: "CONNECT", "PUBLISH", ... or "RESERVED". */
const char *mqtt_type_name(uint8_t type);

/* mqtt_rc_name: a short text for a v5 reason code ("Not authorized"). */
const char *mqtt_rc_name(uint8_t rc);

#endif
