/*
 * persist_sched.c - when snapshots are written (see persist_sched.h).
 */
#include "persist_sched.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ev.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "persist.h"
#include "util.h"

struct persist_sched {
    struct ev_loop *loop;
    struct broker *b;
    struct log *log;
    char *path;
    bool sync;          /* persistence_sync always */
    ev_prepare durable; /* persistence_sync always: save, then ack */
    struct log_ratelimit save_rl;
    double last_save;
    uint64_t changes_at_save;
    pid_t save_pid;  /* background save in progress */
    double retry_at; /* after a failed save: not before this */
    ev_child save_child;
};

static char *db_path(const struct conf *c)
{
    const char *dir = c->persistence_location ? c->persistence_location : "";
    const char *file = c->persistence_file ? c->persistence_file : "mqttd.db";
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    if (dir[0] == '\0')
        snprintf(p, n, "%s", file);
    else
        snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 file);
    return p;
}

static void save_done_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct persist_sched *ps = w->data;

    (void)revents;
    ev_child_stop(loop, w);
    ps->save_pid = 0;
    if (WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0)
        LOG_I(ps->log, "Saved the persistence file %s.", ps->path);
    else {
        LOG_E(ps->log,
              "Saving the persistence file %s failed; the previous file "
              "is kept; retrying.",
              ps->path);
        /* the changes since the last good save are still unsaved */
        ps->changes_at_save = 0;
        ps->last_save = 0;
        {
            /* retry within the autosave interval, at most every 10 s */
            uint32_t iv = broker_conf(ps->b)->autosave_interval;
            ps->retry_at = ev_now(loop) + (iv > 0 && iv < 10 ? iv : 10);
        }
    }
}

/*
 * persistence_sync always: once per loop iteration, before any output is
 * written (this prepare watcher has the highest priority), save the state
 * synchronously if acknowledgements are waiting, then release them. One
 * fsync covers every message of the iteration (group commit).
 */
static void durable_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct persist_sched *ps = w->data;
    char err[512];
    unsigned sup;
    bool ok;

    (void)loop;
    (void)revents;
    if (broker_pending_acks(ps->b) == 0)
        return;
    ok = persist_save(ps->b, ps->path, err, sizeof(err)) == 0;
    if (!ok && log_ratelimit_ok(&ps->save_rl, 1, 5.0, &sup))
        LOG_E(ps->log,
              "persistence_sync always: saving %s failed (%s); disconnecting "
              "the publishers whose messages are not stored.",
              ps->path, err);
    ps->last_save = ev_now(ps->loop);
    ps->changes_at_save = broker_stats(ps->b)->changes;
    broker_flush_acks(ps->b, ok);
}

struct persist_sched *persist_sched_new(struct ev_loop *loop, struct broker *b,
                                        struct log *lg, const struct conf *c)
{
    struct persist_sched *ps;

    if (!c->persistence)
        return NULL;
    ps = xcalloc(1, sizeof(*ps));
    ps->loop = loop;
    ps->b = b;
    ps->log = lg;
    ps->path = db_path(c);
    ps->sync = c->persistence_sync;
    ev_init(&ps->save_child, save_done_cb);
    ps->save_child.data = ps;
    return ps;
}

const char *persist_sched_path(const struct persist_sched *ps)
{
    return ps->path;
}

int persist_sched_load(struct persist_sched *ps, char *err, size_t errlen)
{
    return persist_load(ps->b, ps->path, err, errlen);
}

void persist_sched_start(struct persist_sched *ps)
{
    ps->last_save = ev_now(ps->loop);
    ps->changes_at_save = broker_stats(ps->b)->changes;
    if (ps->sync) {
        ev_prepare_init(&ps->durable, durable_cb);
        ev_set_priority(&ps->durable, EV_MAXPRI);
        ps->durable.data = ps;
        ev_prepare_start(ps->loop, &ps->durable);
        ev_unref(ps->loop);
    }
}

void persist_sched_save(struct persist_sched *ps, const char *why)
{
    char err[512];
    pid_t pid;

    if (ps->save_pid > 0)
        return;
    LOG_D(ps->log, "Saving persistence file (%s).", why);
    ps->last_save = ev_now(ps->loop);
    ps->changes_at_save = broker_stats(ps->b)->changes;
    pid = persist_save_bg(ps->b, ps->path, err, sizeof(err));
    if (pid < 0) {
        LOG_E(ps->log, "Background save failed to start: %s", err);
        return;
    }
    ps->save_pid = pid;
    ev_child_set(&ps->save_child, pid, 0);
    ev_child_start(ps->loop, &ps->save_child);
}

void persist_sched_tick(struct persist_sched *ps)
{
    const struct conf *c = broker_conf(ps->b);
    uint64_t changes = broker_stats(ps->b)->changes;
    double now = ev_now(ps->loop);

    if (now < ps->retry_at)
        return;
    if (c->autosave_on_changes) {
        if (c->autosave_interval &&
            changes - ps->changes_at_save >= c->autosave_interval)
            persist_sched_save(ps, "autosave_on_changes");
    } else if (c->autosave_interval &&
               now - ps->last_save >= c->autosave_interval &&
               changes != ps->changes_at_save) {
        persist_sched_save(ps, "autosave_interval");
    }
}

int persist_sched_final(struct persist_sched *ps)
{
    char err[512];

    if (ps->save_pid > 0) {
        int st;
        ev_child_stop(ps->loop, &ps->save_child);
        (void)waitpid(ps->save_pid, &st, 0);
        ps->save_pid = 0;
    }
    if (persist_save(ps->b, ps->path, err, sizeof(err)) < 0) {
        LOG_E(ps->log, "Saving %s at shutdown failed: %s", ps->path, err);
        return -1;
    }
    LOG_N(ps->log, "Saved the persistence file %s.", ps->path);
    return 0;
}

void persist_sched_free(struct persist_sched *ps)
{
    if (ps == NULL)
        return;
    if (ev_is_active(&ps->durable)) {
        ev_ref(ps->loop);
        ev_prepare_stop(ps->loop, &ps->durable);
    }
    if (ps->save_pid > 0)
        ev_child_stop(ps->loop, &ps->save_child);
    free(ps->path);
    free(ps);
}
