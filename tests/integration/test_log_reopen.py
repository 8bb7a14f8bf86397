"""test_log_reopen.py - SIGHUP reopens `log_dest file` for logrotate,
keeps every connection, and does so also when the reload fails (a broken
configuration must not leave the broker writing into the rotated file).
Each case runs with one and with two event-loop threads: every thread has
its own logger, so every one must reopen.

The rotation is what logrotate does without copytruncate: rename the file,
then signal (the packaged /etc/logrotate.d/mqttd).

Run: MQTTD_BIN=build/mqttd python3 -m unittest test_log_reopen -v
"""

import os
import signal
import unittest

from harness import Broker, Sub, pub

# clients connected after a rotation: with two threads they are spread
# over both loops, so each thread's logger is exercised
CLIENTS = 6


class LogReopen(unittest.TestCase):
    threads = 1

    def setUp(self):
        self.b = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "threads %d\nlog_dest stderr\nlog_dest file {dir}/mqttd.log\n"
                        "connection_messages true\n" % self.threads)
        self.log = os.path.join(self.b.dir, "mqttd.log")
        self.b.start()
        self.sub = Sub(self.b.port, ["-t", "r/#", "-i", "keeper", "-v"])
        self.sub.ready()

    def tearDown(self):
        self.sub.kill()
        self.assertEqual(self.b.stop(), 0, self.b.log_text())

    def read(self, path):
        with open(path) as f:
            return f.read()

    def rotate(self, suffix, done):
        """Rename the log, SIGHUP, wait for the reload's last line."""
        os.rename(self.log, self.log + suffix)
        mark = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(done, start=mark)

    def check_after(self, tag, rotated):
        """New connections are logged to the new file only; the subscriber
        connected before the rotation still gets messages."""
        for i in range(CLIENTS):
            pub(self.b.port, ["-t", "r/%s" % tag, "-m", "%s%d" % (tag, i),
                              "-i", "%s-%d" % (tag, i)])
        for i in range(CLIENTS):
            self.sub.wait_for(r"^r/%s %s%d$" % (tag, tag, i))
            # a line is written to stderr, then to the file; the thread
            # that logged the connection logs its end later, so once the
            # end is on stderr the connection line is in the file
            self.b.wait_log(r"Client %s-%d disconnected" % (tag, i))
        new, old = self.read(self.log), self.read(rotated)
        for i in range(CLIENTS):
            self.assertIn(" as %s-%d " % (tag, i), new)
            self.assertNotIn(" as %s-%d " % (tag, i), old)
        self.assertTrue(self.b.alive())

    def test_reload_reopens_the_file(self):
        self.rotate(".1", r"Configuration reloaded\.")
        self.check_after("ok", self.log + ".1")
        # logged by the main thread before the clients above connected
        self.assertIn("Configuration reloaded.", self.read(self.log))

    def test_failed_reload_reopens_the_file(self):
        with open(self.b.conf_path, "a") as f:
            f.write("no_such_key 1\n")
        self.rotate(".1", r"Reload failed")
        self.check_after("bad", self.log + ".1")
        self.assertIn("Reload failed", self.read(self.log))
        self.assertNotIn("Reload failed", self.read(self.log + ".1"))


class LogReopenThreads(LogReopen):
    threads = 2


if __name__ == "__main__":
    unittest.main()
