/*
 * mqtt_codec.c - pure MQTT 3.1 / 3.1.1 / 5.0 packet decoding and encoding.
 *
 * No I/O, no globals, no allocation. Decoding walks the packet once with a
 * bounds-checked cursor (struct rd, in the spirit of picohttpparser's
 * CHECK_EOF); every decoded string or binary value points into the input.
 * Version 5 properties are checked against one table indexed by property id
 * that gives each property's type, the packets where it may appear and the
 * packets where it may repeat.
 *
 * Encoders compute the whole packet size first and write nothing when the
 * caller's buffer is too small, so a call with cap 0 sizes the buffer.
 */
#include "mqtt_codec.h"

#include <string.h>

#include "util.h"

/* ---- v5 property table ------------------------------------------------ */

enum prop_type {
    PT_NONE = 0, /* unknown id */
    PT_BYTE,
    PT_U16,
    PT_U32,
    PT_VARINT,
    PT_STR,
    PT_BIN,
    PT_PAIR,
};

/* Property contexts: the packets (or the will) a property block belongs to. */
enum {
    PC_CONNECT = 1u << 0,
    PC_CONNACK = 1u << 1,
    PC_PUBLISH_C = 1u << 2, /* PUBLISH from a client */
    PC_PUBLISH_S = 1u << 3, /* PUBLISH from a server */
    PC_ACK = 1u << 4,       /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    PC_SUBSCRIBE = 1u << 5,
    PC_SUBACK = 1u << 6,
    PC_UNSUBSCRIBE = 1u << 7,
    PC_UNSUBACK = 1u << 8,
    PC_DISCONNECT = 1u << 9,
    PC_AUTH = 1u << 10,
    PC_WILL = 1u << 11,
    PC_PUBLISH = PC_PUBLISH_C | PC_PUBLISH_S,
    PC_ALL = (1u << 12) - 1,
};

struct prop_info {
    uint8_t type;    /* enum prop_type */
    uint16_t allow;  /* contexts where the property may appear */
    uint16_t repeat; /* contexts where it may appear more than once */
};

/* MQTT 5.0 section 2.2.2.2, table 2-4. */
static const struct prop_info prop_tab[] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, PC_PUBLISH | PC_WILL, 0},
    [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, PC_PUBLISH | PC_WILL, 0},
    [MQTT_PROP_CONTENT_TYPE] = {PT_STR, PC_PUBLISH | PC_WILL, 0},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_STR, PC_PUBLISH | PC_WILL, 0},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, PC_PUBLISH | PC_WILL, 0},
    /* A client must not send one in PUBLISH [MQTT-3.3.4-6]; a server sends
     * one per matching subscription. */
    [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VARINT, PC_PUBLISH_S | PC_SUBSCRIBE,
                                   PC_PUBLISH_S},
    [MQTT_PROP_SESSION_EXPIRY] = {PT_U32,
                                  PC_CONNECT | PC_CONNACK | PC_DISCONNECT, 0},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_STR, PC_CONNACK, 0},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, PC_CONNACK, 0},
    [MQTT_PROP_AUTH_METHOD] = {PT_STR, PC_CONNECT | PC_CONNACK | PC_AUTH, 0},
    [MQTT_PROP_AUTH_DATA] = {PT_BIN, PC_CONNECT | PC_CONNACK | PC_AUTH, 0},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, PC_CONNECT, 0},
    [MQTT_PROP_WILL_DELAY] = {PT_U32, PC_WILL, 0},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, PC_CONNECT, 0},
    [MQTT_PROP_RESPONSE_INFO] = {PT_STR, PC_CONNACK, 0},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_STR, PC_CONNACK | PC_DISCONNECT, 0},
    [MQTT_PROP_REASON_STRING] = {PT_STR,
                                 PC_CONNACK | PC_ACK | PC_SUBACK | PC_UNSUBACK |
                                     PC_DISCONNECT | PC_AUTH,
                                 0},
    [MQTT_PROP_RECEIVE_MAXIMUM] = {PT_U16, PC_CONNECT | PC_CONNACK, 0},
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {PT_U16, PC_CONNECT | PC_CONNACK, 0},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, PC_PUBLISH, 0},
    [MQTT_PROP_MAXIMUM_QOS] = {PT_BYTE, PC_CONNACK, 0},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, PC_CONNACK, 0},
    [MQTT_PROP_USER_PROPERTY] = {PT_PAIR, PC_ALL, PC_ALL},
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {PT_U32, PC_CONNECT | PC_CONNACK, 0},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, PC_CONNACK, 0},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, PC_CONNACK, 0},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, PC_CONNACK, 0},
};

static uint8_t prop_type_of(uint8_t id)
{
    if (id >= ARRAY_LEN(prop_tab))
        return PT_NONE;
    return prop_tab[id].type;
}

/* ---- reason code sets (v5 unless noted) ------------------------------- */

static const uint8_t rc_connack_v5[] = {
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87,
                                    0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback_v3[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t rc_suback_v5[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                       0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
/* Union of what a client and a server may send [MQTT-3.14.2-1]. */
static const uint8_t rc_disconnect[] = {
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
    0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

static bool rc_in(const uint8_t *set, size_t n, uint8_t rc)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == rc)
            return true;
    return false;
}

#define RC_IN(set, rc) rc_in((set), sizeof(set), (rc))

/* ---- bounds-checked reader -------------------------------------------- */

struct rd {
    const uint8_t *p;
    const uint8_t *end;
    uint8_t rc;
    const char *why;
};

static int fail(struct rd *r, uint8_t rc, const char *why)
{
    r->rc = rc;
    r->why = why;
    return -1;
}

static size_t rd_left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

static int rd_u8(struct rd *r, uint8_t *v, const char *why)
{
    if (rd_left(r) < 1)
        return fail(r, MQTT_RC_MALFORMED, why);
    *v = *r->p++;
    return 0;
}

static int rd_u16(struct rd *r, uint16_t *v, const char *why)
{
    if (rd_left(r) < 2)
        return fail(r, MQTT_RC_MALFORMED, why);
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *why)
{
    if (rd_left(r) < 4)
        return fail(r, MQTT_RC_MALFORMED, why);
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) |
         ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return 0;
}

/*
 * Variable byte integer: at most 4 bytes, minimally encoded [MQTT-1.5.5-1].
 * Returns bytes used (1..4), 0 when more bytes are needed, -1 when invalid.
 */
static int varint_get(const uint8_t *p, size_t len, uint32_t *v)
{
    uint32_t val = 0;

    for (int i = 0; i < 4; i++) {
        if ((size_t)i >= len)
            return 0;
        val |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (i > 0 && p[i] == 0)
                return -1; /* non-minimal, e.g. 0x80 0x00 */
            *v = val;
            return i + 1;
        }
    }
    return -1; /* a fifth byte would be needed */
}

