"""test_systemd.py - the systemd integration: the unit files pass
`systemd-analyze verify`, the daemon speaks the sd_notify protocol
(READY=1, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM)
from its main process, and a daemon started as root drops to `user`.

Waits are event-driven: datagram recv and log lines, each with a timeout.

Run: MQTTD_BIN=build/mqttd python3 -m unittest test_systemd -v
"""

import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import unittest

import harness
from harness import Broker, TIMEOUT

UNIT_DIR = os.path.join(harness.SRC, "systemd")
MAN_DIR = os.path.join(harness.SRC, "docs", "man")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def unit_text(name):
    with open(os.path.join(UNIT_DIR, name)) as f:
        return f.read()


class UnitFileTest(unittest.TestCase):
    """systemd/mqttd.service and mqttd.socket are valid unit files."""

    def setUp(self):
        if SYSTEMD_ANALYZE is None:
            self.skipTest("systemd-analyze not found (apt-get install systemd)")
        self.dir = tempfile.mkdtemp(prefix="mqttd-unit-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.bin = os.path.abspath(harness.MQTTD)
        self.assertTrue(os.access(self.bin, os.X_OK), "no binary " + self.bin)
        self.conf = os.path.join(self.dir, "mqttd.conf")
        with open(self.conf, "w") as f:
            f.write("listener 1883 127.0.0.1\nallow_anonymous true\n")
        # the unit as shipped, but with ExecStart= pointing at the built
        # binary: verify checks that the executable exists
        text = unit_text("mqttd.service")
        text, n = re.subn(r"(?m)^ExecStart=/usr/sbin/mqttd -c \S+$",
                          "ExecStart=%s -c %s" % (self.bin, self.conf), text)
        self.assertEqual(n, 1, "ExecStart=/usr/sbin/mqttd -c ... not found")
        self.service = os.path.join(self.dir, "mqttd.service")
        with open(self.service, "w") as f:
            f.write(text)
        self.socket = os.path.join(self.dir, "mqttd.socket")
        with open(self.socket, "w") as f:
            f.write(unit_text("mqttd.socket"))
        # man:mqttd(8) etc. in Documentation= are looked up with man(1):
        # point MANPATH at the pages in docs/man
        self.env = dict(os.environ)
        self.man = shutil.which("man") is not None
        if self.man:
            mp = os.path.join(self.dir, "man")
            for page in os.listdir(MAN_DIR):
                sect = os.path.join(mp, "man" + page.rsplit(".", 1)[1])
                os.makedirs(sect, exist_ok=True)
                os.symlink(os.path.join(MAN_DIR, page), os.path.join(sect, page))
            self.env["MANPATH"] = mp

    def verify(self, *units):
        cmd = [SYSTEMD_ANALYZE, "verify",
               "--man=" + ("yes" if self.man else "no")] + list(units)
        r = subprocess.run(cmd, capture_output=True, text=True,
                           cwd=self.dir, env=self.env, timeout=60)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, "%s failed:\n%s" % (cmd, out))
        # unknown or misspelt settings are only warnings ("Unknown key
        # name ..., ignoring"): any message naming our units is a failure
        ours = [l for l in out.splitlines()
                if "mqttd.service" in l or "mqttd.socket" in l]
        self.assertEqual(ours, [], "systemd-analyze verify:\n" + out)

    def test_verify_service(self):
        self.verify(self.service)

    def test_verify_service_and_socket(self):
        self.verify(self.service, self.socket)


class UnitContentTest(unittest.TestCase):
    """Settings the daemon relies on (no systemd needed)."""

    def test_service_settings(self):
        """The settings the daemon relies on are present and enabled."""
        text = unit_text("mqttd.service")
        lines = set(l.strip() for l in text.splitlines()
                    if l.strip() and not l.lstrip().startswith("#"))
        for want in ("Type=notify",
                     "ExecStart=/usr/sbin/mqttd -c /etc/mqttd/mqttd.conf",
                     "ExecReload=/bin/kill -HUP $MAINPID",
                     "User=mqttd", "Group=mqttd", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "StateDirectory=mqttd",
                     "LimitNOFILE=65536", "Restart=on-failure",
                     "WatchdogSec=30s"):
            self.assertIn(want, lines)
        # -d would fork away from the main process, whose notifications
        # are the only ones accepted
        self.assertNotIn(" -d", next(l for l in lines
                                     if l.startswith("ExecStart=")))


class NotifyListener:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET.
    Records the sender's pid of each message (SCM_CREDENTIALS), as systemd
    does for NotifyAccess=main."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.s.bind(path)

    def recv(self, timeout=TIMEOUT):
        """(message dict, sender pid); fails the test on timeout."""
        self.s.settimeout(timeout)
        try:
            data, anc, _, _ = self.s.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise AssertionError("no sd_notify message within %.0fs" % timeout)
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        msg = {}
        for line in data.decode().split("\n"):
            if line:
                k, _, v = line.partition("=")
                msg[k] = v
        return msg, pid

    def close(self):
        self.s.close()


