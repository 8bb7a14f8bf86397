/*
 * conf.c - the mosquitto.conf parser: text -> struct conf snapshot.
 *
 * Parsing is driven by one sorted keyword table (keys[] below, searched with
 * bsearch). Each entry says how the value is read (bool, integer with its
 * range, string, or a handler), where it is stored (an offset into struct
 * conf, struct conf_listener or struct conf_security) and its scope:
 *
 *   SC_GLOBAL    struct conf
 *   SC_LISTENER  the most recent "listener"; before any, Mosquitto's default
 *                listener (the one "port" and "bind_address" configure),
 *                which then exists on port 1883 unless "port" says otherwise
 *   SC_BOTH      the most recent listener; before any, the global default
 *                every listener starts from (mqttd: this does not create the
 *                default listener, unlike Mosquitto)
 *   SC_SEC       conf.sec, or the current listener's sec when
 *                per_listener_settings is true (before any listener: the
 *                defaults every listener inherits)
 *
 * Mosquitto 2.0 keys mqttd does not implement are in the table as K_UNSUP so
 * they are reported ("'KEY' is not supported by mqttd"), never ignored.
 *
 * Errors go to the caller's conf_err_fn as (file, line, message); parsing
 * carries on so a file's every error is reported, and the result is NULL
 * when there was any. Whole-configuration checks (certfile with keyfile,
 * cafile for client certificates, readable files, duplicate listeners) run
 * at the end and point at the line that set the offending value.
 *
 * Nothing here has global mutable state; a parse owns a struct parser on the
 * stack. include_dir is followed only from the main file, so there is no
 * recursion beyond one level.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/tls1.h>

#include "cidr.h"
#include "conf_bridge.h"
#include "log.h"
#include "pkcs11_uri.h"
#include "util.h"

#define CONF_MAX_FILE_BYTES (16u << 20) /* one config file */
#define CONF_MAX_LINE 65536             /* one line, like Mosquitto's UINT16 */
#define CONF_MAX_LISTENERS 1024
#define CONF_MAX_ERRORS 200
#define CONF_MAX_INCLUDE_FILES 4096
#define CONF_DEFAULT_PORT 1883
#define MQTT_MAX_PAYLOAD 268435455u
#define MQTT_MAX_PACKET (MQTT_MAX_PAYLOAD + 5u)

/* The snapshot plus the file names its src pointers refer to. */
struct conf_priv {
    struct conf c; /* must stay first: conf_free() converts back */
    char **srcs;
    size_t nsrcs;
};

/* Indices of the per-listener file keys whose lines we remember. */
enum { FK_CERT, FK_KEY, FK_CA, FK_CAPATH, FK_CRL, FK_DH, FK_N };

/* Parse-time facts about one listener that the snapshot does not keep. */
struct lmeta {
    const char *fsrc[FK_N];
    int fline[FK_N];
    const char *rc_src; /* require_certificate true */
    int rc_line;
    const char *ccm_src; /* client_cert_mode */
    int ccm_line;
    const char *uid_src; /* use_identity/subject_as_username true */
    int uid_line;
    const char *uid_key;
    const char *pp_src; /* enable_proxy_protocol */
    int pp_line;
    const char *pprt_src; /* proxy_protocol_v2_require_tls true */
    int pprt_line;
    const char *ids_src; /* tls_identity_source other than cn */
    int ids_line;
    const char *eng_src; /* tls_engine */
    int eng_line;
    const char *kf_src; /* tls_keyform engine */
    int kf_line;
    const char *ocsp_src; /* tls_ocsp_check / tls_ocsp_stapling */
    int ocsp_line;
    bool cert_mode_set;
    bool azlc_set; /* allow_zero_length_clientid given for this listener */
    bool bad;      /* the listener line itself was wrong: skip checks */
};

/* the cluster_nats_* TLS and credential keys (h_cluster_opt) */
enum { CLK_CA, CLK_CERT, CLK_KEY, CLK_USER, CLK_PW, CLK_CREDS, CLK_N };
static const char *const clk_names[CLK_N] = {
    "cluster_nats_cafile", "cluster_nats_certfile", "cluster_nats_keyfile",
    "cluster_nats_user",   "cluster_nats_password", "cluster_nats_credentials"};

struct parser {
    struct conf_priv *p;
    struct conf *c;
    conf_err_fn errfn;
    void *arg;
    bool check_files;
    unsigned nerr;
    bool gave_up;
    const char *file; /* interned name of the file being read */
    int line;
    int depth;
    /* Mosquitto's default listener ("port", "bind_address", TLS keys
     * before any listener line) */
    struct conf_listener deflt;
    struct lmeta dmeta;
    bool deflt_used;
    const char *deflt_src;
    int deflt_line;
    struct lmeta *lm; /* parallel to c->listeners */
    size_t lcap;
    bool log_dest_set, log_type_set;
    bool sec_seen;  /* a security key was given */
    bool gazlc_set; /* global allow_zero_length_clientid given */
    bool have_main_id;
    const char *threads_src; /* where 'threads' was set (finalize checks) */
    int threads_line;
    const char *cl_src; /* cluster_nats */
    int cl_line;
    const char *clk_src[CLK_N]; /* cluster_nats_* keys (h_cluster_opt) */
    int clk_line[CLK_N];
    dev_t main_dev;
    ino_t main_ino;
    struct conf_bridge_parser bridges; /* conf_bridge.c */
};

enum ktype {
    K_UNSUP, /* a Mosquitto key mqttd refuses: FILE:LINE error with k->why */
    K_WARN,  /* a Mosquitto key accepted without effect: a warning */
    K_FN,
    K_BOOL,
    K_I32,
    K_U8,
    K_U16,
    K_U32,
    K_U64,
    K_STR
};
enum kscope { SC_GLOBAL, SC_LISTENER, SC_BOTH, SC_SEC };

#define F_REPLACE 1u /* a string that may be given again (last wins) */
#define F_BOOLV 2u   /* K_WARN: the value must be a boolean */

struct key {
    const char *name;
    enum ktype type;
    enum kscope scope;
    size_t off;  /* in struct conf / conf_listener / conf_security */
    size_t goff; /* SC_BOTH: the global default in struct conf */
    long long min, max;
    void (*fn)(struct parser *ps, const struct key *k, char *val);
    int fk; /* FK_* for listener file keys, -1 otherwise */
    unsigned flags;
    const char *why; /* K_UNSUP: why refused; K_WARN: why without effect */
};

/* Reasons, shown after "'KEY' is not supported by mqttd: " (refused) or
 * "'KEY' has no effect in mqttd: " (warning). docs/differences.md has the
 * same table. */
#define WHY_BRIDGE "a bridge key (handled by conf_bridge.c)"
#define WHY_PLUGIN                                                             \
    "mqttd cannot load Mosquitto plugins, and a security plugin that "         \
    "silently did not load would let clients in"
#define WHY_PSK                                                                \
    "TLS-PSK is not supported; the listener would refuse every PSK client"

