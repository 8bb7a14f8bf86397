"""PROXY protocol listeners (enable_proxy_protocol 1|2) through a real
HAProxy 2.6 started as a child (`haproxy -f CFG -db`, ephemeral ports on
127.0.0.1, never the system service), plus raw sockets for the bad cases.

Clients bind to other loopback addresses (127.0.0.5 ...), so the address
HAProxy puts in the header differs from the TCP peer mqttd sees (HAProxy,
127.0.0.1): a log line naming 127.0.0.5 proves the header was used.

  mosquitto_pub -A 127.0.0.5 --cert client1 --> HAProxy :tls_fe (TLS ends,
      verify required) --send-proxy-v2-ssl-cn--> mqttd :pp2tls (no certfile)
  mosquitto_pub --> HAProxy :tcp_fe (pass-through) --send-proxy-v2-->
      mqttd :pp2mtls (TLS at mqttd, certfile + require_certificate)
  mosquitto_pub --> HAProxy :p2_fe --send-proxy-v2--> mqttd :pp2 (plain)
  mosquitto_pub --> HAProxy :p1_fe --send-proxy--> mqttd :pp1 (plain)
  HAProxy health checks (check-send-proxy) --> :pp2 (LOCAL) and :pp1
"""

import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (TempPki, SRC, TIMEOUT, Broker, Raw, Sub, connect_pkt, free_port,
                     pub, subscribe_pkt)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


PKI = TempPki()
setUpModule = PKI.make
tearDownModule = PKI.remove
c = PKI.path


def v2_header(src="203.0.113.7", sport=4711, cmd=1, tlvs=b""):
    """A PROXY v2 header, TCP over IPv4 (LOCAL with cmd 0: no addresses)."""
    if cmd == 0:
        return SIG + bytes([0x20, 0x00]) + struct.pack(">H", len(tlvs)) + tlvs
    body = (socket.inet_aton(src) + socket.inet_aton("127.0.0.1") +
            struct.pack(">HH", sport, 1883) + tlvs)
    return SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body


def ssl_tlv(client, verify, cn=None):
    """PP2_TYPE_SSL with client bits, verify result and an optional CN."""
    v = bytes([client]) + struct.pack(">I", verify)
    v += b"\x21" + struct.pack(">H", 7) + b"TLSv1.3"
    if cn is not None:
        v += b"\x22" + struct.pack(">H", len(cn)) + cn
    return b"\x20" + struct.pack(">H", len(v)) + v


HAPROXY_CFG = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tls_fe
    bind 127.0.0.1:{tls_fe} ssl crt {pem} ca-file {ca} verify required
    default_backend tls_be
backend tls_be
    server mqttd 127.0.0.1:{pp2tls} send-proxy-v2-ssl-cn
frontend opt_fe
    bind 127.0.0.1:{opt_fe} ssl crt {pem} ca-file {ca} verify optional crt-ignore-err all ca-ignore-err all
    default_backend tls_be
frontend tcp_fe
    bind 127.0.0.1:{tcp_fe}
    default_backend tcp_be
backend tcp_be
    server mqttd 127.0.0.1:{pp2mtls} send-proxy-v2
frontend p2_fe
    bind 127.0.0.1:{p2_fe}
    default_backend p2_be
backend p2_be
    server mqttd 127.0.0.1:{pp2} send-proxy-v2 check check-send-proxy inter 300
frontend p1_fe
    bind 127.0.0.1:{p1_fe}
    default_backend p1_be
backend p1_be
    server mqttd 127.0.0.1:{pp1} send-proxy check check-send-proxy inter 300
