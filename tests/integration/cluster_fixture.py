"""cluster_fixture.py - what the cluster tests share (docs/cluster.md):
a real nats-server with JetStream on a free loopback port, mqttd nodes
configured for it, a warm-up that waits until two nodes exchange
messages, and ClusterCase, a TestCase that starts one NATS and three
nodes and checks every node's exit and log in tearDown.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import Broker, Sub, free_port, pub, pub_done

NATS = shutil.which("nats-server") or "/usr/bin/nats-server"


class Nats:
    """One nats-server child with JetStream on a free port. With extra
    (nats-server configuration text: tls, authorization ...) it runs
    from a configuration file holding it."""

    def __init__(self, port=None, extra=None):
        self.port = port or free_port()
        self.mport = free_port()  # monitoring (HTTP), for stream_messages
        self.dir = tempfile.mkdtemp(prefix="mqttd-nats-")
        self.extra = extra
        self.proc = None

    def start(self):
        if self.extra is None:
            cmd = [NATS, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                   "-sd", self.dir]
        else:
            conf = os.path.join(self.dir, "nats.conf")
            with open(conf, "w") as f:
                f.write("listen: 127.0.0.1:%d\njetstream { store_dir: \"%s\" }\n%s"
                        % (self.port, self.dir, self.extra))
            cmd = [NATS, "-c", conf]
        cmd += ["-m", str(self.mport)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        # ready once it logs that it listens for clients
        for line in self.proc.stderr:
            if "Server is ready" in line:
                break
        else:
            raise AssertionError("nats-server did not start")
        # keep reading its log so that a full pipe never stalls it
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def stream_messages(self, name):
        """How many messages JetStream stream name holds now (0 when it
        does not exist), from the server's monitoring endpoint."""
        with urllib.request.urlopen(
                "http://127.0.0.1:%d/jsz?accounts=true&streams=true"
                % self.mport, timeout=5) as r:
            jsz = json.load(r)
        for acc in jsz.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == name:
                    return st["state"]["messages"]
        return 0

    def conn_in_msgs(self, name):
        """Messages NATS received on the client connection named name
        (mqttd's main connection is "mqttd-NODE"), from /connz."""
        with urllib.request.urlopen(
                "http://127.0.0.1:%d/connz?limit=1024" % self.mport,
                timeout=5) as r:
            connz = json.load(r)
        for c in connz.get("connections") or []:
            if c.get("name") == name:
                return c["in_msgs"]
        raise AssertionError("no NATS connection named %s" % name)

    def wait_stream_messages(self, name, n, timeout=30.0):
        """Until stream name holds at least n messages."""
        deadline = time.monotonic() + timeout
        while self.stream_messages(name) < n:
            if time.monotonic() > deadline:
                raise AssertionError("stream %s holds %d message(s), not %d"
                                     % (name, self.stream_messages(name), n))
            time.sleep(0.05)


def node(nats_url, name, extra="sys_interval 1\n"):
    # threads 1 stated: cluster mode needs it, and the MQTTD_THREADS runs
    # of the suite leave a configuration that sets threads alone
    return Broker("threads 1\ncluster_nats %s\ncluster_node_name %s\n%s"
                  % (nats_url, name, extra))


def warm_up(sub, from_port, topic, timeout=15.0):
    """Publish on from_port until sub (on another node) sees topic: the
    NATS subscriptions of both nodes are in place. Returns the number of
    warm-up messages sent."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        pub(from_port, ["-t", topic, "-m", "w%d" % n])
        try:
            sub.wait_for(r"^%s w" % topic, timeout=0.3)
            return n
        except AssertionError:
            continue
    raise AssertionError("no cross-node delivery on %s within %.0f s"
                         % (topic, timeout))


class ClusterCase(unittest.TestCase):
    """One nats-server and nodes n1, n2, n3 (self.nodes), each connected
    to NATS when a test starts. Subclasses set NODE_EXTRA (more
    configuration for every node), READY (log patterns every node prints
    before it is ready for the test) and FORBIDDEN (text no node's log
    may hold). tearDown stops every node, which must still be alive and
    exit 0 (except those a test killed on purpose: self.gone_nodes), and
    have no sanitizer report."""

    NODE_EXTRA = "sys_interval 1\n"
    READY = ()
    FORBIDDEN = ()
    SUB_TIMEOUT = 30

    def setUp(self):
        self.nats = Nats().start()
        self.nodes = []
        self.subs = []
        self.clients = []  # closed (close() or disconnect()) in tearDown
        self.gone_nodes = set()  # killed on purpose: exit not checked
        for i in (1, 2, 3):
            self.start_node("n%d" % i)

    def start_node(self, name):
        b = node(self.nats.url(), name, self.NODE_EXTRA).start()
        self.nodes.append(b)
        b.wait_log(r"Cluster: node %s connected to NATS" % name)
        for pattern in self.READY:
            b.wait_log(pattern)
        return b

    def tearDown(self):
        for s in self.subs:
            s.kill()
        for c in self.clients:
            (getattr(c, "close", None) or c.disconnect)()
        for b in self.nodes:
            alive = b.alive()
            log = b.log_text()
            rc = b.stop()
            if b not in self.gone_nodes:
                self.assertTrue(alive, "mqttd died:\n" + log)
                self.assertEqual(rc, 0, "exit status %r; log:\n%s"
                                 % (rc, log))
            self.assertNotIn("ERROR: AddressSanitizer", log)
            self.assertNotIn("runtime error:", log)
            self.assertNotIn("LeakSanitizer", log)
            for text in self.FORBIDDEN:
                self.assertNotIn(text, log)
        self.nats.cleanup()

    def lines_after_markers(self, s, prefix, origins):
        """Everything subscriber s (subscribed to end/+ too) got on
        lines starting with prefix, once an end/N marker published on each
        node of origins arrived after it: NATS keeps each publisher's
        order, so every earlier message (and any duplicate) from those
        nodes is in. s is stopped."""
        for b in origins:
            pub_done(b, ["-t", "end/%d" % b.port, "-m", "x", "-q", "1"])
        for b in origins:
            s.wait_for(r"^end/%d x" % b.port)
        s.kill()
        with s.cond:
            return [l for l in s.out if l.startswith(prefix)]

    def sub(self, b, args, timeout=None):
        s = Sub(b.port, args, timeout=timeout or self.SUB_TIMEOUT)
        self.subs.append(s)
        s.ready()
        return s
