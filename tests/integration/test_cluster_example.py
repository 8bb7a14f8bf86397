"""test_cluster_example.py - examples/cluster/run.sh --check: the one-script
cluster (3 nats-server in a NATS cluster with JetStream, 3 mqttd, HAProxy
with send-proxy-v2 in front) starts, and a message published through
HAProxy reaches a subscriber connected through HAProxy to another node;
everything stops afterwards. Keeps the example from rotting."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import MQTTD, SRC  # noqa: E402


class ClusterExampleTest(unittest.TestCase):
    def test_check_mode(self):
        env = dict(os.environ, MQTTD=MQTTD)
        r = subprocess.run(
            ["bash", os.path.join(SRC, "examples", "cluster", "run.sh"),
             "--check"], env=env, capture_output=True, text=True,
            timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"subscriber on node\d, publisher on "
                                   r"node\d, received: hello \d+")
        self.assertIn("check: OK", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
