/*
 * test_proxy_proto.c - the PROXY protocol parser (proxy_parse), the
 * listener policy (proxy_check) and the CN identity (proxy_cert_identity):
 * valid v1/v2 headers, every truncation point of each (PROXY_INCOMPLETE),
 * a table of malformed headers, the SSL TLV bits, and the layer over a
 * socketpair reading no byte past the header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy_proto.h"
#include "transport.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: cmd, family byte, body[0..n) into out; its length. */
static size_t v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *body,
                 size_t n)
{
    memcpy(out, sig, 12);
    out[12] = (uint8_t)(0x20 | cmd);
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    if (n > 0)
        memcpy(out + 16, body, n);
    return 16 + n;
}

/* IPv4 192.0.2.1:56324 -> 198.51.100.2:1883, then extra[0..en). */
static size_t v2_tcp4(uint8_t *out, const uint8_t *extra, size_t en)
{
    uint8_t body[512] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x07, 0x5b};

    if (en > 0)
        memcpy(body + 12, extra, en);
    return v2(out, 1, 0x11, body, 12 + en);
}

/* An SSL TLV with client bits, verify and optional CN. */
static size_t ssl_tlv(uint8_t *out, uint8_t client, uint32_t verify,
                      const char *cn, size_t cnlen)
{
    size_t n = 0, l = 5 + (cn ? 3 + cnlen : 0);

    out[n++] = 0x20;
    out[n++] = (uint8_t)(l >> 8);
    out[n++] = (uint8_t)l;
    out[n++] = client;
    out[n++] = (uint8_t)(verify >> 24);
    out[n++] = (uint8_t)(verify >> 16);
    out[n++] = (uint8_t)(verify >> 8);
    out[n++] = (uint8_t)verify;
    if (cn) {
        out[n++] = 0x22;
        out[n++] = (uint8_t)(cnlen >> 8);
        out[n++] = (uint8_t)cnlen;
        memcpy(out + n, cn, cnlen);
        n += cnlen;
    }
    return n;
}

/* Every proper prefix of buf[0..n) is incomplete, the whole is n (the
 * header parsed into *h). */
static void check_prefixes(const uint8_t *buf, size_t n, struct proxy_hdr *h)
{
    const char *why = NULL;

    for (size_t k = 0; k < n; k++) {
        int r = proxy_parse(buf, k, h, &why);
        if (r != PROXY_INCOMPLETE)
            fail_msg("prefix %zu of %zu: %d (%s)", k, n, r, why ? why : "");
    }
    assert_int_equal(proxy_parse(buf, n, h, &why), (int)n);
}

static void test_v1_valid(void **state)
{
    static const char *ok[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 1883\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    };
    struct proxy_hdr h;
    const char *why = NULL;
    char buf[200];

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        check_prefixes((const uint8_t *)ok[i], strlen(ok[i]), &h);
    /* bytes after the header are not part of it */
    snprintf(buf, sizeof(buf), "%s\x10\x0c", ok[0]);
    assert_int_equal(proxy_parse((const uint8_t *)buf, strlen(buf), &h, &why),
                     (int)strlen(ok[0]));
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_string_equal(h.src_ip, "192.0.2.1");
    assert_int_equal(h.src_port, 56324);
    assert_string_equal(h.dst_ip, "198.51.100.2");
    assert_int_equal(h.dst_port, 1883);
    assert_int_equal(
        proxy_parse((const uint8_t *)ok[2], strlen(ok[2]), &h, &why), 15);
    assert_true(h.local);
}

