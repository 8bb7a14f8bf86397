"""tls_identity_source through the real daemon: client certificates with
URI (SPIFFE), DNS and email subjectAltNames made here with openssl and
signed by the mkcerts.sh CA; mosquitto_pub/mosquitto_sub with those
certificates; ACL 'user spiffe://...' sections and %u patterns; the
refusal of a certificate without a SAN of the configured kind (no fall
back to the CN)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import Broker, Sub, TempPki, pub

PKI = TempPki("mqttd-san-")

# name -> (subject, subjectAltName or None)
CLIENTS = {
    "sensor7": ("/CN=sensor7-cn",
                "URI:spiffe://example.org/sensor/7, DNS:sensor7.example.org, "
                "email:sensor7@example.org"),
    "sensor8": ("/CN=sensor8-cn", "URI:spiffe://example.org/sensor/8"),
    "dnsonly": ("/CN=dnsonly-cn", "DNS:dnsonly.example.org"),
    "nosan": ("/CN=nosan-cn", None),
}


c = PKI.path


def make_client(name, subj, san):
    """Key, CSR and a CA-signed certificate with clientAuth (and the SAN)."""
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-out", c(name + ".key"))
    run("openssl", "req", "-new", "-key", c(name + ".key"), "-subj", subj,
        "-out", c(name + ".csr"))
    ext = "extendedKeyUsage = clientAuth\n"
    if san:
        ext += "subjectAltName = %s\n" % san
    with open(c(name + ".ext"), "w") as f:
        f.write(ext)
    run("openssl", "x509", "-req", "-in", c(name + ".csr"), "-CA", c("ca.crt"),
        "-CAkey", c("ca.key"), "-CAcreateserial", "-days", "2",
        "-extfile", c(name + ".ext"), "-out", c(name + ".crt"))


def setUpModule():
    PKI.make()
    for name, (subj, san) in CLIENTS.items():
        make_client(name, subj, san)


tearDownModule = PKI.remove


ACL = """# anonymous clients (the plain listener): read everything
topic read #

# each device its own subtree, by its SAN identity
pattern readwrite devices/%u/#

