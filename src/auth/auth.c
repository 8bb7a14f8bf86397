/*
 * auth.c - the per-listener authenticator chain and ACL (see auth.h).
 *
 *   listener maps cert identities?  -> [mtls]            ALLOW | DENY
 *   password_file set?              -> [password file]   ALLOW | DENY |
 *                                                         NOT_MINE (no
 *                                                         username)
 *   always                          -> [anonymous]       ALLOW | DENY
 *
 * Mosquitto 2.0.11 behaviour this reproduces (checked against the real
 * broker): with a password file, a username missing from it is refused
 * even when allow_anonymous is true, and a client without a username is
 * judged by allow_anonymous; without a password file allow_anonymous
 * decides for everyone (with or without a username). All of these
 * refusals are CONNACK "not authorised" (3.1.1 rc 5, v5 0x87); only the
 * certificate-identity failures are "bad user name or password" (rc 4 /
 * 0x86), as in Mosquitto's handle_connect.c.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "auth_mtls.h"
#include "conf.h"
#include "passwd.h"
#include "util.h"

#define AUTH_MAX_CHAIN 3

struct auth {
    unsigned refs; /* loop thread only; see auth_ref */
    struct authenticator chain[AUTH_MAX_CHAIN];
    size_t n;
    struct acl *acl; /* NULL = no acl_file: allow all but $SYS writes */
    bool has_password_file;
    bool mtls; /* the chain starts with the mTLS authenticator */
    /* usernames are SAN identities (URIs such as SPIFFE IDs): '/' in them
     * is substituted for %u as several levels (acl_check_levels) */
    bool user_levels;
};

struct anon_state {
    bool allow;
};

/* ---- password file authenticator ---- */

static enum auth_result pw_check(void *state, const struct auth_client *c,
                                 const char **reason)
{
    const struct passwd *pw = state;

    if (c->username == NULL)
        return AUTH_NOT_MINE; /* judged by allow_anonymous */
    switch (passwd_check(pw, c->username, c->password, c->password_len)) {
    case PASSWD_OK:
        return AUTH_ALLOW;
    case PASSWD_BAD:
        *reason = c->password ? "bad password" : "missing password";
        return AUTH_DENY;
    case PASSWD_NO_USER:
    default:
        *reason = "unknown user";
        return AUTH_DENY;
    }
}

static void pw_free(void *state)
{
    passwd_free(state);
}

/* ---- anonymous authenticator ---- */

static enum auth_result anon_check(void *state, const struct auth_client *c,
                                   const char **reason)
{
    const struct anon_state *st = state;

    if (st->allow)
        return AUTH_ALLOW;
    *reason = c->username ? "unknown user" : "anonymous not allowed";
    return AUTH_DENY;
}

/* ---- chain ---- */

struct auth *auth_new(const struct conf *c, size_t li, char *err, size_t errlen)
{
    const struct conf_security *sec;
    const struct conf_listener *l = NULL;
    struct auth *a = xcalloc(1, sizeof(*a));
    struct anon_state *anon;

    a->refs = 1;
    if (li < c->nlisteners)
        l = &c->listeners[li];
    /* conf_listener_sec() without depending on conf.c. */
    sec = (c->per_listener_settings && l != NULL) ? &l->sec : &c->sec;

    if (l != NULL && (l->tls_enabled || l->proxy_protocol == 2) &&
        (l->tls.use_identity_as_username || l->tls.use_subject_as_username)) {
        auth_mtls_authenticator(&a->chain[a->n++]);
        a->mtls = true;
        a->user_levels = !l->tls.use_subject_as_username &&
                         l->tls.identity_source != CONF_ID_CN;
    }
    if (sec->password_file != NULL) {
        char perr[512];
        struct passwd *pw = passwd_load(sec->password_file, perr, sizeof(perr));
        if (pw == NULL) {
            if (sec->password_file_src != NULL)
                snprintf(err, errlen, "%s (password_file at %s:%d)", perr,
                         sec->password_file_src, sec->password_file_line);
            else
                snprintf(err, errlen, "%s", perr);
            goto fail;
        }
        a->chain[a->n].name = "password_file";
        a->chain[a->n].check = pw_check;
        a->chain[a->n].free = pw_free;
        a->chain[a->n].state = pw;
        a->n++;
        a->has_password_file = true;
    }
    anon = xcalloc(1, sizeof(*anon));
    /* conf_effective_anonymous(): unset means true only for the implicit
     * loopback listener (Mosquitto 2.0). */
    anon->allow = sec->allow_anonymous >= 0 ? sec->allow_anonymous != 0
                                            : c->implicit_listener;
    a->chain[a->n].name = "anonymous";
    a->chain[a->n].check = anon_check;
    a->chain[a->n].free = free;
    a->chain[a->n].state = anon;
    a->n++;

