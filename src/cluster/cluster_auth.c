/*
 * cluster_auth.c - TLS and credentials of the NATS connection.
 *
 * The keys are checked together at configuration load (conf.c
 * cluster_opts_check: certfile with keyfile, user with password,
 * credentials alone); here they become cnats options. cnats reads the
 * files now, so a bad PEM file stops the start with its name.
 */
#include "cluster_auth.h"

#include <stdio.h>
#include <string.h>

#include "conf.h"

int cluster_auth_tls(const struct conf *c)
{
    return c->cluster_nats_cafile != NULL || c->cluster_nats_certfile != NULL ||
           (c->cluster_nats && strstr(c->cluster_nats, "tls://") != NULL);
}

static int fail(char *err, size_t errlen, const char *what, const char *file,
                natsStatus st)
{
    const char *why = nats_GetLastError(NULL);

    snprintf(err, errlen, "cluster: %s '%s' refused: %s", what,
             file ? file : "", why && *why ? why : natsStatus_GetText(st));
    return -1;
}

int cluster_auth_apply(natsOptions *o, const struct conf *c, char *err,
                       size_t errlen)
{
    natsStatus st;

    if (cluster_auth_tls(c)) {
        st = natsOptions_SetSecure(o, true);
        if (st != NATS_OK)
            return fail(err, errlen, "TLS", "", st);
    }
    if (c->cluster_nats_cafile) {
        st = natsOptions_LoadCATrustedCertificates(o, c->cluster_nats_cafile);
        if (st != NATS_OK)
            return fail(err, errlen, "cluster_nats_cafile",
                        c->cluster_nats_cafile, st);
    }
    if (c->cluster_nats_certfile) {
        st = natsOptions_LoadCertificatesChain(o, c->cluster_nats_certfile,
                                               c->cluster_nats_keyfile);
        if (st != NATS_OK)
            return fail(err, errlen, "cluster_nats_certfile/keyfile",
                        c->cluster_nats_certfile, st);
    }
    if (c->cluster_nats_user) {
        st = natsOptions_SetUserInfo(o, c->cluster_nats_user,
                                     c->cluster_nats_password);
        if (st != NATS_OK) {
            /* no detail: it could echo the password */
            snprintf(err, errlen, "cluster: cluster_nats_user refused: %s",
                     natsStatus_GetText(st));
            return -1;
        }
    }
    if (c->cluster_nats_credentials) {
        st = natsOptions_SetUserCredentialsFromFiles(
            o, c->cluster_nats_credentials, NULL);
        if (st != NATS_OK)
            return fail(err, errlen, "cluster_nats_credentials",
                        c->cluster_nats_credentials, st);
    }
    return 0;
}
