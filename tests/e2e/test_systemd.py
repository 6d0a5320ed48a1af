"""systemd integration: the unit files and the protocols they rely on.

  - systemd/awaitd.service.in and awaitd.socket: `systemd-analyze verify`
    without a single message, and `systemd-analyze security --offline=true`
    with an overall exposure of at most 2.0 (rendered with the built daemon
    as ExecStart, since verify checks that the binary exists);
  - the units agree with conf/awaitd.conf (socket addresses, stop timeout
    above shutdown_grace) and the install rules (systemd.am);
  - sd_notify end to end, with a datagram socket of our own as
    NOTIFY_SOCKET: READY=1 and STATUS=, RELOADING=1/READY=1 around a good and
    around a broken SIGHUP reload (the good one applied, the broken one not),
    STOPPING=1 and exit 0 on SIGTERM, WATCHDOG=1 at half WATCHDOG_USEC;
  - socket activation end to end: listening sockets passed as fd 3.. by
    exec_listen.py (LISTEN_PID must be the daemon's own PID, so it is set
    after the fork) are served, and the config's listen line is not bound;
  - SIGHUP reloads while 200 keep-alive connections are busy lose nothing;
  - the man pages format without warnings and describe every config key.

systemd-analyze comes with Debian's systemd package; without it the unit
tests fail (they do not skip): install it (scripts/setup lists it).
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from awaitd_test import AWAITD, SRCDIR, HOST, START_TIMEOUT, Daemon, free_port, recv_all

SYSTEMD_DIR = os.path.join(SRCDIR, "systemd")
SERVICE_IN = os.path.join(SYSTEMD_DIR, "awaitd.service.in")
SOCKET = os.path.join(SYSTEMD_DIR, "awaitd.socket")
SAMPLE_CONF = os.path.join(SRCDIR, "conf", "awaitd.conf")
MAN_PAGES = {"8": os.path.join(SRCDIR, "man", "awaitd.8.in"),
             "5": os.path.join(SRCDIR, "man", "awaitd.conf.5.in")}
EXEC_LISTEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_listen.py")
MAX_EXPOSURE = 2.0
NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
               "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def systemd_analyze():
    path = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not os.access(path, os.X_OK):
        raise AssertionError("systemd-analyze not found: install Debian's systemd package "
                             "(apt-get install systemd; scripts/setup does it)")
    return path


def unit_entries(path):
    """[(section, key, value)] of a unit file or an awaitd config, in order
    (comment lines dropped)."""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            k, _, v = line.partition("=")
            out.append((section, k.strip(), v.strip()))
    return out


def unit_values(path, section, key):
    return [v for s, k, v in unit_entries(path) if s == section and k == key]


def seconds(text):
    """A config duration or a systemd time span of one unit (10s, 250ms, 1.5, 2min)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?", text)
    if not m:
        raise ValueError("cannot read the duration %r" % text)
    mult = {"ms": 0.001, None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * mult


def conf_values(path, section, key):
    """The values of an awaitd config's key, without a trailing " # comment"."""
    return [v.split(" #")[0].strip() for s, k, v in unit_entries(path) if s == section and k == key]


def render_units(dest):
    """The units as make would install them, in dest, with bindir a directory
    holding the built daemon as 'awaitd' and sysconfdir dest itself."""
    bindir = os.path.join(dest, "bin")
    os.makedirs(bindir)
    os.symlink(os.path.abspath(AWAITD), os.path.join(bindir, "awaitd"))
    with open(SERVICE_IN) as f:
        text = f.read()
    text = text.replace("@bindir@", bindir).replace("@sysconfdir@", dest)
    left = re.findall(r"@[a-z_]+@", text)
    if left:
        raise AssertionError("awaitd.service.in: %s not substituted by this test; "
                             "keep it in step with systemd/systemd.am" % left)
    service = os.path.join(dest, "awaitd.service")
    with open(service, "w") as f:
        f.write(text)
    socket_unit = os.path.join(dest, "awaitd.socket")
    shutil.copyfile(SOCKET, socket_unit)
    shutil.copyfile(SAMPLE_CONF, os.path.join(dest, "awaitd.conf"))
    return service, socket_unit


def run(argv, env=None, timeout=60):
    e = dict(os.environ)
    e.update({"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0",
              "SYSTEMD_LOG_LOCATION": "0"})
    e.update(env or {})
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


# ---- the unit files ------------------------------------------------------------------

class UnitFileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="awaitd-units-")
        self.service, self.socket = render_units(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_verify(self):
        """systemd-analyze verify: exit 0 and not one line of output (unknown
        keys, bad values and missing binaries are all reported there)."""
        sa = systemd_analyze()
        env = {}
        args = [sa, "verify"]
        if shutil.which("man"):
            # Documentation=man:... is checked against our own pages.
            mandir = os.path.join(self.tmp.name, "man")
            for sec, page in MAN_PAGES.items():
                os.makedirs(os.path.join(mandir, "man" + sec))
                name = os.path.basename(page)[:-len(".in")]  # the @paths@ do not matter here
                shutil.copy(page, os.path.join(mandir, "man" + sec, name))
            env["MANPATH"] = mandir
        else:
            args.append("--man=no")
        rc, out = run(args + [self.service, self.socket], env=env)
        self.assertEqual((rc, out), (0, ""), "systemd-analyze verify found problems")

    def test_verify_catches_mistakes(self):
        """The verify run above is not vacuous: a missing ExecStart binary fails."""
        sa = systemd_analyze()
        with open(self.service) as f:
            text = f.read()
        with open(self.service, "w") as f:
            f.write(re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/nonexistent/awaitd", text))
        rc, out = run([sa, "verify", "--man=no", self.service, self.socket])
        self.assertNotEqual(rc, 0, out)
        self.assertIn("/nonexistent/awaitd", out)

    def test_security_exposure(self):
        sa = systemd_analyze()
        rc, out = run([sa, "security", "--offline=true", "--no-pager", self.service])
        m = re.search(r"Overall exposure level for awaitd\.service:\s*(\d+(?:\.\d+)?)", out)
        self.assertIsNotNone(m, "no 'Overall exposure level' line (exit %d):\n%s" % (rc, out))
        score = float(m.group(1))
        sys.stderr.write("\nsystemd-analyze security: exposure %.1f\n" % score)
        self.assertLessEqual(score, MAX_EXPOSURE, out)

    def test_service_settings(self):
        """The settings the daemon's behaviour depends on."""
        get = lambda key: unit_values(self.service, "Service", key)
        self.assertEqual(get("Type"), ["notify"])
        bindir = os.path.join(self.tmp.name, "bin")
        self.assertEqual(get("ExecStart"), ["%s/awaitd -c %s/awaitd.conf"
                                            % (bindir, self.tmp.name)])
        self.assertEqual(get("ExecReload"), ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(get("Restart"), ["on-failure"])
        self.assertTrue(get("WatchdogSec"))
        self.assertEqual(get("StateDirectory"), ["awaitd"])
        self.assertGreaterEqual(int(get("LimitNOFILE")[0]), 2 * 10000)
        # systemd must not SIGKILL a drain that shutdown_grace still allows.
        grace = conf_values(SAMPLE_CONF, "server", "shutdown_grace")
        grace = seconds(grace[0]) if grace else 10.0
        self.assertGreater(seconds(get("TimeoutStopSec")[0]), grace + 5)
        # No capability at all: ports below 1024 come from the socket unit.
        self.assertEqual(get("CapabilityBoundingSet"), [""])
        self.assertEqual(get("AmbientCapabilities"), [""])
        # Reload keeps working through the sandbox: AF_UNIX for sd_notify.
        fams = " ".join(get("RestrictAddressFamilies")).split()
        self.assertEqual(sorted(fams), ["AF_INET", "AF_INET6", "AF_UNIX"])

    def test_socket_matches_default_config(self):
        """awaitd.socket listens where conf/awaitd.conf does, names its
        sockets "http", and activates awaitd.service."""
        listen = unit_values(self.socket, "Socket", "ListenStream")
        self.assertEqual(sorted(listen), sorted(conf_values(SAMPLE_CONF, "server", "listen")))
        self.assertEqual(unit_values(self.socket, "Socket", "FileDescriptorName"), ["http"])
        self.assertEqual(unit_values(self.socket, "Socket", "BindIPv6Only"), ["ipv6-only"])
        backlog = conf_values(SAMPLE_CONF, "server", "backlog") or ["4096"]
        self.assertEqual(unit_values(self.socket, "Socket", "Backlog"), backlog)
        self.assertEqual(unit_values(self.socket, "Socket", "Service"), ["awaitd.service"])
        self.assertEqual(unit_values(self.socket, "Install", "WantedBy"), ["sockets.target"])

    def test_installed_config_journal_path(self):
        """systemd.am points the installed config's journal into the
        StateDirectory: the sample's line must be the one its sed expects."""
        with open(os.path.join(SYSTEMD_DIR, "systemd.am")) as f:
            am = f.read()
        m = re.search(r"^AWAITD_JOURNAL = (\S+)$", am, re.M)
        self.assertIsNotNone(m, "AWAITD_JOURNAL not found in systemd.am")
        self.assertEqual(m.group(1), "/var/lib/%s/awaitd.journal"
                         % unit_values(self.service, "Service", "StateDirectory")[0])
        self.assertEqual(conf_values(SAMPLE_CONF, "journal", "path"), ["var/awaitd.journal"])
        # The edited config is valid.
        with open(SAMPLE_CONF) as f:
            text = f.read()
        edited = re.sub(r"(?m)^path = var/awaitd\.journal$", "path = " + m.group(1), text)
        self.assertNotEqual(text, edited)
        conf = os.path.join(self.tmp.name, "installed.conf")
        with open(conf, "w") as f:
            f.write(edited)
        p = subprocess.run([AWAITD, "-t", "-c", conf], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=Daemon._env(), timeout=10)
        self.assertEqual(p.returncode, 0, p.stdout.decode())


# ---- man pages ---------------------------------------------------------------------

class ManPageTest(unittest.TestCase):
    def test_groff_no_warnings(self):
        groff = shutil.which("groff")
        if not groff:
            self.skipTest("groff not installed (Debian's groff-base)")
        for page in MAN_PAGES.values():
            rc, out = run([groff, "-man", "-Tutf8", "-ww", "-z", page])
            self.assertEqual((rc, out), (0, ""), page)

    def test_every_config_key_documented(self):
        with open(os.path.join(SRCDIR, "src", "core", "config.c")) as f:
            keys = re.findall(r'\{SEC_([A-Z]+), "([a-z_]+)"', f.read())
        self.assertGreater(len(keys), 20)
        with open(MAN_PAGES["5"]) as f:
            page = f.read()
        sections = {}
        for m in re.finditer(r"(?m)^\.SH (.*)\n((?:(?!\.SH ).*\n)*)", page):
            sections[m.group(1).strip('"')] = m.group(2)
        missing = []
        for sec, key in keys:
            name = "[queue NAME]" if sec == "QUEUE" else "[%s]" % sec.lower()
            if not re.search(r"(?m)^\.BR %s " % re.escape(key), sections.get(name, "")):
                missing.append("%s %s" % (name, key))
        self.assertEqual(missing, [], "keys of src/core/config.c not described in awaitd.conf.5")


# ---- sd_notify and socket activation, end to end -----------------------------------------

class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.log = []  # (monotonic time, message), every message received

    def close(self):
        self.sock.close()

    def recv(self, timeout):
        """One message, or None after timeout seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = data.decode("utf-8", "replace")
        self.log.append((time.monotonic(), msg))
        return msg

    def drain(self):
        while self.recv(0.001) is not None:
            pass

    def wait_for(self, field, timeout=10.0):
        """Messages up to and including the first with the line `field`
        (e.g. "READY=1"); AssertionError with what came when it does not."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self.recv(left) if left > 0 else None
            if msg is None:
                raise AssertionError("no %s within %.1f s; received %r" % (field, timeout, got))
            got.append(msg)
            if field in msg.split("\n"):
                return got

    def collect(self, seconds):
        out = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            msg = self.recv(left)
            if msg is not None:
                out.append(msg)


def fields(msgs, prefix=""):
    """The lines of the messages, in order, starting with prefix."""
    return [f for m in msgs for f in m.split("\n") if f.startswith(prefix)]


def state_fields(msgs):
    """READY/RELOADING/STOPPING lines in order (STATUS= and WATCHDOG= dropped)."""
    return [f for f in fields(msgs) if f.split("=")[0] in ("READY", "RELOADING", "STOPPING")]


class SdDaemon(Daemon):
    """A Daemon started the way systemd would: extra environment (NOTIFY_SOCKET,
    WATCHDOG_USEC, ...), optionally through exec_listen.py with sockets passed."""

    def __init__(self, config=None, env=None, listen_fds=(), exec_listen_args=(), port=None):
        super().__init__(config)
        self.extra_env = dict(env or {})
        self.listen_fds = list(listen_fds)  # [(fd, name)]
        self.exec_listen_args = list(exec_listen_args)
        self.serve_port = port

    def _env(self):
        env = Daemon._env()
        for k in NOTIFY_VARS:
            env.pop(k, None)
        env.update(self.extra_env)
        return env

    def start(self, timeout=START_TIMEOUT, wait_http=True):
        self.tmpdir = self.tmpdir or tempfile.mkdtemp(prefix="awaitd-sd-")
        self.conf_path = os.path.join(self.tmpdir, "awaitd.conf")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self._write_config()
        if self.serve_port:
            self.port = self.serve_port
        argv = [self.binary, "-c", self.conf_path]
        if self.listen_fds or self.exec_listen_args:
            wrap = [sys.executable, EXEC_LISTEN] + self.exec_listen_args
            for fd, name in self.listen_fds:
                wrap += ["--fd", "%d:%s" % (fd, name) if name else str(fd)]
            argv = wrap + ["--"] + argv
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                     stderr=self._stderr_file, cwd=self.tmpdir, env=self._env(),
                                     pass_fds=[fd for fd, _ in self.listen_fds])
        self.returncode = None
        if wait_http:
            err = self._wait_ready(timeout)
            if err is not None:
                self._kill()
                raise AssertionError("awaitd did not start (%s); config:\n%s\nstderr:\n%s"
                                     % (err, self.config_text, self.stderr()))
        return self

    def write_config(self, text):
        with open(self.conf_path, "w") as f:
            f.write(text)

    def get_on(self, port, path="/get", timeout=5.0):
        saved, self.port = self.port, port
        try:
            return self.http("GET", path, timeout=timeout)
        finally:
            self.port = saved


def refused(port, host=HOST, family=socket.AF_INET):
    """True when nothing listens on host:port."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def listening_socket(family=socket.AF_INET, host=HOST):
    s = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, 0))
    s.listen(128)
    return s


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class SdTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="awaitd-notify-")
        self.notify = NotifySocket(self.tmp.name)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            if d.proc is not None:
                d._kill()
                d.proc = None
            d.cleanup()
        self.notify.close()
        self.tmp.cleanup()

    def daemon(self, config, env=None, **kw):
        env = dict(env or {})
        env.setdefault("NOTIFY_SOCKET", self.notify.path)
        d = SdDaemon(config, env=env, **kw)
        self.daemons.append(d)
        return d

    def reload(self, d, text=None):
        """Write text (if given), SIGHUP, and return the state lines up to READY=1."""
        if text is not None:
            d.write_config(text)
        self.notify.drain()
        d.signal(signal.SIGHUP)
        msgs = self.notify.wait_for("READY=1")
        return state_fields(msgs)

    def stop(self, d):
        """SIGTERM: STOPPING=1, then exit 0 (Daemon.stop checks the code and stderr)."""
        self.notify.drain()
        d.stop()
        self.assertIn("STOPPING=1", fields(self.notify.wait_for("STOPPING=1", timeout=2)))


class NotifyTest(SdTestCase):
    def test_ready_reload_stop(self):
        p1 = free_port()
        d = self.daemon({"server": {"listen": "%s:%d" % (HOST, p1)}})
        d.start(wait_http=False)
        msgs = self.notify.wait_for("READY=1")
        # READY=1 comes once the sockets listen: a request right away is answered.
        self.assertEqual(d.get_on(p1, "/health").status, 200)
        self.assertTrue(fields(msgs, "STATUS="), "READY=1 without a STATUS=: %r" % msgs)
        self.assertEqual(state_fields(msgs), ["READY=1"], msgs)

        # A good reload: RELOADING=1 then READY=1, and the new listen address answers.
        p2 = free_port()
        good = "[server]\nlisten = %s:%d\nlisten = %s:%d\n" % (HOST, p1, HOST, p2)
        self.assertEqual(self.reload(d, good), ["RELOADING=1", "READY=1"])
        self.assertEqual(d.get_on(p2).status, 200)
        self.assertEqual(d.get_on(p1).status, 200)
        self.assertIn("configuration reloaded", d.stderr())

        # A broken file: the same two messages, and the running config stays
        # (were it applied, p2 would stop listening).
        bad = "[server]\nlisten = %s:%d\nno_such_key = 1\n" % (HOST, p1)
        self.assertEqual(self.reload(d, bad), ["RELOADING=1", "READY=1"])
        self.assertIn("reload failed", d.stderr())
        self.assertIn("no_such_key", d.stderr())
        self.assertEqual(d.get_on(p1).status, 200)
        self.assertEqual(d.get_on(p2).status, 200)

        # A valid file whose new address cannot be bound: refused as a whole.
        with listening_socket() as taken:
            p3 = taken.getsockname()[1]
            clash = "[server]\nlisten = %s:%d\nlisten = %s:%d\n" % (HOST, p1, HOST, p3)
            self.assertEqual(self.reload(d, clash), ["RELOADING=1", "READY=1"])
        self.assertEqual(d.get_on(p2).status, 200)

        # STATUS= keeps coming (every 5 s).
        self.notify.drain()
        got = []
        deadline = time.monotonic() + 7
        while not fields(got, "STATUS=") and time.monotonic() < deadline:
            m = self.notify.recv(deadline - time.monotonic())
            if m is not None:
                got.append(m)
        status = fields(got, "STATUS=")
        self.assertTrue(status, "no STATUS= within 7 s")
        self.assertRegex(status[0], r"^STATUS=\d+ connections open, \d+ requests answered")

        self.stop(d)

    def test_watchdog(self):
        d = self.daemon({}, env={"WATCHDOG_USEC": "200000"})
        d.start()
        self.notify.drain()
        t0 = time.monotonic()
        self.notify.log.clear()
        self.notify.collect(1.5)
        pings = [t for t, m in self.notify.log if "WATCHDOG=1" in m.split("\n")]
        # Every half interval (100 ms): about 15 in 1.5 s.
        self.assertGreaterEqual(len(pings), 8, "WATCHDOG=1 %d times in 1.5 s" % len(pings))
        gaps = [b - a for a, b in zip([t0] + pings, pings)]
        self.assertLess(max(gaps), 0.4, "a gap of %.3f s between WATCHDOG=1" % max(gaps))
        self.stop(d)

    def test_watchdog_for_another_pid(self):
        """WATCHDOG_PID naming another process: no WATCHDOG=1 from us."""
        d = self.daemon({}, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        d.start()
        msgs = self.notify.collect(0.6)
        self.assertEqual(fields(msgs, "WATCHDOG="), [], msgs)
        self.stop(d)

    def test_no_notify_socket(self):
        """Without NOTIFY_SOCKET (not under systemd) nothing is sent and all works."""
        d = self.daemon({}, env={"NOTIFY_SOCKET": ""})
        d.extra_env.pop("NOTIFY_SOCKET")
        d.start()
        self.assertEqual(d.get("/get").status, 200)
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "configuration reloaded" not in d.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("configuration reloaded", d.stderr())
        d.stop()
        self.assertEqual(self.notify.collect(0.2), [])
        self.assertNotIn("sd_notify", d.stderr())


class SocketActivationTest(SdTestCase):
    def activated(self, socks, names, config_port, **kw):
        fds = [(s.fileno(), n) for s, n in zip(socks, names)]
        d = self.daemon({"server": {"listen": "%s:%d" % (HOST, config_port)}},
                        listen_fds=fds, port=socks[0].getsockname()[1], **kw)
        d.start()
        return d

    def test_passed_sockets_served_config_not_bound(self):
        """As awaitd.socket does it: 127.0.0.1 and [::1], both named "http"."""
        socks = [listening_socket()]
        if have_ipv6_loopback():
            socks.append(listening_socket(socket.AF_INET6, "::1"))
        else:
            socks.append(listening_socket())
        pc = free_port()
        try:
            d = self.activated(socks, ["http"] * len(socks), pc)
        finally:
            ports = [(s.family, s.getsockname()[1]) for s in socks]
            for s in socks:
                s.close()  # the daemon holds its own copies
        self.assertIn("READY=1", fields(self.notify.wait_for("READY=1")))
        for family, port in ports:
            if family == socket.AF_INET6:
                with socket.create_connection(("::1", port), timeout=5) as c:
                    c.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = recv_all(c)
                self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
            else:
                self.assertEqual(d.get_on(port).status, 200)
        self.assertTrue(refused(pc), "the config's listen port %d is bound" % pc)
        self.assertIn("socket activation", d.stderr())
        self.assertIn("listen lines not used", d.stderr())

        # A reload with another listen line binds nothing either.
        pc2 = free_port()
        text = "[server]\nlisten = %s:%d\nkeepalive_timeout = 5s\n" % (HOST, pc2)
        self.assertEqual(self.reload(d, text), ["RELOADING=1", "READY=1"])
        self.assertIn("configuration reloaded", d.stderr())
        self.assertTrue(refused(pc2), "the reloaded config's port %d is bound" % pc2)
        self.assertEqual(d.get_on(ports[0][1]).status, 200)
        self.stop(d)

    def test_unnamed_socket_is_http(self):
        s = listening_socket()
        pc = free_port()
        try:
            d = self.activated([s], [""], pc)
        finally:
            s.close()
        self.assertEqual(d.get("/get").status, 200)
        self.assertTrue(refused(pc))
        self.stop(d)

    def test_listen_pid_of_another_process(self):
        """LISTEN_PID not ours: the sockets are not for us, the config's address is bound."""
        s = listening_socket()
        pc = free_port()
        try:
            d = self.daemon({"server": {"listen": "%s:%d" % (HOST, pc)}},
                            listen_fds=[(s.fileno(), "http")],
                            exec_listen_args=["--pid-offset", "1"])
            d.start()
        finally:
            s.close()
        self.assertEqual(d.port, pc)
        self.assertEqual(d.get("/get").status, 200)
        self.assertNotIn("socket activation", d.stderr())
        self.stop(d)


# ---- reloads under load ----------------------------------------------------------------

class ReloadUnderLoadTest(SdTestCase):
    CONNS = 200
    RELOADS = 6

    def test_reload_drops_nothing(self):
        port = free_port()
        base = "[server]\nlisten = %s:%d\nmax_connections = 1000\n" % (HOST, port)
        # The last one applied (RELOADS is a multiple of 3) caps bodies at 64k.
        variants = [base + "keepalive_timeout = 60s\nlog_level = warn\n",
                    base + "keepalive_timeout = 75s\nlog_level = debug\n",
                    base + "header_timeout = 5s\nwrite_timeout = 20s\nmax_body = 64k\n"]
        d = self.daemon({"server": {"listen": "%s:%d" % (HOST, port),
                                    "max_connections": "1000"}})
        d.start()
        before = d.metrics()["awaitd_connections_total"]
        counts = {"ok": 0}
        errors = []
        window = []  # responses completed between a SIGHUP and its READY=1 + 100 ms

        async def client(stop, ready):
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
            except Exception as e:
                errors.append("connect: %r" % e)
                ready.release()
                return
            ready.release()
            try:
                while not stop.is_set():
                    w.write(b"GET /get HTTP/1.1\r\nHost: awaitd\r\n\r\n")
                    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
                    status = int(head.split(b" ", 2)[1])
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    await asyncio.wait_for(r.readexactly(int(m.group(1)) if m else 0), 10)
                    if status != 200 or re.search(rb"(?i)\r\nconnection:\s*close", head):
                        errors.append("status %d, head %r" % (status, head[:200]))
                        return
                    counts["ok"] += 1
            except Exception as e:
                errors.append("request: %r" % e)
            finally:
                w.close()

        async def main():
            stop = asyncio.Event()
            ready = asyncio.Semaphore(0)
            tasks = [asyncio.ensure_future(client(stop, ready)) for _ in range(self.CONNS)]
            for _ in range(self.CONNS):
                await ready.acquire()
            await asyncio.sleep(0.3)
            for i in range(self.RELOADS):
                d.write_config(variants[i % len(variants)])
                self.notify.drain()
                n0 = counts["ok"]
                d.signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                seen = []
                while "READY=1" not in seen:
                    if time.monotonic() > deadline:
                        errors.append("no READY=1 after SIGHUP %d: %r" % (i, seen))
                        break
                    msg = self.notify.recv(0)  # non-blocking: the clients keep running
                    if msg is None:
                        await asyncio.sleep(0.005)
                    else:
                        seen += state_fields([msg])
                await asyncio.sleep(0.3)
                window.append(counts["ok"] - n0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)

        asyncio.run(main())
        self.assertFalse(errors, "%d failures during reloads; the first: %r"
                         % (len(errors), errors[:5]))
        self.assertEqual(d.http("POST", "/post", body=b"x" * 65537).status, 413)
        # The clients were busy across every reload, on the connections they opened.
        self.assertTrue(all(n > self.CONNS for n in window), window)
        total = d.metrics()["awaitd_connections_total"]
        self.assertEqual(total - before, self.CONNS + 2,  # + POST and this /metrics
                         "connections were reopened")
        self.assertEqual(d.metrics()["awaitd_connections_refused_total"], 0)
        self.stop(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
