/*
 * test_conf.c - unit tests for the mosquitto.conf parser (src/conf.c).
 *
 * Valid configurations are checked field by field from tables; errors are
 * captured through a conf_err_fn and compared as "file:line: message" text.
 * Fixtures live in tests/unit/conf/ (found next to this file, or through
 * $CONF_FIXTURE_DIR). Temporary files go to a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/tls1.h>

#include "conf.h"
#include "log.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------ */

struct errs {
    char text[16384];
    size_t len;
    int n;
};

static void capture(void *arg, const char *file, int line, const char *msg)
{
    struct errs *e = arg;
    int r;

    if (line > 0)
        r = snprintf(e->text + e->len, sizeof(e->text) - e->len, "%s:%d: %s\n",
                     file, line, msg);
    else
        r = snprintf(e->text + e->len, sizeof(e->text) - e->len, "%s: %s\n",
                     file, msg);
    if (r > 0 && (size_t)r < sizeof(e->text) - e->len)
        e->len += (size_t)r;
    e->n++;
}

static struct conf *load(const char *text, struct errs *e)
{
    memset(e, 0, sizeof(*e));
    return conf_load_buf("t.conf", text, strlen(text), false, capture, e);
}

/* load_ok: parse text that must have no error. */
static struct conf *load_ok(const char *text)
{
    struct errs e;
    struct conf *c = load(text, &e);

    if (c == NULL || e.n != 0)
        fail_msg("unexpected errors for:\n%s\n---\n%s", text, e.text);
    return c;
}

static char tmpdir[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static const char *tpath(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
    return buf;
}

static const char *fixture(char *buf, size_t size, const char *name)
{
    const char *env = getenv("CONF_FIXTURE_DIR");
    const char *slash = strrchr(__FILE__, '/');

    if (env != NULL)
        snprintf(buf, size, "%s/%s", env, name);
    else if (slash != NULL)
        snprintf(buf, size, "%.*s/conf/%s", (int)(slash - __FILE__), __FILE__,
                 name);
    else
        snprintf(buf, size, "conf/%s", name);
    return buf;
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    char cmd[PATH_MAX + 16];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- defaults ----------------------------------------------------------- */

static void check_global_defaults(const struct conf *c)
{
    assert_int_equal(c->max_connections, -1);
    assert_int_equal(c->max_keepalive, 0);
    assert_int_equal(c->max_packet_size, 0);
    assert_int_equal(c->message_size_limit, 0);
    assert_int_equal(c->max_inflight_messages, 20);
    assert_int_equal(c->max_inflight_bytes, 0);
    assert_int_equal(c->max_queued_messages, 1000);
    assert_int_equal(c->max_queued_bytes, 0);
    assert_false(c->queue_qos0_messages);
    assert_true(c->retain_available);
    assert_true(c->set_tcp_nodelay);
    assert_int_equal(c->max_qos, 2);
    assert_int_equal(c->max_topic_alias, 10);
    assert_int_equal(c->max_subscriptions_per_client, 10000);
    assert_int_equal(c->max_retained_messages, 100000);
    assert_int_equal(c->max_retained_bytes, 256u << 20);
    assert_int_equal(c->memory_limit, 0);
    assert_int_equal(c->connect_timeout, 10);
    assert_int_equal(c->persistent_client_expiration, 0);
    assert_false(c->upgrade_outgoing_qos);
    assert_false(c->check_retain_source);
    assert_int_equal(c->log_types, LOG_DEFAULT_TYPES);
    assert_int_equal(c->log_dests, LOGD_STDERR);
    assert_null(c->log_file);
    assert_true(c->log_timestamp);
    assert_null(c->log_timestamp_format);
    assert_false(c->log_json);
    assert_true(c->connection_messages);
    assert_null(c->pid_file);
    assert_string_equal(c->user, "mqttd");
    assert_int_equal(c->sys_interval, 10);
    assert_false(c->persistence);
    assert_string_equal(c->persistence_location, "");
    assert_string_equal(c->persistence_file, "mqttd.db");
    assert_int_equal(c->autosave_interval, 1800);
    assert_false(c->autosave_on_changes);
    assert_int_equal(c->persistence_sync, 0);
    assert_int_equal(c->tls_reload_interval, 0);
    assert_int_equal(c->tls_expiry_warning_days, 30);
    assert_int_equal(c->tls_handshake_timeout, 10);
    assert_int_equal(c->max_receive_maximum, 65535);
    assert_false(c->per_listener_settings);
    assert_int_equal(c->sec.allow_anonymous, -1);
    assert_true(c->sec.allow_zero_length_clientid);
    assert_string_equal(c->sec.auto_id_prefix, "auto-");
    assert_null(c->sec.password_file);
    assert_null(c->sec.acl_file);
}

static void check_implicit(const struct conf *c, uint16_t port)
{
    assert_true(c->implicit_listener);
    assert_int_equal(c->nlisteners, 2);
    assert_string_equal(c->listeners[0].address, "127.0.0.1");
    assert_string_equal(c->listeners[1].address, "::1");
    for (size_t i = 0; i < 2; i++) {
        const struct conf_listener *l = &c->listeners[i];
        assert_int_equal(l->port, port);
        assert_false(l->tls_enabled);
        assert_null(l->unix_path);
        assert_int_equal(l->max_connections, -1);
        assert_int_equal(l->max_qos, 2);
        assert_int_equal(l->max_topic_alias, 10);
        assert_int_equal(l->socket_domain, AF_UNSPEC);
        assert_int_equal(l->tls.min_version, TLS1_2_VERSION);
        assert_true(conf_effective_anonymous(c, conf_listener_sec(c, i)));
    }
}

static void test_conf_default(void **state)
{
    struct conf *c;

    (void)state;
    c = conf_default(0);
    assert_non_null(c);
    assert_null(c->path);
    check_global_defaults(c);
    check_implicit(c, 1883);
    conf_free(c);

    c = conf_default(1884);
    check_implicit(c, 1884);
    conf_free(c);
    conf_free(NULL);
}

static void test_empty_file_is_local_only(void **state)
{
    static const char *const texts[] = {
        "",
        "\n\n",
        "# only comments\n   # indented comment\n\t\n",
        "allow_anonymous false\nlog_type all\n",
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        struct conf *c = load_ok(texts[i]);
        assert_string_equal(c->path, "t.conf");
        assert_true(c->implicit_listener);
        assert_int_equal(c->nlisteners, 2);
        assert_int_equal(c->listeners[0].port, 1883);
        if (i < 3) {
            check_global_defaults(c);
            check_implicit(c, 1883);
        } else {
            /* explicitly set wins over the local-only default */
            assert_false(conf_effective_anonymous(c, &c->sec));
            assert_int_equal(c->log_types, LOG_ALL);
        }
        conf_free(c);
    }
}

/* ---- table of global scalar keys ---------------------------------------- */

enum width { W_BOOL, W_INT, W_U8, W_U16, W_U32, W_U64 };

struct scalar_case {
    const char *text;
    size_t off;
    enum width w;
    unsigned long long want;
};

#define SC(t, f, w, v)                                                         \
    {                                                                          \
        t, offsetof(struct conf, f), w, v                                      \
    }

static const struct scalar_case scalar_cases[] = {
    SC("max_keepalive 0", max_keepalive, W_U16, 0),
    SC("max_keepalive 65535", max_keepalive, W_U16, 65535),
    SC("max_keepalive 60", max_keepalive, W_U16, 60),
    SC("max_packet_size 0", max_packet_size, W_U32, 0),
    SC("max_packet_size 20", max_packet_size, W_U32, 20),
    SC("max_packet_size 268435460", max_packet_size, W_U32, 268435460),
    SC("message_size_limit 268435455", message_size_limit, W_U32, 268435455),
    SC("max_inflight_messages 0", max_inflight_messages, W_U16, 0),
    SC("max_inflight_messages 65535", max_inflight_messages, W_U16, 65535),
    SC("max_inflight_bytes 9223372036854775807", max_inflight_bytes, W_U64,
       9223372036854775807ull),
    SC("max_queued_messages 0", max_queued_messages, W_U32, 0),
    SC("max_queued_bytes 1024", max_queued_bytes, W_U64, 1024),
    SC("queue_qos0_messages true", queue_qos0_messages, W_BOOL, 1),
    SC("retain_available false", retain_available, W_BOOL, 0),
    SC("set_tcp_nodelay false", set_tcp_nodelay, W_BOOL, 0),
    SC("set_tcp_nodelay 0", set_tcp_nodelay, W_BOOL, 0),
    SC("upgrade_outgoing_qos 1", upgrade_outgoing_qos, W_BOOL, 1),
    SC("check_retain_source false", check_retain_source, W_BOOL, 0),
    SC("max_qos 0", max_qos, W_U8, 0),
    SC("maximum_qos 1", max_qos, W_U8, 1),
    SC("max_qos 0\nmaximum_qos 2", max_qos, W_U8, 2),
    SC("max_topic_alias 65535", max_topic_alias, W_U16, 65535),
    SC("max_connections 10", max_connections, W_INT, 10),
    SC("max_subscriptions_per_client 4294967295", max_subscriptions_per_client,
       W_U32, 4294967295u),
    SC("max_retained_messages 0", max_retained_messages, W_U32, 0),
    SC("max_retained_bytes 5", max_retained_bytes, W_U64, 5),
    SC("memory_limit 1073741824", memory_limit, W_U64, 1073741824),
    SC("connect_timeout 30", connect_timeout, W_U32, 30),
    SC("persistent_client_expiration 1h", persistent_client_expiration, W_U32,
       3600),
    SC("persistent_client_expiration 14d", persistent_client_expiration, W_U32,
       14 * 86400),
    SC("persistent_client_expiration 2w", persistent_client_expiration, W_U32,
       14 * 86400),
    SC("persistent_client_expiration 2m", persistent_client_expiration, W_U32,
       60 * 86400),
    SC("persistent_client_expiration 1y", persistent_client_expiration, W_U32,
       365 * 86400),
    SC("log_timestamp false", log_timestamp, W_BOOL, 0),
    SC("log_format json", log_json, W_BOOL, 1),
    SC("log_format text", log_json, W_BOOL, 0),
    SC("connection_messages false", connection_messages, W_BOOL, 0),
    SC("sys_interval 0", sys_interval, W_U32, 0),
    SC("persistence true", persistence, W_BOOL, 1),
    SC("autosave_interval 0", autosave_interval, W_U32, 0),
    SC("autosave_on_changes true", autosave_on_changes, W_BOOL, 1),
    SC("persistence_sync always", persistence_sync, W_INT, 1),
    SC("persistence_sync snapshot", persistence_sync, W_INT, 0),
    SC("tls_reload_interval 60", tls_reload_interval, W_U32, 60),
    SC("tls_expiry_warning_days 0", tls_expiry_warning_days, W_U32, 0),
    SC("tls_handshake_timeout 3600", tls_handshake_timeout, W_U32, 3600),
    SC("max_receive_maximum 1", max_receive_maximum, W_U16, 1),
    SC("per_listener_settings true", per_listener_settings, W_BOOL, 1),
    /* whitespace, CRLF, a trailing comment after a one-word value, BOM */
    SC("  max_keepalive\t\t42  \r", max_keepalive, W_U16, 42),
    SC("max_keepalive 43 # seconds", max_keepalive, W_U16, 43),
    SC("\xEF\xBB\xBFmax_keepalive 44", max_keepalive, W_U16, 44),
    /* the last value wins for scalars, as in Mosquitto */
    SC("max_qos 1\nmax_qos 0", max_qos, W_U8, 0),
};

static unsigned long long get_field(const struct conf *c, size_t off,
                                    enum width w)
{
    const char *p = (const char *)c + off;

    switch (w) {
    case W_BOOL:
        return *(const bool *)(const void *)p;
    case W_INT:
        return (unsigned long long)(long long)*(const int *)(const void *)p;
    case W_U8:
        return *(const uint8_t *)(const void *)p;
    case W_U16:
        return *(const uint16_t *)(const void *)p;
    case W_U32:
        return *(const uint32_t *)(const void *)p;
    case W_U64:
        return *(const uint64_t *)(const void *)p;
    }
    return 0;
}

static void test_scalar_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(scalar_cases); i++) {
        const struct scalar_case *t = &scalar_cases[i];
        struct conf *c = load_ok(t->text);
        unsigned long long got = get_field(c, t->off, t->w);
        if (got != t->want)
            fail_msg("'%s': got %llu, want %llu", t->text, got, t->want);
        conf_free(c);
    }
}

