"""Core MQTT 3.1/3.1.1 behaviour through the real daemon with
mosquitto_pub/mosquitto_sub and raw sockets."""

import os
import struct
import unittest

from harness import (BrokerTest, Raw, Sub, connect_pkt, packet, mstr, pub,
                     pub_done, publish_pkt, subscribe_pkt)


class PubSub(BrokerTest):
    def test_qos_levels_wildcard(self):
        for q in (0, 1, 2):
            s = Sub(self.b.port, ["-t", "a/#", "-v", "-q", str(q)], count=1)
            s.ready()
            pub(self.b.port, ["-t", "a/b", "-m", "hi%d" % q, "-q", str(q)])
            self.assertEqual(s.messages(), ["a/b hi%d" % q])

    def test_a_hash_matches_parent(self):
        s = Sub(self.b.port, ["-t", "a/#", "-v"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "a", "-m", "parent"])
        self.assertEqual(s.messages(), ["a parent"])

    def test_plus_wildcard_and_non_match(self):
        s = Sub(self.b.port, ["-t", "x/+/z", "-v"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "x/y/w", "-m", "no"])
        pub(self.b.port, ["-t", "x/y/z", "-m", "yes"])
        self.assertEqual(s.messages(), ["x/y/z yes"])

    def test_dollar_topics_not_matched_by_leading_wildcard(self):
        s_all = Sub(self.b.port, ["-t", "#", "-v"], count=1)
        s_dollar = Sub(self.b.port, ["-t", "$foo/#", "-v"], count=1)
        s_all.ready()
        s_dollar.ready()
        pub(self.b.port, ["-t", "$foo/bar", "-m", "d"])
        pub(self.b.port, ["-t", "plain", "-m", "p"])
        self.assertEqual(s_dollar.messages(), ["$foo/bar d"])
        self.assertEqual(s_all.messages(), ["plain p"])

    def test_overlapping_subscriptions_deliver_once_at_max_qos(self):
        r = Raw(self.b.port)
        r.connect(client_id="overlap")
        r.send(subscribe_pkt("o/#", qos=0, pid=1))
        self.assertEqual(r.recv_packet()[0], 0x90)
        r.send(subscribe_pkt("o/+", qos=1, pid=2))
        self.assertEqual(r.recv_packet()[0], 0x90)
        pub(self.b.port, ["-t", "o/x", "-m", "once", "-q", "1"])
        first, body = r.recv_packet()
        self.assertEqual(first & 0xF0, 0x30)
        self.assertEqual((first >> 1) & 3, 1, "delivered at QoS 1")
        # the next packet must be our own ping response, not a duplicate
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0)

    def test_many_messages_in_order(self):
        s = Sub(self.b.port, ["-t", "seq", "-q", "1"], count=200)
        s.ready()
        lines = "\n".join(str(i) for i in range(200)) + "\n"
        import subprocess
        subprocess.run(["mosquitto_pub", "-p", str(self.b.port), "-h",
                        "127.0.0.1", "-t", "seq", "-q", "1", "-l"],
                       input=lines, text=True, check=True, timeout=20)
        self.assertEqual(s.messages(), [str(i) for i in range(200)])


class Retained(BrokerTest):
    def test_set_replace_clear(self):
        pub_done(self.b, ["-t", "r/1", "-m", "one", "-r"])
        pub_done(self.b, ["-t", "r/1", "-m", "two", "-r", "-q", "1"])
        s = Sub(self.b.port, ["-t", "r/#", "-F", "%r %t %p"], count=1)
        self.assertEqual(s.messages(), ["1 r/1 two"])
        pub_done(self.b, ["-t", "r/1", "-n", "-r"])
        pub_done(self.b, ["-t", "r/2", "-m", "sentinel", "-r"])
        s = Sub(self.b.port, ["-t", "r/#", "-F", "%r %t %p"], count=1)
        self.assertEqual(s.messages(), ["1 r/2 sentinel"])

    def test_live_delivery_has_retain_flag_clear(self):
        s = Sub(self.b.port, ["-t", "live", "-F", "%r %p"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "live", "-m", "x", "-r"])
        self.assertEqual(s.messages(), ["0 x"])


