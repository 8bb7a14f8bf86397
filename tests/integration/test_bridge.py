"""test_bridge.py - Mosquitto-compatible bridges (docs/bridges.md) against
the real /usr/sbin/mosquitto as the other end, in both directions:
mqttd -> Mosquitto and Mosquitto -> mqttd, topic directions, QoS and
prefixes, no loops (try_private / No Local), cleansession false through an
outage of either end, notifications, mutual TLS, and `mqttd -t`."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (MQTTD, TIMEOUT, Broker, LogLines, Sub, TempPki,
                     free_port, pub, pub_done)

MOSQUITTO = "/usr/sbin/mosquitto"
PKI = TempPki("mqttd-bridge-certs-")
setUpModule = PKI.make
tearDownModule = PKI.remove
cert = PKI.path


class Mosquitto(LogLines):
    """One real Mosquitto with a generated config, its -v log collected."""

    name = "mosquitto"

    def __init__(self, conf_text, port=None, dir=None):
        self.dir = dir or tempfile.mkdtemp(prefix="mosq-test-")
        self.port = port or free_port()
        self.conf_path = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf_path, "w") as f:
            f.write(MOSQ_USER)
            f.write(conf_text.replace("{port}", str(self.port))
                    .replace("{dir}", self.dir))
        self.proc = None

    def start(self):
        self.lines = []  # marks count from this start
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf_path, "-v"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     errors="replace")
        self.follow()
        self.wait_log(r"mosquitto version .* running")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def drain(sub, n, timeout=TIMEOUT):
    """The first n message lines of a mosquitto_sub -v."""
    lines = sub.messages(timeout)
    return lines[:n], lines


class BridgeCase(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            fn()

    def mosq(self, text, **kw):
        m = Mosquitto(text, **kw)
        self.cleanups.append(m.cleanup)
        return m

    def mqttd(self, text):
        b = Broker(text)
        self.cleanups.append(lambda: self._stop_mqttd(b))
        return b

    def _stop_mqttd(self, b):
        alive = b.alive() if b.proc else True
        log = b.log_text()
        rc = b.stop()
        self.assertTrue(alive, "mqttd died:\n" + log)
        self.assertEqual(rc, 0, "mqttd exit status %r:\n%s" % (rc, log))
        self.assertNotIn("ERROR: AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)


class TestConfig(BridgeCase):
    def run_t(self, text):
        d = tempfile.mkdtemp(prefix="mqttd-bridge-t-")
        self.cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
        p = os.path.join(d, "m.conf")
        with open(p, "w") as f:
            f.write(text)
        r = subprocess.run([MQTTD, "-t", "-c", p], capture_output=True,
                           text=True, timeout=TIMEOUT)
        return r, p

    def test_valid_bridge_validates(self):
        r, _ = self.run_t("listener %d 127.0.0.1\nallow_anonymous true\n"
                          "connection gw\naddress 127.0.0.1:1 127.0.0.2:2\n"
                          "topic sensors/# out 1 \"\" site1/\n"
                          "topic cmd/# in 2\nremote_password s3cret\n"
                          "remote_username u\nrestart_timeout 2 20\n"
                          % free_port())
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unsupported_and_bad_keys(self):
        r, p = self.run_t("listener %d\nconnection gw\naddress h\n"
                          "topic a in\nbridge_psk 0123\n"
                          "bridge_protocol_version mqttv4\n" % free_port())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:5: 'bridge_psk' is not supported by mqttd" % p,
                      r.stderr)
        self.assertIn("%s:6: invalid bridge_protocol_version" % p, r.stderr)

    def test_bridge_key_outside_connection(self):
        r, p = self.run_t("listener %d\ntopic a in\n" % free_port())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:2: 'topic' is a bridge key" % p, r.stderr)

    def test_unreadable_bridge_cafile(self):
        r, p = self.run_t("listener %d\nconnection gw\naddress h\ntopic a\n"
                          "bridge_cafile /nonexistent/ca.pem\n" % free_port())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:5: cannot read bridge_cafile" % p, r.stderr)


MOSQ_PLAIN = "listener {port} 127.0.0.1\nallow_anonymous true\n"
# root: Mosquitto would switch to user mosquitto, which cannot read the
# temporary directories
MOSQ_USER = "user %s\n" % ("root" if os.getuid() == 0 else "mosquitto")


class TestMqttdToMosquitto(BridgeCase):
    """mqttd is the bridge; Mosquitto the remote."""

    def start_pair(self, topics, extra="", mosq_extra=""):
        m = self.mosq(MOSQ_PLAIN + mosq_extra).start()
        b = self.mqttd("connection site\naddress 127.0.0.1:%d\n"
                       "remote_clientid site-gw\nrestart_timeout 1\n%s%s"
                       % (m.port, topics, extra)).start()
        b.wait_log(r"Bridge site: up")
        return m, b

    def test_out_in_both_with_prefixes_and_qos(self):
        m, b = self.start_pair("topic sensors/# out 1 \"\" site1/\n"
                               "topic cmd/# in 2 local/ remote/\n"
                               "topic chat/# both 0\n")
        rs = Sub(m.port, ["-t", "site1/#", "-t", "chat/#", "-v", "-q", "1"],
                 count=2)
        rs.ready()
        ls = Sub(b.port, ["-t", "local/#", "-t", "chat/#", "-v", "-q", "2"],
                 count=3)
        ls.ready()
        # the local subscription of the bridge exists before we publish
        pub(b.port, ["-t", "sensors/t1", "-m", "21.5", "-q", "1"])
        pub(m.port, ["-t", "remote/cmd/open", "-m", "go", "-q", "2"])
        pub(b.port, ["-t", "chat/a", "-m", "from-mqttd"])
        pub(m.port, ["-t", "chat/b", "-m", "from-mosq"])
        got_r = rs.messages()
        got_l = ls.messages()
        self.assertIn("site1/sensors/t1 21.5", got_r)
        self.assertIn("chat/a from-mqttd", got_r)
        self.assertIn("local/cmd/open go", got_l)
        self.assertIn("chat/b from-mosq", got_l)

    def test_no_loop(self):
        m, b = self.start_pair("topic loop/# both 1\n")
        mk = m.mark()
        ls = Sub(b.port, ["-t", "loop/#", "-v"], count=3, timeout=3)
        ls.ready()
        pub(b.port, ["-t", "loop/a", "-m", "1", "-q", "1"])
        pub(m.port, ["-t", "loop/b", "-m", "2", "-q", "1"])
        lines = ls.messages(3)
        # each message exactly once on mqttd: nothing came back
        self.assertEqual(sorted(lines), ["loop/a 1", "loop/b 2"], lines)
        # Mosquitto never sent loop/b back to the bridge (try_private)
        m.wait_log(r"Received PUBLISH from site-gw .*'loop/a'", start=mk)
        self.assertEqual(
            m.count(r"Sending PUBLISH to site-gw .*'loop/a'", mk), 0)

    def test_mqtt5_bridge(self):
        m, b = self.start_pair("topic v5/# both 1\n",
                               "bridge_protocol_version mqttv50\n")
        rs = Sub(m.port, ["-t", "v5/#", "-v", "-V", "mqttv5"], count=1)
        rs.ready()
        ls = Sub(b.port, ["-t", "v5/#", "-v"], count=2, timeout=3)
        ls.ready()
        pub(b.port, ["-t", "v5/a", "-m", "x", "-q", "1"])
        pub(m.port, ["-t", "v5/b", "-m", "y", "-q", "1"])
        self.assertEqual(rs.messages(), ["v5/a x"])
        # No Local: v5/a is not echoed back to mqttd
        self.assertEqual(sorted(ls.messages(3)), ["v5/a x", "v5/b y"])
        self.assertIn("New client connected", m.wait_log(r"site-gw"))

    def test_notifications(self):
        m, b = self.start_pair("topic n/# out 0\n")
        s = Sub(b.port, ["-t", "$SYS/broker/connection/site-gw/state", "-v"],
                count=1)
        self.assertEqual(s.messages(), ["$SYS/broker/connection/site-gw/state 1"])
        s = Sub(m.port, ["-t", "$SYS/broker/connection/site-gw/state", "-v"],
                count=1)
        self.assertEqual(s.messages(), ["$SYS/broker/connection/site-gw/state 1"])
        mk = b.mark()
        m.stop()
        b.wait_log(r"Bridge site: connection to .* lost", start=mk)
        s = Sub(b.port, ["-t", "$SYS/broker/connection/site-gw/state", "-v"],
                count=1)
        self.assertEqual(s.messages(), ["$SYS/broker/connection/site-gw/state 0"])

    def test_outage_of_remote_qos1_in_order(self):
        """cleansession false: messages published on mqttd while Mosquitto
        is down arrive after it returns, in order, none lost."""
        mdir = tempfile.mkdtemp(prefix="mosq-persist-")
        mconf = (MOSQ_PLAIN + "persistence true\npersistence_location {dir}/\n"
                 "max_queued_messages 1000\n")
        m = self.mosq(mconf, dir=mdir).start()
        b = self.mqttd("connection site\naddress 127.0.0.1:%d\n"
                       "remote_clientid site-gw\nrestart_timeout 1\n"
                       "topic q/# out 1\n" % m.port).start()
        b.wait_log(r"Bridge site: up")
        # a persistent QoS 1 subscriber on Mosquitto, then gone
        s = Sub(m.port, ["-t", "q/#", "-q", "1", "-c", "-i", "rsub", "-v"],
                count=1)
        s.ready()
        s.kill()
        mk = b.mark()
        m.stop()
        b.wait_log(r"Bridge site: connection to .* lost", start=mk)
        for i in range(1, 31):
            pub(b.port, ["-t", "q/%d" % i, "-m", "m%d" % i, "-q", "1"])
        # a failed retry is logged once, not once per try
        b.wait_log(r"Bridge site: cannot connect", start=mk)
        m.start()
        b.wait_log(r"Bridge site: up", start=mk)
        s = Sub(m.port, ["-t", "q/#", "-q", "1", "-c", "-i", "rsub", "-v"],
                count=30, timeout=15)
        got = s.messages(15)
        self.assertEqual(got, ["q/%d m%d" % (i, i) for i in range(1, 31)])
        self.assertLessEqual(
            len(re.findall(r"Bridge site: cannot connect", b.log_text())), 1)

    def test_outage_of_remote_qos2_exactly_once(self):
        mdir = tempfile.mkdtemp(prefix="mosq-persist-")
        mconf = (MOSQ_PLAIN + "persistence true\npersistence_location {dir}/\n")
        m = self.mosq(mconf, dir=mdir).start()
        b = self.mqttd("connection site\naddress 127.0.0.1:%d\n"
                       "remote_clientid site-gw\nrestart_timeout 1\n"
                       "bridge_protocol_version mqttv50\n"
                       "topic e/# both 2\n" % m.port).start()
        b.wait_log(r"Bridge site: up")
        s = Sub(m.port, ["-t", "e/#", "-q", "2", "-c", "-i", "rsub2", "-v"],
                count=1)
        s.ready()
        s.kill()
        mk = b.mark()
        m.stop()
        b.wait_log(r"Bridge site: connection to .* lost", start=mk)
        for i in range(1, 21):
            pub(b.port, ["-t", "e/%d" % i, "-m", "m%d" % i, "-q", "2"])
        m.start()
        b.wait_log(r"Bridge site: up", start=mk)
        s = Sub(m.port, ["-t", "e/#", "-q", "2", "-c", "-i", "rsub2", "-v"],
                count=21, timeout=4)
        got = s.messages(4)
        self.assertEqual(got, ["e/%d m%d" % (i, i) for i in range(1, 21)])

    def test_sys_and_stats_json(self):
        m, b = self.start_pair("topic j/# out 1\n", "sys_interval 1\n")
        pub(b.port, ["-t", "j/a", "-m", "1", "-q", "1"])
        s = Sub(b.port, ["-t", "$SYS/broker/bridges/site/state", "-v"],
                count=1)
        self.assertEqual(s.messages(), ["$SYS/broker/bridges/site/state up"])
        deadline = time.monotonic() + TIMEOUT
        while True:
            s = Sub(b.port, ["-t", "$SYS/broker/stats/json"], count=1)
            j = json.loads(s.messages()[0])
            br = j["bridges"][0]
            if br["messages_sent"] >= 1 or time.monotonic() > deadline:
                break
            b.wait_log(r"Bridge|connected|disconnected", start=b.mark() - 1)
        self.assertEqual(br["name"], "site")
        self.assertEqual(br["state"], "up")
        self.assertEqual(br["messages_sent"], 1)
        self.assertEqual(br["reconnects"], 0)

    def test_lazy_start_threshold_and_idle(self):
        m = self.mosq(MOSQ_PLAIN).start()
        rs = Sub(m.port, ["-t", "lz/#", "-v", "-q", "1"], count=3, timeout=20)
        rs.ready()
        b = self.mqttd("connection lz\naddress 127.0.0.1:%d\n"
                       "start_type lazy\nthreshold 3\nidle_timeout 2\n"
                       "topic lz/# out 1\n" % m.port).start()
        b.wait_log(r"Bridge lz: lazy")
        pub(b.port, ["-t", "lz/1", "-m", "a", "-q", "1"])
        pub(b.port, ["-t", "lz/2", "-m", "b", "-q", "1"])
        pub(b.port, ["-t", "lz/3", "-m", "c", "-q", "1"])
        b.wait_log(r"Bridge lz: 3 messages queued")
        self.assertEqual(rs.messages(20), ["lz/1 a", "lz/2 b", "lz/3 c"])
        line = b.wait_log(r"Bridge lz: idle for 2 s")
        b.wait_log(r"Bridge lz: lazy", start=b.log_text().split("\n").index(line))

    def test_start_type_once(self):
        m = self.mosq(MOSQ_PLAIN).start()
        b = self.mqttd("connection one\naddress 127.0.0.1:%d\n"
                       "start_type once\nrestart_timeout 1\n"
                       "topic o/# out 0\n" % m.port).start()
        b.wait_log(r"Bridge one: up")
        m.stop()
        b.wait_log(r"Bridge one: stopped")

    def test_round_robin_second_address(self):
        dead = free_port()
        m = self.mosq(MOSQ_PLAIN).start()
        b = self.mqttd("connection rr\naddress 127.0.0.1:%d 127.0.0.1:%d\n"
                       "round_robin true\nrestart_timeout 1\n"
                       "topic rr/# out 0\n" % (dead, m.port)).start()
        b.wait_log(r"Bridge rr: up, connected to 127.0.0.1:%d" % m.port)
        self.assertNotIn("remote_password", b.log_text())

    def test_unresolvable_name_then_next_address(self):
        # the name is looked up on the loop (c-ares); its failure is a
        # connect failure like any other: logged, next address, up
        m = self.mosq(MOSQ_PLAIN).start()
        b = self.mqttd("connection nx\naddress no-such-host.invalid:1883 "
                       "127.0.0.1:%d\nround_robin true\nrestart_timeout 1\n"
                       "topic nx/# out 0\n" % m.port).start()
        b.wait_log(r"Bridge nx: cannot connect to no-such-host\.invalid:1883: "
                   r"resolve no-such-host\.invalid: ", timeout=30)
        b.wait_log(r"Bridge nx: up, connected to 127.0.0.1:%d" % m.port,
                   timeout=30)


class TestThreads(BridgeCase):
    def test_local_ends_on_other_threads_stay_trusted(self):
        """threads 2: a bridge's local end whose client id another thread
        owns moves there and stays trusted (listener 0 refuses anonymous
        clients here). Six bridges: all six local ends on the first thread
        would happen 1 time in 64."""
        m = self.mosq(MOSQ_PLAIN).start()
        text = ("per_listener_settings true\nlistener {port} 127.0.0.1\n"
                "allow_anonymous false\nlistener {tlsport} 127.0.0.1\n"
                "allow_anonymous true\nthreads 2\n")
        for i in range(6):
            text += ("connection b%d\naddress 127.0.0.1:%d\n"
                     "remote_clientid r%d\nlocal_clientid l%d\n"
                     "topic t%d/# in 1\n" % (i, m.port, i, i, i))
        b = self.mqttd(text).start()
        for i in range(6):
            b.wait_log(r"Bridge b%d: up" % i)
        s = Sub(b.tlsport, ["-t", "+/#", "-v", "-q", "1"], count=6)
        s.ready()
        for i in range(6):
            pub(m.port, ["-t", "t%d/x" % i, "-m", str(i), "-q", "1"])
        self.assertEqual(sorted(s.messages()),
                         ["t%d/x %d" % (i, i) for i in range(6)])


class TestMosquittoToMqttd(BridgeCase):
    """Mosquitto is the bridge (try_private on); mqttd the remote."""

    def test_both_directions_no_loop(self):
        b = self.mqttd("").start()
        m = self.mosq(MOSQ_PLAIN + "connection tomqttd\n"
                      "address 127.0.0.1:%d\ntopic x/# both 1\n"
                      "remote_clientid mosq-gw\nrestart_timeout 1\n"
                      % b.port).start()
        b.wait_log(r"New client connected from .* as mosq-gw")
        m.wait_log(r"Received SUBACK")
        # the bridge's state notification is allowed into $SYS
        self.assertNotIn("acl denied", b.log_text())
        rs = Sub(b.port, ["-t", "x/#", "-v"], count=2, timeout=3)
        rs.ready()
        ms = Sub(m.port, ["-t", "x/#", "-v"], count=3, timeout=3)
        ms.ready()
        mk = m.mark()
        pub(m.port, ["-t", "x/from-mosq", "-m", "a", "-q", "1"])
        pub(b.port, ["-t", "x/from-mqttd", "-m", "b", "-q", "1"])
        self.assertEqual(sorted(rs.messages(3)),
                         ["x/from-mosq a", "x/from-mqttd b"])
        # mqttd did not send x/from-mosq back to the Mosquitto bridge
        self.assertEqual(sorted(ms.messages(3)),
                         ["x/from-mosq a", "x/from-mqttd b"])
        self.assertEqual(m.count(r"Received PUBLISH from mosq-gw.*x/from-mosq",
                                 mk), 0)

    def test_outage_of_mqttd_qos1_in_order(self):
        b = self.mqttd("persistence true\npersistence_location {dir}/\n"
                       "autosave_interval 1\n").start()
        m = self.mosq(MOSQ_PLAIN + "connection tomqttd\n"
                      "address 127.0.0.1:%d\ntopic y/# out 1\n"
                      "remote_clientid mosq-gw\nrestart_timeout 1\n"
                      "cleansession false\n" % b.port).start()
        b.wait_log(r"New client connected from .* as mosq-gw")
        s = Sub(b.port, ["-t", "y/#", "-q", "1", "-c", "-i", "lsub", "-v"],
                count=1)
        s.ready()
        pub(m.port, ["-t", "y/0", "-m", "m0", "-q", "1"])
        self.assertEqual(s.messages(), ["y/0 m0"])
        # mqttd goes down (its state saved), Mosquitto queues
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(timeout=10)
        for i in range(1, 21):
            pub(m.port, ["-t", "y/%d" % i, "-m", "m%d" % i, "-q", "1"])
        b.lines = []
        b.start()
        b.wait_log(r"New client connected from .* as mosq-gw")
        s = Sub(b.port, ["-t", "y/#", "-q", "1", "-c", "-i", "lsub", "-v"],
                count=20, timeout=15)
        self.assertEqual(s.messages(15),
                         ["y/%d m%d" % (i, i) for i in range(1, 21)])


class TestMutualTLS(BridgeCase):
    def test_mtls_to_mosquitto_with_identity(self):
        mconf = ("listener {port} 127.0.0.1\ncafile %s\ncertfile %s\n"
                 "keyfile %s\nrequire_certificate true\n"
                 "use_identity_as_username true\nallow_anonymous false\n"
                 "acl_file {dir}/acl\n"
                 % (cert("ca.crt"), cert("server.crt"), cert("server.key")))
        m = self.mosq(mconf)
        with open(os.path.join(m.dir, "acl"), "w") as f:
            f.write("user client1\ntopic readwrite tls/#\ntopic write $SYS/#\n")
        m.start()
        work = tempfile.mkdtemp(prefix="mqttd-bridge-mtls-")
        self.cleanups.append(lambda: shutil.rmtree(work, ignore_errors=True))
        for n in ("client1.crt", "client1.key"):
            shutil.copy(cert(n), os.path.join(work, n))
        b = self.mqttd("connection sec\naddress localhost:%d\n"
                       "bridge_cafile %s\nbridge_certfile %s\n"
                       "bridge_keyfile %s\ntopic tls/# both 1\n"
                       "restart_timeout 1\n"
                       % (m.port, cert("ca.crt"),
                          os.path.join(work, "client1.crt"),
                          os.path.join(work, "client1.key"))).start()
        b.wait_log(r"Bridge sec: up, connected to localhost:%d" % m.port)
        m.wait_log(r"New bridge connected .* u'client1'")
        ls = Sub(b.port, ["-t", "tls/#", "-v"], count=1)
        ls.ready()
        subprocess.run(["mosquitto_pub", "-p", str(m.port), "-h", "localhost",
                        "--cafile", cert("ca.crt"), "--cert",
                        cert("client1.crt"), "--key", cert("client1.key"),
                        "-t", "tls/in", "-m", "secure", "-q", "1"],
                       check=True, timeout=TIMEOUT)
        self.assertEqual(ls.messages(), ["tls/in secure"])
        # SIGHUP reloads the bridge's certificate files
        shutil.copy(cert("client2.crt"), os.path.join(work, "client1.crt"))
        shutil.copy(cert("client2.key"), os.path.join(work, "client1.key"))
        mk = b.mark()
        b.signal(signal.SIGHUP)
        b.wait_log(r"Bridge sec: TLS files reloaded", start=mk)
        mm = m.mark()
        m.stop()
        m.start()
        m.wait_log(r"New bridge connected .* u'client2'")
        b.wait_log(r"Bridge sec: up", start=mk)

    def test_mtls_refused_without_certificate(self):
        mconf = ("listener {port} 127.0.0.1\ncafile %s\ncertfile %s\n"
                 "keyfile %s\nrequire_certificate true\n"
                 "use_identity_as_username true\n"
                 % (cert("ca.crt"), cert("server.crt"), cert("server.key")))
        m = self.mosq(mconf).start()
        b = self.mqttd("connection sec\naddress localhost:%d\n"
                       "bridge_cafile %s\ntopic tls/# both 1\n"
                       "restart_timeout 1\n" % (m.port, cert("ca.crt"))).start()
        b.wait_log(r"Bridge sec: cannot connect to localhost:%d" % m.port)
        self.assertNotIn("Bridge sec: up", b.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
