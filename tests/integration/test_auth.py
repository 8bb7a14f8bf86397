"""Password file, ACL file and anonymous access through the real daemon
with mosquitto_pub/mosquitto_sub -u -P, files written by mqttd-passwd and by
Debian's mosquitto_passwd."""

import os
import signal
import struct
import subprocess
import tempfile
import unittest

from harness import MQTTD, PASSWD, Broker, Raw, Sub, pub, subscribe_pkt


def make_pwfile(path, users, tool=None):
    first = True
    for u, p in users:
        cmd = [tool or PASSWD]
        if tool is None:
            cmd += ["-I", "1000"]
        cmd += ["-b"]
        if first and tool is not None:
            cmd = [tool, "-c", "-b"]
        cmd += [path, u, p]
        if first and tool is None and not os.path.exists(path):
            open(path, "w").close()
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        first = False


class AuthTest(unittest.TestCase):
    def start(self, conf):
        self.b = Broker(conf)
        self.d = self.b.dir
        return self.b

    def tearDown(self):
        alive = self.b.alive()
        log = self.b.log_text()
        rc = self.b.stop()
        self.assertTrue(alive, log)
        self.assertEqual(rc, 0, log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)


class Passwords(AuthTest):
    def setUp(self):
        d = tempfile.mkdtemp()
        self.pw = os.path.join(d, "passwd")
        make_pwfile(self.pw, [("alice", "wonder"), ("bob", "builder")])
        self.start("listener {port} 127.0.0.1\npassword_file %s\n" % self.pw).start()

    def test_good_and_bad_passwords(self):
        pub(self.b.port, ["-u", "alice", "-P", "wonder", "-t", "t", "-m", "x"])
        m = self.b.mark()
        r = pub(self.b.port, ["-u", "alice", "-P", "wrong", "-t", "t", "-m", "x"], check=False)
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r"auth failed ip=127\.0\.0\.1 port=\d+ client_id=\S+ "
                        r"username=alice reason=", start=m)
        r = pub(self.b.port, ["-u", "mallory", "-P", "x", "-t", "t", "-m", "x"], check=False)
        self.assertNotEqual(r.returncode, 0)
        # anonymous is off by default once a listener is configured
        r = pub(self.b.port, ["-t", "t", "-m", "x"], check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_password_never_logged(self):
        pub(self.b.port, ["-u", "bob", "-P", "builder", "-t", "t", "-m", "x"])
        pub(self.b.port, ["-u", "bob", "-P", "s3cr3t-wrong", "-t", "t", "-m", "x"], check=False)
        self.b.wait_log(r"auth failed")
        self.assertNotIn("builder", self.b.log_text())
        self.assertNotIn("s3cr3t-wrong", self.b.log_text())

    def test_sighup_reload_removes_user(self):
        s = Sub(self.b.port, ["-u", "bob", "-P", "builder", "-t", "t"], timeout=30)
        s.ready()
        subprocess.run([PASSWD, "-D", self.pw, "bob"], check=True, capture_output=True)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        # the connected subscriber of the removed user is cut off
        self.b.wait_log(r"user 'bob' is no longer in the password file", start=m)
        r = pub(self.b.port, ["-u", "bob", "-P", "builder", "-t", "t", "-m", "x"], check=False)
        self.assertNotEqual(r.returncode, 0)
        pub(self.b.port, ["-u", "alice", "-P", "wonder", "-t", "t", "-m", "x"])


class SlowHashOffTheLoop(AuthTest):
    """At mqttd-passwd's default iteration count a PBKDF2 check costs a few
    hundred ms; it runs on a worker thread, so other clients are served
    while it runs."""

    def test_other_clients_served_during_password_check(self):
        d = tempfile.mkdtemp()
        pw = os.path.join(d, "passwd")
        open(pw, "w").close()
        subprocess.run([PASSWD, "-b", pw, "slow", "pass"], check=True,
                       capture_output=True, timeout=60)  # default iterations
        self.start("listener {port} 127.0.0.1\npassword_file %s\n"
                   "allow_anonymous true\nlog_type all\n" % pw).start()
        a = Raw(self.b.port)
        a.connect(client_id="bystander")
        m = self.b.mark()
        bad = Raw(self.b.port)
        from harness import connect_pkt, packet
        bad.send(connect_pkt(client_id="guesser", username="slow", password="wrong"))
        self.b.wait_log(r"Client guesser: password check queued", start=m)
        a.send(packet(0xC0, b""))
        self.assertEqual(a.recv_packet()[0], 0xD0)
        # the bystander was answered while the check was still running
        with self.b.cond:
            since = "\n".join(self.b.lines[m:])
        self.assertNotIn("client_id=guesser", since)
        self.assertEqual(bad.recv_packet(timeout=30), (0x20, b"\x00\x05"))
        good = Raw(self.b.port)
        self.assertEqual(good.connect(client_id="ok", username="slow", password="pass"),
                         b"\x00\x00")


class PasswordChange(AuthTest):
    def test_changed_password_disconnects_on_reload(self):
        d = tempfile.mkdtemp()
        pw = os.path.join(d, "passwd")
        make_pwfile(pw, [("erin", "old"), ("frank", "same")])
        self.start("listener {port} 127.0.0.1\npassword_file %s\n" % pw).start()
        erin = Sub(self.b.port, ["-u", "erin", "-P", "old", "-t", "t", "-i", "erin1"], timeout=30)
        frank = Sub(self.b.port, ["-u", "frank", "-P", "same", "-t", "t", "-i", "frank1"],
                    count=1, timeout=30)
        erin.ready()
        frank.ready()
        subprocess.run([PASSWD, "-I", "1000", "-b", pw, "erin", "new"], check=True,
                       capture_output=True)
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Client erin1 disconnected: the password of user 'erin' changed",
                        start=m)
        erin.kill()
        # frank's entry did not change: still connected and served
        pub(self.b.port, ["-u", "frank", "-P", "same", "-t", "t", "-m", "still"])
        self.assertEqual(frank.messages(), ["still"])