class Wills(BrokerTest):
    def test_will_on_abnormal_close(self):
        s = Sub(self.b.port, ["-t", "will/#", "-v", "-q", "1"], count=1)
        s.ready()
        r = Raw(self.b.port)
        r.connect(client_id="dying", will=("will/dying", "gone", 1, False))
        r.abort()
        self.assertEqual(s.messages(), ["will/dying gone"])

    def test_no_will_after_disconnect(self):
        s = Sub(self.b.port, ["-t", "will2/#", "-v"], count=1)
        s.ready()
        r = Raw(self.b.port)
        r.connect(client_id="polite", will=("will2/polite", "gone", 0, False))
        r.send(packet(0xE0, b""))
        self.assertTrue(r.closed())
        self.b.wait_log(r"Client polite disconnected")
        pub(self.b.port, ["-t", "will2/sentinel", "-m", "s"])
        self.assertEqual(s.messages(), ["will2/sentinel s"])

    def test_retained_will(self):
        r = Raw(self.b.port)
        r.connect(client_id="rw", will=("will3/rw", "bye", 0, True))
        r.abort()
        self.b.wait_log(r"Client rw closed its connection")
        s = Sub(self.b.port, ["-t", "will3/#", "-F", "%r %t %p"], count=1)
        self.assertEqual(s.messages(), ["1 will3/rw bye"])


class PersistentSession(BrokerTest):
    def test_queued_while_offline(self):
        s = Sub(self.b.port, ["-t", "ps/t", "-q", "1", "-c", "-i", "psid"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "ps/t", "-m", "first", "-q", "1"])
        self.assertEqual(s.messages(), ["first"])
        for i in range(3):
            pub(self.b.port, ["-t", "ps/t", "-m", "off%d" % i, "-q", "1"])
        s = Sub(self.b.port, ["-t", "ps/t", "-q", "1", "-c", "-i", "psid"], count=3)
        self.assertEqual(s.messages(), ["off0", "off1", "off2"])

    def test_session_present_flag(self):
        r = Raw(self.b.port)
        ack = r.connect(client_id="sp", clean=False)
        self.assertEqual(ack, b"\x00\x00")
        r.send(packet(0xE0, b""))
        self.assertTrue(r.closed())
        self.b.wait_log(r"Client sp disconnected")
        r = Raw(self.b.port)
        self.assertEqual(r.connect(client_id="sp", clean=False), b"\x01\x00")
        r.close()

    def test_clean_session_discards(self):
        r = Raw(self.b.port)
        r.connect(client_id="cs", clean=False)
        r.send(subscribe_pkt("cs/t", qos=1))
        r.recv_packet()
        r.send(packet(0xE0, b""))
        self.assertTrue(r.closed())
        self.b.wait_log(r"Client cs disconnected")
        r = Raw(self.b.port)
        self.assertEqual(r.connect(client_id="cs", clean=True), b"\x00\x00")
        r.close()

    def test_takeover(self):
        r1 = Raw(self.b.port)
        r1.connect(client_id="dup")
        r2 = Raw(self.b.port)
        r2.connect(client_id="dup")
        self.assertTrue(r1.closed())
        self.b.wait_log(r"Client dup already connected")
        r2.send(packet(0xC0, b""))
        self.assertEqual(r2.recv_packet()[0], 0xD0)


class ConnectRules(BrokerTest):
    CONF = "connect_timeout 1\n"

    def test_connack_codes(self):
        r = Raw(self.b.port)
        r.send(connect_pkt(version=7))
        self.assertEqual(r.recv_packet(), (0x20, b"\x00\x01"))
        r = Raw(self.b.port)
        self.assertEqual(r.connect(client_id="", clean=False, version=4), b"\x00\x02")
        r = Raw(self.b.port)
        ack = r.connect(client_id="", clean=True, version=4)
        self.assertEqual(ack, b"\x00\x00")

    def test_v31_client(self):
        r = Raw(self.b.port)
        self.assertEqual(r.connect(client_id="old", version=3), b"\x00\x00")
        s = Sub(self.b.port, ["-t", "v31", "-V", "mqttv31"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "v31", "-m", "ok", "-V", "mqttv31"])
        self.assertEqual(s.messages(), ["ok"])

    def test_v5_connect_answered(self):
        r = Raw(self.b.port)
        ack = r.connect(client_id="five", version=5)
        self.assertEqual(ack[:2], b"\x00\x00")
        s = Sub(self.b.port, ["-t", "v5/t", "-V", "5"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "v5/t", "-m", "five", "-V", "5"])
        self.assertEqual(s.messages(), ["five"])

    def test_connect_deadline(self):
        r = Raw(self.b.port)
        self.assertTrue(r.closed(timeout=5))
        self.b.wait_log(r"sent no CONNECT within 1 s")

    def test_connect_deadline_not_extended_by_trickle(self):
        r = Raw(self.b.port)
        body = connect_pkt(client_id="slow")
        r.send(body[:3])
        import time
        t0 = time.monotonic()
        for b in body[3:-1]:
            r.send(bytes([b]))
            if r.closed(timeout=0.1):
                break
        self.assertTrue(r.closed(timeout=5))
        self.assertLess(time.monotonic() - t0, 4.0)

    def test_keepalive_timeout(self):
        r = Raw(self.b.port)
        r.connect(client_id="ka", keepalive=1)
        self.assertTrue(r.closed(timeout=5))
        self.b.wait_log(r"Client ka has exceeded timeout")

    def test_mosquitto_connect_log_line(self):
        pub(self.b.port, ["-t", "t", "-m", "x", "-i", "logme", "-u", "bob"])
        self.b.wait_log(r"New client connected from 127\.0\.0\.1:\d+ as logme "
                        r"\(p2, c1, k60, u'bob'\)\.")


