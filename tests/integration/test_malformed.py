"""Bad input over raw sockets: each class closes only the offending
connection, logs why with the peer address, and leaves other clients
untouched. Regression tests for Mosquitto CVE classes are named after the
CVE."""

import socket
import re
import struct
import time
import unittest

from harness import (BrokerTest, Raw, Sub, connect_pkt, mstr, packet, pub,
                     publish_pkt, subscribe_pkt, varint)


def conn_then(body):
    """A CONNECT followed by a bad packet."""
    return connect_pkt(client_id="bad") + body


CASES = [
    # name, bytes, log fragment
    ("first_packet_not_connect", publish_pkt("a", "x"), "first packet is not CONNECT"),
    ("reserved_flags_connect", b"\x11" + connect_pkt()[1:], "reserved"),
    ("five_byte_remaining_length", b"\x10\xff\xff\xff\xff\x01", "remaining length"),
    ("non_minimal_remaining_length", b"\x10\x80\x00", "remaining length"),
    ("bad_protocol_name", packet(0x10, mstr("MQTX") + b"\x04\x02\x00\x3c" + mstr("x")), ""),
    ("connect_reserved_flag", packet(0x10, mstr("MQTT") + b"\x04\x03\x00\x3c" + mstr("x")), ""),
    ("will_qos_without_will", packet(0x10, mstr("MQTT") + b"\x04\x0a\x00\x3c" + mstr("x")), ""),
    ("invalid_utf8_client_id", packet(0x10, mstr("MQTT") + b"\x04\x02\x00\x3c" + mstr(b"\xc3\x28")), ""),
    ("nul_in_client_id", packet(0x10, mstr("MQTT") + b"\x04\x02\x00\x3c" + mstr(b"a\x00b")), ""),
    ("second_connect", conn_then(connect_pkt()), "second CONNECT"),
    ("wildcard_publish_topic", conn_then(publish_pkt("a/+", "x")), ""),
    ("empty_publish_topic", conn_then(publish_pkt("", "x")), ""),
    ("qos3_publish", conn_then(packet(0x36, mstr("a") + b"\x00\x01")), ""),
    ("packet_id_zero", conn_then(publish_pkt("a", "x", qos=1, pid=0)), ""),
    ("subscribe_no_filters", conn_then(packet(0x82, b"\x00\x01")), ""),
    ("subscribe_bad_flags", conn_then(packet(0x80, b"\x00\x01" + mstr("a") + b"\x00")), ""),
    ("unsubscribe_no_filters", conn_then(packet(0xA2, b"\x00\x01")), ""),
    ("server_only_connack", conn_then(packet(0x20, b"\x00\x00")), ""),
    ("server_only_suback", conn_then(packet(0x90, b"\x00\x01\x00")), ""),
    ("server_only_pingresp", conn_then(packet(0xD0, b"")), ""),
    ("reserved_type_0", conn_then(packet(0x00, b"")), ""),
    ("truncated_inside_packet", conn_then(packet(0x30, b"\x00\x05ab")), ""),
    ("subscribe_bad_option_bits", conn_then(packet(0x82, b"\x00\x01" + mstr("a") + b"\x04")), ""),
]


