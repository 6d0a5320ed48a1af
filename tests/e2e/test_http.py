"""HTTP/1.1 framing over raw sockets: keep-alive, pipelining, HTTP/1.0, HEAD,
100-continue, chunked bodies, request smuggling, and limits."""

import json
import socket
import time
import unittest

from awaitd_test import DaemonTestCase, parse_responses

GET = b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n"
# Sent after a bad request in the same packet: it must never be answered.
FOLLOW = b"GET /get?smuggled=1 HTTP/1.1\r\nHost: t\r\n\r\n"


class HttpTest(DaemonTestCase):
    config = {"server": {"max_header_bytes": "1k", "max_headers": "10", "max_uri": "256",
                         "max_body": "1k"}}

    # ---- connection reuse ----------------------------------------------------

    def test_keep_alive(self):
        with self.d.connect() as c:
            for i in range(5):
                c.send(b"GET /get?i=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertIsNone(r.header("Connection"), r)
                self.assertEqual(r.json()["args"], {"i": str(i)})
            # Still open: nothing more, no close.
            self.assertEqual(c.read_some(0.2), b"")
            self.assertFalse(c.eof)

    def test_keep_alive_then_close(self):
        with self.d.connect() as c:
            c.send(GET)
            self.assertEqual(c.read_response().status, 200)
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Connection", "").lower(), "close")
            self.assertEqual(c.read_until_close(5), b"")

    def test_pipelining_in_order(self):
        reqs = (b"GET /get?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /delay/0.3?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /get?n=3 HTTP/1.1\r\nHost: t\r\n\r\n")
        with self.d.connect() as c:
            start = time.monotonic()
            c.send(reqs)
            got = []
            for _ in range(3):
                r = c.read_response(timeout=5)
                got.append((r, time.monotonic() - start))
            for i, (r, _) in enumerate(got):
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["args"], {"n": str(i + 1)})
            self.assertGreaterEqual(got[1][1], 0.29)
            # The request behind the delay waits for it; order is kept.
            self.assertGreaterEqual(got[2][1], 0.29)
            self.assertEqual(c.read_some(0.1), b"")

    def test_pipelining_many(self):
        n = 50
        reqs = b"".join(b"GET /get?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(n))
        with self.d.connect() as c:
            c.send(reqs)
            for i in range(n):
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.json()["args"], {"n": str(i)})

    def test_pipelining_past_one_read(self):
        # More pipelined requests at once than one read takes (64 KiB), with
        # answers small enough that no output bound pauses the connection:
        # the read interest is edge-triggered, so the daemon must go back for
        # the rest itself (no new readiness announces bytes already there).
        n = 3000
        reqs = b"".join(b"GET /status/204?n=%05d HTTP/1.1\r\nHost: t\r\n\r\n" % i
                        for i in range(n))
        self.assertGreater(len(reqs), 2 * 65536)
        with self.d.connect(timeout=10) as c:
            c.send(reqs)
            for _ in range(n):
                self.assertEqual(c.read_response(timeout=5).status, 204)

    def test_request_then_end_of_stream(self):
        # The request and the client's end of stream arrive together: the
        # answer comes, then the daemon closes at once (the end of stream
        # waits behind the bytes read; no new readiness would announce it).
        for path in (b"/get", b"/delay/0.1"):
            with self.d.connect() as c:
                # Corked, the request and the FIN leave in one segment.
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                c.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
                c.sock.shutdown(socket.SHUT_WR)
                start = time.monotonic()
                rest = c.read_until_close(5)
                if path == b"/get":
                    self.assertTrue(rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:100])
                self.assertLess(time.monotonic() - start, 2)

    def test_pipelining_with_bodies(self):
        reqs = (b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nde\r\n0\r\n\r\n"
                b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nf")
        with self.d.connect() as c:
            c.send(reqs)
            for want in ("abc", "de", "f"):
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["data"], want)

    # ---- HTTP/1.0 ----------------------------------------------------------

    def test_http10_closes_by_default(self):
        with self.d.connect() as c:
            c.send(b"GET /get HTTP/1.0\r\n\r\n")
            data = c.read_until_close(5)
        (r,) = parse_responses(data)
        self.assertEqual(r.status, 200, r)
        self.assertIn("args", r.json())
        self.assertNotEqual((r.header("Connection") or "").lower(), "keep-alive")

    def test_http10_keep_alive(self):
        with self.d.connect() as c:
            for i in range(3):
                c.send(b"GET /get?i=%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("Connection", "").lower(), "keep-alive", r)
                self.assertIsNotNone(r.header("Content-Length"), r)
                self.assertEqual(r.json()["args"], {"i": str(i)})
            c.send(b"GET /get HTTP/1.0\r\n\r\n")
            data = c.read_until_close(5)
            (r,) = parse_responses(data)
            self.assertEqual(r.status, 200)

    def test_http10_stream_ends_with_close(self):
        # No chunked encoding for a 1.0 client: the body ends with the close.
        with self.d.connect() as c:
            c.send(b"GET /stream/3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = c.read_until_close(5)
        self.assertNotIn(b"Transfer-Encoding", data.split(b"\r\n\r\n")[0])
        (r,) = parse_responses(data)
        self.assertEqual(r.status, 200)
        lines = r.body.decode().splitlines()
        self.assertEqual([json.loads(x)["id"] for x in lines], [0, 1, 2])

    # ---- HEAD ---------------------------------------------------------------

    def test_head_has_length_but_no_body(self):
        hdrs = b"Host: t\r\nX-Same: 1\r\n"
        with self.d.connect() as c:
            c.send(b"HEAD /get HTTP/1.1\r\n" + hdrs + b"\r\n")
            h = c.read_response(head_request=True)
            self.assertEqual(h.status, 200)
            cl = h.header("Content-Length")
            self.assertIsNotNone(cl, h)
            self.assertGreater(int(cl), 0)
            self.assertEqual(c.read_some(0.3), b"", "HEAD answer has a body")
            # The same request as GET on the same connection: same length.
            c.send(b"GET /get HTTP/1.1\r\n" + hdrs + b"\r\n")
            g = c.read_response()
            self.assertEqual(g.status, 200)
            self.assertEqual(int(g.header("Content-Length")), len(g.body))
            self.assertEqual(int(cl), len(g.body))

    def test_head_close_no_body(self):
        data = self.d.raw(b"HEAD /get HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head, sep, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(sep, data)
        self.assertIn(b"Content-Length:", head)
        self.assertEqual(rest, b"")

    # ---- Expect: 100-continue -----------------------------------------------

    def test_expect_100_continue(self):
        with self.d.connect() as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                   b"Content-Type: text/plain\r\nExpect: 100-continue\r\n\r\n")
            r = c.read_response(timeout=3)
            self.assertEqual(r.status, 100, r)
            self.assertTrue(r.raw_head.startswith(b"HTTP/1.1 100 Continue"), r.raw_head)
            c.send(b"hello")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["data"], "hello")

    def test_expect_100_continue_chunked(self):
        with self.d.connect() as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            r = c.read_response(timeout=3)
            self.assertEqual(r.status, 100, r)
            c.send(b"5\r\nhello\r\n0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["data"], "hello")

    def test_expect_100_continue_too_large(self):
        # Over max_body: the final answer (413) instead of 100.
        with self.d.connect() as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            r = c.read_response(timeout=3)
            self.assertJsonError(r, 413)

    # ---- chunked request bodies ----------------------------------------------

    def post_chunked(self, parts, pause=0.0):
        with self.d.connect() as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                   b"Content-Type: text/plain\r\n\r\n")
            for p in parts:
                if pause:
                    time.sleep(pause)
                c.send(p)
            r = c.read_response()
            # The connection is still usable.
            c.send(GET)
            r2 = c.read_response()
            self.assertEqual(r2.status, 200)
            return r

    def test_chunked_body(self):
        r = self.post_chunked([b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"], "hello world")

    def test_chunked_body_split(self):
        body = b"5\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\n\r\n"
        # Split at every awkward place: inside sizes, between CR and LF, ...
        parts = [body[i:i + 3] for i in range(0, len(body), 3)]
        r = self.post_chunked(parts, pause=0.02)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"], "hello world0123456789")

    def test_chunked_body_pauses(self):
        parts = [b"5\r\nhel", b"lo\r", b"\n6\r\n world\r\n", b"0\r\n", b"\r\n"]
        r = self.post_chunked(parts, pause=0.2)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"], "hello world")

    def test_chunked_extensions_and_trailers(self):
        r = self.post_chunked([b"5;name=value\r\nhello\r\n6 ; a=\"b c\"\r\n world\r\n"
                               b"0;last\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"], "hello world")

    def test_chunked_uppercase_hex_and_zero_padding(self):
        body = b"x" * 26
        r = self.post_chunked([b"001A\r\n" + body + b"\r\n0\r\n\r\n"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"], body.decode())

    def test_chunked_json(self):
        payload = json.dumps({"a": [1, 2, 3]}).encode()
        r = self.post_chunked([b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)])
        self.assertEqual(r.json()["json"], {"a": [1, 2, 3]})

    # ---- request smuggling and malformed requests -----------------------------

    def expect_rejected(self, req, status=400, follow=True):
        """req (then a valid request in the same packet) gets exactly one
        answer, an error with a JSON body, and the connection is closed."""
        with self.d.connect() as c:
            c.send(req + (FOLLOW if follow else b""))
            data = c.read_until_close(5)
        self.assertTrue(data, "no answer to %r" % req)
        rs = parse_responses(data)
        self.assertEqual(len(rs), 1, "expected one answer to %r, got %r" % (req, rs))
        r = rs[0]
        self.assertEqual(r.status, status, "%r -> %r" % (req, r))
        self.assertJsonError(r, status)
        self.assertEqual(r.header("Connection", "").lower(), "close", r)
        return r

    SMUGGLING = [
        ("Content-Length and Transfer-Encoding",
         b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("Transfer-Encoding and Content-Length",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
        ("differing duplicate Content-Length",
         b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
         b"hello!"),
        ("differing Content-Length list",
         b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        ("Content-Length with a sign",
         b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello"),
        ("Content-Length not a number",
         b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello"),
        ("Transfer-Encoding not ending in chunked",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
         b"0\r\n\r\n"),
        ("obs-fold",
         b"GET /get HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n"),
        ("obs-fold with tab",
         b"GET /get HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n\tb\r\n\r\n"),
        ("bare CR in a field value",
         b"GET /get HTTP/1.1\r\nHost: t\r\nX-Bad: a\rb\r\n\r\n"),
        ("bare CR as a line end",
         b"GET /get HTTP/1.1\rHost: t\r\n\r\n"),
        ("invalid header name",
         b"GET /get HTTP/1.1\r\nHost: t\r\nX-B(ad): 1\r\n\r\n"),
        ("space in header name",
         b"GET /get HTTP/1.1\r\nHost: t\r\nX Bad: 1\r\n\r\n"),
        ("space before colon",
         b"GET /get HTTP/1.1\r\nHost: t\r\nX-Bad : 1\r\n\r\n"),
        ("space before colon in Transfer-Encoding",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ("bad chunk size",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\nhello\r\n0\r\n\r\n"),
        ("negative chunk size",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"-5\r\nhello\r\n0\r\n\r\n"),
        ("0x chunk size",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("overflowing chunk size",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ("chunk data longer than its size",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"3\r\nhello\r\n0\r\n\r\n"),
        ("missing Host in HTTP/1.1",
         b"GET /get HTTP/1.1\r\nUser-Agent: t\r\n\r\n"),
        ("HTTP/1.0 with Transfer-Encoding",
         b"POST /post HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("garbage request line",
         b"HELLO\r\n\r\n"),
        ("lowercase version",
         b"GET /get http/1.1\r\nHost: t\r\n\r\n"),
    ]

    def test_smuggling_rejected(self):
        for name, req in self.SMUGGLING:
            with self.subTest(name):
                self.expect_rejected(req)

    def test_smuggling_split_across_sends(self):
        # The same verdict when the head arrives in pieces.
        req = (b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        with self.d.connect() as c:
            for i in range(0, len(req), 7):
                c.send(req[i:i + 7])
                time.sleep(0.01)
            data = c.read_until_close(5)
        rs = parse_responses(data)
        self.assertEqual(len(rs), 1, rs)
        self.assertJsonError(rs[0], 400)

    def test_repeated_chunked_coding(self):
        # RFC 9112 6.1: chunked must not be applied more than once.
        self.expect_rejected(b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")

    def test_duplicate_host(self):
        # RFC 9112 3.2: more than one Host field -> 400.
        self.expect_rejected(b"GET /get HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")

    MALFORMED = [
        ("double space in request line", b"GET  /get HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("NUL in field value", b"GET /get HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n"),
        ("whitespace before the first field line",
         b"GET /get HTTP/1.1\r\n Host: t\r\n\r\n"),
        ("chunk extension without end",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;"
         + b"a" * 100000),
        ("trailer field without end",
         b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5\r\nhello\r\n0\r\nX-T: " + b"a" * 100000),
    ]

    def test_malformed_rejected_at_once(self):
        # Malformed or unbounded input is answered at once (never waits for
        # a deadline), with one JSON error, then the close.
        for name, req in self.MALFORMED:
            with self.subTest(name):
                start = time.monotonic()
                self.expect_rejected(req, follow=False)
                self.assertLess(time.monotonic() - start, 3)

    def test_connection_close_stops_pipeline(self):
        data = self.d.raw(b"GET /get HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + FOLLOW)
        rs = parse_responses(data)
        self.assertEqual(len(rs), 1, "a request after Connection: close was answered: %r" % rs)
        self.assertEqual(rs[0].status, 200)

    def test_connection_header_list(self):
        data = self.d.raw(b"GET /get HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\n\r\n"
                          + FOLLOW, timeout=3)
        rs = parse_responses(data)
        self.assertEqual([r.status for r in rs], [200], data)
        self.assertEqual(rs[0].header("Connection", "").lower(), "close")

    def test_absolute_form_target(self):
        with self.d.connect() as c:
            c.send(b"GET http://example.com/get?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual(j["args"], {"x": "1"})
        self.assertEqual(j["url"], "http://example.com/get?x=1")

    def test_non_utf8_echo_is_valid_json(self):
        # obs-text in a field value and %FF in the query must not break the JSON.
        with self.d.connect() as c:
            c.send(b"GET /get?x=%ff&y=%00&z=%C3%A9 HTTP/1.1\r\nHost: t\r\nX-Latin: caf\xe9\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        j = r.json()  # raises if the body is not valid UTF-8 JSON
        self.assertEqual(j["args"]["y"], "\x00")
        self.assertEqual(j["args"]["z"], "\u00e9")
        self.assertTrue(j["headers"]["X-Latin"].startswith("caf"))

    def test_head_on_delayed_and_error_answers(self):
        with self.d.connect() as c:
            c.send(b"HEAD /delay/0.1 HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"HEAD /post HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
            r = c.read_response(head_request=True)
            self.assertEqual(r.status, 200)
            self.assertGreater(int(r.header("Content-Length")), 0)
            r = c.read_response(head_request=True)
            self.assertEqual(r.status, 404)
            r = c.read_response(head_request=True)
            self.assertEqual(r.status, 405)
            r = c.read_response()
            self.assertEqual(r.status, 200, "a HEAD answer carried a body: %r" % r)
            self.assertIn("args", r.json())

    def test_common_headers(self):
        r = self.d.get("/get")
        self.assertEqual(r.header("Server"), "awaitd")
        self.assertRegex(r.header("Date", ""),
                         r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                         r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")

    def test_pipelined_input_over_64k_behind_delay(self):
        # More pipelined input than the daemon buffers behind a pending answer:
        # reading pauses and resumes; every request is answered, in order.
        n = 2000
        reqs = (b"GET /delay/0.3 HTTP/1.1\r\nHost: t\r\n\r\n" +
                b"".join(b"GET /get?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(n)))
        self.assertGreater(len(reqs), 65536)
        with self.d.connect(timeout=10) as c:
            c.send(reqs)
            self.assertEqual(c.read_response(timeout=5).status, 200)
            for i in range(n):
                r = c.read_response(timeout=5)
                self.assertEqual(r.json()["args"], {"n": str(i)})

    def test_pipelined_large_answers_slow_reader(self):
        # Big answers queued behind each other while the client reads late.
        n = 20
        with self.d.connect(timeout=10) as c:
            c.send(b"".join(b"GET /bytes/100000?seed=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i
                            for i in range(n)))
            time.sleep(0.5)
            bodies = [c.read_response(timeout=10).body for _ in range(n)]
        for i in (0, 7, n - 1):
            self.assertEqual(bodies[i], self.d.get("/bytes/100000?seed=%d" % i).body)
        self.assertEqual([len(b) for b in bodies], [100000] * n)

    def test_same_duplicate_content_length_accepted(self):
        # Identical duplicates may be accepted (RFC 9112 6.3); if so, the body is 5 bytes.
        with self.d.connect() as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                   b"Content-Length: 5\r\n\r\nhello" + GET)
            r = c.read_response()
            if r.status == 200:
                self.assertEqual(r.json()["data"], "hello")
                self.assertEqual(c.read_response().status, 200)
            else:
                self.assertJsonError(r, 400)

    def test_bare_lf_accepted(self):
        with self.d.connect() as c:
            c.send(b"GET /get?lf=1 HTTP/1.1\nHost: t\n\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["args"], {"lf": "1"})

    def test_leading_empty_lines_skipped(self):
        with self.d.connect() as c:
            c.send(b"\r\n\r\nGET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)

    def test_transfer_encoding_gzip_501(self):
        self.expect_rejected(b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"
                             b"abc", status=501)

    def test_unknown_method_501(self):
        r = self.expect_rejected(b"BREW /get HTTP/1.1\r\nHost: t\r\n\r\n", status=501)
        self.assertIn("error", r.json())

    def test_bad_version_505(self):
        self.expect_rejected(b"GET /get HTTP/2.0\r\nHost: t\r\n\r\n", status=505)

    # ---- routing errors (the connection stays usable) -----------------------------

    def test_wrong_method_405(self):
        with self.d.connect() as c:
            c.send(b"POST /get HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
            r = c.read_response()
            self.assertJsonError(r, 405)
            allow = [m.strip() for m in r.header("Allow", "").split(",")]
            self.assertIn("GET", allow, r)
            self.assertIn("HEAD", allow, r)
            self.assertNotIn("POST", allow, r)
            c.send(GET)
            self.assertEqual(c.read_response().status, 200)
        r = self.d.http("GET", "/post")
        self.assertJsonError(r, 405)
        self.assertEqual(r.header("Allow"), "POST")
        r = self.d.http("DELETE", "/bytes/10")
        self.assertJsonError(r, 405)
        self.assertIn("GET", r.header("Allow", ""))

    def test_unknown_path_404(self):
        with self.d.connect() as c:
            c.send(b"GET /no/such/thing HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response()
            self.assertJsonError(r, 404)
            c.send(GET)
            self.assertEqual(c.read_response().status, 200)
        self.assertJsonError(self.d.http("GET", "/getx"), 404)
        self.assertJsonError(self.d.http("GET", "//"), 404)
        # "/" is the probes' index page (issue 14), not a prefix of every path.
        self.assertEqual(self.d.http("GET", "/").status, 200)

    # ---- limits -----------------------------------------------------------

    def test_header_bytes_431(self):
        req = b"GET /get HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1100 + b"\r\n\r\n"
        self.expect_rejected(req, status=431)

    def test_header_bytes_431_unterminated(self):
        # Past the limit without ever ending the head: answered, not waited on.
        with self.d.connect() as c:
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2000)
            data = c.read_until_close(5)
        rs = parse_responses(data)
        self.assertEqual(len(rs), 1, rs)
        self.assertJsonError(rs[0], 431)

    def test_header_bytes_just_under_limit(self):
        base = b"GET /get HTTP/1.1\r\nHost: t\r\nX-Big: \r\n\r\n"
        req = base.replace(b"X-Big: ", b"X-Big: " + b"a" * (1024 - len(base)))
        self.assertEqual(len(req), 1024)
        with self.d.connect() as c:
            c.send(req)
            self.assertEqual(c.read_response().status, 200)

    def test_too_many_headers_431(self):
        fields = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(11))
        self.expect_rejected(b"GET /get HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n", status=431)

    def test_max_headers_exactly(self):
        fields = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(9))
        with self.d.connect() as c:
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
            self.assertEqual(c.read_response().status, 200)

    def test_uri_too_long_414(self):
        self.expect_rejected(b"GET /get?x=" + b"a" * 300 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
                             status=414)

    def test_uri_at_limit(self):
        uri = b"/get?x=" + b"a" * (256 - 7)
        self.assertEqual(len(uri), 256)
        with self.d.connect() as c:
            c.send(b"GET " + uri + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)

    def test_body_too_large_413(self):
        # The answer comes from the head alone; the body is never sent.
        with self.d.connect() as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n")
            r = c.read_response(timeout=3)
            self.assertJsonError(r, 413)
            self.assertEqual(r.header("Connection", "").lower(), "close")
            self.assertIsNotNone(c.closed_within(5), "not closed after 413")

    def test_body_too_large_413_body_sent(self):
        # A client that sends the whole body anyway still reads the 413 (the
        # daemon must not reset the connection over the unread body).
        for size in (2000, 200000):
            with self.subTest(size=size):
                with self.d.connect() as c:
                    try:
                        c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                               % size + b"x" * size)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    data = c.read_until_close(5)
                    self.assertFalse(c.reset, "connection reset; got %r" % data)
                rs = parse_responses(data)
                self.assertEqual(len(rs), 1, data)
                self.assertJsonError(rs[0], 413)

    def test_body_at_limit(self):
        r = self.d.http("POST", "/post", body=b"x" * 1024, headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()["data"]), 1024)

    def test_chunked_body_too_large_413(self):
        chunk = b"x" * 600
        req = (b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
        self.expect_rejected(req, status=413, follow=False)

    # ---- every error is JSON ------------------------------------------------------

    def test_error_bodies_are_json(self):
        cases = [
            ("GET", "/nope", None, 404),
            ("PUT", "/get", b"", 405),
            ("GET", "/status/abc", None, 400),
            ("GET", "/delay/abc", None, 400),
            ("GET", "/bytes/-1", None, 400),
            ("GET", "/stream/x", None, 400),
            ("GET", "/drip?duration=x", None, 400),
        ]
        for method, path, body, status in cases:
            with self.subTest(path=path):
                self.assertJsonError(self.d.http(method, path, body=body), status)

    def test_parse_errors_counted(self):
        before = self.d.metrics().get("awaitd_parse_errors_total", 0)
        self.expect_rejected(b"GET /get HTTP/1.1\r\nX-Bad : 1\r\nHost: t\r\n\r\n")
        after = self.d.metrics().get("awaitd_parse_errors_total", 0)
        self.assertGreaterEqual(after, before + 1)

    def test_daemon_survives_garbage(self):
        for junk in (b"\x00\x01\x02\xff" * 100, b"\r\n" * 600, b"GET " + b"/" * 5000,
                     b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n"):
            self.d.raw(junk, timeout=3)
        self.assertEqual(self.d.get("/health").status, 200)

    # ---- the accepted socket --------------------------------------------------------

    def test_accepted_sockets_have_nodelay(self):
        # Answers leave at once (no Nagle wait behind an unacknowledged segment):
        # every accepted socket has TCP_NODELAY, inherited from the listener
        # since it is no longer set per connection. Looked at in the daemon's
        # own descriptor table (pidfd_getfd), on a fresh and a used connection.
        import ctypes
        import os
        import socket
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(self.d.proc.pid)
        try:
            for requests in (0, 3):
                with self.d.connect() as c:
                    for _ in range(requests):
                        c.send(GET)
                        self.assertEqual(c.read_response().status, 200)
                    if not requests:  # accepted, then idle
                        self.d.wait_metric("awaitd_connections_open", lambda v: v >= 1, timeout=5)
                    fd = self._daemon_fd_of(c.sock.getsockname()[1])
                    theirs = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
                    self.assertGreaterEqual(theirs, 0, os.strerror(ctypes.get_errno()))
                    with socket.socket(fileno=theirs) as s:
                        self.assertEqual(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1,
                                         "accepted socket without TCP_NODELAY")
        finally:
            os.close(pidfd)

    def _daemon_fd_of(self, client_port):
        """The daemon's descriptor for its end of our connection from client_port."""
        import os
        inode = None
        want_remote = ":%04X" % client_port
        want_local = ":%04X" % self.d.port
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                col = line.split()
                if col[1].endswith(want_local) and col[2].endswith(want_remote):
                    inode = col[9]
        self.assertIsNotNone(inode, "no daemon socket for port %d" % client_port)
        fds = "/proc/%d/fd" % self.d.proc.pid
        for name in os.listdir(fds):
            try:
                if os.readlink(os.path.join(fds, name)) == "socket:[%s]" % inode:
                    return int(name)
            except OSError:
                pass
        self.fail("the daemon holds no descriptor for socket inode %s" % inode)


if __name__ == "__main__":
    unittest.main(verbosity=2)
