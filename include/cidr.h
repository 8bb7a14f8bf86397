/*
 * cidr.h - IPv4/IPv6 address ranges ("10.0.0.0/8", "fd00::/8", or a single
 * address) for http_allow_from: parsed once at configuration load, matched
 * against an accepted peer's address. An IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d, from a dual-stack socket) matches IPv4 ranges.
 */
#ifndef MQTTD_CIDR_H
#define MQTTD_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, host bits cleared */
    unsigned prefix;  /* 0..32 or 0..128 */
};

/*
 * cidr_parse: "ADDR" or "ADDR/PREFIX" (numeric only, no host names) into
 * *out. Host bits set in ADDR are cleared. Returns 0, or -1 when s is not
 * a valid range (*out untouched).
 */
int cidr_parse(const char *s, struct cidr *out);

/* cidr_match: true when the peer address sa (AF_INET or AF_INET6) lies in
 * c. Other address families never match. */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/*
 * cidr_is_loopback: true when host (a listener address: a numeric address
 * or a host name) can only be reached from this machine: 127.0.0.0/8, ::1,
 * ::ffff:127.0.0.0/104 or "localhost". NULL (every address) is false.
 */
bool cidr_is_loopback(const char *host);

#endif