class MosquittoReadsOurFiles(AuthTest):
    def test_mosquitto_accepts_mqttd_passwd_file(self):
        """A file written by mqttd-passwd (default PBKDF2 iterations) works
        in Debian's mosquitto 2.0."""
        from harness import free_port
        d = tempfile.mkdtemp()
        os.chmod(d, 0o755)
        pw = os.path.join(d, "passwd")
        open(pw, "w").close()
        subprocess.run([PASSWD, "-b", pw, "gina", "secret"], check=True,
                       capture_output=True, timeout=60)
        os.chmod(pw, 0o644)  # mosquitto drops root to its own user
        port = free_port()
        conf = os.path.join(d, "m.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\npassword_file %s\n" % (port, pw))
        self.b = Broker("")  # for tearDown bookkeeping only
        self.b.start()
        mosq = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf],
                                stderr=subprocess.PIPE, text=True)
        try:
            for line in mosq.stderr:  # bounded by mosquitto's own start-up
                if "running" in line:
                    break
            else:
                self.fail("mosquitto did not start")
            pub(port, ["-u", "gina", "-P", "secret", "-t", "t", "-m", "x"])
            r = pub(port, ["-u", "gina", "-P", "wrong", "-t", "t", "-m", "x"], check=False)
            self.assertNotEqual(r.returncode, 0)
        finally:
            mosq.terminate()
            mosq.wait(timeout=10)


