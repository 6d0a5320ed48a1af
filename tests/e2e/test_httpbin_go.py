"""go-httpbin's routes that httpbin 0.7.0 does not have, and awaitd's own
side of /range and /stream-bytes (issue 14), written from go-httpbin's
handlers and handlers_test.go: /jsonl (count clamped, duration, delay,
jitter), /upload (bytes_received), /env (HTTPBIN_* only), /head (HEAD
only), /version; /range with If-Range, lists of ranges and ranges past the
end; /stream-bytes with the /bytes generator, HTTP/1.0 and its caps."""

import json
import os
import socket
import time
import unittest

import requests

from awaitd_test import DaemonTestCase, HOST


class HttpbinGoTest(DaemonTestCase):
    config = {"probe": {"max_delay": "5s", "max_stream": "40", "max_bytes": "300000"}}

    @classmethod
    def setUpClass(cls):
        # The daemon inherits the environment: one variable it may show, one not.
        os.environ["HTTPBIN_GREETING"] = "hello, operator"
        os.environ["AWAITD_TEST_SECRET"] = "not to be shown"
        try:
            super().setUpClass()
        finally:
            del os.environ["HTTPBIN_GREETING"], os.environ["AWAITD_TEST_SECRET"]

    def setUp(self):
        self.base = self.d.url("")

    def get(self, path, **kw):
        return requests.get(self.base + path, timeout=10, **kw)

    # ---- /jsonl ----------------------------------------------------------------

    def lines(self, path):
        r = self.get(path)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.headers["Content-Type"], "application/x-ndjson; charset=utf-8")
        self.assertEqual(r.headers.get("Transfer-Encoding"), "chunked")
        self.assertNotIn("Content-Length", r.headers)
        return [json.loads(l) for l in r.text.splitlines()]

    def test_jsonl_counts(self):
        for q, n in (("", 10), ("?count=1", 1), ("?count=5", 5), ("?count=0", 1),
                     ("?count=-5", 1), ("?count=3&delay=0s", 3), ("?count=41", 40),
                     ("?count=99999999999999999999999", 40), ("?count=3&jitter=1", 3)):
            got = self.lines("/jsonl" + q + ("&" if "?" in q else "?") + "x=1")
            self.assertEqual([l["id"] for l in got], list(range(n)), q)
            for l in got:
                self.assertEqual(set(l), {"id", "args", "headers", "origin", "url"}, q)
                self.assertEqual(l["args"]["x"], "1")
                self.assertEqual(l["origin"], "127.0.0.1")
                self.assertTrue(l["url"].startswith(self.base + "/jsonl"), l["url"])

    def test_jsonl_bad(self):
        for q in ("count=foo", "count=3.14", "count=", "duration=foo", "delay=foo",
                  "duration=3s&delay=3s", "jitter=-0.1", "jitter=1.5", "jitter=abc"):
            self.assertJsonError(self.d.get("/jsonl?" + q), 400)

    def test_jsonl_paced(self):
        """The first line at once (after delay), the last at duration after
        it: the writes are incremental."""
        t0 = time.monotonic()
        r = requests.get(self.base + "/jsonl?count=3&duration=600ms&delay=200ms", stream=True,
                         timeout=10)
        times = []
        for line in r.iter_lines():
            if line:
                times.append(time.monotonic() - t0)
        self.assertEqual(len(times), 3)
        self.assertGreaterEqual(times[0], 0.19, times)
        self.assertGreaterEqual(times[2] - times[0], 0.55, times)
        self.assertLess(times[0], times[2] - 0.2, times)  # not all at the end

    def test_jsonl_head_and_cancel(self):
        r = self.d.http("HEAD", "/jsonl?count=3&duration=1s")
        self.assertEqual((r.status, r.body), (200, b""))
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        c = self.d.connect()
        c.send(b"GET /jsonl?count=4&duration=4s HTTP/1.1\r\nHost: t\r\n\r\n")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=3)

    # ---- /upload, /env, /head, /version ---------------------------------------------

    def test_upload(self):
        for method in ("POST", "PUT", "PATCH"):
            for ctype, body in (("application/octet-stream", b"encodeMe"),
                                ("image/png", b"encodeMe-png"), ("unknown", b"\xff" * 70000)):
                r = requests.request(method, self.base + "/upload?k=v", data=body,
                                     headers={"Content-Type": ctype}, timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
                j = r.json()
                self.assertEqual(list(j), ["args", "headers", "method", "origin", "url",
                                           "bytes_received"])
                self.assertEqual((j["method"], j["bytes_received"], j["args"]),
                                 (method, len(body), {"k": "v"}))
                self.assertEqual(j["headers"]["Content-Type"], ctype)
        r = self.d.get("/upload")
        self.assertEqual((r.status, r.header("Allow")), (405, "POST, PUT, PATCH"))

    def test_env_shows_httpbin_variables_only(self):
        r = self.get("/env")
        self.assertEqual(r.status_code, 200)
        env = r.json()["env"]
        self.assertEqual(env.get("HTTPBIN_GREETING"), "hello, operator")
        self.assertTrue(all(k.startswith("HTTPBIN_") for k in env), env)
        self.assertNotIn("not to be shown", r.text)

    def test_head(self):
        r = self.d.http("HEAD", "/head?a=1")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        self.assertEqual(self.d.get("/head").status, 405)
        self.assertEqual(self.d.http("POST", "/head", body=b"").status, 405)

    def test_version(self):
        j = self.get("/version").json()
        self.assertEqual(j["service"], "awaitd")
        self.assertRegex(j["version"], r"^\d+\.\d+")

    def test_index_lists_the_new_routes(self):
        page = self.get("/").text
        for path in ("/head", "/upload", "/env", "/version", "/stream-bytes/", "/range/", "/jsonl"):
            self.assertIn("<code>%s" % path, page)

    # ---- /range/{n}: awaitd's side --------------------------------------------------

    def test_range_awaitd_side(self):
        letters = bytes(ord("a") + i % 26 for i in range(30))
        # A range past the end is cut to it (RFC 9110; httpbin answers 416).
        r = self.get("/range/30", headers={"Range": "bytes=25-1000"})
        self.assertEqual((r.status_code, r.content, r.headers["Content-Range"]),
                         (206, letters[25:], "bytes 25-29/30"))
        # A list of ranges, or one If-Range does not match: the whole body.
        for h in ({"Range": "bytes=0-1,4-5"}, {"Range": "bytes=2-4", "If-Range": '"other"'}):
            r = self.get("/range/30", headers=h)
            self.assertEqual((r.status_code, r.content), (200, letters), h)
        r = self.get("/range/30", headers={"Range": "bytes=2-4", "If-Range": "range30"})
        self.assertEqual((r.status_code, r.content), (206, b"cde"))
        self.assertEqual(self.get("/range/30", headers={"Range": "bytes=-0"}).status_code, 416)
        self.assertEqual(self.d.get("/range/300001").status, 404)
        self.assertJsonError(self.d.get("/range/10?chunk_size=x"), 400)
        self.assertJsonError(self.d.get("/range/10?duration=6"), 400)
        r = self.d.http("HEAD", "/range/30", headers={"Range": "bytes=1-2"})
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (206, b"", "2"))

    def test_range_large_and_paced(self):
        r = self.get("/range/300000", headers={"Range": "bytes=1-"})
        self.assertEqual(r.status_code, 206)
        self.assertEqual(len(r.content), 299999)
        self.assertEqual(r.content[:3], b"bcd")
        self.assertEqual(r.content[-1:], bytes([ord("a") + 299999 % 26]))
        t0 = time.monotonic()
        r = self.get("/range/100?duration=0.6&chunk_size=10")
        self.assertEqual((r.status_code, len(r.content)), (200, 100))
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)

    # ---- /stream-bytes/{n}: awaitd's side ------------------------------------------------

    def test_stream_bytes_seed_is_bytes_seed(self):
        for n in (1, 9, 1000, 70000):
            a = self.get("/stream-bytes/%d?seed=42&chunk_size=3" % n).content
            b = self.get("/bytes/%d?seed=42" % n).content
            self.assertEqual(len(a), n)
            self.assertEqual(a, b, n)
        self.assertNotEqual(self.get("/stream-bytes/64").content,
                            self.get("/stream-bytes/64").content)

    def test_stream_bytes_limits_and_http10(self):
        self.assertJsonError(self.d.get("/stream-bytes/300001"), 400)
        self.assertJsonError(self.d.get("/stream-bytes/x"), 400)
        self.assertJsonError(self.d.get("/stream-bytes/10?seed=no"), 400)
        self.assertJsonError(self.d.get("/stream-bytes/10?chunk_size=-1"), 400)
        r = self.get("/stream-bytes/300000?chunk_size=1")  # 300,000 one-byte chunks
        self.assertEqual(len(r.content), 300000)
        with socket.create_connection((HOST, self.d.port), timeout=10) as s:
            s.sendall(b"GET /stream-bytes/50?seed=1 HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                k = s.recv(65536)
                if not k:
                    break
                data += k
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(body, self.get("/bytes/50?seed=1").content)


if __name__ == "__main__":
    unittest.main(verbosity=2)
