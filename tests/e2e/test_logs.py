"""[log] (issue 16): the access log (format, ids, times, byte counts,
SIGUSR1 reopening, a pipelined burst line for line, lines dropped on a full
disk), the error log file, timestamps on stderr, and -t on unwritable paths."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from awaitd_test import AWAITD, Daemon, DaemonTestCase, render_config

# nginx's combined format plus $request_time and the job/timer id.
LINE = re.compile(
    r'^(?P<addr>[0-9a-f.:]+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    r'"(?P<method>[A-Z]+) (?P<target>\S+) (?P<proto>HTTP/1\.[01])" (?P<status>\d{3}) '
    r'(?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<rt>\d+\.\d{3}) '
    r'(?P<id>\d+|-)$')

# A stderr line when stderr is not the journal: local time first.
STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} awaitd\[(error|warn|info|debug)\]: ")

# The timestamp test needs stderr not to be the journal, as it is outside systemd.
os.environ.pop("JOURNAL_STREAM", None)


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []


def wait_lines(path, pred, timeout=10.0):
    """Poll the file until pred(lines) holds; returns the lines (or the last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read_lines(path)
        if pred(lines) or time.monotonic() >= deadline:
            return lines
        time.sleep(0.05)


class AccessLogTest(DaemonTestCase):
    config = {"log": {"access": "access.log", "error": "error.log"}}

    @property
    def access(self):
        return os.path.join(self.d.tmpdir, "access.log")

    def parsed(self, marker, count=1):
        """The parsed lines whose target contains marker, once count are there."""
        lines = wait_lines(self.access, lambda ls: sum(marker in l for l in ls) >= count)
        out = []
        for l in lines:
            if marker in l:
                m = LINE.match(l)
                self.assertIsNotNone(m, "access log line does not parse: %r" % l)
                out.append(m)
        self.assertEqual(len(out), count, "lines with %r: %r" % (marker, lines[-20:]))
        return out

    def test_get_404_put_timer(self):
        r = self.d.get("/get?t=one", headers={"User-Agent": 'probe "quoted"',
                                              "Referer": "http://example.test/x"})
        self.assertEqual(r.status, 200)
        m = self.parsed("/get?t=one")[0]
        self.assertEqual((m["addr"], m["method"], m["proto"], m["status"]),
                         ("127.0.0.1", "GET", "HTTP/1.1", "200"))
        self.assertEqual(int(m["bytes"]), len(r.body))
        self.assertEqual(m["referer"], "http://example.test/x")
        self.assertEqual(m["agent"], r"probe \x22quoted\x22")
        self.assertEqual(m["id"], "-")
        self.assertLess(float(m["rt"]), 5.0)

        r = self.d.get("/no/such/route?t=two")
        self.assertEqual(r.status, 404)
        m = self.parsed("/no/such/route?t=two")[0]
        self.assertEqual((m["status"], int(m["bytes"]), m["id"]), ("404", len(r.body), "-"))

        self.assertIn(self.d.http("PUT", "/queues/logq").status, (200, 201))
        # (/queues and /timers refuse unknown parameters: the markers are real ones)
        r = self.d.http("POST", "/queues/logq/jobs?priority=3", body="hello")
        self.assertEqual(r.status, 201)
        job = r.json()["id"]
        m = self.parsed("/queues/logq/jobs?priority=3")[0]
        self.assertEqual((m["method"], m["status"], int(m["bytes"]), m["id"]),
                         ("POST", "201", len(r.body), str(job)))

        r = self.d.http("POST", "/timers", body=json.dumps({"queue": "logq", "after": 600}),
                        headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r.body)
        timer = r.json()["id"]
        m = self.parsed("POST /timers HTTP")[0]
        self.assertEqual((m["status"], int(m["bytes"]), m["id"]), ("201", len(r.body), str(timer)))

        # A reserve names the job it hands out; an answer that waits is
        # logged when it is sent, with the time it took.
        r = self.d.http("POST", "/queues/logq/reserve?wait=0.005")
        self.assertEqual(r.status, 200)
        m = self.parsed("/queues/logq/reserve?wait=0.005")[0]
        self.assertEqual((m["status"], m["id"]), ("200", str(job)))
        r = self.d.get("/delay/0.3?t=six")
        self.assertEqual(r.status, 200)
        m = self.parsed("/delay/0.3?t=six")[0]
        self.assertEqual(int(m["bytes"]), len(r.body))
        self.assertGreaterEqual(float(m["rt"]), 0.3)
        self.assertLess(float(m["rt"]), 5.0)

    def test_streamed_answers_count_their_body(self):
        # /drip writes its body over time, /bytes/N past 64 KiB streams it.
        for path in ("/drip?duration=0.2&numbytes=10&t=d", "/bytes/200000?t=b"):
            r = self.d.get(path)
            self.assertEqual(r.status, 200)
            m = self.parsed(path)[0]
            self.assertEqual((m["status"], int(m["bytes"])), ("200", len(r.body)), path)

    def test_sigusr1_reopens_and_loses_nothing(self):
        for i in range(50):
            self.assertEqual(self.d.get("/get?rot=%d" % i).status, 200)
        self.parsed("/get?rot=", 50)
        rotated = self.access + ".1"
        os.rename(self.access, rotated)
        for i in range(50, 100):  # still written to the renamed file
            self.assertEqual(self.d.get("/get?rot=%d" % i).status, 200)
        self.d.signal(signal.SIGUSR1)
        for i in range(100, 150):
            self.assertEqual(self.d.get("/get?rot=%d" % i).status, 200)
        new = wait_lines(self.access, lambda ls: any("rot=149" in l for l in ls))
        old = read_lines(rotated)
        seen = [int(re.search(r"rot=(\d+)", l).group(1)) for l in old + new if "rot=" in l]
        self.assertEqual(sorted(seen), list(range(150)), "lines lost or doubled")
        self.assertTrue(any("rot=149" in l for l in new), "no new file after SIGUSR1")
        self.assertFalse(any("rot=149" in l for l in old))
        # The reopen is said in the error log too.
        wait_lines(os.path.join(self.d.tmpdir, "error.log"),
                   lambda ls: any("SIGUSR1" in l for l in ls))

    def test_error_log_file_and_stamped_stderr(self):
        lines = read_lines(os.path.join(self.d.tmpdir, "error.log"))
        ready = [l for l in lines if "awaitd ready" in l]
        self.assertEqual(len(ready), 1, lines)
        self.assertRegex(ready[0], STAMPED)
        stderr = [l for l in self.d.stderr().splitlines() if "awaitd ready" in l]
        self.assertEqual(len(stderr), 1)
        self.assertRegex(stderr[0], STAMPED)

    def test_pipelined_burst_is_line_for_line(self):
        n = 10000
        reqs = b"".join(b"GET /get?burst=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
        with self.d.connect(timeout=30) as c:
            c.send(reqs)
            for _ in range(n):
                self.assertEqual(c.read_response(timeout=30).status, 200)
        lines = wait_lines(self.access, lambda ls: sum("burst=" in l for l in ls) >= n)
        seen = [int(re.search(r"burst=(\d+)", l).group(1)) for l in lines if "burst=" in l]
        self.assertEqual(len(seen), n)
        self.assertEqual(seen, list(range(n)), "lines out of order, lost or doubled")
        self.assertEqual(self.d.metric("awaitd_access_log_dropped_total"), 0)


class OperatorLinesTest(DaemonTestCase):
    """Log lines an operator needs: 5xx answers (rate-limited), timers that
    fail, jobs moved to the dead letters, reloads and what they changed."""

    def wait_stderr(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            text = self.d.stderr()
            if pred(text) or time.monotonic() >= deadline:
                return text
            time.sleep(0.05)

    def test_5xx_rate_limited(self):
        n = 50
        with self.d.connect(timeout=30) as c:
            c.send(b"".join(b"GET /status/503 HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(n)))
            for _ in range(n):
                self.assertEqual(c.read_response(timeout=30).status, 503)
        # The next second's first 5xx says how many were left out.
        time.sleep(1.1)
        self.assertEqual(self.d.get("/status/504").status, 504)
        text = self.wait_stderr(lambda t: "answered 504" in t)
        logged = re.findall(r"answered 50[34] to 127\.0\.0\.1", text)
        suppressed = [int(k) for k in re.findall(r"suppressed (\d+) earlier 5xx lines", text)]
        self.assertTrue(suppressed, text[-3000:])
        self.assertEqual(len(logged) + sum(suppressed), n + 1)
        self.assertLessEqual(len(logged), 31)  # 10 a second over at most 3 seconds

    def test_timer_failure_dead_letter_and_reload_are_logged(self):
        self.assertIn(self.d.http("PUT", "/queues/gone").status, (200, 201))
        r = self.d.http("POST", "/timers", body=json.dumps({"queue": "gone", "after": 0.3}),
                        headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r.body)
        timer = r.json()["id"]
        self.assertEqual(self.d.http("DELETE", "/queues/gone").status, 200)
        text = self.wait_stderr(lambda t: "timer %d failed" % timer in t)
        self.assertRegex(text, r"timer %d failed after 0 fires: queue not found" % timer)

        self.assertIn(self.d.http("PUT", "/queues/poison", body='{"max_attempts": 1}').status,
                      (200, 201))
        job = self.d.http("POST", "/queues/poison/jobs", body="x").json()["id"]
        self.assertEqual(self.d.http("POST", "/queues/poison/reserve").status, 200)
        r = self.d.http("POST", "/queues/poison/jobs/%d/nack" % job)
        self.assertEqual(r.json(), {"dead": job})
        text = self.wait_stderr(lambda t: "moved to the dead letters" in t)
        self.assertIn("queue poison: job %d moved to the dead letters (nacked on its last attempt)"
                      % job, text)
        self.assertEqual(text.count("job %d moved to the dead letters" % job), 1, text)

        # A lease that runs out on the last attempt is a dead letter too.
        job = self.d.http("POST", "/queues/poison/jobs", body="y").json()["id"]
        self.assertEqual(self.d.http("POST", "/queues/poison/reserve?lease=0.2").status, 200)
        text = self.wait_stderr(lambda t: "job %d moved to the dead letters" % job in t)
        self.assertIn("queue poison: job %d moved to the dead letters (its last lease ran out" % job,
                      text)

        with open(self.d.conf_path, "a") as f:
            f.write("\n[probe]\nmax_stream = 77\n")
        self.d.signal(signal.SIGHUP)
        text = self.wait_stderr(lambda t: "configuration reloaded" in t)
        self.assertIn("reload: [probe] max_stream: 1000 -> 77", text)


class FullDiskTest(DaemonTestCase):
    """/dev/full takes no line: at most a bounded backlog waits, the rest is
    dropped and counted, and the daemon answers as before."""
    config = {"log": {"access": "/dev/full"}}

    def test_lines_dropped_and_counted(self):
        pad = "x" * 4000
        n = 600  # about 2.5 MiB of lines, past the 1 MiB bound
        with self.d.connect(timeout=30) as c:
            c.send(b"".join(b"GET /get?%s=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (pad.encode(), i)
                            for i in range(n)))
            for _ in range(n):
                self.assertEqual(c.read_response(timeout=30).status, 200)
        dropped = self.d.wait_metric("awaitd_access_log_dropped_total", lambda v: v >= 200)
        self.assertLessEqual(dropped, n)
        self.assertEqual(self.d.get("/health").status, 200)
        self.assertIn("access log /dev/full: write failed", self.d.stderr())


class CheckTest(unittest.TestCase):
    def run_t(self, log):
        with tempfile.TemporaryDirectory(prefix="awaitd-logs-") as tmp:
            conf = os.path.join(tmp, "awaitd.conf")
            with open(conf, "w") as f:
                f.write(render_config({"server": {"listen": "127.0.0.1:1"},
                                       "journal": {"path": os.path.join(tmp, "j")},
                                       "log": log}))
            p = subprocess.run([AWAITD, "-t", "-c", conf], stdin=subprocess.DEVNULL,
                               env=Daemon._env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=10)
            return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace"), tmp

    def test_writable_paths_pass(self):
        rc, out, _ = self.run_t({"access": "a.log", "error": "e.log"})
        self.assertEqual(rc, 0, out)
        rc, out, _ = self.run_t({"access": "stderr"})
        self.assertEqual(rc, 0, out)
        rc, out, _ = self.run_t({"access": "off"})
        self.assertEqual(rc, 0, out)

    def test_unwritable_access_log_names_the_key(self):
        rc, out, _ = self.run_t({"access": "/nonexistent-dir/a.log"})
        self.assertEqual(rc, 1, out)
        self.assertIn("[log] access: cannot open /nonexistent-dir/a.log", out)

    def test_unwritable_error_log_names_the_key(self):
        rc, out, _ = self.run_t({"error": "/nonexistent-dir/e.log"})
        self.assertEqual(rc, 1, out)
        self.assertIn("[log] error: cannot open /nonexistent-dir/e.log", out)


if __name__ == "__main__":
    unittest.main()
