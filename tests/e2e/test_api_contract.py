"""What a new user following docs/QUEUES.md and docs/TIMERS.md sees (issue 16,
"Behaviour that is wrong or surprising"):

 1. one max_attempts default (5) for queues made by PUT and by the config;
    0 is refused naming the key;
 2. a past `at` is refused naming the field; one within a second of now
    fires now and says the real time;
 3. queue totals count since start, all of them, after a restart too;
 4. unknown query parameters are refused naming them, on /queues and /timers;
 5. a 503 says why: "queue full" (with Retry-After) or "storage" (without);
 6. `-t` and a start name a journal path that cannot be the journal (a
    directory, a place no file can be created), never advising -r, and a
    missing TLS file names the config file and line;
 7. during a SIGTERM drain, a request pipelined behind one in flight is
    answered, so /health's 503 "draining" can be seen;
 8. every 405 of /queues and /timers has Allow.
"""

import datetime
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import test_queue
from awaitd_test import AWAITD, SRCDIR, Daemon, free_port
from test_queue_crash import Node


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(s):
    return datetime.datetime.strptime(s.replace("Z", "+0000"),
                                      "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class ApiContractTest(test_queue.QueueCase):
    extra_config = "[queue conf.q]\nmaxsize = 3\n"

    # ---- 1: max_attempts ----------------------------------------------------------------

    def test_max_attempts_default_is_the_configs(self):
        made = self.stats(self.newq())
        self.assertEqual(made["max_attempts"], 5, made)
        self.assertEqual(self.stats("conf.q")["max_attempts"], 5)
        # And it is enforced: the fifth delivery's nack makes a dead letter.
        q = self.newq()
        jid = self.put(q, b"poison")
        for attempt in range(1, 6):
            got, att, _ = self.reserve_ok(q)
            self.assertEqual((got, att), (jid, attempt))
            r = self.job(q, jid, "nack")
            self.assertEqual(r.json(), {"dead": jid} if attempt == 5 else {"released": jid})
        st = self.stats(q)
        self.assertEqual((st["dead"], st["total_dead"], st["size"]), (1, 1, 0), st)

    def test_max_attempts_zero_refused_naming_the_key(self):
        for value in (0, 65536, -1):
            r = self.h("PUT", "/queues/zero_attempts", body=json.dumps({"max_attempts": value}))
            body = self.assertErr(r, 400)
            self.assertIn("max_attempts", body["error"])
            self.assertIn("1 to 65535", body["error"])
        self.assertEqual(self.h("GET", "/queues/zero_attempts").status, 404)
        r = self.h("PUT", "/queues/zero_attempts", body=b'{"lease": "abc"}')
        self.assertIn("lease", self.assertErr(r, 400)["error"])

    # ---- 2: a past at -------------------------------------------------------------------

    def test_past_at_refused_naming_the_field(self):
        q = self.newq()
        for at in ("2020-01-01T00:00:00Z", rfc3339(time.time() - 120)):
            r = self.h("POST", "/timers", body=json.dumps({"queue": q, "at": at}))
            body = self.assertErr(r, 400)
            self.assertTrue(body["error"].startswith("at: "), body)
            self.assertIn("in the past", body["error"])
        self.assertEqual(self.stats(q)["size"], 0, "a refused timer put a job")
        # Within a second of now (clock skew): fires now, and next_fire says now, not boot time.
        now = time.time()
        r = self.h("POST", "/timers", body=json.dumps({"queue": q, "at": rfc3339(now - 0.3)}))
        self.assertEqual(r.status, 201, r)
        t = r.json()
        if t["state"] == "scheduled":
            self.assertLess(abs(parse_rfc3339(t["next_fire"]) - now), 5, t)
        self.wait_stats(q, "size", 1)
        # A future at is kept as given.
        at = rfc3339(time.time() + 3600)
        r = self.h("POST", "/timers", body=json.dumps({"queue": q, "at": at}))
        self.assertEqual((r.status, r.json()["next_fire"]), (201, at), r)
        self.assertEqual(self.h("DELETE", "/timers/%d" % r.json()["id"]).status, 200)

    # ---- 4: unknown parameters ----------------------------------------------------------

    def test_unknown_query_parameters_refused(self):
        q = self.newq()
        jid = self.put(q, b"x")
        cases = [
            ("POST", "/queues/%s/jobs?dealy=5" % q, "dealy"),
            ("POST", "/queues/%s/jobs?wait=0&priority=1&x" % q, "x"),
            ("POST", "/queues/%s/reserve?wiat=1" % q, "wiat"),
            ("GET", "/queues/%s/join?wait=0&timeout=1" % q, "timeout"),
            ("GET", "/queues?limit=10&after=a", "after"),
            ("GET", "/queues/%s?verbose=1" % q, "verbose"),
            ("PUT", "/queues/%s?maxsize=3" % q, "maxsize"),
            ("DELETE", "/queues/%s?force=1" % q, "force"),
            ("GET", "/queues/%s/jobs/%d?attempt=1" % (q, jid), "attempt"),
            ("POST", "/queues/%s/jobs/%d/ack?atempt=1" % (q, jid), "atempt"),
            ("POST", "/queues/%s/jobs/%d/nack?lease=1" % (q, jid), "lease"),
            ("POST", "/queues/%s/jobs/%d/touch?delay=1" % (q, jid), "delay"),
            ("GET", "/queues/%s/dead?limt=5" % q, "limt"),
            ("POST", "/queues/%s/purge?id=1" % q, "id"),
            ("POST", "/queues/%s/shutdown?immediately=1" % q, "immediately"),
            ("POST", "/queues/%s/dead/requeue?ids=1" % q, "ids"),
            ("GET", "/timers?limit=5&offset=3", "offset"),
            ("GET", "/timers/1?wiat=1", "wiat"),
            ("DELETE", "/timers/1?now=1", "now"),
            ("POST", "/timers?queue=x", "queue"),
        ]
        for method, path, name in cases:
            with self.subTest(method=method, path=path):
                r = self.h(method, path, body=b"" if method in ("POST", "PUT") else None)
                body = self.assertErr(r, 400)
                self.assertIn("unknown parameter '%s'" % name, body["error"])
        st = self.stats(q)
        self.assertEqual((st["size"], st["total_put"], st["shutdown"]), (1, 1, False), st)
        # Known parameters still work.
        self.assertEqual(self.put(q, b"y", wait=0, delay=5, priority=-3) > jid, True)
        self.assertEqual(self.stats(q)["delayed"], 1)

    # ---- 5: why a 503 -------------------------------------------------------------------

    def test_queue_full_says_so_with_retry_after(self):
        q = self.newq({"maxsize": 1})
        self.put(q)
        r = self.put(q, expect=503)
        body = self.assertJsonError(r, 503)
        self.assertEqual(body["reason"], "queue full", body)
        self.assertIn("is full", body["error"])
        self.assertEqual(r.header("Retry-After"), "1", r)
        r = self.put(q, expect=503, wait=0.1)
        self.assertEqual((r.json()["reason"], r.header("Retry-After")), ("queue full", "1"), r)
        r = self.h("POST", "/queues/%s/jobs?batch=1" % q, body=b"1\na\n")  # fits, once there is room
        self.assertEqual((r.status, r.json()["reason"], r.header("Retry-After")),
                         (503, "queue full", "1"), r)

    # ---- 8: Allow on 405 ----------------------------------------------------------------

    def test_405_has_allow(self):
        q = self.newq()
        jid = self.put(q)
        cases = [
            ("POST", "/queues", "GET, HEAD"),
            ("POST", "/queues/%s" % q, "GET, HEAD, PUT, DELETE"),
            ("DELETE", "/queues/%s/jobs" % q, "GET, HEAD, POST"),  # GET lists (issue 17)
            ("POST", "/queues/%s/jobs/%d/result" % (q, jid), "GET"),
            ("POST", "/queues/%s/jobs/%d" % (q, jid), "GET, HEAD"),
            ("GET", "/queues/%s/jobs/%d/ack" % (q, jid), "POST"),
            ("GET", "/queues/%s/reserve" % q, "POST"),
            ("POST", "/queues/%s/join" % q, "GET"),
            ("POST", "/queues/%s/dead" % q, "GET"),
            ("GET", "/queues/%s/purge" % q, "POST"),
            ("GET", "/queues/%s/shutdown" % q, "POST"),
            ("DELETE", "/timers", "GET, HEAD, POST"),
        ]
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                r = self.h(method, path, body=b"" if method in ("POST", "PUT") else None)
                self.assertJsonError(r, 405)
                self.assertEqual(r.header("Allow"), allow, r)
        t = self.h("POST", "/timers", body=json.dumps({"queue": q, "after": 3600})).json()
        r = self.h("PUT", "/timers/%d" % t["id"], body=b"")
        self.assertJsonError(r, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD, DELETE", r)


class TotalsSinceStartTest(unittest.TestCase):
    """3: a restart (and so a compaction, which rewrites only live jobs) used
    to keep total_put and total_acked (replayed from the journal) but zero
    total_redelivered (leases are not journaled). Every total counts since
    start now, as the docs say."""

    def test_totals_count_since_start(self):
        n = Node("off")
        self.addCleanup(n.cleanup)
        n.start()
        self.assertEqual(n.http("PUT", "/queues/t").status, 201)
        for i in range(3):
            self.assertEqual(n.http("POST", "/queues/t/jobs", body=b"%d" % i).status, 201)
        r = n.http("POST", "/queues/t/reserve?lease=0.1")
        jid = int(r.header("Job-Id"))
        time.sleep(0.3)
        r = n.http("POST", "/queues/t/reserve?lease=60")
        self.assertEqual((int(r.header("Job-Id")), r.header("Job-Attempt")), (jid, "2"), r)
        self.assertEqual(n.http("POST", "/queues/t/jobs/%d/ack" % jid).status, 200)
        n.http("POST", "/queues/t/reserve?lease=60")
        st = n.http("GET", "/queues/t").json()
        self.assertEqual((st["total_put"], st["total_acked"], st["total_redelivered"]), (3, 1, 1),
                         st)
        n.term()
        n.start()
        st = n.http("GET", "/queues/t").json()
        self.assertEqual((st["size"], st["unfinished"]), (2, 2), st)  # the jobs survive
        self.assertEqual((st["total_put"], st["total_acked"], st["total_redelivered"],
                          st["total_dead"]), (0, 0, 0, 0), st)
        self.assertEqual(n.http("POST", "/queues/t/jobs", body=b"new").status, 201)
        self.assertEqual(n.http("GET", "/queues/t").json()["total_put"], 1)
        m = n.http("GET", "/metrics").body.decode()
        self.assertIn('awaitd_queue_put_total{queue="t"} 1\n', m)
        n.term()


class StorageReasonTest(unittest.TestCase):
    """5: a journal failing is a 503 with "reason": "storage" and no
    Retry-After (waiting a second does not mend a disk), unlike a full queue."""

    def test_journal_failure_is_storage_without_retry_after(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-reason-")
        self.addCleanup(shutil.rmtree, tmp, True)
        so = os.path.join(tmp, "journal_fault.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-o", so,
                            os.path.join(SRCDIR, "tests", "e2e", "journal_fault.c"), "-ldl"],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        flag = os.path.join(tmp, "fail-fsync")
        n = Node("always")
        self.addCleanup(n.cleanup)
        env = {"LD_PRELOAD": so, "AWAITD_TEST_FAULT_FILE": flag,
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
        base = n.d._env
        n.d._env = lambda: dict(base(), **env)
        n.start()
        self.assertEqual(n.http("PUT", "/queues/s").status, 201)
        open(flag, "w").close()
        seen = []
        for i in range(3):  # the first fails its batch (outcome unknown), the next are refused
            r = n.http("POST", "/queues/s/jobs", body=b"%d" % i)
            self.assertEqual(r.status, 503, r)
            seen.append((r.json().get("reason"), r.header("Retry-After")))
        r = n.http("POST", "/timers", body=json.dumps({"queue": "s", "after": 60}))
        self.assertEqual(r.status, 503, r)
        seen.append((r.json().get("reason"), r.header("Retry-After")))
        self.assertEqual(seen, [("storage", None)] * 4)
        os.unlink(flag)
        deadline = time.monotonic() + 20
        while n.http("POST", "/queues/s/jobs", body=b"after").status != 201:
            self.assertLess(time.monotonic(), deadline, "the journal did not recover")
            time.sleep(0.2)
        n.term()


class JournalPathTest(unittest.TestCase):
    """6: `path = /tmp` (a directory) used to pass -t and fail at start with
    "/tmp.compact.tmp: rename to /tmp: Is a directory"; a place where no file
    can be created passed -t too."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="awaitd-jpath-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def conf(self, text):
        path = os.path.join(self.tmp, "a.conf")
        with open(path, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d\n" % free_port() + text)
        return path

    def run_awaitd(self, *args):
        p = subprocess.run([AWAITD] + list(args), capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout + p.stderr

    def test_directory_and_unwritable_paths(self):
        cases = [
            (self.tmp, "is a directory"),
            (self.tmp + "/", "is a directory"),
            ("/proc/awaitd-no-such/j", "cannot create files in /proc"),
        ]
        if os.geteuid() != 0:  # root writes anywhere a mount allows
            ro = os.path.join(self.tmp, "ro")
            os.mkdir(ro, 0o555)
            cases.append((os.path.join(ro, "sub", "j"), "cannot create files in " + ro))
        for jpath, why in cases:
            with self.subTest(path=jpath):
                conf = self.conf("[journal]\npath = %s\n" % jpath)
                rc, out = self.run_awaitd("-t", "-c", conf)
                self.assertEqual(rc, 1, out)
                self.assertIn(why, out)
                self.assertIn("[journal] path", out)
                rc, out = self.run_awaitd("-c", conf)
                self.assertNotEqual(rc, 0, out)
                self.assertIn(why, out)
                for advice in ("awaitd -r", "with -r", "-r cuts", "-r rewrites"):
                    self.assertNotIn(advice, out)
        self.assertFalse(os.path.exists(self.tmp.rstrip("/") + ".compact.tmp"))
        # A path that can be the journal passes, and -t leaves nothing behind.
        conf = self.conf("[journal]\npath = %s\n" % os.path.join(self.tmp, "new", "j"))
        rc, out = self.run_awaitd("-t", "-c", conf)
        self.assertEqual(rc, 0, out)
        self.assertEqual([f for f in os.listdir(self.tmp) if f not in ("a.conf", "ro")], [])

    def test_missing_tls_file_names_config_line(self):
        cert = os.path.join(self.tmp, "cert.pem")
        conf = self.conf("[tls]\nlisten = 127.0.0.1:%d\ncert = %s\nkey = %s\n"
                         % (free_port(), cert, os.path.join(self.tmp, "key.pem")))
        rc, out = self.run_awaitd("-t", "-c", conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("%s:5: " % conf, out)  # cert is on line 5
        self.assertIn(cert, out)
        self.assertIn("[tls] cert", out)


class DrainHealthTest(unittest.TestCase):
    """7: a /health pipelined behind a pending /delay when SIGTERM came was
    never answered (the connection closed after the /delay), and the
    listeners close at once, so the documented 503 "draining" could not be
    seen. Now the pipelined request is answered, and [server] drain_delay
    keeps the listeners open (health 503) for load balancers."""

    def test_pipelined_health_sees_draining(self):
        d = Daemon({"server": {"shutdown_grace": "10s"}})
        d.start()
        self.addCleanup(d._kill)
        self.addCleanup(d.cleanup)
        c = d.connect(timeout=10)
        c.send(b"GET /delay/1 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        d.signal(signal.SIGTERM)
        first = c.read_response(timeout=5)
        self.assertEqual(first.status, 200, first)
        health = c.read_response(timeout=5)
        self.assertEqual((health.status, health.json()["status"]), (503, "draining"), health)
        self.assertEqual(health.header("Connection", "").lower(), "close")
        self.assertIsNotNone(c.closed_within(3))
        c.close()
        self.assertEqual(d.wait(5), 0, d.stderr())
        d.check_stderr()

    def test_drain_delay_shows_draining_on_new_connections(self):
        """[server] drain_delay: listeners stay open, /health 503 draining
        for new connections, other requests served (Connection: close)."""
        d = Daemon({"server": {"shutdown_grace": "10s", "drain_delay": "1500ms"}})
        d.start()
        self.addCleanup(d._kill)
        self.addCleanup(d.cleanup)
        self.assertEqual(d.get("/health").status, 200)
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        time.sleep(0.2)
        r = d.get("/health")
        self.assertEqual((r.status, r.json()["status"]), (503, "draining"), r)
        self.assertEqual(r.header("Connection", "").lower(), "close")
        r = d.get("/get")
        self.assertEqual((r.status, r.header("Connection", "").lower()), (200, "close"), r)
        self.assertEqual(d.http("PUT", "/queues/during-delay").status, 201)
        rc = d.wait(8)
        took = time.monotonic() - start
        self.assertEqual(rc, 0, d.stderr())
        self.assertGreaterEqual(took, 1.4)
        d.check_stderr()

    def test_second_sigterm_cuts_drain_delay_short(self):
        d = Daemon({"server": {"drain_delay": "30s"}})
        d.start()
        self.addCleanup(d._kill)
        self.addCleanup(d.cleanup)
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertEqual(d.get("/health").status, 503)
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(5), 0, d.stderr())  # a drain, not a forced exit
        self.assertLess(time.monotonic() - start, 4)
        d.check_stderr()


if __name__ == "__main__":
    unittest.main(verbosity=2)
