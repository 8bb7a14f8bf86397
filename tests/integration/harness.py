"""harness.py - start the real mqttd on free loopback ports and talk to it
with real clients (mosquitto_pub/mosquitto_sub, openssl s_client) and raw
sockets. Waits are event-driven: log lines and socket reads, each bounded
by a timeout; nothing sleeps for a fixed time to let something happen."""

import os
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

warnings.simplefilter("ignore", ResourceWarning)

MQTTD = os.environ.get("MQTTD_BIN", "build/mqttd")
PASSWD = os.environ.get("MQTTD_PASSWD_BIN", "build/mqttd-passwd")
THREADS = os.environ.get("MQTTD_THREADS", "")
SRC = os.environ.get("MQTTD_SOURCE_DIR", os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..")))
TIMEOUT = 10.0


_given_ports = set()


def free_port():
    """An ephemeral port that was free a moment ago (bind to 0), never one
    this process was given before: two calls in a row could otherwise get
    the same port from the kernel (a duplicate listener in one config)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given_ports:
            _given_ports.add(port)
            return port


class TempPki:
    """A development PKI (certs/mkcerts.sh) in a temporary directory, one
    per test module: PKI = TempPki(); setUpModule = PKI.make;
    tearDownModule = PKI.remove; PKI.path(name) names a file in PKI.dir."""

    def __init__(self, prefix="mqttd-certs-"):
        self.prefix = prefix
        self.dir = None

    def make(self):
        self.dir = tempfile.mkdtemp(prefix=self.prefix)
        subprocess.run(["bash", os.path.join(SRC, "certs", "mkcerts.sh"),
                        self.dir], check=True, capture_output=True, timeout=60)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


class LogLines:
    """The lines a child process writes to its stderr, collected by a
    reader thread, and event-driven waits for them. Users set self.proc
    (a Popen with stderr=PIPE, text=True) and call follow() after each
    start; the lines of earlier processes are kept (each ends with
    "<<EOF>>"). self.name names the process in failures. Used by Broker,
    the Mosquitto of test_bridge and the packaged daemon of
    test_package."""

    name = "mqttd"
    failure = AssertionError

    def follow(self):
        if not hasattr(self, "cond"):
            self.lines = []
            self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<<EOF>>")
            self.cond.notify_all()

    def wait_log(self, pattern, timeout=TIMEOUT, start=0):
        """Wait until a log line (from index start) matches; return it.
        Fails the test (raises self.failure) on timeout or when the
        process has ended without such a line."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] == "<<EOF>>"):
                    raise self.failure("%s: log line /%s/ not seen; log:\n%s" % (
                        self.name, pattern, "\n".join(self.lines[-40:])))
                self.cond.wait(left)

    def mark(self):
        """The index of the next line (for wait_log(start=...))."""
        with self.cond:
            return len(self.lines)

    def count(self, pattern, start=0):
        """How many lines from index start match pattern."""
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for l in self.lines[start:] if rx.search(l))

    def log_text(self):
        with self.cond:
            return "\n".join(self.lines)


