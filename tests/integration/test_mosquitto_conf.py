"""Configurations Mosquitto 2.0 starts must start (issue 14).

Every key of the installed mosquitto.conf(5) and every example line of
Debian's /usr/share/doc/mosquitto/examples/mosquitto.conf (uncommented) and
of the man page is fed to `mqttd -t -c FILE`, and the result is checked
against the classification in docs/differences.md, kept here as CLASS:

  ok       exit 0, no warning, no error
  warn     exit 0 and a "FILE:LINE: warning: ... 'KEY' ..." line
  refused  exit 1 and a "FILE:LINE: ... 'KEY' ..." error

A key that appears in the installed documentation but not in CLASS fails
the test: a new Mosquitto key must be classified (and documented)."""

import gzip
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import MQTTD, SRC, Broker, connect_pkt

MAN = "/usr/share/man/man5/mosquitto.conf.5.gz"
EXAMPLE = "/usr/share/doc/mosquitto/examples/mosquitto.conf"

BRIDGE = ("address addresses bridge_alpn bridge_attempt_unsubscribe "
          "bridge_bind_address bridge_cafile bridge_capath bridge_certfile "
          "bridge_identity bridge_insecure bridge_keyfile "
          "bridge_max_packet_size bridge_outgoing_retain "
          "bridge_protocol_version bridge_psk bridge_require_ocsp "
          "bridge_tls_version cleansession clientid connection idle_timeout "
          "keepalive_interval local_cleansession local_clientid "
          "local_password local_username notification_topic notifications "
          "notifications_local_only password remote_clientid remote_password "
          "remote_username restart_timeout round_robin start_type threshold "
          "topic try_private username").split()

# Bridge keys are implemented (docs/bridges.md), tested inside a bridge
# section (BRIDGE_HEAD); these four are refused by name.
BRIDGE_REFUSED = {"bridge_bind_address", "bridge_identity", "bridge_psk",
                  "bridge_require_ocsp"}
CLASS = {k: ("refused" if k in BRIDGE_REFUSED else "ok") for k in BRIDGE}
BRIDGE_HEAD = ["connection b", "address 127.0.0.1:1", "topic x/# both"]
# what a bridge TLS key needs next to it to be valid
BRIDGE_TLS_CTX = {
    "bridge_cafile": [], "bridge_capath": [],
    "bridge_alpn": ["bridge_cafile {certs}/ca.crt"],
    "bridge_insecure": ["bridge_cafile {certs}/ca.crt"],
    "bridge_certfile": ["bridge_cafile {certs}/ca.crt",
                        "bridge_keyfile {certs}/client1.key"],
    "bridge_keyfile": ["bridge_cafile {certs}/ca.crt",
                       "bridge_certfile {certs}/client1.crt"],
    "password": ["remote_username u"],
    "remote_password": ["remote_username u"],
}
CLASS.update({
    "acl_file": "ok", "allow_anonymous": "ok",
    "allow_duplicate_messages": "warn", "allow_zero_length_clientid": "ok",
    "auth_opt_*": "refused", "auth_plugin": "refused",
    "auth_plugin_deny_special_chars": "warn", "auto_id_prefix": "ok",
    "autosave_interval": "ok", "autosave_on_changes": "ok",
    "bind_address": "ok", "bind_interface": "refused", "cafile": "ok",
    "capath": "ok", "certfile": "ok", "check_retain_source": "warn",
    "ciphers": "ok", "ciphers_tls1.3": "ok", "clientid_prefixes": "refused",
    "connection_messages": "ok", "crlfile": "ok", "dhparamfile": "ok",
    "http_dir": "warn", "include_dir": "ok", "keyfile": "ok",
    "listener": "ok", "log_dest": "ok", "log_facility": "warn",
    "log_timestamp": "ok", "log_timestamp_format": "ok", "log_type": "ok",
    "max_connections": "ok", "max_inflight_bytes": "ok",
    "max_inflight_messages": "ok", "max_keepalive": "ok",
    "max_packet_size": "ok", "max_qos": "ok", "maximum_qos": "ok",
    "max_queued_bytes": "ok", "max_queued_messages": "ok",
    "max_topic_alias": "ok", "memory_limit": "ok",
    "message_size_limit": "ok", "mount_point": "refused",
    "password_file": "ok", "per_listener_settings": "ok",
    "persistence": "ok", "persistence_file": "ok",
    "persistence_location": "ok", "persistent_client_expiration": "ok",
    "pid_file": "ok", "plugin": "refused", "port": "ok", "protocol": "ok",
    "psk_file": "refused", "psk_hint": "refused",
    "queue_qos0_messages": "ok", "require_certificate": "ok",
    "retain_available": "ok", "retry_interval": "warn",
    "set_tcp_nodelay": "ok", "socket_domain": "ok", "sys_interval": "ok",
    "tls_engine": "warn", "tls_engine_kpass_sha1": "refused",
    "tls_keyform": "ok", "tls_version": "ok", "upgrade_outgoing_qos": "ok",
    "use_identity_as_username": "ok", "use_subject_as_username": "ok",
    "use_username_as_clientid": "refused", "user": "ok",
    "websockets_headers_size": "ok", "websockets_log_level": "warn",
})

