/*
 * test_passwd.c - password files: vectors written by Debian's
 * mosquitto_passwd 2.0.11 (tests/unit/auth/mosquitto.passwd), empty
 * passwords, unusable lines skipped with FILE:LINE warnings, file-level
 * errors, hash generation, editing and serialisation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "passwd.h"
#include "util.h"

#ifndef AUTH_FIXTURE_DIR
#define AUTH_FIXTURE_DIR "tests/unit/auth"
#endif

#define FIXTURE AUTH_FIXTURE_DIR "/mosquitto.passwd"

/* alice's line from the fixture, for building bad variants. */
#define ALICE_HASH                                                             \
    "$7$101$r5tkp8aL21kz8zXC$6Iv/S9h6XS/X1lavtmpSuZ/4RDPt7Si0k2T7OXNsIdYeC2+"  \
    "mKNIs0RMZqRcnyaLPvT8MEDFzyhqdiiT1snvbxw=="
#define CAROL_HASH                                                             \
    "$6$VHXs5EmS1IM6Jcxj$62Uvy9dkdwltwMtKMfpEvY/BZhhOF06mTQEdl1ttPsmTW/"       \
    "XwZq7VESKebmLqv50cZna/sIGgCQWvOu16oO5BZA=="
#define SALT12 "r5tkp8aL21kz8zXC"
#define HASH64                                                                 \
    "6Iv/S9h6XS/X1lavtmpSuZ/4RDPt7Si0k2T7OXNsIdYeC2+"                          \
    "mKNIs0RMZqRcnyaLPvT8MEDFzyhqdiiT1snvbxw=="

static enum passwd_result check(const struct passwd *pw, const char *u,
                                const char *p)
{
    return passwd_check(pw, u, (const uint8_t *)p, p ? strlen(p) : 0);
}

static void test_mosquitto_vectors(void **state)
{
    static const struct {
        const char *user, *pass;
        enum passwd_result want;
    } cases[] = {
        {"alice", "secret1", PASSWD_OK},
        {"alice", "secret2", PASSWD_BAD},
        {"alice", "", PASSWD_BAD},
        {"alice", NULL, PASSWD_BAD},
        {"alice", "secret1 ", PASSWD_BAD},
        {"bob", "p\xc3\xa4ssw\xc3\xb6rd", PASSWD_OK},
        {"bob", "passwort", PASSWD_BAD},
        {"carol", "hunter2", PASSWD_OK},
        {"carol", "hunter3", PASSWD_BAD},
        /* dave's entry is the hash of "": empty never authenticates */
        {"dave", "", PASSWD_BAD},
        {"dave", NULL, PASSWD_BAD},
        {"dave", "x", PASSWD_BAD},
        {"erin", "correct horse battery staple", PASSWD_OK},
        {"frank", "p", PASSWD_OK},
        {"frank", "p:w", PASSWD_BAD},
        {"grace", "long-salt", PASSWD_OK},
        {"grace", "long-salT", PASSWD_BAD},
        {"heidi", "six-long", PASSWD_OK},
        {"heidi", "six-lonG", PASSWD_BAD},
        {"Alice", "secret1", PASSWD_NO_USER},
        {"mallory", "secret1", PASSWD_NO_USER},
        {"", "", PASSWD_NO_USER},
    };
    char err[256] = "";
    struct passwd *pw = passwd_load(FIXTURE, err, sizeof(err));

    (void)state;
    if (pw == NULL)
        fail_msg("load %s: %s", FIXTURE, err);
    assert_int_equal(passwd_count(pw), 8);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        enum passwd_result r = check(pw, cases[i].user, cases[i].pass);
        if (r != cases[i].want)
            fail_msg("case %zu (%s/%s): got %d want %d", i, cases[i].user,
                     cases[i].pass ? cases[i].pass : "(null)", r,
                     cases[i].want);
    }
    assert_true(passwd_has_user(pw, "heidi"));
    assert_false(passwd_has_user(pw, "heid"));
    assert_false(passwd_has_user(pw, NULL));
    passwd_free(pw);
}

