#!/usr/bin/python3
"""test_package.py - the Debian package, end to end, on this machine (as
root, no systemd as PID 1 needed):

 1. build mqttd_<version>_<arch>.deb and the -dbgsym with
    `dpkg-buildpackage -us -uc -b` in a copy of the tree (the checkout is
    not touched: `git status` is compared before and after); the version is
    debian/changelog's and equals project(mqttd VERSION) in CMakeLists.txt;
 2. lintian: no error and no warning that is not overridden in debian/;
 3. dpkg -i: the system user, /var/lib/mqttd and /var/log/mqttd owned by
    it, the conffile, conf.d, unit and socket enabled but not started,
    tmpfiles, man pages, logrotate;
 4. `mqttd -t -c /etc/mqttd/mqttd.conf` as the packaged user;
 5. the packaged binary with the packaged configuration, started with
    runuser (no systemd), publishes and subscribes. The packaged
    configuration has no listener line, so mqttd would use its built-in
    one, 127.0.0.1/::1 port 1883; a listener in a conf.d drop-in replaces
    it, so the test puts one on a free ephemeral port there and never binds
    a fixed port;
 6. logrotate with the packaged /etc/logrotate.d/mqttd: the log is moved,
    the daemon (signalled through its pid file) writes a new one and the
    subscriber connected before the rotation stays connected;
 7. mqttd-certs, then the packaged TLS drop-in (/usr/share/mqttd/tls.conf
    with its ports 1883/8883 replaced by free ones): a client certificate
    publishes over mutual TLS;
 8. an upgrade to a bumped version (the same .deb repacked as
    VERSION+pkgtest1) keeps a locally edited conffile without a prompt;
 9. dpkg -r keeps the configuration, the user and the state;
10. dpkg -P removes the state, the certificates, the user, the group and
    every path `dpkg -L` listed (except directories other packages own).

Steps 3-10 run in a private mount namespace over a copy-on-write overlay
of the root file system (unshare -m, overlayfs with a tmpfs upper layer,
chroot): the same dpkg, binaries and kernel as the machine, but the user,
/etc, /var and /run changes never reach it, so other processes on a shared
machine never see an mqttd user (a root-started mqttd there would drop to
it) and nothing is left behind even if the test is killed. With --host
they run on the machine itself (a throw-away CI machine).

Whatever happens, the daemon is stopped and the package purged at the end.
Refuses to run (fails) if the mqttd package or an mqttd user is already
here, since the purge would remove them.

Run: /usr/bin/python3 tests/package/test_package.py [--host]   (as root)
"""

import glob
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.dont_write_bytecode = True  # git status before and after must agree
from harness import LogLines, Sub, free_port, pub  # noqa: E402

TIMEOUT = 20.0
CONF = "/etc/mqttd/mqttd.conf"
DROPIN_LISTENER = "/etc/mqttd/conf.d/zz-pkgtest-listener.conf"
DROPIN_LOG = "/etc/mqttd/conf.d/zz-pkgtest-log.conf"
LOGFILE = "/var/log/mqttd/mqttd.log"
PIDFILE = "/run/mqttd/mqttd.pid"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


T0 = time.monotonic()


def step(msg):
    print("== [%3.0f s] %s" % (time.monotonic() - T0, msg), flush=True)


def run(cmd, check_rc=True, **kw):
    """Run cmd (list), return CompletedProcess with text output; a non-zero
    exit fails the test unless check_rc is False."""
    kw.setdefault("timeout", 600)
    r = subprocess.run(cmd, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, **kw)
    if check_rc and r.returncode != 0:
        raise Failure("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode,
                                                r.stdout, r.stderr))
    return r