static void perr(struct parser *ps, const char *file, int line, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void perr(struct parser *ps, const char *file, int line, const char *fmt,
                 ...)
{
    char msg[1024];
    va_list ap;

    if (ps->gave_up)
        return;
    if (ps->nerr >= CONF_MAX_ERRORS) {
        ps->gave_up = true;
        ps->errfn(ps->arg, file, line, "too many errors; giving up");
        return;
    }
    ps->nerr++;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->errfn(ps->arg, file, line, msg);
}

/* perr at the current file and line. */
#define LERR(ps, ...) perr((ps), (ps)->file, (ps)->line, __VA_ARGS__)

static void pwarn(struct parser *ps, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * pwarn: a warning: CONF_WARNING_PREFIX and the message go to the error
 * sink, but the load does not fail.
 */
static void pwarn(struct parser *ps, const char *file, int line,
                  const char *fmt, ...)
{
    char msg[1024];
    size_t n = sizeof(CONF_WARNING_PREFIX) - 1;
    va_list ap;

    if (ps->gave_up)
        return;
    memcpy(msg, CONF_WARNING_PREFIX, n);
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
    va_end(ap);
    ps->errfn(ps->arg, file, line, msg);
}

/* pwarn at the current file and line. */
#define LWARN(ps, ...) pwarn((ps), (ps)->file, (ps)->line, __VA_ARGS__)

/*
 * shown: a copy of the first word of s fit for a message: at most 64 bytes,
 * control characters replaced by '?', "..." when cut.
 */
static const char *shown(char *buf, size_t size, const char *s, bool word)
{
    size_t i = 0, n = 0;

    while (s[i] != '\0' && n + 4 < size && i < 64) {
        unsigned char ch = (unsigned char)s[i];
        if (word && (ch == ' ' || ch == '\t'))
            break;
        buf[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
        i++;
    }
    if (s[i] != '\0' && !(word && (s[i] == ' ' || s[i] == '\t'))) {
        buf[n++] = '.';
        buf[n++] = '.';
        buf[n++] = '.';
    }
    buf[n] = '\0';
    return buf;
}

static const char *intern_src(struct conf_priv *p, const char *name)
{
    p->srcs = xreallocarray(p->srcs, p->nsrcs + 1, sizeof(*p->srcs));
    p->srcs[p->nsrcs] = xstrdup(name);
    return p->srcs[p->nsrcs++];
}

/* ---- value helpers ------------------------------------------------------ */

/*
 * one_token: the single word of 'val' (NUL-terminated in place). A further
 * word starting with '#' is a comment; any other is an error. Returns NULL
 * after reporting a missing value or trailing text.
 */
static char *one_token(struct parser *ps, const char *key, char *val)
{
    char *end, sb[80];

    if (*val == '\0' || *val == '#') {
        LERR(ps, "missing value for '%s'", key);
        return NULL;
    }
    end = val + strcspn(val, " \t");
    if (*end != '\0') {
        *end++ = '\0';
        end += strspn(end, " \t");
        if (*end != '\0' && *end != '#') {
            LERR(ps, "unexpected '%s' after the value of '%s'",
                 shown(sb, sizeof(sb), end, true), key);
            return NULL;
        }
    }
    return val;
}

static int parse_num(struct parser *ps, const char *key, const char *tok,
                     long long min, long long max, long long *out)
{
    const char *es;
    char sb[80];

    if (util_strtonum(tok, min, max, out, &es) == 0)
        return 0;
    if (strcmp(es, "invalid") == 0)
        LERR(ps,
             "invalid value '%s' for '%s': expected an integer from %lld "
             "to %lld",
             shown(sb, sizeof(sb), tok, false), key, min, max);
    else
        LERR(ps, "value %s for '%s' is %s: the range is %lld to %lld",
             shown(sb, sizeof(sb), tok, false), key, es, min, max);
    return -1;
}

static int parse_bool(struct parser *ps, const char *key, char *val, bool *out)
{
    char *tok = one_token(ps, key, val), sb[80];

    if (tok == NULL)
        return -1;
    /* Mosquitto also takes 1 and 0 */
    if (strcmp(tok, "true") == 0 || strcmp(tok, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(tok, "false") == 0 || strcmp(tok, "0") == 0) {
        *out = false;
        return 0;
    }
    LERR(ps, "invalid value '%s' for '%s': expected true or false",
         shown(sb, sizeof(sb), tok, false), key);
    return -1;
}

/*
 * set_str: store the rest-of-line value 'val' (already trimmed) in *dst.
 * Mosquitto refuses a second value for the same string key; so do we unless
 * 'replace'. 'per_listener' only words the duplicate message. Returns 0,
 * or -1 after reporting.
 */
static int set_str(struct parser *ps, const char *key, char **dst,
                   const char *val, bool replace, bool per_listener)
{
    if (*val == '\0') {
        LERR(ps, "missing value for '%s'", key);
        return -1;
    }
    if (!util_utf8_valid(val, strlen(val))) {
        LERR(ps, "the value of '%s' is not valid UTF-8", key);
        return -1;
    }
    if (*dst != NULL && !replace) {
        LERR(ps, "duplicate '%s': it is already set%s", key,
             per_listener ? " for this listener" : "");
        return -1;
    }
    free(*dst);
    *dst = xstrdup(val);
    return 0;
}

/* valid_host: an IPv4 or IPv6 literal (optionally %scope) or a host name. */
static bool valid_host(const char *s)
{
    unsigned char buf[16];
    char tmp[INET6_ADDRSTRLEN + 1];
    const char *pct = strchr(s, '%');
    size_t len = strlen(s), lab = 0;
    bool digits_only = true;

    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
        return true;
    if (pct != NULL) {
        size_t n = (size_t)(pct - s);
        if (n == 0 || n >= sizeof(tmp) || pct[1] == '\0')
            return false;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        for (const char *q = pct + 1; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '_' || *q == '.'))
                return false;
        return inet_pton(AF_INET6, tmp, buf) == 1;
    }
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i <= len; i++) {
        char ch = s[i];
        if (ch == '.' || ch == '\0') {
            if (lab == 0 || lab > 63 || s[i - 1] == '-')
                return false;
            if (ch == '\0')
                break;
            lab = 0;
            digits_only = true;
            continue;
        }
        if (ch >= '0' && ch <= '9') {
            /* still digits only */
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch == '-' && lab > 0) || ch == '_') {
            digits_only = false;
        } else {
            return false;
        }
        lab++;
    }
    /* a name whose last label is all digits is a mistyped IPv4 address */
    return !digits_only;
}

/* ---- scope -------------------------------------------------------------- */

static void init_listener(const struct conf *c, struct conf_listener *l)
{
    memset(l, 0, sizeof(*l));
    l->socket_domain = AF_UNSPEC;
    l->max_connections = c->max_connections;
    l->max_connection_rate = c->max_connection_rate;
    l->max_qos = c->max_qos;
    l->max_topic_alias = c->max_topic_alias;
    l->tls.min_version = TLS1_2_VERSION;
    l->tls.cert_mode = CONF_CERT_NONE;
    l->sec.allow_anonymous = -1;
    l->sec.allow_zero_length_clientid = true;
}

/* The listener that listener-scoped keys apply to now. */
static struct conf_listener *cur_listener(struct parser *ps)
{
    if (ps->c->nlisteners > 0)
        return &ps->c->listeners[ps->c->nlisteners - 1];
    if (!ps->deflt_used) {
        ps->deflt_used = true;
        ps->deflt_src = ps->file;
        ps->deflt_line = ps->line;
    }
    return &ps->deflt;
}

static struct lmeta *cur_meta(struct parser *ps)
{
    (void)cur_listener(ps);
    if (ps->c->nlisteners > 0)
        return &ps->lm[ps->c->nlisteners - 1];
    return &ps->dmeta;
}

static struct conf_security *cur_sec(struct parser *ps)
{
    ps->sec_seen = true;
    if (ps->c->per_listener_settings && ps->c->nlisteners > 0)
        return &ps->c->listeners[ps->c->nlisteners - 1].sec;
    return &ps->c->sec;
}

static void *key_base(struct parser *ps, const struct key *k, size_t *off)
{
    *off = k->off;
    switch (k->scope) {
    case SC_GLOBAL:
        return ps->c;
    case SC_LISTENER:
        return cur_listener(ps);
    case SC_BOTH:
        if (ps->c->nlisteners > 0)
            return &ps->c->listeners[ps->c->nlisteners - 1];
        *off = k->goff;
        return ps->c;
    case SC_SEC:
        return cur_sec(ps);
    }
    return NULL;
}

/* ---- generic key types -------------------------------------------------- */

static void store_typed(struct parser *ps, const struct key *k, char *val)
{
    size_t off;
    char *base, *tok;
    long long v;
    bool b;

    if (k->type == K_BOOL) {
        if (parse_bool(ps, k->name, val, &b) == 0) {
            base = key_base(ps, k, &off);
            memcpy(base + off, &b, sizeof(b));
        }
        return;
    }
    if (k->type == K_STR) {
        base = key_base(ps, k, &off);
        if (set_str(ps, k->name, (char **)(void *)(base + off), val,
                    (k->flags & F_REPLACE) != 0,
                    k->scope == SC_SEC ? base != (char *)&ps->c->sec
                                       : k->scope != SC_GLOBAL) == 0 &&
            k->fk >= 0) {
            struct lmeta *m = cur_meta(ps);
            m->fsrc[k->fk] = ps->file;
            m->fline[k->fk] = ps->line;
            if (k->fk == FK_CERT) {
                struct conf_listener *l = cur_listener(ps);
                l->tls.src = ps->file;
                l->tls.line = ps->line;
            }
        }
        return;
    }
    tok = one_token(ps, k->name, val);
    if (tok == NULL || parse_num(ps, k->name, tok, k->min, k->max, &v) < 0)
        return;
    base = key_base(ps, k, &off);
    switch (k->type) {
    case K_I32: {
        int x = (int)v;
        memcpy(base + off, &x, sizeof(x));
        break;
    }
    case K_U8: {
        uint8_t x = (uint8_t)v;
        memcpy(base + off, &x, sizeof(x));
        break;
    }
    case K_U16: {
        uint16_t x = (uint16_t)v;
        memcpy(base + off, &x, sizeof(x));
        break;
    }
    case K_U32: {
        uint32_t x = (uint32_t)v;
        memcpy(base + off, &x, sizeof(x));
        break;
    }
    case K_U64: {
        uint64_t x = (uint64_t)v;
        memcpy(base + off, &x, sizeof(x));
        break;
    }
    default:
        break;
    }
}

/* ---- handlers ----------------------------------------------------------- */

static bool same_listener(const struct conf_listener *a,
                          const struct conf_listener *b)
{
    if (a->port != b->port)
        return false;
    if (a->port == 0)
        return a->unix_path && b->unix_path &&
               strcmp(a->unix_path, b->unix_path) == 0;
    if (a->address == NULL || b->address == NULL)
        return a->address == b->address;
    return strcmp(a->address, b->address) == 0;
}

/* add_listener: append l (copied; its strings move too) and its meta. */
static void add_listener(struct parser *ps, const struct conf_listener *l,
                         const struct lmeta *m)
{
    struct conf *c = ps->c;

    if (c->nlisteners >= ps->lcap) {
        ps->lcap = ps->lcap ? ps->lcap * 2 : 4;
        c->listeners = xreallocarray(c->listeners, ps->lcap, sizeof(*l));
        ps->lm = xreallocarray(ps->lm, ps->lcap, sizeof(*m));
    }
    c->listeners[c->nlisteners] = *l;
    ps->lm[c->nlisteners] = *m;
    c->nlisteners++;
}

static void h_listener(struct parser *ps, const struct key *k, char *val)
{
    struct conf *c = ps->c;
    struct conf_listener l;
    struct lmeta m;
    char *ptok, *atok = NULL, *rest, sb[80];
    long long port = 0;
    bool bad = false;

    memset(&m, 0, sizeof(m));
    init_listener(c, &l);
    if (*val == '\0' || *val == '#') {
        LERR(ps, "missing value for 'listener': expected 'listener PORT "
                 "[ADDRESS]' or 'listener 0 /path/to/socket'");
        bad = true;
    } else {
        ptok = val;
        rest = val + strcspn(val, " \t");
        if (*rest != '\0') {
            *rest++ = '\0';
            rest += strspn(rest, " \t");
            if (*rest != '\0' && *rest != '#')
                atok = one_token(ps, k->name, rest);
            if (*rest != '\0' && *rest != '#' && atok == NULL)
                bad = true;
        }
        if (parse_num(ps, "listener", ptok, 0, 65535, &port) < 0)
            bad = true;
    }
    l.port = (uint16_t)port;
    if (!bad && port == 0) {
        struct sockaddr_un sun;
        if (atok == NULL) {
            LERR(ps, "listener port 0 needs a Unix socket path: 'listener 0 "
                     "/path/to/socket'");
            bad = true;
        } else if (strlen(atok) >= sizeof(sun.sun_path)) {
            LERR(ps, "Unix socket path '%s' is too long (at most %zu bytes)",
                 shown(sb, sizeof(sb), atok, false), sizeof(sun.sun_path) - 1);
            bad = true;
        } else {
            l.unix_path = xstrdup(atok);
        }
    } else if (!bad && atok != NULL) {
        if (!valid_host(atok)) {
            LERR(ps,
                 "invalid listener address '%s': expected an IPv4 or "
                 "IPv6 address or a host name",
                 shown(sb, sizeof(sb), atok, false));
            bad = true;
        } else {
            l.address = xstrdup(atok);
        }
    }
    if (!bad) {
        for (size_t i = 0; i < c->nlisteners; i++) {
            if (!ps->lm[i].bad && same_listener(&c->listeners[i], &l)) {
                LERR(ps,
                     "duplicate listener: the same port and address as "
                     "the listener at %s:%d",
                     c->listeners[i].src, c->listeners[i].line);
                bad = true;
                break;
            }
        }
    }
    if (c->nlisteners >= CONF_MAX_LISTENERS) {
        LERR(ps, "too many listeners (at most %d)", CONF_MAX_LISTENERS);
        free(l.address);
        free(l.unix_path);
        return;
    }
    l.src = ps->file;
    l.line = ps->line;
    m.bad = bad;
    /* a wrong listener line still opens a listener so the keys after it
     * land somewhere sensible; the snapshot is refused anyway */
    add_listener(ps, &l, &m);
}

static void h_port(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val);
    long long v;

    if (tok == NULL || parse_num(ps, k->name, tok, 1, 65535, &v) < 0)
        return;
    /* as Mosquitto: the default listener, the last "port" wins */
    ps->deflt.port = (uint16_t)v;
    if (!ps->deflt_used) {
        ps->deflt_used = true;
        ps->deflt_src = ps->file;
        ps->deflt_line = ps->line;
    }
}

static void h_bind_address(struct parser *ps, const struct key *k, char *val)
{
    char sb[80];

    if (*val != '\0' && !valid_host(val)) {
        LERR(ps,
             "invalid bind_address '%s': expected an IPv4 or IPv6 address "
             "or a host name",
             shown(sb, sizeof(sb), val, false));
        return;
    }
    if (set_str(ps, k->name, &ps->deflt.address, val, false, true) == 0 &&
        !ps->deflt_used) {
        ps->deflt_used = true;
        ps->deflt_src = ps->file;
        ps->deflt_line = ps->line;
    }
}

static void h_socket_domain(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (strcmp(tok, "ipv4") == 0)
        cur_listener(ps)->socket_domain = AF_INET;
    else if (strcmp(tok, "ipv6") == 0)
        cur_listener(ps)->socket_domain = AF_INET6;
    else
        LERR(ps, "invalid socket_domain '%s': expected ipv4 or ipv6",
             shown(sb, sizeof(sb), tok, false));
}