/* A passwd_warn_fn collecting "FILE:LINE: MSG". */
struct warnings {
    int n;
    char first[300], last[300];
};

static void collect(void *arg, const char *file, int line, const char *msg)
{
    struct warnings *w = arg;

    snprintf(w->last, sizeof(w->last), "%s:%d: %s", file, line, msg);
    if (w->n++ == 0)
        memcpy(w->first, w->last, sizeof(w->first));
}

static void test_bad_lines(void **state)
{
    static const struct {
        const char *text;
        const char *err;
    } cases[] = {
        {"alice\n", "t:1: no ':' between username and password hash"},
        {"# c\n\nalice " ALICE_HASH "\n",
         "t:3: no ':' between username and password hash"},
        {":" ALICE_HASH "\n", "t:1: empty username"},
        {"  :" ALICE_HASH "\n", "t:1: empty username"},
        {"alice:\n", "t:1: no password hash"},
        {"alice:plain\n",
         "t:1: unknown password hash type (expected $6$ or $7$)"},
        {"alice:$5$" SALT12 "$" HASH64 "\n",
         "t:1: unknown password hash type (expected $6$ or $7$)"},
        {"alice:$7$0$" SALT12 "$" HASH64 "\n",
         "t:1: iteration count out of range 1..10000000"},
        {"alice:$7$10000001$" SALT12 "$" HASH64 "\n",
         "t:1: iteration count out of range 1..10000000"},
        {"alice:$7$99999999999999999999$" SALT12 "$" HASH64 "\n",
         "t:1: iteration count out of range 1..10000000"},
        {"alice:$7$-5$" SALT12 "$" HASH64 "\n",
         "t:1: iteration count is not a number"},
        {"alice:$7$+5$" SALT12 "$" HASH64 "\n",
         "t:1: iteration count is not a number"},
        {"alice:$7$$" SALT12 "$" HASH64 "\n",
         "t:1: iteration count out of range 1..10000000"},
        {"alice:$7$101\n", "t:1: malformed $7$ hash (no iteration count)"},
        {"alice:$7$101$" SALT12 "\n",
         "t:1: malformed hash (no '$' between salt and hash)"},
        {"alice:$7$101$" SALT12 "$" HASH64 "$\n",
         "t:1: malformed hash (extra '$')"},
        {"alice:$7$101$r5tkp8aL21kz8zX!$" HASH64 "\n",
         "t:1: salt is not valid base64"},
        {"alice:$7$101$r5tkp8aL21kz8zX$" HASH64 "\n",
         "t:1: salt is not valid base64"},
        {"alice:$7$101$r5tkp8aL21kz$" HASH64 "\n",
         "t:1: salt must be 12 or 64 bytes"},
        {"alice:$7$101$" SALT12 "$6Iv/\n", "t:1: hash must be 64 bytes"},
        {"alice:$7$101$" SALT12 "$6Iv/S9h6XS/X1lavtmpSuZ/4RDPt7Si0k2T7OXNsIdY"
         "eC2+mKNIs0RMZqRcnyaLPvT8MEDFzyhqdiiT1snvbxw=\n",
         "t:1: hash is not valid base64"},
        {"alice:$6$" SALT12 "$" HASH64 "x\n", "t:1: hash is not valid base64"},
        {"al\xff:" ALICE_HASH "\n", "t:1: username is not valid UTF-8"},
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *t = cases[i].text;
        struct warnings w = {0};
        struct passwd *pw;
        char want[300], *out;

        err[0] = '\0';
        pw =
            passwd_parse_warn("t", t, strlen(t), collect, &w, err, sizeof(err));
        if (pw == NULL)
            fail_msg("case %zu failed the load: %s", i, err);
        snprintf(want, sizeof(want), "%s; entry ignored", cases[i].err);
        if (w.n != 1 || strcmp(w.last, want) != 0)
            fail_msg("case %zu: %d warnings, last '%s' want '%s'", i, w.n,
                     w.last, want);
        /* the user of a skipped line is denied */
        assert_int_equal(passwd_count(pw), 0);
        assert_int_equal(check(pw, "alice", "secret1"), PASSWD_NO_USER);
        /* mqttd-passwd writes the skipped line back unchanged */
        out = passwd_serialise(pw, NULL);
        assert_string_equal(out, t);
        free(out);
        passwd_free(pw);
    }
}