if __name__ == "__main__":
    unittest.main()


class QueueLimits(BrokerTest):
    CONF = "max_queued_messages 3\nmax_inflight_messages 2\n"

    def test_queue_overflow_dropped_order_kept(self):
        r = Raw(self.b.port)
        r.connect(client_id="q", clean=False)
        r.send(subscribe_pkt("q/t", qos=1))
        r.recv_packet()
        r.send(packet(0xE0, b""))
        self.assertTrue(r.closed())
        self.b.wait_log(r"Client q disconnected")
        for i in range(6):
            pub(self.b.port, ["-t", "q/t", "-m", "m%d" % i, "-q", "1"])
        s = Sub(self.b.port, ["-t", "q/t", "-q", "1", "-c", "-i", "q"], count=3)
        self.assertEqual(s.messages(), ["m0", "m1", "m2"])

    def test_unacked_resent_with_dup_on_reconnect(self):
        r = Raw(self.b.port)
        r.connect(client_id="dup1", clean=False)
        r.send(subscribe_pkt("d/t", qos=1))
        r.recv_packet()
        pub(self.b.port, ["-t", "d/t", "-m", "x", "-q", "1"])
        first, body = r.recv_packet()
        self.assertEqual((first >> 1) & 3, 1, "QoS 1 delivery")
        self.assertEqual(first & 0x08, 0, "first delivery has DUP clear")
        r.abort()  # never acknowledged
        self.b.wait_log(r"Client dup1 closed its connection")
        r = Raw(self.b.port)
        self.assertEqual(r.connect(client_id="dup1", clean=False), b"\x01\x00")
        first, body2 = r.recv_packet()
        self.assertEqual(first & 0x08, 0x08, "redelivery has DUP set")
        self.assertEqual(body2, body)
        r.send(packet(0x40, body[5:7]))  # PUBACK for the packet id
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0)

    def test_inflight_window(self):
        r = Raw(self.b.port)
        r.connect(client_id="win", clean=True)
        r.send(subscribe_pkt("w/t", qos=1))
        r.recv_packet()
        for i in range(4):
            pub(self.b.port, ["-t", "w/t", "-m", "w%d" % i, "-q", "1"])
        got = [r.recv_packet(), r.recv_packet()]
        # a third PUBLISH only arrives after an acknowledgement
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0, "window of 2 exceeded")
        pid = got[0][1][5:7]
        r.send(packet(0x40, pid))
        third = r.recv_packet()
        self.assertEqual(third[0] & 0xF0, 0x30)
        self.assertTrue(third[1].endswith(b"w2"))


class Listeners(unittest.TestCase):
    def test_ipv6_and_unix_listeners(self):
        import os
        import socket as so
        from harness import Broker, free_port
        p6 = free_port()
        b = Broker("listener {port} 127.0.0.1\nlistener %d ::1\nlistener 0 {dir}/mqttd.sock\n"
                   "allow_anonymous true\n" % p6)
        try:
            try:
                so.socket(so.AF_INET6).bind(("::1", 0))
            except OSError:
                self.skipTest("no IPv6 loopback here")
            b.start()
            s = Sub(b.port, ["-t", "l/#", "-v"], count=2)
            s.ready()
            pub(p6, ["-t", "l/v6", "-m", "six"], host="::1")
            pub(0, ["--unix", os.path.join(b.dir, "mqttd.sock"), "-t", "l/unix", "-m", "u"])
            self.assertEqual(sorted(s.messages()), ["l/unix u", "l/v6 six"])
        finally:
            self.assertEqual(b.stop(), 0)

    def test_max_connections(self):
        from harness import Broker
        b = Broker("listener {port} 127.0.0.1\nmax_connections 2\nallow_anonymous true\n").start()
        try:
            r1 = Raw(b.port)
            r1.connect(client_id="c1")
            r2 = Raw(b.port)
            r2.connect(client_id="c2")
            r3 = Raw(b.port)
            self.assertTrue(r3.closed())
            b.wait_log(r"refused: max_connections reached")
        finally:
            self.assertEqual(b.stop(), 0)


