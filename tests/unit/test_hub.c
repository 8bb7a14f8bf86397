/*
 * test_hub.c - unit tests for hub.c: client-id ownership, inbox order and
 * batching on real libev loops (one of them on its own thread), holding
 * back and kicking, backpressure (HUB_RESUME once under the low-water
 * mark), shared-group turns and the summed counters.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "hub.h"
#include "msg.h"
#include "util.h"

/* What one shard's handler saw. */
struct sink {
    struct ev_loop *loop;
    uint32_t *seen; /* payload numbers of HUB_MSG items, in order */
    size_t n, cap;
    size_t resumes;
    size_t hold_at; /* return false once for the item at this index */
    bool held_once;
    size_t stop_at; /* ev_break after this many messages (0: never) */
    bool hold;      /* return false for every message while set */
};

static bool sink_fn(void *ud, struct hub_item *it)
{
    struct sink *s = ud;
    uint32_t v;

    if (it->kind == HUB_RESUME) {
        s->resumes++;
        return true;
    }
    if (s->hold)
        return false;
    if (s->hold_at && s->n == s->hold_at && !s->held_once) {
        s->held_once = true;
        return false;
    }
    memcpy(&v, it->m->payload, sizeof(v));
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->seen = xreallocarray(s->seen, s->cap, sizeof(*s->seen));
    }
    s->seen[s->n++] = v;
    msg_unref(it->m);
    if (s->stop_at && s->n == s->stop_at)
        ev_break(s->loop, EVBREAK_ALL);
    return true;
}

static struct hub_item item(uint32_t v, unsigned from)
{
    struct hub_item it = {.kind = HUB_MSG, .from = (uint8_t)from};

    it.m =
        msg_new("t", 1, NULL, 0, (const uint8_t *)&v, sizeof(v), 0, false, 0);
    return it;
}

static void post_range(struct hub *h, unsigned to, unsigned from, uint32_t a,
                       uint32_t b, bool wait)
{
    struct hub_item *v = xcalloc(b - a, sizeof(*v));

    for (uint32_t i = a; i < b; i++)
        v[i - a] = item(i, from);
    hub_post_batch(h, to, from, v, b - a, wait);
    free(v);
}

static void test_owner(void **state)
{
    struct hub *h = hub_new(4);
    unsigned count[4] = {0};
    char id[32];

    (void)state;
    assert_int_equal(hub_size(h), 4);
    for (int i = 0; i < 4000; i++) {
        unsigned o;
        snprintf(id, sizeof(id), "device-%d", i);
        o = hub_owner(h, id, strlen(id));
        assert_true(o < 4);
        assert_int_equal(o, hub_owner(h, id, strlen(id)));
        assert_int_equal(o, (unsigned)(util_fnv1a(id, strlen(id)) % 4));
        count[o]++;
    }
    for (int i = 0; i < 4; i++) /* roughly even: 1000 each */
        assert_true(count[i] > 800 && count[i] < 1200);
    hub_free(h);
}

/* Items arrive in posting order; a held item is offered again first. */
static void test_order_hold_and_kick(void **state)
{
    struct hub *h = hub_new(2);
    struct sink s1 = {.loop = ev_loop_new(EVFLAG_AUTO), .hold_at = 5};

    (void)state;
    hub_bind(h, 1, s1.loop, sink_fn, &s1);
    post_range(h, 1, 0, 0, 10, false);
    post_range(h, 1, 0, 10, 20, false);
    ev_run(s1.loop, EVRUN_NOWAIT);
    assert_int_equal(s1.n, 5); /* held at the 6th */
    assert_int_equal(hub_backlog(h, 1), 15);
    hub_kick(h, 1);
    ev_run(s1.loop, EVRUN_NOWAIT);
    assert_int_equal(s1.n, 20);
    for (uint32_t i = 0; i < 20; i++)
        assert_int_equal(s1.seen[i], i);
    assert_int_equal(hub_backlog(h, 1), 0);
    hub_unbind(h, 1);
    ev_loop_destroy(s1.loop);
    free(s1.seen);
    hub_free(h);
}

/* Over the high-water mark the poster is remembered and resumed once the
 * inbox is under the low-water mark. */
