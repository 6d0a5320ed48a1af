"""Queue durability: SIGKILL in the middle of puts and acks, restarts on the
same journal, a torn journal tail and corruption in the middle of it.

The crash invariants (docs/QUEUES.md, Durability): a put's 201 and an ack's
200 are sent only once the journal holds them. So after a SIGKILL and a
restart on the same journal:
  - every job that got a 201 and was not acked is there (reserved ones too:
    leases are not durable). A job whose ack was sent but whose 200 never
    came may or may not be there, since the ack may have reached the journal;
  - no job whose ack got a 200 comes back;
  - nothing appears that was never put, and nothing appears twice.
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from awaitd_test import AWAITD, HOST, Daemon

JOURNAL_HEADER = 16
RECORD_OVERHEAD = 9


class Node:
    """An awaitd whose journal outlives its process: start, kill, restart."""

    def __init__(self, fsync="always", config=None):
        self.tmp = tempfile.mkdtemp(prefix="awaitd-crash-")
        self.journal = os.path.join(self.tmp, "j")
        cfg = {s: dict(v) for s, v in (config or {}).items()}
        cfg.setdefault("journal", {}).update({"path": self.journal, "fsync": fsync})
        self.d = Daemon(cfg)
        self.d.tmpdir = self.tmp
        self.stderr_history = []

    def start(self):
        self.d.start()
        return self

    def kill(self):
        self.d.signal(signal.SIGKILL)
        self.d.wait(10)
        self.stderr_history.append(self.d.stderr())
        self.d._kill()
        self.d.check_stderr()

    def term(self):
        self.d.signal(signal.SIGTERM)
        rc = self.d.wait(15)
        text = self.d.stderr()
        self.stderr_history.append(text)
        self.d._kill()
        if rc != 0:
            raise AssertionError("awaitd exited with %r on SIGTERM; stderr:\n%s"
                                 % (rc, text[-5000:]))
        self.d.check_stderr()

    def cleanup(self):
        if self.d.alive():
            self.d._kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        return self.d.http(method, path, body=body, headers=headers, timeout=timeout)

    def run_refused(self, timeout=15):
        """Run the daemon on the existing config expecting it to refuse to
        start: (exit code, stderr text)."""
        p = subprocess.Popen([AWAITD, "-c", self.d.conf_path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.tmp)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate(timeout=10)
            raise AssertionError("awaitd did not refuse to start: still running after %d s; "
                                 "output:\n%s" % (timeout, out.decode("utf-8", "replace")))
        return p.returncode, out.decode("utf-8", "replace")


def journal_records(data):
    """[(offset, n, type)] of the well-formed records of a journal image."""
    out = []
    pos = JOURNAL_HEADER
    while pos + RECORD_OVERHEAD <= len(data):
        n, _crc = struct.unpack_from("<II", data, pos)
        if pos + RECORD_OVERHEAD + n > len(data):
            break
        out.append((pos, n, data[pos + 8]))
        pos += RECORD_OVERHEAD + n
    return out


class KillLoad:
    """Producers and consumers of queue q on a node while it is SIGKILLed, and
    what each saw: the ledger the restarted journal is checked against."""

    def __init__(self, node, q, reserve_wait):
        self.node, self.q, self.reserve_wait = node, q, reserve_wait
        self.lock = threading.Lock()
        self.attempted, self.put201, self.ack_sent, self.acked200 = set(), set(), set(), set()
        self.ids = {}  # payload -> the id its 201 named
        self.answered_at = {}  # payload: when its put's 201, then its ack's 200, arrived
        self.errors = []

    def producer(self, tid, stop):
        conn = http.client.HTTPConnection(HOST, self.node.d.port, timeout=5)
        i = 0
        try:
            while not stop.is_set():
                payload = b"%s-%d-%d-%s" % (self.q.encode(), tid, i, os.urandom(6).hex().encode())
                i += 1
                with self.lock:
                    self.attempted.add(payload)
                try:
                    conn.request("POST", "/queues/%s/jobs?wait=1" % self.q, body=payload)
                    resp = conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException):
                    return  # the daemon is gone
                if resp.status == 201:
                    with self.lock:
                        self.put201.add(payload)
                        self.ids[payload] = json.loads(body)["id"]
                        self.answered_at[payload] = time.monotonic()
                elif resp.status != 503:
                    self.errors.append(("put", resp.status, body))
                    return
        finally:
            conn.close()

    def consumer(self, cid, stop):
        conn = http.client.HTTPConnection(HOST, self.node.d.port, timeout=5)
        try:
            while not stop.is_set():
                try:
                    conn.request("POST", "/queues/%s/reserve?wait=%s&lease=600"
                                 % (self.q, self.reserve_wait))
                    resp = conn.getresponse()
                    payload = resp.read()
                    if resp.status == 204:
                        continue
                    if resp.status != 200:
                        self.errors.append(("reserve", resp.status, payload))
                        return
                    jid = int(resp.getheader("Job-Id"))
                    attempt = resp.getheader("Job-Attempt")
                    with self.lock:
                        self.ack_sent.add(payload)
                    conn.request("POST", "/queues/%s/jobs/%d/ack?attempt=%s"
                                 % (self.q, jid, attempt))
                    resp = conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException):
                    return
                if resp.status == 200:
                    with self.lock:
                        self.acked200.add(payload)
                        self.answered_at[payload] = time.monotonic()
                else:
                    self.errors.append(("ack", resp.status, body))
                    return
        finally:
            conn.close()

    def threads(self, stop, producers, consumers):
        return ([threading.Thread(target=self.producer, args=(i, stop)) for i in range(producers)]
                + [threading.Thread(target=self.consumer, args=(i, stop))
                   for i in range(consumers)])


class QueueCrashTest(unittest.TestCase):

    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.cleanup()

    def node(self, fsync="always", config=None):
        n = Node(fsync, config)
        self.nodes.append(n)
        return n.start()

    def put(self, n, q, payload, expect=201, headers=None, **params):
        path = "/queues/%s/jobs" % q
        if params:
            path += "?" + "&".join("%s=%s" % kv for kv in params.items())
        r = n.http("POST", path, body=payload, headers=headers)
        self.assertEqual(r.status, expect, r)
        return r.json().get("id") if r.status in (200, 201) else r

    def reserve(self, n, q, **params):
        params.setdefault("wait", 0)
        path = "/queues/%s/reserve?" % q + "&".join("%s=%s" % kv for kv in params.items())
        return n.http("POST", path)

    def drain(self, n, q):
        """Reserve every ready job: [(id, payload)] in reserve order."""
        out = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = self.reserve(n, q, count=100, lease=600)
            if r.status == 204:
                return out
            self.assertEqual(r.status, 200, r)
            if "x-awaitd-frames" in r.header("Content-Type", ""):
                pos = 0
                body = r.body
                while pos < len(body):
                    nl = body.index(b"\n", pos)
                    fields = body[pos:nl].split(b" ")
                    jid, ln = int(fields[0]), int(fields[4])
                    out.append((jid, body[nl + 1:nl + 1 + ln]))
                    pos = nl + 1 + ln + 1
            else:
                out.append((int(r.header("Job-Id")), r.body))
        self.fail("queue %s did not drain within 30 s" % q)

    # ---- SIGKILL mid-flight ----------------------------------------------------------

    def crash_run(self, fsync, settled=0.0, secs=2.0):
        """settled > 0 (fsync = off, which promises nothing at the instant of a
        crash): only the answers the client had this many seconds before the
        kill must hold (every change of theirs was written long before)."""
        n = self.node(fsync)
        r = n.http("PUT", "/queues/crash")
        self.assertEqual(r.status, 201, r)
        load = KillLoad(n, "crash", 0.5)
        attempted, put201, ack_sent, acked200 = (load.attempted, load.put201, load.ack_sent,
                                                  load.acked200)
        ids, errors, answered_at = load.ids, load.errors, load.answered_at
        stop = threading.Event()
        threads = load.threads(stop, 4, 3)
        for t in threads:
            t.start()
        try:
            time.sleep(secs)
            self.assertTrue(n.d.alive(), n.d.stderr()[-3000:])
            killed_at = time.monotonic()
            n.kill()  # mid-flight
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        self.assertFalse(any(t.is_alive() for t in threads), "a client thread hung")
        if settled:
            with load.lock:
                old = {p for p, t in answered_at.items() if t < killed_at - settled}
                put201 &= old  # answered well before the kill: held to the strict rules
                acked200 &= old
        self.assertEqual(errors, [])
        self.assertGreater(len(put201), 20, "too few puts succeeded to test anything")
        self.assertGreater(len(acked200), 5, "too few acks succeeded to test anything")
        self.assertGreater(len(put201 - ack_sent), 0, "no backlog at the kill")

        n.start()  # same journal
        st = n.http("GET", "/queues/crash")
        self.assertEqual(st.status, 200, "the queue is gone after the restart: %r" % st)
        st = st.json()
        jobs = self.drain(n, "crash")
        present = [p for _, p in jobs]
        self.assertEqual(len(present), len(set(present)), "a job came back twice")
        present = set(present)
        missing = (put201 - ack_sent) - present
        self.assertEqual(missing, set(), "%d jobs that got a 201 and were never acked are lost "
                         "(of %d put, %d acked); e.g. %r"
                         % (len(missing), len(put201), len(acked200), sorted(missing)[:5]))
        back = present & acked200
        self.assertEqual(back, set(), "%d jobs whose ack got a 200 came back, e.g. %r"
                         % (len(back), sorted(back)[:5]))
        self.assertEqual(present - attempted, set(), "jobs that were never put appeared")
        sys.stderr.write("[%s: %d puts got 201, %d acks got 200%s, %d acks unanswered, "
                         "%d jobs present after the restart] "
                         % (fsync, len(put201), len(acked200),
                            " (answers %.1f s before the kill)" % settled if settled else "",
                            len(ack_sent - acked200), len(present)))
        self.assertEqual(st["unfinished"], len(present), st)
        self.assertEqual(st["reserved"], 0, "leases are not durable: %r" % st)
        for jid, p in jobs:
            if p in ids:
                self.assertEqual(jid, ids[p], "job %r changed its id over the restart" % p)
        # the restarted daemon works, and ids are not reused
        new = self.put(n, "crash", b"after the crash")
        self.assertGreater(new, max([jid for jid, _ in jobs] + [ids[p] for p in put201]))
        for jid, _ in jobs:
            r = n.http("POST", "/queues/crash/jobs/%d/ack" % jid)
            self.assertEqual(r.status, 200, r)
        j = self.reserve(n, "crash")
        self.assertEqual((j.status, j.body), (200, b"after the crash"), j)
        n.term()
        return len(put201), len(acked200)

    def test_sigkill_fsync_always(self):
        self.crash_run("always")

    def test_sigkill_fsync_batch(self):
        self.crash_run("batch")

    def test_sigkill_fsync_off(self):
        """fsync = off: the loop thread writes each turn's batch itself when
        the writer thread is idle (issue 19). The journal a SIGKILL leaves
        starts cleanly, and what the clients were answered a second before
        the kill is all there."""
        self.crash_run("off", settled=1.0, secs=3.0)

    # ---- the SIGKILL loop (issue 12) ---------------------------------------------------

    def test_sigkill_loop(self):
        """Kill the daemon again and again under a steady load of puts and
        acks; after every restart, every job that got a 201 and was not acked
        is there, and no acked job is. make check kills 3 times; AWAITD_LONG=1
        (or AWAITD_SIGKILLS=N) runs the 20 kills of issue 12."""
        kills = int(os.environ.get("AWAITD_SIGKILLS")
                    or (20 if os.environ.get("AWAITD_LONG") == "1" else 3))
        n = self.node("always")
        self.assertEqual(n.http("PUT", "/queues/loop").status, 201)
        load = KillLoad(n, "loop", 0.2)
        lock, errors = load.lock, load.errors
        attempted, put201, ack_sent, acked200 = (load.attempted, load.put201, load.ack_sent,
                                                  load.acked200)
        gone = set()  # acks sent but unanswered, found to have taken effect: never back

        total_puts = total_acks = 0
        for k in range(kills):
            stop = threading.Event()
            threads = load.threads(stop, 3, 2)
            puts_before, acks_before = len(put201), len(acked200)
            for t in threads:
                t.start()
            try:
                deadline = time.monotonic() + 10
                # At least a little of both before the kill, whatever the machine's load.
                while time.monotonic() < deadline and (len(put201) - puts_before < 20 or
                                                       len(acked200) - acks_before < 5):
                    time.sleep(0.05)
                time.sleep(random.uniform(0.2, 1.0))  # the kill lands anywhere
                self.assertTrue(n.d.alive(), n.d.stderr()[-3000:])
                n.kill()  # mid-flight
            finally:
                stop.set()
                for t in threads:
                    t.join(15)
            self.assertFalse(any(t.is_alive() for t in threads), "a client thread hung")
            self.assertEqual(errors, [])
            self.assertGreater(len(put201) - puts_before, 0, "kill %d: no put succeeded" % k)

            n.start()  # same journal
            # Every job in the queue: reserve them all (leases are not durable, so
            # the next kill puts them back; the load after this never sees them).
            jobs = self.drain(n, "loop")
            present = [p for _, p in jobs]
            self.assertEqual(len(present), len(set(present)), "kill %d: a job came back twice" % k)
            present = set(present)
            with lock:
                missing = (put201 - ack_sent) - present
                back = present & (acked200 | gone)
                unanswered = ack_sent - acked200
                # An ack without an answer either took effect (the job must never
                # come back) or did not (the job is pending again, and must stay).
                gone |= unanswered - present
                ack_sent -= unanswered & present
            self.assertEqual(missing, set(), "kill %d: %d jobs that got a 201 and were never "
                             "acked are lost, e.g. %r" % (k, len(missing), sorted(missing)[:5]))
            self.assertEqual(back, set(), "kill %d: %d acked jobs came back, e.g. %r"
                             % (k, len(back), sorted(back)[:5]))
            self.assertEqual(present - attempted, set(), "jobs that were never put appeared")
            total_puts, total_acks = len(put201), len(acked200)
        sys.stderr.write("[%d kills: %d puts got 201, %d acks got 200, %d jobs pending] "
                         % (kills, total_puts, total_acks, len(present)))
        n.term()

    # ---- clean restart -----------------------------------------------------------

    def test_writer_thread_only_when_needed(self):
        """The journal writer thread starts at its first batch (issue 19): a
        daemon serving GET and fsync = off puts (written inline) stays one
        thread, yet every 201 survives a kill -9 and SIGTERM's closing
        fdatasync; fsync = always starts the writer at the first put."""
        def threads(node):
            return len(os.listdir("/proc/%d/task" % node.d.proc.pid))

        n = self.node("off")
        self.assertEqual(n.http("GET", "/get").status, 200)
        self.assertEqual(n.http("PUT", "/queues/lazy").status, 201)
        ids = [self.put(n, "lazy", b"j%d" % i) for i in range(20)]
        # fsync = off writes a turn's records at the end of the turn, after its answers
        # (docs/QUEUES.md "Durability"): a request answered after the last put's 201 was
        # read in a later turn, so every put is written before the kill.
        self.assertEqual(n.http("GET", "/get").status, 200)
        self.assertEqual(threads(n), 1)
        n.kill()
        n.start()
        more = [self.put(n, "lazy", b"k%d" % i) for i in range(5)]
        self.assertEqual(threads(n), 1)
        n.term()
        n.start()
        got = []
        while True:
            r = n.http("POST", "/queues/lazy/reserve?wait=0")
            if r.status != 200:
                break
            got.append(int(r.header("Job-Id")))
        self.assertEqual(sorted(got), sorted(ids + more))

        a = self.node("always")
        self.assertEqual(a.http("GET", "/get").status, 200)
        self.assertEqual(threads(a), 1)
        self.assertEqual(a.http("PUT", "/queues/lazy").status, 201)
        self.assertEqual(threads(a), 2)

    def test_restart_keeps_state(self):
        n = self.node("always")
        settings = {"maxsize": 10, "lease": 7, "max_attempts": 2, "max_payload": 1000}
        r = n.http("PUT", "/queues/keep", body=json.dumps(settings),
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r)
        # f: dead letter (delivered max_attempts times)
        f = self.put(n, "keep", b"dead", priority=9)
        for verdict in ("released", "dead"):
            r = self.reserve(n, "keep")
            self.assertEqual(r.header("Job-Id"), str(f), r)
            r = n.http("POST", "/queues/keep/jobs/%d/nack" % f)
            self.assertEqual(r.json(), {verdict: f}, r)
        # e: reserved when the daemon stops
        e = self.put(n, "keep", b"reserved-at-stop", priority=0)
        r = self.reserve(n, "keep")
        self.assertEqual(r.header("Job-Id"), str(e), r)
        # g: acked, gone
        g = self.put(n, "keep", b"acked")
        r = self.reserve(n, "keep")
        self.assertEqual(r.header("Job-Id"), str(g), r)
        self.assertEqual(n.http("POST", "/queues/keep/jobs/%d/ack" % g).status, 200)
        a = self.put(n, "keep", b"a", priority=5)
        b = self.put(n, "keep", b"b", priority=1)
        c = self.put(n, "keep", b"c\x00binary", priority=1, headers={"Idempotency-Key": "k"})
        t_delay = time.monotonic()
        d = self.put(n, "keep", b"delayed", delay=4)
        # a shut-down queue and a deleted one
        self.assertEqual(n.http("PUT", "/queues/sd").status, 201)
        x = self.put(n, "sd", b"x")
        self.assertEqual(n.http("POST", "/queues/sd/shutdown").status, 200)
        self.assertEqual(n.http("PUT", "/queues/gone").status, 201)
        self.put(n, "gone", b"y")
        self.assertEqual(n.http("DELETE", "/queues/gone").status, 200)
        n.term()
        n.start()
        elapsed = time.monotonic() - t_delay
        st = n.http("GET", "/queues/keep").json()
        for k, v in settings.items():
            self.assertAlmostEqual(float(st[k]), v, msg="setting %s after restart: %r" % (k, st))
        self.assertEqual((st["size"], st["reserved"], st["dead"], st["unfinished"]),
                         (4, 0, 1, 5), st)
        if elapsed < 3.5:
            self.assertEqual(st["delayed"], 1, st)
        got = []
        for _ in range(4):
            r = self.reserve(n, "keep")
            self.assertEqual(r.status, 200, r)
            got.append((int(r.header("Job-Id")), int(r.header("Job-Attempt")), r.body))
        self.assertEqual(got, [(e, 1, b"reserved-at-stop"), (b, 1, b"b"), (c, 1, b"c\x00binary"),
                               (a, 1, b"a")])
        r = n.http("POST", "/queues/keep/jobs", body=b"again", headers={"Idempotency-Key": "k"})
        self.assertEqual((r.status, r.json()), (200, {"id": c, "duplicate": True}), r)
        if time.monotonic() - t_delay < 3.5:
            self.assertEqual(self.reserve(n, "keep").status, 204,
                             "the delay was lost in the restart")
        r = self.reserve(n, "keep", wait=8)
        self.assertEqual((r.status, r.header("Job-Id"), r.body), (200, str(d), b"delayed"), r)
        self.assertGreaterEqual(time.monotonic() - t_delay, 3.8)
        dead = n.http("GET", "/queues/keep/dead").json()["dead"]
        self.assertEqual([j["id"] for j in dead], [f])
        self.assertEqual(n.http("GET", "/queues/keep/jobs/%d" % g).status, 404)
        st = n.http("GET", "/queues/sd").json()
        self.assertTrue(st["shutdown"], st)
        self.assertEqual(n.http("POST", "/queues/sd/jobs", body=b"z").status, 410)
        r = self.reserve(n, "sd")
        self.assertEqual((r.status, r.header("Job-Id")), (200, str(x)), r)
        self.assertEqual(n.http("GET", "/queues/gone").status, 404)
        self.assertGreater(self.put(n, "keep", b"new"), max(a, b, c, d, e, f, g, x))
        n.term()

    # ---- bulk removal ---------------------------------------------------------------

    def batch_put(self, n, q, count, delay=None):
        body = b"".join(b"%d\n%s\n" % (len(p), p)
                        for p in (b"bulk-%d" % i for i in range(count)))
        path = "/queues/%s/jobs?batch=1" % q + ("&delay=%s" % delay if delay else "")
        r = n.http("POST", path, body=body)
        self.assertEqual(r.status, 201, r)

    def test_big_purge_is_durable_once_answered(self):
        """Purge frees its jobs in slices across loop turns; its 200 comes once
        every DROP record is in the journal, so a SIGKILL right after the
        answer does not bring any job back. A delete, a dead-letter purge and
        an immediate shutdown likewise."""
        n = self.node("batch")
        for q in ("big", "other", "sd", "gone"):
            self.assertEqual(n.http("PUT", "/queues/%s" % q).status, 201)
        for _ in range(12):
            self.batch_put(n, "big", 5000)
        self.batch_put(n, "big", 3000, delay=600)
        keep = self.put(n, "other", b"untouched")
        held = self.put(n, "big", b"held", priority=-1)
        r = self.reserve(n, "big")
        self.assertEqual(r.header("Job-Id"), str(held), r)
        for _ in range(4):
            self.batch_put(n, "sd", 5000)
        self.batch_put(n, "gone", 5000)
        # a client that leaves before its purge is answered changes nothing
        with socket.create_connection((HOST, n.d.port)) as s:
            s.sendall(b"POST /queues/sd/purge HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 0\r\n\r\n")
        r = n.http("POST", "/queues/big/purge", timeout=60)
        self.assertEqual((r.status, r.json()), (200, {"purged": 63000}), r)
        after = self.put(n, "big", b"after the purge")
        self.assertEqual(n.http("DELETE", "/queues/gone").status, 200)
        self.batch_put(n, "sd", 5000)
        r = n.http("POST", "/queues/sd/shutdown?immediate=1", timeout=60)
        self.assertEqual(r.status, 200, r)
        st = n.http("GET", "/queues/big").json()
        self.assertEqual((st["size"], st["delayed"], st["reserved"], st["unfinished"]),
                         (1, 0, 1, 2), st)
        self.assertEqual(n.http("GET", "/queues/big/jobs/1").status, 404)
        # no waiting for the reaper: the answers are the promise
        n.kill()
        n.start()
        st = n.http("GET", "/queues/big").json()
        self.assertEqual((st["size"], st["delayed"], st["unfinished"]), (2, 0, 2), st)
        got = sorted(int(self.reserve(n, "big").header("Job-Id")) for _ in range(2))
        self.assertEqual(got, sorted([held, after]))
        st = n.http("GET", "/queues/sd").json()
        self.assertEqual((st["size"], st["shutdown"]), (0, "immediate"), st)
        self.assertEqual(n.http("GET", "/queues/gone").status, 404)
        r = self.reserve(n, "other")
        self.assertEqual(r.header("Job-Id"), str(keep), r)
        m = n.http("GET", "/metrics").body.decode()
        self.assertRegex(m, r"(?m)^awaitd_queue_reaping 0$")
        n.term()

    # ---- journal damage ------------------------------------------------------------

    def test_torn_tail(self):
        n = self.node("always")
        self.assertEqual(n.http("PUT", "/queues/torn").status, 201)
        ids = [self.put(n, "torn", b"torn-%d" % i) for i in range(5)]
        n.term()
        with open(n.journal, "rb") as fh:
            clean = fh.read()
        for name, garbage in (("cut header", b"\x40\x00\x00"),
                              ("cut payload", struct.pack("<II", 100, 0x1234567) + b"\x02abcdef"),
                              ("zeros", b"\x00" * 4096)):
            with self.subTest(name):
                with open(n.journal, "wb") as fh:
                    fh.write(clean + garbage)
                n.start()
                text = n.d.stderr()
                self.assertRegex(text, re.compile(r"torn|truncat|partial|incomplete", re.I),
                                 "no warning about the torn tail; stderr:\n%s" % text)
                r = n.http("GET", "/queues/torn")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["size"], 5, r)
                for i, jid in enumerate(ids):
                    g = n.http("GET", "/queues/torn/jobs/%d" % jid)
                    self.assertEqual((g.status, g.body), (200, b"torn-%d" % i), g)
                n.term()
                with open(n.journal, "rb") as fh:
                    after = fh.read()
                self.assertEqual(after[:len(clean)], clean)
                self.assertNotEqual(after[len(clean):len(clean) + len(garbage)], garbage,
                                    "the torn tail was not cut")
        # and the journal is still good for more work
        n.start()
        jid = self.put(n, "torn", b"more")
        self.assertGreater(jid, max(ids))
        n.term()
        n.start()
        self.assertEqual(n.http("GET", "/queues/torn").json()["size"], 6)
        n.term()

    def test_corruption_in_the_middle_refused(self):
        n = self.node("always")
        self.assertEqual(n.http("PUT", "/queues/mid").status, 201)
        marker = b"EARLY-RECORD-MARKER-0123456789"
        self.put(n, "mid", marker)
        for i in range(20):
            self.put(n, "mid", b"later-%d" % i)
        n.term()
        with open(n.journal, "rb") as fh:
            data = bytearray(fh.read())
        at = data.find(marker)
        self.assertGreater(at, 0, "the payload is not in the journal as bytes")
        recs = [rec for rec in journal_records(data)
                if rec[0] + RECORD_OVERHEAD <= at < rec[0] + RECORD_OVERHEAD + rec[1]]
        self.assertEqual(len(recs), 1, "cannot find the record holding the payload")
        offset = recs[0][0]
        self.assertLess(offset + RECORD_OVERHEAD + recs[0][1], len(data) - 100,
                        "the damaged record should have records after it")
        data[at + 5] ^= 0x20
        with open(n.journal, "wb") as fh:
            fh.write(data)
        rc, text = n.run_refused()
        self.assertNotEqual(rc, 0,
                            "awaitd started on a journal corrupted in the middle:\n%s" % text)
        self.assertIn(str(offset), text,
                      "the refusal does not name the offset %d of the bad record:\n%s"
                      % (offset, text))
        self.assertIn(n.journal, text, "the refusal does not name the journal file:\n%s" % text)
        with open(n.journal, "rb") as fh:
            self.assertEqual(fh.read(), bytes(data), "a refused start changed the journal")
        # -r (repair): cut at the last good batch, keep what came before, and a copy of the original
        before = set(os.listdir(n.tmp))
        log = open(os.path.join(n.tmp, "repair.log"), "wb")
        p = subprocess.Popen([AWAITD, "-r", "-c", n.d.conf_path], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, cwd=n.tmp)
        try:
            deadline = time.monotonic() + 10
            while True:
                self.assertIsNone(p.poll(), "awaitd -r exited with %r: %s"
                                  % (p.returncode, open(log.name, "rb").read()))
                try:
                    if n.http("GET", "/health", timeout=1).status == 200:
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, "awaitd -r did not start")
                time.sleep(0.05)
            st = n.http("GET", "/queues/mid")
            self.assertEqual(st.status, 200, st)
            self.assertEqual(st.json()["size"], 0, "records after the cut survived: %r" % st)
            self.assertGreater(self.put(n, "mid", b"after repair"), 0)
        finally:
            p.terminate()
            try:
                rc = p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
                rc = None
            log.close()
        self.assertEqual(rc, 0)
        text = open(log.name, "rb").read().decode("utf-8", "replace")
        self.assertIn(str(offset), text, text)
        saved = set(os.listdir(n.tmp)) - before - {"repair.log"}
        self.assertTrue(saved, "the cut bytes were not saved beside the journal: %s" % text)
        with open(os.path.join(n.tmp, sorted(saved)[0]), "rb") as fh:
            self.assertEqual(fh.read(), bytes(data),
                             "the copy kept is not the original file")


if __name__ == "__main__":
    unittest.main(verbosity=2)
