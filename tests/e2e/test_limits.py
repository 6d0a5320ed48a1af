"""Deadlines (header, body, keep-alive, write), max_connections, and SIGTERM drain."""

import json
import signal
import socket
import time
import unittest

from awaitd_test import (Daemon, DaemonTestCase, HOST, RawConn, free_port, get_until_close,
                         parse_responses, request_from)

MAX_CONN = 20


class LimitsTest(DaemonTestCase):
    config = {"server": {"header_timeout": "1s", "body_timeout": "1s", "keepalive_timeout": "1s",
                         "write_timeout": "1s", "max_connections": str(MAX_CONN)},
              "probe": {"max_bytes": "64m"}}

    def timeouts(self, kind):
        return self.d.metrics()['awaitd_timeouts_total{kind="%s"}' % kind]

    def quiet(self):
        """Wait until only the metrics connection itself is open."""
        self.d.wait_metric("awaitd_connections_open", lambda v: v <= 1, timeout=5)
        time.sleep(0.1)  # and that one has gone too

    # ---- deadlines -------------------------------------------------------------

    def assert_408_after_deadline(self, request):
        """request, left incomplete, is answered 408 once (and the connection
        closed) after the 1 s deadline and well before 4 s. Returns the answer."""
        with self.d.connect(timeout=6) as c:
            start = time.monotonic()
            c.send(request)
            data = c.read_until_close(6)
            took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 4)
        rs = parse_responses(data)
        self.assertEqual(len(rs), 1, data)
        self.assertJsonError(rs[0], 408)
        return rs[0]

    def test_header_timeout_partial_head(self):
        before = self.timeouts("header")
        r = self.assert_408_after_deadline(b"GET /get HTTP/1.1\r\nHost: t\r\nX-Partial: ")
        self.assertEqual(r.header("Connection", "").lower(), "close")
        self.assertGreaterEqual(self.timeouts("header"), before + 1)

    def test_header_timeout_trickle(self):
        # One byte every 0.3 s does not extend the header deadline.
        req = b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n"
        with self.d.connect(timeout=6) as c:
            start = time.monotonic()
            data = b""
            for b in req:
                try:
                    c.send(bytes([b]))
                except OSError:
                    break
                data += c.read_some(0.3)
                if data or c.eof:
                    break
            if not c.eof:
                data += c.read_until_close(4)
            took = time.monotonic() - start
        self.assertLess(took, 3.5, "header_timeout did not bound a trickling head")
        rs = parse_responses(data) if data else []
        self.assertEqual([r.status for r in rs], [408], data)

    def test_header_timeout_silent_connection(self):
        # A connection that never sends anything is closed without an answer.
        before = self.timeouts("header")
        with self.d.connect(timeout=6) as c:
            took = c.closed_within(5)
            self.assertIsNotNone(took, "silent connection not closed")
            self.assertGreaterEqual(took, 0.9)
            self.assertEqual(bytes(c.buf), b"")
        self.assertGreaterEqual(self.timeouts("header"), before + 1)

    def test_body_timeout(self):
        before = self.timeouts("body")
        self.assert_408_after_deadline(
            b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        self.assertGreaterEqual(self.timeouts("body"), before + 1)

    def test_body_timeout_chunked(self):
        self.assert_408_after_deadline(
            b"POST /post HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")

    def test_body_deadline_is_between_reads(self):
        # A slow but steady body (a byte every 0.4 s < body_timeout) completes.
        with self.d.connect(timeout=8) as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                   b"Content-Type: text/plain\r\n\r\n")
            for ch in b"hello":
                time.sleep(0.4)
                c.send(bytes([ch]))
            r = c.read_response(timeout=5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"], "hello")

    def test_keepalive_timeout(self):
        before = self.timeouts("keepalive")
        with self.d.connect(timeout=6) as c:
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
            took = c.closed_within(5)
            self.assertIsNotNone(took, "idle keep-alive connection not closed")
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 4)
            self.assertEqual(bytes(c.buf), b"", "an idle close should say nothing")
        self.assertGreaterEqual(self.timeouts("keepalive"), before + 1)

    def test_keepalive_restarts_per_request(self):
        # Requests every 0.5 s keep the connection open past the 1 s idle limit.
        with self.d.connect(timeout=6) as c:
            for i in range(5):
                c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
                self.assertEqual(c.read_response().status, 200, "request %d" % i)
                time.sleep(0.5)

    def test_keepalive_from_last_answer(self):
        # The keep-alive timer stays where the first answer put it and moves
        # on when it fires (issue 19): the close still comes a keep-alive
        # timeout after the LAST answer, not the first, and it does come.
        before = self.timeouts("keepalive")
        with self.d.connect(timeout=8) as c:
            for i in range(4):
                c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
                self.assertEqual(c.read_response().status, 200, "request %d" % i)
                if i < 3:
                    time.sleep(0.6)
            took = c.closed_within(5)
            self.assertIsNotNone(took, "idle keep-alive connection not closed")
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 4)
        self.assertGreaterEqual(self.timeouts("keepalive"), before + 1)

    def test_delay_not_cut_by_deadlines(self):
        # A pending /delay longer than every deadline is still answered.
        with self.d.connect(timeout=8) as c:
            c.send(b"GET /delay/2 HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response(timeout=6)
        self.assertEqual(r.status, 200)

    # ---- write deadline ---------------------------------------------------------

    def test_write_timeout_slow_reader(self):
        self.quiet()
        before = self.timeouts("write")
        size = 16 << 20  # more than the kernel buffers hold on both sides
        c = RawConn(self.d.port, timeout=10, rcvbuf=4096)
        try:
            c.send(b"GET /bytes/%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
            # Meanwhile others are served, promptly.
            for _ in range(3):
                start = time.monotonic()
                self.assertEqual(self.d.get("/get").status, 200)
                self.assertLess(time.monotonic() - start, 2.0)
            self.d.wait_metric('awaitd_timeouts_total{kind="write"}', lambda v: v >= before + 1,
                               timeout=6)
            self.d.wait_metric("awaitd_connections_open", lambda v: v <= 1, timeout=3)
            # The client finds a cut-off body.
            got = 0
            deadline = time.monotonic() + 10
            try:
                while time.monotonic() < deadline:
                    c.sock.settimeout(2)
                    chunk = c.sock.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
            except (ConnectionResetError, socket.timeout):
                pass
            self.assertLess(got, size)
        finally:
            c.close()
        self.assertEqual(self.d.get("/health").status, 200)

    # ---- max_connections -----------------------------------------------------------

    def hold(self, n):
        """Open n connections, each with a /delay/6 pending (no deadline
        applies while an answer is pending). Fails if any is refused."""
        held = []
        for i in range(n):
            c = RawConn(self.d.port, timeout=5)
            held.append(c)
            c.send(b"GET /delay/6 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        for i, c in enumerate(held):
            got = c.read_some(0.01)
            if got or c.eof:
                for h in held:
                    h.close()
                self.fail("holder %d of %d was answered at once: %r" % (i, n, got))
        return held

    def test_max_connections(self):
        self.quiet()
        m0 = self.d.metrics()
        self.quiet()
        held = self.hold(MAX_CONN)
        try:
            # One more: a 503 with a JSON error, then the close.
            with self.d.connect(timeout=5) as extra:
                data = extra.read_until_close(5)
            rs = parse_responses(data)
            self.assertEqual(len(rs), 1, data)
            self.assertJsonError(rs[0], 503)
            self.assertEqual(rs[0].header("Connection", "").lower(), "close")
            # Close five holders; new connections are served again.
            for c in held[:5]:
                c.close()
            deadline = time.monotonic() + 3
            while True:
                r = None
                try:
                    r = self.d.get("/get", timeout=3)
                except OSError:
                    pass
                if r is not None and r.status == 200:
                    break
                self.assertLess(time.monotonic(), deadline, "not served after closing some")
                time.sleep(0.05)
            m1 = self.d.metrics()
            self.assertGreaterEqual(m1["awaitd_connections_refused_total"],
                                    m0["awaitd_connections_refused_total"] + 1)
            self.assertEqual(m1["awaitd_connections_max"], MAX_CONN)
            self.assertLessEqual(m1["awaitd_connections_open"], MAX_CONN)
        finally:
            for c in held:
                c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=3)

    def test_max_connections_client_sends_first(self):
        # A client that sends its request at once (as every HTTP client does)
        # must still read the 503, not a connection reset.
        self.quiet()
        held = self.hold(MAX_CONN)
        try:
            results = []
            for _ in range(5):
                with RawConn(self.d.port, timeout=5) as extra:
                    extra.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
                    try:
                        data = extra.read_until_close(5)
                    except AssertionError as e:
                        data = b"(no close: %s)" % str(e).encode()
                    results.append((extra.reset, data))
            for reset, data in results:
                rs = parse_responses(data) if data.startswith(b"HTTP/") else []
                self.assertEqual(len(rs), 1, "refused client got %r (reset=%s); all: %r"
                                 % (data, reset, results))
                self.assertJsonError(rs[0], 503)
        finally:
            for c in held:
                c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=3)


class PerIpLimitTest(DaemonTestCase):
    """[server] max_connections_per_ip: one address cannot take every connection."""

    PER_IP = 3
    config = {"server": {"max_connections_per_ip": str(PER_IP)}}

    def request_from(self, source, path="/get"):
        """GET path on a new connection from source; every byte until close or answer."""
        return request_from(source, self.d.port, path)

    def metric_from(self, source, name):
        """A metric's value read over a connection from source (127.0.0.1 may be full)."""
        rs = parse_responses(self.request_from(source, "/metrics"))
        self.assertEqual([r.status for r in rs], [200])
        for line in rs[0].body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail("no metric " + name)

    def wait_pending(self, n):
        deadline = time.monotonic() + 5
        while self.metric_from("127.0.0.2", "awaitd_delays_pending") != n:
            self.assertLess(time.monotonic(), deadline, "delays_pending never reached %d" % n)
            time.sleep(0.05)

    def test_per_ip_limit(self):
        refused0 = self.metric_from("127.0.0.2", "awaitd_connections_refused_total")
        held = []
        try:
            for _ in range(self.PER_IP):
                c = RawConn(self.d.port, timeout=5)
                held.append(c)
                c.send(b"GET /delay/6 HTTP/1.1\r\nHost: t\r\n\r\n")
            self.wait_pending(self.PER_IP)
            # The same address once more: a 503 naming the setting, then the close.
            rs = parse_responses(self.request_from(HOST))
            self.assertEqual(len(rs), 1)
            err = self.assertJsonError(rs[0], 503)
            self.assertIn("max_connections_per_ip", err["error"])
            # Another client address is served meanwhile (a health check, say).
            rs = parse_responses(self.request_from("127.0.0.2", "/health"))
            self.assertEqual([r.status for r in rs], [200])
            # A closed connection frees its slot.
            held.pop().close()
            deadline = time.monotonic() + 3
            while True:
                rs = parse_responses(self.request_from(HOST))
                if rs and rs[0].status == 200:
                    break
                self.assertLess(time.monotonic(), deadline, "slot not freed after a close")
                time.sleep(0.05)
            self.assertGreaterEqual(
                self.metric_from("127.0.0.2", "awaitd_connections_refused_total"), refused0 + 1)
        finally:
            for c in held:
                c.close()
        self.wait_pending(0)
        # Every slot comes back: PER_IP connections from one address again.
        again = [RawConn(self.d.port, timeout=5) for _ in range(self.PER_IP)]
        try:
            for c in again:
                c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            for c in again:
                self.assertTrue(c.read_some(2).startswith(b"HTTP/1.1 200"))
        finally:
            for c in again:
                c.close()


class Ipv6PeerTest(DaemonTestCase):
    """A client over IPv6: its address as /get's origin and the access log
    say it, and the per-address limit counts it and frees its slot on close
    (struct conn keeps the address in 17 bytes, issue 19)."""

    PER_IP = 2
    PORT6 = free_port()
    config = {"server": {"listen": ["%s:%d" % (HOST, PORT6), "[::1]:%d" % PORT6],
                         "max_connections_per_ip": str(PER_IP)}}

    def conn6(self):
        s = socket.create_connection(("::1", self.PORT6), timeout=5)
        return s

    def get6(self, path="/get"):
        """GET path over IPv6 with Connection: close; the responses."""
        with self.conn6() as s:
            return parse_responses(get_until_close(s, path))

    def test_origin_is_the_ipv6_address(self):
        rs = self.get6()
        self.assertEqual([r.status for r in rs], [200])
        self.assertEqual(json.loads(rs[0].body)["origin"], "::1")

    def test_per_ip_limit_over_ipv6(self):
        held = []
        try:
            for _ in range(self.PER_IP):
                s = self.conn6()
                held.append(s)
                s.sendall(b"GET /delay/6 HTTP/1.1\r\nHost: t\r\n\r\n")
            deadline = time.monotonic() + 5
            while True:
                rs = self.get6()
                if rs and rs[0].status == 503:
                    break
                self.assertLess(time.monotonic(), deadline, "::1 never reached its limit")
                time.sleep(0.05)
            self.assertIn("max_connections_per_ip", self.assertJsonError(rs[0], 503)["error"])
            # IPv4 is another address: served meanwhile.
            rs = parse_responses(request_from(HOST, self.PORT6))
            self.assertEqual([r.status for r in rs], [200])
            # A closed connection frees the slot of the address it was counted under.
            held.pop().close()
            deadline = time.monotonic() + 3
            while True:
                rs = self.get6()
                if rs and rs[0].status == 200:
                    break
                self.assertLess(time.monotonic(), deadline, "::1's slot not freed after a close")
                time.sleep(0.05)
        finally:
            for s in held:
                s.close()


class FdLimitTest(unittest.TestCase):
    """Out of file descriptors (RLIMIT_NOFILE 64): refuse cleanly, keep serving."""

    def test_out_of_file_descriptors(self):
        d = Daemon({"probe": {"max_delay": "10s"}}, nofile=64)
        d.start()
        try:
            m0 = d.metrics()
            held = []
            try:
                for _ in range(100):
                    c = RawConn(d.port, timeout=3)
                    held.append(c)
                    try:
                        c.send(b"GET /delay/2 HTTP/1.1\r\nHost: t\r\n\r\n")
                    except OSError:
                        pass
                time.sleep(0.5)
                self.assertTrue(d.alive(), d.stderr())
            finally:
                for c in held:
                    c.close()
            deadline = time.monotonic() + 5
            while True:
                try:
                    if d.get("/health", timeout=2).status == 200:
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, "not serving after running out of fds")
                time.sleep(0.1)
            m1 = d.wait_metric("awaitd_connections_open", lambda v: v <= 1, timeout=5)
            self.assertLessEqual(m1, 1)
            self.assertGreater(d.metrics()["awaitd_connections_refused_total"],
                               m0["awaitd_connections_refused_total"])
            d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        finally:
            d.stop()


