"""The batch ack, POST /queues/{q}/acks (docs/QUEUES.md, "Batch ack"): a
consumer that reserved N jobs acks them in one request. Each job is acked
or refused on its own, as that many plain acks in a row would be, and the
answer says which, in the order of the body. A bad body acks nothing.

tests/e2e/test_redis.py runs this class against Redis too (one FCALL per
batch ack: checked there with INFO commandstats).
"""

import time
import unittest

from awaitd_test import RawConn
from test_queue import QueueCase, parse_frames, frame_put, FRAMES


class QueueAcksTest(QueueCase):
    config = {"queues": {"max_wait": "20s"}}

    def acks(self, q, body, expect=200, **kw):
        if isinstance(body, (list, tuple)):
            body = "".join("%s\n" % (x if isinstance(x, str) else " ".join(map(str, x))
                                     if isinstance(x, tuple) else x) for x in body)
        if isinstance(body, str):
            body = body.encode()
        r = self.h("POST", "/queues/%s/acks" % q, body=body, **kw)
        if expect is not None:
            self.assertEqual(r.status, expect, "acks %r: %r" % (body[:200], r))
        return r

    def put_many(self, q, n):
        r = self.h("POST", "/queues/%s/jobs?batch=1" % q,
                   body=frame_put([b"job %d" % i for i in range(n)]),
                   headers={"Content-Type": FRAMES})
        self.assertEqual(r.status, 201, r)
        return r.json()["ids"]

    def reserve_many(self, q, n):
        r = self.reserve(q, count=n)
        self.assertEqual(r.status, 200, r)
        return [(f[0], f[1]) for f in parse_frames(r.body)]

    def test_acks_every_job_of_a_reserve_in_one_request(self):
        q = self.newq()
        ids = self.put_many(q, 20)
        got = self.reserve_many(q, 20)
        self.assertEqual([g[0] for g in got], ids)
        r = self.acks(q, got)  # "<id> <attempt>" lines, as the reserve's frames start
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        self.assertEqual(r.json(), {"acked": 20,
                                    "results": [{"id": i, "status": 200} for i in ids]})
        st = self.stats(q)
        self.assertEqual((st["unfinished"], st["reserved"], st["total_acked"]), (0, 0, 20), st)
        self.assertEqual(self.reserve(q).status, 204)
        for i in ids:  # gone: a plain ack of any of them is a 404 now
            self.job(q, i, "ack", expect=404)

    def test_each_id_is_acked_or_refused_on_its_own(self):
        q = self.newq()
        a, b, c, d, e = self.put_many(q, 5)
        got = dict(self.reserve_many(q, 3))  # a, b, c reserved; d, e ready
        self.assertEqual(sorted(got), [a, b, c])
        r = self.acks(q, [(a, 1),      # acked
                          99999,       # no such job: 404
                          d,           # ready, not reserved: 409
                          (b, 2),      # a stale attempt: 409, b stays reserved
                          c,           # no attempt: any
                          a,           # acked a moment ago: 404
                          "%d 0" % b])  # attempt 0: any
        body = r.json()
        self.assertEqual(body["acked"], 3, body)
        self.assertEqual([(x["id"], x["status"]) for x in body["results"]],
                         [(a, 200), (99999, 404), (d, 409), (b, 409), (c, 200), (a, 404),
                          (b, 200)], body)
        for x in body["results"]:
            if x["status"] != 200:
                self.assertIn("job %d" % x["id"], x["error"], x)
            else:
                self.assertNotIn("error", x)
        st = self.stats(q)
        self.assertEqual((st["size"], st["reserved"], st["total_acked"]), (2, 0, 3), st)
        # the refused ready job is untouched: reserved and acked normally
        jid, att, _ = self.reserve_ok(q)
        self.assertEqual((jid, att), (d, 1))
        self.job(q, d, "ack", attempt=1)

    def test_a_refusal_for_every_id_is_still_200(self):
        q = self.newq()
        r = self.acks(q, [5, 6])
        self.assertEqual(r.json(), {"acked": 0, "results": [
            {"id": 5, "status": 404, "error": r.json()["results"][0]["error"]},
            {"id": 6, "status": 404, "error": r.json()["results"][1]["error"]}]})

    def test_bad_bodies_ack_nothing(self):
        q = self.newq()
        ids = self.put_many(q, 2)
        self.reserve_many(q, 2)
        for body in (b"", b"\n", b"%d\nx\n" % ids[0], b"%d\n\n" % ids[0], b"0\n",
                     b"%d 1 2\n" % ids[0], b"-%d\n" % ids[0], b"%d \n" % ids[0],
                     b"%d 4294967296\n" % ids[0], b"99999999999999999999999\n",
                     b"".join(b"%d\n" % (i + 1) for i in range(1001))):
            r = self.acks(q, body, expect=400)
            self.assertErr(r, 400)
        self.assertEqual(self.stats(q)["reserved"], 2, "a bad body acked something")
        # the last newline is optional; 1000 ids are allowed
        r = self.acks(q, b"%d\n%d" % tuple(ids))
        self.assertEqual(r.json()["acked"], 2, r)
        r = self.acks(q, b"".join(b"%d\n" % (i + 1000) for i in range(1000)))
        self.assertEqual(len(r.json()["results"]), 1000)

    def test_method_parameters_and_queue(self):
        q = self.newq()
        r = self.h("GET", "/queues/%s/acks" % q)
        self.assertErr(r, 405)
        self.assertEqual(r.header("Allow"), "POST", r)
        r = self.h("POST", "/queues/%s/acks?attempt=1" % q, body=b"1\n")
        self.assertErr(r, 400)
        self.assertIn("attempt", r.json()["error"])
        r = self.acks("no-such-queue-acks", b"1\n", expect=404)
        self.assertIn("no such queue", self.assertErr(r, 404)["error"])

    def test_batch_ack_wakes_join(self):
        q = self.newq()
        ids = self.put_many(q, 4)
        got = self.reserve_many(q, 4)
        fut = self.bg(self.h, "GET", "/queues/%s/join?wait=10" % q, timeout=20)
        self.wait_stats(q, "joiners", 1)
        self.acks(q, got[:2])
        time.sleep(0.3)
        self.assertFalse(fut.done(), "join returned with jobs unfinished")
        t0 = time.monotonic()
        self.assertEqual(self.acks(q, [g[0] for g in got[2:]]).json()["acked"], 2)
        r, t = self.result(fut, 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"unfinished": 0})
        self.assertLess(t - t0, 0.8)
        self.assertEqual(self.stats(q)["total_acked"], len(ids))

    def test_pipelined_with_other_requests(self):
        """A batch ack between a reserve and a stats on one keep-alive connection:
        the answers come back whole and in order."""
        q = self.newq()
        ids = self.put_many(q, 3)
        body = b"".join(b"%d\n" % i for i in ids)
        conn = RawConn(self.d.port, timeout=5)
        try:
            conn.send(b"POST /queues/%s/reserve?count=3 HTTP/1.1\r\nHost: t\r\n"
                      b"Content-Length: 0\r\n\r\n" % q.encode()
                      + b"POST /queues/%s/acks HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
                      % (q.encode(), len(body), body)
                      + b"GET /queues/%s HTTP/1.1\r\nHost: t\r\n\r\n" % q.encode())
            r1, r2, r3 = conn.read_response(), conn.read_response(), conn.read_response()
        finally:
            conn.close()
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json()["acked"], 3, r2)
        self.assertEqual(r3.json()["unfinished"], 0, r3)


class QueueAcksFsyncTest(QueueAcksTest):
    """The same with fsync = always: the answer waits for the journal (the
    request is kept and answered from the loop, one fsync wait per batch)."""
    fsync = "always"


if __name__ == "__main__":
    unittest.main(verbosity=2)
