/*
 * conn.h - one network connection, accepted or outgoing, driven by a libev
 * loop over a stack of transports (transport.h: plain TCP or unix socket,
 * OpenSSL TLS, and layers such as a PROXY reader or WebSocket framing).
 * conn knows nothing about MQTT: it delivers bytes up through a handler
 * and queues bytes down.
 *
 *   read path:  EV_READ -> one transport read into the loop's scratch
 *               buffer (again while the transport holds decoded bytes)
 *               -> handler->on_data(buf, len) consumes whole packets
 *               -> an incomplete tail is kept in the conn's own input buffer
 *   write path: conn_out_reserve/commit (or conn_write) append to the
 *               output buffer; the conn goes on the loop's pending list and
 *               is flushed once per loop iteration (ev_prepare) with one
 *               transport write; EV_WRITE runs only while a write could
 *               not complete.
 *   close:      conn_close() never frees: it schedules the close, which runs
 *               from the loop after the current callback returns; the
 *               handler's on_close is the last call the upper layer gets.
 *
 * Backpressure: when the output buffer holds more than CONN_OUT_HIWAT bytes
 * the conn stops reading from the peer until it drains below
 * CONN_OUT_LOWAT (then on_drain is called).
 */
#ifndef MQTTD_CONN_H
#define MQTTD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct ev_loop;
struct log;
struct proxy_hdr;
struct tls_ctx;
struct tls_info;
struct transport;
struct conn;
struct conn_loop;

#define CONN_OUT_HIWAT (256u * 1024u)
#define CONN_OUT_LOWAT (64u * 1024u)
/* Output the broker may queue past the high-water mark while it holds the
 * publishers back (flow control); beyond it QoS 0 is dropped. */
#define CONN_OUT_HARD (4u * 1024u * 1024u)

/* Why a timer fired. */
enum conn_timeout {
    CONN_TIMEOUT_DEADLINE, /* the absolute deadline passed */
    CONN_TIMEOUT_IDLE,     /* nothing received for the idle period */
};

/* Callbacks into the layer above (the MQTT client). */
struct conn_handler {
    /* Transport ready (immediately for an accepted plain socket, after the
     * TCP connect and TLS handshake otherwise). */
    void (*on_open)(void *ud, struct conn *c);
    /* Bytes arrived. Return how many were consumed (whole packets); the rest
     * is kept and offered again with more bytes. Return -1 after calling
     * conn_close() to stop. */
    ssize_t (*on_data)(void *ud, struct conn *c, const uint8_t *buf,
                       size_t len);
    /* The output buffer drained below the low-water mark. */
    void (*on_drain)(void *ud, struct conn *c);
    /* A timer fired. */
    void (*on_timeout)(void *ud, struct conn *c, enum conn_timeout why);
    /* Final call: the connection is closed; 'reason' is a static text.
     * The conn is freed right after this returns. */
    void (*on_close)(void *ud, struct conn *c, const char *reason);
};

/*
 * conn_loop_new: per-loop state shared by all connections of one libev
 * loop (scratch read buffer, pending-write and pending-close lists). Never
 * NULL. conn_loop_free closes nothing: close connections first.
 */
struct conn_loop *conn_loop_new(struct ev_loop *loop, struct log *lg);
void conn_loop_free(struct conn_loop *cl);

/* conn_loop_count: live (not yet freed) connections. */
size_t conn_loop_count(const struct conn_loop *cl);

/*
 * conn_new: take ownership of the accepted, non-blocking fd. With tls set
 * a server-side TLS handshake runs first, bounded by handshake_timeout
 * seconds. The handler and ud stay fixed for the conn's life. Never NULL
 * (on TLS set-up failure the conn closes itself on the next loop
 * iteration with a reason).
 */
struct conn *conn_new(struct conn_loop *cl, int fd, struct tls_ctx *tls,
                      double handshake_timeout, const struct sockaddr *sa,
                      socklen_t salen, const struct conn_handler *h, void *ud);

/*
 * conn_create / conn_start: conn_new in two steps, so that layers can be
 * pushed in between: conn_create makes the conn (plain, or TLS over it
 * when tls is set) without reading yet; conn_push_layer(c, layer) puts
 * layer (a transport, transport.h) on top of c's stack, c taking
 * ownership of it; conn_start starts reading and the handshakes (or
 * calls on_open when the stack has none).
 */
struct conn *conn_create(struct conn_loop *cl, int fd, struct tls_ctx *tls,
                         double handshake_timeout, const struct sockaddr *sa,
                         socklen_t salen, const struct conn_handler *h,
                         void *ud);
void conn_push_layer(struct conn *c, struct transport *layer);
void conn_start(struct conn *c);

