"""threads N: several event loops in one process. Client ids are split
between the threads by FNV-1a 64 (the same hash as src/util.c), so these
tests pick ids that land on a chosen thread and check what must cross.

The other integration suites also run once with MQTTD_THREADS=2 (ctest
integ_threads2_*); this file holds what only threads can get wrong."""
import os
import subprocess
import tempfile
import unittest

from harness import Broker, BrokerTest, MQTTD, Raw, Sub, pub


def fnv1a(s):
    h = 0xcbf29ce484222325
    for c in s.encode():
        h ^= c
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def ids_on(shard, prefix, n=1, threads=2):
    """n client ids starting with prefix that thread 'shard' owns."""
    out, i = [], 0
    while len(out) < n:
        cid = "%s%d" % (prefix, i)
        if fnv1a(cid) % threads == shard:
            out.append(cid)
        i += 1
    return out


class Threads(BrokerTest):
    CONF = "threads 2\nsys_interval 1\n"

    def test_delivery_between_threads(self):
        subs = [Sub(self.b.port, ["-i", cid, "-t", "x/#", "-v"], count=2)
                for cid in ids_on(0, "s0-", 2) + ids_on(1, "s1-", 2)]
        for s in subs:
            s.ready()
        for cid in ids_on(0, "p0-") + ids_on(1, "p1-"):
            pub(self.b.port, ["-i", cid, "-t", "x/" + cid, "-m", "hi", "-q", "1"])
        want = sorted("x/%s hi" % c for c in ids_on(0, "p0-") + ids_on(1, "p1-"))
        for s in subs:
            self.assertEqual(sorted(s.messages()), want)

    def test_qos1_stream_in_order_without_loss(self):
        n = 20000
        sub_id, = ids_on(1, "qs-")
        pub_id, = ids_on(0, "qp-")
        s = Sub(self.b.port, ["-i", sub_id, "-t", "q/s", "-q", "1"], count=n,
                timeout=60)
        s.ready()
        lines = "".join("%d\n" % i for i in range(n))
        r = subprocess.run(["mosquitto_pub", "-p", str(self.b.port), "-i", pub_id,
                            "-t", "q/s", "-q", "1", "-l"], input=lines,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.messages(timeout=60), [str(i) for i in range(n)])

    def test_retained_replicated_to_every_thread(self):
        watch, = ids_on(1, "rw-")
        w = Sub(self.b.port, ["-i", watch, "-t", "r/t", "-v"], count=1)
        w.ready()
        pub(self.b.port, ["-i", ids_on(0, "rp-")[0], "-t", "r/t", "-m", "kept",
                          "-r", "-q", "1"])
        # thread 1 stores a retained message before it routes it: once the
        # watcher has it, a new subscriber there gets it from the store
        self.assertEqual(w.messages(), ["r/t kept"])
        for cid in ids_on(0, "rn-") + ids_on(1, "rn-"):
            s = Sub(self.b.port, ["-i", cid, "-t", "r/t", "-F", "%r %t %p"],
                    count=1)
            self.assertEqual(s.messages(), ["1 r/t kept"])

    def test_shared_group_gets_each_message_once(self):
        members = ids_on(0, "g0-", 2) + ids_on(1, "g1-", 2)
        subs = [Sub(self.b.port, ["-i", cid, "-t", "$share/g/sh/t", "-t", "end/t",
                                  "-q", "1", "-v", "-V", "mqttv5"], timeout=30)
                for cid in members]
        for s in subs:
            s.ready()
        origins = [ids_on(0, "gp-")[0], ids_on(1, "gq-")[0]]
        for origin in origins:
            lines = "".join("%s-%d\n" % (origin, i) for i in range(100))
            r = subprocess.run(["mosquitto_pub", "-p", str(self.b.port), "-i",
                                origin, "-t", "sh/t", "-q", "1", "-l"],
                               input=lines, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        # an end marker from each thread: messages from one thread to
        # another keep their order, so a member that has both markers has
        # every group message meant for it
        for origin in origins:
            pub(self.b.port, ["-i", origin, "-t", "end/t", "-m", "end", "-q", "1"])
        got = []
        for s in subs:
            with s.cond:
                ok = s.cond.wait_for(
                    lambda: sum(l == "end/t end" for l in s.out) == 2, timeout=30)
                self.assertTrue(ok, s.out[-10:])
                got += [l for l in s.out if l.startswith("sh/t ")]
            s.kill()
        self.assertEqual(len(got), 200, got[:10])
        self.assertEqual(len(set(got)), 200)

    def test_session_kept_on_its_thread(self):
        sid, = ids_on(1, "ps-")
        s = Sub(self.b.port, ["-i", sid, "-c", "-q", "1", "-t", "ps/t"])
        s.ready()
        s.kill()
        self.b.wait_log(r"Client %s closed its connection" % sid)
        pub(self.b.port, ["-i", ids_on(0, "pp-")[0], "-t", "ps/t", "-m", "queued",
                          "-q", "1"])
        back = Sub(self.b.port, ["-i", sid, "-c", "-q", "1", "-t", "ps/t"], count=1)
        self.assertEqual(back.messages(), ["queued"])

    def test_takeover_by_id_from_another_connection(self):
        cid, = ids_on(0, "tk-")
        a = Raw(self.b.port)
        a.connect(client_id=cid)
        b = Raw(self.b.port)
        b.connect(client_id=cid)
        self.assertTrue(a.closed())
        self.b.wait_log(r"taken over|already connected|Client %s" % cid)
        b.close()

    def test_sys_counts_every_thread(self):
        idle = [Raw(self.b.port) for _ in range(4)]
        for r, cid in zip(idle, ids_on(0, "c0-", 2) + ids_on(1, "c1-", 2)):
            r.connect(client_id=cid)
        s = Sub(self.b.port, ["-t", "$SYS/broker/clients/connected", "-v"],
                timeout=10)
        # 4 idle clients and the $SYS subscriber, across both threads
        s.wait_for(r"^\$SYS/broker/clients/connected 5$", timeout=10)
        s.kill()
        for r in idle:
            r.close()


class CrossThreadFlowControl(BrokerTest):
    CONF = "threads 2\n"

    def test_publisher_held_for_a_subscriber_on_another_thread(self):
        """A subscriber that stops reading on thread 1 holds back a QoS 0
        publisher on thread 0 (its thread's inbox, then the publisher),
        instead of the broker reading on and queueing without bound."""
        import socket
        from harness import publish_pkt, subscribe_pkt
        sub = Raw(self.b.port)
        sub.connect(client_id=ids_on(1, "slow-")[0])
        sub.send(subscribe_pkt("fc/t", qos=0))
        self.assertEqual(sub.recv_packet()[0], 0x90)
        sub.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        p = Raw(self.b.port)
        p.connect(client_id=ids_on(0, "fast-")[0])
        frame = publish_pkt("fc/t", b"x" * 1024)
        burst = frame * 64
        sent, limit = 0, 200 * 1024 * 1024
        p.s.settimeout(0.5)
        held = False
        while sent < limit:
            try:
                p.s.sendall(burst)
            except socket.timeout:
                held = True
                break
            sent += len(burst)
        self.assertTrue(held, "publisher never held; sent %d bytes" % sent)
        self.assertLess(sent, limit)
        # the broker serves others while it holds the publisher
        r = Raw(self.b.port)
        r.connect(client_id=ids_on(1, "other-")[0])
        r.close()
        sub.close()
        p.abort()


class GlobalLimits(BrokerTest):
    CONF = "threads 2\nmax_connections 3\n"

    def test_max_connections_counts_every_thread(self):
        held = []
        for cid in ids_on(0, "m0-", 2) + ids_on(1, "m1-", 1):
            r = Raw(self.b.port)
            r.connect(client_id=cid)
            held.append(r)
        extra = Raw(self.b.port)
        self.assertTrue(extra.closed())
        self.b.wait_log(r"max_connections reached")
        for r in held:
            r.close()


class Config(unittest.TestCase):
    def test_threads_with_persistence_is_a_config_error(self):
        d = tempfile.mkdtemp()
        p = os.path.join(d, "m.conf")
        with open(p, "w") as f:
            f.write("listener 1884\npersistence true\npersistence_location %s\n"
                    "threads 2\n" % d)
        r = subprocess.run([MQTTD, "-t", "-c", p], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:4:" % p, r.stderr)
        self.assertIn("persistence", r.stderr)

    def test_threads_value_checked(self):
        d = tempfile.mkdtemp()
        p = os.path.join(d, "m.conf")
        with open(p, "w") as f:
            f.write("listener 1884\nthreads 0\n")
        r = subprocess.run([MQTTD, "-t", "-c", p], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:2:" % p, r.stderr)

    def test_threads_auto_accepted(self):
        d = tempfile.mkdtemp()
        p = os.path.join(d, "m.conf")
        with open(p, "w") as f:
            f.write("listener 1884\nthreads auto\n")
        r = subprocess.run([MQTTD, "-t", "-c", p], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
