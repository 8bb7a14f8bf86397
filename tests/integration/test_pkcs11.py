"""Server keys in a PKCS#11 token through the real daemon, in Mosquitto's
form (tls_engine pkcs11, tls_keyform engine, keyfile pkcs11:...), with
SoftHSM2 and libp11's engine (libengine-pkcs11-openssl, whose default
module p11-kit-proxy loads SoftHSM2 from SOFTHSM2_CONF).

The token lives in a private SOFTHSM2_CONF + token directory; the server
key is generated, imported (PKCS#8) and deleted at once, so it exists on
disk only for the import. Checked: TLS with the token key (openssl
s_client, mosquitto_pub --cafile), pin-value and pin-source (with a
trailing newline), a wrong PIN stops the start with a clear message and
no PIN in any output, tls_engine_kpass_sha1 is a FILE:LINE error, SIGHUP
reloads with the token key, and -d loads the key in the daemon."""

import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import MQTTD, SRC, TIMEOUT, Broker, Sub, free_port, pub

PIN = "Qx7319pin"       # distinctive: searched for in every output
WRONG = "Wr0ngPin55"
SO_PIN = "So8842pin"
TMP = None
URI = "pkcs11:token=mqttd-test;object=server;type=private"


def t(name):
    return os.path.join(TMP, name)


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          timeout=60, **kw)


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="mqttd-p11-")
    run("bash", os.path.join(SRC, "certs", "mkcerts.sh"), TMP)
    os.mkdir(t("tokens"))
    with open(t("softhsm2.conf"), "w") as f:
        f.write("directories.tokendir = %s\nobjectstore.backend = file\n"
                "log.level = ERROR\n" % t("tokens"))
    os.environ["SOFTHSM2_CONF"] = t("softhsm2.conf")
    # ASan build: libp11 keeps method tables in statics that leak when its
    # engine is unloaded at exit (tests/lsan-suppressions.txt says which);
    # full unwinding so the suppressions can see the frames past libp11
    # (the fast unwinder stops in it). Leak detection itself stays on.
    if os.environ.get("MQTTD_SANITIZED"):
        supp = os.path.join(SRC, "tests", "lsan-suppressions.txt")
        os.environ["LSAN_OPTIONS"] = ":".join(
            filter(None, [os.environ.get("LSAN_OPTIONS"),
                          "suppressions=" + supp]))
        os.environ["ASAN_OPTIONS"] = ":".join(
            filter(None, [os.environ.get("ASAN_OPTIONS"),
                          "fast_unwind_on_malloc=0"]))
    run("softhsm2-util", "--init-token", "--free", "--label", "mqttd-test",
        "--pin", PIN, "--so-pin", SO_PIN)
    # the key: generated, made into PKCS#8, imported, deleted
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-out", t("tok.key"))
    run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", t("tok.key"),
        "-out", t("tok.pk8"))
    run("openssl", "req", "-new", "-key", t("tok.key"), "-subj",
        "/CN=localhost", "-out", t("tok.csr"))
    with open(t("tok.ext"), "w") as f:
        f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n"
                "extendedKeyUsage = serverAuth\n")
    for crt in ("tok1.crt", "tok2.crt"):  # two certificates, one token key
        run("openssl", "x509", "-req", "-in", t("tok.csr"), "-CA", t("ca.crt"),
            "-CAkey", t("ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", t("tok.ext"), "-out", t(crt))
    run("softhsm2-util", "--import", t("tok.pk8"), "--token", "mqttd-test",
        "--label", "server", "--id", "01", "--pin", PIN)
    os.unlink(t("tok.key"))
    os.unlink(t("tok.pk8"))
    with open(t("pin-nl"), "w") as f:
        f.write(PIN + "\n")
    with open(t("pin-wrong"), "w") as f:
        f.write(WRONG + "\n")


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def conf(keyfile, extra=""):
    return ("per_listener_settings false\nallow_anonymous true\n"
            "listener {port} 127.0.0.1\n"
            "listener {tlsport} 127.0.0.1\n"
            "certfile {dir}/server.crt\n"
            "tls_engine pkcs11\ntls_keyform engine\n"
            "keyfile %s\n" % keyfile + extra)


def serial_of(path):
    out = run("openssl", "x509", "-in", path, "-noout", "-serial").stdout
    return out.strip().split("=", 1)[1]


def s_client(port):
    return subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
         "-CAfile", t("ca.crt"), "-servername", "localhost", "-showcerts"],
        input=b"", capture_output=True, timeout=20)


class TokenTest(unittest.TestCase):
    KEYFILE = URI + "?pin-value=" + PIN

    def setUp(self):
        self.b = Broker(conf(self.KEYFILE))
        shutil.copy(t("tok1.crt"), os.path.join(self.b.dir, "server.crt"))
        self.b.start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn(PIN, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)

    def check_serves(self, crt="tok1.crt"):
        r = s_client(self.b.tlsport)
        out = r.stdout.decode(errors="replace")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("Cipher is TLS_", out, self.b.log_text())
        # the certificate served is the one configured (its key is the
        # token's: the handshake's CertificateVerify was signed with it)
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                      out, re.S)
        got = subprocess.run(["openssl", "x509", "-noout", "-serial"],
                             input=m.group(0), capture_output=True, text=True)
        self.assertEqual(got.stdout.strip().split("=", 1)[1], serial_of(t(crt)))
        s = Sub(self.b.port, ["-t", "p11/#"], count=1)
        s.ready()
        pub(self.b.tlsport, ["-p", str(self.b.tlsport), "--cafile", t("ca.crt"),
                             "-t", "p11/x", "-m", "from-tls"], host="localhost")
        self.assertEqual(s.messages(), ["from-tls"])


