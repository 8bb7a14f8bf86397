"""tlsbench.py - what the TLS connection benchmarks share
(tls_callgrind.py, tls_resume_cpu.py): free ports, waiting for a broker's
port, broker CPU from /proc, and one mTLS MQTT connection made the way a
device makes it (handshake, CONNECT, optionally SUBSCRIBE, DISCONNECT).
"""
import os
import socket
import ssl
import time

CONNECT = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04" + b"bnch"
SUBSCRIBE = b"\x82\x08\x00\x01\x00\x03a/b\x00"
DISCONNECT = b"\xe0\x00"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, seconds=60):
    """Until something accepts on 127.0.0.1:port (a broker under valgrind
    takes seconds), at most seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("broker did not listen on %d" % port)


def cpu(pid):
    """utime + stime of process pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recv_n(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise RuntimeError("closed")
        b += d
    return b


def one(ctx, port, session=None, subscribe=False):
    """One connection with ssl context ctx, offering session (from an
    earlier one) for resumption: CONNECT, CONNACK, [SUBSCRIBE, SUBACK],
    DISCONNECT. Returns (the session to offer next, whether it resumed)."""
    raw = socket.create_connection(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    s.sendall(CONNECT)
    # CONNACK; TLS 1.3 tickets were read before it
    if recv_n(s, 4)[:1] != b"\x20":
        raise RuntimeError("no CONNACK")
    if subscribe:
        s.sendall(SUBSCRIBE)
        if recv_n(s, 5)[:1] != b"\x90":
            raise RuntimeError("no SUBACK")
    s.sendall(DISCONNECT)
    sess, reused = s.session, s.session_reused
    s.close()
    return sess, reused


def setup(certs, out):
    """For CERTDIR certs (certs/mkcerts.sh) and the run's folder out: the
    client's SSL context (client1's certificate), an 80-byte ticket key
    file in out (mode 0600) and the TLS lines of a broker listener that
    requires client certificates. Returns (ctx, keyfile, tls_conf)."""
    def c(f):
        return os.path.join(certs, f)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(c("ca.crt"))
    ctx.load_cert_chain(c("client1.crt"), c("client1.key"))
    keyfile = os.path.join(out, "ticket.key")
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, os.urandom(80))
    os.close(fd)
    tls = ("certfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\n"
           "use_identity_as_username true\n"
           % (c("server.crt"), c("server.key"), c("ca.crt")))
    return ctx, keyfile, tls