class DrainTest(unittest.TestCase):
    """SIGTERM: in-flight requests finish, new connections are refused, exit 0."""

    def start(self, **server):
        d = Daemon({"server": dict({"shutdown_grace": "10s"}, **server)})
        d.start()
        self.addCleanup(d._kill)
        self.addCleanup(d.cleanup)
        return d

    def test_sigterm_drains(self):
        d = self.start()
        inflight = d.connect(timeout=10)
        inflight.send(b"GET /delay/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        idle = d.connect(timeout=10)
        idle.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(idle.read_response().status, 200)
        d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        # New connections are refused (the listener is closed).
        deadline = time.monotonic() + 2
        refused = False
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, d.port), timeout=1) as s:
                    s.settimeout(1)
                    s.sendall(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
                    data = s.recv(4096)
                    if data.startswith(b"HTTP/1.1 503") or not data:
                        refused = True
                        break
            except (ConnectionRefusedError, ConnectionResetError):
                refused = True
                break
            except socket.timeout:
                pass
            time.sleep(0.05)
        self.assertTrue(refused, "new connections still served after SIGTERM")
        # The idle keep-alive connection is closed.
        self.assertIsNotNone(idle.closed_within(3), "idle connection kept open during drain")
        idle.close()
        # The in-flight request completes.
        r = inflight.read_response(timeout=5)
        self.assertEqual(r.status, 200, r)
        self.assertIn("url", r.json())
        self.assertEqual(r.header("Connection", "").lower(), "close")
        self.assertIsNotNone(inflight.closed_within(3))
        inflight.close()
        rc = d.wait(5)
        self.assertEqual(rc, 0, "exit code %r; stderr:\n%s" % (rc, d.stderr()))
        self.assertGreaterEqual(time.monotonic() - start, 0.5)
        d.check_stderr()

    def test_sigterm_idle_exits_at_once(self):
        d = self.start()
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(5)
        self.assertEqual(rc, 0, d.stderr())
        self.assertLess(time.monotonic() - start, 3)
        d.check_stderr()

    def test_second_sigterm_exits_at_once(self):
        d = self.start()
        c = d.connect(timeout=10)
        c.send(b"GET /delay/8 HTTP/1.1\r\nHost: t\r\n\r\n")
        d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertTrue(d.alive(), "exited with a request in flight; stderr:\n" + d.stderr())
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(5)
        self.assertIsNotNone(rc, "second SIGTERM did not end the daemon")
        self.assertLess(time.monotonic() - start, 2)
        # A forced exit cut answers short: it is not a clean stop, and
        # systemd (Restart=on-failure) and scripts must be able to tell.
        self.assertEqual(rc, 1, d.stderr())
        self.assertIsNotNone(c.closed_within(2))
        c.close()
        d.check_stderr()

    def test_grace_period_bounds_drain(self):
        d = self.start(shutdown_grace="1s")
        c = d.connect(timeout=10)
        c.send(b"GET /delay/8 HTTP/1.1\r\nHost: t\r\n\r\n")
        d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(6)
        took = time.monotonic() - start
        self.assertIsNotNone(rc, "grace period did not end the drain")
        self.assertEqual(rc, 0, d.stderr())
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 4)
        self.assertIsNotNone(c.closed_within(2))
        c.close()
        d.check_stderr()


if __name__ == "__main__":
    unittest.main(verbosity=2)
