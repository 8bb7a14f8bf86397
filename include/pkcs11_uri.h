/*
 * pkcs11_uri.h - the PIN attributes of an RFC 7512 PKCS#11 URI used as a
 * keyfile ("pkcs11:token=mqttd;object=server;type=private?pin-value=1234"):
 * taken out of the URI before it goes anywhere else, and blanked wherever
 * a keyfile is shown, so that a PIN never reaches a log line or an error
 * message (libp11 prints the URI it failed to load on stderr).
 *
 *   pkcs11:token=mqttd;object=server;type=private?pin-source=file:/etc/pin
 *   \____/ \__________ path attributes _________/ \__ query attributes _/
 *          ';'-separated                          '&'-separated
 *
 * Like libp11, every attribute may stand in either part; pin-value and
 * pin-source are recognised wherever they are.
 */
#ifndef MQTTD_PKCS11_URI_H
#define MQTTD_PKCS11_URI_H

#include <stdbool.h>
#include <stddef.h>

#define PKCS11_URI_MAX 4096 /* longest URI accepted */
#define PKCS11_PIN_MAX 256  /* longest PIN (PKCS#11 tokens take far less) */

/* pkcs11_uri_is: true when s starts with "pkcs11:" (case-insensitive). */
bool pkcs11_uri_is(const char *s);

/*
 * pkcs11_uri_split: split uri into the URI without its pin-value and
 * pin-source attributes (clean[cleanlen], e.g.
 * "pkcs11:token=mqttd;object=server;type=private"), the percent-decoded
 * pin-value (pin[pinlen], "" when none) and the path of a "file:"
 * pin-source (pin_file[pflen], "" when none; "file:/p", "file:///p" and
 * "file:p" are accepted). Returns 0, or -1 with a reason that never
 * contains the PIN in err: not a pkcs11: URI, too long, a bad %-escape,
 * a PIN holding NUL, both pin-value and pin-source, a pin-source other
 * than file:, an attribute given twice. On -1, pin is zeroed.
 */
int pkcs11_uri_split(const char *uri, char *clean, size_t cleanlen, char *pin,
                     size_t pinlen, char *pin_file, size_t pflen, char *err,
                     size_t errlen);

/*
 * pkcs11_uri_redact: s fit to be shown: the value of every pin-value
 * attribute (after the scheme or one of ; ? & " ', up to the next of
 * those) is replaced by "(redacted)", in a pkcs11: URI or in any other
 * string (a quoted or mistyped URI must not show its PIN either); the rest
 * is copied. Always NUL-terminates out (outlen > 0); cut to fit between
 * segments, so never in the middle of a PIN. Returns out.
 */
const char *pkcs11_uri_redact(const char *s, char *out, size_t outlen);

#endif
