"""Probe endpoints (httpbin-compatible): /get /post /anything /delay /status
/bytes /stream /drip /health /metrics, also through the real curl."""

import base64
import json
import re
import time
import unittest

from awaitd_test import DaemonTestCase, HOST, parse_responses, raise_nofile_limit

MAX_BYTES = 65536
NOFILE = raise_nofile_limit()  # before the daemon starts: it inherits the limit


class ProbeTest(DaemonTestCase):
    config = {"probe": {"max_delay": "10s", "max_bytes": "64k", "max_stream": "100"}}

    # ---- /get ------------------------------------------------------------------

    def test_get(self):
        r = self.d.http("GET", "/get?a=1&b=2&b=3&empty=&flag",
                        headers={"x-custom-THING": "v", "User-Agent": "e2e/1"})
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/json", r.header("Content-Type"))
        j = r.json()
        self.assertEqual(j["args"], {"a": "1", "b": ["2", "3"], "empty": "", "flag": ""})
        self.assertEqual(j["headers"]["X-Custom-Thing"], "v")
        self.assertEqual(j["headers"]["User-Agent"], "e2e/1")
        self.assertEqual(j["headers"]["Host"], "%s:%d" % (HOST, self.d.port))
        self.assertEqual(j["origin"], "127.0.0.1")
        self.assertEqual(j["url"], "http://%s:%d/get?a=1&b=2&b=3&empty=&flag" % (HOST, self.d.port))
        self.assertNotIn("method", j)
        self.assertNotIn("data", j)

    def test_get_url_decoding(self):
        j = self.d.get("/get?q=hello%20world&p=a+b&u=%C3%A9&k%3D=v%26").json()
        self.assertEqual(j["args"], {"q": "hello world", "p": "a b", "u": "\u00e9", "k=": "v&"})

    def test_get_repeated_headers_joined(self):
        with self.d.connect() as c:
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\nX-Rep: a\r\nx-rep: b\r\n\r\n")
            j = c.read_response().json()
        self.assertEqual(j["headers"]["X-Rep"], "a,b")
        self.assertEqual(j["url"], "http://t/get")

    def test_get_head(self):
        r = self.d.http("HEAD", "/get")
        self.assertEqual(r.status, 200)
        self.assertGreater(int(r.header("Content-Length")), 0)
        self.assertEqual(r.body, b"")

    # ---- /post, /put, /patch, /delete, /anything ------------------------------------

    def test_post_text(self):
        r = self.d.http("POST", "/post?x=1", body=b"hello there",
                        headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual(j["data"], "hello there")
        self.assertEqual(j["args"], {"x": "1"})
        self.assertEqual(j["form"], {})
        self.assertEqual(j["files"], {})
        self.assertIsNone(j["json"])
        self.assertEqual(j["headers"]["Content-Length"], "11")
        self.assertEqual(j["headers"]["Content-Type"], "text/plain")

    def test_post_json(self):
        payload = {"name": "awaitd", "list": [1, 2.5, None, True], "nested": {"k": "v\u00e9"}}
        r = self.d.http("POST", "/post", body=json.dumps(payload),
                        headers={"Content-Type": "application/json"})
        j = r.json()
        self.assertEqual(j["json"], payload)
        self.assertEqual(json.loads(j["data"]), payload)

    def test_post_form(self):
        r = self.d.http("POST", "/post", body=b"a=1&b=x+y&b=z%21&c=",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        j = r.json()
        self.assertEqual(j["form"], {"a": "1", "b": ["x y", "z!"], "c": ""})
        self.assertIsNone(j["json"])

    def test_post_binary(self):
        body = bytes(range(256))
        j = self.d.http("POST", "/post", body=body,
                        headers={"Content-Type": "application/octet-stream"}).json()
        prefix = "data:application/octet-stream;base64,"
        self.assertTrue(j["data"].startswith(prefix), j["data"][:60])
        self.assertEqual(base64.b64decode(j["data"][len(prefix):]), body)

    def test_post_empty(self):
        j = self.d.http("POST", "/post", body=b"").json()
        self.assertEqual(j["data"], "")
        self.assertIsNone(j["json"])

    def test_put_patch_delete(self):
        for method, path in (("PUT", "/put"), ("PATCH", "/patch"), ("DELETE", "/delete")):
            with self.subTest(method):
                r = self.d.http(method, path, body=b"x=1",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["form"], {"x": "1"})

    def test_anything(self):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            with self.subTest(method):
                body = b'{"m": "%s"}' % method.encode() if method != "GET" else None
                r = self.d.http(method, "/anything/x/y?k=v", body=body,
                                headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 200, r)
                j = r.json()
                self.assertEqual(j["method"], method)
                self.assertEqual(j["args"], {"k": "v"})
                self.assertTrue(j["url"].endswith("/anything/x/y?k=v"), j["url"])
                if body:
                    self.assertEqual(j["json"], {"m": method})
        self.assertEqual(self.d.http("POST", "/anything", body=b"").json()["method"], "POST")
        # OPTIONS is the CORS preflight on every probe, as in httpbin and
        # go-httpbin (issue 14): 200, empty, no echo.
        r = self.d.http("OPTIONS", "/anything/x")
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertEqual(r.header("Access-Control-Max-Age"), "3600")
        r = self.d.http("HEAD", "/anything/h")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    # ---- /delay ------------------------------------------------------------------

    def test_delay(self):
        start = time.monotonic()
        r = self.d.get("/delay/0.2?x=1", headers={"X-Test": "d"})
        took = time.monotonic() - start
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(took, 0.2)
        self.assertLess(took, 5)
        j = r.json()
        self.assertEqual(j["args"], {"x": "1"})
        self.assertEqual(j["headers"]["X-Test"], "d")
        self.assertEqual(j["url"], "http://%s:%d/delay/0.2?x=1" % (HOST, self.d.port))

    def test_delay_fractional(self):
        for arg, secs in (("0.35", 0.35), ("0.05", 0.05), ("0", 0.0), ("1", 1.0), (".1", 0.1)):
            with self.subTest(arg):
                start = time.monotonic()
                r = self.d.get("/delay/" + arg)
                took = time.monotonic() - start
                self.assertEqual(r.status, 200, r)
                self.assertGreaterEqual(took, secs)
                self.assertLess(took, secs + 3)

    def test_delay_never_early(self):
        # No /delay answer may arrive before its time, measured from before the
        # request was sent to its arrival. Short timers on other connections keep
        # the timer wheel busy, which is when an early fire would show.
        import selectors
        import socket
        import threading
        delay, n = 0.05, 100
        stop = threading.Event()

        def background():
            with socket.create_connection((HOST, self.d.port), timeout=5) as s:
                while not stop.is_set():
                    s.sendall(b"GET /delay/0.003 HTTP/1.1\r\nHost: t\r\n\r\n")
                    buf = b""
                    while not buf.endswith(b"}\n"):
                        chunk = s.recv(65536)
                        if not chunk:
                            return
                        buf += chunk

        threads = [threading.Thread(target=background) for _ in range(3)]
        for t in threads:
            t.start()
        socks, sent, got = [], {}, {}
        sel = selectors.DefaultSelector()

        def collect(timeout):
            for key, _ in sel.select(timeout):
                now = time.monotonic()
                if key.data not in got:
                    got[key.data] = now - sent[key.data]
                key.fileobj.recv(65536)
        try:
            for i in range(n):
                s = socket.create_connection((HOST, self.d.port), timeout=5)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, i)
            for i, s in enumerate(socks):
                time.sleep((i % 7) * 0.0004)  # spread over the millisecond
                sent[i] = time.monotonic()
                s.sendall(b"GET /delay/%g HTTP/1.1\r\nHost: t\r\n\r\n" % delay)
                collect(0)
            deadline = time.monotonic() + 10
            while len(got) < n and time.monotonic() < deadline:
                collect(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            for s in socks:
                s.close()
        self.assertEqual(len(got), n)
        early = sorted(v for v in got.values() if v < delay)
        if early:
            self.fail("%d of %d /delay/%g answers came early, the earliest after "
                      "%.5f s" % (len(early), n, delay, early[0]))

    def test_delay_counts_from_arrival(self):
        # A request that waits in the kernel while the loop cannot read it (a
        # connect storm's accept queue, a busy loop; here the daemon is stopped)
        # is answered its delay after it arrived, not after it was read: a fresh
        # connection's first request (accept queue) and a keep-alive one's (socket
        # buffer). Never early; and a pipelined request still waits for the one
        # before it, its delay counted from its turn.
        import signal
        with self.d.connect() as warm:
            warm.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(warm.read_response().status, 200)
            self.d.signal(signal.SIGSTOP)
            try:
                fresh = self.d.connect()  # the kernel completes the handshake
                start = time.monotonic()
                warm.send(b"GET /delay/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                          b"GET /delay/1?second=1 HTTP/1.1\r\nHost: t\r\n\r\n")
                fresh.send(b"GET /delay/1 HTTP/1.1\r\nHost: t\r\n\r\n")
                time.sleep(1.0)
            finally:
                self.d.signal(signal.SIGCONT)
            with fresh:
                r = fresh.read_response(timeout=10)
                took_fresh = time.monotonic() - start
            self.assertEqual(r.status, 200, r)
            r = warm.read_response(timeout=10)
            took_first = time.monotonic() - start
            self.assertEqual(r.status, 200, r)
            r = warm.read_response(timeout=10)
            took_second = time.monotonic() - start
            self.assertEqual(r.json()["args"], {"second": "1"})
        # Read 1 s after they arrived: answered at once (1 s after arrival), not
        # 1 s after the read (2 s); generous for a loaded machine.
        self.assertGreaterEqual(took_fresh, 1.0)
        self.assertLess(took_fresh, 1.6, "the fresh connection's delay counted from the read")
        self.assertGreaterEqual(took_first, 1.0)
        self.assertLess(took_first, 1.6, "the keep-alive request's delay counted from the read")
        # The second was dispatched once the first was answered (>= 1 s after
        # it was sent), so its own second ends >= 2 s after; from its arrival
        # it would have come at about 1 s.
        self.assertGreaterEqual(took_second, 2.0, "a pipelined /delay did not wait for its turn")

    def test_delay_post_echoes_body(self):
        r = self.d.http("POST", "/delay/0.1", body=b"abc", headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["data"], "abc")

    def test_delay_bad(self):
        for arg in ("11", "10.5", "-1", "abc", "1e1", "1.2.3", "0x1", "%20", "1,5", "inf", "nan",
                    "99999999999999999999"):
            with self.subTest(arg):
                start = time.monotonic()
                r = self.d.get("/delay/" + arg)
                self.assertJsonError(r, 400)
                self.assertLess(time.monotonic() - start, 2, "a bad delay was waited on")

    def test_delay_at_max(self):
        # Exactly max_delay is accepted (not a 400 at once); the close cancels it.
        with self.d.connect() as c:
            c.send(b"GET /delay/10 HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_some(0.3), b"", "delay/10 answered at once")

    def test_delay_cancelled_on_disconnect(self):
        base_open = self.d.wait_metric("awaitd_connections_open", lambda v: v <= 1, timeout=5)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        c = self.d.connect()
        c.send(b"GET /delay/5 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        self.assertEqual(self.d.metric("awaitd_connections_open"), base_open + 1)
        pending_timers = self.d.metric("awaitd_timers_pending")
        c.close()
        start = time.monotonic()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=1.0)
        self.d.wait_metric("awaitd_connections_open", lambda v: v <= base_open, timeout=1.0)
        self.assertLess(time.monotonic() - start, 1.5)
        # The timer left the wheel too.
        self.assertLess(self.d.metric("awaitd_timers_pending"), pending_timers)

    def test_many_delays_cancelled(self):
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        conns = [self.d.connect() for _ in range(50)]
        try:
            for c in conns:
                c.send(b"GET /delay/8 HTTP/1.1\r\nHost: t\r\n\r\n")
            self.d.wait_metric("awaitd_delays_pending", lambda v: v == 50, timeout=3)
        finally:
            for c in conns:
                c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=2)
        self.d.wait_metric("awaitd_connections_open", lambda v: v <= 1, timeout=2)

    def test_reset_while_delays_fire(self):
        # Clients that reset their connections (RST) just as their delays fire:
        # the answer's write fails and the connection is closed from inside the
        # timer callback. The daemon must survive that, leave nothing behind,
        # and (with a sanitizer or MALLOC_PERTURB_) show no memory error.
        import socket
        import struct
        n, delay = min(1500, NOFILE // 2 - 100), 0.4
        if n < 500:
            self.skipTest("RLIMIT_NOFILE %d is too low" % NOFILE)
        for offset in (0.001, 0.0, 0.002, 0.001):
            socks = []
            try:
                for _ in range(n):
                    s = socket.create_connection((HOST, self.d.port), timeout=5)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    socks.append(s)
                sent = []
                for s in socks:
                    sent.append(time.monotonic())
                    s.sendall(b"GET /delay/%g HTTP/1.1\r\nHost: t\r\n\r\n" % delay)
                for i, s in enumerate(socks):
                    # around each one's firing time, +-1 ms
                    wait = sent[i] + delay + offset + (i % 5 - 2) * 0.0005 - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    s.close()
            finally:
                for s in socks:
                    s.close()
            time.sleep(0.2)
            self.assertTrue(self.d.alive(), "awaitd died after clients reset while their "
                            "/delay answers fired; stderr:\n%s" % self.d.stderr()[-4000:])
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        self.d.wait_metric("awaitd_connections_open", lambda v: v <= 1, timeout=5)
        self.d.check_stderr()

    def test_delay_client_half_close(self):
        # shutdown(SHUT_WR) after the request: answered or cancelled (both are
        # fair), but nothing is left behind.
        import socket
        with self.d.connect() as c:
            c.send(b"GET /delay/0.1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            c.read_until_close(5)
        self.assertEqual(self.d.get("/health").status, 200)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=2)

    # ---- /status -------------------------------------------------------------------

    def test_status(self):
        for code in (200, 201, 299, 302, 400, 418, 500, 503, 599):
            with self.subTest(code):
                r = self.d.get("/status/%d" % code)
                self.assertEqual(r.status, code, r)

    def test_status_any_method(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            self.assertEqual(self.d.http(method, "/status/418", body=b"").status, 418)

    def test_status_204_no_body(self):
        with self.d.connect() as c:
            c.send(b"GET /status/204 HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /status/304 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = c.read_until_close(5)
        rs = parse_responses(data)
        self.assertEqual([r.status for r in rs], [204, 304], data)
        for r in rs:
            self.assertIsNone(r.header("Content-Length"), r)
            self.assertIsNone(r.header("Transfer-Encoding"), r)
            self.assertEqual(r.body, b"")

    def test_status_weighted(self):
        seen = set()
        for _ in range(60):
            r = self.d.get("/status/200,201,418")
            self.assertIn(r.status, (200, 201, 418))
            seen.add(r.status)
        self.assertEqual(len(seen), 3, "60 draws from 3 codes gave only %s" % seen)
        for _ in range(20):
            self.assertEqual(self.d.get("/status/200:0,418:1").status, 418)
        for _ in range(20):
            self.assertIn(self.d.get("/status/200:0.9,500:0.1").status, (200, 500))

    def test_status_bad(self):
        for arg in ("abc", "99", "600", "1000", "-1", "200:x", ",200", "200,,201", "200:-1",
                    "2 00"):
            with self.subTest(arg):
                self.assertJsonError(self.d.get("/status/" + arg.replace(" ", "%20")), 400)

    def test_status_trailing_comma(self):
        # An empty code is an error wherever it is (",200" and "200,,201" are
        # 400), as in httpbin, which answers "Invalid status code" to "200,".
        self.assertJsonError(self.d.get("/status/200,"), 400)

    def test_status_401_realm(self):
        r = self.d.get("/status/401")
        self.assertEqual(r.status, 401)
        self.assertIn("Basic", r.header("WWW-Authenticate", ""))

    # ---- /bytes and /stream -------------------------------------------------------

    def test_bytes(self):
        r = self.d.get("/bytes/100")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 100)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertEqual(r.header("Content-Length"), "100")
        self.assertEqual(len(self.d.get("/bytes/0").body), 0)
        self.assertEqual(len(self.d.get("/bytes/1").body), 1)
        self.assertEqual(len(self.d.get("/bytes/%d" % MAX_BYTES).body), MAX_BYTES)

    def test_bytes_seed(self):
        a = self.d.get("/bytes/100?seed=42").body
        b = self.d.get("/bytes/100?seed=42").body
        c = self.d.get("/bytes/100?seed=43").body
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertEqual(self.d.get("/bytes/50?seed=42").body, a[:50])
        # Unseeded answers differ.
        self.assertNotEqual(self.d.get("/bytes/100").body, self.d.get("/bytes/100").body)

    def test_bytes_bad(self):
        for path in ("/bytes/%d" % (MAX_BYTES + 1), "/bytes/abc", "/bytes/-1", "/bytes/1.5",
                     "/bytes/10?seed=x", "/bytes/99999999999999999999999"):
            with self.subTest(path):
                self.assertJsonError(self.d.get(path), 400)

    def test_stream(self):
        with self.d.connect() as c:
            c.send(b"GET /stream/5?k=v HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertIsNone(r.header("Content-Length"))
            lines = r.body.decode().splitlines()
            self.assertEqual(len(lines), 5, r.body)
            objs = [json.loads(x) for x in lines]
            self.assertEqual([o["id"] for o in objs], [0, 1, 2, 3, 4])
            for o in objs:
                self.assertEqual(o["args"], {"k": "v"})
                self.assertEqual(o["url"], "http://t/stream/5?k=v")
            # keep-alive after a chunked answer
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)

    def test_stream_zero_and_bad(self):
        r = self.d.get("/stream/0")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(len(self.d.get("/stream/100").body.splitlines()), 100)
        self.assertJsonError(self.d.get("/stream/101"), 400)
        self.assertJsonError(self.d.get("/stream/x"), 400)

    def test_stream_head(self):
        with self.d.connect() as c:
            c.send(b"HEAD /stream/3 HTTP/1.1\r\nHost: t\r\n\r\nGET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            h = c.read_response(head_request=True)
            self.assertEqual(h.status, 200)
            g = c.read_response()
            self.assertEqual(g.status, 200, "HEAD /stream sent a body: %r" % g)

    # ---- /drip ------------------------------------------------------------------

    def test_drip(self):
        with self.d.connect() as c:
            start = time.monotonic()
            c.send(b"GET /drip?duration=1&numbytes=5 HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response(timeout=5)
            took = time.monotonic() - start
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"*****")
        self.assertEqual(r.header("Content-Length"), "5")
        self.assertGreaterEqual(took, 0.75)
        self.assertLess(took, 4)

    def test_drip_trickles(self):
        with self.d.connect() as c:
            start = time.monotonic()
            c.send(b"GET /drip?duration=1&numbytes=4&code=201 HTTP/1.1\r\nHost: t\r\n"
                   b"Connection: close\r\n\r\n")
            first = None
            data = b""
            while True:
                chunk = c.read_some(3)
                if not chunk:
                    break
                data += chunk
                if first is None and b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1]:
                    first = time.monotonic() - start
            last = time.monotonic() - start
        (r,) = parse_responses(data)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.body, b"****")
        self.assertIsNotNone(first)
        self.assertLess(first, 0.5, "the first byte should leave at once")
        self.assertGreaterEqual(last, 0.6, "the bytes should be spread over the duration")

    def test_drip_delay(self):
        start = time.monotonic()
        r = self.d.get("/drip?duration=0&numbytes=3&delay=0.5")
        self.assertEqual(r.body, b"***")
        self.assertGreaterEqual(time.monotonic() - start, 0.5)

    def test_drip_bad(self):
        for q in ("duration=x", "numbytes=-1", "numbytes=%d" % (MAX_BYTES + 1), "code=99",
                  "duration=11", "duration=6&delay=6", "delay=abc"):
            with self.subTest(q):
                self.assertJsonError(self.d.get("/drip?" + q), 400)

    def test_drip_cancelled_on_disconnect(self):
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        c = self.d.connect()
        c.send(b"GET /drip?duration=5&numbytes=5 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=1.5)

    # ---- /health and /metrics ---------------------------------------------------

    def test_health(self):
        r = self.d.get("/health")
        self.assertEqual(r.status, 200)
        self.assertIn("application/json", r.header("Content-Type"))
        j = r.json()
        self.assertEqual(j["status"], "ok")
        self.assertIsInstance(j.get("version"), str)
        self.assertGreaterEqual(j.get("connections"), 1)

    METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    SAMPLE = re.compile(r'^(%s)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                        r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? '
                        r'(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf)$' % METRIC_NAME)

    def test_metrics_format(self):
        r = self.d.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type", "").startswith("text/plain"), r.headers)
        self.assertIn("version=0.0.4", r.header("Content-Type"))
        text = r.text()
        self.assertTrue(text.endswith("\n"))
        helped, typed, samples = set(), {}, {}
        for line in text.splitlines():
            self.assertTrue(line, "empty line in /metrics")
            if line.startswith("# HELP "):
                name = line.split(" ")[2]
                self.assertRegex(name, "^%s$" % self.METRIC_NAME)
                self.assertNotIn(name, helped, "HELP twice for " + name)
                helped.add(name)
            elif line.startswith("# TYPE "):
                parts = line.split(" ")
                self.assertEqual(len(parts), 4, line)
                self.assertIn(parts[3], ("counter", "gauge", "histogram", "summary", "untyped"))
                self.assertNotIn(parts[2], typed, "TYPE twice for " + parts[2])
                self.assertNotIn(parts[2], samples, "TYPE after samples for " + parts[2])
                typed[parts[2]] = parts[3]
            elif line.startswith("#"):
                continue
            else:
                m = self.SAMPLE.match(line)
                self.assertIsNotNone(m, "bad sample line: %r" % line)
                name = m.group(1)
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in typed or base in typed, "no TYPE for " + line)
                key = name + (m.group(2) or "")
                self.assertNotIn(key, samples, "duplicate sample " + key)
                samples[key] = float(m.group(3))
                if typed.get(name) == "counter":
                    self.assertTrue(name.endswith("_total"), "counter without _total: " + name)
                    self.assertGreaterEqual(samples[key], 0)
        for name in ("awaitd_connections_open", "awaitd_connections_total",
                     "awaitd_connections_refused_total", "awaitd_bytes_in_total",
                     "awaitd_bytes_out_total", "awaitd_delays_pending"):
            self.assertIn(name, samples)
        for cls in ("1xx", "2xx", "3xx", "4xx", "5xx"):
            self.assertIn('awaitd_requests_total{class="%s"}' % cls, samples)
        for kind in ("header", "body", "keepalive", "write"):
            self.assertIn('awaitd_timeouts_total{kind="%s"}' % kind, samples)

    def test_metrics_counters_move(self):
        m0 = self.d.metrics()
        req = b"GET /bytes/1000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        out = self.d.raw(req)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"))
        self.d.get("/nope")
        self.d.get("/status/503")
        self.d.get("/status/302")
        m1 = self.d.metrics()

        def delta(k):
            return m1[k] - m0[k]
        self.assertGreaterEqual(delta('awaitd_requests_total{class="2xx"}'), 2)
        self.assertGreaterEqual(delta('awaitd_requests_total{class="4xx"}'), 1)
        self.assertGreaterEqual(delta('awaitd_requests_total{class="5xx"}'), 1)
        self.assertGreaterEqual(delta('awaitd_requests_total{class="3xx"}'), 1)
        self.assertGreaterEqual(delta("awaitd_bytes_in_total"), len(req))
        self.assertGreaterEqual(delta("awaitd_bytes_out_total"), len(out))
        self.assertGreaterEqual(delta("awaitd_connections_total"), 5)
        self.assertEqual(m1["awaitd_connections_max"], m0["awaitd_connections_max"])

    # ---- curl -------------------------------------------------------------------

    def test_curl_get(self):
        p = self.d.curl("-sS", "--fail", "{url}/get?from=curl")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["args"], {"from": "curl"})
        self.assertTrue(j["headers"]["User-Agent"].startswith("curl/"))

    def test_curl_post(self):
        body = b"line one\nline two\n"
        p = self.d.curl("-sS", "--fail", "-X", "POST", "--data-binary", "@-",
                        "-H", "Content-Type: text/plain", "{url}/post", input=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["data"], body.decode())

    def test_curl_post_chunked_and_expect(self):
        body = b"z" * 900
        # text/plain: curl's default form type would put the body in "form",
        # leaving "data" empty, as httpbin does.
        p = self.d.curl("-sS", "--fail", "--data-binary", "@-", "-H", "Transfer-Encoding: chunked",
                        "-H", "Expect: 100-continue", "-H", "Content-Type: text/plain",
                        "{url}/anything", input=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["data"], body.decode())
        self.assertEqual(j["method"], "POST")

    def test_curl_form(self):
        p = self.d.curl("-sS", "--fail", "-d", "a=1", "-d", "b=two words", "{url}/post")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["form"], {"a": "1", "b": "two words"})

    def test_curl_fail_status(self):
        p = self.d.curl("-sS", "--fail", "{url}/status/500")
        self.assertEqual(p.returncode, 22, p.stderr)
        p = self.d.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "{url}/status/418")
        self.assertEqual(p.stdout, b"418")

    def test_curl_head_and_keepalive(self):
        p = self.d.curl("-sS", "-I", "{url}/get")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"HTTP/1.1 200"), p.stdout)
        self.assertIn(b"content-length:", p.stdout.lower())
        # Several URLs: curl reuses the connection.
        p = self.d.curl("-sS", "--fail", "-v", "{url}/get", "{url}/bytes/10", "{url}/delay/0.1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"Re-using existing connection", p.stderr)

    def test_curl_stream_and_bytes(self):
        p = self.d.curl("-sS", "--fail", "{url}/stream/3")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([json.loads(x)["id"] for x in p.stdout.splitlines()], [0, 1, 2])
        p = self.d.curl("-sS", "--fail", "{url}/bytes/2000?seed=7")
        self.assertEqual(p.stdout, self.d.get("/bytes/2000?seed=7").body)

    def test_curl_http10(self):
        p = self.d.curl("-sS", "--fail", "--http1.0", "{url}/get")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("url", json.loads(p.stdout))


if __name__ == "__main__":
    unittest.main(verbosity=2)
