"""TLS session resumption through the real daemon with openssl s_client
-sess_out/-sess_in and client certificates: tickets from
tls_session_ticket_key_file survive a restart, a resumption never bypasses
revocation or expiry, keys rotate on SIGHUP, no early data."""

import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import TempPki, SRC, TIMEOUT, Broker, Sub, connect_pkt

PKI = TempPki()
setUpModule = PKI.make
tearDownModule = PKI.remove
c = PKI.path


_seq = 0


def new_client_cert(seconds=None):
    """A fresh client certificate of the test CA (CN=resumeN), valid from
    an hour ago until 'seconds' from now (default: a day)."""
    global _seq
    _seq += 1
    name = "resume%d-%d" % (os.getpid(), _seq)
    now = datetime.datetime.now(datetime.timezone.utc)
    fmt = "%Y%m%d%H%M%SZ"
    end = now + datetime.timedelta(seconds=seconds if seconds else 86400)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                    "-subj", "/CN=" + name, "-out", name + ".csr"],
                   cwd=PKI.dir, check=True, capture_output=True)
    subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-batch", "-notext",
                    "-in", name + ".csr", "-out", name + ".crt",
                    "-startdate", (now - datetime.timedelta(hours=1)).strftime(fmt),
                    "-enddate", end.strftime(fmt)],
                   cwd=PKI.dir, check=True, capture_output=True)
    return name, c(name + ".crt"), c(name + ".key"), end


def write_keys(path, *keys):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(keys))


class ResumeTest(unittest.TestCase):
    KEYFILE = True
    CRL = False

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mqttd-resume-")
        self.keyfile = os.path.join(self.tmp, "ticket.key")
        self.key1 = os.urandom(80)
        write_keys(self.keyfile, self.key1)
        self.crl = os.path.join(self.tmp, "crl.pem")
        shutil.copy(c("crl.pem"), self.crl)
        conf = ("per_listener_settings false\nallow_anonymous true\n"
                "log_type all\nsys_interval 1\n"
                "listener {port} 127.0.0.1\n"
                "listener {tlsport} 127.0.0.1\n"
                "certfile %s\nkeyfile %s\ncafile %s\n"
                "require_certificate true\nuse_identity_as_username true\n"
                % (c("server.crt"), c("server.key"), c("ca.crt")))
        if self.CRL:
            conf += "crlfile %s\n" % self.crl
        if self.KEYFILE:
            conf = "tls_session_ticket_key_file %s\n" % self.keyfile + conf
        self.b = Broker(conf).start()

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)

    def restart(self):
        self.b.proc.terminate()
        self.assertEqual(self.b.proc.wait(timeout=10), 0, self.b.log_text())
        self.b.reader.join(timeout=10)
        with self.b.cond:  # the old process's end-of-log marker
            if self.b.lines and self.b.lines[-1] == "<<EOF>>":
                self.b.lines.pop()
        m = self.b.mark()
        self.b.start(expect_ready=False)
        self.b.wait_log(r"mqttd version .* starting", start=m)
        return m

    def session(self, crt, key, sess_out=None, sess_in=None, cid="resume",
                extra=()):
        """One s_client connection: CONNECT + DISCONNECT (a full MQTT
        session, so the broker logs its username). Returns stdout."""
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.b.tlsport,
                "-CAfile", c("ca.crt"), "-servername", "localhost", "-ign_eof",
                "-cert", crt, "-key", key] + list(extra)
        if sess_out:
            args += ["-sess_out", sess_out]
        if sess_in:
            args += ["-sess_in", sess_in]
        r = subprocess.run(args, input=connect_pkt(cid) + b"\xe0\x00",
                           capture_output=True, timeout=TIMEOUT)
        return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    def first(self, crt, key, cid="resume", extra=()):
        sess = os.path.join(self.tmp, "sess-%s.pem" % cid)
        out = self.session(crt, key, sess_out=sess, cid=cid, extra=extra)
        self.assertIn("New, TLSv1", out)
        self.assertTrue(os.path.getsize(sess) > 0, out)
        return sess


