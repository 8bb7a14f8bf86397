"""persistence_sync always: an acknowledged QoS 1/2 message survives
kill -9, because the acknowledgement is only sent once the state holding
the message is on disk."""

import os
import shutil
import signal
import tempfile
import threading
import unittest

from harness import Broker, Raw, packet, publish_pkt, subscribe_pkt


def conf(pdir):
    return ("persistence true\npersistence_location %s/\n"
            "persistence_sync always\nautosave_interval 3600\n" % pdir)


class Strict(unittest.TestCase):
    def setUp(self):
        self.pdir = tempfile.mkdtemp(prefix="mqttd-strict-")
        self.brokers = []

    def tearDown(self):
        for b in self.brokers:
            text = b.log_text()
            if b.proc and b.proc.poll() is None:
                self.assertEqual(b.stop(), 0, text)
            self.assertNotIn("AddressSanitizer", text)
            self.assertNotIn("runtime error:", text)
        shutil.rmtree(self.pdir, ignore_errors=True)

    def start(self):
        b = Broker(conf(self.pdir)).start()
        self.brokers.append(b)
        return b

    def kill9(self, b):
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(timeout=10)
        b.wait_log(r"<<EOF>>|$")  # reader drains

    def test_acknowledged_messages_survive_kill9(self):
        b = self.start()
        b.wait_log(r"persistence_sync always")
        sub = Raw(b.port)
        sub.connect(client_id="strict-sub", clean=False)
        sub.send(subscribe_pkt("st/t", qos=1))
        self.assertEqual(sub.recv_packet()[0], 0x90)
        sub.send(packet(0xE0, b""))
        self.assertTrue(sub.closed())
        b.wait_log(r"Client strict-sub disconnected")

        p = Raw(b.port)
        p.connect(client_id="strict-pub")
        n = 300
        data = b"".join(publish_pkt("st/t", "m%d" % i, qos=1 + (i % 2), pid=i + 1)
                        for i in range(n))
        threading.Thread(target=p.send, args=(data,), daemon=True).start()
        acked = set()
        while len(acked) < n // 2:
            first, body = p.recv_packet()
            self.assertIn(first, (0x40, 0x50))
            pid = int.from_bytes(body[0:2], "big")
            if first == 0x50:
                p.send(packet(0x62, body[0:2]))
            acked.add(pid)
        self.kill9(b)

        b2 = self.start()
        s = Raw(b2.port)
        self.assertEqual(s.connect(client_id="strict-sub", clean=False), b"\x01\x00")
        got = set()
        # rounds of PINGREQ: done when a round brings no PUBLISH (drained)
        while True:
            s.send(packet(0xC0, b""))
            n_round = 0
            while True:
                first, body = s.recv_packet()
                if first == 0xD0:
                    break
                if first == 0x62:  # PUBREL of an earlier QoS 2 delivery
                    s.send(packet(0x70, body[0:2]))
                    continue
                self.assertEqual(first & 0xF0, 0x30)
                n_round += 1
                tlen = int.from_bytes(body[0:2], "big")
                qos = (first >> 1) & 3
                pid = body[2 + tlen:4 + tlen]
                got.add(int(bytes(body[4 + tlen:])[1:]))
                s.send(packet(0x40 if qos == 1 else 0x50, pid))
            if n_round == 0:
                break
        lost = sorted(pid - 1 for pid in acked if pid - 1 not in got)
        self.assertEqual(lost, [], "acknowledged but lost after kill -9")


if __name__ == "__main__":
    unittest.main()
