"""The session registry (client id -> session) through the real daemon:
many client ids, including ids that differ only in length or in their last
byte and ids that all share one home slot of a 2048-slot unkeyed FNV-1a table;
removal by clean start, by expiry (the once-a-second walk) and by churn
that leaves tombstones behind, takeover, and a persistence restart. Every
session is checked by what only it can hold: its Session Present flag and
the one message queued for it, whose payload is its own client id. The
number of sessions is read from $SYS/broker/stats/json (clients_total)."""

import json
import os
import shutil
import struct
import tempfile
import unittest

from harness import (Broker, BrokerTest, Raw, mstr, packet, publish_pkt,
                     subscribe_pkt, varint)

PINGREQ = packet(0xC0, b"")
DISCONNECT = packet(0xE0, b"")
FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3


def fnv_colliding(n, bits):
    """n ids whose 64-bit FNV-1a hashes agree in their low 'bits' bits: one
    home slot in a 2^bits table hashed with the unkeyed FNV-1a. (The low
    bits of FNV-1a depend only on the low bits of each step.)"""
    mask = (1 << bits) - 1
    out, i, want = [], 0, None
    while len(out) < n:
        cid = "fnv-%d" % i
        i += 1
        h = FNV_OFFSET & mask
        for c in cid.encode():
            h = ((h ^ c) * FNV_PRIME) & mask
        if want is None:
            want = h
        if h == want:
            out.append(cid)
    return out


def client_ids():
    ids = ["reg-%d" % i for i in range(600)]
    ids += ["p" * k for k in range(1, 80)]          # each a prefix of the next
    ids += ["last-" + chr(c) for c in range(0x21, 0x7f)]  # differ in one byte
    ids += ["ab", "ba", "Ab", "aB", "a/b", "a+b", "a#b", "a b"]
    ids += ["\u00fc-%d" % i for i in range(20)]
    ids += ["\u65e5\u672c-%d" % i for i in range(20)]
    ids += ["L" * 1000, "L" * 999 + "M", "L" * 999]
    ids += fnv_colliding(48, 11)
    assert len(set(ids)) == len(ids)
    return ids


def connect_v5_will(cid, topic):
    """A v5 CONNECT without clean start: Session Expiry 1 s, a will on
    topic with Will Delay 3600 s (so it is published when the session
    ends)."""
    props = b"\x11" + struct.pack("!I", 1)
    wprops = b"\x18" + struct.pack("!I", 3600)
    vh = mstr("MQTT") + bytes([5, 0x04]) + struct.pack("!H", 60)
    vh += varint(len(props)) + props
    payload = mstr(cid) + varint(len(wprops)) + wprops + mstr(topic) + mstr("w")
    return packet(0x10, vh + payload)


def session_present(ack):
    return ack[0] & 1 == 1


def parse_publish(first, body):
    """(topic, pid, payload) of a QoS 1 PUBLISH."""
    assert first & 0xF6 == 0x32, "expected a QoS 1 PUBLISH, got %#x" % first
    tlen = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tlen].decode()
    pid = struct.unpack("!H", body[2 + tlen:4 + tlen])[0]
    return topic, pid, body[4 + tlen:]


