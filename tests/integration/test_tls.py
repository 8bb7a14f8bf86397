"""TLS listeners and mTLS identity through the real daemon, with the
Mosquitto TLS guide's client command lines and openssl s_client."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import TempPki, SRC, TIMEOUT, Broker, Sub, connect_pkt, pub

PKI = TempPki()
setUpModule = PKI.make
tearDownModule = PKI.remove
c = PKI.path


def tls_conf(extra=""):
    return ("per_listener_settings false\nallow_anonymous true\n"
            "listener {port} 127.0.0.1\n"
            "listener {tlsport} 127.0.0.1\n"
            "certfile %s\nkeyfile %s\ncafile %s\n"
            "require_certificate true\nuse_identity_as_username true\n"
            % (c("server.crt"), c("server.key"), c("ca.crt")) + extra)


def s_client(port, args, data=b""):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
           "-CAfile", c("ca.crt"), "-servername", "localhost"] + args
    return subprocess.run(cmd, input=data, capture_output=True, timeout=20)


def tls_pub(port, cert, key, topic="test/topic", msg="Hello TLS!", check=True,
            extra=None):
    args = ["-p", str(port), "--cafile", c("ca.crt"), "-t", topic, "-m", msg]
    if cert:
        args += ["--cert", cert, "--key", key]
    return pub(port, args + (extra or []), check=check, host="localhost")


class TlsTest(unittest.TestCase):
    EXTRA = ""

    def setUp(self):
        self.b = Broker(tls_conf(self.EXTRA)).start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)


class Basics(TlsTest):
    def test_seed_command_line_and_cn_username(self):
        s = Sub(self.b.port, ["-t", "test/topic"], count=1)
        s.ready()
        tls_pub(self.b.tlsport, c("client1.crt"), c("client1.key"))
        self.assertEqual(s.messages(), ["Hello TLS!"])
        self.b.wait_log(r"New client connected from 127\.0\.0\.1:\d+ as .* u'client1'")
        self.b.wait_log(r"TLS connection from 127\.0\.0\.1:\d+: TLSv1\.3")

    def test_versions(self):
        for flag, ok in (("-tls1", False), ("-tls1_1", False), ("-tls1_2", True),
                         ("-tls1_3", True)):
            with self.subTest(flag):
                r = s_client(self.b.tlsport, [flag, "-cert", c("client1.crt"),
                                              "-key", c("client1.key")])
                out = r.stdout.decode(errors="replace")
                if ok:
                    self.assertIn("Verify return code: 0", out)
                    self.assertRegex(out, r"New, TLSv1\.[23], Cipher is")
                else:
                    self.assertNotRegex(out, r"Cipher is (?!\(NONE\))")

    def test_weak_cipher_refused(self):
        r = s_client(self.b.tlsport, ["-tls1_2", "-cipher", "AES128-SHA",
                                      "-cert", c("client1.crt"), "-key", c("client1.key")])
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r"TLS handshake failed.*reason=.*cipher")

    def tls13_session(self, extra_args=()):
        """s_client over TLS 1.3 with client1's certificate: CONNECT, then
        DISCONNECT; -ign_eof keeps s_client reading until the broker closes,
        so everything the broker sent (tickets included) is printed."""
        r = s_client(self.b.tlsport, ["-tls1_3", "-ign_eof",
                                      "-cert", c("client1.crt"),
                                      "-key", c("client1.key")]
                     + list(extra_args),
                     data=connect_pkt("suite") + b"\xe0\x00")
        return r.stdout.decode(errors="replace")

    def test_tls13_suite_and_one_ticket(self):
        """The server's order picks TLS_AES_128_GCM_SHA256 from a client that
        prefers AES-256 (OpenSSL's own order), and one session ticket is
        sent per handshake, not OpenSSL's default two."""
        out = self.tls13_session(["-ciphersuites",
                                  "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"])
        self.assertIn("Cipher is TLS_AES_128_GCM_SHA256", out)
        self.assertEqual(out.count("Post-Handshake New Session Ticket arrived"),
                         1, out)
        self.b.wait_log(r"New client connected .* u'client1'")

    def test_client_ca_list_sent(self):
        r = s_client(self.b.tlsport, ["-tls1_2"])
        self.assertIn(b"Acceptable client certificate CA names", r.stdout)
        self.assertIn(b"mqttd", r.stdout)

    def test_plaintext_mqtt_on_tls_port(self):
        pub(self.b.tlsport, ["-t", "x", "-m", "y"], check=False)
        self.b.wait_log(r"TLS handshake failed.*first byte 0x10 is not a TLS "
                        r"record: plaintext on a TLS port\?")


class Tls13Suites(TlsTest):
    EXTRA = "ciphers_tls1.3 TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n"

    def test_configured_order_wins(self):
        r = s_client(self.b.tlsport, ["-tls1_3", "-ign_eof", "-ciphersuites",
                                      "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
                                      "-cert", c("client1.crt"),
                                      "-key", c("client1.key")],
                     data=connect_pkt("suite") + b"\xe0\x00")
        self.assertIn("Cipher is TLS_CHACHA20_POLY1305_SHA256",
                      r.stdout.decode(errors="replace"))


class Interactive:
    """openssl s_client with commands on (no -quiet, no -ign_eof) and -msg:
    stdout collected by a thread so that a test can wait for what the
    broker sent instead of sleeping."""

    def __init__(self, port, args):
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
               "-CAfile", c("ca.crt"), "-servername", "localhost", "-msg"]
        self.proc = subprocess.Popen(cmd + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            d = self.proc.stdout.read1(65536)
            with self.cond:
                if not d:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.out += d
                self.cond.notify_all()

    eof = False

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_count(self, needle, count):
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while self.out.count(needle) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError("s_client: %r x%d not seen:\n%s" % (
                        needle, count, self.out[-3000:].decode("latin1")))
                self.cond.wait(left)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=TIMEOUT)