"""

MQTTD_CONF = """\
log_type all
connect_timeout 2
per_listener_settings false
allow_anonymous true
acl_file {acl}
listener {port} 127.0.0.1
listener {pp2tls} 127.0.0.1
enable_proxy_protocol 2
proxy_protocol_v2_require_tls true
require_certificate true
use_identity_as_username true
listener {pp2mtls} 127.0.0.1
enable_proxy_protocol 2
certfile {crt}
keyfile {key}
cafile {ca}
require_certificate true
use_identity_as_username true
listener {pp2} 127.0.0.1
enable_proxy_protocol 2
listener {pp1} 127.0.0.1
enable_proxy_protocol 1
listener {ppws} 127.0.0.1
enable_proxy_protocol 1
protocol websockets
"""

ACL = """\
topic readwrite public/#
user client1
topic readwrite c1/#
topic readwrite public/#
user client2
topic readwrite public/#
pattern readwrite users/%u/#
"""


class ProxyProtocolTest(unittest.TestCase):
    """One mqttd and one HAProxy for the class; every test ends with a
    canary client through HAProxy."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mqttd-haproxy-")
        cls.p = {k: free_port() for k in
                 ("pp2tls", "pp2mtls", "pp2", "pp1", "ppws", "tls_fe", "opt_fe",
                  "tcp_fe", "p2_fe", "p1_fe")}
        acl = os.path.join(cls.tmp, "acl")
        with open(acl, "w") as f:
            f.write(ACL)
        pem = os.path.join(cls.tmp, "server.pem")
        with open(pem, "w") as f:
            for n in ("server.crt", "server.key"):
                with open(c(n)) as g:
                    f.write(g.read())
        conf = MQTTD_CONF
        for k, v in dict(cls.p, acl=acl, crt=c("server.crt"),
                         key=c("server.key"), ca=c("ca.crt")).items():
            conf = conf.replace("{%s}" % k, str(v))
        cls.b = Broker(conf).start()
        cfg = os.path.join(cls.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(pem=pem, ca=c("ca.crt"), **cls.p))
        cls.hlog = open(os.path.join(cls.tmp, "haproxy.log"), "w+")
        cls.h = subprocess.Popen(["haproxy", "-f", cfg, "-db"],
                                 stdout=cls.hlog, stderr=subprocess.STDOUT)
        # HAProxy binds every frontend before its first health check: a
        # LOCAL header from the p2 backend's check means it is ready
        try:
            cls.b.wait_log(r"closed in handshake: PROXY protocol: LOCAL")
        except AssertionError:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.h.poll() is None:
            cls.h.terminate()
            cls.h.wait(timeout=10)
        cls.hlog.close()
        alive = cls.b.alive()
        log = cls.b.log_text()
        rc = cls.b.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert alive, "mqttd died:\n" + log
        assert rc == 0, "mqttd exit status %r:\n%s" % (rc, log)
        assert "ERROR: AddressSanitizer" not in log, log
        assert "runtime error:" not in log, log

    def tearDown(self):
        self.canary()

    # ---- helpers ------------------------------------------------------------

    def canary(self):
        """A plain client through HAProxy (v2) still gets in."""
        m = self.b.mark()
        pub(self.p["p2_fe"], ["-A", "127.0.0.9", "-i", "canary", "-t",
                              "public/canary", "-m", "x"])
        self.b.wait_log(r"New client connected from 127\.0\.0\.9:\d+ as "
                        r"canary ", start=m)
        self.assertIsNone(self.h.poll(), "haproxy exited")

    def tls_args(self, name):
        return ["--cafile", c("ca.crt"), "--cert", c(name + ".crt"),
                "--key", c(name + ".key")]

    def raw(self, port, data=b""):
        r = Raw(port)
        if data:
            r.send(data)
        return r

    def refused(self, port, data, reason, shut=False, ip="127.0.0.1"):
        """data on a PROXY listener: closed with no byte sent back, and
        the notice-level PROXY line naming the reason and the address: the
        proxy's for a malformed header, the client's from a well-formed
        one that the listener's policy refuses."""
        m = self.b.mark()
        r = self.raw(port, data)
        if shut:
            r.s.shutdown(socket.SHUT_WR)
        self.assertTrue(r.closed())
        self.assertEqual(r.buf, b"", "bytes sent back (a CONNACK?)")
        r.close()
        line = self.b.wait_log(r"PROXY protocol .*reason=\"?" + reason, start=m)
        self.assertIn("ip=%s " % ip, line)
        return line

    # ---- through HAProxy ----------------------------------------------------

    def test_tls_at_haproxy_identity_from_ssl_cn_tlv(self):
        """TLS ends at HAProxy (verify required); mqttd, without a
        certfile, takes client1 from PP2_SUBTYPE_SSL_CN; the ACL applies
        to that user; the log names the client's own address."""
        m = self.b.mark()
        sub = Sub(self.p["tls_fe"], ["-A", "127.0.0.5", "-i", "s1",
                                     "-t", "c1/#", "-t", "users/client1/#",
                                     "-C", "2"] + self.tls_args("client1"))
        sub.ready()
        self.b.wait_log(r"New client connected from 127\.0\.0\.5:\d+ as s1 "
                        r".*u'client1'", start=m)
        pub(self.p["tls_fe"], ["-A", "127.0.0.5", "-i", "p1", "-t", "c1/a",
                               "-m", "one"] + self.tls_args("client1"))
        pub(self.p["tls_fe"], ["-A", "127.0.0.5", "-i", "p2", "-t",
                               "users/client1/b", "-m", "two"]
            + self.tls_args("client1"))
        self.assertEqual(sub.messages(), ["one", "two"])
        # client2 may not read client1's topics (ACL by the CN user)
        m = self.b.mark()
        pub(self.p["tls_fe"], ["-A", "127.0.0.6", "-i", "p3", "-t", "c1/a",
                               "-m", "x", "-q", "1", "-V", "mqttv5"]
            + self.tls_args("client2"), check=False)
        self.b.wait_log(r"New client connected from 127\.0\.0\.6:\d+ as p3 "
                        r".*u'client2'", start=m)
        self.b.wait_log(r"acl denied .*client_id=\"?p3\"? .*username=\"?"
                        r"client2\"? .*topic=\"?c1/a\"? .*action=\"?publish",
                        start=m)

    def test_tls_at_haproxy_unverified_certificate_refused(self):
        """HAProxy with verify optional and every error ignored passes a
        client whose certificate it could not verify: the SSL TLV says so
        (verify != 0) and mqttd refuses the header; no certificate at all
        is refused too (require_certificate)."""
        m = self.b.mark()
        r = pub(self.p["opt_fe"], ["-A", "127.0.0.7", "-i", "bad", "-t",
                                   "public/x", "-m", "x"]
                + self.tls_args("client-otherca"), check=False)
        self.assertNotEqual(r.returncode, 0)
        line = self.b.wait_log(r"PROXY protocol .*reason=\"?client certificate "
                               r"not verified by the proxy", start=m)
        self.assertIn("ip=127.0.0.7", line)
        m = self.b.mark()
        r = pub(self.p["opt_fe"], ["-A", "127.0.0.7", "-i", "none", "-t",
                                   "public/x", "-m", "x", "--cafile",
                                   c("ca.crt")], check=False)
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r"PROXY protocol .*ip=127\.0\.0\.7 .*reason=\"?no "
                        r"verified client certificate", start=m)
        self.assertNotRegex(self.b.log_text(), r"as (bad|none) ")

    def test_tcp_pass_through_tls_at_mqttd(self):
        """HAProxy passes TCP through with send-proxy-v2; mqttd runs the
        TLS handshake after the header, takes the identity from the
        certificate, and both its TLS line and connect line name the
        client's address."""
        m = self.b.mark()
        pub(self.p["tcp_fe"], ["-A", "127.0.0.5", "-i", "mt", "-t",
                               "c1/z", "-m", "x"] + self.tls_args("client1"))
        self.b.wait_log(r"TLS connection from 127\.0\.0\.5:\d+", start=m)
        self.b.wait_log(r"New client connected from 127\.0\.0\.5:\d+ as mt "
                        r".*u'client1'", start=m)

    def test_plain_v2_and_v1(self):
        """Plain TCP through HAProxy with send-proxy-v2 and send-proxy."""
        for fe, ip in (("p2_fe", "127.0.0.5"), ("p1_fe", "127.0.0.6")):
            m = self.b.mark()
            sub = Sub(self.p[fe], ["-A", ip, "-i", "s-" + fe, "-t",
                                   "public/" + fe, "-C", "1"])
            sub.ready()
            pub(self.p[fe], ["-A", ip, "-i", "p-" + fe, "-t", "public/" + fe,
                             "-m", "hello " + fe])
            self.assertEqual(sub.messages(), ["hello " + fe])
            self.b.wait_log(r"New client connected from %s:\d+ as s-%s "
                            % (re.escape(ip), fe), start=m)

    def test_health_checks_quiet(self):
        """check-send-proxy: v2 checks send LOCAL, accepted and closed with
        a debug line; v1 checks send their own addresses and close; none
        of it reaches notice level."""
        m = self.b.mark()
        for _ in range(3):
            self.b.wait_log(r"Connection from 127\.0\.0\.1:\d+ closed in "
                            r"handshake: PROXY protocol: LOCAL connection "
                            r"\(health check\) closed", start=self.b.mark())
        lines = self.b.log_text().split("\n")[m:]
        noisy = [l for l in lines if "PROXY protocol ip=" in l
                 or "refused" in l or "sent no CONNECT" in l]
        self.assertEqual(noisy, [])

    # ---- raw sockets ----------------------------------------------------------

    def test_no_header(self):
        """An MQTT CONNECT without a header: closed without CONNACK."""
        self.refused(self.p["pp2"], connect_pkt("nohdr"),
                     "not a PROXY protocol header")

    def test_garbage(self):
        self.refused(self.p["pp2"], b"GET / HTTP/1.0\r\n\r\n",
                     "not a PROXY protocol header")
        self.refused(self.p["pp1"], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                     r"PROXY v1: too many fields")
        self.refused(self.p["pp2"], SIG + b"\x21\x11\xff\xff",
                     "PROXY v2: header longer than 2048 bytes")

    def test_wrong_version(self):
        self.refused(self.p["pp2"], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                     "expected PROXY protocol v2, got v1", ip="1.2.3.4")
        self.refused(self.p["pp1"], v2_header(),
                     "expected PROXY protocol v1, got v2", ip="203.0.113.7")

    def test_truncated_header(self):
        self.refused(self.p["pp2"], v2_header()[:20],
                     "connection closed in the middle of the header",
                     shut=True)
        self.refused(self.p["pp1"], b"PROXY TCP4 1.2.3.4",
                     "connection closed in the middle of the header",
                     shut=True)

    def test_slow_header_cut_by_deadline(self):
        """A header trickled a byte at a time: the connect_timeout (2 s)
        deadline is absolute, the trickle does not extend it."""
        m = self.b.mark()
        hdr = v2_header()
        r = self.raw(self.p["pp2"])
        stop = threading.Event()

        def trickle():
            for b in hdr[:-1]:
                if stop.wait(0.25):
                    return
                try:
                    r.s.send(bytes([b]))
                except OSError:
                    return
        t0 = time.monotonic()
        t = threading.Thread(target=trickle)
        t.start()
        try:
            self.assertTrue(r.closed(timeout=6))
        finally:
            stop.set()
            t.join()
        took = time.monotonic() - t0
        self.assertLess(took, 4.0)
        self.assertGreater(took, 1.5)
        self.assertEqual(r.buf, b"")
        r.close()
        self.b.wait_log(r"PROXY protocol .*reason=\"?no complete PROXY header "
                        r"in time", start=m)

    def test_ssl_tlv_unverified_refused(self):
        """On the TLS-at-proxy listener: a header without the SSL TLV
        (proxy_protocol_v2_require_tls), with TLS but no certificate, or
        with a certificate the proxy failed to verify: refused before any
        MQTT byte."""
        self.refused(self.p["pp2tls"], v2_header() + connect_pkt("x"),
                     r"client did not use TLS to the proxy", ip="203.0.113.7")
        self.refused(self.p["pp2tls"],
                     v2_header(tlvs=ssl_tlv(0x01, 0)) + connect_pkt("x"),
                     "no verified client certificate in PROXY header",
                     ip="203.0.113.7")
        self.refused(self.p["pp2tls"],
                     v2_header(tlvs=ssl_tlv(0x03, 20, b"client1"))
                     + connect_pkt("x"),
                     "client certificate not verified by the proxy",
                     ip="203.0.113.7")

    def test_real_address_in_connect_and_auth_failed_lines(self):
        """The header's address in the connect line, and in the auth
        failed (fail2ban) line of a header whose verified certificate has
        no CN."""
        m = self.b.mark()
        r = self.raw(self.p["pp2"], v2_header("198.51.100.23", 40001)
                     + connect_pkt("spoofed"))
        p = r.recv_packet()
        self.assertEqual(p, (0x20, b"\x00\x00"))
        r.close()
        self.b.wait_log(r"New client connected from 198\.51\.100\.23:40001 "
                        r"as spoofed ", start=m)
        m = self.b.mark()
        r = self.raw(self.p["pp2tls"],
                     v2_header("198.51.100.24", 40002,
                               tlvs=ssl_tlv(0x07, 0))
                     + connect_pkt("nocn"))
        p = r.recv_packet()
        self.assertEqual(p[0], 0x20)
        self.assertNotEqual(p[1][1], 0)
        r.close()
        line = self.b.wait_log(r"auth failed", start=m)
        self.assertIn("ip=198.51.100.24", line)
        self.assertIn("port=40002", line)
        self.assertIn("no CN in PROXY header", line)

    def test_websocket_lines_name_the_header_address(self):
        """PROXY under WebSocket: the WebSocket layer's own log lines (a
        protocol error after the upgrade) carry the header's address, not
        the proxy's."""
        m = self.b.mark()
        s = socket.create_connection(("127.0.0.1", self.p["ppws"]), timeout=5)
        s.sendall(b"PROXY TCP4 198.51.100.26 127.0.0.1 40004 1883\r\n"
                  b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "closed before the upgrade reply")
            head += chunk
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        s.sendall(b"\x82\x02\xc0\x00")  # unmasked: 1002
        line = self.b.wait_log(r"WebSocket protocol error", start=m)
        self.assertIn("ip=198.51.100.26", line)
        s.close()

    def test_local_raw(self):
        """A raw v2 LOCAL header: closed, debug line only."""
        m = self.b.mark()
        r = self.raw(self.p["pp2"], v2_header(cmd=0))
        self.assertTrue(r.closed())
        self.assertEqual(r.buf, b"")
        port = r.s.getsockname()[1]
        r.close()
        self.b.wait_log(r"Connection from 127\.0\.0\.1:%d closed in "
                        r"handshake: PROXY protocol: LOCAL" % port, start=m)
        lines = self.b.log_text().split("\n")[m:]
        self.assertEqual([l for l in lines if ":%d" % port in l
                          and "closed in handshake" not in l], [])


if __name__ == "__main__":
    unittest.main()
