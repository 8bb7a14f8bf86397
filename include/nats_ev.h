/*
 * nats_ev.h - a libev adapter for the NATS C client (cnats): the
 * connection's socket is polled by ev_io watchers on one loop
 * (natsOptions_SetEventLoop), so reads and writes happen on that loop and
 * never block it.
 *
 * cnats calls the adapter's callbacks from the loop's thread (reads,
 * writes, publishes) and from its own threads (the connect at start-up
 * and reconnects); those are handed to the loop through an ev_async and
 * applied there. One adapter serves one connection.
 */
#ifndef MQTTD_NATS_EV_H
#define MQTTD_NATS_EV_H

#include <nats/nats.h>

struct ev_loop;
struct nats_ev;

/*
 * nats_ev_new: an adapter on 'loop' (call on the loop's thread). After
 * every read event it calls on_read(ud) on the loop, where the caller
 * takes the messages of its synchronous subscriptions
 * (natsSubscription_NextMsg with timeout 0).
 */
struct nats_ev *nats_ev_new(struct ev_loop *loop, void (*on_read)(void *ud),
                            void *ud);

/* nats_ev_install: natsOptions_SetEventLoop with a's callbacks. Returns
 * the cnats status. */
natsStatus nats_ev_install(struct nats_ev *a, natsOptions *opts);

/* nats_ev_free: stop every watcher and free a; call after
 * natsConnection_Destroy (which detaches). Accepts NULL. */
void nats_ev_free(struct nats_ev *a);

#endif
