/*
 * tls_engine.c - private keys from an OpenSSL engine (see tls_engine.h).
 *
 * OpenSSL 3 deprecates the ENGINE API in favour of providers, but Debian 12
 * ships no PKCS#11 provider (no pkcs11-provider package in bookworm), only
 * libp11's engine (libengine-pkcs11-openssl), which is also what
 * Mosquitto's tls_engine uses. So this file calls ENGINE_* functions, and
 * only this file: each function that does is wrapped in
 *
 *   #pragma GCC diagnostic push / ignored "-Wdeprecated-declarations" / pop
 *
 * so that -Werror keeps catching every other deprecated call, here and in
 * the rest of the tree (OPENSSL_SUPPRESS_DEPRECATED or -Wno-deprecated for
 * the file would hide them all).
 *
 * Flow of one load:
 *
 *   keyfile "pkcs11:token=t;object=k;type=private?pin-source=file:/etc/p"
 *     | pkcs11_uri_split           (PIN attributes out, URI without them)
 *     | read the pin-source file   (trailing CR/LF stripped)
 *     v
 *   ENGINE_by_id("pkcs11") -> QUIET -> ENGINE_init -> "PIN" command
 *     -> ENGINE_load_private_key("pkcs11:token=t;object=k;type=private")
 *     -> EVP_PKEY
 *   the functional reference stays with the caller's context as long as
 *   the key is in use (tls_engine_release): libp11 finalises the module,
 *   ending the token session, when the last one goes
 */
#include "tls_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ui.h>
#ifndef OPENSSL_NO_ENGINE
#include <openssl/engine.h>
#endif

#include "pkcs11_uri.h"

/* engine_reason: the reasons (not the data strings) of OpenSSL's error
 * queue, "; "-joined and distinct; empties the queue. */
static void engine_reason(char *out, size_t outlen)
{
    unsigned long e;
    size_t used = 0;

    out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        char one[128];

        if (r == NULL)
            snprintf(one, sizeof(one), "error %08lx", e);
        else
            snprintf(one, sizeof(one), "%s", r);
        if (strstr(out, one) != NULL || used + 3 >= outlen)
            continue;
        used += (size_t)snprintf(out + used, outlen - used, "%s%s",
                                 used ? "; " : "", one);
        if (used >= outlen)
            used = outlen - 1;
    }
    if (out[0] == '\0')
        snprintf(out, outlen, "unknown error");
}

/* read_pin_file: the PIN in 'path' without trailing CR/LF (a file written
 * with echo has one; libp11 alone would send it as part of the PIN). */
static int read_pin_file(const char *path, char *pin, size_t pinlen, char *why,
                         size_t whylen)
{
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        snprintf(why, whylen, "pin-source '%.200s': %s", path, strerror(errno));
        return -1;
    }
    while (n < pinlen) {
        ssize_t r = read(fd, pin + n, pinlen - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, whylen, "pin-source '%.200s': %s", path,
                     strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n == pinlen) {
        snprintf(why, whylen, "pin-source '%.200s': longer than %zu bytes",
                 path, pinlen - 1);
        goto fail;
    }
    while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
        n--;
    pin[n] = '\0';
    if (n == 0 || memchr(pin, '\0', n) != NULL) {
        snprintf(why, whylen, "pin-source '%.200s': %s", path,
                 n == 0 ? "empty" : "holds a NUL byte");
        goto fail;
    }
    close(fd);
    return 0;
fail:
    OPENSSL_cleanse(pin, pinlen);
    close(fd);
    return -1;
}

#ifndef OPENSSL_NO_ENGINE
/* no_prompt: a UI reader that fails, so that the engine never asks for
 * a PIN on a terminal (a daemon started by hand still has one). */
