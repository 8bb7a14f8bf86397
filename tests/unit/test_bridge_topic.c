/*
 * test_bridge_topic.c - unit tests for bridge_topic.c against the topic
 * remapping table of mosquitto.conf(5) ("Configuring Bridges", topic):
 * which pattern/prefix combinations are valid, and the full local and
 * remote topics they give, in both directions. Plus the conf parser's
 * use of it (a "topic" line with each row).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge_topic.h"
#include "conf.h"

struct row {
    const char *pattern, *lp, *rp;
    bool valid;
    const char *full_local, *full_remote;
};

/* The table of mosquitto.conf(5), row by row ("" is the place marker). */
static const struct row table[] = {
    {"pattern", "L/", "R/", true, "L/pattern", "R/pattern"},
    {"pattern", "L/", "", true, "L/pattern", "pattern"},
    {"pattern", "", "R/", true, "pattern", "R/pattern"},
    {"pattern", "", "", true, "pattern", "pattern"},
    {"", "local", "remote", true, "local", "remote"},
    {"", "local", "", false, NULL, NULL},
    {"", "", "remote", false, NULL, NULL},
    {"", "", "", false, NULL, NULL},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct row *r = &table[i];
        const char *why = bridge_topic_check(r->pattern, r->lp, r->rp);
        char *lf, *rf, out[256];
        long n;

        if (!r->valid) {
            assert_non_null(why);
            continue;
        }
        assert_null(why);
        lf = bridge_topic_join(r->lp, r->pattern);
        rf = bridge_topic_join(r->rp, r->pattern);
        assert_string_equal(lf, r->full_local);
        assert_string_equal(rf, r->full_remote);
        /* out: a message on the full local topic reaches the remote on
         * the full remote topic, and in: the other way */
        n = bridge_topic_remap(lf, strlen(lf), r->lp, r->rp, out, sizeof(out));
        assert_int_equal(n, (long)strlen(r->full_remote));
        assert_string_equal(out, r->full_remote);
        n = bridge_topic_remap(rf, strlen(rf), r->rp, r->lp, out, sizeof(out));
        assert_int_equal(n, (long)strlen(r->full_local));
        assert_string_equal(out, r->full_local);
        free(lf);
        free(rf);
    }
}

static void test_remap_wildcards(void **state)
{
    char out[64];
    long n;

    (void)state;
    /* "topic # both 2 local/topic/ remote/topic/" from the man page */
    n = bridge_topic_remap("local/topic/a/b", 15, "local/topic/",
                           "remote/topic/", out, sizeof(out));
    assert_int_equal(n, 16);
    assert_string_equal(out, "remote/topic/a/b");
    /* "topic clients/total in 0 test/mosquitto/org/ $SYS/broker/" */
    n = bridge_topic_remap("$SYS/broker/clients/total", 25, "$SYS/broker/",
                           "test/mosquitto/org/", out, sizeof(out));
    assert_string_equal(out, "test/mosquitto/org/clients/total");
    assert_int_equal(n, 32);
    /* a topic outside the prefix is not mapped */
    assert_int_equal(
        bridge_topic_remap("other/a", 7, "local/", "r/", out, sizeof(out)), -1);
    /* too small an output buffer */
    assert_int_equal(
        bridge_topic_remap("local/a", 7, "local/", "rrrrrr/", out, 8), -1);
    /* wildcards in prefixes are refused */
    assert_non_null(bridge_topic_check("a", "x/+/", ""));
    assert_non_null(bridge_topic_check("a", "", "#/"));
}

static int nerr;
static char lasterr[512];

static void collect(void *arg, const char *file, int line, const char *msg)
{
    (void)arg;
    (void)file;
    if (strncmp(msg, CONF_WARNING_PREFIX, strlen(CONF_WARNING_PREFIX)) == 0)
        return;
    nerr++;
    snprintf(lasterr + strlen(lasterr), sizeof(lasterr) - strlen(lasterr),
             "%d: %s\n", line, msg);
}

static struct conf *load(const char *text)
{
    nerr = 0;
    lasterr[0] = '\0';
    return conf_load_buf("t.conf", text, strlen(text), false, collect, NULL);
}

