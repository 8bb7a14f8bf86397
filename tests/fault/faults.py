"""faults.py - fault-injection scenarios for mqttd, run by run-faults.sh.

    python3 faults.py SCENARIO

SCENARIO is one of: kill9-load, kill9-save, disk-full, sighup-storm.
Exit status 0 = passed, 1 = failed, 77 = skipped. Each scenario is bounded
in count and time, uses loopback only, and prints "RESULT:" lines with the
figures it measured (quoted in docs/security.md).

All waits are on events: broker log lines, socket reads, process exit.
Reuses tests/integration/harness.py (real daemon, free ports, raw MQTT)."""

import collections
import glob
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (SRC, Broker, Raw, packet,  # noqa: E402
                     publish_pkt, subscribe_pkt)

AUTOSAVE = 1          # autosave_interval used everywhere (seconds)
SANITIZED = bool(os.environ.get("MQTTD_SANITIZED"))


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def result(msg):
    print("RESULT: " + msg, flush=True)


# ---- broker helpers ---------------------------------------------------------

class PBroker(Broker):
    """A Broker that can be killed and restarted on the same port and
    configuration."""

    def restart(self):
        with self.cond:
            self.lines.append("<<RESTART>>")
            m = len(self.lines)
        self.start(expect_ready=False)
        self.wait_log(r"mqttd version .* starting", start=m)
        return m

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        # the reader thread sees EOF; wait for it so marks stay ordered
        self.reader.join(timeout=10)

    def pid(self):
        return self.proc.pid


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def sync(r, timeout=60):
    """PINGREQ/PINGRESP; returns the packets that came before the PINGRESP."""
    r.send(packet(0xC0, b""))
    got = []
    while True:
        p = r.recv_packet(timeout=timeout)
        check(p is not None, "connection closed while waiting for PINGRESP")
        if p[0] == 0xD0:
            return got
        got.append(p)


def snapshot_valid(path):
    """True when the file has the magic and a matching SHA-256 trailer."""
    with open(path, "rb") as f:
        data = f.read()
    return (len(data) >= 44 and data[:8] == b"MQTTDDB\0"
            and hashlib.sha256(data[:-32]).digest() == data[-32:])


def wait_save(b, start, timeout=20):
    return b.wait_log(r"Saved the persistence file|Saving the persistence "
                      r"file .* failed", start=start, timeout=timeout)


def pconf(extra=""):
    return ("persistence true\npersistence_location {dir}/\n"
            "autosave_interval %d\nmax_queued_messages 0\n" % AUTOSAVE + extra)