/*
 * conn_insert_layer: like conn_push_layer, but put layer right above the
 * bottom (socket) transport, below TLS: for a layer that consumes a
 * prefix before the first TLS byte, the PROXY header (proxy_proto.h).
 * Call between conn_create and conn_start. Once that layer's header is
 * read, conn_peer_ip/conn_peer_port give the client address it carried,
 * before the handshakes above it run (their log lines name the client).
 */
void conn_insert_layer(struct conn *c, struct transport *layer);

/* conn_proxy: the PROXY header the conn was opened with (borrowed), or
 * NULL when it has no PROXY layer or the header is not read yet. Once
 * on_open ran, the header also passed the listener's policy. */
const struct proxy_hdr *conn_proxy(const struct conn *c);

/*
 * conn_connect: an outgoing connection (a bridge) to host:port. host is
 * resolved with getaddrinfo (a numeric address never blocks; a name may:
 * resolve names with resolve.h first, as bridges do, and pass the numeric
 * address, with the name as sni), the first address is connected
 * without blocking, then with tls set (a tls_client_ctx_new context) a
 * TLS handshake runs, sending sni and checking the certificate against it
 * (sni NULL: no SNI, the chain alone is checked). on_open follows the
 * whole handshake; 'timeout' seconds (0: none) bound all of it. Never
 * NULL: a failure closes the conn on the next loop iteration with a
 * reason such as "connect: Connection refused", "connect: timed out" or
 * "TLS: certificate verify failed: ...".
 */
struct conn *conn_connect(struct conn_loop *cl, const char *host, int port,
                          struct tls_ctx *tls, const char *sni, double timeout,
                          const struct conn_handler *h, void *ud);

/* conn_peer_ip / conn_peer_port: peer address ("unix" for unix sockets). */
const char *conn_peer_ip(const struct conn *c);
int conn_peer_port(const struct conn *c);

/* conn_is_tls: true when the transport stack includes TLS. conn_tls_info:
 * what the TLS handshake established (borrowed), NULL before it completes
 * and for plain connections. */
bool conn_is_tls(const struct conn *c);
const struct tls_info *conn_tls_info(const struct conn *c);

/*
 * conn_out_reserve: a pointer to at least n writable bytes at the end of
 * the output buffer; conn_out_commit(c, k) appends the first k of them.
 * conn_write copies. Writes after conn_close() are discarded.
 */
uint8_t *conn_out_reserve(struct conn *c, size_t n);
void conn_out_commit(struct conn *c, size_t n);
void conn_write(struct conn *c, const void *p, size_t n);

/* conn_out_pending: bytes queued but not yet written to the socket. */
size_t conn_out_pending(const struct conn *c);

/*
 * conn_set_deadline: fire on_timeout(CONN_TIMEOUT_DEADLINE) 'secs' from now
 * (absolute: activity does not extend it); 0 cancels.
 * conn_set_idle: fire on_timeout(CONN_TIMEOUT_IDLE) when nothing was
 * received for 'secs'; 0 cancels. One libev timer serves both and is only
 * re-armed when it fires, so idle connections cost no CPU.
 */
void conn_set_deadline(struct conn *c, double secs);
void conn_set_idle(struct conn *c, double secs);

/* conn_reserve_input: the upper layer announces a packet of n bytes is
 * coming (already checked against its limits) so the input buffer grows
 * once. */
void conn_reserve_input(struct conn *c, size_t n);

/*
 * conn_close: schedule the close. Queued output is flushed best-effort
 * (one non-blocking attempt) first, so a CONNACK or DISCONNECT with a
 * reason code reaches the peer. Idempotent; the first reason is kept.
 */
void conn_close(struct conn *c, const char *reason);

/*
 * conn_close_flushed: close once every queued byte is written (an HTTP
 * response of any size), or at once when nothing is queued; reading goes
 * on meanwhile, and the deadline still applies. reason must be static.
 */
void conn_close_flushed(struct conn *c, const char *reason);

/* conn_closing: true once conn_close() was called. */
bool conn_closing(const struct conn *c);

/*
 * conn_pause_read / conn_resume_read: stop and restart reading from the
 * peer (publisher flow control). Input already buffered is offered again
 * through on_data from the loop after a resume, never from inside the
 * caller's callback.
 */
void conn_pause_read(struct conn *c);
void conn_resume_read(struct conn *c);

/*
 * Moving a connection to another loop's thread (threads > 1):
 * conn_detach, from inside on_data only (then return -1): stop every
 * watcher, leave this loop and keep rest[0..n) (the packets not yet
 * handled, which may point into the bytes on_data was given) as buffered
 * input. The conn is then owned by nobody until conn_attach(c, cl, ud)
 * on cl's thread re-arms it there with a new upper-layer ud; its
 * buffered input is offered through on_data from that loop.
 * conn_destroy_detached frees a detached conn (no callbacks).
 */
void conn_detach(struct conn *c, const uint8_t *rest, size_t n);
void conn_attach(struct conn *c, struct conn_loop *cl, void *ud);
void conn_destroy_detached(struct conn *c);

#endif