static void h_protocol(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (strcmp(tok, "mqtt") == 0)
        cur_listener(ps)->protocol = CONF_PROTO_MQTT;
    else if (strcmp(tok, "websockets") == 0)
        cur_listener(ps)->protocol = CONF_PROTO_WEBSOCKETS;
    else if (strcmp(tok, "http") == 0)
        cur_listener(ps)->protocol = CONF_PROTO_HTTP;
    else
        LERR(ps, "invalid protocol '%s': expected mqtt, websockets or http",
             shown(sb, sizeof(sb), tok, false));
}

/* http_allow_from CIDR...: may be given more than once (ranges add up). */
static void h_http_allow_from(struct parser *ps, const struct key *k, char *val)
{
    struct conf_listener *l = cur_listener(ps);
    char *save = NULL, sb[80];
    bool any = false;

    for (char *tok = strtok_r(val, " \t", &save); tok && *tok != '#';
         tok = strtok_r(NULL, " \t", &save)) {
        struct cidr r;
        any = true;
        if (cidr_parse(tok, &r) < 0) {
            LERR(ps,
                 "invalid address range '%s' in '%s': expected ADDRESS or "
                 "ADDRESS/PREFIX (IPv4 or IPv6, no host names)",
                 shown(sb, sizeof(sb), tok, true), k->name);
            continue;
        }
        if (l->nhttp_allow >= 1024) {
            LERR(ps, "too many ranges in '%s' (at most 1024)", k->name);
            return;
        }
        l->http_allow = xreallocarray(l->http_allow, l->nhttp_allow + 1,
                                      sizeof(*l->http_allow));
        l->http_allow[l->nhttp_allow++] = r;
    }
    if (!any)
        LERR(ps,
             "missing value for '%s': expected one or more address "
             "ranges such as 10.0.0.0/8",
             k->name);
}

/* websockets_path /PATH: the only path a WebSocket listener serves. */
static void h_ws_path(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    struct conf_listener *l;

    if (tok == NULL)
        return;
    if (tok[0] != '/' || strchr(tok, '?') != NULL) {
        LERR(ps, "invalid websockets_path '%s': expected a path such as /mqtt",
             shown(sb, sizeof(sb), tok, false));
        return;
    }
    l = cur_listener(ps);
    free(l->ws_path);
    l->ws_path = xstrdup(tok);
}

/* websockets_origin ORIGIN...: allowed Origin values (repeatable). */
static void h_ws_origin(struct parser *ps, const struct key *k, char *val)
{
    struct conf_listener *l = cur_listener(ps);
    char *save = NULL, *tok;

    if (*val == '\0' || *val == '#') {
        LERR(ps, "missing value for '%s'", k->name);
        return;
    }
    for (tok = strtok_r(val, " \t", &save); tok != NULL && *tok != '#';
         tok = strtok_r(NULL, " \t", &save)) {
        l->ws_origins = xreallocarray(l->ws_origins, l->nws_origins + 1,
                                      sizeof(*l->ws_origins));
        l->ws_origins[l->nws_origins++] = xstrdup(tok);
    }
}

static void h_tls_version(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (strcmp(tok, "tlsv1.2") == 0)
        cur_listener(ps)->tls.min_version = TLS1_2_VERSION;
    else if (strcmp(tok, "tlsv1.3") == 0)
        cur_listener(ps)->tls.min_version = TLS1_3_VERSION;
    else if (strcmp(tok, "tlsv1") == 0 || strcmp(tok, "tlsv1.1") == 0)
        LERR(ps, "tls_version %s: TLS versions below 1.2 are not supported",
             tok);
    else
        LERR(ps, "invalid tls_version '%s': expected tlsv1.2 or tlsv1.3",
             shown(sb, sizeof(sb), tok, false));
}

static void h_tls_ocsp_check(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    struct conf_listener *l;

    if (tok == NULL)
        return;
    l = cur_listener(ps);
    if (strcmp(tok, "off") == 0)
        l->tls.ocsp_check = CONF_OCSP_OFF;
    else if (strcmp(tok, "soft") == 0)
        l->tls.ocsp_check = CONF_OCSP_SOFT;
    else if (strcmp(tok, "hard") == 0)
        l->tls.ocsp_check = CONF_OCSP_HARD;
    else {
        LERR(ps, "invalid tls_ocsp_check '%s': expected off, soft or hard",
             shown(sb, sizeof(sb), tok, false));
        return;
    }
    if (l->tls.ocsp_check != CONF_OCSP_OFF) {
        cur_meta(ps)->ocsp_src = ps->file;
        cur_meta(ps)->ocsp_line = ps->line;
    }
}

static void h_tls_ocsp_responder(struct parser *ps, const struct key *k,
                                 char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    struct conf_listener *l;

    if (tok == NULL)
        return;
    if (strncmp(tok, "http://", 7) != 0 || tok[7] == '\0') {
        LERR(ps,
             "invalid tls_ocsp_responder '%s': expected an http:// URL "
             "(OCSP is signed; https is not supported)",
             shown(sb, sizeof(sb), tok, false));
        return;
    }
    l = cur_listener(ps);
    free(l->tls.ocsp_responder);
    l->tls.ocsp_responder = xstrdup(tok);
}

static void h_tls_ocsp_cache_seconds(struct parser *ps, const struct key *k,
                                     char *val)
{
    char *tok = one_token(ps, k->name, val);
    long long n;

    if (tok == NULL || parse_num(ps, k->name, tok, 1, 604800, &n) != 0)
        return;
    cur_listener(ps)->tls.ocsp_cache_seconds = (uint32_t)n;
}

static void h_tls_ocsp_stapling(struct parser *ps, const struct key *k,
                                char *val)
{
    bool b;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    cur_listener(ps)->tls.ocsp_stapling = b;
    if (b) {
        cur_meta(ps)->ocsp_src = ps->file;
        cur_meta(ps)->ocsp_line = ps->line;
    }
}

/* check_listener_ocsp: OCSP needs TLS, and client checks need client
 * certificates. */
static void check_listener_ocsp(struct parser *ps, struct conf_listener *l,
                                const struct lmeta *m, const char *name)
{
    if (l->tls.ocsp_cache_seconds == 0)
        l->tls.ocsp_cache_seconds = 3600;
    if (m->ocsp_src == NULL)
        return;
    if (!l->tls_enabled)
        perr(ps, m->ocsp_src, m->ocsp_line,
             "OCSP needs TLS: %s has no certfile and keyfile", name);
    else if (l->tls.ocsp_check != CONF_OCSP_OFF &&
             l->tls.cert_mode == CONF_CERT_NONE)
        perr(ps, m->ocsp_src, m->ocsp_line,
             "tls_ocsp_check on %s, which requests no client certificates: "
             "set require_certificate true or client_cert_mode",
             name);
    if (l->tls.ocsp_stapling_file != NULL && !l->tls.ocsp_stapling)
        pwarn(ps, m->ocsp_src ? m->ocsp_src : ps->file,
              m->ocsp_src ? m->ocsp_line : ps->line,
              "tls_ocsp_stapling_file on %s has no effect without "
              "tls_ocsp_stapling true",
              name);
}

static void h_client_cert_mode(struct parser *ps, const struct key *k,
                               char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    enum conf_cert_mode mode;
    struct lmeta *m;

    if (tok == NULL)
        return;
    if (strcmp(tok, "none") == 0)
        mode = CONF_CERT_NONE;
    else if (strcmp(tok, "optional") == 0)
        mode = CONF_CERT_OPTIONAL;
    else if (strcmp(tok, "required") == 0)
        mode = CONF_CERT_REQUIRED;
    else {
        LERR(ps,
             "invalid client_cert_mode '%s': expected none, optional or "
             "required",
             shown(sb, sizeof(sb), tok, false));
        return;
    }
    cur_listener(ps)->tls.cert_mode = mode;
    m = cur_meta(ps);
    m->cert_mode_set = true;
    m->ccm_src = ps->file;
    m->ccm_line = ps->line;
}

static void h_tls_record_layer(struct parser *ps, const struct key *k,
                               char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    /* openssl is the only record layer; the key stays for old files */
    if (strcmp(tok, "openssl") == 0)
        return;
    if (strcmp(tok, "mqttd") == 0)
        LERR(ps, "'tls_record_layer mqttd': mqttd's own TLS record layer was "
                 "removed in this release; remove the line (OpenSSL's is "
                 "used)");
    else
        LERR(ps, "invalid tls_record_layer '%s': expected openssl",
             shown(sb, sizeof(sb), tok, false));
}

static void h_tls_keyform(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (strcmp(tok, "pem") == 0 || strcmp(tok, "engine") == 0) {
        struct lmeta *m = cur_meta(ps);
        bool eng = tok[0] == 'e';

        cur_listener(ps)->tls.keyform_engine = eng;
        m->kf_src = eng ? ps->file : NULL;
        m->kf_line = ps->line;
        return;
    }
    LERR(ps, "invalid tls_keyform '%s': expected pem or engine",
         shown(sb, sizeof(sb), tok, false));
}

static void h_tls_engine(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val);
    struct lmeta *m;

    if (tok == NULL ||
        set_str(ps, k->name, &cur_listener(ps)->tls.engine, tok, false, true))
        return;
    m = cur_meta(ps);
    m->eng_src = ps->file;
    m->eng_line = ps->line;
}

static void h_tls_engine_kpass_sha1(struct parser *ps, const struct key *k,
                                    char *val)
{
    (void)k;
    (void)val; /* a SHA-1 of the PIN: never shown */
    LERR(ps, "'tls_engine_kpass_sha1' cannot work: the pkcs11 engine "
             "(libp11) logs into the token with the PIN itself, and a "
             "SHA-1 of the PIN is not the PIN (Mosquitto fails with it "
             "too); put the PIN in the keyfile URI with pin-value= or "
             "pin-source=file:");
}

static void h_tls_identity_source(struct parser *ps, const struct key *k,
                                  char *val)
{
    static const struct {
        const char *name;
        enum conf_identity_source v;
    } srcs[] = {{"cn", CONF_ID_CN},
                {"san_uri", CONF_ID_SAN_URI},
                {"san_dns", CONF_ID_SAN_DNS},
                {"san_email", CONF_ID_SAN_EMAIL}};
    char *tok = one_token(ps, k->name, val), sb[80];
    struct lmeta *m;

    if (tok == NULL)
        return;
    for (size_t i = 0; i < ARRAY_LEN(srcs); i++) {
        if (strcmp(tok, srcs[i].name) != 0)
            continue;
        cur_listener(ps)->tls.identity_source = srcs[i].v;
        m = cur_meta(ps);
        m->ids_src = srcs[i].v != CONF_ID_CN ? ps->file : NULL;
        m->ids_line = ps->line;
        return;
    }
    LERR(ps,
         "invalid tls_identity_source '%s': expected cn, san_uri, san_dns "
         "or san_email",
         shown(sb, sizeof(sb), tok, false));
}

static void h_require_certificate(struct parser *ps, const struct key *k,
                                  char *val)
{
    bool b;
    struct lmeta *m;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    cur_listener(ps)->tls.require_certificate = b;
    m = cur_meta(ps);
    m->rc_src = b ? ps->file : NULL;
    m->rc_line = b ? ps->line : 0;
}

static void h_use_as_username(struct parser *ps, const struct key *k, char *val)
{
    bool b;
    struct conf_listener *l;
    struct lmeta *m;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    l = cur_listener(ps);
    if (strcmp(k->name, "use_identity_as_username") == 0)
        l->tls.use_identity_as_username = b;
    else
        l->tls.use_subject_as_username = b;
    m = cur_meta(ps);
    if (b) {
        m->uid_src = ps->file;
        m->uid_line = ps->line;
        m->uid_key = k->name;
    } else if (!l->tls.use_identity_as_username &&
               !l->tls.use_subject_as_username) {
        m->uid_src = NULL;
    }
}

