"""systemd socket activation: listeners inherited through LISTEN_FDS."""

import os
import socket
import subprocess
import threading
import unittest

from harness import MQTTD, Broker, pub


class SocketActivation(unittest.TestCase):
    def test_inherited_listener_is_used(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        port = ls.getsockname()[1]
        b = Broker("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
        b.port = port
        fd = ls.fileno()

        def child():
            os.dup2(fd, 3)
            os.set_inheritable(3, True)

        b.proc = subprocess.Popen(
            ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"', MQTTD,
             b.conf_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, preexec_fn=child, close_fds=False)
        b.reader = threading.Thread(target=b._read, daemon=True)
        b.reader.start()
        try:
            b.wait_log(r"Using socket-activated listener \(fd 3\) for port %d" % port)
            b.wait_log(r"mqttd version .* starting")
            ls.close()  # only the broker holds it now
            pub(port, ["-t", "sa", "-m", "x"])
            b.wait_log(r"New client connected")
        finally:
            self.assertEqual(b.stop(), 0, b.log_text())

    def test_unmatched_inherited_socket_is_an_error(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        b = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n")
        fd = ls.fileno()
        r = subprocess.run(
            ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"', MQTTD,
             b.conf_path], capture_output=True, text=True, timeout=20,
            preexec_fn=lambda: os.dup2(fd, 3), close_fds=False)
        ls.close()
        b.stop()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("matches no listener", r.stderr)


if __name__ == "__main__":
    unittest.main()