def orphan_savers(conf_path, exclude):
    """Pids of mqttd processes for conf_path other than exclude (a save
    child left running after its parent was killed)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if conf_path.encode() in cmd:
            out.append(int(d))
    return out


# ---- scenario 1: kill -9 under QoS 1/2 load ---------------------------------

class Publisher(threading.Thread):
    """Publishes QoS 1 and QoS 2 messages alternately with a window of 50
    unacknowledged ones, and records the monotonic time of each
    acknowledgement (PUBACK for QoS 1, PUBREC for QoS 2: the broker owns the
    message from then on)."""

    WINDOW = 50

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = {}      # "q1-000001" -> time
        self.sent = 0
        self.stop = False
        self.error = None

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - the broker is killed under us
            self.error = e

    def _run(self):
        r = Raw(self.port)
        r.connect(client_id="fault-pub")
        pending = {}         # pid -> name
        n = 0
        while not self.stop:
            while len(pending) < self.WINDOW and not self.stop:
                n += 1
                qos = 1 if n % 2 else 2
                name = "q%d-%06d" % (qos, n)
                pid = n % 65535 + 1
                pending[pid] = name
                r.send(publish_pkt("load/q%d" % qos, name, qos=qos, pid=pid))
                self.sent += 1
            p = r.recv_packet(timeout=10)
            if p is None:
                return
            first, body = p
            pid = struct.unpack("!H", body[:2])[0]
            if first == 0x40 or first == 0x50:
                self.acked[pending.get(pid)] = time.monotonic()
                if first == 0x50:
                    r.send(packet(0x62, body[:2]))
                    continue
                pending.pop(pid, None)
            elif first == 0x70:
                pending.pop(pid, None)


def drain(port, cid):
    """Reconnect the persistent subscriber and take everything queued,
    completing QoS 1 and QoS 2 flows. Returns the payloads in order."""
    r = Raw(port)
    ack = r.connect(client_id=cid, clean=False)
    check(ack == b"\x01\x00", "session not restored after restart: %r" % ack)
    got = []
    while True:
        pk = sync(r)
        if not pk:
            break
        for first, body in pk:
            if first & 0xF0 == 0x30:
                qos = (first >> 1) & 3
                tl = struct.unpack("!H", body[:2])[0]
                pid = body[2 + tl:4 + tl]
                got.append(body[4 + tl:].decode())
                r.send(packet(0x40 if qos == 1 else 0x50, pid))
            elif first == 0x62:
                r.send(packet(0x70, body[:2]))
    r.close()
    return got


def kill9_load():
    b = PBroker(pconf("max_inflight_messages 1000\n"))
    b.start()
    try:
        s = Raw(b.port)
        s.connect(client_id="fault-sub", clean=False)
        s.send(subscribe_pkt("load/#", qos=2))
        check(s.recv_packet()[0] == 0x90, "no SUBACK")
        s.send(packet(0xE0, b""))
        check(s.closed(), "subscriber not closed after DISCONNECT")
        # the first autosave during the load puts the session on disk
        # (a SUBSCRIBE alone does not trigger one: see kill9-session)
        pub = Publisher(b.port)
        pub.start()
        # let the load run through a few autosaves, then kill -9
        for _ in range(4):
            wait_save(b, b.mark())
        t_kill = time.monotonic()
        b.kill9()
        pub.stop = True
        pub.join(timeout=15)
        check(not pub.is_alive(), "publisher thread did not stop")
        orphans = orphan_savers(b.conf_path, {os.getpid()})
        b.restart()
        check(b.alive(), "broker did not restart")
        got = drain(b.port, "fault-sub")
        cutoff = t_kill - (AUTOSAVE + 1)
        old = {n for n, t in pub.acked.items() if n and t < cutoff}
        recent = {n for n, t in pub.acked.items() if n and t >= cutoff}
        delivered = set(got)
        lost_old = sorted(old - delivered)
        lost_recent = sorted(recent - delivered)
        counts = collections.Counter(got)
        dup2 = sorted(n for n, k in counts.items() if n.startswith("q2-") and k > 1)
        dup1 = sum(k - 1 for n, k in counts.items() if n.startswith("q1-"))
        order_ok = all(int(a[3:]) < int(c[3:]) for a, c in zip(
            [n for n in got if n.startswith("q1")],
            [n for n in got if n.startswith("q1")][1:]))
        result("kill -9 under load: %d published, %d acknowledged, %d acked "
               "> %ds before the kill, %d delivered after restart; lost: %d "
               "old (must be 0), %d of %d in the last %ds; QoS 2 duplicates %d; "
               "QoS 1 duplicates %d; orphan save children at restart: %d"
               % (pub.sent, len(pub.acked), len(old), AUTOSAVE + 1, len(delivered),
                  len(lost_old), len(lost_recent), len(recent), AUTOSAVE + 1,
                  len(dup2), dup1, len(orphans)))
        check(len(old) > 100, "too little load before the cutoff (%d)" % len(old))
        check(not lost_old, "acknowledged messages lost: %s" % lost_old[:10])
        check(not dup2, "QoS 2 messages delivered twice: %s" % dup2[:10])
        check(order_ok, "QoS 1 messages out of order after restart")
        check("moved it to" not in b.log_text(), "snapshot was moved aside")
    finally:
        stop(b)


# ---- scenario 1b: session changes are autosaved ---------------------------

def kill9_session():
    """Snapshot mode bounds the loss window by autosave_interval for every
    kind of change, not only for published messages: a new persistent
    session with its subscription, and a queue drained by the subscriber,
    must be on disk within autosave_interval (+1 s slack)."""
    b = PBroker(pconf())
    b.start()
    try:
        s = Raw(b.port)
        s.connect(client_id="ks-sub", clean=False)
        s.send(subscribe_pkt("ks/t", qos=2))
        check(s.recv_packet()[0] == 0x90, "no SUBACK")
        s.send(packet(0xE0, b""))
        check(s.closed(), "subscriber not closed after DISCONNECT")
        m = b.mark()
        try:
            b.wait_log(r"Saved the persistence file", start=m, timeout=AUTOSAVE + 2)
            saved_sub = True
        except AssertionError:
            saved_sub = False
        b.kill9()
        b.restart()
        r = Raw(b.port)
        ack = r.connect(client_id="ks-sub", clean=False)
        r.close()
        sub_ok = ack == b"\x01\x00"
        # part 2: 20 QoS 2 messages queued, saved, then drained (completed);
        # after a save window and kill -9 they must not come back
        if not sub_ok:
            s = Raw(b.port)
            s.connect(client_id="ks-sub", clean=False)
            s.send(subscribe_pkt("ks/t", qos=2))
            s.recv_packet()
            s.close()
        p = Raw(b.port)
        p.connect(client_id="ks-pub")
        for i in range(20):
            p.send(publish_pkt("ks/t", "m%02d" % i, qos=1, pid=i + 1))
        sync(p)
        p.close()
        m = b.mark()
        b.wait_log(r"Saved the persistence file", start=m, timeout=AUTOSAVE + 2)
        got = drain(b.port, "ks-sub")
        check(len(got) == 20, "queued messages: %d of 20 delivered" % len(got))
        m = b.mark()
        try:
            b.wait_log(r"Saved the persistence file", start=m, timeout=AUTOSAVE + 2)
            saved_drain = True
        except AssertionError:
            saved_drain = False
        b.kill9()
        b.restart()
        again = drain(b.port, "ks-sub")
        result("autosave of session changes: new session + SUBSCRIBE saved "
               "within %ds: %s, session present after kill -9: %s; drained "
               "queue saved: %s, QoS 2 messages delivered again after kill -9: "
               "%d of 20" % (AUTOSAVE + 2, saved_sub, sub_ok, saved_drain, len(again)))
        check(saved_sub and sub_ok, "a new persistent session and its "
              "subscription were not autosaved (no change counted)")
        check(not again, "completed QoS 2 messages redelivered after kill -9 "
              "(%d): draining a queue is not counted as a change" % len(again))
    finally:
        stop(b)


# ---- scenario 2: kill -9 during a save --------------------------------------

def kill9_save(rounds=int(os.environ.get("FAULT_SAVE_ROUNDS", "20"))):
    # ~4 MB of retained state so a save takes long enough to be hit
    b = PBroker(pconf())
    b.start()
    db = os.path.join(b.dir, "mqttd.db")
    try:
        p = Raw(b.port)
        p.connect(client_id="filler")
        blob = b"z" * 2048
        for k in range(20):
            p.send(b"".join(publish_pkt("fill/%d/%d" % (k, j), blob, retain=True)
                            for j in range(100)))
        sync(p)
        p.close()
        m = b.mark()
        b.signal(signal.SIGUSR1)
        wait_save(b, m)
        check(snapshot_valid(db), "first snapshot invalid")
        outcomes = {"old": 0, "new": 0}
        prev = None          # the gen value the last restart loaded
        orphans_seen = 0
        for i in range(rounds):
            p = Raw(b.port)
            p.connect(client_id="gen")
            p.send(publish_pkt("gen", "%d" % i, retain=True))
            sync(p)
            p.close()
            b.signal(signal.SIGUSR1)
            b.kill9()
            orphans = orphan_savers(b.conf_path, {os.getpid()})
            orphans_seen += bool(orphans)
            m = b.restart()
            check(b.alive(), "round %d: broker did not restart" % i)
            text = "\n".join(b.lines[m:])
            check("corrupt" not in text and "moved it to" not in text,
                  "round %d: snapshot moved aside:\n%s" % (i, text))
            # what the restarted broker loaded: the gen marker and the fill
            s = Raw(b.port)
            s.connect(client_id="check")
            s.send(subscribe_pkt("gen", pid=1))
            s.send(subscribe_pkt("fill/19/99", pid=2))
            pk = sync(s)
            vals = [body[5:].decode() for f, body in pk if f & 0xF0 == 0x30
                    and body[2:5] == b"gen"]
            fill = [1 for f, body in pk if f & 0xF0 == 0x30 and body.endswith(blob)]
            s.close()
            check(fill, "round %d: retained state lost" % i)
            loaded = int(vals[0]) if vals else None
            check(loaded in (i, prev), "round %d: loaded gen %r, expected the "
                  "new (%d) or the previous (%r) snapshot" % (i, loaded, i, prev))
            outcomes["new" if loaded == i else "old"] += 1
            prev = loaded
            # the file on disk is whole (old or new), never torn
            check(snapshot_valid(db), "round %d: snapshot on disk invalid" % i)
        tmp = glob.glob(db + ".tmp.*")
        result("kill -9 right after SIGUSR1, %d rounds (4 MB snapshot): %d loaded "
               "the new snapshot, %d the previous one, 0 corrupt; a save child "
               "outlived its killed parent in %d rounds; %d temporary files left"
               % (rounds, outcomes["new"], outcomes["old"], orphans_seen, len(tmp)))
    finally:
        stop(b)


# ---- scenario 3: disk full during a save ------------------------------------

def disk_full():
    if os.geteuid() != 0:
        print("SKIP: disk-full needs root to mount a tmpfs")
        return 77
    root = tempfile.mkdtemp(prefix="mqttd-fault-fs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", root],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(root)
        print("SKIP: cannot mount a tmpfs here: %s" % r.stderr.strip())
        return 77
    try:
        b = PBroker(pconf().replace("{dir}/", root + "/"))
        b.start()
        db = os.path.join(root, "mqttd.db")
        try:
            p = Raw(b.port)
            p.connect(client_id="df")
            p.send(publish_pkt("df/small", "small", retain=True))
            sync(p)
            m = b.mark()
            b.signal(signal.SIGUSR1)
            check("Saved" in wait_save(b, m), "first save failed")
            with open(db, "rb") as f:
                before = f.read()
            # 6 x 50 KB retained: the snapshot no longer fits in 256 KiB
            for i in range(6):
                p.send(publish_pkt("df/big%d" % i, b"B" * 50000, retain=True))
            sync(p)
            m = b.mark()
            b.signal(signal.SIGUSR1)
            line = wait_save(b, m)
            check("failed" in line, "save on a full disk did not fail: " + line)
            check("No space left on device" in b.log_text(), "reason not logged")
            with open(db, "rb") as f:
                check(f.read() == before, "old snapshot changed")
            check(not glob.glob(db + ".tmp.*"), "temporary file left behind")
            # keeps serving meanwhile: a subscriber gets a live message
            s = Raw(b.port)
            s.connect(client_id="df-sub")
            s.send(subscribe_pkt("df/live", qos=1))
            check(s.recv_packet()[0] == 0x90, "no SUBACK")
            p.send(publish_pkt("df/live", "alive", qos=1, pid=3))
            got = s.recv_packet()
            check(got and got[1].endswith(b"alive"), "live message not delivered")
            # the state is still unsaved: autosave should try again within
            # autosave_interval (it fails again while the disk is full)
            m = b.mark()
            try:
                wait_save(b, m, timeout=AUTOSAVE + 2)
                retried = True
            except AssertionError:  # no attempt
                retried = False
            # free the space: the next autosave succeeds
            for i in range(6):
                p.send(publish_pkt("df/big%d" % i, b"", retain=True))
            sync(p)
            m = b.mark()
            b.wait_log(r"Saved the persistence file", start=m, timeout=20)
            check(snapshot_valid(db), "snapshot after recovery invalid")
            b.kill9()
            b.restart()
            s = Raw(b.port)
            s.connect(client_id="df-check")
            s.send(subscribe_pkt("df/#", pid=1))
            topics = sorted(body[2:2 + struct.unpack("!H", body[:2])[0]].decode()
                            for f, body in sync(s) if f & 0xF0 == 0x30)
            s.close()
            check(topics == ["df/small"], "after kill -9 the broker loaded %r"
                  % topics)
            nfail = b.log_text().count("failed; the previous file is kept")
            result("disk full (256 KiB tmpfs): save failed with ENOSPC, old file "
                   "kept byte for byte, no temporary file, broker served; %d "
                   "failed-save line(s); autosave retried the unsaved state "
                   "while still full: %s; saved after space was freed, kill -9 "
                   "and restart loaded it" % (nfail, retried))
            check(retried, "after a failed save, autosave never retried: the "
                  "unsaved state waits for the next change")
        finally:
            stop(b)
    finally:
        subprocess.run(["umount", "-l", root], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


# ---- scenario 4: SIGHUP storm with certificate rotation ---------------------

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def new_server_cert(certs, name):
    """A fresh key and certificate for localhost signed by the test CA."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", name + ".key", cwd=certs)
    openssl("req", "-new", "-key", name + ".key", "-subj", "/O=mqttd test/CN=localhost",
            "-config", "ca.cnf", "-out", name + ".csr", cwd=certs)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", "0x" + os.urandom(8).hex(), "-days", "30",
            "-extfile", "ca.cnf", "-extensions", "ext_server",
            "-out", name + ".crt", cwd=certs)
    out = subprocess.run(["openssl", "x509", "-in", name + ".crt", "-noout", "-serial"],
                         cwd=certs, capture_output=True, text=True, check=True)
    return out.stdout.strip().split("=")[1].upper().lstrip("0")


