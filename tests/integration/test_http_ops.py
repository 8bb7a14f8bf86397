"""test_http_ops.py - the protocol http listener (src/daemon/http_ops.c,
src/broker/metrics.c): /metrics checked by promtool and for exact counts
(one and two threads), /healthz and /readyz (503 during
http_shutdown_grace), default-deny configuration errors and the 403 of
http_allow_from, TLS with required client certificates, bad and
oversized requests (400/405/414/431/505, each with a log line, the
server still serving afterwards), the connect deadline, and the status
page in headless Chromium (loads, draws, updates)."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Broker, Raw, connect_pkt, free_port, packet, publish_pkt, subscribe_pkt

CERTS = os.path.join(harness.SRC, "certs")
TIMEOUT = harness.TIMEOUT


def ensure_certs():
    if not os.path.exists(os.path.join(CERTS, "client1.crt")):
        subprocess.run(["sh", os.path.join(CERTS, "mkcerts.sh")], check=True,
                       stdout=subprocess.DEVNULL, cwd=harness.SRC)


def http(port, path="/", method="GET", raw=None, host="127.0.0.1", tls=None,
         timeout=TIMEOUT):
    """One request on a new connection; (status, headers dict, body bytes)
    read until the server closes. raw replaces the whole request."""
    s = socket.create_connection((host, port), timeout=timeout)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname="localhost")
    req = raw if raw is not None else (
        "%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, path)).encode()
    s.sendall(req)
    data = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
    assert m, "not an HTTP response: %r" % data[:200]
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if req.startswith(b"HEAD "):
        assert body == b"", "a body after HEAD: %r" % body[:100]
    else:
        assert int(hdrs["content-length"]) == len(body), \
            "Content-Length %s, body %d bytes" % (hdrs["content-length"], len(body))
    return int(m.group(1)), hdrs, body


def parse_metrics(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
    return out


class HttpBroker(Broker):
    """A broker with a plain MQTT listener (port) and an HTTP one (hport)."""

    def __init__(self, extra="", http_lines="", threads=None, head=""):
        hport = free_port()
        conf = (head + "listener {port} 127.0.0.1\nallow_anonymous true\n"
                "sys_interval 0\n" + extra +
                "\nlistener %d 127.0.0.1\nprotocol http\n%s\n" % (hport, http_lines))
        if threads:
            conf += "threads %d\n" % threads
        super().__init__(conf)
        self.hport = hport

    def metrics(self):
        st, hdrs, body = http(self.hport, "/metrics")
        assert st == 200, st
        assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
        return parse_metrics(body.decode())


class Base(unittest.TestCase):
    THREADS = None
    EXTRA = ""
    HTTP_LINES = ""
    HEAD = ""

    def setUp(self):
        self.b = HttpBroker(self.EXTRA, self.HTTP_LINES, self.THREADS,
                            self.HEAD).start()

    def tearDown(self):
        alive = self.b.alive() or getattr(self, "stopped", False)
        rc = self.b.stop()
        self.assertTrue(alive, "mqttd died:\n" + self.b.log_text())
        self.assertEqual(rc, 0, self.b.log_text())
        self.assertNotIn("AddressSanitizer", self.b.log_text())
        self.assertNotIn("runtime error:", self.b.log_text())

    def wait_metrics(self, want, timeout=TIMEOUT):
        """Poll /metrics until every key has its wanted value (the other
        threads hand in their counters once a second); return the last."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.b.metrics()
            if all(m.get(k) == v for k, v in want.items()):
                return m
            if time.monotonic() > deadline:
                bad = {k: (m.get(k), v) for k, v in want.items() if m.get(k) != v}
                self.fail("metrics (got, want): %r" % bad)
            time.sleep(0.05)  # polling the live counters, not waiting for time


