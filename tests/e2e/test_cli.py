"""Command line: -V, -h, -t (good and bad configs), and a port already in use."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from awaitd_test import AWAITD, SRCDIR, HOST, Daemon, free_port, recv_all, sanitizer_errors


def run(*args, timeout=10):
    return subprocess.run([AWAITD] + list(args), stdin=subprocess.DEVNULL, env=Daemon._env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def output(p):
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="awaitd-cli-")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, text, name="bad.conf"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version(self):
        p = run("-V")
        self.assertEqual(p.returncode, 0, output(p))
        out = p.stdout.decode()
        self.assertRegex(out, r"^awaitd \d+\.\d+(\.\d+)?\S*\n?$")
        # The version is the one configure.ac declares.
        try:
            with open(os.path.join(SRCDIR, "configure.ac")) as f:
                m = re.search(r"AC_INIT\(\[awaitd\],\s*\[([^\]]+)\]", f.read())
        except OSError:
            m = None
        if m:
            self.assertIn(m.group(1), out)

    def test_help(self):
        p = run("-h")
        self.assertEqual(p.returncode, 0, output(p))
        out = p.stdout.decode()
        self.assertIn("usage", out.lower())
        for opt in ("-c", "-t", "-V", "-h"):
            self.assertIn(opt, out)

    def test_bad_option(self):
        p = run("-Z")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("usage", p.stderr.decode().lower())

    def test_check_sample_config(self):
        conf = os.path.join(SRCDIR, "conf", "awaitd.conf")
        p = run("-t", "-c", conf)
        self.assertEqual(p.returncode, 0, output(p))
        self.assertIn("ok", output(p).lower())

    def test_check_minimal_config(self):
        path = self.write("[server]\nlisten = 127.0.0.1:%d\n" % free_port(), "ok.conf")
        p = run("-t", "-c", path)
        self.assertEqual(p.returncode, 0, output(p))

    def test_check_does_not_bind(self):
        # -t only checks: a port in use does not matter.
        with socket.socket() as s:
            s.bind((HOST, 0))
            s.listen(1)
            path = self.write("[server]\nlisten = 127.0.0.1:%d\n" % s.getsockname()[1], "ok.conf")
            p = run("-t", "-c", path)
            self.assertEqual(p.returncode, 0, output(p))

    BAD = [
        # (name, config text, line, key that must be named)
        ("unknown key",
         "[server]\nlisten = 127.0.0.1:1234\nmax_connectionz = 10\n", 3, "max_connectionz"),
        ("unknown key in probe",
         "[server]\nlisten = 127.0.0.1:1234\n\n[probe]\nmax_dealy = 1s\n", 5, "max_dealy"),
        ("bad count",
         "[server]\nlisten = 127.0.0.1:1234\nmax_connections = lots\n", 3, "max_connections"),
        ("bad duration",
         "# comment\n[server]\nlisten = 127.0.0.1:1234\nheader_timeout = 10 parsecs\n", 4,
         "header_timeout"),
        ("bad size",
         "[server]\nlisten = 127.0.0.1:1234\nmax_body = 12q\n", 3, "max_body"),
        ("bad listen",
         "[server]\nlisten = nowhere\n", 2, "listen"),
        ("bad port",
         "[server]\nlisten = 127.0.0.1:70000\n", 2, "listen"),
        ("count out of range",
         "[server]\nlisten = 127.0.0.1:1234\nmax_connections = 0\n", 3, "max_connections"),
        ("repeated section",
         "[server]\nlisten = 127.0.0.1:1234\n[probe]\nmax_delay = 1s\n[server]\nbacklog = 8\n", 5,
         "server"),
        ("repeated key",
         "[server]\nlisten = 127.0.0.1:1234\nbacklog = 8\nbacklog = 16\n", 4, "backlog"),
        ("empty value",
         "[server]\nlisten = 127.0.0.1:1234\nbacklog =\n", 3, "backlog"),
        ("unknown section",
         "[server]\nlisten = 127.0.0.1:1234\n[sever]\n", 3, "sever"),
        # issue 12, findings 2 and 5
        ("max_timers fractional",
         "[server]\nlisten = 127.0.0.1:1234\n[timers]\nmax_timers = 2.5\n", 4, "max_timers"),
        ("per_queue word",
         "[server]\nlisten = 127.0.0.1:1234\n[metrics]\nper_queue = some\n", 4, "per_queue"),
        ("per_queue top 0",
         "[server]\nlisten = 127.0.0.1:1234\n[metrics]\nper_queue = top 0\n", 4, "per_queue"),
        ("metrics public",
         "[metrics]\npublic = yes\n", 2, "public"),
    ]

    def test_bad_configs(self):
        for name, text, line, key in self.BAD:
            with self.subTest(name):
                path = self.write(text)
                p = run("-t", "-c", path)
                msg = output(p)
                self.assertEqual(p.returncode, 1, "%s: exit %d, output %r" % (name, p.returncode, msg))
                self.assertIn(path, msg, "%s: message does not name the file: %r" % (name, msg))
                self.assertRegex(msg, re.escape(path) + r":%d\b" % line,
                                 "%s: message does not name line %d: %r" % (name, line, msg))
                self.assertIn(key, msg, "%s: message does not name %r: %r" % (name, key, msg))
                self.assertEqual(sanitizer_errors(msg), "")

    def test_bad_config_also_fails_to_start(self):
        path = self.write(self.BAD[0][1])
        p = run("-c", path)
        self.assertEqual(p.returncode, 1, output(p))
        self.assertIn("max_connectionz", output(p))

    def test_missing_config_file(self):
        path = os.path.join(self.tmp.name, "does-not-exist.conf")
        p = run("-t", "-c", path)
        self.assertEqual(p.returncode, 1, output(p))
        self.assertIn(path, output(p))

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind((HOST, 0))
            s.listen(1)
            port = s.getsockname()[1]
            path = self.write("[server]\nlisten = 127.0.0.1:%d\n" % port, "busy.conf")
            start = time.monotonic()
            p = run("-c", path, timeout=15)
            msg = output(p)
            self.assertNotEqual(p.returncode, 0, "started on a port in use: %r" % msg)
            self.assertLess(time.monotonic() - start, 10)
            self.assertIn("127.0.0.1:%d" % port, msg)
            self.assertIn("in use", msg.lower())
            self.assertEqual(sanitizer_errors(msg), "")

    def test_starts_and_stops(self):
        d = Daemon()
        try:
            d.start()
            self.assertEqual(d.get("/health").status, 200)
        finally:
            d.stop()

    def test_sigint_stops_cleanly(self):
        d = Daemon()
        d.start()
        try:
            d.signal(signal.SIGINT)
            self.assertEqual(d.wait(10), 0, d.stderr())
            d.check_stderr()
        finally:
            d._kill()
            d.cleanup()

    def test_sighup_keeps_running(self):
        d = Daemon()
        d.start()
        try:
            d.signal(signal.SIGHUP)
            time.sleep(0.3)
            self.assertTrue(d.alive(), d.stderr())
            self.assertEqual(d.get("/health").status, 200)
        finally:
            d.stop()

    def test_debug_logging(self):
        d = Daemon({"server": {"log_level": "debug"}})
        d.start()
        try:
            for path in ("/get?x=1", "/nope", "/status/500", "/delay/0.01", "/bytes/10"):
                d.get(path)
            d.raw(b"GET /get HTTP/1.1\r\nX-Bad : 1\r\n\r\n", timeout=2)
            d.raw(b"GET /get HTTP/1.1\r\nHost: t\r\n", timeout=0.2)
        finally:
            d.stop()

    def test_multiple_listen_and_ipv6(self):
        p1, p2 = free_port(), free_port()
        listens = ["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2]
        has_v6 = socket.has_ipv6
        if has_v6:
            try:
                with socket.socket(socket.AF_INET6) as s:
                    s.bind(("::1", 0))
                    p3 = s.getsockname()[1]
                listens.append("[::1]:%d" % p3)
            except OSError:
                has_v6 = False
        d = Daemon({"server": {"listen": listens}})
        d.start()
        try:
            for port in (p1, p2):
                with socket.create_connection((HOST, port), timeout=5) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))
            if has_v6:
                with socket.create_connection(("::1", p3), timeout=5) as s:
                    s.sendall(b"GET /get HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
                    data = recv_all(s)
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
                self.assertIn(b'"origin": "::1"', data)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
