"""$SYS topics and JSON logs through the real daemon."""

import json
import unittest

from harness import BrokerTest, Raw, Sub, pub, pub_done


class Sys(BrokerTest):
    CONF = "sys_interval 1\n"

    def test_version_and_counters(self):
        s = Sub(self.b.port, ["-t", "$SYS/broker/version"], count=1)
        self.assertEqual(s.messages(), ["mqttd version 0.1.0"])
        for i in range(3):
            pub(self.b.port, ["-t", "sys/t", "-m", "x"])
        keep = Raw(self.b.port)
        keep.connect(client_id="keeper")
        # wait for a stats document that reflects the traffic
        for _ in range(10):
            s = Sub(self.b.port, ["-t", "$SYS/broker/stats/json", "-R"], count=1)
            doc = json.loads(s.messages()[0])
            if doc["publish_received"] >= 3 and doc["clients_connected"] >= 2:
                break
        self.assertGreaterEqual(doc["publish_received"], 3)
        self.assertGreaterEqual(doc["clients_connected"], 2)
        self.assertIn("1min", doc["load_per_min"]["messages/received"])
        s = Sub(self.b.port, ["-t", "$SYS/broker/retained messages/count", "-v"], count=1)
        self.assertRegex(s.messages()[0], r"^\$SYS/broker/retained messages/count \d+$")

    def test_clients_cannot_publish_to_sys(self):
        s = Sub(self.b.port, ["-t", "$SYS/broker/fake"], count=1, timeout=3)
        s.ready()
        pub(self.b.port, ["-t", "$SYS/broker/fake", "-m", "forged"])
        self.assertEqual(s.messages(timeout=3), [])


class SysOutsideRetainedQuota(BrokerTest):
    """The broker's own retained $SYS messages do not use the users'
    max_retained_messages (they once did, so a client could retain fewer
    messages than configured, or none, once $SYS was published)."""
    CONF = "sys_interval 1\nmax_retained_messages 2\n"

    def test_users_keep_their_whole_quota(self):
        # the $SYS tree (dozens of retained topics) is in the store: a new
        # subscriber gets it as retained (the first one may see it live)
        self.wait_retained("$SYS/broker/version")
        pub_done(self.b, ["-t", "q/1", "-m", "one", "-r", "-q", "1"])
        pub_done(self.b, ["-t", "q/2", "-m", "two", "-r", "-q", "1"])
        self.assertNotIn("refused: retained", self.b.log_text())
        # the third is refused as over the limit: routed, not stored
        m = self.b.mark()
        pub_done(self.b, ["-t", "q/3", "-m", "three", "-r", "-q", "1"])
        self.b.wait_log(r"Retained message on 'q/3' from \S+ refused: "
                        r"retained store limit reached", start=m)
        s = Sub(self.b.port, ["-t", "q/#", "-v"], count=3, timeout=3)
        self.assertEqual(sorted(s.messages()), ["q/1 one", "q/2 two"])
        # $SYS itself is still stored past the users' limit
        self.wait_retained("$SYS/broker/uptime")

    def wait_retained(self, topic):
        for _ in range(10):
            s = Sub(self.b.port, ["-t", topic], count=1)
            line = s.wait_for(r"received PUBLISH")
            s.messages()
            if ", r1, " in line:
                return
        self.fail("%s never arrived as a retained message" % topic)


class JsonLogs(BrokerTest):
    CONF = "log_format json\nconnection_messages true\n"

    def test_every_line_is_json(self):
        pub(self.b.port, ["-t", "j", "-m", "x", "-i", "jsonclient"])
        self.b.wait_log(r"jsonclient")
        for line in self.b.log_text().splitlines():
            if line == "<<EOF>>":
                continue
            o = json.loads(line)
            self.assertIn("ts", o)
            self.assertIn("level", o)
            self.assertIn("msg", o)


if __name__ == "__main__":
    unittest.main()