class Registry:
    """Client operations shared by the tests (self.b is the broker)."""

    def create(self, i, cid):
        """A new persistent session for cid subscribed to reg/<i>."""
        r = Raw(self.b.port)
        ack = r.connect(client_id=cid, clean=False)
        self.assertEqual(ack, b"\x00\x00", "%r: a session already existed" % cid)
        r.send(subscribe_pkt("reg/%d" % i, qos=1, pid=1) + DISCONNECT)
        self.assertEqual(r.recv_packet(), (0x90, b"\x00\x01\x01"))
        self.assertTrue(r.closed())

    def publish_all(self, ids):
        """One QoS 1 message to each reg/<i>, payload the i-th id."""
        r = Raw(self.b.port)
        r.connect(client_id="registry-publisher")
        for i, cid in enumerate(ids):
            r.send(publish_pkt("reg/%d" % i, cid.encode(), qos=1,
                               pid=i % 65535 + 1))
        for i in range(len(ids)):
            self.assertEqual(r.recv_packet()[0], 0x40)
        r.send(DISCONNECT)
        self.assertTrue(r.closed())

    def resume(self, i, cid, present, queued=True, stay=False):
        """Reconnect cid without clean start: check Session Present and
        that exactly its own queued message (or none) arrives."""
        r = Raw(self.b.port)
        ack = r.connect(client_id=cid, clean=False)
        self.assertEqual(session_present(ack), present, "%r: CONNACK %r" % (cid, ack))
        r.send(PINGREQ)
        got, acks = [], b""
        while True:
            p = r.recv_packet()
            self.assertIsNotNone(p, "%r: closed" % cid)
            if p[0] == 0xD0:
                break
            topic, pid, payload = parse_publish(*p)
            acks += packet(0x40, struct.pack("!H", pid))
            got.append((topic, payload))
        want = [("reg/%d" % i, cid.encode())] if present and queued else []
        self.assertEqual(got, want, "%r received the wrong messages" % cid)
        # one write: a PUBACK and a DISCONNECT in two small writes would
        # wait for the delayed ACK of the first (Nagle)
        if stay:
            if acks:
                r.send(acks)
            return r
        r.send(acks + DISCONNECT)
        self.assertTrue(r.closed())
        return None

    def churn(self, n, tag):
        """n short-lived sessions with fresh ids: each is added to the
        registry and removed again at its disconnect (expiry 0)."""
        for k in range(n):
            r = Raw(self.b.port)
            ack = r.connect(client_id="churn-%s-%d" % (tag, k), clean=True)
            self.assertEqual(ack, b"\x00\x00")
            r.send(DISCONNECT)
            self.assertTrue(r.closed())

    def wait_total(self, want):
        """Wait until $SYS/broker/stats/json counts want sessions besides
        the watchers. Each call connects one more watcher (a clean-start
        session, kept open) and waits for a document that counts it, so a
        document made before the call, when fewer were connected, is never
        taken for an answer."""
        watchers = self.__dict__.setdefault("watchers", [])
        w = Raw(self.b.port)
        w.connect(client_id="registry-watcher-%d" % len(watchers))
        watchers.append(w)
        w.send(subscribe_pkt("$SYS/broker/stats/json", qos=0))
        self.assertEqual(w.recv_packet()[0], 0x90)
        seen = []
        while True:
            p = w.recv_packet(timeout=15)
            self.assertIsNotNone(p, "watcher closed")
            self.assertEqual(p[0] & 0xF0, 0x30)
            tlen = struct.unpack("!H", p[1][:2])[0]
            doc = json.loads(p[1][2 + tlen:])
            if doc["clients_connected"] != len(watchers):
                continue
            total = doc["clients_total"] - len(watchers)
            if total == want:
                break
            seen.append(total)
            # with threads > 1 another thread's count may be a second old
            self.assertLess(len(seen), 4, "sessions %r, want %d" % (seen, want))
        w.send(packet(0xA2, struct.pack("!H", 2) +
                      mstr("$SYS/broker/stats/json")))
        while True:  # documents already on their way may come first
            p = w.recv_packet()
            self.assertIsNotNone(p, "watcher closed")
            if p[0] == 0xB0:
                break


