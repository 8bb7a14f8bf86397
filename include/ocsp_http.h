/*
 * ocsp_http.h - one OCSP exchange over HTTP/1.0 inside a libev loop: a
 * non-blocking TCP connect, then OpenSSL's OSSL_HTTP_REQ_CTX in
 * non-blocking mode over a socket BIO, driven by an ev_io that waits for
 * whichever direction OpenSSL needs; an ev_timer bounds the whole of it.
 * No thread, no blocking call: a host name is resolved with resolve.h
 * (c-ares on the loop), each of its addresses tried in turn.
 *
 *   ocsp_http_start -> resolve -> connect (EV_WRITE) -> POST request (EV_WRITE)
 *                   -> response (EV_READ, body <= OCSP_MAX_RESPONSE)
 *                   -> fn(ud, body, len, NULL)   or fn(ud, NULL, 0, why)
 */
#ifndef MQTTD_OCSP_HTTP_H
#define MQTTD_OCSP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct ocsp_http;

/* How an exchange ended. */
enum ocsp_http_end {
    OCSP_HTTP_OK,          /* body is the response's DER */
    OCSP_HTTP_UNREACHABLE, /* resolve/connect failed, or timed out */
    OCSP_HTTP_BAD,         /* the responder answered something unusable:
                              HTTP error, wrong type, over-long, truncated */
};

/* Called once, from the loop (never from inside ocsp_http_start); body is
 * valid during the call only; why is a reason text for a failure. */
typedef void (*ocsp_http_fn)(void *ud, enum ocsp_http_end end,
                             const uint8_t *body, size_t len, const char *why);

/*
 * ocsp_http_start: POST req (a DER OCSP request) to url ("http://host[:port]
 * /path"; https is refused) with a 'timeout' seconds bound on everything.
 * Never NULL: a failure to start is reported through fn on the next loop
 * iteration. The exchange frees itself after fn returns.
 */
struct ocsp_http *ocsp_http_start(struct ev_loop *loop, const char *url,
                                  const uint8_t *req, size_t reqlen,
                                  double timeout, ocsp_http_fn fn, void *ud);

/* ocsp_http_cancel: stop the exchange now; fn is not called. */
void ocsp_http_cancel(struct ocsp_http *h);

#endif