# Values for keys whose example has none (or names a file of its own).
SAMPLE = {
    "acl_file": "{dir}/acl", "password_file": "{dir}/passwd",
    "psk_file": "{dir}/psk", "auth_opt_*": "auth_opt_db_host localhost",
    "auth_plugin": "/usr/lib/x.so", "plugin": "/usr/lib/x.so",
    "bind_address": "127.0.0.1", "bind_interface": "lo",
    "cafile": "{certs}/ca.crt", "capath": "{certs}",
    "certfile": "{certs}/server.crt", "keyfile": "{certs}/server.key",
    "crlfile": "{certs}/crl.pem", "dhparamfile": "{certs}/dhparam.pem",
    "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ciphers_tls1.3": "TLS_AES_128_GCM_SHA256",
    "clientid_prefixes": "secure-", "http_dir": "/usr/share/mosquitto/www",
    "include_dir": "{dir}/conf.d", "listener": "{port2} 127.0.0.1",
    "log_facility": "5", "log_timestamp_format": "%Y-%m-%dT%H:%M:%S",
    "mount_point": "tenant/", "persistence_location": "{dir}/",
    "persistent_client_expiration": "14d", "pid_file": "{dir}/mqttd.pid",
    "port": "{port2}", "psk_hint": "hint", "socket_domain": "ipv4",
    "tls_engine": "pkcs11", "tls_engine_kpass_sha1": "0" * 40,
    "tls_keyform": "pem", "tls_version": "tlsv1.2",
    "use_username_as_clientid": "true", "websockets_headers_size": "4096",
    "retry_interval": "20", "maximum_qos": "1", "max_qos": "1",
    "allow_duplicate_messages": "false",
    "auth_plugin_deny_special_chars": "true", "allow_anonymous": "false",
    "auto_id_prefix": "auto-", "log_dest": "stderr", "log_type": "all",
    "max_topic_alias": "10", "use_subject_as_username": "false",
    "connection": "b2", "address": "127.0.0.1:1884",
    "addresses": "127.0.0.1:1884 127.0.0.2", "topic": "y/# in 1 l/ r/",
    "bridge_attempt_unsubscribe": "true", "bridge_alpn": "mqtt",
    "bridge_cafile": "{certs}/ca.crt", "bridge_capath": "{certs}",
    "bridge_certfile": "{certs}/client1.crt",
    "bridge_keyfile": "{certs}/client1.key", "bridge_insecure": "false",
    "bridge_max_packet_size": "0", "bridge_outgoing_retain": "true",
    "bridge_protocol_version": "mqttv311", "bridge_tls_version": "tlsv1.2",
    "cleansession": "false", "local_cleansession": "false",
    "clientid": "c", "remote_clientid": "c", "local_clientid": "lc",
    "idle_timeout": "60", "keepalive_interval": "60",
    "local_password": "p", "local_username": "u", "password": "p",
    "remote_password": "p", "remote_username": "u", "username": "u",
    "notification_topic": "n/state", "notifications": "true",
    "notifications_local_only": "false", "restart_timeout": "5 30",
    "round_robin": "false", "start_type": "automatic", "threshold": "10",
    "try_private": "true",
}
PATH_KEYS = {"acl_file", "password_file", "psk_file", "cafile", "capath",
             "bridge_cafile", "bridge_capath", "bridge_certfile",
             "bridge_keyfile",
             "certfile", "keyfile", "crlfile", "dhparamfile", "include_dir",
             "persistence_location", "pid_file", "http_dir"}
TLS_KEYS = {"cafile", "capath", "certfile", "keyfile", "ciphers",
            "ciphers_tls1.3", "crlfile", "dhparamfile", "require_certificate",
            "tls_version", "tls_keyform", "use_identity_as_username",
            "use_subject_as_username"}
