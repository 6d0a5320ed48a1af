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

    def test_long_help_and_version(self):
        # --help and --version as awaitload (and GNU tools) take them: exit 0,
        # on stdout, the same text as -h and -V.
        for long, short in (("--help", "-h"), ("--version", "-V")):
            with self.subTest(long):
                p, q = run(long), run(short)
                self.assertEqual(p.returncode, 0, output(p))
                self.assertEqual(p.stderr, b"")
                self.assertEqual(p.stdout, q.stdout)
                self.assertNotEqual(p.stdout, b"")
        self.assertIn("--help", run("--help").stdout.decode())
        self.assertIn("-T", run("--help").stdout.decode())

    def test_unknown_long_option(self):
        p = run("--bogus")
        self.assertEqual(p.returncode, 2, output(p))
        self.assertEqual(p.stdout, b"")
        self.assertIn("usage", p.stderr.decode().lower())
        p = run("-t", "extra-argument")
        self.assertEqual(p.returncode, 2, output(p))
        self.assertIn("usage", p.stderr.decode().lower())

    def dump(self, path):
        """awaitd -T -c path: (exit code, stdout, stderr)."""
        p = run("-T", "-c", path)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    @staticmethod
    def parse_dump(text):
        """{section: {key: [values]}} of a config text (comments skipped)."""
        out, sec = {}, None
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = line[1:line.index("]")]
                out.setdefault(sec, {})
                continue
            k, v = (x.strip() for x in line.split("=", 1))
            out[sec].setdefault(k, []).append(v)
        return out

    def test_dump_round_trips(self):
        # -T of the sample config, of a config with a queue and a changed
        # value, and of an empty file: every output is a config -t accepts,
        # and -T of that output prints the same configuration again.
        port = free_port()
        token = os.path.join(self.tmp.name, "token")
        with open(token, "w") as f:
            f.write("0123456789abcdef0123\n")
        configs = {
            "sample": os.path.join(SRCDIR, "conf", "awaitd.conf"),
            "empty": self.write("", "empty.conf"),
            "changed": self.write(
                "[server]\nlisten = 127.0.0.1:%d\nmax_body = 3m\nkeepalive_timeout = 1.5\n"
                "log_level = debug\n[journal]\npath = \"j #1/awaitd.journal\"\nfsync = batch\n"
                "[auth]\ntoken_file = %s\n[queue mail]\nlease = 90s\nmax_attempts = 7\n"
                "[queue b.2]\n" % (port, token), "changed.conf"),
        }
        for name, path in configs.items():
            with self.subTest(name):
                rc, out, err = self.dump(path)
                self.assertEqual(rc, 0, err)
                self.assertIn("syntax is ok", err)  # the verdict is not in the config text
                again = self.write(out, name + "-dump.conf")
                p = run("-t", "-c", again)
                self.assertEqual(p.returncode, 0, output(p) + "\n" + out)
                rc2, out2, err2 = self.dump(again)
                self.assertEqual(rc2, 0, err2)
                self.assertEqual(self.parse_dump(out2), self.parse_dump(out))

        # Every section and every key is there, defaults included.
        d = self.parse_dump(self.dump(configs["empty"])[1])
        for sec in ("server", "probe", "journal", "queues", "tls"):
            self.assertIn(sec, d)
        self.assertEqual(d["server"]["listen"], ["127.0.0.1:8080"])
        self.assertEqual(d["server"]["max_connections"], ["10000"])
        self.assertEqual(d["server"]["max_body"], ["1m"])
        self.assertEqual(d["journal"]["fsync"], ["always"])
        self.assertEqual(d["queues"]["max_wait"], ["20s"])

        # Changed values show, in the file's own units.
        d = self.parse_dump(self.dump(configs["changed"])[1])
        self.assertEqual(d["server"]["listen"], ["127.0.0.1:%d" % port])
        self.assertEqual(d["server"]["max_body"], ["3m"])
        self.assertEqual(d["server"]["keepalive_timeout"], ["1500ms"])
        self.assertEqual(d["server"]["log_level"], ["debug"])
        self.assertEqual(d["journal"]["fsync"], ["batch"])
        self.assertEqual(d["journal"]["path"],
                         ['"%s"' % os.path.join(self.tmp.name, "j #1", "awaitd.journal")])
        self.assertEqual(d["queue mail"]["lease"], ["90s"])
        self.assertEqual(d["queue mail"]["max_attempts"], ["7"])
        self.assertEqual(d["queue b.2"]["max_attempts"], ["5"])
        # A token read from token_file is printed as the file reference only.
        self.assertEqual(d["auth"]["token_file"], [token])
        self.assertNotIn("token", d["auth"])
        self.assertNotIn("0123456789abcdef0123", self.dump(configs["changed"])[1])

    def test_dump_of_a_bad_config_fails(self):
        path = self.write(self.BAD[0][1])
        rc, out, err = self.dump(path)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("max_connectionz", err)

    def test_unknown_section_lists_every_section(self):
        # The message lists every section awaitd knows: each one it names is
        # accepted, and each section -T prints (all of them) is named.
        path = self.write("[sever]\n")
        msg = output(run("-t", "-c", path))
        named = re.findall(r"\[([a-z0-9]+)\]", msg.split("expected", 1)[1])
        self.assertIn("queue NAME", msg)
        self.assertIn("queues", named)
        for sec in named:
            p = run("-t", "-c", self.write("[%s]\n" % sec, "one.conf"))
            self.assertEqual(p.returncode, 0, "[%s] is listed but refused: %s" % (sec, output(p)))
        dumped = self.parse_dump(self.dump(self.write("", "empty.conf"))[1])
        self.assertEqual(sorted(named), sorted(dumped))

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
