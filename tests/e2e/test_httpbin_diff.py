"""Differential test (issue 14): Debian's httpbin (python3-httpbin 0.7.0, its
Flask app under wsgiref on a loopback port) and awaitd get the same
requests; status codes, JSON bodies, fixed bodies and the headers that
matter must agree once what must differ is normalised (host and port,
random nonces and uuids, dates). Where awaitd deliberately differs (see
README, "Where awaitd differs from httpbin"), the case says so and checks
awaitd's side only."""

import os
import re
import subprocess
import sys
import time
import unittest
import urllib.parse

import requests

from awaitd_test import DaemonTestCase, HOST, free_port

HTTPBIN_SERVER = r"""
import sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
from httpbin import app

class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass

make_server(sys.argv[1], int(sys.argv[2]), app, handler_class=Quiet).serve_forever()
"""

# What httpbin's WSGI host adds on its own: wsgiref fills CONTENT_TYPE with
# text/plain when a request has none, and werkzeug echoes it.
MULTI = ("--b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
         "--b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n2\r\n"
         "--b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n"
         "Content-Type: text/plain\r\n\r\nfile text\r\n"
         "--b0undary\r\nContent-Disposition: form-data; name=\"g\"; filename=\"g.bin\"\r\n"
         "Content-Type: image/x-raw\r\n\r\n\xff\xfe\x00raw\r\n"
         "--b0undary--\r\n").encode("latin-1")
MULTI_CT = {"Content-Type": "multipart/form-data; boundary=b0undary"}
FORM_CT = {"Content-Type": "application/x-www-form-urlencoded"}

