"""test_cluster.py - cluster mode over NATS (docs/cluster.md), first slice:
three mqttd nodes and one real nats-server (-js) on free loopback ports.

  - a subscriber on node 1 receives the QoS 0/1/2 messages published on
    nodes 2 and 3 exactly once each, awkward topics included (empty
    levels, '.', spaces, '*', '>'), and a node's own messages are
    delivered locally once (never echoed back through NATS);
  - $SYS messages stay on their node;
  - NATS outage: local delivery never stops; cross-node delivery resumes
    after NATS returns;
  - a node that starts while NATS is down serves local clients.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Sub, pub, pub_done  # noqa: E402
from cluster_fixture import ClusterCase, Nats, node, warm_up  # noqa: E402


class ClusterTest(ClusterCase):
    def test_cross_node_exactly_once(self):
        n1, n2, n3 = self.nodes
        topics = ["c/plain", "c//empty", "c/a.b", "c/with space", "c/*",
                  "c/>", "c/x/", "c/caf\u00e9"]
        s1 = self.sub(n1, ["-v", "-q", "2", "-t", "c/#", "-t", "warm/+",
                           "-t", "end/+"])
        warm_up(s1, n2.port, "warm/2")
        warm_up(s1, n3.port, "warm/3")
        expected = []
        # the node's own client: delivered locally once, never echoed
        pub_done(n1, ["-t", "c/local", "-m", "L", "-q", "1"])
        expected.append("c/local L")
        for origin in (n2, n3):
            for qos in (0, 1, 2):
                for t in topics:
                    msg = "from%d-q%d" % (origin.port, qos)
                    pub_done(origin, ["-t", t, "-m", msg, "-q", str(qos)])
                    expected.append("%s %s" % (t, msg))
        got = self.lines_after_markers(s1, "c/", (n2, n3))
        self.assertEqual(sorted(got), sorted(expected))

    def test_sys_stays_local(self):
        n1, n2, _ = self.nodes
        s1 = Sub(n1.port, ["-v", "-t", "$SYS/broker/clients/connected",
                           "-t", "warm/+"], timeout=4)
        self.subs.append(s1)
        s1.ready()
        warm_up(s1, n2.port, "warm/2")
        # three more clients on node 2 change its $SYS figure (sys_interval
        # 1); node 1 must only ever see its own (its one subscriber)
        others = [self.sub(n2, ["-t", "idle/%d" % i]) for i in range(3)]
        lines = [l for l in s1.messages(timeout=10)
                 if l.startswith("$SYS/broker/clients/connected")]
        self.assertTrue(lines, "no $SYS message from node 1 itself")
        self.assertEqual(set(lines), {"$SYS/broker/clients/connected 1"})
        for o in others:
            o.kill()

    def test_nats_outage(self):
        n1, n2, _ = self.nodes
        s1 = self.sub(n1, ["-v", "-q", "1", "-t", "o/#", "-t", "warm/+",
                           "-t", "again/+"])
        s2 = self.sub(n2, ["-v", "-q", "1", "-t", "o/#"])
        warm_up(s1, n2.port, "warm/2")
        m1, m2 = n1.mark(), n2.mark()
        self.nats.stop()
        n1.wait_log(r"Cluster: node n1 lost its NATS connection", start=m1)
        n2.wait_log(r"Cluster: node n2 lost its NATS connection", start=m2)
        # local delivery goes on, on both nodes
        for i in range(5):
            pub(n1.port, ["-t", "o/n1", "-m", "a%d" % i, "-q", "1"])
            pub(n2.port, ["-t", "o/n2", "-m", "b%d" % i, "-q", "1"])
        for i in range(5):
            s1.wait_for(r"^o/n1 a%d$" % i)
            s2.wait_for(r"^o/n2 b%d$" % i)
        # NATS returns on the same port: cross-node delivery resumes
        m1, m2 = n1.mark(), n2.mark()
        self.nats.start()
        n1.wait_log(r"Cluster: node n1 connected to NATS", start=m1)
        n2.wait_log(r"Cluster: node n2 connected to NATS", start=m2)
        warm_up(s1, n2.port, "again/2")
        self.assertTrue(n1.alive() and n2.alive())


class NatsDownAtStartTest(unittest.TestCase):
    def test_starts_and_serves_without_nats(self):
        nats = Nats()  # not started: nothing listens on its port
        b = node(nats.url(), "lonely").start()
        try:
            b.wait_log(r"Cluster: node lonely could not reach NATS")
            s = Sub(b.port, ["-v", "-t", "l/x", "-C", "1"])
            s.ready()
            pub(b.port, ["-t", "l/x", "-m", "here", "-q", "1"])
            self.assertEqual(s.messages(), ["l/x here"])
            # NATS comes up: the node connects by itself
            m = b.mark()
            nats.start()
            b.wait_log(r"Cluster: node lonely connected to NATS", start=m)
        finally:
            alive = b.alive()
            log = b.log_text()
            rc = b.stop()
            nats.cleanup()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("ERROR: AddressSanitizer", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
