"""Interoperability with an independent client library: Debian's
python3-paho-mqtt (1.6) against mqttd with the default configuration.
Everyday flows: connect (keepalive 60; v3.1.1 and v5), QoS 0/1/2 both
ways, retained set/receive/clear, will on abnormal disconnect, persistent
session receiving queued QoS 1 messages, v5 properties (user properties,
message expiry, response topic + correlation data, content type, topic
alias, subscription identifiers). Keepalive 0 lives in its own class (a
known gap of the default max_keepalive, committed with its fix).

Waits are event-driven: paho callbacks set threading events."""

import queue
import threading
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from harness import TIMEOUT, Broker

V3, V5 = mqtt.MQTTv311, mqtt.MQTTv5


class Client:
    """A paho client with its network loop in a thread and queues for the
    callbacks tests wait on."""

    def __init__(self, port, client_id, proto, clean=True, keepalive=60,
                 will=None, props=None):
        self.port = port
        kw = {"client_id": client_id, "protocol": proto}
        if proto != V5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(**kw)
        self.proto = proto
        self.msgs = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.acked = {}
        self.cond = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, *rest: self.subacks.put(
            (mid, rest[0]))
        self.c.on_publish = self._on_publish
        if will:
            self.c.will_set(*will)
        self.c.loop_start()
        ckw = {"keepalive": keepalive}
        if proto == V5:
            ckw["clean_start"] = clean
            if props is not None:
                ckw["properties"] = props
        self.c.connect("127.0.0.1", port, **ckw)

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connacks.put((flags, rc, props))

    def _on_publish(self, c, u, mid):
        with self.cond:
            self.acked[mid] = True
            self.cond.notify_all()

    def connack(self):
        return self.connacks.get(timeout=TIMEOUT)

    def subscribe(self, topic, qos=0, **kw):
        if self.proto == V5:
            res, mid = self.c.subscribe(
                topic, options=SubscribeOptions(qos=qos),
                properties=kw.get("properties"))
        else:
            res, mid = self.c.subscribe(topic, qos)
        assert res == mqtt.MQTT_ERR_SUCCESS
        got_mid, granted = self.subacks.get(timeout=TIMEOUT)
        assert got_mid == mid
        return granted

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        """Publish and, for QoS 1/2, wait until the flow is complete."""
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos:
            info.wait_for_publish(timeout=TIMEOUT)
            assert info.is_published(), "QoS %d publish not acknowledged" % qos
        return info

    def message(self):
        return self.msgs.get(timeout=TIMEOUT)

    def no_message(self, timeout=0.5):
        """Nothing queued: a round trip through the broker (a QoS 1 publish
        to a topic nobody subscribes to) comes back first."""
        self.publish("interop/nothing/%s" % id(self), b"", qos=1)
        return self.msgs.empty()

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()

    def kill(self):
        """Abnormal close: drop the socket without DISCONNECT."""
        self.c.loop_stop()
        self.c.socket().close()


class Base(unittest.TestCase):
    CONF = ""

    def setUp(self):
        self.b = Broker(self.CONF).start()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.c.loop_stop()
                c.c.disconnect()
            except Exception:  # already gone
                pass
        alive = self.b.alive()
        rc = self.b.stop()
        self.assertTrue(alive, "mqttd died:\n" + self.b.log_text())
        self.assertEqual(rc, 0, self.b.log_text())

    def client(self, cid, proto, **kw):
        c = Client(self.b.port, cid, proto, **kw)
        self.clients.append(c)
        return c

    def connected(self, cid, proto, **kw):
        c = self.client(cid, proto, **kw)
        flags, rc, props = c.connack()
        self.assertEqual(rc, 0, "CONNACK %r" % (rc,))
        return c


class Everyday(Base):
    def test_connect_keepalive_60(self):
        for proto in (V3, V5):
            with self.subTest(proto=proto):
                self.connected("ka60-%d" % proto, proto, keepalive=60)

    def test_qos_both_ways(self):
        """Every subscription QoS against every publish QoS; the copy has
        the lower of the two."""
        for proto in (V3, V5):
            with self.subTest(proto=proto):
                s = self.connected("s-%d" % proto, proto)
                for sq in (0, 1, 2):
                    s.subscribe("interop/q/%d/%d/+" % (proto, sq), sq)
                p = self.connected("p-%d" % proto, proto)
                for sq in (0, 1, 2):
                    for pq in (0, 1, 2):
                        t = "interop/q/%d/%d/%d" % (proto, sq, pq)
                        p.publish(t, b"m", pq)
                        m = s.message()
                        self.assertEqual((m.topic, m.payload), (t, b"m"))
                        self.assertEqual(m.qos, min(sq, pq))

    def test_retained_set_receive_clear(self):
        for proto in (V3, V5):
            with self.subTest(proto=proto):
                t = "interop/ret/%d" % proto
                p = self.connected("rp-%d" % proto, proto)
                p.publish(t, b"kept", 1, retain=True)
                s = self.connected("rs-%d" % proto, proto)
                s.subscribe(t, 1)
                m = s.message()
                self.assertEqual((m.payload, m.retain), (b"kept", True))
                p.publish(t, b"", 1, retain=True)  # clear
                s2 = self.connected("rs2-%d" % proto, proto)
                s2.subscribe(t, 1)
                self.assertTrue(s2.no_message())

    def test_will_on_abnormal_disconnect(self):
        for proto in (V3, V5):
            with self.subTest(proto=proto):
                t = "interop/will/%d" % proto
                s = self.connected("ws-%d" % proto, proto)
                s.subscribe(t, 1)
                w = self.connected("wc-%d" % proto, proto,
                                   will=(t, b"gone", 1, False))
                w.kill()
                m = s.message()
                self.assertEqual((m.topic, m.payload), (t, b"gone"))

    def test_persistent_session_gets_queued_qos1(self):
        for proto in (V3, V5):
            with self.subTest(proto=proto):
                t = "interop/ps/%d" % proto
                cid = "ps-%d" % proto
                props = None
                if proto == V5:
                    props = Properties(PacketTypes.CONNECT)
                    props.SessionExpiryInterval = 300
                c = self.connected(cid, proto, clean=False, props=props)
                c.subscribe(t, 1)
                c.disconnect()
                p = self.connected("psp-%d" % proto, proto)
                for i in range(3):
                    p.publish(t, b"q%d" % i, 1)
                c2 = self.client(cid, proto, clean=False, props=props)
                flags, rc, _ = c2.connack()
                self.assertEqual(rc, 0)
                self.assertEqual(flags.get("session present"), 1)
                got = [c2.message().payload for _ in range(3)]
                self.assertEqual(got, [b"q0", b"q1", b"q2"])


