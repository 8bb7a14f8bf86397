/*
 * test_resolve.c - unit tests for resolve.c on a real libev loop: an IP
 * literal (v4, v6) answered from the loop and never from inside
 * resolve_start, a name from /etc/hosts (localhost) through c-ares, an
 * empty name, and a cancelled lookup whose callback never runs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "resolve.h"

struct got {
    int calls;
    size_t n;
    struct resolve_addr a[RESOLVE_MAX_ADDRS];
    char why[200];
};

static void got_cb(void *ud, const struct resolve_addr *a, size_t n,
                   const char *why)
{
    struct got *g = ud;

    g->calls++;
    g->n = n;
    memcpy(g->a, a, n * sizeof(*a));
    snprintf(g->why, sizeof(g->why), "%s", why ? why : "");
}

/* run: the loop until g was called (at most 5 s of loop time). */
static void run(struct ev_loop *loop, struct got *g)
{
    ev_tstamp t0 = ev_time();

    while (g->calls == 0 && ev_time() - t0 < 5.0)
        ev_run(loop, EVRUN_ONCE);
}

static uint16_t port_of(const struct resolve_addr *a)
{
    if (a->family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

static void test_literal_v4(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct got g = {0};

    (void)state;
    (void)resolve_start(loop, "127.0.0.1", "2560", got_cb, &g);
    assert_int_equal(g.calls, 0); /* never from inside resolve_start */
    run(loop, &g);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.a[0].family, AF_INET);
    assert_int_equal(port_of(&g.a[0]), 2560);
    ev_loop_destroy(loop);
}

static void test_literal_v6(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct got g = {0};

    (void)state;
    (void)resolve_start(loop, "::1", "80", got_cb, &g);
    run(loop, &g);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.a[0].family, AF_INET6);
    assert_int_equal(port_of(&g.a[0]), 80);
    ev_loop_destroy(loop);
}

static void test_localhost_by_name(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct got g = {0};
    bool v4 = false;

    (void)state;
    (void)resolve_start(loop, "localhost", "1883", got_cb, &g);
    assert_int_equal(g.calls, 0);
    run(loop, &g);
    assert_int_equal(g.calls, 1);
    assert_true(g.n >= 1);
    for (size_t i = 0; i < g.n; i++) {
        assert_int_equal(port_of(&g.a[i]), 1883);
        if (g.a[i].family == AF_INET &&
            ((const struct sockaddr_in *)&g.a[i].sa)->sin_addr.s_addr ==
                htonl(INADDR_LOOPBACK))
            v4 = true;
    }
    assert_true(v4); /* /etc/hosts: 127.0.0.1 localhost */
    ev_loop_destroy(loop);
}

static void test_empty_name(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct got g = {0};

    (void)state;
    (void)resolve_start(loop, "", "80", got_cb, &g);
    run(loop, &g);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.n, 0);
    assert_string_equal(g.why, "empty host name");
    ev_loop_destroy(loop);
}

static void test_cancel(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct got g = {0};
    struct resolve *q;

    (void)state;
    q = resolve_start(loop, "localhost", "80", got_cb, &g);
    resolve_cancel(q);
    q = resolve_start(loop, "127.0.0.1", "80", got_cb, &g);
    resolve_cancel(q);
    resolve_cancel(NULL);
    ev_run(loop, EVRUN_NOWAIT);
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(g.calls, 0);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_v4),
        cmocka_unit_test(test_literal_v6),
        cmocka_unit_test(test_localhost_by_name),
        cmocka_unit_test(test_empty_name),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
