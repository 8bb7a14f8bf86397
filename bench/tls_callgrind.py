#!/usr/bin/env python3
"""tls_callgrind.py - instructions per mTLS connection (callgrind), full
handshakes and resumed ones, mqttd and Mosquitto side by side in one run.

  python3 bench/tls_callgrind.py MQTTD_BIN CERTDIR [N] [OUTDIR]

Each broker runs under `valgrind --tool=callgrind`; after a warm-up the
counters are zeroed (`callgrind_control -z`), N connections are made, and
the counters dumped (`callgrind_control -d`): once with full handshakes,
once resumed (the client offers the session of its previous connection,
as a device does). A connection is: TLS handshake (client1 certificate),
CONNECT, CONNACK, SUBSCRIBE, SUBACK, DISCONNECT; the client offers an
X25519 key share (OpenSSL's default; ECDH_CURVE=prime256v1 in the
environment: P-256 instead). Instruction counts do
not depend on the machine's load. The dumps stay in OUTDIR (callgrind.out.*)
for callgrind_annotate. CERTDIR from certs/mkcerts.sh (-t rsa: RSA-2048).
"""
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsbench import free_port, one as one_conn, setup, wait_port  # noqa: E402


def one(ctx, port, session=None):
    return one_conn(ctx, port, session, subscribe=True)


def total_ir(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + path)


def ctl(pid, opt):
    subprocess.run(["callgrind_control", opt, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    mqttd, certs = sys.argv[1], os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    out = sys.argv[4] if len(sys.argv) > 4 else tempfile.mkdtemp(
        prefix="tls-callgrind-")
    os.makedirs(out, exist_ok=True)
    ctx, keyfile, tls = setup(certs, out)
    if os.environ.get("ECDH_CURVE"):  # client key share, e.g. prime256v1
        ctx.set_ecdh_curve(os.environ["ECDH_CURVE"])
    print("dumps in", out, file=sys.stderr)
    rows = {}
    for name in ("mqttd", "mosquitto"):
        port = free_port()
        conf = os.path.join(out, name + ".conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % port
                    + tls)
            if name == "mqttd":
                f.write("tls_session_ticket_key_file %s\n" % keyfile)
            else:
                f.write("user root\n")
        cmd = [mqttd, "-c", conf] if name == "mqttd" else \
            ["/usr/sbin/mosquitto", "-c", conf]
        base = os.path.join(out, "callgrind.out.%s" % name)
        for f in glob.glob(base + "*"):
            os.unlink(f)
        p = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + base]
            + cmd, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(out, name + ".log"), "w"))
        try:
            wait_port(port)
            for _ in range(5):
                sess, _ = one(ctx, port)
            for _ in range(5):
                sess, _ = one(ctx, port, sess)
            ctl(p.pid, "-z")
            for _ in range(n):
                one(ctx, port)
            ctl(p.pid, "-d")
            full = sorted(glob.glob(base + ".*"), key=os.path.getmtime)[-1]
            ctl(p.pid, "-z")
            reused = 0
            for _ in range(n):
                sess, r = one(ctx, port, sess)
                reused += bool(r)
            ctl(p.pid, "-d")
            res = sorted(glob.glob(base + ".*"), key=os.path.getmtime)[-1]
            os.rename(full, base + ".full")
            os.rename(res, base + ".resumed")
            rows[name] = (total_ir(base + ".full") / n,
                          total_ir(base + ".resumed") / n, reused)
        finally:
            p.terminate()
            p.wait()
    print("| connection | mqttd (M instr.) | Mosquitto (M instr.) | ratio |")
    print("|---|---|---|---|")
    for i, what in ((0, "full handshake"), (1, "resumed")):
        a, b = rows["mqttd"][i], rows["mosquitto"][i]
        print("| %s | %.2f | %.2f | %.2f |" % (what, a / 1e6, b / 1e6, a / b))
    print("resumed: mqttd %d/%d, mosquitto %d/%d"
          % (rows["mqttd"][2], n, rows["mosquitto"][2], n))


if __name__ == "__main__":
    main()
