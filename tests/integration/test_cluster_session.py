"""test_cluster_session.py - JetStream in cluster mode (docs/cluster.md):
three mqttd nodes, one nats-server -js, free loopback ports.

  - behaviour 5: a persistent session (clean session false) subscribes on
    node 1 and disconnects; 20 QoS 1 messages published on node 3
    meanwhile are delivered in order, with session present, when the
    client reconnects to node 2; node 1 drops its offline copy, and the
    client coming back to node 1 later does not get them again;
  - a clean start on node 2 ends node 1's offline copy;
  - QoS 1/2 across nodes exactly once (MQTT_MSGS captures the messages,
    live delivery stays on the core subscription: no duplicates);
  - behaviour 7: QoS 1 messages published on node 2 while NATS is down
    (stop, start with the same store directory) reach an offline
    persistent session of node 1 when its client reconnects to node 3.
"""

import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Raw, Sub, packet, pub_done  # noqa: E402
from cluster_fixture import ClusterCase, warm_up  # noqa: E402


def read_publish(raw):
    """The next PUBLISH on raw: (topic, payload, qos, pid); PUBACKs it."""
    p = raw.recv_packet()
    assert p is not None, "closed instead of PUBLISH"
    first, body = p
    assert first >> 4 == 3, "expected PUBLISH, got %r" % (p,)
    qos = (first >> 1) & 3
    tl = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tl].decode()
    rest = body[2 + tl:]
    pid = None
    if qos:
        pid = struct.unpack("!H", rest[:2])[0]
        rest = rest[2:]
        raw.send(packet(0x40, struct.pack("!H", pid)))
    return topic, rest.decode(), qos, pid


class ClusterSessionTest(ClusterCase):
    READY = (r"stream MQTT_MSGS and bucket MQTT_SESSIONS ready",)

    def park(self, b, cid, filt):
        """A persistent QoS 1 session cid subscribed to filt on node b,
        whose client then goes away; returns once b wrote it to
        MQTT_SESSIONS (the log mark taken before, for later waits)."""
        m = b.mark()
        s = Sub(b.port, ["-v", "-q", "1", "-c", "-i", cid, "-t", filt],
                timeout=30)
        s.ready()
        s.kill()
        b.wait_log(r"offline session of %s kept in MQTT_SESSIONS" % cid,
                   start=m)
        return m

    def test_session_moves_between_nodes(self):
        n1, n2, n3 = self.nodes
        # a persistent session on node 1, then its client goes away
        self.park(n1, "mover", "mv/#")
        # 20 QoS 1 messages on node 3 while it is away; a live subscriber
        # on node 2 shows they crossed NATS
        probe = self.sub(n2, ["-v", "-q", "1", "-t", "mv/#", "-t", "warm/+"])
        stored = self.nats.stream_messages("MQTT_MSGS")
        stored += warm_up(probe, n3.port, "warm/3")
        for i in range(20):
            pub_done(n3, ["-t", "mv/t", "-m", "m%02d" % i, "-q", "1"])
        probe.wait_for(r"^mv/t m19$")
        # the stream stores them a moment after they cross (JetStream
        # ingests asynchronously; docs/cluster.md): the session moves after
        self.nats.wait_stream_messages("MQTT_MSGS", stored + 20)
        # back, on node 2: session present, the 20 in order
        m1, m2 = n1.mark(), n2.mark()
        raw = Raw(n2.port)
        ack = raw.connect(client_id="mover", clean=False)
        self.assertEqual(ack[0] & 1, 1, "session present expected")
        self.assertEqual(ack[1], 0)
        line = n2.wait_log(r"session of mover moved here from node n1",
                           start=m2)
        self.assertIn("1 subscription(s), 20 message(s)", line,
                      n2.log_text())
        got = [read_publish(raw) for _ in range(20)]
        self.assertEqual([g[1] for g in got], ["m%02d" % i for i in range(20)])
        self.assertTrue(all(g[0] == "mv/t" and g[2] == 1 for g in got))
        n1.wait_log(r"offline session of mover moved to another node; "
                    r"dropped here", start=m1)
        # it leaves node 2 (DISCONNECT) and returns to node 1: the session
        # (subscription) follows, the 20 are not delivered again
        m2 = n2.mark()
        raw.send(b"\xe0\x00")
        self.assertIsNone(raw.recv_packet())
        n2.wait_log(r"offline session of mover kept in MQTT_SESSIONS",
                    start=m2)
        raw = Raw(n1.port)
        ack = raw.connect(client_id="mover", clean=False)
        self.assertEqual(ack[0] & 1, 1, "session present expected")
        pub_done(n1, ["-t", "mv/t", "-m", "marker", "-q", "1"])
        self.assertEqual(read_publish(raw)[:3], ("mv/t", "marker", 1))
        raw.close()

    def test_clean_start_elsewhere_ends_the_session(self):
        n1, n2, _ = self.nodes
        m1 = self.park(n1, "cleaner", "cl/#")
        raw = Raw(n2.port)
        ack = raw.connect(client_id="cleaner", clean=True)
        self.assertEqual(ack[0] & 1, 0)
        n1.wait_log(r"offline session of cleaner moved to another node; "
                    r"dropped here", start=m1)
        raw.close()

    def test_qos12_exactly_once_across_nodes(self):
        n1, n2, n3 = self.nodes
        s1 = self.sub(n1, ["-v", "-q", "2", "-t", "x/#", "-t", "warm/+",
                           "-t", "end/+"])
        warm_up(s1, n2.port, "warm/2")
        warm_up(s1, n3.port, "warm/3")
        expected = []
        for origin in (n2, n3):
            for qos in (1, 2):
                for i in range(10):
                    msg = "o%d-q%d-%d" % (origin.port, qos, i)
                    pub_done(origin, ["-t", "x/y", "-m", msg, "-q", str(qos)])
                    expected.append("x/y " + msg)
        got = self.lines_after_markers(s1, "x/", (n2, n3))
        self.assertEqual(sorted(got), sorted(expected))

    def test_outage_messages_kept_for_offline_session(self):
        n1, n2, n3 = self.nodes
        self.park(n1, "away", "out/#")
        stored = self.nats.stream_messages("MQTT_MSGS")
        marks = [b.mark() for b in self.nodes]
        self.nats.stop()
        for b, m in zip(self.nodes, marks):
            b.wait_log(r"lost its NATS connection", start=m)
        # node 2 takes them (PUBACK from node 2, local routing) and keeps
        # them in its NATS reconnect buffer
        for i in range(5):
            pub_done(n2, ["-t", "out/t", "-m", "d%d" % i, "-q", "1"])
        marks = [b.mark() for b in self.nodes]
        self.nats.start()
        for b, m in zip(self.nodes, marks):
            b.wait_log(r"connected to NATS", start=m)
            b.wait_log(r"stream MQTT_MSGS and bucket MQTT_SESSIONS ready",
                       start=m)
        # node 2 flushes its buffer when it reconnects; the stream stores
        # what it gets a moment later: the session moves after that
        self.nats.wait_stream_messages("MQTT_MSGS", stored + 5)
        m3 = n3.mark()
        raw = Raw(n3.port)
        ack = raw.connect(client_id="away", clean=False)
        self.assertEqual(ack[0] & 1, 1, "session present expected")
        line = n3.wait_log(r"session of away moved here from node n1",
                           start=m3)
        self.assertIn("1 subscription(s), 5 message(s)", line,
                      n3.log_text())
        got = [read_publish(raw)[1] for _ in range(5)]
        self.assertEqual(got, ["d%d" % i for i in range(5)])
        raw.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
