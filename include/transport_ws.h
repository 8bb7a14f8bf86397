/*
 * transport_ws.h - MQTT over WebSockets (RFC 6455, MQTT 5.0 section 6): a
 * transport layer (transport.h) pushed over the plain or the TLS transport of
 * an accepted connection with conn_push_layer().
 *
 *   conn  <- MQTT bytes ->  [ WebSocket layer ]  <- frames ->  [ TLS | plain ]
 *
 *   handshake: the lower handshake first (TLS), then the HTTP/1.1 upgrade
 *              request read with http_parse (bounded by headers_size) and
 *              checked (GET, HTTP/1.1, path, Host, Upgrade, Connection,
 *              Sec-WebSocket-Key, Sec-WebSocket-Version 13, Origin,
 *              subprotocol mqtt or mqttv3.1); "101 Switching Protocols"
 *              with Sec-WebSocket-Accept, or 400/403/404/426 with a reason
 *              and the handshake fails with that reason
 *   read:      each frame header is checked; the payload of binary and
 *              continuation frames, unmasked here, is the MQTT byte
 *              stream whatever the frame boundaries; control frames go to
 *              libwslay, which answers ping with pong and close with close
 *   write:     each write becomes one binary frame (framed here)
 *   errors:    the header checks make the close status and the log line
 *              say why: unmasked frame,
 *              RSV bit, reserved opcode, fragmented or over-125-byte
 *              control frame, continuation out of place -> 1002; a text
 *              frame -> 1003 [MQTT-6.0.0-1]; a frame over max_frame -> 1009
 */
#ifndef MQTTD_TRANSPORT_WS_H
#define MQTTD_TRANSPORT_WS_H

#include <stddef.h>
#include <stdint.h>

struct log;
struct transport;

/* Default bound of the upgrade request head (websockets_headers_size). */
#define WS_HEADERS_SIZE_DEFAULT 4096u
#define WS_HEADERS_SIZE_MIN 256u
#define WS_HEADERS_SIZE_MAX 65536u

/* Length of a Sec-WebSocket-Accept value, without the NUL. */
#define WS_ACCEPT_LEN 28

/* What one WebSocket listener allows; copied by transport_ws_server except
 * log and peer, which are borrowed. */
struct ws_conf {
    const char *path;           /* the only path served; NULL: any */
    const char *const *origins; /* allowed Origin values; none: any */
    size_t norigins;
    size_t headers_size; /* max bytes of the request head */
    uint64_t max_frame;  /* max payload bytes of one frame (1009 beyond) */
    struct log *log;     /* borrowed; must outlive the transport */
    const char *peer;    /* peer address for log lines: borrowed, read at
                            log time, must outlive the transport (conn's
                            conn_peer_ip, which a PROXY header updates) */
};

/*
 * transport_ws_server: a server-side WebSocket layer configured by wc
 * (copied: wc need not outlive it; wc->log and wc->peer must). Push it with
 * conn_push_layer() before conn_start(). Never NULL.
 */
struct transport *transport_ws_server(const struct ws_conf *wc);

/*
 * ws_accept_key: the Sec-WebSocket-Accept value for the client's key
 * key[0..keylen) (base64 of SHA-1 of key and the RFC 6455 GUID, computed
 * with OpenSSL) into out, NUL-terminated. Returns 0, or -1 when the key is
 * not the base64 of 16 bytes (RFC 6455 4.2.1).
 */
int ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1]);

#endif
