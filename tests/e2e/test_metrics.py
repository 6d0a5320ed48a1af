"""GET /metrics as Prometheus reads it (docs/METRICS.md, issue 16).

- MetricsLocalTest: a daemon with the local backend serves probes (fast and
  delayed), 404s, queue traffic (put, reserve, ack), a periodic timer into a
  queue and the console; its /metrics must pass `promtool check metrics`
  (Debian's prometheus package) with no warning at all, the request latency
  histogram must count each route class's requests (a /delay/0.3 lands past
  the 0.25 s bucket), and the process_* figures must agree with what /proc
  and getrlimit say about the daemon process.
- MetricsRedisTest: the same promtool check with [store] backend = redis on a
  redis-server of our own (as test_redis.py starts it), after queue traffic.
"""

import os
import re
import shutil
import subprocess
import time
import unittest

import awaitd_test
from awaitd_test import Daemon, DaemonTestCase, parse_metrics

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
HIST = "awaitd_http_request_duration_seconds"
ROUTES = ("probe", "queue", "timer", "console", "metrics", "other")


def promtool_check(testcase, text):
    """Run `promtool check metrics` on text: fail on a non-zero exit or on any
    line it prints (its lint warnings)."""
    testcase.assertTrue(os.access(PROMTOOL, os.X_OK),
                        "promtool not found (Debian package prometheus; scripts/setup installs it)")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode(errors="replace").strip()
    testcase.assertTrue(p.returncode == 0 and not out,
                        "promtool check metrics exited %d:\n%s" % (p.returncode, out))


def families(text):
    """{name: type} from the TYPE lines; and the set of names with HELP."""
    types, helps = {}, set()
    for line in text.splitlines():
        m = re.match(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$", line)
        if m and m.group(1) == "TYPE":
            if m.group(2) in types:
                raise AssertionError("two TYPE lines for %s" % m.group(2))
            types[m.group(2)] = m.group(3)
        elif m:
            helps.add(m.group(2))
    return types, helps


def family_of(sample, types):
    name = sample.split("{", 1)[0]
    for suffix in ("_bucket", "_sum", "_count", ""):
        if name.endswith(suffix) and name[:len(name) - len(suffix)] in types:
            return name[:len(name) - len(suffix)]
    return None


class MetricsChecks:
    """Checks shared by both backends; needs self.daemon."""

    def scrape(self):
        r = self.daemon.http("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type", "").startswith("text/plain; version=0.0.4"), r)
        return r.text()

    def check_text(self, text):
        promtool_check(self, text)
        # What promtool checks, said once more in the test's own words: every
        # sample belongs to a family with HELP and TYPE, counters end in
        # _total, and no name carries an abbreviated unit.
        types, helps = families(text)
        self.assertEqual(set(types) - helps, set(), "families without HELP")
        for s in parse_metrics(text):
            self.assertIsNotNone(family_of(s, types), "sample without TYPE: %s" % s)
        for name, kind in types.items():
            self.assertEqual(name.endswith("_total"), kind == "counter", (name, kind))
            self.assertIsNone(re.search(r"_(ms|us|ns|kb|mb|milliseconds|microseconds)(_|$)", name),
                              "not a base unit: %s" % name)
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                     "process_start_time_seconds", HIST):
            self.assertIn(name, types)
        self.assertEqual(types[HIST], "histogram")
        return types