def installed_version():
    r = run(["dpkg-query", "-W", "-f=${Status} ${Version}", "mqttd"],
            check_rc=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def mode_owner(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


class Daemon(LogLines):
    """/usr/sbin/mqttd -c /etc/mqttd/mqttd.conf as the mqttd user, started
    with runuser; collects its stderr, signals it through its pid file."""

    name = "packaged daemon"
    failure = Failure

    def __init__(self):
        self.proc = subprocess.Popen(
            ["runuser", "-u", "mqttd", "--", "/usr/sbin/mqttd", "-c", CONF],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace")
        self.follow()
        self.wait_log(r"mqttd version .* starting")
        with open(PIDFILE) as f:
            self.pid = int(f.read().strip())
        check(pwd.getpwuid(os.stat("/proc/%d" % self.pid).st_uid).pw_name
              == "mqttd", "the daemon does not run as mqttd")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns the exit status (of runuser, which is the
        daemon's)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


class PackageTest:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="mqttd-pkgtest-")
        self.daemon = None
        self.paths = []

    # ---- 1. build ---------------------------------------------------------
    def git_status(self):
        if not os.path.isdir(os.path.join(SRC, ".git")) and \
                not os.path.isfile(os.path.join(SRC, ".git")):
            return None
        return run(["git", "-C", SRC, "status", "--porcelain",
                    "--ignored"]).stdout

    def build(self):
        step("build the package in a copy of the tree")
        before = self.git_status()
        tree = os.path.join(self.tmp, "mqttd")
        os.mkdir(tree)
        if before is not None:
            files = run(["git", "-C", SRC, "ls-files", "-co",
                         "--exclude-standard", "-z"]).stdout
        else:
            files = None
        tar_c = ["tar", "-C", SRC, "-cf", "-"]
        if files is not None:
            tar_c += ["--null", "-T", "-"]
        else:
            tar_c += ["--exclude=./build*", "--exclude=node_modules", "."]
        p1 = subprocess.Popen(tar_c, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=False)
        p2 = subprocess.Popen(["tar", "-C", tree, "-xf", "-"], stdin=p1.stdout)
        p1.stdout.close()
        p1.communicate(files.encode() if files is not None else None)
        check(p2.wait() == 0 and p1.returncode == 0, "copying the tree failed")

        version = run(["dpkg-parsechangelog", "-l",
                       os.path.join(tree, "debian", "changelog"),
                       "-S", "Version"]).stdout.strip()
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            m = re.search(r"project\(mqttd VERSION ([0-9.]+)", f.read())
        check(m and m.group(1) == version,
              "debian/changelog version %s is not CMakeLists.txt's %s"
              % (version, m and m.group(1)))
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % os.cpu_count())
        t0 = time.monotonic()
        r = run(["nice", "dpkg-buildpackage", "-us", "-uc", "-b"],
                check_rc=False, cwd=tree, env=env)
        with open(os.path.join(self.tmp, "build.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        check(r.returncode == 0, "dpkg-buildpackage failed:\n"
              + "\n".join((r.stdout + r.stderr).splitlines()[-40:]))
        print("   built in %.0f s" % (time.monotonic() - t0))
        self.version = version
        self.deb = os.path.join(self.tmp, "mqttd_%s_%s.deb" % (version, arch))
        self.dbgsym = os.path.join(self.tmp, "mqttd-dbgsym_%s_%s.deb"
                                   % (version, arch))
        self.changes = os.path.join(self.tmp, "mqttd_%s_%s.changes"
                                    % (version, arch))
        for f in (self.deb, self.dbgsym, self.changes):
            check(os.path.isfile(f), "%s was not built" % os.path.basename(f))
        after = self.git_status()
        check(before == after, "the build changed the checkout:\n%s\n---\n%s"
              % (before, after))

    # ---- 2. lintian -------------------------------------------------------
    def lintian(self):
        step("lintian")
        r = run(["lintian", "--fail-on", "error,warning", "--info",
                 self.changes], check_rc=False)
        out = (r.stdout + r.stderr).strip()
        print("\n".join("   " + l for l in out.splitlines()
                        if not l.startswith("N:")))
        check(r.returncode == 0, "lintian reports errors or warnings that "
              "debian/ does not explain (override them with a reason)")

    # ---- 3. install -------------------------------------------------------
    def install(self):
        step("dpkg -i")
        run(["dpkg", "-i", self.deb])
        check(installed_version() == "install ok installed " + self.version,
              "not installed: " + installed_version())
        self.paths = run(["dpkg", "-L", "mqttd"]).stdout.split("\n")
        self.paths = [p for p in self.paths if p and p != "/."]
        pw = pwd.getpwnam("mqttd")
        check(pw.pw_uid < 1000 and pw.pw_shell in ("/usr/sbin/nologin",
                                                   "/bin/false"),
              "mqttd is not a system user: %s" % (pw,))
        check(grp.getgrgid(pw.pw_gid).gr_name == "mqttd", "no mqttd group")
        for d in ("/var/lib/mqttd", "/var/log/mqttd"):
            check(mode_owner(d) == (0o750, "mqttd", "mqttd"),
                  "%s: %s" % (d, mode_owner(d)))
        check(mode_owner("/run/mqttd")[1] == "mqttd",
              "/run/mqttd (tmpfiles) is not the user's")
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}",
                         "mqttd"]).stdout
        for f in (CONF, "/etc/logrotate.d/mqttd", "/etc/mqttd/conf.d/README"):
            check(re.search(r"^ %s " % re.escape(f), conffiles, re.M),
                  "%s is not a conffile:\n%s" % (f, conffiles))
        for f in ("/usr/sbin/mqttd", "/usr/bin/mqttd-passwd",
                  "/usr/sbin/mqttd-certs", "/lib/systemd/system/mqttd.service",
                  "/lib/systemd/system/mqttd.socket",
                  "/usr/lib/tmpfiles.d/mqttd.conf", "/usr/share/mqttd/tls.conf",
                  "/usr/share/man/man8/mqttd.8.gz",
                  "/usr/share/man/man5/mqttd.conf.5.gz",
                  "/usr/share/man/man1/mqttd-passwd.1.gz",
                  "/usr/share/man/man8/mqttd-certs.8.gz"):
            check(f in self.paths, "%s not in the package" % f)
        with open(CONF) as f:
            check(re.search(r"^include_dir /etc/mqttd/conf\.d$", f.read(),
                            re.M), "mqttd.conf does not read conf.d")
        # enabled (deb-systemd-helper works without a running systemd) ...
        for link in ("/etc/systemd/system/multi-user.target.wants/mqttd.service",
                     "/etc/systemd/system/sockets.target.wants/mqttd.socket"):
            check(os.path.islink(link), "not enabled: " + link)
        # ... but started only where systemd runs
        if not os.path.isdir("/run/systemd/system"):
            r = run(["pgrep", "-u", "mqttd", "-x", "mqttd"], check_rc=False)
            check(r.returncode == 1, "mqttd was started without systemd")
        run(["logrotate", "-d", "/etc/logrotate.d/mqttd"])
        run(["mqttd-passwd", "-c", "-b", os.path.join(self.tmp, "pw"),
             "alice", "secret"])

    # ---- 4. -t as the user ------------------------------------------------
    def config_test(self):
        step("mqttd -t -c %s as mqttd" % CONF)
        r = run(["runuser", "-u", "mqttd", "--", "mqttd", "-t", "-c", CONF])
        check("is valid" in r.stdout + r.stderr, r.stdout + r.stderr)

    # ---- 5. run, publish, subscribe ----------------------------------------
    def start(self):
        self.daemon = Daemon()
        self.daemon.wait_log(r"Opening plain listen socket on 127\.0\.0\.1 "
                             r"port %d\." % self.port)

    def stop(self):
        if self.daemon is not None:
            rc = self.daemon.stop()
            self.daemon = None
            check(rc == 0, "the daemon exited %s" % rc)

    def run_daemon(self):
        step("the packaged daemon and configuration, runuser, pub/sub")
        self.port = free_port()
        with open(DROPIN_LISTENER, "w") as f:
            f.write("# test_package.py: an ephemeral port instead of the "
                    "built-in 1883\nlistener %d 127.0.0.1\n"
                    "allow_anonymous true\n" % self.port)
        with open(DROPIN_LOG, "w") as f:
            f.write("log_dest file %s\nconnection_messages true\n" % LOGFILE)
        self.config_test()
        self.start()
        sub = Sub(self.port, ["-t", "pkg/#", "-v", "-q", "1", "-i", "keeper"])
        try:
            sub.ready()
            pub(self.port, ["-t", "pkg/a", "-m", "one", "-q", "1"])
            sub.wait_for(r"^pkg/a one$")
            pub(self.port, ["-t", "pkg/retained", "-m", "kept", "-r"])
            self.logrotate(sub)
        finally:
            sub.kill()
        self.stop()
        db = "/var/lib/mqttd/mqttd.db"
        check(os.path.isfile(db) and mode_owner(db)[1] == "mqttd",
              "no persistence file %s owned by mqttd" % db)

    # ---- 6. logrotate -----------------------------------------------------
    def logrotate(self, sub):
        step("logrotate /etc/logrotate.d/mqttd (SIGHUP through the pid file)")
        check(os.path.getsize(LOGFILE) > 0, "nothing in " + LOGFILE)
        mark = self.daemon.mark()
        run(["logrotate", "-f", "-s", os.path.join(self.tmp, "lr.state"),
             "/etc/logrotate.d/mqttd"])
        check(os.path.isfile(LOGFILE + ".1"), "the log was not rotated")
        self.daemon.wait_log(r"Configuration reloaded\.", start=mark)
        pub(self.port, ["-t", "pkg/b", "-m", "two", "-q", "1", "-i",
                        "after-rotate"])
        sub.wait_for(r"^pkg/b two$")  # connected before the rotation
        # logged to stderr, then to the file: its end is logged later
        self.daemon.wait_log(r"Client after-rotate disconnected", start=mark)
        with open(LOGFILE) as f:
            check(" as after-rotate " in f.read(), "no new lines in " + LOGFILE)
        with open(LOGFILE + ".1") as f:
            check(" as after-rotate " not in f.read(),
                  "the daemon still writes to the rotated file")
        check(self.daemon.alive(), "the daemon died")

    # ---- 7. TLS bootstrap -------------------------------------------------
    def tls(self):
        step("mqttd-certs and the packaged TLS drop-in")
        r = run(["mqttd-certs"])
        print("   " + r.stdout.strip().replace("\n", "\n   "))
        d = "/etc/mqttd/certs"
        want = {d: (0o750, "root", "mqttd"),
                d + "/ca.key": (0o600, "root", "root"),
                d + "/ca.crt": (0o644, "root", "root"),
                d + "/server.crt": (0o644, "root", "root"),
                d + "/server.key": (0o640, "root", "mqttd"),
                d + "/client1.crt": (0o644, "root", "root"),
                d + "/client1.key": (0o600, "root", "root")}
        for path, mo in want.items():
            check(mode_owner(path) == mo, "%s: %s, want %s"
                  % (path, mode_owner(path), mo))
        san = run(["openssl", "x509", "-in", d + "/server.crt", "-noout",
                   "-ext", "subjectAltName"]).stdout
        check("DNS:localhost" in san and "IP Address:127.0.0.1" in san, san)
        tlsport = free_port()
        with open("/usr/share/mqttd/tls.conf") as f:
            text = f.read()
        text, n1 = re.subn(r"(?m)^listener 1883 ", "listener %d " % self.port,
                           text)
        text, n2 = re.subn(r"(?m)^listener 8883$", "listener %d" % tlsport,
                           text)
        check(n1 == 2 and n2 == 1, "tls.conf has changed its listeners")
        os.unlink(DROPIN_LISTENER)
        with open("/etc/mqttd/conf.d/tls.conf", "w") as f:
            f.write(text)
        self.config_test()  # the user can read the key
        self.start()
        self.daemon.wait_log(r"Opening TLS listen socket on all addresses "
                             r"port %d" % tlsport)
        sub = Sub(self.port, ["-t", "tls/#", "-v"])
        try:
            sub.ready()
            pub(tlsport, ["--cafile", d + "/ca.crt", "--cert",
                          d + "/client1.crt", "--key", d + "/client1.key",
                          "-t", "tls/x", "-m", "over-mtls"], host="localhost")
            sub.wait_for(r"^tls/x over-mtls$")
            r = pub(tlsport, ["--cafile", d + "/ca.crt", "-t", "tls/y", "-m",
                              "n"], host="localhost", check=False)
            check(r.returncode != 0, "TLS without a client certificate "
                  "was accepted")
        finally:
            sub.kill()
        self.stop()

    # ---- 8. upgrade -------------------------------------------------------
    def upgrade(self):
        step("upgrade to a bumped version with a locally edited conffile")
        with open(CONF, "a") as f:
            f.write("# local edit by test_package.py\nautosave_interval 123\n")
        root = os.path.join(self.tmp, "repack")
        run(["dpkg-deb", "-R", self.deb, root])
        ctl = os.path.join(root, "DEBIAN", "control")
        with open(ctl) as f:
            text = f.read()
        newver = self.version + "+pkgtest1"
        text, n = re.subn(r"(?m)^Version: .*$", "Version: " + newver, text)
        check(n == 1, "no Version: in the control file")
        with open(ctl, "w") as f:
            f.write(text)
        deb2 = os.path.join(self.tmp, "mqttd_%s.deb" % newver)
        run(["dpkg-deb", "--root-owner-group", "-b", root, deb2])
        # stdin is /dev/null: a conffile prompt would fail the install
        run(["dpkg", "-i", deb2])
        check(installed_version() == "install ok installed " + newver,
              installed_version())
        with open(CONF) as f:
            check("# local edit by test_package.py" in f.read(),
                  "the upgrade lost the local edit of " + CONF)
        left = glob.glob("/etc/mqttd/*.dpkg-*") + glob.glob(
            "/etc/mqttd/conf.d/*.dpkg-*")
        check(left == [], "conffile leftovers: %s" % left)
        check(os.path.isfile("/var/lib/mqttd/mqttd.db"),
              "the upgrade removed the state")
        self.config_test()
        self.start()
        sub = Sub(self.port, ["-t", "pkg/retained", "-v", "-C", "1"])
        try:
            sub.wait_for(r"^pkg/retained kept$")  # from the persistence file
        finally:
            sub.kill()
        self.stop()

    # ---- 9. remove --------------------------------------------------------
    def remove(self):
        step("dpkg -r keeps the configuration, user and state")
        run(["dpkg", "-r", "mqttd"])
        check(installed_version().startswith("deinstall ok config-files"),
              installed_version())
        check(not os.path.exists("/usr/sbin/mqttd"), "binary left")
        with open(CONF) as f:
            check("# local edit by test_package.py" in f.read(),
                  "remove changed " + CONF)
        pwd.getpwnam("mqttd")
        check(os.path.isfile("/var/lib/mqttd/mqttd.db"), "remove lost state")
        check(os.path.isfile("/etc/mqttd/certs/server.key"),
              "remove lost the certificates")

    # ---- 10. purge --------------------------------------------------------
    def purge(self):
        step("dpkg -P removes everything")
        # files an operator adds to conf.d are theirs: dpkg leaves them
        # (and their directory); the test's own go first
        for f in (DROPIN_LOG, "/etc/mqttd/conf.d/tls.conf"):
            os.unlink(f)
        run(["dpkg", "-P", "mqttd"])
        check(installed_version() == "", "still known to dpkg: "
              + installed_version())
        for name, db in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
            try:
                db("mqttd")
                raise Failure("the %s mqttd is still there" % name)
            except KeyError:
                pass
        left = [p for p in ("/var/lib/mqttd", "/var/log/mqttd", "/run/mqttd",
                            "/etc/mqttd",
                            "/var/lib/systemd/deb-systemd-helper-enabled/"
                            "mqttd.service.dsh-also")
                if os.path.lexists(p)]
        for p in self.paths:
            if not os.path.lexists(p):
                continue
            # a directory another package also owns (/usr/sbin, /etc, ...)
            if os.path.isdir(p) and run(
                    ["dpkg-query", "-S", p], check_rc=False).returncode == 0:
                continue
            left.append(p)
        for link in ("/etc/systemd/system/multi-user.target.wants/mqttd.service",
                     "/etc/systemd/system/sockets.target.wants/mqttd.socket"):
            if os.path.lexists(link):
                left.append(link)
        check(left == [], "left after purge: %s" % left)

    def lifecycle(self):
        """Steps 3-10; the package is purged whatever happens."""
        try:
            self.install()
            self.config_test()
            self.run_daemon()
            self.tls()
            self.upgrade()
            self.remove()
            self.purge()
        finally:
            if self.daemon is not None:
                self.daemon.stop()
            if installed_version():
                subprocess.run(["dpkg", "-P", "mqttd"],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)

    def main(self, host):
        check(os.geteuid() == 0, "run as root")
        check(installed_version() == "",
              "the mqttd package is installed here already (%s): the test "
              "would purge it; purge it first" % installed_version())
        try:
            pwd.getpwnam("mqttd")
            raise Failure("a user mqttd exists already: the test's purge "
                          "would delete it; remove it first")
        except KeyError:
            pass
        t0 = time.monotonic()
        try:
            self.build()
            self.lintian()
            if host:
                self.lifecycle()
            else:
                step("install, run, upgrade, remove, purge in a namespace "
                     "over an overlay of /")
                r = subprocess.run(
                    ["unshare", "--mount", "--propagation", "private", "--",
                     sys.executable, os.path.abspath(__file__), "--inside",
                     self.tmp, self.version, self.deb],
                    stdin=subprocess.DEVNULL)
                check(r.returncode == 0, "the package lifecycle failed")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        print("== package test passed in %.0f s" % (time.monotonic() - t0))


