"""test_cluster_retain.py - retained messages cluster-wide (docs/cluster.md,
issue 18 behaviour 3): the JetStream stream MQTT_RETAIN is the cluster's
retained store, each node's local store a cache of it.

  - retained set on node 1: a new subscriber on node 2 gets it, retain
    flag set;
  - cleared (empty retained publish) on node 3: new subscribers on nodes 1
    and 2 get nothing, and the stream no longer holds it;
  - a node started after a retained message was set gets it (read from
    the stream at start);
  - the stream survives a nats-server restart (file storage): a node
    started after the restart gets it;
  - MQTT 5 on another node: Retain Handling 2 / 1 respected, the retain
    flag and the message's properties kept, from the cache and from the
    stream.
"""

import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import pub_done  # noqa: E402
from cluster_fixture import ClusterCase, warm_up  # noqa: E402
from test_interop_paho import V5, Client  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402

FMT = ["-F", "%r|%t|%p"]


def nats_request(port, subject, body, timeout=10.0):
    """One request/reply over the NATS text protocol (no client library
    in Debian's python3): returns the reply's payload (bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        f.readline()  # INFO
        data = body.encode()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                  b"SUB _INBOX.t 1\r\n"
                  b"PUB %s _INBOX.t %d\r\n%s\r\n" % (subject.encode(),
                                                     len(data), data))
        while True:
            line = f.readline()
            if not line:
                raise AssertionError("NATS closed the connection")
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                n = int(line.split()[-1])
                payload = f.read(n + 2)[:n]
                return payload
            elif line.startswith(b"-ERR"):
                raise AssertionError("NATS: %r" % line)
    finally:
        s.close()


def stream_last(port, subject):
    """The stream MQTT_RETAIN's last message on subject: its JSON reply
    (a "message" or an "error")."""
    return json.loads(nats_request(
        port, "$JS.API.STREAM.MSG.GET.MQTT_RETAIN",
        json.dumps({"last_by_subj": subject})))


def await_stream(port, subject, present, timeout=15.0):
    """Poll the stream (a NATS API read, not a sleep on the broker) until
    subject holds a message (present) or none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = stream_last(port, subject)
        if ("message" in r) == present:
            return r
        time.sleep(0.05)
    raise AssertionError("stream MQTT_RETAIN: %s %s after %.0f s: %r"
                         % (subject, "absent" if present else "present",
                            timeout, r))


