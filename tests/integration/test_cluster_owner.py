"""test_cluster_owner.py - cluster behaviour 4 (docs/cluster.md,
"Client-id ownership"): one nats-server (-js) and three mqttd nodes.

  - client X (MQTT 5, paho) on node 1; the same id connects to node 2:
    node 1's connection gets DISCONNECT 0x8E (Session taken over); then
    to node 3: node 2's connection gets it;
  - an MQTT 3.1.1 client is closed likewise;
  - clients with other ids stay connected throughout.
"""

import os
import queue
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import paho.mqtt.client as mqtt  # noqa: E402
from cluster_fixture import ClusterCase  # noqa: E402


class Client:
    """A paho client that does not reconnect by itself; connection and
    disconnection events (with their reason codes) land in queues."""

    def __init__(self, port, cid, v5=True):
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.v5 = v5
        self.c = mqtt.Client(client_id=cid, protocol=proto,
                             reconnect_on_failure=False)
        self.conn, self.gone = queue.Queue(), queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        rc = self.conn.get(timeout=10)
        assert rc == 0, "CONNACK %r" % rc

    def _on_connect(self, c, u, flags, rc, props=None):
        self.conn.put(rc if isinstance(rc, int) else rc.value)

    def _on_disconnect(self, c, u, rc, props=None):
        self.gone.put(rc if isinstance(rc, int) else rc.value)

    def disconnected(self, timeout=10):
        return self.gone.get(timeout=timeout)

    def still_connected(self):
        return self.gone.empty() and self.c.is_connected()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class OwnerTest(ClusterCase):
    # debug log lines: the test waits for "client id X claimed"
    NODE_EXTRA = "log_type all\n"

    def connect(self, b, cid, v5=True):
        m = b.mark()
        c = Client(b.port, cid, v5)
        self.clients.append(c)
        # its claim is in the bucket before the next node's (the test's
        # order is then the order of the writes)
        b.wait_log(r"Cluster: client id %s claimed by node" % cid, start=m)
        return c

    def test_takeover_across_nodes(self):
        n1, n2, n3 = self.nodes
        others = [self.connect(n, "other-%d" % i)
                  for i, n in enumerate(self.nodes)]
        x1 = self.connect(n1, "X")
        self.assertTrue(x1.still_connected())
        x2 = self.connect(n2, "X")
        self.assertEqual(x1.disconnected(), 0x8E)  # Session taken over
        n1.wait_log(r"Client X connected to another node")
        x3 = self.connect(n3, "X")
        self.assertEqual(x2.disconnected(), 0x8E)
        self.assertTrue(x3.still_connected())
        # MQTT 3.1.1: no DISCONNECT from a server, the connection closes
        v1 = self.connect(n3, "V3", v5=False)
        self.connect(n1, "V3", v5=False)
        self.assertNotEqual(v1.disconnected(), 0)
        # the last connection of each id, and every other id, live on
        self.assertTrue(x3.still_connected())
        for o in others:
            self.assertTrue(o.still_connected())


if __name__ == "__main__":
    unittest.main(verbosity=2)