class RawTls13:
    """A TLS 1.3 client (Python's ssl over memory BIOs) whose socket the
    test can also write raw bytes to."""

    def __init__(self, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(c("ca.crt"))
        ctx.load_cert_chain(c("client1.crt"), c("client1.key"))
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=TIMEOUT)
        self.inc, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.outb,
                                server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self._flush()

    def _flush(self):
        d = self.outb.read()
        if d:
            self.sock.sendall(d)

    def _pump(self):
        self._flush()
        d = self.sock.recv(65536)
        if not d:
            self.inc.write_eof()
        self.inc.write(d)

    def send(self, data):
        self.tls.write(data)
        self._flush()

    def recv(self, n):
        while True:
            try:
                return self.tls.read(n)
            except ssl.SSLWantReadError:
                self._pump()

    def close(self):
        self.sock.close()


class Records(TlsTest):
    """TLS records are OpenSSL's for the whole connection (the own TLS 1.3
    record layer was removed, docs/tls.md): KeyUpdate, tampered, oversized
    and unencrypted records, and large messages through the transport."""
    BAD_MAC = TOO_LONG = UNENCRYPTED = r"TLS read error"

    def test_key_update_both_ways(self):
        s = Interactive(self.b.tlsport, ["-tls1_3", "-cert", c("client1.crt"),
                                         "-key", c("client1.key")])
        try:
            s.send(connect_pkt("ku"))
            s.wait_count(b" \x02\x00\x00", 1)  # CONNACK
            # K: the client updates its key and asks the broker to update
            s.send(b"K\n")
            s.wait_count(b"KEYUPDATE", 1)
            s.send(b"\xc0\x00")  # PINGREQ under the new keys
            s.wait_count(b"\xd0\x00", 1)
            # the broker answered with its own KeyUpdate (OpenSSL sends it
            # with its next write)
            s.wait_count(b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate\n"
                         b"    18 00 00 01 00", 1)
            # k: the client updates its key only
            s.send(b"k\n")
            s.wait_count(b"KEYUPDATE", 2)
            s.send(b"\xc0\x00")
            s.wait_count(b"\xd0\x00", 2)
            self.assertEqual(s.out.count(b"<<< TLS 1.3, Handshake [length "
                                         b"0005], KeyUpdate"), 1)
            s.send(b"\xe0\x00")  # DISCONNECT
            self.b.wait_log(r"Client ku disconnected\.")
        finally:
            s.close()

    def test_tampered_record_gets_bad_record_mac(self):
        t = RawTls13(self.b.tlsport)
        try:
            t.send(connect_pkt("tamper"))
            self.assertEqual(t.recv(4), b"\x20\x02\x00\x00")
            t.sock.sendall(b"\x17\x03\x03\x00\x20" + b"\x5a" * 32)
            with self.assertRaises(ssl.SSLError) as cm:
                t.recv(1)
            self.assertIn("BAD_RECORD_MAC", str(cm.exception))
            self.b.wait_log(r"Client tamper closed its connection \(%s\)"
                            % self.BAD_MAC)
        finally:
            t.close()

    def test_oversized_and_unencrypted_records(self):
        for raw, why in ((b"\x17\x03\x03\x48\x01", self.TOO_LONG),
                         (b"\x16\x03\x03\x00\x04\x18\x00\x00\x01",
                          self.UNENCRYPTED)):
            t = RawTls13(self.b.tlsport)
            try:
                t.send(connect_pkt("raw"))
                self.assertEqual(t.recv(4), b"\x20\x02\x00\x00")
                t.sock.sendall(raw)
                self.b.wait_log(r"Client raw closed its connection \(%s\)"
                                % why)
                with self.assertRaises(ssl.SSLError):
                    t.recv(1)
            finally:
                t.close()

    def test_large_messages_across_records(self):
        """300 KB payloads: many records each way, partial writes."""
        payload = os.urandom(150000).hex()
        path = os.path.join(PKI.dir, "big.txt")
        with open(path, "w") as f:
            f.write(payload)
        tls = ["--cafile", c("ca.crt"), "--cert", c("client2.crt"),
               "--key", c("client2.key")]
        sub = Sub(self.b.tlsport, tls + ["-t", "big"], count=2,
                  host="localhost")
        sub.ready()
        for _ in range(2):
            pub(self.b.tlsport, ["-p", str(self.b.tlsport), "-t", "big", "-f",
                                 path, "--cafile", c("ca.crt"), "--cert",
                                 c("client1.crt"), "--key",
                                 c("client1.key")], host="localhost")
        got = [m for m in sub.messages() if len(m) > 1000]
        self.assertEqual(got, [payload, payload])

    def test_tls12_keeps_openssl(self):
        r = s_client(self.b.tlsport, ["-tls1_2", "-ign_eof", "-cert",
                                      c("client1.crt"), "-key",
                                      c("client1.key")],
                     data=connect_pkt("v12") + b"\xc0\x00\xe0\x00")
        self.assertIn(b"\xd0\x00", r.stdout)
        self.b.wait_log(r"Client v12 disconnected\.")