def served_serial(port, certs):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", os.path.join(certs, "ca.crt"),
                        "-servername", "localhost", "-verify_return_error"],
                       input=b"", capture_output=True, timeout=20)
    check(r.returncode == 0, "TLS handshake failed: %s" % r.stdout[-500:])
    x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=r.stdout,
                       capture_output=True, timeout=20)
    return x.stdout.decode().strip().split("=")[1].upper().lstrip("0")


class LightLoad(threading.Thread):
    """One QoS 1 message every few ms to a subscriber, counting deliveries."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = False
        self.sent = self.got = 0
        self.error = None

    def run(self):
        pace = threading.Event()
        try:
            s = Raw(self.port)
            s.connect(client_id="hup-sub")
            s.send(subscribe_pkt("hup/t", qos=1))
            s.recv_packet()
            p = Raw(self.port)
            p.connect(client_id="hup-pub")
            while not self.stop:
                self.sent += 1
                p.send(publish_pkt("hup/t", "m", qos=1, pid=self.sent % 65535 + 1))
                check(p.recv_packet() is not None, "publisher closed")
                first, body = s.recv_packet()
                check(first & 0xF0 == 0x30, "subscriber got %r" % first)
                s.send(packet(0x40, body[7:9]))
                self.got += 1
                pace.wait(0.005)  # light load: ~200 messages a second
        except Exception as e:  # noqa: BLE001
            self.error = e


def sighup_storm(n=int(os.environ.get("FAULT_HUPS", "500"))):
    certs = tempfile.mkdtemp(prefix="mqttd-fault-certs-")
    subprocess.run(["bash", os.path.join(SRC, "certs", "mkcerts.sh"), certs],
                   check=True, capture_output=True, timeout=60)
    live_crt = os.path.join(certs, "live.crt")
    live_key = os.path.join(certs, "live.key")
    shutil.copy(os.path.join(certs, "server.crt"), live_crt)
    shutil.copy(os.path.join(certs, "server.key"), live_key)
    rotations = [new_server_cert(certs, "rot%d" % i) for i in range(5)]
    b = PBroker("allow_anonymous true\nlistener {port} 127.0.0.1\n"
                "listener {tlsport} 127.0.0.1\ncertfile %s\nkeyfile %s\n"
                % (live_crt, live_key))
    b.start()
    load = LightLoad(b.port)
    try:
        load.start()

        def hup():
            m = b.mark()
            b.signal(signal.SIGHUP)
            line = b.wait_log(r"Configuration reloaded|Reload failed", start=m)
            check("reloaded" in line, "reload failed:\n" + "\n".join(b.lines[m:]))

        for _ in range(20):           # warm-up
            hup()
        fd0, rss0 = fd_count(b.pid()), rss_kib(b.pid())
        rot = 0
        for i in range(n):
            if i % 100 == 50:         # rotate: new key + certificate on disk
                name = "rot%d" % (rot % len(rotations))
                shutil.copy(os.path.join(certs, name + ".key"), live_key + ".new")
                shutil.copy(os.path.join(certs, name + ".crt"), live_crt + ".new")
                os.replace(live_key + ".new", live_key)
                os.replace(live_crt + ".new", live_crt)
                hup()
                got = served_serial(b.tlsport, certs)
                want = rotations[rot % len(rotations)]
                check(got == want, "after rotation %d the broker serves "
                      "serial %s, expected %s" % (rot, got, want))
                rot += 1
            else:
                hup()
        load.stop = True
        load.join(timeout=20)
        check(load.error is None, "light load failed: %r" % load.error)
        fd1, rss1 = fd_count(b.pid()), rss_kib(b.pid())
        r = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(b.tlsport),
                            "--cafile", os.path.join(certs, "ca.crt"), "-t", "hup/end",
                            "-m", "x"], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "TLS client failed after the storm: " + r.stderr)
        result("%d SIGHUP reloads, %d certificate rotations, %d QoS 1 messages "
               "delivered meanwhile: fds %d -> %d, RSS %d -> %d KiB (%+d)"
               % (n + 20, rot, load.got, fd0, fd1, rss0, rss1, rss1 - rss0))
        check(fd1 <= fd0 + 2, "fd count grew from %d to %d" % (fd0, fd1))
        if not SANITIZED:
            check(rss1 - rss0 < 2048, "RSS grew by %d KiB" % (rss1 - rss0))
    finally:
        load.stop = True
        stop(b)
        shutil.rmtree(certs, ignore_errors=True)


# ---- main -------------------------------------------------------------------

def stop(b):
    """Stop the broker and check it ended cleanly. When a failure is already
    propagating (called from a finally clause), only stop it."""
    if b.proc is None:
        return
    if sys.exc_info()[0] is not None:
        b.stop()
        return
    alive = b.alive()
    log = b.log_text()
    rc = b.stop()
    if "AddressSanitizer" in log or "runtime error:" in log:
        raise Failed("sanitizer report:\n" + log[-3000:])
    if not alive:
        raise Failed("broker died:\n" + log[-3000:])
    if rc != 0:
        raise Failed("broker exit status %r:\n%s" % (rc, log[-3000:]))


SCENARIOS = {
    "kill9-load": kill9_load,
    "kill9-session": kill9_session,
    "kill9-save": kill9_save,
    "disk-full": disk_full,
    "sighup-storm": sighup_storm,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: faults.py {%s}" % "|".join(SCENARIOS), file=sys.stderr)
        return 2
    try:
        rc = SCENARIOS[sys.argv[1]]()
    except (Failed, AssertionError) as e:
        print("FAIL: %s" % e)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
