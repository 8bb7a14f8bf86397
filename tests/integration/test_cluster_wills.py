"""test_cluster_wills.py - cluster behaviour 6 (docs/cluster.md, "Wills of
a dead node"): one nats-server (-js) and three mqttd nodes.

  - clients with wills (MQTT 3.1.1 and 5, a retained one, a delayed one)
    on node 3; subscribers on nodes 1 and 2; node 3 killed with SIGKILL:
    each will reaches each subscriber exactly once, after the kill (none
    before), within seconds, published by one survivor (its log line names
    node 3 and the counts); the delayed will not before its delay; the
    retained will is retained on every node;
  - a client that disconnected cleanly before the kill: no will;
  - a client that reconnected to node 1 before the kill (takeover): no
    will; likewise one that reconnected to node 1 while node 3 was frozen
    (SIGSTOP: its record is still in MQTT_WILLS, MQTT_OWNER names node 1);
  - orderly stop (SIGTERM) of node 3: no will published (as a single
    node), none by the survivors either, after the heartbeat timeout;
  - every node killed: a node started afterwards finds the records with no
    heartbeat and publishes them.
  - NATS down for longer than the timeout, then back: no node is taken
    for dead, no will;
  - cluster_node_timeout out of range: FILE:LINE errors.
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from cluster_fixture import ClusterCase  # noqa: E402
from harness import MQTTD, Broker  # noqa: E402
import subprocess  # noqa: E402

TIMEOUT_S = 3  # cluster_node_timeout
WILL_DELAY = 7  # s, over TIMEOUT_S


class Client:
    """A paho client (no automatic reconnection), optionally with a will."""

    def __init__(self, port, cid, v5=False, will=None, clean=True,
                 expiry=None, will_delay=None):
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kw = {} if v5 else {"clean_session": clean}
        self.c = mqtt.Client(client_id=cid, protocol=proto,
                             reconnect_on_failure=False, **kw)
        self.msgs = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.gone = threading.Event()
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_disconnect = lambda *a: self.gone.set()
        self.c.on_message = self._on_message
        if will:
            topic, payload, qos, retain = will
            wp = None
            if v5 and will_delay:
                wp = Properties(PacketTypes.WILLMESSAGE)
                wp.WillDelayInterval = will_delay
            self.c.will_set(topic, payload, qos, retain, properties=wp)
        props = None
        ckw = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)
            if expiry:
                props.SessionExpiryInterval = expiry
            ckw = {"clean_start": clean, "properties": props}
        self.c.connect("127.0.0.1", port, keepalive=60, **ckw)
        self.c.loop_start()
        assert self.connected.wait(10), "no CONNACK from %d" % port

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append((m.topic, m.payload.decode(), m.retain,
                              time.monotonic()))
            self.cond.notify_all()

    def subscribe(self, topic, qos=1):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos)
        assert done.wait(10), "no SUBACK"

    def wait_for(self, topic, payload=None, timeout=15):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.msgs:
                    if m[0] == topic and (payload is None or m[1] == payload):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s not received; got %r"
                                         % (topic, self.msgs))
                self.cond.wait(left)

    def got(self, prefix):
        with self.cond:
            return [m for m in self.msgs if m[0].startswith(prefix)]

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class WillsTest(ClusterCase):
    # debug log lines: "client id X claimed", "claimed by node"
    NODE_EXTRA = "cluster_node_timeout %d\nlog_type all\n" % TIMEOUT_S
    READY = (r"Cluster: node n\d: buckets MQTT_WILLS and MQTT_NODES ready",)

    def setUp(self):
        super().setUp()
        # every node has heard the others' heartbeats
        for b in self.nodes:
            for i in (1, 2, 3):
                if b.count(r"Cluster: node n%d connected to NATS" % i) == 0:
                    b.wait_log(r"Cluster: node n%d \(epoch \w+\) is up" % i)

    def client(self, b, cid, **kw):
        m = b.mark()
        c = Client(b.port, cid, **kw)
        self.clients.append(c)
        # its claim (MQTT_OWNER) is written: the order of the test is the
        # order of the writes
        b.wait_log(r"Cluster: client id %s claimed by node" % cid, start=m)
        return c

    def subscribers(self):
        n1, n2, n3 = self.nodes
        s1 = self.client(n1, "sub1")
        s2 = self.client(n2, "sub2")
        for s in (s1, s2):
            s.subscribe("will/#")
            s.subscribe("mark/#")
        # cross-node delivery from node 3 in place for both
        k = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            k += 1
            p = Client(n3.port, "warm%d" % k)
            p.c.publish("mark/warm", str(k), qos=1).wait_for_publish()
            p.close()
            try:
                s1.wait_for("mark/warm", str(k), timeout=0.5)
                s2.wait_for("mark/warm", str(k), timeout=0.5)
                break
            except AssertionError:
                continue
        else:
            self.fail("no cross-node delivery from node 3")
        return s1, s2

    def winner_log(self, pattern, timeout=15):
        """The survivor's log line matching pattern (either of nodes 1, 2)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for b in self.nodes[:2]:
                if b.count(pattern):
                    return b
            time.sleep(0.1)
        self.fail("no survivor logged /%s/:\n%s\n%s" % (
            pattern, self.nodes[0].log_text(), self.nodes[1].log_text()))

    def marker(self, subs, name):
        """A message published after everything else, from nodes 1 and 2
        (again until it arrives: after a NATS outage the other node may
        not be back yet): once it arrived, anything sent before it would
        have arrived too."""
        n1, n2, _ = self.nodes
        for b in (n1, n2):
            deadline = time.monotonic() + 20
            k = 0
            while True:
                k += 1
                payload = "%d-%d" % (b.port, k)
                p = Client(b.port, "mk-%s-%d-%d" % (name, b.port, k))
                p.c.publish("mark/" + name, payload, qos=1).wait_for_publish()
                p.close()
                try:
                    for s in subs:
                        s.wait_for("mark/" + name, payload, timeout=1)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise

    def dump(self):
        return "\n".join("---- %s\n%s" % (b.port, b.log_text())
                         for b in self.nodes)

    def test_kill9_wills_once(self):
        n1, n2, n3 = self.nodes
        s1, s2 = self.subscribers()
        # on node 3: wills that must come
        self.client(n3, "A", will=("will/a", "A gone", 1, False))
        self.client(n3, "B", v5=True, will=("will/b", "B gone", 1, False))
        self.client(n3, "F", will=("will/f", "F gone", 0, True))
        # delayed past the detection: published at its time, not before
        self.client(n3, "G", v5=True, expiry=60, will_delay=WILL_DELAY,
                    will=("will/g", "G gone", 1, False))
        # (b) clean DISCONNECT before the kill: no will
        c = self.client(n3, "C", will=("will/c", "C gone", 1, False))
        m = n3.mark()
        c.close()
        n3.wait_log(r"Client C disconnected", start=m)
        # (c) took over on node 1 (clean start 0, session kept): node 3
        # discards the will and its record
        self.client(n3, "D", v5=True, clean=False, expiry=300,
                    will=("will/d", "D gone", 1, False))
        m = n3.mark()
        self.client(n1, "D", v5=True, clean=False, expiry=300)
        n3.wait_log(r"Client D connected to another node", start=m)
        # (c') connected to node 1 while node 3 is frozen: node 3 cannot
        # drop its record; MQTT_OWNER names node 1's connection
        self.client(n3, "E", will=("will/e", "E gone", 1, False))
        n3.signal(signal.SIGSTOP)
        try:
            self.client(n1, "E")
        finally:
            n3.signal(signal.SIGKILL)
        t_kill = time.monotonic()
        n3.proc.wait(10)
        self.gone_nodes.add(n3)
        for s in (s1, s2):
            self.assertEqual(s.got("will/"), [],
                             "a will arrived before the kill")
        expected = {"will/a": "A gone", "will/b": "B gone",
                    "will/f": "F gone", "will/g": "G gone"}
        for s in (s1, s2):
            for t, p in expected.items():
                try:
                    m = s.wait_for(t, p, timeout=20)
                except AssertionError as e:
                    raise AssertionError("%s\n%s" % (e, self.dump()))
                self.assertGreater(m[3], t_kill)
                sys.stderr.write("%s on %s %.2f s after the kill\n"
                                 % (t, s.c._client_id.decode(),
                                    m[3] - t_kill))
                self.assertLess(m[3] - t_kill, 15.0, t)
            g = s.wait_for("will/g")
            # counted from the last heartbeat (up to 1 s before the kill),
            # in whole seconds
            self.assertGreater(g[3] - t_kill, WILL_DELAY - 2.0)
        win = self.winner_log(r"Cluster: node n3 is gone \(no heartbeat for "
                              r"\d+ s\); node n\d took over its 5 will "
                              r"record\(s\)")
        win.wait_log(r"Cluster: wills of node n3's clients: 3 published, 1 "
                     r"not \(the client connected again elsewhere\)")
        win.wait_log(r"Cluster: wills of node n3's clients: 1 published, 0 "
                     r"not")
        other = n2 if win is n1 else n1
        try:
            other.wait_log(r"Cluster: wills of node n3 \(epoch \w+\) "
                           r"claimed by node n[12]")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.dump()))
        self.assertEqual(other.count(r"took over its"), 0)
        # nothing more: each will once, none of C, D, E
        self.marker((s1, s2), "end")
        for s in (s1, s2):
            got = sorted((m[0], m[1]) for m in s.got("will/"))
            self.assertEqual(got, sorted(expected.items()))
        # (e) the retained will is retained on every surviving node
        for b in (n1, n2):
            r = self.client(b, "late-%d" % b.port)
            r.subscribe("will/f")
            m = r.wait_for("will/f", "F gone")
            self.assertTrue(m[2], "retain flag")
        # the survivors' clients lost nothing
        self.assertFalse(s1.gone.is_set() or s2.gone.is_set())

    def test_sigterm_no_wills(self):
        n1, n2, n3 = self.nodes
        s1, s2 = self.subscribers()
        self.client(n3, "H", will=("will/h", "H gone", 1, False))
        self.client(n3, "I", v5=True, will=("will/i", "I gone", 1, True))
        n3.signal(signal.SIGTERM)
        self.assertEqual(n3.proc.wait(10), 0)
        self.gone_nodes.add(n3)
        self.winner_log(r"Cluster: node n3 stopped; \d+ will record\(s\) of "
                        r"its clients dropped")
        # past the heartbeat timeout: no survivor takes n3 for dead
        time.sleep(TIMEOUT_S + 2)
        self.marker((s1, s2), "end")
        for s in (s1, s2):
            self.assertEqual(s.got("will/"), [])
        for b in (n1, n2):
            self.assertEqual(b.count(r"is gone \(no heartbeat"), 0)

    def test_nats_outage_no_wills(self):
        """An outage of NATS longer than the timeout is no death: the
        nodes judge only after being connected for the timeout again."""
        n1, n2, n3 = self.nodes
        s1, s2 = self.subscribers()
        self.client(n3, "L", will=("will/l", "L gone", 1, False))
        self.client(n2, "M", v5=True, will=("will/m", "M gone", 1, False))
        marks = [b.mark() for b in self.nodes]
        self.nats.stop()
        for i, b in enumerate(self.nodes):
            b.wait_log(r"Cluster: node n%d lost its NATS connection" % (i + 1),
                       start=marks[i])
        time.sleep(TIMEOUT_S + 1)  # no heartbeat for longer than the timeout
        marks = [b.mark() for b in self.nodes]
        self.nats.start()
        for i, b in enumerate(self.nodes):
            b.wait_log(r"Cluster: node n%d connected to NATS" % (i + 1),
                       start=marks[i])
        time.sleep(TIMEOUT_S + 2)  # past the timeout, connected
        self.marker((s1, s2), "end")
        for s in (s1, s2):
            self.assertEqual(s.got("will/"), [])
        for b in self.nodes:
            self.assertEqual(b.count(r"is gone \(no heartbeat"), 0,
                             b.log_text())

    def test_all_killed_new_node_publishes(self):
        n1, n2, n3 = self.nodes
        self.client(n3, "J", will=("will/j", "J gone", 1, True))
        self.client(n2, "K", v5=True, will=("will/k", "K gone", 1, True))
        for b in self.nodes:
            b.signal(signal.SIGKILL)
        for b in self.nodes:
            b.proc.wait(10)
            self.gone_nodes.add(b)
        n4 = self.start_node("n4")
        n4.wait_log(r"Cluster: node n3 is gone .* took over its 1 will "
                    r"record", timeout=20)
        n4.wait_log(r"Cluster: node n2 is gone .* took over its 1 will "
                    r"record", timeout=20)
        # retained wills: a subscriber gets them whenever it comes
        r = self.client(n4, "late")
        r.subscribe("will/#")
        self.assertTrue(r.wait_for("will/j", "J gone")[2])
        self.assertTrue(r.wait_for("will/k", "K gone")[2])


class NodeTimeoutConfTest(unittest.TestCase):
    def test_bad_values_are_file_line_errors(self):
        for value, why in (("1", "too small"), ("3601", "too large"),
                           ("abc", "expected an integer from 2 to 3600")):
            b = Broker("threads 1\ncluster_nats nats://127.0.0.1:1\n"
                       "cluster_node_timeout %s\n" % value)
            r = subprocess.run([MQTTD, "-c", b.conf_path, "-t"],
                               capture_output=True, text=True, timeout=30)
            b.stop()
            self.assertNotEqual(r.returncode, 0)
            self.assertRegex(r.stderr, r"mqttd\.conf:5: .*cluster_node_timeout"
                             r".*%s" % why if value != "abc" else
                             r"mqttd\.conf:5: invalid value 'abc' for "
                             r"'cluster_node_timeout'")


if __name__ == "__main__":
    unittest.main(verbosity=2)
