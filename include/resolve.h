/*
 * resolve.h - host name resolution that never blocks the event loop: a
 * name is looked up with c-ares (ares_getaddrinfo: /etc/hosts, then DNS
 * as /etc/resolv.conf says) whose sockets are driven by ev_io watchers and
 * whose timeouts by an ev_timer; an IP literal is converted at once
 * without any lookup. No thread, no blocking call. Each lookup has its own
 * c-ares channel (lookups are rare: OCSP responders, bridges), so the
 * module holds no shared state and any loop (thread) may use it.
 *
 *   resolve_start(host, port) --IP literal--------------> fn (next loop run)
 *                             --name: c-ares on the loop--> fn(addrs | why)
 *   resolve_cancel(q)         fn is not called
 */
#ifndef MQTTD_RESOLVE_H
#define MQTTD_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;
struct resolve;

/* At most this many addresses are reported (in the resolver's order). */
#define RESOLVE_MAX_ADDRS 8

/* One resolved address, port included, ready for socket()/connect(). */
struct resolve_addr {
    int family; /* AF_INET or AF_INET6 */
    socklen_t len;
    struct sockaddr_storage sa;
};

/* Called once from the loop (never from inside resolve_start): n >= 1
 * addresses, or n == 0 and why the name did not resolve. Both pointers
 * are valid during the call only. The lookup frees itself after fn. */
typedef void (*resolve_fn)(void *ud, const struct resolve_addr *a, size_t n,
                           const char *why);

/*
 * resolve_start: the TCP addresses of host (a name, or an IPv4/IPv6
 * literal) with numeric port 'port'. Never NULL: a failure to start is
 * reported through fn from the loop. The lookup has no deadline of its own
 * beyond c-ares's (resolv.conf timeout and attempts): a caller with a
 * deadline cancels it.
 */
struct resolve *resolve_start(struct ev_loop *loop, const char *host,
                              const char *port, resolve_fn fn, void *ud);

/* resolve_cancel: stop the lookup now; fn is not called. Accepts NULL. */
void resolve_cancel(struct resolve *q);

#endif
