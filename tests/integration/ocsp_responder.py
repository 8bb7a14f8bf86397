#!/usr/bin/python3
"""ocsp_responder.py - a loopback-only OCSP responder front for tests and
local trials (certs/mkcerts.sh --ocsp builds the PKI it serves).

`openssl ocsp -port` listens on every interface and answers from the index
it read at start (stale after a revocation), so this front listens on
127.0.0.1 only and runs `openssl ocsp -index ... -reqin/-respout` once per
request: a revocation in index.txt (`openssl ca -revoke`) shows at once.

Misbehaviours for the broker's bad-input tests (attribute `mode`, or
--mode on the command line):
  good       answer as the index says (the default)
  delay      answer after `delay` seconds (threads: other requests go on)
  never      read the request, never answer (hold the connection)
  truncated  send the first half of the DER body, then close
  wrong      sign with rogue-signer (a CA-issued certificate without the
             OCSPSigning EKU)
  stale      a correctly signed answer whose nextUpdate is yesterday
  huge       announce and stream a 1 GiB body (sent bytes are counted)

As a module: r = Responder(dir); r.start(); r.port; r.requests; r.stop().
As a program: ocsp_responder.py --dir certs/ocsp [--port 2560].
"""
import argparse
import datetime
import http.server
import os
import subprocess
import tempfile
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server's naming)
        r = self.server.responder
        n = int(self.headers.get("Content-Length", "0"))
        if n <= 0 or n > 65536:
            self.send_error(400)
            return
        body = self.rfile.read(n)
        with r.lock:
            r.requests += 1
            mode, delay = r.mode, r.delay
        if mode == "never":
            r.hold.wait()
            return
        if mode == "delay":
            time.sleep(delay)
        if mode == "huge":
            self._huge(r)
            return
        der = r.answer(body, mode)
        if der is None:
            self.send_error(500)
            return
        if mode == "truncated":
            der = der[: len(der) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(der)))
        self.end_headers()
        self.wfile.write(der)

    def _huge(self, r):
        total = 1 << 30
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        # a DER SEQUENCE header claiming the whole gigabyte, then zeros
        chunk = b"\x30\x84\x3f\xff\xff\xfa" + bytes(65530)
        sent = 0
        try:
            while sent < total:
                self.wfile.write(chunk)
                sent += len(chunk)
                with r.lock:
                    r.huge_sent = sent
                chunk = bytes(65536)
        except OSError:
            pass


class Responder:
    """The front: one ThreadingHTTPServer on 127.0.0.1."""

    def __init__(self, pki, port=0, mode="good", delay=3.0):
        self.pki = pki
        self.mode = mode
        self.delay = delay
        self.requests = 0
        self.huge_sent = 0
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                   _Handler)
        self.srv.daemon_threads = True
        self.srv.responder = self
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d/" % self.port
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.hold.set()
        self.srv.shutdown()
        self.srv.server_close()

    def _p(self, name):
        return os.path.join(self.pki, name)

    def answer(self, req_der, mode):
        if mode == "stale":
            return self._stale(req_der)
        signer = "rogue-signer" if mode == "wrong" else "ocsp-signer"
        with tempfile.TemporaryDirectory() as d:
            reqf, respf = os.path.join(d, "req.der"), os.path.join(d, "resp")
            with open(reqf, "wb") as f:
                f.write(req_der)
            p = subprocess.run(
                ["openssl", "ocsp", "-index", self._p("index.txt"),
                 "-CA", self._p("ca.crt"),
                 "-rsigner", self._p(signer + ".crt"),
                 "-rkey", self._p(signer + ".key"),
                 "-reqin", reqf, "-respout", respf, "-nmin", "60"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                check=False)
            if p.returncode != 0 or not os.path.exists(respf):
                return None
            with open(respf, "rb") as f:
                return f.read()

    def _stale(self, req_der):
        """A well-signed answer whose validity ended yesterday."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        def read(name):
            with open(self._p(name), "rb") as f:
                return f.read()

        req = ocsp.load_der_ocsp_request(req_der)
        issuer = x509.load_pem_x509_certificate(read("ca.crt"))
        signer = x509.load_pem_x509_certificate(read("ocsp-signer.crt"))
        key = serialization.load_pem_private_key(read("ocsp-signer.key"), None)
        cert = None
        for name in os.listdir(self.pki):
            if name.endswith(".crt"):
                c = x509.load_pem_x509_certificate(read(name))
                if c.serial_number == req.serial_number:
                    cert = c
        if cert is None:
            return None
        now = datetime.datetime.utcnow()
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=issuer, algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now - datetime.timedelta(days=2),
            next_update=now - datetime.timedelta(days=1),
            revocation_time=None, revocation_reason=None)
        b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
        b = b.certificates([signer])
        for ext in req.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                b = b.add_extension(ext.value, critical=False)
        resp = b.sign(key, hashes.SHA256())
        return resp.public_bytes(serialization.Encoding.DER)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="certs/mkcerts.sh --ocsp "
                    "output (the ocsp/ directory)")
    ap.add_argument("--port", type=int, default=2560)
    ap.add_argument("--mode", default="good",
                    choices=["good", "delay", "never", "truncated", "wrong",
                             "stale", "huge"])
    ap.add_argument("--delay", type=float, default=3.0)
    a = ap.parse_args()
    r = Responder(a.dir, a.port, a.mode, a.delay)
    print("OCSP responder on %s (%s)" % (r.url, a.mode), flush=True)
    try:
        r.srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
