"""test_websockets.py - MQTT over WebSockets (listener + protocol websockets)
against the real daemon: the upgrade handshake and its refusals, MQTT
packets split across and packed into frames every way RFC 6455 allows,
ping/pong and the close handshake, each bad input (with its status code and
log line, then a canary client that must still work), the connect deadline,
WSS with client certificates, MQTT.js sending 1,000 QoS 1 messages in
order, and headless Chromium with MQTT.js's browser bundle over ws:// and
wss:// talking to mosquitto_pub/mosquitto_sub on the plain listener.

The raw client below speaks RFC 6455 itself (masking, framing) so that it
can also send what a real client never would."""

import base64
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from harness import (TempPki, SRC, TIMEOUT, Broker, Sub, connect_pkt, free_port, pub,
                     publish_pkt, subscribe_pkt)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
INTEROP = os.path.join(SRC, "tests", "interop")
PKI = TempPki()
setUpModule = PKI.make
tearDownModule = PKI.remove
c = PKI.path


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WS:
    """A raw WebSocket client connection (optionally over TLS)."""

    def __init__(self, port, tls=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname="localhost")
        self.s = s
        self.buf = b""
        self.stream = b""  # MQTT bytes from binary/continuation frames
        self.key = base64.b64encode(os.urandom(16)).decode()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("nothing received in time")
        self.s.settimeout(left)
        try:
            d = self.s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            d = b""
        if not d:
            return False
        self.buf += d
        return True

    def request(self, path="/mqtt", proto="mqtt", version="13", key=None,
                extra="", first=None):
        lines = [first or "GET %s HTTP/1.1" % path, "Host: localhost",
                 "Upgrade: websocket", "Connection: Upgrade"]
        if key is not False:
            lines.append("Sec-WebSocket-Key: %s" % (key or self.key))
        if version is not None:
            lines.append("Sec-WebSocket-Version: %s" % version)
        if proto is not None:
            lines.append("Sec-WebSocket-Protocol: %s" % proto)
        req = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
        self.send(req.encode())

    def response(self, timeout=TIMEOUT):
        """(status, {header: value}, body) of the HTTP response."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError("closed before a response: %r" % self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            if not self._fill(deadline):
                break
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body.decode(errors="replace")

    def upgrade(self, **kw):
        self.request(**kw)
        st, h, body = self.response()
        assert st == 101, "upgrade refused: %d %s" % (st, body)
        assert h["sec-websocket-accept"] == accept_of(self.key), h
        return h

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        m = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, m | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, m | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(self.frame(opcode, payload, **kw))

    def mqtt(self, data):
        self.send_frame(2, data)

    def recv_frame(self, timeout=TIMEOUT):
        """(fin, opcode, payload), or None on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames are never masked"
                n, off = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, off = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
                if (b1 & 0x7F) < 126 or off > 2:
                    if len(self.buf) >= off + n:
                        p = self.buf[off:off + n]
                        self.buf = self.buf[off + n:]
                        return bool(b0 & 0x80), b0 & 0x0F, p
            if not self._fill(deadline):
                return None

    def recv_packet(self, timeout=TIMEOUT):
        """The next MQTT packet (first byte, body) from the frame stream;
        control frames other than close are skipped; None on close/EOF."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stream
            if len(s) >= 2:
                mult, n, i = 1, 0, 1
                while i < len(s):
                    b = s[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        if len(s) >= i + n:
                            self.stream = s[i + n:]
                            return s[0], s[i:i + n]
                        break
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if f is None or f[1] == 8:
                return None
            if f[1] in (0, 2):
                self.stream += f[2]

    def connect(self, version=4, client_id="wsraw", **kw):
        self.mqtt(connect_pkt(client_id=client_id, version=version, **kw))
        p = self.recv_packet()
        assert p is not None and p[0] == 0x20, "no CONNACK: %r" % (p,)
        return p[1]

    def expect_close(self, timeout=TIMEOUT):
        """The status code of the server's close frame (None: no code);
        the TCP connection must end after it."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            assert f is not None, "EOF without a close frame"
            if f[1] == 8:
                code = struct.unpack("!H", f[2][:2])[0] if len(f[2]) >= 2 else None
                assert self.recv_frame(max(0.01, deadline - time.monotonic())) is None
                return code

    def closed(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    return True
            except AssertionError:
                return False

    def close(self):
        self.s.close()


def ws_conf(port, wsport, extra="", ws_extra=""):
    return ("per_listener_settings false\nallow_anonymous true\n"
            "listener %d 127.0.0.1\n"
            "listener %d 127.0.0.1\nprotocol websockets\n%s\n%s"
            % (port, wsport, ws_extra, extra))


class WsTest(unittest.TestCase):
    EXTRA = ""
    WS_EXTRA = ""

    def setUp(self):
        self.wsport = free_port()
        port = free_port()
        self.b = Broker(ws_conf(port, self.wsport, self.EXTRA, self.WS_EXTRA))
        self.b.port = port
        self.b.start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)

    def canary(self, version=4):
        """A WebSocket client subscribes and gets its own message back, and
        a plain publisher reaches it: the listener still works."""
        w = WS(self.wsport)
        w.upgrade()
        w.connect(version=version, client_id="canary")
        w.mqtt(subscribe_pkt("canary/t", qos=0, version=version))
        self.assertEqual(w.recv_packet()[0], 0x90)
        w.mqtt(publish_pkt("canary/t", b"chirp", version=version))
        p = w.recv_packet()
        self.assertEqual(p[0] & 0xF0, 0x30)
        self.assertTrue(p[1].endswith(b"chirp"))
        pub(self.b.port, ["-t", "canary/t", "-m", "plain"])
        p = w.recv_packet()
        self.assertTrue(p[1].endswith(b"plain"))
        w.close()


