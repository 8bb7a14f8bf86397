"""Configuration defaults that decide whether ordinary clients can connect
(issue 14): keepalive 0 against the default configuration and against
max_keepalive, over raw sockets so the CONNACK bytes are checked exactly."""

import struct
import unittest

from harness import BrokerTest, Raw

P_SERVER_KEEP_ALIVE = 0x13
P_MAXIMUM_QOS = 0x24


def connack_props(body):
    """The v5 CONNACK's (flags, reason, {property id: value}) for the
    properties this test reads (two-byte integers)."""
    flags, rc = body[0], body[1]
    n, mult, i = 0, 1, 2
    while True:
        b = body[i]
        i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    props, end = {}, i + n
    sizes = {0x11: 4, 0x12: None, 0x13: 2, 0x21: 2, 0x22: 2, 0x24: 1,
             0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1, 0x1F: None}
    while i < end:
        pid = body[i]
        i += 1
        size = sizes[pid]
        if size is None:
            (ln,) = struct.unpack("!H", body[i:i + 2])
            props[pid] = body[i + 2:i + 2 + ln]
            i += 2 + ln
        else:
            props[pid] = int.from_bytes(body[i:i + size], "big")
            i += size
    return flags, rc, props


class Keepalive(BrokerTest):
    def tearDown(self):
        super().tearDown()
        self.assertNotIn("ERROR: AddressSanitizer", self.b.log_text())
        self.assertNotIn("runtime error:", self.b.log_text())

    def connack(self, version, keepalive):
        r = Raw(self.b.port)
        self.addCleanup(r.close)
        body = r.connect(client_id="ka%d-%d" % (version, keepalive),
                         version=version, keepalive=keepalive)
        return r, body


class DefaultConfig(Keepalive):
    """max_keepalive is off by default: [MQTT-3.1.2-23] keepalive 0 turns
    keep-alive off, and every protocol version may use it."""

    def test_v3_keepalive_0_accepted(self):
        for version in (3, 4):
            r, body = self.connack(version, 0)
            self.assertEqual(body, b"\x00\x00", "v%d" % version)
            r.send(b"\xc0\x00")  # PINGREQ: the session is live
            self.assertEqual(r.recv_packet(), (0xD0, b""))

    def test_v5_keepalive_0_accepted_without_server_keep_alive(self):
        _, body = self.connack(5, 0)
        _, rc, props = connack_props(body)
        self.assertEqual(rc, 0)
        self.assertNotIn(P_SERVER_KEEP_ALIVE, props)

    def test_largest_keepalive_accepted(self):
        _, body = self.connack(4, 65535)
        self.assertEqual(body, b"\x00\x00")
        _, body = self.connack(5, 65535)
        _, rc, props = connack_props(body)
        self.assertEqual(rc, 0)
        self.assertNotIn(P_SERVER_KEEP_ALIVE, props)


class MaxKeepalive60(Keepalive):
    CONF = "max_keepalive 60\n"

    def test_v3_keepalive_0_refused(self):
        r, body = self.connack(4, 0)
        self.assertEqual(body, b"\x00\x02")  # identifier rejected
        self.assertTrue(r.closed())

    def test_v3_keepalive_above_refused_at_limit_accepted(self):
        r, body = self.connack(4, 61)
        self.assertEqual(body, b"\x00\x02")
        self.assertTrue(r.closed())
        _, body = self.connack(4, 60)
        self.assertEqual(body, b"\x00\x00")

    def test_v5_keepalive_0_gets_server_keep_alive(self):
        """[MQTT-3.2.2-21]: the client must use the server's value."""
        _, body = self.connack(5, 0)
        _, rc, props = connack_props(body)
        self.assertEqual(rc, 0)
        self.assertEqual(props.get(P_SERVER_KEEP_ALIVE), 60)

    def test_v5_keepalive_above_lowered_below_kept(self):
        _, body = self.connack(5, 120)
        _, rc, props = connack_props(body)
        self.assertEqual((rc, props.get(P_SERVER_KEEP_ALIVE)), (0, 60))
        _, body = self.connack(5, 30)
        _, rc, props = connack_props(body)
        self.assertEqual(rc, 0)
        self.assertNotIn(P_SERVER_KEEP_ALIVE, props)



class MaximumQos(Keepalive):
    """maximum_qos, Mosquitto's other spelling of max_qos, reaches the
    listener: [MQTT-3.2.2-9] CONNACK Maximum QoS."""
    CONF = "listener {port} 127.0.0.1\nallow_anonymous true\nmaximum_qos 1\n"

    def test_connack_maximum_qos(self):
        _, body = self.connack(5, 60)
        _, rc, props = connack_props(body)
        self.assertEqual((rc, props.get(P_MAXIMUM_QOS)), (0, 1))


if __name__ == "__main__":
    unittest.main()