/* ---- error table -------------------------------------------------------- */

struct err_case {
    const char *text;
    const char *want; /* all errors, "file:line: msg\n" each */
};

static const struct err_case err_cases[] = {
    {"max_keepalive", "t.conf:1: missing value for 'max_keepalive'\n"},
    {"max_keepalive # c", "t.conf:1: missing value for 'max_keepalive'\n"},
    {"max_keepalive 70000",
     "t.conf:1: value 70000 for 'max_keepalive' is too large: the range is 0 "
     "to 65535\n"},
    {"max_keepalive -1",
     "t.conf:1: value -1 for 'max_keepalive' is too small: the range is 0 to "
     "65535\n"},
    {"max_keepalive ten",
     "t.conf:1: invalid value 'ten' for 'max_keepalive': expected an integer "
     "from 0 to 65535\n"},
    {"max_keepalive 10 20",
     "t.conf:1: unexpected '20' after the value of 'max_keepalive'\n"},
    {"message_size_limit 268435456",
     "t.conf:1: value 268435456 for 'message_size_limit' is too large: the "
     "range is 0 to 268435455\n"},
    {"max_receive_maximum 0",
     "t.conf:1: value 0 for 'max_receive_maximum' is too small: the range is "
     "1 to 65535\n"},
    {"max_packet_size 19",
     "t.conf:1: value 19 for 'max_packet_size' is too small: use 0 (no limit) "
     "or 20 to 268435460\n"},
    {"max_connections -2",
     "t.conf:1: value -2 for 'max_connections' is too small: the range is -1 "
     "to 2147483647\n"},
    {"retain_available yes",
     "t.conf:1: invalid value 'yes' for 'retain_available': expected true or "
     "false\n"},
    {"allow_anonymous", "t.conf:1: missing value for 'allow_anonymous'\n"},
    {"pid_file", "t.conf:1: missing value for 'pid_file'\n"},
    {"pid_file /a\npid_file /b",
     "t.conf:2: duplicate 'pid_file': it is already set\n"},
    {"listener 1883\npid_file /a\npid_file /b",
     "t.conf:3: duplicate 'pid_file': it is already set\n"},
    {"per_listener_settings true\nlistener 1883\nacl_file /a\nacl_file /b",
     "t.conf:4: duplicate 'acl_file': it is already set for this listener\n"},
    {"listener 1883\nacl_file /a\nacl_file /b",
     "t.conf:3: duplicate 'acl_file': it is already set\n"},
    {"listener 1883\nauto_id_prefix a\nauto_id_prefix b",
     "t.conf:3: duplicate 'auto_id_prefix': it is already set\n"},
    {"bind_address ::1\nbind_address ::2",
     "t.conf:2: duplicate 'bind_address': it is already set for this "
     "listener\n"},
    {"listener 1883\ncertfile /a\ncertfile /b\nkeyfile /k",
     "t.conf:3: duplicate 'certfile': it is already set for this listener\n"},
    {"listner 1883",
     "t.conf:1: unknown configuration key 'listner' (did you mean "
     "'listener'?)\n"},
    {"max_keepalvie 5",
     "t.conf:1: unknown configuration key 'max_keepalvie' (did you mean "
     "'max_keepalive'?)\n"},
    {"frobnicate yes", "t.conf:1: unknown configuration key 'frobnicate'\n"},
    {"connection bridge1",
     "t.conf:1: bridge 'bridge1' has no address: 'address HOST[:PORT]' is "
     "required\n"
     "t.conf:1: bridge 'bridge1' has no topic: at least one 'topic' line is "
     "required\n"},
    {"auth_opt_db_host localhost",
     "t.conf:1: 'auth_opt_db_host' is not supported by mqttd: mqttd cannot "
     "load Mosquitto plugins, and a security plugin that silently did not "
     "load would let clients in\n"},
    {"plugin_opt_x 1",
     "t.conf:1: 'plugin_opt_x' is not supported by mqttd: mqttd cannot load "
     "Mosquitto plugins, and a security plugin that silently did not load "
     "would let clients in\n"},
    {"listener 1883\nprotocol http2",
     "t.conf:2: invalid protocol 'http2': expected mqtt, websockets or http\n"},
    {"listener 1883\nprotocol websockets\nwebsockets_path mqtt",
     "t.conf:3: invalid websockets_path 'mqtt': expected a path such as "
     "/mqtt\n"},
    {"listener 1883\nwebsockets_origin",
     "t.conf:2: missing value for 'websockets_origin'\n"},
    {"websockets_headers_size 70000",
     "t.conf:1: value 70000 for 'websockets_headers_size' is too large: the "
     "range is 0 to 65536\n"},
    {"listener 8883\ntls_keyform engine",
     "t.conf:2: 'tls_keyform engine' needs 'tls_engine' (e.g. 'tls_engine "
     "pkcs11')\n"},
    {"listener 8883\ntls_keyform der",
     "t.conf:2: invalid tls_keyform 'der': expected pem or engine\n"},
    {"listener 8883\ntls_engine_kpass_sha1 0123456789abcdef",
     "t.conf:2: 'tls_engine_kpass_sha1' cannot work: the pkcs11 engine "
     "(libp11) logs into the token with the PIN itself, and a SHA-1 of the "
     "PIN is not the PIN (Mosquitto fails with it too); put the PIN in the "
     "keyfile URI with pin-value= or pin-source=file:\n"},
    /* a PKCS#11 keyfile: the PIN never appears in a message */
    {"listener 8883\ncertfile /c\nkeyfile "
     "pkcs11:token=t;object=k?pin-value=s3cr3t",
     "t.conf:3: keyfile 'pkcs11:token=t;object=k?pin-value=(redacted)' is a "
     "PKCS#11 URI: it needs 'tls_engine pkcs11' and 'tls_keyform engine'\n"},
    {"listener 8883\ncertfile /c\ntls_engine pkcs11\ntls_keyform engine\n"
     "keyfile pkcs11:object=k;pin-value=s3cr3t;pin-source=file:/p",
     "t.conf:5: keyfile "
     "'pkcs11:object=k;pin-value=(redacted);pin-source=file:/p'"
     ": both pin-value and pin-source given\n"},
    {"listener 8883\ncertfile /c\ntls_engine pkcs11\ntls_keyform engine\n"
     "keyfile \"pkcs11:object=k;pin-value=s3cr3t\"",
     "t.conf:5: keyfile \"pkcs11:object=k;pin-value=(redacted)\": remove the "
     "quotes (mosquitto.conf values are not quoted)\n"},
    {"listener 8883\ncertfile /c\ntls_engine pkcs11\ntls_keyform engine\n"
     "keyfile pkcs11:object=k?pin-source=http://x/pin",
     "t.conf:5: keyfile 'pkcs11:object=k?pin-source=http://x/pin': "
     "pin-source: only file: is supported (e.g. "
     "pin-source=file:/etc/mqttd/pin)\n"},
    {"allow_duplicate_messages maybe",
     "t.conf:1: invalid value 'maybe' for 'allow_duplicate_messages': "
     "expected true or false\n"},
    {"websockets_log_level",
     "t.conf:1: missing value for 'websockets_log_level'\n"},
    {"listener 1883\nprotocol gopher", "t.conf:2: invalid protocol 'gopher': "
                                       "expected mqtt, websockets or http\n"},
    /* protocol http is default-deny beyond loopback */
    {"listener 1883\nprotocol http",
     "t.conf:1: listener 1883 is 'protocol http' on every address: refusing "
     "to expose the operations endpoints without 'http_allow_from CIDR...' "
     "or TLS with 'require_certificate true'\n"},
    {"listener 1883 192.0.2.1\nprotocol http",
     "t.conf:1: listener 1883 192.0.2.1 is 'protocol http' on a "
     "non-loopback address: refusing to expose the operations endpoints "
     "without 'http_allow_from CIDR...' or TLS with 'require_certificate "
     "true'\n"},
    {"listener 1883 127.0.0.1\nprotocol http\nhttp_allow_from 10.0.0.0/33 "
     "x",
     "t.conf:3: invalid address range '10.0.0.0/33' in 'http_allow_from': "
     "expected ADDRESS or ADDRESS/PREFIX (IPv4 or IPv6, no host names)\n"
     "t.conf:3: invalid address range 'x' in 'http_allow_from': expected "
     "ADDRESS or ADDRESS/PREFIX (IPv4 or IPv6, no host names)\n"},
    {"listener 1883 127.0.0.1\nhttp_allow_from 10.0.0.0/8",
     "t.conf:1: 'http_allow_from' on listener 1883 127.0.0.1, which is not "
     "'protocol http'\n"},
    {"log_dest topic",
     "t.conf:1: 'log_dest topic' is not supported by mqttd\n"},
    {"log_dest printer",
     "t.conf:1: invalid log_dest 'printer': expected stderr, stdout, syslog, "
     "file PATH or none\n"},
    {"log_dest file", "t.conf:1: 'log_dest file' needs a file name\n"},
    {"log_dest file /a\nlog_dest file /b",
     "t.conf:2: duplicate 'log_dest file': only one log file may be "
     "configured\n"},
    {"log_dest stdout stderr",
     "t.conf:1: unexpected 'stderr' after the value of 'log_dest' (give one "
     "destination per line)\n"},
    {"log_type verbose",
     "t.conf:1: invalid log_type 'verbose': expected error, warning, notice, "
     "information, debug, subscribe, unsubscribe, websockets, none or all\n"},
    {"log_format xml",
     "t.conf:1: invalid log_format 'xml': expected text or json\n"},
    {"persistence_sync sometimes",
     "t.conf:1: invalid persistence_sync 'sometimes': expected snapshot or "
     "always\n"},
    {"persistent_client_expiration 14",
     "t.conf:1: invalid persistent_client_expiration '14': expected a number "
     "followed by h, d, w, m or y (for example 14d)\n"},
    {"persistent_client_expiration d",
     "t.conf:1: invalid persistent_client_expiration 'd': expected a number "
     "followed by h, d, w, m or y (for example 14d)\n"},
    {"persistent_client_expiration 0d",
     "t.conf:1: value 0 for 'persistent_client_expiration' is too small: the "
     "range is 1 to 49710\n"},
    {"persistent_client_expiration 200y",
     "t.conf:1: value 200 for 'persistent_client_expiration' is too large: "
     "the range is 1 to 136\n"},
    {"listener",
     "t.conf:1: missing value for 'listener': expected 'listener PORT "
     "[ADDRESS]' or 'listener 0 /path/to/socket'\n"},
    {"listener 65536",
     "t.conf:1: value 65536 for 'listener' is too large: the range is 0 to "
     "65535\n"},
    {"listener 0",
     "t.conf:1: listener port 0 needs a Unix socket path: 'listener 0 "
     "/path/to/socket'\n"},
    {"listener 1883 bad_addr!",
     "t.conf:1: invalid listener address 'bad_addr!': expected an IPv4 or "
     "IPv6 address or a host name\n"},
    {"listener 1883 1.2.3.999",
     "t.conf:1: invalid listener address '1.2.3.999': expected an IPv4 or "
     "IPv6 address or a host name\n"},
    {"listener 1883 a b",
     "t.conf:1: unexpected 'b' after the value of 'listener'\n"},
    {"listener 1883\nlistener 1883",
     "t.conf:2: duplicate listener: the same port and address as the "
     "listener at t.conf:1\n"},
    {"listener 1883 ::1\nlistener 1883 ::1",
     "t.conf:2: duplicate listener: the same port and address as the "
     "listener at t.conf:1\n"},
    {"listener 0 /tmp/s\nlistener 0 /tmp/s",
     "t.conf:2: duplicate listener: the same port and address as the "
     "listener at t.conf:1\n"},
    {"listener 1883\nport 1883",
     "t.conf:2: the default listener (port 1883) has the same port and "
     "address as the listener at t.conf:1\n"},
    {"port 0", "t.conf:1: value 0 for 'port' is too small: the range is 1 to "
               "65535\n"},
    {"bind_address not an address",
     "t.conf:1: invalid bind_address 'not an address': expected an IPv4 or "
     "IPv6 address or a host name\n"},
    {"socket_domain ipv5",
     "t.conf:1: invalid socket_domain 'ipv5': expected ipv4 or ipv6\n"},
    {"listener 8883\ntls_version tlsv1.1",
     "t.conf:2: tls_version tlsv1.1: TLS versions below 1.2 are not "
     "supported\n"},
    {"listener 8883\ntls_version tlsv1",
     "t.conf:2: tls_version tlsv1: TLS versions below 1.2 are not "
     "supported\n"},
    {"listener 8883\ntls_version sslv3",
     "t.conf:2: invalid tls_version 'sslv3': expected tlsv1.2 or tlsv1.3\n"},
    {"listener 8883\nclient_cert_mode maybe",
     "t.conf:2: invalid client_cert_mode 'maybe': expected none, optional or "
     "required\n"},
    {"listener 8883\ncertfile /c",
     "t.conf:2: listener 8883 has a certfile but no keyfile: both are needed "
     "for TLS\n"},
    {"listener 8883\nkeyfile /k",
     "t.conf:2: listener 8883 has a keyfile but no certfile: both are needed "
     "for TLS\n"},
    {"listener 8883\ncafile /ca",
     "t.conf:2: 'cafile' has no effect: listener 8883 has no certfile and "
     "keyfile\n"},
    {"listener 8883\nrequire_certificate true",
     "t.conf:2: client certificates need TLS: listener 8883 has no certfile "
     "and keyfile\n"},
    {"listener 8883\nenable_proxy_protocol 1\nrequire_certificate true",
     "t.conf:3: client certificates need TLS: listener 8883 has no certfile "
     "and keyfile\n"},
    {"listener 8883\nenable_proxy_protocol 3",
     "t.conf:2: value 3 for 'enable_proxy_protocol' is too large: the range "
     "is 1 to 2\n"},
    {"listener 8883\nenable_proxy_protocol 1\nproxy_protocol_v2_require_tls "
     "true",
     "t.conf:3: proxy_protocol_v2_require_tls needs enable_proxy_protocol 2 "
     "on listener 8883\n"},
    {"listener 8883\nenable_proxy_protocol 2\nrequire_certificate true\n"
     "use_subject_as_username true",
     "t.conf:4: 'use_subject_as_username' on listener 8883: a PROXY v2 "
     "header carries the certificate's CN only, not its subject; use "
     "use_identity_as_username\n"},
    {"listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true",
     "t.conf:4: listener 8883: require_certificate needs cafile or capath to "
     "verify client certificates\n"},
    {"listener 8883\ncertfile /c\nkeyfile /k\nclient_cert_mode optional",
     "t.conf:4: listener 8883: client_cert_mode needs cafile or capath to "
     "verify client certificates\n"},
    {"listener 8883\ncertfile /c\nkeyfile /k\ntls_record_layer kernel",
     "t.conf:4: invalid tls_record_layer 'kernel': expected openssl\n"},
    {"listener 8883\ncertfile /c\nkeyfile /k\ntls_record_layer mqttd",
     "t.conf:4: 'tls_record_layer mqttd': mqttd's own TLS record layer was "
     "removed in this release; remove the line (OpenSSL's is used)\n"},
    {"listener 1883\nper_listener_settings true",
     "t.conf:2: per_listener_settings must come before any listener and any "
     "security setting\n"},
    {"allow_anonymous true\nper_listener_settings true",
     "t.conf:2: per_listener_settings must come before any listener and any "
     "security setting\n"},
    {"include_dir", "t.conf:1: missing value for 'include_dir'\n"},
    {"include_dir /nonexistent/mqttd-conf.d",
     "t.conf:1: cannot open include_dir '/nonexistent/mqttd-conf.d': No such "
     "file or directory\n"},
    {"auto_id_prefix \xff\xfe",
     "t.conf:1: the value of 'auto_id_prefix' is not valid UTF-8\n"},
    {"max_qos 1\x01",
     "t.conf:1: invalid value '1?' for 'max_qos': expected an integer from 0 "
     "to 2\n"},
};

