"""/websocket/echo (issue 14), as go-httpbin serves it: RFC 6455 with a real
client (Debian's python3-websockets) for echoes of text, binary and
fragmented messages, ping/pong and the close handshake, and with raw
frames on a socket for what a polite client never sends: unmasked or
reserved frames, bad UTF-8, bad close codes, messages and fragments over
max_message_size / max_fragment_size, frames in the handshake's packet.
A bad handshake is a 400 with a JSON body."""

import asyncio
import base64
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

import websockets

from awaitd_test import DaemonTestCase, HOST, free_port

KEY = base64.b64encode(b"0123456789abcdef").decode()
HANDSHAKE = ("GET /websocket/echo%s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + "\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n")


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    b = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        b += bytes([m | n])
    elif n < 65536:
        b += bytes([m | 126]) + struct.pack(">H", n)
    else:
        b += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return b + payload
    key = os.urandom(4)
    return b + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Raw:
    """A WebSocket client on a plain socket: the handshake, then frames."""

    def __init__(self, port, query="", first=b""):
        self.s = socket.create_connection((HOST, port), timeout=10)
        self.s.sendall((HANDSHAKE % query).encode() + first)
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head.decode("latin-1")

    def _fill(self):
        k = self.s.recv(65536)
        if not k:
            raise EOFError
        self.buf += k

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data):
        self.s.sendall(data)

    def read_frame(self):
        """(fin, opcode, payload) of the next server frame (never masked)."""
        b0, b1 = self._take(2)
        self.assert_unmasked = not (b1 & 0x80)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack(">H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._take(8))[0]
        return bool(b0 & 0x80), b0 & 0x0f, self._take(n)

    def read_close(self):
        """The server's close frame: (code, reason), skipping data frames."""
        while True:
            fin, op, payload = self.read_frame()
            if op == 8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:].decode()

    def eof_within(self, seconds):
        self.s.settimeout(seconds)
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


