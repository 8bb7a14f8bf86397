/*
 * fuzz_pkcs11_uri.c - libFuzzer harness for the PIN attributes of PKCS#11
 * URIs (keyfile values): never crash; split either fails with a reason or
 * gives a clean URI that keeps the scheme and holds no pin- attribute;
 * every pin-value of the redacted form reads "(redacted)" (or was cut).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pkcs11_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[PKCS11_URI_MAX + 16], clean[PKCS11_URI_MAX + 1];
    char pin[PKCS11_PIN_MAX + 1], file[512], err[256], shown[512];

    if (size + 8 > sizeof(in))
        return 0;
    memcpy(in, "pkcs11:", 7);
    memcpy(in + 7, data, size);
    in[7 + size] = '\0';
    for (int raw = 0; raw < 2; raw++) {
        const char *s = raw ? (const char *)in + 7 : in;

        err[0] = '\0';
        pkcs11_uri_redact(s, shown, sizeof(shown));
        if (strlen(shown) >= sizeof(shown))
            abort();
        if (pkcs11_uri_split(s, clean, sizeof(clean), pin, sizeof(pin), file,
                             sizeof(file), err, sizeof(err)) != 0) {
            if (err[0] == '\0' || pin[0] != '\0')
                abort();
            continue;
        }
        if (!pkcs11_uri_is(clean))
            abort();
        for (const char *p = clean; (p = strpbrk(p, ";?&")) != NULL; p++)
            if (strncasecmp(p + 1, "pin-value=", 10) == 0 ||
                strncasecmp(p + 1, "pin-source=", 11) == 0)
                abort();
    }
    /* every pin-value attribute of the redacted form is blanked */
    if (pkcs11_uri_is(shown))
        for (const char *p = shown + 6; p != NULL; p = strpbrk(p + 1, ";?&"))
            if (strncasecmp(p + 1, "pin-value=", 10) == 0 &&
                strncmp(p + 11, "(redacted)", 10) != 0 && p[11] != '\0')
                abort();
    return 0;
}