/* PROXY v2 without certfile: the proxy holds TLS, so client certificate
 * keys load without one (Mosquitto 2.1) */
static void test_proxy_listener(void **state)
{
    struct conf *c = load_ok("listener 8883\nenable_proxy_protocol 2\n"
                             "proxy_protocol_v2_require_tls true\n"
                             "require_certificate true\n"
                             "use_identity_as_username true\n");

    (void)state;
    assert_int_equal(c->listeners[0].proxy_protocol, 2);
    assert_true(c->listeners[0].proxy_v2_require_tls);
    assert_false(c->listeners[0].tls_enabled);
    assert_int_equal(c->listeners[0].tls.cert_mode, CONF_CERT_REQUIRED);
    assert_true(c->listeners[0].tls.use_identity_as_username);
    conf_free(c);
}

/* cluster_nats / cluster_node_name (docs/cluster.md). */
static void test_cluster_keys(void **state)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"cluster_nats http://a:4222",
         "t.conf:1: invalid cluster_nats 'http://a:4222': expected "
         "nats://HOST:PORT or tls://HOST:PORT, separated by commas\n"},
        {"cluster_nats nats://a:1,,nats://b:2",
         "t.conf:1: invalid cluster_nats 'nats://a:1,,nats://b:2': expected "
         "nats://HOST:PORT or tls://HOST:PORT, separated by commas\n"},
        {"cluster_node_name a.b",
         "t.conf:1: invalid cluster_node_name 'a.b': expected 1 to 64 "
         "letters, digits, '_' or '-'\n"},
        {"threads 2\ncluster_nats nats://127.0.0.1:4222",
         "t.conf:2: cluster_nats needs threads 1 in this release: the NATS "
         "connection runs on the one event loop\n"},
    };
    struct conf *c = load_ok("cluster_nats nats://127.0.0.1:1,tls://h:2\n"
                             "cluster_node_name node-1\n");

    (void)state;
    assert_string_equal(c->cluster_nats, "nats://127.0.0.1:1,tls://h:2");
    assert_string_equal(c->cluster_node_name, "node-1");
    conf_free(c);
    c = load_ok("");
    assert_null(c->cluster_nats);
    assert_null(c->cluster_node_name);
    conf_free(c);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct errs e;
        c = load(bad[i].text, &e);
        if (c != NULL)
            fail_msg("no error for '%s'", bad[i].text);
        if (strcmp(e.text, bad[i].want) != 0)
            fail_msg("for '%s'\n got: %s want: %s", bad[i].text, e.text,
                     bad[i].want);
    }
}