static void test_backpressure_resume(void **state)
{
    struct hub *h = hub_new(2);
    struct sink s0 = {.loop = ev_loop_new(EVFLAG_AUTO)};
    struct sink s1 = {.loop = ev_loop_new(EVFLAG_AUTO)};

    (void)state;
    hub_bind(h, 0, s0.loop, sink_fn, &s0);
    hub_bind(h, 1, s1.loop, sink_fn, &s1);
    post_range(h, 1, 0, 0, HUB_HIWAT + 10, true);
    assert_true(hub_backlog(h, 1) > HUB_HIWAT);
    ev_run(s0.loop, EVRUN_NOWAIT);
    assert_int_equal(s0.resumes, 0);
    ev_run(s1.loop, EVRUN_NOWAIT);
    assert_int_equal(s1.n, HUB_HIWAT + 10);
    ev_run(s0.loop, EVRUN_NOWAIT);
    assert_int_equal(s0.resumes, 1);
    /* without 'wait' nobody is resumed */
    post_range(h, 1, 0, 0, 10, false);
    ev_run(s1.loop, EVRUN_NOWAIT);
    ev_run(s0.loop, EVRUN_NOWAIT);
    assert_int_equal(s0.resumes, 1);
    hub_unbind(h, 0);
    hub_unbind(h, 1);
    ev_loop_destroy(s0.loop);
    ev_loop_destroy(s1.loop);
    free(s0.seen);
    free(s1.seen);
    hub_free(h);
}

static void keep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Connections and resumes are handled even while messages are held for a
 * slow subscriber. */
static void test_control_not_held(void **state)
{
    struct hub *h = hub_new(2);
    struct sink s1 = {.loop = ev_loop_new(EVFLAG_AUTO), .hold = true};
    struct hub_item r = {.kind = HUB_RESUME, .from = 0};

    (void)state;
    hub_bind(h, 1, s1.loop, sink_fn, &s1);
    post_range(h, 1, 0, 0, 10, false);
    ev_run(s1.loop, EVRUN_NOWAIT);
    assert_int_equal(s1.n, 0);
    assert_false(hub_post(h, 1, &r));
    hub_post_batch(h, 1, 0, &r, 1, false);
    ev_run(s1.loop, EVRUN_NOWAIT);
    assert_int_equal(s1.resumes, 2);
    assert_int_equal(s1.n, 0);
    assert_int_equal(hub_backlog(h, 1), 10); /* control items not counted */
    s1.hold = false;
    hub_kick(h, 1);
    ev_run(s1.loop, EVRUN_NOWAIT);
    assert_int_equal(s1.n, 10);
    hub_unbind(h, 1);
    ev_loop_destroy(s1.loop);
    free(s1.seen);
    hub_free(h);
}

static void *run_loop(void *arg)
{
    struct sink *s = arg;

    ev_run(s->loop, 0);
    return NULL;
}

/* A consumer on its own thread: every message arrives once, in order. */
static void test_cross_thread(void **state)
{
    enum { N = 200000, BATCH = 100 };
    struct hub *h = hub_new(2);
    struct sink s1 = {.loop = ev_loop_new(EVFLAG_AUTO), .stop_at = N};
    ev_timer keep; /* keeps the consumer's loop alive until ev_break */
    pthread_t t;

    (void)state;
    hub_bind(h, 1, s1.loop, sink_fn, &s1);
    ev_timer_init(&keep, keep_cb, 3600.0, 0.0);
    ev_timer_start(s1.loop, &keep);
    assert_int_equal(pthread_create(&t, NULL, run_loop, &s1), 0);
    for (uint32_t i = 0; i < N; i += BATCH)
        post_range(h, 1, 0, i, i + BATCH, false);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s1.n, N);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(s1.seen[i], i);
    ev_timer_stop(s1.loop, &keep);
    hub_unbind(h, 1);
    ev_loop_destroy(s1.loop);
    free(s1.seen);
    hub_free(h);
}

