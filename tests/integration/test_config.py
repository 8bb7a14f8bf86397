"""Configuration handling through the real binary: -t, FILE:LINE errors,
did-you-mean hints, not-supported keys, defaults."""

import os
import subprocess
import tempfile
import unittest

from harness import MQTTD, SRC, Broker, Raw, free_port, pub


def run_t(text):
    d = tempfile.mkdtemp()
    p = os.path.join(d, "t.conf")
    with open(p, "w") as f:
        f.write(text)
    r = subprocess.run([MQTTD, "-t", "-c", p], capture_output=True, text=True, timeout=20)
    return r, p


class ConfigTest(unittest.TestCase):
    def test_valid(self):
        r, _ = run_t("listener 1884 127.0.0.1\nallow_anonymous true\n")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_error_reported_with_file_line(self):
        r, p = run_t("listener 1884\nmax_keepalive abc\nbogus_key 1\nallow_anonymus true\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:2:" % p, r.stderr)
        self.assertIn("%s:3:" % p, r.stderr)
        self.assertIn("%s:4:" % p, r.stderr)
        self.assertIn("allow_anonymous", r.stderr)  # did you mean

    def test_not_supported_key_named(self):
        r, p = run_t("listener 1884\nauth_plugin /x.so\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("auth_plugin", r.stderr)
        self.assertIn("not supported", r.stderr)

    def test_mosquitto_example_config_parses(self):
        import gzip
        src = "/usr/share/doc/mosquitto/examples/mosquitto.conf"
        if os.path.exists(src):
            text = open(src).read()
        elif os.path.exists(src + ".gz"):
            text = gzip.open(src + ".gz", "rt").read()
        else:
            text = open(os.path.join(SRC, "tests/unit/conf/mosquitto-example.conf")).read()
        r, _ = run_t(text)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_cli_version_and_help(self):
        r = subprocess.run([MQTTD, "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("mqttd version", r.stdout)
        r = subprocess.run([MQTTD, "-h"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        r = subprocess.run([MQTTD, "--bogus"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)

    def test_no_config_with_p_listens_on_loopback(self):
        port = free_port()
        b = Broker("listener %d 127.0.0.1\n" % port)
        # start without -c: only -p
        b.proc = subprocess.Popen([MQTTD, "-p", str(port)], stderr=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, text=True)
        b.follow()
        b.wait_log(r"starting")
        b.port = port
        pub(port, ["-t", "x", "-m", "y"])
        self.assertEqual(b.stop(), 0)

    def test_sighup_with_broken_config_keeps_serving(self):
        import signal
        b = Broker("").start()
        try:
            with open(b.conf_path, "a") as f:
                f.write("max_keepalive notanumber\n")
            m = b.mark()
            b.signal(signal.SIGHUP)
            b.wait_log(r"Reload failed", start=m)
            b.wait_log(r"mqttd\.conf:\d+: ", start=m)
            pub(b.port, ["-t", "x", "-m", "still"])
        finally:
            self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main()