static void h_proxy_protocol(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val);
    long long v;
    struct lmeta *m;

    if (tok == NULL || parse_num(ps, k->name, tok, 1, 2, &v) < 0)
        return;
    cur_listener(ps)->proxy_protocol = (uint8_t)v;
    m = cur_meta(ps);
    m->pp_src = ps->file;
    m->pp_line = ps->line;
}

static void h_proxy_require_tls(struct parser *ps, const struct key *k,
                                char *val)
{
    bool b;
    struct lmeta *m;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    cur_listener(ps)->proxy_v2_require_tls = b;
    m = cur_meta(ps);
    m->pprt_src = b ? ps->file : NULL;
    m->pprt_line = b ? ps->line : 0;
}

static void h_allow_anonymous(struct parser *ps, const struct key *k, char *val)
{
    bool b;

    if (parse_bool(ps, k->name, val, &b) == 0)
        cur_sec(ps)->allow_anonymous = b ? 1 : 0;
}

static void h_allow_zero_length_clientid(struct parser *ps, const struct key *k,
                                         char *val)
{
    bool b;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    cur_sec(ps)->allow_zero_length_clientid = b;
    if (ps->c->per_listener_settings && ps->c->nlisteners > 0)
        ps->lm[ps->c->nlisteners - 1].azlc_set = true;
    else
        ps->gazlc_set = true;
}

static void h_sec_file(struct parser *ps, const struct key *k, char *val)
{
    struct conf_security *sec = cur_sec(ps);
    bool pw = strcmp(k->name, "password_file") == 0;
    bool pl = sec != &ps->c->sec;

    if (set_str(ps, k->name, pw ? &sec->password_file : &sec->acl_file, val,
                false, pl) < 0)
        return;
    if (pw) {
        sec->password_file_src = ps->file;
        sec->password_file_line = ps->line;
    } else {
        sec->acl_file_src = ps->file;
        sec->acl_file_line = ps->line;
    }
}

static void h_per_listener_settings(struct parser *ps, const struct key *k,
                                    char *val)
{
    bool b;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    /* Mosquitto: "per_listener_settings must be set before any other
     * security settings"; mqttd also wants it before any listener */
    if (b != ps->c->per_listener_settings &&
        (ps->c->nlisteners > 0 || ps->sec_seen)) {
        LERR(ps, "per_listener_settings must come before any listener and "
                 "any security setting");
        return;
    }
    ps->c->per_listener_settings = b;
}

static void h_log_dest(struct parser *ps, const struct key *k, char *val)
{
    struct conf *c = ps->c;
    char *tok, *rest, sb[80];

    if (*val == '\0' || *val == '#') {
        LERR(ps, "missing value for '%s'", k->name);
        return;
    }
    rest = val + strcspn(val, " \t");
    if (*rest != '\0') {
        *rest++ = '\0';
        rest += strspn(rest, " \t");
    }
    tok = val;
    if (!ps->log_dest_set) {
        /* the first log_dest line replaces the default (stderr) */
        ps->log_dest_set = true;
        c->log_dests = LOGD_NONE;
    }
    if (strcmp(tok, "file") == 0) {
        if (*rest == '\0') {
            LERR(ps, "'log_dest file' needs a file name");
            return;
        }
        if (c->log_file != NULL) {
            LERR(ps, "duplicate 'log_dest file': only one log file may be "
                     "configured");
            return;
        }
        if (set_str(ps, "log_dest file", &c->log_file, rest, false, false) == 0)
            c->log_dests |= LOGD_FILE;
        return;
    }
    if (*rest != '\0' && *rest != '#') {
        LERR(ps,
             "unexpected '%s' after the value of '%s' (give one "
             "destination per line)",
             shown(sb, sizeof(sb), rest, true), k->name);
        return;
    }
    if (strcmp(tok, "stderr") == 0)
        c->log_dests |= LOGD_STDERR;
    else if (strcmp(tok, "stdout") == 0)
        c->log_dests |= LOGD_STDOUT;
    else if (strcmp(tok, "syslog") == 0)
        c->log_dests |= LOGD_SYSLOG;
    else if (strcmp(tok, "none") == 0)
        c->log_dests = LOGD_NONE;
    else if (strcmp(tok, "topic") == 0 || strcmp(tok, "dlt") == 0)
        LERR(ps, "'log_dest %s' is not supported by mqttd", tok);
    else
        LERR(ps,
             "invalid log_dest '%s': expected stderr, stdout, syslog, "
             "file PATH or none",
             shown(sb, sizeof(sb), tok, false));
}

static void h_log_type(struct parser *ps, const struct key *k, char *val)
{
    static const struct {
        const char *name;
        unsigned bits;
    } types[] = {
        {"error", LOG_ERR},
        {"warning", LOG_WARNING},
        {"notice", LOG_NOTICE},
        {"information", LOG_INFO},
        {"debug", LOG_DEBUG},
        {"subscribe", LOG_SUBSCRIBE},
        {"unsubscribe", LOG_UNSUBSCRIBE},
        {"websockets", LOG_WEBSOCKETS},
    };
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (!ps->log_type_set) {
        /* the first log_type line replaces the default set */
        ps->log_type_set = true;
        ps->c->log_types = 0;
    }
    if (strcmp(tok, "none") == 0) {
        ps->c->log_types = 0;
        return;
    }
    if (strcmp(tok, "all") == 0) {
        ps->c->log_types = LOG_ALL;
        return;
    }
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        if (strcmp(tok, types[i].name) == 0) {
            ps->c->log_types |= types[i].bits;
            return;
        }
    }
    LERR(ps,
         "invalid log_type '%s': expected error, warning, notice, "
         "information, debug, subscribe, unsubscribe, websockets, none "
         "or all",
         shown(sb, sizeof(sb), tok, false));
}

static void h_log_format(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (strcmp(tok, "text") == 0)
        ps->c->log_json = false;
    else if (strcmp(tok, "json") == 0)
        ps->c->log_json = true;
    else
        LERR(ps, "invalid log_format '%s': expected text or json",
             shown(sb, sizeof(sb), tok, false));
}

static void h_persistence_sync(struct parser *ps, const struct key *k,
                               char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];

    if (tok == NULL)
        return;
    if (strcmp(tok, "snapshot") == 0)
        ps->c->persistence_sync = 0;
    else if (strcmp(tok, "always") == 0)
        ps->c->persistence_sync = 1;
    else
        LERR(ps, "invalid persistence_sync '%s': expected snapshot or always",
             shown(sb, sizeof(sb), tok, false));
}

static void h_threads(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    long long v;
    const char *es;

    if (tok == NULL)
        return;
    ps->threads_src = ps->file;
    ps->threads_line = ps->line;
    if (strcmp(tok, "auto") == 0) {
        ps->c->threads = 0;
        return;
    }
    if (util_strtonum(tok, 1, CONF_MAX_THREADS, &v, &es) < 0) {
        LERR(ps, "invalid threads '%s': expected auto or 1..%d",
             shown(sb, sizeof(sb), tok, false), CONF_MAX_THREADS);
        return;
    }
    ps->c->threads = (uint32_t)v;
}

/*
 * check_retain_source: Mosquitto's default is true (re-check the
 * publisher's write access before sending a retained message); mqttd
 * checks it when the message is stored, so true is accepted with a
 * warning and false is what mqttd does.
 */
static void h_check_retain_source(struct parser *ps, const struct key *k,
                                  char *val)
{
    bool b;

    if (parse_bool(ps, k->name, val, &b) < 0)
        return;
    ps->c->check_retain_source = b;
    if (b)
        LWARN(ps, "'check_retain_source true' has no effect in mqttd: a "
                  "retained message's publisher is checked against the ACL "
                  "when it is stored, not again when it is sent");
}

static void h_persistent_client_expiration(struct parser *ps,
                                           const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    size_t n;
    long long mult, v;

    if (tok == NULL)
        return;
    n = strlen(tok);
    switch (tok[n - 1]) {
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    case 'w':
        mult = 86400 * 7;
        break;
    case 'm':
        mult = 86400 * 30;
        break;
    case 'y':
        mult = 86400 * 365;
        break;
    default:
        mult = 0;
        break;
    }
    if (mult == 0 || n < 2) {
        LERR(ps,
             "invalid persistent_client_expiration '%s': expected a "
             "number followed by h, d, w, m or y (for example 14d)",
             shown(sb, sizeof(sb), tok, false));
        return;
    }
    tok[n - 1] = '\0';
    if (parse_num(ps, k->name, tok, 1, (long long)UINT32_MAX / mult, &v) < 0)
        return;
    ps->c->persistent_client_expiration = (uint32_t)(v * mult);
}

static void h_max_packet_size(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val);
    long long v;

    if (tok == NULL || parse_num(ps, k->name, tok, 0, MQTT_MAX_PACKET, &v) < 0)
        return;
    if (v > 0 && v < 20) {
        /* Mosquitto: below 20 bytes breaks ordinary clients */
        LERR(ps,
             "value %lld for 'max_packet_size' is too small: use 0 (no "
             "limit) or 20 to %u",
             v, MQTT_MAX_PACKET);
        return;
    }
    ps->c->max_packet_size = (uint32_t)v;
}

static void parse_file(struct parser *ps, const char *path, bool is_main);

/*
 * Mosquitto's include_dir order: case-sensitive alphabetical with the upper
 * case of a letter before its lower case (A.conf, a.conf, B.conf, b.conf).
 */
static int include_order(const void *a, const void *b)
{
    const unsigned char *x = *(const unsigned char *const *)a;
    const unsigned char *y = *(const unsigned char *const *)b;

    for (;; x++, y++) {
        unsigned cx = *x, cy = *y;
        unsigned lx = (cx >= 'A' && cx <= 'Z') ? cx + 32 : cx;
        unsigned ly = (cy >= 'A' && cy <= 'Z') ? cy + 32 : cy;
        unsigned rx = lx * 2 + (cx >= 'a' && cx <= 'z');
        unsigned ry = ly * 2 + (cy >= 'a' && cy <= 'z');
        if (rx != ry)
            return rx < ry ? -1 : 1;
        if (cx == '\0')
            return 0;
    }
}

static void h_include_dir(struct parser *ps, const struct key *k, char *val)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL, sb[80];
    size_t n = 0, cap = 0, dlen;
    const char *file = ps->file;
    int line = ps->line;

    if (ps->depth > 0) {
        LERR(ps, "include_dir is only allowed in the main configuration file");
        return;
    }
    if (*val == '\0') {
        LERR(ps, "missing value for '%s'", k->name);
        return;
    }
    d = opendir(val);
    if (d == NULL) {
        LERR(ps, "cannot open include_dir '%s': %s",
             shown(sb, sizeof(sb), val, false), strerror(errno));
        return;
    }
    dlen = strlen(val);
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        char *full;
        struct stat st;

        if (nl < 6 || strcmp(de->d_name + nl - 5, ".conf") != 0)
            continue;
        full = xmalloc(dlen + nl + 2);
        memcpy(full, val, dlen);
        full[dlen] = '/';
        memcpy(full + dlen + 1, de->d_name, nl + 1);
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(full);
            continue;
        }
        if (ps->have_main_id && st.st_dev == ps->main_dev &&
            st.st_ino == ps->main_ino) {
            perr(ps, file, line,
                 "include_dir '%s' contains the main configuration file",
                 shown(sb, sizeof(sb), val, false));
            free(full);
            continue;
        }
        if (n >= CONF_MAX_INCLUDE_FILES) {
            perr(ps, file, line, "include_dir '%s' has too many files",
                 shown(sb, sizeof(sb), val, false));
            free(full);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xreallocarray(names, cap, sizeof(*names));
        }
        names[n++] = full;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), include_order);
    ps->depth++;
    for (size_t i = 0; i < n; i++) {
        if (!ps->gave_up)
            parse_file(ps, names[i], false);
        free(names[i]);
    }
    ps->depth--;
    ps->file = file;
    ps->line = line;
    free(names);
}

