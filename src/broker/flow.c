/*
 * flow.c - publisher flow control of one broker shard: the held
 * publishers, their resumption, and the stuck-subscriber rule.
 */
#include "flow.h"

#include <stdlib.h>

#include "client.h"
#include "util.h"

struct flow {
    struct client **held; /* in the order they were held */
    size_t n, cap;
    bool inbox_held;
};

struct flow *flow_new(void)
{
    return xcalloc(1, sizeof(struct flow));
}

void flow_free(struct flow *f)
{
    if (f == NULL)
        return;
    free(f->held);
    free(f);
}

void flow_hold(struct flow *f, struct client *c)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->held = xreallocarray(f->held, f->cap, sizeof(*f->held));
    }
    f->held[f->n++] = c;
}

void flow_forget(struct flow *f, struct client *c)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->held[i] == c) {
            f->held[i] = f->held[--f->n];
            return;
        }
    }
}

void flow_hold_inbox(struct flow *f)
{
    f->inbox_held = true;
}

bool flow_inbox_held(const struct flow *f)
{
    return f->inbox_held;
}

bool flow_resume(struct flow *f)
{
    bool inbox = f->inbox_held;
    size_t n = f->n;

    f->inbox_held = false;
    f->n = 0;
    for (size_t i = 0; i < n; i++)
        client_resume_read(f->held[i]);
    return inbox;
}

size_t flow_held(const struct flow *f)
{
    return f->n;
}

void flow_sub_block(struct flow_sub *fs, double now)
{
    if (!fs->blocking) {
        fs->blocking = true;
        fs->since = now;
    }
}

bool flow_sub_release(struct flow_sub *fs)
{
    bool was = fs->blocking;

    fs->stuck = false;
    fs->blocking = false;
    return was;
}

bool flow_sub_unblock(struct flow_sub *fs)
{
    bool was = fs->blocking;

    fs->blocking = false;
    return was;
}

bool flow_sub_tick(struct flow_sub *fs, bool online, double now)
{
    if (!fs->blocking || (online && now - fs->since < FLOW_STUCK_AFTER))
        return false;
    fs->blocking = false;
    fs->stuck = online;
    return true;
}
