"""Persistence through the real daemon: retained messages and persistent
sessions survive a restart, SIGUSR1 and autosave write the snapshot, kill -9
keeps the last saved snapshot, a corrupt file is moved aside, and a save that
hits a full disk keeps the previous file.

Broker.stop() removes the broker's own directory, so the persistence
directory of each test is a separate tempfile.mkdtemp() shared by the
brokers that restart on it (each on a new port)."""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import Broker, Raw, Sub, pub, pub_done, subscribe_pkt

MAGIC = b"MQTTDDB\x00"


def conf(pdir, autosave=3600):
    return ("persistence true\npersistence_location %s/\n"
            "autosave_interval %d\n" % (pdir, autosave))


class PersistTest(unittest.TestCase):
    AUTOSAVE = 3600

    def setUp(self):
        self.pdir = tempfile.mkdtemp(prefix="mqttd-persist-")
        self.db = os.path.join(self.pdir, "mqttd.db")
        self.brokers = []

    def start(self, autosave=None):
        b = Broker(conf(self.pdir, self.AUTOSAVE if autosave is None
                        else autosave)).start()
        self.brokers.append(b)
        return b

    def stop(self, b):
        """Orderly stop (SIGTERM: synchronous save); checks the exit."""
        alive = b.alive()
        rc = b.stop()
        self.assertTrue(alive, "mqttd died:\n" + b.log_text())
        self.assertEqual(rc, 0, "exit status %r; log:\n%s" % (rc, b.log_text()))
        self.check_sanitizers(b)

    def check_sanitizers(self, b):
        text = b.log_text()
        self.assertNotIn("ERROR: AddressSanitizer", text)
        self.assertNotIn("runtime error:", text)

    def tearDown(self):
        for b in self.brokers:
            if b.proc and b.proc.poll() is None:
                self.stop(b)
            else:
                self.check_sanitizers(b)
                b.stop()
        shutil.rmtree(self.pdir, ignore_errors=True)

    def usr1_save(self, b):
        m = b.mark()
        b.signal(signal.SIGUSR1)
        b.wait_log(r"Saved the persistence file .*mqttd\.db", start=m)

    def pub_done(self, b, args):
        """mosquitto_pub, then wait until the broker has processed it (a
        signal sent right after mosquitto_pub exits could otherwise
        overtake it)."""
        pub_done(b, args)

    def retained(self, b, topic):
        """Payload retained on topic, or None: subscribe to topic and a
        sentinel; retained messages arrive before the live sentinel."""
        s = Sub(b.port, ["-t", topic, "-t", "sentinel/" + topic,
                         "-F", "%r %t %p"], count=1)
        s.ready()
        pub(b.port, ["-t", "sentinel/" + topic, "-m", "s"])
        (line,) = s.messages()
        if line.startswith("0 sentinel/"):
            return None
        self.assertTrue(line.startswith("1 %s " % topic), line)
        return line[len("1 %s " % topic):]


class Restart(PersistTest):
    def test_retained_survives_restart(self):
        b = self.start()
        self.pub_done(b, ["-t", "keep/r", "-m", "hello", "-r", "-q", "1"])
        self.stop(b)
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(8), MAGIC)
        b2 = self.start()
        b2.wait_log(r"Loaded the persistence file .*: 1 retained")
        s = Sub(b2.port, ["-t", "keep/#", "-F", "%r %t %p"], count=1)
        self.assertEqual(s.messages(), ["1 keep/r hello"])

    def test_persistent_session_gets_queued_messages(self):
        b = self.start()
        s = Sub(b.port, ["-t", "ps/t", "-q", "1", "-c", "-i", "psid"],
                count=1)
        s.ready()
        m = b.mark()
        s.kill()
        b.wait_log(r"Client psid closed its connection", start=m)
        for i in range(5):
            self.pub_done(b, ["-t", "ps/t", "-m", "m%d" % i, "-q", "1"])
        self.stop(b)
        b2 = self.start()
        b2.wait_log(r"Loaded the persistence file .*1 sessions")
        s = Sub(b2.port, ["-t", "ps/t", "-q", "1", "-c", "-i", "psid"],
                count=5)
        self.assertEqual(s.messages(), ["m%d" % i for i in range(5)])

    def test_unacked_inflight_resent_with_dup_after_restart(self):
        b = self.start()
        r = Raw(b.port)
        r.connect(client_id="inflid", clean=False)
        r.send(subscribe_pkt("if/t", qos=1, pid=1))
        self.assertEqual(r.recv_packet()[0], 0x90)
        self.pub_done(b, ["-t", "if/t", "-m", "unacked", "-q", "1"])
        first, body = r.recv_packet()
        self.assertEqual(first & 0xFE, 0x30 | 0x02)  # QoS 1, no DUP
        m = b.mark()
        r.abort()  # never PUBACKed
        b.wait_log(r"Client inflid closed its connection", start=m)
        self.stop(b)
        b2 = self.start()
        r = Raw(b2.port)
        r.connect(client_id="inflid", clean=False)
        first2, body2 = r.recv_packet()
        self.assertEqual(first2 & 0xFE, 0x30 | 0x08 | 0x02)  # DUP, QoS 1
        self.assertEqual(body2, body)  # same topic, packet id, payload
        r.close()

    def test_clean_session_not_saved(self):
        b = self.start()
        s = Sub(b.port, ["-t", "cs/t", "-q", "1", "-i", "cleanid"], count=1)
        s.ready()
        m = b.mark()
        s.kill()
        b.wait_log(r"Client cleanid closed its connection", start=m)
        self.stop(b)
        b2 = self.start()
        b2.wait_log(r"Loaded the persistence file .*0 sessions")


