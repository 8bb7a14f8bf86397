/*
 * test_auth.c - the authenticator chain over hand-built conf snapshots:
 * anonymous on/off (and the Mosquitto 2.0 default rule), password file
 * good/bad/unknown/missing, mTLS identity present/absent, per-listener
 * settings, load errors, and auth_acl with and without an ACL file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "conf.h"
#include "util.h"

#ifndef AUTH_FIXTURE_DIR
#define AUTH_FIXTURE_DIR "tests/unit/auth"
#endif
#define PWFILE AUTH_FIXTURE_DIR "/mosquitto.passwd"
#define ACLFILE AUTH_FIXTURE_DIR "/acl.conf"

/* A snapshot with two listeners: 0 plain, 1 TLS mapping identities. */
struct fixture {
    struct conf c;
    struct conf_listener l[2];
};

static void init_conf(struct fixture *f, int anon, const char *pwfile,
                      const char *aclfile)
{
    memset(f, 0, sizeof(*f));
    f->c.listeners = f->l;
    f->c.nlisteners = 2;
    f->c.sec.allow_anonymous = anon;
    f->c.sec.password_file = (char *)(uintptr_t)pwfile;
    f->c.sec.acl_file = (char *)(uintptr_t)aclfile;
    f->c.sec.password_file_src = "mqttd.conf";
    f->c.sec.password_file_line = 7;
    f->c.sec.acl_file_src = "mqttd.conf";
    f->c.sec.acl_file_line = 8;
    f->l[0].port = 1883;
    f->l[0].sec.allow_anonymous = -1;
    f->l[1].port = 8883;
    f->l[1].tls_enabled = true;
    f->l[1].tls.use_identity_as_username = true;
    f->l[1].sec.allow_anonymous = -1;
}

static struct auth *must_new(const struct conf *c, size_t li)
{
    char err[512] = "";
    struct auth *a = auth_new(c, li, err, sizeof(err));

    if (a == NULL)
        fail_msg("auth_new: %s", err);
    return a;
}

struct ccase {
    const char *user, *pass, *identity, *cert_error;
    enum auth_result want;
    const char *reason;
    bool bad_credentials;
};

static void run(const struct auth *a, const struct ccase *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct auth_client cl;
        const char *reason = NULL;
        bool bad = true;
        enum auth_result r;

        memset(&cl, 0, sizeof(cl));
        cl.client_id = "cid";
        cl.username = cs[i].user;
        cl.password = (const uint8_t *)cs[i].pass;
        cl.password_len = cs[i].pass ? strlen(cs[i].pass) : 0;
        cl.cert_identity = cs[i].identity;
        cl.cert_error = cs[i].cert_error;
        cl.peer_ip = "192.0.2.1";
        cl.peer_port = 50000;
        r = auth_connect(a, &cl, &reason, &bad);
        if (r != cs[i].want)
            fail_msg("case %zu (%s): got %d reason %s", i,
                     cs[i].user ? cs[i].user : "-", r, reason ? reason : "-");
        if (r == AUTH_DENY) {
            if (reason == NULL || strcmp(reason, cs[i].reason) != 0)
                fail_msg("case %zu: reason '%s' want '%s'", i,
                         reason ? reason : "(null)", cs[i].reason);
            if (bad != cs[i].bad_credentials)
                fail_msg("case %zu: bad_credentials %d", i, bad);
        }
    }
}

static void test_anonymous(void **state)
{
    static const struct ccase on[] = {
        {NULL, NULL, NULL, NULL, AUTH_ALLOW, NULL, false},
        /* no password file: allow_anonymous decides for everyone */
        {"alice", "whatever", NULL, NULL, AUTH_ALLOW, NULL, false},
    };
    static const struct ccase off[] = {
        {NULL, NULL, NULL, NULL, AUTH_DENY, "anonymous not allowed", false},
        {"alice", "secret1", NULL, NULL, AUTH_DENY, "unknown user", false},
    };
    struct fixture f;
    struct auth *a;

    (void)state;
    init_conf(&f, 1, NULL, NULL);
    a = must_new(&f.c, 0);
    run(a, on, ARRAY_LEN(on));
    assert_false(auth_has_password_file(a));
    auth_free(a);

    init_conf(&f, 0, NULL, NULL);
    a = must_new(&f.c, 0);
    run(a, off, ARRAY_LEN(off));
    auth_free(a);

    /* unset: false when listeners are configured ... */
    init_conf(&f, -1, NULL, NULL);
    a = must_new(&f.c, 0);
    run(a, off, ARRAY_LEN(off));
    auth_free(a);
    /* ... true for the implicit loopback listener (Mosquitto 2.0) */
    f.c.implicit_listener = true;
    f.c.nlisteners = 0;
    a = must_new(&f.c, 0);
    run(a, on, ARRAY_LEN(on));
    auth_free(a);
}

