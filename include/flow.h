/*
 * flow.h - publisher flow control of one broker shard. A publisher whose
 * message met a subscriber over its high-water mark is held (its
 * connection is read no more) until some subscriber drains; a subscriber
 * that does not drain within FLOW_STUCK_AFTER seconds is "stuck" and holds
 * back nobody from then on, so no publisher waits on one subscriber for
 * longer than that.
 *
 *   publisher --PUBLISH--> route --DELIVER_WAIT--> flow_hold(publisher)
 *   subscriber drains --flow_sub_release--> flow_resume: every held
 *                                           publisher reads again
 *   broker_tick --flow_sub_tick: blocking > 1 s--> stuck, flow_resume
 *
 * With threads > 1 the same rule holds a shard's inbox (flow_hold_inbox)
 * for a remote publisher; flow_resume releases it.
 */
#ifndef MQTTD_FLOW_H
#define MQTTD_FLOW_H

#include <stdbool.h>
#include <stddef.h>

struct client;
struct flow;

/* Seconds a subscriber may hold publishers back without draining. */
#define FLOW_STUCK_AFTER 1.0

/* The flow-control state of one subscriber (a session embeds it). */
struct flow_sub {
    bool blocking; /* holds publishers back, since 'since' */
    bool stuck;    /* stopped draining: holds back nobody */
    double since;
};

/* flow_new: no publisher held. Never NULL. flow_free accepts NULL (the
 * held publishers are not resumed). */
struct flow *flow_new(void);
void flow_free(struct flow *f);

/*
 * flow_hold: stop reading from publisher c until flow_resume
 * (client_resume_read then). The caller holds a publisher once (its own
 * flag) and calls flow_forget before c is freed.
 */
void flow_hold(struct flow *f, struct client *c);

/* flow_forget: c is closing: drop it from the held publishers, if there. */
void flow_forget(struct flow *f, struct client *c);

/* flow_hold_inbox: threads > 1: a remote publisher's message met a
 * subscriber over its mark: read the shard's inbox no more until
 * flow_resume. flow_inbox_held: whether it is held. */
void flow_hold_inbox(struct flow *f);
bool flow_inbox_held(const struct flow *f);

/*
 * flow_resume: let every held publisher read again (client_resume_read,
 * in the order they were held) and release the inbox. Returns true when
 * the inbox was held (the caller has the hub deliver to it again).
 */
bool flow_resume(struct flow *f);

/* flow_held: publishers held now. */
size_t flow_held(const struct flow *f);

/* flow_sub_block: subscriber fs made a publisher wait at time now: it is
 * blocking from now on (the first time). */
void flow_sub_block(struct flow_sub *fs, double now);

/* flow_sub_release: fs drained (below its low-water mark): not stuck any
 * more. Returns true when it was blocking (the caller calls flow_resume). */
bool flow_sub_release(struct flow_sub *fs);

/* flow_sub_unblock: the subscriber went offline: it blocks no more (stuck
 * stays as it is). Returns true when it was blocking (flow_resume). */
bool flow_sub_unblock(struct flow_sub *fs);

/*
 * flow_sub_tick: the once-a-second rule for subscriber fs: blocking and
 * offline, or blocking for FLOW_STUCK_AFTER without draining: it blocks
 * no more (stuck when online). Returns true when it gave up (the caller
 * logs a stuck one and calls flow_resume).
 */
bool flow_sub_tick(struct flow_sub *fs, bool online, double now);

#endif
