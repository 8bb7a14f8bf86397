"""run.py - start mqttd (default configuration, free port) with the test
harness and run the MQTT.js interoperability tests under node's built-in
test runner against it (MQTTD_PORT). Exit status: node's."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import Broker  # noqa: E402

if not os.path.isdir(os.path.join(HERE, "node_modules", "mqtt")):
    sys.exit("tests/interop/node_modules missing: run tests/install-deps.sh")
b = Broker("").start()
try:
    env = dict(os.environ, MQTTD_PORT=str(b.port))
    files = sys.argv[1:] or sorted(
        f for f in os.listdir(HERE) if f.endswith(".test.mjs"))
    rc = subprocess.call(["node", "--test"] + files, cwd=HERE, env=env)
finally:
    alive = b.alive()
    b.stop()
if not alive:
    print("mqttd died during the run:\n" + b.log_text())
    rc = rc or 1
sys.exit(rc)