static void test_password_file(void **state)
{
    /* Outcomes match Mosquitto 2.0.11 (checked with mosquitto_pub): every
     * refusal is "not authorised", never "bad user name or password". */
    static const struct ccase anon_on[] = {
        {"alice", "secret1", NULL, NULL, AUTH_ALLOW, NULL, false},
        {"carol", "hunter2", NULL, NULL, AUTH_ALLOW, NULL, false},
        {"alice", "secret2", NULL, NULL, AUTH_DENY, "bad password", false},
        {"alice", NULL, NULL, NULL, AUTH_DENY, "missing password", false},
        {"mallory", "x", NULL, NULL, AUTH_DENY, "unknown user", false},
        {"mallory", NULL, NULL, NULL, AUTH_DENY, "unknown user", false},
        {NULL, NULL, NULL, NULL, AUTH_ALLOW, NULL, false},
        /* a cert identity is ignored on a listener not mapping them */
        {"mallory", "x", "alice", NULL, AUTH_DENY, "unknown user", false},
    };
    static const struct ccase anon_off[] = {
        {"alice", "secret1", NULL, NULL, AUTH_ALLOW, NULL, false},
        {"alice", "bad", NULL, NULL, AUTH_DENY, "bad password", false},
        {NULL, NULL, NULL, NULL, AUTH_DENY, "anonymous not allowed", false},
    };
    struct fixture f;
    struct auth *a;

    (void)state;
    init_conf(&f, 1, PWFILE, NULL);
    a = must_new(&f.c, 0);
    assert_true(auth_has_password_file(a));
    run(a, anon_on, ARRAY_LEN(anon_on));
    auth_free(a);

    init_conf(&f, 0, PWFILE, NULL);
    a = must_new(&f.c, 0);
    run(a, anon_off, ARRAY_LEN(anon_off));
    auth_free(a);
}

static void test_mtls(void **state)
{
    /* Username/password are not used in identity mode; failures are
     * "bad user name or password" as Mosquitto 2.0.11 sends. */
    static const struct ccase cs[] = {
        {"device-1", NULL, "device-1", NULL, AUTH_ALLOW, NULL, false},
        {"alice", "wrong", "alice", NULL, AUTH_ALLOW, NULL, false},
        {NULL, NULL, NULL, NULL, AUTH_DENY, "no certificate identity", true},
        {"alice", "secret1", NULL, NULL, AUTH_DENY, "no certificate identity",
         true},
        {NULL, NULL, NULL, "no CN", AUTH_DENY, "no CN", true},
    };
    struct fixture f;
    struct auth *a;

    (void)state;
    init_conf(&f, 1, PWFILE, NULL);
    a = must_new(&f.c, 1);
    run(a, cs, ARRAY_LEN(cs));
    auth_free(a);

    /* use_subject_as_username maps too; without TLS nothing is mapped */
    f.l[1].tls.use_identity_as_username = false;
    f.l[1].tls.use_subject_as_username = true;
    a = must_new(&f.c, 1);
    run(a, cs, ARRAY_LEN(cs));
    auth_free(a);
    f.l[1].tls_enabled = false;
    a = must_new(&f.c, 1);
    run(a,
        (const struct ccase[]){
            {NULL, NULL, NULL, NULL, AUTH_ALLOW, NULL, false}},
        1);
    auth_free(a);
}

static void test_per_listener(void **state)
{
    static const struct ccase l0[] = {
        {NULL, NULL, NULL, NULL, AUTH_DENY, "anonymous not allowed", false},
        {"alice", "secret1", NULL, NULL, AUTH_ALLOW, NULL, false},
    };
    struct fixture f;
    struct auth *a;

    (void)state;
    init_conf(&f, 1, NULL, NULL); /* global: anonymous, no files */
    f.c.per_listener_settings = true;
    f.l[0].sec.allow_anonymous = 0;
    f.l[0].sec.password_file = (char *)(uintptr_t)PWFILE;
    a = must_new(&f.c, 0);
    run(a, l0, ARRAY_LEN(l0));
    auth_free(a);
    f.c.per_listener_settings = false; /* now the global block applies */
    a = must_new(&f.c, 0);
    run(a,
        (const struct ccase[]){
            {NULL, NULL, NULL, NULL, AUTH_ALLOW, NULL, false}},
        1);
    assert_false(auth_has_password_file(a));
    auth_free(a);
}

