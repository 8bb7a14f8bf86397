/*
 * authq.h - password checks off the event loop. A PBKDF2 verification at a
 * modern iteration count costs hundreds of milliseconds of CPU; run inline
 * it would stall every client of the loop. authq runs auth_connect() on a
 * worker thread and hands the result back to the loop through an ev_async.
 *
 *   loop thread                    worker thread
 *   authq_submit(job) --todo-->    auth_connect(auth, client)
 *   done callback    <--done--     ev_async_send
 *
 * The worker only reads the struct auth (immutable after auth_new); the
 * job holds a reference so a reload cannot free it meanwhile.
 */
#ifndef MQTTD_AUTHQ_H
#define MQTTD_AUTHQ_H

#include <stdbool.h>

#include "auth.h"

struct ev_loop;
struct authq;
struct authq_job;

/* Called on the loop thread with the outcome (reason is static text). */
typedef void (*authq_done_fn)(void *ud, enum auth_result r, const char *reason,
                              bool bad_credentials);

/* authq_new: start the worker thread. Never NULL (aborts when no thread can
 * be created). */
struct authq *authq_new(struct ev_loop *loop);

/* authq_free: stop and join the worker; jobs still queued are dropped
 * without calling back. Accepts NULL. */
void authq_free(struct authq *q);

/*
 * authq_submit: queue auth_connect(a, c) (strings in c are copied; a gets a
 * reference). fn(ud, ...) runs later on the loop thread unless the job is
 * cancelled first. Returns the job handle.
 */
struct authq_job *authq_submit(struct authq *q, struct auth *a,
                               const struct auth_client *c, authq_done_fn fn,
                               void *ud);

/* authq_cancel: the callback of job j will not run (loop thread only). */
void authq_cancel(struct authq_job *j);

#endif
