"""Job results, job listings and dead-letter reasons with [store] backend = redis
(issue 13, the part issue 17 left to it; docs/REDIS.md "Results"), against real
redis-servers started here (test_redis.py's and test_redis_cluster.py's helpers).

- RedisResultTest, RedisListingTest: test_results.py's ResultTest and ListingTest
  run unchanged against one redis-server; ClusterResultTest: ResultTest against a
  3-master, 3-replica Redis Cluster (every key of a queue in its hash tag).
- RedisResultNodesTest: two awaitd nodes on one Redis: a result awaited on B is
  answered when the job is acked on A (with a result, without one, purged, its
  queue deleted); a dead letter's reason and text are seen from the other node;
  waits hold no Redis connection and send nothing while idle; every key stays
  under the queue's hash tag.
- RedisResultRestartTest: results, dead reasons and result_ttl survive a SIGKILL
  and restart of redis-server (appendfsync always), and a wait held across it is
  answered by the ack after it.
"""

import time
import unittest

from awaitd_test import main
import test_queue as tq
import test_results as tr
from test_redis import RedisCase, redis_variant
from test_redis_cluster import on_cluster, resp

RedisResultTest = redis_variant(tr.ResultTest, {})
# test_large_listing_in_slices puts 40,000 jobs in one batch: one FCALL that holds Redis
# for seconds on a loaded machine, past the 2 s command_timeout of the other suites.
RedisListingTest = redis_variant(tr.ListingTest, {}, {"redis": {"command_timeout": "30s"}})


class ClusterResultTest(on_cluster(tr.ResultTest)):
    """ResultTest on a Redis Cluster, set up as test_redis_cluster.py's queue suite."""


class ResultNodesCase(RedisCase):

    def result(self, d, q, jid, timeout=15.0, **params):
        return self.req(d, "GET", tq.qs("/queues/%s/jobs/%d/result" % (q, jid), **params),
                        timeout=timeout)

    def take(self, d, q, **params):
        r = self.reserve(d, q, **params)
        self.assertEqual(r.status, 200, r)
        return int(r.header("Job-Id")), int(r.header("Job-Attempt"))

    def finish(self, d, q, jid, verb, body=None, headers=None, **params):
        return self.req(d, "POST", tq.qs("/queues/%s/jobs/%d/%s" % (q, jid, verb), **params),
                        body=body, headers=headers)

    def put_id(self, d, q, payload=b"x", **params):
        r = self.put(d, q, payload, **params)
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def waiting(self, d, q, jid, wait=10):
        fut = self.bg(self.result, d, q, jid, wait=wait)
        time.sleep(0.3)
        self.assertFalse(fut.done(), "the result did not wait: %r" % (fut.done() and fut.result(),))
        return fut


