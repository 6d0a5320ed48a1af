"""HTTP/2 end to end (issue 15): h2c with prior knowledge on the plain
listener, h2 by ALPN on the TLS one, with real clients (curl, nghttp, h2load,
httpx with python3-h2, Node's http2 module, awaitload --h2) and raw frames
written here.

- probes, a queue put/reserve/ack and a timer over h2c and h2;
- 1,000 concurrent /delay/1 streams on one connection finish in about 1 s;
- a stream reset cancels exactly that stream's pending work (a /delay timer,
  a long-poll reserve); a closed connection cancels all of them;
- a stream whose client does not read (its window at 0) does not hold up the
  others on the same connection;
- the floods (rapid reset, CONTINUATION, HPACK bomb, SETTINGS, PING, empty
  DATA, window-update overflow, a client that never reads): each ends with a
  GOAWAY and a close, counted in awaitd_h2_closes_total{reason}, while another
  client goes on being served;
- a conformance pass written from RFC 9113's MUSTs: preface, frame size,
  stream ids, pseudo-header rules, connection-specific fields;
- Upgrade: h2c from HTTP/1.1 (curl --http2 on http://);
- awaitload --h2 --streams N;
- [http2] enabled = off: no h2 by ALPN, prior knowledge or upgrade;
- SIGTERM, or a reload that removes the listener: a GOAWAY, the in-flight
  stream finishes (the daemon exits; other listeners' connections go on).
"""

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import httpx

import test_tls
from awaitd_test import HOST, Daemon, DaemonTestCase, free_port, main
from test_tls import AWAITLOAD, run

NGHTTP = "/usr/bin/nghttp"
NODE = shutil.which("node") or "/usr/bin/node"
NODE_CLIENT = r"""
// Node's http2 client: h2c (prior knowledge) or h2 (ALPN), N concurrent GETs
// of one path on one session; prints a JSON line with the statuses and time.
const http2 = require('http2');
const [url, path, n, ca] = process.argv.slice(1);  // node -e: no script path
const opts = ca ? {ca: require('fs').readFileSync(ca), servername: 'localhost'} : {};
const session = http2.connect(url, opts);
session.on('error', (e) => { console.log(JSON.stringify({error: String(e)})); process.exit(1); });
const t0 = Date.now();
const one = () => new Promise((resolve, reject) => {
  const req = session.request({':path': path});
  let status = 0, body = '';
  req.on('response', (h) => { status = h[':status']; });
  req.setEncoding('utf8');
  req.on('data', (d) => { body += d; });
  req.on('end', () => resolve({status, body}));
  req.on('error', reject);
  req.end();
});
Promise.all(Array.from({length: Number(n)}, one)).then((rs) => {
  console.log(JSON.stringify({statuses: rs.map((r) => r.status), body: rs[0].body,
                              ms: Date.now() - t0, alpn: session.alpnProtocol}));
  session.close();
}).catch((e) => { console.log(JSON.stringify({error: String(e)})); process.exit(1); });
"""
H2LOAD = "/usr/bin/h2load"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, CANCEL, \
    ENHANCE_YOUR_CALM = 0, 1, 3, 6, 8, 11


def setUpModule():
    test_tls.setUpModule()


def tearDownModule():
    test_tls.tearDownModule()


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def req_block(path="/get", method="GET", extra=(), enc=None):
    enc = enc or hpack.Encoder()
    return enc.encode([(":method", method), (":scheme", "http"), (":path", path),
                       (":authority", "localhost")] + list(extra))


