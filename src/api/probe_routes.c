/*
 * probe_routes: the httpbin routes beyond main.c's own probe lines, each
 * with its line for the index page, and "/" itself: an HTML page listing
 * every route of the router that has a line, generated from the table the
 * router searches, so the page cannot drift from what is served.
 */
#include "api/console.h"
#include "api/probe_int.h"
#include "api/router.h"

#include "core/buf.h"
#include "core/config.h"
#include "http/http_parse.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <string.h>

#define GET (ROUTE_M(GET) | ROUTE_M(HEAD))
#define GET_POST (GET | ROUTE_M(POST))
#define ALL (ROUTE_ANY & ~ROUTE_M(OPTIONS))
#define ALL_ALLOW "GET, HEAD, POST, PUT, DELETE, PATCH"
/* httpbin's routes that take TRACE as well (its core.py method lists). */
#define ALL_TRACE (ALL | ROUTE_M(TRACE))
#define ALL_TRACE_ALLOW "GET, HEAD, POST, PUT, DELETE, PATCH, TRACE"

static int html_escaped(struct buf *o, const char *s) {
    int r = 0;
    for (; *s; s++) {
        switch (*s) {
        case '<': r |= buf_appends(o, "&lt;"); break;
        case '>': r |= buf_appends(o, "&gt;"); break;
        case '&': r |= buf_appends(o, "&amp;"); break;
        case '"': r |= buf_appends(o, "&quot;"); break;
        default: r |= buf_append(o, s, 1);
        }
    }
    return r;
}

/* "/status/" is listed as "/status/{...}"; a link only where the path
 * alone is a request. */
static enum handler_result index_page(void *ctx, struct conn *c, const struct http_request *req,
                                      const char *body, size_t body_len) {
    const struct router *rt = ctx;
    (void)req, (void)body, (void)body_len;
    struct buf o = BUF_INIT;
    int r = buf_appends(&o, "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
                            "<title>awaitd probes</title></head>\n<body>\n"
                            "<h1>awaitd</h1>\n<p>HTTP request and response probes, "
                            "compatible with httpbin.</p>\n<ul>\n");
    for (size_t i = 0; i < rt->n; i++) {
        const struct route *e = &rt->routes[i];
        if (!e->doc || (e->handler == console_serve && !c->srv->cfg->console_enabled))
            continue; /* the console is not listed while [console] enabled = off */
        size_t n = strlen(e->path);
        int prefix = n > 1 && e->path[n - 1] == '/';
        r |= buf_appends(&o, "<li>");
        if (!prefix && (e->methods & ROUTE_M(GET))) {
            r |= buf_appends(&o, "<a href=\"");
            r |= html_escaped(&o, e->path);
            r |= buf_appends(&o, "\"><code>");
            r |= html_escaped(&o, e->path);
            r |= buf_appends(&o, "</code></a>");
        } else {
            r |= buf_appends(&o, "<code>");
            r |= html_escaped(&o, e->path);
            r |= buf_appends(&o, prefix ? "{...}</code>" : "</code>");
        }
        r |= buf_appends(&o, " ");
        r |= html_escaped(&o, e->doc);
        r |= buf_appends(&o, "</li>\n");
    }
    r |= buf_appends(&o, "</ul>\n</body>\n</html>\n");
    if (r) {
        buf_free(&o);
        c->keep_alive = 0;
        reply_error(c, 500, "out of memory");
        return HANDLER_DONE;
    }
    reply(c, 200, "text/html; charset=utf-8", NULL, buf_start(&o), o.len);
    buf_free(&o);
    return HANDLER_DONE;
}

