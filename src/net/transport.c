/*
 * transport.c - what applies to a whole transport stack (transport.h):
 * shutting it down, freeing it and asking it what it is.
 */
#include "transport.h"

#include <stddef.h>

void transport_free_stack(struct transport *t)
{
    while (t != NULL) {
        struct transport *lower = t->lower;
        t->ops->free(t);
        t = lower;
    }
}

void transport_shutdown_stack(struct transport *t)
{
    for (; t != NULL; t = t->lower)
        if (t->ops->shutdown != NULL)
            t->ops->shutdown(t);
}

const struct tls_info *transport_peer_info(const struct transport *t)
{
    for (; t != NULL; t = t->lower)
        if (t->ops->peer_info != NULL) {
            const struct tls_info *ti = t->ops->peer_info(t);
            if (ti != NULL)
                return ti;
        }
    return NULL;
}

bool transport_secure(const struct transport *t)
{
    for (; t != NULL; t = t->lower)
        if (t->ops->secure)
            return true;
    return false;
}