static void test_skipped_lines_keep_the_rest(void **state)
{
    /* the PasswordFileLines case of test_conformance.py */
    const char *t = "carol:" CAROL_HASH "\n\nbadline-without-colon\n"
                    "broken:$7$notahash\nalice:" ALICE_HASH "\n";
    struct warnings w = {0};
    char err[256] = "";
    struct passwd *pw =
        passwd_parse_warn("pw", t, strlen(t), collect, &w, err, sizeof(err));

    (void)state;
    assert_non_null(pw);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.first, "pw:3: no ':' between username and password "
                                 "hash; entry ignored");
    assert_string_equal(w.last, "pw:4: malformed $7$ hash (no iteration "
                                "count); entry ignored");
    assert_int_equal(passwd_count(pw), 2);
    assert_int_equal(check(pw, "carol", "hunter2"), PASSWD_OK);
    assert_int_equal(check(pw, "alice", "secret1"), PASSWD_OK);
    assert_int_equal(check(pw, "broken", "x"), PASSWD_NO_USER);
    passwd_free(pw);

    /* without a sink the same file loads the same way */
    pw = passwd_parse("pw", t, strlen(t), err, sizeof(err));
    assert_non_null(pw);
    assert_int_equal(passwd_count(pw), 2);
    passwd_free(pw);
}

static void test_duplicate_user_denied(void **state)
{
    const char *t = "alice:" ALICE_HASH "\ncarol:" CAROL_HASH
                    "\nalice:" CAROL_HASH "\nalice:" CAROL_HASH "\n";
    struct warnings w = {0};
    char err[256] = "", h[PASSWD_HASH_TEXT_MAX], *out;
    struct passwd *pw =
        passwd_parse_warn("t", t, strlen(t), collect, &w, err, sizeof(err));
    uint64_t stamp;

    (void)state;
    assert_non_null(pw);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.first, "t:3: duplicate username, user denied; "
                                 "entry ignored");
    assert_string_equal(w.last, "t:4: duplicate username, user denied; "
                                "entry ignored");
    /* neither line authenticates: which one was meant is unknown */
    assert_int_equal(check(pw, "alice", "secret1"), PASSWD_BAD);
    assert_int_equal(check(pw, "alice", "hunter2"), PASSWD_BAD);
    assert_int_equal(check(pw, "carol", "hunter2"), PASSWD_OK);
    assert_int_equal(passwd_count(pw), 2);
    stamp = passwd_user_stamp(pw, "alice");
    assert_true(stamp != 0);
    out = passwd_serialise(pw, NULL);
    assert_string_equal(out, t);
    free(out);

    /* setting the password again leaves one line and allows the user */
    assert_int_equal(passwd_hash_make(PASSWD_SHA512_PBKDF2, 3,
                                      (const uint8_t *)"new", 3, h, sizeof(h)),
                     0);
    assert_int_equal(passwd_set(pw, "alice", h, err, sizeof(err)), 0);
    assert_int_equal(check(pw, "alice", "new"), PASSWD_OK);
    assert_true(passwd_user_stamp(pw, "alice") != stamp);
    out = passwd_serialise(pw, NULL);
    assert_non_null(strstr(out, "alice:$7$3$"));
    assert_null(strstr(out, "alice:$6$"));
    free(out);

    /* removing a denied user removes every line of it */
    passwd_free(pw);
    pw = passwd_parse("t", t, strlen(t), err, sizeof(err));
    assert_int_equal(passwd_remove(pw, "alice"), 0);
    out = passwd_serialise(pw, NULL);
    assert_string_equal(out, "carol:" CAROL_HASH "\n");
    free(out);
    passwd_free(pw);
}