static void test_error_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(err_cases); i++) {
        struct errs e;
        struct conf *c = load(err_cases[i].text, &e);
        if (c != NULL)
            fail_msg("no error for '%s'", err_cases[i].text);
        if (strcmp(e.text, err_cases[i].want) != 0)
            fail_msg("for '%s'\n got: %s want: %s", err_cases[i].text, e.text,
                     err_cases[i].want);
    }
}

/* Accepted, but with a warning line and a working snapshot. */
static const struct {
    const char *text, *want;
} warn_cases[] = {
    {"check_retain_source true",
     "t.conf:1: warning: 'check_retain_source true' has no effect in mqttd: "
     "a retained message's publisher is checked against the ACL when it is "
     "stored, not again when it is sent\n"},
    {"listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true",
     "t.conf:4: warning: 'use_identity_as_username' on listener 8883, which "
     "requests no client certificates: every client is refused (bad user "
     "name or password), as in Mosquitto; set require_certificate true or "
     "client_cert_mode optional or required\n"},
    {"listener 8883\ncertfile /c\nkeyfile /k\ncafile /ca\n"
     "require_certificate true\nclient_cert_mode none\n"
     "use_subject_as_username true",
     "t.conf:7: warning: 'use_subject_as_username' on listener 8883, which "
     "requests no client certificates: every client is refused (bad user "
     "name or password), as in Mosquitto; set require_certificate true or "
     "client_cert_mode optional or required\n"},
    {"listener 1883\nuse_identity_as_username true",
     "t.conf:2: warning: 'use_identity_as_username' has no effect on "
     "listener 1883: it has no certfile and keyfile, so clients are "
     "authenticated as if it were not set\n"},
    {"websockets_log_level 0",
     "t.conf:1: warning: 'websockets_log_level' has no effect in mqttd: "
     "it sets libwebsockets' log level; mqttd's WebSocket lines are enabled "
     "with 'log_type websockets'\n"},
    {"log_facility 5",
     "t.conf:1: warning: 'log_facility' has no effect in mqttd: mqttd logs "
     "to the syslog facility daemon\n"},
};

static void test_warning_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(warn_cases); i++) {
        struct errs e;
        struct conf *c = load(warn_cases[i].text, &e);
        if (c == NULL)
            fail_msg("refused: '%s'\n%s", warn_cases[i].text, e.text);
        if (strcmp(e.text, warn_cases[i].want) != 0)
            fail_msg("for '%s'\n got: %s want: %s", warn_cases[i].text, e.text,
                     warn_cases[i].want);
        conf_free(c);
    }
}

/*
 * Every Mosquitto 2.0 key mqttd does not implement is refused by name with
 * the reason, or accepted with a warning naming it (docs/differences.md).
 */
static void test_unsupported_keys(void **state)
{
    static const char *const refused[] = {
        "auth_plugin",       "bind_interface", "bridge_bind_address",
        "bridge_identity",   "bridge_psk",     "bridge_require_ocsp",
        "clientid_prefixes", "mount_point",    "plugin",
        "psk_file",          "psk_hint",       "use_username_as_clientid"};
    static const char *const warned[] = {"allow_duplicate_messages true",
                                         "auth_plugin_deny_special_chars true",
                                         "http_dir /usr/share/www",
                                         "log_facility 5",
                                         "retry_interval 20",
                                         "websockets_log_level 0"};

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        char text[128], want[160];
        struct errs e;
        struct conf *c;

        snprintf(text, sizeof(text), "%s some value", refused[i]);
        snprintf(want, sizeof(want),
                 "t.conf:1: '%s' is not supported by mqttd: ", refused[i]);
        c = load(text, &e);
        assert_null(c);
        assert_int_equal(e.n, 1);
        if (strncmp(e.text, want, strlen(want)) != 0)
            fail_msg("got: %s want: %s...", e.text, want);
    }
    for (size_t i = 0; i < ARRAY_LEN(warned); i++) {
        char want[160];
        size_t kl = strcspn(warned[i], " ");
        struct errs e;
        struct conf *c;

        snprintf(want, sizeof(want),
                 "t.conf:1: warning: '%.*s' has no effect in mqttd: ", (int)kl,
                 warned[i]);
        c = load(warned[i], &e);
        assert_non_null(c);
        assert_int_equal(e.n, 1);
        if (strncmp(e.text, want, strlen(want)) != 0)
            fail_msg("got: %s want: %s...", e.text, want);
        conf_free(c);
    }
}

