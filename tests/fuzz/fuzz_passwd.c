/*
 * fuzz_passwd.c - libFuzzer harness for the password file loader: any
 * input must either load or fail with a "NAME:LINE: reason" message, and
 * a loaded file must serialise to text that loads again with the same
 * users.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "passwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct passwd *pw, *pw2;
    char *text;
    size_t len;

    err[0] = '\0';
    pw = passwd_parse("fuzz", (const char *)data, size, err, sizeof(err));
    if (pw == NULL) {
        if (strncmp(err, "fuzz:", 5) != 0)
            abort();
        return 0;
    }
    /* Only probe users cheaply: $7$ entries may carry up to 10M rounds. */
    (void)passwd_has_user(pw, "alice");
    text = passwd_serialise(pw, &len);
    pw2 = passwd_parse("fuzz2", text, len, err, sizeof(err));
    if (pw2 == NULL || passwd_count(pw2) != passwd_count(pw))
        abort();
    passwd_free(pw2);
    free(text);
    passwd_free(pw);
    return 0;
}
