"""Client-certificate OCSP through the real daemon: a PKI from
certs/mkcerts.sh --ocsp whose certificates name a loopback responder
(tests/integration/ocsp_responder.py, running `openssl ocsp` per request),
hard and soft modes, the loop staying responsive while a query waits,
bad answers, a shared query, and live revocation (DISCONNECT 0x98)."""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import SRC, TIMEOUT, Broker, Raw, Sub, connect_pkt, free_port, packet
from ocsp_responder import Responder

PKI = None
TOP = None
PORT = None  # the responder port the certificates' AIA names


def setUpModule():
    global PKI, TOP, PORT
    TOP = tempfile.mkdtemp(prefix="mqttd-ocsp-")
    PORT = free_port()
    subprocess.run(["bash", os.path.join(SRC, "certs", "mkcerts.sh"),
                    "--ocsp=http://127.0.0.1:%d/" % PORT, TOP],
                   check=True, capture_output=True, timeout=120)
    PKI = os.path.join(TOP, "ocsp")


def tearDownModule():
    shutil.rmtree(TOP, ignore_errors=True)


def p(name):
    return os.path.join(PKI, name)


class TlsRaw(Raw):
    """Raw MQTT over TLS with a client certificate."""

    def __init__(self, port, name, ctx=None, session=None):
        if ctx is None:
            ctx = ssl.create_default_context(cafile=p("ca.crt"))
            ctx.load_cert_chain(p(name + ".crt"), p(name + ".key"))
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s = ctx.wrap_socket(s, server_hostname="localhost", session=session)
        self.buf = b""

    def recv_packet(self, timeout=TIMEOUT):
        try:
            return super().recv_packet(timeout)
        except (ssl.SSLError, ConnectionError):
            return None

    def closed(self, timeout=TIMEOUT):
        try:
            return super().closed(timeout)
        except (ssl.SSLError, ConnectionError):
            return True


def conf(mode="hard", extra=""):
    return ("per_listener_settings false\nallow_anonymous true\n"
            "listener {port} 127.0.0.1\n"
            "listener {tlsport} 127.0.0.1\n"
            "certfile %s\nkeyfile %s\ncafile %s\n"
            "require_certificate true\nuse_identity_as_username true\n"
            "tls_ocsp_check %s\n" % (p("server.crt"), p("server.key"),
                                     p("ca.crt"), mode) + extra)


class OcspTest(unittest.TestCase):
    MODE = "hard"
    EXTRA = ""
    RESPONDER = "good"

    def setUp(self):
        # tests that revoke a certificate get the index back afterwards
        with open(p("index.txt"), "rb") as f:
            self.index = f.read()
        self.r = Responder(PKI, PORT, mode=self.RESPONDER).start()
        self.b = Broker(conf(self.MODE, self.EXTRA)).start()

    def tearDown(self):
        if getattr(self, "index", None) is not None:
            with open(p("index.txt"), "wb") as f:
                f.write(self.index)
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.r.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)
        self.assertNotIn("WARNING: ThreadSanitizer", log)

    def connack(self, name, **kw):
        """CONNACK body for a client with certificate name, or None when
        the broker closed the connection instead."""
        c = TlsRaw(self.b.tlsport, name)
        c.send(connect_pkt(client_id=kw.pop("client_id", name), **kw))
        pkt = c.recv_packet()
        c.close()
        if pkt is None:
            return None
        self.assertEqual(pkt[0], 0x20)
        return pkt[1]

    def refused(self, name, pattern):
        m = self.b.mark()
        self.assertIsNone(self.connack(name))
        self.b.wait_log(r"Client from 127\.0\.0\.1:\d+ refused: OCSP: " + pattern,
                        start=m)


class Hard(OcspTest):
    EXTRA = "sys_interval 1\n"

    def test_good_revoked_unknown(self):
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.refused("client-revoked",
                     r"revoked \(reason keyCompromise, at \d{4}-\d\d-\d\dT")
        self.refused("client-unknown", r"unknown certificate")
        # counted in $SYS
        # $SYS is retained and published every second: the first value seen
        # may predate the refusals; wait for the one that counts both
        s = Sub(self.b.port, ["-t", "$SYS/broker/clients/ocsp_refused"])
        s.wait_for(r"^2$")
        s.kill()

    def test_answer_is_cached(self):
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.assertEqual(self.r.requests, 1)

    def test_unreachable_refused(self):
        self.r.stop()
        self.r = Responder(PKI, 0).start()  # nothing listens on PORT now
        self.refused("client-good", r"responder unreachable \(connect: "
                     "Connection refused\)")