static int rd_varint(struct rd *r, uint32_t *v, const char *why)
{
    int n = varint_get(r->p, rd_left(r), v);

    if (n <= 0)
        return fail(r, MQTT_RC_MALFORMED, why);
    r->p += n;
    return 0;
}

static int rd_bin_(struct rd *r, const uint8_t **p, uint16_t *len,
                   const char *why)
{
    uint16_t n;

    if (rd_u16(r, &n, why) < 0)
        return -1;
    if (rd_left(r) < n)
        return fail(r, MQTT_RC_MALFORMED, why);
    *p = r->p;
    *len = n;
    r->p += n;
    return 0;
}

static int rd_bin(struct rd *r, struct mqtt_bin *b, const char *why)
{
    return rd_bin_(r, &b->p, &b->len, why);
}

/* A UTF-8 string: valid, no U+0000 [MQTT-1.5.4-1, -2]. */
static int rd_str(struct rd *r, struct mqtt_str *s, const char *why_trunc,
                  const char *why_utf8)
{
    const uint8_t *p;

    if (rd_bin_(r, &p, &s->len, why_trunc) < 0)
        return -1;
    s->p = (const char *)p;
    if (!util_utf8_valid(p, s->len))
        return fail(r, MQTT_RC_MALFORMED, why_utf8);
    return 0;
}

#define RD_STR(r, s, name)                                                     \
    rd_str((r), (s), name " truncated", "invalid UTF-8 in " name)

static bool has_wildcard(const struct mqtt_str *s)
{
    /* s->p is NULL for an empty string */
    return s->len > 0 && (memchr(s->p, '+', s->len) != NULL ||
                          memchr(s->p, '#', s->len) != NULL);
}

/* ---- v5 properties ---------------------------------------------------- */

static int prop_range(struct rd *r, bool ok)
{
    if (!ok)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "property value out of range");
    return 0;
}

/* Store one decoded property value in the singleton fields of *pr. */
static int props_store(struct rd *r, struct mqtt_props *pr, uint8_t id,
                       uint32_t u, const struct mqtt_str *s,
                       const struct mqtt_bin *b)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT:
        pr->payload_format = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_MESSAGE_EXPIRY:
        pr->message_expiry = u;
        break;
    case MQTT_PROP_CONTENT_TYPE:
        pr->content_type = *s;
        break;
    case MQTT_PROP_RESPONSE_TOPIC:
        pr->response_topic = *s;
        /* A topic name, not a filter, and not empty [MQTT-3.3.2-14],
         * [MQTT-4.7.3-1]: a Protocol Error otherwise. */
        if (s->len == 0)
            return fail(r, MQTT_RC_PROTOCOL_ERROR, "empty response topic");
        if (has_wildcard(s))
            return fail(r, MQTT_RC_PROTOCOL_ERROR,
                        "wildcard in response topic");
        break;
    case MQTT_PROP_CORRELATION_DATA:
        pr->correlation_data = *b;
        break;
    case MQTT_PROP_SUBSCRIPTION_ID:
        if (pr->n_subscription_ids++ == 0)
            pr->subscription_id = u;
        return prop_range(r, u >= 1 && u <= MQTT_MAX_REMAINING);
    case MQTT_PROP_SESSION_EXPIRY:
        pr->session_expiry = u;
        break;
    case MQTT_PROP_ASSIGNED_CLIENT_ID:
        pr->assigned_client_id = *s;
        break;
    case MQTT_PROP_SERVER_KEEP_ALIVE:
        pr->server_keep_alive = (uint16_t)u;
        break;
    case MQTT_PROP_AUTH_METHOD:
        pr->auth_method = *s;
        break;
    case MQTT_PROP_AUTH_DATA:
        pr->auth_data = *b;
        break;
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
        pr->request_problem_info = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_WILL_DELAY:
        pr->will_delay = u;
        break;
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
        pr->request_response_info = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_RESPONSE_INFO:
        pr->response_info = *s;
        break;
    case MQTT_PROP_SERVER_REFERENCE:
        pr->server_reference = *s;
        break;
    case MQTT_PROP_REASON_STRING:
        pr->reason_string = *s;
        break;
    case MQTT_PROP_RECEIVE_MAXIMUM:
        pr->receive_maximum = (uint16_t)u;
        return prop_range(r, u != 0);
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
        pr->topic_alias_maximum = (uint16_t)u;
        break;
    case MQTT_PROP_TOPIC_ALIAS:
        /* 0 is invalid but the session answers it (0x94). */
        pr->topic_alias = (uint16_t)u;
        break;
    case MQTT_PROP_MAXIMUM_QOS:
        pr->maximum_qos = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_RETAIN_AVAILABLE:
        pr->retain_available = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_USER_PROPERTY:
        pr->n_user_props++;
        break;
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:
        pr->maximum_packet_size = u;
        return prop_range(r, u != 0);
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        pr->wildcard_sub_available = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_SUB_ID_AVAILABLE:
        pr->sub_id_available = (uint8_t)u;
        return prop_range(r, u <= 1);
    case MQTT_PROP_SHARED_SUB_AVAILABLE:
        pr->shared_sub_available = (uint8_t)u;
        return prop_range(r, u <= 1);
    default:
        break;
    }
    return 0;
}

/*
 * Read a property block (length varint + properties) for context 'ctx' in
 * one linear pass. The block must fit in what is left of the packet.
 */