static void test_file_errors_fail(void **state)
{
    /* file-level problems still fail the load */
    const char t[] = "alice:" ALICE_HASH "\nb\0b:" CAROL_HASH "\n";
    char err[256] = "";

    (void)state;
    assert_null(passwd_parse("t", t, sizeof(t) - 1, err, sizeof(err)));
    assert_string_equal(err, "t:2: NUL byte in line");
}

static void test_good_syntax(void **state)
{
    /* comments, blank lines, CRLF, blanks around fields, no final LF */
    const char *t = "# users\r\n\r\n   \n  # indented comment\n"
                    " alice : " ALICE_HASH " \r\n"
                    "carol:" CAROL_HASH;
    char err[256] = "";
    struct passwd *pw = passwd_parse("t", t, strlen(t), err, sizeof(err));

    (void)state;
    if (pw == NULL)
        fail_msg("%s", err);
    assert_int_equal(passwd_count(pw), 2);
    assert_int_equal(check(pw, "alice", "secret1"), PASSWD_OK);
    assert_int_equal(check(pw, "carol", "hunter2"), PASSWD_OK);
    passwd_free(pw);

    pw = passwd_parse("empty", "", 0, err, sizeof(err));
    assert_non_null(pw);
    assert_int_equal(passwd_count(pw), 0);
    assert_int_equal(check(pw, "alice", "secret1"), PASSWD_NO_USER);
    passwd_free(pw);
}

static void test_limits(void **state)
{
    char err[256] = "";
    size_t n = PASSWD_MAX_LINE + 10;
    char *big = xmalloc(n);
    struct passwd *pw;

    (void)state;
    memset(big, 'a', n);
    pw = passwd_parse("t", big, n, err, sizeof(err));
    assert_null(pw);
    assert_string_equal(err, "t:1: line longer than 65536 bytes");
    free(big);

    pw = passwd_load("/nonexistent/pw", err, sizeof(err));
    assert_null(pw);
    assert_string_equal(err, "/nonexistent/pw: cannot open: No such file or "
                             "directory");
}

static void test_make_and_verify(void **state)
{
    static const struct {
        enum passwd_type type;
        unsigned long iter;
        const char *prefix;
        size_t len;
    } cases[] = {
        {PASSWD_SHA512_PBKDF2, 101, "$7$101$", 7 + 16 + 1 + 88},
        {PASSWD_SHA512_PBKDF2, 1, "$7$1$", 5 + 16 + 1 + 88},
        {PASSWD_SHA512, 0, "$6$", 3 + 16 + 1 + 88},
    };
    char h[PASSWD_HASH_TEXT_MAX], h2[PASSWD_HASH_TEXT_MAX];
    const uint8_t pw[] = "s\x00"
                         "ecret";
    const char *why = NULL;

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assert_int_equal(passwd_hash_make(cases[i].type, cases[i].iter, pw,
                                          sizeof(pw) - 1, h, sizeof(h)),
                         0);
        assert_int_equal(strncmp(h, cases[i].prefix, strlen(cases[i].prefix)),
                         0);
        assert_int_equal(strlen(h), cases[i].len);
        assert_int_equal(passwd_hash_verify(h, pw, sizeof(pw) - 1, &why), 1);
        assert_int_equal(passwd_hash_verify(h, pw, sizeof(pw) - 2, &why), 0);
        /* fresh salt each time */
        assert_int_equal(passwd_hash_make(cases[i].type, cases[i].iter, pw,
                                          sizeof(pw) - 1, h2, sizeof(h2)),
                         0);
        assert_string_not_equal(h, h2);
    }
    assert_int_equal(
        passwd_hash_make(PASSWD_SHA512_PBKDF2, 0, pw, 1, h, sizeof(h)), -1);
    assert_int_equal(
        passwd_hash_make(PASSWD_SHA512_PBKDF2, 10000001, pw, 1, h, sizeof(h)),
        -1);
    assert_int_equal(passwd_hash_make(PASSWD_SHA512, 0, pw, 1, h, 20), -1);
    assert_int_equal(passwd_hash_verify("$7$x", pw, 1, &why), -1);
    assert_non_null(why);
    assert_int_equal(
        passwd_hash_verify(ALICE_HASH, (const uint8_t *)"secret1", 7, &why), 1);
    assert_int_equal(
        passwd_hash_verify(CAROL_HASH, (const uint8_t *)"hunter2", 7, &why), 1);
}