static int no_prompt(UI *ui, UI_STRING *uis)
{
    (void)ui;
    (void)uis;
    return 0;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* engine_load: the ENGINE_* part (deprecated API, see the file comment). */
static EVP_PKEY *engine_load(const char *engine_id, const char *key_id,
                             const char *pin, ENGINE **ref, char *why,
                             size_t whylen)
{
    ENGINE *e = NULL;
    UI_METHOD *ui = NULL;
    EVP_PKEY *k = NULL;
    bool inited = false;
    char reason[256];

    ERR_clear_error();
    e = ENGINE_by_id(engine_id);
    if (e == NULL) {
        engine_reason(reason, sizeof(reason));
        snprintf(why, whylen,
                 "tls_engine '%s' cannot be loaded (for pkcs11: is "
                 "libengine-pkcs11-openssl installed?): %s",
                 engine_id, reason);
        goto fail;
    }
    /* libp11 prints errors (with the URI) on stderr unless told not to;
     * optional: other engines may not know the command */
    (void)ENGINE_ctrl_cmd_string(e, "QUIET", NULL, 1);
    ERR_clear_error();
    if (ENGINE_init(e) != 1) {
        engine_reason(reason, sizeof(reason));
        snprintf(why, whylen, "tls_engine '%s' does not initialise: %s",
                 engine_id, reason);
        goto fail;
    }
    inited = true;
    if (pin[0] != '\0' && ENGINE_ctrl_cmd_string(e, "PIN", pin, 0) != 1) {
        engine_reason(reason, sizeof(reason));
        snprintf(why, whylen,
                 "tls_engine '%s' takes no PIN (no PIN command): %s", engine_id,
                 reason);
        goto fail;
    }
    ui = UI_create_method("mqttd: no PIN prompt");
    if (ui == NULL || UI_method_set_reader(ui, no_prompt) != 0) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    k = ENGINE_load_private_key(e, key_id, ui, NULL);
    if (k == NULL) {
        engine_reason(reason, sizeof(reason));
        if (strstr(reason, "PIN incorrect") != NULL ||
            strstr(reason, "PIN invalid") != NULL ||
            strstr(reason, "PIN len") != NULL)
            snprintf(why, whylen, "the token refused the PIN (%s)", reason);
        else if (strstr(reason, "PIN locked") != NULL)
            snprintf(why, whylen, "the token's PIN is locked (%s)", reason);
        else if (pin[0] == '\0')
            snprintf(why, whylen,
                     "the engine cannot load the key: %s (no PIN given: "
                     "add pin-value= or pin-source=file: to the URI)",
                     reason);
        else
            snprintf(why, whylen,
                     "the engine cannot load the key (check token=, "
                     "object= and the PKCS#11 module): %s",
                     reason);
    }
fail:
    UI_destroy_method(ui);
    if (k != NULL) {
        *ref = e; /* functional + structural reference, for the key */
    } else {
        if (inited)
            ENGINE_finish(e);
        ENGINE_free(e);
    }
    ERR_clear_error();
    return k;
}

void tls_engine_release(void *engine_ref)
{
    ENGINE *e = engine_ref;

    if (e == NULL)
        return;
    ENGINE_finish(e);
    ENGINE_free(e);
}
#pragma GCC diagnostic pop
#else
void tls_engine_release(void *engine_ref)
{
    (void)engine_ref;
}
#endif

EVP_PKEY *tls_engine_load_key(const char *engine_id, const char *keyfile,
                              void **engine_ref, char *err, size_t errlen)
{
    char shown[512], why[512];
    char clean[PKCS11_URI_MAX + 1], pin[PKCS11_PIN_MAX + 1], pinfile[PATH_MAX];
    const char *key_id = keyfile;
    EVP_PKEY *k = NULL;

    *engine_ref = NULL;
    pin[0] = '\0';
    why[0] = '\0';
    pkcs11_uri_redact(keyfile, shown, sizeof(shown));
    if (pkcs11_uri_is(keyfile)) {
        if (pkcs11_uri_split(keyfile, clean, sizeof(clean), pin, sizeof(pin),
                             pinfile, sizeof(pinfile), why, sizeof(why)) != 0)
            goto done;
        if (pinfile[0] != '\0' &&
            read_pin_file(pinfile, pin, sizeof(pin), why, sizeof(why)) != 0)
            goto done;
        key_id = clean;
    }
#ifndef OPENSSL_NO_ENGINE
    {
        ENGINE *ref = NULL;

        k = engine_load(engine_id, key_id, pin, &ref, why, sizeof(why));
        *engine_ref = ref;
    }
    /* belt and braces: no message may carry the PIN */
    if (k == NULL && pin[0] != '\0' && strstr(why, pin) != NULL)
        snprintf(why, sizeof(why), "the engine cannot load the key");
#else
    (void)engine_id;
    (void)key_id;
    snprintf(why, sizeof(why), "this OpenSSL is built without engines");
#endif
done:
    OPENSSL_cleanse(pin, sizeof(pin));
    if (k == NULL)
        snprintf(err, errlen, "keyfile '%s': %s", shown, why);
    return k;
}