class V5Properties(Base):
    def test_publish_properties_pass_through(self):
        s = self.connected("v5s", V5)
        s.subscribe("interop/p", 1)
        p = self.connected("v5p", V5)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("k1", "v1")
        props.UserProperty = ("k2", "v2")
        props.MessageExpiryInterval = 300
        props.ResponseTopic = "interop/reply"
        props.CorrelationData = b"\x00\x01corr"
        props.ContentType = "application/json"
        p.publish("interop/p", b"{}", 1, props=props)
        m = s.message()
        mp = m.properties
        self.assertEqual(mp.UserProperty, [("k1", "v1"), ("k2", "v2")])
        self.assertLessEqual(mp.MessageExpiryInterval, 300)
        self.assertGreater(mp.MessageExpiryInterval, 290)
        self.assertEqual(mp.ResponseTopic, "interop/reply")
        self.assertEqual(mp.CorrelationData, b"\x00\x01corr")
        self.assertEqual(mp.ContentType, "application/json")

    def test_request_response_no_local(self):
        a = self.connected("rr-a", V5)
        b = self.connected("rr-b", V5)
        for c in (a, b):
            c.c.subscribe("interop/rr", options=SubscribeOptions(
                qos=2, noLocal=True))
            c.subacks.get(timeout=TIMEOUT)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "interop/rr"
        props.CorrelationData = b"334"
        a.publish("interop/rr", b"request", 1, props=props)
        m = b.message()
        self.assertEqual(m.payload, b"request")
        self.assertEqual(m.properties.ResponseTopic, "interop/rr")
        self.assertEqual(m.properties.CorrelationData, b"334")
        b.publish(m.properties.ResponseTopic, b"response", 1,
                  props=m.properties)
        r = a.message()
        self.assertEqual((r.payload, r.properties.CorrelationData),
                         (b"response", b"334"))
        self.assertTrue(a.no_message())
        self.assertTrue(b.no_message())

    def test_topic_alias_from_client(self):
        s = self.connected("tas", V5)
        s.subscribe("interop/alias", 1)
        p = self.client("tap", V5)
        _, rc, cprops = p.connack()
        self.assertGreaterEqual(cprops.TopicAliasMaximum, 1)
        props = Properties(PacketTypes.PUBLISH)
        props.TopicAlias = 1
        p.publish("interop/alias", b"first", 1, props=props)
        p.publish("", b"second", 1, props=props)
        self.assertEqual(s.message().payload, b"first")
        m = s.message()
        self.assertEqual((m.topic, m.payload), ("interop/alias", b"second"))

    def test_subscription_identifiers(self):
        s = self.connected("sid", V5)
        sp = Properties(PacketTypes.SUBSCRIBE)
        sp.SubscriptionIdentifier = 42
        s.subscribe("interop/sid/+", 1, properties=sp)
        sp2 = Properties(PacketTypes.SUBSCRIBE)
        sp2.SubscriptionIdentifier = 4242
        s.subscribe("interop/sid/#", 1, properties=sp2)
        p = self.connected("sidp", V5)
        p.publish("interop/sid/x", b"m", 1)
        m = s.message()
        self.assertEqual(sorted(m.properties.SubscriptionIdentifier),
                         [42, 4242])


class KeepaliveZero(Base):
    """Keepalive 0 (off) with the default configuration, v3.1.1 and v5
    (max_keepalive is off by default, as in Mosquitto 2.0; until issue 14
    a v3.1.1 client got "identifier rejected")."""

    def test_keepalive_0(self):
        for proto in (V3, V5):
            with self.subTest(proto=proto):
                c = self.client("ka0-%d" % proto, proto, keepalive=0)
                flags, rc, props = c.connack()
                self.assertEqual(rc, 0, "CONNACK %r" % (rc,))
                if proto == V5 and props is not None:
                    # no Server Keep Alive forcing it on
                    self.assertFalse(hasattr(props, "ServerKeepAlive"))


if __name__ == "__main__":
    unittest.main()