class ExactCounts(Base):
    """100 QoS 1 publishes add exactly 100; packets and bytes exactly what
    the clients sent and received."""

    def exchange(self, npub=100, publishers=1):
        port = self.b.port
        before = self.b.metrics()
        rx = tx = 0  # bytes the clients sent / received
        sub = Raw(port)
        c = connect_pkt("exact-sub", version=4)
        s = subscribe_pkt("exact/t", qos=1, pid=1)
        sub.send(c + s)
        rx += len(c) + len(s)
        ca = sub.recv_packet()
        sa = sub.recv_packet()
        self.assertEqual((ca[0], sa[0]), (0x20, 0x90))
        tx += 4 + 5
        pubs = []
        for k in range(publishers):
            p = Raw(port)
            c = connect_pkt("exact-pub-%d" % k, version=4)
            p.send(c)
            rx += len(c)
            self.assertEqual(p.recv_packet()[0], 0x20)
            tx += 4
            pubs.append(p)
        got = 0
        for i in range(npub):
            p = pubs[i % publishers]
            m = publish_pkt("exact/t", b"payload-%03d" % i, qos=1, pid=i + 1)
            p.send(m)
            rx += len(m)
        for i in range(npub):
            p = pubs[i % publishers]
            ack = p.recv_packet()
            self.assertEqual(ack[0], 0x40)
            tx += 4
        while got < npub:
            first, body = sub.recv_packet()
            self.assertEqual(first & 0xF0, 0x30)
            tx += 1 + len(harness.varint(len(body))) + len(body)
            pid = body[2 + body[1] + 256 * body[0]:][:2]
            a = packet(0x40, pid)
            sub.send(a)
            rx += len(a)
            got += 1
        for p in [sub] + pubs:
            p.send(b"\xe0\x00")
            rx += 2
            self.assertTrue(p.closed())
        # received: CONNECT, SUBSCRIBE, PUBACKs and DISCONNECT of the
        # subscriber, CONNECT, PUBLISHes and DISCONNECT of the publishers;
        # sent: CONNACKs, SUBACK, PUBACKs and PUBLISHes
        msgs_rx = 3 + npub + 2 * publishers + npub
        msgs_tx = 1 + publishers + 1 + npub + npub
        want = {
            "mqttd_clients_connected": 0,
            "mqttd_publish_messages_received_total":
                before["mqttd_publish_messages_received_total"] + npub,
            "mqttd_publish_messages_sent_total":
                before["mqttd_publish_messages_sent_total"] + npub,
            "mqttd_messages_received_total":
                before["mqttd_messages_received_total"] + msgs_rx,
            "mqttd_messages_sent_total":
                before["mqttd_messages_sent_total"] + msgs_tx,
            "mqttd_bytes_received_total":
                before["mqttd_bytes_received_total"] + rx,
            "mqttd_bytes_sent_total": before["mqttd_bytes_sent_total"] + tx,
            "mqttd_connections_accepted_total":
                before["mqttd_connections_accepted_total"] + 1 + publishers,
        }
        m = self.wait_metrics(want)
        # and nothing more arrives afterwards (no double counting)
        self.b.wait_log(r"Client exact-pub-0 disconnected")
        m2 = self.wait_metrics(want)
        self.assertEqual(m["mqttd_bytes_received_total"], m2["mqttd_bytes_received_total"])

    def test_100_qos1(self):
        self.exchange(100, 1)

    def test_promtool_and_names(self):
        st, _, body = http(self.b.hport, "/metrics")
        self.assertEqual(st, 200)
        r = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        text = body.decode()
        for name in ["mqttd_clients_connected", "mqttd_messages_received_total",
                     "mqttd_messages_sent_total", "mqttd_bytes_received_total",
                     "mqttd_bytes_sent_total", "mqttd_subscriptions",
                     "mqttd_retained_messages",
                     'mqttd_messages_dropped_total{reason="queue_full"}',
                     'mqttd_tls_handshake_failures_total{reason="timeout"}',
                     'mqttd_auth_failures_total{reason="not_authorized"}',
                     'mqttd_listener_connections{listener="127.0.0.1:%d",protocol="mqtt"}'
                     % self.b.port,
                     'mqttd_listener_connections{listener="127.0.0.1:%d",protocol="http"} 1'
                     % self.b.hport,
                     'mqttd_thread_busy_seconds_total{thread="0"}',
                     'mqttd_thread_utilisation_ratio{thread="0"}']:
            self.assertIn(name, text)
        # HEAD: the headers of GET, no body
        st, hdrs, body = http(self.b.hport, raw=b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(st, 200)
        self.assertGreater(int(hdrs["content-length"]), 1000)

    def test_grafana_dashboard(self):
        """docs/grafana/mqttd.json: every query is valid PromQL (promtool
        check rules) and names only metrics /metrics serves."""
        import json
        with open(os.path.join(harness.SRC, "docs", "grafana", "mqttd.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreater(len(exprs), 10)
        text = http(self.b.hport, "/metrics")[2].decode()
        served = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
        served.add("mqttd_tls_client_certificate_soonest_expiry_timestamp_seconds")
        # only with bridges: test_http_bridge_metrics.py checks these names
        served.update(n for n in re.findall(r"\bmqttd_bridge_\w+", json.dumps(dash)))
        rules = "groups:\n- name: dashboard\n  rules:\n"
        for i, e in enumerate(exprs):
            for name in re.findall(r"\bmqttd_\w+", e):
                self.assertIn(name, served, e)
            e = (e.replace("$__rate_interval", "5m").replace("$job", ".*")
                 .replace("$instance", ".*"))
            rules += "  - record: dashboard:q%d\n    expr: %s\n" % (i, json.dumps(e))
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write(rules)
            f.flush()
            r = subprocess.run(["promtool", "check", "rules", f.name],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_retained_and_subscriptions(self):
        harness.pub(self.b.port, ["-t", "ret/a", "-m", "x", "-r", "-q", "1"])
        harness.pub(self.b.port, ["-t", "ret/b", "-m", "y", "-r", "-q", "1"])
        sub = harness.Sub(self.b.port, ["-t", "s/1", "-t", "s/2", "-t", "s/3"])
        sub.ready()
        self.wait_metrics({"mqttd_retained_messages": 2, "mqttd_subscriptions": 3,
                           "mqttd_clients_connected": 1})
        sub.kill()
        self.wait_metrics({"mqttd_subscriptions": 0, "mqttd_clients_connected": 0})


class ExactCountsThreads(ExactCounts):
    """The same with two event-loop threads: several publishers land on
    both threads, and the sums are still exact."""
    THREADS = 2

    def test_100_qos1_four_publishers(self):
        self.exchange(100, 4)

    def test_thread_metrics(self):
        m = self.b.metrics()
        for t in ("0", "1"):
            self.assertIn('mqttd_thread_busy_seconds_total{thread="%s"}' % t, m)
            self.assertIn('mqttd_thread_utilisation_ratio{thread="%s"}' % t, m)
        self.assertNotIn('mqttd_thread_busy_seconds_total{thread="2"}', m)


class Failures(Base):
    """Reasons: auth failures and TLS handshake failures are counted by
    reason."""
    HEAD = "per_listener_settings true\n"

    def setUp(self):
        ensure_certs()
        self.tport, self.aport = free_port(), free_port()
        self.EXTRA = ("listener %d 127.0.0.1\nallow_anonymous false\n"
                      "certfile %s/server.crt\nkeyfile %s/server.key\n"
                      "cafile %s/ca.crt\nrequire_certificate true\n"
                      "crlfile %s/crl.pem\n"
                      "listener %d 127.0.0.1\nallow_anonymous false\n"
                      % (self.tport, CERTS, CERTS, CERTS, CERTS, self.aport))
        super().setUp()

    def test_reasons(self):
        before = self.b.metrics()
        # a TLS client without a certificate on a require_certificate port
        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.tport)),
                                server_hostname="localhost")
            s.sendall(connect_pkt("x"))
            s.recv(10)
        # a revoked certificate
        ctx.load_cert_chain(os.path.join(CERTS, "client-revoked.crt"),
                            os.path.join(CERTS, "client-revoked.key"))
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.tport)),
                                server_hostname="localhost")
            s.sendall(connect_pkt("x"))
            s.recv(10)
        # an anonymous CONNECT where anonymous is refused (the 3rd listener)
        r = Raw(self.aport)
        r.send(connect_pkt("anon"))
        self.assertEqual(r.recv_packet()[0], 0x20)
        r.close()
        k = "mqttd_tls_handshake_failures_total{reason=\"%s\"}"
        a = "mqttd_auth_failures_total{reason=\"%s\"}"
        self.wait_metrics({
            k % "no_client_certificate": before[k % "no_client_certificate"] + 1,
            k % "certificate_revoked": before[k % "certificate_revoked"] + 1,
            a % "not_authorized": before[a % "not_authorized"] + 1,
        })
        m = self.b.metrics()
        # every certificate loaded, with its file and subject
        exp = [key for key in m if key.startswith(
            "mqttd_tls_certificate_expiry_timestamp_seconds{")]
        kinds = {re.search(r'kind="(\w+)"', key).group(1) for key in exp}
        self.assertEqual(kinds, {"server", "ca", "crl"})
        for key in exp:
            self.assertIn('listener="127.0.0.1:%d"' % self.tport, key)
            self.assertGreater(m[key], time.time() - 86400 * 365 * 30)