static void test_v1_malformed(void **state)
{
    static const char *bad[] = {
        "GET / HTTP/1.1\r\n",
        "\x10\x0c\x00\x04MQTT",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 1883\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 1883\r\r",
        "PROXY TCP4  192.0.2.1 198.51.100.2 56324 1883\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 1883 9\r\n",
        "PROXY TCP4 192.0.2.256 198.51.100.2 56324 1883\r\n",
        "PROXY TCP4 2001:db8::1 198.51.100.2 56324 1883\r\n",
        "PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 65536 1883\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 01883 1883\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 -1 1883\r\n",
        "PROXY UDP4 192.0.2.1 198.51.100.2 1 1883\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 1883\x01\r\n",
        "proxy TCP4 192.0.2.1 198.51.100.2 1 1883\r\n",
        "PROXY UNKNOWNX\r\n",
    };
    struct proxy_hdr h;
    char longline[200];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        int r = proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &h, &why);
        if (r != PROXY_MALFORMED)
            fail_msg("case %zu: %d", i, r);
        assert_non_null(why);
    }
    /* no CRLF within 107 bytes */
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "PROXY UNKNOWN ", 14);
    {
        const char *why = NULL;
        assert_int_equal(proxy_parse((const uint8_t *)longline, 106, &h, &why),
                         PROXY_INCOMPLETE);
        assert_int_equal(proxy_parse((const uint8_t *)longline, 107, &h, &why),
                         PROXY_MALFORMED);
    }
}

static void test_v2_valid(void **state)
{
    uint8_t buf[600], tlv[300], a6[36];
    struct proxy_hdr h;
    const char *why = NULL;
    size_t n, t;

    (void)state;
    n = v2_tcp4(buf, NULL, 0);
    check_prefixes(buf, n, &h);
    assert_int_equal(proxy_parse(buf, n, &h, &why), 28);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_string_equal(h.src_ip, "192.0.2.1");
    assert_int_equal(h.src_port, 56324);
    assert_int_equal(h.dst_port, 1883);
    assert_false(h.has_ssl);

    /* LOCAL, no addresses (a health check) */
    n = v2(buf, 0, 0x00, NULL, 0);
    check_prefixes(buf, n, &h);
    assert_true(h.local);
    assert_int_equal(h.family, AF_UNSPEC);

    /* IPv6 with a NOOP TLV */
    for (int i = 0; i < 32; i++)
        a6[i] = 0;
    a6[15] = 1;
    a6[31] = 2;
    a6[32] = 0;
    a6[33] = 7;
    a6[34] = 0;
    a6[35] = 9;
    memcpy(tlv, a6, 36);
    memcpy(tlv + 36, "\x04\x00\x02xy", 5);
    n = v2(buf, 1, 0x21, tlv, 41);
    check_prefixes(buf, n, &h);
    assert_string_equal(h.src_ip, "::1");
    assert_int_equal(h.src_port, 7);

    /* SSL with a verified certificate and its CN */
    t = ssl_tlv(tlv, 0x07, 0, "client1", 7);
    n = v2_tcp4(buf, tlv, t);
    check_prefixes(buf, n, &h);
    assert_true(h.has_ssl);
    assert_int_equal(h.ssl_client, 7);
    assert_int_equal(h.ssl_verify, 0);
    assert_true(h.has_cn);
    assert_string_equal(h.ssl_cn, "client1");
}

static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void test_v2_crc(void **state)
{
    /* CRC32C over the whole header with the field zeroed (spec 2.2.3) */
    uint8_t buf[64], tlv[7] = {0x03, 0x00, 0x04, 0, 0, 0, 0};
    struct proxy_hdr h;
    const char *why = NULL;
    size_t n = v2_tcp4(buf, tlv, sizeof(tlv));
    int r = proxy_parse(buf, n, &h, &why);

    (void)state;
    assert_int_equal(r, PROXY_MALFORMED); /* 0 is not its CRC */
    assert_string_equal(why, "PROXY v2: CRC32C mismatch");
    /* the right value, computed here independently (bitwise CRC-32C,
     * polynomial 0x82F63B78: check value 0xE3069283 for "123456789") */
    {
        uint32_t crc = crc32c_ref(buf, n);
        assert_int_equal(crc32c_ref((const uint8_t *)"123456789", 9),
                         0xE3069283u);
        buf[n - 4] = (uint8_t)(crc >> 24);
        buf[n - 3] = (uint8_t)(crc >> 16);
        buf[n - 2] = (uint8_t)(crc >> 8);
        buf[n - 1] = (uint8_t)crc;
    }
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    buf[17] ^= 1;
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
}