class PinValue(TokenTest):
    def test_serves_tls_with_the_token_key(self):
        self.check_serves()


class PinSource(TokenTest):
    def setUp(self):
        self.KEYFILE = URI + "?pin-source=file:" + t("pin-nl")
        super().setUp()

    def test_pin_file_with_trailing_newline(self):
        self.check_serves()

    def test_sighup_reload_keeps_the_token_key(self):
        self.check_serves("tok1.crt")
        # a new certificate for the same token key, then SIGHUP: the new
        # context loads the key from the token again and serves the new one
        shutil.copy(t("tok2.crt"), os.path.join(self.b.dir, "server.crt"))
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        self.check_serves("tok2.crt")


def start_fails(conf_text, args=()):
    """Run mqttd on conf_text; it must exit non-zero. Returns stdout+stderr."""
    d = tempfile.mkdtemp(prefix="mqttd-p11-conf-")
    try:
        path = os.path.join(d, "mqttd.conf")
        text = conf_text.replace("{dir}", d)
        for k in ("{port}", "{tlsport}"):
            text = text.replace(k, str(free_port()))
        with open(path, "w") as f:
            f.write(text)
        shutil.copy(t("tok1.crt"), os.path.join(d, "server.crt"))
        r = subprocess.run([MQTTD, "-c", path] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr, path
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Refusals(unittest.TestCase):
    def assert_no_pin(self, out):
        self.assertNotIn(PIN, out)
        self.assertNotIn(WRONG, out)
        # the failed start ends cleanly (no leak or UB report)
        self.assertNotIn("Sanitizer", out)
        self.assertNotIn("runtime error:", out)

    def test_wrong_pin_value_stops_the_start(self):
        rc, out, path = start_fails(conf(URI + "?pin-value=" + WRONG))
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"%s:\d+: keyfile '%s\?pin-value=\(redacted\)': "
                         r"the token refused the PIN \(PIN incorrect"
                         % (re.escape(path), re.escape(URI)))
        self.assert_no_pin(out)

    def test_wrong_pin_source_stops_the_start(self):
        rc, out, _ = start_fails(conf(URI + "?pin-source=file:" + t("pin-wrong")))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("the token refused the PIN (PIN incorrect", out)
        self.assert_no_pin(out)

    def test_wrong_pin_with_d_exits_non_zero_with_the_error(self):
        rc, out, _ = start_fails(conf(URI + "?pin-value=" + WRONG), ["-d"])
        self.assertEqual(rc, 1, out)
        self.assertIn("the token refused the PIN", out)
        self.assert_no_pin(out)

    def test_no_pin_is_a_clear_error(self):
        rc, out, _ = start_fails(conf(URI))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no PIN given: add pin-value= or pin-source=file:", out)

    def test_kpass_sha1_is_a_file_line_error(self):
        sha = "0b5f1d4e" * 5
        rc, out, path = start_fails(conf(URI + "?pin-value=" + PIN,
                                         "tls_engine_kpass_sha1 %s\n" % sha))
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"%s:9: 'tls_engine_kpass_sha1' cannot work: the "
                         r"pkcs11 engine \(libp11\) logs into the token with the "
                         r"PIN itself" % re.escape(path))
        self.assertNotIn(sha, out)
        self.assert_no_pin(out)

    def test_uri_without_engine_is_redacted_in_the_config_error(self):
        text = ("listener {tlsport} 127.0.0.1\ncertfile {dir}/server.crt\n"
                "keyfile %s?pin-value=%s\n" % (URI, PIN))
        rc, out, path = start_fails(text)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("%s:3: keyfile '%s?pin-value=(redacted)' is a PKCS#11 URI: "
                      "it needs 'tls_engine pkcs11' and 'tls_keyform engine'"
                      % (path, URI), out)
        self.assert_no_pin(out)

    def test_unreadable_pin_source_is_a_config_error(self):
        rc, out, path = start_fails(conf(URI + "?pin-source=file:/nonexistent/pin"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("%s:8: cannot read keyfile pin-source '/nonexistent/pin'"
                      % path, out)

    def test_keyform_engine_needs_tls_engine(self):
        text = ("listener {tlsport} 127.0.0.1\ncertfile {dir}/server.crt\n"
                "tls_keyform engine\nkeyfile %s?pin-value=%s\n" % (URI, PIN))
        rc, out, path = start_fails(text)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("%s:3: 'tls_keyform engine' needs 'tls_engine'" % path, out)
        self.assert_no_pin(out)


class Daemonized(unittest.TestCase):
    def test_d_loads_the_key_in_the_daemon(self):
        b = Broker(conf(URI + "?pin-source=file:" + t("pin-nl"),
                        "pid_file {dir}/mqttd.pid\n"))
        shutil.copy(t("tok1.crt"), os.path.join(b.dir, "server.crt"))
        pidf = os.path.join(b.dir, "mqttd.pid")
        try:
            r = subprocess.run([MQTTD, "-d", "-c", b.conf_path],
                               capture_output=True, text=True, timeout=30)
            # the parent returns once the daemon is ready: listening, with
            # the pid file written
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            with open(pidf) as f:
                pid = int(f.read().strip())
            out = s_client(b.tlsport).stdout.decode(errors="replace")
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertNotIn(PIN, r.stdout + r.stderr)
        finally:
            if os.path.exists(pidf):
                with open(pidf) as f:
                    pid = int(f.read().strip())
                # not our child: wait for its exit on a pidfd
                fd = os.pidfd_open(pid)
                os.kill(pid, signal.SIGTERM)
                p = select.poll()
                p.register(fd, select.POLLIN)
                self.assertTrue(p.poll(TIMEOUT * 1000), "daemon did not exit")
                os.close(fd)
            shutil.rmtree(b.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