class RedisResultNodesTest(ResultNodesCase):

    def test_result_awaited_on_b_while_acked_on_a(self):
        a, b = self.node(), self.node()
        self.declare(a, "rq")
        jid = self.put_id(a, "rq", b"2+2")
        fut = self.waiting(b, "rq", jid)
        j, attempt = self.take(a, "rq")
        t_ack = time.monotonic()
        r = self.finish(a, "rq", j, "ack", b'{"sum": 4}', {"Content-Type": "application/json"},
                        attempt=attempt)
        self.assertEqual(r.json(), {"acked": jid, "result": True})
        r, t_done = fut.result(15)
        self.assertEqual((r.status, r.body), (200, b'{"sum": 4}'), r)
        self.assertEqual((r.header("Content-Type"), r.header("Job-Outcome"), r.header("Job-Attempt")),
                         ("application/json", "acked", "1"))
        # Woken by the notification, not by a timer: well within the 1 s a poll would take.
        self.assertLess(t_done - t_ack, 0.5, "B answered %.3f s after the ack" % (t_done - t_ack))
        # Asked again on either node: the kept result.
        for d in (a, b):
            self.assertEqual(self.result(d, "rq", jid).body, b'{"sum": 4}')
        # An ack without a body wakes B's waiter with an empty 200; nothing is kept.
        jid = self.put_id(b, "rq")
        fut = self.waiting(b, "rq", jid)
        j, _ = self.take(a, "rq")
        self.assertEqual(self.finish(a, "rq", j, "ack").status, 200)
        r, _ = fut.result(15)
        self.assertEqual((r.status, r.body, r.header("Job-Outcome")), (200, b"", "acked"), r)
        self.assertEqual(self.result(b, "rq", jid).status, 404)
        # Purged on A, waited for on B: 410 purged. Its queue deleted on A: 410 queue_deleted.
        jid = self.put_id(a, "rq", delay=60)
        fut = self.waiting(b, "rq", jid)
        self.assertEqual(self.req(a, "POST", "/queues/rq/purge").status, 200)
        r, _ = fut.result(15)
        self.assertEqual((r.status, r.json()["state"], r.json()["reason"]),
                         (410, "dropped", "purged"), r)
        jid = self.put_id(a, "rq")
        fut = self.waiting(b, "rq", jid)
        self.assertEqual(self.req(a, "DELETE", "/queues/rq").status, 200)
        r, _ = fut.result(15)
        self.assertEqual((r.status, r.json()["reason"]), (410, "queue_deleted"), r)
        # Created again: the old queue's results are not the new one's.
        self.declare(a, "rq")
        self.assertEqual(self.result(b, "rq", 1).status, 404)

    def test_many_waits_on_b_each_answered_by_its_own_ack_on_a(self):
        a, b = self.node(), self.node()
        self.declare(a, "many")
        ids = [self.put_id(a, "many", b"job-%d" % i) for i in range(20)]
        futs = {jid: self.bg(self.result, b, "many", jid, wait=15) for jid in ids}
        time.sleep(0.5)
        for _ in ids:
            j, _ = self.take(a, "many")
            self.assertEqual(self.finish(a, "many", j, "ack", b"result-%d" % j).status, 200)
        for jid, fut in futs.items():
            r, _ = fut.result(15)
            self.assertEqual((r.status, r.body), (200, b"result-%d" % jid), r)

    def test_batch_ack_on_a_answers_the_waits_on_b(self):
        """POST /queues/{q}/acks ends its jobs as plain acks do: waits on
        another node get an empty 200 "acked", nothing is kept."""
        a, b = self.node(), self.node()
        self.declare(a, "bq")
        ids = [self.put_id(a, "bq", b"job-%d" % i) for i in range(3)]
        futs = {jid: self.bg(self.result, b, "bq", jid, wait=10) for jid in ids}
        time.sleep(0.5)
        taken = [self.take(a, "bq") for _ in ids]
        r = self.req(a, "POST", "/queues/bq/acks",
                     body=b"".join(b"%d %d\n" % t for t in taken))
        self.assertEqual((r.status, r.json()["acked"]), (200, 3), r)
        for jid, fut in futs.items():
            r, t_done = fut.result(15)
            self.assertEqual((r.status, r.body, r.header("Job-Outcome")), (200, b"", "acked"), r)
            self.assertEqual(self.result(b, "bq", jid).status, 404)

    def test_dead_reason_and_text_seen_from_the_other_node(self):
        a, b = self.node(), self.node()
        self.declare(a, "dq", max_attempts=1, lease=0.3)
        nacked = self.put_id(a, "dq", b"bad input")
        fut = self.waiting(b, "dq", nacked)
        j, attempt = self.take(a, "dq")
        r = self.finish(a, "dq", j, "nack", b'ValueError: <bad> "input"', attempt=attempt)
        self.assertEqual(r.json(), {"dead": nacked})
        r, _ = fut.result(15)
        self.assertEqual(r.status, 409, r)
        e = r.json()
        self.assertEqual((e["state"], e["reason"], e["attempt"], e["detail"]),
                         ("dead", "nacked", 1, 'ValueError: <bad> "input"'))
        # The lease runs out on A's reserve; B's wait is told by whichever node promotes it.
        expired = self.put_id(b, "dq", b"slow")
        fut = self.waiting(b, "dq", expired)
        self.take(a, "dq")
        r, _ = fut.result(15)
        self.assertEqual(r.status, 409, r)
        self.assertEqual((r.json()["reason"], r.json()["detail"]), ("lease_expired", None))
        header = self.put_id(a, "dq")
        j, _ = self.take(a, "dq")
        self.finish(a, "dq", j, "nack", headers={"Job-Error": "timeout talking to smtp"})
        for d in (a, b):
            dead = self.req(d, "GET", "/queues/dq/dead").json()["dead"]
            self.assertEqual([(x["id"], x["reason"], x["error"]) for x in dead],
                             [(nacked, "nacked", 'ValueError: <bad> "input"'),
                              (expired, "lease_expired", None),
                              (header, "nacked", "timeout talking to smtp")])
            page = self.req(d, "GET", "/queues/dq/jobs?state=dead&limit=2").json()
            self.assertEqual([(x["id"], x["reason"], x["payload"]) for x in page["jobs"]],
                             [(nacked, "nacked", "bad input"), (expired, "lease_expired", "slow")])
            self.assertTrue(page["more"])
            page = self.req(d, "GET", "/queues/dq/jobs?state=dead&after=" + page["next"]).json()
            self.assertEqual([x["id"] for x in page["jobs"]], [header])
        # Requeued on B: live again, its kept text forgotten; the reason goes with it.
        self.assertEqual(self.req(b, "POST", "/queues/dq/dead/requeue?id=%d" % nacked).status, 200)
        self.assertEqual(self.result(a, "dq", nacked).status, 204)
        self.assertEqual(self.stats(a, "dq")["dead"], 2)

    def test_waits_hold_no_redis_connection_and_send_nothing_while_idle(self):
        a, b = self.node(), self.node()
        self.declare(a, "idle")
        ids = [self.put_id(a, "idle") for _ in range(30)]
        time.sleep(0.3)
        clients = len(resp(self.redis.port, "CLIENT", "LIST").splitlines())
        futs = [self.bg(self.result, b, "idle", jid, wait=8) for jid in ids]
        time.sleep(0.5)
        fcalls = self.fcalls()
        time.sleep(2.0)
        self.assertEqual(self.fcalls(), fcalls, "the waits sent commands while nothing happened")
        self.assertEqual(len(resp(self.redis.port, "CLIENT", "LIST").splitlines()), clients,
                         "waits opened Redis connections")
        self.assertFalse(any(f.done() for f in futs))
        j, _ = self.take(a, "idle")
        self.assertEqual(self.finish(a, "idle", j, "ack", b"only me").status, 200)
        r, _ = futs[ids.index(j)].result(15)
        self.assertEqual((r.status, r.body), (200, b"only me"))
        self.assertEqual(sum(f.done() for f in futs), 1)

    def fcalls(self):
        for line in resp(self.redis.port, "INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_fcall:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def test_every_key_stays_under_the_queue_hash_tag(self):
        a, b = self.node(), self.node()
        self.declare(a, "tags", max_attempts=1)
        for i in range(3):
            self.put_id(a, "tags", b"p%d" % i)
        jid = self.put_id(a, "tags", b"waited")
        fut = self.waiting(b, "tags", jid)
        j, _ = self.take(a, "tags")
        self.finish(a, "tags", j, "ack", b"kept")
        j, _ = self.take(a, "tags")
        self.finish(a, "tags", j, "nack", b"kept error")
        self.req(a, "POST", "/queues/tags/purge")
        r, _ = fut.result(15)
        self.assertEqual(r.status, 410, r)
        keys = resp(self.redis.port, "KEYS", "*")
        self.assertTrue(any(":res:" in k for k in keys), keys)
        self.assertTrue(any(":out:" in k for k in keys), keys)
        outside = [k for k in keys if not k.startswith("{awaitd:tags}")
                   and k != "awaitd:queues"]
        self.assertEqual(outside, [])


class RedisResultRestartTest(ResultNodesCase):

    def test_results_and_reasons_survive_a_redis_restart(self):
        d = self.node()
        self.declare(d, "rr", max_attempts=1, result_ttl=3600)
        ids = [self.put_id(d, "rr", b"p%d" % i) for i in range(3)]
        j, _ = self.take(d, "rr")
        self.assertEqual(self.finish(d, "rr", j, "ack", b"\x00result\xff",
                                     {"Content-Type": "application/x-thing"}).status, 200)
        j, _ = self.take(d, "rr")
        self.assertEqual(self.finish(d, "rr", j, "nack", b"bad thing").json(), {"dead": ids[1]})
        fut = self.waiting(d, "rr", ids[2], wait=20)
        self.redis.kill()
        time.sleep(0.3)
        self.redis.start()
        deadline = time.monotonic() + 10
        while self.req(d, "GET", "/health").status != 200:
            self.assertLess(time.monotonic(), deadline, "awaitd did not recover")
            time.sleep(0.05)
        self.assertFalse(fut.done(), "the wait ended with the restart: %r" % (fut.done() and fut.result(),))
        r = self.result(d, "rr", ids[0])
        self.assertEqual((r.status, r.body, r.header("Content-Type")),
                         (200, b"\x00result\xff", "application/x-thing"))
        r = self.result(d, "rr", ids[1])
        self.assertEqual((r.status, r.json()["reason"], r.json()["detail"]), (409, "nacked", "bad thing"))
        self.assertEqual([(x["id"], x["reason"]) for x in
                          self.req(d, "GET", "/queues/rr/dead").json()["dead"]], [(ids[1], "nacked")])
        st = self.stats(d, "rr")
        self.assertEqual((st["result_ttl"], st["results"]), (3600, 2))
        j, _ = self.take(d, "rr")
        self.assertEqual(self.finish(d, "rr", j, "ack", b"after the restart").status, 200)
        r, _ = fut.result(20)
        self.assertEqual((r.status, r.body), (200, b"after the restart"), r)


if __name__ == "__main__":
    main()