/* cluster_nats URL[,URL...]: nats:// or tls:// URLs, no spaces. */
static void h_cluster_nats(struct parser *ps, const struct key *k, char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    const char *p;

    if (tok == NULL)
        return;
    for (p = tok; *p;) {
        size_t n = strcspn(p, ",");
        bool scheme = (n > 7 && strncmp(p, "nats://", 7) == 0) ||
                      (n > 6 && strncmp(p, "tls://", 6) == 0);
        if (!scheme) {
            LERR(ps,
                 "invalid cluster_nats '%s': expected nats://HOST:PORT or "
                 "tls://HOST:PORT, separated by commas",
                 shown(sb, sizeof(sb), tok, false));
            return;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    free(ps->c->cluster_nats);
    ps->c->cluster_nats = xstrdup(tok);
    ps->cl_src = ps->file;
    ps->cl_line = ps->line;
}

/* cluster_node_name NAME: 1..64 of [A-Za-z0-9_-]. */
static void h_cluster_node_name(struct parser *ps, const struct key *k,
                                char *val)
{
    char *tok = one_token(ps, k->name, val), sb[80];
    size_t n;

    if (tok == NULL)
        return;
    n = strlen(tok);
    if (n == 0 || n > 64 ||
        strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789_-") != n) {
        LERR(ps,
             "invalid cluster_node_name '%s': expected 1 to 64 letters, "
             "digits, '_' or '-'",
             shown(sb, sizeof(sb), tok, false));
        return;
    }
    free(ps->c->cluster_node_name);
    ps->c->cluster_node_name = xstrdup(tok);
}

/* cluster_nats_cafile/certfile/keyfile/credentials FILE (readable now),
 * cluster_nats_user/password STRING: TLS and credentials of the NATS
 * connection. The password is never echoed in a message. */
/* the field of key i (CLK_*) */
static char **clk_field(struct conf *c, int i)
{
    char **f[CLK_N] = {&c->cluster_nats_cafile,   &c->cluster_nats_certfile,
                       &c->cluster_nats_keyfile,  &c->cluster_nats_user,
                       &c->cluster_nats_password, &c->cluster_nats_credentials};

    return f[i];
}

static void h_cluster_opt(struct parser *ps, const struct key *k, char *val)
{
    char *tok;
    int i;

    for (i = 0; i < CLK_N; i++)
        if (strcmp(k->name, clk_names[i]) == 0)
            break;
    if (i == CLK_N)
        return;
    if (i == CLK_PW) {
        /* not one_token: its messages would show the value */
        while (*val == ' ' || *val == '\t')
            val++;
        tok = val;
        tok[strcspn(tok, "\r\n")] = '\0';
        for (size_t n = strlen(tok);
             n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'); n--)
            tok[n - 1] = '\0';
    } else {
        tok = one_token(ps, k->name, val);
        if (tok == NULL)
            return;
    }
    if (set_str(ps, k->name, clk_field(ps->c, i), tok, true, false) < 0)
        return;
    ps->clk_src[i] = ps->file;
    ps->clk_line[i] = ps->line;
}

/* ---- the keyword table (sorted by strcmp: bsearch) ---------------------- */

#define G(m) offsetof(struct conf, m)
#define L(m) offsetof(struct conf_listener, m)
#define S(m) offsetof(struct conf_security, m)
#define UNSUP(n, why)                                                          \
    {                                                                          \
        n, K_UNSUP, SC_GLOBAL, 0, 0, 0, 0, NULL, -1, 0, why                    \
    }
#define BRIDGE(n) UNSUP(n, WHY_BRIDGE)
#define WARN(n, fl, why)                                                       \
    {                                                                          \
        n, K_WARN, SC_GLOBAL, 0, 0, 0, 0, NULL, -1, fl, why                    \
    }
#define FN(n, f, sc)                                                           \
    {                                                                          \
        n, K_FN, sc, 0, 0, 0, 0, f, -1, 0, NULL                                \
    }
#define BOOLG(n, m)                                                            \
    {                                                                          \
        n, K_BOOL, SC_GLOBAL, G(m), 0, 0, 0, NULL, -1, 0, NULL                 \
    }
#define BOOLL(n, m)                                                            \
    {                                                                          \
        n, K_BOOL, SC_LISTENER, L(m), 0, 0, 0, NULL, -1, 0, NULL               \
    }
#define BOOLS(n, m)                                                            \
    {                                                                          \
        n, K_BOOL, SC_SEC, S(m), 0, 0, 0, NULL, -1, 0, NULL                    \
    }
#define INTG(n, t, m, lo, hi)                                                  \
    {                                                                          \
        n, t, SC_GLOBAL, G(m), 0, lo, hi, NULL, -1, 0, NULL                    \
    }
#define INTB(n, t, m, lo, hi)                                                  \
    {                                                                          \
        n, t, SC_BOTH, L(m), G(m), lo, hi, NULL, -1, 0, NULL                   \
    }
#define STRG(n, m, fl)                                                         \
    {                                                                          \
        n, K_STR, SC_GLOBAL, G(m), 0, 0, 0, NULL, -1, fl, NULL                 \
    }
#define STRL(n, m, fk)                                                         \
    {                                                                          \
        n, K_STR, SC_LISTENER, L(m), 0, 0, 0, NULL, fk, 0, NULL                \
    }
#define STRS(n, m)                                                             \
    {                                                                          \
        n, K_STR, SC_SEC, S(m), 0, 0, 0, NULL, -1, 0, NULL                     \
    }

static const struct key keys[] = {
    FN("acl_file", h_sec_file, SC_SEC),
    BRIDGE("address"),
    BRIDGE("addresses"),
    FN("allow_anonymous", h_allow_anonymous, SC_SEC),
    WARN("allow_duplicate_messages", F_BOOLV,
         "deprecated in Mosquitto 2.0; mqttd sends a client one copy of a "
         "message however many of its subscriptions match, as MQTT allows"),
    FN("allow_zero_length_clientid", h_allow_zero_length_clientid, SC_SEC),
    UNSUP("auth_plugin", WHY_PLUGIN),
    WARN("auth_plugin_deny_special_chars", F_BOOLV,
         "it only applies to authentication plugins, which mqttd does not "
         "load"),
    STRS("auto_id_prefix", auto_id_prefix),
    INTG("autosave_interval", K_U32, autosave_interval, 0, INT32_MAX),
    BOOLG("autosave_on_changes", autosave_on_changes),
    FN("bind_address", h_bind_address, SC_LISTENER),
    UNSUP("bind_interface",
          "use 'listener PORT ADDRESS' with the interface's address; "
          "ignoring the key would listen on every interface"),
    BRIDGE("bridge_alpn"),
    BRIDGE("bridge_attempt_unsubscribe"),
    BRIDGE("bridge_bind_address"),
    BRIDGE("bridge_cafile"),
    BRIDGE("bridge_capath"),
    BRIDGE("bridge_certfile"),
    BRIDGE("bridge_identity"),
    BRIDGE("bridge_insecure"),
    BRIDGE("bridge_keyfile"),
    BRIDGE("bridge_max_packet_size"),
    BRIDGE("bridge_outgoing_retain"),
    BRIDGE("bridge_protocol_version"),
    BRIDGE("bridge_psk"),
    BRIDGE("bridge_require_ocsp"),
    BRIDGE("bridge_tls_version"),
    STRL("cafile", tls.cafile, FK_CA),
    STRL("capath", tls.capath, FK_CAPATH),
    STRL("certfile", tls.certfile, FK_CERT),
    FN("check_retain_source", h_check_retain_source, SC_GLOBAL),
    STRL("ciphers", tls.ciphers, -1),
    STRL("ciphers_tls1.3", tls.ciphers_tls13, -1),
    BRIDGE("cleansession"),
    FN("client_cert_mode", h_client_cert_mode, SC_LISTENER),
    BRIDGE("clientid"),
    UNSUP("clientid_prefixes",
          "deprecated in Mosquitto 2.0; it restricts who may connect, and "
          "ignoring it would let every client in: use a password file or "
          "ACL"),
    INTG("cluster_msgs_max_age", K_U32, cluster_msgs_max_age, 1, 31536000),
    INTG("cluster_msgs_max_bytes", K_U64, cluster_msgs_max_bytes, 1048576,
         INT64_MAX),
    FN("cluster_nats", h_cluster_nats, SC_GLOBAL),
    FN("cluster_nats_cafile", h_cluster_opt, SC_GLOBAL),
    FN("cluster_nats_certfile", h_cluster_opt, SC_GLOBAL),
    FN("cluster_nats_credentials", h_cluster_opt, SC_GLOBAL),
    FN("cluster_nats_keyfile", h_cluster_opt, SC_GLOBAL),
    FN("cluster_nats_password", h_cluster_opt, SC_GLOBAL),
    FN("cluster_nats_user", h_cluster_opt, SC_GLOBAL),
    FN("cluster_node_name", h_cluster_node_name, SC_GLOBAL),
    INTG("cluster_node_timeout", K_U32, cluster_node_timeout, 2, 3600),
    INTG("connect_timeout", K_U32, connect_timeout, 1, 65535),
    BRIDGE("connection"),
    BOOLG("connection_messages", connection_messages),
    STRL("crlfile", tls.crlfile, FK_CRL),
    STRL("dhparamfile", tls.dhparamfile, FK_DH),
    FN("enable_proxy_protocol", h_proxy_protocol, SC_LISTENER),
    FN("http_allow_from", h_http_allow_from, SC_LISTENER),
    WARN("http_dir", 0,
         "mqttd's WebSocket listeners serve MQTT only, no files"),
    INTG("http_shutdown_grace", K_U32, http_shutdown_grace, 0, 3600),
    BRIDGE("idle_timeout"),
    FN("include_dir", h_include_dir, SC_GLOBAL),
    BRIDGE("keepalive_interval"),
    STRL("keyfile", tls.keyfile, FK_KEY),
    FN("listener", h_listener, SC_GLOBAL),
    BRIDGE("local_cleansession"),
    BRIDGE("local_clientid"),
    BRIDGE("local_password"),
    BRIDGE("local_username"),
    FN("log_dest", h_log_dest, SC_GLOBAL),
    WARN("log_facility", 0, "mqttd logs to the syslog facility daemon"),
    FN("log_format", h_log_format, SC_GLOBAL),
    BOOLG("log_timestamp", log_timestamp),
    STRG("log_timestamp_format", log_timestamp_format, 0),
    FN("log_type", h_log_type, SC_GLOBAL),
    INTB("max_connection_rate", K_U32, max_connection_rate, 0, INT32_MAX),
    INTB("max_connections", K_I32, max_connections, -1, INT32_MAX),
    INTG("max_inflight_bytes", K_U64, max_inflight_bytes, 0, INT64_MAX),
    INTG("max_inflight_messages", K_U16, max_inflight_messages, 0, 65535),
    INTG("max_keepalive", K_U16, max_keepalive, 0, 65535),
    FN("max_packet_size", h_max_packet_size, SC_GLOBAL),
    INTB("max_qos", K_U8, max_qos, 0, 2),
    INTG("max_queued_bytes", K_U64, max_queued_bytes, 0, INT64_MAX),
    INTG("max_queued_messages", K_U32, max_queued_messages, 0, INT32_MAX),
    INTG("max_receive_maximum", K_U16, max_receive_maximum, 1, 65535),
    INTG("max_retained_bytes", K_U64, max_retained_bytes, 0, INT64_MAX),
    INTG("max_retained_messages", K_U32, max_retained_messages, 0, UINT32_MAX),
    INTG("max_subscriptions_per_client", K_U32, max_subscriptions_per_client, 0,
         UINT32_MAX),
    INTB("max_topic_alias", K_U16, max_topic_alias, 0, 65535),
    /* undocumented Mosquitto 2.0 spelling of max_qos, same storage */
    INTB("maximum_qos", K_U8, max_qos, 0, 2),
    INTG("memory_limit", K_U64, memory_limit, 0, INT64_MAX),
    INTG("message_size_limit", K_U32, message_size_limit, 0, MQTT_MAX_PAYLOAD),
    UNSUP("mount_point",
          "ignoring it would put this listener's clients in the shared "
          "topic tree instead of their own"),
    BRIDGE("notification_topic"),
    BRIDGE("notifications"),
    BRIDGE("notifications_local_only"),
    BRIDGE("password"),
    FN("password_file", h_sec_file, SC_SEC),
    FN("per_listener_settings", h_per_listener_settings, SC_GLOBAL),
    BOOLG("persistence", persistence),
    STRG("persistence_file", persistence_file, 0),
    STRG("persistence_location", persistence_location, 0),
    FN("persistence_sync", h_persistence_sync, SC_GLOBAL),
    FN("persistent_client_expiration", h_persistent_client_expiration,
       SC_GLOBAL),
    STRG("pid_file", pid_file, 0),
    UNSUP("plugin", WHY_PLUGIN),
    FN("port", h_port, SC_LISTENER),
    FN("protocol", h_protocol, SC_LISTENER),
    FN("proxy_protocol_v2_require_tls", h_proxy_require_tls, SC_LISTENER),
    UNSUP("psk_file", WHY_PSK),
    UNSUP("psk_hint", WHY_PSK),
    BOOLG("queue_qos0_messages", queue_qos0_messages),
    BRIDGE("remote_clientid"),
    BRIDGE("remote_password"),
    BRIDGE("remote_username"),
    FN("require_certificate", h_require_certificate, SC_LISTENER),
    BRIDGE("restart_timeout"),
    BOOLG("retain_available", retain_available),
    WARN("retry_interval", 0, "removed in Mosquitto 2.0"),
    BRIDGE("round_robin"),
    BOOLG("set_tcp_nodelay", set_tcp_nodelay),
    FN("socket_domain", h_socket_domain, SC_LISTENER),
    BRIDGE("start_type"),
    INTG("sys_interval", K_U32, sys_interval, 0, 65535),
    FN("threads", h_threads, SC_GLOBAL),
    BRIDGE("threshold"),
    FN("tls_engine", h_tls_engine, SC_LISTENER),
    FN("tls_engine_kpass_sha1", h_tls_engine_kpass_sha1, SC_LISTENER),
    INTG("tls_expiry_warning_days", K_U32, tls_expiry_warning_days, 0, 3650),
    STRL("tls_groups", tls.tls_groups, -1),
    INTG("tls_handshake_timeout", K_U32, tls_handshake_timeout, 1, 3600),
    FN("tls_identity_source", h_tls_identity_source, SC_LISTENER),
    FN("tls_keyform", h_tls_keyform, SC_LISTENER),
    FN("tls_ocsp_cache_seconds", h_tls_ocsp_cache_seconds, SC_LISTENER),
    FN("tls_ocsp_check", h_tls_ocsp_check, SC_LISTENER),
    FN("tls_ocsp_responder", h_tls_ocsp_responder, SC_LISTENER),
    FN("tls_ocsp_stapling", h_tls_ocsp_stapling, SC_LISTENER),
    STRL("tls_ocsp_stapling_file", tls.ocsp_stapling_file, -1),
    FN("tls_record_layer", h_tls_record_layer, SC_LISTENER),
    INTG("tls_reload_interval", K_U32, tls_reload_interval, 0, INT32_MAX),
    STRG("tls_session_ticket_key_file", tls_session_ticket_key_file, 0),
    INTG("tls_session_ticket_lifetime", K_U32, tls_session_ticket_lifetime, 60,
         604800),
    FN("tls_version", h_tls_version, SC_LISTENER),
    BRIDGE("topic"),
    BRIDGE("try_private"),
    BOOLG("upgrade_outgoing_qos", upgrade_outgoing_qos),
    FN("use_identity_as_username", h_use_as_username, SC_LISTENER),
    FN("use_subject_as_username", h_use_as_username, SC_LISTENER),
    UNSUP("use_username_as_clientid",
          "not supported yet; ignoring it would let a client pick a client "
          "id other than its username, which ACL %c patterns and session "
          "takeover rely on"),
    STRG("user", user, F_REPLACE),
    BRIDGE("username"),
    INTG("websockets_headers_size", K_U32, websockets_headers_size, 0, 65536),
    WARN("websockets_log_level", 0,
         "it sets libwebsockets' log level; mqttd's WebSocket lines are "
         "enabled with 'log_type websockets'"),
    FN("websockets_origin", h_ws_origin, SC_LISTENER),
    FN("websockets_path", h_ws_path, SC_LISTENER),
};

static int key_cmp(const void *name, const void *entry)
{
    return strcmp(name, ((const struct key *)entry)->name);
}

static const struct key *find_key(const char *name)
{
    return bsearch(name, keys, ARRAY_LEN(keys), sizeof(keys[0]), key_cmp);
}

/* suggest: the closest key to 'name' within edit distance 2, or NULL. */
static const char *suggest(const char *name)
{
    const char *best = NULL;
    unsigned bestd = 3;
    size_t nl = strlen(name);

    if (nl > 64)
        return NULL;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        size_t kl = strlen(keys[i].name);
        unsigned d;

        /* the length difference bounds the distance from below */
        if (nl > kl + 2 || kl > nl + 2)
            continue;
        d = util_levenshtein(name, keys[i].name);
        if (d < bestd) {
            bestd = d;
            best = keys[i].name;
        }
    }
    return best;
}

/* ---- lines and files ---------------------------------------------------- */

/* warn_key: a K_WARN key: check that it has a value (a boolean with
 * F_BOOLV), then warn that it has no effect. */
static void warn_key(struct parser *ps, const struct key *k, char *val)
{
    bool b;

    if (k->flags & F_BOOLV) {
        if (parse_bool(ps, k->name, val, &b) < 0)
            return;
    } else if (*val == '\0' || *val == '#') {
        LERR(ps, "missing value for '%s'", k->name);
        return;
    }
    LWARN(ps, "'%s' has no effect in mqttd: %s", k->name, k->why);
}

static void do_line(struct parser *ps, char *s)
{
    char *rest = s + strcspn(s, " \t"), sb[80];
    const struct key *k;
    const char *hint;

    if (*rest != '\0') {
        *rest++ = '\0';
        rest += strspn(rest, " \t");
    }
    if (conf_bridge_line(&ps->bridges, ps->file, ps->line, s, rest))
        return;
    k = find_key(s);
    if (k == NULL) {
        if (strncmp(s, "auth_opt_", 9) == 0 ||
            strncmp(s, "plugin_opt_", 11) == 0) {
            LERR(ps, "'%s' is not supported by mqttd: %s",
                 shown(sb, sizeof(sb), s, false), WHY_PLUGIN);
            return;
        }
        hint = suggest(s);
        if (hint != NULL)
            LERR(ps, "unknown configuration key '%s' (did you mean '%s'?)",
                 shown(sb, sizeof(sb), s, false), hint);
        else
            LERR(ps, "unknown configuration key '%s'",
                 shown(sb, sizeof(sb), s, false));
        return;
    }
    switch (k->type) {
    case K_UNSUP:
        LERR(ps, "'%s' is not supported by mqttd: %s", k->name, k->why);
        break;
    case K_WARN:
        warn_key(ps, k, rest);
        break;
    case K_FN:
        k->fn(ps, k, rest);
        break;
    default:
        store_typed(ps, k, rest);
        break;
    }
}

/* parse_buf: every line of buf[0..len) as the file 'name' (interned). */
static void parse_buf(struct parser *ps, const char *name, const char *buf,
                      size_t len)
{
    size_t pos = 0;
    char *line = NULL;
    size_t cap = 0;

    ps->file = name;
    ps->line = 0;
    /* a UTF-8 byte order mark some editors write */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    while (pos < len && !ps->gave_up) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        char *s, *e;

        ps->line++;
        if (n > CONF_MAX_LINE) {
            LERR(ps, "line is longer than %d bytes", CONF_MAX_LINE);
            pos += n + 1;
            continue;
        }
        if (memchr(buf + pos, '\0', n) != NULL) {
            LERR(ps, "line contains a NUL byte");
            pos += n + 1;
            continue;
        }
        if (n + 1 > cap) {
            cap = n + 1;
            line = xrealloc(line, cap);
        }
        memcpy(line, buf + pos, n);
        line[n] = '\0';
        pos += n + 1;
        s = line + strspn(line, " \t\r");
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
                         e[-1] == '\f' || e[-1] == '\v'))
            *--e = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        do_line(ps, s);
    }
    free(line);
}

