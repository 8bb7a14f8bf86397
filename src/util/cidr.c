/*
 * cidr.c - address ranges for http_allow_from (see cidr.h). The text goes
 * through inet_pton only; the prefix through util_strtonum.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "util.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int cidr_parse(const char *s, struct cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash, *es;
    struct cidr c;
    long long prefix;
    size_t alen;
    unsigned max;

    memset(&c, 0, sizeof(c));
    slash = strchr(s, '/');
    alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= INET6_ADDRSTRLEN)
        goto fail;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, c.addr) == 1) {
        c.family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
        c.family = AF_INET6;
        max = 128;
    } else {
        goto fail;
    }
    prefix = max;
    if (slash != NULL &&
        (slash[1] == '\0' || slash[1] == '+' || slash[1] == '-' ||
         util_strtonum(slash + 1, 0, max, &prefix, &es) < 0))
        goto fail;
    c.prefix = (unsigned)prefix;
    /* clear the host bits */
    for (unsigned i = 0; i < 16; i++) {
        unsigned bit0 = i * 8;
        if (bit0 >= c.prefix)
            c.addr[i] = 0;
        else if (bit0 + 8 > c.prefix)
            c.addr[i] &= (uint8_t)(0xffu << (8 - (c.prefix - bit0)));
    }
    *out = c;
    return 0;
fail:
    return -1;
}

/* prefix_eq: the first 'bits' bits of a and b are equal. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;

    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[full] ^ b[full]) & (uint8_t)(0xffu << (8 - rest))) == 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    const uint8_t *p;

    if (sa->sa_family == AF_INET) {
        p = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)
                ->sin_addr;
        return c->family == AF_INET && prefix_eq(c->addr, p, c->prefix);
    }
    if (sa->sa_family != AF_INET6)
        return false;
    p = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)
            ->sin6_addr;
    if (c->family == AF_INET6)
        return prefix_eq(c->addr, p, c->prefix);
    return memcmp(p, v4mapped, sizeof(v4mapped)) == 0 &&
           prefix_eq(c->addr, p + 12, c->prefix);
}

bool cidr_is_loopback(const char *host)
{
    uint8_t a[16];

    if (host == NULL)
        return false;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const uint8_t one[16] = {[15] = 1};
        return memcmp(a, one, 16) == 0 ||
               (memcmp(a, v4mapped, sizeof(v4mapped)) == 0 && a[12] == 127);
    }
    return false;
}
