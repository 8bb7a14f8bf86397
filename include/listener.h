/*
 * listener.h - the listening sockets (TCP v4/v6, unix, or inherited from
 * systemd socket activation) and the accept loops that hand accepted
 * connections to their owner through a callback. The net layer knows no
 * broker: the daemon (src/daemon) passes an adapter that calls
 * broker_accept.
 *
 *   listeners (one set, bound once)
 *     +-- acceptor of thread 0 --accept4--> fn(ud = shard 0's broker, ...)
 *     +-- acceptor of thread 1 --accept4--> fn(ud = shard 1's broker, ...)
 *
 * Every thread watches every listening socket and takes up to 'batch'
 * connections per wake-up. Out of file descriptors (EMFILE/ENFILE), an
 * acceptor frees its reserve fd to accept and drop one connection, then
 * stops accepting for 100 ms: never a busy loop on a level-triggered
 * EMFILE.
 */
#ifndef MQTTD_LISTENER_H
#define MQTTD_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

struct acceptor;
struct conf;
struct ev_loop;
struct listeners;
struct log;

/*
 * listeners_bind: take the sockets systemd passed (LISTEN_PID/LISTEN_FDS,
 * matched to listeners by port or path) and bind every other listener of
 * c. Returns the set, or NULL with err filled (nothing is left bound).
 * lg (borrowed) gets a line per inherited socket.
 */
struct listeners *listeners_bind(const struct conf *c, struct log *lg,
                                 char *err, size_t errlen);

/*
 * listeners_apply: take the per-listener limits of c that apply at accept
 * (max_connection_rate) for every socket of ls; called at bind and after a
 * successful reload, from any thread (the values are atomics).
 */
void listeners_apply(struct listeners *ls, const struct conf *c);

/* listeners_free: close every socket. Accepts NULL. Free the acceptors
 * first. */
void listeners_free(struct listeners *ls);

/*
 * listener_accept_fn: one accepted connection, called on the acceptor's
 * loop thread. fd is non-blocking and close-on-exec (TCP_NODELAY already
 * set when the configuration asks for it) and belongs to the callee from
 * then on: it must keep it or close it. li is the index of the listener in
 * the configuration (conf->listeners[li]); sa/salen, the peer address, are
 * valid during the call only. ud is the pointer given to acceptor_new.
 */
typedef void (*listener_accept_fn)(void *ud, size_t li, int fd,
                                   const struct sockaddr *sa, socklen_t salen);

/*
 * acceptor_new: watch every socket of ls on loop and call fn(ud, ...) for
 * each accepted connection, at most batch per wake-up; lg (borrowed) for
 * errors. ls and whatever ud points to must outlive it. Never NULL.
 */
struct acceptor *acceptor_new(struct ev_loop *loop, const struct listeners *ls,
                              listener_accept_fn fn, void *ud, struct log *lg,
                              unsigned batch);

/* acceptor_skip: stop watching the sockets of listener li (another loop
 * accepts on them: protocol http is served by the main thread only). */
void acceptor_skip(struct acceptor *a, size_t li);

/* acceptor_stop: accept no more (the sockets stay open). */
void acceptor_stop(struct acceptor *a);

/* acceptor_free: stop and free (call on its loop's thread, or after that
 * thread ended). Accepts NULL. */
void acceptor_free(struct acceptor *a);

#endif
