"""httpbin compatibility with real clients (issue 14): multipart and form
bodies from requests, httpx, aiohttp and curl -F; /status with Location and
the teapot; CORS on every probe answer and the OPTIONS preflight; the
X-Forwarded-* headers; /drip freeing its connection with its last byte;
redirects, cookies, basic/digest/bearer auth, caching, compression and the
other httpbin routes, each through a client that uses them."""

import asyncio
import base64
import hashlib
import json
import re
import socket
import subprocess
import time
import unittest

import aiohttp
import httpx
import requests
from requests.auth import HTTPDigestAuth

from awaitd_test import DaemonTestCase, HOST


class HttpbinClientsTest(DaemonTestCase):
    config = {"probe": {"max_delay": "10s", "max_form_parts": "8"}}

    def setUp(self):
        self.base = self.d.url("")

    # ---- multipart/form-data and urlencoded bodies ------------------------------

    def test_requests_multipart(self):
        r = requests.post(self.base + "/post", data={"a": "1", "b": ["x", "y"]},
                          files={"f": ("hello.txt", b"hi there\n", "text/plain"),
                                 "bin": ("b.bin", bytes(range(256)), "application/x-thing")})
        self.assertEqual(r.status_code, 200, r.text)
        j = r.json()
        self.assertEqual(j["form"], {"a": "1", "b": ["x", "y"]})
        self.assertEqual(j["files"]["f"], "hi there\n")
        prefix = "data:application/x-thing;base64,"
        self.assertTrue(j["files"]["bin"].startswith(prefix), j["files"]["bin"][:60])
        self.assertEqual(base64.b64decode(j["files"]["bin"][len(prefix):]), bytes(range(256)))
        self.assertEqual(j["data"], "")
        self.assertIsNone(j["json"])

    def test_httpx_multipart_repeated_files(self):
        files = [("up", ("1.txt", b"one", "text/plain")), ("up", ("2.txt", b"two", "text/plain"))]
        r = httpx.post(self.base + "/anything/x", data={"k": "v\u00e9"}, files=files)
        j = r.json()
        self.assertEqual(j["files"], {"up": ["one", "two"]})
        self.assertEqual(j["form"], {"k": "v\u00e9"})
        self.assertEqual(j["method"], "POST")

    def test_aiohttp_formdata(self):
        async def go():
            fd = aiohttp.FormData()
            fd.add_field("name", "awaitd")
            fd.add_field("file", b"\xff\x01payload", filename="p.bin",
                         content_type="application/octet-stream")
            async with aiohttp.ClientSession() as s:
                async with s.put(self.base + "/put", data=fd) as resp:
                    return resp.status, await resp.json()
        status, j = asyncio.run(go())
        self.assertEqual(status, 200)
        self.assertEqual(j["form"], {"name": "awaitd"})
        self.assertEqual(j["files"]["file"],
                         "data:application/octet-stream;base64," +
                         base64.b64encode(b"\xff\x01payload").decode())

    def test_curl_F(self):
        p = self.d.curl("-sS", "--fail", "-F", "a=1", "-F", "f=@-;filename=in.txt;type=text/plain",
                        "{url}/post", input=b"from stdin\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["form"], {"a": "1"})
        self.assertEqual(j["files"], {"f": "from stdin\n"})

    def test_urlencoded_data_empty(self):
        j = requests.post(self.base + "/post", data={"a": "1 2", "b": "&"}).json()
        self.assertEqual(j["form"], {"a": "1 2", "b": "&"})
        self.assertEqual(j["data"], "")
        j = requests.post(self.base + "/post", json={"x": [1]}).json()
        self.assertEqual((j["json"], j["form"], j["data"]), ({"x": [1]}, {}, '{"x": [1]}'))

    def test_multipart_refused(self):
        ct = {"Content-Type": "multipart/form-data; boundary=zz"}
        r = self.d.http("POST", "/post", body=b"--zz\r\nContent-Disposition: form-data; name=a\r\n"
                        b"\r\nno end", headers=ct)
        self.assertJsonError(r, 400)
        self.assertIn("closing boundary", r.json()["error"])
        r = self.d.http("POST", "/post", body=b"x", headers={"Content-Type": "multipart/form-data"})
        self.assertJsonError(r, 400)
        many = b"".join(b"--zz\r\nContent-Disposition: form-data; name=p%d\r\n\r\nv\r\n" % i
                        for i in range(9)) + b"--zz--\r\n"
        r = self.d.http("POST", "/post", body=many, headers=ct)
        self.assertJsonError(r, 413)
        self.assertIn("max_form_parts", r.json()["error"])
        self.assertEqual(self.d.get("/get").status, 200)

    # ---- /status ---------------------------------------------------------------

    def test_status_redirect_location(self):
        for code in (301, 302, 303, 305, 307):
            with self.subTest(code):
                r = requests.get(self.base + "/status/%d" % code, allow_redirects=False)
                self.assertEqual(r.status_code, code)
                self.assertEqual(r.headers["Location"], "/redirect/1")
        # A redirect-following client ends at /get.
        r = requests.get(self.base + "/status/302")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.url, self.base + "/get")
        self.assertEqual([h.status_code for h in r.history], [302, 302])

    def test_status_teapot_and_friends(self):
        r = requests.get(self.base + "/status/418")
        self.assertEqual(r.status_code, 418)
        self.assertIn("-=[ teapot ]=-", r.text)
        self.assertEqual(r.headers["X-More-Info"], "http://tools.ietf.org/html/rfc2324")
        r = requests.get(self.base + "/status/406")
        self.assertEqual(r.json()["accept"][0], "image/webp")
        self.assertIn("Fake Realm", requests.get(self.base + "/status/407")
                      .headers["Proxy-Authenticate"])
        self.assertEqual(requests.get(self.base + "/status/402").headers["X-More-Info"],
                         "http://vimeo.com/22053820")

    def test_status_weighted(self):
        seen = {requests.get(self.base + "/status/200:0.5,500:0.5").status_code for _ in range(60)}
        self.assertEqual(seen, {200, 500})

    # ---- CORS --------------------------------------------------------------------

    def test_cors_preflight(self):
        r = requests.options(self.base + "/get", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-Token, Content-Type"})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, b"")
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "https://app.example")
        self.assertEqual(r.headers["Access-Control-Allow-Credentials"], "true")
        self.assertEqual(r.headers["Access-Control-Allow-Methods"],
                         "GET, POST, PUT, DELETE, PATCH, OPTIONS")
        self.assertEqual(r.headers["Access-Control-Allow-Headers"], "X-Token, Content-Type")
        self.assertEqual(r.headers["Access-Control-Max-Age"], "3600")
        self.assertIn("OPTIONS", r.headers["Allow"])

    def test_cors_on_every_answer(self):
        o = {"Origin": "http://o.example"}
        for method, path in (("GET", "/get"), ("POST", "/post"), ("GET", "/status/404"),
                             ("GET", "/no/such"), ("PUT", "/get"), ("GET", "/headers"),
                             ("GET", "/delay/0"), ("GET", "/drip?duration=0&numbytes=1")):
            with self.subTest(path=path):
                r = requests.request(method, self.base + path, headers=o)
                self.assertEqual(r.headers.get("Access-Control-Allow-Origin"), "http://o.example",
                                 (r.status_code, r.headers))
                self.assertEqual(r.headers.get("Access-Control-Allow-Credentials"), "true")
        r = requests.get(self.base + "/get")
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")

    def test_no_cors_on_queue_api(self):
        r = requests.options(self.base + "/queues", headers={"Origin": "http://evil.example"})
        self.assertNotIn("Access-Control-Allow-Origin", r.headers)
        self.assertNotEqual(r.status_code, 200)

    # ---- X-Forwarded-* --------------------------------------------------------------

    def test_forwarded(self):
        h = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "api.example.com"}
        j = requests.get(self.base + "/get?x=1", headers=h).json()
        self.assertEqual(j["origin"], "203.0.113.7, 10.0.0.1")
        self.assertEqual(j["url"], "https://api.example.com/get?x=1")
        # httpbin hides what its proxy added, unless show_env.
        self.assertNotIn("X-Forwarded-For", j["headers"])
        self.assertIn("X-Forwarded-Host", j["headers"])
        j = requests.get(self.base + "/get?show_env=1", headers=h).json()
        self.assertEqual(j["headers"]["X-Forwarded-Proto"], "https")
        self.assertEqual(requests.get(self.base + "/ip", headers=h).json(),
                         {"origin": "203.0.113.7, 10.0.0.1"})
        j = requests.get(self.base + "/get", headers={"X-Forwarded-Ssl": "on"}).json()
        self.assertTrue(j["url"].startswith("https://127.0.0.1:"), j["url"])

    # ---- /drip frees its connection with its last byte --------------------------------

    def test_drip_connection_free_after_last_byte(self):
        with self.d.connect() as c:
            c.send(b"GET /drip?duration=1&numbytes=2 HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response(timeout=5)
            self.assertEqual(r.body, b"**")
            done = time.monotonic()
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response(timeout=5).status, 200)
            waited = time.monotonic() - done
        # Before the fix the connection stayed busy one more interval (0.5 s).
        self.assertLess(waited, 0.3)

    # ---- inspection ----------------------------------------------------------------------

    def test_headers_ip_user_agent(self):
        j = requests.get(self.base + "/headers", headers={"X-Thing": "1"}).json()
        self.assertEqual(j["headers"]["X-Thing"], "1")
        self.assertEqual(requests.get(self.base + "/ip").json(), {"origin": "127.0.0.1"})
        self.assertEqual(requests.get(self.base + "/user-agent", headers={"User-Agent": "ua/1"})
                         .json(), {"user-agent": "ua/1"})

    def test_response_headers(self):
        r = requests.get(self.base + "/response-headers?X-A=1&X-A=2&Cache-Control=no-store")
        self.assertEqual(r.headers["X-A"], "1, 2")
        self.assertEqual(r.headers["Cache-Control"], "no-store")
        j = r.json()
        self.assertEqual(j["X-A"], ["1", "2"])
        self.assertEqual(j["Content-Length"], r.headers["Content-Length"])
        self.assertEqual(int(j["Content-Length"]), len(r.content))
        self.assertJsonError(self.d.get("/response-headers?X-B=a%0d%0aSet-Cookie:%20x"), 400)
        # A second Content-Length would make the answer's framing ambiguous.
        self.assertJsonError(self.d.get("/response-headers?content-length=5"), 400)
        self.assertJsonError(self.d.get("/response-headers?Transfer-Encoding=chunked"), 400)

    # ---- redirects ------------------------------------------------------------------------

    def test_redirects_followed(self):
        for path in ("/redirect/3", "/relative-redirect/3", "/absolute-redirect/3",
                     "/redirect/2?absolute=true"):
            with self.subTest(path):
                r = requests.get(self.base + path)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.url, self.base + "/get")
        r = httpx.get(self.base + "/redirect/4", follow_redirects=True)
        self.assertEqual((r.status_code, len(r.history)), (200, 4))
        r = requests.get(self.base + "/absolute-redirect/2", allow_redirects=False)
        self.assertEqual(r.headers["Location"], self.base + "/absolute-redirect/1")
        r = requests.get(self.base + "/relative-redirect/2", allow_redirects=False)
        self.assertEqual(r.headers["Location"], "/relative-redirect/1")
        self.assertJsonError(self.d.get("/redirect/0"), 400)

    def test_redirect_to(self):
        r = requests.get(self.base + "/redirect-to", params={"url": "/get?a=b", "status_code": "307"},
                         allow_redirects=False)
        self.assertEqual((r.status_code, r.headers["Location"]), (307, "/get?a=b"))
        r = requests.post(self.base + "/redirect-to?url=/anything", data=b"x")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["method"], "GET")  # a 302 after POST becomes GET
        self.assertJsonError(self.d.get("/redirect-to?url=/a%0d%0aX:%201"), 400)
        self.assertJsonError(self.d.get("/redirect-to"), 400)

    def test_curl_follows(self):
        p = self.d.curl("-sS", "-L", "{url}/redirect/3")
        self.assertEqual(json.loads(p.stdout)["url"], self.base + "/get")

    # ---- cookies ----------------------------------------------------------------------------

    def test_cookies_session(self):
        s = requests.Session()
        r = s.get(self.base + "/cookies/set?k1=v1&k2=v2")
        self.assertEqual(r.json(), {"cookies": {"k1": "v1", "k2": "v2"}})
        r = s.get(self.base + "/cookies/set/k3/v3")
        self.assertEqual(r.json()["cookies"]["k3"], "v3")
        r = s.get(self.base + "/cookies/delete?k1")
        self.assertEqual(r.json(), {"cookies": {"k2": "v2", "k3": "v3"}})
        with httpx.Client(follow_redirects=True) as c:
            self.assertEqual(c.get(self.base + "/cookies/set?h=x").json(), {"cookies": {"h": "x"}})
        j = requests.get(self.base + "/cookies", headers={"Cookie": 'a=1; b="q"; __utma=x'}).json()
        self.assertEqual(j, {"cookies": {"a": "1", "b": "q"}})
        self.assertJsonError(self.d.get("/cookies/set?a=b%3Bc"), 400)

    # ---- auth --------------------------------------------------------------------------------

    def test_basic_auth(self):
        r = requests.get(self.base + "/basic-auth/u/p w", auth=("u", "p w"))
        self.assertEqual(r.json(), {"authenticated": True, "user": "u"})
        r = requests.get(self.base + "/basic-auth/u/p", auth=("u", "wrong"))
        self.assertEqual(r.status_code, 401)
        self.assertIn("Basic", r.headers["WWW-Authenticate"])
        self.assertEqual(requests.get(self.base + "/hidden-basic-auth/u/p").status_code, 404)
        self.assertEqual(httpx.get(self.base + "/hidden-basic-auth/u/p", auth=("u", "p"))
                         .status_code, 200)
        p = self.d.curl("-sS", "-u", "u:p", "{url}/basic-auth/u/p")
        self.assertEqual(json.loads(p.stdout)["authenticated"], True)

    def digest_by_hand(self, path, password, body, qop="auth-int", alg="SHA-256"):
        """RFC 7616 by hand (requests has no auth-int): the challenge, then the answer."""
        h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256, "SHA-512": hashlib.sha512}[alg]
        H = lambda s: h(s if isinstance(s, bytes) else s.encode()).hexdigest()
        ch = requests.post(self.base + path, data=body).headers["WWW-Authenticate"]
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', ch))
        ha1 = H("user:%s:%s" % (params["realm"], password))
        ha2 = H("POST:%s:%s" % (path, H(body))) if qop == "auth-int" else H("POST:" + path)
        resp = H(":".join([ha1, params["nonce"], "00000001", "c0ffee", qop, ha2]))
        auth = ('Digest username="user", realm="%s", nonce="%s", uri="%s", qop=%s, nc=00000001, '
                'cnonce="c0ffee", response="%s", opaque="%s", algorithm=%s'
                % (params["realm"], params["nonce"], path, qop, resp, params["opaque"], alg))
        return requests.post(self.base + path, data=body, headers={"Authorization": auth})

    def test_digest_auth_int(self):
        for alg in ("MD5", "SHA-256", "SHA-512"):
            with self.subTest(alg):
                path = "/digest-auth/auth-int/user/pw/" + alg
                r = self.digest_by_hand(path, "pw", b"the body", alg=alg)
                self.assertEqual(r.json(), {"authenticated": True, "user": "user"})
                self.assertEqual(self.digest_by_hand(path, "nope", b"b", alg=alg).status_code, 401)

    def test_digest_auth(self):
        for qop in ("auth",):
            for alg in ("MD5", "SHA-256", "SHA-512"):
                with self.subTest(qop=qop, alg=alg):
                    url = self.base + "/digest-auth/%s/user/pw/%s" % (qop, alg)
                    r = requests.get(url, auth=HTTPDigestAuth("user", "pw"))
                    self.assertEqual(r.status_code, 200, r.headers)
                    self.assertEqual(r.json(), {"authenticated": True, "user": "user"})
                    r = requests.get(url, auth=HTTPDigestAuth("user", "bad"))
                    self.assertEqual(r.status_code, 401)
        r = httpx.get(self.base + "/digest-auth/auth/user/pw", auth=httpx.DigestAuth("user", "pw"))
        self.assertEqual(r.status_code, 200)
        p = self.d.curl("-sS", "--digest", "-u", "user:pw", "{url}/digest-auth/auth/user/pw")
        self.assertEqual(json.loads(p.stdout)["user"], "user")
        r = requests.get(self.base + "/digest-auth/auth/user/pw")
        self.assertEqual(r.status_code, 401)
        self.assertIn('qop="auth"', r.headers["WWW-Authenticate"])

    def test_bearer(self):
        r = requests.get(self.base + "/bearer", headers={"Authorization": "Bearer tok"})
        self.assertEqual(r.json(), {"authenticated": True, "token": "tok"})
        r = requests.get(self.base + "/bearer")
        self.assertEqual((r.status_code, r.headers["WWW-Authenticate"]), (401, "Bearer"))

    # ---- caching, formats, compression --------------------------------------------------------

    def test_cache_and_etag(self):
        r = requests.get(self.base + "/cache")
        self.assertEqual(r.status_code, 200)
        self.assertIn("Last-Modified", r.headers)
        self.assertEqual(requests.get(self.base + "/cache", headers={"If-None-Match": "x"})
                         .status_code, 304)
        self.assertEqual(requests.get(self.base + "/cache/60").headers["Cache-Control"],
                         "public, max-age=60")
        r = requests.get(self.base + "/etag/abc", headers={"If-None-Match": 'W/"x", "abc"'})
        self.assertEqual((r.status_code, r.headers["ETag"]), (304, "abc"))
        self.assertEqual(requests.get(self.base + "/etag/abc", headers={"If-Match": '"x"'})
                         .status_code, 412)
        self.assertEqual(requests.get(self.base + "/etag/abc").headers["ETag"], "abc")

    def test_compressed(self):
        for path, key, enc in (("/gzip", "gzipped", "gzip"), ("/deflate", "deflated", "deflate"),
                               ("/brotli", "brotli", "br")):
            with self.subTest(path):
                r = requests.get(self.base + path)
                self.assertEqual(r.headers["Content-Encoding"], enc)
                if enc != "br":  # requests decodes brotli only with the brotli module
                    self.assertTrue(r.json()[key])
                p = self.d.curl("-sS", "--compressed", "{url}" + path)
                self.assertTrue(json.loads(p.stdout)[key], p.stdout[:200])

    def test_documents_and_images(self):
        for path, ctype in (("/html", "text/html"), ("/xml", "application/xml"),
                            ("/json", "application/json"), ("/robots.txt", "text/plain"),
                            ("/deny", "text/plain"), ("/encoding/utf8", "text/html"),
                            ("/forms/post", "text/html"), ("/", "text/html")):
            with self.subTest(path):
                r = requests.get(self.base + path)
                self.assertEqual(r.status_code, 200)
                self.assertTrue(r.headers["Content-Type"].startswith(ctype))
        self.assertIn("slideshow", requests.get(self.base + "/json").json())
        magic = {"png": b"\x89PNG", "jpeg": b"\xff\xd8\xff", "webp": b"RIFF", "svg": b"<svg"}
        for name, m in magic.items():
            with self.subTest(name):
                self.assertTrue(requests.get(self.base + "/image/" + name).content.startswith(m))
        r = requests.get(self.base + "/image", headers={"Accept": "image/webp,*/*"})
        self.assertEqual(r.headers["Content-Type"], "image/webp")
        self.assertEqual(requests.get(self.base + "/image", headers={"Accept": "text/plain"})
                         .status_code, 406)

    def test_index_lists_every_route(self):
        page = requests.get(self.base + "/").text
        for path in ("/get", "/post", "/headers", "/digest-auth/", "/image/", "/brotli",
                     "/status/", "/cookies/set"):
            self.assertIn("<code>%s" % path, page)
        self.assertNotIn("/queues", page)

    def test_uuid_base64_links(self):
        u = requests.get(self.base + "/uuid").json()["uuid"]
        self.assertRegex(u, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(requests.get(self.base + "/base64/SFRUUEJJTiBpcyBhd2Vzb21l").text,
                         "HTTPBIN is awesome")
        self.assertEqual(requests.get(self.base + "/base64/encode/hi%20there").text, "aGkgdGhlcmU=")
        self.assertJsonError(self.d.get("/base64/!!"), 400)
        r = requests.get(self.base + "/links/3")
        self.assertEqual(r.url, self.base + "/links/3/0")
        self.assertEqual(r.text.count("<a href="), 2)

    # ---- go-httpbin's /unstable, /hostname, /dump/request ---------------------------------

    def test_unstable(self):
        seen = {requests.get(self.base + "/unstable").status_code for _ in range(60)}
        self.assertEqual(seen, {200, 500})
        self.assertEqual(requests.get(self.base + "/unstable?failure_rate=0").status_code, 200)
        self.assertEqual(requests.get(self.base + "/unstable?failure_rate=1").status_code, 500)
        once = [requests.get(self.base + "/unstable?seed=%d" % s).status_code for s in range(20)]
        again = [requests.get(self.base + "/unstable?seed=%d" % s).status_code for s in range(20)]
        self.assertEqual(once, again)
        self.assertEqual(set(once), {200, 500})
        for bad in ("failure_rate=2", "failure_rate=x", "seed=-1"):
            self.assertJsonError(self.d.get("/unstable?" + bad), 400)

    def test_hostname_and_dump_request(self):
        self.assertEqual(requests.get(self.base + "/hostname").json(), {"hostname": "awaitd"})
        r = requests.post(self.base + "/dump/request?x=1", data=b"the body",
                          headers={"X-Dump": "yes", "Content-Type": "text/plain"})
        head, body = r.content.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"POST /dump/request?x=1 HTTP/1.1")
        self.assertTrue(lines[1].startswith(b"Host: 127.0.0.1:"), lines[1])
        self.assertIn(b"X-Dump: yes", lines)
        self.assertEqual(body, b"the body")

    # ---- /trailers ------------------------------------------------------------------------

    def test_trailers(self):
        raw = self.d.raw(b"POST /trailers?X-Sum=abc&Server-Timing=total%3B1 HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 7\r\n"
                         b"Connection: close\r\n\r\n{\"a\":1}")
        head, rest = raw.split(b"\r\n\r\n", 1)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertIn(b"Trailer: X-Sum, Server-Timing", head)
        size, rest = rest.split(b"\r\n", 1)
        chunk, rest = rest[:int(size, 16)], rest[int(size, 16) + 2:]
        j = json.loads(chunk)
        self.assertEqual((j["json"], j["method"]), ({"a": 1}, "POST"))
        self.assertEqual(rest, b"0\r\nX-Sum: abc\r\nServer-Timing: total;1\r\n\r\n")
        # A client that ignores trailers reads the echo as usual.
        self.assertEqual(requests.get(self.base + "/trailers?X-T=1").json()["method"], "GET")
        for bad in ("Content-Length=1", "authorization=x", "X-A=a%0db", "=v"):
            self.assertJsonError(self.d.get("/trailers?" + bad), 400)

    # ---- /sse -----------------------------------------------------------------------------

    def read_sse(self, path):
        """An SSE reader: (event, data) pairs and when each arrived."""
        events, times, event = [], [], None
        start = time.monotonic()
        with httpx.stream("GET", self.base + path, timeout=10) as r:
            self.assertEqual(r.status_code, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
            for line in r.iter_lines():
                line = line.rstrip("\r\n")  # httpx 0.23 keeps the line end
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
                    times.append(time.monotonic() - start)
        return events, times

    def test_sse(self):
        events, times = self.read_sse("/sse?count=4&duration=0.8s&delay=100ms")
        self.assertEqual([e for e, _ in events], ["ping"] * 4)
        self.assertEqual([d["id"] for _, d in events], [0, 1, 2, 3])
        now_ms = time.time() * 1000
        for _, d in events:
            self.assertLess(abs(d["timestamp"] - now_ms), 60000)
        self.assertGreaterEqual(times[0], 0.09)
        self.assertGreaterEqual(times[-1] - times[0], 0.5, times)  # spread over the duration
        self.assertJsonError(self.d.get("/sse?count=0"), 400)
        self.assertJsonError(self.d.get("/sse?duration=20s"), 400)
        self.assertEqual(self.d.http("HEAD", "/sse").status, 200)

    def test_sse_cancelled_on_disconnect(self):
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=5)
        c = self.d.connect()
        c.send(b"GET /sse?count=5&duration=5 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 1, timeout=3)
        c.close()
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == 0, timeout=2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
