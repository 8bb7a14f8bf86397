/*
 * listener.h - the listening sockets (TCP v4/v6, unix, or inherited from
 * systemd socket activation) and the accept loops that hand accepted
 * connections to a broker.
 *
 *   listeners (one set, bound once)
 *     +-- acceptor of thread 0 --accept4--> broker_accept(shard 0)
 *     +-- acceptor of thread 1 --accept4--> broker_accept(shard 1) ...
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

struct acceptor;
struct broker;
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

/* listeners_free: close every socket. Accepts NULL. Free the acceptors
 * first. */
void listeners_free(struct listeners *ls);

/*
 * acceptor_new: watch every socket of ls on loop and hand each accepted
 * connection to b (broker_accept), at most batch per wake-up; lg
 * (borrowed) for errors. ls and b must outlive it. Never NULL.
 */
struct acceptor *acceptor_new(struct ev_loop *loop, const struct listeners *ls,
                              struct broker *b, struct log *lg, unsigned batch);

/* acceptor_stop: accept no more (the sockets stay open). */
void acceptor_stop(struct acceptor *a);

/* acceptor_free: stop and free (call on its loop's thread, or after that
 * thread ended). Accepts NULL. */
void acceptor_free(struct acceptor *a);

#endif
