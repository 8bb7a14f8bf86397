/*
 * test_cidr.c - unit tests for cidr.c (http_allow_from): the accepted and
 * refused spellings, host bits cleared, matching of IPv4, IPv6 and
 * IPv4-mapped IPv6 peers at and around every prefix boundary, and the
 * loopback test of listener addresses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cidr.h"

static struct sockaddr_storage peer(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static bool in(const char *range, const char *ip)
{
    struct cidr c;
    struct sockaddr_storage ss = peer(ip);

    assert_int_equal(cidr_parse(range, &c), 0);
    return cidr_match(&c, (const struct sockaddr *)&ss);
}

static void test_parse(void **state)
{
    static const char *const good[] = {
        "10.0.0.0/8", "10.1.2.3", "0.0.0.0/0",      "192.168.1.255/32",   "::1",
        "fd00::/8",   "::/0",     "2001:db8::/128", "::ffff:10.0.0.0/104"};
    static const char *const bad[] = {"",
                                      "/8",
                                      "10.0.0.0/",
                                      "10.0.0.0/33",
                                      "10.0.0.0/-1",
                                      "10.0.0.0/+8",
                                      "10.0.0/8",
                                      "host.example",
                                      "10.0.0.0/8x",
                                      "::1/129",
                                      "10.0.0.0 /8",
                                      "1.2.3.4.5",
                                      "10.0.0.0/08a"};
    struct cidr c;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(cidr_parse(good[i], &c), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&c, 0xaa, sizeof(c));
        assert_int_equal(cidr_parse(bad[i], &c), -1);
        assert_int_equal(c.prefix, 0xaaaaaaaau); /* untouched */
    }
    /* host bits are cleared */
    assert_int_equal(cidr_parse("10.1.2.3/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(c.addr[0], 10);
    assert_int_equal(c.addr[1], 0);
    assert_int_equal(c.addr[3], 0);
    assert_int_equal(cidr_parse("10.255.0.0/9", &c), 0);
    assert_int_equal(c.addr[1], 0x80);
}

static void test_match(void **state)
{
    (void)state;
    assert_true(in("10.0.0.0/8", "10.255.255.255"));
    assert_false(in("10.0.0.0/8", "11.0.0.0"));
    assert_false(in("10.0.0.0/8", "9.255.255.255"));
    assert_true(in("192.168.1.128/25", "192.168.1.128"));
    assert_false(in("192.168.1.128/25", "192.168.1.127"));
    assert_true(in("1.2.3.4", "1.2.3.4"));
    assert_false(in("1.2.3.4", "1.2.3.5"));
    assert_true(in("0.0.0.0/0", "203.0.113.7"));
    assert_false(in("0.0.0.0/0", "::1")); /* families differ */
    assert_true(in("fd00::/8", "fdff::1"));
    assert_false(in("fd00::/8", "fe00::1"));
    assert_true(in("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(in("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(in("::/0", "::1"));
    /* a dual-stack socket's IPv4-mapped peer matches IPv4 ranges */
    assert_true(in("10.0.0.0/8", "::ffff:10.9.8.7"));
    assert_false(in("10.0.0.0/8", "::ffff:11.9.8.7"));
    assert_false(in("10.0.0.0/8", "::10.9.8.7"));
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(cidr_is_loopback("127.0.0.1"));
    assert_true(cidr_is_loopback("127.9.9.9"));
    assert_true(cidr_is_loopback("::1"));
    assert_true(cidr_is_loopback("::ffff:127.0.0.1"));
    assert_true(cidr_is_loopback("localhost"));
    assert_false(cidr_is_loopback(NULL));
    assert_false(cidr_is_loopback("0.0.0.0"));
    assert_false(cidr_is_loopback("::"));
    assert_false(cidr_is_loopback("10.0.0.1"));
    assert_false(cidr_is_loopback("::2"));
    assert_false(cidr_is_loopback("example.org"));
    assert_false(cidr_is_loopback("localhost.example.org"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_loopback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