class Soft(OcspTest):
    MODE = "soft"

    def test_only_revoked_refused(self):
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.refused("client-revoked", r"revoked \(reason keyCompromise")
        m = self.b.mark()
        self.assertEqual(self.connack("client-unknown"), b"\x00\x00")
        self.b.wait_log(r"OCSP: unknown certificate .*accepted \(tls_ocsp_check "
                        "soft\)", start=m)

    def test_unreachable_accepted(self):
        self.r.stop()
        self.r = Responder(PKI, 0).start()
        m = self.b.mark()
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.b.wait_log(r"OCSP: responder unreachable .*accepted", start=m)


class Override(OcspTest):
    """tls_ocsp_responder replaces the certificates' AIA URL."""

    def setUp(self):
        self.r = Responder(PKI, PORT).start()
        self.r2 = Responder(PKI, 0).start()
        self.b = Broker(conf("hard", "tls_ocsp_responder %s\n" % self.r2.url)).start()

    def tearDown(self):
        self.r2.stop()
        super().tearDown()

    def test_override_used(self):
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.assertEqual((self.r.requests, self.r2.requests), (0, 1))


class TwoResponders(OcspTest):
    """Answers are cached per (certificate, responder URL): two listeners
    with different tls_ocsp_responder each ask their own responder."""

    def setUp(self):
        self.r = Responder(PKI, PORT).start()
        self.r2 = Responder(PKI, 0).start()
        self.r3 = Responder(PKI, 0).start()
        self.port3 = free_port()
        tls = ("certfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\n"
               "use_identity_as_username true\ntls_ocsp_check hard\n"
               % (p("server.crt"), p("server.key"), p("ca.crt")))
        self.b = Broker("per_listener_settings false\nallow_anonymous true\n"
                        "listener {port} 127.0.0.1\n"
                        "listener {tlsport} 127.0.0.1\n" + tls +
                        "tls_ocsp_responder %s\n" % self.r2.url +
                        "listener %d 127.0.0.1\n" % self.port3 + tls +
                        "tls_ocsp_responder %s\n" % self.r3.url).start()

    def tearDown(self):
        self.r2.stop()
        self.r3.stop()
        super().tearDown()

    def connack_on(self, port, name):
        c = TlsRaw(port, name)
        c.send(connect_pkt(client_id=name))
        pkt = c.recv_packet()
        c.close()
        return pkt

    def test_cache_keyed_by_responder(self):
        self.assertEqual(self.connack_on(self.b.tlsport, "client-good"),
                         (0x20, b"\x00\x00"))
        self.assertEqual(self.connack_on(self.port3, "client-good"),
                         (0x20, b"\x00\x00"))
        # each listener's responder was asked once; the second listener
        # did not reuse the first one's answer
        self.assertEqual((self.r.requests, self.r2.requests, self.r3.requests),
                         (0, 1, 1))
        # and each listener reuses its own answer
        self.assertEqual(self.connack_on(self.port3, "client-good"),
                         (0x20, b"\x00\x00"))
        self.assertEqual(self.connack_on(self.b.tlsport, "client-good"),
                         (0x20, b"\x00\x00"))
        self.assertEqual((self.r2.requests, self.r3.requests), (1, 1))


class HostName(OcspTest):
    """A responder URL with a host name is resolved on the event loop
    (c-ares; `localhost` comes from /etc/hosts)."""
    EXTRA = "connect_timeout 3\n"

    def setUp(self):
        self.r = Responder(PKI, PORT).start()
        self.r2 = Responder(PKI, 0).start()
        self.b = Broker(conf("hard", self.EXTRA + "tls_ocsp_responder "
                             "http://localhost:%d/\n" % self.r2.port)).start()

    def tearDown(self):
        self.r2.stop()
        super().tearDown()

    def test_localhost_responder(self):
        self.assertEqual(self.connack("client-good"), b"\x00\x00")
        self.assertEqual((self.r.requests, self.r2.requests), (0, 1))
        self.refused("client-revoked", r"revoked \(reason keyCompromise")
        self.assertEqual(self.r2.requests, 2)


class UnknownHost(OcspTest):
    """A responder name that does not resolve: refused (hard) with the
    resolver's reason, or the query's deadline, never a wedged loop."""
    EXTRA = "connect_timeout 3\ntls_ocsp_responder http://no-such-host.invalid/\n"

    def test_unresolvable_refused(self):
        # the loop serves another client meanwhile
        a = TlsRaw(self.b.tlsport, "client-good")
        a.send(connect_pkt(client_id="waiting"))
        b = Raw(self.b.port)
        self.assertEqual(b.connect(client_id="other"), b"\x00\x00")
        b.close()
        self.assertIsNone(a.recv_packet(timeout=10))
        a.close()
        self.b.wait_log(r"refused: OCSP: responder unreachable \((resolve "
                        r"no-such-host\.invalid: |no answer within)")
        self.assertEqual(self.r.requests, 0)


