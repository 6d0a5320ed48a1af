"""Job results and job listing (issue 17; docs/QUEUES.md "Results", "Seeing jobs"):
an ack carrying a result, GET .../result long-polled until the job is acked,
dead or dropped, results kept for result_ttl, journaled (they survive a
restart), charged to the memory limit, waits cancelled by a client leaving,
dead letters keeping why they died, and GET /queues/{q}/jobs?state=... pages.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from awaitd_test import SRCDIR, Daemon, RawConn, main
from test_queue import QueueCase, qs

JOURNAL_TOOL = os.environ.get("AWAITD_JOURNAL") or os.path.join(SRCDIR, "src", "awaitd-journal")


class ResultsCase(QueueCase):
    config = {"queues": {"max_wait": "20s"}}

    def take(self, q, **params):
        jid, attempt, _ = self.reserve_ok(q, **params)
        return jid, attempt

    def ack(self, q, jid, body=None, ctype=None, expect=200, **params):
        headers = {"Content-Type": ctype} if ctype else {}
        r = self.h("POST", qs("/queues/%s/jobs/%d/ack" % (q, jid), **params), body=body,
                   headers=headers)
        if expect is not None:
            self.assertEqual(r.status, expect, "ack %d: %r" % (jid, r))
        return r

    def nack(self, q, jid, body=None, headers=None, expect=200, **params):
        r = self.h("POST", qs("/queues/%s/jobs/%d/nack" % (q, jid), **params), body=body,
                   headers=headers)
        if expect is not None:
            self.assertEqual(r.status, expect, "nack %d: %r" % (jid, r))
        return r

    def get_result(self, q, jid, timeout=15.0, **params):
        return self.h("GET", qs("/queues/%s/jobs/%d/result" % (q, jid), **params), timeout=timeout)

    def jobs(self, q, expect=200, **params):
        r = self.h("GET", qs("/queues/%s/jobs" % q, **params))
        self.assertEqual(r.status, expect, r)
        return r.json()


class ResultTest(ResultsCase):

    def test_result_after_ack(self):
        q = self.newq()
        jid = self.put(q, b"2+2")
        j, attempt = self.take(q)
        self.assertEqual(j, jid)
        r = self.ack(q, jid, b'{"sum": 4}', "application/json", attempt=attempt)
        self.assertEqual(r.json()["acked"], jid)
        r = self.get_result(q, jid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b'{"sum": 4}')
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.header("Job-Outcome"), "acked")
        self.assertEqual(r.header("Job-Attempt"), "1")
        self.assertGreater(float(r.header("Result-Expires")), time.time() + 200)
        # Binary results come back byte for byte, with the default type.
        jid = self.put(q, b"bin")
        self.take(q)
        blob = bytes(range(256)) * 4
        self.ack(q, jid, blob)
        r = self.get_result(q, jid)
        self.assertEqual((r.status, r.body), (200, blob))
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")

    def test_long_poll_wakes_on_ack_from_another_connection(self):
        q = self.newq()
        jid = self.put(q, b"job")
        t0 = time.monotonic()
        fut = self.bg(self.get_result, q, jid, wait=15)
        time.sleep(0.3)
        self.assertFalse(fut.done(), "the result answered before the job was acked")
        j, attempt = self.take(q)
        t_ack = time.monotonic()
        self.ack(q, j, b"done!", "text/plain", attempt=attempt)
        r, t_done = self.result(fut)
        self.assertEqual((r.status, r.body), (200, b"done!"), r)
        self.assertEqual(r.header("Content-Type"), "text/plain")
        self.assertLess(t_done - t_ack, 5.0, "the waiter was not woken by the ack")
        self.assertGreater(t_done - t0, 0.3)

    def test_long_poll_bodyless_ack_wakes_with_empty_result(self):
        q = self.newq()
        jid = self.put(q)
        fut = self.bg(self.get_result, q, jid, wait=15)
        time.sleep(0.2)
        j, attempt = self.take(q)
        self.job(q, j, "ack", attempt=attempt)  # no body: no result kept
        r, _ = self.result(fut)
        self.assertEqual((r.status, r.body), (200, b""), r)
        # Nothing was kept: a later ask finds nothing.
        self.assertErr(self.get_result(q, jid), 404)

    def test_204_when_the_wait_passes(self):
        q = self.newq()
        jid = self.put(q)
        r = self.get_result(q, jid)  # wait=0: at once
        self.assertEqual(r.status, 204, r)
        t0 = time.monotonic()
        r = self.get_result(q, jid, wait=0.4)
        self.assertEqual(r.status, 204, r)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)
        self.take(q)  # reserved is still live
        self.assertEqual(self.get_result(q, jid, wait=0.1).status, 204)

    def test_dead_by_nack_names_the_reason_and_text(self):
        q = self.newq({"max_attempts": 2})
        jid = self.put(q)
        fut = self.bg(self.get_result, q, jid, wait=15)
        j, a = self.take(q)
        self.assertEqual(self.nack(q, j, b"first failure").json(), {"released": j})
        j, a = self.take(q)
        self.assertEqual(self.nack(q, j, b"ValueError: <bad> \"input\"", attempt=a).json(),
                         {"dead": j})
        r, _ = self.result(fut)
        self.assertEqual(r.status, 409, r)
        e = r.json()
        self.assertEqual((e["state"], e["reason"], e["attempt"], e["detail"]),
                         ("dead", "nacked", 2, 'ValueError: <bad> "input"'))
        self.assertIn("nacked on its last attempt", e["error"])
        # Asked afterwards: the same, from the dead letter.
        e = self.assertErr(self.get_result(q, jid), 409)
        self.assertEqual((e["reason"], e["detail"]), ("nacked", 'ValueError: <bad> "input"'))
        dead = self.h("GET", "/queues/%s/dead" % q).json()["dead"]
        self.assertEqual([(d["id"], d["reason"], d["error"]) for d in dead],
                         [(jid, "nacked", 'ValueError: <bad> "input"')])

    def test_nack_error_in_a_header(self):
        q = self.newq({"max_attempts": 1})
        jid = self.put(q)
        j, a = self.take(q)
        self.nack(q, j, headers={"Job-Error": "timeout talking to smtp"})
        e = self.assertErr(self.get_result(q, jid), 409)
        self.assertEqual(e["detail"], "timeout talking to smtp")

    def test_dead_by_lease_expiry_names_the_reason(self):
        q = self.newq({"max_attempts": 1, "lease": 0.2})
        jid = self.put(q)
        fut = self.bg(self.get_result, q, jid, wait=15)
        self.take(q)
        r, _ = self.result(fut)  # the lease runs out: dead, no nack
        e = self.assertErr(r, 409)
        self.assertEqual((e["reason"], e["detail"], e["attempt"]), ("lease_expired", None, 1))
        self.assertIn("lease ran out", e["error"])
        dead = self.h("GET", "/queues/%s/dead" % q).json()["dead"]
        self.assertEqual([(d["id"], d["reason"], d["error"]) for d in dead],
                         [(jid, "lease_expired", None)])

    def test_requeued_dead_letter_then_acked(self):
        q = self.newq({"max_attempts": 1})
        jid = self.put(q)
        j, a = self.take(q)
        self.nack(q, j, b"boom")
        self.assertErr(self.get_result(q, jid), 409)
        r = self.h("POST", "/queues/%s/dead/requeue?id=%d" % (q, jid))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get_result(q, jid).status, 204)  # live again: no outcome yet
        j, a = self.take(q)
        self.ack(q, j, b"second time lucky")
        r = self.get_result(q, jid)
        self.assertEqual((r.status, r.body), (200, b"second time lucky"))

    def test_dropped_while_waiting_is_410(self):
        q = self.newq()
        jid = self.put(q, delay=60)
        fut = self.bg(self.get_result, q, jid, wait=15)
        time.sleep(0.2)
        self.assertEqual(self.h("POST", "/queues/%s/purge" % q).status, 200)
        r, _ = self.result(fut)
        e = self.assertErr(r, 410)
        self.assertEqual((e["state"], e["reason"]), ("dropped", "purged"))
        q2 = self.newq()
        jid = self.put(q2)
        fut = self.bg(self.get_result, q2, jid, wait=15)
        time.sleep(0.2)
        self.assertEqual(self.h("DELETE", "/queues/" + q2).status, 200)
        r, _ = self.result(fut)
        self.assertEqual(self.assertErr(r, 410)["reason"], "queue_deleted")

    def test_result_expires_after_result_ttl(self):
        q = self.newq({"result_ttl": 0.4})
        self.assertEqual(self.stats(q)["result_ttl"], 0.4)
        jid = self.put(q)
        self.take(q)
        self.ack(q, jid, b"short-lived")
        self.assertEqual(self.get_result(q, jid).status, 200)
        self.assertEqual(self.stats(q)["results"], 1)
        deadline = time.monotonic() + 10
        while self.get_result(q, jid).status == 200:
            self.assertLess(time.monotonic(), deadline, "the result outlived its ttl by 10 s")
            time.sleep(0.05)
        self.assertErr(self.get_result(q, jid), 404)
        self.assertEqual(self.stats(q)["results"], 0)
        # result_ttl 0 keeps nothing: the ack still works.
        q0 = self.newq({"result_ttl": 0})
        jid = self.put(q0)
        self.take(q0)
        self.ack(q0, jid, b"dropped on the floor")
        self.assertErr(self.get_result(q0, jid), 404)

    def test_waiter_that_leaves_is_cancelled(self):
        q = self.newq()
        jid = self.put(q)
        for _ in range(20):  # many waits whose clients leave, then the ack
            c = RawConn(self.d.port)
            c.send(b"GET /queues/%s/jobs/%d/result?wait=15 HTTP/1.1\r\nHost: t\r\n\r\n"
                   % (q.encode(), jid))
            c.close()
        time.sleep(0.3)
        j, a = self.take(q)
        self.ack(q, j, b"still fine")
        r = self.get_result(q, jid)
        self.assertEqual((r.status, r.body), (200, b"still fine"))
        self.assertTrue(self.d.alive())

    def test_bad_input(self):
        q = self.newq({"max_payload": 100})
        jid = self.put(q)
        self.assertErr(self.get_result(q, jid, wait="soon"), 400)
        e = self.assertErr(self.get_result(q, jid, wiat=1), 400)  # unknown parameters (issue 16)
        self.assertIn("'wiat'", e["error"])
        self.assertIn("'sate'", self.assertErr(self.h("GET", qs("/queues/%s/jobs" % q, sate="dead")),
                                               400)["error"])
        self.assertErr(self.get_result(q, 999999), 404)
        self.assertErr(self.h("GET", "/queues/no-such-q/jobs/1/result"), 404)
        self.assertErr(self.h("POST", "/queues/no-such-q/jobs/1/ack", body=b"r"), 404)
        self.assertErr(self.h("POST", "/queues/no-such-q/jobs/1/nack", body=b"e"), 404)
        r = self.h("POST", "/queues/%s/jobs/%d/result" % (q, jid))
        self.assertErr(r, 405)
        self.assertEqual(r.header("Allow"), "GET")
        j, a = self.take(q)
        self.assertErr(self.ack(q, j, b"x", "a" * 200, expect=None), 400)
        e = self.assertErr(self.ack(q, j, b"y" * 101, expect=None), 413)
        self.assertIn("max_payload", e["error"])
        self.assertErr(self.ack(q, j, b"x", attempt=a + 1, expect=None), 409)
        self.assertErr(self.ack(q, j, b"x", attempt="one", expect=None), 400)
        self.assertErr(self.ack(q, j, b"x", expect=None, atempt=a), 400)
        self.assertErr(self.nack(q, j, b"x", expect=None, dealy=1), 400)
        self.assertErr(self.ack(q, 424242, b"x", expect=None), 404)
        self.ack(q, j, b"ok", attempt=a)
        self.assertErr(self.ack(q, j, b"again", expect=None), 404)  # acked: gone
        self.assertErr(self.h("PUT", "/queues/" + q, body='{"result_ttl": -1}'), 400)
        self.assertErr(self.h("PUT", "/queues/" + q, body='{"result_ttl": "5m"}'), 400)
        for params in ({"state": "bogus"}, {"limit": 0}, {"limit": 1001}, {"after": "x:1"},
                       {"after": "1:"}, {"preview": -1}):
            self.assertErr(self.h("GET", qs("/queues/%s/jobs" % q, **params)), 400)
        self.assertErr(self.h("GET", qs("/queues/%s/jobs" % q, state="dead", after=12345)), 400)
        self.assertErr(self.h("GET", "/queues/nope/jobs"), 404)


class ListingTest(ResultsCase):

    def test_ready_in_delivery_order_paged(self):
        q = self.newq()
        ids = {}
        for i, prio in enumerate([5, 1, 3, 1, 0, 9, 3]):
            ids[i] = self.put(q, b"job-%d" % i, priority=prio)
        want = sorted(ids.values(), key=lambda jid: (
            [5, 1, 3, 1, 0, 9, 3][[k for k, v in ids.items() if v == jid][0]], jid))
        got, after = [], None
        while True:
            params = {"state": "ready", "limit": 3}
            if after:
                params["after"] = after
            page = self.jobs(q, **params)
            self.assertEqual(page["state"], "ready")
            got += [j["id"] for j in page["jobs"]]
            if not page["more"]:
                break
            after = page["next"]
        self.assertEqual(got, want)
        # The next job reserved is the first listed.
        jid, _, _ = self.reserve_ok(q)
        self.assertEqual(jid, want[0])
        self.assertEqual(self.jobs(q)["jobs"][0]["id"], want[1])  # state defaults to ready

    def test_reserved_delayed_dead_with_their_times_and_reasons(self):
        q = self.newq({"max_attempts": 1})
        now = time.time()
        d1 = self.put(q, b"later", delay=100)
        d2 = self.put(q, b"sooner", delay=50)
        r1 = self.put(q, b"working")
        x1 = self.put(q, b"failing")
        j, a, _ = self.reserve_ok(q, lease=60)
        self.assertEqual(j, r1)
        j, a, _ = self.reserve_ok(q)
        self.nack(q, j, b"it broke")
        page = self.jobs(q, state="delayed")
        self.assertEqual([j["id"] for j in page["jobs"]], [d2, d1])  # by due time
        self.assertAlmostEqual(page["jobs"][0]["due"], now + 50, delta=5)
        self.assertEqual(page["jobs"][0]["payload"], "sooner")
        page = self.jobs(q, state="reserved")
        (res,) = page["jobs"]
        self.assertEqual((res["id"], res["attempt"], res["state"]), (r1, 1, "reserved"))
        self.assertAlmostEqual(res["lease_deadline"], now + 60, delta=5)
        (dead,) = self.jobs(q, state="dead")["jobs"]
        self.assertEqual((dead["id"], dead["reason"], dead["error"]), (x1, "nacked", "it broke"))
        self.assertEqual(self.jobs(q, state="ready")["jobs"], [])

    def test_large_listing_in_slices(self):
        # 40,000 jobs held: a listing reads the id index a slice per loop turn (16,384
        # positions), and the page is the same as one read at once would be.
        q = self.newq()
        body = b"".join(b"%d\n%s\n" % (len(p), p) for p in
                        (b"job-%05d" % i for i in range(40000)))
        r = self.h("POST", qs("/queues/%s/jobs" % q, batch=1), body=body, timeout=60)
        self.assertEqual(r.status, 201, r)
        ids = r.json()["ids"]
        self.put(q, b"urgent", priority=-5)
        urgent = self.put(q, b"urgent too", priority=-5)
        page = self.jobs(q, limit=4)
        self.assertEqual([j["payload"] for j in page["jobs"]],
                         ["urgent", "urgent too", "job-00000", "job-00001"])
        self.assertTrue(page["more"])
        page2 = self.jobs(q, limit=3, after=page["next"])
        self.assertEqual([j["id"] for j in page2["jobs"]], ids[2:5])
        for _ in range(3):
            self.reserve_ok(q)
        res = self.jobs(q, state="reserved", limit=3)["jobs"]
        self.assertEqual([j["id"] for j in res], [ids[0], urgent - 1, urgent])  # by id
        self.assertEqual([j["id"] for j in self.jobs(q, state="reserved",
                                                     after="0:%d" % ids[0])["jobs"]],
                         [urgent - 1, urgent])
        # Listings whose clients leave mid-way are dropped; the daemon goes on.
        for _ in range(10):
            c = RawConn(self.d.port)
            c.send(b"GET /queues/%s/jobs?limit=1000 HTTP/1.1\r\nHost: t\r\n\r\n" % q.encode())
            c.close()
        self.assertEqual(len(self.jobs(q, limit=1000)["jobs"]), 1000)
        self.assertTrue(self.d.alive())

    def test_payloads_are_json_text_and_previewed(self):
        q = self.newq()
        evil = b'<script>alert(1)</script>"\\\x00\xff'
        self.put(q, evil)
        self.put(q, b"a" * 1000)
        page = self.jobs(q, preview=300)
        self.assertEqual(page["jobs"][0]["payload"], '<script>alert(1)</script>"\\\x00\ufffd')
        self.assertFalse(page["jobs"][0]["truncated"])
        self.assertEqual(page["jobs"][1]["payload"], "a" * 300)
        self.assertTrue(page["jobs"][1]["truncated"])
        self.assertEqual(page["jobs"][1]["len"], 1000)


class ResultMemoryTest(ResultsCase):
    config = {"queues": {"max_wait": "5s", "mem_limit": "16k"}}

    def test_result_past_the_memory_limit_is_refused_and_the_job_stays(self):
        q = self.newq()
        jid = self.put(q, b"small")
        j, a = self.take(q)
        r = self.ack(q, j, b"r" * 20000, expect=None)
        e = self.assertErr(r, 503)
        self.assertIn("memory limit", e["error"])
        self.assertEqual((e["reason"], r.header("Retry-After")), ("memory limit", "1"))
        st = self.stats(q)
        self.assertEqual((st["reserved"], st["total_acked"]), (1, 0))
        self.ack(q, j, b"r" * 1000, attempt=a)  # a smaller one fits
        self.assertEqual(self.get_result(q, jid).body, b"r" * 1000)
        # Results are charged: enough of them fill the budget and puts are refused.
        refused = False
        for i in range(40):
            jid = self.put(q, b"p", expect=None)
            if not isinstance(jid, int):
                refused = True
                break
            j, a = self.take(q)
            if self.ack(q, j, b"r" * 1000, expect=None).status == 503:
                refused = True
                break
        self.assertTrue(refused, "40 KB of results fit in a 16 KB memory limit")


class ResultRestartTest(unittest.TestCase):
    """Results, dead reasons and result_ttl survive a restart on the journal."""

    def test_results_survive_a_restart(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-results-")
        try:
            cfg = {"journal": {"path": os.path.join(tmp, "j"), "fsync": "always"}}
            d = Daemon(cfg)
            d.tmpdir = tmp
            d.start()
            h = lambda m, p, body=None, headers=None: d.http(m, p, body=body, headers=headers)
            self.assertEqual(h("PUT", "/queues/rq", '{"max_attempts": 1, "result_ttl": 3600}')
                             .status, 201)
            ids = [h("POST", "/queues/rq/jobs", b"p%d" % i).json()["id"] for i in range(3)]
            for jid in ids:
                r = h("POST", "/queues/rq/reserve")
                self.assertEqual(int(r.header("Job-Id")), jid)
            self.assertEqual(h("POST", "/queues/rq/jobs/%d/ack" % ids[0], b"\x00result\xff",
                               {"Content-Type": "application/x-thing"}).status, 200)
            self.assertEqual(h("POST", "/queues/rq/jobs/%d/nack" % ids[1], b"bad thing").status,
                             200)
            # ids[2]: reserved at the restart, so ready again after it (leases are not durable)
            d.signal(15)
            self.assertEqual(d.wait(15), 0)
            d.proc = None
            d.start()
            r = h("GET", "/queues/rq/jobs/%d/result" % ids[0])
            self.assertEqual((r.status, r.body), (200, b"\x00result\xff"))
            self.assertEqual(r.header("Content-Type"), "application/x-thing")
            r = h("GET", "/queues/rq/jobs/%d/result" % ids[1])
            self.assertEqual(r.status, 409, r)
            self.assertEqual((r.json()["reason"], r.json()["detail"]), ("nacked", "bad thing"))
            dead = h("GET", "/queues/rq/dead").json()["dead"]
            self.assertEqual([(x["id"], x["reason"]) for x in dead], [(ids[1], "nacked")])
            self.assertEqual(h("GET", "/queues/rq").json()["result_ttl"], 3600)
            self.assertEqual(h("GET", "/queues/rq/jobs/%d/result" % ids[2]).status, 204)
            d.signal(15)
            self.assertEqual(d.wait(15), 0)
            d.check_stderr()
            d.proc = None
            if os.access(JOURNAL_TOOL, os.X_OK):
                out = subprocess.run([JOURNAL_TOOL, os.path.join(tmp, "j")], capture_output=True,
                                     text=True, timeout=20).stdout
                self.assertIn("job.result", out)
                self.assertIn("outcome=acked result=8", out)
                self.assertIn("job.dead", out)
                self.assertIn("reason=nacked", out)
                self.assertIn("result_ttl=3600000ms", out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_results_survive_journal_compaction(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-results-c-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "journal")
        cfg = {"journal": {"path": path, "fsync": "always", "compact_min": "8k"}}
        d = Daemon(cfg)
        d.start()
        kept, dead = {}, {}
        try:
            self.assertEqual(d.http("PUT", "/queues/c", '{"max_attempts": 1, "result_ttl": 3600}')
                             .status, 201)
            for _ in range(300):
                self.assertEqual(d.http("POST", "/queues/c/jobs", body=b"x" * 200).status, 201)
            for i in range(300):
                jid = int(d.http("POST", "/queues/c/reserve").header("Job-Id"))
                if i % 60 == 0:
                    kept[jid] = b"result %d" % jid
                    r = d.http("POST", "/queues/c/jobs/%d/ack" % jid, body=kept[jid])
                elif i % 60 == 1:
                    dead[jid] = "error %d" % jid
                    r = d.http("POST", "/queues/c/jobs/%d/nack" % jid, body=dead[jid].encode())
                else:
                    r = d.http("POST", "/queues/c/jobs/%d/ack" % jid)
                self.assertEqual(r.status, 200, r)
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
            for jid, body in kept.items():
                r = d.http("GET", "/queues/c/jobs/%d/result" % jid)
                self.assertEqual((r.status, r.body), (200, body), jid)
            for jid, text in dead.items():
                r = d.http("GET", "/queues/c/jobs/%d/result" % jid)
                self.assertEqual(r.status, 409, r)
                self.assertEqual((r.json()["reason"], r.json()["detail"]), ("nacked", text))
            self.assertEqual(len(kept), 5)
        finally:
            d.stop()


if __name__ == "__main__":
    main()
