"""test_cluster_share.py - "$share/GROUP/FILTER" across nodes (docs/cluster.md,
issue 18 behaviour 2): members of one group on nodes 1, 2 and 3 share the
messages (NATS queue groups): each message reaches the group once in
total, whatever node published it; a plain subscriber gets them all; when
a member leaves, the others get its share; while NATS is away, a node's
own messages go to its own members (once), and sharing across nodes
resumes after.
"""

import collections
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import pub, pub_done  # noqa: E402
from cluster_fixture import ClusterCase, warm_up  # noqa: E402

GROUP = "$share/g/s/#"


class ClusterShareTest(ClusterCase):
    FORBIDDEN = ("not joined on NATS",)
    SUB_TIMEOUT = 60

    @staticmethod
    def lines(s, prefix):
        with s.cond:
            return [l for l in s.out if l.startswith(prefix)]

    def await_total(self, members, prefix, n, timeout=30.0):
        """Wait until the members together got n lines starting with
        prefix; returns a Counter of those lines."""
        deadline = time.monotonic() + timeout
        while True:
            got = collections.Counter()
            for m in members:
                got.update(self.lines(m, prefix))
            if sum(got.values()) >= n or time.monotonic() > deadline:
                return got
            with members[0].cond:
                members[0].cond.wait(0.05)

    def share_warm_up(self, members, topic):
        """Every node's queue subscription is in place once each member
        has had a message of the group."""
        deadline = time.monotonic() + 30
        i = 0
        while not all(self.lines(m, topic + " ") for m in members):
            self.assertLess(time.monotonic(), deadline,
                            "a member never got a shared message")
            i += 1
            pub(self.nodes[i % len(members)].port,
                ["-t", topic, "-m", "w%d" % i])
            with members[0].cond:
                members[0].cond.wait(0.05)

    def publish_lines(self, b, topic, n, tag):
        """n QoS 0 messages "tag-0".."tag-(n-1)" on topic from one client
        of node b (mosquitto_pub -l: one message per input line)."""
        r = subprocess.run(["mosquitto_pub", "-p", str(b.port), "-l", "-t",
                            topic], input="".join("%s-%d\n" % (tag, i)
                                                  for i in range(n)),
                           text=True, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_shared_copies_only_while_a_group_exists(self):
        n1, n2, _ = self.nodes
        plain = self.sub(n2, ["-v", "-t", "p/#", "-t", "warm/+"])
        warm_up(plain, n1.port, "warm/1")
        # no group on any node: node 1 sends each message to NATS once
        before = self.nats.conn_in_msgs("mqttd-n1")
        self.publish_lines(n1, "p/x", 100, "a")
        plain.wait_for(r"^p/x a-99$")
        sent = self.nats.conn_in_msgs("mqttd-n1") - before
        # (plus a few others: heartbeats, the client-id claim)
        self.assertGreaterEqual(sent, 100)
        self.assertLess(sent, 150, "shared copies sent with no group")
        # a group on node 2: node 1 learns it from node 2's announcement
        # and sends the shared copy too
        member = self.sub(n2, ["-v", "-t", "$share/g/p/#"])
        deadline = time.monotonic() + 30
        i = 0
        while not self.lines(member, "p/warm "):
            self.assertLess(time.monotonic(), deadline,
                            "the member never got a message from node 1")
            i += 1
            pub(n1.port, ["-t", "p/warm", "-m", "w%d" % i])
            with member.cond:
                member.cond.wait(0.05)
        before = self.nats.conn_in_msgs("mqttd-n1")
        self.publish_lines(n1, "p/y", 100, "b")
        got = self.await_total([member], "p/y ", 100)
        self.assertEqual(sum(got.values()), 100)
        sent = self.nats.conn_in_msgs("mqttd-n1") - before
        self.assertGreaterEqual(sent, 200)

    def test_nats_outage(self):
        n1, n2, _ = self.nodes
        members = [self.sub(b, ["-v", "-q", "1", "-t", GROUP])
                   for b in (n1, n2)]
        self.share_warm_up(members, "s/warm")
        m1 = n1.mark()
        self.nats.stop()
        n1.wait_log(r"Cluster: node n1 lost its NATS connection", start=m1)
        # node 1's own messages: to its own member, once each
        for j in range(10):
            pub_done(n1, ["-t", "s/out", "-m", "o%d" % j, "-q", "1"])
        got = self.await_total(members, "s/out ", 10)
        self.assertEqual(sorted(got.elements()),
                         sorted("s/out o%d" % j for j in range(10)))
        self.assertEqual(len(self.lines(members[0], "s/out ")), 10)
        # NATS back: shared across the nodes again, and nothing of the
        # outage delivered twice
        m1 = n1.mark()
        self.nats.start()
        n1.wait_log(r"Cluster: node n1 connected to NATS", start=m1)
        self.share_warm_up(members, "s/again")
        got = collections.Counter()
        for m in members:
            got.update(self.lines(m, "s/out "))
        self.assertEqual(sorted(got.elements()),
                         sorted("s/out o%d" % j for j in range(10)))

    def test_shared_across_nodes(self):
        n1, n2, n3 = self.nodes
        plain = self.sub(n1, ["-v", "-q", "1", "-t", "s/#", "-t", "warm/+"])
        members = [self.sub(b, ["-v", "-q", "1", "-t", GROUP])
                   for b in self.nodes]
        warm_up(plain, n2.port, "warm/2")
        warm_up(plain, n3.port, "warm/3")
        self.share_warm_up(members, "s/warm")

        # N messages from every node at QoS 0 and 1
        expected = []
        for qos in (0, 1):
            for k, b in enumerate(self.nodes):
                for j in range(20):
                    p = "n%d-q%d-%d" % (k + 1, qos, j)
                    pub(b.port, ["-t", "s/x", "-m", p, "-q", str(qos)])
                    expected.append("s/x " + p)
        got = self.await_total(members, "s/x ", len(expected))
        plain.wait_for(r"^s/x n3-q1-19$")
        # a fence: more messages through the group, so that a duplicate
        # of the batch above would have arrived by now
        for j in range(30):
            pub(self.nodes[j % 3].port, ["-t", "s/fence", "-m", str(j),
                                         "-q", "1"])
        self.await_total(members, "s/fence ", 30)
        got = collections.Counter()
        for m in members:
            got.update(self.lines(m, "s/x "))
        dups = {k: v for k, v in got.items() if v > 1}
        self.assertEqual(dups, {}, "delivered more than once to the group")
        self.assertEqual(sorted(got), sorted(expected))
        for k, m in enumerate(members):
            self.assertTrue(self.lines(m, "s/x "),
                            "member on node %d got no message" % (k + 1))
        self.assertEqual(sorted(self.lines(plain, "s/x ")), sorted(expected))

        # the member on node 3 leaves: the two others get everything,
        # published on node 3 too
        m3 = n3.mark()
        members[2].kill()
        n3.wait_log(r"disconnected|closed", start=m3)
        rest = members[:2]
        after = []
        for j in range(30):
            p = "after-%d" % j
            pub(self.nodes[j % 3].port, ["-t", "s/y", "-m", p, "-q", "1"])
            after.append("s/y " + p)
        got = self.await_total(rest, "s/y ", len(after))
        pub_done(n1, ["-t", "s/fence2", "-m", "x", "-q", "1"])
        self.await_total(rest, "s/fence2 ", 1)
        got = collections.Counter()
        for m in rest:
            got.update(self.lines(m, "s/y "))
        self.assertEqual(sorted(got.elements()), sorted(after))


if __name__ == "__main__":
    unittest.main(verbosity=2)
