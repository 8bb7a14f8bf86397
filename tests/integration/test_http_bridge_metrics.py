"""test_http_bridge_metrics.py - the bridges in /metrics (src/broker/metrics.c
bridge_text, fed by bridges_stat like $SYS/broker/bridges/NAME/...): mqttd
with a protocol http listener bridged to a second mqttd; promtool accepts
the exposition, the bridge name (with a quote and a backslash) is escaped,
the bridge is up with exact message counts in both directions after N
publishes over it, and down after the remote is stopped. One and two
event-loop threads."""

import os
import re
import subprocess
import time
import unittest

from harness import SRC, TIMEOUT, Broker, Sub, free_port, pub
from test_http_ops import http, parse_metrics

NAME = 's"b\\x'                       # as written in the configuration
LABEL = '{bridge="s\\"b\\\\x"}'       # as the exposition format escapes it
N_OUT = 5
N_IN = 3


class BridgeMetrics(unittest.TestCase):
    THREADS = None

    def setUp(self):
        self.remote = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n"
                             "threads 1\n").start()
        self.hport = free_port()
        conf = ("listener {port} 127.0.0.1\nallow_anonymous true\n"
                "sys_interval 0\nthreads %d\n"
                "listener %d 127.0.0.1\nprotocol http\n"
                "connection %s\naddress 127.0.0.1:%d\nremote_clientid gw\n"
                "restart_timeout 1\ntopic out/# out 1\ntopic in/# in 1\n"
                % (self.THREADS or 1, self.hport, NAME, self.remote.port))
        self.local = Broker(conf).start()

    def tearDown(self):
        for b in (self.local, self.remote):
            if b.proc is None:
                continue
            alive = b.alive()
            log = b.log_text()
            rc = b.stop()
            self.assertTrue(alive, "mqttd died:\n" + log)
            self.assertEqual(rc, 0, log)
            self.assertNotIn("AddressSanitizer", log)
            self.assertNotIn("runtime error:", log)

    def text(self):
        st, hdrs, body = http(self.hport, "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain; version=0.0.4"))
        return body

    def wait_metrics(self, want, timeout=TIMEOUT):
        """Poll /metrics until every key has its wanted value; the last."""
        deadline = time.monotonic() + timeout
        while True:
            m = parse_metrics(self.text().decode())
            if all(m.get(k) == v for k, v in want.items()):
                return m
            if time.monotonic() > deadline:
                bad = {k: (m.get(k), v) for k, v in want.items() if m.get(k) != v}
                self.fail("metrics (got, want): %r" % bad)
            time.sleep(0.05)  # polling the live counters, not waiting for time

    def test_up_counts_down(self):
        self.local.wait_log(r"Bridge .*: up")
        body = self.text()
        r = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(b"mqttd_bridge_up" + LABEL.encode() + b" 1\n", body)
        m = parse_metrics(body.decode())
        self.assertEqual(m["mqttd_bridge_state{bridge=\"s\\\"b\\\\x\",state=\"up\"}"], 1)
        self.assertEqual(m["mqttd_bridge_reconnects_total" + LABEL], 0)
        # every bridge metric the Grafana dashboard queries is served
        with open(os.path.join(SRC, "docs", "grafana", "mqttd.json")) as f:
            names = set(re.findall(r"\bmqttd_bridge_\w+", f.read()))
        self.assertGreaterEqual(len(names), 3)
        served = set(re.findall(r"^# TYPE (\w+) ", body.decode(), re.M))
        self.assertLessEqual(names, served)

        # out: local -> remote; in: remote -> local, each seen delivered
        rs = Sub(self.remote.port, ["-t", "out/#", "-q", "1", "-v"], count=N_OUT)
        rs.ready()
        ls = Sub(self.local.port, ["-t", "in/#", "-q", "1", "-v"], count=N_IN)
        ls.ready()
        for i in range(N_OUT):
            pub(self.local.port, ["-t", "out/%d" % i, "-m", "o", "-q", "1"])
        for i in range(N_IN):
            pub(self.remote.port, ["-t", "in/%d" % i, "-m", "i", "-q", "1"])
        self.assertEqual(len(rs.messages()), N_OUT)
        self.assertEqual(len(ls.messages()), N_IN)
        self.wait_metrics({"mqttd_bridge_messages_sent_total" + LABEL: N_OUT,
                           "mqttd_bridge_messages_received_total" + LABEL: N_IN,
                           "mqttd_bridge_up" + LABEL: 1})

        mark = self.local.mark()
        self.remote.stop()
        self.remote.proc = None
        self.local.wait_log(r"Bridge .*: connection to .* lost",
                            start=mark)
        m = self.wait_metrics({"mqttd_bridge_up" + LABEL: 0})
        self.assertEqual(m["mqttd_bridge_messages_sent_total" + LABEL], N_OUT)
        self.assertEqual(m["mqttd_bridge_messages_received_total" + LABEL], N_IN)
        self.assertNotIn("mqttd_bridge_state{bridge=\"s\\\"b\\\\x\",state=\"up\"}", m)
        body = self.text()
        r = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class BridgeMetricsThreads(BridgeMetrics):
    THREADS = 2


if __name__ == "__main__":
    unittest.main(verbosity=2)
