"""Shared harness for awaitd's end-to-end tests (stdlib unittest only).

Environment (set by `make check`; defaults work from a source checkout):
  AWAITD         absolute path to the daemon binary (default <srcdir>/src/awaitd);
                 point it at a -fsanitize=address,undefined build to have every
                 test also check for memory errors (stderr is checked at stop)
  AWAITD_SRCDIR  the source tree (default: two levels above this file)
  AWAITD_TEST_MALLOC_CHECK=0  do not run the daemon with glibc's
                 MALLOC_PERTURB_ (see MALLOC_CHECK_ENV)

Every wait here is bounded: sockets have timeouts, processes are waited on
with timeouts, and polling loops have deadlines.
"""

import http.client
import json
import itertools
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HOST = "127.0.0.1"
SRCDIR = os.environ.get("AWAITD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
AWAITD = os.environ.get("AWAITD") or os.path.join(SRCDIR, "src", "awaitd")
CURL = shutil.which("curl") or "/usr/bin/curl"

# Lines in the daemon's stderr that mean a memory or UB error.
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error",
                      "ERROR: ThreadSanitizer", "WARNING: MemorySanitizer")

# Unless AWAITD_TEST_MALLOC_CHECK=0: glibc fills freed (and fresh malloc'd)
# memory with a pattern, and the per-thread cache that skips that fill is
# off, so a use after free or an uninitialised read misbehaves at once even
# in a build without sanitizers.
MALLOC_CHECK_ENV = {"MALLOC_PERTURB_": "165", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


PORT_RESERVE_DIR = os.path.join(tempfile.gettempdir(), "awaitd-test-ports")
PORT_RESERVE_SECONDS = 600


def _test_port_ranges():
    """The ports free_port picks from: outside the kernel's ephemeral range
    (/proc/sys/net/ipv4/ip_local_port_range), whose ports the kernel hands out
    as source ports of outgoing connections and to bind(port 0), and above
    the well-known services when there is room."""
    lo, hi = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        pass
    below = (10000 if lo - 10000 >= 2000 else 1024, lo - 1)
    return [r for r in (below, (hi + 1, 65535)) if r[1] - r[0] >= 100] or [(1024, 65535)]


def _reserve_port(port):
    """Claim port for this process for PORT_RESERVE_SECONDS: test runs on one
    machine at once (make check -j, other worktrees) do not hand out the same
    port in the moment between free_port's check and the server's bind."""
    os.makedirs(PORT_RESERVE_DIR, exist_ok=True)
    path = os.path.join(PORT_RESERVE_DIR, str(port))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        return True
    except FileExistsError:
        try:
            if time.time() - os.stat(path).st_mtime < PORT_RESERVE_SECONDS:
                return False
            os.utime(path)  # an old claim: ours now
            return True
        except OSError:
            return False
    except OSError:
        return True  # no reservation directory: the bind check alone


def free_port():
    """A TCP port free a moment ago on 127.0.0.1, and not handed out by
    another free_port on this machine in the last PORT_RESERVE_SECONDS.

    Chosen at random outside the kernel's ephemeral range (read from /proc,
    32768-60999 by default): after a test with thousands of connections,
    tens of thousands of ephemeral ports sit in TIME_WAIT and bind(port 0)
    can fail with EADDRINUSE, and a port from that range can be taken as
    the source port of an outgoing connection before the server binds it;
    ports outside it stay free."""
    import random
    ranges = _test_port_ranges()
    sizes = [r1 - r0 + 1 for r0, r1 in ranges]
    for _ in range(500):
        r0, r1 = random.choices(ranges, weights=sizes)[0]
        port = random.randint(r0, r1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        if _reserve_port(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request_from(source, port, path="/get", host=HOST):
    """GET path on a new connection bound to the address source, with
    Connection: close; every byte until the close (or a reset)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind((source, 0))
        s.connect((host, port))
        return get_until_close(s, path)
    finally:
        s.close()


def get_until_close(s, path="/get"):
    """GET path on the connected socket s with Connection: close; every
    byte until the close (or a reset)."""
    s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
    data = b""
    while True:
        try:
            got = s.recv(65536)
        except ConnectionResetError:
            break
        if not got:
            break
        data += got
    return data


def sanitizer_errors(text):
    """The lines of text that report a sanitizer error, joined; '' if none."""
    return "\n".join(line for line in text.splitlines()
                     if any(p in line for p in SANITIZER_PATTERNS))


def raise_nofile_limit():
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit (children inherit it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- HTTP responses ------------------------------------------------------------

class Response:
    """One HTTP response: status, reason, headers (list of pairs), body bytes."""

    def __init__(self, status, reason, headers, body, version="HTTP/1.1", raw_head=b""):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return self.header(name) is not None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return "<Response %s %s %r %r>" % (self.status, self.reason, self.headers, body)


class IncompleteResponse(Exception):
    pass


def _parse_head(head):
    lines = head.split(b"\r\n")
    m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ValueError("bad status line: %r" % lines[0])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, sep, v = line.partition(b":")
        if not sep:
            raise ValueError("bad header line: %r" % line)
        headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
    return (m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1"), headers)


def _decode_chunked(buf, pos):
    """Decode a chunked body starting at buf[pos]; (body, end) or raise IncompleteResponse."""
    body = bytearray()
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            raise IncompleteResponse()
        size_text = buf[pos:nl].split(b";", 1)[0].strip()
        size = int(size_text, 16)
        pos = nl + 2
        if size == 0:
            # trailers until an empty line
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    raise IncompleteResponse()
                line = buf[pos:nl]
                pos = nl + 2
                if not line:
                    return bytes(body), pos
        if len(buf) < pos + size + 2:
            raise IncompleteResponse()
        body += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        pos += size + 2


def parse_response(buf, head_request=False, eof=False):
    """Parse one response at the start of buf. Returns (Response, bytes consumed).
    Raises IncompleteResponse when buf does not hold a whole response yet (with
    eof=True, a body delimited by the close is taken as complete)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        raise IncompleteResponse()
    raw_head = bytes(buf[:end])
    version, status, reason, headers = _parse_head(raw_head)
    pos = end + 4
    r = Response(status, reason, headers, b"", version, raw_head)
    if head_request or status < 200 or status in (204, 304):
        return r, pos
    te = r.header("Transfer-Encoding")
    if te is not None and te.lower().endswith("chunked"):
        r.body, pos = _decode_chunked(buf, pos)
        return r, pos
    cl = r.header("Content-Length")
    if cl is not None:
        n = int(cl)
        if len(buf) < pos + n:
            raise IncompleteResponse()
        r.body = bytes(buf[pos:pos + n])
        return r, pos + n
    if not eof:
        raise IncompleteResponse()
    r.body = bytes(buf[pos:])
    return r, len(buf)


def parse_responses(data, head_requests=()):
    """Every response in data (a whole stream read until close). head_requests
    lists, per final (non-1xx) response, whether it answers a HEAD."""
    out = []
    pos = 0
    i = 0
    data = bytes(data)
    while pos < len(data):
        head = head_requests[i] if i < len(head_requests) else False
        r, used = parse_response(data[pos:], head_request=head, eof=True)
        out.append(r)
        pos += used
        if r.status >= 200:
            i += 1
    return out


def recv_all(sock):
    """Everything sock receives until the peer closes (its timeout bounds each read)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class SockConn:
    """What a connection wrapping self.sock does alike, plain or TLS: a
    context manager that closes it, and send() taking str or bytes."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)


class RawConn(SockConn):
    """A plain TCP connection to the daemon, for framing tests."""

    def __init__(self, port, timeout=5.0, host=HOST, rcvbuf=None):
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        if rcvbuf is not None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)

    def _fill(self, deadline):
        """Read once; False on EOF/reset. Raises socket.timeout past deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, head_request=False, timeout=None):
        """The next response (1xx included). Raises socket.timeout, or
        AssertionError when the connection ends before a whole response."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            try:
                r, used = parse_response(self.buf, head_request=head_request, eof=self.eof)
                del self.buf[:used]
                return r
            except IncompleteResponse:
                pass
            if not self._fill(deadline):
                try:
                    r, used = parse_response(self.buf, head_request=head_request, eof=True)
                    del self.buf[:used]
                    return r
                except IncompleteResponse:
                    raise AssertionError("connection closed%s before a whole response; got %r"
                                         % (" (reset)" if self.reset else "", bytes(self.buf)))

    def read_until_close(self, timeout=None):
        """All bytes until EOF. Raises AssertionError if the peer does not close in time."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            raise AssertionError("connection not closed within %.1f s; got %r"
                                 % (timeout if timeout is not None else self.timeout,
                                    bytes(self.buf[:500])))
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_some(self, timeout=0.2):
        """Whatever arrives within timeout (b'' if nothing)."""
        deadline = time.monotonic() + timeout
        try:
            self._fill(deadline)
        except socket.timeout:
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def closed_within(self, timeout):
        """Seconds until the peer closed (EOF or reset), or None if it did not
        within timeout. Bytes received meanwhile stay in self.buf."""
        start = time.monotonic()
        deadline = start + timeout
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            return None
        return time.monotonic() - start


# ---- the daemon ------------------------------------------------------------------

def render_config(sections, extra=""):
    """INI text from {"section": {"key": value or [values]}}."""
    out = []
    for sec, keys in sections.items():
        out.append("[%s]" % sec)
        for k, v in keys.items():
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                out.append("%s = %s" % (k, one))
        out.append("")
    if extra:
        out.append(extra)
    return "\n".join(out) + "\n"


class Daemon:
    """One awaitd process with its own temp config and stderr file."""

    def __init__(self, config=None, extra_config="", binary=None, nofile=None):
        """config: {"section": {"key": value}} overrides; extra_config: raw
        text appended; nofile: RLIMIT_NOFILE for the daemon process."""
        self.nofile = nofile
        self.overrides = {s: dict(v) for s, v in (config or {}).items()}
        self.extra_config = extra_config
        self.binary = binary or AWAITD
        self.proc = None
        self.port = None
        self.tmpdir = None
        self.conf_path = None
        self.stderr_path = None
        self._stderr_file = None
        self.returncode = None

    # -- lifecycle --
    def _write_config(self):
        sections = {"server": {}}
        for sec, keys in self.overrides.items():
            sections.setdefault(sec, {}).update(keys)
        if "listen" not in sections["server"]:
            self.port = free_port()
            sections["server"] = dict([("listen", "%s:%d" % (HOST, self.port))] +
                                      list(sections["server"].items()))
        else:
            first = sections["server"]["listen"]
            first = first[0] if isinstance(first, (list, tuple)) else first
            self.port = int(first.rsplit(":", 1)[1])
        self.config_text = render_config(sections, self.extra_config)
        with open(self.conf_path, "w") as f:
            f.write(self.config_text)

    def start(self, timeout=START_TIMEOUT):
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("%s is not an executable (set AWAITD, or build with scripts/setup)"
                                 % self.binary)
        if self.tmpdir is None:
            self.tmpdir = tempfile.mkdtemp(prefix="awaitd-e2e-")
        self.conf_path = os.path.join(self.tmpdir, "awaitd.conf")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        for attempt in range(3):
            self._write_config()
            self._stderr_file = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen([self.binary, "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                         stderr=self._stderr_file, cwd=self.tmpdir,
                                         env=self._env(),
                                         preexec_fn=self._preexec if self.nofile else None)
            self.returncode = None
            err = self._wait_ready(timeout)
            if err is None:
                return self
            self._kill()
            text = self.stderr()
            # A port taken between free_port() and bind(): try another one.
            if "in use" in text and "listen" not in self.overrides.get("server", {}):
                continue
            self.cleanup()
            raise AssertionError("awaitd did not start (%s); config:\n%s\nstderr:\n%s"
                                 % (err, self.config_text, text))
        text = self.stderr()
        self.cleanup()
        raise AssertionError("awaitd did not start: port in use 3 times; stderr:\n%s" % text)

    @staticmethod
    def _env():
        env = dict(os.environ)
        if env.get("AWAITD_TEST_MALLOC_CHECK", "1") != "0":
            for k, v in MALLOC_CHECK_ENV.items():
                env.setdefault(k, v)
        return env

    def _preexec(self):
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                return "exited with %d" % rc
            try:
                r = self.http("GET", "/health", timeout=1.0)
                if r.status == 200:
                    return None
                last = "GET /health answered %d" % r.status
            except (OSError, http.client.HTTPException) as e:
                last = "GET /health: %s" % e
            time.sleep(0.05)
        return "timeout after %.0f s, last: %s" % (timeout, last)

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc:
            self.returncode = self.proc.poll()
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def check_stderr(self):
        errs = sanitizer_errors(self.stderr())
        if errs:
            raise AssertionError("sanitizer errors in awaitd's stderr:\n%s\nfull stderr:\n%s"
                                 % (errs, self.stderr()[-20000:]))

    def stop(self, timeout=STOP_TIMEOUT, expect_code=0):
        """SIGTERM, wait, check exit code and stderr. Always cleans up."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                raise AssertionError("awaitd had already exited with %d before stop; stderr:\n%s"
                                     % (rc, self.stderr()[-5000:]))
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                self._kill()
                raise AssertionError("awaitd did not exit within %.0f s of SIGTERM; stderr:\n%s"
                                     % (timeout, self.stderr()[-5000:]))
            if expect_code is not None and rc != expect_code:
                raise AssertionError("awaitd exited with %d (expected %d); stderr:\n%s"
                                     % (rc, expect_code, self.stderr()[-5000:]))
            self.check_stderr()
        finally:
            self._kill()
            self.proc = None
            self.cleanup()  # the stderr that matters is in the failure message

    def cleanup(self):
        if self.tmpdir and os.path.isdir(self.tmpdir):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = None

    # -- clients --
    def url(self, path="/"):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        """One request on a fresh connection (http.client). Returns a Response."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            if isinstance(body, str):
                body = body.encode("utf-8")
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read() if method != "HEAD" else b""
            return Response(resp.status, resp.reason, list(resp.getheaders()), data,
                            "HTTP/1.0" if resp.version == 10 else "HTTP/1.1")
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.http("GET", path, **kw)

    def connect(self, timeout=5.0, rcvbuf=None):
        return RawConn(self.port, timeout=timeout, rcvbuf=rcvbuf)

    def raw(self, data, timeout=5.0):
        """Send data on a new connection and return every byte read until the
        daemon closes it or timeout passes (whichever comes first)."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        with RawConn(self.port, timeout=timeout) as c:
            c.send(data)
            deadline = time.monotonic() + timeout
            try:
                while c._fill(deadline):
                    pass
            except socket.timeout:
                pass
            return bytes(c.buf)

    def metrics(self, timeout=5.0):
        """{"name{labels}": float} from GET /metrics."""
        r = self.http("GET", "/metrics", timeout=timeout)
        if r.status != 200:
            raise AssertionError("GET /metrics answered %d: %r" % (r.status, r.body[:300]))
        return parse_metrics(r.text())

    def metric(self, name, default=None):
        return self.metrics().get(name, default)

    def wait_metric(self, name, pred, timeout=5.0, interval=0.05):
        """Poll /metrics until pred(value) holds; returns the value, or raises
        AssertionError with the last value seen."""
        deadline = time.monotonic() + timeout
        value = None
        while True:
            value = self.metrics().get(name)
            if value is not None and pred(value):
                return value
            if time.monotonic() >= deadline:
                raise AssertionError("metric %s did not reach the expected value within %.1f s; "
                                     "last value %r" % (name, timeout, value))
            time.sleep(interval)

    def curl(self, *args, timeout=20.0, input=None):
        """Run the real curl binary; '{url}' in an argument becomes the daemon's base URL."""
        base = "http://%s:%d" % (HOST, self.port)
        argv = [CURL, "--max-time", str(int(timeout))] + [a.replace("{url}", base) for a in args]
        return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout + 5)


_METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*,?)?\})? '
    r'([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|NaN|[-+]?Inf))(?: -?[0-9]+)?$')


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            raise AssertionError("bad Prometheus sample line: %r" % line)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


# ---- test case base ----------------------------------------------------------------

class DaemonTestCase(unittest.TestCase):
    """One daemon per class, started in setUpClass with the class's `config`
    overrides ({"section": {"key": "value"}}) and stopped (exit code and
    stderr checked) in tearDownClass."""

    config = {}
    extra_config = ""
    daemon = None

    @classmethod
    def make_daemon(cls):
        """The class's daemon, started (again after one died in a test)."""
        return Daemon(cls.config, cls.extra_config).start()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = cls.make_daemon()

    @classmethod
    def tearDownClass(cls):
        d, cls.daemon = cls.daemon, None
        if d is not None:
            d.stop()
        super().tearDownClass()

    def tearDown(self):
        d = type(self).daemon
        if d is not None and not d.alive():
            # The daemon died during this test: fail it, and give the tests
            # after it a fresh daemon so one crash is reported once.
            rc = d.proc.poll() if d.proc else None
            text = d.stderr()
            d._kill()
            d.proc = None
            d.cleanup()
            type(self).daemon = self.make_daemon()
            self.fail("awaitd died during this test (exit %r); stderr:\n%s" % (rc, text[-5000:]))
        super().tearDown()

    # -- helpers --
    @property
    def d(self):
        return type(self).daemon

    def assertJsonError(self, resp, status=None):
        """resp is an error answer: the status (if given), a JSON body with an
        "error" string. Returns the parsed body."""
        if status is not None:
            self.assertEqual(resp.status, status, "unexpected status: %r" % resp)
        ctype = resp.header("Content-Type", "")
        self.assertIn("application/json", ctype, "error without a JSON Content-Type: %r" % resp)
        try:
            body = resp.json()
        except ValueError as e:
            self.fail("error body is not JSON (%s): %r" % (e, resp.body))
        self.assertIsInstance(body, dict, resp)
        self.assertIsInstance(body.get("error"), str, "no \"error\" string: %r" % body)
        self.assertTrue(body["error"], "empty error message: %r" % body)
        return body



