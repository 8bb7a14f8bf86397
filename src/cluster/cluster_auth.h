/*
 * cluster_auth.h - TLS and credentials of the NATS connection
 * (cluster_nats_cafile, _certfile, _keyfile, _user, _password,
 * _credentials; docs/cluster.md "Securing the NATS connection").
 */
#ifndef MQTTD_CLUSTER_AUTH_H
#define MQTTD_CLUSTER_AUTH_H

#include <stddef.h>

#include <nats/nats.h>

struct conf;

/* Sets the TLS and credential options of c on o (before the connect).
 * Returns 0, or -1 with a message in err that never holds the password
 * (a CA or key file cnats refuses, for instance). Loop thread, at
 * start only. */
int cluster_auth_apply(natsOptions *o, const struct conf *c, char *err,
                       size_t errlen);

/* Whether c asks for TLS: a CA, a certificate or a tls:// URL. */
int cluster_auth_tls(const struct conf *c);

#endif