static void test_edit_serialise(void **state)
{
    const char *t =
        "# head\n\nalice:" ALICE_HASH "\n# mid\ncarol:" CAROL_HASH "\n";
    char err[256] = "", h[PASSWD_HASH_TEXT_MAX];
    struct passwd *pw = passwd_parse("t", t, strlen(t), err, sizeof(err)), *pw2;
    char *out;
    size_t len;

    (void)state;
    assert_non_null(pw);
    out = passwd_serialise(pw, &len);
    assert_string_equal(out, t); /* round trip keeps comments */
    assert_int_equal(len, strlen(t));
    free(out);

    assert_int_equal(passwd_hash_make(PASSWD_SHA512_PBKDF2, 3,
                                      (const uint8_t *)"new", 3, h, sizeof(h)),
                     0);
    assert_int_equal(passwd_set(pw, "alice", h, err, sizeof(err)), 0);
    assert_int_equal(passwd_set(pw, "zed", h, err, sizeof(err)), 0);
    assert_int_equal(passwd_set(pw, "a:b", h, err, sizeof(err)), -1);
    assert_string_equal(err, "username contains ':'");
    assert_int_equal(passwd_set(pw, "", h, err, sizeof(err)), -1);
    assert_int_equal(passwd_set(pw, "x", "$7$1$bad", err, sizeof(err)), -1);
    assert_int_equal(passwd_remove(pw, "carol"), 0);
    assert_int_equal(passwd_remove(pw, "carol"), -1);
    assert_int_equal(passwd_count(pw), 2);
    assert_int_equal(check(pw, "alice", "new"), PASSWD_OK);
    assert_int_equal(check(pw, "alice", "secret1"), PASSWD_BAD);
    assert_int_equal(check(pw, "zed", "new"), PASSWD_OK);
    assert_int_equal(check(pw, "carol", "hunter2"), PASSWD_NO_USER);

    out = passwd_serialise(pw, &len);
    assert_non_null(strstr(out, "# head\n\nalice:$7$3$"));
    assert_non_null(strstr(out, "# mid\nzed:$7$3$"));
    pw2 = passwd_parse("t2", out, len, err, sizeof(err));
    assert_non_null(pw2);
    assert_int_equal(check(pw2, "zed", "new"), PASSWD_OK);
    free(out);
    passwd_free(pw2);
    passwd_free(pw);
}

static void test_many_users(void **state)
{
    /* exercise index growth and lookups */
    struct passwd *pw = passwd_new();
    char name[32], err[128];

    (void)state;
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(passwd_set(pw, name, CAROL_HASH, err, sizeof(err)), 0);
    }
    assert_int_equal(passwd_count(pw), 2000);
    for (int i = 0; i < 2000; i += 97) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_true(passwd_has_user(pw, name));
    }
    assert_false(passwd_has_user(pw, "user2000"));
    assert_int_equal(check(pw, "user1999", "hunter2"), PASSWD_OK);
    passwd_free(pw);
    passwd_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mosquitto_vectors),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_skipped_lines_keep_the_rest),
        cmocka_unit_test(test_duplicate_user_denied),
        cmocka_unit_test(test_file_errors_fail),
        cmocka_unit_test(test_good_syntax),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_make_and_verify),
        cmocka_unit_test(test_edit_serialise),
        cmocka_unit_test(test_many_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
