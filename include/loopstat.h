/*
 * loopstat.h - how busy one libev loop is: the time between the end of a
 * poll (an ev_check watcher of the highest priority) and the start of the
 * next one (an ev_prepare of the lowest), summed. Read from any thread
 * (an atomic counter); a reader turns two readings into a utilisation.
 *
 *   poll ... | check -- callbacks, writes, prepare hooks -- prepare | poll
 *            |<------------------- busy ------------------------->|
 */
#ifndef MQTTD_LOOPSTAT_H
#define MQTTD_LOOPSTAT_H

#include <stdint.h>

struct ev_loop;
struct loopstat;

/* loopstat_new: start measuring loop (call on its thread, or before it
 * runs); the watchers do not keep the loop alive. Never NULL. */
struct loopstat *loopstat_new(struct ev_loop *loop);

/* loopstat_busy_ns: busy time so far in ns (any thread). */
uint64_t loopstat_busy_ns(const struct loopstat *ls);

/* loopstat_free: stop (on the loop's thread, or after it ended) and free.
 * Accepts NULL. */
void loopstat_free(struct loopstat *ls);

#endif