static void test_many_errors_all_reported(void **state)
{
    const char *text = "# several mistakes\n"
                       "listener 1883\n"
                       "alow_anonymous true\n"
                       "max_qos 3\n"
                       "\n"
                       "bridge_cafile /x\n"
                       "retain_available maybe\n"
                       "max_keepalive 10\n"
                       "log_type loud\n";
    const char *want =
        "t.conf:3: unknown configuration key 'alow_anonymous' (did you mean "
        "'allow_anonymous'?)\n"
        "t.conf:4: value 3 for 'max_qos' is too large: the range is 0 to 2\n"
        "t.conf:6: 'bridge_cafile' is a bridge key: it must follow a "
        "'connection NAME' line\n"
        "t.conf:7: invalid value 'maybe' for 'retain_available': expected "
        "true or false\n"
        "t.conf:9: invalid log_type 'loud': expected error, warning, notice, "
        "information, debug, subscribe, unsubscribe, websockets, none or "
        "all\n";
    struct errs e;

    (void)state;
    assert_null(load(text, &e));
    assert_int_equal(e.n, 5);
    assert_string_equal(e.text, want);
}

static void test_too_many_errors(void **state)
{
    size_t n = 1000, len = 0;
    char *text = malloc(n * 8 + 1);
    struct errs e;

    (void)state;
    assert_non_null(text);
    for (size_t i = 0; i < n; i++) {
        memcpy(text + len, "bogus!\n", 7);
        len += 7;
    }
    text[len] = '\0';
    assert_null(load(text, &e));
    assert_int_equal(e.n, 201);
    assert_non_null(strstr(e.text, "t.conf:201: too many errors; giving up\n"));
    free(text);
}

static void test_bad_bytes_and_long_lines(void **state)
{
    static const char nul[] = "max_qos 1\nmax_\0qos 2\nmax_qos 0\n";
    size_t big = 70000;
    char *text = malloc(big + 32);
    struct errs e;
    struct conf *c;

    (void)state;
    memset(&e, 0, sizeof(e));
    c = conf_load_buf("n.conf", nul, sizeof(nul) - 1, false, capture, &e);
    assert_null(c);
    assert_string_equal(e.text, "n.conf:2: line contains a NUL byte\n");

    assert_non_null(text);
    memcpy(text, "pid_file /", 10);
    memset(text + 10, 'a', big);
    memcpy(text + 10 + big, "\nbogus 1\n", 10);
    assert_null(load(text, &e));
    assert_string_equal(e.text,
                        "t.conf:1: line is longer than 65536 bytes\n"
                        "t.conf:2: unknown configuration key 'bogus'\n");
    free(text);

    /* no newline at the end, CRLF endings, NULL buffer */
    c = load_ok("listener 1884\r\nmax_qos 1\r\nmax_topic_alias 3");
    assert_int_equal(c->nlisteners, 1);
    assert_int_equal(c->listeners[0].max_qos, 1);
    assert_int_equal(c->listeners[0].max_topic_alias, 3);
    conf_free(c);
    c = conf_load_buf(NULL, NULL, 0, false, capture, &e);
    assert_non_null(c);
    conf_free(c);
}

/* ---- listeners and scope ------------------------------------------------ */

static void test_listeners(void **state)
{
    struct conf *c;
    const struct conf_listener *l;

    (void)state;
    c = load_ok("listener 1883\n"
                "listener 1884 127.0.0.1\n"
                "socket_domain ipv4\n"
                "listener 1885 fe80::1%eth0\n"
                "socket_domain ipv6\n"
                "listener 1886 mqtt.example.com\n"
                "max_connections 7\n"
                "listener 0 /run/mqttd.sock\n"
                "listener 1883 ::\n");
    assert_false(c->implicit_listener);
    assert_int_equal(c->nlisteners, 6);
    l = c->listeners;
    assert_int_equal(l[0].port, 1883);
    assert_null(l[0].address);
    assert_int_equal(l[0].line, 1);
    assert_string_equal(l[0].src, "t.conf");
    assert_string_equal(l[1].address, "127.0.0.1");
    assert_int_equal(l[1].socket_domain, AF_INET);
    assert_string_equal(l[2].address, "fe80::1%eth0");
    assert_int_equal(l[2].socket_domain, AF_INET6);
    assert_string_equal(l[3].address, "mqtt.example.com");
    assert_int_equal(l[3].max_connections, 7);
    assert_int_equal(l[3].socket_domain, AF_UNSPEC);
    assert_int_equal(l[4].port, 0);
    assert_string_equal(l[4].unix_path, "/run/mqttd.sock");
    assert_null(l[4].address);
    assert_int_equal(l[4].max_connections, -1);
    assert_string_equal(l[5].address, "::");
    assert_int_equal(l[5].line, 9);
    for (size_t i = 0; i < c->nlisteners; i++) {
        assert_false(l[i].tls_enabled);
        /* listeners were configured: anonymous is off unless allowed */
        assert_false(conf_effective_anonymous(c, conf_listener_sec(c, i)));
    }
    conf_free(c);
}

/* WebSocket listeners: protocol, path, origins (repeatable, several per
 * line) and the global head size. */
static void test_websockets(void **state)
{
    struct conf *c;
    const struct conf_listener *l;

    (void)state;
    c = load_ok("websockets_headers_size 8192\n"
                "listener 1883\n"
                "listener 9001 127.0.0.1\n"
                "protocol websockets\n"
                "websockets_path /mqtt\n"
                "websockets_origin https://a.example http://b.example\n"
                "websockets_origin http://c.example\n"
                "listener 9002\n"
                "protocol websockets\n"
                "listener 1884\n"
                "protocol mqtt\n");
    l = c->listeners;
    assert_int_equal(c->nlisteners, 4);
    assert_int_equal(c->websockets_headers_size, 8192);
    assert_int_equal(l[0].protocol, CONF_PROTO_MQTT);
    assert_int_equal(l[1].protocol, CONF_PROTO_WEBSOCKETS);
    assert_string_equal(l[1].ws_path, "/mqtt");
    assert_int_equal(l[1].nws_origins, 3);
    assert_string_equal(l[1].ws_origins[0], "https://a.example");
    assert_string_equal(l[1].ws_origins[1], "http://b.example");
    assert_string_equal(l[1].ws_origins[2], "http://c.example");
    assert_int_equal(l[2].protocol, CONF_PROTO_WEBSOCKETS);
    assert_null(l[2].ws_path);
    assert_int_equal(l[2].nws_origins, 0);
    assert_int_equal(l[3].protocol, CONF_PROTO_MQTT);
    conf_free(c);
}

/* Keys that are per listener take global defaults before any listener. */
static void test_both_scope_defaults(void **state)
{
    struct conf *c;

    (void)state;
    c = load_ok("max_qos 1\nmax_topic_alias 4\nmax_connections 50\n"
                "listener 1883\n"
                "listener 1884\nmax_qos 0\nmax_connections -1\n");
    assert_int_equal(c->max_qos, 1);
    assert_int_equal(c->max_connections, 50);
    assert_int_equal(c->nlisteners, 2);
    assert_int_equal(c->listeners[0].max_qos, 1);
    assert_int_equal(c->listeners[0].max_topic_alias, 4);
    assert_int_equal(c->listeners[0].max_connections, 50);
    assert_int_equal(c->listeners[1].max_qos, 0);
    assert_int_equal(c->listeners[1].max_topic_alias, 4);
    assert_int_equal(c->listeners[1].max_connections, -1);
    conf_free(c);

    /* maximum_qos is the same key, per listener too */
    c = load_ok("listener 1883\nmaximum_qos 0\nlistener 1884\n");
    assert_int_equal(c->listeners[0].max_qos, 0);
    assert_int_equal(c->listeners[1].max_qos, 2);
    conf_free(c);

    /* the implicit listeners take them too */
    c = load_ok("max_qos 1\n");
    assert_true(c->implicit_listener);
    assert_int_equal(c->listeners[0].max_qos, 1);
    assert_int_equal(c->listeners[1].max_qos, 1);
    conf_free(c);
}

/* Mosquitto's default listener: port, bind_address, TLS keys before any
 * listener line. */
