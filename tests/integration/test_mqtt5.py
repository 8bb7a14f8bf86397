"""MQTT 5 behaviour of the real daemon: CONNACK properties, session expiry,
property passthrough, message expiry, topic aliases, subscription options
(no local, retain as published, retain handling), subscription identifiers,
shared subscriptions, takeover, enhanced-auth refusal and v3.1.1/v5
interoperation. Uses mosquitto_pub/mosquitto_sub -V mqttv5 and raw sockets
with property bytes built here.

Waits are event-driven (SUBACK, log lines, socket reads with timeouts). The
only clock waits are for message/session expiry, where the behaviour under
test is defined by wall-clock time; they wait for a computed instant, never
for "long enough"."""

import struct
import subprocess
import time
import unittest

from harness import (BrokerTest, Raw, Sub, connect_pkt, mstr, packet, pub,
                     pub_done, publish_pkt, subscribe_pkt, varint)

# ---- MQTT 5 property ids (MQTT 5.0 section 2.2.2.2) -------------------------
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27

_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16 = {0x13, 0x21, 0x22, 0x23}
_U32 = {0x02, 0x11, 0x18, 0x27}
_VAR = {0x0B}
_STR = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BIN = {0x09, 0x16}

# reason codes
RC_SUCCESS = 0x00
RC_PROTOCOL_ERROR = 0x82
RC_BAD_AUTH_METHOD = 0x8C
RC_SESSION_TAKEN_OVER = 0x8E
RC_TOPIC_ALIAS_INVALID = 0x94

# subscription options byte [MQTT-3.8.3.1]
OPT_NO_LOCAL = 0x04
OPT_RAP = 0x08


def p_byte(pid, v):
    return bytes([pid, v])


def p_u16(pid, v):
    return bytes([pid]) + struct.pack("!H", v)


def p_u32(pid, v):
    return bytes([pid]) + struct.pack("!I", v)


def p_var(pid, v):
    return bytes([pid]) + varint(v)


def p_str(pid, s):
    return bytes([pid]) + mstr(s)


def p_bin(pid, b):
    return bytes([pid]) + mstr(b)


def p_user(k, v):
    return bytes([P_USER_PROPERTY]) + mstr(k) + mstr(v)


def read_varint(buf, i):
    n, mult = 0, 1
    for _ in range(4):
        b = buf[i]
        i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return n, i
    raise AssertionError("varint longer than 4 bytes")


def parse_props(buf, i=0):
    """Decode a property block starting at buf[i] (length varint first).
    Returns ([(id, value)...] in wire order, index after the block)."""
    plen, i = read_varint(buf, i)
    end = i + plen
    assert end <= len(buf), "property length past end of packet"
    out = []
    while i < end:
        pid = buf[i]
        i += 1
        if pid in _BYTE:
            v = buf[i]
            i += 1
        elif pid in _U16:
            v = struct.unpack_from("!H", buf, i)[0]
            i += 2
        elif pid in _U32:
            v = struct.unpack_from("!I", buf, i)[0]
            i += 4
        elif pid in _VAR:
            v, i = read_varint(buf, i)
        elif pid in _STR or pid in _BIN:
            n = struct.unpack_from("!H", buf, i)[0]
            v = bytes(buf[i + 2:i + 2 + n])
            i += 2 + n
            if pid in _STR:
                v = v.decode()
        elif pid == P_USER_PROPERTY:
            n = struct.unpack_from("!H", buf, i)[0]
            k = bytes(buf[i + 2:i + 2 + n]).decode()
            i += 2 + n
            n = struct.unpack_from("!H", buf, i)[0]
            val = bytes(buf[i + 2:i + 2 + n]).decode()
            i += 2 + n
            v = (k, val)
        else:
            raise AssertionError("unknown property id 0x%02x" % pid)
        out.append((pid, v))
    assert i == end, "property block length mismatch"
    return out, end


def prop(props, pid):
    """First value of property pid, or None."""
    for k, v in props:
        if k == pid:
            return v
    return None


def props_all(props, pid):
    return [v for k, v in props if k == pid]


class Publish:
    def __init__(self, first, body, version=5):
        assert first & 0xF0 == 0x30, "expected PUBLISH, got 0x%02x" % first
        self.qos = (first >> 1) & 3
        self.retain = bool(first & 1)
        self.dup = bool(first & 8)
        n = struct.unpack_from("!H", body, 0)[0]
        self.topic = bytes(body[2:2 + n]).decode()
        i = 2 + n
        self.pid = None
        if self.qos:
            self.pid = struct.unpack_from("!H", body, i)[0]
            i += 2
        self.props = []
        if version == 5:
            self.props, i = parse_props(body, i)
        self.payload = bytes(body[i:])

    def __repr__(self):
        return "Publish(%r, %r, qos=%d, retain=%r, props=%r)" % (
            self.topic, self.payload, self.qos, self.retain, self.props)


def parse_connack(body):
    """(session_present, reason_code, props) of a v5 CONNACK body."""
    props, end = parse_props(body, 2)
    assert end == len(body)
    return bool(body[0] & 1), body[1], props


def parse_disconnect(body):
    """(reason_code, props) of a v5 DISCONNECT body (short forms allowed)."""
    if len(body) == 0:
        return 0, []
    if len(body) == 1:
        return body[0], []
    props, end = parse_props(body, 1)
    assert end == len(body)
    return body[0], props


PINGREQ = packet(0xC0, b"")
DISCONNECT_V5 = packet(0xE0, b"\x00\x00")