class Rejections(TlsTest):
    EXTRA = ""

    def test_each_rejection_has_its_own_reason(self):
        cases = [
            (None, None, r"no client certificate|did not return a certificate"),
            (c("client-expired.crt"), c("client-expired.key"), r"expired"),
            (c("client-otherca.crt"), c("client-otherca.key"), r"unknown CA|unable to get local issuer"),
        ]
        for cert, key, rx in cases:
            with self.subTest(cert):
                m = self.b.mark()
                r = tls_pub(self.b.tlsport, cert, key, check=False)
                self.assertNotEqual(r.returncode, 0)
                self.b.wait_log(r"TLS handshake failed.*(%s)" % rx, start=m)

    def test_no_cn_not_authorised(self):
        m = self.b.mark()
        r = tls_pub(self.b.tlsport, c("client-nocn.crt"), c("client-nocn.key"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r"auth failed .*reason=", start=m)


class Revocation(TlsTest):
    EXTRA = "crlfile %s\n" % "{crl}"

    def setUp(self):
        self.crl = os.path.join(tempfile.mkdtemp(), "crl.pem")
        shutil.copy(c("crl.pem"), self.crl)
        self.EXTRA = "crlfile %s\n" % self.crl
        super().setUp()

    def test_revoked_rejected(self):
        m = self.b.mark()
        r = tls_pub(self.b.tlsport, c("client-revoked.crt"), c("client-revoked.key"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r"TLS handshake failed.*revoked", start=m)

    def test_revoke_connected_client_on_sighup(self):
        sub = Sub(self.b.tlsport, ["-t", "rv", "--cafile", c("ca.crt"), "--cert",
                                   c("client2.crt"), "--key", c("client2.key"),
                                   "-i", "victim"], timeout=30, host="localhost")
        sub.ready()
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-revoke", "client2.crt"],
                       cwd=PKI.dir, check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", self.crl],
                       cwd=PKI.dir, check=True, capture_output=True)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Client victim .*revoked", start=m, timeout=5)
        sub.proc.wait(timeout=5)
        # a new connection with the revoked certificate is refused too
        r = tls_pub(self.b.tlsport, c("client2.crt"), c("client2.key"), check=False)
        self.assertNotEqual(r.returncode, 0)


class Rotation(TlsTest):
    def setUp(self):
        self.sdir = tempfile.mkdtemp()
        for f in ("server.crt", "server.key"):
            shutil.copy(c(f), os.path.join(self.sdir, f))
        self.b = Broker(tls_conf().replace(c("server.crt"), os.path.join(self.sdir, "server.crt"))
                        .replace(c("server.key"), os.path.join(self.sdir, "server.key"))).start()

    def serial(self):
        r = s_client(self.b.tlsport, ["-cert", c("client1.crt"), "-key", c("client1.key")])
        x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=r.stdout,
                           capture_output=True, check=True)
        return x.stdout.strip()

    def test_rotate_server_cert_on_sighup(self):
        before = self.serial()
        sub = Sub(self.b.tlsport, ["-t", "rot", "--cafile", c("ca.crt"), "--cert",
                                   c("client1.crt"), "--key", c("client1.key")],
                  count=1, timeout=30, host="localhost")
        sub.ready()
        # a new server certificate from the same CA
        subprocess.run(["openssl", "req", "-new", "-key", os.path.join(self.sdir, "server.key"),
                        "-subj", "/CN=localhost", "-out", os.path.join(self.sdir, "new.csr")],
                       check=True, capture_output=True)
        ext = os.path.join(self.sdir, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", os.path.join(self.sdir, "new.csr"),
                        "-CA", c("ca.crt"), "-CAkey", c("ca.key"), "-CAcreateserial",
                        "-days", "30", "-extfile", ext, "-out",
                        os.path.join(self.sdir, "server.crt")], check=True, capture_output=True)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        self.assertNotEqual(self.serial(), before)
        # the subscriber that was connected before the rotation still works
        tls_pub(self.b.tlsport, c("client1.crt"), c("client1.key"), topic="rot", msg="after")
        self.assertEqual(sub.messages(), ["after"])

    def test_broken_new_cert_keeps_old(self):
        before = self.serial()
        with open(os.path.join(self.sdir, "server.crt"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Reload failed", start=m)
        self.assertEqual(self.serial(), before)


def make_client_cert(name, start, end):
    """A client certificate signed by the test CA with the given validity
    (openssl ca date format YYYYMMDDHHMMSSZ)."""
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                    "-subj", "/CN=" + name, "-out", name + ".csr"],
                   cwd=PKI.dir, check=True, capture_output=True)
    subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-batch", "-notext",
                    "-in", name + ".csr", "-out", name + ".crt", "-startdate", start,
                    "-enddate", end], cwd=PKI.dir, check=True, capture_output=True)
    return c(name + ".crt"), c(name + ".key")