class Broker(LogLines):
    """One mqttd process with a generated config. Collects its log lines."""

    def __init__(self, conf_text="", tls=False, listeners=None, extra_files=None):
        self.dir = tempfile.mkdtemp(prefix="mqttd-test-")
        self.port = free_port()
        self.lines = []
        self.cond = threading.Condition()
        self.conf_path = os.path.join(self.dir, "mqttd.conf")
        conf = conf_text.replace("{port}", str(self.port)).replace("{dir}", self.dir)
        if "{tlsport}" in conf:
            self.tlsport = free_port()
            conf = conf.replace("{tlsport}", str(self.tlsport))
        if "listener" not in conf:
            conf = "listener %d 127.0.0.1\nallow_anonymous true\n" % self.port + conf
        # MQTTD_THREADS=N runs the same tests with N event-loop threads
        # (configurations that set threads or persistence are left alone)
        if THREADS and "threads" not in conf and "persistence true" not in conf:
            conf += "\nthreads %s\n" % THREADS
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self, args=None, expect_ready=True, preexec_fn=None):
        """preexec_fn runs in the child before exec (e.g. to lower
        RLIMIT_NOFILE for a descriptor-exhaustion test)."""
        cmd = [MQTTD, "-c", self.conf_path] + (args or [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     errors="replace", preexec_fn=preexec_fn)
        self.follow()
        if expect_ready:
            self.wait_log(r"mqttd version .* starting")
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def alive(self):
        return self.proc.poll() is None

    def cpu_seconds(self):
        """User + system CPU time the broker process has used so far."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- real clients ----------------------------------------------------------

class Sub:
    """mosquitto_sub in the background; ready once SUBACK was received."""

    def __init__(self, port, args, count=None, timeout=TIMEOUT, host="127.0.0.1"):
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", host, "-p", str(port), "-d"] + args
        if count is not None:
            cmd += ["-C", str(count)]
        cmd += ["-W", str(int(timeout))]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     errors="replace")
        self.out = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.out.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.out.append("<<EOF>>")
            self.cond.notify_all()

    def wait_for(self, pattern, timeout=TIMEOUT):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.out:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.out and self.out[-1] == "<<EOF>>"):
                    raise AssertionError("mosquitto_sub: /%s/ not seen; output:\n%s"
                                         % (pattern, "\n".join(self.out[-30:])))
                self.cond.wait(left)

    def ready(self):
        return self.wait_for(r"received SUBACK")

    def messages(self, timeout=TIMEOUT):
        """Wait for exit (-C count reached or -W timeout) and return the
        non-debug output lines."""
        self.proc.wait(timeout=timeout + 5)
        with self.cond:
            while not self.out or self.out[-1] != "<<EOF>>":
                self.cond.wait(1)
            return [l for l in self.out[:-1] if not l.startswith("Client ")
                    and not l.startswith("Subscribed")
                    and l != "Timed out"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pub(port, args, check=True, host="127.0.0.1", timeout=TIMEOUT):
    cmd = ["mosquitto_pub", "-h", host, "-p", str(port)] + args
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("mosquitto_pub %s failed (%d): %s" % (
            args, r.returncode, r.stderr + r.stdout))
    return r


_pub_done_seq = 0


def pub_done(broker, args, host="127.0.0.1"):
    """mosquitto_pub, then wait until the broker has processed what it sent.
    Its DISCONNECT follows the PUBLISH on the same connection and the
    broker logs the disconnect only after the message is stored and handed
    to every thread, so a later subscriber on any connection (and any
    thread) sees it. A QoS 0 mosquitto_pub exits before the broker has read
    its bytes; without this, "publish retained, then subscribe" races."""
    global _pub_done_seq
    _pub_done_seq += 1
    cid = "pub-done-%d-%d" % (os.getpid(), _pub_done_seq)
    m = broker.mark()
    r = pub(broker.port, ["-i", cid] + args, host=host)
    broker.wait_log(r"Client %s disconnected" % re.escape(cid), start=m)
    return r


# ---- raw MQTT ----------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def mstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_pkt(client_id="raw", version=4, clean=True, keepalive=60,
                will=None, username=None, password=None, props=b""):
    flags = 0x02 if clean else 0
    payload = mstr(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += b"\x00"
        payload += mstr(topic) + mstr(msg)
    if username is not None:
        flags |= 0x80
        payload += mstr(username)
    if password is not None:
        flags |= 0x40
        payload += mstr(password)
    name = b"MQIsdp" if version == 3 else b"MQTT"
    vh = mstr(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += varint(len(props)) + props
    return packet(0x10, vh + payload)


def publish_pkt(topic, payload=b"", qos=0, retain=False, pid=1, version=4, props=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    body = mstr(topic)
    if qos:
        body += struct.pack("!H", pid)
    if version == 5:
        body += varint(len(props)) + props
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


def subscribe_pkt(topic, qos=0, pid=1, version=4, props=b""):
    body = struct.pack("!H", pid)
    if version == 5:
        body += varint(len(props)) + props
    return packet(0x82, body + mstr(topic) + bytes([qos]))


class Raw:
    """A raw TCP MQTT connection for malformed input and exact checks."""

    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def recv_packet(self, timeout=TIMEOUT):
        """Next whole packet as (first_byte, body), or None on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                mult, n, i = 1, 0, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        if len(self.buf) >= i + n:
                            pkt = (self.buf[0], self.buf[i:i + n])
                            self.buf = self.buf[i + n:]
                            return pkt
                        break
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no packet within %.1fs" % timeout)
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except ConnectionResetError:
                return None
            if not d:
                return None
            self.buf += d

    def connect(self, **kw):
        self.send(connect_pkt(**kw))
        p = self.recv_packet()
        assert p is not None, "closed instead of CONNACK"
        assert p[0] == 0x20, "expected CONNACK, got %r" % (p,)
        return p[1]

    def closed(self, timeout=TIMEOUT):
        """True when the broker closes the connection (EOF) within timeout;
        packets received before the EOF are discarded."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False
            if not d:
                return True

    def close(self):
        self.s.close()

    def abort(self):
        """Close with RST (no DISCONNECT, abnormal)."""
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


class BrokerTest(unittest.TestCase):
    """Base class: self.b is a started broker with CONF."""
    CONF = ""

    def setUp(self):
        self.b = Broker(self.CONF).start()

    def tearDown(self):
        alive = self.b.alive()
        rc = self.b.stop()
        self.assertTrue(alive, "mqttd died during the test:\n" + self.b.log_text())
        self.assertEqual(rc, 0, "mqttd exit status %r; log:\n%s" % (rc, self.b.log_text()))
        self.assertNotIn("ERROR: AddressSanitizer", self.b.log_text())
        self.assertNotIn("runtime error:", self.b.log_text())
        self.assertNotIn("WARNING: ThreadSanitizer", self.b.log_text())