static int rd_props(struct rd *r, struct mqtt_props *pr, unsigned ctx)
{
    uint32_t plen;
    const uint8_t *end_save = r->end;

    if (rd_varint(r, &plen, "invalid property length") < 0)
        return -1;
    if (plen > rd_left(r))
        return fail(r, MQTT_RC_MALFORMED, "property length exceeds packet");
    pr->raw = r->p;
    pr->raw_len = plen;
    r->end = r->p + plen;
    while (r->p < r->end) {
        uint8_t id = *r->p++;
        uint8_t type = prop_type_of(id);
        uint32_t u = 0;
        uint8_t b8 = 0;
        uint16_t b16 = 0;
        struct mqtt_str s = {0};
        struct mqtt_bin b = {0};
        struct mqtt_str s2;
        int rv = 0;

        if (type == PT_NONE)
            return fail(r, MQTT_RC_MALFORMED, "unknown property identifier");
        if (!(prop_tab[id].allow & ctx))
            return fail(r, MQTT_RC_PROTOCOL_ERROR,
                        "property not allowed in this packet");
        if (((pr->present >> id) & 1u) && !(prop_tab[id].repeat & ctx))
            return fail(r, MQTT_RC_PROTOCOL_ERROR, "property repeated");
        pr->present |= 1ull << id;
        switch (type) {
        case PT_BYTE:
            rv = rd_u8(r, &b8, "property value truncated");
            u = b8;
            break;
        case PT_U16:
            rv = rd_u16(r, &b16, "property value truncated");
            u = b16;
            break;
        case PT_U32:
            rv = rd_u32(r, &u, "property value truncated");
            break;
        case PT_VARINT:
            rv = rd_varint(r, &u, "invalid variable byte integer property");
            break;
        case PT_STR:
            rv = RD_STR(r, &s, "string property");
            break;
        case PT_BIN:
            rv = rd_bin(r, &b, "binary property truncated");
            break;
        case PT_PAIR:
            rv = RD_STR(r, &s, "user property name");
            if (rv == 0)
                rv = RD_STR(r, &s2, "user property value");
            break;
        }
        if (rv < 0 || props_store(r, pr, id, u, &s, &b) < 0)
            return -1;
    }
    r->end = end_save;
    /* [MQTT-3.1.2-?] Authentication Data without a method. */
    if (MQTT_HAS_PROP(pr, MQTT_PROP_AUTH_DATA) &&
        !MQTT_HAS_PROP(pr, MQTT_PROP_AUTH_METHOD))
        return fail(r, MQTT_RC_PROTOCOL_ERROR,
                    "authentication data without authentication method");
    return 0;
}

int mqtt_prop_next(const uint8_t *raw, uint32_t raw_len, uint32_t *off,
                   struct mqtt_prop *out)
{
    struct rd r;
    uint8_t id, b8 = 0;
    uint16_t b16 = 0;
    int rv = -1;

    if (raw == NULL || *off >= raw_len)
        return 0;
    r.p = raw + *off;
    r.end = raw + raw_len;
    memset(out, 0, sizeof(*out));
    id = *r.p++;
    out->id = id;
    /* Values are re-read with bounds checks (and UTF-8 re-validated) so a
     * block that was never validated cannot cause an over-read. */
    switch (prop_type_of(id)) {
    case PT_BYTE:
        rv = rd_u8(&r, &b8, "");
        out->u32 = b8;
        break;
    case PT_U16:
        rv = rd_u16(&r, &b16, "");
        out->u32 = b16;
        break;
    case PT_U32:
        rv = rd_u32(&r, &out->u32, "");
        break;
    case PT_VARINT:
        rv = rd_varint(&r, &out->u32, "");
        break;
    case PT_STR:
        rv = rd_str(&r, &out->str, "", "");
        break;
    case PT_BIN:
        rv = rd_bin(&r, &out->bin, "");
        break;
    case PT_PAIR:
        rv = rd_str(&r, &out->str, "", "");
        if (rv == 0)
            rv = rd_str(&r, &out->str2, "", "");
        break;
    default:
        break;
    }
    if (rv < 0) {
        *off = raw_len; /* stop the walk */
        return 0;
    }
    *off = (uint32_t)(r.p - raw);
    return 1;
}

/* ---- SUBSCRIBE / UNSUBSCRIBE entries ----------------------------------- */

int mqtt_sub_next(const struct mqtt_subscribe *s, uint32_t *off,
                  struct mqtt_str *filter, struct mqtt_sub_opts *opts)
{
    struct rd r;
    uint8_t o;

    if (s->entries == NULL || *off >= s->entries_len)
        return 0;
    r.p = s->entries + *off;
    r.end = s->entries + s->entries_len;
    if (rd_str(&r, filter, "", "") < 0 || rd_u8(&r, &o, "") < 0) {
        *off = s->entries_len;
        return 0;
    }
    opts->qos = o & 3;
    opts->no_local = (o >> 2) & 1;
    opts->retain_as_published = (o >> 3) & 1;
    opts->retain_handling = (o >> 4) & 3;
    *off = (uint32_t)(r.p - s->entries);
    return 1;
}

int mqtt_unsub_next(const struct mqtt_subscribe *s, uint32_t *off,
                    struct mqtt_str *filter)
{
    struct rd r;

    if (s->entries == NULL || *off >= s->entries_len)
        return 0;
    r.p = s->entries + *off;
    r.end = s->entries + s->entries_len;
    if (rd_str(&r, filter, "", "") < 0) {
        *off = s->entries_len;
        return 0;
    }
    *off = (uint32_t)(r.p - s->entries);
    return 1;
}

/* ---- framing ----------------------------------------------------------- */

int mqtt_frame_peek(const uint8_t *buf, size_t len, uint8_t *first,
                    uint32_t *remaining)
{
    uint32_t v;
    int n;

    if (len < 2)
        return MQTT_INCOMPLETE;
    n = varint_get(buf + 1, len - 1, &v);
    if (n == 0)
        return MQTT_INCOMPLETE;
    if (n < 0)
        return MQTT_MALFORMED; /* [MQTT-1.5.5-1] */
    *first = buf[0];
    *remaining = v;
    return n + 1;
}

/* ---- packet decoders ---------------------------------------------------- */

