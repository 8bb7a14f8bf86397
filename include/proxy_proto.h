/*
 * proxy_proto.h - the PROXY protocol (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) read on a listener before the first TLS or MQTT byte:
 * a pure parser, and a transport layer (transport.h) that sits right
 * above the plain socket, below TLS.
 *
 *   socket bytes:  [ PROXY header ][ TLS records or MQTT packets ... ]
 *                  ^ consumed by the layer's handshake, exactly: never a
 *                    byte past the header (the TLS transport reads the
 *                    socket itself), so the layer peeks, then reads only
 *                    what belongs to the header
 *
 * Version 1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or
 * "PROXY UNKNOWN...\r\n", at most 107 bytes. Version 2: the 12-byte
 * signature, ver/cmd, family, a 16-bit length, addresses and TLVs; mqttd
 * takes at most PROXY_V2_MAX_LEN bytes after the 16-byte head. Of the
 * TLVs PP2_TYPE_SSL (client bits, verify result, and the sub-TLVs
 * PP2_SUBTYPE_SSL_VERSION and PP2_SUBTYPE_SSL_CN) is kept; a
 * PP2_TYPE_CRC32C is checked; the others are skipped after their bounds
 * are checked.
 */
#ifndef MQTTD_PROXY_PROTO_H
#define MQTTD_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct conf_listener;
struct transport;

/* parser results besides a header length */
#define PROXY_INCOMPLETE (-2)
#define PROXY_MALFORMED (-1)

#define PROXY_V1_MAX 107u      /* the spec's longest v1 line */
#define PROXY_V2_HEAD 16u      /* signature, ver/cmd, family, length */
#define PROXY_V2_MAX_LEN 2048u /* mqttd's bound on what follows */
#define PROXY_CN_MAX 256u      /* longest PP2_SUBTYPE_SSL_CN kept */
#define PROXY_SSL_VERSION_MAX 31u

/* PP2_TYPE_SSL client bits (proxy-protocol.txt 2.2.5) */
#define PROXY_CLIENT_SSL 0x01u
#define PROXY_CLIENT_CERT_CONN 0x02u
#define PROXY_CLIENT_CERT_SESS 0x04u

/* What a header said. Strings are NUL-terminated copies. */
struct proxy_hdr {
    uint8_t version; /* 1 or 2 */
    /* no client address: a v2 LOCAL command (the proxy's own connection,
     * e.g. a health check) or a v1 "PROXY UNKNOWN" */
    bool local;
    int family;                  /* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
    char src_ip[46], dst_ip[46]; /* "unix" for AF_UNIX, "" for UNSPEC */
    uint16_t src_port, dst_port;
    bool has_ssl;        /* a PP2_TYPE_SSL TLV was present */
    uint8_t ssl_client;  /* its PROXY_CLIENT_* bits */
    uint32_t ssl_verify; /* its verify field: 0 = certificate verified */
    bool has_cn;
    char ssl_cn[PROXY_CN_MAX + 1]; /* PP2_SUBTYPE_SSL_CN, no NUL inside */
    char ssl_version[PROXY_SSL_VERSION_MAX + 1];
};

/*
 * proxy_parse: parse a PROXY header (either version) at the start of
 * buf[0..len). Returns the header's length in bytes (> 0) with *h filled;
 * PROXY_INCOMPLETE when buf holds a valid prefix of a header and nothing
 * else (every byte of it belongs to the header); PROXY_MALFORMED with
 * *why set to a static reason otherwise. Pure: no I/O, no allocation.
 * Strict: single spaces, no leading zeros, ports 0..65535, addresses that
 * inet_pton accepts, v2 version 2 with command LOCAL or PROXY and a
 * STREAM (or UNSPEC) family, every TLV inside the header, a CRC32C TLV
 * that matches.
 */
int proxy_parse(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                const char **why);

/* Policy of a PROXY listener, checked as soon as the header is read. */
struct proxy_policy {
    uint8_t version;  /* 1 or 2: the only version accepted */
    bool require_tls; /* v2: the header must say the client used TLS */
    /* v2, TLS at the proxy: the header must say a client certificate was
     * verified (require_certificate) / was verified when given */
    bool require_cert;
    bool check_cert;
};

/*
 * proxy_check: apply policy p to a parsed header. Returns 0, or -1 with
 * *why set to a static reason ("expected PROXY protocol v2, got v1",
 * "client did not use TLS to the proxy", "no verified client
 * certificate", ...). A LOCAL/UNKNOWN header passes (it is closed later,
 * as a health check).
 */
int proxy_check(const struct proxy_policy *p, const struct proxy_hdr *h,
                const char **why);

/*
 * proxy_policy_for: the policy of PROXY listener l of snapshot cf, and the
 * deadline (seconds) for the header, plus the TLS handshake after it when
 * l has a certfile: connect_timeout (or tls_handshake_timeout when
 * shorter and l terminates TLS itself). With v2 and no certfile (TLS at
 * the proxy) require_certificate asks for a verified certificate in the
 * header, client_cert_mode optional refuses one the proxy failed to
 * verify.
 */
void proxy_policy_for(const struct conf *cf, const struct conf_listener *l,
                      struct proxy_policy *p, double *deadline);

/*
 * proxy_cert_identity: the username use_identity_as_username takes from a
 * v2 header (TLS terminated at the proxy): PP2_SUBTYPE_SSL_CN, when the
 * header says a client certificate was given and verified, the CN is
 * present, not empty and valid UTF-8. Writes it NUL-terminated to
 * out[outlen] and returns 0, or returns -1 with *why set ("no PROXY
 * header", "no verified client certificate in PROXY header", "no CN in
 * PROXY header", "CN not valid UTF-8", "identity too long"). h may be
 * NULL.
 */
int proxy_cert_identity(const struct proxy_hdr *h, char *out, size_t outlen,
                        const char **why);

/*
 * transport_proxy_new: the PROXY layer for an accepted socket under policy
 * p (copied). Insert it right above the plain transport
 * (conn_insert_layer). Its handshake reads the header without reading
 * past it and fails (XPRT_ERROR, stage "PROXY protocol") on a malformed
 * header, a policy refusal or EOF; a LOCAL/UNKNOWN header ends it with
 * XPRT_CLOSED ("PROXY protocol: LOCAL connection (health check)
 * closed"). After it, reads and writes pass through. Never NULL.
 */
struct transport *transport_proxy_new(const struct proxy_policy *p);

/* proxy_stack_hdr: the well-formed header read by the PROXY layer of the
 * stack whose top is t (also when the policy then refused it, so that the
 * refusal names the client), or NULL (no such layer, not read yet). */
const struct proxy_hdr *proxy_stack_hdr(const struct transport *t);

#endif