class KeyFile(ResumeTest):
    def test_resumed_after_restart_and_counted(self):
        name, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="first")
        m = self.restart()
        out = self.session(crt, key, sess_in=sess, cid="again")
        self.assertIn("Reused, TLSv1.3", out)
        self.b.wait_log(r"TLS connection from .* subject=CN=%s.* resumed" % name, start=m)
        self.b.wait_log(r"TLS session resumed from a ticket", start=m)
        # the username comes from the certificate, as in a full handshake
        self.b.wait_log(r"New client connected .* as again .*u'%s'" % name, start=m)
        s = Sub(self.b.port, ["-v", "-t", "$SYS/broker/tls/handshakes/#"])
        s.wait_for(r"^\$SYS/broker/tls/handshakes/resumed 1$")
        s.wait_for(r"^\$SYS/broker/tls/handshakes 1$")
        s.kill()

    def test_tls12_ticket_resumed_after_restart(self):
        name, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="t12", extra=["-tls1_2"])
        self.restart()
        out = self.session(crt, key, sess_in=sess, cid="t12b", extra=["-tls1_2"])
        self.assertIn("Reused, TLSv1.2", out)

    def test_no_early_data(self):
        _, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="ed")
        r = subprocess.run(["openssl", "sess_id", "-in", sess, "-noout", "-text"],
                           capture_output=True, text=True, check=True)
        self.assertRegex(r.stdout, r"Max Early Data: 0\b")
        early = os.path.join(self.tmp, "early")
        with open(early, "wb") as f:
            f.write(connect_pkt("early"))
        out = self.session(crt, key, sess_in=sess, cid="ed2",
                           extra=["-early_data", early])
        self.assertNotIn("Early data was accepted", out)
        self.assertIn("Reused, TLSv1.3", out)

    def test_sighup_rotation(self):
        _, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="rot")
        # a new first key: old tickets still decrypt with the second one
        key2 = os.urandom(80)
        write_keys(self.keyfile, key2, self.key1)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        self.assertIn("Reused", self.session(crt, key, sess_in=sess, cid="rot2"))
        sess2 = self.first(crt, key, cid="rot3")
        # the old key gone: its tickets give full handshakes, the new ones resume
        write_keys(self.keyfile, key2)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        self.assertIn("New, TLSv1.3", self.session(crt, key, sess_in=sess, cid="rot4"))
        self.assertIn("Reused", self.session(crt, key, sess_in=sess2, cid="rot5"))

    def test_key_file_refused_when_readable_by_others(self):
        os.chmod(self.keyfile, 0o640)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        line = self.b.wait_log(r"tls_session_ticket_key_file", start=m)
        self.assertIn("mode 0640", line)
        self.b.wait_log(r"Reload failed", start=m)

    def test_key_file_wrong_size(self):
        write_keys(self.keyfile, os.urandom(79))
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        line = self.b.wait_log(r"tls_session_ticket_key_file", start=m)
        self.assertIn("79 bytes", line)
        self.b.wait_log(r"Reload failed", start=m)


class Revocation(ResumeTest):
    CRL = True

    def test_revoked_between_connections(self):
        name, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="rv")
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-revoke", crt],
                       cwd=PKI.dir, check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", self.crl],
                       cwd=PKI.dir, check=True, capture_output=True)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        out = self.session(crt, key, sess_in=sess, cid="rv2")
        self.assertNotIn("Reused", out)
        self.b.wait_log(r"session ticket not used \(client certificate revoked, "
                        r"subject=\"[^\"]*CN=%s" % name, start=m)
        self.b.wait_log(r"TLS handshake failed.*client certificate revoked", start=m)
        self.assertNotRegex("\n".join(self.b.lines[m:]),
                            r"New client connected .* as rv2")

    def test_revoked_then_restart(self):
        """The same across a restart with the key file."""
        name, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="rr")
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-revoke", crt],
                       cwd=PKI.dir, check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", self.crl],
                       cwd=PKI.dir, check=True, capture_output=True)
        m = self.restart()
        out = self.session(crt, key, sess_in=sess, cid="rr2")
        self.assertNotIn("Reused", out)
        self.b.wait_log(r"TLS handshake failed.*client certificate revoked", start=m)

    def test_not_revoked_resumes(self):
        _, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="ok")
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        self.assertIn("Reused", self.session(crt, key, sess_in=sess, cid="ok2"))


class Expiry(ResumeTest):
    def test_expired_certificate_not_resumed(self):
        name, crt, key, end = new_client_cert(seconds=4)
        sess = self.first(crt, key, cid="exp")
        # the certificate's notAfter is a time, not an event: wait it out
        left = (end - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        time.sleep(max(0.0, left) + 1.1)
        m = self.b.mark()
        out = self.session(crt, key, sess_in=sess, cid="exp2")
        self.assertNotIn("Reused", out)
        self.b.wait_log(r"session ticket not used \(client certificate expired", start=m)
        self.b.wait_log(r"TLS handshake failed.*client certificate expired", start=m)


class NoKeyFile(ResumeTest):
    KEYFILE = False

    def test_in_memory_key_resumes_until_restart(self):
        _, crt, key, _ = new_client_cert()
        sess = self.first(crt, key, cid="mem")
        # SIGHUP rebuilds the TLS context; the in-memory key stays
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        self.assertIn("Reused", self.session(crt, key, sess_in=sess, cid="mem2"))
        self.restart()
        self.assertIn("New, TLSv1.3", self.session(crt, key, sess_in=sess, cid="mem3"))


if __name__ == "__main__":
    unittest.main()