class ClusterRetainTest(ClusterCase):
    # the cache is loaded from the stream once connected
    READY = (r"Cluster: \d+ retained message\(s\) loaded",)
    FORBIDDEN = ("not loaded from MQTT_RETAIN", "the cluster store MQTT_RETAIN")

    def retained_seen(self, b, filt, marker):
        """A new subscriber on b to filt: the retained messages it gets
        before a live marker published on b (topic marker, matched by
        filt). Returns [(retain flag, topic, payload)]."""
        s = self.sub(b, FMT + ["-q", "1", "-t", filt])
        pub_done(b, ["-t", marker, "-m", "end", "-q", "1"])
        s.wait_for(r"^0\|%s\|end$" % marker)
        s.kill()
        with s.cond:
            lines = [l for l in s.out if "|" in l and
                     not l.startswith("Client ")]
        got = []
        for l in lines:
            r, t, p = l.split("|", 2)
            if t == marker:
                break
            got.append((r, t, p))
        return got

    def test_retained_cluster_wide(self):
        n1, n2, n3 = self.nodes
        nats_port = self.nats.port
        # live watchers: once they see a retained publish, their node's
        # cache holds it (set before the message is routed)
        w = [self.sub(b, ["-v", "-q", "1", "-t", "r/#", "-t", "warm/+"])
             for b in self.nodes]
        for i, b in enumerate(self.nodes):
            for j, o in enumerate(self.nodes):
                if i != j:
                    warm_up(w[j], b.port, "warm/%d" % (i + 1))

        # set on node 1 -> a new subscriber on node 2 gets it, retain 1
        pub_done(n1, ["-t", "r/a", "-m", "v1", "-r", "-q", "1"])
        for x in w:
            x.wait_for(r"^r/a v1$")
        self.assertEqual(self.retained_seen(n2, "r/#", "r/m1"),
                         [("1", "r/a", "v1")])
        self.assertEqual(self.retained_seen(n3, "r/+", "r/m2"),
                         [("1", "r/a", "v1")])
        await_stream(nats_port, "mqttr.t._r._a", True)

        # cleared on node 3 -> nothing on nodes 1 and 2, stream purged
        pub_done(n3, ["-t", "r/a", "-r", "-n", "-q", "1"])
        for x in w:
            x.wait_for(r"^r/a ?(\(null\))?$")
        self.assertEqual(self.retained_seen(n1, "r/#", "r/m3"), [])
        self.assertEqual(self.retained_seen(n2, "r/#", "r/m4"), [])
        await_stream(nats_port, "mqttr.t._r._a", False)

        # set on node 2; a node started afterwards reads it from the stream
        pub_done(n2, ["-t", "r/b", "-m", "v2", "-r", "-q", "1"])
        await_stream(nats_port, "mqttr.t._r._b", True)
        n4 = self.start_node("n4")
        self.assertEqual(self.retained_seen(n4, "r/#", "r/m5"),
                         [("1", "r/b", "v2")])

        # nats-server restart (same store dir): the stream survives; a
        # node started after it gets the message from the stream
        m = n1.mark()
        self.nats.stop()
        self.nats.start()
        n5 = self.start_node("n5")
        self.assertEqual(self.retained_seen(n5, "r/#", "r/m6"),
                         [("1", "r/b", "v2")])
        # node 1 reloaded its cache on reconnecting: r/b there, r/a not
        n1.wait_log(r"Cluster: 1 retained message\(s\) loaded", start=m)
        self.assertEqual(self.retained_seen(n1, "r/#", "r/m7"),
                         [("1", "r/b", "v2")])

    def v5(self, b, cid):
        c = Client(b.port, cid, V5)
        self.clients.append(c)
        self.assertEqual(c.connack()[1], 0)
        return c

    def subscribe(self, c, filt, rh):
        res, mid = c.c.subscribe(filt, options=SubscribeOptions(
            qos=1, retainHandling=rh))
        self.assertEqual(c.subacks.get(timeout=30)[0], mid)

    def test_v5_options(self):
        n1, n2, n3 = self.nodes
        w3 = self.sub(n3, ["-v", "-q", "1", "-t", "v/#", "-t", "warm/+"])
        warm_up(w3, n1.port, "warm/1")
        p = self.v5(n1, "v5pub")
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("k", "v")]
        props.ContentType = "text/x"
        p.publish("v/a", b"val", 1, retain=True, props=props)
        w3.wait_for(r"^v/a val$")

        s = self.v5(n3, "v5sub")
        self.subscribe(s, "v/#", 2)  # Retain Handling 2: none
        self.assertTrue(s.no_message())
        self.subscribe(s, "v/+", 1)  # 1, a new subscription: sent
        m = s.message()
        self.assertEqual((m.topic, m.payload, m.retain),
                         ("v/a", b"val", True))
        self.assertEqual(m.properties.UserProperty, [("k", "v")])
        self.assertEqual(m.properties.ContentType, "text/x")
        self.subscribe(s, "v/+", 1)  # 1, an existing one: not sent
        self.assertTrue(s.no_message())

        # from the stream: a node started now
        await_stream(self.nats.port, "mqttr.t._v._a", True)
        n4 = self.start_node("n4")
        s4 = self.v5(n4, "v5sub4")
        self.subscribe(s4, "v/a", 0)
        m = s4.message()
        self.assertEqual((m.topic, m.payload, m.retain),
                         ("v/a", b"val", True))
        self.assertEqual(m.properties.UserProperty, [("k", "v")])
        self.assertEqual(m.properties.ContentType, "text/x")


if __name__ == "__main__":
    unittest.main(verbosity=2)