static void test_v2_malformed(void **state)
{
    uint8_t buf[3000], tlv[400];
    struct proxy_hdr h;
    const char *why = NULL;
    size_t n, t;

    (void)state;
    /* version 1 in the v2 signature */
    n = v2_tcp4(buf, NULL, 0);
    buf[12] = 0x11;
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    /* command 2 */
    buf[12] = 0x22;
    assert_int_equal(proxy_parse(buf, 13, &h, &why), PROXY_MALFORMED);
    /* bad signature byte */
    n = v2_tcp4(buf, NULL, 0);
    buf[5] = 0;
    assert_int_equal(proxy_parse(buf, 6, &h, &why), PROXY_MALFORMED);
    /* UDP */
    n = v2_tcp4(buf, NULL, 0);
    buf[13] = 0x12;
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    /* unknown family */
    buf[13] = 0x41;
    assert_int_equal(proxy_parse(buf, 16, &h, &why), PROXY_MALFORMED);
    /* too short for the addresses */
    n = v2(buf, 1, 0x11, (const uint8_t *)"12345678", 8);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    /* longer than the bound: refused from the 16-byte head on */
    buf[14] = 0x08;
    buf[15] = 0x01;
    assert_int_equal(proxy_parse(buf, 16, &h, &why), PROXY_MALFORMED);
    assert_string_equal(why, "PROXY v2: header longer than 2048 bytes");
    /* a TLV overrunning the header */
    n = v2_tcp4(buf, (const uint8_t *)"\x04\x00\x09xy", 5);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    /* truncated TLV header */
    n = v2_tcp4(buf, (const uint8_t *)"\x04\x00", 2);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    /* SSL TLV too short, CN with NUL, two SSL TLVs */
    n = v2_tcp4(buf, (const uint8_t *)"\x20\x00\x02\x01\x00", 5);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    t = ssl_tlv(tlv, 7, 0, "a\0b", 3);
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    assert_string_equal(why, "PROXY v2: SSL CN contains NUL");
    t = ssl_tlv(tlv, 7, 0, "a", 1);
    memcpy(tlv + t, tlv, t);
    n = v2_tcp4(buf, tlv, 2 * t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
    /* sub-TLV overrunning the SSL TLV */
    t = ssl_tlv(tlv, 7, 0, "abc", 3);
    tlv[10] = 9;
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), PROXY_MALFORMED);
}

static void test_policy_and_identity(void **state)
{
    uint8_t buf[600], tlv[300];
    struct proxy_hdr h;
    struct proxy_policy p2 = {2, false, false, false};
    struct proxy_policy p1 = {1, false, false, false};
    const char *why = NULL;
    char id[64];
    size_t n, t;

    (void)state;
    n = v2_tcp4(buf, NULL, 0);
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    assert_int_equal(proxy_check(&p2, &h, &why), 0);
    assert_int_equal(proxy_check(&p1, &h, &why), -1);
    assert_string_equal(why, "expected PROXY protocol v1, got v2");
    p2.require_tls = true;
    assert_int_equal(proxy_check(&p2, &h, &why), -1);
    assert_int_equal(proxy_cert_identity(&h, id, sizeof(id), &why), -1);

    /* TLS, no certificate */
    t = ssl_tlv(tlv, 0x01, 0, NULL, 0);
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    assert_int_equal(proxy_check(&p2, &h, &why), 0);
    p2.require_cert = true;
    assert_int_equal(proxy_check(&p2, &h, &why), -1);
    assert_string_equal(why, "no verified client certificate in PROXY header");

    /* certificate given but not verified (verify != 0) */
    t = ssl_tlv(tlv, 0x03, 20, "mallory", 7);
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    assert_int_equal(proxy_check(&p2, &h, &why), -1);
    p2.require_cert = false;
    p2.check_cert = true;
    assert_int_equal(proxy_check(&p2, &h, &why), -1);
    assert_int_equal(proxy_cert_identity(&h, id, sizeof(id), &why), -1);

    /* verified, with CN (session-reused certificate bit) */
    t = ssl_tlv(tlv, 0x05, 0, "client1", 7);
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    p2.require_cert = true;
    assert_int_equal(proxy_check(&p2, &h, &why), 0);
    assert_int_equal(proxy_cert_identity(&h, id, sizeof(id), &why), 0);
    assert_string_equal(id, "client1");
    assert_int_equal(proxy_cert_identity(&h, id, 4, &why), -1);
    assert_string_equal(why, "identity too long");

    /* verified, no CN; CN not UTF-8 */
    t = ssl_tlv(tlv, 0x03, 0, NULL, 0);
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    assert_int_equal(proxy_cert_identity(&h, id, sizeof(id), &why), -1);
    assert_string_equal(why, "no CN in PROXY header");
    t = ssl_tlv(tlv, 0x03, 0, "\xff\xfe", 2);
    n = v2_tcp4(buf, tlv, t);
    assert_int_equal(proxy_parse(buf, n, &h, &why), (int)n);
    assert_int_equal(proxy_cert_identity(&h, id, sizeof(id), &why), -1);
    assert_string_equal(why, "CN not valid UTF-8");
    assert_int_equal(proxy_cert_identity(NULL, id, sizeof(id), &why), -1);

    /* LOCAL passes every policy (closed later as a health check) */
    n = v2(buf, 0, 0, NULL, 0);
    assert_int_equal(proxy_parse(buf, n, &h, &why), 16);
    assert_int_equal(proxy_check(&p2, &h, &why), 0);
}