class MetricsLocalTest(MetricsChecks, DaemonTestCase):
    config = {"probe": {"max_delay": "5s"}}

    def traffic(self, gets=50):
        d = self.daemon
        for _ in range(gets):
            self.assertEqual(d.http("GET", "/get").status, 200)
        self.assertEqual(d.http("GET", "/status/418").status, 418)
        self.assertEqual(d.http("GET", "/delay/0.3").status, 200)
        self.assertEqual(d.http("GET", "/no-such-endpoint").status, 404)
        self.assertEqual(d.http("GET", "/console").status, 200)
        q = "mq%d" % int(time.monotonic() * 1000)
        self.assertEqual(d.http("PUT", "/queues/" + q).status, 201)
        for _ in range(3):
            self.assertEqual(d.http("POST", "/queues/%s/jobs" % q, body=b"job").status, 201)
        for _ in range(3):
            r = d.http("POST", "/queues/%s/reserve?wait=0" % q)
            self.assertEqual(r.status, 200, r)
            a = d.http("POST", "/queues/%s/jobs/%s/ack" % (q, r.header("Job-Id")))
            self.assertEqual(a.status, 200, a)
        r = d.http("POST", "/timers", body=b'{"queue": "%s", "every": 0.05, "count": 2}' % q.encode(),
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r)
        tid = r.json()["id"]
        r = d.http("GET", "/timers/%d?wait=5" % tid, timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "completed", r.json())
        return q

    def test_promtool_clean_after_traffic(self):
        self.traffic(gets=5)
        text = self.scrape()
        self.check_text(text)
        m = parse_metrics(text)
        # The families of every service are there, the per-queue ones too.
        for name in ("awaitd_journal_records_total", "awaitd_queue_jobs{state=\"ready\"}",
                     "awaitd_timer_fires_total", "awaitd_timer_lateness_seconds_count"):
            self.assertIn(name, m)
        self.assertTrue(any(k.startswith("awaitd_queue_put_total{queue=") for k in m), m)
        self.assertGreaterEqual(m["awaitd_timer_lateness_seconds_count"], 2)

    def test_request_histogram_counts_each_route_class(self):
        m0 = parse_metrics(self.scrape())
        self.traffic(gets=50)
        text = self.scrape()
        m1 = parse_metrics(text)

        def delta(series):
            return m1.get(series, 0) - m0.get(series, 0)

        def count(route):
            return '%s_count{route="%s"}' % (HIST, route)

        # 50 /get + /status + /delay; queue: PUT, 3 puts, 3 reserves, 3 acks; timer:
        # the create and the wait; one 404; one console page; the first scrape.
        self.assertGreaterEqual(delta(count("probe")), 52)
        self.assertGreaterEqual(delta(count("queue")), 10)
        self.assertGreaterEqual(delta(count("timer")), 2)
        self.assertGreaterEqual(delta(count("other")), 1)
        self.assertGreaterEqual(delta(count("console")), 1)
        self.assertGreaterEqual(delta(count("metrics")), 1)
        for route in ROUTES:
            buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in m1.items()
                             if k.startswith('%s_bucket{route="%s",' % (HIST, route)))
            self.assertGreaterEqual(len(buckets), 10, route)
            self.assertEqual(buckets[-1][0], float("inf"))
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), route)
            self.assertEqual(buckets[-1][1], m1[count(route)], route)
        # The /delay/0.3 took 0.3 s: past le=0.25, and the sum grew by it.
        past = delta('%s_bucket{route="probe",le="+Inf"}' % HIST) - \
            delta('%s_bucket{route="probe",le="0.25"}' % HIST)
        self.assertGreaterEqual(past, 1)
        self.assertGreaterEqual(delta('%s_sum{route="probe"}' % HIST), 0.29)
        # The timer wait was answered when the timer completed (>= 0.05 s).
        self.assertGreaterEqual(delta('%s_sum{route="timer"}' % HIST), 0.04)
        # Fast /get answers: most of the probe requests took under 10 ms.
        self.assertGreaterEqual(delta('%s_bucket{route="probe",le="0.01"}' % HIST), 40)

    def test_process_metrics_are_the_process(self):
        self.traffic(gets=20)
        pid = self.daemon.proc.pid
        tick = os.sysconf("SC_CLK_TCK")

        def proc_cpu():
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        # Enough requests for the daemon to have used a few clock ticks of CPU.
        deadline = time.monotonic() + 20
        while proc_cpu() < 0.05 and time.monotonic() < deadline:
            for _ in range(50):
                self.daemon.http("GET", "/bytes/65536")
        before = proc_cpu()
        m = parse_metrics(self.scrape())
        after = proc_cpu()
        self.assertGreater(before, 0, "the daemon used no CPU in 20 s of requests")
        self.assertTrue(before <= m["process_cpu_seconds_total"] <= after + 0.01,
                        (before, m["process_cpu_seconds_total"], after))
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        rss = int(status["VmRSS"].split()[0]) * 1024
        vsz = int(status["VmSize"].split()[0]) * 1024
        self.assertGreater(m["process_resident_memory_bytes"], 1 << 20)
        self.assertLess(abs(m["process_resident_memory_bytes"] - rss), max(rss // 2, 4 << 20))
        self.assertLess(abs(m["process_virtual_memory_bytes"] - vsz), max(vsz // 4, 16 << 20))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        self.assertGreaterEqual(m["process_open_fds"], 4)  # stdio, a listener, the loop
        self.assertLessEqual(abs(m["process_open_fds"] - fds), 4, (m["process_open_fds"], fds))
        with open("/proc/%d/limits" % pid) as f:
            soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
        self.assertEqual(m["process_max_fds"], float(soft))
        started = m["process_start_time_seconds"]
        self.assertLessEqual(started, time.time())
        self.assertLess(abs(started - m["awaitd_start_time_seconds"]), 2.0,
                        (started, m["awaitd_start_time_seconds"]))
        # A counter does not go back.
        m2 = parse_metrics(self.scrape())
        self.assertGreaterEqual(m2["process_cpu_seconds_total"], m["process_cpu_seconds_total"])


class MetricsRedisTest(MetricsChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import test_redis
        cls.redis = test_redis.RedisServer().start()
        try:
            cls.daemon = Daemon(test_redis.redis_config(cls.redis.port)).start()
        except BaseException:
            cls.redis.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            cls.redis.cleanup()

    def test_promtool_clean_with_redis_backend(self):
        d = self.daemon
        self.assertEqual(d.http("GET", "/get").status, 200)
        self.assertEqual(d.http("PUT", "/queues/rq").status, 201)
        self.assertEqual(d.http("POST", "/queues/rq/jobs", body=b"x").status, 201)
        r = d.http("POST", "/queues/rq/reserve?wait=0")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(d.http("POST", "/queues/rq/jobs/%s/ack" % r.header("Job-Id")).status, 200)
        text = self.scrape()
        self.check_text(text)
        m = parse_metrics(text)
        self.assertEqual(m["awaitd_redis_up"], 1)
        self.assertGreaterEqual(m['awaitd_queue_ops_total{backend="redis",op="put"}'], 1)
        self.assertGreaterEqual(m['%s_count{route="queue"}' % HIST], 4)


if __name__ == "__main__":
    awaitd_test.main()