static int dec_connect(struct rd *r, struct mqtt_connect *c)
{
    struct mqtt_str name;
    uint8_t level, fl;
    bool v5;

    if (RD_STR(r, &name, "protocol name") < 0 ||
        rd_u8(r, &level, "protocol level missing") < 0)
        return -1;
    /* Mosquitto's try_private: a bridge sets the level's high bit (3.1,
     * 3.1.1 only) */
    c->bridge = (level == (MQTT_V31 | 0x80) || level == (MQTT_V311 | 0x80));
    if (c->bridge)
        level &= 0x7f;
    c->version = level;
    if (!((name.len == 4 && memcmp(name.p, "MQTT", 4) == 0 &&
           (level == MQTT_V311 || level == MQTT_V5)) ||
          (name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0 &&
           level == MQTT_V31)))
        return fail(r, MQTT_RC_UNSUPPORTED_PROTOCOL,
                    "unsupported protocol name or level");
    v5 = level == MQTT_V5;
    if (rd_u8(r, &fl, "connect flags missing") < 0)
        return -1;
    if (fl & 0x01)
        return fail(r, MQTT_RC_MALFORMED,
                    "reserved connect flag set"); /* [MQTT-3.1.2-3] */
    c->clean_start = (fl >> 1) & 1;
    c->has_will = (fl >> 2) & 1;
    c->will_qos = (fl >> 3) & 3;
    c->will_retain = (fl >> 5) & 1;
    c->has_password = (fl >> 6) & 1;
    c->has_username = (fl >> 7) & 1;
    if (!c->has_will && (c->will_qos != 0 || c->will_retain))
        return fail(r, MQTT_RC_MALFORMED, /* [MQTT-3.1.2-11, -13, -15] */
                    "will QoS or retain set without will flag");
    if (c->will_qos == 3)
        return fail(r, MQTT_RC_MALFORMED, "will QoS 3"); /* [MQTT-3.1.2-14] */
    if (!v5 && c->has_password && !c->has_username)
        return fail(r, MQTT_RC_MALFORMED, /* [MQTT-3.1.2-22] */
                    "password flag without username flag");
    if (rd_u16(r, &c->keepalive, "keep alive missing") < 0)
        return -1;
    if (v5 && rd_props(r, &c->props, PC_CONNECT) < 0)
        return -1;
    /* The client id may be empty; the session decides [MQTT-3.1.3-6]. */
    if (RD_STR(r, &c->client_id, "client identifier") < 0)
        return -1;
    if (c->has_will) {
        if (v5 && rd_props(r, &c->will_props, PC_WILL) < 0)
            return -1;
        if (RD_STR(r, &c->will_topic, "will topic") < 0)
            return -1;
        if (c->will_topic.len == 0 || has_wildcard(&c->will_topic))
            return fail(r, MQTT_RC_TOPIC_NAME_INVALID, "invalid will topic");
        if (rd_bin(r, &c->will_payload, "will payload truncated") < 0)
            return -1;
        if (c->will_props.payload_format == 1 &&
            !util_utf8_valid(c->will_payload.p, c->will_payload.len))
            return fail(r, MQTT_RC_PAYLOAD_FORMAT_INVALID,
                        "will payload is not valid UTF-8");
    }
    if (c->has_username && RD_STR(r, &c->username, "username") < 0)
        return -1;
    if (c->has_password && rd_bin(r, &c->password, "password truncated") < 0)
        return -1;
    return 0;
}

static int dec_connack(struct rd *r, struct mqtt_connack *c, bool v5)
{
    uint8_t fl;

    if (rd_u8(r, &fl, "CONNACK flags missing") < 0 ||
        rd_u8(r, &c->rc, "CONNACK return code missing") < 0)
        return -1;
    if (fl & 0xFE)
        return fail(r, MQTT_RC_MALFORMED,
                    "reserved CONNACK flags set"); /* [MQTT-3.2.2-1] */
    c->session_present = fl & 1;
    if (v5 ? !RC_IN(rc_connack_v5, c->rc)
           : c->rc > MQTT_V3_REFUSED_NOT_AUTHORIZED)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "invalid CONNACK return code");
    if (c->rc != 0 && c->session_present)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, /* [MQTT-3.2.2-4] */
                    "session present with a refused connection");
    if (v5 && rd_props(r, &c->props, PC_CONNACK) < 0)
        return -1;
    return 0;
}

static int dec_publish(struct rd *r, struct mqtt_publish *p, uint8_t flags,
                       bool v5, bool from_client)
{
    p->qos = (flags >> 1) & 3;
    p->dup = (flags >> 3) & 1;
    p->retain = flags & 1;
    if (p->qos == 3)
        return fail(r, MQTT_RC_MALFORMED, "PUBLISH with QoS 3");
    if (p->qos == 0 && p->dup)
        return fail(r, MQTT_RC_PROTOCOL_ERROR,
                    "PUBLISH with DUP set on QoS 0"); /* [MQTT-3.3.1-2] */
    if (RD_STR(r, &p->topic, "topic name") < 0)
        return -1;
    /* [MQTT-3.3.2-2]: a malformed packet; 0x90 "Topic Name invalid" is
     * for a well-formed name the server refuses */
    if (has_wildcard(&p->topic))
        return fail(r, MQTT_RC_MALFORMED, "wildcard in topic name");
    if (p->qos > 0) {
        if (rd_u16(r, &p->packet_id, "packet identifier missing") < 0)
            return -1;
        if (p->packet_id == 0) /* [MQTT-2.3.1-1] */
            return fail(r, MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    }
    if (v5 &&
        rd_props(r, &p->props, from_client ? PC_PUBLISH_C : PC_PUBLISH_S) < 0)
        return -1;
    /* empty topic: v3 malformed [MQTT-4.7.3-1]; v5 a Protocol Error
     * without a Topic Alias (3.3.2.3.4) */
    if (p->topic.len == 0 &&
        !(v5 && MQTT_HAS_PROP(&p->props, MQTT_PROP_TOPIC_ALIAS)))
        return fail(r, v5 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED,
                    "empty topic name");
    p->payload = r->p;
    p->payload_len = (uint32_t)rd_left(r);
    r->p = r->end;
    if (p->props.payload_format == 1 &&
        !util_utf8_valid(p->payload, p->payload_len))
        return fail(r, MQTT_RC_PAYLOAD_FORMAT_INVALID,
                    "payload is not valid UTF-8");
    return 0;
}

static int dec_ack(struct rd *r, struct mqtt_ack *a, uint8_t type, bool v5)
{
    if (rd_u16(r, &a->packet_id, "packet identifier missing") < 0)
        return -1;
    if (a->packet_id == 0)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    if (!v5 || rd_left(r) == 0)
        return 0;
    a->rc = *r->p++;
    if ((type == MQTT_PUBACK || type == MQTT_PUBREC) ? !RC_IN(rc_puback, a->rc)
                                                     : !RC_IN(rc_pubrel, a->rc))
        return fail(r, MQTT_RC_PROTOCOL_ERROR,
                    "invalid acknowledgement reason code");
    /* Remaining length 3: no property length [MQTT-3.4.2.2.1]. */
    if (rd_left(r) == 0)
        return 0;
    return rd_props(r, &a->props, PC_ACK);
}

static int dec_subscribe(struct rd *r, struct mqtt_subscribe *s, bool v5,
                         bool unsub)
{
    if (rd_u16(r, &s->packet_id, "packet identifier missing") < 0)
        return -1;
    if (s->packet_id == 0) /* [MQTT-2.3.1-1] */
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    if (v5 && rd_props(r, &s->props, unsub ? PC_UNSUBSCRIBE : PC_SUBSCRIBE) < 0)
        return -1;
    s->entries = r->p;
    s->entries_len = (uint32_t)rd_left(r);
    while (rd_left(r) > 0) {
        struct mqtt_str f;
        uint8_t o;

        if (RD_STR(r, &f, "topic filter") < 0)
            return -1;
        if (f.len == 0) /* [MQTT-4.7.3-1] */
            return fail(r, MQTT_RC_MALFORMED, "empty topic filter");
        s->count++;
        if (unsub)
            continue;
        if (rd_u8(r, &o, "subscription options missing") < 0)
            return -1;
        /* v3 [MQTT-3-8.3-4]: bits 2-7 reserved, QoS 3 malformed.
         * v5 [MQTT-3.8.3-5]: bits 6-7 reserved; QoS 3 and retain
         * handling 3 are protocol errors. */
        if (o & (v5 ? 0xC0 : 0xFC))
            return fail(r, MQTT_RC_MALFORMED,
                        "reserved subscription option bits set");
        if ((o & 3) == 3)
            return fail(r, v5 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED,
                        "subscription with QoS 3");
        if (((o >> 4) & 3) == 3)
            return fail(r, MQTT_RC_PROTOCOL_ERROR, "retain handling 3");
    }
    if (s->count == 0) /* [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
        return fail(r, MQTT_RC_PROTOCOL_ERROR,
                    unsub ? "UNSUBSCRIBE without topic filters"
                          : "SUBSCRIBE without topic filters");
    return 0;
}

static int dec_suback(struct rd *r, struct mqtt_suback *s, bool v5, bool unsub)
{
    if (rd_u16(r, &s->packet_id, "packet identifier missing") < 0)
        return -1;
    if (s->packet_id == 0)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    if (!v5 && unsub)
        return 0; /* v3 UNSUBACK: packet id only */
    if (v5 && rd_props(r, &s->props, unsub ? PC_UNSUBACK : PC_SUBACK) < 0)
        return -1;
    s->codes = r->p;
    s->count = (uint32_t)rd_left(r);
    r->p = r->end;
    if (s->count == 0)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "acknowledgement without codes");
    for (uint32_t i = 0; i < s->count; i++) {
        uint8_t c = s->codes[i];
        bool ok = unsub ? RC_IN(rc_unsuback, c)
                  : v5  ? RC_IN(rc_suback_v5, c)
                        : RC_IN(rc_suback_v3, c);
        if (!ok)
            return fail(r, MQTT_RC_PROTOCOL_ERROR, "invalid reason code");
    }
    return 0;
}

