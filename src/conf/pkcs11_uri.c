/*
 * pkcs11_uri.c - PIN attributes of PKCS#11 URIs (see pkcs11_uri.h).
 *
 * Only what mqttd itself must know is parsed here: which attributes carry
 * the PIN. The rest of the URI (token, object, type, id, ...) is passed on
 * to the engine unchanged; libp11 parses it.
 */
#include "pkcs11_uri.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "util.h"

#define SCHEME "pkcs11:"
#define SCHEME_LEN (sizeof(SCHEME) - 1)
#define PIN_VALUE "pin-value="
#define PIN_SOURCE "pin-source="
#define REDACTED "(redacted)"

bool pkcs11_uri_is(const char *s)
{
    return s != NULL && strncasecmp(s, SCHEME, SCHEME_LEN) == 0;
}

static bool has_attr(const char *seg, size_t len, const char *name)
{
    size_t n = strlen(name);

    return len >= n && strncasecmp(seg, name, n) == 0;
}

/* pct_decode: s[0..len) %-decoded into out[outlen] (NUL-terminated).
 * -1 on a bad escape, a decoded NUL or no room. */
static int pct_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int h, l;

            if (i + 2 >= len)
                return -1;
            h = util_hexval(s[i + 1]);
            l = util_hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* append: add s[0..len) to out at *o; false when it does not fit. */
static bool append(char *out, size_t outlen, size_t *o, const char *s,
                   size_t len)
{
    if (*o + len >= outlen)
        return false;
    memcpy(out + *o, s, len);
    *o += len;
    out[*o] = '\0';
    return true;
}

int pkcs11_uri_split(const char *uri, char *clean, size_t cleanlen, char *pin,
                     size_t pinlen, char *pin_file, size_t pflen, char *err,
                     size_t errlen)
{
    const char *p, *end;
    size_t o = 0;
    bool in_query = false, any_path = false, any_query = false;
    bool got_value = false, got_source = false;

    if (cleanlen == 0 || pinlen == 0 || pflen == 0)
        return -1;
    clean[0] = pin[0] = pin_file[0] = '\0';
    if (!pkcs11_uri_is(uri)) {
        snprintf(err, errlen, "not a pkcs11: URI");
        goto fail;
    }
    if (strlen(uri) > PKCS11_URI_MAX) {
        snprintf(err, errlen, "PKCS#11 URI longer than %d bytes",
                 PKCS11_URI_MAX);
        goto fail;
    }
    if (!append(clean, cleanlen, &o, uri, SCHEME_LEN))
        goto too_long;
    p = uri + SCHEME_LEN;
    for (;;) {
        size_t len;

        end = p + strcspn(p, ";?&");
        len = (size_t)(end - p);
        if (has_attr(p, len, PIN_VALUE)) {
            size_t n = sizeof(PIN_VALUE) - 1;

            if (got_value || got_source) {
                snprintf(err, errlen,
                         got_value ? "pin-value given twice"
                                   : "both pin-value and pin-source given");
                goto fail;
            }
            got_value = true;
            if (pct_decode(p + n, len - n, pin, pinlen) != 0) {
                snprintf(err, errlen,
                         "pin-value: bad %%-escape, NUL byte or longer than "
                         "%zu bytes",
                         pinlen - 1);
                goto fail;
            }
        } else if (has_attr(p, len, PIN_SOURCE)) {
            size_t n = sizeof(PIN_SOURCE) - 1;
            const char *v = p + n;
            size_t vl = len - n;

            if (got_value || got_source) {
                snprintf(err, errlen,
                         got_source ? "pin-source given twice"
                                    : "both pin-value and pin-source given");
                goto fail;
            }
            got_source = true;
            if (vl < 5 || strncasecmp(v, "file:", 5) != 0) {
                snprintf(err, errlen,
                         "pin-source: only file: is supported (e.g. "
                         "pin-source=file:/etc/mqttd/pin)");
                goto fail;
            }
            v += 5;
            vl -= 5;
            if (vl >= 2 && v[0] == '/' && v[1] == '/') {
                /* file://host/path: only an empty host (file:///path) */
                if (vl < 3 || v[2] != '/') {
                    snprintf(err, errlen,
                             "pin-source: a file: URI with a host name is "
                             "not supported (use file:///path)");
                    goto fail;
                }
                v += 2;
                vl -= 2;
            }
            if (vl == 0 || pct_decode(v, vl, pin_file, pflen) != 0) {
                snprintf(err, errlen,
                         "pin-source: empty path, bad %%-escape or path too "
                         "long");
                goto fail;
            }
        } else if (len > 0) {
            char sep;

            if (in_query) {
                sep = any_query ? '&' : '?';
                any_query = true;
            } else {
                sep = ';';
            }
            if ((in_query || any_path) && !append(clean, cleanlen, &o, &sep, 1))
                goto too_long;
            if (!in_query)
                any_path = true;
            if (!append(clean, cleanlen, &o, p, len))
                goto too_long;
        }
        if (*end == '\0')
            break;
        if (*end == '?')
            in_query = true;
        p = end + 1;
    }
    return 0;
too_long:
    snprintf(err, errlen, "PKCS#11 URI too long");
fail:
    OPENSSL_cleanse(pin, pinlen);
    pin[0] = '\0';
    return -1;
}

const char *pkcs11_uri_redact(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p;

    if (outlen == 0)
        return out;
    out[0] = '\0';
    if (s == NULL)
        return out;
    /* Not only pkcs11: URIs: a quoted or otherwise mistyped one must not
     * show its PIN either. Segments end at ; ? & and quotes. */
    p = s;
    for (;;) {
        const char *end = p + strcspn(p, ";?&\"'");
        size_t len = (size_t)(end - p);
        const char *v = NULL;
        bool ok;

        /* the attribute may follow the scheme in the same segment */
        if (has_attr(p, len, PIN_VALUE))
            v = p;
        else if (len > SCHEME_LEN && pkcs11_uri_is(p) &&
                 has_attr(p + SCHEME_LEN, len - SCHEME_LEN, PIN_VALUE))
            v = p + SCHEME_LEN;
        if (v != NULL)
            ok = append(out, outlen, &o, p, (size_t)(v - p)) &&
                 append(out, outlen, &o, PIN_VALUE REDACTED,
                        sizeof(PIN_VALUE REDACTED) - 1);
        else
            ok = append(out, outlen, &o, p, len);
        if (!ok || *end == '\0')
            break;
        if (!append(out, outlen, &o, end, 1))
            break;
        p = end + 1;
    }
    return out;
}