class Delay(OcspTest):
    RESPONDER = "delay"

    def test_other_clients_served_while_waiting(self):
        self.r.delay = 3.0
        t0 = time.monotonic()
        a = TlsRaw(self.b.tlsport, "client-good")
        a.send(connect_pkt(client_id="waiting"))
        # another client, plain: CONNECT and PINGREQ answered at once
        b = Raw(self.b.port)
        self.assertEqual(b.connect(client_id="other"), b"\x00\x00")
        b.send(packet(0xC0, b""))
        t1 = time.monotonic()
        self.assertEqual(b.recv_packet(), (0xD0, b""))
        self.assertLess(time.monotonic() - t1, 1.0)
        b.close()
        pkt = a.recv_packet(timeout=10)
        self.assertEqual(pkt, (0x20, b"\x00\x00"))
        self.assertGreaterEqual(time.monotonic() - t0, 2.9)
        a.close()

    def test_one_query_for_two_clients(self):
        self.r.delay = 1.0
        a = TlsRaw(self.b.tlsport, "client-good")
        b = TlsRaw(self.b.tlsport, "client-good")
        a.send(connect_pkt(client_id="a"))
        b.send(connect_pkt(client_id="b"))
        self.assertEqual(a.recv_packet(), (0x20, b"\x00\x00"))
        self.assertEqual(b.recv_packet(), (0x20, b"\x00\x00"))
        self.assertEqual(self.r.requests, 1)
        a.close()
        b.close()


class Threads(OcspTest):
    """threads 2: one cache and one query for the whole process; the
    stapled response is fetched once, and stapled by both threads."""
    RESPONDER = "delay"
    EXTRA = "threads 2\ntls_ocsp_stapling true\n"

    def test_one_query_across_threads(self):
        self.b.wait_log(r"OCSP stapling \(listener \d+\): good response")
        self.assertEqual(self.r.requests, 1)  # the staple, fetched once
        self.r.delay = 1.0
        # several connections at once: the kernel spreads them over both
        # threads' acceptors; every one waits for the same single query
        cs = [TlsRaw(self.b.tlsport, "client-good") for _ in range(8)]
        for i, c in enumerate(cs):
            c.send(connect_pkt(client_id="t%d" % i))
        for c in cs:
            self.assertEqual(c.recv_packet(), (0x20, b"\x00\x00"))
            c.close()
        self.assertEqual(self.r.requests, 2)
        # handshakes on either thread get the one stapled response
        for _ in range(4):
            self.assertIn("Cert Status: good", s_client_status(self.b.tlsport))
        self.assertEqual(self.r.requests, 2)


class BadAnswers(OcspTest):
    EXTRA = "connect_timeout 3\n"

    def test_truncated(self):
        self.r.mode = "truncated"
        self.refused("client-good", r"invalid response")

    def test_wrong_signer(self):
        self.r.mode = "wrong"
        self.refused("client-good", r"invalid response \(signature or signer "
                     "not trusted")

    def test_stale(self):
        self.r.mode = "stale"
        self.refused("client-good", r"invalid response \(stale response: "
                     "nextUpdate has passed\)")

    def test_never_answers(self):
        self.r.mode = "never"
        t0 = time.monotonic()
        self.refused("client-good", r"responder unreachable \(no answer")
        self.assertLess(time.monotonic() - t0, 3.5)

    def test_huge_body_cut(self):
        self.r.mode = "huge"
        self.refused("client-good", r"invalid response")
        # the broker stopped reading long before the gigabyte
        self.assertLess(self.r.huge_sent, 64 << 20)


class Live(OcspTest):
    MODE = "hard"
    EXTRA = "tls_ocsp_cache_seconds 1\n"

    def test_revoked_while_connected(self):
        c = TlsRaw(self.b.tlsport, "client-good2")
        c.send(connect_pkt(client_id="victim", version=5))
        pkt = c.recv_packet()
        self.assertEqual(pkt[0], 0x20)
        self.assertEqual(pkt[1][1], 0)
        m = self.b.mark()
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-revoke",
                        "client-good2.crt", "-crl_reason", "keyCompromise"],
                       cwd=PKI, check=True, capture_output=True)
        pkt = c.recv_packet(timeout=10)
        self.assertIsNotNone(pkt)
        self.assertEqual(pkt[0], 0xE0)
        self.assertEqual(pkt[1][0], 0x98)
        self.b.wait_log(r"Client victim .* disconnected: OCSP: revoked", start=m)
        c.close()