/* DISCONNECT (v5) and AUTH: remaining 0 means rc 0; 1 means no props. */
static int dec_disconnect(struct rd *r, struct mqtt_disconnect *d, uint8_t type)
{
    bool auth = type == MQTT_AUTH;

    if (rd_left(r) == 0)
        return 0;
    d->rc = *r->p++;
    if (auth ? !RC_IN(rc_auth, d->rc) : !RC_IN(rc_disconnect, d->rc))
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "invalid reason code");
    if (rd_left(r) == 0)
        return 0;
    return rd_props(r, &d->props, auth ? PC_AUTH : PC_DISCONNECT);
}

/* Fixed-header checks that depend only on byte 0. */
static int check_first(struct rd *r, uint8_t type, uint8_t flags,
                       uint8_t version, bool from_client)
{
    static const uint8_t want_flags[16] = {
        [MQTT_PUBREL] = 2, [MQTT_SUBSCRIBE] = 2, [MQTT_UNSUBSCRIBE] = 2};

    if (version == 0 && type != MQTT_CONNECT)
        return fail(r, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
    if (type == 0)
        return fail(r, MQTT_RC_MALFORMED, "reserved packet type 0");
    if (type == MQTT_AUTH && version != MQTT_V5)
        return fail(r, MQTT_RC_MALFORMED, "AUTH before MQTT 5");
    if (from_client && (type == MQTT_CONNACK || type == MQTT_SUBACK ||
                        type == MQTT_UNSUBACK || type == MQTT_PINGRESP))
        return fail(r, MQTT_RC_PROTOCOL_ERROR,
                    "server-only packet sent by a client");
    if (!from_client && (type == MQTT_CONNECT || type == MQTT_SUBSCRIBE ||
                         type == MQTT_UNSUBSCRIBE || type == MQTT_PINGREQ))
        return fail(r, MQTT_RC_PROTOCOL_ERROR,
                    "client-only packet sent by a server");
    /* [MQTT-2.2.2-1], [MQTT-2.2.2-2] */
    if (type != MQTT_PUBLISH && flags != want_flags[type])
        return fail(r, MQTT_RC_MALFORMED, "reserved flag bits set");
    return 0;
}

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version,
                bool from_client, struct mqtt_packet *pkt, uint8_t *rc,
                const char **why)
{
    struct rd r = {.rc = MQTT_RC_MALFORMED, .why = "malformed packet"};
    uint8_t first, type, flags;
    uint32_t rem;
    int hl, rv = 0;
    bool v5 = version == MQTT_V5;

    hl = mqtt_frame_peek(buf, len, &first, &rem);
    if (hl == MQTT_INCOMPLETE)
        return MQTT_INCOMPLETE;
    if (hl < 0) {
        fail(&r, MQTT_RC_MALFORMED, "invalid remaining length");
        goto fail;
    }
    type = first >> 4;
    flags = first & 0x0F;
    memset(pkt, 0, sizeof(*pkt));
    pkt->type = type;
    pkt->flags = flags;
    if (check_first(&r, type, flags, version, from_client) < 0)
        goto fail;
    if (len - (size_t)hl < rem)
        return MQTT_INCOMPLETE;
    r.p = buf + hl;
    r.end = r.p + rem;

    switch (type) {
    case MQTT_CONNECT:
        rv = dec_connect(&r, &pkt->u.connect);
        break;
    case MQTT_CONNACK:
        rv = dec_connack(&r, &pkt->u.connack, v5);
        break;
    case MQTT_PUBLISH:
        rv = dec_publish(&r, &pkt->u.publish, flags, v5, from_client);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        rv = dec_ack(&r, &pkt->u.ack, type, v5);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        rv = dec_subscribe(&r, &pkt->u.subscribe, v5, type == MQTT_UNSUBSCRIBE);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        rv = dec_suback(&r, &pkt->u.suback, v5, type == MQTT_UNSUBACK);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (v5)
            rv = dec_disconnect(&r, &pkt->u.disconnect, type);
        break;
    default: /* PINGREQ, PINGRESP: no body */
        break;
    }
    if (rv < 0)
        goto fail;
    if (r.p != r.end) {
        fail(&r, MQTT_RC_MALFORMED, "trailing bytes after packet");
        goto fail;
    }
    return hl + (int)rem;

fail:
    if (rc != NULL)
        *rc = r.rc;
    if (why != NULL)
        *why = r.why;
    return MQTT_MALFORMED;
}