/*
 * read_file: the whole file at 'path' (at most CONF_MAX_FILE_BYTES) in a new
 * buffer. Returns NULL with errno set (EISDIR, EFBIG, ...).
 */
static char *read_file(const char *path, size_t *len, struct stat *stp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), saved;
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (fd < 0)
        return NULL;
    if (fstat(fd, stp) != 0)
        goto fail;
    if (S_ISDIR(stp->st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    for (;;) {
        ssize_t r;
        if (n == cap) {
            if (cap >= CONF_MAX_FILE_BYTES) {
                errno = EFBIG;
                goto fail;
            }
            cap = cap ? cap * 2 : 8192;
            if (cap > CONF_MAX_FILE_BYTES)
                cap = CONF_MAX_FILE_BYTES;
            buf = xrealloc(buf, cap);
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf ? buf : xstrdup("");
fail:
    saved = errno;
    close(fd);
    free(buf);
    errno = saved;
    return NULL;
}

static void parse_file(struct parser *ps, const char *path, bool is_main)
{
    const char *src = intern_src(ps->p, path);
    struct stat st;
    size_t len = 0;
    char *buf = read_file(path, &len, &st);

    if (buf == NULL) {
        perr(ps, src, 0, "cannot read configuration file: %s",
             errno == EFBIG ? "file too large" : strerror(errno));
        return;
    }
    if (is_main) {
        ps->have_main_id = true;
        ps->main_dev = st.st_dev;
        ps->main_ino = st.st_ino;
    }
    parse_buf(ps, src, buf, len);
    free(buf);
}

/* ---- whole-configuration checks ----------------------------------------- */

static void check_readable(struct parser *ps, const char *what,
                           const char *path, const char *src, int line,
                           bool dir)
{
    struct stat st;
    int fd;

    fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (dir ? O_DIRECTORY : 0));
    if (fd < 0) {
        perr(ps, src, line, "cannot read %s '%s': %s", what, path,
             strerror(errno));
        return;
    }
    if (!dir && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        perr(ps, src, line, "cannot read %s '%s': %s", what, path,
             strerror(EISDIR));
    close(fd);
}

static const char *listener_name(const struct conf_listener *l, char *buf,
                                 size_t size)
{
    if (l->port == 0 && l->unix_path)
        snprintf(buf, size, "listener 0 %s", l->unix_path);
    else if (l->address)
        snprintf(buf, size, "listener %u %s", l->port, l->address);
    else
        snprintf(buf, size, "listener %u", l->port);
    return buf;
}

static void check_sec_files(struct parser *ps, const struct conf_security *s,
                            const struct conf_security *skip)
{
    if (s->password_file &&
        !(skip && skip->password_file_src == s->password_file_src &&
          skip->password_file_line == s->password_file_line))
        check_readable(ps, "password_file", s->password_file,
                       s->password_file_src, s->password_file_line, false);
    if (s->acl_file && !(skip && skip->acl_file_src == s->acl_file_src &&
                         skip->acl_file_line == s->acl_file_line))
        check_readable(ps, "acl_file", s->acl_file, s->acl_file_src,
                       s->acl_file_line, false);
}

/*
 * check_http: protocol http is default-deny: a listener other clients can
 * reach (not loopback, not a unix socket) needs http_allow_from or TLS with
 * required client certificates.
 */
static void check_http(struct parser *ps, const struct conf_listener *l,
                       const char *name)
{
    if (l->protocol != CONF_PROTO_HTTP) {
        if (l->nhttp_allow > 0)
            perr(ps, l->src, l->line,
                 "'http_allow_from' on %s, which is not 'protocol http'", name);
        return;
    }
    if (l->unix_path || cidr_is_loopback(l->address) || l->nhttp_allow > 0 ||
        (l->tls_enabled && l->tls.cert_mode == CONF_CERT_REQUIRED))
        return;
    perr(ps, l->src, l->line,
         "%s is 'protocol http' on %s: refusing to expose the operations "
         "endpoints without 'http_allow_from CIDR...' or TLS with "
         "'require_certificate true'",
         name, l->address ? "a non-loopback address" : "every address");
}

/*
 * check_engine: tls_engine / tls_keyform engine / a PKCS#11 keyfile. The
 * keyfile is shown with its PIN redacted (pkcs11_uri_redact) in every
 * message; the PIN file of pin-source must be readable. Returns true when
 * the keyfile is no file to check (an engine key id, or a URI reported
 * here).
 */
static bool check_engine(struct parser *ps, const struct conf_listener *l,
                         const struct lmeta *m)
{
    const char *kf = l->tls.keyfile;
    char shownkf[512], clean[PKCS11_URI_MAX + 1], pin[PKCS11_PIN_MAX + 1];
    char pinfile[PATH_MAX], why[160];

    if (m->kf_src && l->tls.engine == NULL)
        perr(ps, m->kf_src, m->kf_line,
             "'tls_keyform engine' needs 'tls_engine' (e.g. 'tls_engine "
             "pkcs11')");
    if (m->eng_src && !l->tls.keyform_engine)
        pwarn(ps, m->eng_src, m->eng_line,
              "'tls_engine' has no effect without 'tls_keyform engine': "
              "mqttd uses an engine only to load the keyfile");
    if (kf == NULL)
        return false;
    pkcs11_uri_redact(kf, shownkf, sizeof(shownkf));
    if (!pkcs11_uri_is(kf)) {
        if ((kf[0] != '"' && kf[0] != '\'') || strstr(kf, "pkcs11:") == NULL)
            return l->tls.keyform_engine; /* an engine's own key id */
        perr(ps, m->fsrc[FK_KEY], m->fline[FK_KEY],
             "keyfile %s: remove the quotes (mosquitto.conf values are not "
             "quoted)",
             shownkf);
        return true;
    }
    if (!l->tls.keyform_engine) {
        perr(ps, m->fsrc[FK_KEY], m->fline[FK_KEY],
             "keyfile '%s' is a PKCS#11 URI: it needs 'tls_engine pkcs11' "
             "and 'tls_keyform engine'",
             shownkf);
        return true;
    }
    if (pkcs11_uri_split(kf, clean, sizeof(clean), pin, sizeof(pin), pinfile,
                         sizeof(pinfile), why, sizeof(why)) != 0) {
        perr(ps, m->fsrc[FK_KEY], m->fline[FK_KEY], "keyfile '%s': %s", shownkf,
             why);
        return true;
    }
    OPENSSL_cleanse(pin, sizeof(pin));
    if (ps->check_files && pinfile[0] != '\0')
        check_readable(ps, "keyfile pin-source", pinfile, m->fsrc[FK_KEY],
                       m->fline[FK_KEY], false);
    return true;
}

static void check_listener(struct parser *ps, struct conf_listener *l,
                           struct lmeta *m)
{
    static const char *const fknames[FK_N] = {
        "certfile", "keyfile", "cafile", "capath", "crlfile", "dhparamfile"};
    const char *fkval[FK_N] = {l->tls.certfile, l->tls.keyfile,
                               l->tls.cafile,   l->tls.capath,
                               l->tls.crlfile,  l->tls.dhparamfile};
    char name[160];
    const char *msrc;
    int mline;
    bool pp_tls; /* PROXY v2 without certfile: TLS held by the proxy */
    bool key_not_file;

    if (m->bad)
        return;
    listener_name(l, name, sizeof(name));
    pp_tls = l->proxy_protocol == 2 && !l->tls.certfile && !l->tls.keyfile;
    if (m->pprt_src && l->proxy_protocol != 2)
        perr(ps, m->pprt_src, m->pprt_line,
             "proxy_protocol_v2_require_tls needs enable_proxy_protocol 2 "
             "on %s",
             name);
    /* client_cert_mode (mqttd) overrides require_certificate */
    if (!m->cert_mode_set)
        l->tls.cert_mode =
            l->tls.require_certificate ? CONF_CERT_REQUIRED : CONF_CERT_NONE;
    msrc = m->cert_mode_set ? m->ccm_src : m->rc_src;
    mline = m->cert_mode_set ? m->ccm_line : m->rc_line;
    l->tls_enabled = l->tls.certfile != NULL && l->tls.keyfile != NULL;

    if (l->tls.certfile && !l->tls.keyfile)
        perr(ps, m->fsrc[FK_CERT], m->fline[FK_CERT],
             "%s has a certfile but no keyfile: both are needed for TLS", name);
    if (l->tls.keyfile && !l->tls.certfile)
        perr(ps, m->fsrc[FK_KEY], m->fline[FK_KEY],
             "%s has a keyfile but no certfile: both are needed for TLS", name);
    if (!l->tls.certfile && !l->tls.keyfile) {
        for (int i = FK_CA; i < FK_N; i++)
            if (fkval[i])
                perr(ps, m->fsrc[i], m->fline[i],
                     "'%s' has no effect: %s has no certfile and keyfile",
                     fknames[i], name);
        if (l->tls.cert_mode != CONF_CERT_NONE && msrc && !pp_tls)
            perr(ps, msrc, mline,
                 "client certificates need TLS: %s has no certfile and "
                 "keyfile",
                 name);
    } else if (l->tls.cert_mode != CONF_CERT_NONE && !l->tls.cafile &&
               !l->tls.capath && msrc) {
        perr(ps, msrc, mline,
             "%s: %s needs cafile or capath to verify client certificates",
             name,
             m->cert_mode_set ? "client_cert_mode" : "require_certificate");
    }
    /* Mosquitto starts with these; so does mqttd, with a warning */
    if (m->uid_src && pp_tls && l->tls.use_subject_as_username)
        perr(ps, m->uid_src, m->uid_line,
             "'use_subject_as_username' on %s: a PROXY v2 header carries "
             "the certificate's CN only, not its subject; use "
             "use_identity_as_username",
             name);
    else if (m->uid_src && !l->tls.certfile && !l->tls.keyfile && !pp_tls)
        pwarn(ps, m->uid_src, m->uid_line,
              "'%s' has no effect on %s: it has no certfile and keyfile, "
              "so clients are authenticated as if it were not set",
              m->uid_key, name);
    else if (m->uid_src && l->tls.cert_mode == CONF_CERT_NONE)
        pwarn(ps, m->uid_src, m->uid_line,
              "'%s' on %s, which requests no client certificates: every "
              "client is refused (bad user name or password), as in "
              "Mosquitto; set require_certificate true or client_cert_mode "
              "optional or required",
              m->uid_key, name);
    check_http(ps, l, name);
    if (m->ids_src && !l->tls.use_identity_as_username)
        pwarn(ps, m->ids_src, m->ids_line,
              "'tls_identity_source' has no effect on %s without "
              "'use_identity_as_username true'",
              name);
    else if (m->ids_src && l->tls.use_subject_as_username)
        pwarn(ps, m->ids_src, m->ids_line,
              "'tls_identity_source' on %s, which also sets "
              "'use_subject_as_username true': the subject is the username",
              name);
    key_not_file = check_engine(ps, l, m);
    if (ps->check_files) {
        for (int i = 0; i < FK_N; i++)
            if (fkval[i] && !(i == FK_KEY && key_not_file))
                check_readable(ps, fknames[i], fkval[i], m->fsrc[i],
                               m->fline[i], i == FK_CAPATH);
    }
    check_listener_ocsp(ps, l, m, name);
}

static void inherit_sec(struct conf_security *d, const struct conf_security *g,
                        bool azlc_set)
{
    if (d->allow_anonymous < 0)
        d->allow_anonymous = g->allow_anonymous;
    if (!d->password_file && g->password_file) {
        d->password_file = xstrdup(g->password_file);
        d->password_file_src = g->password_file_src;
        d->password_file_line = g->password_file_line;
    }
    if (!d->acl_file && g->acl_file) {
        d->acl_file = xstrdup(g->acl_file);
        d->acl_file_src = g->acl_file_src;
        d->acl_file_line = g->acl_file_line;
    }
    if (!d->auto_id_prefix && g->auto_id_prefix)
        d->auto_id_prefix = xstrdup(g->auto_id_prefix);
    if (!azlc_set)
        d->allow_zero_length_clientid = g->allow_zero_length_clientid;
}

/* The two listeners of Mosquitto 2.0's local-only mode. */
static void add_implicit(struct parser *ps, uint16_t port, const char *src)
{
    static const char *const addrs[] = {"127.0.0.1", "::1"};
    struct conf_listener l;
    struct lmeta m;

    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < ARRAY_LEN(addrs); i++) {
        init_listener(ps->c, &l);
        l.port = port;
        l.address = xstrdup(addrs[i]);
        l.src = src;
        l.line = 0;
        add_listener(ps, &l, &m);
    }
    ps->c->implicit_listener = true;
}

/* the cluster_nats_* keys together (finalize): FILE:LINE errors */
static void cluster_opts_check(struct parser *ps)
{
    struct conf *c = ps->c;

    for (int i = 0; i < CLK_N; i++) /* the files: readable now */
        if (ps->clk_src[i] && i != CLK_USER && i != CLK_PW)
            check_readable(ps, clk_names[i], *clk_field(c, i), ps->clk_src[i],
                           ps->clk_line[i], false);
    for (int i = 0; i < CLK_N; i++)
        if (ps->clk_src[i] && !c->cluster_nats) {
            perr(ps, ps->clk_src[i], ps->clk_line[i], "%s needs cluster_nats",
                 clk_names[i]);
            return;
        }
    if (ps->clk_src[CLK_CERT] && !ps->clk_src[CLK_KEY])
        perr(ps, ps->clk_src[CLK_CERT], ps->clk_line[CLK_CERT],
             "cluster_nats_certfile needs cluster_nats_keyfile");
    if (ps->clk_src[CLK_KEY] && !ps->clk_src[CLK_CERT])
        perr(ps, ps->clk_src[CLK_KEY], ps->clk_line[CLK_KEY],
             "cluster_nats_keyfile needs cluster_nats_certfile");
    if (ps->clk_src[CLK_PW] && !ps->clk_src[CLK_USER])
        perr(ps, ps->clk_src[CLK_PW], ps->clk_line[CLK_PW],
             "cluster_nats_password needs cluster_nats_user");
    if (ps->clk_src[CLK_USER] && !ps->clk_src[CLK_PW])
        perr(ps, ps->clk_src[CLK_USER], ps->clk_line[CLK_USER],
             "cluster_nats_user needs cluster_nats_password");
    if (ps->clk_src[CLK_CREDS] && ps->clk_src[CLK_USER])
        perr(ps, ps->clk_src[CLK_CREDS], ps->clk_line[CLK_CREDS],
             "cluster_nats_credentials and cluster_nats_user exclude each "
             "other: give one way to authenticate");
}

static void finalize(struct parser *ps)
{
    struct conf *c = ps->c;
    size_t nexplicit = c->nlisteners;

    if (ps->deflt_used) {
        struct conf_listener *d = &ps->deflt;
        if (d->port == 0)
            d->port = CONF_DEFAULT_PORT;
        d->max_connections = c->max_connections;
        d->max_connection_rate = c->max_connection_rate;
        d->max_qos = c->max_qos;
        d->max_topic_alias = c->max_topic_alias;
        d->src = ps->deflt_src;
        d->line = ps->deflt_line;
        for (size_t i = 0; i < nexplicit; i++) {
            if (!ps->lm[i].bad && same_listener(&c->listeners[i], d)) {
                perr(ps, d->src, d->line,
                     "the default listener (port %u) has the same port and "
                     "address as the listener at %s:%d",
                     d->port, c->listeners[i].src, c->listeners[i].line);
                break;
            }
        }
        add_listener(ps, d, &ps->dmeta);
        memset(d, 0, sizeof(*d));
        ps->deflt_used = false;
    }
    if (c->nlisteners == 0)
        add_implicit(ps, CONF_DEFAULT_PORT, c->path ? c->path : "(default)");
    if (c->threads != 1 && c->persistence && ps->threads_src)
        perr(ps, ps->threads_src, ps->threads_line,
             "threads other than 1 cannot be combined with persistence in "
             "this release: each thread owns its sessions and the snapshot "
             "is single-threaded");
    if (c->threads != 1 && c->cluster_nats)
        perr(ps, ps->cl_src, ps->cl_line,
             "cluster_nats needs threads 1 in this release: the NATS "
             "connection runs on the one event loop");
    cluster_opts_check(ps);

    if (c->per_listener_settings) {
        for (size_t i = 0; i < c->nlisteners; i++)
            inherit_sec(&c->listeners[i].sec, &c->sec, ps->lm[i].azlc_set);
    }
    if (!c->sec.auto_id_prefix)
        c->sec.auto_id_prefix = xstrdup("auto-");
    for (size_t i = 0; i < c->nlisteners; i++)
        if (!c->listeners[i].sec.auto_id_prefix)
            c->listeners[i].sec.auto_id_prefix = xstrdup("auto-");
    if (!c->user)
        c->user = xstrdup("mqttd");
    if (!c->persistence_file)
        c->persistence_file = xstrdup("mqttd.db");
    if (!c->persistence_location)
        c->persistence_location = xstrdup("");

    for (size_t i = 0; i < c->nlisteners; i++)
        check_listener(ps, &c->listeners[i], &ps->lm[i]);
    conf_bridge_finalize(&ps->bridges);
    if (ps->check_files) {
        check_sec_files(ps, &c->sec, NULL);
        if (c->per_listener_settings)
            for (size_t i = 0; i < c->nlisteners; i++)
                check_sec_files(ps, &c->listeners[i].sec, &c->sec);
    }
}

/* ---- snapshot lifetime -------------------------------------------------- */

static struct conf_priv *conf_new(void)
{
    struct conf_priv *p = xcalloc(1, sizeof(*p));
    struct conf *c = &p->c;

    c->sec.allow_anonymous = -1;
    c->sec.allow_zero_length_clientid = true;
    c->max_connections = -1;
    c->max_keepalive = 0; /* off: see conf.h */
    c->max_packet_size = 0;
    c->message_size_limit = 0;
    c->max_inflight_messages = 20;
    c->max_inflight_bytes = 0;
    c->max_queued_messages = 1000;
    c->max_queued_bytes = 0;
    c->queue_qos0_messages = false;
    c->retain_available = true;
    c->set_tcp_nodelay = true;
    c->max_qos = 2;
    c->max_topic_alias = 10;
    c->max_subscriptions_per_client = 10000;
    c->max_retained_messages = 100000;
    c->max_retained_bytes = 256u << 20;
    c->memory_limit = 0;
    c->connect_timeout = 10;
    c->cluster_msgs_max_age = 86400;
    c->cluster_msgs_max_bytes = 1024u << 20;
    c->cluster_node_timeout = 3;
    c->persistent_client_expiration = 0;
    c->log_types = LOG_DEFAULT_TYPES;
    c->log_dests = LOGD_STDERR;
    c->log_timestamp = true;
    c->connection_messages = true;
    c->sys_interval = 10;
    c->threads = 1;
    c->persistence = false;
    c->autosave_interval = 1800;
    c->persistence_sync = 0;
    c->tls_reload_interval = 0;
    c->tls_expiry_warning_days = 30;
    c->tls_handshake_timeout = 10;
    c->tls_session_ticket_lifetime = 7200;
    c->max_receive_maximum = 65535;
    return p;
}

static void free_sec(struct conf_security *s)
{
    free(s->password_file);
    free(s->acl_file);
    free(s->auto_id_prefix);
}

static void free_listener(struct conf_listener *l)
{
    free(l->address);
    free(l->unix_path);
    free(l->tls.certfile);
    free(l->tls.keyfile);
    free(l->tls.cafile);
    free(l->tls.capath);
    free(l->tls.crlfile);
    free(l->tls.dhparamfile);
    free(l->tls.ciphers);
    free(l->tls.ciphers_tls13);
    free(l->tls.tls_groups);
    free(l->http_allow);
    free(l->tls.engine);
    free(l->tls.ocsp_responder);
    free(l->tls.ocsp_stapling_file);
    free_sec(&l->sec);
    free(l->ws_path);
    for (size_t i = 0; i < l->nws_origins; i++)
        free(l->ws_origins[i]);
    free(l->ws_origins);
}

void conf_free(struct conf *c)
{
    struct conf_priv *p;

    if (c == NULL)
        return;
    p = (struct conf_priv *)(void *)((char *)c - offsetof(struct conf_priv, c));
    for (size_t i = 0; i < c->nlisteners; i++)
        free_listener(&c->listeners[i]);
    free(c->listeners);
    free_sec(&c->sec);
    free(c->path);
    free(c->log_file);
    free(c->log_timestamp_format);
    free(c->pid_file);
    free(c->cluster_nats);
    free(c->cluster_node_name);
    free(c->cluster_nats_cafile);
    free(c->cluster_nats_certfile);
    free(c->cluster_nats_keyfile);
    free(c->cluster_nats_user);
    free(c->cluster_nats_password);
    free(c->cluster_nats_credentials);
    free(c->user);
    free(c->persistence_location);
    free(c->persistence_file);
    conf_bridges_free(c);
    free(c->tls_session_ticket_key_file);
    for (size_t i = 0; i < p->nsrcs; i++)
        free(p->srcs[i]);
    free(p->srcs);
    free(p);
}

/* bridge_report: conf_bridge.c's errors and warnings into perr/pwarn. */
static void bridge_report(void *arg, const char *file, int line, bool warning,
                          const char *msg)
{
    struct parser *ps = arg;

    if (warning)
        pwarn(ps, file, line, "%s", msg);
    else
        perr(ps, file, line, "%s", msg);
}

static void parser_init(struct parser *ps, struct conf_priv *p,
                        bool check_files, conf_err_fn errfn, void *arg)
{
    memset(ps, 0, sizeof(*ps));
    ps->p = p;
    ps->c = &p->c;
    ps->errfn = errfn ? errfn : conf_err_stderr;
    ps->arg = arg;
    ps->check_files = check_files;
    init_listener(ps->c, &ps->deflt);
    ps->bridges.c = ps->c;
    ps->bridges.report = bridge_report;
    ps->bridges.arg = ps;
    ps->bridges.check_files = check_files;
}

/* parser_done: finish, and return the snapshot or NULL on any error. */
static struct conf *parser_done(struct parser *ps)
{
    if (!ps->gave_up)
        finalize(ps);
    else if (ps->deflt_used)
        free_listener(&ps->deflt);
    conf_bridge_parser_free(&ps->bridges);
    free(ps->lm);
    if (ps->nerr > 0 || ps->gave_up) {
        conf_free(ps->c);
        return NULL;
    }
    return ps->c;
}

#ifndef NDEBUG
static void assert_sorted(void)
{
    for (size_t i = 1; i < ARRAY_LEN(keys); i++)
        if (strcmp(keys[i - 1].name, keys[i].name) >= 0) {
            fprintf(stderr, "conf.c: keys[] not sorted at '%s'\n",
                    keys[i].name);
            abort();
        }
}
#else
#define assert_sorted() ((void)0)
#endif

struct conf *conf_load(const char *path, conf_err_fn errfn, void *arg)
{
    struct parser ps;
    struct conf_priv *p = conf_new();

    assert_sorted();
    parser_init(&ps, p, true, errfn, arg);
    p->c.path = xstrdup(path);
    parse_file(&ps, path, true);
    return parser_done(&ps);
}

struct conf *conf_load_buf(const char *name, const char *buf, size_t len,
                           bool check_files, conf_err_fn errfn, void *arg)
{
    struct parser ps;
    struct conf_priv *p = conf_new();
    const char *src;

    assert_sorted();
    parser_init(&ps, p, check_files, errfn, arg);
    if (name == NULL)
        name = "(buffer)";
    p->c.path = xstrdup(name);
    src = intern_src(p, name);
    parse_buf(&ps, src, buf ? buf : "", buf ? len : 0);
    return parser_done(&ps);
}

struct conf *conf_default(uint16_t port)
{
    struct parser ps;
    struct conf_priv *p = conf_new();
    struct conf *c;

    parser_init(&ps, p, false, conf_err_stderr, NULL);
    add_implicit(&ps, port ? port : CONF_DEFAULT_PORT,
                 intern_src(p, "(default)"));
    c = parser_done(&ps);
    return c; /* never NULL: the defaults have no errors */
}

bool conf_effective_anonymous(const struct conf *c,
                              const struct conf_security *sec)
{
    if (sec->allow_anonymous >= 0)
        return sec->allow_anonymous != 0;
    return c->implicit_listener;
}

const struct conf_security *conf_listener_sec(const struct conf *c, size_t i)
{
    if (c->per_listener_settings && i < c->nlisteners)
        return &c->listeners[i].sec;
    return &c->sec;
}

void conf_err_stderr(void *arg, const char *file, int line, const char *msg)
{
    (void)arg;
    if (line > 0)
        fprintf(stderr, "%s:%d: %s\n", file ? file : "(config)", line, msg);
    else
        fprintf(stderr, "%s: %s\n", file ? file : "(config)", msg);
}