class Lifecycle(TlsTest):
    EXTRA = "tls_handshake_timeout 1\n"

    def test_disconnected_at_not_after(self):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        fmt = "%Y%m%d%H%M%SZ"
        crt, key = make_client_cert("soon", (now - datetime.timedelta(hours=1)).strftime(fmt),
                                    (now + datetime.timedelta(seconds=4)).strftime(fmt))
        sub = Sub(self.b.tlsport, ["-t", "exp", "--cafile", c("ca.crt"), "--cert", crt,
                                   "--key", key, "-i", "soon-client"], timeout=30,
                  host="localhost")
        sub.ready()
        self.b.wait_log(r"Client soon-client .*disconnected: its certificate expired",
                        timeout=15)
        sub.kill()

    def test_handshake_deadline(self):
        import socket
        s = socket.create_connection(("127.0.0.1", self.b.tlsport))
        s.settimeout(10)
        self.assertEqual(s.recv(10), b"")
        self.b.wait_log(r"TLS handshake failed.*reason=.*handshake timeout")


class SubjectAsUsername(TlsTest):
    def setUp(self):
        self.b = Broker(tls_conf().replace("use_identity_as_username true",
                                           "use_subject_as_username true")).start()

    def test_rfc2253_subject(self):
        tls_pub(self.b.tlsport, c("client1.crt"), c("client1.key"))
        self.b.wait_log(r"u'CN=client1,O=mqttd test'")