/* The layer over a socketpair: a header arriving in pieces, then MQTT
 * bytes that stay in the socket for the layer above. */
static void test_layer_reads_header_only(void **state)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.9 198.51.100.2 4242 1883\r\n";
    struct proxy_policy p1 = {1, false, false, false};
    struct transport *plain, *px;
    const struct xprt_stage *st = NULL;
    const struct proxy_hdr *h;
    char why[200];
    uint8_t rest[8];
    size_t n = 0;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    plain = transport_plain_new(sv[0]);
    px = transport_proxy_new(&p1);
    px->lower = plain;
    px->fd = sv[0];
    assert_int_equal(px->ops->handshake(px, why, sizeof(why), &st),
                     XPRT_WANT_READ);
    assert_int_equal(write(sv[1], hdr, 10), 10);
    assert_int_equal(px->ops->handshake(px, why, sizeof(why), &st),
                     XPRT_WANT_READ);
    assert_null(proxy_stack_hdr(px));
    assert_int_equal(write(sv[1], hdr + 10, strlen(hdr) - 10),
                     strlen(hdr) - 10);
    assert_int_equal(write(sv[1], "\x10\x0c", 2), 2);
    assert_int_equal(px->ops->handshake(px, why, sizeof(why), &st), XPRT_OK);
    assert_string_equal(st->what, "PROXY protocol");
    h = proxy_stack_hdr(px);
    assert_non_null(h);
    assert_string_equal(h->src_ip, "192.0.2.9");
    assert_int_equal(h->src_port, 4242);
    assert_int_equal(px->ops->read(px, rest, sizeof(rest), &n), XPRT_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(rest, "\x10\x0c", 2);
    transport_free_stack(px);

    /* garbage: an error naming the reason; EOF mid-header too */
    plain = transport_plain_new(sv[0]);
    px = transport_proxy_new(&p1);
    px->lower = plain;
    px->fd = sv[0];
    assert_int_equal(write(sv[1], "PROXY TCP4 1", 12), 12);
    assert_int_equal(px->ops->handshake(px, why, sizeof(why), &st),
                     XPRT_WANT_READ);
    close(sv[1]);
    assert_int_equal(px->ops->handshake(px, why, sizeof(why), &st), XPRT_ERROR);
    assert_string_equal(why, "connection closed in the middle of the header");
    transport_free_stack(px);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_valid),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v2_valid),
        cmocka_unit_test(test_v2_crc),
        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_policy_and_identity),
        cmocka_unit_test(test_layer_reads_header_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