class Saving(PersistTest):
    def test_sigusr1_saves(self):
        b = self.start()
        self.assertFalse(os.path.exists(self.db))
        self.pub_done(b, ["-t", "u/r", "-m", "v", "-r"])
        self.usr1_save(b)
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(8), MAGIC)
        self.assertEqual(os.stat(self.db).st_mode & 0o777, 0o600)
        self.assertEqual(glob.glob(self.db + ".tmp.*"), [])

    def test_autosave_interval(self):
        b = self.start(autosave=1)
        m = b.mark()
        self.pub_done(b, ["-t", "auto/r", "-m", "v", "-r"])
        b.wait_log(r"Saved the persistence file", start=m)
        self.assertTrue(os.path.exists(self.db))

    def test_kill9_after_sigusr1_keeps_saved_state(self):
        b = self.start()
        self.pub_done(b, ["-t", "k/keep", "-m", "saved", "-r"])
        self.usr1_save(b)
        # after the snapshot: lost by kill -9 (autosave is an hour away)
        self.pub_done(b, ["-t", "k/lost", "-m", "unsaved", "-r"])
        b.proc.kill()
        b.proc.wait()
        b2 = self.start()
        self.assertEqual(self.retained(b2, "k/keep"), "saved")
        self.assertIsNone(self.retained(b2, "k/lost"))


class Corrupt(PersistTest):
    def test_corrupt_file_moved_aside(self):
        b = self.start()
        self.pub_done(b, ["-t", "c/r", "-m", "v", "-r"])
        self.stop(b)
        with open(self.db, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xFF
            f.seek(0)
            f.write(data)
        b2 = self.start()
        b2.wait_log(r"Persistence file .*mqttd\.db is corrupt .*moved it to "
                    r".*mqttd\.db\.corrupt-\d+")
        aside = glob.glob(self.db + ".corrupt-*")
        self.assertEqual(len(aside), 1)
        with open(aside[0], "rb") as f:
            self.assertEqual(f.read(), bytes(data))
        self.assertIsNone(self.retained(b2, "c/r"))
        # and it saves a fresh file again
        self.usr1_save(b2)
        self.assertTrue(os.path.exists(self.db))

    def test_garbage_and_empty_files(self):
        for content in (b"not a database at all", b""):
            with open(self.db, "wb") as f:
                f.write(content)
            b = self.start()
            b.wait_log(r"is corrupt")
            self.assertFalse(os.path.exists(self.db))
            self.stop(b)
            for p in glob.glob(self.db + ".corrupt-*"):
                os.unlink(p)


class DiskFull(PersistTest):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        # cleanups run last-in first-out: unmount, then remove the root
        root = self.pdir
        self.addCleanup(shutil.rmtree, root, True)
        self.pdir = os.path.join(root, "fs")
        self.db = os.path.join(self.pdir, "mqttd.db")
        os.mkdir(self.pdir)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k",
                            "tmpfs", self.pdir], capture_output=True,
                           text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", self.pdir],
                        capture_output=True)

    def test_full_disk_keeps_old_file(self):
        b = self.start()
        self.pub_done(b, ["-t", "d/small", "-m", "small", "-r"])
        self.usr1_save(b)
        with open(self.db, "rb") as f:
            before = f.read()
        big = os.path.join(b.dir, "big.bin")
        with open(big, "wb") as f:
            f.write(b"x" * (100 * 1024))
        self.pub_done(b, ["-t", "d/big", "-f", big, "-r"])
        m = b.mark()
        b.signal(signal.SIGUSR1)
        b.wait_log(r"Saving the persistence file .* failed; the previous "
                   r"file is kept", start=m)
        self.assertIn("No space left on device", b.log_text())
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(glob.glob(self.db + ".tmp.*"), [])
        # clear the big message so the shutdown save fits again
        self.pub_done(b, ["-t", "d/big", "-n", "-r"])
        self.stop(b)
        b2 = self.start()
        self.assertEqual(self.retained(b2, "d/small"), "small")


if __name__ == "__main__":
    unittest.main()
