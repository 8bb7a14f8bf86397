"""The session registry (client id -> session) through the real daemon:
many client ids, including ids that differ only in length or in their last
byte and ids that all share one home slot of a 2048-slot unkeyed FNV-1a table;
removal by clean start, by expiry (the once-a-second walk) and by churn
that leaves tombstones behind, takeover, and a persistence restart. Every
session is checked by what only it can hold: its Session Present flag and
the one message queued for it, whose payload is its own client id. The
number of sessions is read from $SYS/broker/stats/json (clients_total).
FilterIndex checks one session's index of its own subscription filters:
3000 of them, added, updated, removed and added again, then restored from
the persistence file."""

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


class PersistentBroker:
    """setUp/start/stop/tearDown for tests that restart one broker on one
    persistence directory (CONF is added to its configuration)."""
    CONF = ""

    def setUp(self):
        self.pdir = tempfile.mkdtemp(prefix="mqttd-registry-")
        self.brokers = []

    def start(self):
        self.b = Broker("persistence true\npersistence_location %s/\n"
                        "sys_interval 1\n%s" % (self.pdir, self.CONF)).start()
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


class SessionRegistryRestart(Registry, PersistentBroker, unittest.TestCase):
    """Every session comes back after a restart from the persistence
    file (session_restore fills the registry in file order)."""

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


# ---- one client's subscription index -------------------------------------

NFILTERS = 3000
EXPIRY = b"\x11" + struct.pack("!I", 3600)   # Session Expiry Interval


def filters():
    """NFILTERS distinct filters: plain, each a prefix of the next, with
    wildcards, shared, long ones that differ only in their last byte."""
    fs = ["p" * k for k in range(1, 60)]
    fs += ["w/%d/+" % i for i in range(100)]
    fs += ["h/%d/#" % i for i in range(100)]
    fs += ["$share/g/s/%d" % i for i in range(20)]
    fs += ["L" * 900 + c for c in "abcdefghij"]
    fs += ["ix/%d" % i for i in range(NFILTERS - len(fs))]
    assert len(set(fs)) == len(fs) == NFILTERS
    return fs


def topic_of(f):
    """A topic that f matches and no other filter of filters() does."""
    if f.startswith("$share/g/"):
        f = f[len("$share/g/"):]
    return f.replace("+", "x").replace("#", "x")


def read_varint(b, i):
    n, mult = 0, 1
    while True:
        n += (b[i] & 0x7F) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 0x80:
            return n, i


def parse_publish_v5(first, body):
    """(topic, qos, pid, [subscription identifiers]) of a v5 PUBLISH."""
    assert first & 0xF0 == 0x30, "expected a PUBLISH, got %#x" % first
    qos = (first >> 1) & 3
    tlen = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tlen].decode()
    i, pid = 2 + tlen, 0
    if qos:
        pid = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    plen, i = read_varint(body, i)
    end, ids = i + plen, []
    while i < end:
        if body[i] == 0x0B:
            sid, i = read_varint(body, i + 1)
            ids.append(sid)
        else:
            raise AssertionError("unexpected property %#x" % body[i])
    return topic, qos, pid, ids


