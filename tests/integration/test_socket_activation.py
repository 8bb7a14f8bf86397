"""systemd socket activation: listeners inherited through LISTEN_FDS."""

import os
import socket
import subprocess
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
        b.follow()
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

    def test_two_sockets_on_one_port_go_to_their_addresses(self):
        """127.0.0.1:P and [::1]:P (what mqttd.socket passes for the
        packaged configuration's two implicit listeners) each go to the
        listener with that address, whatever the order of the lines:
        neither listener is bound again (which would fail with
        EADDRINUSE)."""
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", port))
        v4.listen(16)
        v6.listen(16)
        b = Broker("listener %d ::1\nlistener %d 127.0.0.1\n"
                   "allow_anonymous true\n" % (port, port))
        b.port = port
        fds = (v4.fileno(), v6.fileno())

        def child():
            os.dup2(fds[0], 3)
            os.dup2(fds[1], 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        b.proc = subprocess.Popen(
            ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" -c "$1"', MQTTD,
             b.conf_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, preexec_fn=child, close_fds=False)
        b.follow()
        try:
            b.wait_log(r"Using socket-activated listener \(fd 4\) for port %d" % port)
            b.wait_log(r"mqttd version .* starting")
            v4.close()
            v6.close()
            pub(port, ["-t", "sa", "-m", "x"], host="127.0.0.1")
            pub(port, ["-t", "sa", "-m", "x"], host="::1")
        finally:
            self.assertEqual(b.stop(), 0, b.log_text())


if __name__ == "__main__":
    unittest.main()