# (method, path, headers, body, what to compare beyond status and JSON)
#   "body": the bytes must be equal; "hdr:Name": that header must be equal
CASES = [
    ("GET", "/get?a=1&b=2&b=3&flag&e=%C3%A9", {"X-Custom-Thing": "v"}, None, ()),
    ("GET", "/get", {"Origin": "http://o.example"}, None,
     ("hdr:Access-Control-Allow-Origin", "hdr:Access-Control-Allow-Credentials")),
    ("GET", "/get", {}, None, ("hdr:Access-Control-Allow-Origin",)),
    ("GET", "/get", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, None, ()),
    ("GET", "/get?show_env=1", {"X-Forwarded-For": "203.0.113.9", "Via": "1.1 p"}, None, ()),
    ("POST", "/post", {"Content-Type": "application/json"}, b'{"k": [1, 2.5, null, "\\u00e9"]}', ()),
    ("POST", "/post", {"Content-Type": "text/plain"}, b"plain text", ()),
    ("POST", "/post", {"Content-Type": "application/octet-stream"}, b"\xff\x00\x01", ()),
    ("POST", "/post?q=1", FORM_CT, b"a=1&b=x+y&b=z%21&c=", ()),
    ("POST", "/post", MULTI_CT, MULTI, ()),
    ("PUT", "/put", FORM_CT, b"x=1", ()),
    ("PATCH", "/patch", {"Content-Type": "text/plain"}, b"p", ()),
    ("DELETE", "/delete", {}, None, ()),
    ("POST", "/anything/x/y?k=v", MULTI_CT, MULTI, ()),
    ("PUT", "/anything", {"Content-Type": "application/json"}, b'"s"', ()),
    ("GET", "/headers", {"X-A": "1"}, None, ()),
    ("GET", "/ip", {}, None, ()),
    ("GET", "/ip", {"X-Forwarded-For": "198.51.100.1, 10.0.0.2"}, None, ()),
    ("GET", "/user-agent", {"User-Agent": "diff/1.0"}, None, ()),
    ("GET", "/status/200", {}, None, ()),
    ("GET", "/status/201", {}, None, ()),
    ("GET", "/status/204", {}, None, ()),
    ("GET", "/status/302", {}, None, ("hdr:Location",)),
    ("POST", "/status/303", {}, b"", ("hdr:Location",)),
    ("GET", "/status/307", {}, None, ("hdr:Location",)),
    ("GET", "/status/401", {}, None, ("hdr:WWW-Authenticate",)),
    ("GET", "/status/402", {}, None, ("body", "hdr:X-More-Info")),
    ("GET", "/status/406", {}, None, ("hdr:Content-Type",)),
    # /status/407: httpbin 0.7.0 fails with a 500 on Debian's werkzeug; awaitd
    # answers 407 with Proxy-Authenticate (test_httpbin_clients.py).
    ("GET", "/status/418", {}, None, ("body", "hdr:X-More-Info")),
    ("GET", "/status/500:0,503:1", {}, None, ()),
    ("OPTIONS", "/get", {"Origin": "http://o.example", "Access-Control-Request-Headers": "X-T"},
     None, ("body", "hdr:Access-Control-Allow-Origin", "hdr:Access-Control-Allow-Methods",
            "hdr:Access-Control-Max-Age", "hdr:Access-Control-Allow-Headers",
            "hdr:Access-Control-Allow-Credentials")),
    ("OPTIONS", "/post", {}, None, ("body", "hdr:Access-Control-Allow-Origin")),
    ("GET", "/response-headers?X-A=1&Freeform=two+words", {}, None, ("hdr:X-A", "hdr:Freeform")),
    ("GET", "/cookies", {"Cookie": "a=1; b=two; __utma=hidden"}, None, ()),
    ("GET", "/cookies?show_env=1", {"Cookie": "a=1; __utma=shown"}, None, ()),
    ("GET", "/cookies/set?k=v", {}, None, ("hdr:Location", "hdr:Set-Cookie")),
    ("GET", "/cookies/set/name/val", {}, None, ("hdr:Location", "hdr:Set-Cookie")),
    ("GET", "/cookies/delete?k", {}, None, ("hdr:Location", "hdr:Set-Cookie")),
    ("GET", "/redirect/1", {}, None, ("hdr:Location",)),
    ("GET", "/redirect/3", {}, None, ("hdr:Location",)),
    ("GET", "/redirect/3?absolute=true", {}, None, ("hdr:Location",)),
    ("GET", "/relative-redirect/2", {}, None, ("hdr:Location",)),
    ("GET", "/absolute-redirect/2", {}, None, ("hdr:Location",)),
    ("GET", "/absolute-redirect/1", {}, None, ("hdr:Location",)),
    ("GET", "/redirect-to?url=http%3A%2F%2Fexample.com%2Fx%3Fy%3D1", {}, None, ("hdr:Location",)),
    ("PUT", "/redirect-to?url=/get&status_code=307", {}, b"", ("hdr:Location",)),
    ("GET", "/redirect-to?url=/get&status_code=200", {}, None, ("hdr:Location",)),
    ("GET", "/basic-auth/user/passwd", {"Authorization": "Basic dXNlcjpwYXNzd2Q="}, None, ()),
    ("GET", "/basic-auth/user/passwd", {"Authorization": "Basic dXNlcjpub3Bl"}, None,
     ("hdr:WWW-Authenticate",)),
    ("GET", "/basic-auth/user/passwd", {}, None, ()),
    ("GET", "/hidden-basic-auth/user/passwd", {}, None, ()),
    ("GET", "/hidden-basic-auth/user/passwd", {"Authorization": "Basic dXNlcjpwYXNzd2Q="}, None, ()),
    # httpbin lstrip()s the characters of "Bearer " (a token "abc" loses its
    # "a"); awaitd drops the prefix only. A token that starts otherwise:
    ("GET", "/bearer", {"Authorization": "Bearer xyz.def"}, None, ()),
    ("GET", "/bearer", {}, None, ("hdr:WWW-Authenticate",)),
    ("GET", "/digest-auth/auth/user/passwd", {}, None, ()),
    ("GET", "/cache", {"If-None-Match": "x"}, None, ()),
    ("GET", "/cache", {"If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, ()),
    ("GET", "/cache/30", {}, None, ("hdr:Cache-Control",)),
    ("GET", "/etag/abc", {}, None, ("hdr:ETag",)),
    ("GET", "/etag/abc", {"If-None-Match": '"x", "abc"'}, None, ("hdr:ETag",)),
    ("GET", "/etag/abc", {"If-None-Match": "*"}, None, ()),
    ("GET", "/etag/abc", {"If-Match": '"x"'}, None, ()),
    ("GET", "/etag/abc", {"If-Match": '"abc"'}, None, ("hdr:ETag",)),
    ("GET", "/gzip", {"Accept-Encoding": "gzip"}, None, ("hdr:Content-Encoding",)),
    ("GET", "/deflate", {"Accept-Encoding": "deflate"}, None, ("hdr:Content-Encoding",)),
    ("GET", "/robots.txt", {}, None, ("body",)),
    ("GET", "/deny", {}, None, ("body",)),
    ("GET", "/xml", {}, None, ("body", "hdr:Content-Type")),
    ("GET", "/html", {}, None, ("hdr:Content-Type",)),
    ("GET", "/forms/post", {}, None, ("hdr:Content-Type",)),
    ("GET", "/base64/SFRUUEJJTiBpcyBhd2Vzb21l", {}, None, ("body",)),
    ("GET", "/links/4/2", {}, None, ("body",)),
    ("GET", "/links/4", {}, None, ("hdr:Location",)),
    ("GET", "/image", {}, None, ("hdr:Content-Type",)),
    ("GET", "/image", {"Accept": "image/webp"}, None, ("hdr:Content-Type",)),
    ("GET", "/image", {"Accept": "image/svg+xml"}, None, ("hdr:Content-Type",)),
    ("GET", "/image", {"Accept": "image/jpeg"}, None, ("hdr:Content-Type",)),
    ("GET", "/image", {"Accept": "text/nope"}, None, ()),
    ("GET", "/image/png", {}, None, ("hdr:Content-Type",)),
    ("GET", "/image/jpeg", {}, None, ("hdr:Content-Type",)),
    ("GET", "/image/webp", {}, None, ("hdr:Content-Type",)),
    ("GET", "/image/svg", {}, None, ("hdr:Content-Type",)),
    ("GET", "/uuid", {}, None, ()),
    ("GET", "/drip?numbytes=3&duration=0&code=201", {}, None, ("body",)),
    ("GET", "/delay/0?x=1", {}, None, ()),
    ("GET", "/no-such-route", {}, None, ()),
] + [
    # /range/{n}: the letters a..z, Range over them (206), 416 past the end.
    ("GET", "/range/30" + q, h, None, ("body", "hdr:ETag", "hdr:Accept-Ranges", "hdr:Content-Range",
                                       "hdr:Content-Length", "hdr:Content-Type"))
    for q, h in (("", {}), ("", {"Range": "bytes=5-9"}), ("", {"Range": "bytes=-4"}),
                 ("", {"Range": "bytes=10-"}), ("", {"Range": "bytes=0-29"}),
                 ("", {"Range": "bytes=40-"}), ("", {"Range": "bytes=9-3"}),
                 ("", {"Range": "items=1-2"}), ("?chunk_size=7&duration=0.2", {"Range": "bytes=3-20"}))
] + [
    # httpbin answers n out of (0, 102400] with a 404 text; awaitd with JSON.
    ("GET", "/range/0", {}, None, ("hdr:ETag", "hdr:Accept-Ranges")),
] + [
    # TRACE: httpbin's /anything, /status and /redirect-to take it; its other routes 405.
    ("TRACE", "/anything", {}, None, ()),
    ("TRACE", "/anything/deep/path?x=1", {}, None, ()),
    ("TRACE", "/status/418", {}, None, ("body",)),
    ("TRACE", "/redirect-to?url=/get", {}, None, ("hdr:Location",)),
    ("TRACE", "/get", {}, None, ()),
]


def normalise(obj, base):
    """Replace a server's own scheme://host:port and host:port with a marker,
    and random values with their shape."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "uuid" and isinstance(v, str):
                v = "<uuid>" if re.fullmatch(r"[0-9a-f-]{36}", v) else v
            out[k] = normalise(v, base)
        return out
    if isinstance(obj, list):
        return [normalise(v, base) for v in obj]
    if isinstance(obj, str):
        return obj.replace(base, "<base>").replace(base.split("//", 1)[1], "<host>")
    return obj


def url_unquoted(j):
    """httpbin shows the URL as an IRI (%C3%A9 decoded), awaitd as sent."""
    if isinstance(j, dict) and isinstance(j.get("url"), str):
        j["url"] = urllib.parse.unquote(j["url"])
    return j


def echo_headers_fixed(j, sent):
    """wsgiref gives requests without a Content-Type one (text/plain) and
    werkzeug echoes it; drop what the client did not send."""
    if isinstance(j, dict) and isinstance(j.get("headers"), dict):
        if not any(k.lower() == "content-type" for k in sent):
            j["headers"].pop("Content-Type", None)
        if j["headers"].get("Content-Length") == "" or (
                j["headers"].get("Content-Length") == "0" and "Content-Length" not in sent):
            j["headers"].pop("Content-Length", None)
    return j


class HttpbinDiffTest(DaemonTestCase):
    config = {"probe": {"max_delay": "10s"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hb_port = free_port()
        cls.hb = subprocess.Popen(["/usr/bin/python3", "-c", HTTPBIN_SERVER, HOST, str(cls.hb_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get("http://%s:%d/ip" % (HOST, cls.hb_port), timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or cls.hb.poll() is not None:
                    cls.hb.kill()
                    raise AssertionError("httpbin did not start: %s" % cls.hb.stderr.read()[-2000:])
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.hb.terminate()
        try:
            cls.hb.wait(5)
        except subprocess.TimeoutExpired:
            cls.hb.kill()
            cls.hb.wait()
        super().tearDownClass()

    def fetch(self, port, method, path, headers, body):
        base = "http://%s:%d" % (HOST, port)
        # Same headers to both; requests adds its own defaults identically.
        r = requests.request(method, base + path, headers=headers, data=body,
                             allow_redirects=False, timeout=10)
        return base, r

    def compare(self, method, path, headers, body, extra):
        hb_base, hb = self.fetch(self.hb_port, method, path, headers, body)
        aw_base, aw = self.fetch(self.d.port, method, path, headers, body)
        label = "%s %s" % (method, path)
        self.assertEqual(aw.status_code, hb.status_code, "%s: status (httpbin %r)" % (label, hb.content[:200]))
        hb_ct = hb.headers.get("Content-Type", "")
        if hb_ct.startswith("application/json") and hb.content.strip():
            self.assertTrue(aw.headers.get("Content-Type", "").startswith("application/json"), label)
            hj = url_unquoted(echo_headers_fixed(normalise(hb.json(), hb_base), headers))
            aj = url_unquoted(echo_headers_fixed(normalise(aw.json(), aw_base), headers))
            if path.startswith("/response-headers"):
                # Each counts its own body: Flask's JSON is compact, awaitd's
                # spaced (awaitd's own count is checked in test_httpbin_clients).
                hj.pop("Content-Length")
                aj.pop("Content-Length")
            self.assertEqual(aj, hj, label)
        for what in extra:
            if what == "body":
                self.assertEqual(aw.content, hb.content, label)
            else:
                name = what[4:]
                hv, av = hb.headers.get(name), aw.headers.get(name)
                if hv is not None:
                    hv = hv.replace(hb_base, "<base>")
                if av is not None:
                    av = av.replace(aw_base, "<base>")
                self.assertEqual(av, hv, "%s: header %s" % (label, name))

    def test_same_answers(self):
        for method, path, headers, body, extra in CASES:
            with self.subTest(method=method, path=path, headers=headers):
                self.compare(method, path, headers, body, extra)

    def test_digest_challenge_shape(self):
        """The nonces differ; the challenge's parameters must not."""
        def params(port):
            h = requests.get("http://%s:%d/digest-auth/auth/user/passwd/SHA-256" % (HOST, port))
            self.assertEqual(h.status_code, 401)
            v = h.headers["WWW-Authenticate"]
            self.assertTrue(v.startswith("Digest "), v)
            d = dict(re.findall(r'(\w+)="?([^",]*)"?', v))
            return {k: (len(d[k]) if k in ("nonce", "opaque") else d[k].lower())
                    for k in ("realm", "qop", "algorithm", "nonce", "opaque")}
        self.assertEqual(params(self.d.port), params(self.hb_port))

    def test_digest_login_both(self):
        from requests.auth import HTTPDigestAuth
        for port in (self.hb_port, self.d.port):
            r = requests.get("http://%s:%d/digest-auth/auth/user/passwd" % (HOST, port),
                             auth=HTTPDigestAuth("user", "passwd"))
            self.assertEqual((r.status_code, r.json()), (200, {"authenticated": True, "user": "user"}))

    def digest_flow(self, port, path, steps, require_cookie=False):
        """Challenge, then `steps` logins with the challenge's nonce (MD5,
        qop auth), each carrying the cookies set so far: the statuses, the
        stale flags and the cookies after each answer."""
        import hashlib
        base = "http://%s:%d" % (HOST, port)
        s = requests.Session()
        q = "?require-cookie=1" if require_cookie else ""
        r = s.get(base + path + q, timeout=10)
        out = [(r.status_code, "stale=TRUE" in r.headers.get("WWW-Authenticate", ""),
                dict(s.cookies))]
        nonce = re.search(r'nonce="([^"]+)"', r.headers["WWW-Authenticate"]).group(1)
        h = lambda x: hashlib.md5(x.encode()).hexdigest()
        uri = path + q
        for i in range(steps):
            nc, cnonce = "%08x" % (i + 1), "c%d" % i
            resp = h("%s:%s:%s:%s:auth:%s" % (h("user:me@kennethreitz.com:passwd"), nonce, nc,
                                              cnonce, h("GET:" + uri)))
            auth = ('Digest username="user", realm="me@kennethreitz.com", nonce="%s", uri="%s", '
                    'algorithm=MD5, qop=auth, nc=%s, cnonce="%s", response="%s"'
                    % (nonce, uri, nc, cnonce, resp))
            if require_cookie and i == 0:
                s.cookies.clear()
                s.cookies.set("other", "x")
            r = s.get(base + uri, headers={"Authorization": auth}, timeout=10)
            stale = "stale=TRUE" in r.headers.get("WWW-Authenticate", "")
            out.append((r.status_code, stale, {k: v for k, v in s.cookies.items()
                                               if k != "last_nonce"},
                        s.cookies.get("last_nonce") == nonce))
        return out

    def test_digest_stale_after(self):
        """httpbin keeps stale_after in cookies: each login counts it down,
        and at 0 the next login is answered 401 with stale=TRUE."""
        for path, steps in (("/digest-auth/auth/user/passwd/MD5/2", 4),
                            ("/digest-auth/auth/user/passwd/MD5/never", 2),
                            ("/digest-auth/auth/user/passwd", 2)):
            hb = self.digest_flow(self.hb_port, path, steps)
            aw = self.digest_flow(self.d.port, path, steps)
            self.assertEqual(aw, hb, path)
        hb = self.digest_flow(self.hb_port, "/digest-auth/auth/user/passwd", 1, True)
        aw = self.digest_flow(self.d.port, "/digest-auth/auth/user/passwd", 1, True)
        self.assertEqual(aw, hb, "require-cookie")
        self.assertEqual(aw[-1][0], 403)

    def test_stream_bytes(self):
        """The bytes are random (each server its own generator): their
        number must agree, and awaitd's chunks are chunk_size long as
        httpbin's generator yields them (wsgiref speaks HTTP/1.0, so
        httpbin's own chunks cannot be seen here)."""
        for path, chunks in (("/stream-bytes/20?chunk_size=7", [7, 7, 6]),
                             ("/stream-bytes/25000?seed=3", [10240, 10240, 4520]),
                             ("/stream-bytes/5?seed=1&chunk_size=0", [1] * 5)):
            got = {}
            for port in (self.hb_port, self.d.port):
                r = requests.get("http://%s:%d%s" % (HOST, port, path), timeout=10)
                self.assertEqual(r.status_code, 200, path)
                self.assertEqual(r.headers.get("Content-Type"), "application/octet-stream", path)
                got[port] = len(r.content)
            self.assertEqual(got[self.d.port], got[self.hb_port], path)
            r = requests.get("http://%s:%d%s" % (HOST, self.d.port, path), stream=True, timeout=10)
            self.assertEqual(r.headers.get("Transfer-Encoding"), "chunked", path)
            self.assertEqual([len(c) for c in r.raw.read_chunked()], chunks, path)

    def test_stream_lines(self):
        lines = {}
        for port in (self.hb_port, self.d.port):
            base = "http://%s:%d" % (HOST, port)
            r = requests.get(base + "/stream/3?x=1")
            lines[port] = [normalise(echo_headers_fixed(__import__("json").loads(l), {}), base)
                           for l in r.text.splitlines()]
        self.assertEqual(lines[self.d.port], lines[self.hb_port])


if __name__ == "__main__":
    unittest.main(verbosity=2)
