/*
 * tls_staple.h - OCSP stapling of a listener's server certificate
 * (tls_ocsp_stapling true). The response is fetched in the background
 * from the certificate's AIA responder (ocsp_http.h) or read from
 * tls_ocsp_stapling_file (DER, kept fresh by an outside tool), verified
 * (signature, signer, freshness, status good) and kept; a handshake whose
 * client asks for the status (status_request) gets the kept DER through
 * SSL_CTX_set_tlsext_status_cb. Nothing is fetched inside a handshake; a
 * stale or invalid response is not stapled, and that is logged.
 *
 *   timer --fetch (AIA) or stat+read (file)--> verify --> der, next_update
 *   handshake --status_request--> der (when now < next_update)
 *
 * Refresh: halfway to nextUpdate, at most hourly; after a failure in
 * 60 s; a file is checked for changes every 5 s.
 *
 * With several event-loop threads, each has its own SSL_CTX and its own
 * tls_staple per listener, but only one of them (the "fetcher", on the
 * main thread) fetches or reads the response; it publishes the verified
 * DER in the process-wide struct tls_staples (mutex), where every
 * thread's status callback copies it from:
 *
 *   fetcher (main loop) --verified DER--> tls_staples[slot] (mutex)
 *   any thread's handshake --status_request--> copy if the certificate
 *                                             matches and it is fresh
 */
#ifndef MQTTD_TLS_STAPLE_H
#define MQTTD_TLS_STAPLE_H

#include <stdbool.h>

struct ev_loop;
struct log;
struct tls_ctx;
struct tls_staple;
struct tls_staples;

/* tls_staples_new: the responses being stapled, shared by every thread
 * (one slot per listener). Never NULL. tls_staples_free: once no
 * tls_staple uses it; accepts NULL. */
struct tls_staples *tls_staples_new(void);
void tls_staples_free(struct tls_staples *r);

/*
 * tls_staple_new: stapling for a listener labelled 'label' (for log
 * lines, e.g. "listener 8883") whose response is kept in reg's 'slot'
 * (the listener's index). A 'fetch'er gets the response from 'file' (DER)
 * when not NULL, else from the AIA URL of the server certificate, and
 * publishes it in reg; one that does not fetch only staples what the
 * fetcher of the same slot published, when it is about the same
 * certificate. Never NULL; does nothing until tls_staple_attach.
 * tls_staple_free accepts NULL (a fetcher's published response is
 * withdrawn).
 */
struct tls_staple *tls_staple_new(struct ev_loop *loop, struct log *lg,
                                  const char *label, const char *file,
                                  struct tls_staples *reg, unsigned slot,
                                  bool fetch);
void tls_staple_free(struct tls_staple *s);

/*
 * tls_staple_attach: staple for ctx's server certificate from now on
 * (holds a reference to ctx; the previous context stops stapling). A
 * different certificate than before drops the kept response and fetches
 * (or reads) a new one at once.
 */
void tls_staple_attach(struct tls_staple *s, struct tls_ctx *ctx);

#endif