user spiffe://example.org/sensor/7
topic write fleet/sensor7
"""


def conf(source, acl=True):
    return ("per_listener_settings false\nallow_anonymous true\n"
            + ("acl_file {dir}/acl\n" if acl else "")
            + "listener {port} 127.0.0.1\n"
            "listener {tlsport} 127.0.0.1\n"
            "certfile %s\nkeyfile %s\ncafile %s\n"
            "require_certificate true\nuse_identity_as_username true\n"
            "tls_identity_source %s\n"
            % (c("server.crt"), c("server.key"), c("ca.crt"), source))


def tls_args(name):
    return ["--cafile", c("ca.crt"), "--cert", c(name + ".crt"),
            "--key", c(name + ".key")]


class SanTest(unittest.TestCase):
    SOURCE = "san_uri"
    ACL = True

    def setUp(self):
        self.b = Broker(conf(self.SOURCE, self.ACL))
        with open(os.path.join(self.b.dir, "acl"), "w") as f:
            f.write(ACL)
        self.b.start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)

    def tls_pub(self, name, topic, msg, check=True, cid=None):
        args = ["-p", str(self.b.tlsport), "-q", "1", "-t", topic, "-m", msg]
        if cid:
            args += ["-i", cid]
        return pub(self.b.tlsport, args + tls_args(name), check=check,
                   host="localhost")


class SpiffeUri(SanTest):
    def test_user_section_allows_and_denies(self):
        s = Sub(self.b.port, ["-t", "fleet/#", "-v"], count=1)
        s.ready()
        # sensor8 may not write fleet/sensor7: dropped, logged with its
        # SPIFFE ID as the username
        m = self.b.mark()
        self.tls_pub("sensor8", "fleet/sensor7", "forged", cid="s8")
        self.b.wait_log(r"acl denied .*client_id=s8 "
                        r"username=spiffe://example\.org/sensor/8 "
                        r"topic=fleet/sensor7 action=publish", start=m)
        # sensor7's own section allows it; it is the first message the
        # subscriber sees, so the forged one was never delivered
        self.tls_pub("sensor7", "fleet/sensor7", "genuine", cid="s7")
        self.assertEqual(s.messages(), ["fleet/sensor7 genuine"])
        self.b.wait_log(r"New client connected from 127\.0\.0\.1:\d+ as s7 .*"
                        r"u'spiffe://example\.org/sensor/7'")

    def test_percent_u_pattern_spans_the_identity(self):
        own = "devices/spiffe://example.org/sensor/7/temp"
        s = Sub(self.b.tlsport, ["-t", "devices/spiffe://example.org/sensor/7/#",
                                 "-v", "-i", "sub7"] + tls_args("sensor7"),
                count=1, host="localhost")
        s.ready()
        # sensor8 cannot write into sensor7's subtree
        m = self.b.mark()
        self.tls_pub("sensor8", own, "forged", cid="s8")
        self.b.wait_log(r"acl denied .*username=spiffe://example\.org/sensor/8 "
                        r"topic=%s action=publish" % re.escape(own), start=m)
        self.tls_pub("sensor7", own, "21.5")
        self.assertEqual(s.messages(), [own + " 21.5"])

    def test_subscribe_to_another_identity_refused(self):
        m = self.b.mark()
        s = Sub(self.b.tlsport, ["-t", "devices/spiffe://example.org/sensor/7/#",
                                 "-i", "spy8"] + tls_args("sensor8"),
                count=1, host="localhost")
        self.b.wait_log(r"acl denied .*client_id=spy8 .*"
                        r"topic=devices/spiffe://example\.org/sensor/7/# "
                        r"action=subscribe", start=m)
        s.kill()

    def test_no_uri_san_refused_without_cn_fallback(self):
        for name, why in (("dnsonly", "no URI SAN"), ("nosan", "no URI SAN")):
            with self.subTest(name):
                m = self.b.mark()
                r = self.tls_pub(name, "devices/x", "x", check=False,
                                 cid="c-" + name)
                self.assertNotEqual(r.returncode, 0)
                self.b.wait_log(r'auth failed .*client_id=c-%s .*reason="?%s'
                                % (name, why), start=m)
        self.assertNotIn("u'dnsonly-cn'", self.b.log_text())
        self.assertNotIn("u'nosan-cn'", self.b.log_text())


class DnsSan(SanTest):
    SOURCE = "san_dns"
    ACL = False

    def test_dns_name_is_the_username(self):
        self.tls_pub("sensor7", "a/b", "x", cid="d7")
        self.b.wait_log(r"as d7 .*u'sensor7\.example\.org'")
        m = self.b.mark()
        r = self.tls_pub("sensor8", "a/b", "x", check=False, cid="d8")
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r'auth failed .*client_id=d8 .*reason="?no DNS SAN',
                        start=m)


class EmailSan(SanTest):
    SOURCE = "san_email"
    ACL = False

    def test_email_is_the_username(self):
        self.tls_pub("sensor7", "a/b", "x", cid="e7")
        self.b.wait_log(r"as e7 .*u'sensor7@example\.org'")
        m = self.b.mark()
        r = self.tls_pub("dnsonly", "a/b", "x", check=False, cid="e8")
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r'auth failed .*client_id=e8 .*reason="?no email SAN',
                        start=m)


class CnDefault(SanTest):
    SOURCE = "cn"
    ACL = False

    def test_cn_stays_the_default(self):
        self.tls_pub("sensor7", "a/b", "x", cid="n7")
        self.b.wait_log(r"as n7 .*u'sensor7-cn'")


class ConfigErrors(unittest.TestCase):
    def test_bad_value_is_a_file_line_error(self):
        d = tempfile.mkdtemp(prefix="mqttd-san-conf-")
        try:
            path = os.path.join(d, "mqttd.conf")
            with open(path, "w") as f:
                f.write("listener 1 127.0.0.1\ntls_identity_source san_ip\n")
            r = subprocess.run([os.environ.get("MQTTD_BIN", "build/mqttd"),
                                "-t", "-c", path], capture_output=True,
                               text=True, timeout=10)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:2: invalid tls_identity_source 'san_ip': "
                          "expected cn, san_uri, san_dns or san_email" % path,
                          r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