static void test_default_listener(void **state)
{
    struct conf *c;
    const struct conf_listener *l;

    (void)state;
    c = load_ok("port 8884\ncertfile /c.pem\nkeyfile /k.pem\nmax_qos 1\n");
    assert_false(c->implicit_listener);
    assert_int_equal(c->nlisteners, 1);
    l = &c->listeners[0];
    assert_int_equal(l->port, 8884);
    assert_null(l->address);
    assert_true(l->tls_enabled);
    assert_string_equal(l->tls.certfile, "/c.pem");
    assert_string_equal(l->tls.src, "t.conf");
    assert_int_equal(l->tls.line, 2);
    assert_int_equal(l->line, 1);
    assert_int_equal(l->max_qos, 1);
    assert_false(conf_effective_anonymous(c, conf_listener_sec(c, 0)));
    conf_free(c);

    c = load_ok("bind_address 127.0.0.1\n");
    assert_int_equal(c->nlisteners, 1);
    assert_int_equal(c->listeners[0].port, 1883);
    assert_string_equal(c->listeners[0].address, "127.0.0.1");
    conf_free(c);

    /* "port" after a listener still sets the default listener, which comes
     * after the explicit ones (as in Mosquitto) */
    c = load_ok("listener 8883\ncertfile /c\nkeyfile /k\nport 1884\n"
                "port 1885\n");
    assert_int_equal(c->nlisteners, 2);
    assert_int_equal(c->listeners[0].port, 8883);
    assert_true(c->listeners[0].tls_enabled);
    assert_int_equal(c->listeners[1].port, 1885);
    assert_false(c->listeners[1].tls_enabled);
    assert_int_equal(c->listeners[1].line, 4);
    conf_free(c);
}

static void test_tls_listener_fields(void **state)
{
    struct conf *c;
    const struct conf_listener *l;

    (void)state;
    c = load_ok("listener 8883\n"
                "certfile /etc/mqttd/server cert.pem\n"
                "keyfile /etc/mqttd/server.key\n"
                "cafile /etc/mqttd/ca.pem\n"
                "require_certificate true\n"
                "listener 8884\n"
                "certfile /c\nkeyfile /k\ncapath /etc/ssl/certs\n"
                "require_certificate true\n"
                "client_cert_mode optional\n"
                "use_identity_as_username true\n"
                "listener 8885\n"
                "certfile /c\nkeyfile /k\ncafile /ca\n"
                "client_cert_mode required\n"
                "use_subject_as_username true\n"
                "tls_version tlsv1.3\n"
                "tls_record_layer openssl\n");
    assert_int_equal(c->nlisteners, 3);
    l = c->listeners;
    assert_true(l[0].tls_enabled);
    assert_string_equal(l[0].tls.certfile, "/etc/mqttd/server cert.pem");
    assert_int_equal(l[0].tls.line, 2);
    assert_true(l[0].tls.require_certificate);
    assert_int_equal(l[0].tls.cert_mode, CONF_CERT_REQUIRED);
    assert_int_equal(l[0].tls.min_version, TLS1_2_VERSION);
    assert_int_equal(l[1].tls.cert_mode, CONF_CERT_OPTIONAL);
    assert_true(l[1].tls.use_identity_as_username);
    assert_string_equal(l[1].tls.capath, "/etc/ssl/certs");
    assert_int_equal(l[2].tls.cert_mode, CONF_CERT_REQUIRED);
    assert_false(l[2].tls.require_certificate);
    assert_true(l[2].tls.use_subject_as_username);
    assert_int_equal(l[2].tls.min_version, TLS1_3_VERSION);
    conf_free(c);
}

static void test_per_listener_settings(void **state)
{
    struct conf *c;
    const struct conf_security *s0, *s1;

    (void)state;
    c = load_ok("per_listener_settings true\n"
                "allow_anonymous false\n"
                "password_file /etc/pw\n"
                "auto_id_prefix x-\n"
                "listener 1883\n"
                "allow_anonymous true\n"
                "listener 1884\n"
                "password_file /etc/pw2\n"
                "allow_zero_length_clientid false\n"
                "acl_file /etc/acl\n");
    assert_true(c->per_listener_settings);
    s0 = conf_listener_sec(c, 0);
    s1 = conf_listener_sec(c, 1);
    assert_ptr_equal(s0, &c->listeners[0].sec);
    assert_true(conf_effective_anonymous(c, s0));
    assert_false(conf_effective_anonymous(c, s1));
    assert_string_equal(s0->password_file, "/etc/pw");
    assert_int_equal(s0->password_file_line, 3);
    assert_string_equal(s1->password_file, "/etc/pw2");
    assert_int_equal(s1->password_file_line, 8);
    assert_null(s0->acl_file);
    assert_string_equal(s1->acl_file, "/etc/acl");
    assert_int_equal(s1->acl_file_line, 10);
    assert_true(s0->allow_zero_length_clientid);
    assert_false(s1->allow_zero_length_clientid);
    assert_string_equal(s0->auto_id_prefix, "x-");
    assert_string_equal(s1->auto_id_prefix, "x-");
    conf_free(c);

    /* without it every security key is global wherever it appears */
    c = load_ok("listener 1883\nallow_anonymous true\nlistener 1884\n"
                "password_file /etc/pw\nauto_id_prefix gen-\n");
    assert_false(c->per_listener_settings);
    assert_ptr_equal(conf_listener_sec(c, 1), &c->sec);
    assert_true(conf_effective_anonymous(c, conf_listener_sec(c, 0)));
    assert_string_equal(c->sec.password_file, "/etc/pw");
    assert_string_equal(c->sec.password_file_src, "t.conf");
    assert_int_equal(c->sec.password_file_line, 4);
    assert_string_equal(c->sec.auto_id_prefix, "gen-");
    assert_null(c->listeners[1].sec.password_file);
    conf_free(c);
}

static void test_logging(void **state)
{
    struct conf *c;

    (void)state;
    c = load_ok("log_dest stdout\nlog_dest syslog\nlog_type error\n"
                "log_type debug\nlog_timestamp_format %Y-%m-%d %H:%M:%S\n");
    assert_int_equal(c->log_dests, LOGD_STDOUT | LOGD_SYSLOG);
    assert_int_equal(c->log_types, LOG_ERR | LOG_DEBUG);
    assert_string_equal(c->log_timestamp_format, "%Y-%m-%d %H:%M:%S");
    conf_free(c);

    c = load_ok("log_dest none\nlog_type none\n");
    assert_int_equal(c->log_dests, LOGD_NONE);
    assert_int_equal(c->log_types, 0);
    conf_free(c);

    c = load_ok("log_dest stderr\nlog_dest file /var/log/my mqttd.log\n"
                "log_type all\nlog_type none\nlog_type notice\n"
                "log_type subscribe\nlog_type unsubscribe\nlog_type "
                "websockets\nlog_type warning\nlog_type information\n");
    assert_int_equal(c->log_dests, LOGD_STDERR | LOGD_FILE);
    assert_string_equal(c->log_file, "/var/log/my mqttd.log");
    assert_int_equal(c->log_types, LOG_NOTICE | LOG_SUBSCRIBE |
                                       LOG_UNSUBSCRIBE | LOG_WEBSOCKETS |
                                       LOG_WARNING | LOG_INFO);
    conf_free(c);

    /* "none" then more destinations: none resets, later lines add */
    c = load_ok("log_dest none\nlog_dest stdout\n");
    assert_int_equal(c->log_dests, LOGD_STDOUT);
    conf_free(c);
}

static void test_strings(void **state)
{
    struct conf *c;

    (void)state;
    c = load_ok("user   some user  \nuser mqtt\npid_file /run/a b.pid\n"
                "persistence_location /var/lib/mqttd/\n"
                "persistence_file my.db\nauto_id_prefix  p  q\n");
    assert_string_equal(c->user, "mqtt");
    assert_string_equal(c->pid_file, "/run/a b.pid");
    assert_string_equal(c->persistence_location, "/var/lib/mqttd/");
    assert_string_equal(c->persistence_file, "my.db");
    assert_string_equal(c->sec.auto_id_prefix, "p  q");
    conf_free(c);
}

/* ---- fixtures and files ------------------------------------------------- */