class Handshake(WsTest):
    def test_upgrade_subprotocols_and_accept(self):
        for proto, want in (("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"),
                            ("foo, mqttv3.1, mqtt", "mqttv3.1"), (None, None)):
            w = WS(self.wsport)
            h = w.upgrade(proto=proto)
            self.assertEqual(h.get("sec-websocket-protocol"), want)
            self.assertEqual(h["upgrade"].lower(), "websocket")
            w.connect()
            w.close()
        self.canary()

    def test_rfc6455_sample_key(self):
        w = WS(self.wsport)
        w.key = "dGhlIHNhbXBsZSBub25jZQ=="
        h = w.upgrade()
        self.assertEqual(h["sec-websocket-accept"],
                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_any_path_and_query(self):
        for path in ("/", "/mqtt", "/x/y?a=b"):
            w = WS(self.wsport)
            w.upgrade(path=path)
            w.close()

    def refused(self, status, reason, **kw):
        m = self.b.mark()
        w = WS(self.wsport)
        w.request(**kw)
        st, h, body = w.response()
        self.assertEqual(st, status, body)
        self.assertEqual(body.strip(), reason)
        self.assertTrue(w.closed())
        self.b.wait_log(r"WebSocket handshake .*reason=.?%d %s"
                        % (status, re.escape(reason)), start=m)
        self.canary()
        return h

    def test_bad_version_426(self):
        h = self.refused(426, "unsupported Sec-WebSocket-Version", version="8")
        self.assertEqual(h["sec-websocket-version"], "13")

    def test_missing_version_400(self):
        self.refused(400, "missing Sec-WebSocket-Version", version=None)

    def test_missing_key_400(self):
        self.refused(400, "missing or invalid Sec-WebSocket-Key", key=False)

    def test_short_key_400(self):
        self.refused(400, "missing or invalid Sec-WebSocket-Key", key="abcd")

    def test_unknown_subprotocol_400(self):
        self.refused(400, "no supported subprotocol (mqtt, mqttv3.1)",
                     proto="chat")

    def test_post_400(self):
        self.refused(400, "method must be GET", first="POST /mqtt HTTP/1.1")

    def test_http10_400(self):
        self.refused(400, "HTTP/1.1 required", first="GET /mqtt HTTP/1.0")

    def test_bad_header_400(self):
        self.refused(400, "whitespace before header colon",
                     extra="Bad : header\r\n")

    def test_obs_fold_400(self):
        self.refused(400, "obsolete header line folding",
                     extra="X-A: b\r\n  folded\r\n")

    def test_head_too_large_431(self):
        self.refused(431, "request head too large",
                     extra="".join("X-Pad-%d: %s\r\n" % (i, "v" * 60)
                                   for i in range(80)))

    def test_long_cookie_431(self):
        self.refused(431, "request head too large",
                     extra="Cookie: %s\r\n" % ("c" * 5000))

    def test_not_an_upgrade_400(self):
        m = self.b.mark()
        w = WS(self.wsport)
        w.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body = w.response()
        self.assertEqual((st, body.strip()), (400, "missing Upgrade: websocket"))
        self.b.wait_log(r"WebSocket handshake .*400 missing Upgrade", start=m)
        self.canary()

    def test_plain_mqtt_on_ws_port(self):
        m = self.b.mark()
        w = WS(self.wsport)
        w.send(connect_pkt())
        st, _, body = w.response()
        self.assertEqual(st, 400)
        self.b.wait_log(r"WebSocket handshake .*reason=.?400", start=m)
        self.canary()

    def test_request_in_pieces_and_early_frame(self):
        """The head a byte at a time, then CONNECT in the same segment as
        the end of the head (before the 101 arrives)."""
        w = WS(self.wsport)
        req = ("GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n"
               % w.key).encode()
        for i in range(len(req)):
            w.send(req[i:i + 1])
        w.send(b"\r\n" + WS.frame(2, connect_pkt(client_id="early")))
        st, _, _ = w.response()
        self.assertEqual(st, 101)
        self.assertEqual(w.recv_packet()[0], 0x20)


class HeadersSize(WsTest):
    EXTRA = "websockets_headers_size 16384\n"

    def test_large_head_allowed(self):
        w = WS(self.wsport)
        w.upgrade(extra="Cookie: %s\r\n" % ("c" * 10000))
        w.connect()
        w = WS(self.wsport)
        w.request(extra="Cookie: %s\r\n" % ("c" * 17000))
        self.assertEqual(w.response()[0], 431)
        self.canary()


class PathAndOrigin(WsTest):
    WS_EXTRA = ("websockets_path /mqtt\n"
                "websockets_origin https://good.example http://also.example\n")

    def test_wrong_path_404(self):
        m = self.b.mark()
        w = WS(self.wsport)
        w.request(path="/other")
        st, _, body = w.response()
        self.assertEqual((st, body.strip()), (404, "no WebSocket endpoint at this path"))
        self.b.wait_log(r"WebSocket handshake .*404", start=m)
        w = WS(self.wsport)
        w.upgrade(path="/mqtt?x=1")
        w.connect()
        self.canary()

    def test_origin(self):
        m = self.b.mark()
        w = WS(self.wsport)
        w.request(extra="Origin: https://evil.example\r\n")
        st, _, body = w.response()
        self.assertEqual((st, body.strip()), (403, "Origin not allowed"))
        self.b.wait_log(r"WebSocket handshake .*403 Origin not allowed", start=m)
        for origin in ("https://good.example", "http://also.example", None):
            w = WS(self.wsport)
            w.upgrade(extra="Origin: %s\r\n" % origin if origin else "")
            w.connect()
            w.close()
        self.canary()


class Framing(WsTest):
    def test_split_fragmented_and_interleaved(self):
        """CONNECT split over a fragmented message with a ping between the
        fragments; SUBSCRIBE and PUBLISH packed into one frame; a packet
        split over two messages; empty frames."""
        w = WS(self.wsport)
        w.upgrade()
        cp = connect_pkt(client_id="frag", version=5)
        w.send_frame(2, cp[:1], fin=False)
        w.send_frame(0, cp[1:3], fin=False)
        w.send_frame(9, b"ping-data")
        f = w.recv_frame()
        self.assertEqual((f[1], f[2]), (10, b"ping-data"))
        w.send_frame(0, b"", fin=False)
        w.send_frame(10, b"unsolicited pong")
        w.send_frame(0, cp[3:], fin=True)
        self.assertEqual(w.recv_packet()[0], 0x20)
        w.mqtt(subscribe_pkt("f/t", qos=1, version=5) +
               publish_pkt("f/t", b"packed", qos=1, pid=7, version=5))
        kinds = {w.recv_packet()[0] & 0xF0 for _ in range(3)}
        self.assertEqual(kinds, {0x90, 0x40, 0x30})  # SUBACK, PUBACK, PUBLISH
        p = publish_pkt("f/t", b"x" * 1000, version=5)
        w.mqtt(p[:500])
        w.send_frame(2, b"")
        w.mqtt(p[500:])
        got = w.recv_packet()
        self.assertTrue(got[1].endswith(b"x" * 1000))
        self.canary(version=5)

    def test_large_message_both_ways(self):
        w = WS(self.wsport)
        w.upgrade()
        w.connect(client_id="big")
        w.mqtt(subscribe_pkt("big/t"))
        self.assertEqual(w.recv_packet()[0], 0x90)
        payload = os.urandom(300000)
        pk = publish_pkt("big/t", payload)
        # a 64-bit length frame split across many small TCP sends
        fr = WS.frame(2, pk)
        for i in range(0, len(fr), 7000):
            w.send(fr[i:i + 7000])
        got = w.recv_packet()
        self.assertEqual(got[1][2 + len("big/t"):], payload)

    def test_client_close_handshake(self):
        w = WS(self.wsport)
        w.upgrade()
        w.connect(client_id="closer")
        w.send_frame(8, struct.pack("!H", 1000) + b"bye")
        self.assertEqual(w.expect_close(), 1000)
        self.canary()

    def test_server_close_after_disconnect(self):
        w = WS(self.wsport)
        w.upgrade()
        w.connect(client_id="leaver")
        w.mqtt(b"\xe0\x00")  # DISCONNECT
        self.assertEqual(w.expect_close(), 1000)
        self.b.wait_log(r"Client leaver disconnected")

    def test_abrupt_eof(self):
        w = WS(self.wsport)
        w.upgrade()
        w.connect(client_id="dropper")
        w.close()
        self.b.wait_log(r"Client dropper closed its connection")
        self.canary()


class BadFrames(WsTest):
    EXTRA = "max_packet_size 100000\n"

    def bad(self, data, code, reason):
        m = self.b.mark()
        w = WS(self.wsport)
        w.upgrade()
        w.connect(client_id="bad")
        w.send(data)
        self.assertEqual(w.expect_close(), code)
        self.b.wait_log(r"WebSocket protocol error .*code=%d reason=.?%s"
                        % (code, reason), start=m)
        self.canary()

    def test_unmasked_1002(self):
        self.bad(WS.frame(2, b"\xc0\x00", mask=False), 1002,
                 "unmasked client frame")

    def test_reserved_opcode_1002(self):
        self.bad(WS.frame(3, b"x"), 1002, "reserved opcode 0x3")

    def test_reserved_control_opcode_1002(self):
        self.bad(WS.frame(0xB, b""), 1002, "reserved opcode 0xb")

    def test_rsv_bit_1002(self):
        self.bad(WS.frame(2, b"\xc0\x00", rsv=4), 1002,
                 "RSV bit set without an extension")

    def test_control_over_125_1002(self):
        self.bad(WS.frame(9, b"p" * 126), 1002, "control frame over 125 bytes")

    def test_fragmented_control_1002(self):
        self.bad(WS.frame(9, b"p", fin=False), 1002, "fragmented control frame")

    def test_stray_continuation_1002(self):
        self.bad(WS.frame(0, b"x"), 1002, "continuation frame without a message")

    def test_text_frame_1003(self):
        self.bad(WS.frame(1, b"\xc0\x00"), 1003,
                 r"text frame \(MQTT needs binary frames\)")

    def test_frame_over_max_packet_size_1009(self):
        # only the header: the length alone closes the connection
        self.bad(WS.frame(2, b"", length=100001)[:10], 1009,
                 "frame of 100001 bytes over the limit of 100000")

    def test_bad_frame_after_good_packets(self):
        """A PUBLISH and a bad frame in one segment: the PUBLISH is
        delivered before the close."""
        sub = Sub(self.b.port, ["-t", "bf/t"], count=1)
        sub.ready()
        self.bad(WS.frame(2, publish_pkt("bf/t", b"before")) +
                 WS.frame(2, b"x", mask=False), 1002, "unmasked client frame")
        self.assertEqual(sub.messages(), ["before"])


class Deadline(WsTest):
    EXTRA = "connect_timeout 1\n"

    def test_slow_partial_handshake_cut(self):
        m = self.b.mark()
        w = WS(self.wsport)
        w.send(b"GET /mqtt HTTP/1.1\r\nHost: local")
        t0 = time.monotonic()
        self.assertTrue(w.closed(timeout=5))
        self.assertLess(time.monotonic() - t0, 4)
        self.b.wait_log(r"WebSocket handshake .*reason=.?timed out", start=m)
        self.canary()


def client_ctx(cert=None):
    ctx = ssl.create_default_context(cafile=c("ca.crt"))
    if cert:
        ctx.load_cert_chain(c(cert + ".crt"), c(cert + ".key"))
    return ctx


class Wss(unittest.TestCase):
    def setUp(self):
        self.port, self.wss = free_port(), free_port()
        conf = ("per_listener_settings false\nallow_anonymous true\n"
                "listener %d 127.0.0.1\n"
                "listener %d 127.0.0.1\nprotocol websockets\n"
                "certfile %s\nkeyfile %s\ncafile %s\n"
                "require_certificate true\nuse_identity_as_username true\n"
                % (self.port, self.wss, c("server.crt"), c("server.key"),
                   c("ca.crt")))
        self.b = Broker(conf)
        self.b.port = self.port
        self.b.start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)

    def test_wss_with_client_certificate_identity(self):
        sub = Sub(self.port, ["-t", "wss/t"], count=1)
        sub.ready()
        w = WS(self.wss, tls=client_ctx("client1"))
        w.upgrade()
        w.connect(version=5, client_id="wss1")
        self.b.wait_log(r"New client connected from 127\.0\.0\.1:\d+ as wss1 .*u'client1'")
        w.mqtt(publish_pkt("wss/t", b"secure", version=5))
        self.assertEqual(sub.messages(), ["secure"])
        w.send_frame(8, struct.pack("!H", 1001))
        self.assertEqual(w.expect_close(), 1001)

    def test_wss_without_certificate_refused(self):
        m = self.b.mark()
        with self.assertRaises((ssl.SSLError, ConnectionResetError, AssertionError)):
            w = WS(self.wss, tls=client_ctx())
            w.upgrade()
        self.b.wait_log(r"TLS handshake failed", start=m)
        w = WS(self.wss, tls=client_ctx("client2"))
        w.upgrade()
        w.connect(client_id="wss2")

    def test_bad_frame_over_tls(self):
        m = self.b.mark()
        w = WS(self.wss, tls=client_ctx("client1"))
        w.upgrade()
        w.connect(client_id="wssbad")
        w.send(WS.frame(2, b"\xe0\x00", mask=False))
        self.assertEqual(w.expect_close(), 1002)
        self.b.wait_log(r"WebSocket protocol error .*unmasked", start=m)