/* ---- encoding helpers ---------------------------------------------------- */

int mqtt_varint_size(uint32_t v)
{
    if (v < 128u)
        return 1;
    if (v < 16384u)
        return 2;
    if (v < 2097152u)
        return 3;
    if (v <= MQTT_MAX_REMAINING)
        return 4;
    return 5; /* out of range for MQTT; no peer will accept it */
}

/*
 * mqtt_varint_put: v must be <= MQTT_MAX_REMAINING for a valid encoding
 * (1..4 bytes); larger values are written in 5 bytes, matching
 * mqtt_varint_size().
 */
int mqtt_varint_put(uint8_t *out, uint32_t v)
{
    int n = 0;

    do {
        uint8_t b = v & 0x7F;

        v >>= 7;
        if (v)
            b |= 0x80;
        out[n++] = b;
    } while (v);
    return n;
}

static uint8_t *put_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static uint8_t *put_bytes(uint8_t *o, const void *p, size_t n)
{
    if (n > 0)
        memcpy(o, p, n);
    return o + n;
}

static uint8_t *put_str(uint8_t *o, const void *p, uint16_t n)
{
    return put_bytes(put_u16(o, n), p, n);
}

static uint8_t *put_props(uint8_t *o, const uint8_t *props, uint32_t n)
{
    o += mqtt_varint_put(o, n);
    return put_bytes(o, props, n);
}

static size_t props_size(uint32_t n)
{
    return (size_t)mqtt_varint_size(n) + n;
}

/* Size of a whole packet with remaining length 'rem'. */
static size_t pkt_size(size_t rem)
{
    return 1 + (size_t)mqtt_varint_size((uint32_t)rem) + rem;
}

static uint8_t *put_fixed(uint8_t *o, uint8_t first, size_t rem)
{
    *o++ = first;
    return o + mqtt_varint_put(o, (uint32_t)rem);
}

/* ---- property builder -----------------------------------------------------
 */

void mqtt_pb_init(struct mqtt_pb *pb, uint8_t *buf, uint32_t cap)
{
    pb->buf = buf;
    pb->cap = cap;
    pb->len = 0;
    pb->overflow = false;
}

/* Reserve n bytes; NULL (and overflow set) when they do not fit. len never
 * exceeds cap. */
static uint8_t *pb_reserve(struct mqtt_pb *pb, size_t n)
{
    uint8_t *p;

    if (pb->overflow || n > (size_t)(pb->cap - pb->len)) {
        pb->overflow = true;
        return NULL;
    }
    p = pb->buf + pb->len;
    pb->len += (uint32_t)n;
    return p;
}

void mqtt_pb_byte(struct mqtt_pb *pb, uint8_t id, uint8_t v)
{
    uint8_t *p = pb_reserve(pb, 2);

    if (p != NULL) {
        p[0] = id;
        p[1] = v;
    }
}

void mqtt_pb_u16(struct mqtt_pb *pb, uint8_t id, uint16_t v)
{
    uint8_t *p = pb_reserve(pb, 3);

    if (p != NULL) {
        p[0] = id;
        put_u16(p + 1, v);
    }
}

void mqtt_pb_u32(struct mqtt_pb *pb, uint8_t id, uint32_t v)
{
    uint8_t *p = pb_reserve(pb, 5);

    if (p != NULL) {
        p[0] = id;
        p[1] = (uint8_t)(v >> 24);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 8);
        p[4] = (uint8_t)v;
    }
}

void mqtt_pb_varint(struct mqtt_pb *pb, uint8_t id, uint32_t v)
{
    uint8_t *p = pb_reserve(pb, 1 + (size_t)mqtt_varint_size(v));

    if (p != NULL) {
        p[0] = id;
        mqtt_varint_put(p + 1, v);
    }
}

void mqtt_pb_str(struct mqtt_pb *pb, uint8_t id, const char *s, uint16_t len)
{
    uint8_t *p = pb_reserve(pb, 3 + (size_t)len);

    if (p != NULL) {
        p[0] = id;
        put_str(p + 1, s, len);
    }
}

void mqtt_pb_bin(struct mqtt_pb *pb, uint8_t id, const void *v, uint16_t len)
{
    mqtt_pb_str(pb, id, v, len);
}

void mqtt_pb_user(struct mqtt_pb *pb, const char *k, uint16_t klen,
                  const char *v, uint16_t vlen)
{
    uint8_t *p = pb_reserve(pb, 5 + (size_t)klen + vlen);

    if (p != NULL) {
        p[0] = MQTT_PROP_USER_PROPERTY;
        put_str(put_str(p + 1, k, klen), v, vlen);
    }
}

void mqtt_pb_raw(struct mqtt_pb *pb, const uint8_t *raw, uint32_t len)
{
    uint8_t *p = pb_reserve(pb, len);

    if (p != NULL)
        put_bytes(p, raw, len);
}

uint32_t mqtt_props_forward(const struct mqtt_props *p, bool keep_expiry,
                            uint8_t *out, uint32_t cap)
{
    struct mqtt_pb pb;
    struct mqtt_prop pr;
    uint32_t off = 0;

    mqtt_pb_init(&pb, out, cap);
    while (p->raw && mqtt_prop_next(p->raw, p->raw_len, &off, &pr)) {
        switch (pr.id) {
        case MQTT_PROP_PAYLOAD_FORMAT:
            mqtt_pb_byte(&pb, pr.id, (uint8_t)pr.u32);
            break;
        case MQTT_PROP_MESSAGE_EXPIRY:
            if (keep_expiry)
                mqtt_pb_u32(&pb, pr.id, pr.u32);
            break;
        case MQTT_PROP_CONTENT_TYPE:
        case MQTT_PROP_RESPONSE_TOPIC:
            mqtt_pb_str(&pb, pr.id, pr.str.p, pr.str.len);
            break;
        case MQTT_PROP_CORRELATION_DATA:
            mqtt_pb_bin(&pb, pr.id, pr.bin.p, pr.bin.len);
            break;
        case MQTT_PROP_USER_PROPERTY:
            mqtt_pb_user(&pb, pr.str.p, pr.str.len, pr.str2.p, pr.str2.len);
            break;
        default: /* topic alias, subscription identifiers */
            break;
        }
    }
    return pb.overflow ? 0 : pb.len;
}