static void test_conf_rows(void **state)
{
    struct conf *c;

    (void)state;
    c = load("connection a\naddress 127.0.0.1:1884\n"
             "topic pattern both 1 L/ R/\n"
             "topic pattern out 0 L/ \"\"\n"
             "topic pattern in 2 \"\" R/\n"
             "topic \"\" both 0 local remote\n"
             "topic sensors/#\n");
    assert_non_null(c);
    assert_int_equal(c->nbridges, 1);
    assert_int_equal(c->bridges[0].ntopics, 5);
    assert_string_equal(c->bridges[0].topics[0].local_prefix, "L/");
    assert_string_equal(c->bridges[0].topics[0].remote_prefix, "R/");
    assert_int_equal(c->bridges[0].topics[0].dir, CONF_BRIDGE_BOTH);
    assert_int_equal(c->bridges[0].topics[0].qos, 1);
    assert_string_equal(c->bridges[0].topics[1].remote_prefix, "");
    assert_int_equal(c->bridges[0].topics[2].dir, CONF_BRIDGE_IN);
    assert_string_equal(c->bridges[0].topics[3].pattern, "");
    assert_int_equal(c->bridges[0].topics[4].dir, CONF_BRIDGE_OUT);
    assert_int_equal(c->bridges[0].topics[4].qos, 0);
    assert_int_equal(c->bridges[0].addrs[0].port, 1884);
    conf_free(c);

    /* the invalid rows are FILE:LINE errors */
    assert_null(
        load("connection a\naddress h\ntopic \"\" both 0 local \"\"\n"));
    assert_non_null(strstr(lasterr, "3: invalid bridge topic"));
    assert_null(load("connection a\naddress h\ntopic \"\" both 0 \"\" r\n"));
    assert_null(load("connection a\naddress h\ntopic \"\" both 0 \"\" \"\"\n"));
    assert_null(load("connection a\naddress h\ntopic a/# sideways\n"));
    assert_non_null(strstr(lasterr, "invalid topic direction"));
    assert_null(load("connection a\naddress h\ntopic a/# in 3\n"));
}

static void test_conf_keys(void **state)
{
    struct conf *c;
    const struct conf_bridge *b;

    (void)state;
    c = load("connection gw\naddress a.example:8883 b.example\n"
             "round_robin true\ntopic x in\n"
             "bridge_protocol_version mqttv50\ncleansession true\n"
             "remote_clientid gw1\nremote_username u\nremote_password "
             "secret\nrestart_timeout 2 10\nstart_type once\n"
             "keepalive_interval 5\nbridge_max_packet_size 1000\n"
             "bridge_outgoing_retain false\ntry_private false\n"
             "notifications false\nbridge_tls_version tlsv1.3\n"
             "bridge_cafile /ca.pem\n");
    assert_non_null(c);
    b = &c->bridges[0];
    assert_int_equal(b->naddrs, 2);
    assert_string_equal(b->addrs[0].host, "a.example");
    assert_int_equal(b->addrs[0].port, 8883);
    assert_int_equal(b->addrs[1].port, 1883);
    assert_true(b->round_robin);
    assert_int_equal(b->protocol_version, 5);
    assert_true(b->cleansession);
    assert_true(b->local_cleansession);
    assert_string_equal(b->remote_clientid, "gw1");
    assert_string_equal(b->local_clientid, "local.gw1");
    assert_string_equal(b->notification_topic,
                        "$SYS/broker/connection/gw1/state");
    assert_int_equal(b->restart_base, 2);
    assert_int_equal(b->restart_cap, 10);
    assert_int_equal(b->start_type, CONF_BRIDGE_ONCE);
    assert_int_equal(b->keepalive, 5);
    assert_int_equal(b->max_packet_size, 1000);
    assert_false(b->outgoing_retain);
    assert_false(b->try_private);
    assert_false(b->notifications);
    assert_true(b->tls);
    conf_free(c);

    /* defaults */
    c = load("connection d\naddress h\ntopic x\n");
    assert_non_null(c);
    b = &c->bridges[0];
    assert_int_equal(b->protocol_version, 4);
    assert_false(b->cleansession);
    assert_true(b->try_private);
    assert_true(b->notifications);
    assert_int_equal(b->restart_base, 5);
    assert_int_equal(b->restart_cap, 30);
    assert_int_equal(b->keepalive, 60);
    assert_int_equal(b->threshold, 10);
    assert_int_equal(b->idle_timeout, 60);
    conf_free(c);

    /* errors naming the key, at the right line */
    assert_null(load("address h\n"));
    assert_non_null(strstr(lasterr, "1: 'address' is a bridge key"));
    assert_null(load("connection a\naddress h\ntopic x\nbridge_psk 00\n"));
    assert_non_null(strstr(lasterr, "4: 'bridge_psk' is not supported"));
    assert_null(load("connection a\naddress h\ntopic x\n"
                     "bridge_bind_address 1.2.3.4\n"));
    assert_non_null(strstr(lasterr, "'bridge_bind_address'"));
    assert_null(load("connection a\ntopic x\n"));
    assert_non_null(strstr(lasterr, "no address"));
    assert_null(load("connection a\naddress h\n"));
    assert_non_null(strstr(lasterr, "no topic"));
    assert_null(
        load("connection a\naddress h\ntopic x\nkeepalive_interval 4\n"));
    assert_null(
        load("connection a\naddress h\ntopic x\nrestart_timeout 9 3\n"));
    assert_null(load("connection a\naddress h:0\ntopic x\n"));
    assert_null(load("connection a\naddress h\ntopic x\nconnection a\n"
                     "address h\ntopic x\n"));
    assert_non_null(strstr(lasterr, "duplicate bridge name"));
    assert_null(load("connection a\naddress h\ntopic x\n"
                     "bridge_protocol_version mqttv6\n"));
    /* a password is never echoed in a message */
    assert_null(load("connection a\naddress h\ntopic x\n"
                     "remote_password hunter2 extra\n"));
    assert_null(strstr(lasterr, "hunter2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_remap_wildcards),
        cmocka_unit_test(test_conf_rows),
        cmocka_unit_test(test_conf_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