class NotifyTest(unittest.TestCase):
    """The sd_notify protocol, as a Type=notify unit sees it."""

    def start(self, conf="", abstract=False, watchdog_usec=None):
        # stay the test's user even if an "mqttd" user exists here: the
        # notify socket lives in a private temporary directory
        me = pwd.getpwuid(os.geteuid()).pw_name
        self.b = Broker("user %s\n" % me + conf)
        if abstract:
            name = "mqttd-test-notify-%d-%d" % (os.getpid(), id(self))
            addr, env = "\0" + name, "@" + name
        else:
            addr = env = os.path.join(self.b.dir, "notify")
        self.n = NotifyListener(addr)
        self.addCleanup(self.n.close)
        os.environ["NOTIFY_SOCKET"] = env
        if watchdog_usec:
            os.environ["WATCHDOG_USEC"] = str(watchdog_usec)
        try:
            self.b.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
            os.environ.pop("WATCHDOG_USEC", None)
        self.addCleanup(self.b.stop)

    def expect(self, key, value=None):
        msg, pid = self.n.recv()
        self.assertIn(key, msg, "expected %s=, got %r" % (key, msg))
        if value is not None:
            self.assertEqual(msg[key], value, "message %r" % (msg,))
        self.assertEqual(pid, self.b.proc.pid,
                         "sent by pid %r, not the main process" % (pid,))
        return msg

    def stop_and_check(self):
        self.b.signal(signal.SIGTERM)
        self.expect("STOPPING", "1")
        self.assertEqual(self.b.proc.wait(timeout=TIMEOUT), 0,
                         self.b.log_text())
        self.assertNotIn("ERROR: AddressSanitizer", self.b.log_text())
        self.assertNotIn("runtime error:", self.b.log_text())

    def test_ready_reload_stop(self):
        self.start()
        msg = self.expect("READY", "1")
        self.assertEqual(msg.get("STATUS"), "running")
        # READY=1 means the listeners are bound: a client gets in now
        r = harness.Raw(self.b.port)
        self.assertEqual(r.connect()[1], 0)
        r.close()

        self.b.signal(signal.SIGHUP)
        self.expect("RELOADING", "1")
        msg = self.expect("READY", "1")
        self.assertIn("reloaded", msg.get("STATUS", ""))
        self.assertTrue(self.b.alive())

        self.stop_and_check()

    def test_failed_reload_still_ready(self):
        """A bad configuration on SIGHUP keeps the old one; systemd must
        still get READY=1 or the unit would hang in 'reloading'."""
        self.start()
        self.expect("READY", "1")
        with open(self.b.conf_path, "a") as f:
            f.write("max_qos 7\n")
        self.b.signal(signal.SIGHUP)
        self.expect("RELOADING", "1")
        msg = self.expect("READY", "1")
        self.assertIn("reload failed", msg.get("STATUS", ""))
        r = harness.Raw(self.b.port)
        self.assertEqual(r.connect()[1], 0)
        r.close()
        self.stop_and_check()

    def test_watchdog_pings(self):
        """With WatchdogSec (WATCHDOG_USEC) the loop sends WATCHDOG=1."""
        self.start(watchdog_usec=200000)
        self.expect("READY", "1")
        for _ in range(3):
            self.expect("WATCHDOG", "1")
        self.stop_and_check_after_pings()

    def stop_and_check_after_pings(self):
        self.b.signal(signal.SIGTERM)
        while True:
            msg, _ = self.n.recv()
            if "STOPPING" in msg:
                break
            self.assertEqual(msg, {"WATCHDOG": "1"})
        self.assertEqual(self.b.proc.wait(timeout=TIMEOUT), 0, self.b.log_text())

    def test_abstract_socket(self):
        """NOTIFY_SOCKET=@name is an abstract-namespace socket."""
        self.start(abstract=True)
        self.expect("READY", "1")
        self.stop_and_check()


class PrivilegeDropTest(unittest.TestCase):
    """Started as root, mqttd binds, then becomes `user`."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to test dropping privileges")
        try:
            self.nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user 'nobody'")

    def status(self, pid):
        out = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.split()
        return out

    def test_user_nobody(self):
        b = Broker("user nobody\n").start()
        self.addCleanup(b.stop)
        b.wait_log(r"Dropped privileges to user 'nobody'")
        st = self.status(b.proc.pid)
        uid, gid = str(self.nobody.pw_uid), str(self.nobody.pw_gid)
        self.assertEqual(st["Uid"], [uid] * 4, "real, effective, saved, fs")
        self.assertEqual(st["Gid"], [gid] * 4)
        self.assertNotIn("0", st.get("Groups", []))
        self.assertEqual(self.nobody.pw_uid, 65534)
        # it still serves on the port it bound as root
        r = harness.Raw(b.port)
        self.assertEqual(r.connect()[1], 0)
        r.close()
        b.signal(signal.SIGTERM)
        self.assertEqual(b.proc.wait(timeout=TIMEOUT), 0, b.log_text())

    def test_missing_user_is_an_error(self):
        b = Broker("user mqttd-no-such-user\n").start(expect_ready=False)
        self.addCleanup(b.stop)
        b.wait_log(r"Unable to drop privileges to 'mqttd-no-such-user'")
        self.assertEqual(b.proc.wait(timeout=TIMEOUT), 1)


if __name__ == "__main__":
    unittest.main()
