"""test_cluster_auth.py - TLS and credentials of the NATS connection
(cluster_nats_cafile/certfile/keyfile/user/password, docs/cluster.md).

A real nats-server with TLS and client-certificate verification (certs
from a TempPki), and one with user/password authorization:
  - nodes with the right CA, certificate and key connect and deliver
    across; a wrong CA, a missing client certificate or a bad password
    make the node log a clear error and keep serving its local clients;
  - the password never appears in the log;
  - inconsistent keys are FILE:LINE errors at load.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Broker, Sub, TempPki, pub  # noqa: E402
from cluster_fixture import Nats, node, warm_up  # noqa: E402

PKI = TempPki()
setUpModule = PKI.make
tearDownModule = PKI.remove
PASSWORD = "s3cr3t-Pa55-word"


def tls_nats():
    return Nats(extra=(
        "tls {\n cert_file: \"%s\"\n key_file: \"%s\"\n ca_file: \"%s\"\n"
        " verify: true\n}\n" % (PKI.path("server.crt"), PKI.path("server.key"),
                                PKI.path("ca.crt")))).start()


def auth_nats():
    return Nats(extra="authorization {\n user: mq\n password: \"%s\"\n}\n"
                % PASSWORD).start()


class Base(unittest.TestCase):
    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if isinstance(p, Broker):
                alive = p.alive()
                log = p.log_text()
                rc = p.stop()
                self.assertNotIn(PASSWORD, log)
                self.assertNotIn("ERROR: AddressSanitizer", log)
                self.assertTrue(alive, log)
                self.assertEqual(rc, 0, log)
            else:
                p.cleanup()

    def add(self, p):
        self.procs.append(p)
        return p

    def across(self, a, b, topic):
        s = Sub(b.port, ["-v", "-t", topic, "-q", "1"])
        s.ready()
        try:
            warm_up(s, a.port, topic)
            pub(a.port, ["-t", topic, "-m", "real", "-q", "1"])
            s.wait_for(r"^%s real$" % topic)
        finally:
            s.proc.kill()
            s.proc.wait()

    def serves_locally(self, b):
        s = Sub(b.port, ["-v", "-t", "loc/x", "-C", "1"])
        s.ready()
        pub(b.port, ["-t", "loc/x", "-m", "here", "-q", "1"])
        self.assertEqual(s.messages(), ["loc/x here"])


class TlsTest(Base):
    def keys(self, ca="ca.crt", client="client1"):
        k = "cluster_nats_cafile %s\n" % PKI.path(ca)
        if client:
            k += ("cluster_nats_certfile %s\ncluster_nats_keyfile %s\n"
                  % (PKI.path(client + ".crt"), PKI.path(client + ".key")))
        return k

    def test_verified_tls_delivers_across(self):
        n = self.add(tls_nats())
        url = "tls://localhost:%d" % n.port
        a = self.add(node(url, "t1", self.keys()).start())
        b = self.add(node(url, "t2", self.keys(client="client2")).start())
        for x in (a, b):
            x.wait_log(r"Cluster: node t\d connected to NATS")
        self.across(a, b, "tls/a")

    def test_wrong_ca_is_logged_and_local_goes_on(self):
        n = self.add(tls_nats())
        a = self.add(node("tls://localhost:%d" % n.port, "w1",
                          self.keys(ca="other-ca.crt")).start())
        a.wait_log(r"Cluster: node w1 cannot connect to NATS: .*gave up "
                   r"\(a refused CA, client certificate or credentials")
        self.serves_locally(a)

    def test_no_client_cert_is_logged_and_local_goes_on(self):
        n = self.add(tls_nats())
        a = self.add(node("tls://localhost:%d" % n.port, "w2",
                          self.keys(client=None)).start())
        a.wait_log(r"Cluster: node w2 cannot connect to NATS: .*gave up")
        self.serves_locally(a)


class UserPasswordTest(Base):
    def test_password_delivers_across(self):
        n = self.add(auth_nats())
        url = "nats://127.0.0.1:%d" % n.port
        keys = "cluster_nats_user mq\ncluster_nats_password %s\n" % PASSWORD
        a = self.add(node(url, "p1", keys).start())
        b = self.add(node(url, "p2", keys).start())
        for x in (a, b):
            x.wait_log(r"Cluster: node p\d connected to NATS")
        self.across(a, b, "pw/a")

    def test_bad_password_is_logged_and_local_goes_on(self):
        n = self.add(auth_nats())
        a = self.add(node("nats://127.0.0.1:%d" % n.port, "p3",
                          "cluster_nats_user mq\n"
                          "cluster_nats_password %sX\n" % PASSWORD).start())
        a.wait_log(r"Cluster: node p3 cannot connect to NATS: .*"
                   r"([Aa]uthoriz|a refused CA, client certificate or "
                   r"credentials)")
        self.serves_locally(a)


class ConfigTest(unittest.TestCase):
    def load_error(self, keys, pattern):
        b = Broker("threads 1\ncluster_nats nats://127.0.0.1:4222\n" + keys)
        b.start(expect_ready=False)
        b.proc.wait(timeout=10)
        b.wait_log("<<EOF>>")
        log = b.log_text()
        rc = b.stop()
        self.assertNotEqual(rc, 0, log)
        self.assertRegex(log, pattern)
        self.assertNotIn(PASSWORD, log)

    def test_certfile_without_keyfile(self):
        self.load_error("cluster_nats_cafile %s\ncluster_nats_certfile %s\n"
                        % (PKI.path("ca.crt"), PKI.path("client1.crt")),
                        r"mqttd\.conf:6: .*cluster_nats_certfile needs "
                        r"cluster_nats_keyfile")

    def test_password_without_user(self):
        self.load_error("cluster_nats_password %s\n" % PASSWORD,
                        r"mqttd\.conf:5: .*cluster_nats_password needs "
                        r"cluster_nats_user")

    def test_unreadable_cafile(self):
        self.load_error("cluster_nats_cafile /nonexistent/ca.pem\n",
                        r"mqttd\.conf:5: .*cannot read cluster_nats_cafile "
                        r"'/nonexistent/ca.pem'")

    def test_credentials_and_user(self):
        self.load_error("cluster_nats_user mq\ncluster_nats_password %s\n"
                        "cluster_nats_credentials %s\n"
                        % (PASSWORD, PKI.path("ca.crt")),
                        r"mqttd\.conf:7: .*exclude each other")


if __name__ == "__main__":
    unittest.main(verbosity=2)