class R5(Raw):
    """A raw MQTT 5 connection with small helpers."""

    def connect5(self, client_id, clean=True, props=b"", **kw):
        self.send(connect_pkt(client_id=client_id, version=5, clean=clean,
                              props=props, **kw))
        p = self.recv_packet()
        assert p is not None, "closed instead of CONNACK"
        assert p[0] == 0x20, "expected CONNACK, got %r" % (p,)
        return parse_connack(p[1])

    def subscribe5(self, topic, opts=0, pid=1, props=b""):
        """Subscribe; opts is the whole options byte. Returns the SUBACK
        reason codes."""
        self.send(subscribe_pkt(topic, qos=opts, pid=pid, version=5,
                                props=props))
        p = self.recv_packet()
        assert p is not None and p[0] == 0x90, "expected SUBACK, got %r" % (p,)
        body = p[1]
        assert struct.unpack_from("!H", body, 0)[0] == pid
        _, i = parse_props(body, 2)
        return list(body[i:])

    def publish5(self, topic, payload, qos=0, retain=False, pid=1, props=b""):
        self.send(publish_pkt(topic, payload, qos=qos, retain=retain, pid=pid,
                              version=5, props=props))
        if qos == 1:
            p = self.recv_packet()
            assert p is not None and p[0] == 0x40, "expected PUBACK, got %r" % (p,)

    def next_publish(self, ack=True, timeout=10.0):
        p = self.recv_packet(timeout=timeout)
        assert p is not None, "connection closed, expected PUBLISH"
        m = Publish(p[0], p[1])
        if ack and m.qos == 1:
            self.send(packet(0x40, struct.pack("!H", m.pid)))
        return m

    def expect_nothing_more(self):
        """Round-trip a PINGREQ: the next packet must be the PINGRESP, so
        nothing was queued for us before it."""
        self.send(PINGREQ)
        p = self.recv_packet()
        assert p is not None, "connection closed, expected PINGRESP"
        assert p[0] == 0xD0, "expected PINGRESP, got %r" % (
            Publish(p[0], p[1]) if p[0] & 0xF0 == 0x30 else p,)

    def disconnect5(self, props=b""):
        if props:
            self.send(packet(0xE0, b"\x00" + varint(len(props)) + props))
        else:
            self.send(DISCONNECT_V5)
        assert self.closed(), "broker did not close after DISCONNECT"

    def expect_disconnect(self):
        """Next packet must be a DISCONNECT, followed by EOF. Returns
        (reason_code, props)."""
        p = self.recv_packet()
        assert p is not None, "closed without DISCONNECT"
        assert p[0] == 0xE0, "expected DISCONNECT, got %r" % (p,)
        rc, props = parse_disconnect(p[1])
        assert self.closed(), "not closed after DISCONNECT"
        return rc, props


def wait_until_wallclock(t):
    """Wait for the wall clock to reach t (a computed expiry instant; the
    behaviour under test is defined by wall-clock time)."""
    while True:
        left = t - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


class Base(BrokerTest):
    """BrokerTest that also closes every socket and mosquitto_sub it
    opened (no ResourceWarnings, no leaked processes)."""

    def setUp(self):
        self._res = []
        super().setUp()

    def tearDown(self):
        for x in self._res:
            if isinstance(x, Sub):
                x.kill()
                with x.cond:
                    while not x.out or x.out[-1] != "<<EOF>>":
                        x.cond.wait(1)
                x.proc.stdout.close()
            else:
                x.close()
        try:
            super().tearDown()
        finally:
            with self.b.cond:
                while self.b.lines[-1:] != ["<<EOF>>"]:
                    self.b.cond.wait(1)
            self.b.proc.stderr.close()

    def raw(self):
        r = R5(self.b.port)
        self._res.append(r)
        return r

    def raw311(self):
        r = Raw(self.b.port)
        self._res.append(r)
        return r

    def sub(self, args, count=None):
        s = Sub(self.b.port, args, count=count)
        self._res.append(s)
        return s

    def disconnected(self, client_id, start):
        self.b.wait_log(r"Client %s disconnected\." % client_id, start=start)


# ---- CONNECT / CONNACK ---------------------------------------------------------