class Resumed(OcspTest):
    EXTRA = "tls_ocsp_cache_seconds 1\n"

    def test_resumed_session_is_checked_again(self):
        ctx = ssl.create_default_context(cafile=p("ca.crt"))
        ctx.load_cert_chain(p("client-good2.crt"), p("client-good2.key"))
        a = TlsRaw(self.b.tlsport, "client-good2", ctx)
        a.send(connect_pkt(client_id="first"))
        self.assertEqual(a.recv_packet(), (0x20, b"\x00\x00"))
        sess = a.s.session  # the TLS 1.3 ticket came with the CONNACK
        a.close()
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-revoke",
                        "client-good2.crt", "-crl_reason", "keyCompromise"],
                       cwd=PKI, check=True, capture_output=True)
        # the cached "good" answer lives tls_ocsp_cache_seconds (1 s): a
        # duration, not an event
        time.sleep(1.2)
        m = self.b.mark()
        c = TlsRaw(self.b.tlsport, "client-good2", ctx, session=sess)
        self.assertTrue(c.s.session_reused)
        c.send(connect_pkt(client_id="second"))
        self.assertIsNone(c.recv_packet())
        self.b.wait_log(r"TLS connection from .* resumed", start=m)
        self.b.wait_log(r"refused: OCSP: revoked \(reason keyCompromise", start=m)
        self.assertEqual(self.r.requests, 2)
        c.close()


def s_client_status(port):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", p("ca.crt"), "-servername", "localhost",
                        "-status"], input=b"", capture_output=True, timeout=20)
    return r.stdout.decode(errors="replace")


def staple_conf(extra):
    return ("allow_anonymous true\nlistener {tlsport} 127.0.0.1\n"
            "certfile %s\nkeyfile %s\ncafile %s\ntls_ocsp_stapling true\n"
            % (p("server.crt"), p("server.key"), p("ca.crt")) + extra)


class Stapling(unittest.TestCase):
    def setUp(self):
        self.r = Responder(PKI, PORT).start()
        self.b = None

    def tearDown(self):
        self.r.stop()
        if self.b is not None:
            log = self.b.log_text()
            self.assertEqual(self.b.stop(), 0, log)
            self.assertNotIn("AddressSanitizer", log)
            self.assertNotIn("runtime error:", log)
            self.assertNotIn("WARNING: ThreadSanitizer", log)
        self.assertNotIn("WARNING: ThreadSanitizer", log)

    def test_fetched_from_aia_and_stapled(self):
        self.b = Broker(staple_conf("")).start()
        self.b.wait_log(r"OCSP stapling \(listener \d+\): good response "
                        r"\(\d+ bytes\) stapled")
        out = s_client_status(self.b.tlsport)
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        self.assertEqual(self.r.requests, 1)  # not one per handshake
        out = s_client_status(self.b.tlsport)
        self.assertIn("Cert Status: good", out)
        self.assertEqual(self.r.requests, 1)

    def test_file_kept_fresh_outside_then_stale(self):
        d = tempfile.mkdtemp(prefix="mqttd-staple-")
        req = os.path.join(d, "req.der")
        subprocess.run(["openssl", "ocsp", "-issuer", p("ca.crt"), "-cert",
                        p("server.crt"), "-no_nonce", "-reqout", req],
                       check=True, capture_output=True)
        with open(req, "rb") as f:
            req_der = f.read()
        staple = os.path.join(d, "staple.der")
        with open(staple, "wb") as f:
            f.write(self.r.answer(req_der, "good"))
        self.b = Broker(staple_conf("tls_ocsp_stapling_file %s\n" % staple)).start()
        self.b.wait_log(r"good response \(\d+ bytes\) stapled")
        self.assertIn("Cert Status: good", s_client_status(self.b.tlsport))
        self.assertEqual(self.r.requests, 0)  # the file, not the AIA
        # the outside tool writes a stale answer: no longer stapled
        m = self.b.mark()
        with open(staple + ".tmp", "wb") as f:
            f.write(self.r.answer(req_der, "stale"))
        os.rename(staple + ".tmp", staple)
        self.b.wait_log(r"OCSP stapling \(listener \d+\): invalid response "
                        r"\(stale response: nextUpdate has passed\): not stapled",
                        start=m)
        self.assertIn("OCSP response: no response sent",
                      s_client_status(self.b.tlsport))
        shutil.rmtree(d, ignore_errors=True)


class Config(unittest.TestCase):
    def test_ocsp_check_needs_client_certificates(self):
        b = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n"
                   "certfile %s\nkeyfile %s\ntls_ocsp_check hard\n"
                   "tls_ocsp_responder ftp://x/\n" % (p("server.crt"), p("server.key")))
        r = subprocess.run([os.environ.get("MQTTD_BIN", "build/mqttd"), "-t", "-c",
                            b.conf_path], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stderr)
        with open(b.conf_path) as f:
            lines = f.read().split("\n")
        n_check = lines.index("tls_ocsp_check hard") + 1
        self.assertIn("%s:%d: tls_ocsp_check on" % (b.conf_path, n_check), r.stderr)
        self.assertIn("%s:%d: invalid tls_ocsp_responder 'ftp://x/'"
                      % (b.conf_path, n_check + 1), r.stderr)
        shutil.rmtree(b.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