class MosquittoPasswdFiles(AuthTest):
    def test_file_from_mosquitto_passwd_loads(self):
        d = tempfile.mkdtemp()
        pw = os.path.join(d, "passwd")
        make_pwfile(pw, [("carol", "singer")], tool="mosquitto_passwd")
        self.start("listener {port} 127.0.0.1\npassword_file %s\n" % pw).start()
        pub(self.b.port, ["-u", "carol", "-P", "singer", "-t", "t", "-m", "x"])
        r = pub(self.b.port, ["-u", "carol", "-P", "nope", "-t", "t", "-m", "x"], check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_malformed_lines_skipped_with_warning(self):
        """Mosquitto 2.0.11: a line it cannot use is skipped, its user
        denied, the broker starts; mqttd names FILE:LINE as a warning."""
        d = tempfile.mkdtemp()
        pw = os.path.join(d, "passwd")
        make_pwfile(pw, [("carol", "singer")])
        with open(pw, "a") as f:
            f.write("dave:$7$notvalid\n")
        self.start("listener {port} 127.0.0.1\npassword_file %s\n" % pw).start()
        self.b.wait_log(r"%s:2: warning: malformed \$7\$ hash .*; entry ignored"
                        % pw)
        pub(self.b.port, ["-u", "carol", "-P", "singer", "-t", "t", "-m", "x"])
        r = pub(self.b.port, ["-u", "dave", "-P", "notvalid", "-t", "t", "-m", "x"],
                check=False)
        self.assertNotEqual(r.returncode, 0)
        # mqttd -t: a warning, exit status 0
        t = subprocess.run([MQTTD, "-t", "-c", self.b.conf_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertRegex(t.stderr, r"%s:2: warning: .*; entry ignored" % pw)

    def test_reload_logs_skipped_lines_as_warnings(self):
        """On SIGHUP the skipped lines are logged at warning level (JSON
        log: "level":"warning") and the reload goes on."""
        d = tempfile.mkdtemp()
        pw = os.path.join(d, "passwd")
        make_pwfile(pw, [("carol", "singer")])
        self.start("listener {port} 127.0.0.1\npassword_file %s\n"
                   "log_format json\n" % pw).start()
        with open(pw, "a") as f:
            f.write("no-colon-here\n")
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        line = self.b.wait_log(r"%s:2: warning: no ':'" % pw, start=m)
        self.assertIn('"level":"warning"', line)
        pub(self.b.port, ["-u", "carol", "-P", "singer", "-t", "t", "-m", "x"])

    def test_unreadable_password_file_is_config_error(self):
        """File-level problems (here a NUL byte) still refuse the start."""
        d = tempfile.mkdtemp()
        pw = os.path.join(d, "passwd")
        with open(pw, "wb") as f:
            f.write(b"da\0ve:$7$notvalid\n")
        self.start("listener {port} 127.0.0.1\npassword_file %s\n" % pw)
        self.b.start(expect_ready=False)
        self.assertNotEqual(self.b.proc.wait(timeout=10), 0)
        self.b.wait_log(r"%s:1: NUL byte" % pw)
        self.b.proc = None  # already exited; tearDown must not expect it alive
        self.b.alive = lambda: True


class Anonymous(AuthTest):
    def test_anonymous_false_refuses(self):
        self.start("listener {port} 127.0.0.1\nallow_anonymous false\n").start()
        r = pub(self.b.port, ["-t", "t", "-m", "x"], check=False)
        self.assertNotEqual(r.returncode, 0)
        self.b.wait_log(r"auth failed .*reason=")


ACL = """# anonymous: nothing
user alice
topic readwrite alice/#
topic read public/#
topic deny alice/secret
topic write bob/#

user bob
topic write public/#
topic read bob/#

pattern readwrite clients/%c/#
pattern read users/%u/#
"""


class Acls(AuthTest):
    def setUp(self):
        d = tempfile.mkdtemp()
        self.pw = os.path.join(d, "passwd")
        self.acl = os.path.join(d, "acl")
        make_pwfile(self.pw, [("alice", "a"), ("bob", "b")])
        with open(self.acl, "w") as f:
            f.write(ACL)
        self.start("listener {port} 127.0.0.1\npassword_file %s\nacl_file %s\n"
                   % (self.pw, self.acl)).start()

    def test_denied_publish_not_delivered(self):
        s = Sub(self.b.port, ["-u", "alice", "-P", "a", "-t", "public/#", "-v"], count=1)
        s.ready()
        m = self.b.mark()
        # bob may write public/x; alice may not write public/x
        pub(self.b.port, ["-u", "alice", "-P", "a", "-t", "public/x", "-m", "denied"])
        self.b.wait_log(r"acl denied .*client_id=\S+ username=alice topic=public/x action=publish", start=m)
        pub(self.b.port, ["-u", "bob", "-P", "b", "-t", "public/x", "-m", "allowed"])
        self.assertEqual(s.messages(), ["public/x allowed"])

    def test_denied_subscribe_gets_failure_code(self):
        r = Raw(self.b.port)
        r.connect(client_id="alice-dev", username="alice", password="a")
        r.send(subscribe_pkt("bob/#", qos=1, pid=3))
        self.assertEqual(r.recv_packet(), (0x90, struct.pack("!H", 3) + b"\x80"))
        r.send(subscribe_pkt("alice/x", qos=1, pid=4))
        self.assertEqual(r.recv_packet(), (0x90, struct.pack("!H", 4) + b"\x01"))
        self.b.wait_log(r"acl denied .*topic=bob/# action=subscribe")

    def test_deny_rule_wins(self):
        s = Sub(self.b.port, ["-u", "alice", "-P", "a", "-t", "alice/#", "-v"], count=1)
        s.ready()
        pub(self.b.port, ["-u", "alice", "-P", "a", "-t", "alice/secret", "-m", "no"])
        pub(self.b.port, ["-u", "alice", "-P", "a", "-t", "alice/open", "-m", "yes"])
        self.assertEqual(s.messages(), ["alice/open yes"])

    def test_pattern_client_id(self):
        from harness import publish_pkt
        r = Raw(self.b.port)
        r.connect(client_id="dev1", username="bob", password="b")
        r.send(subscribe_pkt("clients/dev1/#", qos=0, pid=1))
        self.assertEqual(r.recv_packet(), (0x90, b"\x00\x01\x00"))
        r.send(publish_pkt("clients/dev1/x", "mine"))
        first, body = r.recv_packet()
        self.assertEqual(first, 0x30)
        self.assertTrue(body.endswith(b"clients/dev1/xmine"))

    def test_CVE_2017_7650_wildcard_client_id_never_matches_pattern(self):
        r = Raw(self.b.port)
        r.connect(client_id="+", username="bob", password="b")
        r.send(subscribe_pkt("clients/+/#", qos=0, pid=1))
        self.assertEqual(r.recv_packet(), (0x90, b"\x00\x01\x80"))
        r.send(subscribe_pkt("clients/dev9/#", qos=0, pid=2))
        self.assertEqual(r.recv_packet(), (0x90, b"\x00\x02\x80"))

    def test_sys_read_only(self):
        r = Raw(self.b.port)
        r.connect(client_id="sys", username="alice", password="a")
        from harness import publish_pkt
        r.send(publish_pkt("$SYS/broker/fake", "x", qos=1, pid=9))
        self.assertEqual(r.recv_packet(), (0x40, b"\x00\x09"))
        self.b.wait_log(r"acl denied .*topic=\$SYS/broker/fake action=publish")

    def test_queued_messages_rechecked_at_delivery(self):
        from harness import packet
        r = Raw(self.b.port)
        r.connect(client_id="bobq", username="bob", password="b", clean=False)
        r.send(subscribe_pkt("bob/#", qos=1, pid=1))
        self.assertEqual(r.recv_packet(), (0x90, b"\x00\x01\x01"))
        r.send(packet(0xE0, b""))
        self.assertTrue(r.closed())
        self.b.wait_log(r"Client bobq disconnected")
        pub(self.b.port, ["-u", "alice", "-P", "a", "-t", "bob/q", "-m", "queued", "-q", "1"])
        with open(self.acl, "w") as f:
            f.write(ACL.replace("topic read bob/#", "topic read nothing/#"))
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        r = Raw(self.b.port)
        self.assertEqual(r.connect(client_id="bobq", username="bob", password="b",
                                   clean=False), b"\x01\x00")
        r.send(packet(0xC0, b""))
        self.assertEqual(r.recv_packet()[0], 0xD0, "queued message delivered after revoke")

    def test_sighup_reload_acl(self):
        s = Sub(self.b.port, ["-u", "bob", "-P", "b", "-t", "bob/#", "-v"], count=1, timeout=30)
        s.ready()
        with open(self.acl, "w") as f:
            f.write(ACL.replace("topic read bob/#", "topic read nothing/#"))
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        # revoked read access stops delivery to the already subscribed client
        pub(self.b.port, ["-u", "alice", "-P", "a", "-t", "alice/q", "-m", "ignored"])
        with open(self.acl, "w") as f:
            f.write(ACL + "user bob\ntopic write bob/#\n")
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        pub(self.b.port, ["-u", "bob", "-P", "b", "-t", "bob/now", "-m", "back"])
        self.assertEqual(s.messages(), ["bob/now back"])


if __name__ == "__main__":
    unittest.main()