class SlowConsumer(BrokerTest):
    def rss_kib(self):
        with open("/proc/%d/status" % self.b.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def test_qos0_dropped_for_a_client_that_never_reads(self):
        import socket
        slow = Raw(self.b.port)
        slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(client_id="slow")
        slow.send(subscribe_pkt("slow/t", qos=0))
        self.assertEqual(slow.recv_packet()[0], 0x90)
        before = self.rss_kib()
        p = Raw(self.b.port)
        p.connect(client_id="flood")
        chunk = publish_pkt("slow/t", b"x" * 8192) * 100
        for _ in range(40):  # 4000 messages, 32 MiB
            p.send(chunk)
        self.b.wait_log(r"Client slow is not reading: dropping QoS 0")
        # the publisher is still served: its PINGREQ is answered
        p.send(packet(0xC0, b""))
        self.assertEqual(p.recv_packet()[0], 0xD0)
        grown = self.rss_kib() - before
        if not os.environ.get("MQTTD_SANITIZED"):  # ASan's quarantine holds freed memory
            self.assertLess(grown, 16 * 1024, "broker grew by %d KiB" % grown)
        pub(self.b.port, ["-t", "other", "-m", "x"])


class FlowControl(BrokerTest):
    """A fast QoS 1 publisher and a subscriber that acknowledges each
    message: the publisher is held back instead of overflowing the
    subscriber's queue (max_queued_messages 1000, max_inflight_messages 20
    by default), so every acknowledged message is delivered, in order."""

    def test_qos1_publisher_faster_than_subscriber_loses_nothing(self):
        import threading
        n = 5000
        sub = Raw(self.b.port)
        sub.connect(client_id="fc-sub")
        sub.send(subscribe_pkt("fc/t", qos=1))
        self.assertEqual(sub.recv_packet()[0], 0x90)
        p = Raw(self.b.port)
        p.connect(client_id="fc-pub")
        data = b"".join(publish_pkt("fc/t", "%d" % i, qos=1, pid=(i % 60000) + 1)
                        for i in range(n))
        t = threading.Thread(target=p.send, args=(data,), daemon=True)
        t.start()
        got = []
        while len(got) < n:
            first, body = sub.recv_packet()
            self.assertEqual(first & 0xF0, 0x30)
            pid = body[6:8]
            got.append(int(body[8:]))
            sub.send(packet(0x40, pid))
        t.join(timeout=10)
        self.assertEqual(got, list(range(n)))
        self.assertNotIn("dropping messages", self.b.log_text())
        # the publisher received every PUBACK
        acks = 0
        while acks < n:
            first, _ = p.recv_packet()
            if first == 0x40:
                acks += 1
        self.assertEqual(acks, n)


class FlowControlQos0(BrokerTest):
    def test_fast_qos0_publisher_reading_subscriber_no_loss(self):
        """mosquitto_pub -l flooding QoS 0 at a mosquitto_sub that reads
        (but slower): the publisher is held back, nothing is dropped."""
        import subprocess
        n = 100000
        s = Sub(self.b.port, ["-t", "f0"], count=n, timeout=60)
        s.ready()
        lines = "".join("%063d\n" % i for i in range(n))
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.b.port),
                        "-t", "f0", "-l"], input=lines, text=True, check=True,
                       timeout=60)
        got = s.messages(timeout=60)
        self.assertEqual(len(got), n)
        self.assertEqual(got[-1], "%063d" % (n - 1))
        self.assertNotIn("dropping QoS 0", self.b.log_text())


class UpgradeQos(BrokerTest):
    CONF = "upgrade_outgoing_qos true\n"

    def test_qos0_publish_delivered_at_granted_qos(self):
        r = Raw(self.b.port)
        r.connect(client_id="up")
        r.send(subscribe_pkt("up/t", qos=1))
        r.recv_packet()
        pub(self.b.port, ["-t", "up/t", "-m", "x", "-q", "0"])
        first, _ = r.recv_packet()
        self.assertEqual((first >> 1) & 3, 1)


class InflightBytes(BrokerTest):
    CONF = "max_inflight_bytes 10\n"

    def test_window_limited_by_bytes(self):
        r = Raw(self.b.port)
        r.connect(client_id="ib")
        r.send(subscribe_pkt("ib/t", qos=1))
        r.recv_packet()
        for i in range(3):
            pub(self.b.port, ["-t", "ib/t", "-m", "12345678", "-q", "1"])
        a = r.recv_packet()
        b2 = r.recv_packet()
        self.assertEqual(a[0] & 0xF0, 0x30)
        self.assertEqual(b2[0] & 0xF0, 0x30)
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0, "third message exceeded the byte window")
        r.send(packet(0x40, a[1][6:8]))
        self.assertEqual(r.recv_packet()[0] & 0xF0, 0x30)


class MemoryLimit(BrokerTest):
    CONF = "memory_limit 1024\n"

    def test_publish_refused_above_limit(self):
        self.b.wait_log(r"above memory_limit 1024: refusing new messages")
        r = Raw(self.b.port)
        r.connect(client_id="mem", version=5)
        r.send(publish_pkt("m/t", "x", qos=1, pid=5, version=5))
        self.assertEqual(r.recv_packet(), (0x40, b"\x00\x05\x97"))