class Malformed(BrokerTest):
    def setUp(self):
        super().setUp()
        self.watch = Sub(self.b.port, ["-t", "alive", "-i", "watcher"], count=1, timeout=60)
        self.watch.ready()

    def tearDown(self):
        # the bystander still gets messages
        pub(self.b.port, ["-t", "alive", "-m", "yes"])
        self.assertEqual(self.watch.messages(), ["yes"])
        super().tearDown()

    def test_each_class_closes_connection(self):
        for name, data, frag in CASES:
            with self.subTest(name):
                m = self.b.mark()
                r = Raw(self.b.port)
                r.send(data)
                self.assertTrue(r.closed(), name + ": connection not closed")
                line = self.b.wait_log(r"127\.0\.0\.1:\d+\) sent a bad packet|refused", start=m)
                if frag:
                    self.assertIn(frag, line)

    def test_malformed_filters_close(self):
        """A filter with a misplaced wildcard makes the SUBSCRIBE malformed
        [MQTT-4.7.1-2], [MQTT-4.7.1-3]: the connection closes (it used to
        get SUBACK 0x80), with the reason in the log."""
        for f in ["a/#/b", "a+", "#a", "a/b#"]:
            with self.subTest(filter=f):
                m = self.b.mark()
                r = Raw(self.b.port)
                r.connect(client_id="filters")
                r.send(subscribe_pkt(f, pid=1))
                self.assertIsNone(r.recv_packet(timeout=5))
                self.b.wait_log(r"malformed topic filter '%s'" % re.escape(f),
                                start=m)

    def test_CVE_2023_0809_large_first_packet_not_buffered(self):
        r = Raw(self.b.port)
        # declares 200 MB but sends only a few bytes; must be refused at once
        r.send(b"\x10" + varint(200 * 1024 * 1024) + b"\x00\x04MQTT")
        self.assertTrue(r.closed(timeout=5))
        self.b.wait_log(r"packet before CONNECT too large")

    def test_CVE_2019_11779_deep_topic(self):
        r = Raw(self.b.port)
        r.connect(client_id="deep")
        deep = "/" * 65534
        r.send(subscribe_pkt(deep + "#", pid=1))
        p = r.recv_packet()
        self.assertEqual(p[0], 0x90)
        r.send(publish_pkt(deep, "x"))
        self.assertTrue(r.closed())

    def test_CVE_2023_28366_qos2_pid_reuse_does_not_grow(self):
        r = Raw(self.b.port)
        r.connect(client_id="q2")
        for _ in range(2000):
            r.send(publish_pkt("q2/t", "x", qos=2, pid=7))
        seen = 0
        for _ in range(2000):
            first, body = r.recv_packet()
            self.assertEqual(first, 0x50)
            self.assertEqual(body, b"\x00\x07")
            seen += 1
        self.assertEqual(seen, 2000)
        r.send(packet(0x62, b"\x00\x07"))
        self.assertEqual(r.recv_packet(), (0x70, b"\x00\x07"))

    def test_CVE_2024_8376_shared_unsubscribe(self):
        import subprocess
        r = Raw(self.b.port)
        r.connect(client_id="sh", version=5)
        r.send(subscribe_pkt("$share/g/s/t", pid=1, version=5))
        self.assertEqual(r.recv_packet()[0], 0x90)
        body = struct.pack("!H", 2) + b"\x00" + mstr("$share/g/s/t")
        r.send(packet(0xA2, body))
        self.assertEqual(r.recv_packet()[0], 0xB0)
        r.send(packet(0xA2, body))
        self.assertEqual(r.recv_packet()[0], 0xB0)
        pub(self.b.port, ["-t", "s/t", "-m", "x"])
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0)

    def test_CVE_2021_41039_many_user_properties_linear(self):
        """50,000 user properties in one v5 PUBLISH: parsed in one linear
        pass and delivered in order; quadratic parsing would blow the
        test's timeout."""
        sub = Raw(self.b.port)
        sub.connect(client_id="props-sub", version=5)
        sub.send(subscribe_pkt("up/t", version=5))
        self.assertEqual(sub.recv_packet()[0], 0x90)
        n = 50000
        props = b"".join(b"\x26" + mstr("k") + mstr("%d" % i) for i in range(n))
        p = Raw(self.b.port)
        p.connect(client_id="props-pub", version=5)
        p.send(publish_pkt("up/t", "x", version=5, props=props))
        first, body = sub.recv_packet(timeout=30)
        self.assertEqual(first & 0xF0, 0x30)
        self.assertIn(mstr("k") + mstr("49999"), body)
        self.assertLess(body.index(mstr("k") + mstr("0")),
                        body.index(mstr("k") + mstr("49999")))

    def test_CVE_2023_5632_idle_sockets_cost_no_cpu(self):
        """500 connected sockets that never send anything: the broker does
        not spin (CPU ticks over a one-second idle window)."""
        import os
        socks = [Raw(self.b.port) for _ in range(500)]
        pid = self.b.proc.pid

        def ticks():
            with open("/proc/%d/stat" % pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
            return int(v[11]) + int(v[12])

        # one PINGREQ round trip on another connection settles the accepts
        r = Raw(self.b.port)
        r.connect(client_id="idle-probe")
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0)
        t0 = ticks()
        self.assertFalse(socks[0].closed(timeout=1.0))  # one idle second
        self.assertLess(ticks() - t0, 5, "broker used CPU while idle")
        for x in socks:
            x.close()

    def test_slowloris_large_connect(self):
        # A CONNECT that declares 60 KB and trickles: closed at the deadline.
        r = Raw(self.b.port)
        r.send(b"\x10" + varint(60000) + mstr("MQTT") + b"\x04\x02\x00\x3c")
        self.assertTrue(r.closed(timeout=15))


if __name__ == "__main__":
    unittest.main()
