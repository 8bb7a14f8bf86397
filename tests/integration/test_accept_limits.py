"""Accept-time limits against a reconnect storm, through the real daemon:
max_connection_rate per listener (excess closed at accept, one log line a
second at most) and max_connections with a rate-limited log line."""

import math
import re
import signal
import time
import unittest

from harness import Broker, Raw


def storm(port, n):
    """Open n connections at once, then CONNECT on each; returns (accepted,
    refused, seconds the openings took)."""
    t0 = time.monotonic()
    raws = [Raw(port) for _ in range(n)]
    span = time.monotonic() - t0
    ok = refused = 0
    for i, r in enumerate(raws):
        try:
            r.connect(client_id="storm%d" % i)
            ok += 1
        except Exception:  # closed at accept: EOF or reset instead of CONNACK
            refused += 1
    for r in raws:
        r.abort()
    return ok, refused, span


class ConnectionRate(unittest.TestCase):
    def setUp(self):
        self.b = Broker("listener {port} 127.0.0.1\nmax_connection_rate 5\n"
                        "allow_anonymous true\n").start()

    def tearDown(self):
        log = self.b.log_text()
        self.assertEqual(self.b.stop(), 0, log)

    def test_excess_closed_at_accept_and_logged_once_a_second(self):
        ok, refused, span = storm(self.b.port, 40)
        # fixed one-second windows: the openings cover at most
        # ceil(span) + 1 of them
        windows = math.ceil(span) + 1
        self.assertLessEqual(ok, 5 * windows)
        self.assertGreaterEqual(ok, 1)
        self.assertEqual(ok + refused, 40)
        line = self.b.wait_log(r"refused: max_connection_rate 5 per second reached")
        n = len(re.findall(r"max_connection_rate 5 per second", self.b.log_text()))
        self.assertLessEqual(n, windows)
        self.assertIn("more refused since the last such line", line)

    def test_reload_changes_the_rate(self):
        with open(self.b.conf_path) as f:
            conf = f.read()
        with open(self.b.conf_path, "w") as f:
            f.write(conf.replace("max_connection_rate 5", "max_connection_rate 0"))
        m = self.b.mark()
        self.b.signal(signal.SIGHUP)
        self.b.wait_log(r"Configuration reloaded", start=m)
        ok, refused, _ = storm(self.b.port, 40)
        self.assertEqual((ok, refused), (40, 0))


class MaxConnectionsLog(unittest.TestCase):
    def test_refusals_logged_at_most_once_a_second(self):
        b = Broker("listener {port} 127.0.0.1\nmax_connections 2\n"
                   "allow_anonymous true\n").start()
        try:
            t0 = time.monotonic()
            ok, refused, _ = storm(b.port, 30)
            span = time.monotonic() - t0
            self.assertEqual((ok, refused), (2, 28))
            b.wait_log(r"refused: max_connections reached")
            n = len(re.findall(r"max_connections reached", b.log_text()))
            self.assertLessEqual(n, math.ceil(span) + 1)
        finally:
            self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main()
