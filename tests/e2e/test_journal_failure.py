"""A failed request has no hidden effect (issue 12, finding 3).

When the journal fails (a full disk: a small tmpfs filled by a filler file;
an I/O error: fdatasync failing with EIO through an LD_PRELOAD shim), puts
and acks get 507 / 503 in one of two ways (docs/QUEUES.md, "When the
journal fails"):
  - refused before anything changed (the journal was already failing): a
    plain error; nothing happened, and nothing appears after a restart;
  - made in memory, then their batch failed: the error says
    "outcome": "unknown" and names the job; the change is kept and written
    when the journal recovers, and a put retried with the same
    Idempotency-Key gets the same job back, so a retry never duplicates.
After the journal recovers and the daemon restarts: every 201 is there, no
acked (200) job is back, no refused put appears, no job appears twice.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from awaitd_test import SRCDIR
from test_queue_crash import Node


def fill(path):
    """Write a filler file until the file system is full."""
    fh = open(path, "wb", buffering=0)
    for size in (65536, 4096, 512):
        try:
            while True:
                fh.write(b"\xff" * size)
        except OSError:
            pass
    try:
        fh.close()
    except OSError:
        pass


class JournalFailureTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="awaitd-jfail-")
        self.mounted = False

    def tearDown(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.mnt], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def node(self, jdir, env=None, fsync="always"):
        n = Node(fsync)
        n.journal = os.path.join(jdir, "j")
        n.d.overrides["journal"]["path"] = n.journal
        if env:
            base = n.d._env
            n.d._env = lambda: dict(base(), **env)
        self.addCleanup(n.cleanup)
        return n.start()

    def restart_and_drain(self, n):
        """Restart n on its journal and reserve every job of queue f: payload -> id."""
        n.term()
        n.start()
        got = {}
        while True:
            r = n.http("POST", "/queues/f/reserve?wait=0&lease=600")
            if r.status == 204:
                return got
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(r.body, got, "a job appears twice: %r" % r.body[:40])
            got[r.body] = int(r.header("Job-Id"))

    def run_failure(self, n, arm, disarm, status):
        self.assertEqual(n.http("PUT", "/queues/f").status, 201)
        put201 = {}    # payload -> id
        refused = set()  # payloads refused before any change
        unknown = {}   # payload -> (id, key)
        ack200, ack_refused, ack_unknown = set(), set(), set()
        lock = threading.Lock()
        for i in range(20):
            r = n.http("POST", "/queues/f/jobs", body=b"pre-%d" % i,
                       headers={"Idempotency-Key": "pre-%d" % i})
            self.assertEqual(r.status, 201, r)
            put201[b"pre-%d" % i] = r.json()["id"]
        held = []
        for _ in range(10):
            r = n.http("POST", "/queues/f/reserve?wait=0&lease=600")
            self.assertEqual(r.status, 200, r)
            held.append((int(r.header("Job-Id")), r.header("Job-Attempt")))

        def putter(t):
            for i in range(40):
                p = b"t%d-%d" % (t, i)
                key = p.decode()
                r = n.http("POST", "/queues/f/jobs", body=p, headers={"Idempotency-Key": key})
                with lock:
                    if r.status == 201:
                        put201[p] = r.json()["id"]
                    elif r.status == status and r.json().get("outcome") == "unknown":
                        unknown[p] = (r.json()["id"], key)
                    elif r.status == status:
                        refused.add(p)
                    else:
                        errors.append(("put", r.status, r.body))
                if i == 3:
                    started.release()
                    go.wait(20)

        def acker():
            for _ in range(4):
                started.acquire(timeout=10)
            arm()  # then an ack, alone: its batch is the first to fail
            for k, (jid, attempt) in enumerate(held):
                if k == 1:
                    go.set()
                r = n.http("POST", "/queues/f/jobs/%d/ack?attempt=%s" % (jid, attempt))
                with lock:
                    if r.status == 200:
                        ack200.add(jid)
                    elif r.status == status and r.json().get("outcome") == "unknown":
                        self.assertEqual(r.json()["id"], jid)
                        ack_unknown.add(jid)
                    elif r.status == status:
                        ack_refused.add(jid)
                    else:
                        errors.append(("ack", r.status, r.body))

        errors = []
        started = threading.Semaphore(0)
        go = threading.Event()
        threads = [threading.Thread(target=putter, args=(t,)) for t in range(4)]
        threads.append(threading.Thread(target=acker))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertTrue(unknown or ack_unknown, "no request saw its batch fail")
        self.failed_first = (unknown, ack_unknown)
        self.assertTrue(refused, "no request was refused while the journal failed")
        disarm()
        deadline = time.monotonic() + 20
        while True:  # recovery: a put goes through again
            r = n.http("POST", "/queues/f/jobs", body=b"after", headers={"Idempotency-Key": "after"})
            if r.status in (200, 201):
                put201[b"after"] = r.json()["id"]
                break
            self.assertLess(time.monotonic(), deadline, "the journal did not recover: %r" % r)
            time.sleep(0.2)
        # A put whose outcome was unknown, retried with its key: the same job, no duplicate.
        for p, (jid, key) in unknown.items():
            r = n.http("POST", "/queues/f/jobs", body=p, headers={"Idempotency-Key": key})
            self.assertEqual((r.status, r.json()["id"], r.json().get("duplicate")),
                             (200, jid, True), r)
        got = self.restart_and_drain(n)
        acked_ids = ack200
        for p, jid in put201.items():
            if jid in acked_ids:
                self.assertNotIn(p, got, "an acked job came back: %r" % p)
            elif jid in ack_unknown:
                self.assertIn(got.get(p), (None, jid))
            else:
                self.assertEqual(got.get(p), jid, "a 201 is missing: %r" % p)
        for p in refused:
            self.assertNotIn(p, got, "a put refused with %d is there: %r" % (status, p))
        for p, (jid, _key) in unknown.items():
            self.assertIn(got.get(p), (None, jid))
        held_payload = {jid: p for p, jid in put201.items()}
        for jid in ack_refused:
            self.assertIn(held_payload[jid], got, "a refused ack took effect: %d" % jid)
        n.term()
        return len(put201), len(refused), len(unknown), len(ack_refused), len(ack_unknown)

    def test_full_disk(self):
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", self.mnt],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "mount tmpfs (needs root): %r" % r.stderr)
        self.mounted = True
        n = self.node(self.mnt)
        filler = os.path.join(self.mnt, "filler")
        counts = self.run_failure(n, lambda: fill(filler), lambda: os.unlink(filler), 507)
        print("[full disk: %d 201, %d refused, %d unknown puts; %d refused, %d unknown acks]"
              % counts, end=" ")

    def test_full_disk_fsync_off(self):
        """fsync = off, where the loop writes each turn's batch itself (issue
        19): the write that finds the disk full keeps its batch, later puts
        are refused with 507, and once there is room the batch is written:
        after a restart every 201 is there and no refused put is."""
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", self.mnt],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "mount tmpfs (needs root): %r" % r.stderr)
        self.mounted = True
        n = self.node(self.mnt, fsync="off")
        self.assertEqual(n.http("PUT", "/queues/f").status, 201)
        put201, refused = {}, set()
        for i in range(20):
            r = n.http("POST", "/queues/f/jobs", body=b"pre-%d" % i)
            self.assertEqual(r.status, 201, r)
            put201[b"pre-%d" % i] = r.json()["id"]
        filler = os.path.join(self.mnt, "filler")
        fill(filler)
        for i in range(2000):  # until the journal's last page is full too
            p = b"full-%d-%s" % (i, b"x" * 200)
            r = n.http("POST", "/queues/f/jobs", body=p)
            if r.status == 201:
                put201[p] = r.json()["id"]
            else:
                self.assertEqual(r.status, 507, r)
                refused.add(p)
                if len(refused) >= 5:
                    break
        self.assertEqual(len(refused), 5, "the disk never filled: %d puts answered 201"
                         % len(put201))
        os.unlink(filler)
        deadline = time.monotonic() + 20
        while True:  # the writer's recovery rewrites the kept batch
            r = n.http("POST", "/queues/f/jobs", body=b"after")
            if r.status == 201:
                put201[b"after"] = r.json()["id"]
                break
            self.assertEqual(r.status, 507, r)
            self.assertLess(time.monotonic(), deadline, "the journal did not recover: %r" % r)
            time.sleep(0.2)
        got = self.restart_and_drain(n)
        missing = [p[:20] for p, jid in put201.items() if got.get(p) != jid]
        self.assertEqual(missing, [], "%d puts answered 201 are missing" % len(missing))
        self.assertEqual([p for p in refused if p in got], [], "a put refused with 507 is there")
        n.term()
        print("[fsync off, full disk: %d 201, %d refused]" % (len(put201), len(refused)), end=" ")

    def test_eio(self):
        so = os.path.join(self.tmp, "journal_fault.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-o", so,
                            os.path.join(SRCDIR, "tests", "e2e", "journal_fault.c"), "-ldl"],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        flag = os.path.join(self.tmp, "fail-fsync")
        jdir = os.path.join(self.tmp, "j")
        os.mkdir(jdir)
        env = {"LD_PRELOAD": so, "AWAITD_TEST_FAULT_FILE": flag,
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
        n = self.node(jdir, env)
        counts = self.run_failure(n, lambda: open(flag, "w").close(), lambda: os.unlink(flag), 503)
        self.assertTrue(self.failed_first[1], "the first ack after the fault was not 'unknown'")
        print("[EIO: %d 201, %d refused, %d unknown puts; %d refused, %d unknown acks]" % counts,
              end=" ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