class RawH2:
    """Frames by hand: for what a well-behaved client library refuses to send."""

    def __init__(self, port, settings=b"", rcvbuf=None, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.buf = b""
        self.frames = []
        self.eof = False

    def start(self, settings=b""):
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings))
        return self

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True

    def read_frames(self, until, timeout=10.0):
        """Read frames (kept in self.frames) until until(frame) is true for
        one; returns it, or None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        for f in self.frames:
            if until(f):
                return f
        while time.monotonic() < deadline and not self.eof:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                     self.buf[9:9 + n])
                self.buf = self.buf[9 + n:]
                self.frames.append(f)
                if until(f):
                    return f
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk
        return None

    def goaway(self, timeout=10.0):
        """The GOAWAY's error code (None if none came), after which the
        daemon must close the connection."""
        f = self.read_frames(lambda f: f[0] == GOAWAY, timeout)
        if f is None:
            return None
        self.read_frames(lambda f: False, timeout)  # then EOF
        return int.from_bytes(f[3][4:8], "big")

    def rst(self, sid, timeout=10.0):
        f = self.read_frames(lambda f: f[0] == RST_STREAM and f[2] == sid, timeout)
        return None if f is None else int.from_bytes(f[3], "big")

    def close(self):
        self.sock.close()


class H2Client:
    """python3-h2 over a socket (plain or TLS), answers collected per stream."""

    def __init__(self, port, ctx=None, manual_flow=False, timeout=10.0):
        raw = socket.create_connection((HOST, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.initiate_connection()
        self.manual_flow = manual_flow
        self.streams = {}
        self.goaway = None
        self.eof = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=None, headers=()):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", "localhost")] + list(headers)
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        self.streams[sid] = {"headers": None, "data": b"", "ended": False, "reset": None}
        self.flush()
        if body is not None:
            self.send_body(sid, body)
        return sid

    def send_body(self, sid, body):
        """Within the windows, as they open; stops if the stream ends first."""
        s = self.streams[sid]
        while True:
            if s["ended"] or s["reset"] is not None:
                return
            n = min(len(body), self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size)
            if n == 0 and body:
                self.pump(lambda: s["ended"] or s["reset"] is not None or
                          self.conn.local_flow_control_window(sid) > 0)
                continue
            self.conn.send_data(sid, body[:n], end_stream=n == len(body))
            self.flush()
            body = body[n:]
            if not body:
                return

    def pump(self, until, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not until():
            if self.eof or time.monotonic() > deadline:
                return False
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return until()
            if not data:
                self.eof = True
                break
            for ev in self.conn.receive_data(data):
                s = self.streams.get(getattr(ev, "stream_id", None) or 0)
                if isinstance(ev, h2.events.ResponseReceived):
                    s["headers"] = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    s["data"] += ev.data
                    if not self.manual_flow:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                            ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    s["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    if s is not None:
                        s["reset"] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
            self.flush()
        return until()

    def response(self, sid, timeout=10.0):
        s = self.streams[sid]
        if not self.pump(lambda: s["ended"] or s["reset"] is not None, timeout):
            raise AssertionError("stream %d: no whole answer within %.0f s: %r" % (sid, timeout, s))
        return s

    def get(self, path, timeout=10.0, **kw):
        s = self.response(self.request("GET", path, **kw), timeout)
        return int(s["headers"][":status"]), s["headers"], s["data"]

    def reset(self, sid):
        self.conn.reset_stream(sid, error_code=CANCEL)
        self.flush()

    def close(self):
        self.sock.close()


class Bystander:
    """Another client making h2c requests on its own connection while an
    attack runs: every one must succeed."""

    def __init__(self, port):
        self.port, self.ok, self.failed = port, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            c = H2Client(self.port)
            while not self.stop.is_set():
                status, _, _ = c.get("/get")
                if status == 200:
                    self.ok += 1
                else:
                    self.failed.append(status)
                time.sleep(0.01)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.failed.append(repr(e))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # One more answer after the attack, however loaded the machine is.
        seen = self.ok
        deadline = time.monotonic() + 15
        while self.ok <= seen and not self.failed and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stop.set()
        self.thread.join(30)


def closes(d, reason):
    return d.metric('awaitd_h2_closes_total{reason="%s"}' % reason, 0)


class H2cTest(DaemonTestCase):
    config = {"http2": {"max_concurrent_streams": "2000"}, "probe": {"max_delay": "20s"}}

    def curl2(self, *args):
        p = self.d.curl("-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
                        *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        body, _, tail = p.stdout.decode().rpartition("\n")
        return tail, body

    def test_curl_prior_knowledge_probes(self):
        tail, body = self.curl2("{url}/get?a=1")
        self.assertEqual(tail, "2 200")
        j = json.loads(body)
        self.assertEqual(j["args"], {"a": "1"})
        self.assertEqual(j["headers"]["Host"], "%s:%d" % (HOST, self.d.port))
        tail, body = self.curl2("-d", "x=y", "{url}/post")
        self.assertEqual((tail, json.loads(body)["form"]), ("2 200", {"x": "y"}))
        self.assertEqual(self.curl2("{url}/status/418")[0], "2 418")
        self.assertEqual(self.curl2("-I", "{url}/get")[0], "2 200")
        p = self.d.curl("-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                        "%{http_version} %{http_code} %{size_download}", "{url}/bytes/300000")
        self.assertEqual(p.stdout.decode(), "2 200 300000")
        tail, body = self.curl2("{url}/stream/4")
        self.assertEqual((tail, len(body.splitlines())), ("2 200", 4))
        tail, body = self.curl2("{url}/drip?duration=0.3&numbytes=3")
        self.assertEqual((tail, body), ("2 200", "***"))
        t0 = time.monotonic()
        self.assertEqual(self.curl2("{url}/delay/0.3")[0], "2 200")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        tail, body = self.curl2("{url}/nope")
        self.assertEqual(tail, "2 404")
        self.assertIn("error", json.loads(body))

    def test_upgrade_h2c(self):
        # curl --http2 on http:// asks for Upgrade: h2c; the answer is stream 1's.
        p = self.d.curl("-sS", "--http2", "-w", "\n%{http_version} %{http_code}", "{url}/get?u=1")
        body, _, tail = p.stdout.decode().rpartition("\n")
        self.assertEqual(tail, "2 200", p.stderr)
        self.assertEqual(json.loads(body)["args"], {"u": "1"})
        p = self.d.curl("-sS", "--http2", "-o", "/dev/null", "-w",
                        "%{http_version} %{http_code} %{size_download}", "{url}/bytes/200000")
        self.assertEqual(p.stdout.decode(), "2 200 200000", p.stderr)
        p = self.d.curl("-sS", "--http2", "-I", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                        "{url}/get")
        self.assertEqual(p.stdout.decode(), "2 200", p.stderr)
        # A request with a body is answered in HTTP/1.1 (no upgrade).
        p = self.d.curl("-sS", "--http2", "-d", "a=b", "-o", "/dev/null", "-w",
                        "%{http_version} %{http_code}", "{url}/post")
        self.assertEqual(p.stdout.decode(), "1.1 200", p.stderr)

    def test_upgrade_with_bad_settings_is_a_protocol_error(self):
        with socket.create_connection((HOST, self.d.port), timeout=10) as s:
            s.sendall(b"GET /get HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"Upgrade: h2c\r\nHTTP2-Settings: !!!\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), data)
        rest = data[data.index(b"\r\n\r\n") + 4:]
        frames = []
        while len(rest) >= 9:
            n = int.from_bytes(rest[:3], "big")
            frames.append((rest[3], rest[9:9 + n]))
            rest = rest[9 + n:]
        goaway = [p for t, p in frames if t == GOAWAY]
        self.assertEqual(len(goaway), 1, frames)
        self.assertEqual(int.from_bytes(goaway[0][4:8], "big"), PROTOCOL_ERROR)

    def test_split_cookie_fields_are_joined(self):
        # RFC 9113 8.2.3: a client may send each cookie in its own field.
        c = H2Client(self.d.port)
        status, _, body = c.get("/cookies", headers=[("cookie", "a=1"), ("accept", "*/*"),
                                                     ("cookie", "b=2"), ("cookie", "c=3")])
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["cookies"], {"a": "1", "b": "2", "c": "3"})
        status, _, body = c.get("/headers", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        self.assertEqual(json.loads(body)["headers"]["Cookie"], "a=1; b=2")
        status, _, body = c.get("/cookies", headers=[("cookie", "only=1")])
        self.assertEqual(json.loads(body)["cookies"], {"only": "1"})
        c.close()

    def test_large_download_is_whole(self):
        c = H2Client(self.d.port)
        status, headers, data = c.get("/bytes/1000000?seed=3", timeout=20)
        self.assertEqual((status, len(data), headers["content-length"]), (200, 1000000, "1000000"))
        status, _, data = c.get("/stream/100")
        self.assertEqual((status, len(data.splitlines())), (200, 100))
        c.close()

    def test_nghttp(self):
        p = run([NGHTTP, "-n", "-s", self.d.url("/get"), self.d.url("/status/201")])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run([NGHTTP, self.d.url("/get?n=2")])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["args"], {"n": "2"})

    def node(self, url, path, n, ca=None):
        p = run([NODE, "-e", NODE_CLIENT, url, path, str(n)] + ([ca] if ca else []), timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return json.loads(p.stdout)

    def test_node_http2_client(self):
        j = self.node(self.d.url(""), "/get?node=1", 1)
        self.assertEqual(j["statuses"], [200])
        self.assertEqual(json.loads(j["body"])["args"], {"node": "1"})
        j = self.node(self.d.url(""), "/delay/1", 300)
        self.assertEqual(j["statuses"], [200] * 300)
        self.assertLess(j["ms"], 5000)  # 300 one-second waits at once on one session

    def test_httpx_queue_and_timer(self):
        with httpx.Client(http1=False, http2=True, base_url=self.d.url(""), timeout=10) as c:
            r = c.get("/get")
            self.assertEqual((r.status_code, r.http_version), (200, "HTTP/2"))
            self.assertEqual(c.put("/queues/h2q").status_code, 201)
            r = c.post("/queues/h2q/jobs", content=b"job-one")
            self.assertEqual(r.status_code, 201, r.text)
            r = c.post("/queues/h2q/reserve", params={"wait": "1"})
            self.assertEqual((r.status_code, r.content), (200, b"job-one"))
            jid = r.headers["job-id"]
            r = c.post("/queues/h2q/jobs/%s/ack" % jid)
            self.assertEqual(r.status_code, 200, r.text)
            r = c.post("/timers", json={"queue": "h2q", "payload": "tick", "after": 0.2})
            self.assertEqual(r.status_code, 201, r.text)
            tid = r.json()["id"]
            r = c.get("/timers/%d" % tid, params={"wait": "5"})
            self.assertEqual(r.status_code, 200, r.text)
            r = c.post("/queues/h2q/reserve", params={"wait": "5"})
            self.assertEqual((r.status_code, r.content), (200, b"tick"))

    def test_1000_concurrent_delays_on_one_connection(self):
        t0 = time.monotonic()
        p = run([H2LOAD, "-n", "1000", "-c", "1", "-m", "1000", self.d.url("/delay/1")], timeout=60)
        took = time.monotonic() - t0
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("1000 succeeded", out)
        self.assertIn("status codes: 1000 2xx", out)
        # One after the other would be 1000 s; 100 at a time 10 s.
        self.assertLess(took, 5.0, out)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 0)

    def test_memory_is_counted_and_given_back(self):
        self.d.wait_metric("awaitd_h2_connections_open", lambda v: v == 0)
        self.assertEqual(self.d.metric("awaitd_h2_memory_bytes"), 0)
        c = H2Client(self.d.port)
        self.assertEqual(c.get("/get")[0], 200)
        idle = self.d.metric("awaitd_h2_memory_bytes")
        self.assertGreater(idle, 0)
        for _ in range(500):
            c.request("GET", "/delay/10")
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 500)
        busy = self.d.metric("awaitd_h2_memory_bytes")
        per_stream = (busy - idle) / 500
        self.assertGreater(per_stream, 200)
        self.assertLess(per_stream, 4096)  # measured about 1 KB (docs/HTTP2.md)
        c.close()
        self.d.wait_metric("awaitd_h2_memory_bytes", lambda v: v == 0)

    def test_awaitload_h2(self):
        p = run([AWAITLOAD, "--json", "--h2", "--streams", "500", "-c", "2", "-n", "1000",
                 self.d.url("/delay/1")], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual((j["requests"], j["status"]["2xx"], sum(j["errors"].values())),
                         (1000, 1000, 0), j)
        self.assertLess(j["duration_s"], 5)  # 1,000 one-second waits at once
        self.assertGreaterEqual(j["latency_us"]["p50"], 1000000)
        p = run([AWAITLOAD, "--json", "--h2", "--streams", "20", "-c", "3", "-t", "2", "-n",
                 "3000", self.d.url("/status/404")], timeout=60)
        j = json.loads(p.stdout)
        self.assertEqual((j["requests"], j["status"]["4xx"]), (3000, 3000), j)
        p = run([AWAITLOAD, "--h2", "--streams", "2", "-n", "5", "-m", "POST", "-b", "x",
                 self.d.url("/post")])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--h2", p.stderr.decode())

    def test_reset_cancels_that_streams_delay(self):
        base = self.d.metric("awaitd_timers_pending")
        c = H2Client(self.d.port)
        slow = c.request("GET", "/delay/15")
        keep = c.request("GET", "/delay/0.5")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 2)
        c.reset(slow)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1)
        s = c.response(keep)  # the other stream is untouched
        self.assertEqual(s["headers"][":status"], "200")
        self.assertEqual(c.get("/get")[0], 200)  # and the connection goes on
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)
        c.close()
        self.d.wait_metric("awaitd_h2_connections_open", lambda v: v == 0)
        self.d.wait_metric("awaitd_timers_pending", lambda v: v <= base)

    def test_reset_cancels_long_poll_reserve(self):
        c = H2Client(self.d.port)
        self.assertEqual(c.response(c.request("PUT", "/queues/h2poll"))["headers"][":status"],
                         "201")
        sid = c.request("POST", "/queues/h2poll/reserve?wait=15", body=b"")
        stats = lambda: json.loads(self.d.get("/queues/h2poll").body)  # noqa: E731
        deadline = time.monotonic() + 5
        while stats()["getters"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(stats()["getters"], 1)
        c.reset(sid)
        deadline = time.monotonic() + 5
        while stats()["getters"] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(stats()["getters"], 0)
        c.close()

    def test_close_cancels_every_stream(self):
        c = H2Client(self.d.port)
        for _ in range(50):
            c.request("GET", "/delay/15")
        c.request("GET", "/drip?duration=15&numbytes=5")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 51)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 51)
        c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 0)
        self.d.wait_metric("awaitd_h2_connections_open", lambda v: v == 0)

    def test_stream_not_read_does_not_block_others(self):
        c = H2Client(self.d.port, manual_flow=True)
        big = c.request("GET", "/bytes/1000000")
        c.pump(lambda: len(c.streams[big]["data"]) >= 65535, timeout=10)
        self.assertEqual(len(c.streams[big]["data"]), 65535)  # its window, no more
        # Other streams share the connection window: give it room (not the stream's).
        c.conn.increment_flow_control_window(1 << 24)
        c.flush()
        for _ in range(5):
            status, _, body = c.get("/get")
            self.assertEqual(status, 200)
        self.assertFalse(c.streams[big]["ended"])
        c.reset(big)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 0)
        c.close()

    def test_random_resets_and_closes_leave_nothing_behind(self):
        # Every kind of pending answer, reset or dropped with its connection
        # at random moments (fixed seed): nothing stays pending, nothing leaks.
        import random
        rnd = random.Random(15)
        paths = ["/delay/0.3", "/delay/5", "/drip?duration=2&numbytes=10", "/stream/50",
                 "/bytes/300000", "/sse?count=3", "/get", "/post", "/queues/h2chaos/reserve?wait=3",
                 "/timers/1?wait=2"]
        self.d.get("/get")
        self.assertIn(self.d.http("PUT", "/queues/h2chaos").status, (200, 201))
        for round_ in range(6):
            conns = [H2Client(self.d.port) for _ in range(3)]
            sids = []
            for _ in range(60):
                c = rnd.choice(conns)
                path = rnd.choice(paths)
                method = "POST" if path.startswith(("/post", "/queues")) else "GET"
                sids.append((c, c.request(method, path, body=b"x" if method == "POST" else None)))
            for c, sid in rnd.sample(sids, 25):
                if not c.eof:
                    c.pump(lambda: False, timeout=rnd.random() * 0.05)
                    try:
                        c.reset(sid)
                    except Exception:  # noqa: BLE001 - the stream may have ended already
                        pass
            rnd.choice(conns).close()
            for c in conns:
                try:
                    c.pump(lambda: False, timeout=0.2)
                except OSError:
                    pass
                c.close()
        self.d.wait_metric("awaitd_h2_connections_open", lambda v: v == 0)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 0)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)
        stats = json.loads(self.d.get("/queues/h2chaos").body)
        self.assertEqual(stats["getters"], 0, stats)
        self.assertEqual(self.d.get("/get").status, 200)

    def test_body_too_large_is_413(self):
        c = H2Client(self.d.port)
        sid = c.request("POST", "/post", body=b"x" * (1024 * 1024 + 1))
        s = c.response(sid, timeout=20)
        self.assertEqual(s["headers"][":status"], "413")
        self.assertEqual(c.get("/get")[0], 200)
        c.close()


class H2AccessLogTest(DaemonTestCase):
    config = {"log": {"access": "access.log"}, "probe": {"max_delay": "20s"}}

    def test_lines_say_http2_and_499_for_a_reset(self):
        c = H2Client(self.d.port)
        self.assertEqual(c.get("/get?log=h2")[0], 200)
        sid = c.request("GET", "/delay/15?log=reset")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1)
        c.reset(sid)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)
        c.close()
        path = os.path.join(self.d.tmpdir, "access.log")
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline:
            with open(path) as f:
                lines = f.read().splitlines()
            if any("log=reset" in l for l in lines):
                break
            time.sleep(0.05)
        get = [l for l in lines if "log=h2" in l]
        reset = [l for l in lines if "log=reset" in l]
        self.assertEqual(len(get), 1, lines)
        self.assertIn('"GET /get?log=h2 HTTP/2.0" 200 ', get[0])
        self.assertEqual(len(reset), 1, lines)
        self.assertIn('"GET /delay/15?log=reset HTTP/2.0" 499 ', reset[0])


class H2PingTest(DaemonTestCase):
    config = {"http2": {"ping_timeout": "1s"}, "probe": {"max_delay": "20s"}}

    def test_silent_peer_is_pinged_then_closed(self):
        before = closes(self.d, "ping_timeout")
        r = RawH2(self.d.port).start()
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, req_block("/delay/15")))
        t0 = time.monotonic()
        ping = r.read_frames(lambda f: f[0] == PING and not f[1] & ACK, timeout=5)
        self.assertIsNotNone(ping, "no PING while a stream waited on a silent connection")
        self.assertGreater(time.monotonic() - t0, 0.8)
        r.read_frames(lambda f: False, timeout=5)  # not answered: closed
        self.assertTrue(r.eof)
        self.assertLess(time.monotonic() - t0, 5)
        r.close()
        self.assertEqual(closes(self.d, "ping_timeout"), before + 1)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)

    def test_answering_peer_keeps_its_stream(self):
        c = H2Client(self.d.port)  # python3-h2 answers PINGs
        t0 = time.monotonic()
        status, _, _ = c.get("/delay/3.5")
        self.assertEqual(status, 200)
        self.assertGreater(time.monotonic() - t0, 3.4)
        c.close()


class H2FloodTest(DaemonTestCase):
    """Each attack on its own connection, a bystander served meanwhile."""

    config = {"server": {"write_timeout": "1s", "body_timeout": "1s"},
              "probe": {"max_delay": "20s"}, "http2": {"idle_timeout": "1s"}}

    def attack(self, reason, fn, code=ENHANCE_YOUR_CALM):
        before = closes(self.d, reason)
        with Bystander(self.d.port) as b:
            r = RawH2(self.d.port).start()
            fn(r)
            got = r.goaway(timeout=15)
            r.close()
        self.assertEqual(got, code, "GOAWAY code for %s" % reason)
        self.assertEqual(b.failed, [], "the bystander failed during %s" % reason)
        self.assertGreater(b.ok, 0)
        self.d.wait_metric('awaitd_h2_closes_total{reason="%s"}' % reason,
                           lambda v: v == before + 1)
        self.d.wait_metric("awaitd_h2_connections_open", lambda v: v == 0)
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0)

    def test_rapid_reset(self):
        def fn(r):
            enc = hpack.Encoder()
            out = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, sid,
                                 req_block("/delay/10", enc=enc)) +
                           frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
                           for sid in range(1, 2 * 5000, 2))
            r.send(out)
        self.attack("rapid_reset", fn)

    def test_continuation_flood(self):
        def fn(r):
            block = req_block("/get")
            out = frame(HEADERS, 0, 1, block[:3])
            out += b"".join(frame(CONTINUATION, 0, 1, b"") for _ in range(200))
            r.send(out)
        self.attack("continuation", fn)

    def test_hpack_bomb(self):
        def fn(r):
            enc = hpack.Encoder()
            block = req_block("/get", extra=[("x-bomb", "a" * 4000)] * 64, enc=enc)
            self.assertLess(len(block), 5000)  # 64 x 4 KB decoded from about 4 KB sent
            r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        self.attack("header_list", fn)

    def test_settings_flood(self):
        self.attack("settings", lambda r: r.send(frame(SETTINGS, 0, 0) * 1000))

    def test_ping_flood(self):
        self.attack("ping", lambda r: r.send(frame(PING, 0, 0, b"12345678") * 1000))

    def test_empty_data_flood(self):
        def fn(r):
            r.send(frame(HEADERS, END_HEADERS, 1, req_block("/post", "POST")) +
                   frame(DATA, 0, 1) * 1000)
        self.attack("empty_data", fn)

    def test_window_update_overflow(self):
        self.attack("flow_control",
                    lambda r: r.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff))),
                    code=FLOW_CONTROL_ERROR)

    def test_idle_connection_gets_goaway(self):
        before = self.d.metric('awaitd_timeouts_total{kind="keepalive"}')
        r = RawH2(self.d.port).start()
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, req_block("/delay/1.5")))
        t0 = time.monotonic()
        # Not idle while a stream waits (1.5 s > idle_timeout), then idle for 1 s.
        self.assertEqual(r.goaway(), NO_ERROR)
        took = time.monotonic() - t0
        self.assertIsNotNone(r.read_frames(lambda f: f[0] == DATA and f[2] == 1, timeout=0))
        r.close()
        self.assertGreater(took, 2.3)
        self.assertLess(took, 6)
        self.assertEqual(self.d.metric('awaitd_timeouts_total{kind="keepalive"}'), before + 1)

    def test_request_that_never_completes(self):
        # HEADERS without END_STREAM, then nothing: body_timeout, as HTTP/1.1.
        before = self.d.metric('awaitd_timeouts_total{kind="body"}')
        r = RawH2(self.d.port).start()
        t0 = time.monotonic()
        r.send(frame(HEADERS, END_HEADERS, 1, req_block("/post", "POST")))
        self.assertEqual(r.goaway(), NO_ERROR)
        self.assertLess(time.monotonic() - t0, 5)
        r.close()
        self.assertEqual(self.d.metric('awaitd_timeouts_total{kind="body"}'), before + 1)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 0)

    def test_client_that_never_reads(self):
        before = closes(self.d, "stalled")
        with Bystander(self.d.port) as b:
            r = RawH2(self.d.port, rcvbuf=4096)
            # The largest windows, then downloads that are never read.
            r.start(struct.pack(">HI", 4, 0x7fffffff))
            r.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff - 65535)))
            enc = hpack.Encoder()
            r.send(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, sid,
                                  req_block("/bytes/1000000", enc=enc))
                            for sid in range(1, 41, 2)))
            self.d.wait_metric('awaitd_h2_closes_total{reason="stalled"}',
                               lambda v: v == before + 1, timeout=15)
            r.close()
        self.assertEqual(b.failed, [])
        self.d.wait_metric("awaitd_h2_connections_open", lambda v: v == 0)
        self.d.wait_metric("awaitd_h2_streams_open", lambda v: v == 0)


class H2ConformanceTest(DaemonTestCase):
    """RFC 9113's MUSTs, one raw connection each."""

    def conn(self):
        r = RawH2(self.d.port).start()
        self.addCleanup(r.close)
        return r

    def test_bad_preface_is_http11_error(self):
        # Not the preface: the HTTP/1.1 engine answers (505 for the version).
        out = self.d.raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 "), out)

    def test_preface_must_be_followed_by_settings(self):
        r = RawH2(self.d.port)
        self.addCleanup(r.close)
        r.send(PREFACE + frame(PING, 0, 0, b"12345678"))
        self.assertEqual(r.goaway(), PROTOCOL_ERROR)

    def test_frame_size_error(self):
        r = self.conn()
        r.send(frame(HEADERS, END_HEADERS, 1, req_block("/post", "POST")) +
               frame(DATA, 0, 1, b"x" * 20000))  # past SETTINGS_MAX_FRAME_SIZE 16384
        self.assertEqual(r.goaway(), FRAME_SIZE_ERROR)

    def test_even_stream_id_is_a_connection_error(self):
        r = self.conn()
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 2, req_block()))
        self.assertEqual(r.goaway(), PROTOCOL_ERROR)

    def test_stream_ids_must_increase_up_to_the_last(self):
        # The largest stream id is served; after it, a smaller one opens no
        # stream. (nghttp2 ignores such a header block rather than answer
        # the connection error RFC 9113 5.1.1 asks for: it may be a late
        # trailer for a stream it reset. Either way nothing is dispatched.)
        r = self.conn()
        enc = hpack.Encoder()
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 0x7fffffff, req_block(enc=enc)))
        h = r.read_frames(lambda f: f[0] == HEADERS and f[2] == 0x7fffffff)
        self.assertIsNotNone(h)
        before = self.d.metric("awaitd_h2_streams_total")
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 5, req_block(enc=enc)))
        self.assertIsNone(r.read_frames(lambda f: f[2] == 5, timeout=1))
        self.assertEqual(self.d.metric("awaitd_h2_streams_total"), before)

    def test_data_on_idle_stream_is_a_connection_error(self):
        r = self.conn()
        r.send(frame(DATA, END_STREAM, 5, b"x"))
        self.assertEqual(r.goaway(), PROTOCOL_ERROR)

    def stream_error(self, headers):
        r = self.conn()
        enc = hpack.Encoder()
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, enc.encode(headers)))
        code = r.rst(1)
        # The connection goes on after a stream error.
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, req_block(enc=enc)))
        ok = r.read_frames(lambda f: f[0] == HEADERS and f[2] == 3)
        r.close()
        self.assertIsNotNone(ok, "no answer on stream 3 after the stream error")
        return code

    def test_pseudo_header_rules(self):
        base = [(":method", "GET"), (":scheme", "http"), (":path", "/get"),
                (":authority", "localhost")]
        self.assertEqual(self.stream_error(base[:2] + base[3:]), PROTOCOL_ERROR)  # no :path
        self.assertEqual(self.stream_error([base[0], ("accept", "*/*")] + base[1:]),
                         PROTOCOL_ERROR)  # a pseudo-header after a regular field
        self.assertEqual(self.stream_error(base + [(":method", "GET")]), PROTOCOL_ERROR)
        self.assertEqual(self.stream_error(base + [(":status", "200")]), PROTOCOL_ERROR)
        self.assertEqual(self.stream_error(base + [("Accept", "*/*")]), PROTOCOL_ERROR)

    def test_connection_specific_fields_refused(self):
        base = [(":method", "GET"), (":scheme", "http"), (":path", "/get"),
                (":authority", "localhost")]
        for field in [("connection", "keep-alive"), ("keep-alive", "5"),
                      ("transfer-encoding", "chunked"), ("upgrade", "h2c"), ("te", "gzip")]:
            self.assertEqual(self.stream_error(base + [field]), PROTOCOL_ERROR, field)
        # te: trailers is the one allowed value.
        c = H2Client(self.d.port)
        self.assertEqual(c.get("/get", headers=[("te", "trailers")])[0], 200)
        c.close()

    def test_answers_carry_no_connection_fields(self):
        c = H2Client(self.d.port)
        status, headers, _ = c.get("/stream/2")  # chunked on HTTP/1.1
        self.assertEqual(status, 200)
        for name in ("connection", "transfer-encoding", "keep-alive"):
            self.assertNotIn(name, headers)
        c.close()