class Health(Base):
    HTTP_LINES = "http_shutdown_grace 30"

    def test_healthz_readyz_and_grace(self):
        st, _, body = http(self.b.hport, "/healthz")
        self.assertEqual((st, body), (200, b"ok\n"))
        st, _, body = http(self.b.hport, "/readyz")
        self.assertEqual((st, body), (200, b"ready\n"))
        st, hdrs, body = http(self.b.hport,
                              raw=b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((st, hdrs["content-length"]), (200, "6"))
        mark = self.b.mark()
        self.b.signal(signal.SIGTERM)
        self.b.wait_log(r"Shutting down in 30 s \(http_shutdown_grace\)", start=mark)
        st, hdrs, body = http(self.b.hport, "/readyz")
        self.assertEqual((st, body), (503, b"shutting down\n"))
        self.assertEqual(hdrs.get("retry-after"), "1")
        self.assertEqual(http(self.b.hport, "/healthz")[0], 200)
        self.assertEqual(self.b.metrics()["mqttd_ready"], 0)
        # MQTT still served during the grace
        r = Raw(self.b.port)
        r.connect(client_id="late")
        # a second signal stops at once
        self.stopped = True
        self.b.signal(signal.SIGTERM)
        self.b.proc.wait(timeout=TIMEOUT)
        self.assertEqual(self.b.proc.returncode, 0, self.b.log_text())
        self.assertTrue(r.closed())


class BadRequests(Base):
    """Strict parsing: each bad request gets its status and a log line;
    the server goes on serving (canary request and MQTT client)."""
    EXTRA = "connect_timeout 2\n"

    def canary(self):
        self.assertEqual(http(self.b.hport, "/healthz")[0], 200)
        r = Raw(self.b.port)
        r.connect(client_id="canary")
        r.close()

    def test_bad_requests(self):
        big_hdr = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n"
        many = b"GET / HTTP/1.1\r\n" + b"".join(
            b"X-H%d: v\r\n" % i for i in range(40)) + b"\r\n"
        total = b"GET / HTTP/1.1\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(10)) + b"\r\n"
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\nHost: x\n\n", 400),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414),
            (big_hdr, 431),
            (many, 431),
            (total, 431),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
            (b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ]
        for req, want in cases:
            mark = self.b.mark()
            st, _, body = http(self.b.hport, raw=req)
            self.assertEqual(st, want, "%r -> %d %r" % (req[:40], st, body))
            if want in (400, 414, 431, 505):
                self.b.wait_log(r"HTTP request from 127\.0\.0\.1:\d+ refused: .* \(%d\)"
                                % want, start=mark)
            self.canary()

    def test_slow_partial_request_cut(self):
        mark = self.b.mark()
        s = socket.create_connection(("127.0.0.1", self.b.hport))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost")
        t0 = time.monotonic()
        s.settimeout(TIMEOUT)
        self.assertEqual(s.recv(100), b"")  # closed by the deadline
        self.assertLess(time.monotonic() - t0, 2 + 3)
        self.b.wait_log(r"HTTP connection from 127\.0\.0\.1:\d+ timed out before "
                        r"a complete request", start=mark)
        s.close()
        self.canary()


class DefaultDeny(unittest.TestCase):
    """protocol http beyond loopback needs http_allow_from or TLS with
    required client certificates."""

    def run_conf(self, text):
        d = tempfile.mkdtemp(prefix="mqttd-test-")
        try:
            p = os.path.join(d, "m.conf")
            with open(p, "w") as f:
                f.write(text)
            r = subprocess.run([harness.MQTTD, "-t", "-c", p], capture_output=True,
                               text=True, timeout=TIMEOUT)
            return r.returncode, r.stderr.replace(p, "FILE")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_config_errors(self):
        ensure_certs()
        rc, err = self.run_conf("listener 1883 127.0.0.1\nlistener 8080\nprotocol http\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("FILE:2: listener 8080 is 'protocol http' on every address: "
                      "refusing to expose", err)
        rc, err = self.run_conf("listener 8080 0.0.0.0\nprotocol http\n")
        self.assertIn("FILE:1: listener 8080 0.0.0.0 is 'protocol http' on a "
                      "non-loopback address", err)
        self.assertNotEqual(rc, 0)
        rc, err = self.run_conf("listener 8080 0.0.0.0\nprotocol http\n"
                                "http_allow_from 10.0.0.0/8 bogus\n")
        self.assertIn("FILE:3: invalid address range 'bogus' in 'http_allow_from'", err)
        self.assertNotEqual(rc, 0)
        rc, err = self.run_conf("listener 8080 0.0.0.0\nprotocol http\n"
                                "certfile %s/server.crt\nkeyfile %s/server.key\n"
                                "cafile %s/ca.crt\n" % (CERTS, CERTS, CERTS))
        self.assertIn("FILE:1: listener 8080 0.0.0.0 is 'protocol http'", err)
        # accepted: loopback, an allow-list, or required client certificates
        for ok in ["listener 8080 ::1\nprotocol http\n",
                   "listener 8080 localhost\nprotocol http\n",
                   "listener 8080 0.0.0.0\nprotocol http\nhttp_allow_from 10.0.0.0/8 fd00::/8\n",
                   "listener 8080\nprotocol http\ncertfile %s/server.crt\n"
                   "keyfile %s/server.key\ncafile %s/ca.crt\nrequire_certificate true\n"
                   % (CERTS, CERTS, CERTS)]:
            rc, err = self.run_conf(ok)
            self.assertEqual(rc, 0, ok + err)

    def test_403_outside_allow_list(self):
        hport = free_port()
        b = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n"
                   "listener %d 0.0.0.0\nprotocol http\nhttp_allow_from 10.0.0.0/8 "
                   "192.0.2.0/24\n" % hport).start()
        try:
            mark = b.mark()
            st, _, body = http(hport, "/metrics")
            self.assertEqual(st, 403)
            self.assertNotIn(b"mqttd_", body)
            b.wait_log(r"HTTP connection from 127\.0\.0\.1:\d+ on port %d refused: "
                       r"not in http_allow_from \(403\)" % hport, start=mark)
            # a reload takes the new list
            with open(b.conf_path) as f:
                conf = f.read()
            with open(b.conf_path, "w") as f:
                f.write(conf.replace("192.0.2.0/24", "127.0.0.0/8"))
            mark = b.mark()
            b.signal(signal.SIGHUP)
            b.wait_log(r"Configuration reloaded\.", start=mark)
            self.assertEqual(http(hport, "/metrics")[0], 200)
            # turning the listener into an MQTT one needs a restart
            with open(b.conf_path, "w") as f:
                f.write(conf.replace("protocol http\nhttp_allow_from 10.0.0.0/8 "
                                     "192.0.2.0/24\n", ""))
            mark = b.mark()
            b.signal(signal.SIGHUP)
            b.wait_log(r"listener changes need a restart", start=mark)
            self.assertEqual(http(hport, "/healthz")[0], 200)
        finally:
            self.assertEqual(b.stop(), 0)

    def test_tls_client_certificates(self):
        ensure_certs()
        hport = free_port()
        b = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n"
                   "listener %d 0.0.0.0\nprotocol http\ncertfile %s/server.crt\n"
                   "keyfile %s/server.key\ncafile %s/ca.crt\nrequire_certificate true\n"
                   % (hport, CERTS, CERTS, CERTS)).start()
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
            with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError, AssertionError)):
                http(hport, "/metrics", tls=ctx)
            ctx.load_cert_chain(os.path.join(CERTS, "client1.crt"),
                                os.path.join(CERTS, "client1.key"))
            st, _, body = http(hport, "/metrics", tls=ctx)
            self.assertEqual(st, 200)
            self.assertIn(b'protocol="https"', body)
            self.assertIn(b"mqttd_tls_certificate_expiry_timestamp_seconds{listener=\"0.0.0.0:%d\""
                          % hport, body)
        finally:
            self.assertEqual(b.stop(), 0)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class StatusPage(Base):
    """The page in headless Chromium: it loads, draws its plots and
    timeline, and updates (data-updates counts documents drawn)."""

    def setUp(self):
        ensure_certs()
        self.tport = free_port()
        self.EXTRA = ("tls_expiry_warning_days 400\n"
                      "listener %d 127.0.0.1\ncertfile %s/server.crt\n"
                      "keyfile %s/server.key\ncafile %s/ca.crt\ncrlfile %s/crl.pem\n"
                      % (self.tport, CERTS, CERTS, CERTS, CERTS))
        super().setUp()
        self.assertIsNotNone(CHROMIUM, "chromium is not installed "
                             "(tests/install-deps.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="mqttd-chromium-")

    def tearDown(self):
        shutil.rmtree(self.profile, ignore_errors=True)
        super().tearDown()

    def chromium(self, *args):
        cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--user-data-dir=" + self.profile,
               "--window-size=1280,1300"] + list(args) + [
               "http://127.0.0.1:%d/" % self.b.hport]
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        return r.stdout.decode("utf-8", "replace")

    def test_page(self):
        st, hdrs, body = http(self.b.hport, "/")
        self.assertEqual(st, 200)
        self.assertIn("default-src 'none'", hdrs["content-security-policy"])
        # self-contained: nothing fetched from elsewhere
        self.assertIsNone(re.search(rb"(src|href)=\"?(https?:)?//", body))
        sub = harness.Sub(self.b.port, ["-t", "page/#"])
        sub.ready()
        for i in range(5):
            harness.pub(self.b.port, ["-t", "page/x", "-m", str(i)])
        # the broker samples its history once a second in real time, and
        # virtual time does not advance the broker: wait for two samples
        # (a rate needs two) before the page loads
        deadline = time.monotonic() + harness.TIMEOUT
        while True:
            st, _, js = http(self.b.hport, "/api/status")
            self.assertEqual(st, 200)
            if len(json.loads(js)["history"]["t"]) >= 2:
                break
            self.assertLess(time.monotonic(), deadline, "no history samples")
            time.sleep(0.2)
        # virtual time runs the page's 2 s refresh timer several times
        dom = self.chromium("--virtual-time-budget=9000", "--dump-dom")
        sub.kill()
        m = re.search(r'<body[^>]*data-updates="(\d+)"[^>]*data-points="(\d+)"', dom)
        self.assertIsNotNone(m, dom[:3000])
        self.assertGreaterEqual(int(m.group(1)), 2, "the page did not update")
        self.assertGreater(int(m.group(2)), 0, "the plots drew nothing")
        self.assertIn('id="state" class="ok">ready<', dom)
        self.assertIn('127.0.0.1:%d' % self.b.port, dom)   # listeners table
        self.assertIn('127.0.0.1:%d' % self.tport, dom)
        # every certificate loaded, inside the 400-day warning window or not
        rows = re.findall(r'<tr class="(\w*)"><td>(\d{4}-\d\d-\d\d)</td><td>(-?\d+)</td>'
                          r'<td>([^<]*)</td>', dom)
        kinds = {r[3] for r in rows}
        self.assertTrue({"server", "ca", "CRL next update"} <= kinds, rows)
        for cls, _, days, _ in rows:
            self.assertEqual(cls, "warn" if 0 <= int(days) <= 400 else
                             ("bad" if int(days) < 0 else ""), rows)
        self.assertIn("warn", {r[0] for r in rows})
        self.assertIn('<span id="err"></span>', dom)  # no fetch failed

    def test_screenshot(self):
        out = os.path.join(self.profile, "status.png")
        self.chromium("--virtual-time-budget=5000", "--screenshot=" + out)
        with open(out, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        self.assertEqual((w, h), (1280, 1300))
        if os.environ.get("MQTTD_STATUS_SCREENSHOT"):
            shutil.copy(out, os.environ["MQTTD_STATUS_SCREENSHOT"])


if __name__ == "__main__":
    unittest.main()
