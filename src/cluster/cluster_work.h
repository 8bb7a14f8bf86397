/*
 * cluster_work.h - blocking NATS calls off the event loop.
 *
 * cnats' JetStream and key-value calls (js_Publish, kvStore_Get,
 * kvStore_Update, js_PullSubscribe ...) wait for a reply. In mqttd the
 * NATS connection's socket is read by the event loop (nats_ev.c), so such
 * a call made on the loop would never see its reply: it must run here,
 * on the cluster's worker thread, while the loop goes on reading.
 *
 *   loop thread                          worker thread
 *   cluster_work_submit(work, done) -->  work(arg)   (may block)
 *   done(arg)   <-- ev_async ----------  queued in order
 *
 * Jobs run one at a time, in submission order; their done callbacks run on
 * the loop in the same order. Internal to src/cluster.
 */
#ifndef MQTTD_CLUSTER_WORK_H
#define MQTTD_CLUSTER_WORK_H

struct ev_loop;
struct cluster_work;

/* cluster_work_new: start the worker thread (every signal blocked in it).
 * Call on the loop's thread. Never NULL (aborts when no thread can be
 * created). */
struct cluster_work *cluster_work_new(struct ev_loop *loop);

/*
 * cluster_work_submit: run work(arg) on the worker thread, then done(arg)
 * on the loop thread (either may be NULL). Loop thread only. work must not
 * touch loop-owned state (the broker, clients); done may.
 */
void cluster_work_submit(struct cluster_work *w, void (*work)(void *arg),
                         void (*done)(void *arg), void *arg);

/*
 * cluster_work_free: run the jobs still queued (their work, then their
 * done callbacks on this thread), stop and join the worker, free w. Loop
 * thread only. Call after natsConnection_Close (so that queued NATS calls
 * fail at once instead of waiting for replies the stopped loop would
 * read) and before natsConnection_Destroy. Accepts NULL.
 */
void cluster_work_free(struct cluster_work *w);

#endif