/* Posting to an unbound (stopped) shard drops the item, not leaks it. */
static void test_post_after_unbind(void **state)
{
    struct hub *h = hub_new(2);
    struct sink s1 = {.loop = ev_loop_new(EVFLAG_AUTO)};
    struct hub_item it = item(7, 0);

    (void)state;
    hub_bind(h, 1, s1.loop, sink_fn, &s1);
    hub_unbind(h, 1);
    assert_false(hub_post(h, 1, &it));
    post_range(h, 1, 0, 0, 3, false);
    assert_int_equal(hub_backlog(h, 1), 0);
    ev_loop_destroy(s1.loop);
    hub_free(h); /* ASan: no message leaked */
}

static void test_shared_groups(void **state)
{
    struct hub *h = hub_new(3);
    static const char key[] = "$share/g/a/b";
    size_t kl = sizeof(key) - 1;
    unsigned served[3] = {0};

    (void)state;
    /* no members anywhere: the router has no hit, serving is moot */
    assert_true(hub_share_serves(h, 0, 0, hub_share_gen(h), key, kl));
    hub_share_join(h, 0, key, kl);
    hub_share_join(h, 2, key, kl);
    hub_share_join(h, 2, key, kl);
    for (uint32_t spread = 0; spread < 100; spread++) {
        unsigned n = 0;
        for (unsigned i = 0; i < 3; i++) {
            if (hub_share_serves(h, i, spread, hub_share_gen(h), key, kl)) {
                served[i]++;
                n++;
            }
        }
        assert_int_equal(n, 1); /* exactly one thread serves */
    }
    assert_int_equal(served[1], 0); /* no members there */
    assert_int_equal(served[0], 50);
    assert_int_equal(served[2], 50);
    hub_share_leave(h, 0, key, kl);
    for (uint32_t spread = 0; spread < 10; spread++)
        assert_true(hub_share_serves(h, 2, spread, hub_share_gen(h), key, kl));
    hub_free(h);
}

/* A message is judged by the membership of its publish: a member leaving
 * before one thread routes it changes nothing (no second copy). */
static void test_shared_groups_as_published(void **state)
{
    struct hub *h = hub_new(2);
    static const char key[] = "$share/g/x";
    size_t kl = sizeof(key) - 1;
    uint32_t gen;

    (void)state;
    hub_share_join(h, 0, key, kl);
    hub_share_join(h, 1, key, kl);
    gen = hub_share_gen(h); /* published now, spread 0: thread 0 serves */
    assert_true(hub_share_serves(h, 0, 0, gen, key, kl));
    hub_share_leave(h, 0, key, kl); /* thread 0's member leaves */
    assert_false(hub_share_serves(h, 1, 0, gen, key, kl));
    /* a message published after the leave goes to thread 1 */
    assert_true(hub_share_serves(h, 1, 0, hub_share_gen(h), key, kl));
    hub_free(h);
}

static void test_totals_and_counts(void **state)
{
    struct hub *h = hub_new(2);
    struct hub_totals a = {.clients = 3, .subscriptions = 5};
    struct hub_totals b = {.clients = 4, .sessions = 2};
    struct hub_totals sum;
    size_t *lc;

    (void)state;
    a.st.msgs_received = 10;
    b.st.msgs_received = 32;
    hub_totals_put(h, 0, &a);
    hub_totals_put(h, 1, &b);
    hub_totals_sum(h, &sum);
    assert_int_equal(sum.clients, 7);
    assert_int_equal(sum.subscriptions, 5);
    assert_int_equal(sum.sessions, 2);
    assert_int_equal(sum.st.msgs_received, 42);
    lc = hub_listener_counts(h, 3);
    assert_ptr_equal(lc, hub_listener_counts(h, 3)); /* one shared array */
    assert_false(hub_has_subs(h, 1));
    hub_subs_add(h, 1, 2);
    assert_true(hub_has_subs(h, 1));
    hub_subs_add(h, 1, -2);
    assert_false(hub_has_subs(h, 1));
    hub_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_order_hold_and_kick),
        cmocka_unit_test(test_backpressure_resume),
        cmocka_unit_test(test_control_not_held),
        cmocka_unit_test(test_cross_thread),
        cmocka_unit_test(test_post_after_unbind),
        cmocka_unit_test(test_shared_groups),
        cmocka_unit_test(test_shared_groups_as_published),
        cmocka_unit_test(test_totals_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