static void test_fixture_tls_guide(void **state)
{
    char path[PATH_MAX];
    FILE *f;
    char buf[8192];
    size_t n;
    struct errs e;
    struct conf *c;
    const struct conf_listener *l;

    (void)state;
    f = fopen(fixture(path, sizeof(path), "tls-guide.conf"), "r");
    if (f == NULL)
        fail_msg("cannot open fixture %s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    memset(&e, 0, sizeof(e));
    c = conf_load_buf(path, buf, n, false, capture, &e);
    if (c == NULL)
        fail_msg("%s", e.text);
    assert_int_equal(c->nlisteners, 2);
    l = &c->listeners[0];
    assert_int_equal(l->port, 8883);
    assert_true(l->tls_enabled);
    assert_string_equal(l->tls.cafile, "/etc/mosquitto/ca_certificates/ca.crt");
    assert_string_equal(l->tls.certfile, "/etc/mosquitto/certs/server.crt");
    assert_string_equal(l->tls.keyfile, "/etc/mosquitto/certs/server.key");
    assert_int_equal(l->tls.cert_mode, CONF_CERT_REQUIRED);
    assert_true(l->tls.use_identity_as_username);
    assert_string_equal(l->tls.src, path);
    assert_int_equal(l->tls.line, 9);
    assert_false(c->listeners[1].tls_enabled);
    assert_false(conf_effective_anonymous(c, &c->sec));
    assert_string_equal(c->sec.password_file, "/etc/mosquitto/passwd");
    conf_free(c);

    /* conf_load checks the files: none of them exist here */
    memset(&e, 0, sizeof(e));
    assert_null(conf_load(path, capture, &e));
    assert_int_equal(e.n, 4);
    snprintf(buf, sizeof(buf),
             "%s:9: cannot read certfile '/etc/mosquitto/certs/server.crt': "
             "No such file or directory\n",
             path);
    assert_non_null(strstr(e.text, buf));
}

static void test_fixture_full(void **state)
{
    char path[PATH_MAX];
    struct errs e;
    struct conf *c;
    FILE *f;
    char buf[16384];
    size_t n;
    const struct conf_listener *l;

    (void)state;
    f = fopen(fixture(path, sizeof(path), "full.conf"), "r");
    if (f == NULL)
        fail_msg("cannot open fixture %s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    memset(&e, 0, sizeof(e));
    c = conf_load_buf("full.conf", buf, n, false, capture, &e);
    if (c == NULL)
        fail_msg("%s", e.text);
    assert_true(c->per_listener_settings);
    assert_string_equal(c->user, "broker user");
    assert_string_equal(c->pid_file, "/run/mqttd/mqttd.pid");
    assert_int_equal(c->sys_interval, 0);
    assert_int_equal(c->max_keepalive, 300);
    assert_int_equal(c->max_packet_size, 1048576);
    assert_int_equal(c->message_size_limit, 65536);
    assert_int_equal(c->max_inflight_messages, 10);
    assert_int_equal(c->max_inflight_bytes, 100000);
    assert_int_equal(c->max_queued_messages, 500);
    assert_int_equal(c->max_queued_bytes, 2000000);
    assert_true(c->queue_qos0_messages);
    assert_false(c->retain_available);
    assert_false(c->set_tcp_nodelay);
    assert_true(c->upgrade_outgoing_qos);
    assert_false(c->check_retain_source);
    assert_int_equal(c->max_subscriptions_per_client, 50);
    assert_int_equal(c->max_retained_messages, 1000);
    assert_int_equal(c->max_retained_bytes, 1000000);
    assert_int_equal(c->memory_limit, 536870912);
    assert_int_equal(c->connect_timeout, 5);
    assert_int_equal(c->tls_reload_interval, 3600);
    assert_int_equal(c->tls_expiry_warning_days, 14);
    assert_int_equal(c->tls_handshake_timeout, 7);
    assert_int_equal(c->max_receive_maximum, 100);
    assert_int_equal(c->persistent_client_expiration, 14 * 86400);
    assert_int_equal(c->log_dests, LOGD_SYSLOG | LOGD_FILE);
    assert_string_equal(c->log_file, "/var/log/mqttd/mqttd log.txt");
    assert_int_equal(c->log_types, LOG_ERR | LOG_WARNING);
    assert_false(c->log_timestamp);
    assert_string_equal(c->log_timestamp_format, "%Y-%m-%dT%H:%M:%S");
    assert_true(c->log_json);
    assert_false(c->connection_messages);
    assert_true(c->persistence);
    assert_string_equal(c->persistence_location, "/var/lib/mqttd/");
    assert_string_equal(c->persistence_file, "data.db");
    assert_int_equal(c->autosave_interval, 60);
    assert_true(c->autosave_on_changes);
    assert_int_equal(c->persistence_sync, 0);

    assert_int_equal(c->nlisteners, 3);
    l = c->listeners;
    assert_string_equal(l[0].address, "::1");
    assert_int_equal(l[0].max_connections, 100);
    assert_int_equal(l[0].max_qos, 1);
    assert_int_equal(l[0].max_topic_alias, 5);
    assert_false(conf_effective_anonymous(c, &l[0].sec));
    assert_string_equal(l[0].sec.password_file, "/etc/mqttd/passwd");
    assert_false(l[0].sec.allow_zero_length_clientid);
    assert_string_equal(l[0].sec.auto_id_prefix, "gen-");

    assert_string_equal(l[1].address, "broker.example.com");
    assert_int_equal(l[1].socket_domain, AF_INET6);
    assert_true(l[1].tls_enabled);
    assert_string_equal(l[1].tls.crlfile, "/etc/mqttd/crl.pem");
    assert_string_equal(l[1].tls.dhparamfile, "/etc/mqttd/dh.pem");
    assert_string_equal(l[1].tls.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_string_equal(l[1].tls.ciphers_tls13, "TLS_AES_256_GCM_SHA384");
    assert_string_equal(l[1].tls.tls_groups, "X25519:P-256");
    assert_int_equal(l[1].tls.min_version, TLS1_3_VERSION);
    assert_int_equal(l[1].tls.cert_mode, CONF_CERT_OPTIONAL);
    assert_true(l[1].tls.use_subject_as_username);
    assert_true(conf_effective_anonymous(c, &l[1].sec));
    assert_string_equal(l[1].sec.acl_file, "/etc/mqttd/acl");
    assert_true(l[1].sec.allow_zero_length_clientid);
    assert_int_equal(l[1].max_qos, 2);

    assert_string_equal(l[2].unix_path, "/run/mqttd/mqttd.sock");
    assert_false(conf_effective_anonymous(c, &l[2].sec));
    conf_free(c);
}

/* Mosquitto's own commented example parses with no error. */
static void test_mosquitto_example(void **state)
{
    static const char *const plain =
        "/usr/share/doc/mosquitto/examples/mosquitto.conf";
    static const char *const gz =
        "/usr/share/doc/mosquitto/examples/mosquitto.conf.gz";
    char path[PATH_MAX], cmd[PATH_MAX * 2 + 32];
    struct errs e;
    struct conf *c;

    (void)state;
    if (access(plain, R_OK) == 0) {
        snprintf(path, sizeof(path), "%s", plain);
    } else if (access(gz, R_OK) == 0) {
        tpath(path, sizeof(path), "mosquitto-example.conf");
        snprintf(cmd, sizeof(cmd), "zcat '%s' > '%s'", gz, path);
        assert_int_equal(system(cmd), 0);
    } else {
        skip();
    }
    memset(&e, 0, sizeof(e));
    c = conf_load(path, capture, &e);
    if (c == NULL)
        fail_msg("%s", e.text);
    assert_int_equal(e.n, 0);
    check_global_defaults(c);
    check_implicit(c, 1883);
    conf_free(c);
}

static void test_check_files(void **state)
{
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX], pw[PATH_MAX];
    char text[6 * PATH_MAX + 256], want[2 * PATH_MAX + 200];
    struct errs e;
    struct conf *c;

    (void)state;
    write_file(tpath(cert, sizeof(cert), "cert.pem"), "x\n");
    write_file(tpath(key, sizeof(key), "key.pem"), "x\n");
    write_file(tpath(ca, sizeof(ca), "ca.pem"), "x\n");
    write_file(tpath(pw, sizeof(pw), "passwd"), "u:x\n");
    snprintf(text, sizeof(text),
             "password_file %s\nlistener 8883\ncertfile %s\nkeyfile %s\n"
             "cafile %s\ncapath %s\nrequire_certificate true\n",
             pw, cert, key, ca, tmpdir);
    memset(&e, 0, sizeof(e));
    c = conf_load_buf("f.conf", text, strlen(text), true, capture, &e);
    if (c == NULL)
        fail_msg("%s", e.text);
    conf_free(c);

    /* missing files, a directory as a file, a file as capath */
    snprintf(text, sizeof(text),
             "listener 8883\ncertfile %s/missing.pem\nkeyfile %s\n"
             "cafile %s\ncapath %s\nrequire_certificate true\n"
             "acl_file %s/nope\n",
             tmpdir, tmpdir, ca, ca, tmpdir);
    memset(&e, 0, sizeof(e));
    assert_null(conf_load_buf("f.conf", text, strlen(text), true, capture, &e));
    assert_int_equal(e.n, 4);
    snprintf(want, sizeof(want),
             "f.conf:2: cannot read certfile '%s/missing.pem': No such file "
             "or directory\n",
             tmpdir);
    assert_non_null(strstr(e.text, want));
    snprintf(want, sizeof(want),
             "f.conf:3: cannot read keyfile '%s': Is a directory\n", tmpdir);
    assert_non_null(strstr(e.text, want));
    snprintf(want, sizeof(want),
             "f.conf:5: cannot read capath '%s': Not a directory\n", ca);
    assert_non_null(strstr(e.text, want));
    snprintf(want, sizeof(want),
             "f.conf:7: cannot read acl_file '%s/nope': No such file or "
             "directory\n",
             tmpdir);
    assert_non_null(strstr(e.text, want));

    /* the same text with check_files false is fine */
    c = conf_load_buf("f.conf", text, strlen(text), false, capture, &e);
    assert_non_null(c);
    conf_free(c);

    /* conf_load on a missing file and on a directory */
    memset(&e, 0, sizeof(e));
    assert_null(conf_load("/nonexistent/mqttd.conf", capture, &e));
    assert_string_equal(e.text, "/nonexistent/mqttd.conf: cannot read "
                                "configuration file: No such file or "
                                "directory\n");
    memset(&e, 0, sizeof(e));
    assert_null(conf_load(tmpdir, capture, &e));
    assert_non_null(strstr(e.text, "cannot read configuration file: Is a "
                                   "directory"));
}

static void test_include_dir(void **state)
{
    char dir[PATH_MAX], p[PATH_MAX + 32], main_path[PATH_MAX];
    char text[PATH_MAX + 64], want[5 * PATH_MAX + 512];
    struct errs e;
    struct conf *c;

    (void)state;
    tpath(dir, sizeof(dir), "conf.d");
    assert_int_equal(mkdir(dir, 0700), 0);
    /* Mosquitto's order: 00, 01, A, a, B, b */
    snprintf(p, sizeof(p), "%s/b.conf", dir);
    write_file(p, "listener 1006\n");
    snprintf(p, sizeof(p), "%s/A.conf", dir);
    write_file(p, "listener 1003\n");
    snprintf(p, sizeof(p), "%s/01.conf", dir);
    write_file(p, "listener 1002\n");
    snprintf(p, sizeof(p), "%s/a.conf", dir);
    write_file(p, "listener 1004\n");
    snprintf(p, sizeof(p), "%s/B.conf", dir);
    write_file(p, "# comment\nlistener 1005\n");
    snprintf(p, sizeof(p), "%s/00.conf", dir);
    write_file(p, "listener 1001\n");
    snprintf(p, sizeof(p), "%s/ignored.txt", dir);
    write_file(p, "this is not parsed\n");
    snprintf(p, sizeof(p), "%s/sub.conf", dir);
    assert_int_equal(mkdir(p, 0700), 0); /* a directory: skipped */

    snprintf(text, sizeof(text),
             "listener 1000\ninclude_dir %s\n"
             "listener 1007\n",
             dir);
    tpath(main_path, sizeof(main_path), "main.conf");
    write_file(main_path, text);
    memset(&e, 0, sizeof(e));
    c = conf_load(main_path, capture, &e);
    if (c == NULL)
        fail_msg("%s", e.text);
    assert_int_equal(c->nlisteners, 8);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(c->listeners[i].port, 1000 + i);
    snprintf(p, sizeof(p), "%s/B.conf", dir);
    assert_string_equal(c->listeners[5].src, p);
    assert_int_equal(c->listeners[5].line, 2);
    assert_string_equal(c->listeners[7].src, main_path);
    assert_int_equal(c->listeners[7].line, 3);
    conf_free(c);

    /* errors name the included file and its line; parsing continues */
    snprintf(p, sizeof(p), "%s/a.conf", dir);
    write_file(p, "\nmax_qos 9\ninclude_dir /tmp\nlistener 1004\n");
    snprintf(p, sizeof(p), "%s/b.conf", dir);
    write_file(p, "listener 1001\n");
    memset(&e, 0, sizeof(e));
    assert_null(conf_load(main_path, capture, &e));
    snprintf(want, sizeof(want),
             "%s/a.conf:2: value 9 for 'max_qos' is too large: the range is "
             "0 to 2\n"
             "%s/a.conf:3: include_dir is only allowed in the main "
             "configuration file\n"
             "%s/b.conf:1: duplicate listener: the same port and address as "
             "the listener at %s/00.conf:1\n",
             dir, dir, dir, dir);
    assert_string_equal(e.text, want);

    /* include_dir from a buffer is followed on disk too */
    snprintf(p, sizeof(p), "%s/b.conf", dir);
    write_file(p, "listener 1006\n");
    snprintf(p, sizeof(p), "%s/a.conf", dir);
    write_file(p, "listener 1004\n");
    snprintf(text, sizeof(text), "include_dir %s\n", dir);
    c = load_ok(text);
    assert_int_equal(c->nlisteners, 6);
    conf_free(c);

    /* the main file inside its own include_dir */
    snprintf(p, sizeof(p), "%s/main.conf", dir);
    snprintf(text, sizeof(text), "include_dir %s\n", dir);
    write_file(p, text);
    memset(&e, 0, sizeof(e));
    assert_null(conf_load(p, capture, &e));
    snprintf(want, sizeof(want),
             "%s:1: include_dir '%s' contains the main configuration file\n", p,
             dir);
    assert_string_equal(e.text, want);
}

/* tls_ocsp_*: values, defaults and FILE:LINE errors. */
static void test_tls_ocsp(void **state)
{
    struct errs e;
    struct conf *c;

    (void)state;
    c = load_ok("listener 8883\ncertfile s.crt\nkeyfile s.key\ncafile ca\n"
                "require_certificate true\ntls_ocsp_check soft\n"
                "tls_ocsp_responder http://127.0.0.1:2560/\n"
                "tls_ocsp_cache_seconds 60\ntls_ocsp_stapling true\n"
                "tls_ocsp_stapling_file /x.der\n"
                "listener 8884\ncertfile s.crt\nkeyfile s.key\n");
    assert_int_equal(c->listeners[0].tls.ocsp_check, CONF_OCSP_SOFT);
    assert_string_equal(c->listeners[0].tls.ocsp_responder,
                        "http://127.0.0.1:2560/");
    assert_int_equal(c->listeners[0].tls.ocsp_cache_seconds, 60);
    assert_true(c->listeners[0].tls.ocsp_stapling);
    assert_string_equal(c->listeners[0].tls.ocsp_stapling_file, "/x.der");
    assert_int_equal(c->listeners[1].tls.ocsp_check, CONF_OCSP_OFF);
    assert_int_equal(c->listeners[1].tls.ocsp_cache_seconds, 3600);
    assert_false(c->listeners[1].tls.ocsp_stapling);
    conf_free(c);

    c = load("listener 8883\ncertfile s.crt\nkeyfile s.key\n"
             "tls_ocsp_check hard\ntls_ocsp_check maybe\n"
             "tls_ocsp_responder https://ca/\ntls_ocsp_cache_seconds 0\n"
             "listener 1883\ntls_ocsp_stapling true\n",
             &e);
    assert_null(c);
    assert_non_null(strstr(e.text, "t.conf:4: tls_ocsp_check on listener"));
    assert_non_null(strstr(e.text, "t.conf:5: invalid tls_ocsp_check 'maybe'"));
    assert_non_null(strstr(e.text, "t.conf:6: invalid tls_ocsp_responder"));
    assert_non_null(strstr(e.text, "t.conf:7: value 0 for "
                                   "'tls_ocsp_cache_seconds'"));
    assert_non_null(strstr(e.text, "t.conf:9: OCSP needs TLS"));
}

static void test_err_stderr(void **state)
{
    FILE *tmp = tmpfile();
    int saved;
    char buf[256];
    size_t n;

    (void)state;
    assert_non_null(tmp);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    conf_err_stderr(NULL, "a.conf", 3, "bad thing");
    conf_err_stderr(NULL, "b.conf", 0, "whole file");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    n = fread(buf, 1, sizeof(buf) - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    assert_string_equal(buf, "a.conf:3: bad thing\nb.conf: whole file\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_default),
        cmocka_unit_test(test_empty_file_is_local_only),
        cmocka_unit_test(test_scalar_table),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_proxy_listener),
        cmocka_unit_test(test_warning_table),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_many_errors_all_reported),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_bad_bytes_and_long_lines),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_websockets),
        cmocka_unit_test(test_both_scope_defaults),
        cmocka_unit_test(test_default_listener),
        cmocka_unit_test(test_tls_listener_fields),
        cmocka_unit_test(test_per_listener_settings),
        cmocka_unit_test(test_logging),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_fixture_tls_guide),
        cmocka_unit_test(test_fixture_full),
        cmocka_unit_test(test_mosquitto_example),
        cmocka_unit_test(test_check_files),
        cmocka_unit_test(test_include_dir),
        cmocka_unit_test(test_err_stderr),
        cmocka_unit_test(test_tls_ocsp),
        cmocka_unit_test(test_cluster_keys),
    };

    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