FIRST_KEYS = {"per_listener_settings"}
SECTIONS = ("GENERAL OPTIONS", "LISTENERS", "CONFIGURING BRIDGES")


def roff(s):
    return s.replace("\\&", "").replace("\\-", "-").replace("\\*(Aq", "'")


def man_keys_and_examples():
    """Keys (each option entry of the option sections) and example lines
    (lines of those sections that start with a key and give a value)."""
    with gzip.open(MAN, "rt") as f:
        lines = f.read().split("\n")
    keys, examples, section = [], [], None
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            section = line[4:].strip('"')
            continue
        if section not in SECTIONS:
            continue
        if line == ".PP" and i + 1 < len(lines):
            m = re.match(r"\\fB([a-z][a-z0-9_*]*(?:\\&\.[0-9]+)?)\\fR",
                         lines[i + 1])
            if m and roff(m.group(1)) not in keys:
                keys.append(roff(m.group(1)))
    for line in lines:
        words = roff(line).split()
        if (len(words) >= 2 and words[0] in keys and "<" not in line
                and not line.endswith("\\&.") and not line.startswith(".")):
            examples.append(roff(line).strip())
    return keys, examples


def example_file_lines():
    """(key, value or None) for every '#key ...' line of Debian's
    example mosquitto.conf."""
    out = []
    with open(EXAMPLE) as f:
        for line in f:
            m = re.match(r"#([a-z][a-z0-9_.]*)(?:\s+(.*?))?\s*$", line)
            if m:
                value = m.group(2)
                if value and "<" in value:
                    value = None
                out.append((m.group(1), value or None))
    return out


def class_of(key):
    if key.startswith("auth_opt_"):
        return CLASS.get("auth_opt_*")
    return CLASS.get(key)