class FilterIndex(PersistentBroker, unittest.TestCase):
    """One client holding its quota of 3000 filters: the session's index
    of its own filters (subscribe adds or updates, unsubscribe finds and
    removes, the quota counts) checked filter by filter through SUBACK and
    UNSUBACK reason codes, through what a sample of publications delivers
    (granted QoS, Subscription Identifier) and again after a restart from
    the persistence file, which holds the session's own records."""
    CONF = "max_subscriptions_per_client %d\n" % NFILTERS

    def connect(self, present):
        r = Raw(self.b.port)
        ack = r.connect(client_id="ix-sub", clean=False, version=5,
                        keepalive=600, props=EXPIRY)
        self.assertEqual(session_present(ack), present, "CONNACK %r" % ack)
        return r

    def send_all(self, r, pkts, want_type):
        """Send the packets in one write, then return the reason codes of
        their acknowledgements (type want_type), in packet order."""
        r.send(b"".join(p for _, p in pkts))
        codes = []
        for pid, _ in pkts:
            p = r.recv_packet()
            self.assertIsNotNone(p, "closed")
            self.assertEqual(p[0], want_type)
            self.assertEqual(struct.unpack("!H", p[1][:2])[0], pid)
            plen, i = read_varint(p[1], 2)
            codes.append(p[1][i + plen:])
        return codes

    def subscribe(self, r, groups):
        """groups: [(sub_id or 0, [(filter, qos), ...])], one SUBSCRIBE
        each. Returns the concatenated SUBACK reason codes."""
        pkts = []
        for k, (sid, fq) in enumerate(groups):
            pid = k % 65535 + 1
            props = b"\x0b" + varint(sid) if sid else b""
            body = struct.pack("!H", pid) + varint(len(props)) + props
            body += b"".join(mstr(f) + bytes([q]) for f, q in fq)
            pkts.append((pid, packet(0x82, body)))
        return b"".join(self.send_all(r, pkts, 0x90))

    def unsubscribe(self, r, fs, per=100):
        pkts = []
        for k in range(0, len(fs), per):
            pid = k // per + 1
            body = struct.pack("!H", pid) + b"\x00"
            body += b"".join(mstr(f) for f in fs[k:k + per])
            pkts.append((pid, packet(0xA2, body)))
        return b"".join(self.send_all(r, pkts, 0xB0))

    def check_delivery(self, r, fs, want):
        """Publish QoS 1 to the topic of a sample of fs (and to one that no
        filter matches); each must arrive once, at the QoS and with the
        Subscription Identifier that want[filter] = (qos, sid) says, and
        only for the filters that are in want."""
        sample = sorted(set(range(0, len(fs), 7)) | set(range(40)) |
                        set(range(len(fs) - 40, len(fs))))
        p = Raw(self.b.port)
        p.connect(client_id="ix-pub")
        pubs = [publish_pkt("ix/none", b"-", qos=1, pid=1)]
        pubs += [publish_pkt(topic_of(fs[i]), b"%d" % i, qos=1, pid=k + 2)
                 for k, i in enumerate(sample)]
        p.send(b"".join(pubs))
        for _ in pubs:
            self.assertEqual(p.recv_packet()[0], 0x40)
        p.send(DISCONNECT)
        self.assertTrue(p.closed())
        expect = {topic_of(fs[i]): want[fs[i]] for i in sample if fs[i] in want}
        self.assertGreater(len(expect), 200)
        # all of them went out before the publisher's last PUBACK, but
        # QoS 1 ones past the window wait for a PUBACK: a PINGRESP after
        # none came since the last one means there is no more
        got, progress = {}, False
        r.send(PINGREQ)
        while True:
            pk = r.recv_packet()
            self.assertIsNotNone(pk, "subscriber closed")
            if pk[0] == 0xD0:
                if not progress:
                    break
                progress = False
                r.send(PINGREQ)
                continue
            topic, qos, pid, ids = parse_publish_v5(*pk)
            progress = True
            if qos:
                r.send(packet(0x40, struct.pack("!H", pid)))
            self.assertNotIn(topic, got, "delivered twice")
            got[topic] = (qos, ids[0] if ids else 0)
        self.assertEqual(got, expect)

    def test_thousands_of_filters_one_client(self):
        fs = filters()
        n = len(fs)
        self.start()
        r = self.connect(present=False)
        # all of them at QoS 1, 100 per SUBSCRIBE; then the quota is full
        codes = self.subscribe(r, [(0, [(f, 1) for f in fs[k:k + 100]])
                                   for k in range(0, n, 100)])
        self.assertEqual(codes, b"\x01" * n)
        self.assertEqual(self.subscribe(r, [(0, [("ix/over", 1)])]), b"\x97")
        # every third again, alone, at QoS 0 with its own identifier:
        # an update, so it fits in the full quota
        want = {f: (1, 0) for f in fs}
        upd = [(i + 1, [(fs[i], 0)]) for i in range(0, n, 3)]
        self.assertEqual(self.subscribe(r, upd), b"\x00" * len(upd))
        for i in range(0, n, 3):
            want[fs[i]] = (0, i + 1)
        # one SUBSCRIBE naming a filter twice: the second wins
        self.assertEqual(self.subscribe(r, [(7, [(fs[1], 0), (fs[1], 1)])]),
                         b"\x00\x01")
        want[fs[1]] = (1, 7)
        # unsubscribe every even one (each removal moves the last record
        # into the hole), then again: none of them exists any more
        evens = fs[0::2]
        self.assertEqual(self.unsubscribe(r, evens), b"\x00" * len(evens))
        self.assertEqual(self.unsubscribe(r, evens), b"\x11" * len(evens))
        for f in evens:
            del want[f]
        self.check_delivery(r, fs, want)
        # back again, alone, at QoS 1 or 0 with a new identifier: the
        # quota is full once more, and a re-subscribe still replaces
        back = [(100000 + i, [(fs[i], i % 4 // 2)]) for i in range(0, n, 2)]
        self.assertEqual(self.subscribe(r, back),
                         b"".join(bytes([i % 4 // 2]) for i in range(0, n, 2)))
        for i in range(0, n, 2):
            want[fs[i]] = (i % 4 // 2, 100000 + i)
        self.assertEqual(self.subscribe(r, [(0, [("ix/over", 1)])]), b"\x97")
        self.assertEqual(self.subscribe(r, [(9, [(fs[5], 1)])]), b"\x01")
        want[fs[5]] = (1, 9)
        self.check_delivery(r, fs, want)
        r.send(DISCONNECT)
        self.assertTrue(r.closed())

        # the persistence file holds the session's records: the same
        # filters, QoS and identifiers after a restart
        self.stop()
        self.start()
        self.b.wait_log(r"Loaded the persistence file .*: \d+ retained "
                        r"messages, 1 sessions\.")
        r = self.connect(present=True)
        self.check_delivery(r, fs, want)
        self.assertEqual(self.subscribe(r, [(0, [("ix/over", 1)])]), b"\x97")
        last = fs[-50:]
        self.assertEqual(self.unsubscribe(r, last), b"\x00" * 50)
        self.assertEqual(self.unsubscribe(r, fs),
                         b"\x00" * (n - 50) + b"\x11" * 50)
        self.assertEqual(self.subscribe(r, [(0, [("ix/over", 1)])]), b"\x01")
        r.send(DISCONNECT)
        self.assertTrue(r.closed())
        self.stop()

if __name__ == "__main__":
    unittest.main()