def enter_overlay(tmp):
    """In a fresh mount namespace (unshare -m): mount a copy-on-write view
    of / (overlayfs, tmpfs upper layer) with /proc, /sys, /dev, a fresh
    /run and the source and work trees bound in, and chroot into it."""
    base = os.path.join(tmp, "overlay")
    os.makedirs(base, exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755", "pkgtest", base])
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(base, d))
    root = os.path.join(base, "root")
    run(["mount", "-t", "overlay", "overlay", "-o",
         "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (base, base), root])
    for d in ("/proc", "/sys", "/dev"):
        run(["mount", "--rbind", d, root + d])
    run(["mount", "-t", "tmpfs", "-o", "mode=0755", "run", root + "/run"])
    # the trees may live on other file systems than / (say a tmpfs /tmp)
    for d in (SRC, tmp):
        os.makedirs(root + d, exist_ok=True)
        run(["mount", "--bind", d, root + d])
    os.chroot(root)
    os.chdir("/")


if __name__ == "__main__":
    try:
        if len(sys.argv) == 5 and sys.argv[1] == "--inside":
            t = PackageTest.__new__(PackageTest)
            t.tmp, t.version, t.deb = sys.argv[2:5]
            t.daemon, t.paths = None, []
            enter_overlay(t.tmp)
            t.lifecycle()
        else:
            PackageTest().main(host="--host" in sys.argv[1:])
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