class SessionRegistry(Registry, BrokerTest):
    CONF = "sys_interval 1\n"

    def test_many_ids_removal_churn_takeover_expiry(self):
        ids = client_ids()
        n = len(ids)
        for i, cid in enumerate(ids):
            self.create(i, cid)
        self.publish_all(ids)
        self.wait_total(n)

        # a clean start ends every other session; churn leaves tombstones
        for i in range(0, n, 2):
            r = Raw(self.b.port)
            self.assertEqual(r.connect(client_id=ids[i], clean=True), b"\x00\x00")
            r.send(DISCONNECT)
            self.assertTrue(r.closed())
        self.churn(1500, "a")
        self.wait_total(n // 2)

        # the rest still hold their own message; the ended ones are new
        for i, cid in enumerate(ids):
            self.resume(i, cid, present=i % 2 == 1)
        self.wait_total(n)

        # takeover: the second connection gets the same session
        for i, cid in list(enumerate(ids))[::7]:
            r1 = self.resume(i, cid, present=True, queued=False, stay=True)
            r2 = Raw(self.b.port)
            self.assertTrue(session_present(r2.connect(client_id=cid, clean=False)))
            self.assertTrue(r1.closed(), "%r: not taken over" % cid)
            r2.send(DISCONNECT)
            self.assertTrue(r2.closed())
        self.b.wait_log(r"Client %s already connected" % ids[0])
        self.churn(500, "b")
        self.wait_total(n)

        # sessions that end 1 s after their connection drops leave the
        # registry in the once-a-second walk over it, which publishes
        # their wills (Will Delay 3600 s: due when the session ends)
        expiring = ["exp-%d" % k for k in range(400)]
        sub = Raw(self.b.port)
        sub.connect(client_id="registry-wills")
        sub.send(subscribe_pkt("expw/#", qos=0))
        self.assertEqual(sub.recv_packet()[0], 0x90)
        for k, cid in enumerate(expiring):
            r = Raw(self.b.port)
            r.send(connect_v5_will(cid, "expw/%d" % k))
            ack = r.recv_packet()
            self.assertEqual(ack[0], 0x20)
            self.assertFalse(session_present(ack[1]))
            r.abort()
        wills = set()
        while len(wills) < len(expiring):
            p = sub.recv_packet(timeout=15)
            self.assertIsNotNone(p, "will subscriber closed")
            tlen = struct.unpack("!H", p[1][:2])[0]
            wills.add(p[1][2:2 + tlen].decode())
        self.assertEqual(wills, {"expw/%d" % k for k in range(len(expiring))})
        sub.send(DISCONNECT)
        self.assertTrue(sub.closed())
        self.wait_total(n)
        for cid in expiring[::25]:
            r = Raw(self.b.port)
            ack = r.connect(client_id=cid, clean=False, version=5)
            self.assertFalse(session_present(ack), "%r did not end" % cid)
            r.send(DISCONNECT)
            self.assertTrue(r.closed())
        self.resume(1, ids[1], present=True, queued=False)


class SessionRegistryRestart(Registry, unittest.TestCase):
    """Every session comes back after a restart from the persistence
    file (session_restore fills the registry in file order)."""

    def setUp(self):
        self.pdir = tempfile.mkdtemp(prefix="mqttd-registry-")
        self.brokers = []

    def start(self):
        self.b = Broker("persistence true\npersistence_location %s/\n"
                        "sys_interval 1\n" % self.pdir).start()
        self.brokers.append(self.b)

    def stop(self):
        alive = self.b.alive()
        text = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, "mqttd died:\n" + text)
        self.assertEqual(rc, 0, "exit status %r; log:\n%s" % (rc, text))
        self.assertNotIn("ERROR: AddressSanitizer", text)
        self.assertNotIn("runtime error:", text)

    def tearDown(self):
        for b in self.brokers:
            if b.proc and b.proc.poll() is None:
                b.stop()
        shutil.rmtree(self.pdir, ignore_errors=True)

    def test_restart_restores_every_session(self):
        ids = client_ids()
        self.start()
        for i, cid in enumerate(ids):
            self.create(i, cid)
        self.publish_all(ids)
        self.stop()
        self.assertTrue(os.path.exists(os.path.join(self.pdir, "mqttd.db")))
        self.start()
        self.b.wait_log(r"Loaded the persistence file .*: \d+ retained messages, "
                        r"%d sessions\." % len(ids))
        self.wait_total(len(ids))
        for i, cid in enumerate(ids):
            self.resume(i, cid, present=True)
        self.stop()


if __name__ == "__main__":
    unittest.main()
