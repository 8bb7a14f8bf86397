/*
 * transport.h - how a connection's bytes reach the socket: one vtable
 * (read, write, pending input, handshake step, shutdown, free, peer info)
 * with an implementation per transport, in the manner of Redis's
 * ConnectionType. conn.c drives every transport through these operations
 * only; it never learns which one it holds.
 *
 *   conn (buffers, deadlines, deferred close, flush from the prepare hook)
 *     |  c->xprt: the top of the stack
 *     v
 *   [ layer ]      e.g. WebSocket frames (a transport whose I/O goes to
 *     |                 ->lower), pushed with conn_push_layer()
 *   [ TLS ]        transport_tls.c: OpenSSL on the socket
 *     |
 *   [ layer ]      e.g. a PROXY header reader: consumes a prefix in its
 *     |                 handshake, then passes bytes through
 *   [ plain ]      transport_plain.c: read()/write() on the fd
 *
 * A layer is itself a transport: its operations call the ones of the
 * transport below it (->lower), and its handshake first completes the
 * handshake below it. The TLS transport talks to the socket itself, so a
 * layer below TLS may only consume a prefix before it (PROXY protocol);
 * framing layers go above TLS.
 *
 * The struct head below is public so that conn.c calls an operation with
 * one indirect call; each implementation embeds it first and keeps the
 * rest of its state private.
 */
#ifndef MQTTD_TRANSPORT_H
#define MQTTD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct tls_ctx;
struct tls_info;
struct transport;

/* Result of a transport operation. */
enum xprt_io {
    XPRT_OK = 0,
    XPRT_WANT_READ,  /* call again once the socket is readable */
    XPRT_WANT_WRITE, /* call again once the socket is writable */
    XPRT_CLOSED,     /* the peer closed cleanly (EOF, close_notify) */
    XPRT_ERROR,      /* see ->err */
};

/*
 * What a handshake is doing, for the log line and close reason of a
 * failure or a timeout (static strings). "event" names the log event
 * (NULL: none), "what" prefixes the reason ("TLS handshake failed",
 * "connect"), "timeout" is the reason when the deadline passes.
 */
struct xprt_stage {
    const char *event;
    const char *what;
    const char *timeout;
};

struct xprt_ops {
    /*
     * handshake: one non-blocking step; XPRT_OK once established (and
     * then never called again). On XPRT_ERROR/XPRT_CLOSED why[0..whylen)
     * says why. *stage is set to the stage the step was in. NULL when
     * the transport needs no handshake (an accepted plain socket).
     */
    enum xprt_io (*handshake)(struct transport *t, char *why, size_t whylen,
                              const struct xprt_stage **stage);
    /* read: up to len bytes into buf; *n bytes read when XPRT_OK. */
    enum xprt_io (*read)(struct transport *t, void *buf, size_t len, size_t *n);
    /*
     * write: bytes from buf[0..len); *n written when XPRT_OK (may be
     * less than len). After XPRT_WANT_*, the next call must offer at
     * least the bytes offered before, unchanged (they may have moved):
     * a transport that must retry with the same length (OpenSSL) keeps
     * that length itself.
     */
    enum xprt_io (*write)(struct transport *t, const void *buf, size_t len,
                          size_t *n);
    /* pending: bytes already read from the socket and decoded, waiting
     * for read (SSL_pending); NULL when the transport never holds any. */
    size_t (*pending)(const struct transport *t);
    /* shutdown: best-effort goodbye of this transport only (close_notify),
     * never blocks; NULL when none. Called top to bottom on an
     * established stack. */
    void (*shutdown)(struct transport *t);
    /* free: release this transport only (not ->lower, not the fd). */
    void (*free)(struct transport *t);
    /* peer_info: what a TLS handshake established, NULL otherwise (or
     * NULL as an operation: never). */
    const struct tls_info *(*peer_info)(const struct transport *t);
    /* secure: the bytes are protected on the wire (TLS). */
    bool secure;
    /* the stage before the first handshake step */
    const struct xprt_stage *stage;
};

struct transport {
    const struct xprt_ops *ops;
    struct transport *lower; /* the transport below, NULL at the bottom */
    int fd;                  /* the socket, shared by the whole stack */
    const char *err;         /* static reason of the last XPRT_ERROR */
};

/*
 * transport_plain_new: read()/write() on the connected, non-blocking fd
 * (TCP or unix), which stays the caller's to close. Never NULL.
 * transport_plain_connecting: the same for a socket whose non-blocking
 * connect() is in progress; its handshake completes when the connection
 * is established, or fails with "connect: <strerror>".
 */
struct transport *transport_plain_new(int fd);
struct transport *transport_plain_connecting(int fd);

/*
 * transport_tls_server / transport_tls_client: OpenSSL over lower's fd
 * (lower is owned by the caller, normally conn). The server runs an
 * accept handshake with ctx (from tls_ctx_new); the client a connect
 * handshake with ctx (from tls_client_ctx_new), sending sni (may be NULL)
 * and, unless the context is insecure, checking the certificate against
 * that name. Records stay with OpenSSL for the whole connection;
 * SSL_MODE_RELEASE_BUFFERS frees its buffers while idle. NULL when
 * OpenSSL cannot make the SSL.
 */
struct transport *transport_tls_server(struct tls_ctx *ctx,
                                       struct transport *lower);
struct transport *transport_tls_client(struct tls_ctx *ctx,
                                       struct transport *lower,
                                       const char *sni);

/* transport_free_stack: free t and every transport below it. Accepts
 * NULL. */
void transport_free_stack(struct transport *t);

/* transport_shutdown_stack: each transport's shutdown, top to bottom (a
 * WebSocket close frame, then TLS close_notify). */
void transport_shutdown_stack(struct transport *t);

/* transport_peer_info: the first peer_info down the stack, or NULL. */
const struct tls_info *transport_peer_info(const struct transport *t);

/* transport_secure: true when any transport of the stack is secure. */
bool transport_secure(const struct transport *t);

#endif