def node_env(**kw):
    if not os.path.isdir(os.path.join(INTEROP, "node_modules", "mqtt")):
        raise AssertionError("tests/interop/node_modules missing: run "
                             "tests/install-deps.sh")
    env = dict(os.environ)
    env.update({k: str(v) for k, v in kw.items()})
    return env


class NodeQos1Order(WsTest):
    def test_1000_qos1_in_order(self):
        r = subprocess.run(["node", "ws_qos1_order.mjs"], cwd=INTEROP,
                           env=node_env(WS_URL="ws://127.0.0.1:%d/mqtt" % self.wsport,
                                        COUNT=1000),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok 1000 in order", r.stdout)


class Browser(unittest.TestCase):
    """Headless Chromium (puppeteer-core) with mqtt's dist/mqtt.min.js."""

    def setUp(self):
        self.port, self.ws, self.wss = free_port(), free_port(), free_port()
        conf = ("per_listener_settings false\nallow_anonymous true\n"
                "listener %d 127.0.0.1\n"
                "listener %d 127.0.0.1\nprotocol websockets\n"
                "listener %d 127.0.0.1\nprotocol websockets\n"
                "certfile %s\nkeyfile %s\n"
                % (self.port, self.ws, self.wss, c("server.crt"),
                   c("server.key")))
        self.b = Broker(conf)
        self.b.port = self.port
        self.b.start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)

    def test_browser_ws_and_wss(self):
        for scheme, port in (("ws", self.ws), ("wss", self.wss)):
            r = subprocess.run(
                ["node", "ws_browser.mjs"], cwd=INTEROP,
                env=node_env(WS_URL="%s://localhost:%d/mqtt" % (scheme, port),
                             PLAIN_PORT=self.port),
                capture_output=True, text=True, timeout=240)
            self.assertEqual(r.returncode, 0,
                             "%s: %s%s\n%s" % (scheme, r.stdout, r.stderr,
                                               self.b.log_text()[-3000:]))
            self.assertIn("browser ok", r.stdout)


if __name__ == "__main__":
    unittest.main()
