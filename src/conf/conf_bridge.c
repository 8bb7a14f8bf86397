/*
 * conf_bridge.c - Mosquitto's bridge sections: "connection NAME" starts a
 * bridge and the bridge keys after it (address, topic, cleansession,
 * bridge_cafile, ...) configure it, until the next "connection". Other
 * keys keep their global or listener meaning wherever they are, as in
 * Mosquitto. A bridge key before any "connection" line is an error, and
 * so is each Mosquitto bridge key mqttd does not implement (naming it).
 *
 * conf.c calls conf_bridge_line() for every line before its own key
 * table, and conf_bridge_finalize() at the end; the results are
 * c->bridges[0..c->nbridges) (conf.h).
 */
#include "conf_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/tls1.h>

#include "bridge_topic.h"
#include "util.h"

#define CONF_MAX_BRIDGES 256
#define CONF_MAX_BRIDGE_TOPICS 1024
#define CONF_MAX_BRIDGE_ADDRS 64

enum { BF_CA, BF_CAPATH, BF_CERT, BF_KEY, BF_N };

/* Parse-time facts about one bridge. */
struct conf_bridge_meta {
    const char *fsrc[BF_N];
    int fline[BF_N];
    bool local_clean_set;
};

enum bkey {
    B_ADDRESS,
    B_ATTEMPT_UNSUB,
    B_ALPN,
    B_CAFILE,
    B_CAPATH,
    B_CERTFILE,
    B_INSECURE,
    B_KEYFILE,
    B_MAX_PACKET,
    B_OUT_RETAIN,
    B_PROTO,
    B_TLS_VERSION,
    B_CLEANSESSION,
    B_CONNECTION,
    B_IDLE,
    B_KEEPALIVE,
    B_LOCAL_CLEAN,
    B_LOCAL_ID,
    B_LOCAL_PW,
    B_LOCAL_USER,
    B_NOTIF_TOPIC,
    B_NOTIF,
    B_NOTIF_LOCAL,
    B_REMOTE_ID,
    B_REMOTE_PW,
    B_REMOTE_USER,
    B_RESTART,
    B_ROUND_ROBIN,
    B_START,
    B_THRESHOLD,
    B_TOPIC,
    B_TRY_PRIVATE,
    B_UNSUP,
};

struct bkey_def {
    const char *name;
    enum bkey k;
    const char *why; /* B_UNSUP */
};

static const struct bkey_def bkeys[] = {
    {"address", B_ADDRESS, NULL},
    {"addresses", B_ADDRESS, NULL},
    {"bridge_alpn", B_ALPN, NULL},
    {"bridge_attempt_unsubscribe", B_ATTEMPT_UNSUB, NULL},
    {"bridge_bind_address", B_UNSUP,
     "the bridge connects from the address the routing table picks"},
    {"bridge_cafile", B_CAFILE, NULL},
    {"bridge_capath", B_CAPATH, NULL},
    {"bridge_certfile", B_CERTFILE, NULL},
    {"bridge_identity", B_UNSUP, "TLS-PSK bridges are not supported"},
    {"bridge_insecure", B_INSECURE, NULL},
    {"bridge_keyfile", B_KEYFILE, NULL},
    {"bridge_max_packet_size", B_MAX_PACKET, NULL},
    {"bridge_outgoing_retain", B_OUT_RETAIN, NULL},
    {"bridge_protocol_version", B_PROTO, NULL},
    {"bridge_psk", B_UNSUP, "TLS-PSK bridges are not supported"},
    {"bridge_require_ocsp", B_UNSUP,
     "OCSP checks of the remote broker are not supported; ignoring the key "
     "would connect without them"},
    {"bridge_tls_version", B_TLS_VERSION, NULL},
    {"cleansession", B_CLEANSESSION, NULL},
    {"clientid", B_REMOTE_ID, NULL},
    {"connection", B_CONNECTION, NULL},
    {"idle_timeout", B_IDLE, NULL},
    {"keepalive_interval", B_KEEPALIVE, NULL},
    {"local_cleansession", B_LOCAL_CLEAN, NULL},
    {"local_clientid", B_LOCAL_ID, NULL},
    {"local_password", B_LOCAL_PW, NULL},
    {"local_username", B_LOCAL_USER, NULL},
    {"notification_topic", B_NOTIF_TOPIC, NULL},
    {"notifications", B_NOTIF, NULL},
    {"notifications_local_only", B_NOTIF_LOCAL, NULL},
    {"password", B_REMOTE_PW, NULL},
    {"remote_clientid", B_REMOTE_ID, NULL},
    {"remote_password", B_REMOTE_PW, NULL},
    {"remote_username", B_REMOTE_USER, NULL},
    {"restart_timeout", B_RESTART, NULL},
    {"round_robin", B_ROUND_ROBIN, NULL},
    {"start_type", B_START, NULL},
    {"threshold", B_THRESHOLD, NULL},
    {"topic", B_TOPIC, NULL},
    {"try_private", B_TRY_PRIVATE, NULL},
    {"username", B_REMOTE_USER, NULL},
};