def journal_daemon(config=None, extra_config="", prefix="awaitd-", fsync="off"):
    """A Daemon (not started) journaling to <a temp dir of its own>/j; the
    dir is removed with the daemon's own files at stop."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    cfg = {s: dict(v) for s, v in (config or {}).items()}
    cfg.setdefault("journal", {}).update({"path": os.path.join(tmp, "j"), "fsync": fsync})
    d = Daemon(cfg, extra_config)
    d.tmpdir = tmp
    return d


class JournalDaemonTestCase(DaemonTestCase):
    """DaemonTestCase whose daemon journals to its own temp dir (journal_daemon)."""

    tmp_prefix = "awaitd-"
    fsync = "off"

    @classmethod
    def make_daemon(cls):
        return journal_daemon(cls.config, cls.extra_config, cls.tmp_prefix, cls.fsync).start()


class PooledJournalTestCase(JournalDaemonTestCase):
    """JournalDaemonTestCase with a thread pool per test for background
    requests (blocking puts, reserves, awaits) and a counter for names."""

    pool_workers = 16

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._names = itertools.count(1)

    def setUp(self):
        super().setUp()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.pool_workers)

    def tearDown(self):
        self.pool.shutdown(wait=True)  # every background request has its own timeout
        super().tearDown()

def main():
    unittest.main(verbosity=2)


if __name__ == "__main__":
    sys.exit("this is the harness; run a test_*.py file")
