/*
 * shard.c - a broker's place among the threads: outboxes, the prepare
 * watchers that post them, message stamps, client-id ownership and the
 * hub calls the broker core makes (see shard.h).
 */
#include "shard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "hub.h"
#include "msg.h"
#include "util.h"

/* Items for one other shard, posted once per loop iteration. */
struct outbox {
    struct hub_item *v;
    size_t n, cap;
    bool wait; /* a publisher was held for that shard's backlog */
};

struct shard {
    struct ev_loop *loop;
    struct hub *hub;
    unsigned idx;
    struct outbox *out;                   /* [hub_size] */
    ev_prepare out_flush, out_flush_late; /* see shard_new */
    uint32_t spread;                      /* next message's spread value */
    void (*tls_sync)(void *ud);
    void *tls_sync_ud;
};

static void out_flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    shard_flush(w->data);
}

struct shard *shard_new(struct ev_loop *loop, struct hub *h, unsigned idx,
                        bool (*fn)(void *ud, struct hub_item *it), void *ud)
{
    struct shard *sh = xcalloc(1, sizeof(*sh));

    sh->loop = loop;
    sh->hub = h;
    sh->idx = idx;
    sh->out = xcalloc(hub_size(h), sizeof(*sh->out));
    /* before conn.c's prepare watcher writes the acknowledgements (a
     * message is with the other threads before its PUBACK leaves), and
     * after it (its closes may publish wills) */
    ev_prepare_init(&sh->out_flush, out_flush_cb);
    ev_set_priority(&sh->out_flush, EV_MAXPRI - 1);
    sh->out_flush.data = sh;
    ev_prepare_start(loop, &sh->out_flush);
    ev_unref(loop);
    ev_prepare_init(&sh->out_flush_late, out_flush_cb);
    ev_set_priority(&sh->out_flush_late, EV_MINPRI);
    sh->out_flush_late.data = sh;
    ev_prepare_start(loop, &sh->out_flush_late);
    ev_unref(loop);
    hub_bind(h, idx, loop, fn, ud);
    return sh;
}

void shard_free(struct shard *sh)
{
    if (sh == NULL)
        return;
    hub_unbind(sh->hub, sh->idx);
    ev_ref(sh->loop);
    ev_prepare_stop(sh->loop, &sh->out_flush);
    ev_ref(sh->loop);
    ev_prepare_stop(sh->loop, &sh->out_flush_late);
    for (unsigned i = 0; i < hub_size(sh->hub); i++) {
        for (size_t k = 0; k < sh->out[i].n; k++)
            hub_item_drop(&sh->out[i].v[k]);
        free(sh->out[i].v);
    }
    free(sh->out);
    free(sh);
}

unsigned shard_index(const struct shard *sh)
{
    return sh->idx;
}

size_t *shard_listener_counts(struct shard *sh, size_t nl)
{
    return hub_listener_counts(sh->hub, nl);
}

void shard_stamp(struct shard *sh, struct msg *m)
{
    m->spread = sh->spread++;
    m->share_gen = hub_share_gen(sh->hub);
}

bool shard_serves(const struct shard *sh, const struct msg *m, const char *key,
                  size_t len)
{
    return hub_share_serves(sh->hub, sh->idx, m->spread, m->share_gen, key,
                            len);
}

static void outbox_add(struct shard *sh, unsigned to, const struct hub_item *it)
{
    struct outbox *o = &sh->out[to];

    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = xreallocarray(o->v, o->cap, sizeof(*o->v));
    }
    o->v[o->n++] = *it;
}

bool shard_forward(struct shard *sh, struct msg *m, bool may_hold)
{
    bool wait = false;

    for (unsigned i = 0; i < hub_size(sh->hub); i++) {
        struct outbox *o = &sh->out[i];
        struct hub_item it = {
            .kind = HUB_MSG, .from = (uint8_t)sh->idx, .m = NULL};
        if (i == sh->idx || (!m->retain && !hub_has_subs(sh->hub, i)))
            continue;
        it.m = msg_ref(m);
        outbox_add(sh, i, &it);
        if (may_hold && hub_backlog(sh->hub, i) + o->n > HUB_HIWAT) {
            wait = true;
            o->wait = true;
        }
    }
    return wait;
}

bool shard_others_have_subs(const struct shard *sh)
{
    if (sh == NULL)
        return false;
    for (unsigned i = 0; i < hub_size(sh->hub); i++)
        if (i != sh->idx && hub_has_subs(sh->hub, i))
            return true;
    return false;
}

bool shard_owns(const struct shard *sh, const char *id, size_t len)
{
    return hub_owner(sh->hub, id, len) == sh->idx;
}

void shard_post_conn(struct shard *sh, const char *id, size_t len,
                     struct conn *c, size_t li)
{
    struct hub_item it = {.kind = HUB_CONN, .from = (uint8_t)sh->idx};

    it.li = (uint16_t)li;
    it.c = c;
    outbox_add(sh, hub_owner(sh->hub, id, len), &it);
}

void shard_flush(struct shard *sh)
{
    for (unsigned i = 0; i < hub_size(sh->hub); i++) {
        struct outbox *o = &sh->out[i];
        if (o->n == 0)
            continue;
        hub_post_batch(sh->hub, i, sh->idx, o->v, o->n, o->wait);
        o->n = 0;
        o->wait = false;
        if (o->cap > 4096) { /* after a burst, do not keep a large buffer */
            free(o->v);
            o->v = NULL;
            o->cap = 0;
        }
    }
}

void shard_kick(struct shard *sh)
{
    hub_kick(sh->hub, sh->idx);
}

void shard_drain(struct shard *sh)
{
    hub_drain(sh->hub, sh->idx);
}

void shard_note_sub(struct shard *sh, const char *filter, size_t len, int delta)
{
    hub_subs_add(sh->hub, sh->idx, delta);
    if (len > 7 && memcmp(filter, "$share/", 7) == 0) {
        if (delta > 0)
            hub_share_join(sh->hub, sh->idx, filter, len);
        else
            hub_share_leave(sh->hub, sh->idx, filter, len);
    }
}

void shard_totals(struct shard *sh, struct hub_totals *t, bool sum)
{
    hub_totals_put(sh->hub, sh->idx, t);
    if (sum)
        hub_totals_sum(sh->hub, t);
}

void shard_set_tls_sync(struct shard *sh, void (*fn)(void *ud), void *ud)
{
    sh->tls_sync = fn;
    sh->tls_sync_ud = ud;
}

void shard_tls_sync(struct shard *sh)
{
    if (sh->idx == 0 && sh->tls_sync)
        sh->tls_sync(sh->tls_sync_ud);
}

struct ocsp_cache *shard_ocsp(struct shard *sh)
{
    return hub_ocsp(sh->hub);
}

struct tls_staples *shard_staples(struct shard *sh)
{
    return hub_staples(sh->hub);
}