static void berr(struct conf_bridge_parser *bp, const char *file, int line,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void berr(struct conf_bridge_parser *bp, const char *file, int line,
                 const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bp->report(bp->arg, file, line, false, msg);
}

/* next_tok: the next space-separated word of *s (NUL-terminated in place),
 * or NULL at the end or at a '#' comment. The place marker "" is returned
 * as an empty string. */
static char *next_tok_c(char **s, bool comments)
{
    char *p = *s, *e;

    p += strspn(p, " \t");
    if (*p == '\0' || (comments && *p == '#')) {
        *s = p;
        return NULL;
    }
    e = p + strcspn(p, " \t");
    if (*e != '\0')
        *e++ = '\0';
    *s = e;
    if (strcmp(p, "\"\"") == 0)
        *p = '\0';
    return p;
}

static char *next_tok(char **s)
{
    return next_tok_c(s, true);
}

/* topic_tok: a word of a topic line, where '#' is a pattern, not a
 * comment (as in Mosquitto, which has no trailing comments). */
static char *topic_tok(char **s)
{
    return next_tok_c(s, false);
}

/* one_word: the single value of a key; NULL after reporting. */
static char *one_word(struct conf_bridge_parser *bp, const char *file, int line,
                      const char *key, char *val)
{
    char *rest = val, *tok = next_tok(&rest);

    if (tok == NULL || *tok == '\0') {
        berr(bp, file, line, "missing value for '%s'", key);
        return NULL;
    }
    if (next_tok(&rest) != NULL) {
        berr(bp, file, line, "unexpected text after the value of '%s'", key);
        return NULL;
    }
    return tok;
}

static int get_bool(struct conf_bridge_parser *bp, const char *file, int line,
                    const char *key, char *val, bool *out)
{
    char *tok = one_word(bp, file, line, key, val);

    if (tok == NULL)
        return -1;
    if (strcmp(tok, "true") == 0 || strcmp(tok, "1") == 0)
        *out = true;
    else if (strcmp(tok, "false") == 0 || strcmp(tok, "0") == 0)
        *out = false;
    else {
        berr(bp, file, line, "invalid value for '%s': expected true or false",
             key);
        return -1;
    }
    return 0;
}

static int get_num(struct conf_bridge_parser *bp, const char *file, int line,
                   const char *key, const char *tok, long long min,
                   long long max, long long *out)
{
    const char *es;

    if (util_strtonum(tok, min, max, out, &es) == 0)
        return 0;
    berr(bp, file, line,
         "invalid value '%.64s' for '%s': expected an integer from %lld to "
         "%lld",
         tok, key, min, max);
    return -1;
}

static int get_u32(struct conf_bridge_parser *bp, const char *file, int line,
                   const char *key, char *val, long long min, long long max,
                   uint32_t *out)
{
    char *tok = one_word(bp, file, line, key, val);
    long long v;

    if (tok == NULL || get_num(bp, file, line, key, tok, min, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* set_s: a string value (one word; secrets never appear in messages). */
static void set_s(struct conf_bridge_parser *bp, const char *file, int line,
                  const char *key, char *val, char **dst)
{
    char *tok = one_word(bp, file, line, key, val);

    if (tok == NULL)
        return;
    if (!util_utf8_valid(tok, strlen(tok))) {
        berr(bp, file, line, "the value of '%s' is not valid UTF-8", key);
        return;
    }
    if (strlen(tok) > 65535) {
        berr(bp, file, line, "the value of '%s' is too long", key);
        return;
    }
    free(*dst);
    *dst = xstrdup(tok);
}

static bool filter_ok(const char *f)
{
    size_t n = strlen(f);

    for (size_t i = 0; i < n; i++) {
        if (f[i] == '+' &&
            ((i > 0 && f[i - 1] != '/') || (i + 1 < n && f[i + 1] != '/')))
            return false;
        if (f[i] == '#' && (i + 1 != n || (i > 0 && f[i - 1] != '/')))
            return false;
    }
    return util_utf8_valid(f, n);
}

static void h_address(struct conf_bridge_parser *bp, const char *file, int line,
                      const char *key, struct conf_bridge *br, char *val)
{
    char *rest = val, *tok;
    size_t n = 0;

    for (size_t i = 0; i < br->naddrs; i++)
        free(br->addrs[i].host);
    free(br->addrs);
    br->addrs = NULL;
    br->naddrs = 0;
    while ((tok = next_tok(&rest)) != NULL) {
        char *colon = strrchr(tok, ':');
        long long port = 1883;
        struct conf_bridge_addr *a;

        if (n >= CONF_MAX_BRIDGE_ADDRS) {
            berr(bp, file, line, "too many addresses (at most %d)",
                 CONF_MAX_BRIDGE_ADDRS);
            return;
        }
        if (colon != NULL) {
            *colon = '\0';
            if (get_num(bp, file, line, key, colon + 1, 1, 65535, &port) < 0)
                return;
        }
        if (*tok == '\0' || strlen(tok) > 253) {
            berr(bp, file, line, "invalid bridge address in '%s'", key);
            return;
        }
        br->addrs = xreallocarray(br->addrs, n + 1, sizeof(*br->addrs));
        a = &br->addrs[n++];
        a->host = xstrdup(tok);
        a->port = (uint16_t)port;
        br->naddrs = n;
    }
    if (n == 0)
        berr(bp, file, line, "missing value for '%s'", key);
}

static void h_topic(struct conf_bridge_parser *bp, const char *file, int line,
                    struct conf_bridge *br, char *val)
{
    char *rest = val, *pat, *dir, *qos, *lp, *rp;
    struct conf_bridge_topic t;
    const char *why;
    long long q = 0;

    memset(&t, 0, sizeof(t));
    t.dir = CONF_BRIDGE_OUT;
    pat = topic_tok(&rest);
    if (pat == NULL) {
        berr(bp, file, line, "missing value for 'topic'");
        return;
    }
    dir = topic_tok(&rest);
    qos = dir ? topic_tok(&rest) : NULL;
    lp = qos ? topic_tok(&rest) : NULL;
    rp = lp ? topic_tok(&rest) : NULL;
    if (rp != NULL && topic_tok(&rest) != NULL) {
        berr(bp, file, line,
             "unexpected text after the remote prefix of "
             "'topic'");
        return;
    }
    if (dir != NULL) {
        if (strcmp(dir, "out") == 0)
            t.dir = CONF_BRIDGE_OUT;
        else if (strcmp(dir, "in") == 0)
            t.dir = CONF_BRIDGE_IN;
        else if (strcmp(dir, "both") == 0)
            t.dir = CONF_BRIDGE_BOTH;
        else {
            berr(bp, file, line,
                 "invalid topic direction '%.64s': expected in, out or both",
                 dir);
            return;
        }
    }
    if (qos != NULL && get_num(bp, file, line, "topic QoS", qos, 0, 2, &q) < 0)
        return;
    if (lp != NULL && rp == NULL) {
        berr(bp, file, line,
             "a topic with a local prefix needs a remote prefix too (\"\" "
             "for none)");
        return;
    }
    if (!filter_ok(pat)) {
        berr(bp, file, line, "invalid topic pattern '%.64s'", pat);
        return;
    }
    why = bridge_topic_check(pat, lp ? lp : "", rp ? rp : "");
    if (why != NULL) {
        berr(bp, file, line, "invalid bridge topic: %s", why);
        return;
    }
    if (br->ntopics >= CONF_MAX_BRIDGE_TOPICS) {
        berr(bp, file, line, "too many topics (at most %d)",
             CONF_MAX_BRIDGE_TOPICS);
        return;
    }
    t.qos = (uint8_t)q;
    t.pattern = xstrdup(pat);
    t.local_prefix = xstrdup(lp ? lp : "");
    t.remote_prefix = xstrdup(rp ? rp : "");
    br->topics = xreallocarray(br->topics, br->ntopics + 1, sizeof(t));
    br->topics[br->ntopics++] = t;
}

static void new_bridge(struct conf_bridge_parser *bp, const char *file,
                       int line, char *val)
{
    struct conf *c = bp->c;
    struct conf_bridge *br;
    char *name = one_word(bp, file, line, "connection", val);

    if (name == NULL)
        return;
    for (size_t i = 0; i < c->nbridges; i++)
        if (strcmp(c->bridges[i].name, name) == 0) {
            berr(bp, file, line,
                 "duplicate bridge name '%.64s': already used at %s:%d", name,
                 c->bridges[i].src, c->bridges[i].line);
            return;
        }
    if (c->nbridges >= CONF_MAX_BRIDGES) {
        berr(bp, file, line, "too many bridges (at most %d)", CONF_MAX_BRIDGES);
        return;
    }
    c->bridges = xreallocarray(c->bridges, c->nbridges + 1, sizeof(*br));
    bp->meta = xreallocarray(bp->meta, c->nbridges + 1, sizeof(*bp->meta));
    memset(&bp->meta[c->nbridges], 0, sizeof(*bp->meta));
    br = &c->bridges[c->nbridges++];
    memset(br, 0, sizeof(*br));
    br->name = xstrdup(name);
    br->protocol_version = 4;
    br->tls_min_version = TLS1_2_VERSION;
    br->notifications = true;
    br->try_private = true;
    br->attempt_unsubscribe = true;
    br->restart_base = 5;
    br->restart_cap = 30;
    br->keepalive = 60;
    br->idle_timeout = 60;
    br->threshold = 10;
    br->outgoing_retain = true;
    br->src = file;
    br->line = line;
}

static void set_file(struct conf_bridge_parser *bp, const char *file, int line,
                     const char *key, char *val, char **dst, int fk)
{
    struct conf_bridge_meta *m = &bp->meta[bp->c->nbridges - 1];

    set_s(bp, file, line, key, val, dst);
    m->fsrc[fk] = file;
    m->fline[fk] = line;
}

bool conf_bridge_line(struct conf_bridge_parser *bp, const char *file, int line,
                      const char *key, char *val)
{
    const struct bkey_def *d = NULL;
    struct conf_bridge *br;
    char *tok;
    uint32_t u;

    for (size_t i = 0; i < ARRAY_LEN(bkeys); i++)
        if (strcmp(bkeys[i].name, key) == 0) {
            d = &bkeys[i];
            break;
        }
    if (d == NULL)
        return false;
    if (d->k == B_UNSUP) {
        berr(bp, file, line, "'%s' is not supported by mqttd: %s", key, d->why);
        return true;
    }
    if (d->k == B_CONNECTION) {
        new_bridge(bp, file, line, val);
        return true;
    }
    if (bp->c->nbridges == 0) {
        berr(bp, file, line,
             "'%s' is a bridge key: it must follow a 'connection NAME' line",
             key);
        return true;
    }
    br = &bp->c->bridges[bp->c->nbridges - 1];
    switch (d->k) {
    case B_ADDRESS:
        h_address(bp, file, line, key, br, val);
        break;
    case B_ATTEMPT_UNSUB:
        (void)get_bool(bp, file, line, key, val, &br->attempt_unsubscribe);
        break;
    case B_ALPN:
        set_s(bp, file, line, key, val, &br->alpn);
        break;
    case B_CAFILE:
        set_file(bp, file, line, key, val, &br->cafile, BF_CA);
        break;
    case B_CAPATH:
        set_file(bp, file, line, key, val, &br->capath, BF_CAPATH);
        break;
    case B_CERTFILE:
        set_file(bp, file, line, key, val, &br->certfile, BF_CERT);
        break;
    case B_KEYFILE:
        set_file(bp, file, line, key, val, &br->keyfile, BF_KEY);
        break;
    case B_INSECURE:
        if (get_bool(bp, file, line, key, val, &br->insecure) == 0 &&
            br->insecure)
            bp->report(bp->arg, file, line, true,
                       "bridge_insecure true: the remote broker's host name "
                       "is not checked against its certificate");
        break;
    case B_MAX_PACKET:
        (void)get_u32(bp, file, line, key, val, 0, 268435460LL,
                      &br->max_packet_size);
        break;
    case B_OUT_RETAIN:
        (void)get_bool(bp, file, line, key, val, &br->outgoing_retain);
        break;
    case B_PROTO:
        tok = one_word(bp, file, line, key, val);
        if (tok == NULL)
            break;
        if (strcmp(tok, "mqttv31") == 0)
            br->protocol_version = 3;
        else if (strcmp(tok, "mqttv311") == 0)
            br->protocol_version = 4;
        else if (strcmp(tok, "mqttv50") == 0)
            br->protocol_version = 5;
        else
            berr(bp, file, line,
                 "invalid bridge_protocol_version '%.64s': expected mqttv31, "
                 "mqttv311 or mqttv50",
                 tok);
        break;
    case B_TLS_VERSION:
        tok = one_word(bp, file, line, key, val);
        if (tok == NULL)
            break;
        if (strcmp(tok, "tlsv1.2") == 0)
            br->tls_min_version = TLS1_2_VERSION;
        else if (strcmp(tok, "tlsv1.3") == 0)
            br->tls_min_version = TLS1_3_VERSION;
        else if (strcmp(tok, "tlsv1.1") == 0 || strcmp(tok, "tlsv1") == 0)
            berr(bp, file, line,
                 "bridge_tls_version %s: TLS versions below 1.2 are not "
                 "supported",
                 tok);
        else
            berr(bp, file, line,
                 "invalid bridge_tls_version '%.64s': expected tlsv1.2 or "
                 "tlsv1.3",
                 tok);
        break;
    case B_CLEANSESSION:
        (void)get_bool(bp, file, line, key, val, &br->cleansession);
        break;
    case B_LOCAL_CLEAN:
        if (get_bool(bp, file, line, key, val, &br->local_cleansession) == 0)
            bp->meta[bp->c->nbridges - 1].local_clean_set = true;
        break;
    case B_IDLE:
        (void)get_u32(bp, file, line, key, val, 1, UINT32_MAX,
                      &br->idle_timeout);
        break;
    case B_KEEPALIVE:
        if (get_u32(bp, file, line, key, val, 5, 65535, &u) == 0)
            br->keepalive = (uint16_t)u;
        break;
    case B_LOCAL_ID:
        set_s(bp, file, line, key, val, &br->local_clientid);
        break;
    case B_LOCAL_PW:
        set_s(bp, file, line, key, val, &br->local_password);
        break;
    case B_LOCAL_USER:
        set_s(bp, file, line, key, val, &br->local_username);
        break;
    case B_NOTIF_TOPIC:
        set_s(bp, file, line, key, val, &br->notification_topic);
        if (br->notification_topic &&
            strpbrk(br->notification_topic, "+#") != NULL)
            berr(bp, file, line,
                 "notification_topic must not contain wildcards");
        break;
    case B_NOTIF:
        (void)get_bool(bp, file, line, key, val, &br->notifications);
        break;
    case B_NOTIF_LOCAL:
        (void)get_bool(bp, file, line, key, val, &br->notifications_local_only);
        break;
    case B_REMOTE_ID:
        set_s(bp, file, line, key, val, &br->remote_clientid);
        break;
    case B_REMOTE_PW:
        set_s(bp, file, line, key, val, &br->remote_password);
        break;
    case B_REMOTE_USER:
        set_s(bp, file, line, key, val, &br->remote_username);
        break;
    case B_RESTART: {
        char *rest = val, *a = next_tok(&rest), *cap = next_tok(&rest);
        long long x, y = 0;
        if (a == NULL || *a == '\0') {
            berr(bp, file, line, "missing value for '%s'", key);
            break;
        }
        if (next_tok(&rest) != NULL) {
            berr(bp, file, line,
                 "unexpected text after 'restart_timeout BASE CAP'");
            break;
        }
        if (get_num(bp, file, line, key, a, 1, 86400, &x) < 0)
            break;
        if (cap != NULL && get_num(bp, file, line, key, cap, 1, 86400, &y) < 0)
            break;
        if (cap != NULL && y < x) {
            berr(bp, file, line,
                 "restart_timeout BASE CAP: the cap must not be below the "
                 "base");
            break;
        }
        br->restart_base = (uint32_t)x;
        br->restart_cap = (uint32_t)y;
        break;
    }
    case B_ROUND_ROBIN:
        (void)get_bool(bp, file, line, key, val, &br->round_robin);
        break;
    case B_START:
        tok = one_word(bp, file, line, key, val);
        if (tok == NULL)
            break;
        if (strcmp(tok, "automatic") == 0)
            br->start_type = CONF_BRIDGE_AUTOMATIC;
        else if (strcmp(tok, "lazy") == 0)
            br->start_type = CONF_BRIDGE_LAZY;
        else if (strcmp(tok, "once") == 0)
            br->start_type = CONF_BRIDGE_ONCE;
        else
            berr(bp, file, line,
                 "invalid start_type '%.64s': expected automatic, lazy or "
                 "once",
                 tok);
        break;
    case B_THRESHOLD:
        (void)get_u32(bp, file, line, key, val, 1, UINT32_MAX, &br->threshold);
        break;
    case B_TOPIC:
        h_topic(bp, file, line, br, val);
        break;
    case B_TRY_PRIVATE:
        (void)get_bool(bp, file, line, key, val, &br->try_private);
        break;
    default:
        break;
    }
    return true;
}

static void check_readable(struct conf_bridge_parser *bp, const char *what,
                           const char *path, const char *src, int line)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        berr(bp, src, line, "cannot read %s '%s': %s", what, path,
             strerror(errno));
        return;
    }
    close(fd);
}

void conf_bridge_finalize(struct conf_bridge_parser *bp)
{
    struct conf *c = bp->c;
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    for (size_t i = 0; i < c->nbridges; i++) {
        struct conf_bridge *br = &c->bridges[i];
        struct conf_bridge_meta *m = &bp->meta[i];
        static const char *const fnames[BF_N] = {
            "bridge_cafile", "bridge_capath", "bridge_certfile",
            "bridge_keyfile"};
        const char *fvals[BF_N] = {br->cafile, br->capath, br->certfile,
                                   br->keyfile};

        if (br->naddrs == 0)
            berr(bp, br->src, br->line,
                 "bridge '%s' has no address: 'address HOST[:PORT]' is "
                 "required",
                 br->name);
        if (br->ntopics == 0)
            berr(bp, br->src, br->line,
                 "bridge '%s' has no topic: at least one 'topic' line is "
                 "required",
                 br->name);
        if (!m->local_clean_set)
            br->local_cleansession = br->cleansession;
        if (br->remote_password && !br->remote_username)
            berr(bp, br->src, br->line,
                 "bridge '%s': remote_password needs remote_username",
                 br->name);
        if ((br->certfile == NULL) != (br->keyfile == NULL))
            berr(bp, br->src, br->line,
                 "bridge '%s': bridge_certfile and bridge_keyfile go "
                 "together",
                 br->name);
        br->tls = br->cafile != NULL || br->capath != NULL;
        if (!br->tls && (br->certfile || br->insecure || br->alpn))
            berr(bp, br->src, br->line,
                 "bridge '%s': TLS keys need bridge_cafile or bridge_capath",
                 br->name);
        if (br->remote_clientid == NULL) {
            size_t n = strlen(br->name) + strlen(host) + 2;
            br->remote_clientid = xmalloc(n);
            snprintf(br->remote_clientid, n, "%s.%s", br->name, host);
        }
        if (br->local_clientid == NULL) {
            size_t n = strlen(br->remote_clientid) + 7;
            br->local_clientid = xmalloc(n);
            snprintf(br->local_clientid, n, "local.%s", br->remote_clientid);
        }
        if (strcmp(br->local_clientid, br->remote_clientid) == 0)
            berr(bp, br->src, br->line,
                 "bridge '%s': local_clientid and remote_clientid must "
                 "differ",
                 br->name);
        if (br->notification_topic == NULL) {
            size_t n = strlen(br->remote_clientid) + 40;
            br->notification_topic = xmalloc(n);
            snprintf(br->notification_topic, n,
                     "$SYS/broker/connection/%s/state", br->remote_clientid);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->bridges[j].local_clientid, br->local_clientid) == 0)
                berr(bp, br->src, br->line,
                     "bridge '%s' has the same local_clientid as bridge '%s'",
                     br->name, c->bridges[j].name);
        if (bp->check_files)
            for (int k = 0; k < BF_N; k++)
                if (fvals[k])
                    check_readable(bp, fnames[k], fvals[k], m->fsrc[k],
                                   m->fline[k]);
    }
    conf_bridge_parser_free(bp);
}

void conf_bridge_parser_free(struct conf_bridge_parser *bp)
{
    free(bp->meta);
    bp->meta = NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

struct conf_bridge *conf_bridge_dup(const struct conf_bridge *in)
{
    struct conf_bridge *br = xmalloc(sizeof(*br));

    *br = *in;
    br->src = NULL;
    br->line = 0;
    br->addrs =
        xreallocarray(NULL, in->naddrs ? in->naddrs : 1, sizeof(*br->addrs));
    for (size_t i = 0; i < in->naddrs; i++) {
        br->addrs[i].host = xstrdup(in->addrs[i].host);
        br->addrs[i].port = in->addrs[i].port;
    }
    br->topics =
        xreallocarray(NULL, in->ntopics ? in->ntopics : 1, sizeof(*br->topics));
    for (size_t i = 0; i < in->ntopics; i++) {
        br->topics[i] = in->topics[i];
        br->topics[i].pattern = xstrdup(in->topics[i].pattern);
        br->topics[i].local_prefix = xstrdup(in->topics[i].local_prefix);
        br->topics[i].remote_prefix = xstrdup(in->topics[i].remote_prefix);
    }
    br->name = dup_or_null(in->name);
    br->remote_clientid = dup_or_null(in->remote_clientid);
    br->local_clientid = dup_or_null(in->local_clientid);
    br->remote_username = dup_or_null(in->remote_username);
    br->remote_password = dup_or_null(in->remote_password);
    br->local_username = dup_or_null(in->local_username);
    br->local_password = dup_or_null(in->local_password);
    br->cafile = dup_or_null(in->cafile);
    br->capath = dup_or_null(in->capath);
    br->certfile = dup_or_null(in->certfile);
    br->keyfile = dup_or_null(in->keyfile);
    br->alpn = dup_or_null(in->alpn);
    br->notification_topic = dup_or_null(in->notification_topic);
    return br;
}

static void bridge_free_fields(struct conf_bridge *br)
{
    for (size_t j = 0; j < br->naddrs; j++)
        free(br->addrs[j].host);
    free(br->addrs);
    for (size_t j = 0; j < br->ntopics; j++) {
        free(br->topics[j].pattern);
        free(br->topics[j].local_prefix);
        free(br->topics[j].remote_prefix);
    }
    free(br->topics);
    free(br->name);
    free(br->remote_clientid);
    free(br->local_clientid);
    free(br->remote_username);
    free(br->remote_password);
    free(br->local_username);
    free(br->local_password);
    free(br->cafile);
    free(br->capath);
    free(br->certfile);
    free(br->keyfile);
    free(br->alpn);
    free(br->notification_topic);
}

void conf_bridge_free(struct conf_bridge *br)
{
    if (br == NULL)
        return;
    bridge_free_fields(br);
    free(br);
}

void conf_bridges_free(struct conf *c)
{
    for (size_t i = 0; i < c->nbridges; i++)
        bridge_free_fields(&c->bridges[i]);
    free(c->bridges);
    c->bridges = NULL;
    c->nbridges = 0;
}