class ReloadInterval(Rotation):
    def setUp(self):
        super().setUp()
        self.b.stop()
        self.b = Broker(tls_conf().replace(c("server.crt"), os.path.join(self.sdir, "server.crt"))
                        .replace(c("server.key"), os.path.join(self.sdir, "server.key"))
                        + "tls_reload_interval 1\n").start()

    def test_rotate_server_cert_on_sighup(self):
        pass

    def test_broken_new_cert_keeps_old(self):
        pass

    def test_files_changed_on_disk_reloaded(self):
        before = self.serial()
        tmp = os.path.join(self.sdir, "server.crt.new")
        subprocess.run(["openssl", "req", "-new", "-x509", "-key",
                        os.path.join(self.sdir, "server.key"), "-subj", "/CN=localhost",
                        "-days", "2", "-out", tmp], check=True, capture_output=True)
        # sign it with the CA instead so clients still verify it
        subprocess.run(["openssl", "x509", "-in", tmp, "-CA", c("ca.crt"), "-CAkey",
                        c("ca.key"), "-CAcreateserial", "-days", "2", "-out", tmp],
                       check=True, capture_output=True)
        os.replace(tmp, os.path.join(self.sdir, "server.crt"))
        self.b.wait_log(r"TLS files of listener \d+ changed on disk: reloaded", timeout=10)
        self.assertNotEqual(self.serial(), before)


class CnAsAclUser(TlsTest):
    def setUp(self):
        self.acl = os.path.join(tempfile.mkdtemp(), "acl")
        with open(self.acl, "w") as f:
            f.write("user client1\ntopic readwrite test/#\n")
        self.b = Broker(tls_conf("acl_file %s\n" % self.acl)).start()

    def test_cn_is_the_acl_user(self):
        sub = Sub(self.b.tlsport, ["-t", "test/#", "-v", "--cafile", c("ca.crt"), "--cert",
                                   c("client1.crt"), "--key", c("client1.key")],
                  count=1, host="localhost")
        sub.ready()
        # client2 is not in the ACL: its publish is dropped and logged
        m = self.b.mark()
        tls_pub(self.b.tlsport, c("client2.crt"), c("client2.key"), msg="from2")
        self.b.wait_log(r"acl denied .*username=client2 topic=test/topic", start=m)
        tls_pub(self.b.tlsport, c("client1.crt"), c("client1.key"), msg="from1")
        self.assertEqual(sub.messages(), ["test/topic from1"])


if __name__ == "__main__":
    unittest.main()