class H2TlsTest(test_tls.TlsDaemonCase):
    extra_config = "[probe]\nmax_delay = 10s\n"

    def test_curl_http2_over_tls(self):
        p = self.curl_tls("--http2", "-w", "\n%{http_version} %{http_code}", self.tls_url("/get"))
        self.assertEqual(p.returncode, 0, p.stderr)
        body, _, tail = p.stdout.decode().rpartition("\n")
        self.assertEqual(tail, "2 200")
        self.assertEqual(json.loads(body)["url"], self.tls_url("/get"))
        p = self.curl_tls("--http1.1", "-w", "\n%{http_version}", self.tls_url("/get"))
        self.assertEqual(p.stdout.decode().rpartition("\n")[2], "1.1")

    def test_httpx_over_tls(self):
        ctx = ssl.create_default_context(cafile=test_tls.PKI.ca["cert"])
        with httpx.Client(http2=True, verify=ctx, timeout=10) as c:
            r = c.get(self.tls_url("/get"))
            self.assertEqual((r.status_code, r.http_version), (200, "HTTP/2"))
            r = c.post(self.tls_url("/post"), data={"a": "b"})
            self.assertEqual(r.json()["form"], {"a": "b"})
            t0 = time.monotonic()
            r = c.get(self.tls_url("/delay/0.2"))
            self.assertEqual(r.status_code, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.2)

    def test_h2_client_over_tls_many_streams(self):
        ctx = ssl.create_default_context(cafile=test_tls.PKI.ca["cert"])
        ctx.set_alpn_protocols(["h2"])
        c = H2Client(self.tls_port, ctx=ctx)
        sids = [c.request("GET", "/delay/0.5") for _ in range(50)]
        t0 = time.monotonic()
        for sid in sids:
            self.assertEqual(c.response(sid)["headers"][":status"], "200")
        self.assertLess(time.monotonic() - t0, 5)
        status, _, data = c.get("/bytes/500000", timeout=20)
        self.assertEqual((status, len(data)), (200, 500000))
        c.close()

    def test_node_http2_over_tls(self):
        p = run([NODE, "-e", NODE_CLIENT, "https://localhost:%d" % self.tls_port, "/get", "3",
                 test_tls.PKI.ca["cert"]], timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual((j["statuses"], j["alpn"]), ([200] * 3, "h2"))

    def test_nghttp_over_tls(self):
        p = run([NGHTTP, "-n", "-s", self.tls_url("/get")])
        self.assertEqual(p.returncode, 0, p.stderr)


class H2OffTest(test_tls.TlsDaemonCase):
    tls_extra = {}
    extra_config = "[http2]\nenabled = off\n"

    def test_no_h2_when_off(self):
        rc, out = test_tls.s_client(self.tls_port, "-alpn", "h2", stdin=b"")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no application protocol", out)
        rc, out = test_tls.s_client(self.tls_port, "-alpn", "h2,http/1.1", stdin=b"")
        self.assertIn("ALPN protocol: http/1.1", out)
        out = self.d.raw(PREFACE + frame(SETTINGS, 0, 0))
        self.assertTrue(out.startswith(b"HTTP/1.1 "), out)
        p = self.d.curl("-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                        "{url}/get")
        self.assertEqual(p.stdout.decode(), "1.1 200", p.stderr)
        self.assertEqual(self.d.metric("awaitd_h2_connections_total"), 0)


class H2ReloadTest(unittest.TestCase):
    def test_listener_removed_by_reload_sends_goaway(self):
        a, b = free_port(), free_port()
        d = Daemon({"server": {"listen": ["%s:%d" % (HOST, a), "%s:%d" % (HOST, b)]},
                    "probe": {"max_delay": "10s"}}).start()
        try:
            on_a = RawH2(a).start()
            on_b = RawH2(b).start()
            for r in (on_a, on_b):
                r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, req_block("/delay/1")))
            d.wait_metric("awaitd_delays_pending", lambda v: v == 2)
            text = open(d.conf_path).read()
            with open(d.conf_path, "w") as f:
                f.write(text.replace("listen = %s:%d\n" % (HOST, b), "", 1))
            d.signal(signal.SIGHUP)
            # b's connection: GOAWAY (no error, last stream 1), then stream 1's answer.
            g = on_b.read_frames(lambda f: f[0] == GOAWAY, timeout=5)
            self.assertIsNotNone(g, "no GOAWAY on the removed listener's connection")
            self.assertEqual(struct.unpack(">II", g[3][:8]), (1, NO_ERROR))
            self.assertIsNotNone(on_b.read_frames(lambda f: f[2] == 1 and f[1] & END_STREAM,
                                                  timeout=5))
            # a's connection is untouched: its answer, and no GOAWAY.
            self.assertIsNotNone(on_a.read_frames(lambda f: f[2] == 1 and f[1] & END_STREAM,
                                                  timeout=5))
            self.assertFalse(any(f[0] == GOAWAY for f in on_a.frames))
            with self.assertRaises(OSError):
                socket.create_connection((HOST, b), timeout=2).close()
            on_a.close()
            on_b.close()
            d.stop()
        finally:
            d._kill()
            d.cleanup()


class H2DrainTest(unittest.TestCase):
    def test_sigterm_sends_goaway_and_finishes_streams(self):
        d = Daemon({"probe": {"max_delay": "10s"}}).start()
        try:
            r = RawH2(d.port).start()
            r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, req_block("/delay/1")))
            d.wait_metric("awaitd_delays_pending", lambda v: v == 1)
            d.proc.send_signal(signal.SIGTERM)
            # GOAWAY (no error, last stream 1) first, then stream 1's answer, whole.
            g = r.read_frames(lambda f: f[0] == GOAWAY, timeout=5)
            self.assertIsNotNone(g)
            self.assertEqual(struct.unpack(">II", g[3][:8]), (1, NO_ERROR))
            h = r.read_frames(lambda f: f[0] == HEADERS and f[2] == 1, timeout=5)
            self.assertIsNotNone(h)
            self.assertIn((":status", "200"), hpack.Decoder().decode(h[3]))
            end = r.read_frames(lambda f: f[2] == 1 and f[1] & END_STREAM, timeout=5)
            self.assertIsNotNone(end)
            self.assertEqual(d.wait(10), 0)
            r.close()
        finally:
            d._kill()
            d.cleanup()


if __name__ == "__main__":
    main()