static void test_load_errors(void **state)
{
    char tmpl[] = "/tmp/test_auth_XXXXXX";
    int fd = mkstemp(tmpl);
    struct fixture f;
    char err[512] = "", want[600];
    const char bad[] = "# ok\nalice:$7$0$AAAA$BBBB\n";
    static const struct ccase skipped[] = {
        {"alice", "secret1", NULL, NULL, AUTH_DENY, "unknown user", false},
    };
    struct auth *a;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)sizeof(bad) - 1);
    close(fd);

    /* an unusable password-file line is skipped (Mosquitto 2.0.11): the
     * file loads and the user on that line is denied */
    init_conf(&f, 0, tmpl, NULL);
    a = must_new(&f.c, 0);
    run(a, skipped, ARRAY_LEN(skipped));
    auth_free(a);

    init_conf(&f, 1, NULL, tmpl); /* not an ACL file */
    assert_null(auth_new(&f.c, 0, err, sizeof(err)));
    snprintf(want, sizeof(want),
             "%s:2: unknown keyword (expected user, topic or pattern) "
             "(acl_file at mqttd.conf:8)",
             tmpl);
    assert_string_equal(err, want);
    unlink(tmpl);

    init_conf(&f, 1, "/nonexistent/pw", NULL);
    assert_null(auth_new(&f.c, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/pw: cannot open"));
    auth_free(NULL);
}

static void test_acl(void **state)
{
    static const struct {
        const char *cid, *user, *topic;
        enum auth_access acc;
        bool noacl, withacl;
    } cs[] = {
        {"c", NULL, "public/x", AUTH_READ, true, true},
        {"c", NULL, "public/x", AUTH_WRITE, true, false},
        {"c", NULL, "anon/write", AUTH_WRITE, true, true},
        {"c", "alice", "alice/x", AUTH_WRITE, true, true},
        {"c", "alice", "alice/secret/x", AUTH_READ, true, false},
        {"c", "alice", "$SYS/broker/load", AUTH_READ, true, true},
        {"c", "alice", "$SYS/broker/load", AUTH_SUBSCRIBE, true, true},
        /* $SYS is never writable, ACL or not, even with a read rule */
        {"c", "alice", "$SYS/broker/load", AUTH_WRITE, false, false},
        {"c", NULL, "$SYS", AUTH_WRITE, false, false},
        {"c", NULL, "$SYSTEM/x", AUTH_WRITE, true, false},
        {"dev9", NULL, "devices/dev9/up", AUTH_WRITE, true, true},
        {"#", NULL, "devices/#", AUTH_SUBSCRIBE, true, false},
        {"c", "bob", "bob/out", AUTH_WRITE, true, true},
        {"c", "bob", "bob/out", AUTH_SUBSCRIBE, true, false},
        {"c", "bob", "users/bob/inbox/1", AUTH_READ, true, true},
        {"c", "b/x", "users/b/x/inbox/1", AUTH_READ, true, false},
    };
    struct fixture f;
    struct auth *noacl, *withacl;

    (void)state;
    init_conf(&f, 1, NULL, NULL);
    noacl = must_new(&f.c, 0);
    init_conf(&f, 1, NULL, ACLFILE);
    withacl = must_new(&f.c, 0);
    for (size_t i = 0; i < ARRAY_LEN(cs); i++) {
        size_t tl = strlen(cs[i].topic);
        bool a1 =
            auth_acl(noacl, cs[i].cid, cs[i].user, cs[i].topic, tl, cs[i].acc);
        bool a2 = auth_acl(withacl, cs[i].cid, cs[i].user, cs[i].topic, tl,
                           cs[i].acc);
        if (a1 != cs[i].noacl || a2 != cs[i].withacl)
            fail_msg("case %zu %s: noacl %d withacl %d", i, cs[i].topic, a1,
                     a2);
    }
    auth_free(noacl);
    auth_free(withacl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anonymous),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_per_listener),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_acl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
