/*
 * persist_sched.h - when the snapshot of persist.h is written: the
 * autosave rules (autosave_interval, autosave_on_changes), a save on
 * request (SIGUSR1), a retry after a failed save, the group commit of
 * persistence_sync always, and the final save at shutdown.
 *
 *   broker state changes --tick, autosave rules--> persist_save_bg (child)
 *   persistence_sync always: ev_prepare (highest priority, before any
 *     output) --acks waiting--> persist_save --> broker_flush_acks
 */
#ifndef MQTTD_PERSIST_SCHED_H
#define MQTTD_PERSIST_SCHED_H

#include <stddef.h>

struct broker;
struct conf;
struct ev_loop;
struct log;
struct persist_sched;

/*
 * persist_sched_new: the schedule for broker b on loop (both borrowed,
 * b must outlive it) with c's persistence settings, or NULL when c has
 * persistence off. lg (borrowed) gets the save lines. Nothing runs before
 * persist_sched_start.
 */
struct persist_sched *persist_sched_new(struct ev_loop *loop, struct broker *b,
                                        struct log *lg, const struct conf *c);

/* persist_sched_path: the snapshot file ("DIR/FILE"). */
const char *persist_sched_path(const struct persist_sched *ps);

/* persist_sched_load: persist_load of the snapshot file into the (empty)
 * broker. Returns 0, or -1 with err filled. */
int persist_sched_load(struct persist_sched *ps, char *err, size_t errlen);

/* persist_sched_start: count from the state as it is now, and with
 * persistence_sync always start the group-commit watcher. */
void persist_sched_start(struct persist_sched *ps);

/* persist_sched_save: start a background save now (why: for the debug
 * line) unless one is running. */
void persist_sched_save(struct persist_sched *ps, const char *why);

/* persist_sched_tick: once a second: start a save when the autosave rules
 * say so (not before the retry time after a failure). */
void persist_sched_tick(struct persist_sched *ps);

/* persist_sched_final: at shutdown, after the loops stopped: wait for a
 * background save, then save synchronously. Returns 0, or -1 (logged). */
int persist_sched_final(struct persist_sched *ps);

/* persist_sched_free: stop the watchers and free. Accepts NULL. */
void persist_sched_free(struct persist_sched *ps);

#endif
