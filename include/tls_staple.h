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
 */
#ifndef MQTTD_TLS_STAPLE_H
#define MQTTD_TLS_STAPLE_H

struct ev_loop;
struct log;
struct tls_ctx;
struct tls_staple;

/*
 * tls_staple_new: stapling for a listener labelled 'label' (for log
 * lines, e.g. "listener 8883"), from 'file' (DER) when not NULL, else
 * from the AIA URL of the server certificate. Never NULL; does nothing
 * until tls_staple_attach. tls_staple_free accepts NULL.
 */
struct tls_staple *tls_staple_new(struct ev_loop *loop, struct log *lg,
                                  const char *label, const char *file);
void tls_staple_free(struct tls_staple *s);

/*
 * tls_staple_attach: staple for ctx's server certificate from now on
 * (holds a reference to ctx; the previous context stops stapling). A
 * different certificate than before drops the kept response and fetches
 * (or reads) a new one at once.
 */
void tls_staple_attach(struct tls_staple *s, struct tls_ctx *ctx);

#endif