class MosquittoConfigs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for path in (MAN, EXAMPLE):
            if not os.path.exists(path):
                raise AssertionError("%s is missing: install the mosquitto "
                                     "package (tests/install-deps.sh)" % path)
        cls.dir = tempfile.mkdtemp(prefix="mqttd-mosqconf-")
        cls.certs = os.path.join(cls.dir, "certs")
        subprocess.run(["bash", os.path.join(SRC, "certs", "mkcerts.sh"),
                        cls.certs], check=True, capture_output=True,
                       timeout=120)
        for name in ("acl", "passwd", "psk"):
            open(os.path.join(cls.dir, name), "w").close()
        for name in ("conf.d", "one.d", "two.d"):
            os.mkdir(os.path.join(cls.dir, name))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def fill(self, text):
        return (text.replace("{dir}", self.dir).replace("{certs}", self.certs)
                .replace("{port2}", "18884"))

    def config_for(self, key, line):
        """The whole file around one example line, and that line's number."""
        head = ["listener 18883 127.0.0.1"]
        if key in TLS_KEYS:
            ctx = {"certfile": "certfile {certs}/server.crt",
                   "keyfile": "keyfile {certs}/server.key",
                   "cafile": "cafile {certs}/ca.crt"}
            if key == "capath":
                del ctx["cafile"]
            ctx.pop(key, None)
            head += list(ctx.values())
        if key in FIRST_KEYS:
            lines = [line] + head
            n = 1
        elif key == "connection":
            lines = head + [line] + BRIDGE_HEAD[1:]
            n = len(head) + 1
        elif key in BRIDGE and key not in BRIDGE_REFUSED:
            lines = head + BRIDGE_HEAD + BRIDGE_TLS_CTX.get(key, []) + [line]
            n = len(lines)
        else:
            lines = head + [line]
            n = len(lines)
        return self.fill("\n".join(lines) + "\n"), n

    def check(self, key, line):
        cls = class_of(key)
        self.assertIsNotNone(cls, "Mosquitto key '%s' is not classified in "
                             "docs/differences.md / this test" % key)
        text, n = self.config_for(key, line)
        path = os.path.join(self.dir, "t.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([MQTTD, "-t", "-c", path], capture_output=True,
                           text=True, timeout=20, cwd=self.dir)
        shown = key if not key.startswith("auth_opt_") else line.split()[0]
        where = "%s:%d: " % (path, n)
        ours = [ln for ln in r.stderr.splitlines() if ln.startswith(where)]
        msg = "%r (%s):\n%s\nstderr:\n%s" % (line, cls, text, r.stderr)
        if cls == "ok":
            self.assertEqual(r.returncode, 0, msg)
            self.assertNotIn(": warning: ", r.stderr, msg)
        elif cls == "warn":
            self.assertEqual(r.returncode, 0, msg)
            self.assertTrue(any(ln.startswith(where + "warning: ") and
                                "'%s" % shown in ln for ln in ours), msg)
        else:
            self.assertEqual(r.returncode, 1, msg)
            self.assertTrue(any("'%s" % shown in ln and "warning" not in ln
                                for ln in ours), msg)
        # nothing but the line under test may complain
        others = [ln for ln in r.stderr.splitlines()
                  if re.match(r".*:\d+: ", ln) and not ln.startswith(where)]
        self.assertEqual(others, [], msg)

    def test_every_man_page_key(self):
        keys, _ = man_keys_and_examples()
        self.assertGreater(len(keys), 90, "man page parse found too little")
        from_file = {k: v for k, v in example_file_lines()
                     if v is not None and k not in PATH_KEYS}
        for key in keys:
            with self.subTest(key=key):
                if key == "auth_opt_*":
                    line = SAMPLE[key]
                else:
                    value = SAMPLE.get(key, from_file.get(key))
                    if value is None and class_of(key) == "refused":
                        value = "value"
                    self.assertIsNotNone(value, "no sample value for '%s'"
                                         % key)
                    line = "%s %s" % (key, value)
                self.check(key, line)

    def test_man_page_example_lines(self):
        _, examples = man_keys_and_examples()
        self.assertGreater(len(examples), 5)
        for line in examples:
            key = line.split()[0]
            if key == "include_dir":
                line = "include_dir %s/%s" % (self.dir, line.split()[1])
            with self.subTest(line=line):
                self.check(key, line)

    def test_example_file_lines(self):
        lines = example_file_lines()
        self.assertGreater(len(lines), 80, "example file parse found too "
                           "little")
        for key, value in lines:
            if value is None or key in PATH_KEYS:
                value = SAMPLE.get(key)
            if value is None:
                value = "value"
            with self.subTest(key=key, value=value):
                self.check(key, "%s %s" % (key, value))

    def test_whole_example_file_parses(self):
        """The file as installed (everything commented out) is valid."""
        r = subprocess.run([MQTTD, "-t", "-c", EXAMPLE], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_use_identity_without_client_certificates_warns(self):
        text = ("listener 18883\ncertfile {certs}/server.crt\n"
                "keyfile {certs}/server.key\nuse_identity_as_username true\n")
        path = os.path.join(self.dir, "uid.conf")
        with open(path, "w") as f:
            f.write(self.fill(text))
        r = subprocess.run([MQTTD, "-t", "-c", path], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, re.escape(path) + r":4: warning: "
                         r"'use_identity_as_username'.*refused")


class IdentityWithoutClientCertificates(unittest.TestCase):
    """use_identity_as_username true without require_certificate starts,
    and a client without a certificate is refused the way Debian's
    Mosquitto 2.0.11 refuses it (measured): CONNACK 4 (v3) / 0x86 (v5)."""

    def setUp(self):
        self.certs = tempfile.mkdtemp(prefix="mqttd-certs-")
        subprocess.run(["bash", os.path.join(SRC, "certs", "mkcerts.sh"),
                        self.certs], check=True, capture_output=True,
                       timeout=120)
        c = self.certs
        self.b = Broker("listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "certfile %s/server.crt\nkeyfile %s/server.key\n"
                        "use_identity_as_username true\n" % (c, c)).start()

    def tearDown(self):
        alive = self.b.alive()
        rc = self.b.stop()
        shutil.rmtree(self.certs, ignore_errors=True)
        self.assertTrue(alive)
        self.assertEqual(rc, 0)

    def connack(self, version):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs,
                                                             "ca.crt"))
        ctx.check_hostname = False
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1",
                                                      self.b.port), 10))
        self.addCleanup(s.close)
        s.sendall(connect_pkt("nocert%d" % version, version=version))
        data = b""
        while len(data) < 4 and (len(data) < 2 or len(data) < 2 + data[1]):
            d = s.recv(100)
            if not d:
                break
            data += d
        return data

    def test_warning_logged_and_client_without_certificate_refused(self):
        self.b.wait_log(r"warning: 'use_identity_as_username'")
        v3 = self.connack(4)
        self.assertEqual(v3[:4], b"\x20\x02\x00\x04")
        v5 = self.connack(5)  # CONNACK, flags 0, 0x86 (properties follow)
        self.assertEqual((v5[0], v5[2], v5[3]), (0x20, 0, 0x86))


if __name__ == "__main__":
    unittest.main()
