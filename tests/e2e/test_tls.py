"""HTTPS end to end: [tls] listeners with a throw-away CA made here with the
openssl command line, and real clients (curl, openssl s_client, Python's ssl
and aiohttp, awaitload).

- every probe and the queue API over HTTPS (curl --cacert);
- the policy: TLS 1.3 and ALPN http/1.1 negotiated, TLS 1.2 with the
  intermediate ciphers only, TLS 1.1 and 1.0 refused, h2 preferred, an unknown protocol refused;
- the article's gather program with aiohttp over HTTPS;
- the handshake deadline, garbage and plain HTTP at the TLS port: closed,
  counted in /metrics by reason, other connections undisturbed;
- pipelining, large bodies both ways, a slow reader (TLS's buffered records);
- session resumption with a ticket;
- SIGHUP with a new certificate while awaitload keeps 500 HTTPS connections
  busy: no request fails, new connections get the new certificate, old ones
  keep working; a bad key at reload keeps the old certificate;
- config errors that name the file; an expired certificate warned about;
- mutual TLS: a client certificate from the CA is served, one from another
  CA or none is refused (and counted);
- a socket named "tls" from systemd becomes an HTTPS listener.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import aiohttp

from awaitd_test import (AWAITD, CURL, HOST, Daemon, DaemonTestCase, SockConn, free_port,
                         parse_metrics, parse_response, IncompleteResponse, raise_nofile_limit,
                         recv_all)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
AWAITLOAD = os.environ.get("AWAITLOAD") or os.path.join(os.path.dirname(AWAITD), "awaitload")
EXEC_LISTEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_listen.py")
NOFILE = raise_nofile_limit()

# Mozilla intermediate, TLS 1.2 (what the server may pick).
INTERMEDIATE_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
}


def run(argv, timeout=60, **kw):
    return subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, **kw)


# ---- a throw-away PKI ----------------------------------------------------------

CA_CNF = """
[ca]
default_ca = ca_here
[ca_here]
dir = %(dir)s
database = %(dir)s/index.txt
new_certs_dir = %(dir)s/newcerts
serial = %(dir)s/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
"""


class Pki:
    """A CA, a second CA, server and client certificates (EC P-256: fast)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="awaitd-tls-pki-")
        self.ca = self.make_ca("ca", "awaitd test CA")
        self.other_ca = self.make_ca("other", "some other CA")
        self.server = self.make_cert("server", self.ca, "localhost", server=True)
        self.server2 = self.make_cert("server2", self.ca, "localhost", server=True)
        self.client = self.make_cert("client", self.ca, "ops", server=False)
        self.stranger = self.make_cert("stranger", self.other_ca, "ops", server=False)
        self.expired = self.make_expired("expired", self.ca)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ok(self, argv):
        p = run(argv)
        if p.returncode != 0:
            raise AssertionError("%s failed: %s" % (" ".join(map(str, argv)), p.stderr.decode()))
        return p

    def key(self, name):
        k = self.path(name + ".key")
        self._ok([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", k])
        return k

    def make_ca(self, name, cn):
        k = self.key(name)
        pem = self.path(name + ".pem")
        self._ok([OPENSSL, "req", "-x509", "-new", "-key", k, "-out", pem, "-days", "30",
                  "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return {"key": k, "cert": pem}

    def _csr(self, name, cn, server):
        k = self.key(name)
        csr = self.path(name + ".csr")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        self._ok([OPENSSL, "req", "-new", "-key", k, "-out", csr, "-subj",
                  "/CN=%s/O=%s" % (cn, name)])
        return k, csr, ext

    def make_cert(self, name, ca, cn, server):
        k, csr, ext = self._csr(name, cn, server)
        pem = self.path(name + ".pem")
        self._ok([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca["cert"], "-CAkey", ca["key"],
                  "-CAcreateserial", "-out", pem, "-days", "30", "-extfile", ext])
        return {"key": k, "cert": pem}

    def make_expired(self, name, ca):
        """openssl ca can set both dates: a certificate that ended in 2021."""
        k, csr, ext = self._csr(name, "localhost", True)
        cadir = self.path("cadb")
        os.makedirs(os.path.join(cadir, "newcerts"), exist_ok=True)
        open(os.path.join(cadir, "index.txt"), "w").close()
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("1000\n")
        cnf = self.path("ca.cnf")
        with open(cnf, "w") as f:
            f.write(CA_CNF % {"dir": cadir})
        pem = self.path(name + ".pem")
        self._ok([OPENSSL, "ca", "-batch", "-config", cnf, "-in", csr, "-out", pem,
                  "-keyfile", ca["key"], "-cert", ca["cert"], "-startdate", "20200101000000Z",
                  "-enddate", "20210101000000Z", "-notext", "-extfile", ext])
        return {"key": k, "cert": pem}

    def der(self, cert):
        with open(cert["cert"]) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


PKI = None


def setUpModule():
    global PKI
    PKI = Pki()


def tearDownModule():
    if PKI:
        PKI.cleanup()


def tls_config(tls_port, cert, extra=None, server=None):
    cfg = {"tls": {"listen": "%s:%d" % (HOST, tls_port), "cert": cert["cert"], "key": cert["key"]}}
    cfg["tls"].update(extra or {})
    if server:
        cfg["server"] = dict(server)
    return cfg


def client_ctx(cert=None, alpn=True):
    ctx = ssl.create_default_context(cafile=PKI.ca["cert"])
    if cert:
        ctx.load_cert_chain(cert["cert"], cert["key"])
    if alpn:
        ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class TlsConn(SockConn):
    """A TLS connection from Python's ssl module, reading whole responses."""

    def __init__(self, port, ctx=None, session=None, timeout=10.0, rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.connect((HOST, port))
        self.sock = (ctx or client_ctx()).wrap_socket(raw, server_hostname="localhost",
                                                      session=session)
        self.buf = bytearray()

    def read_response(self, head=False):
        while True:
            try:
                r, used = parse_response(self.buf, head_request=head)
                del self.buf[:used]
                return r
            except IncompleteResponse:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError("closed before a whole response: %r" % bytes(self.buf[:300]))
                self.buf += chunk

    def request(self, method, path, body=b"", headers=""):
        self.send("%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n%s\r\n"
                  % (method, path, len(body), headers))
        if body:
            self.send(body)
        return self.read_response(head=method == "HEAD")


def s_client(port, *args, stdin=b"", timeout=15):
    """openssl s_client's output (stdout + stderr) and exit code."""
    p = run([OPENSSL, "s_client", "-connect", "%s:%d" % (HOST, port), "-servername", "localhost",
             "-CAfile", PKI.ca["cert"]] + list(args), input=stdin, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


class TlsDaemonCase(DaemonTestCase):
    """A daemon with a [tls] listener on its own port (the plain listener
    stays for /metrics and the harness's health check)."""

    tls_extra = {}
    server_extra = {}

    @classmethod
    def setUpClass(cls):
        cls.tls_port = free_port()
        cls.config = tls_config(cls.tls_port, PKI.server, cls.tls_extra, cls.server_extra)
        super().setUpClass()

    def tls_url(self, path=""):
        return "https://localhost:%d%s" % (self.tls_port, path)

    def curl_tls(self, *args, timeout=20):
        argv = [CURL, "-sS", "--max-time", str(timeout), "--cacert", PKI.ca["cert"],
                "--resolve", "localhost:%d:%s" % (self.tls_port, HOST)] + list(args)
        return run(argv, timeout=timeout + 5)

    def failures(self):
        m = self.d.metrics()
        return {k.split('"')[1]: v for k, v in m.items()
                if k.startswith("awaitd_tls_handshake_failures_total{")}


class TlsTest(TlsDaemonCase):
    server_extra = {"header_timeout": "1s"}
    tls_extra = {"handshake_timeout": "1s"}
    extra_config = "[probe]\nmax_delay = 10s\n"

    def test_every_probe_over_https(self):
        checks = [
            (["{u}/get"], 200, lambda b: self.assertEqual(json.loads(b)["args"], {})),
            # text/plain: curl's default type is a form, which httpbin (and
            # awaitd, issue 14) reads into "form", leaving "data" empty.
            (["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "hello", "{u}/post"], 200,
             lambda b: self.assertEqual(json.loads(b)["data"], "hello")),
            (["-X", "PUT", "-H", "Content-Type: text/plain", "--data-binary", "x" * 50000,
              "{u}/anything/a?b=c"], 200,
             lambda b: self.assertEqual(len(json.loads(b)["data"]), 50000)),
            (["{u}/delay/0.2"], 200, None),
            (["{u}/status/418"], 418, None),
            (["{u}/bytes/300000"], 200, lambda b: self.assertEqual(len(b), 300000)),
            (["{u}/stream/3"], 200, lambda b: self.assertEqual(len(b.splitlines()), 3)),
            (["{u}/drip?duration=0.3&numbytes=7"], 200, lambda b: self.assertEqual(b, b"*" * 7)),
            (["{u}/health"], 200, lambda b: self.assertEqual(json.loads(b)["status"], "ok")),
            (["{u}/metrics"], 200, lambda b: self.assertIn(b"awaitd_tls_handshakes_total", b)),
            (["-I", "{u}/get"], 200, None),
        ]
        for args, status, check in checks:
            with self.subTest(args=args):
                p = self.curl_tls("-o", "-", "-w", "\n%{http_code} %{ssl_verify_result}",
                                  *[a.replace("{u}", self.tls_url()) for a in args])
                self.assertEqual(p.returncode, 0, p.stderr)
                body, _, tail = p.stdout.rpartition(b"\n")
                code, verify = tail.decode().split()
                self.assertEqual((int(code), verify), (status, "0"), p.stdout[-300:])
                if check:
                    check(body)
        # The queue API too: create, put, reserve, ack.
        u = self.tls_url("/queues/tlsq")
        p = self.curl_tls("-X", "PUT", "-o", "/dev/null", "-w", "%{http_code}", u)
        self.assertIn(p.stdout, (b"200", b"201"), p.stderr)
        p = self.curl_tls("-X", "POST", "--data-binary", "job over tls", "-w", "\n%{http_code}",
                          u + "/jobs")
        self.assertTrue(p.stdout.endswith(b"201"), p.stdout)
        p = self.curl_tls("-X", "POST", "-D", "-", u + "/reserve?wait=1")
        self.assertIn(b" 200", p.stdout.split(b"\r\n")[0])
        self.assertTrue(p.stdout.endswith(b"job over tls"), p.stdout)
        job = [l.split(b":", 1)[1].strip().decode() for l in p.stdout.split(b"\r\n")
               if l.lower().startswith(b"job-id:")][0]
        p = self.curl_tls("-X", "POST", "-o", "/dev/null", "-w", "%{http_code}",
                          "%s/jobs/%s/ack" % (u, job))
        self.assertIn(p.stdout, (b"200", b"204"), p.stderr)

    def test_tls13_and_alpn_with_s_client(self):
        rc, out = s_client(self.tls_port, "-alpn", "http/1.1", "-ign_eof",
                           stdin=b"GET /get HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertIn("New, TLSv1.3", out)
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("HTTP/1.1 200 OK", out)

    def test_tls12_uses_intermediate_ciphers_only(self):
        rc, out = s_client(self.tls_port, "-tls1_2", stdin=b"")
        line = [l for l in out.splitlines() if l.startswith("New, TLSv1.2, Cipher is ")]
        self.assertTrue(line, out)
        self.assertIn(line[0].rsplit(" ", 1)[1], INTERMEDIATE_TLS12)
        before = self.failures()["protocol"]
        for weak in ("AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256"):
            rc, out = s_client(self.tls_port, "-tls1_2", "-cipher", weak, stdin=b"")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("Cipher is (NONE)", out)
        self.assertEqual(self.failures()["protocol"], before + 3)

    def test_tls11_and_tls10_refused(self):
        before = self.failures()["protocol"]
        for flag in ("-tls1_1", "-tls1"):
            # The client's own policy would not even offer them: lower it, so
            # the server is what refuses.
            rc, out = s_client(self.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0", stdin=b"")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("alert protocol version", out)
        self.assertEqual(self.failures()["protocol"], before + 2)

    def test_alpn_prefers_h2_and_refuses_unknown(self):
        # [http2] is on by default (issue 15): h2 is chosen when offered;
        # with it off, an h2-only client is refused (test_http2.py).
        rc, out = s_client(self.tls_port, "-alpn", "h2", stdin=b"")
        self.assertIn("ALPN protocol: h2", out)
        rc, out = s_client(self.tls_port, "-alpn", "http/1.1,h2", stdin=b"")
        self.assertIn("ALPN protocol: h2", out)
        rc, out = s_client(self.tls_port, "-alpn", "spdy/3", stdin=b"")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no application protocol", out)

    def test_article_gather_with_aiohttp(self):
        base = self.tls_url()
        ctx = client_ctx(alpn=False)

        async def fetch(session, delay):
            async with session.get("%s/delay/%s" % (base, delay)) as r:
                return r.status, await r.json()

        async def main():
            timeout = aiohttp.ClientTimeout(total=20)
            conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
            async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
                t0 = time.monotonic()
                seq = [await fetch(session, 0.5), await fetch(session, 1.0)]
                t_seq = time.monotonic() - t0
                t0 = time.monotonic()
                conc = await asyncio.gather(fetch(session, 1), fetch(session, 2), fetch(session, 1))
                t_conc = time.monotonic() - t0
                many = await asyncio.gather(*(fetch(session, 1) for _ in range(100)))
                return seq, t_seq, conc, t_conc, many

        seq, t_seq, conc, t_conc, many = asyncio.run(main())
        for status, body in seq + list(conc) + list(many):
            self.assertEqual(status, 200)
            self.assertIn("/delay/", body["url"])
        self.assertGreaterEqual(t_seq, 1.5)
        self.assertGreaterEqual(t_conc, 2.0)
        self.assertLess(t_conc, 3.0, "gather of 1 s, 2 s, 1 s over HTTPS took %.2f s" % t_conc)

    def test_silent_client_closed_at_handshake_deadline(self):
        before = self.failures()["timeout"]
        with socket.create_connection((HOST, self.tls_port), timeout=10) as silent:
            t0 = time.monotonic()
            # Meanwhile other clients are served as usual.
            with TlsConn(self.tls_port) as c:
                self.assertEqual(c.request("GET", "/get").status, 200)
            silent.settimeout(8)
            try:
                data = silent.recv(100)
            except ConnectionResetError:
                data = b""
            took = time.monotonic() - t0
        self.assertEqual(data, b"")
        self.assertGreaterEqual(took, 0.8)
        self.assertLess(took, 4.0)
        self.assertEqual(self.failures()["timeout"], before + 1)

    def test_garbage_instead_of_client_hello(self):
        before = self.failures()["protocol"]
        other = TlsConn(self.tls_port)
        with socket.create_connection((HOST, self.tls_port), timeout=5) as g:
            g.sendall(bytes(range(7, 250)) * 3)
            g.settimeout(5)
            try:
                while g.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        self.assertEqual(self.failures()["protocol"], before + 1)
        # A plain HTTP request at the TLS port is told so, in plain HTTP.
        with socket.create_connection((HOST, self.tls_port), timeout=5) as p:
            p.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n\r\n")
            p.settimeout(5)
            data = recv_all(p)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertIn(b"plain HTTP request sent to the HTTPS port", data)
        self.assertEqual(self.failures()["protocol"], before + 2)
        # The connection opened before the garbage is undisturbed.
        with other:
            self.assertEqual(other.request("GET", "/get").status, 200)

    def test_pipelining_and_large_bodies(self):
        with TlsConn(self.tls_port) as c:
            c.send("GET /get?i=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                   "GET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n"
                   "GET /get?i=3 HTTP/1.1\r\nHost: a\r\n\r\n")
            rs = [c.read_response() for _ in range(3)]
            self.assertEqual([r.status for r in rs], [200, 204, 200])
            self.assertEqual(rs[2].json()["args"], {"i": "3"})
            body = bytes(range(97, 123)) * 30000  # 780,000 bytes: many records
            r = c.request("POST", "/anything", body)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["data"], body.decode())
            r = c.request("GET", "/bytes/1000000")
            self.assertEqual(len(r.body), 1000000)
            # Many small requests, each its own record, written at once.
            c.send("".join("GET /get?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(200)))
            for i in range(200):
                self.assertEqual(c.read_response().json()["args"], {"n": str(i)})
            # A request behind a pending /delay: answers stay in order.
            c.send("GET /delay/0.3 HTTP/1.1\r\nHost: a\r\n\r\nGET /get?after=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
            self.assertEqual(c.read_response().json()["args"], {"after": "1"})
            # Far more behind a pending answer than one read takes: what OpenSSL
            # holds back must still be read, with no readiness to say so.
            for records in (1, 300):  # one big write; 300 writes, a record each
                reqs = ["GET /get?m=%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(300)]
                c.send("GET /delay/0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
                for k in range(records):
                    c.send("".join(reqs[k::records]) if records == 1 else reqs[k])
                self.assertEqual(c.read_response().status, 200)
                for i in range(300):
                    self.assertEqual(c.read_response().json()["args"], {"m": str(i)})

    def test_slow_reader(self):
        # The daemon's writes block (WANT_WRITE) and resume as the client reads.
        with TlsConn(self.tls_port, rcvbuf=4096) as c:
            c.send("GET /bytes/1000000 HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.5)
            r = c.read_response()
            self.assertEqual(len(r.body), 1000000)
            self.assertEqual(c.request("GET", "/get").status, 200)

    def test_session_resumption_with_a_ticket(self):
        ctx = client_ctx()
        with TlsConn(self.tls_port, ctx) as c:
            self.assertEqual(c.request("GET", "/get").status, 200)  # tickets arrive meanwhile
            session = c.sock.session
            self.assertFalse(c.sock.session_reused)
        self.assertIsNotNone(session)
        before = self.d.metric("awaitd_tls_sessions_resumed_total")
        with TlsConn(self.tls_port, ctx, session=session) as c:
            self.assertEqual(c.request("GET", "/get").status, 200)
            self.assertTrue(c.sock.session_reused)
        self.assertEqual(self.d.metric("awaitd_tls_sessions_resumed_total"), before + 1)

    def test_awaitload_over_https(self):
        p = run([AWAITLOAD, "--json", "--insecure", "-c", "20", "-n", "3000",
                 "https://127.0.0.1:%d/get" % self.tls_port], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out["requests"], 3000)
        self.assertEqual(out["status"]["2xx"], 3000)
        self.assertEqual(sum(out["errors"].values()), 0)
        self.assertEqual(out["tls_handshakes"], 20)
        self.assertGreater(out["handshake_us"]["p50"], 0)
        # New connections each time: a handshake per request, timed apart.
        p = run([AWAITLOAD, "--insecure", "-c", "4", "-n", "40", "-H", "Connection: close",
                 "https://127.0.0.1:%d/get" % self.tls_port], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("handshake   p50", p.stdout.decode())
        # A self-signed (to awaitload) server without --insecure: a clear error.
        p = run([AWAITLOAD, "-c", "2", "-n", "10", "https://127.0.0.1:%d/get" % self.tls_port])
        self.assertEqual(p.returncode, 1)
        self.assertIn("certificate verify failed", p.stderr.decode())

    def test_metrics(self):
        m = self.d.metrics()
        self.assertGreater(m["awaitd_tls_certificate_expiry_seconds"], time.time() + 20 * 86400)
        for reason in ("timeout", "protocol", "no_client_cert", "bad_client_cert", "eof", "other"):
            self.assertIn('awaitd_tls_handshake_failures_total{reason="%s"}' % reason, m)
        self.assertIn("awaitd_tls_handshakes_total", m)


class TlsReloadTest(unittest.TestCase):
    """Certificates replaced on disk, then SIGHUP."""

    def setUp(self):
        self.files = tempfile.mkdtemp(prefix="awaitd-tls-live-")
        self.cert = {"cert": os.path.join(self.files, "cert.pem"),
                     "key": os.path.join(self.files, "key.pem")}
        self.install(PKI.server)
        self.tls_port = free_port()
        self.d = Daemon(tls_config(self.tls_port, self.cert)).start()

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            shutil.rmtree(self.files, ignore_errors=True)

    def install(self, src, key=None):
        """Replace cert and key the way a deploy does: write aside, rename over."""
        for what, path in (("cert", self.cert["cert"]), ("key", self.cert["key"])):
            shutil.copyfile(key if (what == "key" and key) else src[what], path + ".new")
            os.rename(path + ".new", path)

    def served_cert(self):
        with TlsConn(self.tls_port) as c:
            return c.sock.getpeercert(binary_form=True)

    def reload(self, expect_ok=True):
        n = self.d.stderr().count("configuration reloaded")
        f = self.d.stderr().count("reload failed")
        self.d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.d.stderr()
            if text.count("configuration reloaded") > n or text.count("reload failed") > f:
                break
            time.sleep(0.05)
        text = self.d.stderr()
        self.assertEqual(text.count("configuration reloaded") > n, expect_ok, text[-3000:])
        return text

    def test_reload_under_load(self):
        self.assertEqual(self.served_cert(), PKI.der(PKI.server))
        old = TlsConn(self.tls_port)
        self.assertEqual(old.request("GET", "/get").status, 200)
        load = subprocess.Popen([AWAITLOAD, "--json", "--insecure", "-c", "500", "-d", "6s",
                                 "--timeout", "5s", "https://127.0.0.1:%d/get" % self.tls_port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 15
            while self.d.metric("awaitd_tls_handshakes_total") < 500 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1)
            self.install(PKI.server2)
            self.reload()
            self.assertEqual(self.served_cert(), PKI.der(PKI.server2))
            out, err = load.communicate(timeout=30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        self.assertEqual(load.returncode, 0, err)
        res = json.loads(out)
        self.assertGreater(res["requests"], 1000)
        self.assertEqual(sum(res["errors"].values()), 0, res)
        self.assertEqual(res["requests"], res["status"]["2xx"], res)
        self.assertEqual(res["reconnects"], 0, res)
        # A connection from before the reload keeps its (old) context.
        with old:
            self.assertEqual(old.request("GET", "/get").status, 200)
            self.assertEqual(old.sock.getpeercert(binary_form=True), PKI.der(PKI.server))

    def test_bad_files_at_reload_keep_the_old_certificate(self):
        self.install(PKI.server2, key=PKI.client["key"])  # a key of another certificate
        text = self.reload(expect_ok=False)
        self.assertIn("%s: [tls] key: the private key does not match the certificate in %s"
                      % (self.cert["key"], self.cert["cert"]), text)
        self.assertEqual(self.served_cert(), PKI.der(PKI.server))
        os.unlink(self.cert["key"])
        text = self.reload(expect_ok=False)
        self.assertIn("%s: [tls] key: cannot read: No such file or directory" % self.cert["key"],
                      text)
        self.assertEqual(self.served_cert(), PKI.der(PKI.server))
        self.install(PKI.server2)
        self.reload()
        self.assertEqual(self.served_cert(), PKI.der(PKI.server2))


class TlsConfigErrorTest(unittest.TestCase):
    """A bad [tls] file stops the start with one line naming it."""

    def start_fails(self, cert, key, extra=""):
        tmp = tempfile.mkdtemp(prefix="awaitd-tls-bad-")
        try:
            conf = os.path.join(tmp, "awaitd.conf")
            with open(conf, "w") as f:
                f.write("[server]\nlisten = %s:%d\n[journal]\npath = %s/j\n[tls]\nlisten = %s:%d\n"
                        "cert = %s\nkey = %s\n%s" % (HOST, free_port(), tmp, HOST, free_port(),
                                                     cert, key, extra))
            p = run([AWAITD, "-c", conf], timeout=20)
            self.assertEqual(p.returncode, 1, p.stderr)
            return p.stderr.decode()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_unreadable_key(self):
        missing = PKI.path("no-such.key")
        err = self.start_fails(PKI.server["cert"], missing)
        self.assertIn("%s: [tls] key: cannot read: No such file or directory" % missing, err)

    def test_key_not_matching(self):
        err = self.start_fails(PKI.server["cert"], PKI.client["key"])
        self.assertIn("%s: [tls] key: the private key does not match the certificate in %s"
                      % (PKI.client["key"], PKI.server["cert"]), err)

    def test_key_given_as_cert(self):
        err = self.start_fails(PKI.server["key"], PKI.server["key"])
        self.assertIn("%s: [tls] cert: no certificate in it" % PKI.server["key"], err)

    def test_encrypted_key(self):
        enc = PKI.path("encrypted.key")
        p = run([OPENSSL, "pkey", "-in", PKI.server["key"], "-aes256", "-passout", "pass:secret",
                 "-out", enc])
        self.assertEqual(p.returncode, 0, p.stderr)
        err = self.start_fails(PKI.server["cert"], enc)
        self.assertIn("%s: [tls] key: the private key is encrypted" % enc, err)

    def test_bad_client_ca(self):
        err = self.start_fails(PKI.server["cert"], PKI.server["key"],
                               "client_ca = %s\n" % PKI.server["key"])
        self.assertIn("%s: [tls] client_ca: no certificate in it" % PKI.server["key"], err)

    def test_expired_certificate_is_a_warning(self):
        port = free_port()
        d = Daemon(tls_config(port, PKI.expired)).start()
        try:
            self.assertIn("%s: [tls] cert: the certificate expired on 2021-01-01" % PKI.expired["cert"],
                          d.stderr())
        finally:
            d.stop()


class MutualTlsTest(TlsDaemonCase):
    @classmethod
    def setUpClass(cls):
        cls.tls_extra = {"client_ca": PKI.ca["cert"]}
        super().setUpClass()

    def test_client_certificate_from_the_ca_is_served(self):
        p = self.curl_tls("--cert", PKI.client["cert"], "--key", PKI.client["key"],
                          "-w", "\n%{http_code}", self.tls_url("/get"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.endswith(b"\n200"), p.stdout)
        with TlsConn(self.tls_port, client_ctx(PKI.client)) as c:
            self.assertEqual(c.request("GET", "/get").status, 200)

    def test_other_ca_or_no_certificate_refused(self):
        before = self.failures()
        p = self.curl_tls("--cert", PKI.stranger["cert"], "--key", PKI.stranger["key"],
                          self.tls_url("/get"))
        self.assertNotEqual(p.returncode, 0, p.stdout)
        p = self.curl_tls(self.tls_url("/get"))
        self.assertNotEqual(p.returncode, 0, p.stdout)
        after = self.failures()
        self.assertEqual(after["bad_client_cert"], before["bad_client_cert"] + 1)
        self.assertEqual(after["no_client_cert"], before["no_client_cert"] + 1)
        # The server asks for certificates from its CA by name.
        rc, out = s_client(self.tls_port, stdin=b"")
        self.assertIn("Acceptable client certificate CA names", out)
        self.assertIn("awaitd test CA", out)


class SocketActivationTest(unittest.TestCase):
    def test_socket_named_tls_is_an_https_listener(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-tls-act-")
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((HOST, 0))
        lsock.listen(64)
        port = lsock.getsockname()[1]
        conf = os.path.join(tmp, "awaitd.conf")
        with open(conf, "w") as f:
            f.write("[journal]\npath = %s/j\n[tls]\ncert = %s\nkey = %s\n"
                    % (tmp, PKI.server["cert"], PKI.server["key"]))
        errf = open(os.path.join(tmp, "stderr"), "wb")
        proc = subprocess.Popen([sys.executable, EXEC_LISTEN, "--fd", "%d:tls" % lsock.fileno(),
                                 "--", AWAITD, "-c", conf], pass_fds=[lsock.fileno()],
                                stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
        lsock.close()
        try:
            deadline = time.monotonic() + 10
            status = None
            while time.monotonic() < deadline and status is None:
                try:
                    with TlsConn(port, timeout=2) as c:
                        status = c.request("GET", "/health").status
                except (OSError, AssertionError):
                    time.sleep(0.1)
            if status != 200:
                with open(os.path.join(tmp, "stderr")) as f:
                    self.fail("no HTTPS answer from the activated socket; stderr:\n" + f.read())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            errf.close()
            with open(os.path.join(tmp, "stderr")) as f:
                text = f.read()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(proc.returncode, 0, text)
        self.assertIn("socket activation, fd 3, TLS", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
