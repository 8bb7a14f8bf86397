#!/usr/bin/env python3
"""tls_resume_cpu.py - broker CPU per mTLS connection (TLS handshake + MQTT
CONNECT/CONNACK/DISCONNECT), full handshakes against resumed ones, for
mqttd and Mosquitto side by side in one run.

  python3 bench/tls_resume_cpu.py MQTTD_BIN CERTDIR [N]

CERTDIR comes from certs/mkcerts.sh (-t rsa for RSA-2048, default P-256).
For each broker: N full handshakes, N resumed within the same process,
and (mqttd with tls_session_ticket_key_file) N resumed after a restart.
Mosquitto's tickets use a random per-process key: after a restart its
clients do full handshakes, so there is no "after restart" row for it.
Broker CPU is read from /proc/PID/stat (utime + stime) around each phase.
The client runs in this process (Python ssl); only the broker is measured.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsbench import cpu, free_port, one, setup, wait_port  # noqa: E402


def phase(pid, ctx, port, n, session=None):
    c0 = cpu(pid)
    reused = 0
    for _ in range(n):
        sess, r = one(ctx, port, session)
        reused += bool(r)
    return (cpu(pid) - c0) / n * 1e6, reused


def main():
    mqttd, certs = sys.argv[1], os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    tmp = tempfile.mkdtemp(prefix="tls-resume-bench-")
    ctx, keyfile, tls = setup(certs, tmp)
    print("logs and configuration in", tmp, file=sys.stderr)
    rows = []
    for name in ("mqttd", "mosquitto"):
        port = free_port()
        conf = os.path.join(tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % port + tls)
            if name == "mqttd":
                f.write("tls_session_ticket_key_file %s\n" % keyfile)
            else:  # the keys are root's, mode 0600 (mkcerts.sh)
                f.write("user root\n")
        cmd = [mqttd, "-c", conf] if name == "mqttd" else \
            ["/usr/sbin/mosquitto", "-c", conf]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, name + ".log"), "a"))
        wait_port(port)
        one(ctx, port)  # warm-up
        full, _ = phase(p.pid, ctx, port, n)
        sess, _ = one(ctx, port)
        res, reused = phase(p.pid, ctx, port, n, sess)
        rows.append((name, "full handshake", full, n, 0))
        rows.append((name, "resumed, same process", res, n, reused))
        if name == "mqttd":
            p.terminate()
            p.wait()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, name + ".log"), "a"))
            wait_port(port)
            res2, reused2 = phase(p.pid, ctx, port, n, sess)
            rows.append((name, "resumed after restart", res2, n, reused2))
        p.terminate()
        p.wait()
    print("| broker | connection | broker CPU per connection (us) | resumed |")
    print("|---|---|---|---|")
    for name, what, us, total, reused in rows:
        print("| %s | %s | %.0f | %d/%d |" % (name, what, us, reused, total))


if __name__ == "__main__":
    main()
