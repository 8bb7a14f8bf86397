/*
 * loopstat.c - busy time of an event loop (see loopstat.h).
 */
#include "loopstat.h"

#include <stdlib.h>
#include <time.h>

#include <ev.h>

#include "util.h"

struct loopstat {
    struct ev_loop *loop;
    ev_check wake;   /* first thing after the poll */
    ev_prepare idle; /* last thing before the next poll */
    uint64_t woke_ns;
    uint64_t busy_ns; /* atomic */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wake_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct loopstat *ls = w->data;

    (void)loop;
    (void)revents;
    ls->woke_ns = mono_ns();
}

static void idle_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct loopstat *ls = w->data;

    (void)loop;
    (void)revents;
    if (ls->woke_ns != 0)
        __atomic_add_fetch(&ls->busy_ns, mono_ns() - ls->woke_ns,
                           __ATOMIC_RELAXED);
    ls->woke_ns = 0;
}

struct loopstat *loopstat_new(struct ev_loop *loop)
{
    struct loopstat *ls = xcalloc(1, sizeof(*ls));

    ls->loop = loop;
    ev_check_init(&ls->wake, wake_cb);
    ev_set_priority(&ls->wake, EV_MAXPRI);
    ls->wake.data = ls;
    ev_check_start(loop, &ls->wake);
    ev_unref(loop);
    ev_prepare_init(&ls->idle, idle_cb);
    ev_set_priority(&ls->idle, EV_MINPRI);
    ls->idle.data = ls;
    ev_prepare_start(loop, &ls->idle);
    ev_unref(loop);
    return ls;
}

uint64_t loopstat_busy_ns(const struct loopstat *ls)
{
    return __atomic_load_n(&ls->busy_ns, __ATOMIC_RELAXED);
}

void loopstat_free(struct loopstat *ls)
{
    if (ls == NULL)
        return;
    ev_ref(ls->loop);
    ev_check_stop(ls->loop, &ls->wake);
    ev_ref(ls->loop);
    ev_prepare_stop(ls->loop, &ls->idle);
    free(ls);
}
