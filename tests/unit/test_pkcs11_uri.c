/*
 * test_pkcs11_uri.c - PIN attributes of PKCS#11 URIs: split (the URI
 * without them, the PIN, the pin-source path), every error, and redaction
 * (no PIN byte survives, whatever the attribute's place or case).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pkcs11_uri.h"
#include "util.h"

static void test_split(void **state)
{
    static const struct {
        const char *uri, *clean, *pin, *file;
    } ok[] = {
        {"pkcs11:token=t;object=k;type=private",
         "pkcs11:token=t;object=k;type=private", "", ""},
        {"pkcs11:token=t;object=k;type=private?pin-value=1234",
         "pkcs11:token=t;object=k;type=private", "1234", ""},
        /* in the path part, as libp11 also accepts */
        {"pkcs11:token=t;pin-value=12%3B4;object=k", "pkcs11:token=t;object=k",
         "12;4", ""},
        {"pkcs11:object=k?pin-source=file:/etc/pin&module-name=softhsm2",
         "pkcs11:object=k?module-name=softhsm2", "", "/etc/pin"},
        {"pkcs11:object=k?module-name=m&pin-source=file:///etc/p%20in",
         "pkcs11:object=k?module-name=m", "", "/etc/p in"},
        {"pkcs11:object=k?pin-source=file:rel/pin", "pkcs11:object=k", "",
         "rel/pin"},
        {"PKCS11:object=k?PIN-VALUE=x", "PKCS11:object=k", "x", ""},
    };
    static const struct {
        const char *uri, *why;
    } bad[] = {
        {"/etc/key.pem", "not a pkcs11: URI"},
        {"pkcs11:object=k?pin-value=1&pin-value=2", "pin-value given twice"},
        {"pkcs11:object=k?pin-value=1&pin-source=file:/p",
         "both pin-value and pin-source given"},
        {"pkcs11:object=k?pin-source=file:/p&pin-value=1",
         "both pin-value and pin-source given"},
        {"pkcs11:object=k?pin-source=|/bin/cat",
         "pin-source: only file: is supported (e.g. "
         "pin-source=file:/etc/mqttd/pin)"},
        {"pkcs11:object=k?pin-source=file://host/p",
         "pin-source: a file: URI with a host name is not supported (use "
         "file:///path)"},
        {"pkcs11:object=k?pin-source=file:",
         "pin-source: empty path, bad %-escape or path too long"},
        {"pkcs11:object=k?pin-value=12%0034",
         "pin-value: bad %-escape, NUL byte or longer than 256 bytes"},
        {"pkcs11:object=k?pin-value=12%4",
         "pin-value: bad %-escape, NUL byte or longer than 256 bytes"},
        {"pkcs11:object=k?pin-value=%zz",
         "pin-value: bad %-escape, NUL byte or longer than 256 bytes"},
    };
    char clean[PKCS11_URI_MAX + 1], pin[PKCS11_PIN_MAX + 1], file[256];
    char err[256];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        err[0] = '\0';
        if (pkcs11_uri_split(ok[i].uri, clean, sizeof(clean), pin, sizeof(pin),
                             file, sizeof(file), err, sizeof(err)) != 0)
            fail_msg("%s: %s", ok[i].uri, err);
        assert_string_equal(clean, ok[i].clean);
        assert_string_equal(pin, ok[i].pin);
        assert_string_equal(file, ok[i].file);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        assert_int_equal(pkcs11_uri_split(bad[i].uri, clean, sizeof(clean), pin,
                                          sizeof(pin), file, sizeof(file), err,
                                          sizeof(err)),
                         -1);
        assert_string_equal(err, bad[i].why);
        assert_string_equal(pin, "");
    }
    /* a URI whose clean form does not fit the buffer */
    assert_int_equal(pkcs11_uri_split("pkcs11:object=a-long-label", clean, 10,
                                      pin, sizeof(pin), file, sizeof(file), err,
                                      sizeof(err)),
                     -1);
    assert_string_equal(err, "PKCS#11 URI too long");
}

static void test_redact(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"pkcs11:token=t;object=k;type=private?pin-value=1234",
         "pkcs11:token=t;object=k;type=private?pin-value=(redacted)"},
        {"pkcs11:pin-value=1234;object=k",
         "pkcs11:pin-value=(redacted);object=k"},
        {"pkcs11:object=k?pin-value=1&pin-value=2",
         "pkcs11:object=k?pin-value=(redacted)&pin-value=(redacted)"},
        {"pkcs11:object=k?Pin-Value=abc",
         "pkcs11:object=k?pin-value=(redacted)"},
        {"pkcs11:object=k?pin-source=file:/p",
         "pkcs11:object=k?pin-source=file:/p"},
        {"/etc/mqttd/server.key", "/etc/mqttd/server.key"},
        /* not a URI (quoted, mistyped): the PIN is blanked all the same */
        {"\"pkcs11:object=k;pin-value=1234\"",
         "\"pkcs11:object=k;pin-value=(redacted)\""},
        {"pkcs11:pin-value=1234", "pkcs11:pin-value=(redacted)"},
        {"/x?pin-value=1234", "/x?pin-value=(redacted)"},
    };
    char out[128], tiny[30];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        assert_string_equal(pkcs11_uri_redact(cases[i].in, out, sizeof(out)),
                            cases[i].out);
    /* cut short: whole attributes or nothing, never a part of the PIN */
    pkcs11_uri_redact("pkcs11:object=k;pin-value=SECRETPIN", tiny,
                      sizeof(tiny));
    assert_null(strstr(tiny, "SECRET"));
    assert_string_equal(tiny, "pkcs11:object=k;");
    pkcs11_uri_redact("pkcs11:pin-value=SECRETPIN", tiny, 12);
    assert_string_equal(tiny, "pkcs11:");
    assert_true(pkcs11_uri_is("pkcs11:x"));
    assert_true(pkcs11_uri_is("PKCS11:x"));
    assert_false(pkcs11_uri_is("pkcs11"));
    assert_false(pkcs11_uri_is(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