    if (sec->acl_file != NULL) {
        char aerr[512];
        a->acl = acl_load(sec->acl_file, aerr, sizeof(aerr));
        if (a->acl == NULL) {
            if (sec->acl_file_src != NULL)
                snprintf(err, errlen, "%s (acl_file at %s:%d)", aerr,
                         sec->acl_file_src, sec->acl_file_line);
            else
                snprintf(err, errlen, "%s", aerr);
            goto fail;
        }
    }
    return a;
fail:
    auth_free(a);
    return NULL;
}

struct auth *auth_ref(struct auth *a)
{
    a->refs++;
    return a;
}

void auth_unref(struct auth *a)
{
    auth_free(a);
}

void auth_free(struct auth *a)
{
    if (a == NULL || --a->refs > 0)
        return;
    for (size_t i = 0; i < a->n; i++) {
        if (a->chain[i].free != NULL)
            a->chain[i].free(a->chain[i].state);
    }
    acl_free(a->acl);
    free(a);
}

enum auth_result auth_connect(const struct auth *a, const struct auth_client *c,
                              const char **reason, bool *bad_credentials)
{
    *reason = NULL;
    *bad_credentials = false;
    for (size_t i = 0; i < a->n; i++) {
        const char *why = NULL;
        enum auth_result r = a->chain[i].check(a->chain[i].state, c, &why);

        if (r == AUTH_NOT_MINE)
            continue;
        if (r == AUTH_DENY) {
            *reason = why ? why : "denied";
            /* Mosquitto: certificate identity failures are CONNACK
             * "bad user name or password"; the rest "not authorised". */
            *bad_credentials = a->mtls && i == 0;
        }
        return r;
    }
    *reason = "no authenticator accepted";
    return AUTH_DENY;
}

static bool is_sys(const char *t, size_t len)
{
    return len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/');
}

bool auth_acl(const struct auth *a, const char *client_id, const char *username,
              const char *topic, size_t topic_len, enum auth_access access)
{
    /* $SYS is written by the broker only. */
    if (access == AUTH_WRITE && is_sys(topic, topic_len))
        return false;
    if (a == NULL || a->acl == NULL)
        return true;
    return acl_check_levels(a->acl, client_id, username, a->user_levels, topic,
                            topic_len, access);
}

bool auth_acl_bridge_state(const struct auth *a, const char *client_id,
                           const char *username, const char *topic,
                           size_t topic_len)
{
    static const char pfx[] = "$SYS/broker/connection/";

    if (topic_len < sizeof(pfx) - 1 || memcmp(topic, pfx, sizeof(pfx) - 1))
        return auth_acl(a, client_id, username, topic, topic_len, AUTH_WRITE);
    if (a == NULL || a->acl == NULL)
        return true;
    return acl_check(a->acl, client_id, username, topic, topic_len, AUTH_WRITE);
}

bool auth_has_password_file(const struct auth *a)
{
    return a != NULL && a->has_password_file;
}

uint64_t auth_user_stamp(const struct auth *a, const char *username)
{
    if (a == NULL || !a->has_password_file || a->mtls || username == NULL)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->chain[i].check == pw_check)
            return passwd_user_stamp(a->chain[i].state, username);
    }
    return 0;
}

bool auth_has_method(const struct auth *a, const char *m, size_t len)
{
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        const char *am = a->chain[i].method;
        if (am && a->chain[i].step && strlen(am) == len &&
            memcmp(am, m, len) == 0)
            return true;
    }
    return false;
}

/* ---- password files, checked ahead of a (re)load ------------------------ */

struct pw_check {
    conf_err_fn warn;
    void *arg;
};

/* pw_check_warn: a passwd_warn_fn handing a skipped line on as a
 * configuration warning. */
static void pw_check_warn(void *arg, const char *file, int line,
                          const char *msg)
{
    const struct pw_check *pc = arg;
    char buf[512];

    snprintf(buf, sizeof(buf), "%s%s", CONF_WARNING_PREFIX, msg);
    pc->warn(pc->arg, file, line, buf);
}

int auth_check_password_files(const struct conf *c, conf_err_fn warn,
                              void (*fail)(void *arg, const char *err),
                              void *arg)
{
    struct pw_check pc = {warn, arg};
    char err[512];
    int rc = 0;

    for (size_t i = 0; i < c->nlisteners; i++) {
        const char *f = conf_listener_sec(c, i)->password_file;
        struct passwd *pw;
        bool seen = false;

        for (size_t j = 0; f != NULL && j < i && !seen; j++) {
            const char *g = conf_listener_sec(c, j)->password_file;
            seen = g != NULL && strcmp(f, g) == 0;
        }
        if (f == NULL || seen)
            continue;
        pw = passwd_load_warn(f, pw_check_warn, &pc, err, sizeof(err));
        if (pw == NULL) {
            if (fail != NULL)
                fail(arg, err);
            rc = -1;
        }
        passwd_free(pw);
    }
    return rc;
}
