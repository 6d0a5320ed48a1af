"""Journal compaction end to end: a journal that is mostly acked records is
rewritten in the background with only the live jobs, and a restart on the
compacted journal has exactly those jobs and does not reuse job ids."""

import os
import shutil
import tempfile
import time
import unittest

from awaitd_test import Daemon


class JournalCompactionTest(unittest.TestCase):
    def test_compaction_keeps_live_jobs_and_ids(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-compact-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "journal")
        cfg = {"journal": {"path": path, "fsync": "always", "compact_min": "8k"}}
        d = Daemon(cfg)
        d.start()
        try:
            self.assertEqual(d.http("PUT", "/queues/w").status, 201)
            self.assertEqual(d.http("PUT", "/queues/t").status, 201)
            # Timers are compacted too: one scheduled, one cancelled.
            r = d.http("POST", "/timers", body=b'{"queue": "t", "every": 3600, "payload": "p"}')
            self.assertEqual(r.status, 201)
            periodic = r.json()["id"]
            r = d.http("POST", "/timers", body=b'{"queue": "t", "after": 3600}')
            cancelled = r.json()["id"]
            self.assertEqual(d.http("DELETE", "/timers/%d" % cancelled).status, 200)
            payload = b"x" * 200
            for _ in range(300):
                self.assertEqual(d.http("POST", "/queues/w/jobs", body=payload).status, 201)
            live = []
            for i in range(300):
                r = d.http("POST", "/queues/w/reserve")
                self.assertEqual(r.status, 200)
                job = r.header("Job-Id")
                if i < 290:
                    self.assertEqual(d.http("POST", "/queues/w/jobs/%s/ack" % job).status, 200)
                else:
                    live.append(int(job))
            # About 100 KB went through the journal; the live state is 10 jobs
            # (about 3 KB). Compaction may already have run during the loop.
            deadline = time.time() + 10
            while time.time() < deadline and (os.path.getsize(path) > 20000 or
                                              "journal compacted" not in d.stderr()):
                time.sleep(0.2)
            self.assertIn("journal compacted", d.stderr())
            self.assertLess(os.path.getsize(path), 20000, "the journal was not compacted")
        finally:
            d.stop()
        d = Daemon(cfg)
        d.start()
        try:
            st = d.http("GET", "/queues/w").json()
            # The 10 reserved-but-unacked jobs are ready again (leases are not durable).
            self.assertEqual((st["size"], st["unfinished"]), (10, 10))
            got = []
            for _ in range(10):
                r = d.http("POST", "/queues/w/reserve")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, b"x" * 200)
                got.append(int(r.header("Job-Id")))
            self.assertEqual(sorted(got), sorted(live))
            t = d.http("GET", "/timers/%d" % periodic).json()
            self.assertEqual((t["state"], t["kind"], t["every"]), ("scheduled", "every", 3600))
            t = d.http("GET", "/timers/%d" % cancelled).json()
            self.assertEqual(t["state"], "cancelled")
            r = d.http("POST", "/timers", body=b'{"queue": "t", "after": 1}')
            self.assertGreater(r.json()["id"], cancelled, "a timer id was reused after compaction")
            r = d.http("POST", "/queues/w/jobs", body=b"new")
            self.assertEqual(r.status, 201)
            self.assertGreater(r.json()["id"], 300, "a job id was reused after compaction")
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
