/*
 * tls_engine.h - private keys held by an OpenSSL engine (Mosquitto's
 * tls_engine / tls_keyform engine), in practice a hardware token through
 * libp11's "pkcs11" engine. Private to src/net (tls.c).
 */
#ifndef MQTTD_TLS_ENGINE_H
#define MQTTD_TLS_ENGINE_H

#include <stddef.h>

#include <openssl/types.h> /* EVP_PKEY */

/*
 * tls_engine_load_key: the private key named 'keyfile' by engine
 * 'engine_id' (ENGINE_by_id, which loads engines-3/<id>.so on first use;
 * nothing is loaded before a listener asks). For a PKCS#11 URI the PIN
 * attributes are taken out first (pkcs11_uri_split): a pin-value, or the
 * content of a pin-source file without its trailing newline (CR/LF), is
 * handed to the engine with its "PIN" command and the URI goes on
 * without it; libp11 never sees, and so never prints, the PIN. The
 * engine never prompts (its UI reads fail), and libp11's own stderr
 * messages are turned off (QUIET). Returns the key (caller frees) and
 * the engine reference to give to tls_engine_release afterwards in
 * *engine_ref, or
 * NULL with "keyfile '<URI, PIN redacted>': reason" in err, e.g. "...:
 * the token refused the PIN (PIN incorrect)". The PIN is wiped from
 * mqttd's buffers before returning and appears in no message.
 */
EVP_PKEY *tls_engine_load_key(const char *engine_id, const char *keyfile,
                              void **engine_ref, char *err, size_t errlen);

/*
 * tls_engine_release: drop the reference tls_engine_load_key stored in
 * *engine_ref (the engine's functional reference, kept as long as the key
 * is in use: libp11 finalises the PKCS#11 module, ending the token
 * session, when the last one goes). Call after the SSL_CTX holding the
 * key is freed. Accepts NULL.
 */
void tls_engine_release(void *engine_ref);

#endif