class Connack(Base):
    def test_assigned_client_identifier(self):
        """[MQTT-3.1.3-7]/[MQTT-3.2.2-16]: empty id -> the broker assigns
        one and returns it in CONNACK Assigned Client Identifier."""
        r = self.raw()
        sp, rc, props = r.connect5("", clean=True)
        self.assertEqual((sp, rc), (False, RC_SUCCESS))
        aid = prop(props, P_ASSIGNED_CLIENT_ID)
        self.assertIsNotNone(aid, "no Assigned Client Identifier: %r" % props)
        self.assertTrue(aid)
        # the assigned id is the session's id: it appears in the log line
        self.b.wait_log(r"New client connected from .* as %s \(p5, c1"
                        % aid)
        r2 = self.raw()
        _, rc2, props2 = r2.connect5("", clean=True)
        self.assertEqual(rc2, RC_SUCCESS)
        self.assertNotEqual(prop(props2, P_ASSIGNED_CLIENT_ID), aid)
        # both are live, independent connections
        r.expect_nothing_more()
        r2.expect_nothing_more()

    def test_no_assigned_id_when_given(self):
        r = self.raw()
        _, rc, props = r.connect5("given-id")
        self.assertEqual(rc, RC_SUCCESS)
        self.assertIsNone(prop(props, P_ASSIGNED_CLIENT_ID))
        # default max_topic_alias (10) is advertised
        self.assertEqual(prop(props, P_TOPIC_ALIAS_MAXIMUM), 10)

    def test_auth_method_refused(self):
        """Enhanced authentication is not supported: CONNECT with an
        Authentication Method gets CONNACK 0x8C and the connection is
        closed [MQTT-4.12.0-1]."""
        r = self.raw()
        sp, rc, _ = r.connect5("authm", props=p_str(P_AUTH_METHOD, "SCRAM-SHA-1")
                               + p_bin(P_AUTH_DATA, b"abc"))
        self.assertEqual((sp, rc), (False, RC_BAD_AUTH_METHOD))
        self.assertTrue(r.closed())
        # and no session was created for it
        r2 = self.raw()
        sp, rc, _ = r2.connect5("authm", clean=False,
                                props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (False, RC_SUCCESS))

    def test_takeover_sends_disconnect_8e(self):
        """[MQTT-3.1.4-3]: the old v5 connection gets DISCONNECT 0x8E
        Session taken over before it is closed."""
        r1 = self.raw()
        r1.connect5("tk")
        r2 = self.raw()
        _, rc, _ = r2.connect5("tk")
        self.assertEqual(rc, RC_SUCCESS)
        rc, _ = r1.expect_disconnect()
        self.assertEqual(rc, RC_SESSION_TAKEN_OVER)
        r2.expect_nothing_more()

    def test_takeover_keeps_session(self):
        """Takeover with clean start 0 keeps the subscriptions."""
        r1 = self.raw()
        r1.connect5("tk2", clean=False, props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual(r1.subscribe5("tk2/t", opts=1), [1])
        r2 = self.raw()
        sp, rc, _ = r2.connect5("tk2", clean=False,
                                props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (True, RC_SUCCESS))
        rc, _ = r1.expect_disconnect()
        self.assertEqual(rc, RC_SESSION_TAKEN_OVER)
        pub(self.b.port, ["-t", "tk2/t", "-m", "still", "-q", "1", "-V", "mqttv5"])
        m = r2.next_publish()
        self.assertEqual((m.topic, m.payload), ("tk2/t", b"still"))


# ---- session expiry --------------------------------------------------------------

class SessionExpiry(Base):
    def test_queued_qos1_delivered_on_reconnect(self):
        r = self.raw()
        sp, rc, _ = r.connect5("se1", clean=True,
                               props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (False, RC_SUCCESS))
        self.assertEqual(r.subscribe5("se/t", opts=1), [1])
        m = self.b.mark()
        r.disconnect5()
        self.disconnected("se1", m)
        for i in range(3):
            pub(self.b.port, ["-t", "se/t", "-m", "off%d" % i, "-q", "1",
                              "-V", "mqttv5"])
        r = self.raw()
        sp, rc, _ = r.connect5("se1", clean=False,
                               props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (True, RC_SUCCESS))
        got = [r.next_publish() for _ in range(3)]
        self.assertEqual([(g.topic, g.payload, g.qos) for g in got],
                         [("se/t", b"off%d" % i, 1) for i in range(3)])
        r.expect_nothing_more()

    def test_mosquitto_sub_persistent_session(self):
        args = ["-t", "se2/t", "-q", "1", "-V", "mqttv5", "-i", "se2id",
                "-c", "-x", "60"]
        s = self.sub(args, count=1)
        s.ready()
        pub(self.b.port, ["-t", "se2/t", "-m", "live", "-q", "1", "-V", "5"])
        self.assertEqual(s.messages(), ["live"])
        pub(self.b.port, ["-t", "se2/t", "-m", "queued", "-q", "1", "-V", "5"])
        s = self.sub(args, count=1)
        self.assertEqual(s.messages(), ["queued"])

    def test_expiry_zero_discards(self):
        """Session Expiry Interval absent (0): the session ends with the
        network connection [MQTT-3.1.2-23 note / 3.1.2.11.2]."""
        r = self.raw()
        r.connect5("se0", clean=False)
        self.assertEqual(r.subscribe5("se0/t", opts=1), [1])
        m = self.b.mark()
        r.disconnect5()
        self.disconnected("se0", m)
        pub(self.b.port, ["-t", "se0/t", "-m", "lost", "-q", "1", "-V", "5"])
        r = self.raw()
        sp, rc, _ = r.connect5("se0", clean=False,
                               props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (False, RC_SUCCESS))
        r.expect_nothing_more()

    def test_disconnect_sets_expiry_zero(self):
        """DISCONNECT may lower the Session Expiry Interval to 0, which
        discards the session."""
        r = self.raw()
        r.connect5("sed", clean=False, props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual(r.subscribe5("sed/t", opts=1), [1])
        m = self.b.mark()
        r.disconnect5(props=p_u32(P_SESSION_EXPIRY, 0))
        self.disconnected("sed", m)
        r = self.raw()
        sp, rc, _ = r.connect5("sed", clean=False,
                               props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (False, RC_SUCCESS))

    def test_disconnect_cannot_raise_zero_expiry(self):
        """[MQTT-3.14.2-2]: Session Expiry non-zero in DISCONNECT after 0 in
        CONNECT is a Protocol Error -> DISCONNECT 0x82."""
        r = self.raw()
        r.connect5("sez", clean=True)
        r.send(packet(0xE0, b"\x00" + varint(5) + p_u32(P_SESSION_EXPIRY, 30)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_PROTOCOL_ERROR)

    def test_session_expires_after_interval(self):
        r = self.raw()
        r.connect5("se_exp", clean=False, props=p_u32(P_SESSION_EXPIRY, 1))
        self.assertEqual(r.subscribe5("sx/t", opts=1), [1])
        m = self.b.mark()
        r.disconnect5()
        self.disconnected("se_exp", m)
        # expiry 1 s, checked by a 1 s tick: gone by 3 s after the close
        wait_until_wallclock(time.time() + 3.0)
        r = self.raw()
        sp, rc, _ = r.connect5("se_exp", clean=False,
                               props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (False, RC_SUCCESS))

    def test_clean_start_discards_existing(self):
        r = self.raw()
        r.connect5("secs", clean=False, props=p_u32(P_SESSION_EXPIRY, 60))
        m = self.b.mark()
        r.disconnect5()
        self.disconnected("secs", m)
        r = self.raw()
        sp, rc, _ = r.connect5("secs", clean=True,
                               props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (False, RC_SUCCESS))


# ---- property passthrough -------------------------------------------------------

class Properties(Base):
    def test_user_properties_in_order(self):
        """[MQTT-3.3.2-17]/[MQTT-3.3.2-18]: user properties forwarded
        unaltered and in order, duplicate keys allowed."""
        r = self.raw()
        r.connect5("up")
        r.subscribe5("up/t", opts=0)
        pub(self.b.port, ["-t", "up/t", "-m", "x", "-V", "mqttv5",
                          "-D", "publish", "user-property", "k", "v1",
                          "-D", "publish", "user-property", "a", "2",
                          "-D", "publish", "user-property", "k", "v3"])
        m = r.next_publish()
        self.assertEqual(m.payload, b"x")
        self.assertEqual(props_all(m.props, P_USER_PROPERTY),
                         [("k", "v1"), ("a", "2"), ("k", "v3")])

    def test_user_properties_raw_publisher_mosquitto_sub(self):
        s = self.sub(["-t", "up2/t", "-V", "mqttv5", "-F", "%P|%p"],
                     count=1)
        s.ready()
        r = self.raw()
        r.connect5("up2pub")
        r.publish5("up2/t", "hi", qos=1,
                   props=p_user("z", "1") + p_user("a", "2"))
        line = s.messages()
        self.assertEqual(len(line), 1)
        self.assertEqual(line[0], "z:1 a:2|hi")

    def test_response_topic_correlation_content_type(self):
        s = self.sub(["-t", "rt/t", "-V", "mqttv5",
                      "-F", "%R|%D|%C|%F|%p"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "rt/t", "-m", "req", "-V", "mqttv5",
                          "-D", "publish", "response-topic", "reply/here",
                          "-D", "publish", "correlation-data", "corr-42",
                          "-D", "publish", "content-type", "text/plain",
                          "-D", "publish", "payload-format-indicator", "1"])
        self.assertEqual(s.messages(), ["reply/here|corr-42|text/plain|1|req"])

    def test_correlation_data_binary_exact(self):
        r = self.raw()
        r.connect5("cd")
        r.subscribe5("cd/t", opts=1)
        p = self.raw()
        p.connect5("cdpub")
        blob = bytes(range(256))[:200] + b"\x00\xff"
        p.publish5("cd/t", "b", qos=1,
                   props=p_str(P_RESPONSE_TOPIC, "r/1")
                   + p_bin(P_CORRELATION_DATA, blob))
        m = r.next_publish()
        self.assertEqual(prop(m.props, P_RESPONSE_TOPIC), "r/1")
        self.assertEqual(prop(m.props, P_CORRELATION_DATA), blob)
        self.assertIsNone(prop(m.props, P_MESSAGE_EXPIRY))
        self.assertIsNone(prop(m.props, P_SUBSCRIPTION_ID))


# ---- message expiry ---------------------------------------------------------------

class MessageExpiry(Base):
    def test_live_delivery_carries_remaining_interval(self):
        r = self.raw()
        r.connect5("me_live")
        r.subscribe5("me/live", opts=1)
        pub(self.b.port, ["-t", "me/live", "-m", "x", "-q", "1", "-V", "5",
                          "-D", "publish", "message-expiry-interval", "60"])
        m = r.next_publish()
        left = prop(m.props, P_MESSAGE_EXPIRY)
        self.assertIsNotNone(left, "no Message Expiry Interval: %r" % m.props)
        self.assertTrue(58 <= left <= 60, left)

    def test_expired_not_delivered_remaining_sent(self):
        """[MQTT-3.3.2-5]: an expired message is not delivered to a
        subscriber; [MQTT-3.3.2-6]: the forwarded Message Expiry Interval
        is the received value minus the time spent waiting."""
        r = self.raw()
        r.connect5("me1", clean=False, props=p_u32(P_SESSION_EXPIRY, 300))
        r.subscribe5("me/t", opts=1)
        m = self.b.mark()
        r.disconnect5()
        self.disconnected("me1", m)
        p = self.raw()
        p.connect5("mepub")
        t0 = time.time()
        p.publish5("me/t", "short", qos=1, pid=1,
                   props=p_u32(P_MESSAGE_EXPIRY, 1))
        p.publish5("me/t", "long", qos=1, pid=2,
                   props=p_u32(P_MESSAGE_EXPIRY, 100))
        p.publish5("me/t", "forever", qos=1, pid=3)
        t1 = time.time()
        # the broker stamped 'short' with time(NULL) + 1 (at most
        # int(t1) + 1); it is expired once the clock reaches that second,
        # plus one more second for the whole-second accounting
        wait_until_wallclock(int(t1) + 2)
        r = self.raw()
        sp, rc, _ = r.connect5("me1", clean=False,
                               props=p_u32(P_SESSION_EXPIRY, 300))
        self.assertEqual((sp, rc), (True, RC_SUCCESS))
        a = r.next_publish()
        b = r.next_publish()
        self.assertEqual([a.payload, b.payload], [b"long", b"forever"])
        left = prop(a.props, P_MESSAGE_EXPIRY)
        self.assertIsNotNone(left)
        waited = time.time() - t0
        self.assertLess(left, 100, "interval not reduced by the wait")
        self.assertGreaterEqual(left, 100 - int(waited) - 2)
        self.assertIsNone(prop(b.props, P_MESSAGE_EXPIRY))
        r.expect_nothing_more()

    def test_expired_retained_not_sent(self):
        pub_done(self.b, ["-t", "mer/a", "-m", "gone", "-r", "-V", "5",
                          "-D", "publish", "message-expiry-interval", "1"])
        t1 = time.time()
        pub_done(self.b, ["-t", "mer/b", "-m", "kept", "-r", "-V", "5",
                          "-D", "publish", "message-expiry-interval", "100"])
        wait_until_wallclock(int(t1) + 2)
        r = self.raw()
        r.connect5("mer")
        r.subscribe5("mer/#", opts=0)
        m = r.next_publish()
        self.assertEqual((m.topic, m.payload, m.retain), ("mer/b", b"kept", True))
        left = prop(m.props, P_MESSAGE_EXPIRY)
        self.assertTrue(left is not None and 95 <= left < 100, left)
        r.expect_nothing_more()


# ---- topic alias -------------------------------------------------------------------

class TopicAlias(Base):
    def test_alias_set_then_used(self):
        s = self.sub(["-t", "ta/#", "-v", "-V", "mqttv5"], count=3)
        s.ready()
        rs = self.raw()
        rs.connect5("ta_sub")
        rs.subscribe5("ta/#", opts=1)
        r = self.raw()
        _, rc, props = r.connect5("ta_pub")
        self.assertEqual(rc, RC_SUCCESS)
        self.assertGreaterEqual(prop(props, P_TOPIC_ALIAS_MAXIMUM) or 0, 2)
        r.publish5("ta/x", "one", qos=1, pid=1, props=p_u16(P_TOPIC_ALIAS, 1))
        r.publish5("", "two", qos=1, pid=2, props=p_u16(P_TOPIC_ALIAS, 1))
        # re-map alias 1 to another topic (MQTT 5.0 3.3.2.3.4)
        r.publish5("ta/y", "three", qos=1, pid=3, props=p_u16(P_TOPIC_ALIAS, 1))
        self.assertEqual(s.messages(), ["ta/x one", "ta/x two", "ta/y three"])
        got = [rs.next_publish() for _ in range(3)]
        self.assertEqual([(g.topic, g.payload) for g in got],
                         [("ta/x", b"one"), ("ta/x", b"two"),
                          ("ta/y", b"three")])
        # the alias belongs to the publisher's connection; it is not
        # forwarded to subscribers (forward_props() drops it)
        for g in got:
            self.assertIsNone(prop(g.props, P_TOPIC_ALIAS), g)

    def test_alias_zero(self):
        """[MQTT-3.3.2-8]: Topic Alias 0 -> DISCONNECT 0x94."""
        r = self.raw()
        r.connect5("ta0")
        r.send(publish_pkt("ta/z", "x", version=5,
                           props=p_u16(P_TOPIC_ALIAS, 0)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_TOPIC_ALIAS_INVALID)

    def test_alias_above_maximum(self):
        """[MQTT-3.3.2-9]: alias > Topic Alias Maximum -> DISCONNECT 0x94."""
        r = self.raw()
        _, _, props = r.connect5("tamax")
        mx = prop(props, P_TOPIC_ALIAS_MAXIMUM)
        self.assertIsNotNone(mx)
        r.send(publish_pkt("ta/z", "x", version=5,
                           props=p_u16(P_TOPIC_ALIAS, mx + 1)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_TOPIC_ALIAS_INVALID)

    def test_alias_at_maximum_ok(self):
        s = self.sub(["-t", "tam/#", "-v"], count=1)
        s.ready()
        r = self.raw()
        _, _, props = r.connect5("tamok")
        mx = prop(props, P_TOPIC_ALIAS_MAXIMUM)
        r.publish5("tam/q", "top", qos=1, pid=1, props=p_u16(P_TOPIC_ALIAS, mx))
        r.publish5("", "edge", qos=1, pid=2, props=p_u16(P_TOPIC_ALIAS, mx))
        # the first publish proves alias == maximum is accepted; the
        # alias-only one was PUBACKed and the connection stays up
        self.assertEqual(s.messages(), ["tam/q top"])
        r.expect_nothing_more()

    def test_unknown_alias(self):
        """Alias-only PUBLISH for an alias never set: Protocol Error."""
        r = self.raw()
        r.connect5("taunk")
        r.send(publish_pkt("", "x", version=5, props=p_u16(P_TOPIC_ALIAS, 3)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_PROTOCOL_ERROR)


# ---- subscription options -----------------------------------------------------------

class ReasonStrings(Base):
    CONF = "allow_anonymous false\nlistener {port} 127.0.0.1\n"

    def test_reason_string_only_when_asked(self):
        r = self.raw()
        _, rc, props = r.connect5("rs1")
        self.assertEqual(rc, 0x87)
        self.assertEqual(prop(props, 0x1F), "not authorised")
        r = self.raw()
        _, rc, props = r.connect5("rs2", props=p_byte(0x17, 0))
        self.assertEqual(rc, 0x87)
        self.assertIsNone(prop(props, 0x1F))


class OutgoingTopicAlias(Base):
    def test_broker_assigns_aliases_when_client_allows(self):
        r = self.raw()
        r.connect5("oa", props=p_u16(P_TOPIC_ALIAS_MAXIMUM, 5))
        r.subscribe5("oa/#")
        for i in range(3):
            pub(self.b.port, ["-t", "oa/t", "-m", "m%d" % i])
        first = r.next_publish()
        self.assertEqual(first.topic, "oa/t")
        self.assertEqual(prop(first.props, P_TOPIC_ALIAS), 1)
        for i in (1, 2):
            m = r.next_publish()
            self.assertEqual(m.topic, "", "alias only after the first")
            self.assertEqual(prop(m.props, P_TOPIC_ALIAS), 1)
            self.assertEqual(m.payload, b"m%d" % i)

    def test_no_alias_without_client_maximum(self):
        r = self.raw()
        r.connect5("oa0")
        r.subscribe5("oa0/#")
        pub(self.b.port, ["-t", "oa0/t", "-m", "x"])
        m = r.next_publish()
        self.assertEqual(m.topic, "oa0/t")
        self.assertIsNone(prop(m.props, P_TOPIC_ALIAS))


class SubscriptionOptions(Base):
    def test_no_local(self):
        """[MQTT-3.8.3-3]: with No Local the client's own messages are not
        forwarded back to it; other subscribers still get them."""
        other = self.sub(["-t", "nl/t", "-V", "mqttv5"], count=2)
        other.ready()
        r = self.raw()
        r.connect5("nl")
        self.assertEqual(r.subscribe5("nl/t", opts=OPT_NO_LOCAL | 1), [1])
        r.publish5("nl/t", "own", qos=1, pid=1)
        pub(self.b.port, ["-t", "nl/t", "-m", "foreign", "-q", "1", "-V", "5"])
        m = r.next_publish()
        self.assertEqual(m.payload, b"foreign")
        r.expect_nothing_more()
        self.assertEqual(other.messages(), ["own", "foreign"])

    def test_without_no_local_own_message_echoed(self):
        r = self.raw()
        r.connect5("nl_off")
        r.subscribe5("nlo/t", opts=1)
        r.publish5("nlo/t", "own", qos=0)
        self.assertEqual(r.next_publish().payload, b"own")

    def test_retain_as_published(self):
        """[MQTT-3.3.1-12/13]: RAP keeps the retain flag on live
        delivery; without it the flag is cleared."""
        rap = self.raw()
        rap.connect5("rap")
        rap.subscribe5("rap/t", opts=OPT_RAP | 1)
        plain = self.raw()
        plain.connect5("norap")
        plain.subscribe5("rap/t", opts=1)
        pub(self.b.port, ["-t", "rap/t", "-m", "r", "-r", "-q", "1", "-V", "5"])
        pub(self.b.port, ["-t", "rap/t", "-m", "n", "-q", "1", "-V", "5"])
        a1, a2 = rap.next_publish(), rap.next_publish()
        self.assertEqual([(a1.payload, a1.retain), (a2.payload, a2.retain)],
                         [(b"r", True), (b"n", False)])
        b1, b2 = plain.next_publish(), plain.next_publish()
        self.assertEqual([(b1.payload, b1.retain), (b2.payload, b2.retain)],
                         [(b"r", False), (b"n", False)])

    def test_retain_handling_0_always(self):
        pub_done(self.b, ["-t", "rh0/t", "-m", "kept", "-r", "-V", "5"])
        r = self.raw()
        r.connect5("rh0")
        r.subscribe5("rh0/t", opts=0)
        self.assertEqual(r.next_publish().payload, b"kept")
        r.subscribe5("rh0/t", opts=0, pid=2)
        m = r.next_publish()
        self.assertEqual((m.payload, m.retain), (b"kept", True))

    def test_retain_handling_1_only_new(self):
        """[MQTT-3.3.1-10]: Retain Handling 1 sends retained messages only
        if the subscription did not exist."""
        pub_done(self.b, ["-t", "rh1/t", "-m", "kept", "-r", "-V", "5"])
        r = self.raw()
        r.connect5("rh1")
        r.subscribe5("rh1/t", opts=(1 << 4))
        m = r.next_publish()
        self.assertEqual((m.payload, m.retain), (b"kept", True))
        r.subscribe5("rh1/t", opts=(1 << 4), pid=2)
        r.expect_nothing_more()

    def test_retain_handling_2_never(self):
        """[MQTT-3.3.1-11]: Retain Handling 2: no retained messages."""
        pub_done(self.b, ["-t", "rh2/t", "-m", "kept", "-r", "-V", "5"])
        r = self.raw()
        r.connect5("rh2")
        self.assertEqual(r.subscribe5("rh2/t", opts=(2 << 4) | 1), [1])
        r.expect_nothing_more()
        # live messages still flow
        pub(self.b.port, ["-t", "rh2/t", "-m", "live", "-q", "1", "-V", "5"])
        m = r.next_publish()
        self.assertEqual((m.payload, m.retain), (b"live", False))



# ---- subscription identifiers --------------------------------------------------------

class SubscriptionIds(Base):
    def test_single_id_mosquitto_sub(self):
        s = self.sub(["-t", "sid/t", "-V", "mqttv5",
                      "-D", "subscribe", "subscription-identifier", "7",
                      "-F", "%S %p"], count=1)
        s.ready()
        pub(self.b.port, ["-t", "sid/t", "-m", "x", "-V", "5"])
        self.assertEqual(s.messages(), ["7 x"])

    def test_two_matching_subscriptions(self):
        """[MQTT-3.3.4-3]/3.3.4: one PUBLISH carrying the identifiers of
        every matching subscription."""
        r = self.raw()
        r.connect5("sid2")
        r.subscribe5("si/#", opts=1, pid=1, props=p_var(P_SUBSCRIPTION_ID, 7))
        r.subscribe5("si/+", opts=1, pid=2,
                     props=p_var(P_SUBSCRIPTION_ID, 300000))
        r.subscribe5("si/a", opts=0, pid=3)  # no identifier
        pub(self.b.port, ["-t", "si/a", "-m", "x", "-q", "1", "-V", "5"])
        m = r.next_publish()
        self.assertEqual(m.qos, 1)
        self.assertEqual(sorted(props_all(m.props, P_SUBSCRIPTION_ID)),
                         [7, 300000])
        r.expect_nothing_more()

    def test_no_id_when_not_subscribed_with_one(self):
        r = self.raw()
        r.connect5("sid3")
        r.subscribe5("sn/t", opts=0)
        pub(self.b.port, ["-t", "sn/t", "-m", "x", "-V", "5"])
        self.assertEqual(props_all(r.next_publish().props, P_SUBSCRIPTION_ID),
                         [])

    def test_id_on_retained_and_replaced(self):
        pub_done(self.b, ["-t", "sr/t", "-m", "kept", "-r", "-V", "5"])
        r = self.raw()
        r.connect5("sid4")
        r.subscribe5("sr/t", opts=0, props=p_var(P_SUBSCRIPTION_ID, 5))
        m = r.next_publish()
        self.assertEqual((m.retain, props_all(m.props, P_SUBSCRIPTION_ID)),
                         (True, [5]))
        # re-subscribing replaces the subscription and its identifier
        r.subscribe5("sr/t", opts=(2 << 4), pid=2,
                     props=p_var(P_SUBSCRIPTION_ID, 9))
        pub(self.b.port, ["-t", "sr/t", "-m", "live", "-V", "5"])
        m = r.next_publish()
        self.assertEqual((m.payload, props_all(m.props, P_SUBSCRIPTION_ID)),
                         (b"live", [9]))

    def test_id_survives_offline_queue(self):
        r = self.raw()
        r.connect5("sid5", clean=False, props=p_u32(P_SESSION_EXPIRY, 60))
        r.subscribe5("sq/t", opts=1, props=p_var(P_SUBSCRIPTION_ID, 11))
        mk = self.b.mark()
        r.disconnect5()
        self.disconnected("sid5", mk)
        pub(self.b.port, ["-t", "sq/t", "-m", "q", "-q", "1", "-V", "5"])
        r = self.raw()
        sp, _, _ = r.connect5("sid5", clean=False,
                              props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertTrue(sp)
        m = r.next_publish()
        self.assertEqual((m.payload, props_all(m.props, P_SUBSCRIPTION_ID)),
                         (b"q", [11]))


# ---- shared subscriptions ---------------------------------------------------------------

class Shared(Base):
    def test_round_robin_two_members(self):
        """[MQTT-4.8.2]: each message goes to exactly one member of the
        group; a normal subscriber gets all of them."""
        g1 = self.sub(["-t", "$share/g/sh/t", "-q", "1", "-V", "mqttv5"],
                      count=5)
        g2 = self.sub(["-t", "$share/g/sh/t", "-q", "1", "-V", "mqttv5"],
                      count=5)
        normal = self.sub(["-t", "sh/t", "-q", "1", "-V", "mqttv5"],
                          count=10)
        g1.ready()
        g2.ready()
        normal.ready()
        lines = "\n".join("m%d" % i for i in range(10)) + "\n"
        subprocess.run(["mosquitto_pub", "-p", str(self.b.port), "-h",
                        "127.0.0.1", "-t", "sh/t", "-q", "1", "-l", "-V", "5"],
                       input=lines, text=True, check=True, timeout=20)
        a, b = g1.messages(), g2.messages()
        self.assertEqual(len(a), 5, a)
        self.assertEqual(len(b), 5, b)
        self.assertEqual(sorted(a + b), sorted("m%d" % i for i in range(10)))
        self.assertEqual(normal.messages(), ["m%d" % i for i in range(10)])

    def test_two_groups_each_get_all(self):
        r1 = self.raw()
        r1.connect5("sg1")
        r1.subscribe5("$share/one/sg/t", opts=1)
        r2 = self.raw()
        r2.connect5("sg2")
        r2.subscribe5("$share/two/sg/t", opts=1)
        for i in range(3):
            pub(self.b.port, ["-t", "sg/t", "-m", "%d" % i, "-q", "1", "-V", "5"])
        for r in (r1, r2):
            self.assertEqual([r.next_publish().payload for _ in range(3)],
                             [b"0", b"1", b"2"])
            r.expect_nothing_more()

    def test_shared_no_retained(self):
        """MQTT 5.0 4.8.2: retained messages are not sent when a shared
        subscription is made."""
        pub_done(self.b, ["-t", "shr/t", "-m", "kept", "-r", "-V", "5"])
        r = self.raw()
        r.connect5("shr")
        self.assertEqual(r.subscribe5("$share/g/shr/t", opts=1), [1])
        r.expect_nothing_more()

    def test_no_local_on_shared_is_protocol_error(self):
        """[MQTT-3.8.3-4]: No Local on a shared subscription is a
        Protocol Error."""
        r = self.raw()
        r.connect5("shnl")
        r.send(subscribe_pkt("$share/g/x", qos=OPT_NO_LOCAL, version=5))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_PROTOCOL_ERROR)


# ---- interoperation ------------------------------------------------------------------------

class Interop(Base):
    def test_v5_to_v311_and_back(self):
        s311 = self.sub(["-t", "io/t", "-v", "-V", "mqttv311"], count=2)
        s5 = self.sub(["-t", "io/t", "-v", "-V", "mqttv5",
                       "-F", "%t %p %P"], count=2)
        s311.ready()
        s5.ready()
        pub(self.b.port, ["-t", "io/t", "-m", "from5", "-q", "1", "-V", "mqttv5",
                          "-D", "publish", "user-property", "k", "v"])
        pub(self.b.port, ["-t", "io/t", "-m", "from311", "-q", "1",
                          "-V", "mqttv311"])
        self.assertEqual(s311.messages(), ["io/t from5", "io/t from311"])
        self.assertEqual([l.rstrip() for l in s5.messages()],
                         ["io/t from5 k:v", "io/t from311"])

    def test_v311_raw_gets_no_property_bytes(self):
        """A v5 message with properties reaches a v3.1.1 subscriber as a
        plain v3.1.1 PUBLISH: the payload is exact, no property block."""
        r = self.raw311()
        r.connect(client_id="old311", version=4)
        r.send(subscribe_pkt("io2/t", qos=1))
        self.assertEqual(r.recv_packet()[0], 0x90)
        p = self.raw()
        p.connect5("new5")
        p.publish5("io2/t", "payload", qos=1,
                   props=p_user("a", "b") + p_u32(P_MESSAGE_EXPIRY, 60)
                   + p_str(P_CONTENT_TYPE, "text/plain"))
        first, body = r.recv_packet()
        m = Publish(first, body, version=4)
        self.assertEqual((m.topic, m.payload, m.qos), ("io2/t", b"payload", 1))

    def test_v311_retained_to_v5(self):
        pub_done(self.b, ["-t", "io3/t", "-m", "old", "-r", "-V", "mqttv311"])
        r = self.raw()
        r.connect5("io3")
        r.subscribe5("io3/t", opts=1)
        m = r.next_publish()
        self.assertEqual((m.payload, m.retain, m.props), (b"old", True, []))


# ---- flow control from the client's CONNECT ----------------------------------------------

class ClientLimits(Base):
    def test_receive_maximum_one(self):
        """MQTT 5.0 3.3.4 / 4.9 flow control: no more than the client's
        Receive Maximum unacknowledged QoS 1 PUBLISHes to it."""
        r = self.raw()
        r.connect5("rm1", props=p_u16(P_RECEIVE_MAXIMUM, 1))
        r.subscribe5("rm/t", opts=1)
        for i in range(3):
            pub(self.b.port, ["-t", "rm/t", "-m", "%d" % i, "-q", "1", "-V", "5"])
        m = r.next_publish(ack=False)
        self.assertEqual(m.payload, b"0")
        r.expect_nothing_more()  # the second is held back until the PUBACK
        r.send(packet(0x40, struct.pack("!H", m.pid)))
        self.assertEqual(r.next_publish().payload, b"1")
        self.assertEqual(r.next_publish().payload, b"2")

    def test_maximum_packet_size_drops_large(self):
        """[MQTT-3.1.2-25]: a message larger than the client's Maximum
        Packet Size is not sent to it."""
        r = self.raw()
        r.connect5("mps", props=p_u32(P_MAXIMUM_PACKET_SIZE, 100))
        r.subscribe5("mps/t", opts=1)
        pub(self.b.port, ["-t", "mps/t", "-m", "x" * 500, "-q", "1", "-V", "5"])
        pub(self.b.port, ["-t", "mps/t", "-m", "small", "-q", "1", "-V", "5"])
        self.assertEqual(r.next_publish().payload, b"small")
        r.expect_nothing_more()


# ---- QoS 2 outgoing flow ----------------------------------------------------------------------

class Qos2Outgoing(Base):
    def test_pubrec_success_then_pubrel(self):
        r = self.raw()
        r.connect5("q2ok")
        r.subscribe5("q2ok/t", opts=2)
        pub(self.b.port, ["-t", "q2ok/t", "-m", "x", "-q", "2", "-V", "5"])
        m = r.next_publish()
        self.assertEqual(m.qos, 2)
        r.send(packet(0x50, struct.pack("!H", m.pid)))
        self.assertEqual(r.recv_packet(), (0x62, struct.pack("!H", m.pid)))
        r.send(packet(0x70, struct.pack("!H", m.pid)))
        r.expect_nothing_more()

    # A PUBREC with reason >= 0x80 ends the QoS 2 exchange: no PUBREL, and
    # the packet id and send quota are free again [MQTT-4.3.3-4], 4.9.
    def test_pubrec_error_ends_flow(self):
        r = self.raw()
        r.connect5("q2err", props=p_u16(P_RECEIVE_MAXIMUM, 1))
        r.subscribe5("q2err/t", opts=2)
        pub(self.b.port, ["-t", "q2err/t", "-m", "a", "-q", "2", "-V", "5"])
        pub(self.b.port, ["-t", "q2err/t", "-m", "b", "-q", "2", "-V", "5"])
        m = r.next_publish()
        self.assertEqual(m.payload, b"a")
        r.send(packet(0x50, struct.pack("!HB", m.pid, 0x80) + b"\x00"))
        # no PUBREL; the freed window slot lets "b" through
        p = r.recv_packet()
        self.assertNotEqual(p[0], 0x62, "PUBREL sent after PUBREC 0x80")
        self.assertEqual(Publish(*p).payload, b"b")


# ---- wills (MQTT 5 parts) ------------------------------------------------------------------

def connect_will5(client_id, will_topic, will_msg, will_props=b"", props=b"",
                  clean=True, will_qos=0):
    flags = (0x02 if clean else 0) | 0x04 | (will_qos << 3)
    vh = mstr("MQTT") + bytes([5, flags]) + struct.pack("!H", 60)
    vh += varint(len(props)) + props
    pl = mstr(client_id) + varint(len(will_props)) + will_props
    pl += mstr(will_topic) + mstr(will_msg)
    return packet(0x10, vh + pl)


class Wills5(Base):
    def test_disconnect_with_will_message(self):
        """DISCONNECT reason 0x04 (Disconnect with Will Message) publishes
        the will (MQTT 5.0 3.14.2.1), with its will properties forwarded."""
        s = self.raw()
        s.connect5("w5sub")
        s.subscribe5("w5/#", opts=1)
        r = self.raw()
        r.send(connect_will5("w5", "w5/gone", "bye",
                             will_props=p_user("why", "asked")
                             + p_str(P_CONTENT_TYPE, "text/plain")))
        self.assertEqual(r.recv_packet()[0], 0x20)
        r.send(packet(0xE0, b"\x04"))
        self.assertTrue(r.closed())
        m = s.next_publish()
        self.assertEqual((m.topic, m.payload), ("w5/gone", b"bye"))
        self.assertEqual(props_all(m.props, P_USER_PROPERTY), [("why", "asked")])
        self.assertEqual(prop(m.props, P_CONTENT_TYPE), "text/plain")

    def test_normal_disconnect_no_will(self):
        s = self.raw()
        s.connect5("w6sub")
        s.subscribe5("w6/#", opts=1)
        r = self.raw()
        r.send(connect_will5("w6", "w6/gone", "bye"))
        self.assertEqual(r.recv_packet()[0], 0x20)
        r.disconnect5()
        pub(self.b.port, ["-t", "w6/sentinel", "-m", "s", "-q", "1", "-V", "5"])
        self.assertEqual(s.next_publish().topic, "w6/sentinel")

    # BROKER BUG: Will Delay Interval (property 0x18) is parsed and stored
    # (client.c handle_connect: s->will_delay) but never used. Sent: CONNECT
    # v5 client "wd", Session Expiry 60, will "wd/x" with Will Delay 30;
    # the TCP connection is then reset and "wd" reconnects at once with
    # clean start 0. MQTT 5.0 3.1.3.2.2 / [MQTT-3.1.3-9]: the will must not
    # be published before the delay, and not at all if the session is
    # resumed before it ends. mqttd publishes it immediately in
    # client_on_close() (client.c), so the subscriber receives "wd/x late"
    # before the sentinel. Fix: on abnormal close with will_delay > 0 keep
    # the will in the session, publish it from broker_tick() when
    # min(will_delay, session expiry) has passed, drop it on reconnect.
    def test_will_delay_reconnect_suppresses_will(self):
        s = self.raw()
        s.connect5("wdsub")
        s.subscribe5("wd/#", opts=1)
        r = self.raw()
        r.send(connect_will5("wd", "wd/x", "late",
                             will_props=p_u32(0x18, 30),
                             props=p_u32(P_SESSION_EXPIRY, 60)))
        self.assertEqual(r.recv_packet()[0], 0x20)
        mk = self.b.mark()
        r.abort()
        self.b.wait_log(r"Client wd closed its connection", start=mk)
        r2 = self.raw()
        sp, rc, _ = r2.connect5("wd", clean=False,
                                props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertEqual((sp, rc), (True, RC_SUCCESS))
        pub(self.b.port, ["-t", "wd/sentinel", "-m", "s", "-q", "1", "-V", "5"])
        self.assertEqual(s.next_publish().topic, "wd/sentinel")


# ---- protocol errors specific to MQTT 5 -------------------------------------------------------

class V5Errors(Base):
    def test_publish_with_subscription_identifier(self):
        """[MQTT-3.3.4-6]: a PUBLISH from a client must not contain a
        Subscription Identifier -> Protocol Error."""
        r = self.raw()
        r.connect5("pubsid")
        r.send(publish_pkt("a", "x", version=5,
                           props=p_var(P_SUBSCRIPTION_ID, 3)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_PROTOCOL_ERROR)

    def test_subscription_identifier_zero(self):
        """MQTT 5.0 3.8.2.1.2: Subscription Identifier 0 is a Protocol
        Error."""
        r = self.raw()
        r.connect5("sid0")
        r.send(subscribe_pkt("a", version=5, props=p_var(P_SUBSCRIPTION_ID, 0)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_PROTOCOL_ERROR)

    def test_receive_maximum_zero(self):
        """Receive Maximum 0 in CONNECT is a Protocol Error: no successful
        CONNACK, the connection is closed."""
        r = self.raw()
        r.send(connect_pkt("rm0", version=5, props=p_u16(P_RECEIVE_MAXIMUM, 0)))
        p = r.recv_packet()
        if p is not None:
            self.assertEqual(p[0], 0x20)
            self.assertGreaterEqual(p[1][1], 0x80)
            self.assertTrue(r.closed())

    def test_suback_unsuback_reason_codes(self):
        r = self.raw()
        r.connect5("codes")
        # 0x8F for a well-formed filter over the level limit; a malformed
        # one closes the connection (test_conformance.MalformedFilters)
        self.assertEqual(r.subscribe5("a" + "/a" * 1024, opts=1), [0x8F])
        self.assertEqual(r.subscribe5("$share/g/" + "a/" * 1024, opts=1,
                                      pid=2), [0x8F])
        self.assertEqual(r.subscribe5("ok/+", opts=2, pid=3), [2])
        r.send(packet(0xA2, struct.pack("!H", 5) + b"\x00" + mstr("ok/+")
                      + mstr("never")))
        p = r.recv_packet()
        self.assertEqual(p, (0xB0, struct.pack("!H", 5) + b"\x00\x00\x11"))

    def test_alias_not_kept_across_connections(self):
        """Topic Alias mappings are not carried from one Network Connection
        to the next [MQTT-3.3.2-7]: an alias-only PUBLISH after reconnect
        uses an unknown alias -> Protocol Error."""
        r = self.raw()
        r.connect5("tak", clean=False, props=p_u32(P_SESSION_EXPIRY, 60))
        r.publish5("tak/t", "x", qos=1, props=p_u16(P_TOPIC_ALIAS, 2))
        mk = self.b.mark()
        r.disconnect5()
        self.disconnected("tak", mk)
        r = self.raw()
        sp, _, _ = r.connect5("tak", clean=False,
                              props=p_u32(P_SESSION_EXPIRY, 60))
        self.assertTrue(sp)
        r.send(publish_pkt("", "y", version=5, props=p_u16(P_TOPIC_ALIAS, 2)))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, RC_PROTOCOL_ERROR)

    def test_keepalive_timeout_disconnect_8d(self):
        """v5 keepalive expiry: DISCONNECT 0x8D then close."""
        r = self.raw()
        r.connect5("ka5", keepalive=1)
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, 0x8D)


class ServerLimits(Base):
    CONF = "max_keepalive 30\nmessage_size_limit 100\n"

    def test_server_keep_alive(self):
        """[MQTT-3.2.2-21]: keepalive above max_keepalive -> CONNACK
        Server Keep Alive, which the client must use."""
        r = self.raw()
        _, rc, props = r.connect5("ska", keepalive=60)
        self.assertEqual(rc, RC_SUCCESS)
        self.assertEqual(prop(props, P_SERVER_KEEP_ALIVE), 30)
        r2 = self.raw()
        _, _, props = r2.connect5("ska2", keepalive=10)
        self.assertIsNone(prop(props, P_SERVER_KEEP_ALIVE))

    def test_message_size_limit_disconnect_95(self):
        r = self.raw()
        r.connect5("big5")
        r.send(publish_pkt("big/t", "x" * 200, version=5))
        rc, _ = r.expect_disconnect()
        self.assertEqual(rc, 0x95)


class SharedMembers(Base):
    def test_remaining_member_gets_all(self):
        r1 = self.raw()
        r1.connect5("sm1")
        r1.subscribe5("$share/g/sm/t", opts=1)
        r2 = self.raw()
        r2.connect5("sm2")
        r2.subscribe5("$share/g/sm/t", opts=1)
        mk = self.b.mark()
        r2.disconnect5()
        self.disconnected("sm2", mk)
        for i in range(4):
            pub(self.b.port, ["-t", "sm/t", "-m", "%d" % i, "-q", "1", "-V", "5"])
        self.assertEqual([r1.next_publish().payload for _ in range(4)],
                         [b"0", b"1", b"2", b"3"])


if __name__ == "__main__":
    unittest.main()