/* ---- packet encoders -------------------------------------------------- */

size_t mqtt_enc_connack(uint8_t *out, size_t cap, uint8_t version,
                        bool session_present, uint8_t rc, const uint8_t *props,
                        uint32_t props_len)
{
    bool v5 = version == MQTT_V5;
    size_t rem = 2 + (v5 ? props_size(props_len) : 0);
    size_t need = pkt_size(rem);
    uint8_t *o;

    if (need > cap)
        return need;
    o = put_fixed(out, MQTT_CONNACK << 4, rem);
    *o++ = session_present ? 1 : 0;
    *o++ = rc;
    if (v5)
        put_props(o, props, props_len);
    return need;
}

size_t mqtt_enc_publish_hdr(uint8_t *out, size_t cap, uint8_t version,
                            uint8_t qos, bool retain, bool dup,
                            const char *topic, uint16_t topic_len,
                            uint16_t packet_id, const uint8_t *props,
                            uint32_t props_len, uint32_t payload_len)
{
    bool v5 = version == MQTT_V5;
    size_t hdr_rem = 2 + (size_t)topic_len + (qos > 0 ? 2 : 0) +
                     (v5 ? props_size(props_len) : 0);
    size_t rem = hdr_rem + payload_len;
    size_t need = pkt_size(rem) - payload_len;
    uint8_t first = (uint8_t)((MQTT_PUBLISH << 4) | (dup ? 0x08 : 0) |
                              ((qos & 3) << 1) | (retain ? 1 : 0));
    uint8_t *o;

    if (need > cap)
        return need;
    o = put_fixed(out, first, rem);
    o = put_str(o, topic, topic_len);
    if (qos > 0)
        o = put_u16(o, packet_id);
    if (v5)
        put_props(o, props, props_len);
    return need;
}

size_t mqtt_enc_ack(uint8_t *out, size_t cap, uint8_t version, uint8_t type,
                    uint16_t packet_id, uint8_t rc, const uint8_t *props,
                    uint32_t props_len)
{
    bool v5 = version == MQTT_V5;
    size_t rem = 2;
    size_t need;
    uint8_t *o;

    if (v5 && (rc != 0 || props_len > 0)) {
        rem = 3;
        if (props_len > 0)
            rem += props_size(props_len);
    }
    need = pkt_size(rem);
    if (need > cap)
        return need;
    o = put_fixed(out, (uint8_t)((type << 4) | (type == MQTT_PUBREL ? 2 : 0)),
                  rem);
    o = put_u16(o, packet_id);
    if (rem > 2)
        *o++ = rc;
    if (rem > 3)
        put_props(o, props, props_len);
    return need;
}

size_t mqtt_enc_suback(uint8_t *out, size_t cap, uint8_t version, uint8_t type,
                       uint16_t packet_id, const uint8_t *codes, uint32_t count,
                       const uint8_t *props, uint32_t props_len)
{
    bool v5 = version == MQTT_V5;
    bool send_codes = v5 || type == MQTT_SUBACK;
    size_t rem =
        2 + (v5 ? props_size(props_len) : 0) + (send_codes ? count : 0);
    size_t need = pkt_size(rem);
    uint8_t *o;

    if (need > cap)
        return need;
    o = put_fixed(out, (uint8_t)(type << 4), rem);
    o = put_u16(o, packet_id);
    if (v5)
        o = put_props(o, props, props_len);
    if (send_codes)
        put_bytes(o, codes, count);
    return need;
}

/* Fixed-header flags every packet type must carry (PUBLISH: 0 here). */
static uint8_t type_flags(uint8_t type)
{
    return (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE ||
            type == MQTT_UNSUBSCRIBE)
               ? 2
               : 0;
}

size_t mqtt_enc_simple(uint8_t *out, size_t cap, uint8_t type)
{
    if (cap < 2)
        return 2;
    out[0] = (uint8_t)((type << 4) | type_flags(type));
    out[1] = 0;
    return 2;
}

/*
 * mqtt_enc_disconnect: for version < 5 a DISCONNECT is the 2-byte form (rc
 * and props ignored); an AUTH is always encoded in the v5 format. v5 uses
 * the short forms: remaining 0 for rc 0 without props, 1 for rc only.
 */
size_t mqtt_enc_disconnect(uint8_t *out, size_t cap, uint8_t version,
                           uint8_t type, uint8_t rc, const uint8_t *props,
                           uint32_t props_len)
{
    size_t rem = 0, need;
    uint8_t *o;

    if (version == MQTT_V5 || type == MQTT_AUTH) {
        if (props_len > 0)
            rem = 1 + props_size(props_len);
        else if (rc != 0)
            rem = 1;
    }
    need = pkt_size(rem);
    if (need > cap)
        return need;
    o = put_fixed(out, (uint8_t)(type << 4), rem);
    if (rem > 0)
        *o++ = rc;
    if (rem > 1)
        put_props(o, props, props_len);
    return need;
}

/*
 * mqtt_enc_connect: protocol name/level from c->version (3: "MQIsdp"/3,
 * 4: "MQTT"/4, otherwise "MQTT"/5). Flags are encoded as given (will QoS
 * masked to 2 bits), so tests can build inconsistent CONNECTs; the strings
 * of absent fields (no will, no username, ...) are not written.
 */