int probe_routes_add(struct router *r, struct probe *p) {
    static const struct {
        const char *path, *doc;
    } docs[] = {
        {"/get", "the request: args, headers, origin, url"},
        {"/post", "the request with its body: also data, files, form, json"},
        {"/put", "as /post, for PUT"},
        {"/patch", "as /post, for PATCH"},
        {"/delete", "as /post, for DELETE"},
        {"/anything", "as /post for any method, plus method"},
        {"/anything/", "the same under any path"},
        {"/delay/", "{s}: the request after s seconds (a timer, not a thread)"},
        {"/status/", "{codes}: that status (200:0.9,500:0.1 picks by weight)"},
        {"/bytes/", "{n}: n random bytes (?seed= makes them reproducible)"},
        {"/stream/", "{n}: n JSON lines, chunked"},
        {"/drip", "?duration=&numbytes=&code=&delay=: bytes dripped over time"},
        {"/health", "liveness: ok, or draining"},
        {"/metrics", "Prometheus text"},
    };
    int e = 0;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        router_set_doc(r, docs[i].path, docs[i].doc); /* absent ones are simply not listed */
#define ADD(path, methods, allow, fn, doc) e |= router_add_doc(r, path, methods, allow, fn, p, doc)
    ADD("/headers", GET, "GET, HEAD", probe_headers, "the request's headers");
    ADD("/ip", GET, "GET, HEAD", probe_ip, "the client's address");
    ADD("/user-agent", GET, "GET, HEAD", probe_user_agent, "the User-Agent");
    ADD("/response-headers", GET_POST, "GET, HEAD, POST", probe_response_headers,
        "?name=value: those response headers, echoed as JSON");
    ADD("/cookies", GET, "GET, HEAD", probe_cookies, "the cookies sent");
    ADD("/cookies/set", GET, "GET, HEAD", probe_cookies_set,
        "?name=value: sets cookies, redirects to /cookies");
    ADD("/cookies/set/", GET, "GET, HEAD", probe_cookies_set,
        "{name}/{value}: sets one cookie, redirects to /cookies");
    ADD("/cookies/delete", GET, "GET, HEAD", probe_cookies_set,
        "?name: deletes cookies, redirects to /cookies");
    ADD("/redirect/", GET, "GET, HEAD", probe_redirect,
        "{n}: 302 n times, then /get (?absolute=true for absolute URLs)");
    ADD("/relative-redirect/", GET, "GET, HEAD", probe_redirect, "{n}: 302 n times, relative");
    ADD("/absolute-redirect/", GET, "GET, HEAD", probe_redirect, "{n}: 302 n times, absolute");
    ADD("/redirect-to", ALL_TRACE, ALL_TRACE_ALLOW, probe_redirect_to,
        "?url=&status_code=: redirects to url (302, or a 3xx status_code)");
    ADD("/basic-auth/", GET, "GET, HEAD", probe_basic_auth,
        "{user}/{passwd}: HTTP Basic auth, 401 without it");
    ADD("/hidden-basic-auth/", GET, "GET, HEAD", probe_basic_auth,
        "{user}/{passwd}: HTTP Basic auth, 404 without it");
    ADD("/bearer", GET, "GET, HEAD", probe_bearer, "a Bearer token, 401 without one");
    ADD("/digest-auth/", ALL, ALL_ALLOW, probe_digest_auth,
        "{qop}/{user}/{passwd}[/{algorithm}[/{stale_after}]]: HTTP Digest auth (auth, auth-int; MD5, SHA-256, "
        "SHA-512)");
    ADD("/uuid", GET, "GET, HEAD", probe_uuid, "a UUID4");
    ADD("/unstable", ALL, ALL_ALLOW, probe_unstable,
        "?failure_rate=&seed=: 200, or 500 with that probability (go-httpbin)");
    ADD("/hostname", GET, "GET, HEAD", probe_hostname, "a fixed host name (go-httpbin)");
    ADD("/sse", GET, "GET, HEAD", probe_sse,
        "?count=&duration=&delay=: server-sent events over time (go-httpbin)");
    ADD("/trailers", ALL, ALL_ALLOW, probe_trailers,
        "?name=value: the /anything echo, chunked, with those trailer fields (go-httpbin)");
    ADD("/dump/request", ALL, ALL_ALLOW, probe_dump_request,
        "the request as received, as text (go-httpbin)");
    ADD("/head", ROUTE_M(HEAD), "HEAD", probe_get, "HEAD only: the /get answer's head (go-httpbin)");
    ADD("/upload", ROUTE_M(POST) | ROUTE_M(PUT) | ROUTE_M(PATCH), "POST, PUT, PATCH", probe_upload,
        "the request with the body's length (bytes_received), not the body (go-httpbin)");
    ADD("/env", GET, "GET, HEAD", probe_env, "the daemon's HTTPBIN_* environment variables (go-httpbin)");
    ADD("/version", GET, "GET, HEAD", probe_version, "awaitd's version (go-httpbin)");
    ADD("/stream-bytes/", GET, "GET, HEAD", probe_stream_bytes,
        "{n}?seed=&chunk_size=: n random bytes, chunked");
    ADD("/range/", GET, "GET, HEAD", probe_range,
        "{n}?duration=&chunk_size=: n bytes a..z with Range, If-Range, ETag (206, 416)");
    ADD("/jsonl", GET, "GET, HEAD", probe_jsonl,
        "?count=&duration=&delay=&jitter=: JSON lines over time (go-httpbin)");
    ADD("/websocket/echo", ROUTE_M(GET), "GET", probe_websocket_echo,
        "?max_fragment_size=&max_message_size=: a WebSocket echo (RFC 6455; go-httpbin)");
    ADD("/cache", GET, "GET, HEAD", probe_cache,
        "304 to If-Modified-Since or If-None-Match, else /get with Last-Modified and ETag");
    ADD("/cache/", GET, "GET, HEAD", probe_cache_n, "{n}: /get with Cache-Control: max-age=n");
    ADD("/etag/", GET, "GET, HEAD", probe_etag, "{etag}: If-None-Match and If-Match against etag");
    ADD("/html", GET, "GET, HEAD", probe_document, "an HTML page");
    ADD("/xml", GET, "GET, HEAD", probe_document, "an XML document");
    ADD("/json", GET, "GET, HEAD", probe_document, "a JSON document");
    ADD("/robots.txt", GET, "GET, HEAD", probe_document, "robots rules");
    ADD("/deny", GET, "GET, HEAD", probe_document, "the page robots.txt denies");
    ADD("/encoding/utf8", GET, "GET, HEAD", probe_document, "UTF-8 text");
    ADD("/forms/post", GET, "GET, HEAD", probe_document, "an HTML form that posts to /post");
    ADD("/links/", GET, "GET, HEAD", probe_links, "{n}/{offset}: a page of n links");
    ADD("/base64/", GET, "GET, HEAD", probe_base64,
        "{value}: value decoded (URL-safe base64); /base64/encode/{value} encodes");
    ADD("/image", GET, "GET, HEAD", probe_image, "an image of the type Accept asks for");
    ADD("/image/", GET, "GET, HEAD", probe_image, "{png,jpeg,webp,svg}: that image");
    ADD("/gzip", GET, "GET, HEAD", probe_compressed, "the request, gzip-encoded");
    ADD("/deflate", GET, "GET, HEAD", probe_compressed, "the request, deflate-encoded");
    ADD("/brotli", GET, "GET, HEAD", probe_compressed, "the request, brotli-encoded");
#undef ADD
    e |= router_add_doc(r, "/", GET, "GET, HEAD", index_page, r, "this page");
    return e;
}