class WebSocketEchoTest(DaemonTestCase):
    config = {"probe": {"max_bytes": "300000", "max_delay": "3s"}}

    def url(self, query=""):
        return "ws://%s:%d/websocket/echo%s" % (HOST, self.d.port, query)

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 20))

    # ---- a real client ---------------------------------------------------------------

    def test_echo_text_binary_fragmented(self):
        async def go():
            async with websockets.connect(self.url(), max_size=None) as ws:
                await ws.send("héllo, wörld")
                self.assertEqual(await ws.recv(), "héllo, wörld")
                await ws.send(b"\x00\x01\xfe\xff")
                self.assertEqual(await ws.recv(), b"\x00\x01\xfe\xff")
                await ws.send(["frag", "mént", "", "ed"])  # a fragmented text message
                self.assertEqual(await ws.recv(), "fragménted")
                big = os.urandom(150000)  # one frame: at most max_fragment_size (max_bytes / 2)
                await ws.send(big)
                self.assertEqual(await ws.recv(), big)
                big = os.urandom(290000)  # larger, in fragments: back in fragments
                await ws.send([big[:100000], big[100000:200000], big[200000:]])
                self.assertEqual(await ws.recv(), big)
                await ws.send("")
                self.assertEqual(await ws.recv(), "")
        self.run_async(go())

    def test_ping_pong(self):
        async def go():
            async with websockets.connect(self.url()) as ws:
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                await ws.send("after the ping")
                self.assertEqual(await ws.recv(), "after the ping")
        self.run_async(go())

    def test_close_codes_echoed(self):
        async def go(code, reason):
            ws = await websockets.connect(self.url())
            await ws.close(code, reason)
            return ws.close_rcvd.code if ws.close_rcvd else None
        for code in (1000, 1001, 3000, 4001):
            self.assertEqual(self.run_async(go(code, "bye")), code)

    def test_oversize_message_closed_1009(self):
        async def go(query, payload):
            async with websockets.connect(self.url(query), max_size=None) as ws:
                await ws.send(payload)
                with self.assertRaises(websockets.ConnectionClosed) as cm:
                    await ws.recv()
                return cm.exception.rcvd.code
        self.assertEqual(self.run_async(go("?max_message_size=100", "x" * 101)), 1009)
        self.assertEqual(self.run_async(go("?max_message_size=100", ["x" * 60, "y" * 60])), 1009)
        self.assertEqual(self.run_async(go("", b"z" * 300001)), 1009)  # max_bytes

    # ---- raw frames -----------------------------------------------------------------------

    def test_handshake_answer(self):
        w = Raw(self.d.port)
        self.assertEqual(w.status, 101)
        self.assertIn("Upgrade: websocket\r\n", w.head)
        self.assertIn("Connection: Upgrade\r\n", w.head)
        # RFC 6455 1.3's own example key and answer.
        s = socket.create_connection((HOST, self.d.port), timeout=10)
        s.sendall((HANDSHAKE % "").replace(KEY, "dGhlIHNhbXBsZSBub25jZQ==").encode())
        self.assertIn(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", s.recv(4096))
        s.close()
        w.close()

    def test_server_fragments_by_max_fragment_size(self):
        w = Raw(self.d.port, "?max_fragment_size=10&max_message_size=100")
        data = bytes(range(25))
        w.send(b"".join(frame(2 if i == 0 else 0, data[i:i + 5], fin=i == 20)
                        for i in range(0, 25, 5)))
        frames = [w.read_frame() for _ in range(3)]
        self.assertEqual([(f[0], f[1], len(f[2])) for f in frames],
                         [(False, 2, 10), (False, 0, 10), (True, 0, 5)])
        self.assertEqual(b"".join(f[2] for f in frames), bytes(range(25)))
        # A client frame over max_fragment_size: 1002 (go-httpbin).
        w.send(frame(1, b"a" * 11))
        self.assertEqual(w.read_close()[0], 1002)
        self.assertTrue(w.eof_within(5))

    def test_frames_in_the_handshake_packet(self):
        w = Raw(self.d.port, first=frame(1, b"early") + frame(9, b"p"))
        self.assertEqual(w.read_frame(), (True, 1, b"early"))
        self.assertEqual(w.read_frame(), (True, 10, b"p"))
        w.send(frame(8, struct.pack(">H", 1000)))
        self.assertEqual(w.read_close(), (1000, ""))
        self.assertTrue(w.eof_within(5))

    def test_byte_at_a_time(self):
        w = Raw(self.d.port)
        data = frame(1, "slow ünïcode".encode(), fin=False) + frame(10, b"") + frame(0, b"!")
        for i in range(len(data)):
            w.send(data[i:i + 1])
        self.assertEqual(w.read_frame(), (True, 1, "slow ünïcode!".encode()))
        w.close()

    def test_protocol_errors(self):
        cases = [
            (frame(1, b"x", mask=False), 1002),          # clients must mask
            (frame(1, b"x", rsv=0x40), 1002),            # no extension was negotiated
            (frame(3, b""), 1002),                       # reserved opcode
            (frame(9, b"p", fin=False), 1002),           # fragmented control frame
            (frame(0, b"x"), 1002),                      # continuation without a message
            (frame(1, b"a", fin=False) + frame(2, b"b"), 1002),
            (frame(1, b"\xed\xa0\x80"), 1007),           # a surrogate is not UTF-8
            (frame(1, b"\xc3", fin=False) + frame(0, b"("), 1007),
            (frame(8, struct.pack(">H", 1005)), 1002),   # may not be sent
            (frame(8, struct.pack(">H", 999)), 1002),
            (frame(8, b"\x03"), 1002),
            (frame(8, struct.pack(">H", 1000) + b"\xff"), 1007),
        ]
        for data, code in cases:
            with self.subTest(data=data):
                w = Raw(self.d.port)
                w.send(data)
                got, reason = w.read_close()
                self.assertEqual(got, code)
                self.assertTrue(reason)  # says what was wrong
                self.assertTrue(w.eof_within(5))
                w.close()

    def test_bad_handshakes_are_400_json(self):
        good = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": KEY,
                "Sec-WebSocket-Version": "13"}
        for drop, change, query in (("Upgrade", {}, ""), ("Connection", {}, ""),
                                    ("Sec-WebSocket-Key", {}, ""),
                                    (None, {"Sec-WebSocket-Key": "c2hvcnQ="}, ""),
                                    (None, {"Upgrade": "h2c"}, ""),
                                    (None, {}, "?max_message_size=0"),
                                    (None, {}, "?max_fragment_size=300001"),
                                    (None, {}, "?max_fragment_size=20&max_message_size=10")):
            h = dict(good, **change)
            h.pop(drop, None)
            with self.subTest(drop=drop, change=change, query=query):
                self.assertJsonError(self.d.get("/websocket/echo" + query, headers=h), 400)
        r = self.d.get("/websocket/echo", headers=dict(good, **{"Sec-WebSocket-Version": "8"}))
        self.assertJsonError(r, 400)
        self.assertEqual(r.header("Sec-WebSocket-Version"), "13")
        self.assertEqual(self.d.http("POST", "/websocket/echo", body=b"", headers=good).status, 405)
        self.assertEqual(self.d.get("/get").status, 200)

    def test_client_leaving_frees_it(self):
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        w = Raw(self.d.port)
        w.send(frame(2, b"x" * 100, fin=False))  # half a message held
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        w.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=3)

    def test_lifetime_is_max_delay(self):
        w = Raw(self.d.port)
        t0 = time.monotonic()
        self.assertEqual(w.read_close(), (1001, "max_delay reached"))
        self.assertGreaterEqual(time.monotonic() - t0, 2.5)
        self.assertTrue(w.eof_within(5))


class WebSocketTlsTest(DaemonTestCase):
    """wss://: the same takeover on a [tls] listener, where a record may hold
    more than one read takes (bytes pending in TLS, not in the socket)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="awaitd-ws-tls-")
        cls.cert, key = os.path.join(cls.pki, "cert.pem"), os.path.join(cls.pki, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cls.cert,
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        cls.tls_port = free_port()
        cls.config = {"tls": {"listen": "%s:%d" % (HOST, cls.tls_port), "cert": cls.cert,
                              "key": key}}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.pki, ignore_errors=True)

    def test_wss_echo(self):
        ctx = ssl.create_default_context(cafile=self.cert)

        async def go():
            url = "wss://localhost:%d/websocket/echo" % self.tls_port
            async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
                big = os.urandom(200000)
                await ws.send([big[:70000], big[70000:140000], big[140000:]])
                self.assertEqual(await ws.recv(), big)
                for i in range(20):
                    await ws.send("msg %d" % i)
                self.assertEqual([await ws.recv() for _ in range(20)],
                                 ["msg %d" % i for i in range(20)])
                await asyncio.wait_for(await ws.ping(b"x"), 5)
                await ws.close(1000)
                return ws.close_rcvd.code
        self.assertEqual(asyncio.run(asyncio.wait_for(go(), 20)), 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