size_t mqtt_enc_connect(uint8_t *out, size_t cap, const struct mqtt_connect *c)
{
    uint8_t level = c->version == MQTT_V31 || c->version == MQTT_V311
                        ? c->version
                        : MQTT_V5;
    bool v5 = level == MQTT_V5;
    const char *name = level == MQTT_V31 ? "MQIsdp" : "MQTT";
    uint16_t name_len = level == MQTT_V31 ? 6 : 4;
    size_t rem, need;
    uint8_t fl;
    uint8_t *o;

    rem = 2 + (size_t)name_len + 1 + 1 + 2;
    if (v5)
        rem += props_size(c->props.raw_len);
    rem += 2 + (size_t)c->client_id.len;
    if (c->has_will) {
        if (v5)
            rem += props_size(c->will_props.raw_len);
        rem += 2 + (size_t)c->will_topic.len + 2 + c->will_payload.len;
    }
    if (c->has_username)
        rem += 2 + (size_t)c->username.len;
    if (c->has_password)
        rem += 2 + (size_t)c->password.len;
    need = pkt_size(rem);
    if (need > cap)
        return need;

    fl = (uint8_t)((c->clean_start ? 0x02 : 0) | (c->has_will ? 0x04 : 0) |
                   ((c->will_qos & 3) << 3) | (c->will_retain ? 0x20 : 0) |
                   (c->has_password ? 0x40 : 0) | (c->has_username ? 0x80 : 0));
    o = put_fixed(out, MQTT_CONNECT << 4, rem);
    o = put_str(o, name, name_len);
    *o++ = (uint8_t)(level | (c->bridge && !v5 ? 0x80 : 0));
    *o++ = fl;
    o = put_u16(o, c->keepalive);
    if (v5)
        o = put_props(o, c->props.raw, c->props.raw_len);
    o = put_str(o, c->client_id.p, c->client_id.len);
    if (c->has_will) {
        if (v5)
            o = put_props(o, c->will_props.raw, c->will_props.raw_len);
        o = put_str(o, c->will_topic.p, c->will_topic.len);
        o = put_str(o, c->will_payload.p, c->will_payload.len);
    }
    if (c->has_username)
        o = put_str(o, c->username.p, c->username.len);
    if (c->has_password)
        put_str(o, c->password.p, c->password.len);
    return need;
}

/* Shared body of the SUBSCRIBE and UNSUBSCRIBE encoders (opts NULL for
 * UNSUBSCRIBE). */
static size_t enc_sub(uint8_t *out, size_t cap, uint8_t version, uint8_t type,
                      uint16_t packet_id, const struct mqtt_str *filters,
                      const struct mqtt_sub_opts *opts, uint32_t count,
                      const uint8_t *props, uint32_t props_len)
{
    bool v5 = version == MQTT_V5;
    size_t rem = 2 + (v5 ? props_size(props_len) : 0);
    size_t need;
    uint8_t *o;

    for (uint32_t i = 0; i < count; i++)
        rem += 2 + (size_t)filters[i].len + (opts != NULL ? 1 : 0);
    need = pkt_size(rem);
    if (need > cap)
        return need;
    o = put_fixed(out, (uint8_t)((type << 4) | 2), rem);
    o = put_u16(o, packet_id);
    if (v5)
        o = put_props(o, props, props_len);
    for (uint32_t i = 0; i < count; i++) {
        o = put_str(o, filters[i].p, filters[i].len);
        if (opts == NULL)
            continue;
        if (v5)
            *o++ = (uint8_t)((opts[i].qos & 3) | (opts[i].no_local ? 4 : 0) |
                             (opts[i].retain_as_published ? 8 : 0) |
                             ((opts[i].retain_handling & 3) << 4));
        else
            *o++ = opts[i].qos & 3;
    }
    return need;
}

size_t mqtt_enc_subscribe(uint8_t *out, size_t cap, uint8_t version,
                          uint16_t packet_id, const struct mqtt_str *filters,
                          const struct mqtt_sub_opts *opts, uint32_t count,
                          const uint8_t *props, uint32_t props_len)
{
    return enc_sub(out, cap, version, MQTT_SUBSCRIBE, packet_id, filters, opts,
                   count, props, props_len);
}

size_t mqtt_enc_unsubscribe(uint8_t *out, size_t cap, uint8_t version,
                            uint16_t packet_id, const struct mqtt_str *filters,
                            uint32_t count, const uint8_t *props,
                            uint32_t props_len)
{
    return enc_sub(out, cap, version, MQTT_UNSUBSCRIBE, packet_id, filters,
                   NULL, count, props, props_len);
}

/* ---- names ------------------------------------------------------------- */

const char *mqtt_type_name(uint8_t type)
{
    static const char *const names[16] = {
        "RESERVED",  "CONNECT",  "CONNACK",     "PUBLISH",
        "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
        "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};

    return type < 16 ? names[type] : "RESERVED";
}

const char *mqtt_rc_name(uint8_t rc)
{
    static const char *const names[256] = {
        [0x00] = "Success",
        [0x01] = "Granted QoS 1",
        [0x02] = "Granted QoS 2",
        [0x04] = "Disconnect with Will Message",
        [0x10] = "No matching subscribers",
        [0x11] = "No subscription existed",
        [0x18] = "Continue authentication",
        [0x19] = "Re-authenticate",
        [0x80] = "Unspecified error",
        [0x81] = "Malformed Packet",
        [0x82] = "Protocol Error",
        [0x83] = "Implementation specific error",
        [0x84] = "Unsupported Protocol Version",
        [0x85] = "Client Identifier not valid",
        [0x86] = "Bad User Name or Password",
        [0x87] = "Not authorized",
        [0x88] = "Server unavailable",
        [0x89] = "Server busy",
        [0x8A] = "Banned",
        [0x8B] = "Server shutting down",
        [0x8C] = "Bad authentication method",
        [0x8D] = "Keep Alive timeout",
        [0x8E] = "Session taken over",
        [0x8F] = "Topic Filter invalid",
        [0x90] = "Topic Name invalid",
        [0x91] = "Packet Identifier in use",
        [0x92] = "Packet Identifier not found",
        [0x93] = "Receive Maximum exceeded",
        [0x94] = "Topic Alias invalid",
        [0x95] = "Packet too large",
        [0x96] = "Message rate too high",
        [0x97] = "Quota exceeded",
        [0x98] = "Administrative action",
        [0x99] = "Payload format invalid",
        [0x9A] = "Retain not supported",
        [0x9B] = "QoS not supported",
        [0x9C] = "Use another server",
        [0x9D] = "Server moved",
        [0x9E] = "Shared Subscriptions not supported",
        [0x9F] = "Connection rate exceeded",
        [0xA0] = "Maximum connect time",
        [0xA1] = "Subscription Identifiers not supported",
        [0xA2] = "Wildcard Subscriptions not supported",
    };

    return names[rc] != NULL ? names[rc] : "Unknown reason code";
}
